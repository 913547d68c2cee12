//! Rule groups: building them from rule files, and one evaluation of a group.
//!
//! A group evaluates its rules in order at one timestamp, so a recording rule is visible
//! to the rules after it. Each rule's output goes through the `Appender` in its own batch
//! (as Prometheus commits per rule), and series a rule returned last time but not this time
//! get a StaleNaN, so `ALERTS{alertstate="pending"}` ends when the alert fires and a
//! recording rule's vanished series end at once instead of lingering for the lookback
//! delta. Evaluation is synchronous and takes the storage and engine as arguments: the
//! live manager runs it on a blocking thread, the unit-test runner calls it in a loop.

use crate::alerting::{Alert, AlertingRule};
use crate::error::RulesError;
use crate::rulefmt::{self, NameValidation};
use crate::template::{Env, QueryResult};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use vigil_model::histogram::FloatHistogram;
use vigil_model::{Appendable, Labels, LabelsBuilder, METRIC_NAME, Queryable, stale_nan};
use vigil_promql::{Engine, Value};

/// A recording rule.
#[derive(Debug, Clone)]
pub struct RecordingRule {
    pub name: String,
    pub expr: String,
    pub labels: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub enum RuleKind {
    Recording(RecordingRule),
    Alerting(AlertingRule),
}

/// Health of a rule's last evaluation, as `/api/v1/rules` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Ok,
    Err,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub kind: RuleKind,
    pub health: Health,
    pub last_error: Option<String>,
    /// Wall-clock ms of the last evaluation, and how long it took in seconds.
    pub last_eval: Option<i64>,
    pub eval_seconds: f64,
    prev_series: HashSet<Labels>,
}

impl Rule {
    pub fn name(&self) -> &str {
        match &self.kind {
            RuleKind::Recording(r) => &r.name,
            RuleKind::Alerting(a) => &a.name,
        }
    }
    pub fn expr(&self) -> &str {
        match &self.kind {
            RuleKind::Recording(r) => &r.expr,
            RuleKind::Alerting(a) => &a.expr,
        }
    }
}

/// One rule group with its rules' state.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub file: String,
    pub interval_ms: i64,
    pub limit: u64,
    pub query_offset_ms: i64,
    pub rules: Vec<Rule>,
    pub last_eval: Option<i64>,
    pub last_duration_s: f64,
    pub evaluations: u64,
    pub failures: u64,
    pub iterations: u64,
    pub missed: u64,
    pub should_restore: bool,
}

/// What an evaluation needs from outside the group.
pub struct EvalCtx<'a> {
    pub engine: &'a Engine,
    pub db: &'a dyn Queryable,
    pub app: &'a dyn Appendable,
    pub external_labels: &'a BTreeMap<String, String>,
    pub external_url: &'a str,
    /// Query offset of groups that set none (`global.rule_query_offset`).
    pub default_query_offset_ms: i64,
    /// `--rules.alert.resend-delay`.
    pub resend_delay_ms: i64,
}

struct QueryEnv<'a> {
    engine: &'a Engine,
    db: &'a dyn Queryable,
    ts: i64,
    external_url: &'a str,
}

impl Env for QueryEnv<'_> {
    fn query(&self, q: &str) -> Result<QueryResult, String> {
        let v = query(self.engine, self.db, q, self.ts)?;
        Ok(v.into_iter()
            .map(|(l, v)| {
                (
                    l.iter()
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect(),
                    v,
                )
            })
            .collect())
    }
    fn external_url(&self) -> String {
        self.external_url.to_string()
    }
}

/// An instant query whose result must be a vector or a scalar (Prometheus' `EngineQueryFunc`).
/// A native-histogram element reads as 0 here (its float), as in Prometheus' alerting rules;
/// [`query_samples`] keeps the histograms.
pub fn query(
    engine: &Engine,
    db: &dyn Queryable,
    q: &str,
    ts: i64,
) -> Result<Vec<(Labels, f64)>, String> {
    Ok(query_samples(engine, db, q, ts)?
        .into_iter()
        .map(|(l, v, _)| (l, v))
        .collect())
}

