//! The write-ahead log (`docs/format/wal.md`).
//!
//! One commit is one `write(2)` of a ready-made batch into the current segment, done under the
//! head's commit lock before the samples become visible; the default fsync policy leaves data
//! in the page cache, which survives a killed process (Prometheus makes the same trade). The
//! log never appends to a segment it did not create in this process: every open starts a new
//! segment, so recovery only ever needs to truncate the tail of older ones. Reading is total:
//! a torn or garbled record ends the segment (see [`read_segment`]), and the caller repairs.

pub mod holds;
pub mod record;
pub mod tail;

use crate::error::{TsdbError, io_err};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Segments are cut past this size.
pub const SEGMENT_SIZE: u64 = 128 << 20;

/// When the WAL calls fsync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// On segment cut and clean shutdown only (Prometheus' behaviour).
    #[default]
    Never,
    /// After every commit batch.
    Always,
}

/// The segment file name of number `n`.
pub fn segment_name(n: u32) -> String {
    format!("{n:08}")
}

/// Segment numbers present in `dir`, sorted.
pub fn list_segments(dir: &Path) -> Result<Vec<u32>, TsdbError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(dir, e)),
    };
    for e in rd {
        let e = e.map_err(|e| io_err(dir, e))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() == 8
            && name.bytes().all(|b| b.is_ascii_digit())
            && let Ok(n) = name.parse()
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The log being written.
pub struct Wal {
    dir: PathBuf,
    file: File,
    segment: u32,
    size: u64,
    fsync: FsyncPolicy,
    /// Bytes written since open, for self-metrics.
    pub bytes_written: u64,
}

impl Wal {
    /// Starts segment `segment` (which must not exist) in `dir`.
    pub fn create(dir: &Path, segment: u32, fsync: FsyncPolicy) -> Result<Wal, TsdbError> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let path = dir.join(segment_name(segment));
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        sync_dir(dir);
        Ok(Wal {
            dir: dir.to_path_buf(),
            file,
            segment,
            size: 0,
            fsync,
            bytes_written: 0,
        })
    }

    /// The segment being written.
    pub fn segment(&self) -> u32 {
        self.segment
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes one commit batch of framed records.
    pub fn write_batch(&mut self, batch: &[u8]) -> Result<(), TsdbError> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.size > 0 && self.size + batch.len() as u64 > SEGMENT_SIZE {
            self.cut()?;
        }
        let path = || self.dir.join(segment_name(self.segment));
        self.file.write_all(batch).map_err(|e| io_err(&path(), e))?;
        if self.fsync == FsyncPolicy::Always {
            self.file.sync_data().map_err(|e| io_err(&path(), e))?;
        }
        self.size += batch.len() as u64;
        self.bytes_written += batch.len() as u64;
        Ok(())
    }

    /// Closes the current segment (fsynced) and starts the next one.
    pub fn cut(&mut self) -> Result<u32, TsdbError> {
        self.sync()?;
        let next = Wal::create(&self.dir, self.segment + 1, self.fsync)?;
        let written = self.bytes_written;
        *self = next;
        self.bytes_written = written;
        Ok(self.segment)
    }

    pub fn sync(&mut self) -> Result<(), TsdbError> {
        let path = self.dir.join(segment_name(self.segment));
        self.file.sync_all().map_err(|e| io_err(&path, e))
    }
}

/// Best-effort fsync of a directory, so a created or renamed entry survives power loss.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A segment read into memory: its bytes and where valid records end.
pub struct Segment {
    pub number: u32,
    pub bytes: Vec<u8>,
}

/// Reads segment `n` of `dir` whole.
pub fn read_segment(dir: &Path, n: u32) -> Result<Segment, TsdbError> {
    let path = dir.join(segment_name(n));
    let bytes = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
    Ok(Segment { number: n, bytes })
}

/// Cuts segment `n` at `len` bytes and removes every later segment in `segments`.
pub fn repair(dir: &Path, n: u32, len: usize, segments: &[u32]) -> Result<(), TsdbError> {
    let path = dir.join(segment_name(n));
    let f = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| io_err(&path, e))?;
    f.set_len(len as u64).map_err(|e| io_err(&path, e))?;
    f.sync_all().map_err(|e| io_err(&path, e))?;
    for &later in segments.iter().filter(|&&s| s > n) {
        let p = dir.join(segment_name(later));
        std::fs::remove_file(&p).map_err(|e| io_err(&p, e))?;
    }
    sync_dir(dir);
    Ok(())
}
