//! PromQL functions, dispatched by name.
//!
//! Element-wise functions map each input series to one output series without any per-step
//! hashing; functions over range vectors live in [`range`] (they stream series by series over
//! sliding windows); classic-histogram functions in [`histogram`]; label and time helpers in
//! [`labels`] and [`time`]. Numeric helpers shared with aggregations (Kahan summation,
//! quantile, Go-compatible float formatting) are here.

mod drift;
pub(crate) mod extended;
mod histogram;
pub(crate) mod hrange;
mod info;
mod labels;
mod native;
mod range;
mod time;

use crate::engine::eval::{Ev, Pick, Result, Series, Val, exec_err, unwrap_parens};
use vigil_model::MatchOp;
use vigil_model::{Labels, METRIC_NAME, Sample};
use vigil_promql_parser::{Call, Expr};

/// Kahan–Neumaier compensated addition, as Prometheus' `kahanSumInc`.
pub(crate) fn kahan_sum_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else {
        c + neumaier_error(sum, inc, t)
    };
    (t, c)
}

/// The rounding error of `t = sum + inc`, Neumaier's way (the larger operand first).
#[inline(always)]
pub(crate) fn neumaier_error(sum: f64, inc: f64, t: f64) -> f64 {
    if sum.abs() >= inc.abs() {
        (sum - t) + inc
    } else {
        (inc - t) + sum
    }
}

/// Prometheus' average, for `avg` and `avg_over_time`: a Kahan sum that turns into an
/// incremental mean once the sum would overflow. The aggregations keep their other running
/// values in the same fields (see `aggregations::Acc`).
#[derive(Default, Clone, Copy)]
pub(crate) struct Mean {
    pub sum: f64,
    pub mean: f64,
    pub count: f64,
    pub c: f64,
    pub incremental: bool,
}

impl Mean {
    #[inline(always)]
    pub fn add(&mut self, f: f64) {
        self.count += 1.0;
        if !self.incremental {
            let (ns, nc) = kahan_sum_inc(f, self.sum, self.c);
            if self.count == 1.0 || !ns.is_infinite() {
                (self.sum, self.c) = (ns, nc);
                return;
            }
            self.incremental = true;
            self.mean = self.sum / (self.count - 1.0);
            self.c /= self.count - 1.0;
        }
        if self.mean.is_infinite() {
            if f.is_infinite() && (self.mean > 0.0) == (f > 0.0) {
                return;
            }
            if !f.is_infinite() && !f.is_nan() {
                return;
            }
        }
        let corrected = self.mean + self.c;
        (self.mean, self.c) =
            kahan_sum_inc(f / self.count - corrected / self.count, self.mean, self.c);
    }

    pub fn value(&self) -> f64 {
        if self.incremental {
            self.mean + self.c
        } else {
            (self.sum + self.c) / self.count
        }
    }
}

/// Prometheus' `quantile` (φ-quantile with linear interpolation; NaNs sort first).
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

pub(crate) use vigil_model::gofmt::shortest_f as format_float;

/// Prometheus 3 label names: any non-empty UTF-8 string.
pub(crate) fn valid_label_name(n: &str) -> bool {
    !n.is_empty() && !n.contains('\u{fffd}')
}

/// Go's `math.Max`/`math.Min`: NaN wins.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// Whether a string argument holds bytes that are not UTF-8 (`"\xff"`): never a label name.
pub(crate) fn invalid_utf8(e: &Expr) -> bool {
    matches!(unwrap_parens(e), Expr::StringLiteral(s) if s.invalid_utf8.is_some())
}

pub(crate) fn string_arg(e: &Expr) -> Result<String> {
    match unwrap_parens(e) {
        Expr::StringLiteral(s) => Ok(s.val.clone()),
        _ => Err(exec_err("expected a string literal argument")),
    }
}

