//! The corruption matrix of issue 20, on the real binary: a data directory written by a real
//! run (1 s blocks, so it holds blocks, a head snapshot, WAL segments and `chunks_head/`), killed,
//! then one file damaged in the middle (or cut short). vigil must start, say which file and
//! where, set aside what it cannot read, serve everything else, and never panic. What happens
//! for each file is in docs/reliability.md (corruption matrix).

mod common;

use common::target::SynthTargets;
use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn ready(port: u16) -> bool {
    http_get(&format!("http://127.0.0.1:{port}/-/ready")).is_ok_and(|(s, _)| s == 200)
}

const FLAGS: &[&str] = &["--storage.tsdb.min-block-duration=1s"];

/// (series labels, timestamp ms) of every raw sample of job "sim" in the last 10 minutes.
fn samples(port: u16) -> BTreeSet<(String, i64)> {
    let (status, body) = http_get(&format!(
        "http://127.0.0.1:{port}/api/v1/query?query={}",
        enc("{job=\"sim\"}[10m]")
    ))
    .expect("vigil answers");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out = BTreeSet::new();
    for s in v["data"]["result"].as_array().into_iter().flatten() {
        for p in s["values"].as_array().into_iter().flatten() {
            let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
            out.insert((s["metric"].to_string(), t));
        }
    }
    out
}

/// Block directories in `data`: (dir, min time, max time), oldest first.
fn blocks(data: &Path) -> Vec<(PathBuf, i64, i64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(data).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.len() != 33 || name.contains('.') {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path().join("meta.json")) else {
            continue;
        };
        let m: serde_json::Value = serde_json::from_str(&text).unwrap();
        out.push((
            e.path(),
            m["minTime"].as_i64().unwrap(),
            m["maxTime"].as_i64().unwrap(),
        ));
    }
    out.sort_by_key(|b| b.1);
    out
}

fn newest(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    v.sort();
    v.pop()
}

struct Prepared {
    _targets: SynthTargets,
    dir: PathBuf,
    data: PathBuf,
    /// What was queryable just before the kill.
    seen: BTreeSet<(String, i64)>,
}

/// A real run until the data directory holds two blocks, a snapshot and a WAL segment with
/// records after it; then SIGKILL.
fn prepare(tag: &str) -> Prepared {
    let (targets, base) = start_targets(1, 20, 100);
    let dir = tempdir(tag);
    write_sim_config(&dir, &[format!("127.0.0.1:{base}")]);
    let data = dir.join("data");
    let (mut vigil, port) = start_vigil_in(&dir, &data, FLAGS, "run1.log", &ready);
    wait_for(Duration::from_secs(30), "blocks, snapshot, WAL", || {
        blocks(&data).len() >= 2
            && newest(&data, "snapshot.").is_some()
            && newest(&data.join("wal"), "0")
                .and_then(|p| std::fs::metadata(p).ok())
                .is_some_and(|m| m.len() > 2000)
    });
    let seen = samples(port);
    vigil.child.kill().unwrap();
    vigil.child.wait().unwrap();
    Prepared {
        _targets: targets,
        dir,
        data,
        seen,
    }
}

/// Overwrites `n` bytes in the middle of `path`; returns where.
fn overwrite_middle(path: &Path, n: usize) -> usize {
    let mut b = std::fs::read(path).unwrap();
    let at = b.len() / 2;
    let end = (at + n).min(b.len());
    for x in &mut b[at..end] {
        *x = b'@';
    }
    std::fs::write(path, &b).unwrap();
    at
}

/// Starts vigil on the damaged directory: it must start and not panic. Returns what it
/// serves and its log.
fn restart(p: &Prepared) -> (BTreeSet<(String, i64)>, String, Proc) {
    let (vigil, port) = start_vigil_in(&p.dir, &p.data, FLAGS, "run2.log", &ready);
    let now = samples(port);
    let log = std::fs::read_to_string(p.dir.join("run2.log")).unwrap();
    assert!(!log.contains("panicked"), "{log}");
    (now, log, vigil)
}

/// Every sample seen before the kill that `keep` selects is served again.
fn assert_served(p: &Prepared, now: &BTreeSet<(String, i64)>, keep: impl Fn(i64) -> bool) {
    let want: Vec<_> = p.seen.iter().filter(|s| keep(s.1)).collect();
    assert!(!want.is_empty());
    let lost: Vec<_> = want.iter().filter(|s| !now.contains(s)).take(3).collect();
    assert!(lost.is_empty(), "lost {} e.g. {lost:?}", lost.len());
}

fn quarantined(data: &Path) -> Vec<String> {
    std::fs::read_dir(data)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".corrupted"))
        .collect()
}

