//! The `vigil` binary: parses Prometheus' flags, loads the config, wires storage, scraping and
//! the HTTP API together, and handles signals (SIGHUP reloads, SIGINT/SIGTERM stop cleanly).

mod api_wiring;
mod check;
mod cli;
mod features;
mod reload;
mod remote_wiring;
mod rules_wiring;
mod self_metrics;

/// The process allocator: mimalloc instead of glibc's malloc. The head makes millions of small,
/// long-lived allocations (series, label symbols, chunk buffers) beside short-lived ones per
/// scrape and query; glibc keeps a per-thread arena each and returns little of the freed
/// memory, so RSS drifted above the live data. Measured in docs/performance.md.
#[cfg(not(feature = "dhat-heap"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's settings that vigil changes from their defaults.
#[cfg(not(feature = "dhat-heap"))]
#[allow(unsafe_code)]
mod allocator_options {
    use std::ffi::{c_int, c_long};

    unsafe extern "C" {
        fn mi_option_set(option: c_int, value: c_long);
    }

    /// `mi_option_purge_delay` in `mi_option_e` of the mimalloc that `libmimalloc-sys` 0.1.49
    /// builds (3.3; the same index in 2.x).
    const PURGE_DELAY: c_int = 15;

    /// Returns freed pages to the system at once instead of after 1 s (mimalloc's default),
    /// unless `MIMALLOC_PURGE_DELAY` says otherwise: the head's memory turns over as chunks are
    /// cut and scrapes come and go, and with the delay about 10 MiB more stayed resident at
    /// 100,000 series with no CPU saved (docs/performance.md).
    pub fn purge_freed_memory_at_once() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: stores an integer in mimalloc's option table; the index is checked
            // against the linked version above, and the option is read on every purge.
            unsafe { mi_option_set(PURGE_DELAY, 0) }
        }
    }
}

/// Heap profiling builds (`--features dhat-heap`): every allocation is recorded by site.
#[cfg(feature = "dhat-heap")]
#[global_allocator]
static GLOBAL: dhat::Alloc = dhat::Alloc;
#[cfg(feature = "dhat-heap")]
static PROFILER: std::sync::Mutex<Option<dhat::Profiler>> = std::sync::Mutex::new(None);

use anyhow::{Context, Result};
use clap::Parser;
use cli::{CheckCommand, Cli, Command, ImportFormat, TsdbCommand};
use reload::{Reloader, load_config};
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};
use vigil_api::ApiState;
use vigil_promql::{Engine, EngineOptions};
use vigil_scrape::ScrapeManager;
use vigil_tsdb::{Tsdb, TsdbOptions};

