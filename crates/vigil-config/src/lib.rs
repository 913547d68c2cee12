//! `prometheus.yml` for vigil: the schema, validation with `file:line:col` errors, and
//! relabeling.
//!
//! This crate sits just below `vigil-model` in the DAG and knows nothing of scraping or
//! storage. Its key decision is to accept *every* Prometheus 3.x config: keys are checked as
//! strictly as Prometheus does (unknown keys, duplicates, empty entries, bad durations are
//! errors naming file, line and key), while features vigil does not implement (most service
//! discoveries, OAuth2, SigV4, tracing, OTLP, native histograms) are decoded as opaque values and
//! reported as [`Loaded::warnings`], one per feature, so a drop-in replacement never refuses a
//! file Prometheus would run.
//!
//! After [`load_file`]/[`load_str`] every default is filled in: scrape configs carry their
//! effective interval, timeout and limits (inherited from `global` as Prometheus does), relative
//! paths are resolved against the config file's directory, the legacy `bearer_token` settings
//! have become `authorization`, and jobs from `scrape_config_files` are appended to
//! `scrape_configs`. Serializing a [`Config`] gives Prometheus' `<secret>` for credentials.

mod de;
mod dns_sd;
mod error;
mod lines;
mod load;
pub mod relabel;
mod types;

pub use de::{Opaque, Secret, format_size, parse_size, redact_url, redact_url_as};
pub use dns_sd::{DnsRecordType, DnsSdConfig};
pub use error::{ConfigError, Location};
pub use lines::LineIndex;
pub use load::{
    Loaded, SCRAPE_PROTOCOLS, default_scrape_protocols, load_file, load_str,
    proto_first_scrape_protocols, read_file_sd,
};
pub use types::*;

/// The configuration used when none is given: Prometheus'
/// `documentation/examples/prometheus.yml`, scraping vigil itself.
pub const DEFAULT_CONFIG: &str = r#"# my global config
global:
  scrape_interval: 15s # Set the scrape interval to every 15 seconds. Default is every 1 minute.
  evaluation_interval: 15s # Evaluate rules every 15 seconds. The default is every 1 minute.
  # scrape_timeout is set to the global default (10s).

# Alertmanager configuration
alerting:
  alertmanagers:
    - static_configs:
        - targets:
          # - alertmanager:9093

# Load rules once and periodically evaluate them according to the global 'evaluation_interval'.
rule_files:
  # - "first_rules.yml"
  # - "second_rules.yml"

# A scrape configuration containing exactly one endpoint to scrape:
# Here it's Prometheus itself.
scrape_configs:
  # The job name is added as a label `job=<job_name>` to any timeseries scraped from this config.
  - job_name: "prometheus"

    # metrics_path defaults to '/metrics'
    # scheme defaults to 'http'.

    static_configs:
      - targets: ["localhost:9090"]
       # The label name is added as a label `app=<label_name>` to any timeseries scraped from this config.
        labels:
          app: "prometheus"
"#;
