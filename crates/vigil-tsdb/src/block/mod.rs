//! Immutable on-disk blocks (`docs/format/block.md`).
//!
//! A block is written once ([`writer`]) into a temporary directory and renamed into place, so a
//! crash never leaves half of one. Opening memory-maps both the index (read on demand:
//! [`index`]; matchers are evaluated by the head's postings code over it) and the chunks file,
//! so an open block holds almost nothing on the heap, a query touches only the pages of the
//! index entries and chunks it reads, and the kernel, not our heap, caches them.

pub mod index;
pub mod writer;

use crate::chunk::{ChunkBytes, SampleIter, hist, read_framed};
use crate::error::{TsdbError, io_err};
use crate::head::series::decode_chunks_with;
use crate::head::symbols::Sym;
use crate::reader::{BlockReader, PostingsIndex, ReaderQuerier, SymbolLookup};
use index::{BlockIndex, IndexSeries};
use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vigil_model::{HistogramSample, SeriesRef, Timestamp};

pub const CHUNKS_MAGIC: &[u8; 8] = b"VGCHK001";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStats {
    pub num_samples: u64,
    pub num_series: u64,
    pub num_chunks: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compaction {
    pub level: u32,
    pub sources: Vec<String>,
}

/// `meta.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    pub ulid: String,
    /// Inclusive.
    pub min_time: i64,
    /// Exclusive.
    pub max_time: i64,
    pub stats: BlockStats,
    pub compaction: Compaction,
    pub version: u32,
}

/// An open block.
pub struct Block {
    dir: PathBuf,
    meta: BlockMeta,
    index: BlockIndex,
    chunks: Arc<Mmap>,
    size: u64,
}

/// Maps a file read-only.
#[allow(unsafe_code)]
pub(crate) fn map(path: &Path) -> Result<Mmap, TsdbError> {
    let f = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    // SAFETY: block files are immutable once renamed into place: vigil never writes to them
    // again and deletes them only by unlinking, which keeps the mapping valid. Another process
    // truncating the file under us would be a bug outside vigil (it would fault, as for
    // Prometheus); reads go through `read_framed`, which checks bounds and CRCs.
    unsafe { Mmap::map(&f) }.map_err(|e| io_err(path, e))
}

fn corrupt(path: &Path, reason: impl Into<String>) -> TsdbError {
    TsdbError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason: reason.into(),
    }
}

/// The byte offset of a JSON error (serde_json gives a 1-based line and column).
fn json_offset(raw: &[u8], e: &serde_json::Error) -> u64 {
    let line_start: usize = raw
        .split_inclusive(|&b| b == b'\n')
        .take(e.line().saturating_sub(1))
        .map(<[u8]>::len)
        .sum();
    (line_start + e.column().saturating_sub(1)) as u64
}

impl Block {
    pub fn open(dir: &Path) -> Result<Block, TsdbError> {
        let meta_path = dir.join("meta.json");
        let raw = std::fs::read(&meta_path).map_err(|e| io_err(&meta_path, e))?;
        let meta: BlockMeta = serde_json::from_slice(&raw).map_err(|e| TsdbError::Corrupt {
            path: meta_path.clone(),
            offset: json_offset(&raw, &e),
            reason: e.to_string(),
        })?;
        if !(1..=3).contains(&meta.version) {
            return Err(corrupt(
                &meta_path,
                format!("unknown version {}", meta.version),
            ));
        }
        let index_path = dir.join("index");
        let index = index::open(&index_path)?;
        let index_len = std::fs::metadata(&index_path)
            .map_err(|e| io_err(&index_path, e))?
            .len();
        let chunks_path = dir.join("chunks");
        let chunks = map(&chunks_path)?;
        if chunks.get(..8) != Some(CHUNKS_MAGIC.as_slice()) {
            return Err(corrupt(&chunks_path, "bad magic"));
        }
        let size = raw.len() as u64 + index_len + chunks.len() as u64;
        Ok(Block {
            dir: dir.to_path_buf(),
            meta,
            index,
            chunks: Arc::new(chunks),
            size,
        })
    }

    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes on disk.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn querier(self: &Arc<Self>, mint: Timestamp, maxt: Timestamp) -> BlockQuerier {
        BlockQuerier {
            reader: self.clone(),
            mint,
            maxt,
        }
    }
}

