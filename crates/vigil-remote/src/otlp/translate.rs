//! OpenTelemetry metrics into series, by Prometheus 3.x's rules (its
//! `otlptranslator/prometheusremotewrite` package): names by [`super::names`], `job` and
//! `instance` from the service attributes, promoted resource attributes, optional scope
//! labels, one `target_info` series per resource, and each data point kind as Prometheus
//! stores it (classic `_bucket`/`_sum`/`_count` series, native histograms, summaries).
//!
//! Everything is appended through one [`Appender`] batch that the caller commits or rolls
//! back, so a request that storage refuses (out of order, too old) leaves nothing behind.
//! Where Prometheus fails the whole request with a 500 for a point it cannot translate (a
//! name that escapes to nothing, an exponential scale below −4, a metric without data points),
//! vigil drops that metric's points and reports them in the OTLP partial-success answer, so an
//! SDK does not retry the same unusable data forever (`docs/otlp.md`).

use super::names::{self, Kind, LabelNamer};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, SummaryDataPoint, metric::Data, number_data_point,
};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use vigil_config::{OtlpConfig, TranslationStrategy};
use vigil_model::histogram::{
    CUSTOM_BUCKETS_SCHEMA, CounterResetHint, EXPONENTIAL_SCHEMA_MAX, EXPONENTIAL_SCHEMA_MIN,
    FloatHistogram, Span,
};
use vigil_model::{AppendError, Appender, Labels, LabelsBuilder, METRIC_NAME, stale_nan};

const SERVICE_NAME: &str = "service.name";
const SERVICE_NAMESPACE: &str = "service.namespace";
const SERVICE_INSTANCE_ID: &str = "service.instance.id";
/// The data point flag `FLAG_NO_RECORDED_VALUE`: the series ended (a staleness marker).
const NO_RECORDED_VALUE: u32 = 1;
/// Most `target_info` samples written for one resource of one request.
const MAX_TARGET_INFO: u64 = 1000;
/// Prometheus ignores OTLP's `zero_threshold` and uses this width for the zero bucket.
const ZERO_THRESHOLD: f64 = 1e-128;

/// Which resource attributes become labels of every series.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Promote {
    #[default]
    None,
    /// `promote_resource_attributes`.
    Listed(HashSet<String>),
    /// `promote_all_resource_attributes` minus `ignore_resource_attributes`.
    AllExcept(HashSet<String>),
}

impl Promote {
    fn wants(&self, attr: &str) -> bool {
        match self {
            Promote::None => false,
            Promote::Listed(s) => s.contains(attr),
            Promote::AllExcept(s) => !s.contains(attr),
        }
    }
}

/// The translation settings: the `otlp` config section plus the command line's part.
#[derive(Debug, Clone)]
pub struct Settings {
    pub strategy: TranslationStrategy,
    pub promote: Promote,
    pub keep_identifying_resource_attributes: bool,
    pub convert_histograms_to_nhcb: bool,
    pub promote_scope_metadata: bool,
    pub label_namer: LabelNamer,
    /// Delta points reach the translation as they are (Prometheus' native delta ingestion,
    /// which vigil does not offer: always false; `delta::DeltaToCumulative` rewrites deltas
    /// as cumulative before translation instead).
    pub allow_delta: bool,
    /// `--query.lookback-delta`: `target_info` gets a sample every half of it.
    pub lookback_delta_ms: i64,
}

impl Settings {
    pub fn new(cfg: &OtlpConfig, lookback_delta_ms: i64) -> Settings {
        let strategy = cfg.strategy();
        let set = |v: &[String]| v.iter().cloned().collect::<HashSet<_>>();
        Settings {
            strategy,
            promote: if cfg.promote_all_resource_attributes {
                Promote::AllExcept(set(&cfg.ignore_resource_attributes))
            } else if cfg.promote_resource_attributes.is_empty() {
                Promote::None
            } else {
                Promote::Listed(set(&cfg.promote_resource_attributes))
            },
            keep_identifying_resource_attributes: cfg.keep_identifying_resource_attributes,
            convert_histograms_to_nhcb: cfg.convert_histograms_to_nhcb,
            promote_scope_metadata: cfg.promote_scope_metadata,
            label_namer: LabelNamer {
                utf8: !strategy.escapes(),
                underscore_sanitization: cfg.label_name_underscore_sanitization,
                preserve_multiple_underscores: cfg.label_name_preserve_multiple_underscores,
            },
            allow_delta: false,
            lookback_delta_ms,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::new(&OtlpConfig::default(), 5 * 60 * 1000)
    }
}

/// Why a request was refused as a whole (nothing of it is kept).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TranslateError {
    /// A sum or histogram with delta temporality, without the conversion switched on.
    #[error(
        "invalid temporality and type combination for metric {metric:?} ({count} delta metric(s) in the request): delta temporality needs --enable-feature=otlp-deltatocumulative, or export cumulative temporality (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=cumulative)"
    )]
    Delta { metric: String, count: usize },
    /// Storage refused a sample.
    #[error("{series}: {source}")]
    Append {
        series: String,
        #[source]
        source: AppendError,
    },
}

