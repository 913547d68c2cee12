//! The template function map: Prometheus' functions (`query`, `humanize*`, `label`,
//! `reReplaceAll`, ...) and Go's builtins (`printf`, `eq`, `len`, `index`, ...), with the
//! number and time formatting they need.
//!
//! One place lists the names (`FUNCS`, which the parser checks calls against) and
//! implements them (`call`), so a function cannot be accepted at load and missing at
//! expansion.

use super::exec::fields;
use super::sprintf::sprintf;
use super::{Env, TemplateError, Value};
use crate::gofmt;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Every function a template may call.
const FUNCS: &[&str] = &[
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "args",
    "reReplaceAll",
    "match",
    "title",
    "toUpper",
    "toLower",
    "sortByLabel",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "stripPort",
    "stripDomain",
    "externalURL",
    "safeHtml",
    "parseDuration",
    "toTime",
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "urlquery",
    "html",
    "js",
];

pub(super) fn func_known(name: &str) -> bool {
    FUNCS.contains(&name)
}

/// Calls function `name` with `a` (a piped value comes last).
pub(super) fn call(env: &dyn Env, name: &str, a: Vec<Value>) -> Result<Value, TemplateError> {
    let want = |n: usize| -> Result<(), TemplateError> {
        if a.len() == n {
            Ok(())
        } else {
            Err(exec(format!(
                "wrong number of args for {name}: want {n} got {}",
                a.len()
            )))
        }
    };
    let s = |v: &Value| v.print();
    Ok(match name {
        "query" => {
            want(1)?;
            let res = env
                .query(&s(&a[0]))
                .map_err(|msg| TemplateError::Query { msg })?;
            Value::List(res.into_iter().map(|(l, v)| sample_value(l, v)).collect())
        }
        "first" => {
            want(1)?;
            match &a[0] {
                Value::List(l) => l
                    .first()
                    .cloned()
                    .ok_or_else(|| exec("first() called on vector with no elements"))?,
                other => {
                    return Err(exec(format!(
                        "first: expected a query result, got {}",
                        other.type_name()
                    )));
                }
            }
        }
        "label" => {
            want(2)?;
            let v = fields(a[1].clone(), &["Labels".to_string()])?;
            fields(v, &[s(&a[0])])?
        }
        "value" => {
            want(1)?;
            fields(a[0].clone(), &["Value".to_string()])?
        }
        "strvalue" => {
            want(1)?;
            let l = fields(a[0].clone(), &["Labels".to_string()])?;
            fields(l, &["__value__".to_string()])?
        }
        "args" => {
            let mut m = BTreeMap::new();
            for (i, v) in a.into_iter().enumerate() {
                m.insert(format!("arg{i}"), v);
            }
            Value::Struct(m)
        }
        "reReplaceAll" => {
            want(3)?;
            let re = regex::Regex::new(&s(&a[0])).map_err(|e| exec(e.to_string()))?;
            Value::Str(re.replace_all(&s(&a[2]), s(&a[1]).as_str()).into_owned())
        }
        "match" => {
            want(2)?;
            let re = regex::Regex::new(&s(&a[0])).map_err(|e| exec(e.to_string()))?;
            Value::Bool(re.is_match(&s(&a[1])))
        }
        "title" => {
            want(1)?;
            Value::Str(title(&s(&a[0])))
        }
        "toUpper" => {
            want(1)?;
            Value::Str(s(&a[0]).to_uppercase())
        }
        "toLower" => {
            want(1)?;
            Value::Str(s(&a[0]).to_lowercase())
        }
        "sortByLabel" => {
            want(2)?;
            let key = s(&a[0]);
            let Value::List(mut l) = a[1].clone() else {
                return Err(exec("sortByLabel: expected a query result"));
            };
            l.sort_by_key(|v| {
                fields(v.clone(), &["Labels".to_string(), key.clone()])
                    .map(|v| v.print())
                    .unwrap_or_default()
            });
            Value::List(l)
        }
        "humanize" => {
            want(1)?;
            Value::Str(humanize(a[0].to_f64()?))
        }
        "humanize1024" => {
            want(1)?;
            Value::Str(humanize1024(a[0].to_f64()?))
        }
        "humanizeDuration" => {
            want(1)?;
            Value::Str(humanize_duration(a[0].to_f64()?))
        }
        "humanizePercentage" => {
            want(1)?;
            Value::Str(format!("{}%", gofmt::g(a[0].to_f64()? * 100.0, Some(4))))
        }
        "humanizeTimestamp" => {
            want(1)?;
            Value::Str(humanize_timestamp(a[0].to_f64()?))
        }
        "toTime" => {
            want(1)?;
            Value::Str(humanize_timestamp(a[0].to_f64()?))
        }
        "parseDuration" => {
            want(1)?;
            let d: vigil_model::Duration = s(&a[0])
                .parse()
                .map_err(|e: vigil_model::DurationError| exec(e.to_string()))?;
            Value::Num(d.as_secs_f64())
        }
        "stripPort" => {
            want(1)?;
            let h = s(&a[0]);
            Value::Str(strip_port(&h))
        }
        "stripDomain" => {
            want(1)?;
            let h = s(&a[0]);
            let (host, port) = match h.rsplit_once(':') {
                Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => {
                    (h.to_string(), format!(":{p}"))
                }
                _ => (h.clone(), String::new()),
            };
            let short = if host.parse::<std::net::IpAddr>().is_ok() {
                host
            } else {
                host.split('.').next().unwrap_or("").to_string()
            };
            Value::Str(short + &port)
        }
        "externalURL" => Value::Str(env.external_url()),
        "safeHtml" | "html" | "js" | "urlquery" => {
            let joined: String = a.iter().map(s).collect();
            Value::Str(match name {
                "urlquery" => vigil_http::query_escape(&joined),
                "html" => joined
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
                    .replace('"', "&#34;")
                    .replace('\'', "&#39;"),
                _ => joined,
            })
        }
        "and" => {
            let mut last = Value::Nil;
            for v in a {
                if !v.truthy() {
                    return Ok(v);
                }
                last = v;
            }
            last
        }
        "or" => {
            let mut last = Value::Nil;
            for v in a {
                if v.truthy() {
                    return Ok(v);
                }
                last = v;
            }
            last
        }
        "not" => {
            want(1)?;
            Value::Bool(!a[0].truthy())
        }
        "len" => {
            want(1)?;
            Value::Int(match &a[0] {
                Value::Str(s) => s.len(),
                Value::Map(m) => m.len(),
                Value::List(l) => l.len(),
                Value::Struct(m) => m.len(),
                other => return Err(exec(format!("len of type {}", other.type_name()))),
            } as i64)
        }
        "index" => {
            let mut it = a.into_iter();
            let mut v = it
                .next()
                .ok_or_else(|| exec("wrong number of args for index"))?;
            for k in it {
                v = match (v, k) {
                    (Value::Map(m), k) => {
                        Value::Str(m.get(&k.print()).cloned().unwrap_or_default())
                    }
                    (Value::List(l), Value::Int(i)) => l
                        .get(usize::try_from(i).map_err(|_| exec("index out of range"))?)
                        .cloned()
                        .ok_or_else(|| exec("index out of range"))?,
                    (v, _) => {
                        return Err(exec(format!("can't index item of type {}", v.type_name())));
                    }
                };
            }
            v
        }
        "print" | "println" => {
            // Go's Sprint adds spaces between operands when neither is a string.
            let mut out = String::new();
            for (i, v) in a.iter().enumerate() {
                if i > 0
                    && (name == "println"
                        || (!matches!(v, Value::Str(_)) && !matches!(a[i - 1], Value::Str(_))))
                {
                    out.push(' ');
                }
                out.push_str(&v.print());
            }
            if name == "println" {
                out.push('\n');
            }
            Value::Str(out)
        }
        "printf" => {
            let fmt = a
                .first()
                .map(s)
                .ok_or_else(|| exec("wrong number of args for printf"))?;
            Value::Str(sprintf(&fmt, &a[1..]))
        }
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
            if a.len() < 2 {
                return Err(exec(format!("missing argument for comparison {name}")));
            }
            let ord = compare(&a[0], &a[1])?;
            use std::cmp::Ordering::*;
            let r = match name {
                "eq" => a[1..]
                    .iter()
                    .any(|b| compare(&a[0], b).ok() == Some(Some(Equal))),
                "ne" => ord != Some(Equal),
                "lt" => ord == Some(Less),
                "le" => matches!(ord, Some(Less | Equal)),
                "gt" => ord == Some(Greater),
                _ => matches!(ord, Some(Greater | Equal)),
            };
            Value::Bool(r)
        }
        other => return Err(exec(format!("function {other:?} not defined"))),
    })
}

