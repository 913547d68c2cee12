//! One series in the head: its interned labels and its chunks.
//!
//! Samples go into an open XOR chunk; at [`SAMPLES_PER_CHUNK`] it is frozen into an immutable
//! `Arc<[u8]>` that readers share without copying. Each series has its own small mutex, so
//! appends to different series never contend, and a query holds it only long enough to clone
//! the chunk handles it needs.

use super::symbols::Sym;
use crate::chunk::disk::{ChunkStore, DiskChunk};
use crate::chunk::hist::{self, HIST_CHUNK_BYTES, HIST_SAMPLES_PER_CHUNK, HistAppender};
use crate::chunk::{ChunkBytes, OpenChunk, SAMPLES_PER_CHUNK, SampleIter, XorIter};
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64};
use thin_vec::ThinVec;
use vigil_model::histogram::{CounterResetHint, FloatHistogram};
use vigil_model::{HistogramSample, SeriesRef, is_stale_nan};

/// A frozen chunk and its time range.
#[derive(Clone)]
pub struct FullChunk {
    pub mint: i64,
    pub maxt: i64,
    pub bytes: Arc<[u8]>,
}

/// A closed float chunk: XOR bytes in memory when cut, moved to `chunks_head/` by the head's
/// maintenance ([`crate::chunk::disk`]).
#[derive(Clone)]
pub struct FloatChunk {
    pub mint: i64,
    pub maxt: i64,
    pub data: FloatChunkData,
}

#[derive(Clone)]
pub enum FloatChunkData {
    /// Boxed: the enum then fits in the 16 bytes of a [`DiskChunk`] (the tag goes into its
    /// pointer's niche), and a series holds one of these per closed chunk for hours, while a
    /// chunk stays in memory only until the store takes it.
    Xor(Box<Arc<[u8]>>),
    Disk(DiskChunk),
}

// 32 bytes a closed chunk (40 with an unboxed `Xor`): a series holds several for hours.
const _: () = assert!(std::mem::size_of::<FloatChunk>() == 32);

impl FloatChunkData {
    /// A closed chunk kept in memory as XOR bytes.
    pub fn xor(bytes: impl Into<Arc<[u8]>>) -> Self {
        FloatChunkData::Xor(Box::new(bytes.into()))
    }
}

impl FloatChunk {
    pub fn chunk_bytes(&self) -> ChunkBytes {
        match &self.data {
            FloatChunkData::Xor(b) => ChunkBytes::Shared(Arc::clone(b)),
            FloatChunkData::Disk(d) => ChunkBytes::Disk(d.clone()),
        }
    }

    /// The last sample, decoding the chunk.
    pub fn last_sample(&self) -> Option<(i64, f64)> {
        match &self.data {
            FloatChunkData::Xor(b) => XorIter::new(b).last(),
            FloatChunkData::Disk(d) => d.samples()?.last().copied(),
        }
    }
}

pub struct MemSeries {
    pub r: SeriesRef,
    /// (name, value) symbol pairs, sorted by name.
    pub labels: Box<[(Sym, Sym)]>,
    /// Whether a WAL series record (or a snapshot) already holds this series.
    pub logged: AtomicBool,
    /// Set (under the commit lock) when garbage collection unlinks the series; a batch that
    /// still holds it re-resolves its labels at commit.
    pub removed: AtomicBool,
    /// `data.last_t`, readable without the lock: appenders refuse out-of-order samples early
    /// with one atomic load (the commit decides again under the lock).
    pub last_t: AtomicI64,
    /// Set once the series got a histogram sample: queries of float-only series skip the
    /// histogram lookup (and its lock).
    pub has_hist: AtomicBool,
    pub data: Mutex<SeriesData>,
}

/// What happened to an appended sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Appended in order; `true` when a new chunk was started.
    Appended(bool),
    /// Accepted into the out-of-order buffer.
    OutOfOrderAccepted,
    /// Same timestamp and value as the last sample (or a staleness marker): ignored.
    Duplicate,
    /// Same timestamp, different value.
    DuplicateTimestamp,
    /// Older than the last sample and outside the out-of-order window.
    OutOfOrder,
}

