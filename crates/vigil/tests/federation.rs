//! `/federate` and UTF-8 names (issue 17): a series scraped with a UTF-8 name reaches a
//! legacy consumer with the name escaped as its `Accept` header asks (`underscores` when it
//! says nothing, as Prometheus 2.42 does), and a UTF-8 consumer unchanged. Also
//! `metric_name_validation_scheme: legacy`, which fails a scrape of UTF-8 names, and
//! `metric_name_escaping_scheme` seen by a remote-write receiver. And native histograms: a
//! consumer asking for protobuf (Prometheus 2.42 with `--enable-feature=native-histograms`)
//! gets them as `MetricFamily` messages and stores the same histograms.
//!
//! The Prometheus 2.42 part needs the Debian package (`.ci/run` installs it); set
//! VIGIL_SKIP_INTEROP=1 to skip it on a machine without it.

mod common;

use common::peers::{PROMETHEUS, start_prometheus};
use common::*;
use prost::Message;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;
use vigil_exposition::proto::dto;
use vigil_model::histogram::{CounterResetHint, FloatHistogram, Span};
use vigil_remote::{codec, prompb};

const BODY: &str = "# TYPE \"model.latency\" gauge\n{\"model.latency\",\"model.name\"=\"bert\"} 0.25\n# TYPE ok_total counter\nok_total 3\n";

/// [`BODY`] as a target that honours `escaping=` writes it for a legacy scraper.
const BODY_ESCAPED: &str = "# TYPE model_latency gauge\nmodel_latency{model_name=\"bert\"} 0.25\n# TYPE ok_total counter\nok_total 3\n";

/// A target serving [`BODY`] as text 1.0.0, one thread per connection.
fn serve_utf8() -> u16 {
    serve(false)
}

/// A target serving [`BODY`] as text 1.0.0; when `negotiating`, it answers as current client
/// libraries do: UTF-8 names only when the `Accept` header asks `escaping=allow-utf-8`, else
/// [`BODY_ESCAPED`].
fn serve(negotiating: bool) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let utf8 = !negotiating
                    || String::from_utf8_lossy(&req).lines().any(|l| {
                        l.to_ascii_lowercase().starts_with("accept:")
                            && l.contains("escaping=allow-utf-8")
                    });
                let (body, esc) = if utf8 {
                    (BODY, "allow-utf-8")
                } else {
                    (BODY_ESCAPED, "underscores")
                };
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=1.0.0; charset=utf-8; escaping={esc}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

fn get_with_accept(url: &str, accept: Option<&str>) -> (String, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut rq = client.get(url);
    if let Some(a) = accept {
        rq = rq.header("Accept", a);
    }
    let r = rq.send().unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    (ct, r.text().unwrap())
}

