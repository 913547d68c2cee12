//! Runner for Prometheus' PromQL acceptance scripts (`promqltest`), read from
//! `shared/testdata/promqltest` relative to the crate, never copied into the repo.
//!
//! It follows the Go runner's procedure (see the corpus README): an instant eval is run as an
//! instant query and again as a range query from T-1m to T+1m whose sample at T must match;
//! a range eval is one range query. Values compare with Prometheus' relative tolerance.
//! `cases.tsv` decides which evals are required: those must pass, or the test fails. Evals
//! that need what vigil does not implement (start timestamps) are skipped, each with its
//! reason. Counts are printed per file and in total.
//!
//! `project_promql_tests` runs the project's own scripts, `testdata/promql/*.test` (vigil's
//! extensions such as the drift functions), the same way; all their evals are required.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use vigil_model::histogram::FloatHistogram;
use vigil_model::histogram::nhcb::ClassicHistogram;
use vigil_model::histogram::notation::{SeriesValue, parse_series_values};
use vigil_model::{Appendable, Labels, Queryable};
use vigil_promql::{Engine, EngineOptions, QueryOutput, Value};
use vigil_tsdb::{Head, HeadOptions};

/// Flags that exclude an eval from the required set; `expfn:` except the allowed ones too
/// (`start_ts`: start timestamps are not stored yet, so `start_timestamp()` is not either).
const EXCLUDING: &[&str] = &[];
const ALLOWED_EXPFN: &[&str] = &[
    "info",
    "start_timestamp",
    "histogram_quantiles",
    "min_of",
    "max_of",
    "start",
    "end",
    "range",
    "step",
    "ts_of_first_over_time",
    "ts_of_last_over_time",
    "ts_of_max_over_time",
    "ts_of_min_over_time",
    "limitk",
    "limit_ratio",
    "sort_by_label",
    "sort_by_label_desc",
    "double_exponential_smoothing",
    "mad_over_time",
];

/// What to do with an eval.
#[derive(Debug, Clone, PartialEq)]
enum Disposition {
    Required,
    Skip(String),
}

fn disposition(flags: &str) -> Disposition {
    for f in flags.split(',').filter(|f| !f.is_empty()) {
        if EXCLUDING.contains(&f) {
            return Disposition::Skip(format!("flag {f}"));
        }
        if let Some(name) = f.strip_prefix("expfn:")
            && !ALLOWED_EXPFN.contains(&name)
        {
            return Disposition::Skip(format!("experimental function {name}"));
        }
    }
    Disposition::Required
}

fn load_cases(dir: &Path) -> HashMap<(String, usize), String> {
    let text = std::fs::read_to_string(dir.join("cases.tsv")).expect("read cases.tsv");
    let mut out = HashMap::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 7 {
            continue;
        }
        let ln: usize = cols[1].parse().expect("line number");
        out.insert((cols[0].to_string(), ln), cols[6].to_string());
    }
    out
}

fn parse_dur(s: &str) -> i64 {
    let s = s.trim();
    if s == "0" {
        return 0;
    }
    if let Some(rest) = s.strip_prefix('-') {
        return -parse_dur(rest);
    }
    s.parse::<vigil_model::Duration>()
        .unwrap_or_else(|e| panic!("bad duration {s:?}: {e}"))
        .as_millis() as i64
}

/// Splits `name{a="b", c="d"} rest` into the series part and the rest.
fn split_series(line: &str) -> (&str, &str) {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'{' {
        i += 1;
    }
    if i < b.len() && b[i] == b'{' {
        let mut in_q: Option<u8> = None;
        while i < b.len() {
            let c = b[i];
            match in_q {
                Some(q) => {
                    if c == b'\\' {
                        i += 1;
                    } else if c == q {
                        in_q = None;
                    }
                }
                None => {
                    if c == b'"' || c == b'\'' || c == b'`' {
                        in_q = Some(c);
                    } else if c == b'}' {
                        i += 1;
                        break;
                    }
                }
            }
            i += 1;
        }
    }
    (&line[..i], line[i..].trim())
}

fn parse_labels(series: &str) -> Labels {
    let s = series.trim();
    let (name, rest) = match s.find('{') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if !name.is_empty() {
        pairs.push(("__name__".into(), name.to_string()));
    }
    let inner = rest.trim_start_matches('{').trim_end_matches('}');
    let chars: Vec<char> = inner.chars().collect();
    let mut i = 0;
    let read_quoted = |i: &mut usize| -> String {
        let q = chars[*i];
        *i += 1;
        let mut out = String::new();
        while *i < chars.len() && chars[*i] != q {
            if chars[*i] == '\\' && q != '`' {
                *i += 1;
                match chars.get(*i) {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(c) => out.push(*c),
                    None => {}
                }
            } else {
                out.push(chars[*i]);
            }
            *i += 1;
        }
        *i += 1;
        out
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() || c == ',' {
            i += 1;
            continue;
        }
        let key = if c == '"' || c == '\'' || c == '`' {
            read_quoted(&mut i)
        } else {
            let st = i;
            while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '=' && chars[i] != ','
            {
                i += 1;
            }
            chars[st..i].iter().collect()
        };
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i < chars.len() && chars[i] == '=' {
            i += 1;
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            let v = read_quoted(&mut i);
            pairs.push((key, v));
        } else {
            pairs.push(("__name__".into(), key));
        }
    }
    Labels::from_pairs(pairs)
}

fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let min_normal = f64::from_bits(0x0010000000000000);
    let eps = 1e-6;
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < min_normal {
        return diff < eps * min_normal;
    }
    diff / abs_sum.min(f64::MAX) < eps
}

#[derive(Debug, Default)]
struct Expect {
    fail: bool,
    fail_msg: Option<String>,
    fail_regex: Option<String>,
    ordered: bool,
    string: Option<String>,
    range_vector: Option<(i64, i64, i64)>,
    warn: Option<Vec<String>>, // Some(empty) = at least one
    info: Option<Vec<String>>,
    no_warn: bool,
    no_info: bool,
    scalar: Option<f64>,
    series: Vec<(Labels, Vec<SeriesValue>)>,
}

#[derive(Debug)]
enum Kind {
    Instant(i64),
    Range(i64, i64, i64),
}

#[derive(Debug)]
struct Eval {
    line: usize,
    kind: Kind,
    expr: String,
    exp: Expect,
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2 && s.starts_with('`') && s.ends_with('`') {
        return s[1..s.len() - 1].to_string();
    }
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        let mut out = String::new();
        let mut it = s[1..s.len() - 1].chars();
        while let Some(c) = it.next() {
            if c == '\\' {
                match it.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(o) => out.push(o),
                    None => {}
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    s.to_string()
}

fn parse_eval_header(line: &str) -> (bool, Kind, String) {
    let (cmd, rest) = line.split_once(char::is_whitespace).expect("eval header");
    let legacy_fail = cmd == "eval_fail";
    let rest = rest.trim();
    if let Some(r) = rest.strip_prefix("instant at ") {
        let (t, expr) = r.trim().split_once(char::is_whitespace).expect("instant");
        (legacy_fail, Kind::Instant(parse_dur(t)), expr.trim().into())
    } else if let Some(r) = rest.strip_prefix("range from ") {
        let parts: Vec<&str> = r.trim().splitn(6, char::is_whitespace).collect();
        // from S to E step D expr
        assert_eq!(parts[1], "to");
        assert_eq!(parts[3], "step");
        (
            legacy_fail,
            Kind::Range(
                parse_dur(parts[0]),
                parse_dur(parts[2]),
                parse_dur(parts[4]),
            ),
            parts[5].trim().into(),
        )
    } else {
        panic!("bad eval line {line}")
    }
}

fn is_command(l: &str) -> bool {
    let l = l.trim();
    l.starts_with("eval ") || l.starts_with("eval_") || l.starts_with("load ") || l == "clear"
}

enum Cmd {
    /// Step, series, whether classic histograms are also loaded as NHCB, and the start
    /// timestamps of `@st` lines: per series, the offset (ms) of each sample's start from its
    /// time (`None`: no start timestamp).
    Load(
        i64,
        Vec<(Labels, Vec<SeriesValue>)>,
        bool,
        HashMap<Labels, Vec<Option<i64>>>,
    ),
    Clear,
    Eval(Box<Eval>),
}

fn parse_file(text: &str) -> Vec<Cmd> {
    let lines: Vec<&str> = text.lines().collect();
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim();
        i += 1;
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if l == "clear" {
            cmds.push(Cmd::Clear);
        } else if let Some(rest) = l
            .strip_prefix("load_with_nhcb ")
            .or_else(|| l.strip_prefix("load "))
        {
            let nhcb = l.starts_with("load_with_nhcb ");
            let step = parse_dur(rest);
            let mut series = Vec::new();
            let mut sts = HashMap::new();
            while i < lines.len() && !lines[i].trim().is_empty() && !is_command(lines[i]) {
                let sl = lines[i].trim();
                i += 1;
                if sl.starts_with('#') {
                    continue;
                }
                let (s, vals) = split_series(sl);
                let (s, vals) = match (s.strip_suffix("@st"), vals.strip_prefix("@st")) {
                    (Some(name), _) => (Some(name), vals),
                    (None, Some(rest)) => (Some(s), rest.trim()),
                    _ => (None, vals),
                };
                if let Some(name) = s {
                    sts.insert(parse_labels(name), parse_st_sequence(vals));
                    continue;
                }
                let s = split_series(sl).0;
                let vals =
                    parse_series_values(vals).unwrap_or_else(|e| panic!("line {i}: {e}: {vals}"));
                series.push((parse_labels(s), vals));
            }
            cmds.push(Cmd::Load(step, series, nhcb, sts));
        } else if l.starts_with("eval") {
            let line_no = i;
            let (legacy_fail, kind, expr) = parse_eval_header(l);
            let mut exp = Expect {
                fail: legacy_fail,
                ..Default::default()
            };
            // The older header forms of Go's promqltest: `eval_warn` (some warning expected),
            // `eval_info` (some info expected), `eval_ordered`.
            match l.split_whitespace().next() {
                Some("eval_warn") => exp.warn = Some(Vec::new()),
                Some("eval_info") => exp.info = Some(Vec::new()),
                Some("eval_ordered") => exp.ordered = true,
                _ => {}
            }
            while i < lines.len() && !lines[i].trim().is_empty() && !is_command(lines[i]) {
                let el = lines[i].trim();
                i += 1;
                if el.starts_with('#') {
                    continue;
                }
                if let Some(e) = el.strip_prefix("expect ") {
                    let e = e.trim();
                    let (kw, rest) = e.split_once(char::is_whitespace).unwrap_or((e, ""));
                    let rest = rest.trim();
                    let msg = |r: &str| -> (Option<String>, Option<String>) {
                        if let Some(m) = r.strip_prefix("msg:") {
                            (Some(m.trim().to_string()), None)
                        } else if let Some(m) = r.strip_prefix("regex:") {
                            (None, Some(m.trim().to_string()))
                        } else {
                            (None, None)
                        }
                    };
                    match kw {
                        "fail" => {
                            exp.fail = true;
                            let (m, r) = msg(rest);
                            exp.fail_msg = m;
                            exp.fail_regex = r;
                        }
                        "ordered" => exp.ordered = true,
                        "string" => exp.string = Some(unquote(rest)),
                        "range" => {
                            let p: Vec<&str> = rest.split_whitespace().collect();
                            // vector from A to B step C
                            exp.range_vector =
                                Some((parse_dur(p[2]), parse_dur(p[4]), parse_dur(p[6])));
                        }
                        "warn" | "info" => {
                            let slot = if kw == "warn" {
                                &mut exp.warn
                            } else {
                                &mut exp.info
                            };
                            let v = slot.get_or_insert_with(Vec::new);
                            match msg(rest) {
                                (Some(m), _) => v.push(m),
                                (_, Some(r)) => v.push(format!("regex:{r}")),
                                _ => {}
                            }
                        }
                        "no_warn" => exp.no_warn = true,
                        "no_info" => exp.no_info = true,
                        other => panic!("unknown expect {other}"),
                    }
                    continue;
                }
                if let Some(m) = el.strip_prefix("expected_fail_message ") {
                    exp.fail_msg = Some(m.trim().into());
                    break;
                }
                if let Some(m) = el.strip_prefix("expected_fail_regexp ") {
                    exp.fail_regex = Some(m.trim().into());
                    break;
                }
                let (s, vals) = split_series(el);
                if vals.is_empty() && !s.contains('{') {
                    // A scalar, or a metric name alone followed by nothing?
                    if let Ok(v) = s.parse::<f64>() {
                        exp.scalar = Some(v);
                        continue;
                    }
                }
                let vals =
                    parse_series_values(vals).unwrap_or_else(|e| panic!("line {i}: {e}: {vals}"));
                exp.series.push((parse_labels(s), vals));
            }
            cmds.push(Cmd::Eval(Box::new(Eval {
                line: line_no,
                kind,
                expr,
                exp,
            })));
        } else {
            panic!("unknown command at line {i}: {l}");
        }
    }
    cmds
}

/// A duration with an optional sign at the start of `s` (`-30s`, `+1m`, `0`, `59999ms`,
/// `1m30s`), in ms, and what follows it.
fn duration_prefix(s: &str) -> (i64, &str) {
    let (sign, body) = match s.as_bytes().first() {
        Some(b'-') => (-1, &s[1..]),
        Some(b'+') => (1, &s[1..]),
        _ => (1, s),
    };
    let mut end = 0;
    let b = body.as_bytes();
    loop {
        let digits = b[end..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            break;
        }
        let unit = ["ms", "s", "m", "h", "d", "w", "y"].into_iter().find(|u| {
            body[end + digits..].starts_with(u)
                && !(*u == "m" && body[end + digits..].starts_with("ms"))
        });
        match unit {
            Some(u) => end += digits + u.len(),
            None if end == 0 && &body[..digits] == "0" => {
                end = digits;
                break;
            }
            None => break,
        }
    }
    assert!(end > 0, "bad start-timestamp duration in {s:?}");
    (sign * parse_dur(&body[..end]), &body[end..])
}

/// Go promqltest's start-timestamp sequence: `_`, `_xN`, `<dur>`, `<dur>xN` (N+1 times),
/// `<dur>+<dur>xN` / `<dur>-<dur>xN` (N+1 values stepping by the second duration).
fn parse_st_sequence(vals: &str) -> Vec<Option<i64>> {
    let mut out = Vec::new();
    for item in vals.split_whitespace() {
        if item == "_" {
            out.push(None);
            continue;
        }
        if let Some(n) = item.strip_prefix("_x") {
            out.extend(std::iter::repeat_n(None, n.parse().expect("repeat count")));
            continue;
        }
        let (base, rest) = duration_prefix(item);
        if rest.is_empty() {
            out.push(Some(base));
        } else if let Some(n) = rest.strip_prefix('x') {
            let n: usize = n.parse().expect("repeat count");
            out.extend(std::iter::repeat_n(Some(base), n + 1));
        } else {
            let (delta, rest) = duration_prefix(rest);
            let n: i64 = rest
                .strip_prefix('x')
                .expect("x<count>")
                .parse()
                .expect("count");
            out.extend((0..=n).map(|k| Some(base + k * delta)));
        }
    }
    out
}

fn load(
    head: &Head,
    step: i64,
    series: &[(Labels, Vec<SeriesValue>)],
    nhcb: bool,
    sts: &HashMap<Labels, Vec<Option<i64>>>,
) {
    // A series listed twice in one block: the later value at a timestamp wins, as in
    // Prometheus' test storage.
    let mut merged: BTreeMap<Labels, BTreeMap<i64, SeriesValue>> = BTreeMap::new();
    for (labels, vals) in series {
        let m = merged.entry(labels.clone()).or_default();
        for (i, v) in vals.iter().enumerate() {
            if !matches!(v, SeriesValue::Omitted) {
                m.insert(i as i64 * step, v.clone());
            }
        }
    }
    if nhcb {
        for (labels, h) in classic_as_nhcb(&merged) {
            merged.insert(labels, h);
        }
    }
    let mut app = head.appender();
    for (labels, samples) in &merged {
        let offsets = sts.get(labels);
        for (t, v) in samples {
            let st = offsets
                .and_then(|o| o.get((*t / step) as usize).copied().flatten())
                .map_or(0, |off| *t + off);
            match v {
                SeriesValue::Float(v) => {
                    app.append_with_st(None, labels, *t, *v, st)
                        .expect("append");
                }
                SeriesValue::Histogram(h, _) => {
                    app.append_histogram_with_st(None, labels, *t, h, st)
                        .expect("append histogram");
                }
                SeriesValue::Omitted => {}
            }
        }
    }
    app.commit().expect("commit");
}

/// `load_with_nhcb`: the classic histograms among the loaded series (`_bucket` with `le`,
/// `_count`, `_sum`) also as native histograms with custom buckets, named without the suffix.
fn classic_as_nhcb(
    series: &BTreeMap<Labels, BTreeMap<i64, SeriesValue>>,
) -> Vec<(Labels, BTreeMap<i64, SeriesValue>)> {
    let mut by_base: BTreeMap<Labels, BTreeMap<i64, ClassicHistogram>> = BTreeMap::new();
    for (labels, samples) in series {
        let name = labels.get("__name__").unwrap_or("");
        let (base, part) = if let Some(b) = name.strip_suffix("_bucket") {
            let Some(le) = labels.get("le").and_then(|l| l.parse::<f64>().ok()) else {
                continue;
            };
            if le.is_nan() {
                continue;
            }
            (b, Some(le))
        } else if let Some(b) = name.strip_suffix("_count") {
            (b, None)
        } else if let Some(b) = name.strip_suffix("_sum") {
            (b, Some(f64::NAN))
        } else {
            continue;
        };
        let mut lb = labels.to_builder();
        lb.set("__name__", base);
        lb.del("le");
        let m = by_base.entry(lb.build()).or_default();
        for (t, v) in samples {
            let SeriesValue::Float(v) = v else { continue };
            let c = m.entry(*t).or_default();
            match part {
                Some(le) if le.is_nan() => c.set_sum(*v),
                Some(le) => c.set_bucket(le, *v),
                None => c.set_count(*v),
            }
        }
    }
    by_base
        .into_iter()
        .map(|(l, by_t)| {
            let hs = by_t
                .into_iter()
                .map(|(t, c)| {
                    let h = c
                        .convert()
                        .unwrap_or_else(|e| panic!("load_with_nhcb: {e}"));
                    (t, SeriesValue::Histogram(Box::new(h), false))
                })
                .collect();
            (l, hs)
        })
        .collect()
}

/// Prometheus' `compareNativeHistogram` of both histograms compacted: schema, count, sum, zero bucket and every bucket
/// within the tolerance, spans equal (empty spans aside), the hint only when the test set it.
fn histograms_match(exp: &FloatHistogram, got: &FloatHistogram, hint_set: bool) -> bool {
    // Both compacted first, as the Go runner does: empty buckets do not count.
    let (mut exp, mut got) = (exp.clone(), got.clone());
    exp.compact(0);
    got.compact(0);
    let (exp, got) = (&exp, &got);
    let spans_eq = |a: &[vigil_model::histogram::Span], b: &[vigil_model::histogram::Span]| {
        let norm = |s: &[vigil_model::histogram::Span]| {
            let mut out: Vec<(i32, u32)> = Vec::new();
            let mut carry = 0;
            for x in s {
                if x.length == 0 {
                    carry += x.offset;
                    continue;
                }
                out.push((x.offset + carry, x.length));
                carry = 0;
            }
            out
        };
        norm(a) == norm(b)
    };
    let buckets_eq = |a: &[f64], b: &[f64]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| almost_equal(*x, *y))
    };
    exp.schema == got.schema
        && almost_equal(exp.count, got.count)
        && almost_equal(exp.sum, got.sum)
        && (!exp.uses_custom_buckets() || exp.custom() == got.custom())
        && exp.zero_threshold == got.zero_threshold
        && almost_equal(exp.zero_count, got.zero_count)
        && spans_eq(&exp.negative_spans, &got.negative_spans)
        && buckets_eq(&exp.negative_buckets, &got.negative_buckets)
        && spans_eq(&exp.positive_spans, &got.positive_spans)
        && buckets_eq(&exp.positive_buckets, &got.positive_buckets)
        && (!hint_set || exp.counter_reset_hint == got.counter_reset_hint)
}

