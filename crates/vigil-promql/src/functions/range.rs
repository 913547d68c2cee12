//! Functions over range vectors (`rate`, `*_over_time`, …).
//!
//! The source (a matrix selector read once over the whole query range, or a subquery's
//! result) is walked series by series; for each series a window `(end - range, end]` slides
//! over its samples with two cursors, so no per-step matrix is ever built and memory stays
//! at one series' samples plus the output. Semantics follow Prometheus' `functions.go`,
//! including `extrapolatedRate`'s extrapolation and counter-reset handling.

use super::{Mean, absent_labels, format_float, kahan_sum_inc, quantile};
use crate::engine::eval::{Ev, Result, Series, Val, exec_err, unwrap_parens};
use vigil_model::{METRIC_NAME, Sample};
use vigil_promql_parser::Expr;

/// One window of one series at one step.
pub(super) struct Win<'a> {
    pub s: &'a [Sample],
    /// For `rate` and `increase`: where the counter resets inside the window, so the
    /// correction sums only those instead of scanning every sample. The indices (increasing)
    /// are of the series' samples lower than the one before them; the window's first sample
    /// is the series' sample number `.1`.
    pub resets: Option<(&'a [u32], usize)>,
    pub range: i64,
    pub end: i64,
    pub ts: i64,
    pub args: &'a [f64],
    /// The start timestamps of `s`, aligned with it (0: none); empty when the series has
    /// none or the engine does not read them.
    pub sts: &'a [i64],
    /// The series' metric name, for annotations.
    pub metric: &'a str,
    /// The step's entry of a cache of what `rate` and friends compute from a window's times
    /// alone (the series of a target share their timestamps, so consecutive series meet the
    /// same windows at the same step); `None` where nothing is cached.
    pub times: Option<&'a std::cell::Cell<(TimeKey, TimeFigures)>>,
}

/// Whether a start timestamp says the counter restarted between two samples (Prometheus'
/// `isStartTimestampReset`): the current sample's start lies after the previous sample, or
/// at it while the previous sample's own start was known (a delta).
pub(crate) fn is_st_reset(prev_st: i64, prev_t: i64, cur_st: i64, cur_t: i64) -> bool {
    if cur_st == 0 || cur_st >= cur_t || cur_st < prev_t {
        return false;
    }
    if cur_st > prev_t {
        return true;
    }
    if prev_st > prev_t {
        return false;
    }
    prev_st != 0 && prev_st != prev_t
}

/// Whether a sample's start overlaps the previous sample (Prometheus' `checkStartTimeOverlap`).
pub(crate) fn st_overlaps(prev_st: i64, prev_t: i64, cur_st: i64) -> bool {
    cur_st != 0 && cur_st < prev_t && cur_st != prev_st
}

/// Prometheus' warning for [`st_overlaps`].
pub(crate) fn warn_st_overlap(ev: &Ev, metric: &str) {
    ev.sh.warn(format!(
        "PromQL warning: sample has start time that overlaps with previous sample timestamp for metric {metric:?}"
    ));
}

/// The start timestamps `sts` (sparse, by time) aligned with `times` (0 where none).
pub(crate) fn align_sts(times: impl Iterator<Item = i64>, sts: &[(i64, i64)]) -> Vec<i64> {
    let mut k = 0;
    times
        .map(|t| {
            while k < sts.len() && sts[k].0 < t {
                k += 1;
            }
            if k < sts.len() && sts[k].0 == t {
                sts[k].1
            } else {
                0
            }
        })
        .collect()
}

pub(super) type RangeFn = fn(&Win, &Ev) -> Result<Option<f64>>;

fn is_range_arg(e: &Expr) -> bool {
    matches!(
        unwrap_parens(e),
        Expr::MatrixSelector(_) | Expr::Subquery(_)
    )
}

pub(super) fn eval_range_call(ev: &Ev, name: &str, args: &[&Expr]) -> Result<Val> {
    let mut out = Vec::new();
    if let Some(absent) = eval_range_call_each(ev, name, args, &mut |s| {
        out.push(s);
        Ok(())
    })? {
        return Ok(Val::Vector(absent));
    }
    Ok(Val::Vector(out))
}

