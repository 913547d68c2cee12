//! Targets: the labels a scrape config gives each discovered address, after target
//! relabeling, exactly in Prometheus' order (`populateLabels`): group and `__meta_` labels
//! first, then the scrape config's defaults where a label is not already set, then
//! `relabel_configs`, then `instance` from `__address__`, then every `__` label removed.

use crate::discovery::SourcedGroup;
use std::collections::HashSet;
use vigil_config::{ScrapeConfig, relabel};
use vigil_model::{Labels, LabelsBuilder};

/// One scrape target: where to scrape and the labels every sample from it gets.
///
/// Two targets are the same target when their URL and labels are (Prometheus' target hash):
/// the discovered labels are not part of it, so a change that relabeling does not carry into
/// the target (a pod becoming ready, a new annotation) keeps its scrape loop running, and
/// discovered addresses that relabel into one target are scraped once.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL to scrape, query parameters included.
    pub url: String,
    /// Labels attached to every sample (`job`, `instance`, group labels); no `__` labels.
    pub labels: Labels,
    /// Labels before relabeling, as `/api/v1/targets` shows `discoveredLabels`.
    pub discovered: Labels,
}

impl PartialEq for Target {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url && self.labels == other.labels
    }
}

impl Eq for Target {}

impl std::hash::Hash for Target {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.url.hash(state);
        self.labels.hash(state);
    }
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
    // The first of several addresses that become the same target (by `Target`'s equality:
    // URL and labels) is kept, as Prometheus keeps one loop per target hash.
    let keep: Vec<bool> = {
        let mut seen = HashSet::with_capacity(out.len());
        out.iter().map(|t| seen.insert(t)).collect()
    };
    let mut keep = keep.into_iter();
    out.retain(|_| keep.next().unwrap_or(false));
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
    // The config's `params`, then every `__param_<name>` label (set there or by relabeling):
    // it replaces the first value of <name> or adds it, as Prometheus' target URL does; keys
    // in order, as Go's `url.Values.Encode` writes them.
    let mut params: std::collections::BTreeMap<&str, Vec<&str>> = cfg
        .params
        .iter()
        .map(|(k, vs)| (k.as_str(), vs.iter().map(String::as_str).collect()))
        .collect();
    for l in labels.iter() {
        if let Some(k) = l.name.strip_prefix("__param_") {
            let vs = params.entry(k).or_default();
            match vs.first_mut() {
                Some(first) => *first = &l.value,
                None => vs.push(&l.value),
            }
        }
    }
    let query: Vec<(&str, &str)> = params
        .iter()
        .flat_map(|(k, vs)| vs.iter().map(move |v| (*k, *v)))
        .collect();
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
        } else if b == b' ' {
            // Go's url.QueryEscape.
            out.push('+');
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

    /// The blackbox-exporter pattern: relabeling sets `__param_target` that the config's
    /// `params` do not name; it is in the URL (keys sorted, values escaped as Go does), and it
    /// replaces the first value of a configured parameter.
    #[test]
    fn relabeled_params_reach_the_url() {
        let c = cfg(
            "scrape_configs:\n  - job_name: probe\n    metrics_path: /probe\n    params:\n      module: [http_2xx, b]\n    relabel_configs:\n      - source_labels: [__address__]\n        target_label: __param_target\n      - target_label: __param_module\n        replacement: tcp connect\n      - target_label: __address__\n        replacement: bb:9115\n",
        );
        let (t, _) = targets_from_groups(&c, &[group(&["https://a.example/x?y=1"], &[])]);
        assert_eq!(
            t[0].url,
            "http://bb:9115/probe?module=tcp+connect&module=b&target=https%3A%2F%2Fa.example%2Fx%3Fy%3D1"
        );
    }

    /// Addresses that relabel into the same URL and labels are one target (the first).
    #[test]
    fn identical_targets_are_one() {
        let c = cfg(
            "scrape_configs:\n  - job_name: j\n    relabel_configs:\n      - source_labels: [__address__]\n        regex: '([^:]+):.*'\n        replacement: '$1:9090'\n        target_label: __address__\n",
        );
        let (t, dropped) = targets_from_groups(&c, &[group(&["p:1", "p:2", "q:1"], &[])]);
        let urls: Vec<&str> = t.iter().map(|t| t.url.as_str()).collect();
        assert_eq!(urls, ["http://p:9090/metrics", "http://q:9090/metrics"]);
        assert_eq!(t[0].discovered.get("__address__"), Some("p:1"));
        assert!(dropped.is_empty());
    }
}
