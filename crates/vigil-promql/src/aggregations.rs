//! Aggregation operators with `by`/`without`, after Prometheus' `rangeEvalAgg`.
//!
//! Each input series is assigned its group once; every step then folds the series present at
//! that step into per-group accumulators, so the cost per step is one pass over the series
//! without hashing. Sums use Kahan–Neumaier compensation and `avg` switches to an incremental
//! mean when the sum would overflow, exactly as Prometheus does, so results match to the bit.

use crate::engine::eval::{
    Ev, OutBuilder, Result, Series, StepCursor, Val, exec_err, is_metadata_label, unwrap_parens,
};
use crate::functions::{format_float, kahan_sum_inc, quantile, valid_label_name};
use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};
use std::collections::HashMap;
use vigil_model::{Labels, Sample};

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
    let op = a.op.id();
    let (without, names) = match &a.modifier {
        None => (false, Vec::new()),
        Some(LabelModifier::Include(l)) => (false, l.labels.clone()),
        Some(LabelModifier::Exclude(l)) => (true, l.labels.clone()),
    };
    let g = Grouping { without, names };
    if op == token::T_COUNT_VALUES {
        let Some(p) = &a.param else {
            return Err(exec_err("count_values needs a label name"));
        };
        let Expr::StringLiteral(s) = unwrap_parens(p) else {
            return Err(exec_err("count_values needs a string parameter"));
        };
        if !valid_label_name(&s.val) {
            return Err(exec_err(format!("invalid label name {:?}", s.val)));
        }
        let input = ev.eval_vector(&a.expr)?;
        return count_values(ev, &g, &s.val, input).map(Val::Vector);
    }
    let param = match &a.param {
        Some(p) => Some(ev.eval_scalar(p)?),
        None => None,
    };
    let input = ev.eval_vector(&a.expr)?;
    let param = param.unwrap_or_default();
    match op {
        token::T_TOPK | token::T_BOTTOMK | token::T_LIMITK | token::T_LIMIT_RATIO => {
            aggregate_k(ev, op, &g, &param, input).map(Val::Vector)
        }
        _ => aggregate(ev, op, &g, &param, input).map(Val::Vector),
    }
}

#[derive(Default, Clone)]
struct Acc {
    seen: bool,
    v: f64,
    mean: f64,
    c: f64,
    count: f64,
    incremental: bool,
    values: Vec<f64>,
}