pub struct SeriesData {
    pub head: OpenChunk,
    pub head_mint: i64,
    pub full: Vec<FloatChunk>,
    /// Last in-order timestamp; `i64::MIN` when the series has none.
    pub last_t: i64,
    pub last_v_bits: u64,
    /// Out-of-order samples accepted within the window, sorted by time; merged on read. A
    /// `ThinVec` keeps its length and capacity in its allocation: one word in every series,
    /// where most never get an out-of-order sample.
    pub ooo: ThinVec<(i64, f64)>,
    /// Native histogram samples, for the few series that have any (a float-only series pays
    /// one pointer).
    pub hist: Option<Box<HistData>>,
    /// Start timestamps `(t, st)` of the samples that came with one, sorted by `t`, for the
    /// few series that have any. Boxed so a series without any pays one word (a `Vec` would
    /// cost three in every series).
    #[allow(clippy::box_collection)]
    pub st: Option<Box<Vec<(i64, i64)>>>,
}

/// The counter-reset hint a histogram is stored (and read back) with, as Prometheus 3's head
/// chunks give it back: a gauge stays a gauge; a histogram that continues the previous one of
/// its series (same schema, zero bucket and custom bounds, no reset, not marked as a reset)
/// reads "no reset"; every other one starts a new chunk for Prometheus, whose first sample
/// reads "unknown" (it cannot know whether the chunk before still exists), so readers detect
/// resets themselves. PromQL relies on these hints: sums of counters keep "no reset", and
/// conflicting hints are reported.
fn stored_hint(prev: Option<&FloatHistogram>, h: &FloatHistogram) -> CounterResetHint {
    use CounterResetHint::*;
    match h.counter_reset_hint {
        Gauge => return Gauge,
        CounterReset => return Unknown,
        _ => {}
    }
    let Some(p) = prev else { return Unknown };
    if p.counter_reset_hint == Gauge {
        return Unknown;
    }
    let same_layout = p.schema == h.schema
        && p.zero_threshold == h.zero_threshold
        && vigil_model::histogram::custom_bounds_match(p.custom(), h.custom());
    if !same_layout {
        return Unknown;
    }
    let reset = if h.counter_reset_hint == Unknown {
        h.detect_reset(p)
    } else {
        // Detected from the counts, whatever the producer claimed.
        let mut probe = h.clone();
        probe.counter_reset_hint = Unknown;
        probe.detect_reset(p)
    };
    if reset { Unknown } else { NotCounterReset }
}

/// A series' histogram samples: an open chunk and frozen ones ([`crate::chunk::hist`]), in
/// order, and those accepted out of order within the window (as Prometheus 3.x accepts them),
/// kept sorted beside the chunks and merged on read.
#[derive(Default)]
pub struct HistData {
    pub open: HistAppender,
    pub open_mint: i64,
    pub full: Vec<FullChunk>,
    /// The last in-order histogram's timestamp (also after a delete removed it).
    pub last_t: i64,
    /// Out-of-order histograms, sorted by time.
    pub ooo: Vec<HistogramSample>,
}

impl HistData {
    fn new() -> Self {
        HistData {
            open_mint: i64::MAX,
            last_t: i64::MIN,
            ..HistData::default()
        }
    }

    fn is_empty(&self) -> bool {
        self.open.is_empty() && self.full.is_empty() && self.ooo.is_empty()
    }

    /// First and last sample times, when it has samples.
    fn bounds(&self) -> Option<(i64, i64)> {
        let ooo = (self.ooo.first().map(|s| s.t), self.ooo.last().map(|s| s.t));
        let first = self
            .full
            .first()
            .map(|c| c.mint)
            .or((!self.open.is_empty()).then_some(self.open_mint));
        let last = if self.open.is_empty() {
            self.full.last().map(|c| c.maxt)
        } else {
            Some(self.last_t)
        };
        let first = match (first, ooo.0) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        let last = match (last, ooo.1) {
            (Some(a), Some(b)) => a.max(b),
            (a, b) => a.or(b)?,
        };
        Some((first, last))
    }

    fn append(&mut self, t: i64, h: &FloatHistogram) -> bool {
        let mut cut = false;
        if self.open.num_samples() >= HIST_SAMPLES_PER_CHUNK || self.open.len() >= HIST_CHUNK_BYTES
        {
            self.cut();
            cut = true;
        }
        if self.open.is_empty() {
            self.open_mint = t;
            cut = true;
        }
        self.open.append(t, h);
        self.last_t = t;
        cut
    }

    fn cut(&mut self) {
        let bytes = self.open.take_bytes();
        self.full.push(FullChunk {
            mint: self.open_mint,
            maxt: self.last_t,
            bytes: Arc::from(bytes),
        });
        self.open_mint = i64::MAX;
    }

