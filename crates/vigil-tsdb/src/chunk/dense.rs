//! The chunk encodings of persisted blocks (format: `docs/format/chunks.md`).
//!
//! Gorilla's XOR encoding is made for appending one sample at a time; a block is written once
//! and read many times, so it can afford columns and decimals, as VictoriaMetrics does.
//! Values that print as short decimals (nearly all scraped values: counters, gauges with a few
//! digits) become integer mantissas over one common exponent. Timestamp deltas and mantissa
//! deltas (or the mantissas themselves, whichever is smaller) are then bit-packed in
//! mini-blocks (`packed.rs`): scrape jitter of a few ms costs three or four bits, not
//! Gorilla's 16, and decoding needs no entropy decoder. A chunk whose values do not all
//! convert exactly (computed floats, NaN, ±Inf, -0.0) is kept as an XOR chunk: every chunk
//! starts with an encoding byte.
//!
//! Blocks written before the packed encoding hold DEFLATE-compressed varint columns
//! ([`ENC_DENSE`]); they are still read.
//!
//! Exactness: a value is stored as a decimal only when the decoder's arithmetic (an exact
//! integer mantissa below 2^53 times or divided by an exact power of ten ≤ 10^22, one
//! correctly rounded operation) gives back the identical bits; the encoder checks each one.

use super::packed::{
    MINI_BLOCK2, Patch, pack_blocks, packed_len, packed_size, plan_patched, unpack, unpack_blocks,
    unpack_patched, write_patched,
};
use super::xor::{XorAppender, XorIter};
use crate::encoding::{Dec, put_uvarint, put_varint, varint_len};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;

/// Encoding byte: a Gorilla XOR chunk follows.
pub const ENC_XOR: u8 = 1;
/// Encoding byte: a dense chunk (deflated varint columns) follows; read, no longer written.
pub const ENC_DENSE: u8 = 2;
/// Encoding byte: a packed chunk (bit-packed columns) follows; read, no longer written.
pub const ENC_PACKED: u8 = 3;
/// Encoding byte: a packed chunk of the second kind (what vigil writes): timestamps against a
/// regular step or shared with an earlier chunk of the file, values by delta, value or delta
/// of delta, in smaller mini-blocks.
pub const ENC_PACKED2: u8 = 4;

/// `ENC_PACKED2` flags: the value column's mode (the low two bits).
const MODE_MASK: u8 = 0b11;
/// `ENC_PACKED2` value mode: delta of deltas of the mantissas.
const VALUES_DOD: u8 = 2;
/// `ENC_PACKED2` flag: the timestamps are another chunk's of the same file.
const FLAG_SHARED_TS: u8 = 0b100;
/// `ENC_PACKED2` flag: a list of values that are not decimals follows the value column.
const FLAG_EXCEPTIONS: u8 = 0b1000;
/// `ENC_PACKED2` flag: the value column is patched (its outliers listed apart).
const FLAG_VALUES_PATCHED: u8 = 0b1_0000;
/// `ENC_PACKED2` timestamp column: residuals against `t0 + i * step`.
const TS_STEP: u8 = 0;
/// `ENC_PACKED2` timestamp column: deltas.
const TS_DELTA: u8 = 1;
/// `ENC_PACKED2` timestamp column: as [`TS_STEP`], outlying residuals listed apart.
const TS_STEP_PATCHED: u8 = 2;
/// `ENC_PACKED2` timestamp column: as [`TS_DELTA`], outlying deltas listed apart.
const TS_DELTA_PATCHED: u8 = 3;

/// Packed value column: deltas of the mantissas.
const VALUES_DELTA: u8 = 0;
/// Packed value column: the mantissas themselves (smaller for noisy gauges).
const VALUES_RAW: u8 = 1;
/// The most samples a chunk may claim: a packed column of equal values costs no bits per
/// value, so a corrupt count must not make the decoder allocate without bound.
const MAX_CHUNK_SAMPLES: usize = 1 << 20;

const FLAG_DEFLATE: u8 = 1;
const MAX_EXACT: i64 = 1 << 53;
/// Exact powers of ten (every one up to 10^22 is a double); the WAL's decimals use them too.
pub(crate) const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The shortest decimal `(mantissa, exponent)` of `v`, when there is one with an exact decoder.
pub(super) fn to_decimal(v: f64, buf: &mut String) -> Option<(i64, i32)> {
    if !v.is_finite() || v.to_bits() == (-0.0f64).to_bits() {
        return None;
    }
    if v == 0.0 {
        return Some((0, 0));
    }
    buf.clear();
    // `{:e}` prints the shortest representation that parses back to the same value.
    write!(buf, "{v:e}").ok()?;
    let (digits, exp) = buf.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    let (neg, digits) = match digits.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, digits),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.len() + frac.len() > 17 {
        return None;
    }
    let mut m: i64 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        m = m * 10 + (b - b'0') as i64;
    }
    Some((if neg { -m } else { m }, exp - frac.len() as i32))
}

/// `v`'s mantissa `m` at exponent `e`: `from_decimal(m, e)` gives back `v`'s exact bits and
/// `|m| < limit`. One multiplication or division, rounded and checked; the open head chunk
/// takes every appended value through it at the chunk's exponent.
#[inline]
pub(super) fn mantissa_at(v: f64, e: i32, limit: i64) -> Option<i64> {
    let pow = *POW10.get(e.unsigned_abs() as usize)?;
    let m = if e >= 0 { v / pow } else { v * pow }.round();
    if m.is_nan() || m.abs() >= limit as f64 {
        return None;
    }
    let m = m as i64;
    let exact = |m: i64| m.abs() < limit && from_decimal(m, e).to_bits() == v.to_bits();
    if exact(m) {
        return Some(m);
    }
    // Near 2^52 the product's rounding error reaches half a unit: the mantissa can be the
    // neighbour (found by the property test below: -318608.0778 at e = -10).
    if m.unsigned_abs() >= 1 << 50 {
        return [m - 1, m + 1].into_iter().find(|&m| exact(m));
    }
    None
}

/// [`mantissa_at`] below 2^52, where the decimals `m·10^e` are further apart than the
/// doubles near them, so `m` is the only one and [`decimals_except`] picks the mantissas
/// printing would.
fn exact_at(v: f64, e: i32) -> Option<i64> {
    mantissa_at(v, e, 1 << 52)
}

/// `from_decimal` with the exponent's branch and table lookup taken once per chunk.
#[derive(Clone, Copy)]
struct Scale {
    pow: f64,
    multiply: bool,
}

impl Scale {
    fn new(e: i32) -> Scale {
        Scale {
            pow: POW10[e.unsigned_abs() as usize],
            multiply: e >= 0,
        }
    }

    #[inline(always)]
    fn value(self, m: i64) -> f64 {
        if self.multiply {
            m as f64 * self.pow
        } else {
            m as f64 / self.pow
        }
    }
}

