#![no_main]
//! The WAL reader on arbitrary segment bytes: framing stops at the first bad record (never
//! past the input), and every payload decoder answers `None` or values, never panics.
use libfuzzer_sys::fuzz_target;
use vigil_tsdb::wal::record::{self, Records};

fuzz_target!(|data: &[u8]| {
    let mut recs = Records::new(data, record::wal_type);
    let mut scratch = Vec::new();
    for (kind, payload) in recs.by_ref() {
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
            _ => {
                let _ = record::decode_tombstones(payload, |r, a, b| {
                    std::hint::black_box((r, a, b));
                });
            }
        }
    }
    assert!(recs.good_len() <= data.len());
});
