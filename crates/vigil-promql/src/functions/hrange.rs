//! Range functions over series that hold native histograms (a series of histograms, or one
//! that switched kind inside the range). Float-only series never come here: they keep the
//! streaming fast path of [`super::range`].
//!
//! Per window, Prometheus' rules: `rate`, `increase`, `delta`, `irate`, `idelta`,
//! `sum_over_time` and `avg_over_time` compute on histograms when the window holds only
//! histograms and refuse a mix with a warning; `count_over_time`, `last_over_time`,
//! `first_over_time`, `present_over_time`, `resets` and `changes` take both kinds; every other
//! function reads the floats and ignores the histograms (with an info when both are there).

use super::range::{RangeFn, Win, align_sts, is_st_reset, st_overlaps, warn_st_overlap};
use crate::engine::eval::{Ev, HPoint, RangeSource, Result, Series};
use std::sync::Arc;
use vigil_model::histogram::{CounterResetHint, FloatHistogram, HistogramError};
use vigil_model::{METRIC_NAME, Sample};

/// Annotations of histogram arithmetic, with Prometheus' texts.
pub(crate) struct Notes<'a> {
    pub ev: &'a Ev<'a>,
    pub metric: &'a str,
}

impl Notes<'_> {
    pub fn mixed_floats_histograms(&self) {
        self.ev.sh.warn(format!(
            "PromQL warning: encountered a mix of histograms and floats for metric name {:?}",
            self.metric
        ));
    }
    pub fn mixed_exponential_custom(&self) {
        self.ev.sh.warn(format!(
            "PromQL warning: vector contains a mix of histograms with exponential and custom buckets schemas for metric name {:?}",
            self.metric
        ));
    }
    pub fn not_counter(&self) {
        self.ev.sh.warn(format!(
            "PromQL warning: this native histogram metric is not a counter: {:?}",
            self.metric
        ));
    }
    pub fn not_gauge(&self) {
        self.ev.sh.warn(format!(
            "PromQL warning: this native histogram metric is not a gauge: {:?}",
            self.metric
        ));
    }
    pub fn mismatched_custom(&self, op: &str) {
        self.ev.sh.info(format!(
            "PromQL info: mismatched custom buckets were reconciled during {op}"
        ));
    }
    pub fn counter_reset_collision(&self, op: &str) {
        self.ev.sh.warn(format!(
            "PromQL warning: conflicting counter resets during histogram {op}"
        ));
    }
    pub fn ignored_in_mixed_range(&self) {
        self.ev.sh.info(format!(
            "PromQL info: ignored histograms in a range containing both floats and histograms for metric name {:?}",
            self.metric
        ));
    }
}

