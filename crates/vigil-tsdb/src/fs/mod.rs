//! The one file layer every durable write of the TSDB goes through: WAL segments, head
//! snapshots, blocks (chunks, index, `meta.json`, the temporary directory and its rename),
//! `chunks_head/` segments, remote-write position files (`WalSource::write_state_file`), and
//! the deletions and directory fsyncs that go with them.
//!
//! Why a layer: what a data directory holds after a power cut or a full disk depends on the
//! order of writes, fsyncs and directory operations, and that order is only testable if one
//! seam sees all of them. [`Fs`] is that seam, held by the [`crate::Tsdb`]
//! ([`crate::TsdbOptions::fs`]); [`OsFs`] is the operating system's file system and the
//! default. Tests swap in a file system that models the page cache (`fs::fault`, test-only):
//! it injects `ENOSPC`, `EIO` and short writes, and simulates crashes that keep only what was
//! fsynced (`docs/reliability.md`, "Disk faults").
//!
//! Reads (replay, memory-mapped blocks) use `std::fs` directly: the fault layer shadows the
//! real files, so what it leaves on disk after a simulated crash is what a reader finds.
//!
//! The trait is object-safe and its methods take `&self`, so a file can be shared (chunk
//! segments are read with `pread` while being appended to). A write hands the caller's
//! buffer straight to `write(2)`: the WAL's hot path costs one virtual call and no copy.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

#[cfg(test)]
pub mod fault;

/// An open file, written at its end (or at the length it was cut to).
pub trait FsFile: Send + Sync {
    /// One `write(2)`: may store fewer bytes than given (a disk filling up mid-way).
    fn write(&self, buf: &[u8]) -> io::Result<usize>;
    /// Cuts the file at `len` bytes and moves the write position there.
    fn truncate(&self, len: u64) -> io::Result<()>;
    fn sync_data(&self) -> io::Result<()>;
    fn sync_all(&self) -> io::Result<()>;
    /// `pread(2)` of exactly `buf.len()` bytes at `offset`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// The file's length.
    fn size(&self) -> io::Result<u64>;

    /// Writes all of `buf`, retrying short writes; `WriteZero` if the file stores nothing.
    fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write(buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Directory-level operations and file creation.
pub trait Fs: Send + Sync + std::fmt::Debug {
    /// Creates (truncating) the file at `path`, for writing and reading.
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Opens the existing file at `path` for writing at its end.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// `rename(2)` (replacing a file at `to`): atomic, but durable only once the parent
    /// directory is fsynced.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// fsyncs the directory `path`, so the entries created, renamed or removed in it survive
    /// a power cut.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
}

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFs;

impl Fs for OsFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(path)?;
        Ok(Box::new(f))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut f = OpenOptions::new().read(true).write(true).open(path)?;
        f.seek(SeekFrom::End(0))?;
        Ok(Box::new(f))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
}

impl FsFile for File {
    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        Write::write(&mut &*self, buf)
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.set_len(len)?;
        (&mut &*self).seek(SeekFrom::Start(len))?;
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

/// A [`Write`] over an [`FsFile`], for `BufWriter`.
pub struct Writer<'a>(pub &'a dyn FsFile);

impl Write for Writer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Creates `path` holding `bytes`, fsynced.
pub fn write_file(fs: &dyn Fs, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let f = fs.create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Creates `path` and its missing parents, then fsyncs the parent of each directory it
/// created: a new directory's entry is only durable once its parent is fsynced, and without it
/// a power cut can take the directory away with every fsynced file in it.
pub fn create_dir_all_durable(fs: &dyn Fs, path: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = path
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
        .collect();
    fs.create_dir_all(path)?;
    for dir in missing.into_iter().rev() {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs.sync_dir(parent)?;
        }
    }
    Ok(())
}