/// One point of a result: a float or a histogram.
#[derive(Debug, Clone)]
enum Got {
    F(f64),
    H(std::sync::Arc<FloatHistogram>),
}

fn point_matches(want: &SeriesValue, got: &Got) -> bool {
    match (want, got) {
        (SeriesValue::Float(w), Got::F(g)) => almost_equal(*w, *g),
        (SeriesValue::Histogram(w, hint), Got::H(g)) => histograms_match(w, g, *hint),
        _ => false,
    }
}

fn show(g: &Got) -> String {
    match g {
        Got::F(v) => v.to_string(),
        Got::H(h) => h.test_expression(),
    }
}

/// A range-vector series' points of both kinds, in time order.
fn points_of(s: &vigil_promql::RangeSeries) -> Vec<(i64, Got)> {
    let mut v: Vec<(i64, Got)> = s.samples.iter().map(|x| (x.t, Got::F(x.v))).collect();
    v.extend(s.histograms.iter().map(|x| (x.t, Got::H(x.h.clone()))));
    v.sort_by_key(|p| p.0);
    v
}

fn compare_points(
    l: &Labels,
    want: &[SeriesValue],
    got: &[(i64, Got)],
    start: i64,
    step: i64,
) -> Result<(), String> {
    let want: Vec<(i64, &SeriesValue)> = want
        .iter()
        .enumerate()
        .filter(|(_, v)| !matches!(v, SeriesValue::Omitted))
        .map(|(i, v)| (start + i as i64 * step, v))
        .collect();
    if want.len() != got.len()
        || want
            .iter()
            .zip(got)
            .any(|(a, b)| a.0 != b.0 || !point_matches(a.1, &b.1))
    {
        let g: Vec<(i64, String)> = got.iter().map(|(t, p)| (*t, show(p))).collect();
        return Err(format!("series {l}: expected {want:?}, got {g:?}"));
    }
    Ok(())
}

