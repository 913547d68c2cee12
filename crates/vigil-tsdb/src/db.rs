//! [`Tsdb`]: the head with its write-ahead log and snapshots in a data directory.
//!
//! `open` replays, then starts a fresh WAL segment; appenders log every commit before applying
//! it; [`Tsdb::maintain`] (called every minute by the binary) applies retention and writes a
//! checkpoint snapshot when the log has grown; [`Tsdb::close`] writes the shutdown snapshot so
//! the next start replays nothing.

use crate::block::writer::{is_block_dir, write_block};
use crate::block::{Block, Compaction};
use crate::chunk::disk::ChunkStore;
use crate::error::{TsdbError, io_err};
use crate::fs::{Fs, OsFs};
use crate::head::{Head, HeadOptions, snapshot};

use crate::replay::{self, ReplayReport};
use crate::wal::{self, FsyncPolicy, Wal};
use parking_lot::RwLock;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use vigil_model::{
    Appendable, Appender, Labels, MergeQuerier, Querier, Queryable, SeriesRef, StorageError,
    Timestamp,
};

#[derive(Debug, Clone)]
pub struct TsdbOptions {
    /// `--storage.tsdb.retention.time` in ms; 0 keeps everything.
    pub retention_ms: i64,
    /// `--storage.tsdb.retention.size` in bytes; 0: no limit.
    pub retention_bytes: u64,
    /// `storage.tsdb.out_of_order_time_window` in ms; 0 refuses out-of-order samples.
    pub out_of_order_time_window_ms: i64,
    /// `--storage.tsdb.max-series`; 0: no limit.
    pub max_series: usize,
    pub wal_fsync: FsyncPolicy,
    /// Write a head snapshot at `close` (near-instant restarts).
    pub snapshot_on_shutdown: bool,
    /// Write a checkpoint snapshot once this many WAL segments were written since the last.
    pub checkpoint_after_segments: u32,
    /// Also write one once the WAL since the last snapshot is larger than that snapshot and
    /// than this many bytes (replaying it would take longer than the snapshot takes to write).
    pub checkpoint_min_wal_bytes: u64,
    /// The range of blocks cut from the head (2 h); compactions make multiples of it.
    pub block_range_ms: i64,
    /// How WAL records are compressed (`--storage.tsdb.wal-compression[-type]`).
    pub wal_compression: crate::wal::record::WalCompression,
    /// The file layer every durable write goes through ([`crate::fs`]): the operating
    /// system's by default, a fault-injecting one in tests.
    pub fs: Arc<dyn Fs>,
}

impl Default for TsdbOptions {
    fn default() -> Self {
        TsdbOptions {
            retention_ms: 15 * 24 * 3600 * 1000,
            retention_bytes: 0,
            out_of_order_time_window_ms: 0,
            max_series: 0,
            wal_fsync: FsyncPolicy::Never,
            snapshot_on_shutdown: true,
            checkpoint_after_segments: 3,
            checkpoint_min_wal_bytes: 16 << 20,
            block_range_ms: 2 * 3600 * 1000,
            wal_compression: Default::default(),
            fs: Arc::new(OsFs),
        }
    }
}

/// Counters beyond the head's, exported under Prometheus' names.
#[derive(Debug, Default)]
pub struct TsdbStats {
    /// `prometheus_tsdb_wal_corruptions_total` (snapshot corruptions included).
    pub wal_corruptions: AtomicU64,
    /// `prometheus_tsdb_data_replay_duration_seconds`, in ms.
    pub replay_duration_ms: AtomicU64,
    /// `prometheus_tsdb_checkpoint_creations_total`.
    pub checkpoints: AtomicU64,
    pub checkpoint_failures: AtomicU64,
    /// Samples replayed at open.
    pub replayed_samples: AtomicU64,
    /// First and last WAL segment replayed at open (`/api/v1/status/walreplay`).
    pub replayed_first_segment: AtomicU64,
    pub replayed_last_segment: AtomicU64,
    /// `prometheus_tsdb_compactions_total`: blocks written from the head or from blocks.
    pub compactions: AtomicU64,
    pub compactions_failed: AtomicU64,
    /// `prometheus_tsdb_time_retentions_total`, `prometheus_tsdb_size_retentions_total`.
    pub time_retentions: AtomicU64,
    pub size_retentions: AtomicU64,
    /// Blocks that failed to load and are skipped.
    pub block_corruptions: AtomicU64,
    /// `prometheus_tsdb_wal_writes_failed_total`: WAL writes that failed (disk full, I/O
    /// error); each one is a commit that was refused.
    pub wal_writes_failed: Arc<AtomicU64>,
}

