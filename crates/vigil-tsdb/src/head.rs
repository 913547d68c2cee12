//! The in-memory head: the series map, the postings index and per-series samples.

use ahash::AHashMap;
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use vigil_model::{
    AppendError, Appendable, Appender, Labels, MatchOp, Matcher, Querier, Queryable, Sample,
    SelectHints, Series, SeriesRef, SeriesSet, StorageError, Timestamp, is_stale_nan,
};

#[derive(Debug, Clone, Default)]
pub struct HeadOptions {
    /// Samples older than this (relative to the newest sample) are dropped; 0 keeps all.
    pub retention_ms: i64,
}

/// Counters the binary exports as Prometheus-named self-metrics.
#[derive(Debug, Default)]
pub struct HeadStats {
    pub samples_appended: AtomicU64,
    pub out_of_order_samples: AtomicU64,
    pub series_created: AtomicU64,
}

struct MemSeries {
    labels: Labels,
    samples: Mutex<Vec<Sample>>,
}

#[derive(Default)]
struct Index {
    by_labels: AHashMap<Labels, SeriesRef>,
    series: Vec<Arc<MemSeries>>,
    /// name → value → sorted series refs.
    postings: BTreeMap<String, BTreeMap<String, Vec<SeriesRef>>>,
}

/// The head block: everything appended and not yet cut into on-disk blocks.
pub struct Head {
    index: RwLock<Index>,
    opts: HeadOptions,
    pub stats: HeadStats,
    max_time: AtomicU64,
}

impl Head {
    pub fn new(opts: HeadOptions) -> Self {
        Head {
            index: RwLock::new(Index::default()),
            opts,
            stats: HeadStats::default(),
            max_time: AtomicU64::new(0),
        }
    }

    pub fn num_series(&self) -> usize {
        self.index.read().series.len()
    }

    /// Finds or creates the series for `labels`.
    fn get_or_create(&self, labels: &Labels) -> SeriesRef {
        if let Some(r) = self.index.read().by_labels.get(labels) {
            return *r;
        }
        let mut idx = self.index.write();
        if let Some(r) = idx.by_labels.get(labels) {
            return *r;
        }
        let r = idx.series.len() as SeriesRef;
        idx.series.push(Arc::new(MemSeries {
            labels: labels.clone(),
            samples: Mutex::new(Vec::new()),
        }));
        idx.by_labels.insert(labels.clone(), r);
        for l in labels {
            // Refs grow monotonically, so pushing keeps each postings list sorted.
            idx.postings
                .entry(l.name.clone())
                .or_default()
                .entry(l.value.clone())
                .or_default()
                .push(r);
        }
        self.stats.series_created.fetch_add(1, Ordering::Relaxed);
        r
    }

    /// Drops samples older than the retention window. Series stay indexed (an empty series is
    /// simply never returned); the real TSDB garbage-collects them with the WAL checkpoint.
    pub fn truncate_old(&self) {
        if self.opts.retention_ms <= 0 {
            return;
        }
        let cutoff = self.max_time.load(Ordering::Relaxed) as i64 - self.opts.retention_ms;
        let all: Vec<_> = self.index.read().series.clone();
        for s in all {
            let mut samples = s.samples.lock();
            let keep_from = samples.partition_point(|x| x.t < cutoff);
            samples.drain(..keep_from);
        }
    }

