//! Frame-of-reference bit packing of an integer column (format: `docs/format/chunks.md`).
//!
//! A column is cut into mini-blocks of [`MINI_BLOCK`] values. Each stores its minimum and the
//! bit width of its largest offset from that minimum, then every offset in exactly that many
//! bits. Scrape data makes the offsets small and alike (timestamp deltas vary by a few ms of
//! jitter, counter deltas by a few per cent), so a value costs a few bits, about what an
//! entropy coder gets from the same deltas, and decoding is a shift and a mask per value with
//! no table to build: a query decodes every chunk it touches, and on block chunks of 1,024
//! samples inflating DEFLATE streams and building their Huffman tables was most of a long
//! query's time. A mini-block bounds what one outlier (a counter reset, a scrape gap) costs.

use crate::encoding::{Dec, put_uvarint, put_varint, uvarint_len, varint_len};

/// Values per mini-block of the first packed encoding (`ENC_PACKED`).
pub const MINI_BLOCK: usize = 128;

/// Values per mini-block of the second (`ENC_PACKED2`): a smaller block adapts its width to
/// local noise, which on scrape data outweighs the extra headers (4 % smaller columns on the
/// storage benchmark's data).
pub const MINI_BLOCK2: usize = 64;

/// Appends `xs` in mini-blocks of [`MINI_BLOCK`] values.
pub fn pack(xs: &[i64], out: &mut Vec<u8>) {
    pack_blocks(xs, MINI_BLOCK, out)
}

/// Appends `xs`: per mini-block of `mb` values, `varint(min)`, `u8` width, then each
/// `x - min` in `width` bits, least significant bit first, padded to a byte.
pub fn pack_blocks(xs: &[i64], mb: usize, out: &mut Vec<u8>) {
    for block in xs.chunks(mb) {
        let (min, width) = frame(block);
        put_varint(out, min);
        out.push(width as u8);
        if width == 0 {
            continue;
        }
        let (mut acc, mut bits) = (0u128, 0u32);
        for &x in block {
            acc |= (x.wrapping_sub(min) as u64 as u128) << bits;
            bits += width;
            while bits >= 8 {
                out.push(acc as u8);
                acc >>= 8;
                bits -= 8;
            }
        }
        if bits > 0 {
            out.push(acc as u8);
        }
    }
}

/// A mini-block's minimum and the bit width of its largest offset from it.
fn frame(block: &[i64]) -> (i64, u32) {
    let min = block.iter().copied().min().unwrap_or(0);
    let max = block.iter().copied().max().unwrap_or(0);
    // `max - min` of two i64 always fits a u64; the arithmetic wraps in both directions.
    (min, 64 - (max.wrapping_sub(min) as u64).leading_zeros())
}

/// The bytes [`pack_blocks`] appends for `xs`, without writing them: encoders compare the
/// sizes of their candidate columns and write only the smallest (a head chunk cut runs them
/// all for every 120 samples).
pub fn packed_len(xs: &[i64], mb: usize) -> usize {
    packed_size(xs, mb).0
}

/// [`packed_len`], and whether the mini-blocks differ in width by more than two bits: only
/// then can listing outliers apart pay, so encoders try [`plan_patched`] only then.
pub fn packed_size(xs: &[i64], mb: usize) -> (usize, bool) {
    let (mut len, mut lo, mut hi) = (0, u32::MAX, 0);
    for block in xs.chunks(mb) {
        let (min, width) = frame(block);
        len += varint_len(min) + 1 + (block.len() * width as usize).div_ceil(8);
        lo = lo.min(width);
        hi = hi.max(width);
    }
    (len, hi > lo.saturating_add(2))
}

/// Which values [`pack_patched`] lists apart: those whose distance from `median` has more
/// than `k` bits (none when `k` is `None`).
#[derive(Clone, Copy)]
pub struct Patch {
    median: i64,
    k: Option<u32>,
    /// The bytes the patched column takes.
    pub len: usize,
}

impl Patch {
    fn outlier(&self, x: i64) -> bool {
        self.k.is_some_and(|k| bits_from(self.median, x) > k)
    }
}

fn bits_from(median: i64, x: i64) -> u32 {
    64 - x.wrapping_sub(median).unsigned_abs().leading_zeros()
}

/// Appends `xs` with its outliers listed apart, so that one late scrape or the irregular first
/// scrapes of a series do not widen every value of their mini-block: `count: uvarint`, then
/// per outlier `index step: uvarint │ value: varint` (the first index counts from 0, later
/// steps are at least 1), then [`pack_blocks`] of `xs` with each outlier replaced by the
/// column's median. The outliers are the values at least `2^k` from the median for the `k`
/// that makes the whole smallest (none when that is smallest): see [`plan_patched`].
pub fn pack_patched(xs: &[i64], mb: usize, out: &mut Vec<u8>) {
    write_patched(xs, mb, plan_patched(xs, mb), out)
}