/// Evaluates `name` over one series that has histogram samples; `f` is the float function.
#[allow(clippy::too_many_arguments)]
pub(super) fn eval_series(
    ev: &Ev,
    name: &str,
    f: Option<RangeFn>,
    src: &RangeSource,
    s: &Series,
    scalars: &[Vec<f64>],
    drop_name: bool,
    present: &mut [bool],
) -> Result<Option<Series>> {
    let metric = s.labels.get(METRIC_NAME).unwrap_or("");
    let notes = Notes { ev, metric };
    let (fs, hs) = (&s.points, &s.hpoints);
    // Start timestamps aligned with each kind's samples (0: none), when there are any.
    let (f_sts, h_sts) = if s.sts.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        (
            align_sts(fs.iter().map(|p| p.t), &s.sts),
            align_sts(hs.iter().map(|p| p.t), &s.sts),
        )
    };
    let (mut flo, mut fhi, mut hlo, mut hhi) = (0, 0, 0, 0);
    let mut pts: Vec<Sample> = Vec::new();
    let mut hpts: Vec<HPoint> = Vec::new();
    let mut sargs = vec![0.0; scalars.len()];
    let mut queryable = 0usize;
    #[allow(clippy::needless_range_loop)]
    for i in 0..ev.steps() {
        let ts = ev.ts(i);
        let end = src.window_end(ts);
        let start = end - src.range;
        while fhi < fs.len() && fs[fhi].t <= end {
            fhi += 1;
        }
        while flo < fhi && fs[flo].t <= start {
            flo += 1;
        }
        while hhi < hs.len() && hs[hhi].t <= end {
            hhi += 1;
        }
        while hlo < hhi && hs[hlo].t <= start {
            hlo += 1;
        }
        let (fw, hw) = (&fs[flo..fhi], &hs[hlo..hhi]);
        let fst: &[i64] = f_sts.get(flo..fhi).unwrap_or(&[]);
        let hst: &[i64] = h_sts.get(hlo..hhi).unwrap_or(&[]);
        if fw.is_empty() && hw.is_empty() {
            continue;
        }
        queryable += fw.len() + hw.len();
        let Some(f) = f else {
            present[i] = true;
            continue;
        };
        for (k, sc) in scalars.iter().enumerate() {
            sargs[k] = sc.get(i).copied().unwrap_or(f64::NAN);
        }
        let win = Win {
            times: None,
            sts: fst,
            metric,
            s: fw,
            resets: None,
            range: src.range,
            end,
            ts,
            args: &sargs,
        };
        let mut float_out = |v: Option<f64>| {
            if let Some(v) = v {
                pts.push(Sample { t: ts, v });
            }
        };
        match name {
            "rate" | "increase" | "delta" => {
                if !fw.is_empty() && !hw.is_empty() {
                    notes.mixed_floats_histograms();
                } else if hw.is_empty() {
                    float_out(f(&win, ev)?);
                } else if let Some(h) = histogram_rate(
                    hw,
                    hst,
                    name != "delta",
                    name == "rate",
                    start,
                    end,
                    src.range,
                    &notes,
                ) {
                    hpts.push(HPoint {
                        t: ts,
                        h: Arc::new(h),
                    });
                }
            }
            "irate" | "idelta" => {
                match instant_value(fw, hw, (fst, hst), name == "irate", &notes) {
                    Some(Point::F(v)) => float_out(Some(v)),
                    Some(Point::H(h)) => hpts.push(HPoint {
                        t: ts,
                        h: Arc::new(h),
                    }),
                    None => {}
                }
            }
            "sum_over_time" | "avg_over_time" => {
                if !fw.is_empty() && !hw.is_empty() {
                    notes.mixed_floats_histograms();
                } else if hw.is_empty() {
                    float_out(f(&win, ev)?);
                } else if let Some(h) = sum_or_avg(hw, name == "avg_over_time", &notes) {
                    hpts.push(HPoint {
                        t: ts,
                        h: Arc::new(h),
                    });
                }
            }
            "count_over_time" => float_out(Some((fw.len() + hw.len()) as f64)),
            "ts_of_first_over_time" => {
                let t = fw
                    .first()
                    .map_or(i64::MAX, |p| p.t)
                    .min(hw.first().map_or(i64::MAX, |p| p.t));
                float_out(Some(t as f64 / 1000.0));
            }
            "ts_of_last_over_time" => {
                let t = fw
                    .last()
                    .map_or(i64::MIN, |p| p.t)
                    .max(hw.last().map_or(i64::MIN, |p| p.t));
                float_out(Some(t as f64 / 1000.0));
            }
            "present_over_time" => float_out(Some(1.0)),
            "last_over_time" | "first_over_time" => {
                let last = name == "last_over_time";
                let (ft, ht) = if last {
                    (fw.last().map(|p| p.t), hw.last().map(|p| p.t))
                } else {
                    (fw.first().map(|p| p.t), hw.first().map(|p| p.t))
                };
                let take_float = match (ft, ht) {
                    (Some(_), None) => true,
                    (Some(a), Some(b)) => (last && b < a) || (!last && a < b),
                    _ => false,
                };
                if take_float {
                    float_out(f(&win, ev)?);
                } else {
                    let p = if last { hw.last() } else { hw.first() };
                    if let Some(p) = p {
                        hpts.push(HPoint {
                            t: ts,
                            h: p.h.clone(),
                        });
                    }
                }
            }
            "resets" | "changes" => float_out(Some(resets_or_changes(
                fw,
                hw,
                (fst, hst),
                name == "resets",
            ))),
            _ => {
                if fw.is_empty() {
                    continue;
                }
                if !hw.is_empty() {
                    notes.ignored_in_mixed_range();
                }
                float_out(f(&win, ev)?);
            }
        }
    }
    ev.sh.counters.queryable(queryable);
    if pts.is_empty() && hpts.is_empty() {
        return Ok(None);
    }
    Ok(Some(Series {
        labels: s.labels.clone(),
        drop_name: drop_name || s.drop_name,
        points: pts,
        hpoints: hpts,
        sts: Vec::new(),
    }))
}

