//! Byte-level lexing helpers shared by both formats.
//!
//! Every function here works on one line (no `\n` inside) that is already known to be valid
//! UTF-8. Positions are byte offsets into that line; all delimiters the lexer stops at are
//! ASCII, so every position it returns is a `char` boundary. Slicing still goes through
//! [`sub`], which never panics, so a lexer bug cannot turn into a crash on hostile input.

use std::borrow::Cow;

use memchr::{memchr, memchr2};

/// First byte of a metric name: `[a-zA-Z_:]`.
pub(crate) fn is_metric_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

/// Later bytes of a metric name: `[a-zA-Z0-9_:]`.
pub(crate) fn is_metric_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

/// First byte of a label name: `[a-zA-Z_]`.
pub(crate) fn is_label_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

/// Later bytes of a label name: `[a-zA-Z0-9_]`.
pub(crate) fn is_label_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `s[from..to]` without the possibility of a panic.
pub(crate) fn sub(s: &str, from: usize, to: usize) -> &str {
    s.get(from..to).unwrap_or("")
}

/// End of the run of bytes starting at `i` that satisfy `f`.
pub(crate) fn scan_while(b: &[u8], mut i: usize, f: impl Fn(u8) -> bool) -> usize {
    while i < b.len() && f(b[i]) {
        i += 1;
    }
    i
}

/// Skips spaces and tabs (the text format's whitespace inside a line).
pub(crate) fn skip_ws(b: &[u8], i: usize) -> usize {
    scan_while(b, i, |c| c == b' ' || c == b'\t')
}

/// Scans a quoted string whose opening quote is at `i - 1`. Returns the index of the closing
/// quote, or `Err(index)` of where the line ended (or a backslash had nothing to escape).
pub(crate) fn scan_quoted(b: &[u8], mut i: usize) -> Result<usize, usize> {
    loop {
        let rest = b.get(i..).unwrap_or(&[]);
        match memchr2(b'"', b'\\', rest) {
            None => return Err(b.len()),
            Some(off) => {
                let j = i + off;
                if b[j] == b'"' {
                    return Ok(j);
                }
                if j + 1 >= b.len() {
                    return Err(j);
                }
                i = j + 2;
            }
        }
    }
}

/// Which escape sequences a piece of text knows. Unknown sequences stay as written
/// (backslash included), as Prometheus does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Escapes {
    /// Label values and quoted names: `\\`, `\"`, `\n`.
    Quoted,
    /// HELP text of the text format 0.0.4: `\\`, `\n`.
    HelpText,
}