/// What a request turned into.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    /// Data points in the request.
    pub points: u64,
    /// Float samples appended (several per histogram or summary point).
    pub samples: u64,
    /// Native-histogram samples appended.
    pub histograms: u64,
    /// Data points dropped (counted in the partial-success answer).
    pub rejected: u64,
    /// Exemplars read (vigil has no exemplar storage, so they are not kept).
    pub exemplars: u64,
    /// Why points were dropped, one line per metric (first few).
    pub messages: Vec<String>,
}

impl Outcome {
    fn reject(&mut self, points: usize, msg: String) {
        self.rejected += points as u64;
        if self.messages.len() < 10 {
            self.messages.push(msg);
        }
    }
}

/// OpenTelemetry's string form of an attribute value (`AsString` in its Go data model).
pub fn value_string(v: Option<&AnyValue>) -> String {
    use any_value::Value as V;
    match v.and_then(|v| v.value.as_ref()) {
        None | Some(V::StringValueStrindex(_)) => String::new(),
        Some(V::StringValue(s)) => s.clone(),
        Some(V::BoolValue(b)) => b.to_string(),
        Some(V::IntValue(i)) => i.to_string(),
        Some(V::DoubleValue(d)) => es6_float(*d),
        Some(V::BytesValue(b)) => base64(b),
        Some(v @ (V::ArrayValue(_) | V::KvlistValue(_))) => json_value(v).to_string(),
    }
}

fn json_value(v: &any_value::Value) -> serde_json::Value {
    use any_value::Value as V;
    use serde_json::Value as J;
    match v {
        V::StringValue(s) => J::String(s.clone()),
        V::BoolValue(b) => J::Bool(*b),
        V::IntValue(i) => J::from(*i),
        V::DoubleValue(d) => serde_json::Number::from_f64(*d)
            .map(J::Number)
            .unwrap_or_else(|| J::String(es6_float(*d))),
        V::BytesValue(b) => J::String(base64(b)),
        V::ArrayValue(a) => J::Array(
            a.values
                .iter()
                .map(|x| x.value.as_ref().map(json_value).unwrap_or(J::Null))
                .collect(),
        ),
        V::KvlistValue(kv) => J::Object(
            kv.values
                .iter()
                .map(|p| {
                    let val = p
                        .value
                        .as_ref()
                        .and_then(|x| x.value.as_ref())
                        .map(json_value)
                        .unwrap_or(J::Null);
                    (p.key.clone(), val)
                })
                .collect(),
        ),
        V::StringValueStrindex(_) => J::Null,
    }
}

/// A float as JavaScript prints it (what OpenTelemetry's Go data model does for attributes).
fn es6_float(f: f64) -> String {
    if f.is_nan() {
        return "json: unsupported value: NaN".into();
    }
    if f.is_infinite() {
        let s = if f > 0.0 { "+Inf" } else { "-Inf" };
        return format!("json: unsupported value: {s}");
    }
    let a = f.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        // Rust prints `1e-7` and `1.5e21`; JavaScript `1e-7` and `1.5e+21`.
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        }
    } else {
        format!("{f}")
    }
}

fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// A float as Go's `strconv.FormatFloat(f, 'f', -1, 64)` prints it (the `le` and `quantile`
/// label values).
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f == f64::INFINITY {
        "+Inf".into()
    } else if f == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{f}")
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a KeyValue> {
    attrs.iter().find(|kv| kv.key == key)
}

/// Labels fixed for one resource.
struct ResourceLabels {
    job: String,
    instance: String,
    promoted: Vec<(String, String)>,
}

/// Labels fixed for one scope (only with `promote_scope_metadata`).
struct ScopeLabels {
    pairs: Vec<(String, String)>,
}

/// The per-request state of the conversion.
pub struct Converter<'a> {
    settings: &'a Settings,
    app: &'a mut dyn Appender,
    outcome: Outcome,
    seen_target_info: HashSet<(Labels, i64)>,
    /// Attribute indices and values of the point being converted (reused).
    scratch: Vec<(usize, String)>,
    /// Escaped label names by attribute name, for this request.
    label_names: HashMap<String, String>,
}