/// Evaluates a function over a range vector and hands each output series to `emit` as soon
/// as it is computed, so a caller that folds them (an aggregation) never holds them all.
/// `absent_over_time` has one output known only at the end: it is returned instead.
pub(crate) fn eval_range_call_each(
    ev: &Ev,
    name: &str,
    args: &[&Expr],
    emit: &mut dyn FnMut(Series) -> Result<()>,
) -> Result<Option<Vec<Series>>> {
    let Some(mi) = args.iter().position(|a| is_range_arg(a)) else {
        return Err(exec_err("expected a range vector argument"));
    };
    let mut scalars: Vec<Vec<f64>> = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i != mi {
            scalars.push(ev.eval_scalar(a)?);
        }
    }
    if let Expr::MatrixSelector(ms) = unwrap_parens(args[mi])
        && super::extended::is_extended(&ms.vs)
    {
        let src = ev.range_source(args[mi])?;
        super::extended::eval_call_each(ev, name, &src, &ms.vs, emit)?;
        return Ok(None);
    }
    let f: Option<RangeFn> = range_fn(name);
    if f.is_none() && name != "absent_over_time" {
        return Err(exec_err(format!("function {name}() is not supported")));
    }
    let src = ev.range_source(args[mi])?;
    let steps = ev.steps();
    // Like `offset`, these select a sample and keep the metric name.
    let drop_name = name != "last_over_time" && name != "first_over_time";
    let mut present = vec![false; if f.is_none() { steps } else { 0 }];
    let mut sargs = vec![0.0; scalars.len()];
    let counts_resets = name == "rate" || name == "increase";
    // Folds whose windows are taken two at a time (see `fold2`), and one at a time for a
    // window left without a partner.
    type Pair = fn(&[Sample], &[Sample]) -> (f64, f64);
    type One = fn(&[Sample]) -> f64;
    let pair: Option<(Pair, One)> = match name {
        "avg_over_time" => Some((fold2::<Mean>, fold::<Mean>)),
        "sum_over_time" => Some((fold2::<SumFold>, fold::<SumFold>)),
        _ => None,
    };
    // A window of `pair` waiting for the next one: (step time, lo, hi).
    let mut pending: Option<(i64, usize, usize)> = None;
    // Indices of the samples lower than their predecessor: counter resets.
    let mut resets: Vec<u32> = Vec::new();
    // `max_over_time`/`min_over_time`: the window's extreme kept across steps.
    let mut extreme = match name {
        "max_over_time" => Some(Extreme::new(true)),
        "min_over_time" => Some(Extreme::new(false)),
        _ => None,
    };
    // One entry per step, reused from series to series (see `Win::times`).
    let times: Vec<std::cell::Cell<(TimeKey, TimeFigures)>> = if is_extrapolated(name) {
        vec![Default::default(); steps]
    } else {
        Vec::new()
    };
    src.for_each(ev, |s| {
        ev.check()?;
        if !s.hpoints.is_empty() {
            let out = super::hrange::eval_series(
                ev,
                name,
                f,
                &src,
                s,
                &scalars,
                drop_name,
                &mut present,
            )?;
            let Some(out) = out else { return Ok(()) };
            if counts_resets && !out.points.is_empty() {
                possible_non_counter(ev, &s.labels);
            }
            let n = out.points.len()
                + out
                    .hpoints
                    .iter()
                    .map(|h| crate::engine::eval::histogram_size(&h.h))
                    .sum::<usize>();
            ev.sh.add_samples(n)?;
            return emit(out);
        }
        let n = s.points.len();
        if let Some(x) = extreme.as_mut() {
            x.reset();
        }
        let sts = if s.sts.is_empty() {
            Vec::new()
        } else {
            align_sts(s.points.iter().map(|p| p.t), &s.sts)
        };
        let metric = s.labels.get(METRIC_NAME).unwrap_or("");
        if counts_resets {
            resets.clear();
            for (i, w) in s.points.windows(2).enumerate() {
                let st_reset = !sts.is_empty() && is_st_reset(sts[i], w[0].t, sts[i + 1], w[1].t);
                if w[1].v < w[0].v || st_reset {
                    resets.push(i as u32 + 1);
                }
            }
        }
        // The resets inside the current window: resets[r0..r1].
        let (mut r0, mut r1) = (0usize, 0usize);
        let (mut lo, mut hi) = (0usize, 0usize);
        let mut pts = Vec::new();
        // Counted here and added once per series: an atomic shared by the threads of a
        // range query, added to at every step, cost a fifth of a 24 h `rate` query.
        let mut queryable = 0usize;
        #[allow(clippy::needless_range_loop)]
        for i in 0..steps {
            let ts = ev.ts(i);
            let end = src.window_end(ts);
            let start = end - src.range;
            while hi < n && s.points[hi].t <= end {
                hi += 1;
            }
            while lo < hi && s.points[lo].t <= start {
                lo += 1;
            }
            if lo >= hi {
                continue;
            }
            queryable += hi - lo;
            let Some(f) = f else {
                present[i] = true;
                continue;
            };
            if let Some(x) = extreme.as_mut() {
                pts.push(Sample {
                    t: ts,
                    v: x.window(&s.points, lo, hi),
                });
                continue;
            }
            if let Some((pair, _)) = pair {
                match pending.take() {
                    None => pending = Some((ts, lo, hi)),
                    Some((t0, lo0, hi0)) => {
                        let (a, b) = pair(&s.points[lo0..hi0], &s.points[lo..hi]);
                        pts.push(Sample { t: t0, v: a });
                        pts.push(Sample { t: ts, v: b });
                    }
                }
                continue;
            }
            for (k, sc) in scalars.iter().enumerate() {
                sargs[k] = sc.get(i).copied().unwrap_or(f64::NAN);
            }
            if counts_resets {
                // Resets at indices lo+1 ..= hi-1; both ends only move forward.
                while r1 < resets.len() && (resets[r1] as usize) < hi {
                    r1 += 1;
                }
                while r0 < r1 && (resets[r0] as usize) <= lo {
                    r0 += 1;
                }
            }
            let w = Win {
                times: times.get(i),
                sts: sts.get(lo..hi).unwrap_or(&[]),
                metric,
                s: &s.points[lo..hi],
                resets: counts_resets.then_some((&resets[r0..r1], lo)),
                range: src.range,
                end,
                ts,
                args: &sargs,
            };
            if let Some(v) = f(&w, ev)? {
                pts.push(Sample { t: ts, v });
            }
        }
        ev.sh.counters.queryable(queryable);
        if let (Some((t0, lo0, hi0)), Some((_, one))) = (pending.take(), pair) {
            pts.push(Sample {
                t: t0,
                v: one(&s.points[lo0..hi0]),
            });
        }
        if pts.is_empty() {
            return Ok(());
        }
        if counts_resets {
            possible_non_counter(ev, &s.labels);
        }
        ev.sh.add_samples(pts.len())?;
        emit(Series {
            hpoints: Vec::new(),
            labels: s.labels.clone(),
            drop_name: drop_name || s.drop_name,
            points: pts,
            sts: Vec::new(),
        })
    })?;
    if f.is_none() {
        // absent_over_time: one series, at the steps where no series had samples.
        let points: Vec<Sample> = (0..steps)
            .filter(|&i| !present[i])
            .map(|i| Sample {
                t: ev.ts(i),
                v: 1.0,
            })
            .collect();
        if points.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let labels = match src.selector {
            Some(_) => absent_labels(unwrap_parens(args[mi])),
            None => vigil_model::Labels::empty(),
        };
        return Ok(Some(vec![Series {
            hpoints: Vec::new(),
            labels,
            drop_name: true,
            points,
            sts: Vec::new(),
        }]));
    }
    Ok(None)
}

