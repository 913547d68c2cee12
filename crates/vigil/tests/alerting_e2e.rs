//! Rules and alerts end to end, with real peers on loopback: the example `ml-service`, the
//! real `vigil` binary running `config/prometheus.yml` + `config/alerts.yml` (intervals, the
//! rate window and `for` shortened), and a real Alertmanager (`prometheus-alertmanager`)
//! whose webhook receiver points at a sink in this test.
//!
//! - Injected latency above 0.5 s makes `HighResponseTime` pending, then firing; the sink
//!   receives it with the seed's labels and annotations; removing the latency resolves it
//!   and the sink receives the resolution.
//! - Alertmanager down for a while: vigil keeps running, counts the failed sends, and the
//!   firing alert reaches the sink once Alertmanager is back.
//! - A restart of vigil while an alert is pending restores its `for` clock.

mod common;

use common::peers::{Received, have_alertmanager, repo, start_alertmanager, start_sink};
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn start_ml_service() -> (Proc, u16) {
    common::peers::start_ml_service(&["--synthetic-rps=20"])
}

fn set_latency(port: u16, secs: f64) {
    common::peers::set_faults(port, &format!("latency={secs}"));
}

/// config/prometheus.yml and config/alerts.yml with test ports and short intervals. The rate
/// window holds six scrapes and the scrape timeout is 2 s, so a scrape delayed or skipped on
/// a loaded machine does not end the recorded series (and with it the alert).
fn write_configs(dir: &Path, ml: u16, am: u16, for_: &str) {
    let prom = std::fs::read_to_string(repo().join("config/prometheus.yml")).unwrap();
    let prom = prom
        .replace("scrape_interval: 15s", "scrape_interval: 2s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
        .replace("localhost:8000", &format!("127.0.0.1:{ml}"))
        .replace("localhost:9093", &format!("127.0.0.1:{am}"));
    std::fs::write(dir.join("prometheus.yml"), prom).unwrap();
    let alerts = std::fs::read_to_string(repo().join("config/alerts.yml")).unwrap();
    assert!(alerts.contains("for: 5m") && alerts.contains("[1m]"));
    let alerts = alerts
        .replace("for: 5m", &format!("for: {for_}"))
        .replace("[1m]", "[12s]");
    std::fs::write(dir.join("alerts.yml"), alerts).unwrap();
}

fn start_vigil_in(dir: &Path, extra: &[&str], log_name: &str) -> (Proc, u16) {
    // Debug logging: a failed scrape or rule evaluation is then in the log `explain` prints.
    let mut args = vec!["--log.level=debug"];
    args.extend_from_slice(extra);
    common::start_vigil_in(dir, &dir.join("data"), &args, log_name, &ready_200)
}

/// What the server saw over the last 90 s, for a timeout's message: the series the alert
/// depends on, step by step, the target's and rules' health, and the end of the log.
fn explain(port: u16, log: &Path) -> String {
    let mut out = String::new();
    let end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for q in [
        "up",
        "scrape_duration_seconds",
        "request_processing_seconds_count",
        "request_processing_seconds_avg",
        "ALERTS",
    ] {
        let path = format!(
            "/api/v1/query_range?query={}&start={}&end={end}&step=1",
            enc(q),
            end - 90.0
        );
        let (_, v) = api(port, &path);
        out += &format!("{q}: {}\n", v["data"]["result"]);
    }
    let (_, t) = api(port, "/api/v1/targets");
    out += &format!("targets: {}\n", t["data"]["activeTargets"]);
    let (_, r) = api(port, "/api/v1/rules");
    out += &format!("rules: {}\n", r["data"]["groups"]);
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    out += &lines[lines.len().saturating_sub(60)..].join("\n");
    out
}

/// State of HighResponseTime in /api/v1/alerts, and its activeAt.
fn alert_state(port: u16) -> Option<(String, String)> {
    let (_, v) = api(port, "/api/v1/alerts");
    v["data"]["alerts"].as_array()?.iter().find_map(|a| {
        (a["labels"]["alertname"] == "HighResponseTime").then(|| {
            (
                a["state"].as_str().unwrap_or("").to_string(),
                a["activeAt"].as_str().unwrap_or("").to_string(),
            )
        })
    })
}

fn sink_has(got: &Received, status: &str) -> Option<serde_json::Value> {
    got.lock().unwrap().iter().find_map(|body| {
        body["alerts"].as_array()?.iter().find_map(|a| {
            (a["labels"]["alertname"] == "HighResponseTime" && a["status"] == status)
                .then(|| a.clone())
        })
    })
}

fn metric(port: u16, name: &str) -> f64 {
    let (_, text) = http_get(&format!("http://127.0.0.1:{port}/metrics")).unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn high_response_time_fires_resolves_and_survives_alertmanager_outage() {
    if !have_alertmanager() {
        return;
    }
    let dir = tempdir("alerting");
    let (sink_port, got) = start_sink();
    let am_port = free_port();
    let mut am = start_alertmanager(&dir, am_port, sink_port);
    let (_ml, ml_port) = start_ml_service();
    write_configs(&dir, ml_port, am_port, "3s");
    let (mut vigil, port) = start_vigil_in(&dir, &["--rules.alert.resend-delay=2s"], "vigil.log");
    let log = || std::fs::read_to_string(dir.join("vigil.log")).unwrap_or_default();

    // The recording rule and the alerting rule are loaded and healthy.
    wait_for(Duration::from_secs(20), "rules evaluated", || {
        let (_, v) = api(port, "/api/v1/rules");
        let rules = &v["data"]["groups"][0]["rules"];
        rules[0]["health"] == "ok" && rules[1]["health"] == "ok"
    });
    let (_, v) = api(port, "/api/v1/rules?type=record");
    assert_eq!(
        v["data"]["groups"][0]["rules"][0]["name"],
        "request_processing_seconds_avg"
    );
    assert_eq!(v["data"]["groups"][0]["rules"].as_array().unwrap().len(), 1);
    assert!(alert_state(port).is_none(), "no alert without latency");

    // Latency above 0.5 s: pending, then firing, then delivered.
    set_latency(ml_port, 0.7);
    let explain = || explain(port, &dir.join("vigil.log"));
    wait_for_or(
        Duration::from_secs(30),
        "HighResponseTime pending",
        || alert_state(port).is_some_and(|(s, _)| s == "pending"),
        explain,
    );
    wait_for_or(
        Duration::from_secs(30),
        "HighResponseTime firing",
        || alert_state(port).is_some_and(|(s, _)| s == "firing"),
        explain,
    );
    let (_, v) = api(port, "/api/v1/rules?type=alert");
    assert_eq!(v["data"]["groups"][0]["rules"][0]["state"], "firing");
    wait_for(
        Duration::from_secs(30),
        "sink receives the firing alert",
        || sink_has(&got, "firing").is_some(),
    );
    let a = sink_has(&got, "firing").unwrap();
    let instance = format!("127.0.0.1:{ml_port}");
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["labels"]["job"], "ml-service");
    assert_eq!(a["labels"]["instance"], instance.as_str());
    assert_eq!(
        a["annotations"]["summary"],
        format!("High response time on {instance}").as_str()
    );
    let desc = a["annotations"]["description"].as_str().unwrap();
    // The value the alert fired with: above the threshold, at most the injected latency plus
    // the service's own processing time.
    let value = desc
        .strip_prefix(
            "Average request processing time has been above 0.5s for 5 minutes (current value: ",
        )
        .and_then(|rest| rest.strip_suffix("s)."))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(value.is_some_and(|v| v > 0.5 && v < 0.8), "{desc}");
    assert!(
        a["generatorURL"]
            .as_str()
            .unwrap()
            .contains("/graph?g0.expr=")
    );
    assert!(metric(port, "prometheus_notifications_sent_total") >= 1.0);

    // Latency removed: resolved, and the resolution delivered.
    set_latency(ml_port, 0.0);
    wait_for(
        Duration::from_secs(40),
        "sink receives the resolution",
        || sink_has(&got, "resolved").is_some(),
    );
    // Alertmanager also resolves an alert on its own when its `endsAt` (four times the longer
    // of the resend delay and the evaluation interval after the last send: 8 s here) passes
    // without a re-send, as on a stalled machine: so the resolution may reach the sink before
    // vigil's own rule drops the alert. Wait for vigil's side too.
    wait_for_or(
        Duration::from_secs(30),
        "HighResponseTime no longer active in vigil",
        || alert_state(port).is_none(),
        explain,
    );

    // Alertmanager down: the alert fires meanwhile; sends fail and are counted; nothing crashes.
    drop(am);
    got.lock().unwrap().clear();
    set_latency(ml_port, 0.7);
    wait_for_or(
        Duration::from_secs(30),
        "firing while Alertmanager is down",
        || alert_state(port).is_some_and(|(s, _)| s == "firing"),
        explain,
    );
    wait_for(Duration::from_secs(20), "failed sends counted", || {
        metric(port, "prometheus_notifications_errors_total") >= 1.0
    });
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        vigil.running(),
        "vigil died with Alertmanager down:\n{}",
        log()
    );
    let dropped = metric(port, "prometheus_notifications_dropped_total");
    assert!(dropped >= 1.0, "failed batches are counted as dropped");
    // Back on the same address: the re-sent firing alert arrives.
    am = start_alertmanager(&dir, am_port, sink_port);
    wait_for(
        Duration::from_secs(30),
        "sink receives the alert after the outage",
        || sink_has(&got, "firing").is_some(),
    );
    assert!(vigil.running());
    set_latency(ml_port, 0.0);
    drop(am);
}