/// Translates and appends a whole request. The caller commits on `Ok` and rolls back on `Err`.
pub fn translate(
    req: &ExportMetricsServiceRequest,
    settings: &Settings,
    app: &mut dyn Appender,
) -> Result<Outcome, TranslateError> {
    // Delta temporality refuses the whole request before anything is appended.
    if !settings.allow_delta {
        let mut first = None;
        let mut count = 0;
        for rm in &req.resource_metrics {
            for sm in &rm.scope_metrics {
                for m in &sm.metrics {
                    if temporality(m) == Some(AggregationTemporality::Delta as i32) {
                        count += 1;
                        first.get_or_insert_with(|| m.name.clone());
                    }
                }
            }
        }
        if let Some(metric) = first {
            return Err(TranslateError::Delta { metric, count });
        }
    }
    let mut c = Converter {
        settings,
        app,
        outcome: Outcome::default(),
        seen_target_info: HashSet::new(),
        scratch: Vec::new(),
        label_names: HashMap::new(),
    };
    for rm in &req.resource_metrics {
        c.resource(rm)?;
    }
    Ok(c.outcome)
}

fn temporality(m: &Metric) -> Option<i32> {
    match &m.data {
        Some(Data::Sum(s)) => Some(s.aggregation_temporality),
        Some(Data::Histogram(h)) => Some(h.aggregation_temporality),
        Some(Data::ExponentialHistogram(h)) => Some(h.aggregation_temporality),
        _ => None,
    }
}

