//! Delivery of alerts to Alertmanager (Prometheus' `notifier` package).
//!
//! Rule evaluation hands alerts to [`Notifier::send`], which never blocks: it applies the
//! external labels and `alert_relabel_configs` and appends to a bounded queue; when the
//! queue is full the oldest alerts are dropped and counted
//! (`prometheus_notifications_dropped_total`). One task drains the queue in batches of 256
//! and POSTs each batch, as Alertmanager's v2 JSON, to every discovered Alertmanager
//! (relabeled with the set's `relabel_configs` on `__address__`, `__scheme__` and
//! `__alerts_path__`, as Prometheus' `AlertmanagerFromGroup`). The binary runs service
//! discovery for every `alertmanagers:` entry and hands the target groups, by config name
//! (`config-0`, `config-1`, …), to [`Notifier::set_discovered`]; until it does (or without a
//! binary, in tests) the notifier reads `static_configs` and `file_sd_configs` itself. A
//! batch that no Alertmanager accepted is counted as dropped and not retried: firing alerts
//! are re-sent every resend delay by the rules, with `endsAt` four resend delays ahead, so an
//! Alertmanager that was down receives the current state when it returns, which is what Prometheus does too.

use crate::error::RulesError;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use vigil_config::relabel::{self, RelabelConfig};
use vigil_config::{AlertmanagerConfig, Config};
use vigil_model::civil::rfc3339_millis as rfc3339;
use vigil_model::{Labels, LabelsBuilder};

/// Prometheus' `maxBatchSize`.
const MAX_BATCH: usize = 256;

/// An alert as Alertmanager receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyAlert {
    pub labels: Labels,
    pub annotations: Labels,
    /// ms since the epoch.
    pub starts_at: i64,
    pub ends_at: Option<i64>,
    pub generator_url: String,
}

struct AmSet {
    cfg: AlertmanagerConfig,
    client: reqwest::Client,
}

#[derive(Default)]
struct Settings {
    external_labels: Vec<(String, String)>,
    relabel: Vec<RelabelConfig>,
    sets: Vec<Arc<AmSet>>,
}

#[derive(Default, Clone, Copy)]
struct AmStats {
    sent: u64,
    errors: u64,
    latency_sum: f64,
    latency_count: u64,
}

/// The alert queue and its delivery task.
pub struct Notifier {
    capacity: usize,
    queue: Mutex<VecDeque<NotifyAlert>>,
    more: tokio::sync::Notify,
    settings: RwLock<Arc<Settings>>,
    dropped: AtomicU64,
    discovered: AtomicUsize,
    stats: Mutex<BTreeMap<String, AmStats>>,
    /// Target groups by Alertmanager config name, from the binary's discovery.
    groups: RwLock<Option<Arc<DiscoveredGroups>>>,
}

/// Target groups by Alertmanager config name (`config-<index>`); group labels include the
/// `__meta_*` labels of their source.
pub type DiscoveredGroups = BTreeMap<String, Vec<vigil_config::TargetGroup>>;

