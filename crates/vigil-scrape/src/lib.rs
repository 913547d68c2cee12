//! Scraping: turns scrape configs into targets, and targets into samples in the Appender.
//!
//! Each target runs its own loop on the tokio runtime. A loop owns everything it reuses
//! between scrapes: the body buffer and the scrape cache that maps the raw series text of the
//! last scrape to its series reference, so an unchanged series costs one comparison with the
//! line the target sent in its place last time (`scrape_cache`) instead of a label parse,
//! relabel, sort and index lookup. The cache also
//! yields staleness: series that were in the last scrape and are not in this one get a
//! StaleNaN, as do all series of a target that fails or goes away.

mod consul;
mod discovery;
pub mod dns_sd;
mod kubernetes;
mod manager;
mod scrape_cache;
mod scrape_loop;
mod sd_manager;
mod sd_util;
mod target;

pub use consul::render_metrics as consul_sd_metrics;
pub use discovery::SourcedGroup;
pub use kubernetes::render_metrics as kubernetes_sd_metrics;
pub use manager::{DroppedTarget, ScrapeManager, TargetHealth, TargetStatus};
pub use sd_manager::{
    DiscoveredGroups, DiscoveryManager, SdSnapshot, alertmanager_discovery_configs,
    render_sd_metrics,
};
pub use target::{Target, targets_from_groups};