fn point_count(m: &Metric) -> usize {
    match &m.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

/// The earliest and latest point timestamps (ns) of a metric, folded into `range`.
fn fold_times(m: &Metric, range: &mut Option<(u64, u64)>) {
    let mut f = |t: u64| {
        *range = Some(match *range {
            None => (t, t),
            Some((a, b)) => (a.min(t), b.max(t)),
        })
    };
    match &m.data {
        Some(Data::Gauge(g)) => g.data_points.iter().for_each(|p| f(p.time_unix_nano)),
        Some(Data::Sum(s)) => s.data_points.iter().for_each(|p| f(p.time_unix_nano)),
        Some(Data::Histogram(h)) => h.data_points.iter().for_each(|p| f(p.time_unix_nano)),
        Some(Data::ExponentialHistogram(h)) => {
            h.data_points.iter().for_each(|p| f(p.time_unix_nano))
        }
        Some(Data::Summary(s)) => s.data_points.iter().for_each(|p| f(p.time_unix_nano)),
        None => {}
    }
}

/// What the translation and the delta conversion read of a data point that has exemplars.
pub(super) trait DataPoint {
    fn attributes(&self) -> &[KeyValue];
    fn start(&self) -> u64;
    fn time(&self) -> u64;
    fn flags(&self) -> u32;
    fn exemplars(&self) -> usize;
}

macro_rules! impl_data_point {
    ($($point:ty),*) => {$(
        impl DataPoint for $point {
            fn attributes(&self) -> &[KeyValue] {
                &self.attributes
            }
            fn start(&self) -> u64 {
                self.start_time_unix_nano
            }
            fn time(&self) -> u64 {
                self.time_unix_nano
            }
            fn flags(&self) -> u32 {
                self.flags
            }
            fn exemplars(&self) -> usize {
                self.exemplars.len()
            }
        }
    )*};
}

impl_data_point!(
    NumberDataPoint,
    HistogramDataPoint,
    ExponentialHistogramDataPoint
);

fn ms(ns: u64) -> i64 {
    (ns / 1_000_000) as i64
}

fn stale_or(flags: u32, v: f64) -> f64 {
    if flags & NO_RECORDED_VALUE != 0 {
        stale_nan()
    } else {
        v
    }
}

impl Converter<'_> {
    fn resource(&mut self, rm: &ResourceMetrics) -> Result<(), TranslateError> {
        let no_attrs = Vec::new();
        let rattrs = rm
            .resource
            .as_ref()
            .map(|r| &r.attributes)
            .unwrap_or(&no_attrs);
        let s = self.settings;
        let mut res = ResourceLabels {
            job: String::new(),
            instance: String::new(),
            promoted: Vec::new(),
        };
        if let Some(name) = attr(rattrs, SERVICE_NAME) {
            res.job = value_string(name.value.as_ref());
            if let Some(ns) = attr(rattrs, SERVICE_NAMESPACE) {
                res.job = format!("{}/{}", value_string(ns.value.as_ref()), res.job);
            }
        }
        if let Some(i) = attr(rattrs, SERVICE_INSTANCE_ID) {
            res.instance = value_string(i.value.as_ref());
        }
        let mut range = None;
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                fold_times(m, &mut range);
            }
        }
        let mut promoted = LabelsBuilder::new();
        for kv in rattrs {
            if s.promote.wants(&kv.key) {
                match s.label_namer.build(&kv.key) {
                    Ok(n) => {
                        promoted.set(n, value_string(kv.value.as_ref()));
                    }
                    Err(e) => {
                        let n: usize = rm
                            .scope_metrics
                            .iter()
                            .flat_map(|sm| &sm.metrics)
                            .map(point_count)
                            .sum();
                        self.outcome.points += n as u64;
                        self.outcome
                            .reject(n, format!("resource attribute {:?}: {e}", kv.key));
                        return Ok(());
                    }
                }
            }
        }
        res.promoted = promoted
            .build()
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        for sm in &rm.scope_metrics {
            let scope = match (s.promote_scope_metadata, &sm.scope) {
                (true, Some(sc)) if !sc.name.is_empty() => {
                    let mut pairs = Vec::new();
                    let mut bad = None;
                    for kv in &sc.attributes {
                        match s.label_namer.build(&format!("otel_scope_{}", kv.key)) {
                            Ok(n) => pairs.push((n, value_string(kv.value.as_ref()))),
                            Err(e) => bad = Some(e),
                        }
                    }
                    if let Some(e) = bad {
                        let n: usize = sm.metrics.iter().map(point_count).sum();
                        self.outcome.points += n as u64;
                        self.outcome.reject(n, format!("scope {:?}: {e}", sc.name));
                        continue;
                    }
                    pairs.push(("otel_scope_name".into(), sc.name.clone()));
                    pairs.push(("otel_scope_version".into(), sc.version.clone()));
                    pairs.push(("otel_scope_schema_url".into(), sm.schema_url.clone()));
                    Some(ScopeLabels { pairs })
                }
                _ => None,
            };
            for m in &sm.metrics {
                self.metric(m, &res, scope.as_ref())?;
            }
        }
        if let Some((earliest, latest)) = range {
            self.target_info(rattrs, &res, earliest, latest)?;
        }
        Ok(())
    }

    /// The label set of one point: its attributes (sorted, named, colliding names joined with
    /// `;`), the promoted resource attributes where the point has none of that name, `job`,
    /// `instance`, the scope labels, then `extra` (`__name__`, `le`, `quantile`).
    fn labels(
        &mut self,
        attrs: &[KeyValue],
        ignore: &[&str],
        res: &ResourceLabels,
        scope: Option<&ScopeLabels>,
        extra: &[(&str, &str)],
    ) -> Result<Labels, names::NameError> {
        let b = self.base(attrs, ignore, res, scope)?;
        Ok(with_extra(&b, extra))
    }

    /// The labels of a point of the one series metric `name`, or why the metric is dropped.
    fn point_labels(
        &mut self,
        attrs: &[KeyValue],
        name: &str,
        res: &ResourceLabels,
        scope: Option<&ScopeLabels>,
    ) -> Result<Labels, String> {
        self.labels(attrs, &[METRIC_NAME], res, scope, &[(METRIC_NAME, name)])
            .map_err(|e| e.to_string())
    }

    /// The labels of a point without `extra`, for the several series of a histogram or
    /// summary point (the attributes are translated once).
    fn base(
        &mut self,
        attrs: &[KeyValue],
        ignore: &[&str],
        res: &ResourceLabels,
        scope: Option<&ScopeLabels>,
    ) -> Result<LabelsBuilder, names::NameError> {
        let namer = self.settings.label_namer;
        // Attribute indices and values, in the order of the attribute names (collisions are
        // joined in that order).
        self.scratch.clear();
        for (i, kv) in attrs.iter().enumerate() {
            if !ignore.contains(&kv.key.as_str()) {
                self.scratch.push((i, value_string(kv.value.as_ref())));
            }
        }
        self.scratch
            .sort_by(|a, b| attrs[a.0].key.cmp(&attrs[b.0].key));
        let mut b = LabelsBuilder::new();
        for (i, v) in self.scratch.drain(..) {
            let k = &attrs[i].key;
            if namer.utf8 {
                if !k.is_empty() {
                    b.set(k.as_str(), v);
                }
                continue;
            }
            // Escaped names are cached per request (points repeat the same attributes).
            let name = match self.label_names.get(k.as_str()) {
                Some(n) => n.clone(),
                None => {
                    let n = namer.build(k)?;
                    self.label_names.insert(k.clone(), n.clone());
                    n
                }
            };
            match b.get(&name) {
                Some(old) if !old.is_empty() => {
                    let joined = format!("{old};{v}");
                    b.set(name, joined);
                }
                _ => {
                    b.set(name, v);
                }
            }
        }
        for (n, v) in &res.promoted {
            if b.get(n).is_none() {
                b.set(n.as_str(), v.as_str());
            }
        }
        if !res.job.is_empty() {
            b.set("job", res.job.as_str());
        }
        if !res.instance.is_empty() {
            b.set("instance", res.instance.as_str());
        }
        if let Some(sc) = scope {
            for (n, v) in &sc.pairs {
                b.set(n.as_str(), v.as_str());
            }
        }
        Ok(b)
    }

    fn append(&mut self, labels: &Labels, t: i64, v: f64, st: i64) -> Result<(), TranslateError> {
        self.app
            .append_with_st(None, labels, t, v, st)
            .map_err(|source| append_error(labels, source))?;
        self.outcome.samples += 1;
        Ok(())
    }

    fn append_histogram(
        &mut self,
        labels: &Labels,
        t: i64,
        h: &FloatHistogram,
        st: i64,
    ) -> Result<(), TranslateError> {
        self.app
            .append_histogram_with_st(None, labels, t, h, st)
            .map_err(|source| append_error(labels, source))?;
        self.outcome.histograms += 1;
        Ok(())
    }

    fn metric(
        &mut self,
        m: &Metric,
        res: &ResourceLabels,
        scope: Option<&ScopeLabels>,
    ) -> Result<(), TranslateError> {
        let n = point_count(m);
        self.outcome.points += n as u64;
        let kind = match &m.data {
            None => {
                self.outcome.reject(
                    0,
                    format!("metric {:?} has no data: unsupported metric type", m.name),
                );
                return Ok(());
            }
            Some(Data::Gauge(_)) => Kind::Gauge,
            Some(Data::Sum(s)) if s.is_monotonic => Kind::MonotonicCounter,
            Some(Data::Sum(_)) => Kind::NonMonotonicCounter,
            Some(Data::Histogram(_)) => Kind::Histogram,
            Some(Data::ExponentialHistogram(_)) => Kind::ExponentialHistogram,
            Some(Data::Summary(_)) => Kind::Summary,
        };
        if n == 0 {
            self.outcome
                .reject(0, format!("empty data points. {} is dropped", m.name));
            return Ok(());
        }
        if let Some(t) = temporality(m)
            && t != AggregationTemporality::Cumulative as i32
            && !(self.settings.allow_delta && t == AggregationTemporality::Delta as i32)
        {
            self.outcome.reject(
                n,
                format!(
                    "invalid temporality and type combination for metric {:?}",
                    m.name
                ),
            );
            return Ok(());
        }
        let st = self.settings.strategy;
        let name =
            match names::metric_name(&m.name, &m.unit, kind, st.escapes(), st.adds_suffixes()) {
                Ok(n) if !n.is_empty() => n,
                Ok(_) => {
                    self.outcome
                        .reject(n, format!("metric {:?} has an empty name", m.name));
                    return Ok(());
                }
                Err(e) => {
                    self.outcome.reject(n, e.to_string());
                    return Ok(());
                }
            };
        let r = match &m.data {
            Some(Data::Gauge(g)) => self.numbers(&g.data_points, &name, res, scope),
            Some(Data::Sum(s)) => self.numbers(&s.data_points, &name, res, scope),
            Some(Data::Histogram(h)) if self.settings.convert_histograms_to_nhcb => {
                self.nhcb(&h.data_points, &name, res, scope)
            }
            Some(Data::Histogram(h)) => self.classic(&h.data_points, &name, res, scope),
            Some(Data::ExponentialHistogram(h)) => {
                let gauge = h.aggregation_temporality == AggregationTemporality::Delta as i32;
                self.exponential(&h.data_points, &name, gauge, res, scope)
            }
            Some(Data::Summary(s)) => self.summaries(&s.data_points, &name, res, scope),
            None => Ok(Ok(())),
        };
        match r? {
            Ok(()) => Ok(()),
            Err(e) => {
                self.outcome.reject(n, format!("metric {:?}: {e}", m.name));
                Ok(())
            }
        }
    }

    /// Gauges and sums: one sample per point.
    fn numbers(
        &mut self,
        pts: &[NumberDataPoint],
        name: &str,
        res: &ResourceLabels,
        scope: Option<&ScopeLabels>,
    ) -> Result<Result<(), String>, TranslateError> {
        for p in pts {
            let labels = match self.point_labels(&p.attributes, name, res, scope) {
                Ok(l) => l,
                Err(e) => return Ok(Err(e)),
            };
            let v = match p.value {
                Some(number_data_point::Value::AsDouble(d)) => d,
                Some(number_data_point::Value::AsInt(i)) => i as f64,
                None => 0.0,
            };
            self.outcome.exemplars += p.exemplars.len() as u64;
            self.append(
                &labels,
                ms(p.time_unix_nano),
                stale_or(p.flags, v),
                ms(p.start_time_unix_nano),
            )?;
        }
        Ok(Ok(()))
    }

    /// Explicit-bucket histograms as classic histograms: `_sum` (when set), `_count`, and a
    /// cumulative `_bucket` per bound plus `le="+Inf"`.
    fn classic(
        &mut self,
        pts: &[HistogramDataPoint],
        name: &str,
        res: &ResourceLabels,
        scope: Option<&ScopeLabels>,
    ) -> Result<Result<(), String>, TranslateError> {
        let (sum_name, count_name, bucket_name) = (
            format!("{name}_sum"),
            format!("{name}_count"),
            format!("{name}_bucket"),
        );
        for p in pts {
            let t = ms(p.time_unix_nano);
            let st = ms(p.start_time_unix_nano);
            self.outcome.exemplars += p.exemplars.len() as u64;
            let base = match self.base(&p.attributes, &[METRIC_NAME], res, scope) {
                Ok(b) => b,
                Err(e) => return Ok(Err(e.to_string())),
            };
            if let Some(sum) = p.sum {
                let l = with_extra(&base, &[(METRIC_NAME, &sum_name)]);
                self.append(&l, t, stale_or(p.flags, sum), st)?;
            }
            let l = with_extra(&base, &[(METRIC_NAME, &count_name)]);
            self.append(&l, t, stale_or(p.flags, p.count as f64), st)?;
            let mut cumulative = 0u64;
            for (bound, c) in p.explicit_bounds.iter().zip(&p.bucket_counts) {
                cumulative = cumulative.wrapping_add(*c);
                let le = go_float(*bound);
                let l = with_extra(&base, &[(METRIC_NAME, &bucket_name), ("le", &le)]);
                self.append(&l, t, stale_or(p.flags, cumulative as f64), st)?;
            }
            let l = with_extra(&base, &[(METRIC_NAME, &bucket_name), ("le", "+Inf")]);
            self.append(&l, t, stale_or(p.flags, p.count as f64), st)?;
        }
        Ok(Ok(()))
    }

    /// Explicit-bucket histograms as native histograms with custom buckets (schema −53).
    fn nhcb(
        &mut self,
        pts: &[HistogramDataPoint],
        name: &str,
        res: &ResourceLabels,
        scope: Option<&ScopeLabels>,
    ) -> Result<Result<(), String>, TranslateError> {
        self.natives(pts, name, res, scope, |p| Ok(custom_buckets_histogram(p)))
    }

    fn exponential(
        &mut self,
        pts: &[ExponentialHistogramDataPoint],
        name: &str,
        gauge: bool,
        res: &ResourceLabels,
        scope: Option<&ScopeLabels>,
    ) -> Result<Result<(), String>, TranslateError> {
        self.natives(pts, name, res, scope, |p| exponential_histogram(p, gauge))
    }

    /// One native histogram a point, made by `histogram` (or the reason it cannot be).
    fn natives<P: DataPoint>(
        &mut self,
        pts: &[P],
        name: &str,
        res: &ResourceLabels,
        scope: Option<&ScopeLabels>,
        histogram: impl Fn(&P) -> Result<FloatHistogram, String>,
    ) -> Result<Result<(), String>, TranslateError> {
        for p in pts {
            let h = match histogram(p) {
                Ok(h) => h,
                Err(e) => return Ok(Err(e)),
            };
            let labels = match self.point_labels(p.attributes(), name, res, scope) {
                Ok(l) => l,
                Err(e) => return Ok(Err(e)),
            };
            if let Err(e) = h.validate() {
                return Ok(Err(e.to_string()));
            }
            self.outcome.exemplars += p.exemplars() as u64;
            self.append_histogram(&labels, ms(p.time()), &h, ms(p.start()))?;
        }
        Ok(Ok(()))
    }

    /// Summaries: `_sum`, `_count` and one series per quantile.
    fn summaries(
        &mut self,
        pts: &[SummaryDataPoint],
        name: &str,
        res: &ResourceLabels,
        scope: Option<&ScopeLabels>,
    ) -> Result<Result<(), String>, TranslateError> {
        let (sum_name, count_name) = (format!("{name}_sum"), format!("{name}_count"));
        for p in pts {
            let t = ms(p.time_unix_nano);
            let st = ms(p.start_time_unix_nano);
            let base = match self.base(&p.attributes, &[METRIC_NAME], res, scope) {
                Ok(b) => b,
                Err(e) => return Ok(Err(e.to_string())),
            };
            let l = with_extra(&base, &[(METRIC_NAME, &sum_name)]);
            self.append(&l, t, stale_or(p.flags, p.sum), st)?;
            let l = with_extra(&base, &[(METRIC_NAME, &count_name)]);
            self.append(&l, t, stale_or(p.flags, p.count as f64), st)?;
            for q in &p.quantile_values {
                let qs = go_float(q.quantile);
                let l = with_extra(&base, &[(METRIC_NAME, name), ("quantile", &qs)]);
                self.append(&l, t, stale_or(p.flags, q.value), st)?;
            }
        }
        Ok(Ok(()))
    }

    /// `target_info{job, instance, <other resource attributes>} 1` from the earliest to the
    /// latest point of the resource, every half lookback delta, when the resource has
    /// attributes besides the identifying ones and a `job` or `instance`.
    fn target_info(
        &mut self,
        rattrs: &[KeyValue],
        res: &ResourceLabels,
        earliest: u64,
        latest: u64,
    ) -> Result<(), TranslateError> {
        let identifying = [SERVICE_NAMESPACE, SERVICE_NAME, SERVICE_INSTANCE_ID];
        let others = rattrs.len()
            - identifying
                .iter()
                .filter(|k| attr(rattrs, k).is_some())
                .count()
                .min(rattrs.len());
        if others == 0 {
            return Ok(());
        }
        let ignore: &[&str] = if self.settings.keep_identifying_resource_attributes {
            &[]
        } else {
            &identifying
        };
        let plain = ResourceLabels {
            job: res.job.clone(),
            instance: res.instance.clone(),
            promoted: Vec::new(),
        };
        let labels = match self.labels(
            rattrs,
            ignore,
            &plain,
            None,
            &[(METRIC_NAME, "target_info")],
        ) {
            Ok(l) => l,
            Err(e) => {
                self.outcome.reject(0, format!("target_info: {e}"));
                return Ok(());
            }
        };
        if labels.get("job").is_none() && labels.get("instance").is_none() {
            return Ok(());
        }
        let interval_ns = (self.settings.lookback_delta_ms.max(2) as u64).saturating_mul(500_000);
        // A resource whose points span more than MAX_TARGET_INFO intervals (a point from 1970
        // beside a current one) gets the most recent ones only, not millions of samples.
        let span = (latest - earliest) / interval_ns;
        let mut t = if span > MAX_TARGET_INFO {
            earliest + (span - MAX_TARGET_INFO) * interval_ns
        } else {
            earliest
        };
        while t < latest {
            self.target_info_sample(&labels, ms(t))?;
            t = t.saturating_add(interval_ns);
        }
        self.target_info_sample(&labels, ms(latest))
    }

    fn target_info_sample(&mut self, labels: &Labels, t: i64) -> Result<(), TranslateError> {
        if self.seen_target_info.insert((labels.clone(), t)) {
            self.append(labels, t, 1.0, 0)?;
        }
        Ok(())
    }
}

