//! The head snapshot (`docs/format/snapshot.md`): the whole head as of the start of a WAL
//! segment.
//!
//! It serves twice: written at clean shutdown it makes the next start near-instant (nothing to
//! replay), and written periodically it is the WAL checkpoint (older segments are deleted,
//! and series garbage-collected from the head are simply absent). The state is captured under
//! the commit lock right after cutting a new WAL segment, so it matches the log exactly; the
//! file itself is written outside the lock from cheap `Arc` clones of the frozen chunks.

use super::Head;
use super::series::{FloatChunk, FloatChunkData, FullChunk, HistData};
use crate::chunk::disk::Segment;
use crate::chunk::hist::{self, HistAppender};
use crate::chunk::{OpenChunk, XorAppender, XorIter, dense};
use crate::encoding;
use crate::error::{TsdbError, io_err};
use crate::fs::{Fs, FsFile, Writer};
use crate::wal::record;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use vigil_model::{Labels, SeriesRef};

/// Records as they are (what vigil wrote before [`MAGIC_ZSTD`]; still read).
const MAGIC: &[u8; 8] = b"VGSNAP01";
/// The same records, all of them in one zstd frame after the magic. What vigil writes.
const MAGIC_ZSTD: &[u8; 8] = b"VGSNAP02";
/// zstd's level for snapshots: the fastest (on the ingest benchmark's head, 33–36 MB of
/// records became 11–19 MB: docs/format/snapshot.md).
const ZSTD_LEVEL: i32 = 1;
const CHUNKS: u8 = 16;
const OOO: u8 = 17;
const META: u8 = 18;
const END: u8 = 19;
/// A series' histogram chunks (only for series that have histogram samples).
const HIST_CHUNKS: u8 = 20;
/// A series' out-of-order histograms: a WAL histograms payload (`record::HISTOGRAMS`) whose
/// refs are all the series'. Follows the series' HIST_CHUNKS record when there is one.
const HIST_OOO: u8 = 21;
/// A series' start timestamps: a WAL start-timestamps payload (`record::START_TIMESTAMPS`)
/// whose refs are all the series'.
const STS: u8 = 22;
/// A series' float chunks with the closed ones in the block chunk encoding (`chunk::dense`),
/// as `chunks_head/` holds them, and the open one as XOR. Still read; [`CHUNKS`], with every
/// chunk as XOR, too.
const CHUNKS2: u8 = 23;
/// As [`CHUNKS2`], with the open chunk in the head's own encoding (`chunk::open`), as it is in
/// memory. Written before [`CHUNKS4`], still read.
const CHUNKS3: u8 = 24;
/// The `chunks_head/` files the snapshot's [`CHUNKS4`] records name, by position.
const FILES: u8 = 25;
/// As [`CHUNKS3`], with each closed chunk either named where it is in `chunks_head/` (file,
/// offset, length) or, when it is still in memory, given inline. What vigil writes.
const CHUNKS4: u8 = 26;

fn snapshot_type(t: u8) -> bool {
    matches!(
        t,
        record::SERIES
            | CHUNKS
            | OOO
            | META
            | END
            | HIST_CHUNKS
            | HIST_OOO
            | STS
            | CHUNKS2
            | CHUNKS3
            | FILES
            | CHUNKS4
    )
}

pub fn snapshot_path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("snapshot.{segment:08}"))
}

/// Snapshot segment numbers in `dir`, newest first.
pub fn list_snapshots(dir: &Path) -> Result<Vec<u32>, TsdbError> {
    let mut out: Vec<u32> = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let e = e.map_err(|e| io_err(dir, e))?;
        let name = e.file_name();
        let Some(n) = name.to_str().and_then(|n| n.strip_prefix("snapshot.")) else {
            continue;
        };
        if n.len() == 8
            && let Ok(n) = n.parse()
        {
            out.push(n);
        }
    }
    out.sort_unstable_by(|a, b| b.cmp(a));
    Ok(out)
}

/// Temporary snapshot files (`snapshot.<segment>.tmp`) a crash left behind.
pub fn list_temporary(dir: &Path) -> Result<Vec<PathBuf>, TsdbError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let e = e.map_err(|e| io_err(dir, e))?;
        let name = e.file_name();
        if name
            .to_str()
            .is_some_and(|n| n.starts_with("snapshot.") && n.ends_with(".tmp"))
        {
            out.push(e.path());
        }
    }
    Ok(out)
}

