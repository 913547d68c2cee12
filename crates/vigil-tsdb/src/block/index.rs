//! The block index file (`docs/format/block.md`): symbols, series with chunk references,
//! postings, and a CRC-checked table of contents.
//!
//! A `VGIDX003` index is read in place: [`open`] checks the file's CRC with ordinary reads (so
//! the pages do not count in the process' RSS), then memory-maps it, and every lookup reads
//! the few bytes it needs from the map. Fixed-width tables make that cheap: a symbol by id in
//! O(1), a string's id by binary search (symbols are sorted), a series' entry by its position,
//! a label pair's postings by binary search in a table sorted by (name, value). Nothing is
//! decoded at open beyond the table of contents, so an open block costs a few hundred bytes
//! of heap whatever its size, and queries page in only what they touch (the kernel, not our
//! heap, caches it).
//!
//! An older index (`VGIDX001`, `VGIDX002`: symbols and series as varints, postings rebuilt at
//! open) is decoded and re-encoded as `VGIDX003` bytes held in memory, so there is one reader.
//!
//! Decoding is total: a corrupt table of contents is an error at open; an entry that does not
//! decode later (only possible under a valid CRC, i.e. a bug) gives an empty result (no
//! series, an empty string, an empty list), never a panic or a read out of bounds.

use crate::encoding::{Dec, put_uvarint, put_varint};
use crate::error::{TsdbError, io_err};
use crate::head::symbols::Sym;
use crate::reader::{PostingsIndex, SymbolLookup};
use memmap2::Mmap;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use vigil_model::SeriesRef;

/// Float chunks only (read, no longer written).
pub const MAGIC: &[u8; 8] = b"VGIDX001";
/// Series also list histogram chunks (read, no longer written).
pub const MAGIC_HIST: &[u8; 8] = b"VGIDX002";
/// Read in place from a memory map: fixed-width tables and postings on disk.
pub const MAGIC_V3: &[u8; 8] = b"VGIDX003";

/// Table of contents: six u64 LE words.
const TOC_LEN: usize = 48;
/// A postings table entry: name u32, value u32, offset u64, count u32 (LE).
const POSTING_ENTRY: usize = 20;
/// Magic, table of contents, CRC.
const MIN_V3_LEN: usize = 8 + TOC_LEN + 4;

/// Where one chunk of a series is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    pub mint: i64,
    pub maxt: i64,
    /// Offset of the framed chunk in the chunks file.
    pub offset: u64,
}

/// One series' entry.
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

/// Encodes a `VGIDX003` index. `symbols` must be sorted (by bytes) and unique; series sorted
/// by labels, at most `u32::MAX` of them, with label symbols given as positions in
/// `symbols`, each label name at most once in a series.
pub fn encode(symbols: &[&str], series: &[IndexSeries]) -> Vec<u8> {
    let sym_bytes: usize = symbols.iter().map(|s| s.len()).sum();
    let mut b = Vec::with_capacity(64 + sym_bytes + symbols.len() * 8 + series.len() * 48);
    b.extend_from_slice(MAGIC_V3);
    // Symbols: the strings back to back, then n + 1 offsets (string i is [off i, off i+1)).
    let mut offs = Vec::with_capacity(symbols.len() + 1);
    for s in symbols {
        offs.push(b.len() as u64);
        b.extend_from_slice(s.as_bytes());
    }
    offs.push(b.len() as u64);
    let symtab = b.len() as u64;
    for o in &offs {
        b.extend_from_slice(&o.to_le_bytes());
    }
    // Series entries, then one offset per series.
    offs.clear();
    for s in series {
        offs.push(b.len() as u64);
        put_uvarint(&mut b, s.labels.len() as u64);
        for &(n, v) in s.labels.iter() {
            put_uvarint(&mut b, n as u64);
            put_uvarint(&mut b, v as u64);
        }
        put_chunks(&mut b, &s.chunks);
        put_chunks(&mut b, &s.hchunks);
    }
    let seriestab = b.len() as u64;
    for o in &offs {
        b.extend_from_slice(&o.to_le_bytes());
    }
    drop(offs);
    // Postings, one label name at a time (what is held besides the output is one (value,
    // position) pair per series having that name): each pair's positions, then the table.
    let names: BTreeSet<Sym> = series
        .iter()
        .flat_map(|s| s.labels.iter().map(|&(n, _)| n))
        .collect();
    let mut table: Vec<(Sym, Sym, u64, u32)> = Vec::new();
    let mut pairs: Vec<(Sym, u32)> = Vec::new();
    for n in names {
        pairs.clear();
        pairs.extend(series.iter().enumerate().filter_map(|(i, s)| {
            let &(_, v) = s.labels.iter().find(|&&(m, _)| m == n)?;
            Some((v, i as u32))
        }));
        pairs.sort_unstable();
        for group in pairs.chunk_by(|x, y| x.0 == y.0) {
            table.push((n, group[0].0, b.len() as u64, group.len() as u32));
            for &(_, i) in group {
                b.extend_from_slice(&i.to_le_bytes());
            }
        }
    }
    let posttab = b.len() as u64;
    for &(n, v, off, count) in &table {
        b.extend_from_slice(&n.to_le_bytes());
        b.extend_from_slice(&v.to_le_bytes());
        b.extend_from_slice(&off.to_le_bytes());
        b.extend_from_slice(&count.to_le_bytes());
    }
    for w in [
        symbols.len() as u64,
        symtab,
        series.len() as u64,
        seriestab,
        table.len() as u64,
        posttab,
    ] {
        b.extend_from_slice(&w.to_le_bytes());
    }
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
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

/// The bytes of an index: its file mapped read-only, or an index held in memory (an older
/// format re-encoded, or bytes given to [`decode`]).
pub enum IndexBytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for IndexBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            IndexBytes::Mapped(m) => &m[..],
            IndexBytes::Owned(v) => &v[..],
        }
    }
}

