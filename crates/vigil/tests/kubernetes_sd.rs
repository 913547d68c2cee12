//! `kubernetes_sd_configs` (role `pod`) against the real binary and a fake Kubernetes API
//! server written here: lists with a `resourceVersion`, watches that stream the events after a
//! version (`?watch=1&resourceVersion=…`) and answer `410 Gone` (as a status or as an `ERROR`
//! event) for a version older than the kept history, and a restart of the server mid-watch.
//! Checks that `/api/v1/targets` follows each change within 10 s with exactly Prometheus'
//! `__meta_kubernetes_*` labels and never shows a pod twice.

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "s3cr3t-token";

#[derive(Default)]
struct Cluster {
    rv: u64,
    pods: BTreeMap<String, Value>,
    /// (resource version, event type, object).
    history: Vec<(u64, &'static str, Value)>,
    /// Watches from a version below this get 410.
    oldest: u64,
    /// Answer 410 as an `ERROR` event in a 200 stream instead of an HTTP status.
    gone_as_event: bool,
    /// Bumped to end every open watch stream.
    generation: u64,
    /// (path and query, authorization header) of every request.
    log: Vec<(String, String)>,
    /// Fixed lists by path (overriding the built-in nodes and namespaces), watched like them.
    extra: BTreeMap<&'static str, Value>,
}

#[derive(Default)]
struct FakeApi {
    state: Mutex<Cluster>,
    moved: Condvar,
    down: AtomicBool,
}

fn pod(name: &str, ip: &str, ready: bool, app: &str, rv: u64) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                     "resourceVersion": rv.to_string(), "labels": {"app.kubernetes.io/name": app}},
        "spec": {"nodeName": "node-1", "containers": [
            {"name": "main", "image": "img:1", "ports": [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]}
        ]},
        "status": {"podIP": ip, "hostIP": "192.168.0.1", "phase": "Running",
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    })
}

impl FakeApi {
    fn put(&self, name: &str, ip: &str, ready: bool, app: &str) {
        let mut s = self.state.lock().unwrap();
        s.rv += 1;
        let p = pod(name, ip, ready, app, s.rv);
        let ty = if s.pods.contains_key(name) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        s.pods.insert(name.into(), p.clone());
        let rv = s.rv;
        s.history.push((rv, ty, p));
        self.moved.notify_all();
    }

    fn delete(&self, name: &str) {
        let mut s = self.state.lock().unwrap();
        s.rv += 1;
        let mut p = s.pods.remove(name).unwrap();
        p["metadata"]["resourceVersion"] = json!(s.rv.to_string());
        let rv = s.rv;
        s.history.push((rv, "DELETED", p));
        self.moved.notify_all();
    }

    /// Forgets the history (as etcd compaction does) and ends the open watches, so that the
    /// next watch from vigil's version is answered with 410.
    fn compact(&self, as_event: bool) {
        let mut s = self.state.lock().unwrap();
        s.oldest = s.rv + 1;
        s.history.clear();
        s.gone_as_event = as_event;
        s.generation += 1;
        self.moved.notify_all();
    }

    fn lists(&self) -> usize {
        let s = self.state.lock().unwrap();
        s.log.iter().filter(|(q, _)| !q.contains("watch=1")).count()
    }

