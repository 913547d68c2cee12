//! Reference values for `drift_psi`, `drift_ks` and `drift_jsd`: series are loaded into the
//! test storage, `increase(...)` is evaluated through the engine, and the three distances
//! are recomputed from the `increase()` output by a straightforward implementation of the
//! formulas written here (no vigil code involved beyond `increase()`); vigil's functions must
//! agree within 1e-9, with the same set of output series.
//!
//! The data (deterministic, from a fixed-seed LCG) has stable and drifting features on three
//! instances, plus the edge cases: empty buckets, a group with no observations in the current
//! window, a group whose `le` set changed, and a group with a non-monotonic bucket.

mod common;

use common::Lcg;
use std::collections::BTreeMap;
use vigil_model::{Appendable, Labels};
use vigil_promql::{Engine, EngineOptions, QueryOutput, Value};
use vigil_tsdb::{Head, HeadOptions};

const STEP_MS: i64 = 30_000;
const HOUR_MS: i64 = 3_600_000;
/// Data from 0 to 3h; the current window is (2h, 3h] at 3h, the reference `offset 2h`.
const END_MS: i64 = 3 * HOUR_MS;
const TOLERANCE: f64 = 1e-9;

/// One feature of one instance: bucket bounds and per-bucket observation weights before and
/// after `switch_ms` (the weights after describe the current window's distribution).
struct Feature {
    instance: &'static str,
    feature: &'static str,
    les: Vec<&'static str>,
    les_after: Option<Vec<&'static str>>,
    weights: Vec<f64>,
    weights_after: Vec<f64>,
    /// Extra count added to this bucket index's cumulative series only (breaks monotonicity).
    dip: Option<usize>,
}

const LES: [&str; 6] = ["0.1", "0.5", "1", "2.5", "5", "+Inf"];

fn features() -> Vec<Feature> {
    let f = |instance, feature, w: &[f64], wa: &[f64]| Feature {
        instance,
        feature,
        les: LES.to_vec(),
        les_after: None,
        weights: w.to_vec(),
        weights_after: wa.to_vec(),
        dip: None,
    };
    let stable = [1.0, 3.0, 4.0, 3.0, 1.0, 0.5];
    let shifted = [0.2, 0.5, 2.0, 4.0, 3.0, 2.0];
    let mut out = Vec::new();
    for inst in ["a:1", "b:1", "c:1"] {
        out.push(f(inst, "stable", &stable, &stable));
        out.push(f(inst, "drifting", &stable, &shifted));
        // Empty buckets: the first bucket is never hit now, the last one never was.
        out.push(f(
            inst,
            "sparse",
            &[1.0, 2.0, 2.0, 1.0, 1.0, 0.0],
            &[0.0, 1.0, 3.0, 2.0, 0.0, 1.0],
        ));
    }
    // No observations in the current window: a zero +Inf count.
    out.push(f("a:1", "idle", &stable, &[0.0; 6]));
    // The bucket layout changed at the switch: `le` sets differ.
    out.push(Feature {
        les_after: Some(vec!["0.1", "0.25", "1", "2.5", "5", "+Inf"]),
        ..f("a:1", "relayout", &stable, &stable)
    });
    // A non-monotonic bucket: le="1" counts less than le="0.5" (a broken exporter).
    out.push(Feature {
        dip: Some(2),
        ..f("b:1", "dip", &stable, &shifted)
    });
    out
}