fn append_error(labels: &Labels, source: AppendError) -> TranslateError {
    TranslateError::Append {
        series: labels.to_string(),
        source,
    }
}

/// `base` with `extra` set (`__name__`, `le`, `quantile`), as a label set.
fn with_extra(base: &LabelsBuilder, extra: &[(&str, &str)]) -> Labels {
    let mut b = base.clone();
    for (n, v) in extra {
        b.set(*n, *v);
    }
    b.build()
}

/// Builds spans and absolute counts from `(index, count)` pairs in ascending index order as
/// Prometheus' `convertBucketsLayout` lays them out: the first span starts at `first`, zero
/// buckets are left out unless they fill a gap of at most two buckets or are the last one.
fn layout(first: i32, buckets: impl Iterator<Item = (i32, f64)>) -> (Vec<Span>, Vec<f64>) {
    let mut spans = vec![Span {
        offset: first,
        length: 0,
    }];
    let mut counts = Vec::new();
    let mut last = first - 1;
    let mut pending: Option<(i32, f64)> = None;
    let emit = |idx: i32, c: f64, spans: &mut Vec<Span>, counts: &mut Vec<f64>, last: &mut i32| {
        let gap = idx - *last - 1;
        if gap > 2 {
            spans.push(Span {
                offset: gap,
                length: 0,
            });
        } else {
            for _ in 0..gap {
                counts.push(0.0);
            }
            spans.last_mut().expect("one span").length += gap as u32;
        }
        counts.push(c);
        spans.last_mut().expect("one span").length += 1;
        *last = idx;
    };
    for (idx, c) in buckets {
        match &mut pending {
            Some((pi, pc)) if *pi == idx => *pc += c,
            Some((pi, pc)) => {
                if *pc != 0.0 {
                    emit(*pi, *pc, &mut spans, &mut counts, &mut last);
                }
                pending = Some((idx, c));
            }
            None => pending = Some((idx, c)),
        }
    }
    match pending {
        Some((pi, pc)) => emit(pi, pc, &mut spans, &mut counts, &mut last),
        None => return (Vec::new(), Vec::new()),
    }
    if spans.len() > 1 && spans[0].length == 0 {
        let lead = spans.remove(0);
        spans[0].offset += lead.offset;
    }
    (spans, counts)
}