fn check_annotations(
    kind: &str,
    want: &Option<Vec<String>>,
    none: bool,
    got: &[String],
) -> Result<(), String> {
    if none && !got.is_empty() {
        return Err(format!("unexpected {kind} annotations: {got:?}"));
    }
    let Some(want) = want else { return Ok(()) };
    if got.is_empty() {
        return Err(format!("expected {kind} annotation, got none"));
    }
    if want.is_empty() {
        return Ok(());
    }
    let matches = |w: &String, g: &String| match w.strip_prefix("regex:") {
        Some(r) => regex::Regex::new(r).is_ok_and(|re| re.is_match(g)),
        None => w == g,
    };
    for w in want {
        if !got.iter().any(|g| matches(w, g)) {
            return Err(format!("expected {kind} {w:?} not in {got:?}"));
        }
    }
    for g in got {
        if !want.iter().any(|w| matches(w, g)) {
            return Err(format!("unexpected {kind} {g:?}"));
        }
    }
    Ok(())
}

fn check_fail(exp: &Expect, err: &str) -> Result<(), String> {
    if let Some(m) = &exp.fail_msg
        && m != err
    {
        return Err(format!("expected error {m:?}, got {err:?}"));
    }
    if let Some(r) = &exp.fail_regex {
        let re = regex::Regex::new(r).map_err(|e| e.to_string())?;
        if !re.is_match(err) {
            return Err(format!("error {err:?} does not match {r:?}"));
        }
    }
    Ok(())
}

