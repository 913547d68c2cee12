//! Adding, subtracting, schema reduction, zero-bucket widening and counter-reset detection.
//!
//! Each operation expands spans into `(index, count)` lists, works on the lists and rebuilds
//! maximal spans. The layout rules are Prometheus': a sum has every bucket either operand has
//! (empty ones included, until someone compacts), the coarser schema and the wider zero bucket
//! win, and custom-bucket histograms with different bounds meet at the bounds they share.

use super::{
    CounterResetHint, FloatHistogram, HistogramError, collapse, custom_bounds_match, expand,
    exponential_bound, is_exponential_schema,
};
use std::sync::Arc;

/// What an addition had to reconcile (the engine turns these into annotations).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddOutcome {
    /// One operand said "counter reset", the other "no counter reset".
    pub counter_reset_collision: bool,
    /// Custom bounds differed and were reduced to the ones both have.
    pub nhcb_bounds_reconciled: bool,
}

/// `sum += x` with Neumaier's compensation in `c`.
#[inline]
fn kahan_inc(x: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + x;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= x.abs() {
        c + ((sum - t) + x)
    } else {
        c + ((x - t) + sum)
    };
    (t, c)
}

/// Maps a bucket index to the lower schema `target`: `((idx − 1) >> (from − target)) + 1`.
#[inline]
pub(crate) fn target_index(idx: i32, from: i32, target: i32) -> i32 {
    ((idx - 1) >> (from - target)) + 1
}

/// A side's buckets at a lower schema: indices mapped, neighbours that land together summed.
fn reduce_list(list: &[(i32, f64, f64)], from: i32, target: i32) -> Vec<(i32, f64, f64)> {
    let mut out: Vec<(i32, f64, f64)> = Vec::with_capacity(list.len());
    for &(i, v, c) in list {
        let t = target_index(i, from, target);
        match out.last_mut() {
            Some(last) if last.0 == t => {
                let (s, cc) = kahan_inc(v, last.1, last.2);
                last.1 = s;
                last.2 = cc + c;
            }
            _ => out.push((t, v, c)),
        }
    }
    out
}

fn with_comp(list: Vec<(i32, f64)>, comp: Option<&[f64]>) -> Vec<(i32, f64, f64)> {
    list.into_iter()
        .enumerate()
        .map(|(n, (i, v))| (i, v, comp.and_then(|c| c.get(n).copied()).unwrap_or(0.0)))
        .collect()
}

fn split(list: &[(i32, f64, f64)]) -> (Vec<super::Span>, Vec<f64>, Vec<f64>) {
    let plain: Vec<(i32, f64)> = list.iter().map(|&(i, v, _)| (i, v)).collect();
    let (spans, buckets) = collapse(&plain);
    (spans, buckets, list.iter().map(|t| t.2).collect())
}

/// Stores both sides' lists into `h` and, with their compensation, into `comp` (which then has
/// `h`'s layout).
fn store_sides(
    h: &mut FloatHistogram,
    comp: Option<&mut FloatHistogram>,
    pos: &[(i32, f64, f64)],
    neg: &[(i32, f64, f64)],
) {
    let (ps, pb, pc) = split(pos);
    let (ns, nb, nc) = split(neg);
    h.positive_spans = ps;
    h.positive_buckets = pb;
    h.negative_spans = ns;
    h.negative_buckets = nb;
    if let Some(c) = comp {
        c.schema = h.schema;
        c.zero_threshold = h.zero_threshold;
        c.positive_spans = h.positive_spans.clone();
        c.negative_spans = h.negative_spans.clone();
        c.positive_buckets = pc;
        c.negative_buckets = nc;
    }
}

/// Reduces `h` to `target` (lower than its schema) in place.
pub(crate) fn reduce_to(h: &mut FloatHistogram, target: i32) {
    let from = h.schema;
    for positive in [true, false] {
        let (spans, buckets) = if positive {
            (&h.positive_spans, &h.positive_buckets)
        } else {
            (&h.negative_spans, &h.negative_buckets)
        };
        let list = with_comp(expand(spans, buckets), None);
        let (s, b, _) = split(&reduce_list(&list, from, target));
        if positive {
            h.positive_spans = s;
            h.positive_buckets = b;
        } else {
            h.negative_spans = s;
            h.negative_buckets = b;
        }
    }
    h.schema = target;
}

