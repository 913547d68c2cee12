//! `info(v [, {data-label selector}])`: each series of `v` gains the data labels of the info
//! series (`target_info` unless the selector names others) that share its identifying labels
//! (`instance`, `job`), as Prometheus 3.14's experimental function does.
//!
//! The info series are those matching the identifying-label values seen in `v` (one regex per
//! label), the selector's data-label matchers and the info-name matchers; at each step the
//! newest sample of each info series within the lookback counts, and of two info series with
//! one signature the newer one wins. A data label the base series already has is kept as it
//! is; two info series giving one label different values is an error. With a data-label
//! matcher that does not match the empty string, a series without a matching info series is
//! dropped. Info series in `v` themselves pass through unchanged.

use crate::engine::eval::{
    Ev, OutBuilder, PV, Result, Series, Val, exec_err, selector_matchers, unwrap_parens,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use vigil_model::{Labels, METRIC_NAME, MatchOp, Matcher, SelectHints, is_stale_nan};
use vigil_promql_parser::Expr;

const TARGET_INFO: &str = "target_info";
const IDENTIFYING: [&str; 2] = ["instance", "job"];

fn name_is(m: &Matcher) -> bool {
    m.name == METRIC_NAME
}

/// Prometheus' `effectiveInfoNameMatchers`: the name matchers when one of them is `=` or `=~`;
/// otherwise `__name__=~".+_info"` with them; with none, `target_info`.
fn effective_name_matchers(ms: Vec<Matcher>) -> Result<Vec<Matcher>> {
    if ms
        .iter()
        .any(|m| matches!(m.op, MatchOp::Equal | MatchOp::RegexMatch(_)))
    {
        return Ok(ms);
    }
    if !ms.is_empty() {
        let mut out =
            vec![Matcher::regex(METRIC_NAME, ".+_info").map_err(|e| exec_err(e.to_string()))?];
        out.extend(ms);
        return Ok(out);
    }
    Ok(vec![Matcher::equal(METRIC_NAME, TARGET_INFO)])
}

/// Escapes `s` for a regex alternation (Go's `regexp.QuoteMeta`).
fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(super) fn info(ev: &Ev, args: &[&Expr]) -> Result<Val> {
    let base = ev.eval_vector(args[0])?;
    // Data-label matchers by label name; the name matchers pick the info metrics.
    let mut data: BTreeMap<String, Vec<Matcher>> = BTreeMap::new();
    let mut names = Vec::new();
    match args.get(1).map(|a| unwrap_parens(a)) {
        Some(Expr::VectorSelector(vs)) => {
            for m in selector_matchers(vs)? {
                if name_is(&m) {
                    names.push(m.clone());
                }
                data.entry(m.name.clone()).or_default().push(m);
            }
        }
        Some(_) => {
            return Err(exec_err(
                "info(): the second argument must be a label selector",
            ));
        }
        None => names.push(Matcher::equal(METRIC_NAME, TARGET_INFO)),
    }
    let effective = effective_name_matchers(names.clone())?;
    let ignored: Vec<bool> = base
        .iter()
        .map(|s| {
            let name = s.labels.get(METRIC_NAME).unwrap_or("");
            effective.iter().all(|m| m.matches(name))
        })
        .collect();
    // Identifying-label values of the series to enrich.
    let mut id_values: BTreeMap<&str, HashSet<String>> = BTreeMap::new();
    for (s, _) in base.iter().zip(&ignored).filter(|(_, i)| !**i) {
        for l in IDENTIFYING {
            if let Some(v) = s.labels.get(l).filter(|v| !v.is_empty()) {
                id_values.entry(l).or_default().insert(v.to_string());
            }
        }
    }
    data.remove(METRIC_NAME);
    let infos = if id_values.is_empty() {
        Vec::new()
    } else {
        let mut ms = Vec::new();
        for (l, vals) in &id_values {
            let mut vals: Vec<&String> = vals.iter().collect();
            vals.sort();
            let re = vals
                .iter()
                .map(|v| quote_meta(v))
                .collect::<Vec<_>>()
                .join("|");
            ms.push(Matcher::regex(*l, &re).map_err(|e| exec_err(e.to_string()))?);
        }
        ms.extend(data.values().flatten().cloned());
        ms.extend(effective_name_matchers(names)?);
        select_info(ev, &ms)?
    };
    // Signatures: the info metric's name with the identifying labels.
    let sig = |name: &str, l: &Labels| {
        let mut s = name.to_string();
        for id in IDENTIFYING {
            s.push('\u{ff}');
            s.push_str(l.get(id).unwrap_or(""));
        }
        s
    };
    let info_names: Vec<String> = {
        let mut n: Vec<String> = infos
            .iter()
            .map(|(l, _)| l.get(METRIC_NAME).unwrap_or("").to_string())
            .collect();
        n.sort();
        n.dedup();
        n
    };
    let info_sigs: Vec<String> = infos
        .iter()
        .map(|(l, _)| sig(l.get(METRIC_NAME).unwrap_or(""), l))
        .collect();
    let empty_ok = data.values().flatten().all(|m| m.matches(""));
    let mut out = OutBuilder::new(ev);
    let mut cursors = vec![(0usize, 0usize); base.len()];
    for i in 0..ev.steps() {
        ev.check()?;
        let ts = ev.ts(i);
        // The newest info sample per signature at this step (its time decides).
        let mut by_sig: HashMap<&str, (i64, usize)> = HashMap::new();
        for (k, (l, times)) in infos.iter().enumerate() {
            let Some(t) = newest_at(times, ts, ev.sh.lookback) else {
                continue;
            };
            match by_sig.get(info_sigs[k].as_str()) {
                Some(&(t0, _)) if t0 > t => {}
                Some(&(t0, k0)) if t0 == t => {
                    return Err(exec_err(format!(
                        "found duplicate series for info metric: existing {} @ {t0}, new {} @ {t}",
                        crate::binary::prom_labels(&infos[k0].0),
                        crate::binary::prom_labels(l)
                    )));
                }
                _ => {
                    by_sig.insert(info_sigs[k].as_str(), (t, k));
                }
            }
        }
        for (si, s) in base.iter().enumerate() {
            let Some(v) = point_at(s, &mut cursors[si], ts) else {
                continue;
            };
            if ignored[si] {
                push(&mut out, s.labels.clone(), s.drop_name, ts, v)?;
                continue;
            }
            let mut add: BTreeMap<String, String> = BTreeMap::new();
            let mut seen = 0;
            for name in &info_names {
                let Some(&(_, k)) = by_sig.get(sig(name, &s.labels).as_str()) else {
                    continue;
                };
                seen += 1;
                for l in infos[k].0.iter() {
                    if l.name == METRIC_NAME || (!data.is_empty() && !data.contains_key(&l.name)) {
                        continue;
                    }
                    if let Some(prev) = add.get(&l.name)
                        && *prev != l.value
                    {
                        return Err(exec_err(format!("conflicting label: {}", l.name)));
                    }
                    if s.labels.get(&l.name).is_some() {
                        continue;
                    }
                    add.insert(l.name.clone(), l.value.clone());
                }
            }
            if seen == 0 && !empty_ok {
                continue;
            }
            let mut b = s.labels.to_builder();
            for (n, v) in add {
                b.set(n, v);
            }
            push(&mut out, b.build(), s.drop_name, ts, v)?;
        }
    }
    Ok(Val::Vector(out.finish()))
}

/// A float or histogram point of `s` at exactly `ts` (cursors move forward only).
fn point_at(s: &Series, cur: &mut (usize, usize), ts: i64) -> Option<PV> {
    while cur.0 < s.points.len() && s.points[cur.0].t < ts {
        cur.0 += 1;
    }
    if cur.0 < s.points.len() && s.points[cur.0].t == ts {
        return Some(PV::F(s.points[cur.0].v));
    }
    while cur.1 < s.hpoints.len() && s.hpoints[cur.1].t < ts {
        cur.1 += 1;
    }
    if cur.1 < s.hpoints.len() && s.hpoints[cur.1].t == ts {
        return Some(PV::H(s.hpoints[cur.1].h.clone()));
    }
    None
}

fn push(out: &mut OutBuilder, l: Labels, drop_name: bool, ts: i64, v: PV) -> Result<()> {
    match v {
        PV::F(f) => out.push(l, drop_name, ts, f),
        PV::H(h) => out.push_h(l, drop_name, ts, h),
    }
}

/// The time of the newest sample within `(ts − lookback, ts]`, unless it is a staleness marker.
fn newest_at(times: &[(i64, bool)], ts: i64, lookback: i64) -> Option<i64> {
    let i = times.partition_point(|&(t, _)| t <= ts);
    let &(t, stale) = times.get(i.checked_sub(1)?)?;
    (t > ts - lookback && !stale).then_some(t)
}

/// An info series: its labels and its sample times, each with whether it is a staleness marker.
type InfoSeries = (Labels, Vec<(i64, bool)>);

/// The info series matching `ms` over the query range (plus lookback): labels and sample
/// times with whether each is a staleness marker.
fn select_info(ev: &Ev, ms: &[Matcher]) -> Result<Vec<InfoSeries>> {
    let (mint, maxt) = (ev.start - ev.sh.lookback + 1, ev.end);
    let q = ev.sh.db.querier(mint, maxt)?;
    let set = q.select(
        ms,
        &SelectHints {
            start: mint,
            end: maxt,
        },
    )?;
    let mut out = Vec::new();
    for mut s in set {
        if s.histograms.iter().any(|h| h.t >= mint && h.t <= maxt) {
            return Err(exec_err("info sample should be float"));
        }
        let mut samples = Vec::new();
        vigil_model::SampleIterator::drain_into(&mut s.samples, &mut samples);
        let times: Vec<(i64, bool)> = samples
            .iter()
            .filter(|x| x.t >= mint && x.t <= maxt)
            .map(|x| (x.t, is_stale_nan(x.v)))
            .collect();
        if !times.is_empty() {
            out.push((s.labels, times));
        }
    }
    Ok(out)
}
