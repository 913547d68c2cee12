//! The scrape manager: one pool per scrape config, one loop per target.
//!
//! `apply` takes a new config: pools whose scrape config is unchanged keep their loops (and
//! so their scrape caches); changed or removed pools stop theirs, which writes stale markers.
//! `run_discovery` keeps file and HTTP discovery fresh and re-syncs targets when they change.

use crate::discovery::{DiscoveryCache, fetch_http_sd};
use crate::scrape_loop::{LoopSettings, ScrapeLoop, pick_schema};
use crate::target::{Target, targets_from_groups};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::watch;
use vigil_config::{Config, ScrapeConfig};
use vigil_model::{Appendable, Labels};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetHealth {
    Unknown,
    Up,
    Down,
}

impl TargetHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetHealth::Unknown => "unknown",
            TargetHealth::Up => "up",
            TargetHealth::Down => "down",
        }
    }
}

/// What `/api/v1/targets` reports for a target.
#[derive(Debug, Clone)]
pub struct TargetStatus {
    pub job: String,
    pub url: String,
    pub labels: Labels,
    pub discovered: Labels,
    pub health: TargetHealth,
    pub last_error: String,
    pub last_scrape_ms: i64,
    pub last_scrape_duration: f64,
    pub interval: String,
    pub timeout: String,
    /// Family name → metadata, from the last scrape that had any.
    pub metadata: Arc<BTreeMap<String, vigil_model::MetricMetadata>>,
}

/// A target that relabeling dropped, for `/api/v1/targets?state=dropped`.
#[derive(Debug, Clone)]
pub struct DroppedTarget {
    pub job: String,
    pub discovered: Labels,
}

struct Running {
    stop: watch::Sender<bool>,
    status: Arc<Mutex<TargetStatus>>,
    task: tokio::task::JoinHandle<()>,
}

struct Pool {
    config: ScrapeConfig,
    fingerprint: String,
    settings: LoopSettings,
    loops: HashMap<Target, Running>,
    dropped: Vec<Labels>,
    /// Targets discovered at the last sync, before relabeling.
    discovered: usize,
}

#[derive(Default)]
struct Inner {
    pools: BTreeMap<String, Pool>,
    sd: DiscoveryCache,
}

/// Owns all scrape pools and loops.
pub struct ScrapeManager {
    db: Arc<dyn Appendable>,
    user_agent: String,
    /// `--scrape.timestamp-tolerance`, or `None` under `--no-scrape.adjust-timestamps`.
    align_tolerance: Option<std::time::Duration>,
    inner: Mutex<Inner>,
    sd_counters: crate::sd_manager::SdCounters,
}

impl ScrapeManager {
    pub fn new(db: Arc<dyn Appendable>, user_agent: impl Into<String>) -> Self {
        ScrapeManager {
            db,
            user_agent: user_agent.into(),
            align_tolerance: Some(DEFAULT_TIMESTAMP_TOLERANCE),
            inner: Mutex::new(Inner::default()),
            sd_counters: Default::default(),
        }
    }

    /// Sets how far a scrape may start from its schedule and still get the scheduled
    /// timestamp (`--scrape.timestamp-tolerance`); `None` turns alignment off. Applies to
    /// loops started afterwards.
    pub fn with_timestamp_tolerance(mut self, tolerance: Option<std::time::Duration>) -> Self {
        self.align_tolerance = tolerance;
        self
    }