/// The zero count `h` would have with the larger threshold `t`, and the threshold actually
/// needed: when `t` falls inside a populated bucket, the threshold grows to that bucket's upper
/// bound and the bucket counts as zero bucket too.
fn zero_count_for_larger_threshold(
    h: &FloatHistogram,
    comp_zero: f64,
    comp: Option<(&[f64], &[f64])>,
    mut t: f64,
) -> (f64, f64, f64) {
    if t == h.zero_threshold {
        return (h.zero_count, t, comp_zero);
    }
    'outer: loop {
        let (mut zc, mut cz) = (h.zero_count, comp_zero);
        for (n, b) in h.positive_bucket_iter().enumerate() {
            if b.lower >= t {
                break;
            }
            (zc, cz) = kahan_inc(b.count, zc, cz);
            if let Some((cp, _)) = comp {
                (zc, cz) = kahan_inc(cp.get(n).copied().unwrap_or(0.0), zc, cz);
            }
            if b.upper > t {
                if b.count != 0.0 {
                    t = b.upper;
                }
                break;
            }
        }
        for (n, b) in h.negative_bucket_iter().enumerate() {
            if b.upper <= -t {
                break;
            }
            (zc, cz) = kahan_inc(b.count, zc, cz);
            if let Some((_, cn)) = comp {
                (zc, cz) = kahan_inc(cn.get(n).copied().unwrap_or(0.0), zc, cz);
            }
            if b.lower < -t {
                if b.count != 0.0 {
                    t = -b.lower;
                    continue 'outer;
                }
                break;
            }
        }
        return (zc, t, cz);
    }
}

/// Drops `h`'s buckets inside its (just widened) zero bucket, then compacts (as Prometheus
/// does, which also drops every other empty bucket).
fn trim_buckets_in_zero_bucket(h: &mut FloatHistogram, comp: Option<&mut FloatHistogram>) {
    let zt = h.zero_threshold;
    let keep_pos: Vec<bool> = h.positive_bucket_iter().map(|b| b.lower >= zt).collect();
    let keep_neg: Vec<bool> = h.negative_bucket_iter().map(|b| b.upper <= -zt).collect();
    // Zero the trimmed buckets, then drop every empty bucket (keeping a bucket whose
    // compensation is non-zero, so no correction is lost).
    let mut pos = with_comp(
        expand(&h.positive_spans, &h.positive_buckets),
        comp.as_ref().map(|c| c.positive_buckets.as_slice()),
    );
    let mut neg = with_comp(
        expand(&h.negative_spans, &h.negative_buckets),
        comp.as_ref().map(|c| c.negative_buckets.as_slice()),
    );
    for (e, keep) in pos.iter_mut().zip(&keep_pos) {
        if !keep {
            e.1 = 0.0;
            e.2 = 0.0;
        }
    }
    for (e, keep) in neg.iter_mut().zip(&keep_neg) {
        if !keep {
            e.1 = 0.0;
            e.2 = 0.0;
        }
    }
    let has_comp = comp.is_some();
    pos.retain(|e| e.1 != 0.0 || (has_comp && e.2 != 0.0));
    neg.retain(|e| e.1 != 0.0 || (has_comp && e.2 != 0.0));
    store_sides(h, comp, &pos, &neg);
}

/// Widens the zero buckets of `h` and (virtually) `other` to one threshold that cuts no
/// populated bucket. Returns `other`'s zero count at that threshold.
fn reconcile_zero_buckets(
    h: &mut FloatHistogram,
    mut comp: Option<&mut FloatHistogram>,
    other: &FloatHistogram,
) -> f64 {
    let mut other_zero = other.zero_count;
    let mut other_threshold = other.zero_threshold;
    while other_threshold != h.zero_threshold {
        if h.zero_threshold > other_threshold {
            let (zc, t, _) = zero_count_for_larger_threshold(other, 0.0, None, h.zero_threshold);
            other_zero = zc;
            other_threshold = t;
        }
        if other_threshold > h.zero_threshold {
            let cz = comp.as_ref().map_or(0.0, |c| c.zero_count);
            let cb = comp
                .as_ref()
                .map(|c| (c.positive_buckets.clone(), c.negative_buckets.clone()));
            let (zc, t, czc) = zero_count_for_larger_threshold(
                h,
                cz,
                cb.as_ref().map(|(p, n)| (p.as_slice(), n.as_slice())),
                other_threshold,
            );
            h.zero_count = zc;
            h.zero_threshold = t;
            if let Some(c) = comp.as_deref_mut() {
                c.zero_count = czc;
                c.zero_threshold = t;
            }
            trim_buckets_in_zero_bucket(h, comp.as_deref_mut());
        }
    }
    other_zero
}

