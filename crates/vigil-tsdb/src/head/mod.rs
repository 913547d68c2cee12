//! The head: every series with recent samples, in memory.
//!
//! Series live in two striped maps (by reference and by label hash), so creating or looking up
//! series from many scrape loops rarely contends on one lock; each series has its own mutex for
//! its chunks. Labels are interned ([`symbols`]); the [`postings`] index answers matchers. A
//! commit runs under one head-wide commit lock that also guards the WAL: the batch is logged,
//! then applied, so the WAL order is the apply order and replay reproduces exactly the accepted
//! samples.

mod append;
pub(crate) use append::Tally;
pub(crate) mod postings;
mod read;
pub(crate) mod series;
pub(crate) mod snapshot;
pub(crate) mod symbols;

use crate::chunk::disk::ChunkStore;
use crate::wal::Wal;
use ahash::AHashMap;
use parking_lot::{Mutex, RwLock};
use postings::Postings;
use series::MemSeries;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use symbols::{Sym, Symbols};
use vigil_model::{AppendError, Labels, SeriesRef, StorageError};

const STRIPES: usize = 1024;

/// One stripe of the series map by reference.
type RefStripe = RwLock<HashMap<SeriesRef, Arc<MemSeries>, BuildHasherDefault<RefHasher>>>;

/// Consecutive references share a stripe in runs of this many. A scrape reads its series in
/// the order they were created, so its lookups walk one stripe's table in order instead of
/// missing the cache on every sample (the lookup was a fifth of ingest CPU with a random hash).
const REF_RUN: u64 = 64;

/// Hashes a reference to its place in its stripe: the low bits are the reference with the
/// stripe's bits taken out, dense and in creation order, so references created together sit
/// together in the table; the top 7 bits, which the table keeps as a tag, are mixed so that
/// references that share a place are told apart without reading the key.
#[derive(Default)]
struct RefHasher(u64);

impl Hasher for RefHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, r: u64) {
        self.0 = r;
    }

    fn finish(&self) -> u64 {
        let r = self.0;
        let local = r / (REF_RUN * STRIPES as u64) * REF_RUN + r % REF_RUN;
        local ^ (r.wrapping_mul(0x9E37_79B9_7F4A_7C15) & (0x7F << 57))
    }
}

#[derive(Debug, Clone, Default)]
pub struct HeadOptions {
    /// Samples older than this (relative to the newest sample) are dropped; 0 keeps all.
    pub retention_ms: i64,
    /// Out-of-order samples up to this far behind the newest sample are accepted; 0 refuses
    /// them all, as Prometheus does by default.
    pub out_of_order_time_window_ms: i64,
    /// The most series the head holds; new series past it are refused. 0: no limit.
    pub max_series: usize,
    /// How WAL records are compressed (`--storage.tsdb.wal-compression[-type]`). Reading
    /// handles every kind whatever this says.
    pub wal_compression: crate::wal::record::WalCompression,
}

/// Counters the binary exports as Prometheus-named self-metrics.
#[derive(Debug, Default)]
pub struct HeadStats {
    /// Samples of both kinds.
    pub samples_appended: AtomicU64,
    /// Of `samples_appended`, native histogram samples.
    pub histogram_samples_appended: AtomicU64,
    pub out_of_order_samples: AtomicU64,
    pub out_of_order_accepted: AtomicU64,
    pub series_created: AtomicU64,
    pub series_removed: AtomicU64,
    /// New series refused by `max_series`.
    pub series_refused: AtomicU64,
    pub chunks_created: AtomicU64,
    pub chunks_removed: AtomicU64,
}

#[derive(Default)]
struct HashStripe {
    one: AHashMap<u64, SeriesRef>,
    /// Further series whose label hash collides with the one in `one`.
    more: AHashMap<u64, Vec<SeriesRef>>,
}

/// State guarded by the commit lock.
#[derive(Default)]
pub(crate) struct CommitState {
    pub wal: Option<Wal>,
    /// Reused encoding buffer.
    pub buf: Vec<u8>,
    /// Reused buffers and compressor (made on first use) for compressing `buf`'s records.
    pub scratch: Vec<u8>,
    pub compressor: Option<crate::wal::record::Compressor>,
    /// Set by `Tsdb::close`: later commits fail instead of being lost silently.
    pub closed: bool,
}

