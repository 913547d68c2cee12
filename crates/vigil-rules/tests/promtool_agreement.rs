//! `vigil test rules` agrees with `promtool test rules` (Prometheus 2.42, Debian's) on every
//! rule unit-test file of Prometheus' promtool test data and of our own `testdata/`. The
//! promtool verdicts are recorded in `testdata/rules/promtool-verdicts.tsv` (regenerate with
//! `testdata/rules/regen-verdicts.sh`); when /usr/bin/promtool exists they are re-checked live.

//!
//! vigil's PromQL extensions (the drift functions) are unknown to promtool 2.42:
//! - unit-test files that only test rules using them (`VIGIL_ONLY`) are not compared, but
//!   must pass under vigil;
//! - other unit-test files whose rule files contain such rules (`ml-service-test.yml` loads
//!   `config/alerts.yml`, which has `FeatureDrift`) are given to promtool with those rules
//!   removed from copies of the rule files (`promtool_view`), so the verdict on everything
//!   else is still compared.

use std::path::{Path, PathBuf};
use vigil_rules::unittest::{Verdict, run_file};

/// Functions promtool 2.42 does not parse (the drift functions, docs/drift.md).
const VIGIL_ONLY_FUNCTIONS: &[&str] = &[
    "drift_psi",
    "drift_ks",
    "drift_jsd",
    "drift_wasserstein",
    "drift_hellinger",
    "drift_kl",
    "drift_linf",
    "drift_chi2",
];

/// Unit-test files of vigil-only rules, excluded from the comparison with promtool (which
/// fails them at parse time): the drift alerts' tests.
const VIGIL_ONLY: &[&str] = &[
    "drift-test.yml",
    "drift-categorical-test.yml",
    "drift-baseline-test.yml",
];

fn uses_vigil_only_functions(text: &str) -> bool {
    VIGIL_ONLY_FUNCTIONS.iter().any(|f| text.contains(f))
}

