//! Aggregation operators with `by`/`without`, after Prometheus' `rangeEvalAgg`.
//!
//! `sum`, `avg`, `count`, `min`, `max`, `group`, `stddev` and `stdvar` fold their input
//! series by series into per-group, per-step accumulators, so `sum(rate(x[5m]))` never holds
//! more than one input series. `quantile`, `topk`, `bottomk`, `limitk`, `limit_ratio` and
//! `count_values` need a whole step's values at once: each input series is assigned its group
//! once, then every step gathers the series present at it. Sums use Kahan–Neumaier
//! compensation and `avg` switches to an incremental mean when the sum would overflow,
//! exactly as Prometheus does, so results match to the bit.

use crate::engine::eval::{
    Ev, OutBuilder, PV, Result, Series, StepCursor, Val, exec_err, is_metadata_label, unwrap_parens,
};
use crate::functions::{Mean, format_float, kahan_sum_inc, quantile, valid_label_name};
use std::collections::HashMap;
use vigil_model::histogram::{CounterResetHint, FloatHistogram};
use vigil_model::{Labels, Sample};
use vigil_promql_parser::{AggOp, AggregateExpr, Expr};

struct Grouping {
    without: bool,
    names: Vec<String>,
}

impl Grouping {
    fn labels(&self, l: &Labels) -> Labels {
        let mut b = l.to_builder();
        if self.without {
            b.retain(|x| !self.names.contains(&x.name) && !is_metadata_label(&x.name));
        } else {
            b.retain(|x| self.names.contains(&x.name));
        }
        b.build()
    }
}

pub(crate) fn eval_aggregate(ev: &Ev, a: &AggregateExpr) -> Result<Val> {
    let op = a.op;
    let g = Grouping {
        without: a.without,
        names: a.grouping.clone(),
    };
    if op == AggOp::CountValues {
        let Some(p) = &a.param else {
            return Err(exec_err("count_values needs a label name"));
        };
        let Expr::StringLiteral(s) = unwrap_parens(p) else {
            return Err(exec_err("count_values needs a string parameter"));
        };
        if !valid_label_name(&s.val) || s.invalid_utf8.is_some() {
            let bytes = s.invalid_utf8.as_deref().unwrap_or(s.val.as_bytes());
            return Err(exec_err(format!(
                "invalid label name {}",
                vigil_promql_parser::go_quote_bytes(bytes)
            )));
        }
        let input = ev.eval_vector(&a.expr)?;
        return count_values(ev, &g, &s.val, input).map(Val::Vector);
    }
    let param = match &a.param {
        Some(p) => Some(ev.eval_scalar(p)?),
        None => None,
    };
    let param = param.unwrap_or_default();
    match op {
        AggOp::Topk | AggOp::Bottomk | AggOp::Limitk | AggOp::LimitRatio => {
            let input = ev.eval_vector(&a.expr)?;
            aggregate_k(ev, op, &g, &param, input).map(Val::Vector)
        }
        AggOp::Quantile => {
            let input = ev.eval_vector(&a.expr)?;
            aggregate_quantile(ev, &g, &param, input).map(Val::Vector)
        }
        _ => aggregate(ev, op, &g, &a.expr).map(Val::Vector),
    }
}

/// One group's running aggregate at one step. `avg` is [`Mean`]; the other operations keep
/// their running value in `m.sum` (the sum, min, max, 1 for `group`, or the sum of squared
/// deviations for `stddev`/`stdvar`), with `m.c` (compensation), `m.mean` and `m.count`.
#[derive(Default, Clone, Copy)]
struct Acc {
    seen: bool,
    m: Mean,
}

impl Acc {
    /// The first value of a group at a step.
    fn first(op: AggOp, f: f64) -> Acc {
        let sum = match op {
            AggOp::Stdvar | AggOp::Stddev if f.is_nan() || f.is_infinite() => f64::NAN,
            AggOp::Stdvar | AggOp::Stddev => 0.0,
            AggOp::Group => 1.0,
            _ => f,
        };
        Acc {
            seen: true,
            m: Mean {
                sum,
                mean: f,
                count: 1.0,
                c: 0.0,
                incremental: false,
            },
        }
    }