/// An exponential histogram point as a native histogram: scale above 8 merged down to 8
/// (each step halves the buckets), OTLP's bucket `k` (`(base^k, base^(k+1)]`) becoming
/// Prometheus' bucket `k+1`. Delta points are marked as gauge histograms.
pub fn exponential_histogram(
    p: &ExponentialHistogramDataPoint,
    gauge: bool,
) -> Result<FloatHistogram, String> {
    let mut scale = p.scale;
    if scale < EXPONENTIAL_SCHEMA_MIN {
        return Err(format!(
            "cannot convert exponential to native histogram. Scale must be >= {EXPONENTIAL_SCHEMA_MIN}, was {scale}"
        ));
    }
    let mut down = 0u32;
    if scale > EXPONENTIAL_SCHEMA_MAX {
        down = (scale - EXPONENTIAL_SCHEMA_MAX) as u32;
        scale = EXPONENTIAL_SCHEMA_MAX;
    }
    let side = |b: Option<
        &opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets,
    >| {
        match b {
            Some(b) if !b.bucket_counts.is_empty() => {
                let shift = |k: i64| ((k >> down.min(62)) + 1) as i32;
                let off = b.offset as i64;
                // Bucket indices (and the gaps between them) must stay inside i32.
                if off - 1 < i32::MIN as i64
                    || off + b.bucket_counts.len() as i64 + 1 > i32::MAX as i64
                {
                    return Err(format!(
                        "exponential histogram bucket offset {} with {} buckets is out of range",
                        b.offset,
                        b.bucket_counts.len()
                    ));
                }
                Ok(layout(
                    shift(off),
                    b.bucket_counts
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (shift(off + i as i64), *c as f64)),
                ))
            }
            _ => Ok((Vec::new(), Vec::new())),
        }
    };
    let (positive_spans, positive_buckets) = side(p.positive.as_ref())?;
    let (negative_spans, negative_buckets) = side(p.negative.as_ref())?;
    let stale = p.flags & NO_RECORDED_VALUE != 0;
    Ok(FloatHistogram {
        counter_reset_hint: if gauge {
            CounterResetHint::Gauge
        } else {
            CounterResetHint::Unknown
        },
        schema: scale,
        zero_threshold: ZERO_THRESHOLD,
        zero_count: p.zero_count as f64,
        count: if stale { 0.0 } else { p.count as f64 },
        sum: if stale {
            stale_nan()
        } else {
            p.sum.unwrap_or(0.0)
        },
        positive_spans,
        negative_spans,
        positive_buckets,
        negative_buckets,
        custom_values: None,
    })
}

/// An explicit-bucket histogram point as a native histogram with custom buckets: the bounds
/// become the custom values, bucket `i` of the point is custom bucket `i`.
pub fn custom_buckets_histogram(p: &HistogramDataPoint) -> FloatHistogram {
    let first = p.bucket_counts.iter().position(|&c| c != 0);
    let (positive_spans, positive_buckets) = match first {
        Some(f) => layout(
            f as i32,
            p.bucket_counts
                .iter()
                .enumerate()
                .skip(f)
                .map(|(i, c)| (i as i32, *c as f64)),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let stale = p.flags & NO_RECORDED_VALUE != 0;
    FloatHistogram {
        counter_reset_hint: CounterResetHint::Unknown,
        schema: CUSTOM_BUCKETS_SCHEMA,
        zero_threshold: 0.0,
        zero_count: 0.0,
        count: if stale { 0.0 } else { p.count as f64 },
        sum: if stale {
            stale_nan()
        } else {
            p.sum.unwrap_or(0.0)
        },
        positive_spans,
        negative_spans: Vec::new(),
        positive_buckets,
        negative_buckets: Vec::new(),
        custom_values: Some(Arc::from(p.explicit_bounds.as_slice())),
    }
}
