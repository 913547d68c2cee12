//! One series in the head: its interned labels and its chunks.
//!
//! Samples go into an open XOR chunk; at [`SAMPLES_PER_CHUNK`] it is frozen into an immutable
//! `Arc<[u8]>` that readers share without copying. Each series has its own small mutex, so
//! appends to different series never contend, and a query holds it only long enough to clone
//! the chunk handles it needs.

use super::symbols::Sym;
use crate::chunk::{ChunkBytes, SAMPLES_PER_CHUNK, SampleIter, XorAppender};
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64};
use vigil_model::{SeriesRef, is_stale_nan};

/// A frozen chunk and its time range.
#[derive(Clone)]
pub struct FullChunk {
    pub mint: i64,
    pub maxt: i64,
    pub bytes: Arc<[u8]>,
}

pub struct MemSeries {
    pub r: SeriesRef,
    /// (name, value) symbol pairs, sorted by name.
    pub labels: Box<[(Sym, Sym)]>,
    /// Whether a WAL series record (or a snapshot) already holds this series.
    pub logged: AtomicBool,
    /// Set (under the commit lock) when garbage collection unlinks the series; a batch that
    /// still holds it re-resolves its labels at commit.
    pub removed: AtomicBool,
    /// `data.last_t`, readable without the lock: appenders refuse out-of-order samples early
    /// with one atomic load (the commit decides again under the lock).
    pub last_t: AtomicI64,
    pub data: Mutex<SeriesData>,
}

/// What happened to an appended sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Appended in order; `true` when a new chunk was started.
    Appended(bool),
    /// Accepted into the out-of-order buffer.
    OutOfOrderAccepted,
    /// Same timestamp and value as the last sample (or a staleness marker): ignored.
    Duplicate,
    /// Same timestamp, different value.
    DuplicateTimestamp,
    /// Older than the last sample and outside the out-of-order window.
    OutOfOrder,
}

pub struct SeriesData {
    pub head: XorAppender,
    pub head_mint: i64,
    pub full: Vec<FullChunk>,
    /// Last in-order timestamp; `i64::MIN` when the series has none.
    pub last_t: i64,
    pub last_v_bits: u64,
    /// Out-of-order samples accepted within the window, sorted by time; merged on read.
    pub ooo: Vec<(i64, f64)>,
}

impl Default for SeriesData {
    fn default() -> Self {
        SeriesData {
            head: XorAppender::with_capacity(48),
            head_mint: i64::MAX,
            full: Vec::new(),
            last_t: i64::MIN,
            last_v_bits: 0,
            ooo: Vec::new(),
        }
    }
}

impl SeriesData {
    pub fn is_empty(&self) -> bool {
        self.head.num_samples() == 0 && self.full.is_empty() && self.ooo.is_empty()
    }

    /// Appends a sample; `ooo_min` is the oldest timestamp the out-of-order window accepts.
    pub fn append(&mut self, t: i64, v: f64, ooo_min: Option<i64>) -> Outcome {
        if t > self.last_t || (self.last_t == i64::MIN && self.head.num_samples() == 0) {
            let mut cut = false;
            if self.head.num_samples() >= SAMPLES_PER_CHUNK {
                self.cut();
                cut = true;
            }
            if self.head.num_samples() == 0 {
                self.head_mint = t;
                cut = true;
            }
            self.head.append(t, v);
            self.last_t = t;
            self.last_v_bits = v.to_bits();
            return Outcome::Appended(cut);
        }
        if t == self.last_t {
            return if self.last_v_bits == v.to_bits() || is_stale_nan(v) {
                Outcome::Duplicate
            } else {
                Outcome::DuplicateTimestamp
            };
        }
        match ooo_min {
            Some(min) if t >= min => {
                match self.ooo.binary_search_by_key(&t, |s| s.0) {
                    Ok(i) if self.ooo[i].1.to_bits() == v.to_bits() => return Outcome::Duplicate,
                    Ok(_) => return Outcome::DuplicateTimestamp,
                    Err(i) => self.ooo.insert(i, (t, v)),
                }
                Outcome::OutOfOrderAccepted
            }
            _ => Outcome::OutOfOrder,
        }
    }

