//! Binary operators with Prometheus' rules: scalar/scalar, vector/scalar and vector/vector
//! (one-to-one, `group_left`/`group_right`, `on`/`ignoring`, set operators), filtering
//! comparisons and `bool`, and `__name__` dropping.
//!
//! Matching signatures and result label sets are computed once per series (or per matched
//! pair), then every step only hashes signature strings it already has; vector/scalar
//! operations never hash at all because each input series maps to one output series.

use crate::engine::eval::{
    Ev, OutBuilder, PV, Result, Series, StepCursor, Val, exec_err, is_metadata_label,
};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use vigil_model::histogram::{CounterResetHint, FloatHistogram};
use vigil_model::{Labels, METRIC_NAME, Sample};
use vigil_promql_parser::{BinOp, BinaryExpr, Cardinality, FillValues};

/// The points of one step: (series index, value).
type Gathered = Vec<(usize, PV)>;

fn btos(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Go's `math.Mod`: the sign follows the dividend, like Rust's `%`.
fn scalar_op(op: BinOp, l: f64, r: f64) -> f64 {
    match op {
        BinOp::Add => l + r,
        BinOp::Sub => l - r,
        BinOp::Mul => l * r,
        BinOp::Div => l / r,
        BinOp::Pow => l.powf(r),
        BinOp::Mod => l % r,
        BinOp::Eql => btos(l == r),
        BinOp::Neq => btos(l != r),
        BinOp::Gtr => btos(l > r),
        BinOp::Lss => btos(l < r),
        BinOp::Gte => btos(l >= r),
        BinOp::Lte => btos(l <= r),
        BinOp::Atan2 => l.atan2(r),
        _ => f64::NAN,
    }
}

/// `vectorElemBinop`: the value and whether a filtering comparison keeps the element.
fn elem_op(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Eql => (l, l == r),
        BinOp::Neq => (l, l != r),
        BinOp::Gtr => (l, l > r),
        BinOp::Lss => (l, l < r),
        BinOp::Gte => (l, l >= r),
        BinOp::Lte => (l, l <= r),
        _ => (scalar_op(op, l, r), true),
    }
}

/// An annotation a binary operation raises: a warning or an info, Prometheus' text.
enum Note {
    Warn(String),
    Info(String),
}

fn op_str(op: BinOp) -> &'static str {
    op.as_str()
}

fn kind(v: &PV) -> &'static str {
    match v {
        PV::F(_) => "float",
        PV::H(_) => "histogram",
    }
}

/// Prometheus' `vectorElemBinop` over values of either kind: the result, whether a filter
/// keeps it, and an annotation; `Err` drops the element (Prometheus' `err` return).
fn elem_binop(op: BinOp, l: &PV, r: &PV) -> std::result::Result<(PV, bool, Option<Note>), Note> {
    let incompatible = || {
        Note::Info(format!(
            "PromQL info: incompatible sample types encountered for binary operator {:?}: {} {} {}",
            op_str(op),
            kind(l),
            op_str(op),
            kind(r)
        ))
    };
    let compacted = |mut h: FloatHistogram| {
        h.compact(0);
        PV::H(Arc::new(h))
    };
    match (l, r) {
        (PV::F(_), PV::F(_)) if matches!(op, BinOp::TrimUpper | BinOp::TrimLower) => {
            Err(incompatible())
        }
        (PV::F(a), PV::F(b)) => {
            let (v, keep) = elem_op(op, *a, *b);
            Ok((PV::F(v), keep, None))
        }
        (PV::F(a), PV::H(h)) => match op {
            BinOp::Mul => {
                let mut x = FloatHistogram::clone(h);
                x.mul(*a);
                Ok((compacted(x), true, None))
            }
            _ => Err(incompatible()),
        },
        (PV::H(h), PV::F(b)) => match op {
            BinOp::TrimUpper | BinOp::TrimLower => {
                let mut x = FloatHistogram::clone(h);
                x.trim_buckets(*b, op == BinOp::TrimUpper);
                Ok((PV::H(Arc::new(x)), true, None))
            }
            BinOp::Mul | BinOp::Div => {
                let mut x = FloatHistogram::clone(h);
                if op == BinOp::Mul {
                    x.mul(*b);
                } else {
                    x.div(*b);
                }
                Ok((compacted(x), true, None))
            }
            _ => Err(incompatible()),
        },
        (PV::H(a), PV::H(b)) => match op {
            BinOp::Add | BinOp::Sub => {
                let mut x = FloatHistogram::clone(a);
                let name = if op == BinOp::Add {
                    "addition"
                } else {
                    "subtraction"
                };
                let res = if op == BinOp::Add { x.add(b) } else { x.sub(b) };
                let o = res.map_err(|_| {
                    Note::Warn(format!(
                        "PromQL warning: incompatible bucket layout encountered for binary operator {}",
                        op_str(op)
                    ))
                })?;
                if op == BinOp::Sub {
                    x.counter_reset_hint = CounterResetHint::Gauge;
                }
                if o.counter_reset_collision {
                    return Err(Note::Warn(format!(
                        "PromQL warning: conflicting counter resets during histogram {name}"
                    )));
                }
                let info = o.nhcb_bounds_reconciled.then(|| {
                    Note::Info(format!(
                        "PromQL info: mismatched custom buckets were reconciled during {name}"
                    ))
                });
                Ok((compacted(x), true, info))
            }
            BinOp::Eql => Ok((l.clone(), a.equals(b), None)),
            BinOp::Neq => Ok((l.clone(), !a.equals(b), None)),
            _ => Err(incompatible()),
        },
    }
}