/// A `VGIDX003` index, read on demand. Every offset, length and symbol id read from the
/// bytes is checked before use.
pub struct BlockIndex {
    b: IndexBytes,
    nsyms: usize,
    symtab: usize,
    nseries: usize,
    seriestab: usize,
    npost: usize,
    posttab: usize,
}

fn check_crc(b: &[u8]) -> Result<(), IndexError> {
    if b.len() < 12 {
        return Err(err(0, "bad magic or too short"));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(err(body.len(), "index checksum mismatch"));
    }
    Ok(())
}

/// Decodes an index held in memory (any version; an older one is re-encoded). The checksum
/// is checked first.
pub fn decode(b: &[u8]) -> Result<BlockIndex, IndexError> {
    if b.get(..8) == Some(MAGIC_V3.as_slice()) {
        check_crc(b)?;
        return BlockIndex::parse(IndexBytes::Owned(b.to_vec()));
    }
    let (symbols, series) = decode_v2(b)?;
    let symbols: Vec<&str> = symbols.iter().map(String::as_str).collect();
    BlockIndex::parse(IndexBytes::Owned(encode(&symbols, &series)))
}

/// Opens the index file at `path`. A `VGIDX003` file is checked against its CRC with ordinary
/// reads, a piece at a time (through the map, every page would become resident in the
/// process), then memory-mapped; an older one is read, decoded and re-encoded in memory.
pub fn open(path: &Path) -> Result<BlockIndex, TsdbError> {
    let corrupt = |e: IndexError| TsdbError::Corrupt {
        path: path.to_path_buf(),
        offset: e.offset,
        reason: e.reason,
    };
    let mut f = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let len = f.metadata().map_err(|e| io_err(path, e))?.len();
    let mut magic = [0u8; 8];
    if len < MIN_V3_LEN as u64 || f.read_exact(&mut magic).is_err() || &magic != MAGIC_V3 {
        drop(f);
        let raw = std::fs::read(path).map_err(|e| io_err(path, e))?;
        return decode(&raw).map_err(corrupt);
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&magic);
    let mut buf = vec![0u8; 64 << 10];
    let mut left = len - 8 - 4;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        f.read_exact(&mut buf[..n]).map_err(|e| io_err(path, e))?;
        crc.update(&buf[..n]);
        left -= n as u64;
    }
    let mut want = [0u8; 4];
    f.read_exact(&mut want).map_err(|e| io_err(path, e))?;
    if crc.finalize().to_le_bytes() != want {
        return Err(corrupt(err(len as usize - 4, "index checksum mismatch")));
    }
    drop((f, buf));
    let map = super::map(path)?;
    if map.len() as u64 != len {
        return Err(corrupt(err(0, "index file changed size while opening")));
    }
    BlockIndex::parse(IndexBytes::Mapped(map)).map_err(corrupt)
}

