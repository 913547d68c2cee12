//! `vigil test rules`: promtool's rule unit tests (`cmd/promtool/unittest.go`).
//!
//! The reference is `promtool test rules` of Prometheus 2.42 (what Debian ships), so its
//! schema and behaviour are followed where later releases changed them: the file is decoded
//! strictly (a key 2.42 does not know, such as `fuzzy_compare` or a sample's `histogram`,
//! fails the file), a test group without `interval` loads its series at interval 0 (every
//! value at t=0, the first one winning), and values compare exactly. Evaluation reuses the
//! server's [`Group::eval`] over a small in-memory storage whose input samples become
//! visible as the fake clock passes them (promtool's lazy loader), so rules never see the
//! future.

use crate::alerting::AlertState;
use crate::error::RulesError;
use crate::group::{self, EvalCtx, Group, RuleKind};
use crate::rulefmt::{Dur, NameValidation, Text};
use parking_lot::RwLock;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use vigil_model::{
    AppendError, Appendable, Appender, Labels, Matcher, Querier, Queryable, Sample, SelectHints,
    Series, SeriesRef, SeriesSet, StorageError,
};
use vigil_promql::{Engine, EngineOptions};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<Dur>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default)]
    interval: Option<Dur>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<PromqlTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    #[serde(default)]
    series: String,
    #[serde(default)]
    values: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    #[serde(default)]
    eval_time: Dur,
    #[serde(default)]
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromqlTest {
    #[serde(default)]
    expr: String,
    #[serde(default)]
    eval_time: Dur,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    #[serde(default)]
    value: f64,
}

/// The verdict on one unit-test file.
#[derive(Debug)]
pub enum Verdict {
    Success,
    /// The tests ran and some failed (or errored); one message per problem.
    Failed(Vec<String>),
}

/// Runs the tests of one file; prints nothing.
pub fn run_file(path: &Path) -> Verdict {
    match run_file_inner(path) {
        Ok(errs) if errs.is_empty() => Verdict::Success,
        Ok(errs) => Verdict::Failed(errs),
        Err(e) => Verdict::Failed(vec![e.to_string()]),
    }
}

/// `vigil test rules FILE...`: promtool's output and exit code (0 all passed, 1 otherwise).
pub fn run_files(paths: &[PathBuf]) -> i32 {
    let mut failed = false;
    for p in paths {
        println!("Unit Testing:  {}", p.display());
        match run_file(p) {
            Verdict::Success => println!("  SUCCESS"),
            Verdict::Failed(errs) => {
                failed = true;
                eprintln!("  FAILED:");
                for e in errs {
                    eprintln!("{e}");
                }
            }
        }
        println!();
    }
    i32::from(failed)
}

