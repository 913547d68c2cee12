//! Storage survives restarts of the real binary: after `kill -9` every sample that was
//! queryable before is queryable again (WAL replay), and after a clean SIGTERM shutdown the
//! head snapshot makes the restart replay nothing.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn config(target: &str) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: sim\n    static_configs:\n      - targets: [\"{target}\"]\n"
    )
}

/// GET on vigil's loopback port: status and body.
fn get(port: u16, path: &str) -> Result<(u16, String), reqwest::Error> {
    http_get(&format!("http://127.0.0.1:{port}{path}"))
}

/// Starts vigil on `data` with the config in `dir`; waits for `/-/ready`.
fn start_on(dir: &Path, data: &Path, log_name: &str) -> (Proc, u16) {
    start_vigil_in(dir, data, &[], log_name, &|port| {
        get(port, "/-/ready").is_ok_and(|(s, _)| s == 200)
    })
}

/// (series labels, timestamp) of every raw sample of `metric` in the last 10 minutes.
fn samples(port: u16, metric: &str) -> BTreeSet<(String, String)> {
    let (status, body) = get(
        port,
        &format!("/api/v1/query?query={}", enc(&format!("{metric}[10m]"))),
    )
    .expect("vigil answers");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let mut out = BTreeSet::new();
    for s in v["data"]["result"].as_array().into_iter().flatten() {
        let labels = s["metric"].to_string();
        for p in s["values"].as_array().into_iter().flatten() {
            out.insert((labels.clone(), p[0].to_string()));
        }
    }
    out
}

#[test]
fn samples_survive_kill_and_clean_restart() {
    let (_sim, base) = start_targets(1, 30, 1000);
    let dir = tempdir("restart");
    std::fs::write(
        dir.join("prometheus.yml"),
        config(&format!("127.0.0.1:{base}")),
    )
    .unwrap();
    let data = dir.join("data");

    let (mut vigil, port) = start_on(&dir, &data, "run1.log");
    wait_for(Duration::from_secs(20), "a few scrapes", || {
        samples(port, "up").len() >= 3
    });
    let before_up = samples(port, "up");
    let before_all = samples(port, "{job=\"sim\"}");
    assert!(before_all.len() > before_up.len());
    vigil.child.kill().unwrap(); // SIGKILL
    vigil.child.wait().unwrap();

    let (mut vigil, port) = start_on(&dir, &data, "run2.log");
    let after = samples(port, "{job=\"sim\"}");
    let lost: Vec<_> = before_all.difference(&after).collect();
    assert!(lost.is_empty(), "lost after kill -9: {lost:?}");
    let log = std::fs::read_to_string(dir.join("run2.log")).unwrap();
    assert!(log.contains("WAL replay completed"), "{log}");
    // The first run wrote segment 0, which this start replayed; replay is complete.
    let (_, body) = get(port, "/api/v1/status/walreplay").unwrap();
    let w: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        w["data"],
        serde_json::json!({"min": 0, "max": 0, "current": 0}),
        "{body}"
    );

    // A clean shutdown writes the head snapshot; the next start replays no WAL samples.
    wait_for(Duration::from_secs(10), "another scrape", || {
        samples(port, "up").len() > before_up.len()
    });
    let status = Command::new("kill")
        .args(["-TERM", &vigil.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = vigil.child.wait().unwrap();
    assert!(exit.success(), "clean shutdown failed: {exit}");
    let before = {
        // Everything queryable before the shutdown, read back from the snapshot alone.
        let (mut v, port) = start_on(&dir, &data, "run3.log");
        let s = samples(port, "{job=\"sim\"}");
        v.child.kill().unwrap();
        let _ = v.child.wait();
        s
    };
    assert!(before.is_superset(&after));
    let log = std::fs::read_to_string(dir.join("run3.log")).unwrap();
    assert!(log.contains("Loaded head snapshot"), "{log}");
    assert!(log.contains("wal_samples=0"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A small deterministic generator for kill delays (no extra dependency).
fn next_rand(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn sigkill_at_random_moments_never_loses_committed_samples() {
    let (_sim, base) = start_targets(2, 200, 100);
    let dir = tempdir("sigkill");
    write_sim_config(
        &dir,
        &[
            format!("127.0.0.1:{base}"),
            format!("127.0.0.1:{}", base + 1),
        ],
    );
    let data = dir.join("data");
    let started = Instant::now();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let kills = 20;
    for round in 0..kills {
        let (mut vigil, port) = start_on(&dir, &data, &format!("kill{round}.log"));
        let now = samples(port, "{job=\"sim\"}");
        let lost: Vec<_> = seen.difference(&now).take(5).collect();
        assert!(
            lost.is_empty(),
            "round {round}: committed samples lost after kill -9: {lost:?}\n{}",
            std::fs::read_to_string(dir.join(format!("kill{round}.log"))).unwrap_or_default()
        );
        // Let it ingest for a random moment, note what is queryable (so committed), kill.
        std::thread::sleep(Duration::from_millis(100 + next_rand(&mut seed) % 700));
        seen = samples(port, "{job=\"sim\"}");
        std::thread::sleep(Duration::from_millis(next_rand(&mut seed) % 50));
        vigil.child.kill().unwrap();
        vigil.child.wait().unwrap();
    }
    let (_vigil, port) = start_on(&dir, &data, "final.log");
    assert!(samples(port, "{job=\"sim\"}").is_superset(&seen));
    assert!(!seen.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{kills} kills took {:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_vigil_on_the_same_data_directory_refuses_to_start() {
    let (_v, _port, dir) = start_vigil("scrape_configs: []\n");
    let out = Command::new(vigil_bin())
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is locked by another process"),
        "no lock message: {err}"
    );
}