/// Labels for `absent()`/`absent_over_time()`: the selector's equality matchers, except
/// labels matched more than once (Prometheus' historic behaviour).
pub(crate) fn absent_labels(e: &Expr) -> Labels {
    let vs = match e {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let mut b = vigil_model::LabelsBuilder::new();
    let mut has = std::collections::HashSet::new();
    for m in &vs.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, MatchOp::Equal) && !has.contains(&m.name) {
            b.set(m.name.clone(), m.value.clone());
            has.insert(m.name.clone());
        } else {
            b.del(&m.name);
        }
    }
    b.build()
}

fn is_range_arg(e: &Expr) -> bool {
    matches!(
        unwrap_parens(e),
        Expr::MatrixSelector(_) | Expr::Subquery(_)
    )
}

/// Whether a call has a range-vector argument (`rate(x[5m])`, `max_over_time(y[1h:])`).
pub(crate) fn takes_range_vector(c: &Call) -> bool {
    c.args.iter().any(is_range_arg)
}

/// A function over a range vector, handing each output series to `emit` as it is computed.
pub(crate) fn eval_range_call_each(
    ev: &Ev,
    c: &Call,
    emit: &mut dyn FnMut(Series) -> Result<()>,
) -> Result<()> {
    let args: Vec<&Expr> = c.args.iter().collect();
    range::eval_range_call_each(ev, c.func.name, &args, emit)?
        .unwrap_or_default()
        .into_iter()
        .try_for_each(emit)
}

/// Instant-vector functions that pass native histograms through or read them; every other
/// function reads floats only, and the histograms of its input do not reach its output (as
/// Prometheus' `simpleFloatFunc` skips them).
const KEEPS_HISTOGRAMS: &[&str] = &[
    "info",
    "label_replace",
    "label_join",
    "sort",
    "sort_desc",
    "sort_by_label",
    "sort_by_label_desc",
];

pub(crate) fn eval_call(ev: &Ev, c: &Call) -> Result<Val> {
    let name = c.func.name;
    let args: Vec<&Expr> = c.args.iter().collect();
    if args.iter().any(|a| is_range_arg(a)) {
        return range::eval_range_call(ev, name, &args);
    }
    let out = eval_instant_call(ev, name, &args)?;
    if KEEPS_HISTOGRAMS.contains(&name) {
        return Ok(out);
    }
    Ok(match out {
        Val::Vector(mut v) => {
            for s in &mut v {
                s.hpoints.clear();
            }
            v.retain(|s| !s.is_empty());
            Val::Vector(v)
        }
        other => other,
    })
}

