//! Decoding YAML into the schema, with serde's errors made to name the line and key.
//!
//! serde_yaml's messages are close to useful but not quite: a bad duration is reported at
//! the enclosing mapping, and an unknown key lists every allowed key. This stage fixes both
//! before anything is validated.

use crate::error::{ConfigError, Location};
use crate::lines::LineIndex;
use std::path::Path;

pub(super) fn decode<T: serde::de::DeserializeOwned + Default>(
    text: &str,
    file: &Path,
) -> Result<T, ConfigError> {
    let blank = text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    });
    if blank {
        return Ok(T::default());
    }
    serde_yaml::from_str(text).map_err(|e| {
        let mut location = e.location().map(|l| Location {
            line: l.line(),
            column: l.column(),
        });
        let mut message = e.to_string();
        if let Some(l) = e.location() {
            let suffix = format!(" at line {} column {}", l.line(), l.column());
            if let Some(s) = message.strip_suffix(&suffix) {
                message = s.to_string();
            }
        }
        refine_value_error(text, &mut location, &mut message);
        shorten_unknown_field(&mut message);
        ConfigError::Parse {
            file: file.to_path_buf(),
            location,
            message,
        }
    })
}

/// serde reports a bad scalar (duration, size) at the start of the enclosing mapping, with
/// that mapping's path. Find the key that holds the quoted bad value, so the message names the
/// exact line and key: `scrape_configs[0].scrape_interval: not a valid duration ...`.
fn refine_value_error(text: &str, location: &mut Option<Location>, message: &mut String) {
    let Some(loc) = *location else { return };
    let (prefix, msg) = match message.split_once(": ") {
        Some((p, m)) if !p.contains(' ') => (p.to_string(), m.to_string()),
        _ => (String::new(), message.clone()),
    };
    let is_value_error =
        msg.starts_with("not a valid duration string") || msg.starts_with("not a valid size");
    let Some(value) = msg.split('"').nth(1).filter(|_| is_value_error) else {
        return;
    };
    let index = LineIndex::build(text);
    for (n, line) in text.lines().enumerate().skip(loc.line.saturating_sub(1)) {
        let Some((_, v)) = line.split_once(':') else {
            continue;
        };
        let v = v
            .split(" #")
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches(|c| c == '"' || c == '\'');
        if v == value {
            if let Some((path, l)) =
                index.path_at_line(n + 1, if prefix == "." { "" } else { &prefix })
            {
                *location = Some(l);
                *message = format!("{path}: {msg}");
            }
            return;
        }
    }
}

/// Replaces serde's list of every allowed key with the closest one.
fn shorten_unknown_field(message: &mut String) {
    let Some(start) = message.find("unknown field `") else {
        return;
    };
    let rest = &message[start + "unknown field `".len()..];
    let Some(end) = rest.find('`') else { return };
    let field = rest[..end].to_string();
    let Some(list_at) = rest.find(", expected ") else {
        return;
    };
    let candidates: Vec<&str> = rest[list_at..].split('`').skip(1).step_by(2).collect();
    let best = candidates
        .iter()
        .map(|c| (edit_distance(&field, c), *c))
        .min();
    let hint = match best {
        Some((d, c)) if d <= 3 || c.contains(field.as_str()) => format!(" (did you mean `{c}`?)"),
        _ => String::new(),
    };
    *message = format!(
        "{}unknown field `{field}`{hint}: no such key here",
        &message[..start]
    );
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
