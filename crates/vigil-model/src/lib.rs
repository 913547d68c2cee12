//! The storage contract every other vigil crate speaks.
//!
//! `vigil-model` sits at the top of the crate DAG and depends on nothing of ours. It defines
//! series identity ([`Labels`]), label [`Matcher`]s with Prometheus' anchored-regex semantics,
//! [`Sample`]s and the staleness marker, Prometheus-style [`duration`]s, metric metadata, Go's
//! float formatting ([`gofmt`]), and the seams of DESIGN.md: [`Appender`] (scrape, rules,
//! receivers and import write through it), [`Querier`] (the PromQL engine and the API read
//! through it, and [`MergeQuerier`] combines several) and [`wal::WalSource`] (remote write
//! follows the log through it). The TSDB implements them; the parts above never see chunks,
//! files or locks, so the storage engine can be replaced without touching them.

pub mod civil;
pub mod duration;
pub mod gofmt;
pub mod goregex;
pub mod histogram;
mod labels;
pub mod matcher;
mod merge;
pub mod names;
mod storage;
pub mod wal;

pub use duration::{Duration, DurationError};
pub use labels::{Label, Labels, LabelsBuilder, METRIC_NAME};
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use merge::MergeQuerier;
pub use storage::{
    AppendError, Appendable, Appender, HistogramSample, PerSample, Querier, Queryable,
    SampleIterator, SelectHints, Series, SeriesRef, SeriesSet, StorageError,
};

/// A metric family's type, help and unit, as a target exposed them (Prometheus'
/// `model/metadata`): shared by scrape, which records it, and the API, which serves it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricMetadata {
    pub kind: String,
    pub help: String,
    pub unit: String,
}

/// A timestamp in milliseconds since the Unix epoch, as Prometheus stores them.
pub type Timestamp = i64;

/// One float sample of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub t: Timestamp,
    pub v: f64,
}

/// Bit pattern of Prometheus' staleness marker: a NaN that no arithmetic produces.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker value. Compare with [`is_stale_nan`], never with `==`.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True if `v` is exactly the staleness marker (other NaNs are ordinary values).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Milliseconds since the epoch, now.
pub fn now_millis() -> Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_nan_is_distinguished_from_plain_nan() {
        assert!(is_stale_nan(stale_nan()));
        assert!(!is_stale_nan(f64::NAN));
        assert!(stale_nan().is_nan());
    }
}
