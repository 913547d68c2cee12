//! Wires the rule manager and the Alertmanager notifier: both take the initial config (a bad
//! rule file stops the start, as in Prometheus), register with the reloader so every reload
//! re-reads the rule files (a bad one refuses the whole reload), and run for the life of
//! the process. The Alertmanagers of `alerting.alertmanagers` are found by a discovery
//! manager of their own (`name="notify"`, the scrape discovery machinery: static, file, HTTP,
//! DNS, Consul and Kubernetes SD), which hands the notifier every change.

use crate::cli::Cli;
use crate::reload::Reloader;
use anyhow::{Context, Result};
use std::sync::Arc;
use vigil_rules::{ManagerOptions, Notifier, RuleManager};
use vigil_scrape::DiscoveryManager;
use vigil_tsdb::Tsdb;

pub struct Rules {
    pub manager: Arc<RuleManager>,
    pub notifier: Arc<Notifier>,
    /// Discovery of the Alertmanagers.
    pub notify_sd: Arc<DiscoveryManager>,
}

impl Rules {
    /// Rule and notifier self-metrics in the text format.
    pub fn render_metrics(&self) -> String {
        self.manager.render_metrics() + &self.notifier.render_metrics()
    }
}

pub fn start(
    cli: &Cli,
    db: Arc<Tsdb>,
    reloader: &Reloader,
    external_url: &str,
    engine: vigil_promql::EngineOptions,
) -> Result<Rules> {
    let config = reloader.current();
    let notifier = Notifier::new(cli.notification_queue_capacity);
    notifier
        .apply_config(&config)
        .context("invalid alerting configuration")?;
    let manager = RuleManager::new(
        db.clone(),
        db,
        Some(notifier.clone()),
        ManagerOptions {
            outage_tolerance_ms: cli.for_outage_tolerance.as_millis() as i64,
            for_grace_period_ms: cli.for_grace_period.as_millis() as i64,
            resend_delay_ms: cli.resend_delay.as_millis() as i64,
            external_url: external_url.to_string(),
            engine,
        },
    );
    manager
        .apply(&config)
        .context("error loading rules, previous rule set restored")?;
    let notify_sd = DiscoveryManager::new("notify", format!("vigil/{}", crate::cli::VERSION));
    {
        let n = notifier.clone();
        notify_sd.subscribe(Box::new(move |groups| n.set_discovered(groups)));
    }
    notify_sd.apply(vigil_scrape::alertmanager_discovery_configs(&config));
    tokio::spawn(notify_sd.clone().run());
    tokio::spawn(notifier.clone().run());
    {
        let n = notifier.clone();
        let m = manager.clone();
        let sd = notify_sd.clone();
        reloader.add_hook(Box::new(move |cfg| {
            n.apply_config(cfg).map_err(|e| e.to_string())?;
            m.apply(cfg)
                .map_err(|e| format!("error loading rules: {e}"))?;
            sd.apply(vigil_scrape::alertmanager_discovery_configs(cfg));
            Ok(())
        }));
    }
    Ok(Rules {
        manager,
        notifier,
        notify_sd,
    })
}
