//! TEMPORARY: converts promql-parser's tree into vigil_promql_parser's while the own parser
//! is written. Removed when the engine parses with vigil_promql_parser.

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser as p;
use vigil_model::{METRIC_NAME, Matcher};
use vigil_promql_parser as a;

fn pos() -> a::PosRange {
    a::PosRange::default()
}

fn binop(s: &str) -> a::BinOp {
    use a::BinOp::*;
    match s {
        "+" => Add,
        "-" => Sub,
        "*" => Mul,
        "/" => Div,
        "%" => Mod,
        "^" => Pow,
        "atan2" => Atan2,
        "==" => Eql,
        "!=" => Neq,
        ">" => Gtr,
        "<" => Lss,
        ">=" => Gte,
        "<=" => Lte,
        "and" => And,
        "or" => Or,
        "unless" => Unless,
        other => panic!("binop {other}"),
    }
}

fn matchers(
    name: &Option<String>,
    ms: &[promql_parser::label::Matcher],
) -> Result<Vec<Matcher>, String> {
    let mut out = Vec::new();
    if let Some(n) = name
        && !ms.iter().any(|m| m.name == METRIC_NAME)
    {
        out.push(Matcher::equal(METRIC_NAME, n.clone()));
    }
    for m in ms {
        out.push(match &m.op {
            PMatchOp::Equal => Matcher::equal(m.name.clone(), m.value.clone()),
            PMatchOp::NotEqual => Matcher::not_equal(m.name.clone(), m.value.clone()),
            PMatchOp::Re(_) => {
                Matcher::regex(m.name.clone(), &m.value).map_err(|e| e.to_string())?
            }
            PMatchOp::NotRe(_) => {
                Matcher::not_regex(m.name.clone(), &m.value).map_err(|e| e.to_string())?
            }
        });
    }
    Ok(out)
}

fn offset(o: &Option<p::Offset>) -> a::Duration {
    a::Duration::Fixed(match o {
        None => 0,
        Some(p::Offset::Pos(d)) => d.as_millis() as i64,
        Some(p::Offset::Neg(d)) => -(d.as_millis() as i64),
    })
}

fn at(x: &Option<p::AtModifier>) -> Option<a::At> {
    x.as_ref().map(|x| match x {
        p::AtModifier::Start => a::At::Start,
        p::AtModifier::End => a::At::End,
        p::AtModifier::At(t) => {
            let ms = match t.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => d.as_millis() as i64,
                Err(e) => -(e.duration().as_millis() as i64),
            };
            a::At::Timestamp(ms)
        }
    })
}

fn vs(v: &p::VectorSelector) -> Result<a::VectorSelector, String> {
    let first = matchers(&v.name, &v.matchers.matchers)?;
    let mut or = Vec::new();
    let (main, or_matchers) = if v.matchers.or_matchers.is_empty() {
        (first, or)
    } else {
        for g in &v.matchers.or_matchers {
            let mut all = g.clone();
            all.extend(v.matchers.matchers.iter().cloned());
            or.push(matchers(&v.name, &all)?);
        }
        let head = or.remove(0);
        (head, or)
    };
    Ok(a::VectorSelector {
        name: v.name.clone(),
        matchers: main,
        or_matchers,
        offset: offset(&v.offset),
        at: at(&v.at),
        anchored: false,
        smoothed: false,
        pos: pos(),
    })
}

fn labels(l: &promql_parser::label::Labels) -> Vec<String> {
    l.labels.clone()
}

