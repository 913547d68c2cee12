//! Sample encodings, and the iterator that streams samples out of chunks wherever they live.
//!
//! The head keeps each series' fresh samples in one open chunk ([`open`]: decimal mantissas
//! predicted from the previous value or step, about 1–3 bytes a sample on scraped values,
//! against about 5 in Gorilla-style XOR). A chunk is cut after [`SAMPLES_PER_CHUNK`]
//! samples, as Prometheus does, so that a query decodes at most one partial chunk per series
//! outside its range; a cut chunk is re-encoded for blocks ([`dense`]) and written to
//! `chunks_head/` ([`disk`]), or kept in memory as XOR ([`xor`]) without one. Blocks store
//! chunks in a file framed with a length and a CRC ([`write_framed`]), read in place
//! from a memory map; [`SampleIter`] decodes either kind one chunk at a time.

pub mod dense;
pub mod disk;
pub mod hist;
pub mod open;
pub mod packed;
pub mod xor;

use memmap2::Mmap;
pub use open::OpenChunk;
use std::sync::Arc;
use vigil_model::{Sample, SampleIterator};
pub use xor::{XorAppender, XorIter};

/// Samples per head chunk before a new one is cut.
pub const SAMPLES_PER_CHUNK: u16 = 120;

/// Samples per block chunk: larger than a head chunk, so a long query opens fewer chunks
/// and the index holds fewer references.
pub const SAMPLES_PER_BLOCK_CHUNK: usize = 1024;

/// Appends `chunk` framed as in a block's chunks file: uvarint length, bytes, CRC-32.
pub fn write_framed(buf: &mut Vec<u8>, chunk: &[u8]) {
    crate::encoding::put_bytes(buf, chunk);
    buf.extend_from_slice(&crc32fast::hash(chunk).to_le_bytes());
}

/// The chunk framed at `offset` of `file`, if it is intact.
pub fn read_framed(file: &[u8], offset: usize) -> Option<&[u8]> {
    let mut d = crate::encoding::Dec {
        b: file.get(offset..)?,
    };
    let chunk = d.bytes()?;
    let crc = d.b.get(..4)?;
    (crc32fast::hash(chunk).to_le_bytes() == crc).then_some(chunk)
}

