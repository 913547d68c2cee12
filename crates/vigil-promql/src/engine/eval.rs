//! The evaluator: every AST node is evaluated once over all steps of the query.
//!
//! This is the shape of Prometheus' evaluator (`rangeEval`), chosen for the same reasons:
//! a selector is read from storage once for the whole range (plus lookback or range) and the
//! steps then walk in-memory sample slices with moving cursors; labels, grouping keys and
//! matching signatures are computed once per series, not once per step. An instant query is
//! a range query with one step. Results of vector-typed nodes are series whose points sit at
//! step timestamps; scalars are one value per step.

use crate::engine::EngineError;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;
use vigil_model::{
    HistogramSample, Labels, METRIC_NAME, Matcher, Queryable, Sample, SampleIterator, SelectHints,
    Timestamp, is_stale_nan,
};
use vigil_promql_parser::{At, Expr, SubqueryExpr, UnaryOp, VectorSelector};

pub(crate) type Result<T> = std::result::Result<T, EngineError>;

pub(crate) fn exec_err(msg: impl Into<String>) -> EngineError {
    EngineError::Execution(msg.into())
}

/// A histogram point: its time and the shared histogram.
pub(crate) type HPoint = HistogramSample;

/// One series of an intermediate result. `drop_name` defers the removal of `__name__` to the
/// end of the query (Prometheus 3's delayed name removal), so `label_replace` can keep it.
/// Float points and histogram points are kept apart, each in time order, as Prometheus keeps
/// `Floats` and `Histograms`; at one step a series has at most one of the two.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub labels: Labels,
    pub drop_name: bool,
    pub points: Vec<Sample>,
    pub hpoints: Vec<HPoint>,
    /// Start timestamps `(t, st)` of the samples that have one, as storage gave them (only
    /// with `--enable-feature=use-start-timestamps`; an evaluated expression has none).
    pub sts: Vec<(Timestamp, Timestamp)>,
}

/// What an instant selector yields at each step for the sample it picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pick {
    /// The sample.
    Value,
    /// Its timestamp in seconds (`timestamp()`).
    Timestamp,
    /// Its start timestamp in seconds, 0 when it has none (`start_timestamp()`).
    StartTimestamp,
}

impl Series {
    /// A float-only series.
    pub fn floats(labels: Labels, drop_name: bool, points: Vec<Sample>) -> Series {
        Series {
            labels,
            drop_name,
            points,
            hpoints: Vec::new(),
            sts: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty() && self.hpoints.is_empty()
    }

    /// Points of both kinds.
    pub fn len(&self) -> usize {
        self.points.len() + self.hpoints.len()
    }
}

/// A node's value over all steps.
pub(crate) enum Val {
    /// An instant vector: points at step timestamps.
    Vector(Vec<Series>),
    /// A range vector (only as the result of an instant query): raw samples.
    Matrix(Vec<Series>),
    /// One value per step.
    Scalar(Vec<f64>),
    Str(String),
}

/// A query's sample statistics (Prometheus' `totalQueryableSamples`, `samplesRead`,
/// `peakSamples`), counted by every part of a query split over threads.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub queryable: std::sync::atomic::AtomicU64,
    pub read: std::sync::atomic::AtomicU64,
    pub peak: AtomicUsize,
}