fn eval_instant_call(ev: &Ev, name: &str, args: &[&Expr]) -> Result<Val> {
    let steps = ev.steps();
    match name {
        "label_replace" => labels::label_replace(ev, args),
        "label_join" => labels::label_join(ev, args),
        "time" => Ok(Val::Scalar(
            (0..steps).map(|i| ev.ts(i) as f64 / 1000.0).collect(),
        )),
        "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; steps])),
        // Go's math.Min / math.Max of two scalars, step by step (NaN wins).
        "min_of" | "max_of" => {
            let a = ev.eval_scalar(args[0])?;
            let b = ev.eval_scalar(args[1])?;
            let f = if name == "min_of" { go_min } else { go_max };
            Ok(Val::Scalar(
                a.iter().zip(&b).map(|(&x, &y)| f(x, y)).collect(),
            ))
        }
        // The query's own bounds and step, in seconds (Prometheus 3.14's experimental
        // functions; an instant query has step and range 0).
        "start" | "end" | "range" | "step" => {
            let sh = ev.sh;
            let v = match name {
                "start" => sh.query_start as f64 / 1000.0,
                "end" => sh.query_end as f64 / 1000.0,
                "range" => (sh.query_end - sh.query_start) as f64 / 1000.0,
                _ => sh.query_step as f64 / 1000.0,
            };
            Ok(Val::Scalar(vec![v; steps]))
        }
        "vector" => {
            let s = ev.eval_scalar(args[0])?;
            Ok(Val::Vector(vec![Series {
                hpoints: Vec::new(),
                labels: Labels::empty(),
                drop_name: false,
                points: s
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| Sample { t: ev.ts(i), v })
                    .collect(),
                sts: Vec::new(),
            }]))
        }
        "scalar" => {
            let input = ev.eval_vector(args[0])?;
            let mut out = vec![f64::NAN; steps];
            let mut n = vec![0usize; steps];
            for s in &input {
                for p in &s.points {
                    let i = ((p.t - ev.start) / ev.interval) as usize;
                    if i < steps {
                        n[i] += 1;
                        out[i] = p.v;
                    }
                }
            }
            for i in 0..steps {
                if n[i] != 1 {
                    out[i] = f64::NAN;
                }
            }
            Ok(Val::Scalar(out))
        }
        "timestamp" => {
            let mut input = match unwrap_parens(args[0]) {
                Expr::VectorSelector(vs) => ev.eval_vector_selector(vs, Pick::Timestamp)?,
                other => {
                    let mut v = ev.eval_vector(other)?;
                    for s in &mut v {
                        for p in &mut s.points {
                            p.v = p.t as f64 / 1000.0;
                        }
                        let hs = std::mem::take(&mut s.hpoints);
                        s.points.extend(hs.iter().map(|p| Sample {
                            t: p.t,
                            v: p.t as f64 / 1000.0,
                        }));
                        s.points.sort_by_key(|p| p.t);
                    }
                    v
                }
            };
            for s in &mut input {
                s.drop_name = true;
            }
            Ok(Val::Vector(input))
        }
        // Start timestamps come from storage: only a selector has them, and only when the
        // engine reads them (otherwise, and for any other expression, the result is empty).
        "start_timestamp" => match unwrap_parens(args[0]) {
            Expr::VectorSelector(vs) if ev.sh.use_st => {
                let mut input = ev.eval_vector_selector(vs, Pick::StartTimestamp)?;
                for s in &mut input {
                    s.drop_name = true;
                }
                Ok(Val::Vector(input))
            }
            other => {
                ev.eval_vector(other)?;
                Ok(Val::Vector(Vec::new()))
            }
        },
        "absent" => {
            let input = ev.eval_vector(args[0])?;
            let mut present = vec![false; steps];
            for s in &input {
                let ts = s
                    .points
                    .iter()
                    .map(|p| p.t)
                    .chain(s.hpoints.iter().map(|p| p.t));
                for t in ts {
                    let i = ((t - ev.start) / ev.interval) as usize;
                    if i < steps {
                        present[i] = true;
                    }
                }
            }
            let points: Vec<Sample> = (0..steps)
                .filter(|&i| !present[i])
                .map(|i| Sample {
                    t: ev.ts(i),
                    v: 1.0,
                })
                .collect();
            if points.is_empty() {
                return Ok(Val::Vector(Vec::new()));
            }
            Ok(Val::Vector(vec![Series {
                hpoints: Vec::new(),
                labels: absent_labels(args[0]),
                drop_name: false,
                points,
                sts: Vec::new(),
            }]))
        }
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => sort(ev, name, args),
        "histogram_quantile" => histogram::histogram_quantile(ev, args),
        "histogram_quantiles" => histogram::histogram_quantiles(ev, args),
        "info" => info::info(ev, args),
        "histogram_count" => native::simple(ev, args[0], native::count),
        "histogram_sum" => native::simple(ev, args[0], native::sum),
        "histogram_avg" => native::simple(ev, args[0], native::avg),
        "histogram_stddev" => native::simple(ev, args[0], native::stddev),
        "histogram_stdvar" => native::simple(ev, args[0], native::stdvar),
        "histogram_fraction" => histogram::histogram_fraction(ev, args),
        _ if drift::Distance::from_name(name).is_some() => {
            let d = drift::Distance::from_name(name).expect("a drift function");
            drift::eval_drift(ev, d, args)
        }
        "round" | "clamp" | "clamp_min" | "clamp_max" => {
            let input = ev.eval_vector(args[0])?;
            let scalars: Vec<Vec<f64>> = args[1..]
                .iter()
                .map(|a| ev.eval_scalar(a))
                .collect::<Result<_>>()?;
            let f: fn(f64, &[f64]) -> Option<f64> = match name {
                "round" => |v, a| {
                    let to = a.first().copied().unwrap_or(1.0);
                    let inv = 1.0 / to;
                    Some((v * inv + 0.5).floor() / inv)
                },
                "clamp" => |v, a| {
                    let (lo, hi) = (a[0], a[1]);
                    if hi < lo {
                        return None;
                    }
                    Some(go_max(lo, go_min(hi, v)))
                },
                "clamp_min" => |v, a| Some(go_max(a[0], v)),
                _ => |v, a| Some(go_min(a[0], v)),
            };
            Ok(Val::Vector(map_series(ev, input, &scalars, f)))
        }
        _ => {
            if let Some(f) = time::date_fn(name) {
                return time::eval_date(ev, args, f);
            }
            let f: fn(f64) -> f64 = match name {
                "abs" => f64::abs,
                "ceil" => f64::ceil,
                "floor" => f64::floor,
                "exp" => go_exp,
                "sqrt" => f64::sqrt,
                "ln" => f64::ln,
                "log2" => f64::log2,
                "log10" => f64::log10,
                "sin" => f64::sin,
                "cos" => f64::cos,
                "tan" => f64::tan,
                "asin" => f64::asin,
                "acos" => f64::acos,
                "atan" => f64::atan,
                "sinh" => go_sinh,
                "cosh" => go_cosh,
                "tanh" => f64::tanh,
                "asinh" => f64::asinh,
                "acosh" => f64::acosh,
                "atanh" => f64::atanh,
                "deg" => |v| v * 180.0 / std::f64::consts::PI,
                "rad" => |v| v * std::f64::consts::PI / 180.0,
                "sgn" => |v| {
                    if v < 0.0 {
                        -1.0
                    } else if v > 0.0 {
                        1.0
                    } else {
                        v
                    }
                },
                _ => {
                    return Err(exec_err(format!("function {name}() is not supported")));
                }
            };
            let input = ev.eval_vector(args[0])?;
            let mut out = input;
            for s in &mut out {
                s.drop_name = true;
                for p in &mut s.points {
                    p.v = f(p.v);
                }
            }
            Ok(Val::Vector(out))
        }
    }
}

