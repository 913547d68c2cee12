//! `consul_sd_configs`: Prometheus 3.14's `discovery/consul`, request for request.
//!
//! Each distinct `consul_sd_config` runs one task, shared by every job that lists the same
//! entry (as Prometheus shares a provider between identical configs). The task first learns
//! the datacenter (from `/v1/agent/self` unless `datacenter` is set), then either watches the
//! catalog's service list (`/v1/catalog/services`, when `services` is empty or `tags` or
//! `filter` are set) and starts a watch for every new service it should watch, or watches the
//! fixed `services` directly. A service watch is a blocking query on `/v1/health/service/<name>`
//! (`index` from the last `X-Consul-Index`, `wait=120000ms`); every answer with a new index
//! replaces that service's targets. As in Prometheus, a watch issues at most one query per
//! `refresh_interval`, a failed query is logged and counted and the watch sleeps 15 s before it
//! tries again, keeping the last good targets, and a service that leaves the catalog drops its
//! targets.
//!
//! Prometheus gives each service one target group with `__meta_consul_service` and
//! `__meta_consul_dc` as group labels and everything else per target; vigil's
//! [`SourcedGroup`] has no per-target labels, so each instance becomes its own group carrying
//! all of them, which yields the same discovered label sets.

use crate::discovery::SourcedGroup;
use crate::sd_util::{AbortOnDrop, join_host_port, sanitize_label_name};
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use vigil_config::{ConsulSdConfig, ScrapeConfig, TargetGroup};

/// Prometheus' `watchTimeout`: the `wait` of every blocking query.
const WATCH_TIMEOUT: Duration = Duration::from_secs(120);
/// Prometheus' `retryInterval`: the pause after a failed request.
const RETRY_INTERVAL: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// Self-metrics: `prometheus_sd_consul_rpc_failures_total` and the sum and count of
// `prometheus_sd_consul_rpc_duration_seconds{endpoint="catalog",call="services"|"service"}`.

static RPC_FAILURES: AtomicU64 = AtomicU64::new(0);
/// (sum of seconds, count) for call="services" and call="service".
static RPC_DURATIONS: Mutex<[(f64, u64); 2]> = Mutex::new([(0.0, 0); 2]);

fn observe(call: usize, started: Instant) {
    let mut d = RPC_DURATIONS.lock();
    d[call].0 += started.elapsed().as_secs_f64();
    d[call].1 += 1;
}

fn failed() {
    RPC_FAILURES.fetch_add(1, Ordering::Relaxed);
}

/// The Consul discovery self-metrics in the text exposition format. Like Prometheus, which
/// registers them whether or not Consul is configured, they are always present; the summary
/// has no quantiles, only `_sum` and `_count`.
pub fn render_metrics() -> String {
    let d = *RPC_DURATIONS.lock();
    let mut out = format!(
        "# HELP prometheus_sd_consul_rpc_failures_total The number of Consul RPC call failures.\n# TYPE prometheus_sd_consul_rpc_failures_total counter\nprometheus_sd_consul_rpc_failures_total {}\n# HELP prometheus_sd_consul_rpc_duration_seconds The duration of a Consul RPC call in seconds.\n# TYPE prometheus_sd_consul_rpc_duration_seconds summary\n",
        RPC_FAILURES.load(Ordering::Relaxed)
    );
    for (i, call) in ["service", "services"].iter().enumerate() {
        let (sum, count) = d[1 - i];
        out.push_str(&format!(
            "prometheus_sd_consul_rpc_duration_seconds_sum{{call=\"{call}\",endpoint=\"catalog\"}} {sum}\nprometheus_sd_consul_rpc_duration_seconds_count{{call=\"{call}\",endpoint=\"catalog\"}} {count}\n"
        ));
    }
    out
}

const CALL_SERVICES: usize = 0;
const CALL_SERVICE: usize = 1;

// ---------------------------------------------------------------------------------------------
// Running discoveries.

/// What a discovery's watches share: the current targets by service, and which service
/// watches are live (a watch whose service was removed must not write again).
#[derive(Default)]
struct Shared {
    groups: BTreeMap<String, Vec<SourcedGroup>>,
    live: HashMap<String, u64>,
}

struct Running {
    shared: Arc<Mutex<Shared>>,
    _task: AbortOnDrop,
}

/// The Consul discoveries of all scrape configs.
#[derive(Default)]
pub struct ConsulDiscovery {
    running: HashMap<String, Running>,
    changed: Arc<AtomicBool>,
}