impl Notifier {
    /// A notifier with a queue of `capacity` alerts (`--alertmanager.notification-queue-capacity`).
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Notifier {
            capacity: capacity.max(1),
            queue: Mutex::new(VecDeque::new()),
            more: tokio::sync::Notify::new(),
            settings: RwLock::new(Arc::new(Settings::default())),
            dropped: AtomicU64::new(0),
            discovered: AtomicUsize::new(0),
            stats: Mutex::new(BTreeMap::new()),
            groups: RwLock::new(None),
        })
    }

    /// Applies `alerting:` and the external labels; builds one HTTP client per Alertmanager
    /// set. On error nothing changes.
    pub fn apply_config(&self, cfg: &Config) -> Result<(), RulesError> {
        let mut sets = Vec::new();
        for (i, am) in cfg.alerting.alertmanagers.iter().enumerate() {
            let client = vigil_http::build(
                &am.http_client_config(),
                &format!("vigil/{}", env!("CARGO_PKG_VERSION")),
            )
            .map_err(|e| RulesError::Notifier {
                index: i,
                reason: e.to_string(),
            })?;
            sets.push(Arc::new(AmSet {
                cfg: am.clone(),
                client,
            }));
        }
        *self.settings.write() = Arc::new(Settings {
            external_labels: cfg
                .global
                .external_labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            relabel: cfg.alerting.alert_relabel_configs.clone(),
            sets,
        });
        self.more.notify_one();
        Ok(())
    }

    /// Replaces the discovered target groups of the Alertmanager configs (by config name);
    /// from now on they, not the configs' static and file targets, say where alerts go.
    pub fn set_discovered(&self, groups: DiscoveredGroups) {
        *self.groups.write() = Some(Arc::new(groups));
        self.more.notify_one();
    }

    /// Active and dropped Alertmanager URLs of the set at `index`.
    fn resolve(&self, index: usize, cfg: &AlertmanagerConfig) -> (Vec<String>, Vec<String>) {
        match self.groups.read().clone() {
            Some(g) => alertmanagers_from_groups(
                cfg,
                g.get(&format!("config-{index}"))
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
            ),
            None => alertmanagers_from_groups(cfg, &configured_groups(cfg)),
        }
    }

    /// Queues alerts for delivery (never blocks).
    pub fn send(&self, alerts: Vec<NotifyAlert>) {
        let settings = self.settings.read().clone();
        let mut prepared: Vec<NotifyAlert> = Vec::with_capacity(alerts.len());
        for mut a in alerts {
            let mut b: LabelsBuilder = a.labels.to_builder();
            for (k, v) in &settings.external_labels {
                if b.get(k).is_none() {
                    b.set(k.clone(), v.clone());
                }
            }
            if !relabel::process_builder(&mut b, &settings.relabel) {
                continue;
            }
            a.labels = b.build();
            if a.labels.is_empty() {
                continue;
            }
            prepared.push(a);
        }
        if prepared.is_empty() {
            return;
        }
        let mut q = self.queue.lock();
        if prepared.len() >= self.capacity {
            let excess = prepared.len() - self.capacity;
            prepared.drain(..excess);
            self.dropped.fetch_add(excess as u64, Ordering::Relaxed);
        }
        let overflow = (q.len() + prepared.len()).saturating_sub(self.capacity);
        if overflow > 0 {
            q.drain(..overflow);
            self.dropped.fetch_add(overflow as u64, Ordering::Relaxed);
            tracing::warn!(
                count = overflow,
                "Alert notification queue full, dropping alerts"
            );
        }
        q.extend(prepared);
        drop(q);
        self.more.notify_one();
    }

    pub fn queue_len(&self) -> usize {
        self.queue.lock().len()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Delivers queued alerts until the task is aborted.
    pub async fn run(self: Arc<Self>) {
        loop {
            if self.queue_len() == 0 {
                self.more.notified().await;
            }
            let batch: Vec<NotifyAlert> = {
                let mut q = self.queue.lock();
                let n = q.len().min(MAX_BATCH);
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                continue;
            }
            if !self.send_all(&batch).await {
                self.dropped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
        }
    }

    /// POSTs one batch to every Alertmanager; true if at least one accepted it (or none is
    /// configured).
    async fn send_all(&self, batch: &[NotifyAlert]) -> bool {
        let settings = self.settings.read().clone();
        if settings.sets.is_empty() {
            return true;
        }
        let mut any_ok = false;
        let mut discovered = 0;
        let mut tasks = Vec::new();
        for (i, set) in settings.sets.iter().enumerate() {
            let urls = self.resolve(i, &set.cfg).0;
            discovered += urls.len();
            if urls.is_empty() {
                continue;
            }
            let alerts: Vec<NotifyAlert> = if set.cfg.alert_relabel_configs.is_empty() {
                batch.to_vec()
            } else {
                batch
                    .iter()
                    .filter_map(|a| {
                        let l = relabel::process(&a.labels, &set.cfg.alert_relabel_configs)?;
                        (!l.is_empty()).then(|| NotifyAlert {
                            labels: l,
                            ..a.clone()
                        })
                    })
                    .collect()
            };
            if alerts.is_empty() {
                continue;
            }
            let body = payload(&alerts);
            for url in urls {
                let set = set.clone();
                let body = body.clone();
                let n = alerts.len() as u64;
                tasks.push(async move {
                    let started = std::time::Instant::now();
                    let res = set
                        .client
                        .post(&url)
                        .timeout(set.cfg.timeout.to_std())
                        .header("Content-Type", "application/json")
                        .body(body)
                        .send()
                        .await;
                    let ok = match res {
                        Ok(r) if r.status().is_success() => Ok(()),
                        Ok(r) => Err(format!("bad response status {}", r.status())),
                        Err(e) => Err(e.to_string()),
                    };
                    (url, n, ok, started.elapsed().as_secs_f64())
                });
            }
        }
        self.discovered.store(discovered, Ordering::Relaxed);
        let results = join_all(tasks).await;
        let mut stats = self.stats.lock();
        for (url, n, ok, secs) in results {
            let s = stats.entry(url.clone()).or_default();
            s.latency_sum += secs;
            s.latency_count += 1;
            match ok {
                Ok(()) => {
                    s.sent += n;
                    any_ok = true;
                }
                Err(e) => {
                    s.errors += n;
                    tracing::error!(alertmanager = %url, count = n, "Error sending alerts: {e}");
                }
            }
        }
        any_ok
    }

    /// Discovered Alertmanager URLs of the current config (for `/api/v1/alertmanagers`).
    pub fn alertmanagers(&self) -> Vec<String> {
        self.active_and_dropped().0
    }

    /// Active and dropped (by `relabel_configs`) Alertmanager URLs of the current config, as
    /// `/api/v1/alertmanagers` lists them.
    pub fn active_and_dropped(&self) -> (Vec<String>, Vec<String>) {
        let settings = self.settings.read().clone();
        let (mut active, mut dropped) = (Vec::new(), Vec::new());
        for (i, s) in settings.sets.iter().enumerate() {
            let (a, d) = self.resolve(i, &s.cfg);
            active.extend(a);
            dropped.extend(d);
        }
        (active, dropped)
    }

    /// Prometheus' notifier self-metrics in the text format.
    pub fn render_metrics(&self) -> String {
        let mut out = String::new();
        let stats = self.stats.lock().clone();
        let help = |out: &mut String, name: &str, kind: &str, h: &str| {
            out.push_str(&format!("# HELP {name} {h}\n# TYPE {name} {kind}\n"));
        };
        help(
            &mut out,
            "prometheus_notifications_alertmanagers_discovered",
            "gauge",
            "The number of alertmanagers discovered and active.",
        );
        out.push_str(&format!(
            "prometheus_notifications_alertmanagers_discovered {}\n",
            self.discovered.load(Ordering::Relaxed)
        ));
        help(
            &mut out,
            "prometheus_notifications_dropped_total",
            "counter",
            "Total number of alerts dropped due to errors when sending to Alertmanager.",
        );
        out.push_str(&format!(
            "prometheus_notifications_dropped_total {}\n",
            self.dropped()
        ));
        help(
            &mut out,
            "prometheus_notifications_queue_capacity",
            "gauge",
            "The capacity of the alert notifications queue.",
        );
        out.push_str(&format!(
            "prometheus_notifications_queue_capacity {}\n",
            self.capacity
        ));
        help(
            &mut out,
            "prometheus_notifications_queue_length",
            "gauge",
            "The number of alert notifications in the queue.",
        );
        out.push_str(&format!(
            "prometheus_notifications_queue_length {}\n",
            self.queue_len()
        ));
        help(
            &mut out,
            "prometheus_notifications_errors_total",
            "counter",
            "Total number of sent alerts affected by errors.",
        );
        for (url, s) in &stats {
            out.push_str(&format!(
                "prometheus_notifications_errors_total{{alertmanager={url:?}}} {}\n",
                s.errors
            ));
        }
        help(
            &mut out,
            "prometheus_notifications_sent_total",
            "counter",
            "Total number of alerts sent.",
        );
        for (url, s) in &stats {
            out.push_str(&format!(
                "prometheus_notifications_sent_total{{alertmanager={url:?}}} {}\n",
                s.sent
            ));
        }
        help(
            &mut out,
            "prometheus_notifications_latency_seconds",
            "summary",
            "Latency quantiles for sending alert notifications.",
        );
        for (url, s) in &stats {
            out.push_str(&format!(
                "prometheus_notifications_latency_seconds_sum{{alertmanager={url:?}}} {}\nprometheus_notifications_latency_seconds_count{{alertmanager={url:?}}} {}\n",
                s.latency_sum, s.latency_count
            ));
        }
        out
    }
}

async fn join_all<F>(futs: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

/// `path.Join("/", path_prefix, "/api/v2/alerts")`.
fn alerts_path(prefix: &str, api_version: &str) -> String {
    let mut parts: Vec<&str> = prefix.split('/').filter(|p| !p.is_empty()).collect();
    parts.extend(["api", api_version, "alerts"]);
    format!("/{}", parts.join("/"))
}

/// The Alertmanager URLs of one `alertmanagers:` entry, from its static and file targets.
pub fn alertmanager_urls(cfg: &AlertmanagerConfig) -> Vec<String> {
    alertmanagers_from_groups(cfg, &configured_groups(cfg)).0
}

/// The `static_configs` and `file_sd_configs` target groups of an entry (read now).
fn configured_groups(cfg: &AlertmanagerConfig) -> Vec<vigil_config::TargetGroup> {
    let mut groups: Vec<vigil_config::TargetGroup> = cfg.static_configs.clone();
    for fsd in &cfg.file_sd_configs {
        for pattern in &fsd.files {
            let paths: Vec<PathBuf> = glob::glob(pattern)
                .map(|p| p.filter_map(Result::ok).collect())
                .unwrap_or_default();
            for p in paths {
                match vigil_config::read_file_sd(&p) {
                    Ok(g) => groups.extend(g),
                    Err(e) => {
                        tracing::warn!(file = %p.display(), "Cannot read Alertmanager file_sd: {e}")
                    }
                }
            }
        }
    }
    groups
}

/// Prometheus' `AlertmanagerFromGroup` over all groups, deduplicated as its
/// `alertmanagerSet.sync`: each target gets `__address__`, `__scheme__` and
/// `__alerts_path__`, then the group's labels (which may override the last two), then
/// `relabel_configs`. Answers the active URLs and the URLs (from
/// the labels before relabeling) of the dropped ones. A group with a relabeled address that
/// holds a `/` is skipped whole, with an error logged, as in Prometheus.
pub fn alertmanagers_from_groups(
    cfg: &AlertmanagerConfig,
    groups: &[vigil_config::TargetGroup],
) -> (Vec<String>, Vec<String>) {
    let api = if cfg.api_version.is_empty() {
        "v2"
    } else {
        cfg.api_version.as_str()
    };
    let path = alerts_path(&cfg.path_prefix, api);
    let url_of = |l: &Labels| {
        format!(
            "{}://{}{}",
            l.get("__scheme__").unwrap_or_default(),
            l.get("__address__").unwrap_or_default(),
            l.get("__alerts_path__").unwrap_or_default()
        )
    };
    let (mut active, mut dropped) = (Vec::new(), Vec::new());
    'groups: for g in groups {
        let (mut a, mut d) = (Vec::new(), Vec::new());
        for t in &g.targets {
            let mut b = LabelsBuilder::new();
            b.set("__address__", t.clone());
            b.set("__scheme__", cfg.scheme.clone());
            b.set("__alerts_path__", path.clone());
            // Group labels come after, so a discovered `__scheme__` or `__alerts_path__` wins.
            for (k, v) in &g.labels {
                if k != "__address__" {
                    b.set(k.clone(), v.clone());
                }
            }
            let pre = b.build();
            if !relabel::process_builder(&mut b, &cfg.relabel_configs) {
                d.push(url_of(&pre));
                continue;
            }
            let l = b.build();
            let addr = l.get("__address__").unwrap_or_default();
            if addr.contains('/') {
                tracing::error!(
                    address = addr,
                    "Creating discovered Alertmanagers failed: address contains a path"
                );
                continue 'groups;
            }
            a.push(url_of(&l));
        }
        active.extend(a);
        dropped.extend(d);
    }
    let mut seen = std::collections::HashSet::new();
    active.retain(|u| seen.insert(u.clone()));
    (active, dropped)
}

fn labels_json(l: &Labels) -> serde_json::Value {
    serde_json::Value::Object(
        l.iter()
            .map(|l| (l.name.clone(), serde_json::Value::String(l.value.clone())))
            .collect(),
    )
}

/// Alertmanager's v2 `postableAlerts` body.
pub fn payload(alerts: &[NotifyAlert]) -> String {
    let arr: Vec<serde_json::Value> = alerts
        .iter()
        .map(|a| {
            let mut o = serde_json::Map::new();
            o.insert("labels".into(), labels_json(&a.labels));
            o.insert("annotations".into(), labels_json(&a.annotations));
            o.insert("startsAt".into(), rfc3339(a.starts_at).into());
            if let Some(e) = a.ends_at {
                o.insert("endsAt".into(), rfc3339(e).into());
            }
            o.insert("generatorURL".into(), a.generator_url.clone().into());
            serde_json::Value::Object(o)
        })
        .collect();
    serde_json::Value::Array(arr).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(name: &str) -> NotifyAlert {
        NotifyAlert {
            labels: Labels::from_pairs([("alertname", name)]),
            annotations: Labels::empty(),
            starts_at: 0,
            ends_at: None,
            generator_url: String::new(),
        }
    }

    #[test]
    fn full_queue_drops_oldest_and_counts() {
        let n = Notifier::new(3);
        n.send((0..5).map(|i| alert(&format!("a{i}"))).collect());
        assert_eq!(n.queue_len(), 3);
        assert_eq!(n.dropped(), 2);
        n.send(vec![alert("b")]);
        assert_eq!(n.dropped(), 3);
        let q = n.queue.lock();
        assert_eq!(q.front().unwrap().labels.get("alertname"), Some("a3"));
        assert_eq!(q.back().unwrap().labels.get("alertname"), Some("b"));
    }

    #[test]
    fn external_labels_do_not_override() {
        let n = Notifier::new(10);
        let cfg = vigil_config::load_str(
            "global:\n  external_labels:\n    cluster: eu\n    alertname: nope\n",
            std::path::Path::new("p.yml"),
        )
        .unwrap()
        .config;
        n.apply_config(&cfg).unwrap();
        n.send(vec![alert("x")]);
        let q = n.queue.lock();
        assert_eq!(q[0].labels.get("cluster"), Some("eu"));
        assert_eq!(q[0].labels.get("alertname"), Some("x"));
    }

    #[test]
    fn urls_from_static_and_relabel() {
        let cfg = vigil_config::load_str(
            "alerting:\n  alertmanagers:\n  - path_prefix: /am\n    static_configs:\n    - targets: ['a:9093', 'b:9093']\n    relabel_configs:\n    - source_labels: [__address__]\n      regex: 'b:.*'\n      action: drop\n",
            std::path::Path::new("p.yml"),
        )
        .unwrap()
        .config;
        assert_eq!(
            alertmanager_urls(&cfg.alerting.alertmanagers[0]),
            vec!["http://a:9093/am/api/v2/alerts".to_string()]
        );
    }

    #[test]
    fn discovered_groups_replace_static_targets_and_list_dropped() {
        let cfg = vigil_config::load_str(
            "alerting:\n  alertmanagers:\n  - static_configs:\n    - targets: ['s:9093']\n    relabel_configs:\n    - source_labels: [__meta_x]\n      regex: drop\n      action: drop\n",
            std::path::Path::new("p.yml"),
        )
        .unwrap()
        .config;
        let n = Notifier::new(10);
        n.apply_config(&cfg).unwrap();
        assert_eq!(n.alertmanagers(), ["http://s:9093/api/v2/alerts"]);
        let group = |t: &str, meta: &str, extra: &[(&str, &str)]| vigil_config::TargetGroup {
            targets: vec![t.to_string()],
            labels: [("__meta_x", meta)]
                .iter()
                .chain(extra)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        n.set_discovered(BTreeMap::from([(
            "config-0".to_string(),
            vec![
                group("a:1", "keep", &[("__scheme__", "https")]),
                group("b:2", "drop", &[]),
                group("a:1", "keep", &[("__scheme__", "https")]),
            ],
        )]));
        let (active, dropped) = n.active_and_dropped();
        assert_eq!(active, ["https://a:1/api/v2/alerts"]);
        assert_eq!(dropped, ["http://b:2/api/v2/alerts"]);
    }

    #[test]
    fn payload_is_alertmanager_v2() {
        let mut a = alert("x");
        a.starts_at = 1_700_000_000_123;
        a.ends_at = Some(1_700_000_060_000);
        a.generator_url = "http://h/graph".into();
        let v: serde_json::Value = serde_json::from_str(&payload(&[a])).unwrap();
        assert_eq!(v[0]["labels"]["alertname"], "x");
        assert_eq!(v[0]["startsAt"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v[0]["endsAt"], "2023-11-14T22:14:20.000Z");
        assert_eq!(v[0]["generatorURL"], "http://h/graph");
    }
}
