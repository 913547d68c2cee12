//! The open head chunk: the one chunk per series that still takes appends, kept in memory.
//!
//! Every series holds one, so its size per sample is most of the head's memory at steady
//! state (closed chunks go to `chunks_head/`). Gorilla's XOR of float bits costs about 5 bytes
//! a sample on scraped values printed with a few decimals (`0.8731`, `1234.125000`): their
//! binary fractions share few bits from one sample to the next. The same values as decimal
//! mantissas over one exponent per chunk (`8731 × 10⁻⁴`) change by small integers, which
//! this encoding stores in a few bits, predicted from the previous value or, for counters,
//! from the previous step. Values without an exact decimal (staleness markers, `-0.0`, computed
//! floats) are stored as their bits, so every value reads back bit for bit.
//!
//! Layout (`docs/format/chunks.md`, "Open head chunk"): a 3-byte header (sample count `u16`
//! little-endian, decimal exponent `i8`), then a bit stream, most significant bit first:
//! - sample 0: its timestamp in 64 bits;
//! - later samples: the timestamp's delta of delta (zigzag), `0` when 0, else `10` + 8 bits,
//!   `110` + 16, `1110` + 32, `1111` + 64;
//! - every value: the difference (zigzag) between its mantissa and the prediction, `0` when 0,
//!   else `10` + 6 bits, `110` + 13, `1110` + 20, `11110` + 32, `111110` + 64; `111111` + 64
//!   bits is a value stored as its float bits (the mantissa state does not change). The
//!   prediction is the previous mantissa plus the previous step when that step would have
//!   predicted the previous value better than repeating the value before it, else the previous
//!   mantissa: the writer and the reader follow the same rule, so it costs no bit.
//!
//! When a value needs more decimals than the chunk's exponent gives, the chunk is written again
//! with the finer exponent (at most a few times per chunk, each over at most 120 samples).

use super::dense::{from_decimal, mantissa_at, to_decimal};
use super::xor::{BitReader, BitWriter};

const HEADER: usize = 3;
/// Mantissas stay below 2^53, so that they and the values they make are exact.
const MAX_MANTISSA: i64 = 1 << 53;
/// Exponents with an exact power of ten on both sides of the decimal point.
const MIN_EXP: i32 = -22;
const MAX_EXP: i32 = 22;

const TS_BUCKETS: [(u64, u8, u8); 3] = [(0b10, 2, 8), (0b110, 3, 16), (0b1110, 4, 32)];
const V_BUCKETS: [(u64, u8, u8); 5] = [
    (0b10, 2, 6),
    (0b110, 3, 13),
    (0b1110, 4, 20),
    (0b11110, 5, 32),
    (0b111110, 6, 64),
];
const V_RAW: (u64, u8) = (0b111111, 6);

fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// The predictor's state, shared by writer and reader.
#[derive(Debug, Clone, Copy, Default)]
struct Pred {
    t: i64,
    dt: i64,
    m: i64,
    dm: i64,
    /// Whether the next value is predicted as `m + dm` (else `m`).
    linear: bool,
}

impl Pred {
    fn predict(&self) -> i64 {
        if self.linear {
            self.m.wrapping_add(self.dm)
        } else {
            self.m
        }
    }

    /// Moves on to mantissa `m`.
    fn take(&mut self, m: i64) {
        let by_step = m.wrapping_sub(self.m.wrapping_add(self.dm)).unsigned_abs();
        let by_value = m.wrapping_sub(self.m).unsigned_abs();
        self.linear = by_step < by_value;
        self.dm = m.wrapping_sub(self.m);
        self.m = m;
    }
}

/// The open chunk of a series. [`OpenChunk::bytes`] is a valid chunk at any moment.
#[derive(Debug, Clone)]
pub struct OpenChunk {
    w: BitWriter,
    num: u16,
    e: i8,
    p: Pred,
}

