//! Drift detection between two distributions: `drift_psi`, `drift_ks`, `drift_jsd`,
//! `drift_wasserstein`, `drift_wasserstein_normed`, `drift_hellinger`, `drift_kl`,
//! `drift_linf`, `drift_chi2` and `drift_chi2_pvalue` (vigil extensions, in the function table
//! of `vigil-promql-parser`). The formulas are in [`measures`]; this module turns PromQL
//! vectors into per-bucket counts.
//!
//! Two instant vectors, current and reference, and an optional third argument:
//! - Without it, the vectors hold classic histograms (cumulative bucket series, `le` label),
//!   usually `sum by (le, feature) (increase(x_bucket[1h]))` and the same expression
//!   `offset 7d` or `@` a baseline, or native histograms.
//! - With it (a string, the way `count_values` takes its label), the vectors hold counters
//!   split by that *category* label, e.g. `sum by (class) (increase(predictions_total[1h]))`
//!   with `"class"`: see [`categorical`]. Categories on one side only count 0 there.
//!
//! Semantics (see `docs/drift.md`):
//! - Series are grouped by all labels except `le` (or the category label); the metric name is
//!   dropped (as for other functions), so a group of `current` matches the group of
//!   `reference` with the same remaining labels. Unmatched groups give no output; each
//!   matched group gives one series labelled with the group's labels. Two differently named
//!   groups of one side that end up with the same labels at one step are an error, as
//!   elsewhere in PromQL.
//! - Within a group the buckets go through `histogram_quantile`'s preparation (sorted by `le`,
//!   `+Inf` last, equal bounds merged, Prometheus' monotonicity fix with the same info
//!   annotation); per-bucket counts are the differences of the cumulative counts.
//! - No output for a group when either side has no `+Inf` bucket or a `+Inf` count that is not
//!   positive; otherwise, when the sets of bounds differ, no output and a warning annotation.
//! - Ordered measures (KS, Wasserstein) place each bucket at its upper bound, the `+Inf`
//!   bucket at the highest finite bound (where `histogram_quantile` puts its observations).

mod categorical;
pub(crate) mod measures;

use super::histogram::{Bucket, bucket_bound, prepare};
use crate::engine::eval::{
    Ev, OutBuilder, PV, Result, Series, StepCursor, Val, drop_metadata_labels,
};
pub(crate) use measures::Distance;
use std::collections::HashMap;
use vigil_model::histogram::FloatHistogram;
use vigil_model::{Labels, METRIC_NAME};
use vigil_promql_parser::Expr;

/// Per-bucket counts of prepared (cumulative, `+Inf` last) buckets, and each bucket's
/// position for the ordered measures: its upper bound, the `+Inf` bucket at the highest
/// finite bound (0 when `+Inf` is the only bucket).
fn bucket_counts(b: &[Bucket]) -> (Vec<f64>, Vec<f64>) {
    let mut prev = 0.0;
    let counts = b
        .iter()
        .map(|x| {
            let n = x.count - prev;
            prev = x.count;
            n
        })
        .collect();
    let top = b
        .iter()
        .rev()
        .map(|x| x.ub)
        .find(|u| u.is_finite())
        .unwrap_or(0.0);
    let pos = b
        .iter()
        .map(|x| if x.ub.is_finite() { x.ub } else { top })
        .collect();
    (counts, pos)
}

/// Where one input series goes: its output group, the identity of its (named) source group,
/// and its bucket's upper bound.
#[derive(Clone, Copy)]
struct Slot {
    group: usize,
    source: usize,
    ub: f64,
}

/// One side (current or reference): its series, their slots, and the metric names of its
/// source groups (for the monotonicity annotation).
struct Side {
    input: Vec<Series>,
    slots: Vec<Option<Slot>>,
    source_names: Vec<String>,
}

