//! Finds the grammar file promql-parser ships in its package (`src/parser/promql.y`) and
//! hands its path to `src/parse_error.rs`, which runs that grammar on the error path to
//! locate syntax errors. The grammar is used from the dependency as published, never copied
//! into this repository: `cargo metadata` says where cargo unpacked the resolved version
//! (the registry, a vendor directory or a git checkout alike).
//!
//! `VIGIL_PROMQL_GRAMMAR` overrides the path. If the file cannot be found the build goes on
//! with a warning and syntax errors keep promql-parser's message without a position.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=VIGIL_PROMQL_GRAMMAR");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let found = std::env::var_os("VIGIL_PROMQL_GRAMMAR")
        .map(PathBuf::from)
        .or_else(from_metadata);
    let text = match found.as_ref().map(std::fs::read_to_string) {
        Some(Ok(t)) => {
            println!(
                "cargo:rerun-if-changed={}",
                found.as_ref().unwrap().display()
            );
            t
        }
        other => {
            println!(
                "cargo:warning=promql-parser's promql.y not found ({}); PromQL syntax errors will carry no line:column (set VIGIL_PROMQL_GRAMMAR to the file)",
                match other {
                    Some(Err(e)) => e.to_string(),
                    _ => "cargo metadata did not list the package".into(),
                }
            );
            String::new()
        }
    };
    std::fs::write(out.join("promql.y"), text).expect("OUT_DIR is writable");
}

/// `src/parser/promql.y` beside the manifest of the promql-parser package cargo resolved.
fn from_metadata() -> Option<PathBuf> {
    let cargo = std::env::var_os("CARGO")?;
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?).join("Cargo.toml");
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let package = meta["packages"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == "promql-parser")?;
    let manifest = PathBuf::from(package["manifest_path"].as_str()?);
    Some(manifest.parent()?.join("src/parser/promql.y"))
}