impl Default for OpenChunk {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl OpenChunk {
    /// An empty chunk whose buffer is pre-sized for `bytes`.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(HEADER));
        buf.extend_from_slice(&[0; HEADER]);
        OpenChunk {
            w: BitWriter::resume(buf, 0),
            num: 0,
            e: 0,
            p: Pred::default(),
        }
    }

    pub fn num_samples(&self) -> u16 {
        self.num
    }

    /// The chunk as it stands.
    pub fn bytes(&self) -> &[u8] {
        &self.w.buf
    }

    /// Empties the chunk (after a cut). The next chunk's buffer starts at half the size of
    /// this one and grows by quarters: keeping the whole buffer would hold a full chunk's
    /// bytes for every series while on average half of it is used.
    pub fn reset(&mut self) {
        *self = OpenChunk::with_capacity(self.w.buf.len() / 2);
    }

    fn set_exp(&mut self, e: i32) {
        self.e = e as i8;
        self.w.buf[2] = self.e as u8;
    }

    /// Appends a sample; `t` must be after the last one (the caller checks).
    pub fn append(&mut self, t: i64, v: f64) {
        if self.num == 0 {
            self.set_exp(decimal(v).map_or(0, |(_, e)| e));
        }
        self.push(t, v, true);
    }

    /// Appends at the chunk's exponent; with `rescale`, a value that needs a finer one has the
    /// chunk written again with it first, if every mantissa so far still fits.
    fn push(&mut self, t: i64, v: f64, rescale: bool) {
        let m = match self.mantissa(v) {
            Some(m) => Some(m),
            None if rescale && self.num > 0 => match decimal(v) {
                Some((_, e)) if e < self.e as i32 && self.rescale(e) => self.mantissa(v),
                _ => None,
            },
            None => None,
        };
        if self.num == 0 {
            self.w.write_bits(t as u64, 64);
        } else {
            let dt = t.wrapping_sub(self.p.t);
            let u = zigzag(dt.wrapping_sub(self.p.dt));
            put(&mut self.w, u, &TS_BUCKETS, (0b1111, 4));
            self.p.dt = dt;
        }
        self.p.t = t;
        match m {
            Some(m) => {
                let u = zigzag(m.wrapping_sub(self.p.predict()));
                put(&mut self.w, u, &V_BUCKETS, (0, 0));
                self.p.take(m);
            }
            None => {
                self.w.write_bits(V_RAW.0, V_RAW.1);
                self.w.write_bits(v.to_bits(), 64);
            }
        }
        self.num += 1;
        self.w.buf[..2].copy_from_slice(&self.num.to_le_bytes());
    }

    /// `v`'s mantissa at the chunk's exponent, when it is exact there.
    #[inline]
    fn mantissa(&self, v: f64) -> Option<i64> {
        mantissa_at(v, self.e as i32, MAX_MANTISSA)
    }

    /// Writes the chunk again over the finer exponent `e`; false (and unchanged) when a value
    /// that has a mantissa now would have none there (it would pass 2^53).
    fn rescale(&mut self, e: i32) -> bool {
        if e < MIN_EXP {
            return false;
        }
        let (mut samples, mut raw) = (Vec::with_capacity(self.num as usize), Vec::new());
        if !decode_with(&self.w.buf, &mut samples, Some(&mut raw)) {
            return false;
        }
        let mut fresh = OpenChunk::with_capacity(self.w.buf.capacity());
        fresh.set_exp(e);
        if samples
            .iter()
            .zip(&raw)
            .any(|(s, &raw)| !raw && fresh.mantissa(s.1).is_none())
        {
            return false;
        }
        for (t, v) in samples {
            fresh.push(t, v, false);
        }
        *self = fresh;
        true
    }

