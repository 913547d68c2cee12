//! Closed head chunks on disk (`chunks_head/`), so that the head's memory holds only the open
//! chunk of each series.
//!
//! A head chunk is cut every 120 samples; once cut it never changes until the head drops it.
//! Holding every closed chunk in memory made RSS grow by the size of every sample in the head
//! (one to three hours of data). The head's maintenance therefore moves closed chunks here:
//! each is re-encoded with the block chunk encoding ([`super::dense`], about a quarter of the
//! XOR size on scrape data) and framed as in a block's chunks file, appended to the current
//! segment file with one write per batch, and the series keeps only a 16-byte [`DiskChunk`]
//! reference. Reads use `pread` into a buffer, not a memory map: pages of a map count in the
//! process' RSS once touched, which is the cost this module exists to remove.
//!
//! The files are not part of recovery: the WAL and the head snapshot hold the same samples,
//! so a segment left by a crash is deleted at open. A segment is deleted once every chunk in
//! it is older than the head (its newest chunk ends before the head's minimum time); a reader
//! that still holds a chunk of it keeps the open file, so the data stays readable until the
//! last reference goes.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::Mutex;

/// A segment is closed once it holds this many bytes (offsets are `u32`).
const SEGMENT_BYTES: u64 = 128 << 20;

/// One `chunks_head` segment file.
pub struct Segment {
    file: File,
    path: PathBuf,
    /// The newest sample time of any chunk written to it.
    max_t: AtomicI64,
}

impl Drop for Segment {
    fn drop(&mut self) {
        // The store unlinks a segment when it retires it; this covers a store dropped at close.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where a closed head chunk is: a framed [`super::dense`] chunk in a segment.
#[derive(Clone)]
pub struct DiskChunk {
    seg: Arc<Segment>,
    off: u32,
    len: u32,
}

impl DiskChunk {
    /// Reads the framed chunk (length, bytes, CRC) into `buf`.
    pub fn read_frame(&self, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.clear();
        buf.resize(self.len as usize, 0);
        self.seg.file.read_exact_at(buf, u64::from(self.off))
    }

    /// Decodes the chunk's samples into `out` (cleared first); false when the bytes read back
    /// are not an intact chunk.
    pub fn decode(&self, out: &mut Vec<(i64, f64)>, scratch: &mut Vec<u8>) -> bool {
        out.clear();
        let mut frame = Vec::new();
        if self.read_frame(&mut frame).is_err() {
            return false;
        }
        match super::read_framed(&frame, 0) {
            Some(chunk) => super::dense::decode(chunk, out, scratch),
            None => false,
        }
    }
}

struct Active {
    seg: Arc<Segment>,
    len: u64,
}

/// The `chunks_head` directory: the segment being appended to and the ones still referenced.
pub struct ChunkStore {
    dir: PathBuf,
    active: Mutex<Option<Active>>,
    /// Closed segments, oldest first.
    closed: Mutex<Vec<Arc<Segment>>>,
    next_id: AtomicU64,
    /// File names start with the time the store was opened, so a segment of an earlier store
    /// in the same directory (still referenced, then dropped) never removes a newer file.
    run: u128,
    bytes: AtomicU64,
}

impl ChunkStore {
    /// Opens `dir` (created if needed), deleting what an earlier run left there.
    pub fn open(dir: &Path) -> io::Result<ChunkStore> {
        std::fs::create_dir_all(dir)?;
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_file() {
                std::fs::remove_file(&p)?;
            }
        }
        Ok(ChunkStore {
            dir: dir.to_path_buf(),
            active: Mutex::new(None),
            closed: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            run: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
            bytes: AtomicU64::new(0),
        })
    }

    /// Appends framed chunks (`frames`, with each chunk's `(offset in frames, length)` in
    /// `spans`) whose newest sample is at `max_t`; returns their references, in order. One
    /// write for the batch; a batch never spans two segments.
    pub fn append(
        &self,
        frames: &[u8],
        spans: &[(u32, u32)],
        max_t: i64,
    ) -> io::Result<Vec<DiskChunk>> {
        let mut active = self.active.lock();
        let full = active
            .as_ref()
            .is_some_and(|a| a.len + frames.len() as u64 > SEGMENT_BYTES);
        if full && let Some(old) = active.take() {
            self.closed.lock().push(old.seg);
        }
        if active.is_none() {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let path = self.dir.join(format!("{:x}-{id:06}", self.run));
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&path)?;
            *active = Some(Active {
                seg: Arc::new(Segment {
                    file,
                    path,
                    max_t: AtomicI64::new(i64::MIN),
                }),
                len: 0,
            });
        }
        let a = active.as_mut().expect("set above");
        let base = a.len;
        if let Err(e) = (&a.seg.file).write_all(frames) {
            // Nothing refers to a partial write; later batches go after it.
            if let Ok(m) = a.seg.file.metadata() {
                a.len = m.len();
            }
            return Err(e);
        }
        a.len += frames.len() as u64;
        self.bytes.fetch_add(frames.len() as u64, Ordering::Relaxed);
        a.seg.max_t.fetch_max(max_t, Ordering::Relaxed);
        Ok(spans
            .iter()
            .map(|&(off, len)| DiskChunk {
                seg: Arc::clone(&a.seg),
                off: (base + u64::from(off)) as u32,
                len,
            })
            .collect())
    }

