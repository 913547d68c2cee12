//! The walking skeleton end to end: the real binary scrapes synthetic targets on loopback and
//! answers `/api/v1/query` with what the targets served.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const INTERVAL_S: u64 = 1;

fn config(targets: &[String]) -> String {
    let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "global:\n  scrape_interval: {INTERVAL_S}s\n  scrape_timeout: {INTERVAL_S}s\nscrape_configs:\n  - job_name: synth\n    static_configs:\n      - targets: [{}]\n",
        list.join(", ")
    )
}

/// `up` by instance from an instant query.
fn up_by_instance(port: u16) -> BTreeMap<String, String> {
    let (_, v) = api(port, "/api/v1/query?query=up");
    v["data"]["result"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|s| {
                    (
                        s["metric"]["instance"].as_str().unwrap().to_string(),
                        s["value"][1].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `http_requests_total` samples of one model in a body, as (sorted label text, value text).
fn served_counts(body: &str, model: &str) -> BTreeMap<String, f64> {
    let needle = format!("model=\"{model}\"");
    body.lines()
        .filter(|l| l.starts_with("http_requests_total{") && l.contains(&needle))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let inner = &series["http_requests_total{".len()..series.len() - 1];
            let mut pairs: Vec<&str> = inner.split(',').collect();
            pairs.sort();
            (pairs.join(","), value.parse().unwrap())
        })
        .collect()
}

#[test]
fn scrapes_targets_and_answers_queries() {
    // A step of one hour keeps the served values fixed while the test compares them.
    let (_sim, base) = start_targets(3, 40, 3_600_000);
    let refused = format!("127.0.0.1:{}", free_port());
    let mut targets: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", base + i)).collect();
    targets.push(refused.clone());
    let (mut vigil, port, _dir) = start_vigil(&config(&targets));
    let started = Instant::now();

    // Every live target is up within three scrape intervals; the refusing one is down.
    let deadline = Duration::from_secs(3 * INTERVAL_S);
    loop {
        let up = up_by_instance(port);
        let live_up = targets[..3]
            .iter()
            .all(|t| up.get(t).map(String::as_str) == Some("1"));
        if live_up && up.get(&refused).map(String::as_str) == Some("0") {
            break;
        }
        assert!(
            started.elapsed() < deadline + Duration::from_millis(500),
            "not all targets up in time: {up:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Selectors return exactly what the targets served.
    for (i, t) in targets[..3].iter().enumerate() {
        let (_, body) = http_get(&format!("http://127.0.0.1:{}/metrics", base + i as u16)).unwrap();
        let model = body
            .lines()
            .find_map(|l| {
                l.strip_prefix("http_requests_total{")
                    .and_then(|r| r.split("model=\"").nth(1))
                    .map(|r| r.split('"').next().unwrap().to_string())
            })
            .expect("the synthetic target serves http_requests_total with a model label");
        let want = served_counts(&body, &model);
        assert!(!want.is_empty());
        let q = format!("http_requests_total{{model=\"{model}\",instance=\"{t}\"}}");
        let (status, v) = api(port, &format!("/api/v1/query?query={}", enc(&q)));
        assert_eq!(status, 200);
        assert_eq!(v["status"], "success");
        assert_eq!(v["data"]["resultType"], "vector");
        let got: BTreeMap<String, f64> = v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let m = s["metric"].as_object().unwrap();
                assert_eq!(m["job"], "synth");
                assert_eq!(m["instance"], t.as_str());
                assert_eq!(m["__name__"], "http_requests_total");
                let mut pairs: Vec<String> = m
                    .iter()
                    .filter(|(k, _)| !["__name__", "job", "instance"].contains(&k.as_str()))
                    .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap()))
                    .collect();
                pairs.sort();
                (
                    pairs.join(","),
                    s["value"][1].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want, "target {t}, model {model}");
    }

    // All four matcher kinds select the right subsets.
    let count = |q: &str| {
        api(port, &format!("/api/v1/query?query={}", enc(q))).1["data"]["result"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count(r#"up{job="synth"}"#), 4);
    assert_eq!(count(&format!(r#"up{{instance!="{refused}"}}"#)), 3);
    assert_eq!(count(r#"up{instance=~"127\\.0\\.0\\.1:.*"}"#), 4);
    assert_eq!(
        count(&format!(
            r#"up{{instance!~"{}"}}"#,
            refused.replace('.', "\\\\.")
        )),
        3
    );
    assert_eq!(count("scrape_duration_seconds"), 4);

    // A malformed parameter is a 400 with Prometheus' error JSON, and vigil keeps running.
    for bad in [
        "/api/v1/query?query=up%7B",
        "/api/v1/query?query=up&time=notatime",
    ] {
        let (status, v) = api(port, bad);
        assert_eq!(status, 400, "{bad}");
        assert_eq!(v["errorType"], "bad_data");
        assert!(
            v["error"].as_str().unwrap().contains("invalid parameter"),
            "{v}"
        );
    }
    assert!(vigil.running());
    assert_eq!(
        up_by_instance(port).get(&targets[0]).map(String::as_str),
        Some("1")
    );
}
