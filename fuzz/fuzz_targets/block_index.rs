#![no_main]
//! The block index reader on arbitrary bytes: an error or an index, never a panic; an index
//! that decodes is then read everywhere (symbols, series, postings), as queries would.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(ix) = vigil_tsdb::block::index::decode(data) else {
        return;
    };
    for id in 0..ix.num_symbols().min(1 << 16) as u32 {
        if let Some(s) = ix.symbol(id) {
            std::hint::black_box(ix.symbol_id(s));
        }
    }
    for i in 0..ix.num_series().min(1 << 16) {
        std::hint::black_box(ix.series(i));
    }
    for n in ix.label_names() {
        for v in ix.label_values(n) {
            std::hint::black_box(ix.postings_list(n, v));
        }
    }
    std::hint::black_box(ix.symbol_id("__name__"));
});