    /// Folds one more value in, as Prometheus' `aggregation` does.
    fn add(&mut self, op: AggOp, f: f64) {
        let m = &mut self.m;
        match op {
            AggOp::Sum => (m.sum, m.c) = kahan_sum_inc(f, m.sum, m.c),
            AggOp::Avg => m.add(f),
            AggOp::Max if m.sum < f || m.sum.is_nan() => m.sum = f,
            AggOp::Min if m.sum > f || m.sum.is_nan() => m.sum = f,
            AggOp::Count => m.count += 1.0,
            AggOp::Stdvar | AggOp::Stddev => {
                m.count += 1.0;
                let delta = f - m.mean;
                m.mean += delta / m.count;
                m.sum += delta * (f - m.mean);
            }
            _ => {}
        }
    }

    fn result(&self, op: AggOp) -> f64 {
        let m = &self.m;
        match op {
            AggOp::Avg => m.value(),
            AggOp::Count => m.count,
            AggOp::Stdvar => m.sum / m.count,
            AggOp::Stddev => (m.sum / m.count).sqrt(),
            AggOp::Sum => m.sum + m.c,
            _ => m.sum,
        }
    }
}

/// `sum`, `avg`, `count`, `min`, `max`, `group`, `stddev`, `stdvar`: the input is folded
/// series by series into per-group, per-step accumulators, so an aggregation over a
/// selector or a range function (`sum(rate(x[5m]))`) holds one input series at a time.
/// Each accumulator sees the series in input order, as each step of Prometheus' evaluation
/// does, so the sums are the same to the bit.
fn aggregate(ev: &Ev, op: AggOp, g: &Grouping, expr: &Expr) -> Result<Vec<Series>> {
    if !matches!(
        op,
        AggOp::Sum
            | AggOp::Avg
            | AggOp::Count
            | AggOp::Min
            | AggOp::Max
            | AggOp::Group
            | AggOp::Stddev
            | AggOp::Stdvar
    ) {
        return Err(exec_err(format!("unknown aggregation {op}")));
    }
    let steps = ev.steps();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<Series> = Vec::new();
    let mut accs: Vec<Vec<Acc>> = Vec::new();
    // A group's accumulators, counted in samples' worth of memory.
    let per_group = steps.saturating_mul(size_of::<Acc>().div_ceil(size_of::<Sample>()));
    // Histogram sums and means, only for the (group, step) pairs that saw a histogram.
    let mut haccs: HashMap<(usize, usize), HAcc> = HashMap::new();
    ev.eval_vector_each(expr, &mut |s| {
        let gl = g.labels(&s.labels);
        let gi = match index.get(&gl) {
            Some(&gi) => gi,
            None => {
                ev.sh.add_samples(per_group)?;
                index.insert(gl.clone(), out.len());
                out.push(Series {
                    hpoints: Vec::new(),
                    labels: gl,
                    drop_name: false,
                    points: Vec::new(),
                    sts: Vec::new(),
                });
                accs.push(vec![Acc::default(); steps]);
                out.len() - 1
            }
        };
        out[gi].drop_name |= s.drop_name;
        let acc = &mut accs[gi];
        for p in &s.points {
            let Some(a) = acc.get_mut(((p.t - ev.start) / ev.interval) as usize) else {
                continue;
            };
            if a.seen {
                a.add(op, p.v);
            } else {
                *a = Acc::first(op, p.v);
            }
        }
        for p in &s.hpoints {
            let step = ((p.t - ev.start) / ev.interval) as usize;
            let Some(a) = acc.get_mut(step) else {
                continue;
            };
            match op {
                // A histogram is one more element to count.
                AggOp::Count | AggOp::Group => {
                    if a.seen {
                        a.add(op, 0.0);
                    } else {
                        *a = Acc::first(op, 0.0);
                    }
                }
                AggOp::Sum | AggOp::Avg => {
                    let h = haccs.entry((gi, step)).or_default();
                    let metric = s.labels.get(vigil_model::METRIC_NAME).unwrap_or("");
                    h.add(&p.h, op == AggOp::Avg, a.seen, metric, ev);
                }
                _ => ev.sh.info(format!(
                    "PromQL info: ignored histogram in {} aggregation",
                    op_name(op)
                )),
            }
        }
        // The series is folded in and dropped.
        ev.sh.release_samples(s.len());
        Ok(())
    })?;
    ev.sh.release_samples(per_group.saturating_mul(out.len()));
    for (gi, (o, acc)) in out.iter_mut().zip(&accs).enumerate() {
        let mut points = Vec::new();
        for (i, a) in acc.iter().enumerate() {
            match haccs.remove(&(gi, i)) {
                None if a.seen => points.push(Sample {
                    t: ev.ts(i),
                    v: a.result(op),
                }),
                None => {}
                Some(h) => {
                    if let Some(h) = h.finish(a.seen, op == AggOp::Avg, ev) {
                        o.hpoints.push(crate::engine::eval::HPoint {
                            t: ev.ts(i),
                            h: std::sync::Arc::new(h),
                        });
                    }
                }
            }
        }
        o.points = points;
    }
    out.retain(|s| !s.is_empty());
    let n: usize = out.iter().map(|s| s.len()).sum();
    ev.sh.add_samples(n)?;
    Ok(out)
}