    /// The chunks overlapping `[mint, maxt]` (the open one copied).
    pub fn chunks_in(&self, mint: i64, maxt: i64) -> Vec<Arc<[u8]>> {
        let mut out: Vec<Arc<[u8]>> = self
            .full
            .iter()
            .filter(|c| c.maxt >= mint && c.mint <= maxt)
            .map(|c| c.bytes.clone())
            .collect();
        if !self.open.is_empty() && self.last_t >= mint && self.open_mint <= maxt {
            out.push(Arc::from(self.open.bytes()));
        }
        out
    }

    /// Samples within `[mint, maxt]`, the out-of-order ones merged in.
    pub fn samples_in(&self, mint: i64, maxt: i64) -> Vec<HistogramSample> {
        let mut out = Vec::new();
        decode_hist_chunks(
            self.chunks_in(mint, maxt).iter().map(|c| &c[..]),
            mint,
            maxt,
            &mut out,
        );
        let lo = self.ooo.partition_point(|s| s.t < mint);
        let hi = self.ooo.partition_point(|s| s.t <= maxt);
        if lo < hi {
            out.extend(self.ooo[lo..hi].iter().cloned());
            out.sort_by_key(|s| s.t);
            // An in-order sample wins over an out-of-order one at the same time (none is
            // accepted there; kept for safety).
            out.dedup_by_key(|s| s.t);
        }
        out
    }

    /// Accepts `h` at `t` into the out-of-order list; the stored hint is "unknown" (a
    /// gauge stays a gauge): readers detect resets themselves, as for Prometheus' OOO chunks.
    fn insert_ooo(&mut self, t: i64, h: &FloatHistogram) -> Outcome {
        match self.ooo.binary_search_by_key(&t, |s| s.t) {
            Ok(i) if self.ooo[i].h.equals(h) => Outcome::Duplicate,
            Ok(_) => Outcome::DuplicateTimestamp,
            Err(i) => {
                let mut stored = h.clone();
                if stored.counter_reset_hint != CounterResetHint::Gauge {
                    stored.counter_reset_hint = CounterResetHint::Unknown;
                }
                self.ooo.insert(
                    i,
                    HistogramSample {
                        t,
                        h: Arc::new(stored),
                    },
                );
                Outcome::OutOfOrderAccepted
            }
        }
    }
}

/// Decodes histogram chunks, keeping the samples within `[mint, maxt]`; returns the number of
/// chunks that were corrupt (their samples before the damage are kept).
pub fn decode_hist_chunks<'a>(
    chunks: impl Iterator<Item = &'a [u8]>,
    mint: i64,
    maxt: i64,
    out: &mut Vec<HistogramSample>,
) -> usize {
    decode_chunks_with(chunks, hist::decode, mint, maxt, out)
}

/// As [`decode_hist_chunks`], with `decode` for each chunk's bytes (block chunks carry an
/// encoding byte).
pub fn decode_chunks_with<'a>(
    chunks: impl Iterator<Item = &'a [u8]>,
    decode: hist::DecodeFn,
    mint: i64,
    maxt: i64,
    out: &mut Vec<HistogramSample>,
) -> usize {
    let mut buf = Vec::new();
    let mut corrupt = 0;
    for c in chunks {
        if !decode(c, &mut buf) {
            corrupt += 1;
        }
        out.extend(
            buf.drain(..)
                .filter(|(t, _)| *t >= mint && *t <= maxt)
                .map(|(t, h)| HistogramSample { t, h: Arc::new(h) }),
        );
    }
    corrupt
}

impl Default for SeriesData {
    fn default() -> Self {
        SeriesData {
            head: OpenChunk::with_capacity(24),
            head_mint: i64::MAX,
            full: Vec::new(),
            last_t: i64::MIN,
            last_v_bits: 0,
            ooo: ThinVec::new(),
            hist: None,
            st: None,
        }
    }
}

impl SeriesData {
    pub fn is_empty(&self) -> bool {
        self.head.num_samples() == 0
            && self.full.is_empty()
            && self.ooo.is_empty()
            && self.hist.as_ref().is_none_or(|h| h.is_empty())
    }

    /// The last timestamp appended in order, of either kind (`i64::MIN` when none).
    pub fn last_any(&self) -> i64 {
        self.hist
            .as_ref()
            .map_or(self.last_t, |h| h.last_t.max(self.last_t))
    }

