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

    /// Applies one sample to a series and updates the counters.
    pub(crate) fn apply(&self, s: &MemSeries, t: i64, v: f64) -> Outcome {
        if t < self.min_valid_time() {
            // During replay these are samples already persisted in blocks: not an error.
            if !self.replaying.load(Ordering::Relaxed) {
                self.stats
                    .out_of_order_samples
                    .fetch_add(1, Ordering::Relaxed);
            }
            return Outcome::OutOfOrder;
        }
        let out = s.data.lock().append(t, v, self.ooo_min());
        match out {
            Outcome::Appended(new_chunk) => {
                if new_chunk {
                    self.stats.chunks_created.fetch_add(1, Ordering::Relaxed);
                }
                self.stats.samples_appended.fetch_add(1, Ordering::Relaxed);
                self.note_time(t);
            }
            Outcome::OutOfOrderAccepted => {
                self.stats.samples_appended.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .out_of_order_accepted
                    .fetch_add(1, Ordering::Relaxed);
                self.note_time(t);
            }
            Outcome::Duplicate => {}
            Outcome::DuplicateTimestamp | Outcome::OutOfOrder => {
                self.stats
                    .out_of_order_samples
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        out
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
        let start = record::begin(&mut c.buf, record::SAMPLES);
        record::put_samples(&mut c.buf, pending.iter().map(|(s, t, v)| (s.r, *t, *v)));
        record::finish(&mut c.buf, start);
    }

    fn commit_batch(
        &self,
        pending: &[(Arc<MemSeries>, Timestamp, f64)],
    ) -> Result<(), StorageError> {
        if pending.is_empty() {
            return Ok(());
        }
        let mut c = self.commit.lock();
        if c.closed {
            return Err(StorageError::Closed);
        }
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
        for (s, t, v) in pending {
            self.apply(s, *t, *v);
        }
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
            let d = s.data.lock();
            let too_old = t < d.last_t && self.head.ooo_min().is_none_or(|min| t < min)
                || t < self.head.min_valid_time();
            if too_old {
                drop(d);
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

    fn commit(self: Box<Self>) -> Result<(), StorageError> {
        self.head.commit_batch(&self.pending)
    }

    fn rollback(self: Box<Self>) {}
}
