//! The integer histogram of the wire formats: counts as integers, buckets as deltas.

use super::{CounterResetHint, FloatHistogram, Span};
use std::sync::Arc;

/// A native histogram with integer counts. Bucket counts are delta-encoded: the first is
/// absolute, each following one is the difference to its predecessor (in span order), which is
/// what the protobuf exposition and remote write carry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    pub counter_reset_hint: CounterResetHint,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: u64,
    pub count: u64,
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    pub negative_spans: Vec<Span>,
    pub positive_buckets: Vec<i64>,
    pub negative_buckets: Vec<i64>,
    pub custom_values: Option<Arc<[f64]>>,
}

fn undelta(deltas: &[i64]) -> Vec<f64> {
    // Accumulated in floating point, as Prometheus' ToFloat does.
    let mut cur = 0.0;
    deltas
        .iter()
        .map(|&d| {
            cur += d as f64;
            cur
        })
        .collect()
}

fn delta(abs: &[f64]) -> Vec<i64> {
    let mut prev = 0i64;
    abs.iter()
        .map(|&a| {
            let v = a as i64;
            let d = v.wrapping_sub(prev);
            prev = v;
            d
        })
        .collect()
}

fn integral(v: f64) -> bool {
    v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 9.007_199_254_740_992e15
}

impl Histogram {
    pub fn uses_custom_buckets(&self) -> bool {
        super::is_custom_buckets_schema(self.schema)
    }

    /// The float form (custom bounds shared, not copied).
    pub fn to_float(&self) -> FloatHistogram {
        let custom = self.uses_custom_buckets();
        FloatHistogram {
            counter_reset_hint: self.counter_reset_hint,
            schema: self.schema,
            zero_threshold: if custom { 0.0 } else { self.zero_threshold },
            zero_count: if custom { 0.0 } else { self.zero_count as f64 },
            count: self.count as f64,
            sum: self.sum,
            positive_spans: self.positive_spans.clone(),
            negative_spans: if custom {
                Vec::new()
            } else {
                self.negative_spans.clone()
            },
            positive_buckets: undelta(&self.positive_buckets),
            negative_buckets: if custom {
                Vec::new()
            } else {
                undelta(&self.negative_buckets)
            },
            custom_values: if custom {
                self.custom_values.clone()
            } else {
                None
            },
        }
    }

    /// The integer form of `h`, if every count is a non-negative integer below 2^53.
    pub fn from_float(h: &FloatHistogram) -> Option<Histogram> {
        let ok = integral(h.count)
            && integral(h.zero_count)
            && h.positive_buckets.iter().all(|&b| integral(b))
            && h.negative_buckets.iter().all(|&b| integral(b));
        if !ok {
            return None;
        }
        Some(Histogram {
            counter_reset_hint: h.counter_reset_hint,
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            zero_count: h.zero_count as u64,
            count: h.count as u64,
            sum: h.sum,
            positive_spans: h.positive_spans.clone(),
            negative_spans: h.negative_spans.clone(),
            positive_buckets: delta(&h.positive_buckets),
            negative_buckets: delta(&h.negative_buckets),
            custom_values: h.custom_values.clone(),
        })
    }
}
