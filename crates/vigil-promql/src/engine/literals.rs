//! Go string semantics that the Rust parser cannot represent.
//!
//! Prometheus unquotes PromQL strings as Go does, so `"\xff"` is the single byte 0xff, an
//! invalid UTF-8 label name that `label_replace` must reject. `promql-parser` turns it into
//! the character U+00FF instead. This scan finds the string literals whose Go bytes are not
//! UTF-8 and returns them as the parser spelled them, so validators can recognise them.

/// The parser's rendering of every string literal in `query` that is invalid UTF-8 in Go.
pub(crate) fn invalid_utf8_literals(query: &str) -> Vec<String> {
    let chars: Vec<char> = query.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '`' => {
                i += 1;
                while i < chars.len() && chars[i] != '`' {
                    i += 1;
                }
                i += 1;
            }
            q @ ('"' | '\'') => {
                i += 1;
                let mut bytes: Vec<u8> = Vec::new();
                let mut rendered = String::new();
                while i < chars.len() && chars[i] != q {
                    let c = chars[i];
                    if c != '\\' {
                        let mut buf = [0u8; 4];
                        bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        rendered.push(c);
                        i += 1;
                        continue;
                    }
                    i += 1;
                    let Some(&e) = chars.get(i) else { break };
                    i += 1;
                    let hex = |n: usize, i: &mut usize| -> Option<u32> {
                        let s: String = chars.get(*i..*i + n)?.iter().collect();
                        *i += n;
                        u32::from_str_radix(&s, 16).ok()
                    };
                    match e {
                        'x' => {
                            let Some(v) = hex(2, &mut i) else { break };
                            bytes.push(v as u8);
                            rendered.extend(char::from_u32(v));
                        }
                        'u' | 'U' => {
                            let n = if e == 'u' { 4 } else { 8 };
                            let Some(c) = hex(n, &mut i).and_then(char::from_u32) else {
                                break;
                            };
                            let mut buf = [0u8; 4];
                            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                            rendered.push(c);
                        }
                        '0'..='7' => {
                            let s: String = std::iter::once(e)
                                .chain(chars.get(i..i + 2).unwrap_or(&[]).iter().copied())
                                .collect();
                            i += 2;
                            let Ok(v) = u32::from_str_radix(&s, 8) else {
                                break;
                            };
                            bytes.push(v as u8);
                            rendered.extend(char::from_u32(v));
                        }
                        other => {
                            let c = match other {
                                'a' => '\x07',
                                'b' => '\x08',
                                'f' => '\x0c',
                                'n' => '\n',
                                'r' => '\r',
                                't' => '\t',
                                'v' => '\x0b',
                                c => c,
                            };
                            let mut buf = [0u8; 4];
                            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                            rendered.push(c);
                        }
                    }
                }
                i += 1;
                if std::str::from_utf8(&bytes).is_err() {
                    out.push(rendered);
                }
            }
            _ => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_invalid_bytes_only() {
        assert_eq!(
            invalid_utf8_literals(r#"f(x, "\xff", "ok")"#),
            vec!["\u{ff}"]
        );
        assert!(invalid_utf8_literals(r#"f("\xc3\xbf", `\xff`)"#).is_empty());
    }
}
