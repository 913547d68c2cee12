//! The extended range selectors of Prometheus 3.x: `x[5m] anchored` and `x[5m] smoothed`
//! (and a smoothed instant selector, `x smoothed`).
//!
//! Both widen what a window reads by the lookback delta. `anchored` takes the last sample at
//! or before the window's start as its left boundary, so `increase` measures exactly the
//! change across the window with no extrapolation; `smoothed` also reads past the window's
//! end and interpolates both boundaries linearly (treating a drop as a counter reset for
//! `rate`/`increase`). Only the functions whose meaning survives that are allowed, with
//! Prometheus' errors for the others. Semantics follow `extendedRate`,
//! `extendedHistogramRate`, `pickFirstSampleIndices`, `extendFloats` and `smoothSeries` in
//! Prometheus' `promql` package.

use super::hrange::Notes;
use crate::engine::eval::{Ev, HPoint, RangeSource, Result, Series, exec_err};
use std::sync::Arc;
use vigil_model::histogram::{CounterResetHint, FloatHistogram, HistogramError};
use vigil_model::{METRIC_NAME, Sample};
use vigil_promql_parser::VectorSelector;

const ANCHORED_SAFE: &[&str] = &["changes", "delta", "increase", "rate", "resets"];
const SMOOTHED_SAFE: &[&str] = &["delta", "increase", "rate"];

/// Whether a selector reads an extended range.
pub(crate) fn is_extended(vs: &VectorSelector) -> bool {
    vs.anchored || vs.smoothed
}

/// Refuses a function that cannot take the selector's modifier, in Prometheus' words.
pub(crate) fn check_function(vs: &VectorSelector, name: &str) -> Result<()> {
    let (modifier, safe) = if vs.anchored {
        ("anchored", ANCHORED_SAFE)
    } else if vs.smoothed {
        ("smoothed", SMOOTHED_SAFE)
    } else {
        return Ok(());
    };
    if safe.contains(&name) {
        return Ok(());
    }
    Err(exec_err(format!(
        "{modifier} modifier can only be used with: {} - not with {name}",
        safe.join(", ")
    )))
}

/// How far before a window's start and after its end an extended selector reads.
pub(crate) fn widening(vs: &VectorSelector, lookback: i64) -> (i64, i64) {
    match (vs.anchored, vs.smoothed) {
        (true, _) => (lookback, 0),
        (_, true) => (lookback, lookback),
        _ => (0, 0),
    }
}

/// Linear interpolation at `t` between two points; a counter that dropped restarts from 0.
fn interpolate(p1: Sample, p2: Sample, t: i64, is_counter: bool) -> f64 {
    let y1 = if is_counter && p2.v < p1.v { 0.0 } else { p1.v };
    y1 + (p2.v - y1) * (t - p1.t) as f64 / (p2.t - p1.t) as f64
}

