//! Wires `vigil-remote`: the remote-write queues of the config (re-applied on reload), the
//! metadata they send (from the scrape manager), remote read merged into the API's storage,
//! and the `/api/v1/write`, `/api/v1/read` and `/api/v1/otlp/v1/metrics` routes.

use crate::cli::Cli;
use crate::reload::Reloader;
use anyhow::Result;
use std::sync::Arc;
use std::time::Duration;
use vigil_model::{Labels, Queryable};
use vigil_remote::prompb::{MetricMetadata, metric_metadata::MetricType};
use vigil_remote::{RemoteOptions, RemoteStorage};
use vigil_scrape::ScrapeManager;
use vigil_tsdb::Tsdb;

pub fn start(
    cli: &Cli,
    db: Arc<Tsdb>,
    scrape: Arc<ScrapeManager>,
    config: &vigil_config::Config,
) -> Result<Arc<RemoteStorage>> {
    let metadata: vigil_remote::MetadataSource = Arc::new(move || metadata_of(&scrape));
    let remote = RemoteStorage::new(
        db,
        RemoteOptions {
            flush_deadline: Duration::from_millis(cli.remote_flush_deadline.as_millis()),
            user_agent: format!("vigil/{}", crate::cli::VERSION),
            ..Default::default()
        },
        Some(metadata),
    );
    remote
        .apply_config(config)
        .map_err(|e| anyhow::anyhow!("invalid remote storage configuration: {e}"))?;
    Ok(remote)
}

/// Metric metadata of every scraped family (first target's wins), as remote write sends it.
fn metadata_of(scrape: &ScrapeManager) -> Vec<MetricMetadata> {
    let mut seen = std::collections::BTreeMap::new();
    for t in scrape.statuses() {
        for (name, m) in t.metadata.iter() {
            seen.entry(name.clone()).or_insert_with(|| MetricMetadata {
                r#type: match m.kind.as_str() {
                    "counter" => MetricType::Counter,
                    "gauge" => MetricType::Gauge,
                    "histogram" => MetricType::Histogram,
                    "gaugehistogram" => MetricType::Gaugehistogram,
                    "summary" => MetricType::Summary,
                    "info" => MetricType::Info,
                    "stateset" => MetricType::Stateset,
                    _ => MetricType::Unknown,
                } as i32,
                metric_family_name: name.clone(),
                help: m.help.clone(),
                unit: m.unit.clone(),
            });
        }
    }
    seen.into_values().collect()
}

/// Local storage merged with the `remote_read` endpoints of the running config.
pub fn fanout(remote: &RemoteStorage, db: Arc<Tsdb>) -> Arc<dyn Queryable> {
    let local: Arc<dyn Queryable> = db.clone();
    Arc::new(vigil_remote::Fanout {
        local,
        remotes: remote.read_clients(),
        local_start: Box::new(move || {
            let blocks = db.blocks().first().map(|b| b.meta().min_time);
            let head = db.head().min_time();
            match (blocks, head) {
                (Some(b), Some(h)) => b.min(h),
                (Some(b), None) => b,
                (None, Some(h)) => h,
                (None, None) => vigil_model::now_millis(),
            }
        }),
    })
}

/// `/api/v1/write` (with `--web.enable-remote-write-receiver`), `/api/v1/read` and
/// `/api/v1/otlp/v1/metrics` (with `--web.enable-otlp-receiver`).
pub fn routes(
    cli: &Cli,
    remote: &RemoteStorage,
    db: Arc<Tsdb>,
    reloader: Arc<Reloader>,
) -> axum::Router {
    let limit = if cli.remote_read_concurrent_limit == 0 {
        tokio::sync::Semaphore::MAX_PERMITS
    } else {
        cli.remote_read_concurrent_limit
    };
    let otlp = {
        let reloader = reloader.clone();
        let lookback_ms = cli.lookback_delta.as_millis() as i64;
        vigil_remote::otlp::routes(Arc::new(vigil_remote::otlp::OtlpState {
            appendable: db.clone(),
            enabled: cli.enable_otlp_receiver,
            settings: Box::new(move || {
                let cfg = reloader.current();
                let otlp = cfg.otlp.clone().unwrap_or_default();
                vigil_remote::otlp::translate::Settings::new(&otlp, lookback_ms)
            }),
            metrics: remote.server_metrics.clone(),
            delta: crate::features::enabled(&cli.enable_feature, "otlp-deltatocumulative")
                .then(|| Arc::new(vigil_remote::otlp::delta::DeltaToCumulative::new())),
        }))
    };
    let rw = vigil_remote::routes(Arc::new(vigil_remote::ServerState {
        appendable: db.clone(),
        queryable: db,
        enable_write: cli.enable_remote_write_receiver,
        external_labels: Box::new(move || {
            Labels::from_pairs(reloader.current().global.external_labels.clone())
        }),
        metrics: remote.server_metrics.clone(),
        read_sample_limit: cli.remote_read_sample_limit,
        read_max_bytes_in_frame: cli.remote_read_max_bytes_in_frame.max(1024),
        read_gate: Arc::new(tokio::sync::Semaphore::new(limit)),
    }));
    rw.merge(otlp)
}
