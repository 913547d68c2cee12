//! Relabeling, exactly as Prometheus 3.x `model/relabel` does it.
//!
//! A [`RelabelConfig`] is validated and its regex compiled while the YAML is decoded (serde's
//! `try_from`), so a bad rule is refused with the line of its entry and a compiled rule can be
//! applied on the hot path without further checks. Regexes are anchored and dot-all
//! (`^(?s:...)$`), and `$1`/`${name}` templates follow Go's `Regexp.Expand`, so `$1x` names the
//! group `1x` (usually empty) just as in Prometheus; a rule set behaves the same in both.

use md5::{Digest, Md5};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::fmt;
use vigil_model::{Labels, LabelsBuilder};

pub const DEFAULT_SEPARATOR: &str = ";";
pub const DEFAULT_REGEX: &str = "(.*)";
pub const DEFAULT_REPLACEMENT: &str = "$1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }

    /// Case-insensitive, as Prometheus lowercases the action before matching it.
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s.to_ascii_lowercase().as_str() {
            "replace" => Action::Replace,
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "keepequal" => Action::KeepEqual,
            "dropequal" => Action::DropEqual,
            "hashmod" => Action::HashMod,
            "labelmap" => Action::LabelMap,
            "labeldrop" => Action::LabelDrop,
            "labelkeep" => Action::LabelKeep,
            "lowercase" => Action::Lowercase,
            "uppercase" => Action::Uppercase,
            _ => return None,
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated relabel rule with its regex compiled.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(try_from = "RawRelabelConfig", into = "RawRelabelConfig")]
pub struct RelabelConfig {
    pub source_labels: Vec<String>,
    pub separator: String,
    /// The regex as written (unanchored), `(.*)` by default.
    pub regex_source: String,
    /// The compiled, anchored regex.
    pub regex: Regex,
    pub modulus: u64,
    pub target_label: String,
    pub replacement: String,
    pub action: Action,
    /// True when no `regex` key was given (enables Prometheus' add/delete fast path).
    regex_is_default: bool,
    source_labels_given: bool,
}

/// The rule as written in YAML.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRelabelConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_labels: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    #[serde(
        default,
        deserialize_with = "crate::de::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub regex: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modulus: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    #[serde(
        default,
        deserialize_with = "crate::de::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub action: Option<Option<String>>,
}

/// Compiles `pattern` as Prometheus 3.x does: anchored at both ends, dot-all.
pub fn compile_regex(pattern: &str) -> Result<Regex, String> {
    vigil_model::matcher::anchored_regex(pattern).map_err(|e| e.to_string())
}

fn label_name_valid(name: &str) -> bool {
    // UTF-8 validation scheme (Prometheus 3.x default): any non-empty UTF-8 string.
    !name.is_empty()
}

/// Legacy label name syntax `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn legacy_label_name_valid(name: &str) -> bool {
    vigil_model::names::is_legacy_label_name(name)
}

/// Prometheus' `relabelTarget`: `^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$`.
fn relabel_target_valid(s: &str) -> bool {
    static_regex().is_match(s)
}

fn static_regex() -> &'static Regex {
    use std::sync::OnceLock;
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$").expect("static regex")
    })
}

impl TryFrom<RawRelabelConfig> for RelabelConfig {
    type Error = String;

    fn try_from(raw: RawRelabelConfig) -> Result<Self, String> {
        let action = match &raw.action {
            None => Action::Replace,
            Some(None) => return Err("relabel action cannot be empty".into()),
            Some(Some(s)) if s.is_empty() => return Err("relabel action cannot be empty".into()),
            Some(Some(s)) => Action::parse(s).ok_or_else(|| {
                format!(
                    "unknown relabel action {s:?} (expected one of replace, keep, drop, keepequal, dropequal, \
                     hashmod, labelmap, labeldrop, labelkeep, lowercase, uppercase)"
                )
            })?,
        };
        let (regex_source, regex_is_default) = match &raw.regex {
            None => (DEFAULT_REGEX.to_string(), true),
            Some(None) => (String::new(), false),
            Some(Some(s)) => (s.clone(), false),
        };
        let regex = compile_regex(&regex_source)?;
        let c = RelabelConfig {
            source_labels_given: raw.source_labels.is_some(),
            source_labels: raw.source_labels.unwrap_or_default(),
            separator: raw.separator.unwrap_or_else(|| DEFAULT_SEPARATOR.into()),
            regex_source,
            regex,
            modulus: raw.modulus.unwrap_or(0),
            target_label: raw.target_label.unwrap_or_default(),
            replacement: raw
                .replacement
                .unwrap_or_else(|| DEFAULT_REPLACEMENT.into()),
            action,
            regex_is_default,
        };
        c.validate()?;
        Ok(c)
    }
}

