//! Go's regular-expression syntax (RE2 as Go's `regexp/syntax` parses it with `Perl|DotNL`,
//! as Prometheus parses label-matcher and relabeling regexes) translated for the `regex`
//! crate, so that the patterns Prometheus accepts are accepted here with the same meaning, the
//! ones it refuses are refused, and the error says what Go's says.
//!
//! The dialects differ in places that change results, not only syntax:
//! - `\d`, `\s`, `\w` and `\b` are ASCII in Go and Unicode in `regex`;
//! - a `{` that does not open a valid repetition (`a{b`, `{v1|v2`) is a literal in Go and an
//!   error in `regex`;
//! - inside a character class Go has no nested classes or set operations (`[a[b]`, `[a&&b]`
//!   are plain characters);
//! - Go refuses `\C`, back references, stray `\E`, and unknown escapes, each with its own error.
//!
//! So the pattern is parsed the way Go's parser walks it (the same order of checks, hence the
//! same first error, with Go's code and the fragment Go quotes: `error parsing regexp:
//! missing closing ): `5(.``), and re-emitted token by token in `regex`'s syntax.

use std::fmt;

/// An invalid pattern, printed as Go's `*syntax.Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoRegexError {
    /// Go's error code text (`missing closing )`).
    pub code: String,
    /// The part of the pattern Go quotes.
    pub expr: String,
}

impl fmt::Display for GoRegexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error parsing regexp: {}: `{}`", self.code, self.expr)
    }
}

impl std::error::Error for GoRegexError {}

fn err(code: &str, expr: &str) -> GoRegexError {
    GoRegexError {
        code: code.to_string(),
        expr: expr.to_string(),
    }
}

const MISSING_PAREN: &str = "missing closing )";
const UNEXPECTED_PAREN: &str = "unexpected )";
const MISSING_BRACKET: &str = "missing closing ]";
const MISSING_REPEAT_ARG: &str = "missing argument to repetition operator";
const INVALID_REPEAT_OP: &str = "invalid nested repetition operator";
const INVALID_REPEAT_SIZE: &str = "invalid repeat count";
const INVALID_ESCAPE: &str = "invalid escape sequence";
const INVALID_CHAR_RANGE: &str = "invalid character class range";
const INVALID_NAMED_CAPTURE: &str = "invalid named capture";
const INVALID_PERL_OP: &str = "invalid or unsupported Perl syntax";
const TRAILING_BACKSLASH: &str = "trailing backslash at end of expression";

/// Go's Unicode general categories (`unicode.Categories`).
const CATEGORIES: &[&str] = &[
    "C", "Cc", "Cf", "Co", "Cs", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me", "Mn", "N",
    "Nd", "Nl", "No", "P", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "S", "Sc", "Sk", "Sm", "So",
    "Z", "Zl", "Zp", "Zs",
];

/// What the top of Go's parse stack is, which decides whether a repetition has an argument.
#[derive(Clone, Copy, PartialEq)]
enum Top {
    /// Nothing yet, or a `(` or `|` marker.
    Marker,
    /// Something repeatable.
    Item,
}

struct Translator<'a> {
    whole: &'a str,
    out: String,
    /// Open groups: whether each was a marker (`(`) — flag-only groups push nothing.
    depth: usize,
    top: Top,
    /// Where in `out` flag groups (`(?i)`) began that follow something repeatable: a
    /// repetition after them applies to that item (Go's flags push nothing), so it is
    /// emitted before the flags, where `regex` wants it.
    pending_flags: Option<usize>,
}

/// `ch` escaped for `regex` when it is a metacharacter.
fn push_literal(out: &mut String, ch: char) {
    let mut buf = [0u8; 4];
    out.push_str(&regex::escape(ch.encode_utf8(&mut buf)));
}