pub(super) fn from_decimal(m: i64, e: i32) -> f64 {
    if e >= 0 {
        m as f64 * POW10[e as usize]
    } else {
        m as f64 / POW10[(-e) as usize]
    }
}

/// Mantissas over one common exponent, if every value converts exactly.
#[cfg(test)]
fn decimals(samples: &[(i64, f64)], out: &mut Vec<i64>) -> Option<i32> {
    let mut exceptions = Vec::new();
    let e = decimals_except(samples, out, &mut exceptions, 0)?;
    exceptions.is_empty().then_some(e)
}

/// Mantissas over one common exponent. Up to `max_exceptions` values that have no exact
/// decimal at that exponent (a staleness marker, `-0.0` printed by a gauge, a computed float)
/// are listed in `exceptions` with their bits and get the previous mantissa in `out`, so the
/// column stays smooth; `None` when there are more.
fn decimals_except(
    samples: &[(i64, f64)],
    out: &mut Vec<i64>,
    exceptions: &mut Vec<(usize, u64)>,
    max_exceptions: usize,
) -> Option<i32> {
    let mut buf = String::with_capacity(32);
    let mut pairs = Vec::with_capacity(samples.len());
    exceptions.clear();
    // The exponent of the previous value: a value exact at it needs no digits below it, which
    // is all `e` (the smallest exponent) needs to know, so only values that need more digits
    // are printed to find their shortest form (printing every value was a tenth of a head
    // chunk's cut).
    let mut prev_e = None;
    for (i, &(_, v)) in samples.iter().enumerate() {
        let p = match prev_e.and_then(|e| exact_at(v, e)) {
            Some(m) if v != 0.0 => Some((m, prev_e.unwrap_or(0))),
            _ => to_decimal(v, &mut buf),
        };
        if let Some((_, e)) = p
            && v != 0.0
        {
            prev_e = Some(e);
        }
        if p.is_none() {
            if exceptions.len() >= max_exceptions {
                return None;
            }
            exceptions.push((i, v.to_bits()));
        }
        pairs.push(p);
    }
    let e = pairs.iter().flatten().map(|p| p.1).min().unwrap_or(0);
    if !(-22..=22).contains(&e) {
        return None;
    }
    out.clear();
    for (i, (p, &(_, v))) in pairs.iter().zip(samples).enumerate() {
        let exact = p.and_then(|(m, pe)| {
            let mut m = m;
            for _ in 0..(pe - e) {
                m = m.checked_mul(10)?;
            }
            (m.abs() < MAX_EXACT && from_decimal(m, e).to_bits() == v.to_bits()).then_some(m)
        });
        match exact {
            Some(m) => out.push(m),
            None => {
                if p.is_some() {
                    if exceptions.len() >= max_exceptions {
                        return None;
                    }
                    exceptions.push((i, v.to_bits()));
                }
                out.push(out.last().copied().unwrap_or(0));
            }
        }
    }
    exceptions.sort_unstable_by_key(|x| x.0);
    Some(e)
}

/// The timestamp columns written to one chunks file so far, so that a chunk whose timestamps
/// equal an earlier chunk's refers to them instead of storing them again. Every series of a
/// target is scraped at the same instants, so in a block most chunks share their timestamps
/// with a few hundred others: with scrape jitter, timestamps were a third of a block's bytes.
#[derive(Default)]
pub struct SharedTimestamps {
    /// `n`, `t0` and the encoded column → offset of the chunk frame holding the column.
    seen: HashMap<Box<[u8]>, u64>,
    bytes: usize,
    key: Vec<u8>,
    /// Set by [`SharedTimestamps::recent`]: the bytes of keys kept before all are forgotten.
    recent: Option<usize>,
}

impl SharedTimestamps {
    /// Keys kept at most: a block of series that never share (every target's scrapes at
    /// other instants) stops remembering once this much is held.
    const MAX_BYTES: usize = 32 << 20;

    /// For a file appended to for hours (a `chunks_head/` segment), where chunks share with
    /// the chunks cut at the same scrape: keeps up to `limit` bytes of columns, then forgets
    /// them all and starts again.
    pub fn recent(limit: usize) -> SharedTimestamps {
        SharedTimestamps {
            recent: Some(limit),
            ..SharedTimestamps::default()
        }
    }

    /// Forgets every column (the file changed).
    pub fn clear(&mut self) {
        self.seen.clear();
        self.bytes = 0;
    }

    /// Remembers the column in `key` as the one framed at `offset`. Once full, a block's
    /// writer remembers no more and a [`SharedTimestamps::recent`] one starts again.
    fn remember(&mut self, offset: u64) {
        if self.bytes >= self.recent.unwrap_or(Self::MAX_BYTES) {
            if self.recent.is_none() {
                return;
            }
            self.clear();
        }
        self.bytes += self.key.len() + 32;
        self.seen
            .insert(self.key.clone().into_boxed_slice(), offset);
    }
}

/// Encodes samples (increasing time) as a block chunk: encoding byte, then the chunk.
pub fn encode(samples: &[(i64, f64)], out: &mut Vec<u8>) {
    encode_into(samples, out, None)
}

/// Encodes samples as [`encode`] does, for the frame at `offset` of a chunks file whose earlier
/// timestamp columns `shared` remembers.
pub fn encode_shared(
    samples: &[(i64, f64)],
    out: &mut Vec<u8>,
    shared: &mut SharedTimestamps,
    offset: u64,
) {
    encode_into(samples, out, Some((shared, offset)))
}

