//! Prometheus' HTTP API, served from the [`vigil_model::Queryable`] seam and the PromQL engine.
//!
//! Responses are written by hand into one buffer (see [`json`]) rather than through a generic
//! serializer: the sample format (`[1435781451.781,"1"]`, floats as Go's shortest `'f'`
//! formatting, `"NaN"`, `"+Inf"`) is what Grafana and promtool parse, so it is pinned exactly,
//! and large matrices are the API's hot path.

mod admin;
mod federate;
mod handlers;
pub mod json;
mod lifecycle;
mod metadata;
pub mod notifications;
pub mod params;
mod query;
mod retrieve;
mod rules;
mod status;
mod targets;
mod ui;
pub mod web;

pub use admin::{AdminError, TsdbAdmin};
pub use handlers::{ApiError, ErrorType, rfc3339_millis};
pub use metadata::unescape_name;
pub use retrieve::{
    ActiveTarget, AlertStatus, DroppedTarget, GroupStatus, RuleDetail, RuleStatus, RulesRetriever,
    TargetRetriever,
};
pub use status::{HeadStats, PROMETHEUS_API_VERSION, TsdbStatus, WalReplay};

use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;
use vigil_model::{Labels, Queryable};
use vigil_promql::Engine;

/// Everything the handlers read.
pub struct ApiState {
    pub db: Arc<dyn Queryable>,
    pub engine: Engine,
    /// Scrape targets and their metadata; `None` serves empty lists.
    pub scrape: Option<Arc<dyn TargetRetriever>>,
    /// Renders vigil's own metrics in the text exposition format for `/metrics`.
    pub self_metrics: Box<dyn Fn() -> String + Send + Sync>,
    pub version: String,
    /// Reload and quit over HTTP; `None` unless `--web.enable-lifecycle`.
    pub lifecycle: Option<Lifecycle>,
    /// Status pages, TSDB statistics and admin hooks; `ServerInfo::default()` for a bare server.
    pub info: ServerInfo,
    /// Rule groups and alerts for `/api/v1/rules` and `/api/v1/alerts`; `None` serves empty lists.
    pub rules: Option<Arc<dyn RulesRetriever>>,
}

/// What the status, admin and federation endpoints know about the running server.
pub struct ServerInfo {
    /// Command-line flags by name (without `--`), for `/api/v1/status/flags`.
    pub flags: Vec<(String, String)>,
    /// The running configuration as YAML, secrets masked.
    pub config_yaml: Box<dyn Fn() -> String + Send + Sync>,
    /// Did the last config reload succeed, and when (unix seconds) was the last success.
    pub reload_status: Box<dyn Fn() -> (bool, i64) + Send + Sync>,
    /// `global.external_labels`, attached to federated series.
    pub external_labels: Box<dyn Fn() -> Labels + Send + Sync>,
    /// URLs of the Alertmanagers alerts are sent to.
    pub alertmanagers: Box<dyn Fn() -> Vec<String> + Send + Sync>,
    /// URLs of the discovered Alertmanagers that `relabel_configs` dropped.
    pub dropped_alertmanagers: Box<dyn Fn() -> Vec<String> + Send + Sync>,
    /// Head and WAL numbers of the storage engine.
    pub tsdb: Option<Arc<dyn TsdbStatus>>,
    /// Snapshot and deletion; `Some` only with `--web.enable-admin-api`.
    pub admin: Option<Arc<dyn TsdbAdmin>>,
    /// `--web.external-url`.
    pub external_url: String,
    /// Process start, ms.
    pub start_time_ms: i64,
    /// `--storage.tsdb.retention.time` as given.
    pub storage_retention: String,
    /// Server notifications (`/api/v1/notifications`), shared with the reloader.
    pub notifications: Arc<notifications::Notifications>,
}