/// A block's querier: the shared one over `Arc<Block>`.
pub(crate) type BlockQuerier = ReaderQuerier<Arc<Block>>;

impl BlockReader for Block {
    /// The series' index entry, decoded when a query reaches it.
    type Series = IndexSeries;
    /// Series are stored sorted by labels, so sorted refs are sorted label sets.
    const REFS_IN_LABEL_ORDER: bool = true;

    fn bounds(&self) -> Option<(Timestamp, Timestamp)> {
        // `max_time` is exclusive.
        Some((self.meta.min_time, self.meta.max_time - 1))
    }

    fn with_index<T>(&self, f: impl FnOnce(&dyn SymbolLookup, &dyn PostingsIndex) -> T) -> T {
        f(&self.index, &self.index)
    }

    /// `r` is a position in the index's series table.
    fn series(&self, r: SeriesRef) -> Option<IndexSeries> {
        self.index.series(usize::try_from(r).ok()?)
    }

    fn label_syms<'a>(&'a self, s: &'a IndexSeries) -> &'a [(Sym, Sym)] {
        &s.labels
    }

    fn samples(&self, s: &IndexSeries, mint: Timestamp, maxt: Timestamp) -> Option<SampleIter> {
        let chunks: Vec<ChunkBytes> = s
            .chunks
            .iter()
            .filter(|c| c.maxt >= mint && c.mint <= maxt)
            .map(|c| ChunkBytes::Mapped(self.chunks.clone(), c.offset as usize))
            .collect();
        (!chunks.is_empty()).then(|| SampleIter::new(chunks, Vec::new(), mint, maxt))
    }

    fn histograms(
        &self,
        s: &IndexSeries,
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<HistogramSample> {
        let mut out = Vec::new();
        if s.hchunks.is_empty() {
            return out;
        }
        // A chunk failing its CRC yields nothing, one that does not decode what came before
        // the damage; the query goes on (as for float chunks).
        let chunks = s
            .hchunks
            .iter()
            .filter(|c| c.maxt >= mint && c.mint <= maxt)
            .map(|c| read_framed(&self.chunks, c.offset as usize).unwrap_or(&[]));
        decode_chunks_with(chunks, hist::decode_block_chunk, mint, maxt, &mut out);
        out
    }

    fn has_sample_in(&self, s: &IndexSeries, mint: Timestamp, maxt: Timestamp) -> bool {
        let overlaps = |c: &[index::ChunkMeta]| c.iter().any(|c| c.maxt >= mint && c.mint <= maxt);
        (overlaps(&s.chunks)
            && self
                .samples(s, mint, maxt)
                .is_some_and(|mut it| it.next().is_some()))
            || (overlaps(&s.hchunks) && !self.histograms(s, mint, maxt).is_empty())
    }
}

/// Rewrites the block in `dir` as vigil wrote it before `VGIDX003`: a `VGIDX001` index and
/// `meta.json` version 1, or `VGIDX002` and version 2 when it holds histograms. For tests of
/// the old-format path; nothing may have the block open.
#[cfg(test)]
pub(crate) fn downgrade(dir: &Path) {
    let path = dir.join("index");
    let ix = index::open(&path).unwrap();
    let syms: Vec<String> = (0..ix.num_symbols() as Sym)
        .map(|i| ix.symbol(i).unwrap().to_string())
        .collect();
    let series: Vec<IndexSeries> = (0..ix.num_series())
        .map(|i| ix.series(i).unwrap())
        .collect();
    drop(ix);
    let syms: Vec<&str> = syms.iter().map(String::as_str).collect();
    std::fs::write(&path, index::encode_v2(&syms, &series)).unwrap();
    let meta_path = dir.join("meta.json");
    let mut meta: BlockMeta = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta.version = if series.iter().any(|s| !s.hchunks.is_empty()) {
        2
    } else {
        1
    };
    std::fs::write(&meta_path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
}
