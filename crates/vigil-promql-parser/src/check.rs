//! Type checks, a port of Prometheus' `checkAST`: run after a successful parse, reporting
//! the first problem in the order Prometheus finds them (children before their parent).
//! It also settles binary expressions' vector matching as Prometheus does: dropped unless
//! both sides are instant vectors, many-to-many for the set operators.

use crate::ast::*;
use crate::parser::{ErrorKind, PResult, ParseError, is_name_matcher};

/// Go's `ValueType.String()` (`matrix`, `vector`), used by the subquery message.
fn go_type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Scalar => "scalar",
        ValueType::Vector => "vector",
        ValueType::Matrix => "matrix",
        ValueType::String => "string",
    }
}

pub(crate) fn check(e: &mut Expr, input: &str) -> PResult<ValueType> {
    Checker { input }.check(e, false)
}

struct Checker<'a> {
    input: &'a str,
}

impl Checker<'_> {
    fn err(&self, pos: PosRange, msg: String) -> ParseError {
        ParseError::new(ErrorKind::Semantic, pos, msg, self.input)
    }

    fn expect_type(&self, e: &mut Expr, want: ValueType, context: &str) -> PResult<()> {
        let t = self.check(e, false)?;
        if t != want {
            return Err(self.err(
                e.pos(),
                format!("expected type {want} in {context}, got {t}"),
            ));
        }
        Ok(())
    }

    /// The operator's part of a binary expression, without surrounding spaces.
    fn op_range(&self, b: &BinaryExpr) -> PosRange {
        let bytes = self.input.as_bytes();
        let is_space = |i: usize| matches!(bytes.get(i), Some(b' ' | b'\t' | b'\n' | b'\r'));
        let mut start = b.lhs.pos().end;
        while is_space(start) {
            start += 1;
        }
        let mut end = b.rhs.pos().start.saturating_sub(1);
        while end > start && is_space(end) {
            end -= 1;
        }
        PosRange::new(start, end)
    }

    fn check(&self, e: &mut Expr, bypass_empty_check: bool) -> PResult<ValueType> {
        let typ = e.value_type();
        let pos = e.pos();
        match e {
            Expr::Aggregate(a) => {
                self.expect_type(&mut a.expr, ValueType::Vector, "aggregation expression")?;
                if let Some(param) = &mut a.param {
                    let want = if a.op == AggOp::CountValues {
                        ValueType::String
                    } else {
                        ValueType::Scalar
                    };
                    self.expect_type(param, want, "aggregation parameter")?;
                }
            }
            Expr::Binary(b) => self.check_binary(b, pos)?,
            Expr::Call(c) => self.check_call(c)?,
            Expr::Paren(p) => {
                self.check(&mut p.expr, false)?;
            }
            Expr::Unary(u) => {
                let t = self.check(&mut u.expr, false)?;
                if t != ValueType::Scalar && t != ValueType::Vector {
                    return Err(self.err(
                        pos,
                        format!(
                            "unary expression only allowed on expressions of type scalar or instant vector, got \"{t}\""
                        ),
                    ));
                }
            }
            Expr::Subquery(s) => {
                let t = self.check(&mut s.expr, false)?;
                if t != ValueType::Vector {
                    return Err(self.err(
                        pos,
                        format!(
                            "subquery is only allowed on instant vector, got {} instead",
                            go_type_name(t)
                        ),
                    ));
                }
            }
            Expr::MatrixSelector(m) => self.check_selector(&m.vs, false)?,
            Expr::VectorSelector(vs) => self.check_selector(vs, bypass_empty_check)?,
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Duration(_) => {}
        }
        Ok(typ)
    }

    fn check_binary(&self, b: &mut BinaryExpr, pos: PosRange) -> PResult<()> {
        let lt = self.check(&mut b.lhs, false)?;
        let rt = self.check(&mut b.rhs, false)?;
        if b.return_bool && !b.op.is_comparison() {
            return Err(self.err(
                self.op_range(b),
                "bool modifier can only be used on comparison operators".into(),
            ));
        }
        if b.op.is_comparison()
            && !b.return_bool
            && lt == ValueType::Scalar
            && rt == ValueType::Scalar
        {
            return Err(self.err(
                self.op_range(b),
                "comparisons between scalars must use BOOL modifier".into(),
            ));
        }
        let op_range = self.op_range(b);
        let mut vm = b
            .matching
            .take()
            .unwrap_or_else(|| VectorMatching::new(Cardinality::OneToOne));
        if b.op.is_set_operator() && vm.card == Cardinality::OneToOne {
            vm.card = Cardinality::ManyToMany;
        }
        if vm.on
            && let Some(l) = vm.matching_labels.iter().find(|l| vm.include.contains(l))
        {
            return Err(self.err(
                op_range,
                format!(
                    "label {} must not occur in ON and GROUP clause at once",
                    crate::lexer::go_quote(l)
                ),
            ));
        }
        for (t, side) in [(lt, b.lhs.pos()), (rt, b.rhs.pos())] {
            if t != ValueType::Scalar && t != ValueType::Vector {
                return Err(self.err(
                    side,
                    "binary expression must contain only scalar and instant vector types".into(),
                ));
            }
        }
        let has_fill = vm.fill.lhs.is_some() || vm.fill.rhs.is_some();
        if lt != ValueType::Vector || rt != ValueType::Vector {
            if !vm.matching_labels.is_empty() {
                return Err(self.err(
                    pos,
                    "vector matching only allowed between instant vectors".into(),
                ));
            }
            if has_fill {
                return Err(self.err(
                    pos,
                    "filling in missing series only allowed between instant vectors".into(),
                ));
            }
            if b.op.is_set_operator() {
                return Err(self.err(
                    pos,
                    format!(
                        "set operator \"{}\" not allowed in binary scalar expression",
                        b.op
                    ),
                ));
            }
            return Ok(());
        }
        if b.op.is_set_operator() {
            if matches!(vm.card, Cardinality::OneToMany | Cardinality::ManyToOne) {
                return Err(self.err(
                    pos,
                    format!("no grouping allowed for \"{}\" operation", b.op),
                ));
            }
            if has_fill {
                return Err(self.err(
                    pos,
                    "filling in missing series not allowed for set operators".into(),
                ));
            }
        }
        b.matching = Some(vm);
        Ok(())
    }

    fn check_call(&self, c: &mut Call) -> PResult<()> {
        let f = c.func;
        let nargs = f.arg_types.len();
        let got = c.args.len();
        if f.variadic == 0 {
            if nargs != got {
                return Err(self.err(
                    c.pos,
                    format!(
                        "expected {nargs} argument(s) in call to \"{}\", got {got}",
                        f.name
                    ),
                ));
            }
        } else {
            let na = nargs - 1;
            if na > got {
                return Err(self.err(
                    c.pos,
                    format!(
                        "expected at least {na} argument(s) in call to \"{}\", got {got}",
                        f.name
                    ),
                ));
            }
            let max = na as i64 + i64::from(f.variadic);
            if f.variadic > 0 && max < got as i64 {
                return Err(self.err(
                    c.pos,
                    format!(
                        "expected at most {max} argument(s) in call to \"{}\", got {got}",
                        f.name
                    ),
                ));
            }
        }
        let mut bypass_second = false;
        if f.name == "info" && got > 1 {
            let arg = &c.args[1];
            if arg.value_type() != ValueType::Vector {
                return Err(self.err(
                    c.pos,
                    format!(
                        "expected type instant vector in call to function \"info\", got {}",
                        arg.value_type()
                    ),
                ));
            }
            match arg {
                Expr::VectorSelector(vs) if name_outside_braces(vs) => {
                    return Err(self.err(
                        arg.pos(),
                        "expected label selectors only, got vector selector instead".into(),
                    ));
                }
                Expr::VectorSelector(_) => bypass_second = true,
                _ => {
                    return Err(self.err(arg.pos(), "expected label selectors only".into()));
                }
            }
        }
        for (i, arg) in c.args.iter_mut().enumerate() {
            let idx = if i >= nargs {
                if f.variadic == 0 {
                    break;
                }
                nargs - 1
            } else {
                i
            };
            let t = self.check(arg, bypass_second && i == 1)?;
            let want = f.arg_types[idx];
            if t != want {
                return Err(self.err(
                    arg.pos(),
                    format!(
                        "expected type {want} in call to function \"{}\", got {t}",
                        f.name
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_selector(&self, vs: &VectorSelector, bypass_empty_check: bool) -> PResult<()> {
        let groups = std::iter::once(&vs.matchers).chain(vs.or_matchers.iter());
        if let Some(name) = vs.name.as_deref().filter(|_| name_outside_braces(vs)) {
            for g in groups {
                let Some((_, before)) = g.split_last() else {
                    continue;
                };
                if let Some(m) = before.iter().find(|m| m.name == "__name__") {
                    return Err(self.err(
                        vs.pos,
                        format!(
                            "metric name must not be set twice: {} or {}",
                            crate::lexer::go_quote(name),
                            crate::lexer::go_quote(&m.value)
                        ),
                    ));
                }
            }
            return Ok(());
        }
        if bypass_empty_check {
            return Ok(());
        }
        for g in groups {
            if !g.iter().any(|m| !m.matches_empty()) {
                return Err(self.err(
                    vs.pos,
                    "vector selector must contain at least one non-empty matcher".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Whether the selector's name was written before the braces (Prometheus appends its
/// matcher last); a name taken from a lone quoted string inside the braces is not.
pub(crate) fn name_outside_braces(vs: &VectorSelector) -> bool {
    match (&vs.name, vs.matchers.last()) {
        (Some(name), Some(m)) => is_name_matcher(m, name),
        _ => false,
    }
}
