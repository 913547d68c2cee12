//! Config loading and reloading (SIGHUP, `POST /-/reload`): a bad new config is refused,
//! logged and counted, and the old one keeps running.

use anyhow::{Context, Result};
use parking_lot::RwLock;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use vigil_api::notifications::{CONFIGURATION_UNSUCCESSFUL, Notifications};
use vigil_config::Config;
use vigil_scrape::ScrapeManager;

/// Loads the config file, or the embedded default when none was given; logs its warnings.
pub fn load_config(path: Option<&Path>) -> Result<Config> {
    let loaded = match path {
        Some(p) => vigil_config::load_file(p).with_context(|| {
            format!(
                "couldn't load configuration (--config.file={})",
                p.display()
            )
        })?,
        None => vigil_config::load_str(
            vigil_config::DEFAULT_CONFIG,
            Path::new("<embedded default config>"),
        )
        .context("the embedded default config is invalid (a bug in vigil)")?,
    };
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    Ok(loaded.config)
}

pub struct Reloader {
    path: Option<PathBuf>,
    scrape: Arc<ScrapeManager>,
    current: RwLock<Arc<Config>>,
    last_ok: AtomicBool,
    last_success_s: AtomicU64,
    /// Serialises reloads from the signal handler and the HTTP endpoint.
    busy: parking_lot::Mutex<()>,
    /// Other parts that take the config (rules, notifier); run before scrape is applied, and
    /// any error refuses the whole reload.
    hooks: RwLock<Vec<ApplyHook>>,
    /// "Configuration reload has failed." while the last reload failed, for the API.
    notifications: Arc<Notifications>,
}

/// Applies a new config to one part; the error text refuses the reload.
pub type ApplyHook = Box<dyn Fn(&Config) -> Result<(), String> + Send + Sync>;

impl Reloader {
    /// Applies the initial config.
    pub fn start(path: Option<PathBuf>, scrape: Arc<ScrapeManager>, config: Config) -> Self {
        scrape.apply(&config);
        Reloader {
            path,
            scrape,
            current: RwLock::new(Arc::new(config)),
            last_ok: AtomicBool::new(true),
            last_success_s: AtomicU64::new(now_s()),
            busy: parking_lot::Mutex::new(()),
            hooks: RwLock::new(Vec::new()),
            notifications: Arc::default(),
        }
    }

    /// Registers a part to apply every reloaded config to (not the current one).
    pub fn add_hook(&self, hook: ApplyHook) {
        self.hooks.write().push(hook);
    }

    /// The server notifications this reloader raises and clears.
    pub fn notifications(&self) -> Arc<Notifications> {
        self.notifications.clone()
    }

    pub fn current(&self) -> Arc<Config> {
        self.current.read().clone()
    }

    /// Re-reads the config file and applies it; on error the old config stays.
    pub fn reload(&self) -> Result<(), String> {
        let _guard = self.busy.lock();
        tracing::info!("Loading configuration file");
        match load_config(self.path.as_deref()) {
            Ok(cfg) => {
                for hook in self.hooks.read().iter() {
                    if let Err(e) = hook(&cfg) {
                        self.last_ok.store(false, Ordering::Relaxed);
                        self.notifications.add(CONFIGURATION_UNSUCCESSFUL);
                        tracing::error!("Error reloading config, keeping the previous one: {e}");
                        return Err(e);
                    }
                }
                self.scrape.apply(&cfg);
                *self.current.write() = Arc::new(cfg);
                self.last_ok.store(true, Ordering::Relaxed);
                self.notifications.delete(CONFIGURATION_UNSUCCESSFUL);
                self.last_success_s.store(now_s(), Ordering::Relaxed);
                tracing::info!("Completed loading of configuration file");
                Ok(())
            }
            Err(e) => {
                self.last_ok.store(false, Ordering::Relaxed);
                self.notifications.add(CONFIGURATION_UNSUCCESSFUL);
                tracing::error!("Error reloading config, keeping the previous one: {e:#}");
                Err(format!("{e:#}"))
            }
        }
    }

    /// Did the last reload succeed, and when (unix seconds) was the last success.
    pub fn status(&self) -> (bool, i64) {
        (
            self.last_ok.load(Ordering::Relaxed),
            i64::try_from(self.last_success_s.load(Ordering::Relaxed)).unwrap_or(0),
        )
    }

    /// `prometheus_config_last_reload_*` in the text format.
    pub fn render_metrics(&self) -> String {
        format!(
            "# HELP prometheus_config_last_reload_successful Whether the last configuration reload attempt was successful.\n\
             # TYPE prometheus_config_last_reload_successful gauge\n\
             prometheus_config_last_reload_successful {}\n\
             # HELP prometheus_config_last_reload_success_timestamp_seconds Timestamp of the last successful configuration reload.\n\
             # TYPE prometheus_config_last_reload_success_timestamp_seconds gauge\n\
             prometheus_config_last_reload_success_timestamp_seconds {}\n",
            u8::from(self.last_ok.load(Ordering::Relaxed)),
            self.last_success_s.load(Ordering::Relaxed)
        )
    }
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
