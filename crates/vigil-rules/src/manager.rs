//! The live rule manager: one task per group, reload with state carried over, `for`-state
//! restore after a restart, and the rule self-metrics.
//!
//! Each group ticks on its own interval, at a fixed offset within it derived from the
//! group's file and name (as Prometheus spreads groups), and evaluates on a blocking
//! thread: PromQL is CPU work and must not stall the async workers that serve scrapes and
//! the API. A reload first loads and validates every rule file; only if all are valid are
//! the old groups stopped and replaced, each new group taking over the state (active
//! alerts, series written) of the group with the same file and name, so a reload neither
//! resets `for` clocks nor re-sends stale markers. Groups that disappear get StaleNaNs for
//! everything they wrote.

use crate::alerting::Alert;
use crate::error::RulesError;
use crate::group::{self, EvalCtx, Group, Outgoing};
use crate::notifier::{Notifier, NotifyAlert};
use crate::rulefmt::NameValidation;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use vigil_config::Config;
use vigil_model::{Appendable, Queryable};
use vigil_promql::{Engine, EngineOptions};

/// Flags of the rule manager (Prometheus' names).
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// `--rules.alert.for-outage-tolerance` (1h).
    pub outage_tolerance_ms: i64,
    /// `--rules.alert.for-grace-period` (10m).
    pub for_grace_period_ms: i64,
    /// `--rules.alert.resend-delay` (1m).
    pub resend_delay_ms: i64,
    /// `--web.external-url`, for `generatorURL` and `$externalURL`.
    pub external_url: String,
    /// Engine options (lookback delta, limits); the subquery step follows the group interval.
    pub engine: EngineOptions,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            outage_tolerance_ms: 3_600_000,
            for_grace_period_ms: 600_000,
            resend_delay_ms: 60_000,
            external_url: String::new(),
            engine: EngineOptions::default(),
        }
    }
}

struct Running {
    group: Arc<Mutex<Group>>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    db: Arc<dyn Queryable>,
    app: Arc<dyn Appendable>,
    notifier: Option<Arc<Notifier>>,
    opts: ManagerOptions,
    engine: Engine,
    settings: Mutex<Settings>,
}

#[derive(Clone, Default)]
struct Settings {
    external_labels: BTreeMap<String, String>,
    default_query_offset_ms: i64,
}

/// Runs the rule groups of the current config.
pub struct RuleManager {
    shared: Arc<Shared>,
    running: Mutex<Vec<Running>>,
    /// Whether the first config was applied: only groups loaded at start restore `for`
    /// state; alerting rules loaded by a reload write `ALERTS` at once.
    started: Mutex<bool>,
    runtime: tokio::runtime::Handle,
    /// Serialises `apply` calls.
    busy: Mutex<()>,
}

impl RuleManager {
    /// A manager with no groups. Must be called inside a tokio runtime.
    pub fn new(
        db: Arc<dyn Queryable>,
        app: Arc<dyn Appendable>,
        notifier: Option<Arc<Notifier>>,
        opts: ManagerOptions,
    ) -> Arc<Self> {
        let engine = Engine::new(opts.engine.clone());
        Arc::new(RuleManager {
            shared: Arc::new(Shared {
                db,
                app,
                notifier,
                opts,
                engine,
                settings: Mutex::new(Settings::default()),
            }),
            running: Mutex::new(Vec::new()),
            started: Mutex::new(false),
            runtime: tokio::runtime::Handle::current(),
            busy: Mutex::new(()),
        })
    }

