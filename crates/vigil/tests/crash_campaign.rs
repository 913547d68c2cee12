//! The CI version of the crash campaign (issue 20; the long one is `tools/crash_campaign.py`):
//! the real binary is SIGKILLed 30 times at random moments (fixed seed) while it scrapes,
//! cuts its head into blocks, compacts blocks, applies retention, writes head snapshots and
//! sends remote write to a second vigil. A one-second block range makes maintenance run every
//! 250 ms, so kills land in the middle of it. After every restart: the start succeeded, every
//! sample that was queryable before the kill (committed, as `restart.rs` counts it) is back
//! with the same value unless retention may have dropped it, each series' timestamps strictly
//! increase, blocks on disk do not overlap and none was quarantined. At the end the receiver
//! holds every committed sample (it may have got some twice).

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// (series labels, timestamp ms) → value.
type Samples = BTreeMap<(String, i64), String>;

const RETENTION_S: i64 = 20;
const BLOCK_S: i64 = 1;

fn get(port: u16, path: &str) -> (u16, String) {
    http_get(&format!("http://127.0.0.1:{port}{path}")).expect("vigil answers")
}

/// Every raw sample of `selector` in the last few minutes, and the number of samples that
/// break strict timestamp order within their series (duplicates).
fn samples(port: u16, selector: &str) -> (Samples, usize) {
    let (status, body) = get(
        port,
        &format!("/api/v1/query?query={}", enc(&format!("{selector}[300s]"))),
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let mut out = Samples::new();
    let mut dups = 0;
    for s in v["data"]["result"].as_array().into_iter().flatten() {
        let labels = s["metric"].to_string();
        let mut last = i64::MIN;
        for p in s["values"].as_array().into_iter().flatten() {
            let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
            if t <= last {
                dups += 1;
            }
            last = t;
            out.insert((labels.clone(), t), p[1].as_str().unwrap().to_string());
        }
    }
    (out, dups)
}

/// (time-overlapping pairs of blocks, quarantined blocks) in the data directory.
fn block_problems(data: &Path) -> (usize, usize) {
    let mut ranges = Vec::new();
    let mut quarantined = 0;
    for e in std::fs::read_dir(data).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(".corrupted") {
            quarantined += 1;
        }
        if name.len() != 33 || name.contains('.') {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(e.path().join("meta.json")) {
            let m: serde_json::Value = serde_json::from_str(&text).unwrap();
            ranges.push((
                m["minTime"].as_i64().unwrap(),
                m["maxTime"].as_i64().unwrap(),
            ));
        }
    }
    ranges.sort();
    let overlaps = ranges.windows(2).filter(|w| w[1].0 < w[0].1).count();
    (overlaps, quarantined)
}

fn next_rand(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn ready(port: u16) -> bool {
    http_get(&format!("http://127.0.0.1:{port}/-/ready")).is_ok_and(|(s, _)| s == 200)
}

/// A second vigil that receives remote write, without an out-of-order window. After a crash
/// the sender resends from its saved position; the receiver refused such a batch whole (400,
/// as Prometheus' remote-write 1.0 handler does) and the sender dropped it, new samples
/// included (23 % of the committed samples lost in this test); it now skips what it holds.
fn start_receiver() -> (Proc, u16, std::path::PathBuf) {
    start_vigil_with(
        "scrape_configs: []\n",
        &["--web.enable-remote-write-receiver"],
    )
}

/// Scrapes `targets` synthetic targets every 100 ms and sends to `receiver`, in batches at
/// least every `deadline`.
fn config(target_base: u16, targets: u16, receiver: u16, deadline: &str) -> String {
    let list: Vec<String> = (0..targets)
        .map(|i| format!("\"127.0.0.1:{}\"", target_base + i))
        .collect();
    format!(
        "global:\n  scrape_interval: 100ms\n  scrape_timeout: 100ms\nscrape_configs:\n  - job_name: sim\n    static_configs:\n      - targets: [{}]\nremote_write:\n  - url: http://127.0.0.1:{receiver}/api/v1/write\n    queue_config:\n      batch_send_deadline: {deadline}\n      min_backoff: 50ms\n      max_backoff: 500ms\n",
        list.join(", ")
    )
}

const FLAGS: &[&str] = &[
    "--storage.tsdb.min-block-duration=1s",
    "--storage.tsdb.retention.time=20s",
];

/// Waits (at most `secs`) until the receiver holds every sample of `want`; returns those
/// still missing.
fn missing_at_receiver(receiver: u16, want: &Samples, secs: u64) -> Vec<(String, i64)> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (got, _) = samples(receiver, "{job=\"sim\"}");
        let missing: Vec<_> = want
            .keys()
            .filter(|k| !got.contains_key(*k))
            .cloned()
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            return missing;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn thirty_sigkills_during_maintenance_lose_and_duplicate_nothing() {
    let started = Instant::now();
    let (_sim, base) = start_targets(2, 40, 100);
    let (_receiver, rport, rdir) = start_receiver();
    let dir = tempdir("crash-campaign");
    std::fs::write(dir.join("prometheus.yml"), config(base, 2, rport, "200ms")).unwrap();
    let data = dir.join("data");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut seen = Samples::new();
    let mut committed = Samples::new();
    let mut logs = String::new();
    let kills = 30;
    for round in 0..=kills {
        let log_name = format!("run{round}.log");
        let (mut vigil, port) = start_vigil_in(&dir, &data, FLAGS, &log_name, &ready);
        // Older samples may be gone by retention (blocks go whole; a margin of two blocks).
        let keep_from = now_ms() - (RETENTION_S - 2 * BLOCK_S - 1) * 1000;
        let (now, dups) = samples(port, "{job=\"sim\"}");
        let log = || std::fs::read_to_string(dir.join(&log_name)).unwrap_or_default();
        let lost: Vec<_> = seen
            .keys()
            .filter(|k| k.1 > keep_from && !now.contains_key(*k))
            .take(3)
            .collect();
        assert!(lost.is_empty(), "round {round}: lost {lost:?}\n{}", log());
        let changed: Vec<_> = seen
            .iter()
            .filter(|(k, v)| now.get(*k).is_some_and(|n| n != *v))
            .take(3)
            .collect();
        assert!(changed.is_empty(), "round {round}: changed {changed:?}");
        assert_eq!(dups, 0, "round {round}: duplicate timestamps\n{}", log());
        if round == kills {
            // Remote write: every committed sample arrives (resends allowed).
            let missing = missing_at_receiver(rport, &committed, 30);
            assert!(
                missing.is_empty(),
                "{} of {} committed samples never reached the receiver, e.g. {:?}",
                missing.len(),
                committed.len(),
                &missing[..missing.len().min(3)]
            );
            logs += &log();
            break;
        }
        std::thread::sleep(Duration::from_millis(200 + next_rand(&mut seed) % 1000));
        seen = samples(port, "{job=\"sim\"}").0;
        committed.extend(seen.clone());
        std::thread::sleep(Duration::from_millis(next_rand(&mut seed) % 100));
        vigil.child.kill().unwrap(); // SIGKILL
        vigil.child.wait().unwrap();
        logs += &log();
        let (overlaps, quarantined) = block_problems(&data);
        assert_eq!(overlaps, 0, "round {round}: overlapping blocks on disk");
        assert_eq!(quarantined, 0, "round {round}: a block was quarantined");
    }
    // The kills landed among real maintenance, not only ingest.
    let count = |s: &str| logs.matches(s).count();
    let (heads, merges, snaps) = (
        count("Wrote block from the head"),
        count("Compacted blocks"),
        count("Wrote head snapshot"),
    );
    eprintln!(
        "{kills} kills in {:?}: {} committed samples, head compactions {heads}, block compactions {merges}, retention deletions {}, snapshots {snaps}",
        started.elapsed(),
        committed.len(),
        count("Deleting block (retention)"),
    );
    assert!(heads >= 10 && merges >= 3 && snaps >= 10, "{logs}");
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "took {:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&rdir);
}

/// Found by the campaign: a queue started without a saved position (a new data directory)
/// saved its first position only after a second; a kill before that left none, and the next
/// start began at its own newest WAL segment, so the first run's samples were never sent.
#[test]
fn remote_write_killed_before_its_first_position_save_sends_that_run_later() {
    let (_sim, base) = start_targets(1, 10, 100);
    let (_receiver, rport, rdir) = start_receiver();
    let dir = tempdir("rw-first-save");
    // Batches wait up to 5 s: the first run is killed before it sends anything.
    std::fs::write(dir.join("prometheus.yml"), config(base, 1, rport, "5s")).unwrap();
    let data = dir.join("data");
    let (mut vigil, port) = start_vigil_in(&dir, &data, &[], "run1.log", &ready);
    wait_for(Duration::from_secs(10), "a first scrape", || {
        !samples(port, "up").0.is_empty()
    });
    let first: BTreeSet<_> = samples(port, "{job=\"sim\"}").0.into_keys().collect();
    vigil.child.kill().unwrap();
    vigil.child.wait().unwrap();
    let (_vigil, _) = start_vigil_in(&dir, &data, &[], "run2.log", &ready);
    let want: Samples = first.iter().map(|k| (k.clone(), String::new())).collect();
    let missing = missing_at_receiver(rport, &want, 20);
    assert!(
        missing.is_empty(),
        "{} of {} samples of the killed first run never sent: {:?}",
        missing.len(),
        want.len(),
        &missing[..missing.len().min(3)]
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&rdir);
}
