//! The WAL position a remote-write queue has sent up to, persisted in
//! `DATA_DIR/remote/<queue-key>.json` (written to a temporary file, then renamed), so a
//! restart resumes where the queue stopped instead of skipping to the newest segment.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use vigil_model::wal::{WalPos, WalSource};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SavedPosition {
    pub name: String,
    pub url: String,
    pub segment: u32,
    pub offset: u64,
}

/// A stable key for a queue: FNV-1a of its name and URL, hex. Changing other settings keeps
/// the position; changing the URL or name starts a new queue.
pub fn queue_key(name: &str, url: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes().chain([0xff]).chain(url.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

pub fn position_path(data_dir: &Path, key: &str) -> PathBuf {
    data_dir.join("remote").join(format!("{key}.json"))
}

/// What a queue finds of its saved position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// No position file: the queue never saved one.
    Missing,
    /// A position file that cannot be read or parsed (logged): a save cut short by a power
    /// cut (the periodic saves are not fsynced) or a damaged disk.
    Unreadable,
    At(WalPos),
}

/// Reads a saved position.
pub fn load_saved(path: &Path) -> Saved {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Saved::Missing,
        Err(e) => {
            tracing::warn!(path = %path.display(), "Cannot read the remote-write position: {e}");
            return Saved::Unreadable;
        }
    };
    match serde_json::from_slice::<SavedPosition>(&bytes) {
        Ok(p) => Saved::At(WalPos {
            segment: p.segment,
            offset: p.offset,
        }),
        Err(e) => {
            tracing::warn!(path = %path.display(), "Ignoring a corrupt remote-write position file: {e}");
            Saved::Unreadable
        }
    }
}

/// Reads a saved position; `None` when there is none or it is unreadable (logged).
pub fn load(path: &Path) -> Option<WalPos> {
    match load_saved(path) {
        Saved::At(p) => Some(p),
        Saved::Missing | Saved::Unreadable => None,
    }
}

/// The saved form of a position.
pub fn encode(name: &str, url: &str, pos: WalPos) -> std::io::Result<Vec<u8>> {
    serde_json::to_vec(&SavedPosition {
        name: name.to_string(),
        // Informational; a password in the URL stays out of the data directory.
        url: vigil_config::redact_url(url).into_owned(),
        segment: pos.segment,
        offset: pos.offset,
    })
    .map_err(std::io::Error::other)
}

/// Writes the position atomically (temporary file, optional fsync, rename) through the
/// storage's file layer ([`WalSource::write_state_file`]).
pub fn save(
    db: &dyn WalSource,
    path: &Path,
    name: &str,
    url: &str,
    pos: WalPos,
    sync: bool,
) -> std::io::Result<()> {
    db.write_state_file(path, &encode(name, url, pos)?, sync)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_and_load_round_trip_and_corrupt_files_are_ignored() {
        let dir = std::env::temp_dir().join(format!("vigil-remote-pos-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let key = queue_key("q", "http://x/api/v1/write");
        assert_eq!(key.len(), 16);
        assert_ne!(key, queue_key("q", "http://y/api/v1/write"));
        let path = position_path(&dir, &key);
        assert_eq!(load(&path), None);
        let p = WalPos {
            segment: 7,
            offset: 1234,
        };
        vigil_model::wal::write_state_file(&path, &encode("q", "http://x", p).unwrap(), true)
            .unwrap();
        assert_eq!(load(&path), Some(p));
        assert!(!path.with_extension("json.tmp").exists());
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(load(&path), None);
        assert_eq!(load_saved(&path), Saved::Unreadable);
        std::fs::write(&path, b"").unwrap();
        assert_eq!(load_saved(&path), Saved::Unreadable);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(load_saved(&path), Saved::Missing);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
