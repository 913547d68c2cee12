//! The engine's public face: options, errors, limits and the instant/range entry points.
//!
//! Evaluation itself lives in [`eval`]: like Prometheus it evaluates every AST node once over
//! the whole query range (all steps at a time), so each selector is read from storage once
//! and steps are then walked over in-memory sample slices. This module only parses, checks
//! types, sets up the per-query limits (samples, deadline, cancellation) and turns the
//! evaluator's step-wise result into the API's [`Value`].

pub(crate) mod eval;
pub(crate) mod prepare;
mod stats_only;

use crate::value::{RangeSeries, Value, VectorSample};
use eval::{Ev, Series, Shared, Val};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use vigil_model::{Matcher, Queryable, StorageError, Timestamp};
use vigil_promql_parser::{AggOp, Expr, ValueType};

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (`--query.lookback-delta`).
    pub lookback_delta_ms: i64,
    /// Most points a range query may return per series (Prometheus: 11,000).
    pub max_points_per_series: i64,
    /// Most samples a query may hold in memory at once (`--query.max-samples`).
    pub max_samples: usize,
    /// Wall-clock limit of one query (`--query.timeout`); `None` for no limit.
    pub timeout: Option<Duration>,
    /// Step of a subquery written without one (`[5m:]`): the global evaluation interval.
    pub default_subquery_step_ms: i64,
    /// Most queries evaluated at once (`--query.max-concurrency`), shared by every engine
    /// built from clones of these options; further queries wait for a slot (the wait counts
    /// against `timeout`: "query timed out in query queue"). `None`: no limit.
    pub max_concurrency: Option<QueryGate>,
    /// Threads one range query may use (`--query.parallelism`): its steps are split into
    /// that many contiguous parts, evaluated at once. Every step of PromQL is evaluated
    /// independently of the others, so the parts' results joined are the whole query's.
    pub parallelism: usize,
    /// Fewest steps worth a thread of their own (30): below this, selecting the same series
    /// once more costs more than the split saves. Tests lower it to split tiny queries.
    pub min_steps_per_part: usize,
    /// Read samples' start timestamps (`--enable-feature=use-start-timestamps`, off by
    /// default as in Prometheus 3.14): `rate`, `increase`, `irate` and `resets` then count a
    /// start timestamp after the previous sample as a reset, and `start_timestamp()` answers.
    pub use_start_timestamps: bool,
}

/// A counting semaphore limiting concurrent queries; clones share the slots.
#[derive(Debug, Clone)]
pub struct QueryGate(Arc<(std::sync::Mutex<usize>, std::sync::Condvar, usize)>);

impl QueryGate {
    /// A gate with `max` slots (at least 1).
    pub fn new(max: usize) -> Self {
        QueryGate(Arc::new((
            std::sync::Mutex::new(0),
            std::sync::Condvar::new(),
            max.max(1),
        )))
    }

    /// Queries running now.
    pub fn active(&self) -> usize {
        *self.0.0.lock().unwrap()
    }

    /// Slots in all.
    pub fn max(&self) -> usize {
        self.0.2
    }

    /// Waits for a free slot until `deadline`, giving up if `cancel` is set.
    pub(crate) fn acquire(
        &self,
        deadline: Option<Instant>,
        cancel: Option<&Cancel>,
    ) -> Result<GateSlot, EngineError> {
        let (lock, cv, max) = &*self.0;
        let mut n = lock.lock().unwrap();
        while *n >= *max {
            if cancel.is_some_and(|c| c.is_cancelled()) {
                return Err(EngineError::Cancelled("query queue".into()));
            }
            let mut wait = Duration::from_millis(50);
            if let Some(d) = deadline {
                let now = Instant::now();
                if now >= d {
                    return Err(EngineError::Timeout("query queue".into()));
                }
                wait = wait.min(d - now);
            }
            n = cv.wait_timeout(n, wait).unwrap().0;
        }
        *n += 1;
        Ok(GateSlot(self.clone()))
    }
}

/// A held query slot, released on drop.
pub(crate) struct GateSlot(QueryGate);

