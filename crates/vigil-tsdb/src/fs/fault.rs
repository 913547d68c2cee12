//! [`FaultFs`]: a file system that models the page cache over the real one, for tests.
//!
//! Files live on the real disk (so replay and memory-mapped blocks read them as usual), and
//! `FaultFs` shadows every change made through it:
//!
//! - **File data.** Each file it touched has *durable* bytes (as of its last successful fsync)
//!   and the writes and truncations made since (*volatile*). A simulated crash ([`FaultFs::crash`])
//!   replaces each such file with one of the contents it had since its last fsync (the kernel
//!   writes pages and metadata back in any order), possibly cut short past the durable part, or
//!   torn: cut, then the rest up to the chosen length zero-filled (the size reached the disk, the
//!   data did not) or garbled. Only bytes written since the last fsync are ever cut or torn;
//!   fsynced bytes change only as a later write or truncation of them did (or not).
//! - **Directory entries.** Creating, renaming and removing files and directories are pending
//!   until the parent directory is fsynced ([`Fs::sync_dir`]); fsyncing a file does not make its
//!   directory entry durable (POSIX does not promise it). A crash keeps the pending operations
//!   as a prefix of the order they were made in (a journaling file system commits metadata in
//!   order) and undoes the rest, newest first; a removal that is undone brings back the
//!   durable bytes of what it removed.
//! - **Faults.** [`Faults`]: a disk with `space` bytes left (a write past them stores what fits
//!   and returns the short count; the next one fails with `ENOSPC`), an `EIO` on the n-th write
//!   or truncation (nothing changed) or the n-th fsync of a file or directory (nothing made
//!   durable; what was volatile stays volatile).
//!
//! After a crash every file handle of the crashed "process" fails with `EIO`, and everything
//! on disk counts as durable. A crash is seeded: a failing run replays exactly.

use super::{Fs, FsFile};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Faults to inject; none by default.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Faults {
    /// Bytes the disk still takes (`None`: no limit).
    pub space: Option<u64>,
    /// The write (or truncation) after this many more fails with `EIO`, changing nothing
    /// (once).
    pub eio_write_after: Option<u32>,
    /// The fsync (of a file or a directory) after this many more fails with `EIO` (once).
    pub eio_fsync_after: Option<u32>,
}

/// What was done and injected, for the figures in `docs/reliability.md`.
#[derive(Debug, Default, Clone)]
pub struct FaultStats {
    pub writes: u64,
    pub fsyncs: u64,
    /// Writes that stored part of their bytes, then the disk was full.
    pub short_writes: u64,
    /// Writes refused with `ENOSPC`.
    pub enospc: u64,
    pub eio_writes: u64,
    pub eio_fsyncs: u64,
    pub crashes: u64,
    /// Files a crash left with less than their last contents: reverted to an older content,
    /// cut short, zero-filled or garbled.
    pub files_reverted: u64,
    pub files_cut: u64,
    pub files_zero_filled: u64,
    pub files_garbled: u64,
    /// Directory operations a crash undid.
    pub dir_ops_lost: u64,
}

enum DataOp {
    Write { off: u64, data: Vec<u8> },
    SetLen(u64),
}

/// A file's bytes as of its last fsync, and the changes since.
struct Node {
    durable: Vec<u8>,
    ops: Vec<DataOp>,
}

impl Node {
    /// The content after the first `n` changes since the last fsync.
    fn version(&self, n: usize) -> Vec<u8> {
        let mut v = self.durable.clone();
        for op in &self.ops[..n] {
            match op {
                DataOp::Write { off, data } => {
                    let off = *off as usize;
                    if v.len() < off + data.len() {
                        v.resize(off + data.len(), 0);
                    }
                    v[off..off + data.len()].copy_from_slice(data);
                }
                DataOp::SetLen(len) => v.resize(*len as usize, 0),
            }
        }
        v
    }
}

/// What a removal took away: a file's durable bytes, or a tree (`None`: a directory).
enum Saved {
    File(Vec<u8>),
    Tree(Vec<(PathBuf, Option<Vec<u8>>)>),
}