fn encode_into(
    samples: &[(i64, f64)],
    out: &mut Vec<u8>,
    shared: Option<(&mut SharedTimestamps, u64)>,
) {
    let mut mantissas = Vec::with_capacity(samples.len());
    let mut exceptions = Vec::new();
    // A few odd values (a staleness marker ending a series, a gauge printing -0) are listed
    // aside; a chunk of computed floats stays XOR.
    let max_exceptions = (samples.len() / 16).max(1);
    let (Some(exp), Some(&(t0, _))) = (
        decimals_except(samples, &mut mantissas, &mut exceptions, max_exceptions),
        samples.first(),
    ) else {
        out.push(ENC_XOR);
        let mut x = XorAppender::with_capacity(samples.len() * 2 + 16);
        for &(t, v) in samples {
            x.append(t, v);
        }
        out.extend_from_slice(x.bytes());
        return;
    };
    let n = samples.len();
    let mut ts = Vec::new();
    timestamp_column(samples, &mut ts);
    // Values: whichever of the three columns is smallest (ties to the earliest), each as it
    // is or with its outliers listed apart, measured first and written once. A counter reset
    // or a spike widens its whole mini-block; listed apart it costs its own varint (only
    // tried on a column whose mini-blocks are of unequal widths).
    let dm = deltas(mantissas.iter().copied());
    let ddm = deltas(dm.iter().copied());
    let d1 = dm.first().copied();
    let (mut mode, mut column, (mut patch, mut len)) =
        (VALUES_DELTA, &dm[..], smallest_form(&dm, 0));
    let raw = (VALUES_RAW, &mantissas[1..], 0);
    // The delta of deltas needs a first delta (none with one sample).
    let dod = d1.map(|d1| (VALUES_DOD, &ddm[..], varint_len(d1)));
    for (m, c, prefix) in std::iter::once(raw).chain(dod) {
        let (p, l) = smallest_form(c, prefix);
        if l < len {
            (mode, column, patch, len) = (m, c, p, l);
        }
    }
    let mut values = Vec::with_capacity(len);
    if let (VALUES_DOD, Some(d1)) = (mode, d1) {
        put_varint(&mut values, d1);
    }
    match patch {
        Some(plan) => write_patched(column, MINI_BLOCK2, plan, &mut values),
        None => pack_blocks(column, MINI_BLOCK2, &mut values),
    }

    let mut flags = mode;
    if patch.is_some() {
        flags |= FLAG_VALUES_PATCHED;
    }
    if !exceptions.is_empty() {
        flags |= FLAG_EXCEPTIONS;
    }
    let mut reference = None;
    if let Some((shared, offset)) = shared
        && ts.len() > 4
    {
        shared.key.clear();
        put_uvarint(&mut shared.key, n as u64);
        put_varint(&mut shared.key, t0);
        shared.key.extend_from_slice(&ts);
        match shared.seen.get(shared.key.as_slice()) {
            Some(&at) => {
                flags |= FLAG_SHARED_TS;
                reference = Some(at);
            }
            None => shared.remember(offset),
        }
    }
    out.push(ENC_PACKED2);
    put_uvarint(out, n as u64);
    put_varint(out, t0);
    put_varint(out, exp as i64);
    out.push(flags);
    put_varint(out, mantissas[0]);
    match reference {
        Some(at) => put_uvarint(out, at),
        None => out.extend_from_slice(&ts),
    }
    out.extend_from_slice(&values);
    if !exceptions.is_empty() {
        put_uvarint(out, exceptions.len() as u64);
        let mut prev = 0;
        for &(i, bits) in &exceptions {
            put_uvarint(out, (i - prev) as u64);
            out.extend_from_slice(&bits.to_le_bytes());
            prev = i;
        }
    }
}

/// A value column's smaller form, as it is or patched (`Some`), and its bytes with `prefix`
/// more: the patched form is tried only when the column's mini-blocks are of unequal widths.
fn smallest_form(column: &[i64], prefix: usize) -> (Option<Patch>, usize) {
    let (len, uneven) = packed_size(column, MINI_BLOCK2);
    if uneven {
        let plan = plan_patched(column, MINI_BLOCK2);
        if plan.len < len {
            return (Some(plan), prefix + plan.len);
        }
    }
    (None, prefix + len)
}

/// A chunk's own timestamp column: residuals against a constant step (regular scrapes with
/// jitter: the residuals span the jitter, deltas twice it) or deltas, each packed as it is or
/// with its outliers listed apart (the irregular first scrapes of a series, a late scrape);
/// the smallest of the four, the earliest on ties.
fn timestamp_column(samples: &[(i64, f64)], out: &mut Vec<u8>) {
    thread_local! {
        /// The last column encoded on this thread and its timestamps. Every series of a
        /// target is scraped at the same instants and cut at the same scrape, one after the
        /// other in one commit, so most cuts find their column here: choosing among the
        /// encodings was a third of a cut's time.
        static LAST: RefCell<(Vec<i64>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        let (ts, col) = &mut *last;
        if ts.len() != samples.len() || ts.iter().zip(samples).any(|(a, b)| *a != b.0) {
            ts.clear();
            ts.extend(samples.iter().map(|s| s.0));
            col.clear();
            choose_timestamp_column(samples, col);
        }
        out.extend_from_slice(col);
    })
}

/// Encodes the timestamps of `samples` in whichever column kind is smallest.
fn choose_timestamp_column(samples: &[(i64, f64)], out: &mut Vec<u8>) {
    /// A candidate column, measured before any is written.
    enum Column {
        Step(i64),
        StepPatched(i64, Patch),
        Delta,
        DeltaPatched(Patch),
    }
    let n = samples.len();
    let t0 = samples[0].0;
    let dts = deltas(samples.iter().map(|s| s.0));
    let mut candidates: Vec<(Column, usize)> = Vec::with_capacity(4);
    let mut residuals = Vec::new();
    if n >= 2 {
        let span = samples[n - 1].0.wrapping_sub(t0);
        let steps = (n - 1) as i64;
        // The average step, rounded: residuals then stay within the jitter.
        let step = span.wrapping_add(steps / 2).wrapping_div(steps);
        residuals.extend(samples[1..].iter().enumerate().map(|(i, s)| {
            s.0.wrapping_sub(t0)
                .wrapping_sub(step.wrapping_mul(i as i64 + 1))
        }));
        let head = 1 + varint_len(step);
        candidates.push((
            Column::Step(step),
            head + packed_len(&residuals, MINI_BLOCK2),
        ));
        // Aligned scrapes (every residual the same) have nothing to patch.
        if !all_equal(&residuals) {
            let plan = plan_patched(&residuals, MINI_BLOCK2);
            candidates.push((Column::StepPatched(step, plan), head + plan.len));
        }
    }
    // Ties go to the earlier kinds, which older versions read.
    let by_delta = (Column::Delta, 1 + packed_len(&dts, MINI_BLOCK2));
    candidates.insert(candidates.len().min(1), by_delta);
    if !all_equal(&dts) {
        let plan = plan_patched(&dts, MINI_BLOCK2);
        candidates.push((Column::DeltaPatched(plan), 1 + plan.len));
    }
    let Some((best, len)) = candidates
        .into_iter()
        .enumerate()
        .min_by_key(|(i, c)| (c.1, *i))
        .map(|(_, c)| c)
    else {
        return;
    };
    out.reserve(len);
    match best {
        Column::Step(step) => {
            out.push(TS_STEP);
            put_varint(out, step);
            pack_blocks(&residuals, MINI_BLOCK2, out);
        }
        Column::StepPatched(step, plan) => {
            out.push(TS_STEP_PATCHED);
            put_varint(out, step);
            write_patched(&residuals, MINI_BLOCK2, plan, out);
        }
        Column::Delta => {
            out.push(TS_DELTA);
            pack_blocks(&dts, MINI_BLOCK2, out);
        }
        Column::DeltaPatched(plan) => {
            out.push(TS_DELTA_PATCHED);
            write_patched(&dts, MINI_BLOCK2, plan, out);
        }
    }
}

fn all_equal(xs: &[i64]) -> bool {
    xs.windows(2).all(|w| w[0] == w[1])
}

