//! The syntax tree as JSON, in the shape of Prometheus' `/api/v1/parse_query` answer (the
//! tree its UI's explain view reads).
//!
//! Prometheus' `translateAST` (`web/api/v1/translate_ast.go`): a node is an object with a
//! `type` (`vectorSelector`, `matrixSelector`, `binaryExpr`, `aggregation`, `call`,
//! `subquery`, `numberLiteral`, `stringLiteral`, `parenExpr`, `unaryExpr`, `durationExpr`)
//! and that node's fields; durations are milliseconds, numbers print as Go's
//! `strconv.FormatFloat(v, 'f', -1, 64)` in a string.
//!
//! A duration written as an expression is a `durationExpr` tree (`rangeExpr`, `stepExpr`,
//! `offsetExpr`) with the plain field 0, as Prometheus leaves it at parse time; vigil's
//! parser folds a constant one (`5m * 2`), which then shows as its value. `or` between label
//! matchers has no field in Prometheus' tree: `matchers` is the first group.

use crate::ast::*;
use crate::printer::format_float;
use serde_json::{Value, json};
use vigil_model::{MatchOp, Matcher};

impl ValueType {
    /// Go's `parser.ValueType` string (`vector`, `scalar`, `matrix`, `string`), as
    /// `translateAST` prints a function's `argTypes` and `returnType`.
    pub fn go_name(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::Vector => "vector",
            ValueType::Matrix => "matrix",
            ValueType::String => "string",
        }
    }
}

impl Expr {
    /// The tree as Prometheus' `translateAST` renders it.
    pub fn to_json(&self) -> Value {
        match self {
            Expr::Aggregate(a) => json!({
                "expr": a.expr.to_json(),
                "grouping": a.grouping,
                "op": a.op.as_str(),
                "param": a.param.as_ref().map_or(Value::Null, |p| p.to_json()),
                "type": "aggregation",
                "without": a.without,
            }),
            Expr::Binary(b) => json!({
                "bool": b.return_bool,
                "lhs": b.lhs.to_json(),
                "matching": b.matching.as_ref().map_or(Value::Null, matching_json),
                "op": b.op.as_str(),
                "rhs": b.rhs.to_json(),
                "type": "binaryExpr",
            }),
            Expr::Call(c) => json!({
                "args": c.args.iter().map(Expr::to_json).collect::<Vec<_>>(),
                "func": {
                    "argTypes": c.func.arg_types.iter().map(|t| t.go_name()).collect::<Vec<_>>(),
                    "name": c.func.name,
                    "returnType": c.func.return_type.go_name(),
                    "variadic": c.func.variadic,
                },
                "type": "call",
            }),
            Expr::MatrixSelector(m) => {
                let vs = &m.vs;
                let (range, range_expr) = duration_json(&m.range);
                let (offset, offset_expr) = duration_json(&vs.offset);
                json!({
                    "anchored": vs.anchored,
                    "matchers": matchers_json(&vs.matchers),
                    "name": selector_name(vs),
                    "offset": offset,
                    "offsetExpr": offset_expr,
                    "range": range,
                    "rangeExpr": range_expr,
                    "smoothed": vs.smoothed,
                    "startOrEnd": start_or_end(vs.at),
                    "timestamp": timestamp(vs.at),
                    "type": "matrixSelector",
                })
            }
            Expr::Subquery(s) => {
                let (range, range_expr) = duration_json(&s.range);
                let (offset, offset_expr) = duration_json(&s.offset);
                let (step, step_expr) = s.step.as_ref().map_or((0, Value::Null), duration_json);
                json!({
                    "expr": s.expr.to_json(),
                    "offset": offset,
                    "offsetExpr": offset_expr,
                    "range": range,
                    "rangeExpr": range_expr,
                    "startOrEnd": start_or_end(s.at),
                    "step": step,
                    "stepExpr": step_expr,
                    "timestamp": timestamp(s.at),
                    "type": "subquery",
                })
            }
            Expr::Duration(d) => duration_expr_json(d),
            Expr::NumberLiteral(n) => json!({
                "type": "numberLiteral",
                "val": format_float(n.val),
            }),
            Expr::Paren(p) => json!({
                "expr": p.expr.to_json(),
                "type": "parenExpr",
            }),
            Expr::StringLiteral(s) => json!({
                "type": "stringLiteral",
                "val": s.val,
            }),
            Expr::Unary(u) => json!({
                "expr": u.expr.to_json(),
                "op": match u.op {
                    UnaryOp::Neg => "-",
                    UnaryOp::Pos => "+",
                },
                "type": "unaryExpr",
            }),
            Expr::VectorSelector(vs) => {
                let (offset, offset_expr) = duration_json(&vs.offset);
                json!({
                    "anchored": vs.anchored,
                    "matchers": matchers_json(&vs.matchers),
                    "name": selector_name(vs),
                    "offset": offset,
                    "offsetExpr": offset_expr,
                    "smoothed": vs.smoothed,
                    "startOrEnd": start_or_end(vs.at),
                    "timestamp": timestamp(vs.at),
                    "type": "vectorSelector",
                })
            }
        }
    }
}