fn main() {
    #[cfg(feature = "dhat-heap")]
    {
        *PROFILER.lock().unwrap() = Some(dhat::Profiler::new_heap());
    }
    #[cfg(not(feature = "dhat-heap"))]
    allocator_options::purge_freed_memory_at_once();
    let cli = Cli::parse();
    if let Some(Command::Check {
        what: CheckCommand::Config { files },
    }) = &cli.command
    {
        std::process::exit(check::check_config(files));
    }
    if let Some(Command::Check {
        what: CheckCommand::Rules { files },
    }) = &cli.command
    {
        std::process::exit(check::check_rules(files));
    }
    if let Some(Command::Test {
        what: cli::TestCommand::Rules { files },
    }) = &cli.command
    {
        std::process::exit(vigil_rules::unittest::run_files(files));
    }
    if let Some(Command::Tsdb {
        what: TsdbCommand::Import { format },
    }) = &cli.command
    {
        let ImportFormat::Openmetrics {
            file,
            dir,
            max_block_duration,
        } = format;
        // promtool ignores block durations under 2h, and so does vigil.
        let block_ms = (max_block_duration.as_millis() as i64).max(2 * 3600 * 1000);
        std::process::exit(tsdb_import(file, dir, block_ms));
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
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

async fn serve(cli: Cli) -> Result<()> {
    tracing::info!(version = cli::VERSION, "Starting vigil");
    features::log(&cli.enable_feature);
    let config = load_config(cli.config_file.as_deref())?;
    let source = cli
        .config_file
        .as_ref()
        .map_or("<embedded default>".to_string(), |p| {
            p.display().to_string()
        });
    let static_targets: usize = config
        .scrape_configs
        .iter()
        .flat_map(|sc| &sc.static_configs)
        .map(|g| g.targets.len())
        .sum();
    let discovered = config
        .scrape_configs
        .iter()
        .filter(|sc| {
            !sc.file_sd_configs.is_empty()
                || !sc.http_sd_configs.is_empty()
                || !sc.dns_sd_configs.is_empty()
                || !sc.consul_sd_configs.is_empty()
                || !sc.kubernetes_sd_configs.is_empty()
        })
        .count();
    tracing::info!(
        file = %source,
        jobs = config.scrape_configs.len(),
        static_targets,
        jobs_with_discovery = discovered,
        rule_files = config.rule_files.len(),
        remote_write = config.remote_write.len(),
        "Loaded configuration"
    );

    std::fs::create_dir_all(&cli.tsdb_path).with_context(|| {
        format!(
            "cannot create storage directory {} (--storage.tsdb.path)",
            cli.tsdb_path.display()
        )
    })?;
    let head = Arc::new(open_storage(&cli, &config)?);
    let scrape = Arc::new(
        ScrapeManager::new(head.clone(), format!("vigil/{}", cli::VERSION))
            .with_timestamp_tolerance(
                (cli.scrape_adjust_timestamps && !cli.no_scrape_adjust_timestamps)
                    .then(|| cli.scrape_timestamp_tolerance.to_std()),
            ),
    );
    // Remote-write queues start before scraping, so they see everything this run writes.
    head.wal_holds().set_max_bytes(cli.remote_wal_keep_max_size);
    let remote = remote_wiring::start(&cli, head.clone(), scrape.clone(), &config)?;
    let reloader = Arc::new(Reloader::start(
        cli.config_file.clone(),
        scrape.clone(),
        config,
    ));
    {
        let remote = remote.clone();
        reloader.add_hook(Box::new(move |cfg| remote.apply_config(cfg)));
    }
    tokio::spawn(scrape.clone().run_discovery());

    let listener = tokio::net::TcpListener::bind(&cli.listen_address)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (--web.listen-address)",
                cli.listen_address
            )
        })?;
    let quit = Arc::new(tokio::sync::Notify::new());
    let (external_url, route_prefix) = vigil_api::web::resolve_urls(
        &cli.listen_address,
        cli.external_url.as_deref(),
        cli.route_prefix.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let web_opts = vigil_api::web::WebOptions {
        route_prefix,
        config: match &cli.web_config_file {
            Some(p) => vigil_api::web::WebConfig::load(p).map_err(anyhow::Error::msg)?,
            None => Default::default(),
        },
        max_connections: cli.max_connections,
        read_timeout: nonzero(cli.read_timeout),
        read_header_timeout: nonzero(cli.read_header_timeout),
        ..Default::default()
    };
    let rules = rules_wiring::start(
        &cli,
        head.clone(),
        &reloader,
        &external_url,
        EngineOptions {
            lookback_delta_ms: cli.lookback_delta.as_millis() as i64,
            use_start_timestamps: features::enabled(&cli.enable_feature, "use-start-timestamps"),
            ..Default::default()
        },
    )?;
    let rules = Arc::new(rules);
    let state = Arc::new(ApiState {
        db: remote_wiring::fanout(&remote, head.clone()),
        engine: Engine::new(EngineOptions {
            lookback_delta_ms: cli.lookback_delta.as_millis() as i64,
            timeout: (cli.query_timeout.as_millis() > 0)
                .then(|| std::time::Duration::from_millis(cli.query_timeout.as_millis())),
            max_samples: cli.query_max_samples,
            max_concurrency: Some(vigil_promql::QueryGate::new(cli.query_max_concurrency)),
            use_start_timestamps: features::enabled(&cli.enable_feature, "use-start-timestamps"),
            parallelism: match cli.query_parallelism {
                0 => EngineOptions::default().parallelism,
                n => n,
            },
            ..Default::default()
        }),
        scrape: Some(Arc::new(api_wiring::Targets(scrape.clone()))),
        self_metrics: {
            let render = self_metrics::renderer(head.clone());
            let reloader = reloader.clone();
            let rules = rules.clone();
            let remote = remote.clone();
            let scrape = scrape.clone();
            Box::new(move || {
                render()
                    + &reloader.render_metrics()
                    + &rules.render_metrics()
                    + &remote.render_metrics()
                    + &vigil_scrape::dns_sd::render_metrics()
                    + &vigil_scrape::consul_sd_metrics()
                    + &vigil_scrape::render_sd_metrics(&[
                        scrape.sd_snapshot(),
                        rules.notify_sd.sd_snapshot(),
                    ])
                    + &vigil_scrape::kubernetes_sd_metrics()
            })
        },
        lifecycle: cli.enable_lifecycle.then(|| vigil_api::Lifecycle {
            reload: {
                let reloader = reloader.clone();
                Box::new(move || reloader.reload())
            },
            quit: quit.clone(),
        }),
        version: cli::VERSION.to_string(),
        info: {
            let mut info =
                api_wiring::server_info(&cli, head.clone(), reloader.clone(), external_url);
            let notifier = rules.notifier.clone();
            info.alertmanagers = Box::new(move || notifier.alertmanagers());
            let notifier = rules.notifier.clone();
            info.dropped_alertmanagers = Box::new(move || notifier.active_and_dropped().1);
            info
        },
        rules: Some(Arc::new(api_wiring::Rules(rules.manager.clone()))),
    });
    tracing::info!(address = %listener.local_addr()?, "Listening; the server is ready to receive web requests");

    tokio::spawn(retention_loop(
        head.clone(),
        maintenance_interval(cli.min_block_duration.to_std()),
    ));
    tokio::spawn(reload_on_sighup(reloader.clone()));

    let remote_routes = remote_wiring::routes(&cli, &remote, head.clone(), reloader.clone());
    let app =
        vigil_api::web::app_with(state, &web_opts, remote_routes).map_err(anyhow::Error::msg)?;
    vigil_api::web::serve(listener, app, &web_opts, shutdown_signal(quit)).await?;
    tracing::info!("Stopping scrape loops");
    scrape.stop_all().await;
    rules.manager.stop();
    tracing::info!("Stopping remote storage");
    remote.stop().await;
    tracing::info!("Closing storage");
    let db = head.clone();
    match tokio::task::spawn_blocking(move || db.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!("Error closing storage: {e}"),
        Err(e) => tracing::error!("Error closing storage: {e}"),
    }
    tracing::info!("See you next time!");
    Ok(())
}