impl Drop for GateSlot {
    fn drop(&mut self) {
        let (lock, cv, _) = &*self.0.0;
        *lock.lock().unwrap() -= 1;
        cv.notify_one();
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 5 * 60 * 1000,
            max_points_per_series: 11_000,
            max_samples: 50_000_000,
            timeout: Some(Duration::from_secs(120)),
            default_subquery_step_ms: 60_000,
            max_concurrency: None,
            parallelism: std::thread::available_parallelism().map_or(1, |n| n.get()),
            min_steps_per_part: 30,
            use_start_timestamps: false,
        }
    }
}

/// Errors, split as the API reports them: `Parse` is `bad_data`, the limits have their own
/// kinds, the rest is `execution`.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Parse(String),
    #[error("{0}")]
    Execution(String),
    #[error("{0}")]
    Storage(#[from] StorageError),
    /// The query ran longer than [`EngineOptions::timeout`].
    #[error("query timed out in {0}")]
    Timeout(String),
    /// The query was cancelled through its [`Cancel`] handle.
    #[error("query was canceled in {0}")]
    Cancelled(String),
    /// The query would hold more than [`EngineOptions::max_samples`] samples.
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(String),
}

/// A handle to cancel running queries: clone it, pass it in, call [`Cancel::cancel`].
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A result with Prometheus' annotations (`warnings` and `infos` of the API response) and the
/// query's statistics (the API's `stats`).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOutput {
    pub value: Value,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
    pub stats: QueryStats,
}

/// Prometheus' query statistics: timings in seconds and sample counts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueryStats {
    /// Waiting for a query slot (`--query.max-concurrency`).
    pub exec_queue_time: f64,
    /// Parsing and preparing the query.
    pub query_preparation_time: f64,
    /// Evaluating the expression.
    pub inner_eval_time: f64,
    /// Sorting the result.
    pub result_sort_time: f64,
    /// Evaluation with preparation and sorting.
    pub eval_total_time: f64,
    /// From the request to the result.
    pub exec_total_time: f64,
    /// Samples the evaluation looked at, summed over steps (a sample in ten steps' windows
    /// counts ten times): Prometheus' `totalQueryableSamples`.
    pub total_queryable_samples: u64,
    /// Samples read from storage, each once.
    pub samples_read: u64,
    /// Most samples held in memory at once.
    pub peak_samples: u64,
}

