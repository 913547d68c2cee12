//! `kubernetes_sd_configs` (role `pod`) against the real binary and a fake Kubernetes API
//! server written here: lists with a `resourceVersion`, watches that stream the events after a
//! version (`?watch=1&resourceVersion=…`) and answer `410 Gone` (as a status or as an `ERROR`
//! event) for a version older than the kept history, and a restart of the server mid-watch.
//! Checks that `/api/v1/targets` follows each change within 10 s with exactly Prometheus'
//! `__meta_kubernetes_*` labels and never shows a pod twice.

mod common;

use common::kube::{FakeApi, TOKEN};
use common::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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
    let watches_so_far = fake.lists("pods");
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
    assert!(fake.lists("pods") >= 2, "re-listed");

    // 410 as an ERROR event in the watch stream.
    let lists = fake.lists("pods");
    fake.compact(true);
    fake.delete("web-2");
    converge(
        port,
        &dir,
        "a re-list after an ERROR 410 event",
        &[("web-0", "true"), ("web-3", "true")],
    );
    assert!(
        fake.lists("pods") > lists,
        "re-listed after the ERROR event"
    );

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
    fake.apply(
        "nodes",
        json!({"metadata": {"name": "node-1", "labels": {"topology.kubernetes.io/zone": "z1"}}}),
    );
    fake.apply(
        "namespaces",
        json!({"metadata": {"name": "default", "annotations": {"owner": "team-a"}}}),
    );
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
        fake.apply(
            "nodes",
            json!({"metadata": {"name": "node-1", "resourceVersion": "1",
                                 "labels": {"topology.kubernetes.io/zone": "z1"}},
                    "spec": {"providerID": "fake://node-1"},
                    "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.1"},
                                             {"type": "Hostname", "address": "node-1"}],
                               "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                               "conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        fake.apply(
            "services",
            json!({"metadata": {"name": "web", "namespace": "default", "resourceVersion": "1",
                                 "labels": {"app.kubernetes.io/name": "web"}},
                    "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10",
                             "ports": [{"name": "metrics", "protocol": "TCP", "port": 8080}]}}),
        );
        fake.apply(
            "endpointslices",
            json!({"metadata": {"name": "web-abc12", "namespace": "default", "resourceVersion": "1",
                                 "labels": {"kubernetes.io/service-name": "web"}},
                    "addressType": "IPv4",
                    "ports": [{"name": "metrics", "port": 8080, "protocol": "TCP"}],
                    "endpoints": [{"addresses": ["10.0.0.1"],
                                   "conditions": {"ready": true, "serving": true, "terminating": false},
                                   "targetRef": {"kind": "Pod", "name": "web-0", "namespace": "default"},
                                   "nodeName": "node-1"}]}),
        );
        fake.apply(
            "endpoints",
            json!({"metadata": {"name": "web", "namespace": "default", "resourceVersion": "1"},
                    "subsets": [{"addresses": [{"ip": "10.0.0.1", "nodeName": "node-1",
                                                "targetRef": {"kind": "Pod", "name": "web-0", "namespace": "default"}}],
                                 "ports": [{"name": "metrics", "port": 8080, "protocol": "TCP"}]}]}),
        );
        fake.apply(
            "ingresses",
            json!({"metadata": {"name": "web", "namespace": "default", "resourceVersion": "1"},
                    "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["web.example.com"]}],
                             "rules": [{"host": "web.example.com",
                                        "http": {"paths": [{"path": "/metrics"}]}}]}}),
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

const KUBECTL: &str = "/usr/bin/kubectl";