enum Point {
    F(f64),
    H(FloatHistogram),
}

/// `resets` or `changes` over both kinds in time order; a change of kind counts as one.
fn resets_or_changes(fw: &[Sample], hw: &[HPoint], sts: (&[i64], &[i64]), resets: bool) -> f64 {
    let (mut i, mut j) = (0, 0);
    let mut prev: Option<Result2> = None;
    // (time, start time) of the previous sample, for resets told by start timestamps.
    let mut prev_st: (i64, i64) = (0, 0);
    let st_at = |s: &[i64], k: usize| s.get(k).copied().unwrap_or(0);
    let mut n = 0.0;
    #[derive(Clone)]
    enum Result2 {
        F(f64),
        H(Arc<FloatHistogram>),
    }
    while i < fw.len() || j < hw.len() {
        let (cur, cur_st) = if j >= hw.len() || (i < fw.len() && fw[i].t < hw[j].t) {
            i += 1;
            (Result2::F(fw[i - 1].v), (fw[i - 1].t, st_at(sts.0, i - 1)))
        } else {
            j += 1;
            (
                Result2::H(hw[j - 1].h.clone()),
                (hw[j - 1].t, st_at(sts.1, j - 1)),
            )
        };
        if let Some(p) = &prev {
            let st_reset = resets && is_st_reset(prev_st.1, prev_st.0, cur_st.1, cur_st.0);
            let counted = match (p, &cur) {
                (Result2::F(a), Result2::F(b)) => {
                    if resets {
                        b < a || st_reset
                    } else {
                        !(a == b || (a.is_nan() && b.is_nan()))
                    }
                }
                (Result2::H(a), Result2::H(b)) => {
                    if resets {
                        st_reset || b.detect_reset(a)
                    } else {
                        !b.equals(a)
                    }
                }
                _ => true,
            };
            if counted {
                n += 1.0;
            }
        }
        prev = Some(cur);
        prev_st = cur_st;
    }
    n
}

/// `irate`/`idelta` from the last two samples of either kind.
fn instant_value(
    fw: &[Sample],
    hw: &[HPoint],
    sts: (&[i64], &[i64]),
    is_rate: bool,
    notes: &Notes,
) -> Option<Point> {
    if fw.len() + hw.len() < 2 {
        return None;
    }
    // The last two samples in time order, with their start times.
    type Cand<'a> = (i64, Option<f64>, Option<&'a Arc<FloatHistogram>>, i64);
    let f0 = fw.len().saturating_sub(2);
    let h0 = hw.len().saturating_sub(2);
    let mut cand: Vec<Cand> = fw[f0..]
        .iter()
        .enumerate()
        .map(|(k, p)| {
            (
                p.t,
                Some(p.v),
                None,
                sts.0.get(f0 + k).copied().unwrap_or(0),
            )
        })
        .collect();
    cand.extend(hw[h0..].iter().enumerate().map(|(k, p)| {
        (
            p.t,
            None,
            Some(&p.h),
            sts.1.get(h0 + k).copied().unwrap_or(0),
        )
    }));
    cand.sort_by_key(|c| c.0);
    let (a, b) = (&cand[cand.len() - 2], &cand[cand.len() - 1]);
    let dt = b.0 - a.0;
    if dt == 0 {
        return None;
    }
    let st_reset = is_st_reset(a.3, a.0, b.3, b.0);
    let secs = dt as f64 / 1000.0;
    match (a, b) {
        ((_, Some(x), _, _), (_, Some(y), _, _)) => {
            let mut v = if is_rate && (y < x || st_reset) {
                *y
            } else {
                y - x
            };
            if is_rate {
                v /= secs;
            }
            Some(Point::F(v))
        }
        ((_, _, Some(x), _), (_, _, Some(y), _)) => {
            let mut r = FloatHistogram::clone(y);
            if is_rate
                && (y.counter_reset_hint == CounterResetHint::Gauge
                    || x.counter_reset_hint == CounterResetHint::Gauge)
            {
                notes.not_counter();
            }
            if !is_rate
                && (y.counter_reset_hint != CounterResetHint::Gauge
                    || x.counter_reset_hint != CounterResetHint::Gauge)
            {
                notes.not_gauge();
            }
            if !is_rate || (!st_reset && !y.detect_reset(x)) {
                match r.sub(x) {
                    Err(_) => {
                        notes.mixed_exponential_custom();
                        return None;
                    }
                    Ok(o) if o.nhcb_bounds_reconciled => notes.mismatched_custom("subtraction"),
                    Ok(_) => {}
                }
            }
            r.counter_reset_hint = CounterResetHint::Gauge;
            r.compact(0);
            if is_rate {
                r.div(secs);
            }
            Some(Point::H(r))
        }
        _ => {
            notes.mixed_floats_histograms();
            None
        }
    }
}