impl Side {
    fn new(
        ev: &Ev,
        input: Vec<Series>,
        index: &mut HashMap<Labels, usize>,
        groups: &mut Vec<Labels>,
    ) -> Side {
        let mut sources: HashMap<Labels, usize> = HashMap::new();
        let mut source_names = Vec::new();
        let mut slots = Vec::with_capacity(input.len());
        for s in &input {
            let Some(ub) = bucket_bound(ev, s) else {
                slots.push(None);
                continue;
            };
            let mut b = s.labels.to_builder();
            b.del("le");
            let named = b.build();
            let source = *sources.entry(named.clone()).or_insert_with(|| {
                source_names.push(named.get(METRIC_NAME).unwrap_or("").to_string());
                source_names.len() - 1
            });
            let out = drop_metadata_labels(&named);
            let group = *index.entry(out.clone()).or_insert_with(|| {
                groups.push(out);
                groups.len() - 1
            });
            slots.push(Some(Slot { group, source, ub }));
        }
        Side {
            input,
            slots,
            source_names,
        }
    }
}

/// Per-step scratch of one side: items (buckets or categories) per group, and the source
/// group that filled them.
struct Scratch<T> {
    items: Vec<Vec<T>>,
    owner: Vec<usize>,
    touched: Vec<usize>,
}

impl<T> Scratch<T> {
    fn new(groups: usize) -> Scratch<T> {
        Scratch {
            items: (0..groups).map(|_| Vec::new()).collect(),
            owner: vec![usize::MAX; groups],
            touched: Vec::new(),
        }
    }

    fn clear(&mut self) {
        for &g in &self.touched {
            self.items[g].clear();
            self.owner[g] = usize::MAX;
        }
        self.touched.clear();
    }

    /// Adds `item` of source group `source` to `group`; two source groups of one side in the
    /// same output group are a label-set collision.
    fn push(&mut self, group: usize, source: usize, item: T) -> Result<()> {
        if self.owner[group] == usize::MAX {
            self.owner[group] = source;
            self.touched.push(group);
        } else if self.owner[group] != source {
            return Err(crate::engine::eval::exec_err(
                "vector cannot contain metrics with the same labelset",
            ));
        }
        self.items[group].push(item);
        Ok(())
    }
}

impl Scratch<Bucket> {
    /// Collects the points of `vals` (from `side`) into groups.
    fn fill(&mut self, side: &Side, vals: &[(usize, f64)]) -> Result<()> {
        self.clear();
        for &(si, v) in vals {
            let Some(slot) = side.slots[si] else { continue };
            self.push(
                slot.group,
                slot.source,
                Bucket {
                    ub: slot.ub,
                    count: v,
                },
            )?;
        }
        Ok(())
    }
}

/// A drift function over all steps.
pub(crate) fn eval_drift(ev: &Ev, distance: Distance, args: &[&Expr]) -> Result<Val> {
    if let Some(label) = args.get(2) {
        return categorical::eval(ev, distance, args[0], args[1], label);
    }
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<Labels> = Vec::new();
    let cur = Side::new(ev, ev.eval_vector(args[0])?, &mut index, &mut groups);
    let reference = Side::new(ev, ev.eval_vector(args[1])?, &mut index, &mut groups);
    let name = distance.name();
    let mut out = OutBuilder::new(ev);
    let (mut cc, mut rc) = (
        StepCursor::new(cur.input.len()),
        StepCursor::new(reference.input.len()),
    );
    let (mut cs, mut rs) = (Scratch::new(groups.len()), Scratch::new(groups.len()));
    let mut vals = Vec::new();
    let (cur_native, ref_native) = (
        NativeSide::new(&cur.input, &mut index, &mut groups),
        NativeSide::new(&reference.input, &mut index, &mut groups),
    );
    let key_native = groups.len() as u64;
    let (mut cn, mut rn) = (
        StepCursor::new(cur.input.len()),
        StepCursor::new(reference.input.len()),
    );
    let mut hvals: Vec<(usize, PV)> = Vec::new();
    for i in 0..ev.steps() {
        ev.check()?;
        let ts = ev.ts(i);
        if cur_native.any && ref_native.any {
            let c = cur_native.at(&mut cn, &cur.input, ts, &mut hvals)?;
            let r = ref_native.at(&mut rn, &reference.input, ts, &mut hvals)?;
            for (g, ch) in &c {
                let Some(rh) = r.get(g) else { continue };
                match native_counts(ch, rh) {
                    Ok((p, q, pos)) => {
                        let v = distance.of_counts(&p, &q, &pos);
                        if let Some(v) = v {
                            out.push_keyed(key_native + *g as u64, || (groups[*g].clone(), false), ts, v)?;
                        }
                    }
                    Err(why) => ev.sh.warn(format!(
                        "PromQL warning: {name}: current and reference native histograms {why} for {}",
                        groups[*g]
                    )),
                }
            }
        }
        cc.gather(&cur.input, ts, &mut vals);
        cs.fill(&cur, &vals)?;
        rc.gather(&reference.input, ts, &mut vals);
        rs.fill(&reference, &vals)?;
        for k in 0..cs.touched.len() {
            let g = cs.touched[k];
            if rs.owner[g] == usize::MAX {
                continue; // no reference for this group
            }
            let mut cb = std::mem::take(&mut cs.items[g]);
            let mut rb = std::mem::take(&mut rs.items[g]);
            let v = compare(ev, name, &groups[g], &mut cb, &mut rb, || {
                (
                    &cur.source_names[cs.owner[g]],
                    &reference.source_names[rs.owner[g]],
                )
            })
            .map(|()| {
                let ((c, pos), (r, _)) = (bucket_counts(&cb), bucket_counts(&rb));
                distance.of_counts(&c, &r, &pos)
            });
            cs.items[g] = cb;
            rs.items[g] = rb;
            if let Some(Some(v)) = v {
                out.push_keyed(g as u64, || (groups[g].clone(), false), ts, v)?;
            }
        }
    }
    Ok(Val::Vector(out.finish()))
}

