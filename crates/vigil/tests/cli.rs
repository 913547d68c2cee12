//! The command line: `check config`, bad configs at startup, `--version`, `--help`.

mod common;

use common::*;
use std::process::Command;

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let p = tempdir("cli").join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn check_config_accepts_the_seed_example() {
    let cfg = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/prometheus.yml");
    let out = Command::new(vigil_bin())
        .args(["check", "config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("SUCCESS"), "{stdout}");
}

#[test]
fn misspelt_key_fails_with_line() {
    let p = write(
        "bad-key.yml",
        "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: a\n    scrape_intervl: 5s\n",
    );
    let out = Command::new(vigil_bin())
        .args(["check", "config"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("scrape_intervl"), "{msg}");
    assert!(msg.contains(":5:"), "names line 5: {msg}");
}

#[test]
fn bad_duration_at_startup_exits_1_naming_the_line() {
    let p = write("bad-dur.yml", "global:\n  scrape_interval: 15x\n");
    let out = Command::new(vigil_bin())
        .arg(format!("--config.file={}", p.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            tempdir("cli-data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains(":2:"), "names line 2: {msg}");
    assert!(msg.contains("15x"), "{msg}");
}

#[test]
fn version_and_help() {
    let out = Command::new(vigil_bin()).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = Command::new(vigil_bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config.file",
        "--storage.tsdb.path",
        "--storage.tsdb.retention.time",
        "--web.listen-address",
        "--log.level",
    ] {
        assert!(help.contains(flag), "--help lists {flag}");
    }
}