    /// Refs of series matching every matcher, sorted by labels.
    fn matching(&self, matchers: &[Matcher]) -> Vec<Arc<MemSeries>> {
        let idx = self.index.read();
        // Start from the smallest equality postings list, if any; else scan everything.
        let mut candidates: Option<Vec<SeriesRef>> = None;
        for m in matchers {
            if let MatchOp::Equal = m.op {
                if m.value.is_empty() {
                    continue;
                }
                let list = idx
                    .postings
                    .get(&m.name)
                    .and_then(|v| v.get(&m.value))
                    .cloned()
                    .unwrap_or_default();
                candidates = Some(match candidates {
                    None => list,
                    Some(c) => intersect(&c, &list),
                });
            }
        }
        let candidates = candidates.unwrap_or_else(|| (0..idx.series.len() as SeriesRef).collect());
        let mut out: Vec<Arc<MemSeries>> = candidates
            .into_iter()
            .map(|r| idx.series[r as usize].clone())
            .filter(|s| {
                matchers
                    .iter()
                    .all(|m| m.matches(s.labels.get(&m.name).unwrap_or("")))
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }
}

fn intersect(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

impl Appendable for Head {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(HeadAppender {
            head: self,
            pending: Vec::new(),
        })
    }
}

struct HeadAppender<'h> {
    head: &'h Head,
    pending: Vec<(SeriesRef, Sample)>,
}

impl Appender for HeadAppender<'_> {
    fn append(
        &mut self,
        cached: Option<SeriesRef>,
        labels: &Labels,
        t: Timestamp,
        v: f64,
    ) -> Result<SeriesRef, AppendError> {
        let r = match cached {
            Some(r) if (r as usize) < self.head.index.read().series.len() => r,
            _ => {
                if labels.is_empty() {
                    return Err(AppendError::EmptyLabels);
                }
                self.head.get_or_create(labels)
            }
        };
        self.pending.push((r, Sample { t, v }));
        Ok(r)
    }

    fn commit(self: Box<Self>) -> Result<(), StorageError> {
        let series: Vec<Arc<MemSeries>> = {
            let idx = self.head.index.read();
            self.pending
                .iter()
                .map(|(r, _)| idx.series[*r as usize].clone())
                .collect()
        };
        let mut max_t = 0i64;
        for (s, (_, sample)) in series.iter().zip(&self.pending) {
            let mut samples = s.samples.lock();
            match samples.last() {
                Some(last) if sample.t < last.t => {
                    self.head
                        .stats
                        .out_of_order_samples
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                // Same timestamp: Prometheus ignores an identical value and refuses another.
                Some(last) if sample.t == last.t => {
                    if last.v.to_bits() != sample.v.to_bits() && !is_stale_nan(sample.v) {
                        self.head
                            .stats
                            .out_of_order_samples
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                _ => samples.push(*sample),
            }
            max_t = max_t.max(sample.t);
            self.head
                .stats
                .samples_appended
                .fetch_add(1, Ordering::Relaxed);
        }
        self.head
            .max_time
            .fetch_max(max_t.max(0) as u64, Ordering::Relaxed);
        Ok(())
    }

    fn rollback(self: Box<Self>) {}
}

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

struct HeadQuerier<'h> {
    head: &'h Head,
    mint: Timestamp,
    maxt: Timestamp,
}

impl HeadQuerier<'_> {
    /// Series with at least one sample in the querier's range.
    fn live(&self, matchers: &[Matcher]) -> impl Iterator<Item = Arc<MemSeries>> + '_ {
        let (mint, maxt) = (self.mint, self.maxt);
        self.head.matching(matchers).into_iter().filter(move |s| {
            let samples = s.samples.lock();
            let i = samples.partition_point(|x| x.t < mint);
            i < samples.len() && samples[i].t <= maxt
        })
    }
}