fn got_of(s: &vigil_promql::VectorSample) -> Got {
    match &s.h {
        Some(h) => Got::H(h.clone()),
        None => Got::F(s.v),
    }
}

/// Compares an instant-query result (vector, scalar, string or range vector) with the expectation.
fn compare_instant(exp: &Expect, v: &Value) -> Result<(), String> {
    if let Some(s) = &exp.string {
        return match v {
            Value::String { v, .. } if v == s => Ok(()),
            other => Err(format!("expected string {s:?}, got {other:?}")),
        };
    }
    if let Some((start, _end, step)) = exp.range_vector {
        let Value::Matrix(m) = v else {
            return Err(format!("expected range vector, got {}", v.type_name()));
        };
        let mut got: BTreeMap<Labels, Vec<(i64, Got)>> = BTreeMap::new();
        for s in m {
            got.insert(s.labels.clone(), points_of(s));
        }
        if got.len() != exp.series.len() {
            return Err(format!(
                "expected {} series, got {}: {:?}",
                exp.series.len(),
                got.len(),
                got.keys().map(|l| l.to_string()).collect::<Vec<_>>()
            ));
        }
        for (l, vals) in &exp.series {
            let Some(g) = got.get(l) else {
                return Err(format!("missing series {l}"));
            };
            compare_points(l, vals, g, start, step)?;
        }
        return Ok(());
    }
    match v {
        Value::Scalar { v, .. } => {
            let Some(want) = exp.scalar else {
                return Err(format!("got scalar {v}, expected vector"));
            };
            if !almost_equal(want, *v) {
                return Err(format!("expected scalar {want}, got {v}"));
            }
            Ok(())
        }
        Value::Vector(vec) => {
            if exp.scalar.is_some() {
                return Err(format!("expected scalar, got vector {vec:?}"));
            }
            if vec.len() != exp.series.len() {
                return Err(format!(
                    "expected {} samples, got {}: {:?}",
                    exp.series.len(),
                    vec.len(),
                    vec.iter()
                        .map(|s| format!("{} {}", s.labels, show(&got_of(s))))
                        .collect::<Vec<_>>()
                ));
            }
            let mut got: HashMap<&Labels, (usize, Got)> = HashMap::new();
            for (i, s) in vec.iter().enumerate() {
                if got.insert(&s.labels, (i, got_of(s))).is_some() {
                    return Err(format!("duplicate series {}", s.labels));
                }
            }
            for (pos, (l, vals)) in exp.series.iter().enumerate() {
                let Some((i, g)) = got.get(l) else {
                    return Err(format!(
                        "missing series {l}; got {:?}",
                        vec.iter().map(|s| s.labels.to_string()).collect::<Vec<_>>()
                    ));
                };
                let want = vals
                    .first()
                    .cloned()
                    .unwrap_or(SeriesValue::Float(f64::NAN));
                if !point_matches(&want, g) {
                    return Err(format!("series {l}: expected {want:?}, got {}", show(g)));
                }
                if exp.ordered && *i != pos {
                    return Err(format!("series {l}: expected at position {pos}, got {i}"));
                }
            }
            Ok(())
        }
        other => Err(format!("unexpected result type {}", other.type_name())),
    }
}