    /// Loads the rule files of `cfg` and replaces the running groups. On error (a bad rule
    /// file) the running groups are left untouched.
    pub fn apply(&self, cfg: &Config) -> Result<(), RulesError> {
        let _guard = self.busy.lock();
        let files = crate::rulefmt::expand_globs(&cfg.rule_files)?;
        let names = NameValidation::of_config(cfg);
        let mut groups = group::load_groups(
            &files,
            cfg.global.evaluation_interval.as_millis() as i64,
            names,
        )?;
        *self.shared.settings.lock() = Settings {
            external_labels: cfg.global.external_labels.clone(),
            default_query_offset_ms: cfg.global.rule_query_offset.as_millis() as i64,
        };
        let first = {
            let mut s = self.started.lock();
            let first = !*s;
            *s = true;
            first
        };
        let mut old: Vec<Running> = std::mem::take(&mut *self.running.lock());
        for r in &old {
            r.task.abort();
        }
        for g in &mut groups {
            g.set_should_restore(first);
            if let Some(pos) = old.iter().position(|r| {
                let o = r.group.lock();
                o.file == g.file && o.name == g.name
            }) {
                let prev = old.swap_remove(pos);
                let mut o = prev.group.lock();
                g.copy_state(&mut o);
            }
        }
        // Groups that went away: end their series.
        let now = vigil_model::now_millis();
        for r in old {
            r.group.lock().mark_stale(self.shared.app.as_ref(), now);
        }
        let mut running = self.running.lock();
        for g in groups {
            tracing::debug!(group = %g.name, file = %g.file, rules = g.rules.len(), "Starting rule group");
            let group = Arc::new(Mutex::new(g));
            let task = self
                .runtime
                .spawn(run_group(self.shared.clone(), group.clone()));
            running.push(Running { group, task });
        }
        tracing::info!(
            groups = running.len(),
            files = files.len(),
            "Rule manager applied rule files"
        );
        Ok(())
    }

    /// Stops every group.
    pub fn stop(&self) {
        for r in self.running.lock().drain(..) {
            r.task.abort();
        }
    }

    /// A copy of every group's state, in file then config order (for the API).
    pub fn groups(&self) -> Vec<Group> {
        self.running
            .lock()
            .iter()
            .map(|r| r.group.lock().clone())
            .collect()
    }

    /// Pending and firing alerts of every alerting rule.
    pub fn alerts(&self) -> Vec<Alert> {
        let mut out = Vec::new();
        for g in self.groups() {
            for r in g.rules {
                if let crate::group::RuleKind::Alerting(a) = r.kind {
                    out.extend(
                        a.alerts()
                            .into_iter()
                            .filter(|a| a.state != crate::AlertState::Inactive)
                            .cloned(),
                    );
                }
            }
        }
        out
    }

    /// Evaluates one group now (tests, and the scheduler).
    pub fn eval_group(&self, group: &Mutex<Group>, ts: i64) {
        eval_once(&self.shared, group, ts);
    }

    /// Prometheus' rule-group self-metrics in the text format.
    pub fn render_metrics(&self) -> String {
        let groups = self.groups();
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, f: &dyn Fn(&Group) -> String| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for g in &groups {
                out.push_str(&format!("{name}{{rule_group={:?}}} {}\n", g.key(), f(g)));
            }
        };
        metric(
            "prometheus_rule_evaluations_total",
            "counter",
            "The total number of rule evaluations.",
            &|g| g.evaluations.to_string(),
        );
        metric(
            "prometheus_rule_evaluation_failures_total",
            "counter",
            "The total number of rule evaluation failures.",
            &|g| g.failures.to_string(),
        );
        metric(
            "prometheus_rule_group_iterations_total",
            "counter",
            "The total number of scheduled rule group evaluations, whether executed or missed.",
            &|g| (g.iterations + g.missed).to_string(),
        );
        metric(
            "prometheus_rule_group_iterations_missed_total",
            "counter",
            "The total number of rule group evaluations missed due to slow rule group evaluation.",
            &|g| g.missed.to_string(),
        );
        metric(
            "prometheus_rule_group_interval_seconds",
            "gauge",
            "The interval of a rule group.",
            &|g| (g.interval_ms as f64 / 1000.0).to_string(),
        );
        metric(
            "prometheus_rule_group_last_duration_seconds",
            "gauge",
            "The duration of the last rule group evaluation.",
            &|g| g.last_duration_s.to_string(),
        );
        metric(
            "prometheus_rule_group_last_evaluation_timestamp_seconds",
            "gauge",
            "The timestamp of the last rule group evaluation in seconds.",
            &|g| (g.last_eval.unwrap_or(0) as f64 / 1000.0).to_string(),
        );
        metric(
            "prometheus_rule_group_rules",
            "gauge",
            "The number of rules.",
            &|g| g.rules.len().to_string(),
        );
        out
    }
}