/// Unescapes `raw`; borrows when there is no backslash (the common case).
pub(crate) fn unescape(raw: &str, esc: Escapes) -> Cow<'_, str> {
    let bytes = raw.as_bytes();
    let Some(first) = memchr(b'\\', bytes) else {
        return Cow::Borrowed(raw);
    };
    let mut out = String::with_capacity(raw.len());
    out.push_str(sub(raw, 0, first));
    let mut rest = sub(raw, first, raw.len());
    while let Some(pos) = memchr(b'\\', rest.as_bytes()) {
        out.push_str(sub(rest, 0, pos));
        let next = rest.as_bytes().get(pos + 1).copied();
        let consumed = match next {
            Some(b'\\') => {
                out.push('\\');
                2
            }
            Some(b'n') => {
                out.push('\n');
                2
            }
            Some(b'"') if esc == Escapes::Quoted => {
                out.push('"');
                2
            }
            _ => {
                out.push('\\');
                1
            }
        };
        rest = sub(rest, pos + consumed, rest.len());
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Parses a sample or exemplar value in Go's `ParseFloat` syntax without hex floats or
/// underscores: `[+-]digits[.digits][e[+-]digits]`, `[+-]Inf`/`Infinity`, `NaN`
/// (case-insensitive).
pub(crate) fn parse_float(tok: &str) -> Option<f64> {
    let b = tok.as_bytes();
    let (neg, unsigned) = match b.first()? {
        b'+' => (false, &tok[1..]),
        b'-' => (true, &tok[1..]),
        _ => (false, tok),
    };
    if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        return Some(if neg {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if tok.eq_ignore_ascii_case("nan") {
        return Some(f64::NAN);
    }
    if !is_real_number(unsigned) {
        return None;
    }
    tok.parse::<f64>().ok()
}

/// `digits[.digits][e[+-]digits]` or `.digits[...]`, at least one mantissa digit, unsigned.
fn is_real_number(s: &str) -> bool {
    let b = s.as_bytes();
    let int_end = scan_while(b, 0, |c| c.is_ascii_digit());
    let mut i = int_end;
    let mut digits = int_end;
    if b.get(i) == Some(&b'.') {
        let frac_end = scan_while(b, i + 1, |c| c.is_ascii_digit());
        digits += frac_end - (i + 1);
        i = frac_end;
    }
    if digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_end = scan_while(b, i, |c| c.is_ascii_digit());
        if exp_end == i {
            return false;
        }
        i = exp_end;
    }
    i == b.len()
}

/// Parses an integer millisecond timestamp (text format 0.0.4): `[+-]digits`.
pub(crate) fn parse_ms_int(tok: &str) -> Option<i64> {
    let b = tok.as_bytes();
    let digits = match b.first()? {
        b'+' | b'-' => &b[1..],
        _ => b,
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    tok.parse::<i64>().ok()
}

/// Parses an OpenMetrics timestamp (float seconds, no NaN/Inf) into milliseconds, truncating
/// below the millisecond like Go's `int64(f * 1000)`. Plain decimals are converted exactly
/// (no float rounding); exponents go through `f64`. Out-of-range values saturate.
pub(crate) fn parse_om_timestamp(tok: &str) -> Option<i64> {
    let b = tok.as_bytes();
    let (neg, unsigned) = match b.first()? {
        b'+' => (false, &tok[1..]),
        b'-' => (true, &tok[1..]),
        _ => (false, tok),
    };
    if !is_real_number(unsigned) {
        return None;
    }
    let ub = unsigned.as_bytes();
    if ub.iter().any(|&c| c == b'e' || c == b'E') {
        let f: f64 = tok.parse().ok()?;
        return Some((f * 1000.0) as i64);
    }
    let int_end = scan_while(ub, 0, |c| c.is_ascii_digit());
    let mut ms: i128 = 0;
    for &c in &ub[..int_end] {
        ms = (ms * 10 + i128::from(c - b'0')).min(i128::from(i64::MAX) * 10);
    }
    let mut frac = ub.get(int_end + 1..).unwrap_or(&[]).iter();
    for _ in 0..3 {
        let d = frac.next().map_or(0, |&c| i128::from(c - b'0'));
        ms = ms * 10 + d;
    }
    let ms = if neg { -ms } else { ms };
    Some(ms.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats() {
        assert_eq!(parse_float("1"), Some(1.0));
        assert_eq!(parse_float("-1.5e3"), Some(-1500.0));
        assert_eq!(parse_float(".5"), Some(0.5));
        assert_eq!(parse_float("5."), Some(5.0));
        assert_eq!(parse_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_float("-inf"), Some(f64::NEG_INFINITY));
        assert!(parse_float("NaN").is_some_and(f64::is_nan));
        for bad in [
            "", "+", "e5", "1e", "0x1", "1_2", "+NaN", "1.1.1", "a", ".", "1e+", "--1",
        ] {
            assert_eq!(parse_float(bad), None, "{bad}");
        }
    }

    #[test]
    fn om_timestamps() {
        assert_eq!(parse_om_timestamp("1.001"), Some(1001));
        assert_eq!(parse_om_timestamp("000"), Some(0));
        assert_eq!(parse_om_timestamp("-1.5"), Some(-1500));
        assert_eq!(parse_om_timestamp("1.5e3"), Some(1_500_000));
        assert_eq!(parse_om_timestamp("1.0009"), Some(1000));
        assert_eq!(
            parse_om_timestamp("12345678901234567890.1234567890"),
            Some(i64::MAX)
        );
        assert_eq!(parse_om_timestamp("Inf"), None);
        assert_eq!(parse_om_timestamp("NaN"), None);
    }

    #[test]
    fn unescaping() {
        assert!(matches!(
            unescape("plain", Escapes::Quoted),
            Cow::Borrowed("plain")
        ));
        assert_eq!(
            unescape(r#"a\"b\\c\nd\z"#, Escapes::Quoted),
            "a\"b\\c\nd\\z"
        );
        assert_eq!(unescape(r#"a\"b\\c\nd"#, Escapes::HelpText), "a\\\"b\\c\nd");
        assert_eq!(unescape("trailing\\", Escapes::Quoted), "trailing\\");
    }
}