/// Prometheus' `VectorMatchCardinality.String()`.
fn card_name(c: Cardinality) -> &'static str {
    match c {
        Cardinality::OneToOne => "one-to-one",
        Cardinality::ManyToOne => "many-to-one",
        Cardinality::OneToMany => "one-to-many",
        Cardinality::ManyToMany => "many-to-many",
    }
}

fn matching_json(vm: &VectorMatching) -> Value {
    json!({
        "card": card_name(vm.card),
        "fillValues": {
            "lhs": vm.fill.lhs.map_or(Value::Null, float_number),
            "rhs": vm.fill.rhs.map_or(Value::Null, float_number),
        },
        "include": vm.include,
        "labels": vm.matching_labels,
        "on": vm.on,
    })
}

/// A float as Go's `encoding/json` writes it: an integral value without a fraction (`-23`,
/// not `-23.0`). NaN and infinities, which Go refuses to encode, become null.
fn float_number(v: f64) -> Value {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        Value::from(v as i64)
    } else {
        serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
    }
}

/// The `name` field: the metric name written before the braces, always a legacy
/// identifier. Prometheus leaves it empty for `{__name__="x"}` and `{"x"}`; vigil's tree
/// cannot tell `{"x"}` from `x` for a legacy name, and gives the name for both.
fn selector_name(vs: &VectorSelector) -> &str {
    vs.name
        .as_deref()
        .filter(|n| vigil_model::names::is_legacy_metric_name(n))
        .unwrap_or_default()
}

fn matchers_json(ms: &[Matcher]) -> Value {
    Value::Array(
        ms.iter()
            .map(|m| {
                json!({
                    "name": m.name,
                    "type": match m.op {
                        MatchOp::Equal => "=",
                        MatchOp::NotEqual => "!=",
                        MatchOp::RegexMatch(_) => "=~",
                        MatchOp::RegexNoMatch(_) => "!~",
                    },
                    "value": m.value,
                })
            })
            .collect(),
    )
}

fn timestamp(at: Option<At>) -> Value {
    match at {
        Some(At::Timestamp(ms)) => Value::from(ms),
        _ => Value::Null,
    }
}

fn start_or_end(at: Option<At>) -> Value {
    match at {
        Some(At::Start) => Value::from("start"),
        Some(At::End) => Value::from("end"),
        _ => Value::Null,
    }
}

/// The plain milliseconds and the expression of a duration: `(ms, null)` for a constant,
/// `(0, tree)` for an expression.
fn duration_json(d: &Duration) -> (i64, Value) {
    match d {
        Duration::Fixed(ms) => (*ms, Value::Null),
        Duration::Expr(e) => (0, duration_expr_json(e)),
    }
}