impl Drop for RuleManager {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A stable offset of the group within its interval (FNV-1a of `file;name`).
fn offset_ms(g: &Group) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in g.key().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % (g.interval_ms.max(1) as u64)) as i64
}

async fn run_group(shared: Arc<Shared>, group: Arc<Mutex<Group>>) {
    let (interval, offset) = {
        let g = group.lock();
        (g.interval_ms.max(1), offset_ms(&g))
    };
    let mut iteration: u64 = 0;
    let mut next = {
        let now = vigil_model::now_millis();
        (now - offset).div_euclid(interval) * interval + offset + interval
    };
    loop {
        let now = vigil_model::now_millis();
        if next > now {
            tokio::time::sleep(std::time::Duration::from_millis((next - now) as u64)).await;
        }
        let ts = next;
        let behind = (vigil_model::now_millis() - ts).div_euclid(interval);
        if behind > 0 {
            group.lock().missed += behind as u64;
        }
        next = ts + (behind + 1) * interval;
        let s = shared.clone();
        let g = group.clone();
        let _ = tokio::task::spawn_blocking(move || {
            eval_once(&s, &g, ts);
        })
        .await;
        iteration += 1;
        // Prometheus restores after the second evaluation, when recording rules and scrapes
        // have had a chance to produce the data the alerts depend on.
        if iteration == 2 && group.lock().should_restore {
            let s = shared.clone();
            let g = group.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let now = vigil_model::now_millis();
                g.lock().restore_for_state(
                    s.db.as_ref(),
                    now,
                    s.opts.outage_tolerance_ms,
                    s.opts.for_grace_period_ms,
                );
            })
            .await;
        }
    }
}

fn eval_once(shared: &Shared, group: &Mutex<Group>, ts: i64) {
    let settings = shared.settings.lock().clone();
    let mut g = group.lock();
    let mut engine_opts = shared.opts.engine.clone();
    engine_opts.default_subquery_step_ms = g.interval_ms;
    let engine;
    let engine_ref = if engine_opts.default_subquery_step_ms
        == shared.engine.options().default_subquery_step_ms
    {
        &shared.engine
    } else {
        engine = Engine::new(engine_opts);
        &engine
    };
    let ctx = EvalCtx {
        engine: engine_ref,
        db: shared.db.as_ref(),
        app: shared.app.as_ref(),
        external_labels: &settings.external_labels,
        external_url: &shared.opts.external_url,
        default_query_offset_ms: settings.default_query_offset_ms,
        resend_delay_ms: shared.opts.resend_delay_ms,
    };
    let outgoing = g.eval(&ctx, ts);
    drop(g);
    if let Some(n) = &shared.notifier {
        let alerts = to_notify(&shared.opts.external_url, outgoing);
        if !alerts.is_empty() {
            n.send(alerts);
        }
    }
}

