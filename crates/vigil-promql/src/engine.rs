//! The evaluator: walks the parser's AST at one timestamp; range queries evaluate each step.

use crate::value::{RangeSeries, Value, VectorSample};
use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::token::{self, TokenType};
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Expr, LabelModifier, Offset, VectorMatchCardinality,
    VectorSelector,
};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration as StdDuration, UNIX_EPOCH};
use vigil_model::{
    Labels, METRIC_NAME, Matcher, Queryable, Sample, SelectHints, StorageError, Timestamp,
    is_stale_nan,
};

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (`--query.lookback-delta`).
    pub lookback_delta_ms: i64,
    /// Most points a range query may return per series (Prometheus: 11,000).
    pub max_points_per_series: i64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 5 * 60 * 1000,
            max_points_per_series: 11_000,
        }
    }
}

/// Errors, split as the API reports them: `Parse` is `bad_data`, the rest `execution`.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Parse(String),
    #[error("{0}")]
    Execution(String),
    #[error("{0}")]
    Storage(#[from] StorageError),
}

pub struct Engine {
    opts: EngineOptions,
}

/// Per-query state: the storage and the query's own start and end (for `@ start()`/`end()`).
struct Ctx<'a> {
    db: &'a dyn Queryable,
    start: Timestamp,
    end: Timestamp,
    lookback: i64,
}

fn exec(msg: impl Into<String>) -> EngineError {
    EngineError::Execution(msg.into())
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Self {
        Engine { opts }
    }

    pub fn parse(&self, query: &str) -> Result<Expr, EngineError> {
        promql_parser::parser::parse(query).map_err(EngineError::Parse)
    }

    /// Parses a series selector (`match[]` of the metadata endpoints) into matchers.
    pub fn selector_matchers(&self, selector: &str) -> Result<Vec<Matcher>, EngineError> {
        match self.parse(selector)? {
            Expr::VectorSelector(vs) => {
                let ms = selector_matchers(&vs)?;
                if ms.iter().all(|m| m.matches_empty()) {
                    return Err(EngineError::Parse(
                        "match[] must contain at least one non-empty matcher".into(),
                    ));
                }
                Ok(ms)
            }
            _ => Err(EngineError::Parse(format!(
                "invalid parameter \"match[]\": {selector:?} is not a series selector"
            ))),
        }
    }

    /// Evaluates `query` at `t` (ms).
    pub fn instant(
        &self,
        db: &dyn Queryable,
        query: &str,
        t: Timestamp,
    ) -> Result<Value, EngineError> {
        let expr = self.parse(query)?;
        let ctx = Ctx {
            db,
            start: t,
            end: t,
            lookback: self.opts.lookback_delta_ms,
        };
        let mut v = eval(&ctx, &expr, t)?;
        if let Value::Vector(vec) = &mut v {
            vec.sort_by(|a, b| a.labels.cmp(&b.labels));
        }
        Ok(v)
    }

    /// Evaluates `query` at every step from `start` to `end` (ms) and returns a matrix.
    pub fn range(
        &self,
        db: &dyn Queryable,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: i64,
    ) -> Result<Value, EngineError> {
        if step <= 0 {
            return Err(EngineError::Parse("zero or negative query resolution step widths are not accepted. Try a positive integer".into()));
        }
        if end < start {
            return Err(EngineError::Parse(
                "end timestamp must not be before start time".into(),
            ));
        }
        if (end - start) / step >= self.opts.max_points_per_series {
            return Err(EngineError::Parse(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
            ));
        }
        let expr = self.parse(query)?;
        let ctx = Ctx {
            db,
            start,
            end,
            lookback: self.opts.lookback_delta_ms,
        };
        let mut series: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        let mut t = start;
        while t <= end {
            match eval(&ctx, &expr, t)? {
                Value::Scalar { v, .. } => series
                    .entry(Labels::empty())
                    .or_default()
                    .push(Sample { t, v }),
                Value::Vector(vec) => {
                    for s in vec {
                        series
                            .entry(s.labels)
                            .or_default()
                            .push(Sample { t, v: s.v });
                    }
                }
                other => {
                    return Err(exec(format!(
                        "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                        range_type_name(&other)
                    )));
                }
            }
            t += step;
        }
        Ok(Value::Matrix(
            series
                .into_iter()
                .map(|(labels, samples)| RangeSeries { labels, samples })
                .collect(),
        ))
    }
}

fn range_type_name(v: &Value) -> &'static str {
    match v {
        Value::Matrix(_) => "range vector",
        Value::String { .. } => "string",
        _ => "",
    }
}