fn compare_range(exp: &Expect, v: &Value, start: i64, step: i64) -> Result<(), String> {
    let Value::Matrix(m) = v else {
        return Err(format!("expected matrix, got {}", v.type_name()));
    };
    for w in m.windows(2) {
        if w[0].labels >= w[1].labels {
            return Err("range result not sorted by labels".into());
        }
    }
    let mut want_series = exp.series.clone();
    if let Some(s) = exp.scalar {
        want_series.push((Labels::empty(), vec![SeriesValue::Float(s)]));
    }
    if m.len() != want_series.len() {
        return Err(format!(
            "expected {} series, got {}: {:?}",
            want_series.len(),
            m.len(),
            m.iter()
                .map(|s| format!("{} {:?}", s.labels, points_of(s)))
                .collect::<Vec<_>>()
        ));
    }
    for (l, vals) in &want_series {
        let Some(g) = m.iter().find(|s| &s.labels == l) else {
            return Err(format!("missing series {l}"));
        };
        compare_points(l, vals, &points_of(g), start, step)?;
    }
    Ok(())
}

fn check_output(exp: &Expect, out: &QueryOutput) -> Result<(), String> {
    check_annotations("warn", &exp.warn, exp.no_warn, &out.warnings)?;
    check_annotations("info", &exp.info, exp.no_info, &out.infos)
}

fn run_eval(engine: &Engine, db: &dyn Queryable, ev: &Eval) -> Result<(), String> {
    let exp = &ev.exp;
    match ev.kind {
        Kind::Range(start, end, step) => {
            match engine.range_query(db, &ev.expr, start, end, step, None) {
                Err(e) => {
                    if exp.fail {
                        return check_fail(exp, &e.to_string());
                    }
                    Err(format!("error: {e}"))
                }
                Ok(_) if exp.fail => Err("expected failure, got none".into()),
                Ok(out) => {
                    check_output(exp, &out)?;
                    compare_range(exp, &out.value, start, step)?;
                    same_when_split(db, ev, &out, start, end, step)
                }
            }
        }
        Kind::Instant(t) => {
            run_instant(engine, db, ev, &ev.expr, t)?;
            if let Some(expr) = with_at_modifiers(&ev.expr, t) {
                let times: Vec<i64> = if t == 0 {
                    vec![-1000, 0, 1000]
                } else {
                    vec![-10 * t, 0, t / 5, t, 10 * t]
                };
                for et in times {
                    run_instant(engine, db, ev, &expr, et)
                        .map_err(|e| format!("with @ {t} at {et} ({expr}): {e}"))?;
                }
            }
            Ok(())
        }
    }
}

