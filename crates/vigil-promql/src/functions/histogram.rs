//! `histogram_quantile` and `histogram_fraction` over classic (`le`-labelled) buckets, after
//! Prometheus' `quantile.go`: buckets are sorted and coalesced, counts forced monotonic
//! (with an info annotation) and tiny float deltas ignored.

use super::format_float;
use crate::engine::eval::{Ev, OutBuilder, Result, StepCursor, Val};
use std::collections::HashMap;
use vigil_model::histogram::FloatHistogram;
use vigil_model::{Labels, METRIC_NAME};
use vigil_promql_parser::Expr;

#[derive(Clone, Copy, Debug)]
pub(super) struct Bucket {
    pub ub: f64,
    pub count: f64,
}

fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    if a == b {
        return true;
    }
    let min_normal = f64::from_bits(0x0010_0000_0000_0000);
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < min_normal {
        return diff < eps * min_normal;
    }
    diff / abs_sum.min(f64::MAX) < eps
}

/// Sorts by upper bound, merges equal bounds, fixes monotonicity. Returns whether counts
/// had to be forced monotonic. `None` if the highest bucket is not `+Inf`. Also used by the
/// drift functions (`drift`).
pub(super) fn prepare(buckets: &mut Vec<Bucket>) -> Option<bool> {
    buckets.sort_by(|a, b| a.ub.partial_cmp(&b.ub).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.ub != f64::INFINITY) {
        return None;
    }
    let mut out: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match out.last_mut() {
            Some(l) if l.ub == b.ub => l.count += b.count,
            _ => out.push(*b),
        }
    }
    *buckets = out;
    let mut forced = false;
    let mut prev = buckets[0].count;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.count;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, 1e-12) {
            b.count = prev;
            continue;
        }
        if curr < prev {
            b.count = prev;
            forced = true;
            continue;
        }
        prev = curr;
    }
    Some(forced)
}

