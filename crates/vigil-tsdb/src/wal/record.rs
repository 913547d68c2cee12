//! Record framing and payload codecs shared by WAL segments and head snapshots
//! (`docs/format/wal.md`).
//!
//! Encoders append to a caller-owned buffer, so a commit reuses one buffer for its whole
//! batch; decoders borrow from the segment bytes and return `None` on anything malformed.

use crate::chunk::dense::POW10;
use crate::chunk::hist;
use crate::encoding::{Dec, put_bytes, put_uvarint, put_varint, unzigzag, zigzag};
use vigil_model::histogram::FloatHistogram;

/// Bytes before a record's payload: len u32, type u8, crc u32.
pub const HEADER_LEN: usize = 9;
/// The largest payload a reader accepts.
pub const MAX_RECORD: usize = 128 << 20;

pub const SERIES: u8 = 1;
/// Samples with every value as 8 raw bytes: what vigil wrote before [`SAMPLES_INT`]; still
/// read, and written when a ref delta is too large for the tagged form.
pub const SAMPLES: u8 = 2;
pub const TOMBSTONES: u8 = 3;
/// Samples whose integral values (counters, bucket counts: most scraped values) are stored as
/// varints instead of 8 raw bytes.
pub const SAMPLES_INT: u8 = 4;
/// Native histogram samples: refs and times as in [`SAMPLES`], each histogram in the chunk
/// sample encoding (`crate::chunk::hist`), self-contained.
pub const HISTOGRAMS: u8 = 5;
/// Start timestamps of samples logged in the same batch: refs and times as in [`SAMPLES`],
/// each start timestamp as a varint delta to its sample's time.
pub const START_TIMESTAMPS: u8 = 6;
/// Samples whose values are stored as varint integers, as short decimals (a varint mantissa
/// and a count of decimal places: gauges printed with a few digits) or as 8 raw bytes, a
/// two-bit tag on each ref's delta to the previous ref saying which. What vigil writes;
/// [`SAMPLES_INT`] is still read.
pub const SAMPLES_DEC: u8 = 7;

/// Set on a record's type when its payload is snappy-compressed (the raw format, as
/// Prometheus compresses WAL records): `0x80 | SAMPLES_INT` is a compressed samples record.
pub const COMPRESSED: u8 = 0x80;
/// Set on a record's type when its payload is one zstd frame (with its content size):
/// `0x40 | SAMPLES_DEC`. Never together with [`COMPRESSED`].
pub const ZSTD: u8 = 0x40;

/// How WAL records are compressed (`--storage.tsdb.wal-compression` and
/// `--storage.tsdb.wal-compression-type`). Readers take every kind whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WalCompression {
    None,
    /// Snappy's raw format, as Prometheus' default.
    Snappy,
    /// zstd at level 1: samples records about a quarter smaller than snappy's on
    /// scraped data, for a few nanoseconds more per sample (docs/format/wal.md).
    #[default]
    Zstd,
}

/// The zstd level WAL records are compressed at. Level 3 (zstd's default) took 61 % more time
/// than 1 for 5 % smaller records on a targetsim WAL segment, and was larger on a churn one
/// (docs/format/wal.md); the compression was about 8 % of ingest CPU at level 3.
const ZSTD_LEVEL: i32 = 1;

/// A reusable compressor for [`compress_records`].
pub enum Compressor {
    Snappy(Box<snap::raw::Encoder>),
    Zstd(Box<zstd::bulk::Compressor<'static>>),
}

impl Compressor {
    /// `None` for [`WalCompression::None`] (or when zstd cannot make its context).
    pub fn new(kind: WalCompression) -> Option<Compressor> {
        match kind {
            WalCompression::None => None,
            WalCompression::Snappy => Some(Compressor::Snappy(Box::new(snap::raw::Encoder::new()))),
            WalCompression::Zstd => zstd::bulk::Compressor::new(ZSTD_LEVEL)
                .ok()
                .map(|c| Compressor::Zstd(Box::new(c))),
        }
    }

