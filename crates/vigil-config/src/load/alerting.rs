//! The `alerting` section: `alert_relabel_configs` and each Alertmanager's settings.

use super::Ctx;
use super::http::{validate_http_client, validate_http_sds};
use super::names::{check_legacy_relabel, check_legacy_relabels};
use super::paths::{join_dir, set_http_dir};
use super::scrape::validate_target_groups;
use crate::error::{ConfigError, Problem};
use crate::types::*;

/// Validates `alerting` and resolves the Alertmanagers' paths.
pub(super) fn validate_alerting(
    ctx: &Ctx<'_>,
    alerting: &mut AlertingConfig,
    legacy: bool,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let dir = ctx.dir();
    for (i, r) in alerting.alert_relabel_configs.iter().enumerate() {
        ctx.check(check_legacy_relabel(
            r,
            legacy,
            &format!("alerting.alert_relabel_configs[{i}]"),
        ))?;
    }
    for (i, am) in alerting.alertmanagers.iter_mut().enumerate() {
        let key = format!("alerting.alertmanagers[{i}]");
        ctx.check(validate_alertmanager(am, legacy, &key, warnings))?;
        let mut h = am.http_parts_mut();
        set_http_dir(&mut h, &dir);
        for f in &mut am.file_sd_configs {
            for p in &mut f.files {
                join_dir(&dir, p);
            }
        }
        for h in &mut am.http_sd_configs {
            set_http_dir(&mut h.http_parts_mut(), &dir);
        }
        super::consul::set_consul_dirs(&mut am.consul_sd_configs, &dir);
        super::kubernetes::set_kubernetes_dirs(&mut am.kubernetes_sd_configs, &dir);
    }
    Ok(())
}

fn validate_alertmanager(
    am: &mut AlertmanagerConfig,
    legacy: bool,
    key: &str,
    warnings: &mut Vec<String>,
) -> Result<(), Problem> {
    validate_http_client(&mut am.http_parts_mut(), key)?;
    if am.api_version != "v2" {
        return Err(Problem::new(
            format!("{key}.api_version"),
            format!(
                "alertmanager api_version {:?} is not supported: only \"v2\" is",
                am.api_version
            ),
        ));
    }
    if am.scheme != "http" && am.scheme != "https" {
        return Err(Problem::new(
            format!("{key}.scheme"),
            format!(
                "scheme {:?} is not supported: use \"http\" or \"https\"",
                am.scheme
            ),
        ));
    }
    check_legacy_relabels(
        &am.relabel_configs,
        legacy,
        &format!("{key}.relabel_configs"),
    )?;
    check_legacy_relabels(
        &am.alert_relabel_configs,
        legacy,
        &format!("{key}.alert_relabel_configs"),
    )?;
    validate_target_groups(&am.static_configs, legacy, key)?;
    validate_http_sds(&mut am.http_sd_configs, key)?;
    super::consul::validate_consul_sds(&mut am.consul_sd_configs, key)?;
    super::kubernetes::validate_kubernetes_sds(&mut am.kubernetes_sd_configs, key)?;
    crate::dns_sd::validate_dns_sds(&am.dns_sd_configs, key)?;
    let who = key.trim_start_matches("alerting.");
    // Static, file, HTTP, DNS, Consul and Kubernetes discovery run for Alertmanagers as for
    // scrape jobs (the binary's `notify` discovery manager).
    for sd in am.unsupported_service_discoveries() {
        warnings.push(format!(
            "{who}: {sd} is not supported by vigil and is ignored"
        ));
    }
    if am.oauth2.is_some() {
        warnings.push(format!(
            "{who}: oauth2 is not supported by vigil; requests are sent without it"
        ));
    }
    if am.sigv4.is_some() {
        warnings.push(format!(
            "{who}: sigv4 is not supported by vigil; requests are sent unsigned"
        ));
    }
    Ok(())
}
