//! PromQL text for a syntax tree, in the form of Prometheus' `String()` methods
//! (`printer.go`): what `/api/v1/format_query` returns and what the differential tests
//! compare. The output parses back to the same tree (up to positions).
//!
//! Two differences follow from the tree's shape: a metric name given as a lone quoted
//! string (`{"foo"}`) prints as `foo` when it is a valid identifier (Prometheus prints
//! `{__name__="foo"}`), and a literal inside a duration expression prints in seconds
//! (`5m * 2` prints `300 * 2`), the tree keeping no "written as a duration" flag there.

use crate::ast::*;
use crate::lexer::go_quote;
use crate::parser::is_name_matcher;
use std::fmt::{self, Write};
use vigil_model::Matcher;

/// `model.Duration(ms).String()` of prometheus/common.
pub fn format_duration_ms(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut ms = ms;
    let mut out = String::new();
    let mut unit = |name: &str, mult: i64, exact: bool| {
        if exact && ms % mult != 0 {
            return;
        }
        let v = ms / mult;
        if v > 0 {
            let _ = write!(out, "{v}{name}");
            ms -= v * mult;
        }
    };
    const DAY: i64 = 24 * 3_600_000;
    unit("y", 365 * DAY, true);
    unit("w", 7 * DAY, true);
    unit("d", DAY, false);
    unit("h", 3_600_000, false);
    unit("m", 60_000, false);
    unit("s", 1000, false);
    unit("ms", 1, false);
    out
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`.
pub(crate) fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// Go's `%v` of a float (fill values print that way).
fn format_float_v(v: f64) -> String {
    vigil_model::gofmt::g(v, None)
}

fn write_labels(f: &mut fmt::Formatter<'_>, labels: &[String]) -> fmt::Result {
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        if vigil_model::names::is_legacy_label_name(l) {
            f.write_str(l)?;
        } else {
            f.write_str(&go_quote(l))?;
        }
    }
    Ok(())
}

/// Prometheus' `Matcher.String()`.
fn matcher_string(m: &Matcher) -> String {
    let name = if vigil_model::names::is_legacy_label_name(&m.name) {
        m.name.clone()
    } else {
        go_quote(&m.name)
    };
    format!("{name}{}{}", m.op_str(), go_quote(&m.value))
}

fn write_at(f: &mut fmt::Formatter<'_>, at: &Option<At>) -> fmt::Result {
    match at {
        Some(At::Timestamp(ms)) => write!(f, " @ {:.3}", *ms as f64 / 1000.0),
        Some(At::Start) => f.write_str(" @ start()"),
        Some(At::End) => f.write_str(" @ end()"),
        None => Ok(()),
    }
}

fn write_offset(f: &mut fmt::Formatter<'_>, offset: &Duration) -> fmt::Result {
    match offset {
        Duration::Fixed(0) => Ok(()),
        Duration::Fixed(ms) if *ms > 0 => write!(f, " offset {}", format_duration_ms(*ms)),
        Duration::Fixed(ms) => write!(f, " offset -{}", format_duration_ms(-*ms)),
        Duration::Expr(e) => write!(f, " offset {e}"),
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Duration::Fixed(ms) if *ms < 0 => write!(f, "-{}", format_duration_ms(-*ms)),
            Duration::Fixed(ms) => f.write_str(&format_duration_ms(*ms)),
            Duration::Expr(e) => write!(f, "{e}"),
        }
    }
}

impl fmt::Display for DurationExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationExpr::Number { secs, .. } => f.write_str(&format_float(*secs)),
            DurationExpr::Step { .. } => f.write_str("step()"),
            DurationExpr::Range { .. } => f.write_str("range()"),
            DurationExpr::Neg { expr, .. } => write!(f, "-{expr}"),
            DurationExpr::Paren { expr, .. } => write!(f, "({expr})"),
            DurationExpr::Binary { op, lhs, rhs, .. } => {
                let sym = match op {
                    DurationOp::MinOf => return write!(f, "min_of({lhs}, {rhs})"),
                    DurationOp::MaxOf => return write!(f, "max_of({lhs}, {rhs})"),
                    DurationOp::Add => "+",
                    DurationOp::Sub => "-",
                    DurationOp::Mul => "*",
                    DurationOp::Div => "/",
                    DurationOp::Mod => "%",
                    DurationOp::Pow => "^",
                };
                write!(f, "{lhs} {sym} {rhs}")
            }
        }
    }
}

/// Prints the selector without its modifiers (for matrix selectors) or with them.
fn write_selector(f: &mut fmt::Formatter<'_>, vs: &VectorSelector, modifiers: bool) -> fmt::Result {
    let printable_name = vs
        .name
        .as_deref()
        .filter(|n| !n.is_empty() && vigil_model::names::is_legacy_metric_name(n));
    let groups: Vec<Vec<String>> = std::iter::once(&vs.matchers)
        .chain(vs.or_matchers.iter())
        .map(|g| {
            let mut v: Vec<String> = g
                .iter()
                .filter(|m| !printable_name.is_some_and(|n| is_name_matcher(m, n)))
                .map(matcher_string)
                .collect();
            v.sort();
            v
        })
        .collect();
    if let Some(n) = printable_name {
        f.write_str(n)?;
    }
    if groups.iter().any(|g| !g.is_empty()) {
        f.write_char('{')?;
        for (i, g) in groups.iter().enumerate() {
            if i > 0 {
                f.write_str(" or ")?;
            }
            f.write_str(&g.join(","))?;
        }
        f.write_char('}')?;
    } else if printable_name.is_none() {
        f.write_str("{}")?;
    }
    if modifiers {
        write_at(f, &vs.at)?;
        if vs.anchored {
            f.write_str(" anchored")?;
        } else if vs.smoothed {
            f.write_str(" smoothed")?;
        }
        write_offset(f, &vs.offset)?;
    }
    Ok(())
}

impl fmt::Display for VectorSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_selector(f, self, true)
    }
}

impl fmt::Display for VectorMatching {
    /// The modifiers after a binary operator (with a leading space), as Prometheus'
    /// `getMatchingStr`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let grouped = matches!(self.card, Cardinality::ManyToOne | Cardinality::OneToMany);
        if !self.matching_labels.is_empty() || self.on || grouped {
            f.write_str(if self.on { " on (" } else { " ignoring (" })?;
            write_labels(f, &self.matching_labels)?;
            f.write_char(')')?;
        }
        if grouped {
            let side = if self.card == Cardinality::ManyToOne {
                "left"
            } else {
                "right"
            };
            write!(f, " group_{side} (")?;
            write_labels(f, &self.include)?;
            f.write_char(')')?;
        }
        match (self.fill.lhs, self.fill.rhs) {
            (Some(l), Some(r)) if l == r => write!(f, " fill ({})", format_float_v(l))?,
            (l, r) => {
                if let Some(l) = l {
                    write!(f, " fill_left ({})", format_float_v(l))?;
                }
                if let Some(r) = r {
                    write!(f, " fill_right ({})", format_float_v(r))?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::NumberLiteral(n) => {
                if n.duration {
                    let ns = n.val.abs() * 1e9;
                    let ms = (ns as i64) / 1_000_000;
                    if n.val < 0.0 {
                        write!(f, "-{}", format_duration_ms(ms))
                    } else {
                        f.write_str(&format_duration_ms(ms))
                    }
                } else {
                    f.write_str(&format_float(n.val))
                }
            }
            Expr::StringLiteral(s) => f.write_str(&go_quote(&s.val)),
            Expr::Paren(p) => write!(f, "({})", p.expr),
            Expr::Unary(u) => {
                let op = if u.op == UnaryOp::Neg { "-" } else { "+" };
                write!(f, "{op}{}", u.expr)
            }
            Expr::Binary(b) => {
                write!(f, "{} {}", b.lhs, b.op)?;
                if b.return_bool {
                    f.write_str(" bool")?;
                }
                if let Some(vm) = &b.matching {
                    write!(f, "{vm}")?;
                }
                write!(f, " {}", b.rhs)
            }
            Expr::Aggregate(a) => {
                f.write_str(a.op.as_str())?;
                if a.without {
                    f.write_str(" without (")?;
                    write_labels(f, &a.grouping)?;
                    f.write_str(") ")?;
                } else if !a.grouping.is_empty() {
                    f.write_str(" by (")?;
                    write_labels(f, &a.grouping)?;
                    f.write_str(") ")?;
                }
                f.write_char('(')?;
                if let Some(p) = &a.param {
                    write!(f, "{p}, ")?;
                }
                write!(f, "{})", a.expr)
            }
            Expr::Call(c) => {
                write!(f, "{}(", c.func.name)?;
                for (i, a) in c.args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_char(')')
            }
            Expr::VectorSelector(vs) => write_selector(f, vs, true),
            Expr::MatrixSelector(m) => {
                write_selector(f, &m.vs, false)?;
                write!(f, "[{}]", m.range)?;
                if m.vs.anchored {
                    f.write_str(" anchored")?;
                } else if m.vs.smoothed {
                    f.write_str(" smoothed")?;
                }
                write_at(f, &m.vs.at)?;
                write_offset(f, &m.vs.offset)
            }
            Expr::Subquery(s) => {
                write!(f, "{}[{}:", s.expr, s.range)?;
                if let Some(step) = &s.step {
                    write!(f, "{step}")?;
                }
                f.write_char(']')?;
                write_at(f, &s.at)?;
                write_offset(f, &s.offset)
            }
            Expr::Duration(d) => write!(f, "{d}"),
        }
    }
}