fn report(ev: &Ev, n: Note) {
    match n {
        Note::Warn(w) => ev.sh.warn(w),
        Note::Info(i) => ev.sh.info(i),
    }
}

fn is_comparison(op: BinOp) -> bool {
    op.is_comparison()
}

fn should_drop_name(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Pow | BinOp::Mod | BinOp::Atan2
    )
}

/// Prometheus' `labels.String()`: `{__name__="x", a="b"}`.
pub(crate) fn prom_labels(l: &Labels) -> String {
    let inner: Vec<String> = l
        .iter()
        .map(|x| format!("{}={:?}", x.name, x.value))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

pub(crate) fn eval_binary(ev: &Ev, b: &BinaryExpr) -> Result<Val> {
    let op = b.op;
    let return_bool = b.return_bool;
    let lhs = ev.eval(&b.lhs)?;
    let rhs = ev.eval(&b.rhs)?;
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => Ok(Val::Scalar(
            l.iter()
                .zip(&r)
                .map(|(&a, &b)| scalar_op(op, a, b))
                .collect(),
        )),
        (Val::Vector(v), Val::Scalar(s)) => Ok(Val::Vector(vector_scalar(
            ev,
            op,
            v,
            &s,
            false,
            return_bool,
        ))),
        (Val::Scalar(s), Val::Vector(v)) => {
            Ok(Val::Vector(vector_scalar(ev, op, v, &s, true, return_bool)))
        }
        (Val::Vector(l), Val::Vector(r)) => {
            let m = match &b.matching {
                Some(vm) => Matching {
                    on: vm.on,
                    names: vm.matching_labels.clone(),
                    card: vm.card,
                    include: vm.include.clone(),
                    fill: vm.fill,
                },
                None => Matching {
                    on: false,
                    names: Vec::new(),
                    card: Cardinality::OneToOne,
                    include: Vec::new(),
                    fill: FillValues::default(),
                },
            };
            if op.is_set_operator() {
                set_op(ev, op, l, r, &m).map(Val::Vector)
            } else {
                vector_binop(ev, op, l, r, &m, return_bool).map(Val::Vector)
            }
        }
        _ => Err(exec_err(format!(
            "binary operator \"{}\" not allowed on these operand types",
            b.op
        ))),
    }
}

