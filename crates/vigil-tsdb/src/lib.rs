//! vigil's storage engine, behind the [`vigil_model::Appender`] and [`vigil_model::Querier`]
//! seams.
//!
//! This first version is the in-memory head only: series keyed by their label set, a postings
//! index per label pair, and samples in per-series vectors guarded by their own lock, so
//! appends to different series never contend on one another. The WAL, compressed chunks,
//! blocks and retention by size follow (issue 4); scrape, rules and the query engine only see
//! the seams and will not change when they land.

mod head;

pub use head::{Head, HeadOptions, HeadStats};