impl Counters {
    pub fn queryable(&self, n: usize) {
        self.queryable.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Per-query state shared by the evaluator and its sub-evaluators (subqueries).
pub(crate) struct Shared<'a> {
    pub db: &'a dyn Queryable,
    pub lookback: i64,
    pub query_start: Timestamp,
    pub query_end: Timestamp,
    /// The query's step in ms (0 for an instant query), for `step()` and `range()`.
    pub query_step: i64,
    max_samples: usize,
    /// Samples held now, shared by the parts of a query evaluated in parallel.
    samples: Arc<AtomicUsize>,
    /// Statistics, shared by the parts as well.
    pub counters: Arc<Counters>,
    deadline: Option<Instant>,
    cancel: Option<&'a AtomicBool>,
    checks: Cell<u32>,
    warnings: RefCell<Vec<String>>,
    infos: RefCell<Vec<String>>,
    pub default_subquery_step: i64,
    /// Selectors that read only histogram counts and sums (see `stats_only`).
    pub stats_only: std::collections::HashSet<usize>,
    /// Whether selectors read start timestamps (`EngineOptions::use_start_timestamps`).
    pub use_st: bool,
}

impl<'a> Shared<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: &'a dyn Queryable,
        lookback: i64,
        query_start: Timestamp,
        query_end: Timestamp,
        max_samples: usize,
        deadline: Option<Instant>,
        cancel: Option<&'a AtomicBool>,
        default_subquery_step: i64,
    ) -> Self {
        Shared {
            db,
            lookback,
            query_start,
            query_end,
            query_step: 0,
            max_samples,
            samples: Arc::new(AtomicUsize::new(0)),
            counters: Arc::new(Counters::default()),
            deadline,
            cancel,
            checks: Cell::new(0),
            warnings: RefCell::new(Vec::new()),
            infos: RefCell::new(Vec::new()),
            default_subquery_step: default_subquery_step.max(1),
            stats_only: Default::default(),
            use_st: false,
        }
    }

    /// Whether selectors read samples' start timestamps.
    pub fn with_start_timestamps(mut self, on: bool) -> Self {
        self.use_st = on;
        self
    }

    /// A sibling for one part of a query split over threads: same storage, limits, deadline
    /// and sample count; its own annotations (merged by the caller).
    pub fn part(&self) -> Shared<'a> {
        Shared {
            samples: self.samples.clone(),
            counters: self.counters.clone(),
            checks: Cell::new(0),
            warnings: RefCell::new(Vec::new()),
            infos: RefCell::new(Vec::new()),
            stats_only: self.stats_only.clone(),
            ..*self
        }
    }

    pub fn warn(&self, msg: String) {
        let mut w = self.warnings.borrow_mut();
        if !w.contains(&msg) {
            w.push(msg);
        }
    }

    pub fn info(&self, msg: String) {
        let mut w = self.infos.borrow_mut();
        if !w.contains(&msg) {
            w.push(msg);
        }
    }

    pub fn annotations(&self) -> (Vec<String>, Vec<String>) {
        (self.warnings.borrow().clone(), self.infos.borrow().clone())
    }

    /// Accounts `n` more samples in memory; fails over the limit.
    pub fn add_samples(&self, n: usize) -> Result<()> {
        let cur = self
            .samples
            .fetch_add(n, Ordering::Relaxed)
            .saturating_add(n);
        self.counters.peak.fetch_max(cur, Ordering::Relaxed);
        if cur > self.max_samples {
            return Err(EngineError::TooManySamples("query execution".into()));
        }
        Ok(())
    }

    pub fn max_samples(&self) -> usize {
        self.max_samples
    }

    pub fn release_samples(&self, n: usize) {
        // Never below zero: an aggregation releases each series it folds, which may have
        // been evaluated by a node that did not count it.
        let _ = self
            .samples
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(c.saturating_sub(n))
            });
    }

    /// Fails if the query was cancelled or ran out of time. Cheap: the clock is read only
    /// every few calls.
    pub fn check(&self) -> Result<()> {
        if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(EngineError::Cancelled("expression evaluation".into()));
        }
        let n = self.checks.get().wrapping_add(1);
        self.checks.set(n);
        if n % 64 == 1
            && let Some(d) = self.deadline
            && Instant::now() > d
        {
            return Err(EngineError::Timeout("expression evaluation".into()));
        }
        Ok(())
    }
}

/// An evaluator over the steps `start, start+interval, …, end`.
pub(crate) struct Ev<'a> {
    pub sh: &'a Shared<'a>,
    pub start: Timestamp,
    pub end: Timestamp,
    pub interval: i64,
}

/// Where a range function reads its windows from: a matrix selector's series (streamed from
/// storage one at a time by [`RangeSource::for_each`]) or a subquery's result, with the
/// timing of the window.
pub(crate) struct RangeSource<'e> {
    /// A subquery's evaluated series (empty for a matrix selector).
    series: Vec<Series>,
    pub range: i64,
    pub at: Option<Timestamp>,
    pub offset: i64,
    /// The selector, when the source is a matrix selector (for `absent_over_time` labels).
    pub selector: Option<&'e VectorSelector>,
    /// The inclusive time range a matrix selector reads.
    select: Option<(Timestamp, Timestamp)>,
}