/// Prometheus' name of an aggregation operator, for annotations.
fn op_name(op: AggOp) -> &'static str {
    match op {
        AggOp::Min => "min",
        AggOp::Max => "max",
        AggOp::Stddev => "stddev",
        AggOp::Stdvar => "stdvar",
        AggOp::Quantile => "quantile",
        AggOp::Topk => "topk",
        AggOp::Bottomk => "bottomk",
        AggOp::Sum => "sum",
        AggOp::Avg => "avg",
        _ => "unknown",
    }
}

/// One group's histogram sum or mean at one step, with Prometheus' Kahan compensation, the
/// switch to an incremental mean on overflow, and what it must report.
#[derive(Default)]
struct HAcc {
    value: Option<FloatHistogram>,
    comp: Option<FloatHistogram>,
    mean: Option<FloatHistogram>,
    count: f64,
    /// A float came first: the histograms cannot be summed with it.
    after_float: bool,
    incompatible: bool,
    reset_seen: bool,
    not_reset_seen: bool,
    reconciled: bool,
}

impl HAcc {
    fn add(&mut self, h: &FloatHistogram, avg: bool, float_seen: bool, metric: &str, ev: &Ev) {
        match h.counter_reset_hint {
            CounterResetHint::CounterReset => self.reset_seen = true,
            CounterResetHint::NotCounterReset => self.not_reset_seen = true,
            _ => {}
        }
        if self.incompatible {
            return;
        }
        self.count += 1.0;
        if self.value.is_none() && self.mean.is_none() {
            if float_seen || self.after_float {
                self.after_float = true;
                return;
            }
            self.value = Some(h.clone());
            return;
        }
        let incompatible = |s: &mut HAcc| {
            ev.sh.warn(format!(
                "PromQL warning: vector contains a mix of histograms with exponential and custom buckets schemas for metric name {metric:?}"
            ));
            s.incompatible = true;
        };
        if !avg {
            let v = self.value.as_mut().expect("a sum");
            match v.kahan_add(h, &mut self.comp) {
                Err(_) => incompatible(self),
                Ok(o) => self.reconciled |= o.nhcb_bounds_reconciled,
            }
            return;
        }
        if self.mean.is_none() {
            let mut v = self.value.clone().expect("a sum");
            let mut c = self.comp.clone();
            match v.kahan_add(h, &mut c) {
                Err(_) => return incompatible(self),
                Ok(o) => self.reconciled |= o.nhcb_bounds_reconciled,
            }
            if !v.has_overflow() {
                self.value = Some(v);
                self.comp = c;
                return;
            }
            let mut m = self.value.take().expect("a sum");
            m.div(self.count - 1.0);
            if let Some(c) = self.comp.as_mut() {
                c.div(self.count - 1.0);
            }
            self.mean = Some(m);
        }
        let q = (self.count - 1.0) / self.count;
        if let Some(c) = self.comp.as_mut() {
            c.mul(q);
        }
        let mut to_add = h.clone();
        to_add.div(self.count);
        let m = self.mean.as_mut().expect("a mean");
        m.mul(q);
        match m.kahan_add(&to_add, &mut self.comp) {
            Err(_) => incompatible(self),
            Ok(o) => self.reconciled |= o.nhcb_bounds_reconciled,
        }
    }