/// `vigil tsdb import openmetrics FILE DATADIR`: writes blocks with a progress bar on stderr.
fn tsdb_import(file: &std::path::Path, dir: &std::path::Path, block_ms: i64) -> i32 {
    let started = std::time::Instant::now();
    let mut last_pct = usize::MAX;
    let mut progress = |done: usize, total: usize, samples: u64| {
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        if pct != last_pct {
            last_pct = pct;
            let bar = "#".repeat(pct / 4) + &" ".repeat(25 - pct / 4);
            eprint!("\r[{bar}] {pct:3}%  {samples} samples");
        }
    };
    match vigil_tsdb::import::import_openmetrics_file(file, dir, block_ms, &mut progress) {
        Ok(rep) => {
            eprintln!();
            println!(
                "Imported {} samples of {} series into {} blocks in {} in {:.1?}.",
                rep.samples,
                rep.series,
                rep.blocks.len(),
                dir.display(),
                started.elapsed()
            );
            if rep.without_timestamp > 0 {
                println!(
                    "Skipped {} samples without a timestamp.",
                    rep.without_timestamp
                );
            }
            if rep.refused > 0 {
                println!("Refused {} duplicate samples.", rep.refused);
            }
            0
        }
        Err(e) => {
            eprintln!("\nimport failed: {e}");
            1
        }
    }
}

