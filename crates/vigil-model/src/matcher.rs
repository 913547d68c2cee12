//! Label matchers with Prometheus' semantics: regexes are fully anchored and `.` matches
//! newlines (Prometheus 3.x); a matcher against an absent label sees the empty string.

use regex::Regex;
use std::fmt;

#[derive(Debug, Clone)]
pub enum MatchOp {
    Equal,
    NotEqual,
    RegexMatch(Regex),
    RegexNoMatch(Regex),
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub value: String,
    pub op: MatchOp,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum MatcherError {
    /// The pattern is not a valid regular expression; the text is Go's
    /// (`error parsing regexp: missing closing ): `(a``), as Prometheus reports it.
    #[error("{reason}")]
    BadRegex { pattern: String, reason: String },
}

/// Compiles `pattern` as Prometheus does: Go's syntax (see [`crate::goregex`]), anchored at
/// both ends, dot-all.
pub fn anchored_regex(pattern: &str) -> Result<Regex, MatcherError> {
    let bad = |reason: String| MatcherError::BadRegex {
        pattern: pattern.to_string(),
        reason,
    };
    let translated = crate::goregex::translate(pattern).map_err(|e| bad(e.to_string()))?;
    Regex::new(&format!("^(?s:{translated})$")).map_err(|e| match e {
        regex::Error::CompiledTooBig(_) => bad(format!(
            "error parsing regexp: expression too large: `{pattern}`"
        )),
        other => bad(format!("error parsing regexp: {other}")),
    })
}

impl Matcher {
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher {
            name: name.into(),
            value: value.into(),
            op: MatchOp::Equal,
        }
    }
    pub fn not_equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher {
            name: name.into(),
            value: value.into(),
            op: MatchOp::NotEqual,
        }
    }
    pub fn regex(name: impl Into<String>, pattern: &str) -> Result<Self, MatcherError> {
        Ok(Matcher {
            name: name.into(),
            value: pattern.into(),
            op: MatchOp::RegexMatch(anchored_regex(pattern)?),
        })
    }
    pub fn not_regex(name: impl Into<String>, pattern: &str) -> Result<Self, MatcherError> {
        Ok(Matcher {
            name: name.into(),
            value: pattern.into(),
            op: MatchOp::RegexNoMatch(anchored_regex(pattern)?),
        })
    }

    /// Does a label value (empty when the label is absent) satisfy this matcher?
    pub fn matches(&self, value: &str) -> bool {
        match &self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::RegexMatch(re) => re.is_match(value),
            MatchOp::RegexNoMatch(re) => !re.is_match(value),
        }
    }

    /// True if the matcher accepts the empty string, i.e. also series without the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    pub fn op_str(&self) -> &'static str {
        match self.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::RegexMatch(_) => "=~",
            MatchOp::RegexNoMatch(_) => "!~",
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op_str(), self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_anchored_and_dotall() {
        let m = Matcher::regex("a", "fo+").unwrap();
        assert!(m.matches("foo"));
        assert!(!m.matches("xfoo"));
        assert!(!m.matches("foox"));
        let m = Matcher::regex("a", ".*").unwrap();
        assert!(m.matches("a\nb"));
        assert!(m.matches_empty());
    }

    #[test]
    fn negative_matchers() {
        assert!(Matcher::not_equal("a", "x").matches(""));
        assert!(!Matcher::not_regex("a", "x|y").unwrap().matches("y"));
        assert!(Matcher::regex("a", "(").is_err());
    }
}