/// One series as captured.
struct Captured {
    r: SeriesRef,
    labels: Labels,
    full: Vec<FloatChunk>,
    head: Vec<u8>,
    head_mint: i64,
    head_maxt: i64,
    ooo: Vec<(i64, f64)>,
    hist: Option<CapturedHist>,
    sts: Vec<(i64, i64)>,
}

struct CapturedHist {
    full: Vec<FullChunk>,
    open: Vec<u8>,
    open_mint: i64,
    last_t: i64,
    ooo: Vec<vigil_model::HistogramSample>,
}

/// What a snapshot holds, captured under the commit lock.
pub struct Capture {
    series: Vec<Captured>,
    next_ref: SeriesRef,
    min_valid_time: i64,
    /// The WAL segment the snapshot starts.
    pub segment: u32,
    /// The chunk store's retire mark when the head was captured
    /// (`ChunkStore::release_retired` once the snapshot is durable).
    pub retire_mark: u64,
}

impl Head {
    /// Cuts the WAL (when there is one) and captures the head. Returns `None` when the head is
    /// closed.
    pub(crate) fn capture(&self) -> Result<Capture, TsdbError> {
        let mut c = self.commit.lock();
        let segment = match c.wal.as_mut() {
            Some(w) => w.cut()?,
            None => 0,
        };
        let retire_mark = self.chunk_store.get().map_or(0, |s| s.retire_mark());
        let mut all = self.all_series();
        // In reference order, so that loading appends to every posting list instead of
        // inserting into its middle.
        all.sort_unstable_by_key(|s| s.r);
        let series = all
            .into_iter()
            .map(|s| {
                let d = s.data.lock();
                Captured {
                    r: s.r,
                    labels: self.labels_of(&s),
                    full: d.full.clone(),
                    head: d.head.bytes().to_vec(),
                    head_mint: d.head_mint,
                    head_maxt: d.last_t,
                    ooo: d.ooo.to_vec(),
                    hist: d.hist.as_ref().map(|h| CapturedHist {
                        full: h.full.clone(),
                        open: h.open.bytes().to_vec(),
                        open_mint: h.open_mint,
                        last_t: h.last_t,
                        ooo: h.ooo.clone(),
                    }),
                    sts: d.sts_in(i64::MIN, i64::MAX),
                }
            })
            .collect();
        drop(c);
        Ok(Capture {
            series,
            next_ref: self.next_ref(),
            min_valid_time: self.min_valid_time(),
            segment,
            retire_mark,
        })
    }
}

/// The `chunks_head/` segments a capture's closed chunks are in, numbered in order of first
/// appearance.
struct FileTable {
    index: ahash::AHashMap<*const Segment, u64>,
    names: Vec<String>,
}

impl FileTable {
    fn of(cap: &Capture) -> FileTable {
        let mut t = FileTable {
            index: Default::default(),
            names: Vec::new(),
        };
        for c in cap.series.iter().flat_map(|s| &s.full) {
            if let FloatChunkData::Disk(d) = &c.data {
                let seg = d.location().0;
                let next = t.names.len() as u64;
                t.index.entry(Arc::as_ptr(seg)).or_insert_with(|| {
                    t.names.push(seg.name().to_owned());
                    next
                });
            }
        }
        t
    }

    fn index(&self, seg: &Arc<Segment>) -> u64 {
        self.index[&Arc::as_ptr(seg)]
    }
}

/// Writes `cap` as `snapshot.<segment>` in `dir` (tmp file, fsync, rename). Returns its size.
/// The rename is durable (the directory fsynced) before this returns: the caller then deletes
/// the WAL segments the snapshot replaces.
pub fn write(fs: &dyn Fs, dir: &Path, cap: &Capture) -> Result<u64, TsdbError> {
    let path = snapshot_path(dir, cap.segment);
    let tmp = path.with_extension(format!("{:08}.tmp", cap.segment));
    let file = fs.create(&tmp).map_err(|e| io_err(&tmp, e))?;
    let size = match write_into(&*file, &tmp, cap) {
        Ok(size) => size,
        Err(e) => {
            // A half-written snapshot must not keep the space a full disk needs back.
            drop(file);
            let _ = fs.remove_file(&tmp);
            return Err(e);
        }
    };
    drop(file);
    fs.rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
    fs.sync_dir(dir).map_err(|e| io_err(dir, e))?;
    Ok(size)
}