    /// Appends a histogram sample; one older than the series' last sample (of either kind)
    /// is accepted when the out-of-order window reaches it (`ooo_min`) and no sample holds
    /// that time.
    pub fn append_histogram(
        &mut self,
        t: i64,
        h: &FloatHistogram,
        ooo_min: Option<i64>,
    ) -> Outcome {
        let last = self.last_any();
        let empty = self.head.num_samples() == 0 && self.hist.as_ref().is_none_or(|h| h.is_empty());
        if t > last || (last == i64::MIN && empty) {
            let prev = if self.last_is_histogram() {
                self.hist.as_ref().and_then(|hd| hd.open.last())
            } else {
                None
            };
            let hint = stored_hint(prev, h);
            let hd = self.hist.get_or_insert_with(|| Box::new(HistData::new()));
            if hint == h.counter_reset_hint {
                return Outcome::Appended(hd.append(t, h));
            }
            let mut stored = h.clone();
            stored.counter_reset_hint = hint;
            return Outcome::Appended(hd.append(t, &stored));
        }
        if t == last {
            return self.histogram_at_last(h);
        }
        if ooo_min.is_none_or(|min| t < min) {
            return Outcome::OutOfOrder;
        }
        if self.float_at(t) {
            return Outcome::DuplicateTimestamp;
        }
        let in_order = self.hist.as_ref().and_then(|hd| {
            let mut found = Vec::new();
            decode_hist_chunks(hd.chunks_in(t, t).iter().map(|c| &c[..]), t, t, &mut found);
            found.pop()
        });
        if let Some(s) = in_order {
            return if s.h.equals(h) {
                Outcome::Duplicate
            } else {
                Outcome::DuplicateTimestamp
            };
        }
        let hd = self.hist.get_or_insert_with(|| Box::new(HistData::new()));
        hd.insert_ooo(t, h)
    }

    /// Whether a float sample sits at exactly `t` (in order or out of order).
    fn float_at(&self, t: i64) -> bool {
        self.ooo.binary_search_by_key(&t, |s| s.0).is_ok()
            || self
                .chunks_in(t, t)
                .is_some_and(|mut it| it.any(|s| s.t == t))
    }

    /// What appending histogram `h` at the series' last timestamp does: a duplicate when the
    /// last sample is the same histogram (or `h` is a stale marker after a histogram),
    /// [`Outcome::DuplicateTimestamp`] otherwise.
    pub fn histogram_at_last(&self, h: &FloatHistogram) -> Outcome {
        let t = self.last_any();
        // The appender remembers the last histogram across cuts.
        let prev = self
            .hist
            .as_ref()
            .filter(|hd| hd.last_t == t && hd.last_t > self.last_t)
            .and_then(|hd| hd.open.last());
        match prev {
            Some(p) if p.equals(h) => Outcome::Duplicate,
            Some(_) if is_stale_nan(h.sum) => Outcome::Duplicate,
            _ => Outcome::DuplicateTimestamp,
        }
    }

    /// Whether the sample at the series' last timestamp is a histogram.
    pub fn last_is_histogram(&self) -> bool {
        self.hist
            .as_ref()
            .is_some_and(|hd| hd.last_t != i64::MIN && hd.last_t > self.last_t)
    }

    /// Whether a histogram sample sits at exactly `t`.
    fn histogram_at(&self, t: i64) -> bool {
        self.hist
            .as_ref()
            .is_some_and(|hd| !hd.samples_in(t, t).is_empty())
    }

    /// Appends a sample; `ooo_min` is the oldest timestamp the out-of-order window accepts.
    /// A chunk cut on the way goes to `store` when there is one.
    pub fn append(
        &mut self,
        t: i64,
        v: f64,
        ooo_min: Option<i64>,
        store: Option<&ChunkStore>,
    ) -> Outcome {
        if let Some(hd) = &self.hist
            && t <= hd.last_t
        {
            // At or before the last histogram: the same time is taken, an older one goes to
            // the out-of-order window (unless a histogram holds that time).
            if t == hd.last_t || self.histogram_at(t) {
                return Outcome::DuplicateTimestamp;
            }
            return self.append_ooo(t, v, ooo_min);
        }
        if t > self.last_t || (self.last_t == i64::MIN && self.head.num_samples() == 0) {
            let mut cut = false;
            if self.head.num_samples() >= SAMPLES_PER_CHUNK {
                self.cut(store);
                cut = true;
            }
            if self.head.num_samples() == 0 {
                self.head_mint = t;
                cut = true;
            }
            self.head.append(t, v);
            self.last_t = t;
            self.last_v_bits = v.to_bits();
            return Outcome::Appended(cut);
        }
        if t == self.last_t {
            return if self.last_v_bits == v.to_bits() || is_stale_nan(v) {
                Outcome::Duplicate
            } else {
                Outcome::DuplicateTimestamp
            };
        }
        self.append_ooo(t, v, ooo_min)
    }