/// Go's Perl classes, ASCII only: the `regex` class for `\d`, `\D`, … (`None` for others).
fn perl_class(c: char) -> Option<&'static str> {
    Some(match c {
        'd' => "[0-9]",
        'D' => "[^0-9]",
        's' => "[\\t\\n\\x0C\\r ]",
        'S' => "[^\\t\\n\\x0C\\r ]",
        'w' => "[0-9A-Za-z_]",
        'W' => "[^0-9A-Za-z_]",
        _ => return None,
    })
}

/// The next char of `s` (which is not empty).
fn first(s: &str) -> char {
    s.chars().next().expect("not empty")
}

fn is_octal(b: Option<&u8>) -> bool {
    matches!(b, Some(b'0'..=b'7'))
}

/// Go's `parseEscape`: the char an escape stands for and the rest, or Go's error.
fn parse_escape(s: &str) -> Result<(char, &str), GoRegexError> {
    let t = &s[1..];
    if t.is_empty() {
        return Err(err(TRAILING_BACKSLASH, ""));
    }
    let c = first(t);
    let mut t = &t[c.len_utf8()..];
    let invalid = |t: &str| err(INVALID_ESCAPE, &s[..s.len() - t.len()]);
    match c {
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => return Ok((c, t)),
        '1'..='7' if !is_octal(t.as_bytes().first()) => {}
        '0'..='7' => {
            let mut r = c as u32 - '0' as u32;
            for _ in 1..3 {
                if !is_octal(t.as_bytes().first()) {
                    break;
                }
                r = r * 8 + (t.as_bytes()[0] - b'0') as u32;
                t = &t[1..];
            }
            return Ok((char::from_u32(r).expect("octal below 0o777"), t));
        }
        'x' if !t.is_empty() => {
            let c2 = first(t);
            t = &t[c2.len_utf8()..];
            if c2 == '{' {
                let mut r: u32 = 0;
                let mut n = 0;
                loop {
                    if t.is_empty() {
                        return Err(invalid(t));
                    }
                    let h = first(t);
                    t = &t[h.len_utf8()..];
                    if h == '}' {
                        break;
                    }
                    let Some(v) = h.to_digit(16) else {
                        return Err(invalid(t));
                    };
                    r = r * 16 + v;
                    if r > 0x10FFFF {
                        return Err(invalid(t));
                    }
                    n += 1;
                }
                if n == 0 {
                    return Err(invalid(t));
                }
                // Go accepts surrogates here; they match nothing in UTF-8 text.
                return Ok((char::from_u32(r).unwrap_or('\u{FFFD}'), t));
            }
            if t.is_empty() {
                return Err(invalid(t));
            }
            let c3 = first(t);
            t = &t[c3.len_utf8()..];
            if let (Some(x), Some(y)) = (c2.to_digit(16), c3.to_digit(16)) {
                return Ok((char::from_u32(x * 16 + y).expect("byte"), t));
            }
        }
        'a' => return Ok(('\x07', t)),
        'f' => return Ok(('\x0C', t)),
        'n' => return Ok(('\n', t)),
        'r' => return Ok(('\r', t)),
        't' => return Ok(('\t', t)),
        'v' => return Ok(('\x0B', t)),
        _ => {}
    }
    Err(invalid(t))
}

