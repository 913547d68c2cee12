//! vigil's storage engine, behind the [`vigil_model::Appender`] and [`vigil_model::Querier`]
//! seams.
//!
//! Layout, from the bottom up:
//! - [`chunk`]: the Gorilla XOR encoding of samples.
//! - `head`: series in memory (interned labels, striped maps, postings with matcher fast
//!   paths, one XOR chunk stream per series), appenders and queriers.
//! - [`wal`]: segment files of CRC-framed records; one batch per commit, written before the
//!   samples become visible.
//! - `head::snapshot` + `replay`: the head snapshot that doubles as the WAL checkpoint and
//!   makes clean restarts instant, and the replay that repairs a torn log instead of refusing
//!   to start.
//! - [`block`]: immutable 2-hour (and compacted, larger) blocks on disk, memory-mapped, and
//!   `vigil_model::MergeQuerier`, which serves head and blocks as one.
//! - [`Tsdb`]: all of it in one data directory, with retention and compaction.
//! - [`fs`]: the one file layer every durable write goes through (faults are injected there).
//!
//! Scrape, rules and the query engine see only the seams. Formats are documented in
//! `docs/format/`.

pub mod block;
pub mod chunk;
mod db;
mod delete;
pub mod encoding;
mod error;
pub mod fs;
mod head;
pub mod import;
mod reader;
mod replay;
pub mod wal;

pub use block::{Block, BlockMeta};
pub use db::{Tsdb, TsdbOptions, TsdbStats};
pub use delete::Deleted;
pub use error::TsdbError;
pub use head::{Head, HeadOptions, HeadStats};
pub use wal::FsyncPolicy;
pub use wal::record::WalCompression;

/// Loads the bytes of a head snapshot file into an empty `head`, as opening a data directory
/// does (the whole file is validated before anything is applied). For the fuzz target
/// `head_snapshot`; vigil itself reads snapshots through [`Tsdb::open`].
#[doc(hidden)]
pub fn load_head_snapshot(head: &Head, bytes: &[u8]) -> Result<usize, TsdbError> {
    head::snapshot::load_bytes(head, bytes, std::path::Path::new("snapshot"))
}

#[cfg(test)]
mod tests;
