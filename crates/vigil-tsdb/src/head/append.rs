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
use std::sync::Arc;
use std::sync::atomic::Ordering;
use vigil_model::{AppendError, Appendable, Appender, Labels, SeriesRef, StorageError, Timestamp};

impl Appendable for Head {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(HeadAppender {
            head: self,
            pending: Vec::new(),
        })
    }
}

/// Counts of one batch, added to [`HeadStats`](super::HeadStats) once.
#[derive(Debug)]
pub(crate) struct Tally {
    appended: u64,
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
        let out = s.data.lock().append(t, v, self.ooo_min());
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
        out
    }

    /// Adds a batch's tally to the shared counters.
    pub(crate) fn flush_tally(&self, tally: &mut Tally) {
        let st = &self.stats;
        st.samples_appended
            .fetch_add(tally.appended, Ordering::Relaxed);
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

    /// Encodes the WAL batch of `pending` into `c.buf`.
    fn encode_batch(&self, c: &mut CommitState, pending: &[(Arc<MemSeries>, Timestamp, f64)]) {
        c.buf.clear();
        let mut rec = None;
        {
            let syms = self.symbols().reader();
            for (s, _, _) in pending {
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
        record::put_samples_record(&mut c.buf, pending.iter().map(|(s, t, v)| (s.r, *t, *v)));
    }

    fn commit_batch(
        &self,
        pending: &mut [(Arc<MemSeries>, Timestamp, f64)],
    ) -> Result<(), StorageError> {
        if pending.is_empty() {
            return Ok(());
        }
        let mut c = self.commit.lock();
        if c.closed {
            return Err(StorageError::Closed);
        }
        // A series garbage-collected since `append` comes back under a new reference.
        for p in pending.iter_mut() {
            if p.0.removed.load(Ordering::Relaxed) {
                let labels = self.labels_of(&p.0);
                if let Ok((s, _)) = self.get_or_create(&labels, None) {
                    p.0 = s;
                }
            }
        }
        let pending = &*pending;
        if c.wal.is_some() {
            self.encode_batch(&mut c, pending);
            let CommitState { wal, buf, .. } = &mut *c;
            if let Some(wal) = wal
                && let Err(e) = wal.write_batch(buf)
            {
                for (s, _, _) in pending {
                    s.logged.store(false, Ordering::Relaxed);
                }
                return Err(e.into());
            }
        }
        let mut tally = Tally::default();
        for (s, t, v) in pending {
            self.apply(s, *t, *v, &mut tally);
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

    fn commit(mut self: Box<Self>) -> Result<(), StorageError> {
        self.head.commit_batch(&mut self.pending)
    }

    fn rollback(self: Box<Self>) {}
}