/// A model-serving namespace: the API server's own `kubernetes` service and endpoints, a node,
/// two pods of `model` (one ready, one not; a server container with three ports, a sidecar
/// without ports, an init container), their service (two ports) and endpoints, an ingress,
/// and a pending pod annotated for scraping.
fn seed_model_cluster(fake: &FakeApi) {
    fake.apply(
        "namespaces",
        json!({"metadata": {"name": "default", "labels": {"kubernetes.io/metadata.name": "default"}}}),
    );
    fake.apply(
        "nodes",
        json!({"metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1",
                                                          "node-role.kubernetes.io/worker": ""}},
               "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.1"},
                                        {"type": "Hostname", "address": "node-1"}],
                          "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}),
    );
    fake.apply(
        "services",
        json!({"metadata": {"name": "kubernetes", "namespace": "default",
                            "labels": {"component": "apiserver", "provider": "kubernetes"}},
               "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1",
                        "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}}),
    );
    fake.apply(
        "endpoints",
        json!({"metadata": {"name": "kubernetes", "namespace": "default",
                            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
               "subsets": [{"addresses": [{"ip": "192.168.0.1"}],
                            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]}),
    );
    for (name, ip, ready) in [
        ("model-0", "10.0.0.1", true),
        ("model-1", "10.0.0.2", false),
    ] {
        let annotations = if ready {
            json!({"prometheus.io/scrape": "true", "prometheus.io/port": "9090",
                   "prometheus.io/path": "/stats"})
        } else {
            json!({})
        };
        fake.apply(
            "pods",
            json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                                "labels": {"app": "model", "pod-template-hash": "abc"},
                                "annotations": annotations},
                   "spec": {"nodeName": "node-1",
                            "initContainers": [{"name": "fetch-weights", "image": "fetch:1"}],
                            "containers": [
                                {"name": "server", "image": "model:2", "ports": [
                                    {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                                    {"name": "grpc", "containerPort": 9000, "protocol": "TCP"},
                                    {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]},
                                {"name": "sidecar", "image": "proxy:1"}]},
                   "status": {"podIP": ip, "hostIP": "192.168.0.1", "phase": "Running",
                              "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}}),
        );
    }
    fake.apply(
        "pods",
        json!({"metadata": {"name": "batch-0", "namespace": "default",
                            "annotations": {"prometheus.io/scrape": "true"}},
               "spec": {"nodeName": "node-1", "containers": [{"name": "job", "image": "job:1"}]},
               "status": {"podIP": "10.0.0.9", "phase": "Pending"}}),
    );
    fake.apply(
        "services",
        json!({"metadata": {"name": "model", "namespace": "default", "labels": {"app": "model"},
                            "annotations": {"prometheus.io/scrape": "true"}},
               "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20",
                        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                                  {"name": "grpc", "port": 9000, "protocol": "TCP"}]}}),
    );
    fake.apply(
        "endpoints",
        json!({"metadata": {"name": "model", "namespace": "default", "labels": {"app": "model"}},
               "subsets": [{"addresses": [{"ip": "10.0.0.1", "nodeName": "node-1",
                                           "targetRef": {"kind": "Pod", "name": "model-0", "namespace": "default"}}],
                            "notReadyAddresses": [{"ip": "10.0.0.2", "nodeName": "node-1",
                                           "targetRef": {"kind": "Pod", "name": "model-1", "namespace": "default"}}],
                            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                                      {"name": "grpc", "port": 9000, "protocol": "TCP"}]}]}),
    );
    fake.apply(
        "ingresses",
        json!({"metadata": {"name": "model", "namespace": "default"},
               "spec": {"rules": [{"host": "model.example.com",
                                   "http": {"paths": [{"path": "/predict", "pathType": "Prefix",
                                       "backend": {"service": {"name": "model", "port": {"number": 8080}}}}]}}]}}),
    );
}

/// A kubeconfig for the fake (TLS with its certificate as the CA, the token), in `dir`.
fn write_kubeconfig(dir: &std::path::Path, api_port: u16, ca_pem: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("ca.crt"), ca_pem).unwrap();
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\ncontexts:\n  - name: fake\n    context: {{cluster: c, user: u, namespace: default}}\nclusters:\n  - name: c\n    cluster: {{server: 'https://127.0.0.1:{api_port}', certificate-authority: ca.crt}}\nusers:\n  - name: u\n    user: {{token: {TOKEN}}}\n"
        ),
    )
    .unwrap();
    path
}