    /// Reads a chunk written by this type back into an appender. The bytes are kept as they
    /// are; decoding them once gives the writer's state (predictor, bit position), so a head
    /// snapshot's open chunks load without being encoded again (that was half of a
    /// snapshot's load time).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut samples = Vec::new();
        let (p, bits) = decode_state(bytes, &mut samples, None)?;
        let used = HEADER + bits.div_ceil(8);
        let mut buf = Vec::with_capacity(used + used / 8);
        buf.extend_from_slice(bytes.get(..used)?);
        let free = ((8 - bits % 8) % 8) as u8;
        if let Some(last) = buf.last_mut().filter(|_| free > 0) {
            // The writer ORs the next bits into the unused ones: they must be zero.
            *last &= !((1u8 << free) - 1);
        }
        Some(OpenChunk {
            w: BitWriter::resume(buf, free),
            num: u16::try_from(samples.len()).ok()?,
            e: bytes[2] as i8,
            p,
        })
    }

    /// An appender holding the samples of an XOR chunk (snapshots written before this
    /// encoding hold open chunks so).
    pub fn from_xor(xor: &[u8]) -> Option<Self> {
        let mut it = super::XorIter::new(xor);
        let mut c = OpenChunk::with_capacity(xor.len() / 2 + 16);
        for (t, v) in it.by_ref() {
            c.append(t, v);
        }
        (!it.err).then_some(c)
    }

    /// The chunk's samples as an XOR chunk (for a closed chunk kept in memory).
    pub fn to_xor(&self) -> Box<[u8]> {
        let mut samples = Vec::with_capacity(self.num as usize);
        decode(&self.w.buf, &mut samples);
        let mut x = super::XorAppender::with_capacity(samples.len() * 2 + 16);
        for (t, v) in samples {
            x.append(t, v);
        }
        Box::from(x.bytes())
    }

    /// The last sample, if any.
    pub fn last(&self) -> Option<(i64, f64)> {
        let mut samples = Vec::with_capacity(self.num as usize);
        decode(&self.w.buf, &mut samples);
        samples.last().copied()
    }
}

