//! The block index file (`docs/format/block.md`): symbols, series with chunk references, and a
//! CRC-checked table of contents.
//!
//! The index is decoded whole at open into the same structures the head uses (interned
//! symbols, a `Postings` index), so matcher fast paths and intersection are written once
//! for both. Decoding is total: any inconsistency is an error, never a panic.

use crate::encoding::{Dec, put_bytes, put_uvarint, put_varint};
use crate::head::postings::Postings;
use crate::head::symbols::{Sym, Symbols};

pub const MAGIC: &[u8; 8] = b"VGIDX001";
/// An index whose series also list histogram chunks (a block with native histograms).
pub const MAGIC_HIST: &[u8; 8] = b"VGIDX002";

/// Where one chunk of a series is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    pub mint: i64,
    pub maxt: i64,
    /// Offset of the framed chunk in the chunks file.
    pub offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSeries {
    pub labels: Box<[(Sym, Sym)]>,
    pub chunks: Box<[ChunkMeta]>,
    /// Histogram chunks (none in a `VGIDX001` index).
    pub hchunks: Box<[ChunkMeta]>,
}

fn put_chunks(b: &mut Vec<u8>, chunks: &[ChunkMeta]) {
    put_uvarint(b, chunks.len() as u64);
    for c in chunks {
        put_varint(b, c.mint);
        put_uvarint(b, c.maxt.wrapping_sub(c.mint) as u64);
        put_uvarint(b, c.offset);
    }
}

fn get_chunks(d: &mut Dec<'_>) -> Result<Box<[ChunkMeta]>, String> {
    let bad = || "malformed chunk meta".to_string();
    let c = d.uvarint().ok_or_else(bad)?;
    let mut chunks = Vec::with_capacity(c.min(1 << 16) as usize);
    for _ in 0..c {
        let mint = d.varint().ok_or_else(bad)?;
        let maxt = mint.wrapping_add(d.uvarint().ok_or_else(bad)? as i64);
        let offset = d.uvarint().ok_or_else(bad)?;
        chunks.push(ChunkMeta { mint, maxt, offset });
    }
    Ok(chunks.into())
}

/// Encodes an index. `symbols` must be sorted and unique; series sorted by labels, with label
/// symbols given as positions in `symbols`.
pub fn encode(symbols: &[&str], series: &[IndexSeries]) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + series.len() * 32);
    // Only a block with histograms gets the new magic: the others stay readable by a vigil
    // that predates histograms.
    let hist = series.iter().any(|s| !s.hchunks.is_empty());
    b.extend_from_slice(if hist { MAGIC_HIST } else { MAGIC });
    let sym_off = b.len() as u64;
    put_uvarint(&mut b, symbols.len() as u64);
    for s in symbols {
        put_bytes(&mut b, s.as_bytes());
    }
    let series_off = b.len() as u64;
    put_uvarint(&mut b, series.len() as u64);
    for s in series {
        put_uvarint(&mut b, s.labels.len() as u64);
        for &(n, v) in s.labels.iter() {
            put_uvarint(&mut b, n as u64);
            put_uvarint(&mut b, v as u64);
        }
        put_chunks(&mut b, &s.chunks);
        if hist {
            put_chunks(&mut b, &s.hchunks);
        }
    }
    b.extend_from_slice(&sym_off.to_le_bytes());
    b.extend_from_slice(&series_off.to_le_bytes());
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// A decoded index.
pub struct Index {
    pub symbols: Symbols,
    pub series: Vec<IndexSeries>,
    pub postings: Postings,
}

/// Why an index did not decode, and the byte of the file where that was found: where a
/// malformed structure starts, or for a checksum mismatch the checksum's own offset (a
/// whole-file CRC cannot say which byte changed). The operator's log line names both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexError {
    pub offset: u64,
    pub reason: String,
}

impl std::fmt::Display for IndexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

fn err(offset: usize, reason: impl Into<String>) -> IndexError {
    IndexError {
        offset: offset as u64,
        reason: reason.into(),
    }
}

