//! The OpenMetrics 1.0 parser conformance suite (`shared/testdata/exposition/openmetrics-parsers`).
//!
//! Every good case must parse in both modes. Every bad case must be refused by the strict
//! parser, with an error naming a line that exists in the input. The default (scrape) parser
//! checks syntax only, so it accepts some bad cases that break semantic rules; the test prints
//! how many it refuses.

use std::path::Path;

use vigil_exposition::{Entry, Format, ParseError, Parser};

struct Case {
    name: String,
    input: Vec<u8>,
    should_parse: bool,
}

fn cases(suite_dir: &Path) -> Vec<Case> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(suite_dir).expect("suite directory") {
        let dir = entry.expect("dir entry").path();
        let json = dir.join("test.json");
        if !json.exists() {
            continue;
        }
        let meta = std::fs::read_to_string(&json).expect("test.json");
        let compact: String = meta.chars().filter(|c| !c.is_whitespace()).collect();
        let should_parse = if compact.contains("\"shouldParse\":true") {
            true
        } else if compact.contains("\"shouldParse\":false") {
            false
        } else {
            panic!("no shouldParse in {}", json.display());
        };
        out.push(Case {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            input: std::fs::read(dir.join("metrics")).expect("metrics file"),
            should_parse,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn run(input: &[u8], strict: bool) -> Result<usize, ParseError> {
    let mut parser = Parser::new(input, Format::OpenMetrics);
    if strict {
        parser = parser.strict();
    }
    let mut samples = 0;
    for entry in parser {
        if let Entry::Sample(_) = entry? {
            samples += 1;
        }
    }
    Ok(samples)
}

#[test]
fn suite() {
    let Some(dir) = vigil_testdata::corpus_dir("suite", "exposition/openmetrics-parsers") else {
        return;
    };
    let cases = cases(&dir);
    assert_eq!(cases.len(), 211, "the suite has 211 cases");
    let (mut good, mut good_ok, mut bad, mut bad_refused_strict, mut bad_refused_default) =
        (0, 0, 0, 0, 0);
    let mut failures = Vec::new();
    for case in &cases {
        let lines = case.input.split(|&b| b == b'\n').count();
        if case.should_parse {
            good += 1;
            match (run(&case.input, false), run(&case.input, true)) {
                (Ok(_), Ok(_)) => good_ok += 1,
                (a, b) => failures.push(format!(
                    "{}: should parse: default {a:?}, strict {b:?}",
                    case.name
                )),
            }
        } else {
            bad += 1;
            if run(&case.input, false).is_err() {
                bad_refused_default += 1;
            }
            match run(&case.input, true) {
                Ok(n) => failures.push(format!("{}: should fail, parsed {n} samples", case.name)),
                Err(e) if e.line == 0 || e.line > lines => failures.push(format!(
                    "{}: error names line {} of {lines}: {e}",
                    case.name, e.line
                )),
                Err(e) => {
                    println!("{:<48} {e}", case.name);
                    bad_refused_strict += 1;
                }
            }
        }
    }
    println!(
        "good: {good_ok}/{good} parse; bad: strict refuses {bad_refused_strict}/{bad}, default refuses {bad_refused_default}/{bad}"
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