fn compare(a: &Value, b: &Value) -> Result<Option<std::cmp::Ordering>, TemplateError> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(Some(x.cmp(y))),
        (Value::Bool(x), Value::Bool(y)) => Ok(Some(x.cmp(y))),
        (Value::Int(x), Value::Int(y)) => Ok(Some(x.cmp(y))),
        (Value::Int(_) | Value::Num(_), Value::Int(_) | Value::Num(_)) => {
            Ok(a.to_f64()?.partial_cmp(&b.to_f64()?))
        }
        (Value::Nil, Value::Nil) => Ok(Some(std::cmp::Ordering::Equal)),
        _ => Err(exec("incompatible types for comparison")),
    }
}

fn exec(msg: impl Into<String>) -> TemplateError {
    TemplateError::exec(msg)
}

fn sample_value(labels: BTreeMap<String, String>, v: f64) -> Value {
    let mut m = BTreeMap::new();
    m.insert("Labels".into(), Value::Map(labels));
    m.insert("Value".into(), Value::Num(v));
    Value::Struct(m)
}

/// Go's `strings.Title`: upper-cases the first letter of each word.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    out
}

fn strip_port(h: &str) -> String {
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_string();
    }
    match h.rsplit_once(':') {
        Some((host, _)) if !host.contains(':') => host.to_string(),
        _ => h.to_string(),
    }
}

