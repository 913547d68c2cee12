//! Native histogram samples through every layer: the head, the WAL, the snapshot, blocks,
//! retention and deletion.

use super::{opts, tempdir};
use crate::{Tsdb, TsdbOptions};
use std::path::Path;
use std::sync::atomic::Ordering;
use vigil_model::histogram::FloatHistogram;
use vigil_model::histogram::notation::parse_histogram;
use vigil_model::{
    AppendError, Appendable, Labels, Matcher, Queryable, Sample, SelectHints, StorageError,
    stale_nan,
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

fn want_h(from: i64, to: i64) -> Vec<(i64, String)> {
    (from..to).map(|i| (i * 1000, dbg(&hi(i)))).collect()
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
    // Same timestamp, another histogram or a float: refused at commit (counted).
    let rejected = || db.head().stats.out_of_order_samples.load(Ordering::Relaxed);
    let r0 = rejected();
    let mut a = db.appender();
    a.append_histogram(None, &l, 5000, &hi(6)).unwrap();
    a.append(None, &l, 5000, 5.0).unwrap();
    a.commit().unwrap();
    assert_eq!(rejected(), r0 + 2);
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
            (6000, stale_nan().to_bits())
        ]
    );
    let want = vec![
        (2000, dbg(&hi(2))),
        (3000, dbg(&hi(3))),
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

#[test]
fn out_of_order_window_is_for_floats_only() {
    let dir = tempdir("hist-ooo");
    let db = Tsdb::open(
        &dir,
        TsdbOptions {
            out_of_order_time_window_ms: 60_000,
            ..opts()
        },
    )
    .unwrap();
    let l = hlabels("ooo");
    let mut a = db.appender();
    a.append_histogram(None, &l, 10_000, &hi(1)).unwrap();
    a.append_histogram(None, &l, 20_000, &hi(2)).unwrap();
    a.commit().unwrap();
    let mut a = db.appender();
    assert_eq!(
        a.append_histogram(None, &l, 15_000, &hi(3)),
        Err(AppendError::OutOfOrder)
    );
    // A float between two histograms is accepted by the window; one at a histogram's time
    // is not.
    a.append(None, &l, 15_000, 1.5).unwrap();
    a.append(None, &l, 10_000, 1.0).unwrap();
    a.commit().unwrap();
    let (f, hs) = dump_one(&db, "ooo", i64::MIN, i64::MAX);
    assert_eq!(f, [Sample { t: 15_000, v: 1.5 }]);
    assert_eq!(hs.len(), 2);
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

#[allow(dead_code)]
fn unused(_: StorageError) {}