/// A rule's result element: labels, float value, and the histogram when it is one.
pub type RuleSample = (Labels, f64, Option<Arc<FloatHistogram>>);

/// [`query`] with each element's native histogram, for recording rules.
pub fn query_samples(
    engine: &Engine,
    db: &dyn Queryable,
    q: &str,
    ts: i64,
) -> Result<Vec<RuleSample>, String> {
    match engine.instant_query(db, q, ts, None) {
        Ok(out) => match out.value {
            Value::Vector(v) => Ok(v.into_iter().map(|s| (s.labels, s.v, s.h)).collect()),
            Value::Scalar { v, .. } => Ok(vec![(Labels::empty(), v, None)]),
            _ => Err("rule result is not a vector or scalar".into()),
        },
        Err(e) => Err(e.to_string()),
    }
}

/// Alerts to hand to the notifier, with the rule's expression (for `generatorURL`).
pub struct Outgoing {
    pub expr: String,
    pub alerts: Vec<Alert>,
}

impl Group {
    /// Evaluates every rule at `ts` (ms); returns the alerts due to be sent.
    pub fn eval(&mut self, ctx: &EvalCtx<'_>, ts: i64) -> Vec<Outgoing> {
        let started = std::time::Instant::now();
        let offset = if self.query_offset_ms > 0 {
            self.query_offset_ms
        } else {
            ctx.default_query_offset_ms
        };
        let qts = ts - offset;
        let mut outgoing = Vec::new();
        self.iterations += 1;
        for rule in &mut self.rules {
            let rule_started = std::time::Instant::now();
            self.evaluations += 1;
            let env = QueryEnv {
                engine: ctx.engine,
                db: ctx.db,
                ts: qts,
                external_url: ctx.external_url,
            };
            let result: Result<Vec<RuleSample>, String> = match &mut rule.kind {
                RuleKind::Recording(r) => query_samples(ctx.engine, ctx.db, &r.expr, qts)
                    .and_then(|v| record(r, v, self.limit)),
                RuleKind::Alerting(a) => {
                    let res = query(ctx.engine, ctx.db, &a.expr, qts)
                        .and_then(|v| {
                            a.eval(
                                v,
                                qts,
                                self.limit,
                                ctx.external_labels,
                                ctx.external_url,
                                &env,
                            )
                        })
                        .map(|v| v.into_iter().map(|(l, f)| (l, f, None)).collect());
                    let alerts = a.alerts_to_send(ts, ctx.resend_delay_ms, self.interval_ms);
                    if !alerts.is_empty() {
                        outgoing.push(Outgoing {
                            expr: a.expr.clone(),
                            alerts,
                        });
                    }
                    res
                }
            };
            rule.last_eval = Some(vigil_model::now_millis());
            match result {
                Ok(samples) => {
                    rule.health = Health::Ok;
                    rule.last_error = None;
                    let mut app = ctx.app.appender();
                    let mut returned = HashSet::with_capacity(samples.len());
                    for (l, v, h) in samples {
                        let appended = match &h {
                            Some(h) => app.append_histogram(None, &l, qts, h),
                            None => app.append(None, &l, qts, v),
                        };
                        match appended {
                            Ok(_) => {}
                            Err(e) => {
                                tracing::debug!(rule = rule_name(&rule.kind), series = %l, "Rule sample appending failed: {e}")
                            }
                        }
                        returned.insert(l);
                    }
                    for gone in rule.prev_series.difference(&returned) {
                        let _ = app.append(None, gone, qts, stale_nan());
                    }
                    if let Err(e) = app.commit() {
                        tracing::warn!(
                            rule = rule_name(&rule.kind),
                            "Rule sample commit failed: {e}"
                        );
                    }
                    rule.prev_series = returned;
                }
                Err(e) => {
                    self.failures += 1;
                    tracing::warn!(group = %self.name, rule = rule_name(&rule.kind), "Evaluating rule failed: {e}");
                    rule.health = Health::Err;
                    rule.last_error = Some(e);
                }
            }
            rule.eval_seconds = rule_started.elapsed().as_secs_f64();
        }
        self.last_eval = Some(vigil_model::now_millis());
        self.last_duration_s = started.elapsed().as_secs_f64();
        outgoing
    }

