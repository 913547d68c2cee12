//! Appending: a batch collects `(series, t, v)` and the commit logs then applies it.
//!
//! `append` resolves the series (the cached reference skips the label hash entirely) and
//! refuses samples that are already known to be out of order, so the scrape loop can count
//! them; `commit` takes the commit lock, writes one WAL batch (series records for series not
//! yet logged, then one samples record) and applies the samples. The pending vector is the
//! only allocation, amortised over the batch.

use super::series::{MemSeries, Outcome};
use super::{CommitState, Head};
use crate::wal::record;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use vigil_model::histogram::FloatHistogram;
use vigil_model::{AppendError, Appendable, Appender, Labels, SeriesRef, StorageError, Timestamp};

impl Appendable for Head {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(HeadAppender {
            head: self,
            pending: Vec::new(),
            pending_h: Vec::new(),
            pending_st: Vec::new(),
        })
    }
}

/// A histogram sample of a batch; `seq` is the number of float samples appended before it, so
/// the commit applies (and logs) both kinds in the order they were appended.
pub(crate) struct PendingHist {
    pub s: Arc<MemSeries>,
    pub t: Timestamp,
    pub h: FloatHistogram,
    pub seq: usize,
}

/// The batch split into runs of one kind, in append order: `(true, range of pending_h)` or
/// `(false, range of pending)`. A batch of one kind is one run.
fn runs(floats: usize, hists: &[PendingHist]) -> Vec<(bool, Range<usize>)> {
    let mut out = Vec::new();
    let (mut fi, mut hi) = (0, 0);
    while fi < floats || hi < hists.len() {
        let hj = hi + hists[hi..].iter().take_while(|h| h.seq <= fi).count();
        if hj > hi {
            out.push((true, hi..hj));
            hi = hj;
        }
        let fj = hists.get(hi).map_or(floats, |h| h.seq.clamp(fi, floats));
        if fj > fi {
            out.push((false, fi..fj));
            fi = fj;
        }
    }
    out
}

/// Counts of one batch, added to [`HeadStats`](super::HeadStats) once.
#[derive(Debug)]
pub(crate) struct Tally {
    appended: u64,
    /// Of `appended`, histogram samples.
    histograms: u64,
    rejected: u64,
    ooo_accepted: u64,
    chunks: u64,
    mint: i64,
    maxt: i64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            appended: 0,
            histograms: 0,
            rejected: 0,
            ooo_accepted: 0,
            chunks: 0,
            mint: i64::MAX,
            maxt: i64::MIN,
        }
    }
}

impl Tally {
    fn note(&mut self, t: i64) {
        self.mint = self.mint.min(t);
        self.maxt = self.maxt.max(t);
    }
}

pub(crate) struct HeadAppender<'h> {
    head: &'h Head,
    pending: Vec<(Arc<MemSeries>, Timestamp, f64)>,
    pending_h: Vec<PendingHist>,
    /// Start timestamps of the batch's samples that came with one: `(series, t, st)`.
    pending_st: Vec<(Arc<MemSeries>, Timestamp, Timestamp)>,
}

impl Head {
    /// The oldest timestamp the out-of-order window accepts now, if the window is on.
    pub(crate) fn ooo_min(&self) -> Option<i64> {
        let w = self.opts.out_of_order_time_window_ms;
        (w > 0).then(|| self.max_time.load(Ordering::Relaxed).saturating_sub(w))
    }

    /// Applies one sample to a series; counts into `tally` (see [`Head::flush_tally`]), so
    /// the shared counters are touched once per batch, not once per sample.
    pub(crate) fn apply(&self, s: &MemSeries, t: i64, v: f64, tally: &mut Tally) -> Outcome {
        if t < self.min_valid_time() {
            // During replay these are samples already persisted in blocks: not an error.
            if !self.replaying.load(Ordering::Relaxed) {
                tally.rejected += 1;
            }
            return Outcome::OutOfOrder;
        }
        let store = self.chunk_store.get().map(Arc::as_ref);
        let out = s.data.lock().append(t, v, self.ooo_min(), store);
        self.count(s, t, out, tally);
        out
    }

    /// Applies one histogram sample, as [`Head::apply`].
    pub(crate) fn apply_histogram(
        &self,
        s: &MemSeries,
        t: i64,
        h: &FloatHistogram,
        tally: &mut Tally,
    ) -> Outcome {
        if t < self.min_valid_time() {
            if !self.replaying.load(Ordering::Relaxed) {
                tally.rejected += 1;
            }
            return Outcome::OutOfOrder;
        }
        let out = s.data.lock().append_histogram(t, h, self.ooo_min());
        if matches!(out, Outcome::Appended(_) | Outcome::OutOfOrderAccepted) {
            s.has_hist.store(true, Ordering::Release);
            tally.histograms += 1;
        }
        self.count(s, t, out, tally);
        out
    }