/// Writes the snapshot into `file` (at `tmp`) and fsyncs it; returns its size.
fn write_into(file: &dyn FsFile, tmp: &Path, cap: &Capture) -> Result<u64, TsdbError> {
    let e = |e: std::io::Error| io_err(tmp, e);
    let mut w = std::io::BufWriter::with_capacity(1 << 20, Writer(file));
    w.write_all(MAGIC_ZSTD).map_err(e)?;
    let mut z = zstd::stream::write::Encoder::new(w, ZSTD_LEVEL).map_err(e)?;
    write_records(&mut z, cap).map_err(|err| match err {
        WriteErr::Io(x) => e(x),
        WriteErr::Tsdb(t) => t,
    })?;
    let w = z.finish().map_err(e)?;
    w.into_inner().map_err(|x| e(x.into_error()))?;
    file.sync_all().map_err(e)?;
    file.size().map_err(e)
}

/// Why writing the records stopped.
enum WriteErr {
    Io(std::io::Error),
    Tsdb(TsdbError),
}

impl From<std::io::Error> for WriteErr {
    fn from(e: std::io::Error) -> Self {
        WriteErr::Io(e)
    }
}

impl From<TsdbError> for WriteErr {
    fn from(e: TsdbError) -> Self {
        WriteErr::Tsdb(e)
    }
}

/// Writes the snapshot's records (everything after the magic) to `w`.
fn write_records(w: &mut impl Write, cap: &Capture) -> Result<(), WriteErr> {
    let mut buf = Vec::with_capacity(4096);
    let files = FileTable::of(cap);
    let st = record::begin(&mut buf, FILES);
    encoding::put_uvarint(&mut buf, files.names.len() as u64);
    for n in &files.names {
        encoding::put_bytes(&mut buf, n.as_bytes());
    }
    record::finish(&mut buf, st);
    let (mut payload, mut samples) = (Vec::new(), Vec::new());
    for s in &cap.series {
        let st = record::begin(&mut buf, record::SERIES);
        record::put_series(
            &mut buf,
            s.r,
            s.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())),
        );
        record::finish(&mut buf, st);
        let st = record::begin(&mut buf, CHUNKS4);
        encoding::put_uvarint(&mut buf, s.r);
        encoding::put_uvarint(&mut buf, s.full.len() as u64);
        for c in &s.full {
            encoding::put_varint(&mut buf, c.mint);
            encoding::put_varint(&mut buf, c.maxt);
            match &c.data {
                // Named where `chunks_head/` holds it (made durable before this file is).
                FloatChunkData::Disk(d) => {
                    let (seg, off, len) = d.location();
                    let file = files.index(seg);
                    encoding::put_uvarint(&mut buf, file + 1);
                    encoding::put_uvarint(&mut buf, u64::from(off));
                    encoding::put_uvarint(&mut buf, u64::from(len));
                }
                // Still in memory (the store could not take it): inline, encoded as the store
                // would.
                FloatChunkData::Xor(b) => {
                    samples.clear();
                    let mut it = XorIter::new(b);
                    samples.extend(it.by_ref());
                    if it.err {
                        return Err(TsdbError::Invalid(format!(
                            "head chunk of series {} does not decode",
                            s.r
                        ))
                        .into());
                    }
                    payload.clear();
                    dense::encode(&samples, &mut payload);
                    encoding::put_uvarint(&mut buf, 0);
                    encoding::put_bytes(&mut buf, &payload);
                }
            }
        }
        encoding::put_varint(&mut buf, s.head_mint);
        encoding::put_varint(&mut buf, s.head_maxt);
        encoding::put_bytes(&mut buf, &s.head);
        record::finish(&mut buf, st);
        if !s.ooo.is_empty() {
            let st = record::begin(&mut buf, OOO);
            encoding::put_uvarint(&mut buf, s.r);
            encoding::put_uvarint(&mut buf, s.ooo.len() as u64);
            for &(t, v) in &s.ooo {
                encoding::put_varint(&mut buf, t);
                buf.extend_from_slice(&v.to_bits().to_le_bytes());
            }
            record::finish(&mut buf, st);
        }
        if let Some(h) = &s.hist {
            let st = record::begin(&mut buf, HIST_CHUNKS);
            encoding::put_uvarint(&mut buf, s.r);
            encoding::put_varint(&mut buf, h.last_t);
            encoding::put_uvarint(&mut buf, h.full.len() as u64 + 1);
            for c in &h.full {
                encoding::put_varint(&mut buf, c.mint);
                encoding::put_varint(&mut buf, c.maxt);
                encoding::put_bytes(&mut buf, &c.bytes);
            }
            encoding::put_varint(&mut buf, h.open_mint);
            encoding::put_varint(&mut buf, h.last_t);
            encoding::put_bytes(&mut buf, &h.open);
            record::finish(&mut buf, st);
            if !h.ooo.is_empty() {
                let st = buf.len();
                record::put_histograms_record(&mut buf, h.ooo.iter().map(|x| (s.r, x.t, &*x.h)));
                buf[st + 4] = HIST_OOO;
                record::finish(&mut buf, st);
            }
        }
        if !s.sts.is_empty() {
            let st = buf.len();
            record::put_start_timestamps_record(&mut buf, s.sts.iter().map(|&(t, x)| (s.r, t, x)));
            buf[st + 4] = STS;
            record::finish(&mut buf, st);
        }
        if buf.len() > 1 << 16 {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    let st = record::begin(&mut buf, META);
    encoding::put_uvarint(&mut buf, cap.next_ref);
    encoding::put_varint(&mut buf, cap.min_valid_time);
    record::finish(&mut buf, st);
    let st = record::begin(&mut buf, END);
    record::finish(&mut buf, st);
    w.write_all(&buf)?;
    Ok(())
}

