//! PromQL evaluation over the [`vigil_model::Queryable`] seam.
//!
//! The grammar is vigil's own parser (`vigil-promql-parser`: Prometheus 3.14's grammar, error
//! messages and positions); evaluation is ours and follows Prometheus 3.x semantics (left-open windows,
//! delayed `__name__` removal, Kahan sums, `extrapolatedRate`). The engine sees only label
//! sets and sample iterators, never chunks or locks. Modules: [`engine`] (entry points,
//! limits, the step-wise evaluator), `binary` (operators and vector matching),
//! `aggregations`, and `functions`.

mod aggregations;
mod binary;
pub mod engine;
mod functions;
mod value;

pub use engine::{Cancel, Engine, EngineError, EngineOptions, QueryGate, QueryOutput, QueryStats};
pub use value::{RangeSeries, Value, VectorSample};

#[cfg(test)]
mod tests;
