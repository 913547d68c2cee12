//! Every drift function against scipy: the counts each function sees (the engine's output
//! for the argument expressions, nothing of the drift code) go to a Python script that
//! computes every measure with `scipy.stats` (`wasserstein_distance`, `chi2_contingency`,
//! `entropy`, `ks_2samp` on the expanded samples) and `scipy.spatial.distance`
//! (`jensenshannon`, `euclidean`, `chebyshev`); PSI, which scipy has no function for, with
//! numpy from its formula. vigil's results must have the same output groups and agree within
//! a relative 1e-9 (with an absolute floor of 1e-12 for values that are 0 up to rounding).
//!
//! The Python is the venv's that `.ci/run` sets up, named by `VIGIL_PYTHON` (else `python3`);
//! without scipy the test says so and passes without checking, except under CI (`CI` set),
//! where `.ci/run` installs scipy and its absence fails the test.
//!
//! Data (a fixed-seed LCG, 30 s samples over 2 h; current window the last hour, reference the
//! hour before): classic histograms (stable, shifted, empty buckets on either side, a
//! non-monotonic bucket, an idle window), categorical counters (a class on one side only, a
//! class that goes stale, ordinal numeric classes, a counter reset) and native histograms
//! (exponential with a zero bucket, custom buckets). Two argument pairs: integer deltas
//! (`x - x offset 1h`), where KS is checked by `ks_2samp` on the expanded samples, and
//! `increase()` (non-integer counts, with the counter reset), where KS has no sample
//! expansion and is checked in the unit tests only.

mod common;

use common::Lcg;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::process::Command;
use vigil_model::histogram::notation::parse_histogram;
use vigil_model::{Appendable, Labels, stale_nan};
use vigil_promql::{Engine, EngineOptions, Value};
use vigil_tsdb::{Head, HeadOptions};

const STEP_MS: i64 = 30_000;
const HOUR_MS: i64 = 3_600_000;
const END_MS: i64 = 2 * HOUR_MS;
const REL: f64 = 1e-9;
const ABS: f64 = 1e-12;

const FUNCTIONS: [&str; 10] = [
    "drift_psi",
    "drift_ks",
    "drift_jsd",
    "drift_wasserstein",
    "drift_wasserstein_normed",
    "drift_hellinger",
    "drift_kl",
    "drift_linf",
    "drift_chi2",
    "drift_chi2_pvalue",
];

impl Lcg {
    /// An index drawn with probabilities proportional to `w`.
    fn pick(&mut self, w: &[f64]) -> usize {
        let mut u = self.next() * w.iter().sum::<f64>();
        for (i, x) in w.iter().enumerate() {
            if u < *x {
                return i;
            }
            u -= x;
        }
        w.len() - 1
    }
}

const LES: [&str; 6] = ["0.1", "0.5", "1", "2.5", "5", "+Inf"];

/// (feature, weights before 1h, weights after, observations per step)
fn classic_features() -> Vec<(&'static str, [f64; 6], [f64; 6], usize)> {
    let stable = [1.0, 3.0, 4.0, 3.0, 1.0, 0.5];
    vec![
        ("stable", stable, stable, 12),
        ("shifted", stable, [0.2, 0.5, 2.0, 4.0, 3.0, 2.0], 12),
        // The first bucket empties, the +Inf bucket fills.
        (
            "sparse",
            [1.0, 2.0, 2.0, 1.0, 1.0, 0.0],
            [0.0, 1.0, 3.0, 2.0, 0.0, 1.0],
            6,
        ),
        ("idle", stable, [0.0; 6], 5),
        ("dip", stable, [0.2, 0.5, 2.0, 4.0, 3.0, 2.0], 10),
    ]
}

/// (model, classes, weights before 1h, weights after); a zero weight before 1h means the
/// class is exported as 0 until then.
type Model = (&'static str, Vec<&'static str>, Vec<f64>, Vec<f64>);

