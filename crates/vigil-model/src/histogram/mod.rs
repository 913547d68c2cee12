//! Native histograms: the second sample kind, as Prometheus models it.
//!
//! A native histogram has sparse buckets described by *spans* (runs of consecutive bucket
//! indices, each with an offset from the end of the previous run) and a count per bucket. With
//! an exponential schema `s` (−4 ≤ s ≤ 8) bucket `i` holds the observations in
//! `(2^((i−1)·2^−s), 2^(i·2^−s)]`, mirrored for negative values, plus a zero bucket
//! `[−zero_threshold, zero_threshold]`. Schema −53 means *custom buckets* (NHCB, a classic
//! histogram converted): bucket `i` is `(custom_values[i−1], custom_values[i]]`, the first one
//! starting at −Inf and the last one ending at +Inf.
//!
//! [`FloatHistogram`] (absolute float counts) is the one in-memory representation above storage:
//! PromQL computes with it, the API prints it, rules and the drift functions read it. The
//! integer form with delta-encoded buckets ([`Histogram`]) is what the wire formats carry
//! (protobuf exposition, remote write); it converts losslessly to a `FloatHistogram`, and a
//! `FloatHistogram` whose counts are integral converts back. Storage encodes integral counts
//! compactly either way.
//!
//! The arithmetic follows Prometheus' `model/histogram` semantics exactly where PromQL can see
//! the difference (which buckets a result has, schema reduction to the coarser schema, zero
//! buckets widened to the larger threshold, custom bounds reconciled to their intersection,
//! counter-reset hints), because the upstream test corpus compares bucket layouts. Internally
//! the operations expand spans into `(index, count)` runs, which keeps each one short and
//! obviously correct, and rebuild maximal spans at the end.

mod arith;
mod int;
pub mod nhcb;
pub mod notation;
mod trim;

pub use arith::AddOutcome;
pub use int::Histogram;

use std::fmt;
use std::sync::Arc;

/// The schema of histograms with custom bucket bounds (NHCB).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;
/// The lowest and highest exponential schemas.
pub const EXPONENTIAL_SCHEMA_MIN: i32 = -4;
pub const EXPONENTIAL_SCHEMA_MAX: i32 = 8;
/// Exponential schemas Prometheus reserves for the future (accepted on input, reduced to 8).
pub const EXPONENTIAL_SCHEMA_MAX_RESERVED: i32 = 52;
pub const EXPONENTIAL_SCHEMA_MIN_RESERVED: i32 = -9;

/// True for schema −53.
pub fn is_custom_buckets_schema(schema: i32) -> bool {
    schema == CUSTOM_BUCKETS_SCHEMA
}

/// True for the exponential schemas −4..=8.
pub fn is_exponential_schema(schema: i32) -> bool {
    (EXPONENTIAL_SCHEMA_MIN..=EXPONENTIAL_SCHEMA_MAX).contains(&schema)
}

/// A run of `length` consecutive buckets starting `offset` indices after the end of the
/// previous run (the first span's offset is the absolute index of its first bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub offset: i32,
    pub length: u32,
}

/// What the producer knows about a counter reset at this sample (Prometheus' hint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum CounterResetHint {
    /// Not known; readers detect resets by comparing with the previous sample.
    #[default]
    Unknown = 0,
    /// A counter reset happened at this sample.
    CounterReset = 1,
    /// No counter reset happened at this sample.
    NotCounterReset = 2,
    /// A gauge histogram: counts go up and down, resets are meaningless.
    Gauge = 3,
}

impl CounterResetHint {
    /// From the wire/storage byte; unknown values read as `Unknown`.
    pub fn from_u8(b: u8) -> Self {
        match b {
            1 => CounterResetHint::CounterReset,
            2 => CounterResetHint::NotCounterReset,
            3 => CounterResetHint::Gauge,
            _ => CounterResetHint::Unknown,
        }
    }
}

/// Why histograms could not be combined or are malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistogramError {
    /// One histogram has custom buckets and the other exponential ones.
    #[error(
        "cannot apply this operation on histograms with a mix of exponential and custom bucket schemas"
    )]
    IncompatibleSchema,
    #[error("invalid histogram schema {0}")]
    InvalidSchema(i32),
    #[error("{0}")]
    Invalid(String),
}