/// Chunks a read found damaged (a block chunk failing its CRC or not decoding, a
/// `chunks_head/` chunk that does not read back) since the process started
/// (`vigil_tsdb_chunk_corruptions_total`).
static CORRUPT_CHUNKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Unix second before which no new warning about damaged chunks is logged.
static CORRUPT_WARN_AT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Damaged chunks read since the process started.
pub fn corrupt_chunks_total() -> u64 {
    CORRUPT_CHUNKS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Counts `n` damaged chunks found at open (the caller logs where).
pub(crate) fn note_corrupt_chunks(n: u64) {
    CORRUPT_CHUNKS.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
}

/// Counts a damaged chunk and says so in the log, at most once a minute: its samples are left
/// out of answers (the query goes on), which nobody would notice otherwise.
fn note_corrupt_chunk() {
    use std::sync::atomic::Ordering::Relaxed;
    let total = CORRUPT_CHUNKS.fetch_add(1, Relaxed) + 1;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let at = CORRUPT_WARN_AT.load(Relaxed);
    if now >= at
        && CORRUPT_WARN_AT
            .compare_exchange(at, now + 60, Relaxed, Relaxed)
            .is_ok()
    {
        tracing::warn!(
            total,
            "A stored chunk is damaged (checksum mismatch or undecodable); its samples are left out of query answers. Check the disk; blocks whose index or meta.json is damaged are moved aside at the next start (vigil_tsdb_chunk_corruptions_total counts these chunks)"
        );
    }
}

/// Where a chunk's bytes are.
#[derive(Clone)]
pub enum ChunkBytes {
    /// An XOR chunk in memory, shared with the head.
    Shared(Arc<[u8]>),
    /// A copy of a series' open head chunk ([`open`]).
    Open(Arc<[u8]>),
    /// A block chunk ([`dense`] encodings) framed at an offset of a memory-mapped chunks file.
    Mapped(Arc<Mmap>, usize),
    /// A closed head chunk moved to `chunks_head/` ([`disk`]).
    Disk(disk::DiskChunk),
}

impl ChunkBytes {
    /// Decodes the chunk into `out`; false when it is corrupt (a mapped chunk failing its
    /// checksum, or an undecodable stream).
    fn decode(
        &self,
        out: &mut Vec<(i64, f64)>,
        scratch: &mut Vec<u8>,
        frame: &mut Vec<u8>,
    ) -> bool {
        out.clear();
        match self {
            ChunkBytes::Shared(b) => {
                let mut it = XorIter::new(b);
                out.extend(it.by_ref());
                !it.err
            }
            ChunkBytes::Open(b) => open::decode(b, out),
            ChunkBytes::Mapped(m, off) => dense::decode_in_file(m, *off, out, scratch),
            ChunkBytes::Disk(d) => d.decode(out, scratch, frame),
        }
    }
}

/// Streams the samples of a series' chunks within `[mint, maxt]`, merging in a sorted list of
/// out-of-order samples (a sample at the same time as a chunk sample is dropped).
pub struct SampleIter {
    chunks: Vec<ChunkBytes>,
    next_chunk: usize,
    buf: Vec<(i64, f64)>,
    scratch: Vec<u8>,
    /// A chunk read back from `chunks_head/`, reused across the series' chunks.
    frame: Vec<u8>,
    pos: usize,
    ooo: Vec<(i64, f64)>,
    ooo_pos: usize,
    mint: i64,
    maxt: i64,
    /// Chunks that could not be decoded in full.
    pub corrupt_chunks: usize,
}

impl SampleIter {
    pub fn new(chunks: Vec<ChunkBytes>, ooo: Vec<(i64, f64)>, mint: i64, maxt: i64) -> Self {
        SampleIter {
            chunks,
            next_chunk: 0,
            buf: Vec::new(),
            scratch: Vec::new(),
            frame: Vec::new(),
            pos: 0,
            ooo,
            ooo_pos: 0,
            mint,
            maxt,
            corrupt_chunks: 0,
        }
    }

    /// Whether a sample is left, decoding the next chunk if needed.
    pub fn has_next(&mut self) -> bool {
        self.peek_chunked().is_some() || self.ooo_pos < self.ooo.len()
    }

    /// The next in-order sample within range, without consuming it.
    fn peek_chunked(&mut self) -> Option<(i64, f64)> {
        loop {
            if let Some(&s) = self.buf.get(self.pos) {
                if s.0 > self.maxt {
                    self.finish();
                    return None;
                }
                if s.0 >= self.mint {
                    return Some(s);
                }
                self.pos += 1;
                continue;
            }
            if !self.load_next_chunk() {
                return None;
            }
        }
    }

    /// Decodes the next chunk into `buf`; false when none is left.
    fn load_next_chunk(&mut self) -> bool {
        let Some(chunk) = self.chunks.get(self.next_chunk) else {
            return false;
        };
        self.next_chunk += 1;
        self.pos = 0;
        if !chunk.decode(&mut self.buf, &mut self.scratch, &mut self.frame) {
            self.corrupt_chunks += 1;
            note_corrupt_chunk();
        }
        true
    }

    /// Drops what is left once a sample past the range is seen: nothing later is in it.
    fn finish(&mut self) {
        self.chunks.clear();
        self.buf.clear();
        self.pos = 0;
    }
}

impl SampleIterator for SampleIter {
    /// Copies whole decoded chunks, trimmed to the range; one sample at a time only when
    /// out-of-order samples must be merged in.
    fn drain_into(&mut self, out: &mut Vec<Sample>) {
        if self.ooo_pos < self.ooo.len() {
            out.extend(self);
            return;
        }
        loop {
            let rest = self.buf.get(self.pos..).unwrap_or(&[]);
            let lo = rest.partition_point(|s| s.0 < self.mint);
            let hi = rest.partition_point(|s| s.0 <= self.maxt);
            out.extend(rest[lo..hi].iter().map(|&(t, v)| Sample { t, v }));
            if hi < rest.len() {
                self.finish();
                return;
            }
            if !self.load_next_chunk() {
                self.pos = self.buf.len();
                return;
            }
        }
    }
}

impl Iterator for SampleIter {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        let a = self.peek_chunked();
        let b = self.ooo.get(self.ooo_pos).copied();
        let (t, v) = match (a, b) {
            (Some(a), Some(b)) if b.0 < a.0 => {
                self.ooo_pos += 1;
                b
            }
            (Some(a), Some(b)) if b.0 == a.0 => {
                self.ooo_pos += 1;
                self.pos += 1;
                a
            }
            (Some(a), _) => {
                self.pos += 1;
                a
            }
            (None, Some(b)) => {
                self.ooo_pos += 1;
                b
            }
            (None, None) => return None,
        };
        Some(Sample { t, v })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunks_of(samples: &[(i64, f64)], per: usize) -> Vec<ChunkBytes> {
        samples
            .chunks(per.max(1))
            .map(|c| {
                let mut x = XorAppender::with_capacity(64);
                c.iter().for_each(|&(t, v)| x.append(t, v));
                ChunkBytes::Shared(Arc::from(x.bytes()))
            })
            .collect()
    }

    proptest! {
        /// Taking the samples in bulk gives what taking them one at a time gives, for any
        /// range and any out-of-order samples.
        #[test]
        fn drain_into_agrees_with_next(
            deltas in proptest::collection::vec(1i64..100, 0..400),
            per in 1usize..150,
            mint in -50i64..20_000,
            len in 0i64..20_000,
            ooo in proptest::collection::btree_set(-100i64..20_000, 0..5),
            skip in 0usize..5,
        ) {
            let mut t = 0;
            let samples: Vec<(i64, f64)> =
                deltas.iter().map(|d| { t += d; (t, t as f64 * 0.5) }).collect();
            let ooo: Vec<(i64, f64)> = ooo.into_iter().map(|t| (t, -1.0)).collect();
            let make = || SampleIter::new(chunks_of(&samples, per), ooo.clone(), mint, mint + len);
            let want: Vec<Sample> = make().collect();
            let mut it = make();
            let mut got: Vec<Sample> = it.by_ref().take(skip).collect();
            it.drain_into(&mut got);
            prop_assert_eq!(got, want);
        }
    }
}