fn vector_scalar(
    ev: &Ev,
    op: BinOp,
    v: Vec<Series>,
    s: &[f64],
    swap: bool,
    return_bool: bool,
) -> Vec<Series> {
    let cmp = is_comparison(op);
    let drop = should_drop_name(op) || return_bool;
    let mut out = Vec::with_capacity(v.len());
    let mut note = None;
    for mut series in v {
        let mut pts = Vec::with_capacity(series.points.len());
        let trim = matches!(op, BinOp::TrimUpper | BinOp::TrimLower);
        if trim && !series.points.is_empty() {
            // Trimming applies to histograms only: a float element is dropped.
            let (f, h) = (PV::F(0.0), PV::F(0.0));
            if let Err(n) = elem_binop(op, &f, &h) {
                note = Some(n);
            }
        }
        for p in series.points.iter().filter(|_| !trim) {
            let i = ((p.t - ev.start) / ev.interval) as usize;
            let sv = s.get(i).copied().unwrap_or(f64::NAN);
            let (lf, rf) = if swap { (sv, p.v) } else { (p.v, sv) };
            let (mut val, mut keep) = elem_op(op, lf, rf);
            if cmp && swap {
                val = rf;
            }
            if return_bool {
                val = btos(keep);
                keep = true;
            }
            if keep {
                pts.push(Sample { t: p.t, v: val });
            }
        }
        let mut hpts = Vec::new();
        for p in &series.hpoints {
            let i = ((p.t - ev.start) / ev.interval) as usize;
            let sv = PV::F(s.get(i).copied().unwrap_or(f64::NAN));
            let hv = PV::H(p.h.clone());
            let (l, r) = if swap { (&sv, &hv) } else { (&hv, &sv) };
            let (mut val, mut keep) = match elem_binop(op, l, r) {
                Ok((v, k, _)) => (v, k),
                Err(n) => {
                    note = Some(n);
                    continue;
                }
            };
            if cmp && swap {
                val = r.clone();
            }
            if return_bool {
                val = PV::F(btos(keep));
                keep = true;
            }
            if keep {
                match val {
                    PV::F(v) => pts.push(Sample { t: p.t, v }),
                    PV::H(h) => hpts.push(crate::engine::eval::HPoint { t: p.t, h }),
                }
            }
        }
        if pts.is_empty() && hpts.is_empty() {
            continue;
        }
        if !series.hpoints.is_empty() {
            pts.sort_by_key(|p| p.t);
        }
        series.points = pts;
        series.hpoints = hpts;
        series.drop_name |= drop;
        out.push(series);
    }
    if let Some(n) = note {
        report(ev, n);
    }
    out
}

struct Matching {
    on: bool,
    names: Vec<String>,
    card: Cardinality,
    /// The `group_left`/`group_right` labels.
    include: Vec<String>,
    fill: FillValues,
}

impl Matching {
    fn signature(&self, l: &Labels) -> String {
        let mut s = String::new();
        for x in l.iter() {
            let inc = if self.on {
                self.names.contains(&x.name)
            } else {
                x.name != METRIC_NAME && !self.names.contains(&x.name)
            };
            if inc {
                s.push_str(&x.name);
                s.push('\u{ff}');
                s.push_str(&x.value);
                s.push('\u{ff}');
            }
        }
        s
    }

    fn match_labels(&self, l: &Labels) -> Labels {
        let mut b = l.to_builder();
        if self.on {
            b.retain(|x| self.names.contains(&x.name));
        } else {
            b.retain(|x| x.name != METRIC_NAME && !self.names.contains(&x.name));
        }
        b.build()
    }
}

fn set_op(ev: &Ev, op: BinOp, l: Vec<Series>, r: Vec<Series>, m: &Matching) -> Result<Vec<Series>> {
    let lsig: Vec<String> = l.iter().map(|s| m.signature(&s.labels)).collect();
    let rsig: Vec<String> = r.iter().map(|s| m.signature(&s.labels)).collect();
    let mut out = OutBuilder::new(ev);
    let (mut lc, mut rc) = (StepCursor::new(l.len()), StepCursor::new(r.len()));
    let (mut lv, mut rv): (Gathered, Gathered) = (Vec::new(), Vec::new());
    let nl = l.len() as u64;
    for i in 0..ev.steps() {
        ev.check()?;
        let ts = ev.ts(i);
        lc.gather_any(&l, ts, &mut lv);
        rc.gather_any(&r, ts, &mut rv);
        let emit_l = |out: &mut OutBuilder, idx: usize, v: PV| {
            out.push_keyed_pv(
                idx as u64,
                || (l[idx].labels.clone(), l[idx].drop_name),
                ts,
                v,
            )
        };
        match op {
            BinOp::And => {
                if lv.is_empty() || rv.is_empty() {
                    continue;
                }
                let rs: HashSet<&str> = rv.iter().map(|&(j, _)| rsig[j].as_str()).collect();
                for (j, v) in &lv {
                    let j = *j;
                    if rs.contains(lsig[j].as_str()) {
                        emit_l(&mut out, j, v.clone())?;
                    }
                }
            }
            BinOp::Unless => {
                let rs: HashSet<&str> = rv.iter().map(|&(j, _)| rsig[j].as_str()).collect();
                for (j, v) in &lv {
                    let j = *j;
                    if !rs.contains(lsig[j].as_str()) {
                        emit_l(&mut out, j, v.clone())?;
                    }
                }
            }
            _ => {
                let ls: HashSet<&str> = lv.iter().map(|&(j, _)| lsig[j].as_str()).collect();
                for (j, v) in &lv {
                    emit_l(&mut out, *j, v.clone())?;
                }
                for (j, v) in &rv {
                    let j = *j;
                    if !ls.contains(rsig[j].as_str()) {
                        out.push_keyed_pv(
                            nl + j as u64,
                            || (r[j].labels.clone(), r[j].drop_name),
                            ts,
                            v.clone(),
                        )?;
                    }
                }
            }
        }
    }
    Ok(out.finish())
}