enum DirOp {
    Create(PathBuf),
    CreateDir(PathBuf),
    /// `replaced`: the durable bytes of the file the rename replaced.
    Rename {
        from: PathBuf,
        to: PathBuf,
        replaced: Option<Vec<u8>>,
    },
    Remove {
        path: PathBuf,
        saved: Saved,
    },
}

impl DirOp {
    /// Whether fsyncing `dir` makes this durable.
    fn in_dir(&self, dir: &Path) -> bool {
        let p = match self {
            DirOp::Create(p) | DirOp::CreateDir(p) | DirOp::Remove { path: p, .. } => p,
            DirOp::Rename { to, .. } => to,
        };
        p.parent() == Some(dir)
    }
}

#[derive(Default)]
struct State {
    faults: Faults,
    stats: FaultStats,
    generation: u64,
    next_id: u64,
    paths: HashMap<PathBuf, u64>,
    nodes: HashMap<u64, Node>,
    pending: Vec<DirOp>,
}

impl State {
    /// The node of `path`, tracked from now on with its current bytes as durable.
    fn node_of(&mut self, path: &Path) -> io::Result<u64> {
        if let Some(&id) = self.paths.get(path) {
            return Ok(id);
        }
        let durable = std::fs::read(path)?;
        Ok(self.track(path, durable))
    }

    fn track(&mut self, path: &Path, durable: Vec<u8>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.nodes.insert(
            id,
            Node {
                durable,
                ops: Vec::new(),
            },
        );
        self.paths.insert(path.to_path_buf(), id);
        id
    }

    /// The bytes of `path` a crash would bring back if its removal were undone.
    fn durable_bytes(&self, path: &Path) -> io::Result<Vec<u8>> {
        match self.paths.get(path) {
            Some(id) => Ok(self.nodes[id].durable.clone()),
            None => std::fs::read(path),
        }
    }

    /// Counts an fsync; `Err` when one is injected to fail.
    fn fsync_fault(&mut self) -> io::Result<()> {
        self.stats.fsyncs += 1;
        if countdown(&mut self.faults.eio_fsync_after) {
            self.stats.eio_fsyncs += 1;
            return Err(eio());
        }
        Ok(())
    }
}

/// Decrements `c`; true (and clears it) when it was at zero.
fn countdown(c: &mut Option<u32>) -> bool {
    match c {
        Some(0) => {
            *c = None;
            true
        }
        Some(n) => {
            *n -= 1;
            false
        }
        None => false,
    }
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(5)
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(28)
}

/// The fault-injecting file system (see the module docs). Clones share one state.
#[derive(Clone, Default)]
pub struct FaultFs(Arc<Mutex<State>>);

impl std::fmt::Debug for FaultFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultFs")
            .field("faults", &self.0.lock().faults)
            .finish()
    }
}

impl FaultFs {
    pub fn new() -> FaultFs {
        FaultFs::default()
    }

    /// Replaces the faults injected from now on.
    pub fn set_faults(&self, faults: Faults) {
        self.0.lock().faults = faults;
    }

    pub fn faults(&self) -> Faults {
        self.0.lock().faults.clone()
    }

    pub fn stats(&self) -> FaultStats {
        self.0.lock().stats.clone()
    }

    /// Bytes written since the last fsync of a file, directory operations not yet durable.
    pub fn volatile(&self) -> (usize, usize) {
        let s = self.0.lock();
        let files = s.nodes.values().filter(|n| !n.ops.is_empty()).count();
        (files, s.pending.len())
    }

