//! `vigil check config` and `vigil check rules`: the mirrors of `promtool check config` and
//! `promtool check rules` (Prometheus 2.42's output).

use std::path::{Path, PathBuf};
use vigil_rules::rulefmt::{self, NameValidation};

/// Checks each file; prints promtool-style lines; returns the process exit code. As promtool
/// does, the config's rule files (globs resolved against the config's directory) are then
/// each checked as `check rules` checks them, with the config's name validation scheme.
pub fn check_config(files: &[PathBuf]) -> i32 {
    let mut failed = false;
    for f in files {
        println!("Checking {}", f.display());
        let loaded = vigil_config::load_file(f)
            .map_err(|e| e.to_string())
            .and_then(|l| Ok((rule_files(&l.config.rule_files)?, l)));
        let mut to_check = Vec::new();
        let mut names = NameValidation::default();
        match loaded {
            Ok((rule_files, loaded)) => {
                for w in &loaded.warnings {
                    println!("  WARNING: {w}");
                }
                if !rule_files.is_empty() {
                    println!("  SUCCESS: {} rule files found", rule_files.len());
                }
                println!(
                    " SUCCESS: {} is valid prometheus config file syntax",
                    f.display()
                );
                names = NameValidation::of_config(&loaded.config);
                to_check = rule_files;
            }
            Err(e) => {
                eprintln!("  FAILED: {e}");
                failed = true;
            }
        }
        println!();
        for rf in &to_check {
            // promtool 2.42 indents these error lines by five spaces, `check rules` by none.
            failed |= check_rule_file(rf, names, "     ");
        }
    }
    i32::from(failed)
}

/// `rule_files` expanded as promtool's `checkConfig` does: the matches of each pattern in
/// order, repeats kept; a pattern without `*` must name an existing file.
fn rule_files(patterns: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in patterns {
        let matched = rulefmt::expand_globs(std::slice::from_ref(p)).map_err(|e| e.to_string())?;
        if matched.is_empty() && !p.contains('*') {
            return Err(format!("{p:?} does not point to an existing file"));
        }
        out.extend(matched);
    }
    Ok(out)
}

/// Checks one rule file: `Checking FILE`, then `  SUCCESS: N rules found` or `  FAILED:` and
/// the problems (on standard error, each line after `indent`). Returns whether it failed.
fn check_rule_file(f: &Path, names: NameValidation, indent: &str) -> bool {
    println!("Checking {}", f.display());
    let failed = match rulefmt::load_file(f, names) {
        Ok(rf) => {
            let n: usize = rf.groups.iter().map(|g| g.rules.len()).sum();
            println!("  SUCCESS: {n} rules found");
            false
        }
        Err(e) => {
            eprintln!("  FAILED:");
            for line in e.to_string().lines() {
                eprintln!("{indent}{line}");
            }
            true
        }
    };
    println!();
    failed
}

/// `vigil check rules FILE...`: the mirror of `promtool check rules`.
pub fn check_rules(files: &[PathBuf]) -> i32 {
    let mut failed = false;
    for f in files {
        failed |= check_rule_file(f, NameValidation::Utf8, "");
    }
    i32::from(failed)
}
