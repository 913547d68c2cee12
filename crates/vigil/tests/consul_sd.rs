//! `consul_sd_configs` against the real binary and a fake Consul written here: the catalog's
//! service list and each service's health entries answer blocking queries (`index`, `wait`,
//! `X-Consul-Index`) as Consul does. Checks that `/api/v1/targets` shows exactly Prometheus'
//! labels, that catalog changes (a new service, changed tags, a removed service) arrive within
//! seconds because a pending blocking query returns, and that a failing Consul keeps the last
//! good targets until it recovers.

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Catalog {
    index: u64,
    /// Service name → health entries.
    services: BTreeMap<String, Vec<Value>>,
    fail: bool,
    /// Path and query of every request, its `X-Consul-Token`, and whether a blocking query
    /// was answered because the index moved while it waited.
    log: Vec<(String, String, bool)>,
}

#[derive(Default)]
struct FakeConsul {
    state: Mutex<Catalog>,
    moved: Condvar,
}

impl FakeConsul {
    /// Applies a change and wakes the blocking queries, as a Consul write does.
    fn change(&self, f: impl FnOnce(&mut Catalog)) {
        let mut s = self.state.lock().unwrap();
        f(&mut s);
        s.index += 1;
        self.moved.notify_all();
    }

    fn serve(self: Arc<Self>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let me = Arc::clone(&self);
                std::thread::spawn(move || me.handle(conn));
            }
        });
        port
    }

    fn handle(&self, mut conn: TcpStream) {
        let Some(head) = read_request_head(&mut conn) else {
            return;
        };
        let target = head.split(' ').nth(1).unwrap_or("/").to_string();
        let token = request_header(&head, "x-consul-token");
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());

        let mut s = self.state.lock().unwrap();
        // A blocking query: wait while the index is the one the client already has.
        let mut woken = false;
        if let Some(index) = param("index").and_then(|i| i.parse::<u64>().ok()) {
            let wait = param("wait")
                .and_then(|w| w.strip_suffix("ms").and_then(|m| m.parse::<u64>().ok()))
                .map_or(Duration::from_secs(300), Duration::from_millis)
                .min(Duration::from_secs(60));
            let deadline = Instant::now() + wait;
            let mut waited = false;
            while s.index <= index && !s.fail {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                s = self.moved.wait_timeout(s, left).unwrap().0;
                waited = true;
            }
            woken = waited && s.index > index;
        }
        s.log.push((target.clone(), token, woken));
        let (status, body) = if s.fail {
            (
                "500 Internal Server Error",
                "rpc error: No cluster leader".to_string(),
            )
        } else if path == "/v1/agent/self" {
            (
                "200 OK",
                json!({"Config": {"Datacenter": "dc-test"}}).to_string(),
            )
        } else if path == "/v1/catalog/services" {
            let m: serde_json::Map<String, Value> = s
                .services
                .iter()
                .map(|(name, entries)| {
                    let mut tags: Vec<Value> = Vec::new();
                    for e in entries {
                        for t in e["Service"]["Tags"].as_array().cloned().unwrap_or_default() {
                            if !tags.contains(&t) {
                                tags.push(t);
                            }
                        }
                    }
                    (name.clone(), Value::Array(tags))
                })
                .collect();
            ("200 OK", Value::Object(m).to_string())
        } else if let Some(name) = path.strip_prefix("/v1/health/service/") {
            let entries = s.services.get(name).cloned().unwrap_or_default();
            ("200 OK", Value::Array(entries).to_string())
        } else {
            ("404 Not Found", "not found".to_string())
        };
        let index = s.index;
        drop(s);
        let _ = write!(
            conn,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nX-Consul-Index: {index}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

fn entry(
    node: (&str, &str, Value, Value),
    service: (&str, &str, &[&str], &str, u16, Value),
    extra: Value,
    status: &str,
) -> Value {
    let (node_name, node_addr, node_meta, tagged) = node;
    let (id, name, tags, addr, port, meta) = service;
    let mut svc = json!({
        "ID": id, "Service": name, "Tags": tags, "Address": addr, "Port": port, "Meta": meta,
        "EnableTagOverride": false, "Weights": {"Passing": 1, "Warning": 1}
    });
    if let (Value::Object(s), Value::Object(x)) = (&mut svc, extra) {
        s.extend(x);
    }
    json!({
        "Node": {"ID": "0d6c-id", "Node": node_name, "Address": node_addr, "Datacenter": "dc-test",
                 "TaggedAddresses": tagged, "Meta": node_meta, "CreateIndex": 5, "ModifyIndex": 5},
        "Service": svc,
        "Checks": [
            {"Node": node_name, "CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing"},
            {"Node": node_name, "CheckID": format!("service:{id}"), "Name": "svc", "Status": status}
        ]
    })
}

fn active(port: u16) -> Vec<Value> {
    let (_, t) = api(port, "/api/v1/targets?state=active");
    t["data"]["activeTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// `discoveredLabels` of the target whose `__meta_consul_service_id` is `id`.
fn discovered(targets: &[Value], id: &str) -> Option<Value> {
    targets
        .iter()
        .find(|t| t["discoveredLabels"]["__meta_consul_service_id"] == id)
        .map(|t| t["discoveredLabels"].clone())
}

fn ids(targets: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = targets
        .iter()
        .map(|t| {
            t["discoveredLabels"]["__meta_consul_service_id"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    v.sort();
    v
}

fn metric(port: u16, line_prefix: &str) -> Option<f64> {
    let (_, body) = http_get(&format!("http://127.0.0.1:{port}/metrics")).unwrap();
    body.lines().find_map(|l| {
        l.strip_prefix(line_prefix)
            .and_then(|r| r.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

#[test]
fn consul_sd_targets_follow_the_catalog() {
    let started = Instant::now();
    let consul = Arc::new(FakeConsul::default());
    let (p1, p2, p3, p4) = (free_port(), free_port(), free_port(), free_port());
    consul.change(|c| {
        c.services.insert(
            "web".into(),
            vec![
                entry(
                    (
                        "node-a",
                        "127.0.0.1",
                        json!({"rack": "r1", "os-version": "12"}),
                        json!({"lan": "127.0.0.1", "wan": "198.51.100.1"}),
                    ),
                    (
                        "web-1",
                        "web",
                        &["prod", "v2"],
                        "",
                        p1,
                        json!({"team.name": "ml"}),
                    ),
                    json!({}),
                    "passing",
                ),
                entry(
                    ("node-b", "127.0.0.3", json!({}), Value::Null),
                    ("web-2", "web", &[], "127.0.0.2", p2, Value::Null),
                    json!({"Namespace": "ns1", "Partition": "part1"}),
                    "critical",
                ),
            ],
        );
        c.services.insert(
            "db".into(),
            vec![entry(
                ("node-a", "127.0.0.1", json!({"rack": "r1"}), json!({})),
                ("db-1", "db", &["primary"], "", p3, json!({})),
                json!({}),
                "warning",
            )],
        );
    });
    let cport = Arc::clone(&consul).serve();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: consul\n    consul_sd_configs:\n      - server: 127.0.0.1:{cport}\n        token: s3cret\n        refresh_interval: 1s\n    relabel_configs:\n      - source_labels: [__meta_consul_service]\n        target_label: service\n"
    );
    let (_vigil, port, dir) = start_vigil(&cfg);
    let log = || std::fs::read_to_string(dir.join("vigil.log")).unwrap_or_default();
    wait_for_or(
        Duration::from_secs(8),
        "three consul targets",
        || active(port).len() == 3,
        || format!("targets: {:?}\nlog: {}", active(port), log()),
    );
    let t = active(port);
    let s = |v: &str| v.to_string();
    let want1: BTreeMap<String, String> = [
        ("__address__", format!("127.0.0.1:{p1}")),
        ("__meta_consul_address", s("127.0.0.1")),
        ("__meta_consul_dc", s("dc-test")),
        ("__meta_consul_health", s("passing")),
        ("__meta_consul_metadata_os_version", s("12")),
        ("__meta_consul_metadata_rack", s("r1")),
        ("__meta_consul_node", s("node-a")),
        ("__meta_consul_service", s("web")),
        ("__meta_consul_service_id", s("web-1")),
        ("__meta_consul_service_metadata_team_name", s("ml")),
        ("__meta_consul_service_port", p1.to_string()),
        ("__meta_consul_tagged_address_lan", s("127.0.0.1")),
        ("__meta_consul_tagged_address_wan", s("198.51.100.1")),
        ("__meta_consul_tags", s(",prod,v2,")),
        ("__metrics_path__", s("/metrics")),
        ("__scheme__", s("http")),
        ("__scrape_interval__", s("1s")),
        ("__scrape_timeout__", s("1s")),
        ("job", s("consul")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let got1: BTreeMap<String, String> =
        serde_json::from_value(discovered(&t, "web-1").unwrap()).unwrap();
    assert_eq!(got1, want1);
    // Service address, namespace and partition appear when Consul sets them; an instance
    // without tags gets the bare separators.
    let want2: BTreeMap<String, String> = [
        ("__address__", format!("127.0.0.2:{p2}")),
        ("__meta_consul_address", s("127.0.0.3")),
        ("__meta_consul_dc", s("dc-test")),
        ("__meta_consul_health", s("critical")),
        ("__meta_consul_namespace", s("ns1")),
        ("__meta_consul_node", s("node-b")),
        ("__meta_consul_partition", s("part1")),
        ("__meta_consul_service", s("web")),
        ("__meta_consul_service_address", s("127.0.0.2")),
        ("__meta_consul_service_id", s("web-2")),
        ("__meta_consul_service_port", p2.to_string()),
        ("__meta_consul_tags", s(",,")),
        ("__metrics_path__", s("/metrics")),
        ("__scheme__", s("http")),
        ("__scrape_interval__", s("1s")),
        ("__scrape_timeout__", s("1s")),
        ("job", s("consul")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let got2: BTreeMap<String, String> =
        serde_json::from_value(discovered(&t, "web-2").unwrap()).unwrap();
    assert_eq!(got2, want2);
    let db = discovered(&t, "db-1").unwrap();
    assert_eq!(db["__meta_consul_health"], "warning");
    assert_eq!(db["__meta_consul_tags"], ",primary,");
    let web1 = t
        .iter()
        .find(|t| t["discoveredLabels"]["__meta_consul_service_id"] == "web-1")
        .unwrap();
    assert_eq!(
        web1["labels"],
        json!({"instance": format!("127.0.0.1:{p1}"), "job": "consul", "service": "web"})
    );
    assert_eq!(web1["scrapeUrl"], format!("http://127.0.0.1:{p1}/metrics"));

    // The requests are Prometheus': the agent for the datacenter, then blocking queries
    // with the token, `stale`, `wait=120000ms` and the last index.
    {
        let s = consul.state.lock().unwrap();
        let paths: Vec<&str> = s.log.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(paths[0], "/v1/agent/self", "{paths:?}");
        assert!(
            paths.contains(&"/v1/catalog/services?stale=&wait=120000ms"),
            "{paths:?}"
        );
        assert!(
            paths.contains(&"/v1/health/service/web?stale=&wait=120000ms"),
            "{paths:?}"
        );
        assert!(s.log.iter().all(|(_, tok, _)| tok == "s3cret"));
    }

    // A pending blocking query on the catalog returns when a service is added.
    let blocked_catalog = |c: &FakeConsul| {
        let s = c.state.lock().unwrap();
        s.log
            .iter()
            .filter(|(p, _, woken)| *woken && p.starts_with("/v1/catalog/services?index="))
            .count()
    };
    std::thread::sleep(Duration::from_millis(1500));
    let woken_before = blocked_catalog(&consul);
    let t0 = Instant::now();
    consul.change(|c| {
        c.services.insert(
            "cache".into(),
            vec![entry(
                ("node-b", "127.0.0.3", json!({}), json!({})),
                ("cache-1", "cache", &["lru"], "", p4, json!({"tier": "hot"})),
                json!({}),
                "passing",
            )],
        );
    });
    wait_for(Duration::from_secs(5), "the cache service", || {
        ids(&active(port)) == ["cache-1", "db-1", "web-1", "web-2"]
    });
    let took = t0.elapsed();
    assert!(
        blocked_catalog(&consul) > woken_before,
        "the catalog change should end a pending blocking query"
    );
    let cache = discovered(&active(port), "cache-1").unwrap();
    assert_eq!(cache["__meta_consul_service_metadata_tier"], "hot");
    assert_eq!(cache["__meta_consul_service"], "cache");
    eprintln!("a new service converged in {took:?}");

    // Changed tags of an instance.
    consul.change(|c| {
        c.services.get_mut("web").unwrap()[0]["Service"]["Tags"] = json!(["prod", "v3"]);
    });
    wait_for(Duration::from_secs(5), "the new tags", || {
        discovered(&active(port), "web-1").is_some_and(|d| d["__meta_consul_tags"] == ",prod,v3,")
    });

    // A service that leaves the catalog takes its targets with it.
    consul.change(|c| {
        c.services.remove("db");
    });
    wait_for(Duration::from_secs(5), "db removed", || {
        ids(&active(port)) == ["cache-1", "web-1", "web-2"]
    });

    // Consul fails: every query is a 500; the targets stay, the failures are counted and
    // logged.
    let failures_before = metric(port, "prometheus_sd_consul_rpc_failures_total").unwrap();
    consul.change(|c| c.fail = true);
    wait_for(Duration::from_secs(5), "failures counted", || {
        metric(port, "prometheus_sd_consul_rpc_failures_total").unwrap() > failures_before
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ids(&active(port)), ["cache-1", "web-1", "web-2"]);
    let l = log();
    assert!(l.contains("Error refreshing service list"), "{l}");
    assert!(l.contains("Unexpected response code: 500"), "{l}");
    assert!(
        metric(
            port,
            "prometheus_sd_consul_rpc_duration_seconds_count{call=\"services\",endpoint=\"catalog\"}"
        )
        .unwrap()
            >= 2.0
    );

    // Consul recovers: after Prometheus' 15 s retry interval the watches see the new state.
    consul.change(|c| {
        c.fail = false;
        c.services.remove("cache");
    });
    wait_for_or(
        Duration::from_secs(20),
        "recovery after the retry interval",
        || ids(&active(port)) == ["web-1", "web-2"],
        || format!("targets: {:?}", ids(&active(port))),
    );
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
}