pub struct Engine {
    opts: EngineOptions,
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Self {
        Engine { opts }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Parses `query`; a syntax error carries its position as Prometheus prints it
    /// (`1:6: parse error: unexpected end of input`).
    pub fn parse(&self, query: &str) -> Result<Expr, EngineError> {
        vigil_promql_parser::parse(query).map_err(|e| EngineError::Parse(e.to_string()))
    }

    /// Parses a series selector (`match[]` of the metadata endpoints) into matchers.
    pub fn selector_matchers(&self, selector: &str) -> Result<Vec<Matcher>, EngineError> {
        match self.parse(selector)? {
            Expr::VectorSelector(vs) => {
                let ms = eval::selector_matchers(&vs)?;
                if ms.iter().all(|m| m.matches_empty()) {
                    return Err(EngineError::Parse(
                        "match[] must contain at least one non-empty matcher".into(),
                    ));
                }
                Ok(ms)
            }
            _ => Err(EngineError::Parse(format!(
                "invalid parameter \"match[]\": {selector:?} is not a series selector"
            ))),
        }
    }

    /// Evaluates `query` at `t` (ms). Vectors come back sorted by label set, except where the
    /// outermost operation defines an order (`sort*`, `topk`, `bottomk`).
    pub fn instant(
        &self,
        db: &dyn Queryable,
        query: &str,
        t: Timestamp,
    ) -> Result<Value, EngineError> {
        Ok(self.instant_query_sorted(db, query, t, None)?.value)
    }

    /// [`Engine::instant_query`] as the API answers it: a vector comes back sorted by label
    /// set, except where the outermost operation defines an order (`sort*`, `topk`, `bottomk`).
    pub fn instant_query_sorted(
        &self,
        db: &dyn Queryable,
        query: &str,
        t: Timestamp,
        cancel: Option<&Cancel>,
    ) -> Result<QueryOutput, EngineError> {
        let started = Instant::now();
        let parsed = self.parse(query)?;
        let resolved = prepare::resolve_durations(&parsed, 0, 0)?;
        let expr = resolved.as_ref().unwrap_or(&parsed);
        let prepared = started.elapsed();
        let mut out = self.exec_instant(db, expr, t, cancel)?;
        let sorting = Instant::now();
        if let Value::Vector(v) = &mut out.value
            && !order_defined(expr)
        {
            v.sort_by(|a, b| a.labels.cmp(&b.labels));
        }
        out.stats.result_sort_time = sorting.elapsed().as_secs_f64();
        out.stats.query_preparation_time = prepared.as_secs_f64();
        out.stats.eval_total_time += out.stats.result_sort_time + prepared.as_secs_f64();
        out.stats.exec_total_time = started.elapsed().as_secs_f64();
        Ok(out)
    }

    /// Evaluates `query` at every step from `start` to `end` (ms) and returns a matrix.
    pub fn range(
        &self,
        db: &dyn Queryable,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: i64,
    ) -> Result<Value, EngineError> {
        Ok(self.range_query(db, query, start, end, step, None)?.value)
    }

    /// An instant query with annotations and an optional cancellation handle. The vector
    /// keeps the evaluation order (as Prometheus returns it).
    pub fn instant_query(
        &self,
        db: &dyn Queryable,
        query: &str,
        t: Timestamp,
        cancel: Option<&Cancel>,
    ) -> Result<QueryOutput, EngineError> {
        let parsed = self.parse(query)?;
        let resolved = prepare::resolve_durations(&parsed, 0, 0)?;
        self.exec_instant(db, resolved.as_ref().unwrap_or(&parsed), t, cancel)
    }

    /// A range query with annotations and an optional cancellation handle.
    pub fn range_query(
        &self,
        db: &dyn Queryable,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: i64,
        cancel: Option<&Cancel>,
    ) -> Result<QueryOutput, EngineError> {
        if step <= 0 {
            return Err(EngineError::Parse("zero or negative query resolution step widths are not accepted. Try a positive integer".into()));
        }
        if end < start {
            return Err(EngineError::Parse(
                "end timestamp must not be before start time".into(),
            ));
        }
        if (end - start) / step >= self.opts.max_points_per_series {
            return Err(EngineError::Parse(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
            ));
        }
        let started = Instant::now();
        let parsed = self.parse(query)?;
        let resolved = prepare::resolve_durations(&parsed, step, end - start)?;
        let expr = resolved.as_ref().unwrap_or(&parsed);
        let prepared = started.elapsed();
        match expr.value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            other => {
                return Err(EngineError::Execution(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    other
                )));
            }
        }
        let queued = Instant::now();
        let _slot = self.slot(cancel)?;
        let queue_time = queued.elapsed();
        let mut shared = self.shared(db, start, end, cancel);
        shared.query_step = step;
        shared.stats_only = stats_only::detect(expr);
        let ev = Ev::new(&shared, start, end, step);
        let evaluating = Instant::now();
        let val = self.eval_in_parts(&shared, expr, start, end, step)?;
        let inner = evaluating.elapsed();
        let sorting = Instant::now();
        let series = match val {
            Val::Scalar(vs) => vec![RangeSeries {
                labels: vigil_model::Labels::empty(),
                samples: vs
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| vigil_model::Sample { t: ev.ts(i), v })
                    .collect(),
                histograms: Vec::new(),
            }],
            Val::Vector(ss) => {
                let mut out: Vec<RangeSeries> = cleanup(ss)?
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| RangeSeries {
                        labels: s.labels,
                        samples: s.points,
                        histograms: s.hpoints,
                    })
                    .collect();
                out.sort_by(|a, b| a.labels.cmp(&b.labels));
                out
            }
            _ => {
                return Err(EngineError::Execution(
                    "invalid expression type for range query, must be Scalar or instant Vector"
                        .into(),
                ));
            }
        };
        let (warnings, infos) = shared.annotations();
        let sort = sorting.elapsed();
        let mut stats = stats_of(&shared);
        stats.exec_queue_time = queue_time.as_secs_f64();
        stats.query_preparation_time = prepared.as_secs_f64();
        stats.inner_eval_time = inner.as_secs_f64();
        stats.result_sort_time = sort.as_secs_f64();
        stats.eval_total_time = (prepared + inner + sort).as_secs_f64();
        stats.exec_total_time = started.elapsed().as_secs_f64();
        Ok(QueryOutput {
            value: Value::Matrix(series),
            warnings,
            infos,
            stats,
        })
    }

    /// Evaluates a range query, split into contiguous runs of steps evaluated on their own
    /// threads when it has enough steps (see [`EngineOptions::parallelism`]). Each part has
    /// at least two steps, so none is mistaken for an instant query.
    fn eval_in_parts(
        &self,
        shared: &Shared,
        expr: &Expr,
        start: Timestamp,
        end: Timestamp,
        step: i64,
    ) -> Result<Val, EngineError> {
        let steps = ((end - start) / step) as usize + 1;
        let parts = self
            .opts
            .parallelism
            .min(steps / self.opts.min_steps_per_part.max(2))
            .max(1);
        if parts == 1 {
            return Ev::new(shared, start, end, step).eval(expr);
        }
        let bounds = part_bounds(start, step, steps, parts);
        let results: Vec<Result<Val, EngineError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = bounds[1..]
                .iter()
                .map(|&(a, b)| {
                    let sh = shared.part();
                    scope.spawn(move || {
                        let r = Ev::new(&sh, a, b, step).eval(expr);
                        (r, sh.annotations())
                    })
                })
                .collect();
            let (a, b) = bounds[0];
            let mut results = vec![Ev::new(shared, a, b, step).eval(expr)];
            for h in handles {
                let (r, (warnings, infos)) =
                    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
                warnings.into_iter().for_each(|w| shared.warn(w));
                infos.into_iter().for_each(|i| shared.info(i));
                results.push(r);
            }
            results
        });
        let mut joined: Option<Val> = None;
        for r in results {
            joined = Some(match (joined, r?) {
                (None, v) => v,
                (Some(Val::Scalar(mut a)), Val::Scalar(b)) => {
                    a.extend(b);
                    Val::Scalar(a)
                }
                // Series of the same labels from two parts are joined by `cleanup`.
                (Some(Val::Vector(mut a)), Val::Vector(b)) => {
                    a.extend(b);
                    Val::Vector(a)
                }
                _ => {
                    return Err(EngineError::Execution(
                        "invalid expression type for range query, must be Scalar or instant Vector"
                            .into(),
                    ));
                }
            });
        }
        Ok(joined.unwrap_or(Val::Vector(Vec::new())))
    }

    /// Takes a query slot if the concurrency is limited.
    fn slot(&self, cancel: Option<&Cancel>) -> Result<Option<GateSlot>, EngineError> {
        match &self.opts.max_concurrency {
            None => Ok(None),
            Some(g) => g
                .acquire(self.opts.timeout.map(|d| Instant::now() + d), cancel)
                .map(Some),
        }
    }

    fn shared<'a>(
        &self,
        db: &'a dyn Queryable,
        start: Timestamp,
        end: Timestamp,
        cancel: Option<&'a Cancel>,
    ) -> Shared<'a> {
        Shared::new(
            db,
            self.opts.lookback_delta_ms,
            start,
            end,
            self.opts.max_samples,
            self.opts.timeout.map(|d| Instant::now() + d),
            cancel.map(|c| &*c.0),
            self.opts.default_subquery_step_ms,
        )
        .with_start_timestamps(self.opts.use_start_timestamps)
    }

    fn exec_instant(
        &self,
        db: &dyn Queryable,
        expr: &Expr,
        t: Timestamp,
        cancel: Option<&Cancel>,
    ) -> Result<QueryOutput, EngineError> {
        let queued = Instant::now();
        let _slot = self.slot(cancel)?;
        let queue_time = queued.elapsed();
        let mut shared = self.shared(db, t, t, cancel);
        shared.stats_only = stats_only::detect(expr);
        let ev = Ev::new(&shared, t, t, 1);
        let evaluating = Instant::now();
        let value = match ev.eval(expr)? {
            Val::Scalar(v) => Value::Scalar {
                t,
                v: v.first().copied().unwrap_or(f64::NAN),
            },
            Val::Str(s) => Value::String { t, v: s },
            Val::Vector(ss) => Value::Vector(
                cleanup(ss)?
                    .into_iter()
                    .filter_map(|s| {
                        if let Some(h) = s.hpoints.first() {
                            return Some(VectorSample {
                                labels: s.labels,
                                t,
                                v: 0.0,
                                h: Some(h.h.clone()),
                            });
                        }
                        let p = s.points.first()?;
                        Some(VectorSample {
                            labels: s.labels,
                            t,
                            v: p.v,
                            h: None,
                        })
                    })
                    .collect(),
            ),
            Val::Matrix(ss) => Value::Matrix(
                cleanup(ss)?
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| RangeSeries {
                        labels: s.labels,
                        samples: s.points,
                        histograms: s.hpoints,
                    })
                    .collect(),
            ),
        };
        let (warnings, infos) = shared.annotations();
        let mut stats = stats_of(&shared);
        stats.exec_queue_time = queue_time.as_secs_f64();
        stats.inner_eval_time = evaluating.elapsed().as_secs_f64();
        stats.eval_total_time = stats.inner_eval_time;
        stats.exec_total_time = (queue_time + evaluating.elapsed()).as_secs_f64();
        Ok(QueryOutput {
            value,
            warnings,
            infos,
            stats,
        })
    }
}