    fn count(&self, s: &MemSeries, t: i64, out: Outcome, tally: &mut Tally) {
        match out {
            Outcome::Appended(new_chunk) => {
                s.last_t.store(t, Ordering::Relaxed);
                tally.chunks += u64::from(new_chunk);
                tally.appended += 1;
                tally.note(t);
            }
            Outcome::OutOfOrderAccepted => {
                tally.appended += 1;
                tally.ooo_accepted += 1;
                tally.note(t);
            }
            Outcome::Duplicate => {}
            Outcome::DuplicateTimestamp | Outcome::OutOfOrder => tally.rejected += 1,
        }
    }

    /// Adds a batch's tally to the shared counters.
    pub(crate) fn flush_tally(&self, tally: &mut Tally) {
        let st = &self.stats;
        st.samples_appended
            .fetch_add(tally.appended, Ordering::Relaxed);
        if tally.histograms > 0 {
            st.histogram_samples_appended
                .fetch_add(tally.histograms, Ordering::Relaxed);
        }
        st.out_of_order_samples
            .fetch_add(tally.rejected, Ordering::Relaxed);
        st.out_of_order_accepted
            .fetch_add(tally.ooo_accepted, Ordering::Relaxed);
        st.chunks_created.fetch_add(tally.chunks, Ordering::Relaxed);
        if tally.appended > 0 {
            self.note_time(tally.mint);
            self.note_time(tally.maxt);
        }
        *tally = Tally::default();
    }

    /// Encodes the WAL batch into `c.buf`: a series record for series not yet logged, then
    /// the samples in append order, a record per run of one kind.
    fn encode_batch(
        &self,
        c: &mut CommitState,
        pending: &[(Arc<MemSeries>, Timestamp, f64)],
        pending_h: &[PendingHist],
        runs: &[(bool, Range<usize>)],
    ) {
        c.buf.clear();
        let mut rec = None;
        {
            let syms = self.symbols().reader();
            let all = pending
                .iter()
                .map(|p| &p.0)
                .chain(pending_h.iter().map(|p| &p.s));
            for s in all {
                if s.logged.load(Ordering::Relaxed) {
                    continue;
                }
                if rec.is_none() {
                    rec = Some(record::begin(&mut c.buf, record::SERIES));
                }
                record::put_series(
                    &mut c.buf,
                    s.r,
                    s.labels.iter().map(|&(n, v)| (syms.get(n), syms.get(v))),
                );
                // Marked now; reset below if the write fails.
                s.logged.store(true, Ordering::Relaxed);
            }
        }
        if let Some(start) = rec {
            record::finish(&mut c.buf, start);
        }
        for (hist, r) in runs {
            if *hist {
                record::put_histograms_record(
                    &mut c.buf,
                    pending_h[r.clone()].iter().map(|p| (p.s.r, p.t, &p.h)),
                );
            } else {
                record::put_samples_record(
                    &mut c.buf,
                    pending[r.clone()].iter().map(|(s, t, v)| (s.r, *t, *v)),
                );
            }
        }
    }

    fn commit_batch(
        &self,
        pending: &mut [(Arc<MemSeries>, Timestamp, f64)],
        pending_h: &mut [PendingHist],
        pending_st: &[(Arc<MemSeries>, Timestamp, Timestamp)],
    ) -> Result<(), StorageError> {
        if pending.is_empty() && pending_h.is_empty() {
            return Ok(());
        }
        let mut c = self.commit.lock();
        if c.closed {
            return Err(StorageError::Closed);
        }
        // A series garbage-collected since `append` comes back under a new reference.
        let all = pending
            .iter_mut()
            .map(|p| &mut p.0)
            .chain(pending_h.iter_mut().map(|p| &mut p.s));
        for s in all {
            if s.removed.load(Ordering::Relaxed) {
                let labels = self.labels_of(s);
                if let Ok((n, _)) = self.get_or_create(&labels, None) {
                    *s = n;
                }
            }
        }
        let (pending, pending_h) = (&*pending, &*pending_h);
        let runs = runs(pending.len(), pending_h);
        if c.wal.is_some() {
            self.encode_batch(&mut c, pending, pending_h, &runs);
            if !pending_st.is_empty() {
                record::put_start_timestamps_record(
                    &mut c.buf,
                    pending_st.iter().map(|(s, t, st)| (s.r, *t, *st)),
                );
            }
            let CommitState {
                buf,
                scratch,
                compressor,
                ..
            } = &mut *c;
            if compressor.is_none() {
                *compressor = record::Compressor::new(self.opts.wal_compression);
            }
            if let Some(comp) = compressor {
                record::compress_records(buf, scratch, comp);
            }
            let CommitState { wal, buf, .. } = &mut *c;
            if let Some(wal) = wal
                && let Err(e) = wal.write_batch(buf)
            {
                for (s, _, _) in pending {
                    s.logged.store(false, Ordering::Relaxed);
                }
                for p in pending_h {
                    p.s.logged.store(false, Ordering::Relaxed);
                }
                return Err(e.into());
            }
        }
        let mut tally = Tally::default();
        for (hist, r) in runs {
            if hist {
                for p in &pending_h[r] {
                    self.apply_histogram(&p.s, p.t, &p.h, &mut tally);
                }
            } else {
                for (s, t, v) in &pending[r] {
                    self.apply(s, *t, *v, &mut tally);
                }
            }
        }
        for (s, t, st) in pending_st {
            s.data.lock().set_st(*t, *st);
        }
        self.flush_tally(&mut tally);
        Ok(())
    }
}

