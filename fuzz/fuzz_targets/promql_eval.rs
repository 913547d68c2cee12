#![no_main]
//! PromQL parse and evaluate over a small fixed head (counters, gauges, a classic and a native
//! histogram, a stale series): arbitrary queries, as instant and as short range queries, give
//! a value or an error, never a panic. Tight sample and time limits keep runaway queries
//! short, as `--query.max-samples` and `--query.timeout` do in vigil.
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use std::time::Duration;
use vigil_model::histogram::FloatHistogram;
use vigil_model::{Appendable, Labels, stale_nan};
use vigil_promql::{Engine, EngineOptions};
use vigil_tsdb::{Head, HeadOptions};

fn head() -> &'static Head {
    static HEAD: OnceLock<Head> = OnceLock::new();
    HEAD.get_or_init(|| {
        let head = Head::new(HeadOptions::default());
        let mut app = head.appender();
        for (job, inst, v) in [("api", "a", 1.0), ("api", "b", 2.0), ("db", "a", 4.0)] {
            let up = Labels::from_pairs([("__name__", "up"), ("job", job), ("instance", inst)]);
            let req = Labels::from_pairs([("__name__", "http_requests_total"), ("job", job), ("instance", inst)]);
            for t in (0..=600).step_by(15) {
                app.append(None, &up, t * 1000, v).unwrap();
                app.append(None, &req, t * 1000, v * t as f64).unwrap();
                for (le, f) in [("0.1", 0.2), ("1", 0.7), ("+Inf", 1.0)] {
                    let b = Labels::from_pairs([
                        ("__name__", "latency_seconds_bucket"),
                        ("job", job),
                        ("instance", inst),
                        ("le", le),
                    ]);
                    app.append(None, &b, t * 1000, f * t as f64).unwrap();
                }
            }
        }
        let nh = Labels::from_pairs([("__name__", "latency_native"), ("job", "api")]);
        for t in (0..=600).step_by(15) {
            let n = t as f64;
            let h = FloatHistogram {
                schema: 0,
                zero_threshold: 1e-128,
                zero_count: n,
                count: 3.0 * n,
                sum: 2.5 * n,
                positive_spans: vec![vigil_model::histogram::Span { offset: 0, length: 2 }],
                positive_buckets: vec![n, n],
                ..Default::default()
            };
            app.append_histogram(None, &nh, t * 1000, &h).unwrap();
        }
        let gone = Labels::from_pairs([("__name__", "gone")]);
        app.append(None, &gone, 100_000, 1.0).unwrap();
        app.append(None, &gone, 115_000, stale_nan()).unwrap();
        app.commit().unwrap();
        head
    })
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Engine::new(EngineOptions {
            max_samples: 50_000,
            max_points_per_series: 200,
            timeout: Some(Duration::from_millis(500)),
            parallelism: 1,
            ..EngineOptions::default()
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else {
        return;
    };
    if q.len() > 4096 {
        return;
    }
    let (db, e) = (head(), engine());
    let _ = e.instant(db, q, 300_000);
    let _ = e.range(db, q, 0, 600_000, 30_000);
});
