#![no_main]
//! The WAL reader on arbitrary segment bytes: framing stops at the first bad record (never
//! past the input), compressed payloads (snappy and zstd) are decompressed within the record
//! limit, and every payload decoder answers `None` or values, never panics.
//!
//! Records carry a CRC, which random mutations almost never keep right. When the first byte
//! is odd the rest of the input is the segment as it is; when it is even the records are
//! re-framed first (lengths and CRCs recomputed), so mutations reach the decompressors and
//! the decoders behind the checksums.
use libfuzzer_sys::fuzz_target;
use vigil_tsdb::wal::record::{self, Records};
#[path = "records.rs"]
mod records;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let owned;
    let segment = if mode & 1 == 1 {
        rest
    } else {
        owned = {
            let mut out = Vec::with_capacity(rest.len());
            records::reframe(rest, &mut out);
            out
        };
        &owned[..]
    };
    let mut recs = Records::new(segment, record::wal_type);
    for (kind, payload) in recs.by_ref() {
        let (mut scratch, mut unpacked) = (Vec::new(), Vec::new());
        let Some((kind, payload)) = record::plain(kind, payload, &mut unpacked) else {
            continue;
        };
        assert!(payload.len() <= record::MAX_RECORD);
        match kind {
            record::SERIES => {
                let _ = record::decode_series(payload, &mut scratch, |_, labels| {
                    std::hint::black_box(labels);
                });
            }
            record::SAMPLES | record::SAMPLES_INT | record::SAMPLES_DEC => {
                let _ = record::decode_samples(kind, payload, |r, t, v| {
                    std::hint::black_box((r, t, v));
                });
            }
            record::HISTOGRAMS => {
                let _ = record::decode_histograms(payload, |r, t, h| {
                    std::hint::black_box((r, t, h));
                });
            }
            record::START_TIMESTAMPS => {
                let _ = record::decode_start_timestamps(payload, |r, t, st| {
                    std::hint::black_box((r, t, st));
                });
            }
            _ => {
                let _ = record::decode_tombstones(payload, |r, a, b| {
                    std::hint::black_box((r, a, b));
                });
            }
        }
    }
    assert!(recs.good_len() <= segment.len());
});
