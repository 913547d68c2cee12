//! The synthetic targets the other tests scrape (`common/target.rs`) keep the promises those
//! tests rely on: the series count, HELP/TYPE for every family, gzip on request, counters that
//! only reset together at a restart, cumulative histogram buckets, ordered quantiles, and an
//! OpenMetrics history that `vigil tsdb import openmetrics` accepts.

mod common;

use common::target::{body_at, series_per_target};
use common::*;
use std::collections::BTreeMap;
use std::io::Read;
use std::process::Command;

/// Sample lines of a text-format body: series text → value.
fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (s, v) = l.rsplit_once(' ').unwrap();
            (s.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn serves_the_series_asked_for_with_metadata_and_gzip() {
    let (_t, base) = start_targets(2, 40, 3_600_000);
    let (s, body) = http_get(&format!("http://127.0.0.1:{base}/metrics")).unwrap();
    assert_eq!(s, 200);
    let n = samples(&body).len();
    assert_eq!(n, series_per_target(40) as usize);
    assert!(n >= 40);
    for l in body.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = l.split(' ').nth(2).unwrap();
        assert!(body.contains(&format!("# HELP {name} ")), "{name}");
    }
    let (_, other) = http_get(&format!("http://127.0.0.1:{}/metrics", base + 1)).unwrap();
    assert_ne!(body, other, "targets differ");

    // Asked for gzip, the same body compressed.
    let r = reqwest::blocking::Client::builder()
        .no_gzip()
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{base}/metrics"))
        .header("Accept-Encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&r.bytes().unwrap()[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, body, "same step, same body");
    let (s, _) = http_get(&format!("http://127.0.0.1:{base}/nothing")).unwrap();
    assert_eq!(s, 404);
}

#[test]
fn counters_grow_until_a_restart_and_histograms_are_cumulative() {
    // A minute per step: 400 steps cross at least one restart (every 2-3 h).
    let step_ms = 60_000;
    let mut prev: Option<BTreeMap<String, f64>> = None;
    let mut restarts = 0;
    for k in 28_000_000..28_000_400 {
        let now = samples(&body_at(0, 100, step_ms, k));
        let counter = |s: &str| {
            let name = s.split('{').next().unwrap();
            name.ends_with("_total")
                || name.ends_with("_count")
                || name.ends_with("_bucket")
                || name.ends_with("_sum")
        };
        if let Some(p) = &prev {
            let restarted = p["process_start_time_seconds"] != now["process_start_time_seconds"];
            restarts += usize::from(restarted);
            for (s, v) in now.iter().filter(|(s, _)| counter(s)) {
                if restarted {
                    assert!(*v <= p[s], "{s} did not reset at step {k}");
                } else {
                    assert!(*v >= p[s], "{s} went down at step {k}");
                }
            }
        }
        // Buckets grow with `le`; +Inf is the count; quantiles are ordered.
        let mut last: BTreeMap<String, f64> = BTreeMap::new();
        for (s, v) in &now {
            if let Some(rest) = s.strip_prefix("prediction_latency_seconds_bucket{") {
                let model = rest.split(",le=").next().unwrap().to_string();
                // BTreeMap order is by le text; compare the +Inf bucket with the largest.
                let e = last.entry(model).or_insert(0.0);
                *e = e.max(*v);
            }
        }
        for (model, max) in &last {
            let inf = now[&format!("prediction_latency_seconds_bucket{{{model},le=\"+Inf\"}}")];
            assert_eq!(inf, *max);
            assert_eq!(
                inf,
                now[&format!("prediction_latency_seconds_count{{{model}}}")]
            );
            let le =
                |b: &str| now[&format!("prediction_latency_seconds_bucket{{{model},le=\"{b}\"}}")];
            assert!(le("0.01") <= le("0.1") && le("0.1") <= le("1") && le("1") <= inf);
            let q =
                |x: &str| now[&format!("request_processing_seconds{{{model},quantile=\"{x}\"}}")];
            assert!(q("0.5") < q("0.9") && q("0.9") < q("0.99"), "{model}");
        }
        prev = Some(now);
    }
    assert!(restarts >= 1, "no restart in 400 minutes");
}

#[test]
fn openmetrics_history_imports() {
    let dir = tempdir("synth-om");
    let om = dir.join("h.om");
    let start = 1_700_000_000;
    let n = write_openmetrics(&om, &History::new(2, 40, start, 1800));
    let text = std::fs::read_to_string(&om).unwrap();
    assert!(text.ends_with("# EOF\n"));
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), n);
    assert_eq!(n, 2 * series_per_target(40) as usize * (1800 / 15));
    for l in &lines {
        let ts = l.rsplit(' ').next().unwrap();
        let (s, ms) = ts.split_once('.').unwrap();
        assert!(ms.len() == 3 && ms != "000", "{l}");
        assert!(s.parse::<i64>().unwrap() >= start);
    }
    let out = Command::new(vigil_bin())
        .args(["tsdb", "import", "openmetrics"])
        .arg(&om)
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vigil tsdb import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The imported blocks as /api/v1/status/tsdb/blocks lists them (Prometheus 3's shape).
    std::fs::write(dir.join("prometheus.yml"), "scrape_configs: []\n").unwrap();
    let (_vigil, port) =
        start_vigil_in(&dir, &dir.join("data"), &[], "vigil.log", &|p| ready_200(p));
    let (status, v) = api(port, "/api/v1/status/tsdb/blocks");
    assert_eq!(status, 200, "{v}");
    let blocks = v["data"]["blocks"].as_array().unwrap();
    assert!(!blocks.is_empty(), "{v}");
    let samples: u64 = blocks
        .iter()
        .map(|b| b["stats"]["numSamples"].as_u64().unwrap())
        .sum();
    assert_eq!(samples, n as u64, "{v}");
    for b in blocks {
        assert!(b["ulid"].as_str().is_some_and(|u| !u.is_empty()));
        assert!(b["minTime"].as_i64().unwrap() < b["maxTime"].as_i64().unwrap());
        assert!(b["compaction"]["level"].as_u64().is_some());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
