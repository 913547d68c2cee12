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

use super::packed::{pack, unpack};
use super::xor::{XorAppender, XorIter};
use crate::encoding::{Dec, put_uvarint, put_varint};
use std::fmt::Write as _;

/// Encoding byte: a Gorilla XOR chunk follows.
pub const ENC_XOR: u8 = 1;
/// Encoding byte: a dense chunk (deflated varint columns) follows; read, no longer written.
pub const ENC_DENSE: u8 = 2;
/// Encoding byte: a packed chunk (bit-packed columns) follows.
pub const ENC_PACKED: u8 = 3;

/// Packed value column: deltas of the mantissas.
const VALUES_DELTA: u8 = 0;
/// Packed value column: the mantissas themselves (smaller for noisy gauges).
const VALUES_RAW: u8 = 1;
/// The most samples a chunk may claim: a packed column of equal values costs no bits per
/// value, so a corrupt count must not make the decoder allocate without bound.
const MAX_CHUNK_SAMPLES: usize = 1 << 20;

const FLAG_DEFLATE: u8 = 1;
const MAX_EXACT: i64 = 1 << 53;
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The shortest decimal `(mantissa, exponent)` of `v`, when there is one with an exact decoder.
fn to_decimal(v: f64, buf: &mut String) -> Option<(i64, i32)> {
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

fn from_decimal(m: i64, e: i32) -> f64 {
    if e >= 0 {
        m as f64 * POW10[e as usize]
    } else {
        m as f64 / POW10[(-e) as usize]
    }
}

/// Mantissas over one common exponent, if every value converts exactly.
fn decimals(samples: &[(i64, f64)], out: &mut Vec<i64>) -> Option<i32> {
    let mut buf = String::with_capacity(32);
    let mut pairs = Vec::with_capacity(samples.len());
    for &(_, v) in samples {
        pairs.push(to_decimal(v, &mut buf)?);
    }
    let e = pairs.iter().map(|p| p.1).min()?;
    if !(-22..=22).contains(&e) {
        return None;
    }
    out.clear();
    for (&(m, pe), &(_, v)) in pairs.iter().zip(samples) {
        let mut m = m;
        for _ in 0..(pe - e) {
            m = m.checked_mul(10)?;
        }
        if m.abs() >= MAX_EXACT || from_decimal(m, e).to_bits() != v.to_bits() {
            return None;
        }
        out.push(m);
    }
    Some(e)
}

/// Encodes samples (increasing time) as a block chunk: encoding byte, then the chunk.
pub fn encode(samples: &[(i64, f64)], out: &mut Vec<u8>) {
    let mut mantissas = Vec::with_capacity(samples.len());
    let Some(exp) = decimals(samples, &mut mantissas) else {
        out.push(ENC_XOR);
        let mut x = XorAppender::with_capacity(samples.len() * 2 + 16);
        for &(t, v) in samples {
            x.append(t, v);
        }
        out.extend_from_slice(x.bytes());
        return;
    };
    out.push(ENC_PACKED);
    put_uvarint(out, samples.len() as u64);
    let (Some(&(t0, _)), Some(&m0)) = (samples.first(), mantissas.first()) else {
        return;
    };
    put_varint(out, t0);
    put_varint(out, exp as i64);
    let dts = deltas(samples.iter().map(|s| s.0));
    let (mut by_delta, mut raw) = (Vec::new(), Vec::new());
    pack(&deltas(mantissas.iter().copied()), &mut by_delta);
    pack(&mantissas[1..], &mut raw);
    let (mode, values) = if raw.len() < by_delta.len() {
        (VALUES_RAW, raw)
    } else {
        (VALUES_DELTA, by_delta)
    };
    out.push(mode);
    put_varint(out, m0);
    pack(&dts, out);
    out.extend_from_slice(&values);
}

/// Differences of consecutive values (wrapping), one fewer than the values.
fn deltas(xs: impl Iterator<Item = i64>) -> Vec<i64> {
    let mut prev = None;
    xs.filter_map(|x| prev.replace(x).map(|p| x.wrapping_sub(p)))
        .collect()
}

/// Decodes a block chunk into `out` (cleared first); `scratch` is reused for inflating.
/// Returns false when the chunk is corrupt (`out` then holds the samples decoded before).
pub fn decode(chunk: &[u8], out: &mut Vec<(i64, f64)>, scratch: &mut Vec<u8>) -> bool {
    out.clear();
    match chunk.split_first() {
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

    #[test]
    fn corrupt_packed_chunks_yield_no_samples() {
        let s: Vec<(i64, f64)> = (0..300i64).map(|i| (i * 1000, i as f64)).collect();
        let mut b = Vec::new();
        encode(&s, &mut b);
        assert_eq!(b[0], ENC_PACKED);
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
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut out = Vec::new();
            let _ = decode(&b, &mut out, &mut Vec::new());
        }
    }
}