impl BlockIndex {
    /// Reads and checks the table of contents of `VGIDX003` bytes whose CRC was checked.
    fn parse(b: IndexBytes) -> Result<BlockIndex, IndexError> {
        if b.len() < MIN_V3_LEN || b.get(..8) != Some(MAGIC_V3.as_slice()) {
            return Err(err(0, "bad magic or too short"));
        }
        let toc_at = b.len() - 4 - TOC_LEN;
        let word = |i: usize| {
            b.get(toc_at + 8 * i..toc_at + 8 * i + 8)
                .and_then(|w| w.try_into().ok())
                .map_or(u64::MAX, u64::from_le_bytes)
        };
        // A table of `count` entries of `width` bytes at the offset in toc word `at`, inside
        // the data (after the magic, before the toc).
        let table = |count: u64, at: usize, width: u64| -> Result<(usize, usize), IndexError> {
            let off = word(at);
            let bad = || err(toc_at + 8 * at, "malformed toc");
            let end = count
                .checked_mul(width)
                .and_then(|n| n.checked_add(off))
                .ok_or_else(bad)?;
            if off < 8 || end > toc_at as u64 {
                return Err(bad());
            }
            Ok((usize::try_from(count).map_err(|_| bad())?, off as usize))
        };
        let n = word(0);
        if n > 1 << 32 {
            return Err(err(toc_at, "malformed toc"));
        }
        let (_, symtab) = table(n + 1, 1, 8)?;
        let n = word(2);
        if n > 1 << 32 {
            return Err(err(toc_at + 16, "malformed toc"));
        }
        let (nseries, seriestab) = table(n, 3, 8)?;
        let (npost, posttab) = table(word(4), 5, POSTING_ENTRY as u64)?;
        let nsyms = word(0) as usize;
        Ok(BlockIndex {
            nsyms,
            symtab,
            nseries,
            seriestab,
            npost,
            posttab,
            b,
        })
    }