impl Default for ServerInfo {
    fn default() -> Self {
        ServerInfo {
            flags: Vec::new(),
            config_yaml: Box::new(String::new),
            reload_status: Box::new(|| (true, 0)),
            external_labels: Box::new(Labels::empty),
            alertmanagers: Box::new(Vec::new),
            dropped_alertmanagers: Box::new(Vec::new),
            tsdb: None,
            admin: None,
            external_url: String::new(),
            start_time_ms: vigil_model::now_millis(),
            storage_retention: String::new(),
            notifications: Arc::default(),
        }
    }
}

/// The `/-/reload` and `/-/quit` hooks.
pub struct Lifecycle {
    /// Re-reads and applies the config; the error text on failure.
    pub reload: Box<dyn Fn() -> Result<(), String> + Send + Sync>,
    /// Notified to shut the server down.
    pub quit: Arc<tokio::sync::Notify>,
}

/// The router with every endpoint vigil serves.
pub fn router(state: Arc<ApiState>) -> Router {
    // GET and form POST wherever Prometheus accepts both.
    macro_rules! both {
        ($h:expr) => {
            get($h).post($h)
        };
    }
    // The web UI: `/`, its pages (`/query`, `/graph`, `/targets`, ...) and `/assets/`.
    ui::routes(Router::new())
        .route("/api/v1/query", both!(query::query))
        .route("/api/v1/query_range", both!(query::query_range))
        .route("/api/v1/query_exemplars", both!(query::query_exemplars))
        .route("/api/v1/format_query", both!(query::format_query))
        .route("/api/v1/parse_query", both!(query::parse_query))
        .route("/api/v1/series", both!(metadata::series))
        .route("/api/v1/labels", both!(metadata::labels))
        // Prometheus serves GET only; Grafana's suggestions path POSTs here.
        .route("/api/v1/label/{name}/values", both!(metadata::label_values))
        .route("/api/v1/targets", get(targets::targets))
        .route("/api/v1/targets/metadata", get(targets::targets_metadata))
        .route("/api/v1/metadata", get(targets::metadata))
        .route("/api/v1/alertmanagers", get(status::alertmanagers))
        .route("/api/v1/rules", get(rules::rules))
        .route("/api/v1/alerts", get(rules::alerts))
        .route("/api/v1/status/config", get(status::config))
        .route("/api/v1/status/flags", get(status::flags))
        .route("/api/v1/status/buildinfo", get(status::buildinfo))
        .route("/api/v1/status/runtimeinfo", get(status::runtimeinfo))
        .route("/api/v1/status/tsdb", get(status::tsdb))
        .route("/api/v1/status/tsdb/blocks", get(status::tsdb_blocks))
        .route("/api/v1/openapi.yaml", get(status::openapi))
        .route("/api/v1/features", get(status::features))
        .route("/api/v1/notifications", get(status::notifications))
        .route(
            "/api/v1/notifications/live",
            get(status::notifications_live),
        )
        .route("/api/v1/status/walreplay", get(status::walreplay))
        .route(
            "/api/v1/admin/tsdb/snapshot",
            post(admin::snapshot).put(admin::snapshot),
        )
        .route(
            "/api/v1/admin/tsdb/delete_series",
            post(admin::delete_series).put(admin::delete_series),
        )
        .route(
            "/api/v1/admin/tsdb/clean_tombstones",
            post(admin::clean_tombstones).put(admin::clean_tombstones),
        )
        .route("/federate", get(federate::federate))
        .route(
            "/-/healthy",
            get(lifecycle::healthy).head(lifecycle::healthy),
        )
        .route("/-/ready", get(lifecycle::ready).head(lifecycle::ready))
        .route("/metrics", get(handlers::metrics))
        .route("/-/reload", post(lifecycle::reload).put(lifecycle::reload))
        .route("/-/quit", post(lifecycle::quit).put(lifecycle::quit))
        .fallback(handlers::not_found)
        .with_state(state)
}

#[cfg(test)]
mod tests;
