//! The crate's one error type.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TsdbError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: corrupt data at byte {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(
        "{path} is locked by another process: another vigil (or a Prometheus) is using this data directory; stop it, or pass a different --storage.tsdb.path"
    )]
    Locked { path: PathBuf },
}

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> TsdbError {
    TsdbError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl From<TsdbError> for vigil_model::StorageError {
    fn from(e: TsdbError) -> Self {
        vigil_model::StorageError::Io(e.to_string())
    }
}
