//! The `vigil` binary: parses Prometheus' flags, loads the config, wires storage, scraping and
//! the HTTP API together, and handles signals (SIGHUP reloads, SIGINT/SIGTERM stop cleanly).

mod check;
mod cli;
mod self_metrics;

use anyhow::{Context, Result};
use clap::Parser;
use cli::{CheckCommand, Cli, Command};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};
use vigil_api::ApiState;
use vigil_promql::{Engine, EngineOptions};
use vigil_scrape::ScrapeManager;
use vigil_tsdb::{Head, HeadOptions};

fn main() {
    let cli = Cli::parse();
    if let Some(Command::Check {
        what: CheckCommand::Config { files },
    }) = &cli.command
    {
        std::process::exit(check::check_config(files));
    }
    init_logging(&cli.log_level);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vigil")
        .build();
    let result = rt
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(serve(cli)));
    if let Err(e) = result {
        tracing::error!("{e:#}");
        std::process::exit(1);
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},hyper=warn,reqwest=warn"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
}

/// Loads the config file, or the embedded default when none was given.
fn load_config(path: Option<&Path>) -> Result<vigil_config::Config> {
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

async fn serve(cli: Cli) -> Result<()> {
    tracing::info!(version = cli::VERSION, "Starting vigil");
    let config = load_config(cli.config_file.as_deref())?;
    let source = cli
        .config_file
        .as_ref()
        .map_or("<embedded default>".to_string(), |p| {
            p.display().to_string()
        });
    tracing::info!(file = %source, jobs = config.scrape_configs.len(), "Loaded configuration");

    std::fs::create_dir_all(&cli.tsdb_path).with_context(|| {
        format!(
            "cannot create storage directory {} (--storage.tsdb.path)",
            cli.tsdb_path.display()
        )
    })?;
    let head = Arc::new(Head::new(HeadOptions {
        retention_ms: cli.retention_time.as_millis() as i64,
    }));
    let scrape = Arc::new(ScrapeManager::new(
        head.clone(),
        format!("vigil/{}", cli::VERSION),
    ));
    scrape.apply(&config);

    let listener = tokio::net::TcpListener::bind(&cli.listen_address)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (--web.listen-address)",
                cli.listen_address
            )
        })?;
    let state = Arc::new(ApiState {
        db: head.clone(),
        engine: Engine::new(EngineOptions {
            lookback_delta_ms: cli.lookback_delta.as_millis() as i64,
            ..Default::default()
        }),
        scrape: Some(scrape.clone()),
        self_metrics: Box::new(self_metrics::renderer(head.clone())),
        version: cli::VERSION.to_string(),
    });
    tracing::info!(address = %listener.local_addr()?, "Listening; the server is ready to receive web requests");

    tokio::spawn(retention_loop(head.clone()));
    tokio::spawn(reload_on_sighup(cli.config_file.clone(), scrape.clone()));

    axum::serve(listener, vigil_api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("Stopping scrape loops");
    scrape.stop_all();
    tracing::info!("See you next time!");
    Ok(())
}

async fn retention_loop(head: Arc<Head>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tick.tick().await;
        head.truncate_old();
    }
}

/// On SIGHUP, reloads the config; a bad new config is logged and the old one keeps running.
async fn reload_on_sighup(path: Option<PathBuf>, scrape: Arc<ScrapeManager>) {
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        match load_config(path.as_deref()) {
            Ok(cfg) => {
                scrape.apply(&cfg);
                tracing::info!("Completed loading of configuration file");
            }
            Err(e) => tracing::error!("Error reloading config, keeping the old one: {e:#}"),
        }
    }
}

async fn shutdown_signal() {
    let term = async {
        if let Ok(mut s) = signal(SignalKind::terminate()) {
            s.recv().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("Received SIGINT, exiting gracefully..."),
        _ = term => tracing::info!("Received SIGTERM, exiting gracefully..."),
    }
}