/// Prometheus' `humanize`: SI prefixes, 4 significant digits.
pub fn humanize(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return gofmt::g(v, Some(4));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", gofmt::g(v, Some(4)))
}

/// Prometheus' `humanize1024`: binary prefixes.
pub fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return gofmt::g(v, Some(4));
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", gofmt::g(v, Some(4)))
}

/// Prometheus' `humanizeDuration`: `1d 2h 3m 4s`, or `1.5s`, `20ms`.
pub fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return gofmt::g(v, Some(4));
    }
    if v == 0.0 {
        return format!("{}s", gofmt::g(v, Some(4)));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (secs, mins, hours, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        if days != 0 {
            return format!("{sign}{days}d {hours}h {mins}m {secs}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {mins}m {secs}s");
        }
        if mins != 0 {
            return format!("{sign}{mins}m {secs}s");
        }
        return format!("{sign}{}s", gofmt::g(v, Some(4)));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", gofmt::g(v, Some(4)))
}

/// Prometheus' `humanizeTimestamp`: Go's `time.Time.String()` in UTC.
pub fn humanize_timestamp(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return gofmt::g(v, Some(4));
    }
    // Prometheus goes through model.Time: nanoseconds truncated to milliseconds.
    let ms = ((v * 1e9) as i64).div_euclid(1_000_000);
    format!(
        "{} +0000 UTC",
        datetime(ms.div_euclid(1000), ms.rem_euclid(1000) * 1_000_000)
    )
}

/// `YYYY-MM-DD HH:MM:SS[.fraction]` of a Unix time (fraction trimmed as Go's `.999999999`).
pub fn datetime(secs: i64, nanos: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = vigil_model::civil::civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        let _ = write!(s, ".{}", frac.trim_end_matches('0'));
    }
    s
}

#[cfg(test)]
mod tests {
    use crate::template::testing::run;

    #[test]
    fn humanize_family() {
        assert_eq!(run("{{ humanize 1234567.0 }}", 0.0), "1.235M");
        assert_eq!(run("{{ $value | humanize }}", 0.0012), "1.2m");
        assert_eq!(run("{{ humanize1024 1048576.0 }}", 0.0), "1Mi");
        assert_eq!(run("{{ humanizeDuration 93784.0 }}", 0.0), "1d 2h 3m 4s");
        assert_eq!(run("{{ humanizeDuration 1.5 }}", 0.0), "1.5s");
        assert_eq!(run("{{ humanizeDuration 0.02 }}", 0.0), "20ms");
        assert_eq!(run("{{ humanizePercentage 0.1234 }}", 0.0), "12.34%");
        assert_eq!(
            run("{{ humanizeTimestamp 1435065584.128 }}", 0.0),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(run("{{ humanize \"2048\" }}", 0.0), "2.048k");
    }

    #[test]
    fn printf_and_strings() {
        assert_eq!(run("{{ printf \"%.2f\" $value }}", 0.61234), "0.61");
        assert_eq!(run("{{ printf \"%s=%d\" \"a\" 3 }}", 0.0), "a=3");
        assert_eq!(
            run("{{ printf \"%5.1f|%-4s|\" 2.25 \"x\" }}", 0.0),
            "  2.2|x   |"
        );
        assert_eq!(run("{{ \"hello world\" | title }}", 0.0), "Hello World");
        assert_eq!(run("{{ toUpper \"ab\" }}{{ toLower \"CD\" }}", 0.0), "ABcd");
        assert_eq!(
            run(
                "{{ reReplaceAll \"(.*):(.*)\" \"$1\" $labels.instance }}",
                0.0
            ),
            "localhost"
        );
    }

    #[test]
    fn query_first_value_label() {
        assert_eq!(run("{{ query \"up\" | first | value }}", 0.0), "42.5");
        assert_eq!(
            run(
                "{{ with query \"up\" }}{{ . | first | label \"instance\" }}{{ end }}",
                0.0
            ),
            "up-host"
        );
        assert_eq!(
            run(
                "{{ range query \"up\" }}{{ .Labels.instance }}={{ .Value }};{{ end }}",
                0.0
            ),
            "up-host=42.5;"
        );
    }
}
