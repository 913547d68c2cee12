//! Lexing: splits template source into text and `{{ }}` actions (applying the `{{-`/`-}}`
//! trim markers and noting each action's line), and turns an action into tokens.
//!
//! Kept apart from the parser because Go's quoting and trimming rules are fiddly and
//! self-contained: nothing here knows what a pipeline or a control structure is.

use super::TemplateError;

/// One token of an action.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Field(String),
    Var(String),
    Str(String),
    Num(f64, bool),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

/// Tokenizes the inside of one action; `line` is where it starts, for errors.
pub(super) fn lex_action(s: &str, line: usize) -> Result<Vec<Tok>, TemplateError> {
    let err = |msg: String| TemplateError::lex(line, msg);
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '|' {
            out.push(Tok::Pipe);
            i += 1;
        } else if c == '(' {
            out.push(Tok::LParen);
            i += 1;
        } else if c == ')' {
            out.push(Tok::RParen);
            i += 1;
        } else if c == ',' {
            out.push(Tok::Comma);
            i += 1;
        } else if c == ':' && b.get(i + 1) == Some(&'=') {
            out.push(Tok::Declare);
            i += 2;
        } else if c == '=' {
            out.push(Tok::Assign);
            i += 1;
        } else if c == '"' {
            let mut v = String::new();
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err(err("unterminated quoted string".into())),
                    Some('"') => break,
                    Some('\\') => {
                        i += 1;
                        match b.get(i) {
                            Some('n') => v.push('\n'),
                            Some('t') => v.push('\t'),
                            Some('r') => v.push('\r'),
                            Some('\\') => v.push('\\'),
                            Some('"') => v.push('"'),
                            Some(c) => {
                                v.push('\\');
                                v.push(*c);
                            }
                            None => return Err(err("unterminated quoted string".into())),
                        }
                    }
                    Some(c) => v.push(*c),
                }
                i += 1;
            }
            i += 1;
            out.push(Tok::Str(v));
        } else if c == '`' {
            let start = i + 1;
            let end = b[start..]
                .iter()
                .position(|&c| c == '`')
                .ok_or_else(|| err("unterminated raw quoted string".into()))?;
            out.push(Tok::Str(b[start..start + end].iter().collect()));
            i = start + end + 1;
        } else if c == '.' || c == '$' {
            let start = i;
            i += 1;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            let word: String = b[start + 1..i].iter().collect();
            if c == '$' {
                out.push(Tok::Var(word));
            } else if word.is_empty() && matches!(b.get(i), Some(d) if d.is_ascii_digit()) {
                return Err(err("bad number syntax".into()));
            } else {
                out.push(Tok::Field(word));
            }
        } else if c.is_ascii_digit()
            || ((c == '-' || c == '+')
                && matches!(b.get(i + 1), Some(d) if d.is_ascii_digit() || *d == '.'))
        {
            let start = i;
            i += 1;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric()
                    || b[i] == '.'
                    || ((b[i] == '-' || b[i] == '+') && matches!(b[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            let t: String = b[start..i].iter().collect();
            let is_int = !t.contains(['.', 'e', 'E']);
            let v = if let Some(h) = t.strip_prefix("0x") {
                i64::from_str_radix(h, 16).map(|v| v as f64).map_err(|_| ())
            } else {
                t.parse::<f64>().map_err(|_| ())
            }
            .map_err(|_| err(format!("bad number syntax: {t:?}")))?;
            out.push(Tok::Num(v, is_int));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(b[start..i].iter().collect()));
        } else {
            return Err(err(format!("unexpected {c:?} in command")));
        }
    }
    // Glue field chains: `.a.b` lexes as Field(a), Field(b) with no space between; we
    // cannot tell spacing here, so the parser treats consecutive fields after an operand
    // as a chain only when lexed adjacent. Re-lex adjacency from the source instead.
    Ok(out)
}

/// A piece of source: literal text, or the inside of an action without its braces.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Part {
    pub(super) action: bool,
    pub(super) text: String,
    /// The 1-based line the piece starts on (for an action, the line of its `{{`).
    pub(super) line: usize,
}

/// Splits source into text and `{{ }}` actions, applying trim markers.
pub(super) fn split(src: &str) -> Result<Vec<Part>, TemplateError> {
    let mut out: Vec<Part> = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    let mut line = 1;
    while let Some(open) = rest.find("{{") {
        let text_line = line;
        line += newlines(&rest[..open]);
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[open + 2..];
        let trim_left =
            after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if trim_left {
            text = text.trim_end();
        }
        out.push(Part {
            action: false,
            text: text.to_string(),
            line: text_line,
        });
        let inner_start = if trim_left { 2 } else { 0 };
        let body = &after[inner_start..];
        // Find the closing braces outside quoted strings.
        let close = find_close(body).ok_or_else(|| TemplateError::lex(line, "unclosed action"))?;
        let mut inner = &body[..close];
        trim_next = false;
        if inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-") {
            inner = &inner[..inner.len() - 1];
            trim_next = true;
        }
        out.push(Part {
            action: true,
            text: inner.to_string(),
            line,
        });
        let consumed = open + 2 + inner_start + close + 2;
        line += newlines(&rest[open..consumed]);
        rest = &rest[consumed..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    out.push(Part {
        action: false,
        text: text.to_string(),
        line,
    });
    Ok(out)
}

fn newlines(s: &str) -> usize {
    s.bytes().filter(|&b| b == b'\n').count()
}

fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        match quote {
            Some(q) => {
                if b[i] == b'\\' && q == b'"' {
                    i += 1;
                } else if b[i] == q {
                    quote = None;
                }
            }
            None => {
                if b[i] == b'"' || b[i] == b'`' {
                    quote = Some(b[i]);
                } else if b[i] == b'}' && b.get(i + 1) == Some(&b'}') {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(action: bool, text: &str, line: usize) -> Part {
        Part {
            action,
            text: text.to_string(),
            line,
        }
    }

    #[test]
    fn split_trims_and_numbers_lines() {
        assert_eq!(
            split("a \n {{- .x -}} \n b{{\n.y}}\nc").unwrap(),
            vec![
                part(false, "a", 1),
                part(true, ".x ", 2),
                part(false, "b", 2),
                part(true, "\n.y", 3),
                part(false, "\nc", 4),
            ]
        );
        assert_eq!(
            split("x\n\n{{ .a").unwrap_err(),
            TemplateError::lex(3, "unclosed action")
        );
    }

    #[test]
    fn lex_tokens_and_errors() {
        assert_eq!(
            lex_action("$x := .A.b | printf \"%d\" -1", 1).unwrap(),
            vec![
                Tok::Var("x".into()),
                Tok::Declare,
                Tok::Field("A".into()),
                Tok::Field("b".into()),
                Tok::Pipe,
                Tok::Ident("printf".into()),
                Tok::Str("%d".into()),
                Tok::Num(-1.0, true),
            ]
        );
        assert_eq!(
            lex_action("`raw", 7).unwrap_err(),
            TemplateError::lex(7, "unterminated raw quoted string")
        );
        assert_eq!(
            lex_action("#", 1).unwrap_err().to_string(),
            "unexpected '#' in command"
        );
    }
}