/// Prometheus' `sendAlerts` in `cmd/prometheus`: `startsAt` is when the alert fired,
/// `endsAt` its resolution or `valid_until`.
pub fn to_notify(external_url: &str, outgoing: Vec<Outgoing>) -> Vec<NotifyAlert> {
    let mut out = Vec::new();
    for o in outgoing {
        let url = format!(
            "{}/graph?g0.expr={}&g0.tab=1",
            external_url.trim_end_matches('/'),
            vigil_http::query_escape(&o.expr)
        );
        for a in o.alerts {
            out.push(NotifyAlert {
                labels: a.labels,
                annotations: a.annotations,
                starts_at: a.fired_at.unwrap_or(a.active_at),
                ends_at: Some(a.resolved_at.unwrap_or(a.valid_until)),
                generator_url: url.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unittest::MemStorage;
    use vigil_model::{Labels, Sample};

    const RULES: &str = "groups:
  - name: late
    rules:
      - alert: Always
        expr: vector(1) > 0
        for: 0s
      - alert: Slow
        expr: vector(1) > 0
        for: 1h
";

    /// A config in `dir` with `rule_files: {files}`, loaded as vigil loads one (relative
    /// rule files resolved against the config's directory).
    fn config(dir: &std::path::Path, files: &str) -> Config {
        let text = format!("global:\n  evaluation_interval: 1h\nrule_files: {files}\n");
        vigil_config::load_str(&text, &dir.join("prometheus.yml"))
            .unwrap()
            .config
    }

    fn rule_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-rules-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("late.yml"), RULES).unwrap();
        dir
    }

    /// The series `name{alertname=...}` written so far.
    fn written(db: &MemStorage, name: &str, alertname: &str) -> Vec<(Labels, Vec<Sample>)> {
        db.dump()
            .into_iter()
            .filter(|(l, _)| l.metric_name() == Some(name) && l.get("alertname") == Some(alertname))
            .collect()
    }

    fn only_group(m: &RuleManager) -> Arc<Mutex<Group>> {
        let running = m.running.lock();
        assert_eq!(running.len(), 1);
        running[0].group.clone()
    }

    #[tokio::test]
    async fn a_group_added_by_reload_writes_alerts_and_keeps_them_across_reloads() {
        let dir = rule_dir("reload");
        let db = Arc::new(MemStorage::default());
        let m = RuleManager::new(db.clone(), db.clone(), None, ManagerOptions::default());
        // vigil starts without rules; a reload adds the file.
        m.apply(&config(&dir, "[]")).unwrap();
        m.apply(&config(&dir, "[late.yml]")).unwrap();
        let g = only_group(&m);
        assert!(!g.lock().should_restore);
        m.eval_group(&g, 1_000_000);
        let always = written(&db, "ALERTS", "Always");
        assert_eq!(always.len(), 1, "{always:?}");
        assert_eq!(always[0].0.get("alertstate"), Some("firing"));
        let slow = written(&db, "ALERTS", "Slow");
        assert_eq!(slow.len(), 1, "{slow:?}");
        assert_eq!(slow[0].0.get("alertstate"), Some("pending"));
        let for_state = written(&db, "ALERTS_FOR_STATE", "Slow");
        assert_eq!(
            for_state[0].1,
            vec![Sample {
                t: 1_000_000,
                v: 1000.0
            }]
        );

        // Reloading the same file: the group's rules keep their alerts (the `for` clock of
        // the pending one does not restart) and keep writing.
        m.apply(&config(&dir, "[late.yml]")).unwrap();
        let g = only_group(&m);
        m.eval_group(&g, 1_060_000);
        let for_state = written(&db, "ALERTS_FOR_STATE", "Slow");
        assert_eq!(
            for_state[0].1,
            vec![
                Sample {
                    t: 1_000_000,
                    v: 1000.0
                },
                Sample {
                    t: 1_060_000,
                    v: 1000.0
                }
            ]
        );
        let alerts = m.alerts();
        let slow = alerts
            .iter()
            .find(|a| a.labels.get("alertname") == Some("Slow"));
        assert_eq!(slow.map(|a| a.active_at), Some(1_000_000));
        assert_eq!(written(&db, "ALERTS", "Always")[0].1.len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn groups_loaded_at_start_write_alerts_once_restored() {
        let dir = rule_dir("start");
        let db = Arc::new(MemStorage::default());
        let m = RuleManager::new(db.clone(), db.clone(), None, ManagerOptions::default());
        m.apply(&config(&dir, "[late.yml]")).unwrap();
        let g = only_group(&m);
        assert!(g.lock().should_restore);
        // Before the restore (after the second evaluation), nothing is written.
        m.eval_group(&g, 1_000_000);
        assert!(written(&db, "ALERTS", "Always").is_empty());
        g.lock()
            .restore_for_state(db.as_ref(), 1_000_000, 3_600_000, 600_000);
        m.eval_group(&g, 1_060_000);
        assert_eq!(written(&db, "ALERTS", "Always").len(), 1);
        assert_eq!(written(&db, "ALERTS", "Slow").len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
