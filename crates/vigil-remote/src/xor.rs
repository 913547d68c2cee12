//! Prometheus' XOR chunk (`tsdb/chunkenc/xor.go`), byte for byte, for streamed remote read.
//!
//! vigil's own head chunks (`vigil-tsdb`'s `chunk/xor.rs`) use the same Gorilla scheme but
//! zig-zag the second sample's time delta, where Prometheus writes it as a plain uvarint; a
//! remote-read peer decodes Prometheus' layout, so this module re-encodes samples in it.
//!
//! Layout: 2-byte big-endian sample count; first sample: varint (zig-zag) timestamp, 64-bit
//! value; second: uvarint time delta, XOR value; later: delta-of-delta in the buckets
//! `0` / `10`+14 / `110`+17 / `1110`+20 / `1111`+64 bits, XOR value.

#[derive(Default)]
struct BitWriter {
    buf: Vec<u8>,
    free: u8,
}

impl BitWriter {
    fn bit(&mut self, b: bool) {
        if self.free == 0 {
            self.buf.push(0);
            self.free = 8;
        }
        self.free -= 1;
        if b && let Some(last) = self.buf.last_mut() {
            *last |= 1 << self.free;
        }
    }

    fn bits(&mut self, v: u64, n: u8) {
        for i in (0..n).rev() {
            self.bit((v >> i) & 1 == 1);
        }
    }

    fn byte(&mut self, b: u8) {
        self.bits(b as u64, 8);
    }
}

struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    fn bit(&mut self) -> Option<bool> {
        let byte = *self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - self.pos % 8)) & 1 == 1;
        self.pos += 1;
        Some(b)
    }

    fn bits(&mut self, n: u8) -> Option<u64> {
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 1) | self.bit()? as u64;
        }
        Some(v)
    }

    fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.bits(8)?;
            v |= (b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }
}

fn bit_range(x: i64, nbits: u8) -> bool {
    -((1i64 << (nbits - 1)) - 1) <= x && x <= 1i64 << (nbits - 1)
}

/// Builds one chunk. At most `u16::MAX` samples.
pub struct XorEncoder {
    w: BitWriter,
    num: u16,
    t: i64,
    t_delta: u64,
    v: u64,
    leading: u8,
    trailing: u8,
    pub min_t: i64,
}

impl Default for XorEncoder {
    fn default() -> Self {
        XorEncoder {
            w: BitWriter {
                buf: vec![0, 0],
                free: 0,
            },
            num: 0,
            t: 0,
            t_delta: 0,
            v: 0,
            leading: 0xff,
            trailing: 0,
            min_t: 0,
        }
    }
}

impl XorEncoder {
    pub fn num_samples(&self) -> u16 {
        self.num
    }

    /// The last timestamp appended.
    pub fn max_t(&self) -> i64 {
        self.t
    }

    pub fn append(&mut self, t: i64, v: f64) {
        let vb = v.to_bits();
        match self.num {
            0 => {
                let mut tmp = Vec::with_capacity(10);
                crate::codec::put_uvarint(&mut tmp, ((t << 1) ^ (t >> 63)) as u64);
                for b in tmp {
                    self.w.byte(b);
                }
                self.w.bits(vb, 64);
                self.min_t = t;
            }
            1 => {
                let d = t.wrapping_sub(self.t) as u64;
                let mut tmp = Vec::with_capacity(10);
                crate::codec::put_uvarint(&mut tmp, d);
                for b in tmp {
                    self.w.byte(b);
                }
                self.write_v(vb);
                self.t_delta = d;
            }
            _ => {
                let d = t.wrapping_sub(self.t) as u64;
                let dod = d.wrapping_sub(self.t_delta) as i64;
                if dod == 0 {
                    self.w.bit(false);
                } else if bit_range(dod, 14) {
                    self.w.bits(0b10, 2);
                    self.w.bits(dod as u64 & ((1 << 14) - 1), 14);
                } else if bit_range(dod, 17) {
                    self.w.bits(0b110, 3);
                    self.w.bits(dod as u64 & ((1 << 17) - 1), 17);
                } else if bit_range(dod, 20) {
                    self.w.bits(0b1110, 4);
                    self.w.bits(dod as u64 & ((1 << 20) - 1), 20);
                } else {
                    self.w.bits(0b1111, 4);
                    self.w.bits(dod as u64, 64);
                }
                self.write_v(vb);
                self.t_delta = d;
            }
        }
        self.t = t;
        self.v = vb;
        self.num += 1;
        let n = self.num.to_be_bytes();
        self.w.buf[0] = n[0];
        self.w.buf[1] = n[1];
    }

