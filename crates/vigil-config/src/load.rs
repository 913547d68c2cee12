//! Loading: decode, resolve defaults and inheritance, validate, collect warnings.
//!
//! Decoding catches type and key errors with serde_yaml's positions; everything Prometheus
//! checks afterwards (its `UnmarshalYAML` and `Validate` methods) happens here in one pass
//! over the decoded tree, producing [`Problem`]s keyed by their YAML path, which the
//! [`LineIndex`] turns into `file:line:col`. Features vigil accepts but does not implement
//! become warnings, one per feature and section, so a Prometheus config always loads.

use crate::error::{ConfigError, Location, Problem};
use crate::lines::{LineIndex, decode_binary_tags};
use crate::relabel::{RelabelConfig, legacy_label_name_valid};
use crate::types::*;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use vigil_model::Duration;

/// A loaded configuration and the warnings about what vigil ignores in it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

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

const DEFAULT_SCRAPE_INTERVAL: Duration = Duration(60_000);
const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration(10_000);
const DEFAULT_EVALUATION_INTERVAL: Duration = Duration(60_000);

/// Headers a user may not set on remote read/write requests (Prometheus' `reservedHeaders`).
const RESERVED_HEADERS: [&str; 16] = [
    "authorization",
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
    "x-amz-date",
    "x-amz-security-token",
];

