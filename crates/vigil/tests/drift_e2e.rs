//! Drift detection end to end, with real peers on loopback: the example `ml-service` (its
//! synthetic traffic exports `model_input_value{feature="x"|"z"}`), the real `vigil` binary
//! running `config/prometheus.yml` + `config/alerts.yml`, and a real Alertmanager whose
//! webhook receiver is a sink in this test.
//!
//! The rule file is rewritten so it runs in bounded time: scrape and evaluation every 1 s,
//! the `FeatureDrift` windows `[1h]` → `[10s]`, its reference `offset 7d` → `offset 15s`, its
//! `for: 15m` → `for: 5s`; ml-service sends itself 50 requests a second (about 500
//! observations per window). Once both windows are full of data, a quiet phase checks that
//! without a shift both features' PSI stays below 0.1 and no `FeatureDrift` is pending,
//! firing, or received by Alertmanager; after `/admin/faults?drift_shift=1` (feature `x`
//! moves by one standard deviation) `FeatureDrift{feature="x"}` fires and Alertmanager
//! delivers it, and nothing fires for `z`.

mod common;

use common::peers::*;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// The FeatureDrift expression's PSI with the test's windows (the rule without `> 0.2`).
const PSI: &str = "drift_psi(sum by (job, feature, le) (increase(model_input_value_bucket[10s])), sum by (job, feature, le) (increase(model_input_value_bucket[10s] offset 15s)))";
/// The test's window and reference offset, in seconds.
const WINDOW_S: u64 = 10;
const OFFSET_S: u64 = 15;

/// config/prometheus.yml and config/alerts.yml with test ports and short windows.
fn write_configs(dir: &Path, ml: u16, am: u16) {
    let prom = std::fs::read_to_string(repo().join("config/prometheus.yml")).unwrap();
    let prom = prom
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
        .replace("localhost:8000", &format!("127.0.0.1:{ml}"))
        .replace("localhost:9093", &format!("127.0.0.1:{am}"));
    std::fs::write(dir.join("prometheus.yml"), prom).unwrap();
    let alerts = std::fs::read_to_string(repo().join("config/alerts.yml")).unwrap();
    for s in ["alert: FeatureDrift", "[1h]", "offset 7d", "for: 15m"] {
        assert!(alerts.contains(s), "config/alerts.yml has no {s:?}");
    }
    let alerts = alerts
        .replace("[1h]", &format!("[{WINDOW_S}s]"))
        .replace("offset 7d", &format!("offset {OFFSET_S}s"))
        .replace("for: 15m", "for: 5s");
    std::fs::write(dir.join("alerts.yml"), alerts).unwrap();
}