pub struct Tsdb {
    dir: PathBuf,
    head: Head,
    opts: TsdbOptions,
    stats: TsdbStats,
    /// Serialises checkpoints, compaction, deletion and close.
    pub(crate) maint: parking_lot::Mutex<()>,
    /// The WAL segment the current snapshot starts (0 without one).
    snapshot_segment: AtomicU64,
    /// Loaded blocks, sorted by min time.
    blocks: RwLock<Vec<Arc<Block>>>,
    /// `<dir>/lock`, flock-ed while open so two processes never share a data directory
    /// (released by the kernel when the process dies, so a crash never leaves it held).
    _lock: std::fs::File,
    /// WAL readers (remote-write queues) whose segments checkpoints keep.
    wal_holds: wal::holds::WalHolds,
    /// Closed head chunks moved out of memory (`<dir>/chunks_head`).
    chunk_store: Arc<ChunkStore>,
    /// Open queriers, which a head cut waits for before it drops what it moved to a block.
    readers: Readers,
}

/// How long a head cut waits for queriers opened before its block was loaded.
const READER_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The queriers open, per generation (one more at every head cut). A querier takes the block
/// list when it opens and reads the head lazily: one that opened before a cut loaded its new
/// block, and read the head after the cut dropped those samples, missed them (a block range
/// of samples absent from a query answer). So a cut drops them only once the queriers of
/// earlier generations are closed, as Prometheus waits for pending readers before it
/// truncates its head.
#[derive(Default)]
struct Readers {
    open: parking_lot::Mutex<OpenReaders>,
    /// Signalled when the last querier of a generation closes.
    closed: parking_lot::Condvar,
}

#[derive(Default)]
struct OpenReaders {
    generation: u64,
    /// Open queriers per generation.
    count: std::collections::BTreeMap<u64, usize>,
}

/// One open querier; closed when dropped.
struct ReaderTicket<'a> {
    readers: &'a Readers,
    generation: u64,
}

impl Readers {
    fn enter(&self) -> ReaderTicket<'_> {
        let mut open = self.open.lock();
        let generation = open.generation;
        *open.count.entry(generation).or_default() += 1;
        ReaderTicket {
            readers: self,
            generation,
        }
    }

    /// Waits (at most `limit`) until every querier opened before this call is closed.
    /// Returns false when some were still open at the end.
    fn wait_for_older(&self, limit: std::time::Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut open = self.open.lock();
        let older = open.generation;
        open.generation += 1;
        while open.count.range(..=older).next().is_some() {
            if self.closed.wait_until(&mut open, deadline).timed_out() {
                return open.count.range(..=older).next().is_none();
            }
        }
        true
    }
}

impl Drop for ReaderTicket<'_> {
    fn drop(&mut self) {
        let mut open = self.readers.open.lock();
        if let Some(n) = open.count.get_mut(&self.generation) {
            *n -= 1;
            if *n == 0 {
                open.count.remove(&self.generation);
                self.readers.closed.notify_all();
            }
        }
    }
}

/// [`Tsdb::querier`]'s answer: the blocks and the head, merged, and its ticket.
struct TsdbQuerier<'a> {
    inner: MergeQuerier<'a>,
    _ticket: ReaderTicket<'a>,
}

impl Querier for TsdbQuerier<'_> {
    fn select(
        &self,
        matchers: &[vigil_model::Matcher],
        hints: &vigil_model::SelectHints,
    ) -> Result<vigil_model::SeriesSet<'_>, StorageError> {
        self.inner.select(matchers, hints)
    }

    fn label_names(&self, matchers: &[vigil_model::Matcher]) -> Result<Vec<String>, StorageError> {
        self.inner.label_names(matchers)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[vigil_model::Matcher],
    ) -> Result<Vec<String>, StorageError> {
        self.inner.label_values(name, matchers)
    }
}