    /// The group's histogram, or `None` (with Prometheus' warning) when floats were mixed in
    /// or the histograms could not be added.
    fn finish(self, float_seen: bool, avg: bool, ev: &Ev) -> Option<FloatHistogram> {
        if self.reconciled {
            ev.sh.info(
                "PromQL info: mismatched custom buckets were reconciled during aggregation".into(),
            );
        }
        let out = if float_seen || self.after_float {
            ev.sh.warn(
                "PromQL warning: encountered a mix of histograms and floats for aggregation".into(),
            );
            None
        } else if self.incompatible {
            None
        } else if let Some(mut m) = self.mean {
            m.kahan_finish(self.comp);
            Some(m)
        } else {
            let mut v = self.value?;
            let mut comp = self.comp;
            if avg {
                v.div(self.count);
                if let Some(c) = comp.as_mut() {
                    c.div(self.count);
                }
            }
            v.kahan_finish(comp);
            Some(v)
        };
        if self.reset_seen && self.not_reset_seen {
            ev.sh.warn(
                "PromQL warning: conflicting counter resets during histogram aggregation".into(),
            );
        }
        out.map(|mut h| {
            h.compact(0);
            h
        })
    }
}

/// `quantile`: every value of a group at a step is kept until the step is done.
fn aggregate_quantile(
    ev: &Ev,
    g: &Grouping,
    param: &[f64],
    input: Vec<Series>,
) -> Result<Vec<Series>> {
    let mut group_of = Vec::with_capacity(input.len());
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<Series> = Vec::new();
    for s in &input {
        let gl = g.labels(&s.labels);
        let gi = *index.entry(gl.clone()).or_insert_with(|| {
            out.push(Series {
                hpoints: Vec::new(),
                labels: gl,
                drop_name: false,
                points: Vec::new(),
                sts: Vec::new(),
            });
            out.len() - 1
        });
        out[gi].drop_name |= s.drop_name;
        group_of.push(gi);
    }
    let mut values: Vec<Vec<f64>> = vec![Vec::new(); out.len()];
    let mut cur = StepCursor::new(input.len());
    let mut vals: Vec<(usize, PV)> = Vec::new();
    for i in 0..ev.steps() {
        ev.check()?;
        let ts = ev.ts(i);
        let q = param.get(i).copied().unwrap_or(f64::NAN);
        if q.is_nan() || !(0.0..=1.0).contains(&q) {
            ev.sh.warn(format!(
                "PromQL warning: quantile value should be between 0 and 1, got {}",
                format_float(q)
            ));
        }
        cur.gather_any(&input, ts, &mut vals);
        if vals.is_empty() {
            continue;
        }
        values.iter_mut().for_each(Vec::clear);
        for (si, v) in &vals {
            match v {
                PV::F(f) => values[group_of[*si]].push(*f),
                PV::H(_) => ev
                    .sh
                    .info("PromQL info: ignored histogram in quantile aggregation".into()),
            }
        }
        for (gi, v) in values.iter_mut().enumerate() {
            if !v.is_empty() {
                out[gi].points.push(Sample {
                    t: ts,
                    v: quantile(q, v),
                });
            }
        }
    }
    out.retain(|s| !s.points.is_empty());
    let n: usize = out.iter().map(|s| s.points.len()).sum();
    ev.sh.add_samples(n)?;
    Ok(out)
}