/// The head block: everything appended and not yet dropped by retention.
pub struct Head {
    opts: HeadOptions,
    /// Where cut chunks go ([`crate::chunk::disk`]); unset, they stay in memory.
    pub(crate) chunk_store: std::sync::OnceLock<Arc<ChunkStore>>,
    pub stats: HeadStats,
    symbols: Symbols,
    by_ref: Box<[RefStripe]>,
    by_hash: Box<[RwLock<HashStripe>]>,
    postings: RwLock<Postings>,
    next_ref: AtomicU64,
    num_series: AtomicUsize,
    /// Newest and oldest sample times seen (`i64::MIN`/`MAX` when empty).
    max_time: AtomicI64,
    min_time: AtomicI64,
    /// Queries never see samples before this (retention has dropped them, perhaps partly).
    min_valid_time: AtomicI64,
    pub(crate) commit: Mutex<CommitState>,
    /// Set while replaying: skips limits that must not drop recovered data.
    replaying: AtomicBool,
}

fn label_hash(labels: &Labels) -> u64 {
    let mut h = ahash::RandomState::with_seeds(1, 2, 3, 4).build_hasher();
    for l in labels {
        h.write(l.name.as_bytes());
        h.write_u8(0xff);
        h.write(l.value.as_bytes());
        h.write_u8(0xfe);
    }
    h.finish()
}

impl Head {
    pub fn new(opts: HeadOptions) -> Self {
        Head {
            chunk_store: std::sync::OnceLock::new(),
            opts,
            stats: HeadStats::default(),
            symbols: Symbols::default(),
            by_ref: (0..STRIPES).map(|_| RwLock::default()).collect(),
            by_hash: (0..STRIPES).map(|_| RwLock::default()).collect(),
            postings: RwLock::default(),
            next_ref: AtomicU64::new(1),
            num_series: AtomicUsize::new(0),
            max_time: AtomicI64::new(i64::MIN),
            min_time: AtomicI64::new(i64::MAX),
            min_valid_time: AtomicI64::new(i64::MIN),
            commit: Mutex::new(CommitState::default()),
            replaying: AtomicBool::new(false),
        }
    }

    pub fn options(&self) -> &HeadOptions {
        &self.opts
    }

    pub fn num_series(&self) -> usize {
        self.num_series.load(Ordering::Relaxed)
    }

    /// Chunks currently held (open and frozen).
    pub fn num_chunks(&self) -> u64 {
        let c = self.stats.chunks_created.load(Ordering::Relaxed);
        c.saturating_sub(self.stats.chunks_removed.load(Ordering::Relaxed))
    }

    /// The newest sample time, if any sample was appended.
    pub fn max_time(&self) -> Option<i64> {
        let t = self.max_time.load(Ordering::Relaxed);
        (t != i64::MIN).then_some(t)
    }

    /// The oldest sample time still queryable, if any.
    pub fn min_time(&self) -> Option<i64> {
        let t = self.min_time.load(Ordering::Relaxed);
        (t != i64::MAX).then(|| t.max(self.min_valid_time.load(Ordering::Relaxed)))
    }

    pub(crate) fn min_valid_time(&self) -> i64 {
        self.min_valid_time.load(Ordering::Relaxed)
    }

    pub(crate) fn set_min_valid_time(&self, t: i64) {
        self.min_valid_time.fetch_max(t, Ordering::Relaxed);
    }

    pub(crate) fn next_ref(&self) -> SeriesRef {
        self.next_ref.load(Ordering::Relaxed)
    }

    pub(crate) fn bump_next_ref(&self, at_least: SeriesRef) {
        self.next_ref.fetch_max(at_least, Ordering::Relaxed);
    }

    pub(crate) fn set_replaying(&self, on: bool) {
        self.replaying.store(on, Ordering::Relaxed);
    }

    pub(crate) fn note_time(&self, t: i64) {
        self.max_time.fetch_max(t, Ordering::Relaxed);
        self.min_time.fetch_min(t, Ordering::Relaxed);
    }

