//! Metric, unit and label names from OpenTelemetry's, by Prometheus 3.x's rules (its
//! `otlptranslator` module, v1.0.0): which characters are escaped, how UCUM units become
//! suffixes (`s` → `_seconds`, `By/s` → `_bytes_per_second`, `{request}` dropped), where
//! `_total` and `_ratio` go, and how attribute names become label names. Each strategy of
//! `otlp.translation_strategy` is one combination of "escape or keep UTF-8" and "suffixes or
//! not"; the functions take those two switches rather than the strategy.

use std::fmt;

/// What kind of metric a name is built for (only counters and gauges change the suffixes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    MonotonicCounter,
    NonMonotonicCounter,
    Histogram,
    ExponentialHistogram,
    Summary,
}

/// A name that cannot be a Prometheus name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError(pub String);

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The UCUM units OpenTelemetry uses, as Prometheus' base-unit words.
fn unit_word(u: &str) -> &str {
    match u {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

/// The denominator of a `x/y` unit, singular.
fn per_unit_word(u: &str) -> &str {
    match u {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

/// `(main, per)` suffixes of a unit, not yet escaped: `By/s` → `("bytes", "per_second")`.
/// A part in braces (an annotation such as `{request}`) or blank gives nothing.
pub fn unit_suffixes(unit: &str) -> (String, String) {
    let (main, per) = match unit.split_once('/') {
        Some((m, p)) => (m, Some(p)),
        None => (unit, None),
    };
    let annotation = |s: &str| s.contains(['{', '}']);
    let main = main.trim();
    let main = if !main.is_empty() && !annotation(main) {
        unit_word(main).to_string()
    } else {
        String::new()
    };
    let per = match per {
        Some(p) if !p.is_empty() => {
            let p = p.trim();
            if !p.is_empty() && !annotation(p) {
                let w = per_unit_word(p);
                if w.is_empty() {
                    String::new()
                } else {
                    format!("per_{w}")
                }
            } else {
                String::new()
            }
        }
        _ => String::new(),
    };
    (main, per)
}

fn metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

fn label_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// Invalid characters to `_`, runs of `_` collapsed, one leading `_` dropped.
fn clean_unit(u: &str) -> String {
    let mut out = String::with_capacity(u.len());
    for c in u.chars() {
        let c = if metric_char(c) { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    match out.strip_prefix('_') {
        Some(s) => s.to_string(),
        None => out,
    }
}

/// The unit as Prometheus records it in metadata (`By/s` → `bytes_per_second`).
pub fn unit_name(unit: &str, utf8: bool) -> String {
    let (mut main, mut per) = unit_suffixes(unit);
    if !utf8 {
        main = clean_unit(&main);
        per = clean_unit(&per);
    }
    let u = match (main.is_empty(), per.is_empty()) {
        (false, false) => format!("{main}_{per}"),
        (false, true) => main,
        _ => per,
    };
    let u = u.strip_prefix('_').unwrap_or(&u);
    u.strip_suffix('_').unwrap_or(u).to_string()
}

/// The Prometheus metric name of an OpenTelemetry metric. `escape`: names are made of
/// `[a-zA-Z0-9_:]`; `suffixes`: unit, `_total` and `_ratio` suffixes are added.
pub fn metric_name(
    name: &str,
    unit: &str,
    kind: Kind,
    escape: bool,
    suffixes: bool,
) -> Result<String, NameError> {
    if !escape {
        return Ok(if suffixes {
            utf8_with_suffixes(name, unit, kind)
        } else {
            name.to_string()
        });
    }
    let out = if suffixes {
        normalized(name, unit, kind)
    } else {
        let mut s = name
            .split(|c: char| !metric_char(c) && c != '_')
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("_");
        if s.starts_with(|c: char| c.is_ascii_digit()) {
            s.insert(0, '_');
        }
        s
    };
    if out.is_empty() {
        return Err(NameError(format!(
            "normalization for metric {name:?} resulted in empty name"
        )));
    }
    if out != name && out.chars().all(|c| c == '_') {
        return Err(NameError(format!(
            "normalization for metric {name:?} resulted in invalid name {out:?}"
        )));
    }
    Ok(out)
}

/// Escaping with suffixes: the name split into tokens of valid characters (so `_` and runs
/// of invalid characters become one `_`), unit tokens added unless present, `total` moved to
/// the end of counters, `ratio` to the end of gauges with unit `1`.
fn normalized(name: &str, unit: &str, kind: Kind) -> String {
    let mut tokens: Vec<String> = name
        .split(|c: char| !metric_char(c))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let (main, per) = unit_suffixes(unit);
    let (mut main, mut per) = (clean_unit(&main), clean_unit(&per));
    if tokens.contains(&main) {
        main.clear();
    }
    if per == "per_" {
        per.clear();
    } else {
        if per.ends_with('_') {
            per.pop();
        }
        if tokens.contains(&per) {
            per.clear();
        }
    }
    if !per.is_empty() && main.ends_with('_') {
        main.pop();
    }
    if !main.is_empty() {
        tokens.push(main);
    }
    if !per.is_empty() {
        tokens.push(per);
    }
    if kind == Kind::MonotonicCounter {
        tokens.retain(|t| t != "total");
        tokens.push("total".into());
    }
    if unit == "1" && kind == Kind::Gauge {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".into());
    }
    let mut s = tokens.join("_");
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// Cuts `suffix` and the one delimiter character before it, if the name is longer.
fn trim_suffix_and_delimiter<'a>(name: &'a str, suffix: &str) -> &'a str {
    if name.ends_with(suffix) && name.len() > suffix.len() + 1 {
        let cut = name.len() - suffix.len() - 1;
        if name.is_char_boundary(cut) {
            return &name[..cut];
        }
    }
    name
}

/// UTF-8 names with suffixes: `<name>[_<unit>][_per_<unit>][_total|_ratio]`, each suffix
/// moved to its place if the name already ends with it.
fn utf8_with_suffixes(name: &str, unit: &str, kind: Kind) -> String {
    let ratio = unit == "1" && kind == Kind::Gauge;
    let total = kind == Kind::MonotonicCounter;
    let mut base = name;
    if ratio {
        base = trim_suffix_and_delimiter(base, "ratio");
    }
    if total {
        base = trim_suffix_and_delimiter(base, "total");
    }
    let (main, per) = unit_suffixes(unit);
    if !per.is_empty() {
        base = trim_suffix_and_delimiter(base, &per);
    }
    let mut out = base.to_string();
    if !main.is_empty() && !out.ends_with(&main) {
        out.push('_');
        out.push_str(&main);
    }
    if !per.is_empty() {
        out.push('_');
        out.push_str(&per);
    }
    if total {
        out.push_str("_total");
    }
    if ratio {
        out.push_str("_ratio");
    }
    out
}

/// How attribute names become label names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelNamer {
    /// Keep names as they are (UTF-8 strategies).
    pub utf8: bool,
    /// `_x` becomes `key_x` (`label_name_underscore_sanitization`).
    pub underscore_sanitization: bool,
    /// `a..b` becomes `a__b` rather than `a_b` (`label_name_preserve_multiple_underscores`).
    pub preserve_multiple_underscores: bool,
}

impl LabelNamer {
    pub fn build(&self, name: &str) -> Result<String, NameError> {
        if name.is_empty() {
            return Err(NameError("label name is empty".into()));
        }
        let only_underscores = |s: &str| s.chars().all(|c| c == '_');
        if self.utf8 {
            if only_underscores(name) {
                return Err(NameError(format!(
                    "label name {name:?} contains only underscores"
                )));
            }
            return Ok(name.to_string());
        }
        let mut out = self.sanitize(name);
        if out.starts_with(|c: char| c.is_ascii_digit()) {
            out.insert_str(0, "key_");
        } else if self.underscore_sanitization && out.starts_with('_') && !out.starts_with("__") {
            out.insert_str(0, "key");
        }
        if only_underscores(&out) {
            return Err(NameError(format!(
                "normalization for label name {name:?} resulted in invalid name {out:?}"
            )));
        }
        Ok(out)
    }

    fn sanitize(&self, name: &str) -> String {
        if self.preserve_multiple_underscores {
            return name
                .chars()
                .map(|c| if label_char(c) { c } else { '_' })
                .collect();
        }
        // `__x__` keeps its double underscores; the inside is collapsed like any name.
        let reserved = name.len() >= 4 && name.starts_with("__") && name.ends_with("__");
        let inner = if reserved {
            &name[2..name.len() - 2]
        } else {
            name
        };
        let mut out = String::with_capacity(name.len());
        let mut prev_underscore = false;
        for c in inner.chars() {
            if label_char(c) {
                out.push(c);
                prev_underscore = false;
            } else if !prev_underscore {
                out.push('_');
                prev_underscore = true;
            }
        }
        if reserved { format!("__{out}__") } else { out }
    }
}

#[cfg(test)]
mod tests {
    use super::Kind::*;
    use super::*;

    fn esc(name: &str, unit: &str, kind: Kind) -> String {
        metric_name(name, unit, kind, true, true).unwrap()
    }

    #[test]
    fn unit_suffix_table() {
        // (OTel name, unit, kind) → Prometheus name under UnderscoreEscapingWithSuffixes.
        let table = [
            (
                "http.server.duration",
                "s",
                Histogram,
                "http_server_duration_seconds",
            ),
            (
                "http.server.request.duration",
                "ms",
                Histogram,
                "http_server_request_duration_milliseconds",
            ),
            ("requests", "1", MonotonicCounter, "requests_total"),
            (
                "requests.count",
                "{request}",
                MonotonicCounter,
                "requests_count_total",
            ),
            ("memory.usage", "By", Gauge, "memory_usage_bytes"),
            ("cpu.utilization", "1", Gauge, "cpu_utilization_ratio"),
            (
                "cpu.utilization",
                "1",
                NonMonotonicCounter,
                "cpu_utilization",
            ),
            ("disk.io", "By/s", Gauge, "disk_io_bytes_per_second"),
            ("net.packets", "{packet}/s", Gauge, "net_packets_per_second"),
            ("active", "{request}", NonMonotonicCounter, "active"),
            ("temperature", "Cel", Gauge, "temperature_celsius"),
            ("freq", "Hz", Gauge, "freq_hertz"),
            ("space", "KiBy", Gauge, "space_kibibytes"),
            ("load", "%", Gauge, "load_percent"),
            ("rate", "m/h", Gauge, "rate_meters_per_hour"),
            (
                "widgets",
                "widget",
                MonotonicCounter,
                "widgets_widget_total",
            ),
            ("processed_total", "", MonotonicCounter, "processed_total"),
            ("total.processed", "", MonotonicCounter, "processed_total"),
            ("latency_seconds", "s", Histogram, "latency_seconds"),
            ("ratio.of.x", "1", Gauge, "of_x_ratio"),
            ("1st.metric", "", Gauge, "_1st_metric"),
            ("a__b..c", "", Gauge, "a_b_c"),
            ("x", "foo bar", Gauge, "x_foo_bar"),
            ("x", "d", Summary, "x_days"),
            ("x", "1/s", Gauge, "x_per_second"),
            ("x", "/s", Gauge, "x_per_second"),
            ("x", "By/", Gauge, "x_bytes"),
            ("x", "By/{x}", Gauge, "x_bytes"),
            ("ns:metric", "", Gauge, "ns:metric"),
        ];
        for (name, unit, kind, want) in table {
            assert_eq!(esc(name, unit, kind), want, "{name} {unit} {kind:?}");
        }
    }

    #[test]
    fn strategies_differ_as_documented() {
        let m = ("http.server.duration", "s", Histogram);
        let f = |e, s| metric_name(m.0, m.1, m.2, e, s).unwrap();
        assert_eq!(f(true, true), "http_server_duration_seconds");
        assert_eq!(f(true, false), "http_server_duration");
        assert_eq!(f(false, true), "http.server.duration_seconds");
        assert_eq!(f(false, false), "http.server.duration");
        let c = |e, s| metric_name("requests.count", "{request}", MonotonicCounter, e, s).unwrap();
        assert_eq!(c(false, true), "requests.count_total");
        assert_eq!(c(false, false), "requests.count");
        assert_eq!(
            metric_name("cpu.util", "1", Gauge, false, true).unwrap(),
            "cpu.util_ratio"
        );
        assert_eq!(
            metric_name("x.total", "", MonotonicCounter, false, true).unwrap(),
            "x_total"
        );
        assert_eq!(
            metric_name("bytes.sent_per_second", "By/s", Gauge, false, true).unwrap(),
            "bytes.sent_bytes_per_second"
        );
        assert_eq!(metric_name("a.b", "", Gauge, true, false).unwrap(), "a_b");
        assert_eq!(metric_name("a__b", "", Gauge, true, false).unwrap(), "a__b");
        assert_eq!(
            metric_name("9lives", "", Gauge, true, false).unwrap(),
            "_9lives"
        );
    }

    #[test]
    fn names_that_cannot_be_built() {
        assert!(metric_name("...", "", Gauge, true, true).is_err());
        assert!(metric_name("", "", Gauge, true, false).is_err());
        assert!(
            metric_name("__", "", Gauge, true, false).is_ok(),
            "unchanged names pass"
        );
        // Suffixes alone still make a name.
        assert_eq!(
            metric_name("...", "", MonotonicCounter, true, true).unwrap(),
            "total"
        );
    }

    #[test]
    fn units_for_metadata() {
        assert_eq!(unit_name("By/s", false), "bytes_per_second");
        assert_eq!(unit_name("s", false), "seconds");
        assert_eq!(unit_name("1", false), "");
        assert_eq!(unit_name("{request}", false), "");
        assert_eq!(unit_name("{packet}/s", false), "per_second");
    }

    #[test]
    fn label_names() {
        let default = LabelNamer {
            utf8: false,
            underscore_sanitization: true,
            preserve_multiple_underscores: true,
        };
        let collapse = LabelNamer {
            preserve_multiple_underscores: false,
            underscore_sanitization: false,
            ..default
        };
        let utf8 = LabelNamer {
            utf8: true,
            ..default
        };
        let b = |n: &LabelNamer, s: &str| n.build(s);
        assert_eq!(b(&default, "http.method").unwrap(), "http_method");
        assert_eq!(b(&default, "k8s.pod.name").unwrap(), "k8s_pod_name");
        assert_eq!(b(&default, "123abc").unwrap(), "key_123abc");
        assert_eq!(b(&default, "_private").unwrap(), "key_private");
        assert_eq!(b(&default, "__reserved__").unwrap(), "__reserved__");
        assert_eq!(b(&default, "a..b").unwrap(), "a__b");
        assert_eq!(b(&default, "ünïcode").unwrap(), "key_n_code");
        assert_eq!(b(&collapse, "a..b").unwrap(), "a_b");
        assert_eq!(b(&collapse, "_private").unwrap(), "_private");
        assert_eq!(b(&collapse, "__a..b__").unwrap(), "__a_b__");
        assert_eq!(b(&utf8, "http.method").unwrap(), "http.method");
        assert!(b(&default, "").is_err());
        assert!(b(&default, "...").is_err());
        assert!(b(&utf8, "__").is_err());
    }
}