/// Chooses the outliers of [`pack_patched`] and measures the result, without writing it.
pub fn plan_patched(xs: &[i64], mb: usize) -> Patch {
    let mut sorted = xs.to_vec();
    sorted.sort_unstable();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
    // A value is an outlier for `k` when its distance from the median has more than `k`
    // bits; only the distances' bit lengths present are worth trying (cut at a chunk's cut,
    // so this runs once per 120 samples in the head).
    let mut ks: Vec<u32> = xs.iter().map(|&x| bits_from(median, x)).collect();
    ks.sort_unstable();
    ks.dedup();
    let mut best: Option<Patch> = None;
    let mut patched = Vec::with_capacity(xs.len());
    for &k in &ks {
        let plan = Patch {
            median,
            k: Some(k),
            len: 0,
        };
        let count = xs.iter().filter(|&&x| plan.outlier(x)).count();
        if count > xs.len() / 4 {
            continue;
        }
        let mut len = uvarint_len(count as u64);
        let mut prev = 0;
        patched.clear();
        for (i, &x) in xs.iter().enumerate() {
            if plan.outlier(x) {
                len += uvarint_len((i - prev) as u64) + varint_len(x);
                prev = i;
                patched.push(median);
            } else {
                patched.push(x);
            }
        }
        len += packed_len(&patched, mb);
        if best.is_none_or(|b| len < b.len) {
            best = Some(Patch { len, ..plan });
        }
    }
    // No values: no outliers and an empty column.
    best.unwrap_or(Patch {
        median,
        k: None,
        len: uvarint_len(0) + packed_len(xs, mb),
    })
}

/// Appends `xs` as [`plan_patched`] chose.
pub fn write_patched(xs: &[i64], mb: usize, plan: Patch, out: &mut Vec<u8>) {
    let count = xs.iter().filter(|&&x| plan.outlier(x)).count();
    put_uvarint(out, count as u64);
    let mut prev = 0;
    let mut patched = Vec::with_capacity(xs.len());
    for (i, &x) in xs.iter().enumerate() {
        if plan.outlier(x) {
            put_uvarint(out, (i - prev) as u64);
            put_varint(out, x);
            prev = i;
            patched.push(plan.median);
        } else {
            patched.push(x);
        }
    }
    pack_blocks(&patched, mb, out);
}

/// Reads `n` values written by [`pack_patched`], handing each to `f` with its index, in
/// order. `None` when the input is short or malformed: more outliers than values, an index
/// past the column or not after the previous one.
pub fn unpack_patched(
    d: &mut Dec<'_>,
    n: usize,
    mb: usize,
    mut f: impl FnMut(usize, i64),
) -> Option<()> {
    let count = usize::try_from(d.uvarint()?).ok()?;
    if count > n {
        return None;
    }
    // The list is checked whole first, then read again beside the column: a query decodes
    // thousands of chunks, and this needs no allocation.
    let list = d.b;
    let mut at = 0usize;
    for j in 0..count {
        let step = usize::try_from(d.uvarint()?).ok()?;
        if j > 0 && step == 0 {
            return None;
        }
        at = at.checked_add(step)?;
        if at >= n {
            return None;
        }
        d.varint()?;
    }
    let mut list = Dec {
        b: &list[..list.len() - d.b.len()],
    };
    // Checked above: every entry reads, and the indexes stay below `n` (`usize::MAX` when
    // the list is done).
    let mut next = (usize::MAX, 0);
    advance(&mut list, &mut next, 0);
    unpack_blocks(d, n, mb, |i, x| {
        let v = if i == next.0 {
            let v = next.1;
            advance(&mut list, &mut next, i);
            v
        } else {
            x
        };
        f(i, v)
    })
}

/// Reads the next entry of a checked outlier list, after the one at `at`.
#[cold]
#[inline(never)]
fn advance(list: &mut Dec<'_>, next: &mut (usize, i64), at: usize) {
    *next = match (list.uvarint(), list.varint()) {
        (Some(step), Some(v)) => (at + step as usize, v),
        _ => (usize::MAX, 0),
    };
}

/// Reads `n` values written by [`pack`], handing each to `f` with its index, in order.
/// `None` when the input is short or malformed (`f` has then seen the values before).
#[inline]
pub fn unpack(d: &mut Dec<'_>, n: usize, f: impl FnMut(usize, i64)) -> Option<()> {
    unpack_blocks(d, n, MINI_BLOCK, f)
}

