#![no_main]
//! Rule files: YAML decoding (with merge keys), validation (PromQL expressions, label and
//! annotation templates) never panic on arbitrary text.
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use vigil_rules::rulefmt::{self, NameValidation};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rf) = rulefmt::parse(text, Path::new("rules.yml")) else {
        return;
    };
    for names in [NameValidation::Utf8, NameValidation::Legacy] {
        std::hint::black_box(rulefmt::validate(&rf, names));
    }
});