/// One bucket with its bounds, as the iterators yield it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub lower: f64,
    pub upper: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
    pub count: f64,
    /// Index within the schema (irrelevant for the zero bucket).
    pub index: i32,
}

impl Bucket {
    /// The fraction of this bucket's width at or below `v`, for `lower < v < upper` and finite
    /// bounds: linear for custom buckets and the zero bucket, on a log scale for exponential
    /// buckets (Prometheus 3's interpolation, with Go's `math.Log2` reproduced bit for bit).
    pub fn fraction_below(&self, v: f64, linear: bool) -> f64 {
        if linear {
            return (v - self.lower) / (self.upper - self.lower);
        }
        let log_lower = go_log2(self.lower.abs());
        let log_upper = go_log2(self.upper.abs());
        let log_v = go_log2(v.abs());
        if v > 0.0 {
            (log_v - log_lower) / (log_upper - log_lower)
        } else {
            1.0 - ((log_v - log_upper) / (log_lower - log_upper))
        }
    }
}

/// `log2(x)` computed the way Go's `math.Log2` does (as on amd64, without fused multiply-adds),
/// so that interpolated bucket shares agree with Prometheus to the last bit: the mantissa's
/// natural logarithm (FreeBSD's `e_log.c` algorithm) scaled by `1/ln 2`, plus the exponent;
/// exact for powers of two. Go's result differs from a correctly rounded `log2` in the last
/// place for some inputs.
pub(crate) fn go_log2(x: f64) -> f64 {
    let (frac, exp) = frexp(x);
    if frac == 0.5 {
        return (exp - 1) as f64;
    }
    go_ln(frac) * std::f64::consts::LOG2_E + exp as f64
}

/// Splits `x` into a mantissa in `[0.5, 1)` and a power of two (zero, infinities and NaN are
/// returned as they are, with exponent 0).
fn frexp(x: f64) -> (f64, i32) {
    if x == 0.0 || !x.is_finite() {
        return (x, 0);
    }
    let (x, mut exp) = if x.abs() < f64::MIN_POSITIVE {
        (x * (1u64 << 52) as f64, -52)
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    exp += ((bits >> 52) & 0x7ff) as i32 - 1022;
    let frac = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (frac, exp)
}

/// Natural logarithm as Go's `math.Log` computes it (FreeBSD's `e_log.c`).
fn go_ln(x: f64) -> f64 {
    const LN2_HI: f64 = f64::from_bits(0x3fe62e42fee00000);
    const LN2_LO: f64 = f64::from_bits(0x3dea39ef35793c76);
    const L1: f64 = f64::from_bits(0x3fe5555555555593);
    const L2: f64 = f64::from_bits(0x3fd999999997fa04);
    const L3: f64 = f64::from_bits(0x3fd2492494229359);
    const L4: f64 = f64::from_bits(0x3fcc71c51d8e78af);
    const L5: f64 = f64::from_bits(0x3fc7466496cb03de);
    const L6: f64 = f64::from_bits(0x3fc39a09d078c69f);
    const L7: f64 = f64::from_bits(0x3fc2f112df3e5244);

    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    let (mut f1, mut ki) = frexp(x);
    if f1 < std::f64::consts::FRAC_1_SQRT_2 {
        f1 *= 2.0;
        ki -= 1;
    }
    let f = f1 - 1.0;
    let k = ki as f64;
    let s = f / (2.0 + f);
    let s2 = s * s;
    let s4 = s2 * s2;
    let t1 = s2 * (L1 + s4 * (L3 + s4 * (L5 + s4 * L7)));
    let t2 = s4 * (L2 + s4 * (L4 + s4 * L6));
    let r = t1 + t2;
    let hfsq = 0.5 * f * f;
    k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.lower_inclusive { "[" } else { "(" })?;
        write!(
            f,
            "{},{}",
            crate::gofmt::g(self.lower, None),
            crate::gofmt::g(self.upper, None)
        )?;
        f.write_str(if self.upper_inclusive { "]" } else { ")" })?;
        write!(f, ":{}", crate::gofmt::g(self.count, None))
    }
}

