//! A querier over several queriers (blocks, oldest first, then the head; or local storage and
//! remote-read endpoints): series with equal label sets are merged into one, and samples at
//! the same timestamp are kept once. It lives with the seam it combines (Prometheus keeps it
//! in `storage/merge.go`), so the TSDB and remote read share it without depending on each other.
//!
//! Each source already yields series sorted by labels, so the merge is a streaming k-way merge
//! over the sources' next series and, within a series, over their next samples. Overlaps are
//! normal (a head cut into a block is visible in both for a moment; an import may overlap
//! existing blocks); the first source's value wins for a duplicated timestamp.

use crate::{
    HistogramSample, Matcher, Querier, Sample, SampleIterator, SelectHints, Series, SeriesSet,
    StorageError,
};
use std::collections::BTreeSet;
use std::iter::Peekable;

pub struct MergeQuerier<'a> {
    pub queriers: Vec<Box<dyn Querier + 'a>>,
    /// The inclusive time range of the samples each querier can hold, when known (same
    /// length as `queriers`; empty when unknown). Series whose sources are disjoint in time
    /// (consecutive blocks) are then concatenated instead of merged sample by sample.
    pub ranges: Vec<(i64, i64)>,
}

impl Querier for MergeQuerier<'_> {
    fn select(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<SeriesSet<'_>, StorageError> {
        if self.queriers.len() == 1 {
            return self.queriers[0].select(matchers, hints);
        }
        let mut sets = Vec::with_capacity(self.queriers.len());
        for q in &self.queriers {
            sets.push(q.select(matchers, hints)?.peekable());
        }
        let ranges = if self.ranges.len() == self.queriers.len() {
            self.ranges.clone()
        } else {
            Vec::new()
        };
        Ok(Box::new(MergeSeries { sets, ranges }))
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let mut out = BTreeSet::new();
        for q in &self.queriers {
            out.extend(q.label_names(matchers)?);
        }
        Ok(out.into_iter().collect())
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let mut out = BTreeSet::new();
        for q in &self.queriers {
            out.extend(q.label_values(name, matchers)?);
        }
        Ok(out.into_iter().collect())
    }
}

struct MergeSeries<'a> {
    sets: Vec<Peekable<SeriesSet<'a>>>,
    ranges: Vec<(i64, i64)>,
}

impl<'a> Iterator for MergeSeries<'a> {
    type Item = Series<'a>;

    fn next(&mut self) -> Option<Series<'a>> {
        let mut best: Option<(usize, &crate::Labels)> = None;
        for (i, set) in self.sets.iter_mut().enumerate() {
            if let Some(s) = set.peek()
                && best.is_none_or(|(_, b)| s.labels < *b)
            {
                best = Some((i, &s.labels));
            }
        }
        let min = best.map(|b| b.0)?;
        let first = self.sets[min].next()?;
        // Parts in source order (the lowest-numbered source holds the minimum first), with
        // the source of each, for the disjointness check.
        let mut parts = vec![(min, first.samples)];
        let mut histograms = first.histograms;
        let mut start_timestamps = first.start_timestamps;
        for i in 0..self.sets.len() {
            while self.sets[i]
                .peek()
                .is_some_and(|s| s.labels == first.labels)
            {
                if let Some(s) = self.sets[i].next() {
                    parts.push((i, s.samples));
                    histograms = merge_histograms(histograms, s.histograms);
                    if !s.start_timestamps.is_empty() {
                        // First source wins at a shared timestamp, as for samples.
                        start_timestamps.extend(s.start_timestamps);
                        start_timestamps.sort_by_key(|x| x.0);
                        start_timestamps.dedup_by_key(|x| x.0);
                    }
                }
            }
        }
        let disjoint = !self.ranges.is_empty()
            && parts
                .windows(2)
                .all(|w| self.ranges[w[0].0].1 < self.ranges[w[1].0].0);
        let samples: Box<dyn SampleIterator + 'a> = if parts.len() == 1 {
            parts.pop()?.1
        } else if disjoint {
            Box::new(Concat {
                parts: parts.into_iter().map(|p| p.1).collect(),
                i: 0,
            })
        } else {
            Box::new(MergeSamples::new(
                parts.into_iter().map(|p| p.1.peekable()).collect(),
            ))
        };
        Some(Series {
            labels: first.labels,
            samples,
            histograms,
            start_timestamps,
        })
    }
}

/// Two time-ordered histogram lists as one; at a timestamp both hold, `a`'s sample wins.
fn merge_histograms(a: Vec<HistogramSample>, b: Vec<HistogramSample>) -> Vec<HistogramSample> {
    if b.is_empty() {
        return a;
    }
    if a.is_empty() {
        return b;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.t == y.t => {
                out.extend(a.next());
                b.next();
            }
            (Some(x), Some(y)) if x.t < y.t => out.extend(a.next()),
            (Some(_), Some(_)) => out.extend(b.next()),
            (Some(_), None) => out.extend(a.next()),
            (None, Some(_)) => out.extend(b.next()),
            (None, None) => return out,
        }
    }
}

/// The samples of one series from sources that are disjoint in time and in time order.
struct Concat<'a> {
    parts: Vec<Box<dyn SampleIterator + 'a>>,
    i: usize,
}

impl SampleIterator for Concat<'_> {
    fn drain_into(&mut self, out: &mut Vec<Sample>) {
        for p in self.parts.iter_mut().skip(self.i) {
            p.drain_into(out);
        }
        self.i = self.parts.len();
    }
}