    /// Appends `payload` compressed to `out`; the type bit to set, or `None` (and `out` as it
    /// was) when that would not make it smaller.
    fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Option<u8> {
        let at = out.len();
        let (bound, bit) = match self {
            Compressor::Snappy(_) => (snap::raw::max_compress_len(payload.len()), COMPRESSED),
            Compressor::Zstd(_) => (zstd::zstd_safe::compress_bound(payload.len()), ZSTD),
        };
        out.resize(at + bound, 0);
        let room = &mut out[at..];
        let n = match self {
            Compressor::Snappy(enc) => enc.compress(payload, room).ok(),
            Compressor::Zstd(c) => c.compress_to_buffer(payload, room).ok(),
        };
        match n {
            Some(n) if n < payload.len() => {
                out.truncate(at + n);
                Some(bit)
            }
            _ => {
                out.truncate(at);
                None
            }
        }
    }
}

/// Payloads shorter than this are left as they are: compressing would not make them smaller.
const MIN_COMPRESS: usize = 64;

/// Rewrites the records in `buf` with their payloads compressed where that makes them smaller
/// (a record that would grow keeps its plain payload). The result is built in `scratch`, each
/// payload compressed straight into it, and the two buffers are swapped, so the batch is
/// copied once; both are reused between calls.
pub fn compress_records(buf: &mut Vec<u8>, scratch: &mut Vec<u8>, comp: &mut Compressor) {
    scratch.clear();
    let mut pos = 0;
    while pos + HEADER_LEN <= buf.len() {
        let len = u32::from_le_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]) as usize;
        let kind = buf[pos + 4];
        let end = pos + HEADER_LEN + len;
        let payload = &buf[pos + HEADER_LEN..end];
        let start = begin(scratch, kind);
        let bit = if len >= MIN_COMPRESS && kind & (COMPRESSED | ZSTD) == 0 {
            comp.compress(payload, scratch)
        } else {
            None
        };
        match bit {
            Some(bit) => scratch[start + 4] = kind | bit,
            None => scratch.extend_from_slice(payload),
        }
        finish(scratch, start);
        pos = end;
    }
    std::mem::swap(buf, scratch);
}

thread_local! {
    /// One zstd decompression context per thread that reads WAL records.
    static ZSTD_DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// A record's type and payload as written: a compressed one is decompressed into `scratch`.
/// `None` when the compressed payload is malformed or would exceed [`MAX_RECORD`].
pub fn plain<'a>(kind: u8, payload: &'a [u8], scratch: &'a mut Vec<u8>) -> Option<(u8, &'a [u8])> {
    if kind & COMPRESSED != 0 {
        let n = snap::raw::decompress_len(payload).ok()?;
        if n > MAX_RECORD {
            return None;
        }
        scratch.resize(n, 0);
        let got = snap::raw::Decoder::new()
            .decompress(payload, scratch)
            .ok()?;
        scratch.truncate(got);
        return Some((kind & !COMPRESSED, &scratch[..]));
    }
    if kind & ZSTD != 0 {
        // The frame says how large its content is; refuse before allocating what a damaged
        // or hostile header claims.
        let n = zstd::zstd_safe::get_frame_content_size(payload).ok()??;
        if n > MAX_RECORD as u64 {
            return None;
        }
        scratch.clear();
        scratch.reserve(n as usize);
        let got = ZSTD_DCTX.with(|d| {
            let mut d = d.borrow_mut();
            if d.is_none() {
                *d = zstd::bulk::Decompressor::new().ok();
            }
            d.as_mut()?.decompress_to_buffer(payload, scratch).ok()
        })?;
        if got as u64 != n {
            return None;
        }
        return Some((kind & !ZSTD, &scratch[..]));
    }
    Some((kind, payload))
}

/// Starts a record of `kind`; returns the offset to pass to [`finish`].
pub fn begin(buf: &mut Vec<u8>, kind: u8) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0, 0, 0, 0, kind, 0, 0, 0, 0]);
    start
}

/// Fills in the length and CRC of the record started at `start`.
pub fn finish(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start - HEADER_LEN) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&buf[start + 4..start + 5]);
    h.update(&buf[start + HEADER_LEN..]);
    buf[start + 5..start + 9].copy_from_slice(&h.finalize().to_le_bytes());
}

