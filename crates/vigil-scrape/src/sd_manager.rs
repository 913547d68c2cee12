//! A discovery-only manager: the scrape discovery machinery ([`DiscoveryCache`]: static, file,
//! HTTP, DNS, Consul and Kubernetes SD) run for configs that are not scraped, as Prometheus runs
//! a second discovery manager (`name="notify"`) for `alerting.alertmanagers`.
//!
//! Each Alertmanager entry becomes a discovery config named as Prometheus names it
//! (`config-0`, `config-1`, …); every time its targets change the subscriber receives all
//! configs' target groups (`__meta_*` labels merged into the group labels), which the binary
//! hands to the notifier. Also renders the discovery manager metrics
//! (`prometheus_sd_discovered_targets`, `prometheus_sd_received_updates_total`,
//! `prometheus_sd_updates_total`) for this manager and the scrape manager.

use crate::discovery::{DiscoveryCache, SourcedGroup, fetch_http_sd};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use vigil_config::{AlertmanagerConfig, Config, ScrapeConfig, TargetGroup};

/// Target groups by config name, each group's labels holding its `__meta_*` labels too.
pub type DiscoveredGroups = BTreeMap<String, Vec<TargetGroup>>;

/// Receives every configs' target groups after a change.
pub type Subscriber = Box<dyn Fn(DiscoveredGroups) + Send + Sync>;

/// What one discovery manager reports to `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct SdSnapshot {
    /// `scrape` or `notify`.
    pub name: &'static str,
    /// Targets per config, before relabeling.
    pub discovered: BTreeMap<String, usize>,
    pub received_updates: u64,
    pub updates: u64,
}

/// Counters shared by both managers.
#[derive(Default)]
pub(crate) struct SdCounters {
    pub received: AtomicU64,
    pub updates: AtomicU64,
}

#[derive(Default)]
struct Inner {
    configs: Vec<ScrapeConfig>,
    sd: DiscoveryCache,
    discovered: BTreeMap<String, usize>,
}

/// Runs discovery for configs nothing scrapes; see the module documentation.
pub struct DiscoveryManager {
    name: &'static str,
    user_agent: String,
    inner: Mutex<Inner>,
    subscriber: Mutex<Option<Subscriber>>,
    counters: SdCounters,
}

/// The discovery configs of `alerting.alertmanagers`, named `config-<index>`.
pub fn alertmanager_discovery_configs(cfg: &Config) -> Vec<ScrapeConfig> {
    cfg.alerting
        .alertmanagers
        .iter()
        .enumerate()
        .map(|(i, am)| am_discovery_config(i, am))
        .collect()
}

fn am_discovery_config(i: usize, am: &AlertmanagerConfig) -> ScrapeConfig {
    ScrapeConfig {
        job_name: format!("config-{i}"),
        static_configs: am.static_configs.clone(),
        file_sd_configs: am.file_sd_configs.clone(),
        http_sd_configs: am.http_sd_configs.clone(),
        consul_sd_configs: am.consul_sd_configs.clone(),
        dns_sd_configs: am.dns_sd_configs.clone(),
        kubernetes_sd_configs: am.kubernetes_sd_configs.clone(),
        ..ScrapeConfig::default()
    }
}

impl DiscoveryManager {
    pub fn new(name: &'static str, user_agent: impl Into<String>) -> Arc<Self> {
        Arc::new(DiscoveryManager {
            name,
            user_agent: user_agent.into(),
            inner: Mutex::new(Inner::default()),
            subscriber: Mutex::new(None),
            counters: SdCounters::default(),
        })
    }

    /// Sets who receives the target groups (replacing any earlier subscriber).
    pub fn subscribe(&self, s: Subscriber) {
        *self.subscriber.lock() = Some(s);
    }

    /// Takes new discovery configs (named by `job_name`); publishes what is known at once
    /// (static targets, files). Must run inside a tokio runtime.
    pub fn apply(&self, configs: Vec<ScrapeConfig>) {
        let mut inner = self.inner.lock();
        inner.configs = configs;
        let configs = inner.configs.clone();
        inner.sd.refresh_files(&configs);
        inner.sd.consul.sync(&configs, &self.user_agent);
        inner.sd.kubernetes.sync(&configs, &self.user_agent);
        self.publish(&mut inner);
    }

