//! The Go `text/template` subset that Prometheus alert labels and annotations use.
//!
//! Why our own: the Rust ports of Go templates take plain `fn` pointers as functions, but
//! `query` must reach the engine and storage of the evaluation that expands it, and Go's
//! number printing (`1e+06`, `%.4g`) must be exact for annotations to match Prometheus'.
//! The subset is what rule files use in practice: text, `{{- -}}` trimming, comments,
//! pipelines with `|`, variables (`$x := ...`, `$labels`, `$value`, `$externalLabels`,
//! `$externalURL`, `$`), field chains on maps and structs, parenthesised pipelines,
//! `if`/`else if`/`else`, `range` (with `$i, $v :=`), `with`, string/number/bool literals,
//! and Prometheus' function map plus Go's builtins (`printf`, `eq`, `len`, `index`, ...).
//! `define`/`template`/`block` are refused at parse time with a clear message.
//!
//! Stages: `lexer` splits the source into text and actions and tokenizes actions,
//! `parser` builds the node tree, `exec` walks it, `functions` is the function map
//! and `sprintf` Go's `fmt.Sprintf`. This file holds what they share: values, the
//! environment a template can reach, the error type, and the alert entry point.

mod exec;
mod functions;
mod lexer;
mod parser;
mod sprintf;

use crate::gofmt;
use std::collections::BTreeMap;

pub use functions::{datetime, humanize, humanize_duration, humanize_timestamp, humanize1024};
pub use parser::{Template, parse};
pub use sprintf::sprintf;

/// Why a template failed. The Display text is what Go's `text/template` says (without its
/// `template: name:line:` prefix), since it ends up in alert annotations.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// The source could not be tokenized: an unclosed action, comment or string, a bad
    /// number, a stray character. `line` is the 1-based line of the action.
    #[error("{msg}")]
    Lex { line: usize, msg: String },
    /// The tokens do not form a template: unknown function, missing `end`, bad pipeline.
    /// `line` is the 1-based line of the action.
    #[error("{msg}")]
    Parse { line: usize, msg: String },
    /// Execution failed: wrong arguments, bad field access, a conversion.
    #[error("{msg}")]
    Exec { msg: String },
    /// The environment's `query` failed; `msg` is its error as given.
    #[error("{msg}")]
    Query { msg: String },
    /// Execution exceeded its step budget (a guard against runaway `range`).
    #[error("template too expensive")]
    TooExpensive,
}

impl TemplateError {
    fn lex(line: usize, msg: impl Into<String>) -> Self {
        TemplateError::Lex {
            line,
            msg: msg.into(),
        }
    }

    fn parse(line: usize, msg: impl Into<String>) -> Self {
        TemplateError::Parse {
            line,
            msg: msg.into(),
        }
    }

    fn exec(msg: impl Into<String>) -> Self {
        TemplateError::Exec { msg: msg.into() }
    }

    /// The source line of a lex or parse error.
    pub fn line(&self) -> Option<usize> {
        match self {
            TemplateError::Lex { line, .. } | TemplateError::Parse { line, .. } => Some(*line),
            _ => None,
        }
    }
}

/// A template value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Num(f64),
    Str(String),
    /// A `map[string]string` (label sets).
    Map(BTreeMap<String, String>),
    /// A struct with exported fields (the template data, a query sample).
    Struct(BTreeMap<String, Value>),
    List(Vec<Value>),
}