/// Differences of consecutive values (wrapping), one fewer than the values.
fn deltas(xs: impl Iterator<Item = i64>) -> Vec<i64> {
    let mut prev = None;
    xs.filter_map(|x| prev.replace(x).map(|p| x.wrapping_sub(p)))
        .collect()
}

/// Decodes a block chunk into `out` (cleared first); `scratch` is reused for inflating.
/// Returns false when the chunk is corrupt (`out` then holds the samples decoded before).
/// A chunk that shares another chunk's timestamps needs its file: [`decode_in_file`].
pub fn decode(chunk: &[u8], out: &mut Vec<(i64, f64)>, scratch: &mut Vec<u8>) -> bool {
    decode_with(chunk, None, out, scratch)
}

/// Decodes the chunk framed at `offset` of the chunks file `file` (CRC checked), resolving
/// timestamps shared with an earlier chunk of the file.
pub fn decode_in_file(
    file: &[u8],
    offset: usize,
    out: &mut Vec<(i64, f64)>,
    scratch: &mut Vec<u8>,
) -> bool {
    match super::read_framed(file, offset) {
        Some(chunk) => decode_with(chunk, Some(&InFile { file, own: offset }), out, scratch),
        None => {
            out.clear();
            false
        }
    }
}

/// Decodes `chunk`, read from offset `src.own()` of a chunks file that `src` reads, resolving
/// timestamps shared with an earlier chunk of that file (a `chunks_head/` segment read on
/// demand: [`super::disk`]).
pub fn decode_from(
    chunk: &[u8],
    src: &dyn FrameSource,
    out: &mut Vec<(i64, f64)>,
    scratch: &mut Vec<u8>,
) -> bool {
    decode_with(chunk, Some(src), out, scratch)
}

/// The chunks file a chunk was read from, for the chunk whose timestamps it shares.
pub trait FrameSource {
    /// The offset of the chunk being decoded: a reference must point before it.
    fn own(&self) -> usize;
    /// Identifies the bytes framed at `at` for the per-thread cache of decoded columns: a key
    /// once seen must never stand for other bytes (see [`TsCache`]).
    fn cache_key(&self, at: usize) -> Option<(usize, usize, u32)>;
    /// The chunk framed at `at`, if it is intact (CRC checked); `buf` may hold it.
    fn chunk<'s>(&'s self, at: usize, buf: &'s mut Vec<u8>) -> Option<&'s [u8]>;
}

/// A chunks file wholly in memory (a block's, mapped).
struct InFile<'a> {
    file: &'a [u8],
    own: usize,
}

impl FrameSource for InFile<'_> {
    fn own(&self) -> usize {
        self.own
    }

    /// The mapping's address and length and the frame's stored CRC: a file mapped later at the
    /// same address with other bytes there misses.
    fn cache_key(&self, at: usize) -> Option<(usize, usize, u32)> {
        Some((
            self.file.as_ptr() as usize,
            self.file.len(),
            frame_crc(self.file, at)?,
        ))
    }

    fn chunk<'s>(&'s self, at: usize, _: &'s mut Vec<u8>) -> Option<&'s [u8]> {
        super::read_framed(self.file, at)
    }
}

fn decode_with(
    chunk: &[u8],
    file: Option<&dyn FrameSource>,
    out: &mut Vec<(i64, f64)>,
    scratch: &mut Vec<u8>,
) -> bool {
    out.clear();
    match chunk.split_first() {
        Some((&ENC_PACKED2, rest)) => {
            let ok = decode_packed2(rest, file, out).is_some();
            if !ok {
                out.clear();
            }
            ok
        }
        Some((&ENC_XOR, rest)) => {
            let mut it = XorIter::new(rest);
            out.extend(it.by_ref());
            !it.err
        }
        Some((&ENC_PACKED, rest)) => {
            let ok = decode_packed(rest, out).is_some();
            if !ok {
                // Unlike a stream, columns leave no trustworthy prefix.
                out.clear();
            }
            ok
        }
        Some((&ENC_DENSE, rest)) => decode_dense(rest, out, scratch).is_some(),
        _ => false,
    }
}

fn decode_packed(b: &[u8], out: &mut Vec<(i64, f64)>) -> Option<()> {
    let mut d = Dec { b };
    let n = usize::try_from(d.uvarint()?).ok()?;
    if n == 0 {
        return d.is_empty().then_some(());
    }
    if n > MAX_CHUNK_SAMPLES {
        return None;
    }
    let t0 = d.varint()?;
    let e = d.varint()?;
    if !(-22..=22).contains(&e) {
        return None;
    }
    let e = e as i32;
    let (&mode, rest) = d.b.split_first()?;
    d.b = rest;
    let m0 = d.varint()?;
    out.resize(n, (t0, from_decimal(m0, e)));
    let later = &mut out[1..];
    let mut t = t0;
    unpack(&mut d, n - 1, |i, dt| {
        t = t.wrapping_add(dt);
        later[i].0 = t;
    })?;
    match mode {
        VALUES_DELTA => {
            let mut m = m0;
            unpack(&mut d, n - 1, |i, dm| {
                m = m.wrapping_add(dm);
                later[i].1 = from_decimal(m, e);
            })?
        }
        VALUES_RAW => unpack(&mut d, n - 1, |i, m| later[i].1 = from_decimal(m, e))?,
        _ => return None,
    }
    d.is_empty().then_some(())
}

/// The header of an `ENC_PACKED2` chunk, up to its timestamps.
struct Header2 {
    n: usize,
    t0: i64,
    e: i32,
    flags: u8,
    m0: i64,
}

fn header2(d: &mut Dec<'_>) -> Option<Header2> {
    let n = usize::try_from(d.uvarint()?).ok()?;
    if n == 0 || n > MAX_CHUNK_SAMPLES {
        return None;
    }
    let t0 = d.varint()?;
    let e = d.varint()?;
    if !(-22..=22).contains(&e) {
        return None;
    }
    let (&flags, rest) = d.b.split_first()?;
    d.b = rest;
    if flags & !(MODE_MASK | FLAG_SHARED_TS | FLAG_EXCEPTIONS | FLAG_VALUES_PATCHED) != 0 {
        return None;
    }
    let m0 = d.varint()?;
    Some(Header2 {
        n,
        t0,
        e: e as i32,
        flags,
        m0,
    })
}