/// Prometheus' info for `rate`/`increase` of a float series whose name does not say counter.
fn possible_non_counter(ev: &Ev, labels: &vigil_model::Labels) {
    let metric = labels.get(METRIC_NAME).unwrap_or("");
    if !metric.is_empty()
        && !["_total", "_sum", "_count", "_bucket"]
            .iter()
            .any(|x| metric.ends_with(x))
    {
        ev.sh.info(format!(
            "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {metric:?}"
        ));
    }
}

fn range_fn(name: &str) -> Option<RangeFn> {
    Some(match name {
        "rate" => |w, ev| Ok(extrapolated(w, true, true, ev)),
        "increase" => |w, ev| Ok(extrapolated(w, true, false, ev)),
        "delta" => |w, ev| Ok(extrapolated(w, false, false, ev)),
        "irate" => |w, _| Ok(instant_value(w, true)),
        "idelta" => |w, _| Ok(instant_value(w, false)),
        "deriv" => |w, _| {
            if w.s.len() < 2 {
                return Ok(None);
            }
            Ok(Some(linear_regression(w.s, w.s[0].t).0))
        },
        "predict_linear" => |w, _| {
            if w.s.len() < 2 {
                return Ok(None);
            }
            let (slope, intercept) = linear_regression(w.s, w.ts);
            Ok(Some(slope * w.args[0] + intercept))
        },
        "double_exponential_smoothing" | "holt_winters" => |w, _| {
            let (sf, tf) = (w.args[0], w.args[1]);
            if sf <= 0.0 || sf >= 1.0 || sf.is_nan() {
                return Err(exec_err(format!(
                    "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
                )));
            }
            if tf <= 0.0 || tf >= 1.0 || tf.is_nan() {
                return Err(exec_err(format!(
                    "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
                )));
            }
            Ok(smoothing(w.s, sf, tf))
        },
        "changes" => |w, _| {
            let mut c = 0.0;
            for p in w.s.windows(2) {
                let (prev, cur) = (p[0].v, p[1].v);
                if !(cur == prev || (cur.is_nan() && prev.is_nan())) {
                    c += 1.0;
                }
            }
            Ok(Some(c))
        },
        "resets" => |w, _| {
            let st_reset = |i: usize| {
                !w.sts.is_empty() && is_st_reset(w.sts[i], w.s[i].t, w.sts[i + 1], w.s[i + 1].t)
            };
            Ok(Some(
                w.s.windows(2)
                    .enumerate()
                    .filter(|(i, p)| p[1].v < p[0].v || st_reset(*i))
                    .count() as f64,
            ))
        },
        "avg_over_time" => |w, _| Ok(Some(fold::<Mean>(w.s))),
        "min_over_time" => |w, _| {
            let mut m = w.s[0].v;
            for p in &w.s[1..] {
                if p.v < m || m.is_nan() {
                    m = p.v;
                }
            }
            Ok(Some(m))
        },
        "max_over_time" => |w, _| {
            let mut m = w.s[0].v;
            for p in &w.s[1..] {
                if p.v > m || m.is_nan() {
                    m = p.v;
                }
            }
            Ok(Some(m))
        },
        "sum_over_time" => |w, _| Ok(Some(fold::<SumFold>(w.s))),
        "count_over_time" => |w, _| Ok(Some(w.s.len() as f64)),
        "last_over_time" => |w, _| Ok(w.s.last().map(|p| p.v)),
        "ts_of_first_over_time" => |w, _| Ok(w.s.first().map(|p| p.t as f64 / 1000.0)),
        "ts_of_last_over_time" => |w, _| Ok(w.s.last().map(|p| p.t as f64 / 1000.0)),
        // The last sample holding the extreme (`>=`/`<=`, as Prometheus compares); NaN loses.
        "ts_of_max_over_time" => |w, _| Ok(Some(ts_of_extreme(w.s, |c, m| c >= m))),
        "ts_of_min_over_time" => |w, _| Ok(Some(ts_of_extreme(w.s, |c, m| c <= m))),
        "first_over_time" => |w, _| Ok(w.s.first().map(|p| p.v)),
        "present_over_time" => |_, _| Ok(Some(1.0)),
        "quantile_over_time" => |w, ev| {
            let q = w.args[0];
            if q.is_nan() || !(0.0..=1.0).contains(&q) {
                ev.sh.warn(format!(
                    "PromQL warning: quantile value should be between 0 and 1, got {}",
                    format_float(q)
                ));
            }
            let mut vals: Vec<f64> = w.s.iter().map(|p| p.v).collect();
            Ok(Some(quantile(q, &mut vals)))
        },
        "stdvar_over_time" => |w, _| Ok(Some(variance(w.s))),
        "stddev_over_time" => |w, _| Ok(Some(variance(w.s).sqrt())),
        "mad_over_time" => |w, _| {
            if w.s.iter().any(|p| p.v.is_nan()) {
                return Ok(Some(f64::NAN));
            }
            let mut vals: Vec<f64> = w.s.iter().map(|p| p.v).collect();
            let median = quantile(0.5, &mut vals);
            let mut dev: Vec<f64> = w.s.iter().map(|p| (p.v - median).abs()).collect();
            Ok(Some(quantile(0.5, &mut dev)))
        },
        _ => return None,
    })
}