    pub(crate) fn symbols(&self) -> &Symbols {
        &self.symbols
    }

    fn ref_stripe(&self, r: SeriesRef) -> &RefStripe {
        &self.by_ref[(r / REF_RUN) as usize % STRIPES]
    }

    /// The series with reference `r`.
    pub(crate) fn series(&self, r: SeriesRef) -> Option<Arc<MemSeries>> {
        self.ref_stripe(r).read().get(&r).cloned()
    }

    /// All series, in no particular order.
    pub(crate) fn all_series(&self) -> Vec<Arc<MemSeries>> {
        let mut out = Vec::with_capacity(self.num_series());
        for s in self.by_ref.iter() {
            out.extend(s.read().values().cloned());
        }
        out
    }

    fn same_labels(&self, s: &MemSeries, labels: &Labels) -> bool {
        if s.labels.len() != labels.len() {
            return false;
        }
        let syms = self.symbols.reader();
        s.labels
            .iter()
            .zip(labels)
            .all(|(&(n, v), l)| syms.get(n) == l.name && syms.get(v) == l.value)
    }

    fn find(&self, hash: u64, labels: &Labels) -> Option<Arc<MemSeries>> {
        let stripe = self.by_hash[hash as usize % STRIPES].read();
        let refs = stripe
            .one
            .get(&hash)
            .into_iter()
            .chain(stripe.more.get(&hash).into_iter().flatten());
        for &r in refs {
            if let Some(s) = self.series(r)
                && self.same_labels(&s, labels)
            {
                return Some(s);
            }
        }
        None
    }

