//! The Grafana provisioning in `config/grafana/` against the real binary: the data source
//! points at vigil with the fixed uid the dashboard uses and the version buildinfo reports,
//! and every panel query of `dashboards/ml-service.json` returns data when vigil scrapes the
//! example `ml-service` (every second, with 5% injected errors), sent as Grafana sends a
//! panel query: a form POST of `query_range`.

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn grafana(rel: &str) -> PathBuf {
    peers::repo().join("config/grafana").join(rel)
}

fn yaml(rel: &str) -> serde_yaml::Value {
    let text = std::fs::read_to_string(grafana(rel)).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `(title, expr)` of every panel target.
fn panel_queries(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap().to_string(),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

/// The provisioning files, without a server: shapes and cross-references.
#[test]
fn provisioning_files_are_consistent() {
    let ds = yaml("provisioning/datasources/vigil.yml");
    assert_eq!(ds["apiVersion"].as_i64(), Some(1));
    let list = ds["datasources"].as_sequence().unwrap();
    assert_eq!(list.len(), 1);
    let d = &list[0];
    assert_eq!(d["type"].as_str(), Some("prometheus"));
    assert_eq!(d["uid"].as_str(), Some("vigil"));
    assert_eq!(d["url"].as_str(), Some("http://localhost:9090"));
    assert_eq!(d["access"].as_str(), Some("proxy"));
    assert_eq!(d["isDefault"].as_bool(), Some(true));
    let j = &d["jsonData"];
    assert_eq!(j["httpMethod"].as_str(), Some("POST"));
    assert_eq!(j["prometheusType"].as_str(), Some("Prometheus"));
    assert_eq!(
        j["prometheusVersion"].as_str(),
        Some(vigil_api::PROMETHEUS_API_VERSION),
        "prometheusVersion is what buildinfo reports"
    );

    let prov = yaml("provisioning/dashboards/vigil.yml");
    let providers = prov["providers"].as_sequence().unwrap();
    assert_eq!(providers[0]["type"].as_str(), Some("file"));
    assert!(providers[0]["options"]["path"].as_str().is_some());

    let text = std::fs::read_to_string(grafana("dashboards/ml-service.json")).unwrap();
    assert!(
        !text.contains("${DS_"),
        "the dashboard must import as-is, without an input data source"
    );
    let dash: Value = serde_json::from_str(&text).unwrap();
    assert!(dash["uid"].as_str().is_some_and(|u| !u.is_empty()));
    let panels = dash["panels"].as_array().unwrap();
    let mut ids = std::collections::BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_i64().unwrap()), "duplicate panel id");
        if p["type"] == "row" {
            assert_eq!(p["gridPos"]["w"], 24, "{}", p["title"]);
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "vigil", "{}", p["title"]);
        for t in p["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["uid"], "vigil", "{}", p["title"]);
            assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()));
        }
        let g = &p["gridPos"];
        assert!(g["x"].as_i64().unwrap() + g["w"].as_i64().unwrap() <= 24);
    }
    let exprs: Vec<String> = panel_queries(&dash).into_iter().map(|(_, e)| e).collect();
    for want in [
        "rate(request_processing_seconds_sum[1m]) / rate(request_processing_seconds_count[1m])",
        "rate(http_requests_total[1m])",
        "histogram_quantile(0.99, sum by (le) (rate(prediction_latency_seconds_bucket[5m])))",
        "model_accuracy",
    ] {
        assert!(exprs.iter().any(|e| e == want), "missing panel {want}");
    }
    assert!(
        exprs.iter().any(|e| e.contains("status=~\"5..\"")),
        "an error-ratio panel"
    );
    assert!(
        exprs.iter().any(|e| e.starts_with("drift_psi(")),
        "a drift panel"
    );
    // Native histograms: a heatmap of the latency histogram, its p99, and drift over the
    // native input histograms (no `_bucket`, no `le`).
    let native = |e: &String| !e.contains("_bucket") && e.contains("model_input_value");
    assert!(exprs.iter().any(native), "a native-histogram drift panel");
    assert!(
        panels.iter().any(|p| p["type"] == "heatmap"
            && p["targets"][0]["expr"] == "sum(rate(prediction_latency_seconds[5m]))"),
        "a native-histogram heatmap panel"
    );
    // A row per drift kind, each followed by panels of that kind's drift functions.
    let rows: Vec<(usize, &str)> = panels
        .iter()
        .enumerate()
        .filter(|(_, p)| p["type"] == "row")
        .map(|(i, p)| (i, p["title"].as_str().unwrap()))
        .collect();
    for (kind, wants) in [
        (
            "classic",
            &[
                "drift_psi(",
                "drift_wasserstein_normed(",
                "drift_hellinger(",
            ][..],
        ),
        (
            "native",
            &["drift_psi(", "drift_wasserstein_normed(", "drift_kl("][..],
        ),
        (
            "categorical",
            &["drift_jsd(", "drift_linf(", "drift_chi2_pvalue("][..],
        ),
        (
            "training",
            &["drift_psi(", "drift_chi2_pvalue(", "@ $baseline"][..],
        ),
    ] {
        let Some(&(at, _)) = rows.iter().find(|(_, t)| t.contains(kind)) else {
            panic!("no {kind} drift row in {rows:?}");
        };
        let under: Vec<String> = panels[at + 1..]
            .iter()
            .take_while(|p| p["type"] != "row")
            .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
            .map(|t| t["expr"].as_str().unwrap().to_string())
            .collect();
        for w in wants {
            assert!(
                under.iter().any(|e| e.contains(w)),
                "{kind} row: no {w} in {under:?}"
            );
        }
    }
    // Every dashboard variable a query uses is defined, with a default.
    let vars: Vec<(String, String)> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                v["current"]["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for e in &exprs {
        let mut rest = e.as_str();
        while let Some(i) = rest.find('$') {
            rest = &rest[i + 1..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                vars.iter().any(|(n, d)| *n == name && !d.is_empty()),
                "${name} in {e} is not a dashboard variable"
            );
        }
    }
}

