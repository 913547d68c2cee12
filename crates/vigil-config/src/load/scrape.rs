//! Scrape configs: validation, and the defaults they inherit from `global`.
//!
//! One function, `validate_scrape_configs`, checks the jobs of the main file and of every
//! file included through `scrape_config_files`, so both follow the same rules.

use super::Ctx;
use super::http::{validate_http_client, validate_http_sds};
use super::names::{check_legacy_relabels, validate_label_name, validate_name_schemes};
use super::paths::set_scrape_dir;
use crate::error::{ConfigError, Problem};
use crate::types::*;
use std::collections::HashSet;
use std::path::Path;

/// The scrape protocols Prometheus knows.
pub const SCRAPE_PROTOCOLS: [&str; 5] = [
    "PrometheusProto",
    "OpenMetricsText0.0.1",
    "OpenMetricsText1.0.0",
    "PrometheusText0.0.4",
    "PrometheusText1.0.0",
];

/// Default `scrape_protocols` (Prometheus' `DefaultScrapeProtocols`).
pub fn default_scrape_protocols() -> Vec<String> {
    [
        "OpenMetricsText1.0.0",
        "OpenMetricsText0.0.1",
        "PrometheusText1.0.0",
        "PrometheusText0.0.4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Default `scrape_protocols` when native histograms are enabled.
pub fn proto_first_scrape_protocols() -> Vec<String> {
    let mut v = vec!["PrometheusProto".to_string()];
    v.extend(default_scrape_protocols());
    v
}

pub(super) fn validate_protocols(protocols: &[String], key: &str) -> Result<(), Problem> {
    let mut seen = HashSet::new();
    for p in protocols {
        if !SCRAPE_PROTOCOLS.contains(&p.as_str()) {
            return Err(Problem::new(
                key,
                format!(
                    "unknown scrape protocol {p:?}, supported: {}",
                    SCRAPE_PROTOCOLS.join(", ")
                ),
            ));
        }
        if !seen.insert(p) {
            return Err(Problem::new(
                key,
                format!("duplicated protocol {p:?} in scrape_protocols"),
            ));
        }
    }
    Ok(())
}

pub(super) fn validate_target_groups(
    groups: &[StaticConfig],
    legacy: bool,
    key: &str,
) -> Result<(), Problem> {
    for (j, g) in groups.iter().enumerate() {
        for (k, t) in g.targets.iter().enumerate() {
            if t.contains('/') {
                return Err(Problem::new(
                    format!("{key}.static_configs[{j}].targets[{k}]"),
                    format!(
                        "{t:?} is not a valid hostname: a target is host:port; set the scheme with `scheme` and the path with `metrics_path`"
                    ),
                ));
            }
        }
        for name in g.labels.keys() {
            validate_label_name(
                name,
                legacy,
                &format!("{key}.static_configs[{j}].labels.{name}"),
            )?;
        }
    }
    Ok(())
}

/// Validates the jobs of one file (`ctx`): fills in what they inherit from `global`, claims
/// their names in `jobs` (taken names are an error) and resolves their paths against the
/// file's directory. `included_from` is the main config file when `ctx` is a file listed in
/// its `scrape_config_files`, and is named in the duplicate-job message.
pub(super) fn validate_scrape_configs(
    ctx: &Ctx<'_>,
    configs: &mut [ScrapeConfig],
    global: &GlobalConfig,
    legacy: bool,
    jobs: &mut HashSet<String>,
    included_from: Option<&Path>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let dir = ctx.dir();
    for (i, sc) in configs.iter_mut().enumerate() {
        let key = format!("scrape_configs[{i}]");
        ctx.check(validate_scrape_config(sc, global, legacy, &key, warnings))?;
        if !jobs.insert(sc.job_name.clone()) {
            let also = match included_from {
                None => String::new(),
                Some(main) => format!(
                    " (also defined in {} or a file it includes)",
                    main.display()
                ),
            };
            return Err(ctx.err(Problem::new(
                format!("{key}.job_name"),
                format!(
                    "found multiple scrape configs with job name {:?}{also}",
                    sc.job_name
                ),
            )));
        }
        set_scrape_dir(sc, &dir);
    }
    Ok(())
}

fn validate_scrape_config(
    sc: &mut ScrapeConfig,
    g: &GlobalConfig,
    global_legacy: bool,
    key: &str,
    warnings: &mut Vec<String>,
) -> Result<(), Problem> {
    if sc.job_name.is_empty() {
        return Err(Problem::new(format!("{key}.job_name"), "job_name is empty"));
    }
    let job = sc.job_name.clone();
    validate_name_schemes(
        sc.metric_name_validation_scheme.as_deref(),
        sc.metric_name_escaping_scheme.as_deref(),
        key,
    )?;
    let legacy = match sc.metric_name_validation_scheme.as_deref() {
        Some("legacy") => true,
        Some("utf8") => false,
        _ => global_legacy,
    };
    validate_http_client(&mut sc.http_parts_mut(), key)?;
    if sc.scheme != "http" && sc.scheme != "https" {
        return Err(Problem::new(
            format!("{key}.scheme"),
            format!(
                "scheme {:?} is not supported: use \"http\" or \"https\"",
                sc.scheme
            ),
        ));
    }
    if sc.scrape_interval.0 == 0 {
        sc.scrape_interval = g.scrape_interval;
    }
    if sc.scrape_timeout > sc.scrape_interval {
        return Err(Problem::new(
            format!("{key}.scrape_timeout"),
            format!(
                "scrape timeout ({}) greater than scrape interval ({}) for scrape config with job name {job:?}",
                sc.scrape_timeout, sc.scrape_interval
            ),
        ));
    }
    if sc.scrape_timeout.0 == 0 {
        sc.scrape_timeout = g.scrape_timeout.min(sc.scrape_interval);
    }
    for (mine, global) in [
        (&mut sc.body_size_limit, g.body_size_limit),
        (&mut sc.sample_limit, g.sample_limit),
        (&mut sc.target_limit, g.target_limit),
        (&mut sc.label_limit, g.label_limit),
        (&mut sc.label_name_length_limit, g.label_name_length_limit),
        (&mut sc.label_value_length_limit, g.label_value_length_limit),
        (&mut sc.keep_dropped_targets, g.keep_dropped_targets),
    ] {
        if *mine == 0 {
            *mine = global;
        }
    }
    let native_explicit = sc.scrape_native_histograms == Some(true);
    for (mine, global) in [
        (&mut sc.scrape_native_histograms, g.scrape_native_histograms),
        (
            &mut sc.always_scrape_classic_histograms,
            g.always_scrape_classic_histograms,
        ),
        (
            &mut sc.convert_classic_histograms_to_nhcb,
            g.convert_classic_histograms_to_nhcb,
        ),
        (&mut sc.extra_scrape_metrics, g.extra_scrape_metrics),
    ] {
        if mine.is_none() {
            *mine = Some(global.unwrap_or(false));
        }
    }
    match &sc.scrape_protocols {
        Some(p) => validate_protocols(p, &format!("{key}.scrape_protocols"))?,
        None => {
            sc.scrape_protocols = Some(if native_explicit {
                proto_first_scrape_protocols()
            } else {
                g.scrape_protocols
                    .clone()
                    .unwrap_or_else(default_scrape_protocols)
            });
        }
    }
    if let Some(fp) = &sc.fallback_scrape_protocol
        && !SCRAPE_PROTOCOLS.contains(&fp.as_str())
    {
        return Err(Problem::new(
            format!("{key}.fallback_scrape_protocol"),
            format!(
                "invalid fallback_scrape_protocol {fp:?} for job {job:?}, supported: {}",
                SCRAPE_PROTOCOLS.join(", ")
            ),
        ));
    }
    if sc.metric_name_validation_scheme.is_none() {
        sc.metric_name_validation_scheme = g.metric_name_validation_scheme.clone();
    }
    check_legacy_relabels(
        &sc.relabel_configs,
        legacy,
        &format!("{key}.relabel_configs"),
    )?;
    check_legacy_relabels(
        &sc.metric_relabel_configs,
        legacy,
        &format!("{key}.metric_relabel_configs"),
    )?;
    validate_target_groups(&sc.static_configs, legacy, key)?;
    validate_http_sds(&mut sc.http_sd_configs, key)?;
    super::consul::validate_consul_sds(&mut sc.consul_sd_configs, key)?;
    super::kubernetes::validate_kubernetes_sds(&mut sc.kubernetes_sd_configs, key)?;
    crate::dns_sd::validate_dns_sds(&sc.dns_sd_configs, key)?;
    for (i, f) in sc.file_sd_configs.iter().enumerate() {
        for (j, p) in f.files.iter().enumerate() {
            let ok = [".json", ".yml", ".yaml"].iter().any(|e| p.ends_with(e));
            if !ok {
                return Err(Problem::new(
                    format!("{key}.file_sd_configs[{i}].files[{j}]"),
                    format!("path {p:?} of file_sd_configs does not end in .json, .yml or .yaml"),
                ));
            }
        }
    }
    for sd in sc.unsupported_service_discoveries() {
        warnings.push(format!(
            "job {job:?}: {sd} is not supported by vigil and is ignored"
        ));
    }
    super::kubernetes::kubernetes_warnings(&sc.kubernetes_sd_configs, &job, warnings);
    if sc.oauth2.is_some() {
        warnings.push(format!(
            "job {job:?}: oauth2 is not supported by vigil; requests are sent without it"
        ));
    }
    Ok(())
}