    /// Keeps discovery fresh; runs until the process ends.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let (mut changed, due) = {
                let mut inner = self.inner.lock();
                let configs = inner.configs.clone();
                for key in inner.sd.dns.due(&configs) {
                    let this = Arc::clone(&self);
                    tokio::spawn(async move {
                        let result = crate::dns_sd::refresh(&key).await;
                        let mut inner = this.inner.lock();
                        if inner.sd.dns.store(&key, result) {
                            this.counters.received.fetch_add(1, Ordering::Relaxed);
                            this.publish(&mut inner);
                        }
                    });
                }
                let changed = inner.sd.refresh_files(&configs)
                    | inner.sd.consul.take_changed()
                    | inner.sd.kubernetes.take_changed();
                let due: Vec<(String, String)> = inner.sd.http_due(&configs);
                (changed, due)
            };
            let mut clients: HashMap<String, reqwest::Client> = HashMap::new();
            for (config, url) in due {
                let client = {
                    let inner = self.inner.lock();
                    inner
                        .configs
                        .iter()
                        .filter(|c| c.job_name == config)
                        .flat_map(|c| &c.http_sd_configs)
                        .find(|h| h.url == url)
                        .map(|h| h.http_client_config())
                };
                let Some(http) = client else { continue };
                let client = match clients.get(&url) {
                    Some(c) => c.clone(),
                    None => match vigil_http::build(&http, &self.user_agent) {
                        Ok(c) => {
                            clients.insert(url.clone(), c.clone());
                            c
                        }
                        Err(e) => {
                            tracing::error!(url = %vigil_config::redact_url(&url), error = %e, "Cannot create HTTP SD client");
                            continue;
                        }
                    },
                };
                let result = fetch_http_sd(&client, &url).await;
                changed |= self.inner.lock().sd.store_http(&url, result);
            }
            if changed {
                self.counters.received.fetch_add(1, Ordering::Relaxed);
                let mut inner = self.inner.lock();
                self.publish(&mut inner);
            }
        }
    }

    /// The current target groups of every config.
    pub fn groups(&self) -> DiscoveredGroups {
        let inner = self.inner.lock();
        collect(&inner)
    }

    fn publish(&self, inner: &mut Inner) {
        let groups = collect(inner);
        inner.discovered = groups
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().map(|g| g.targets.len()).sum()))
            .collect();
        self.counters.updates.fetch_add(1, Ordering::Relaxed);
        if let Some(s) = self.subscriber.lock().as_ref() {
            s(groups);
        }
    }

    /// This manager's discovery metrics.
    pub fn sd_snapshot(&self) -> SdSnapshot {
        SdSnapshot {
            name: self.name,
            discovered: self.inner.lock().discovered.clone(),
            received_updates: self.counters.received.load(Ordering::Relaxed),
            updates: self.counters.updates.load(Ordering::Relaxed),
        }
    }
}

fn collect(inner: &Inner) -> DiscoveredGroups {
    inner
        .configs
        .iter()
        .map(|c| {
            let groups = inner.sd.groups(c).into_iter().map(merge_meta).collect();
            (c.job_name.clone(), groups)
        })
        .collect()
}

/// A group with its source's `__meta_*` labels folded into its labels (group labels win).
fn merge_meta(g: SourcedGroup) -> TargetGroup {
    let mut labels = g.meta;
    labels.extend(g.group.labels);
    TargetGroup {
        targets: g.group.targets,
        labels,
    }
}

/// `prometheus_sd_discovered_targets`, `prometheus_sd_received_updates_total` and
/// `prometheus_sd_updates_total` of all discovery managers, in the text format.
pub fn render_sd_metrics(managers: &[SdSnapshot]) -> String {
    let mut out = String::from(
        "# HELP prometheus_sd_discovered_targets Current number of discovered targets.\n# TYPE prometheus_sd_discovered_targets gauge\n",
    );
    for m in managers {
        for (config, n) in &m.discovered {
            out.push_str(&format!(
                "prometheus_sd_discovered_targets{{config={config:?},name={:?}}} {n}\n",
                m.name
            ));
        }
    }
    out.push_str("# HELP prometheus_sd_received_updates_total Total number of update events received from the SD providers.\n# TYPE prometheus_sd_received_updates_total counter\n");
    for m in managers {
        out.push_str(&format!(
            "prometheus_sd_received_updates_total{{name={:?}}} {}\n",
            m.name, m.received_updates
        ));
    }
    out.push_str("# HELP prometheus_sd_updates_total Total number of update events sent to the SD consumers.\n# TYPE prometheus_sd_updates_total counter\n");
    for m in managers {
        out.push_str(&format!(
            "prometheus_sd_updates_total{{name={:?}}} {}\n",
            m.name, m.updates
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn alertmanager_configs_are_discovered_and_counted() {
        let cfg = vigil_config::load_str(
            "alerting:\n  alertmanagers:\n  - static_configs:\n    - targets: ['a:9093', 'b:9093']\n      labels: {x: y}\n  - static_configs:\n    - targets: ['c:9093']\n",
            std::path::Path::new("/tmp/p.yml"),
        )
        .unwrap()
        .config;
        let m = DiscoveryManager::new("notify", "t");
        let got = Arc::new(Mutex::new(DiscoveredGroups::new()));
        let g = got.clone();
        m.subscribe(Box::new(move |groups| *g.lock() = groups));
        m.apply(alertmanager_discovery_configs(&cfg));
        let got = got.lock().clone();
        assert_eq!(got["config-0"][0].targets, ["a:9093", "b:9093"]);
        assert_eq!(got["config-0"][0].labels["x"], "y");
        assert_eq!(got["config-1"][0].targets, ["c:9093"]);
        let text = render_sd_metrics(&[m.sd_snapshot()]);
        assert!(
            text.contains(
                "prometheus_sd_discovered_targets{config=\"config-0\",name=\"notify\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "prometheus_sd_discovered_targets{config=\"config-1\",name=\"notify\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains("prometheus_sd_updates_total{name=\"notify\"} 1\n"));
    }
}
