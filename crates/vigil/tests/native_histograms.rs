//! Native histograms from a real exporter: a tiny Go program (`tests/exporters/nh/main.go`,
//! built offline here against Debian's client_golang 1.14) exposes a histogram with a native
//! representation (bucket factor 1.1) and classic buckets. The real vigil binary scrapes it
//! three times: with `scrape_native_histograms: true` (protobuf negotiated; the histogram
//! arrives as one native series), without it (text; classic `_bucket` series only), and with
//! `convert_classic_histograms_to_nhcb: true` (text; one histogram with custom buckets).
//!
//! `.ci/run` installs `golang-go` and `golang-github-prometheus-client-golang-dev`. Without
//! `go`, set VIGIL_SKIP_INTEROP=1 to skip.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const CLIENT_GOLANG: &str = "/usr/share/gocode/src/github.com/prometheus/client_golang";

fn go_available() -> bool {
    let go = Command::new("go")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if go && Path::new(CLIENT_GOLANG).exists() {
        return true;
    }
    if std::env::var_os("VIGIL_SKIP_INTEROP").is_some() {
        eprintln!(
            "VIGIL_SKIP_INTEROP set and go or client_golang missing: native histogram exporter test skipped"
        );
        return false;
    }
    panic!(
        "go or {CLIENT_GOLANG} is missing: install the Debian packages golang-go and golang-github-prometheus-client-golang-dev (as .ci/run does), or set VIGIL_SKIP_INTEROP=1"
    );
}

/// Builds the exporter offline into `dir`.
fn build_exporter(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/exporters/nh/main.go");
    let out = dir.join("nh-exporter");
    let o = Command::new("nice")
        .args(["-n", "10", "go", "build", "-o"])
        .arg(&out)
        .arg(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .output()
        .expect("running go build");
    assert!(
        o.status.success(),
        "go build failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn query(port: u16, q: &str) -> serde_json::Value {
    let (status, v) = api(port, &format!("/api/v1/query?query={}", enc(q)));
    assert_eq!(status, 200, "{q}: {v}");
    v["data"]["result"].clone()
}

#[test]
fn native_histogram_from_client_golang() {
    if !go_available() {
        return;
    }
    let dir = tempdir("nh");
    let exporter = build_exporter(&dir);
    let eport = free_port();
    let _exp = Proc {
        child: Command::new(&exporter)
            .arg(eport.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        name: "nh-exporter",
    };
    wait_for(Duration::from_secs(10), "the exporter", || {
        http_get(&format!("http://127.0.0.1:{eport}/metrics")).is_ok_and(|(s, _)| s == 200)
    });
    let config = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: native
    scrape_native_histograms: true
    static_configs:
      - targets: ['127.0.0.1:{eport}']
  - job_name: classic
    static_configs:
      - targets: ['127.0.0.1:{eport}']
  - job_name: nhcb
    convert_classic_histograms_to_nhcb: true
    static_configs:
      - targets: ['127.0.0.1:{eport}']
"#
    );
    let (_vigil, port, vdir) = start_vigil(&config);
    let log = || std::fs::read_to_string(vdir.join("vigil.log")).unwrap_or_default();
    wait_for_or(
        Duration::from_secs(20),
        "the native histogram's count",
        || {
            let r = query(port, "histogram_count(nh_latency_seconds{job=\"native\"})");
            r.as_array().is_some_and(|a| a.len() == 1) && r[0]["value"][1] == "5"
        },
        || format!("{}\n{}", query(port, "up"), log()),
    );
    // The sample itself, in Prometheus' JSON shape for histograms.
    let r = query(port, "nh_latency_seconds{job=\"native\"}");
    let h = &r[0]["histogram"];
    assert!(r[0].get("value").is_none(), "{r}");
    assert_eq!(h[1]["count"], "5", "{r}");
    assert_eq!(h[1]["sum"], "6.01", "{r}");
    let buckets = h[1]["buckets"].as_array().expect("buckets");
    // 0.01, 0.5, 1, 1.5 and 3 fall in five different buckets of schema 3 (factor 1.09).
    assert_eq!(buckets.len(), 5, "{r}");
    for b in buckets {
        let b = b.as_array().unwrap();
        assert_eq!(b.len(), 4, "[boundary rule, lower, upper, count]: {r}");
        assert_eq!(b[3], "1", "{r}");
    }
    // Native only: no classic series from that job; the counter arrived as usual and a
    // histogram counts as one scraped sample.
    assert_eq!(
        query(port, "nh_latency_seconds_bucket{job=\"native\"}"),
        serde_json::json!([])
    );
    assert_eq!(
        query(port, "nh_runs_total{job=\"native\"}")[0]["value"][1],
        "7"
    );
    assert_eq!(
        query(port, "scrape_samples_scraped{job=\"native\"}")[0]["value"][1],
        "2"
    );
    // Without scrape_native_histograms: the text format, classic buckets.
    wait_for(Duration::from_secs(10), "the classic series", || {
        query(
            port,
            "nh_latency_seconds_bucket{job=\"classic\",le=\"+Inf\"}",
        )
        .get(0)
        .is_some_and(|s| s["value"][1] == "5")
    });
    assert_eq!(
        query(port, "nh_latency_seconds{job=\"classic\"}"),
        serde_json::json!([])
    );
    assert_eq!(
        query(port, "scrape_samples_scraped{job=\"classic\"}")[0]["value"][1],
        "7"
    );
    // convert_classic_histograms_to_nhcb: the classic buckets (text) become one histogram
    // with custom bounds 0.1, 1, 2; the classic series are not kept.
    wait_for(Duration::from_secs(10), "the NHCB series", || {
        query(port, "histogram_count(nh_latency_seconds{job=\"nhcb\"})")
            .get(0)
            .is_some_and(|s| s["value"][1] == "5")
    });
    let r = query(port, "nh_latency_seconds{job=\"nhcb\"}");
    let uppers: Vec<&str> = r[0]["histogram"][1]["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| b[2].as_str().unwrap())
        .collect();
    assert_eq!(uppers, ["0.1", "1", "2", "+Inf"], "{r}");
    assert_eq!(
        query(port, "nh_latency_seconds_bucket{job=\"nhcb\"}"),
        serde_json::json!([])
    );
    assert_eq!(
        query(port, "scrape_samples_scraped{job=\"nhcb\"}")[0]["value"][1],
        "2"
    );
}
