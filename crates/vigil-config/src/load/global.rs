//! The `global` section: its checks and the defaults every other section inherits from it.

use super::names::{validate_label_name, validate_name_schemes};
use super::scrape::{default_scrape_protocols, proto_first_scrape_protocols, validate_protocols};
use crate::error::Problem;
use crate::types::*;
use vigil_model::Duration;

const DEFAULT_SCRAPE_INTERVAL: Duration = Duration(60_000);
const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration(10_000);
const DEFAULT_EVALUATION_INTERVAL: Duration = Duration(60_000);

pub(super) fn validate_global(g: &mut GlobalConfig) -> Result<(), Problem> {
    validate_name_schemes(
        g.metric_name_validation_scheme.as_deref(),
        g.metric_name_escaping_scheme.as_deref(),
        "global",
    )?;
    let legacy = g.metric_name_validation_scheme.as_deref() == Some("legacy");
    for name in g.external_labels.keys() {
        validate_label_name(name, legacy, &format!("global.external_labels.{name}"))?;
    }
    if g.scrape_interval.0 == 0 {
        g.scrape_interval = DEFAULT_SCRAPE_INTERVAL;
    }
    if g.scrape_timeout > g.scrape_interval {
        return Err(Problem::new(
            "global.scrape_timeout",
            format!(
                "global scrape timeout ({}) greater than scrape interval ({})",
                g.scrape_timeout, g.scrape_interval
            ),
        ));
    }
    if g.scrape_timeout.0 == 0 {
        g.scrape_timeout = DEFAULT_SCRAPE_TIMEOUT.min(g.scrape_interval);
    }
    if g.evaluation_interval.0 == 0 {
        g.evaluation_interval = DEFAULT_EVALUATION_INTERVAL;
    }
    match &g.scrape_protocols {
        Some(p) => validate_protocols(p, "global.scrape_protocols")?,
        None => {
            g.scrape_protocols = Some(if g.scrape_native_histograms == Some(true) {
                proto_first_scrape_protocols()
            } else {
                default_scrape_protocols()
            })
        }
    }
    Ok(())
}