/// The time (in seconds) of the sample `better` keeps choosing, a NaN being replaced by any
/// value: Prometheus' `compareOverTime` with `returnTimestamp`.
fn ts_of_extreme(s: &[Sample], better: fn(f64, f64) -> bool) -> f64 {
    let (mut m, mut t) = (s[0].v, s[0].t);
    for p in s {
        if better(p.v, m) || m.is_nan() {
            m = p.v;
            t = p.t;
        }
    }
    t as f64 / 1000.0
}

/// Prometheus' `extrapolatedRate` for floats. With start timestamps, a start after the
/// previous sample is a reset, and a first sample whose start lies inside the range counts
/// from a zero at its start instead of being extrapolated to the left (so one sample can be
/// enough).
fn extrapolated(w: &Win, is_counter: bool, is_rate: bool, ev: &Ev) -> Option<f64> {
    let s = w.s;
    let sts = w.sts;
    if s.is_empty() || (s.len() < 2 && sts.is_empty()) {
        return None;
    }
    let range_start = w.end - w.range;
    let range_end = w.end;
    let n1 = s.len() - 1;
    let first_t = s[0].t;
    let last_t = s[n1].t;
    let mut result = s[n1].v - s[0].v;
    if is_counter {
        match w.resets {
            // In order, as Prometheus adds them while scanning: the same sum to the bit.
            Some((at, first)) => at
                .iter()
                .for_each(|&i| result += s[i as usize - first - 1].v),
            None => {
                let mut prev = s[0].v;
                for (i, p) in s[1..].iter().enumerate() {
                    let st_reset = !sts.is_empty() && is_st_reset(sts[i], s[i].t, sts[i + 1], p.t);
                    if p.v < prev || st_reset {
                        result += prev;
                    }
                    prev = p.v;
                }
            }
        }
        if !sts.is_empty() && (1..s.len()).any(|i| st_overlaps(sts[i - 1], s[i - 1].t, sts[i])) {
            warn_st_overlap(ev, w.metric);
        }
    }
    let st0 = sts.first().copied().unwrap_or(0);
    if is_counter && st0 != 0 && st0 > range_start && st0 < first_t {
        // A zero-valued sample at the start time, instead of extrapolating to the left.
        let avg_between = if n1 > 0 {
            (last_t - first_t) as f64 / 1000.0 / n1 as f64
        } else {
            0.0
        };
        let mut to_end = (range_end - last_t) as f64 / 1000.0;
        if to_end >= avg_between * 1.1 {
            to_end = avg_between / 2.0;
        }
        let sampled = (last_t - st0) as f64 / 1000.0;
        result += s[0].v;
        let mut factor = if sampled != 0.0 {
            (sampled + to_end) / sampled
        } else {
            1.0
        };
        if is_rate {
            factor /= w.range as f64 / 1000.0;
        }
        return Some(result * factor);
    }
    if n1 == 0 {
        return None;
    }
    // What depends on the window's times alone is looked up (the series of a target share
    // their timestamps, so each window's figures repeat across them); only the extrapolation
    // towards zero depends on the values.
    let key = TimeKey {
        first_t,
        last_t,
        n1,
        end: w.end,
        range: w.range,
        is_rate,
    };
    let t = time_figures(key, w.times);
    // Whether the counter would reach zero within the extrapolated start: decided by products
    // first, with a margin far above their rounding, so that the division runs only near the
    // limit (counters that started lately).
    let far_from_zero = s[0].v * t.sampled >= t.to_start * result * (1.0 + 1e-9);
    if is_counter && result > 0.0 && s[0].v >= 0.0 && t.sampled != 0.0 && !far_from_zero {
        let to_zero = t.sampled * (s[0].v / result);
        if to_zero < t.to_start {
            let mut factor = (t.sampled + to_zero + t.to_end) / t.sampled;
            if is_rate {
                factor /= w.range as f64 / 1000.0;
            }
            return Some(result * factor);
        }
    }
    Some(result * t.factor)
}

