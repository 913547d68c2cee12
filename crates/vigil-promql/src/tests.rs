use super::*;
use vigil_model::{Appendable, Labels, Sample, stale_nan};
use vigil_tsdb::{Head, HeadOptions};

fn db() -> Head {
    let head = Head::new(HeadOptions::default());
    let mut app = head.appender();
    for (job, inst, v) in [("api", "a", 1.0), ("api", "b", 2.0), ("db", "a", 4.0)] {
        let l = Labels::from_pairs([("__name__", "up"), ("job", job), ("instance", inst)]);
        let r = Labels::from_pairs([("__name__", "req"), ("job", job), ("instance", inst)]);
        for t in (0..=600).step_by(15) {
            app.append(None, &l, t * 1000, v).unwrap();
            app.append(None, &r, t * 1000, v * t as f64).unwrap();
        }
    }
    let gone = Labels::from_pairs([("__name__", "gone")]);
    app.append(None, &gone, 100_000, 1.0).unwrap();
    app.append(None, &gone, 115_000, stale_nan()).unwrap();
    app.commit().unwrap();
    head
}

fn vector(v: Value) -> Vec<(String, f64)> {
    match v {
        Value::Vector(v) => v.into_iter().map(|s| (s.labels.to_string(), s.v)).collect(),
        other => panic!("expected vector, got {other:?}"),
    }
}

fn q(db: &Head, query: &str, t: i64) -> Vec<(String, f64)> {
    vector(
        Engine::new(EngineOptions::default())
            .instant(db, query, t)
            .unwrap(),
    )
}