/// The test file as promtool should see it: unchanged, unless one of its rule files has
/// rules using vigil-only functions; then a copy (in `tmp`) whose `rule_files` point at copies
/// of the rule files without those rules.
fn promtool_view(test_file: &Path, tmp: &Path) -> PathBuf {
    let text = std::fs::read_to_string(test_file).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap_or(serde_yaml::Value::Null);
    let base = test_file.parent().unwrap();
    let Some(files) = doc.get("rule_files").and_then(|v| v.as_sequence()) else {
        return test_file.to_path_buf();
    };
    let mut replaced = text.clone();
    let mut changed = false;
    for (i, f) in files.iter().filter_map(|f| f.as_str()).enumerate() {
        let path = base.join(f);
        let Ok(rules) = std::fs::read_to_string(&path) else {
            continue;
        };
        let target = if uses_vigil_only_functions(&rules) {
            let mut rdoc: serde_yaml::Value = serde_yaml::from_str(&rules).unwrap();
            for g in rdoc["groups"].as_sequence_mut().into_iter().flatten() {
                if let Some(rs) = g.get_mut("rules").and_then(|r| r.as_sequence_mut()) {
                    rs.retain(|r| !r["expr"].as_str().is_some_and(uses_vigil_only_functions));
                }
            }
            changed = true;
            let copy = tmp.join(format!("rules-{i}.yml"));
            std::fs::write(&copy, serde_yaml::to_string(&rdoc).unwrap()).unwrap();
            copy
        } else {
            path.canonicalize().unwrap_or(path)
        };
        replaced = replaced.replacen(f, &target.display().to_string(), 1);
    }
    if !changed {
        return test_file.to_path_buf();
    }
    let copy = tmp.join(test_file.file_name().unwrap());
    std::fs::write(&copy, replaced).unwrap();
    copy
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The unit-test files of Prometheus' promtool test data (`shared`, when present) and ours.
fn unit_test_files(shared: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in shared
        .map(Path::to_path_buf)
        .into_iter()
        .chain([root().join("testdata/rules")])
    {
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
    // Without Prometheus' files the project's own are still compared.
    let shared = vigil_testdata::corpus_dir(
        "same_verdict_as_promtool (its promtool files)",
        "rules/promtool",
    );
    let files = unit_test_files(shared.as_deref());
    let rec = recorded();
    let live = Path::new("/usr/bin/promtool").exists();
    let mut agree = 0;
    let mut problems = Vec::new();
    let mut vigil_only = 0;
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let ours = matches!(run_file(f), Verdict::Success);
        if VIGIL_ONLY.contains(&name.as_str()) {
            // Not comparable (see VIGIL_ONLY); it must pass under vigil.
            if let Verdict::Failed(e) = run_file(f) {
                problems.push(format!("{name} (vigil only) fails:\n{}", e.join("\n")));
            }
            vigil_only += 1;
            continue;
        }
        let theirs = if live {
            let tmp = std::env::temp_dir().join(format!(
                "vigil-promtool-view-{}-{}",
                std::process::id(),
                name
            ));
            std::fs::create_dir_all(&tmp).unwrap();
            let view = promtool_view(f, &tmp);
            let ok = std::process::Command::new("/usr/bin/promtool")
                .args(["test", "rules"])
                .arg(&view)
                .output()
                .expect("run promtool")
                .status
                .success();
            let _ = std::fs::remove_dir_all(&tmp);
            ok
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
        "verdict agreement {agree}/{} (live promtool: {live}), {vigil_only} vigil-only file(s) passed under vigil",
        files.len() - vigil_only
    );
    assert_eq!(vigil_only, VIGIL_ONLY.len(), "vigil-only files found");
    if shared.is_some() {
        assert!(files.len() >= 15, "unit-test files found: {}", files.len());
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// A bad expression is reported as promtool reports it: the parser's position within the
/// expression and its message (`bad-rules-syntax.yml` has `expr: 'test +'`).
#[test]
fn bad_expression_message_carries_promtools_position() {
    let Some(dir) = vigil_testdata::corpus_dir(
        "bad_expression_message_carries_promtools_position",
        "rules/promtool",
    ) else {
        return;
    };
    let f = dir.join("bad-rules-syntax-test.yml");
    let want = "could not parse expression: 1:7: parse error: unexpected end of input";
    if Path::new("/usr/bin/promtool").exists() {
        let out = std::process::Command::new("/usr/bin/promtool")
            .args(["test", "rules"])
            .arg(&f)
            .output()
            .expect("run promtool");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "promtool says: {stderr}");
    }
    let Verdict::Failed(errs) = run_file(&f) else {
        panic!("{} must fail", f.display());
    };
    let ours = errs.join("\n");
    assert!(ours.contains(want), "vigil says: {ours}");
}

/// `testdata/rules/drift-baseline-rules.yml` is config/alerts.yml's training-baseline rules
/// with only the baseline's timestamp changed, so its unit test tests the shipped rules.
#[test]
fn baseline_rules_are_config_alerts_rules() {
    let rules = |path: &str, from: &str, to: &str| -> Vec<serde_yaml::Value> {
        let text = std::fs::read_to_string(root().join(path)).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text.replace(from, to)).unwrap();
        doc["groups"]
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_sequence().unwrap().clone())
            .filter(|r| {
                r["alert"]
                    .as_str()
                    .is_some_and(|a| a.ends_with("FromTraining"))
            })
            .collect()
    };
    let shipped = rules("config/alerts.yml", "@ 1767225600", "@ 3600");
    let copy = rules("testdata/rules/drift-baseline-rules.yml", "", "");
    assert_eq!(shipped.len(), 2);
    assert_eq!(shipped, copy);
    let text = std::fs::read_to_string(root().join("config/alerts.yml")).unwrap();
    assert_eq!(
        text.matches("@ 1767225600").count(),
        2,
        "one baseline timestamp"
    );
}