/// A native histogram with float counts (absolute, not deltas).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FloatHistogram {
    pub counter_reset_hint: CounterResetHint,
    pub schema: i32,
    /// Width of the zero bucket (unused with custom buckets).
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    /// Sum of observations; also carries the staleness marker.
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    pub negative_spans: Vec<Span>,
    pub positive_buckets: Vec<f64>,
    pub negative_buckets: Vec<f64>,
    /// Upper bounds of the custom buckets (schema −53 only), shared between samples.
    pub custom_values: Option<Arc<[f64]>>,
}

/// The upper bound of bucket `idx` in `schema` (the lower bound is that of `idx − 1`).
pub fn bucket_bound(idx: i32, schema: i32, custom: &[f64]) -> f64 {
    if is_custom_buckets_schema(schema) {
        let len = custom.len() as i64;
        let i = idx as i64;
        return if i >= len {
            f64::INFINITY
        } else if i < 0 {
            f64::NEG_INFINITY
        } else {
            custom[i as usize]
        };
    }
    exponential_bound(idx, schema)
}

/// Upper bound of bucket `idx` of an exponential schema: `2^(idx·2^−schema)`. The last bucket
/// before the one for ±Inf observations ends at `f64::MAX` rather than +Inf.
pub fn exponential_bound(idx: i32, schema: i32) -> f64 {
    if schema < 0 {
        let exp = (idx as i64) << (-schema);
        if exp == 1024 {
            return f64::MAX;
        }
        return ldexp(1.0, exp);
    }
    let frac_idx = idx & ((1 << schema) - 1);
    let frac = exponential_fraction(schema, frac_idx);
    let exp = ((idx as i64) >> schema) + 1;
    if frac == 0.5 && exp == 1025 {
        return f64::MAX;
    }
    ldexp(frac, exp)
}

/// `0.5 · 2^(i / 2^schema)`, the bucket bound's mantissa in `[0.5, 1)`.
fn exponential_fraction(schema: i32, i: i32) -> f64 {
    if i == 0 {
        return 0.5;
    }
    0.5 * (i as f64 / (1u32 << schema) as f64).exp2()
}

/// `frac · 2^exp` without intermediate overflow or underflow.
fn ldexp(frac: f64, exp: i64) -> f64 {
    if exp > 2000 {
        return f64::INFINITY * frac.signum();
    }
    if exp < -2200 {
        return 0.0;
    }
    let mut x = frac;
    let mut e = exp;
    while e > 1000 {
        x *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= 2f64.powi(-1000);
        e += 1000;
    }
    x * 2f64.powi(e as i32)
}

/// Expands spans into absolute bucket indices, paired with the counts.
pub(crate) fn expand(spans: &[Span], buckets: &[f64]) -> Vec<(i32, f64)> {
    let mut out = Vec::with_capacity(buckets.len());
    let mut idx: i32 = 0;
    let mut b = 0;
    for (n, s) in spans.iter().enumerate() {
        idx = if n == 0 {
            s.offset
        } else {
            idx.wrapping_add(s.offset)
        };
        for _ in 0..s.length {
            if b >= buckets.len() {
                return out;
            }
            out.push((idx, buckets[b]));
            b += 1;
            idx = idx.wrapping_add(1);
        }
    }
    out
}

/// Builds spans from indices in increasing order: consecutive indices share a span.
pub(crate) fn collapse(list: &[(i32, f64)]) -> (Vec<Span>, Vec<f64>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut buckets = Vec::with_capacity(list.len());
    let mut last: Option<i32> = None;
    for &(idx, c) in list {
        match last {
            Some(l) if idx == l + 1 => spans.last_mut().unwrap().length += 1,
            Some(l) => spans.push(Span {
                offset: idx - l - 1,
                length: 1,
            }),
            None => spans.push(Span {
                offset: idx,
                length: 1,
            }),
        }
        buckets.push(c);
        last = Some(idx);
    }
    (spans, buckets)
}