fn corrupt(path: &Path, offset: usize, reason: impl Into<String>) -> TsdbError {
    TsdbError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason: reason.into(),
    }
}

/// Loads a snapshot into an empty head. The whole file is validated before anything is applied,
/// so a bad snapshot leaves the head untouched.
pub fn load(head: &Head, path: &Path) -> Result<usize, TsdbError> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    load_bytes(head, &bytes, path)
}

/// [`load`] on the file's bytes; `path` names it in errors.
pub fn load_bytes(head: &Head, bytes: &[u8], path: &Path) -> Result<usize, TsdbError> {
    let unpacked;
    let body = match bytes.strip_prefix(MAGIC_ZSTD.as_slice()) {
        Some(frame) => {
            unpacked = unzstd(frame).map_err(|why| corrupt(path, MAGIC.len(), why))?;
            &unpacked[..]
        }
        None => bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| corrupt(path, 0, "bad magic"))?,
    };
    let mut recs = record::Records::new(body, snapshot_type);
    let list: Vec<(u8, &[u8])> = recs.by_ref().collect();
    if let Some(t) = &recs.torn {
        return Err(corrupt(path, recs.good_len() + MAGIC.len(), t.to_string()));
    }
    if list.last().map(|r| r.0) != Some(END) {
        return Err(corrupt(
            path,
            bytes.len(),
            "no end record (incomplete snapshot)",
        ));
    }
    let bad = |what: &str| corrupt(path, 0, format!("malformed {what} record"));
    let mut scratch = Vec::new();
    let mut n = 0;
    let mut files: Vec<String> = Vec::new();
    let mut lost = Lost::default();
    for (kind, payload) in list {
        match kind {
            record::SERIES => {
                let mut res = Ok(());
                record::decode_series(payload, &mut scratch, |r, ls| {
                    let labels = Labels::from_pairs(ls.iter().copied());
                    match head.get_or_create(&labels, Some(r)) {
                        Ok((s, _)) => s.logged.store(true, Ordering::Relaxed),
                        Err(e) => res = Err(TsdbError::Invalid(e.to_string())),
                    }
                    n += 1;
                })
                .ok_or_else(|| bad("series"))?;
                res?;
            }
            CHUNKS => load_chunks(head, payload).ok_or_else(|| bad("chunks"))?,
            CHUNKS2 => load_chunks2(head, payload, false).ok_or_else(|| bad("chunks"))?,
            CHUNKS3 => load_chunks2(head, payload, true).ok_or_else(|| bad("chunks"))?,
            FILES => {
                let mut d = encoding::Dec { b: payload };
                let k = d.uvarint().ok_or_else(|| bad("files"))?;
                files = (0..k)
                    .map(|_| d.str().map(str::to_owned))
                    .collect::<Option<_>>()
                    .ok_or_else(|| bad("files"))?;
            }
            CHUNKS4 => {
                load_chunks4(head, payload, &files, &mut lost).ok_or_else(|| bad("chunks"))?
            }
            HIST_CHUNKS => {
                load_hist_chunks(head, payload).ok_or_else(|| bad("histogram chunks"))?
            }
            STS => {
                let mut res = Some(());
                record::decode_start_timestamps(payload, |r, t, st| match head.series(r) {
                    Some(s) => s.data.lock().set_st(t, st),
                    None => res = None,
                })
                .and(res)
                .ok_or_else(|| bad("start timestamps"))?;
            }
            HIST_OOO => {
                let mut ooo: Vec<(u64, vigil_model::HistogramSample)> = Vec::new();
                record::decode_histograms(payload, |r, t, h| {
                    ooo.push((r, vigil_model::HistogramSample { t, h: Arc::new(h) }))
                })
                .ok_or_else(|| bad("out-of-order histograms"))?;
                if let Some(&(r, _)) = ooo.first()
                    && let Some(s) = head.series(r)
                {
                    let mut data = s.data.lock();
                    if let Some(hd) = data.hist.as_mut() {
                        for (_, x) in &ooo {
                            head.note_time(x.t);
                        }
                        hd.ooo = ooo.into_iter().map(|(_, x)| x).collect();
                    }
                }
            }
            OOO => {
                let mut d = encoding::Dec { b: payload };
                let s = head.series(d.uvarint().ok_or_else(|| bad("ooo"))?);
                let count = d.uvarint().ok_or_else(|| bad("ooo"))?;
                let mut ooo = Vec::new();
                for _ in 0..count {
                    let t = d.varint().ok_or_else(|| bad("ooo"))?;
                    let v = f64::from_bits(d.u64_le().ok_or_else(|| bad("ooo"))?);
                    ooo.push((t, v));
                }
                if let Some(s) = s {
                    for &(t, _) in &ooo {
                        head.note_time(t);
                    }
                    s.data.lock().ooo = ooo.into();
                }
            }
            META => {
                let mut d = encoding::Dec { b: payload };
                head.bump_next_ref(d.uvarint().ok_or_else(|| bad("meta"))?);
                head.set_min_valid_time(d.varint().ok_or_else(|| bad("meta"))?);
            }
            _ => {}
        }
    }
    if lost.chunks > 0 {
        tracing::warn!(
            chunks = lost.chunks,
            "{}: {} closed head chunks it names in chunks_head/ are missing or damaged (first: {}); their samples are lost, the rest is loaded",
            path.display(),
            lost.chunks,
            lost.first
        );
        crate::chunk::note_corrupt_chunks(lost.chunks);
    }
    Ok(n)
}

