//! Test-only (a dev-dependency of the crates whose tests read corpora): where the tests find
//! the external corpora kept beside the checkout
//! (`../shared/testdata`, or `$VIGIL_SHARED_DIR/testdata`), and what a test does when one is
//! missing: it says so on stderr and passes, so a fresh clone tests cleanly, unless
//! `VIGIL_REQUIRE_CORPORA=1` (as in CI), when a missing corpus fails the test.

use std::io::Write;
use std::path::PathBuf;

/// `testdata/<rel>` of the shared folder, or None after printing why `test` skips.
pub fn corpus_dir(test: &str, rel: &str) -> Option<PathBuf> {
    let (root, shown) = match std::env::var_os("VIGIL_SHARED_DIR").filter(|d| !d.is_empty()) {
        Some(d) => (PathBuf::from(&d), PathBuf::from(d).display().to_string()),
        None => (
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
            "../shared".to_string(),
        ),
    };
    let dir = root.join("testdata").join(rel);
    if dir.is_dir() {
        return Some(dir);
    }
    let why = format!("{test}: {shown}/testdata/{rel} not found (set VIGIL_SHARED_DIR)");
    if std::env::var("VIGIL_REQUIRE_CORPORA").as_deref() == Ok("1") {
        panic!("{why}; VIGIL_REQUIRE_CORPORA=1 requires it");
    }
    // Straight to stderr, past the test harness' capture, so the skip shows in a normal run.
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
    None
}