    /// A power cut: leaves on disk what survives it under the model (module docs), chosen by
    /// `seed`, and clears the faults. Whoever wrote through this file system must be gone
    /// (its handles fail from now on).
    pub fn crash(&self, seed: u64) {
        let mut s = self.0.lock();
        let mut rng = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
        let mut paths: Vec<(PathBuf, u64)> = s.paths.iter().map(|(p, &i)| (p.clone(), i)).collect();
        paths.sort();
        for (path, id) in paths {
            let node = &s.nodes[&id];
            if node.ops.is_empty() || !path.is_file() {
                continue;
            }
            let last = node.version(node.ops.len());
            let mut v = match rng.below(8) {
                0 | 1 => last.clone(),
                2 => node.durable.clone(),
                _ => node.version(1 + rng.below(node.ops.len() as u64) as usize),
            };
            let base = node
                .durable
                .iter()
                .zip(&v)
                .take_while(|(a, b)| a == b)
                .count();
            let full = v.len();
            if full > base && rng.below(2) == 0 {
                let cut = base + rng.below((full - base) as u64 + 1) as usize;
                v.truncate(cut);
                match rng.below(4) {
                    0 => {
                        v.resize(full, 0);
                        s.stats.files_zero_filled += 1;
                    }
                    1 => {
                        let n = rng.below((full - cut) as u64 + 1) as usize;
                        v.extend((0..n).map(|_| rng.next() as u8));
                        s.stats.files_garbled += 1;
                    }
                    _ => s.stats.files_cut += 1,
                }
            }
            if v != last {
                s.stats.files_reverted += 1;
            }
            std::fs::write(&path, &v).expect("crash: rewriting a file");
        }
        let n = s.pending.len();
        let keep = match rng.below(3) {
            0 => n,
            1 => 0,
            _ => rng.below(n as u64 + 1) as usize,
        };
        s.stats.dir_ops_lost += (n - keep) as u64;
        let lost: Vec<DirOp> = s.pending.drain(keep..).collect();
        for op in lost.into_iter().rev() {
            undo(op);
        }
        s.paths.clear();
        s.nodes.clear();
        s.faults = Faults::default();
        s.generation += 1;
        s.stats.crashes += 1;
    }
}

/// Undoes a directory operation a crash lost.
fn undo(op: DirOp) {
    match op {
        DirOp::Create(p) => {
            let _ = std::fs::remove_file(p);
        }
        DirOp::CreateDir(p) => {
            let _ = std::fs::remove_dir_all(p);
        }
        DirOp::Rename { from, to, replaced } => {
            std::fs::rename(&to, &from).expect("crash: undoing a rename");
            if let Some(b) = replaced {
                std::fs::write(&to, b).expect("crash: undoing a rename");
            }
        }
        DirOp::Remove { path, saved } => match saved {
            Saved::File(b) => std::fs::write(&path, b).expect("crash: undoing a removal"),
            Saved::Tree(entries) => {
                std::fs::create_dir_all(&path).expect("crash: undoing a removal");
                for (rel, content) in entries {
                    let p = path.join(rel);
                    match content {
                        None => std::fs::create_dir_all(&p),
                        Some(b) => std::fs::write(&p, b),
                    }
                    .expect("crash: undoing a removal");
                }
            }
        },
    }
}

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// Files and directories under `root` (parents first), relative to it.
fn walk(root: &Path, rel: &Path, out: &mut Vec<(PathBuf, bool)>) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(root.join(rel))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let r = rel.join(e.file_name());
        if e.file_type()?.is_dir() {
            out.push((r.clone(), true));
            walk(root, &r, out)?;
        } else {
            out.push((r, false));
        }
    }
    Ok(())
}