/// Prometheus' `translateDurationExpr`. Its tree has no parenthesis node: a parenthesised
/// duration expression is marked `wrapped`, a parenthesised literal becomes a wrapped
/// unary plus; and a negated literal is a negative literal.
///
/// vigil's tree does not keep whether a literal was written as a duration (`5m`) or a
/// number (`2`), which Prometheus reports as `duration`; it is guessed from the place: the
/// right operand of `*`, `/`, `%`, `^` (and the left one of `*` when the right one is not a
/// literal) is a number, any other literal a duration, unless it is not a whole number of
/// milliseconds.
fn duration_expr_json(d: &DurationExpr) -> Value {
    dur_json(d, false, true)
}

fn dur_node(op: &str, lhs: Value, rhs: Value, wrapped: bool) -> Value {
    json!({
        "lhs": lhs,
        "op": op,
        "rhs": rhs,
        "type": "durationExpr",
        "wrapped": wrapped,
    })
}

fn dur_number(secs: f64, as_duration: bool) -> Value {
    let whole_ms = secs.is_finite() && (secs * 1000.0).fract() == 0.0;
    json!({
        "duration": as_duration && whole_ms,
        "type": "numberLiteral",
        "val": format_float(secs),
    })
}

/// The value of a literal, possibly negated or parenthesised.
fn literal(d: &DurationExpr) -> Option<f64> {
    match d {
        DurationExpr::Number { secs, .. } => Some(*secs),
        DurationExpr::Neg { expr, .. } => literal(expr).map(|v| -v),
        DurationExpr::Paren { expr, .. } => literal(expr),
        _ => None,
    }
}

/// The value of a literal with its signs but no parentheses (what Prometheus folds).
fn bare_literal(d: &DurationExpr) -> Option<f64> {
    match d {
        DurationExpr::Number { secs, .. } => Some(*secs),
        DurationExpr::Neg { expr, .. } => bare_literal(expr).map(|v| -v),
        _ => None,
    }
}

