//! Prometheus' `Pretty` formatting of an expression (what `/api/v1/format_query` returns).
//!
//! A node whose one-line form (`Display`, Prometheus' `String()`) fits in 100 bytes prints
//! on one line; a longer one is split: binary operands one level deeper around the
//! operator, call arguments and aggregation operands one per line inside the parentheses.
//! Every line a node starts is indented by two spaces per level. The quirks of Prometheus'
//! `prettier.go` are kept, as the output must be the same text: a subquery short enough
//! for one line is not indented, and a unary operator is glued to its operand's first line.
//! A duration expression standing as an expression prints its one-line form without
//! indentation, as Prometheus' `DurationExpr.Pretty` ignores the level.

use crate::ast::{AggregateExpr, Call, Expr, SubqueryExpr, UnaryOp};
use crate::lexer::go_quote;
use std::fmt::Write;

/// Prometheus' `maxCharactersPerLine`.
const MAX_CHARACTERS_PER_LINE: usize = 100;

impl Expr {
    /// The expression formatted as Prometheus' `parser.Prettify` does.
    pub fn prettify(&self) -> String {
        Pretty {
            width: MAX_CHARACTERS_PER_LINE,
        }
        .pretty(self, 0)
    }
}

/// Prettifies with a given line width (Prometheus' tests use 10).
struct Pretty {
    width: usize,
}

fn indent(level: usize) -> String {
    "  ".repeat(level)
}

impl Pretty {
    /// Whether the one-line form `s` is too long (in bytes, as Go's `len`).
    fn too_long(&self, s: &str) -> bool {
        s.len() > self.width
    }

    fn pretty(&self, e: &Expr, level: usize) -> String {
        match e {
            Expr::NumberLiteral(_)
            | Expr::StringLiteral(_)
            | Expr::VectorSelector(_)
            | Expr::MatrixSelector(_) => format!("{}{e}", indent(level)),
            Expr::Duration(d) => d.to_string(),
            Expr::Paren(p) => {
                let s = e.to_string();
                if !self.too_long(&s) {
                    return format!("{}{s}", indent(level));
                }
                format!(
                    "{ind}(\n{}\n{ind})",
                    self.pretty(&p.expr, level + 1),
                    ind = indent(level)
                )
            }
            Expr::Unary(u) => {
                let child = self.pretty(&u.expr, level);
                let op = match u.op {
                    UnaryOp::Neg => "-",
                    UnaryOp::Pos => "+",
                };
                format!("{}{op}{}", indent(level), child.trim())
            }
            Expr::Binary(b) => {
                let s = e.to_string();
                if !self.too_long(&s) {
                    return format!("{}{s}", indent(level));
                }
                let mut op = b.op.as_str().to_string();
                if b.return_bool {
                    op.push_str(" bool");
                }
                if let Some(vm) = &b.matching {
                    let _ = write!(op, "{vm}");
                }
                format!(
                    "{}\n{}{op}\n{}",
                    self.pretty(&b.lhs, level + 1),
                    indent(level),
                    self.pretty(&b.rhs, level + 1)
                )
            }
            Expr::Aggregate(a) => self.aggregate(e, a, level),
            Expr::Call(c) => self.call(e, c, level),
            Expr::Subquery(sq) => self.subquery(e, sq, level),
        }
    }

    fn aggregate(&self, e: &Expr, a: &AggregateExpr, level: usize) -> String {
        let s = e.to_string();
        let ind = indent(level);
        if !self.too_long(&s) {
            return format!("{ind}{s}");
        }
        let mut out = format!("{ind}{}(\n", aggregate_op_string(a));
        if a.op.takes_param()
            && let Some(p) = &a.param
        {
            let _ = writeln!(out, "{},", self.pretty(p, level + 1));
        }
        let _ = write!(out, "{}\n{ind})", self.pretty(&a.expr, level + 1));
        out
    }

    fn call(&self, e: &Expr, c: &Call, level: usize) -> String {
        let s = e.to_string();
        let ind = indent(level);
        if !self.too_long(&s) {
            return format!("{ind}{s}");
        }
        let args: Vec<String> = c.args.iter().map(|a| self.pretty(a, level + 1)).collect();
        format!("{ind}{}(\n{}\n{ind})", c.func.name, args.join(",\n"))
    }

    fn subquery(&self, e: &Expr, sq: &SubqueryExpr, level: usize) -> String {
        let s = e.to_string();
        if !self.too_long(&s) {
            // Not indented: Prometheus returns the one-line form as it is here.
            return s;
        }
        // The one-line form is the inner expression's followed by the `[range:step]`,
        // `@` and `offset` suffix.
        let inner = sq.expr.to_string();
        let suffix = s.strip_prefix(inner.as_str()).unwrap_or_default();
        format!("{}{suffix}", self.pretty(&sq.expr, level))
    }
}

