//! PromQL evaluation over the [`vigil_model::Queryable`] seam.
//!
//! The grammar comes from the `promql-parser` crate, which follows Prometheus' grammar and its
//! error messages; evaluation is ours. The engine sees only label sets and sample iterators,
//! never chunks or locks. This first version evaluates literals, instant and range selectors
//! (with `offset` and `@`), unary minus, arithmetic and comparison operators between scalars
//! and vectors (one-to-one vector matching with `on`/`ignoring`), and the aggregations `sum`,
//! `avg`, `min`, `max`, `count`, `group` with `by`/`without`. Everything else is refused with
//! an execution error naming the construct; the full language is issue 5.

mod engine;
mod value;

pub use engine::{Engine, EngineError, EngineOptions};
pub use value::{RangeSeries, Value, VectorSample};

#[cfg(test)]
mod tests;