/// Spans and buckets of the non-empty buckets, gaps of at most `max_empty` filled with empty
/// buckets (Prometheus' `Compact`).
fn compact_side(spans: &[Span], buckets: &[f64], max_empty: usize) -> (Vec<Span>, Vec<f64>) {
    let list = expand(spans, buckets);
    let mut filled: Vec<(i32, f64)> = Vec::with_capacity(list.len());
    for (idx, c) in list.into_iter().filter(|&(_, c)| c != 0.0) {
        if let Some(&(last, _)) = filled.last() {
            let gap = (idx as i64 - last as i64 - 1) as usize;
            if gap > 0 && gap <= max_empty {
                for i in 1..=gap as i32 {
                    filled.push((last + i, 0.0));
                }
            }
        }
        filled.push((idx, c));
    }
    collapse(&filled)
}

impl FloatHistogram {
    pub fn uses_custom_buckets(&self) -> bool {
        is_custom_buckets_schema(self.schema)
    }

    /// The custom bounds (empty for exponential schemas).
    pub fn custom(&self) -> &[f64] {
        self.custom_values.as_deref().unwrap_or(&[])
    }

    /// The zero bucket (`[−threshold, threshold]`).
    pub fn zero_bucket(&self) -> Bucket {
        Bucket {
            lower: -self.zero_threshold,
            upper: self.zero_threshold,
            lower_inclusive: true,
            upper_inclusive: true,
            count: self.zero_count,
            index: 0,
        }
    }

    fn bucket_at(&self, idx: i32, count: f64, positive: bool) -> Bucket {
        let custom = self.custom();
        let (lower, upper) = if positive {
            (
                bucket_bound(idx - 1, self.schema, custom),
                bucket_bound(idx, self.schema, custom),
            )
        } else {
            (
                -bucket_bound(idx, self.schema, custom),
                -bucket_bound(idx - 1, self.schema, custom),
            )
        };
        let (lower_inclusive, upper_inclusive) = if self.uses_custom_buckets() {
            (idx == 0, true)
        } else {
            (lower < 0.0, upper > 0.0)
        };
        Bucket {
            lower,
            upper,
            lower_inclusive,
            upper_inclusive,
            count,
            index: idx,
        }
    }