/// Go's `parseUnicodeClass` at `s` (which starts with `\p` or `\P`): the `regex` class and
/// the rest, `None` when `s` is no Unicode class.
fn parse_unicode_class(s: &str) -> Result<Option<(String, &str)>, GoRegexError> {
    let b = s.as_bytes();
    if b.len() < 2 || b[0] != b'\\' || (b[1] != b'p' && b[1] != b'P') {
        return Ok(None);
    }
    let mut negated = b[1] == b'P';
    let t = &s[2..];
    if t.is_empty() {
        return Ok(None);
    }
    let c = first(t);
    let (seq, mut name, rest) = if c != '{' {
        let end = 2 + c.len_utf8();
        (&s[..end], &s[2..end], &s[end..])
    } else {
        let Some(end) = s.find('}') else {
            return Err(err(INVALID_CHAR_RANGE, s));
        };
        (&s[..end + 1], &s[3..end], &s[end + 1..])
    };
    if let Some(n) = name.strip_prefix('^') {
        negated = !negated;
        name = n;
    }
    let known = name == "Any"
        || CATEGORIES.contains(&name)
        || (name.starts_with(|c: char| c.is_ascii_uppercase())
            && name.len() > 2
            && regex::Regex::new(&format!("\\p{{sc={name}}}")).is_ok());
    if !known {
        return Err(err(INVALID_CHAR_RANGE, seq));
    }
    let class = match (name, negated) {
        ("Any", false) => "[\\x{0}-\\x{10FFFF}]".to_string(),
        ("Any", true) => "[^\\x{0}-\\x{10FFFF}]".to_string(),
        (n, neg) if CATEGORIES.contains(&n) => {
            format!("\\{}{{gc={n}}}", if neg { 'P' } else { 'p' })
        }
        (n, neg) => format!("\\{}{{sc={n}}}", if neg { 'P' } else { 'p' }),
    };
    Ok(Some((class, rest)))
}

impl<'a> Translator<'a> {
    fn set_top(&mut self, top: Top) {
        self.top = top;
        self.pending_flags = None;
    }

    /// Go's `parseClass` at `s` (which starts with `[`): emits the class, returns the rest.
    fn class(&mut self, s: &'a str) -> Result<&'a str, GoRegexError> {
        let mut t = &s[1..];
        let mut out = String::from("[");
        if t.starts_with('^') {
            out.push('^');
            t = &t[1..];
        }
        let mut first_item = true;
        while t.is_empty() || !t.starts_with(']') || first_item {
            first_item = false;
            if t.starts_with("[:")
                && let Some(i) = t[2..].find(":]")
            {
                let name = &t[..i + 4];
                let known = [
                    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower",
                    "print", "punct", "space", "upper", "word", "xdigit",
                ]
                .iter()
                .any(|g| name == format!("[:{g}:]") || name == format!("[:^{g}:]"));
                if !known {
                    return Err(err(INVALID_CHAR_RANGE, name));
                }
                out.push('[');
                out.push_str(name);
                out.push(']');
                t = &t[name.len()..];
                continue;
            }
            if let Some((class, rest)) = parse_unicode_class(t)? {
                out.push_str(&class);
                t = rest;
                continue;
            }
            if t.len() >= 2
                && t.starts_with('\\')
                && let Some(class) = perl_class(first(&t[1..]))
            {
                out.push_str(class);
                t = &t[2..];
                continue;
            }
            let range_start = t;
            let (lo, rest) = class_char(t, s)?;
            t = rest;
            let mut hi = lo;
            if t.len() >= 2 && t.starts_with('-') && !t[1..].starts_with(']') {
                let (h, rest) = class_char(&t[1..], s)?;
                t = rest;
                hi = h;
                if hi < lo {
                    let frag = &range_start[..range_start.len() - t.len()];
                    return Err(err(INVALID_CHAR_RANGE, frag));
                }
            }
            push_literal(&mut out, lo);
            if hi != lo {
                out.push('-');
                push_literal(&mut out, hi);
            }
        }
        out.push(']');
        self.out.push_str(&out);
        self.set_top(Top::Item);
        Ok(&t[1..])
    }

    /// A repetition operator (`before` starts with it, `after` follows it).
    fn repeat(
        &mut self,
        before: &'a str,
        mut after: &'a str,
        last_repeat: Option<&'a str>,
    ) -> Result<&'a str, GoRegexError> {
        if after.starts_with('?') {
            after = &after[1..];
        }
        if let Some(last) = last_repeat {
            return Err(err(INVALID_REPEAT_OP, &last[..last.len() - after.len()]));
        }
        if self.top == Top::Marker {
            return Err(err(
                MISSING_REPEAT_ARG,
                &before[..before.len() - after.len()],
            ));
        }
        let op = &before[..before.len() - after.len()];
        match self.pending_flags {
            Some(at) => self.out.insert_str(at, op),
            None => self.out.push_str(op),
        }
        self.set_top(Top::Item);
        Ok(after)
    }

