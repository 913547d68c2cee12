//! The one error type of this crate.
//!
//! Every refusal names the file and, where it can be found, the line and column, so an operator
//! can jump straight to the offending key: YAML and schema errors take their position from
//! serde_yaml, semantic errors found after parsing look their key path up in a
//! [`LineIndex`](crate::lines::LineIndex) built from the source text.

use std::fmt;
use std::path::PathBuf;

/// A position in a config file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file (or a file it includes) could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The YAML is malformed or does not fit the schema (unknown key, wrong type, bad duration).
    #[error("{}{}: {message}", file.display(), Loc(*location))]
    Parse {
        file: PathBuf,
        location: Option<Location>,
        message: String,
    },

    /// The YAML fits the schema but breaks a rule (duplicate job name, timeout > interval, ...).
    /// `key` is the path of the offending key, e.g. `scrape_configs[2].scrape_timeout`.
    #[error("{}{}: {key}: {message}", file.display(), Loc(*location))]
    Invalid {
        file: PathBuf,
        location: Option<Location>,
        key: String,
        message: String,
    },
}

impl ConfigError {
    /// The file the error is about.
    pub fn file(&self) -> &std::path::Path {
        match self {
            ConfigError::Io { path, .. } => path,
            ConfigError::Parse { file, .. } | ConfigError::Invalid { file, .. } => file,
        }
    }

    /// Line and column of the error, when known.
    pub fn location(&self) -> Option<Location> {
        match self {
            ConfigError::Io { .. } => None,
            ConfigError::Parse { location, .. } | ConfigError::Invalid { location, .. } => {
                *location
            }
        }
    }
}

struct Loc(Option<Location>);

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(l) => write!(f, ":{}:{}", l.line, l.column),
            None => Ok(()),
        }
    }
}

/// A semantic error before it is tied to a file: the key path and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub key: String,
    pub message: String,
}

impl Problem {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            message: message.into(),
        }
    }
}
