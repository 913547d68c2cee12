//! The command line: Prometheus' flag names and defaults, plus promtool-style subcommands.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use vigil_model::Duration;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Parser)]
#[command(
    name = "vigil",
    version = VERSION,
    about = "A Prometheus-compatible metrics collector and time-series database.",
    long_about = "vigil scrapes the targets of an unchanged prometheus.yml, stores the samples, \
and answers PromQL over Prometheus' HTTP API (/api/v1/query, ...), so Grafana, promtool and curl \
work against it unchanged.\n\nWithout --config.file it runs an embedded default that scrapes \
vigil itself at localhost:9090 every 15s, as Prometheus' example config does.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Prometheus configuration file path. Without it, an embedded default that scrapes vigil itself.
    #[arg(long = "config.file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// Base path for metrics storage.
    #[arg(
        long = "storage.tsdb.path",
        value_name = "DIR",
        default_value = "data/"
    )]
    pub tsdb_path: PathBuf,

    /// How long to retain samples in storage (e.g. 15d, 12h). 0 keeps them forever.
    #[arg(
        long = "storage.tsdb.retention.time",
        value_name = "DURATION",
        default_value = "15d"
    )]
    pub retention_time: Duration,

    /// Address to listen on for the UI, API, and telemetry.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = "0.0.0.0:9090"
    )]
    pub listen_address: String,

    /// The maximum lookback duration for retrieving metrics during expression evaluations.
    #[arg(
        long = "query.lookback-delta",
        value_name = "DURATION",
        default_value = "5m"
    )]
    pub lookback_delta: Duration,

    /// Only log messages with the given severity or above: debug, info, warn, error.
    #[arg(long = "log.level", value_name = "LEVEL", default_value = "info", value_parser = ["debug", "info", "warn", "error"])]
    pub log_level: String,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the validity of files, as `promtool check` does.
    Check {
        #[command(subcommand)]
        what: CheckCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Check that Prometheus configuration files are valid: exit 0 and SUCCESS, or exit 1 with the reason.
    Config {
        /// The configuration files to check.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}