/// PSI by feature now, from vigil's query API.
fn psi_by_feature(port: u16) -> Vec<(String, f64)> {
    let (s, v) = api(port, &format!("/api/v1/query?query={}", enc(PSI)));
    assert_eq!(s, 200, "{v}");
    let mut out: Vec<(String, f64)> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"]["feature"].as_str().unwrap().to_string(),
                r["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// FeatureDrift alerts in vigil's /api/v1/alerts: (feature, state).
fn vigil_alerts(port: u16) -> Vec<(String, String)> {
    let (_, v) = api(port, "/api/v1/alerts");
    v["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["alertname"] == "FeatureDrift")
        .map(|a| {
            (
                a["labels"]["feature"].as_str().unwrap_or("").to_string(),
                a["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// FeatureDrift alerts Alertmanager holds (its own API).
fn alertmanager_alerts(am: u16) -> Vec<serde_json::Value> {
    let (s, body) = http_get(&format!(
        "http://127.0.0.1:{am}/api/v2/alerts?filter=alertname%3D%22FeatureDrift%22"
    ))
    .unwrap();
    assert_eq!(s, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body)
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn feature_drift_fires_for_the_shifted_feature_only() {
    if !have_alertmanager() {
        return;
    }
    let started = Instant::now();
    let dir = tempdir("drift");
    let (sink_port, got) = start_sink();
    let am_port = free_port();
    let _am = start_alertmanager(&dir, am_port, sink_port);
    let (_ml, ml_port) = start_ml_service(&["--synthetic-rps=50"]);
    write_configs(&dir, ml_port, am_port);
    let (_vigil, port) = common::start_vigil_in(
        &dir,
        &dir.join("data"),
        &["--rules.alert.resend-delay=2s"],
        "vigil.log",
        &ready_200,
    );
    let vigil_ready = Instant::now();
    let log = || std::fs::read_to_string(dir.join("vigil.log")).unwrap_or_default();

    // The rule loads and evaluates.
    wait_for(Duration::from_secs(20), "FeatureDrift evaluated", || {
        let (_, v) = api(port, "/api/v1/rules?type=alert");
        v["data"]["groups"][0]["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["name"] == "FeatureDrift" && r["health"] == "ok")
    });
    // Until both windows are full of data (the first scrapes are at vigil's start), the PSI
    // compares a handful of requests and means nothing: the quiet phase starts after that.
    let full = vigil_ready + Duration::from_secs(OFFSET_S + WINDOW_S + 3);
    std::thread::sleep(full.saturating_duration_since(Instant::now()));
    wait_for(Duration::from_secs(10), "PSI for x and z", || {
        psi_by_feature(port).len() == 2
    });
    let warmed = started.elapsed();

    // No shift: a quiet window of 10 s in which the PSI stays low and nothing fires.
    let quiet_end = Instant::now() + Duration::from_secs(10);
    let mut max_quiet: f64 = 0.0;
    while Instant::now() < quiet_end {
        let psi = psi_by_feature(port);
        assert_eq!(
            psi.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
            ["x", "z"]
        );
        for (f, v) in &psi {
            assert!(*v < 0.1, "unshifted feature {f}: PSI {v}");
            max_quiet = max_quiet.max(*v);
        }
        assert!(vigil_alerts(port).is_empty(), "{:?}", vigil_alerts(port));
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(sink_alerts(&got, "FeatureDrift", "firing").is_empty());
    assert!(alertmanager_alerts(am_port).is_empty());
    println!("unshifted: max PSI {max_quiet:.4} over 10 s (x and z)");

    // Shift feature x by one standard deviation at runtime.
    set_faults(ml_port, "drift_shift=1");
    let shifted_at = Instant::now();
    wait_for(
        Duration::from_secs(40),
        "FeatureDrift firing in vigil",
        || {
            vigil_alerts(port)
                .iter()
                .any(|(f, s)| f == "x" && s == "firing")
        },
    );
    wait_for(
        Duration::from_secs(20),
        "Alertmanager delivers FeatureDrift",
        || !sink_alerts(&got, "FeatureDrift", "firing").is_empty(),
    );
    let delivered = shifted_at.elapsed();
    let a = &sink_alerts(&got, "FeatureDrift", "firing")[0];
    assert_eq!(a["labels"]["feature"], "x", "{a}");
    assert_eq!(a["labels"]["severity"], "warning");
    assert_eq!(a["labels"]["job"], "ml-service");
    assert_eq!(
        a["annotations"]["summary"],
        "Input feature x of ml-service has drifted"
    );
    let desc = a["annotations"]["description"].as_str().unwrap();
    assert!(
        desc.starts_with("The distribution of model input x over the last hour"),
        "{desc}"
    );
    let am = alertmanager_alerts(am_port);
    assert!(
        am.iter().any(|a| a["labels"]["feature"] == "x"),
        "Alertmanager's own view: {am:?}"
    );

    // z did not move: its PSI is still low and it never fired.
    let psi = psi_by_feature(port);
    println!("shifted: PSI {psi:?}");
    let x = psi.iter().find(|p| p.0 == "x").unwrap().1;
    let z = psi.iter().find(|p| p.0 == "z").unwrap().1;
    assert!(x > 0.2, "shifted x: PSI {x}");
    assert!(z < 0.1, "unshifted z: PSI {z}");
    assert!(
        sink_alerts(&got, "FeatureDrift", "firing")
            .iter()
            .all(|a| a["labels"]["feature"] == "x")
    );
    assert!(vigil_alerts(port).iter().all(|(f, _)| f == "x"));
    assert!(
        !log().contains("panicked"),
        "vigil log mentions a panic:\n{}",
        log()
    );
    println!(
        "data for both windows after {:.1} s; FeatureDrift delivered {:.1} s after the shift; {:.1} s in all",
        warmed.as_secs_f64(),
        delivered.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
