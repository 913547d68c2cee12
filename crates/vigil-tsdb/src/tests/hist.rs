//! Native histogram samples through every layer: the head, the WAL, the snapshot, blocks,
//! retention and deletion.

use super::{opts, tempdir};
use crate::{Tsdb, TsdbOptions};
use std::path::Path;
use std::sync::atomic::Ordering;
use vigil_model::histogram::FloatHistogram;
use vigil_model::histogram::notation::parse_histogram;
use vigil_model::{
    AppendError, Appendable, Labels, Matcher, Queryable, Sample, SelectHints, stale_nan,
};

fn h(s: &str) -> FloatHistogram {
    parse_histogram(s).unwrap().0
}

/// A histogram whose counts grow with `i`.
fn hi(i: i64) -> FloatHistogram {
    h(&format!(
        "{{{{schema:0 sum:{}.25 count:{} z_bucket:{} z_bucket_w:0.001 buckets:[{} {}] n_buckets:[{}]}}}}",
        i,
        4 * i + 4,
        i + 1,
        i + 1,
        i + 1,
        i + 1
    ))
}

fn hlabels(name: &str) -> Labels {
    Labels::from_pairs([("__name__", name), ("job", "h")])
}

/// Every sample of series named `name`: floats and histograms (as their notation).
fn dump_one(
    db: &impl Queryable,
    name: &str,
    mint: i64,
    maxt: i64,
) -> (Vec<Sample>, Vec<(i64, String)>) {
    let q = db.querier(mint, maxt).unwrap();
    let set = q
        .select(
            &[Matcher::equal("__name__", name)],
            &SelectHints {
                start: mint,
                end: maxt,
            },
        )
        .unwrap();
    let (mut f, mut hs) = (Vec::new(), Vec::new());
    for s in set {
        f.extend(s.samples);
        hs.extend(s.histograms.iter().map(|x| (x.t, format!("{:?}", x.h))));
    }
    (f, hs)
}

fn dbg(h: &FloatHistogram) -> String {
    format!("{h:?}")
}

/// Appends histogram `hi(i)` at `i * 1000` for `i` in `from..to`, one commit each.
fn ingest_h(db: &Tsdb, name: &str, from: i64, to: i64) {
    for i in from..to {
        let mut a = db.appender();
        a.append_histogram(None, &hlabels(name), i * 1000, &hi(i))
            .unwrap();
        a.commit().unwrap();
    }
}

/// `hi(i)` as stored: the series' first histogram reads "unknown", every later one (counts
/// only grow) "no reset", as Prometheus' head chunks give them back.
fn want_h(from: i64, to: i64) -> Vec<(i64, String)> {
    (from..to)
        .map(|i| {
            let mut h = hi(i);
            if i > 0 {
                h.counter_reset_hint = vigil_model::histogram::CounterResetHint::NotCounterReset;
            }
            (i * 1000, dbg(&h))
        })
        .collect()
}