impl From<RelabelConfig> for RawRelabelConfig {
    fn from(c: RelabelConfig) -> Self {
        RawRelabelConfig {
            source_labels: (!c.source_labels.is_empty()).then_some(c.source_labels),
            separator: Some(c.separator),
            regex: Some(Some(c.regex_source)),
            modulus: (c.modulus != 0).then_some(c.modulus),
            target_label: (!c.target_label.is_empty()).then_some(c.target_label),
            replacement: Some(c.replacement),
            action: Some(Some(c.action.as_str().to_string())),
        }
    }
}

impl RelabelConfig {
    /// A rule from its parts, validated; `regex` None means the default `(.*)`.
    pub fn new(
        action: Action,
        source_labels: &[&str],
        regex: Option<&str>,
        target_label: &str,
        replacement: Option<&str>,
    ) -> Result<Self, String> {
        RelabelConfig::try_from(RawRelabelConfig {
            source_labels: (!source_labels.is_empty())
                .then(|| source_labels.iter().map(|s| s.to_string()).collect()),
            separator: None,
            regex: regex.map(|r| Some(r.to_string())),
            modulus: None,
            target_label: (!target_label.is_empty()).then(|| target_label.to_string()),
            replacement: replacement.map(str::to_string),
            action: Some(Some(action.as_str().to_string())),
        })
    }

    /// Prometheus' `relabel.Config.Validate` (UTF-8 name validation scheme).
    pub fn validate(&self) -> Result<(), String> {
        let a = self.action;
        use Action::*;
        if self.modulus == 0 && a == HashMod {
            return Err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        if matches!(
            a,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        ) && self.target_label.is_empty()
        {
            return Err(format!(
                "relabel configuration for {a} action requires 'target_label' value"
            ));
        }
        if a == Replace && !self.target_label.contains('$') && !label_name_valid(&self.target_label)
        {
            return Err(format!(
                "{:?} is invalid 'target_label' for {a} action",
                self.target_label
            ));
        }
        if matches!(a, Lowercase | Uppercase | KeepEqual | DropEqual)
            && !label_name_valid(&self.target_label)
        {
            return Err(format!(
                "{:?} is invalid 'target_label' for {a} action",
                self.target_label
            ));
        }
        if matches!(a, Lowercase | Uppercase | KeepEqual | DropEqual)
            && self.replacement != DEFAULT_REPLACEMENT
        {
            return Err(format!("'replacement' can not be set for {a} action"));
        }
        if a == LabelMap && self.replacement.is_empty() {
            return Err(format!(
                "{:?} is invalid 'replacement' for {a} action",
                self.replacement
            ));
        }
        if a == HashMod && !label_name_valid(&self.target_label) {
            return Err(format!(
                "{:?} is invalid 'target_label' for {a} action",
                self.target_label
            ));
        }
        if matches!(a, DropEqual | KeepEqual)
            && (!self.regex_is_default
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!(
                "{a} action requires only 'source_labels' and `target_label`, and no other fields"
            ));
        }
        if matches!(a, LabelDrop | LabelKeep)
            && (self.source_labels_given
                || !self.target_label.is_empty()
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!(
                "{a} action requires only 'regex', and no other fields"
            ));
        }
        Ok(())
    }

    /// Extra checks under the legacy metric name validation scheme.
    pub fn validate_legacy(&self) -> Result<(), String> {
        use Action::*;
        let a = self.action;
        let t = &self.target_label;
        let bad_target = match a {
            Replace if t.contains('$') => !relabel_target_valid(t),
            Replace | Lowercase | Uppercase | KeepEqual | DropEqual | HashMod => {
                !legacy_label_name_valid(t)
            }
            _ => false,
        };
        if bad_target {
            return Err(format!("{t:?} is invalid 'target_label' for {a} action"));
        }
        if a == LabelMap && !relabel_target_valid(&self.replacement) {
            return Err(format!(
                "{:?} is invalid 'replacement' for {a} action",
                self.replacement
            ));
        }
        Ok(())
    }
}

