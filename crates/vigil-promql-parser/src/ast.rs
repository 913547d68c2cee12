//! The PromQL syntax tree, shaped as Prometheus' `promql/parser` tree so that the engine's
//! semantics can follow Prometheus' evaluator node by node.
//!
//! Positions are byte offsets into the query ([`PosRange`]); errors print them as
//! `line:column` ([`crate::ParseError`]). Durations are milliseconds. A duration written as
//! an expression (`rate(x[5m * 2])`, `offset step()`) keeps its [`DurationExpr`]: the value
//! can depend on the query's step and range, so the engine resolves it per query
//! ([`Duration::resolve`]); a constant one is folded by the parser.

use std::fmt;
use vigil_model::Matcher;

/// A half-open byte range `[start, end)` of the query text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PosRange {
    pub start: usize,
    pub end: usize,
}

impl PosRange {
    pub fn new(start: usize, end: usize) -> Self {
        PosRange { start, end }
    }
}

/// The type of an expression's value, named in errors as Prometheus names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Scalar,
    Vector,
    Matrix,
    String,
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueType::Scalar => "scalar",
            ValueType::Vector => "instant vector",
            ValueType::Matrix => "range vector",
            ValueType::String => "string",
        })
    }
}

/// Binary operators, in Prometheus' spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eql,
    Neq,
    Gtr,
    Lss,
    Gte,
    Lte,
    /// `</`: trims a native histogram's upper part (buckets above the scalar).
    TrimUpper,
    /// `>/`: trims a native histogram's lower part.
    TrimLower,
    And,
    Or,
    Unless,
}

impl BinOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
            BinOp::Atan2 => "atan2",
            BinOp::Eql => "==",
            BinOp::Neq => "!=",
            BinOp::Gtr => ">",
            BinOp::Lss => "<",
            BinOp::Gte => ">=",
            BinOp::Lte => "<=",
            BinOp::TrimUpper => "</",
            BinOp::TrimLower => ">/",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Unless => "unless",
        }
    }

    /// `==`, `!=`, `>`, `<`, `>=`, `<=` (the operators `bool` applies to).
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eql | BinOp::Neq | BinOp::Gtr | BinOp::Lss | BinOp::Gte | BinOp::Lte
        )
    }

    /// `and`, `or`, `unless`.
    pub fn is_set_operator(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }

    /// Binding strength as Prometheus' grammar declares it (higher binds tighter).
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And | BinOp::Unless => 2,
            BinOp::Eql
            | BinOp::Neq
            | BinOp::Gtr
            | BinOp::Lss
            | BinOp::Gte
            | BinOp::Lte
            | BinOp::TrimUpper
            | BinOp::TrimLower => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Atan2 => 5,
            BinOp::Pow => 6,
        }
    }

    /// Only `^` associates to the right.
    pub fn is_right_associative(self) -> bool {
        self == BinOp::Pow
    }
}

impl fmt::Display for BinOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Aggregation operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggOp {
    Sum,
    Avg,
    Count,
    Min,
    Max,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    CountValues,
    Quantile,
    Limitk,
    LimitRatio,
}

impl AggOp {
    pub fn as_str(self) -> &'static str {
        match self {
            AggOp::Sum => "sum",
            AggOp::Avg => "avg",
            AggOp::Count => "count",
            AggOp::Min => "min",
            AggOp::Max => "max",
            AggOp::Group => "group",
            AggOp::Stddev => "stddev",
            AggOp::Stdvar => "stdvar",
            AggOp::Topk => "topk",
            AggOp::Bottomk => "bottomk",
            AggOp::CountValues => "count_values",
            AggOp::Quantile => "quantile",
            AggOp::Limitk => "limitk",
            AggOp::LimitRatio => "limit_ratio",
        }
    }

    /// The operator spelled `name` (case-insensitive, as Prometheus' lexer reads keywords).
    pub fn from_name(name: &str) -> Option<AggOp> {
        const ALL: [AggOp; 14] = [
            AggOp::Sum,
            AggOp::Avg,
            AggOp::Count,
            AggOp::Min,
            AggOp::Max,
            AggOp::Group,
            AggOp::Stddev,
            AggOp::Stdvar,
            AggOp::Topk,
            AggOp::Bottomk,
            AggOp::CountValues,
            AggOp::Quantile,
            AggOp::Limitk,
            AggOp::LimitRatio,
        ];
        ALL.into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(name))
    }

    /// Whether the operator takes a parameter before the vector (`topk(3, x)`).
    pub fn takes_param(self) -> bool {
        matches!(
            self,
            AggOp::Topk
                | AggOp::Bottomk
                | AggOp::CountValues
                | AggOp::Quantile
                | AggOp::Limitk
                | AggOp::LimitRatio
        )
    }
}