fn load() -> Head {
    let head = Head::new(HeadOptions::default());
    let mut rng = Lcg(42);
    let mut app = head.appender();
    let switch_ms = 2 * HOUR_MS;
    for f in features() {
        let n = f.les.len();
        let mut cum = vec![0.0f64; n]; // cumulative counts, per bucket
        for t in (0..=END_MS).step_by(STEP_MS as usize) {
            let after = t > switch_ms;
            let w = if after { &f.weights_after } else { &f.weights };
            let total: f64 = w.iter().sum();
            // 0..20 observations this step, each put in a bucket by its weight.
            if total > 0.0 {
                let k = (rng.next() * 20.0) as usize;
                for _ in 0..k {
                    let mut u = rng.next() * total;
                    let mut b = 0;
                    while b + 1 < n && u >= w[b] {
                        u -= w[b];
                        b += 1;
                    }
                    for c in &mut cum[b..] {
                        *c += 1.0;
                    }
                }
            }
            let les = match (&f.les_after, after) {
                (Some(l), true) => l,
                _ => &f.les,
            };
            for (i, le) in les.iter().enumerate() {
                let mut v = cum[i];
                if f.dip == Some(i) {
                    v = 0.8 * cum[i - 1]; // still a counter, but below the bucket under it
                }
                let l = Labels::from_pairs([
                    ("__name__", "model_input_value_bucket"),
                    ("instance", f.instance),
                    ("feature", f.feature),
                    ("le", le),
                ]);
                app.append(None, &l, t, v).unwrap();
            }
        }
    }
    app.commit().unwrap();
    head
}

fn engine() -> Engine {
    Engine::new(EngineOptions::default())
}

fn instant(db: &Head, q: &str, t: i64) -> QueryOutput {
    engine()
        .instant_query(db, q, t, None)
        .unwrap_or_else(|e| panic!("{q}: {e}"))
}

fn samples(out: &QueryOutput) -> Vec<(Labels, f64)> {
    match &out.value {
        Value::Vector(v) => v.iter().map(|s| (s.labels.clone(), s.v)).collect(),
        other => panic!("not a vector: {other:?}"),
    }
}

// ---- The independent implementation, from the formulas ----

/// Group key: the labels without `le` and `__name__`, as text.
fn group_key(l: &Labels) -> String {
    let pairs: Vec<String> = l
        .iter()
        .filter(|x| x.name != "le" && x.name != "__name__")
        .map(|x| format!("{}={:?}", x.name, x.value))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

fn parse_le(s: &str) -> f64 {
    if s == "+Inf" {
        f64::INFINITY
    } else {
        s.parse().unwrap()
    }
}

/// Buckets per group, sorted by upper bound.
fn groups(v: &[(Labels, f64)]) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (l, v) in v {
        out.entry(group_key(l))
            .or_default()
            .push((parse_le(l.get("le").unwrap()), *v));
    }
    for b in out.values_mut() {
        b.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    }
    out
}

struct Expected {
    psi: f64,
    ks: f64,
    jsd: f64,
}

/// Per-bucket shares and cumulative shares: cumulative counts made monotonic with a running
/// maximum, differenced, divided by the +Inf count.
fn shares(b: &[(f64, f64)]) -> (Vec<f64>, Vec<f64>) {
    let mut fixed = Vec::new();
    let mut m = f64::NEG_INFINITY;
    for &(_, c) in b {
        m = m.max(c);
        fixed.push(m);
    }
    let total = *fixed.last().unwrap();
    let mut p = Vec::new();
    let mut prev = 0.0;
    for &c in &fixed {
        p.push((c - prev) / total);
        prev = c;
    }
    (p, fixed.iter().map(|c| c / total).collect())
}

/// `None` where no output is expected; `Some(true)` in the flag when a warning is expected.
fn expected(cur: &[(f64, f64)], reference: &[(f64, f64)]) -> (Option<Expected>, bool) {
    let total = |b: &[(f64, f64)]| match b.last() {
        Some(&(le, c)) if le == f64::INFINITY => c,
        _ => 0.0,
    };
    if total(cur) <= 0.0 || total(reference) <= 0.0 {
        return (None, false);
    }
    let les = |b: &[(f64, f64)]| b.iter().map(|x| x.0).collect::<Vec<_>>();
    if les(cur) != les(reference) {
        return (None, true);
    }
    let (p, cp) = shares(cur);
    let (q, cq) = shares(reference);
    let eps = 1e-4;
    let mut psi = 0.0;
    for i in 0..p.len() {
        let (a, b) = (p[i].max(eps), q[i].max(eps));
        psi += (a - b) * (a / b).ln();
    }
    let mut ks: f64 = 0.0;
    for i in 0..cp.len() {
        ks = ks.max((cp[i] - cq[i]).abs());
    }
    let mut jsd = 0.0;
    for i in 0..p.len() {
        let m = (p[i] + q[i]) / 2.0;
        if p[i] > 0.0 {
            jsd += 0.5 * p[i] * (p[i] / m).log2();
        }
        if q[i] > 0.0 {
            jsd += 0.5 * q[i] * (q[i] / m).log2();
        }
    }
    (Some(Expected { psi, ks, jsd }), false)
}

