//! Classic histograms (`_bucket{le}`, `_count`, `_sum` series) converted into one native
//! histogram with custom buckets (NHCB, schema −53), as Prometheus converts them for
//! `convert_classic_histograms_to_nhcb` and its test scripts' `load_with_nhcb`.

use super::{CUSTOM_BUCKETS_SCHEMA, FloatHistogram, Span};
use std::sync::Arc;

/// Why a classic histogram could not be converted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NhcbError {
    #[error("bucket count must be non-negative: le={le}, count={count}")]
    NegativeBucketCount { le: f64, count: f64 },
    #[error("bucket boundary must not be NaN")]
    NanBucket,
    #[error("count must be non-negative: count={0}")]
    NegativeCount(f64),
    #[error("count is not cumulative: {0} < {1}")]
    NotCumulative(f64, f64),
    #[error("count mismatch: count={count} != le={le} count={bucket}")]
    CountMismatch { count: f64, le: f64, bucket: f64 },
}

/// The parts of one classic histogram at one timestamp, collected in any order.
#[derive(Debug, Clone, Default)]
pub struct ClassicHistogram {
    /// (upper bound, cumulative count), sorted by bound.
    buckets: Vec<(f64, f64)>,
    count: Option<f64>,
    sum: f64,
    err: Option<NhcbError>,
}

impl ClassicHistogram {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the cumulative count of the bucket `le`. A bucket seen twice keeps its first
    /// count; counts must not decrease with the bound.
    pub fn set_bucket(&mut self, le: f64, count: f64) {
        if self.err.is_some() {
            return;
        }
        if le.is_nan() {
            self.err = Some(NhcbError::NanBucket);
            return;
        }
        if count < 0.0 {
            self.err = Some(NhcbError::NegativeBucketCount { le, count });
            return;
        }
        let i = self.buckets.partition_point(|b| b.0 < le);
        if self.buckets.get(i).is_some_and(|b| b.0 == le) {
            return;
        }
        if i > 0 && count < self.buckets[i - 1].1 {
            self.err = Some(NhcbError::NotCumulative(count, self.buckets[i - 1].1));
            return;
        }
        if let Some(next) = self.buckets.get(i)
            && count > next.1
        {
            self.err = Some(NhcbError::NotCumulative(next.1, count));
            return;
        }
        self.buckets.insert(i, (le, count));
    }

    pub fn set_count(&mut self, count: f64) {
        if self.err.is_none() && count < 0.0 {
            self.err = Some(NhcbError::NegativeCount(count));
        }
        self.count = Some(count);
    }

    pub fn set_sum(&mut self, sum: f64) {
        self.sum = sum;
    }

    /// The native histogram. Without `_count` the highest bucket's count is used; without a
    /// `+Inf` bucket one is added holding the count. Integral counts are laid out as
    /// Prometheus lays out its integer histograms (gaps of up to two empty buckets kept in a
    /// span), fractional ones with every empty bucket dropped.
    pub fn convert(mut self) -> Result<FloatHistogram, NhcbError> {
        if let Some(e) = self.err {
            return Err(e);
        }
        let count = match self.count {
            Some(c) => c,
            None => self.buckets.last().map_or(0.0, |b| b.1),
        };
        if self.buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
            self.buckets.push((f64::INFINITY, count));
        }
        let last = *self.buckets.last().unwrap();
        if count != last.1 {
            return Err(NhcbError::CountMismatch {
                count,
                le: last.0,
                bucket: last.1,
            });
        }
        let integral = self.buckets.iter().all(|b| b.1.round() == b.1) && count.round() == count;
        let mut prev = 0.0;
        let per_bucket: Vec<f64> = self
            .buckets
            .iter()
            .map(|b| {
                let d = b.1 - prev;
                prev = b.1;
                d
            })
            .collect();
        let bounds: Vec<f64> = self.buckets[..self.buckets.len() - 1]
            .iter()
            .map(|b| b.0)
            .collect();
        let mut h = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count,
            sum: self.sum,
            positive_spans: vec![Span {
                offset: 0,
                length: per_bucket.len() as u32,
            }],
            positive_buckets: per_bucket,
            custom_values: (!bounds.is_empty()).then(|| Arc::from(bounds)),
            ..Default::default()
        };
        h.compact(if integral { 2 } else { 0 });
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_cumulative_buckets() {
        let mut c = ClassicHistogram::new();
        c.set_bucket(f64::INFINITY, 10.0);
        c.set_bucket(0.1, 2.0);
        c.set_bucket(1.0, 2.0);
        c.set_bucket(0.5, 2.0);
        c.set_bucket(5.0, 7.0);
        c.set_count(10.0);
        c.set_sum(12.5);
        let h = c.convert().unwrap();
        assert_eq!(h.custom(), &[0.1, 0.5, 1.0, 5.0]);
        // 2, 0, 0, 5, 3: the two empty buckets stay inside the span (integral counts).
        assert_eq!(h.positive_buckets, vec![2.0, 0.0, 0.0, 5.0, 3.0]);
        assert_eq!(h.count, 10.0);
        assert_eq!(h.sum, 12.5);
        assert!(h.validate().is_ok());
    }

    #[test]
    fn adds_the_inf_bucket_and_checks_counts() {
        let mut c = ClassicHistogram::new();
        c.set_bucket(1.0, 1.5);
        c.set_count(1.5);
        let h = c.convert().unwrap();
        assert_eq!(h.custom(), &[1.0]);
        assert_eq!(h.positive_buckets, vec![1.5]);
        let mut bad = ClassicHistogram::new();
        bad.set_bucket(1.0, 3.0);
        bad.set_bucket(f64::INFINITY, 3.0);
        bad.set_count(2.0);
        assert!(matches!(
            bad.convert(),
            Err(NhcbError::CountMismatch { .. })
        ));
        let mut nc = ClassicHistogram::new();
        nc.set_bucket(1.0, 3.0);
        nc.set_bucket(2.0, 1.0);
        assert!(matches!(nc.convert(), Err(NhcbError::NotCumulative(..))));
    }
}