/// Reads and loads a config file.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    let text = read(path)?;
    load_str(&text, path)
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads config text; `path` names it in messages and anchors relative paths.
pub fn load_str(text: &str, path: &Path) -> Result<Loaded, ConfigError> {
    let text = decode_binary_tags(text, path)?;
    let index = LineIndex::build(&text);
    let mut config: Config = decode(&text, path)?;
    let ctx = Ctx {
        file: path,
        index: &index,
    };
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut warnings = Vec::new();

    ctx.check(validate_global(&mut config.global))?;
    let legacy = config.global.metric_name_validation_scheme.as_deref() == Some("legacy");
    if config.global.scrape_native_histograms == Some(true) {
        warnings.push(
            "global: scrape_native_histograms is not supported by vigil; native histograms are not ingested".into(),
        );
    }

    for (i, rf) in config.rule_files.iter_mut().enumerate() {
        if !glob_pattern_ok(rf) {
            return Err(ctx.err(Problem::new(
                format!("rule_files[{i}]"),
                format!("invalid rule file path {rf:?}: a wildcard may only appear in the last path element"),
            )));
        }
        join_dir(&dir, rf);
    }
    for (i, f) in config.scrape_config_files.iter_mut().enumerate() {
        if !glob_pattern_ok(f) {
            return Err(ctx.err(Problem::new(
                format!("scrape_config_files[{i}]"),
                format!("invalid scrape config file path {f:?}: a wildcard may only appear in the last path element"),
            )));
        }
        join_dir(&dir, f);
    }

    let mut jobs: HashSet<String> = HashSet::new();
    for (i, sc) in config.scrape_configs.iter_mut().enumerate() {
        let key = format!("scrape_configs[{i}]");
        ctx.check(validate_scrape_config(
            sc,
            &config.global,
            legacy,
            &key,
            &mut warnings,
        ))?;
        if !jobs.insert(sc.job_name.clone()) {
            return Err(ctx.err(Problem::new(
                format!("{key}.job_name"),
                format!(
                    "found multiple scrape configs with job name {:?}",
                    sc.job_name
                ),
            )));
        }
        set_scrape_dir(sc, &dir);
    }

    // scrape_config_files: each file may only hold scrape_configs; they join the main list.
    let mut included = Vec::new();
    for (i, pattern) in config.scrape_config_files.iter().enumerate() {
        let paths = glob::glob(pattern).map_err(|e| {
            ctx.err(Problem::new(
                format!("scrape_config_files[{i}]"),
                format!("invalid pattern {pattern:?}: {e}"),
            ))
        })?;
        for entry in paths {
            let file = entry.map_err(|e| ConfigError::Io {
                path: e.path().to_path_buf(),
                source: e.into(),
            })?;
            let text = decode_binary_tags(&read(&file)?, &file)?;
            let sub_index = LineIndex::build(&text);
            let sub = Ctx {
                file: &file,
                index: &sub_index,
            };
            let parsed: ScrapeConfigsFile = decode(&text, &file)?;
            let sub_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
            for (j, mut sc) in parsed.scrape_configs.into_iter().enumerate() {
                let key = format!("scrape_configs[{j}]");
                sub.check(validate_scrape_config(
                    &mut sc,
                    &config.global,
                    legacy,
                    &key,
                    &mut warnings,
                ))?;
                if !jobs.insert(sc.job_name.clone()) {
                    return Err(sub.err(Problem::new(
                        format!("{key}.job_name"),
                        format!(
                            "found multiple scrape configs with job name {:?} (also defined in {} or a file it includes)",
                            sc.job_name,
                            path.display()
                        ),
                    )));
                }
                set_scrape_dir(&mut sc, &sub_dir);
                included.push(sc);
            }
        }
    }
    config.scrape_configs.extend(included);

    // Alerting.
    for (i, r) in config.alerting.alert_relabel_configs.iter().enumerate() {
        ctx.check(check_legacy_relabel(
            r,
            legacy,
            &format!("alerting.alert_relabel_configs[{i}]"),
        ))?;
    }
    for (i, am) in config.alerting.alertmanagers.iter_mut().enumerate() {
        let key = format!("alerting.alertmanagers[{i}]");
        ctx.check(validate_alertmanager(am, legacy, &key, &mut warnings))?;
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
    }

    // Remote write and read.
    let mut names = HashSet::new();
    for (i, rw) in config.remote_write.iter_mut().enumerate() {
        let key = format!("remote_write[{i}]");
        ctx.check(validate_remote_write(rw, legacy, &key, &mut warnings))?;
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
    let mut names = HashSet::new();
    for (i, rr) in config.remote_read.iter_mut().enumerate() {
        let key = format!("remote_read[{i}]");
        ctx.check(validate_remote_read(rr, &key, &mut warnings))?;
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

    ctx.check(validate_storage(&config.storage))?;

    if let Some(g) = &mut config.global.query_log_file {
        join_dir(&dir, g);
    }
    if let Some(g) = &mut config.global.scrape_failure_log_file {
        join_dir(&dir, g);
    }
    if config.tracing.as_ref().is_some_and(|t| !t.is_empty()) {
        warnings.push("tracing is not supported by vigil and is ignored".into());
    }
    if config.otlp.as_ref().is_some_and(|t| !t.is_empty()) {
        warnings.push("otlp is not supported by vigil and is ignored".into());
    }
    if config.runtime.as_ref().is_some_and(|r| r.gogc.is_some()) {
        warnings.push("runtime.gogc has no effect in vigil and is ignored".into());
    }
    Ok(Loaded { config, warnings })
}

struct Ctx<'a> {
    file: &'a Path,
    index: &'a LineIndex,
}

impl Ctx<'_> {
    fn err(&self, p: Problem) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_path_buf(),
            location: self.index.find(&p.key),
            key: p.key,
            message: p.message,
        }
    }
    fn check(&self, r: Result<(), Problem>) -> Result<(), ConfigError> {
        r.map_err(|p| self.err(p))
    }
}

fn decode<T: serde::de::DeserializeOwned + Default>(
    text: &str,
    file: &Path,
) -> Result<T, ConfigError> {
    let blank = text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    });
    if blank {
        return Ok(T::default());
    }
    serde_yaml::from_str(text).map_err(|e| {
        let mut location = e.location().map(|l| Location {
            line: l.line(),
            column: l.column(),
        });
        let mut message = e.to_string();
        if let Some(l) = e.location() {
            let suffix = format!(" at line {} column {}", l.line(), l.column());
            if let Some(s) = message.strip_suffix(&suffix) {
                message = s.to_string();
            }
        }
        refine_value_error(text, &mut location, &mut message);
        shorten_unknown_field(&mut message);
        ConfigError::Parse {
            file: file.to_path_buf(),
            location,
            message,
        }
    })
}