/// `rate`, `increase` or `delta` of a window of histograms (Prometheus' `histogramRate`
/// followed by `extrapolatedRate`'s extrapolation).
#[allow(clippy::too_many_arguments)]
fn histogram_rate(
    hw: &[HPoint],
    sts: &[i64],
    is_counter: bool,
    is_rate: bool,
    range_start: i64,
    range_end: i64,
    range: i64,
    notes: &Notes,
) -> Option<FloatHistogram> {
    if hw.is_empty() || (hw.len() < 2 && sts.is_empty()) {
        return None;
    }
    let st_reset =
        |i: usize| i + 1 < sts.len() && is_st_reset(sts[i], hw[i].t, sts[i + 1], hw[i + 1].t);
    let first_t = hw[0].t;
    let last_t = hw[hw.len() - 1].t;
    let n1 = (hw.len() - 1) as f64;
    let st0 = sts.first().copied().unwrap_or(0);
    let zero_at_st = is_counter && st0 != 0 && st0 > range_start && st0 < first_t;
    if hw.len() < 2 {
        // One sample, counted from a zero at its start time.
        if !zero_at_st {
            return None;
        }
        let mut h = FloatHistogram::clone(&hw[0].h);
        if is_rate {
            h.mul(1.0 / (range as f64 / 1000.0));
        }
        return Some(h);
    }
    let first = &hw[0].h;
    let last = &hw[hw.len() - 1].h;
    if is_counter
        && (first.counter_reset_hint == CounterResetHint::Gauge
            || last.counter_reset_hint == CounterResetHint::Gauge)
    {
        notes.not_counter();
    }
    let mut prev: Arc<FloatHistogram> = first.clone();
    let mut custom = prev.uses_custom_buckets();
    if is_counter && (st_reset(0) || hw[1].h.detect_reset(&prev)) {
        let second = &hw[1].h;
        prev = Arc::new(FloatHistogram {
            schema: second.schema,
            custom_values: second.custom_values.clone(),
            ..Default::default()
        });
        custom = second.uses_custom_buckets();
    }
    if last.uses_custom_buckets() != custom {
        notes.mixed_exponential_custom();
        return None;
    }
    let mut min_schema = last.schema.min(prev.schema);
    for p in &hw[1..hw.len() - 1] {
        if !is_counter {
            continue;
        }
        if p.h.counter_reset_hint == CounterResetHint::Gauge {
            notes.not_counter();
        }
        min_schema = min_schema.min(p.h.schema);
        if p.h.uses_custom_buckets() != custom {
            notes.mixed_exponential_custom();
            return None;
        }
    }
    let mut h = last.copy_to_schema(min_schema);
    match h.sub(&prev) {
        Err(HistogramError::IncompatibleSchema) => {
            notes.mixed_exponential_custom();
            return None;
        }
        Err(_) => return None,
        Ok(o) if o.nhcb_bounds_reconciled => notes.mismatched_custom("subtraction"),
        Ok(_) => {}
    }
    if is_counter {
        if (1..hw.len()).any(|i| i < sts.len() && st_overlaps(sts[i - 1], hw[i - 1].t, sts[i])) {
            warn_st_overlap(notes.ev, notes.metric);
        }
        for (i, p) in hw[1..].iter().enumerate() {
            let cur = &p.h;
            if st_reset(i) || cur.detect_reset(&prev) {
                match h.add(&prev) {
                    Err(HistogramError::IncompatibleSchema) => {
                        notes.mixed_exponential_custom();
                        return None;
                    }
                    Err(_) => return None,
                    Ok(o) if o.nhcb_bounds_reconciled => notes.mismatched_custom("addition"),
                    Ok(_) => {}
                }
            }
            prev = cur.clone();
        }
    } else if first.counter_reset_hint != CounterResetHint::Gauge
        || last.counter_reset_hint != CounterResetHint::Gauge
    {
        notes.not_gauge();
    }
    h.counter_reset_hint = CounterResetHint::Gauge;
    h.compact(0);

    // Extrapolation, as for floats.
    let mut to_start = (first_t - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last_t) as f64 / 1000.0;
    let mut sampled = (last_t - first_t) as f64 / 1000.0;
    let avg_between = sampled / n1;
    let threshold = avg_between * 1.1;
    if zero_at_st {
        // A zero-valued sample at the first sample's start time, instead of extrapolating.
        to_start = 0.0;
        sampled = (last_t - st0) as f64 / 1000.0;
        match h.add(&hw[0].h) {
            Err(HistogramError::IncompatibleSchema) => {
                notes.mixed_exponential_custom();
                return None;
            }
            Err(_) => return None,
            Ok(o) if o.nhcb_bounds_reconciled => notes.mismatched_custom("addition"),
            Ok(_) => {}
        }
    } else {
        if to_start >= threshold {
            to_start = avg_between / 2.0;
        }
        if is_counter && h.count > 0.0 && hw[0].h.count >= 0.0 {
            let to_zero = sampled * (hw[0].h.count / h.count);
            if to_zero < to_start {
                to_start = to_zero;
            }
        }
    }
    if to_end >= threshold {
        to_end = avg_between / 2.0;
    }
    let mut factor = 1.0;
    if sampled != 0.0 {
        factor = (sampled + to_start + to_end) / sampled;
    }
    if is_rate {
        factor /= range as f64 / 1000.0;
    }
    h.mul(factor);
    Some(h)
}

