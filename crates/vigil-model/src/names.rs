//! Metric and label name rules: the legacy character sets Prometheus 2 required and the
//! escaping schemes Prometheus 3 applies when a UTF-8 name meets a consumer that only
//! understands legacy names (`metric_name_escaping_scheme`, the `escaping=` parameter of
//! `Accept`). One owner, so the scrape loop, federation, rule files and the config agree.

use std::fmt::Write;

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`: a metric name valid under legacy validation.
pub fn is_legacy_metric_name(s: &str) -> bool {
    !s.is_empty() && s.char_indices().all(|(i, c)| legacy_rune(c, i))
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`: a label name valid under legacy validation.
pub fn is_legacy_label_name(s: &str) -> bool {
    !s.is_empty() && s.char_indices().all(|(i, c)| c != ':' && legacy_rune(c, i))
}

/// A character allowed at byte offset `i` of a legacy metric name.
fn legacy_rune(c: char, i: usize) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (c.is_ascii_digit() && i > 0)
}

/// How names that are not legacy-valid are written for a legacy consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escaping {
    /// `allow-utf-8`: names are written unchanged (quoted where the format needs it).
    AllowUtf8,
    /// `underscores`: every invalid character becomes `_`.
    Underscores,
    /// `dots`: `_` becomes `__`, `.` becomes `_dot_`, other invalid characters `__`.
    Dots,
    /// `values`: `U__` then `_` as `__` and other invalid characters as `_<hex>_`.
    Values,
}

impl Escaping {
    /// The scheme an `escaping=` parameter or `metric_name_escaping_scheme` names.
    pub fn parse(s: &str) -> Option<Escaping> {
        Some(match s {
            "allow-utf-8" => Escaping::AllowUtf8,
            "underscores" => Escaping::Underscores,
            "dots" => Escaping::Dots,
            "values" => Escaping::Values,
            _ => return None,
        })
    }

    /// The parameter value, as in `escaping=underscores`.
    pub fn as_str(self) -> &'static str {
        match self {
            Escaping::AllowUtf8 => "allow-utf-8",
            Escaping::Underscores => "underscores",
            Escaping::Dots => "dots",
            Escaping::Values => "values",
        }
    }
}

/// `name` as `scheme` writes it for a legacy consumer. Legacy-valid names are unchanged
/// except under `dots`, which always doubles underscores (so it can be reversed).
pub fn escape_name(name: &str, scheme: Escaping) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    if name.is_empty() || scheme == Escaping::AllowUtf8 {
        return Cow::Borrowed(name);
    }
    if scheme != Escaping::Dots && is_legacy_metric_name(name) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 8);
    if scheme == Escaping::Values {
        out.push_str("U__");
    }
    for (i, c) in name.char_indices() {
        match scheme {
            Escaping::Underscores => out.push(if legacy_rune(c, i) { c } else { '_' }),
            Escaping::Dots => match c {
                '_' => out.push_str("__"),
                '.' => out.push_str("_dot_"),
                c if legacy_rune(c, i) => out.push(c),
                _ => out.push_str("__"),
            },
            Escaping::Values => match c {
                '_' => out.push_str("__"),
                c if legacy_rune(c, i) => out.push(c),
                // A Rust `char` is always a valid scalar value; U+FFFD stands for the
                // invalid bytes a lossy decode replaced, as Go's range loop yields it.
                c => {
                    let _ = write!(out, "_{:x}_", c as u32);
                }
            },
            Escaping::AllowUtf8 => unreachable!("returned above"),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_character_sets() {
        assert!(is_legacy_metric_name("a:b_c9"));
        assert!(is_legacy_metric_name(":x"));
        assert!(!is_legacy_metric_name("9x"));
        assert!(!is_legacy_metric_name("model.latency"));
        assert!(!is_legacy_metric_name(""));
        assert!(is_legacy_label_name("_a9"));
        assert!(!is_legacy_label_name("a:b"));
        assert!(!is_legacy_label_name("é"));
    }

    #[test]
    fn escaping_schemes_as_prometheus_common_writes_them() {
        use Escaping::*;
        let cases = [
            ("model.latency", Underscores, "model_latency"),
            ("model.latency", Dots, "model_dot_latency"),
            ("model.latency", Values, "U__model_2e_latency"),
            ("model.latency", AllowUtf8, "model.latency"),
            ("http_total", Underscores, "http_total"),
            ("http_total", Dots, "http__total"),
            ("http_total", Values, "http_total"),
            ("9lives", Underscores, "_lives"),
            ("9lives", Values, "U___39_lives"),
            ("café-1", Underscores, "caf__1"),
            ("café-1", Dots, "caf____1"),
            ("café-1", Values, "U__caf_e9__2d_1"),
            ("", Values, ""),
        ];
        for (name, scheme, want) in cases {
            assert_eq!(escape_name(name, scheme), want, "{name} {scheme:?}");
        }
        for s in ["allow-utf-8", "underscores", "dots", "values"] {
            assert_eq!(Escaping::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(Escaping::parse("UTF8"), None);
    }
}
