#![no_main]
//! `prometheus.yml` loading (YAML, defaults, validation, relabel regexes, durations, sizes):
//! arbitrary text never panics, and a config that loads prints (secrets masked, as
//! `/api/v1/status/config` serves it) to YAML that loads again.
//!
//! Loading reads the files `scrape_config_files` names; inputs that could name one
//! (`scrape_config_files`, or a backslash escape or a YAML tag that could spell it) are skipped, so
//! the fuzzer does not read `/dev/zero` or block on `/proc/kmsg`.
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("scrape_config_files") || text.contains('\\') || text.contains('!') {
        return;
    }
    let path = Path::new("/nonexistent/prometheus.yml");
    let Ok(loaded) = vigil_config::load_str(text, path) else {
        return;
    };
    let yaml = loaded.config.to_yaml();
    if let Err(e) = vigil_config::load_str(&yaml, path) {
        // A masked secret can make a printed config invalid (`<secret>` where a file name or
        // a pair of settings was); anything else is a printer/parser disagreement.
        let msg = e.to_string();
        assert!(
            yaml.contains("<secret>") || msg.contains("<secret>"),
            "printed config does not load again: {msg}\n{yaml}"
        );
    }
});
