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

/// As promtool does, `check config` opens the rule files (globs resolved against the
/// config's directory, not the working directory) and checks each one.
#[test]
fn check_config_checks_the_rule_files() {
    let dir = tempdir("cli-rules");
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(
        dir.join("rules/good.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: vector(1) > 0\n      - record: r\n        expr: vector(2)\n",
    )
    .unwrap();
    let check = |name: &str, rule_files: &str| {
        let cfg = dir.join(name);
        std::fs::write(&cfg, format!("rule_files: {rule_files}\n")).unwrap();
        let out = Command::new(vigil_bin())
            .args(["check", "config"])
            .arg(&cfg)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let good = dir.join("rules/good.yml");
    let bad = dir.join("rules/zz-bad.yml");

    let (code, stdout, stderr) = check("good.yml", "['rules/good.yml']");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let want = format!(
        "  SUCCESS: 1 rule files found\n SUCCESS: {} is valid prometheus config file syntax\n\nChecking {}\n  SUCCESS: 2 rules found\n\n",
        dir.join("good.yml").display(),
        good.display()
    );
    assert!(stdout.ends_with(&want), "{stdout}");

    std::fs::write(
        &bad,
        "groups:\n  - name: g\n    rules:\n      - alert: B\n        expr: sum(\n",
    )
    .unwrap();
    let (code, stdout, stderr) = check("bad.yml", "['rules/*.yml']");
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("  SUCCESS: 2 rule files found\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "Checking {}\n  SUCCESS: 2 rules found",
            good.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("Checking {}\n", bad.display())),
        "{stdout}"
    );
    assert!(stderr.starts_with("  FAILED:\n     "), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: group \"g\", rule 1, \"B\": could not parse expression: 1:5: parse error: unclosed left parenthesis",
            bad.display()
        )),
        "{stderr}"
    );

    let (code, stdout, stderr) = check("missing.yml", "['rules/nope.yml']");
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert_eq!(
        stderr,
        format!(
            "  FAILED: {:?} does not point to an existing file\n",
            dir.join("rules/nope.yml").display().to_string()
        )
    );
    assert!(!stdout.contains("SUCCESS"), "{stdout}");
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
        "--enable-feature",
        "--web.max-connections",
        "--web.read-timeout",
        "--web.read-header-timeout",
    ] {
        assert!(help.contains(flag), "--help lists {flag}");
    }
}

/// Prometheus' feature flags start vigil (they are logged, not refused), in both forms.
#[test]
fn enable_feature_is_accepted() {
    // Argument parsing only: `--version` exits right after it.
    let out = Command::new(vigil_bin())
        .args([
            "--enable-feature=native-histograms,exemplar-storage",
            "--enable-feature",
            "promql-delayed-name-removal",
            "--version",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--web.read-timeout` (Prometheus' flag, which vigil refused before issue 20) and vigil's
/// `--web.read-header-timeout` take durations; a bad one is refused with exit code 2.
#[test]
fn web_read_timeouts_are_accepted() {
    for args in [
        &["--web.read-timeout=5m"][..],
        &["--web.read-timeout", "90s"],
        &["--web.read-timeout=0s"],
        &["--web.read-header-timeout=2s500ms"],
    ] {
        let out = Command::new(vigil_bin())
            .args(args)
            .arg("--version")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(vigil_bin())
        .args(["--web.read-timeout=soon", "--version"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Prometheus' WAL compression flags parse in their forms; an unknown type is refused.
#[test]
fn wal_compression_flags_are_accepted() {
    for args in [
        &["--storage.tsdb.wal-compression"][..],
        &["--storage.tsdb.wal-compression=false"],
        &["--no-storage.tsdb.wal-compression"],
        &["--storage.tsdb.wal-compression-type=zstd"],
        &["--storage.tsdb.wal-compression-type", "snappy"],
    ] {
        let out = Command::new(vigil_bin())
            .args(args)
            .arg("--version")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(vigil_bin())
        .args(["--storage.tsdb.wal-compression-type=lz4", "--version"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