fn result_metric(
    lhs: &Labels,
    rhs: &Labels,
    op: BinOp,
    m: &Matching,
    include: &[String],
) -> Labels {
    let mut b = lhs.to_builder();
    if should_drop_name(op) {
        b.retain(|x| !is_metadata_label(&x.name));
    }
    if m.card == Cardinality::OneToOne {
        if m.on {
            b.retain(|x| m.names.contains(&x.name));
        } else {
            for n in &m.names {
                b.del(n);
            }
        }
    }
    for ln in include {
        match rhs.get(ln) {
            Some(v) if !v.is_empty() => {
                b.set(ln.clone(), v.to_string());
            }
            _ => {
                b.del(ln);
            }
        }
    }
    b.build()
}

/// What one matched (or filled) pair of elements produces at one step.
struct Pair<'a> {
    /// The "many" (or left) side's labels and name-dropping flag.
    a: (&'a Labels, bool),
    /// The "one" side's labels (a filled side: the other side's matching labels).
    b: &'a Labels,
    av: &'a PV,
    bv: &'a PV,
    /// Output series key: the same pair, filled or not, always lands in the same series.
    key: u64,
    sig: &'a str,
}

/// The state of [`vector_binop`] across the elements of one step.
struct StepState<'s> {
    one_to_one_seen: HashSet<&'s str>,
    many_seen: HashMap<&'s str, HashSet<Labels>>,
    /// Signatures of the "one" side that met an element of the other side.
    matched: HashSet<&'s str>,
}

#[allow(clippy::too_many_arguments)]
fn binop_pair<'s>(
    op: BinOp,
    m: &Matching,
    return_bool: bool,
    one_to_many: bool,
    p: Pair<'s>,
    st: &mut StepState<'s>,
    metric_cache: &mut HashMap<u64, Labels>,
    note: &mut Option<Note>,
    out: &mut OutBuilder,
    ts: i64,
) -> Result<()> {
    let (fl, fr) = if one_to_many {
        (p.bv, p.av)
    } else {
        (p.av, p.bv)
    };
    let (mut val, keep) = match elem_binop(op, fl, fr) {
        Ok((v, k, info)) => {
            if let Some(n) = info {
                *note = Some(n);
            }
            (v, k)
        }
        Err(n) => {
            *note = Some(n);
            return Ok(());
        }
    };
    st.matched.insert(p.sig);
    let metric = metric_cache
        .entry(p.key)
        .or_insert_with(|| result_metric(p.a.0, p.b, op, m, &m.include))
        .clone();
    // Checked before filtering, so a comparison cannot hide a bad match.
    if m.card == Cardinality::OneToOne {
        if !st.one_to_one_seen.insert(p.sig) {
            return Err(exec_err(
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
            ));
        }
    } else if !st
        .many_seen
        .entry(p.sig)
        .or_default()
        .insert(metric.clone())
    {
        return Err(exec_err(
            "multiple matches for labels: grouping labels must ensure unique matches",
        ));
    }
    if return_bool {
        val = PV::F(btos(keep));
    } else if !keep {
        return Ok(());
    }
    let drop = return_bool || (op.is_comparison() && p.a.1);
    out.push_keyed_pv(p.key, || (metric, drop), ts, val)
}