/// The range query evaluated in parts of two or three steps on parallel threads gives the
/// very same result and annotations as evaluated whole.
fn same_when_split(
    db: &dyn Queryable,
    ev: &Eval,
    whole: &QueryOutput,
    start: i64,
    end: i64,
    step: i64,
) -> Result<(), String> {
    static SPLIT: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    let split = SPLIT.get_or_init(|| {
        Engine::new(EngineOptions {
            parallelism: 3,
            min_steps_per_part: 2,
            ..test_engine().options().clone()
        })
    });
    let out = split
        .range_query(db, &ev.expr, start, end, step, None)
        .map_err(|e| format!("split into parts: error {e}"))?;
    // Debug output compares NaN payloads and signs as well as values.
    if format!("{:?}", out.value) != format!("{:?}", whole.value) {
        return Err(format!(
            "split into parts: {:?}\nwhole: {:?}",
            out.value, whole.value
        ));
    }
    if out.warnings != whole.warnings || out.infos != whole.infos {
        return Err(format!(
            "split into parts: annotations {:?} {:?}, whole {:?} {:?}",
            out.warnings, out.infos, whole.warnings, whole.infos
        ));
    }
    Ok(())
}

/// Prometheus' `atModifierTestCases`: every selector and subquery without `@` gets `@ t`
/// (nothing inside a subquery that has one); `None` when the expression uses a function
/// whose result depends on the evaluation time.
fn with_at_modifiers(expr: &str, t: i64) -> Option<String> {
    use vigil_promql_parser::{At, Expr};
    const UNSAFE: &[&str] = &[
        "days_in_month",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "hour",
        "minute",
        "month",
        "year",
        "predict_linear",
        "time",
        "timestamp",
        "start",
        "end",
        "range",
        "step",
    ];
    fn at(t: i64) -> At {
        At::Timestamp(t)
    }
    fn walk(e: &mut Expr, t: i64, unsafe_fn: &mut bool) {
        match e {
            Expr::VectorSelector(vs) => {
                vs.at.get_or_insert_with(|| at(t));
            }
            Expr::MatrixSelector(ms) => {
                ms.vs.at.get_or_insert_with(|| at(t));
            }
            Expr::Subquery(sq) => {
                sq.at.get_or_insert_with(|| at(t));
            }
            Expr::Aggregate(a) => {
                walk(&mut a.expr, t, unsafe_fn);
                if let Some(p) = &mut a.param {
                    walk(p, t, unsafe_fn);
                }
            }
            Expr::Unary(u) => walk(&mut u.expr, t, unsafe_fn),
            Expr::Binary(b) => {
                walk(&mut b.lhs, t, unsafe_fn);
                walk(&mut b.rhs, t, unsafe_fn);
            }
            Expr::Paren(p) => walk(&mut p.expr, t, unsafe_fn),
            Expr::Call(c) => {
                if UNSAFE.contains(&c.func.name) {
                    *unsafe_fn = true;
                }
                for a in &mut c.args {
                    walk(a, t, unsafe_fn);
                }
            }
            _ => {}
        }
    }
    // A `"\xff"` escape is a lone byte in Go; vigil's strings are UTF-8 and print it back as
    // U+FFFD, so such expressions are not re-printed.
    if expr.contains("\\x") {
        return None;
    }
    let mut e = vigil_promql_parser::parse(expr).ok()?;
    let mut unsafe_fn = false;
    walk(&mut e, t, &mut unsafe_fn);
    if unsafe_fn {
        return None;
    }
    Some(e.to_string())
}

fn run_instant(
    engine: &Engine,
    db: &dyn Queryable,
    ev: &Eval,
    expr: &str,
    t: i64,
) -> Result<(), String> {
    let exp = &ev.exp;
    {
        {
            let out = match engine.instant_query(db, expr, t, None) {
                Err(e) => {
                    if exp.fail {
                        return check_fail(exp, &e.to_string());
                    }
                    return Err(format!("error: {e}"));
                }
                Ok(_) if exp.fail => return Err("expected failure, got none".into()),
                Ok(out) => out,
            };
            check_output(exp, &out)?;
            compare_instant(exp, &out.value)?;
            let skip_range = exp.string.is_some()
                || exp.range_vector.is_some()
                || exp.ordered
                || ["start()", "end()", "range()", "step()"]
                    .iter()
                    .any(|f| expr.contains(f));
            if skip_range {
                return Ok(());
            }
            let out = engine
                .range_query(db, expr, t - 60_000, t + 60_000, 60_000, None)
                .map_err(|e| format!("range mode: error {e}"))?;
            let Value::Matrix(m) = &out.value else {
                return Err("range mode: not a matrix".into());
            };
            let mut vec = Vec::new();
            for s in m {
                if let Some(p) = s.samples.iter().find(|p| p.t == t) {
                    vec.push(vigil_promql::VectorSample {
                        labels: s.labels.clone(),
                        t,
                        v: p.v,
                        h: None,
                    });
                } else if let Some(p) = s.histograms.iter().find(|p| p.t == t) {
                    vec.push(vigil_promql::VectorSample {
                        labels: s.labels.clone(),
                        t,
                        v: 0.0,
                        h: Some(p.h.clone()),
                    });
                }
            }
            let v = if out_is_scalar(expr) && exp.scalar.is_some() {
                match vec.first() {
                    Some(s) => Value::Scalar { t, v: s.v },
                    None => return Err("range mode: no scalar point".into()),
                }
            } else {
                Value::Vector(vec)
            };
            compare_instant(exp, &v).map_err(|e| format!("range mode: {e}"))
        }
    }
}