/// Prometheus' `AggregateExpr.ShortString()`: the operator and its grouping, with a
/// trailing space after the grouping (`sum by (job) `).
fn aggregate_op_string(a: &AggregateExpr) -> String {
    let mut out = a.op.as_str().to_string();
    if a.without || !a.grouping.is_empty() {
        out.push_str(if a.without { " without (" } else { " by (" });
        for (i, l) in a.grouping.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            if vigil_model::names::is_legacy_label_name(l) {
                out.push_str(l);
            } else {
                out.push_str(&go_quote(l));
            }
        }
        out.push_str(") ");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::*;
    use crate::functions::lookup;
    use vigil_model::Matcher;

    fn p() -> PosRange {
        PosRange::default()
    }

    fn sel(name: &str, matchers: Vec<Matcher>) -> VectorSelector {
        let mut all = matchers;
        if !name.is_empty() {
            all.push(Matcher::equal("__name__", name));
        }
        VectorSelector {
            name: (!name.is_empty()).then(|| name.to_string()),
            matchers: all,
            or_matchers: Vec::new(),
            offset: Duration::Fixed(0),
            at: None,
            anchored: false,
            smoothed: false,
            pos: p(),
        }
    }

    fn vs(name: &str) -> Expr {
        Expr::VectorSelector(sel(name, Vec::new()))
    }

    fn vsm(name: &str, matchers: Vec<Matcher>) -> Expr {
        Expr::VectorSelector(sel(name, matchers))
    }

    fn ms(name: &str, matchers: Vec<Matcher>, range_ms: i64) -> Expr {
        Expr::MatrixSelector(MatrixSelector {
            vs: sel(name, matchers),
            range: Duration::Fixed(range_ms),
            end: 0,
        })
    }

    fn num(v: f64) -> Expr {
        Expr::NumberLiteral(NumberLiteral {
            val: v,
            duration: false,
            pos: p(),
        })
    }

    fn string(s: &str) -> Expr {
        Expr::StringLiteral(StringLiteral {
            val: s.to_string(),
            invalid_utf8: None,
            pos: p(),
        })
    }

    fn paren(e: Expr) -> Expr {
        Expr::Paren(ParenExpr {
            expr: Box::new(e),
            pos: p(),
        })
    }

    fn neg(e: Expr) -> Expr {
        Expr::Unary(UnaryExpr {
            op: UnaryOp::Neg,
            expr: Box::new(e),
            start: 0,
        })
    }

    fn both_vectors(l: &Expr, r: &Expr) -> bool {
        l.value_type() == ValueType::Vector && r.value_type() == ValueType::Vector
    }

    fn bin(op: BinOp, l: Expr, r: Expr) -> Expr {
        let matching = if op.is_set_operator() {
            Some(VectorMatching::new(Cardinality::ManyToMany))
        } else if both_vectors(&l, &r) {
            Some(VectorMatching::new(Cardinality::OneToOne))
        } else {
            None
        };
        Expr::Binary(BinaryExpr {
            op,
            lhs: Box::new(l),
            rhs: Box::new(r),
            matching,
            return_bool: false,
        })
    }

    fn bin_vm(op: BinOp, l: Expr, r: Expr, vm: VectorMatching) -> Expr {
        Expr::Binary(BinaryExpr {
            op,
            lhs: Box::new(l),
            rhs: Box::new(r),
            matching: Some(vm),
            return_bool: false,
        })
    }

    fn call(name: &str, args: Vec<Expr>) -> Expr {
        Expr::Call(Call {
            func: lookup(name).expect("function"),
            args,
            pos: p(),
        })
    }

    fn agg(op: AggOp, grouping: &[&str], without: bool, param: Option<Expr>, e: Expr) -> Expr {
        Expr::Aggregate(AggregateExpr {
            op,
            expr: Box::new(e),
            param: param.map(Box::new),
            grouping: grouping.iter().map(|s| s.to_string()).collect(),
            without,
            pos: p(),
        })
    }

    fn labels(ls: &[&str]) -> Vec<String> {
        ls.iter().map(|s| s.to_string()).collect()
    }

    fn eq(n: &str, v: &str) -> Matcher {
        Matcher::equal(n, v)
    }

    fn w10(e: &Expr) -> String {
        Pretty { width: 10 }.pretty(e, 0)
    }

    /// `task:errors:rate10s{job="s"}`
    fn task() -> Expr {
        vsm("task:errors:rate10s", vec![eq("job", "s")])
    }

    #[test]
    fn short_expressions_print_on_one_line() {
        assert_eq!(vs("foo").prettify(), "foo");
        assert_eq!(
            agg(AggOp::Sum, &["job"], false, None, task()).prettify(),
            r#"sum by (job) (task:errors:rate10s{job="s"})"#
        );
        assert_eq!(
            w10(&agg(AggOp::Sum, &[], false, None, vs("foo"))),
            "sum(foo)"
        );
        assert_eq!(w10(&bin(BinOp::Add, vs("a"), vs("b"))), "a + b");
        assert_eq!(w10(&paren(vs("foo"))), "(foo)");
        assert_eq!(w10(&num(-1.0)), "-1");
        assert_eq!(w10(&neg(vs("vector_selector"))), "-vector_selector");
    }

    #[test]
    fn aggregations_split() {
        assert_eq!(
            w10(&agg(AggOp::Sum, &[], false, None, task())),
            "sum(\n  task:errors:rate10s{job=\"s\"}\n)"
        );
        assert_eq!(
            w10(&agg(AggOp::Sum, &["job", "foo"], true, None, task())),
            "sum without (job, foo) (\n  task:errors:rate10s{job=\"s\"}\n)"
        );
        assert_eq!(
            w10(&agg(
                AggOp::Topk,
                &[],
                false,
                Some(num(10.0)),
                vsm("ask:errors:rate10s", vec![eq("job", "s")])
            )),
            "topk(\n  10,\n  ask:errors:rate10s{job=\"s\"}\n)"
        );
        let inner = agg(AggOp::Sum, &["job", "foo"], false, None, task());
        let mid = agg(AggOp::Sum, &["job", "foo"], false, None, inner);
        assert_eq!(
            w10(&agg(AggOp::Sum, &["job", "foo"], false, None, mid)),
            "sum by (job, foo) (\n  sum by (job, foo) (\n    sum by (job, foo) (\n      \
             task:errors:rate10s{job=\"s\"}\n    )\n  )\n)"
        );
        // Quoted UTF-8 grouping labels.
        assert_eq!(
            w10(&agg(AggOp::Count, &["ööö", "job"], false, None, vs("foo"))),
            "count by (\"ööö\", job) (\n  foo\n)"
        );
    }

    #[test]
    fn binary_expressions_split() {
        let mut cmp = bin(BinOp::Eql, vs("a"), num(1.0));
        if let Expr::Binary(b) = &mut cmp {
            b.return_bool = true;
        }
        assert_eq!(w10(&cmp), "  a\n== bool\n  1");
        let mut ign = VectorMatching::new(Cardinality::OneToOne);
        ign.matching_labels = labels(&["job"]);
        assert_eq!(
            w10(&bin_vm(BinOp::Add, vs("a"), vs("b"), ign)),
            "  a\n+ ignoring (job)\n  b"
        );
        assert_eq!(
            w10(&bin(BinOp::Add, vs("foo_1"), vs("foo_2"))),
            "  foo_1\n+\n  foo_2"
        );
        let three = bin(
            BinOp::Add,
            bin(BinOp::Add, vs("foo_1"), vs("foo_2")),
            vs("foo_3"),
        );
        assert_eq!(w10(&three), "    foo_1\n  +\n    foo_2\n+\n  foo_3");
        let short_lhs = bin(
            BinOp::Add,
            bin(BinOp::Add, vs("foo"), vs("baar")),
            vs("foo_3"),
        );
        assert_eq!(w10(&short_lhs), "  foo + baar\n+\n  foo_3");

        // foo_1 + ignoring(foo) foo_2 + ignoring(job) group_left foo_3 + on(instance) group_right foo_4
        let mut m1 = VectorMatching::new(Cardinality::OneToOne);
        m1.matching_labels = labels(&["foo"]);
        let mut m2 = VectorMatching::new(Cardinality::ManyToOne);
        m2.matching_labels = labels(&["job"]);
        let mut m3 = VectorMatching::new(Cardinality::OneToMany);
        m3.matching_labels = labels(&["instance"]);
        m3.on = true;
        let e = bin_vm(
            BinOp::Add,
            bin_vm(
                BinOp::Add,
                bin_vm(BinOp::Add, vs("foo_1"), vs("foo_2"), m1),
                vs("foo_3"),
                m2,
            ),
            vs("foo_4"),
            m3,
        );
        assert_eq!(
            w10(&e),
            "      foo_1\n    + ignoring (foo)\n      foo_2\n  + ignoring (job) group_left ()\n    \
             foo_3\n+ on (instance) group_right ()\n  foo_4"
        );
    }

    #[test]
    fn binary_modifiers_fill_and_trim() {
        let mut vm = VectorMatching::new(Cardinality::ManyToOne);
        vm.matching_labels = labels(&["b"]);
        vm.on = true;
        vm.fill = FillValues {
            lhs: Some(-23.0),
            rhs: Some(-23.0),
        };
        let e = bin_vm(BinOp::Add, vs("a"), vs("c"), vm);
        assert_eq!(e.prettify(), "a + on (b) group_left () fill (-23) c");
        assert_eq!(w10(&e), "  a\n+ on (b) group_left () fill (-23)\n  c");

        let mut vm = VectorMatching::new(Cardinality::OneToOne);
        vm.fill = FillValues {
            lhs: Some(-23.0),
            rhs: Some(42.0),
        };
        assert_eq!(
            bin_vm(BinOp::Add, vs("a"), vs("b"), vm).prettify(),
            "a + fill_left (-23) fill_right (42) b"
        );
        let trim = bin(BinOp::TrimUpper, vs("histogram_metric"), num(0.5));
        assert_eq!(trim.prettify(), "histogram_metric </ 0.5");
        assert_eq!(w10(&trim), "  histogram_metric\n</\n  0.5");
        assert_eq!(
            bin(BinOp::TrimLower, vs("h"), num(2.0)).prettify(),
            "h >/ 2"
        );
    }

    #[test]
    fn calls_split() {
        assert_eq!(
            w10(&call("rate", vec![ms("foo", vec![], 60_000)])),
            "rate(\n  foo[1m]\n)"
        );
        let hq = call(
            "histogram_quantile",
            vec![num(0.9), call("rate", vec![ms("foo", vec![], 60_000)])],
        );
        assert_eq!(
            w10(&hq),
            "histogram_quantile(\n  0.9,\n  rate(\n    foo[1m]\n  )\n)"
        );
        let up = vsm("up", vec![eq("job", "api-server"), eq("service", "a:c")]);
        let lr = call(
            "label_replace",
            vec![
                up,
                string("foo"),
                string("$1"),
                string("service"),
                string("(.*):.*"),
            ],
        );
        assert_eq!(
            w10(&lr),
            "label_replace(\n  up{job=\"api-server\",service=\"a:c\"},\n  \"foo\",\n  \"$1\",\n  \
             \"service\",\n  \"(.*):.*\"\n)"
        );
        assert_eq!(w10(&call("time", vec![])), "time()");
    }

    #[test]
    fn subqueries() {
        // rate(long_vector_selector[10m:1m] @ start() offset 1m)
        let sq = Expr::Subquery(SubqueryExpr {
            expr: Box::new(vs("long_vector_selector")),
            range: Duration::Fixed(600_000),
            step: Some(Duration::Fixed(60_000)),
            offset: Duration::Fixed(60_000),
            at: Some(At::Start),
            end: 0,
        });
        assert_eq!(
            w10(&call("rate", vec![sq])),
            "rate(\n  long_vector_selector[10m:1m] @ start() offset 1m\n)"
        );
        // max_over_time(rate(demo_api_request_duration_seconds_count[1m])[1m:] @ start() offset 1m)
        let sq = Expr::Subquery(SubqueryExpr {
            expr: Box::new(call(
                "rate",
                vec![ms(
                    "demo_api_request_duration_seconds_count",
                    vec![],
                    60_000,
                )],
            )),
            range: Duration::Fixed(60_000),
            step: None,
            offset: Duration::Fixed(60_000),
            at: Some(At::Start),
            end: 0,
        });
        assert_eq!(
            w10(&call("max_over_time", vec![sq])),
            "max_over_time(\n  rate(\n    demo_api_request_duration_seconds_count[1m]\n  )[1m:] \
             @ start() offset 1m\n)"
        );
        // A short subquery under a split node is not indented (as in Prometheus).
        let short = Expr::Subquery(SubqueryExpr {
            expr: Box::new(vs("x")),
            range: Duration::Fixed(300_000),
            step: None,
            offset: Duration::Fixed(0),
            at: None,
            end: 0,
        });
        assert_eq!(
            w10(&call("max_over_time", vec![short])),
            "max_over_time(\nx[5m:]\n)"
        );
    }

    #[test]
    fn parens_and_unary() {
        assert_eq!(w10(&paren(vs("_foo_long_"))), "(\n  _foo_long_\n)");
        assert_eq!(w10(&paren(paren(vs("foo_long")))), "(\n  (foo_long)\n)");
        assert_eq!(
            w10(&paren(paren(vs("_foo_long_")))),
            "(\n  (\n    _foo_long_\n  )\n)"
        );
        assert_eq!(
            w10(&paren(bin(BinOp::Add, vs("foo_long"), vs("bar_long")))),
            "(\n    foo_long\n  +\n    bar_long\n)"
        );
        assert_eq!(w10(&paren(bin(BinOp::Add, num(1.0), num(2.0)))), "(1 + 2)");
        assert_eq!(
            w10(&paren(neg(vs("vector_selector")))),
            "(\n  -vector_selector\n)"
        );
        let mut inner = sel("foo", vec![]);
        inner.at = Some(At::Start);
        let rate = call(
            "rate",
            vec![Expr::MatrixSelector(MatrixSelector {
                vs: inner,
                range: Duration::Fixed(60_000),
                end: 0,
            })],
        );
        let e = paren(neg(call("histogram_quantile", vec![num(0.9), neg(rate)])));
        assert_eq!(
            w10(&e),
            "(\n  -histogram_quantile(\n    0.9,\n    -rate(\n      foo[1m] @ start()\n    )\n  \
             )\n)"
        );
    }

    #[test]
    fn selectors_and_modifiers() {
        let mut s = sel("a", vec![]);
        s.at = Some(At::Timestamp(1000));
        assert_eq!(w10(&Expr::VectorSelector(s)), "a @ 1.000");
        let mut s = sel("a", vec![eq("b", "c")]);
        s.anchored = true;
        s.at = Some(At::Start);
        s.offset = Duration::Fixed(60_000);
        let m = Expr::MatrixSelector(MatrixSelector {
            vs: s,
            range: Duration::Fixed(300_000),
            end: 0,
        });
        assert_eq!(m.prettify(), r#"a{b="c"}[5m] anchored @ start() offset 1m"#);
        let mut s = sel("a", vec![]);
        s.smoothed = true;
        s.offset = Duration::Fixed(-420_000);
        assert_eq!(Expr::VectorSelector(s).prettify(), "a smoothed offset -7m");
        // Matchers sort; UTF-8 label names are quoted; `or` groups.
        let mut s = sel(
            "",
            vec![eq("a.b", "c"), Matcher::regex("a", "x|y").expect("regex")],
        );
        assert_eq!(
            Expr::VectorSelector(s.clone()).prettify(),
            r#"{"a.b"="c",a=~"x|y"}"#
        );
        s.or_matchers = vec![vec![Matcher::not_equal("b", "2")]];
        assert_eq!(
            Expr::VectorSelector(s).prettify(),
            r#"{"a.b"="c",a=~"x|y" or b!="2"}"#
        );
    }

    #[test]
    fn duration_expressions() {
        let step = || DurationExpr::Step { pos: p() };
        let secs = |s: f64| DurationExpr::Number { secs: s, pos: p() };
        let m = Expr::MatrixSelector(MatrixSelector {
            vs: sel("foo", vec![]),
            range: Duration::Expr(Box::new(DurationExpr::Binary {
                op: DurationOp::MaxOf,
                lhs: Box::new(DurationExpr::Range { pos: p() }),
                rhs: Box::new(secs(5.0)),
                pos: p(),
            })),
            end: 0,
        });
        let out = m.prettify();
        assert!(out.starts_with("foo[max_of(range(), "), "{out}");
        let mut s = sel("foo", vec![]);
        s.offset = Duration::Expr(Box::new(DurationExpr::Neg {
            expr: Box::new(DurationExpr::Paren {
                expr: Box::new(step()),
                pos: p(),
            }),
            start: 0,
        }));
        assert_eq!(Expr::VectorSelector(s).prettify(), "foo offset -(step())");
    }

    #[test]
    fn mixin_query_at_width_100() {
        // A query longer than 100 bytes splits at the default width.
        let l = vsm("node_filesystem_avail_bytes", vec![eq("job", "node")]);
        let r = vsm("node_filesystem_size_bytes", vec![eq("job", "node")]);
        let e = bin(
            BinOp::Lss,
            bin(BinOp::Mul, bin(BinOp::Div, l, r), num(100.0)),
            num(40.0),
        );
        assert_eq!(
            e.prettify(),
            "node_filesystem_avail_bytes{job=\"node\"} / node_filesystem_size_bytes{job=\"node\"} \
             * 100 < 40"
        );
        let long = bin(BinOp::And, e.clone(), e);
        assert_eq!(
            long.prettify(),
            "  node_filesystem_avail_bytes{job=\"node\"} / node_filesystem_size_bytes{job=\"node\"} \
             * 100 < 40\nand\n  node_filesystem_avail_bytes{job=\"node\"} / \
             node_filesystem_size_bytes{job=\"node\"} * 100 < 40"
        );
    }
    /// Prometheus' `prettier_test.go` (with `maxCharactersPerLine = 10`): input, output.
    const PRETTIER_CASES: &[(&str, &str)] = &[
        (r#"sum(foo)"#, r#"sum(foo)"#),
        (
            r#"sum by() (task:errors:rate10s{job="s"})"#,
            r#"sum(
  task:errors:rate10s{job="s"}
)"#,
        ),
        (
            r#"sum without(job,foo) (task:errors:rate10s{job="s"})"#,
            r#"sum without (job, foo) (
  task:errors:rate10s{job="s"}
)"#,
        ),
        (
            r#"sum(task:errors:rate10s{job="s"}) without(job,foo)"#,
            r#"sum without (job, foo) (
  task:errors:rate10s{job="s"}
)"#,
        ),
        (
            r#"sum by(job,foo) (task:errors:rate10s{job="s"})"#,
            r#"sum by (job, foo) (
  task:errors:rate10s{job="s"}
)"#,
        ),
        (
            r#"sum (task:errors:rate10s{job="s"}) by(job,foo)"#,
            r#"sum by (job, foo) (
  task:errors:rate10s{job="s"}
)"#,
        ),
        (
            r#"topk(10, ask:errors:rate10s{job="s"})"#,
            r#"topk(
  10,
  ask:errors:rate10s{job="s"}
)"#,
        ),
        (
            r#"sum by(job,foo) (sum by(job,foo) (task:errors:rate10s{job="s"}))"#,
            r#"sum by (job, foo) (
  sum by (job, foo) (
    task:errors:rate10s{job="s"}
  )
)"#,
        ),
        (
            r#"sum by(job,foo) (sum by(job,foo) (sum by(job,foo) (task:errors:rate10s{job="s"})))"#,
            r#"sum by (job, foo) (
  sum by (job, foo) (
    sum by (job, foo) (
      task:errors:rate10s{job="s"}
    )
  )
)"#,
        ),
        (
            r#"sum by(job,foo)
(sum by(job,foo) (task:errors:rate10s{job="s"}))"#,
            r#"sum by (job, foo) (
  sum by (job, foo) (
    task:errors:rate10s{job="s"}
  )
)"#,
        ),
        (
            r#"sum by(job,foo)
(sum(task:errors:rate10s{job="s"}) without(job,foo))"#,
            r#"sum by (job, foo) (
  sum without (job, foo) (
    task:errors:rate10s{job="s"}
  )
)"#,
        ),
        (
            r#"sum by(job,foo) # Comment 1.
(sum by(job,foo) ( # Comment 2.
task:errors:rate10s{job="s"}))"#,
            r#"sum by (job, foo) (
  sum by (job, foo) (
    task:errors:rate10s{job="s"}
  )
)"#,
        ),
        (r#"a+b"#, r#"a + b"#),
        (
            r#"a == bool 1"#,
            r#"  a
== bool
  1"#,
        ),
        (
            r#"a + ignoring(job) b"#,
            r#"  a
+ ignoring (job)
  b"#,
        ),
        (
            r#"foo_1 + foo_2"#,
            r#"  foo_1
+
  foo_2"#,
        ),
        (
            r#"foo_1 + foo_2 + foo_3"#,
            r#"    foo_1
  +
    foo_2
+
  foo_3"#,
        ),
        (
            r#"foo + baar + foo_3"#,
            r#"  foo + baar
+
  foo_3"#,
        ),
        (
            r#"foo_1 + foo_2 + foo_3 + foo_4"#,
            r#"      foo_1
    +
      foo_2
  +
    foo_3
+
  foo_4"#,
        ),
        (
            r#"foo_1 + ignoring(foo) foo_2 + ignoring(job) group_left foo_3 + on(instance) group_right foo_4"#,
            r#"      foo_1
    + ignoring (foo)
      foo_2
  + ignoring (job) group_left ()
    foo_3
+ on (instance) group_right ()
  foo_4"#,
        ),
        (
            r#"rate(foo[1m])"#,
            r#"rate(
  foo[1m]
)"#,
        ),
        (
            r#"sum_over_time(foo[1m])"#,
            r#"sum_over_time(
  foo[1m]
)"#,
        ),
        (
            r#"rate(long_vector_selector[10m:1m] @ start() offset 1m)"#,
            r#"rate(
  long_vector_selector[10m:1m] @ start() offset 1m
)"#,
        ),
        (
            r#"histogram_quantile(0.9, rate(foo[1m]))"#,
            r#"histogram_quantile(
  0.9,
  rate(
    foo[1m]
  )
)"#,
        ),
        (
            r#"max_over_time(rate(demo_api_request_duration_seconds_count[1m])[1m:] @ start() offset 1m)"#,
            r#"max_over_time(
  rate(
    demo_api_request_duration_seconds_count[1m]
  )[1m:] @ start() offset 1m
)"#,
        ),
        (
            r#"label_replace(up{job="api-server",service="a:c"}, "foo", "$1", "service", "(.*):.*")"#,
            r#"label_replace(
  up{job="api-server",service="a:c"},
  "foo",
  "$1",
  "service",
  "(.*):.*"
)"#,
        ),
        (
            r#"label_replace(label_replace(up{job="api-server",service="a:c"}, "foo", "$1", "service", "(.*):.*"), "foo", "$1", "service", "(.*):.*")"#,
            r#"label_replace(
  label_replace(
    up{job="api-server",service="a:c"},
    "foo",
    "$1",
    "service",
    "(.*):.*"
  ),
  "foo",
  "$1",
  "service",
  "(.*):.*"
)"#,
        ),
        (r#"(foo)"#, r#"(foo)"#),
        (
            r#"(_foo_long_)"#,
            r#"(
  _foo_long_
)"#,
        ),
        (
            r#"((foo_long))"#,
            r#"(
  (foo_long)
)"#,
        ),
        (
            r#"((_foo_long_))"#,
            r#"(
  (
    _foo_long_
  )
)"#,
        ),
        (
            r#"(((foo_long)))"#,
            r#"(
  (
    (foo_long)
  )
)"#,
        ),
        (r#"a @ 1"#, r#"a @ 1.000"#),
        (r#"a @ start()"#, r#"a @ start()"#),
        (
            r#"vector_selector @ start()"#,
            r#"vector_selector @ start()"#,
        ),
        (r#"(1 + 2)"#, r#"(1 + 2)"#),
        (
            r#"(foo + bar)"#,
            r#"(
  foo + bar
)"#,
        ),
        (
            r#"(foo_long + bar_long)"#,
            r#"(
    foo_long
  +
    bar_long
)"#,
        ),
        (
            r#"(foo_long + bar_long + bar_2_long)"#,
            r#"(
      foo_long
    +
      bar_long
  +
    bar_2_long
)"#,
        ),
        (
            r#"((foo_long + bar_long) + bar_2_long)"#,
            r#"(
    (
        foo_long
      +
        bar_long
    )
  +
    bar_2_long
)"#,
        ),
        (
            r#"(1111 + 2222)"#,
            r#"(
    1111
  +
    2222
)"#,
        ),
        (
            r#"(sum_over_time(foo[1m]))"#,
            r#"(
  sum_over_time(
    foo[1m]
  )
)"#,
        ),
        (
            r#"histogram_quantile(0.9, rate(foo[1m] @ start()))"#,
            r#"histogram_quantile(
  0.9,
  rate(
    foo[1m] @ start()
  )
)"#,
        ),
        (
            r#"(label_replace(up{job="api-server",service="a:c"}, "foo", "$1", "service", "(.*):.*"))"#,
            r#"(
  label_replace(
    up{job="api-server",service="a:c"},
    "foo",
    "$1",
    "service",
    "(.*):.*"
  )
)"#,
        ),
        (
            r#"(label_replace(label_replace(up{job="api-server",service="a:c"}, "foo", "$1", "service", "(.*):.*"), "foo", "$1", "service", "(.*):.*"))"#,
            r#"(
  label_replace(
    label_replace(
      up{job="api-server",service="a:c"},
      "foo",
      "$1",
      "service",
      "(.*):.*"
    ),
    "foo",
    "$1",
    "service",
    "(.*):.*"
  )
)"#,
        ),
        (
            r#"(label_replace(label_replace((up{job="api-server",service="a:c"}), "foo", "$1", "service", "(.*):.*"), "foo", "$1", "service", "(.*):.*"))"#,
            r#"(
  label_replace(
    label_replace(
      (
        up{job="api-server",service="a:c"}
      ),
      "foo",
      "$1",
      "service",
      "(.*):.*"
    ),
    "foo",
    "$1",
    "service",
    "(.*):.*"
  )
)"#,
        ),
        (
            r#"(node_filesystem_avail_bytes{job="node",fstype!=""} / node_filesystem_size_bytes{job="node",fstype!=""} * 100 < 40 and predict_linear(node_filesystem_avail_bytes{job="node",fstype!=""}[6h], 24*60*60) < 0 and node_filesystem_readonly{job="node",fstype!=""} == 0)"#,
            r#"(
            node_filesystem_avail_bytes{fstype!="",job="node"}
          /
            node_filesystem_size_bytes{fstype!="",job="node"}
        *
          100
      <
        40
    and
        predict_linear(
          node_filesystem_avail_bytes{fstype!="",job="node"}[6h],
            24 * 60
          *
            60
        )
      <
        0
  and
      node_filesystem_readonly{fstype!="",job="node"}
    ==
      0
)"#,
        ),
        (
            r#"(node_filesystem_avail_bytes{job="node",fstype!=""} / node_filesystem_size_bytes{job="node",fstype!=""} * 100 < 20 and predict_linear(node_filesystem_avail_bytes{job="node",fstype!=""}[6h], 4*60*60) < 0 and node_filesystem_readonly{job="node",fstype!=""} == 0)"#,
            r#"(
            node_filesystem_avail_bytes{fstype!="",job="node"}
          /
            node_filesystem_size_bytes{fstype!="",job="node"}
        *
          100
      <
        20
    and
        predict_linear(
          node_filesystem_avail_bytes{fstype!="",job="node"}[6h],
            4 * 60
          *
            60
        )
      <
        0
  and
      node_filesystem_readonly{fstype!="",job="node"}
    ==
      0
)"#,
        ),
        (
            r#"(node_timex_offset_seconds > 0.05 and deriv(node_timex_offset_seconds[5m]) >= 0) or (node_timex_offset_seconds < -0.05 and deriv(node_timex_offset_seconds[5m]) <= 0)"#,
            r#"  (
        node_timex_offset_seconds
      >
        0.05
    and
        deriv(
          node_timex_offset_seconds[5m]
        )
      >=
        0
  )