fn dur_json(d: &DurationExpr, wrapped: bool, as_duration: bool) -> Value {
    match d {
        DurationExpr::Number { secs, .. } if wrapped => {
            dur_node("+", Value::Null, dur_number(*secs, as_duration), true)
        }
        DurationExpr::Number { secs, .. } => dur_number(*secs, as_duration),
        DurationExpr::Step { .. } => dur_node("step", Value::Null, Value::Null, wrapped),
        DurationExpr::Range { .. } => dur_node("range", Value::Null, Value::Null, wrapped),
        DurationExpr::Neg { expr, .. } => match bare_literal(expr) {
            Some(secs) => dur_json(
                &DurationExpr::Number {
                    secs: -secs,
                    pos: PosRange::default(),
                },
                wrapped,
                as_duration,
            ),
            None => dur_node(
                "-",
                Value::Null,
                dur_json(expr, false, as_duration),
                wrapped,
            ),
        },
        DurationExpr::Paren { expr, .. } => dur_json(expr, true, as_duration),
        DurationExpr::Binary { op, lhs, rhs, .. } => {
            let (name, lhs_duration, rhs_duration) = match op {
                DurationOp::Add => ("+", true, true),
                DurationOp::Sub => ("-", true, true),
                DurationOp::Mul => ("*", literal(rhs).is_some(), false),
                DurationOp::Div => ("/", true, false),
                DurationOp::Mod => ("%", true, false),
                DurationOp::Pow => ("^", true, false),
                DurationOp::MinOf => ("min_of", true, true),
                DurationOp::MaxOf => ("max_of", true, true),
            };
            dur_node(
                name,
                dur_json(lhs, false, lhs_duration),
                dur_json(rhs, false, rhs_duration),
                wrapped,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(q: &str) -> Value {
        crate::parse(q)
            .unwrap_or_else(|e| panic!("{q}: {e}"))
            .to_json()
    }

    fn name_matcher(name: &str) -> Value {
        json!([{"name": "__name__", "type": "=", "value": name}])
    }

    fn dexpr(op: &str, lhs: Value, rhs: Value, wrapped: bool) -> Value {
        json!({"type": "durationExpr", "op": op, "lhs": lhs, "rhs": rhs, "wrapped": wrapped})
    }

    fn dnum(val: &str, duration: bool) -> Value {
        json!({"type": "numberLiteral", "val": val, "duration": duration})
    }

    fn step() -> Value {
        dexpr("step", Value::Null, Value::Null, false)
    }

    #[test]
    fn vector_and_matrix_selectors() {
        assert_eq!(
            parse("foo[5m]"),
            json!({
                "type": "matrixSelector",
                "name": "foo",
                "range": 300_000,
                "rangeExpr": null,
                "offset": 0,
                "offsetExpr": null,
                "matchers": name_matcher("foo"),
                "timestamp": null,
                "startOrEnd": null,
                "anchored": false,
                "smoothed": false,
            })
        );
        assert_eq!(parse("foo[5m] offset 1m")["offset"], 60_000);
        assert_eq!(parse("foo[5m] anchored")["anchored"], true);
        assert_eq!(
            parse(r#"foo{a!="b",c=~"d",e!~"f"} offset -7m smoothed"#),
            json!({
                "type": "vectorSelector",
                "name": "foo",
                "offset": -420_000,
                "offsetExpr": null,
                "matchers": [
                    {"name": "a", "type": "!=", "value": "b"},
                    {"name": "c", "type": "=~", "value": "d"},
                    {"name": "e", "type": "!~", "value": "f"},
                    {"name": "__name__", "type": "=", "value": "foo"},
                ],
                "timestamp": null,
                "startOrEnd": null,
                "anchored": false,
                "smoothed": true,
            })
        );
        let at = parse("foo @ 1.5");
        assert_eq!(
            (&at["timestamp"], &at["startOrEnd"]),
            (&json!(1500), &Value::Null)
        );
        let at = parse("foo[1m] @ end()");
        assert_eq!(
            (&at["timestamp"], &at["startOrEnd"]),
            (&Value::Null, &json!("end"))
        );
        assert_eq!(parse("foo @ start()")["startOrEnd"], "start");
        // No name outside the braces: Prometheus gives "".
        let v = parse(r#"{__name__="foo",a="b"}"#);
        assert_eq!(v["name"], "");
        assert_eq!(v["matchers"].as_array().map(Vec::len), Some(2));
        assert_eq!(parse(r#"{"foo.bar"}"#)["name"], "");
    }

    #[test]
    fn duration_expressions_from_translate_ast_test_go() {
        let v = parse("foo[max_of(step(),5m+3m) ]");
        assert_eq!(v["range"], 0);
        assert_eq!(
            v["rangeExpr"],
            dexpr(
                "max_of",
                step(),
                dexpr("+", dnum("300", true), dnum("180", true), false),
                false
            )
        );
        let v = parse("foo[min_of(max_of(step(),5m+3m),10m-2m)]");
        assert_eq!(
            v["rangeExpr"],
            dexpr(
                "min_of",
                dexpr(
                    "max_of",
                    step(),
                    dexpr("+", dnum("300", true), dnum("180", true), false),
                    false
                ),
                dexpr("-", dnum("600", true), dnum("120", true), false),
                false
            )
        );
        let v = parse("foo[range()]");
        assert_eq!(
            (&v["range"], &v["rangeExpr"]),
            (&json!(0), &dexpr("range", Value::Null, Value::Null, false))
        );
        let v = parse("foo offset -min_of(5s,step()+8s)");
        assert_eq!(v["type"], "vectorSelector");
        assert_eq!(v["offset"], 0);
        assert_eq!(
            v["offsetExpr"],
            dexpr(
                "-",
                Value::Null,
                dexpr(
                    "min_of",
                    dnum("5", true),
                    dexpr("+", step(), dnum("8", true), false),
                    false
                ),
                false
            )
        );
        let v = parse("foo[5m:1m]");
        assert_eq!(
            v,
            json!({
                "type": "subquery",
                "expr": parse("foo"),
                "range": 300_000,
                "rangeExpr": null,
                "step": 60_000,
                "stepExpr": null,
                "offset": 0,
                "offsetExpr": null,
                "timestamp": null,
                "startOrEnd": null,
            })
        );
        assert_eq!(parse("foo[5m:]")["step"], 0);
        let v = parse("foo[step() * 2:(step())] offset (step())");
        assert_eq!(v["rangeExpr"], dexpr("*", step(), dnum("2", false), false));
        assert_eq!(v["stepExpr"], dexpr("step", Value::Null, Value::Null, true));
        assert_eq!(
            v["offsetExpr"],
            dexpr("step", Value::Null, Value::Null, true)
        );
    }

    #[test]
    fn constant_duration_expressions_are_folded() {
        // Prometheus keeps `4s+4s` as a tree with range 0; vigil's parser folds it.
        let v = parse("foo[4s+4s:1s*2] offset (5s-8)");
        assert_eq!(
            (&v["range"], &v["rangeExpr"], &v["step"], &v["stepExpr"]),
            (&json!(8000), &Value::Null, &json!(2000), &Value::Null)
        );
        assert_eq!(
            (&v["offset"], &v["offsetExpr"]),
            (&json!(-3000), &Value::Null)
        );
    }

    #[test]
    fn hand_built_duration_trees() {
        let p = PosRange::default();
        let num = |secs: f64| DurationExpr::Number { secs, pos: p };
        let paren = |e: DurationExpr| DurationExpr::Paren {
            expr: Box::new(e),
            pos: p,
        };
        let neg = |e: DurationExpr| DurationExpr::Neg {
            expr: Box::new(e),
            start: 0,
        };
        // `(5)`: a wrapped unary plus around the literal.
        assert_eq!(
            duration_expr_json(&paren(num(5.0))),
            dexpr("+", Value::Null, dnum("5", true), true)
        );
        // `-(5)`: a minus around it; `-5m`: a negative literal.
        assert_eq!(
            duration_expr_json(&neg(paren(num(5.0)))),
            dexpr(
                "-",
                Value::Null,
                dexpr("+", Value::Null, dnum("5", true), true),
                false
            )
        );
        assert_eq!(duration_expr_json(&neg(num(300.0))), dnum("-300", true));
        // `((step()))` is wrapped once; `2 * step()` has a number on the left.
        assert_eq!(
            duration_expr_json(&paren(paren(DurationExpr::Step { pos: p }))),
            dexpr("step", Value::Null, Value::Null, true)
        );
        let two_steps = DurationExpr::Binary {
            op: DurationOp::Mul,
            lhs: Box::new(num(2.0)),
            rhs: Box::new(DurationExpr::Step { pos: p }),
            pos: p,
        };
        assert_eq!(
            duration_expr_json(&two_steps),
            dexpr("*", dnum("2", false), step(), false)
        );
        assert_eq!(Expr::Duration(two_steps).to_json()["type"], "durationExpr");
        // A fraction of a millisecond cannot be a duration literal.
        assert_eq!(duration_expr_json(&num(0.0001)), dnum("0.0001", false));
    }

    #[test]
    fn hand_built_selector_with_or_groups() {
        // `or` between matchers has no place in Prometheus' tree: the first group shows.
        let vs = VectorSelector {
            name: None,
            matchers: vec![vigil_model::Matcher::equal("a", "1")],
            or_matchers: vec![vec![vigil_model::Matcher::not_equal("b", "2")]],
            offset: Duration::Fixed(0),
            at: Some(At::Timestamp(-1000)),
            anchored: false,
            smoothed: false,
            pos: PosRange::default(),
        };
        assert_eq!(
            Expr::VectorSelector(vs).to_json(),
            json!({
                "type": "vectorSelector",
                "name": "",
                "offset": 0,
                "offsetExpr": null,
                "matchers": [{"name": "a", "type": "=", "value": "1"}],
                "timestamp": -1000,
                "startOrEnd": null,
                "anchored": false,
                "smoothed": false,
            })
        );
    }

    #[test]
    fn binary_expressions() {
        let v = parse("a + on(b) group_left(x) fill_left(-23) c");
        assert_eq!(
            v,
            json!({
                "type": "binaryExpr",
                "op": "+",
                "lhs": parse("a"),
                "rhs": parse("c"),
                "matching": {
                    "card": "many-to-one",
                    "labels": ["b"],
                    "on": true,
                    "include": ["x"],
                    "fillValues": {"lhs": -23, "rhs": null},
                },
                "bool": false,
            })
        );
        // Go's encoding/json writes an integral float without a fraction.
        assert!(
            v.to_string()
                .contains(r#""fillValues":{"lhs":-23,"rhs":null}"#)
        );
        let v = parse("a - ignoring(b) group_right c");
        assert_eq!(v["matching"]["card"], "one-to-many");
        assert_eq!(v["matching"]["on"], false);
        assert_eq!(v["matching"]["include"], json!([]));
        assert_eq!(
            parse("a + fill(0.5) b")["matching"]["fillValues"],
            json!({"lhs": 0.5, "rhs": 0.5})
        );
        assert_eq!(parse("a and b")["matching"]["card"], "many-to-many");
        assert_eq!(parse("a / b")["matching"]["labels"], json!([]));
        let v = parse("a > bool 1");
        assert_eq!((&v["bool"], &v["matching"]), (&json!(true), &Value::Null));
        assert_eq!(parse("1 + 2")["matching"], Value::Null);
        assert_eq!(parse("h </ 0.5")["op"], "</");
        assert_eq!(parse("h >/ 0.5")["op"], ">/");
        assert_eq!(parse("a atan2 b")["op"], "atan2");
    }

    #[test]
    fn aggregations_calls_and_literals() {
        assert_eq!(
            parse("sum by (job) (foo)"),
            json!({
                "type": "aggregation",
                "op": "sum",
                "expr": parse("foo"),
                "param": null,
                "grouping": ["job"],
                "without": false,
            })
        );
        let v = parse("topk without () (5, foo)");
        assert_eq!(
            (&v["param"], &v["grouping"], &v["without"]),
            (
                &json!({"type": "numberLiteral", "val": "5"}),
                &json!([]),
                &json!(true)
            )
        );
        assert_eq!(
            parse(r#"count_values("v", foo)"#)["param"],
            json!({"type": "stringLiteral", "val": "v"})
        );
        assert_eq!(
            parse(r#"label_replace(up, "foo", "$1", "service", "(.*):.*")"#),
            json!({
                "type": "call",
                "func": {
                    "name": "label_replace",
                    "argTypes": ["vector", "string", "string", "string", "string"],
                    "variadic": 0,
                    "returnType": "vector",
                },
                "args": [
                    parse("up"),
                    {"type": "stringLiteral", "val": "foo"},
                    {"type": "stringLiteral", "val": "$1"},
                    {"type": "stringLiteral", "val": "service"},
                    {"type": "stringLiteral", "val": "(.*):.*"},
                ],
            })
        );
        let v = parse("time()");
        assert_eq!(
            (&v["args"], &v["func"]["argTypes"], &v["func"]["returnType"]),
            (&json!([]), &json!([]), &json!("scalar"))
        );
        assert_eq!(parse("rate(x[1m])")["func"]["argTypes"], json!(["matrix"]));
        assert_eq!(
            parse(r#"label_join(x, "a", ",", "b")"#)["func"]["variadic"],
            -1
        );
        assert_eq!(parse("round(x)")["func"]["variadic"], 1);
        assert_eq!(
            parse("(-foo)"),
            json!({
                "type": "parenExpr",
                "expr": {"type": "unaryExpr", "op": "-", "expr": parse("foo")},
            })
        );
        assert_eq!(
            parse("-1.5e3"),
            json!({"type": "numberLiteral", "val": "-1500"})
        );
        assert_eq!(parse("Inf")["val"], "+Inf");
        assert_eq!(parse("NaN")["val"], "NaN");
        assert_eq!(parse("0.000001")["val"], "0.000001");
        assert_eq!(parse("5m")["val"], "300");
        assert_eq!(parse(r#""a\nb""#)["val"], "a\nb");
    }
}