impl fmt::Display for AggOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Unary `-` or `+` in front of a non-literal expression (a literal is folded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Pos,
}

/// A PromQL expression.
#[derive(Debug, Clone)]
pub enum Expr {
    NumberLiteral(NumberLiteral),
    StringLiteral(StringLiteral),
    Paren(ParenExpr),
    Unary(UnaryExpr),
    Binary(BinaryExpr),
    Aggregate(AggregateExpr),
    Call(Call),
    VectorSelector(VectorSelector),
    MatrixSelector(MatrixSelector),
    Subquery(SubqueryExpr),
    /// A duration expression standing as an expression of its own (`step()`, `5m * 2` where
    /// the grammar reads it as a duration): a scalar, in seconds.
    Duration(DurationExpr),
}

impl Expr {
    /// The value type, as Prometheus' `Expr.Type()`.
    pub fn value_type(&self) -> ValueType {
        match self {
            Expr::NumberLiteral(_) | Expr::Duration(_) => ValueType::Scalar,
            Expr::StringLiteral(_) => ValueType::String,
            Expr::Paren(p) => p.expr.value_type(),
            Expr::Unary(u) => u.expr.value_type(),
            Expr::Binary(b) => {
                if b.lhs.value_type() == ValueType::Scalar
                    && b.rhs.value_type() == ValueType::Scalar
                {
                    ValueType::Scalar
                } else {
                    ValueType::Vector
                }
            }
            Expr::Aggregate(_) | Expr::VectorSelector(_) => ValueType::Vector,
            Expr::Call(c) => c.func.return_type,
            Expr::MatrixSelector(_) | Expr::Subquery(_) => ValueType::Matrix,
        }
    }