/// The native histograms of one side, grouped as the classic buckets are (all labels but the
/// metric name).
struct NativeSide {
    group_of: Vec<Option<usize>>,
    any: bool,
}

impl NativeSide {
    fn new(input: &[Series], index: &mut HashMap<Labels, usize>, groups: &mut Vec<Labels>) -> Self {
        let mut any = false;
        let group_of = input
            .iter()
            .map(|s| {
                if s.hpoints.is_empty() {
                    return None;
                }
                any = true;
                let out = drop_metadata_labels(&s.labels);
                Some(*index.entry(out.clone()).or_insert_with(|| {
                    groups.push(out);
                    groups.len() - 1
                }))
            })
            .collect();
        NativeSide { group_of, any }
    }

    /// The histogram of each group at `ts`; two series in one group are a collision.
    fn at(
        &self,
        cur: &mut StepCursor,
        input: &[Series],
        ts: i64,
        vals: &mut Vec<(usize, PV)>,
    ) -> Result<HashMap<usize, std::sync::Arc<FloatHistogram>>> {
        cur.gather_any(input, ts, vals);
        let mut out = HashMap::new();
        for (si, v) in vals.drain(..) {
            let (Some(g), PV::H(h)) = (self.group_of[si], v) else {
                continue;
            };
            if out.insert(g, h).is_some() {
                return Err(crate::engine::eval::exec_err(
                    "vector cannot contain metrics with the same labelset",
                ));
            }
        }
        Ok(out)
    }
}

/// Current counts, reference counts and positions, bucket by bucket.
type AlignedCounts = (Vec<f64>, Vec<f64>, Vec<f64>);

/// The two histograms' bucket counts over one bucket layout, in increasing order of bounds,
/// and each bucket's position (its upper bound; an infinite one at the highest finite bound):
/// exponential histograms are brought to the coarser schema and the wider zero bucket (each
/// side gets the other's layout with empty buckets added), custom buckets must share their
/// bounds.
fn native_counts(
    a: &FloatHistogram,
    b: &FloatHistogram,
) -> std::result::Result<AlignedCounts, &'static str> {
    if a.uses_custom_buckets() != b.uses_custom_buckets() {
        return Err("mix exponential and custom buckets");
    }
    if a.uses_custom_buckets()
        && !vigil_model::histogram::custom_bounds_match(a.custom(), b.custom())
    {
        return Err("have different custom bucket bounds");
    }
    let empty = |h: &FloatHistogram| {
        let mut e = h.clone();
        e.mul(0.0);
        e
    };
    let (mut x, mut y) = (a.clone(), b.clone());
    x.add(&empty(b))
        .map_err(|_| "mix exponential and custom buckets")?;
    y.add(&empty(a))
        .map_err(|_| "mix exponential and custom buckets")?;
    // Both now hold every bucket either has (at one schema); line them up by bound.
    let key = |bk: &vigil_model::histogram::Bucket| (bk.lower, bk.upper);
    let (xb, yb) = (x.all_buckets(), y.all_buckets());
    let mut keys: Vec<(f64, f64)> = xb.iter().chain(&yb).map(key).collect();
    keys.sort_by(|p, q| p.partial_cmp(q).unwrap_or(std::cmp::Ordering::Equal));
    keys.dedup();
    let counts = |bs: &[vigil_model::histogram::Bucket]| {
        keys.iter()
            .map(|k| bs.iter().find(|b| key(b) == *k).map_or(0.0, |b| b.count))
            .collect::<Vec<f64>>()
    };
    let top = keys
        .iter()
        .rev()
        .map(|k| k.1)
        .find(|u| u.is_finite())
        .unwrap_or(0.0);
    let pos = keys
        .iter()
        .map(|k| if k.1.is_finite() { k.1 } else { top })
        .collect();
    Ok((counts(&xb), counts(&yb), pos))
}