fn eval(ctx: &Ctx, expr: &Expr, t: Timestamp) -> Result<Value, EngineError> {
    match expr {
        Expr::NumberLiteral(n) => Ok(Value::Scalar { t, v: n.val }),
        Expr::StringLiteral(s) => Ok(Value::String {
            t,
            v: s.val.clone(),
        }),
        Expr::Paren(p) => eval(ctx, &p.expr, t),
        Expr::VectorSelector(vs) => eval_vector_selector(ctx, vs, t),
        Expr::MatrixSelector(ms) => {
            let range = ms.range.as_millis() as i64;
            eval_matrix_selector(ctx, &ms.vs, range, t)
        }
        Expr::Unary(u) => match eval(ctx, &u.expr, t)? {
            Value::Scalar { t, v } => Ok(Value::Scalar { t, v: -v }),
            Value::Vector(vec) => Ok(Value::Vector(
                vec.into_iter()
                    .map(|s| VectorSample {
                        labels: s.labels.without_metric_name(),
                        t: s.t,
                        v: -s.v,
                    })
                    .collect(),
            )),
            _ => Err(exec(
                "unary minus is only defined on scalars and instant vectors",
            )),
        },
        Expr::Binary(b) => eval_binary(ctx, b, t),
        Expr::Aggregate(a) => eval_aggregate(ctx, a, t),
        Expr::Call(c) => Err(exec(format!(
            "function {}() is not supported yet",
            c.func.name
        ))),
        Expr::Subquery(_) => Err(exec("subqueries are not supported yet")),
        Expr::Extension(_) => Err(exec("unsupported expression")),
    }
}

/// The matchers of a selector, with its metric name as a `__name__` matcher.
fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, EngineError> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(exec("'or' inside label matchers is not supported yet"));
    }
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name
        && !vs.matchers.matchers.iter().any(|m| m.name == METRIC_NAME)
    {
        out.push(Matcher::equal(METRIC_NAME, name.clone()));
    }
    for m in &vs.matchers.matchers {
        let bad = |e: vigil_model::MatcherError| EngineError::Parse(e.to_string());
        out.push(match &m.op {
            PMatchOp::Equal => Matcher::equal(m.name.clone(), m.value.clone()),
            PMatchOp::NotEqual => Matcher::not_equal(m.name.clone(), m.value.clone()),
            PMatchOp::Re(_) => Matcher::regex(m.name.clone(), &m.value).map_err(bad)?,
            PMatchOp::NotRe(_) => Matcher::not_regex(m.name.clone(), &m.value).map_err(bad)?,
        });
    }
    Ok(out)
}

/// The timestamp a selector reads at: the evaluation time moved by `@` and `offset`.
fn selector_time(
    ctx: &Ctx,
    at: &Option<AtModifier>,
    offset: &Option<Offset>,
    t: Timestamp,
) -> Timestamp {
    let base = match at {
        None => t,
        Some(AtModifier::Start) => ctx.start,
        Some(AtModifier::End) => ctx.end,
        Some(AtModifier::At(st)) => match st.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i64,
            Err(e) => -(e.duration().as_millis() as i64),
        },
    };
    let ms = |d: &StdDuration| d.as_millis() as i64;
    match offset {
        None => base,
        Some(Offset::Pos(d)) => base - ms(d),
        Some(Offset::Neg(d)) => base + ms(d),
    }
}

fn eval_vector_selector(
    ctx: &Ctx,
    vs: &VectorSelector,
    t: Timestamp,
) -> Result<Value, EngineError> {
    let matchers = selector_matchers(vs)?;
    let ts = selector_time(ctx, &vs.at, &vs.offset, t);
    // Left-open window (ts - lookback, ts], as in Prometheus 3.
    let (mint, maxt) = (ts - ctx.lookback + 1, ts);
    let q = ctx.db.querier(mint, maxt)?;
    let mut out = Vec::new();
    for s in q.select(
        &matchers,
        &SelectHints {
            start: mint,
            end: maxt,
        },
    )? {
        if let Some(last) = s.samples.last()
            && !is_stale_nan(last.v)
        {
            out.push(VectorSample {
                labels: s.labels,
                t,
                v: last.v,
            });
        }
    }
    Ok(Value::Vector(out))
}

fn eval_matrix_selector(
    ctx: &Ctx,
    vs: &VectorSelector,
    range: i64,
    t: Timestamp,
) -> Result<Value, EngineError> {
    let matchers = selector_matchers(vs)?;
    let ts = selector_time(ctx, &vs.at, &vs.offset, t);
    let (mint, maxt) = (ts - range + 1, ts);
    let q = ctx.db.querier(mint, maxt)?;
    let mut out = Vec::new();
    for s in q.select(
        &matchers,
        &SelectHints {
            start: mint,
            end: maxt,
        },
    )? {
        let samples: Vec<Sample> = s.samples.filter(|x| !is_stale_nan(x.v)).collect();
        if !samples.is_empty() {
            out.push(RangeSeries {
                labels: s.labels,
                samples,
            });
        }
    }
    Ok(Value::Matrix(out))
}

