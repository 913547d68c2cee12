//! The four PromQL value types.

use std::sync::Arc;
use vigil_model::histogram::FloatHistogram;
use vigil_model::{HistogramSample, Labels, Sample, Timestamp};

/// One sample of an instant vector: a float `v`, or a native histogram `h` (then `v` is 0).
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSample {
    pub labels: Labels,
    pub t: Timestamp,
    pub v: f64,
    pub h: Option<Arc<FloatHistogram>>,
}

/// One series of a range vector: its float samples and its histogram samples, each in time
/// order (Prometheus' `values` and `histograms`).
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
    pub histograms: Vec<HistogramSample>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar { t: Timestamp, v: f64 },
    String { t: Timestamp, v: String },
    Vector(Vec<VectorSample>),
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// Prometheus' name for the type, as the API's `resultType` shows it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}
