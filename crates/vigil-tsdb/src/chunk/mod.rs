//! Sample encodings, and the iterator that streams samples out of chunks wherever they live.
//!
//! The head keeps fresh samples in Gorilla-style XOR chunks ([`xor`]): appending is a handful
//! of bit operations with no allocation beyond the chunk's own growing buffer, and a sample
//! costs about 1.4 bytes on regular scrape data. A chunk is cut after [`SAMPLES_PER_CHUNK`]
//! samples, as Prometheus does, so that a query decodes at most one partial chunk per series
//! outside its range and a full chunk can be handed out as shared immutable bytes. Blocks store
//! the same chunks in a file framed with a length and a CRC ([`write_framed`]), read in place
//! from a memory map; [`SampleIter`] decodes either kind one chunk at a time.

pub mod dense;
pub mod xor;

use memmap2::Mmap;
use std::sync::Arc;
use vigil_model::Sample;
pub use xor::{XorAppender, XorIter};

/// Samples per head chunk before a new one is cut.
pub const SAMPLES_PER_CHUNK: u16 = 120;

/// Samples per block chunk: larger, as the compressor gains from longer columns.
pub const SAMPLES_PER_BLOCK_CHUNK: usize = 1024;

/// Appends `chunk` framed as in a block's chunks file: uvarint length, bytes, CRC-32.
pub fn write_framed(buf: &mut Vec<u8>, chunk: &[u8]) {
    crate::wal::record::put_bytes(buf, chunk);
    buf.extend_from_slice(&crc32fast::hash(chunk).to_le_bytes());
}

/// The chunk framed at `offset` of `file`, if it is intact.
pub fn read_framed(file: &[u8], offset: usize) -> Option<&[u8]> {
    let mut d = crate::wal::record::Dec {
        b: file.get(offset..)?,
    };
    let chunk = d.bytes()?;
    let crc = d.b.get(..4)?;
    (crc32fast::hash(chunk).to_le_bytes() == crc).then_some(chunk)
}

/// Where a chunk's bytes are.
#[derive(Clone)]
pub enum ChunkBytes {
    /// An XOR chunk in memory, shared with the head.
    Shared(Arc<[u8]>),
    /// A block chunk ([`dense`] encodings) framed at an offset of a memory-mapped chunks file.
    Mapped(Arc<Mmap>, usize),
}

impl ChunkBytes {
    /// Decodes the chunk into `out`; false when it is corrupt (a mapped chunk failing its
    /// checksum, or an undecodable stream).
    fn decode(&self, out: &mut Vec<(i64, f64)>, scratch: &mut Vec<u8>) -> bool {
        out.clear();
        match self {
            ChunkBytes::Shared(b) => {
                let mut it = XorIter::new(b);
                out.extend(it.by_ref());
                !it.err
            }
            ChunkBytes::Mapped(m, off) => match read_framed(m, *off) {
                Some(bytes) => dense::decode(bytes, out, scratch),
                None => false,
            },
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
            pos: 0,
            ooo,
            ooo_pos: 0,
            mint,
            maxt,
            corrupt_chunks: 0,
        }
    }

    /// The next in-order sample within range, without consuming it.
    fn peek_chunked(&mut self) -> Option<(i64, f64)> {
        loop {
            if let Some(&s) = self.buf.get(self.pos) {
                if s.0 > self.maxt {
                    self.chunks.clear();
                    self.buf.clear();
                    return None;
                }
                if s.0 >= self.mint {
                    return Some(s);
                }
                self.pos += 1;
                continue;
            }
            let chunk = self.chunks.get(self.next_chunk)?;
            self.next_chunk += 1;
            self.pos = 0;
            if !chunk.decode(&mut self.buf, &mut self.scratch) {
                self.corrupt_chunks += 1;
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
