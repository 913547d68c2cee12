#![no_main]
//! The block index reader on arbitrary bytes: an error or an index, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = std::hint::black_box(vigil_tsdb::block::index::decode(data));
});