/// Checks drift_*(cur, ref) against the independent computation from `increase()`'s output
/// at `t` (same output groups, values within [`TOLERANCE`], one warning per group whose `le`
/// sets differ); returns the expected values by group.
fn check(db: &Head, cur: &str, reference: &str, t: i64) -> BTreeMap<String, Expected> {
    let cg = groups(&samples(&instant(db, cur, t)));
    let rg = groups(&samples(&instant(db, reference, t)));
    let mut want: BTreeMap<String, Expected> = BTreeMap::new();
    let mut warn_groups = Vec::new();
    for (k, c) in &cg {
        let Some(r) = rg.get(k) else { continue };
        match expected(c, r) {
            (Some(e), _) => {
                want.insert(k.clone(), e);
            }
            (None, true) => warn_groups.push(k.clone()),
            (None, false) => {}
        }
    }
    assert!(!want.is_empty(), "nothing to compare at {t}");
    for f in ["drift_psi", "drift_ks", "drift_jsd"] {
        let q = format!("{f}({cur}, {reference})");
        let out = instant(db, &q, t);
        let got: BTreeMap<String, f64> = samples(&out)
            .into_iter()
            .map(|(l, v)| {
                assert!(l.get("__name__").is_none() && l.get("le").is_none(), "{l}");
                (group_key(&l), v)
            })
            .collect();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{q} at {t}: output groups"
        );
        for (k, e) in &want {
            let w = match f {
                "drift_psi" => e.psi,
                "drift_ks" => e.ks,
                _ => e.jsd,
            };
            let g = got[k];
            assert!(
                (g - w).abs() <= TOLERANCE,
                "{q} at {t}, {k}: vigil {g}, reference {w}"
            );
            if f == "drift_jsd" {
                assert!((0.0..=1.0).contains(&g), "{k}: JSD {g}");
            }
        }
        assert_eq!(
            out.warnings.len(),
            warn_groups.len(),
            "{q}: {:?}",
            out.warnings
        );
        for (w, k) in out.warnings.iter().zip(&warn_groups) {
            assert!(
                w.contains("different bucket bounds") && w.ends_with(k.as_str()),
                "{w} for {k}"
            );
        }
    }
    want
}

const CUR: &str = "increase(model_input_value_bucket[1h])";
const REF: &str = "increase(model_input_value_bucket[1h] offset 2h)";