impl RangeSource<'_> {
    /// Calls `f` with each series in label order. A matrix selector's samples (staleness
    /// markers removed) are decoded one series at a time and counted against
    /// `--query.max-samples` while `f` holds them.
    pub fn for_each(&self, ev: &Ev, mut f: impl FnMut(&Series) -> Result<()>) -> Result<()> {
        let (Some(vs), Some((mint, maxt))) = (self.selector, self.select) else {
            return self.series.iter().try_for_each(f);
        };
        ev.select_each(vs, mint, maxt, |labels, mut points, mut hpoints, sts| {
            points.retain(|s| !is_stale_nan(s.v));
            hpoints.retain(|s| !is_stale_nan(s.h.sum));
            if points.is_empty() && hpoints.is_empty() {
                return Ok(());
            }
            let n = points.len() + hpoints.iter().map(|h| histogram_size(&h.h)).sum::<usize>();
            ev.sh.add_samples(n)?;
            let res = f(&Series {
                labels,
                drop_name: false,
                points,
                hpoints,
                sts,
            });
            ev.sh.release_samples(n);
            res
        })
    }

    /// The inclusive end of the window evaluated at step `ts`.
    pub fn window_end(&self, ts: Timestamp) -> Timestamp {
        self.at.unwrap_or(ts) - self.offset
    }
}

/// `__name__` and the metadata labels that go with it (`__type__`, `__unit__`).
pub(crate) fn is_metadata_label(name: &str) -> bool {
    name == METRIC_NAME || name == "__type__" || name == "__unit__"
}

pub(crate) fn drop_metadata_labels(l: &Labels) -> Labels {
    if !l.iter().any(|x| is_metadata_label(&x.name)) {
        return l.clone();
    }
    let mut b = l.to_builder();
    b.retain(|x| !is_metadata_label(&x.name));
    b.build()
}

/// The matchers of a selector, with its metric name as a `__name__` matcher. A selector with
/// `or` between its matchers (`{a="1" or b="2"}`) has several sets: see
/// [`selector_matcher_sets`].
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>> {
    if !vs.or_matchers.is_empty() {
        return Err(EngineError::Parse(
            "'or' inside label matchers is not allowed here".into(),
        ));
    }
    Ok(vs.matchers.clone())
}