/// The largest (or smallest) value of a window that slides forward, in amortized constant
/// time per step instead of a scan of the window at every step (a `max_over_time(x[1h])` at a
/// 1-minute step reads every sample 60 times). A monotonic queue of sample indices: a new
/// sample removes the queued ones it would have replaced in Prometheus' scan (`v > m ||
/// m is NaN` for max), so the front is the value that scan ends with, to the bit (the first of
/// equal values; NaN only when the window holds nothing else, the last NaN then).
struct Extreme {
    queue: std::collections::VecDeque<u32>,
    /// The next sample index to enqueue.
    pushed: usize,
    max: bool,
}

impl Extreme {
    fn new(max: bool) -> Extreme {
        Extreme {
            queue: std::collections::VecDeque::new(),
            pushed: 0,
            max,
        }
    }

    fn reset(&mut self) {
        self.queue.clear();
        self.pushed = 0;
    }

    /// Whether `new` replaces `old` as the running extreme (Prometheus' comparison).
    #[inline]
    fn replaces(&self, new: f64, old: f64) -> bool {
        old.is_nan() || if self.max { new > old } else { new < old }
    }

    /// The extreme of `s[lo..hi]`; `lo` and `hi` never decrease from one call to the next,
    /// and `lo < hi`.
    fn window(&mut self, s: &[Sample], lo: usize, hi: usize) -> f64 {
        while self.pushed < hi {
            let v = s[self.pushed].v;
            while let Some(&b) = self.queue.back() {
                if self.replaces(v, s[b as usize].v) {
                    self.queue.pop_back();
                } else {
                    break;
                }
            }
            self.queue.push_back(self.pushed as u32);
            self.pushed += 1;
        }
        while let Some(&f) = self.queue.front() {
            if (f as usize) < lo {
                self.queue.pop_front();
            } else {
                break;
            }
        }
        self.queue.front().map_or(f64::NAN, |&f| s[f as usize].v)
    }
}

