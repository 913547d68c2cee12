//! PromQL evaluation of dashboard-style queries over 10,000 series in an in-memory head
//! (1 h of data at 15 s, 2.4 M samples): each query as an instant query at the end of the data
//! and as a range query over the whole hour at a 60 s step (61 steps).
//!
//! Series: `http_requests_total` 10 instances × 25 models × 2 methods × 5 statuses (2,500
//! counters), `prediction_latency_seconds_bucket` 10 × 25 × 12 `le` (3,000 cumulative buckets),
//! `node_cpu_seconds_total` 10 instances × 45 CPUs × 10 modes (4,500 counters).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use vigil_model::{Appendable, Labels};
use vigil_promql::{Engine, EngineOptions};
use vigil_tsdb::{Head, HeadOptions};

const END_MS: i64 = 3_600_000;
const STEP_MS: i64 = 15_000;

fn head() -> Head {
    let head = Head::new(HeadOptions::default());
    let mut series: Vec<(Labels, f64)> = Vec::new();
    for inst in 0..10 {
        let instance = format!("10.0.0.{inst}:9100");
        for m in 0..25 {
            let model = format!("model-{m}");
            for method in ["GET", "POST"] {
                for (k, status) in ["200", "400", "404", "500", "503"].iter().enumerate() {
                    let rate =
                        [50.0, 2.0, 1.0, 0.2, 0.05][k] * (1.0 + (inst * 25 + m) as f64 / 250.0);
                    series.push((
                        Labels::from_pairs([
                            ("__name__", "http_requests_total"),
                            ("job", "api"),
                            ("instance", instance.as_str()),
                            ("model", model.as_str()),
                            ("method", method),
                            ("status", status),
                        ]),
                        rate,
                    ));
                }
            }
            let les = [
                "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
                "+Inf",
            ];
            for (k, le) in les.iter().enumerate() {
                series.push((
                    Labels::from_pairs([
                        ("__name__", "prediction_latency_seconds_bucket"),
                        ("job", "api"),
                        ("instance", instance.as_str()),
                        ("model", model.as_str()),
                        ("le", le),
                    ]),
                    10.0 * (k as f64 + 1.0).powf(1.5),
                ));
            }
        }
        for cpu in 0..45 {
            for (k, mode) in [
                "idle",
                "user",
                "system",
                "iowait",
                "irq",
                "softirq",
                "steal",
                "nice",
                "guest",
                "guest_nice",
            ]
            .iter()
            .enumerate()
            {
                series.push((
                    Labels::from_pairs([
                        ("__name__", "node_cpu_seconds_total"),
                        ("job", "node"),
                        ("instance", instance.as_str()),
                        ("cpu", cpu.to_string().as_str()),
                        ("mode", mode),
                    ]),
                    1.0 / (k as f64 + 1.0),
                ));
            }
        }
    }
    assert_eq!(series.len(), 10_000);
    let mut app = head.appender();
    for (i, (l, rate)) in series.iter().enumerate() {
        let mut v = 0.0;
        let mut t = 0;
        while t <= END_MS {
            // Counters with a little deterministic jitter per step.
            v += rate * 15.0 * (1.0 + ((i as i64 * 31 + t / STEP_MS) % 7) as f64 / 20.0);
            app.append(None, l, t, v.floor()).unwrap();
            t += STEP_MS;
        }
    }
    app.commit().unwrap();
    head
}

const QUERIES: &[(&str, &str)] = &[
    ("rate", "rate(http_requests_total[5m])"),
    (
        "sum_by_rate",
        "sum by (model) (rate(http_requests_total[5m]))",
    ),
    (
        "hist_quantile",
        "histogram_quantile(0.99, sum by (le) (rate(prediction_latency_seconds_bucket[5m])))",
    ),
    (
        "topk",
        r#"topk(5, sum by (instance, model) (rate(http_requests_total{status=~"5.."}[5m])))"#,
    ),
    ("count", r#"count({__name__=~".+"})"#),
    (
        "cpu_by_mode",
        "sum by (instance, mode) (rate(node_cpu_seconds_total[5m]))",
    ),
];

fn bench(c: &mut Criterion) {
    let db = head();
    let engine = Engine::new(EngineOptions::default());
    let mut g = c.benchmark_group("promql_10k_series");
    for (name, q) in QUERIES {
        g.bench_function(format!("instant/{name}"), |b| {
            b.iter(|| black_box(engine.instant(&db, q, END_MS).unwrap()))
        });
        g.bench_function(format!("range_1h_step60s/{name}"), |b| {
            b.iter(|| black_box(engine.range(&db, q, 0, END_MS, 60_000).unwrap()))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