/// serde reports a bad scalar (duration, size) at the start of the enclosing mapping, with
/// that mapping's path. Find the key that holds the quoted bad value, so the message names the
/// exact line and key: `scrape_configs[0].scrape_interval: not a valid duration ...`.
fn refine_value_error(text: &str, location: &mut Option<Location>, message: &mut String) {
    let Some(loc) = *location else { return };
    let (prefix, msg) = match message.split_once(": ") {
        Some((p, m)) if !p.contains(' ') => (p.to_string(), m.to_string()),
        _ => (String::new(), message.clone()),
    };
    let is_value_error =
        msg.starts_with("not a valid duration string") || msg.starts_with("not a valid size");
    let Some(value) = msg.split('"').nth(1).filter(|_| is_value_error) else {
        return;
    };
    let index = LineIndex::build(text);
    for (n, line) in text.lines().enumerate().skip(loc.line.saturating_sub(1)) {
        let Some((_, v)) = line.split_once(':') else {
            continue;
        };
        let v = v
            .split(" #")
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches(|c| c == '"' || c == '\'');
        if v == value {
            if let Some((path, l)) =
                index.path_at_line(n + 1, if prefix == "." { "" } else { &prefix })
            {
                *location = Some(l);
                *message = format!("{path}: {msg}");
            }
            return;
        }
    }
}

