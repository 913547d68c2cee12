//! The CI version of the crash campaign (issue 20; the long one is `tools/crash_campaign.py`):
//! the real binary is SIGKILLed 30 times at random moments (fixed seed) while it scrapes,
//! cuts its head into blocks, compacts blocks, applies retention, writes head snapshots and
//! sends remote write to a second vigil. A one-second block range makes maintenance run every
//! 250 ms, so kills land in the middle of it. After every restart: the start succeeded, every
//! sample that was queryable before the kill (committed, as `restart.rs` counts it) is back
//! with the same value unless retention may have dropped it, each series' timestamps strictly
//! increase, blocks on disk do not overlap and none was quarantined. At the end the receiver
//! holds every committed sample (it may have got some twice). A second test SIGKILLs
//! `vigil tsdb import` runs into a running vigil's data directory, and vigil while it loads
//! what they wrote; a killed import run again must leave every imported sample stored once.

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

/// An OpenMetrics file of `series` series × `per` samples, 100 ms apart, the last at
/// `end_ms`, labelled `batch`; and the samples as [`samples`] returns them.
fn import_batch(path: &Path, batch: u32, series: u32, per: i64, end_ms: i64) -> Samples {
    let start = (end_ms / 100 - per) * 100;
    let mut text = String::from("# TYPE crash_imported gauge\n");
    let mut want = Samples::new();
    for s in 0..series {
        let labels = serde_json::json!({
            "__name__": "crash_imported",
            "batch": batch.to_string(),
            "job": "crash_import",
            "series": s.to_string(),
        })
        .to_string();
        for i in 0..per {
            let (t, v) = (start + i * 100, i64::from(s) * 1000 + i);
            text += &format!(
                "crash_imported{{job=\"crash_import\",batch=\"{batch}\",series=\"{s}\"}} {v} {}.{:03}\n",
                t / 1000,
                t % 1000
            );
            want.insert((labels.clone(), t), v.to_string());
        }
    }
    text += "# EOF\n";
    std::fs::write(path, text).unwrap();
    want
}

/// Runs `vigil tsdb import openmetrics FILE DATA`, SIGKILLed after `kill_after` if still
/// running. Returns whether it was killed; an import that exits with an error fails the test.
fn import(file: &Path, data: &Path, kill_after: Option<Duration>) -> bool {
    let mut child = std::process::Command::new(vigil_bin())
        .args(["tsdb", "import", "openmetrics"])
        .arg(file)
        .arg(data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + kill_after.unwrap_or(Duration::from_secs(60));
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            assert!(status.success(), "import failed: {err}");
            return false;
        }
        if Instant::now() >= deadline {
            assert!(kill_after.is_some(), "import did not finish within 60 s");
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `vigil tsdb import` into a running vigil's data directory, SIGKILLed at random moments
/// (fixed seed); vigil is SIGKILLed after each import, half the time 0-600 ms after it, while
/// it loads and merges the imported block. After each restart a killed import is run again to
/// completion, as a user would. Then: what was queryable before the kill (scraped or imported)
/// is back; every sample of every finished import is served once with its value and nothing
/// else is; blocks that overlap on disk are merged within 10 s; nothing is quarantined.
#[test]
fn sigkilled_imports_leave_whole_blocks_and_a_rerun_stores_each_sample_once() {
    let started = Instant::now();
    let (_sim, base) = start_targets(1, 20, 100);
    let dir = tempdir("crash-import");
    write_sim_config(&dir, &[format!("127.0.0.1:{base}")]);
    let data = dir.join("data");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let all = "{job=~\"sim|crash_import\"}";
    let mut expected = Samples::new();
    let mut seen = Samples::new();
    let mut rerun: Option<(std::path::PathBuf, Samples)> = None;
    let mut import_kills = 0;
    let mut duration = Duration::ZERO;
    let rounds = 10;
    for round in 0..=rounds {
        let log_name = format!("run{round}.log");
        let (mut vigil, port) = start_vigil_in(&dir, &data, FLAGS, &log_name, &ready);
        let log = || std::fs::read_to_string(dir.join(&log_name)).unwrap_or_default();
        let keep_from = now_ms() - (RETENTION_S - 2 * BLOCK_S - 1) * 1000;
        let (now, dups) = samples(port, all);
        let lost: Vec<_> = seen
            .iter()
            .filter(|(k, v)| k.1 > keep_from && now.get(*k) != Some(*v))
            .take(3)
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: lost or changed {lost:?}\n{}",
            log()
        );
        assert_eq!(dups, 0, "round {round}: duplicate timestamps");
        if let Some((file, want)) = rerun.take() {
            assert!(!import(&file, &data, None));
            expected.extend(want);
        }
        check_imports(port, &data, &expected, round, &log);
        if round == rounds {
            break;
        }
        // Older than the head (5 block ranges and a second), newer than what retention drops.
        let file = dir.join(format!("import{round}.om"));
        let want = import_batch(&file, round, 100, 50, now_ms() - 5 * BLOCK_S * 1000 - 1000);
        // The first import runs to its end: how long one takes.
        let kill_after =
            (round > 0).then(|| duration.mul_f64((next_rand(&mut seed) % 1300) as f64 / 1000.0));
        let t = Instant::now();
        if import(&file, &data, kill_after) {
            import_kills += 1;
            rerun = Some((file, want));
        } else {
            duration = t.elapsed();
            expected.extend(want);
        }
        // Half the time while vigil loads the new block (maintenance every 250 ms).
        let wait = if next_rand(&mut seed).is_multiple_of(2) {
            0
        } else {
            300
        };
        std::thread::sleep(Duration::from_millis(wait + next_rand(&mut seed) % 600));
        seen = samples(port, all).0;
        vigil.child.kill().unwrap(); // SIGKILL
        vigil.child.wait().unwrap();
        let (_, quarantined) = block_problems(&data);
        assert_eq!(
            quarantined,
            0,
            "round {round}: a block was quarantined\n{}",
            log()
        );
    }
    eprintln!(
        "{rounds} vigil kills, {import_kills} import kills in {:?}, {} imported samples",
        started.elapsed(),
        expected.len()
    );
    assert!(import_kills >= 3, "only {import_kills} imports killed");
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "took {:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Within 10 s vigil serves every imported sample of `expected` (those retention keeps) with
/// its value, none twice and nothing else, and has merged blocks that overlap; nothing is
/// quarantined.
fn check_imports(port: u16, data: &Path, expected: &Samples, round: u32, log: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let keep_from = now_ms() - (RETENTION_S - 2 * BLOCK_S - 1) * 1000;
        let (got, dups) = samples(port, "{job=\"crash_import\"}");
        let missing = expected
            .iter()
            .filter(|(k, v)| k.1 > keep_from && got.get(*k) != Some(*v))
            .count();
        let extra = got.keys().filter(|k| !expected.contains_key(*k)).count();
        let (overlaps, quarantined) = block_problems(data);
        assert_eq!(quarantined, 0, "round {round}: a block was quarantined");
        assert_eq!(extra, 0, "round {round}: samples no import wrote");
        assert_eq!(dups, 0, "round {round}: duplicate timestamps");
        if missing == 0 && overlaps == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "round {round}: {missing} imported samples missing or changed, {overlaps} overlapping blocks after 10 s\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