/// Reads a chunk's own timestamp column into `out[1..]` (`out[0]` holds `t0`).
fn timestamps2(d: &mut Dec<'_>, t0: i64, out: &mut [(i64, f64)]) -> Option<()> {
    let (&kind, rest) = d.b.split_first()?;
    d.b = rest;
    let later = out.get_mut(1..)?;
    match kind {
        TS_STEP => {
            let step = d.varint()?;
            unpack_blocks(d, later.len(), MINI_BLOCK2, |i, r| {
                later[i].0 = t0
                    .wrapping_add(step.wrapping_mul(i as i64 + 1))
                    .wrapping_add(r);
            })
        }
        TS_DELTA => {
            let mut t = t0;
            unpack_blocks(d, later.len(), MINI_BLOCK2, |i, dt| {
                t = t.wrapping_add(dt);
                later[i].0 = t;
            })
        }
        TS_STEP_PATCHED => {
            let step = d.varint()?;
            unpack_patched(d, later.len(), MINI_BLOCK2, |i, r| {
                later[i].0 = t0
                    .wrapping_add(step.wrapping_mul(i as i64 + 1))
                    .wrapping_add(r);
            })
        }
        TS_DELTA_PATCHED => {
            let mut t = t0;
            unpack_patched(d, later.len(), MINI_BLOCK2, |i, dt| {
                t = t.wrapping_add(dt);
                later[i].0 = t;
            })
        }
        _ => None,
    }
}

/// Timestamp columns decoded lately, per thread: a query reads the chunks of many series
/// that share a few columns, so most references are decoded once. An entry is keyed by what
/// [`FrameSource::cache_key`] gives for the file (a block's mapping and the referenced frame's
/// stored CRC, checked when the entry was made; a `chunks_head/` segment's number, never
/// reused in a process, whose bytes never change), the referenced frame's offset, and `n`
/// and `t0`.
struct TsCache {
    entries: Vec<(TsKey, Vec<i64>)>,
    next: usize,
}

/// Columns a thread keeps decoded: a query walks series by series, and each series' chunks
/// refer to a different column per chunk-sized time window and per target, so a handful of
/// entries would be evicted before their next use (up to 256 KiB per thread).
const TS_CACHE_ENTRIES: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct TsKey {
    src: (usize, usize, u32),
    at: usize,
    n: usize,
    t0: i64,
}

thread_local! {
    static TS_CACHE: std::cell::RefCell<TsCache> = const {
        std::cell::RefCell::new(TsCache {
            entries: Vec::new(),
            next: 0,
        })
    };
}

/// The stored CRC of the frame at `at`, without checking it.
fn frame_crc(file: &[u8], at: usize) -> Option<u32> {
    let mut d = Dec { b: file.get(at..)? };
    let _ = d.bytes()?;
    Some(u32::from_le_bytes(d.b.get(..4)?.try_into().ok()?))
}

/// Fills `out`'s timestamps from the chunk framed at `at` of `file`, which must be an intact
/// `ENC_PACKED2` chunk holding its own timestamps for the same `n` and `t0`.
fn shared_timestamps(
    file: &dyn FrameSource,
    at: usize,
    h: &Header2,
    out: &mut [(i64, f64)],
) -> Option<()> {
    let key = TsKey {
        src: file.cache_key(at)?,
        at,
        n: h.n,
        t0: h.t0,
    };
    let hit = TS_CACHE.with(|c| {
        let c = c.borrow();
        let (_, ts) = c
            .entries
            .iter()
            .find(|(k, ts)| *k == key && ts.len() == h.n)?;
        for (o, &t) in out.iter_mut().zip(ts) {
            o.0 = t;
        }
        Some(())
    });
    if hit.is_some() {
        return Some(());
    }
    let mut buf = Vec::new();
    let other = file.chunk(at, &mut buf)?;
    let (&ENC_PACKED2, rest) = other.split_first()? else {
        return None;
    };
    let mut od = Dec { b: rest };
    let oh = header2(&mut od)?;
    if oh.n != h.n || oh.t0 != h.t0 || oh.flags & FLAG_SHARED_TS != 0 {
        return None;
    }
    timestamps2(&mut od, h.t0, out)?;
    TS_CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let ts = out.iter().map(|s| s.0);
        if c.entries.len() < TS_CACHE_ENTRIES {
            c.entries.push((key, ts.collect()));
            return;
        }
        let i = c.next;
        c.next = (i + 1) % TS_CACHE_ENTRIES;
        let e = &mut c.entries[i];
        e.0 = key;
        e.1.clear();
        e.1.extend(ts);
    });
    Some(())
}

fn decode_packed2(
    b: &[u8],
    file: Option<&dyn FrameSource>,
    out: &mut Vec<(i64, f64)>,
) -> Option<()> {
    let mut d = Dec { b };
    let h = header2(&mut d)?;
    out.resize(h.n, (h.t0, from_decimal(h.m0, h.e)));
    if h.flags & FLAG_SHARED_TS != 0 {
        // Only an earlier chunk of the same file, holding its own timestamps for the same
        // count and start: references never chain or loop.
        let at = usize::try_from(d.uvarint()?).ok()?;
        let file = file?;
        if at >= file.own() {
            return None;
        }
        shared_timestamps(file, at, &h, out)?;
    } else {
        timestamps2(&mut d, h.t0, out)?;
    }
    let sc = Scale::new(h.e);
    let later = &mut out[1..];
    let patched = h.flags & FLAG_VALUES_PATCHED != 0;
    match h.flags & MODE_MASK {
        VALUES_DELTA => {
            let mut m = h.m0;
            value_column(&mut d, later.len(), patched, |i, dm| {
                m = m.wrapping_add(dm);
                later[i].1 = sc.value(m);
            })?
        }
        VALUES_RAW => value_column(&mut d, later.len(), patched, |i, m| {
            later[i].1 = sc.value(m)
        })?,
        VALUES_DOD if !later.is_empty() => {
            let mut dm = d.varint()?;
            let mut m = h.m0.wrapping_add(dm);
            later[0].1 = sc.value(m);
            let rest = &mut later[1..];
            value_column(&mut d, rest.len(), patched, |i, ddm| {
                dm = dm.wrapping_add(ddm);
                m = m.wrapping_add(dm);
                rest[i].1 = sc.value(m);
            })?
        }
        _ => return None,
    }
    if h.flags & FLAG_EXCEPTIONS != 0 {
        let count = usize::try_from(d.uvarint()?).ok()?;
        if count > h.n {
            return None;
        }
        let mut at = 0usize;
        for k in 0..count {
            let step = usize::try_from(d.uvarint()?).ok()?;
            // Indexes increase strictly after the first.
            if k > 0 && step == 0 {
                return None;
            }
            at = at.checked_add(step)?;
            let bits = d.b.get(..8)?;
            out.get_mut(at)?.1 = f64::from_bits(u64::from_le_bytes(bits.try_into().ok()?));
            d.b = &d.b[8..];
        }
    }
    d.is_empty().then_some(())
}

/// Reads a value column of `n` values, patched or not, handing each to `f` in order.
#[inline]
fn value_column(d: &mut Dec<'_>, n: usize, patched: bool, f: impl FnMut(usize, i64)) -> Option<()> {
    if patched {
        unpack_patched(d, n, MINI_BLOCK2, f)
    } else {
        unpack_blocks(d, n, MINI_BLOCK2, f)
    }
}

