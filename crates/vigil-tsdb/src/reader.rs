//! One querier over the head and over blocks.
//!
//! Both hold the same three things (Prometheus' `BlockReader`: an index, chunks and their time
//! range): interned symbols, a postings index from label pairs to series, and per series its
//! label symbols and chunks. [`BlockReader`] is that contract; [`ReaderQuerier`] implements
//! the [`Querier`] seam over any of them once: postings selection, label-ordered streaming of
//! series with lazily decoded samples, and label names/values from symbols, strings resolved
//! only at the end. A new sample kind (native histograms) or index change is made here once.
//!
//! The index is seen through two small traits, [`SymbolLookup`] and [`PostingsIndex`]: the
//! head implements them over its in-memory tables, a block over its memory-mapped index file
//! (read on demand, `block::index`). Matcher evaluation (`head::postings::select`) is written
//! once over them.

use crate::chunk::SampleIter;
use crate::head::postings;
use crate::head::symbols::Sym;
use ahash::AHashSet;
use std::borrow::Cow;
use std::ops::Deref;
use vigil_model::{
    HistogramSample, Labels, Matcher, Querier, SampleIterator, SelectHints, Series, SeriesRef,
    SeriesSet, StorageError, Timestamp,
};

/// Symbol ids to strings and back.
pub trait SymbolLookup {
    /// The string of `id` (empty for an unknown id, or one a corrupt block index does not
    /// resolve).
    fn get(&self, id: Sym) -> &str;

    /// The id of `s`, if it is a symbol.
    fn lookup(&self, s: &str) -> Option<Sym>;
}

/// Label pair → sorted series refs.
pub trait PostingsIndex {
    /// The label names present (each once, in no particular order).
    fn names(&self) -> Vec<Sym>;

    /// The values present for label `name` (each once, in no particular order).
    fn values(&self, name: Sym) -> Vec<Sym>;

    /// The sorted refs of the series with label `name` = `value`.
    fn postings(&self, name: Sym, value: Sym) -> Cow<'_, [SeriesRef]>;

    /// Every series, sorted.
    fn all(&self) -> Cow<'_, [SeriesRef]>;

    /// Appends to `out` the refs of the series whose value of `name` passes `keep` (lists of
    /// different values are disjoint; `out` is not sorted).
    fn postings_where(
        &self,
        name: Sym,
        keep: &mut dyn FnMut(Sym) -> bool,
        out: &mut Vec<SeriesRef>,
    ) {
        for v in self.values(name) {
            if keep(v) {
                out.extend_from_slice(&self.postings(name, v));
            }
        }
    }
}

/// What a querier reads from the head or from a block.
pub(crate) trait BlockReader {
    /// A handle on one series (an `Arc` in the head, a position in a block).
    type Series;

    /// Whether postings list series in label order already (a block's series are stored
    /// sorted; the head's references are in creation order).
    const REFS_IN_LABEL_ORDER: bool;

    /// The inclusive time range of the samples held, `None` when empty.
    fn bounds(&self) -> Option<(Timestamp, Timestamp)>;

    /// Runs `f` with the symbol table and the postings index.
    fn with_index<T>(&self, f: impl FnOnce(&dyn SymbolLookup, &dyn PostingsIndex) -> T) -> T;

    /// The series `r` (a ref from the postings), `None` when there is none. A block decodes
    /// the series' index entry here, once per series a query reaches (`None` when it does not
    /// decode), so the other methods read it without touching the index again.
    fn series(&self, r: SeriesRef) -> Option<Self::Series>;

    /// The series' (name, value) symbol pairs, sorted by name.
    fn label_syms<'a>(&'a self, s: &'a Self::Series) -> &'a [(Sym, Sym)];

    fn labels(&self, s: &Self::Series) -> Labels {
        self.with_index(|syms, _| {
            Labels::from_pairs(
                self.label_syms(s)
                    .iter()
                    .map(|&(n, v)| (syms.get(n), syms.get(v))),
            )
        })
    }

    /// The series' samples within `[mint, maxt]`, if it has chunks there.
    fn samples(&self, s: &Self::Series, mint: Timestamp, maxt: Timestamp) -> Option<SampleIter>;

    /// The series' native histogram samples within `[mint, maxt]`, in time order (empty for
    /// the common series without any).
    fn histograms(
        &self,
        s: &Self::Series,
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<HistogramSample>;

    /// Start timestamps `(t, st)` of the series' samples within `[mint, maxt]` that have one
    /// (only the head keeps them; blocks do not).
    fn start_timestamps(
        &self,
        s: &Self::Series,
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<(Timestamp, Timestamp)> {
        let _ = (s, mint, maxt);
        Vec::new()
    }

    /// Does the series hold a sample (of either kind) within `[mint, maxt]`?
    fn has_sample_in(&self, s: &Self::Series, mint: Timestamp, maxt: Timestamp) -> bool {
        self.samples(s, mint, maxt)
            .is_some_and(|mut it| it.next().is_some())
            || !self.histograms(s, mint, maxt).is_empty()
    }
}

/// Series handles matching every matcher, in postings order, each made when reached.
fn select_refs<'b, B: BlockReader + ?Sized>(
    b: &'b B,
    matchers: &[Matcher],
) -> impl Iterator<Item = B::Series> + use<'b, B> {
    let refs = b.with_index(|syms, p| postings::select(p, matchers, syms));
    refs.into_iter().filter_map(|r| b.series(r))
}

