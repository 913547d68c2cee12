//! Closed head chunks on disk (`chunks_head/`), so that the head's memory holds only the open
//! chunk of each series.
//!
//! A head chunk is cut every 120 samples; once cut it never changes until the head drops it.
//! Holding every closed chunk in memory made RSS grow by the size of every sample in the head
//! (one to three hours of data). So a chunk goes here when it is cut
//! ([`ChunkStore::append_chunk`]): it is re-encoded with the block chunk encoding
//! ([`super::dense`], about a quarter of the XOR size on scrape data), framed as in a block's
//! chunks file, and appended to the current segment's tail buffer, which is written out once it
//! holds 1 MiB (and at every maintenance pass). The series keeps only a 16-byte [`DiskChunk`]
//! reference and reuses its open chunk's buffer, so cutting allocates nothing that outlives the
//! cut (closed and open chunks interleaved in memory kept half-empty pages alive). Reads use
//! `pread` into a buffer, or copy from the tail not written yet; not a memory map: pages of a
//! map count in the process' RSS once touched, which is the cost this module exists to remove.
//!
//! The files are not part of recovery: the WAL and the head snapshot hold the same samples,
//! so a segment left by a crash is deleted at open. A segment is deleted once every chunk in
//! it is older than the head (its newest chunk ends before the head's minimum time); a reader
//! that still holds a chunk of it keeps the open file, so the data stays readable until the
//! last reference goes. Files are created, written and removed through the TSDB's file layer
//! ([`crate::fs::Fs`]), so a full disk can be injected under them too.

use crate::fs::{Fs, FsFile};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::Mutex;

/// A segment is closed once it holds this many bytes (offsets are `u32`).
const SEGMENT_BYTES: u64 = 128 << 20;

/// One `chunks_head` segment file and the bytes appended to it but not written yet.
pub struct Segment {
    file: Box<dyn FsFile>,
    fs: Arc<dyn Fs>,
    path: PathBuf,
    /// The newest sample time of any chunk written to it.
    max_t: AtomicI64,
    /// Bytes in the file; what follows is in `pending`.
    written: AtomicU64,
    pending: Mutex<Vec<u8>>,
}

impl Segment {
    /// Writes out the pending bytes.
    fn flush(&self) -> io::Result<()> {
        let mut p = self.pending.lock();
        if p.is_empty() {
            return Ok(());
        }
        self.file.write_all(&p)?;
        self.written.fetch_add(p.len() as u64, Ordering::Release);
        p.clear();
        Ok(())
    }

    fn len(&self) -> u64 {
        let p = self.pending.lock();
        self.written.load(Ordering::Acquire) + p.len() as u64
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // The store unlinks a segment when it retires it; this covers a store dropped at close.
        let _ = self.fs.remove_file(&self.path);
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
        let (off, len) = (u64::from(self.off), self.len as usize);
        {
            let p = self.seg.pending.lock();
            let written = self.seg.written.load(Ordering::Acquire);
            if off >= written {
                let at = (off - written) as usize;
                let bytes = p.get(at..at + len).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::UnexpectedEof, "chunk past the segment's end")
                })?;
                buf.extend_from_slice(bytes);
                return Ok(());
            }
        }
        buf.resize(len, 0);
        self.seg.file.read_exact_at(buf, off)
    }

    /// Decodes the chunk's samples into `out` (cleared first), reading it into `frame`; false
    /// when the bytes read back are not an intact chunk.
    pub fn decode(
        &self,
        out: &mut Vec<(i64, f64)>,
        scratch: &mut Vec<u8>,
        frame: &mut Vec<u8>,
    ) -> bool {
        out.clear();
        if self.read_frame(frame).is_err() {
            return false;
        }
        match super::read_framed(frame, 0) {
            Some(chunk) => super::dense::decode(chunk, out, scratch),
            None => false,
        }
    }

    /// The chunk's samples, when it reads back intact.
    pub fn samples(&self) -> Option<Vec<(i64, f64)>> {
        let mut out = Vec::new();
        self.decode(&mut out, &mut Vec::new(), &mut Vec::new())
            .then_some(out)
    }
}

/// A segment's tail is written out once it holds this many bytes.
const TAIL_BYTES: usize = 1 << 20;