/// Whether `name` extrapolates its windows (and so uses [`Win::times`]).
fn is_extrapolated(name: &str) -> bool {
    matches!(name, "rate" | "increase" | "delta")
}

/// What the extrapolation of a window takes from its times alone.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct TimeKey {
    first_t: i64,
    last_t: i64,
    n1: usize,
    end: i64,
    range: i64,
    is_rate: bool,
}

#[derive(Clone, Copy, Default)]
pub(super) struct TimeFigures {
    /// Seconds extrapolated before the first sample (capped), before any cap at zero.
    to_start: f64,
    to_end: f64,
    sampled: f64,
    /// The factor when the start is not capped at the counter's zero.
    factor: f64,
}

/// The figures of [`extrapolated`] computed from a window's times, in the same operations in
/// the same order (so the result is the same to the bit); `n1 > 0`.
fn time_figures(
    k: TimeKey,
    cache: Option<&std::cell::Cell<(TimeKey, TimeFigures)>>,
) -> TimeFigures {
    if let Some(c) = cache {
        let (ck, f) = c.get();
        if ck == k {
            return f;
        }
    }
    let range_start = k.end - k.range;
    let mut to_start = (k.first_t - range_start) as f64 / 1000.0;
    let mut to_end = (k.end - k.last_t) as f64 / 1000.0;
    let sampled = (k.last_t - k.first_t) as f64 / 1000.0;
    let avg_between = sampled / k.n1 as f64;
    let threshold = avg_between * 1.1;
    if to_start >= threshold {
        to_start = avg_between / 2.0;
    }
    if to_end >= threshold {
        to_end = avg_between / 2.0;
    }
    let mut factor = if sampled != 0.0 {
        (sampled + to_start + to_end) / sampled
    } else {
        1.0
    };
    if k.is_rate {
        factor /= k.range as f64 / 1000.0;
    }
    let f = TimeFigures {
        to_start,
        to_end,
        sampled,
        factor,
    };
    if let Some(c) = cache {
        c.set((k, f));
    }
    f
}

