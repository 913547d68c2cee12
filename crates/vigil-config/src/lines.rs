//! Where is `scrape_configs[2].scrape_timeout` in the file?
//!
//! serde gives no positions to the values it builds, so errors found after parsing (duplicate
//! job names, timeout greater than interval, ...) would lose their line. Rather than a second,
//! position-keeping YAML parser, we scan the text once and record the line and column of every
//! block-style key and list entry under its path, in serde_yaml's path notation. Flow
//! collections (`[a, b]`, `{a: b}`) are not descended into; an error inside one is reported at
//! the key that holds it, which is close enough for a human.
//!
//! The same pass rewrites `!!binary` scalars (which serde_yaml would hand over undecoded) into
//! their decoded text, and refuses those that are not valid UTF-8, as Prometheus refuses the
//! label names and values they produce.

use crate::error::{ConfigError, Location};
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Default, Clone)]
pub struct LineIndex {
    map: HashMap<String, Location>,
}

struct Frame {
    col: usize,
    path: String,
    is_item: bool,
}

impl LineIndex {
    pub fn build(text: &str) -> Self {
        let mut map: HashMap<String, Location> = HashMap::new();
        let mut frames: Vec<Frame> = Vec::new();
        let mut counters: HashMap<String, usize> = HashMap::new();
        let mut block_scalar: Option<usize> = None;
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            let indent = raw.len() - raw.trim_start_matches(' ').len();
            let content = strip_comment(&raw[indent..]).trim_end();
            if let Some(bi) = block_scalar {
                if content.is_empty() || indent > bi {
                    continue;
                }
                block_scalar = None;
            }
            if content.is_empty()
                || content == "---"
                || content == "..."
                || content.starts_with('%')
                || content.starts_with('\t')
            {
                continue;
            }
            let mut col = indent;
            let mut rest = content;
            while rest == "-" || rest.starts_with("- ") {
                while let Some(t) = frames.last() {
                    if t.col > col || (t.col == col && t.is_item) {
                        frames.pop();
                    } else {
                        break;
                    }
                }
                let parent = frames.last().map(|f| f.path.clone()).unwrap_or_default();
                let counter = counters.entry(parent.clone()).or_insert(0);
                let p = format!("{parent}[{counter}]");
                *counter += 1;
                map.entry(p.clone()).or_insert(Location {
                    line,
                    column: col + 1,
                });
                frames.push(Frame {
                    col,
                    path: p,
                    is_item: true,
                });
                if rest == "-" {
                    rest = "";
                    break;
                }
                let after = &rest[1..];
                let trimmed = after.trim_start();
                col += 1 + (after.len() - trimmed.len());
                rest = trimmed;
            }
            if rest.is_empty() {
                continue;
            }
            if let Some((key, value)) = split_key(rest) {
                while let Some(t) = frames.last() {
                    if t.col >= col {
                        frames.pop();
                    } else {
                        break;
                    }
                }
                let parent = frames.last().map(|f| f.path.as_str()).unwrap_or("");
                let p = if parent.is_empty() {
                    key
                } else {
                    format!("{parent}.{key}")
                };
                map.entry(p.clone()).or_insert(Location {
                    line,
                    column: col + 1,
                });
                counters.remove(&p);
                frames.push(Frame {
                    col,
                    path: p,
                    is_item: false,
                });
                let v = value.trim_start();
                if v.starts_with('|') || v.starts_with('>') {
                    block_scalar = Some(col);
                }
            }
        }
        LineIndex { map }
    }

    /// The deepest recorded path that starts at `line` and lies under `prefix`.
    pub fn path_at_line(&self, line: usize, prefix: &str) -> Option<(&str, Location)> {
        self.map
            .iter()
            .filter(|(p, l)| l.line == line && (prefix.is_empty() || p.starts_with(prefix)))
            .max_by_key(|(p, _)| p.len())
            .map(|(p, l)| (p.as_str(), *l))
    }

    /// Position of `path`, or of its nearest recorded ancestor.
    pub fn find(&self, path: &str) -> Option<Location> {
        let mut p = path;
        loop {
            if let Some(l) = self.map.get(p) {
                return Some(*l);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

fn strip_comment(s: &str) -> &str {
    let mut in_single = false;
    let mut in_double = false;
    let mut prev_ws = true;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_double {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_double = false;
            }
        } else if in_single {
            if c == '\'' {
                in_single = false;
            }
        } else if c == '#' && prev_ws {
            return &s[..i];
        } else if c == '"' && prev_ws_or_indicator(&s[..i]) {
            in_double = true;
        } else if c == '\'' && prev_ws_or_indicator(&s[..i]) {
            in_single = true;
        }
        prev_ws = c == ' ' || c == '\t';
    }
    s
}

fn prev_ws_or_indicator(before: &str) -> bool {
    matches!(
        before.chars().last(),
        None | Some(' ' | '\t' | '[' | '{' | ',' | ':' | '-')
    )
}

/// Splits `key: value` (or `key:`) into the key text and the rest; None for other scalars.
fn split_key(s: &str) -> Option<(String, &str)> {
    let first = s.chars().next()?;
    if matches!(first, '[' | '{' | '?' | '|' | '>' | '&' | '*' | '!') {
        return None;
    }
    if first == '"' || first == '\'' {
        let mut escaped = false;
        let mut end = None;
        for (i, c) in s.char_indices().skip(1) {
            if first == '"' && escaped {
                escaped = false;
                continue;
            }
            if first == '"' && c == '\\' {
                escaped = true;
                continue;
            }
            if c == first {
                end = Some(i);
                break;
            }
        }
        let end = end?;
        let after = s[end + 1..].trim_start_matches(' ');
        let value = after.strip_prefix(':')?;
        if !value.is_empty() && !value.starts_with(' ') {
            return None;
        }
        return Some((s[1..end].to_string(), value));
    }
    let bytes = s.as_bytes();
    for i in 0..bytes.len() {
        if bytes[i] == b':' && (i + 1 == bytes.len() || bytes[i + 1] == b' ') {
            return Some((s[..i].trim_end().to_string(), &s[i + 1..]));
        }
    }
    None
}

/// Replaces each `!!binary` scalar with its decoded text as a double-quoted YAML string, on the
/// same line so positions stay right. Values that do not decode to UTF-8 are refused.
pub fn decode_binary_tags(text: &str, file: &Path) -> Result<String, ConfigError> {
    if !text.contains("!!binary") {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        let mut consumed = 0usize;
        while let Some(pos) = rest.find("!!binary") {
            let head = &rest[..pos];
            if strip_comment(head).len() != head.len() {
                break;
            }
            out.push_str(head);
            let after = &rest[pos + "!!binary".len()..];
            let ws = after.len() - after.trim_start_matches([' ', '\t']).len();
            let scalar_start = &after[ws..];
            let (raw, len) = match scalar_start.chars().next() {
                Some(q @ ('"' | '\'')) => match scalar_start[1..].find(q) {
                    Some(e) => (&scalar_start[1..1 + e], e + 2),
                    None => (&scalar_start[1..], scalar_start.len()),
                },
                _ => {
                    let e = scalar_start
                        .find(|c: char| c.is_whitespace() || c == ',' || c == ']' || c == '}')
                        .unwrap_or(scalar_start.len());
                    let e = match scalar_start[..e].find(": ") {
                        Some(k) => k,
                        None if scalar_start[..e].ends_with(':') => e - 1,
                        None => e,
                    };
                    (&scalar_start[..e], e)
                }
            };
            let location = Some(Location {
                line: n + 1,
                column: consumed + pos + 1,
            });
            let bytes = base64_decode(raw).ok_or_else(|| ConfigError::Parse {
                file: file.to_path_buf(),
                location,
                message: format!("!!binary value {raw:?} is not valid base64"),
            })?;
            let s = String::from_utf8(bytes).map_err(|e| ConfigError::Parse {
                file: file.to_path_buf(),
                location,
                message: format!(
                    "!!binary value {raw:?} decodes to bytes that are not valid UTF-8 ({:02x?}); \
                     label names, label values and other strings must be UTF-8",
                    e.as_bytes()
                ),
            })?;
            out.push_str(&serde_json::to_string(&s).unwrap_or_default());
            let used = pos + "!!binary".len() + ws + len;
            consumed += used;
            rest = &rest[used..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b' ' | b'\n' | b'\r' | b'\t' => continue,
            _ => return None,
        };
        buf = (buf << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# comment
global:
  scrape_interval: 15s # trailing
scrape_configs:
  - job_name: a
    static_configs:
      - targets: ['x:1']
    relabel_configs:
      - source_labels: [a]
        action: drop
      - regex: |
          foo: bar
        action: keep
  - job_name: \"b\"
rule_files:
- one
- two
";

    #[test]
    fn finds_keys_and_entries() {
        let ix = LineIndex::build(DOC);
        let at = |p: &str| ix.find(p).map(|l| (l.line, l.column));
        assert_eq!(at("global.scrape_interval"), Some((3, 3)));
        assert_eq!(at("scrape_configs[0]"), Some((5, 3)));
        assert_eq!(at("scrape_configs[0].job_name"), Some((5, 5)));
        assert_eq!(
            at("scrape_configs[0].static_configs[0].targets"),
            Some((7, 9))
        );
        assert_eq!(
            at("scrape_configs[0].relabel_configs[1].action"),
            Some((13, 9))
        );
        assert_eq!(at("scrape_configs[1].job_name"), Some((14, 5)));
        assert_eq!(at("rule_files[1]"), Some((17, 1)));
        assert_eq!(at("scrape_configs[1].scrape_timeout"), Some((14, 3)));
        assert_eq!(at("nothing"), None);
    }

    #[test]
    fn binary_tags() {
        let p = Path::new("x.yml");
        assert_eq!(
            decode_binary_tags("a: !!binary \"YWJj\"\n", p).unwrap(),
            "a: \"abc\"\n"
        );
        let e = decode_binary_tags("a:\n  !!binary \"/w==\": v\n", p).unwrap_err();
        assert!(e.to_string().starts_with("x.yml:2:3: "), "{e}");
    }
}
