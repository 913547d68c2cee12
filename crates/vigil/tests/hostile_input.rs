//! Hostile input to the real binary (issue 20): request bodies that lie about their size,
//! PromQL nested deeper than any stack, and series with huge label values and counts. Each
//! must get an answer (an error where it is refused), and vigil must stay up and healthy.

mod common;

use common::*;
use prost::Message;
use std::time::{Duration, Instant};
use vigil_remote::prompb;

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn healthy(port: u16) -> bool {
    http_get(&format!("http://127.0.0.1:{port}/-/healthy")).is_ok_and(|(s, _)| s == 200)
}

fn post_write(port: u16, body: Vec<u8>) -> (u16, String) {
    let r = client()
        .post(format!("http://127.0.0.1:{port}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap_or_default())
}

/// VmRSS of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn snappy_body_whose_header_claims_gigabytes_is_refused_before_allocation() {
    let (v, port, _dir) = start_vigil_with(
        "scrape_configs: []\n",
        &["--web.enable-remote-write-receiver"],
    );
    let before = rss_kib(v.child.id());
    for claimed in [4u64 << 30, u32::MAX as u64, 1 << 40] {
        // A snappy block is its uncompressed length as a varint, then the data: claim the
        // length, send 16 bytes.
        let mut body = Vec::new();
        vigil_remote::codec::put_uvarint(&mut body, claimed);
        body.extend_from_slice(&[0u8; 16]);
        let started = Instant::now();
        let (status, text) = post_write(port, body);
        // Refused from the header alone: over the receiver's limit (under 4 GiB), over what
        // snappy allows (4 GiB), or a header longer than snappy's format (2^40).
        assert_eq!(status, 400, "claimed {claimed}: {text}");
        let why = ["exceeds the limit", "larger than allowed", "invalid header"];
        assert!(why.iter().any(|w| text.contains(w)), "{text}");
        eprintln!("claimed {claimed}: {status} {}", text.trim());
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    let after = rss_kib(v.child.id());
    eprintln!("RSS before {before} KiB, after three bombs {after} KiB");
    assert!(after < before + 64 * 1024, "{before} -> {after} KiB");
    assert!(healthy(port));
}

#[test]
fn deeply_nested_promql_is_an_error_not_a_stack_overflow() {
    let (_v, port, _dir) = start_vigil("scrape_configs: []\n");
    let n = 100_000;
    let bombs = [
        format!("{}1{}", "(".repeat(n), ")".repeat(n)),
        format!("{}1", "-".repeat(n)),
        format!("{}vector(1){}", "abs(".repeat(n), ")".repeat(n)),
        format!("1{}", " + 1".repeat(n)),
    ];
    for q in &bombs {
        let started = Instant::now();
        let r = client()
            .post(format!("http://127.0.0.1:{port}/api/v1/query"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("query={}", enc(q)))
            .send()
            .unwrap_or_else(|e| panic!("no answer to {}…: {e}", &q[..20]));
        let status = r.status().as_u16();
        let body = r.text().unwrap();
        eprintln!(
            "{}…: {status} in {:?}: {}",
            &q[..12],
            started.elapsed(),
            &body[..body.len().min(160)]
        );
        assert!(status == 200 || status == 400 || status == 422, "{status}");
        assert!(healthy(port), "vigil died on {}…", &q[..20]);
    }
}

#[test]
fn huge_label_values_and_counts_over_remote_write_are_answered() {
    let (v, port, _dir) = start_vigil_with(
        "scrape_configs: []\n",
        &["--web.enable-remote-write-receiver"],
    );
    let now = now_ms();
    let label = |n: &str, v: String| prompb::Label {
        name: n.to_string(),
        value: v,
    };
    let series = |labels: Vec<prompb::Label>| prompb::TimeSeries {
        labels,
        samples: vec![prompb::Sample {
            value: 1.0,
            timestamp: now,
        }],
        ..Default::default()
    };
    // 1 MiB label value; 10,000 labels on one series.
    let big = series(vec![
        label("__name__", "huge_value".into()),
        label("v", "x".repeat(1 << 20)),
    ]);
    let mut many = vec![label("__name__", "many_labels".into())];
    many.extend((0..10_000).map(|i| label(&format!("l{i:05}"), i.to_string())));
    let many = series(many);
    for (what, name, ts) in [
        ("1 MiB value", "huge_value", big),
        ("10,000 labels", "many_labels", many),
    ] {
        let req = prompb::WriteRequest {
            timeseries: vec![ts],
            ..Default::default()
        };
        let body = vigil_remote::codec::snappy_compress(&req.encode_to_vec());
        let started = Instant::now();
        let (status, text) = post_write(port, body);
        eprintln!(
            "{what}: {status} in {:?} {}",
            started.elapsed(),
            &text[..text.len().min(160)]
        );
        assert!(
            status == 204 || (400..500).contains(&status),
            "{what}: {status} {text}"
        );
        assert!(healthy(port), "{what}");
        if status == 204 {
            // Accepted: stored whole and queryable.
            let (s, body) = http_get(&format!(
                "http://127.0.0.1:{port}/api/v1/query?query={}",
                enc(&format!("count({name})"))
            ))
            .unwrap();
            assert_eq!(s, 200);
            assert!(body.contains("\"1\""), "{what}: {body}");
        }
    }
    eprintln!("RSS after: {} KiB", rss_kib(v.child.id()));
}

fn post_query(port: u16, query: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let r = client()
        .post(format!("http://127.0.0.1:{port}/api/v1/query"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("query", query)
                .finish(),
        )
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().unwrap_or_default(), started.elapsed())
}

/// Regular expressions that take exponential time in a backtracking engine, and ones whose
/// compiled form is huge, as label matchers: each is answered (a result or a 4xx) within 5 s
/// and vigil stays healthy. Label values are the inputs those patterns are slowest on.
#[test]
fn hostile_regex_matchers_are_answered_within_a_bound() {
    let (_v, port, _dir) = start_vigil_with(
        "scrape_configs: []\n",
        &["--web.enable-remote-write-receiver"],
    );
    let now = now_ms();
    // 2,000 series whose `path` is a run of `a`s that ends in `!` (no match for `(a+)+$`).
    let timeseries = (0..2_000)
        .map(|i| prompb::TimeSeries {
            labels: vec![
                prompb::Label {
                    name: "__name__".into(),
                    value: "hostile_regex".into(),
                },
                prompb::Label {
                    name: "path".into(),
                    value: format!("{}!{i}", "a".repeat(40 + i % 60)),
                },
            ],
            samples: vec![prompb::Sample {
                value: 1.0,
                timestamp: now,
            }],
            ..Default::default()
        })
        .collect();
    let req = prompb::WriteRequest {
        timeseries,
        ..Default::default()
    };
    let (status, text) = post_write(
        port,
        vigil_remote::codec::snappy_compress(&req.encode_to_vec()),
    );
    assert_eq!(status, 204, "{text}");
    let alternation = (0..100_000)
        .map(|i| format!("x{i}"))
        .collect::<Vec<_>>()
        .join("|");
    let queries = [
        (
            "nested quantifier",
            r#"count(hostile_regex{path=~"(a+)+$"})"#.to_string(),
        ),
        (
            "nested star",
            r#"count(hostile_regex{path=~"(a*)*b"})"#.to_string(),
        ),
        (
            "overlapping alternation",
            r#"count(hostile_regex{path=~"(a|aa)+$"})"#.to_string(),
        ),
        (
            "negated",
            r#"count(hostile_regex{path!~"(a+)+!.*"})"#.to_string(),
        ),
        (
            "on __name__",
            r#"count({__name__=~"(h+|o+|s+|t+|i+|l+|e+|_+|r+|g+|x+)+$"})"#.to_string(),
        ),
        (
            "repetition",
            r#"count(hostile_regex{path=~"(?:.*a){40}.*!.*"})"#.to_string(),
        ),
        (
            "nested counted repetition",
            r#"count(hostile_regex{path=~"((a{100}){100}){100}"})"#.to_string(),
        ),
        (
            "100,000 alternatives",
            format!(r#"count(hostile_regex{{path=~"{alternation}"}})"#),
        ),
    ];
    for (what, q) in &queries {
        let (status, body, took) = post_query(port, q);
        eprintln!(
            "{what}: {status} in {took:?} {}",
            &body[..body.len().min(160)]
        );
        assert!(
            status == 200 || (400..500).contains(&status),
            "{what}: {status} {body}"
        );
        assert!(took < Duration::from_secs(5), "{what}: {took:?}");
        assert!(healthy(port), "{what}");
    }
}

/// Labels over any sensible size through `vigil tsdb import openmetrics`: a series with a
/// 1 MiB label value and one with 10,000 labels. The import finishes (storing them or refusing
/// with an error, never a panic), and vigil then starts on the data directory and answers.
#[test]
fn huge_labels_through_tsdb_import_are_imported_or_refused() {
    let dir = tempdir("hostile-import");
    let om = dir.join("huge.om");
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3600;
    let many: Vec<String> = (0..10_000).map(|i| format!("l{i:05}=\"{i}\"")).collect();
    let text = format!(
        "# TYPE huge_value gauge\nhuge_value{{v=\"{}\"}} 1 {t}.5\n# TYPE many_labels gauge\nmany_labels{{{}}} 2 {t}.5\n# EOF\n",
        "x".repeat(1 << 20),
        many.join(",")
    );
    std::fs::write(&om, text).unwrap();
    let data = dir.join("data");
    let started = Instant::now();
    let out = std::process::Command::new(vigil_bin())
        .args(["tsdb", "import", "openmetrics"])
        .arg(&om)
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "import: {} in {:?}: {}",
        out.status,
        started.elapsed(),
        &stderr[..stderr.len().min(300)]
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.code().is_some(), "killed by a signal: {stderr}");
    std::fs::write(dir.join("prometheus.yml"), "scrape_configs: []\n").unwrap();
    let (_v, port) = start_vigil_in(&dir, &data, &[], "vigil.log", &ready_200);
    for name in ["huge_value", "many_labels"] {
        let (s, body) = http_get(&format!(
            "http://127.0.0.1:{port}/api/v1/query?query={}&time={}",
            enc(&format!("count({name})")),
            t + 1
        ))
        .unwrap();
        assert_eq!(s, 200, "{name}: {body}");
        eprintln!("{name}: {}", &body[..body.len().min(120)]);
        if out.status.success() {
            assert!(
                body.contains("\"1\""),
                "{name} imported but not served: {body}"
            );
        }
    }
}

/// The wall clock in milliseconds, for samples the receiver takes as recent.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