fn aggregate(
    ev: &Ev,
    op: TokenId,
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
                labels: gl,
                drop_name: false,
                points: Vec::new(),
            });
            out.len() - 1
        });
        out[gi].drop_name |= s.drop_name;
        group_of.push(gi);
    }
    let mut accs = vec![Acc::default(); out.len()];
    let mut cur = StepCursor::new(input.len());
    let mut vals = Vec::new();
    for i in 0..ev.steps() {
        ev.check()?;
        let ts = ev.ts(i);
        let q = param.get(i).copied().unwrap_or(f64::NAN);
        if op == token::T_QUANTILE && (q.is_nan() || !(0.0..=1.0).contains(&q)) {
            ev.sh.warn(format!(
                "PromQL warning: quantile value should be between 0 and 1, got {}",
                format_float(q)
            ));
        }
        cur.gather(&input, ts, &mut vals);
        if vals.is_empty() {
            continue;
        }
        for a in accs.iter_mut() {
            a.seen = false;
            a.values.clear();
        }
        for &(si, f) in &vals {
            let a = &mut accs[group_of[si]];
            if !a.seen {
                *a = Acc {
                    seen: true,
                    v: f,
                    mean: f,
                    c: 0.0,
                    count: 1.0,
                    incremental: false,
                    values: std::mem::take(&mut a.values),
                };
                match op {
                    token::T_STDVAR | token::T_STDDEV => {
                        a.v = if f.is_nan() || f.is_infinite() {
                            f64::NAN
                        } else {
                            0.0
                        };
                    }
                    token::T_QUANTILE => a.values.push(f),
                    token::T_GROUP => a.v = 1.0,
                    _ => {}
                }
                continue;
            }
            match op {
                token::T_SUM => {
                    (a.v, a.c) = kahan_sum_inc(f, a.v, a.c);
                }
                token::T_AVG => {
                    a.count += 1.0;
                    if !a.incremental {
                        let (nv, nc) = kahan_sum_inc(f, a.v, a.c);
                        if !nv.is_infinite() {
                            (a.v, a.c) = (nv, nc);
                            continue;
                        }
                        a.incremental = true;
                        a.mean = a.v / (a.count - 1.0);
                        a.c /= a.count - 1.0;
                    }
                    if a.mean.is_infinite() {
                        if f.is_infinite() && (a.mean > 0.0) == (f > 0.0) {
                            continue;
                        }
                        if !f.is_infinite() && !f.is_nan() {
                            continue;
                        }
                    }
                    let current = a.mean + a.c;
                    (a.mean, a.c) = kahan_sum_inc(f / a.count - current / a.count, a.mean, a.c);
                }
                token::T_GROUP => {}
                token::T_MAX => {
                    if a.v < f || a.v.is_nan() {
                        a.v = f;
                    }
                }
                token::T_MIN => {
                    if a.v > f || a.v.is_nan() {
                        a.v = f;
                    }
                }
                token::T_COUNT => a.count += 1.0,
                token::T_STDVAR | token::T_STDDEV => {
                    a.count += 1.0;
                    let delta = f - a.mean;
                    a.mean += delta / a.count;
                    a.v += delta * (f - a.mean);
                }
                token::T_QUANTILE => a.values.push(f),
                _ => return Err(exec_err(format!("unknown aggregation {op}"))),
            }
        }
        for (gi, a) in accs.iter_mut().enumerate() {
            if !a.seen {
                continue;
            }
            let v = match op {
                token::T_AVG => {
                    if a.incremental {
                        a.mean + a.c
                    } else {
                        (a.v + a.c) / a.count
                    }
                }
                token::T_COUNT => a.count,
                token::T_STDVAR => a.v / a.count,
                token::T_STDDEV => (a.v / a.count).sqrt(),
                token::T_QUANTILE => quantile(q, &mut a.values),
                token::T_SUM => a.v + a.c,
                _ => a.v,
            };
            out[gi].points.push(Sample { t: ts, v });
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
    op: TokenId,
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
    let ratio_pos: Vec<f64> = if op == token::T_LIMIT_RATIO {
        input.iter().map(|s| sample_offset(&s.labels)).collect()
    } else {
        Vec::new()
    };
    let mut out = OutBuilder::new(ev);
    let mut cur = StepCursor::new(input.len());
    let mut vals = Vec::new();
    let mut groups: Vec<Vec<(usize, f64)>> = vec![Vec::new(); ngroups];
    for i in 0..ev.steps() {
        ev.check()?;
        let ts = ev.ts(i);
        let p = param.get(i).copied().unwrap_or(f64::NAN);
        let mut k = 0i64;
        let mut ratio = 0.0;
        if op == token::T_LIMIT_RATIO {
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
        cur.gather(&input, ts, &mut vals);
        for gv in groups.iter_mut() {
            gv.clear();
        }
        for &(si, f) in &vals {
            groups[group_of[si]].push((si, f));
        }
        for gv in groups.iter_mut() {
            if gv.is_empty() {
                continue;
            }
            match op {
                token::T_TOPK => {
                    gv.sort_by(|a, b| desc_nan_last(a.1, b.1));
                    gv.truncate(k as usize);
                }
                token::T_BOTTOMK => {
                    gv.sort_by(|a, b| asc_nan_last(a.1, b.1));
                    gv.truncate(k as usize);
                }
                token::T_LIMITK => gv.truncate(k as usize),
                _ => gv.retain(|&(si, _)| {
                    let off = ratio_pos[si];
                    (ratio >= 0.0 && off < ratio) || (ratio < 0.0 && off >= 1.0 + ratio)
                }),
            }
            for &(si, f) in gv.iter() {
                let s = &input[si];
                out.push_keyed(si as u64, || (s.labels.clone(), s.drop_name), ts, f)?;
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
    let mut vals = Vec::new();
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
        cur.gather(&input, ts, &mut vals);
        let mut counts: Vec<(Labels, f64)> = Vec::new();
        let mut idx: HashMap<Labels, usize> = HashMap::new();
        for &(si, f) in &vals {
            let mut b = input[si].labels.to_builder();
            b.set(label.to_string(), format_float(f));
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
