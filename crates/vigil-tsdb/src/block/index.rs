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
}

/// Encodes an index. `symbols` must be sorted and unique; series sorted by labels, with label
/// symbols given as positions in `symbols`.
pub fn encode(symbols: &[&str], series: &[IndexSeries]) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + series.len() * 32);
    b.extend_from_slice(MAGIC);
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
        put_uvarint(&mut b, s.chunks.len() as u64);
        for c in s.chunks.iter() {
            put_varint(&mut b, c.mint);
            put_uvarint(&mut b, c.maxt.wrapping_sub(c.mint) as u64);
            put_uvarint(&mut b, c.offset);
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

/// Decodes an index; the error names what is wrong.
pub fn decode(b: &[u8]) -> Result<Index, String> {
    if b.len() < MAGIC.len() + 20 || &b[..8] != MAGIC {
        return Err("bad magic or too short".into());
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err("index checksum mismatch".into());
    }
    let toc = &body[body.len() - 16..];
    let sym_off = u64::from_le_bytes(toc[..8].try_into().map_err(|_| "toc")?) as usize;
    let series_off = u64::from_le_bytes(toc[8..].try_into().map_err(|_| "toc")?) as usize;
    let data = &body[..body.len() - 16];
    let bad = |what: &str| format!("malformed {what}");
    let mut d = Dec {
        b: data.get(sym_off..).ok_or_else(|| bad("toc"))?,
    };
    let n = d.uvarint().ok_or_else(|| bad("symbols"))?;
    let symbols = Symbols::default();
    for i in 0..n {
        let s = d.str().ok_or_else(|| bad("symbols"))?;
        if symbols.intern(s) as u64 != i {
            return Err(bad("symbols (duplicate)"));
        }
    }
    let mut d = Dec {
        b: data.get(series_off..).ok_or_else(|| bad("toc"))?,
    };
    let n = d.uvarint().ok_or_else(|| bad("series"))?;
    let nsyms = symbols.reader().count() as u64;
    let mut series = Vec::with_capacity(n.min(1 << 24) as usize);
    let mut postings = Postings::default();
    for r in 0..n {
        let k = d.uvarint().ok_or_else(|| bad("series"))?;
        let mut labels = Vec::with_capacity(k.min(64) as usize);
        for _ in 0..k {
            let name = d
                .uvarint()
                .filter(|&s| s < nsyms)
                .ok_or_else(|| bad("series labels"))?;
            let value = d
                .uvarint()
                .filter(|&s| s < nsyms)
                .ok_or_else(|| bad("series labels"))?;
            labels.push((name as Sym, value as Sym));
        }
        let c = d.uvarint().ok_or_else(|| bad("series chunks"))?;
        let mut chunks = Vec::with_capacity(c.min(1 << 16) as usize);
        for _ in 0..c {
            let mint = d.varint().ok_or_else(|| bad("chunk meta"))?;
            let maxt = mint.wrapping_add(d.uvarint().ok_or_else(|| bad("chunk meta"))? as i64);
            let offset = d.uvarint().ok_or_else(|| bad("chunk meta"))?;
            chunks.push(ChunkMeta { mint, maxt, offset });
        }
        let labels: Box<[(Sym, Sym)]> = labels.into();
        postings.add(r, &labels);
        series.push(IndexSeries {
            labels,
            chunks: chunks.into(),
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
            },
            IndexSeries {
                labels: vec![(0, 3)].into(),
                chunks: vec![].into(),
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