#[test]
fn head_appends_and_queries_histograms() {
    let dir = tempdir("hist-head");
    let db = Tsdb::open(&dir, opts()).unwrap();
    // Enough to cut a few head chunks.
    ingest_h(&db, "hm", 0, 300);
    let (f, hs) = dump_one(&db, "hm", i64::MIN, i64::MAX);
    assert!(f.is_empty());
    assert_eq!(hs, want_h(0, 300));
    // A range inside.
    let (_, hs) = dump_one(&db, "hm", 10_500, 20_000);
    assert_eq!(hs, want_h(11, 21));
    assert!(dump_one(&db, "hm", 400_000, 500_000).1.is_empty());
    // Histogram-only series show up in label queries, within range only.
    let q = db.querier(0, 1000).unwrap();
    assert_eq!(q.label_values("__name__", &[]).unwrap(), ["hm"]);
    assert_eq!(
        q.label_names(&[Matcher::equal("job", "h")]).unwrap(),
        ["__name__", "job"]
    );
    let q = db.querier(400_000, 500_000).unwrap();
    assert!(
        q.label_names(&[Matcher::equal("job", "h")])
            .unwrap()
            .is_empty()
    );
    let st = &db.head().stats;
    assert_eq!(st.samples_appended.load(Ordering::Relaxed), 300);
    assert_eq!(st.histogram_samples_appended.load(Ordering::Relaxed), 300);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn invalid_histograms_are_refused() {
    let dir = tempdir("hist-invalid");
    let db = Tsdb::open(&dir, opts()).unwrap();
    let mut bad = hi(1);
    bad.positive_buckets.push(3.0);
    let mut a = db.appender();
    let e = a
        .append_histogram(None, &hlabels("bad"), 1000, &bad)
        .unwrap_err();
    assert!(matches!(e, AppendError::InvalidHistogram(_)), "{e:?}");
    a.commit().unwrap();
    assert!(dump_one(&db, "bad", i64::MIN, i64::MAX).1.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mixed_series_duplicates_and_out_of_order() {
    let dir = tempdir("hist-mixed");
    let db = Tsdb::open(&dir, opts()).unwrap();
    let l = hlabels("mixed");
    // One batch, kinds interleaved: applied in append order.
    let mut a = db.appender();
    a.append(None, &l, 1000, 1.0).unwrap();
    a.append_histogram(None, &l, 2000, &hi(2)).unwrap();
    a.append_histogram(None, &l, 3000, &hi(3)).unwrap();
    a.append(None, &l, 4000, 4.0).unwrap();
    a.append_histogram(None, &l, 5000, &hi(5)).unwrap();
    a.commit().unwrap();
    // Same timestamp, same histogram: a duplicate, silently ignored.
    let mut a = db.appender();
    a.append_histogram(None, &l, 5000, &hi(5)).unwrap();
    a.commit().unwrap();
    // Same timestamp, another histogram or a float: refused (and counted).
    let rejected = || db.head().stats.out_of_order_samples.load(Ordering::Relaxed);
    let r0 = rejected();
    let mut a = db.appender();
    assert_eq!(
        a.append_histogram(None, &l, 5000, &hi(6)),
        Err(AppendError::DuplicateTimestamp)
    );
    assert_eq!(
        a.append(None, &l, 5000, 5.0),
        Err(AppendError::DuplicateTimestamp)
    );
    a.commit().unwrap();
    assert_eq!(rejected(), r0 + 2);
    // Within one batch the appender cannot know yet: the commit refuses the second one.
    let mut a = db.appender();
    a.append(None, &l, 5500, 5.5).unwrap();
    a.append_histogram(None, &l, 5500, &hi(6)).unwrap();
    a.commit().unwrap();
    assert_eq!(rejected(), r0 + 3);
    // Older than the last sample, of either kind: out of order.
    let mut a = db.appender();
    assert_eq!(
        a.append_histogram(None, &l, 4500, &hi(4)),
        Err(AppendError::OutOfOrder)
    );
    assert_eq!(a.append(None, &l, 4500, 4.5), Err(AppendError::OutOfOrder));
    // Prometheus ends a histogram series with a float stale marker: it is stored.
    a.append(None, &l, 6000, stale_nan()).unwrap();
    // And a histogram stale marker (stale sum) is a histogram sample like any other.
    let mut stale = hi(7);
    stale.sum = stale_nan();
    a.append_histogram(None, &l, 7000, &stale).unwrap();
    a.commit().unwrap();
    let (f, hs) = dump_one(&db, "mixed", i64::MIN, i64::MAX);
    let fv: Vec<(i64, u64)> = f.iter().map(|s| (s.t, s.v.to_bits())).collect();
    assert_eq!(
        fv,
        [
            (1000, 1f64.to_bits()),
            (4000, 4f64.to_bits()),
            (5500, 5.5f64.to_bits()),
            (6000, stale_nan().to_bits())
        ]
    );
    // Stored hints: a histogram right after another reads "no reset"; the first of a run
    // (after floats) "unknown".
    let mut h3 = hi(3);
    h3.counter_reset_hint = vigil_model::histogram::CounterResetHint::NotCounterReset;
    let want = vec![
        (2000, dbg(&hi(2))),
        (3000, dbg(&h3)),
        (5000, dbg(&hi(5))),
        (7000, dbg(&stale)),
    ];
    assert_eq!(hs, want);
    assert!(vigil_model::is_stale_nan(
        db.querier(7000, 7000)
            .unwrap()
            .select(
                &[Matcher::equal("__name__", "mixed")],
                &SelectHints {
                    start: 7000,
                    end: 7000
                }
            )
            .unwrap()
            .next()
            .unwrap()
            .histograms[0]
            .h
            .sum
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Histograms out of order within the window are accepted (Prometheus 3.x), merged with the
/// in-order ones on read, and survive a crash (WAL) and a clean restart (snapshot); outside
/// the window, or at a time a sample of either kind holds, they are refused.
#[test]
fn out_of_order_histograms_within_the_window() {
    let dir = tempdir("hist-ooo");
    let ooo_opts = || TsdbOptions {
        out_of_order_time_window_ms: 60_000,
        ..opts()
    };
    let db = Tsdb::open(&dir, ooo_opts()).unwrap();
    let l = hlabels("ooo");
    let mut a = db.appender();
    a.append_histogram(None, &l, 10_000, &hi(1)).unwrap();
    a.append_histogram(None, &l, 20_000, &hi(2)).unwrap();
    a.append(None, &l, 30_000, 3.0).unwrap();
    a.append_histogram(None, &l, 100_000, &hi(10)).unwrap();
    a.commit().unwrap();
    let rejected = || db.head().stats.out_of_order_samples.load(Ordering::Relaxed);
    let r0 = rejected();
    let mut a = db.appender();
    // Within the window (newest 100 s, window 60 s: from 40 s on).
    a.append_histogram(None, &l, 50_000, &hi(5)).unwrap();
    a.append_histogram(None, &l, 45_000, &hi(4)).unwrap();
    // Before the window.
    assert_eq!(
        a.append_histogram(None, &l, 15_000, &hi(3)),
        Err(AppendError::OutOfOrder)
    );
    a.commit().unwrap();
    // At a time a float or another histogram holds: refused at commit, the same histogram
    // again: a duplicate.
    let mut a = db.appender();
    a.append_histogram(None, &l, 45_000, &hi(4)).unwrap();
    a.append_histogram(None, &l, 50_000, &hi(6)).unwrap();
    a.append(None, &l, 45_000, 4.5).unwrap();
    a.commit().unwrap();
    assert_eq!(rejected(), r0 + 3);
    assert_eq!(
        db.head()
            .stats
            .out_of_order_accepted
            .load(Ordering::Relaxed),
        2
    );
    let times = |db: &Tsdb| -> (Vec<i64>, Vec<i64>) {
        let (f, hs) = dump_one(db, "ooo", i64::MIN, i64::MAX);
        (
            f.iter().map(|s| s.t).collect(),
            hs.iter().map(|s| s.0).collect(),
        )
    };
    let want = (vec![30_000], vec![10_000, 20_000, 45_000, 50_000, 100_000]);
    assert_eq!(times(&db), want);
    // A range read merges them.
    let (_, hs) = dump_one(&db, "ooo", 40_000, 60_000);
    assert_eq!(hs.iter().map(|s| s.0).collect::<Vec<_>>(), [45_000, 50_000]);
    // Stored with the "unknown" hint: readers detect resets themselves.
    assert!(
        hs[0].1.contains("counter_reset_hint: Unknown"),
        "{}",
        hs[0].1
    );
    // A crash: the WAL brings them back.
    drop(db);
    let db = Tsdb::open(&dir, ooo_opts()).unwrap();
    assert_eq!(times(&db), want);
    // A clean stop: the snapshot holds them.
    db.close().unwrap();
    drop(db);
    let db = Tsdb::open(&dir, ooo_opts()).unwrap();
    assert_eq!(db.stats().replayed_samples.load(Ordering::Relaxed), 0);
    assert_eq!(times(&db), want);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Drops `db` without closing it, reopens, and checks both kinds came back.
fn crash_and_reopen_h(db: Tsdb, dir: &Path, names: &[&str]) -> Tsdb {
    let before: Vec<_> = names
        .iter()
        .map(|n| dump_one(&db, n, i64::MIN, i64::MAX))
        .collect();
    drop(db);
    let db = Tsdb::open(dir, opts()).unwrap();
    let after: Vec<_> = names
        .iter()
        .map(|n| dump_one(&db, n, i64::MIN, i64::MAX))
        .collect();
    for (a, b) in after.iter().zip(&before) {
        assert_eq!((a.0.len(), a.1.len()), (b.0.len(), b.1.len()));
        let bits = |v: &[Sample]| v.iter().map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>();
        assert_eq!(bits(&a.0), bits(&b.0));
        for (x, y) in a.1.iter().zip(&b.1) {
            assert_eq!(x, y);
        }
    }
    assert_eq!(db.stats().wal_corruptions.load(Ordering::Relaxed), 0);
    db
}

#[test]
fn wal_replay_after_a_crash_keeps_every_histogram() {
    let dir = tempdir("hist-crash");
    let db = Tsdb::open(&dir, opts()).unwrap();
    ingest_h(&db, "hm", 0, 250);
    // A mixed batch whose order matters: replay must apply it as the commit did.
    let l = hlabels("mixed");
    let mut a = db.appender();
    a.append_histogram(None, &l, 1000, &hi(1)).unwrap();
    a.append(None, &l, 2000, 2.0).unwrap();
    a.append_histogram(
        None,
        &l,
        3000,
        &h("{{schema:-53 sum:1 count:3 custom_values:[1 2] buckets:[1 2]}}"),
    )
    .unwrap();
    a.append(None, &l, 4000, stale_nan()).unwrap();
    a.commit().unwrap();
    super::ingest(&db, 0, 5, 3);
    let db = crash_and_reopen_h(db, &dir, &["hm", "mixed", "m"]);
    assert_eq!(dump_one(&db, "hm", i64::MIN, i64::MAX).1, want_h(0, 250));
    assert_eq!(dump_one(&db, "mixed", i64::MIN, i64::MAX).1.len(), 2);
    // Appends go on after the replay (the appender state came back).
    ingest_h(&db, "hm", 250, 260);
    let db = crash_and_reopen_h(db, &dir, &["hm", "mixed", "m"]);
    assert_eq!(dump_one(&db, "hm", i64::MIN, i64::MAX).1, want_h(0, 260));
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn snapshot_restart_keeps_histograms() {
    let dir = tempdir("hist-snap");
    let db = Tsdb::open(&dir, opts()).unwrap();
    ingest_h(&db, "hm", 0, 130);
    let l = hlabels("mixed");
    let mut a = db.appender();
    a.append(None, &l, 500, 0.5).unwrap();
    a.append_histogram(None, &l, 1000, &hi(1)).unwrap();
    a.commit().unwrap();
    let before = (
        dump_one(&db, "hm", i64::MIN, i64::MAX),
        dump_one(&db, "mixed", i64::MIN, i64::MAX),
    );
    db.close().unwrap();
    drop(db);
    let db = Tsdb::open(&dir, opts()).unwrap();
    assert_eq!(db.stats().replayed_samples.load(Ordering::Relaxed), 0);
    let after = (
        dump_one(&db, "hm", i64::MIN, i64::MAX),
        dump_one(&db, "mixed", i64::MIN, i64::MAX),
    );
    assert_eq!(after, before);
    // The open chunk resumes: appends continue, duplicates are still recognised.
    let mut a = db.appender();
    a.append_histogram(None, &hlabels("hm"), 129_000, &hi(129))
        .unwrap();
    a.append_histogram(None, &hlabels("hm"), 130_000, &hi(130))
        .unwrap();
    a.commit().unwrap();
    assert_eq!(dump_one(&db, "hm", i64::MIN, i64::MAX).1, want_h(0, 131));
    assert_eq!(
        db.head().stats.out_of_order_samples.load(Ordering::Relaxed),
        0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A mixed workload at t = 0, 100, …: series "hm" histograms only, "mixed" alternating
/// floats and histograms (with custom buckets), plus the float series "m".
fn ingest_fine_h(db: &Tsdb, from: i64, to: i64) {
    let nhcb = |i: i64| {
        h(&format!(
            "{{{{schema:-53 sum:{i} count:{} custom_values:[0.1 1 10] buckets:[{i} {i} 1]}}}}",
            2 * i + 1
        ))
    };
    for b in from..to {
        let mut a = db.appender();
        a.append_histogram(None, &hlabels("hm"), b * 100, &hi(b))
            .unwrap();
        if b % 2 == 0 {
            a.append(None, &hlabels("mixed"), b * 100, b as f64)
                .unwrap();
        } else {
            a.append_histogram(None, &hlabels("mixed"), b * 100, &nhcb(b))
                .unwrap();
        }
        a.append(None, &super::series(0), b * 100, b as f64)
            .unwrap();
        a.commit().unwrap();
    }
}

type Dump = Vec<(Vec<(i64, u64)>, Vec<(i64, String)>)>;

fn dump_all(db: &impl Queryable) -> Dump {
    ["hm", "mixed", "m"]
        .iter()
        .map(|n| {
            let (f, hs) = dump_one(db, n, i64::MIN, i64::MAX);
            (f.iter().map(|s| (s.t, s.v.to_bits())).collect(), hs)
        })
        .collect()
}

fn block_opts() -> TsdbOptions {
    TsdbOptions {
        retention_ms: 0,
        block_range_ms: 1000,
        ..Default::default()
    }
}

#[test]
fn head_compaction_and_block_merges_keep_histograms() {
    let dir = tempdir("hist-blocks");
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    ingest_fine_h(&db, 0, 100); // t in [0, 9900]
    let before = dump_all(&db);
    assert_eq!(before[0].1.len(), 100);
    assert_eq!((before[1].0.len(), before[1].1.len()), (50, 50));
    db.maintain().unwrap();
    let blocks = db.blocks();
    assert_eq!(blocks.len(), 1, "nine 1 s blocks merged into one");
    assert!(blocks[0].meta().compaction.level >= 2);
    assert_eq!(blocks[0].meta().version, 3);
    assert_eq!(blocks[0].meta().stats.num_samples, 90 * 3);
    assert!(db.head().min_time().unwrap() >= 9000);
    assert_eq!(dump_all(&db), before, "block + head read as before");
    // A range across block and head.
    let (_, hs) = dump_one(&db, "hm", 8500, 9500);
    assert_eq!(hs, want_h_fine(85, 96));
    // Histogram-only series are in the block's label index.
    let q = db.querier(0, 5000).unwrap();
    assert_eq!(
        q.label_values("__name__", &[]).unwrap(),
        ["hm", "m", "mixed"]
    );
    drop(q);
    // Crash restart (blocks plus a WAL whose old samples they hold), then a clean one.
    drop(db);
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    assert_eq!(dump_all(&db), before);
    assert_eq!(
        db.head().stats.out_of_order_samples.load(Ordering::Relaxed),
        0
    );
    db.close().unwrap();
    drop(db);
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    assert_eq!(dump_all(&db), before);
    // More data, another round of cuts and merges.
    ingest_fine_h(&db, 100, 200);
    let before = dump_all(&db);
    db.maintain().unwrap();
    assert!(db.blocks().iter().any(|b| b.meta().compaction.level >= 2));
    assert_eq!(dump_all(&db), before);
    let _ = std::fs::remove_dir_all(&dir);
}

fn want_h_fine(from: i64, to: i64) -> Vec<(i64, String)> {
    want_h(from, to)
        .into_iter()
        .map(|(t, h)| (t / 10, h))
        .collect()
}

#[test]
fn old_format_histogram_blocks_still_read() {
    let dir = tempdir("hist-v2");
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    ingest_fine_h(&db, 0, 30);
    db.maintain().unwrap();
    let blocks = db.blocks();
    assert!(!blocks.is_empty());
    for b in &blocks {
        assert_eq!(b.meta().version, 3);
        let ix = std::fs::read(b.dir().join("index")).unwrap();
        assert_eq!(&ix[..8], crate::block::index::MAGIC_V3);
    }
    let names = |db: &Tsdb| {
        let q = db.querier(i64::MIN, i64::MAX).unwrap();
        let hm = Matcher::equal("__name__", "hm");
        (
            q.label_names(&[]).unwrap(),
            q.label_values("__name__", &[]).unwrap(),
            q.label_names(std::slice::from_ref(&hm)).unwrap(),
            q.label_values("__name__", &[Matcher::regex("__name__", "h.*|m").unwrap()])
                .unwrap(),
        )
    };
    let before = (dump_all(&db), names(&db));
    let db = super::reopen_downgraded(&dir, db, blocks, 2, crate::block::index::MAGIC_HIST);
    assert_eq!((dump_all(&db), names(&db)), before);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn retention_drops_old_histograms() {
    let dir = tempdir("hist-retention");
    let db = Tsdb::open(
        &dir,
        TsdbOptions {
            retention_ms: 5000,
            ..block_opts()
        },
    )
    .unwrap();
    ingest_fine_h(&db, 0, 200);
    db.maintain().unwrap();
    let (_, hs) = dump_one(&db, "hm", i64::MIN, i64::MAX);
    let oldest = hs.first().unwrap().0;
    assert!(
        oldest >= 19_900 - 5000 - 3000,
        "oldest histogram at {oldest}"
    );
    assert_eq!(hs.last().unwrap().0, 19_900);
    // The head's own retention: histogram chunks before the cutoff go, the series stays.
    db.head().truncate_before(19_000);
    let q = db.head().querier(i64::MIN, 18_999).unwrap();
    let set = q
        .select(
            &[Matcher::equal("__name__", "hm")],
            &SelectHints {
                start: i64::MIN,
                end: 18_999,
            },
        )
        .unwrap();
    assert_eq!(set.count(), 0);
    drop(q);
    assert_eq!(
        dump_one(db.head(), "hm", 19_000, i64::MAX).1,
        want_h_fine(190, 200)
    );
    // Everything of a histogram-only series gone: the series is collected.
    let n = db.head().num_series();
    db.head().truncate_before(30_000);
    assert!(db.head().num_series() < n);
    assert_eq!(db.head().num_series(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn delete_series_removes_histograms_from_head_and_blocks() {
    let dir = tempdir("hist-delete");
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    ingest_fine_h(&db, 0, 100);
    db.maintain().unwrap();
    assert!(!db.blocks().is_empty());
    let before = dump_all(&db);
    // Spans the block and the head.
    let d = db
        .delete_series(&[vec![Matcher::equal("__name__", "hm")]], 500, 9500)
        .unwrap();
    assert_eq!(d.blocks_rewritten, 1);
    assert!(d.head_samples >= 6, "{d:?}");
    // All of "mixed", both kinds.
    db.delete_series(
        &[vec![Matcher::equal("__name__", "mixed")]],
        i64::MIN,
        i64::MAX,
    )
    .unwrap();
    let want_hm: Vec<_> = before[0]
        .1
        .iter()
        .filter(|x| x.0 < 500 || x.0 > 9500)
        .cloned()
        .collect();
    let check = |db: &Tsdb| {
        let now = dump_all(db);
        assert_eq!(now[0].1, want_hm);
        assert!(now[1].0.is_empty() && now[1].1.is_empty());
        assert_eq!(now[2], before[2]);
    };
    check(&db);
    // Crash restart: the tombstones record repeats the head deletion.
    drop(db);
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    check(&db);
    db.close().unwrap();
    drop(db);
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    check(&db);
    // Appends go on after the newest histograms were deleted.
    let mut a = db.appender();
    a.append_histogram(None, &hlabels("hm"), 10_000, &hi(100))
        .unwrap();
    a.commit().unwrap();
    assert_eq!(dump_one(&db, "hm", 10_000, 10_000).1.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_histogram_block_chunks_do_not_panic() {
    let dir = tempdir("hist-badchunk");
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    ingest_fine_h(&db, 0, 30);
    db.maintain().unwrap();
    db.close().unwrap();
    let blocks = db.blocks();
    drop(db);
    assert!(!blocks.is_empty());
    let ch = blocks[0].dir().join("chunks");
    let good = std::fs::read(&ch).unwrap();
    drop(blocks);
    // Flip every byte in turn (and cut the file short): reads never panic.
    for i in (8..good.len()).step_by(7) {
        let mut c = good.clone();
        c[i] ^= 0x5a;
        std::fs::write(&ch, &c).unwrap();
        let db = Tsdb::open(&dir, block_opts()).unwrap();
        let _ = dump_all(&db);
        drop(db);
    }
    std::fs::write(&ch, &good[..good.len() / 2]).unwrap();
    let db = Tsdb::open(&dir, block_opts()).unwrap();
    let _ = dump_all(&db);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn deleting_part_of_a_mixed_series_keeps_the_rest() {
    let dir = tempdir("hist-delete-mixed");
    let db = Tsdb::open(&dir, opts()).unwrap();
    ingest_fine_h(&db, 0, 300); // "mixed": floats at even steps, histograms at odd ones
    let before = dump_all(&db);
    let sel = vec![Matcher::equal("__name__", "mixed")];
    db.delete_series(&[sel], 1000, 2000).unwrap();
    let now = dump_all(&db);
    let keep = |t: i64| !(1000..=2000).contains(&t);
    let want_f: Vec<_> = before[1].0.iter().filter(|x| keep(x.0)).cloned().collect();
    let want_h: Vec<_> = before[1].1.iter().filter(|x| keep(x.0)).cloned().collect();
    assert_eq!(now[1].0, want_f);
    assert_eq!(now[1].1, want_h);
    assert_eq!(
        (now[0].clone(), now[2].clone()),
        (before[0].clone(), before[2].clone())
    );
    // The same after a crash (tombstones replayed in place) and a clean restart.
    drop(db);
    let db = Tsdb::open(&dir, opts()).unwrap();
    assert_eq!(dump_all(&db), now);
    db.close().unwrap();
    drop(db);
    let db = Tsdb::open(&dir, opts()).unwrap();
    assert_eq!(dump_all(&db), now);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A WAL with histogram records, cut at every offset and with a byte flipped anywhere: it
/// opens, every series holds a prefix of what was committed (of both kinds), and a flip is
/// noticed.
#[test]
fn wal_with_histograms_cut_or_flipped_anywhere_keeps_a_committed_prefix() {
    use crate::wal::segment_name;
    let dir = tempdir("hist-trunc");
    let db = Tsdb::open(&dir, opts()).unwrap();
    ingest_fine_h(&db, 0, 4);
    let all = dump_all(&db);
    drop(db);
    let seg = dir.join("wal").join(segment_name(0));
    let bytes = std::fs::read(&seg).unwrap();
    let prefix = |got: &Dump| {
        got.iter().zip(&all).all(|(g, w)| {
            g.0.len() <= w.0.len()
                && g.0[..] == w.0[..g.0.len()]
                && g.1.len() <= w.1.len()
                && g.1[..] == w.1[..g.1.len()]
        })
    };
    let count = |d: &Dump| d.iter().map(|x| x.0.len() + x.1.len()).sum::<usize>();
    let mut last = 0;
    for cut in 0..=bytes.len() {
        let d = tempdir("hist-trunc-case");
        std::fs::create_dir_all(d.join("wal")).unwrap();
        std::fs::write(d.join("wal").join(segment_name(0)), &bytes[..cut]).unwrap();
        let db = Tsdb::open(&d, opts()).unwrap();
        let got = dump_all(&db);
        assert!(prefix(&got), "cut {cut}");
        assert!(count(&got) >= last, "cut {cut}: lost samples");
        last = count(&got);
        drop(db);
        let _ = std::fs::remove_dir_all(&d);
    }
    assert_eq!(last, count(&all));
    for pos in (0..bytes.len()).step_by(3) {
        let d = tempdir("hist-flip-case");
        std::fs::create_dir_all(d.join("wal")).unwrap();
        let mut b = bytes.clone();
        b[pos] ^= 0x5a;
        std::fs::write(d.join("wal").join(segment_name(0)), &b).unwrap();
        let db = Tsdb::open(&d, opts()).unwrap();
        let got = dump_all(&db);
        assert!(prefix(&got), "flip {pos}");
        assert!(count(&got) < count(&all), "flip {pos} went unnoticed");
        drop(db);
        let _ = std::fs::remove_dir_all(&d);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Start timestamps given with samples come back with them, after a crash (WAL) and a clean
/// restart (snapshot) too; samples without one have none.
#[test]
fn start_timestamps_are_kept_in_the_head() {
    let dir = tempdir("st");
    let db = Tsdb::open(&dir, opts()).unwrap();
    let l = hlabels("with_st");
    let mut a = db.appender();
    a.append_with_st(None, &l, 1000, 1.0, 500).unwrap();
    a.append(None, &l, 2000, 2.0).unwrap();
    a.append_histogram_with_st(None, &l, 3000, &hi(3), 2500)
        .unwrap();
    a.commit().unwrap();
    let sts = |db: &Tsdb| -> Vec<(i64, i64)> {
        let q = db.querier(i64::MIN, i64::MAX).unwrap();
        let set = q
            .select(
                &[Matcher::equal("__name__", "with_st")],
                &SelectHints {
                    start: i64::MIN,
                    end: i64::MAX,
                },
            )
            .unwrap();
        set.flat_map(|s| s.start_timestamps).collect()
    };
    let want = vec![(1000, 500), (3000, 2500)];
    assert_eq!(sts(&db), want);
    drop(db);
    let db = Tsdb::open(&dir, opts()).unwrap();
    assert_eq!(sts(&db), want, "after WAL replay");
    db.close().unwrap();
    drop(db);
    let db = Tsdb::open(&dir, opts()).unwrap();
    assert_eq!(db.stats().replayed_samples.load(Ordering::Relaxed), 0);
    assert_eq!(sts(&db), want, "after a snapshot restart");
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
