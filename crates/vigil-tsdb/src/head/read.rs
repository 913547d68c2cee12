//! Reading the head: its side of [`BlockReader`], so the one querier (`crate::reader`) serves
//! it as it serves blocks.
//!
//! Postings resolve matchers to series refs; the querier sorts the series by their labels and
//! then streams: each series' chunks are pinned (cheap `Arc` clones, plus a copy of the small
//! open chunk) only when the caller reaches that series, and samples are decoded lazily, one
//! chunk at a time.

use super::Head;
use super::postings;
use super::series::MemSeries;
use super::symbols::Sym;
use crate::chunk::SampleIter;
use crate::reader::{BlockReader, PostingsIndex, ReaderQuerier, SymbolLookup};
use std::sync::Arc;
use vigil_model::{
    HistogramSample, Labels, Matcher, Querier, Queryable, SeriesRef, StorageError, Timestamp,
};

/// The head's querier: the shared one over `&Head`.
pub(crate) type HeadQuerier<'h> = ReaderQuerier<&'h Head>;

impl Queryable for Head {
    fn querier(
        &self,
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Box<dyn Querier + '_>, StorageError> {
        Ok(Box::new(HeadQuerier {
            reader: self,
            mint,
            maxt,
        }))
    }
}

impl BlockReader for Head {
    type Series = Arc<MemSeries>;
    const REFS_IN_LABEL_ORDER: bool = false;

    fn bounds(&self) -> Option<(Timestamp, Timestamp)> {
        Some((self.min_time()?, self.max_time()?))
    }

    fn with_index<T>(&self, f: impl FnOnce(&dyn SymbolLookup, &dyn PostingsIndex) -> T) -> T {
        let syms = self.symbols().reader();
        f(&syms, &*self.postings.read())
    }

    fn series(&self, r: SeriesRef) -> Option<Arc<MemSeries>> {
        Head::series(self, r)
    }

    fn label_syms<'a>(&'a self, s: &'a Arc<MemSeries>) -> &'a [(Sym, Sym)] {
        &s.labels
    }

    fn labels(&self, s: &Arc<MemSeries>) -> Labels {
        self.labels_of(s)
    }

    fn samples(&self, s: &Arc<MemSeries>, mint: Timestamp, maxt: Timestamp) -> Option<SampleIter> {
        self.samples_of(s, mint, maxt)
    }

    fn histograms(
        &self,
        s: &Arc<MemSeries>,
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<HistogramSample> {
        let mint = mint.max(self.min_valid_time());
        if mint > maxt || !s.has_hist.load(std::sync::atomic::Ordering::Acquire) {
            return Vec::new();
        }
        s.data.lock().histograms_in(mint, maxt)
    }

    fn start_timestamps(
        &self,
        s: &Arc<MemSeries>,
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<(Timestamp, Timestamp)> {
        let mint = mint.max(self.min_valid_time());
        if mint > maxt {
            return Vec::new();
        }
        s.data.lock().sts_in(mint, maxt)
    }

    fn has_sample_in(&self, s: &Arc<MemSeries>, mint: Timestamp, maxt: Timestamp) -> bool {
        let mint = mint.max(self.min_valid_time());
        mint <= maxt && s.data.lock().has_sample_in(mint, maxt)
    }
}

impl Head {
    /// Series matching every matcher, sorted by labels (deletion walks them).
    pub(crate) fn matching(&self, matchers: &[Matcher]) -> Vec<(Labels, Arc<MemSeries>)> {
        let refs = self.with_index(|syms, p| postings::select(p, matchers, syms));
        let mut out: Vec<(Labels, Arc<MemSeries>)> = refs
            .into_iter()
            .filter_map(|r| self.series(r))
            .map(|s| (self.labels_of(&s), s))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Samples of `s` within `[mint, maxt]` (clamped to what retention keeps), if any.
    pub(crate) fn samples_of(&self, s: &MemSeries, mint: i64, maxt: i64) -> Option<SampleIter> {
        let mint = mint.max(self.min_valid_time());
        if mint > maxt {
            return None;
        }
        s.data.lock().chunks_in(mint, maxt)
    }
}
