//! Tests of the whole engine in a data directory: restarts, crashes, and a fault-injecting
//! pass that truncates and garbles every byte of the files it wrote.

use crate::wal::{self, segment_name};
use crate::{Tsdb, TsdbOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use vigil_model::{Appendable, Labels, Matcher, Queryable, Sample, SelectHints, StorageError};

/// A full disk under the WAL (issue 20).
mod wal_faults;

/// Disk faults under every durable write: the model-based property test (issue 20).
mod disk_faults;

fn tempdir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "vigil-tsdb-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn opts() -> TsdbOptions {
    TsdbOptions {
        retention_ms: 0,
        ..Default::default()
    }
}

fn series(i: usize) -> Labels {
    Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())])
}

/// Commits `batches` batches of `per` series each, at t = batch * 1000.
fn ingest(db: &Tsdb, from: i64, batches: i64, per: usize) {
    for b in from..from + batches {
        let mut a = db.appender();
        for i in 0..per {
            a.append(None, &series(i), b * 1000, (b * 10 + i as i64) as f64)
                .unwrap();
        }
        a.commit().unwrap();
    }
}

/// Every sample, as (series index, t, v) sorted.
fn dump(db: &impl Queryable) -> Vec<(String, Sample)> {
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let set = q
        .select(
            &[Matcher::equal("__name__", "m")],
            &SelectHints {
                start: i64::MIN,
                end: i64::MAX,
            },
        )
        .unwrap();
    let mut out = Vec::new();
    for s in set {
        let i = s.labels.get("i").unwrap_or("").to_string();
        out.extend(s.samples.map(|x| (i.clone(), x)));
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

#[test]
fn clean_restart_loads_the_snapshot_and_replays_nothing() {
    let dir = tempdir("clean");
    let db = Tsdb::open(&dir, opts()).unwrap();
    ingest(&db, 0, 300, 20);
    let before = dump(&db);
    assert_eq!(before.len(), 6000);
    db.close().unwrap();
    let mut a = db.appender();
    a.append(None, &series(0), 1_000_000, 1.0).unwrap();
    assert_eq!(a.commit(), Err(StorageError::Closed));
    drop(db);

    let db = Tsdb::open(&dir, opts()).unwrap();
    assert_eq!(db.stats().replayed_samples.load(Ordering::Relaxed), 0);
    assert_eq!(dump(&db), before);
    assert_eq!(db.head().num_series(), 20);
    // Appending continues the resumed open chunks.
    ingest(&db, 300, 10, 20);
    assert_eq!(dump(&db).len(), 6200);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Drops `db` without closing it (as after SIGKILL: only the WAL is there), opens `dir`
/// again and checks that every sample came back and no record was found corrupt.
fn crash_and_reopen(db: Tsdb, dir: &Path) -> Tsdb {
    let before = dump(&db);
    drop(db);
    let db = Tsdb::open(dir, opts()).unwrap();
    assert_eq!(dump(&db), before);
    assert_eq!(db.stats().wal_corruptions.load(Ordering::Relaxed), 0);
    db
}

#[test]
fn crash_restart_replays_the_wal() {
    let dir = tempdir("crash");
    let db = Tsdb::open(&dir, opts()).unwrap();
    ingest(&db, 0, 50, 10);
    let db = crash_and_reopen(db, &dir);
    assert_eq!(db.stats().replayed_samples.load(Ordering::Relaxed), 500);
    // And again, with a second segment from the second run.
    ingest(&db, 50, 5, 10);
    let db = crash_and_reopen(db, &dir);
    // Both runs' segments were replayed (`/api/v1/status/walreplay`).
    let st = db.stats();
    assert_eq!(
        (
            st.replayed_first_segment.load(Ordering::Relaxed),
            st.replayed_last_segment.load(Ordering::Relaxed)
        ),
        (0, 1)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A WAL written before integral values became varints (`SAMPLES` records, every value in 8
/// raw bytes) replays as before, next to the current records in a later segment.
#[test]
fn wal_of_the_older_samples_record_replays() {
    use crate::wal::record;
    let dir = tempdir("oldwal");
    let mut buf = Vec::new();
    for i in 0..3u64 {
        let start = record::begin(&mut buf, record::SERIES);
        let name = i.to_string();
        record::put_series(
            &mut buf,
            i + 1,
            [("__name__", "m"), ("i", name.as_str())].into_iter(),
        );
        record::finish(&mut buf, start);
    }
    let old: Vec<(u64, i64, f64)> = (0..30)
        .map(|k| (k % 3 + 1, (k / 3) as i64 * 1000, k as f64 * 1.5))
        .collect();
    let start = record::begin(&mut buf, record::SAMPLES);
    record::put_samples(&mut buf, old.iter().copied());
    record::finish(&mut buf, start);
    std::fs::create_dir_all(dir.join("wal")).unwrap();
    std::fs::write(dir.join("wal").join(segment_name(0)), &buf).unwrap();
    let db = Tsdb::open(&dir, opts()).unwrap();
    assert_eq!(db.stats().replayed_samples.load(Ordering::Relaxed), 30);
    assert_eq!(db.stats().wal_corruptions.load(Ordering::Relaxed), 0);
    let mut want: Vec<(String, Sample)> = old
        .iter()
        .map(|&(r, t, v)| ((r - 1).to_string(), Sample { t, v }))
        .collect();
    want.sort_by(|a, b| (&a.0, a.1.t).cmp(&(&b.0, b.1.t)));
    assert_eq!(dump(&db), want);
    // New samples go into a new segment in the current form; both replay after a crash.
    ingest(&db, 10, 2, 3);
    crash_and_reopen(db, &dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn checkpoint_drops_old_segments_and_collected_series() {
    let dir = tempdir("checkpoint");
    let db = Tsdb::open(
        &dir,
        TsdbOptions {
            retention_ms: 10_000,
            checkpoint_after_segments: 0, // every maintain
            ..opts()
        },
    )
    .unwrap();
    let mut a = db.appender();
    a.append(None, &Labels::from_pairs([("__name__", "old")]), 0, 1.0)
        .unwrap();
    a.commit().unwrap();
    ingest(&db, 20, 5, 3);
    db.maintain().unwrap(); // retention drops `old`, then a checkpoint
    assert_eq!(db.head().num_series(), 3);
    assert_eq!(db.stats().checkpoints.load(Ordering::Relaxed), 1);
    let segs = wal::list_segments(&dir.join("wal")).unwrap();
    assert_eq!(segs, [1], "older segments removed");
    let before = dump(&db);
    drop(db);
    let db = Tsdb::open(&dir, opts()).unwrap();
    assert_eq!(db.head().num_series(), 3);
    assert_eq!(dump(&db), before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes a small WAL of `batches` commits and returns the directory and the samples each
/// commit added, in order.
fn small_wal(tag: &str) -> (PathBuf, Vec<(String, Sample)>) {
    let dir = tempdir(tag);
    let db = Tsdb::open(&dir, opts()).unwrap();
    ingest(&db, 0, 4, 3);
    let all = dump(&db);
    drop(db);
    (dir, all)
}

fn is_prefix_per_series(got: &[(String, Sample)], all: &[(String, Sample)]) -> bool {
    // Each series' samples must be a prefix of what was committed for it.
    let mut by: std::collections::BTreeMap<&str, Vec<&Sample>> = Default::default();
    for (i, s) in all {
        by.entry(i).or_default().push(s);
    }
    let mut got_by: std::collections::BTreeMap<&str, Vec<&Sample>> = Default::default();
    for (i, s) in got {
        got_by.entry(i).or_default().push(s);
    }
    got_by.iter().all(|(i, g)| {
        by.get(i)
            .is_some_and(|w| w.len() >= g.len() && w[..g.len()] == g[..])
    })
}

#[test]
fn wal_truncated_at_every_offset_opens_with_a_committed_prefix() {
    let (dir, all) = small_wal("trunc");
    let seg = dir.join("wal").join(segment_name(0));
    let bytes = std::fs::read(&seg).unwrap();
    let mut last_count = 0;
    for cut in 0..=bytes.len() {
        let d = tempdir("trunc-case");
        copy_dir(&dir, &d);
        std::fs::write(d.join("wal").join(segment_name(0)), &bytes[..cut]).unwrap();
        let db = Tsdb::open(&d, opts()).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        let got = dump(&db);
        assert!(is_prefix_per_series(&got, &all), "cut {cut}");
        assert!(got.len() >= last_count, "cut {cut}: lost samples");
        last_count = got.len();
        // The repaired log keeps working and survives another restart.
        ingest(&db, 10, 1, 3);
        let after = dump(&db);
        drop(db);
        let db = Tsdb::open(&d, opts()).unwrap();
        assert_eq!(dump(&db), after, "cut {cut}");
        assert_eq!(db.stats().wal_corruptions.load(Ordering::Relaxed), 0);
        drop(db);
        let _ = std::fs::remove_dir_all(&d);
    }
    assert_eq!(last_count, all.len());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wal_with_a_flipped_byte_anywhere_opens_and_reports_it() {
    let (dir, all) = small_wal("flip");
    let seg = dir.join("wal").join(segment_name(0));
    let bytes = std::fs::read(&seg).unwrap();
    for pos in 0..bytes.len() {
        let d = tempdir("flip-case");
        copy_dir(&dir, &d);
        let mut b = bytes.clone();
        b[pos] ^= 0x5a;
        std::fs::write(d.join("wal").join(segment_name(0)), &b).unwrap();
        let db = Tsdb::open(&d, opts()).unwrap_or_else(|e| panic!("flip {pos}: {e}"));
        let got = dump(&db);
        assert!(is_prefix_per_series(&got, &all), "flip {pos}");
        assert!(got.len() < all.len(), "flip {pos} went unnoticed");
        assert!(
            db.stats().wal_corruptions.load(Ordering::Relaxed) >= 1,
            "flip {pos}"
        );
        drop(db);
        let _ = std::fs::remove_dir_all(&d);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_snapshot_is_skipped_not_fatal() {
    let dir = tempdir("badsnap");
    let db = Tsdb::open(&dir, opts()).unwrap();
    ingest(&db, 0, 10, 3);
    db.close().unwrap();
    drop(db);
    let snap = crate::head::snapshot::list_snapshots(&dir).unwrap()[0];
    let path = crate::head::snapshot::snapshot_path(&dir, snap);
    let mut b = std::fs::read(&path).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0xff;
    std::fs::write(&path, &b).unwrap();
    let db = Tsdb::open(&dir, opts()).unwrap();
    assert_eq!(db.stats().wal_corruptions.load(Ordering::Relaxed), 1);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Closes `db`, rewrites its `blocks` in the format before `VGIDX003` and reopens it; every
/// block must then be of meta.json `version` with an index starting with `magic`.
fn reopen_downgraded(
    dir: &Path,
    db: Tsdb,
    blocks: Vec<std::sync::Arc<crate::Block>>,
    version: u32,
    magic: &[u8],
) -> Tsdb {
    db.close().unwrap();
    let dirs: Vec<PathBuf> = blocks.iter().map(|b| b.dir().to_path_buf()).collect();
    drop((blocks, db));
    for d in &dirs {
        crate::block::downgrade(d);
    }
    let db = Tsdb::open(dir, block_opts()).unwrap();
    let blocks = db.blocks();
    assert_eq!(blocks.len(), dirs.len());
    for b in &blocks {
        assert_eq!(b.meta().version, version);
        let ix = std::fs::read(b.dir().join("index")).unwrap();
        assert_eq!(&ix[..8], magic);
    }
    db
}

fn block_opts() -> TsdbOptions {
    TsdbOptions {
        retention_ms: 0,
        block_range_ms: 1000,
        ..Default::default()
    }
}

/// `batches` commits at t = 0, 100, 200, … for `per` series.
fn ingest_fine(db: &Tsdb, batches: i64, per: usize) {
    for b in 0..batches {
        let mut a = db.appender();
        for i in 0..per {
            a.append(None, &series(i), b * 100, (b + i as i64) as f64)
                .unwrap();
        }
        a.commit().unwrap();
    }
}

#[test]
fn head_is_cut_into_blocks_and_reads_merge_them() {
    let dir = tempdir("blocks");
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    ingest_fine(&db, 100, 4); // t in [0, 9900]
    let before = dump(&db);
    assert_eq!(before.len(), 400);
    db.maintain().unwrap();
    // Nine 1 s blocks were cut, then compacted into one 9 s block once the head moved past.
    let blocks = db.blocks();
    assert_eq!(blocks.len(), 1);
    assert_eq!(
        (blocks[0].meta().min_time, blocks[0].meta().max_time),
        (0, 8901)
    );
    assert_eq!(db.stats().compactions.load(Ordering::Relaxed), 9 + 3 + 1);
    assert_eq!(dump(&db), before, "head + blocks read as before");
    assert!(db.head().min_time().unwrap() >= 9000);
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    assert_eq!(q.label_values("i", &[]).unwrap(), ["0", "1", "2", "3"]);
    drop(q);
    // Crash restart: blocks plus the WAL (whose old samples the blocks already hold).
    drop(db);
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    assert_eq!(dump(&db), before);
    assert_eq!(
        db.head().stats.out_of_order_samples.load(Ordering::Relaxed),
        0
    );
    // Clean restart too.
    db.close().unwrap();
    drop(db);
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    assert_eq!(dump(&db), before);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn old_format_blocks_open_and_answer_as_before() {
    let dir = tempdir("oldidx");
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    ingest_fine(&db, 100, 4);
    db.maintain().unwrap();
    let answers = |db: &Tsdb| {
        let q = db.querier(i64::MIN, i64::MAX).unwrap();
        let m = Matcher::equal("__name__", "m");
        let hints = SelectHints {
            start: i64::MIN,
            end: i64::MAX,
        };
        let picked: Vec<(Labels, usize)> = q
            .select(&[m.clone(), Matcher::regex("i", "1|3").unwrap()], &hints)
            .unwrap()
            .map(|s| (s.labels, s.samples.count()))
            .collect();
        (
            dump(db),
            picked,
            q.label_names(&[]).unwrap(),
            q.label_values("i", &[]).unwrap(),
            q.label_values("i", &[m, Matcher::not_equal("i", "2")])
                .unwrap(),
        )
    };
    let before = answers(&db);
    let blocks = db.blocks();
    assert!(!blocks.is_empty() && blocks.iter().all(|b| b.meta().version == 3));
    let db = reopen_downgraded(&dir, db, blocks, 1, crate::block::index::MAGIC);
    assert_eq!(answers(&db), before);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn blocks_are_compacted_into_larger_ones() {
    let dir = tempdir("compact");
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    ingest_fine(&db, 200, 3); // 20 s of data in 1 s blocks
    let before = dump(&db);
    db.maintain().unwrap();
    let blocks = db.blocks();
    assert!(
        blocks.iter().any(|b| b.meta().compaction.level >= 2),
        "no compacted block: {:?}",
        blocks.iter().map(|b| b.meta()).collect::<Vec<_>>()
    );
    assert!(db.stats().compactions.load(Ordering::Relaxed) > blocks.len() as u64);
    assert_eq!(dump(&db), before);
    let dirs = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            crate::block::writer::is_block_dir(e.as_ref().unwrap().file_name().to_str().unwrap())
        })
        .count();
    assert_eq!(dirs, blocks.len(), "compacted sources deleted");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn retention_deletes_old_blocks_by_time_and_size() {
    let dir = tempdir("retention");
    let db = Tsdb::open(
        &dir,
        TsdbOptions {
            retention_ms: 5000,
            ..block_opts()
        },
    )
    .unwrap();
    ingest_fine(&db, 200, 3);
    db.maintain().unwrap();
    let oldest = db.blocks().first().map(|b| b.meta().min_time).unwrap();
    assert!(
        oldest >= 19_900 - 5000 - 3000,
        "oldest block starts at {oldest}"
    );
    assert!(db.stats().time_retentions.load(Ordering::Relaxed) > 0);
    drop(db);

    let db = Tsdb::open(
        &dir,
        TsdbOptions {
            retention_bytes: 1,
            ..block_opts()
        },
    )
    .unwrap();
    db.maintain().unwrap();
    assert!(db.blocks().is_empty());
    assert!(db.stats().size_retentions.load(Ordering::Relaxed) > 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn damaged_block_files_are_skipped_or_read_partially() {
    let dir = tempdir("badblock");
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    ingest_fine(&db, 30, 4); // two 1 s blocks and a head
    db.maintain().unwrap();
    db.close().unwrap();
    let blocks = db.blocks();
    drop(db);
    assert_eq!(blocks.len(), 2);
    // A flipped index byte: the block is skipped and counted; the others still serve.
    let idx = blocks[0].dir().join("index");
    let mut b = std::fs::read(&idx).unwrap();
    b[10] ^= 0xff;
    std::fs::write(&idx, &b).unwrap();
    // A flipped chunk byte in another block: that chunk's samples are lost, not the query.
    let ch = blocks[1].dir().join("chunks");
    let mut c = std::fs::read(&ch).unwrap();
    let mid = c.len() / 2;
    c[mid] ^= 0xff;
    std::fs::write(&ch, &c).unwrap();
    // A truncated meta.json in a copy: skipped too.
    drop(blocks);
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    assert_eq!(db.stats().block_corruptions.load(Ordering::Relaxed), 1);
    let damaged = crate::chunk::corrupt_chunks_total();
    let got = dump(&db);
    assert!(got.len() >= 40 && got.len() < 120, "{}", got.len());
    // The damaged chunk is counted (the counter is process-wide: other tests may add to it).
    assert!(crate::chunk::corrupt_chunks_total() > damaged);
    // The unreadable block was moved aside, not left to fail every reload.
    let mut aside = blocks_dir_name(&idx);
    aside.push_str(crate::db::QUARANTINE_SUFFIX);
    assert!(dir.join(&aside).join("index").exists(), "{aside} missing");
    assert_eq!(db.blocks().len(), 1);
    db.maintain().unwrap();
    assert_eq!(db.stats().block_corruptions.load(Ordering::Relaxed), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The block directory's name of a file inside it.
fn blocks_dir_name(file: &Path) -> String {
    file.parent()
        .and_then(|d| d.file_name())
        .and_then(|n| n.to_str())
        .unwrap()
        .to_string()
}

#[test]
fn a_block_with_a_damaged_meta_json_is_moved_aside_and_the_rest_served() {
    let dir = tempdir("badmeta");
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    ingest_fine(&db, 30, 4);
    db.maintain().unwrap();
    db.close().unwrap();
    let before = dump(&db);
    let blocks = db.blocks();
    drop(db);
    let meta = blocks[1].dir().join("meta.json");
    let n = blocks[1].meta().stats.num_samples as usize;
    let mut raw = std::fs::read(&meta).unwrap();
    raw.truncate(raw.len() / 2);
    std::fs::write(&meta, &raw).unwrap();
    drop(blocks);
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    assert_eq!(db.stats().block_corruptions.load(Ordering::Relaxed), 1);
    assert_eq!(dump(&db).len(), before.len() - n);
    let mut aside = blocks_dir_name(&meta);
    aside.push_str(crate::db::QUARANTINE_SUFFIX);
    assert!(dir.join(aside).is_dir());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn half_written_block_is_removed_at_open() {
    let dir = tempdir("tmpblock");
    let tmp = dir.join(format!("{}.tmp", crate::block::writer::new_block_id(0)));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("chunks"), b"VGCHK001partial").unwrap();
    let db = Tsdb::open(&dir, opts()).unwrap();
    assert!(!tmp.exists());
    assert!(db.blocks().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A crash after a compacted block was renamed into place but before its sources were deleted
/// left both, holding the same samples twice (reads merged them, the disk and
/// `--storage.tsdb.retention.size` counted them twice): the next open deletes the sources.
#[test]
fn crash_between_block_compaction_and_source_deletion_leaves_no_duplicate_blocks() {
    let dir = tempdir("merge-crash");
    let saved = tempdir("merge-crash-saved");
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    ingest_fine(&db, 30, 4); // t in [0, 2900]: 1 s blocks, no merge yet
    db.maintain().unwrap();
    let sources = db.blocks();
    assert!(sources.len() >= 2, "{}", sources.len());
    for b in &sources {
        copy_dir(b.dir(), &saved.join(b.dir().file_name().unwrap()));
    }
    // More samples: the head moves past the first 3 s window, whose blocks are merged.
    let mut a = db.appender();
    for b in 30..50 {
        for i in 0..4 {
            a.append(None, &series(i), b * 100, (b + i as i64) as f64)
                .unwrap();
        }
    }
    a.commit().unwrap();
    db.maintain().unwrap();
    assert!(
        db.blocks().iter().any(|b| b.meta().compaction.level == 2),
        "no merge happened"
    );
    let before = dump(&db);
    drop(sources);
    drop(db); // a crash: no close
    // As if the crash came before the sources were deleted.
    for e in std::fs::read_dir(&saved).unwrap().flatten() {
        copy_dir(&e.path(), &dir.join(e.file_name()));
    }
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    let blocks = db.blocks();
    for w in blocks.windows(2) {
        assert!(
            w[1].meta().min_time >= w[0].meta().max_time,
            "overlapping blocks {:?} {:?}",
            w[0].meta(),
            w[1].meta()
        );
    }
    for e in std::fs::read_dir(&saved).unwrap().flatten() {
        assert!(!dir.join(e.file_name()).exists(), "source left behind");
    }
    assert_eq!(dump(&db), before);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&saved);
}

/// A crash in the middle of deleting a block (compaction's sources, retention) left a block
/// directory without some of its files, which the next open found unreadable and quarantined
/// as corrupt. Blocks are renamed to `<ulid>.deleting` first; the next open finishes that.
#[test]
fn crash_while_deleting_a_block_leaves_nothing_to_quarantine() {
    let dir = tempdir("delete-crash");
    let half = dir.join(format!(
        "{}.deleting",
        crate::block::writer::new_block_id(0)
    ));
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(half.join("index"), b"left over").unwrap();
    let db = Tsdb::open(&dir, opts()).unwrap();
    assert!(!half.exists());
    assert_eq!(db.stats().block_corruptions.load(Ordering::Relaxed), 0);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        !names.iter().any(|n| n.ends_with(".corrupted")),
        "{names:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `vigil tsdb import` writes each block as `<ulid>.tmp` and renames it into place, into the
/// data directory of a running vigil. That vigil's maintenance pass (every 250 ms with short
/// blocks) reloaded blocks by the same code as the open, which removes `.tmp` leftovers: it
/// could delete a block the import was still writing, failing the import. Only the open
/// removes them now.
#[test]
fn reload_leaves_alone_a_block_an_import_is_still_writing() {
    let dir = tempdir("import-tmp");
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    let tmp = dir.join(format!("{}.tmp", crate::block::writer::new_block_id(0)));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("chunks"), b"being written").unwrap();
    assert_eq!(db.reload_blocks().unwrap(), 0);
    db.maintain().unwrap();
    assert!(
        tmp.join("chunks").exists(),
        "a running TSDB removed an import's block"
    );
    drop(db); // as if the import was killed: the next open removes what it left
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    assert!(!tmp.exists());
    assert_eq!(db.stats().block_corruptions.load(Ordering::Relaxed), 0);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An import killed after it wrote a block, run again (as a user does), writes the same
/// samples in a second block; and imported blocks overlap the blocks cut from the head in
/// time. Only blocks inside one aligned compaction window were merged, and with a retention
/// the windows stop at a tenth of it, so a block that straddles a window edge stayed: the same
/// samples stored twice for as long as retention kept them (reads merged them; the disk and
/// `--storage.tsdb.retention.size` counted them twice). Overlapping blocks are merged now.
#[test]
fn an_import_run_again_after_a_kill_is_stored_once() {
    let dir = tempdir("import-twice");
    // 30 s retention: compaction windows of 3 s only.
    let opts = || TsdbOptions {
        retention_ms: 30_000,
        ..block_opts()
    };
    let db = Tsdb::open(&dir, opts()).unwrap();
    ingest_fine(&db, 60, 2); // t in [0, 5900]
    db.maintain().unwrap();
    assert!(db.blocks().len() >= 3, "{}", db.blocks().len());
    // Imported samples in [2000, 3900]: across the 3 s window edge.
    let mut body = String::new();
    for k in 20..40 {
        body += &format!("m{{i=\"imp\"}} {k} {}.{}\n", k / 10, k % 10);
    }
    body += "# EOF\n";
    for _ in 0..2 {
        let rep = crate::import::import_openmetrics(
            body.as_bytes(),
            &dir,
            2 * 3600 * 1000,
            &mut |_, _, _| {},
        )
        .unwrap();
        assert_eq!(rep.blocks.len(), 1);
    }
    db.maintain().unwrap();
    let blocks = db.blocks();
    for w in blocks.windows(2) {
        assert!(
            w[1].meta().min_time >= w[0].meta().max_time,
            "overlapping blocks {:?} {:?}",
            w[0].meta(),
            w[1].meta()
        );
    }
    let on_disk: u64 = blocks.iter().map(|b| b.meta().stats.num_samples).sum();
    let got = dump(&db);
    let imported: Vec<_> = got.iter().filter(|(i, _)| i == "imp").collect();
    assert_eq!(imported.len(), 20);
    for (k, (_, s)) in (20..40).zip(&imported) {
        assert_eq!((s.t, s.v), (k * 100, k as f64));
    }
    // Every sample once on disk: the blocks hold what reads return, less the head's part.
    let in_head = got
        .iter()
        .filter(|(_, s)| s.t >= db.head().min_valid_time())
        .count();
    assert_eq!(on_disk as usize + in_head, got.len());
    drop(blocks);
    drop(db);
    // And after a restart.
    let db = Tsdb::open(&dir, opts()).unwrap();
    assert_eq!(dump(&db), got);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Found by the crash campaign with imports (its check after a restart saw the samples of one
/// block range missing, and back at the next query): a querier takes the block list when it
/// opens and reads the head lazily, so one opened before a head cut loaded its new block, and
/// read after the cut dropped those samples from the head, saw them nowhere. A cut now waits
/// for the queriers opened before it loaded the block.
#[test]
fn a_query_open_while_the_head_is_cut_into_a_block_sees_every_sample() {
    let dir = tempdir("cut-under-query");
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    ingest_fine(&db, 30, 4); // t in [0, 2900]: a cut of [0, 1000) is due
    let want = dump(&db);
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    std::thread::scope(|scope| {
        let cut = scope.spawn(|| db.maintain().unwrap());
        // The cut has had time to load its block (and, before the fix, to drop the samples
        // from the head); now the querier reads.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let set = q
            .select(
                &[Matcher::equal("__name__", "m")],
                &SelectHints {
                    start: i64::MIN,
                    end: i64::MAX,
                },
            )
            .unwrap();
        let n: usize = set.map(|s| s.samples.count()).sum();
        assert_eq!(
            n,
            want.len(),
            "samples missing from a query open during a head cut"
        );
        drop(q);
        cut.join().unwrap();
    });
    assert!(!db.blocks().is_empty(), "no block was cut");
    assert_eq!(dump(&db), want);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Measurement, run by hand in release mode: `VIGIL_REPLAY_SERIES=1000000 cargo test -p
/// vigil-tsdb --release measure_replay -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_replay() {
    let n: usize = std::env::var("VIGIL_REPLAY_SERIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let rounds = 10;
    let dir = tempdir("measure-replay");
    let db = Tsdb::open(&dir, opts()).unwrap();
    let labels: Vec<Labels> = (0..n)
        .map(|i| {
            Labels::from_pairs([
                ("__name__", format!("metric_{}", i % 100)),
                ("instance", format!("host-{}:9100", i / 1000)),
                ("job", "node".to_string()),
                ("series", i.to_string()),
            ])
        })
        .collect();
    let mut refs: Vec<Option<u64>> = vec![None; n];
    let rss = || {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 1024
    };
    let rss_before = rss();
    let start = std::time::Instant::now();
    let mut steady = std::time::Duration::ZERO;
    for r in 0..rounds {
        let round_start = std::time::Instant::now();
        let mut a = db.appender();
        for (i, l) in labels.iter().enumerate() {
            let t = 1_700_000_000_000 + r * 15_000 + (i % 7) as i64;
            refs[i] = Some(
                a.append(refs[i], l, t, (r * 3 + i as i64 % 11) as f64)
                    .unwrap(),
            );
        }
        a.commit().unwrap();
        if r > 0 {
            steady += round_start.elapsed();
        }
    }
    let ingest = start.elapsed();
    let rss_per_series = rss().saturating_sub(rss_before) as f64 / n as f64;
    let wal_bytes: u64 = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    drop(db);
    let start = std::time::Instant::now();
    let db = Tsdb::open(&dir, opts()).unwrap();
    let replay = start.elapsed();
    assert_eq!(db.head().num_series(), n);
    db.close().unwrap();
    drop(db);
    let start = std::time::Instant::now();
    let db = Tsdb::open(&dir, opts()).unwrap();
    let snap = start.elapsed();
    assert_eq!(db.head().num_series(), n);
    println!(
        "{n} series x {rounds} samples: ingest {ingest:.1?} ({:.2} µs/sample with series \
         creation, {:.3} µs/sample for known series), head RSS \
         {rss_per_series:.0} bytes/series, WAL {wal_bytes} bytes, crash replay {replay:.1?}, \
         snapshot restart {snap:.1?}",
        ingest.as_secs_f64() * 1e6 / (n as f64 * rounds as f64),
        steady.as_secs_f64() * 1e6 / (n as f64 * (rounds - 1) as f64)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn delete_series_removes_samples_from_head_and_blocks_and_survives_restarts() {
    let dir = tempdir("delete");
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    ingest_fine(&db, 100, 4); // t in [0, 9900]
    db.maintain().unwrap();
    assert!(!db.blocks().is_empty());
    let before = dump(&db);
    let sel_1 = vec![
        Matcher::equal("__name__", "m"),
        Matcher::regex("i", "1|2").unwrap(),
    ];
    // Spans the compacted block and the head.
    let d = db.delete_series(&[sel_1], 500, 9500).unwrap();
    assert_eq!(d.blocks_rewritten, 1);
    // At least t = 9000..=9500 of two series (the head may still hold older samples that
    // blocks already serve; those go too).
    assert!(d.head_samples >= 2 * 6, "{d:?}");
    // All of series 3, everywhere.
    db.delete_series(&[vec![Matcher::equal("i", "3")]], i64::MIN, i64::MAX)
        .unwrap();
    let want: Vec<_> = before
        .iter()
        .filter(|(i, s)| match i.as_str() {
            "1" | "2" => s.t < 500 || s.t > 9500,
            "3" => false,
            _ => true,
        })
        .cloned()
        .collect();
    assert_eq!(dump(&db), want);
    // A deletion matching nothing changes nothing.
    let none = db
        .delete_series(&[vec![Matcher::equal("i", "9")]], 0, 10_000)
        .unwrap();
    assert_eq!(none, crate::Deleted::default());
    // Crash restart: the WAL's tombstones record repeats the head deletion.
    drop(db);
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    assert_eq!(dump(&db), want);
    // Clean restart: the snapshot holds the head as it was after the deletion.
    db.close().unwrap();
    drop(db);
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    assert_eq!(dump(&db), want);
    // Appends go on after a deletion of the newest samples.
    let mut a = db.appender();
    a.append(None, &series(1), 10_000, 1.0).unwrap();
    a.commit().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_data_directory_is_opened_by_one_tsdb_at_a_time() {
    let dir = tempdir("lock");
    let db = Tsdb::open(&dir, opts()).unwrap();
    match Tsdb::open(&dir, opts()) {
        Err(crate::TsdbError::Locked { path }) => assert_eq!(path, dir.join("lock")),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a second open of a locked directory succeeded"),
    }
    // Dropped (as when the process dies) or closed, the lock is free again.
    drop(db);
    let db = Tsdb::open(&dir, opts()).unwrap();
    db.close().unwrap();
    drop(db);
    Tsdb::open(&dir, opts()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

mod hist;

/// Closed head chunks moved to `chunks_head/` read back the same, survive a snapshot and a
/// clean or crash restart (the snapshot names them where they are), are compacted into blocks
/// from disk, and their segments go once the head has moved past them and a later snapshot
/// is durable.
#[test]
fn closed_head_chunks_move_to_disk_and_read_back() {
    let dir = tempdir("chunks-head");
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    // 600 samples per series, 10 ms apart: five closed chunks each and an open one.
    for b in 0..600 {
        let mut a = db.appender();
        for i in 0..20 {
            let v = if i % 2 == 0 {
                (b * 3 + i as i64) as f64
            } else {
                ((b as f64) * 0.37 + i as f64).sin() * 1e3
            };
            a.append(None, &series(i), b * 10, v).unwrap();
        }
        a.commit().unwrap();
    }
    let before = dump(&db);
    // Cut chunks went to disk as they were cut (the last one may still be in the tail).
    let on_disk = db.chunks_head_bytes();
    assert!(on_disk > 0);
    db.offload_chunks();
    {
        let head = db.head();
        let s = head.all_series();
        let d = s[0].data.lock();
        assert_eq!(d.full.len(), 4, "chunks of 120 samples: four closed");
        assert!(
            d.full
                .iter()
                .all(|c| matches!(c.data, crate::head::series::FloatChunkData::Disk(_)))
        );
    }
    assert_eq!(dump(&db), before, "read back from disk");
    // A second pass has nothing to move.
    db.offload_chunks();
    assert_eq!(db.chunks_head_bytes(), on_disk);

    // A snapshot names them; a clean restart loads it and adopts the segment.
    db.close().unwrap();
    drop(db);
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    assert_eq!(dump(&db), before);
    db.offload_chunks();
    assert_eq!(dump(&db), before);
    // Crash: the snapshot names the chunks, the WAL holds the rest; segments it does not
    // name are deleted at open.
    drop(db);
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    assert!(db.chunks_head_bytes() > 0 && db.chunks_head_bytes() <= on_disk);
    assert_eq!(
        std::fs::read_dir(dir.join("chunks_head")).unwrap().count(),
        1,
        "only the segment the snapshot names is kept"
    );
    assert_eq!(dump(&db), before);
    db.offload_chunks();
    // Compaction reads the chunks from disk into blocks; the head moves on and the segment
    // holding only older chunks is deleted.
    let mut a = db.appender();
    for i in 0..20 {
        a.append(None, &series(i), 6000 + 2500, 1.0).unwrap();
    }
    a.commit().unwrap();
    let all = dump(&db);
    db.maintain().unwrap();
    assert!(!db.blocks().is_empty());
    assert_eq!(dump(&db), all, "blocks + head read as before");
    assert!(
        db.chunks_head_bytes() < on_disk,
        "{} of {on_disk} bytes left",
        db.chunks_head_bytes()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A head snapshot names closed chunks in `chunks_head/` instead of copying them: the data
/// directory holds each once. A chunk damaged there after the snapshot is left out of its
/// series at the next start (counted, warned with the file and offset); every other sample
/// loads, and the segments the snapshot does not name are gone.
#[test]
fn a_snapshot_names_chunks_head_and_survives_a_damaged_chunk() {
    let dir = tempdir("chunks-named");
    let db = Tsdb::open(&dir, TsdbOptions::default()).unwrap();
    // 300 samples a series of noisy values: two closed chunks each and an open one.
    for b in 0..300i64 {
        let mut a = db.appender();
        for i in 0..3 {
            let v = ((b * 7919 + i as i64 * 104_729) % 1_000_003) as f64 / 7.0;
            a.append(None, &series(i), b * 1000, v).unwrap();
        }
        a.commit().unwrap();
    }
    let before = dump(&db);
    db.close().unwrap();
    let snap = crate::head::snapshot::list_snapshots(&dir).unwrap()[0];
    let snap_len = std::fs::metadata(crate::head::snapshot::snapshot_path(&dir, snap))
        .unwrap()
        .len();
    let files: Vec<PathBuf> = std::fs::read_dir(dir.join("chunks_head"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let chunks_len = std::fs::metadata(&files[0]).unwrap().len();
    assert!(
        snap_len < chunks_len,
        "the snapshot ({snap_len} bytes) names the chunks ({chunks_len} bytes), not copies them"
    );
    drop(db);
    let db = Tsdb::open(&dir, TsdbOptions::default()).unwrap();
    assert_eq!(dump(&db), before, "a clean restart reads them back");
    db.close().unwrap();
    drop(db);

    // Damage the first chunk's checksum (the end of its frame).
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let mut d = crate::encoding::Dec { b: &bytes };
    let len = d.uvarint().unwrap() as usize;
    let end = bytes.len() - d.b.len() + len + 4;
    bytes[end - 1] ^= 0x5a;
    std::fs::write(&files[0], &bytes).unwrap();
    std::fs::write(dir.join("chunks_head").join("0-999999"), b"left by a crash").unwrap();
    let corrupt_before = crate::chunk::corrupt_chunks_total();
    let db = Tsdb::open(&dir, TsdbOptions::default()).unwrap();
    let after = dump(&db);
    assert_eq!(
        after.len(),
        before.len() - 120,
        "one chunk of 120 samples left out"
    );
    assert!(after.iter().all(|x| before.contains(x)));
    assert!(crate::chunk::corrupt_chunks_total() > corrupt_before);
    assert!(!dir.join("chunks_head").join("0-999999").exists());
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_wal_larger_than_the_snapshot_is_checkpointed() {
    let dir = tempdir("walsize");
    let o = TsdbOptions {
        checkpoint_min_wal_bytes: 4096,
        ..opts()
    };
    let db = Tsdb::open(&dir, o).unwrap();
    ingest(&db, 0, 50, 100);
    // No snapshot yet and more than 4 KiB of WAL: the next maintenance writes one.
    db.maintain().unwrap();
    assert_eq!(db.stats().checkpoints.load(Ordering::Relaxed), 1);
    // A little more WAL, less than the snapshot: nothing.
    ingest(&db, 10_000, 1, 100);
    db.maintain().unwrap();
    assert_eq!(db.stats().checkpoints.load(Ordering::Relaxed), 1);
    // Much more: again, and a crash now replays only what followed it.
    ingest(&db, 20_000, 300, 100);
    db.maintain().unwrap();
    assert_eq!(db.stats().checkpoints.load(Ordering::Relaxed), 2);
    let want = dump(&db);
    let db = crash_and_reopen(db, &dir);
    assert_eq!(dump(&db), want);
    let _ = std::fs::remove_dir_all(&dir);
}