/// Opens the TSDB in `--storage.tsdb.path`, replaying its WAL.
fn open_storage(cli: &Cli, config: &vigil_config::Config) -> Result<Tsdb> {
    // `storage.tsdb.out_of_order_time_window` in prometheus.yml. vigil reads it at start only;
    // Prometheus also applies a changed window on reload (docs/architecture.md).
    let ooo_ms = config
        .storage
        .tsdb
        .as_ref()
        .map_or(0, |t| t.out_of_order_time_window.as_millis() as i64);
    let opts = TsdbOptions {
        retention_ms: cli.retention_time.as_millis() as i64,
        retention_bytes: cli.retention_size.unwrap_or(0),
        max_series: cli.max_series,
        out_of_order_time_window_ms: ooo_ms,
        wal_compression: match (
            cli.wal_compression && !cli.no_wal_compression,
            cli.wal_compression_type.as_str(),
        ) {
            (false, _) => vigil_tsdb::WalCompression::None,
            (true, "snappy") => vigil_tsdb::WalCompression::Snappy,
            (true, _) => vigil_tsdb::WalCompression::Zstd,
        },
        block_range_ms: (cli.min_block_duration.as_millis() as i64).max(1000),
        ..Default::default()
    };
    let db = Tsdb::open(&cli.tsdb_path, opts).with_context(|| {
        format!(
            "cannot open storage in {} (--storage.tsdb.path)",
            cli.tsdb_path.display()
        )
    })?;
    tracing::info!(
        path = %cli.tsdb_path.display(),
        duration = %format!("{:.3}s", db.replay_duration().as_secs_f64()),
        series = db.head().num_series(),
        "WAL replay completed"
    );
    Ok(db)
}

/// How often storage maintenance runs: every minute, as Prometheus does, or a quarter of the
/// block range when that is shorter (at least 250 ms). With the default 2h blocks this is
/// the minute; a short `--storage.tsdb.min-block-duration` (crash and churn tests) makes head
/// compaction, block compaction, retention and checkpoints run as often as the range asks,
/// instead of the head growing to 60 s whatever the range. No separate flag: the range is the
/// one knob, and a range shorter than the interval made the interval wrong anyway.
fn maintenance_interval(block_range: std::time::Duration) -> std::time::Duration {
    (block_range / 4).clamp(
        std::time::Duration::from_millis(250),
        std::time::Duration::from_secs(60),
    )
}

/// Retention, compaction and WAL checkpoints every `every`, off the async workers.
async fn retention_loop(db: Arc<Tsdb>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let db = db.clone();
        match tokio::task::spawn_blocking(move || db.maintain()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("Storage maintenance failed: {e}"),
            Err(e) => tracing::error!("Storage maintenance failed: {e}"),
        }
    }
}

/// On SIGHUP, reloads the config; a bad new config is logged and the old one keeps running.
async fn reload_on_sighup(reloader: Arc<Reloader>) {
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        let r = reloader.clone();
        let _ = tokio::task::spawn_blocking(move || r.reload()).await;
    }
}

async fn shutdown_signal(quit: Arc<tokio::sync::Notify>) {
    let term = async {
        if let Ok(mut s) = signal(SignalKind::terminate()) {
            s.recv().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("Received SIGINT, exiting gracefully..."),
        _ = term => tracing::info!("Received SIGTERM, exiting gracefully..."),
        _ = quit.notified() => tracing::info!("Received termination request via web service, exiting gracefully..."),
    }
    // The profile shows what was live while running, not what shutdown leaves.
    #[cfg(feature = "dhat-heap")]
    drop(PROFILER.lock().unwrap().take());
}

/// A duration flag where 0 means "no limit".
fn nonzero(d: vigil_model::Duration) -> Option<std::time::Duration> {
    (d.as_millis() > 0).then(|| d.to_std())
}

#[cfg(test)]
mod tests {
    use super::maintenance_interval;
    use std::time::Duration;

    #[test]
    fn maintenance_runs_every_minute_or_a_quarter_of_a_short_block_range() {
        assert_eq!(
            maintenance_interval(Duration::from_secs(7200)),
            Duration::from_secs(60)
        );
        assert_eq!(
            maintenance_interval(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        assert_eq!(
            maintenance_interval(Duration::from_millis(100)),
            Duration::from_millis(250)
        );
    }
}