    /// Writes StaleNaN for every series the group's rules wrote last (the group is going away).
    pub fn mark_stale(&mut self, app: &dyn Appendable, ts: i64) {
        let mut a = app.appender();
        for r in &mut self.rules {
            for l in r.prev_series.drain() {
                let _ = a.append(None, &l, ts, stale_nan());
            }
        }
        let _ = a.commit();
    }

    /// Restores the `for` clocks of this group's alerting rules from `ALERTS_FOR_STATE`
    /// in `[ts - outage_tolerance, ts]` (Prometheus' `RestoreForState`).
    pub fn restore_for_state(
        &mut self,
        db: &dyn Queryable,
        ts: i64,
        outage_tolerance_ms: i64,
        grace_ms: i64,
    ) {
        for rule in &mut self.rules {
            let RuleKind::Alerting(a) = &mut rule.kind else {
                continue;
            };
            if a.hold_ms < grace_ms {
                a.restored = true;
                continue;
            }
            let mut last: HashMap<Labels, (i64, f64)> = HashMap::new();
            let keys: Vec<Labels> = a.active.values().map(|al| al.labels.clone()).collect();
            if !keys.is_empty() {
                let matchers = vec![
                    vigil_model::Matcher::equal(METRIC_NAME, "ALERTS_FOR_STATE"),
                    vigil_model::Matcher::equal("alertname", a.name.clone()),
                ];
                let hints = vigil_model::SelectHints {
                    start: ts - outage_tolerance_ms,
                    end: ts,
                };
                match db.querier(hints.start, hints.end).and_then(|q| {
                    let mut found = Vec::new();
                    for s in q.select(&matchers, &hints)? {
                        if let Some(smp) = s.samples.last() {
                            found.push((s.labels.without_metric_name(), smp.t, smp.v));
                        }
                    }
                    Ok(found)
                }) {
                    Ok(found) => {
                        for (l, t, v) in found {
                            last.insert(l, (t, v));
                        }
                    }
                    Err(e) => tracing::error!(rule = %a.name, "Failed to restore 'for' state: {e}"),
                }
            }
            a.restore(ts, grace_ms, &last);
            for al in a.active.values() {
                tracing::debug!(rule = %a.name, alert = %al.labels, active_at = al.active_at, "'for' state restored");
            }
        }
        self.should_restore = false;
    }

    /// Sets whether the group restores `for` state after its second evaluation. Only the
    /// groups of the config vigil starts with do; the alerting rules of any later group
    /// (one added by a reload) start restored, so they write `ALERTS`/`ALERTS_FOR_STATE` from
    /// their first evaluation. Prometheus' `LoadGroups`: `shouldRestore := !m.restored`, and
    /// rules are created with `restored = m.restored`.
    pub fn set_should_restore(&mut self, restore: bool) {
        self.should_restore = restore;
        for rule in &mut self.rules {
            if let RuleKind::Alerting(a) = &mut rule.kind {
                a.restored = !restore;
            }
        }
    }

    /// Copies rule state (active alerts, series written) from the group this one replaces,
    /// matching rules by kind and name in order, as Prometheus' `CopyState` does. A restore
    /// still pending in the old group (a reload within two intervals of start) carries over
    /// to the rules it matched; rules new to the group keep the flag they were created with.
    pub fn copy_state(&mut self, old: &mut Group) {
        self.last_eval = old.last_eval;
        self.last_duration_s = old.last_duration_s;
        self.evaluations = old.evaluations;
        self.failures = old.failures;
        self.iterations = old.iterations;
        self.missed = old.missed;
        self.should_restore = old.should_restore;
        let mut by_name: HashMap<(bool, String), Vec<usize>> = HashMap::new();
        for (i, r) in old.rules.iter().enumerate() {
            by_name
                .entry((
                    matches!(r.kind, RuleKind::Alerting(_)),
                    r.name().to_string(),
                ))
                .or_default()
                .push(i);
        }
        let mut used = HashSet::new();
        for r in &mut self.rules {
            let key = (
                matches!(r.kind, RuleKind::Alerting(_)),
                r.name().to_string(),
            );
            let Some(list) = by_name.get_mut(&key) else {
                continue;
            };
            if list.is_empty() {
                continue;
            }
            let i = list.remove(0);
            used.insert(i);
            let o = &mut old.rules[i];
            r.health = o.health;
            r.last_error = o.last_error.clone();
            r.last_eval = o.last_eval;
            r.eval_seconds = o.eval_seconds;
            r.prev_series = std::mem::take(&mut o.prev_series);
            if let (RuleKind::Alerting(n), RuleKind::Alerting(o)) = (&mut r.kind, &mut o.kind) {
                n.active = std::mem::take(&mut o.active);
                n.restored = o.restored;
            }
        }
    }