/// Why reading stopped before the end of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Torn {
    /// Fewer bytes than a header or than the announced payload.
    Short,
    BadType(u8),
    TooLong(usize),
    Crc,
}

impl std::fmt::Display for Torn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Torn::Short => f.write_str("record cut short"),
            Torn::BadType(t) => write!(f, "invalid record type {t}"),
            Torn::TooLong(n) => write!(f, "record length {n} out of bounds"),
            Torn::Crc => f.write_str("checksum mismatch"),
        }
    }
}

/// Reads framed records from a byte slice.
pub struct Records<'a> {
    data: &'a [u8],
    pos: usize,
    valid: fn(u8) -> bool,
    /// Set when iteration stopped on a bad record; `pos` is then the end of the last good one.
    pub torn: Option<Torn>,
}

impl<'a> Records<'a> {
    pub fn new(data: &'a [u8], valid: fn(u8) -> bool) -> Self {
        Records {
            data,
            pos: 0,
            valid,
            torn: None,
        }
    }

    /// Offset just past the last record returned.
    pub fn good_len(&self) -> usize {
        self.pos
    }

    fn read(&mut self) -> Result<Option<(u8, &'a [u8])>, Torn> {
        let rest = &self.data[self.pos..];
        if rest.is_empty() {
            return Ok(None);
        }
        let Some(head) = rest.get(..HEADER_LEN) else {
            return Err(Torn::Short);
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind = head[4];
        let crc = u32::from_le_bytes([head[5], head[6], head[7], head[8]]);
        if !(self.valid)(kind) {
            return Err(Torn::BadType(kind));
        }
        if len > MAX_RECORD {
            return Err(Torn::TooLong(len));
        }
        let Some(payload) = rest.get(HEADER_LEN..HEADER_LEN + len) else {
            return Err(Torn::Short);
        };
        let mut h = crc32fast::Hasher::new();
        h.update(&[kind]);
        h.update(payload);
        if h.finalize() != crc {
            return Err(Torn::Crc);
        }
        self.pos += HEADER_LEN + len;
        Ok(Some((kind, payload)))
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        if self.torn.is_some() {
            return None;
        }
        match self.read() {
            Ok(r) => r,
            Err(t) => {
                self.torn = Some(t);
                None
            }
        }
    }
}

/// The record types a WAL segment may hold, compressed or not.
pub fn wal_type(t: u8) -> bool {
    t & (COMPRESSED | ZSTD) != (COMPRESSED | ZSTD)
        && matches!(
            t & !(COMPRESSED | ZSTD),
            SERIES
                | SAMPLES
                | TOMBSTONES
                | SAMPLES_INT
                | HISTOGRAMS
                | START_TIMESTAMPS
                | SAMPLES_DEC
        )
}

/// Appends a whole histograms record for `(ref, t, histogram)` triples (nothing when empty).
pub fn put_histograms_record<'h>(
    buf: &mut Vec<u8>,
    samples: impl Iterator<Item = (u64, i64, &'h FloatHistogram)> + Clone,
) {
    let Some((base_ref, base_t, _)) = samples.clone().next() else {
        return;
    };
    let start = begin(buf, HISTOGRAMS);
    put_uvarint(buf, base_ref);
    put_varint(buf, base_t);
    for (r, t, h) in samples {
        put_varint(buf, r.wrapping_sub(base_ref) as i64);
        put_varint(buf, t.wrapping_sub(base_t));
        hist::put_sample(buf, h, None);
    }
    finish(buf, start);
}

/// Decodes a histograms record, calling `f(ref, t, histogram)`.
/// A [`START_TIMESTAMPS`] record of `(ref, t, st)`.
pub fn put_start_timestamps_record(
    buf: &mut Vec<u8>,
    entries: impl Iterator<Item = (u64, i64, i64)> + Clone,
) {
    let Some((base_ref, base_t, _)) = entries.clone().next() else {
        return;
    };
    let start = begin(buf, START_TIMESTAMPS);
    put_uvarint(buf, base_ref);
    put_varint(buf, base_t);
    for (r, t, st) in entries {
        put_varint(buf, r.wrapping_sub(base_ref) as i64);
        put_varint(buf, t.wrapping_sub(base_t));
        put_varint(buf, st.wrapping_sub(t));
    }
    finish(buf, start);
}

/// Decodes a [`START_TIMESTAMPS`] payload.
pub fn decode_start_timestamps(payload: &[u8], mut f: impl FnMut(u64, i64, i64)) -> Option<()> {
    let mut d = Dec { b: payload };
    if d.is_empty() {
        return Some(());
    }
    let base_ref = d.uvarint()?;
    let base_t = d.varint()?;
    while !d.is_empty() {
        let r = base_ref.wrapping_add(d.varint()? as u64);
        let t = base_t.wrapping_add(d.varint()?);
        let st = t.wrapping_add(d.varint()?);
        f(r, t, st);
    }
    Some(())
}

pub fn decode_histograms(
    payload: &[u8],
    mut f: impl FnMut(u64, i64, FloatHistogram),
) -> Option<()> {
    let mut d = Dec { b: payload };
    if d.is_empty() {
        return Some(());
    }
    let base_ref = d.uvarint()?;
    let base_t = d.varint()?;
    while !d.is_empty() {
        let r = base_ref.wrapping_add(d.varint()? as u64);
        let t = base_t.wrapping_add(d.varint()?);
        let (h, _) = hist::get_sample(&mut d, None)?;
        f(r, t, h);
    }
    Some(())
}

/// Appends one series entry to a series record being built.
pub fn put_series<'s>(
    buf: &mut Vec<u8>,
    r: u64,
    labels: impl ExactSizeIterator<Item = (&'s str, &'s str)>,
) {
    put_uvarint(buf, r);
    put_uvarint(buf, labels.len() as u64);
    for (n, v) in labels {
        put_bytes(buf, n.as_bytes());
        put_bytes(buf, v.as_bytes());
    }
}