/// Buffers [`ChunkStore::append_chunk`] reuses.
#[derive(Default)]
struct Scratch {
    samples: Vec<(i64, f64)>,
    payload: Vec<u8>,
    frame: Vec<u8>,
}

/// The `chunks_head` directory: the segment being appended to and the ones still referenced.
pub struct ChunkStore {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    active: Mutex<Option<Arc<Segment>>>,
    scratch: Mutex<Scratch>,
    /// Closed segments, oldest first.
    closed: Mutex<Vec<Arc<Segment>>>,
    next_id: AtomicU64,
    /// File names start with the time the store was opened, so a segment of an earlier store
    /// in the same directory (still referenced, then dropped) never removes a newer file.
    run: u128,
    bytes: AtomicU64,
    /// Unix seconds before which a failed tail write is not retried, and before which no new
    /// warning about it is logged.
    retry_at: AtomicU64,
    warn_at: AtomicU64,
}

impl ChunkStore {
    /// Opens `dir` (created if needed), deleting what an earlier run left there.
    pub fn open(fs: Arc<dyn Fs>, dir: &Path) -> io::Result<ChunkStore> {
        fs.create_dir_all(dir)?;
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_file() {
                fs.remove_file(&p)?;
            }
        }
        Ok(ChunkStore {
            fs,
            dir: dir.to_path_buf(),
            active: Mutex::new(None),
            scratch: Mutex::new(Scratch::default()),
            closed: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            run: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
            bytes: AtomicU64::new(0),
            retry_at: AtomicU64::new(0),
            warn_at: AtomicU64::new(0),
        })
    }

    /// Stores a closed XOR chunk whose newest sample is at `max_t`: re-encodes it, appends it
    /// to the current segment's tail and writes the tail out once it is large. `None` when the
    /// XOR bytes do not decode.
    pub fn append_chunk(&self, xor: &[u8], max_t: i64) -> io::Result<Option<DiskChunk>> {
        self.append_decoded(max_t, |samples| {
            samples.clear();
            let mut it = super::XorIter::new(xor);
            samples.extend(it.by_ref());
            !it.err
        })
    }

    /// As [`ChunkStore::append_chunk`], for an open head chunk being cut ([`super::open`]).
    pub fn append_open(&self, open: &[u8], max_t: i64) -> io::Result<Option<DiskChunk>> {
        self.append_decoded(max_t, |samples| super::open::decode(open, samples))
    }

    /// Decodes a chunk with `decode` (false: it is corrupt, `None`), re-encodes it and
    /// appends it.
    fn append_decoded(
        &self,
        max_t: i64,
        decode: impl FnOnce(&mut Vec<(i64, f64)>) -> bool,
    ) -> io::Result<Option<DiskChunk>> {
        let mut sc = self.scratch.lock();
        let Scratch {
            samples,
            payload,
            frame,
        } = &mut *sc;
        if !decode(samples) {
            return Ok(None);
        }
        payload.clear();
        super::dense::encode(samples, payload);
        frame.clear();
        super::write_framed(frame, payload);
        self.append_frame(frame, max_t).map(Some)
    }

    /// Stores a closed chunk already in the [`super::dense`] encoding (a head snapshot holds
    /// them so) whose newest sample is at `max_t`, as it is.
    pub fn append_encoded(&self, chunk: &[u8], max_t: i64) -> io::Result<DiskChunk> {
        let mut sc = self.scratch.lock();
        let frame = &mut sc.frame;
        frame.clear();
        super::write_framed(frame, chunk);
        self.append_frame(frame, max_t)
    }

    /// Appends one framed chunk.
    fn append_frame(&self, frame: &[u8], max_t: i64) -> io::Result<DiskChunk> {
        let mut active = self.active.lock();
        if let Some(seg) = active.as_ref()
            && seg.len() + frame.len() as u64 > SEGMENT_BYTES
        {
            let old = active.take().expect("checked");
            old.flush()?;
            self.closed.lock().push(old);
        }
        if active.is_none() {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let path = self.dir.join(format!("{:x}-{id:06}", self.run));
            let file = self.fs.create(&path)?;
            *active = Some(Arc::new(Segment {
                file,
                fs: Arc::clone(&self.fs),
                path,
                max_t: AtomicI64::new(i64::MIN),
                written: AtomicU64::new(0),
                pending: Mutex::new(Vec::with_capacity(TAIL_BYTES + 4096)),
            }));
        }
        let seg = active.as_ref().expect("set above");
        let off = {
            let mut p = seg.pending.lock();
            let off = seg.written.load(Ordering::Acquire) + p.len() as u64;
            p.extend_from_slice(frame);
            off
        };
        self.bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
        seg.max_t.fetch_max(max_t, Ordering::Relaxed);
        let chunk = DiskChunk {
            seg: Arc::clone(seg),
            off: off as u32,
            len: frame.len() as u32,
        };
        if seg.pending.lock().len() >= TAIL_BYTES {
            // After a failed write (a full disk) the next try waits a second, and the warning
            // a minute: the bytes stay in the tail, readable, until a write succeeds.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if now >= self.retry_at.load(Ordering::Relaxed)
                && let Err(e) = seg.flush()
            {
                self.retry_at.store(now + 1, Ordering::Relaxed);
                if now >= self.warn_at.load(Ordering::Relaxed) {
                    self.warn_at.store(now + 60, Ordering::Relaxed);
                    tracing::warn!(
                        "Could not write closed head chunks to {}: {e}; they are kept in memory until it succeeds (free space in {})",
                        seg.path.display(),
                        self.dir.display()
                    );
                }
            }
        }
        Ok(chunk)
    }

    /// Writes out the current segment's tail.
    pub fn flush(&self) -> io::Result<()> {
        let seg = self.active.lock().clone();
        seg.map_or(Ok(()), |s| s.flush())
    }

    /// Retires the segments whose every chunk ends before `min_t` (the head's minimum time):
    /// the head no longer refers to them.
    pub fn truncate_before(&self, min_t: i64) {
        // Lock order: `active`, then `closed` (as `append_frame`).
        let mut active = self.active.lock();
        let mut closed = self.closed.lock();
        closed.retain(|s| {
            let keep = s.max_t.load(Ordering::Relaxed) >= min_t;
            if !keep {
                let _ = self.fs.remove_file(&s.path);
                self.bytes
                    .fetch_sub(s.file.size().unwrap_or(0), Ordering::Relaxed);
            }
            keep
        });
        if active
            .as_ref()
            .is_some_and(|a| a.max_t.load(Ordering::Relaxed) < min_t)
        {
            let a = active.take().expect("checked");
            let _ = self.fs.remove_file(&a.path);
            self.bytes.fetch_sub(a.len(), Ordering::Relaxed);
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
    use crate::chunk::XorAppender;

    fn xor(samples: &[(i64, f64)]) -> Vec<u8> {
        let mut x = XorAppender::new();
        for &(t, v) in samples {
            x.append(t, v);
        }
        x.bytes().to_vec()
    }

    #[test]
    fn chunks_read_back_from_the_tail_and_the_file_and_old_segments_go() {
        let dir = std::env::temp_dir().join(format!("vigil-chunkstore-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("000001"), b"left by a crash").unwrap();
        let store = ChunkStore::open(Arc::new(crate::fs::OsFs), &dir).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);

        let a: Vec<(i64, f64)> = (0..120).map(|i| (i * 1000, i as f64 * 0.5)).collect();
        let b: Vec<(i64, f64)> = (120..240).map(|i| (i * 1000, (i as f64).sin())).collect();
        let ra = store.append_chunk(&xor(&a), 119_000).unwrap().unwrap();
        let rb = store.append_chunk(&xor(&b), 239_000).unwrap().unwrap();
        let (mut out, mut scratch, mut frame) = (Vec::new(), Vec::new(), Vec::new());
        // From the tail, not written yet.
        assert!(ra.decode(&mut out, &mut scratch, &mut frame));
        assert_eq!(out, a);
        store.flush().unwrap();
        // From the file.
        assert!(rb.decode(&mut out, &mut scratch, &mut frame));
        assert_eq!(out, b);
        assert!(ra.decode(&mut out, &mut scratch, &mut frame));
        assert_eq!(out, a);
        assert!(store.bytes() > 0);
        assert!(store.append_chunk(b"\x01", 0).unwrap().is_none(), "not XOR");

        // A reader keeps a retired segment's data readable.
        store.truncate_before(240_000);
        assert_eq!(store.segments(), 0);
        assert_eq!(store.bytes(), 0);
        assert!(rb.decode(&mut out, &mut scratch, &mut frame));
        assert_eq!(out, b);
        drop((ra, rb));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