fn run_file_inner(path: &Path) -> Result<Vec<String>, RulesError> {
    let text = std::fs::read_to_string(path).map_err(|e| RulesError::Read {
        file: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let tf: TestFile =
        serde_yaml::from_str(&text).map_err(|e| RulesError::UnitTest(e.to_string()))?;
    let eval_interval = tf
        .evaluation_interval
        .map_or(60_000, |d| d.0.as_millis() as i64)
        .max(1);
    let mut order: HashMap<String, usize> = HashMap::new();
    for (i, g) in tf.group_eval_order.iter().enumerate() {
        if order.insert(g.clone(), i).is_some() {
            return Err(RulesError::UnitTest(format!(
                "group name repeated in evaluation order: {g}"
            )));
        }
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let patterns: Vec<String> = tf
        .rule_files
        .iter()
        .map(|f| {
            if Path::new(f).is_absolute() {
                f.clone()
            } else {
                base.join(f).display().to_string()
            }
        })
        .collect();
    let files = crate::rulefmt::expand_globs(&patterns)?;
    let mut errs = Vec::new();
    for tg in &tf.tests {
        errs.extend(run_group(tg, eval_interval, &order, &files)?);
    }
    Ok(errs)
}

fn run_group(
    tg: &TestGroup,
    eval_interval: i64,
    order: &HashMap<String, usize>,
    files: &[PathBuf],
) -> Result<Vec<String>, RulesError> {
    let interval = tg.interval.map_or(0, |d| d.0.as_millis() as i64);
    let storage = MemStorage::default();
    for s in &tg.input_series {
        let labels = parse_metric(&s.series).map_err(RulesError::UnitTest)?;
        let values = parse_values(&s.values.0).map_err(RulesError::UnitTest)?;
        let mut app = storage.appender();
        for (i, v) in values.into_iter().enumerate() {
            if let Some(v) = v {
                let _ = app.append(None, &labels, i as i64 * interval, v);
            }
        }
        app.commit()
            .map_err(|e| RulesError::UnitTest(e.to_string()))?;
    }
    let mut groups: Vec<Group> = group::load_groups(files, interval.max(1), NameValidation::Utf8)
        .map_err(|e| RulesError::UnitTest(e.to_string()))?;
    if !order.is_empty() {
        for g in &groups {
            if !order.contains_key(&g.name) {
                return Err(RulesError::UnitTest(format!(
                    "group {:?} is not listed in group_eval_order",
                    g.name
                )));
            }
        }
    }
    groups.sort_by_key(|g| order.get(&g.name).copied().unwrap_or(0));
    for g in &mut groups {
        for r in &mut g.rules {
            if let RuleKind::Alerting(a) = &mut r.kind {
                a.restored = true;
            }
        }
    }
    let engine = Engine::new(EngineOptions {
        default_subquery_step_ms: eval_interval,
        timeout: None,
        ..Default::default()
    });
    let max_t = tg
        .alert_rule_test
        .iter()
        .map(|a| a.eval_time.0.as_millis() as i64)
        .chain(
            tg.promql_expr_test
                .iter()
                .map(|p| p.eval_time.0.as_millis() as i64),
        )
        .max()
        .unwrap_or(0);
    let mut alert_times: Vec<i64> = tg
        .alert_rule_test
        .iter()
        .map(|a| a.eval_time.0.as_millis() as i64)
        .collect();
    alert_times.sort_unstable();
    alert_times.dedup();
    for a in &tg.alert_rule_test {
        if a.alertname.is_empty() {
            let in_group = if tg.name.is_empty() {
                String::new()
            } else {
                format!(" (in TestGroup {})", tg.name)
            };
            return Ok(vec![format!(
                "an item under alert_rule_test misses required attribute alertname at eval_time {}{in_group}",
                a.eval_time.0
            )]);
        }
    }
    let name_line = if tg.name.is_empty() {
        String::new()
    } else {
        format!("    name: {},\n", tg.name)
    };
    let mut errs = Vec::new();
    let mut curr = 0;
    let mut ts = 0i64;
    while ts <= max_t {
        storage.visible_until.store(ts, Ordering::Relaxed);
        let ctx = EvalCtx {
            engine: &engine,
            db: &storage,
            app: &storage,
            external_labels: &tg.external_labels,
            external_url: &tg.external_url,
            default_query_offset_ms: 0,
            resend_delay_ms: 60_000,
        };
        let mut eval_errs = Vec::new();
        for g in &mut groups {
            g.eval(&ctx, ts);
            for r in &g.rules {
                if let Some(e) = &r.last_error {
                    eval_errs.push(format!(
                        "    rule: {}, time: {}, err: {e}",
                        r.name(),
                        go_duration(ts)
                    ));
                }
            }
        }
        if !eval_errs.is_empty() {
            errs.extend(eval_errs);
            return Ok(errs);
        }
        while curr < alert_times.len()
            && ts <= alert_times[curr]
            && alert_times[curr] < ts + eval_interval
        {
            let t = alert_times[curr];
            for case in tg
                .alert_rule_test
                .iter()
                .filter(|a| a.eval_time.0.as_millis() as i64 == t)
            {
                let mut got: Vec<(Labels, Labels)> = Vec::new();
                for g in &groups {
                    for r in &g.rules {
                        if let RuleKind::Alerting(a) = &r.kind
                            && a.name == case.alertname
                        {
                            for al in a.alerts() {
                                if al.state == AlertState::Firing {
                                    got.push((al.labels.clone(), al.annotations.clone()));
                                }
                            }
                        }
                    }
                }
                let mut exp: Vec<(Labels, Labels)> = case
                    .exp_alerts
                    .iter()
                    .map(|e| {
                        let mut l = e.exp_labels.clone();
                        l.insert("alertname".into(), case.alertname.clone());
                        (
                            Labels::from_pairs(l),
                            Labels::from_pairs(e.exp_annotations.clone()),
                        )
                    })
                    .collect();
                got.sort();
                exp.sort();
                if got != exp {
                    errs.push(format!(
                        "{name_line}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
                        case.alertname,
                        case.eval_time.0,
                        alerts_string(&exp),
                        alerts_string(&got)
                    ));
                }
            }
            curr += 1;
        }
        ts += eval_interval;
    }
    storage.visible_until.store(i64::MAX, Ordering::Relaxed);
    'outer: for case in &tg.promql_expr_test {
        let t = case.eval_time.0.as_millis() as i64;
        let got = match group::query(&engine, &storage, &case.expr, t) {
            Ok(v) => v,
            Err(e) => {
                errs.push(format!(
                    "    expr: {:?}, time: {}, err: {e}",
                    case.expr, case.eval_time.0
                ));
                continue;
            }
        };
        let mut exp = Vec::new();
        for s in &case.exp_samples {
            match parse_metric(&s.labels) {
                Ok(l) => exp.push((l, s.value)),
                Err(e) => {
                    errs.push(format!(
                        "    expr: {:?}, time: {}, err: labels {:?}: {e}",
                        case.expr, case.eval_time.0, s.labels
                    ));
                    continue 'outer;
                }
            }
        }
        let mut got = got;
        got.sort_by(|a, b| a.0.cmp(&b.0));
        exp.sort_by(|a, b| a.0.cmp(&b.0));
        let same =
            got.len() == exp.len() && got.iter().zip(&exp).all(|(g, e)| g.0 == e.0 && g.1 == e.1);
        if !same {
            errs.push(format!(
                "{name_line}    expr: {:?}, time: {},\n        exp: {}\n        got: {}",
                case.expr,
                case.eval_time.0,
                samples_string(&exp),
                samples_string(&got)
            ));
        }
    }
    Ok(errs)
}

/// Go's `time.Duration.String()` for whole milliseconds (`1m0s`, `1h0m0s`, `0s`).
fn go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let h = ms / 3_600_000;
    let m = (ms / 60_000) % 60;
    let s = (ms % 60_000) as f64 / 1000.0;
    let secs = crate::gofmt::g(s, None);
    if h > 0 {
        format!("{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{m}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

fn go_labels(l: &Labels) -> String {
    let inner: Vec<String> = l
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

fn alerts_string(v: &[(Labels, Labels)]) -> String {
    if v.is_empty() {
        return "[]".into();
    }
    let mut s = String::from("[\n");
    for (i, (l, a)) in v.iter().enumerate() {
        s.push_str(&format!(
            "            {i}:\n              Labels:{}\n              Annotations:{}\n",
            go_labels(l),
            go_labels(a)
        ));
    }
    s.push_str("            ]");
    s
}

fn samples_string(v: &[(Labels, f64)]) -> String {
    let parts: Vec<String> = v
        .iter()
        .map(|(l, x)| {
            format!(
                "{} {}",
                go_labels(l),
                crate::gofmt::e(*x, Some(0)).to_uppercase()
            )
        })
        .collect();
    parts.join(", ")
}

/// Parses a series description (`up{job="a"}`, `{__name__="x"}`, `x`, or empty).
pub fn parse_metric(s: &str) -> Result<Labels, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(Labels::empty());
    }
    let vs = vigil_promql_parser::parse_metric_selector(s).map_err(|e| e.to_string())?;
    if !vs.or_matchers.is_empty() || vs.offset.fixed() != Some(0) || vs.at.is_some() {
        return Err(format!("invalid series description {s:?}"));
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for m in &vs.matchers {
        if !matches!(m.op, vigil_model::MatchOp::Equal) {
            return Err(format!("invalid series description {s:?}: only = matchers"));
        }
        pairs.push((m.name.clone(), m.value.clone()));
    }
    Ok(Labels::from_pairs(pairs))
}

/// Expands the series-value notation: `1 2 _ stale 1+2x3 5x2 _x3 1-1x2` (the one owner of
/// the notation is `vigil_model::histogram::notation`). `None` is an omitted value.
pub fn parse_values(s: &str) -> Result<Vec<Option<f64>>, String> {
    use vigil_model::histogram::notation::{SeriesValue, parse_series_values};
    parse_series_values(s)?
        .into_iter()
        .map(|v| match v {
            SeriesValue::Omitted => Ok(None),
            SeriesValue::Float(f) => Ok(Some(f)),
            SeriesValue::Histogram(..) => Err(format!(
                "native histogram samples are not supported in rule unit tests yet: {s:?}"
            )),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The in-memory storage of a test group.

/// Series in memory; samples after `visible_until` are hidden from queries.
#[derive(Default)]
pub struct MemStorage {
    series: RwLock<BTreeMap<Labels, Vec<Sample>>>,
    visible_until: AtomicI64,
}

struct MemAppender<'a> {
    db: &'a MemStorage,
    batch: Vec<(Labels, Sample)>,
}

impl Appender for MemAppender<'_> {
    fn append(
        &mut self,
        _cached: Option<SeriesRef>,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> Result<SeriesRef, AppendError> {
        if labels.is_empty() {
            return Err(AppendError::EmptyLabels);
        }
        self.batch.push((labels.clone(), Sample { t, v }));
        Ok(0)
    }
    fn commit(self: Box<Self>) -> Result<(), StorageError> {
        let mut m = self.db.series.write();
        for (l, s) in self.batch {
            let v = m.entry(l).or_default();
            // As the head does: a sample at or before the last one is refused.
            if v.last().is_none_or(|last| last.t < s.t) {
                v.push(s);
            }
        }
        Ok(())
    }
    fn rollback(self: Box<Self>) {}
}

#[cfg(test)]
impl MemStorage {
    /// Every series with its samples (tests of other modules).
    pub(crate) fn dump(&self) -> Vec<(Labels, Vec<Sample>)> {
        self.series
            .read()
            .iter()
            .map(|(l, s)| (l.clone(), s.clone()))
            .collect()
    }
}

impl Appendable for MemStorage {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(MemAppender {
            db: self,
            batch: Vec::new(),
        })
    }
}

struct MemQuerier<'a> {
    db: &'a MemStorage,
    maxt: i64,
}

impl Queryable for MemStorage {
    fn querier(&self, _mint: i64, maxt: i64) -> Result<Box<dyn Querier + '_>, StorageError> {
        Ok(Box::new(MemQuerier { db: self, maxt }))
    }
}

impl Querier for MemQuerier<'_> {
    fn select(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<SeriesSet<'_>, StorageError> {
        let until = self
            .db
            .visible_until
            .load(Ordering::Relaxed)
            .min(hints.end)
            .min(self.maxt.max(hints.end));
        let m = self.db.series.read();
        let mut out = Vec::new();
        for (l, samples) in m.iter() {
            if !matchers
                .iter()
                .all(|mt| mt.matches(l.get(&mt.name).unwrap_or("")))
            {
                continue;
            }
            let s: Vec<Sample> = samples
                .iter()
                .filter(|s| s.t >= hints.start && s.t <= until)
                .copied()
                .collect();
            if s.is_empty() {
                continue;
            }
            out.push(Series {
                labels: l.clone(),
                samples: Box::new(s.into_iter()),
                histograms: Vec::new(),
                start_timestamps: Vec::new(),
            });
        }
        Ok(Box::new(out.into_iter()))
    }
    fn label_names(&self, _matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let m = self.db.series.read();
        let mut names: Vec<String> = m
            .keys()
            .flat_map(|l| l.iter().map(|l| l.name.clone()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
    fn label_values(&self, name: &str, _matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let m = self.db.series.read();
        let mut v: Vec<String> = m
            .keys()
            .filter_map(|l| l.get(name).map(str::to_string))
            .collect();
        v.sort();
        v.dedup();
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_notation() {
        assert_eq!(
            parse_values("1+1x2 _ 5x1 _x2 stale").unwrap().len(),
            3 + 1 + 2 + 2 + 1
        );
        assert_eq!(
            parse_values("0 1-1x2").unwrap(),
            vec![Some(0.0), Some(1.0), Some(0.0), Some(-1.0)]
        );
        assert_eq!(parse_values("1e3").unwrap(), vec![Some(1000.0)]);
        assert!(parse_values("1+x").is_err());
        assert!(parse_values("{{schema:1}}").is_err());
    }

    #[test]
    fn metric_descriptions() {
        let l = parse_metric("up{job=\"a\", instance=\"b\"}").unwrap();
        assert_eq!(l.get("__name__"), Some("up"));
        assert_eq!(l.get("instance"), Some("b"));
        assert!(parse_metric("up{job=\"a\"").is_err());
        assert!(parse_metric("").unwrap().is_empty());
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(60_000), "1m0s");
        assert_eq!(go_duration(3_600_000), "1h0m0s");
        assert_eq!(go_duration(1_500), "1.5s");
    }
}
