//! A full disk under the real binary (issue 20, "Disk faults"): the data directory is a small
//! tmpfs, filled up with a filler file while vigil scrapes. vigil must stay up, answer queries
//! over what it holds, say what is wrong (an ERROR log line saying what to do,
//! `prometheus_tsdb_wal_writes_failed_total`, the failed scrapes' error on `/api/v1/targets`),
//! resume by itself once the filler is deleted, and lose nothing it had written: all of it is
//! still there after a SIGKILL and a restart.
//!
//! Needs root (to mount the tmpfs); without it the test says so and passes.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs mounted at `path`, unmounted when dropped (on every path out of the test).
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB at `path`; `Err` says why not.
    fn mount(path: &Path, mib: u32) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed (root needed): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process still holding a file there (vigil being killed) must not keep the
        // mount alive.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn config(target: &str) -> String {
    format!(
        "global:\n  scrape_interval: 500ms\n  scrape_timeout: 500ms\nscrape_configs:\n  - job_name: sim\n    static_configs:\n      - targets: [\"{target}\"]\n"
    )
}

fn get(port: u16, path: &str) -> (u16, String) {
    http_get(&format!("http://127.0.0.1:{port}{path}")).expect("vigil answers")
}

/// (series labels, timestamp) of every raw sample of `selector` in the last 10 minutes.
fn samples(port: u16, selector: &str) -> BTreeSet<(String, String)> {
    let (status, body) = get(
        port,
        &format!("/api/v1/query?query={}", enc(&format!("{selector}[10m]"))),
    );
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

/// The value of an unlabelled counter on `/metrics`.
fn metric(port: u16, name: &str) -> f64 {
    let (_, body) = get(port, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The scrape target's health and last error.
fn target_state(port: u16) -> (String, String) {
    let (_, v) = api(port, "/api/v1/targets");
    let t = &v["data"]["activeTargets"][0];
    (
        t["health"].as_str().unwrap_or("").to_string(),
        t["lastError"].as_str().unwrap_or("").to_string(),
    )
}

/// Fills the file system of `path` up: writes until `ENOSPC`. Returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let mut total = 0u64;
    for size in [1 << 20, 4096, 1] {
        let buf = vec![0x5au8; size];
        loop {
            match f.write(&buf) {
                Ok(0) => break,
                Ok(n) => total += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }
    total
}

#[test]
fn full_disk_keeps_vigil_up_and_it_resumes_when_space_returns() {
    let started = Instant::now();
    let dir = tempdir("disk-full");
    let data = dir.join("data");
    let _mount = match Tmpfs::mount(&data, 32) {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED full_disk_keeps_vigil_up_and_it_resumes_when_space_returns: {why}");
            return;
        }
    };
    let (_sim, base) = start_targets(1, 300, 500);
    std::fs::write(
        dir.join("prometheus.yml"),
        config(&format!("127.0.0.1:{base}")),
    )
    .unwrap();
    let (mut vigil, port) = start_vigil_in(&dir, &data, &[], "run1.log", &ready_200);
    let log = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    wait_for(Duration::from_secs(15), "a few scrapes", || {
        samples(port, "up").len() >= 3
    });
    let before = samples(port, "{job=\"sim\"}");

    // The disk fills up.
    let filler = data.join("filler");
    let filled = fill(&filler);
    assert!(filled > 0);
    wait_for_or(
        Duration::from_secs(15),
        "failed WAL writes",
        || metric(port, "prometheus_tsdb_wal_writes_failed_total") > 0.0,
        || log("run1.log"),
    );
    let last_error = std::cell::RefCell::new(String::new());
    wait_for_or(
        Duration::from_secs(10),
        "the failed scrape's error on /api/v1/targets",
        || {
            let (health, err) = target_state(port);
            let full = err.to_lowercase().contains("no space left on device");
            *last_error.borrow_mut() = err;
            health == "down" && full
        },
        || format!("lastError: {:?}", last_error.borrow()),
    );
    let last_error = last_error.into_inner();
    // Some more scrapes on the full disk.
    std::thread::sleep(Duration::from_secs(2));
    eprintln!("lastError while the disk is full: {last_error}");
    assert!(
        vigil.running(),
        "vigil exited on a full disk: {}",
        log("run1.log")
    );
    assert_eq!(get(port, "/-/healthy").0, 200);
    let text = log("run1.log");
    let line = text
        .lines()
        .find(|l| l.contains("WAL write failed"))
        .unwrap_or_else(|| panic!("no log line about the failed WAL write:\n{text}"));
    eprintln!("log: {line}");
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("No space left on device"), "{line}");
    assert!(
        line.contains(&format!("free space in {}", data.join("wal").display()))
            && line.contains("resumes by itself"),
        "the line says what to do: {line}"
    );
    // Queries over what vigil holds still answer, with everything written before.
    let during = samples(port, "{job=\"sim\"}");
    let lost: Vec<_> = before.difference(&during).take(5).collect();
    assert!(
        lost.is_empty(),
        "samples gone while the disk is full: {lost:?}"
    );

    // Space returns: ingestion resumes by itself.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    wait_for_or(
        Duration::from_secs(15),
        "the target to be up again",
        || target_state(port).0 == "up",
        || log("run1.log"),
    );
    let up_before = samples(port, "up").len();
    wait_for(
        Duration::from_secs(10),
        "new samples after the episode",
        || samples(port, "up").len() >= up_before + 2,
    );
    let failed_now = metric(port, "prometheus_tsdb_wal_writes_failed_total");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        metric(port, "prometheus_tsdb_wal_writes_failed_total"),
        failed_now,
        "WAL writes still failing after space returned"
    );
    eprintln!(
        "filled {filled} bytes; resumed {:?} after the filler was deleted; {failed_now} failed \
         WAL writes",
        freed.elapsed()
    );
    let written = samples(port, "{job=\"sim\"}");
    assert!(written.is_superset(&before));

    // Nothing written is lost across a SIGKILL.
    vigil.child.kill().unwrap();
    vigil.child.wait().unwrap();
    let (_vigil, port) = start_vigil_in(&dir, &data, &[], "run2.log", &ready_200);
    let after = samples(port, "{job=\"sim\"}");
    let lost: Vec<_> = written.difference(&after).take(5).collect();
    assert!(
        lost.is_empty(),
        "lost after the episode and kill -9 ({} of {}): {lost:?}\n{}",
        written.difference(&after).count(),
        written.len(),
        log("run2.log")
    );
    eprintln!(
        "{} samples before the episode, {} written in all, all back after kill -9; {:?} in all",
        before.len(),
        written.len(),
        started.elapsed()
    );
}