/// The records of a compressed snapshot. Refuses to grow past 256 times the compressed size
/// (plus 1 MiB): the benchmark's snapshots shrank 2–3 times, a damaged or hostile frame claiming more
/// is not allowed to exhaust memory.
fn unzstd(frame: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let limit = (frame.len() as u64).saturating_mul(256) + (1 << 20);
    let dec = zstd::stream::read::Decoder::with_buffer(frame).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(frame.len().saturating_mul(4));
    dec.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("compressed records: {e}"))?;
    if out.len() as u64 > limit {
        return Err("compressed records expand past any real snapshot's size".into());
    }
    Ok(out)
}

/// Chunks a snapshot names that `chunks_head/` no longer holds intact.
#[derive(Default)]
struct Lost {
    chunks: u64,
    /// Where the first one was meant to be.
    first: String,
}

/// A [`CHUNKS4`] record. A chunk named in `chunks_head/` that is not there intact (a file
/// damaged or deleted behind vigil's back) is left out, the series keeps the rest.
fn load_chunks4(head: &Head, payload: &[u8], files: &[String], lost: &mut Lost) -> Option<()> {
    let mut d = encoding::Dec { b: payload };
    let s = head.series(d.uvarint()?)?;
    let n = d.uvarint()?;
    let store = head.chunk_store.get();
    let mut full = Vec::new();
    let mut samples = Vec::new();
    for _ in 0..n {
        let mint = d.varint()?;
        let maxt = d.varint()?;
        let data = match d.uvarint()? {
            0 => inline_chunk(store, d.bytes()?, maxt, &mut samples)?,
            k => {
                let name = files.get(usize::try_from(k - 1).ok()?)?;
                let off = u32::try_from(d.uvarint()?).ok()?;
                let len = u32::try_from(d.uvarint()?).ok()?;
                match store.and_then(|st| st.adopt(name, off, len, maxt)) {
                    Some(dc) => FloatChunkData::Disk(dc),
                    None => {
                        if lost.chunks == 0 {
                            lost.first = format!("chunks_head/{name} at offset {off}");
                        }
                        lost.chunks += 1;
                        continue;
                    }
                }
            }
        };
        full.push(FloatChunk { mint, maxt, data });
    }
    let head_mint = d.varint()?;
    let _head_maxt = d.varint()?;
    let open = OpenChunk::from_bytes(d.bytes()?)?;
    install_chunks(head, &s, full, head_mint, open)
}

