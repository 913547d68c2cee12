//! Targets: the labels a scrape config gives each address, after target relabeling.

use vigil_config::{ScrapeConfig, StaticConfig, relabel};
use vigil_model::{Labels, LabelsBuilder};

/// One scrape target: where to scrape and the labels every sample from it gets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The URL to scrape, query parameters included.
    pub url: String,
    /// Labels attached to every sample (`job`, `instance`, group labels); no `__` labels.
    pub labels: Labels,
    /// Labels before relabeling, as `/api/v1/targets` shows `discoveredLabels`.
    pub discovered: Labels,
}

/// Expands the config's target groups into targets, applying `relabel_configs`. Targets
/// that relabeling drops are left out.
pub fn targets_from_config(cfg: &ScrapeConfig, groups: &[StaticConfig]) -> Vec<Target> {
    let mut out = Vec::new();
    for g in groups {
        for addr in &g.targets {
            let mut b = LabelsBuilder::new();
            for (k, v) in &g.labels {
                b.set(k.clone(), v.clone());
            }
            b.set("__address__", addr.clone());
            b.set("job", cfg.job_name.clone());
            b.set("__scheme__", cfg.scheme.clone());
            b.set("__metrics_path__", cfg.metrics_path.clone());
            b.set("__scrape_interval__", cfg.scrape_interval.to_string());
            b.set("__scrape_timeout__", cfg.scrape_timeout.to_string());
            for (k, vs) in &cfg.params {
                if let Some(v) = vs.first() {
                    b.set(format!("__param_{k}"), v.clone());
                }
            }
            let discovered = b.build();
            let Some(relabeled) = relabel::process(&discovered, &cfg.relabel_configs) else {
                continue;
            };
            if let Some(t) = finish_target(cfg, discovered, relabeled) {
                out.push(t);
            }
        }
    }
    out
}

/// Builds the URL from the `__` labels, defaults `instance`, and strips the `__` labels.
fn finish_target(cfg: &ScrapeConfig, discovered: Labels, labels: Labels) -> Option<Target> {
    let addr = labels.get("__address__")?.to_string();
    if addr.is_empty() {
        return None;
    }
    let scheme = labels.get("__scheme__").unwrap_or("http");
    let path = labels.get("__metrics_path__").unwrap_or("/metrics");
    let mut query: Vec<(String, String)> = Vec::new();
    for (k, vs) in &cfg.params {
        // A relabeled __param_ label overrides the first value, as in Prometheus.
        let first = labels.get(&format!("__param_{k}")).map(str::to_string);
        for (i, v) in vs.iter().enumerate() {
            let v = if i == 0 {
                first.clone().unwrap_or_else(|| v.clone())
            } else {
                v.clone()
            };
            query.push((k.clone(), v));
        }
    }
    let mut url = format!("{scheme}://{addr}{path}");
    if !query.is_empty() {
        let qs: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&qs.join("&"));
    }
    let mut b = labels.to_builder();
    if b.get("instance").is_none() {
        b.set("instance", addr);
    }
    b.retain(|l| !l.name.starts_with("__"));
    Some(Target {
        url,
        labels: b.build(),
        discovered,
    })
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