#[test]
fn selectors_with_all_matchers() {
    let db = db();
    assert_eq!(q(&db, "up", 30_000).len(), 3);
    assert_eq!(q(&db, r#"up{job="api"}"#, 30_000).len(), 2);
    assert_eq!(
        q(&db, r#"up{job!="api"}"#, 30_000),
        [(r#"up{instance="a", job="db"}"#.to_string(), 4.0)]
    );
    assert_eq!(q(&db, r#"up{job=~"a.*"}"#, 30_000).len(), 2);
    assert_eq!(q(&db, r#"up{job!~"a.*"}"#, 30_000).len(), 1);
    assert_eq!(q(&db, r#"{__name__="up", instance="b"}"#, 30_000).len(), 1);
}

#[test]
fn lookback_and_staleness() {
    let db = db();
    // Last sample at 600 s; the lookback window is left-open (Prometheus 3), so it is
    // visible until just before 5 minutes later.
    assert_eq!(q(&db, "up", 899_999).len(), 3);
    assert_eq!(q(&db, "up", 900_000).len(), 0);
    assert_eq!(q(&db, "gone", 110_000).len(), 1);
    assert_eq!(
        q(&db, "gone", 116_000).len(),
        0,
        "a stale marker ends the series"
    );
}

#[test]
fn offset_and_at() {
    let db = db();
    assert_eq!(
        q(&db, r#"req{job="db"} offset 1m"#, 120_000),
        [(r#"req{instance="a", job="db"}"#.into(), 240.0)]
    );
    assert_eq!(q(&db, r#"req{job="db"} @ 30"#, 600_000)[0].1, 120.0);
}

#[test]
fn arithmetic_comparison_and_aggregation() {
    let db = db();
    assert_eq!(
        q(&db, r#"up{job="db"} * 2"#, 30_000),
        [(r#"{instance="a", job="db"}"#.into(), 8.0)]
    );
    assert_eq!(q(&db, "up > 1", 30_000).len(), 2);
    assert_eq!(q(&db, "up > bool 1", 30_000).len(), 3);
    assert_eq!(q(&db, "sum(up)", 30_000), [("{}".into(), 7.0)]);
    assert_eq!(
        q(&db, "sum by (job) (up)", 30_000),
        [
            (r#"{job="api"}"#.into(), 3.0),
            (r#"{job="db"}"#.into(), 4.0)
        ]
    );
    assert_eq!(q(&db, "count without (instance) (up)", 30_000).len(), 2);
    assert_eq!(q(&db, "req / up", 30_000).len(), 3);
}

#[test]
fn errors_are_typed() {
    let e = Engine::new(EngineOptions::default());
    let db = db();
    assert!(matches!(
        e.instant(&db, "up{", 0),
        Err(EngineError::Parse(_))
    ));
    assert!(matches!(
        e.instant(&db, "req / on(job) up", 30_000),
        Err(EngineError::Execution(_))
    ));
}

#[test]
fn range_query_steps() {
    let db = db();
    let e = Engine::new(EngineOptions::default());
    let Value::Matrix(m) = e.range(&db, r#"up{job="db"}"#, 0, 60_000, 15_000).unwrap() else {
        panic!()
    };
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].samples.len(), 5);
    assert_eq!(m[0].samples[4], Sample { t: 60_000, v: 4.0 });
}

#[test]
fn limits_fail_with_prometheus_errors() {
    let db = db();
    let small = Engine::new(EngineOptions {
        max_samples: 10,
        ..EngineOptions::default()
    });
    let err = small.range(&db, "up", 0, 600_000, 15_000).unwrap_err();
    assert!(matches!(err, EngineError::TooManySamples(_)));
    assert_eq!(
        err.to_string(),
        "query processing would load too many samples into memory in query execution"
    );
    let timed = Engine::new(EngineOptions {
        timeout: Some(std::time::Duration::ZERO),
        ..EngineOptions::default()
    });
    std::thread::sleep(std::time::Duration::from_millis(2));
    let err = timed
        .instant(&db, "sum(rate(req[5m]))", 600_000)
        .unwrap_err();
    assert!(matches!(err, EngineError::Timeout(_)), "{err}");
    let cancel = Cancel::new();
    cancel.cancel();
    let err = Engine::new(EngineOptions::default())
        .instant_query(&db, "up", 0, Some(&cancel))
        .unwrap_err();
    assert!(matches!(err, EngineError::Cancelled(_)));
}

#[test]
fn range_query_streams_rate_and_sums() {
    let db = db();
    let e = Engine::new(EngineOptions::default());
    let Value::Matrix(m) = e
        .range(&db, "sum by (job) (rate(req[1m]))", 60_000, 600_000, 60_000)
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(m.len(), 2);
    // req grows by v per second for each series: api has 1+2, db has 4.
    assert!((m[0].samples[0].v - 3.0).abs() < 1e-9, "{:?}", m[0]);
    assert!((m[1].samples[9].v - 4.0).abs() < 1e-9, "{:?}", m[1]);
}

#[test]
fn hostile_queries_do_not_panic() {
    let db = db();
    let e = Engine::new(EngineOptions::default());
    for q in [
        "topk(1e300, up)",
        "quantile(NaN, up)",
        "histogram_quantile(0.5, up)",
        "label_replace(up, \"a\", \"$9\", \"job\", \"(.*)\")",
        "round(up, 0)",
        "up[1m:0s]",
        "rate(up[1ms])",
        "predict_linear(up[5m], 1e308)",
        "count_values(\"v\", up)",
        "up @ 1e12",
        "sort_by_label(up, \"nonexistent\")",
        "absent_over_time(nothing[1m:10s])",
    ] {
        let _ = e.instant(&db, q, 300_000);
        let _ = e.range(&db, q, 0, 300_000, 30_000);
    }
}

#[test]
fn holt_winters_is_double_exponential_smoothing() {
    let db = db();
    let hw = q(&db, "holt_winters(req[5m], 0.5, 0.5)", 300_000);
    let des = q(
        &db,
        "double_exponential_smoothing(req[5m], 0.5, 0.5)",
        300_000,
    );
    assert_eq!(hw.len(), 3);
    assert_eq!(hw, des);
    // Same argument checking as the 3.x name.
    let e = Engine::new(EngineOptions::default());
    assert!(matches!(
        e.parse("holt_winters(req[5m], 0.5)"),
        Err(EngineError::Parse(_))
    ));
    assert!(matches!(
        e.parse("holt_winters(req, 0.5, 0.5)"),
        Err(EngineError::Parse(_))
    ));
    // Plain parser calls see the alias once it is registered.
    assert!(
        Engine::new(EngineOptions::default())
            .parse("holt_winters(x[1m], 0.1, 0.9)")
            .is_ok()
    );
}

#[test]
fn max_concurrency_queues_queries() {
    let db = db();
    let gate = QueryGate::new(1);
    let opts = EngineOptions {
        max_concurrency: Some(gate.clone()),
        timeout: Some(std::time::Duration::from_millis(200)),
        ..Default::default()
    };
    // A slot is taken and given back per query.
    let e = Engine::new(opts.clone());
    assert_eq!(vector(e.instant(&db, "up", 300_000).unwrap()).len(), 3);
    assert_eq!(gate.active(), 0);
    // With the only slot held, a query waits, then times out in the queue.
    let held = gate.acquire(None, None).unwrap();
    let err = Engine::new(opts.clone())
        .instant(&db, "up", 300_000)
        .unwrap_err();
    assert_eq!(err.to_string(), "query timed out in query queue");
    // ... and runs as soon as the slot is free.
    let waiter = std::thread::spawn({
        let opts = opts.clone();
        move || {
            let db = self::db();
            Engine::new(opts)
                .instant(&db, "up", 300_000)
                .map(|v| vector(v).len())
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(50));
    drop(held);
    assert_eq!(waiter.join().unwrap().unwrap(), 3);
    assert_eq!(gate.active(), 0);
}

/// `sum(rate(x[5m]))` folds one input series at a time: it fits a sample limit far below
/// what the input vector would hold, which `rate(x[5m])` alone exceeds, and its result is
/// the same as without the limit.
#[test]
fn aggregations_stream_their_input() {
    let head = Head::new(HeadOptions::default());
    let mut app = head.appender();
    for i in 0..200 {
        let l = Labels::from_pairs([("__name__", "c_total".to_string()), ("i", i.to_string())]);
        for t in (0..=3600).step_by(15) {
            app.append(None, &l, t * 1000, (t * (i + 1)) as f64)
                .unwrap();
        }
    }
    app.commit().unwrap();
    let limited = |parallelism| {
        Engine::new(EngineOptions {
            max_samples: 5_000,
            parallelism,
            ..EngineOptions::default()
        })
    };
    let unlimited = Engine::new(EngineOptions::default());
    let (s, e, step) = (0, 3_600_000, 15_000);
    for query in [
        "sum(rate(c_total[5m]))",
        "count(c_total)",
        "stddev(c_total)",
    ] {
        let want = unlimited.range(&head, query, s, e, step).unwrap();
        for p in [1, 2] {
            let got = limited(p).range(&head, query, s, e, step);
            assert_eq!(got.unwrap(), want, "{query} with {p} threads");
        }
    }
    for query in ["rate(c_total[5m])", "c_total", "quantile(0.5, c_total)"] {
        let err = limited(1).range(&head, query, s, e, step).unwrap_err();
        assert!(
            matches!(err, EngineError::TooManySamples(_)),
            "{query}: {err}"
        );
    }
}

/// Split over threads, every part has at least two steps: a 7-step query on 3 threads is
/// still a range query in each part (`sort` warns, as for the whole query).
#[test]
fn split_parts_are_range_queries() {
    let db = db();
    let split = Engine::new(EngineOptions {
        parallelism: 3,
        min_steps_per_part: 2,
        ..EngineOptions::default()
    });
    let whole = Engine::new(EngineOptions {
        parallelism: 1,
        ..EngineOptions::default()
    });
    for q in [
        "sort(up)",
        "sum by (job) (rate(req[1m]))",
        "up + on(job) group_left sum by (job) (up)",
    ] {
        for steps in 4..12 {
            let (s, e) = (0, (steps - 1) * 15_000);
            let a = split.range_query(&db, q, s, e, 15_000, None).unwrap();
            let b = whole.range_query(&db, q, s, e, 15_000, None).unwrap();
            // Everything but the timings (and the samples each part re-read) is the same.
            assert_eq!(
                (a.value, a.warnings, a.infos),
                (b.value, b.warnings, b.infos),
                "{q} over {steps} steps"
            );
        }
    }
}

#[test]
fn parts_cover_the_steps_with_two_or_more_each() {
    for parts in 1..6usize {
        for steps in 2 * parts..40 {
            let b = super::engine::part_bounds(1_000, 15, steps, parts);
            assert_eq!(b.len(), parts);
            assert_eq!(b[0].0, 1_000);
            assert_eq!(b[parts - 1].1, 1_000 + (steps as i64 - 1) * 15);
            for (i, &(a, z)) in b.iter().enumerate() {
                assert!(
                    z - a >= 15,
                    "{steps} steps, {parts} parts: part {i} {a}..{z}"
                );
                if i > 0 {
                    assert_eq!(a, b[i - 1].1 + 15);
                }
            }
        }
    }
}

/// A deterministic pseudo-random sequence (xorshift64) for the tests' data.
fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

/// `rate`, `increase` and `delta` cache what a window's times give from one series to the
/// next at the same step: over many series sharing timestamps (counters near zero, resets,
/// gaps), every series' result must equal, bit for bit, the same query over that series
/// alone (where nothing is reused).
#[test]
fn extrapolation_reused_across_series_is_exact() {
    let head = Head::new(HeadOptions::default());
    let mut app = head.appender();
    let mut next = xorshift(0x2545_f491_4f6c_dd1du64);
    // One timestamp column with jitter and a gap, shared by every series.
    let mut ts = Vec::new();
    let mut t = 1_000i64;
    for i in 0..400 {
        t += 15_000 + (next() % 7) as i64 - 3 + if i == 200 { 120_000 } else { 0 };
        ts.push(t);
    }
    for k in 0..40 {
        let l = Labels::from_pairs([("__name__", "c"), ("k", &format!("{k:02}"))]);
        let mut v = (k % 4) as f64 * 0.5;
        for (i, &t) in ts.iter().enumerate() {
            v += (next() % (1 + k as u64 * 7)) as f64 / 4.0;
            if k % 5 == 0 && i % 97 == 0 {
                v = (next() % 3) as f64;
            }
            app.append(None, &l, t, v).unwrap();
        }
    }
    app.commit().unwrap();
    let e = Engine::new(EngineOptions::default());
    let end = *ts.last().unwrap();
    for f in ["rate", "increase", "delta"] {
        for range in ["1m", "5m", "37s"] {
            let all = e
                .range(&head, &format!("{f}(c[{range}])"), 0, end, 60_000)
                .unwrap();
            let Value::Matrix(all) = all else { panic!() };
            assert_eq!(all.len(), 40);
            for s in &all {
                let k = s.labels.get("k").unwrap();
                let one = e
                    .range(
                        &head,
                        &format!("{f}(c{{k=\"{k}\"}}[{range}])"),
                        0,
                        end,
                        60_000,
                    )
                    .unwrap();
                let Value::Matrix(one) = one else { panic!() };
                let a: Vec<(i64, u64)> = s.samples.iter().map(|p| (p.t, p.v.to_bits())).collect();
                let b: Vec<(i64, u64)> = one[0]
                    .samples
                    .iter()
                    .map(|p| (p.t, p.v.to_bits()))
                    .collect();
                assert_eq!(a, b, "{f}(c[{range}]) for k={k}");
            }
        }
    }
}

/// `max_over_time` and `min_over_time` keep the window's extreme across the steps of a range
/// query: each step must equal the instant query at that time (one whole window scanned as
/// Prometheus does), bit for bit, with NaN, signed zeros, ties and gaps in the data.
#[test]
fn sliding_extremes_equal_a_scan_of_each_window() {
    let head = Head::new(HeadOptions::default());
    let mut app = head.appender();
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
    for k in 0..6 {
        let l = Labels::from_pairs([("__name__", "g"), ("k", &format!("{k}"))]);
        let mut t = 0i64;
        for _ in 0..300 {
            t += 10_000 + if next().is_multiple_of(23) { 90_000 } else { 0 };
            let v = match next() % 11 {
                0 => f64::NAN,
                1 => 0.0,
                2 => -0.0,
                3 => 5.0,
                _ => (next() % 1000) as f64 / 10.0 - 50.0,
            };
            app.append(None, &l, t, v).unwrap();
        }
    }
    app.commit().unwrap();
    let e = Engine::new(EngineOptions::default());
    for f in ["max_over_time", "min_over_time"] {
        for range in ["30s", "2m", "7m"] {
            let query = format!("{f}(g[{range}])");
            let Value::Matrix(m) = e.range(&head, &query, 0, 4_000_000, 20_000).unwrap() else {
                panic!()
            };
            assert_eq!(m.len(), 6);
            for s in &m {
                for p in &s.samples {
                    let inst = vector(e.instant(&head, &query, p.t).unwrap());
                    let want = inst
                        .iter()
                        .find(|(l, _)| *l == s.labels.to_string())
                        .map(|x| x.1)
                        .unwrap();
                    assert_eq!(p.v.to_bits(), want.to_bits(), "{query} at {}", p.t);
                }
            }
        }
    }
}