/// Decodes every series entry of a series record, calling `f(ref, labels)`; labels are
/// collected into the reused `scratch`. Returns `None` if the payload is malformed.
pub fn decode_series<'a>(
    payload: &'a [u8],
    scratch: &mut Vec<(&'a str, &'a str)>,
    mut f: impl FnMut(u64, &[(&'a str, &'a str)]),
) -> Option<()> {
    let mut d = Dec { b: payload };
    while !d.is_empty() {
        let r = d.uvarint()?;
        let n = d.uvarint()?;
        scratch.clear();
        for _ in 0..n {
            let name = d.str()?;
            let value = d.str()?;
            scratch.push((name, value));
        }
        f(r, scratch);
    }
    Some(())
}

/// Appends a samples record body for `(ref, t, v)` triples.
pub fn put_samples(buf: &mut Vec<u8>, samples: impl Iterator<Item = (u64, i64, f64)> + Clone) {
    let Some((base_ref, base_t, _)) = samples.clone().next() else {
        return;
    };
    put_uvarint(buf, base_ref);
    put_varint(buf, base_t);
    for (r, t, v) in samples {
        put_varint(buf, r.wrapping_sub(base_ref) as i64);
        put_varint(buf, t.wrapping_sub(base_t));
        buf.extend_from_slice(&v.to_bits().to_le_bytes());
    }
}

/// Decodes a samples record of `kind` ([`SAMPLES`] or [`SAMPLES_INT`]), calling
/// `f(ref, t, v)`.
pub fn decode_samples(kind: u8, payload: &[u8], mut f: impl FnMut(u64, i64, f64)) -> Option<()> {
    let mut d = Dec { b: payload };
    if d.is_empty() {
        return Some(());
    }
    let base_ref = d.uvarint()?;
    let base_t = d.varint()?;
    if kind == SAMPLES_DEC {
        let mut r = base_ref;
        while !d.is_empty() {
            let tagged = d.uvarint()?;
            r = r.wrapping_add(unzigzag(tagged >> 2) as u64);
            let t = base_t.wrapping_add(d.varint()?);
            let v = match tagged & 3 {
                VALUE_RAW => f64::from_bits(d.u64_le()?),
                VALUE_INT => d.varint()? as f64,
                VALUE_DEC => {
                    let m = d.varint()?;
                    let places = usize::try_from(d.uvarint()?).ok()?;
                    if !(1..=MAX_PLACES).contains(&places) || m.unsigned_abs() >= 1 << 53 {
                        return None;
                    }
                    m as f64 / POW10[places]
                }
                _ => return None,
            };
            f(r, t, v);
        }
        return Some(());
    }
    while !d.is_empty() {
        let (r, int) = if kind == SAMPLES_INT {
            let tagged = d.uvarint()?;
            (unzigzag(tagged >> 1), tagged & 1 == 1)
        } else {
            (d.varint()?, false)
        };
        let r = base_ref.wrapping_add(r as u64);
        let t = base_t.wrapping_add(d.varint()?);
        let v = if int {
            d.varint()? as f64
        } else {
            f64::from_bits(d.u64_le()?)
        };
        f(r, t, v);
    }
    Some(())
}

