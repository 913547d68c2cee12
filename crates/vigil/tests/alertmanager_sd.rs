//! Alertmanagers found by service discovery, against the real binary: an HTTP SD endpoint
//! written here lists an Alertmanager stand-in (the alert sink of `common::peers`) and a
//! second target that `relabel_configs` drops. A firing alert reaches the sink,
//! `/api/v1/alertmanagers` lists the sink as active and the other as dropped, and
//! `prometheus_sd_discovered_targets` counts the targets of the Alertmanager config
//! (`name="notify"`) and of a scrape job (`name="scrape"`) before relabeling. A reload
//! replaces the Alertmanagers.

mod common;

use common::peers::start_sink;
use common::*;
use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;

/// An HTTP SD endpoint answering every request with `body`; counts the requests.
fn serve_http_sd(body: String) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in l.incoming().flatten() {
            let _ = read_request_head(&mut conn);
            let _ = conn.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    port
}

fn metric_line(port: u16, line_prefix: &str) -> Option<f64> {
    let (_, body) = http_get(&format!("http://127.0.0.1:{port}/metrics")).ok()?;
    body.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn alertmanager_found_by_http_sd_receives_firing_alert() {
    let (sink, got) = start_sink();
    let sd = serve_http_sd(format!(
        r#"[{{"targets":["127.0.0.1:{sink}"],"labels":{{"env":"test"}}}},{{"targets":["127.0.0.1:1"],"labels":{{"drop":"yes"}}}}]"#
    ));
    let dir = tempdir("am-sd");
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: AlwaysFiring\n        expr: vector(1)\n        labels:\n          severity: page\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalerting:\n  alertmanagers:\n    - path_prefix: /am\n      http_sd_configs:\n        - url: http://127.0.0.1:{sd}/sd\n          refresh_interval: 1s\n      relabel_configs:\n        - source_labels: [drop]\n          regex: 'yes'\n          action: drop\nscrape_configs:\n  - job_name: j\n    static_configs:\n      - targets: ['127.0.0.1:1', '127.0.0.1:2']\n"
        ),
    )
    .unwrap();
    let (_vigil, port) = start_vigil_in(
        &dir,
        &dir.join("data"),
        &["--rules.alert.resend-delay=1s", "--web.enable-lifecycle"],
        "vigil.log",
        &ready_200,
    );
    let log = || std::fs::read_to_string(dir.join("vigil.log")).unwrap_or_default();

    let am_url = format!("http://127.0.0.1:{sink}/am/api/v2/alerts");
    wait_for_or(
        Duration::from_secs(30),
        "the Alertmanager found by HTTP SD",
        || {
            let (_, v) = api(port, "/api/v1/alertmanagers");
            v["data"]["activeAlertmanagers"] == serde_json::json!([{ "url": am_url }])
        },
        || {
            let (_, v) = api(port, "/api/v1/alertmanagers");
            format!("alertmanagers: {v}\nlog:\n{}", log())
        },
    );
    let (_, last) = api(port, "/api/v1/alertmanagers");
    assert_eq!(
        last["data"]["droppedAlertmanagers"],
        serde_json::json!([{ "url": "http://127.0.0.1:1/am/api/v2/alerts" }])
    );

    wait_for_or(
        Duration::from_secs(30),
        "the firing alert at the sink",
        || {
            got.lock().unwrap().iter().any(|body| {
                body.as_array().is_some_and(|alerts| {
                    alerts.iter().any(|a| {
                        a["labels"]["alertname"] == "AlwaysFiring"
                            && a["labels"]["severity"] == "page"
                    })
                })
            })
        },
        || format!("the sink got: {:?}\nlog:\n{}", got.lock().unwrap(), log()),
    );

    // Both discovery managers count targets before relabeling.
    assert_eq!(
        metric_line(
            port,
            r#"prometheus_sd_discovered_targets{config="config-0",name="notify"} "#
        ),
        Some(2.0)
    );
    assert_eq!(
        metric_line(
            port,
            r#"prometheus_sd_discovered_targets{config="j",name="scrape"} "#
        ),
        Some(2.0)
    );
    assert!(
        metric_line(port, r#"prometheus_sd_updates_total{name="notify"} "#).unwrap_or(0.0) >= 1.0
    );
    assert!(
        metric_line(
            port,
            r#"prometheus_sd_received_updates_total{name="notify"} "#
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    assert!(
        metric_line(port, "prometheus_notifications_sent_total{").unwrap_or(0.0) >= 1.0,
        "no alerts counted as sent"
    );

    // A reload replaces the discovery configs: now one static Alertmanager.
    std::fs::write(
        dir.join("prometheus.yml"),
        "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:9']\n",
    )
    .unwrap();
    assert_eq!(
        http_post(&format!("http://127.0.0.1:{port}/-/reload")).0,
        200
    );
    wait_for_or(
        Duration::from_secs(10),
        "the reloaded Alertmanager list",
        || {
            let (_, v) = api(port, "/api/v1/alertmanagers");
            v["data"]["activeAlertmanagers"]
                == serde_json::json!([{ "url": "http://127.0.0.1:9/api/v2/alerts" }])
                && v["data"]["droppedAlertmanagers"] == serde_json::json!([])
        },
        || {
            let (_, v) = api(port, "/api/v1/alertmanagers");
            format!("alertmanagers: {v}\nlog:\n{}", log())
        },
    );
    assert_eq!(
        metric_line(
            port,
            r#"prometheus_sd_discovered_targets{config="config-0",name="notify"} "#
        ),
        Some(1.0)
    );
}

/// The in-cluster pattern: Alertmanagers found by `kubernetes_sd_configs` (role `endpoints`
/// in namespace `monitoring`, kept by service and port name) on the fake Kubernetes API
/// server. The firing alert reaches the Alertmanager behind the `web` port; the mesh port is
/// dropped; when the Alertmanager pod moves (its endpoints change), alerts follow it.
#[test]
fn alertmanager_found_by_kubernetes_sd_follows_its_endpoints() {
    use common::kube::{FakeApi, TOKEN};
    use serde_json::json;
    let (sink, got) = start_sink();
    let (sink2, got2) = start_sink();
    let fake = std::sync::Arc::new(FakeApi::default());
    fake.apply(
        "services",
        json!({"metadata": {"name": "alertmanager", "namespace": "monitoring"},
               "spec": {"type": "ClusterIP", "clusterIP": "None",
                        "ports": [{"name": "web", "port": 9093}, {"name": "cluster", "port": 9094}]}}),
    );
    let endpoints = |port: u16| {
        json!({"metadata": {"name": "alertmanager", "namespace": "monitoring"},
               "subsets": [{"addresses": [{"ip": "127.0.0.1"}],
                            "ports": [{"name": "web", "port": port, "protocol": "TCP"},
                                      {"name": "cluster", "port": 9094, "protocol": "TCP"}]}]})
    };
    fake.apply("endpoints", endpoints(sink));
    let api_port = std::sync::Arc::clone(&fake).serve(0);
    let dir = tempdir("am-k8s");
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: AlwaysFiring\n        expr: vector(1)\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalerting:\n  alertmanagers:\n    - kubernetes_sd_configs:\n        - role: endpoints\n          api_server: http://127.0.0.1:{api_port}\n          bearer_token: {TOKEN}\n          namespaces: {{names: [monitoring]}}\n      relabel_configs:\n        - source_labels: [__meta_kubernetes_service_name]\n          regex: alertmanager\n          action: keep\n        - source_labels: [__meta_kubernetes_endpoint_port_name]\n          regex: web\n          action: keep\n"
        ),
    )
    .unwrap();
    let (_vigil, port) = start_vigil_in(
        &dir,
        &dir.join("data"),
        &["--rules.alert.resend-delay=1s"],
        "vigil.log",
        &ready_200,
    );
    let log = || std::fs::read_to_string(dir.join("vigil.log")).unwrap_or_default();
    let ams = |want: u16| {
        wait_for_or(
            Duration::from_secs(10),
            "the Alertmanager found through Kubernetes",
            || {
                let (_, v) = api(port, "/api/v1/alertmanagers");
                v["data"]["activeAlertmanagers"]
                    == json!([{ "url": format!("http://127.0.0.1:{want}/api/v2/alerts") }])
                    && v["data"]["droppedAlertmanagers"]
                        == json!([{ "url": "http://127.0.0.1:9094/api/v2/alerts" }])
            },
            || {
                let (_, v) = api(port, "/api/v1/alertmanagers");
                format!("alertmanagers: {v}\nlog:\n{}", log())
            },
        )
    };
    let fired = |got: &common::peers::Received| {
        got.lock().unwrap().iter().any(|body| {
            body.as_array()
                .is_some_and(|a| a.iter().any(|a| a["labels"]["alertname"] == "AlwaysFiring"))
        })
    };
    ams(sink);
    wait_for_or(
        Duration::from_secs(20),
        "the alert at the Alertmanager",
        || fired(&got),
        log,
    );
    // The pod moves: its endpoints now point at the second Alertmanager.
    fake.apply("endpoints", endpoints(sink2));
    ams(sink2);
    wait_for_or(
        Duration::from_secs(20),
        "the alert at the moved Alertmanager",
        || fired(&got2),
        log,
    );
    assert!(
        metric_line(
            port,
            r#"prometheus_sd_discovered_targets{config="config-0",name="notify"} "#
        ) == Some(2.0),
        "{}",
        log()
    );
}