or
  (
        node_timex_offset_seconds
      <
        -0.05
    and
        deriv(
          node_timex_offset_seconds[5m]
        )
      <=
        0
  )"#,
        ),
        (
            r#"1 - ((node_memory_MemAvailable_bytes{job="node"} or (node_memory_Buffers_bytes{job="node"} + node_memory_Cached_bytes{job="node"} + node_memory_MemFree_bytes{job="node"} + node_memory_Slab_bytes{job="node"}) ) / node_memory_MemTotal_bytes{job="node"})"#,
            r#"  1
-
  (
      (
          node_memory_MemAvailable_bytes{job="node"}
        or
          (
                  node_memory_Buffers_bytes{job="node"}
                +
                  node_memory_Cached_bytes{job="node"}
              +
                node_memory_MemFree_bytes{job="node"}
            +
              node_memory_Slab_bytes{job="node"}
          )
      )
    /
      node_memory_MemTotal_bytes{job="node"}
  )"#,
        ),
        (
            r#"min by (job, integration) (rate(alertmanager_notifications_failed_total{job="alertmanager", integration=~".*"}[5m]) / rate(alertmanager_notifications_total{job="alertmanager", integration="~.*"}[5m])) > 0.01"#,
            r#"  min by (job, integration) (
      rate(
        alertmanager_notifications_failed_total{integration=~".*",job="alertmanager"}[5m]
      )
    /
      rate(
        alertmanager_notifications_total{integration="~.*",job="alertmanager"}[5m]
      )
  )
