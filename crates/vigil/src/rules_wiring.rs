//! Wires the rule manager and the Alertmanager notifier: both take the initial config (a bad
//! rule file stops the start, as in Prometheus), register with the reloader so every reload
//! re-reads the rule files (a bad one refuses the whole reload), and run for the life of
//! the process.

use crate::cli::Cli;
use crate::reload::Reloader;
use anyhow::{Context, Result};
use std::sync::Arc;
use vigil_rules::{ManagerOptions, Notifier, RuleManager};
use vigil_tsdb::Tsdb;

pub struct Rules {
    pub manager: Arc<RuleManager>,
    pub notifier: Arc<Notifier>,
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
    tokio::spawn(notifier.clone().run());
    {
        let n = notifier.clone();
        let m = manager.clone();
        reloader.add_hook(Box::new(move |cfg| {
            n.apply_config(cfg).map_err(|e| e.to_string())?;
            m.apply(cfg)
                .map_err(|e| format!("error loading rules: {e}"))
        }));
    }
    Ok(Rules { manager, notifier })
}
