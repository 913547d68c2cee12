use super::*;
use vigil_model::{Appendable, Matcher, Queryable, Sample, SelectHints};

fn lbl(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn append(head: &Head, labels: &Labels, t: i64, v: f64) -> Result<(), AppendError> {
    let mut a = head.appender();
    a.append(None, labels, t, v)?;
    a.commit().unwrap();
    Ok(())
}

fn select(head: &Head, ms: &[Matcher]) -> Vec<(Labels, Vec<Sample>)> {
    let q = head.querier(i64::MIN, i64::MAX).unwrap();
    q.select(
        ms,
        &SelectHints {
            start: i64::MIN,
            end: i64::MAX,
        },
    )
    .unwrap()
    .map(|s| (s.labels, s.samples.collect()))
    .collect()
}

#[test]
fn appends_are_invisible_until_commit() {
    let head = Head::new(HeadOptions::default());
    let l = lbl(&[("__name__", "up"), ("job", "a")]);
    let mut a = head.appender();
    a.append(None, &l, 1000, 1.0).unwrap();
    assert!(select(&head, &[Matcher::equal("__name__", "up")]).is_empty());
    a.commit().unwrap();
    let got = select(&head, &[Matcher::equal("__name__", "up")]);
    assert_eq!(got, vec![(l, vec![Sample { t: 1000, v: 1.0 }])]);
}

#[test]
fn rollback_discards() {
    let head = Head::new(HeadOptions::default());
    let mut a = head.appender();
    a.append(None, &lbl(&[("__name__", "x")]), 1, 1.0).unwrap();
    a.rollback();
    assert!(select(&head, &[Matcher::equal("__name__", "x")]).is_empty());
}

#[test]
fn out_of_order_is_refused_and_counted() {
    let head = Head::new(HeadOptions::default());
    let l = lbl(&[("__name__", "x")]);
    append(&head, &l, 2000, 1.0).unwrap();
    assert_eq!(append(&head, &l, 1000, 2.0), Err(AppendError::OutOfOrder));
    append(&head, &l, 2000, 3.0).unwrap(); // duplicate timestamp, other value: refused at commit
    append(&head, &l, 2000, 1.0).unwrap(); // identical duplicate: ignored silently
    append(&head, &l, 3000, 4.0).unwrap();
    let got = select(&head, &[Matcher::equal("__name__", "x")]);
    assert_eq!(
        got[0].1,
        vec![Sample { t: 2000, v: 1.0 }, Sample { t: 3000, v: 4.0 }]
    );
    assert_eq!(head.stats.out_of_order_samples.load(Ordering::Relaxed), 2);
}

#[test]
fn out_of_order_window_accepts_recent_samples() {
    let head = Head::new(HeadOptions {
        out_of_order_time_window_ms: 10_000,
        ..Default::default()
    });
    let l = lbl(&[("__name__", "x")]);
    for t in [20_000, 30_000, 25_000, 21_000, 40_000] {
        append(&head, &l, t, t as f64).unwrap();
    }
    assert_eq!(append(&head, &l, 29_000, 1.0), Err(AppendError::OutOfOrder));
    let got = select(&head, &[Matcher::equal("__name__", "x")]);
    let ts: Vec<i64> = got[0].1.iter().map(|s| s.t).collect();
    assert_eq!(ts, [20_000, 21_000, 25_000, 30_000, 40_000]);
}

#[test]
fn matchers_select_and_labels_list() {
    let head = Head::new(HeadOptions::default());
    for (job, inst) in [("a", "1"), ("a", "2"), ("b", "1")] {
        append(
            &head,
            &lbl(&[("__name__", "up"), ("job", job), ("instance", inst)]),
            10,
            1.0,
        )
        .unwrap();
    }
    let re = Matcher::regex("job", "a|c").unwrap();
    assert_eq!(
        select(&head, &[Matcher::equal("__name__", "up"), re]).len(),
        2
    );
    let ne = Matcher::not_equal("instance", "1");
    assert_eq!(
        select(&head, &[Matcher::equal("__name__", "up"), ne]).len(),
        1
    );
    let q = head.querier(0, 100).unwrap();
    assert_eq!(q.label_values("job", &[]).unwrap(), ["a", "b"]);
    assert_eq!(
        q.label_names(&[Matcher::equal("job", "b")]).unwrap(),
        ["__name__", "instance", "job"]
    );
}

#[test]
fn retention_truncates_old_samples_and_collects_empty_series() {
    let head = Head::new(HeadOptions {
        retention_ms: 1000,
        ..Default::default()
    });
    let l = lbl(&[("__name__", "x")]);
    let gone = lbl(&[("__name__", "gone")]);
    append(&head, &gone, 100, 1.0).unwrap();
    for t in [0, 500, 1000, 1500, 2000] {
        append(&head, &l, t, 1.0).unwrap();
    }
    head.truncate_old();
    let got = select(&head, &[Matcher::equal("__name__", "x")]);
    assert_eq!(
        got[0].1.iter().map(|s| s.t).collect::<Vec<_>>(),
        [1000, 1500, 2000]
    );
    assert_eq!(head.num_series(), 1);
    assert!(select(&head, &[Matcher::equal("__name__", "gone")]).is_empty());
    // A series that comes back gets a new reference and works as before.
    append(&head, &gone, 2500, 2.0).unwrap();
    assert_eq!(
        select(&head, &[Matcher::equal("__name__", "gone")]).len(),
        1
    );
}

#[test]
fn many_samples_span_chunks_and_ranges_cut_them() {
    let head = Head::new(HeadOptions::default());
    let l = lbl(&[("__name__", "x")]);
    let mut a = head.appender();
    let mut r = None;
    for i in 0..1000i64 {
        r = Some(a.append(r, &l, i * 15_000, i as f64).unwrap());
    }
    a.commit().unwrap();
    assert_eq!(head.num_chunks(), 9);
    let q = head.querier(0, i64::MAX).unwrap();
    let set: Vec<_> = q
        .select(
            &[Matcher::equal("__name__", "x")],
            &SelectHints {
                start: 150_000,
                end: 1_800_000,
            },
        )
        .unwrap()
        .collect();
    let got: Vec<Sample> = set.into_iter().next().unwrap().samples.collect();
    assert_eq!(got.len(), 111);
    assert_eq!(
        got[0],
        Sample {
            t: 150_000,
            v: 10.0
        }
    );
    assert_eq!(got[110].t, 1_800_000);
}

#[test]
fn max_series_refuses_new_series_only() {
    let head = Head::new(HeadOptions {
        max_series: 2,
        ..Default::default()
    });
    append(&head, &lbl(&[("__name__", "a")]), 1, 1.0).unwrap();
    append(&head, &lbl(&[("__name__", "b")]), 1, 1.0).unwrap();
    let err = append(&head, &lbl(&[("__name__", "c")]), 1, 1.0).unwrap_err();
    assert!(
        err.to_string().contains("--storage.tsdb.max-series"),
        "{err}"
    );
    append(&head, &lbl(&[("__name__", "a")]), 2, 1.0).unwrap();
    assert_eq!(head.stats.series_refused.load(Ordering::Relaxed), 1);
    assert_eq!(head.num_series(), 2);
}

#[test]
fn concurrent_appenders_create_each_series_once() {
    let head = Head::new(HeadOptions::default());
    std::thread::scope(|s| {
        for w in 0..4 {
            let head = &head;
            s.spawn(move || {
                for round in 0..20i64 {
                    let mut a = head.appender();
                    for i in 0..200 {
                        let l = lbl(&[("__name__", "m"), ("i", &i.to_string())]);
                        // Other workers may be ahead: out-of-order refusals are expected.
                        let _ = a.append(None, &l, round * 4 + w, 1.0);
                    }
                    a.commit().unwrap();
                }
            });
        }
    });
    assert_eq!(head.num_series(), 200);
    assert_eq!(select(&head, &[Matcher::equal("__name__", "m")]).len(), 200);
}

#[test]
fn batch_holding_a_collected_series_recreates_it_at_commit() {
    let head = Head::new(HeadOptions::default());
    let l = lbl(&[("__name__", "x")]);
    append(&head, &l, 100, 1.0).unwrap();
    let mut a = head.appender();
    a.append(None, &l, 5000, 2.0).unwrap();
    head.truncate_before(1000); // collects `x` while the batch holds it
    assert_eq!(head.num_series(), 0);
    a.commit().unwrap();
    let got = select(&head, &[Matcher::equal("__name__", "x")]);
    assert_eq!(got, vec![(l, vec![Sample { t: 5000, v: 2.0 }])]);
}

#[test]
fn label_lookups_with_matchers_agree_with_select_over_any_range() {
    let head = Head::new(HeadOptions::default());
    // Series with gaps and different spans; enough samples to span several chunks.
    for i in 0..6i64 {
        let l = lbl(&[
            ("__name__", "m"),
            ("i", &i.to_string()),
            ("odd", &(i % 2).to_string()),
        ]);
        for k in 0..300i64 {
            if (k / 50) % 3 == i % 3 {
                continue; // a gap placed differently per series
            }
            append(&head, &l, i * 1000 + k * 100, k as f64).unwrap();
        }
    }
    let ms = [Matcher::equal("__name__", "m")];
    for (mint, maxt) in [
        (i64::MIN, i64::MAX),
        (0, 500),
        (5_000, 5_099),
        (5_001, 5_050),
        (12_000, 14_000),
        (30_000, 40_000),
        (-10, -1),
    ] {
        let q = head.querier(mint, maxt).unwrap();
        let hints = SelectHints {
            start: mint,
            end: maxt,
        };
        let mut want_i: Vec<String> = q
            .select(&ms, &hints)
            .unwrap()
            .map(|s| s.labels.get("i").unwrap().to_string())
            .collect();
        want_i.sort();
        assert_eq!(
            q.label_values("i", &ms).unwrap(),
            want_i,
            "[{mint}, {maxt}]"
        );
        let names = q.label_names(&ms).unwrap();
        if want_i.is_empty() {
            assert!(names.is_empty());
        } else {
            assert_eq!(names, ["__name__", "i", "odd"]);
        }
    }
}

/// References land in their stripe's table at dense, distinct places in creation order, so
/// the lookups of one scrape walk the table in order.
#[test]
fn reference_hash_is_dense_within_a_stripe() {
    use super::{REF_RUN, RefHasher, STRIPES};
    use std::collections::HashSet;
    use std::hash::Hasher;
    let place = |r: u64| {
        let mut h = RefHasher::default();
        h.write_u64(r);
        (
            ((r / REF_RUN) as usize % STRIPES),
            h.finish() & ((1 << 57) - 1),
        )
    };
    let mut seen = HashSet::new();
    for r in 0..(REF_RUN * STRIPES as u64 * 3) {
        assert!(seen.insert(place(r)), "reference {r} shares a place");
        if (r + 1) % REF_RUN != 0 {
            let (s, p) = place(r);
            assert_eq!(place(r + 1), (s, p + 1), "neighbours of {r}");
        }
    }
}
