#![no_main]
//! Head snapshot files (`wal/snapshot.NNNNNNNN`), read at every start: loading arbitrary
//! bytes never panics, and a snapshot that loads can be read back whole (every series
//! selected, every float and histogram sample iterated).
//!
//! Records carry a CRC, which random mutations almost never keep right. When the first byte
//! is odd the rest of the input is used as the file as it is; when it is even the rest is
//! re-framed first (each record's length and CRC recomputed), so the fuzzer reaches the
//! record decoders behind the checksums.
use libfuzzer_sys::fuzz_target;
use vigil_model::{Matcher, Queryable, SelectHints};
#[path = "records.rs"]
mod records;
use vigil_tsdb::{Head, HeadOptions};

const MAGIC: &[u8] = b"VGSNAP01";

/// Re-frames the records after the magic with correct lengths and CRCs.
fn reframe(data: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    records::reframe(data.strip_prefix(MAGIC).unwrap_or(data), &mut out);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let file = if mode & 1 == 1 { rest.to_vec() } else { reframe(rest) };
    let head = Head::new(HeadOptions::default());
    if vigil_tsdb::load_head_snapshot(&head, &file).is_err() {
        return;
    }
    let q = head.querier(i64::MIN, i64::MAX).expect("head querier");
    let all = [Matcher::regex("__name__", ".+").unwrap()];
    let set = q
        .select(&all, &SelectHints { start: i64::MIN, end: i64::MAX })
        .expect("select on a loaded head");
    for s in set {
        assert!(!s.labels.is_empty());
        for x in s.samples {
            std::hint::black_box(x);
        }
        for h in &s.histograms {
            std::hint::black_box(h.h.count);
        }
    }
    let _ = q.label_names(&[]);
});