/// Reads `n` values written by [`pack_blocks`] with mini-blocks of `mb` (at most
/// [`MINI_BLOCK`]) values.
#[inline]
pub fn unpack_blocks(
    d: &mut Dec<'_>,
    n: usize,
    mb: usize,
    mut f: impl FnMut(usize, i64),
) -> Option<()> {
    debug_assert!(mb <= MINI_BLOCK);
    // Packed bytes are copied here with zeroed padding, so every value is one unaligned load.
    let mut buf = [0u8; MINI_BLOCK * 8 + 16];
    let mut done = 0;
    while done < n {
        let len = mb.min(n - done);
        let min = d.varint()?;
        let (&width, rest) = d.b.split_first()?;
        let width = width as usize;
        if width > 64 {
            return None;
        }
        let nbytes = (len * width).div_ceil(8);
        let bytes = rest.get(..nbytes)?;
        d.b = &rest[nbytes..];
        if width == 0 {
            (done..done + len).for_each(|i| f(i, min));
        } else if width <= 56 {
            // An offset starts at most 7 bits into its first byte: 8 bytes hold it.
            buf[..nbytes].copy_from_slice(bytes);
            buf[nbytes..nbytes + 8].fill(0);
            let mask = (1u64 << width) - 1;
            for i in 0..len {
                let bit = i * width;
                let word = u64::from_le_bytes(buf[bit / 8..bit / 8 + 8].try_into().ok()?);
                f(
                    done + i,
                    min.wrapping_add(((word >> (bit % 8)) & mask) as i64),
                );
            }
        } else {
            buf[..nbytes].copy_from_slice(bytes);
            buf[nbytes..nbytes + 16].fill(0);
            let mask = u64::MAX >> (64 - width);
            for i in 0..len {
                let bit = i * width;
                let word = u128::from_le_bytes(buf[bit / 8..bit / 8 + 16].try_into().ok()?);
                f(
                    done + i,
                    min.wrapping_add(((word >> (bit % 8)) as u64 & mask) as i64),
                );
            }
        }
        done += len;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(xs: &[i64]) -> usize {
        let mut b = Vec::new();
        pack(xs, &mut b);
        let mut got = vec![0; xs.len()];
        let mut d = Dec { b: &b };
        unpack(&mut d, xs.len(), |i, x| got[i] = x).unwrap();
        assert!(d.b.is_empty(), "unpack reads exactly what pack wrote");
        assert_eq!(got, xs);
        b.len()
    }

    fn round_trip_patched(xs: &[i64]) -> usize {
        let mut b = Vec::new();
        pack_patched(xs, MINI_BLOCK2, &mut b);
        assert_eq!(
            plan_patched(xs, MINI_BLOCK2).len,
            b.len(),
            "the plan measures what is written"
        );
        for mb in [MINI_BLOCK, MINI_BLOCK2, 7] {
            let mut p = Vec::new();
            pack_blocks(xs, mb, &mut p);
            assert_eq!(
                packed_len(xs, mb),
                p.len(),
                "packed_len measures pack_blocks"
            );
        }
        let mut got = vec![0; xs.len()];
        let mut d = Dec { b: &b };
        unpack_patched(&mut d, xs.len(), MINI_BLOCK2, |i, x| got[i] = x).unwrap();
        assert!(
            d.b.is_empty(),
            "unpack_patched reads exactly what pack_patched wrote"
        );
        assert_eq!(got, xs);
        b.len()
    }

    /// The first scrapes of a series come at irregular times, then every residual is the
    /// same: packed as they are, those few widen their whole mini-block to 11 bits a value
    /// (measured on `chunks_head/` after an ingest run: timestamps were 39 % of its bytes).
    #[test]
    fn outliers_are_listed_apart() {
        let mut residuals = vec![0i64; 119];
        residuals[..4].copy_from_slice(&[493, 775, 53, -221]);
        residuals[60] = 6;
        let plain = {
            let mut b = Vec::new();
            pack_blocks(&residuals, MINI_BLOCK2, &mut b);
            b.len()
        };
        let patched = round_trip_patched(&residuals);
        assert!(patched * 4 < plain, "{patched} bytes against {plain}");
        round_trip_patched(&[]);
        round_trip_patched(&[i64::MIN, i64::MAX, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn small_offsets_take_few_bits() {
        // 15 s scrapes with ±3 ms of jitter: 3 bits per delta plus a 4-byte header per block.
        let deltas: Vec<i64> = (0..1024).map(|i| 14_997 + (i * 5) % 7).collect();
        assert!(round_trip(&deltas) <= 1024 * 3 / 8 + 8 * 4);
        assert_eq!(
            round_trip(&[5; 300]),
            3 * 2,
            "equal values cost only the header"
        );
        round_trip(&[]);
    }

    #[test]
    fn extremes_round_trip() {
        round_trip(&[i64::MIN, i64::MAX, 0, -1, 1]);
        round_trip(&[i64::MAX; 3]);
        let wide: Vec<i64> = (0..300).map(|i| (i as i64) << 57).collect();
        round_trip(&wide);
    }

    proptest! {
        #[test]
        fn patched_columns_round_trip(xs in proptest::collection::vec(
            prop_oneof![4 => -3i64..3, 1 => any::<i64>()], 0..300)) {
            round_trip_patched(&xs);
        }

        #[test]
        fn patched_garbage_never_panics(
            b in proptest::collection::vec(any::<u8>(), 0..200),
            n in 0usize..300,
        ) {
            let _ = unpack_patched(&mut Dec { b: &b }, n, MINI_BLOCK2, |_, x| {
                std::hint::black_box(x);
            });
        }

        #[test]
        fn any_column_round_trips(
            xs in proptest::collection::vec(prop_oneof![
                any::<i64>(),
                -50i64..50,
                (0u32..64).prop_map(|s| 1i64 << s),
            ], 0..600),
        ) {
            round_trip(&xs);
        }

        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300), n in 0usize..2000) {
            let _ = unpack(&mut Dec { b: &b }, n, |_, _| {});
        }
    }
}
