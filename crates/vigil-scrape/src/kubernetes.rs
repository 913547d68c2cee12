//! `kubernetes_sd_configs`: Prometheus 3.14's `discovery/kubernetes` for every role, with its
//! target labels and addresses.
//!
//! Each distinct `kubernetes_sd_config` runs one task per namespace it watches (one for all
//! namespaces when `namespaces` names none, none for the cluster-scoped `node` role), shared by
//! every job that lists the same entry. A task lists the role's objects
//! (`GET /api/v1/[namespaces/<ns>/]<resource>`, with the role's label and field selectors), then
//! watches from the list's `resourceVersion` (`?watch=1&resourceVersion=…&allowWatchBookmarks=
//! true`), applying `ADDED`/`MODIFIED`/`DELETED` events and following `BOOKMARK`s, as client-go's
//! reflector does. A `410 Gone` answer or an `ERROR` event with code 410 makes it list again;
//! any other failure is logged and retried with a doubling back-off (1 s to 30 s) from the last
//! resource version, keeping the last targets meanwhile.
//!
//! Without `api_server` it uses the in-cluster configuration: `https://$KUBERNETES_SERVICE_HOST:
//! $KUBERNETES_SERVICE_PORT`, the service account's CA, and its token, re-read before every
//! request so a rotated token is picked up; `namespaces.own_namespace` reads the service
//! account's namespace file. With `kubeconfig_file`, the current context's cluster and user
//! ([`Kubeconfig`]).
//!
//! `attach_metadata` adds watches to the same discovery (one for nodes, one per namespace for
//! replica sets and jobs, one for namespaces); any event on them rebuilds the targets, as
//! Prometheus re-queues the objects of a changed node or namespace. Events and failed
//! lists/watches are counted in `prometheus_sd_kubernetes_events_total` and
//! `prometheus_sd_kubernetes_failures_total` ([`render_metrics`]).
//!
//! Prometheus gives each object one target group with group labels and per-target labels;
//! vigil's [`SourcedGroup`] has no per-target labels, so each target becomes its own group with
//! both, which yields the same discovered label sets.

use crate::discovery::SourcedGroup;
use crate::sd_util::{AbortOnDrop, join_host_port, sanitize_label_name};
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use vigil_config::{
    Kubeconfig, KubernetesAttachMetadata, KubernetesSdConfig, ScrapeConfig, TargetGroup,
};

const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const META: &str = "__meta_kubernetes_";

/// The `role` values of `prometheus_sd_kubernetes_events_total`, in exposition order.
const EVENT_ROLES: [&str; 6] = [
    "endpoints",
    "endpointslice",
    "ingress",
    "node",
    "pod",
    "service",
];
/// Its `event` values, in exposition order.
const EVENTS: [&str; 3] = ["add", "delete", "update"];
const ADD: usize = 0;
const DELETE: usize = 1;
const UPDATE: usize = 2;

static EVENT_COUNTS: [[AtomicU64; 3]; 6] = [const { [const { AtomicU64::new(0) }; 3] }; 6];
static FAILURES: AtomicU64 = AtomicU64::new(0);

/// `prometheus_sd_kubernetes_events_total{role,event}` and
/// `prometheus_sd_kubernetes_failures_total` in the text format (always present, every series
/// initialised, as Prometheus registers them at start).
pub fn render_metrics() -> String {
    let mut out = String::from(
        "# HELP prometheus_sd_kubernetes_events_total The number of Kubernetes events handled.\n# TYPE prometheus_sd_kubernetes_events_total counter\n",
    );
    for (r, role) in EVENT_ROLES.iter().enumerate() {
        for (e, event) in EVENTS.iter().enumerate() {
            out.push_str(&format!(
                "prometheus_sd_kubernetes_events_total{{event=\"{event}\",role=\"{role}\"}} {}\n",
                EVENT_COUNTS[r][e].load(Ordering::Relaxed)
            ));
        }
    }
    out.push_str(&format!(
        "# HELP prometheus_sd_kubernetes_failures_total The number of failed WATCH/LIST requests.\n# TYPE prometheus_sd_kubernetes_failures_total counter\nprometheus_sd_kubernetes_failures_total {}\n",
        FAILURES.load(Ordering::Relaxed)
    ));
    out
}

/// Which events of `resource` a discovery of `role` counts, as Prometheus' event handlers do:
/// its own resource's, the services' of `endpoints`/`endpointslice`, and pod updates of
/// `endpoints`. Returns the `role` index and whether adds and deletes count too.
fn counted(role: &str, resource: &str) -> Option<(usize, bool)> {
    let idx = |r: &str| EVENT_ROLES.iter().position(|x| *x == r);
    let primary = resources_of(role)?[0].plural;
    if resource == primary {
        return Some((idx(role)?, true));
    }
    match (role, resource) {
        ("endpoints" | "endpointslice", "services") => Some((idx("service")?, true)),
        ("endpoints", "pods") => Some((idx("pod")?, false)),
        _ => None,
    }
}

