//! Selectors whose histograms only need their count and sum (Prometheus'
//! `HistogramStatsIterator`): those under `histogram_count`, `histogram_sum` or
//! `histogram_avg` with no subquery, `histogram_quantile`, `histogram_fraction` or trim
//! operator on the way up. Prometheus then decodes no buckets and derives a missing
//! counter-reset hint from the previous sample, which is visible in results and annotations
//! (a sum over histograms with and without resets warns of the conflict), so vigil does the
//! same to the samples such a selector reads.

use std::collections::HashSet;
use std::sync::Arc;
use vigil_model::histogram::{CounterResetHint, FloatHistogram};
use vigil_model::{HistogramSample, is_stale_nan};
use vigil_promql_parser::{BinOp, Expr, VectorSelector};

/// The addresses of the stats-only selectors of `e` (stable while `e` is being evaluated).
pub(crate) fn detect(e: &Expr) -> HashSet<usize> {
    let mut out = HashSet::new();
    walk(e, false, false, &mut out);
    out
}

fn walk(e: &Expr, stats_fn: bool, blocked: bool, out: &mut HashSet<usize>) {
    let mut vs = |v: &VectorSelector| {
        if stats_fn && !blocked {
            out.insert(v as *const VectorSelector as usize);
        }
    };
    match e {
        Expr::VectorSelector(v) => vs(v),
        Expr::MatrixSelector(m) => vs(&m.vs),
        Expr::Subquery(s) => walk(&s.expr, stats_fn, true, out),
        Expr::Paren(p) => walk(&p.expr, stats_fn, blocked, out),
        Expr::Unary(u) => walk(&u.expr, stats_fn, blocked, out),
        Expr::Aggregate(a) => {
            walk(&a.expr, stats_fn, blocked, out);
            if let Some(p) = &a.param {
                walk(p, stats_fn, blocked, out);
            }
        }
        Expr::Binary(b) => {
            let blocked = blocked || matches!(b.op, BinOp::TrimUpper | BinOp::TrimLower);
            walk(&b.lhs, stats_fn, blocked, out);
            walk(&b.rhs, stats_fn, blocked, out);
        }
        Expr::Call(c) => {
            let name = c.func.name;
            let s =
                stats_fn || matches!(name, "histogram_count" | "histogram_sum" | "histogram_avg");
            let b = blocked
                || matches!(
                    name,
                    "histogram_quantile" | "histogram_quantiles" | "histogram_fraction"
                );
            for a in &c.args {
                walk(a, s, b, out);
            }
        }
        _ => {}
    }
}

/// The samples as the stats iterator yields them: count, sum, schema and hint only; an
/// unknown hint becomes "reset" or "no reset" by comparing with the previous sample.
pub(crate) fn strip(samples: Vec<HistogramSample>) -> Vec<HistogramSample> {
    let mut last: Option<Arc<FloatHistogram>> = None;
    samples
        .into_iter()
        .map(|s| {
            let src = &s.h;
            let mut hint = src.counter_reset_hint;
            if !is_stale_nan(src.sum) {
                if hint == CounterResetHint::Unknown {
                    hint = match &last {
                        None => CounterResetHint::Unknown,
                        Some(l) if src.detect_reset(l) => CounterResetHint::CounterReset,
                        Some(_) => CounterResetHint::NotCounterReset,
                    };
                }
                let mut l = FloatHistogram::clone(src);
                l.counter_reset_hint = hint;
                last = Some(Arc::new(l));
            }
            let h = FloatHistogram {
                counter_reset_hint: hint,
                schema: src.schema,
                count: src.count,
                sum: src.sum,
                ..Default::default()
            };
            HistogramSample {
                t: s.t,
                h: Arc::new(h),
            }
        })
        .collect()
}
