//! Native histograms through the remote-write receiver and sender of the real binary:
//!
//! - a histogram series written to `/api/v1/write` (`--web.enable-remote-write-receiver`)
//!   queries back through `/api/v1/query` with its count, sum and buckets; an invalid one is
//!   refused with 400 and nothing of its request is stored;
//! - interop: vigil remote-writes histograms into Debian's Prometheus 2.42
//!   (`--enable-feature=native-histograms`, which takes integer histograms only) and both
//!   answer the same query with the same histograms;
//! - interop: Prometheus 2.42 scrapes a native histogram (protobuf exposition) and
//!   remote-writes it into vigil's receiver; vigil holds the same histograms.
//!
//! Set VIGIL_SKIP_INTEROP=1 to skip the interop tests on a machine without the `prometheus`
//! package.

mod common;

use common::peers::{PROMETHEUS, Peer, start_prometheus};
use common::*;
use prost::Message;
use std::path::Path;
use std::time::Duration;
use vigil_model::histogram::{CounterResetHint, FloatHistogram};
use vigil_remote::{codec, prompb};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The test histogram as a counter: "unknown" at the first sample, "no reset" after.
fn hist(k: u32) -> FloatHistogram {
    let hint = if k == 0 {
        CounterResetHint::Unknown
    } else {
        CounterResetHint::NotCounterReset
    };
    exp_hist(k, hint)
}

fn write_body(name: &str, hs: &[(i64, FloatHistogram)]) -> Vec<u8> {
    let req = prompb::WriteRequest {
        timeseries: vec![prompb::TimeSeries {
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
            histograms: hs
                .iter()
                .map(|(t, h)| codec::histogram_to_pb(*t, h))
                .collect(),
            ..Default::default()
        }],
        metadata: vec![],
    };
    codec::snappy_compress(&req.encode_to_vec())
}

fn post_write(port: u16, body: Vec<u8>) -> (u16, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap_or_default())
}

/// The `histogram` value of the instant query `q` at `t` (seconds), if one series answers.
fn query_histogram(port: u16, q: &str, t: f64) -> Option<serde_json::Value> {
    let (status, v) = api(port, &format!("/api/v1/query?query={}&time={t}", enc(q)));
    assert_eq!(status, 200, "{v}");
    let r = v["data"]["result"].as_array()?;
    if r.len() != 1 {
        return None;
    }
    Some(r[0]["histogram"].clone()).filter(|h| !h.is_null())
}

