//! `label_replace` and `label_join`: they rewrite each series' labels once; series that end
//! up with the same labels are merged, and two samples at the same step are an error.

use super::{invalid_utf8, string_arg, valid_label_name};
use crate::engine::eval::{Ev, Result, Series, Val, exec_err};
use std::collections::HashMap;
use vigil_model::{Labels, METRIC_NAME};
use vigil_promql_parser::Expr;

pub(super) fn label_replace(ev: &Ev, args: &[&Expr]) -> Result<Val> {
    if args.len() != 5 {
        return Err(exec_err("label_replace() needs 5 arguments"));
    }
    let dst = string_arg(args[1])?;
    let repl = string_arg(args[2])?;
    let src = string_arg(args[3])?;
    let re_str = string_arg(args[4])?;
    let re = vigil_model::matcher::anchored_regex(&re_str).map_err(|_| {
        exec_err(format!(
            "invalid regular expression in label_replace(): {re_str}"
        ))
    })?;
    if !valid_label_name(&dst) || invalid_utf8(args[1]) {
        return Err(exec_err(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let input = ev.eval_vector(args[0])?;
    let mut out = Vec::with_capacity(input.len());
    for mut s in input {
        let sv = s.labels.get(&src).unwrap_or("").to_string();
        if let Some(caps) = re.captures(&sv) {
            let mut res = String::new();
            caps.expand(&repl, &mut res);
            let mut b = s.labels.to_builder();
            b.set(dst.clone(), res);
            s.labels = b.build();
            if dst == METRIC_NAME {
                s.drop_name = false;
            }
        }
        out.push(s);
    }
    merge(out).map(Val::Vector)
}

pub(super) fn label_join(ev: &Ev, args: &[&Expr]) -> Result<Val> {
    if args.len() < 3 {
        return Err(exec_err("label_join() needs at least 3 arguments"));
    }
    let dst = string_arg(args[1])?;
    let sep = string_arg(args[2])?;
    let mut srcs = Vec::new();
    for a in &args[3..] {
        let s = string_arg(a)?;
        if !valid_label_name(&s) || invalid_utf8(a) {
            return Err(exec_err(format!(
                "invalid source label name in label_join(): {s}"
            )));
        }
        srcs.push(s);
    }
    if !valid_label_name(&dst) || invalid_utf8(args[1]) {
        return Err(exec_err(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let input = ev.eval_vector(args[0])?;
    let mut out = Vec::with_capacity(input.len());
    for mut s in input {
        let vals: Vec<&str> = srcs.iter().map(|n| s.labels.get(n).unwrap_or("")).collect();
        let joined = vals.join(&sep);
        let mut b = s.labels.to_builder();
        b.set(dst.clone(), joined);
        s.labels = b.build();
        if dst == METRIC_NAME {
            s.drop_name = false;
        }
        out.push(s);
    }
    merge(out).map(Val::Vector)
}

/// Merges series with equal labels; samples of two series at one step are an error.
fn merge(series: Vec<Series>) -> Result<Vec<Series>> {
    let mut idx: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<Series> = Vec::with_capacity(series.len());
    for s in series {
        match idx.get(&s.labels) {
            None => {
                idx.insert(s.labels.clone(), out.len());
                out.push(s);
            }
            Some(&i) => {
                let o = &mut out[i];
                let mut pts = Vec::with_capacity(o.points.len() + s.points.len());
                let (mut a, mut b) = (o.points.iter().peekable(), s.points.iter().peekable());
                loop {
                    match (a.peek(), b.peek()) {
                        (Some(x), Some(y)) if x.t == y.t => {
                            return Err(exec_err(
                                "vector cannot contain metrics with the same labelset",
                            ));
                        }
                        (Some(x), Some(y)) => {
                            if x.t < y.t {
                                pts.push(**x);
                                a.next();
                            } else {
                                pts.push(**y);
                                b.next();
                            }
                        }
                        (Some(x), None) => {
                            pts.push(**x);
                            a.next();
                        }
                        (None, Some(y)) => {
                            pts.push(**y);
                            b.next();
                        }
                        (None, None) => break,
                    }
                }
                o.points = pts;
                o.drop_name |= s.drop_name;
            }
        }
    }
    Ok(out)
}
