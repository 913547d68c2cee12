//! Deleting series data (`/api/v1/admin/tsdb/delete_series`).
//!
//! Prometheus records deletions as tombstones and removes the data at the next compaction or
//! on `clean_tombstones`. vigil applies them at once instead: the head re-encodes the affected
//! series (after logging a tombstones record, so WAL replay repeats the deletion), and each
//! block holding matching samples is rewritten without them and swapped in atomically, the
//! same way compaction replaces blocks. Nothing is left to clean afterwards, and reads never
//! pay for filtering tombstones.

use crate::block::Compaction;
use crate::block::writer::write_block;
use crate::db::Tsdb;
use crate::error::TsdbError;
use crate::head::Head;
use crate::wal::record;
use crate::{Block, TsdbError as E};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use vigil_model::{
    Labels, Matcher, PerSample, Querier, Sample, SelectHints, Series, SeriesSet, StorageError,
    Timestamp,
};

/// What a deletion removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    pub head_samples: usize,
    pub blocks_rewritten: usize,
}

fn matches_any(labels: &Labels, selectors: &[Vec<Matcher>]) -> bool {
    selectors.iter().any(|ms| {
        ms.iter()
            .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
    })
}

impl Head {
    /// Deletes the samples of series matching any selector within `[mint, maxt]`.
    fn delete_series(
        &self,
        selectors: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Result<usize, TsdbError> {
        let mut refs: Vec<u64> = selectors
            .iter()
            .flat_map(|ms| self.matching(ms))
            .map(|(_, s)| s.r)
            .collect();
        refs.sort_unstable();
        refs.dedup();
        if refs.is_empty() {
            return Ok(0);
        }
        // Logged and applied under the commit lock, as a commit is, so replay sees the
        // tombstone exactly between the samples it followed and those after it.
        let mut c = self.commit.lock();
        if c.closed {
            return Err(E::Invalid("the TSDB is closed".into()));
        }
        let mut buf = std::mem::take(&mut c.buf);
        buf.clear();
        record::put_tombstones(&mut buf, &refs, mint, maxt);
        let res = c.wal.as_mut().map_or(Ok(()), |w| w.write_batch(&buf));
        c.buf = buf;
        res?;
        let mut deleted = 0;
        for r in refs {
            if let Some(s) = self.series(r) {
                deleted += s.data.lock().delete_range(mint, maxt);
            }
        }
        Ok(deleted)
    }
}

impl Tsdb {
    /// Deletes the samples of series matching any of `selectors` within `[mint, maxt]`, from
    /// the head and from every block.
    pub fn delete_series(
        &self,
        selectors: &[Vec<Matcher>],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Deleted, TsdbError> {
        let _m = self.maint.lock();
        let mut out = Deleted {
            head_samples: self.head().delete_series(selectors, mint, maxt)?,
            ..Deleted::default()
        };
        for b in self.blocks() {
            let meta = b.meta();
            // Block max_time is exclusive.
            if meta.max_time <= mint || meta.min_time > maxt || !holds(&b, selectors, mint, maxt)? {
                continue;
            }
            self.rewrite_block(&b, selectors, mint, maxt)?;
            out.blocks_rewritten += 1;
        }
        tracing::info!(
            head_samples = out.head_samples,
            blocks_rewritten = out.blocks_rewritten,
            mint,
            maxt,
            "Deleted series data"
        );
        Ok(out)
    }

    /// Replaces `b` by a copy without the deleted samples (or by nothing when none are left).
    fn rewrite_block(
        &self,
        b: &Arc<Block>,
        selectors: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Result<(), TsdbError> {
        let meta = b.meta();
        let q = Without {
            inner: b.querier(meta.min_time, meta.max_time - 1),
            selectors,
            mint,
            maxt,
        };
        let compaction = Compaction {
            level: meta.compaction.level,
            sources: vec![meta.ulid.clone()],
        };
        let fs = &*self.options().fs;
        let written = write_block(fs, self.dir(), &q, meta.min_time, meta.max_time, compaction)?;
        drop(q);
        let new = match written {
            Some((_, dir)) => Some(Arc::new(Block::open(&dir)?)),
            None => None,
        };
        {
            let mut blocks = self.blocks_mut();
            blocks.retain(|x| !Arc::ptr_eq(x, b));
            blocks.extend(new);
            blocks.sort_by_key(|b| b.meta().min_time);
        }
        crate::db::delete_block_dir(fs, b.dir())?;
        self.stats().compactions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Whether block `b` holds a sample of a matching series within `[mint, maxt]`.
fn holds(
    b: &Arc<Block>,
    selectors: &[Vec<Matcher>],
    mint: i64,
    maxt: i64,
) -> Result<bool, TsdbError> {
    let q = b.querier(mint, maxt);
    let hints = SelectHints {
        start: mint,
        end: maxt,
    };
    for ms in selectors {
        let set = q
            .select(ms, &hints)
            .map_err(|e| E::Invalid(e.to_string()))?;
        for mut s in set {
            if !s.histograms.is_empty() || s.samples.next().is_some() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// A querier that hides the samples of matching series within `[mint, maxt]`.
struct Without<'a, Q> {
    inner: Q,
    selectors: &'a [Vec<Matcher>],
    mint: i64,
    maxt: i64,
}

impl<Q: Querier> Querier for Without<'_, Q> {
    fn select(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<SeriesSet<'_>, StorageError> {
        let (mint, maxt) = (self.mint, self.maxt);
        let set = self.inner.select(matchers, hints)?;
        Ok(Box::new(set.filter_map(move |s| {
            if !matches_any(&s.labels, self.selectors) {
                return Some(s);
            }
            let mut samples = s
                .samples
                .filter(move |x: &Sample| x.t < mint || x.t > maxt)
                .peekable();
            let mut histograms = s.histograms;
            histograms.retain(|x| x.t < mint || x.t > maxt);
            // A series left without samples is left out of the block.
            if samples.peek().is_none() && histograms.is_empty() {
                return None;
            }
            let mut start_timestamps = s.start_timestamps;
            start_timestamps.retain(|x| x.0 < mint || x.0 > maxt);
            Some(Series {
                labels: s.labels,
                samples: Box::new(PerSample(samples)),
                histograms,
                start_timestamps,
            })
        })))
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        self.inner.label_names(matchers)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        self.inner.label_values(name, matchers)
    }
}
