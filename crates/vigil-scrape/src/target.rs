//! Targets: the labels a scrape config gives each discovered address, after target
//! relabeling, exactly in Prometheus' order (`populateLabels`): group and `__meta_` labels
//! first, then the scrape config's defaults where a label is not already set, then
//! `relabel_configs`, then `instance` from `__address__`, then every `__` label removed.

use crate::discovery::SourcedGroup;
use vigil_config::{ScrapeConfig, relabel};
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

/// The targets of a scrape config, and the discovered label sets that relabeling dropped.
pub fn targets_from_groups(
    cfg: &ScrapeConfig,
    groups: &[SourcedGroup],
) -> (Vec<Target>, Vec<Labels>) {
    let (mut out, mut dropped) = (Vec::new(), Vec::new());
    for g in groups {
        for addr in &g.group.targets {
            let discovered = discovered_labels(cfg, g, addr);
            match relabel::process(&discovered, &cfg.relabel_configs)
                .and_then(|l| finish_target(cfg, discovered.clone(), l))
            {
                Some(t) => out.push(t),
                None => dropped.push(discovered),
            }
        }
    }
    (out, dropped)
}

fn discovered_labels(cfg: &ScrapeConfig, g: &SourcedGroup, addr: &str) -> Labels {
    let mut b = LabelsBuilder::new();
    for (k, v) in g.meta.iter().chain(&g.group.labels) {
        b.set(k.clone(), v.clone());
    }
    b.set("__address__", addr.to_string());
    let defaults = [
        ("job", cfg.job_name.clone()),
        ("__metrics_path__", cfg.metrics_path.clone()),
        ("__scheme__", cfg.scheme.clone()),
        ("__scrape_interval__", cfg.scrape_interval.to_string()),
        ("__scrape_timeout__", cfg.scrape_timeout.to_string()),
    ];
    for (k, v) in defaults {
        if b.get(k).is_none() {
            b.set(k, v);
        }
    }
    for (k, vs) in &cfg.params {
        let name = format!("__param_{k}");
        if let (None, Some(v)) = (b.get(&name), vs.first()) {
            b.set(name, v.clone());
        }
    }
    b.build()
}

/// Builds the URL from the `__` labels, defaults `instance`, and strips the `__` labels.
fn finish_target(cfg: &ScrapeConfig, discovered: Labels, labels: Labels) -> Option<Target> {
    let addr = labels
        .get("__address__")
        .filter(|a| !a.is_empty() && !a.contains('/'))?
        .to_string();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::Path;

    fn cfg(yaml: &str) -> ScrapeConfig {
        vigil_config::load_str(yaml, Path::new("/tmp/t.yml"))
            .unwrap()
            .config
            .scrape_configs
            .remove(0)
    }

    fn group(targets: &[&str], labels: &[(&str, &str)]) -> SourcedGroup {
        SourcedGroup {
            group: vigil_config::TargetGroup {
                targets: targets.iter().map(|s| s.to_string()).collect(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            meta: BTreeMap::new(),
        }
    }

    #[test]
    fn defaults_urls_and_instance() {
        let c = cfg(
            "scrape_configs:\n  - job_name: node\n    metrics_path: /m\n    params:\n      module: [a, b]\n",
        );
        let (t, dropped) = targets_from_groups(&c, &[group(&["h:9100"], &[("env", "prod")])]);
        assert!(dropped.is_empty());
        assert_eq!(t[0].url, "http://h:9100/m?module=a&module=b");
        assert_eq!(
            t[0].labels.to_string(),
            r#"{env="prod", instance="h:9100", job="node"}"#
        );
        assert_eq!(t[0].discovered.get("__param_module"), Some("a"));
    }

    #[test]
    fn group_labels_win_over_defaults_and_relabel_drops() {
        let c = cfg(
            "scrape_configs:\n  - job_name: node\n    relabel_configs:\n      - source_labels: [__address__]\n        regex: 'drop.*'\n        action: drop\n      - target_label: __scheme__\n        replacement: https\n",
        );
        let (t, dropped) =
            targets_from_groups(&c, &[group(&["keep:1", "drop:2"], &[("job", "custom")])]);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].url, "https://keep:1/metrics");
        assert_eq!(t[0].labels.get("job"), Some("custom"));
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].get("__address__"), Some("drop:2"));
    }
}
