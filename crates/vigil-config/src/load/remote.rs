//! The `remote_write` and `remote_read` sections.

use super::Ctx;
use super::http::{RESERVED_HEADERS, check_url_present, validate_http_client};
use super::names::check_legacy_relabels;
use super::paths::set_http_dir;
use crate::error::{ConfigError, Problem};
use crate::types::*;
use std::collections::{BTreeMap, HashSet};

/// Validates `remote_write` (names must be unique) and resolves its paths.
pub(super) fn validate_remote_writes(
    ctx: &Ctx<'_>,
    configs: &mut [RemoteWriteConfig],
    legacy: bool,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let dir = ctx.dir();
    let mut names = HashSet::new();
    for (i, rw) in configs.iter_mut().enumerate() {
        let key = format!("remote_write[{i}]");
        ctx.check(validate_remote_write(rw, legacy, &key, warnings))?;
        if !rw.name.is_empty() && !names.insert(rw.name.clone()) {
            return Err(ctx.err(Problem::new(
                format!("{key}.name"),
                format!(
                    "found multiple remote write configs with job name {:?}",
                    rw.name
                ),
            )));
        }
        set_http_dir(&mut rw.http_parts_mut(), &dir);
    }
    Ok(())
}

/// Validates `remote_read` (names must be unique) and resolves its paths.
pub(super) fn validate_remote_reads(
    ctx: &Ctx<'_>,
    configs: &mut [RemoteReadConfig],
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let dir = ctx.dir();
    let mut names = HashSet::new();
    for (i, rr) in configs.iter_mut().enumerate() {
        let key = format!("remote_read[{i}]");
        ctx.check(validate_remote_read(rr, &key, warnings))?;
        if !rr.name.is_empty() && !names.insert(rr.name.clone()) {
            return Err(ctx.err(Problem::new(
                format!("{key}.name"),
                format!(
                    "found multiple remote read configs with job name {:?}",
                    rr.name
                ),
            )));
        }
        set_http_dir(&mut rr.http_parts_mut(), &dir);
    }
    Ok(())
}

fn validate_headers(headers: &BTreeMap<String, String>, key: &str) -> Result<(), Problem> {
    for name in headers.keys() {
        let lower = name.to_ascii_lowercase();
        if lower == "authorization" {
            return Err(Problem::new(
                format!("{key}.headers.{name}"),
                "authorization header must be changed via the basic_auth, authorization, oauth2, sigv4, azuread or google_iam parameter",
            ));
        }
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(Problem::new(
                format!("{key}.headers.{name}"),
                format!("{name:?} is a reserved header. It must not be changed"),
            ));
        }
    }
    Ok(())
}

fn validate_remote_write(
    rw: &mut RemoteWriteConfig,
    legacy: bool,
    key: &str,
    warnings: &mut Vec<String>,
) -> Result<(), Problem> {
    check_url_present(&rw.url, "remote_write", &format!("{key}.url"))?;
    check_legacy_relabels(
        &rw.write_relabel_configs,
        legacy,
        &format!("{key}.write_relabel_configs"),
    )?;
    validate_headers(&rw.headers, key)?;
    if rw.protobuf_message != REMOTE_WRITE_V1 && rw.protobuf_message != REMOTE_WRITE_V2 {
        return Err(Problem::new(
            format!("{key}.protobuf_message"),
            format!(
                "unknown remote write protobuf message {:?}, supported: {REMOTE_WRITE_V1}, {REMOTE_WRITE_V2}",
                rw.protobuf_message
            ),
        ));
    }
    let auths = [
        rw.basic_auth.is_some(),
        rw.authorization.is_some() || rw.bearer_token.is_some() || rw.bearer_token_file.is_some(),
        rw.oauth2.is_some(),
        rw.sigv4.is_some(),
        rw.azuread.is_some(),
        rw.google_iam.is_some(),
    ];
    if auths.iter().filter(|b| **b).count() > 1 {
        return Err(Problem::new(
            key,
            "at most one of basic_auth, authorization, oauth2, sigv4, azuread or google_iam must be configured",
        ));
    }
    validate_http_client(&mut rw.http_parts_mut(), key)?;
    let q = &rw.queue_config;
    let qk = format!("{key}.queue_config");
    let positive = |v: i64, name: &str| {
        if v <= 0 {
            Err(Problem::new(
                format!("{qk}.{name}"),
                format!("{name} must be greater than 0, got {v}"),
            ))
        } else {
            Ok(())
        }
    };
    positive(q.capacity, "capacity")?;
    positive(q.max_shards, "max_shards")?;
    positive(q.min_shards, "min_shards")?;
    positive(q.max_samples_per_send, "max_samples_per_send")?;
    if q.min_shards > q.max_shards {
        return Err(Problem::new(
            format!("{qk}.min_shards"),
            format!(
                "min_shards ({}) must not be greater than max_shards ({})",
                q.min_shards, q.max_shards
            ),
        ));
    }
    if q.min_backoff > q.max_backoff {
        return Err(Problem::new(
            format!("{qk}.max_backoff"),
            format!(
                "max_backoff ({}) must not be less than min_backoff ({})",
                q.max_backoff, q.min_backoff
            ),
        ));
    }
    let who = if rw.name.is_empty() {
        key.to_string()
    } else {
        format!("remote_write {:?}", rw.name)
    };
    for (present, what) in [
        (rw.sigv4.is_some(), "sigv4"),
        (rw.azuread.is_some(), "azuread"),
        (rw.google_iam.is_some(), "google_iam"),
        (rw.oauth2.is_some(), "oauth2"),
    ] {
        if present {
            warnings.push(format!(
                "{who}: {what} is not supported by vigil; requests are sent without it"
            ));
        }
    }
    Ok(())
}

fn validate_remote_read(
    rr: &mut RemoteReadConfig,
    key: &str,
    warnings: &mut Vec<String>,
) -> Result<(), Problem> {
    check_url_present(&rr.url, "remote_read", &format!("{key}.url"))?;
    validate_headers(&rr.headers, key)?;
    validate_http_client(&mut rr.http_parts_mut(), key)?;
    if rr.oauth2.is_some() {
        let who = if rr.name.is_empty() {
            key.to_string()
        } else {
            format!("remote_read {:?}", rr.name)
        };
        warnings.push(format!(
            "{who}: oauth2 is not supported by vigil; requests are sent without it"
        ));
    }
    Ok(())
}