fn models() -> Vec<Model> {
    vec![
        (
            "m1",
            vec!["cat", "dog", "bird"],
            vec![5.0, 3.0, 2.0],
            vec![3.0, 3.0, 4.0],
        ),
        // "fish" only after 1h, "cow" only before; "retired" goes stale at 1h30m.
        (
            "m2",
            vec!["cat", "fish", "cow", "retired"],
            vec![6.0, 0.0, 2.0, 2.0],
            vec![6.0, 3.0, 0.0, 2.0],
        ),
        // Ordinal classes: ordered measures apply.
        (
            "ordinal",
            vec!["1", "2", "3", "4", "5"],
            vec![1.0, 2.0, 4.0, 2.0, 1.0],
            vec![0.5, 1.0, 3.0, 3.0, 2.5],
        ),
        ("reset", vec!["cat", "dog"], vec![1.0, 1.0], vec![1.0, 2.0]),
    ]
}

fn load() -> Head {
    let head = Head::new(HeadOptions::default());
    let mut rng = Lcg(7);
    let mut app = head.appender();
    for (feature, before, after, per_step) in classic_features() {
        let mut cum = [0.0f64; 6];
        for t in (0..=END_MS).step_by(STEP_MS as usize) {
            let w = if t > HOUR_MS { &after } else { &before };
            if w.iter().sum::<f64>() > 0.0 {
                for _ in 0..(rng.next() * per_step as f64) as usize {
                    let b = rng.pick(w);
                    for c in &mut cum[b..] {
                        *c += 1.0;
                    }
                }
            }
            for (i, le) in LES.iter().enumerate() {
                let mut v = cum[i];
                if feature == "dip" && i == 2 && t > HOUR_MS {
                    v = cum[1] - 3.0; // below the bucket under it: a broken exporter
                }
                let l = Labels::from_pairs([
                    ("__name__", "feat_bucket"),
                    ("feature", feature),
                    ("le", le),
                ]);
                app.append(None, &l, t, v).unwrap();
            }
        }
    }
    for (model, classes, before, after) in models() {
        let mut cum = vec![0.0f64; classes.len()];
        for t in (0..=END_MS).step_by(STEP_MS as usize) {
            let w = if t > HOUR_MS { &after } else { &before };
            for _ in 0..(rng.next() * 12.0) as usize {
                cum[rng.pick(w)] += 1.0;
            }
            if model == "reset" && t == HOUR_MS + 30 * 60_000 {
                cum.iter_mut().for_each(|c| *c = 0.0); // the process restarted
            }
            for (i, class) in classes.iter().enumerate() {
                let l = Labels::from_pairs([
                    ("__name__", "pred_total"),
                    ("model", model),
                    ("class", class),
                ]);
                let stale_from = HOUR_MS + 30 * 60_000;
                if *class == "retired" && t >= stale_from {
                    if t == stale_from {
                        app.append(None, &l, t, stale_nan()).unwrap();
                    }
                    continue;
                }
                app.append(None, &l, t, cum[i]).unwrap();
            }
        }
    }
    // Native histograms: counts grow by a fixed increment per step, different before and
    // after 1h. `exp`: schema 0 with a zero bucket; `nhcb`: custom bounds 1, 2, 5.
    let native = [
        (
            "exp",
            "{{schema:0 count:%C sum:1 z_bucket:%0 z_bucket_w:0.001 offset:-1 buckets:[%1 %2 %3 %4]}}",
            [1.0, 2.0, 3.0, 1.0, 0.0],
            [0.0, 1.0, 2.0, 3.0, 2.0],
        ),
        (
            "nhcb",
            "{{schema:-53 count:%C sum:1 custom_values:[1 2 5] buckets:[%0 %1 %2 %3]}}",
            [2.0, 3.0, 1.0, 0.0, 0.0],
            [1.0, 1.0, 3.0, 1.0, 0.0],
        ),
    ];
    for (case, template, before, after) in native {
        let l = Labels::from_pairs([("__name__", "lat"), ("case", case)]);
        let mut cum = [0.0f64; 5];
        for t in (0..=END_MS).step_by(STEP_MS as usize) {
            let inc = if t > HOUR_MS { &after } else { &before };
            for (c, i) in cum.iter_mut().zip(inc) {
                *c += i;
            }
            let mut text = template.replace("%C", &cum.iter().sum::<f64>().to_string());
            for (i, c) in cum.iter().enumerate() {
                text = text.replace(&format!("%{i}"), &c.to_string());
            }
            let (h, _) = parse_histogram(&text).unwrap();
            app.append_histogram(None, &l, t, &h).unwrap();
        }
    }
    app.commit().unwrap();
    head
}

