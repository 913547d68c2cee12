//! Rule files: the YAML schema of Prometheus' `rulefmt` package and its validation.
//!
//! Parsing is strict, as Prometheus' is: unknown keys are errors (a misspelt `annotation:`
//! would otherwise silently drop every annotation). YAML anchors and `<<` merge keys are
//! accepted (Prometheus' test data uses them), so when the direct, position-reporting parse
//! fails the file is parsed again through `serde_yaml::Value` with merges applied; if that
//! fails too, the first error (which carries line and column) is reported. Validation
//! collects every problem of a file rather than stopping at the first, and names the group
//! and rule (`group "g", rule 2, "Name": ...`) as Prometheus does. Expressions are parsed
//! with the same parser the engine uses, and label and annotation templates are parsed, so a
//! file that loads here will not fail at evaluation for a syntax reason.

use crate::error::RulesError;
use crate::template;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use vigil_model::Duration;

/// A scalar YAML value kept as text (`expr: 1` is a valid expression).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(s) => Ok(Text(s)),
            serde_yaml::Value::Number(n) => Ok(Text(n.to_string())),
            serde_yaml::Value::Bool(b) => Ok(Text(b.to_string())),
            serde_yaml::Value::Null => Ok(Text(String::new())),
            other => Err(D::Error::custom(format!(
                "expected a string, got {}",
                kind(&other)
            ))),
        }
    }
}

fn kind(v: &serde_yaml::Value) -> &'static str {
    match v {
        serde_yaml::Value::Sequence(_) => "a sequence",
        serde_yaml::Value::Mapping(_) => "a mapping",
        _ => "a tagged value",
    }
}

/// A Prometheus duration written as text (`5m`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let t = Text::deserialize(d)?;
        t.0.parse::<Duration>()
            .map(Dur)
            .map_err(|e| D::Error::custom(e.to_string()))
    }
}

/// A whole rule file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub groups: Vec<GroupDesc>,
}

/// One `groups:` entry as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupDesc {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub interval: Option<Dur>,
    #[serde(default)]
    pub query_offset: Option<Dur>,
    #[serde(default)]
    pub limit: u64,
    #[serde(default)]
    pub rules: Vec<RuleDesc>,
}

/// One rule as written: either `record` or `alert` is set.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleDesc {
    #[serde(default)]
    pub record: Option<Text>,
    #[serde(default)]
    pub alert: Option<Text>,
    #[serde(default)]
    pub expr: Option<Text>,
    #[serde(default, rename = "for")]
    pub for_: Option<Dur>,
    #[serde(default)]
    pub keep_firing_for: Option<Dur>,
    #[serde(default)]
    pub labels: BTreeMap<String, Text>,
    #[serde(default)]
    pub annotations: BTreeMap<String, Text>,
}

impl RuleDesc {
    /// The rule's name: the recorded metric or the alert name.
    pub fn name(&self) -> &str {
        self.record
            .as_ref()
            .or(self.alert.as_ref())
            .map_or("", |t| t.0.as_str())
    }
}

/// How names are validated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NameValidation {
    /// Prometheus 3's default: any non-empty UTF-8 label name.
    #[default]
    Utf8,
    /// `metric_name_validation_scheme: legacy`: `[a-zA-Z_][a-zA-Z0-9_]*`.
    Legacy,
}

impl NameValidation {
    /// The scheme of a config: `global.metric_name_validation_scheme: legacy`, else UTF-8.
    pub fn of_config(cfg: &vigil_config::Config) -> Self {
        match cfg.global.metric_name_validation_scheme.as_deref() {
            Some("legacy") => NameValidation::Legacy,
            _ => NameValidation::Utf8,
        }
    }
}

fn label_name_ok(s: &str, v: NameValidation) -> bool {
    match v {
        NameValidation::Utf8 => !s.is_empty(),
        NameValidation::Legacy => vigil_model::names::is_legacy_label_name(s),
    }
}

/// Parses rule-file text (no validation).
pub fn parse(text: &str, file: &Path) -> Result<RuleFile, RulesError> {
    match serde_yaml::from_str::<Option<RuleFile>>(text) {
        Ok(f) => Ok(f.unwrap_or_default()),
        Err(first) => {
            let merged = serde_yaml::from_str::<serde_yaml::Value>(text)
                .ok()
                .and_then(|mut v| v.apply_merge().ok().map(|_| v))
                .and_then(|v| serde_yaml::from_value::<RuleFile>(v).ok());
            merged.ok_or_else(|| RulesError::Parse {
                file: file.to_path_buf(),
                reason: first.to_string(),
            })
        }
    }
}

/// Checks a parsed file as Prometheus' `RuleGroups.Validate` does; returns every problem.
pub fn validate(rf: &RuleFile, names: NameValidation) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for g in &rf.groups {
        if g.name.is_empty() {
            problems.push("Groupname must not be empty".to_string());
        }
        if !seen.insert(g.name.as_str()) {
            problems.push(format!(
                "groupname: \"{}\" is repeated in the same file",
                g.name
            ));
        }
        for (i, r) in g.rules.iter().enumerate() {
            for p in validate_rule(r, names) {
                problems.push(format!(
                    "group {:?}, rule {}, {:?}: {p}",
                    g.name,
                    i + 1,
                    r.name()
                ));
            }
        }
    }
    problems
}

