//! What the HTTP API learns about this process: flags, the running config, reload status,
//! TSDB statistics and the admin operations, adapted from the TSDB and the reloader to the
//! small traits `vigil-api` defines (so the API does not depend on the TSDB's internals).

use crate::reload::Reloader;
use clap::CommandFactory;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use vigil_api::{AdminError, HeadStats, ServerInfo, TsdbAdmin, TsdbStatus, WalReplay};
use vigil_model::{Labels, Matcher, Timestamp};
use vigil_tsdb::Tsdb;

/// The `ServerInfo` of a running server.
pub fn server_info(
    cli: &crate::cli::Cli,
    db: Arc<Tsdb>,
    reloader: Arc<Reloader>,
    external_url: String,
) -> ServerInfo {
    let r1 = reloader.clone();
    let r2 = reloader.clone();
    let notifications = reloader.notifications();
    let r3 = reloader;
    ServerInfo {
        flags: flag_values(),
        config_yaml: Box::new(move || serde_yaml::to_string(&*r1.current()).unwrap_or_default()),
        reload_status: Box::new(move || r2.status()),
        external_labels: Box::new(move || {
            Labels::from_pairs(r3.current().global.external_labels.clone())
        }),
        alertmanagers: Box::new(Vec::new),
        dropped_alertmanagers: Box::new(Vec::new),
        tsdb: Some(Arc::new(TsdbInfo(db.clone()))),
        admin: cli
            .enable_admin_api
            .then(|| Arc::new(TsdbInfo(db)) as Arc<dyn TsdbAdmin>),
        external_url,
        start_time_ms: vigil_model::now_millis(),
        storage_retention: cli.retention_time.to_string(),
        notifications,
    }
}

/// Every long flag with its effective value (given or default), as Prometheus'
/// `/api/v1/status/flags` lists them.
fn flag_values() -> Vec<(String, String)> {
    let cmd = crate::cli::Cli::command();
    let Ok(m) = cmd.clone().try_get_matches_from(std::env::args_os()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let id = arg.get_id().as_str();
        let value = match m.try_get_raw(id) {
            Ok(Some(vals)) => vals
                .map(|v| v.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(","),
            _ => match m.get_flag_safe(id) {
                Some(b) => b.to_string(),
                None => String::new(),
            },
        };
        out.push((long.to_string(), value));
    }
    out.sort();
    out
}

trait FlagExt {
    fn get_flag_safe(&self, id: &str) -> Option<bool>;
}

impl FlagExt for clap::ArgMatches {
    fn get_flag_safe(&self, id: &str) -> Option<bool> {
        self.try_get_one::<bool>(id).ok().flatten().copied()
    }
}

struct TsdbInfo(Arc<Tsdb>);

impl TsdbStatus for TsdbInfo {
    fn head(&self) -> HeadStats {
        let h = self.0.head();
        HeadStats {
            num_series: h.num_series() as u64,
            chunk_count: h.num_chunks(),
            min_time: h.min_time().unwrap_or(0),
            max_time: h.max_time().unwrap_or(0),
        }
    }

    fn wal_replay(&self) -> WalReplay {
        // Replay finishes before the server listens, so it is reported complete: `current`
        // is the last segment replayed, as Prometheus shows once it is done.
        let st = self.0.stats();
        let min = st.replayed_first_segment.load(Ordering::Relaxed) as i64;
        let max = st.replayed_last_segment.load(Ordering::Relaxed) as i64;
        WalReplay {
            min,
            max,
            current: max,
        }
    }

    fn corruption_count(&self) -> u64 {
        self.0
            .stats()
            .wal_corruptions
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn block_metas(&self) -> Vec<serde_json::Value> {
        self.0
            .blocks()
            .iter()
            .filter_map(|b| serde_json::to_value(b.meta()).ok())
            .collect()
    }
}

impl TsdbAdmin for TsdbInfo {
    /// `<data>/snapshots/<time>-<random>`: block directories hard-linked (they are immutable);
    /// unless `skip_head`, a fresh checkpoint is written first and the rest of the data
    /// directory (WAL, head snapshot) copied, so opening the snapshot replays the head.
    fn snapshot(&self, skip_head: bool) -> Result<String, AdminError> {
        if !skip_head {
            self.0
                .checkpoint()
                .map_err(|e| AdminError::Failed(format!("checkpoint: {e}")))?;
        }
        let now = vigil_model::now_millis();
        let name = format!(
            "{}-{:016x}",
            snapshot_time(now),
            std::collections::hash_map::RandomState::new().hash_one(now)
        );
        let dir = self.0.dir().to_path_buf();
        let dest = dir.join("snapshots").join(&name);
        std::fs::create_dir_all(&dest).map_err(|e| AdminError::Failed(e.to_string()))?;
        let blocks: Vec<PathBuf> = self
            .0
            .blocks()
            .iter()
            .map(|b| b.dir().to_path_buf())
            .collect();
        for b in &blocks {
            if let Some(n) = b.file_name() {
                link_tree(b, &dest.join(n), true).map_err(|e| AdminError::Failed(e.to_string()))?;
            }
        }
        if !skip_head {
            let entries = std::fs::read_dir(&dir).map_err(|e| AdminError::Failed(e.to_string()))?;
            for e in entries.flatten() {
                let p = e.path();
                let n = e.file_name();
                if n == "snapshots" || n == "lock" || blocks.contains(&p) {
                    continue;
                }
                link_tree(&p, &dest.join(&n), false)
                    .map_err(|e| AdminError::Failed(e.to_string()))?;
            }
        }
        Ok(name)
    }

    fn delete_series(
        &self,
        selectors: &[Vec<Matcher>],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<(), AdminError> {
        self.0
            .delete_series(selectors, start, end)
            .map(|_| ())
            .map_err(|e| AdminError::Failed(format!("delete series: {e}")))
    }

    fn clean_tombstones(&self) -> Result<(), AdminError> {
        // Deletions are applied when asked (docs/api.md), so no tombstones are ever left.
        Ok(())
    }
}

use std::hash::BuildHasher;

/// Hard-links (`link`) or copies the file or directory tree `from` to `to`.
fn link_tree(from: &Path, to: &Path, link: bool) -> std::io::Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            link_tree(&e.path(), &to.join(e.file_name()), link)?;
        }
        Ok(())
    } else if link {
        std::fs::hard_link(from, to).or_else(|_| std::fs::copy(from, to).map(|_| ()))
    } else {
        std::fs::copy(from, to).map(|_| ())
    }
}