/// Replaces serde's list of every allowed key with the closest one.
fn shorten_unknown_field(message: &mut String) {
    let Some(start) = message.find("unknown field `") else {
        return;
    };
    let rest = &message[start + "unknown field `".len()..];
    let Some(end) = rest.find('`') else { return };
    let field = rest[..end].to_string();
    let Some(list_at) = rest.find(", expected ") else {
        return;
    };
    let candidates: Vec<&str> = rest[list_at..].split('`').skip(1).step_by(2).collect();
    let best = candidates
        .iter()
        .map(|c| (edit_distance(&field, c), *c))
        .min();
    let hint = match best {
        Some((d, c)) if d <= 3 || c.contains(field.as_str()) => format!(" (did you mean `{c}`?)"),
        _ => String::new(),
    };
    *message = format!(
        "{}unknown field `{field}`{hint}: no such key here",
        &message[..start]
    );
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Prometheus' `JoinDir`: relative paths are taken relative to the config file's directory.
fn join_dir(dir: &Path, p: &mut String) {
    if p.is_empty() || dir.as_os_str().is_empty() || Path::new(p.as_str()).is_absolute() {
        return;
    }
    *p = dir.join(p.as_str()).to_string_lossy().into_owned();
}

fn join_opt(dir: &Path, p: &mut Option<String>) {
    if let Some(p) = p {
        join_dir(dir, p);
    }
}

fn set_tls_dir(t: &mut TlsConfig, dir: &Path) {
    join_opt(dir, &mut t.ca_file);
    join_opt(dir, &mut t.cert_file);
    join_opt(dir, &mut t.key_file);
}

fn set_http_dir(h: &mut HttpPartsMut<'_>, dir: &Path) {
    set_tls_dir(h.tls_config, dir);
    if let Some(b) = h.basic_auth.as_mut() {
        join_opt(dir, &mut b.password_file);
        join_opt(dir, &mut b.username_file);
    }
    if let Some(a) = h.authorization.as_mut() {
        join_opt(dir, &mut a.credentials_file);
    }
    if let Some(o) = h.oauth2.as_mut() {
        join_opt(dir, &mut o.client_secret_file);
        join_opt(dir, &mut o.client_certificate_key_file);
        set_tls_dir(&mut o.tls_config, dir);
    }
    join_opt(dir, h.bearer_token_file);
    for hh in h.http_headers.values_mut() {
        for f in &mut hh.files {
            join_dir(dir, f);
        }
    }
}

fn set_scrape_dir(sc: &mut ScrapeConfig, dir: &Path) {
    set_http_dir(&mut sc.http_parts_mut(), dir);
    for f in &mut sc.file_sd_configs {
        for p in &mut f.files {
            join_dir(dir, p);
        }
    }
    for h in &mut sc.http_sd_configs {
        set_http_dir(&mut h.http_parts_mut(), dir);
    }
    join_opt(dir, &mut sc.scrape_failure_log_file);
}

/// Prometheus' `^[^*]*(\*[^/]*)?$`: a wildcard only in the last path element.
fn glob_pattern_ok(p: &str) -> bool {
    match p.find('*') {
        None => true,
        Some(i) => !p[i..].contains('/'),
    }
}

fn validate_name_schemes(
    validation: Option<&str>,
    escaping: Option<&str>,
    key: &str,
) -> Result<(), Problem> {
    match validation {
        None | Some("") | Some("utf8") | Some("legacy") => {}
        Some(other) => {
            return Err(Problem::new(
                format!("{key}.metric_name_validation_scheme"),
                format!(
                    "unknown metric name validation scheme {other:?} (expected \"utf8\" or \"legacy\")"
                ),
            ));
        }
    }
    match escaping {
        None | Some("") | Some("underscores") | Some("dots") | Some("values") => {}
        Some("allow-utf-8") => {
            if validation == Some("legacy") {
                return Err(Problem::new(
                    format!("{key}.metric_name_escaping_scheme"),
                    "metric_name_escaping_scheme \"allow-utf-8\" conflicts with metric_name_validation_scheme \"legacy\"",
                ));
            }
        }
        Some(other) => {
            return Err(Problem::new(
                format!("{key}.metric_name_escaping_scheme"),
                format!(
                    "unknown metric name escaping scheme {other:?} (expected allow-utf-8, underscores, dots or values)"
                ),
            ));
        }
    }
    Ok(())
}

fn validate_protocols(protocols: &[String], key: &str) -> Result<(), Problem> {
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

fn validate_label_name(name: &str, legacy: bool, key: &str) -> Result<(), Problem> {
    if name.is_empty() || (legacy && !legacy_label_name_valid(name)) {
        return Err(Problem::new(
            key,
            format!("{name:?} is not a valid label name"),
        ));
    }
    Ok(())
}

fn validate_global(g: &mut GlobalConfig) -> Result<(), Problem> {
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

fn check_legacy_relabel(r: &RelabelConfig, legacy: bool, key: &str) -> Result<(), Problem> {
    if legacy {
        r.validate_legacy().map_err(|m| Problem::new(key, m))?;
    }
    Ok(())
}

/// [`check_legacy_relabel`] over a list, naming each entry `prefix[i]`.
fn check_legacy_relabels(
    list: &[RelabelConfig],
    legacy: bool,
    prefix: &str,
) -> Result<(), Problem> {
    for (i, r) in list.iter().enumerate() {
        check_legacy_relabel(r, legacy, &format!("{prefix}[{i}]"))?;
    }
    Ok(())
}

/// URL and HTTP client settings of every `http_sd_configs` entry under `key`.
fn validate_http_sds(sds: &mut [HttpSdConfig], key: &str) -> Result<(), Problem> {
    for (i, h) in sds.iter_mut().enumerate() {
        let k = format!("{key}.http_sd_configs[{i}]");
        check_http_url(&h.url, &format!("{k}.url"))?;
        validate_http_client(&mut h.http_parts_mut(), &k)?;
    }
    Ok(())
}

fn validate_target_groups(groups: &[StaticConfig], legacy: bool, key: &str) -> Result<(), Problem> {
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
    if sc.scrape_native_histograms == Some(true) {
        warnings.push(format!(
            "job {job:?}: scrape_native_histograms is not supported by vigil; native histograms are not ingested"
        ));
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
    if sc.oauth2.is_some() {
        warnings.push(format!(
            "job {job:?}: oauth2 is not supported by vigil; requests are sent without it"
        ));
    }
    Ok(())
}

fn check_http_url(u: &str, key: &str) -> Result<(), Problem> {
    let Some((scheme, rest)) = u.split_once("://") else {
        return Err(Problem::new(
            key,
            format!("URL {u:?} has no scheme: use http:// or https://"),
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Err(Problem::new(
            key,
            format!("URL scheme must be 'http' or 'https', got {scheme:?} in {u:?}"),
        ));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or("");
    if host.is_empty() {
        return Err(Problem::new(key, format!("host is missing in URL {u:?}")));
    }
    Ok(())
}

fn check_url_present(u: &str, what: &str, key: &str) -> Result<(), Problem> {
    if u.trim().is_empty() {
        return Err(Problem::new(key, format!("url for {what} is empty")));
    }
    if u.chars().any(char::is_whitespace) {
        return Err(Problem::new(key, format!("{u:?} is not a valid URL")));
    }
    Ok(())
}

fn validate_tls(t: &TlsConfig, key: &str) -> Result<(), Problem> {
    let both = |a: bool, b: bool, what: &str| {
        if a && b {
            Err(Problem::new(
                key,
                format!("at most one of {what} must be configured"),
            ))
        } else {
            Ok(())
        }
    };
    both(t.ca.is_some(), t.ca_file.is_some(), "ca & ca_file")?;
    both(t.cert.is_some(), t.cert_file.is_some(), "cert & cert_file")?;
    both(t.key.is_some(), t.key_file.is_some(), "key & key_file")?;
    let has_cert = t.cert.is_some() || t.cert_file.is_some() || t.cert_ref.is_some();
    let has_key = t.key.is_some() || t.key_file.is_some() || t.key_ref.is_some();
    if has_cert && !has_key {
        return Err(Problem::new(
            key,
            "exactly one of key or key_file must be configured when a client certificate is configured",
        ));
    }
    if has_key && !has_cert {
        return Err(Problem::new(
            key,
            "exactly one of cert or cert_file must be configured when a client key is configured",
        ));
    }
    for v in [&t.min_version, &t.max_version].into_iter().flatten() {
        if !["TLS10", "TLS11", "TLS12", "TLS13"].contains(&v.as_str()) {
            return Err(Problem::new(
                key,
                format!("unknown TLS version {v:?} (expected TLS10, TLS11, TLS12 or TLS13)"),
            ));
        }
    }
    Ok(())
}

/// Prometheus' `HTTPClientConfig.Validate`, then the legacy bearer token moves into
/// `authorization`.
fn validate_http_client(h: &mut HttpPartsMut<'_>, key: &str) -> Result<(), Problem> {
    let has_bearer =
        h.bearer_token.as_ref().is_some_and(|s| !s.is_empty()) || h.bearer_token_file.is_some();
    if h.bearer_token.as_ref().is_some_and(|s| !s.is_empty()) && h.bearer_token_file.is_some() {
        return Err(Problem::new(
            format!("{key}.bearer_token"),
            "at most one of bearer_token & bearer_token_file must be configured",
        ));
    }
    if h.basic_auth.is_some() && has_bearer {
        return Err(Problem::new(
            format!("{key}.bearer_token"),
            "at most one of basic_auth, bearer_token & bearer_token_file must be configured",
        ));
    }
    if h.authorization.is_some() && has_bearer {
        return Err(Problem::new(
            format!("{key}.authorization"),
            "authorization is not compatible with bearer_token & bearer_token_file",
        ));
    }
    let n = [
        h.basic_auth.is_some(),
        h.authorization.is_some(),
        h.oauth2.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if n > 1 {
        return Err(Problem::new(
            key,
            "at most one of basic_auth, oauth2 & authorization must be configured",
        ));
    }
    if let Some(b) = h.basic_auth.as_ref() {
        let k = format!("{key}.basic_auth");
        if !b.username.is_empty() && b.username_file.is_some() {
            return Err(Problem::new(
                k,
                "at most one of basic_auth username & username_file must be configured",
            ));
        }
        if b.password.as_ref().is_some_and(|p| !p.is_empty()) && b.password_file.is_some() {
            return Err(Problem::new(
                k,
                "at most one of basic_auth password & password_file must be configured",
            ));
        }
    }
    if let Some(a) = h.authorization.as_mut() {
        let k = format!("{key}.authorization");
        if a.credentials.as_ref().is_some_and(|c| !c.is_empty()) && a.credentials_file.is_some() {
            return Err(Problem::new(
                k,
                "at most one of authorization credentials & credentials_file must be configured",
            ));
        }
        if a.auth_type.eq_ignore_ascii_case("basic") {
            return Err(Problem::new(
                k,
                "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
            ));
        }
        if a.auth_type.is_empty() {
            a.auth_type = "Bearer".into();
        }
    }
    if let Some(o) = h.oauth2.as_ref() {
        let k = format!("{key}.oauth2");
        if o.client_id.is_empty() {
            return Err(Problem::new(k, "oauth2 client_id must be configured"));
        }
        if o.token_url.is_empty() {
            return Err(Problem::new(k, "oauth2 token_url must be configured"));
        }
        if o.client_secret.is_some() && o.client_secret_file.is_some() {
            return Err(Problem::new(
                k,
                "at most one of oauth2 client_secret & client_secret_file must be configured",
            ));
        }
        validate_tls(&o.tls_config, &format!("{key}.oauth2.tls_config"))?;
    }
    validate_tls(h.tls_config, &format!("{key}.tls_config"))?;
    for name in h.http_headers.keys() {
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(Problem::new(
                format!("{key}.http_headers.{name}"),
                format!("setting header {name:?} is not allowed"),
            ));
        }
    }
    // Legacy bearer token settings become an Authorization header, as in Prometheus.
    if let Some(t) = h.bearer_token.take().filter(|t| !t.is_empty()) {
        *h.authorization = Some(Authorization {
            auth_type: "Bearer".into(),
            credentials: Some(t),
            ..Default::default()
        });
    }
    if let Some(f) = h.bearer_token_file.take() {
        *h.authorization = Some(Authorization {
            auth_type: "Bearer".into(),
            credentials_file: Some(f),
            ..Default::default()
        });
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
    let who = key.trim_start_matches("alerting.");
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

fn validate_storage(s: &StorageConfig) -> Result<(), Problem> {
    let Some(t) = &s.tsdb else { return Ok(()) };
    if let Some(r) = &t.retention {
        if let Some(size) = r.size
            && size < 0
        {
            return Err(Problem::new(
                "storage.tsdb.retention.size",
                "'storage.tsdb.retention.size' cannot be negative",
            ));
        }
        if let Some(p) = r.percentage
            && !(0.0..=100.0).contains(&p)
        {
            return Err(Problem::new(
                "storage.tsdb.retention.percentage",
                format!("'storage.tsdb.retention.percentage' must be between 0 and 100, got {p}"),
            ));
        }
    }
    if let Some(c) = &t.chunk_encoding
        && let Some(f) = &c.floats
        && f != "xor"
        && f != "xor2"
    {
        return Err(Problem::new(
            "storage.tsdb.chunk_encoding.floats",
            format!("unknown float chunk encoding {f:?} (expected \"xor\" or \"xor2\")"),
        ));
    }
    if let Some(th) = t.stale_series_compaction_threshold
        && !(0.0..=1.0).contains(&th)
    {
        return Err(Problem::new(
            "storage.tsdb.stale_series_compaction_threshold",
            format!("stale_series_compaction_threshold must be between 0 and 1, got {th}"),
        ));
    }
    Ok(())
}

/// Reads a `file_sd` file (JSON or YAML, by extension; YAML otherwise) into target groups.
pub fn read_file_sd(path: &Path) -> Result<Vec<TargetGroup>, ConfigError> {
    let text = read(path)?;
    let is_json = path.extension().is_some_and(|e| e == "json");
    let groups: Vec<TargetGroup> = if is_json {
        let parsed: Vec<Option<TargetGroup>> =
            serde_json::from_str(&text).map_err(|e| ConfigError::Parse {
                file: path.to_path_buf(),
                location: Some(Location {
                    line: e.line(),
                    column: e.column(),
                }),
                message: e.to_string(),
            })?;
        parsed.into_iter().flatten().collect()
    } else {
        let text = decode_binary_tags(&text, path)?;
        #[derive(serde::Deserialize, Default)]
        #[serde(transparent)]
        struct Groups(#[serde(deserialize_with = "crate::de::no_null_seq")] Vec<TargetGroup>);
        decode::<Groups>(&text, path)?.0
    };
    let index = LineIndex::build("");
    let ctx = Ctx {
        file: path,
        index: &index,
    };
    for (i, g) in groups.iter().enumerate() {
        for name in g.labels.keys() {
            ctx.check(validate_label_name(
                name,
                false,
                &format!("[{i}].labels.{name}"),
            ))?;
        }
    }
    Ok(groups)
}

impl Config {
    /// All jobs by name.
    pub fn job(&self, name: &str) -> Option<&ScrapeConfig> {
        self.scrape_configs.iter().find(|s| s.job_name == name)
    }

    /// The config as YAML, secrets shown as `<secret>` (for `/api/v1/status/config`).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Loaded, ConfigError> {
        load_str(text, Path::new("conf/prometheus.yml"))
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = load("global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: a\n    scrape_intervl: 5s\n")
            .unwrap_err();
        let s = e.to_string();
        assert!(
            s.starts_with(
                "conf/prometheus.yml:5:5: scrape_configs[0]: unknown field `scrape_intervl`"
            ),
            "{s}"
        );
        assert!(s.contains("did you mean `scrape_interval`"), "{s}");
        assert_eq!(e.location(), Some(Location { line: 5, column: 5 }));
    }

    #[test]
    fn bad_duration_names_line_and_key() {
        let e = load(
            "scrape_configs:\n  - job_name: a\n    metrics_path: /m\n    scrape_interval: 5x\n",
        )
        .unwrap_err();
        let s = e.to_string();
        assert!(
            s.starts_with(
                "conf/prometheus.yml:4:5: scrape_configs[0].scrape_interval: not a valid duration"
            ),
            "{s}"
        );
        let e = load("global:\n  evaluation_interval: 1h1h\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("conf/prometheus.yml:2:3: global.evaluation_interval:"),
            "{e}"
        );
    }

    #[test]
    fn validation_errors_name_line_and_key() {
        let e = load("scrape_configs:\n  - job_name: a\n  - job_name: b\n    scrape_interval: 5s\n    scrape_timeout: 6s\n")
            .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "conf/prometheus.yml:5:5: scrape_configs[1].scrape_timeout: scrape timeout"
            ),
            "{e}"
        );
    }

    #[test]
    fn defaults_and_inheritance() {
        let l = load("scrape_configs:\n  - job_name: a\n").unwrap();
        let g = &l.config.global;
        assert_eq!(
            (
                g.scrape_interval.0,
                g.scrape_timeout.0,
                g.evaluation_interval.0
            ),
            (60_000, 10_000, 60_000)
        );
        let a = &l.config.scrape_configs[0];
        assert_eq!((a.scrape_interval.0, a.scrape_timeout.0), (60_000, 10_000));
        assert_eq!(
            (a.metrics_path.as_str(), a.scheme.as_str()),
            ("/metrics", "http")
        );
        assert!(
            a.honor_timestamps && !a.honor_labels && a.enable_compression && a.follow_redirects
        );

        let l = load(
            "global:\n  scrape_interval: 5s\n  sample_limit: 100\n  body_size_limit: 1MB\n\
             scrape_configs:\n  - job_name: a\n  - job_name: b\n    scrape_interval: 1m\n    sample_limit: 7\n",
        )
        .unwrap();
        // Global interval under 10s: the timeout follows it.
        assert_eq!(l.config.global.scrape_timeout.0, 5_000);
        let a = &l.config.scrape_configs[0];
        assert_eq!(
            (
                a.scrape_interval.0,
                a.scrape_timeout.0,
                a.sample_limit,
                a.body_size_limit
            ),
            (5_000, 5_000, 100, 1 << 20)
        );
        let b = &l.config.scrape_configs[1];
        assert_eq!(
            (b.scrape_interval.0, b.scrape_timeout.0, b.sample_limit),
            (60_000, 5_000, 7)
        );

        // A job interval below the global timeout caps the inherited timeout.
        let l = load("global:\n  scrape_timeout: 15s\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n").unwrap();
        assert_eq!(l.config.scrape_configs[0].scrape_timeout.0, 5_000);

        let l = load(
            "remote_write:\n  - url: http://x/api/v1/write\nremote_read:\n  - url: http://x/read\n",
        )
        .unwrap();
        let rw = &l.config.remote_write[0];
        assert_eq!(rw.remote_timeout.0, 30_000);
        assert_eq!(rw.queue_config, QueueConfig::default());
        assert_eq!(rw.queue_config.capacity, 10_000);
        assert_eq!(l.config.remote_read[0].remote_timeout.0, 60_000);
        let l = load(
            "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['am:9093']\n",
        )
        .unwrap();
        let am = &l.config.alerting.alertmanagers[0];
        assert_eq!(
            (
                am.timeout.0,
                am.api_version.as_str(),
                am.path_prefix.as_str()
            ),
            (10_000, "v2", "/")
        );
    }

    #[test]
    fn unsupported_sd_gives_one_warning() {
        let l = load(
            "scrape_configs:\n  - job_name: k\n    kubernetes_sd_configs:\n      - role: pod\n      - role: node\n    static_configs:\n      - targets: ['a:1']\n",
        )
        .unwrap();
        assert_eq!(
            l.warnings,
            vec![
                "job \"k\": kubernetes_sd_configs is not supported by vigil and is ignored"
                    .to_string()
            ]
        );
        assert_eq!(
            l.config.scrape_configs[0].static_configs[0].targets,
            vec!["a:1"]
        );
    }

    #[test]
    fn default_config_loads() {
        let l = load_str(crate::DEFAULT_CONFIG, Path::new("prometheus.yml")).unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        assert_eq!(l.config.global.scrape_interval.0, 15_000);
        assert_eq!(l.config.global.evaluation_interval.0, 15_000);
        let job = l.config.job("prometheus").unwrap();
        assert_eq!(job.static_configs[0].targets, vec!["localhost:9090"]);
    }

    #[test]
    fn secrets_are_redacted_and_paths_resolved() {
        let l = load(
            "rule_files: ['rules/*.yml', '/abs/x.yml']\nscrape_configs:\n  - job_name: a\n    bearer_token: hunter2\n    tls_config:\n      ca_file: ca.pem\n    file_sd_configs:\n      - files: [sd/*.json]\n",
        )
        .unwrap();
        assert_eq!(l.config.rule_files, vec!["conf/rules/*.yml", "/abs/x.yml"]);
        let a = &l.config.scrape_configs[0];
        assert_eq!(a.tls_config.ca_file.as_deref(), Some("conf/ca.pem"));
        assert_eq!(a.file_sd_configs[0].files, vec!["conf/sd/*.json"]);
        let auth = a.authorization.as_ref().unwrap();
        assert_eq!(
            (
                auth.auth_type.as_str(),
                auth.credentials.as_ref().unwrap().expose()
            ),
            ("Bearer", "hunter2")
        );
        let yaml = l.config.to_yaml();
        assert!(
            !yaml.contains("hunter2") && yaml.contains("<secret>"),
            "{yaml}"
        );
        // The serialized form loads again.
        load_str(&yaml, Path::new("again.yml")).unwrap();
    }

    #[test]
    fn duplicate_map_keys_are_refused() {
        let e = load("global:\n  external_labels:\n    a: x\n    a: y\n").unwrap_err();
        assert!(e.to_string().contains("duplicate key \"a\""), "{e}");
    }

    #[test]
    fn empty_file_is_the_default_config() {
        let l = load("# nothing\n").unwrap();
        assert_eq!(l.config.global.scrape_interval.0, 60_000);
        assert!(l.config.scrape_configs.is_empty());
    }

    #[test]
    fn file_sd_json_and_yaml() {
        let dir = std::env::temp_dir().join(format!("vigil-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let j = dir.join("t.json");
        std::fs::write(
            &j,
            r#"[{"targets": ["a:1", "b:2"], "labels": {"env": "prod"}}]"#,
        )
        .unwrap();
        let g = read_file_sd(&j).unwrap();
        assert_eq!(g[0].targets, vec!["a:1", "b:2"]);
        assert_eq!(g[0].labels.get("env").map(String::as_str), Some("prod"));
        let y = dir.join("t.yml");
        std::fs::write(&y, "- targets: ['c:3']\n").unwrap();
        assert_eq!(read_file_sd(&y).unwrap()[0].targets, vec!["c:3"]);
        std::fs::write(&y, "- targets: ['c:3']\n  lables: {}\n").unwrap();
        assert!(
            read_file_sd(&y)
                .unwrap_err()
                .to_string()
                .contains("t.yml:2:")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