#[test]
fn drift_functions_agree_with_an_independent_computation() {
    let db = load();
    let want = check(&db, CUR, REF, END_MS);
    // Every instance's stable feature is well below the "moderate" PSI, every drifting one
    // well above "significant".
    for inst in ["a:1", "b:1", "c:1"] {
        let s = &want[&format!("{{feature=\"stable\", instance=\"{inst}\"}}")];
        let d = &want[&format!("{{feature=\"drifting\", instance=\"{inst}\"}}")];
        println!(
            "{inst}: stable PSI {:.4} KS {:.4} JSD {:.4}; drifting PSI {:.4} KS {:.4} JSD {:.4}",
            s.psi, s.ks, s.jsd, d.psi, d.ks, d.jsd
        );
        assert!(s.psi < 0.1, "stable PSI {}", s.psi);
        assert!(d.psi > 0.2, "drifting PSI {}", d.psi);
    }
    // The edge cases are really in the data.
    let cur = groups(&samples(&instant(&db, CUR, END_MS)));
    let reference = groups(&samples(&instant(&db, REF, END_MS)));
    let idle = &cur[r#"{feature="idle", instance="a:1"}"#];
    assert_eq!(idle.last().unwrap().1, 0.0, "zero-count group");
    assert!(!want.contains_key(r#"{feature="idle", instance="a:1"}"#));
    assert!(!want.contains_key(r#"{feature="relayout", instance="a:1"}"#));
    let dip = &cur[r#"{feature="dip", instance="b:1"}"#];
    assert!(dip[2].1 < dip[1].1, "non-monotonic bucket: {dip:?}");
    assert!(want.contains_key(r#"{feature="dip", instance="b:1"}"#));
    let sparse = &cur[r#"{feature="sparse", instance="a:1"}"#];
    assert_eq!(sparse[0].1, 0.0, "an empty first bucket now");
    let sparse_ref = &reference[r#"{feature="sparse", instance="a:1"}"#];
    assert_eq!(
        sparse_ref[5].1, sparse_ref[4].1,
        "an empty +Inf bucket before"
    );
    assert_eq!(want.len(), 3 * 3 + 1);
    // The monotonicity fix is reported as Prometheus does for histogram_quantile.
    let out = instant(&db, &format!("drift_psi({CUR}, {REF})"), END_MS);
    assert!(
        out.infos
            .iter()
            .any(|i| i.contains("input to drift_psi needed to be fixed for monotonicity")),
        "{:?}",
        out.infos
    );
}

#[test]
fn aggregated_groups_and_other_times_agree_too() {
    let db = load();
    // The alert's shape: summed over instances by (le, feature).
    let cur = "sum by (le, feature) (increase(model_input_value_bucket[1h]))";
    let reference = "sum by (le, feature) (increase(model_input_value_bucket[1h] offset 2h))";
    let want = check(&db, cur, reference, END_MS);
    assert!(want[r#"{feature="stable"}"#].psi < 0.1);
    assert!(want[r#"{feature="drifting"}"#].psi > 0.2);
    // While the shift enters the current window, and before it.
    for t in [2 * HOUR_MS + 20 * 60_000, 2 * HOUR_MS + 40 * 60_000] {
        check(&db, CUR, REF, t);
    }
    // Just after the switch, the layout change of `relayout` is already visible.
    let want = check(&db, CUR, REF, 2 * HOUR_MS + 5 * 60_000);
    assert!(!want.contains_key(r#"{feature="relayout", instance="a:1"}"#));
}

#[test]
fn range_query_equals_instant_queries() {
    let db = load();
    for f in ["drift_psi", "drift_ks", "drift_jsd"] {
        let q = format!("{f}({CUR}, {REF})");
        let start = 2 * HOUR_MS + 10 * 60_000; // the reference needs two samples
        let step = 5 * 60_000;
        let out = engine()
            .range_query(&db, &q, start, END_MS, step, None)
            .unwrap();
        let Value::Matrix(m) = out.value else {
            panic!("not a matrix")
        };
        // At every step, the range result's points are exactly the instant query's vector.
        let mut n = 0;
        for t in (start..=END_MS).step_by(step as usize) {
            let mut inst = samples(&instant(&db, &q, t));
            inst.sort_by(|a, b| a.0.cmp(&b.0));
            let mut from_range: Vec<(Labels, f64)> = m
                .iter()
                .filter_map(|s| {
                    let p = s.samples.iter().find(|p| p.t == t)?;
                    Some((s.labels.clone(), p.v))
                })
                .collect();
            from_range.sort_by(|a, b| a.0.cmp(&b.0));
            assert!(!inst.is_empty());
            assert_eq!(inst, from_range, "{q} at {t}");
            n += inst.len();
        }
        assert_eq!(
            n,
            m.iter().map(|s| s.samples.len()).sum::<usize>(),
            "{q}: no other points"
        );
    }
}
