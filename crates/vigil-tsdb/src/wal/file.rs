//! The file operations the WAL writer needs, behind a trait so that tests can make them fail
//! the way a full disk does: a `write(2)` that stores part of its bytes and then reports
//! `ENOSPC`, a truncation that fails, a segment that cannot be created. [`OsFs`] is the real
//! thing; the writer never touches `std::fs::File` directly.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

/// An open segment file, written at its end.
pub trait SegmentFile: Send {
    /// One `write(2)`: may store fewer bytes than given (then the caller writes the rest).
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize>;
    /// Cuts the file at `len` bytes and moves the write position there.
    fn truncate(&mut self, len: u64) -> std::io::Result<()>;
    fn sync_data(&mut self) -> std::io::Result<()>;
    fn sync_all(&mut self) -> std::io::Result<()>;
}

/// Creates segment files.
pub trait SegmentFs: Send + Sync + std::fmt::Debug {
    /// Creates (truncating) the file at `path` for writing.
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn SegmentFile>>;
}

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFs;

impl SegmentFs for OsFs {
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn SegmentFile>> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(path)?;
        Ok(Box::new(f))
    }
}

impl SegmentFile for File {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Write::write(self, buf)
    }

    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)?;
        self.seek(SeekFrom::Start(len))?;
        Ok(())
    }

    fn sync_data(&mut self) -> std::io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&mut self) -> std::io::Result<()> {
        File::sync_all(self)
    }
}