/// The alternative matcher sets of a selector: one, or one per `or` branch (`,` binds
/// tighter than `or`); a series matching any set is selected.
pub(crate) fn selector_matcher_sets(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>> {
    let mut sets = Vec::with_capacity(1 + vs.or_matchers.len());
    sets.push(vs.matchers.clone());
    sets.extend(vs.or_matchers.iter().cloned());
    Ok(sets)
}

/// Removes any parentheses around an expression.
pub(crate) fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// What a histogram sample counts against `--query.max-samples`, as Prometheus counts it:
/// its size as Go lays it out (168 bytes, 8 per span, bucket and custom bound), in units of
/// 16 bytes (a float sample's `FPoint`), rounded.
pub(crate) fn histogram_size(h: &vigil_model::histogram::FloatHistogram) -> usize {
    let n = h.positive_spans.len()
        + h.negative_spans.len()
        + h.positive_buckets.len()
        + h.negative_buckets.len()
        + h.custom().len();
    (168 + 8 * n + 8) / 16
}

/// The value of one point: a float or a native histogram.
#[derive(Debug, Clone)]
pub(crate) enum PV {
    F(f64),
    H(Arc<vigil_model::histogram::FloatHistogram>),
}

/// Per-series cursors that gather the points of one step from a set of series.
pub(crate) struct StepCursor {
    pos: Vec<usize>,
    hpos: Vec<usize>,
}

impl StepCursor {
    pub fn new(n: usize) -> Self {
        StepCursor {
            pos: vec![0; n],
            hpos: vec![0; n],
        }
    }

    /// Appends `(series index, value)` for every series with a point of either kind at `ts`,
    /// in series order. Steps must be visited in increasing order.
    pub fn gather_any(&mut self, series: &[Series], ts: Timestamp, out: &mut Vec<(usize, PV)>) {
        out.clear();
        for (i, s) in series.iter().enumerate() {
            let p = &mut self.pos[i];
            while *p < s.points.len() && s.points[*p].t < ts {
                *p += 1;
            }
            if *p < s.points.len() && s.points[*p].t == ts {
                out.push((i, PV::F(s.points[*p].v)));
                *p += 1;
                continue;
            }
            let h = &mut self.hpos[i];
            while *h < s.hpoints.len() && s.hpoints[*h].t < ts {
                *h += 1;
            }
            if *h < s.hpoints.len() && s.hpoints[*h].t == ts {
                out.push((i, PV::H(s.hpoints[*h].h.clone())));
                *h += 1;
            }
        }
    }

    /// Appends `(series index, value)` for every series with a point at `ts`. Steps must be
    /// visited in increasing order.
    pub fn gather(&mut self, series: &[Series], ts: Timestamp, out: &mut Vec<(usize, f64)>) {
        out.clear();
        for (i, s) in series.iter().enumerate() {
            let p = &mut self.pos[i];
            while *p < s.points.len() && s.points[*p].t < ts {
                *p += 1;
            }
            if *p < s.points.len() && s.points[*p].t == ts {
                out.push((i, s.points[*p].v));
                *p += 1;
            }
        }
    }
}

/// Collects output samples step by step into series. In range mode, outputs with the same
/// labels form one series and two at the same step are an error, as in Prometheus; callers
/// that know an output's identity pass a `key` so labels are built and hashed once.
pub(crate) struct OutBuilder {
    instant: bool,
    pub series: Vec<Series>,
    by_labels: HashMap<Labels, usize>,
    by_key: HashMap<u64, usize>,
}

impl OutBuilder {
    pub fn new(ev: &Ev) -> Self {
        OutBuilder {
            instant: ev.start == ev.end,
            series: Vec::new(),
            by_labels: HashMap::new(),
            by_key: HashMap::new(),
        }
    }

    fn add(&mut self, idx: usize, t: Timestamp, v: f64, drop_name: bool) -> Result<()> {
        let s = &mut self.series[idx];
        if s.points.last().is_some_and(|p| p.t == t) || s.hpoints.last().is_some_and(|p| p.t == t) {
            return Err(exec_err(
                "vector cannot contain metrics with the same labelset",
            ));
        }
        s.drop_name |= drop_name;
        s.points.push(Sample { t, v });
        Ok(())
    }

    pub fn push(&mut self, labels: Labels, drop_name: bool, t: Timestamp, v: f64) -> Result<()> {
        if self.instant {
            self.series
                .push(Series::floats(labels, drop_name, vec![Sample { t, v }]));
            return Ok(());
        }
        let idx = self.series_index(labels, drop_name);
        self.add(idx, t, v, drop_name)
    }

    /// Like `push`, for a histogram result.
    pub fn push_h(
        &mut self,
        labels: Labels,
        drop_name: bool,
        t: Timestamp,
        h: Arc<vigil_model::histogram::FloatHistogram>,
    ) -> Result<()> {
        let idx = if self.instant {
            self.series
                .push(Series::floats(labels, drop_name, Vec::new()));
            self.series.len() - 1
        } else {
            self.series_index(labels, drop_name)
        };
        let s = &mut self.series[idx];
        if s.points.last().is_some_and(|p| p.t == t) || s.hpoints.last().is_some_and(|p| p.t == t) {
            return Err(exec_err(
                "vector cannot contain metrics with the same labelset",
            ));
        }
        s.drop_name |= drop_name;
        s.hpoints.push(HPoint { t, h });
        Ok(())
    }

    /// Like `push_keyed`, for a point of either kind.
    pub fn push_keyed_pv(
        &mut self,
        key: u64,
        make: impl FnOnce() -> (Labels, bool),
        t: Timestamp,
        v: PV,
    ) -> Result<()> {
        match v {
            PV::F(f) => self.push_keyed(key, make, t, f),
            PV::H(h) => self.push_keyed_h(key, make, t, h),
        }
    }

    /// Like `push_keyed`, for a histogram result.
    pub fn push_keyed_h(
        &mut self,
        key: u64,
        make: impl FnOnce() -> (Labels, bool),
        t: Timestamp,
        h: Arc<vigil_model::histogram::FloatHistogram>,
    ) -> Result<()> {
        if self.instant {
            let (l, d) = make();
            return self.push_h(l, d, t, h);
        }
        let idx = self.keyed_index(key, make);
        let (l, d) = (self.series[idx].labels.clone(), self.series[idx].drop_name);
        self.push_h(l, d, t, h)
    }

    /// The output series for `key`, its labels built by `make` the first time `key` is seen.
    fn keyed_index(&mut self, key: u64, make: impl FnOnce() -> (Labels, bool)) -> usize {
        if let Some(&i) = self.by_key.get(&key) {
            return i;
        }
        let (labels, drop_name) = make();
        let idx = self.series_index(labels, drop_name);
        self.by_key.insert(key, idx);
        idx
    }

    /// The index of the output series with `labels`, created empty on first sight.
    fn series_index(&mut self, labels: Labels, drop_name: bool) -> usize {
        if let Some(&i) = self.by_labels.get(&labels) {
            return i;
        }
        self.series
            .push(Series::floats(labels.clone(), drop_name, Vec::new()));
        self.by_labels.insert(labels, self.series.len() - 1);
        self.series.len() - 1
    }

    /// Like `push`, with labels built by `make` only the first time `key` is seen.
    pub fn push_keyed(
        &mut self,
        key: u64,
        make: impl FnOnce() -> (Labels, bool),
        t: Timestamp,
        v: f64,
    ) -> Result<()> {
        if self.instant {
            let (l, d) = make();
            return self.push(l, d, t, v);
        }
        let idx = self.keyed_index(key, make);
        let d = self.series[idx].drop_name;
        self.add(idx, t, v, d)
    }

    pub fn finish(self) -> Vec<Series> {
        self.series
    }
}

impl<'a> Ev<'a> {
    pub fn new(sh: &'a Shared<'a>, start: Timestamp, end: Timestamp, interval: i64) -> Self {
        Ev {
            sh,
            start,
            end,
            interval: interval.max(1),
        }
    }

    pub fn steps(&self) -> usize {
        if self.end < self.start {
            return 0;
        }
        ((self.end - self.start) / self.interval) as usize + 1
    }

    pub fn ts(&self, i: usize) -> Timestamp {
        self.start + i as i64 * self.interval
    }

    pub fn is_instant(&self) -> bool {
        self.start == self.end
    }

    pub fn check(&self) -> Result<()> {
        self.sh.check()
    }

    /// The absolute time of an `@` modifier, `start()`/`end()` being the query's.
    pub fn at_ms(&self, at: &Option<At>) -> Option<Timestamp> {
        match at {
            None => None,
            Some(At::Start) => Some(self.sh.query_start),
            Some(At::End) => Some(self.sh.query_end),
            Some(At::Timestamp(t)) => Some(*t),
        }
    }

    pub fn eval(&self, e: &Expr) -> Result<Val> {
        self.check()?;
        match e {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; self.steps()])),
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Duration(d) => {
                let range = self.sh.query_end - self.sh.query_start;
                let v = d.eval(self.sh.query_step, range).map_err(exec_err)?;
                Ok(Val::Scalar(vec![v; self.steps()]))
            }
            Expr::Unary(u) if u.op == UnaryOp::Pos => self.eval(&u.expr),
            Expr::Unary(u) => match self.eval(&u.expr)? {
                Val::Scalar(mut v) => {
                    v.iter_mut().for_each(|x| *x = -*x);
                    Ok(Val::Scalar(v))
                }
                Val::Vector(mut ss) => {
                    for s in &mut ss {
                        s.drop_name = true;
                        s.points.iter_mut().for_each(|p| p.v = -p.v);
                        for p in &mut s.hpoints {
                            let mut h = vigil_model::histogram::FloatHistogram::clone(&p.h);
                            h.mul(-1.0);
                            p.h = Arc::new(h);
                        }
                    }
                    Ok(Val::Vector(ss))
                }
                _ => Err(exec_err(
                    "unary expression only allowed on expressions of type scalar or instant vector",
                )),
            },
            Expr::Binary(b) => crate::binary::eval_binary(self, b),
            Expr::Aggregate(a) => crate::aggregations::eval_aggregate(self, a),
            Expr::Call(c) => crate::functions::eval_call(self, c),
            Expr::VectorSelector(vs) => self.eval_vector_selector(vs, Pick::Value).map(Val::Vector),
            Expr::MatrixSelector(_) | Expr::Subquery(_) => {
                if !self.is_instant() {
                    return Err(exec_err(
                        "cannot do range evaluation of matrix selector or subquery",
                    ));
                }
                let src = self.range_source(e)?;
                let end = src.window_end(self.start);
                let mut out = Vec::new();
                if let Some(vs) = src
                    .selector
                    .filter(|vs| crate::functions::extended::is_extended(vs))
                {
                    let modifier = if vs.anchored { "anchored" } else { "smoothed" };
                    let (before, after) =
                        crate::functions::extended::widening(vs, self.sh.lookback);
                    let start = end - src.range;
                    src.for_each(self, |s| {
                        if !s.hpoints.is_empty() {
                            return Err(exec_err(format!(
                                "{modifier} modifier is not supported with histograms"
                            )));
                        }
                        let lo = s.points.partition_point(|p| p.t <= start - before);
                        let hi = s.points.partition_point(|p| p.t <= end + after);
                        let points = crate::functions::extended::extend_floats(
                            &s.points[lo..hi],
                            start,
                            end,
                            vs.smoothed,
                        );
                        if !points.is_empty() {
                            self.sh.add_samples(points.len())?;
                            out.push(Series {
                                labels: s.labels.clone(),
                                drop_name: s.drop_name,
                                points,
                                hpoints: Vec::new(),
                                sts: Vec::new(),
                            });
                        }
                        Ok(())
                    })?;
                    return Ok(Val::Matrix(out));
                }
                src.for_each(self, |s| {
                    let points: Vec<Sample> = s
                        .points
                        .iter()
                        .filter(|p| p.t > end - src.range && p.t <= end)
                        .copied()
                        .collect();
                    let hpoints: Vec<HPoint> = s
                        .hpoints
                        .iter()
                        .filter(|p| p.t > end - src.range && p.t <= end)
                        .cloned()
                        .collect();
                    if !points.is_empty() || !hpoints.is_empty() {
                        self.sh.add_samples(points.len() + hpoints.len())?;
                        out.push(Series {
                            labels: s.labels.clone(),
                            drop_name: s.drop_name,
                            points,
                            hpoints,
                            sts: Vec::new(),
                        });
                    }
                    Ok(())
                })?;
                Ok(Val::Matrix(out))
            }
        }
    }

    /// Evaluates `e` and requires an instant vector.
    pub fn eval_vector(&self, e: &Expr) -> Result<Vec<Series>> {
        match self.eval(e)? {
            Val::Vector(v) => Ok(v),
            _ => Err(exec_err("expected an instant vector")),
        }
    }

    /// Evaluates `e` and requires a scalar (one value per step).
    pub fn eval_scalar(&self, e: &Expr) -> Result<Vec<f64>> {
        match self.eval(e)? {
            Val::Scalar(v) => Ok(v),
            _ => Err(exec_err("expected a scalar")),
        }
    }

    /// Streams the series `vs` selects within `[mint, maxt]` to `f`, one at a time and in label
    /// order, so only one series' raw samples are decoded at once: a selection over millions
    /// of samples costs the memory of its largest series plus what the caller keeps.
    fn select_each(
        &self,
        vs: &VectorSelector,
        mint: Timestamp,
        maxt: Timestamp,
        mut f: impl FnMut(Labels, Vec<Sample>, Vec<HPoint>, Vec<(Timestamp, Timestamp)>) -> Result<()>,
    ) -> Result<()> {
        let sets = selector_matcher_sets(vs)?;
        let q = self.sh.db.querier(mint, maxt)?;
        let hints = SelectHints {
            start: mint,
            end: maxt,
        };
        let set: vigil_model::SeriesSet<'_> = if sets.len() == 1 {
            q.select(&sets[0], &hints)?
        } else {
            // `or` between matchers: the union of the sets' series, in label order, each once.
            let mut all = std::collections::BTreeMap::new();
            for m in &sets {
                for s in q.select(m, &hints)? {
                    all.entry(s.labels.clone()).or_insert(s);
                }
            }
            Box::new(all.into_values())
        };
        for mut s in set {
            self.check()?;
            let mut samples = Vec::new();
            s.samples.drain_into(&mut samples);
            // Storage keeps to the hints already; trim in case a source does not.
            let hi = samples.partition_point(|x| x.t <= maxt);
            samples.truncate(hi);
            let lo = samples.partition_point(|x| x.t < mint);
            samples.drain(..lo);
            self.sh.counters.read.fetch_add(
                (samples.len() + s.histograms.len()) as u64,
                Ordering::Relaxed,
            );
            let mut hs = std::mem::take(&mut s.histograms);
            if !hs.is_empty()
                && self
                    .sh
                    .stats_only
                    .contains(&(vs as *const VectorSelector as usize))
            {
                hs = super::stats_only::strip(hs);
            }
            hs.retain(|x| x.t >= mint && x.t <= maxt);
            let sts = if self.sh.use_st {
                std::mem::take(&mut s.start_timestamps)
            } else {
                Vec::new()
            };
            if !samples.is_empty() || !hs.is_empty() {
                f(s.labels, samples, hs, sts)?;
            }
        }
        Ok(())
    }

    /// An instant vector selector over all steps: per step, the newest sample in the
    /// left-open window `(t - lookback, t]`, unless it is a staleness marker. With
    /// `timestamps`, the value is the sample's own timestamp in seconds (for `timestamp()`).
    pub fn eval_vector_selector(&self, vs: &VectorSelector, pick: Pick) -> Result<Vec<Series>> {
        let mut out = Vec::new();
        self.vector_selector_each(vs, pick, &mut |s| {
            out.push(s);
            Ok(())
        })?;
        Ok(out)
    }

    /// Evaluates an instant-vector expression and hands its series to `f` one at a time:
    /// selectors and functions over range vectors as each series is computed (so an
    /// aggregation over them holds one input series at a time), anything else after it is
    /// evaluated whole. The order is the order of [`Ev::eval_vector`].
    pub fn eval_vector_each(
        &self,
        e: &Expr,
        f: &mut dyn FnMut(Series) -> Result<()>,
    ) -> Result<()> {
        self.check()?;
        match unwrap_parens(e) {
            Expr::VectorSelector(vs) => self.vector_selector_each(vs, Pick::Value, f),
            Expr::Call(c) if crate::functions::takes_range_vector(c) => {
                crate::functions::eval_range_call_each(self, c, f)
            }
            e => self.eval_vector(e)?.into_iter().try_for_each(f),
        }
    }

    fn vector_selector_each(
        &self,
        vs: &VectorSelector,
        pick: Pick,
        f: &mut dyn FnMut(Series) -> Result<()>,
    ) -> Result<()> {
        let timestamps = pick == Pick::Timestamp;
        let at = self.at_ms(&vs.at);
        let off = crate::engine::prepare::ms(&vs.offset);
        let (lo, hi) = match at {
            Some(a) => (a - off, a - off),
            None => (self.start - off, self.end - off),
        };
        let lookback = self.sh.lookback;
        let steps = self.steps();
        if vs.smoothed {
            return self.select_each(
                vs,
                lo - lookback + 1,
                hi + lookback,
                |labels, mut fs, mut hs, _| {
                    fs.retain(|s| !is_stale_nan(s.v));
                    hs.retain(|s| !is_stale_nan(s.h.sum));
                    let metric = labels.get(METRIC_NAME).unwrap_or("").to_string();
                    let notes = crate::functions::hrange::Notes {
                        ev: self,
                        metric: &metric,
                    };
                    let (mut pts, hpts) = crate::functions::extended::smooth_series(
                        self,
                        &fs,
                        &hs,
                        |ts| at.unwrap_or(ts) - off,
                        &notes,
                    );
                    if timestamps {
                        // `timestamp()` of a smoothed selector: the step's own time.
                        pts.iter_mut().for_each(|p| p.v = p.t as f64 / 1000.0);
                    }
                    if pts.is_empty() && hpts.is_empty() {
                        return Ok(());
                    }
                    self.sh.counters.queryable(pts.len() + hpts.len());
                    self.sh.add_samples(
                        pts.len() + hpts.iter().map(|h| histogram_size(&h.h)).sum::<usize>(),
                    )?;
                    f(Series {
                        labels,
                        drop_name: false,
                        points: pts,
                        hpoints: hpts,
                        sts: Vec::new(),
                    })
                },
            );
        }
        self.select_each(
            vs,
            lo - lookback + 1,
            hi,
            |labels, samples, hsamples, sts| {
                // `start_timestamp()`: the picked sample's start time (0 when it has none).
                let st_of = |t: i64| -> f64 {
                    sts.binary_search_by_key(&t, |x| x.0)
                        .map_or(0.0, |i| sts[i].1 as f64 / 1000.0)
                };
                let mut pts = Vec::new();
                let mut hpts = Vec::new();
                let (mut j, mut k) = (0, 0);
                for i in 0..steps {
                    let ts = self.ts(i);
                    let r = at.unwrap_or(ts) - off;
                    while j < samples.len() && samples[j].t <= r {
                        j += 1;
                    }
                    while k < hsamples.len() && hsamples[k].t <= r {
                        k += 1;
                    }
                    // The newer of the last float and the last histogram sample.
                    let ft = (j > 0).then(|| samples[j - 1].t);
                    let ht = (k > 0).then(|| hsamples[k - 1].t);
                    match (ft, ht) {
                        (None, None) => continue,
                        (Some(f), h) if h.is_none_or(|h| f > h) => {
                            let s = samples[j - 1];
                            if s.t <= r - lookback || is_stale_nan(s.v) {
                                continue;
                            }
                            let v = match pick {
                                Pick::Value => s.v,
                                Pick::Timestamp => s.t as f64 / 1000.0,
                                Pick::StartTimestamp => st_of(s.t),
                            };
                            pts.push(Sample { t: ts, v });
                        }
                        _ => {
                            let s = &hsamples[k - 1];
                            if s.t <= r - lookback || is_stale_nan(s.h.sum) {
                                continue;
                            }
                            if pick == Pick::StartTimestamp {
                                pts.push(Sample {
                                    t: ts,
                                    v: st_of(s.t),
                                });
                            } else if timestamps {
                                pts.push(Sample {
                                    t: ts,
                                    v: s.t as f64 / 1000.0,
                                });
                            } else {
                                hpts.push(HPoint {
                                    t: ts,
                                    h: s.h.clone(),
                                });
                            }
                        }
                    }
                }
                if pts.is_empty() && hpts.is_empty() {
                    return Ok(());
                }
                self.sh.counters.queryable(pts.len() + hpts.len());
                self.sh.add_samples(
                    pts.len() + hpts.iter().map(|h| histogram_size(&h.h)).sum::<usize>(),
                )?;
                f(Series {
                    labels,
                    drop_name: false,
                    points: pts,
                    hpoints: hpts,
                    sts: Vec::new(),
                })
            },
        )
    }

    /// Loads the series a range function reads: a matrix selector's samples (staleness
    /// markers removed) over the whole query range, or a subquery's result.
    pub fn range_source<'e>(&self, e: &'e Expr) -> Result<RangeSource<'e>> {
        match unwrap_parens(e) {
            Expr::MatrixSelector(ms) => {
                let vs = &ms.vs;
                let range = crate::engine::prepare::ms(&ms.range);
                let at = self.at_ms(&vs.at);
                let off = crate::engine::prepare::ms(&vs.offset);
                let (lo, hi) = match at {
                    Some(a) => (a - off, a - off),
                    None => (self.start - off, self.end - off),
                };
                let (before, after) = crate::functions::extended::widening(vs, self.sh.lookback);
                Ok(RangeSource {
                    series: Vec::new(),
                    range,
                    at,
                    offset: off,
                    selector: Some(vs),
                    select: Some((lo - range + 1 - before, hi + after)),
                })
            }
            Expr::Subquery(sq) => {
                let series = self.eval_subquery(sq)?;
                Ok(RangeSource {
                    series,
                    range: crate::engine::prepare::ms(&sq.range),
                    at: self.at_ms(&sq.at),
                    offset: crate::engine::prepare::ms(&sq.offset),
                    selector: None,
                    select: None,
                })
            }
            _ => Err(exec_err("expected a range vector")),
        }
    }

    /// Evaluates a subquery's inner expression once, over steps aligned to its step (as
    /// Prometheus aligns them: multiples of the step, the first after `start - offset - range`).
    fn eval_subquery(&self, sq: &SubqueryExpr) -> Result<Vec<Series>> {
        let at = self.at_ms(&sq.at);
        let off = crate::engine::prepare::ms(&sq.offset);
        let range = crate::engine::prepare::ms(&sq.range);
        let step = match sq.step.as_ref().map(crate::engine::prepare::ms) {
            Some(ms) if ms > 0 => ms,
            _ => self.sh.default_subquery_step,
        };
        let (s, e) = match at {
            Some(a) => (a - off, a - off),
            None => (self.start - off, self.end - off),
        };
        let mut sub_start = step * ((s - range) / step);
        if sub_start <= s - range {
            sub_start += step;
        }
        let sub = Ev::new(self.sh, sub_start, e, step);
        if sub.steps() == 0 {
            return Ok(Vec::new());
        }
        // Each step of the inner evaluation holds at least one value (a scalar holds exactly
        // one), so more steps than `--query.max-samples` can never finish; refuse before
        // allocating them rather than after.
        if sub.steps() > self.sh.max_samples() {
            return Err(EngineError::TooManySamples("query execution".into()));
        }
        match sub.eval(&sq.expr)? {
            Val::Vector(mut v) => {
                // Prometheus forgets "reset" and "no reset" hints of a subquery's histograms:
                // its steps may skip the sample that reset, or repeat it.
                for s in &mut v {
                    for p in &mut s.hpoints {
                        use vigil_model::histogram::CounterResetHint as H;
                        if matches!(p.h.counter_reset_hint, H::NotCounterReset | H::CounterReset) {
                            let mut h = vigil_model::histogram::FloatHistogram::clone(&p.h);
                            h.counter_reset_hint = H::Unknown;
                            p.h = Arc::new(h);
                        }
                    }
                }
                Ok(v)
            }
            Val::Scalar(v) => Ok(vec![Series::floats(
                Labels::empty(),
                false,
                v.iter()
                    .enumerate()
                    .map(|(i, &v)| Sample { t: sub.ts(i), v })
                    .collect(),
            )]),
            _ => Err(exec_err("subquery is only allowed on instant vectors")),
        }
    }
}