/// `topk`, `bottomk`, `limitk`, `limit_ratio`: whole input series pass through.
fn aggregate_k(
    ev: &Ev,
    op: AggOp,
    g: &Grouping,
    param: &[f64],
    input: Vec<Series>,
) -> Result<Vec<Series>> {
    let mut group_of = Vec::with_capacity(input.len());
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for s in &input {
        let n = index.len();
        group_of.push(*index.entry(g.labels(&s.labels)).or_insert(n));
    }
    let ngroups = index.len();
    let ratio_pos: Vec<f64> = if op == AggOp::LimitRatio {
        input.iter().map(|s| sample_offset(&s.labels)).collect()
    } else {
        Vec::new()
    };
    let mut out = OutBuilder::new(ev);
    let mut cur = StepCursor::new(input.len());
    let mut vals: Vec<(usize, PV)> = Vec::new();
    let mut groups: Vec<Vec<(usize, PV)>> = vec![Vec::new(); ngroups];
    for i in 0..ev.steps() {
        ev.check()?;
        let ts = ev.ts(i);
        let p = param.get(i).copied().unwrap_or(f64::NAN);
        let mut k = 0i64;
        let mut ratio = 0.0;
        if op == AggOp::LimitRatio {
            if p.is_nan() {
                return Err(exec_err(format!("Ratio value is {}", format_float(p))));
            }
            ratio = p;
            if !(-1.0..=1.0).contains(&p) {
                ratio = p.clamp(-1.0, 1.0);
                ev.sh.warn(format!(
                    "PromQL warning: ratio value should be between -1 and 1, got {}, capping to {}",
                    format_float(p),
                    format_float(ratio)
                ));
            }
            if ratio == 0.0 {
                continue;
            }
        } else {
            if p.is_nan() {
                return Err(exec_err("Parameter value is NaN"));
            }
            if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&p) {
                return Err(exec_err(format!(
                    "Scalar value {} overflows int64",
                    format_float(p)
                )));
            }
            k = p as i64;
            if k < 1 {
                continue;
            }
        }
        cur.gather_any(&input, ts, &mut vals);
        for gv in groups.iter_mut() {
            gv.clear();
        }
        for (si, v) in vals.drain(..) {
            if matches!(v, PV::H(_)) && matches!(op, AggOp::Topk | AggOp::Bottomk) {
                ev.sh.info(format!(
                    "PromQL info: ignored histogram in {} aggregation",
                    op_name(op)
                ));
                continue;
            }
            groups[group_of[si]].push((si, v));
        }
        for gv in groups.iter_mut() {
            if gv.is_empty() {
                continue;
            }
            match op {
                AggOp::Topk => {
                    gv.sort_by(|a, b| desc_nan_last(fv(&a.1), fv(&b.1)));
                    gv.truncate(k as usize);
                }
                AggOp::Bottomk => {
                    gv.sort_by(|a, b| asc_nan_last(fv(&a.1), fv(&b.1)));
                    gv.truncate(k as usize);
                }
                AggOp::Limitk => gv.truncate(k as usize),
                _ => gv.retain(|&(si, _)| {
                    let off = ratio_pos[si];
                    (ratio >= 0.0 && off < ratio) || (ratio < 0.0 && off >= 1.0 + ratio)
                }),
            }
            for (si, v) in gv.drain(..) {
                let s = &input[si];
                out.push_keyed_pv(si as u64, || (s.labels.clone(), s.drop_name), ts, v)?;
            }
        }
    }
    Ok(out.finish())
}

/// A deterministic position of a series in `[0, 1)` for `limit_ratio`, from its labels.
fn sample_offset(l: &Labels) -> f64 {
    // FNV-1a over the label pairs: stable across runs and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for x in l.iter() {
        for b in x
            .name
            .bytes()
            .chain([0xff])
            .chain(x.value.bytes())
            .chain([0xff])
        {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h as f64 / u64::MAX as f64
}

/// The float of a value (topk/bottomk see floats only; histograms were set aside).
fn fv(v: &PV) -> f64 {
    match v {
        PV::F(f) => *f,
        PV::H(_) => f64::NAN,
    }
}

fn desc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Equal,
        (true, false) => Greater,
        (false, true) => Less,
        _ => b.partial_cmp(&a).unwrap_or(Equal),
    }
}

fn asc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Equal,
        (true, false) => Greater,
        (false, true) => Less,
        _ => a.partial_cmp(&b).unwrap_or(Equal),
    }
}

fn count_values(ev: &Ev, g: &Grouping, label: &str, input: Vec<Series>) -> Result<Vec<Series>> {
    let mut out = OutBuilder::new(ev);
    let mut cur = StepCursor::new(input.len());
    let mut vals: Vec<(usize, PV)> = Vec::new();
    let mut grouping = Grouping {
        without: g.without,
        names: g.names.clone(),
    };
    if !g.without {
        grouping.names.push(label.to_string());
    }
    for i in 0..ev.steps() {
        ev.check()?;
        let ts = ev.ts(i);
        cur.gather_any(&input, ts, &mut vals);
        let mut counts: Vec<(Labels, f64)> = Vec::new();
        let mut idx: HashMap<Labels, usize> = HashMap::new();
        for (si, v) in &vals {
            let si = *si;
            let mut b = input[si].labels.to_builder();
            let value = match v {
                PV::F(f) => format_float(*f),
                PV::H(h) => h.to_string(),
            };
            b.set(label.to_string(), value);
            let gl = grouping.labels(&b.build());
            match idx.get(&gl) {
                Some(&j) => counts[j].1 += 1.0,
                None => {
                    idx.insert(gl.clone(), counts.len());
                    counts.push((gl, 1.0));
                }
            }
        }
        for (l, c) in counts {
            out.push(l, false, ts, c)?;
        }
    }
    Ok(out.finish())
}