    fn u64_at(&self, at: usize) -> Option<u64> {
        let w = self.b.get(at..at.checked_add(8)?)?;
        Some(u64::from_le_bytes(w.try_into().ok()?))
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let w = self.b.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes(w.try_into().ok()?))
    }

    /// `[start, end)` from two offsets read from the file, if they are inside `[8, limit]`.
    fn span(&self, start: Option<u64>, end: Option<u64>, limit: usize) -> Option<(usize, usize)> {
        let start = usize::try_from(start?).ok()?;
        let end = usize::try_from(end?).ok()?;
        (8 <= start && start <= end && end <= limit).then_some((start, end))
    }

    pub fn num_symbols(&self) -> usize {
        self.nsyms
    }

    pub fn num_series(&self) -> usize {
        self.nseries
    }

    fn symbol_bytes(&self, id: usize) -> Option<&[u8]> {
        if id >= self.nsyms {
            return None;
        }
        let at = self.symtab + 8 * id;
        let (s, e) = self.span(self.u64_at(at), self.u64_at(at + 8), self.symtab)?;
        self.b.get(s..e)
    }

    /// The string of symbol `id`.
    pub fn symbol(&self, id: Sym) -> Option<&str> {
        std::str::from_utf8(self.symbol_bytes(id as usize)?).ok()
    }

    /// The id of `s` (binary search: symbols are sorted by bytes).
    pub fn symbol_id(&self, s: &str) -> Option<Sym> {
        let (mut lo, mut hi) = (0, self.nsyms);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.symbol_bytes(mid)?.cmp(s.as_bytes()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Sym::try_from(mid).ok(),
            }
        }
        None
    }

    /// The entry of the series at position `i`, `None` past the end or when it does not
    /// decode (an offset out of place, a symbol id past the symbols, trailing bytes).
    pub fn series(&self, i: usize) -> Option<IndexSeries> {
        if i >= self.nseries {
            return None;
        }
        let at = self.seriestab + 8 * i;
        let end = if i + 1 < self.nseries {
            self.u64_at(at + 8)
        } else {
            Some(self.seriestab as u64)
        };
        let (s, e) = self.span(self.u64_at(at), end, self.seriestab)?;
        let mut d = Dec {
            b: self.b.get(s..e)?,
        };
        let k = d.uvarint()?;
        let mut labels = Vec::with_capacity(k.min(64) as usize);
        let sym = |d: &mut Dec<'_>| {
            d.uvarint()
                .filter(|&s| s < self.nsyms as u64)
                .map(|s| s as Sym)
        };
        for _ in 0..k {
            labels.push((sym(&mut d)?, sym(&mut d)?));
        }
        let chunks = get_chunks(&mut d).ok()?;
        let hchunks = get_chunks(&mut d).ok()?;
        d.is_empty().then(|| IndexSeries {
            labels: labels.into(),
            chunks,
            hchunks,
        })
    }

    /// The (name, value) of postings table entry `i` (`i < npost`, inside the table).
    fn key(&self, i: usize) -> (Sym, Sym) {
        let at = self.posttab + POSTING_ENTRY * i;
        match (self.u32_at(at), self.u32_at(at + 4)) {
            (Some(n), Some(v)) => (n, v),
            _ => (Sym::MAX, Sym::MAX),
        }
    }

    /// The first entry in `[lo, hi)` whose key fails `pred` (a prefix of them passes it).
    fn partition_point(
        &self,
        mut lo: usize,
        mut hi: usize,
        pred: impl Fn((Sym, Sym)) -> bool,
    ) -> usize {
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(self.key(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The entries of label `name`: a contiguous range of the table.
    fn name_range(&self, name: Sym) -> (usize, usize) {
        let lo = self.partition_point(0, self.npost, |(n, _)| n < name);
        (lo, self.partition_point(lo, self.npost, |(n, _)| n <= name))
    }

    /// Appends the series positions of postings table entry `i` to `out`.
    fn extend_list(&self, i: usize, out: &mut Vec<SeriesRef>) {
        let at = self.posttab + POSTING_ENTRY * i;
        let (Some(off), Some(count)) = (self.u64_at(at + 8), self.u32_at(at + 16)) else {
            return;
        };
        let end = off.checked_add(4 * count as u64);
        let Some((s, e)) = self.span(Some(off), end, self.posttab) else {
            return;
        };
        if let Some(list) = self.b.get(s..e) {
            out.extend(
                list.chunks_exact(4)
                    .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as SeriesRef),
            );
        }
    }

    fn is_symbol(&self, s: Sym) -> bool {
        (s as usize) < self.nsyms
    }

    /// The distinct label names, sorted.
    pub fn label_names(&self) -> Vec<Sym> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.npost {
            let (n, _) = self.key(i);
            if self.is_symbol(n) {
                out.push(n);
            }
            // Jump past the name's values (at least one entry: always progresses).
            i = self.partition_point(i + 1, self.npost, |(m, _)| m <= n);
        }
        out
    }

    /// The values of label `name`, sorted.
    pub fn label_values(&self, name: Sym) -> Vec<Sym> {
        let (lo, hi) = self.name_range(name);
        (lo..hi)
            .map(|i| self.key(i).1)
            .filter(|&v| self.is_symbol(v))
            .collect()
    }

    /// The sorted positions of the series with label `name` = `value`.
    pub fn postings_list(&self, name: Sym, value: Sym) -> Vec<SeriesRef> {
        let i = self.partition_point(0, self.npost, |k| k < (name, value));
        let mut out = Vec::new();
        if i < self.npost && self.key(i) == (name, value) {
            self.extend_list(i, &mut out);
        }
        out
    }
}

impl SymbolLookup for BlockIndex {
    fn get(&self, id: Sym) -> &str {
        self.symbol(id).unwrap_or("")
    }

    fn lookup(&self, s: &str) -> Option<Sym> {
        self.symbol_id(s)
    }
}

impl PostingsIndex for BlockIndex {
    fn names(&self) -> Vec<Sym> {
        self.label_names()
    }

    fn values(&self, name: Sym) -> Vec<Sym> {
        self.label_values(name)
    }

    fn postings(&self, name: Sym, value: Sym) -> Cow<'_, [SeriesRef]> {
        Cow::Owned(self.postings_list(name, value))
    }

    /// Series are stored sorted by labels; their positions are the refs.
    fn all(&self) -> Cow<'_, [SeriesRef]> {
        Cow::Owned((0..self.nseries as SeriesRef).collect())
    }

    fn postings_where(
        &self,
        name: Sym,
        keep: &mut dyn FnMut(Sym) -> bool,
        out: &mut Vec<SeriesRef>,
    ) {
        let (lo, hi) = self.name_range(name);
        for i in lo..hi {
            if keep(self.key(i).1) {
                self.extend_list(i, out);
            }
        }
    }
}

