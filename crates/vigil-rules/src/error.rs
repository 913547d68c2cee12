//! The crate's one error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// A rule file could not be read.
    #[error("{file}: {reason}")]
    Read { file: PathBuf, reason: String },
    /// A rule file is not valid YAML for the rule-file schema.
    #[error("{file}: {reason}")]
    Parse { file: PathBuf, reason: String },
    /// A rule file parsed but a group or rule in it is invalid; one entry per problem.
    #[error("{}", .problems.iter().map(|p| format!("{}: {p}", .file.display())).collect::<Vec<_>>().join("\n"))]
    Invalid {
        file: PathBuf,
        problems: Vec<String>,
    },
    /// A glob in `rule_files` is malformed.
    #[error("invalid rule_files pattern {pattern:?}: {reason}")]
    Glob { pattern: String, reason: String },
    /// A template failed to parse or execute.
    #[error("{0}")]
    Template(String),
    /// A rule's query failed.
    #[error("{0}")]
    Eval(String),
    /// An Alertmanager client could not be built from its settings.
    #[error("alertmanager {index}: {reason}")]
    Notifier { index: usize, reason: String },
    /// A rule unit-test file is malformed.
    #[error("{0}")]
    UnitTest(String),
}