/// Applies `configs` in order. `None` means the label set was dropped.
pub fn process(labels: &Labels, configs: &[RelabelConfig]) -> Option<Labels> {
    let mut b = labels.to_builder();
    if process_builder(&mut b, configs) {
        Some(b.build())
    } else {
        None
    }
}

/// Like [`process`], on a builder the caller owns; false means dropped.
pub fn process_builder(b: &mut LabelsBuilder, configs: &[RelabelConfig]) -> bool {
    configs.iter().all(|c| relabel(c, b))
}

fn relabel(cfg: &RelabelConfig, lb: &mut LabelsBuilder) -> bool {
    let val = {
        let mut v = String::new();
        for (i, name) in cfg.source_labels.iter().enumerate() {
            if i > 0 {
                v.push_str(&cfg.separator);
            }
            v.push_str(lb.get(name).unwrap_or(""));
        }
        v
    };
    match cfg.action {
        Action::Drop => {
            if cfg.regex.is_match(&val) {
                return false;
            }
        }
        Action::Keep => {
            if !cfg.regex.is_match(&val) {
                return false;
            }
        }
        Action::DropEqual => {
            if lb.get(&cfg.target_label).unwrap_or("") == val {
                return false;
            }
        }
        Action::KeepEqual => {
            if lb.get(&cfg.target_label).unwrap_or("") != val {
                return false;
            }
        }
        Action::Replace => {
            if val.is_empty()
                && cfg.regex_is_default
                && !cfg.target_label.contains('$')
                && !cfg.replacement.contains('$')
            {
                lb.set(cfg.target_label.clone(), cfg.replacement.clone());
                return true;
            }
            let Some(caps) = cfg.regex.captures(&val) else {
                return true;
            };
            let target = expand(&cfg.regex, &caps, &cfg.target_label);
            if !label_name_valid(&target) {
                return true;
            }
            let res = expand(&cfg.regex, &caps, &cfg.replacement);
            if res.is_empty() {
                lb.del(&target);
            } else {
                lb.set(target, res);
            }
        }
        Action::Lowercase => {
            lb.set(cfg.target_label.clone(), val.to_lowercase());
        }
        Action::Uppercase => {
            lb.set(cfg.target_label.clone(), val.to_uppercase());
        }
        Action::HashMod => {
            let hash = Md5::digest(val.as_bytes());
            let mut last = [0u8; 8];
            last.copy_from_slice(&hash[8..16]);
            let m = u64::from_be_bytes(last) % cfg.modulus;
            lb.set(cfg.target_label.clone(), m.to_string());
        }
        Action::LabelMap => {
            let snapshot: Vec<(String, String)> = lb
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            for (name, value) in snapshot {
                if let Some(caps) = cfg.regex.captures(&name) {
                    let res = expand(&cfg.regex, &caps, &cfg.replacement);
                    lb.set(res, value);
                }
            }
        }
        Action::LabelDrop => {
            lb.retain(|l| !cfg.regex.is_match(&l.name));
        }
        Action::LabelKeep => {
            lb.retain(|l| cfg.regex.is_match(&l.name));
        }
    }
    true
}

