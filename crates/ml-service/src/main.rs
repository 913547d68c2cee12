//! `ml-service`: the example service of `config/prometheus.yml`, a toy model behind HTTP.
//!
//! `GET|POST /predict?x=1.5` answers `{"prediction": 2x+1}` from a "linear model"; `/metrics`
//! exports what the seed's dashboards and `config/alerts.yml` expect:
//! `request_processing_seconds` (summary), `http_requests_total{method,status}`,
//! `prediction_latency_seconds` (histogram) and `model_accuracy` (gauge). Latency and errors
//! can be injected with flags and changed at runtime with `GET|POST /admin/faults?latency=0.7&error_rate=0.1`
//! (so a test can make `HighResponseTime` fire and then resolve). `--synthetic-rps` makes the
//! service send itself traffic, so rates exist without an external load generator.
//!
//! For drift detection (`FeatureDrift`, docs/drift.md) it also exports the model's inputs,
//! `model_input_value{feature="x"|"z"}`, and its output score `model_prediction_score`
//! (`1/(1+e^-(2x+z))`), both histograms. Synthetic requests draw `x` ~ N(0, 1) and `z` ~
//! U(-1, 1) from low-discrepancy (Weyl) sequences, so any few hundred consecutive requests
//! already have close to the exact distribution: deterministic, and an unshifted feature's
//! PSI stays near 0. `--drift-shift S` (or `/admin/faults?drift_shift=S` at runtime) adds `S`
//! to feature `x` of every request, as a broken upstream feature pipeline would.
//!
//! For categorical drift it exports the predicted class, `model_predictions_total{class=
//! "cat"|"dog"|"bird"}` (from the score: below 0.3, below 0.7, above), and a categorical
//! input, `model_input_category_total{feature="country", value=...}` (synthetic requests:
//! us 40 %, de 25 %, fr 20 %, jp 15 %, from a third Weyl sequence). `--category-shift S` (or
//! `/admin/faults?category_shift=S`) sends a share `S` of synthetic requests from a country
//! never seen before, "br", the rest keeping their mix; a drift shift of `x` moves the
//! predicted classes on its own.
//! Everything lives in one small file: it is an example, not a library. The same service
//! instrumented with the OpenTelemetry SDK, pushing over OTLP instead of being scraped, is
//! `otel/ml_service_otel.py` (docs/otlp.md).

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
    /// Shift added to input feature `x` of every prediction (data drift; 0: none).
    #[arg(
        long = "drift-shift",
        default_value_t = 0.0,
        allow_hyphen_values = true
    )]
    drift_shift: f64,
    /// Share (0..1) of synthetic requests that come from a new country, "br".
    #[arg(long = "category-shift", default_value_t = 0.0)]
    category_shift: f64,
}

/// Faults injected at start or through `/admin/faults`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Faults {
    /// Extra latency of every prediction, in seconds.
    latency: f64,
    /// Fraction of predictions that fail.
    error_rate: f64,
    /// Shift added to feature `x`.
    drift_shift: f64,
    /// Share of synthetic requests from the new country "br".
    category_shift: f64,
}

/// Predicted classes, by score: below 0.3, below 0.7, the rest.
const CLASSES: [&str; 3] = ["cat", "dog", "bird"];
/// Countries of the categorical input and their shares in synthetic traffic.
const COUNTRIES: [(&str, f64); 4] = [("us", 0.4), ("de", 0.25), ("fr", 0.2), ("jp", 0.15)];
/// The country a category shift sends requests from.
const NEW_COUNTRY: &str = "br";

/// The class predicted for `score`.
fn class_of(score: f64) -> &'static str {
    if score < 0.3 {
        CLASSES[0]
    } else if score < 0.7 {
        CLASSES[1]
    } else {
        CLASSES[2]
    }
}

/// The country of a synthetic request drawn as `u` ∈ [0, 1): [`NEW_COUNTRY`] below `shift`,
/// otherwise [`COUNTRIES`] by their shares over the rest of the interval.
fn country_of(u: f64, shift: f64) -> &'static str {
    if u < shift {
        return NEW_COUNTRY;
    }
    let mut v = (u - shift) / (1.0 - shift);
    for (c, share) in COUNTRIES {
        if v < share {
            return c;
        }
        v -= share;
    }
    COUNTRIES[COUNTRIES.len() - 1].0
}

