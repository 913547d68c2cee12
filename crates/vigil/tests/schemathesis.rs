//! schemathesis (PyPI, pinned in `.ci/run`) against docs/openapi.yaml and the real binary,
//! which scrapes the synthetic targets so queries have data: every generated request (both phases that
//! derive cases from the schema, plus the examples in it) must get an answer that is not a
//! 5xx, whose status code is one the description lists, and whose body matches its schema.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn schemathesis_finds_no_server_errors() {
    if std::env::var_os("VIGIL_SKIP_INTEROP").is_some() {
        eprintln!("VIGIL_SKIP_INTEROP set: schemathesis run skipped");
        return;
    }
    let python = venv_python();
    let has = Command::new(&python)
        .args(["-c", "import schemathesis"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has,
        "{python} cannot import schemathesis: run .ci/run (it installs the pinned version in a venv and sets VIGIL_PYTHON), or set VIGIL_SKIP_INTEROP=1"
    );
    let (_sim, base) = start_targets(2, 50, 1000);
    let cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: synth\n    static_configs:\n      - targets: ['127.0.0.1:{}', '127.0.0.1:{}']\n",
        base,
        base + 1
    );
    // Admin endpoints on (deleting random selections is fine here); lifecycle off, so the
    // run cannot stop the server.
    let (_vigil, port, dir) = start_vigil_with(&cfg, &["--web.enable-admin-api"]);
    wait_for(Duration::from_secs(20), "data", || {
        let (_, v) = api(port, "/api/v1/query?query=up");
        v["data"]["result"].as_array().is_some_and(|a| a.len() == 2)
    });
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.yaml");
    let out = Command::new(&python)
        .args(["-m", "schemathesis.cli", "run", spec])
        // Its cache directory goes with the test's temporary files, not into the checkout.
        .current_dir(&dir)
        .arg(format!("--url=http://127.0.0.1:{port}"))
        .args([
            "--checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--exclude-path=/-/quit",
            "--max-examples=40",
            "--workers=2",
            "--request-timeout=20",
            "--seed=1",
            "--no-color",
        ])
        .output()
        .expect("run schemathesis");
    let text = String::from_utf8_lossy(&out.stdout);
    let cases = text
        .lines()
        .find(|l| l.contains(" generated, "))
        .unwrap_or("")
        .trim()
        .to_string();
    eprintln!("schemathesis: {cases}");
    assert!(
        out.status.success(),
        "schemathesis failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated: u64 = cases
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(generated >= 500, "too few cases tried: {cases:?}\n{text}");
}