    /// Positive buckets in increasing order of their bounds (empty ones included).
    pub fn positive_bucket_iter(&self) -> impl DoubleEndedIterator<Item = Bucket> + '_ {
        expand(&self.positive_spans, &self.positive_buckets)
            .into_iter()
            .map(move |(i, c)| self.bucket_at(i, c, true))
    }

    /// Negative buckets, nearest to zero first (so in decreasing order of their bounds).
    pub fn negative_bucket_iter(&self) -> impl DoubleEndedIterator<Item = Bucket> + '_ {
        expand(&self.negative_spans, &self.negative_buckets)
            .into_iter()
            .map(move |(i, c)| self.bucket_at(i, c, false))
    }

    /// Every bucket in increasing order of bounds, as Prometheus' `AllBucketIterator`: the
    /// negative ones (from −Inf up), the zero bucket when it is populated, then the positive
    /// ones; a bucket reaching into the zero bucket is cut at its threshold.
    pub fn all_buckets(&self) -> Vec<Bucket> {
        let zt = self.zero_threshold;
        let clip = |mut b: Bucket| {
            if b.upper < 0.0 && b.upper > -zt {
                b.upper = -zt;
            } else if b.lower > 0.0 && b.lower < zt {
                b.lower = zt;
            }
            b
        };
        let mut out: Vec<Bucket> = self.negative_bucket_iter().rev().map(clip).collect();
        if self.zero_count > 0.0 {
            out.push(self.zero_bucket());
        }
        out.extend(self.positive_bucket_iter().map(clip));
        out
    }

    /// Every bucket from +Inf down (the reverse of [`FloatHistogram::all_buckets`]).
    pub fn all_buckets_reverse(&self) -> Vec<Bucket> {
        let mut v = self.all_buckets();
        v.reverse();
        v
    }

    /// Scales every count and the sum (a negative factor makes it a gauge histogram).
    pub fn mul(&mut self, factor: f64) -> &mut Self {
        self.zero_count *= factor;
        self.count *= factor;
        self.sum *= factor;
        self.positive_buckets.iter_mut().for_each(|b| *b *= factor);
        self.negative_buckets.iter_mut().for_each(|b| *b *= factor);
        if factor < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
        self
    }

    /// Divides every count and the sum; division by zero also drops every bucket.
    pub fn div(&mut self, scalar: f64) -> &mut Self {
        self.zero_count /= scalar;
        self.count /= scalar;
        self.sum /= scalar;
        if scalar == 0.0 {
            self.positive_buckets.clear();
            self.negative_buckets.clear();
            self.positive_spans.clear();
            self.negative_spans.clear();
            return self;
        }
        self.positive_buckets.iter_mut().for_each(|b| *b /= scalar);
        self.negative_buckets.iter_mut().for_each(|b| *b /= scalar);
        if scalar < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
        self
    }

    /// Drops empty buckets and merges spans at most `max_empty` buckets apart (filling the gap
    /// with empty buckets). `compact(0)` is the canonical form PromQL returns.
    pub fn compact(&mut self, max_empty: usize) -> &mut Self {
        let (ps, pb) = compact_side(&self.positive_spans, &self.positive_buckets, max_empty);
        let (ns, nb) = compact_side(&self.negative_spans, &self.negative_buckets, max_empty);
        self.positive_spans = ps;
        self.positive_buckets = pb;
        self.negative_spans = ns;
        self.negative_buckets = nb;
        self
    }

    /// Exact data equality (bit patterns of counts; the same bucket layout, where spans may be
    /// split differently), as Prometheus' `Equals`.
    pub fn equals(&self, o: &FloatHistogram) -> bool {
        if self.schema != o.schema
            || self.count.to_bits() != o.count.to_bits()
            || self.sum.to_bits() != o.sum.to_bits()
        {
            return false;
        }
        if self.uses_custom_buckets() {
            if !custom_bounds_match(self.custom(), o.custom()) {
                return false;
            }
        } else {
            if self.zero_threshold != o.zero_threshold
                || self.zero_count.to_bits() != o.zero_count.to_bits()
            {
                return false;
            }
            if !layout_and_bits_equal(
                &self.negative_spans,
                &self.negative_buckets,
                &o.negative_spans,
                &o.negative_buckets,
            ) {
                return false;
            }
        }
        layout_and_bits_equal(
            &self.positive_spans,
            &self.positive_buckets,
            &o.positive_spans,
            &o.positive_buckets,
        )
    }

    /// Checks the invariants storage and the wire formats rely on.
    pub fn validate(&self) -> Result<(), HistogramError> {
        let invalid = |s: String| Err(HistogramError::Invalid(s));
        if self.uses_custom_buckets() {
            check_spans(&self.positive_spans, self.positive_buckets.len())
                .map_err(|e| HistogramError::Invalid(format!("custom buckets: {e}")))?;
            let total: u64 = self.positive_spans.iter().map(|s| s.length as u64).sum();
            let custom = self.custom();
            if let Some(first) = self.positive_spans.first()
                && first.offset < 0
            {
                return invalid(format!(
                    "custom buckets: span number 1 with offset {}: histogram has a span whose offset is negative",
                    first.offset
                ));
            }
            let last_idx = expand(&self.positive_spans, &self.positive_buckets)
                .last()
                .map(|&(i, _)| i as i64);
            if let Some(l) = last_idx
                && l > custom.len() as i64
            {
                return invalid(format!(
                    "custom buckets: only {} custom bounds defined which is insufficient to cover total span length of {}: histogram custom bounds are too few",
                    custom.len(),
                    total
                ));
            }
            if custom.windows(2).any(|w| w[0] >= w[1]) {
                return invalid(
                    "custom buckets: custom bounds are not strictly increasing".to_string(),
                );
            }
            if self.zero_count != 0.0 {
                return invalid(
                    "custom buckets: must have zero count of 0: histogram with custom buckets must have no zero bucket".to_string(),
                );
            }
            if !self.negative_spans.is_empty() || !self.negative_buckets.is_empty() {
                return invalid("custom buckets: must not have negative buckets".to_string());
            }
        } else if is_exponential_schema(self.schema) {
            check_spans(&self.positive_spans, self.positive_buckets.len())
                .map_err(|e| HistogramError::Invalid(format!("positive side: {e}")))?;
            check_spans(&self.negative_spans, self.negative_buckets.len())
                .map_err(|e| HistogramError::Invalid(format!("negative side: {e}")))?;
            if let Some(b) = self.negative_buckets.iter().find(|b| **b < 0.0) {
                return invalid(format!(
                    "negative side: bucket has observation count of {b}: histogram has a bucket whose observation count is negative"
                ));
            }
            if self.zero_count < 0.0 {
                return invalid(format!(
                    "zero bucket has observation count of {}: histogram has a bucket whose observation count is negative",
                    self.zero_count
                ));
            }
            if self.custom_values.is_some() {
                return invalid(
                    "histogram with exponential schema must not have custom bounds".to_string(),
                );
            }
        } else {
            return Err(HistogramError::InvalidSchema(self.schema));
        }
        if self.count < 0.0 {
            return invalid(format!(
                "observation count is {}: histogram observation count is negative",
                self.count
            ));
        }
        if let Some(b) = self.positive_buckets.iter().find(|b| **b < 0.0) {
            return invalid(format!(
                "positive side: bucket has observation count of {b}: histogram has a bucket whose observation count is negative"
            ));
        }
        Ok(())
    }

    /// True if a count or the sum is infinite (an aggregation overflowed).
    pub fn has_overflow(&self) -> bool {
        self.count.is_infinite()
            || self.sum.is_infinite()
            || self.zero_count.is_infinite()
            || self.positive_buckets.iter().any(|b| b.is_infinite())
            || self.negative_buckets.iter().any(|b| b.is_infinite())
    }

    /// The promqltest/promtool notation, `{{schema:1 count:3 sum:5 buckets:[1 2]}}`.
    pub fn test_expression(&self) -> String {
        notation::format(self)
    }

    /// A copy with every bucket at the lower `target` schema.
    pub fn copy_to_schema(&self, target: i32) -> FloatHistogram {
        let mut c = self.clone();
        if target < c.schema && !c.uses_custom_buckets() {
            arith::reduce_to(&mut c, target);
        }
        c
    }
}