/// The objects one discovery's watchers have seen, by (resource, namespace), and the targets
/// built from them.
#[derive(Default)]
struct Store {
    objects: BTreeMap<(&'static str, String), BTreeMap<String, Value>>,
    /// How many watchers must have listed before targets are built (as Prometheus waits for
    /// every informer's cache to sync).
    watchers: usize,
    groups: Vec<SourcedGroup>,
    attach: KubernetesAttachMetadata,
}

type Shared = Arc<Mutex<Store>>;

struct Running {
    shared: Shared,
    _tasks: Vec<AbortOnDrop>,
}

/// The Kubernetes discoveries of all scrape configs.
#[derive(Default)]
pub struct KubernetesDiscovery {
    running: HashMap<String, Running>,
    changed: Arc<AtomicBool>,
}

/// A resource a role watches: its API group path, plural name, whether it is namespaced, and
/// the role whose selectors apply to it.
#[derive(Clone, Copy)]
struct Resource {
    prefix: &'static str,
    plural: &'static str,
    namespaced: bool,
    selector_role: &'static str,
}

const PODS: Resource = Resource {
    prefix: "/api/v1",
    plural: "pods",
    namespaced: true,
    selector_role: "pod",
};
const NODES: Resource = Resource {
    prefix: "/api/v1",
    plural: "nodes",
    namespaced: false,
    selector_role: "node",
};
const SERVICES: Resource = Resource {
    prefix: "/api/v1",
    plural: "services",
    namespaced: true,
    selector_role: "service",
};
const ENDPOINT_SLICES: Resource = Resource {
    prefix: "/apis/discovery.k8s.io/v1",
    plural: "endpointslices",
    namespaced: true,
    selector_role: "endpointslice",
};
const ENDPOINTS: Resource = Resource {
    prefix: "/api/v1",
    plural: "endpoints",
    namespaced: true,
    selector_role: "endpoints",
};
const INGRESSES: Resource = Resource {
    prefix: "/apis/networking.k8s.io/v1",
    plural: "ingresses",
    namespaced: true,
    selector_role: "ingress",
};

const NAMESPACES: Resource = Resource {
    prefix: "/api/v1",
    plural: "namespaces",
    namespaced: false,
    // Prometheus' namespace informer takes no selectors.
    selector_role: "-",
};
const REPLICA_SETS: Resource = Resource {
    prefix: "/apis/apps/v1",
    plural: "replicasets",
    namespaced: true,
    selector_role: "-",
};
const JOBS: Resource = Resource {
    prefix: "/apis/batch/v1",
    plural: "jobs",
    namespaced: true,
    selector_role: "-",
};

/// The resources a discovery watches: its role's, then those `attach_metadata` asks for (on
/// the roles Prometheus 3.14 honours each for).
fn resources_for(cfg: &KubernetesSdConfig) -> Option<Vec<Resource>> {
    let mut out = resources_of(&cfg.role)?.to_vec();
    let m = &cfg.attach_metadata;
    let pod_like = matches!(cfg.role.as_str(), "pod" | "endpoints" | "endpointslice");
    if pod_like && m.node {
        out.push(NODES);
    }
    if cfg.role != "node" && m.namespace {
        out.push(NAMESPACES);
    }
    if pod_like && m.deployment {
        out.push(REPLICA_SETS);
    }
    if pod_like && (m.job || m.cronjob) {
        out.push(JOBS);
    }
    Some(out)
}

/// The resources a role watches; the first one yields the targets.
fn resources_of(role: &str) -> Option<&'static [Resource]> {
    match role {
        "pod" => Some(&[PODS]),
        "node" => Some(&[NODES]),
        "service" => Some(&[SERVICES]),
        "endpointslice" => Some(&[ENDPOINT_SLICES, SERVICES, PODS]),
        "endpoints" => Some(&[ENDPOINTS, SERVICES, PODS]),
        "ingress" => Some(&[INGRESSES]),
        _ => None,
    }
}

impl KubernetesDiscovery {
    /// Starts a discovery for every new distinct `kubernetes_sd_config` and stops those no
    /// config lists any more. Must run inside a tokio runtime.
    pub fn sync(&mut self, configs: &[ScrapeConfig], user_agent: &str) {
        let mut wanted: HashMap<String, &KubernetesSdConfig> = HashMap::new();
        for sc in configs {
            for c in &sc.kubernetes_sd_configs {
                wanted.insert(c.fingerprint(), c);
            }
        }
        let before = self.running.len();
        self.running.retain(|k, _| wanted.contains_key(k));
        if self.running.len() != before {
            self.changed.store(true, Ordering::Relaxed);
        }
        for (key, cfg) in wanted {
            if self.running.contains_key(&key) {
                continue;
            }
            let Some(resources) = resources_for(cfg) else {
                tracing::error!(role = %cfg.role, "unknown Kubernetes SD role; the entry is ignored");
                continue;
            };
            let api = match Api::new(cfg, user_agent) {
                Ok(api) => Arc::new(api),
                Err(e) => {
                    tracing::error!(error = %e, "Cannot create Kubernetes service discovery");
                    continue;
                }
            };
            let shared: Shared = Arc::default();
            shared.lock().attach = cfg.attach_metadata.clone();
            let mut tasks = Vec::new();
            let nss = namespaces(cfg);
            for r in &resources {
                let (label, field) = cfg
                    .selectors
                    .iter()
                    .find(|s| s.role == r.selector_role)
                    .map(|s| (s.label.clone(), s.field.clone()))
                    .unwrap_or_default();
                let watched = if r.namespaced {
                    nss.clone()
                } else {
                    vec![String::new()]
                };
                for ns in watched {
                    let w = Watcher {
                        api: Arc::clone(&api),
                        role: cfg.role.clone(),
                        resource: *r,
                        namespace: ns,
                        label: label.clone(),
                        field: field.clone(),
                        shared: Arc::clone(&shared),
                        changed: Arc::clone(&self.changed),
                    };
                    shared.lock().watchers += 1;
                    tasks.push(AbortOnDrop(tokio::spawn(w.run())));
                }
            }
            self.running.insert(
                key,
                Running {
                    shared,
                    _tasks: tasks,
                },
            );
        }
    }

    /// True once after any discovery's targets changed.
    pub fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::Relaxed)
    }

    /// The current target groups of a scrape config's `kubernetes_sd_configs`.
    pub fn groups(&self, sc: &ScrapeConfig) -> Vec<SourcedGroup> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for c in &sc.kubernetes_sd_configs {
            let key = c.fingerprint();
            if let Some(r) = self.running.get(&key)
                && seen.insert(key)
            {
                out.extend(r.shared.lock().groups.iter().cloned());
            }
        }
        out
    }
}

/// The namespaces to watch; "" is all namespaces.
fn namespaces(cfg: &KubernetesSdConfig) -> Vec<String> {
    let mut out = cfg.namespaces.names.clone();
    if cfg.namespaces.own_namespace {
        match std::fs::read_to_string(format!("{SA_DIR}/namespace")) {
            Ok(ns) => out.push(ns.trim().to_string()),
            Err(e) => tracing::error!(error = %e, "Cannot read the pod's own namespace"),
        }
    }
    if out.is_empty() {
        out.push(String::new());
    }
    out.sort();
    out.dedup();
    out
}

