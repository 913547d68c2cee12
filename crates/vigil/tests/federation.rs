//! `/federate` and UTF-8 names (issue 17): a series scraped with a UTF-8 name reaches a
//! legacy consumer with the name escaped as its `Accept` header asks (`underscores` when it
//! says nothing, as Prometheus 2.42 does), and a UTF-8 consumer unchanged. Also
//! `metric_name_validation_scheme: legacy`, which fails a scrape of UTF-8 names, and
//! `metric_name_escaping_scheme` seen by a remote-write receiver.
//!
//! The Prometheus 2.42 part needs the Debian package (`.ci/run` installs it); set
//! VIGIL_SKIP_INTEROP=1 to skip it on a machine without it.

mod common;

use common::peers::{PROMETHEUS, start_prometheus};
use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

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
