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
    after_help = "Examples:
  vigil --config.file=prometheus.yml                  scrape, store and serve on :9090
  vigil check config prometheus.yml                   validate a config as promtool does
  vigil tsdb import openmetrics data.om data/         backfill blocks from a file
Flags, config keys and the HTTP API: docs/cli.md, docs/configuration.md, docs/api.md.
kill -HUP (or POST /-/reload with --web.enable-lifecycle) reloads the config.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Prometheus configuration file path. Without it, an embedded default that scrapes vigil itself.
    #[arg(
        help_heading = "CONFIGURATION",
        long = "config.file",
        value_name = "FILE"
    )]
    pub config_file: Option<PathBuf>,

    /// Base path for metrics storage.
    #[arg(
        help_heading = "STORAGE",
        long = "storage.tsdb.path",
        value_name = "DIR",
        default_value = "data/"
    )]
    pub tsdb_path: PathBuf,

    /// How long to retain samples in storage (e.g. 15d, 12h). 0 keeps them forever.
    #[arg(
        help_heading = "STORAGE",
        long = "storage.tsdb.retention.time",
        value_name = "DURATION",
        default_value = "15d"
    )]
    pub retention_time: Duration,

    /// Time range of the head block and of the blocks it is compacted into (a hidden flag in
    /// Prometheus, for testing): the head is written to a block once it spans 1.5 times this.
    /// Shorter ranges make head compaction frequent (benchmarks of series churn, crash tests).
    #[arg(
        help_heading = "STORAGE",
        long = "storage.tsdb.min-block-duration",
        value_name = "DURATION",
        default_value = "2h"
    )]
    pub min_block_duration: Duration,

    /// Maximum number of bytes of storage (e.g. 512MB, 10GB; units B, KB, MB, GB, TB, PB with
    /// base 1024). Unset: no limit.
    #[arg(help_heading = "STORAGE", long = "storage.tsdb.retention.size", value_name = "SIZE", value_parser = parse_bytes)]
    pub retention_size: Option<u64>,

    /// Maximum number of active series in the head; past it new series are refused (and
    /// counted), existing ones keep flowing. 0 disables the limit.
    #[arg(
        help_heading = "STORAGE",
        long = "storage.tsdb.max-series",
        value_name = "N",
        default_value_t = 0
    )]
    pub max_series: usize,

    /// Compress the write-ahead log (with --storage.tsdb.wal-compression-type). On by
    /// default, as in Prometheus; reading handles compressed and plain records either way.
    #[arg(
        help_heading = "STORAGE",
        long = "storage.tsdb.wal-compression",
        value_name = "BOOL",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub wal_compression: bool,

    /// Do not compress the write-ahead log.
    #[arg(help_heading = "STORAGE", long = "no-storage.tsdb.wal-compression")]
    pub no_wal_compression: bool,

    /// The WAL compression algorithm: zstd or snappy. vigil's default is zstd (Prometheus':
    /// snappy): on scraped samples its records are about a quarter smaller, for a few
    /// nanoseconds more per sample. Either can be read back whatever is set now.
    #[arg(
        help_heading = "STORAGE",
        long = "storage.tsdb.wal-compression-type",
        value_name = "TYPE",
        default_value = "zstd",
        value_parser = ["snappy", "zstd"]
    )]
    pub wal_compression_type: String,

    /// Align scrape timestamps to the target's schedule when a scrape starts within
    /// --scrape.timestamp-tolerance of it (as Prometheus does): regular timestamps cost
    /// almost nothing to store, timer jitter of a millisecond or two costs bits per sample.
    #[arg(
        help_heading = "SCRAPE",
        long = "scrape.adjust-timestamps",
        value_name = "BOOL",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub scrape_adjust_timestamps: bool,

    /// Do not align scrape timestamps.
    #[arg(help_heading = "SCRAPE", long = "no-scrape.adjust-timestamps")]
    pub no_scrape_adjust_timestamps: bool,

    /// How far a scrape may start from its schedule and still get the scheduled timestamp
    /// (at most 1% of the scrape interval is used).
    #[arg(
        help_heading = "SCRAPE",
        long = "scrape.timestamp-tolerance",
        value_name = "DURATION",
        default_value = "2ms"
    )]
    pub scrape_timestamp_tolerance: Duration,

    /// Address to listen on for the UI, API, and telemetry.
    #[arg(
        help_heading = "WEB",
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = "0.0.0.0:9090"
    )]
    pub listen_address: String,

    /// Enable shutdown and reload via HTTP request (POST /-/reload, POST /-/quit).
    #[arg(help_heading = "WEB", long = "web.enable-lifecycle")]
    pub enable_lifecycle: bool,

    /// Comma-separated Prometheus feature names (the flag may repeat). Accepted so a
    /// Prometheus command line works unchanged; each is logged with what vigil does with it
    /// (on by default here, a no-op, or not implemented and ignored). See docs/cli.md.
    #[arg(
        help_heading = "FEATURES",
        long = "enable-feature",
        value_name = "NAME[,NAME]"
    )]
    pub enable_feature: Vec<String>,

    /// Enable API endpoints for admin control actions (/api/v1/admin/tsdb/...).
    #[arg(help_heading = "WEB", long = "web.enable-admin-api")]
    pub enable_admin_api: bool,

    /// Enable API endpoint accepting remote write requests (POST /api/v1/write).
    #[arg(
        help_heading = "REMOTE STORAGE",
        long = "web.enable-remote-write-receiver"
    )]
    pub enable_remote_write_receiver: bool,

    /// Enable API endpoint accepting OTLP write requests (POST /api/v1/otlp/v1/metrics).
    #[arg(help_heading = "REMOTE STORAGE", long = "web.enable-otlp-receiver")]
    pub enable_otlp_receiver: bool,

    /// How long to wait flushing samples on shutdown or config reload (remote write).
    #[arg(
        help_heading = "REMOTE STORAGE",
        long = "storage.remote.flush-deadline",
        value_name = "DURATION",
        default_value = "1m"
    )]
    pub remote_flush_deadline: Duration,

    /// Maximum overall number of samples to return via the remote read interface, in a single
    /// query. 0 means no limit.
    #[arg(
        help_heading = "REMOTE STORAGE",
        long = "storage.remote.read-sample-limit",
        value_name = "N",
        default_value = "5e7",
        value_parser = parse_count
    )]
    pub remote_read_sample_limit: usize,

    /// Maximum number of concurrent remote read calls. 0 means no limit.
    #[arg(
        help_heading = "REMOTE STORAGE",
        long = "storage.remote.read-concurrent-limit",
        value_name = "N",
        default_value_t = 10
    )]
    pub remote_read_concurrent_limit: usize,

    /// Maximum number of bytes in a single frame of a streamed remote read response.
    #[arg(
        help_heading = "REMOTE STORAGE",
        long = "storage.remote.read-max-bytes-in-frame",
        value_name = "BYTES",
        default_value_t = 1_048_576
    )]
    pub remote_read_max_bytes_in_frame: usize,

    /// WAL segments a remote-write queue has not sent yet are kept past checkpoints up to this
    /// many bytes (units as --storage.tsdb.retention.size); past it the oldest are deleted,
    /// counted and logged. vigil-specific.
    #[arg(
        help_heading = "REMOTE STORAGE",
        long = "storage.remote.wal-keep-max-size",
        value_name = "SIZE",
        default_value = "1GB",
        value_parser = parse_bytes
    )]
    pub remote_wal_keep_max_size: u64,

    /// [EXPERIMENTAL] Path to a configuration file that can enable TLS or authentication
    /// (Prometheus' web config format: tls_server_config, basic_auth_users with bcrypt hashes).
    #[arg(help_heading = "WEB", long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,

    /// The URL under which vigil is externally reachable (e.g. behind a reverse proxy). Used
    /// for generated links; its path is the default route prefix.
    #[arg(help_heading = "WEB", long = "web.external-url", value_name = "URL")]
    pub external_url: Option<String>,

    /// Prefix for the internal routes of web endpoints. Defaults to the path of --web.external-url.
    #[arg(help_heading = "WEB", long = "web.route-prefix", value_name = "PATH")]
    pub route_prefix: Option<String>,

    /// Maximum number of simultaneous connections. 0 means no limit. When it is reached, the
    /// oldest connection without a request in flight (idle, or still sending its request) is
    /// closed to admit a new one.
    #[arg(
        help_heading = "WEB",
        long = "web.max-connections",
        value_name = "N",
        default_value_t = 512
    )]
    pub max_connections: usize,

    /// Maximum duration before timing out read of the request, and closing idle
    /// connections. 0 means no limit.
    #[arg(
        help_heading = "WEB",
        long = "web.read-timeout",
        value_name = "DURATION",
        default_value = "5m"
    )]
    pub read_timeout: Duration,

    /// Maximum duration to receive a request's head (request line and headers), from the
    /// connection's accept or the request's first byte; a slower client is disconnected
    /// (vigil's own flag, against slowloris clients). 0 means only --web.read-timeout applies.
    #[arg(
        help_heading = "WEB",
        long = "web.read-header-timeout",
        value_name = "DURATION",
        default_value = "10s"
    )]
    pub read_header_timeout: Duration,

    /// Maximum time a query may take before being aborted.
    #[arg(
        help_heading = "QUERY",
        long = "query.timeout",
        value_name = "DURATION",
        default_value = "2m"
    )]
    pub query_timeout: Duration,

    /// Maximum number of samples a single query can load into memory.
    #[arg(
        help_heading = "QUERY",
        long = "query.max-samples",
        value_name = "N",
        default_value_t = 50_000_000
    )]
    pub query_max_samples: usize,

    /// Maximum number of queries executed concurrently; further queries wait for a slot.
    #[arg(
        help_heading = "QUERY",
        long = "query.max-concurrency",
        value_name = "N",
        default_value_t = 20
    )]
    pub query_max_concurrency: usize,

    /// Threads one range query may use: its steps are split into that many parts evaluated
    /// at once (vigil only; 0 = one per CPU core).
    #[arg(
        help_heading = "QUERY",
        long = "query.parallelism",
        value_name = "N",
        default_value_t = 0
    )]
    pub query_parallelism: usize,

    /// The maximum lookback duration for retrieving metrics during expression evaluations.
    #[arg(
        help_heading = "QUERY",
        long = "query.lookback-delta",
        value_name = "DURATION",
        default_value = "5m"
    )]
    pub lookback_delta: Duration,

    /// Only log messages with the given severity or above: debug, info, warn, error.
    #[arg(help_heading = "LOGGING", long = "log.level", value_name = "LEVEL", default_value = "info", value_parser = ["debug", "info", "warn", "error"])]
    pub log_level: String,

    /// Minimum duration between alert and restored "for" state. This is maintained only for
    /// alerts with configured "for" time greater than the grace period.
    #[arg(
        help_heading = "RULES AND ALERTING",
        long = "rules.alert.for-grace-period",
        value_name = "DURATION",
        default_value = "10m"
    )]
    pub for_grace_period: Duration,

    /// Max time to tolerate Prometheus outage for restoring "for" state of alert.
    #[arg(
        help_heading = "RULES AND ALERTING",
        long = "rules.alert.for-outage-tolerance",
        value_name = "DURATION",
        default_value = "1h"
    )]
    pub for_outage_tolerance: Duration,

    /// Minimum amount of time to wait before resending an alert to Alertmanager.
    #[arg(
        help_heading = "RULES AND ALERTING",
        long = "rules.alert.resend-delay",
        value_name = "DURATION",
        default_value = "1m"
    )]
    pub resend_delay: Duration,

    /// The capacity of the queue for pending Alertmanager notifications.
    #[arg(
        help_heading = "RULES AND ALERTING",
        long = "alertmanager.notification-queue-capacity",
        value_name = "N",
        default_value_t = 10000
    )]
    pub notification_queue_capacity: usize,

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
    /// Work with the TSDB, as `promtool tsdb` does.
    Tsdb {
        #[command(subcommand)]
        what: TsdbCommand,
    },
    /// Unit testing, as `promtool test` does.
    Test {
        #[command(subcommand)]
        what: TestCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TestCommand {
    /// Run rule unit tests (promtool's format): exit 0 if all pass, 1 otherwise.
    Rules {
        /// The unit-test files.
        #[arg(required = true, value_name = "TEST-FILE")]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TsdbCommand {
    /// Import samples from a file into blocks (backfill).
    Import {
        #[command(subcommand)]
        format: ImportFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportFormat {
    /// An OpenMetrics file whose samples carry timestamps, like `promtool tsdb
    /// create-blocks-from openmetrics`. A running vigil on DATADIR picks the blocks up within a
    /// minute.
    Openmetrics {
        /// The OpenMetrics input file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The data directory (--storage.tsdb.path of the vigil that will serve the blocks).
        #[arg(value_name = "DATADIR", default_value = "data/")]
        dir: PathBuf,
        /// Time range of each block written (at least 2h, aligned to multiples of itself).
        /// The default, 18h, is the block size vigil's own compaction builds from 2h blocks
        /// under the default retention, so the imported data is served at once as it will be
        /// after compaction: longer chunks, less disk, faster long-range queries. promtool's
        /// default is 2h; pass 2h for its layout.
        #[arg(
            long = "max-block-duration",
            value_name = "DURATION",
            default_value = "18h"
        )]
        max_block_duration: Duration,
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
    /// Check that rule files are valid: exit 0 and SUCCESS, or exit 1 with the reasons.
    Rules {
        /// The rule files to check.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

/// A count written as an integer or, as Prometheus spells this flag's default, in exponent
/// form (`5e7`); it must be a whole number.
fn parse_count(s: &str) -> Result<usize, String> {
    if let Ok(n) = s.parse::<usize>() {
        return Ok(n);
    }
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f <= usize::MAX as f64 => {
            Ok(f as usize)
        }
        _ => Err(format!(
            "invalid count {s:?}: expected a whole number such as 50000000 or 5e7"
        )),
    }
}

/// Parses a byte size as Prometheus' `units.Base2Bytes` does: `512MB`, `1.5GB`, `1GB512MB`.
fn parse_bytes(s: &str) -> Result<u64, String> {
    // As Prometheus' units.ParseBase2Bytes (shared with the config's body_size_limit).
    match vigil_config::parse_size(s)? {
        n if n < 0 => Err(format!("invalid size {s:?}: must not be negative")),
        n => u64::try_from(n).map_err(|_| format!("size {s:?} is too large")),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_bytes, parse_count};

    #[test]
    fn counts_take_exponent_form() {
        assert_eq!(parse_count("50000000"), Ok(50_000_000));
        assert_eq!(parse_count("5e7"), Ok(50_000_000));
        for bad in ["5.5", "-1", "1e400", "x", ""] {
            assert!(parse_count(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_parse_as_prometheus_units() {
        for (s, want) in [
            ("0", 0),
            ("512B", 512),
            ("512MB", 512 << 20),
            ("10GB", 10 << 30),
            ("1.5GB", 3 << 29),
            ("1GB512MB", (1 << 30) + (512 << 20)),
            ("2KiB", 2048),
            ("1TB", 1 << 40),
            // As Go's duration-style parsing: a bare point on either side is fine.
            ("1.GB", 1 << 30),
            (".5GB", 512 << 20),
        ] {
            assert_eq!(parse_bytes(s), Ok(want), "{s}");
        }
        for bad in ["", "512", "GB", "5e7", "1XB", "-1GB", "99999999999EB"] {
            assert!(parse_bytes(bad).is_err(), "{bad} must be refused");
        }
    }
}