fn metric(port: u16, name: &str) -> f64 {
    let (_, body) = http_get(&format!("http://127.0.0.1:{port}/metrics")).unwrap();
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn receiver_stores_histograms_and_the_query_api_returns_them() {
    let (_vigil, port, _dir) =
        start_vigil_with("global: {}\n", &["--web.enable-remote-write-receiver"]);
    let t0 = now_ms() - 60_000;
    let hs: Vec<(i64, FloatHistogram)> = (0..10).map(|i| (t0 + i * 5000, hist(i as u32))).collect();
    let (code, body) = post_write(port, write_body("rpc_seconds", &hs));
    assert_eq!(code, 204, "{body}");
    let t = (t0 + 45_000) as f64 / 1000.0;
    let h = query_histogram(port, "rpc_seconds", t).expect("histogram queried back");
    assert_eq!(h[0].as_f64().unwrap(), t);
    // hist(9): count 1+9 + 2+18 + 1+9 = 40, sum 172.5, four populated buckets (negative one,
    // zero bucket, two positive ones).
    assert_eq!(h[1]["count"], "40");
    assert_eq!(h[1]["sum"], "172.5");
    let buckets = h[1]["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 4, "{h}");
    assert_eq!(buckets[1], serde_json::json!([3, "-0.001", "0.001", "10"]));
    // PromQL over them: the count grows by 4 per 5 s, 36 over the 45 s sampled, extrapolated
    // to the 50 s window (the zero point is 5 s before the first sample) as Prometheus does.
    let (_, v) = api(
        port,
        &format!(
            "/api/v1/query?query={}&time={t}",
            enc("histogram_count(increase(rpc_seconds[50s]))")
        ),
    );
    let inc: f64 = v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((inc - 40.0).abs() < 1e-9, "{v}");
    assert_eq!(
        metric(port, "vigil_remote_write_histograms_received_total"),
        10.0
    );

    // Invalid: the spans announce three positive buckets, two are given. 400, nothing of the
    // request stored, and the reason in the answer.
    let mut bad = hist(10);
    bad.positive_spans[1].length = 2;
    let (code, body) = post_write(port, write_body("rpc_seconds", &[(t0 + 50_000, bad)]));
    assert_eq!(code, 400);
    assert!(body.contains("invalid histogram"), "{body}");
    let later = (t0 + 50_000) as f64 / 1000.0;
    let h = query_histogram(port, "rpc_seconds", later).unwrap();
    // Still hist(9) (count 40), not the refused hist(10) (count 44).
    assert_eq!(h[1]["count"], "40", "the refused sample is not stored: {h}");
    assert_eq!(
        metric(port, "vigil_remote_write_invalid_histograms_total"),
        1.0
    );
}

/// Two API histograms `[t, {count, sum, buckets}]` are the same data. Bucket bounds are
/// compared to 1e-12 relative: Prometheus 2.42 took exponential bounds from a table whose last
/// digit differs from the exact bound vigil computes (as Prometheus 3 does).
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

/// Prometheus 2.42 with the remote-write receiver and native histograms on, `config` as its
/// `prometheus.yml`, in `dir`.
fn start_prometheus_with(dir: &Path, config: &str) -> Peer {
    start_prometheus(
        config,
        &[
            "--web.enable-remote-write-receiver",
            "--enable-feature=native-histograms",
        ],
        Some(dir.to_path_buf()),
        None,
    )
}

#[test]
fn vigil_remote_writes_histograms_into_prometheus() {
    if std::env::var_os("VIGIL_SKIP_INTEROP").is_some() {
        eprintln!("VIGIL_SKIP_INTEROP set: interop test skipped");
        return;
    }
    assert!(
        Path::new(PROMETHEUS).exists(),
        "{PROMETHEUS} is missing: install the Debian package prometheus (as .ci/run does), or set VIGIL_SKIP_INTEROP=1"
    );
    let pdir = tempdir("prom-hist");
    let peer = start_prometheus_with(&pdir, "global: {}\n");
    let cfg = format!(
        "global: {{}}\nremote_write:\n  - url: http://127.0.0.1:{}/api/v1/write\n    name: peer\n    send_native_histograms: true\n    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n",
        peer.port
    );
    let (_vigil, port, _dir) = start_vigil_with(&cfg, &["--web.enable-remote-write-receiver"]);
    // Histograms come into vigil through its receiver, go to its WAL, and its queue sends them
    // on to Prometheus.
    let t0 = now_ms() - 60_000;
    let hs: Vec<(i64, FloatHistogram)> = (0..12).map(|i| (t0 + i * 5000, hist(i as u32))).collect();
    let (code, body) = post_write(port, write_body("rpc_seconds", &hs));
    assert_eq!(code, 204, "{body}");
    wait_for_or(
        Duration::from_secs(60),
        "Prometheus to hold every histogram",
        || metric(port, "prometheus_remote_storage_histograms_total") >= 12.0,
        || {
            std::fs::read_to_string(pdir.join("prometheus.log")).unwrap_or_default()
                + &http_get(&format!("http://127.0.0.1:{port}/metrics"))
                    .map(|r| r.1)
                    .unwrap_or_default()
        },
    );
    assert_eq!(
        metric(port, "prometheus_remote_storage_histograms_failed_total"),
        0.0
    );
    // Every sample, queried on both sides at its own timestamp, is the same histogram.
    for (t, _) in &hs {
        let ts = *t as f64 / 1000.0;
        let ours = query_histogram(port, "rpc_seconds{job=\"hist\"}", ts).unwrap();
        let theirs = query_histogram(peer.port, "rpc_seconds{job=\"hist\"}", ts)
            .unwrap_or_else(|| panic!("Prometheus has no histogram at {ts}"));
        same_histogram(&ours, &theirs);
    }
    // And queries over them agree: the functions of native histograms over a rate, at several
    // times, to 1e-9 relative (Prometheus 2.42 and 3, which vigil follows, sum differently).
    // histogram_quantile is compared where 2.42 and 3 interpolate alike: 3 interpolates on a
    // log scale inside exponential buckets, 2.42 linearly (docs/promql.md), so only at a
    // bucket bound (the quantile that ends a bucket) do they meet; the others are listed.
    let value = |v: &serde_json::Value| -> f64 {
        v["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap_or_else(|| panic!("no result: {v}"))
            .parse()
            .unwrap()
    };
    for q in [
        "histogram_count(rate(rpc_seconds[40s]))",
        "histogram_sum(rate(rpc_seconds[40s]))",
        "histogram_count(increase(rpc_seconds[1m]))",
        "histogram_fraction(0, 2, rate(rpc_seconds[40s]))",
        "histogram_fraction(-1, 1, rate(rpc_seconds[40s]))",
        "histogram_quantile(0, rate(rpc_seconds[40s]))",
        "histogram_quantile(1, rate(rpc_seconds[40s]))",
        "histogram_count(sum(rate(rpc_seconds[40s])))",
    ] {
        for off in [30_000, 45_000, 55_000] {
            let at = (t0 + off) as f64 / 1000.0;
            let (_, a) = api(port, &format!("/api/v1/query?query={}&time={at}", enc(q)));
            let (_, b) = api(
                peer.port,
                &format!("/api/v1/query?query={}&time={at}", enc(q)),
            );
            let (x, y) = (value(&a), value(&b));
            assert!(
                x == y || (x - y).abs() <= 1e-9 * y.abs(),
                "{q} at {at}: vigil {a} vs Prometheus {b}"
            );
            assert_eq!(
                a["data"]["result"][0]["metric"], b["data"]["result"][0]["metric"],
                "{q}"
            );
        }
    }
    drop(peer.proc);
    let _ = std::fs::remove_dir_all(&pdir);
}

/// The protobuf exposition messages a native-histogram target needs (package
/// `io.prometheus.client`, written from its field numbers), for the test target below.
mod expo {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPair {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct BucketSpan {
        #[prost(sint32, tag = "1")]
        pub offset: i32,
        #[prost(uint32, tag = "2")]
        pub length: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Histogram {
        #[prost(uint64, tag = "1")]
        pub sample_count: u64,
        #[prost(double, tag = "2")]
        pub sample_sum: f64,
        #[prost(sint32, tag = "5")]
        pub schema: i32,
        #[prost(double, tag = "6")]
        pub zero_threshold: f64,
        #[prost(uint64, tag = "7")]
        pub zero_count: u64,
        #[prost(message, repeated, tag = "9")]
        pub negative_span: Vec<BucketSpan>,
        #[prost(sint64, repeated, tag = "10")]
        pub negative_delta: Vec<i64>,
        #[prost(message, repeated, tag = "12")]
        pub positive_span: Vec<BucketSpan>,
        #[prost(sint64, repeated, tag = "13")]
        pub positive_delta: Vec<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metric {
        #[prost(message, repeated, tag = "1")]
        pub label: Vec<LabelPair>,
        #[prost(message, optional, tag = "7")]
        pub histogram: Option<Histogram>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricFamily {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub help: String,
        /// 4: HISTOGRAM.
        #[prost(int32, tag = "3")]
        pub r#type: i32,
        #[prost(message, repeated, tag = "4")]
        pub metric: Vec<Metric>,
    }
}

/// A scrape target serving one native histogram (`hist(k)` at its k-th scrape) in the
/// delimited protobuf exposition format; returns its port.
fn start_histogram_target() -> u16 {
    use std::io::Write;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (k, conn) in l.incoming().enumerate() {
            let Ok(mut c) = conn else { continue };
            let _ = read_request_head(&mut c);
            let h = codec::histogram_to_pb(0, &hist(k as u32));
            let Some(prompb::histogram::Count::CountInt(count)) = h.count else {
                unreachable!()
            };
            let Some(prompb::histogram::ZeroCount::ZeroCountInt(zero)) = h.zero_count else {
                unreachable!()
            };
            let spans = |s: &[prompb::BucketSpan]| {
                s.iter()
                    .map(|s| expo::BucketSpan {
                        offset: s.offset,
                        length: s.length,
                    })
                    .collect()
            };
            let mf = expo::MetricFamily {
                name: "rpc_seconds".into(),
                help: "RPC latency.".into(),
                r#type: 4,
                metric: vec![expo::Metric {
                    label: vec![expo::LabelPair {
                        name: "method".into(),
                        value: "get".into(),
                    }],
                    histogram: Some(expo::Histogram {
                        sample_count: count,
                        sample_sum: h.sum,
                        schema: h.schema,
                        zero_threshold: h.zero_threshold,
                        zero_count: zero,
                        negative_span: spans(&h.negative_spans),
                        negative_delta: h.negative_deltas.clone(),
                        positive_span: spans(&h.positive_spans),
                        positive_delta: h.positive_deltas.clone(),
                    }),
                }],
            };
            let body = mf.encode_length_delimited_to_vec();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = c.write_all(head.as_bytes());
            let _ = c.write_all(&body);
        }
    });
    port
}

/// The `histograms` of the only series a range query answers.
fn range_histograms(port: u16, q: &str, t: f64) -> Vec<serde_json::Value> {
    let (status, v) = api(port, &format!("/api/v1/query?query={}&time={t}", enc(q)));
    assert_eq!(status, 200, "{v}");
    v["data"]["result"][0]["histograms"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn prometheus_remote_writes_scraped_histograms_into_vigil() {
    if std::env::var_os("VIGIL_SKIP_INTEROP").is_some() {
        eprintln!("VIGIL_SKIP_INTEROP set: interop test skipped");
        return;
    }
    assert!(
        Path::new(PROMETHEUS).exists(),
        "{PROMETHEUS} is missing: install the Debian package prometheus (as .ci/run does), or set VIGIL_SKIP_INTEROP=1"
    );
    let (_vigil, port, _dir) =
        start_vigil_with("global: {}\n", &["--web.enable-remote-write-receiver"]);
    let target = start_histogram_target();
    let pdir = tempdir("prom-hist-sender");
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: hist\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\nremote_write:\n  - url: http://127.0.0.1:{port}/api/v1/write\n    send_native_histograms: true\n    queue_config:\n      batch_send_deadline: 1s\n"
    );
    let peer = start_prometheus_with(&pdir, &cfg);
    wait_for_or(
        Duration::from_secs(90),
        "vigil to receive 8 histograms from Prometheus",
        || metric(port, "vigil_remote_write_histograms_received_total") >= 8.0,
        || std::fs::read_to_string(pdir.join("prometheus.log")).unwrap_or_default(),
    );
    // Every histogram vigil received is the one Prometheus stored at that timestamp.
    let now = now_ms() as f64 / 1000.0 + 1.0;
    let q = "rpc_seconds{job=\"hist\",method=\"get\"}[10m]";
    let ours = range_histograms(port, q, now);
    let theirs = range_histograms(peer.port, q, now);
    assert!(ours.len() >= 8, "{ours:?}");
    assert!(theirs.len() >= ours.len());
    for (a, b) in ours.iter().zip(&theirs) {
        same_histogram(a, b);
    }
    // On those identical samples, the functions agree. Half a second after the last
    // sample vigil holds, no window boundary falls on a sample (2.42's closed and 3.x's
    // left-open windows select the same samples).
    let last = ours.last().unwrap()[0].as_f64().unwrap();
    let at = last + 0.5;
    let window = "rpc_seconds{job=\"hist\",method=\"get\"}[1m]";
    let (a, b) = (
        range_histograms(port, window, at),
        range_histograms(peer.port, window, at),
    );
    assert!(a.len() >= 2 && a.len() == b.len(), "{a:?} vs {b:?}");
    let scalar = |p: u16, q: &str| -> f64 {
        let (status, v) = api(p, &format!("/api/v1/query?query={}&time={at}", enc(q)));
        assert_eq!(status, 200, "{q}: {v}");
        v["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap_or_else(|| panic!("{q}: {v}"))
            .parse()
            .unwrap()
    };
    let rate = "rate(rpc_seconds{job=\"hist\",method=\"get\"}[1m])";
    // histogram_fraction up to 2, a bucket boundary of schema 1, where 3.x's exponential
    // interpolation inside a bucket and 2.42's linear one agree.
    for q in [
        format!("histogram_count({rate})"),
        format!("histogram_sum({rate})"),
        format!("histogram_fraction(0, 2, {rate})"),
    ] {
        let (x, y) = (scalar(port, &q), scalar(peer.port, &q));
        assert!(
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
            "{q}: vigil {x}, prometheus {y}"
        );
    }
    // histogram_quantile interpolates exponentially within an exponential bucket since
    // Prometheus 3.0 (2.42: linearly): the two land in the same bucket, (2, 2√2].
    let q = format!("histogram_quantile(0.9, {rate})");
    let (x, y) = (scalar(port, &q), scalar(peer.port, &q));
    for v in [x, y] {
        assert!(
            v > 2.0 && v <= 2.0 * 2f64.sqrt(),
            "{q}: vigil {x}, prometheus {y}"
        );
    }
    drop(peer.proc);
    let _ = std::fs::remove_dir_all(&pdir);
}

/// `kill -9` while histograms stream in: every histogram the receiver acknowledged (204)
/// before the kill is there after the restart, bit for bit as the query API prints it.
#[test]
fn kill_9_during_histogram_ingest_loses_no_committed_histogram() {
    let dir = tempdir("hist-kill");
    std::fs::write(dir.join("prometheus.yml"), "global: {}\n").unwrap();
    let data = dir.join("data");
    let flags = ["--web.enable-remote-write-receiver"];
    let (mut vigil, port) = start_vigil_in(&dir, &data, &flags, "vigil.log", &|p| ready_200(p));
    let t0 = now_ms() - 120_000;
    // One write per histogram, acknowledged one by one: each 204 is a committed sample.
    let mut acked = Vec::new();
    for i in 0..60u32 {
        let t = t0 + i as i64 * 1000;
        let (code, body) = post_write(port, write_body("ingest_seconds", &[(t, hist(i))]));
        assert_eq!(code, 204, "{body}");
        acked.push((t, hist(i)));
    }
    let (_, before) = api(
        port,
        &format!(
            "/api/v1/query?query={}&time={}",
            enc("ingest_seconds[2m]"),
            (t0 + 60_000) as f64 / 1000.0
        ),
    );
    vigil.child.kill().unwrap(); // SIGKILL: no shutdown snapshot, the WAL alone
    let _ = vigil.child.wait();
    let (_vigil2, port2) = start_vigil_in(&dir, &data, &flags, "vigil2.log", &|p| ready_200(p));
    let (_, after) = api(
        port2,
        &format!(
            "/api/v1/query?query={}&time={}",
            enc("ingest_seconds[2m]"),
            (t0 + 60_000) as f64 / 1000.0
        ),
    );
    let hs = after["data"]["result"][0]["histograms"].as_array().unwrap();
    assert_eq!(hs.len(), acked.len(), "{after}");
    assert_eq!(
        before["data"], after["data"],
        "the same histograms after kill -9"
    );
    // The last one is hist(59): count (1+59) + (2+118) + (1+59) = 240.
    assert_eq!(hs[59][1]["count"], "240");
    let _ = std::fs::remove_dir_all(&dir);
}