impl Querier for HeadQuerier<'_> {
    fn select(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<SeriesSet<'_>, StorageError> {
        let (start, end) = (hints.start.max(self.mint), hints.end.min(self.maxt));
        let out = self
            .head
            .matching(matchers)
            .into_iter()
            .filter_map(move |s| {
                // Copy the range out under the lock: appends continue while the query runs.
                let samples = s.samples.lock();
                let lo = samples.partition_point(|x| x.t < start);
                let hi = samples.partition_point(|x| x.t <= end);
                if lo >= hi {
                    return None;
                }
                let range: Vec<Sample> = samples[lo..hi].to_vec();
                drop(samples);
                Some(Series {
                    labels: s.labels.clone(),
                    samples: Box::new(range.into_iter()),
                })
            });
        Ok(Box::new(out))
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let mut names = std::collections::BTreeSet::new();
        for s in self.live(matchers) {
            for l in &s.labels {
                if !names.contains(&l.name) {
                    names.insert(l.name.clone());
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let mut values = std::collections::BTreeSet::new();
        for s in self.live(matchers) {
            if let Some(v) = s.labels.get(name) {
                values.insert(v.to_string());
            }
        }
        Ok(values.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lbl(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    fn append(head: &Head, labels: &Labels, t: i64, v: f64) {
        let mut a = head.appender();
        a.append(None, labels, t, v).unwrap();
        a.commit().unwrap();
    }

    fn select(head: &Head, ms: &[Matcher]) -> Vec<(Labels, Vec<Sample>)> {
        let q = head.querier(i64::MIN, i64::MAX).unwrap();
        q.select(
            ms,
            &SelectHints {
                start: i64::MIN,
                end: i64::MAX,
            },
        )
        .unwrap()
        .map(|s| (s.labels, s.samples.collect()))
        .collect()
    }

    #[test]
    fn appends_are_invisible_until_commit() {
        let head = Head::new(HeadOptions::default());
        let l = lbl(&[("__name__", "up"), ("job", "a")]);
        let mut a = head.appender();
        a.append(None, &l, 1000, 1.0).unwrap();
        assert!(select(&head, &[Matcher::equal("__name__", "up")]).is_empty());
        a.commit().unwrap();
        let got = select(&head, &[Matcher::equal("__name__", "up")]);
        assert_eq!(got, vec![(l, vec![Sample { t: 1000, v: 1.0 }])]);
    }

    #[test]
    fn rollback_discards() {
        let head = Head::new(HeadOptions::default());
        let mut a = head.appender();
        a.append(None, &lbl(&[("__name__", "x")]), 1, 1.0).unwrap();
        a.rollback();
        assert!(select(&head, &[Matcher::equal("__name__", "x")]).is_empty());
    }

    #[test]
    fn out_of_order_is_dropped_and_counted() {
        let head = Head::new(HeadOptions::default());
        let l = lbl(&[("__name__", "x")]);
        append(&head, &l, 2000, 1.0);
        append(&head, &l, 1000, 2.0);
        append(&head, &l, 2000, 3.0);
        append(&head, &l, 3000, 4.0);
        let got = select(&head, &[Matcher::equal("__name__", "x")]);
        assert_eq!(
            got[0].1,
            vec![Sample { t: 2000, v: 1.0 }, Sample { t: 3000, v: 4.0 }]
        );
        assert_eq!(head.stats.out_of_order_samples.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn matchers_select_and_labels_list() {
        let head = Head::new(HeadOptions::default());
        for (job, inst) in [("a", "1"), ("a", "2"), ("b", "1")] {
            append(
                &head,
                &lbl(&[("__name__", "up"), ("job", job), ("instance", inst)]),
                10,
                1.0,
            );
        }
        let re = Matcher::regex("job", "a|c").unwrap();
        assert_eq!(
            select(&head, &[Matcher::equal("__name__", "up"), re]).len(),
            2
        );
        let ne = Matcher::not_equal("instance", "1");
        assert_eq!(
            select(&head, &[Matcher::equal("__name__", "up"), ne]).len(),
            1
        );
        let q = head.querier(0, 100).unwrap();
        assert_eq!(q.label_values("job", &[]).unwrap(), ["a", "b"]);
        assert_eq!(
            q.label_names(&[Matcher::equal("job", "b")]).unwrap(),
            ["__name__", "instance", "job"]
        );
    }

    #[test]
    fn retention_truncates_old_samples() {
        let head = Head::new(HeadOptions { retention_ms: 1000 });
        let l = lbl(&[("__name__", "x")]);
        for t in [0, 500, 1000, 1500, 2000] {
            append(&head, &l, t, 1.0);
        }
        head.truncate_old();
        let got = select(&head, &[Matcher::equal("__name__", "x")]);
        assert_eq!(
            got[0].1.iter().map(|s| s.t).collect::<Vec<_>>(),
            [1000, 1500, 2000]
        );
    }
}
