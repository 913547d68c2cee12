//! Turns a parsed expression into the one evaluated: duration expressions (`x[5m * 2]`,
//! `offset step()`) become fixed durations for the query's step and range, as Prometheus'
//! `PreprocessExpr` resolves them before evaluation. The tree is cloned only when it holds
//! such a duration.

use super::EngineError;
use vigil_promql_parser::{Duration, Expr};

/// Whether any duration in `e` depends on the query.
fn has_duration_expr(e: &Expr) -> bool {
    let mut found = false;
    visit(e, &mut |d: &Duration| found |= d.fixed().is_none());
    found
}

fn visit(e: &Expr, f: &mut impl FnMut(&Duration)) {
    match e {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Duration(_) => {}
        Expr::Paren(p) => visit(&p.expr, f),
        Expr::Unary(u) => visit(&u.expr, f),
        Expr::Binary(b) => {
            visit(&b.lhs, f);
            visit(&b.rhs, f);
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                visit(p, f);
            }
            visit(&a.expr, f);
        }
        Expr::Call(c) => c.args.iter().for_each(|a| visit(a, f)),
        Expr::VectorSelector(vs) => f(&vs.offset),
        Expr::MatrixSelector(ms) => {
            f(&ms.vs.offset);
            f(&ms.range);
        }
        Expr::Subquery(sq) => {
            f(&sq.offset);
            f(&sq.range);
            if let Some(s) = &sq.step {
                f(s);
            }
            visit(&sq.expr, f);
        }
    }
}

fn resolve_in(e: &mut Expr, step: i64, range: i64) -> Result<(), EngineError> {
    let fix = |d: &mut Duration, neg: bool| -> Result<(), EngineError> {
        if d.fixed().is_none() {
            *d = Duration::Fixed(d.resolve(step, range, neg).map_err(EngineError::Parse)?);
        }
        Ok(())
    };
    match e {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Duration(_) => Ok(()),
        Expr::Paren(p) => resolve_in(&mut p.expr, step, range),
        Expr::Unary(u) => resolve_in(&mut u.expr, step, range),
        Expr::Binary(b) => {
            resolve_in(&mut b.lhs, step, range)?;
            resolve_in(&mut b.rhs, step, range)
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &mut a.param {
                resolve_in(p, step, range)?;
            }
            resolve_in(&mut a.expr, step, range)
        }
        Expr::Call(c) => c
            .args
            .iter_mut()
            .try_for_each(|a| resolve_in(a, step, range)),
        Expr::VectorSelector(vs) => fix(&mut vs.offset, true),
        Expr::MatrixSelector(ms) => {
            fix(&mut ms.vs.offset, true)?;
            fix(&mut ms.range, false)
        }
        Expr::Subquery(sq) => {
            fix(&mut sq.offset, true)?;
            fix(&mut sq.range, false)?;
            if let Some(s) = &mut sq.step {
                fix(s, false)?;
            }
            resolve_in(&mut sq.expr, step, range)
        }
    }
}

/// `e` with every duration fixed for a query of `step` and `range` (ms; 0 and 0 for an
/// instant query), or `None` when it has no duration expression to resolve.
pub(crate) fn resolve_durations(
    e: &Expr,
    step: i64,
    range: i64,
) -> Result<Option<Expr>, EngineError> {
    if !has_duration_expr(e) {
        return Ok(None);
    }
    let mut e = e.clone();
    resolve_in(&mut e, step, range)?;
    Ok(Some(e))
}

/// A fixed duration in milliseconds (every duration is fixed once resolved).
pub(crate) fn ms(d: &Duration) -> i64 {
    d.fixed().unwrap_or(0)
}
