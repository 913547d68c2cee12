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