/// Prepares both sides' buckets (sorted, merged, monotonic); `None` when the group gives no
/// output: a side without a positive `+Inf` count, or different bucket bounds (with a
/// warning). Emits the monotonicity info annotation for a side that needed the fix.
fn compare<'n>(
    ev: &Ev,
    name: &str,
    labels: &Labels,
    cur: &mut Vec<Bucket>,
    reference: &mut Vec<Bucket>,
    source_names: impl Fn() -> (&'n String, &'n String),
) -> Option<()> {
    let fixed_cur = prepare(cur);
    let fixed_ref = prepare(reference);
    let (Some(fixed_cur), Some(fixed_ref)) = (fixed_cur, fixed_ref) else {
        return None; // no +Inf bucket on a side
    };
    let positive = |b: &[Bucket]| b.last().is_some_and(|x| x.count > 0.0);
    if !positive(cur) || !positive(reference) {
        return None;
    }
    if cur.len() != reference.len() || cur.iter().zip(reference.iter()).any(|(a, b)| a.ub != b.ub) {
        ev.sh.warn(format!(
            "PromQL warning: {name}: current and reference have different bucket bounds (\"le\" values) for {labels}"
        ));
        return None;
    }
    let (cn, rn) = source_names();
    for (fixed, metric) in [(fixed_cur, cn), (fixed_ref, rn)] {
        if fixed {
            ev.sh.info(format!(
                "PromQL info: input to {name} needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {metric:?}"
            ));
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::measures::{jsd, ks, psi};
    use super::*;
    use crate::{Engine, EngineOptions, QueryOutput, Value};
    use vigil_model::{Appendable, Labels};
    use vigil_tsdb::{Head, HeadOptions};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn psi_by_hand() {
        // Σ (p−q) ln(p/q) for p = (0.5, 0.5), q = (0.25, 0.75).
        let want = 0.25 * 2f64.ln() + (-0.25) * (0.5f64 / 0.75).ln();
        assert!(close(psi(&[0.5, 0.5], &[0.25, 0.75]), want));
        assert_eq!(psi(&[0.2, 0.3, 0.5], &[0.2, 0.3, 0.5]), 0.0);
        // An empty bucket is clamped to 1e-4, with no renormalisation of the other shares.
        let want = (1e-4 - 0.5) * (1e-4f64 / 0.5).ln() + (1.0 - 0.5) * (1.0f64 / 0.5).ln();
        assert!(close(psi(&[0.0, 1.0], &[0.5, 0.5]), want));
        // Both empty: clamped to the same value, no contribution.
        assert_eq!(psi(&[0.0, 1.0], &[0.0, 1.0]), 0.0);
        assert!(psi(&[f64::NAN, 1.0], &[0.5, 0.5]).is_nan());
    }

    #[test]
    fn ks_by_hand() {
        assert_eq!(ks(&[0.125, 0.5, 1.0], &[0.375, 0.25, 1.0]), 0.25);
        assert_eq!(ks(&[0.1, 1.0], &[0.1, 1.0]), 0.0);
        assert!(ks(&[f64::NAN, 1.0], &[0.1, 1.0]).is_nan());
    }

    #[test]
    fn jsd_by_hand_and_bounds() {
        assert_eq!(jsd(&[0.5, 0.5], &[0.5, 0.5]), 0.0);
        // Disjoint supports: exactly one bit.
        assert_eq!(jsd(&[1.0, 0.0], &[0.0, 1.0]), 1.0);
        // p = (1, 0), q = (½, ½): m = (¾, ¼); ½·log2(4/3) + ½·(½·log2(2/3) + ½·log2(2)).
        let want = 0.5 * (4.0f64 / 3.0).log2() + 0.5 * (0.5 * (2.0f64 / 3.0).log2() + 0.5);
        assert!(close(jsd(&[1.0, 0.0], &[0.5, 0.5]), want));
    }

    #[test]
    fn counts_and_positions_from_cumulative_buckets() {
        let b = |ub, count| Bucket { ub, count };
        let (c, pos) = bucket_counts(&[b(1.0, 2.0), b(2.0, 2.0), b(f64::INFINITY, 8.0)]);
        assert_eq!(c, [2.0, 0.0, 6.0]);
        // The +Inf bucket sits at the highest finite bound.
        assert_eq!(pos, [1.0, 2.0, 2.0]);
        let (c, pos) = bucket_counts(&[b(f64::INFINITY, 3.0)]);
        assert_eq!((c, pos), (vec![3.0], vec![0.0]));
    }

    fn head(series: &[(&str, &str, &str, [f64; 2])]) -> Head {
        // (name, feature, le, [value at 0, value at 60 s])
        let head = Head::new(HeadOptions::default());
        let mut app = head.appender();
        for (name, feature, le, vals) in series {
            let l = Labels::from_pairs([("__name__", *name), ("feature", *feature), ("le", *le)]);
            for (i, v) in vals.iter().enumerate() {
                app.append(None, &l, i as i64 * 60_000, *v).unwrap();
            }
        }
        app.commit().unwrap();
        head
    }

    fn run(db: &Head, q: &str, t: i64) -> QueryOutput {
        Engine::new(EngineOptions::default())
            .instant_query(db, q, t, None)
            .unwrap()
    }

    fn vector(out: &QueryOutput) -> Vec<(String, f64)> {
        let Value::Vector(v) = &out.value else {
            panic!("not a vector: {:?}", out.value)
        };
        let mut v: Vec<(String, f64)> = v.iter().map(|s| (s.labels.to_string(), s.v)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    #[test]
    fn groups_match_by_labels_without_le_and_name() {
        // cur{feature="a"} at 60 s has shares (¼, ¾); at 0 s (½, ½). `ref` differs in name
        // only, and has no `only_cur` group.
        let db = head(&[
            ("cur", "a", "1", [5.0, 1.0]),
            ("cur", "a", "+Inf", [10.0, 4.0]),
            ("cur", "only_cur", "1", [1.0, 1.0]),
            ("cur", "only_cur", "+Inf", [2.0, 2.0]),
            ("ref", "a", "1", [5.0, 1.0]),
            ("ref", "a", "+Inf", [10.0, 4.0]),
        ]);
        let out = run(&db, "drift_ks(cur, ref offset 1m)", 60_000);
        assert_eq!(vector(&out), [(r#"{feature="a"}"#.into(), 0.25)]);
        assert!(out.warnings.is_empty() && out.infos.is_empty());
        let out = run(&db, "drift_psi(cur, ref offset 1m)", 60_000);
        let want = psi(&[0.25, 0.75], &[0.5, 0.5]);
        assert_eq!(vector(&out), [(r#"{feature="a"}"#.into(), want)]);
        // The same distribution: 0 for every distance.
        for f in ["drift_psi", "drift_ks", "drift_jsd"] {
            let out = run(&db, &format!("{f}(cur, ref)"), 60_000);
            assert_eq!(vector(&out), [(r#"{feature="a"}"#.into(), 0.0)], "{f}");
        }
        // Unmatched groups give nothing.
        let out = run(
            &db,
            r#"drift_jsd(cur{feature="a"}, cur{feature="only_cur"})"#,
            0,
        );
        assert!(vector(&out).is_empty());
    }

    #[test]
    fn zero_total_missing_inf_and_bound_mismatch() {
        let db = head(&[
            ("h", "zero", "1", [0.0, 0.0]),
            ("h", "zero", "+Inf", [0.0, 0.0]),
            ("h", "noinf", "1", [1.0, 2.0]),
            ("r", "noinf", "1", [1.0, 2.0]),
            ("r", "noinf", "+Inf", [2.0, 4.0]),
            ("r", "zero", "1", [1.0, 2.0]),
            ("r", "zero", "+Inf", [2.0, 4.0]),
            ("h", "mismatch", "1", [1.0, 2.0]),
            ("h", "mismatch", "+Inf", [2.0, 4.0]),
            ("r", "mismatch", "2", [1.0, 2.0]),
            ("r", "mismatch", "+Inf", [2.0, 4.0]),
        ]);
        let out = run(&db, "drift_psi(h, r)", 60_000);
        assert!(vector(&out).is_empty());
        assert_eq!(
            out.warnings,
            [
                r#"PromQL warning: drift_psi: current and reference have different bucket bounds ("le" values) for {feature="mismatch"}"#
            ]
        );
    }

    #[test]
    fn monotonicity_fix_and_equal_bounds() {
        // `le="1"` and `le="1.0"` are one bound; the dip at 2 is fixed (with an info).
        let db = head(&[
            ("h", "a", "1", [1.0, 1.0]),
            ("h", "a", "1.0", [1.0, 1.0]),
            ("h", "a", "2", [1.0, 1.0]),
            ("h", "a", "+Inf", [4.0, 4.0]),
            ("r", "a", "1", [2.0, 2.0]),
            ("r", "a", "2", [3.0, 3.0]),
            ("r", "a", "+Inf", [4.0, 4.0]),
        ]);
        let out = run(&db, "drift_ks(h, r)", 0);
        // cur cumulative (2, 2, 4) -> (½, ½, 1); ref (2, 3, 4) -> (½, ¾, 1).
        assert_eq!(vector(&out), [(r#"{feature="a"}"#.into(), 0.25)]);
        assert_eq!(out.infos.len(), 1, "{:?}", out.infos);
        assert!(out.infos[0].contains("input to drift_ks needed to be fixed for monotonicity"));
    }

    #[test]
    fn collision_of_names_is_an_error() {
        let db = head(&[
            ("a", "x", "1", [1.0, 1.0]),
            ("a", "x", "+Inf", [2.0, 2.0]),
            ("b", "x", "1", [1.0, 1.0]),
            ("b", "x", "+Inf", [2.0, 2.0]),
        ]);
        let err = Engine::new(EngineOptions::default())
            .instant_query(&db, r#"drift_ks({__name__=~"a|b"}, a)"#, 0, None)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "vector cannot contain metrics with the same labelset"
        );
    }

    #[test]
    fn range_query_matches_instant_queries() {
        let db = head(&[
            ("h", "a", "1", [1.0, 3.0]),
            ("h", "a", "+Inf", [4.0, 4.0]),
            ("r", "a", "1", [2.0, 2.0]),
            ("r", "a", "+Inf", [4.0, 8.0]),
        ]);
        let e = Engine::new(EngineOptions::default());
        for f in ["drift_psi", "drift_ks", "drift_jsd"] {
            let q = format!("{f}(h, r)");
            let Value::Matrix(m) = e.range(&db, &q, 0, 60_000, 30_000).unwrap() else {
                panic!()
            };
            assert_eq!(m.len(), 1);
            assert_eq!(m[0].samples.len(), 3);
            for s in &m[0].samples {
                assert_eq!(vector(&run(&db, &q, s.t))[0].1, s.v, "{q} at {}", s.t);
            }
        }
    }

    fn counters(series: &[(&str, &str, &str, f64)]) -> Head {
        // (name, model, class, value at 0)
        let head = Head::new(HeadOptions::default());
        let mut app = head.appender();
        for (name, model, class, v) in series {
            let l = Labels::from_pairs([("__name__", *name), ("model", *model), ("class", *class)]);
            app.append(None, &l, 0, *v).unwrap();
        }
        app.commit().unwrap();
        head
    }

    #[test]
    fn categorical_form_matches_groups_and_counts_missing_categories_as_zero() {
        let db = counters(&[
            ("cur", "a", "cat", 1.0),
            ("cur", "a", "dog", 3.0),
            ("ref", "a", "cat", 2.0),
            ("ref", "a", "bird", 2.0),
            ("cur", "only_cur", "cat", 1.0),
            ("cur", "num", "1", 1.0),
            ("cur", "num", "2", 3.0),
            ("ref", "num", "1", 3.0),
            ("ref", "num", "2.0", 1.0),
        ]);
        // cat, dog, bird: p = (¼, ¾, 0), q = (½, 0, ½).
        let out = run(&db, r#"drift_linf(cur{model="a"}, ref, "class")"#, 0);
        assert_eq!(vector(&out), [(r#"{model="a"}"#.into(), 0.75)]);
        let out = run(&db, r#"drift_psi(cur{model="a"}, ref, "class")"#, 0);
        let want = psi(&[0.25, 0.75, 0.0], &[0.5, 0.0, 0.5]);
        assert!(close(vector(&out)[0].1, want));
        // Numeric categories are ordered ("2" and "2.0" are one): KS at 1 is |¼ − ¾|.
        let out = run(&db, r#"drift_ks(cur{model="num"}, ref, "class")"#, 0);
        assert_eq!(vector(&out), [(r#"{model="num"}"#.into(), 0.5)]);
        let out = run(
            &db,
            r#"drift_wasserstein(cur{model="num"}, ref, "class")"#,
            0,
        );
        assert_eq!(vector(&out), [(r#"{model="num"}"#.into(), 0.5)]);
        // Names are not numbers: no order, a warning.
        let out = run(&db, r#"drift_ks(cur{model="a"}, ref, "class")"#, 0);
        assert!(vector(&out).is_empty());
        assert_eq!(
            out.warnings,
            [
                r#"PromQL warning: drift_ks: the values of category label "class" are not all numbers, so they have no order, for {model="a"}"#
            ]
        );
        let err = Engine::new(EngineOptions::default())
            .instant_query(&db, r#"drift_jsd(cur, ref, "")"#, 0, None)
            .unwrap_err();
        assert!(
            err.to_string().contains("invalid category label name"),
            "{err}"
        );
    }

    #[test]
    fn categorical_range_query_matches_instant_queries() {
        // Counters at 0 and 60 s; a class that only the later step has.
        let head = Head::new(HeadOptions::default());
        let mut app = head.appender();
        for (name, class, vals) in [
            ("cur", "1", [1.0, 4.0]),
            ("cur", "2", [3.0, 3.0]),
            ("ref", "1", [2.0, 2.0]),
            ("ref", "2", [2.0, 5.0]),
        ] {
            let l = Labels::from_pairs([("__name__", name), ("class", class)]);
            for (i, v) in vals.iter().enumerate() {
                app.append(None, &l, i as i64 * 60_000, *v).unwrap();
            }
        }
        let l = Labels::from_pairs([("__name__", "cur"), ("class", "3")]);
        app.append(None, &l, 60_000, 2.0).unwrap();
        app.commit().unwrap();
        let e = Engine::new(EngineOptions::default());
        for (f, _) in measures::FUNCTIONS {
            let q = format!(r#"{f}(cur, ref, "class")"#);
            let Value::Matrix(m) = e.range(&head, &q, 0, 60_000, 30_000).unwrap() else {
                panic!()
            };
            assert_eq!(m.len(), 1, "{q}");
            assert_eq!(m[0].samples.len(), 3, "{q}");
            for s in &m[0].samples {
                assert_eq!(vector(&run(&head, &q, s.t))[0].1, s.v, "{q} at {}", s.t);
            }
        }
    }

    #[test]
    fn parser_knows_the_functions() {
        let e = crate::Engine::new(crate::EngineOptions::default());
        for (f, _) in measures::FUNCTIONS {
            assert!(e.parse(&format!("{f}(a, b)")).is_ok());
            assert!(e.parse(&format!("{f}(a, b, \"class\")")).is_ok());
            assert!(e.parse(&format!("{f}(a)")).is_err());
            assert!(e.parse(&format!("{f}(a, b, 1)")).is_err());
            assert!(e.parse(&format!("{f}(a, b, \"c\", \"d\")")).is_err());
            assert!(e.parse(&format!("{f}(a[5m], b)")).is_err());
        }
    }
}
