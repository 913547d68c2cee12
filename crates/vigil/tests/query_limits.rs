//! The query limit flags of the real binary: `--query.max-samples` answers 422 with
//! Prometheus' error text and the server stays healthy; `--query.max-concurrency` queues
//! queries beyond its limit instead of failing them.

mod common;

use common::*;

const TOO_MANY: &str =
    "query processing would load too many samples into memory in query execution";

#[test]
fn max_samples_answers_422_and_server_stays_healthy() {
    let (_vigil, port, _dir) = start_vigil_with(
        "scrape_configs: []\n",
        &["--query.max-samples=100", "--query.max-concurrency=2"],
    );
    // Subqueries of 3,601 and 601 points, as an instant query and as a range query.
    for path in [
        format!(
            "/api/v1/query?query={}&time=100000",
            enc("sum_over_time(vector(1)[1h:1s])")
        ),
        format!(
            "/api/v1/query_range?query={}&start=1000&end=1100&step=10",
            enc("sum_over_time(vector(1)[10m:1s])")
        ),
    ] {
        let (status, v) = api(port, &path);
        assert_eq!(status, 422, "{path}: {v}");
        assert_eq!(v["status"], "error", "{v}");
        assert_eq!(v["errorType"], "execution", "{v}");
        assert_eq!(v["error"], TOO_MANY, "{v}");
    }
    // Still healthy and answering queries under the limit, several at once (more than the
    // concurrency limit of 2: they queue, none fails).
    let (s, _) = http_get(&format!("http://127.0.0.1:{port}/-/healthy")).unwrap();
    assert_eq!(s, 200);
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                sc.spawn(move || {
                    api(
                        port,
                        &format!("/api/v1/query?query={}&time=1000", enc(&format!("{i} + 1"))),
                    )
                })
            })
            .collect();
        for (i, h) in hs.into_iter().enumerate() {
            let (s, v) = h.join().unwrap();
            assert_eq!(s, 200, "{v}");
            assert_eq!(v["data"]["result"][1], format!("{}", i + 1), "{v}");
        }
    });
    let (s, v) = api(
        port,
        &format!(
            "/api/v1/query?query={}",
            enc("sum_over_time(vector(1)[1m:1s])") + "&time=1000"
        ),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["result"][0]["value"][1], "60", "{v}");
}

/// Peak resident memory of a process, from /proc (kB).
fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn queries_touching_a_billion_samples_fail_without_growing_memory() {
    // Default limits (50,000,000 samples).
    let (vigil, port, _dir) = start_vigil("scrape_configs: []\n");
    let pid = vigil.child.id();
    let before = peak_rss_kb(pid);
    // 10^9 subquery steps (11,574 days at 1 s), instant and nested in a range query.
    for path in [
        format!(
            "/api/v1/query?query={}&time=1000000000",
            enc("sum_over_time(vector(1)[11574d:1s])")
        ),
        format!(
            "/api/v1/query_range?query={}&start=1000000000&end=1000001000&step=100",
            enc("max_over_time(rate(up[5m])[11574d:1s])")
        ),
    ] {
        let (status, v) = api(port, &path);
        assert_eq!(status, 422, "{path}: {v}");
        assert_eq!(v["error"], TOO_MANY, "{v}");
    }
    let after = peak_rss_kb(pid);
    assert!(
        after < before + 256 * 1024,
        "peak RSS grew from {before} kB to {after} kB"
    );
    let (s, _) = http_get(&format!("http://127.0.0.1:{port}/-/healthy")).unwrap();
    assert_eq!(s, 200);
}