impl Iterator for Concat<'_> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        loop {
            if let Some(s) = self.parts.get_mut(self.i)?.next() {
                return Some(s);
            }
            self.i += 1;
        }
    }
}

/// Merges the samples of one series from several sources by time; at equal timestamps the
/// earliest part wins and the others are skipped. Blocks rarely overlap, so it streams from
/// one part until that part reaches the next timestamp any other part holds (`bound`), and
/// only then compares across parts.
struct MergeSamples<'a> {
    parts: Vec<Peekable<Box<dyn SampleIterator + 'a>>>,
    cur: usize,
    /// The smallest next timestamp of the parts other than `cur`.
    bound: i64,
}

impl<'a> MergeSamples<'a> {
    fn new(parts: Vec<Peekable<Box<dyn SampleIterator + 'a>>>) -> Self {
        MergeSamples {
            parts,
            cur: 0,
            // Forces a full comparison on the first call.
            bound: i64::MIN,
        }
    }
}

impl SampleIterator for MergeSamples<'_> {}

impl Iterator for MergeSamples<'_> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        if let Some(s) = self.parts[self.cur].peek()
            && s.t < self.bound
        {
            return self.parts[self.cur].next();
        }
        let t = self
            .parts
            .iter_mut()
            .filter_map(|p| p.peek().map(|s| s.t))
            .min()?;
        let mut out = None;
        for (i, p) in self.parts.iter_mut().enumerate() {
            if p.peek().is_some_and(|s| s.t == t) {
                let s = p.next();
                if out.is_none() {
                    out = s;
                    self.cur = i;
                }
            }
        }
        let cur = self.cur;
        self.bound = self
            .parts
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| *i != cur)
            .filter_map(|(_, p)| p.peek().map(|s| s.t))
            .min()
            .unwrap_or(i64::MAX);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Labels;

    /// A querier over a fixed list of series (sorted by labels, as queriers return them).
    struct Fixed(Vec<(Labels, Vec<Sample>)>);

    impl Querier for Fixed {
        fn select(
            &self,
            matchers: &[Matcher],
            _hints: &SelectHints,
        ) -> Result<SeriesSet<'_>, StorageError> {
            let matchers = matchers.to_vec();
            Ok(Box::new(
                self.0
                    .iter()
                    .filter(move |(l, _)| {
                        matchers
                            .iter()
                            .all(|m| m.matches(l.get(&m.name).unwrap_or("")))
                    })
                    .map(|(l, s)| Series {
                        labels: l.clone(),
                        samples: Box::new(s.clone().into_iter()),
                        histograms: Vec::new(),
                        start_timestamps: Vec::new(),
                    }),
            ))
        }

        fn label_names(&self, _matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
            unimplemented!("not used by these tests")
        }

        fn label_values(
            &self,
            name: &str,
            _matchers: &[Matcher],
        ) -> Result<Vec<String>, StorageError> {
            let set: BTreeSet<String> = self
                .0
                .iter()
                .filter_map(|(l, _)| l.get(name).map(str::to_string))
                .collect();
            Ok(set.into_iter().collect())
        }
    }

    fn head_with(samples: &[(&str, i64, f64)]) -> Fixed {
        let mut by: std::collections::BTreeMap<Labels, Vec<Sample>> = Default::default();
        for &(name, t, v) in samples {
            by.entry(Labels::from_pairs([("__name__", name)]))
                .or_default()
                .push(Sample { t, v });
        }
        Fixed(by.into_iter().collect())
    }

    #[test]
    fn merges_series_and_dedups_samples() {
        let a = head_with(&[("x", 1, 1.0), ("x", 2, 2.0), ("z", 1, 9.0)]);
        let b = head_with(&[("x", 2, 20.0), ("x", 3, 3.0), ("y", 5, 5.0)]);
        let m = MergeQuerier {
            queriers: vec![Box::new(a), Box::new(b)],
            ranges: Vec::new(),
        };
        let got: Vec<(String, Vec<(i64, f64)>)> = m
            .select(
                &[Matcher::regex("__name__", ".+").unwrap()],
                &SelectHints { start: 0, end: 10 },
            )
            .unwrap()
            .map(|s| {
                (
                    s.labels.metric_name().unwrap().to_string(),
                    s.samples.map(|x| (x.t, x.v)).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("x".to_string(), vec![(1, 1.0), (2, 2.0), (3, 3.0)]),
                ("y".to_string(), vec![(5, 5.0)]),
                ("z".to_string(), vec![(1, 9.0)]),
            ]
        );
        assert_eq!(m.label_values("__name__", &[]).unwrap(), ["x", "y", "z"]);
    }

    proptest::proptest! {
        /// Against the obvious merge: every timestamp of any part once, in order, with the
        /// value of the first part that has it.
        #[test]
        fn merge_samples_equals_a_naive_merge(
            parts in proptest::collection::vec(
                proptest::collection::btree_set(0i64..200, 0..40), 1..5)
        ) {
            let mut want: std::collections::BTreeMap<i64, f64> = Default::default();
            for (i, ts) in parts.iter().enumerate() {
                for &t in ts {
                    want.entry(t).or_insert(i as f64);
                }
            }
            let iters = parts
                .iter()
                .enumerate()
                .map(|(i, ts)| {
                    let v: Vec<Sample> = ts.iter().map(|&t| Sample { t, v: i as f64 }).collect();
                    (Box::new(v.into_iter()) as Box<dyn SampleIterator>).peekable()
                })
                .collect();
            let got: Vec<(i64, f64)> = MergeSamples::new(iters).map(|s| (s.t, s.v)).collect();
            let want: Vec<(i64, f64)> = want.into_iter().collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