/// `20060102T150405Z` as Prometheus names snapshots.
fn snapshot_time(ms: i64) -> String {
    let s = vigil_api::rfc3339_millis(ms);
    // 2015-07-01T20:10:51.781Z → 20150701T201051Z
    let digits: String = s[..19].chars().filter(|c| *c != '-' && *c != ':').collect();
    format!("{digits}Z")
}

/// The scrape manager as the API's `TargetRetriever`.
pub struct Targets(pub Arc<vigil_scrape::ScrapeManager>);

impl vigil_api::TargetRetriever for Targets {
    fn active(&self) -> Vec<vigil_api::ActiveTarget> {
        self.0
            .statuses()
            .into_iter()
            .map(|t| vigil_api::ActiveTarget {
                pool: t.job,
                url: t.url,
                labels: t.labels,
                discovered: t.discovered,
                health: t.health.as_str(),
                last_error: t.last_error,
                last_scrape_ms: t.last_scrape_ms,
                last_scrape_duration: t.last_scrape_duration,
                interval: t.interval,
                timeout: t.timeout,
                metadata: t.metadata,
            })
            .collect()
    }

    fn dropped(&self) -> Vec<vigil_api::DroppedTarget> {
        self.0
            .dropped()
            .into_iter()
            .map(|d| vigil_api::DroppedTarget {
                pool: d.job,
                discovered: d.discovered,
            })
            .collect()
    }

    fn pools(&self) -> Vec<String> {
        self.0.pools()
    }
}

/// The rule manager as the API's `RulesRetriever`.
pub struct Rules(pub Arc<vigil_rules::RuleManager>);

fn alert_status(a: &vigil_rules::Alert) -> vigil_api::AlertStatus {
    vigil_api::AlertStatus {
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        state: a.state.as_str(),
        active_at_ms: a.active_at,
        value: a.value,
        keep_firing_since_ms: a.keep_firing_since,
    }
}

impl vigil_api::RulesRetriever for Rules {
    fn groups(&self) -> Vec<vigil_api::GroupStatus> {
        use vigil_rules::RuleKind;
        self.0
            .groups()
            .into_iter()
            .map(|g| vigil_api::GroupStatus {
                rules: g
                    .rules
                    .iter()
                    .map(|r| {
                        let (query, labels, detail) = match &r.kind {
                            RuleKind::Recording(rr) => (
                                rr.expr.clone(),
                                rr.labels.clone(),
                                vigil_api::RuleDetail::Recording,
                            ),
                            RuleKind::Alerting(a) => (
                                a.expr.clone(),
                                a.labels.clone(),
                                vigil_api::RuleDetail::Alerting {
                                    state: a.state().as_str(),
                                    hold_ms: a.hold_ms,
                                    keep_firing_for_ms: a.keep_firing_for_ms,
                                    annotations: a.annotations.clone(),
                                    alerts: a.alerts().into_iter().map(alert_status).collect(),
                                },
                            ),
                        };
                        vigil_api::RuleStatus {
                            name: r.name().to_string(),
                            query,
                            labels,
                            health: r.health.as_str(),
                            last_error: r.last_error.clone(),
                            last_eval_ms: r.last_eval,
                            eval_seconds: r.eval_seconds,
                            detail,
                        }
                    })
                    .collect(),
                name: g.name,
                file: g.file,
                interval_ms: g.interval_ms,
                limit: g.limit,
                last_eval_ms: g.last_eval,
                last_duration_s: g.last_duration_s,
            })
            .collect()
    }

    fn alerts(&self) -> Vec<vigil_api::AlertStatus> {
        self.0.alerts().iter().map(alert_status).collect()
    }
}