    /// Where the expression is in the query.
    pub fn pos(&self) -> PosRange {
        match self {
            Expr::NumberLiteral(e) => e.pos,
            Expr::StringLiteral(e) => e.pos,
            Expr::Paren(e) => e.pos,
            Expr::Unary(e) => PosRange::new(e.start, e.expr.pos().end),
            Expr::Binary(e) => PosRange::new(e.lhs.pos().start, e.rhs.pos().end),
            Expr::Aggregate(e) => e.pos,
            Expr::Call(e) => e.pos,
            Expr::VectorSelector(e) => e.pos,
            Expr::MatrixSelector(e) => PosRange::new(e.vs.pos.start, e.end),
            Expr::Subquery(e) => PosRange::new(e.expr.pos().start, e.end),
            Expr::Duration(e) => e.pos(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NumberLiteral {
    pub val: f64,
    /// Written as a duration (`5m`), which prints back as one.
    pub duration: bool,
    pub pos: PosRange,
}

#[derive(Debug, Clone)]
pub struct StringLiteral {
    /// The unquoted value (an invalid UTF-8 sequence decoded as U+FFFD).
    pub val: String,
    /// The unquoted bytes when they are not UTF-8 (Go's `"\xff"` is the lone byte 0xff):
    /// such a string is no valid label name, and errors quote its bytes as Go does.
    pub invalid_utf8: Option<Vec<u8>>,
    pub pos: PosRange,
}

#[derive(Debug, Clone)]
pub struct ParenExpr {
    pub expr: Box<Expr>,
    pub pos: PosRange,
}

#[derive(Debug, Clone)]
pub struct UnaryExpr {
    pub op: UnaryOp,
    pub expr: Box<Expr>,
    /// Where the operator is.
    pub start: usize,
}

/// How `on`/`ignoring` and `group_left`/`group_right` match two vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    OneToOne,
    ManyToOne,
    OneToMany,
    /// Set operators (`and`, `or`, `unless`).
    ManyToMany,
}

/// The vector-matching part of a binary expression between two vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorMatching {
    pub card: Cardinality,
    /// The `on`/`ignoring` labels.
    pub matching_labels: Vec<String>,
    /// `on(...)` (true) or `ignoring(...)`/none (false).
    pub on: bool,
    /// The `group_left`/`group_right` labels to copy from the "one" side.
    pub include: Vec<String>,
    /// `fill(v)`/`fill_left(v)`/`fill_right(v)`: the value a missing side takes.
    pub fill: FillValues,
}

impl VectorMatching {
    /// What a binary expression without modifiers matches with.
    pub fn new(card: Cardinality) -> Self {
        VectorMatching {
            card,
            matching_labels: Vec::new(),
            on: false,
            include: Vec::new(),
            fill: FillValues::default(),
        }
    }
}

/// Fill values for unmatched series (`fill_left` fills the left-hand side).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FillValues {
    pub lhs: Option<f64>,
    pub rhs: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct BinaryExpr {
    pub op: BinOp,
    pub lhs: Box<Expr>,
    pub rhs: Box<Expr>,
    /// Set when both sides are vectors (and for the set operators always), as Prometheus'
    /// parser sets it.
    pub matching: Option<VectorMatching>,
    /// The `bool` modifier of a comparison.
    pub return_bool: bool,
}

#[derive(Debug, Clone)]
pub struct AggregateExpr {
    pub op: AggOp,
    pub expr: Box<Expr>,
    pub param: Option<Box<Expr>>,
    pub grouping: Vec<String>,
    /// `without (...)` (true) or `by (...)`/none (false).
    pub without: bool,
    pub pos: PosRange,
}

#[derive(Debug, Clone)]
pub struct Call {
    pub func: &'static crate::functions::Function,
    pub args: Vec<Expr>,
    pub pos: PosRange,
}

/// `@ <timestamp>`, `@ start()` or `@ end()`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum At {
    /// Milliseconds since the epoch.
    Timestamp(i64),
    Start,
    End,
}

/// A duration: a constant, or an expression resolved per query.
#[derive(Debug, Clone, PartialEq)]
pub enum Duration {
    /// Milliseconds (an offset may be negative).
    Fixed(i64),
    Expr(Box<DurationExpr>),
}

impl Default for Duration {
    fn default() -> Self {
        Duration::Fixed(0)
    }
}

impl Duration {
    /// The duration in milliseconds for a query with `step` and `range` (ms), as
    /// Prometheus' `durationVisitor` computes it; `allow_negative` for offsets.
    pub fn resolve(&self, step: i64, range: i64, allow_negative: bool) -> Result<i64, String> {
        match self {
            Duration::Fixed(ms) => Ok(*ms),
            Duration::Expr(e) => {
                let secs = e.eval(step, range)?;
                let p = e.pos();
                if secs.is_nan() || secs.is_infinite() {
                    return Err(format!(
                        "{}:{}: duration is NaN or infinite",
                        p.start, p.end
                    ));
                }
                if secs <= 0.0 && !allow_negative {
                    return Err(format!(
                        "{}:{}: duration must be greater than 0",
                        p.start, p.end
                    ));
                }
                if secs > (i64::MAX as f64) / 1e9 || secs < (i64::MIN as f64) / 1e9 {
                    return Err(format!("{}:{}: duration is out of range", p.start, p.end));
                }
                Ok((secs * 1000.0) as i64)
            }
        }
    }

    /// The constant value, if the duration does not depend on the query.
    pub fn fixed(&self) -> Option<i64> {
        match self {
            Duration::Fixed(ms) => Some(*ms),
            Duration::Expr(_) => None,
        }
    }
}

/// Operators of duration expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    MinOf,
    MaxOf,
}

