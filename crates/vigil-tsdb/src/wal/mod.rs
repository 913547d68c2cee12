//! The write-ahead log (`docs/format/wal.md`).
//!
//! One commit is one `write(2)` of a ready-made batch into the current segment, done under the
//! head's commit lock before the samples become visible; the default fsync policy leaves data
//! in the page cache, which survives a killed process (Prometheus makes the same trade). The
//! log never appends to a segment it did not create in this process: every open starts a new
//! segment, so recovery only ever needs to truncate the tail of older ones. Reading is total:
//! a torn or garbled record ends the segment (see [`read_segment`]), and the caller repairs.
//!
//! A write that fails partway (a full disk stores part of the batch, then says `ENOSPC`)
//! must not leave its bytes in front of later records: replay stops at the first torn record
//! and would drop everything behind it. So the writer cuts the segment back to the end of the
//! last complete batch and moves on to a new segment before it writes again, and the commit
//! reports the failure (nothing of it was acknowledged). File operations go through the
//! TSDB's file layer ([`crate::fs::Fs`]) so tests can inject exactly that failure.

pub mod holds;
pub mod record;
pub mod tail;

use crate::error::{TsdbError, io_err};
use crate::fs::{Fs, FsFile, OsFs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
    fs: Arc<dyn Fs>,
    file: Box<dyn FsFile>,
    segment: u32,
    /// Bytes of complete, acknowledged batches in the segment: where the next batch goes.
    size: u64,
    fsync: FsyncPolicy,
    /// Set when a failed write may have left bytes past `size`; they are cut off (or a new
    /// segment is started) before anything else is written.
    torn: bool,
    /// An older segment whose failed tail could not be cut off (segment, where its complete
    /// batches end). Cutting it is tried again before every write until it works: a batch
    /// written whole whose fsync failed would otherwise come back at every restart although
    /// its commit was refused (docs/reliability.md, "Disk faults").
    stale_tail: Option<(u32, u64)>,
    /// `prometheus_tsdb_wal_writes_failed_total`, shared with the TSDB's stats.
    writes_failed: Arc<AtomicU64>,
    /// Rate limit of the error logged for failed writes.
    failure_log: LogLimiter,
    /// Bytes written since open, for self-metrics.
    pub bytes_written: u64,
}

impl Wal {
    /// Starts segment `segment` (which must not exist) in `dir`.
    pub fn create(dir: &Path, segment: u32, fsync: FsyncPolicy) -> Result<Wal, TsdbError> {
        Wal::create_with(dir, segment, fsync, Arc::new(OsFs), Arc::default())
    }

