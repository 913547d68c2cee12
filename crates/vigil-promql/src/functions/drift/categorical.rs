//! The categorical form of the drift functions: `drift_jsd(current, reference, "class")`.
//!
//! Each input series is one category's count (usually `increase()` of a counter split by the
//! category label, summed `by` the category and the labels to compare on). A group is all
//! labels but the category label and the metric name, as for buckets; within a matched
//! group the categories are the union of both sides', and a category that only one side has
//! counts 0 on the other (PSI and KL then clamp its share to the epsilon of [`super::measures`],
//! JSD, Hellinger, L-infinity and chi-square need none).
//!
//! Categories have no order, so the ordered measures (KS, Wasserstein) only apply when every
//! category value of the group is a number (`rating="1"` … `"5"`): they are then ordered and
//! placed by that number; otherwise the group gives no output and a warning.
//!
//! Series without the category label, and native-histogram samples, are left out.

use super::measures::Distance;
use super::{Scratch, drop_metadata_labels};
use crate::engine::eval::{Ev, OutBuilder, Result, Series, StepCursor, Val, exec_err};
use crate::functions::{invalid_utf8, string_arg, valid_label_name};
use std::collections::HashMap;
use vigil_model::{Labels, METRIC_NAME};
use vigil_promql_parser::Expr;

/// Where one input series goes: its output group, its (named) source group, its category.
#[derive(Clone, Copy)]
struct Slot {
    group: usize,
    source: usize,
    category: usize,
}

/// Category names seen in either argument, and their values as numbers where they are.
#[derive(Default)]
struct Categories {
    index: HashMap<String, usize>,
    number: Vec<Option<f64>>,
}

impl Categories {
    fn id(&mut self, value: &str) -> usize {
        if let Some(&i) = self.index.get(value) {
            return i;
        }
        self.number.push(parse_number(value));
        self.index.insert(value.to_string(), self.number.len() - 1);
        self.number.len() - 1
    }
}

/// A category value as a number: what `le` accepts (Go's float syntax, `+Inf`).
fn parse_number(v: &str) -> Option<f64> {
    let x: f64 = match v {
        "+Inf" | "Inf" | "inf" | "+inf" => f64::INFINITY,
        "-Inf" | "-inf" => f64::NEG_INFINITY,
        _ => v.trim().parse().ok()?,
    };
    (!x.is_nan()).then_some(x)
}

fn slots(
    input: &[Series],
    label: &str,
    cats: &mut Categories,
    index: &mut HashMap<Labels, usize>,
    groups: &mut Vec<Labels>,
) -> Vec<Option<Slot>> {
    let mut sources: HashMap<Labels, usize> = HashMap::new();
    input
        .iter()
        .map(|s| {
            let value = s.labels.get(label).filter(|v| !v.is_empty())?;
            if s.points.is_empty() {
                return None; // native histograms only
            }
            let category = cats.id(value);
            let mut b = s.labels.to_builder();
            b.del(label);
            let named = b.build();
            let n = sources.len();
            let source = *sources.entry(named.clone()).or_insert(n);
            let mut b = named.to_builder();
            b.del(METRIC_NAME);
            let out = drop_metadata_labels(&b.build());
            let group = *index.entry(out.clone()).or_insert_with(|| {
                groups.push(out);
                groups.len() - 1
            });
            Some(Slot {
                group,
                source,
                category,
            })
        })
        .collect()
}

