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
        use vigil_model::StorageError;
        match &e {
            TsdbError::Io { source, .. } => StorageError::Io {
                kind: source.kind(),
                message: e.to_string(),
            },
            TsdbError::Corrupt { .. } => StorageError::Corrupt(e.to_string()),
            TsdbError::Invalid(_) | TsdbError::Locked { .. } => {
                StorageError::Invalid(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::StorageError;

    #[test]
    fn storage_errors_keep_their_kind() {
        let io = io_err(
            Path::new("/d/wal/00000001"),
            std::io::ErrorKind::StorageFull.into(),
        );
        assert!(matches!(
            StorageError::from(io),
            StorageError::Io { kind: std::io::ErrorKind::StorageFull, ref message } if message.starts_with("/d/wal/00000001: ")
        ));
        let corrupt = TsdbError::Corrupt {
            path: "/d/01ABC/index".into(),
            offset: 17,
            reason: "bad crc".into(),
        };
        assert_eq!(
            StorageError::from(corrupt),
            StorageError::Corrupt("/d/01ABC/index: corrupt data at byte 17: bad crc".into())
        );
    }
}