    /// Go's `parsePerlFlags` at `s` (which starts with `(?`).
    fn perl_flags(&mut self, s: &'a str) -> Result<&'a str, GoRegexError> {
        // Named groups: `(?P<name>` and, since Go 1.22, `(?<name>`.
        let named = if s.len() > 4 && s[2..].starts_with("P<") {
            Some(4)
        } else if s.len() > 3 && s[2..].starts_with('<') {
            Some(3)
        } else {
            None
        };
        if let Some(start) = named {
            let Some(end) = s.find('>') else {
                return Err(err(INVALID_NAMED_CAPTURE, s));
            };
            let name = &s[start..end];
            if name.is_empty() || !name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()) {
                return Err(err(INVALID_NAMED_CAPTURE, &s[..end + 1]));
            }
            self.out.push_str("(?P<");
            self.out.push_str(name);
            self.out.push('>');
            self.depth += 1;
            self.set_top(Top::Marker);
            return Ok(&s[end + 1..]);
        }
        let mut t = &s[2..];
        let mut negated = false;
        let mut saw_flag = false;
        while !t.is_empty() {
            let c = first(t);
            t = &t[c.len_utf8()..];
            match c {
                'i' | 'm' | 's' | 'U' => saw_flag = true,
                '-' => {
                    if negated {
                        break;
                    }
                    negated = true;
                    saw_flag = false;
                }
                ':' | ')' => {
                    if negated && !saw_flag {
                        break;
                    }
                    let at = self.out.len();
                    self.out.push_str(&s[..s.len() - t.len()]);
                    if c == ':' {
                        self.depth += 1;
                        self.set_top(Top::Marker);
                    } else if self.top == Top::Item && self.pending_flags.is_none() {
                        self.pending_flags = Some(at);
                    }
                    return Ok(t);
                }
                _ => break,
            }
        }
        Err(err(INVALID_PERL_OP, &s[..s.len() - t.len()]))
    }

    fn run(mut self) -> Result<String, GoRegexError> {
        let mut t = self.whole;
        let mut last_repeat: Option<&'a str> = None;
        while !t.is_empty() {
            let mut repeat = None;
            let c = first(t);
            match c {
                '(' if t.starts_with("(?") => t = self.perl_flags(t)?,
                '(' => {
                    self.out.push('(');
                    self.depth += 1;
                    self.set_top(Top::Marker);
                    t = &t[1..];
                }
                '|' => {
                    self.out.push('|');
                    self.set_top(Top::Marker);
                    t = &t[1..];
                }
                ')' => {
                    if self.depth == 0 {
                        return Err(err(UNEXPECTED_PAREN, self.whole));
                    }
                    self.depth -= 1;
                    self.out.push(')');
                    self.set_top(Top::Item);
                    t = &t[1..];
                }
                '^' | '$' | '.' => {
                    self.out.push(c);
                    self.set_top(Top::Item);
                    t = &t[1..];
                }
                '[' => t = self.class(t)?,
                '*' | '+' | '?' => {
                    let before = t;
                    t = self.repeat(before, &t[1..], last_repeat)?;
                    repeat = Some(before);
                }
                '{' => match parse_repeat(t) {
                    None => {
                        self.out.push_str("\\{");
                        self.set_top(Top::Item);
                        t = &t[1..];
                    }
                    Some((min, max, after)) => {
                        let before = t;
                        if min > 1000 || max.is_some_and(|m| m > 1000 || min > m) {
                            return Err(err(
                                INVALID_REPEAT_SIZE,
                                &before[..before.len() - after.len()],
                            ));
                        }
                        t = self.repeat(before, after, last_repeat)?;
                        repeat = Some(before);
                    }
                },
                '\\' => t = self.escape(t)?,
                _ => {
                    push_literal(&mut self.out, c);
                    self.set_top(Top::Item);
                    t = &t[c.len_utf8()..];
                }
            }
            last_repeat = repeat;
        }
        if self.depth != 0 {
            return Err(err(MISSING_PAREN, self.whole));
        }
        Ok(self.out)
    }