impl Value {
    fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Num(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Struct(_) => true,
            Value::List(l) => !l.is_empty(),
        }
    }

    /// How Go's `fmt.Print` shows the value.
    pub fn print(&self) -> String {
        match self {
            Value::Nil => "<no value>".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Num(f) => gofmt::g(*f, None),
            Value::Str(s) => s.clone(),
            Value::Map(m) => format!(
                "map[{}]",
                m.iter()
                    .map(|(k, v)| format!("{k}:{v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Value::Struct(s) => format!(
                "{{{}}}",
                s.values().map(Value::print).collect::<Vec<_>>().join(" ")
            ),
            Value::List(l) => format!(
                "[{}]",
                l.iter().map(Value::print).collect::<Vec<_>>().join(" ")
            ),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Num(_) => "float64",
            Value::Str(_) => "string",
            Value::Map(_) => "map[string]string",
            Value::Struct(_) => "struct",
            Value::List(_) => "slice",
        }
    }

    fn to_f64(&self) -> Result<f64, TemplateError> {
        match self {
            Value::Int(i) => Ok(*i as f64),
            Value::Num(f) => Ok(*f),
            Value::Str(s) => s
                .trim()
                .parse::<f64>()
                .or_else(|_| parse_go_float(s.trim()))
                .map_err(|_| {
                    TemplateError::exec(format!(
                        "strconv.ParseFloat: parsing {s:?}: invalid syntax"
                    ))
                }),
            Value::Bool(_) | Value::Nil | Value::Map(_) | Value::Struct(_) | Value::List(_) => Err(
                TemplateError::exec(format!("can't convert {} to float", self.type_name())),
            ),
        }
    }
}

fn parse_go_float(s: &str) -> Result<f64, ()> {
    match s {
        "+Inf" | "Inf" | "inf" | "+inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" | "nan" => Ok(f64::NAN),
        _ => Err(()),
    }
}

/// One sample a `query` returned.
pub type QueryResult = Vec<(BTreeMap<String, String>, f64)>;

/// What expanding a template can reach beyond its data.
pub trait Env {
    /// Runs an instant query at the evaluation time.
    fn query(&self, q: &str) -> Result<QueryResult, String>;
    /// The `--web.external-url`.
    fn external_url(&self) -> String {
        String::new()
    }
}

/// An environment without storage (`query` fails).
pub struct NoQuery;
impl Env for NoQuery {
    fn query(&self, _: &str) -> Result<QueryResult, String> {
        Err("query is not available here".into())
    }
}

/// The data and variables of an alert's templates, as Prometheus defines them.
pub struct AlertData<'a> {
    pub labels: &'a BTreeMap<String, String>,
    pub external_labels: &'a BTreeMap<String, String>,
    pub external_url: &'a str,
    pub value: f64,
}

/// Expands one label or annotation template of an alert. On error Prometheus keeps going
/// with `<error expanding template: ...>` as the value; so do we.
pub fn expand_alert(name: &str, text: &str, data: &AlertData<'_>, env: &dyn Env) -> String {
    if !text.contains("{{") {
        return text.to_string();
    }
    let result = parse(text).and_then(|t| {
        let mut root = BTreeMap::new();
        root.insert("Labels".to_string(), Value::Map(data.labels.clone()));
        root.insert(
            "ExternalLabels".to_string(),
            Value::Map(data.external_labels.clone()),
        );
        root.insert(
            "ExternalURL".to_string(),
            Value::Str(data.external_url.to_string()),
        );
        root.insert("Value".to_string(), Value::Num(data.value));
        let vars = [
            ("labels", Value::Map(data.labels.clone())),
            ("externalLabels", Value::Map(data.external_labels.clone())),
            ("externalURL", Value::Str(data.external_url.to_string())),
            ("value", Value::Num(data.value)),
        ];
        t.execute(&Value::Struct(root), &vars, env)
    });
    match result {
        Ok(s) => s,
        Err(e) => format!("<error expanding template: template: __alert_{name}: {e}>"),
    }
}

/// A fixed environment and alert for the tests of every stage.
#[cfg(test)]
mod testing {
    use super::*;

    struct Fake;
    impl Env for Fake {
        fn query(&self, q: &str) -> Result<QueryResult, String> {
            let mut l = BTreeMap::new();
            l.insert("instance".to_string(), format!("{q}-host"));
            Ok(vec![(l, 42.5)])
        }
    }

