//! Alerting rules and the alert state machine (Prometheus' `rules/alerting.go`).
//!
//! The state lives in the rule, keyed by the alert's label set, so a series that keeps
//! matching keeps its `active_at` across evaluations; that timestamp is the `for` clock,
//! written out every evaluation as `ALERTS_FOR_STATE` so a restart can restore it.
//! Transitions follow Prometheus exactly: new results start `pending` (or fire at once with
//! no `for`), `pending` becomes `firing` once `ts - active_at >= for`, a vanished pending
//! alert is forgotten, a vanished firing alert becomes `inactive` with `resolved_at`
//! (unless `keep_firing_for` holds it) and is kept 15 minutes so its resolution is re-sent.
//! All times are milliseconds; evaluation is a plain function of (results, ts), so the unit
//! test runner, the live manager and the tests drive the same code.

use crate::template::{self, AlertData, Env};
use std::collections::{BTreeMap, HashMap, HashSet};
use vigil_model::{Labels, LabelsBuilder, METRIC_NAME};

/// How long a resolved alert is kept (and re-sent) after it resolved.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of a rule: a label set that the rule's expression returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub state: AlertState,
    pub labels: Labels,
    pub annotations: Labels,
    pub value: f64,
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub last_sent_at: Option<i64>,
    pub valid_until: i64,
    pub keep_firing_since: Option<i64>,
}

impl Alert {
    /// Prometheus' `needsSending`: firing or resolved alerts, again after `resend_delay`.
    pub fn needs_sending(&self, ts: i64, resend_delay_ms: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        if let Some(r) = self.resolved_at
            && self.last_sent_at.is_none_or(|s| r > s)
        {
            return true;
        }
        self.last_sent_at.is_none_or(|s| s + resend_delay_ms < ts)
    }
}

/// An alerting rule with its active alerts.
#[derive(Debug, Clone)]
pub struct AlertingRule {
    pub name: String,
    pub expr: String,
    pub hold_ms: i64,
    pub keep_firing_for_ms: i64,
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    pub active: HashMap<Labels, Alert>,
    /// Whether `for` state was restored (or needs none): only then are `ALERTS` written.
    pub restored: bool,
}

/// Output of one evaluation: the `ALERTS`/`ALERTS_FOR_STATE` samples to write.
pub type Samples = Vec<(Labels, f64)>;

impl AlertingRule {
    pub fn new(
        name: String,
        expr: String,
        hold_ms: i64,
        keep_firing_for_ms: i64,
        labels: Vec<(String, String)>,
        annotations: Vec<(String, String)>,
    ) -> Self {
        AlertingRule {
            name,
            expr,
            hold_ms,
            keep_firing_for_ms,
            labels,
            annotations,
            active: HashMap::new(),
            restored: false,
        }
    }