    fn append_ooo(&mut self, t: i64, v: f64, ooo_min: Option<i64>) -> Outcome {
        match ooo_min {
            Some(min) if t >= min => {
                match self.ooo.binary_search_by_key(&t, |s| s.0) {
                    Ok(i) if self.ooo[i].1.to_bits() == v.to_bits() => return Outcome::Duplicate,
                    Ok(_) => return Outcome::DuplicateTimestamp,
                    Err(i) => self.ooo.insert(i, (t, v)),
                }
                Outcome::OutOfOrderAccepted
            }
            _ => Outcome::OutOfOrder,
        }
    }

    /// Freezes the open chunk: into `store`, or in memory
    /// when there is no store or it cannot take the chunk.
    fn cut(&mut self, store: Option<&ChunkStore>) {
        if let Some(store) = store {
            match store.append_open(self.head.bytes(), self.last_t) {
                Ok(Some(d)) => {
                    // One more reference, not a doubling: a series holds few, for hours.
                    self.full.reserve_exact(1);
                    self.full.push(FloatChunk {
                        mint: self.head_mint,
                        maxt: self.last_t,
                        data: FloatChunkData::Disk(d),
                    });
                    self.head.reset();
                    return;
                }
                Ok(None) => {}
                Err(e) => tracing::debug!("Head chunk kept in memory: {e}"),
            }
        }
        let bytes = self.head.to_xor();
        self.head.reset();
        self.full.push(FloatChunk {
            mint: self.head_mint,
            maxt: self.last_t,
            data: FloatChunkData::xor(bytes),
        });
    }

    /// Drops chunks and out-of-order samples entirely before `cutoff`; returns chunks dropped.
    pub fn truncate_before(&mut self, cutoff: i64) -> usize {
        let n = self.full.partition_point(|c| c.maxt < cutoff);
        self.full.drain(..n);
        let mut dropped = n;
        if self.head.num_samples() > 0 && self.last_t < cutoff {
            self.head = OpenChunk::with_capacity(24);
            self.head_mint = i64::MAX;
            dropped += 1;
        }
        let k = self.ooo.partition_point(|s| s.0 < cutoff);
        self.ooo.drain(..k);
        self.drop_sts(i64::MIN, cutoff - 1);
        if let Some(hd) = &mut self.hist {
            let n = hd.full.partition_point(|c| c.maxt < cutoff);
            hd.full.drain(..n);
            dropped += n;
            let k = hd.ooo.partition_point(|s| s.t < cutoff);
            hd.ooo.drain(..k);
            if !hd.open.is_empty() && hd.last_t < cutoff {
                hd.open.take_bytes();
                hd.open_mint = i64::MAX;
                dropped += 1;
            }
            if hd.is_empty() && hd.last_t < cutoff {
                self.hist = None;
            }
        }
        dropped
    }

    /// Deletes the samples within `[mint, maxt]` by re-encoding what is left; returns how many
    /// were deleted. The last appended timestamp is kept, so deleting recent samples does not
    /// reopen the past to appends.
    pub fn delete_range(&mut self, mint: i64, maxt: i64) -> usize {
        self.drop_sts(mint, maxt);
        let mut deleted = self.delete_histograms(mint, maxt);
        let Some(all) = self.chunks_in(i64::MIN, i64::MAX) else {
            return deleted;
        };
        let (last_t, last_v_bits) = (self.last_t, self.last_v_bits);
        let before: Vec<(i64, f64)> = all.map(|s| (s.t, s.v)).collect();
        let n = before.iter().filter(|s| s.0 >= mint && s.0 <= maxt).count();
        if n == 0 {
            return deleted;
        }
        deleted += n;
        // The histograms are set aside while the floats are re-appended: floats older than
        // the last histogram would otherwise count as out of order.
        let hist = self.hist.take();
        let st = self.st.take();
        *self = SeriesData::default();
        self.st = st;
        for (t, v) in before.into_iter().filter(|s| s.0 < mint || s.0 > maxt) {
            self.append(t, v, None, None);
        }
        self.hist = hist;
        self.last_t = last_t;
        self.last_v_bits = last_v_bits;
        deleted
    }