    /// Expands `src` as an annotation of alert `T` with `$value` = `value`.
    pub(super) fn run(src: &str, value: f64) -> String {
        let mut labels = BTreeMap::new();
        labels.insert("instance".to_string(), "localhost:8000".to_string());
        labels.insert("job".to_string(), "ml".to_string());
        let mut ext = BTreeMap::new();
        ext.insert("cluster".to_string(), "eu1".to_string());
        expand_alert(
            "T",
            src,
            &AlertData {
                labels: &labels,
                external_labels: &ext,
                external_url: "http://vigil:9090",
                value,
            },
            &Fake,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::testing::run;
    use super::*;

    #[test]
    fn variables_and_fields() {
        assert_eq!(
            run("High on {{ $labels.instance }}", 1.0),
            "High on localhost:8000"
        );
        assert_eq!(
            run("{{ .Labels.job }}/{{ $externalLabels.cluster }}", 1.0),
            "ml/eu1"
        );
        assert_eq!(run("v={{ $value }}", 0.6123), "v=0.6123");
        assert_eq!(run("v={{ $value }}", 1e6), "v=1e+06");
        assert_eq!(run("{{ $labels.missing }}", 1.0), "");
        assert_eq!(
            run("{{ $.Labels.job }} {{$externalURL}}", 1.0),
            "ml http://vigil:9090"
        );
    }

    #[test]
    fn errors_say_which_stage_failed() {
        let e = parse("a\n{{ # }}").unwrap_err();
        assert_eq!(e, TemplateError::lex(2, "unexpected '#' in command"));
        let e = parse("{{ if 1 }}\n\n{{ nosuchfunc }}{{ end }}").unwrap_err();
        assert_eq!(
            (e.to_string(), e.line()),
            ("function \"nosuchfunc\" not defined".to_string(), Some(3))
        );
        assert!(matches!(e, TemplateError::Parse { .. }));
        let e = parse("{{ first 1 }}")
            .unwrap()
            .execute(&Value::Nil, &[], &NoQuery)
            .unwrap_err();
        assert_eq!(
            e,
            TemplateError::exec("first: expected a query result, got int")
        );
        let e = parse("{{ query \"up\" }}")
            .unwrap()
            .execute(&Value::Nil, &[], &NoQuery)
            .unwrap_err();
        assert_eq!(
            e,
            TemplateError::Query {
                msg: "query is not available here".into()
            }
        );
        assert_eq!(
            run("{{ range $i := 100000 }}x{{ end }}", 0.0),
            "<error expanding template: template: __alert_T: template too expensive>"
        );
    }

    /// Parse result and expansion of templates that hit every error message (and some
    /// formatting), as recorded from the single-file version before the split.
    #[test]
    fn messages_match_the_recorded_ones() {
        let cases: &[(&str, &str)] = &[
            (
                "{{ \"x }}",
                "unclosed action | <error expanding template: template: __alert_T: unclosed action>",
            ),
            (
                "{{ `x }}",
                "unclosed action | <error expanding template: template: __alert_T: unclosed action>",
            ),
            (
                "{{ 0x }}",
                "bad number syntax: \"0x\" | <error expanding template: template: __alert_T: bad number syntax: \"0x\">",
            ),
            (
                "{{ .5 }}",
                "ok | <error expanding template: template: __alert_T: can't evaluate field 5 in type struct>",
            ),
            (
                "{{ # }}",
                "unexpected '#' in command | <error expanding template: template: __alert_T: unexpected '#' in command>",
            ),
            (
                "{{ /* x }}",
                "unclosed comment | <error expanding template: template: __alert_T: unclosed comment>",
            ),
            (
                "{{ }}",
                "missing value for command | <error expanding template: template: __alert_T: missing value for command>",
            ),
            (
                "{{ else x }}",
                "unexpected token after else | <error expanding template: template: __alert_T: unexpected token after else>",
            ),
            (
                "{{ define \"a\" }}",
                "{{define}} is not supported in rule templates | <error expanding template: template: __alert_T: {{define}} is not supported in rule templates>",
            ),
            (
                "{{ if 1 }}",
                "unexpected EOF in if | <error expanding template: template: __alert_T: unexpected EOF in if>",
            ),
            (
                "{{ if 1 }}{{ else }}",
                "expected end after else in if | <error expanding template: template: __alert_T: expected end after else in if>",
            ),
            (
                "{{ if 1 }}{{ else }}{{ else }}{{ end }}",
                "expected end after else in if | <error expanding template: template: __alert_T: expected end after else in if>",
            ),
            (
                "{{ 1 | }}",
                "missing value for command | <error expanding template: template: __alert_T: missing value for command>",
            ),
            (
                "{{ | 1 }}",
                "missing command | <error expanding template: template: __alert_T: missing command>",
            ),
            (
                "{{ nosuch }}",
                "function \"nosuch\" not defined | <error expanding template: template: __alert_T: function \"nosuch\" not defined>",
            ),
            (
                "{{ (1 }}",
                "unclosed left paren | <error expanding template: template: __alert_T: unclosed left paren>",
            ),
            (
                "{{ ) }}",
                "unexpected right paren | <error expanding template: template: __alert_T: unexpected right paren>",
            ),
            (
                "{{ := }}",
                "unexpected Declare in operand | <error expanding template: template: __alert_T: unexpected Declare in operand>",
            ),
            (
                "{{ end }}",
                "unexpected {{end}} | <error expanding template: template: __alert_T: unexpected {{end}}>",
            ),
            (
                "{{ else }}",
                "unexpected {{else}} | <error expanding template: template: __alert_T: unexpected {{else}}>",
            ),
            (
                "{{ $x = 1 }}",
                "ok | <error expanding template: template: __alert_T: undefined variable: $x>",
            ),
            (
                "{{ $nope }}",
                "ok | <error expanding template: template: __alert_T: undefined variable: $nope>",
            ),
            (
                "{{ 1 2 }}",
                "ok | <error expanding template: template: __alert_T: can't give argument to non-function Num(1.0, true)>",
            ),
            (
                "{{ range \"s\" }}{{ end }}",
                "ok | <error expanding template: template: __alert_T: range can't iterate over s>",
            ),
            (
                "{{ query \"up\" }}",
                "ok | <error expanding template: template: __alert_T: query is not available here>",
            ),
            (
                "{{ first 1 }}",
                "ok | <error expanding template: template: __alert_T: first: expected a query result, got int>",
            ),
            (
                "{{ label \"a\" 1 }}",
                "ok | <error expanding template: template: __alert_T: can't evaluate field Labels in type int>",
            ),
            (
                "{{ reReplaceAll \"(\" \"\" \"\" }}",
                "ok | <error expanding template: template: __alert_T: regex parse error:\n    (\n    ^\nerror: unclosed group>",
            ),
            (
                "{{ sortByLabel \"a\" 1 }}",
                "ok | <error expanding template: template: __alert_T: sortByLabel: expected a query result>",
            ),
            (
                "{{ humanize \"x\" }}",
                "ok | <error expanding template: template: __alert_T: strconv.ParseFloat: parsing \"x\": invalid syntax>",
            ),
            (
                "{{ humanize true }}",
                "ok | <error expanding template: template: __alert_T: can't convert bool to float>",
            ),
            (
                "{{ parseDuration \"x\" }}",
                "ok | <error expanding template: template: __alert_T: not a valid duration string: \"x\">",
            ),
            (
                "{{ len 1 }}",
                "ok | <error expanding template: template: __alert_T: len of type int>",
            ),
            (
                "{{ index }}",
                "ok | <error expanding template: template: __alert_T: wrong number of args for index>",
            ),
            (
                "{{ index (args 1) 5 }}",
                "ok | <error expanding template: template: __alert_T: can't index item of type struct>",
            ),
            (
                "{{ index 1 1 }}",
                "ok | <error expanding template: template: __alert_T: can't index item of type int>",
            ),
            (
                "{{ printf }}",
                "ok | <error expanding template: template: __alert_T: wrong number of args for printf>",
            ),
            (
                "{{ eq 1 }}",
                "ok | <error expanding template: template: __alert_T: missing argument for comparison eq>",
            ),
            (
                "{{ eq 1 \"a\" }}",
                "ok | <error expanding template: template: __alert_T: incompatible types for comparison>",
            ),
            (
                "{{ .Nope }}",
                "ok | <error expanding template: template: __alert_T: can't evaluate field Nope in type struct>",
            ),
            (
                "{{ .Labels.a.b }}",
                "ok | <error expanding template: template: __alert_T: can't evaluate field b in type string>",
            ),
            ("{{ $labels.x }}", "ok | "),
            (
                "{{ humanize 1 2 }}",
                "ok | <error expanding template: template: __alert_T: wrong number of args for humanize: want 1 got 2>",
            ),
            (
                "{{ range $i := 100000 }}x{{ end }}",
                "ok | <error expanding template: template: __alert_T: template too expensive>",
            ),
            (
                "{{ with $x := 1 }}{{ $x }}{{ end }}{{ $x }}",
                "ok | <error expanding template: template: __alert_T: undefined variable: $x>",
            ),
            (
                "{{ $n := nil }}{{ $n.a }}",
                "ok | <error expanding template: template: __alert_T: nil pointer evaluating .a>",
            ),
            (
                "{{ printf \"%5.2f|%x|%q|%d\" 3.14159 \"hi\" \"q\" }}",
                "ok |  3.14|6869|\"q\"|%!d(MISSING)",
            ),
            ("{{ humanizeDuration -93784.0 }}", "ok | -1d 2h 3m 4s"),
            ("{{ 1e6 }}", "ok | 1e+06"),
            ("{{ print 1 2 \"a\" 3 }}", "ok | 1 2a3"),
            ("{{ stripDomain \"a.b.c:9\" }}", "ok | a:9"),
            ("{{ html \"<a>\" }}", "ok | &lt;a&gt;"),
            ("{{ urlquery \"a b&\" }}", "ok | a+b%26"),
            ("{{ range $i, $v := $labels }}{{ $i }}{{ end }}", "ok | a"),
            ("{{ toTime 0.5 }}", "ok | 1970-01-01 00:00:00.5 +0000 UTC"),
            ("{{ $value | humanizePercentage }}", "ok | 25%"),
            ("{{ (args 1 2).arg1 }}", "ok | 2"),
            ("{{ not 0 }}", "ok | true"),
        ];
        let mut labels = BTreeMap::new();
        labels.insert("a".to_string(), "x".to_string());
        let ext = BTreeMap::new();
        let data = AlertData {
            labels: &labels,
            external_labels: &ext,
            external_url: "http://e",
            value: 0.25,
        };
        for (src, want) in cases {
            let parsed = match parse(src) {
                Ok(_) => "ok".to_string(),
                Err(e) => e.to_string(),
            };
            let got = format!("{parsed} | {}", expand_alert("T", src, &data, &NoQuery));
            assert_eq!(&got, want, "{src}");
        }
    }
}