    /// As [`Wal::create`], through the file layer `fs` (a fault-injecting one in tests), and
    /// counting failed writes in `writes_failed`.
    pub fn create_with(
        dir: &Path,
        segment: u32,
        fsync: FsyncPolicy,
        fs: Arc<dyn Fs>,
        writes_failed: Arc<AtomicU64>,
    ) -> Result<Wal, TsdbError> {
        crate::fs::create_dir_all_durable(&*fs, dir).map_err(|e| io_err(dir, e))?;
        let file = create_segment(&*fs, dir, segment)?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            fs,
            file,
            segment,
            size: 0,
            fsync,
            torn: false,
            stale_tail: None,
            writes_failed,
            failure_log: LogLimiter::default(),
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

    fn path(&self) -> PathBuf {
        self.dir.join(segment_name(self.segment))
    }

    /// Writes one commit batch of framed records. On an error nothing of the batch counts as
    /// written: the caller must report the commit as failed. The failure is counted and
    /// logged (at most every 10 s).
    pub fn write_batch(&mut self, batch: &[u8]) -> Result<(), TsdbError> {
        if batch.is_empty() {
            return Ok(());
        }
        let res = self.try_write(batch);
        if let Err(e) = &res {
            self.writes_failed.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = self.failure_log.ready(Instant::now()) {
                tracing::error!(
                    suppressed,
                    "WAL write failed: {e}; the samples of this commit (a scrape, a rule \
                     evaluation or a remote-write request) were not stored; free space in {} \
                     (or repair its file system): writing resumes by itself with the next commit",
                    self.dir.display()
                );
            }
        }
        res
    }

    fn try_write(&mut self, batch: &[u8]) -> Result<(), TsdbError> {
        if self.torn {
            self.cut_off_torn_tail()?;
        }
        if self.stale_tail.is_some() {
            self.cut_stale_tail();
        }
        if self.size > 0 && self.size + batch.len() as u64 > SEGMENT_SIZE {
            self.cut()?;
        }
        let mut done = 0;
        let mut res = Ok(());
        while done < batch.len() {
            match self.file.write(&batch[done..]) {
                Ok(0) => {
                    res = Err(std::io::ErrorKind::WriteZero.into());
                    break;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    res = Err(e);
                    break;
                }
            }
        }
        if res.is_ok() && self.fsync == FsyncPolicy::Always {
            res = self.file.sync_data();
        }
        if let Err(e) = res {
            // The part of the batch that reached the file is not acknowledged: it must not
            // stay in front of later records, or replay would stop at it.
            if done > 0 {
                self.torn = true;
                // If this fails too, it is tried again before the next write.
                let _ = self.cut_off_torn_tail();
            }
            return Err(io_err(&self.path(), e));
        }
        self.size += batch.len() as u64;
        self.bytes_written += batch.len() as u64;
        Ok(())
    }

    /// Removes what a failed write left past the last complete batch, then starts a new
    /// segment: a WAL reader (remote write) may have read some of the removed bytes, and must
    /// never find other bytes at those offsets. If the truncation fails, the new segment is
    /// what keeps later records from sitting behind the torn one (replay reads past a torn
    /// tail of a segment that has a successor, docs/format/wal.md). If both fail, writing
    /// stays refused.
    fn cut_off_torn_tail(&mut self) -> Result<(), TsdbError> {
        let trimmed = self.file.truncate(self.size);
        if let Err(e) = &trimmed {
            tracing::warn!(
                segment = self.segment,
                offset = self.size,
                "Could not cut the torn tail off the WAL segment ({e}); starting a new segment"
            );
        }
        let (segment, size) = (self.segment, self.size);
        match self.next_segment() {
            Ok(()) => {
                if trimmed.is_err() {
                    self.stale_tail = Some((segment, size));
                }
                Ok(())
            }
            // Trimmed: later records may go into this segment.
            Err(_) if trimmed.is_ok() => {
                self.torn = false;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Tries again to cut the failed tail off an older segment (best effort).
    fn cut_stale_tail(&mut self) {
        let Some((segment, len)) = self.stale_tail else {
            return;
        };
        let path = self.dir.join(segment_name(segment));
        let cut = self
            .fs
            .open_append(&path)
            .and_then(|f| f.truncate(len).and_then(|()| f.sync_all()));
        match cut {
            Ok(()) => {
                tracing::info!(
                    segment,
                    offset = len,
                    "Cut the failed tail off the WAL segment"
                );
                self.stale_tail = None;
            }
            // Gone (removed by a checkpoint): nothing left to cut.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.stale_tail = None,
            Err(_) => {}
        }
    }

    /// Closes the current segment (fsynced) and starts the next one.
    pub fn cut(&mut self) -> Result<u32, TsdbError> {
        self.next_segment()?;
        Ok(self.segment)
    }

    /// Starts segment `segment + 1`; the current one is left as it is.
    fn next_segment(&mut self) -> Result<(), TsdbError> {
        // The old segment is made durable before anything goes to the next one, torn tail or
        // not (replay cuts a torn tail off): under `FsyncPolicy::Never` this is its only
        // fsync, and without it a power cut could keep later commits and take earlier ones.
        self.sync()?;
        let file = create_segment(&*self.fs, &self.dir, self.segment + 1)?;
        self.file = file;
        self.segment += 1;
        self.size = 0;
        self.torn = false;
        Ok(())
    }

    pub fn sync(&mut self) -> Result<(), TsdbError> {
        let path = self.path();
        self.file.sync_all().map_err(|e| io_err(&path, e))
    }
}

/// Creates segment `segment` and fsyncs the directory: a segment whose entry a power cut
/// could take away would take fsynced records with it.
fn create_segment(fs: &dyn Fs, dir: &Path, segment: u32) -> Result<Box<dyn FsFile>, TsdbError> {
    let path = dir.join(segment_name(segment));
    let file = fs.create(&path).map_err(|e| io_err(&path, e))?;
    if let Err(e) = fs.sync_dir(dir) {
        let _ = fs.remove_file(&path);
        return Err(io_err(dir, e));
    }
    Ok(file)
}

/// At most one message per interval, with the number of those held back.
#[derive(Debug)]
pub struct LogLimiter {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Default for LogLimiter {
    fn default() -> Self {
        LogLimiter::new(Duration::from_secs(10))
    }
}

impl LogLimiter {
    pub fn new(every: Duration) -> Self {
        LogLimiter {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(messages held back since the last one)` when a message may be logged now.
    pub fn ready(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|l| now.saturating_duration_since(l) < self.every)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
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
pub fn repair(
    fs: &dyn Fs,
    dir: &Path,
    n: u32,
    len: usize,
    segments: &[u32],
) -> Result<(), TsdbError> {
    let path = dir.join(segment_name(n));
    let f = fs.open_append(&path).map_err(|e| io_err(&path, e))?;
    f.truncate(len as u64).map_err(|e| io_err(&path, e))?;
    f.sync_all().map_err(|e| io_err(&path, e))?;
    for &later in segments.iter().filter(|&&s| s > n) {
        let p = dir.join(segment_name(later));
        fs.remove_file(&p).map_err(|e| io_err(&p, e))?;
    }
    fs.sync_dir(dir).map_err(|e| io_err(dir, e))
}