/// Decodes an index; the error names what is wrong and where.
pub fn decode(b: &[u8]) -> Result<Index, IndexError> {
    if b.len() < MAGIC.len() + 20 || (&b[..8] != MAGIC && &b[..8] != MAGIC_HIST) {
        return Err(err(0, "bad magic or too short"));
    }
    let hist = &b[..8] == MAGIC_HIST;
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(err(body.len(), "index checksum mismatch"));
    }
    let toc_at = body.len() - 16;
    let toc = &body[toc_at..];
    let word = |i: usize| {
        toc[i..i + 8]
            .try_into()
            .map(u64::from_le_bytes)
            .map_err(|_| err(toc_at + i, "malformed toc"))
    };
    let sym_off = word(0)? as usize;
    let series_off = word(8)? as usize;
    let data = &body[..toc_at];
    // The offset in the file of what `d` reads next.
    let at = |d: &Dec<'_>| data.len() - d.b.len();
    let bad = |d: &Dec<'_>, what: &str| err(at(d), format!("malformed {what}"));
    let mut d = Dec {
        b: data
            .get(sym_off..)
            .ok_or_else(|| err(toc_at, "malformed toc"))?,
    };
    let n = d.uvarint().ok_or_else(|| bad(&d, "symbols"))?;
    let symbols = Symbols::default();
    for i in 0..n {
        let start = at(&d);
        let s = d.str().ok_or_else(|| bad(&d, "symbols"))?;
        if symbols.intern(s) as u64 != i {
            return Err(err(start, "malformed symbols (duplicate)"));
        }
    }
    let mut d = Dec {
        b: data
            .get(series_off..)
            .ok_or_else(|| err(toc_at + 8, "malformed toc"))?,
    };
    let n = d.uvarint().ok_or_else(|| bad(&d, "series"))?;
    let nsyms = symbols.reader().count() as u64;
    let mut series = Vec::with_capacity(n.min(1 << 24) as usize);
    let mut postings = Postings::default();
    for r in 0..n {
        let k = d.uvarint().ok_or_else(|| bad(&d, "series"))?;
        let mut labels = Vec::with_capacity(k.min(64) as usize);
        for _ in 0..k {
            let start = at(&d);
            let name = d
                .uvarint()
                .filter(|&s| s < nsyms)
                .ok_or_else(|| err(start, "malformed series labels"))?;
            let start = at(&d);
            let value = d
                .uvarint()
                .filter(|&s| s < nsyms)
                .ok_or_else(|| err(start, "malformed series labels"))?;
            labels.push((name as Sym, value as Sym));
        }
        let start = at(&d);
        let chunks = get_chunks(&mut d).map_err(|e| err(start, e))?;
        let hchunks = if hist {
            let start = at(&d);
            get_chunks(&mut d).map_err(|e| err(start, e))?
        } else {
            Box::default()
        };
        let labels: Box<[(Sym, Sym)]> = labels.into();
        postings.add(r, &labels);
        series.push(IndexSeries {
            labels,
            chunks,
            hchunks,
        });
    }
    Ok(Index {
        symbols,
        series,
        postings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        let syms = ["__name__", "a", "job", "up"];
        let series = vec![
            IndexSeries {
                labels: vec![(0, 3), (2, 1)].into(),
                chunks: vec![ChunkMeta {
                    mint: -5,
                    maxt: 100,
                    offset: 8,
                }]
                .into(),
                hchunks: Box::default(),
            },
            IndexSeries {
                labels: vec![(0, 3)].into(),
                chunks: vec![].into(),
                hchunks: Box::default(),
            },
        ];
        encode(&syms, &series)
    }

    #[test]
    fn round_trips() {
        let ix = decode(&sample()).unwrap();
        assert_eq!(ix.series.len(), 2);
        assert_eq!(ix.series[0].chunks[0].mint, -5);
        assert_eq!(ix.series[0].chunks[0].maxt, 100);
        assert_eq!(ix.symbols.reader().get(3), "up");
    }

    #[test]
    fn histogram_chunk_lists_round_trip() {
        let syms = ["__name__", "h"];
        let c = |mint, offset| ChunkMeta {
            mint,
            maxt: mint + 10,
            offset,
        };
        let series = vec![IndexSeries {
            labels: vec![(0, 1)].into(),
            chunks: vec![c(1, 8)].into(),
            hchunks: vec![c(20, 30), c(40, 50)].into(),
        }];
        let b = encode(&syms, &series);
        assert_eq!(&b[..8], MAGIC_HIST);
        let ix = decode(&b).unwrap();
        assert_eq!(ix.series, series);
        // Without histograms, the old format byte for byte.
        assert_eq!(&sample()[..8], MAGIC);
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let b = sample();
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert!(decode(&c).is_err(), "flip at {i}");
        }
        for cut in 0..b.len() {
            assert!(decode(&b[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn errors_say_at_which_byte() {
        let b = sample();
        let mut c = b.clone();
        c[20] ^= 0x10;
        let e = decode(&c).err().unwrap();
        assert_eq!(e.reason, "index checksum mismatch");
        assert_eq!(e.offset, b.len() as u64 - 4);
        // A structure that is malformed under a valid checksum: the series count is the
        // first byte after the symbols; make it claim one more series than there is.
        let series_off = u64::from_le_bytes(b[b.len() - 12..b.len() - 4].try_into().unwrap());
        let mut c = b[..b.len() - 4].to_vec();
        c[series_off as usize] += 1;
        let crc = crc32fast::hash(&c);
        c.extend_from_slice(&crc.to_le_bytes());
        let e = decode(&c).err().unwrap();
        assert_eq!(e.reason, "malformed series");
        // It ran out at the end of the series table, where the table of contents starts.
        assert_eq!(e.offset, b.len() as u64 - 20);
    }

    proptest! {
        /// The block index reader is total on arbitrary input (and on arbitrary bodies with a
        /// valid checksum, which skips the early CRC exit).
        #[test]
        fn garbage_never_panics(mut body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode(&body);
            let mut b = MAGIC.to_vec();
            b.append(&mut body);
            b.extend_from_slice(&0u64.to_le_bytes());
            b.extend_from_slice(&8u64.to_le_bytes());
            let crc = crc32fast::hash(&b);
            b.extend_from_slice(&crc.to_le_bytes());
            let _ = decode(&b);
        }
    }
}
