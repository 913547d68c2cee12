//! The write-ahead log as its readers see it: the seam between storage and whatever ships the
//! log elsewhere (remote write today).
//!
//! Prometheus' remote write tails the TSDB's WAL through a watcher that decodes records and
//! looks series up; vigil's queues do the same through [`WalSource`], so `vigil-remote` never
//! sees segment files, record framing or the head. The TSDB implements it
//! (`vigil_tsdb::wal::tail`); a test can implement it with a few vectors.

use crate::histogram::FloatHistogram;
use crate::{Labels, SeriesRef, Timestamp};
use std::path::Path;
use std::sync::Arc;

/// A place in the WAL: the start of a record (or the end of a segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct WalPos {
    pub segment: u32,
    pub offset: u64,
}

impl WalPos {
    /// Packs into one integer (for atomics): 24 bits of segment, 40 of offset.
    pub fn pack(self) -> u64 {
        ((self.segment as u64) << 40) | (self.offset & ((1 << 40) - 1))
    }

    pub fn unpack(v: u64) -> WalPos {
        WalPos {
            segment: (v >> 40) as u32,
            offset: v & ((1 << 40) - 1),
        }
    }
}

/// One decoded record. The slices borrow the reader's buffers, reused from record to record.
#[derive(Debug)]
pub enum WalRecord<'a> {
    /// New series and their references.
    Series(&'a [(SeriesRef, Labels)]),
    /// Float samples `(series, t, v)`.
    Samples(&'a [(SeriesRef, Timestamp, f64)]),
    /// Native-histogram samples `(series, t, histogram)`.
    Histograms(&'a [(SeriesRef, Timestamp, Arc<FloatHistogram>)]),
    /// A record of a known kind that did not decode (what of it decoded is not passed on).
    Malformed(&'static str),
    /// A kind this reader does not pass on (tombstones, metadata, ...).
    Other,
}

/// What one [`WalReader::step`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WalStep {
    pub records: usize,
    pub bytes: u64,
    /// Moved on to a later segment.
    pub next_segment: bool,
}

impl WalStep {
    pub fn progressed(&self) -> bool {
        self.records > 0 || self.next_segment || self.bytes > 0
    }
}

/// A cursor over the log, from a position on, that follows it as it grows.
pub trait WalReader: Send {
    /// Reads up to `max_bytes` of new data and calls `on(record, end)` for each complete
    /// record, `end` being the position just after it. An incomplete record at the end of the
    /// segment being written is left for a later call.
    fn step(
        &mut self,
        max_bytes: usize,
        on: &mut dyn FnMut(WalRecord<'_>, WalPos),
    ) -> std::io::Result<WalStep>;

    /// The start of the next record to be returned.
    fn position(&self) -> WalPos;

    /// Bytes in the log after the position (an estimate of the backlog).
    fn bytes_behind(&self) -> u64;

    /// Segments found missing (deleted before they were read).
    fn lost_segments(&self) -> u64;

    /// Torn tails and corrupt records skipped in finished segments.
    fn skipped_tails(&self) -> u64;
}

/// A reader's low-water mark: the oldest segment it still needs. Storage keeps segments from
/// the lowest mark on (up to a bound); the mark is released when dropped.
pub trait WalHold: Send + Sync {
    /// Moves the mark (normally forward, as the reader progresses).
    fn set(&self, segment: u32);
    fn segment(&self) -> u32;
}

/// Storage with a write-ahead log that readers can follow.
pub trait WalSource: Send + Sync {
    /// The data directory, where readers may keep their own small state files.
    fn data_dir(&self) -> &Path;

    /// The segment being written, if the log has any.
    fn newest_segment(&self) -> Option<u32>;

    /// The oldest segment the log still holds, if known.
    fn oldest_segment(&self) -> Option<u32> {
        None
    }

    /// A reader from `from` on.
    fn reader(&self, from: WalPos) -> Box<dyn WalReader>;

    /// Registers a reader named `name` that needs segments from `segment` on.
    fn hold(&self, name: &str, segment: u32) -> Arc<dyn WalHold>;

    /// The labels of a live series (for a reader that started after its series record).
    fn series_labels(&self, r: SeriesRef) -> Option<Labels>;

    /// Live series in memory.
    fn num_series(&self) -> usize;

    /// Samples appended since start (a rate of it is the incoming load).
    fn samples_appended(&self) -> u64;

    /// The newest sample's timestamp, if any.
    fn max_time(&self) -> Option<Timestamp>;

    /// Replaces `path`, a reader's small state file in the data directory (a remote-write
    /// position), by `bytes` atomically: a temporary file, fsynced when `sync`, renamed into
    /// place, the directory fsynced when `sync`. The TSDB does it through its file layer, so
    /// these writes meet the same faults as its own; this default uses `std::fs`.
    fn write_state_file(&self, path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
        write_state_file(path, bytes, sync)
    }
}

/// [`WalSource::write_state_file`] on the operating system's file system.
pub fn write_state_file(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = state_tmp_path(path);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
    }
    std::fs::rename(&tmp, path)?;
    if sync && let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The temporary file a state file is written to before the rename: `<path>.tmp`.
pub fn state_tmp_path(path: &Path) -> std::path::PathBuf {
    let mut t = path.as_os_str().to_owned();
    t.push(".tmp");
    t.into()
}