    /// Applies a (new) config. Must run inside a tokio runtime.
    pub fn apply(&self, config: &Config) {
        let mut inner = self.inner.lock();
        let mut next: BTreeMap<String, Pool> = BTreeMap::new();
        for sc in &config.scrape_configs {
            let fingerprint = format!("{sc:?}");
            if let Some(p) = inner
                .pools
                .remove(&sc.job_name)
                .filter(|p| p.fingerprint == fingerprint)
            {
                next.insert(sc.job_name.clone(), p);
                continue;
            }
            match self.settings(sc) {
                Ok(settings) => {
                    let pool = Pool {
                        config: sc.clone(),
                        fingerprint,
                        settings,
                        loops: HashMap::new(),
                        dropped: Vec::new(),
                        discovered: 0,
                    };
                    next.insert(sc.job_name.clone(), pool);
                }
                Err(e) => {
                    tracing::error!(job = %sc.job_name, error = %e, "Error creating HTTP client; the scrape pool is skipped")
                }
            }
        }
        // Pools that are gone or changed stop their loops (writing stale markers).
        for (_, p) in std::mem::take(&mut inner.pools) {
            for r in p.loops.values() {
                let _ = r.stop.send(true);
            }
        }
        inner.pools = next;
        let configs: Vec<ScrapeConfig> = inner.pools.values().map(|p| p.config.clone()).collect();
        inner.sd.refresh_files(&configs);
        inner.sd.consul.sync(&configs, &self.user_agent);
        inner.sd.kubernetes.sync(&configs, &self.user_agent);
        self.sync(&mut inner);
    }