/// A closed chunk a snapshot holds inline (block chunk encoding), checked by decoding it: into
/// the chunk store as it is, or into memory as XOR when there is none or it fails.
fn inline_chunk(
    store: Option<&Arc<crate::chunk::disk::ChunkStore>>,
    bytes: &[u8],
    maxt: i64,
    samples: &mut Vec<(i64, f64)>,
) -> Option<FloatChunkData> {
    if !dense::decode(bytes, samples, &mut Vec::new()) || samples.is_empty() {
        return None;
    }
    Some(
        match store.and_then(|st| st.append_encoded(bytes, maxt).ok()) {
            Some(dc) => FloatChunkData::Disk(dc),
            None => FloatChunkData::xor(xor_of(samples)),
        },
    )
}

/// Samples as an XOR chunk (a closed chunk kept in memory).
fn xor_of(samples: &[(i64, f64)]) -> Arc<[u8]> {
    let mut x = XorAppender::with_capacity(samples.len() * 2 + 16);
    for &(t, v) in samples {
        x.append(t, v);
    }
    Arc::from(x.bytes())
}

fn load_chunks(head: &Head, payload: &[u8]) -> Option<()> {
    let mut d = encoding::Dec { b: payload };
    let s = head.series(d.uvarint()?)?;
    let n = d.uvarint()?;
    let mut full = Vec::new();
    let mut open = None;
    for i in 0..n {
        let mint = d.varint()?;
        let maxt = d.varint()?;
        let bytes = d.bytes()?;
        if i + 1 == n {
            open = Some((mint, OpenChunk::from_xor(bytes)?));
        } else {
            let mut it = XorIter::new(bytes);
            for _ in it.by_ref() {}
            if it.err {
                return None;
            }
            full.push(FloatChunk {
                mint,
                maxt,
                data: FloatChunkData::xor(bytes),
            });
        }
    }
    let (head_mint, open) = open?;
    install_chunks(head, &s, full, head_mint, open)
}

/// A [`CHUNKS2`] or (`open_format`) [`CHUNKS3`] record: closed chunks go straight to the
/// chunk store as they are (or, without one, into memory as XOR), after decoding checks them.
fn load_chunks2(head: &Head, payload: &[u8], open_format: bool) -> Option<()> {
    let mut d = encoding::Dec { b: payload };
    let s = head.series(d.uvarint()?)?;
    let n = d.uvarint()?;
    let store = head.chunk_store.get();
    let mut full = Vec::new();
    let mut samples = Vec::new();
    for _ in 0..n {
        let mint = d.varint()?;
        let maxt = d.varint()?;
        let data = inline_chunk(store, d.bytes()?, maxt, &mut samples)?;
        full.push(FloatChunk { mint, maxt, data });
    }
    let head_mint = d.varint()?;
    let _head_maxt = d.varint()?;
    let bytes = d.bytes()?;
    let open = if open_format {
        OpenChunk::from_bytes(bytes)?
    } else {
        OpenChunk::from_xor(bytes)?
    };
    install_chunks(head, &s, full, head_mint, open)
}

