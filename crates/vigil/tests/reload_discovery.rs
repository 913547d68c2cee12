//! Config reload (POST /-/reload, SIGHUP) and file-based discovery against the real binary:
//! unchanged targets keep their loop and scrape cache, a bad config is refused and counted
//! while the old one keeps running, and file_sd changes are picked up without a reload.

mod common;

use common::*;
use std::time::Duration;

fn value(port: u16, q: &str) -> Option<String> {
    let (_, v) = api(port, &format!("/api/v1/query?query={}", enc(q)));
    v["data"]["result"]
        .as_array()
        .and_then(|r| r.first())
        .map(|s| s["value"][1].as_str().unwrap().to_string())
}

fn metric(port: u16, name: &str) -> Option<f64> {
    let (_, body) = http_get(&format!("http://127.0.0.1:{port}/metrics")).unwrap();
    body.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|r| r.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

fn active(port: u16) -> Vec<serde_json::Value> {
    let (_, t) = api(port, "/api/v1/targets?state=active");
    t["data"]["activeTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn reload_keeps_unchanged_targets_and_refuses_bad_configs() {
    let (_sim, base) = start_targets(2, 20, 3_600_000);
    let job_a =
        format!("  - job_name: a\n    static_configs:\n      - targets: ['127.0.0.1:{base}']\n");
    let cfg1 = format!("global:\n  scrape_interval: 1s\nscrape_configs:\n{job_a}");
    let (mut vigil, port, dir) = start_vigil_with(&cfg1, &["--web.enable-lifecycle"]);
    wait_for(Duration::from_secs(5), "job a up", || {
        value(port, "up{job=\"a\"}").as_deref() == Some("1")
    });
    wait_for(Duration::from_secs(5), "second scrape", || {
        value(port, "scrape_series_added{job=\"a\"}").as_deref() == Some("0")
    });

    // Add a job: a's loop and cache survive, so a's later scrapes add no series.
    let cfg2 = format!(
        "{cfg1}  - job_name: b\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
        base + 1
    );
    std::fs::write(dir.join("prometheus.yml"), &cfg2).unwrap();
    let (status, body) = http_post(&format!("http://127.0.0.1:{port}/-/reload"));
    assert_eq!(status, 200, "{body}");
    wait_for(Duration::from_secs(5), "job b up", || {
        value(port, "up{job=\"b\"}").as_deref() == Some("1")
    });
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        value(port, "scrape_series_added{job=\"a\"}").as_deref(),
        Some("0"),
        "job a kept its scrape cache"
    );
    assert_eq!(
        metric(port, "prometheus_config_last_reload_successful"),
        Some(1.0)
    );

    // A bad config is refused with 500, counted, and the old targets keep being scraped.
    std::fs::write(
        dir.join("prometheus.yml"),
        "scrape_configs:\n  - job_name: a\n    scrape_intervl: 1s\n",
    )
    .unwrap();
    let (status, body) = http_post(&format!("http://127.0.0.1:{port}/-/reload"));
    assert_eq!(status, 500);
    assert!(body.contains("scrape_intervl"), "{body}");
    assert_eq!(
        metric(port, "prometheus_config_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(active(port).len(), 2);

    // SIGHUP with a good config applies it (job b removed).
    std::fs::write(dir.join("prometheus.yml"), &cfg1).unwrap();
    let pid = vigil.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_for(Duration::from_secs(5), "job b gone", || {
        active(port).len() == 1
    });
    // Its series ended with stale markers, not five minutes of lookback.
    wait_for(Duration::from_secs(3), "job b stale", || {
        value(port, "up{job=\"b\"}").is_none()
    });
    assert_eq!(value(port, "up{job=\"a\"}").as_deref(), Some("1"));
    assert_eq!(
        metric(port, "prometheus_config_last_reload_successful"),
        Some(1.0)
    );
    assert!(vigil.running());
}

/// A rule file added by a reload: its alerting rules write `ALERTS` and `ALERTS_FOR_STATE`
/// at once (only the groups vigil started with wait for the `for`-state restore), and a
/// further reload keeps the alert (its `ALERTS_FOR_STATE` value, the activation time).
#[test]
fn alerting_rules_added_by_reload_write_alerts_series() {
    let cfg1 = "global:\n  evaluation_interval: 1s\n";
    let (_vigil, port, dir) = start_vigil_with(cfg1, &["--web.enable-lifecycle"]);
    std::fs::write(
        dir.join("added.yml"),
        "groups:\n  - name: added\n    rules:\n      - alert: AddedByReload\n        expr: vector(1) > 0\n        for: 0s\n",
    )
    .unwrap();
    let cfg2 = format!("{cfg1}rule_files: [added.yml]\n");
    std::fs::write(dir.join("prometheus.yml"), &cfg2).unwrap();
    let (status, body) = http_post(&format!("http://127.0.0.1:{port}/-/reload"));
    assert_eq!(status, 200, "{body}");
    wait_for(Duration::from_secs(10), "ALERTS of the added rule", || {
        value(
            port,
            "ALERTS{alertname=\"AddedByReload\",alertstate=\"firing\"}",
        )
        .as_deref()
            == Some("1")
    });
    let active_at = value(port, "ALERTS_FOR_STATE{alertname=\"AddedByReload\"}");
    assert!(active_at.is_some());

    let (status, body) = http_post(&format!("http://127.0.0.1:{port}/-/reload"));
    assert_eq!(status, 200, "{body}");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        value(port, "ALERTS_FOR_STATE{alertname=\"AddedByReload\"}"),
        active_at,
        "the alert kept its activation time across the reload"
    );
    let (_, a) = api(port, "/api/v1/alerts");
    let alerts = a["data"]["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{a}");
    assert_eq!(alerts[0]["state"], "firing");
}

#[test]
fn file_sd_changes_are_picked_up_and_targets_api_reports_them() {
    let (_sim, base) = start_targets(2, 20, 3_600_000);
    let dir = tempdir("filesd");
    let sd = dir.join("targets.json");
    std::fs::write(
        &sd,
        format!(r#"[{{"targets":["127.0.0.1:{base}"],"labels":{{"team":"ml"}}}}]"#),
    )
    .unwrap();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: fsd\n    file_sd_configs:\n      - files: ['{}/*.json']\n    relabel_configs:\n      - source_labels: [team]\n        regex: drop-me\n        action: drop\n",
        dir.display()
    );
    let (_vigil, port, _d) = start_vigil(&cfg);
    wait_for(Duration::from_secs(5), "first target up", || {
        value(port, "up{job=\"fsd\"}").as_deref() == Some("1")
    });
    let t = active(port);
    assert_eq!(t[0]["labels"]["team"], "ml");
    assert_eq!(
        t[0]["discoveredLabels"]["__meta_filepath"],
        sd.display().to_string()
    );
    assert_eq!(t[0]["scrapePool"], "fsd");
    assert_eq!(t[0]["health"], "up");

    // Rewrite the file: a second target, and a dropped one.
    std::fs::write(
        &sd,
        format!(
            r#"[{{"targets":["127.0.0.1:{base}","127.0.0.1:{}"],"labels":{{"team":"ml"}}}},{{"targets":["10.0.0.1:9"],"labels":{{"team":"drop-me"}}}}]"#,
            base + 1
        ),
    )
    .unwrap();
    wait_for(Duration::from_secs(6), "second target", || {
        active(port).len() == 2
    });
    let (_, d) = api(port, "/api/v1/targets?state=dropped");
    let dropped = d["data"]["droppedTargets"].as_array().unwrap();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0]["discoveredLabels"]["__address__"], "10.0.0.1:9");
    assert_eq!(d["data"]["droppedTargetCounts"]["fsd"], 1);
    assert!(
        d["data"].get("activeTargets").is_none(),
        "state=dropped lists only dropped targets"
    );

    // Target metadata comes from the scraped HELP/TYPE lines.
    let (_, m) = api(port, "/api/v1/targets/metadata?metric=http_requests_total");
    let items = m["data"].as_array().unwrap();
    assert!(!items.is_empty());
    assert_eq!(items[0]["type"], "counter");
    assert!(!items[0]["help"].as_str().unwrap().is_empty());
    assert_eq!(items[0]["target"]["job"], "fsd");
}