impl Tsdb {
    /// Opens (creating if needed) the data directory `dir`, replaying what is there.
    /// Every write goes through `opts.fs`.
    pub fn open(dir: &Path, opts: TsdbOptions) -> Result<Tsdb, TsdbError> {
        let fs = Arc::clone(&opts.fs);
        crate::fs::create_dir_all_durable(&*fs, dir).map_err(|e| io_err(dir, e))?;
        let lock = lock_dir(dir)?;
        let head = Head::new(HeadOptions {
            retention_ms: opts.retention_ms,
            out_of_order_time_window_ms: opts.out_of_order_time_window_ms,
            max_series: opts.max_series,
            wal_compression: opts.wal_compression,
        });
        let stats = TsdbStats::default();
        let blocks = load_blocks(&*fs, dir, &[], &stats, Leftovers::Remove)?;
        if let Some(maxt) = blocks.iter().map(|b| b.meta().max_time).max() {
            // What blocks hold is not the head's any more; replay skips it.
            head.set_min_valid_time(maxt);
        }
        // Before the replay, so that replayed chunks go to disk as they are cut.
        let chunks_dir = dir.join("chunks_head");
        let chunk_store = Arc::new(
            ChunkStore::open(Arc::clone(&fs), &chunks_dir).map_err(|e| io_err(&chunks_dir, e))?,
        );
        let _ = head.chunk_store.set(Arc::clone(&chunk_store));
        let start = Instant::now();
        let rep: ReplayReport = replay::replay(&head, dir, &*fs)?;
        // The segments the snapshot named are adopted; what a crash left after it goes.
        chunk_store
            .finish_open()
            .map_err(|e| io_err(&chunks_dir, e))?;
        // Chunks a snapshot loaded are in memory: move them out now, not a minute later.
        if let Err(e) = head.offload_chunks() {
            tracing::warn!(
                "Could not move head chunks to {}: {e}",
                chunks_dir.display()
            );
        }
        let took = start.elapsed();
        stats
            .wal_corruptions
            .store(rep.corruptions, Ordering::Relaxed);
        stats
            .replay_duration_ms
            .store(took.as_millis() as u64, Ordering::Relaxed);
        stats.replayed_samples.store(rep.samples, Ordering::Relaxed);
        stats
            .replayed_first_segment
            .store(rep.first_segment as u64, Ordering::Relaxed);
        stats
            .replayed_last_segment
            .store(rep.last_segment as u64, Ordering::Relaxed);
        tracing::info!(
            duration = ?took,
            series = head.num_series(),
            snapshot_series = rep.snapshot_series,
            wal_segments = rep.segments,
            wal_samples = rep.samples,
            corruptions = rep.corruptions,
            "TSDB started"
        );
        let snapshot_segment = snapshot::list_snapshots(dir)?.first().copied().unwrap_or(0);
        // What was replayed may sit in the page cache only (the previous process was killed
        // before an fsync). Records written from now on go to a new segment; if a power cut
        // then took the tail of an older one and kept the new one, replay would go on past the
        // hole (a torn segment with a successor, docs/format/wal.md) and the lost commits
        // would be a gap, not a suffix. So the older segments are made durable first.
        // Likewise the directory entries: a snapshot whose rename was never made durable (the
        // directory fsync of a checkpoint failed) was just loaded, and the series it holds
        // are not logged again; if a power cut then undid the rename, their later samples
        // would replay against series nobody logged, and be lost.
        let wal_dir = dir.join("wal");
        for s in wal::list_segments(&wal_dir)? {
            let p = wal_dir.join(wal::segment_name(s));
            fs.open_append(&p)
                .and_then(|f| f.sync_all())
                .map_err(|e| io_err(&p, e))?;
        }
        for d in [dir, wal_dir.as_path()] {
            if d.exists() {
                fs.sync_dir(d).map_err(|e| io_err(d, e))?;
            }
        }
        let wal = Wal::create_with(
            &dir.join("wal"),
            rep.next_segment,
            opts.wal_fsync,
            fs,
            Arc::clone(&stats.wal_writes_failed),
        )?;
        head.commit.lock().wal = Some(wal);
        // Retention may have advanced while we were down.
        head.truncate_old();
        Ok(Tsdb {
            dir: dir.to_path_buf(),
            head,
            opts,
            stats,
            maint: parking_lot::Mutex::new(()),
            snapshot_segment: AtomicU64::new(snapshot_segment as u64),
            blocks: RwLock::new(blocks),
            wal_holds: Default::default(),
            _lock: lock,
            chunk_store,
            readers: Readers::default(),
        })
    }

    /// The WAL readers' low-water marks that checkpoints respect (`wal/holds.rs`).
    pub fn wal_holds(&self) -> &wal::holds::WalHolds {
        &self.wal_holds
    }

    /// The directory of the WAL segments.
    pub fn wal_dir(&self) -> PathBuf {
        self.dir.join("wal")
    }

    /// The loaded blocks, oldest first.
    pub fn blocks(&self) -> Vec<Arc<Block>> {
        self.blocks.read().clone()
    }

