//! `ml-service`: the example service of `config/prometheus.yml`, a toy model behind HTTP.
//!
//! `GET|POST /predict?x=1.5` answers `{"prediction": 2x+1}` from a "linear model"; `/metrics`
//! exports what the seed's dashboards and `config/alerts.yml` expect:
//! `request_processing_seconds` (summary), `http_requests_total{method,status}`,
//! `prediction_latency_seconds` (histogram) and `model_accuracy` (gauge). Latency and errors
//! can be injected with flags and changed at runtime with `GET|POST /admin/faults?latency=0.7&error_rate=0.1`
//! (so a test can make `HighResponseTime` fire and then resolve). `--synthetic-rps` makes the
//! service send itself traffic, so rates exist without an external load generator.
//! Everything lives in one small file: it is an example, not a library.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Parser;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(
    name = "ml-service",
    about = "Toy ML model service exporting Prometheus metrics"
)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "localhost:8000")]
    listen: String,
    /// Extra latency added to every prediction, in seconds.
    #[arg(long, default_value_t = 0.0)]
    latency: f64,
    /// Fraction of predictions that fail with HTTP 500 (0..1).
    #[arg(long = "error-rate", default_value_t = 0.0)]
    error_rate: f64,
    /// Predictions per second the service sends itself (0: none).
    #[arg(long = "synthetic-rps", default_value_t = 0.0)]
    synthetic_rps: f64,
}

const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Default)]
struct Metrics {
    processing_sum: f64,
    processing_count: u64,
    requests: BTreeMap<(String, u16), u64>,
    buckets: [u64; BUCKETS.len()],
    latency_sum: f64,
    latency_count: u64,
    served: u64,
}

struct App {
    faults: Mutex<(f64, f64)>,
    metrics: Mutex<Metrics>,
    started: Instant,
}

impl App {
    /// One prediction with the current faults; records every metric.
    async fn predict(&self, method: &str, x: f64) -> Result<f64, ()> {
        let started = Instant::now();
        let (latency, error_rate) = *self.faults.lock();
        let model_started = Instant::now();
        if latency > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(latency)).await;
        }
        let prediction = 2.0 * x + 1.0;
        let model_secs = model_started.elapsed().as_secs_f64();
        let mut m = self.metrics.lock();
        m.served += 1;
        // Deterministic error injection: every n-th request fails.
        let fail = error_rate > 0.0
            && (m.served as f64 * error_rate).floor()
                > ((m.served - 1) as f64 * error_rate).floor();
        let status = if fail { 500 } else { 200 };
        *m.requests.entry((method.to_string(), status)).or_default() += 1;
        for (i, b) in BUCKETS.iter().enumerate() {
            if model_secs <= *b {
                m.buckets[i] += 1;
            }
        }
        m.latency_sum += model_secs;
        m.latency_count += 1;
        m.processing_sum += started.elapsed().as_secs_f64();
        m.processing_count += 1;
        if fail { Err(()) } else { Ok(prediction) }
    }

    fn render(&self) -> String {
        let m = self.metrics.lock();
        let mut o = String::new();
        o.push_str("# HELP request_processing_seconds Time spent processing request\n# TYPE request_processing_seconds summary\n");
        let _ = writeln!(o, "request_processing_seconds_count {}", m.processing_count);
        let _ = writeln!(o, "request_processing_seconds_sum {}", m.processing_sum);
        o.push_str(
            "# HELP http_requests_total Total HTTP requests\n# TYPE http_requests_total counter\n",
        );
        if m.requests.is_empty() {
            o.push_str("http_requests_total{method=\"POST\",status=\"200\"} 0\n");
        }
        for ((method, status), n) in &m.requests {
            let _ = writeln!(
                o,
                "http_requests_total{{method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        o.push_str("# HELP prediction_latency_seconds Model prediction latency\n# TYPE prediction_latency_seconds histogram\n");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                o,
                "prediction_latency_seconds_bucket{{le=\"{b}\"}} {}",
                m.buckets[i]
            );
        }
        let _ = writeln!(
            o,
            "prediction_latency_seconds_bucket{{le=\"+Inf\"}} {}",
            m.latency_count
        );
        let _ = writeln!(o, "prediction_latency_seconds_sum {}", m.latency_sum);
        let _ = writeln!(o, "prediction_latency_seconds_count {}", m.latency_count);
        o.push_str("# HELP model_accuracy Current model accuracy\n# TYPE model_accuracy gauge\n");
        // A slowly drifting toy accuracy between 0.90 and 0.96.
        let t = self.started.elapsed().as_secs_f64();
        let _ = writeln!(o, "model_accuracy {:.4}", 0.93 + 0.03 * (t / 60.0).sin());
        o
    }
}

type St = State<Arc<App>>;

async fn predict(
    State(app): St,
    method: axum::http::Method,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let x = q.get("x").and_then(|v| v.parse().ok()).unwrap_or(1.0);
    match app.predict(method.as_str(), x).await {
        Ok(p) => axum::Json(serde_json::json!({ "prediction": p })).into_response(),
        Err(()) => (StatusCode::INTERNAL_SERVER_ERROR, "injected error\n").into_response(),
    }
}

async fn faults(State(app): St, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut f = app.faults.lock();
    if let Some(v) = q.get("latency") {
        match v.parse::<f64>() {
            Ok(l) if l >= 0.0 && l.is_finite() => f.0 = l,
            _ => {
                return (StatusCode::BAD_REQUEST, "latency must be seconds >= 0\n").into_response();
            }
        }
    }
    if let Some(v) = q.get("error_rate") {
        match v.parse::<f64>() {
            Ok(e) if (0.0..=1.0).contains(&e) => f.1 = e,
            _ => {
                return (StatusCode::BAD_REQUEST, "error_rate must be in [0, 1]\n").into_response();
            }
        }
    }
    axum::Json(serde_json::json!({ "latency": f.0, "error_rate": f.1 })).into_response()
}

async fn metrics(State(app): St) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        app.render(),
    )
        .into_response()
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let app = Arc::new(App {
        faults: Mutex::new((cli.latency, cli.error_rate)),
        metrics: Mutex::new(Metrics::default()),
        started: Instant::now(),
    });
    if cli.synthetic_rps > 0.0 {
        let app = app.clone();
        let period = Duration::from_secs_f64(1.0 / cli.synthetic_rps);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let app = app.clone();
                tokio::spawn(async move {
                    let _ = app.predict("POST", 1.0).await;
                });
            }
        });
    }
    let router = axum::Router::new()
        .route("/predict", get(predict).post(predict))
        .route("/admin/faults", get(faults).post(faults))
        .route("/metrics", get(metrics))
        .with_state(app);
    let listener = match tokio::net::TcpListener::bind(&cli.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", cli.listen);
            std::process::exit(1);
        }
    };
    eprintln!("ml-service listening on {}", cli.listen);
    if let Err(e) = axum::serve(listener, router).await {
        eprintln!("server error: {e}");
        std::process::exit(1);
    }
}