/// A query with the dashboard variables replaced by short windows, so the test has data in
/// both of the drift panel's windows within seconds instead of a week.
fn with_test_variables(expr: &str, baseline: u64) -> String {
    expr.replace("$window", "10s")
        .replace("$reference", "15s")
        .replace("$baseline", &baseline.to_string())
}

/// A training baseline for the baseline panels, the documented way: rows written as CSV,
/// exported by tools/drift_baseline.py, imported with `vigil tsdb import openmetrics` into
/// `data` at `ts` (seconds).
fn import_baseline(dir: &std::path::Path, data: &std::path::Path, ts: u64) {
    let csv = dir.join("training.csv");
    let mut rows = String::from("x,z,country\n");
    let countries = ["us", "us", "de", "fr", "jp"];
    for i in 0..400 {
        let x = -3.0 + 6.0 * (i as f64 + 0.5) / 400.0;
        let _ = std::fmt::Write::write_fmt(
            &mut rows,
            format_args!("{x},{},{}\n", -x / 3.0, countries[i % 5]),
        );
    }
    std::fs::write(&csv, rows).unwrap();
    import_drift_baseline(dir, &csv, data, "ml-service", ts);
}

/// Every panel query through `query_range`, as Grafana posts it, returns finite data.
#[test]
fn every_panel_query_returns_data() {
    let t0 = Instant::now();
    let (_ml, ml_port) = peers::start_ml_service(&["--synthetic-rps=20", "--error-rate=0.05"]);
    // As config/prometheus.yml scrapes it: native histograms over protobuf, classic kept;
    // with a training baseline imported 5 minutes back for the baseline panels.
    let dir = tempdir("grafana-dashboard");
    let baseline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 300;
    import_baseline(&dir, &dir.join("data"), baseline);
    std::fs::write(dir.join("prometheus.yml"), format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ml-service\n    scrape_native_histograms: true\n    always_scrape_classic_histograms: true\n    static_configs:\n      - targets: [\"127.0.0.1:{ml_port}\"]\n"
    )).unwrap();
    let (_vigil, port) = start_vigil_in(&dir, &dir.join("data"), &[], "vigil.log", &ready_200);

    // The data source's version is what this server reports.
    let (_, build) = api(port, "/api/v1/status/buildinfo");
    let ds = yaml("provisioning/datasources/vigil.yml");
    assert_eq!(
        ds["datasources"][0]["jsonData"]["prometheusVersion"].as_str(),
        build["data"]["version"].as_str()
    );

    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(grafana("dashboards/ml-service.json")).unwrap(),
    )
    .unwrap();
    let queries = panel_queries(&dash);
    assert!(queries.len() >= 5);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    // The drift panel needs both of its windows (10 s, 15 s earlier) filled: about 30 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (title, expr) in &queries {
        // Rates need two scrapes in their window: ask again until the data is there.
        let last = loop {
            let end = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let start = end - 300;
            // Grafana's panel query: form fields sorted, step from the panel's interval.
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("end", end.to_string()),
                    ("query", with_test_variables(expr, baseline)),
                    ("start", start.to_string()),
                    ("step", "2".to_string()),
                ])
                .finish();
            let resp = http
                .post(format!("http://127.0.0.1:{port}/api/v1/query_range"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .header("User-Agent", "Grafana/12.3.0")
                .body(body)
                .send()
                .unwrap();
            let status = resp.status().as_u16();
            let v: Value = serde_json::from_str(&resp.text().unwrap()).unwrap();
            assert_eq!(status, 200, "{title}: {expr}: {v}");
            assert_eq!(v["status"], "success", "{title}: {v}");
            assert_eq!(v["data"]["resultType"], "matrix", "{title}");
            // Float points, or native histograms with observations (the heatmap panel).
            let finite = v["data"]["result"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|s| s["values"].as_array().into_iter().flatten())
                .filter_map(|p| p[1].as_str()?.parse::<f64>().ok())
                .filter(|x| x.is_finite())
                .count()
                + v["data"]["result"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|s| s["histograms"].as_array().into_iter().flatten())
                    .filter(|h| h[1]["buckets"].as_array().is_some_and(|b| !b.is_empty()))
                    .count();
            // The error ratio is the injected 5% once both the 200 and the 500 series have
            // two samples (before that, `or vector(0)` makes it 0).
            let latest = v["data"]["result"][0]["values"]
                .as_array()
                .and_then(|vals| vals.last()?[1].as_str()?.parse::<f64>().ok());
            let settled = !expr.contains("5..") || latest.is_some_and(|x| x > 0.0);
            if finite > 0 && settled {
                break v;
            }
            assert!(
                Instant::now() < deadline,
                "{title}: no finite values from {expr}: {v}"
            );
            std::thread::sleep(Duration::from_millis(250));
        };
        if expr.contains("5..") {
            let vals = last["data"]["result"][0]["values"].as_array().unwrap();
            let latest: f64 = vals.last().unwrap()[1].as_str().unwrap().parse().unwrap();
            assert!(
                (0.02..=0.08).contains(&latest),
                "{title}: {latest} is not about 5%"
            );
        }
        println!("{title}: ok");
    }
    let took = t0.elapsed();
    println!("dashboard queries checked in {took:?}");
    assert!(took < Duration::from_secs(90));
}