/// Adds (or subtracts) `b` into `a`, both at one schema, skipping `b`'s leading buckets that
/// lie inside the zero bucket `threshold` (exponential schemas).
fn add_lists(
    a: Vec<(i32, f64, f64)>,
    b: &[(i32, f64, f64)],
    schema: Option<i32>,
    threshold: f64,
    negate: bool,
) -> Vec<(i32, f64, f64)> {
    let mut skip = 0;
    if let Some(s) = schema {
        while skip < b.len() && exponential_bound(b[skip].0, s) <= threshold {
            skip += 1;
        }
    }
    let b = &b[skip..];
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let take_a = j >= b.len() || (i < a.len() && a[i].0 < b[j].0);
        let take_b = i >= a.len() || (j < b.len() && b[j].0 < a[i].0);
        if take_a {
            out.push(a[i]);
            i += 1;
        } else {
            let (idx, mut v, mut c) = b[j];
            if negate {
                v = -v;
                c = -c;
            }
            if take_b {
                out.push((idx, v, c));
            } else {
                let (s, cc) = kahan_inc(v, a[i].1, a[i].2);
                out.push((idx, s, cc + c));
                i += 1;
            }
            j += 1;
        }
    }
    out
}

/// Prometheus' rules for the hint of a sum or difference.
fn adjust_counter_reset(h: &mut FloatHistogram, other: &FloatHistogram) -> bool {
    use CounterResetHint::*;
    match (h.counter_reset_hint, other.counter_reset_hint) {
        (a, b) if a == b => false,
        (Gauge, _) => false,
        (_, Gauge) => {
            h.counter_reset_hint = Gauge;
            false
        }
        (Unknown, _) => false,
        (_, Unknown) => {
            h.counter_reset_hint = Unknown;
            false
        }
        _ => {
            h.counter_reset_hint = Unknown;
            true
        }
    }
}