    fn escape(&mut self, t: &'a str) -> Result<&'a str, GoRegexError> {
        if t.len() >= 2 {
            let c = first(&t[1..]);
            match c {
                'A' | 'b' | 'B' | 'z' => {
                    // Go's word boundaries are ASCII.
                    self.out.push_str(match c {
                        'b' => "(?-u:\\b)",
                        'B' => "(?-u:\\B)",
                        'A' => "\\A",
                        _ => "\\z",
                    });
                    self.set_top(Top::Item);
                    return Ok(&t[2..]);
                }
                'C' => return Err(err(INVALID_ESCAPE, &t[..2])),
                'Q' => {
                    let (lit, rest) = match t[2..].find("\\E") {
                        Some(e) => (&t[2..2 + e], &t[2 + e + 2..]),
                        None => (&t[2..], ""),
                    };
                    for ch in lit.chars() {
                        push_literal(&mut self.out, ch);
                        self.set_top(Top::Item);
                    }
                    return Ok(rest);
                }
                _ => {}
            }
        }
        if let Some((class, rest)) = parse_unicode_class(t)? {
            self.out.push_str(&class);
            self.set_top(Top::Item);
            return Ok(rest);
        }
        if t.len() >= 2
            && let Some(class) = perl_class(first(&t[1..]))
        {
            self.out.push_str(class);
            self.set_top(Top::Item);
            return Ok(&t[2..]);
        }
        let (ch, rest) = parse_escape(t)?;
        push_literal(&mut self.out, ch);
        self.set_top(Top::Item);
        Ok(rest)
    }
}

/// Go's `parseClassChar`: one (possibly escaped) char of a class.
fn class_char<'a>(s: &'a str, whole_class: &str) -> Result<(char, &'a str), GoRegexError> {
    if s.is_empty() {
        return Err(err(MISSING_BRACKET, whole_class));
    }
    if s.starts_with('\\') {
        return parse_escape(s);
    }
    let c = first(s);
    Ok((c, &s[c.len_utf8()..]))
}

/// Go's `parseRepeat`: `{n}`, `{n,}` or `{n,m}` at the start of `s`, as (min, max, rest);
/// `None` when `{` opens no repetition (and is then a literal).
fn parse_repeat(s: &str) -> Option<(u64, Option<u64>, &str)> {
    let s = s.strip_prefix('{')?;
    let (min, s) = parse_int(s)?;
    let (max, s) = if let Some(s) = s.strip_prefix(',') {
        if s.starts_with('}') {
            (None, s)
        } else {
            let (m, s) = parse_int(s)?;
            (Some(m), s)
        }
    } else {
        (Some(min), s)
    };
    let rest = s.strip_prefix('}')?;
    Some((min, max, rest))
}

/// Go's `parseInt`: decimal digits without a leading zero (a lone `0` is fine); numbers too
/// large for Go (8 digits or more) count as over the limit.
fn parse_int(s: &str) -> Option<(u64, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 || (n > 1 && s.starts_with('0')) {
        return None;
    }
    let v = if n >= 8 {
        u64::MAX
    } else {
        s[..n].parse().ok()?
    };
    Some((v, &s[n..]))
}