/// Index of the first of `xs[..n]` with `t > bound`, or `n` (Go's `sort.Search` over `n`).
fn first_after(ts: impl Fn(usize) -> i64, n: usize, bound: i64) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if ts(mid) > bound {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// Index of the first of `xs[..n]` with `t >= bound`, or `n`.
fn first_at_or_after(ts: impl Fn(usize) -> i64, n: usize, bound: i64) -> usize {
    first_after(ts, n, bound - 1)
}

/// The boundary samples of a window `f` for `[range_start, range_end]`: (first, last)
/// indices, or `None` when the window has nothing to measure.
fn boundaries(
    ts: impl Fn(usize) -> i64 + Copy,
    len: usize,
    range_start: i64,
    range_end: i64,
    smoothed: bool,
) -> Option<(usize, usize)> {
    let mut last = len - 1;
    let first = first_after(ts, last, range_start).saturating_sub(1);
    if smoothed {
        last = first_at_or_after(ts, last, range_end);
    }
    if ts(last) <= range_start || (smoothed && ts(first) > range_end) {
        return None;
    }
    Some((first, last))
}

/// `extendedRate`: `rate`, `increase` or `delta` of float samples over an extended window.
pub(crate) fn float_rate(
    f: &[Sample],
    range_start: i64,
    range_end: i64,
    smoothed: bool,
    is_counter: bool,
    range_secs: Option<f64>,
) -> Option<f64> {
    let (first, last) = boundaries(|i| f[i].t, f.len(), range_start, range_end, smoothed)?;
    let left = if smoothed && f[first].t < range_start {
        interpolate(f[first], f[first + 1], range_start, is_counter)
    } else {
        f[first].v
    };
    let right = if smoothed && last > 0 && f[last].t > range_end {
        interpolate(f[last - 1], f[last], range_end, is_counter)
    } else {
        f[last].v
    };
    let mut result = right - left;
    if is_counter {
        // Resets strictly inside the range; the boundaries handled their own.
        let lo = if f[first].t <= range_start {
            first + 1
        } else {
            first
        };
        let hi = if f[last].t >= range_end {
            last
        } else {
            last + 1
        };
        let mut prev = left;
        let mut correction = 0.0;
        for p in f.get(lo..hi).unwrap_or(&[]) {
            if p.v < prev {
                correction += prev;
            }
            prev = p.v;
        }
        if right < prev {
            correction += prev;
        }
        result += correction;
    }
    Some(match range_secs {
        Some(secs) => result / secs,
        None => result,
    })
}

/// Interpolates two histograms at `t` (`interpolateHistograms`).
fn interpolate_h(
    h1: &FloatHistogram,
    t1: i64,
    h2: &FloatHistogram,
    t2: i64,
    t: i64,
    is_counter: bool,
    notes: &Notes,
) -> std::result::Result<FloatHistogram, HistogramError> {
    if t == t1 {
        return Ok(h1.clone());
    }
    if t == t2 {
        return Ok(h2.clone());
    }
    let fraction = (t - t1) as f64 / (t2 - t1) as f64;
    if is_counter && h2.detect_reset(h1) {
        let mut r = h2.clone();
        r.mul(fraction);
        return Ok(r);
    }
    let mut r = h2.clone();
    if r.sub(h1)?.nhcb_bounds_reconciled {
        notes.mismatched_custom("subtraction");
    }
    r.mul(fraction);
    if r.add(h1)?.nhcb_bounds_reconciled {
        notes.mismatched_custom("addition");
    }
    Ok(r)
}

fn add_noted(base: &mut FloatHistogram, other: &FloatHistogram, notes: &Notes, sub: bool) -> bool {
    let r = if sub {
        base.sub(other)
    } else {
        base.add(other)
    };
    match r {
        Ok(o) => {
            if o.nhcb_bounds_reconciled {
                notes.mismatched_custom(if sub { "subtraction" } else { "addition" });
            }
            true
        }
        Err(HistogramError::IncompatibleSchema) => {
            notes.mixed_exponential_custom();
            false
        }
        Err(_) => false,
    }
}

/// `extendedHistogramRate`: `rate`, `increase` or `delta` of histogram samples.
pub(crate) fn histogram_rate(
    h: &[HPoint],
    range_start: i64,
    range_end: i64,
    smoothed: bool,
    is_counter: bool,
    range_secs: Option<f64>,
    notes: &Notes,
) -> Option<FloatHistogram> {
    let (first, last) = boundaries(|i| h[i].t, h.len(), range_start, range_end, smoothed)?;
    let window = &h[first..=last];
    let custom = window[0].h.uses_custom_buckets();
    for p in window {
        if p.h.uses_custom_buckets() != custom {
            notes.mixed_exponential_custom();
            return None;
        }
        if is_counter && p.h.counter_reset_hint == CounterResetHint::Gauge {
            notes.not_counter();
        }
    }
    let interpolation_failed = |e: HistogramError| {
        if e == HistogramError::IncompatibleSchema {
            notes.mixed_exponential_custom();
        }
    };
    let left = if smoothed && h[first].t < range_start {
        let (a, b) = (&h[first], &h[first + 1]);
        match interpolate_h(&a.h, a.t, &b.h, b.t, range_start, is_counter, notes) {
            Ok(x) => x,
            Err(e) => {
                interpolation_failed(e);
                return None;
            }
        }
    } else {
        FloatHistogram::clone(&h[first].h)
    };
    let right = if smoothed && last > 0 && h[last].t > range_end {
        let (a, b) = (&h[last - 1], &h[last]);
        match interpolate_h(&a.h, a.t, &b.h, b.t, range_end, is_counter, notes) {
            Ok(x) => x,
            Err(e) => {
                interpolation_failed(e);
                return None;
            }
        }
    } else {
        FloatHistogram::clone(&h[last].h)
    };
    if !is_counter
        && (left.counter_reset_hint != CounterResetHint::Gauge
            || right.counter_reset_hint != CounterResetHint::Gauge)
    {
        notes.not_gauge();
    }
    let mut result = right.clone();
    if !add_noted(&mut result, &left, notes, true) {
        return None;
    }
    if is_counter {
        // `correctForCounterResetsHistogram`.
        let mut lo = first + 1;
        let mut prev: &FloatHistogram = &left;
        if smoothed && h[first].t < range_start && h[first + 1].h.detect_reset(&h[first].h) {
            prev = &h[first + 1].h;
            lo += 1;
        }
        let mut correction: Option<FloatHistogram> = None;
        let mut add_correction = |c: &FloatHistogram| match &mut correction {
            None => {
                correction = Some(c.clone());
                true
            }
            Some(acc) => add_noted(acc, c, notes, false),
        };
        // The last sample is `right` (or what it was interpolated from): never in the loop.
        if lo < last {
            for p in &h[lo..last] {
                if p.h.detect_reset(prev) && !add_correction(prev) {
                    return None;
                }
                prev = &p.h;
            }
        }
        if lo <= last && right.detect_reset(prev) && !add_correction(prev) {
            return None;
        }
        if let Some(c) = correction
            && !add_noted(&mut result, &c, notes, false)
        {
            return None;
        }
    }
    if let Some(secs) = range_secs {
        result.div(secs);
    }
    result.counter_reset_hint = CounterResetHint::Gauge;
    result.compact(0);
    Some(result)
}

/// A sample of either kind, for `changes` and `resets` over a window holding both.
#[derive(Clone, Copy)]
enum Any<'a> {
    F(f64),
    H(&'a FloatHistogram),
}

/// `pickFirstSampleIndices` and then `changes` (or `resets`) over an anchored window: the
/// last sample at or before the range start, of either kind, is the baseline.
fn anchored_changes(f: &[Sample], h: &[HPoint], range_start: i64, resets: bool) -> Option<f64> {
    let lf = first_after(|i| f[i].t, f.len(), range_start) as isize - 1;
    let lh = first_after(|i| h[i].t, h.len(), range_start) as isize - 1;
    if lf + 1 >= f.len() as isize && lh + 1 >= h.len() as isize {
        return None;
    }
    let (ff, fh) = if lf < 0 && lh < 0 {
        (0, 0)
    } else if lh < 0 || (lf >= 0 && f[lf as usize].t >= h[lh as usize].t) {
        (lf as usize, (lh + 1) as usize)
    } else {
        ((lf + 1) as usize, lh as usize)
    };
    let (mut i, mut j) = (ff, fh);
    let mut prev: Option<Any> = None;
    let mut n = 0;
    while i < f.len() || j < h.len() {
        let cur = if j >= h.len() || (i < f.len() && f[i].t < h[j].t) {
            i += 1;
            Any::F(f[i - 1].v)
        } else {
            j += 1;
            Any::H(&h[j - 1].h)
        };
        if let Some(p) = prev {
            let counted = match (p, cur) {
                (Any::F(a), Any::F(b)) if resets => b < a,
                (Any::F(a), Any::F(b)) => a != b && !(a.is_nan() && b.is_nan()),
                (Any::H(a), Any::H(b)) if resets => b.detect_reset(a),
                (Any::H(a), Any::H(b)) => !b.equals(a),
                _ => true,
            };
            if counted {
                n += 1;
            }
        }
        prev = Some(cur);
    }
    Some(n as f64)
}

/// Evaluates `name` over an anchored or smoothed matrix selector, series by series.
pub(crate) fn eval_call_each(
    ev: &Ev,
    name: &str,
    src: &RangeSource,
    vs: &VectorSelector,
    emit: &mut dyn FnMut(Series) -> Result<()>,
) -> Result<()> {
    check_function(vs, name)?;
    let lookback = ev.sh.lookback;
    let (before, after) = widening(vs, lookback);
    let smoothed = vs.smoothed;
    let range = src.range;
    let range_secs = range as f64 / 1000.0;
    src.for_each(ev, |s| {
        ev.check()?;
        let metric = s.labels.get(METRIC_NAME).unwrap_or("");
        let notes = Notes { ev, metric };
        let (fs, hs) = (&s.points, &s.hpoints);
        let mut pts = Vec::new();
        let mut hpts = Vec::new();
        let mut queryable = 0usize;
        for i in 0..ev.steps() {
            let ts = ev.ts(i);
            let end = src.window_end(ts);
            let start = end - range;
            let (mint, maxt) = (start - before, end + after);
            let fw = &fs[fs.partition_point(|p| p.t <= mint)..fs.partition_point(|p| p.t <= maxt)];
            let hw = &hs[hs.partition_point(|p| p.t <= mint)..hs.partition_point(|p| p.t <= maxt)];
            if fw.is_empty() && hw.is_empty() {
                continue;
            }
            queryable += fw.len() + hw.len();
            match name {
                "changes" | "resets" => {
                    if let Some(v) = anchored_changes(fw, hw, start, name == "resets") {
                        pts.push(Sample { t: ts, v });
                    }
                }
                _ => {
                    let is_counter = name != "delta";
                    let per_sec = (name == "rate").then_some(range_secs);
                    if !fw.is_empty() && !hw.is_empty() {
                        notes.mixed_floats_histograms();
                    } else if !hw.is_empty() {
                        if let Some(h) =
                            histogram_rate(hw, start, end, smoothed, is_counter, per_sec, &notes)
                        {
                            hpts.push(HPoint {
                                t: ts,
                                h: Arc::new(h),
                            });
                        }
                    } else if let Some(v) =
                        float_rate(fw, start, end, smoothed, is_counter, per_sec)
                    {
                        pts.push(Sample { t: ts, v });
                    }
                }
            }
        }
        ev.sh.counters.queryable(queryable);
        if pts.is_empty() && hpts.is_empty() {
            return Ok(());
        }
        let n = pts.len()
            + hpts
                .iter()
                .map(|h| crate::engine::eval::histogram_size(&h.h))
                .sum::<usize>();
        ev.sh.add_samples(n)?;
        emit(Series {
            labels: s.labels.clone(),
            drop_name: true,
            points: pts,
            hpoints: hpts,
            sts: Vec::new(),
        })
    })
}

/// `extendFloats`: an anchored or smoothed range vector as an instant query returns it, the
/// window's samples with a point at each boundary. `w` holds the samples in
/// `(start - lookback, end (+ lookback)]`.
pub(crate) fn extend_floats(w: &[Sample], start: i64, end: i64, smoothed: bool) -> Vec<Sample> {
    if w.is_empty() {
        return Vec::new();
    }
    let Some((mut first, mut last)) = boundaries(|i| w[i].t, w.len(), start, end, smoothed) else {
        return Vec::new();
    };
    let left = if smoothed && w[first].t < start {
        interpolate(w[first], w[first + 1], start, false)
    } else {
        w[first].v
    };
    let right = if smoothed && last > 0 && w[last].t > end {
        interpolate(w[last - 1], w[last], end, false)
    } else {
        w[last].v
    };
    if w[first].t <= start {
        first += 1;
    }
    let inner: &[Sample] = if w[last].t >= end {
        if last == 0 {
            &[]
        } else {
            last -= 1;
            w.get(first..=last).unwrap_or(&[])
        }
    } else {
        w.get(first..=last).unwrap_or(&[])
    };
    let mut out = Vec::with_capacity(inner.len() + 2);
    out.push(Sample { t: start, v: left });
    out.extend_from_slice(inner);
    out.push(Sample { t: end, v: right });
    out
}

/// `smoothSeries` for one series: per step, the sample at the step's time, or the linear
/// interpolation between its neighbours within the lookback delta on each side, or the last
/// sample when none follows. Samples are the series' within the widened selection.
pub(crate) fn smooth_series(
    ev: &Ev,
    fs: &[Sample],
    hs: &[HPoint],
    data_ts: impl Fn(i64) -> i64,
    notes: &Notes,
) -> (Vec<Sample>, Vec<HPoint>) {
    let lookback = ev.sh.lookback;
    let (mut pts, mut hpts) = (Vec::new(), Vec::new());
    for i in 0..ev.steps() {
        let ts = ev.ts(i);
        let d = data_ts(ts);
        let (mint, maxt) = (d - lookback, d + lookback);
        let fw = &fs[fs.partition_point(|p| p.t <= mint)..fs.partition_point(|p| p.t <= maxt)];
        let hw = &hs[hs.partition_point(|p| p.t <= mint)..hs.partition_point(|p| p.t <= maxt)];
        if fw.is_empty() && hw.is_empty() {
            continue;
        }
        if !fw.is_empty() && !hw.is_empty() {
            notes.mixed_floats_histograms();
            continue;
        }
        if !hw.is_empty() {
            let k = hw.partition_point(|p| p.t < d);
            if k < hw.len() && hw[k].t == d {
                hpts.push(HPoint {
                    t: ts,
                    h: hw[k].h.clone(),
                });
            } else if k > 0 && k < hw.len() {
                let (p, n) = (&hw[k - 1], &hw[k]);
                if p.h.uses_custom_buckets() != n.h.uses_custom_buckets() {
                    notes.mixed_exponential_custom();
                    continue;
                }
                let is_counter = p.h.counter_reset_hint != CounterResetHint::Gauge
                    || n.h.counter_reset_hint != CounterResetHint::Gauge;
                match interpolate_h(&p.h, p.t, &n.h, n.t, d, is_counter, notes) {
                    Ok(h) => hpts.push(HPoint {
                        t: ts,
                        h: Arc::new(h),
                    }),
                    Err(HistogramError::IncompatibleSchema) => notes.mixed_exponential_custom(),
                    Err(_) => {}
                }
            } else if k > 0 {
                let mut h = FloatHistogram::clone(&hw[k - 1].h);
                h.counter_reset_hint = CounterResetHint::Unknown;
                hpts.push(HPoint {
                    t: ts,
                    h: Arc::new(h),
                });
            }
        } else {
            let k = fw.partition_point(|p| p.t < d);
            if k < fw.len() && fw[k].t == d {
                pts.push(Sample { t: ts, v: fw[k].v });
            } else if k > 0 && k < fw.len() {
                pts.push(Sample {
                    t: ts,
                    v: interpolate(fw[k - 1], fw[k], d, false),
                });
            } else if k > 0 {
                pts.push(Sample {
                    t: ts,
                    v: fw[k - 1].v,
                });
            }
        }
    }
    (pts, hpts)
}