/// Puts a loaded series' chunks in place.
fn install_chunks(
    head: &Head,
    s: &super::series::MemSeries,
    full: Vec<FloatChunk>,
    head_mint: i64,
    open: OpenChunk,
) -> Option<()> {
    let mut data = s.data.lock();
    let Some(last) = open
        .last()
        .or_else(|| full.last().and_then(FloatChunk::last_sample))
    else {
        // A series created by an appender whose samples never arrived.
        return Some(());
    };
    for c in &full {
        head.note_time(c.mint);
        head.note_time(c.maxt);
    }
    if open.num_samples() > 0 {
        head.note_time(head_mint);
        head.note_time(last.0);
    }
    let chunks = full.len() + usize::from(open.num_samples() > 0);
    head.stats
        .chunks_created
        .fetch_add(chunks as u64, Ordering::Relaxed);
    data.full = full;
    data.head = open;
    data.head_mint = head_mint;
    data.last_t = last.0;
    data.last_v_bits = last.1.to_bits();
    s.last_t.store(last.0, Ordering::Relaxed);
    Some(())
}

fn load_hist_chunks(head: &Head, payload: &[u8]) -> Option<()> {
    let mut d = encoding::Dec { b: payload };
    let s = head.series(d.uvarint()?)?;
    let last_t = d.varint()?;
    let n = d.uvarint()?;
    let mut hd = HistData {
        last_t,
        ..HistData::default()
    };
    let mut decoded = Vec::new();
    let mut last = None;
    for i in 0..n {
        let mint = d.varint()?;
        let maxt = d.varint()?;
        let bytes = d.bytes()?;
        if i + 1 == n {
            hd.open = HistAppender::resume(bytes)?;
            hd.open_mint = mint;
        } else {
            if !hist::decode(bytes, &mut decoded) {
                return None;
            }
            last = decoded.pop().map(|x| x.1);
            hd.full.push(FullChunk {
                mint,
                maxt,
                bytes: Arc::from(bytes),
            });
        }
    }
    if hd.open.is_empty() {
        hd.open_mint = i64::MAX;
        if let Some(h) = last {
            hd.open.set_last(h);
        }
    }
    for c in &hd.full {
        head.note_time(c.mint);
        head.note_time(c.maxt);
    }
    if !hd.open.is_empty() {
        head.note_time(hd.open_mint);
        head.note_time(hd.last_t);
    }
    let chunks = hd.full.len() + usize::from(!hd.open.is_empty());
    head.stats
        .chunks_created
        .fetch_add(chunks as u64, Ordering::Relaxed);
    let mut data = s.data.lock();
    let last_any = data.last_t.max(last_t);
    data.hist = Some(Box::new(hd));
    s.has_hist.store(true, Ordering::Release);
    s.last_t.store(last_any, Ordering::Relaxed);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A capture written compressed loads back; the same records without compression (what
    /// vigil wrote before) load the same; a frame that would expand past the bound, a cut
    /// frame and garbage after the magic are refused as corrupt, not loaded in part.
    #[test]
    fn compressed_and_plain_snapshots_load_and_bombs_are_refused() {
        let head = Head::new(super::super::HeadOptions::default());
        {
            use vigil_model::Appendable;
            let mut a = head.appender();
            for i in 0..50 {
                let l = Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]);
                a.append(None, &l, 1000, i as f64).unwrap();
            }
            a.commit().unwrap();
        }
        let cap = head.capture().unwrap();
        let mut records = Vec::new();
        assert!(write_records(&mut records, &cap).is_ok());
        let mut zipped = MAGIC_ZSTD.to_vec();
        zipped.extend(zstd::bulk::compress(&records, ZSTD_LEVEL).unwrap());
        let mut plain = MAGIC.to_vec();
        plain.extend_from_slice(&records);
        assert!(zipped.len() < plain.len());
        for bytes in [&zipped, &plain] {
            let h = Head::new(super::super::HeadOptions::default());
            assert_eq!(load_bytes(&h, bytes, Path::new("s")).unwrap(), 50);
        }
        let p = Path::new("s");
        let h = Head::new(super::super::HeadOptions::default());
        assert!(load_bytes(&h, &zipped[..zipped.len() - 3], p).is_err());
        let mut garbage = MAGIC_ZSTD.to_vec();
        garbage.extend_from_slice(b"not a zstd frame");
        assert!(load_bytes(&h, &garbage, p).is_err());
        let mut bomb = MAGIC_ZSTD.to_vec();
        bomb.extend(zstd::bulk::compress(&vec![0u8; 64 << 20], 19).unwrap());
        let e = load_bytes(&h, &bomb, p).unwrap_err().to_string();
        assert!(e.contains("expand past"), "{e}");
    }
}
