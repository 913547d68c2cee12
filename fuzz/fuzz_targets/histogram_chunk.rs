#![no_main]
//! The histogram chunk decoder (block chunks with their encoding byte, bare head chunks and
//! WAL histogram records) on arbitrary bytes: it answers with samples or `false`, never
//! panics, and never allocates beyond what the input could describe. Whatever it decodes
//! re-encodes to a chunk that decodes to the same bytes again.
use libfuzzer_sys::fuzz_target;
use vigil_tsdb::chunk::hist;
use vigil_tsdb::wal::record;

fuzz_target!(|data: &[u8]| {
    let _ = record::decode_histograms(data, |_, _, _| {});
    let mut out = Vec::new();
    let _ = hist::decode_block_chunk(data, &mut out);
    if !hist::decode(data, &mut out) {
        return;
    }
    let refs: Vec<_> = out.iter().map(|(t, h)| (*t, h)).collect();
    let once = hist::encode(&refs);
    let mut back = Vec::new();
    assert!(hist::decode(&once, &mut back));
    let refs: Vec<_> = back.iter().map(|(t, h)| (*t, h)).collect();
    assert_eq!(hist::encode(&refs), once);
});