/// `SAMPLES_DEC` value tags.
const VALUE_RAW: u64 = 0;
const VALUE_INT: u64 = 1;
const VALUE_DEC: u64 = 2;
/// The most decimal places a `SAMPLES_DEC` value is tried with.
const MAX_PLACES: usize = 9;

/// `v` as `m / 10^places` with the fewest places (1 to 9) that give back its exact bits, if any.
/// The decoder does the same one correctly rounded division, so the bits round trip; a value
/// with no such form (a computed float, NaN, -0.0) stays raw.
fn as_decimal(v: f64) -> Option<(i64, usize)> {
    if !v.is_finite() {
        return None;
    }
    (1..=MAX_PLACES).find_map(|places| {
        let m = (v * POW10[places]).round();
        if m.abs() >= (1u64 << 53) as f64 {
            return None;
        }
        // Exactly the decoder's arithmetic (an integer mantissa: -0.0 does not survive it).
        let m = m as i64;
        ((m as f64 / POW10[places]).to_bits() == v.to_bits()).then_some((m, places))
    })
}

/// `v` as an integer when the integer converts back to exactly `v` (not -0.0, NaN, ±Inf or
/// beyond 2^53, where integers stop being exact).
fn as_exact_int(v: f64) -> Option<i64> {
    let i = v as i64;
    (i.unsigned_abs() < 1 << 53 && (i as f64).to_bits() == v.to_bits()).then_some(i)
}

