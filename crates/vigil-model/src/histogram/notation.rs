//! The series notation of Prometheus' test scripts and of promtool's rule unit tests:
//! `1 2 _ stale 1+2x3 _x3 {{schema:1 count:3 sum:5 buckets:[1 2]}}x2 {{...}}+{{...}}x10`.
//!
//! One owner for it: the promqltest runner and `vigil test rules` both load their input series
//! through [`parse_series_values`]. The histogram keys are `schema`, `sum`, `count`,
//! `z_bucket`, `z_bucket_w`, `buckets`, `offset`, `n_buckets`, `n_offset`, `custom_values` and
//! `counter_reset_hint` (`unknown`, `reset`, `not_reset`, `gauge`); `buckets:[...]` with
//! `offset:` make one span.

use super::{CounterResetHint, FloatHistogram, Span};
use crate::stale_nan;
use std::sync::Arc;

/// One expanded point of a series description.
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesValue {
    /// `_`: no sample at this step.
    Omitted,
    Float(f64),
    /// A histogram, and whether its counter-reset hint was written out (tests compare the
    /// hint only then).
    Histogram(Box<FloatHistogram>, bool),
}

/// A number as the test notation writes it: decimal, `0x` hex, `Inf`, `NaN`, signed.
pub fn parse_number(s: &str) -> Result<f64, String> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let v = match body.to_ascii_lowercase().as_str() {
        "inf" => f64::INFINITY,
        "nan" => f64::NAN,
        l if l.starts_with("0x") => i64::from_str_radix(&body[2..], 16)
            .map(|v| v as f64)
            .map_err(|_| format!("bad number {s:?}"))?,
        _ => body
            .parse::<f64>()
            .map_err(|_| format!("bad number {s:?}"))?,
    };
    Ok(if neg { -v } else { v })
}

/// Splits on whitespace, keeping `{{ ... }}` (which contains spaces) in one token.
fn tokens(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() {
            if b[i] == b'{' && b.get(i + 1) == Some(&b'{') {
                match s[i..].find("}}") {
                    Some(end) => i += end + 2,
                    None => return Err(format!("unterminated histogram in {s:?}")),
                }
            } else {
                i += 1;
            }
        }
        out.push(&s[start..i]);
    }
    Ok(out)
}

/// Expands a series description into one value per step (the first is at time 0).
pub fn parse_series_values(s: &str) -> Result<Vec<SeriesValue>, String> {
    let mut out = Vec::new();
    for tok in tokens(s)? {
        if tok.starts_with("{{") {
            parse_histogram_item(tok, &mut out)?;
            continue;
        }
        if tok == "_" {
            out.push(SeriesValue::Omitted);
            continue;
        }
        if tok == "stale" {
            out.push(SeriesValue::Float(stale_nan()));
            continue;
        }
        let Some((head, times)) = tok.rsplit_once('x').filter(|(h, t)| {
            !h.is_empty() && !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit())
        }) else {
            out.push(SeriesValue::Float(parse_number(tok)?));
            continue;
        };
        let n = repeat_count(times, tok)?;
        if head == "_" {
            out.extend(std::iter::repeat_n(SeriesValue::Omitted, n));
            continue;
        }
        // `a+b` / `a-b`: the operator is a sign not at the start and not after an exponent.
        let bytes = head.as_bytes();
        let split = (1..bytes.len()).rev().find(|&i| {
            (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E')
        });
        let (start, step) = match split {
            Some(i) => (parse_number(&head[..i])?, parse_number(&head[i..])?),
            None => (parse_number(head)?, 0.0),
        };
        let mut v = start;
        for _ in 0..=n {
            out.push(SeriesValue::Float(v));
            v += step;
        }
    }
    Ok(out)
}

fn repeat_count(times: &str, tok: &str) -> Result<usize, String> {
    let n: u64 = times
        .parse()
        .map_err(|_| format!("bad repeat count in {tok:?}"))?;
    if n > 10_000_000 {
        return Err(format!("repeat count too large in {tok:?}"));
    }
    Ok(n as usize)
}

/// `{{a}}`, `{{a}}xN`, `{{a}}+{{b}}xN`, `{{a}}-{{b}}xN`.
fn parse_histogram_item(tok: &str, out: &mut Vec<SeriesValue>) -> Result<(), String> {
    let end = tok
        .find("}}")
        .ok_or_else(|| format!("bad histogram {tok:?}"))?
        + 2;
    let (base, base_hint) = parse_histogram(&tok[..end])?;
    let rest = &tok[end..];
    if rest.is_empty() {
        out.push(SeriesValue::Histogram(Box::new(base), base_hint));
        return Ok(());
    }
    if let Some(times) = rest.strip_prefix('x') {
        let n = repeat_count(times, tok)?;
        for _ in 0..=n {
            out.push(SeriesValue::Histogram(Box::new(base.clone()), base_hint));
        }
        return Ok(());
    }
    let (negate, rest) = match rest.as_bytes()[0] {
        b'+' => (false, &rest[1..]),
        b'-' => (true, &rest[1..]),
        _ => return Err(format!("bad histogram series {tok:?}")),
    };
    let end2 = rest
        .find("}}")
        .ok_or_else(|| format!("bad histogram {tok:?}"))?
        + 2;
    let (inc, inc_hint) = parse_histogram(&rest[..end2])?;
    let times = rest[end2..]
        .strip_prefix('x')
        .ok_or_else(|| format!("expected xN after the increment in {tok:?}"))?;
    let n = repeat_count(times, tok)?;
    out.push(SeriesValue::Histogram(Box::new(base.clone()), inc_hint));
    let mut cur = base;
    for _ in 0..n {
        if cur.schema > inc.schema {
            return Err(format!(
                "error combining histograms: cannot merge from schema {} to {}",
                inc.schema, cur.schema
            ));
        }
        let mut next = cur.clone();
        let r = if negate {
            next.sub(&inc)
        } else {
            next.add(&inc)
        };
        r.map_err(|e| format!("error combining histograms: {e}"))?;
        out.push(SeriesValue::Histogram(Box::new(next.clone()), inc_hint));
        cur = next;
    }
    Ok(())
}