/// Rewrites a Go pattern into one `regex` reads the same way, or Go's error for it.
pub fn translate(pattern: &str) -> Result<String, GoRegexError> {
    Translator {
        whole: pattern,
        out: String::with_capacity(pattern.len() + 8),
        depth: 0,
        top: Top::Marker,
        pending_flags: None,
    }
    .run()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go_err(p: &str) -> String {
        translate(p).unwrap_err().to_string()
    }

    #[test]
    fn literal_braces_are_escaped() {
        assert_eq!(translate("{v1|v2").unwrap(), "\\{v1|v2");
        assert_eq!(translate("a{b}").unwrap(), "a\\{b\\}");
        assert_eq!(translate("a{2}").unwrap(), "a{2}");
        assert_eq!(translate("a{2,}b{1,3}?").unwrap(), "a{2,}b{1,3}?");
        assert_eq!(translate("a{,3}").unwrap(), "a\\{,3\\}");
    }

    #[test]
    fn classes_read_as_go_reads_them() {
        assert_eq!(translate("[a[b]").unwrap(), "[a\\[b]");
        assert_eq!(translate("[]a]").unwrap(), "[\\]a]");
        assert_eq!(translate("[^]a]").unwrap(), "[^\\]a]");
        assert_eq!(translate("[[:alpha:]x]").unwrap(), "[[[:alpha:]]x]");
        assert_eq!(translate("[a&&b]").unwrap(), "[a\\&\\&b]");
        assert_eq!(translate("[\\d-]").unwrap(), "[[0-9]\\-]");
    }

    #[test]
    fn perl_classes_are_ascii() {
        let re = crate::matcher::anchored_regex("\\d+").unwrap();
        assert!(re.is_match("42"));
        assert!(!re.is_match("٤٢"));
        let re = crate::matcher::anchored_regex("\\w").unwrap();
        assert!(!re.is_match("é"));
    }

    #[test]
    fn go_errors() {
        assert_eq!(
            go_err("5(."),
            "error parsing regexp: missing closing ): `5(.`"
        );
        assert_eq!(
            go_err("mo)el"),
            "error parsing regexp: unexpected ): `mo)el`"
        );
        assert_eq!(
            go_err("5.[."),
            "error parsing regexp: missing closing ]: `[.`"
        );
        assert_eq!(
            go_err("*model"),
            "error parsing regexp: missing argument to repetition operator: `*`"
        );
        assert_eq!(
            go_err("a|+b"),
            "error parsing regexp: missing argument to repetition operator: `+`"
        );
        assert_eq!(
            go_err("a**"),
            "error parsing regexp: invalid nested repetition operator: `**`"
        );
        assert_eq!(
            go_err("a{1001}"),
            "error parsing regexp: invalid repeat count: `{1001}`"
        );
        assert_eq!(
            go_err("ab\\"),
            "error parsing regexp: trailing backslash at end of expression: ``"
        );
        assert_eq!(
            go_err("a\\E("),
            "error parsing regexp: invalid escape sequence: `\\E`"
        );
        assert_eq!(
            go_err("\\2"),
            "error parsing regexp: invalid escape sequence: `\\2`"
        );
        assert_eq!(
            go_err("[z-a]"),
            "error parsing regexp: invalid character class range: `z-a`"
        );
        assert_eq!(
            go_err("(?"),
            "error parsing regexp: invalid or unsupported Perl syntax: `(?`"
        );
        assert_eq!(
            go_err("(?+"),
            "error parsing regexp: invalid or unsupported Perl syntax: `(?+`"
        );
        assert_eq!(
            go_err("\\p{Foo}"),
            "error parsing regexp: invalid character class range: `\\p{Foo}`"
        );
    }

    #[test]
    fn groups_with_names_and_flags() {
        assert_eq!(translate("(?P<x>a)(b)").unwrap(), "(?P<x>a)(b)");
        assert_eq!(translate("(?i)abc").unwrap(), "(?i)abc");
        assert_eq!(translate("(?i:a)+").unwrap(), "(?i:a)+");
        assert_eq!(translate("(?<n>a)*").unwrap(), "(?P<n>a)*");
        assert!(translate("(?i:a").is_err());
        // Flags push nothing: the repetition applies to what precedes them.
        assert!(translate("&(?i)*").is_ok());
    }

    #[test]
    fn quoted_text_is_literal() {
        assert_eq!(translate("\\Qa.b\\E+").unwrap(), "a\\.b+");
        assert_eq!(translate("a\\Q").unwrap(), "a");
    }
}
