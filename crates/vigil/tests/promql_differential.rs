//! Differential PromQL test against the real Prometheus (Debian package `prometheus`, 2.42).
//!
//! The tests' synthetic targets (`common/target.rs`) write a small OpenMetrics file (2 targets
//! × [`SERIES`] series rounded up to whole models, 3 h at 15 s); it is
//! imported into vigil (`vigil tsdb import openmetrics`) and into Prometheus (`promtool tsdb
//! create-blocks-from openmetrics`), both servers are started on that data without scraping,
//! and a few hundred queries generated from templates (in the style of prometheus/compliance's
//! `promql-test-queries.yml`) are evaluated on both as instant queries at three times and as
//! a range query. Results must have the same series and values (relative difference ≤ 1e-6,
//! NaN = NaN).
//!
//! Prometheus 2.42 differs from the 3.x semantics vigil follows (docs/promql.md). The test
//! accounts for them as follows:
//! * left-open range selectors / lookback window: every sample timestamp in the file has a
//!   non-zero millisecond part (checked below) while every evaluation time, offset, `@` time,
//!   range and subquery step is a whole number of seconds, so no window boundary ever falls
//!   on a sample and closed and left-open windows select the same samples;
//! * `holt_winters` (renamed `double_exponential_smoothing` in 3.x) is queried by its 2.42
//!   name, which vigil keeps as an alias;
//! * the remaining queries whose results differ by design are listed in `KNOWN_DIFFERENCES`
//!   with the reason; they are evaluated and reported, but do not fail the test.
//!
//! `.ci/run` installs the package. Set VIGIL_SKIP_INTEROP=1 to skip on a machine without it.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Series asked for per target.
const SERIES: u32 = 165;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

/// Queries whose results differ between Prometheus 2.42 and 3.x by design, with the reason.
/// Matched exactly against the generated query text.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    (
        "model_accuracy atan2 2",
        "3.x drops the metric name on `atan2` like on the other arithmetic operators; 2.42 keeps it",
    ),
    (
        "1.5 atan2 model_accuracy",
        "3.x drops the metric name on `atan2` like on the other arithmetic operators; 2.42 keeps it",
    ),
    (
        r#"request_processing_seconds{quantile="0.9"} atan2 ignoring(quantile) request_processing_seconds{quantile="0.5"}"#,
        "3.x drops the metric name on `atan2` like on the other arithmetic operators; 2.42 keeps it",
    ),
];

fn peers_present() -> bool {
    if std::env::var_os("VIGIL_SKIP_INTEROP").is_some() {
        eprintln!("VIGIL_SKIP_INTEROP set: differential test skipped");
        return false;
    }
    for bin in [PROMETHEUS, PROMTOOL] {
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: install the Debian package prometheus (as .ci/run does), or set VIGIL_SKIP_INTEROP=1"
        );
    }
    true
}