/// Applies `f(value, scalar args at that step)` to every point; drops the name.
fn map_series(
    ev: &Ev,
    input: Vec<Series>,
    scalars: &[Vec<f64>],
    f: impl Fn(f64, &[f64]) -> Option<f64>,
) -> Vec<Series> {
    let mut out = Vec::with_capacity(input.len());
    let mut a = vec![0.0; scalars.len()];
    for mut s in input {
        let mut pts = Vec::with_capacity(s.points.len());
        for p in &s.points {
            let i = ((p.t - ev.start) / ev.interval) as usize;
            for (k, sc) in scalars.iter().enumerate() {
                a[k] = sc.get(i).copied().unwrap_or(f64::NAN);
            }
            if let Some(v) = f(p.v, &a) {
                pts.push(Sample { t: p.t, v });
            }
        }
        if !pts.is_empty() {
            s.points = pts;
            s.drop_name = true;
            out.push(s);
        }
    }
    out
}

/// facette/natsort's `Compare` (used by `sort_by_label`): true if `a` sorts before `b`.
fn natsort_less(a: &str, b: &str) -> bool {
    fn chunks(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let bytes = s.as_bytes();
        let mut start = 0;
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                if start < i {
                    out.push(&s[start..i]);
                }
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for i in 0..ca.len() {
        if i >= cb.len() {
            return false;
        }
        let (x, y) = (ca[i], cb[i]);
        let nums = (x.parse::<i64>(), y.parse::<i64>());
        if let (Ok(xi), Ok(yi)) = nums {
            if xi == yi {
                if i == ca.len() - 1 {
                    return true;
                } else if i == cb.len() - 1 {
                    return false;
                }
                continue;
            }
            return xi < yi;
        }
        if x == y {
            if i == ca.len() - 1 {
                return true;
            } else if i == cb.len() - 1 {
                return false;
            }
            continue;
        }
        return x < y;
    }
    false
}

fn sort(ev: &Ev, name: &str, args: &[&Expr]) -> Result<Val> {
    let input = ev.eval_vector(args[0])?;
    if !ev.is_instant() {
        ev.sh.warn(
            "PromQL warning: sort is ineffective for range queries since results are always ordered by labels"
                .into(),
        );
        return Ok(Val::Vector(input));
    }
    let mut input: Vec<Series> = input.into_iter().filter(|s| !s.points.is_empty()).collect();
    let v = |s: &Series| s.points[0].v;
    use std::cmp::Ordering::*;
    match name {
        "sort" | "sort_desc" => {
            let desc = name == "sort_desc";
            input.sort_by(|a, b| {
                let (x, y) = (v(a), v(b));
                match (x.is_nan(), y.is_nan()) {
                    (true, true) => Equal,
                    (true, false) => Greater,
                    (false, true) => Less,
                    _ if desc => y.partial_cmp(&x).unwrap_or(Equal),
                    _ => x.partial_cmp(&y).unwrap_or(Equal),
                }
            });
        }
        _ => {
            let desc = name == "sort_by_label_desc";
            let names: Vec<String> = args[1..]
                .iter()
                .map(|a| string_arg(a))
                .collect::<Result<_>>()?;
            input.sort_by(|a, b| {
                for n in &names {
                    let x = a.labels.get(n).unwrap_or("");
                    let y = b.labels.get(n).unwrap_or("");
                    if x == y {
                        continue;
                    }
                    let less = natsort_less(x, y);
                    return match (less, desc) {
                        (true, false) | (false, true) => Less,
                        _ => Greater,
                    };
                }
                if desc {
                    b.labels.cmp(&a.labels)
                } else {
                    a.labels.cmp(&b.labels)
                }
            });
        }
    }
    Ok(Val::Vector(input))
}

/// Go's `math.Exp` on amd64 (its assembly version), which Prometheus uses: it overflows to
/// +Inf from x = 709.436139303104 (found by bisection against Prometheus 2.42), where the true
/// value is finite up to x ≈ 709.78.
fn go_exp(x: f64) -> f64 {
    if x >= 709.436_139_303_104 {
        f64::INFINITY
    } else {
        x.exp()
    }
}

/// Go's `math.Sinh`: above |x| = 21 it is `Exp(|x|) / 2`, so it overflows with [`go_exp`]
/// where the true value (up to |x| ≈ 710.48) is finite.
fn go_sinh(x: f64) -> f64 {
    if x.abs() > 21.0 {
        (go_exp(x.abs()) * 0.5).copysign(x)
    } else {
        x.sinh()
    }
}

/// Go's `math.Cosh`: `Exp(|x|) / 2` above |x| = 21, overflowing as [`go_sinh`] does.
fn go_cosh(x: f64) -> f64 {
    if x.abs() > 21.0 {
        go_exp(x.abs()) * 0.5
    } else {
        x.cosh()
    }
}

#[cfg(test)]
mod go_math_tests {
    use super::*;

    #[test]
    fn exp_overflows_where_gos_does() {
        assert!(go_exp(709.436_139_303_103_9).is_finite());
        assert_eq!(go_exp(709.436_139_303_104), f64::INFINITY);
        assert!(709.5f64.exp().is_finite(), "the true value is finite");
        assert_eq!(go_exp(1.0), 1f64.exp());
        assert_eq!(go_exp(-1000.0), 0.0);
    }

    #[test]
    fn sinh_and_cosh_overflow_where_gos_do() {
        assert_eq!(go_sinh(709.5), f64::INFINITY);
        assert_eq!(go_sinh(710.0), f64::INFINITY);
        assert_eq!(go_sinh(-710.0), f64::NEG_INFINITY);
        assert_eq!(go_cosh(-710.0), f64::INFINITY);
        assert!(710f64.sinh().is_finite(), "the true value is finite");
        assert_eq!(go_sinh(1.0), 1f64.sinh());
        assert_eq!(go_cosh(0.0), 1.0);
    }
}