/// `distance(current, reference, label)` over all steps.
pub(super) fn eval(
    ev: &Ev,
    distance: Distance,
    current: &Expr,
    reference: &Expr,
    label_arg: &Expr,
) -> Result<Val> {
    let name = distance.name();
    let label = string_arg(label_arg)?;
    if !valid_label_name(&label) || invalid_utf8(label_arg) {
        return Err(exec_err(format!(
            "{name}: invalid category label name {label:?}"
        )));
    }
    let cur = ev.eval_vector(current)?;
    let rf = ev.eval_vector(reference)?;
    let mut cats = Categories::default();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<Labels> = Vec::new();
    let cur_slots = slots(&cur, &label, &mut cats, &mut index, &mut groups);
    let ref_slots = slots(&rf, &label, &mut cats, &mut index, &mut groups);
    let mut out = OutBuilder::new(ev);
    let (mut cc, mut rc) = (StepCursor::new(cur.len()), StepCursor::new(rf.len()));
    let mut cs: Scratch<(usize, f64)> = Scratch::new(groups.len());
    let mut rs: Scratch<(usize, f64)> = Scratch::new(groups.len());
    let mut vals = Vec::new();
    let mut merged: Vec<(f64, f64, f64)> = Vec::new();
    for i in 0..ev.steps() {
        ev.check()?;
        let ts = ev.ts(i);
        for (cursor, input, slots, scratch) in [
            (&mut cc, &cur, &cur_slots, &mut cs),
            (&mut rc, &rf, &ref_slots, &mut rs),
        ] {
            cursor.gather(input, ts, &mut vals);
            scratch.clear();
            for &(si, v) in &vals {
                if let Some(s) = slots[si] {
                    scratch.push(s.group, s.source, (s.category, v))?;
                }
            }
        }
        for k in 0..cs.touched.len() {
            let g = cs.touched[k];
            if rs.owner[g] == usize::MAX {
                continue; // no reference for this group
            }
            if !union(&cs.items[g], &rs.items[g], &cats, distance, &mut merged) {
                ev.sh.warn(format!(
                    "PromQL warning: {name}: the values of category label {label:?} are not all numbers, so they have no order, for {}",
                    groups[g]
                ));
                continue;
            }
            let c: Vec<f64> = merged.iter().map(|m| m.1).collect();
            let r: Vec<f64> = merged.iter().map(|m| m.2).collect();
            let pos: Vec<f64> = merged.iter().map(|m| m.0).collect();
            if let Some(v) = distance.of_counts(&c, &r, &pos) {
                out.push_keyed(g as u64, || (groups[g].clone(), false), ts, v)?;
            }
        }
    }
    Ok(Val::Vector(out.finish()))
}

/// The union of both sides' categories as `(position, current count, reference count)`, a
/// missing category counting 0. For an ordered measure the categories must all be numbers:
/// they are sorted by value and equal values merged (`false` when one is not a number);
/// otherwise the order is the categories' first appearance and the position unused.
fn union(
    cur: &[(usize, f64)],
    reference: &[(usize, f64)],
    cats: &Categories,
    distance: Distance,
    merged: &mut Vec<(f64, f64, f64)>,
) -> bool {
    let mut by_cat: Vec<(usize, f64, f64)> = Vec::with_capacity(cur.len() + reference.len());
    let mut at: HashMap<usize, usize> = HashMap::new();
    for (side, items) in [(0, cur), (1, reference)] {
        for &(cat, v) in items {
            let i = *at.entry(cat).or_insert_with(|| {
                by_cat.push((cat, 0.0, 0.0));
                by_cat.len() - 1
            });
            if side == 0 {
                by_cat[i].1 += v;
            } else {
                by_cat[i].2 += v;
            }
        }
    }
    merged.clear();
    if !distance.ordered() {
        merged.extend(by_cat.iter().map(|&(_, c, r)| (0.0, c, r)));
        return true;
    }
    for &(cat, c, r) in &by_cat {
        let Some(x) = cats.number[cat] else {
            return false;
        };
        merged.push((x, c, r));
    }
    merged.sort_by(|a, b| a.0.total_cmp(&b.0));
    merged.dedup_by(|b, a| {
        if a.0 == b.0 {
            a.1 += b.1;
            a.2 += b.2;
            true
        } else {
            false
        }
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_numbers() {
        assert_eq!(parse_number("3"), Some(3.0));
        assert_eq!(parse_number("1e1"), Some(10.0));
        assert_eq!(parse_number("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_number("cat"), None);
        assert_eq!(parse_number("NaN"), None);
    }

    #[test]
    fn union_counts_a_missing_category_as_zero_and_orders_numbers() {
        let mut cats = Categories::default();
        let (a, b, c) = (cats.id("2"), cats.id("1"), cats.id("1.0"));
        let mut m = Vec::new();
        assert!(union(
            &[(a, 5.0), (b, 1.0)],
            &[(a, 2.0), (c, 3.0)],
            &cats,
            Distance::Wasserstein,
            &mut m
        ));
        // "1" and "1.0" are one position; sorted by value.
        assert_eq!(m, [(1.0, 1.0, 3.0), (2.0, 5.0, 2.0)]);
        assert!(union(
            &[(a, 5.0)],
            &[(b, 2.0)],
            &cats,
            Distance::Jsd,
            &mut m
        ));
        assert_eq!(m, [(0.0, 5.0, 0.0), (0.0, 0.0, 2.0)]);
        let d = cats.id("dog");
        assert!(!union(
            &[(d, 1.0)],
            &[(a, 1.0)],
            &cats,
            Distance::Ks,
            &mut m
        ));
    }
}