    /// Retires the segments whose every chunk ends before `min_t` (the head's minimum time):
    /// the head no longer refers to them.
    pub fn truncate_before(&self, min_t: i64) {
        let mut closed = self.closed.lock();
        let mut active = self.active.lock();
        closed.retain(|s| {
            let keep = s.max_t.load(Ordering::Relaxed) >= min_t;
            if !keep {
                let _ = std::fs::remove_file(&s.path);
                self.bytes
                    .fetch_sub(s.file.metadata().map_or(0, |m| m.len()), Ordering::Relaxed);
            }
            keep
        });
        if active
            .as_ref()
            .is_some_and(|a| a.seg.max_t.load(Ordering::Relaxed) < min_t)
        {
            let a = active.take().expect("checked");
            let _ = std::fs::remove_file(&a.seg.path);
            self.bytes.fetch_sub(a.len, Ordering::Relaxed);
        }
    }

    /// Bytes in the segment files.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Segment files kept.
    pub fn segments(&self) -> usize {
        self.closed.lock().len() + usize::from(self.active.lock().is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(samples: &[(i64, f64)]) -> Vec<u8> {
        let mut payload = Vec::new();
        crate::chunk::dense::encode(samples, &mut payload);
        let mut f = Vec::new();
        crate::chunk::write_framed(&mut f, &payload);
        f
    }

    #[test]
    fn chunks_read_back_and_old_segments_go() {
        let dir = std::env::temp_dir().join(format!("vigil-chunkstore-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("000001"), b"left by a crash").unwrap();
        let store = ChunkStore::open(&dir).unwrap();
        assert!(!dir.join("000001").exists() || store.segments() == 0);

        let a: Vec<(i64, f64)> = (0..120).map(|i| (i * 1000, i as f64 * 0.5)).collect();
        let b: Vec<(i64, f64)> = (120..240).map(|i| (i * 1000, (i as f64).sin())).collect();
        let (fa, fb) = (frame(&a), frame(&b));
        let mut batch = fa.clone();
        batch.extend_from_slice(&fb);
        let refs = store
            .append(
                &batch,
                &[(0, fa.len() as u32), (fa.len() as u32, fb.len() as u32)],
                239_000,
            )
            .unwrap();
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        assert!(refs[0].decode(&mut out, &mut scratch));
        assert_eq!(out, a);
        assert!(refs[1].decode(&mut out, &mut scratch));
        assert_eq!(out, b);
        assert_eq!(store.bytes(), batch.len() as u64);

        // A reader keeps a retired segment's data readable.
        store.truncate_before(240_000);
        assert_eq!(store.segments(), 0);
        assert_eq!(store.bytes(), 0);
        assert!(refs[1].decode(&mut out, &mut scratch));
        assert_eq!(out, b);
        drop(refs);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