    /// Freezes the open chunk.
    fn cut(&mut self) {
        let bytes = self.head.take_bytes();
        self.full.push(FullChunk {
            mint: self.head_mint,
            maxt: self.last_t,
            bytes: Arc::from(bytes),
        });
    }

    /// Drops chunks and out-of-order samples entirely before `cutoff`; returns chunks dropped.
    pub fn truncate_before(&mut self, cutoff: i64) -> usize {
        let n = self.full.partition_point(|c| c.maxt < cutoff);
        self.full.drain(..n);
        let mut dropped = n;
        if self.head.num_samples() > 0 && self.last_t < cutoff {
            self.head = XorAppender::with_capacity(48);
            self.head_mint = i64::MAX;
            dropped += 1;
        }
        let k = self.ooo.partition_point(|s| s.0 < cutoff);
        self.ooo.drain(..k);
        dropped
    }

    /// Deletes the samples within `[mint, maxt]` by re-encoding what is left; returns how many
    /// were deleted. The last appended timestamp is kept, so deleting recent samples does not
    /// reopen the past to appends.
    pub fn delete_range(&mut self, mint: i64, maxt: i64) -> usize {
        let Some(all) = self.chunks_in(i64::MIN, i64::MAX) else {
            return 0;
        };
        let (last_t, last_v_bits) = (self.last_t, self.last_v_bits);
        let before: Vec<(i64, f64)> = all.map(|s| (s.t, s.v)).collect();
        let deleted = before.iter().filter(|s| s.0 >= mint && s.0 <= maxt).count();
        if deleted == 0 {
            return 0;
        }
        *self = SeriesData::default();
        for (t, v) in before.into_iter().filter(|s| s.0 < mint || s.0 > maxt) {
            self.append(t, v, None);
        }
        self.last_t = last_t;
        self.last_v_bits = last_v_bits;
        deleted
    }

    /// Whether a sample falls within `[mint, maxt]`. Decides from the series' time bounds when
    /// it can (the common case for label lookups) and decodes only when the range cuts into
    /// the series.
    pub fn has_sample_in(&self, mint: i64, maxt: i64) -> bool {
        let first = self
            .full
            .first()
            .map(|c| c.mint)
            .or((self.head.num_samples() > 0).then_some(self.head_mint));
        let last = (self.head.num_samples() > 0)
            .then_some(self.last_t)
            .or(self.full.last().map(|c| c.maxt));
        if self.ooo.is_empty()
            && let (Some(first), Some(last)) = (first, last)
        {
            if last < mint || first > maxt {
                return false;
            }
            if first >= mint && last <= maxt {
                return true;
            }
        }
        self.chunks_in(mint, maxt)
            .is_some_and(|mut it| it.next().is_some())
    }

    /// The chunks overlapping `[mint, maxt]`, or `None` when no sample falls in it.
    pub fn chunks_in(&self, mint: i64, maxt: i64) -> Option<SampleIter> {
        let mut chunks: Vec<ChunkBytes> = self
            .full
            .iter()
            .filter(|c| c.maxt >= mint && c.mint <= maxt)
            .map(|c| ChunkBytes::Shared(c.bytes.clone()))
            .collect();
        if self.head.num_samples() > 0 && self.last_t >= mint && self.head_mint <= maxt {
            chunks.push(ChunkBytes::Shared(Arc::from(self.head.bytes())));
        }
        let ooo: Vec<(i64, f64)> = self
            .ooo
            .iter()
            .filter(|s| s.0 >= mint && s.0 <= maxt)
            .copied()
            .collect();
        if chunks.is_empty() && ooo.is_empty() {
            return None;
        }
        Some(SampleIter::new(chunks, ooo, mint, maxt))
    }
}
