// Shared by the fuzz targets whose input is a sequence of CRC-framed records (WAL segments,
// head snapshots): random mutations almost never keep a CRC right, so the targets can have
// the records re-framed first, to reach the decoders behind the checksums.
use vigil_tsdb::wal::record;

/// Appends `rest`'s records to `out` with their lengths and CRCs recomputed (a record whose
/// length runs past the input takes what is left).
pub fn reframe(mut rest: &[u8], out: &mut Vec<u8>) {
    while rest.len() >= record::HEADER_LEN {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let kind = rest[4];
        let payload = &rest[9..9 + len.min(rest.len() - 9)];
        let start = record::begin(out, kind);
        out.extend_from_slice(payload);
        record::finish(out, start);
        rest = &rest[9 + payload.len()..];
    }
}