pub fn convert(e: &p::Expr) -> Result<a::Expr, String> {
    Ok(match e {
        p::Expr::NumberLiteral(n) => a::Expr::NumberLiteral(a::NumberLiteral {
            val: n.val,
            duration: false,
            pos: pos(),
        }),
        p::Expr::StringLiteral(s) => a::Expr::StringLiteral(a::StringLiteral {
            val: s.val.clone(),
            pos: pos(),
        }),
        p::Expr::Paren(x) => a::Expr::Paren(a::ParenExpr {
            expr: Box::new(convert(&x.expr)?),
            pos: pos(),
        }),
        p::Expr::Unary(u) => a::Expr::Unary(a::UnaryExpr {
            op: a::UnaryOp::Neg,
            expr: Box::new(convert(&u.expr)?),
            start: 0,
        }),
        p::Expr::Binary(b) => {
            let op = binop(&b.op.to_string());
            let both_vec = !matches!(
                (b.lhs.value_type(), b.rhs.value_type()),
                (p::value::ValueType::Scalar, _) | (_, p::value::ValueType::Scalar)
            );
            let matching = match &b.modifier {
                Some(m) if both_vec || op.is_set_operator() => {
                    let (card, include) = match &m.card {
                        p::VectorMatchCardinality::OneToOne => (a::Cardinality::OneToOne, vec![]),
                        p::VectorMatchCardinality::ManyToOne(l) => {
                            (a::Cardinality::ManyToOne, labels(l))
                        }
                        p::VectorMatchCardinality::OneToMany(l) => {
                            (a::Cardinality::OneToMany, labels(l))
                        }
                        p::VectorMatchCardinality::ManyToMany => {
                            (a::Cardinality::ManyToMany, vec![])
                        }
                    };
                    let (on, ml) = match &m.matching {
                        Some(p::LabelModifier::Include(l)) => (true, labels(l)),
                        Some(p::LabelModifier::Exclude(l)) => (false, labels(l)),
                        None => (false, vec![]),
                    };
                    Some(a::VectorMatching {
                        card: if op.is_set_operator() {
                            a::Cardinality::ManyToMany
                        } else {
                            card
                        },
                        matching_labels: ml,
                        on,
                        include,
                        fill: a::FillValues {
                            lhs: m.fill_values.lhs,
                            rhs: m.fill_values.rhs,
                        },
                    })
                }
                None if both_vec || op.is_set_operator() => {
                    Some(a::VectorMatching::new(if op.is_set_operator() {
                        a::Cardinality::ManyToMany
                    } else {
                        a::Cardinality::OneToOne
                    }))
                }
                _ => None,
            };
            a::Expr::Binary(a::BinaryExpr {
                op,
                lhs: Box::new(convert(&b.lhs)?),
                rhs: Box::new(convert(&b.rhs)?),
                matching,
                return_bool: b.modifier.as_ref().is_some_and(|m| m.return_bool),
            })
        }
        p::Expr::Aggregate(x) => {
            let (without, grouping) = match &x.modifier {
                Some(p::LabelModifier::Include(l)) => (false, labels(l)),
                Some(p::LabelModifier::Exclude(l)) => (true, labels(l)),
                None => (false, vec![]),
            };
            a::Expr::Aggregate(a::AggregateExpr {
                op: a::AggOp::from_name(&x.op.to_string()).ok_or("agg op")?,
                expr: Box::new(convert(&x.expr)?),
                param: match &x.param {
                    Some(p) => Some(Box::new(convert(p)?)),
                    None => None,
                },
                grouping,
                without,
                pos: pos(),
            })
        }
        p::Expr::Call(c) => a::Expr::Call(a::Call {
            func: vigil_promql_parser::lookup_function(c.func.name)
                .ok_or_else(|| format!("unknown function {}", c.func.name))?,
            args: c
                .args
                .args
                .iter()
                .map(|x| convert(x))
                .collect::<Result<_, _>>()?,
            pos: pos(),
        }),
        p::Expr::VectorSelector(v) => a::Expr::VectorSelector(vs(v)?),
        p::Expr::MatrixSelector(m) => a::Expr::MatrixSelector(a::MatrixSelector {
            vs: vs(&m.vs)?,
            range: a::Duration::Fixed(m.range.as_millis() as i64),
            end: 0,
        }),
        p::Expr::Subquery(s) => a::Expr::Subquery(a::SubqueryExpr {
            expr: Box::new(convert(&s.expr)?),
            range: a::Duration::Fixed(s.range.as_millis() as i64),
            step: s.step.map(|d| a::Duration::Fixed(d.as_millis() as i64)),
            offset: offset(&s.offset),
            at: at(&s.at),
            end: 0,
        }),
        p::Expr::Extension(_) => return Err("extension".into()),
    })
}