    /// Finds the series for `labels`, creating it (with reference `want_ref` when given, as
    /// replay does) if needed. Returns the series and whether it was created.
    pub(crate) fn get_or_create(
        &self,
        labels: &Labels,
        want_ref: Option<SeriesRef>,
    ) -> Result<(Arc<MemSeries>, bool), AppendError> {
        if labels.is_empty() {
            return Err(AppendError::EmptyLabels);
        }
        let hash = label_hash(labels);
        if let Some(s) = self.find(hash, labels) {
            return Ok((s, false));
        }
        let max = self.opts.max_series;
        if max > 0 && self.num_series() >= max && !self.replaying.load(Ordering::Relaxed) {
            self.stats.series_refused.fetch_add(1, Ordering::Relaxed);
            return Err(AppendError::Storage(StorageError::Limit(format!(
                "the head holds {max} series, the maximum set by --storage.tsdb.max-series"
            ))));
        }
        let syms: Box<[(Sym, Sym)]> = labels
            .iter()
            .map(|l| (self.symbols.intern(&l.name), self.symbols.intern(&l.value)))
            .collect();
        let mut stripe = self.by_hash[hash as usize % STRIPES].write();
        // Re-check under the write lock: another appender may have just created it.
        let refs = stripe
            .one
            .get(&hash)
            .into_iter()
            .chain(stripe.more.get(&hash).into_iter().flatten());
        for &r in refs {
            if let Some(s) = self.series(r)
                && self.same_labels(&s, labels)
            {
                return Ok((s, false));
            }
        }
        let r = match want_ref {
            Some(r) => {
                self.bump_next_ref(r + 1);
                r
            }
            None => self.next_ref.fetch_add(1, Ordering::Relaxed),
        };
        let s = Arc::new(MemSeries {
            r,
            labels: syms,
            logged: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            last_t: AtomicI64::new(i64::MIN),
            has_hist: AtomicBool::new(false),
            data: Mutex::new(Default::default()),
        });
        self.ref_stripe(r).write().insert(r, s.clone());
        match stripe.one.entry(hash) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(r);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                stripe.more.entry(hash).or_default().push(r);
            }
        }
        drop(stripe);
        self.postings.write().add(r, &s.labels);
        self.num_series.fetch_add(1, Ordering::Relaxed);
        self.stats.series_created.fetch_add(1, Ordering::Relaxed);
        Ok((s, true))
    }

    /// The labels of the live series with reference `r` (WAL readers resolve references
    /// whose series record is in a segment they no longer have).
    pub fn series_labels(&self, r: SeriesRef) -> Option<Labels> {
        self.series(r).map(|s| self.labels_of(&s))
    }

    /// The labels of a series, resolved.
    pub(crate) fn labels_of(&self, s: &MemSeries) -> Labels {
        let syms = self.symbols.reader();
        Labels::from_pairs(s.labels.iter().map(|&(n, v)| (syms.get(n), syms.get(v))))
    }

    /// Recomputes the oldest sample time from the series (after truncation).
    pub(crate) fn recompute_min_time(&self) {
        let mut min = i64::MAX;
        for s in self.all_series() {
            let d = s.data.lock();
            if let Some(c) = d.full.first() {
                min = min.min(c.mint);
            } else if d.head.num_samples() > 0 {
                min = min.min(d.head_mint);
            }
            if let Some(o) = d.ooo.first() {
                min = min.min(o.0);
            }
            if let Some(h) = &d.hist
                && let Some(c) = h.full.first()
            {
                min = min.min(c.mint);
            } else if let Some(h) = &d.hist
                && !h.open.is_empty()
            {
                min = min.min(h.open_mint);
            }
        }
        self.min_time.store(min, Ordering::Relaxed);
    }

    /// Moves every closed float chunk still in memory (loaded from a snapshot, or kept when
    /// the store could not take it) to the chunk store; returns how many moved.
    pub fn offload_chunks(&self) -> std::io::Result<usize> {
        let Some(store) = self.chunk_store.get() else {
            return Ok(0);
        };
        let mut moved = 0;
        for s in self.all_series() {
            let mut d = s.data.lock();
            for c in d.full.iter_mut() {
                if let series::FloatChunkData::Xor(b) = &c.data
                    && let Some(r) = store.append_chunk(b, c.maxt)?
                {
                    c.data = series::FloatChunkData::Disk(r);
                    moved += 1;
                }
            }
        }
        store.flush()?;
        Ok(moved)
    }

    /// Drops samples older than the retention window and series left without samples.
    pub fn truncate_old(&self) {
        if self.opts.retention_ms <= 0 {
            return;
        }
        let Some(max) = self.max_time() else { return };
        self.truncate_before(max.saturating_sub(self.opts.retention_ms));
    }

    /// Drops everything before `cutoff` (queries stop seeing it at once) and garbage-collects
    /// series that become empty. Returns the number of series removed.
    pub fn truncate_before(&self, cutoff: i64) -> usize {
        self.set_min_valid_time(cutoff);
        let mut removed = 0;
        for s in self.all_series() {
            let mut d = s.data.lock();
            let dropped = d.truncate_before(cutoff);
            self.stats
                .chunks_removed
                .fetch_add(dropped as u64, Ordering::Relaxed);
            if d.is_empty() {
                drop(d);
                self.remove_series(&s);
                removed += 1;
            }
        }
        removed
    }

    fn remove_series(&self, s: &MemSeries) {
        // Hold the series lock state check + removal under the commit lock so a concurrent
        // commit cannot append to a series that is being unlinked.
        let _c = self.commit.lock();
        if !s.data.lock().is_empty() {
            return;
        }
        if self.ref_stripe(s.r).write().remove(&s.r).is_none() {
            return;
        }
        s.removed.store(true, Ordering::Relaxed);
        let labels = self.labels_of(s);
        let hash = label_hash(&labels);
        {
            let mut st = self.by_hash[hash as usize % STRIPES].write();
            if st.one.get(&hash) == Some(&s.r) {
                st.one.remove(&hash);
                if let Some(mut more) = st.more.remove(&hash) {
                    if let Some(first) = more.pop() {
                        st.one.insert(hash, first);
                    }
                    if !more.is_empty() {
                        st.more.insert(hash, more);
                    }
                }
            } else if let Some(more) = st.more.get_mut(&hash) {
                more.retain(|&r| r != s.r);
                if more.is_empty() {
                    st.more.remove(&hash);
                }
            }
        }
        self.postings.write().remove(s.r, &s.labels);
        self.num_series.fetch_sub(1, Ordering::Relaxed);
        self.stats.series_removed.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
