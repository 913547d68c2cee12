//! Label-matcher regexes read as Go reads them: for a few thousand generated patterns, vigil
//! (`vigil_model::matcher::anchored_regex`) and Go's `regexp` (the library Prometheus uses,
//! through a small program built offline with Debian's `golang-go`) must agree on whether the
//! pattern is valid, on the error text when it is not, and on which probe strings it matches
//! when it is.
//!
//! Go 1.19 here is older than the Go Prometheus 3.14 is built with; the syntax they differ
//! in (`(?<name>...)`, Go 1.22) is left out of the generator. Set VIGIL_SKIP_INTEROP=1 to skip
//! on a machine without Go.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Pieces patterns are built from: the metacharacters where the dialects could differ.
const PIECES: &[&str] = &[
    "a",
    "b",
    "1",
    "2",
    ".",
    "*",
    "+",
    "?",
    "|",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    "^",
    "$",
    "\\",
    "-",
    ":",
    "&",
    "~",
    "\\d",
    "\\.",
    "(?i)",
    "(?P<n>",
    "(?:",
    "[:alpha:]",
    "\\Q",
    "\\E",
    "{2}",
    "{1,3}",
    "{,2}",
    "{2,}",
    "\n",
    "é",
    "\\pL",
    "\\z",
    "\\A",
    "\\b",
];

/// Strings every valid pattern is matched against.
const PROBES: &[&str] = &[
    "", "a", "b", "ab", "aa", "aaa", "1", "12", "a1", ".", "{", "}", "{2}", "a{", "a{2}", "-", "&",
    "~", "[", "]", "\n", "A", "é", "a\nb", ":", "\\", ",", "$", "^", "a,b", "ba", "abab",
];

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
}

fn patterns() -> Vec<String> {
    let mut fixed: Vec<String> = [
        "{v1|v2",
        "a{b}",
        "a{,3}",
        "x{2}y",
        "[a[b]",
        "[]a]",
        "[^]a]",
        "[a&&b]",
        "[a--b]",
        "[a~~b]",
        "5(.",
        "mo)el",
        "[..",
        "*x",
        "a**",
        "a{1001}",
        "ab\\",
        "(?P<x>a)(b)",
        "(?i)AB",
        "\\Qa.b\\E+",
        "a|",
        "|a",
        "()",
        "(|a)",
        "a{2}{3}",
        "a+?",
        "a??",
        "\\8",
        "[z-a]",
        "\\x{41}",
        "\\p{Greek}",
        "(?s).",
        "[[:digit:]]+",
        "a{0}",
        "a{1000}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut rng = Rng(0x5DEE_CE66_D1CE_4E5B);
    for _ in 0..6000 {
        let n = 1 + rng.below(6);
        let p: String = (0..n).map(|_| PIECES[rng.below(PIECES.len())]).collect();
        fixed.push(p);
    }
    fixed.sort();
    fixed.dedup();
    fixed
}

fn go_available() -> bool {
    if std::env::var_os("VIGIL_SKIP_INTEROP").is_some() {
        eprintln!("VIGIL_SKIP_INTEROP set: Go regex comparison skipped");
        return false;
    }
    assert!(
        Command::new("go")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "go is missing: install the Debian package golang-go (as .ci/run does), or set VIGIL_SKIP_INTEROP=1"
    );
    true
}

#[test]
fn label_matcher_regexes_behave_as_in_go() {
    if !go_available() {
        return;
    }
    let dir = common::tempdir("regexgo");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/exporters/regexcheck/main.go");
    let bin = dir.join("regexcheck");
    let o = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(&src)
        .env("GO111MODULE", "off")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", dir.join("gocache"))
        .output()
        .expect("running go build");
    assert!(
        o.status.success(),
        "go build failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    let pats = patterns();
    let mut input = String::new();
    for p in &pats {
        input.push_str(&serde_json::to_string(p).unwrap());
        input.push('\n');
    }
    input.push_str("--\n");
    for s in PROBES {
        input.push_str(&serde_json::to_string(s).unwrap());
        input.push('\n');
    }
    let mut child = Command::new(&bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let go: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| match l.strip_prefix("ERR ") {
            Some(q) => format!("ERR {}", serde_json::from_str::<String>(q).unwrap()),
            None => l.to_string(),
        })
        .collect();
    assert_eq!(go.len(), pats.len());

    let (mut valid, mut invalid, mut wrong) = (0, 0, Vec::new());
    for (p, g) in pats.iter().zip(&go) {
        let ours = match vigil_model::matcher::anchored_regex(p) {
            Ok(re) => {
                let bits: String = PROBES
                    .iter()
                    .map(|s| if re.is_match(s) { '1' } else { '0' })
                    .collect();
                format!("OK {bits}")
            }
            Err(e) => format!("ERR {e}"),
        };
        if ours.starts_with("OK") {
            valid += 1;
        } else {
            invalid += 1;
        }
        if ours != *g {
            wrong.push(format!("{p:?}\n  go:    {g}\n  vigil: {ours}"));
        }
    }
    println!("{} patterns: {valid} valid, {invalid} refused", pats.len());
    for w in &wrong {
        println!("DIFFERS {w}");
    }
    assert!(
        wrong.is_empty(),
        "{} of {} patterns differ from Go",
        wrong.len(),
        pats.len()
    );
}