#[test]
fn restart_while_pending_restores_the_for_clock() {
    let dir = tempdir("forstate");
    let am_port = free_port(); // nothing listens: delivery is not the point here
    let (_ml, ml_port) = start_ml_service();
    write_configs(&dir, ml_port, am_port, "10m");
    let flags = ["--rules.alert.for-grace-period=1s"];
    let (vigil, port) = start_vigil_in(&dir, &flags, "vigil1.log");
    set_latency(ml_port, 0.7);
    // Let the alert be pending a while, with ALERTS_FOR_STATE written every second. (A scrape
    // that fails on a loaded machine ends the series and the alert, as in Prometheus, and the
    // clock starts again: what counts is 8 s of pending before the restart.)
    let mut before = String::new();
    wait_for_or(
        Duration::from_secs(45),
        "pending for 8 s",
        || match alert_state(port) {
            Some((s, at)) if s == "pending" => {
                let pending_for = seconds_before(&at, std::time::SystemTime::now());
                before = at;
                pending_for.is_some_and(|d| d >= 8.0)
            }
            _ => false,
        },
        || explain(port, &dir.join("vigil1.log")),
    );
    let (_, v) = api(port, "/api/v1/query?query=ALERTS_FOR_STATE");
    assert_eq!(v["data"]["result"].as_array().map(Vec::len), Some(1), "{v}");
    // Clean stop, restart on the same data.
    sigterm_and_wait(&vigil);
    drop(vigil);
    let restarted_at = std::time::SystemTime::now();
    let (_vigil2, port2) = start_vigil_in(&dir, &flags, "vigil2.log");
    // After restore, activeAt lies well before the restart: the clock kept its pending time.
    wait_for(Duration::from_secs(30), "for state restored", || {
        alert_state(port2).is_some_and(|(s, at)| {
            s == "pending" && seconds_before(&at, restarted_at).is_some_and(|d| d >= 5.0)
        })
    });
    let (_, after) = alert_state(port2).unwrap();
    assert_ne!(before, after, "activeAt moves forward by the downtime");
    set_latency(ml_port, 0.0);
}

/// Sends SIGTERM and waits for the process to exit (clean shutdown flushes the head).
fn sigterm_and_wait(p: &Proc) {
    let _ = Command::new("kill").arg(p.child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if !Path::new(&format!("/proc/{}", p.child.id())).exists()
            || std::fs::read_to_string(format!("/proc/{}/stat", p.child.id()))
                .is_ok_and(|s| s.contains(") Z "))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How many seconds the RFC 3339 time `at` lies before `t`.
fn seconds_before(at: &str, t: std::time::SystemTime) -> Option<f64> {
    // 2024-01-02T03:04:05.678Z
    let (date, time) = at.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
    let mut tt = time.split(':');
    let (h, mi) = (
        tt.next()?.parse::<i64>().ok()?,
        tt.next()?.parse::<i64>().ok()?,
    );
    let s: f64 = tt.next()?.parse().ok()?;
    // days from civil (Howard Hinnant)
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = (days * 86400 + h * 3600 + mi * 60) as f64 + s;
    let now = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64();
    Some(now - secs)
}