fn query(db: &Head, q: &str) -> Vec<vigil_promql::VectorSample> {
    let out = Engine::new(EngineOptions::default())
        .instant_query(db, q, END_MS, None)
        .unwrap_or_else(|e| panic!("{q}: {e}"));
    match out.value {
        Value::Vector(v) => v,
        other => panic!("{q}: not a vector: {other:?}"),
    }
}

/// The labels of `l` without `drop` and the metric name, as text: the output group.
fn group_key(l: &Labels, drop: &str) -> String {
    let pairs: Vec<String> = l
        .iter()
        .filter(|x| x.name != drop && x.name != "__name__")
        .map(|x| format!("{}={:?}", x.name, x.value))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

/// One side's inputs by group, as the Python script reads them: classic `[[le, count]]`,
/// categorical `{category: count}`, native `[[lower, upper, count]]`.
fn inputs(db: &Head, q: &str, kind: &str) -> BTreeMap<String, Json> {
    let mut out: BTreeMap<String, Json> = BTreeMap::new();
    for s in query(db, q) {
        match kind {
            "classic" => {
                let e = out
                    .entry(group_key(&s.labels, "le"))
                    .or_insert_with(|| json!([]));
                e.as_array_mut()
                    .unwrap()
                    .push(json!([s.labels.get("le").unwrap(), s.v]));
            }
            "categorical" => {
                let e = out
                    .entry(group_key(&s.labels, "class"))
                    .or_insert_with(|| json!({}));
                e[s.labels.get("class").unwrap()] = json!(s.v);
            }
            _ => {
                let h = s.h.as_ref().expect("a native histogram");
                let b: Vec<Json> = h
                    .all_buckets()
                    .iter()
                    .map(|b| json!([bound(b.lower), bound(b.upper), b.count]))
                    .collect();
                out.insert(group_key(&s.labels, ""), Json::Array(b));
            }
        }
    }
    out
}

/// A bucket bound for JSON, which has no infinities: those as Go spells them.
fn bound(x: f64) -> Json {
    if x.is_finite() {
        json!(x)
    } else {
        json!(if x > 0.0 { "+Inf" } else { "-Inf" })
    }
}

const SCIPY: &str = r#"
import json, math, sys
import numpy as np
from scipy import stats
from scipy.spatial import distance as ssd

EPS = 1e-4

def measures(c, r, pos, ks_pos):
    c = np.asarray(c, dtype=float); r = np.asarray(r, dtype=float)
    if not (c.sum() > 0 and r.sum() > 0):
        return None
    p = c / c.sum(); q = r / r.sum()
    pc = np.maximum(p, EPS); qc = np.maximum(q, EPS)
    out = {
        "drift_psi": float(np.sum((pc - qc) * np.log(pc / qc))),
        "drift_jsd": float(ssd.jensenshannon(p, q, base=2) ** 2),
        "drift_hellinger": float(ssd.euclidean(np.sqrt(p), np.sqrt(q)) / np.sqrt(2)),
        "drift_kl": float(stats.entropy(pc, qc)),
        "drift_linf": float(ssd.chebyshev(p, q)),
    }
    keep = (c + r) > 0
    if keep.sum() >= 2:
        res = stats.chi2_contingency(np.array([c[keep], r[keep]]), correction=False)
        out["drift_chi2"] = float(res.statistic)
        out["drift_chi2_pvalue"] = float(res.pvalue)
    else:
        out["drift_chi2"] = 0.0
        out["drift_chi2_pvalue"] = 1.0
    if pos is not None:
        pos = np.asarray(pos, dtype=float)
        w = float(stats.wasserstein_distance(pos, pos, c, r))
        out["drift_wasserstein"] = w
        mean = np.average(pos, weights=r)
        std = math.sqrt(np.average((pos - mean) ** 2, weights=r))
        out["drift_wasserstein_normed"] = w / max(std, 1e-3)
        if np.all(c == np.round(c)) and np.all(r == np.round(r)):
            xs = np.repeat(ks_pos, c.astype(int)); ys = np.repeat(ks_pos, r.astype(int))
            out["drift_ks"] = float(stats.ks_2samp(xs, ys).statistic)
    return out

def classic(cur, ref):
    def prep(b):
        b = sorted(((math.inf if le == "+Inf" else float(le), v) for le, v in b))
        if not b or b[-1][0] != math.inf:
            return None
        les = [x[0] for x in b]
        cum = np.maximum.accumulate([x[1] for x in b])
        return les, cum
    a, b = prep(cur), prep(ref)
    if a is None or b is None or not (a[1][-1] > 0 and b[1][-1] > 0) or a[0] != b[0]:
        return None
    les = a[0]
    c = np.diff(a[1], prepend=0.0); r = np.diff(b[1], prepend=0.0)
    finite = [x for x in les if math.isfinite(x)]
    top = finite[-1] if finite else 0.0
    pos = [x if math.isfinite(x) else top for x in les]
    ks_pos = [x if math.isfinite(x) else top + 1.0 for x in les]
    return measures(c, r, pos, ks_pos)

def categorical(cur, ref):
    cats = list(dict.fromkeys(list(cur) + list(ref)))
    try:
        values = sorted(set(float(k) for k in cats))
    except ValueError:
        values = None
    if values is None:
        return measures([cur.get(k, 0.0) for k in cats], [ref.get(k, 0.0) for k in cats], None, None)
    c = [sum(v for k, v in cur.items() if float(k) == x) for x in values]
    r = [sum(v for k, v in ref.items() if float(k) == x) for x in values]
    return measures(c, r, values, values)

def native(cur, ref):
    cur = [(float(b[0]), float(b[1]), b[2]) for b in cur]
    ref = [(float(b[0]), float(b[1]), b[2]) for b in ref]
    keys = sorted(set((b[0], b[1]) for b in cur) | set((b[0], b[1]) for b in ref))
    def counts(bs):
        d = {(b[0], b[1]): b[2] for b in bs}
        return [d.get(k, 0.0) for k in keys]
    uppers = [k[1] for k in keys]
    finite = [u for u in uppers if math.isfinite(u)]
    top = finite[-1] if finite else 0.0
    pos = [u if math.isfinite(u) else top for u in uppers]
    ks_pos = [u if math.isfinite(u) else top + 1.0 for u in uppers]
    return measures(counts(cur), counts(ref), pos, ks_pos)

cases = json.load(open(sys.argv[1]))
out = {}
for name, case in cases.items():
    f = {"classic": classic, "categorical": categorical, "native": native}[case["kind"]]
    out[name] = f(case["cur"], case["ref"])
json.dump(out, open(sys.argv[2], "w"))
"#;

fn python() -> Option<String> {
    let py = std::env::var("VIGIL_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import scipy, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(py)
}

/// The argument pairs: (kind, current, reference, category label).
fn pairs() -> Vec<(&'static str, String, String, &'static str)> {
    let delta = |sel: &str| {
        (
            format!("{sel} - {sel} offset 1h"),
            format!("{sel} offset 1h - {sel} offset 2h"),
        )
    };
    let incr = |sel: &str| {
        (
            format!("increase({sel}[1h])"),
            format!("increase({sel}[1h] offset 1h)"),
        )
    };
    let mut out = Vec::new();
    for (kind, sel, label) in [
        ("classic", "feat_bucket", ""),
        ("categorical", r#"pred_total{model!="reset"}"#, "class"),
        ("native", "lat", ""),
    ] {
        let (c, r) = delta(sel);
        out.push((kind, c, r, label));
    }
    for (kind, sel, label) in [
        ("classic", "feat_bucket", ""),
        ("categorical", "pred_total", "class"),
        ("native", "lat", ""),
    ] {
        let (c, r) = incr(sel);
        out.push((kind, c, r, label));
    }
    out
}

#[test]
fn drift_functions_agree_with_scipy() {
    let Some(py) = python() else {
        // CI installs scipy (.ci/run): there a missing scipy is a failure, elsewhere a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "scipy is not importable by $VIGIL_PYTHON: .ci/run installs it"
        );
        println!(
            "SKIPPED drift_functions_agree_with_scipy: scipy is not importable by $VIGIL_PYTHON (or python3); .ci/run installs it in its venv"
        );
        return;
    };
    let db = load();
    let dir = std::env::temp_dir().join(format!("vigil-drift-scipy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Every case: the inputs of every group of every argument pair.
    let mut cases = serde_json::Map::new();
    let mut case_of: Vec<(usize, String, String)> = Vec::new(); // (pair, group, case name)
    for (i, (kind, cur, reference, _)) in pairs().iter().enumerate() {
        let (c, r) = (inputs(&db, cur, kind), inputs(&db, reference, kind));
        for (g, cv) in &c {
            let Some(rv) = r.get(g) else { continue };
            let name = format!("{i} {g}");
            cases.insert(name.clone(), json!({"kind": kind, "cur": cv, "ref": rv}));
            case_of.push((i, g.clone(), name));
        }
    }
    let (cin, cout) = (dir.join("cases.json"), dir.join("scipy.json"));
    std::fs::write(&cin, serde_json::to_string(&cases).unwrap()).unwrap();
    let script = dir.join("reference.py");
    std::fs::write(&script, SCIPY).unwrap();
    let run = Command::new(&py)
        .arg(&script)
        .arg(&cin)
        .arg(&cout)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let want: BTreeMap<String, Json> =
        serde_json::from_str(&std::fs::read_to_string(&cout).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    let mut checked = 0;
    let mut ks_checked = 0;
    let mut p_range = (1.0f64, 0.0f64);
    for (i, (_, cur, reference, label)) in pairs().iter().enumerate() {
        for f in FUNCTIONS {
            let q = if label.is_empty() {
                format!("{f}({cur}, {reference})")
            } else {
                format!("{f}({cur}, {reference}, \"{label}\")")
            };
            let got: BTreeMap<String, f64> = query(&db, &q)
                .into_iter()
                .map(|s| (group_key(&s.labels, ""), s.v))
                .collect();
            // The groups scipy has a value for, by the Python's own rules of no output.
            let mut expected: BTreeMap<String, f64> = BTreeMap::new();
            let mut unchecked: Vec<String> = Vec::new();
            for (pi, g, name) in &case_of {
                if *pi != i {
                    continue;
                }
                let w = &want[name];
                if w.is_null() {
                    continue; // no output expected
                }
                match w.get(f) {
                    Some(v) => {
                        expected.insert(g.clone(), v.as_f64().unwrap());
                    }
                    // KS of non-integer counts: no sample expansion to compare with.
                    None if f == "drift_ks" && w.get("drift_wasserstein").is_some() => {
                        unchecked.push(g.clone())
                    }
                    // Ordered measures of categories that are not numbers: no output.
                    None => {}
                }
            }
            let got_checked: BTreeMap<&String, &f64> =
                got.iter().filter(|(g, _)| !unchecked.contains(g)).collect();
            assert_eq!(
                got_checked.keys().copied().collect::<Vec<_>>(),
                expected.keys().collect::<Vec<_>>(),
                "{q}: output groups"
            );
            for (g, w) in &expected {
                let v = got[g];
                assert!(
                    (v - w).abs() <= REL * v.abs().max(w.abs()) + ABS,
                    "{q}, {g}: vigil {v:e}, scipy {w:e}"
                );
                if f == "drift_chi2_pvalue" {
                    p_range = (p_range.0.min(v), p_range.1.max(v));
                }
                checked += 1;
                if f == "drift_ks" {
                    ks_checked += 1;
                }
            }
        }
    }
    println!("{checked} values agree with scipy ({ks_checked} of them KS via ks_2samp)");
    // Every function on every kind of input; the edge cases are in the data.
    assert!(checked >= 150, "{checked}");
    assert!(ks_checked >= 6, "{ks_checked}");
    // p-values from the deep tail (where the incomplete gamma function is hardest) to no
    // evidence of drift at all.
    println!("chi-square p-values from {:e} to {}", p_range.0, p_range.1);
    assert!(p_range.0 < 1e-50 && p_range.1 > 0.5, "{p_range:?}");
    let names: Vec<&String> = want.keys().collect();
    for g in [
        r#"{feature="sparse"}"#,
        r#"{feature="dip"}"#,
        r#"{model="m2"}"#,
        r#"{model="ordinal"}"#,
        r#"{model="reset"}"#,
        r#"{case="exp"}"#,
        r#"{case="nhcb"}"#,
    ] {
        assert!(names.iter().any(|n| n.ends_with(g)), "no case {g}");
    }
    // The idle feature has no current observations: no output, for scipy as for vigil.
    assert!(want[r#"0 {feature="idle"}"#].is_null());
}