/// The sample counts of a finished query.
fn stats_of(sh: &Shared) -> QueryStats {
    use std::sync::atomic::Ordering::Relaxed;
    QueryStats {
        total_queryable_samples: sh.counters.queryable.load(Relaxed),
        samples_read: sh.counters.read.load(Relaxed),
        peak_samples: sh.counters.peak.load(Relaxed) as u64,
        ..Default::default()
    }
}

/// The first and last step time of each of `parts` contiguous runs of `steps` steps: part k
/// holds steps [k·steps/parts, (k+1)·steps/parts), so sizes differ by at most one and, with
/// steps ≥ 2·parts, each part has at least two steps (a one-step part would be evaluated as
/// an instant query).
pub(crate) fn part_bounds(
    start: Timestamp,
    step: i64,
    steps: usize,
    parts: usize,
) -> Vec<(Timestamp, Timestamp)> {
    (0..parts)
        .map(|k| {
            let (first, next) = (k * steps / parts, (k + 1) * steps / parts);
            (
                start + first as i64 * step,
                start + (next - 1) as i64 * step,
            )
        })
        .collect()
}

/// Drops `__name__` where an operation asked for it (delayed name removal, as Prometheus 3
/// with `promql-delayed-name-removal`). Series that then share a label set are merged when
/// their samples do not overlap; a shared timestamp is an error.
fn cleanup(ss: Vec<Series>) -> Result<Vec<Series>, EngineError> {
    let mut out: Vec<Series> = Vec::with_capacity(ss.len());
    let mut index: std::collections::HashMap<vigil_model::Labels, usize> =
        std::collections::HashMap::with_capacity(ss.len());
    for mut s in ss {
        if s.is_empty() {
            continue;
        }
        if s.drop_name {
            s.labels = eval::drop_metadata_labels(&s.labels);
            s.drop_name = false;
        }
        match index.get(&s.labels) {
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
            Some(&i) => {
                let o = &mut out[i];
                o.points.extend(s.points);
                o.points.sort_by_key(|p| p.t);
                o.hpoints.extend(s.hpoints);
                o.hpoints.sort_by_key(|p| p.t);
                let mut ts: Vec<i64> = o.points.iter().map(|p| p.t).collect();
                ts.extend(o.hpoints.iter().map(|p| p.t));
                ts.sort_unstable();
                if ts.windows(2).any(|w| w[0] == w[1]) {
                    return Err(EngineError::Execution(
                        "vector cannot contain metrics with the same labelset".into(),
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// Does the outermost operation define the order of its result?
fn order_defined(e: &Expr) -> bool {
    match e {
        Expr::Paren(p) => order_defined(&p.expr),
        Expr::Call(c) => matches!(
            c.func.name,
            "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc"
        ),
        Expr::Aggregate(a) => matches!(a.op, AggOp::Topk | AggOp::Bottomk),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_kept_only_where_defined() {
        let e = Engine::new(EngineOptions::default());
        for (q, want) in [
            ("sort(up)", true),
            ("(topk(3, up))", true),
            ("sum(up)", false),
            ("up", false),
        ] {
            assert_eq!(order_defined(&e.parse(q).unwrap()), want, "{q}");
        }
    }
}