>
  0.01"#,
        ),
        (
            r#"(count by (job) (changes(process_start_time_seconds{job="alertmanager"}[10m]) > 4) / count by (job) (up{job="alertmanager"})) >= 0.5"#,
            r#"  (
      count by (job) (
          changes(
            process_start_time_seconds{job="alertmanager"}[10m]
          )
        >
          4
      )
    /
      count by (job) (
        up{job="alertmanager"}
      )
  )
>=
  0.5"#,
        ),
        (r#"-1"#, r#"-1"#),
        (r#"-vector_selector"#, r#"-vector_selector"#),
        (
            r#"(-vector_selector)"#,
            r#"(
  -vector_selector
)"#,
        ),
        (
            r#"-histogram_quantile(0.9,rate(foo[1m]))"#,
            r#"-histogram_quantile(
  0.9,
  rate(
    foo[1m]
  )
)"#,
        ),
        (
            r#"-histogram_quantile(0.99, sum by (le) (rate(foo[1m])))"#,
            r#"-histogram_quantile(
  0.99,
  sum by (le) (
    rate(
      foo[1m]
    )
  )
)"#,
        ),
        (
            r#"-histogram_quantile(0.9, -rate(foo[1m] @ start()))"#,
            r#"-histogram_quantile(
  0.9,
  -rate(
    foo[1m] @ start()
  )
)"#,
        ),
        (
            r#"(-histogram_quantile(0.9, -rate(foo[1m] @ start())))"#,
            r#"(
  -histogram_quantile(
    0.9,
    -rate(
      foo[1m] @ start()
    )
  )
)"#,
        ),
    ];

    fn parse_or_panic(q: &str) -> Expr {
        crate::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"))
    }

    /// Where vigil's output differs from Prometheus' by the tree's shape: the parser folds
    /// a constant duration expression (`rate(foo[2*1h])` prints `foo[2h]`, Prometheus
    /// `foo[2 * 1h]`) and a literal inside a duration expression prints in seconds
    /// (`max_of(range(), 5s)` prints `max_of(range(), 5)`). The output means the same and
    /// prettifies to itself.
    const FOLDED_DURATION_CASES: &[(&str, &str)] = &[
        ("rate(foo[2*1h])", "rate(\n  foo[2h]\n)"),
        ("rate(foo[-5m+35m])", "rate(\n  foo[30m]\n)"),
        ("foo offset +(5)", "foo offset 5s"),
        ("foo offset -(5)", "foo offset -5s"),
        ("foo offset (5m)", "foo offset 5m"),
        ("foo[(5s)]", "foo[5s]"),
        ("foo[(5m):(1m)]", "foo[5m:1m]"),
        ("foo offset +min_of(10s, 20s)", "foo offset 10s"),
        ("foo offset -min_of(10s, 20s)", "foo offset -10s"),
        (
            "foo offset -min_of(10s, +max_of(step() ^ 2, 2))",
            "foo offset -min_of(10, max_of(step() ^ 2, 2))",
        ),
        (
            "foo[200 - min_of(step() + 10s, -max_of(step() ^ 2, 3))]",
            "foo[200 - min_of(step() + 10, -max_of(step() ^ 2, 3))]",
        ),
        ("foo[max_of(range(), 5s)]", "foo[max_of(range(), 5)]"),
    ];

    #[test]
    fn folded_duration_expressions() {
        for (q, want) in FOLDED_DURATION_CASES {
            let got = w10(&parse_or_panic(q));
            assert_eq!(got, *want, "{q}");
            assert_eq!(w10(&parse_or_panic(&got)), got, "{q}");
        }
    }

    #[test]
    fn prettier_test_go_table() {
        let mut failed = Vec::new();
        for (q, want) in PRETTIER_CASES {
            let got = w10(&parse_or_panic(q));
            if got != *want {
                failed.push(format!("{q}\n--- want\n{want}\n--- got\n{got}"));
            }
        }
        assert!(failed.is_empty(), "{}", failed.join("\n\n"));
    }

    #[test]
    fn printer_test_go_table_fits_one_line() {
        // Prometheus' `printer_test.go`: short expressions prettify to their `String()`.
        let cases: &[(&str, &str)] = &[
            (
                r#"sum by() (task:errors:rate10s{job="s"})"#,
                r#"sum(task:errors:rate10s{job="s"})"#,
            ),
            (
                r#"sum by(code) (task:errors:rate10s{job="s"})"#,
                r#"sum by (code) (task:errors:rate10s{job="s"})"#,
            ),
            (
                r#"sum without() (task:errors:rate10s{job="s"})"#,
                r#"sum without () (task:errors:rate10s{job="s"})"#,
            ),
            (
                r#"sum without(instance) (task:errors:rate10s{job="s"})"#,
                r#"sum without (instance) (task:errors:rate10s{job="s"})"#,
            ),
            (
                r#"sum by("foo.bar") (task:errors:rate10s{job="s"})"#,
                r#"sum by ("foo.bar") (task:errors:rate10s{job="s"})"#,
            ),
            (
                r#"sum without("foo.bar") (task:errors:rate10s{job="s"})"#,
                r#"sum without ("foo.bar") (task:errors:rate10s{job="s"})"#,
            ),
            (
                r#"topk(5, task:errors:rate10s{job="s"})"#,
                r#"topk(5, task:errors:rate10s{job="s"})"#,
            ),
            (
                r#"count_values("value", task:errors:rate10s{job="s"})"#,
                r#"count_values("value", task:errors:rate10s{job="s"})"#,
            ),
            (r#"a - on() c"#, r#"a - on () c"#),
            (r#"a - on(b) c"#, r#"a - on (b) c"#),
            (
                r#"a - on(b) group_left(x) c"#,
                r#"a - on (b) group_left (x) c"#,
            ),
            (
                r#"a - on(b) group_left(x, y) c"#,
                r#"a - on (b) group_left (x, y) c"#,
            ),
            (r#"a - on(b) group_left c"#, r#"a - on (b) group_left () c"#),
            (
                r#"a - on(b) group_left() (c)"#,
                r#"a - on (b) group_left () (c)"#,
            ),
            (r#"a - ignoring(b) c"#, r#"a - ignoring (b) c"#),
            (r#"a - ignoring() c"#, r#"a - c"#),
            (
                r#"a - ignoring() group_left c"#,
                r#"a - ignoring () group_left () c"#,
            ),
            (r#"a + fill(-23) b"#, r#"a + fill (-23) b"#),
            (r#"a + fill_left(-23) b"#, r#"a + fill_left (-23) b"#),
            (r#"a + fill_right(42) b"#, r#"a + fill_right (42) b"#),
            (
                r#"a + fill_left(-23) fill_right(42) b"#,
                r#"a + fill_left (-23) fill_right (42) b"#,
            ),
            (r#"a + fill_left(5) fill_right(5) b"#, r#"a + fill (5) b"#),
            (
                r#"a + on(b) group_left fill(-23) c"#,
                r#"a + on (b) group_left () fill (-23) c"#,
            ),
            (r#"up > bool 0"#, r#"up > bool 0"#),
            (r#"a offset 1m"#, r#"a offset 1m"#),
            (r#"a offset -7m"#, r#"a offset -7m"#),
            (r#"a{c="d"}[5m] offset 1m"#, r#"a{c="d"}[5m] offset 1m"#),
            (r#"a[5m] offset 1m"#, r#"a[5m] offset 1m"#),
            (r#"a[12m] offset -3m"#, r#"a[12m] offset -3m"#),
            (r#"a[1h:5m] offset 1m"#, r#"a[1h:5m] offset 1m"#),
            (r#"a anchored"#, r#"a anchored"#),
            (r#"a[5m] anchored"#, r#"a[5m] anchored"#),
            (r#"a{b="c"}[5m] anchored"#, r#"a{b="c"}[5m] anchored"#),
            (
                r#"a{b="c"}[5m] anchored offset 1m"#,
                r#"a{b="c"}[5m] anchored offset 1m"#,
            ),
            (
                r#"a{b="c"}[5m] anchored @ start() offset 1m"#,
                r#"a{b="c"}[5m] anchored @ start() offset 1m"#,
            ),
            (r#"a smoothed"#, r#"a smoothed"#),
            (r#"a[5m] smoothed"#, r#"a[5m] smoothed"#),
            (r#"a{b="c"}[5m] smoothed"#, r#"a{b="c"}[5m] smoothed"#),
            (
                r#"a{b="c"}[5m] smoothed offset 1m"#,
                r#"a{b="c"}[5m] smoothed offset 1m"#,
            ),
            (
                r#"a{b="c"}[5m] smoothed @ start() offset 1m"#,
                r#"a{b="c"}[5m] smoothed @ start() offset 1m"#,
            ),
            (r#"{__name__="a"}"#, r#"{__name__="a"}"#),
            (r#"a{b!="c"}[1m]"#, r#"a{b!="c"}[1m]"#),
            (r#"a{b=~"c"}[1m]"#, r#"a{b=~"c"}[1m]"#),
            (r#"a{b!~"c"}[1m]"#, r#"a{b!~"c"}[1m]"#),
            (r#"a @ 10"#, r#"a @ 10.000"#),
            (r#"a[1m] @ 10"#, r#"a[1m] @ 10.000"#),
            (r#"a @ start()"#, r#"a @ start()"#),
            (r#"a @ end()"#, r#"a @ end()"#),
            (r#"a[1m] @ start()"#, r#"a[1m] @ start()"#),
            (r#"a[1m] @ end()"#, r#"a[1m] @ end()"#),
            (r#"{__name__="",a="x"}"#, r#"{__name__="",a="x"}"#),
            (r#"{"a.b"="c"}"#, r#"{"a.b"="c"}"#),
            (r#"{"0"="1"}"#, r#"{"0"="1"}"#),
            (r#"{"_0"="1"}"#, r#"{_0="1"}"#),
            (r#"{""="0"}"#, r#"{""="0"}"#),
            (r#"{``="0"}"#, r#"{""="0"}"#),
            (r#"1048576"#, r#"1048576"#),
            (r#"foo[step()]"#, r#"foo[step()]"#),
            (r#"foo[-step()]"#, r#"foo[-step()]"#),
            (r#"foo[(step())]"#, r#"foo[(step())]"#),
            (r#"foo[-(step())]"#, r#"foo[-(step())]"#),
            (r#"foo offset step()"#, r#"foo offset step()"#),
            (r#"foo offset -step()"#, r#"foo offset -step()"#),
            (r#"foo offset (step())"#, r#"foo offset (step())"#),
            (r#"foo offset -(step())"#, r#"foo offset -(step())"#),
            (
                r#"foo[200-min_of(-step()^+step(),1)]"#,
                r#"foo[200 - min_of(-step() ^ step(), 1)]"#,
            ),
            (r#"foo[range()]"#, r#"foo[range()]"#),
            (r#"foo[-range()]"#, r#"foo[-range()]"#),
            (r#"foo offset range()"#, r#"foo offset range()"#),
            (r#"foo offset -range()"#, r#"foo offset -range()"#),
            (
                r#"predict_linear(foo[1h], 3000)"#,
                r#"predict_linear(foo[1h], 3000)"#,
            ),
            (r#"sum by("üüü") (foo)"#, r#"sum by ("üüü") (foo)"#),
            (
                r#"sum without("äää") (foo)"#,
                r#"sum without ("äää") (foo)"#,
            ),
            (
                r#"count by("ööö", job) (foo)"#,
                r#"count by ("ööö", job) (foo)"#,
            ),
        ];
        let mut failed = Vec::new();
        for (q, want) in cases {
            let got = parse_or_panic(q).prettify();
            if got != *want {
                failed.push(format!("{q}: want {want:?}, got {got:?}"));
            }
        }
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }
}
