//! Byte-level encodings shared by every on-disk format of the TSDB (WAL records, the head
//! snapshot, chunks, the block index): Go-compatible unsigned varints (LEB128), zigzag signed
//! varints and length-prefixed bytes, and [`Dec`], the bounds-checked cursor that reads them.
//!
//! It sits at the bottom of the crate: `wal`, `chunk`, `block` and `head` use it, it uses
//! nothing of theirs. Every read returns `None` on truncated or overlong input instead of
//! panicking, so a corrupt file is an error, not a crash.

/// Appends `v` as an unsigned varint (Go's `binary.PutUvarint`).
pub fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends `v` as a zigzag signed varint (Go's `binary.PutVarint`).
pub fn put_varint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, zigzag(v));
}

/// Bytes [`put_uvarint`] writes for `v`.
pub fn uvarint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Bytes [`put_varint`] writes for `v`.
pub fn varint_len(v: i64) -> usize {
    uvarint_len(zigzag(v))
}

/// Appends `b` with its length as a varint in front.
pub fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// Zigzag: small magnitudes of either sign become small unsigned numbers.
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// A cursor over a payload.
pub struct Dec<'a> {
    pub b: &'a [u8],
}

impl<'a> Dec<'a> {
    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }

    /// One byte is the common case (chunk columns, small refs): it is inlined, the rest is not.
    #[inline]
    pub fn uvarint(&mut self) -> Option<u64> {
        match self.b.split_first() {
            Some((&byte, rest)) if byte < 0x80 => {
                self.b = rest;
                Some(byte as u64)
            }
            _ => self.uvarint_long(),
        }
    }

    #[inline(never)]
    fn uvarint_long(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for (i, &byte) in self.b.iter().enumerate().take(10) {
            if i == 9 && byte > 1 {
                return None;
            }
            v |= ((byte & 0x7f) as u64) << (7 * i);
            if byte < 0x80 {
                self.b = &self.b[i + 1..];
                return Some(v);
            }
        }
        None
    }

    #[inline]
    pub fn varint(&mut self) -> Option<i64> {
        Some(unzigzag(self.uvarint()?))
    }

    pub fn u64_le(&mut self) -> Option<u64> {
        let (h, t) = self.b.split_first_chunk::<8>()?;
        self.b = t;
        Some(u64::from_le_bytes(*h))
    }

    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.uvarint()?).ok()?;
        let out = self.b.get(..n)?;
        self.b = &self.b[n..];
        Some(out)
    }

    pub fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn varints_round_trip(u in proptest::num::u64::ANY, i in proptest::num::i64::ANY, b in proptest::collection::vec(0u8.., 0..40)) {
            let mut buf = Vec::new();
            put_uvarint(&mut buf, u);
            proptest::prop_assert_eq!(buf.len(), uvarint_len(u));
            put_varint(&mut buf, i);
            proptest::prop_assert_eq!(buf.len(), uvarint_len(u) + varint_len(i));
            put_bytes(&mut buf, &b);
            let mut d = Dec { b: &buf };
            proptest::prop_assert_eq!(d.uvarint(), Some(u));
            proptest::prop_assert_eq!(d.varint(), Some(i));
            proptest::prop_assert_eq!(d.bytes(), Some(&b[..]));
            proptest::prop_assert!(d.is_empty());
            // Every truncation is refused, not misread.
            for n in 0..buf.len() {
                let mut d = Dec { b: &buf[..n] };
                let whole = d.uvarint() == Some(u) && d.varint() == Some(i) && d.bytes() == Some(&b[..]);
                proptest::prop_assert!(!whole);
            }
        }
    }

    #[test]
    fn overlong_varints_are_refused() {
        let mut d = Dec { b: &[0xff; 11] };
        assert_eq!(d.uvarint(), None);
        let mut d = Dec {
            b: &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
        };
        assert_eq!(d.uvarint(), None);
    }
}