/// One `{{key:value ...}}` histogram; the flag says whether `counter_reset_hint` was given.
pub fn parse_histogram(s: &str) -> Result<(FloatHistogram, bool), String> {
    let inner = s
        .trim()
        .strip_prefix("{{")
        .and_then(|r| r.strip_suffix("}}"))
        .ok_or_else(|| format!("bad histogram {s:?}"))?;
    let mut h = FloatHistogram::default();
    let mut hint_set = false;
    let (mut pos, mut neg): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    let (mut offset, mut n_offset) = (0i32, 0i32);
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let colon = rest
            .find(':')
            .ok_or_else(|| format!("expected key:value in histogram {s:?}"))?;
        let key = rest[..colon].trim();
        let after = rest[colon + 1..].trim_start();
        let (val, next) = if after.starts_with('[') {
            let close = after
                .find(']')
                .ok_or_else(|| format!("unterminated [ in histogram {s:?}"))?;
            (&after[..=close], &after[close + 1..])
        } else {
            let e = after
                .find(|c: char| c.is_ascii_whitespace())
                .unwrap_or(after.len());
            (&after[..e], &after[e..])
        };
        rest = next.trim_start();
        let list = |v: &str| -> Result<Vec<f64>, String> {
            v.trim_start_matches('[')
                .trim_end_matches(']')
                .split_whitespace()
                .map(parse_number)
                .collect()
        };
        let int = |v: &str| -> Result<i32, String> {
            v.parse::<i32>()
                .map_err(|_| format!("error parsing {key} number: {v}"))
        };
        match key {
            "schema" => h.schema = int(val)?,
            "sum" => h.sum = parse_number(val)?,
            "count" => h.count = parse_number(val)?,
            "z_bucket" => h.zero_count = parse_number(val)?,
            "z_bucket_w" => h.zero_threshold = parse_number(val)?,
            "custom_values" => h.custom_values = Some(Arc::from(list(val)?)),
            "buckets" => pos = list(val)?,
            "n_buckets" => neg = list(val)?,
            "offset" => offset = int(val)?,
            "n_offset" => n_offset = int(val)?,
            "counter_reset_hint" => {
                hint_set = true;
                h.counter_reset_hint = match val {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::CounterReset,
                    "not_reset" => CounterResetHint::NotCounterReset,
                    "gauge" => CounterResetHint::Gauge,
                    _ => return Err(format!("error parsing counter_reset_hint: {val}")),
                }
            }
            _ => return Err(format!("unknown histogram description key {key:?}")),
        }
    }
    if !pos.is_empty() {
        h.positive_spans = vec![Span {
            offset,
            length: pos.len() as u32,
        }];
        h.positive_buckets = pos;
    }
    if !neg.is_empty() {
        h.negative_spans = vec![Span {
            offset: n_offset,
            length: neg.len() as u32,
        }];
        h.negative_buckets = neg;
    }
    Ok((h, hint_set))
}

/// The notation of one histogram (Prometheus' `TestExpression`): spans are merged into one
/// per side, zero-valued fields left out.
pub fn format(h: &FloatHistogram) -> String {
    use crate::gofmt::g;
    let mut m = h.clone();
    m.compact(usize::MAX / 2);
    let mut parts: Vec<String> = Vec::new();
    if m.schema != 0 {
        parts.push(format!("schema:{}", m.schema));
    }
    if m.count != 0.0 {
        parts.push(format!("count:{}", g(m.count, None)));
    }
    if m.sum != 0.0 {
        parts.push(format!("sum:{}", g(m.sum, None)));
    }
    if m.zero_count != 0.0 {
        parts.push(format!("z_bucket:{}", g(m.zero_count, None)));
    }
    if m.zero_threshold != 0.0 {
        parts.push(format!("z_bucket_w:{}", g(m.zero_threshold, None)));
    }
    if m.uses_custom_buckets() {
        let v: Vec<String> = m.custom().iter().map(|x| g(*x, None)).collect();
        parts.push(format!("custom_values:[{}]", v.join(" ")));
    }
    match m.counter_reset_hint {
        CounterResetHint::Unknown => {}
        CounterResetHint::CounterReset => parts.push("counter_reset_hint:reset".into()),
        CounterResetHint::NotCounterReset => parts.push("counter_reset_hint:not_reset".into()),
        CounterResetHint::Gauge => parts.push("counter_reset_hint:gauge".into()),
    }
    for (spans, buckets, bk, ok) in [
        (&m.positive_spans, &m.positive_buckets, "buckets", "offset"),
        (
            &m.negative_spans,
            &m.negative_buckets,
            "n_buckets",
            "n_offset",
        ),
    ] {
        if let Some(s) = spans.first()
            && s.offset != 0
        {
            parts.push(format!("{ok}:{}", s.offset));
        }
        if !buckets.is_empty() {
            let v: Vec<String> = buckets.iter().map(|x| g(*x, None)).collect();
            parts.push(format!("{bk}:[{}]", v.join(" ")));
        }
    }
    format!("{{{{{}}}}}", parts.join(" "))
}
