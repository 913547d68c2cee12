// Shared checks for the exposition fuzz targets: the parser must never panic, every error
// must name a line inside the input, and every sample's labels must re-lex cleanly.
use vigil_exposition::{Entry, Format, Parser};

pub fn check(data: &[u8], format: Format) {
    let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
    for strict in [false, true] {
        let parser = Parser::new(data, format);
        let parser = if strict { parser.strict() } else { parser };
        for entry in parser {
            match entry {
                Ok(Entry::Sample(s)) => {
                    assert!(!s.series.is_empty());
                    for (name, _value) in s.labels() {
                        assert!(!name.is_empty(), "empty label name from a validated series");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    assert!(e.line >= 1 && e.line <= lines, "error line {} outside 1..={lines}", e.line);
                    assert!(!e.message.is_empty());
                    break;
                }
            }
        }
    }
}