fn instant_value(w: &Win, is_rate: bool) -> Option<f64> {
    let s = w.s;
    if s.len() < 2 {
        return None;
    }
    let (prev, last) = (s[s.len() - 2], s[s.len() - 1]);
    let n = s.len();
    let st_reset = w.sts.len() == n && is_st_reset(w.sts[n - 2], prev.t, w.sts[n - 1], last.t);
    let mut v = if is_rate && (last.v < prev.v || st_reset) {
        last.v
    } else {
        last.v - prev.v
    };
    if is_rate {
        let dt = last.t - prev.t;
        if dt == 0 {
            return None;
        }
        v /= dt as f64 / 1000.0;
    }
    Some(v)
}

fn linear_regression(s: &[Sample], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = s[0].v;
    let mut const_y = true;
    for (i, p) in s.iter().enumerate() {
        if const_y && i > 0 && p.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (p.t - intercept_time) as f64 / 1e3;
        (sx, cx) = kahan_sum_inc(x, sx, cx);
        (sy, cy) = kahan_sum_inc(p.v, sy, cy);
        (sxy, cxy) = kahan_sum_inc(x * p.v, sxy, cxy);
        (sx2, cx2) = kahan_sum_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

fn smoothing(s: &[Sample], sf: f64, tf: f64) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0, s[0].v);
    let mut b = s[1].v - s[0].v;
    for (i, p) in s.iter().enumerate().skip(1) {
        let x = sf * p.v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}

/// `avg_over_time`: Kahan sum, switching to an incremental mean on overflow.
/// A fold over a window's values, in order, whose per-value step is a short dependency
/// chain: two windows folded in the same loop overlap on the CPU ([`fold2`]).
trait WindowFold: Default {
    fn add(&mut self, f: f64);
    fn result(&self) -> f64;
    /// The result from a Kahan–Neumaier sum of the window's `n` values that stayed finite:
    /// what `add` and `result` give when nothing overflows (see [`fold`]).
    fn from_finite_sum(sum: f64, c: f64, n: usize) -> f64;
}

impl WindowFold for Mean {
    #[inline(always)]
    fn add(&mut self, f: f64) {
        Mean::add(self, f)
    }

    fn result(&self) -> f64 {
        self.value()
    }

    fn from_finite_sum(sum: f64, c: f64, n: usize) -> f64 {
        (sum + c) / n as f64
    }
}

/// `sum_over_time`: Kahan–Neumaier sum.
#[derive(Default)]
struct SumFold {
    sum: f64,
    c: f64,
}

impl WindowFold for SumFold {
    #[inline(always)]
    fn add(&mut self, f: f64) {
        (self.sum, self.c) = kahan_sum_inc(f, self.sum, self.c);
    }

    fn result(&self) -> f64 {
        if self.sum.is_infinite() {
            self.sum
        } else {
            self.sum + self.c
        }
    }

    fn from_finite_sum(sum: f64, c: f64, _: usize) -> f64 {
        sum + c
    }
}

/// One step of a Kahan–Neumaier sum, as `kahan_sum_inc` while the sum is finite. Without
/// its overflow test the choice of compensation is a select, not a branch, so the loop runs
/// at the speed of its one dependent addition.
#[inline(always)]
fn neumaier(sum: &mut f64, c: &mut f64, f: f64) {
    let t = *sum + f;
    *c += super::neumaier_error(*sum, f, t);
    *sum = t;
}

/// Folds a window: a plain compensated sum first, and only when that overflowed (or met an
/// infinity or NaN: once a sum is not finite it stays so) the fold's own `add`, which switches
/// to its overflow handling at the very sample Prometheus does. Same bits either way.
fn fold<F: WindowFold>(s: &[Sample]) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    s.iter().for_each(|p| neumaier(&mut sum, &mut c, p.v));
    if sum.is_finite() {
        F::from_finite_sum(sum, c, s.len())
    } else {
        fold_exact::<F>(s)
    }
}

