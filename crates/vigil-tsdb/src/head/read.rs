//! Reading the head through the [`Querier`] seam.
//!
//! `select` resolves matchers to series refs with the postings index, sorts the series by
//! their labels, and then streams: each series' chunks are pinned (cheap `Arc` clones, plus a
//! copy of the small open chunk) only when the caller reaches that series, and samples are
//! decoded lazily, one chunk at a time.

use super::Head;
use super::series::MemSeries;
use super::symbols::Sym;
use crate::chunk::SampleIter;
use ahash::AHashSet;
use std::sync::Arc;
use vigil_model::{
    Labels, Matcher, Querier, Queryable, SelectHints, Series, SeriesSet, StorageError, Timestamp,
};

impl Queryable for Head {
    fn querier(
        &self,
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Box<dyn Querier + '_>, StorageError> {
        Ok(Box::new(HeadQuerier {
            head: self,
            mint,
            maxt,
        }))
    }
}

pub struct HeadQuerier<'h> {
    pub(crate) head: &'h Head,
    pub(crate) mint: Timestamp,
    pub(crate) maxt: Timestamp,
}

impl Head {
    /// Series matching every matcher, sorted by labels.
    pub(crate) fn matching(&self, matchers: &[Matcher]) -> Vec<(Labels, Arc<MemSeries>)> {
        let refs = {
            let syms = self.symbols().reader();
            self.postings.read().select(matchers, &syms)
        };
        let mut out: Vec<(Labels, Arc<MemSeries>)> = refs
            .into_iter()
            .filter_map(|r| self.series(r))
            .map(|s| (self.labels_of(&s), s))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Series matching every matcher that hold a sample within `[mint, maxt]`, in no
    /// particular order and without resolving their labels: what label lookups need.
    fn live_unsorted(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<Arc<MemSeries>> {
        let mint = mint.max(self.min_valid_time());
        let refs = {
            let syms = self.symbols().reader();
            self.postings.read().select(matchers, &syms)
        };
        refs.into_iter()
            .filter_map(|r| self.series(r))
            .filter(|s| mint <= maxt && s.data.lock().has_sample_in(mint, maxt))
            .collect()
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

impl HeadQuerier<'_> {
    /// True when no matchers restrict the series and the range covers the whole head, so the
    /// postings index answers label queries without touching a series (what Grafana's
    /// template variables ask for).
    fn whole_head(&self, matchers: &[Matcher]) -> bool {
        matchers.is_empty()
            && match (self.head.min_time(), self.head.max_time()) {
                (Some(lo), Some(hi)) => self.mint <= lo && self.maxt >= hi,
                _ => true,
            }
    }
}

impl Querier for HeadQuerier<'_> {
    fn select(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<SeriesSet<'_>, StorageError> {
        let (start, end) = (hints.start.max(self.mint), hints.end.min(self.maxt));
        let head = self.head;
        let out = head
            .matching(matchers)
            .into_iter()
            .filter_map(move |(labels, s)| {
                let mut it = head.samples_of(&s, start, end)?;
                if !it.has_next() {
                    return None;
                }
                Some(Series {
                    labels,
                    samples: Box::new(it),
                })
            });
        Ok(Box::new(out))
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        if self.whole_head(matchers) {
            let syms = self.head.symbols().reader();
            let p = self.head.postings.read();
            let mut out: Vec<String> = p.names().map(|n| syms.get(n).to_string()).collect();
            out.sort_unstable();
            return Ok(out);
        }
        // Distinct symbols first, strings once at the end.
        let mut names: AHashSet<Sym> = AHashSet::new();
        for s in self.head.live_unsorted(matchers, self.mint, self.maxt) {
            names.extend(s.labels.iter().map(|&(n, _)| n));
        }
        let syms = self.head.symbols().reader();
        let mut out: Vec<String> = names.into_iter().map(|n| syms.get(n).to_string()).collect();
        out.sort_unstable();
        Ok(out)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        if self.whole_head(matchers) {
            let syms = self.head.symbols().reader();
            let p = self.head.postings.read();
            let mut out: Vec<String> = match syms.lookup(name) {
                Some(n) => p.values(n).map(|v| syms.get(v).to_string()).collect(),
                None => Vec::new(),
            };
            out.sort_unstable();
            return Ok(out);
        }
        let Some(name) = self.head.symbols().reader().lookup(name) else {
            return Ok(Vec::new());
        };
        let mut values: AHashSet<Sym> = AHashSet::new();
        for s in self.head.live_unsorted(matchers, self.mint, self.maxt) {
            if let Some(&(_, v)) = s.labels.iter().find(|&&(n, _)| n == name) {
                values.insert(v);
            }
        }
        let syms = self.head.symbols().reader();
        let mut out: Vec<String> = values
            .into_iter()
            .map(|v| syms.get(v).to_string())
            .collect();
        out.sort_unstable();
        Ok(out)
    }
}