fn out_is_scalar(expr: &str) -> bool {
    matches!(
        vigil_promql_parser::parse(expr).map(|e| e.value_type()),
        Ok(vigil_promql_parser::ValueType::Scalar)
    )
}

/// Counts of one file: passed, failed (with messages), skipped (with reasons).
#[derive(Default)]
struct FileResult {
    passed: usize,
    failures: Vec<String>,
    skipped: usize,
}

/// Runs every command of one script; `skip` gives the reason to skip the eval at a line (or
/// `None` when it is required).
fn run_file(
    engine: &Engine,
    file: &str,
    text: &str,
    mut skip: impl FnMut(usize) -> Disposition,
    skip_reasons: &mut BTreeMap<String, usize>,
    verbose: bool,
) -> FileResult {
    let cmds = parse_file(text);
    let mut head = Head::new(HeadOptions::default());
    let mut r = FileResult::default();
    for cmd in &cmds {
        match cmd {
            Cmd::Clear => head = Head::new(HeadOptions::default()),
            Cmd::Load(step, series, nhcb, sts) => load(&head, *step, series, *nhcb, sts),
            Cmd::Eval(ev) => {
                let d = skip(ev.line);
                if let Disposition::Skip(reason) = d {
                    r.skipped += 1;
                    *skip_reasons.entry(reason).or_default() += 1;
                    continue;
                }
                let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_eval(engine, &head, ev)
                }))
                .unwrap_or_else(|_| Err("panicked".into()));
                match res {
                    Ok(()) => r.passed += 1,
                    Err(e) => {
                        let msg = format!("{file}:{} {}: {e}", ev.line, ev.expr);
                        if verbose {
                            println!("FAIL {msg}");
                        }
                        r.failures.push(msg);
                    }
                }
            }
        }
    }
    r
}

fn test_engine() -> Engine {
    Engine::new(EngineOptions {
        max_samples: 10_000,
        // As Go's promqltest runs its engine.
        use_start_timestamps: true,
        ..EngineOptions::default()
    })
}

#[test]
fn promqltest_corpus() {
    let Some(dir) = vigil_testdata::corpus_dir("promqltest_corpus", "promqltest") else {
        return;
    };
    let cases = load_cases(&dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".test"))
        .collect();
    files.sort();
    let only = std::env::var("PROMQLTEST_FILE").ok();
    let verbose = std::env::var("PROMQLTEST_VERBOSE").is_ok();
    let engine = test_engine();
    let (mut tp, mut tf, mut ts) = (0, 0, 0);
    let mut required_failures = Vec::new();
    let mut skip_reasons: BTreeMap<String, usize> = BTreeMap::new();
    for file in &files {
        if only.as_deref().is_some_and(|o| !file.contains(o)) {
            continue;
        }
        let text = std::fs::read_to_string(dir.join(file)).expect("read test file");
        let skip = |line: usize| {
            let flags = cases
                .get(&(file.clone(), line))
                .cloned()
                .unwrap_or_else(|| panic!("{file}:{line} not in cases.tsv"));
            disposition(&flags)
        };
        let r = run_file(&engine, file, &text, skip, &mut skip_reasons, verbose);
        let (p, f, s) = (r.passed, r.failures.len(), r.skipped);
        required_failures.extend(r.failures);
        println!("{file}: {p} passed, {f} failed, {s} skipped");
        tp += p;
        tf += f;
        ts += s;
    }
    println!("total: {tp} passed, {tf} failed, {ts} skipped");
    println!("skipped by reason:");
    for (r, n) in &skip_reasons {
        println!("  {n:5}  {r}");
    }
    for m in &required_failures {
        println!("FAILED {m}");
    }
    assert!(
        required_failures.is_empty(),
        "{} required evals failed",
        required_failures.len()
    );
}

/// The project's own scripts (`testdata/promql/*.test`, e.g. the drift functions), in the same
/// format and run the same way; every eval in them is required.
#[test]
fn project_promql_tests() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/promql");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("testdata/promql")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".test"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .test files in {}", dir.display());
    let verbose = std::env::var("PROMQLTEST_VERBOSE").is_ok();
    let engine = test_engine();
    let (mut tp, mut failures) = (0, Vec::new());
    let mut no_skips = BTreeMap::new();
    for file in &files {
        let text = std::fs::read_to_string(dir.join(file)).expect("read test file");
        let r = run_file(
            &engine,
            file,
            &text,
            |_| Disposition::Required,
            &mut no_skips,
            verbose,
        );
        println!("{file}: {} passed, {} failed", r.passed, r.failures.len());
        assert!(r.passed > 0, "{file}: no evals");
        tp += r.passed;
        failures.extend(r.failures);
    }
    println!("total: {tp} passed, {} failed", failures.len());
    for m in &failures {
        println!("FAILED {m}");
    }
    assert!(failures.is_empty(), "{} evals failed", failures.len());
}