/// A chunk inflates to at most a few hundred KiB; the cap stops a corrupt stream.
const MAX_INFLATED: usize = 64 << 20;

thread_local! {
    /// One decompressor per thread, reused for every chunk: a query decodes thousands of
    /// small chunks. libdeflate decodes a whole buffer at once; on the 24 h storage
    /// benchmark's queries it took about a fifth less time than zlib-rs' streaming inflater
    /// (docs/dependencies.md).
    static INFLATER: std::cell::RefCell<libdeflater::Decompressor> =
        std::cell::RefCell::new(libdeflater::Decompressor::new());
}

/// Inflates the raw deflate stream `body` into `out`; `None` if it is corrupt or truncated.
fn inflate(body: &[u8], out: &mut Vec<u8>) -> Option<()> {
    INFLATER.with(|d| {
        let mut d = d.borrow_mut();
        // Columns deflate to a third or so of their size: start at 4× and grow when short.
        let mut cap = (body.len() * 4).max(4096);
        loop {
            out.clear();
            out.resize(cap, 0);
            match d.deflate_decompress(body, out) {
                Ok(n) => {
                    out.truncate(n);
                    return Some(());
                }
                Err(libdeflater::DecompressionError::InsufficientSpace) if cap < MAX_INFLATED => {
                    cap = (cap * 4).min(MAX_INFLATED);
                }
                Err(_) => return None,
            }
        }
    })
}