// ---------------------------------------------------------------------------------------------
// The API server.

struct Api {
    client: reqwest::Client,
    base: String,
    /// In-cluster: the service account token file, read before every request.
    token_file: Option<String>,
}

impl Api {
    fn new(cfg: &KubernetesSdConfig, user_agent: &str) -> Result<Api, String> {
        if !cfg.kubeconfig_file.is_empty() {
            let k = Kubeconfig::load(&cfg.kubeconfig_file)?;
            let client = vigil_http::build(&k.http, user_agent)
                .map_err(|e| format!("kubeconfig {:?}: {e}", cfg.kubeconfig_file))?;
            return Ok(Api {
                client,
                base: k.server,
                token_file: k.token_file,
            });
        }
        if !cfg.api_server.is_empty() {
            let client = vigil_http::build(&cfg.http_client_config(), user_agent)
                .map_err(|e| e.to_string())?;
            return Ok(Api {
                client,
                base: cfg.api_server.trim_end_matches('/').to_string(),
                token_file: None,
            });
        }
        let host = std::env::var("KUBERNETES_SERVICE_HOST").unwrap_or_default();
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_default();
        if host.is_empty() || port.is_empty() {
            return Err("unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined".into());
        }
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let mut http = cfg.http_client_config();
        http.tls_config.ca_file = Some(format!("{SA_DIR}/ca.crt"));
        let client = vigil_http::build(&http, user_agent).map_err(|e| e.to_string())?;
        Ok(Api {
            client,
            base: format!("https://{host}:{port}"),
            token_file: Some(format!("{SA_DIR}/token")),
        })
    }

    fn get(&self, path: &str, query: &[(&str, String)]) -> reqwest::RequestBuilder {
        let url = match reqwest::Url::parse(&format!("{}{path}", self.base)) {
            Ok(mut u) => {
                if !query.is_empty() {
                    u.query_pairs_mut()
                        .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
                }
                u.to_string()
            }
            Err(_) => format!("{}{path}", self.base),
        };
        let mut rb = self.client.get(url).header("Accept", "application/json");
        if let Some(f) = &self.token_file
            && let Ok(t) = std::fs::read_to_string(f)
        {
            rb = rb.bearer_auth(t.trim());
        }
        rb
    }
}

enum WatchEnd {
    /// The resource version is too old: list again.
    Gone,
    /// The stream ended normally: watch again from the last version.
    Closed,
    Failed(String),
}

struct Watcher {
    api: Arc<Api>,
    role: String,
    resource: Resource,
    namespace: String,
    label: String,
    field: String,
    shared: Shared,
    changed: Arc<AtomicBool>,
}

impl Watcher {
    fn path(&self) -> String {
        let r = &self.resource;
        if self.namespace.is_empty() {
            format!("{}/{}", r.prefix, r.plural)
        } else {
            format!("{}/namespaces/{}/{}", r.prefix, self.namespace, r.plural)
        }
    }