/// Encodes an index in the old `VGIDX001`/`VGIDX002` format (`VGIDX002` when any series has
/// histogram chunks), as vigil wrote it before `VGIDX003`: for tests of the old-format path.
#[cfg(test)]
pub(crate) fn encode_v2(symbols: &[&str], series: &[IndexSeries]) -> Vec<u8> {
    use crate::encoding::put_bytes;
    let mut b = Vec::with_capacity(64 + series.len() * 32);
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

/// Decodes a `VGIDX001`/`VGIDX002` index whole into its symbols and series. The symbols come
/// back sorted (an index whose symbols were not is remapped), as `VGIDX003` needs.
fn decode_v2(b: &[u8]) -> Result<(Vec<String>, Vec<IndexSeries>), IndexError> {
    if b.len() < MAGIC.len() + 20 || (&b[..8] != MAGIC && &b[..8] != MAGIC_HIST) {
        return Err(err(0, "bad magic or too short"));
    }
    let hist = &b[..8] == MAGIC_HIST;
    check_crc(b)?;
    let body = &b[..b.len() - 4];
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
    let mut symbols: Vec<String> = Vec::with_capacity(n.min(1 << 20) as usize);
    let mut seen: ahash::AHashSet<&str> = ahash::AHashSet::new();
    for _ in 0..n {
        let start = at(&d);
        let s = d.str().ok_or_else(|| bad(&d, "symbols"))?;
        if !seen.insert(s) {
            return Err(err(start, "malformed symbols (duplicate)"));
        }
        symbols.push(s.to_string());
    }
    drop(seen);
    let mut d = Dec {
        b: data
            .get(series_off..)
            .ok_or_else(|| err(toc_at + 8, "malformed toc"))?,
    };
    let n = d.uvarint().ok_or_else(|| bad(&d, "series"))?;
    let nsyms = symbols.len() as u64;
    let mut series = Vec::with_capacity(n.min(1 << 24) as usize);
    for _ in 0..n {
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
        series.push(IndexSeries {
            labels: labels.into(),
            chunks,
            hchunks,
        });
    }
    if !symbols.is_sorted() {
        // vigil always wrote them sorted; lookups in VGIDX003 rely on it.
        let mut order: Vec<usize> = (0..symbols.len()).collect();
        order.sort_by(|&a, &b| symbols[a].cmp(&symbols[b]));
        let mut new_id = vec![0 as Sym; symbols.len()];
        for (new, &old) in order.iter().enumerate() {
            new_id[old] = new as Sym;
        }
        for s in &mut series {
            for l in s.labels.iter_mut() {
                *l = (new_id[l.0 as usize], new_id[l.1 as usize]);
            }
        }
        let mut old: Vec<Option<String>> = symbols.into_iter().map(Some).collect();
        symbols = order
            .iter()
            .map(|&o| old[o].take().unwrap_or_default())
            .collect();
    }
    Ok((symbols, series))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::postings::{Postings, select};
    use crate::head::symbols::Symbols;
    use proptest::prelude::*;
    use vigil_model::{Labels, Matcher};

    const SYMS: [&str; 4] = ["__name__", "a", "job", "up"];

    fn sample_series() -> Vec<IndexSeries> {
        vec![
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
        ]
    }

    fn sample() -> Vec<u8> {
        encode(&SYMS, &sample_series())
    }

    /// Symbols, series, and (name, value, list) of every postings list.
    type Dump = (
        Vec<String>,
        Vec<IndexSeries>,
        Vec<(Sym, Sym, Vec<SeriesRef>)>,
    );

    /// Every symbol and series of an index, and every postings list, read back.
    fn dump(ix: &BlockIndex) -> Dump {
        let syms = (0..ix.num_symbols() as Sym)
            .map(|i| ix.symbol(i).unwrap_or("").to_string())
            .collect();
        let series = (0..ix.num_series()).filter_map(|i| ix.series(i)).collect();
        let mut post = Vec::new();
        for n in ix.label_names() {
            for v in ix.label_values(n) {
                post.push((n, v, ix.postings_list(n, v)));
            }
        }
        (syms, series, post)
    }

    #[test]
    fn round_trips() {
        let b = sample();
        assert_eq!(&b[..8], MAGIC_V3);
        let ix = decode(&b).unwrap();
        let (syms, series, post) = dump(&ix);
        assert_eq!(syms, SYMS);
        assert_eq!(series, sample_series());
        assert_eq!(post, [(0, 3, vec![0, 1]), (2, 1, vec![0])]);
        assert_eq!(ix.symbol_id("job"), Some(2));
        assert_eq!(ix.symbol_id("jo"), None);
        assert_eq!(ix.symbol_id("zz"), None);
        assert_eq!(ix.symbol_id(""), None);
        assert_eq!(ix.postings_list(0, 1), Vec::<SeriesRef>::new());
        assert_eq!(ix.postings_list(9, 9), Vec::<SeriesRef>::new());
        assert_eq!(ix.label_values(1), Vec::<Sym>::new());
        assert!(ix.series(2).is_none());
        assert!(ix.symbol(4).is_none());
        assert_eq!(PostingsIndex::all(&ix).into_owned(), [0, 1]);
        // An empty index.
        let ix = decode(&encode(&[], &[])).unwrap();
        assert_eq!((ix.num_symbols(), ix.num_series()), (0, 0));
        assert!(ix.label_names().is_empty() && ix.symbol_id("a").is_none());
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
        let ix = decode(&encode(&syms, &series)).unwrap();
        assert_eq!(ix.series(0).unwrap(), series[0]);
        // The old formats decode to the same index.
        let b = encode_v2(&syms, &series);
        assert_eq!(&b[..8], MAGIC_HIST);
        assert_eq!(dump(&decode(&b).unwrap()), dump(&ix));
        let b = encode_v2(&SYMS, &sample_series());
        assert_eq!(&b[..8], MAGIC);
        assert_eq!(
            dump(&decode(&b).unwrap()),
            dump(&decode(&sample()).unwrap())
        );
    }

    #[test]
    fn old_index_with_unsorted_symbols_is_remapped() {
        let syms = ["up", "job", "__name__", "a"];
        let series = vec![IndexSeries {
            labels: vec![(2, 0), (1, 3)].into(),
            chunks: vec![].into(),
            hchunks: Box::default(),
        }];
        let ix = decode(&encode_v2(&syms, &series)).unwrap();
        let (syms, series, _) = dump(&ix);
        assert_eq!(syms, SYMS);
        assert_eq!(&*series[0].labels, [(0, 3), (2, 1)]);
        assert_eq!(ix.symbol_id("up"), Some(3));
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        for b in [sample(), encode_v2(&SYMS, &sample_series())] {
            for i in 0..b.len() {
                let mut c = b.clone();
                c[i] ^= 0x10;
                assert!(decode(&c).is_err(), "flip at {i}");
            }
            for cut in 0..b.len() {
                assert!(decode(&b[..cut]).is_err(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn open_checks_the_file_in_pieces_and_maps_it() {
        let dir = std::env::temp_dir().join(format!("vigil-index-open-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("index");
        // Larger than one read piece.
        let names: Vec<String> = (0..30_000).map(|i| format!("v{i:06}")).collect();
        let mut syms: Vec<&str> = names.iter().map(String::as_str).collect();
        syms.insert(0, "__name__");
        let series: Vec<IndexSeries> = (1..syms.len() as Sym)
            .map(|v| IndexSeries {
                labels: vec![(0, v)].into(),
                chunks: vec![].into(),
                hchunks: Box::default(),
            })
            .collect();
        let b = encode(&syms, &series);
        assert!(b.len() > 3 * (64 << 10));
        std::fs::write(&p, &b).unwrap();
        let ix = open(&p).unwrap();
        assert!(matches!(ix.b, IndexBytes::Mapped(_)));
        assert_eq!(ix.symbol_id("v012345"), Some(12346));
        assert_eq!(ix.postings_list(0, 12346), [12345]);
        for at in [0, 9, 70_000, b.len() / 2, b.len() - 60, b.len() - 1] {
            let mut c = b.clone();
            c[at] ^= 1;
            std::fs::write(&p, &c).unwrap();
            let e = open(&p).err().unwrap().to_string();
            assert!(
                e.contains("index checksum mismatch") || e.contains("bad magic"),
                "{e}"
            );
        }
        // An old-format file is held in memory, re-encoded.
        std::fs::write(&p, encode_v2(&SYMS, &sample_series())).unwrap();
        let ix = open(&p).unwrap();
        assert!(matches!(ix.b, IndexBytes::Owned(_)));
        assert_eq!(dump(&ix), dump(&decode(&sample()).unwrap()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Replaces the CRC of `b` with a valid one.
    fn fix_crc(b: &mut [u8]) {
        let n = b.len() - 4;
        let crc = crc32fast::hash(&b[..n]);
        b[n..].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn errors_say_at_which_byte() {
        let b = sample();
        let mut c = b.clone();
        c[20] ^= 0x10;
        let e = decode(&c).err().unwrap();
        assert_eq!(e.reason, "index checksum mismatch");
        assert_eq!(e.offset, b.len() as u64 - 4);
        // A structure that is malformed under a valid checksum: the toc claims one more
        // series than the series table holds (it would run into the postings).
        let toc = b.len() - 4 - TOC_LEN;
        let mut c = b.clone();
        c[toc + 16] = 200;
        fix_crc(&mut c);
        let e = decode(&c).err().unwrap();
        assert_eq!(e.reason, "malformed toc");
        // The word that points at the series table.
        assert_eq!(e.offset, (toc + 24) as u64);
        // The old format still says where.
        let b = encode_v2(&SYMS, &sample_series());
        let series_off = u64::from_le_bytes(b[b.len() - 12..b.len() - 4].try_into().unwrap());
        let mut c = b.clone();
        c[series_off as usize] += 1;
        fix_crc(&mut c);
        let e = decode(&c).err().unwrap();
        assert_eq!(e.reason, "malformed series");
        assert_eq!(e.offset, b.len() as u64 - 20);
    }

    #[test]
    fn entries_that_do_not_decode_read_as_nothing() {
        let b = sample();
        // Under a valid CRC: a series whose label points past the symbols, a symbol offset
        // past its table, a postings list offset past the lists.
        let ix = decode(&b).unwrap();
        let at_series = ix.u64_at(ix.seriestab).unwrap() as usize;
        let mut c = b.clone();
        c[at_series + 1] = 100; // the first label's name symbol
        fix_crc(&mut c);
        let bad = decode(&c).unwrap();
        assert!(bad.series(0).is_none());
        assert!(bad.series(1).is_some());
        let mut c = b.clone();
        c[ix.symtab + 8 * 2..ix.symtab + 8 * 3].copy_from_slice(&u64::MAX.to_le_bytes());
        fix_crc(&mut c);
        let bad = decode(&c).unwrap();
        assert_eq!(bad.symbol(1), None);
        assert_eq!(bad.symbol(2), None);
        assert_eq!(SymbolLookup::get(&bad, 2), "");
        assert_eq!(bad.symbol(3), Some("up"));
        let mut c = b.clone();
        let e = ix.posttab + 8;
        c[e..e + 8].copy_from_slice(&(ix.posttab as u64 - 2).to_le_bytes());
        fix_crc(&mut c);
        let bad = decode(&c).unwrap();
        assert_eq!(bad.postings_list(0, 3), Vec::<SeriesRef>::new());
        assert_eq!(bad.postings_list(2, 1), [0]);
    }

    /// Reads everything an index offers, as queries would; must not panic.
    fn walk(ix: &BlockIndex, probes: &[&str]) {
        let _ = dump(ix);
        for p in probes {
            let _ = ix.symbol_id(p);
        }
        let _ = PostingsIndex::all(ix);
        for m in [
            Matcher::equal("__name__", "up"),
            Matcher::not_equal("job", ""),
            Matcher::regex("job", "a.*|b").unwrap(),
            Matcher::not_regex("a", "[ab]+").unwrap(),
        ] {
            let _ = select(ix, std::slice::from_ref(&m), ix);
        }
    }

    proptest! {
        /// The index reader is total on arbitrary input: raw garbage; garbage after the magic
        /// with a table of contents pointing into it and a valid CRC (so the structure
        /// decoder runs); a valid index with bytes changed and its CRC fixed.
        #[test]
        fn garbage_never_panics(
            body in proptest::collection::vec(any::<u8>(), 0..400),
            toc in proptest::collection::vec(0u64..500, 6),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        ) {
            let _ = decode(&body);
            for magic in [MAGIC_V3, MAGIC, MAGIC_HIST] {
                let mut b = magic.to_vec();
                b.extend_from_slice(&body);
                let words = if magic == MAGIC_V3 { &toc[..] } else { &toc[..2] };
                for w in words {
                    b.extend_from_slice(&w.to_le_bytes());
                }
                b.extend_from_slice(&[0; 4]);
                fix_crc(&mut b);
                if let Ok(ix) = decode(&b) {
                    walk(&ix, &["", "a", "up", "zzz"]);
                }
            }
            let mut b = sample();
            let n = b.len() - 4;
            for (at, x) in flips {
                b[at % n] ^= x;
            }
            fix_crc(&mut b);
            if let Ok(ix) = decode(&b) {
                walk(&ix, &["", "a", "up", "zzz"]);
            }
        }
    }

    /// Builds a block index of `sets` (sorted and deduplicated, as blocks store them), and
    /// returns it with its series' label sets by position.
    fn block_of(sets: &[Labels]) -> (BlockIndex, Vec<Labels>) {
        let mut sets = sets.to_vec();
        sets.sort();
        sets.dedup();
        let syms: std::collections::BTreeSet<&str> = sets
            .iter()
            .flat_map(|l| l.iter().flat_map(|l| [l.name.as_str(), l.value.as_str()]))
            .collect();
        let syms: Vec<&str> = syms.into_iter().collect();
        let id = |s: &str| syms.binary_search(&s).unwrap() as Sym;
        let series: Vec<IndexSeries> = sets
            .iter()
            .map(|ls| IndexSeries {
                labels: ls.iter().map(|l| (id(&l.name), id(&l.value))).collect(),
                chunks: vec![].into(),
                hchunks: Box::default(),
            })
            .collect();
        (decode(&encode(&syms, &series)).unwrap(), sets)
    }

    fn label_sets() -> impl Strategy<Value = Vec<Labels>> {
        let set = proptest::collection::vec(
            (
                prop::sample::select(vec!["__name__", "job", "a", "b"]),
                prop::sample::select(vec!["up", "x", "xy", "y", "a|b", "foo", "fo"]),
            ),
            0..4,
        )
        .prop_map(Labels::from_pairs);
        proptest::collection::vec(set, 0..30)
    }

    fn matchers() -> impl Strategy<Value = Vec<Matcher>> {
        let m = (
            0..4u8,
            prop::sample::select(vec!["__name__", "job", "a", "b", "nope"]),
            prop::sample::select(vec![
                "", "up", "x", "xy", "a|b", "foo", ".*", ".+", "x.*", "f.+", "x|", "[xy]+", "up|x",
                "(fo|y)?", "a\\|b", "zz",
            ]),
        )
            .prop_filter_map("invalid regex", |(op, n, v)| match op {
                0 => Some(Matcher::equal(n, v)),
                1 => Some(Matcher::not_equal(n, v)),
                2 => Matcher::regex(n, v).ok(),
                _ => Matcher::not_regex(n, v).ok(),
            });
        proptest::collection::vec(m, 0..4)
    }

    proptest! {
        /// A block's selection is the head's: same series for any label sets and matchers
        /// (=, !=, =~, !~, including ones that match "" and names no series has).
        #[test]
        fn block_selection_equals_head_selection(sets in label_sets(), ms in matchers()) {
            let (ix, by_pos) = block_of(&sets);
            let syms = Symbols::default();
            let mut head = Postings::default();
            let mut by_ref = Vec::new();
            for (i, ls) in by_pos.iter().enumerate() {
                let pairs: Vec<(Sym, Sym)> =
                    ls.iter().map(|l| (syms.intern(&l.name), syms.intern(&l.value))).collect();
                // Head refs in another order than the block's positions.
                let r = (by_pos.len() - i) as SeriesRef * 7;
                head.add(r, &pairs);
                by_ref.push((r, ls.clone()));
            }
            let reader = syms.reader();
            let mut want: Vec<Labels> = select(&head, &ms, &reader)
                .into_iter()
                .map(|r| by_ref.iter().find(|(x, _)| *x == r).unwrap().1.clone())
                .collect();
            want.sort();
            let got: Vec<Labels> = select(&ix, &ms, &ix)
                .into_iter()
                .map(|p| by_pos[p as usize].clone())
                .collect();
            // Block positions are in label order already.
            prop_assert_eq!(&got, &want);
            // And both agree with the matchers' own semantics.
            let direct: Vec<Labels> = by_pos
                .iter()
                .filter(|ls| ms.iter().all(|m| m.matches(ls.get(&m.name).unwrap_or(""))))
                .cloned()
                .collect();
            prop_assert_eq!(&got, &direct);
            // Names and values as the head has them.
            let strs = |v: Vec<Sym>, s: &dyn SymbolLookup| {
                let mut v: Vec<String> = v.into_iter().map(|x| s.get(x).to_string()).collect();
                v.sort();
                v
            };
            prop_assert_eq!(strs(ix.names(), &ix), strs(head.names(), &reader));
            for n in ["__name__", "job", "a", "b"] {
                let bv = ix.symbol_id(n).map(|n| strs(ix.values(n), &ix)).unwrap_or_default();
                let hv = reader.lookup(n).map(|n| strs(head.values(n), &reader)).unwrap_or_default();
                prop_assert_eq!(bv, hv);
            }
        }
    }
}