/// Go's `Regexp.Expand`: `$$` is `$`; `$name` takes the longest run of letters, digits and
/// `_` as the group name (so `$1x` is the group named `1x`); `${name}` delimits it; a number
/// names a group by index; unknown or unmatched groups expand to nothing; a malformed `$`
/// stays literal.
pub fn expand(re: &Regex, caps: &regex::Captures<'_>, template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let (brace, body) = match rest.strip_prefix('{') {
            Some(b) => (true, b),
            None => (false, rest),
        };
        let name_len: usize = body
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map(|(i, _)| i)
            .unwrap_or(body.len());
        if name_len == 0 || (brace && !body[name_len..].starts_with('}')) {
            out.push('$');
            continue;
        }
        let name = &body[..name_len];
        rest = if brace {
            &body[name_len + 1..]
        } else {
            &body[name_len..]
        };
        let index = if name.bytes().all(|b| b.is_ascii_digit()) && name.len() <= 8 {
            name.parse::<usize>().ok()
        } else {
            None
        };
        match index {
            Some(i) => {
                if let Some(m) = caps.get(i) {
                    out.push_str(m.as_str());
                }
            }
            None => {
                for (i, n) in re.capture_names().enumerate() {
                    if n == Some(name)
                        && let Some(m) = caps.get(i)
                    {
                        out.push_str(m.as_str());
                        break;
                    }
                }
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> RelabelConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn rules(yaml: &str) -> Vec<RelabelConfig> {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn ls(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn defaults() {
        let r = rule("target_label: x");
        assert_eq!(r.action, Action::Replace);
        assert_eq!(r.separator, ";");
        assert_eq!(r.regex_source, "(.*)");
        assert_eq!(r.replacement, "$1");
    }

    #[test]
    fn replace() {
        let cfg = rules(
            "- source_labels: [a, b]\n  regex: (.*);(.*)\n  target_label: c\n  replacement: ${2}-$1\n",
        );
        let out = process(&ls(&[("a", "x"), ("b", "y")]), &cfg).unwrap();
        assert_eq!(out.get("c"), Some("y-x"));
        // No match: unchanged.
        let cfg = rules("- source_labels: [a]\n  regex: z+\n  target_label: c\n");
        assert_eq!(
            process(&ls(&[("a", "x")]), &cfg).unwrap(),
            ls(&[("a", "x")])
        );
        // Empty result deletes the target.
        let cfg = rules("- source_labels: [a]\n  regex: x\n  target_label: b\n  replacement: ''\n");
        assert_eq!(
            process(&ls(&[("a", "x"), ("b", "1")]), &cfg).unwrap(),
            ls(&[("a", "x")])
        );
        // Fast path: static value when the source is empty.
        let cfg = rules("- target_label: env\n  replacement: prod\n");
        assert_eq!(
            process(&ls(&[("a", "x")]), &cfg).unwrap().get("env"),
            Some("prod")
        );
        // Templated target label.
        let cfg = rules(
            "- source_labels: [a]\n  regex: (.*)=(.*)\n  target_label: ${1}\n  replacement: $2\n",
        );
        assert_eq!(
            process(&ls(&[("a", "k=v")]), &cfg).unwrap().get("k"),
            Some("v")
        );
        // Regex is anchored.
        let cfg =
            rules("- source_labels: [a]\n  regex: b\n  target_label: c\n  replacement: hit\n");
        assert_eq!(process(&ls(&[("a", "abc")]), &cfg).unwrap().get("c"), None);
    }

    #[test]
    fn go_expand_semantics() {
        let re = compile_regex("(?P<x>a)(b)").unwrap();
        let caps = re.captures("ab").unwrap();
        assert_eq!(expand(&re, &caps, "$1x"), "");
        assert_eq!(expand(&re, &caps, "${1}x"), "ax");
        assert_eq!(expand(&re, &caps, "$x-$2"), "a-b");
        assert_eq!(expand(&re, &caps, "$$1"), "$1");
        assert_eq!(expand(&re, &caps, "a$"), "a$");
        assert_eq!(expand(&re, &caps, "${1"), "${1");
        assert_eq!(expand(&re, &caps, "$9"), "");
    }

    #[test]
    fn keep_and_drop() {
        let keep = rules("- source_labels: [a]\n  regex: x.*\n  action: keep\n");
        assert!(process(&ls(&[("a", "xyz")]), &keep).is_some());
        assert!(process(&ls(&[("a", "yz")]), &keep).is_none());
        let drop = rules("- source_labels: [a]\n  regex: x.*\n  action: Drop\n");
        assert!(process(&ls(&[("a", "xyz")]), &drop).is_none());
        assert!(process(&ls(&[("a", "y")]), &drop).is_some());
        // Dot matches newline.
        assert!(process(&ls(&[("a", "x\ny")]), &drop).is_none());
    }

    #[test]
    fn keepequal_dropequal() {
        let ke = rules("- source_labels: [a]\n  target_label: b\n  action: keepequal\n");
        assert!(process(&ls(&[("a", "1"), ("b", "1")]), &ke).is_some());
        assert!(process(&ls(&[("a", "1"), ("b", "2")]), &ke).is_none());
        let de = rules("- source_labels: [a]\n  target_label: b\n  action: dropequal\n");
        assert!(process(&ls(&[("a", "1"), ("b", "1")]), &de).is_none());
        assert!(process(&ls(&[("a", "1"), ("b", "2")]), &de).is_some());
    }

    #[test]
    fn hashmod() {
        let cfg =
            rules("- source_labels: [a]\n  modulus: 1000\n  target_label: h\n  action: hashmod\n");
        let out = process(&ls(&[("a", "foo")]), &cfg).unwrap();
        // md5("foo") = acbd18db4cc2f85cedef654fccc4a4d8; last 8 bytes 0xedef654fccc4a4d8.
        let expected = 0xedef654fccc4a4d8u64 % 1000;
        assert_eq!(out.get("h"), Some(expected.to_string().as_str()));
    }

    #[test]
    fn labelmap_labeldrop_labelkeep() {
        let lm = rules("- action: labelmap\n  regex: __meta_(.+)\n");
        let out = process(&ls(&[("__meta_x", "1"), ("a", "2")]), &lm).unwrap();
        assert_eq!(out.get("x"), Some("1"));
        assert_eq!(out.get("__meta_x"), Some("1"));
        let ld = rules("- action: labeldrop\n  regex: __meta_.*\n");
        assert_eq!(
            process(&ls(&[("__meta_x", "1"), ("a", "2")]), &ld).unwrap(),
            ls(&[("a", "2")])
        );
        let lk = rules("- action: labelkeep\n  regex: a|b\n");
        assert_eq!(
            process(&ls(&[("a", "1"), ("b", "2"), ("c", "3")]), &lk).unwrap(),
            ls(&[("a", "1"), ("b", "2")])
        );
    }

    #[test]
    fn lowercase_uppercase() {
        let cfg = rules(
            "- source_labels: [a]\n  target_label: lo\n  action: lowercase\n\
             - source_labels: [a]\n  target_label: up\n  action: uppercase\n",
        );
        let out = process(&ls(&[("a", "MiXed")]), &cfg).unwrap();
        assert_eq!(out.get("lo"), Some("mixed"));
        assert_eq!(out.get("up"), Some("MIXED"));
    }

    #[test]
    fn validation() {
        for (yaml, want) in [
            ("action: null", "cannot be empty"),
            ("action: frobnicate", "unknown relabel action"),
            ("regex: abcdef", "requires 'target_label'"),
            ("regex: abc(def\ntarget_label: x", "regex"),
            (
                "source_labels: [a]\naction: hashmod\ntarget_label: x",
                "non-zero modulus",
            ),
            (
                "source_labels: [a]\naction: keepequal",
                "requires 'target_label'",
            ),
            (
                "source_labels: [a]\naction: dropequal\nregex: foo\ntarget_label: b",
                "requires only",
            ),
            (
                "source_labels: [a]\naction: labeldrop",
                "requires only 'regex'",
            ),
            ("separator: ','\naction: labelkeep", "requires only 'regex'"),
            (
                "action: lowercase\nsource_labels: [a]\ntarget_label: b\nreplacement: x",
                "can not be set",
            ),
        ] {
            let e = serde_yaml::from_str::<RelabelConfig>(yaml)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{yaml:?}: {e}");
        }
        // An explicit null regex is the empty regex, as in Prometheus.
        let r = rule("regex:\nreplacement: static\ntarget_label: abc");
        assert!(r.regex.is_match("") && !r.regex.is_match("x"));
    }
}