fn query_names(port: u16, q: &str) -> Vec<String> {
    let (_, v) = api(port, &format!("/api/v1/query?query={}", enc(q)));
    v["data"]["result"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|s| s["metric"]["__name__"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// vigil scraping the UTF-8 target; returns once the series is queryable.
fn source() -> (Proc, u16, std::path::PathBuf) {
    let target = serve_utf8();
    let (p, port, dir) = start_vigil(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  external_labels: {{\"site.name\": eu}}\nscrape_configs:\n  - job_name: src\n    static_configs: [{{targets: ['127.0.0.1:{target}']}}]\n"
    ));
    wait_for(Duration::from_secs(20), "the UTF-8 series", || {
        !query_names(port, "{\"model.latency\"}").is_empty()
    });
    (p, port, dir)
}

#[test]
fn federation_escapes_names_as_the_consumer_asks() {
    let (_p, port, _dir) = source();
    let url = format!(
        "http://127.0.0.1:{port}/federate?match[]={}",
        enc("{job=\"src\"}")
    );
    // No escaping parameter: underscores, as expfmt.Negotiate defaults.
    let (ct, body) = get_with_accept(&url, None);
    assert_eq!(
        ct,
        "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"
    );
    assert!(body.contains("# TYPE model_latency untyped\n"), "{body}");
    assert!(
        body.contains("model_latency{instance=\"127.0.0.1:"),
        "{body}"
    );
    assert!(body.contains("model_name=\"bert\""), "{body}");
    assert!(body.contains("site_name=\"eu\""), "{body}");
    assert!(!body.contains("model.latency"), "{body}");
    // Prometheus 3's own Accept: allow-utf-8, the names quoted.
    let (ct, body) = get_with_accept(
        &url,
        Some(
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
        ),
    );
    assert!(ct.ends_with("escaping=allow-utf-8"), "{ct}");
    assert!(
        body.contains("# TYPE \"model.latency\" untyped\n"),
        "{body}"
    );
    assert!(body.contains("{\"model.latency\",instance="), "{body}");
    assert!(body.contains("\"model.name\"=\"bert\""), "{body}");
    let (_, body) = get_with_accept(&url, Some("text/plain;version=0.0.4;escaping=values"));
    assert!(body.contains("U__model_2e_latency{"), "{body}");
    assert!(body.contains("U__model_2e_name=\"bert\""), "{body}");
    let (_, body) = get_with_accept(&url, Some("text/plain;version=0.0.4;escaping=dots"));
    assert!(body.contains("model_dot_latency{"), "{body}");
    // Legacy-valid names are never changed.
    assert!(body.contains("ok_total{"), "{body}");
}

#[test]
fn a_vigil_consumer_gets_escaped_or_utf8_names_and_legacy_validation_fails_the_scrape() {
    let (_src, src_port, _d) = source();
    let target = serve_utf8();
    let fed = |job: &str, extra: &str| {
        format!(
            "  - job_name: {job}\n    honor_labels: true\n    metrics_path: /federate\n    params: {{'match[]': ['{{job=\"src\"}}']}}\n{extra}    static_configs: [{{targets: ['127.0.0.1:{src_port}']}}]\n"
        )
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{}{}  - job_name: strict\n    metric_name_validation_scheme: legacy\n    static_configs: [{{targets: ['127.0.0.1:{target}']}}]\n",
        fed("fed_utf8", ""),
        fed(
            "fed_legacy",
            "    metric_name_escaping_scheme: underscores\n"
        ),
    );
    let (_p, port, _dir) = start_vigil(&config);
    wait_for(Duration::from_secs(20), "both federated copies", || {
        query_names(port, "{\"model.latency\"}").len() == 1
            && query_names(port, "model_latency").len() == 1
    });
    let mut v = serde_json::Value::Null;
    wait_for(
        Duration::from_secs(20),
        "the strict job's first scrape",
        || {
            v = api(
                port,
                &format!("/api/v1/query?query={}", enc("up{job=\"strict\"}")),
            )
            .1;
            !v["data"]["result"][0].is_null()
        },
    );
    assert_eq!(v["data"]["result"][0]["value"][1], "0", "{v}");
    let (_, v) = api(port, "/api/v1/targets?state=active");
    let strict = v["data"]["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["labels"]["job"] == "strict")
        .cloned()
        .unwrap();
    assert!(
        strict["lastError"]
            .as_str()
            .unwrap()
            .starts_with("invalid metric name or label names: {__name__=\"model.latency\""),
        "{strict}"
    );
    assert!(
        query_names(port, "ok_total{job=\"strict\"}").is_empty(),
        "a failed scrape stores nothing"
    );
}

/// A job with `metric_name_escaping_scheme: underscores` asks the target for escaped names
/// (Prometheus 3 escapes nothing itself, neither when scraping nor in remote write), so a
/// legacy remote-write receiver, Prometheus 2.42, gets `model_latency`; the job with the
/// default `allow-utf-8` sends `model.latency` unchanged.
#[test]
fn escaping_scheme_reaches_a_remote_write_receiver() {
    if std::env::var_os("VIGIL_SKIP_INTEROP").is_some() {
        eprintln!("VIGIL_SKIP_INTEROP set: interop test skipped");
        return;
    }
    assert!(
        Path::new(PROMETHEUS).exists(),
        "{PROMETHEUS} is missing: install the Debian package prometheus (as .ci/run does), or set VIGIL_SKIP_INTEROP=1"
    );
    let prom = start_prometheus(
        "global: {}\n",
        &["--web.enable-remote-write-receiver"],
        None,
        None,
    );
    let target = serve(true);
    let (_p, _port, _dir) = start_vigil(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: legacy\n    metric_name_escaping_scheme: underscores\n    static_configs: [{{targets: ['127.0.0.1:{target}']}}]\n  - job_name: utf8\n    static_configs: [{{targets: ['127.0.0.1:{target}']}}]\nremote_write:\n  - url: http://127.0.0.1:{}/api/v1/write\n",
        prom.port
    ));
    wait_for(
        Duration::from_secs(40),
        "both jobs' series in Prometheus 2.42",
        || {
            query_names(
                prom.port,
                "model_latency{job=\"legacy\",model_name=\"bert\"}",
            )
            .len()
                == 1
                && query_names(prom.port, "{__name__=\"model.latency\",job=\"utf8\"}").len() == 1
        },
    );
    assert!(query_names(prom.port, "{__name__=\"model.latency\",job=\"legacy\"}").is_empty());
    assert!(query_names(prom.port, "model_latency{job=\"utf8\"}").is_empty());
}

/// Prometheus 2.42 federating from vigil: its Accept has no escaping parameter, so it gets
/// (and can parse) the escaped names.
#[test]
fn prometheus_2_42_federates_utf8_series_with_escaped_names() {
    if std::env::var_os("VIGIL_SKIP_INTEROP").is_some() {
        eprintln!("VIGIL_SKIP_INTEROP set: interop test skipped");
        return;
    }
    assert!(
        Path::new(PROMETHEUS).exists(),
        "{PROMETHEUS} is missing: install the Debian package prometheus (as .ci/run does), or set VIGIL_SKIP_INTEROP=1"
    );
    let (_src, src_port, _d) = source();
    let prom = start_prometheus(
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: fed\n    honor_labels: true\n    metrics_path: /federate\n    params: {{'match[]': ['{{job=\"src\"}}']}}\n    static_configs: [{{targets: ['127.0.0.1:{src_port}']}}]\n"
        ),
        &[],
        None,
        None,
    );
    let port = prom.port;
    wait_for_or(
        Duration::from_secs(30),
        "model_latency in Prometheus 2.42",
        || {
            let (_, v) = api(
                port,
                &format!(
                    "/api/v1/query?query={}",
                    enc("model_latency{model_name=\"bert\",site_name=\"eu\"}")
                ),
            );
            v["data"]["result"][0]["value"][1] == "0.25"
        },
        || {
            let (_, v) = api(port, "/api/v1/targets");
            format!("{v}")
        },
    );
    let (_, v) = api(
        port,
        &format!("/api/v1/query?query={}", enc("up{job=\"fed\"}")),
    );
    assert_eq!(v["data"]["result"][0]["value"][1], "1", "{v}");
}

/// Prometheus 2.42's scrape `Accept` with `--enable-feature=native-histograms`.
const ACCEPT_PROTO_2_42: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A histogram with custom bounds 0.1, 0.5, 1: buckets (-Inf, 0.1] with 3, (0.5, 1] with 5
/// and (1, +Inf] with 2.
fn nhcb() -> FloatHistogram {
    FloatHistogram {
        schema: vigil_model::histogram::CUSTOM_BUCKETS_SCHEMA,
        count: 10.0,
        sum: 4.5,
        positive_spans: vec![
            Span {
                offset: 0,
                length: 1,
            },
            Span {
                offset: 1,
                length: 2,
            },
        ],
        positive_buckets: vec![3.0, 5.0, 2.0],
        custom_values: Some(std::sync::Arc::from(vec![0.1, 0.5, 1.0])),
        ..Default::default()
    }
}

/// One remote-write series `name{job="hist"}` with float samples and histogram samples.
fn series(name: &str, floats: &[(i64, f64)], hs: &[(i64, FloatHistogram)]) -> prompb::TimeSeries {
    prompb::TimeSeries {
        labels: vec![
            prompb::Label {
                name: "__name__".into(),
                value: name.into(),
            },
            prompb::Label {
                name: "job".into(),
                value: "hist".into(),
            },
        ],
        samples: floats
            .iter()
            .map(|&(timestamp, value)| prompb::Sample { value, timestamp })
            .collect(),
        histograms: hs
            .iter()
            .map(|(t, h)| codec::histogram_to_pb(*t, h))
            .collect(),
        ..Default::default()
    }
}

/// vigil with histograms remote-written into it: `rpc_seconds` (a counter histogram, six
/// samples), `queue_seconds` (a gauge histogram), `batch_seconds` (custom buckets) and
/// `queue_depth` (floats), all `{job="hist"}`, none with an `instance` label. Returns the
/// time of the newest samples (ms).
fn histogram_source() -> (Proc, u16, std::path::PathBuf, i64) {
    let (p, port, dir) = start_vigil_with("global: {}\n", &["--web.enable-remote-write-receiver"]);
    let t0 = now_ms() - 20_000;
    let ts: Vec<i64> = (0..6).map(|i| t0 + i * 2000).collect();
    let last = ts[5];
    let req = prompb::WriteRequest {
        timeseries: vec![
            series(
                "rpc_seconds",
                &[],
                &ts.iter()
                    .enumerate()
                    .map(|(i, &t)| (t, exp_hist(i as u32, CounterResetHint::NotCounterReset)))
                    .collect::<Vec<_>>(),
            ),
            series(
                "queue_seconds",
                &[],
                &[(last, exp_hist(2, CounterResetHint::Gauge))],
            ),
            series("batch_seconds", &[], &[(last, nhcb())]),
            series("queue_depth", &[(t0, 3.0), (last, 7.5)], &[]),
        ],
        metadata: vec![],
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(codec::snappy_compress(&req.encode_to_vec()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    (p, port, dir, last)
}

fn federate_hist_url(port: u16) -> String {
    format!(
        "http://127.0.0.1:{port}/federate?match[]={}",
        enc("{job=\"hist\"}")
    )
}

#[test]
fn federation_answers_protobuf_with_native_histograms() {
    let (_p, port, _dir, last) = histogram_source();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r = reqwest::blocking::Client::new()
        .get(federate_hist_url(port))
        .header("Accept", ACCEPT_PROTO_2_42)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=underscores"
    );
    let body = r.bytes().unwrap();
    let mut buf = &body[..];
    let mut fams = Vec::new();
    while !buf.is_empty() {
        fams.push(dto::MetricFamily::decode_length_delimited(&mut buf).unwrap());
    }
    let kinds: Vec<(&str, i32)> = fams.iter().map(|f| (f.name.as_str(), f.r#type)).collect();
    assert_eq!(
        kinds,
        [
            ("batch_seconds", dto::MetricType::Histogram as i32),
            ("queue_depth", dto::MetricType::Untyped as i32),
            ("queue_seconds", dto::MetricType::GaugeHistogram as i32),
            ("rpc_seconds", dto::MetricType::Histogram as i32),
        ]
    );
    for f in &fams {
        assert_eq!(f.metric.len(), 1, "{f:?}");
        let m = &f.metric[0];
        assert_eq!(m.timestamp_ms, last, "{f:?}");
        let labels: Vec<(&str, &str)> = m
            .label
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(labels, [("job", "hist"), ("instance", "")], "{f:?}");
    }
    // The newest histogram, hist(5), with float counts as Prometheus writes them.
    let h = fams[3].metric[0].histogram.as_ref().unwrap();
    assert_eq!((h.sample_count_float, h.sample_sum), (24.0, 103.5));
    assert_eq!(
        (h.schema, h.zero_threshold, h.zero_count_float),
        (1, 0.001, 6.0)
    );
    assert_eq!(h.positive_count, [6.0, 6.0]);
    assert_eq!(h.negative_count, [6.0]);
    assert_eq!(h.positive_span.len(), 2);
    assert!(h.positive_delta.is_empty() && h.sample_count == 0);
    // Custom buckets as a classic histogram (+Inf left out).
    let c = fams[0].metric[0].histogram.as_ref().unwrap();
    let buckets: Vec<(f64, f64)> = c
        .bucket
        .iter()
        .map(|b| (b.upper_bound, b.cumulative_count_float))
        .collect();
    assert_eq!(buckets, [(0.1, 3.0), (0.5, 3.0), (1.0, 8.0)]);
    assert_eq!(fams[1].metric[0].untyped.as_ref().unwrap().value, 7.5);

    // Text: the native histograms left out, custom buckets as a classic histogram.
    let (ct, body) = get_with_accept(&federate_hist_url(port), Some("text/plain;version=0.0.4"));
    assert_eq!(
        ct,
        "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"
    );
    assert_eq!(
        body,
        format!(
            "# TYPE batch_seconds histogram\n\
             batch_seconds_bucket{{job=\"hist\",instance=\"\",le=\"0.1\"}} 3 {last}\n\
             batch_seconds_bucket{{job=\"hist\",instance=\"\",le=\"0.5\"}} 3 {last}\n\
             batch_seconds_bucket{{job=\"hist\",instance=\"\",le=\"1\"}} 8 {last}\n\
             batch_seconds_bucket{{job=\"hist\",instance=\"\",le=\"+Inf\"}} 10 {last}\n\
             batch_seconds_sum{{job=\"hist\",instance=\"\"}} 4.5 {last}\n\
             batch_seconds_count{{job=\"hist\",instance=\"\"}} 10 {last}\n\
             # TYPE queue_depth untyped\n\
             queue_depth{{job=\"hist\",instance=\"\"}} 7.5 {last}\n"
        )
    );
}

/// The `histogram` value of the instant query `q` at `t` (ms), if one series answers, with
/// that series' labels.
fn query_histogram(port: u16, q: &str, t: i64) -> Option<(serde_json::Value, serde_json::Value)> {
    let (status, v) = api(
        port,
        &format!("/api/v1/query?query={}&time={}", enc(q), t as f64 / 1000.0),
    );
    assert_eq!(status, 200, "{v}");
    let r = v["data"]["result"].as_array()?;
    if r.len() != 1 || r[0]["histogram"].is_null() {
        return None;
    }
    Some((r[0]["metric"].clone(), r[0]["histogram"].clone()))
}

/// Two API histograms `[t, {count, sum, buckets}]` are the same data; bucket bounds to 1e-12
/// relative (Prometheus 2.42 took exponential bounds from a table whose last digit can differ
/// from the exact bound vigil computes).
fn same_histogram(a: &serde_json::Value, b: &serde_json::Value) {
    assert_eq!(a[0], b[0]);
    assert_eq!(a[1]["count"], b[1]["count"], "{a} vs {b}");
    assert_eq!(a[1]["sum"], b[1]["sum"], "{a} vs {b}");
    let (ba, bb) = (
        a[1]["buckets"].as_array().unwrap(),
        b[1]["buckets"].as_array().unwrap(),
    );
    assert_eq!(ba.len(), bb.len(), "{a} vs {b}");
    let f = |v: &serde_json::Value| v.as_str().unwrap().parse::<f64>().unwrap();
    for (x, y) in ba.iter().zip(bb) {
        assert_eq!(x[0], y[0], "{a} vs {b}");
        assert_eq!(x[3], y[3], "{a} vs {b}");
        for i in 1..3 {
            let (p, q) = (f(&x[i]), f(&y[i]));
            assert!((p - q).abs() <= 1e-12 * p.abs().max(q.abs()), "{a} vs {b}");
        }
    }
}

/// Prometheus 2.42 with native histograms on asks for protobuf, federates vigil's native
/// histograms, floats and custom-bucket histograms with `honor_labels`, and then holds the
/// same native histograms (count, sum, buckets) and floats at the same timestamp, with the
/// same labels: `instance=""` keeps the target's `instance` off, as with a Prometheus source.
#[test]
fn prometheus_2_42_federates_native_histograms_over_protobuf() {
    if std::env::var_os("VIGIL_SKIP_INTEROP").is_some() {
        eprintln!("VIGIL_SKIP_INTEROP set: interop test skipped");
        return;
    }
    assert!(
        Path::new(PROMETHEUS).exists(),
        "{PROMETHEUS} is missing: install the Debian package prometheus (as .ci/run does), or set VIGIL_SKIP_INTEROP=1"
    );
    let (_src, src_port, _d, last) = histogram_source();
    let prom = start_prometheus(
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: fed\n    honor_labels: true\n    metrics_path: /federate\n    params: {{'match[]': ['{{job=\"hist\"}}']}}\n    static_configs: [{{targets: ['127.0.0.1:{src_port}']}}]\n"
        ),
        &["--enable-feature=native-histograms"],
        None,
        None,
    );
    let port = prom.port;
    wait_for_or(
        Duration::from_secs(30),
        "the federated histograms in Prometheus 2.42",
        || {
            query_histogram(port, "rpc_seconds", last).is_some()
                && query_histogram(port, "queue_seconds", last).is_some()
        },
        || {
            let (_, v) = api(port, "/api/v1/targets");
            format!(
                "{v}\n{}",
                std::fs::read_to_string(prom.dir.join("prometheus.log")).unwrap_or_default()
            )
        },
    );
    for name in ["rpc_seconds", "queue_seconds"] {
        let (ours_metric, ours) = query_histogram(src_port, name, last).unwrap();
        let (theirs_metric, theirs) = query_histogram(port, name, last).unwrap();
        same_histogram(&ours, &theirs);
        // {__name__, job="hist"}: no instance from the federation target.
        assert_eq!(ours_metric, theirs_metric);
    }
    // The float series, at the same timestamp.
    let (_, v) = api(
        port,
        &format!(
            "/api/v1/query?query={}&time={}",
            enc("queue_depth"),
            last as f64 / 1000.0
        ),
    );
    assert_eq!(
        v["data"]["result"],
        serde_json::json!([{"metric": {"__name__": "queue_depth", "job": "hist"}, "value": [last as f64 / 1000.0, "7.5"]}]),
        "{v}"
    );
    // Custom buckets arrive as a classic histogram: every bucket and the sum. Prometheus 3.14
    // writes its counts in the float fields only (`cumulative_count_float`,
    // `sample_count_float`), and 2.42 reads a classic histogram's counts from the integer
    // fields, so it stores 0 for them, as it does federating from Prometheus 3.14.
    let (_, v) = api(
        port,
        &format!(
            "/api/v1/query?query={}&time={}",
            enc("{__name__=~\"batch_seconds_.*\"}"),
            last as f64 / 1000.0
        ),
    );
    let mut got: Vec<String> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}{} {}",
                s["metric"]["__name__"].as_str().unwrap(),
                s["metric"]["le"]
                    .as_str()
                    .map(|le| format!("{{le={le}}}"))
                    .unwrap_or_default(),
                s["value"][1].as_str().unwrap()
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "batch_seconds_bucket{le=+Inf} 0",
            "batch_seconds_bucket{le=0.1} 0",
            "batch_seconds_bucket{le=0.5} 0",
            "batch_seconds_bucket{le=1.0} 0",
            "batch_seconds_count 0",
            "batch_seconds_sum 4.5",
        ],
        "{v}"
    );
    let (_, v) = api(
        port,
        &format!("/api/v1/query?query={}", enc("up{job=\"fed\"}")),
    );
    assert_eq!(v["data"]["result"][0]["value"][1], "1", "{v}");
}
