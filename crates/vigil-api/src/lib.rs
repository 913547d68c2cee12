//! Prometheus' HTTP API, served from the [`vigil_model::Queryable`] seam and the PromQL engine.
//!
//! Responses are written by hand into one buffer (see [`json`]) rather than through a generic
//! serializer: the sample format (`[1435781451.781,"1"]`, floats as Go's shortest `'f'`
//! formatting, `"NaN"`, `"+Inf"`) is what Grafana and promtool parse, so it is pinned exactly,
//! and large matrices are the API's hot path.

mod handlers;
pub mod json;
pub mod params;

use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;
use vigil_model::Queryable;
use vigil_promql::Engine;
use vigil_scrape::ScrapeManager;

/// Everything the handlers read.
pub struct ApiState {
    pub db: Arc<dyn Queryable>,
    pub engine: Engine,
    pub scrape: Option<Arc<ScrapeManager>>,
    /// Renders vigil's own metrics in the text exposition format for `/metrics`.
    pub self_metrics: Box<dyn Fn() -> String + Send + Sync>,
    pub version: String,
    /// Reload and quit over HTTP; `None` unless `--web.enable-lifecycle`.
    pub lifecycle: Option<Lifecycle>,
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
    Router::new()
        .route("/api/v1/query", get(handlers::query).post(handlers::query))
        .route(
            "/api/v1/query_range",
            get(handlers::query_range).post(handlers::query_range),
        )
        .route(
            "/api/v1/series",
            get(handlers::series).post(handlers::series),
        )
        .route(
            "/api/v1/labels",
            get(handlers::labels).post(handlers::labels),
        )
        .route("/api/v1/label/{name}/values", get(handlers::label_values))
        .route("/api/v1/targets", get(handlers::targets))
        .route("/api/v1/targets/metadata", get(handlers::targets_metadata))
        .route("/api/v1/metadata", get(handlers::metadata))
        .route("/api/v1/status/buildinfo", get(handlers::buildinfo))
        .route(
            "/-/healthy",
            get(|| async { "Prometheus Server is Healthy.\n" }),
        )
        .route(
            "/-/ready",
            get(|| async { "Prometheus Server is Ready.\n" }),
        )
        .route("/metrics", get(handlers::metrics))
        .route("/-/reload", post(handlers::reload).put(handlers::reload))
        .route("/-/quit", post(handlers::quit).put(handlers::quit))
        .fallback(handlers::not_found)
        .with_state(state)
}

#[cfg(test)]
mod tests;