    /// Keeps file and HTTP discovery fresh; runs until the process ends.
    pub async fn run_discovery(self: Arc<Self>) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let (mut changed, due) = {
                let mut inner = self.inner.lock();
                let configs: Vec<ScrapeConfig> =
                    inner.pools.values().map(|p| p.config.clone()).collect();
                // DNS lookups run beside this loop; each re-syncs when its name's targets change.
                for key in inner.sd.dns.due(&configs) {
                    let this = Arc::clone(&self);
                    tokio::spawn(async move {
                        let result = crate::dns_sd::refresh(&key).await;
                        let mut inner = this.inner.lock();
                        if inner.sd.dns.store(&key, result) {
                            this.sd_counters.received.fetch_add(1, Ordering::Relaxed);
                            this.sync(&mut inner);
                        }
                    });
                }
                let changed = inner.sd.refresh_files(&configs)
                    | inner.sd.consul.take_changed()
                    | inner.sd.kubernetes.take_changed();
                let due: Vec<(String, reqwest::Client)> = inner
                    .sd
                    .http_due(&configs)
                    .into_iter()
                    .filter_map(|(job, url)| {
                        inner
                            .pools
                            .get(&job)
                            .map(|p| (url, p.settings.client.clone()))
                    })
                    .collect();
                (changed, due)
            };
            for (url, client) in due {
                let result = fetch_http_sd(&client, &url).await;
                changed |= self.inner.lock().sd.store_http(&url, result);
            }
            if changed {
                self.sd_counters.received.fetch_add(1, Ordering::Relaxed);
                let mut inner = self.inner.lock();
                self.sync(&mut inner);
            }
        }
    }

    /// Starts loops for new targets and stops loops of targets that are gone.
    fn sync(&self, inner: &mut Inner) {
        let Inner { pools, sd } = inner;
        self.sd_counters.updates.fetch_add(1, Ordering::Relaxed);
        for (job, pool) in pools.iter_mut() {
            let groups = sd.groups(&pool.config);
            pool.discovered = groups.iter().map(|g| g.group.targets.len()).sum();
            let (targets, dropped) = targets_from_groups(&pool.config, &groups);
            let keep = pool.config.keep_dropped_targets as usize;
            pool.dropped = if keep > 0 {
                dropped.into_iter().take(keep).collect()
            } else {
                dropped
            };
            let limit = pool.config.target_limit as usize;
            if limit > 0 && targets.len() > limit {
                tracing::error!(job = %job, targets = targets.len(), limit, "target_limit exceeded; no targets of this pool are scraped");
            }
            let wanted: Vec<Target> = if limit > 0 && targets.len() > limit {
                Vec::new()
            } else {
                targets
            };
            // A set, not `Vec::contains`: with thousands of discovered targets the scan per
            // running loop made every discovery update quadratic.
            let wanted_set: std::collections::HashSet<&Target> = wanted.iter().collect();
            pool.loops.retain(|t, r| {
                let keep = wanted_set.contains(t);
                if !keep {
                    let _ = r.stop.send(true);
                }
                keep
            });
            for target in wanted {
                if let Some(running) = pool.loops.get(&target) {
                    // The same target (URL and labels) with other discovered labels: the loop
                    // goes on; the API shows what was discovered last.
                    let mut st = running.status.lock();
                    if st.discovered != target.discovered {
                        st.discovered = target.discovered.clone();
                    }
                    continue;
                }
                let sc = &pool.config;
                let status = Arc::new(Mutex::new(TargetStatus {
                    job: job.clone(),
                    url: target.url.clone(),
                    labels: target.labels.clone(),
                    discovered: target.discovered.clone(),
                    health: TargetHealth::Unknown,
                    last_error: String::new(),
                    last_scrape_ms: 0,
                    last_scrape_duration: 0.0,
                    interval: sc.scrape_interval.to_string(),
                    timeout: sc.scrape_timeout.to_string(),
                    metadata: Arc::default(),
                }));
                let (tx, rx) = watch::channel(false);
                let sl = ScrapeLoop::new(
                    target.clone(),
                    pool.settings.clone(),
                    Arc::clone(&self.db),
                    Arc::clone(&status),
                );
                let task = tokio::spawn(sl.run(rx));
                pool.loops.insert(
                    target,
                    Running {
                        stop: tx,
                        status,
                        task,
                    },
                );
            }
        }
    }

    /// Stops every loop; each marks its series stale.
    /// Stops every loop and waits (at most 10 s) until each has written its stale markers,
    /// so that storage closed afterwards holds them (and a shutdown snapshot is complete).
    pub async fn stop_all(&self) {
        let tasks: Vec<tokio::task::JoinHandle<()>> = {
            let mut inner = self.inner.lock();
            let mut tasks = Vec::new();
            for p in inner.pools.values_mut() {
                for (_, r) in p.loops.drain() {
                    let _ = r.stop.send(true);
                    tasks.push(r.task);
                }
            }
            tasks
        };
        let all = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(std::time::Duration::from_secs(10), all)
            .await
            .is_err()
        {
            tracing::warn!("Some scrape loops did not stop within 10s; closing storage anyway");
        }
    }

    /// Current status of every target, sorted by job and URL.
    pub fn statuses(&self) -> Vec<TargetStatus> {
        let inner = self.inner.lock();
        let mut v: Vec<TargetStatus> = inner
            .pools
            .values()
            .flat_map(|p| p.loops.values().map(|r| r.status.lock().clone()))
            .collect();
        v.sort_by(|a, b| (&a.job, &a.url).cmp(&(&b.job, &b.url)));
        v
    }

    /// Targets that relabeling dropped, by pool.
    pub fn dropped(&self) -> Vec<DroppedTarget> {
        let inner = self.inner.lock();
        inner
            .pools
            .iter()
            .flat_map(|(job, p)| {
                p.dropped.iter().map(|l| DroppedTarget {
                    job: job.clone(),
                    discovered: l.clone(),
                })
            })
            .collect()
    }

    /// The scrape discovery metrics (`name="scrape"`): targets per job before relabeling.
    pub fn sd_snapshot(&self) -> crate::sd_manager::SdSnapshot {
        let inner = self.inner.lock();
        crate::sd_manager::SdSnapshot {
            name: "scrape",
            discovered: inner
                .pools
                .iter()
                .map(|(job, p)| (job.clone(), p.discovered))
                .collect(),
            received_updates: self.sd_counters.received.load(Ordering::Relaxed),
            updates: self.sd_counters.updates.load(Ordering::Relaxed),
        }
    }

    /// Names of all scrape pools.
    pub fn pools(&self) -> Vec<String> {
        self.inner.lock().pools.keys().cloned().collect()
    }

    fn settings(&self, sc: &ScrapeConfig) -> Result<LoopSettings, vigil_http::ClientError> {
        let mut s = loop_settings(sc, &self.user_agent)?;
        s.align_tolerance = self.align_tolerance;
        Ok(s)
    }
}

/// Prometheus' default `--scrape.timestamp-tolerance`.
pub const DEFAULT_TIMESTAMP_TOLERANCE: std::time::Duration = std::time::Duration::from_millis(2);