/// Prometheus' `String()`: `{count:3, sum:5, [-1,-0.5):1, [-0.001,0.001]:2, (1,2]:1}`, empty
/// buckets left out.
impl fmt::Display for FloatHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::gofmt::g as gfmt;
        write!(
            f,
            "{{count:{}, sum:{}",
            gfmt(self.count, None),
            gfmt(self.sum, None)
        )?;
        let neg: Vec<Bucket> = self
            .negative_bucket_iter()
            .filter(|b| b.count != 0.0)
            .collect();
        for b in neg.iter().rev() {
            write!(f, ", {b}")?;
        }
        if self.zero_count != 0.0 {
            write!(f, ", {}", self.zero_bucket())?;
        }
        for b in self.positive_bucket_iter().filter(|b| b.count != 0.0) {
            write!(f, ", {b}")?;
        }
        f.write_str("}")
    }
}

/// Custom bounds equal value for value.
pub fn custom_bounds_match(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

fn layout_and_bits_equal(s1: &[Span], b1: &[f64], s2: &[Span], b2: &[f64]) -> bool {
    let l1 = expand(s1, b1);
    let l2 = expand(s2, b2);
    l1.len() == l2.len()
        && l1
            .iter()
            .zip(&l2)
            .all(|(a, b)| a.0 == b.0 && a.1.to_bits() == b.1.to_bits())
}

/// Every span after the first has a non-negative offset, and the lengths add up to `n`.
pub(crate) fn check_spans(spans: &[Span], n: usize) -> Result<(), String> {
    let mut total: u64 = 0;
    for (i, s) in spans.iter().enumerate() {
        if i > 0 && s.offset < 0 {
            return Err(format!(
                "span number {} with offset {}: histogram has a span whose offset is negative",
                i + 1,
                s.offset
            ));
        }
        total += s.length as u64;
    }
    if total != n as u64 {
        return Err(format!(
            "spans need {total} buckets, have {n} buckets: histogram spans specify different number of buckets than provided"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