impl Appender for HeadAppender<'_> {
    fn append(
        &mut self,
        cached: Option<SeriesRef>,
        labels: &Labels,
        t: Timestamp,
        v: f64,
    ) -> Result<SeriesRef, AppendError> {
        let s = match cached.and_then(|r| self.head.series(r)) {
            Some(s) => s,
            None => self.head.get_or_create(labels, None)?.0,
        };
        {
            let last_t = s.last_t.load(Ordering::Relaxed);
            // A float at the time of a histogram: refused now, as Prometheus does (the
            // commit would refuse it anyway).
            if t == last_t && s.data.lock().last_is_histogram() {
                self.head
                    .stats
                    .out_of_order_samples
                    .fetch_add(1, Ordering::Relaxed);
                return Err(AppendError::DuplicateTimestamp);
            }
            let too_old = t < last_t && self.head.ooo_min().is_none_or(|min| t < min)
                || t < self.head.min_valid_time();
            if too_old {
                self.head
                    .stats
                    .out_of_order_samples
                    .fetch_add(1, Ordering::Relaxed);
                return Err(AppendError::OutOfOrder);
            }
        }
        let r = s.r;
        self.pending.push((s, t, v));
        Ok(r)
    }

    fn append_histogram(
        &mut self,
        cached: Option<SeriesRef>,
        labels: &Labels,
        t: Timestamp,
        h: &FloatHistogram,
    ) -> Result<SeriesRef, AppendError> {
        h.validate()
            .map_err(|e| AppendError::InvalidHistogram(e.to_string()))?;
        let s = match cached.and_then(|r| self.head.series(r)) {
            Some(s) => s,
            None => self.head.get_or_create(labels, None)?.0,
        };
        // Older than the series' last sample: only within the out-of-order window.
        let last_t = s.last_t.load(Ordering::Relaxed);
        let too_old = t < last_t && self.head.ooo_min().is_none_or(|min| t < min);
        let refused = if too_old || t < self.head.min_valid_time() {
            Some(AppendError::OutOfOrder)
        } else if t == last_t && s.data.lock().histogram_at_last(h) == Outcome::DuplicateTimestamp {
            Some(AppendError::DuplicateTimestamp)
        } else {
            None
        };
        if let Some(e) = refused {
            self.head
                .stats
                .out_of_order_samples
                .fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
        let r = s.r;
        self.pending_h.push(PendingHist {
            s,
            t,
            h: h.clone(),
            seq: self.pending.len(),
        });
        Ok(r)
    }

    fn append_with_st(
        &mut self,
        cached: Option<SeriesRef>,
        labels: &Labels,
        t: Timestamp,
        v: f64,
        st: Timestamp,
    ) -> Result<SeriesRef, AppendError> {
        let r = self.append(cached, labels, t, v)?;
        if st != 0
            && let Some(s) = self.pending.last()
        {
            self.pending_st.push((s.0.clone(), t, st));
        }
        Ok(r)
    }

    fn append_histogram_with_st(
        &mut self,
        cached: Option<SeriesRef>,
        labels: &Labels,
        t: Timestamp,
        h: &FloatHistogram,
        st: Timestamp,
    ) -> Result<SeriesRef, AppendError> {
        let r = self.append_histogram(cached, labels, t, h)?;
        if st != 0
            && let Some(p) = self.pending_h.last()
        {
            self.pending_st.push((p.s.clone(), t, st));
        }
        Ok(r)
    }

    fn commit(mut self: Box<Self>) -> Result<(), StorageError> {
        let HeadAppender {
            head,
            pending,
            pending_h,
            pending_st,
        } = &mut *self;
        head.commit_batch(pending, pending_h, pending_st)
    }

    fn rollback(self: Box<Self>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_keep_append_order() {
        let head = Head::new(Default::default());
        let l = Labels::from_pairs([("__name__", "x")]);
        let s = head.get_or_create(&l, None).unwrap().0;
        let hs = |seqs: &[usize]| -> Vec<PendingHist> {
            seqs.iter()
                .map(|&seq| PendingHist {
                    s: s.clone(),
                    t: 0,
                    h: FloatHistogram::default(),
                    seq,
                })
                .collect()
        };
        assert_eq!(runs(3, &[]), [(false, 0..3)]);
        assert_eq!(runs(0, &hs(&[0, 0])), [(true, 0..2)]);
        assert_eq!(runs(3, &hs(&[3])), [(false, 0..3), (true, 0..1)]);
        assert_eq!(
            runs(3, &hs(&[0, 1, 1, 3])),
            [
                (true, 0..1),
                (false, 0..1),
                (true, 1..3),
                (false, 1..3),
                (true, 3..4)
            ]
        );
    }
}