    /// Advances the state machine with the query result `res` at `ts` (ms). `limit` caps
    /// the number of pending and firing alerts (0: none).
    pub fn eval(
        &mut self,
        res: Vec<(Labels, f64)>,
        ts: i64,
        limit: u64,
        external_labels: &BTreeMap<String, String>,
        external_url: &str,
        env: &dyn Env,
    ) -> Result<Samples, String> {
        let mut seen: HashSet<Labels> = HashSet::new();
        let mut fresh: Vec<Alert> = Vec::with_capacity(res.len());
        for (lset, v) in res {
            // As in Prometheus, `$labels` is the result's label set including `__name__`.
            let tmpl_labels: BTreeMap<String, String> = lset
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            let data = AlertData {
                labels: &tmpl_labels,
                external_labels,
                external_url,
                value: v,
            };
            let mut b: LabelsBuilder = lset.to_builder();
            b.del(METRIC_NAME);
            for (k, t) in &self.labels {
                b.set(k.clone(), template::expand_alert(&self.name, t, &data, env));
            }
            b.set("alertname", self.name.clone());
            let labels = b.build();
            let annotations = Labels::from_pairs(
                self.annotations
                    .iter()
                    .map(|(k, t)| (k.clone(), template::expand_alert(&self.name, t, &data, env))),
            );
            if !seen.insert(labels.clone()) {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .into(),
                );
            }
            fresh.push(Alert {
                state: AlertState::Pending,
                labels,
                annotations,
                value: v,
                active_at: ts,
                fired_at: None,
                resolved_at: None,
                last_sent_at: None,
                valid_until: 0,
                keep_firing_since: None,
            });
        }
        for a in fresh {
            match self.active.get_mut(&a.labels) {
                Some(old) if old.state != AlertState::Inactive => {
                    old.value = a.value;
                    old.annotations = a.annotations;
                }
                _ => {
                    self.active.insert(a.labels.clone(), a);
                }
            }
        }
        let mut out = Vec::new();
        let mut num_active = 0u64;
        let mut remove = Vec::new();
        for (key, a) in self.active.iter_mut() {
            if !seen.contains(key) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && self.keep_firing_for_ms > 0 {
                    let since = *a.keep_firing_since.get_or_insert(ts);
                    keep_firing = ts - since < self.keep_firing_for_ms;
                }
                if a.state == AlertState::Pending
                    || a.resolved_at
                        .is_some_and(|r| ts - r > RESOLVED_RETENTION_MS)
                {
                    remove.push(key.clone());
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    a.state = AlertState::Inactive;
                    a.resolved_at = Some(ts);
                }
                if !keep_firing {
                    continue;
                }
            } else {
                a.keep_firing_since = None;
            }
            num_active += 1;
            if a.state == AlertState::Pending && ts - a.active_at >= self.hold_ms {
                a.state = AlertState::Firing;
                a.fired_at = Some(ts);
            }
            if self.restored {
                out.push((alerts_series(&self.labels, a), 1.0));
                out.push((
                    for_state_series(&self.labels, a),
                    (a.active_at.div_euclid(1000)) as f64,
                ));
            }
        }
        for k in remove {
            self.active.remove(&k);
        }
        if limit > 0 && num_active > limit {
            self.active.clear();
            return Err(format!(
                "exceeded limit of {limit} with {num_active} alerts"
            ));
        }
        Ok(out)
    }

    /// Alerts due to be sent to Alertmanager at `ts`; marks them sent and sets `valid_until`
    /// to four times the larger of resend delay and group interval, as Prometheus does.
    pub fn alerts_to_send(
        &mut self,
        ts: i64,
        resend_delay_ms: i64,
        interval_ms: i64,
    ) -> Vec<Alert> {
        let mut out = Vec::new();
        for a in self.active.values_mut() {
            if a.needs_sending(ts, resend_delay_ms) {
                a.last_sent_at = Some(ts);
                a.valid_until = ts + 4 * resend_delay_ms.max(interval_ms);
                out.push(a.clone());
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// Active (pending or firing) and recently resolved alerts, sorted by labels.
    pub fn alerts(&self) -> Vec<&Alert> {
        let mut v: Vec<&Alert> = self.active.values().collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }

    /// The rule's state: the highest of its alerts' states.
    pub fn state(&self) -> AlertState {
        self.active
            .values()
            .map(|a| a.state)
            .max()
            .unwrap_or(AlertState::Inactive)
    }

    /// Moves the `for` clock of each active alert back to where it stood before a restart,
    /// from the last `ALERTS_FOR_STATE` sample `(t_ms, active_at_s)` of its label set
    /// (Prometheus' `RestoreForState`).
    pub fn restore(&mut self, ts: i64, grace_ms: i64, last_state: &HashMap<Labels, (i64, f64)>) {
        if self.hold_ms < grace_ms {
            self.restored = true;
            return;
        }
        for a in self.active.values_mut() {
            let Some(&(t, v)) = last_state.get(&a.labels) else {
                continue;
            };
            if vigil_model::is_stale_nan(v) || !v.is_finite() {
                continue;
            }
            let down_at = t.div_euclid(1000) * 1000;
            let mut restored_active_at = (v as i64) * 1000;
            let spent = down_at - restored_active_at;
            let remaining = self.hold_ms - spent;
            if remaining <= 0 {
                // It was firing when we went down; the next evaluation fires it again.
            } else if remaining < grace_ms {
                restored_active_at = ts + grace_ms - self.hold_ms;
            } else {
                restored_active_at += ts - down_at;
            }
            a.active_at = restored_active_at;
        }
        self.restored = true;
    }

    /// The label set of this rule's `ALERTS_FOR_STATE` series for an alert.
    pub fn for_state_labels(&self, a: &Alert) -> Labels {
        for_state_series(&self.labels, a)
    }
}

fn alerts_series(rule_labels: &[(String, String)], a: &Alert) -> Labels {
    let mut b = LabelsBuilder::new();
    for (k, v) in rule_labels {
        b.set(k.clone(), v.clone());
    }
    for l in &a.labels {
        b.set(l.name.clone(), l.value.clone());
    }
    b.set(METRIC_NAME, "ALERTS");
    b.set("alertstate", a.state.as_str());
    b.build()
}

fn for_state_series(rule_labels: &[(String, String)], a: &Alert) -> Labels {
    let mut b = LabelsBuilder::new();
    for (k, v) in rule_labels {
        b.set(k.clone(), v.clone());
    }
    for l in &a.labels {
        b.set(l.name.clone(), l.value.clone());
    }
    b.set(METRIC_NAME, "ALERTS_FOR_STATE");
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::NoQuery;

    fn rule(hold_s: i64, keep_s: i64) -> AlertingRule {
        let mut r = AlertingRule::new(
            "High".into(),
            "x > 1".into(),
            hold_s * 1000,
            keep_s * 1000,
            vec![("severity".into(), "critical".into())],
            vec![(
                "summary".into(),
                "on {{ $labels.instance }} = {{ $value }}".into(),
            )],
        );
        r.restored = true;
        r
    }

    fn res(v: Option<f64>) -> Vec<(Labels, f64)> {
        v.map(|v| {
            (
                Labels::from_pairs([("__name__", "x"), ("instance", "a")]),
                v,
            )
        })
        .into_iter()
        .collect()
    }

    fn step(r: &mut AlertingRule, v: Option<f64>, t_s: i64) -> Samples {
        r.eval(res(v), t_s * 1000, 0, &BTreeMap::new(), "", &NoQuery)
            .unwrap()
    }

    #[test]
    fn pending_then_firing_then_resolved() {
        let mut r = rule(60, 0);
        let s = step(&mut r, Some(2.0), 0);
        assert_eq!(r.state(), AlertState::Pending);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].0.get("alertstate"), Some("pending"));
        assert_eq!(s[0].0.get("severity"), Some("critical"));
        assert_eq!(s[1].0.metric_name(), Some("ALERTS_FOR_STATE"));
        assert_eq!(s[1].1, 0.0);
        step(&mut r, Some(2.0), 30);
        assert_eq!(r.state(), AlertState::Pending);
        let s = step(&mut r, Some(3.0), 60);
        assert_eq!(r.state(), AlertState::Firing);
        assert_eq!(s[0].0.get("alertstate"), Some("firing"));
        let a = r.alerts()[0].clone();
        assert_eq!(a.annotations.get("summary"), Some("on a = 3"));
        assert_eq!(a.fired_at, Some(60_000));
        let sent = r.alerts_to_send(60_000, 60_000, 15_000);
        assert_eq!(sent.len(), 1);
        assert!(r.alerts_to_send(90_000, 60_000, 15_000).is_empty());
        assert_eq!(r.alerts_to_send(121_000, 60_000, 15_000).len(), 1);
        let s = step(&mut r, None, 130);
        assert!(s.is_empty());
        assert_eq!(r.state(), AlertState::Inactive);
        let sent = r.alerts_to_send(130_000, 60_000, 15_000);
        assert_eq!(sent[0].resolved_at, Some(130_000));
        // Kept for 15 minutes, then forgotten.
        step(&mut r, None, 130 + 15 * 60);
        assert_eq!(r.alerts().len(), 1);
        step(&mut r, None, 131 + 15 * 60);
        assert!(r.alerts().is_empty());
    }

    #[test]
    fn vanished_pending_alert_is_forgotten() {
        let mut r = rule(60, 0);
        step(&mut r, Some(2.0), 0);
        step(&mut r, None, 10);
        assert!(r.alerts().is_empty());
        step(&mut r, Some(2.0), 20);
        assert_eq!(r.alerts()[0].active_at, 20_000);
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert() {
        let mut r = rule(0, 30);
        step(&mut r, Some(2.0), 0);
        assert_eq!(r.state(), AlertState::Firing);
        step(&mut r, None, 10);
        assert_eq!(r.state(), AlertState::Firing);
        step(&mut r, None, 39);
        assert_eq!(r.state(), AlertState::Firing);
        step(&mut r, None, 40);
        assert_eq!(r.state(), AlertState::Inactive);
    }

    #[test]
    fn limit_and_duplicates_are_errors() {
        let mut r = rule(0, 0);
        let two = vec![
            (Labels::from_pairs([("instance", "a")]), 1.0),
            (Labels::from_pairs([("instance", "b")]), 1.0),
        ];
        let e = r
            .eval(two, 0, 1, &BTreeMap::new(), "", &NoQuery)
            .unwrap_err();
        assert!(e.contains("exceeded limit of 1 with 2 alerts"), "{e}");
        let dup = vec![
            (
                Labels::from_pairs([("__name__", "a"), ("instance", "a")]),
                1.0,
            ),
            (
                Labels::from_pairs([("__name__", "b"), ("instance", "a")]),
                1.0,
            ),
        ];
        assert!(r.eval(dup, 0, 0, &BTreeMap::new(), "", &NoQuery).is_err());
    }

    #[test]
    fn restore_shifts_the_for_clock_by_the_downtime() {
        let mut r = rule(600, 0);
        r.restored = false;
        // Pending since t=1000s; we were down from 1300s to 1400s.
        step(&mut r, Some(2.0), 1400);
        let key = r.alerts()[0].labels.clone();
        let mut last = HashMap::new();
        last.insert(key.clone(), (1_300_000, 1000.0));
        r.restore(1_400_000, 60_000, &last);
        assert!(r.restored);
        // 300 s spent pending before the outage; the 100 s outage does not count.
        assert_eq!(r.active[&key].active_at, 1_100_000);
        // Fires 300 s after the restart, not 600 s.
        step(&mut r, Some(2.0), 1699);
        assert_eq!(r.state(), AlertState::Pending);
        step(&mut r, Some(2.0), 1700);
        assert_eq!(r.state(), AlertState::Firing);
    }

    #[test]
    fn restore_within_grace_period_and_short_for() {
        let mut r = rule(600, 0);
        step(&mut r, Some(2.0), 2000);
        let key = r.alerts()[0].labels.clone();
        let mut last = HashMap::new();
        // 590 s spent: 10 s remain, less than the 60 s grace period.
        last.insert(key.clone(), (1_590_000, 1000.0));
        r.restore(2_000_000, 60_000, &last);
        assert_eq!(r.active[&key].active_at, 2_000_000 + 60_000 - 600_000);
        let mut short = rule(30, 0);
        short.restored = false;
        short.restore(0, 60_000, &last);
        assert!(short.restored);
    }
}
