//! Loading: decode, resolve defaults and inheritance, validate, collect warnings.
//!
//! Decoding catches type and key errors with serde_yaml's positions; everything Prometheus
//! checks afterwards (its `UnmarshalYAML` and `Validate` methods) happens here in one pass
//! over the decoded tree, producing [`Problem`]s keyed by their YAML path, which the
//! [`LineIndex`] turns into `file:line:col`. Features vigil accepts but does not implement
//! become warnings, one per feature and section, so a Prometheus config always loads.
//!
//! This file holds the entry points, file reading and `scrape_config_files` includes; the
//! stages are `decode` (YAML to schema), `global`, `scrape`, `alerting`, `remote` and
//! `storage` (one per section), with `names`, `http` and `paths` shared between sections.

mod alerting;
mod consul;
mod decode;
mod global;
mod http;
mod kubernetes;
mod names;
mod otlp;
mod paths;
mod remote;
mod scrape;
mod storage;
#[cfg(test)]
mod tests;

use crate::error::{ConfigError, Location, Problem};
use crate::lines::{LineIndex, decode_binary_tags};
use crate::types::*;
use decode::decode;
use names::validate_label_name;
use paths::{glob_pattern_ok, join_dir};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub use scrape::{SCRAPE_PROTOCOLS, default_scrape_protocols, proto_first_scrape_protocols};

/// A loaded configuration and the warnings about what vigil ignores in it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

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
    let dir = ctx.dir();
    let mut warnings = Vec::new();

    ctx.check(global::validate_global(&mut config.global))?;
    let legacy = config.global.metric_name_validation_scheme.as_deref() == Some("legacy");

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
    scrape::validate_scrape_configs(
        &ctx,
        &mut config.scrape_configs,
        &config.global,
        legacy,
        &mut jobs,
        None,
        &mut warnings,
    )?;
    let included = read_scrape_config_files(&ctx, &config, legacy, &mut jobs, &mut warnings)?;
    config.scrape_configs.extend(included);

    alerting::validate_alerting(&ctx, &mut config.alerting, legacy, &mut warnings)?;
    remote::validate_remote_writes(&ctx, &mut config.remote_write, legacy, &mut warnings)?;
    remote::validate_remote_reads(&ctx, &mut config.remote_read, &mut warnings)?;
    ctx.check(storage::validate_storage(&config.storage))?;

    if let Some(g) = &mut config.global.query_log_file {
        join_dir(&dir, g);
    }
    if let Some(g) = &mut config.global.scrape_failure_log_file {
        join_dir(&dir, g);
    }
    if config.tracing.as_ref().is_some_and(|t| !t.is_empty()) {
        warnings.push("tracing is not supported by vigil and is ignored".into());
    }
    if let Some(o) = &mut config.otlp {
        ctx.check(otlp::validate_otlp(o, legacy))?;
    }
    if config.runtime.as_ref().is_some_and(|r| r.gogc.is_some()) {
        warnings.push("runtime.gogc has no effect in vigil and is ignored".into());
    }
    Ok(Loaded { config, warnings })
}

/// The jobs of the files matched by `scrape_config_files` (already resolved against the
/// main file's directory, in `config`), validated as the main file's jobs are. Each file
/// may only hold `scrape_configs`.
fn read_scrape_config_files(
    main: &Ctx<'_>,
    config: &Config,
    legacy: bool,
    jobs: &mut HashSet<String>,
    warnings: &mut Vec<String>,
) -> Result<Vec<ScrapeConfig>, ConfigError> {
    let mut included = Vec::new();
    for (i, pattern) in config.scrape_config_files.iter().enumerate() {
        let paths = glob::glob(pattern).map_err(|e| {
            main.err(Problem::new(
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
            let mut parsed: ScrapeConfigsFile = decode(&text, &file)?;
            scrape::validate_scrape_configs(
                &sub,
                &mut parsed.scrape_configs,
                &config.global,
                legacy,
                jobs,
                Some(main.file),
                warnings,
            )?;
            included.extend(parsed.scrape_configs);
        }
    }
    Ok(included)
}

/// The file being validated: problems become errors naming its path and their line.
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

    /// The directory relative paths in this file are taken from.
    fn dir(&self) -> PathBuf {
        self.file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }
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