/// The fake is held to the real client: `kubectl` (client-go) reads its discovery documents,
/// lists every resource vigil watches over TLS with the token, filters with label and field
/// selectors, and watches pods, decoding everything the fake sends. Skipped with a message
/// when kubectl is missing (`.ci/run` installs it).
#[test]
fn kubectl_lists_selects_and_watches_the_fake_api_server() {
    if !std::path::Path::new(KUBECTL).exists() {
        eprintln!("skipped: {KUBECTL} is missing (apt-get install kubectl)");
        return;
    }
    let fake = Arc::new(FakeApi::with_tls());
    seed_model_cluster(&fake);
    let api_port = Arc::clone(&fake).serve(0);
    let dir = tempdir("kubectl");
    let kubeconfig = write_kubeconfig(&dir, api_port, &fake.ca_pem);
    let command = || {
        let mut c = std::process::Command::new(KUBECTL);
        c.arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .arg("--request-timeout=10s")
            .env("HOME", &dir);
        c
    };
    let names = |args: &[&str]| -> Vec<String> {
        let out = command().args(args).args(["-o", "json"]).output().unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut n: Vec<String> = v["items"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|o| {
                let m = &o["metadata"];
                match m["namespace"].as_str() {
                    Some(ns) => format!("{ns}/{}", m["name"].as_str().unwrap()),
                    None => m["name"].as_str().unwrap().to_string(),
                }
            })
            .collect();
        n.sort();
        n
    };
    let pods = ["default/batch-0", "default/model-0", "default/model-1"];
    assert_eq!(names(&["get", "pods", "-A"]), pods);
    assert_eq!(names(&["get", "nodes"]), ["node-1"]);
    assert_eq!(names(&["get", "namespaces"]), ["default"]);
    assert_eq!(
        names(&["get", "services", "-A"]),
        ["default/kubernetes", "default/model"]
    );
    assert_eq!(
        names(&["get", "endpoints", "-n", "default"]),
        ["default/kubernetes", "default/model"]
    );
    assert_eq!(
        names(&["get", "ingresses.networking.k8s.io", "-A"]),
        ["default/model"]
    );
    assert_eq!(
        names(&["get", "endpointslices.discovery.k8s.io", "-A"]),
        Vec::<String>::new()
    );
    // Selectors as vigil sends them (label: equality, inequality, existence; field).
    assert_eq!(
        names(&["get", "pods", "-A", "-l", "app=model,pod-template-hash"]),
        ["default/model-0", "default/model-1"]
    );
    assert_eq!(
        names(&["get", "pods", "-A", "-l", "app!=model"]),
        ["default/batch-0"]
    );
    assert_eq!(
        names(&[
            "get",
            "pods",
            "-A",
            "--field-selector",
            "metadata.name=model-1"
        ]),
        ["default/model-1"]
    );

    // A watch: the current pods, then an added and a deleted one, decoded by client-go.
    let mut child = command()
        .args([
            "get",
            "pods",
            "-A",
            "-o",
            "json",
            "--watch",
            "--output-watch-events",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for v in serde_json::Deserializer::from_reader(stdout).into_iter::<Value>() {
            let Ok(v) = v else { return };
            let name = v["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            if tx
                .send((v["type"].as_str().unwrap_or("?").to_string(), name))
                .is_err()
            {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let mut expect = |want: (&str, &str)| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !seen
            .iter()
            .any(|(t, n): &(String, String)| (t.as_str(), n.as_str()) == want)
        {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(e) => seen.push(e),
                Err(_) => panic!("kubectl never showed {want:?}; saw {seen:?}"),
            }
        }
    };
    expect(("ADDED", "model-0"));
    expect(("ADDED", "model-1"));
    fake.put("model-2", "10.0.0.3", true, "model");
    expect(("ADDED", "model-2"));
    fake.put("model-2", "10.0.0.3", false, "model");
    expect(("MODIFIED", "model-2"));
    assert!(fake.remove("pods", "default", "model-0"));
    expect(("DELETED", "model-0"));
    let _ = child.kill();
    let _ = child.wait();
    let s = fake.state.lock().unwrap();
    eprintln!(
        "kubectl made {} requests: {:?}",
        s.log.len(),
        s.log.iter().map(|(q, _)| q).collect::<Vec<_>>()
    );
    assert!(
        s.log
            .iter()
            .any(|(q, _)| q.starts_with("/api/v1/pods?") && q.contains("watch=true"))
    );
    assert!(
        s.log.iter().all(|(_, a)| a == &format!("Bearer {TOKEN}")),
        "{:?}",
        s.log
    );
}

/// Why an in-cluster run (vigil under `unshare -m` with a tmpfs over `/run` holding
/// `/run/secrets/kubernetes.io/serviceaccount`) cannot happen here, if it cannot.
fn in_cluster_unavailable() -> Option<String> {
    let ok = std::process::Command::new("unshare")
        .args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount -t tmpfs tmpfs /run",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (!ok).then(|| "`unshare -m` with a tmpfs mount needs root".to_string())
}

/// Runs vigil in-cluster against the fake: `KUBERNETES_SERVICE_HOST`/`_PORT` point at it and
/// the service account directory (`/var/run/secrets/kubernetes.io/serviceaccount`, which the
/// scrape jobs' `tls_config` and `authorization` also read) is `sa` bind-mounted into a
/// private mount namespace.
fn start_in_cluster(
    config: &str,
    api_port: u16,
    sa: &std::path::Path,
) -> (Proc, u16, std::path::PathBuf) {
    let dir = tempdir("in-cluster");
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let script = "mount -t tmpfs tmpfs /run && mkdir -p /run/secrets/kubernetes.io/serviceaccount \
                  && mount --bind \"$0\" /run/secrets/kubernetes.io/serviceaccount && exec \"$@\"";
    let wrapper: Vec<&std::ffi::OsStr> = [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
    ]
    .into_iter()
    .map(std::ffi::OsStr::new)
    .chain([sa.as_os_str()])
    .collect();
    let port_s = api_port.to_string();
    let (p, port) = start_vigil_under(
        &wrapper,
        &[
            ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
            ("KUBERNETES_SERVICE_PORT", &port_s),
        ],
        &dir,
        &dir.join("data"),
        &[],
        "vigil.log",
        &ready_200,
    );
    (p, port, dir)
}

/// The service account directory for the fake: its token, its CA and the namespace.
fn service_account(fake: &FakeApi) -> std::path::PathBuf {
    let sa = tempdir("serviceaccount");
    std::fs::write(sa.join("token"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(sa.join("ca.crt"), &fake.ca_pem).unwrap();
    std::fs::write(sa.join("namespace"), "default").unwrap();
    sa
}

/// Every active target as `job | labels`, sorted (labels in name order).
fn target_lines(port: u16) -> Vec<String> {
    let mut v: Vec<String> = active(port)
        .iter()
        .map(|t| {
            let labels = t["labels"].as_object().cloned().unwrap_or_default();
            let mut l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("?")))
                .collect();
            l.sort();
            format!(
                "{} | {}",
                t["scrapePool"].as_str().unwrap_or("?"),
                l.join(",")
            )
        })
        .collect();
    v.sort();
    v
}

fn wait_targets(port: u16, dir: &std::path::Path, want: &[String]) {
    wait_for_or(
        Duration::from_secs(15),
        "the documented targets",
        || target_lines(port) == want,
        || {
            let got = target_lines(port);
            format!(
                "missing: {:#?}\nunexpected: {:#?}\nall: {got:#?}\nlog: {}",
                want.iter().filter(|w| !got.contains(w)).collect::<Vec<_>>(),
                got.iter().filter(|g| !want.contains(g)).collect::<Vec<_>>(),
                std::fs::read_to_string(dir.join("vigil.log")).unwrap_or_default()
            )
        },
    );
}

/// Prometheus 3.14's `documentation/examples/prometheus-kubernetes.yml`, read from a git
/// mirror of Prometheus (`VIGIL_PROMETHEUS_GIT`, default the tool library's mirror) since the
/// repository holds no copy of it.
fn upstream_example() -> Result<String, String> {
    let git = std::env::var("VIGIL_PROMETHEUS_GIT")
        .unwrap_or_else(|_| "/work/.mirror/prometheus+prometheus/repo".into());
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(&git)
        .args([
            "show",
            "v3.14.0:documentation/examples/prometheus-kubernetes.yml",
        ])
        .output()
        .map_err(|e| format!("git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "no Prometheus git mirror with tag v3.14.0 at {git} (set VIGIL_PROMETHEUS_GIT): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8(out.stdout).unwrap())
}

fn lines(v: &[(&str, &str)]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|(j, l)| format!("{j} | {l}")).collect();
    v.sort();
    v
}

/// Prometheus' Kubernetes example, unchanged, run in-cluster (service account token and CA,
/// HTTPS to the fake) over [`seed_model_cluster`]: each job's targets and their labels are the
/// ones Prometheus 3.14's discovery and relabelling give (3.x appends no default port to a
/// portless pod target, so its `instance` is the bare pod IP). Then the token rotates: the
/// discovery re-reads the file and goes on.
#[test]
fn kubernetes_sd_prometheus_documentation_example_in_cluster() {
    let example = match upstream_example() {
        Ok(e) => e,
        Err(why) => return eprintln!("skipped: {why}"),
    };
    if let Some(why) = in_cluster_unavailable() {
        return eprintln!("skipped: {why}");
    }
    let fake = Arc::new(FakeApi::with_tls());
    seed_model_cluster(&fake);
    let api_port = Arc::clone(&fake).serve(0);
    let sa = service_account(&fake);
    let (_vigil, port, dir) = start_in_cluster(&example, api_port, &sa);

    let pod = |p: &str, ip: &str, port: &str| {
        let inst = if port.is_empty() {
            ip.to_string()
        } else {
            format!("{ip}:{port}")
        };
        if p == "batch-0" {
            format!("instance={inst},job=kubernetes-pods,namespace=default,pod={p}")
        } else {
            format!(
                "app=model,instance={inst},job=kubernetes-pods,namespace=default,pod={p},pod_template_hash=abc"
            )
        }
    };
    let mut want = lines(&[
        (
            "kubernetes-apiservers",
            "instance=192.168.0.1:6443,job=kubernetes-apiservers",
        ),
        (
            "kubernetes-nodes",
            "instance=node-1,job=kubernetes-nodes,kubernetes_io_hostname=node-1",
        ),
        (
            "kubernetes-cadvisor",
            "instance=node-1,job=kubernetes-cadvisor,kubernetes_io_hostname=node-1",
        ),
        (
            "kubernetes-service-endpoints",
            "component=apiserver,instance=192.168.0.1:6443,job=kubernetes-service-endpoints,namespace=default,provider=kubernetes,service=kubernetes",
        ),
        (
            "kubernetes-services",
            "component=apiserver,instance=kubernetes.default.svc:443,job=kubernetes-services,namespace=default,provider=kubernetes,service=kubernetes",
        ),
        (
            "kubernetes-services",
            "app=model,instance=model.default.svc:8080,job=kubernetes-services,namespace=default,service=model",
        ),
        (
            "kubernetes-services",
            "app=model,instance=model.default.svc:9000,job=kubernetes-services,namespace=default,service=model",
        ),
        (
            "kubernetes-ingresses",
            "ingress=model,instance=http://model.example.com/predict,job=kubernetes-ingresses,namespace=default",
        ),
    ]);
    for ip in ["10.0.0.1", "10.0.0.2"] {
        for p in ["8080", "9000", "9090"] {
            want.push(format!(
                "kubernetes-service-endpoints | app=model,instance={ip}:{p},job=kubernetes-service-endpoints,namespace=default,service=model"
            ));
        }
    }
    for (name, ip) in [("model-0", "10.0.0.1"), ("model-1", "10.0.0.2")] {
        for p in ["8080", "9000", "9090", ""] {
            want.push(format!("kubernetes-pods | {}", pod(name, ip, p)));
        }
    }
    want.push(format!(
        "kubernetes-pods | {}",
        pod("batch-0", "10.0.0.9", "")
    ));
    want.sort();
    // The portless containers of a pod (sidecar, init container) are one target: the same
    // labels, scraped once.
    want.dedup();
    wait_targets(port, &dir, &want);

    // What the API shows beside the labels: the scrape URLs the jobs' settings give, and the
    // endpoints the apiservers job dropped, kept up to `keep_dropped_targets: 100`.
    let all = active(port);
    let url_of = |job: &str| -> Vec<String> {
        let mut v: Vec<String> = all
            .iter()
            .filter(|t| t["scrapePool"] == job)
            .map(|t| t["scrapeUrl"].as_str().unwrap_or("?").to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        url_of("kubernetes-apiservers"),
        ["https://192.168.0.1:6443/metrics"]
    );
    assert_eq!(
        url_of("kubernetes-cadvisor"),
        ["https://192.168.0.1:10250/metrics/cadvisor"]
    );
    assert_eq!(
        url_of("kubernetes-ingresses"),
        [
            "http://blackbox-exporter.example.com:9115/probe?module=http_2xx&target=http%3A%2F%2Fmodel.example.com%2Fpredict"
        ]
    );
    let (_, dropped) = api(port, "/api/v1/targets?state=dropped");
    let dropped = &dropped["data"];
    let api_dropped = dropped["droppedTargetCounts"]["kubernetes-apiservers"].as_u64();
    assert_eq!(api_dropped, Some(6), "{dropped}");

    // The token rotates (the file is rewritten, the old token refused): the next list uses the
    // new one and sees a new pod.
    fake.rotate_token("rotated-token");
    std::fs::write(sa.join("token"), "rotated-token\n").unwrap();
    fake.put("model-3", "10.0.0.4", true, "model");
    fake.compact(false);
    wait_for_or(
        Duration::from_secs(15),
        "the pod seen with the rotated token",
        || target_lines(port).iter().any(|l| l.contains("pod=model-3")),
        || std::fs::read_to_string(dir.join("vigil.log")).unwrap_or_default(),
    );
}

/// The annotation-driven jobs most clusters run (`prometheus.io/scrape`, `/path`, `/port` on
/// pods and services), in-cluster: the annotated pod's containers collapse into one target on
/// the annotated port and path, the unannotated and the pending pods are dropped, and the
/// annotated service's endpoints are scraped with the pod's node.
#[test]
fn kubernetes_sd_annotation_driven_jobs_in_cluster() {
    if let Some(why) = in_cluster_unavailable() {
        return eprintln!("skipped: {why}");
    }
    let config = r#"
scrape_configs:
  - job_name: pods
    kubernetes_sd_configs: [{role: pod}]
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
        action: keep
        regex: "true"
      - source_labels: [__meta_kubernetes_pod_phase]
        regex: Pending|Succeeded|Failed
        action: drop
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]
        regex: (.+)
        target_label: __metrics_path__
      - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
        regex: ([^:]+)(?::\d+)?;(\d+)
        replacement: $1:$2
        target_label: __address__
      - action: labelmap
        regex: __meta_kubernetes_pod_label_(.+)
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
  - job_name: service-endpoints
    kubernetes_sd_configs:
      - role: endpoints
        namespaces: {own_namespace: true}
    relabel_configs:
      - source_labels: [__meta_kubernetes_service_annotation_prometheus_io_scrape]
        action: keep
        regex: "true"
      - action: labelmap
        regex: __meta_kubernetes_service_label_(.+)
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_service_name]
        target_label: service
      - source_labels: [__meta_kubernetes_pod_node_name]
        target_label: node
      - source_labels: [__meta_kubernetes_endpoint_ready]
        target_label: ready
"#;
    let fake = Arc::new(FakeApi::with_tls());
    seed_model_cluster(&fake);
    let api_port = Arc::clone(&fake).serve(0);
    let sa = service_account(&fake);
    let (_vigil, port, dir) = start_in_cluster(config, api_port, &sa);
    let mut want = vec![
        "pods | app=model,instance=10.0.0.1:9090,job=pods,namespace=default,pod=model-0,pod_template_hash=abc".to_string(),
    ];
    for (ip, ready) in [("10.0.0.1", "true"), ("10.0.0.2", "false")] {
        for p in ["8080", "9000"] {
            want.push(format!(
                "service-endpoints | app=model,instance={ip}:{p},job=service-endpoints,namespace=default,node=node-1,ready={ready},service=model"
            ));
        }
        // The pod's third port, not behind the service: no endpoint labels.
        want.push(format!(
            "service-endpoints | app=model,instance={ip}:9090,job=service-endpoints,namespace=default,node=node-1,service=model"
        ));
    }
    want.sort();
    wait_targets(port, &dir, &want);
    let t = active(port);
    let pod = t.iter().find(|t| t["scrapePool"] == "pods").unwrap();
    assert_eq!(pod["scrapeUrl"], "http://10.0.0.1:9090/stats", "{pod}");
    // Only namespaced requests (own_namespace) for the endpoints job.
    let s = fake.state.lock().unwrap();
    assert!(
        s.log
            .iter()
            .filter(|(q, _)| q.contains("endpoints"))
            .all(|(q, _)| q.starts_with("/api/v1/namespaces/default/endpoints")),
        "{:?}",
        s.log
    );
}