    /// Serves on `port` (0: any) until the process ends; while `down`, the port is closed.
    fn serve(self: Arc<Self>, port: u16) -> u16 {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let mut listener = Some(listener);
            loop {
                let down = self.down.load(Ordering::SeqCst);
                if down && listener.is_some() {
                    listener = None;
                } else if !down && listener.is_none() {
                    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
                    l.set_nonblocking(true).unwrap();
                    listener = Some(l);
                }
                match listener.as_ref().map(|l| l.accept()) {
                    Some(Ok((conn, _))) => {
                        conn.set_nonblocking(false).unwrap();
                        let me = Arc::clone(&self);
                        std::thread::spawn(move || me.handle(conn));
                    }
                    _ => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        port
    }

    fn handle(&self, mut conn: TcpStream) {
        let Some(head) = read_request_head(&mut conn) else {
            return;
        };
        let target = head.split(' ').nth(1).unwrap_or("/").to_string();
        let auth = request_header(&head, "authorization");
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let params: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let generation = {
            let mut s = self.state.lock().unwrap();
            s.log.push((target.clone(), auth.clone()));
            s.generation
        };
        let reply = |conn: &mut TcpStream, status: &str, body: &str| {
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        };
        if auth != format!("Bearer {TOKEN}") {
            return reply(&mut conn, "401 Unauthorized", "{}");
        }
        // Nodes and namespaces (for `attach_metadata`): a fixed list, and watches that send
        // nothing until the server ends them.
        let extra = self.state.lock().unwrap().extra.get(path).cloned();
        let fixed = extra.or(match path {
            "/api/v1/nodes" => Some(json!([{"metadata": {"name": "node-1",
                "resourceVersion": "1", "labels": {"topology.kubernetes.io/zone": "z1"}}}])),
            "/api/v1/namespaces" => Some(json!([{"metadata": {"name": "default",
                "resourceVersion": "1", "annotations": {"owner": "team-a"}}}])),
            _ => None,
        });
        if let Some(items) = fixed {
            if params.get("watch").map(String::as_str) != Some("1") {
                let body = json!({"metadata": {"resourceVersion": "1"}, "items": items});
                return reply(&mut conn, "200 OK", &body.to_string());
            }
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
            );
            let mut s = self.state.lock().unwrap();
            while s.generation == generation && !self.down.load(Ordering::SeqCst) {
                s = self
                    .moved
                    .wait_timeout(s, Duration::from_millis(100))
                    .unwrap()
                    .0;
            }
            return;
        }
        if path != "/api/v1/pods" {
            return reply(&mut conn, "404 Not Found", "{}");
        }
        if params.get("watch").map(String::as_str) != Some("1") {
            let s = self.state.lock().unwrap();
            let body = json!({"kind": "PodList", "apiVersion": "v1",
                "metadata": {"resourceVersion": s.rv.to_string()},
                "items": s.pods.values().cloned().collect::<Vec<_>>()});
            drop(s);
            return reply(&mut conn, "200 OK", &body.to_string());
        }
        assert_eq!(params["allowWatchBookmarks"], "true");
        let from: u64 = params["resourceVersion"].parse().unwrap_or(0);
        let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
            "status": "Failure", "reason": "Expired", "code": 410,
            "message": format!("too old resource version: {from}")}});
        {
            let s = self.state.lock().unwrap();
            if from < s.oldest {
                if s.gone_as_event {
                    drop(s);
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{gone}\n"
                    );
                    return;
                }
                drop(s);
                return reply(&mut conn, "410 Gone", &gone["object"].to_string());
            }
        }
        if write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
        )
        .is_err()
        {
            return;
        }
        let mut sent = from;
        let mut s = self.state.lock().unwrap();
        loop {
            if s.generation != generation || self.down.load(Ordering::SeqCst) {
                return;
            }
            let mut out = String::new();
            for (rv, ty, obj) in &s.history {
                if *rv > sent {
                    out.push_str(&json!({"type": ty, "object": obj}).to_string());
                    out.push('\n');
                    sent = *rv;
                }
            }
            if !out.is_empty() {
                drop(s);
                if conn.write_all(out.as_bytes()).is_err() {
                    return;
                }
                s = self.state.lock().unwrap();
                continue;
            }
            s = self
                .moved
                .wait_timeout(s, Duration::from_millis(100))
                .unwrap()
                .0;
        }
    }
}

