//! Immutable on-disk blocks (`docs/format/block.md`).
//!
//! A block is written once ([`writer`]) into a temporary directory and renamed into place, so a
//! crash never leaves half of one. Opening decodes the small index into memory (the postings
//! code is the head's) and memory-maps the chunks file, so a query touches only the pages of
//! the chunks it decodes and the kernel, not our heap, caches them.

pub mod index;
pub mod writer;

use crate::chunk::{ChunkBytes, SampleIter};
use crate::error::{TsdbError, io_err};
use index::Index;
use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vigil_model::{
    Labels, Matcher, Querier, SelectHints, Series, SeriesSet, StorageError, Timestamp,
};

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
    index: Index,
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

impl Block {
    pub fn open(dir: &Path) -> Result<Block, TsdbError> {
        let meta_path = dir.join("meta.json");
        let raw = std::fs::read(&meta_path).map_err(|e| io_err(&meta_path, e))?;
        let meta: BlockMeta =
            serde_json::from_slice(&raw).map_err(|e| corrupt(&meta_path, e.to_string()))?;
        if meta.version != 1 {
            return Err(corrupt(
                &meta_path,
                format!("unknown version {}", meta.version),
            ));
        }
        let index_path = dir.join("index");
        let raw_index = std::fs::read(&index_path).map_err(|e| io_err(&index_path, e))?;
        let index = index::decode(&raw_index).map_err(|e| corrupt(&index_path, e))?;
        let chunks_path = dir.join("chunks");
        let chunks = map(&chunks_path)?;
        if chunks.get(..8) != Some(CHUNKS_MAGIC.as_slice()) {
            return Err(corrupt(&chunks_path, "bad magic"));
        }
        let size = raw.len() as u64 + raw_index.len() as u64 + chunks.len() as u64;
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

    pub fn querier(self: &Arc<Self>, mint: Timestamp, maxt: Timestamp) -> BlockQuerier {
        BlockQuerier {
            block: self.clone(),
            mint,
            maxt,
        }
    }

    fn labels(&self, r: usize) -> Labels {
        let syms = self.index.symbols.reader();
        Labels::from_pairs(
            self.index.series[r]
                .labels
                .iter()
                .map(|&(n, v)| (syms.get(n), syms.get(v))),
        )
    }

    fn samples(&self, r: usize, mint: i64, maxt: i64) -> Option<SampleIter> {
        let chunks: Vec<ChunkBytes> = self.index.series[r]
            .chunks
            .iter()
            .filter(|c| c.maxt >= mint && c.mint <= maxt)
            .map(|c| ChunkBytes::Mapped(self.chunks.clone(), c.offset as usize))
            .collect();
        (!chunks.is_empty()).then(|| SampleIter::new(chunks, Vec::new(), mint, maxt))
    }

    fn matching(&self, matchers: &[Matcher]) -> Vec<usize> {
        let syms = self.index.symbols.reader();
        self.index
            .postings
            .select(matchers, &syms)
            .into_iter()
            .map(|r| r as usize)
            .filter(|&r| r < self.index.series.len())
            .collect()
    }
}

pub struct BlockQuerier {
    block: Arc<Block>,
    mint: Timestamp,
    maxt: Timestamp,
}

impl BlockQuerier {
    fn whole(&self, matchers: &[Matcher]) -> bool {
        matchers.is_empty()
            && self.mint <= self.block.meta.min_time
            && self.maxt >= self.block.meta.max_time - 1
    }

    fn live(&self, matchers: &[Matcher]) -> Vec<Labels> {
        let b = &self.block;
        b.matching(matchers)
            .into_iter()
            .filter(|&r| {
                b.samples(r, self.mint, self.maxt)
                    .is_some_and(|mut it| it.next().is_some())
            })
            .map(|r| b.labels(r))
            .collect()
    }
}

impl Querier for BlockQuerier {
    fn select(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<SeriesSet<'_>, StorageError> {
        let (start, end) = (hints.start.max(self.mint), hints.end.min(self.maxt));
        let b = &self.block;
        // Series are stored sorted by labels, so sorted refs are sorted label sets.
        let out = b.matching(matchers).into_iter().filter_map(move |r| {
            let mut it = b.samples(r, start, end)?;
            if !it.has_next() {
                return None;
            }
            Some(Series {
                labels: b.labels(r),
                samples: Box::new(it),
            })
        });
        Ok(Box::new(out))
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let mut out = BTreeSet::new();
        if self.whole(matchers) {
            let syms = self.block.index.symbols.reader();
            out.extend(
                self.block
                    .index
                    .postings
                    .names()
                    .map(|n| syms.get(n).to_string()),
            );
        } else {
            for l in self.live(matchers) {
                out.extend(l.iter().map(|l| l.name.clone()));
            }
        }
        Ok(out.into_iter().collect())
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let mut out = BTreeSet::new();
        if self.whole(matchers) {
            let syms = self.block.index.symbols.reader();
            if let Some(n) = syms.lookup(name) {
                out.extend(
                    self.block
                        .index
                        .postings
                        .values(n)
                        .map(|v| syms.get(v).to_string()),
                );
            }
        } else {
            for l in self.live(matchers) {
                if let Some(v) = l.get(name) {
                    out.insert(v.to_string());
                }
            }
        }
        Ok(out.into_iter().collect())
    }
}