/// A [`Querier`] over `[mint, maxt]` of one [`BlockReader`] (`P` is `&Head` or `Arc<Block>`).
pub(crate) struct ReaderQuerier<P> {
    pub(crate) reader: P,
    pub(crate) mint: Timestamp,
    pub(crate) maxt: Timestamp,
}

impl<P> ReaderQuerier<P>
where
    P: Deref,
    P::Target: BlockReader,
{
    /// True when no matchers restrict the series and the range covers everything held, so the
    /// postings index answers label queries without touching a series (what Grafana's
    /// template variables ask for).
    fn whole(&self, matchers: &[Matcher]) -> bool {
        matchers.is_empty()
            && self
                .reader
                .bounds()
                .is_none_or(|(lo, hi)| self.mint <= lo && self.maxt >= hi)
    }

    /// Distinct symbols over series that hold a sample in range, resolved and sorted.
    fn live_symbols(
        &self,
        matchers: &[Matcher],
        pick: impl Fn(&[(Sym, Sym)], &mut AHashSet<Sym>),
    ) -> Vec<String> {
        let b = &*self.reader;
        let mut found: AHashSet<Sym> = AHashSet::new();
        for s in select_refs(b, matchers) {
            if self.mint <= self.maxt && b.has_sample_in(&s, self.mint, self.maxt) {
                pick(b.label_syms(&s), &mut found);
            }
        }
        sorted_strings(b, found.into_iter())
    }
}

fn sorted_strings<B: BlockReader + ?Sized>(b: &B, syms: impl Iterator<Item = Sym>) -> Vec<String> {
    let mut out: Vec<String> = b.with_index(|st, _| syms.map(|s| st.get(s).to_string()).collect());
    out.sort_unstable();
    out.dedup();
    out
}

impl<P> Querier for ReaderQuerier<P>
where
    P: Deref,
    P::Target: BlockReader,
{
    fn select(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<SeriesSet<'_>, StorageError> {
        let (start, end) = (hints.start.max(self.mint), hints.end.min(self.maxt));
        let b = &*self.reader;
        let refs = select_refs(b, matchers);
        let series: Box<dyn Iterator<Item = (Labels, _)> + '_> =
            if <P::Target as BlockReader>::REFS_IN_LABEL_ORDER {
                // Labels are resolved lazily, as the caller reaches each series.
                Box::new(refs.map(move |s| (Labels::empty(), s)))
            } else {
                let mut v: Vec<(Labels, _)> = refs.map(|s| (b.labels(&s), s)).collect();
                v.sort_by(|x, y| x.0.cmp(&y.0));
                Box::new(v.into_iter())
            };
        let out = series.filter_map(move |(labels, s)| {
            let mut floats = b.samples(&s, start, end);
            if floats.as_mut().is_some_and(|it| !it.has_next()) {
                floats = None;
            }
            let histograms = b.histograms(&s, start, end);
            if floats.is_none() && histograms.is_empty() {
                return None;
            }
            let labels = if <P::Target as BlockReader>::REFS_IN_LABEL_ORDER {
                b.labels(&s)
            } else {
                labels
            };
            let samples: Box<dyn SampleIterator> = match floats {
                Some(it) => Box::new(it),
                None => Box::new(Vec::new().into_iter()),
            };
            let start_timestamps = b.start_timestamps(&s, start, end);
            Some(Series {
                labels,
                samples,
                histograms,
                start_timestamps,
            })
        });
        Ok(Box::new(out))
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let b = &*self.reader;
        if self.whole(matchers) {
            let names: Vec<Sym> = b.with_index(|_, p| p.names());
            return Ok(sorted_strings(b, names.into_iter()));
        }
        Ok(self.live_symbols(matchers, |labels, found| {
            found.extend(labels.iter().map(|&(n, _)| n))
        }))
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let b = &*self.reader;
        let Some(name) = b.with_index(|syms, _| syms.lookup(name)) else {
            return Ok(Vec::new());
        };
        if self.whole(matchers) {
            let values: Vec<Sym> = b.with_index(|_, p| p.values(name));
            return Ok(sorted_strings(b, values.into_iter()));
        }
        Ok(self.live_symbols(matchers, |labels, found| {
            if let Some(&(_, v)) = labels.iter().find(|&&(n, _)| n == name) {
                found.insert(v);
            }
        }))
    }
}