impl ConsulDiscovery {
    /// Starts a discovery for every new distinct `consul_sd_config` of `configs` and stops
    /// those no config lists any more. Must run inside a tokio runtime.
    pub fn sync(&mut self, configs: &[ScrapeConfig], user_agent: &str) {
        let mut wanted: HashMap<String, &ConsulSdConfig> = HashMap::new();
        for sc in configs {
            for c in &sc.consul_sd_configs {
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
            let api = match Api::new(cfg, user_agent) {
                Ok(api) => api,
                Err(e) => {
                    tracing::error!(server = %cfg.server, error = %e, "Cannot create Consul service discovery");
                    continue;
                }
            };
            let shared = Arc::new(Mutex::new(Shared::default()));
            let watch = Watch {
                api: Arc::new(api),
                cfg: Arc::new(cfg.clone()),
                datacenter: String::new(),
                shared: Arc::clone(&shared),
                changed: Arc::clone(&self.changed),
            };
            let task = AbortOnDrop(tokio::spawn(watch.run()));
            self.running.insert(
                key,
                Running {
                    shared,
                    _task: task,
                },
            );
        }
    }

    /// True once after any discovery's targets changed.
    pub fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::Relaxed)
    }

    /// The current target groups of a scrape config's `consul_sd_configs`.
    pub fn groups(&self, sc: &ScrapeConfig) -> Vec<SourcedGroup> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for c in &sc.consul_sd_configs {
            let key = c.fingerprint();
            if let Some(r) = self.running.get(&key)
                && seen.insert(key)
            {
                out.extend(r.shared.lock().groups.values().flatten().cloned());
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The Consul HTTP API, as hashicorp/consul/api sends it.

struct Api {
    client: reqwest::Client,
    /// `scheme://server` plus `path_prefix`.
    base: String,
    token: String,
    /// Parameters of every request (`dc`, `ns`, `partition` of the client config).
    params: Vec<(&'static str, String)>,
}

impl Api {
    fn new(cfg: &ConsulSdConfig, user_agent: &str) -> Result<Api, String> {
        let client =
            vigil_http::build(&cfg.http_client_config(), user_agent).map_err(|e| e.to_string())?;
        let mut scheme = if cfg.scheme.is_empty() {
            "http"
        } else {
            cfg.scheme.as_str()
        };
        let mut address = cfg.server.as_str();
        if let Some((s, rest)) = address.split_once("://") {
            match s {
                "http" => {}
                "https" => scheme = "https",
                other => return Err(format!("Unknown protocol scheme: {other}")),
            }
            address = rest;
        }
        let mut base = format!("{scheme}://{address}");
        if !cfg.path_prefix.is_empty() && !cfg.path_prefix.starts_with('/') {
            base.push('/');
        }
        base.push_str(&cfg.path_prefix);
        let mut params = Vec::new();
        for (k, v) in [
            ("dc", &cfg.datacenter),
            ("ns", &cfg.namespace),
            ("partition", &cfg.partition),
        ] {
            if !v.is_empty() {
                params.push((k, v.clone()));
            }
        }
        Ok(Api {
            client,
            base,
            token: cfg.token.expose().to_string(),
            params,
        })
    }

    /// The URL of `path` with the client's and the query's parameters, encoded as Go's
    /// `url.Values.Encode` does (sorted by key).
    fn url(&self, path: &str, query: &[(&'static str, String)]) -> String {
        let mut all: Vec<(&str, &str)> = self
            .params
            .iter()
            .chain(query)
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        all.sort_by_key(|(k, _)| *k);
        let mut url = format!("{}{path}", self.base);
        for (i, (k, v)) in all.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&vigil_http::query_escape(k));
            url.push('=');
            url.push_str(&vigil_http::query_escape(v));
        }
        url
    }

    /// GETs `path`; answers the `X-Consul-Index` (0 when absent) and the decoded body.
    async fn get(
        &self,
        path: &str,
        query: &[(&'static str, String)],
    ) -> Result<(u64, Value), String> {
        let mut req = self
            .client
            .get(self.url(path, query))
            .timeout(WATCH_TIMEOUT + Duration::from_secs(15));
        if !self.token.is_empty() {
            req = req.header("X-Consul-Token", &self.token);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let index = resp
            .headers()
            .get("X-Consul-Index")
            .map(|v| {
                v.to_str()
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| format!("Failed to parse X-Consul-Index: {v:?}"))
            })
            .transpose();
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        if status != reqwest::StatusCode::OK {
            return Err(format!(
                "Unexpected response code: {} ({})",
                status.as_u16(),
                String::from_utf8_lossy(&body).trim_end()
            ));
        }
        let index = index?.unwrap_or(0);
        let value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        Ok((index, value))
    }
}

/// The query options of a blocking query (`setQueryOptions`): `stale`, `index`, `wait`,
/// `filter` and `node-meta`.
fn query_options(cfg: &ConsulSdConfig, index: u64, filter: &str) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if cfg.allow_stale {
        q.push(("stale", String::new()));
    }
    if index != 0 {
        q.push(("index", index.to_string()));
    }
    q.push(("wait", format!("{}ms", WATCH_TIMEOUT.as_millis())));
    if !filter.is_empty() {
        q.push(("filter", filter.to_string()));
    }
    for (k, v) in &cfg.node_meta {
        q.push(("node-meta", format!("{k}:{v}")));
    }
    q
}

/// Go's `url.PathEscape`-like escaping of a service name in the request path.
fn escape_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~$&+,/:;=@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The watches.

#[derive(Clone)]
struct Watch {
    api: Arc<Api>,
    cfg: Arc<ConsulSdConfig>,
    /// The configured datacenter, else the agent's (for `__meta_consul_dc`).
    datacenter: String,
    shared: Arc<Mutex<Shared>>,
    changed: Arc<AtomicBool>,
}

impl Watch {
    fn refresh(&self) -> tokio::time::Interval {
        let period = self
            .cfg
            .refresh_interval
            .to_std()
            .max(Duration::from_millis(1));
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        t
    }

    async fn run(mut self) {
        self.datacenter = self.cfg.datacenter.clone();
        while self.datacenter.is_empty() {
            match self.agent_datacenter().await {
                Ok(dc) => self.datacenter = dc,
                Err(e) => {
                    tracing::error!(server = %self.cfg.server, err = %e, "Error retrieving datacenter name");
                    tokio::time::sleep(RETRY_INTERVAL).await;
                }
            }
        }
        let cfg = Arc::clone(&self.cfg);
        if cfg.services.is_empty() || !cfg.tags.is_empty() || !cfg.filter.is_empty() {
            let mut tick = self.refresh();
            let mut services: HashMap<String, AbortOnDrop> = HashMap::new();
            let mut last_index = 0;
            let mut next_id = 0;
            loop {
                self.watch_services(&mut last_index, &mut services, &mut next_id)
                    .await;
                tick.tick().await;
            }
        } else {
            let mut watches = Vec::new();
            let mut names: Vec<&String> = cfg.services.iter().collect();
            names.sort();
            names.dedup();
            for (id, name) in names.into_iter().enumerate() {
                watches.push(self.start_service(name, id as u64));
            }
            std::future::pending::<()>().await;
        }
    }

    async fn agent_datacenter(&self) -> Result<String, String> {
        let (_, v) = self
            .api
            .get("/v1/agent/self", &[])
            .await
            .inspect_err(|_| failed())?;
        match &v["Config"]["Datacenter"] {
            Value::String(dc) => Ok(dc.clone()),
            other => Err(format!("invalid value '{other}' for Config.Datacenter")),
        }
    }

    /// Prometheus' `shouldWatch`: the service is in `services` (or that is empty) and
    /// carries every one of `tags`.
    fn should_watch(&self, name: &str, tags: &[String]) -> bool {
        (self.cfg.services.is_empty() || self.cfg.services.iter().any(|s| s == name))
            && self.cfg.tags.iter().all(|t| tags.contains(t))
    }

    /// One blocking query on the catalog's service list, and the watches it starts and stops.
    async fn watch_services(
        &self,
        last_index: &mut u64,
        services: &mut HashMap<String, AbortOnDrop>,
        next_id: &mut u64,
    ) {
        let started = Instant::now();
        let result = self
            .api
            .get(
                "/v1/catalog/services",
                &query_options(&self.cfg, *last_index, &self.cfg.filter),
            )
            .await
            .and_then(|(index, v)| Ok((index, parse_services(v)?)));
        observe(CALL_SERVICES, started);
        let (index, srvs) = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(server = %self.cfg.server, err = %e, "Error refreshing service list; keeping the last good targets");
                failed();
                tokio::time::sleep(RETRY_INTERVAL).await;
                return;
            }
        };
        // The same index: the watch timed out with no update.
        if index == *last_index {
            return;
        }
        *last_index = index;
        for (name, tags) in &srvs {
            if !self.should_watch(name, tags) || services.contains_key(name) {
                continue;
            }
            *next_id += 1;
            services.insert(name.clone(), self.start_service(name, *next_id));
        }
        let gone: Vec<String> = services
            .keys()
            .filter(|n| !srvs.contains_key(*n))
            .cloned()
            .collect();
        if !gone.is_empty() {
            let mut sh = self.shared.lock();
            for name in gone {
                services.remove(&name);
                sh.live.remove(&name);
                if sh.groups.remove(&name).is_some() {
                    self.changed.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    fn start_service(&self, name: &str, id: u64) -> AbortOnDrop {
        self.shared.lock().live.insert(name.to_string(), id);
        let w = self.clone();
        let name = name.to_string();
        AbortOnDrop(tokio::spawn(async move {
            let mut tick = w.refresh();
            let mut last_index = 0;
            loop {
                w.watch_service(&name, id, &mut last_index).await;
                tick.tick().await;
            }
        }))
    }

    /// One blocking query on a service's instances.
    async fn watch_service(&self, name: &str, id: u64, last_index: &mut u64) {
        let mut query = query_options(&self.cfg, *last_index, &self.cfg.health_filter);
        query.extend(self.cfg.tags.iter().map(|t| ("tag", t.clone())));
        let started = Instant::now();
        let result = self
            .api
            .get(&format!("/v1/health/service/{}", escape_path(name)), &query)
            .await
            .and_then(|(index, v)| match v {
                Value::Array(entries) => Ok((index, entries)),
                Value::Null => Ok((index, Vec::new())),
                other => Err(format!("unexpected health response: {other}")),
            });
        observe(CALL_SERVICE, started);
        let (index, entries) = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(server = %self.cfg.server, service = name, tags = %self.cfg.tags.join(","), err = %e, "Error refreshing service; keeping its last good targets");
                failed();
                tokio::time::sleep(RETRY_INTERVAL).await;
                return;
            }
        };
        if index == *last_index {
            return;
        }
        *last_index = index;
        let groups: Vec<SourcedGroup> = entries
            .iter()
            .map(|e| {
                let mut meta = target_labels(e, &self.cfg.tag_separator);
                let address = meta.remove("__address__").unwrap_or_default();
                meta.insert("__meta_consul_service".into(), name.to_string());
                meta.insert("__meta_consul_dc".into(), self.datacenter.clone());
                SourcedGroup {
                    group: TargetGroup {
                        targets: vec![address],
                        labels: BTreeMap::new(),
                    },
                    meta,
                }
            })
            .collect();
        let mut sh = self.shared.lock();
        if sh.live.get(name) != Some(&id) {
            return;
        }
        if sh.groups.get(name) != Some(&groups) {
            sh.groups.insert(name.to_string(), groups);
            self.changed.store(true, Ordering::Relaxed);
        }
    }
}

/// `/v1/catalog/services`: service name → tags.
fn parse_services(v: Value) -> Result<BTreeMap<String, Vec<String>>, String> {
    let Value::Object(m) = v else {
        return Err(format!("unexpected catalog response: {v}"));
    };
    Ok(m.into_iter()
        .map(|(name, tags)| {
            let tags = tags
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            (name, tags)
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Labels.

/// The per-target labels Prometheus gives a `/v1/health/service` entry, `__address__`
/// included, empty values kept (relabeling input drops them, as Prometheus' builder does).
pub(crate) fn target_labels(entry: &Value, tag_separator: &str) -> BTreeMap<String, String> {
    let node = &entry["Node"];
    let service = &entry["Service"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let tags: Vec<String> = service["Tags"]
        .as_array()
        .map(|a| a.iter().map(s).collect())
        .unwrap_or_default();
    // The separator at both ends, so relabeling regexes need not care about positions.
    let tags = format!("{tag_separator}{}{tag_separator}", tags.join(tag_separator));
    let port = service["Port"].as_i64().unwrap_or(0).to_string();
    let service_address = s(&service["Address"]);
    let node_address = s(&node["Address"]);
    let host = if service_address.is_empty() {
        &node_address
    } else {
        &service_address
    };
    let mut l = BTreeMap::new();
    l.insert("__address__".to_string(), join_host_port(host, &port));
    l.insert("__meta_consul_address".into(), node_address.clone());
    l.insert("__meta_consul_node".into(), s(&node["Node"]));
    l.insert("__meta_consul_namespace".into(), s(&service["Namespace"]));
    l.insert("__meta_consul_partition".into(), s(&service["Partition"]));
    l.insert("__meta_consul_tags".into(), tags);
    l.insert(
        "__meta_consul_service_address".into(),
        service_address.clone(),
    );
    l.insert("__meta_consul_service_port".into(), port);
    l.insert("__meta_consul_service_id".into(), s(&service["ID"]));
    l.insert(
        "__meta_consul_health".into(),
        aggregated_status(&entry["Checks"]).to_string(),
    );
    for (prefix, map) in [
        ("__meta_consul_metadata_", &node["Meta"]),
        ("__meta_consul_service_metadata_", &service["Meta"]),
        ("__meta_consul_tagged_address_", &node["TaggedAddresses"]),
    ] {
        if let Some(m) = map.as_object() {
            for (k, v) in m {
                l.insert(format!("{prefix}{}", sanitize_label_name(k)), s(v));
            }
        }
    }
    l
}

/// Consul's `HealthChecks.AggregatedStatus`: maintenance beats critical beats warning beats
/// passing; an unknown status makes it empty; no checks at all is passing.
pub(crate) fn aggregated_status(checks: &Value) -> &'static str {
    let (mut warning, mut critical, mut maintenance) = (false, false, false);
    for c in checks.as_array().map(Vec::as_slice).unwrap_or_default() {
        let id = c["CheckID"].as_str().unwrap_or("");
        if id == "_node_maintenance" || id.starts_with("_service_maintenance:") {
            maintenance = true;
            continue;
        }
        match c["Status"].as_str().unwrap_or("") {
            "passing" => {}
            "warning" => warning = true,
            "critical" => critical = true,
            _ => return "",
        }
    }
    if maintenance {
        "maintenance"
    } else if critical {
        "critical"
    } else if warning {
        "warning"
    } else {
        "passing"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> Value {
        json!({
            "Node": {
                "ID": "n-1", "Node": "node-a", "Address": "10.0.0.1", "Datacenter": "dc1",
                "TaggedAddresses": {"lan": "10.0.0.1", "wan-ipv4": "1.2.3.4"},
                "Meta": {"rack": "r1", "os.version": "12", "ünï": "x"}
            },
            "Service": {
                "ID": "web-1", "Service": "web", "Tags": ["prod", "v2"], "Address": "",
                "Port": 8080, "Meta": {"team-name": "ml"}, "Namespace": "", "Partition": ""
            },
            "Checks": [
                {"CheckID": "serfHealth", "Status": "passing"},
                {"CheckID": "service:web-1", "Status": "warning"}
            ]
        })
    }

    #[test]
    fn labels_are_prometheus_labels() {
        let l = target_labels(&entry(), ",");
        let want: BTreeMap<String, String> = [
            ("__address__", "10.0.0.1:8080"),
            ("__meta_consul_address", "10.0.0.1"),
            ("__meta_consul_node", "node-a"),
            ("__meta_consul_namespace", ""),
            ("__meta_consul_partition", ""),
            ("__meta_consul_tags", ",prod,v2,"),
            ("__meta_consul_service_address", ""),
            ("__meta_consul_service_port", "8080"),
            ("__meta_consul_service_id", "web-1"),
            ("__meta_consul_health", "warning"),
            ("__meta_consul_metadata_rack", "r1"),
            ("__meta_consul_metadata_os_version", "12"),
            ("__meta_consul_metadata__n_", "x"),
            ("__meta_consul_service_metadata_team_name", "ml"),
            ("__meta_consul_tagged_address_lan", "10.0.0.1"),
            ("__meta_consul_tagged_address_wan_ipv4", "1.2.3.4"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(l, want);
    }

    #[test]
    fn service_address_wins_and_ipv6_is_bracketed() {
        let mut e = entry();
        e["Service"]["Address"] = json!("fd00::5");
        e["Service"]["Tags"] = Value::Null;
        e["Service"]["Namespace"] = json!("team");
        let l = target_labels(&e, ";");
        assert_eq!(l["__address__"], "[fd00::5]:8080");
        assert_eq!(l["__meta_consul_service_address"], "fd00::5");
        assert_eq!(l["__meta_consul_address"], "10.0.0.1");
        assert_eq!(l["__meta_consul_tags"], ";;");
        assert_eq!(l["__meta_consul_namespace"], "team");
    }

    #[test]
    fn health_aggregation_is_consuls() {
        let st = |v: Value| aggregated_status(&v);
        assert_eq!(st(json!([])), "passing");
        assert_eq!(st(Value::Null), "passing");
        assert_eq!(
            st(json!([{"CheckID": "a", "Status": "passing"}])),
            "passing"
        );
        assert_eq!(
            st(
                json!([{"CheckID": "a", "Status": "critical"}, {"CheckID": "b", "Status": "warning"}])
            ),
            "critical"
        );
        assert_eq!(
            st(
                json!([{"CheckID": "_node_maintenance", "Status": "critical"}, {"CheckID": "b", "Status": "passing"}])
            ),
            "maintenance"
        );
        assert_eq!(
            st(json!([{"CheckID": "_service_maintenance:web-1", "Status": "critical"}])),
            "maintenance"
        );
        assert_eq!(st(json!([{"CheckID": "a", "Status": "bogus"}])), "");
    }

    #[test]
    fn sanitizing_is_per_character() {
        assert_eq!(sanitize_label_name("a-b.c/d"), "a_b_c_d");
        assert_eq!(sanitize_label_name("Ab_9"), "Ab_9");
        assert_eq!(sanitize_label_name("é"), "_");
    }

    fn cfg(yaml: &str) -> ConsulSdConfig {
        let y =
            format!("scrape_configs:\n  - job_name: c\n    consul_sd_configs:\n      - {yaml}\n");
        vigil_config::load_str(&y, std::path::Path::new("/tmp/p.yml"))
            .unwrap()
            .config
            .scrape_configs
            .remove(0)
            .consul_sd_configs
            .remove(0)
    }

    #[test]
    fn requests_carry_prometheus_parameters() {
        let c = cfg(
            "{server: 'consul:8500', path_prefix: /gw, datacenter: dc2, namespace: ns, partition: p, node_meta: {rack: r1, os: linux}, tags: [a, b], filter: 'ServiceName == \"x\"', health_filter: 'Service.Port > 1'}",
        );
        let api = Api::new(&c, "t").unwrap();
        assert_eq!(
            api.url("/v1/catalog/services", &query_options(&c, 0, &c.filter)),
            "http://consul:8500/gw/v1/catalog/services?dc=dc2&filter=ServiceName+%3D%3D+%22x%22&node-meta=os%3Alinux&node-meta=rack%3Ar1&ns=ns&partition=p&stale=&wait=120000ms"
        );
        let mut q = query_options(&c, 42, &c.health_filter);
        q.extend(c.tags.iter().map(|t| ("tag", t.clone())));
        assert_eq!(
            api.url(&format!("/v1/health/service/{}", escape_path("my svc")), &q),
            "http://consul:8500/gw/v1/health/service/my%20svc?dc=dc2&filter=Service.Port+%3E+1&index=42&node-meta=os%3Alinux&node-meta=rack%3Ar1&ns=ns&partition=p&stale=&tag=a&tag=b&wait=120000ms"
        );
        let c = cfg("{server: 'https://consul:8501', allow_stale: false, path_prefix: gw}");
        let api = Api::new(&c, "t").unwrap();
        assert_eq!(
            api.url("/v1/agent/self", &query_options(&c, 0, "")),
            "https://consul:8501/gw/v1/agent/self?wait=120000ms"
        );
        assert!(Api::new(&cfg("{server: 'ftp://x'}"), "t").is_err());
    }

    #[test]
    fn should_watch_needs_name_and_every_tag() {
        let w = |yaml: &str| Watch {
            api: Arc::new(Api::new(&cfg(yaml), "t").unwrap()),
            cfg: Arc::new(cfg(yaml)),
            datacenter: String::new(),
            shared: Arc::default(),
            changed: Arc::default(),
        };
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = w("{}");
        assert!(all.should_watch("x", &[]));
        let some = w("{services: [web], tags: [prod, v2]}");
        assert!(some.should_watch("web", &tags(&["v2", "prod", "x"])));
        assert!(!some.should_watch("web", &tags(&["prod"])));
        assert!(!some.should_watch("db", &tags(&["prod", "v2"])));
    }

    #[test]
    fn metrics_render_in_the_text_format() {
        let m = render_metrics();
        assert!(m.contains("# TYPE prometheus_sd_consul_rpc_failures_total counter\nprometheus_sd_consul_rpc_failures_total "));
        assert!(m.contains("prometheus_sd_consul_rpc_duration_seconds_count{call=\"services\",endpoint=\"catalog\"} "));
        assert!(m.contains(
            "prometheus_sd_consul_rpc_duration_seconds_sum{call=\"service\",endpoint=\"catalog\"} "
        ));
    }
}
