#![no_main]
//! The `--web.config.file` format (TLS settings, basic-auth users with bcrypt hashes,
//! response headers): arbitrary text never panics. Relative certificate files resolve
//! under a directory that does not exist; inputs that could name a device or a kernel file
//! (`/dev`, `/proc`, `/sys`, or a backslash escape or YAML tag that could spell one) are skipped,
//! so the fuzzer does not read `/dev/zero`.
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if ["/dev", "/proc", "/sys", "\\", "!"].iter().any(|p| text.contains(p)) {
        return;
    }
    let _ = vigil_api::web::WebConfig::parse(text, Path::new("/nonexistent-fuzz-dir"));
});