/// Vector/vector arithmetic and comparisons (Prometheus' `VectorBinop`), with the `fill`
/// modifiers: an element without a match meets the fill value of the missing side, carrying
/// the matching labels of the element it pairs with.
fn vector_binop(
    ev: &Ev,
    op: BinOp,
    l: Vec<Series>,
    r: Vec<Series>,
    m: &Matching,
    return_bool: bool,
) -> Result<Vec<Series>> {
    let one_to_many = m.card == Cardinality::OneToMany;
    // The "many" (or left) side is `a`, the "one" side is `b`; as in Prometheus the swap
    // also swaps which fill value a missing side takes.
    let (a, b) = if one_to_many { (r, l) } else { (l, r) };
    let asig: Vec<String> = a.iter().map(|s| m.signature(&s.labels)).collect();
    let bsig: Vec<String> = b.iter().map(|s| m.signature(&s.labels)).collect();
    // Labels a filled element takes: the matching labels of the element it pairs with.
    let a_fill_labels: Vec<Labels> = if m.fill.lhs.is_some() {
        b.iter().map(|s| m.match_labels(&s.labels)).collect()
    } else {
        Vec::new()
    };
    let b_fill_labels: Vec<Labels> = if m.fill.rhs.is_some() {
        a.iter().map(|s| m.match_labels(&s.labels)).collect()
    } else {
        Vec::new()
    };
    let mut out = OutBuilder::new(ev);
    let mut metric_cache: HashMap<u64, Labels> = HashMap::new();
    let (mut ac, mut bc) = (StepCursor::new(a.len()), StepCursor::new(b.len()));
    let (mut av, mut bv): (Gathered, Gathered) = (Vec::new(), Vec::new());
    let mut note = None;
    let nb = b.len() as u64 + 1;
    // Keys: a matched pair j·nb + k; `a[j]` with the right side filled j·nb + b.len();
    // `b[k]` with the left side filled a.len()·nb + k.
    let fill_a_base = a.len() as u64 * nb;
    let no_fill = m.fill.lhs.is_none() && m.fill.rhs.is_none();
    for i in 0..ev.steps() {
        ev.check()?;
        let ts = ev.ts(i);
        ac.gather_any(&a, ts, &mut av);
        bc.gather_any(&b, ts, &mut bv);
        if (av.is_empty() && bv.is_empty()) || ((av.is_empty() || bv.is_empty()) && no_fill) {
            continue;
        }
        let mut right: HashMap<&str, (usize, &PV)> = HashMap::with_capacity(bv.len());
        for (j, v) in &bv {
            let j = *j;
            if let Some(&(k, _)) = right.get(bsig[j].as_str()) {
                let side = if one_to_many { "left" } else { "right" };
                let (mut d1, mut d2) = (prom_labels(&b[j].labels), prom_labels(&b[k].labels));
                if d1 > d2 {
                    std::mem::swap(&mut d1, &mut d2);
                }
                return Err(exec_err(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{d1}, {d2}];many-to-many matching not allowed: matching labels must be unique on one side",
                    prom_labels(&m.match_labels(&b[j].labels)),
                )));
            }
            right.insert(bsig[j].as_str(), (j, v));
        }
        let mut st = StepState {
            one_to_one_seen: HashSet::new(),
            many_seen: HashMap::new(),
            matched: HashSet::new(),
        };
        let rhs_fill = m.fill.rhs.map(PV::F);
        for (j, v) in &av {
            let j = *j;
            let sig = asig[j].as_str();
            let (key, blabels, bval) = match right.get(sig) {
                Some(&(k, rv)) => (j as u64 * nb + k as u64, &b[k].labels, rv),
                None => match &rhs_fill {
                    Some(f) => (j as u64 * nb + b.len() as u64, &b_fill_labels[j], f),
                    None => continue,
                },
            };
            let pair = Pair {
                a: (&a[j].labels, a[j].drop_name),
                b: blabels,
                av: v,
                bv: bval,
                key,
                sig,
            };
            binop_pair(
                op,
                m,
                return_bool,
                one_to_many,
                pair,
                &mut st,
                &mut metric_cache,
                &mut note,
                &mut out,
                ts,
            )?;
        }
        if let Some(f) = m.fill.lhs {
            let fv = PV::F(f);
            for (k, v) in &bv {
                let k = *k;
                let sig = bsig[k].as_str();
                if st.matched.contains(sig) {
                    continue;
                }
                let pair = Pair {
                    a: (&a_fill_labels[k], false),
                    b: &b[k].labels,
                    av: &fv,
                    bv: v,
                    key: fill_a_base + k as u64,
                    sig,
                };
                binop_pair(
                    op,
                    m,
                    return_bool,
                    one_to_many,
                    pair,
                    &mut st,
                    &mut metric_cache,
                    &mut note,
                    &mut out,
                    ts,
                )?;
            }
        }
    }
    if let Some(n) = note {
        report(ev, n);
    }
    Ok(out.finish())
}
