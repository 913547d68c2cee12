//! `vigil test rules` agrees with `promtool test rules` (Prometheus 2.42, Debian's) on every
//! rule unit-test file of Prometheus' promtool test data and of our own `testdata/`. The
//! promtool verdicts are recorded in `testdata/rules/promtool-verdicts.tsv` (regenerate with
//! `testdata/rules/regen-verdicts.sh`); when /usr/bin/promtool exists they are re-checked live.

use std::path::{Path, PathBuf};
use vigil_rules::unittest::{Verdict, run_file};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn unit_test_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in [
        root().join("../shared/testdata/rules/promtool"),
        root().join("testdata/rules"),
    ] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "yml" || x == "yaml")
                && std::fs::read_to_string(&p)
                    .is_ok_and(|t| t.lines().any(|l| l.starts_with("tests:")))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn recorded() -> Vec<(String, bool)> {
    let text = std::fs::read_to_string(root().join("testdata/rules/promtool-verdicts.tsv"))
        .expect("recorded promtool verdicts");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (f, v) = l.split_once('\t').expect("file<TAB>verdict");
            (f.to_string(), v.trim() == "pass")
        })
        .collect()
}

#[test]
fn same_verdict_as_promtool() {
    let files = unit_test_files();
    let rec = recorded();
    let live = Path::new("/usr/bin/promtool").exists();
    let mut agree = 0;
    let mut problems = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let ours = matches!(run_file(f), Verdict::Success);
        let theirs = if live {
            std::process::Command::new("/usr/bin/promtool")
                .args(["test", "rules"])
                .arg(f)
                .output()
                .expect("run promtool")
                .status
                .success()
        } else {
            match rec.iter().find(|(n, _)| *n == name) {
                Some((_, v)) => *v,
                None => {
                    problems.push(format!("{name}: no recorded promtool verdict"));
                    continue;
                }
            }
        };
        if let Some((_, r)) = rec.iter().find(|(n, _)| *n == name) {
            assert_eq!(
                *r, theirs,
                "{name}: recorded verdict differs from live promtool"
            );
        }
        if ours == theirs {
            agree += 1;
        } else {
            let detail = match run_file(f) {
                Verdict::Failed(e) => e.join("\n"),
                Verdict::Success => "SUCCESS".into(),
            };
            problems.push(format!("{name}: vigil {ours}, promtool {theirs}\n{detail}"));
        }
    }
    println!(
        "verdict agreement {agree}/{} (live promtool: {live})",
        files.len()
    );
    assert!(files.len() >= 15, "unit-test files found: {}", files.len());
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