impl Fs for FaultFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut s = self.0.lock();
        let existed = path.exists();
        if existed {
            // Its bytes before the truncation are durable unless tracked otherwise.
            s.node_of(path)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(path)?;
        let id = if existed {
            // Truncating an existing file changes its data, not the directory.
            let id = s.paths[path];
            s.nodes
                .get_mut(&id)
                .expect("tracked")
                .ops
                .push(DataOp::SetLen(0));
            id
        } else {
            s.pending.push(DirOp::Create(path.to_path_buf()));
            s.track(path, Vec::new())
        };
        Ok(Box::new(FaultFile {
            state: Arc::clone(&self.0),
            id,
            generation: s.generation,
            file,
            pos: Mutex::new(0),
        }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut s = self.0.lock();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let id = s.node_of(path)?;
        let len = file.metadata()?.len();
        Ok(Box::new(FaultFile {
            state: Arc::clone(&self.0),
            id,
            generation: s.generation,
            file,
            pos: Mutex::new(len),
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.0.lock();
        let missing: Vec<PathBuf> = path
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
            .map(Path::to_path_buf)
            .collect();
        for dir in missing.into_iter().rev() {
            std::fs::create_dir(&dir)?;
            s.pending.push(DirOp::CreateDir(dir));
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.0.lock();
        let replaced = if to.is_dir() {
            // Not done by the TSDB: not modelled.
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("FaultFs: rename over the directory {}", to.display()),
            ));
        } else if to.exists() {
            let b = s.durable_bytes(to)?;
            s.paths.remove(to);
            Some(b)
        } else {
            None
        };
        std::fs::rename(from, to)?;
        let moved: Vec<(PathBuf, u64)> = s
            .paths
            .iter()
            .filter(|(p, _)| p.starts_with(from))
            .map(|(p, &id)| (p.clone(), id))
            .collect();
        for (p, id) in moved {
            s.paths.remove(&p);
            let rel = p.strip_prefix(from).expect("filtered");
            let new = if rel.as_os_str().is_empty() {
                to.to_path_buf()
            } else {
                to.join(rel)
            };
            s.paths.insert(new, id);
        }
        s.pending.push(DirOp::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            replaced,
        });
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.0.lock();
        let saved = s.durable_bytes(path)?;
        std::fs::remove_file(path)?;
        s.paths.remove(path);
        s.pending.push(DirOp::Remove {
            path: path.to_path_buf(),
            saved: Saved::File(saved),
        });
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.0.lock();
        let mut entries = Vec::new();
        walk(path, Path::new(""), &mut entries)?;
        let mut saved = Vec::with_capacity(entries.len());
        for (rel, is_dir) in entries {
            let content = if is_dir {
                None
            } else {
                Some(s.durable_bytes(&path.join(&rel))?)
            };
            saved.push((rel, content));
        }
        std::fs::remove_dir_all(path)?;
        s.paths.retain(|p, _| !p.starts_with(path));
        s.pending.push(DirOp::Remove {
            path: path.to_path_buf(),
            saved: Saved::Tree(saved),
        });
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.0.lock();
        s.fsync_fault()?;
        std::fs::File::open(path)?;
        s.pending.retain(|op| !op.in_dir(path));
        Ok(())
    }
}

struct FaultFile {
    state: Arc<Mutex<State>>,
    id: u64,
    generation: u64,
    file: std::fs::File,
    pos: Mutex<u64>,
}

impl FaultFile {
    /// The state, unless a crash happened since this file was opened.
    fn live(&self) -> io::Result<parking_lot::MutexGuard<'_, State>> {
        let s = self.state.lock();
        if s.generation != self.generation {
            return Err(eio());
        }
        Ok(s)
    }

    fn sync(&self) -> io::Result<()> {
        let mut s = self.live()?;
        s.fsync_fault()?;
        if let Some(node) = s.nodes.get_mut(&self.id) {
            node.durable = node.version(node.ops.len());
            node.ops.clear();
        }
        Ok(())
    }
}

impl FsFile for FaultFile {
    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut s = self.live()?;
        s.stats.writes += 1;
        if countdown(&mut s.faults.eio_write_after) {
            s.stats.eio_writes += 1;
            return Err(eio());
        }
        let mut n = buf.len();
        let st = &mut *s;
        if let Some(space) = st.faults.space.as_mut() {
            if *space == 0 {
                st.stats.enospc += 1;
                return Err(enospc());
            }
            if (*space as usize) < n {
                n = *space as usize;
                st.stats.short_writes += 1;
            }
            *space -= n as u64;
        }
        let mut pos = self.pos.lock();
        self.file.write_all_at(&buf[..n], *pos)?;
        if let Some(node) = s.nodes.get_mut(&self.id) {
            node.ops.push(DataOp::Write {
                off: *pos,
                data: buf[..n].to_vec(),
            });
        }
        *pos += n as u64;
        Ok(n)
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        let mut s = self.live()?;
        // A truncation changes data: the injected write error applies to it too.
        if countdown(&mut s.faults.eio_write_after) {
            s.stats.eio_writes += 1;
            return Err(eio());
        }
        self.file.set_len(len)?;
        *self.pos.lock() = len;
        if let Some(node) = s.nodes.get_mut(&self.id) {
            node.ops.push(DataOp::SetLen(len));
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(&self.file, buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}
