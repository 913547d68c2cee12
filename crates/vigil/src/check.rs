//! `vigil check config`: the mirror of `promtool check config`.

use std::path::PathBuf;

/// Checks each file; prints promtool-style lines; returns the process exit code.
pub fn check_config(files: &[PathBuf]) -> i32 {
    let mut failed = false;
    for f in files {
        println!("Checking {}", f.display());
        match vigil_config::load_file(f) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    println!("  WARNING: {w}");
                }
                println!(
                    " SUCCESS: {} rule files found",
                    loaded.config.rule_files.len()
                );
                println!(
                    " SUCCESS: {} is valid prometheus config file syntax",
                    f.display()
                );
            }
            Err(e) => {
                eprintln!("  FAILED: {e}");
                failed = true;
            }
        }
        println!();
    }
    i32::from(failed)
}

/// `vigil check rules FILE...`: the mirror of `promtool check rules`.
pub fn check_rules(files: &[PathBuf]) -> i32 {
    let mut failed = false;
    for f in files {
        println!("Checking {}", f.display());
        match vigil_rules::rulefmt::load_file(f, vigil_rules::rulefmt::NameValidation::Utf8) {
            Ok(rf) => {
                let n: usize = rf.groups.iter().map(|g| g.rules.len()).sum();
                println!("  SUCCESS: {n} rules found");
            }
            Err(e) => {
                eprintln!("  FAILED:");
                eprintln!("{e}");
                failed = true;
            }
        }
        println!();
    }
    i32::from(failed)
}