/// What a scrape config means for its loops.
fn loop_settings(
    sc: &ScrapeConfig,
    user_agent: &str,
) -> Result<LoopSettings, vigil_http::ClientError> {
    let client = vigil_http::build(&sc.http_client_config(), user_agent)?;
    Ok(LoopSettings {
        interval: sc.scrape_interval.to_std(),
        align_tolerance: Some(DEFAULT_TIMESTAMP_TOLERANCE),
        timeout: sc.scrape_timeout.to_std(),
        honor_labels: sc.honor_labels,
        honor_timestamps: sc.honor_timestamps,
        sample_limit: sc.sample_limit,
        label_limit: sc.label_limit,
        label_name_length_limit: sc.label_name_length_limit,
        label_value_length_limit: sc.label_value_length_limit,
        body_size_limit: sc.body_size_limit,
        metric_relabel: Arc::new(sc.metric_relabel_configs.clone()),
        client,
        accept: vigil_exposition::accept_header(
            sc.scrape_protocols
                .as_deref()
                .unwrap_or(&vigil_config::default_scrape_protocols()),
            escaping_scheme(sc),
        ),
        fallback: sc
            .fallback_scrape_protocol
            .as_deref()
            .and_then(vigil_exposition::protocol_format),
        native_histograms: sc.native_histograms_enabled(),
        keep_classic: sc.always_scrape_classic_histograms.unwrap_or(false),
        convert_nhcb: sc.convert_classic_histograms_to_nhcb.unwrap_or(false),
        bucket_limit: sc.native_histogram_bucket_limit,
        max_schema: pick_schema(sc.native_histogram_min_bucket_factor),
        legacy_names: sc.metric_name_validation_scheme.as_deref() == Some("legacy"),
    })
}

/// The `escaping` parameter of the `Accept` header: `metric_name_escaping_scheme`, else
/// `allow-utf-8` under UTF-8 name validation (the default) and `underscores` under legacy
/// validation, as Prometheus picks it.
fn escaping_scheme(sc: &ScrapeConfig) -> &str {
    match sc.metric_name_escaping_scheme.as_deref() {
        Some(s) if !s.is_empty() => s,
        _ if sc.metric_name_validation_scheme.as_deref() == Some("legacy") => "underscores",
        _ => "allow-utf-8",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_exposition::Format;

    fn job(yaml: &str) -> ScrapeConfig {
        vigil_config::load_str(yaml, std::path::Path::new("/tmp/t.yml"))
            .unwrap()
            .config
            .scrape_configs
            .remove(0)
    }

    #[test]
    fn accept_header_and_histogram_switches_follow_the_config() {
        let s = loop_settings(&job("scrape_configs:\n  - job_name: a\n"), "t").unwrap();
        assert_eq!(s.accept, vigil_exposition::ACCEPT_HEADER);
        assert!(!s.native_histograms && !s.keep_classic && !s.convert_nhcb);
        assert_eq!((s.fallback, s.bucket_limit, s.max_schema), (None, 0, 8));
        let s = loop_settings(
            &job(
                "global:\n  metric_name_validation_scheme: legacy\nscrape_configs:\n  - job_name: a\n    scrape_native_histograms: true\n    always_scrape_classic_histograms: true\n    convert_classic_histograms_to_nhcb: true\n    native_histogram_bucket_limit: 160\n    native_histogram_min_bucket_factor: 1.1\n    fallback_scrape_protocol: PrometheusText0.0.4\n",
            ),
            "t",
        )
        .unwrap();
        assert!(s.accept.starts_with(
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.5,"
        ), "{}", s.accept);
        assert!(s.accept.ends_with(",*/*;q=0.1"));
        assert!(s.native_histograms && s.keep_classic && s.convert_nhcb);
        assert_eq!(s.fallback, Some(Format::PrometheusText));
        assert_eq!((s.bucket_limit, s.max_schema), (160, 2));
        let s = loop_settings(
            &job("scrape_configs:\n  - job_name: a\n    scrape_protocols: [PrometheusText0.0.4]\n    metric_name_escaping_scheme: dots\n"),
            "t",
        )
        .unwrap();
        assert_eq!(s.accept, "text/plain;version=0.0.4;q=0.6,*/*;q=0.5");
    }
}