const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The model's input features (`feature` label of `model_input_value`).
const FEATURES: [&str; 2] = ["x", "z"];
/// Bucket bounds of `model_input_value` (besides `+Inf`).
const INPUT_BUCKETS: [f64; 11] = [-3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0];
/// Bucket bounds of `model_prediction_score` (besides `+Inf`).
const SCORE_BUCKETS: [f64; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/// A classic histogram's cumulative bucket counts, sum and count.
#[derive(Clone)]
struct Hist<const N: usize> {
    buckets: [u64; N],
    sum: f64,
    count: u64,
}

impl<const N: usize> Default for Hist<N> {
    fn default() -> Self {
        Hist {
            buckets: [0; N],
            sum: 0.0,
            count: 0,
        }
    }
}

impl<const N: usize> Hist<N> {
    fn observe(&mut self, bounds: &[f64; N], v: f64) {
        for (i, b) in bounds.iter().enumerate() {
            if v <= *b {
                self.buckets[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    /// `name_bucket{labels,le}` lines, then `_sum` and `_count`. `labels` ends with a comma
    /// when not empty.
    fn render(&self, o: &mut String, name: &str, labels: &str, bounds: &[f64; N]) {
        for (i, b) in bounds.iter().enumerate() {
            let _ = writeln!(o, "{name}_bucket{{{labels}le=\"{b}\"}} {}", self.buckets[i]);
        }
        let _ = writeln!(o, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", self.count);
        let labels = match labels.trim_end_matches(',') {
            "" => String::new(),
            l => format!("{{{l}}}"),
        };
        let _ = writeln!(o, "{name}_sum{labels} {}", self.sum);
        let _ = writeln!(o, "{name}_count{labels} {}", self.count);
    }
}

/// The zero bucket's half-width of the native histograms (client_golang's default, 2^-128).
const NATIVE_ZERO_THRESHOLD: f64 = 2.938_735_877_055_719e-39;
/// Schema of the native histograms: 8 buckets per power of two (growth factor 2^(1/8) ≈ 1.09,
/// what client_golang picks for `NativeHistogramBucketFactor: 1.1`).
const NATIVE_SCHEMA: i32 = 3;

/// A native (sparse, exponential) histogram: observations counted per bucket index at
/// [`NATIVE_SCHEMA`], bucket `i` holding `(2^((i−1)/8), 2^(i/8)]` (mirrored for negatives).
#[derive(Clone, Default)]
struct Native {
    positive: BTreeMap<i32, u64>,
    negative: BTreeMap<i32, u64>,
    zero: u64,
}

impl Native {
    fn observe(&mut self, v: f64) {
        let a = v.abs();
        if a <= NATIVE_ZERO_THRESHOLD || !a.is_finite() {
            // ±Inf go to the last bucket in client libraries; NaN nowhere: keep it simple.
            if a <= NATIVE_ZERO_THRESHOLD {
                self.zero += 1;
            }
            return;
        }
        let idx = (a.log2() * f64::from(1u32 << NATIVE_SCHEMA)).ceil() as i32;
        let side = if v > 0.0 {
            &mut self.positive
        } else {
            &mut self.negative
        };
        *side.entry(idx).or_default() += 1;
    }
}

/// Hand-written protobuf for the delimited `io.prometheus.client.MetricFamily` exposition
/// (field numbers from client_model's `metrics.proto`): the example service needs no protobuf
/// library for the few messages it writes.
mod pb {
    pub fn varint(o: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            o.push(v as u8 | 0x80);
            v >>= 7;
        }
        o.push(v as u8);
    }
    fn key(o: &mut Vec<u8>, field: u32, wire: u8) {
        varint(o, (u64::from(field) << 3) | u64::from(wire));
    }
    pub fn uint(o: &mut Vec<u8>, field: u32, v: u64) {
        key(o, field, 0);
        varint(o, v);
    }
    pub fn sint(o: &mut Vec<u8>, field: u32, v: i64) {
        key(o, field, 0);
        varint(o, ((v << 1) ^ (v >> 63)) as u64);
    }
    pub fn double(o: &mut Vec<u8>, field: u32, v: f64) {
        key(o, field, 1);
        o.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(o: &mut Vec<u8>, field: u32, b: &[u8]) {
        key(o, field, 2);
        varint(o, b.len() as u64);
        o.extend_from_slice(b);
    }
}

/// One exposed value in protobuf form.
enum PbValue<'a> {
    Counter(f64),
    Gauge(f64),
    Summary {
        count: u64,
        sum: f64,
    },
    Histogram {
        classic: &'a [(f64, u64)],
        count: u64,
        sum: f64,
        native: &'a Native,
    },
}

/// Appends one length-delimited `MetricFamily` with one metric per `(labels, value)`.
fn pb_family(
    out: &mut Vec<u8>,
    name: &str,
    help: &str,
    kind: u64,
    metrics: &[(Vec<(&str, String)>, PbValue)],
) {
    let mut f = Vec::new();
    pb::bytes(&mut f, 1, name.as_bytes());
    pb::bytes(&mut f, 2, help.as_bytes());
    pb::uint(&mut f, 3, kind);
    for (labels, value) in metrics {
        let mut m = Vec::new();
        for (n, v) in labels {
            let mut l = Vec::new();
            pb::bytes(&mut l, 1, n.as_bytes());
            pb::bytes(&mut l, 2, v.as_bytes());
            pb::bytes(&mut m, 1, &l);
        }
        let mut v = Vec::new();
        let field = match value {
            PbValue::Counter(x) => {
                pb::double(&mut v, 1, *x);
                3
            }
            PbValue::Gauge(x) => {
                pb::double(&mut v, 1, *x);
                2
            }
            PbValue::Summary { count, sum } => {
                pb::uint(&mut v, 1, *count);
                pb::double(&mut v, 2, *sum);
                4
            }
            PbValue::Histogram {
                classic,
                count,
                sum,
                native,
            } => {
                pb::uint(&mut v, 1, *count);
                pb::double(&mut v, 2, *sum);
                for (ub, c) in *classic {
                    let mut b = Vec::new();
                    pb::uint(&mut b, 1, *c);
                    pb::double(&mut b, 2, *ub);
                    pb::bytes(&mut v, 3, &b);
                }
                pb::sint(&mut v, 5, i64::from(NATIVE_SCHEMA));
                pb::double(&mut v, 6, NATIVE_ZERO_THRESHOLD);
                pb::uint(&mut v, 7, native.zero);
                for (buckets, span_field, delta_field) in
                    [(&native.negative, 9, 10), (&native.positive, 12, 13)]
                {
                    // Spans of consecutive indices; counts as deltas in span order.
                    let mut last: Option<i32> = None;
                    let mut spans: Vec<(i32, u32)> = Vec::new();
                    for &i in buckets.keys() {
                        match last {
                            Some(l) if i == l + 1 => spans.last_mut().unwrap().1 += 1,
                            Some(l) => spans.push((i - l - 1, 1)),
                            None => spans.push((i, 1)),
                        }
                        last = Some(i);
                    }
                    for (offset, length) in spans {
                        let mut sp = Vec::new();
                        pb::sint(&mut sp, 1, i64::from(offset));
                        pb::uint(&mut sp, 2, u64::from(length));
                        pb::bytes(&mut v, span_field, &sp);
                    }
                    let mut prev = 0i64;
                    for &c in buckets.values() {
                        pb::sint(&mut v, delta_field, c as i64 - prev);
                        prev = c as i64;
                    }
                }
                7
            }
        };
        pb::bytes(&mut m, field, &v);
        pb::bytes(&mut f, 4, &m);
    }
    pb::varint(out, f.len() as u64);
    out.extend_from_slice(&f);
}

/// The `n`-th synthetic request's features: `x` ~ N(0, 1) and `z` ~ U(-1, 1), from the Weyl
/// sequences `frac(n·α)` with α = the golden ratio's conjugate and √2 − 1 (in 64-bit fixed
/// point, so exact for every `n`).
fn synthetic_features(n: u64) -> (f64, f64) {
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15; // (√5 − 1)/2 · 2^64
    const SQRT2: u64 = 0x6A09_E667_F3BC_C909; // (√2 − 1)·2^64 ≈ 0.4142 · 2^64
    let frac = |a: u64| (n.wrapping_mul(a) >> 11) as f64 / (1u64 << 53) as f64;
    let u = frac(GOLDEN).clamp(1e-12, 1.0 - 1e-12);
    (inverse_normal_cdf(u), 2.0 * frac(SQRT2) - 1.0)
}

/// The uniform draw in [0, 1) that picks the `n`-th synthetic request's country: the Weyl
/// sequence of √3 − 1, independent of the two above.
fn synthetic_country_draw(n: u64) -> f64 {
    const SQRT3: u64 = 0xBB67_AE85_84CA_A73B; // (√3 − 1)·2^64 ≈ 0.7321 · 2^64
    (n.wrapping_mul(SQRT3) >> 11) as f64 / (1u64 << 53) as f64
}

/// Φ⁻¹(p) by Acklam's rational approximation (relative error below 1.2e-9).
fn inverse_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    const LOW: f64 = 0.02425;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[derive(Default)]
struct Metrics {
    processing_sum: f64,
    processing_count: u64,
    requests: BTreeMap<(String, u16), u64>,
    buckets: [u64; BUCKETS.len()],
    latency_sum: f64,
    latency_count: u64,
    served: u64,
    inputs: [Hist<{ INPUT_BUCKETS.len() }>; FEATURES.len()],
    scores: Hist<{ SCORE_BUCKETS.len() }>,
    /// The same three histograms as native histograms (protobuf exposition only).
    latency_native: Native,
    inputs_native: [Native; FEATURES.len()],
    scores_native: Native,
    /// Predictions by class ([`CLASSES`] order).
    predictions: [u64; CLASSES.len()],
    /// Requests by country (every known country from the start, others once seen).
    countries: BTreeMap<String, u64>,
}

struct App {
    /// Latency (s), error rate, and the drift shift of feature `x`.
    faults: Mutex<Faults>,
    metrics: Mutex<Metrics>,
    started: Instant,
}

impl App {
    /// One prediction with the current faults; records every metric.
    async fn predict(&self, method: &str, x: f64, z: f64, country: &str) -> Result<f64, ()> {
        let started = Instant::now();
        let Faults {
            latency,
            error_rate,
            drift_shift,
            ..
        } = *self.faults.lock();
        let x = x + drift_shift;
        let model_started = Instant::now();
        if latency > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(latency)).await;
        }
        let prediction = 2.0 * x + 1.0;
        let score = 1.0 / (1.0 + (-(2.0 * x + z)).exp());
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
        m.latency_native.observe(model_secs);
        m.inputs[0].observe(&INPUT_BUCKETS, x);
        m.inputs[1].observe(&INPUT_BUCKETS, z);
        m.inputs_native[0].observe(x);
        m.inputs_native[1].observe(z);
        m.scores.observe(&SCORE_BUCKETS, score);
        m.scores_native.observe(score);
        let class = CLASSES
            .iter()
            .position(|c| *c == class_of(score))
            .unwrap_or(0);
        m.predictions[class] += 1;
        *m.countries.entry(country.to_string()).or_default() += 1;
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
        o.push_str("# HELP model_input_value Values of the model's input features\n# TYPE model_input_value histogram\n");
        for (f, h) in FEATURES.iter().zip(&m.inputs) {
            h.render(
                &mut o,
                "model_input_value",
                &format!("feature=\"{f}\","),
                &INPUT_BUCKETS,
            );
        }
        o.push_str("# HELP model_prediction_score Scores the model predicted\n# TYPE model_prediction_score histogram\n");
        m.scores
            .render(&mut o, "model_prediction_score", "", &SCORE_BUCKETS);
        o.push_str("# HELP model_predictions_total Predictions by predicted class\n# TYPE model_predictions_total counter\n");
        for (c, n) in CLASSES.iter().zip(&m.predictions) {
            let _ = writeln!(o, "model_predictions_total{{class=\"{c}\"}} {n}");
        }
        o.push_str("# HELP model_input_category_total Requests by value of a categorical input\n# TYPE model_input_category_total counter\n");
        for (c, n) in &m.countries {
            let _ = writeln!(
                o,
                "model_input_category_total{{feature=\"country\",value=\"{c}\"}} {n}"
            );
        }
        o.push_str("# HELP model_accuracy Current model accuracy\n# TYPE model_accuracy gauge\n");
        // A slowly drifting toy accuracy between 0.90 and 0.96.
        let t = self.started.elapsed().as_secs_f64();
        let _ = writeln!(o, "model_accuracy {:.4}", 0.93 + 0.03 * (t / 60.0).sin());
        o
    }
}

impl App {
    /// The same metrics in the protobuf exposition, the three histograms with both their
    /// classic buckets and native ones (as client_golang exposes a histogram that has both).
    fn render_proto(&self) -> Vec<u8> {
        let m = self.metrics.lock();
        let mut o = Vec::new();
        pb_family(
            &mut o,
            "request_processing_seconds",
            "Time spent processing request",
            2,
            &[(
                vec![],
                PbValue::Summary {
                    count: m.processing_count,
                    sum: m.processing_sum,
                },
            )],
        );
        let mut requests: Vec<(Vec<(&str, String)>, PbValue)> = m
            .requests
            .iter()
            .map(|((method, status), n)| {
                (
                    vec![("method", method.clone()), ("status", status.to_string())],
                    PbValue::Counter(*n as f64),
                )
            })
            .collect();
        if requests.is_empty() {
            requests.push((
                vec![("method", "POST".into()), ("status", "200".into())],
                PbValue::Counter(0.0),
            ));
        }
        pb_family(
            &mut o,
            "http_requests_total",
            "Total HTTP requests",
            0,
            &requests,
        );
        let cumulative = |bounds: &[f64], counts: &[u64]| -> Vec<(f64, u64)> {
            bounds.iter().copied().zip(counts.iter().copied()).collect()
        };
        let lat = cumulative(&BUCKETS, &m.buckets);
        pb_family(
            &mut o,
            "prediction_latency_seconds",
            "Model prediction latency",
            4,
            &[(
                vec![],
                PbValue::Histogram {
                    classic: &lat,
                    count: m.latency_count,
                    sum: m.latency_sum,
                    native: &m.latency_native,
                },
            )],
        );
        let inputs: Vec<Vec<(f64, u64)>> = m
            .inputs
            .iter()
            .map(|h| cumulative(&INPUT_BUCKETS, &h.buckets))
            .collect();
        let input_metrics: Vec<(Vec<(&str, String)>, PbValue)> = FEATURES
            .iter()
            .enumerate()
            .map(|(i, f)| {
                (
                    vec![("feature", f.to_string())],
                    PbValue::Histogram {
                        classic: &inputs[i],
                        count: m.inputs[i].count,
                        sum: m.inputs[i].sum,
                        native: &m.inputs_native[i],
                    },
                )
            })
            .collect();
        pb_family(
            &mut o,
            "model_input_value",
            "Values of the model's input features",
            4,
            &input_metrics,
        );
        let scores = cumulative(&SCORE_BUCKETS, &m.scores.buckets);
        pb_family(
            &mut o,
            "model_prediction_score",
            "Scores the model predicted",
            4,
            &[(
                vec![],
                PbValue::Histogram {
                    classic: &scores,
                    count: m.scores.count,
                    sum: m.scores.sum,
                    native: &m.scores_native,
                },
            )],
        );
        let predictions: Vec<(Vec<(&str, String)>, PbValue)> = CLASSES
            .iter()
            .zip(&m.predictions)
            .map(|(c, n)| (vec![("class", c.to_string())], PbValue::Counter(*n as f64)))
            .collect();
        pb_family(
            &mut o,
            "model_predictions_total",
            "Predictions by predicted class",
            0,
            &predictions,
        );
        let countries: Vec<(Vec<(&str, String)>, PbValue)> = m
            .countries
            .iter()
            .map(|(c, n)| {
                (
                    vec![("feature", "country".to_string()), ("value", c.clone())],
                    PbValue::Counter(*n as f64),
                )
            })
            .collect();
        pb_family(
            &mut o,
            "model_input_category_total",
            "Requests by value of a categorical input",
            0,
            &countries,
        );
        let t = self.started.elapsed().as_secs_f64();
        let acc = ((0.93 + 0.03 * (t / 60.0).sin()) * 1e4).round() / 1e4;
        pb_family(
            &mut o,
            "model_accuracy",
            "Current model accuracy",
            1,
            &[(vec![], PbValue::Gauge(acc))],
        );
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
    let z = q.get("z").and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let country = q.get("country").map_or("us", String::as_str);
    match app.predict(method.as_str(), x, z, country).await {
        Ok(p) => axum::Json(serde_json::json!({ "prediction": p })).into_response(),
        Err(()) => (StatusCode::INTERNAL_SERVER_ERROR, "injected error\n").into_response(),
    }
}

async fn faults(State(app): St, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut f = app.faults.lock();
    if let Some(v) = q.get("latency") {
        match v.parse::<f64>() {
            Ok(l) if l >= 0.0 && l.is_finite() => f.latency = l,
            _ => {
                return (StatusCode::BAD_REQUEST, "latency must be seconds >= 0\n").into_response();
            }
        }
    }
    if let Some(v) = q.get("error_rate") {
        match v.parse::<f64>() {
            Ok(e) if (0.0..=1.0).contains(&e) => f.error_rate = e,
            _ => {
                return (StatusCode::BAD_REQUEST, "error_rate must be in [0, 1]\n").into_response();
            }
        }
    }
    if let Some(v) = q.get("drift_shift") {
        match v.parse::<f64>() {
            Ok(d) if d.is_finite() => f.drift_shift = d,
            _ => {
                return (StatusCode::BAD_REQUEST, "drift_shift must be a number\n").into_response();
            }
        }
    }
    if let Some(v) = q.get("category_shift") {
        match v.parse::<f64>() {
            Ok(c) if (0.0..1.0).contains(&c) => f.category_shift = c,
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    "category_shift must be in [0, 1)\n",
                )
                    .into_response();
            }
        }
    }
    axum::Json(serde_json::json!({
        "latency": f.latency,
        "error_rate": f.error_rate,
        "drift_shift": f.drift_shift,
        "category_shift": f.category_shift,
    }))
    .into_response()
}

/// Content type of the delimited protobuf exposition.
const PROTO_CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// `/metrics`: the protobuf exposition (with native histograms) when the scraper's `Accept`
/// asks for it, as Prometheus does with `scrape_native_histograms: true`; text otherwise.
async fn metrics(State(app): St, headers: axum::http::HeaderMap) -> Response {
    let wants_proto = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',').any(|part| {
                let part = part.trim();
                part.starts_with("application/vnd.google.protobuf")
                    && part.contains("proto=io.prometheus.client.MetricFamily")
                    && !part.contains("q=0,")
                    && !part.ends_with("q=0")
            })
        });
    if wants_proto {
        return (
            [(axum::http::header::CONTENT_TYPE, PROTO_CONTENT_TYPE)],
            app.render_proto(),
        )
            .into_response();
    }
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
        faults: Mutex::new(Faults {
            latency: cli.latency,
            error_rate: cli.error_rate,
            drift_shift: cli.drift_shift,
            category_shift: cli.category_shift.clamp(0.0, 0.999),
        }),
        metrics: Mutex::new(Metrics {
            countries: COUNTRIES.iter().map(|(c, _)| (c.to_string(), 0)).collect(),
            ..Metrics::default()
        }),
        started: Instant::now(),
    });
    if cli.synthetic_rps > 0.0 {
        let app = app.clone();
        let period = Duration::from_secs_f64(1.0 / cli.synthetic_rps);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            let mut n: u64 = 0;
            loop {
                tick.tick().await;
                n += 1;
                let (x, z) = synthetic_features(n);
                let shift = app.faults.lock().category_shift;
                let country = country_of(synthetic_country_draw(n), shift);
                let app = app.clone();
                tokio::spawn(async move {
                    let _ = app.predict("POST", x, z, country).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Per-bucket shares of feature `f` (0: x, 1: z) over synthetic requests `range`.
    fn shares(range: std::ops::Range<u64>, f: usize, shift: f64) -> Vec<f64> {
        let mut h = Hist::<{ INPUT_BUCKETS.len() }>::default();
        for n in range {
            let (x, z) = synthetic_features(n);
            h.observe(&INPUT_BUCKETS, if f == 0 { x + shift } else { z });
        }
        let mut prev = 0;
        let mut out: Vec<f64> = h
            .buckets
            .iter()
            .map(|&c| {
                let s = (c - prev) as f64 / h.count as f64;
                prev = c;
                s
            })
            .collect();
        out.push((h.count - prev) as f64 / h.count as f64);
        out
    }

    /// PSI as in docs/drift.md (shares clamped to at least 1e-4).
    fn psi(p: &[f64], q: &[f64]) -> f64 {
        p.iter()
            .zip(q)
            .map(|(&p, &q)| {
                let (p, q) = (p.max(1e-4), q.max(1e-4));
                (p - q) * (p / q).ln()
            })
            .sum()
    }

    #[test]
    fn synthetic_features_have_their_distributions() {
        let n = 100_000u64;
        let (mut sx, mut sxx, mut sz) = (0.0, 0.0, 0.0);
        for i in 1..=n {
            let (x, z) = synthetic_features(i);
            assert!((-1.0..=1.0).contains(&z));
            sx += x;
            sxx += x * x;
            sz += z;
        }
        let n = n as f64;
        assert!((sx / n).abs() < 0.01, "mean of x {}", sx / n);
        assert!((sxx / n - 1.0).abs() < 0.01, "variance of x {}", sxx / n);
        assert!((sz / n).abs() < 0.01, "mean of z {}", sz / n);
        assert!((inverse_normal_cdf(0.975) - 1.959964).abs() < 1e-6);
        assert!((inverse_normal_cdf(0.01) + 2.326348).abs() < 1e-6);
    }

    /// One hour at 20 requests a second against the hour before (the FeatureDrift rule's
    /// comparison, with an offset), and 20 s against 20 s 30 s earlier (the e2e test's).
    #[test]
    fn unshifted_psi_is_near_zero_and_a_shift_is_significant() {
        let hour = 72_000u64;
        for f in [0, 1] {
            let p = psi(&shares(hour..2 * hour, f, 0.0), &shares(1..hour, f, 0.0));
            println!("feature {}: PSI {p:.6} over an hour", FEATURES[f]);
            assert!(p < 0.01, "feature {f}: PSI {p} over an hour");
            let p = psi(&shares(1000..1400, f, 0.0), &shares(400..800, f, 0.0));
            println!("feature {}: PSI {p:.6} over 20 s", FEATURES[f]);
            assert!(p < 0.05, "feature {f}: PSI {p} over 20 s");
        }
        let p = psi(&shares(hour..2 * hour, 0, 1.0), &shares(1..hour, 0, 0.0));
        println!("x shifted by 1: PSI {p:.6} over an hour");
        assert!(p > 0.5, "x shifted by 1: PSI {p}");
        let p = psi(&shares(1000..1400, 0, 1.0), &shares(400..800, 0, 0.0));
        println!("x shifted by 1: PSI {p:.6} over 20 s");
        assert!(p > 0.5, "x shifted by 1 over 20 s: PSI {p}");
    }

    /// Class and country shares of synthetic requests `range`.
    fn categorical_shares(range: std::ops::Range<u64>, shift: f64) -> (Vec<f64>, Vec<f64>) {
        let (mut classes, mut countries) = (vec![0.0; 3], vec![0.0; 5]);
        let n = (range.end - range.start) as f64;
        for i in range {
            let (x, z) = synthetic_features(i);
            let class = class_of(1.0 / (1.0 + (-(2.0 * (x + shift) + z)).exp()));
            classes[CLASSES.iter().position(|c| *c == class).unwrap()] += 1.0 / n;
            let c = country_of(synthetic_country_draw(i), shift.min(0.5) * 0.6);
            let at = COUNTRIES.iter().position(|k| k.0 == c).unwrap_or(4);
            countries[at] += 1.0 / n;
        }
        (classes, countries)
    }

    #[test]
    fn countries_and_classes_have_their_shares_and_shift() {
        // 10 s of traffic at 50 requests a second, unshifted: within 1 % of the shares.
        let (classes, countries) = categorical_shares(1000..1500, 0.0);
        for (got, (_, want)) in countries.iter().zip(COUNTRIES) {
            assert!((got - want).abs() < 0.01, "{countries:?}");
        }
        assert_eq!(countries[4], 0.0, "no br without a shift");
        // The score 1/(1+e^−(2x+z)) splits at 0.3 and 0.7: all three classes are common.
        assert!(classes.iter().all(|c| *c > 0.2), "{classes:?}");
        // Shifted (x by 1, 30 % of countries to br): both move a lot.
        let (shifted, countries) = categorical_shares(1000..1500, 1.0);
        assert!((countries[4] - 0.3).abs() < 0.01, "{countries:?}");
        assert!(shifted[2] > classes[2] + 0.2, "{classes:?} → {shifted:?}");
        assert_eq!(country_of(0.0, 0.0), "us");
        assert_eq!(country_of(0.999, 0.0), "jp");
        assert_eq!(country_of(0.1, 0.2), "br");
    }

    #[test]
    fn drift_shift_flag() {
        assert_eq!(
            Cli::try_parse_from(["ml-service"]).unwrap().drift_shift,
            0.0
        );
        let cli = Cli::try_parse_from(["ml-service", "--drift-shift", "-0.5"]).unwrap();
        assert_eq!(cli.drift_shift, -0.5);
        let cli = Cli::try_parse_from(["ml-service", "--drift-shift=1.5"]).unwrap();
        assert_eq!(cli.drift_shift, 1.5);
    }

    #[test]
    fn histograms_render_cumulative_buckets() {
        let mut h = Hist::<2>::default();
        h.observe(&[0.0, 1.0], -1.0);
        h.observe(&[0.0, 1.0], 0.5);
        h.observe(&[0.0, 1.0], 7.0);
        let mut o = String::new();
        h.render(&mut o, "v", "feature=\"x\",", &[0.0, 1.0]);
        assert_eq!(
            o,
            "v_bucket{feature=\"x\",le=\"0\"} 1\nv_bucket{feature=\"x\",le=\"1\"} 2\nv_bucket{feature=\"x\",le=\"+Inf\"} 3\nv_sum{feature=\"x\"} 6.5\nv_count{feature=\"x\"} 3\n"
        );
        let mut o = String::new();
        h.render(&mut o, "s", "", &[0.0, 1.0]);
        assert!(o.contains("s_bucket{le=\"0\"} 1\n") && o.contains("s_sum 6.5\n"));
    }

    #[test]
    fn native_buckets_are_schema_3() {
        let mut n = Native::default();
        for v in [1.0, 2.0, 1.05, -0.5, 0.0] {
            n.observe(v);
        }
        // 1 is the upper bound of bucket 0, 2 of bucket 8; 1.05 lies in (1, 2^(1/8)].
        assert_eq!(n.positive.get(&0), Some(&1));
        assert_eq!(n.positive.get(&8), Some(&1));
        assert_eq!(n.positive.get(&1), Some(&1));
        assert_eq!(n.negative.get(&-8), Some(&1));
        assert_eq!(n.zero, 1);
    }

    #[test]
    fn protobuf_families_are_length_delimited() {
        let mut native = Native::default();
        native.observe(1.0);
        native.observe(1.05);
        let mut o = Vec::new();
        pb_family(
            &mut o,
            "h",
            "help",
            4,
            &[(
                vec![("a", "b".to_string())],
                PbValue::Histogram {
                    classic: &[(1.0, 1)],
                    count: 2,
                    sum: 2.05,
                    native: &native,
                },
            )],
        );
        // One family: a varint length, then exactly that many bytes, starting with field 1
        // (name, wire type 2) = "h".
        assert_eq!(o[0] as usize, o.len() - 1);
        assert_eq!(&o[1..4], &[0x0a, 1, b'h']);
        // sint encoding (zig-zag) and varints as protobuf defines them.
        let mut v = Vec::new();
        pb::sint(&mut v, 1, -1);
        pb::uint(&mut v, 2, 300);
        assert_eq!(v, [0x08, 0x01, 0x10, 0xac, 0x02]);
    }
}
