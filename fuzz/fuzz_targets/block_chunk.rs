#![no_main]
//! The block chunk decoder on arbitrary bytes (XOR, deflated and packed encodings): it
//! answers with samples or `false`, never panics, and never allocates beyond its caps.
//! Whatever it decodes re-encodes to a chunk that decodes to the same samples. The same bytes
//! read as a chunks file (frames referring to other frames' timestamps) never panic either.
use libfuzzer_sys::fuzz_target;
use vigil_tsdb::chunk::dense;

fuzz_target!(|data: &[u8]| {
    let (mut out, mut scratch) = (Vec::new(), Vec::new());
    for offset in [0, data.len() / 3, data.len() / 2] {
        let _ = dense::decode_in_file(data, offset, &mut out, &mut scratch);
    }
    if !dense::decode(data, &mut out, &mut scratch) || !out.windows(2).all(|w| w[0].0 < w[1].0) {
        return;
    }
    let mut again = Vec::new();
    dense::encode(&out, &mut again);
    let mut back = Vec::new();
    assert!(dense::decode(&again, &mut back, &mut scratch));
    let bits = |s: &[(i64, f64)]| s.iter().map(|(t, v)| (*t, v.to_bits())).collect::<Vec<_>>();
    assert_eq!(bits(&back), bits(&out));
});
