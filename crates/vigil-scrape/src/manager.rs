//! The scrape manager: one loop per target, started, kept or stopped on each config load.

use crate::scrape_loop::{LoopSettings, ScrapeLoop};
use crate::target::{Target, targets_from_config};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
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
}

struct Running {
    stop: watch::Sender<bool>,
    status: Arc<Mutex<TargetStatus>>,
    /// The scrape config the loop was started with; a change restarts the loop.
    config_fingerprint: String,
}

/// Owns all scrape loops. `apply` diffs the targets of a new config against the running ones.
pub struct ScrapeManager {
    db: Arc<dyn Appendable>,
    running: Mutex<HashMap<(String, Target), Running>>,
    user_agent: String,
}

impl ScrapeManager {
    pub fn new(db: Arc<dyn Appendable>, user_agent: impl Into<String>) -> Self {
        ScrapeManager {
            db,
            running: Mutex::new(HashMap::new()),
            user_agent: user_agent.into(),
        }
    }

    /// Starts loops for new targets, stops loops for targets that are gone (they write stale
    /// markers), and restarts loops whose scrape config changed. Must run inside a tokio runtime.
    pub fn apply(&self, config: &Config) {
        let mut wanted: HashMap<(String, Target), (&ScrapeConfig, String)> = HashMap::new();
        for sc in &config.scrape_configs {
            let fingerprint = format!("{sc:?}");
            let mut groups = sc.static_configs.clone();
            for fsd in &sc.file_sd_configs {
                for file in &fsd.files {
                    match vigil_config::read_file_sd(std::path::Path::new(file)) {
                        Ok(g) => groups.extend(g),
                        Err(e) => {
                            tracing::warn!(job = %sc.job_name, file = %file, error = %e, "cannot read file_sd file; its targets are skipped")
                        }
                    }
                }
            }
            for t in targets_from_config(sc, &groups) {
                wanted.insert((sc.job_name.clone(), t), (sc, fingerprint.clone()));
            }
        }
        let mut running = self.running.lock();
        running.retain(|key, r| {
            let keep = wanted
                .get(key)
                .is_some_and(|(_, f)| *f == r.config_fingerprint);
            if !keep {
                let _ = r.stop.send(true);
            }
            keep
        });
        for (key, (sc, fingerprint)) in wanted {
            if running.contains_key(&key) {
                continue;
            }
            let settings = match self.settings(sc) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(job = %sc.job_name, error = %e, "cannot build HTTP client for scrape job; its targets are not scraped");
                    continue;
                }
            };
            let (job, target) = key.clone();
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
            }));
            let (tx, rx) = watch::channel(false);
            let sl = ScrapeLoop::new(target, settings, Arc::clone(&self.db), Arc::clone(&status));
            tokio::spawn(sl.run(rx));
            running.insert(
                key,
                Running {
                    stop: tx,
                    status,
                    config_fingerprint: fingerprint,
                },
            );
        }
    }

    /// Stops every loop; each marks its series stale.
    pub fn stop_all(&self) {
        for (_, r) in self.running.lock().drain() {
            let _ = r.stop.send(true);
        }
    }

    /// Current status of every target, sorted by job and URL.
    pub fn statuses(&self) -> Vec<TargetStatus> {
        let mut v: Vec<TargetStatus> = self
            .running
            .lock()
            .values()
            .map(|r| r.status.lock().clone())
            .collect();
        v.sort_by(|a, b| (&a.job, &a.url).cmp(&(&b.job, &b.url)));
        v
    }

    fn settings(&self, sc: &ScrapeConfig) -> Result<LoopSettings, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(&self.user_agent)
            .pool_max_idle_per_host(1)
            .build()?;
        Ok(LoopSettings {
            interval: sc.scrape_interval.to_std(),
            timeout: sc.scrape_timeout.to_std(),
            honor_labels: sc.honor_labels,
            honor_timestamps: sc.honor_timestamps,
            sample_limit: sc.sample_limit,
            label_limit: sc.label_limit,
            body_size_limit: sc.body_size_limit,
            metric_relabel: Arc::new(sc.metric_relabel_configs.clone()),
            client,
        })
    }
}