fn bucket_quantile(q: f64, mut buckets: Vec<Bucket>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    let Some(forced) = prepare(&mut buckets) else {
        return (f64::NAN, false);
    };
    if buckets.len() < 2 {
        return (f64::NAN, false);
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return (f64::NAN, false);
    }
    let mut rank = q * observations;
    let n = buckets.len() - 1;
    let b = buckets[..n].partition_point(|x| x.count < rank);
    if b == n {
        return (buckets[n - 1].ub, forced);
    }
    if b == 0 && buckets[0].ub <= 0.0 {
        return (buckets[0].ub, forced);
    }
    let mut start = 0.0;
    let end = buckets[b].ub;
    let mut count = buckets[b].count;
    if b > 0 {
        start = buckets[b - 1].ub;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    (start + (end - start) * (rank / count), forced)
}

fn bucket_fraction(lower: f64, upper: f64, mut buckets: Vec<Bucket>) -> f64 {
    if prepare(&mut buckets).is_none() {
        return f64::NAN;
    }
    let count = buckets[buckets.len() - 1].count;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut lower_bound = if buckets[0].ub <= 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    for (i, b) in buckets.iter().enumerate() {
        if i > 0 {
            lower_bound = buckets[i - 1].ub;
        }
        let upper_bound = b.ub;
        let interp = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                return b.count;
            }
            rank + (b.count - rank) * (v - lower_bound) / (upper_bound - lower_bound)
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interp(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interp(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = b.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

/// The upper bound of a bucket series (its `le` label); `None`, with Prometheus' warning if
/// the series has points, when the label is missing or malformed.
pub(super) fn bucket_bound(ev: &Ev, s: &crate::engine::eval::Series) -> Option<f64> {
    let le = s.labels.get("le").unwrap_or("");
    match le.trim().parse::<f64>() {
        Ok(ub) => Some(ub),
        Err(_) => {
            if !s.points.is_empty() {
                ev.sh.warn(format!(
                    "PromQL warning: bucket label \"le\" is missing or has a malformed value of {:?} for metric name {:?}",
                    le,
                    s.labels.get(METRIC_NAME).unwrap_or("")
                ));
            }
            None
        }
    }
}

/// Shared driver: groups classic bucket series by their labels without `le` and calls
/// `classic` with each group's buckets at every step; calls `native` with each native
/// histogram. A native histogram with the labels of a classic group that has buckets at the
/// same step is a conflict: neither is evaluated (Prometheus' warning).
fn by_buckets(
    ev: &Ev,
    vec_arg: &Expr,
    mut classic: impl FnMut(usize, &str, Vec<Bucket>) -> Option<f64>,
    mut native: impl FnMut(usize, &str, &FloatHistogram) -> f64,
) -> Result<Vec<crate::engine::eval::Series>> {
    let input = ev.eval_vector(vec_arg)?;
    let mut group_of: Vec<Option<(usize, f64)>> = Vec::with_capacity(input.len());
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<Labels> = Vec::new();
    for s in &input {
        let Some(ub) = (!s.points.is_empty())
            .then(|| bucket_bound(ev, s))
            .flatten()
        else {
            group_of.push(None);
            continue;
        };
        let mut b = s.labels.to_builder();
        b.del("le");
        let gl = b.build();
        let gi = *index.entry(gl.clone()).or_insert_with(|| {
            groups.push(gl);
            groups.len() - 1
        });
        group_of.push(Some((gi, ub)));
    }
    let native_series: Vec<usize> = (0..input.len())
        .filter(|&i| !input[i].hpoints.is_empty())
        .collect();
    let mut hpos = vec![0usize; input.len()];
    let mut out = OutBuilder::new(ev);
    let mut cur = StepCursor::new(input.len());
    let mut vals = Vec::new();
    let mut buckets: Vec<Vec<Bucket>> = vec![Vec::new(); groups.len()];
    let mut order: Vec<usize> = Vec::new();
    let key_native = groups.len() as u64;
    for i in 0..ev.steps() {
        ev.check()?;
        let ts = ev.ts(i);
        cur.gather(&input, ts, &mut vals);
        order.clear();
        for &(si, v) in &vals {
            if let Some((gi, ub)) = group_of[si] {
                if buckets[gi].is_empty() {
                    order.push(gi);
                }
                buckets[gi].push(Bucket { ub, count: v });
            }
        }
        for &si in &native_series {
            let s = &input[si];
            let p = &mut hpos[si];
            while *p < s.hpoints.len() && s.hpoints[*p].t < ts {
                *p += 1;
            }
            if *p >= s.hpoints.len() || s.hpoints[*p].t != ts {
                continue;
            }
            let h = &s.hpoints[*p].h;
            let name = s.labels.get(METRIC_NAME).unwrap_or("");
            if let Some(&gi) = index.get(&s.labels)
                && !buckets[gi].is_empty()
            {
                ev.sh.warn(format!(
                    "PromQL warning: vector contains a mix of classic and native histograms for metric name {name:?}"
                ));
                buckets[gi].clear();
                continue;
            }
            let v = native(i, name, h);
            out.push_keyed(key_native + si as u64, || (s.labels.clone(), true), ts, v)?;
        }
        for &gi in &order {
            let bs = std::mem::take(&mut buckets[gi]);
            if bs.is_empty() {
                continue;
            }
            let name = groups[gi].get(METRIC_NAME).unwrap_or("").to_string();
            if let Some(v) = classic(i, &name, bs) {
                out.push_keyed(gi as u64, || (groups[gi].clone(), true), ts, v)?;
            }
        }
    }
    Ok(out.finish())
}

pub(super) fn histogram_quantile(ev: &Ev, args: &[&Expr]) -> Result<Val> {
    let q = ev.eval_scalar(args[0])?;
    histogram_quantile_of(ev, &q, args[1])
}

/// `histogram_quantile` with the quantile already evaluated (one per step).
fn histogram_quantile_of(ev: &Ev, q: &[f64], vec_arg: &Expr) -> Result<Val> {
    for &qv in q {
        if qv.is_nan() || !(0.0..=1.0).contains(&qv) {
            ev.sh.warn(format!(
                "PromQL warning: quantile value should be between 0 and 1, got {}",
                format_float(qv)
            ));
        }
    }
    let out = by_buckets(
        ev,
        vec_arg,
        |i, name, bs| {
            let (v, forced) = bucket_quantile(q[i], bs);
            if forced {
                ev.sh.info(format!(
                    "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {name:?}"
                ));
            }
            Some(v)
        },
        |i, name, h| {
            let (v, notes) = super::native::quantile(q[i], h);
            if notes.nan_result {
                ev.sh.info(format!(
                    "PromQL info: input to histogram_quantile has NaN observations, result is NaN{}",
                    for_metric(name)
                ));
            }
            if notes.nan_skew {
                ev.sh.info(format!(
                    "PromQL info: input to histogram_quantile has NaN observations, result is skewed higher{}",
                    for_metric(name)
                ));
            }
            v
        },
    )?;
    Ok(Val::Vector(out))
}

/// Prometheus' `maybeAddMetricName`.
fn for_metric(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!(" for metric name {name:?}")
    }
}

pub(super) fn histogram_fraction(ev: &Ev, args: &[&Expr]) -> Result<Val> {
    let lo = ev.eval_scalar(args[0])?;
    let hi = ev.eval_scalar(args[1])?;
    let out = by_buckets(
        ev,
        args[2],
        |i, _, bs| Some(bucket_fraction(lo[i], hi[i], bs)),
        |i, name, h| {
            let (v, notes) = super::native::fraction(lo[i], hi[i], h);
            if notes.fraction_nans {
                ev.sh.info(format!(
                    "PromQL info: input to histogram_fraction has NaN observations, which are excluded from all fractions{}",
                    for_metric(name)
                ));
            }
            v
        },
    )?;
    Ok(Val::Vector(out))
}

/// Prometheus' `labels.FormatOpenMetricsFloat`: shortest digits, with a `.0` on integers.
fn openmetrics_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let s = vigil_model::gofmt::g(f, None);
    if s.contains(['e', '.']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// `histogram_quantiles(v, "label", q1, q2, …)`: every quantile of every histogram (classic
/// or native), each output labelled `label="<q>"` (Prometheus 3.14's experimental function).
pub(super) fn histogram_quantiles(ev: &Ev, args: &[&Expr]) -> Result<Val> {
    let label = super::string_arg(args[1])?;
    let mut out = Vec::new();
    for arg in &args[2..] {
        let q = ev.eval_scalar(arg)?;
        let series = match histogram_quantile_of(ev, &q, args[0])? {
            Val::Vector(v) => v,
            _ => Vec::new(),
        };
        let qs = openmetrics_float(q.first().copied().unwrap_or(f64::NAN));
        for mut s in series {
            let mut b = s.labels.to_builder();
            b.set(label.clone(), qs.clone());
            s.labels = b.build();
            out.push(s);
        }
    }
    // Two outputs with one label set (the label name was already in use) are an error.
    let mut seen = std::collections::HashSet::new();
    for s in &out {
        for p in &s.points {
            if !seen.insert((s.labels.clone(), p.t)) {
                return Err(crate::engine::eval::exec_err(
                    "vector cannot contain metrics with the same labelset",
                ));
            }
        }
    }
    Ok(Val::Vector(out))
}