fn decode_dense(b: &[u8], out: &mut Vec<(i64, f64)>, scratch: &mut Vec<u8>) -> Option<()> {
    let (&flags, body) = b.split_first()?;
    let cols: &[u8] = if flags & FLAG_DEFLATE != 0 {
        inflate(body, scratch)?;
        scratch
    } else {
        body
    };
    let mut d = Dec { b: cols };
    let n = d.uvarint()? as usize;
    if n > cols.len() {
        return None;
    }
    out.reserve(n);
    let (mut t, mut delta) = (0i64, 0i64);
    for i in 0..n {
        let x = d.varint()?;
        match i {
            0 => t = x,
            _ => {
                delta = delta.wrapping_add(x);
                t = t.wrapping_add(delta);
            }
        }
        out.push((t, 0.0));
    }
    let e = d.varint()?;
    if !(-22..=22).contains(&e) {
        return None;
    }
    let mut m = 0i64;
    for s in out.iter_mut() {
        m = m.wrapping_add(d.varint()?);
        s.1 = from_decimal(m, e as i32);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::packed::pack;
    use proptest::prelude::*;

    fn round_trip(samples: &[(i64, f64)]) -> usize {
        let mut b = Vec::new();
        encode(samples, &mut b);
        let mut out = Vec::new();
        assert!(decode(&b, &mut out, &mut Vec::new()));
        let got: Vec<(i64, u64)> = out.iter().map(|(t, v)| (*t, v.to_bits())).collect();
        let want: Vec<(i64, u64)> = samples.iter().map(|(t, v)| (*t, v.to_bits())).collect();
        assert_eq!(got, want);
        b.len()
    }

    #[test]
    fn decimals_are_exact_or_refused() {
        let mut buf = String::new();
        for v in [0.1, 1e-7, 123456.789, 1e300, 5e-324, -2.5, 1.0 / 3.0] {
            if let Some((m, e)) = to_decimal(v, &mut buf)
                && (-22..=22).contains(&e)
                && m.abs() < MAX_EXACT
            {
                assert_eq!(from_decimal(m, e).to_bits(), v.to_bits(), "{v}");
            }
        }
        assert_eq!(to_decimal(-0.0, &mut buf), None);
        assert_eq!(to_decimal(f64::NAN, &mut buf), None);
    }

    #[test]
    fn scrape_like_data_is_dense() {
        let mut s = Vec::new();
        let mut c = 1000.0;
        for i in 0..720i64 {
            c += (i % 5) as f64;
            s.push((1_700_000_000_000 + i * 15_000 + (i * 7) % 5, c));
        }
        let n = round_trip(&s);
        assert!(
            (n as f64) / 720.0 < 1.5,
            "{} bytes/sample",
            n as f64 / 720.0
        );
        let g: Vec<(i64, f64)> = (0..720i64)
            .map(|i| (i * 15_000, ((i * 7919) % 1000) as f64 / 1000.0))
            .collect();
        round_trip(&g);
    }

    /// The varint columns blocks held before the packed encoding, deflated (ENC_DENSE).
    fn encode_deflated(samples: &[(i64, f64)]) -> Vec<u8> {
        use std::io::Write;
        let mut mantissas = Vec::new();
        let exp = decimals(samples, &mut mantissas).unwrap();
        let mut cols = Vec::new();
        put_uvarint(&mut cols, samples.len() as u64);
        let (mut pt, mut pd) = (0i64, 0i64);
        for (i, &(t, _)) in samples.iter().enumerate() {
            let d = t.wrapping_sub(pt);
            put_varint(&mut cols, if i == 0 { t } else { d.wrapping_sub(pd) });
            if i > 0 {
                pd = d;
            }
            pt = t;
        }
        put_varint(&mut cols, exp as i64);
        let mut pm = 0i64;
        for &m in &mantissas {
            put_varint(&mut cols, m.wrapping_sub(pm));
            pm = m;
        }
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&cols).unwrap();
        let mut out = vec![ENC_DENSE, FLAG_DEFLATE];
        out.extend(z.finish().unwrap());
        out
    }

    #[test]
    fn deflated_chunks_of_older_blocks_are_read() {
        let s: Vec<(i64, f64)> = (0..700i64)
            .map(|i| {
                (
                    1_700_000_000_000 + i * 15_000 + i % 3,
                    (1000 + i * 7) as f64 / 100.0,
                )
            })
            .collect();
        let mut out = Vec::new();
        assert!(decode(&encode_deflated(&s), &mut out, &mut Vec::new()));
        assert_eq!(out, s);
    }

    #[test]
    fn noisy_gauges_pack_the_mantissas_themselves() {
        // Values jumping over their whole range: deltas span twice the range, values once.
        let s: Vec<(i64, f64)> = (0..1024i64)
            .map(|i| (i * 15_000, ((i * 7919) % 1000) as f64 / 1000.0))
            .collect();
        let n = round_trip(&s);
        assert!(n < 1024 * 11 / 8 + 64, "{n} bytes");
    }

    /// The first packed encoding (`ENC_PACKED`), as vigil wrote it before `ENC_PACKED2`.
    fn encode_packed1(samples: &[(i64, f64)]) -> Vec<u8> {
        let mut mantissas = Vec::new();
        let exp = decimals(samples, &mut mantissas).unwrap();
        let mut out = vec![ENC_PACKED];
        put_uvarint(&mut out, samples.len() as u64);
        put_varint(&mut out, samples[0].0);
        put_varint(&mut out, exp as i64);
        out.push(VALUES_DELTA);
        put_varint(&mut out, mantissas[0]);
        pack(&deltas(samples.iter().map(|s| s.0)), &mut out);
        pack(&deltas(mantissas.iter().copied()), &mut out);
        out
    }

    #[test]
    fn chunks_of_the_first_packed_encoding_are_read() {
        let s: Vec<(i64, f64)> = (0..700i64)
            .map(|i| {
                (
                    1_700_000_000_000 + i * 15_000 + i % 3,
                    (i * 7) as f64 / 10.0,
                )
            })
            .collect();
        let mut out = Vec::new();
        assert!(decode(&encode_packed1(&s), &mut out, &mut Vec::new()));
        assert_eq!(out, s);
    }

    /// Frames chunks into a chunks file as the block writer does, sharing timestamps.
    fn file_of(chunks: &[Vec<(i64, f64)>]) -> (Vec<u8>, Vec<usize>) {
        let mut file = b"magic!!!".to_vec();
        let mut shared = SharedTimestamps::default();
        let mut offsets = Vec::new();
        for c in chunks {
            let mut payload = Vec::new();
            encode_shared(c, &mut payload, &mut shared, file.len() as u64);
            offsets.push(file.len());
            super::super::write_framed(&mut file, &payload);
        }
        (file, offsets)
    }

    #[test]
    fn chunks_scraped_together_store_their_timestamps_once() {
        // Three series of one target (same jittered timestamps), one of another target.
        let ts = |off: i64| -> Vec<i64> {
            (0..1024i64)
                .map(|i| 1_700_000_000_000 + off + i * 15_000 + (i * 7919) % 6)
                .collect()
        };
        let a = ts(0);
        let b = ts(4_321);
        let series = [
            a.iter()
                .map(|&t| (t, (t % 1000) as f64))
                .collect::<Vec<_>>(),
            a.iter().map(|&t| (t, 0.5)).collect(),
            a.iter()
                .enumerate()
                .map(|(i, &t)| (t, i as f64 * 3.0))
                .collect(),
            b.iter().map(|&t| (t, 1.0)).collect(),
        ];
        let (file, offsets) = file_of(&series);
        let mut out = Vec::new();
        for (s, &off) in series.iter().zip(&offsets) {
            assert!(decode_in_file(&file, off, &mut out, &mut Vec::new()));
            assert_eq!(&out, s);
        }
        // The second and third chunks refer to the first: a few bytes of values each.
        assert!(offsets[2] - offsets[1] < 64, "{}", offsets[2] - offsets[1]);
        // Jitter of 0..5 ms against a 15 s step: 3 bits a timestamp in the first.
        assert!(offsets[1] - offsets[0] < 1024 * 3 / 8 + 1024 * 10 / 8 + 120);
        // Without its file a sharing chunk cannot be read; a reference forward is corrupt.
        let chunk = super::super::read_framed(&file, offsets[1]).unwrap();
        assert!(!decode(chunk, &mut out, &mut Vec::new()));
        assert!(!decode_with(
            chunk,
            Some(&InFile {
                file: &file,
                own: offsets[0]
            }),
            &mut out,
            &mut Vec::new()
        ));
    }

    #[test]
    fn a_recent_memory_of_columns_forgets_when_full_and_goes_on_sharing() {
        let chunk = |start: i64| -> Vec<(i64, f64)> {
            (0..120i64)
                .map(|i| (start + i * 1000 + (i * 7919) % 13, i as f64))
                .collect()
        };
        let shares = |shared: &mut SharedTimestamps, c: &[(i64, f64)], offset: u64| {
            let mut b = Vec::new();
            encode_shared(c, &mut b, shared, offset);
            b[0] == ENC_PACKED2
                && header2(&mut Dec { b: &b[1..] }).unwrap().flags & FLAG_SHARED_TS != 0
        };
        // Room for about one column: the second distinct one makes it forget the first.
        let mut recent = SharedTimestamps::recent(1);
        assert!(!shares(&mut recent, &chunk(0), 10));
        assert!(shares(&mut recent, &chunk(0), 20), "the same column again");
        assert!(!shares(&mut recent, &chunk(500_000), 30));
        assert!(
            shares(&mut recent, &chunk(500_000), 40),
            "remembered after forgetting"
        );
        assert!(!shares(&mut recent, &chunk(0), 50), "forgotten");
    }

    #[test]
    fn counters_pick_the_delta_of_deltas() {
        // A counter growing at a steady, slowly changing rate.
        let s: Vec<(i64, f64)> = (0..1024i64)
            .map(|i| (i * 15_000, (i * 1000 + i * i / 50) as f64))
            .collect();
        let mut b = Vec::new();
        encode(&s, &mut b);
        assert_eq!(b[0], ENC_PACKED2);
        let mut d = Dec { b: &b[1..] };
        assert_eq!(header2(&mut d).unwrap().flags & MODE_MASK, VALUES_DOD);
        round_trip(&s);
    }

    #[test]
    fn a_counter_reset_is_listed_apart_instead_of_widening_its_mini_block() {
        // A counter at about 40 a scrape that drops to 0 when its process restarts, as every
        // counter of a target does together.
        let s: Vec<(i64, f64)> = (0..1024i64)
            .map(|i| {
                let k = if i < 700 { i + 2_000_000 } else { i - 700 };
                (i * 15_000, (k * 40 + (k * 7919) % 13) as f64)
            })
            .collect();
        let mut b = Vec::new();
        encode(&s, &mut b);
        let mut d = Dec { b: &b[1..] };
        assert_ne!(header2(&mut d).unwrap().flags & FLAG_VALUES_PATCHED, 0);
        assert_eq!(round_trip(&s), b.len());
        // The same counter without the reset takes about as many bytes: the reset costs one
        // listed value, not a mini-block of 64 values in 27 bits.
        let steady: Vec<(i64, f64)> = (0..1024i64)
            .map(|i| (i * 15_000, (i * 40 + (i * 7919) % 13) as f64))
            .collect();
        let plain = round_trip(&steady);
        assert!(
            b.len() <= plain + 16,
            "{} bytes, {plain} without the reset",
            b.len()
        );
    }

    #[test]
    fn a_damaged_list_of_patched_values_yields_no_samples() {
        let s: Vec<(i64, f64)> = (0..300i64)
            .map(|i| (i * 1000, if i == 150 { 1e6 } else { (i % 7) as f64 }))
            .collect();
        let mut b = Vec::new();
        encode(&s, &mut b);
        let mut d = Dec { b: &b[1..] };
        assert_ne!(header2(&mut d).unwrap().flags & FLAG_VALUES_PATCHED, 0);
        // Every truncation, and every byte changed, decodes to an error or to samples: never a
        // panic, and a truncated chunk never reads as whole.
        for cut in 1..b.len() {
            assert!(!decode(&b[..cut], &mut Vec::new(), &mut Vec::new()));
        }
        for i in 1..b.len() {
            for x in [0x00, 0x7f, 0x80, 0xff] {
                let mut c = b.clone();
                c[i] = x;
                decode(&c, &mut Vec::new(), &mut Vec::new());
            }
        }
    }

    #[test]
    fn corrupt_packed_chunks_yield_no_samples() {
        let s: Vec<(i64, f64)> = (0..300i64).map(|i| (i * 1000, i as f64)).collect();
        let mut b = Vec::new();
        encode(&s, &mut b);
        assert_eq!(b[0], ENC_PACKED2);
        let mut out = Vec::new();
        for cut in [b.len() - 1, b.len() / 2, 3] {
            assert!(!decode(&b[..cut], &mut out, &mut Vec::new()));
            assert!(out.is_empty());
        }
        let mut long = b.clone();
        long.push(0);
        assert!(!decode(&long, &mut out, &mut Vec::new()), "trailing bytes");
    }

    #[test]
    fn special_values_fall_back_to_xor() {
        round_trip(&[(1, f64::NAN), (2, -0.0), (3, f64::INFINITY), (4, 1.0)]);
        round_trip(&[(1, 1.0 / 3.0), (2, 2.0 / 3.0)]);
        round_trip(&[]);
    }

    #[test]
    fn a_few_odd_values_stay_in_a_packed_chunk() {
        // A gauge printing -0 now and then, and a staleness marker at the end.
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let mut s: Vec<(i64, f64)> = (0..200i64)
            .map(|i| {
                (
                    i * 1000,
                    if i % 50 == 7 {
                        -0.0
                    } else {
                        (i % 9) as f64 / 10.0
                    },
                )
            })
            .collect();
        s.push((200_000, stale));
        let mut b = Vec::new();
        encode(&s, &mut b);
        assert_eq!(b[0], ENC_PACKED2);
        assert!(b.len() < 201 * 6 / 8 + 100, "{} bytes", b.len());
        round_trip(&s);
        // Too many: XOR.
        let noisy: Vec<(i64, f64)> = (0..64i64).map(|i| (i, i as f64 / 3.0)).collect();
        b.clear();
        encode(&noisy, &mut b);
        assert_eq!(b[0], ENC_XOR);
        round_trip(&noisy);
    }

    #[test]
    fn a_mantissa_next_to_the_rounded_product_is_found() {
        assert_eq!(exact_at(-318608.0778, -10), Some(-3_186_080_778_000_000));
    }

    proptest! {
        /// The cut's fast path (`exact_at` at the previous value's exponent) gives the
        /// mantissa printing gives, scaled to that exponent, or nothing.
        #[test]
        fn exact_at_agrees_with_printing(m in -(1i64 << 40)..(1i64 << 40), k in 0u32..9, e in -12i32..4) {
            let v = m as f64 / 10f64.powi(k as i32);
            let mut buf = String::new();
            let printed = to_decimal(v, &mut buf);
            match exact_at(v, e) {
                Some(got) => {
                    let (pm, pe) = printed.expect("a value exact at some exponent prints as a decimal");
                    prop_assert!(pe >= e || v == 0.0, "{v}: exact at {e}, printed at {pe}");
                    if v != 0.0 {
                        prop_assert_eq!(Some(got), 10i64.checked_pow((pe - e) as u32).and_then(|p| pm.checked_mul(p)));
                    }
                }
                None => {
                    if let Some((pm, pe)) = printed && pe >= e && v != 0.0 {
                        let scaled = 10i64.checked_pow((pe - e) as u32).and_then(|p| pm.checked_mul(p));
                        prop_assert!(scaled.is_none_or(|s| s.unsigned_abs() >= 1 << 52 || from_decimal(s, e).to_bits() != v.to_bits()), "{v} at {e}: missed {scaled:?}");
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn any_samples_round_trip(
            start in any::<i64>(),
            s in proptest::collection::vec((0i64..1 << 40, prop_oneof![
                any::<u64>().prop_map(f64::from_bits),
                (-1_000_000i64..1_000_000).prop_map(|x| x as f64 / 1000.0),
                (0u32..100_000).prop_map(f64::from),
            ]), 0..300),
        ) {
            let mut t = start;
            let s: Vec<(i64, f64)> = s.into_iter().map(|(d, v)| { t = t.wrapping_add(d); (t, v) }).collect();
            round_trip(&s);
        }

        #[test]
        fn counters_with_resets_and_spikes_round_trip(
            steps in proptest::collection::vec((0i64..100, 0u32..40), 1..1100),
        ) {
            // Increments of a counter; about one step in forty resets it or spikes.
            let mut v = 1_000_000i64;
            let s: Vec<(i64, f64)> = steps.iter().enumerate().map(|(i, &(d, odd))| {
                v = match odd {
                    0 => 0,
                    1 => v + 1_000_000_000,
                    _ => v + d,
                };
                (i as i64 * 15_000, v as f64 / 1000.0)
            }).collect();
            round_trip(&s);
        }

        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut out = Vec::new();
            let _ = decode(&b, &mut out, &mut Vec::new());
        }

        #[test]
        fn garbage_files_never_panic(
            b in proptest::collection::vec(any::<u8>(), 0..400),
            at in 0usize..400,
        ) {
            let mut out = Vec::new();
            let _ = decode_in_file(&b, at, &mut out, &mut Vec::new());
        }

        #[test]
        fn files_of_chunks_sharing_timestamps_round_trip(
            n in 1usize..300,
            jitter in proptest::collection::vec(0i64..7, 300),
            kinds in proptest::collection::vec(0u8..4, 1..8),
        ) {
            let ts: Vec<i64> = (0..n).map(|i| 1_000 + i as i64 * 1_000 + jitter[i]).collect();
            let chunks: Vec<Vec<(i64, f64)>> = kinds
                .iter()
                .enumerate()
                .map(|(k, kind)| {
                    ts.iter()
                        .enumerate()
                        .map(|(i, &t)| {
                            let v = match kind {
                                0 => i as f64 * 10.0,
                                1 => ((i * 7919 + k) % 1000) as f64 / 100.0,
                                2 => 1.0 / 3.0 + i as f64,
                                _ => -((i * i) as f64),
                            };
                            // Every third series starts a scrape later: other timestamps.
                            (if k % 3 == 2 { t + 1 } else { t }, v)
                        })
                        .collect()
                })
                .collect();
            let (file, offsets) = file_of(&chunks);
            let mut out = Vec::new();
            for (c, &off) in chunks.iter().zip(&offsets) {
                prop_assert!(decode_in_file(&file, off, &mut out, &mut Vec::new()));
                let got: Vec<(i64, u64)> = out.iter().map(|(t, v)| (*t, v.to_bits())).collect();
                let want: Vec<(i64, u64)> = c.iter().map(|(t, v)| (*t, v.to_bits())).collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}