/// `v` as the shortest exact decimal with an exponent in range.
fn decimal(v: f64) -> Option<(i64, i32)> {
    thread_local! {
        static BUF: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    let (m, e) = BUF.with(|b| to_decimal(v, &mut b.borrow_mut()))?;
    if !(MIN_EXP..=MAX_EXP).contains(&e)
        || m.unsigned_abs() >= MAX_MANTISSA as u64
        || from_decimal(m, e).to_bits() != v.to_bits()
    {
        return None;
    }
    Some((m, e))
}

/// Writes `u` with the first bucket it fits, else `escape` + 64 bits (for the value stream,
/// whose last bucket takes 64 bits, `escape` is unused).
#[inline]
fn put(w: &mut BitWriter, u: u64, buckets: &[(u64, u8, u8)], escape: (u64, u8)) {
    if u == 0 {
        w.write_bit(false);
        return;
    }
    for &(prefix, plen, nbits) in buckets {
        if nbits == 64 || u < (1u64 << nbits) {
            w.write_bits(prefix, plen);
            w.write_bits(u, nbits);
            return;
        }
    }
    w.write_bits(escape.0, escape.1);
    w.write_bits(u, 64);
}

/// Decodes a chunk into `out` (cleared first); false when it is corrupt (the samples before
/// the damage are kept).
pub fn decode(bytes: &[u8], out: &mut Vec<(i64, f64)>) -> bool {
    decode_with(bytes, out, None)
}

fn decode_with(bytes: &[u8], out: &mut Vec<(i64, f64)>, raw: Option<&mut Vec<bool>>) -> bool {
    decode_state(bytes, out, raw).is_some()
}

/// Decodes as [`decode`] does; returns the predictor after the last sample and the bits the
/// samples took after the header, which is the state an appender that wrote them ends in.
fn decode_state(
    bytes: &[u8],
    out: &mut Vec<(i64, f64)>,
    mut raw: Option<&mut Vec<bool>>,
) -> Option<(Pred, usize)> {
    out.clear();
    let h = bytes.get(..HEADER)?;
    let n = u16::from_le_bytes([h[0], h[1]]) as usize;
    let e = h[2] as i8 as i32;
    if !(MIN_EXP..=MAX_EXP).contains(&e) {
        return None;
    }
    out.reserve(n);
    let mut r = BitReader {
        data: &bytes[HEADER..],
        pos: 0,
    };
    let mut p = Pred::default();
    for i in 0..n {
        let t = if i == 0 {
            r.read_bits(64)? as i64
        } else {
            let u = get(&mut r, &TS_BUCKETS, 4)?;
            p.dt = p.dt.wrapping_add(unzigzag(u));
            p.t.wrapping_add(p.dt)
        };
        p.t = t;
        let code = get_value(&mut r)?;
        let v = match code {
            Value::Diff(u) => {
                let m = p.predict().wrapping_add(unzigzag(u));
                p.take(m);
                if m.unsigned_abs() >= MAX_MANTISSA as u64 {
                    return None;
                }
                from_decimal(m, e)
            }
            Value::Raw(bits) => f64::from_bits(bits),
        };
        if let Some(raw) = raw.as_deref_mut() {
            raw.push(matches!(code, Value::Raw(_)));
        }
        out.push((t, v));
    }
    Some((p, r.pos))
}

enum Value {
    Diff(u64),
    Raw(u64),
}

/// Reads a zigzag number written by [`put`] with `buckets` and an escape of `escape_len` ones.
#[inline]
fn get(r: &mut BitReader<'_>, buckets: &[(u64, u8, u8)], escape_len: usize) -> Option<u64> {
    let mut ones = 0;
    while ones < escape_len && r.read_bit()? {
        ones += 1;
    }
    match ones {
        0 => Some(0),
        k if k < escape_len => r.read_bits(buckets[k - 1].2),
        _ => r.read_bits(64),
    }
}

#[inline]
fn get_value(r: &mut BitReader<'_>) -> Option<Value> {
    let mut ones = 0;
    while ones < 6 && r.read_bit()? {
        ones += 1;
    }
    Some(match ones {
        0 => Value::Diff(0),
        6 => Value::Raw(r.read_bits(64)?),
        k => Value::Diff(r.read_bits(V_BUCKETS[k - 1].2)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(samples: &[(i64, f64)]) -> usize {
        let mut c = OpenChunk::default();
        for (i, &(t, v)) in samples.iter().enumerate() {
            c.append(t, v);
            // Valid at every moment.
            let mut got = Vec::new();
            assert!(decode(c.bytes(), &mut got));
            assert_eq!(got.len(), i + 1);
        }
        let mut got = Vec::new();
        assert!(decode(c.bytes(), &mut got));
        assert_eq!(got.len(), samples.len());
        for (a, b) in got.iter().zip(samples) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.1.to_bits(), b.1.to_bits(), "{} vs {}", a.1, b.1);
        }
        // Resuming from the bytes continues the same stream: the state taken from the bytes
        // is the writer's, checked by appending the same samples to both.
        let mut again = OpenChunk::from_bytes(c.bytes()).unwrap();
        assert_eq!(again.bytes(), c.bytes());
        assert_eq!(again.num_samples() as usize, samples.len());
        if let Some(&(t, v)) = samples.last() {
            let mut c2 = c.clone();
            for (i, dv) in [(1, 0.5), (2, 1.25), (3, 1e300), (5, -7.0)] {
                c2.append(t + i * 1000, v + dv);
                again.append(t + i * 1000, v + dv);
                assert_eq!(again.bytes(), c2.bytes());
            }
        }
        assert_eq!(
            c.last().map(|(t, v)| (t, v.to_bits())),
            samples.last().map(|&(t, v)| (t, v.to_bits()))
        );
        c.bytes().len()
    }

    #[test]
    fn scraped_decimals_take_a_few_bits() {
        // 120 samples of a 4-decimal gauge moving by a few units of its last decimal, and a
        // counter growing by about 100 a scrape, both at a regular 15 s.
        let gauge: Vec<(i64, f64)> = (0..120)
            .map(|i| {
                // As scraped: parsed from the text a target printed.
                let v = format!("{:.4}", 0.9 + ((i * 7) % 11) as f64 / 10_000.0);
                (1_700_000_000_000 + i * 15_000, v.parse().unwrap())
            })
            .collect();
        let n = round_trip(&gauge);
        assert!(n < 120 * 2, "{n} bytes for 120 gauge samples");
        let counter: Vec<(i64, f64)> = (0..120)
            .map(|i| {
                (
                    1_700_000_000_000 + i * 15_000,
                    (i * 100 + (i * 13) % 7) as f64,
                )
            })
            .collect();
        let n = round_trip(&counter);
        assert!(n < 120 * 3 / 2, "{n} bytes for 120 counter samples");
    }

    #[test]
    fn finer_decimals_later_rescale_the_chunk() {
        round_trip(&[(1, 5.0), (2, 5.5), (3, 5.25), (4, 0.001), (5, 7.0)]);
        round_trip(&[(1, 0.0), (2, 0.1), (3, 1e-20), (4, 3.0)]);
        round_trip(&[(1, 1e300), (2, 1.5), (3, 2.5)]);
    }

    #[test]
    fn special_values_keep_their_bits() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        round_trip(&[
            (1, f64::NAN),
            (2, stale),
            (3, -0.0),
            (4, f64::INFINITY),
            (5, 0.1 + 0.2),
            (6, 1.0),
            (7, f64::MIN_POSITIVE),
            (8, -1.5),
            (9, stale),
        ]);
    }

    #[test]
    fn xor_chunks_convert_both_ways() {
        let s: Vec<(i64, f64)> = (0..50).map(|i| (i * 1000, i as f64 * 0.25)).collect();
        let mut x = super::super::XorAppender::new();
        for &(t, v) in &s {
            x.append(t, v);
        }
        let c = OpenChunk::from_xor(x.bytes()).unwrap();
        let mut got = Vec::new();
        assert!(decode(c.bytes(), &mut got));
        assert_eq!(got, s);
        let back: Vec<(i64, f64)> = super::super::XorIter::new(&c.to_xor()).collect();
        assert_eq!(back, s);
    }

    proptest! {
        #[test]
        fn any_samples_round_trip(
            start in any::<i64>(),
            steps in proptest::collection::vec(prop_oneof![Just(15_000i64), 14_990i64..15_010, any::<i32>().prop_map(|d| d as i64)], 0..130),
            vals in proptest::collection::vec(prop_oneof![
                any::<f64>(),
                (-1_000_000i64..1_000_000).prop_map(|m| m as f64 / 10_000.0),
                (0i64..1_000_000_000).prop_map(|m| m as f64),
                Just(f64::from_bits(0x7ff0_0000_0000_0002)),
            ], 130),
        ) {
            let mut t = start;
            let samples: Vec<(i64, f64)> = steps
                .iter()
                .zip(&vals)
                .map(|(d, &v)| {
                    t = t.wrapping_add(*d);
                    (t, v)
                })
                .collect();
            round_trip(&samples);
        }

        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut out = Vec::new();
            let _ = decode(&b, &mut out);
            if let Some(mut c) = OpenChunk::from_bytes(&b) {
                // A chunk taken from any bytes takes appends and decodes to what it held
                // then the new samples.
                let mut held = Vec::new();
                prop_assert!(decode(c.bytes(), &mut held));
                let t = held.last().map_or(0, |s| s.0.saturating_add(1));
                c.append(t, 0.5);
                prop_assert!(decode(c.bytes(), &mut out));
                prop_assert_eq!(out.len(), held.len() + 1);
                prop_assert_eq!(out.last().map(|s| (s.0, s.1.to_bits())), Some((t, 0.5f64.to_bits())));
            }
        }
    }
}