/// Serves `body` as JSON on a loopback port for every request (an HTTP SD endpoint).
fn serve_json(body: String) -> u16 {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn http_sd_targets_are_scraped() {
    let (_sim, base) = start_targets(1, 20, 3_600_000);
    let sd = serve_json(format!(
        r#"[{{"targets":["127.0.0.1:{base}"],"labels":{{"dc":"west"}}}}]"#
    ));
    let cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: hsd\n    http_sd_configs:\n      - url: http://127.0.0.1:{sd}/sd\n        refresh_interval: 1s\n"
    );
    let (_vigil, port, _d) = start_vigil(&cfg);
    wait_for(Duration::from_secs(6), "http_sd target up", || {
        value(port, "up{job=\"hsd\", dc=\"west\"}").as_deref() == Some("1")
    });
    let t = active(port);
    assert_eq!(
        t[0]["discoveredLabels"]["__meta_url"],
        format!("http://127.0.0.1:{sd}/sd")
    );
}

/// Prometheus 3's notifications: a failed reload raises "Configuration reload has failed."
/// at `/api/v1/notifications` and on the live stream; the next good reload clears it, and
/// the stream says so with `"active": false`.
#[test]
fn a_failed_reload_raises_a_notification_that_the_next_good_one_clears() {
    use std::io::{BufRead, BufReader};
    let cfg = "global:\n  scrape_interval: 1s\n";
    let (_vigil, port, dir) = start_vigil_with(cfg, &["--web.enable-lifecycle"]);
    let (_, n) = api(port, "/api/v1/notifications");
    assert_eq!(n, serde_json::json!({"status": "success", "data": []}));

    let live = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{port}/api/v1/notifications/live"))
        .send()
        .unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    let mut events = BufReader::new(live)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| {
            l.strip_prefix("data: ")
                .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
        });

    std::fs::write(dir.join("prometheus.yml"), "global: [not a map\n").unwrap();
    let (status, _) = http_post(&format!("http://127.0.0.1:{port}/-/reload"));
    assert_eq!(status, 500);
    let (_, n) = api(port, "/api/v1/notifications");
    let list = n["data"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{n}");
    assert_eq!(list[0]["text"], "Configuration reload has failed.");
    assert_eq!(list[0]["active"], true);
    assert!(list[0]["date"].as_str().unwrap().ends_with('Z'), "{n}");
    let raised = events.next().unwrap();
    assert_eq!(raised["text"], "Configuration reload has failed.");
    assert_eq!(raised["active"], true);

    std::fs::write(dir.join("prometheus.yml"), cfg).unwrap();
    let (status, body) = http_post(&format!("http://127.0.0.1:{port}/-/reload"));
    assert_eq!(status, 200, "{body}");
    let (_, n) = api(port, "/api/v1/notifications");
    assert_eq!(n["data"], serde_json::json!([]));
    let cleared = events.next().unwrap();
    assert_eq!(cleared["text"], "Configuration reload has failed.");
    assert_eq!(cleared["active"], false);
}