fn active(port: u16) -> Vec<Value> {
    let (_, t) = api(port, "/api/v1/targets?state=active");
    t["data"]["activeTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// (pod name, ready) of every active target, sorted; duplicates kept.
fn pods(port: u16) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = active(port)
        .iter()
        .map(|t| {
            let d = &t["discoveredLabels"];
            (
                d["__meta_kubernetes_pod_name"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
                d["__meta_kubernetes_pod_ready"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn converge(port: u16, dir: &std::path::Path, what: &str, want: &[(&str, &str)]) {
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let started = Instant::now();
    wait_for_or(
        Duration::from_secs(10),
        what,
        || pods(port) == want,
        || {
            format!(
                "targets: {:?}\nlog: {}",
                pods(port),
                std::fs::read_to_string(dir.join("vigil.log")).unwrap_or_default()
            )
        },
    );
    eprintln!("{what}: converged in {:?}", started.elapsed());
}

#[test]
fn kubernetes_sd_pods_follow_list_watch_gone_and_restart() {
    let deadline = Instant::now() + Duration::from_secs(60);
    let fake = Arc::new(FakeApi::default());
    fake.put("web-0", "10.0.0.1", false, "web");
    let api_port = Arc::clone(&fake).serve(0);
    let cfg = format!(
        "global:\n  scrape_interval: 1h\nscrape_configs:\n  - job_name: k8s\n    kubernetes_sd_configs:\n      - role: pod\n        api_server: http://127.0.0.1:{api_port}\n        bearer_token: {TOKEN}\n"
    );
    let (_vigil, port, dir) = start_vigil(&cfg);

    converge(port, &dir, "the listed pod", &[("web-0", "false")]);
    let t = &active(port)[0];
    let d = &t["discoveredLabels"];
    assert_eq!(d["__address__"], "10.0.0.1:8080");
    assert_eq!(d["__meta_kubernetes_namespace"], "default");
    assert_eq!(d["__meta_kubernetes_pod_ip"], "10.0.0.1");
    assert_eq!(d["__meta_kubernetes_pod_host_ip"], "192.168.0.1");
    assert_eq!(d["__meta_kubernetes_pod_node_name"], "node-1");
    assert_eq!(d["__meta_kubernetes_pod_phase"], "Running");
    assert_eq!(d["__meta_kubernetes_pod_uid"], "uid-web-0");
    assert_eq!(d["__meta_kubernetes_pod_container_name"], "main");
    assert_eq!(d["__meta_kubernetes_pod_container_image"], "img:1");
    assert_eq!(d["__meta_kubernetes_pod_container_port_name"], "metrics");
    assert_eq!(d["__meta_kubernetes_pod_container_port_number"], "8080");
    assert_eq!(d["__meta_kubernetes_pod_container_port_protocol"], "TCP");
    assert_eq!(d["__meta_kubernetes_pod_container_init"], "false");
    assert_eq!(
        d["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
        "web"
    );
    assert_eq!(
        d["__meta_kubernetes_pod_labelpresent_app_kubernetes_io_name"],
        "true"
    );
    assert_eq!(t["labels"]["instance"], "10.0.0.1:8080");
    assert_eq!(t["labels"]["job"], "k8s");
    {
        let s = fake.state.lock().unwrap();
        assert!(
            s.log.iter().all(|(_, a)| a == &format!("Bearer {TOKEN}")),
            "{:?}",
            s.log
        );
        assert!(!s.log[0].0.contains("watch=1"), "lists first: {:?}", s.log);
        assert!(
            s.log
                .iter()
                .any(|(q, _)| q.contains("watch=1") && q.contains("resourceVersion=1")),
            "watches from the list's version: {:?}",
            s.log
        );
    }

    // Added, becoming ready, relabelled, deleted: each arrives through the watch.
    fake.put("web-1", "10.0.0.2", false, "web");
    converge(
        port,
        &dir,
        "an added pod",
        &[("web-0", "false"), ("web-1", "false")],
    );
    fake.put("web-0", "10.0.0.1", true, "web");
    converge(
        port,
        &dir,
        "a pod becoming ready",
        &[("web-0", "true"), ("web-1", "false")],
    );
    fake.put("web-1", "10.0.0.2", false, "api");
    wait_for(Duration::from_secs(10), "a relabelled pod", || {
        active(port).iter().any(|t| {
            t["discoveredLabels"]["__meta_kubernetes_pod_label_app_kubernetes_io_name"] == "api"
        })
    });
    assert_eq!(
        pods(port),
        [
            ("web-0".into(), "true".into()),
            ("web-1".into(), "false".into())
        ]
    );
    fake.delete("web-1");
    converge(port, &dir, "a deleted pod", &[("web-0", "true")]);
    let watches_so_far = fake.lists();
    assert_eq!(watches_so_far, 1, "no re-list without 410");

    // 410 Gone as an HTTP status: vigil lists again and sees what the watch missed.
    fake.put("web-2", "10.0.0.3", true, "web");
    fake.compact(false);
    fake.put("web-3", "10.0.0.4", true, "web");
    converge(
        port,
        &dir,
        "a re-list after 410 Gone",
        &[("web-0", "true"), ("web-2", "true"), ("web-3", "true")],
    );
    assert!(fake.lists() >= 2, "re-listed");

    // 410 as an ERROR event in the watch stream.
    let lists = fake.lists();
    fake.compact(true);
    fake.delete("web-2");
    converge(
        port,
        &dir,
        "a re-list after an ERROR 410 event",
        &[("web-0", "true"), ("web-3", "true")],
    );
    assert!(fake.lists() > lists, "re-listed after the ERROR event");

    // The API server restarts mid-watch: the targets stay while it is away, and changes made
    // meanwhile arrive once it is back.
    fake.down.store(true, Ordering::SeqCst);
    fake.moved.notify_all();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        pods(port),
        [
            ("web-0".into(), "true".into()),
            ("web-3".into(), "true".into())
        ],
        "the last targets are kept while the API server is down"
    );
    fake.put("web-4", "10.0.0.5", false, "web");
    fake.delete("web-0");
    fake.down.store(false, Ordering::SeqCst);
    converge(
        port,
        &dir,
        "the changes made while the API server was down",
        &[("web-3", "true"), ("web-4", "false")],
    );
    assert!(Instant::now() < deadline, "the test took over 60 s");
}

/// A job using `kubeconfig_file` (a kubeconfig written here, pointing at the fake API server
/// with a token) and `attach_metadata: {node: true, namespace: true}`: the targets carry the
/// node's and the namespace's metadata, and `/metrics` counts the pod events.
#[test]
fn kubernetes_sd_kubeconfig_file_and_attach_metadata() {
    let fake = Arc::new(FakeApi::default());
    fake.put("web-0", "10.0.0.1", true, "web");
    let api_port = Arc::clone(&fake).serve(0);
    let kdir = tempdir("kubeconfig");
    let kubeconfig = kdir.join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\ncontexts:\n  - name: fake\n    context: {{cluster: c, user: u}}\nclusters:\n  - name: c\n    cluster: {{server: 'http://127.0.0.1:{api_port}'}}\nusers:\n  - name: u\n    user: {{token: {TOKEN}}}\n"
        ),
    )
    .unwrap();
    let cfg = format!(
        "global:\n  scrape_interval: 1h\nscrape_configs:\n  - job_name: k8s\n    kubernetes_sd_configs:\n      - role: pod\n        kubeconfig_file: {}\n        attach_metadata: {{node: true, namespace: true}}\n",
        kubeconfig.display()
    );
    let (_vigil, port, dir) = start_vigil(&cfg);
    converge(
        port,
        &dir,
        "the pod, through the kubeconfig",
        &[("web-0", "true")],
    );
    let d = active(port)[0]["discoveredLabels"].clone();
    assert_eq!(d["__meta_kubernetes_node_name"], "node-1", "{d}");
    assert_eq!(
        d["__meta_kubernetes_node_label_topology_kubernetes_io_zone"],
        "z1"
    );
    assert_eq!(
        d["__meta_kubernetes_node_labelpresent_topology_kubernetes_io_zone"],
        "true"
    );
    assert_eq!(d["__meta_kubernetes_namespace_annotation_owner"], "team-a");
    assert_eq!(
        d["__meta_kubernetes_namespace_annotationpresent_owner"],
        "true"
    );
    {
        let s = fake.state.lock().unwrap();
        assert!(
            s.log.iter().all(|(_, a)| a == &format!("Bearer {TOKEN}")),
            "{:?}",
            s.log
        );
    }
    let (_, m) = http_get(&format!("http://127.0.0.1:{port}/metrics")).unwrap();
    let adds = m
        .lines()
        .find_map(|l| {
            l.strip_prefix("prometheus_sd_kubernetes_events_total{event=\"add\",role=\"pod\"} ")
        })
        .unwrap_or_else(|| panic!("{m}"));
    assert!(adds.parse::<f64>().unwrap() >= 1.0, "{adds}");
    assert!(
        m.contains("\nprometheus_sd_kubernetes_failures_total "),
        "{m}"
    );
}

/// One job per role against one object of each resource (the pod `web-0` on `node-1`, its
/// service, endpoint slice, endpoints and ingress): every job's targets, with the labels
/// `kubernetes_tests.rs` establishes for such objects.
#[test]
fn kubernetes_sd_every_role_end_to_end() {
    let started = Instant::now();
    let fake = Arc::new(FakeApi::default());
    fake.put("web-0", "10.0.0.1", true, "web");
    {
        let mut s = fake.state.lock().unwrap();
        s.extra.insert(
            "/api/v1/nodes",
            json!([{"metadata": {"name": "node-1", "resourceVersion": "1",
                                 "labels": {"topology.kubernetes.io/zone": "z1"}},
                    "spec": {"providerID": "fake://node-1"},
                    "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.1"},
                                             {"type": "Hostname", "address": "node-1"}],
                               "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                               "conditions": [{"type": "Ready", "status": "True"}]}}]),
        );
        s.extra.insert(
            "/api/v1/services",
            json!([{"metadata": {"name": "web", "namespace": "default", "resourceVersion": "1",
                                 "labels": {"app.kubernetes.io/name": "web"}},
                    "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10",
                             "ports": [{"name": "metrics", "protocol": "TCP", "port": 8080}]}}]),
        );
        s.extra.insert(
            "/apis/discovery.k8s.io/v1/endpointslices",
            json!([{"metadata": {"name": "web-abc12", "namespace": "default", "resourceVersion": "1",
                                 "labels": {"kubernetes.io/service-name": "web"}},
                    "addressType": "IPv4",
                    "ports": [{"name": "metrics", "port": 8080, "protocol": "TCP"}],
                    "endpoints": [{"addresses": ["10.0.0.1"],
                                   "conditions": {"ready": true, "serving": true, "terminating": false},
                                   "targetRef": {"kind": "Pod", "name": "web-0", "namespace": "default"},
                                   "nodeName": "node-1"}]}]),
        );
        s.extra.insert(
            "/api/v1/endpoints",
            json!([{"metadata": {"name": "web", "namespace": "default", "resourceVersion": "1"},
                    "subsets": [{"addresses": [{"ip": "10.0.0.1", "nodeName": "node-1",
                                                "targetRef": {"kind": "Pod", "name": "web-0", "namespace": "default"}}],
                                 "ports": [{"name": "metrics", "port": 8080, "protocol": "TCP"}]}]}]),
        );
        s.extra.insert(
            "/apis/networking.k8s.io/v1/ingresses",
            json!([{"metadata": {"name": "web", "namespace": "default", "resourceVersion": "1"},
                    "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["web.example.com"]}],
                             "rules": [{"host": "web.example.com",
                                        "http": {"paths": [{"path": "/metrics"}]}}]}}]),
        );
    }
    let api_port = Arc::clone(&fake).serve(0);
    let roles = [
        "pod",
        "node",
        "service",
        "endpointslice",
        "endpoints",
        "ingress",
    ];
    let mut cfg = String::from("global:\n  scrape_interval: 1h\nscrape_configs:\n");
    for role in roles {
        cfg.push_str(&format!(
            "  - job_name: k8s-{role}\n    kubernetes_sd_configs:\n      - role: {role}\n        api_server: http://127.0.0.1:{api_port}\n        bearer_token: {TOKEN}\n"
        ));
    }
    let (_vigil, port, dir) = start_vigil(&cfg);

    // (job, address) of every active target, sorted; duplicates kept.
    let jobs = || {
        let mut v: Vec<(String, String)> = active(port)
            .iter()
            .map(|t| {
                (
                    t["scrapePool"].as_str().unwrap_or("?").to_string(),
                    t["discoveredLabels"]["__address__"]
                        .as_str()
                        .unwrap_or("?")
                        .to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let want: Vec<(String, String)> = [
        ("k8s-endpoints", "10.0.0.1:8080"),
        ("k8s-endpointslice", "10.0.0.1:8080"),
        ("k8s-ingress", "web.example.com"),
        ("k8s-node", "192.168.0.1:10250"),
        ("k8s-pod", "10.0.0.1:8080"),
        ("k8s-service", "web.default.svc:8080"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    wait_for_or(
        Duration::from_secs(10),
        "one target per role",
        || jobs() == want,
        || {
            format!(
                "targets: {:?}\nlog: {}",
                jobs(),
                std::fs::read_to_string(dir.join("vigil.log")).unwrap_or_default()
            )
        },
    );
    let targets = active(port);
    let of = |job: &str| -> Value {
        targets
            .iter()
            .find(|t| t["scrapePool"] == job)
            .map(|t| t["discoveredLabels"].clone())
            .unwrap()
    };
    let check = |job: &str, want: &[(&str, &str)]| {
        let d = of(job);
        for (k, v) in want {
            assert_eq!(d[*k], *v, "{job}: {k} in {d}");
        }
    };

    check(
        "k8s-pod",
        &[
            ("__meta_kubernetes_namespace", "default"),
            ("__meta_kubernetes_pod_name", "web-0"),
            ("__meta_kubernetes_pod_ready", "true"),
            ("__meta_kubernetes_pod_node_name", "node-1"),
            ("__meta_kubernetes_pod_container_port_name", "metrics"),
        ],
    );
    check(
        "k8s-node",
        &[
            ("__meta_kubernetes_node_name", "node-1"),
            ("__meta_kubernetes_node_provider_id", "fake://node-1"),
            ("__meta_kubernetes_node_address_InternalIP", "192.168.0.1"),
            ("__meta_kubernetes_node_address_Hostname", "node-1"),
            ("__meta_kubernetes_node_condition_ready", "true"),
            (
                "__meta_kubernetes_node_label_topology_kubernetes_io_zone",
                "z1",
            ),
        ],
    );
    let node = targets
        .iter()
        .find(|t| t["scrapePool"] == "k8s-node")
        .unwrap();
    assert_eq!(node["labels"]["instance"], "node-1", "{node}");
    check(
        "k8s-service",
        &[
            ("__meta_kubernetes_namespace", "default"),
            ("__meta_kubernetes_service_name", "web"),
            ("__meta_kubernetes_service_type", "ClusterIP"),
            ("__meta_kubernetes_service_cluster_ip", "10.96.0.10"),
            ("__meta_kubernetes_service_port_name", "metrics"),
            ("__meta_kubernetes_service_port_number", "8080"),
            ("__meta_kubernetes_service_port_protocol", "TCP"),
            (
                "__meta_kubernetes_service_label_app_kubernetes_io_name",
                "web",
            ),
        ],
    );
    check(
        "k8s-endpointslice",
        &[
            ("__meta_kubernetes_namespace", "default"),
            ("__meta_kubernetes_endpointslice_name", "web-abc12"),
            ("__meta_kubernetes_endpointslice_address_type", "IPv4"),
            ("__meta_kubernetes_endpointslice_port", "8080"),
            ("__meta_kubernetes_endpointslice_port_name", "metrics"),
            ("__meta_kubernetes_endpointslice_port_protocol", "TCP"),
            (
                "__meta_kubernetes_endpointslice_endpoint_conditions_ready",
                "true",
            ),
            (
                "__meta_kubernetes_endpointslice_endpoint_node_name",
                "node-1",
            ),
            ("__meta_kubernetes_endpointslice_address_target_kind", "Pod"),
            (
                "__meta_kubernetes_endpointslice_address_target_name",
                "web-0",
            ),
            ("__meta_kubernetes_service_name", "web"),
            ("__meta_kubernetes_pod_name", "web-0"),
            ("__meta_kubernetes_pod_container_port_name", "metrics"),
        ],
    );
    check(
        "k8s-endpoints",
        &[
            ("__meta_kubernetes_namespace", "default"),
            ("__meta_kubernetes_endpoints_name", "web"),
            ("__meta_kubernetes_endpoint_port_name", "metrics"),
            ("__meta_kubernetes_endpoint_port_protocol", "TCP"),
            ("__meta_kubernetes_endpoint_ready", "true"),
            ("__meta_kubernetes_endpoint_node_name", "node-1"),
            ("__meta_kubernetes_endpoint_address_target_kind", "Pod"),
            ("__meta_kubernetes_endpoint_address_target_name", "web-0"),
            ("__meta_kubernetes_service_name", "web"),
            ("__meta_kubernetes_pod_name", "web-0"),
            ("__meta_kubernetes_pod_container_port_number", "8080"),
        ],
    );
    check(
        "k8s-ingress",
        &[
            ("__meta_kubernetes_namespace", "default"),
            ("__meta_kubernetes_ingress_name", "web"),
            ("__meta_kubernetes_ingress_class_name", "nginx"),
            ("__meta_kubernetes_ingress_scheme", "https"),
            ("__meta_kubernetes_ingress_host", "web.example.com"),
            ("__meta_kubernetes_ingress_path", "/metrics"),
        ],
    );
    // Labels a role does not set stay away (the pod role has no service, the service role
    // no pod).
    assert!(of("k8s-pod")["__meta_kubernetes_service_name"].is_null());
    assert!(of("k8s-service")["__meta_kubernetes_pod_name"].is_null());
    {
        let s = fake.state.lock().unwrap();
        assert!(
            s.log.iter().all(|(_, a)| a == &format!("Bearer {TOKEN}")),
            "{:?}",
            s.log
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the test took {:?}",
        started.elapsed()
    );
}