    /// Counts one event of this watcher's resource in `prometheus_sd_kubernetes_events_total`.
    fn count(&self, event: usize) {
        if let Some((r, all)) = counted(&self.role, self.resource.plural)
            && (all || event == UPDATE)
        {
            EVENT_COUNTS[r][event].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn slot(&self) -> (&'static str, String) {
        (self.resource.plural, self.namespace.clone())
    }

    fn selectors(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if !self.label.is_empty() {
            q.push(("labelSelector", self.label.clone()));
        }
        if !self.field.is_empty() {
            q.push(("fieldSelector", self.field.clone()));
        }
        q
    }

    async fn run(self) {
        let mut backoff = Duration::from_secs(1);
        let mut version: Option<String> = None;
        loop {
            if version.is_none() {
                match self.list().await {
                    Ok((items, rv)) => {
                        // An informer's re-list: adds, updates of the objects it had, deletes
                        // of those gone.
                        let old = self
                            .shared
                            .lock()
                            .objects
                            .insert(self.slot(), items.clone());
                        let old = old.unwrap_or_default();
                        for k in items.keys() {
                            self.count(if old.contains_key(k) { UPDATE } else { ADD });
                        }
                        let gone = old.keys().filter(|k| !items.contains_key(*k)).count();
                        for _ in 0..gone {
                            self.count(DELETE);
                        }
                        version = Some(rv);
                        self.rebuild();
                        backoff = Duration::from_secs(1);
                    }
                    Err(e) => {
                        FAILURES.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(resource = self.resource.plural, namespace = %self.namespace, error = %e, "Kubernetes list failed; keeping the last targets");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                        continue;
                    }
                }
            }
            let rv = version.clone().unwrap_or_default();
            let started = std::time::Instant::now();
            match self.watch(&rv, &mut version).await {
                WatchEnd::Gone => {
                    FAILURES.fetch_add(1, Ordering::Relaxed);
                    version = None;
                }
                WatchEnd::Closed => {
                    backoff = Duration::from_secs(1);
                    // A server that ends every watch at once must not be asked in a loop.
                    if started.elapsed() < Duration::from_secs(1) {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                WatchEnd::Failed(e) => {
                    FAILURES.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(resource = self.resource.plural, namespace = %self.namespace, error = %e, "Kubernetes watch failed; keeping the last targets");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    async fn list(&self) -> Result<(BTreeMap<String, Value>, String), String> {
        let resp = self
            .api
            .get(&self.path(), &self.selectors())
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("server returned HTTP status {}", resp.status()));
        }
        let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
        let body: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        let rv = body["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut out = BTreeMap::new();
        for item in body["items"].as_array().into_iter().flatten() {
            out.insert(object_key(item), item.clone());
        }
        Ok((out, rv))
    }

    async fn watch(&self, rv: &str, version: &mut Option<String>) -> WatchEnd {
        let mut q = self.selectors();
        q.push(("watch", "1".into()));
        q.push(("resourceVersion", rv.to_string()));
        q.push(("allowWatchBookmarks", "true".into()));
        q.push(("timeoutSeconds", "300".into()));
        let resp = match self
            .api
            .get(&self.path(), &q)
            .timeout(Duration::from_secs(330))
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return WatchEnd::Failed(e.to_string()),
        };
        if resp.status() == reqwest::StatusCode::GONE {
            return WatchEnd::Gone;
        }
        if !resp.status().is_success() {
            return WatchEnd::Failed(format!("server returned HTTP status {}", resp.status()));
        }
        let mut resp = resp;
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => return WatchEnd::Closed,
                Err(e) => return WatchEnd::Failed(e.to_string()),
            };
            buf.extend_from_slice(&chunk);
            let mut dirty = false;
            let mut end = None;
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let ev: Value = match serde_json::from_slice(&line) {
                    Ok(v) => v,
                    Err(e) => {
                        end = Some(WatchEnd::Failed(format!("bad watch event: {e}")));
                        break;
                    }
                };
                let obj = &ev["object"];
                match ev["type"].as_str().unwrap_or_default() {
                    "ADDED" | "MODIFIED" => {
                        let mut sh = self.shared.lock();
                        let m = sh.objects.entry(self.slot()).or_default();
                        // client-go's informer calls an ADDED of a known object an update.
                        let known = m.insert(object_key(obj), obj.clone()).is_some();
                        drop(sh);
                        self.count(if known { UPDATE } else { ADD });
                        dirty = true;
                    }
                    "DELETED" => {
                        let mut sh = self.shared.lock();
                        let m = sh.objects.entry(self.slot()).or_default();
                        let known = m.remove(&object_key(obj)).is_some();
                        drop(sh);
                        if known {
                            self.count(DELETE);
                        }
                        dirty = true;
                    }
                    "BOOKMARK" => {}
                    "ERROR" => {
                        end = Some(if obj["code"].as_i64() == Some(410) {
                            WatchEnd::Gone
                        } else {
                            WatchEnd::Failed(format!(
                                "watch error: {}",
                                obj["message"].as_str().unwrap_or_default()
                            ))
                        });
                        break;
                    }
                    other => {
                        tracing::warn!(event = other, "Unknown Kubernetes watch event type")
                    }
                }
                if let Some(v) = obj["metadata"]["resourceVersion"].as_str() {
                    *version = Some(v.to_string());
                }
            }
            if dirty {
                self.rebuild();
            }
            if let Some(end) = end {
                return end;
            }
        }
    }

    /// Rebuilds the discovery's targets from everything its watchers hold, once all of them
    /// have listed.
    fn rebuild(&self) {
        let mut sh = self.shared.lock();
        if sh.objects.len() < sh.watchers {
            return;
        }
        let groups = build_all(&self.role, &sh.objects, &sh.attach);
        if groups != sh.groups {
            sh.groups = groups;
            self.changed.store(true, Ordering::Relaxed);
        }
    }
}

fn object_key(o: &Value) -> String {
    format!(
        "{}/{}",
        o["metadata"]["namespace"].as_str().unwrap_or_default(),
        o["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// All targets of a role from the objects of its resources.
fn build_all(
    role: &str,
    objects: &BTreeMap<(&'static str, String), BTreeMap<String, Value>>,
    attach: &KubernetesAttachMetadata,
) -> Vec<SourcedGroup> {
    let of = |plural: &'static str| {
        objects
            .iter()
            .filter(move |((p, _), _)| *p == plural)
            .flat_map(|(_, m)| m.iter())
    };
    let watched = |plural: &'static str| objects.keys().any(|(p, _)| *p == plural);
    let by_name = |plural: &'static str| {
        watched(plural).then(|| {
            of(plural)
                .map(|(_, o)| (o["metadata"]["name"].as_str().unwrap_or_default(), o))
                .collect::<HashMap<_, _>>()
        })
    };
    let by_key = |plural: &'static str| {
        watched(plural).then(|| {
            of(plural)
                .map(|(k, o)| (k.as_str(), o))
                .collect::<HashMap<_, _>>()
        })
    };
    let primary = resources_of(role).map_or("", |r| r[0].plural);
    let m = Meta {
        nodes: if role == "node" {
            None
        } else {
            by_name("nodes")
        },
        namespaces: by_name("namespaces"),
        replica_sets: by_key("replicasets"),
        jobs: by_key("jobs"),
        deployment: attach.deployment,
        job: attach.job,
        cronjob: attach.cronjob,
    };
    if role == "endpointslice" || role == "endpoints" {
        let services: HashMap<&str, &Value> =
            of("services").map(|(k, v)| (k.as_str(), v)).collect();
        let pods: HashMap<&str, &Value> = of("pods").map(|(k, v)| (k.as_str(), v)).collect();
        let build = if role == "endpoints" {
            build_endpoints
        } else {
            build_endpoint_slice
        };
        return of(primary)
            .flat_map(|(_, o)| to_groups(build(o, &services, &pods, &m)))
            .collect();
    }
    of(primary)
        .flat_map(|(_, o)| build_with(role, o, &m))
        .collect()
}

/// What `attach_metadata` adds to targets: the watched nodes and namespaces by name, replica
/// sets and jobs by `namespace/name` (each `None` when not watched), and the pod
/// controller-derived labels asked for.
#[derive(Default)]
pub(crate) struct Meta<'a> {
    pub(crate) nodes: Option<HashMap<&'a str, &'a Value>>,
    pub(crate) namespaces: Option<HashMap<&'a str, &'a Value>>,
    pub(crate) replica_sets: Option<HashMap<&'a str, &'a Value>>,
    pub(crate) jobs: Option<HashMap<&'a str, &'a Value>>,
    pub(crate) deployment: bool,
    pub(crate) job: bool,
    pub(crate) cronjob: bool,
}

impl Meta<'_> {
    /// Prometheus' `addNodeLabels`: the node's name, labels and annotations.
    fn node_labels(&self, ls: &mut Labels, name: Option<&str>) {
        if let (Some(nodes), Some(name)) = (&self.nodes, name)
            && let Some(node) = nodes.get(name)
        {
            object_meta_labels(ls, node, "node");
        }
    }

    /// Prometheus' `addNamespaceLabels`: the namespace's labels and annotations.
    fn namespace_labels(&self, ls: &mut Labels, ns: &str) {
        if let Some(nss) = &self.namespaces
            && let Some(n) = nss.get(ns)
        {
            object_annotations_and_labels(ls, n, "namespace");
        }
    }
}

/// client-go's `GetControllerOf`: the owner reference marked as the controller.
fn controller_of(o: &Value) -> Option<&Value> {
    o["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["controller"] == true)
}

// ---------------------------------------------------------------------------------------------
// Objects to targets, as Prometheus' `buildPod`, `buildNode` and `buildService`.

/// The target groups of one object of `role` (not `endpointslice`, which needs other objects).
#[cfg(test)]
pub(crate) fn build(role: &str, o: &Value) -> Vec<SourcedGroup> {
    build_with(role, o, &Meta::default())
}

/// [`build`] with `attach_metadata`'s objects.
pub(crate) fn build_with(role: &str, o: &Value, m: &Meta) -> Vec<SourcedGroup> {
    to_groups(match role {
        "pod" => build_pod(o, m),
        "node" => build_node(o),
        "service" => build_service(o, m),
        "ingress" => build_ingress(o, m),
        _ => Vec::new(),
    })
}

/// One group per target: `__address__` as its target, `__meta_*` as its meta labels, the
/// rest (the node role's `instance`) as its labels.
fn to_groups(targets: Vec<Labels>) -> Vec<SourcedGroup> {
    targets
        .into_iter()
        .map(|mut t| {
            let address = t.remove("__address__").unwrap_or_default();
            let (meta, labels): (BTreeMap<_, _>, BTreeMap<_, _>) =
                t.into_iter().partition(|(k, _)| k.starts_with("__meta_"));
            SourcedGroup {
                group: TargetGroup {
                    targets: vec![address],
                    labels,
                },
                meta,
            }
        })
        .collect()
}

type Labels = BTreeMap<String, String>;

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// `addObjectMetaLabels`: `<role>_name`, labels and annotations with their `present` markers.
fn object_meta_labels(ls: &mut Labels, o: &Value, role: &str) {
    ls.insert(format!("{META}{role}_name"), s(&o["metadata"]["name"]));
    object_annotations_and_labels(ls, o, role);
}

/// `addObjectAnnotationsAndLabels`: labels and annotations with their `present` markers.
fn object_annotations_and_labels(ls: &mut Labels, o: &Value, role: &str) {
    let m = &o["metadata"];
    for (what, key) in [("label", "labels"), ("annotation", "annotations")] {
        for (k, v) in m[key].as_object().into_iter().flatten() {
            let n = sanitize_label_name(k);
            ls.insert(format!("{META}{role}_{what}_{n}"), s(v));
            ls.insert(format!("{META}{role}_{what}present_{n}"), "true".into());
        }
    }
}

/// Prometheus' `podLabels`: the labels of a pod shared by its targets (without the namespace).
fn pod_labels(o: &Value, m: &Meta) -> Labels {
    let status = &o["status"];
    let mut ls = Labels::new();
    ls.insert(format!("{META}pod_ip"), s(&status["podIP"]));
    let ready = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .map(|c| s(&c["status"]).to_lowercase())
        .unwrap_or_else(|| "unknown".into());
    ls.insert(format!("{META}pod_ready"), ready);
    ls.insert(format!("{META}pod_phase"), s(&status["phase"]));
    ls.insert(format!("{META}pod_node_name"), s(&o["spec"]["nodeName"]));
    ls.insert(format!("{META}pod_host_ip"), s(&status["hostIP"]));
    ls.insert(format!("{META}pod_uid"), s(&o["metadata"]["uid"]));
    object_meta_labels(&mut ls, o, "pod");
    if let Some(c) = controller_of(o) {
        if !s(&c["kind"]).is_empty() {
            ls.insert(format!("{META}pod_controller_kind"), s(&c["kind"]));
        }
        if !s(&c["name"]).is_empty() {
            ls.insert(format!("{META}pod_controller_name"), s(&c["name"]));
        }
        let key = format!("{}/{}", s(&o["metadata"]["namespace"]), s(&c["name"]));
        let owner_of = |objs: &Option<HashMap<&str, &Value>>, kind: &str| {
            objs.as_ref()
                .and_then(|m| m.get(key.as_str()))
                .and_then(|x| controller_of(x))
                .filter(|r| r["kind"] == kind)
                .map(|r| s(&r["name"]))
        };
        match c["kind"].as_str() {
            Some("ReplicaSet") if m.deployment => {
                if let Some(d) = owner_of(&m.replica_sets, "Deployment") {
                    ls.insert(format!("{META}pod_deployment_name"), d);
                }
            }
            Some("Job") => {
                if m.job {
                    ls.insert(format!("{META}pod_job_name"), s(&c["name"]));
                }
                if m.cronjob
                    && let Some(cj) = owner_of(&m.jobs, "CronJob")
                {
                    ls.insert(format!("{META}pod_cronjob_name"), cj);
                }
            }
            _ => {}
        }
    }
    ls
}

fn build_pod(o: &Value, m: &Meta) -> Vec<Labels> {
    let status = &o["status"];
    let pod_ip = s(&status["podIP"]);
    if pod_ip.is_empty() {
        return Vec::new();
    }
    let node = s(&o["spec"]["nodeName"]);
    // Pods on nodes the node watch does not hold (filtered out by node selectors) are skipped.
    if let Some(nodes) = &m.nodes
        && !nodes.contains_key(node.as_str())
    {
        return Vec::new();
    }
    let ns = s(&o["metadata"]["namespace"]);
    let mut ls = pod_labels(o, m);
    ls.insert(format!("{META}namespace"), ns.clone());
    m.node_labels(&mut ls, Some(&node));
    m.namespace_labels(&mut ls, &ns);
    let empty = Vec::new();
    let containers = o["spec"]["containers"].as_array().unwrap_or(&empty);
    let inits = o["spec"]["initContainers"].as_array().unwrap_or(&empty);
    let mut out = Vec::new();
    for (i, c) in containers.iter().chain(inits).enumerate() {
        let is_init = i >= containers.len();
        let statuses = if is_init {
            &status["initContainerStatuses"]
        } else {
            &status["containerStatuses"]
        };
        let name = s(&c["name"]);
        let id = statuses
            .as_array()
            .into_iter()
            .flatten()
            .find(|st| st["name"] == name.as_str())
            .map(|st| s(&st["containerID"]))
            .unwrap_or_default();
        let mut t = ls.clone();
        t.insert(format!("{META}pod_container_name"), name);
        t.insert(format!("{META}pod_container_id"), id);
        t.insert(format!("{META}pod_container_image"), s(&c["image"]));
        t.insert(format!("{META}pod_container_init"), is_init.to_string());
        let ports = c["ports"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        if ports.is_empty() {
            t.insert("__address__".into(), pod_ip.clone());
            out.push(t);
            continue;
        }
        for p in ports {
            let port = s(&p["containerPort"]);
            let mut t = t.clone();
            t.insert("__address__".into(), join_host_port(&pod_ip, &port));
            t.insert(format!("{META}pod_container_port_number"), port);
            t.insert(format!("{META}pod_container_port_name"), s(&p["name"]));
            // The API server defaults the protocol to TCP.
            let proto = match s(&p["protocol"]) {
                p if p.is_empty() => "TCP".to_string(),
                p => p,
            };
            t.insert(format!("{META}pod_container_port_protocol"), proto);
            out.push(t);
        }
    }
    out
}

const NODE_ADDRESS_ORDER: [&str; 6] = [
    "InternalIP",
    "InternalDNS",
    "ExternalIP",
    "ExternalDNS",
    "LegacyHostIP",
    "Hostname",
];

fn build_node(o: &Value) -> Vec<Labels> {
    let status = &o["status"];
    let mut ls = Labels::new();
    ls.insert(
        format!("{META}node_provider_id"),
        s(&o["spec"]["providerID"]),
    );
    for c in status["conditions"].as_array().into_iter().flatten() {
        let ty = sanitize_label_name(&s(&c["type"]).to_lowercase());
        ls.insert(
            format!("{META}node_condition_{ty}"),
            s(&c["status"]).to_lowercase(),
        );
    }
    object_meta_labels(&mut ls, o, "node");
    let mut by_type: BTreeMap<String, String> = BTreeMap::new();
    for a in status["addresses"].as_array().into_iter().flatten() {
        by_type
            .entry(s(&a["type"]))
            .or_insert_with(|| s(&a["address"]));
    }
    let Some(addr) = NODE_ADDRESS_ORDER.iter().find_map(|t| by_type.get(*t)) else {
        tracing::warn!(node = %s(&o["metadata"]["name"]), "No node address found");
        return Vec::new();
    };
    let port = status["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_i64()
        .unwrap_or(0);
    ls.insert("__address__".into(), join_host_port(addr, port));
    ls.insert("instance".into(), s(&o["metadata"]["name"]));
    for (ty, a) in &by_type {
        ls.insert(
            sanitize_label_name(&format!("{META}node_address_{ty}")),
            a.clone(),
        );
    }
    vec![ls]
}

fn build_service(o: &Value, m: &Meta) -> Vec<Labels> {
    let spec = &o["spec"];
    let name = s(&o["metadata"]["name"]);
    let ns = s(&o["metadata"]["namespace"]);
    let mut ls = service_labels(o);
    m.namespace_labels(&mut ls, &ns);
    let ty = match s(&spec["type"]) {
        t if t.is_empty() => "ClusterIP".to_string(),
        t => t,
    };
    let mut out = Vec::new();
    for p in spec["ports"].as_array().into_iter().flatten() {
        let port = s(&p["port"]);
        let mut t = ls.clone();
        t.insert(
            "__address__".into(),
            join_host_port(&format!("{name}.{ns}.svc"), &port),
        );
        t.insert(format!("{META}service_port_name"), s(&p["name"]));
        t.insert(format!("{META}service_port_number"), port);
        let proto = match s(&p["protocol"]) {
            p if p.is_empty() => "TCP".to_string(),
            p => p,
        };
        t.insert(format!("{META}service_port_protocol"), proto);
        t.insert(format!("{META}service_type"), ty.clone());
        if ty == "ExternalName" {
            t.insert(
                format!("{META}service_external_name"),
                s(&spec["externalName"]),
            );
        } else {
            t.insert(format!("{META}service_cluster_ip"), s(&spec["clusterIP"]));
        }
        if ty == "LoadBalancer" {
            t.insert(
                format!("{META}service_loadbalancer_ip"),
                s(&spec["loadBalancerIP"]),
            );
        }
        out.push(t);
    }
    out
}

/// Prometheus' `serviceLabels`.
fn service_labels(o: &Value) -> Labels {
    let mut ls = Labels::new();
    ls.insert(format!("{META}namespace"), s(&o["metadata"]["namespace"]));
    object_meta_labels(&mut ls, o, "service");
    ls
}

/// Prometheus' `nonPrimaryIPFamilySlice`: a dual-stack service's slice of its second family.
fn non_primary_ip_family(svc: Option<&Value>, eps: &Value) -> bool {
    let Some(svc) = svc else { return false };
    let policy = s(&svc["spec"]["ipFamilyPolicy"]);
    if policy != "PreferDualStack" && policy != "RequireDualStack" {
        return false;
    }
    match svc["spec"]["ipFamilies"].as_array().and_then(|f| f.first()) {
        Some(first) => s(&eps["addressType"]) != s(first),
        None => false,
    }
}

/// The labels of the first container port of `pod` equal to `port` (Prometheus' loop in
/// `buildEndpointSlice`), or none.
fn container_port_labels(pod: &Value, port: &str, protocol: Option<&str>) -> Option<Labels> {
    let empty = Vec::new();
    let containers = pod["spec"]["containers"].as_array().unwrap_or(&empty);
    let inits = pod["spec"]["initContainers"].as_array().unwrap_or(&empty);
    let mut found = None;
    for (i, c) in containers.iter().chain(inits).enumerate() {
        for p in c["ports"].as_array().into_iter().flatten() {
            if s(&p["containerPort"]) == port {
                let mut t = Labels::new();
                t.insert(format!("{META}pod_container_name"), s(&c["name"]));
                t.insert(format!("{META}pod_container_image"), s(&c["image"]));
                t.insert(format!("{META}pod_container_port_name"), s(&p["name"]));
                t.insert(format!("{META}pod_container_port_number"), port.to_string());
                t.insert(
                    format!("{META}pod_container_port_protocol"),
                    protocol.map_or_else(|| s(&p["protocol"]), str::to_string),
                );
                t.insert(
                    format!("{META}pod_container_init"),
                    (i >= containers.len()).to_string(),
                );
                // Prometheus breaks out of the port loop only: a later container matching
                // the same port overwrites the labels.
                found = Some(t);
                break;
            }
        }
    }
    found
}

/// Prometheus' `buildEndpointSlice` (discovery.k8s.io/v1), with services and pods by
/// `namespace/name`.
fn build_endpoint_slice(
    eps: &Value,
    services: &HashMap<&str, &Value>,
    pods: &HashMap<&str, &Value>,
    m: &Meta,
) -> Vec<Labels> {
    let ns = s(&eps["metadata"]["namespace"]);
    let mut group = Labels::new();
    group.insert(format!("{META}namespace"), ns.clone());
    group.insert(
        format!("{META}endpointslice_address_type"),
        s(&eps["addressType"]),
    );
    object_meta_labels(&mut group, eps, "endpointslice");
    let svc = eps["metadata"]["labels"]["kubernetes.io/service-name"]
        .as_str()
        .and_then(|name| services.get(format!("{ns}/{name}").as_str()).copied());
    if let Some(svc) = svc {
        group.extend(service_labels(svc));
    }
    m.namespace_labels(&mut group, &ns);
    if non_primary_ip_family(svc, eps) {
        return Vec::new();
    }
    let mut out = Vec::new();
    // Pods seen, with the ports of the slice they were seen with.
    let mut seen: BTreeMap<String, (&Value, Vec<String>)> = BTreeMap::new();
    let opt = |v: &Value| (!v.is_null()).then(|| s(v));
    for ep in eps["endpoints"].as_array().into_iter().flatten() {
        for port in eps["ports"].as_array().into_iter().flatten() {
            for addr in ep["addresses"].as_array().into_iter().flatten() {
                let addr = s(addr);
                let number = opt(&port["port"]);
                let mut t = group.clone();
                t.insert(
                    "__address__".into(),
                    match &number {
                        Some(n) => join_host_port(&addr, n),
                        None => addr.clone(),
                    },
                );
                let mut put = |name: &str, v: Option<String>| {
                    if let Some(v) = v {
                        t.insert(format!("{META}endpointslice_{name}"), v);
                    }
                };
                put("port_name", opt(&port["name"]));
                put("port_protocol", opt(&port["protocol"]));
                put("port", number.clone());
                put("port_app_protocol", opt(&port["appProtocol"]));
                let c = &ep["conditions"];
                put("endpoint_conditions_ready", opt(&c["ready"]));
                put("endpoint_conditions_serving", opt(&c["serving"]));
                put("endpoint_conditions_terminating", opt(&c["terminating"]));
                put("endpoint_hostname", opt(&ep["hostname"]));
                let r = &ep["targetRef"];
                if !r.is_null() {
                    put("address_target_kind", Some(s(&r["kind"])));
                    put("address_target_name", Some(s(&r["name"])));
                }
                put("endpoint_node_name", opt(&ep["nodeName"]));
                put("endpoint_zone", opt(&ep["zone"]));
                for (k, v) in ep["deprecatedTopology"].as_object().into_iter().flatten() {
                    let n = sanitize_label_name(k);
                    t.insert(format!("{META}endpointslice_endpoint_topology_{n}"), s(v));
                    t.insert(
                        format!("{META}endpointslice_endpoint_topology_present_{n}"),
                        "true".into(),
                    );
                }
                if r["kind"] == "Node" {
                    m.node_labels(&mut t, r["name"].as_str());
                } else {
                    m.node_labels(&mut t, ep["nodeName"].as_str());
                }
                let pod = (r["kind"] == "Pod")
                    .then(|| format!("{}/{}", s(&r["namespace"]), s(&r["name"])))
                    .and_then(|k| pods.get(k.as_str()).map(|p| (k, *p)));
                if let Some((key, pod)) = pod {
                    let entry = seen.entry(key).or_insert((pod, Vec::new()));
                    t.extend(pod_labels(pod, m));
                    if let Some(n) = &number {
                        if let Some(c) = container_port_labels(pod, n, None) {
                            t.extend(c);
                        }
                        entry.1.push(n.clone());
                    }
                }
                out.push(t);
            }
        }
    }
    other_pod_ports(&group, &seen, &mut out, m);
    out
}

/// The targets of the container ports of the pods behind an endpoints object or slice that
/// none of its ports named (the end of Prometheus' `buildEndpoints`/`buildEndpointSlice`).
fn other_pod_ports(
    group: &Labels,
    seen: &BTreeMap<String, (&Value, Vec<String>)>,
    out: &mut Vec<Labels>,
    m: &Meta,
) {
    // The pods' other container ports become targets too.
    for (pod, ports) in seen.values() {
        let ip = s(&pod["status"]["podIP"]);
        if ip.is_empty() {
            continue;
        }
        let empty = Vec::new();
        let containers = pod["spec"]["containers"].as_array().unwrap_or(&empty);
        let inits = pod["spec"]["initContainers"].as_array().unwrap_or(&empty);
        for (i, c) in containers.iter().chain(inits).enumerate() {
            for p in c["ports"].as_array().into_iter().flatten() {
                let port = s(&p["containerPort"]);
                if ports.contains(&port) {
                    continue;
                }
                let mut t = group.clone();
                t.extend(pod_labels(pod, m));
                t.insert("__address__".into(), join_host_port(&ip, &port));
                t.insert(format!("{META}pod_container_name"), s(&c["name"]));
                t.insert(format!("{META}pod_container_image"), s(&c["image"]));
                t.insert(format!("{META}pod_container_port_name"), s(&p["name"]));
                t.insert(format!("{META}pod_container_port_number"), port);
                t.insert(
                    format!("{META}pod_container_port_protocol"),
                    s(&p["protocol"]),
                );
                t.insert(
                    format!("{META}pod_container_init"),
                    (i >= containers.len()).to_string(),
                );
                out.push(t);
            }
        }
    }
}

/// Prometheus' `buildEndpoints` (core/v1 Endpoints), with services and pods by
/// `namespace/name`.
fn build_endpoints(
    eps: &Value,
    services: &HashMap<&str, &Value>,
    pods: &HashMap<&str, &Value>,
    m: &Meta,
) -> Vec<Labels> {
    let ns = s(&eps["metadata"]["namespace"]);
    let name = s(&eps["metadata"]["name"]);
    let mut group = Labels::new();
    group.insert(format!("{META}namespace"), ns.clone());
    if let Some(svc) = services.get(format!("{ns}/{name}").as_str()) {
        group.extend(service_labels(svc));
    }
    object_meta_labels(&mut group, eps, "endpoints");
    m.namespace_labels(&mut group, &ns);
    let mut out = Vec::new();
    let mut seen: BTreeMap<String, (&Value, Vec<String>)> = BTreeMap::new();
    for ss in eps["subsets"].as_array().into_iter().flatten() {
        for port in ss["ports"].as_array().into_iter().flatten() {
            let number = s(&port["port"]);
            let proto = match s(&port["protocol"]) {
                p if p.is_empty() => "TCP".to_string(),
                p => p,
            };
            for (key, ready) in [("addresses", "true"), ("notReadyAddresses", "false")] {
                for addr in ss[key].as_array().into_iter().flatten() {
                    let mut t = group.clone();
                    t.insert(
                        "__address__".into(),
                        join_host_port(&s(&addr["ip"]), &number),
                    );
                    t.insert(format!("{META}endpoint_port_name"), s(&port["name"]));
                    t.insert(format!("{META}endpoint_port_protocol"), proto.clone());
                    t.insert(format!("{META}endpoint_ready"), ready.into());
                    let r = &addr["targetRef"];
                    if !r.is_null() {
                        t.insert(format!("{META}endpoint_address_target_kind"), s(&r["kind"]));
                        t.insert(format!("{META}endpoint_address_target_name"), s(&r["name"]));
                    }
                    if !addr["nodeName"].is_null() {
                        t.insert(format!("{META}endpoint_node_name"), s(&addr["nodeName"]));
                    }
                    if !s(&addr["hostname"]).is_empty() {
                        t.insert(format!("{META}endpoint_hostname"), s(&addr["hostname"]));
                    }
                    if !addr["nodeName"].is_null() {
                        m.node_labels(&mut t, addr["nodeName"].as_str());
                    } else if r["kind"] == "Node" {
                        m.node_labels(&mut t, r["name"].as_str());
                    }
                    let pod = (r["kind"] == "Pod")
                        .then(|| format!("{}/{}", s(&r["namespace"]), s(&r["name"])))
                        .and_then(|k| pods.get(k.as_str()).map(|p| (k, *p)));
                    if let Some((key, pod)) = pod {
                        let entry = seen.entry(key).or_insert((pod, Vec::new()));
                        t.extend(pod_labels(pod, m));
                        if let Some(c) = container_port_labels(pod, &number, Some(&proto)) {
                            t.extend(c);
                        }
                        entry.1.push(number.clone());
                    }
                    out.push(t);
                }
            }
        }
    }
    other_pod_ports(&group, &seen, &mut out, m);
    out
}

/// Prometheus' `matchesHostnamePattern`: equal, or a `*.` wildcard for one leading label.
fn matches_hostname_pattern(pattern: &str, host: &str) -> bool {
    if pattern == host {
        return true;
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let h: Vec<&str> = host.split('.').collect();
    p[0] == "*" && p.len() == h.len() && p[1..] == h[1..]
}

/// Prometheus' `buildIngress` (networking.k8s.io/v1).
fn build_ingress(o: &Value, m: &Meta) -> Vec<Labels> {
    let spec = &o["spec"];
    let mut ls = Labels::new();
    let ns = s(&o["metadata"]["namespace"]);
    m.namespace_labels(&mut ls, &ns);
    ls.insert(format!("{META}namespace"), ns);
    if !spec["ingressClassName"].is_null() {
        ls.insert(
            format!("{META}ingress_class_name"),
            s(&spec["ingressClassName"]),
        );
    }
    object_meta_labels(&mut ls, o, "ingress");
    let tls_hosts: Vec<String> = spec["tls"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["hosts"].as_array().into_iter().flatten().map(s))
        .collect();
    let mut out = Vec::new();
    for rule in spec["rules"].as_array().into_iter().flatten() {
        let host = s(&rule["host"]);
        let scheme = if tls_hosts.iter().any(|p| matches_hostname_pattern(p, &host)) {
            "https"
        } else {
            "http"
        };
        let paths: Vec<String> = if rule["http"].is_null() {
            vec!["/".into()]
        } else {
            rule["http"]["paths"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| match s(&p["path"]) {
                    p if p.is_empty() => "/".to_string(),
                    p => p,
                })
                .collect()
        };
        for path in paths {
            let mut t = ls.clone();
            t.insert("__address__".into(), host.clone());
            t.insert(format!("{META}ingress_scheme"), scheme.into());
            t.insert(format!("{META}ingress_host"), host.clone());
            t.insert(format!("{META}ingress_path"), path);
            out.push(t);
        }
    }
    out
}

#[cfg(test)]
#[path = "kubernetes_tests.rs"]
mod tests;