/// Bounds both custom layouts share.
fn intersect_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(a[i]);
            i += 1;
            j += 1;
        } else if a[i] < b[j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Re-buckets custom buckets at the coarser `target` bounds: each bucket goes to the first
/// target bucket whose upper bound is at or above its own.
fn map_custom(
    list: &[(i32, f64, f64)],
    bounds: &[f64],
    target: &[f64],
    acc: &mut [(f64, f64)],
    negate: bool,
) {
    for &(idx, v, c) in list {
        let upper = if idx >= 0 && (idx as usize) < bounds.len() {
            bounds[idx as usize]
        } else {
            f64::INFINITY
        };
        let t = target.partition_point(|&x| x < upper);
        let (v, c) = if negate { (-v, -c) } else { (v, c) };
        let (s, cc) = kahan_inc(v, acc[t].0, acc[t].1);
        acc[t] = (s, cc + c);
    }
}

impl FloatHistogram {
    fn check_compatible(&self, other: &FloatHistogram) -> Result<(), HistogramError> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramError::IncompatibleSchema);
        }
        Ok(())
    }

    /// `self += other` (Prometheus' `Add`): the coarser schema, the wider zero bucket, every
    /// bucket of both (empty ones too; call [`FloatHistogram::compact`] to drop them).
    pub fn add(&mut self, other: &FloatHistogram) -> Result<AddOutcome, HistogramError> {
        self.combine(other, false, None)
    }

    /// `self -= other`. The hint follows the rules of `add`; the `-` operator of PromQL makes
    /// the result a gauge afterwards.
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<AddOutcome, HistogramError> {
        self.combine(other, true, None)
    }

    /// `self += other` with Kahan–Neumaier compensation kept in `comp` (created on first use,
    /// with `self`'s layout). Finish with [`FloatHistogram::kahan_finish`].
    pub fn kahan_add(
        &mut self,
        other: &FloatHistogram,
        comp: &mut Option<FloatHistogram>,
    ) -> Result<AddOutcome, HistogramError> {
        if comp.is_none() {
            let mut c = self.clone();
            c.count = 0.0;
            c.sum = 0.0;
            c.zero_count = 0.0;
            c.positive_buckets.iter_mut().for_each(|b| *b = 0.0);
            c.negative_buckets.iter_mut().for_each(|b| *b = 0.0);
            *comp = Some(c);
        }
        self.combine(other, false, comp.as_mut())
    }

    /// Adds the compensation kept by [`FloatHistogram::kahan_add`] back in.
    pub fn kahan_finish(&mut self, comp: Option<FloatHistogram>) {
        let Some(c) = comp else { return };
        self.count += c.count;
        self.sum += c.sum;
        self.zero_count += c.zero_count;
        for (b, cb) in self.positive_buckets.iter_mut().zip(&c.positive_buckets) {
            *b += cb;
        }
        for (b, cb) in self.negative_buckets.iter_mut().zip(&c.negative_buckets) {
            *b += cb;
        }
    }

    fn combine(
        &mut self,
        other: &FloatHistogram,
        negate: bool,
        mut comp: Option<&mut FloatHistogram>,
    ) -> Result<AddOutcome, HistogramError> {
        self.check_compatible(other)?;
        let mut out = AddOutcome {
            counter_reset_collision: adjust_counter_reset(self, other),
            ..Default::default()
        };
        let sign = if negate { -1.0 } else { 1.0 };
        if !self.uses_custom_buckets() {
            let oz = reconcile_zero_buckets(self, comp.as_deref_mut(), other);
            self.zero_count = self.kahan_field(oz * sign, |h| &mut h.zero_count, &mut comp);
        }
        self.count = self.kahan_field(other.count * sign, |h| &mut h.count, &mut comp);
        self.sum = self.kahan_field(other.sum * sign, |h| &mut h.sum, &mut comp);

        let pos_a = with_comp(
            expand(&self.positive_spans, &self.positive_buckets),
            comp.as_ref().map(|c| c.positive_buckets.as_slice()),
        );
        let pos_b = with_comp(expand(&other.positive_spans, &other.positive_buckets), None);

        if self.uses_custom_buckets() {
            let pos = if custom_bounds_match(self.custom(), other.custom()) {
                add_lists(pos_a, &pos_b, None, 0.0, negate)
            } else {
                out.nhcb_bounds_reconciled = true;
                let target = intersect_bounds(self.custom(), other.custom());
                let mut acc = vec![(0.0, 0.0); target.len() + 1];
                map_custom(&pos_a, self.custom(), &target, &mut acc, false);
                map_custom(&pos_b, other.custom(), &target, &mut acc, negate);
                self.custom_values = Some(Arc::from(target));
                acc.iter()
                    .enumerate()
                    .filter(|(_, (v, c))| *v != 0.0 || *c != 0.0)
                    .map(|(i, &(v, c))| (i as i32, v, c))
                    .collect()
            };
            let (s, b, c) = split(&pos);
            self.positive_spans = s;
            self.positive_buckets = b;
            if let Some(cm) = comp {
                cm.positive_spans = self.positive_spans.clone();
                cm.positive_buckets = c;
                cm.custom_values = self.custom_values.clone();
            }
            return Ok(out);
        }

        let neg_a = with_comp(
            expand(&self.negative_spans, &self.negative_buckets),
            comp.as_ref().map(|c| c.negative_buckets.as_slice()),
        );
        let neg_b = with_comp(expand(&other.negative_spans, &other.negative_buckets), None);
        let (mut pos_a, mut neg_a, mut pos_b, mut neg_b) = (pos_a, neg_a, pos_b, neg_b);
        if other.schema < self.schema {
            pos_a = reduce_list(&pos_a, self.schema, other.schema);
            neg_a = reduce_list(&neg_a, self.schema, other.schema);
            self.schema = other.schema;
        } else if other.schema > self.schema {
            pos_b = reduce_list(&pos_b, other.schema, self.schema);
            neg_b = reduce_list(&neg_b, other.schema, self.schema);
        }
        let schema = is_exponential_schema(self.schema).then_some(self.schema);
        let pos = add_lists(pos_a, &pos_b, schema, self.zero_threshold, negate);
        let neg = add_lists(neg_a, &neg_b, schema, self.zero_threshold, negate);
        store_sides(self, comp, &pos, &neg);
        Ok(out)
    }

    /// Adds `x` to the field `f` of `self`, compensated in the same field of `comp` if given.
    fn kahan_field(
        &mut self,
        x: f64,
        f: impl Fn(&mut FloatHistogram) -> &mut f64,
        comp: &mut Option<&mut FloatHistogram>,
    ) -> f64 {
        let cur = *f(self);
        match comp {
            Some(c) => {
                let cc = f(c);
                let (s, nc) = kahan_inc(x, cur, *cc);
                *cc = nc;
                s
            }
            None => cur + x,
        }
    }

    /// Reduces the resolution to `target`, which must be an exponential schema not above the
    /// current one.
    pub fn reduce_resolution(&mut self, target: i32) -> Result<(), HistogramError> {
        if self.uses_custom_buckets() || !is_exponential_schema(target) {
            return Err(HistogramError::Invalid(format!(
                "cannot reduce resolution from schema {} to {}",
                self.schema, target
            )));
        }
        if target < self.schema {
            reduce_to(self, target);
        }
        Ok(())
    }

    /// True if `self` cannot follow `previous` without a counter reset: a count went down, a
    /// populated bucket vanished, the resolution rose or the zero bucket shrank. The hint
    /// decides when it says reset or no reset.
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        match self.counter_reset_hint {
            CounterResetHint::CounterReset => return true,
            CounterResetHint::NotCounterReset => return false,
            _ => {}
        }
        if self.count < previous.count {
            return true;
        }
        if self.uses_custom_buckets() {
            if !previous.uses_custom_buckets() {
                return true;
            }
            if !custom_bounds_match(self.custom(), previous.custom()) {
                return reset_with_mismatched_bounds(self, previous);
            }
        }
        if self.schema > previous.schema {
            return true;
        }
        if self.zero_threshold < previous.zero_threshold {
            return true;
        }
        let (prev_zero, t, _) =
            zero_count_for_larger_threshold(previous, 0.0, None, self.zero_threshold);
        if t != self.zero_threshold {
            return true;
        }
        if self.zero_count < prev_zero {
            return true;
        }
        let side = |spans, buckets, schema: i32| -> Vec<(i32, f64)> {
            let list = with_comp(expand(spans, buckets), None);
            let list = if schema > self.schema {
                reduce_list(&list, schema, self.schema)
            } else {
                list
            };
            // Buckets inside the zero bucket are part of the zero count compared above.
            list.into_iter()
                .filter(|&(i, _, _)| {
                    self.uses_custom_buckets()
                        || exponential_bound(i, self.schema) > self.zero_threshold
                })
                .map(|(i, v, _)| (i, v))
                .collect()
        };
        let reset = |cur: Vec<(i32, f64)>, prev: Vec<(i32, f64)>| {
            let mut j = 0;
            for (pi, pc) in prev {
                while j < cur.len() && cur[j].0 < pi {
                    j += 1;
                }
                if j < cur.len() && cur[j].0 == pi {
                    if cur[j].1 < pc {
                        return true;
                    }
                } else if pc != 0.0 {
                    return true;
                }
            }
            false
        };
        reset(
            side(&self.positive_spans, &self.positive_buckets, self.schema),
            side(
                &previous.positive_spans,
                &previous.positive_buckets,
                previous.schema,
            ),
        ) || reset(
            side(&self.negative_spans, &self.negative_buckets, self.schema),
            side(
                &previous.negative_spans,
                &previous.negative_buckets,
                previous.schema,
            ),
        )
    }
}

/// Custom-bucket histograms with different bounds: a reset if the cumulative count up to any
/// shared bound went down.
fn reset_with_mismatched_bounds(cur: &FloatHistogram, prev: &FloatHistogram) -> bool {
    let shared = intersect_bounds(cur.custom(), prev.custom());
    let roll = |h: &FloatHistogram| {
        let mut acc = vec![(0.0, 0.0); shared.len() + 1];
        let list = with_comp(expand(&h.positive_spans, &h.positive_buckets), None);
        map_custom(&list, h.custom(), &shared, &mut acc, false);
        acc
    };
    let (c, p) = (roll(cur), roll(prev));
    c.iter().zip(&p).any(|(a, b)| a.0 + a.1 < b.0 + b.1)
}