/// An arithmetic expression over durations, evaluated in seconds.
#[derive(Debug, Clone, PartialEq)]
pub enum DurationExpr {
    /// A number or duration literal, in seconds.
    Number { secs: f64, pos: PosRange },
    /// `step()`: the query's step.
    Step { pos: PosRange },
    /// `range()`: the query's range (end − start).
    Range { pos: PosRange },
    /// Unary minus/plus (`-step()`).
    Neg {
        expr: Box<DurationExpr>,
        start: usize,
    },
    Binary {
        op: DurationOp,
        lhs: Box<DurationExpr>,
        rhs: Box<DurationExpr>,
        /// For `min_of(a, b)`/`max_of(a, b)`, where the call is; else spans the operands.
        pos: PosRange,
    },
    /// Parenthesised.
    Paren {
        expr: Box<DurationExpr>,
        pos: PosRange,
    },
}

impl DurationExpr {
    pub fn pos(&self) -> PosRange {
        match self {
            DurationExpr::Number { pos, .. }
            | DurationExpr::Step { pos }
            | DurationExpr::Range { pos }
            | DurationExpr::Binary { pos, .. }
            | DurationExpr::Paren { pos, .. } => *pos,
            DurationExpr::Neg { expr, start } => PosRange::new(*start, expr.pos().end),
        }
    }

    /// The value in seconds for a query with `step` and `range` in milliseconds.
    pub fn eval(&self, step: i64, range: i64) -> Result<f64, String> {
        Ok(match self {
            DurationExpr::Number { secs, .. } => *secs,
            DurationExpr::Step { .. } => step as f64 / 1000.0,
            DurationExpr::Range { .. } => range as f64 / 1000.0,
            DurationExpr::Neg { expr, .. } => -expr.eval(step, range)?,
            DurationExpr::Paren { expr, .. } => expr.eval(step, range)?,
            DurationExpr::Binary { op, lhs, rhs, pos } => {
                let (l, r) = (lhs.eval(step, range)?, rhs.eval(step, range)?);
                match op {
                    DurationOp::Add => l + r,
                    DurationOp::Sub => l - r,
                    DurationOp::Mul => l * r,
                    DurationOp::Div if r == 0.0 => {
                        return Err(format!("{}:{}: division by zero", pos.start, pos.end));
                    }
                    DurationOp::Div => l / r,
                    DurationOp::Mod if r == 0.0 => {
                        return Err(format!("{}:{}: modulo by zero", pos.start, pos.end));
                    }
                    DurationOp::Mod => l % r,
                    DurationOp::Pow => l.powf(r),
                    DurationOp::MinOf => l.min(r),
                    DurationOp::MaxOf => l.max(r),
                }
            }
        })
    }
}

/// An instant-vector selector: `name{matchers} offset d @ t`.
#[derive(Debug, Clone)]
pub struct VectorSelector {
    /// The metric name when written outside the braces (or as a lone quoted string inside
    /// them); also present in `matchers` as a `__name__` equality matcher, as Prometheus'
    /// parser adds it.
    pub name: Option<String>,
    /// All matchers, `__name__` included. With `or` between matchers, the first group.
    pub matchers: Vec<Matcher>,
    /// The other groups of `{a="1" or b="2"}`: a series matching any group is selected.
    pub or_matchers: Vec<Vec<Matcher>>,
    /// `offset`, as written (negative for `offset -5m`).
    pub offset: Duration,
    pub at: Option<At>,
    /// The `anchored` modifier (extended range selectors).
    pub anchored: bool,
    /// The `smoothed` modifier.
    pub smoothed: bool,
    pub pos: PosRange,
}

/// A range-vector selector: `selector[range]`.
#[derive(Debug, Clone)]
pub struct MatrixSelector {
    pub vs: VectorSelector,
    pub range: Duration,
    /// Where the closing `]` (or a modifier after it) ends.
    pub end: usize,
}

/// A subquery: `expr[range:step] offset d @ t`.
#[derive(Debug, Clone)]
pub struct SubqueryExpr {
    pub expr: Box<Expr>,
    pub range: Duration,
    /// The resolution; `None` when omitted (the engine's default evaluation interval).
    pub step: Option<Duration>,
    pub offset: Duration,
    pub at: Option<At>,
    pub end: usize,
}
