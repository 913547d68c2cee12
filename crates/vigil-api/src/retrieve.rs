//! What the API reads from the scrape and rule managers, as traits the API owns.
//!
//! Prometheus' `web/api/v1` takes a `targetRetriever` and a `rulesRetriever` rather than the
//! scrape and rule managers themselves; vigil does the same so `vigil-api` depends on neither
//! `vigil-scrape` nor `vigil-rules` (the binary adapts them, `crates/vigil/src/api_wiring.rs`).
//! The types below are the API's view: exactly what the JSON needs, no more.

use std::collections::BTreeMap;
use std::sync::Arc;
use vigil_model::{Labels, MetricMetadata};

/// One active scrape target, for `/api/v1/targets` and the metadata endpoints.
#[derive(Debug, Clone)]
pub struct ActiveTarget {
    pub pool: String,
    pub url: String,
    pub labels: Labels,
    pub discovered: Labels,
    /// `up`, `down` or `unknown`.
    pub health: &'static str,
    pub last_error: String,
    pub last_scrape_ms: i64,
    pub last_scrape_duration: f64,
    pub interval: String,
    pub timeout: String,
    /// Family name → metadata, from the last scrape that had any.
    pub metadata: Arc<BTreeMap<String, MetricMetadata>>,
}

/// A discovered target that relabeling dropped.
#[derive(Debug, Clone)]
pub struct DroppedTarget {
    pub pool: String,
    pub discovered: Labels,
}

/// Prometheus' `targetRetriever`: the scrape side of the API.
pub trait TargetRetriever: Send + Sync {
    /// Active targets, ordered by pool then URL.
    fn active(&self) -> Vec<ActiveTarget>;
    /// Targets relabeling dropped.
    fn dropped(&self) -> Vec<DroppedTarget>;
    /// Every configured scrape pool (job name), also those with no targets.
    fn pools(&self) -> Vec<String>;
}

/// A pending or firing alert (or an inactive one inside a rule's state).
#[derive(Debug, Clone)]
pub struct AlertStatus {
    pub labels: Labels,
    pub annotations: Labels,
    /// `inactive`, `pending` or `firing`.
    pub state: &'static str,
    pub active_at_ms: i64,
    pub value: f64,
    pub keep_firing_since_ms: Option<i64>,
}

/// What kind of rule, with what only that kind has.
#[derive(Debug, Clone)]
pub enum RuleDetail {
    Recording,
    Alerting {
        /// The rule's state: the most severe of its alerts'.
        state: &'static str,
        hold_ms: i64,
        keep_firing_for_ms: i64,
        annotations: Vec<(String, String)>,
        alerts: Vec<AlertStatus>,
    },
}

/// One rule of a group.
#[derive(Debug, Clone)]
pub struct RuleStatus {
    pub name: String,
    pub query: String,
    pub labels: Vec<(String, String)>,
    /// `ok`, `err` or `unknown`.
    pub health: &'static str,
    pub last_error: Option<String>,
    pub last_eval_ms: Option<i64>,
    pub eval_seconds: f64,
    pub detail: RuleDetail,
}

/// One rule group.
#[derive(Debug, Clone)]
pub struct GroupStatus {
    pub name: String,
    pub file: String,
    pub interval_ms: i64,
    pub limit: u64,
    pub last_eval_ms: Option<i64>,
    pub last_duration_s: f64,
    pub rules: Vec<RuleStatus>,
}

/// Prometheus' `rulesRetriever`: the rule side of the API.
pub trait RulesRetriever: Send + Sync {
    /// Every loaded group, in file then group order.
    fn groups(&self) -> Vec<GroupStatus>;
    /// Every pending and firing alert.
    fn alerts(&self) -> Vec<AlertStatus>;
}