    /// Prometheus' `rule_group` metric label: `file;name`.
    pub fn key(&self) -> String {
        format!("{};{}", self.file, self.name)
    }
}

fn rule_name(k: &RuleKind) -> &str {
    match k {
        RuleKind::Recording(r) => &r.name,
        RuleKind::Alerting(a) => &a.name,
    }
}

/// A recording rule's output: result labels plus the rule's, named after the rule.
fn record(r: &RecordingRule, v: Vec<RuleSample>, limit: u64) -> Result<Vec<RuleSample>, String> {
    let mut seen = HashSet::with_capacity(v.len());
    let mut out = Vec::with_capacity(v.len());
    for (l, val, h) in v {
        let mut b: LabelsBuilder = l.to_builder();
        b.set(METRIC_NAME, r.name.clone());
        for (k, lv) in &r.labels {
            b.set(k.clone(), lv.clone());
        }
        let l = b.build();
        if !seen.insert(l.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels".into(),
            );
        }
        out.push((l, val, h));
    }
    if limit > 0 && out.len() as u64 > limit {
        return Err(format!("exceeded limit {limit} with {} series", out.len()));
    }
    Ok(out)
}

/// Loads and validates `files` into groups (no state). `default_interval_ms` applies to
/// groups without `interval:`.
pub fn load_groups(
    files: &[impl AsRef<Path>],
    default_interval_ms: i64,
    names: NameValidation,
) -> Result<Vec<Group>, RulesError> {
    let mut groups = Vec::new();
    for f in files {
        let f = f.as_ref();
        let rf = rulefmt::load_file(f, names)?;
        for g in rf.groups {
            let rules = g
                .rules
                .into_iter()
                .map(|r| {
                    let labels: Vec<(String, String)> = r
                        .labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.0.clone()))
                        .collect();
                    let expr = r.expr.as_ref().map(|t| t.0.clone()).unwrap_or_default();
                    let kind = match &r.record {
                        Some(rec) if !rec.0.is_empty() => RuleKind::Recording(RecordingRule {
                            name: rec.0.clone(),
                            expr,
                            labels,
                        }),
                        _ => RuleKind::Alerting(AlertingRule::new(
                            r.alert.as_ref().map(|t| t.0.clone()).unwrap_or_default(),
                            expr,
                            r.for_.map_or(0, |d| d.0.as_millis() as i64),
                            r.keep_firing_for.map_or(0, |d| d.0.as_millis() as i64),
                            labels,
                            r.annotations
                                .iter()
                                .map(|(k, v)| (k.clone(), v.0.clone()))
                                .collect(),
                        )),
                    };
                    Rule {
                        kind,
                        health: Health::Unknown,
                        last_error: None,
                        last_eval: None,
                        eval_seconds: 0.0,
                        prev_series: HashSet::new(),
                    }
                })
                .collect();
            groups.push(Group {
                name: g.name,
                file: f.display().to_string(),
                interval_ms: g
                    .interval
                    .map(|d| d.0.as_millis() as i64)
                    .filter(|&ms| ms > 0)
                    .unwrap_or(default_interval_ms),
                limit: g.limit,
                query_offset_ms: g.query_offset.map_or(0, |d| d.0.as_millis() as i64),
                rules,
                last_eval: None,
                last_duration_s: 0.0,
                evaluations: 0,
                failures: 0,
                iterations: 0,
                missed: 0,
                should_restore: false,
            });
        }
    }
    Ok(groups)
}