fn op_id(op: &TokenType) -> u16 {
    op.id()
}

/// Applies an arithmetic or comparison operator. For comparisons it answers 1 or 0.
fn apply_op(op: &TokenType, l: f64, r: f64) -> Result<f64, EngineError> {
    let b = |x: bool| if x { 1.0 } else { 0.0 };
    Ok(match op_id(op) {
        token::T_ADD => l + r,
        token::T_SUB => l - r,
        token::T_MUL => l * r,
        token::T_DIV => l / r,
        token::T_MOD => l % r,
        token::T_POW => l.powf(r),
        token::T_ATAN2 => l.atan2(r),
        token::T_EQLC => b(l == r),
        token::T_NEQ => b(l != r),
        token::T_GTR => b(l > r),
        token::T_LSS => b(l < r),
        token::T_GTE => b(l >= r),
        token::T_LTE => b(l <= r),
        _ => return Err(exec(format!("operator {op} is not supported here"))),
    })
}

fn eval_binary(ctx: &Ctx, b: &BinaryExpr, t: Timestamp) -> Result<Value, EngineError> {
    let lhs = eval(ctx, &b.lhs, t)?;
    let rhs = eval(ctx, &b.rhs, t)?;
    let is_cmp = b.op.is_comparison_operator();
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    match (lhs, rhs) {
        (Value::Scalar { v: l, .. }, Value::Scalar { v: r, .. }) => Ok(Value::Scalar {
            t,
            v: apply_op(&b.op, l, r)?,
        }),
        (Value::Vector(vec), Value::Scalar { v: s, .. }) => {
            vector_scalar(&b.op, vec, s, false, is_cmp, return_bool)
        }
        (Value::Scalar { v: s, .. }, Value::Vector(vec)) => {
            vector_scalar(&b.op, vec, s, true, is_cmp, return_bool)
        }
        (Value::Vector(l), Value::Vector(r)) => vector_vector(b, l, r, is_cmp, return_bool),
        _ => Err(exec(format!(
            "binary operator {} is not defined on these operand types",
            b.op
        ))),
    }
}

fn vector_scalar(
    op: &TokenType,
    vec: Vec<VectorSample>,
    s: f64,
    scalar_left: bool,
    is_cmp: bool,
    return_bool: bool,
) -> Result<Value, EngineError> {
    let mut out = Vec::with_capacity(vec.len());
    for mut x in vec {
        let (l, r) = if scalar_left { (s, x.v) } else { (x.v, s) };
        let v = apply_op(op, l, r)?;
        if is_cmp && !return_bool {
            if v == 0.0 {
                continue;
            }
            // A filter keeps the vector's own value and name.
            out.push(x);
            continue;
        }
        x.labels = x.labels.without_metric_name();
        x.v = v;
        out.push(x);
    }
    Ok(Value::Vector(out))
}

/// The label set that decides which series of the two sides match.
fn signature(labels: &Labels, matching: &Option<LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => Labels::from_pairs(
            labels
                .iter()
                .filter(|l| on.labels.contains(&l.name))
                .map(|l| (l.name.clone(), l.value.clone())),
        ),
        Some(LabelModifier::Exclude(ign)) => Labels::from_pairs(
            labels
                .iter()
                .filter(|l| l.name != METRIC_NAME && !ign.labels.contains(&l.name))
                .map(|l| (l.name.clone(), l.value.clone())),
        ),
        None => labels.without_metric_name(),
    }
}