    fn write_v(&mut self, vb: u64) {
        let delta = vb ^ self.v;
        if delta == 0 {
            self.w.bit(false);
            return;
        }
        self.w.bit(true);
        let leading = (delta.leading_zeros() as u8).min(31);
        let trailing = delta.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            self.w.bit(false);
            self.w
                .bits(delta >> self.trailing, 64 - self.leading - self.trailing);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        self.w.bit(true);
        self.w.bits(leading as u64, 5);
        let sig = 64 - leading - trailing;
        self.w.bits((sig & 63) as u64, 6);
        self.w.bits(delta >> trailing, sig);
    }

    pub fn bytes(&self) -> &[u8] {
        &self.w.buf
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.w.buf
    }
}

/// Decodes a whole chunk; `None` if it is malformed.
pub fn decode(chunk: &[u8]) -> Option<Vec<(i64, f64)>> {
    let (head, data) = chunk.split_at_checked(2)?;
    let num = u16::from_be_bytes([head[0], head[1]]);
    let mut r = BitReader { data, pos: 0 };
    let mut out = Vec::with_capacity(num as usize);
    let (mut t, mut t_delta, mut v) = (0i64, 0u64, 0u64);
    let (mut leading, mut trailing) = (0u8, 0u8);
    for i in 0..num {
        match i {
            0 => {
                let z = r.uvarint()?;
                t = ((z >> 1) as i64) ^ -((z & 1) as i64);
                v = r.bits(64)?;
            }
            _ => {
                if i == 1 {
                    t_delta = r.uvarint()?;
                } else {
                    let mut prefix = 0u8;
                    for _ in 0..4 {
                        if !r.bit()? {
                            break;
                        }
                        prefix += 1;
                    }
                    let dod: i64 = match prefix {
                        0 => 0,
                        1..=3 => {
                            let sz = [14u8, 17, 20][prefix as usize - 1];
                            let mut b = r.bits(sz)? as i64;
                            if b > 1 << (sz - 1) {
                                b -= 1 << sz;
                            }
                            b
                        }
                        _ => r.bits(64)? as i64,
                    };
                    t_delta = (t_delta as i64).wrapping_add(dod) as u64;
                }
                t = t.wrapping_add(t_delta as i64);
                if r.bit()? {
                    if r.bit()? {
                        leading = r.bits(5)? as u8;
                        let mut sig = r.bits(6)? as u8;
                        if sig == 0 {
                            sig = 64;
                        }
                        trailing = 64u8.checked_sub(leading)?.checked_sub(sig)?;
                    }
                    let sig = 64 - leading - trailing;
                    v ^= r.bits(sig)? << trailing;
                }
            }
        }
        out.push((t, f64::from_bits(v)));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_bytes_of_a_regular_series() {
        // Three samples 1 s apart, values 1, 1, 2: the second delta is a plain uvarint
        // (1000 = e8 07), not zig-zagged as vigil's head chunks do.
        let mut e = XorEncoder::default();
        e.append(1000, 1.0);
        e.append(2000, 1.0);
        e.append(3000, 2.0);
        let b = e.bytes();
        assert_eq!(&b[..2], &[0, 3]);
        // First timestamp varint(1000) = zigzag 2000 = d0 0f.
        assert_eq!(&b[2..4], &[0xd0, 0x0f]);
        // Value 1.0 = 3ff0000000000000, then delta 1000 as uvarint e8 07.
        assert_eq!(&b[4..12], &1.0f64.to_bits().to_be_bytes());
        assert_eq!(&b[12..14], &[0xe8, 0x07]);
        assert_eq!(
            decode(b).unwrap(),
            vec![(1000, 1.0), (2000, 1.0), (3000, 2.0)]
        );
    }

    proptest! {
        #[test]
        fn round_trip(start in -1_000_000_000_000i64..1_000_000_000_000,
                      steps in proptest::collection::vec((0i64..10_000_000, any::<u64>(), any::<bool>()), 0..200)) {
            let mut e = XorEncoder::default();
            let mut want = Vec::new();
            let mut t = start;
            let mut last = 0u64;
            for (dt, v, same) in steps {
                t += dt;
                let v = if same { last } else { v };
                last = v;
                e.append(t, f64::from_bits(v));
                want.push((t, v));
            }
            let got: Vec<(i64, u64)> = decode(e.bytes()).unwrap().into_iter().map(|(t, v)| (t, v.to_bits())).collect();
            prop_assert_eq!(got, want);
        }
    }
}