/// Appends a whole samples record for `(ref, t, v)` triples: [`SAMPLES_INT`], where each
/// sample's ref delta carries a flag saying whether its value follows as a varint; or, if a
/// ref delta is too large to carry the flag, [`SAMPLES`].
pub fn put_samples_record(
    buf: &mut Vec<u8>,
    samples: impl Iterator<Item = (u64, i64, f64)> + Clone,
) {
    let Some((base_ref, base_t, _)) = samples.clone().next() else {
        return;
    };
    // Each ref is stored against the previous one (a scrape's series mostly have consecutive
    // refs: one byte), shifted left by the two-bit value tag.
    let mut prev = base_ref;
    let taggable = samples.clone().all(|(r, _, _)| {
        let d = zigzag(r.wrapping_sub(prev) as i64);
        prev = r;
        d < 1 << 62
    });
    if !taggable {
        let start = begin(buf, SAMPLES);
        put_samples(buf, samples);
        finish(buf, start);
        return;
    }
    let start = begin(buf, SAMPLES_DEC);
    put_uvarint(buf, base_ref);
    put_varint(buf, base_t);
    let mut prev = base_ref;
    for (r, t, v) in samples {
        let delta = zigzag(r.wrapping_sub(prev) as i64) << 2;
        prev = r;
        if let Some(i) = as_exact_int(v) {
            put_uvarint(buf, delta | VALUE_INT);
            put_varint(buf, t.wrapping_sub(base_t));
            put_varint(buf, i);
        } else if let Some((m, places)) = as_decimal(v) {
            put_uvarint(buf, delta | VALUE_DEC);
            put_varint(buf, t.wrapping_sub(base_t));
            put_varint(buf, m);
            put_uvarint(buf, places as u64);
        } else {
            put_uvarint(buf, delta | VALUE_RAW);
            put_varint(buf, t.wrapping_sub(base_t));
            buf.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    }
    finish(buf, start);
}

/// Appends a tombstones record: samples of each `ref` within `[mint, maxt]` are deleted.
pub fn put_tombstones(buf: &mut Vec<u8>, refs: &[u64], mint: i64, maxt: i64) {
    let start = begin(buf, TOMBSTONES);
    for &r in refs {
        put_uvarint(buf, r);
        put_varint(buf, mint);
        put_varint(buf, maxt);
    }
    finish(buf, start);
}

/// Decodes a tombstones record into `(ref, mint, maxt)`.
pub fn decode_tombstones(payload: &[u8], mut f: impl FnMut(u64, i64, i64)) -> Option<()> {
    let mut d = Dec { b: payload };
    while !d.is_empty() {
        f(d.uvarint()?, d.varint()?, d.varint()?);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn series_and_samples_round_trip() {
        let mut buf = Vec::new();
        let s = begin(&mut buf, SERIES);
        put_series(&mut buf, 7, [("__name__", "up"), ("job", "a")].into_iter());
        finish(&mut buf, s);
        let s = begin(&mut buf, SAMPLES);
        let samples = [
            (7u64, 1000i64, 1.5f64),
            (3, 999, f64::NAN),
            (9, i64::MIN, -0.0),
        ];
        put_samples(&mut buf, samples.iter().copied());
        finish(&mut buf, s);

        let mut recs = Records::new(&buf, wal_type);
        let (k, p) = recs.next().unwrap();
        assert_eq!(k, SERIES);
        let mut got = Vec::new();
        let mut scratch = Vec::new();
        decode_series(p, &mut scratch, |r, l| got.push((r, l.to_vec()))).unwrap();
        assert_eq!(got, [(7, vec![("__name__", "up"), ("job", "a")])]);
        let (k, p) = recs.next().unwrap();
        assert_eq!(k, SAMPLES);
        let mut got = Vec::new();
        decode_samples(k, p, |r, t, v| got.push((r, t, v.to_bits()))).unwrap();
        assert_eq!(got, bits(&samples));
        assert!(recs.next().is_none() && recs.torn.is_none());
    }

    fn samples_of(buf: &[u8]) -> (u8, Vec<(u64, i64, u64)>) {
        let mut recs = Records::new(buf, wal_type);
        let (k, p) = recs.next().unwrap();
        let mut got = Vec::new();
        decode_samples(k, p, |r, t, v| got.push((r, t, v.to_bits()))).unwrap();
        assert!(recs.next().is_none() && recs.torn.is_none());
        (k, got)
    }

    /// Samples with their values as bits, so that NaN payloads compare.
    fn bits(samples: &[(u64, i64, f64)]) -> Vec<(u64, i64, u64)> {
        samples
            .iter()
            .map(|&(r, t, v)| (r, t, v.to_bits()))
            .collect()
    }

    /// Writes `samples` as one record, asserts that they read back to the bit, and answers
    /// the record's kind and length in bytes.
    fn round_trip(samples: &[(u64, i64, f64)]) -> (u8, usize) {
        let mut buf = Vec::new();
        put_samples_record(&mut buf, samples.iter().copied());
        let (k, got) = samples_of(&buf);
        assert_eq!(got, bits(samples));
        (k, buf.len())
    }

    #[test]
    fn integral_values_take_a_few_bytes() {
        // A scrape's worth of counters: about 5 bytes a sample instead of 10.
        let samples: Vec<(u64, i64, f64)> = (0..1000u64)
            .map(|i| (i + 1, 1_700_000_000_000, (112_728 + i * 150) as f64))
            .collect();
        let (k, len) = round_trip(&samples);
        assert!(len < 1000 * 6, "{len} bytes");
        assert_eq!(k, SAMPLES_DEC);
    }

    #[test]
    fn short_decimals_take_a_few_bytes() {
        // Gauges printed with four to six places: about 6 bytes a sample instead of 10.
        let samples: Vec<(u64, i64, f64)> = (0..1000u64)
            .map(|i| {
                let v = if i % 2 == 0 {
                    (i as f64 * 0.731).sin() * 3.0
                } else {
                    i as f64 / 7.0
                };
                let places = [4, 6][(i % 2) as usize];
                let v: f64 = format!("{v:.places$}").parse().unwrap();
                (i + 1, 1_700_000_000_000, v)
            })
            .collect();
        let (k, len) = round_trip(&samples);
        assert!(len < 1000 * 7, "{len} bytes");
        assert_eq!(k, SAMPLES_DEC);
    }

    #[test]
    fn records_of_the_integer_kind_are_still_read() {
        // SAMPLES_INT as vigil wrote it before SAMPLES_DEC: a one-bit tag, ints or raw bits.
        let mut buf = Vec::new();
        let start = begin(&mut buf, SAMPLES_INT);
        put_uvarint(&mut buf, 10);
        put_varint(&mut buf, 5000);
        for (dr, dt, v) in [(0i64, 0i64, 3.0f64), (2, 1, 0.25), (-1, 2, 7.0)] {
            let int = as_exact_int(v);
            put_uvarint(&mut buf, zigzag(dr) << 1 | int.is_some() as u64);
            put_varint(&mut buf, dt);
            match int {
                Some(i) => put_varint(&mut buf, i),
                None => buf.extend_from_slice(&v.to_bits().to_le_bytes()),
            }
        }
        finish(&mut buf, start);
        let (k, got) = samples_of(&buf);
        assert_eq!(k, SAMPLES_INT);
        assert_eq!(
            got,
            bits(&[(10, 5000, 3.0), (12, 5001, 0.25), (9, 5002, 7.0)])
        );
    }

    #[test]
    fn huge_ref_deltas_fall_back_to_raw_values() {
        let samples = [(0u64, 5i64, 1.0f64), (u64::MAX / 2 + 7, 6, 2.5)];
        let mut buf = Vec::new();
        put_samples_record(&mut buf, samples.iter().copied());
        let (k, got) = samples_of(&buf);
        assert_eq!(k, SAMPLES);
        assert_eq!(
            got,
            [
                (0, 5, 1f64.to_bits()),
                (u64::MAX / 2 + 7, 6, 2.5f64.to_bits())
            ]
        );
    }

    #[test]
    fn compressed_records_round_trip() {
        let mut buf = Vec::new();
        let start = begin(&mut buf, SERIES);
        put_series(
            &mut buf,
            7,
            [("__name__", "model_latency_seconds_bucket"), ("le", "0.5")].into_iter(),
        );
        put_series(
            &mut buf,
            8,
            [("__name__", "model_latency_seconds_bucket"), ("le", "1")].into_iter(),
        );
        finish(&mut buf, start);
        put_samples_record(&mut buf, (0..50).map(|i| (7u64, 1000 + i as i64, 0.25)));
        let small = begin(&mut buf, TOMBSTONES);
        buf.push(1);
        finish(&mut buf, small);
        let plain_bytes = buf.clone();
        for (kind, bit) in [
            (WalCompression::Snappy, COMPRESSED),
            (WalCompression::Zstd, ZSTD),
        ] {
            let mut buf = plain_bytes.clone();
            let mut scratch = Vec::new();
            let mut comp = Compressor::new(kind).unwrap();
            compress_records(&mut buf, &mut scratch, &mut comp);
            check_compressed(&plain_bytes, &buf, bit);
        }
        assert!(Compressor::new(WalCompression::None).is_none());
    }

    /// `buf` holds `plain_bytes`' records, the larger ones compressed with `bit`.
    fn check_compressed(plain_bytes: &[u8], buf: &[u8], bit: u8) {
        assert!(buf.len() < plain_bytes.len());
        let a: Vec<(u8, Vec<u8>)> = Records::new(plain_bytes, wal_type)
            .map(|(k, p)| (k, p.to_vec()))
            .collect();
        let mut out = Vec::new();
        let mut recs = Records::new(buf, wal_type);
        for (k, p) in recs.by_ref() {
            let mut sc = Vec::new();
            let (k, p) = plain(k, p, &mut sc).unwrap();
            out.push((k, p.to_vec()));
        }
        assert!(recs.torn.is_none());
        assert_eq!(a, out);
        // The short tombstone record stays plain.
        assert!(Records::new(buf, wal_type).any(|(k, _)| k == TOMBSTONES));
        assert!(Records::new(buf, wal_type).any(|(k, _)| k & bit != 0));
    }

    #[test]
    fn a_zstd_header_claiming_too_much_is_refused_before_allocating() {
        let mut comp = Compressor::new(WalCompression::Zstd).unwrap();
        let mut packed = Vec::new();
        let payload = vec![7u8; 1000];
        assert_eq!(comp.compress(&payload, &mut packed), Some(ZSTD));
        let mut sc = Vec::new();
        assert_eq!(
            plain(SAMPLES_DEC | ZSTD, &packed, &mut sc).unwrap().1,
            &payload[..]
        );
        // A frame whose header claims more than a record may hold.
        let huge = zstd::bulk::compress(&vec![0u8; MAX_RECORD + 1], 1).unwrap();
        assert!(plain(SAMPLES_DEC | ZSTD, &huge, &mut sc).is_none());
        // Damaged frames and both compression bits at once.
        for cut in 0..packed.len() {
            let _ = plain(SAMPLES_DEC | ZSTD, &packed[..cut], &mut sc);
        }
        assert!(!wal_type(SAMPLES_DEC | ZSTD | COMPRESSED));
        assert!(wal_type(SAMPLES_DEC | ZSTD));
    }

    #[test]
    fn histograms_round_trip() {
        use vigil_model::histogram::notation::parse_histogram;
        let a = parse_histogram("{{schema:0 sum:5 count:4 buckets:[1 3]}}")
            .unwrap()
            .0;
        let b = parse_histogram("{{schema:-53 sum:1.5 count:2.5 custom_values:[1] buckets:[2.5]}}")
            .unwrap()
            .0;
        let mut buf = Vec::new();
        put_histograms_record(&mut buf, [(7u64, 1000i64, &a), (3, 900, &b)].into_iter());
        let mut recs = Records::new(&buf, wal_type);
        let (k, p) = recs.next().unwrap();
        assert_eq!(k, HISTOGRAMS);
        let mut got = Vec::new();
        decode_histograms(p, |r, t, h| got.push((r, t, h))).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0, got[0].1), (7, 1000));
        assert_eq!((got[1].0, got[1].1), (3, 900));
        assert!(got[0].2.equals(&a) && got[1].2.equals(&b));
    }

    proptest! {
        /// Any samples round trip to the bit: NaN payloads (stale markers), -0.0, infinities,
        /// integers at and beyond 2^53, any refs and timestamps.
        #[test]
        fn any_samples_round_trip(
            samples in proptest::collection::vec((
                prop_oneof![0u64..1000, any::<u64>()],
                any::<i64>(),
                prop_oneof![
                    any::<u64>().prop_map(f64::from_bits),
                    any::<i64>().prop_map(|i| i as f64),
                    (-1_000_000i64..1_000_000).prop_map(|i| i as f64),
                    (-1_000_000_000i64..1_000_000_000, 0u32..12)
                        .prop_map(|(m, p)| m as f64 / 10f64.powi(p as i32)),
                    Just(-0.0),
                    Just(f64::from_bits(0x7ff0_0000_0000_0002)),
                    Just(9_007_199_254_740_993.0),
                ],
            ), 1..50),
        ) {
            let mut buf = Vec::new();
            put_samples_record(&mut buf, samples.iter().copied());
            let (_, got) = samples_of(&buf);
            prop_assert_eq!(got, bits(&samples));
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut recs = Records::new(&bytes, wal_type);
            for _ in recs.by_ref() {}
            prop_assert!(recs.good_len() <= bytes.len());
            let mut scratch = Vec::new();
            let _ = decode_series(&bytes, &mut scratch, |_, _| {});
            let _ = decode_samples(SAMPLES, &bytes, |_, _, _| {});
            let _ = decode_samples(SAMPLES_INT, &bytes, |_, _, _| {});
            let _ = decode_samples(SAMPLES_DEC, &bytes, |_, _, _| {});
            let _ = decode_tombstones(&bytes, |_, _, _| {});
            let _ = decode_histograms(&bytes, |_, _, _| {});
        }
    }
}