#[test]
fn wal_segment_overwritten_in_the_middle() {
    let p = prepare("corrupt-wal");
    let seg = newest(&p.data.join("wal"), "0").unwrap();
    overwrite_middle(&seg, 16);
    let end = blocks(&p.data).last().unwrap().2;
    let (now, log, _v) = restart(&p);
    assert!(log.contains("WAL corruption"), "{log}");
    let line = log.lines().find(|l| l.contains("WAL corruption")).unwrap();
    let segment: u32 = seg.file_name().unwrap().to_str().unwrap().parse().unwrap();
    assert!(line.contains(&format!("segment={segment}")), "{line}");
    assert!(line.contains("offset="), "{line}");
    // The blocks and the snapshot are intact: everything they hold is served.
    assert_served(&p, &now, |t| t < end);
    assert!(quarantined(&p.data).is_empty());
}

#[test]
fn block_index_overwritten_in_the_middle() {
    let p = prepare("corrupt-index");
    let (dir, mint, maxt) = blocks(&p.data)[0].clone();
    let index = dir.join("index");
    let len = std::fs::metadata(&index).unwrap().len();
    overwrite_middle(&index, 16);
    let (now, log, _v) = restart(&p);
    // The whole-file checksum fails: the error names the file and the checksum's offset.
    let want = format!(
        "{}: corrupt data at byte {}: index checksum mismatch",
        index.display(),
        len - 4
    );
    assert!(log.contains(&want), "no {want:?} in\n{log}");
    assert!(log.contains("moved it aside"), "{log}");
    assert_eq!(quarantined(&p.data).len(), 1);
    assert_served(&p, &now, |t| t < mint || t >= maxt);
}

#[test]
fn block_meta_json_overwritten_in_the_middle() {
    let p = prepare("corrupt-meta");
    let (dir, mint, maxt) = blocks(&p.data)[0].clone();
    let meta = dir.join("meta.json");
    // `"@"@`: invalid JSON wherever it lands (inside a string the quote ends it and `@`
    // follows; outside one, the quote or `@` cannot follow what precedes it).
    let at = overwrite_middle(&meta, 4);
    let mut raw = std::fs::read(&meta).unwrap();
    raw[at..at + 4].copy_from_slice(b"\"@\"@");
    std::fs::write(&meta, &raw).unwrap();
    let (now, log, _v) = restart(&p);
    let prefix = format!("{}: corrupt data at byte ", meta.display());
    let line = log.lines().find(|l| l.contains(&prefix)).expect(&log);
    let rest = line.split(&prefix).nth(1).unwrap();
    let byte: usize = rest[..rest.find(':').unwrap()].parse().unwrap();
    // The parser stops at the damage or after it (a broken quote can carry a string over
    // later lines), never before it and never past the file.
    let raw = std::fs::read(format!("{}.corrupted/meta.json", dir.display())).unwrap();
    assert!(
        (at..=raw.len()).contains(&byte),
        "byte {byte}, damage at {at}, file of {} bytes",
        raw.len()
    );
    assert_eq!(quarantined(&p.data).len(), 1);
    assert_served(&p, &now, |t| t < mint || t >= maxt);
}

#[test]
fn block_chunks_overwritten_in_the_middle() {
    let p = prepare("corrupt-chunks");
    let (dir, mint, maxt) = blocks(&p.data)[0].clone();
    overwrite_middle(&dir.join("chunks"), 16);
    let (now, _log, _v) = restart(&p);
    // Chunks are checked by their CRC when read, not at open: the block stays, the damaged
    // chunk's samples are left out of answers, everything else is served.
    assert!(quarantined(&p.data).is_empty());
    assert_served(&p, &now, |t| t < mint || t >= maxt);
    let in_block = p.seen.iter().filter(|s| s.1 >= mint && s.1 < maxt).count();
    let served = now.iter().filter(|s| s.1 >= mint && s.1 < maxt).count();
    assert!(
        served < in_block,
        "the damaged chunk was served: {served} of {in_block}"
    );
}

#[test]
fn chunks_head_segment_overwritten() {
    let p = prepare("corrupt-chunks-head");
    let ch = p.data.join("chunks_head");
    let seg = newest(&ch, "").unwrap_or_else(|| ch.join("000001"));
    std::fs::write(&seg, vec![b'@'; 4096]).unwrap();
    let (now, _log, _v) = restart(&p);
    // This run's head never cut a chunk, so no snapshot names the file: deleted at open, and
    // every sample still served. (A damaged chunk a snapshot names is left out of its series
    // alone: vigil-tsdb's `a_snapshot_names_chunks_head_and_survives_a_damaged_chunk`.)
    assert!(!seg.exists());
    assert_served(&p, &now, |_| true);
}

#[test]
fn snapshot_cut_short() {
    let p = prepare("corrupt-snapshot");
    let snap = newest(&p.data, "snapshot.").unwrap();
    let len = std::fs::metadata(&snap).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&snap).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let end = blocks(&p.data).last().unwrap().2;
    let (now, log, _v) = restart(&p);
    let want = format!(
        "Ignoring unusable head snapshot: {}: corrupt data at byte",
        snap.display()
    );
    assert!(log.contains(&want), "no {want:?} in\n{log}");
    // The blocks are intact; what only the snapshot held (the head before its segment) is
    // gone, what the WAL after it holds is replayed.
    assert_served(&p, &now, |t| t < end);
    assert!(!now.is_empty());
}