/// The queries, generated from templates.
fn queries(at: i64) -> Vec<String> {
    let mut q: Vec<String> = Vec::new();
    let mut add = |s: String| {
        if !q.contains(&s) {
            q.push(s)
        }
    };
    // Scalars and literals.
    for s in [
        "42",
        "1.234",
        ".123",
        "1.23e-3",
        "0x3d",
        "Inf",
        "-Inf",
        "NaN",
        "1 + 2 * 3",
        "2 ^ 3 ^ 2",
    ] {
        add(s.to_string());
    }
    // Vector selectors.
    let selectors = [
        "model_accuracy",
        r#"{__name__="model_accuracy"}"#,
        r#"model_accuracy{model="resnet50"}"#,
        r#"model_accuracy{model!="resnet50"}"#,
        r#"model_accuracy{instance=~"127.0.0.1:.*"}"#,
        r#"model_accuracy{instance=~"host"}"#,
        r#"model_accuracy{version!~"v1"}"#,
        r#"model_input_feature_mean{feature=~"f0[0-3]", model="bert-base"}"#,
        r#"{__name__=~"process_.*"}"#,
        r#"{model="resnet50", version="v2", __name__=~"request_processing_seconds.*"}"#,
        r#"http_requests_total{status=~"5.."}"#,
        "nonexistent_metric_name",
        "process_resident_memory_bytes",
        r#"prediction_latency_seconds_bucket{le="0.1"}"#,
    ];
    for s in selectors {
        add(s.to_string());
    }
    for m in [
        "model_accuracy",
        "process_open_fds",
        r#"http_requests_total{method="GET"}"#,
    ] {
        for o in ["1m", "5m", "10m", "-5m", "1h"] {
            add(format!("{m} offset {o}"));
        }
        add(format!("{m} @ {at}"));
        add(format!("{m} @ {at} offset 5m"));
        add(format!("{m} @ start()"));
        add(format!("{m} @ end()"));
    }
    // Range functions.
    let counters = [
        "http_requests_total",
        r#"http_requests_total{status="200", method="POST"}"#,
        "request_processing_seconds_count",
        "prediction_latency_seconds_sum",
        "process_cpu_seconds_total",
    ];
    let gauges = [
        "model_accuracy",
        r#"model_input_feature_mean{feature="f01"}"#,
        "process_resident_memory_bytes",
        r#"request_processing_seconds{quantile="0.9"}"#,
    ];
    let ranges = ["1m", "5m", "15m"];
    for c in counters {
        for r in ranges {
            for f in ["rate", "irate", "increase", "resets"] {
                add(format!("{f}({c}[{r}])"));
            }
        }
        add(format!("rate({c}[5m] offset 10m)"));
        add(format!("rate({c}[5m] @ {at})"));
    }
    for g in gauges {
        for r in ranges {
            for f in [
                "delta",
                "idelta",
                "deriv",
                "changes",
                "avg_over_time",
                "min_over_time",
                "max_over_time",
                "sum_over_time",
                "count_over_time",
                "last_over_time",
                "stddev_over_time",
                "stdvar_over_time",
                "present_over_time",
            ] {
                add(format!("{f}({g}[{r}])"));
            }
        }
        for qq in ["0", "0.5", "0.9", "1"] {
            add(format!("quantile_over_time({qq}, {g}[10m])"));
        }
        for p in ["60", "600", "-300"] {
            add(format!("predict_linear({g}[15m], {p})"));
        }
        add(format!("absent_over_time({g}[5m])"));
        // 2.42 knows only the old name, vigil both (the alias of double_exponential_smoothing).
        for (sf, tf) in [("0.5", "0.5"), ("0.1", "0.9")] {
            add(format!("holt_winters({g}[15m], {sf}, {tf})"));
        }
    }
    add("absent_over_time(nonexistent_metric_name[5m])".to_string());
    add(r#"absent_over_time(nonexistent_metric_name{job="x", a=~"b"}[5m])"#.to_string());
    // Aggregations.
    let rated = "rate(http_requests_total[5m])";
    for agg in [
        "sum", "avg", "min", "max", "count", "stddev", "stdvar", "group",
    ] {
        for grouping in [
            "",
            " by (model)",
            " by (model, status)",
            " without (method)",
            " without (instance, version)",
            " by ()",
        ] {
            add(format!("{agg}{grouping} ({rated})"));
        }
        add(format!("{agg} by (instance) (model_accuracy)"));
    }
    for k in ["1", "3", "100"] {
        add(format!("topk({k}, {rated})"));
        // Many 5xx rates are equal (often 0), and which of equal series `bottomk` keeps is
        // unspecified, so rank series without ties.
        add(format!(
            r#"bottomk({k}, rate(http_requests_total{{status="200"}}[5m]))"#
        ));
        add(format!("topk by (model) ({k}, {rated})"));
        add(format!("bottomk without (status) ({k}, model_accuracy)"));
    }
    for qq in ["-0.5", "0", "0.1", "0.5", "0.75", "0.95", "1", "1.5"] {
        add(format!("quantile({qq}, {rated})"));
        add(format!(
            "quantile by (model) ({qq}, model_input_feature_mean)"
        ));
    }
    add(r#"count_values("value", process_open_fds)"#.to_string());
    add(r#"count_values by (model) ("acc", round(model_accuracy * 100))"#.to_string());
    add(
        r#"count_values without (instance) ("status_code", http_requests_total > 1e12)"#
            .to_string(),
    );
    // Binary operators.
    for op in ["+", "-", "*", "/", "%", "^", "atan2"] {
        add(format!("model_accuracy {op} 2"));
        add(format!("1.5 {op} model_accuracy"));
        add(format!(
            r#"request_processing_seconds{{quantile="0.9"}} {op} ignoring(quantile) request_processing_seconds{{quantile="0.5"}}"#
        ));
        add(format!(
            "rate(request_processing_seconds_sum[5m]) {op} on(instance, model, version) rate(request_processing_seconds_count[5m])"
        ));
    }
    for op in ["==", "!=", ">", "<", ">=", "<="] {
        add(format!("model_accuracy {op} 0.95"));
        add(format!("model_accuracy {op} bool 0.95"));
        add(format!("0.95 {op} bool model_accuracy"));
        add(format!(
            r#"request_processing_seconds{{quantile="0.99"}} {op} ignoring(quantile) request_processing_seconds{{quantile="0.9"}}"#
        ));
        add(format!(
            r#"request_processing_seconds{{quantile="0.99"}} {op} bool ignoring(quantile) request_processing_seconds{{quantile="0.9"}}"#
        ));
        add(format!("1 {op} bool 2"));
    }
    add("sum by (instance, model, version) (rate(http_requests_total[5m])) / on(instance, model, version) group_left rate(request_processing_seconds_count[5m])".to_string());
    add("rate(http_requests_total[5m]) / on(instance, model, version) group_left sum by (instance, model, version) (rate(http_requests_total[5m]))".to_string());
    add("rate(http_requests_total[5m]) / ignoring(method, status) group_left sum without (method, status) (rate(http_requests_total[5m]))".to_string());
    add("model_accuracy * on(instance) group_left(version) process_open_fds".to_string());
    add(
        r#"process_open_fds * on(instance) group_right model_accuracy{model="resnet50"}"#
            .to_string(),
    );
    add("sum by (model) (rate(http_requests_total[5m])) * on(model) group_left(version) model_accuracy".to_string());
    add("model_accuracy + model_accuracy".to_string());
    add("model_accuracy - on(instance, model, version, job) model_accuracy offset 10m".to_string());
    add(
        r#"http_requests_total{status="200"} / ignoring(status) http_requests_total{status="500"}"#
            .to_string(),
    );
    add(r#"-model_accuracy"#.to_string());
    add(r#"- - model_accuracy"#.to_string());
    // Set operators.
    let a = r#"model_accuracy > 0.9"#;
    let b = r#"model_accuracy{model="resnet50"}"#;
    for op in ["and", "or", "unless"] {
        add(format!("{a} {op} {b}"));
        add(format!("{b} {op} {a}"));
        add(format!("{a} {op} on(instance) process_open_fds"));
        add(format!(
            "{a} {op} ignoring(model, version) process_open_fds"
        ));
        add(format!(
            "rate(http_requests_total[5m]) {op} http_requests_total{{status=\"200\"}}"
        ));
    }
    add("vector(1) or vector(2)".to_string());
    // Histograms.
    for qq in ["-0.5", "0", "0.25", "0.5", "0.9", "0.99", "1", "1.5"] {
        add(format!(
            "histogram_quantile({qq}, rate(prediction_latency_seconds_bucket[5m]))"
        ));
        add(format!(
            "histogram_quantile({qq}, sum by (le) (rate(prediction_latency_seconds_bucket[5m])))"
        ));
        add(format!(
            "histogram_quantile({qq}, sum by (le, model) (rate(prediction_latency_seconds_bucket[15m])))"
        ));
    }
    add("histogram_quantile(0.9, prediction_latency_seconds_bucket)".to_string());
    add(r#"histogram_quantile(0.9, sum without (le) (rate(prediction_latency_seconds_bucket[5m])))"#.to_string());
    // Labels.
    add(r#"label_replace(model_accuracy, "m", "$1", "model", "(.*)-.*")"#.to_string());
    add(r#"label_replace(model_accuracy, "model", "x-$1", "model", "(.*)")"#.to_string());
    add(r#"label_replace(model_accuracy, "model", "", "model", ".*")"#.to_string());
    add(
        r#"label_replace(model_accuracy, "nonexistent", "$1", "nonexistent_src", "(.*)")"#
            .to_string(),
    );
    add(
        r#"label_replace(rate(http_requests_total[5m]), "code", "${1}xx", "status", "(.).*")"#
            .to_string(),
    );
    add(r#"label_join(model_accuracy, "mv", "-", "model", "version")"#.to_string());
    add(r#"label_join(model_accuracy, "mv", "", "model", "version", "instance")"#.to_string());
    add(r#"label_join(model_accuracy, "model", ",")"#.to_string());
    // Math functions.
    for f in [
        "abs",
        "ceil",
        "floor",
        "round",
        "exp",
        "ln",
        "log2",
        "log10",
        "sqrt",
        "sgn",
        "sin",
        "cos",
        "tan",
        "asin",
        "acos",
        "atan",
        "sinh",
        "cosh",
        "tanh",
        "asinh",
        "acosh",
        "atanh",
        "deg",
        "rad",
        "timestamp",
        "sort",
        "sort_desc",
    ] {
        add(format!("{f}(model_accuracy - 0.5)"));
        add(format!("{f}(model_input_feature_mean)"));
    }
    add("round(model_input_feature_mean, 0.1)".to_string());
    add("round(model_input_feature_mean, 5)".to_string());
    add("clamp(model_input_feature_mean, 0, 1)".to_string());
    add("clamp(model_input_feature_mean, 1, 0)".to_string());
    add("clamp_min(model_input_feature_mean, 1)".to_string());
    add("clamp_max(model_input_feature_mean, 1)".to_string());
    add("exp(process_open_fds)".to_string());
    add("ln(-model_accuracy)".to_string());
    add("scalar(sum(process_open_fds))".to_string());
    add("scalar(process_open_fds)".to_string());
    add("model_accuracy * scalar(count(process_open_fds))".to_string());
    add("vector(time())".to_string());
    add("vector(1)".to_string());
    add("pi()".to_string());
    // Time functions.
    for f in [
        "time",
        "minute",
        "hour",
        "day_of_week",
        "day_of_month",
        "day_of_year",
        "days_in_month",
        "month",
        "year",
    ] {
        if f == "time" {
            add("time()".to_string());
        } else {
            add(format!("{f}()"));
            add(format!("{f}(process_start_time_seconds)"));
        }
    }
    add("time() - process_start_time_seconds".to_string());
    add("timestamp(model_accuracy offset 5m)".to_string());
    // Subqueries.
    add("max_over_time(rate(http_requests_total[5m])[30m:1m])".to_string());
    add("min_over_time(rate(http_requests_total[5m])[30m:5m] offset 5m)".to_string());
    add("avg_over_time(model_accuracy[10m:30s])".to_string());
    add("sum_over_time(model_accuracy[10m:1m])".to_string());
    add("rate(http_requests_total[5m:1m])".to_string());
    add("deriv(process_resident_memory_bytes[30m:2m])".to_string());
    add("max_over_time(sum by (model) (rate(http_requests_total[1m]))[20m:])".to_string());
    add(format!("avg_over_time(model_accuracy[10m:1m] @ {at})"));
    add("last_over_time(deriv(model_accuracy[10m])[10m:3m])".to_string());
    add("count_over_time(max_over_time(model_accuracy[5m:30s])[15m:1m])".to_string());
    // absent.
    add("absent(nonexistent_metric_name)".to_string());
    add(r#"absent(nonexistent_metric_name{job="x", instance=~"y.*", model="m"})"#.to_string());
    add("absent(model_accuracy)".to_string());
    add(r#"absent(sum(nonexistent_metric_name))"#.to_string());
    add(r#"absent(model_accuracy{model="nonexistent"})"#.to_string());
    q
}

/// One result, normalised: label set → points (time in ms, value).
type Res = Result<BTreeMap<String, Vec<(i64, f64)>>, String>;

fn parse_value(v: &Value) -> (i64, f64) {
    let t = (v[0].as_f64().unwrap() * 1000.0).round() as i64;
    let s = v[1].as_str().unwrap();
    let f = match s {
        "NaN" => f64::NAN,
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => s.parse().unwrap(),
    };
    (t, f)
}

fn labels(m: &Value) -> String {
    let map: BTreeMap<&str, &str> = m
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
                .collect()
        })
        .unwrap_or_default();
    let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(", "))
}

fn query(port: u16, path: &str) -> Res {
    let (_, body) =
        http_get(&format!("http://127.0.0.1:{port}{path}")).map_err(|e| format!("http: {e}"))?;
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("not JSON ({e}): {body}"))?;
    if v["status"] != "success" {
        return Err(format!("{}: {}", v["errorType"], v["error"]));
    }
    let data = &v["data"];
    let mut out = BTreeMap::new();
    match data["resultType"].as_str().unwrap() {
        "scalar" | "string" => {
            let r = &data["result"];
            if data["resultType"] == "string" {
                out.insert(format!("string {}", r[1]), vec![]);
            } else {
                out.insert("scalar".to_string(), vec![parse_value(r)]);
            }
        }
        "vector" => {
            for s in data["result"].as_array().unwrap() {
                let prev = out.insert(labels(&s["metric"]), vec![parse_value(&s["value"])]);
                assert!(prev.is_none(), "duplicate series in {body}");
            }
        }
        "matrix" => {
            for s in data["result"].as_array().unwrap() {
                let pts = s["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(parse_value)
                    .collect();
                out.insert(labels(&s["metric"]), pts);
            }
        }
        t => panic!("result type {t}"),
    }
    Ok(out)
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    let d = (a - b).abs();
    d <= 1e-6 * a.abs().max(b.abs()) || d < 1e-12
}

/// Whether two results differ only in which of equal-valued series a `topk`/`bottomk` kept:
/// which of tied series survives is unspecified (Prometheus' heap order), so two correct
/// engines may pick different ones. Equal means: at every timestamp the same multiset of
/// values, and every series kept by one side only has a value the other side's
/// one-sided series also have at that timestamp (so the pick differs only among ties).
fn same_up_to_ties(
    p: &BTreeMap<String, Vec<(i64, f64)>>,
    v: &BTreeMap<String, Vec<(i64, f64)>>,
) -> bool {
    type ByTs = BTreeMap<i64, Vec<f64>>;
    let by_ts = |r: &BTreeMap<String, Vec<(i64, f64)>>,
                 only: Option<&BTreeMap<String, Vec<(i64, f64)>>>| {
        let mut m = ByTs::new();
        for (k, pts) in r {
            if only.is_some_and(|o| o.contains_key(k)) {
                continue;
            }
            for &(t, x) in pts {
                m.entry(t).or_default().push(x);
            }
        }
        for xs in m.values_mut() {
            xs.sort_by(f64::total_cmp);
        }
        m
    };
    let same = |a: &ByTs, b: &ByTs| {
        a.len() == b.len()
            && a.iter().zip(b).all(|((ta, xa), (tb, xb))| {
                ta == tb && xa.len() == xb.len() && xa.iter().zip(xb).all(|(x, y)| close(*x, *y))
            })
    };
    same(&by_ts(p, None), &by_ts(v, None)) && same(&by_ts(p, Some(v)), &by_ts(v, Some(p)))
}

/// None if equal, else a description of the first difference. `ties_allowed` for queries
/// whose result may legitimately pick among equal values (`topk`, `bottomk`).
fn diff(p: &Res, v: &Res, ties_allowed: bool) -> Option<String> {
    match (p, v) {
        (Err(_), Err(_)) => None,
        (Err(e), Ok(_)) => Some(format!("Prometheus failed ({e}), vigil did not")),
        (Ok(_), Err(e)) => Some(format!("vigil failed ({e}), Prometheus did not")),
        (Ok(p), Ok(v)) => {
            let pk: Vec<&String> = p.keys().collect();
            let vk: Vec<&String> = v.keys().collect();
            // In a range query each step ranks anew: the two sides may keep the same series
            // overall and still pick different tied ones at some step (a series then has a
            // point more on one side), so ties are considered whatever the key sets.
            let tied = ties_allowed && same_up_to_ties(p, v);
            if pk != vk && !tied {
                let only_p: Vec<_> = p.keys().filter(|k| !v.contains_key(*k)).take(3).collect();
                let only_v: Vec<_> = v.keys().filter(|k| !p.contains_key(*k)).take(3).collect();
                return Some(format!(
                    "series differ: {} vs {}; only in Prometheus {only_p:?}; only in vigil {only_v:?}",
                    p.len(),
                    v.len()
                ));
            }
            // With ties, the series both kept must still agree point for point.
            for (k, pp) in p {
                let Some(vp) = v.get(k) else { continue };
                if tied {
                    // In a range query each step picks anew: compare the steps both kept.
                    let vm: BTreeMap<i64, f64> = vp.iter().copied().collect();
                    for a in pp {
                        if vm.get(&a.0).is_some_and(|b| !close(a.1, *b)) {
                            return Some(format!(
                                "{k} at {}: Prometheus {} vigil {:?}",
                                a.0,
                                a.1,
                                vm.get(&a.0)
                            ));
                        }
                    }
                    continue;
                }
                if pp.len() != vp.len() {
                    return Some(format!("{k}: {} points vs {}", pp.len(), vp.len()));
                }
                for (a, b) in pp.iter().zip(vp) {
                    if a.0 != b.0 || !close(a.1, b.1) {
                        return Some(format!("{k}: Prometheus {a:?} vigil {b:?}"));
                    }
                }
            }
            None
        }
    }
}

/// Malformed queries: both answer 400 `bad_data` with the parser's `line:column` position
/// (`invalid parameter "query": 1:9: parse error: ...`). The words after the position may
/// differ (2.42's grammar adds context such as "in aggregation"), so they are printed, not
/// compared. Returns the disagreements.
fn malformed_queries_agree(prom_port: u16, vigil_port: u16) -> Vec<String> {
    let bad = [
        "sum(rate(up[5m])",
        "up{job=\"a\"",
        "up +",
        "foo bar",
        "sum by (job up)",
        "rate(up[5m]",
        "1 +* 2",
        "up[5m",
        "up{job=~\"a\" job}",
        "(up",
        "up)",
        "label_replace(up, \"a\", \"b\")))",
        "http_requests_total{status=\"500\"} offset",
        "topk(3,",
        "up\n  and\n  on(",
        "rate(up[5m]) + nosuchfn(up)",
    ];
    let position = |e: &str| -> Option<String> {
        let rest = e.strip_prefix("invalid parameter \"query\": ")?;
        let (pos, _) = rest.split_once(": parse error")?;
        Some(pos.to_string())
    };
    let mut out = Vec::new();
    for q in bad {
        let path = format!("/api/v1/query?query={}&time=1", enc(q));
        let get = |port: u16| {
            let (status, body) = http_get(&format!("http://127.0.0.1:{port}{path}")).unwrap();
            let v: Value = serde_json::from_str(&body).unwrap();
            (
                status,
                v["errorType"].as_str().unwrap_or("").to_string(),
                v["error"].as_str().unwrap_or("").to_string(),
            )
        };
        let (p, v) = (get(prom_port), get(vigil_port));
        eprintln!(
            "malformed {q:?}\n    Prometheus: {}\n    vigil:      {}",
            p.2, v.2
        );
        let (pp, vp) = (position(&p.2), position(&v.2));
        if (p.0, &p.1) != (v.0, &v.1) || pp.is_none() || pp != vp {
            out.push(format!(
                "malformed {q:?}: Prometheus {} {} {:?}, vigil {} {} {:?}",
                p.0, p.1, p.2, v.0, v.1, v.2
            ));
        }
    }
    out
}

#[test]
fn promql_matches_real_prometheus() {
    if !peers_present() {
        return;
    }
    let t0 = Instant::now();
    let dir = tempdir("promql-diff");
    // Data: 3 h ending a little over an hour ago (inside both servers' retention), starting on
    // an hour so block boundaries are alike.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let start = now / 3600 * 3600 - 5 * 3600;
    let om = dir.join("data.om");
    write_openmetrics(&om, &History::new(2, SERIES, start, 3 * 3600));
    // Every sample timestamp has a non-zero millisecond part, so whole-second window
    // boundaries never meet a sample (closed and left-open windows agree).
    let text = std::fs::read_to_string(&om).unwrap();
    let mut samples = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let ts = line.rsplit(' ').next().unwrap();
        let ms = ts.split_once('.').map(|(_, f)| f).unwrap_or("");
        assert!(
            !ms.trim_end_matches('0').is_empty(),
            "sample on a whole second: {line}"
        );
        samples += 1;
    }
    drop(text);
    let st = Command::new(vigil_bin())
        .args(["tsdb", "import", "openmetrics"])
        .arg(&om)
        .arg(dir.join("vigil-data"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "vigil tsdb import failed");
    let out = Command::new(PROMTOOL)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(dir.join("prom-data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&om);
    let cfg = "global:\n  scrape_interval: 15s\nscrape_configs: []\n";
    std::fs::write(dir.join("prometheus.yml"), cfg).unwrap();

    let prom_port = free_port();
    let _prom = Proc {
        child: Command::new(PROMETHEUS)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prom-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .unwrap(),
        name: "prometheus",
    };
    let vigil_port = free_port();
    let _vigil = Proc {
        child: Command::new(vigil_bin())
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("vigil-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{vigil_port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("vigil.log")).unwrap())
            .spawn()
            .unwrap(),
        name: "vigil",
    };
    for port in [prom_port, vigil_port] {
        wait_for(Duration::from_secs(30), "servers ready", || {
            http_get(&format!("http://127.0.0.1:{port}/-/ready")).is_ok_and(|(s, _)| s == 200)
        });
    }
    // Both hold every sample that was written (2.42 cannot run count_over_time over several
    // metric names, so sum per name).
    let names = [
        "http_requests_total",
        "model_accuracy",
        "model_input_feature_mean",
        "prediction_latency_seconds_bucket",
        "prediction_latency_seconds_count",
        "prediction_latency_seconds_sum",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "process_virtual_memory_bytes",
        "request_processing_seconds",
        "request_processing_seconds_count",
        "request_processing_seconds_sum",
    ];
    let count: Vec<String> = names
        .iter()
        .map(|n| format!("sum(count_over_time({n}[4h]))"))
        .collect();
    let probe = format!(
        "/api/v1/query?query={}&time={}",
        enc(&count.join(" + ")),
        start + 4 * 3600
    );
    for (name, port) in [("Prometheus", prom_port), ("vigil", vigil_port)] {
        let r = query(port, &probe).unwrap();
        let n = r.get("{}").unwrap_or_else(|| panic!("{name}: {r:?}"))[0].1;
        assert_eq!(n as usize, samples, "{name} holds {n} of {samples} samples");
    }

    // Evaluation times are whole seconds that are not multiples of any subquery step (30 s,
    // 1 m, 2 m, 5 m), so a subquery window never ends on one of its own inner points either.
    let at = start + 5400 + 17;
    let qs = queries(at);
    let instants = [
        start + 3600 + 13,
        start + 2 * 3600 + 7 * 60 + 13,
        start + 3 * 3600 - 600 + 41,
    ];
    let (rstart, rend, rstep) = (start + 5400 + 13, start + 9000 + 13, 60);
    let known: BTreeMap<&str, &str> = KNOWN_DIFFERENCES.iter().copied().collect();
    let (mut compared, mut matched, mut known_hit) = (0, 0, Vec::new());
    let mut unexpected = Vec::new();
    for q in &qs {
        let mut paths: Vec<String> = instants
            .iter()
            .map(|t| format!("/api/v1/query?query={}&time={t}", enc(q)))
            .collect();
        paths.push(format!(
            "/api/v1/query_range?query={}&start={rstart}&end={rend}&step={rstep}",
            enc(q)
        ));
        let mut first_diff = None;
        let ties_allowed = q.starts_with("topk") || q.starts_with("bottomk");
        for p in &paths {
            let (pr, vr) = std::thread::scope(|s| {
                let a = s.spawn(|| query(prom_port, p));
                let b = s.spawn(|| query(vigil_port, p));
                (a.join().unwrap(), b.join().unwrap())
            });
            if let Some(d) = diff(&pr, &vr, ties_allowed) {
                first_diff.get_or_insert(format!("{p}: {d}"));
            }
        }
        compared += 1;
        match (first_diff, known.get(q.as_str())) {
            (None, None) => matched += 1,
            (None, Some(_)) => {
                matched += 1;
                eprintln!("listed as a known difference but matched: {q}");
            }
            (Some(d), Some(reason)) => known_hit.push(format!("{q}\n    {reason}\n    {d}")),
            (Some(d), None) => unexpected.push(format!("{q}\n    {d}")),
        }
    }
    unexpected.extend(malformed_queries_agree(prom_port, vigil_port));
    eprintln!(
        "{compared} queries compared ({} evaluations each: {} instant, 1 range), {matched} matched, {} known differences, {} unexpected mismatches; {:.1} s",
        instants.len() + 1,
        instants.len(),
        known_hit.len(),
        unexpected.len(),
        t0.elapsed().as_secs_f64()
    );
    for k in &known_hit {
        eprintln!("known difference: {k}");
    }
    if unexpected.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(
        unexpected.is_empty(),
        "{} unexpected mismatches:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}