fn fold_exact<F: WindowFold>(s: &[Sample]) -> f64 {
    let mut a = F::default();
    s.iter().for_each(|p| a.add(p.v));
    a.result()
}

/// Folds two windows in one loop, each exactly as [`fold`] does (so are the results, to the
/// bit), with the two chains of additions side by side.
fn fold2<F: WindowFold>(x: &[Sample], y: &[Sample]) -> (f64, f64) {
    let (mut xs, mut xc, mut ys, mut yc) = (0.0, 0.0, 0.0, 0.0);
    let n = x.len().min(y.len());
    for (p, q) in x[..n].iter().zip(&y[..n]) {
        neumaier(&mut xs, &mut xc, p.v);
        neumaier(&mut ys, &mut yc, q.v);
    }
    x[n..].iter().for_each(|p| neumaier(&mut xs, &mut xc, p.v));
    y[n..].iter().for_each(|q| neumaier(&mut ys, &mut yc, q.v));
    let finish = |sum: f64, c: f64, s: &[Sample]| {
        if sum.is_finite() {
            F::from_finite_sum(sum, c, s.len())
        } else {
            fold_exact::<F>(s)
        }
    };
    (finish(xs, xc, x), finish(ys, yc, y))
}

fn variance(s: &[Sample]) -> f64 {
    let (mut count, mut mean, mut cmean, mut aux, mut caux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for p in s {
        count += 1.0;
        let delta = p.v - (mean + cmean);
        (mean, cmean) = kahan_sum_inc(delta / count, mean, cmean);
        (aux, caux) = kahan_sum_inc(delta * (p.v - (mean + cmean)), aux, caux);
    }
    (aux + caux) / count
}

#[cfg(test)]
mod fold_tests {
    use super::*;
    use proptest::prelude::*;

    fn samples(v: &[f64]) -> Vec<Sample> {
        v.iter()
            .enumerate()
            .map(|(i, &v)| Sample { t: i as i64, v })
            .collect()
    }

    proptest! {
        /// The fast fold gives what folding sample by sample gives, and two windows folded
        /// side by side what each gives alone, to the bit (including overflow to the
        /// incremental mean, NaN and infinities).
        #[test]
        fn fold2_is_fold_twice(
            x in proptest::collection::vec(prop_oneof![
                any::<f64>(), -1e3f64..1e3, Just(f64::MAX), Just(f64::INFINITY)], 1..60),
            y in proptest::collection::vec(prop_oneof![
                any::<f64>(), -1e3f64..1e3, Just(-f64::MAX)], 1..60),
        ) {
            let (x, y) = (samples(&x), samples(&y));
            prop_assert_eq!(fold::<Mean>(&x).to_bits(), fold_exact::<Mean>(&x).to_bits());
            prop_assert_eq!(fold::<SumFold>(&y).to_bits(), fold_exact::<SumFold>(&y).to_bits());
            let (a, b) = fold2::<Mean>(&x, &y);
            prop_assert_eq!(a.to_bits(), fold::<Mean>(&x).to_bits());
            prop_assert_eq!(b.to_bits(), fold::<Mean>(&y).to_bits());
            let (a, b) = fold2::<SumFold>(&x, &y);
            prop_assert_eq!(a.to_bits(), fold::<SumFold>(&x).to_bits());
            prop_assert_eq!(b.to_bits(), fold::<SumFold>(&y).to_bits());
        }
    }
}