fn vector_vector(
    b: &BinaryExpr,
    lhs: Vec<VectorSample>,
    rhs: Vec<VectorSample>,
    is_cmp: bool,
    return_bool: bool,
) -> Result<Value, EngineError> {
    let matching = b.modifier.as_ref().and_then(|m| m.matching.clone());
    let card = b
        .modifier
        .as_ref()
        .map(|m| m.card.clone())
        .unwrap_or(VectorMatchCardinality::OneToOne);
    let id = op_id(&b.op);
    if b.op.is_set_operator() {
        let rsigs: HashMap<Labels, ()> = rhs
            .iter()
            .map(|s| (signature(&s.labels, &matching), ()))
            .collect();
        return Ok(Value::Vector(match id {
            token::T_LAND => lhs
                .into_iter()
                .filter(|s| rsigs.contains_key(&signature(&s.labels, &matching)))
                .collect(),
            token::T_LUNLESS => lhs
                .into_iter()
                .filter(|s| !rsigs.contains_key(&signature(&s.labels, &matching)))
                .collect(),
            _ => {
                let lsigs: HashMap<Labels, ()> = lhs
                    .iter()
                    .map(|s| (signature(&s.labels, &matching), ()))
                    .collect();
                let mut out = lhs;
                out.extend(
                    rhs.into_iter()
                        .filter(|s| !lsigs.contains_key(&signature(&s.labels, &matching))),
                );
                out
            }
        }));
    }
    if !matches!(card, VectorMatchCardinality::OneToOne) {
        return Err(exec("group_left/group_right matching is not supported yet"));
    }
    let mut right: HashMap<Labels, VectorSample> = HashMap::with_capacity(rhs.len());
    for s in rhs {
        let sig = signature(&s.labels, &matching);
        if right.contains_key(&sig) {
            return Err(exec(format!(
                "found duplicate series for the match group {sig} on the right hand-side of the operation: {};many-to-many matching not allowed: matching labels must be unique on one side",
                s.labels
            )));
        }
        right.insert(sig, s);
    }
    let mut seen: HashMap<Labels, ()> = HashMap::new();
    let mut out = Vec::new();
    for l in lhs {
        let sig = signature(&l.labels, &matching);
        let Some(r) = right.get(&sig) else { continue };
        if seen.insert(sig.clone(), ()).is_some() {
            return Err(exec(format!(
                "found duplicate series for the match group {sig} on the left hand-side of the operation: {};many-to-many matching not allowed: matching labels must be unique on one side",
                l.labels
            )));
        }
        let v = apply_op(&b.op, l.v, r.v)?;
        if is_cmp && !return_bool && v == 0.0 {
            continue;
        }
        let mut lb = l.labels.to_builder();
        if !is_cmp || return_bool {
            lb.del(METRIC_NAME);
        }
        match &matching {
            Some(LabelModifier::Include(on)) => {
                lb.retain(|x| on.labels.contains(&x.name));
            }
            Some(LabelModifier::Exclude(ign)) => {
                lb.retain(|x| !ign.labels.contains(&x.name));
            }
            None => {}
        }
        let value = if is_cmp && !return_bool { l.v } else { v };
        out.push(VectorSample {
            labels: lb.build(),
            t: l.t,
            v: value,
        });
    }
    Ok(Value::Vector(out))
}

/// The labels a series contributes to its aggregation group.
fn group_labels(labels: &Labels, modifier: &Option<LabelModifier>) -> Labels {
    match modifier {
        None => Labels::empty(),
        Some(LabelModifier::Include(by)) => Labels::from_pairs(
            labels
                .iter()
                .filter(|l| by.labels.contains(&l.name))
                .map(|l| (l.name.clone(), l.value.clone())),
        ),
        Some(LabelModifier::Exclude(without)) => Labels::from_pairs(
            labels
                .iter()
                .filter(|l| l.name != METRIC_NAME && !without.labels.contains(&l.name))
                .map(|l| (l.name.clone(), l.value.clone())),
        ),
    }
}

fn eval_aggregate(ctx: &Ctx, a: &AggregateExpr, t: Timestamp) -> Result<Value, EngineError> {
    let Value::Vector(input) = eval(ctx, &a.expr, t)? else {
        return Err(exec("aggregation expects an instant vector"));
    };
    #[derive(Default)]
    struct Group {
        sum: f64,
        count: f64,
        min: f64,
        max: f64,
    }
    let mut groups: BTreeMap<Labels, Group> = BTreeMap::new();
    for s in input {
        let g = groups
            .entry(group_labels(&s.labels, &a.modifier))
            .or_insert_with(|| Group {
                min: s.v,
                max: s.v,
                ..Group::default()
            });
        g.sum += s.v;
        g.count += 1.0;
        // Prometheus replaces a NaN extreme with any real value.
        if s.v < g.min || g.min.is_nan() {
            g.min = s.v;
        }
        if s.v > g.max || g.max.is_nan() {
            g.max = s.v;
        }
    }
    let pick: fn(&Group) -> f64 = match a.op.id() {
        token::T_SUM => |g| g.sum,
        token::T_AVG => |g| g.sum / g.count,
        token::T_MIN => |g| g.min,
        token::T_MAX => |g| g.max,
        token::T_COUNT => |g| g.count,
        token::T_GROUP => |_| 1.0,
        _ => return Err(exec(format!("aggregation {} is not supported yet", a.op))),
    };
    Ok(Value::Vector(
        groups
            .into_iter()
            .map(|(labels, g)| VectorSample {
                labels,
                t,
                v: pick(&g),
            })
            .collect(),
    ))
}