fn validate_rule(r: &RuleDesc, names: NameValidation) -> Vec<String> {
    let mut out = Vec::new();
    let record = r.record.as_ref().map(|t| t.0.as_str()).unwrap_or("");
    let alert = r.alert.as_ref().map(|t| t.0.as_str()).unwrap_or("");
    match (record.is_empty(), alert.is_empty()) {
        (false, false) => out.push("only one of 'record' and 'alert' must be set".into()),
        (true, true) => out.push("one of 'record' or 'alert' must be set".into()),
        _ => {}
    }
    let expr = r.expr.as_ref().map(|t| t.0.as_str()).unwrap_or("");
    if expr.is_empty() {
        out.push("field 'expr' must be set in rule".into());
    } else if let Err(e) = vigil_promql_parser::parse(expr) {
        // The engine's parser (vigil's extra functions included); the error carries its
        // position as Prometheus prints it (`1:5: parse error: ...`).
        out.push(format!("could not parse expression: {e}"));
    }
    if !record.is_empty() {
        if !r.annotations.is_empty() {
            out.push("invalid field 'annotations' in recording rule".into());
        }
        if r.for_.is_some_and(|d| d.0 != Duration::ZERO) {
            out.push("invalid field 'for' in recording rule".into());
        }
        if r.keep_firing_for.is_some_and(|d| d.0 != Duration::ZERO) {
            out.push("invalid field 'keep_firing_for' in recording rule".into());
        }
        if !vigil_model::names::is_legacy_metric_name(record) && record.contains(['{', '}']) {
            out.push(format!(
                "braces present in the recording rule name; should it be in expr?: {record}"
            ));
        } else if names == NameValidation::Legacy
            && !vigil_model::names::is_legacy_metric_name(record)
        {
            out.push(format!("invalid recording rule name: {record}"));
        }
    }
    for (k, v) in &r.labels {
        if !label_name_ok(k, names) || k == vigil_model::METRIC_NAME {
            out.push(format!("invalid label name: {k}"));
        }
        if !record.is_empty() {
            continue;
        }
        if let Err(e) = template::parse(&v.0) {
            out.push(format!("label {k:?}: {e}"));
        }
    }
    for (k, v) in &r.annotations {
        if !label_name_ok(k, names) {
            out.push(format!("invalid annotation name: {k}"));
        }
        if let Err(e) = template::parse(&v.0) {
            out.push(format!("annotation {k:?}: {e}"));
        }
    }
    out
}

/// Reads, parses and validates one rule file.
pub fn load_file(path: &Path, names: NameValidation) -> Result<RuleFile, RulesError> {
    let text = std::fs::read_to_string(path).map_err(|e| RulesError::Read {
        file: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let rf = parse(&text, path)?;
    let problems = validate(&rf, names);
    if problems.is_empty() {
        Ok(rf)
    } else {
        Err(RulesError::Invalid {
            file: path.to_path_buf(),
            problems,
        })
    }
}

/// Expands `rule_files` globs into the sorted, de-duplicated list of files.
pub fn expand_globs(patterns: &[String]) -> Result<Vec<PathBuf>, RulesError> {
    let mut out = Vec::new();
    for p in patterns {
        let paths = glob::glob(p).map_err(|e| RulesError::Glob {
            pattern: p.clone(),
            reason: e.to_string(),
        })?;
        let mut matched: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
        matched.sort();
        for m in matched {
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_rulefmt_corpus() {
        let Some(dir) = vigil_testdata::corpus_dir("prometheus_rulefmt_corpus", "rules/rulefmt")
        else {
            return;
        };
        let mut good = 0;
        let mut bad = 0;
        for e in std::fs::read_dir(dir).expect("rulefmt testdata") {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            // The legacy-validation case is bad only under the legacy naming scheme (as in
            // Prometheus' own test, which switches the scheme for it).
            let names = if name.starts_with("legacy_validation") {
                NameValidation::Legacy
            } else {
                NameValidation::Utf8
            };
            let r = load_file(&p, names);
            if name.ends_with(".bad.yaml") {
                let err = r.expect_err(&name).to_string();
                assert!(err.contains(&name), "{name}: {err}");
                bad += 1;
            } else {
                r.unwrap_or_else(|e| panic!("{name}: {e}"));
                good += 1;
            }
        }
        assert_eq!((good, bad), (5, 11));
    }

    #[test]
    fn messages_name_the_problem() {
        let Some(dir) = vigil_testdata::corpus_dir("messages_name_the_problem", "rules/rulefmt")
        else {
            return;
        };
        let cases = [
            ("bad_expr.bad.yaml", "could not parse expression"),
            ("bad_field.bad.yaml", "unknown field `annotation`"),
            ("duplicate_grp.bad.yaml", "is repeated in the same file"),
            (
                "invalid_label_name.bad.yaml",
                "invalid label name: __name__",
            ),
            ("invalid_record_name.bad.yaml", "braces present"),
            (
                "no_rec_alert.bad.yaml",
                "one of 'record' or 'alert' must be set",
            ),
            ("noexpr.bad.yaml", "field 'expr' must be set"),
            (
                "record_and_alert.bad.yaml",
                "only one of 'record' and 'alert'",
            ),
            ("record_and_for.bad.yaml", "invalid field 'for'"),
            (
                "record_and_keep_firing_for.bad.yaml",
                "invalid field 'keep_firing_for'",
            ),
        ];
        for (f, want) in cases {
            let err = load_file(&dir.join(f), NameValidation::Utf8)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{f}: {err}");
        }
    }

    #[test]
    fn bad_template_is_refused() {
        let rf = parse(
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations:\n      s: '{{ $labels.x '\n",
            Path::new("x.yml"),
        )
        .unwrap();
        let p = validate(&rf, NameValidation::Utf8);
        assert_eq!(p.len(), 1, "{p:?}");
    }
}