/// `sum_over_time` / `avg_over_time` of histograms, compensated as Prometheus does.
fn sum_or_avg(hw: &[HPoint], avg: bool, notes: &Notes) -> Option<FloatHistogram> {
    let (mut reset_seen, mut not_reset_seen, mut reconciled) = (false, false, false);
    let mut track = |h: &FloatHistogram| match h.counter_reset_hint {
        CounterResetHint::CounterReset => reset_seen = true,
        CounterResetHint::NotCounterReset => not_reset_seen = true,
        _ => {}
    };
    let mut sum = (*hw[0].h).clone();
    track(&sum);
    let mut comp: Option<FloatHistogram> = None;
    let mut mean: Option<FloatHistogram> = None;
    let mut failed = false;
    for (i, p) in hw[1..].iter().enumerate() {
        track(&p.h);
        let count = (i + 2) as f64;
        if mean.is_none() {
            let mut next = sum.clone();
            let mut next_comp = comp.clone();
            match next.kahan_add(&p.h, &mut next_comp) {
                Err(_) => {
                    failed = true;
                    break;
                }
                Ok(o) => reconciled |= o.nhcb_bounds_reconciled,
            }
            if !avg || !next.has_overflow() {
                sum = next;
                comp = next_comp;
                continue;
            }
            let mut m = sum.clone();
            m.div(count - 1.0);
            if let Some(c) = comp.as_mut() {
                c.div(count - 1.0);
            }
            mean = Some(m);
        }
        let q = (count - 1.0) / count;
        if let Some(c) = comp.as_mut() {
            c.mul(q);
        }
        let mut to_add = (*p.h).clone();
        to_add.div(count);
        let m = mean.as_mut().expect("incremental mean");
        m.mul(q);
        match m.kahan_add(&to_add, &mut comp) {
            Err(_) => {
                failed = true;
                break;
            }
            Ok(o) => reconciled |= o.nhcb_bounds_reconciled,
        }
    }
    if reset_seen && not_reset_seen {
        notes.counter_reset_collision("aggregation");
    }
    if reconciled {
        notes.mismatched_custom("aggregation");
    }
    if failed {
        notes.mixed_exponential_custom();
        return None;
    }
    let n = hw.len() as f64;
    let out = match mean {
        Some(mut m) => {
            m.kahan_finish(comp);
            m
        }
        None if avg => {
            sum.div(n);
            if let Some(c) = comp.as_mut() {
                c.div(n);
            }
            sum.kahan_finish(comp);
            sum
        }
        None => {
            sum.kahan_finish(comp);
            sum
        }
    };
    Some(out)
}