    /// Deletes the histogram samples within `[mint, maxt]`; returns how many.
    fn delete_histograms(&mut self, mint: i64, maxt: i64) -> usize {
        let Some(hd) = &mut self.hist else { return 0 };
        let all = hd.samples_in(i64::MIN, i64::MAX);
        let n = all.iter().filter(|s| s.t >= mint && s.t <= maxt).count();
        if n == 0 {
            return 0;
        }
        let last_t = hd.last_t;
        let mut fresh = HistData::new();
        for s in all.iter().filter(|s| s.t < mint || s.t > maxt) {
            fresh.append(s.t, &s.h);
        }
        // The last timestamp stays taken, as on the float path (the value compared for a
        // duplicate is then the last one left).
        fresh.last_t = last_t;
        **hd = fresh;
        n
    }

    /// Records the start timestamp of the sample at `t` (0 clears it).
    pub fn set_st(&mut self, t: i64, st: i64) {
        let v = self.st.get_or_insert_with(Default::default);
        match v.binary_search_by_key(&t, |x| x.0) {
            Ok(i) if st == 0 => {
                v.remove(i);
            }
            Ok(i) => v[i].1 = st,
            Err(_) if st == 0 => {}
            Err(i) => v.insert(i, (t, st)),
        }
        if v.is_empty() {
            self.st = None;
        }
    }

    /// Start timestamps of the samples within `[mint, maxt]`.
    pub fn sts_in(&self, mint: i64, maxt: i64) -> Vec<(i64, i64)> {
        let Some(v) = &self.st else {
            return Vec::new();
        };
        let lo = v.partition_point(|x| x.0 < mint);
        let hi = v.partition_point(|x| x.0 <= maxt);
        v[lo..hi].to_vec()
    }

    /// Drops the start timestamps of samples within `[mint, maxt]`.
    fn drop_sts(&mut self, mint: i64, maxt: i64) {
        if let Some(v) = &mut self.st {
            v.retain(|x| x.0 < mint || x.0 > maxt);
            if v.is_empty() {
                self.st = None;
            }
        }
    }

    /// Histogram samples within `[mint, maxt]`.
    pub fn histograms_in(&self, mint: i64, maxt: i64) -> Vec<HistogramSample> {
        self.hist
            .as_ref()
            .map_or_else(Vec::new, |hd| hd.samples_in(mint, maxt))
    }

    /// Whether a sample falls within `[mint, maxt]`. Decides from the series' time bounds when
    /// it can (the common case for label lookups) and decodes only when the range cuts into
    /// the series.
    pub fn has_sample_in(&self, mint: i64, maxt: i64) -> bool {
        if let Some(hd) = &self.hist
            && let Some((first, last)) = hd.bounds()
            && last >= mint
            && first <= maxt
            && (first >= mint && last <= maxt || !hd.samples_in(mint, maxt).is_empty())
        {
            return true;
        }
        let first = self
            .full
            .first()
            .map(|c| c.mint)
            .or((self.head.num_samples() > 0).then_some(self.head_mint));
        let last = (self.head.num_samples() > 0)
            .then_some(self.last_t)
            .or(self.full.last().map(|c| c.maxt));
        if self.ooo.is_empty()
            && let (Some(first), Some(last)) = (first, last)
        {
            if last < mint || first > maxt {
                return false;
            }
            if first >= mint && last <= maxt {
                return true;
            }
        }
        self.chunks_in(mint, maxt)
            .is_some_and(|mut it| it.next().is_some())
    }

    /// The chunks overlapping `[mint, maxt]`, or `None` when no sample falls in it.
    pub fn chunks_in(&self, mint: i64, maxt: i64) -> Option<SampleIter> {
        let mut chunks: Vec<ChunkBytes> = self
            .full
            .iter()
            .filter(|c| c.maxt >= mint && c.mint <= maxt)
            .map(FloatChunk::chunk_bytes)
            .collect();
        if self.head.num_samples() > 0 && self.last_t >= mint && self.head_mint <= maxt {
            chunks.push(ChunkBytes::Open(Arc::from(self.head.bytes())));
        }
        let ooo: Vec<(i64, f64)> = self
            .ooo
            .iter()
            .filter(|s| s.0 >= mint && s.0 <= maxt)
            .copied()
            .collect();
        if chunks.is_empty() && ooo.is_empty() {
            return None;
        }
        Some(SampleIter::new(chunks, ooo, mint, maxt))
    }
}