    pub(crate) fn blocks_mut(&self) -> parking_lot::RwLockWriteGuard<'_, Vec<Arc<Block>>> {
        self.blocks.write()
    }

    /// Bytes of all loaded blocks (`prometheus_tsdb_storage_blocks_bytes`).
    pub fn blocks_bytes(&self) -> u64 {
        self.blocks.read().iter().map(|b| b.size()).sum()
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    pub fn stats(&self) -> &TsdbStats {
        &self.stats
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn options(&self) -> &TsdbOptions {
        &self.opts
    }

    /// How long the last open spent replaying.
    pub fn replay_duration(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.stats.replay_duration_ms.load(Ordering::Relaxed))
    }

    /// Bytes the storage uses on disk: blocks, WAL segments and the head snapshot, as
    /// `--storage.tsdb.retention.size` counts them (not admin snapshots or foreign files).
    pub fn disk_bytes(&self) -> u64 {
        let file_len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let wal_dir = self.dir.join("wal");
        let wal: u64 = wal::list_segments(&wal_dir)
            .unwrap_or_default()
            .into_iter()
            .map(|s| file_len(&wal_dir.join(wal::segment_name(s))))
            .sum();
        let snaps: u64 = snapshot::list_snapshots(&self.dir)
            .unwrap_or_default()
            .into_iter()
            .map(|s| file_len(&snapshot::snapshot_path(&self.dir, s)))
            .sum();
        self.blocks_bytes() + wal + snaps + self.chunk_store.bytes()
    }

    /// Periodic upkeep: picks up blocks written by `tsdb import`, cuts the head into blocks,
    /// compacts blocks, applies retention, and writes a checkpoint when the WAL has grown.
    pub fn maintain(&self) -> Result<(), TsdbError> {
        self.offload_chunks();
        self.reload_blocks()?;
        let cut = self.compact_head()?;
        self.compact_blocks()?;
        self.apply_retention()?;
        self.head.truncate_old();
        if let Some(min) = self.head.min_time() {
            self.chunk_store.truncate_before(min);
        }
        if cut {
            return self.checkpoint();
        }
        let current = self
            .head
            .commit
            .lock()
            .wal
            .as_ref()
            .map_or(0, |w| w.segment());
        let since = current as u64
            - self
                .snapshot_segment
                .load(Ordering::Relaxed)
                .min(current as u64);
        if since >= self.opts.checkpoint_after_segments as u64 || self.wal_outgrew_snapshot() {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Whether the WAL written since the last snapshot is larger than that snapshot (and than
    /// `checkpoint_min_wal_bytes`): replaying it after a crash would then take longer than writing
    /// a new snapshot, which names the closed chunks in `chunks_head/` instead of copying them.
    /// This bounds the WAL on disk and the replay after a crash by the size of the snapshot.
    fn wal_outgrew_snapshot(&self) -> bool {
        let from = self.snapshot_segment.load(Ordering::Relaxed);
        let snapshot = std::fs::metadata(snapshot::snapshot_path(&self.dir, from as u32))
            .map_or(0, |m| m.len());
        let wal_dir = self.wal_dir();
        let wal: u64 = wal::list_segments(&wal_dir)
            .unwrap_or_default()
            .into_iter()
            .filter(|&s| s as u64 >= from)
            .filter_map(|s| std::fs::metadata(wal_dir.join(wal::segment_name(s))).ok())
            .map(|m| m.len())
            .sum();
        wal > snapshot.max(self.opts.checkpoint_min_wal_bytes)
    }

    /// Moves the head's closed chunks out of memory ([`ChunkStore`]). A failed write (a full
    /// disk) leaves them in memory, where queries and compaction still find them.
    pub fn offload_chunks(&self) {
        let start = Instant::now();
        match self.head.offload_chunks() {
            Ok(n) => {
                tracing::debug!(chunks = n, duration = ?start.elapsed(), "Moved closed head chunks to chunks_head")
            }
            Err(e) => tracing::warn!(
                "Could not move closed head chunks to {}: {e}; they stay in memory",
                self.dir.join("chunks_head").display()
            ),
        }
    }

    /// Bytes of closed head chunks on disk (`prometheus_tsdb_head_chunks_storage_size_bytes`).
    pub fn chunks_head_bytes(&self) -> u64 {
        self.chunk_store.bytes()
    }

    /// Writes a snapshot of the head and deletes the WAL segments and snapshots it replaces.
    pub fn checkpoint(&self) -> Result<(), TsdbError> {
        let _m = self.maint.lock();
        let start = Instant::now();
        let res = self.checkpoint_locked();
        match &res {
            Ok(size) => {
                self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
                tracing::info!(duration = ?start.elapsed(), bytes = size, "Wrote head snapshot");
            }
            Err(e) => {
                self.stats
                    .checkpoint_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!("Head snapshot failed: {e}");
            }
        }
        res.map(|_| ())
    }

    /// Loads block directories that appeared since open (an import into a running vigil).
    pub fn reload_blocks(&self) -> Result<usize, TsdbError> {
        let known: Vec<PathBuf> = self
            .blocks
            .read()
            .iter()
            .map(|b| b.dir().to_path_buf())
            .collect();
        // `<ulid>.tmp` may be a block `vigil tsdb import` is writing right now: only an open,
        // which no import can race with a crash's leftover of, removes those.
        let new = load_blocks(
            &*self.opts.fs,
            &self.dir,
            &known,
            &self.stats,
            Leftovers::Keep,
        )?;
        let n = new.len();
        if n > 0 {
            for b in &new {
                tracing::info!(block = %b.meta().ulid, "Loaded new block");
            }
            let mut blocks = self.blocks.write();
            blocks.extend(new);
            blocks.sort_by_key(|b| b.meta().min_time);
        }
        Ok(n)
    }

    /// Cuts the oldest block range out of the head while the head spans more than 1.5 ranges.
    /// Returns whether a block was written.
    fn compact_head(&self) -> Result<bool, TsdbError> {
        let _m = self.maint.lock();
        let range = self.opts.block_range_ms.max(1);
        let mut cut = false;
        while let (Some(min), Some(max)) = (self.head.min_time(), self.head.max_time()) {
            if max.saturating_sub(min) <= range / 2 * 3 {
                break;
            }
            let mint = min.div_euclid(range) * range;
            let maxt = mint + range;
            let start = Instant::now();
            let q = self
                .head
                .querier(mint, maxt - 1)
                .map_err(|e| TsdbError::Invalid(e.to_string()))?;
            let written = write_block(
                &*self.opts.fs,
                &self.dir,
                q.as_ref(),
                mint,
                maxt,
                Compaction {
                    level: 1,
                    sources: Vec::new(),
                },
            );
            drop(q);
            match written {
                Ok(Some((meta, dir))) => {
                    let b = Arc::new(Block::open(&dir)?);
                    let mut blocks = self.blocks.write();
                    blocks.push(b);
                    blocks.sort_by_key(|b| b.meta().min_time);
                    drop(blocks);
                    if !self.readers.wait_for_older(READER_WAIT) {
                        tracing::warn!(
                            block = %meta.ulid,
                            "A query open for more than {READER_WAIT:?} may miss the samples of this block, moved out of the head under it"
                        );
                    }
                    tracing::info!(
                        block = %meta.ulid,
                        mint, maxt,
                        series = meta.stats.num_series,
                        samples = meta.stats.num_samples,
                        duration = ?start.elapsed(),
                        "Wrote block from the head"
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    self.stats
                        .compactions_failed
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            }
            self.stats.compactions.fetch_add(1, Ordering::Relaxed);
            self.head.truncate_before(maxt);
            // Jump over empty ranges straight to the oldest sample left.
            self.head.recompute_min_time();
            cut = true;
        }
        Ok(cut)
    }

    /// Merges blocks that overlap in time ([`overlapping_groups`]), then blocks that together
    /// fill a larger aligned window (3, 9, 27… ranges) once the head has moved past that window.
    fn compact_blocks(&self) -> Result<(), TsdbError> {
        let _m = self.maint.lock();
        for group in overlapping_groups(&self.blocks()) {
            tracing::info!(blocks = group.len(), "Merging blocks that overlap in time");
            self.merge_blocks(&group)?;
        }
        let base = self.opts.block_range_ms.max(1);
        let cap = if self.opts.retention_ms > 0 {
            (self.opts.retention_ms / 10).min(31 * 24 * 3600 * 1000)
        } else {
            31 * 24 * 3600 * 1000
        };
        let head_min = self.head.min_valid_time();
        let mut window = base * 3;
        while window <= cap.max(base * 3) {
            let blocks = self.blocks();
            let mut groups: std::collections::BTreeMap<i64, Vec<Arc<Block>>> = Default::default();
            for b in blocks {
                let w = b.meta().min_time.div_euclid(window);
                if b.meta().max_time <= (w + 1) * window {
                    groups.entry(w).or_default().push(b);
                }
            }
            for (w, group) in groups {
                let end = (w + 1) * window;
                if group.len() < 2 || end > head_min {
                    continue;
                }
                self.merge_blocks(&group)?;
            }
            window *= 3;
        }
        Ok(())
    }

    fn merge_blocks(&self, group: &[Arc<Block>]) -> Result<(), TsdbError> {
        let mint = group.iter().map(|b| b.meta().min_time).min().unwrap_or(0);
        let maxt = group.iter().map(|b| b.meta().max_time).max().unwrap_or(0);
        let level = group
            .iter()
            .map(|b| b.meta().compaction.level)
            .max()
            .unwrap_or(1)
            + 1;
        let sources = group.iter().map(|b| b.meta().ulid.clone()).collect();
        let start = Instant::now();
        let q = MergeQuerier {
            queriers: group
                .iter()
                .map(|b| Box::new(b.querier(mint, maxt - 1)) as Box<dyn Querier>)
                .collect(),
            ranges: Vec::new(),
        };
        let written = write_block(
            &*self.opts.fs,
            &self.dir,
            &q,
            mint,
            maxt,
            Compaction { level, sources },
        );
        let (meta, dir) = match written {
            Ok(Some(x)) => x,
            Ok(None) => return Ok(()),
            Err(e) => {
                self.stats
                    .compactions_failed
                    .fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        let b = Arc::new(Block::open(&dir)?);
        {
            let mut blocks = self.blocks.write();
            blocks.retain(|x| !group.iter().any(|g| Arc::ptr_eq(g, x)));
            blocks.push(b);
            blocks.sort_by_key(|b| b.meta().min_time);
        }
        for g in group {
            let _ = delete_block_dir(&*self.opts.fs, g.dir());
        }
        self.stats.compactions.fetch_add(1, Ordering::Relaxed);
        tracing::info!(block = %meta.ulid, level, sources = group.len(), duration = ?start.elapsed(), "Compacted blocks");
        Ok(())
    }

    /// Deletes blocks past the retention time, then the oldest blocks while the data
    /// directory exceeds the retention size.
    fn apply_retention(&self) -> Result<(), TsdbError> {
        let _m = self.maint.lock();
        let newest = self
            .head
            .max_time()
            .into_iter()
            .chain(self.blocks.read().iter().map(|b| b.meta().max_time - 1))
            .max();
        let mut doomed: Vec<Arc<Block>> = Vec::new();
        if let (Some(newest), true) = (newest, self.opts.retention_ms > 0) {
            let cutoff = newest.saturating_sub(self.opts.retention_ms);
            for b in self.blocks.read().iter() {
                if b.meta().max_time <= cutoff {
                    doomed.push(b.clone());
                    self.stats.time_retentions.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if self.opts.retention_bytes > 0 {
            let blocks = self.blocks();
            let mut total = self.disk_bytes();
            for b in &blocks {
                if total <= self.opts.retention_bytes {
                    break;
                }
                if !doomed.iter().any(|d| Arc::ptr_eq(d, b)) {
                    doomed.push(b.clone());
                    self.stats.size_retentions.fetch_add(1, Ordering::Relaxed);
                }
                total = total.saturating_sub(b.size());
            }
        }
        if doomed.is_empty() {
            return Ok(());
        }
        self.blocks
            .write()
            .retain(|x| !doomed.iter().any(|d| Arc::ptr_eq(d, x)));
        for b in doomed {
            tracing::info!(block = %b.meta().ulid, "Deleting block (retention)");
            delete_block_dir(&*self.opts.fs, b.dir())?;
        }
        Ok(())
    }

    fn checkpoint_locked(&self) -> Result<u64, TsdbError> {
        if self.head.commit.lock().closed {
            return Err(TsdbError::Invalid("the TSDB is closed".into()));
        }
        let cap = self.head.capture()?;
        // The snapshot names closed chunks where `chunks_head/` holds them: durable first.
        self.chunk_store
            .sync()
            .map_err(|e| io_err(&self.dir.join("chunks_head"), e))?;
        let fs = &*self.opts.fs;
        let size = snapshot::write(fs, &self.dir, &cap)?;
        // Segments retired before the capture are named by no snapshot on disk any more.
        self.chunk_store.release_retired(cap.retire_mark);
        self.snapshot_segment
            .store(cap.segment as u64, Ordering::Relaxed);
        // The new snapshot replaces every older segment and snapshot, except the segments a
        // WAL reader (remote write) still needs, within their bound.
        let wal_dir = self.dir.join("wal");
        let segments = wal::list_segments(&wal_dir)?;
        let sized: Vec<(u32, u64)> = segments
            .iter()
            .map(|&s| {
                let len = std::fs::metadata(wal_dir.join(wal::segment_name(s)));
                (s, len.map_or(0, |m| m.len()))
            })
            .collect();
        let keep_from = self.wal_holds.keep_from(cap.segment, &sized);
        for s in segments {
            if s < keep_from {
                let p = wal_dir.join(wal::segment_name(s));
                fs.remove_file(&p).map_err(|e| io_err(&p, e))?;
            }
        }
        for s in snapshot::list_snapshots(&self.dir)? {
            if s != cap.segment {
                let p = snapshot::snapshot_path(&self.dir, s);
                fs.remove_file(&p).map_err(|e| io_err(&p, e))?;
            }
        }
        for p in snapshot::list_temporary(&self.dir)? {
            // Left by a crash during an earlier snapshot.
            fs.remove_file(&p).map_err(|e| io_err(&p, e))?;
        }
        fs.sync_dir(&wal_dir).map_err(|e| io_err(&wal_dir, e))?;
        fs.sync_dir(&self.dir).map_err(|e| io_err(&self.dir, e))?;
        Ok(size)
    }

    /// Clean shutdown: snapshot (when enabled), fsync and close the WAL. Later commits fail
    /// with [`StorageError::Closed`]; reads keep working.
    pub fn close(&self) -> Result<(), TsdbError> {
        if self.opts.snapshot_on_shutdown {
            self.checkpoint()?;
        }
        let _m = self.maint.lock();
        let mut c = self.head.commit.lock();
        c.closed = true;
        if let Some(mut w) = c.wal.take() {
            w.sync()?;
        }
        Ok(())
    }
}

/// Remote write follows the log through this seam (`vigil_model::wal`).
impl vigil_model::wal::WalSource for Tsdb {
    fn data_dir(&self) -> &Path {
        &self.dir
    }

    fn newest_segment(&self) -> Option<u32> {
        wal::list_segments(&self.wal_dir()).ok()?.last().copied()
    }

    fn oldest_segment(&self) -> Option<u32> {
        wal::list_segments(&self.wal_dir()).ok()?.first().copied()
    }

    fn reader(&self, from: vigil_model::wal::WalPos) -> Box<dyn vigil_model::wal::WalReader> {
        Box::new(wal::tail::RecordReader::new(&self.wal_dir(), from))
    }

    fn hold(&self, name: &str, segment: u32) -> Arc<dyn vigil_model::wal::WalHold> {
        self.wal_holds.register(name, segment)
    }

    fn series_labels(&self, r: SeriesRef) -> Option<Labels> {
        self.head.series_labels(r)
    }

    fn num_series(&self) -> usize {
        self.head.num_series()
    }

    fn samples_appended(&self) -> u64 {
        self.head.stats.samples_appended.load(Ordering::Relaxed)
    }

    fn max_time(&self) -> Option<Timestamp> {
        self.head.max_time()
    }

    /// Through the file layer ([`crate::fs`]), like every other durable write.
    fn write_state_file(&self, path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
        let fs = &*self.opts.fs;
        if let Some(dir) = path.parent() {
            crate::fs::create_dir_all_durable(fs, dir)?;
        }
        let tmp = vigil_model::wal::state_tmp_path(path);
        {
            let f = fs.create(&tmp)?;
            f.write_all(bytes)?;
            if sync {
                f.sync_all()?;
            }
        }
        fs.rename(&tmp, path)?;
        match path.parent() {
            Some(dir) if sync => fs.sync_dir(dir),
            _ => Ok(()),
        }
    }
}

impl Appendable for Tsdb {
    fn appender(&self) -> Box<dyn Appender + '_> {
        self.head.appender()
    }
}

impl Queryable for Tsdb {
    fn querier(
        &self,
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Box<dyn Querier + '_>, StorageError> {
        // Before the block list is taken: a head cut from now on waits for this querier.
        let ticket = self.readers.enter();
        let mut queriers: Vec<Box<dyn Querier + '_>> = Vec::new();
        let mut ranges = Vec::new();
        for b in self.blocks.read().iter() {
            let m = b.meta();
            if m.max_time > mint && m.min_time <= maxt {
                queriers.push(Box::new(b.querier(mint, maxt)));
                ranges.push((m.min_time, m.max_time - 1));
            }
        }
        queriers.push(self.head.querier(mint, maxt)?);
        ranges.push(match (self.head.min_time(), self.head.max_time()) {
            (Some(lo), Some(hi)) => (lo, hi),
            // An empty head holds nothing: a range no other overlaps.
            _ => (i64::MAX, i64::MAX),
        });
        Ok(Box::new(TsdbQuerier {
            inner: MergeQuerier { queriers, ranges },
            _ticket: ticket,
        }))
    }
}

/// Groups of two or more blocks whose time ranges overlap (chained: each overlaps the range
/// the ones before it cover), from `blocks` sorted by min time. An import next to blocks cut
/// from the head, or an import run again after it was killed, leaves such blocks; merging
/// each group into one block keeps a sample stored twice once, as Prometheus' vertical
/// compaction (on by default since 3.0) does. The aligned windows of [`Tsdb::compact_blocks`]
/// cannot be relied on for this: an imported block need not fit in any of them.
fn overlapping_groups(blocks: &[Arc<Block>]) -> Vec<Vec<Arc<Block>>> {
    let mut groups = Vec::new();
    let mut group: Vec<Arc<Block>> = Vec::new();
    let mut end = i64::MIN;
    for b in blocks {
        let m = b.meta();
        if group.is_empty() || m.min_time >= end {
            if group.len() > 1 {
                groups.push(std::mem::take(&mut group));
            }
            group.clear();
            end = m.max_time;
        } else {
            end = end.max(m.max_time);
        }
        group.push(Arc::clone(b));
    }
    if group.len() > 1 {
        groups.push(group);
    }
    groups
}

/// Takes the exclusive lock on `<dir>/lock`, as Prometheus does.
fn lock_dir(dir: &Path) -> Result<std::fs::File, TsdbError> {
    let path = dir.join("lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_err(&path, e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(TsdbError::Locked { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(io_err(&path, e)),
    }
}

/// What [`load_blocks`] does with `<ulid>.tmp` and `<ulid>.deleting` directories.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Leftovers {
    /// At open: they are what a crash left (of this process or of an import), removed.
    Remove,
    /// At a reload in a running TSDB: a `.tmp` may be a block an import is still writing.
    Keep,
}

/// Opens the block directories of `dir` not in `known`; at open, deletes leftover temporary
/// ones. A block that fails to open is skipped with a warning (and counted), never fatal.
fn load_blocks(
    fs: &dyn Fs,
    dir: &Path,
    known: &[PathBuf],
    stats: &TsdbStats,
    leftovers: Leftovers,
) -> Result<Vec<Arc<Block>>, TsdbError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let e = e.map_err(|e| io_err(dir, e))?;
        let path = e.path();
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        if let Some(stem) = name.strip_suffix(DELETING_SUFFIX) {
            if is_block_dir(stem) && leftovers == Leftovers::Remove {
                tracing::info!(dir = %path.display(), "Finishing the deletion of a block");
                let _ = fs.remove_dir_all(&path);
            }
            continue;
        }
        if let Some(stem) = name.strip_suffix(".tmp") {
            if is_block_dir(stem) && leftovers == Leftovers::Remove {
                tracing::info!(dir = %path.display(), "Removing a half-written block");
                let _ = fs.remove_dir_all(&path);
            }
            continue;
        }
        if !is_block_dir(&name) || known.contains(&path) {
            continue;
        }
        match Block::open(&path) {
            Ok(b) => out.push(Arc::new(b)),
            Err(e) => {
                stats.block_corruptions.fetch_add(1, Ordering::Relaxed);
                quarantine(fs, &path, &e);
            }
        }
    }
    drop_compacted_sources(fs, &mut out);
    out.sort_by_key(|b| b.meta().min_time);
    Ok(out)
}

/// A crash between writing a compacted block and deleting its sources leaves both on disk,
/// holding the same samples twice. The compacted block wins (its meta names the sources, as
/// Prometheus' does); the sources are deleted.
fn drop_compacted_sources(fs: &dyn Fs, blocks: &mut Vec<Arc<Block>>) {
    let replaced: std::collections::HashSet<String> = blocks
        .iter()
        .flat_map(|b| b.meta().compaction.sources.iter().cloned())
        .collect();
    blocks.retain(|b| {
        if !replaced.contains(&b.meta().ulid) {
            return true;
        }
        tracing::info!(block = %b.meta().ulid, "Deleting a block already compacted into another");
        if let Err(e) = delete_block_dir(fs, b.dir()) {
            tracing::warn!("{e}");
        }
        false
    });
}

/// The suffix a block directory gets while it is deleted.
const DELETING_SUFFIX: &str = ".deleting";

/// Deletes a block directory so that a crash midway leaves no half-deleted block that the next
/// open would find unreadable and quarantine: it is renamed aside first (one atomic step), and
/// the next open finishes the deletion of whatever is left under that name.
pub(crate) fn delete_block_dir(fs: &dyn Fs, dir: &Path) -> Result<(), TsdbError> {
    let mut aside = dir.as_os_str().to_owned();
    aside.push(DELETING_SUFFIX);
    let aside = PathBuf::from(aside);
    fs.rename(dir, &aside).map_err(|e| io_err(dir, e))?;
    if let Some(parent) = dir.parent() {
        // Best effort: a rename a power cut undoes leaves the block in place, whole.
        let _ = fs.sync_dir(parent);
    }
    fs.remove_dir_all(&aside).map_err(|e| io_err(&aside, e))
}

/// The suffix a block directory that cannot be read is renamed with.
pub const QUARANTINE_SUFFIX: &str = ".corrupted";

/// Moves an unreadable block aside (`<ulid>.corrupted`, which no later open reads) so that the
/// database serves everything else, as Prometheus moves a corrupt block aside. An I/O error
/// that may be passing (too many open files, a failed mapping) leaves the block in place to be
/// tried again at the next reload.
fn quarantine(fs: &dyn Fs, path: &Path, e: &TsdbError) {
    let lasting = match e {
        TsdbError::Corrupt { .. } => true,
        TsdbError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    };
    if !lasting {
        tracing::warn!(
            "Skipping block {} for now, it could not be read: {e}",
            path.display()
        );
        return;
    }
    let mut aside = path.as_os_str().to_owned();
    aside.push(QUARANTINE_SUFFIX);
    let aside = PathBuf::from(aside);
    match fs.rename(path, &aside) {
        Ok(()) => tracing::error!(
            "Block {} is unreadable ({e}); moved it aside to {}. Its samples are not served; \
             restore the block from a backup or delete the directory",
            path.display(),
            aside.display()
        ),
        Err(re) => tracing::error!(
            "Block {} is unreadable ({e}) and could not be moved aside ({re}); it is skipped",
            path.display()
        ),
    }
}
