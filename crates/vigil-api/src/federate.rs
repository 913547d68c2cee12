//! `/federate`: the newest sample (within the lookback delta) of every series matching any
//! `match[]`, as Prometheus' federation handler (`web/federate.go`) writes it: metric families
//! grouped by name, each series with its labels and then the external labels it lacks
//! (`instance=""` among them when the configuration has no `instance`), and its timestamp.
//!
//! The format is negotiated from `Accept` as `expfmt.Negotiate` does in the `prometheus/common`
//! release Prometheus 3.14 builds with (v0.70.1): length-delimited protobuf `MetricFamily`
//! messages when a clause asks for `application/vnd.google.protobuf;
//! proto=io.prometheus.client.MetricFamily; encoding=delimited`, else the text format 0.0.4.
//! Protobuf carries native histograms (`HISTOGRAM` / `GAUGE_HISTOGRAM` families with float
//! counts, as Prometheus converts every histogram with `ToFloat`); text leaves them out, except
//! histograms with custom buckets (schema −53), which both formats write as classic
//! histograms. Float samples are `UNTYPED` families. The protobuf text encodings
//! (`encoding=text`, `encoding=compact-text`) are not offered: such a clause is passed over.
//!
//! Names that are not legacy-valid are escaped as the consumer's `Accept` header asks
//! (`escaping=`; `underscores` when it does not say), or written unchanged under
//! `allow-utf-8` (quoted in text), as `model.EscapeMetricFamily` does for either format.

use crate::handlers::{Params, St};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message;
use std::collections::BTreeMap;
use std::sync::Arc;
use vigil_exposition::proto::dto;
use vigil_model::histogram::{CounterResetHint, FloatHistogram, Span};
use vigil_model::names::{Escaping, escape_name, is_legacy_metric_name};
use vigil_model::{HistogramSample, Labels, Sample, SelectHints, is_stale_nan, now_millis};

pub async fn federate(st: St, headers: HeaderMap, p: Params) -> Response {
    let st = st.0;
    let neg = negotiate(
        headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let mut sets = Vec::new();
    for sel in p.all("match[]") {
        match st.engine.selector_matchers(sel) {
            Ok(ms) => sets.push(ms),
            Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        }
    }
    let external = (st.info.external_labels)();
    let maxt = now_millis();
    let mint = maxt - st.engine.options().lookback_delta_ms;
    let result = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let q = st.db.querier(mint, maxt).map_err(|e| e.to_string())?;
        let mut latest: BTreeMap<Labels, Point> = BTreeMap::new();
        for ms in &sets {
            let hints = SelectHints {
                start: mint,
                end: maxt,
            };
            for mut s in q.select(ms, &hints).map_err(|e| e.to_string())? {
                if let Some(point) = newest(s.samples.last(), s.histograms.pop()) {
                    latest.insert(s.labels, point);
                }
            }
        }
        let families = families(&latest, &external, neg.format);
        Ok(encode(&families, neg))
    })
    .await;
    match result {
        Ok(Ok(body)) => {
            let mut r = body.into_response();
            if let Ok(v) = HeaderValue::from_str(&neg.content_type()) {
                r.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            r
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// The newer of a series' last float and last histogram (a series that changed kind has
/// both, never at the same timestamp); none when that one is a stale marker, which the
/// exposition formats cannot carry (Prometheus does not fall back to an older sample either).
fn newest(float: Option<Sample>, hist: Option<HistogramSample>) -> Option<Point> {
    let point = match (float, hist) {
        (Some(f), Some(h)) if h.t > f.t => Point {
            t: h.t,
            v: Value::Hist(h.h),
        },
        (Some(f), _) => Point {
            t: f.t,
            v: Value::Float(f.v),
        },
        (None, Some(h)) => Point {
            t: h.t,
            v: Value::Hist(h.h),
        },
        (None, None) => return None,
    };
    let stale = match &point.v {
        Value::Float(v) => is_stale_nan(*v),
        Value::Hist(h) => is_stale_nan(h.sum),
    };
    (!stale).then_some(point)
}

/// The newest sample of a series.
#[derive(Debug, Clone, PartialEq)]
struct Point {
    t: i64,
    v: Value,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Float(f64),
    Hist(Arc<FloatHistogram>),
}

/// The exposition formats vigil answers federation requests in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `text/plain; version=0.0.4`.
    Text,
    /// Length-delimited protobuf `MetricFamily` messages.
    ProtoDelim,
}

/// The outcome of content negotiation: the format and the name escaping scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Negotiated {
    format: Format,
    escaping: Escaping,
}

impl Negotiated {
    /// The `Content-Type`, as `expfmt` spells the format plus `; escaping=<scheme>`.
    fn content_type(&self) -> String {
        let media = match self.format {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::ProtoDelim => {
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
            }
        };
        format!("{media}; escaping={}", self.escaping.as_str())
    }
}

/// One clause of an `Accept` header as `goautoneg.ParseAccept` reads it.
struct Clause<'a> {
    ty: &'a str,
    sub: &'a str,
    q: f64,
    params: Vec<(&'a str, &'a str)>,
}

impl Clause<'_> {
    /// A parameter's value ("" when absent; the last one wins, as in goautoneg's map).
    fn param(&self, key: &str) -> &str {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, v)| v)
    }
}

/// `goautoneg.ParseAccept`: clauses split at `,` and `;`, only spaces trimmed, case kept; a
/// media range that is neither `type/subtype` nor `*` is dropped; `q` parsed as Go's
/// `ParseFloat(s, 32)` (0 when it does not parse). Then sorted with goautoneg's `Less` (higher
/// `q` first, or a concrete type or subtype before a wildcard) by Go's `sort.Sort`, which for
/// the dozen clauses an `Accept` header has is an insertion sort.
fn parse_accept(header: &str) -> Vec<Clause<'_>> {
    let mut out: Vec<Clause<'_>> = Vec::new();
    for part in header.split(',') {
        let part = part.trim_matches(' ');
        let mut mrp = part.split(';');
        let media = mrp.next().unwrap_or("");
        let sp: Vec<&str> = media.split('/').collect();
        let ty = sp[0].trim_matches(' ');
        let sub = match sp.len() {
            1 if ty == "*" => "*",
            2 => sp[1].trim_matches(' '),
            _ => continue,
        };
        let mut c = Clause {
            ty,
            sub,
            q: 1.0,
            params: Vec::new(),
        };
        for param in mrp {
            let Some((k, v)) = param.split_once('=') else {
                continue;
            };
            let k = k.trim_matches(' ');
            if k == "q" {
                c.q = v.parse::<f32>().map_or(0.0, f64::from);
            } else {
                c.params.push((k, v.trim_matches(' ')));
            }
        }
        out.push(c);
    }
    let less = |a: &Clause<'_>, b: &Clause<'_>| {
        a.q > b.q || (a.ty != "*" && b.ty == "*") || (a.sub != "*" && b.sub == "*")
    };
    for i in 1..out.len() {
        let mut j = i;
        while j > 0 && less(&out[j], &out[j - 1]) {
            out.swap(j, j - 1);
            j -= 1;
        }
    }
    out
}

/// `expfmt.Negotiate` as of `prometheus/common` v0.70.1 (Prometheus 3.14): the clauses in
/// order; each valid `escaping=` seen sets the scheme; the first clause asking for delimited
/// protobuf or for `text/plain` (version 0.0.4 or none) decides the format; text 0.0.4 when
/// none does. `*/*` matches nothing here (so `curl` gets text). The protobuf text encodings
/// are not offered, so their clauses are passed over.
fn negotiate(accept: &str) -> Negotiated {
    let mut escaping = Escaping::Underscores;
    for ac in parse_accept(accept) {
        escaping = Escaping::parse(ac.param("escaping")).unwrap_or(escaping);
        let format = if ac.ty == "application"
            && ac.sub == "vnd.google.protobuf"
            && ac.param("proto") == "io.prometheus.client.MetricFamily"
            && ac.param("encoding") == "delimited"
        {
            Some(Format::ProtoDelim)
        } else if ac.ty == "text"
            && ac.sub == "plain"
            && matches!(ac.param("version"), "0.0.4" | "")
        {
            Some(Format::Text)
        } else {
            None
        };
        if let Some(format) = format {
            return Negotiated { format, escaping };
        }
    }
    Negotiated {
        format: Format::Text,
        escaping,
    }
}

/// The metric families Prometheus' handler builds from the newest samples, names not yet
/// escaped: samples ordered by metric name (then by label set), a new family whenever the
/// name or the kind (float, counter histogram, gauge histogram) changes, so one name can
/// give several families. Text leaves out histograms with exponential buckets; histograms
/// with custom buckets become classic histograms in either format.
fn families(
    latest: &BTreeMap<Labels, Point>,
    external: &Labels,
    format: Format,
) -> Vec<dto::MetricFamily> {
    let mut samples: Vec<(&str, &Labels, &Point)> = latest
        .iter()
        .filter_map(|(l, p)| Some((l.metric_name().filter(|n| !n.is_empty())?, l, p)))
        .collect();
    samples.sort_by(|a, b| a.0.cmp(b.0));
    // The external labels, plus `instance=""` unless configured: a consumer with
    // `honor_labels` then keeps a series without `instance` as it is.
    let mut ext: Vec<(&str, &str)> = external
        .iter()
        .filter(|l| !l.value.is_empty())
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    if !ext.iter().any(|(n, _)| *n == "instance") {
        ext.push(("instance", ""));
    }
    ext.sort();

    let mut out: Vec<dto::MetricFamily> = Vec::new();
    let mut last: Option<(&str, dto::MetricType)> = None;
    for (name, labels, point) in samples {
        let ty = match &point.v {
            Value::Float(_) => dto::MetricType::Untyped,
            Value::Hist(h) => {
                if format == Format::Text && !h.uses_custom_buckets() {
                    // Text has no native histograms.
                    continue;
                }
                if h.counter_reset_hint == CounterResetHint::Gauge {
                    dto::MetricType::GaugeHistogram
                } else {
                    dto::MetricType::Histogram
                }
            }
        };
        if last != Some((name, ty)) {
            out.push(dto::MetricFamily {
                name: name.to_string(),
                r#type: ty as i32,
                ..Default::default()
            });
            last = Some((name, ty));
        }
        let mut label: Vec<dto::LabelPair> = labels
            .iter()
            .filter(|l| l.name != "__name__" && !l.value.is_empty())
            .map(|l| dto::LabelPair {
                name: l.name.clone(),
                value: l.value.clone(),
            })
            .collect();
        for (n, v) in &ext {
            if labels.get(n).is_none_or(str::is_empty) {
                label.push(dto::LabelPair {
                    name: n.to_string(),
                    value: v.to_string(),
                });
            }
        }
        let mut metric = dto::Metric {
            label,
            timestamp_ms: point.t,
            ..Default::default()
        };
        match &point.v {
            Value::Float(v) => metric.untyped = Some(dto::Untyped { value: *v }),
            Value::Hist(h) if h.uses_custom_buckets() => {
                metric.histogram = Some(classic_histogram(h))
            }
            Value::Hist(h) => metric.histogram = Some(native_histogram(h)),
        }
        if let Some(f) = out.last_mut() {
            f.metric.push(metric);
        }
    }
    out
}

fn spans(s: &[Span]) -> Vec<dto::BucketSpan> {
    s.iter()
        .map(|s| dto::BucketSpan {
            offset: s.offset,
            length: s.length,
        })
        .collect()
}

/// Prometheus' `makeNativeHistogram`: an exponential histogram with its counts as floats.
fn native_histogram(h: &FloatHistogram) -> dto::Histogram {
    dto::Histogram {
        sample_count_float: h.count,
        sample_sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count_float: h.zero_count,
        negative_span: spans(&h.negative_spans),
        negative_count: h.negative_buckets.clone(),
        positive_span: spans(&h.positive_spans),
        positive_count: h.positive_buckets.clone(),
        ..Default::default()
    }
}

/// Prometheus' `makeClassicHistogram` for a histogram with custom buckets: one cumulative
/// bucket per custom bound, the `+Inf` bucket left out (optional in protobuf; the text writer
/// adds it).
fn classic_histogram(h: &FloatHistogram) -> dto::Histogram {
    let bounds = h.custom_values.as_deref().unwrap_or(&[]);
    let mut it = h.positive_bucket_iter().peekable();
    let mut cumulative = 0.0;
    let bucket = bounds
        .iter()
        .enumerate()
        .map(|(i, &le)| {
            while it.peek().is_some_and(|b| (b.index as i64) < i as i64) {
                it.next();
            }
            if let Some(b) = it.peek()
                && b.index as i64 == i as i64
            {
                cumulative += b.count;
            }
            dto::Bucket {
                upper_bound: le,
                cumulative_count_float: cumulative,
                ..Default::default()
            }
        })
        .collect();
    dto::Histogram {
        sample_count_float: h.count,
        sample_sum: h.sum,
        bucket,
        ..Default::default()
    }
}

/// A name escaped for the consumer: legacy-valid names pass unchanged (as Prometheus'
/// `EscapeMetricFamily` leaves them, even under `dots`).
fn escaped(name: &str, scheme: Escaping) -> std::borrow::Cow<'_, str> {
    if is_legacy_metric_name(name) {
        std::borrow::Cow::Borrowed(name)
    } else {
        escape_name(name, scheme)
    }
}

/// `model.EscapeMetricFamily`: the family name and every label name escaped.
fn escape_family(mut mf: dto::MetricFamily, scheme: Escaping) -> dto::MetricFamily {
    if scheme == Escaping::AllowUtf8 {
        return mf;
    }
    mf.name = escaped(&mf.name, scheme).into_owned();
    for m in &mut mf.metric {
        for l in &mut m.label {
            if !is_legacy_metric_name(&l.name) {
                l.name = escape_name(&l.name, scheme).into_owned();
            }
        }
    }
    mf
}

/// The response body: the families escaped and written in the negotiated format.
fn encode(families: &[dto::MetricFamily], neg: Negotiated) -> Vec<u8> {
    let mut out = Vec::new();
    let mut text = String::new();
    for mf in families {
        let mf = escape_family(mf.clone(), neg.escaping);
        match neg.format {
            // Writing into a Vec cannot fail.
            Format::ProtoDelim => {
                let _ = mf.encode_length_delimited(&mut out);
            }
            Format::Text => write_text(&mut text, &mf),
        }
    }
    if neg.format == Format::Text {
        out = text.into_bytes();
    }
    out
}

/// A metric or label name as the text writer puts it: bare when legacy-valid, else quoted.
fn push_name(out: &mut String, name: &str) {
    if is_legacy_metric_name(name) {
        out.push_str(name);
    } else {
        out.push('"');
        push_escaped(out, name);
        out.push('"');
    }
}

fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// client_golang's `writeFloat`: 'g' shortest, with 0 (and so -0) written as "0".
fn push_float(out: &mut String, v: f64) {
    if v == 0.0 {
        out.push('0');
    } else {
        out.push_str(&vigil_model::gofmt::g(v, None));
    }
}

/// `expfmt.MetricFamilyToText` for the families federation builds (untyped and histogram).
fn write_text(out: &mut String, mf: &dto::MetricFamily) {
    let histogram = mf.r#type != dto::MetricType::Untyped as i32;
    out.push_str("# TYPE ");
    push_name(out, &mf.name);
    out.push_str(if histogram {
        " histogram\n"
    } else {
        " untyped\n"
    });
    for m in &mf.metric {
        match (&m.untyped, &m.histogram) {
            (Some(u), _) => write_sample(out, &mf.name, "", m, None, u.value),
            (None, Some(h)) => {
                let count = |float: f64, int: u64| if float == 0.0 { int as f64 } else { float };
                let mut inf_seen = false;
                for b in &h.bucket {
                    let v = count(b.cumulative_count_float, b.cumulative_count);
                    write_sample(out, &mf.name, "_bucket", m, Some(b.upper_bound), v);
                    inf_seen |= b.upper_bound == f64::INFINITY;
                }
                let total = count(h.sample_count_float, h.sample_count);
                if !inf_seen {
                    write_sample(out, &mf.name, "_bucket", m, Some(f64::INFINITY), total);
                }
                write_sample(out, &mf.name, "_sum", m, None, h.sample_sum);
                write_sample(out, &mf.name, "_count", m, None, total);
            }
            (None, None) => {}
        }
    }
}

/// One text line: the name (quoted inside the braces when not legacy-valid), the labels, an
/// `le` label when given, the value and the timestamp.
fn write_sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    m: &dto::Metric,
    le: Option<f64>,
    v: f64,
) {
    let full = format!("{name}{suffix}");
    let mut sep = '{';
    if is_legacy_metric_name(&full) {
        out.push_str(&full);
    } else {
        out.push('{');
        push_name(out, &full);
        sep = ',';
    }
    if m.label.is_empty() && le.is_none() {
        if sep == ',' {
            out.push('}');
        }
    } else {
        for l in &m.label {
            out.push(sep);
            push_name(out, &l.name);
            out.push_str("=\"");
            push_escaped(out, &l.value);
            out.push('"');
            sep = ',';
        }
        if let Some(le) = le {
            out.push(sep);
            out.push_str("le=\"");
            push_float(out, le);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    push_float(out, v);
    out.push(' ');
    out.push_str(&m.timestamp_ms.to_string());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::stale_nan;

    fn float(t: i64, v: f64) -> Point {
        Point {
            t,
            v: Value::Float(v),
        }
    }

    fn hist_point(t: i64, h: FloatHistogram) -> Point {
        Point {
            t,
            v: Value::Hist(Arc::new(h)),
        }
    }

    fn text(latest: &BTreeMap<Labels, Point>, ext: &Labels, escaping: Escaping) -> String {
        let neg = Negotiated {
            format: Format::Text,
            escaping,
        };
        String::from_utf8(encode(&families(latest, ext, Format::Text), neg)).unwrap()
    }

    /// The body in protobuf, decoded back message by message.
    fn proto(
        latest: &BTreeMap<Labels, Point>,
        ext: &Labels,
        escaping: Escaping,
    ) -> Vec<dto::MetricFamily> {
        let neg = Negotiated {
            format: Format::ProtoDelim,
            escaping,
        };
        let body = encode(&families(latest, ext, Format::ProtoDelim), neg);
        let mut buf = body.as_slice();
        let mut out = Vec::new();
        while !buf.is_empty() {
            out.push(dto::MetricFamily::decode_length_delimited(&mut buf).unwrap());
        }
        out
    }

    fn exp_hist(hint: CounterResetHint) -> FloatHistogram {
        FloatHistogram {
            counter_reset_hint: hint,
            schema: 1,
            zero_threshold: 0.001,
            zero_count: 2.0,
            count: 9.5,
            sum: 17.25,
            positive_spans: vec![
                Span {
                    offset: 0,
                    length: 1,
                },
                Span {
                    offset: 2,
                    length: 2,
                },
            ],
            positive_buckets: vec![1.0, 2.5, 3.0],
            negative_spans: vec![Span {
                offset: 1,
                length: 1,
            }],
            negative_buckets: vec![1.0],
            custom_values: None,
        }
    }

    /// Custom bounds 0.1, 0.5, 1 (and +Inf): buckets 0 and 2 populated, 3 (+Inf) too.
    fn nhcb() -> FloatHistogram {
        FloatHistogram {
            schema: vigil_model::histogram::CUSTOM_BUCKETS_SCHEMA,
            count: 10.0,
            sum: 4.5,
            positive_spans: vec![
                Span {
                    offset: 0,
                    length: 1,
                },
                Span {
                    offset: 1,
                    length: 2,
                },
            ],
            positive_buckets: vec![3.0, 5.0, 2.0],
            custom_values: Some(Arc::from(vec![0.1, 0.5, 1.0])),
            ..Default::default()
        }
    }

    #[test]
    fn text_format_with_external_labels() {
        let mut m = BTreeMap::new();
        m.insert(
            Labels::from_pairs([("__name__", "up"), ("job", "a\"b")]),
            float(1000, 1.0),
        );
        m.insert(
            Labels::from_pairs([("__name__", "up"), ("job", "x"), ("dc", "mine")]),
            float(2000, 1e21),
        );
        m.insert(
            Labels::from_pairs([("__name__", "up"), ("instance", "i:1")]),
            float(3000, -0.0),
        );
        let ext = Labels::from_pairs([("dc", "eu")]);
        // Series labels first, then the external labels the series lacks, by name, with
        // instance="" among them (Prometheus' handler adds it when it is not configured).
        assert_eq!(
            text(&m, &ext, Escaping::Underscores),
            "# TYPE up untyped\n\
             up{dc=\"mine\",job=\"x\",instance=\"\"} 1e+21 2000\n\
             up{instance=\"i:1\",dc=\"eu\"} 0 3000\n\
             up{job=\"a\\\"b\",dc=\"eu\",instance=\"\"} 1 1000\n"
        );
        // A configured instance label is used as any other.
        let ext = Labels::from_pairs([("instance", "fed")]);
        let mut one = BTreeMap::new();
        one.insert(Labels::from_pairs([("__name__", "up")]), float(5, 1.0));
        assert_eq!(
            text(&one, &ext, Escaping::Underscores),
            "# TYPE up untyped\nup{instance=\"fed\"} 1 5\n"
        );
    }

    #[test]
    fn utf8_names_are_escaped_or_quoted_as_the_consumer_asks() {
        let mut m = BTreeMap::new();
        m.insert(
            Labels::from_pairs([
                ("__name__", "model.latency"),
                ("job", "x"),
                ("dc.zone", "a"),
            ]),
            float(1000, 2.0),
        );
        m.insert(
            Labels::from_pairs([("__name__", "ok_total")]),
            float(1000, 1.0),
        );
        let ext = Labels::from_pairs([("instance", "")]);
        let want = [
            (
                Escaping::Underscores,
                "# TYPE model_latency untyped\nmodel_latency{dc_zone=\"a\",job=\"x\",instance=\"\"} 2 1000\n",
            ),
            (
                Escaping::Dots,
                "# TYPE model_dot_latency untyped\nmodel_dot_latency{dc_dot_zone=\"a\",job=\"x\",instance=\"\"} 2 1000\n",
            ),
            (
                Escaping::Values,
                "# TYPE U__model_2e_latency untyped\nU__model_2e_latency{U__dc_2e_zone=\"a\",job=\"x\",instance=\"\"} 2 1000\n",
            ),
            (
                Escaping::AllowUtf8,
                "# TYPE \"model.latency\" untyped\n{\"model.latency\",\"dc.zone\"=\"a\",job=\"x\",instance=\"\"} 2 1000\n",
            ),
        ];
        for (scheme, head) in want {
            let got = text(&m, &ext, scheme);
            assert_eq!(
                got,
                format!("{head}# TYPE ok_total untyped\nok_total{{instance=\"\"}} 1 1000\n"),
                "{scheme:?}"
            );
        }
        // Protobuf escapes the same way (model.EscapeMetricFamily runs for every format).
        let fams = proto(&m, &ext, Escaping::Values);
        assert_eq!(fams[0].name, "U__model_2e_latency");
        assert_eq!(fams[0].metric[0].label[0].name, "U__dc_2e_zone");
        let fams = proto(&m, &ext, Escaping::AllowUtf8);
        assert_eq!(fams[0].name, "model.latency");
        assert_eq!(fams[0].metric[0].label[0].name, "dc.zone");
    }

    #[test]
    fn accept_header_negotiation_follows_expfmt() {
        use Escaping::*;
        use Format::*;
        let cases = [
            ("", Text, Underscores),
            ("text/plain;version=0.0.4", Text, Underscores),
            // Prometheus 3's default scrape Accept.
            (
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
                Text,
                AllowUtf8,
            ),
            // metric_name_escaping_scheme: dots.
            (
                "application/openmetrics-text;version=1.0.0;escaping=dots;q=0.6,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
                Text,
                Dots,
            ),
            // Prometheus 2.42's Accept: no escaping parameter.
            (
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                Text,
                Underscores,
            ),
            // Prometheus 2.42 with --enable-feature=native-histograms.
            (
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ProtoDelim,
                Underscores,
            ),
            // Prometheus 3 with scrape_native_histograms: protobuf first, which carries no
            // escaping parameter, so the names are escaped with underscores.
            (
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
                ProtoDelim,
                Underscores,
            ),
            (
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=allow-utf-8",
                ProtoDelim,
                AllowUtf8,
            ),
            // Weights order the clauses.
            (
                "text/plain;q=0.5,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7",
                ProtoDelim,
                Underscores,
            ),
            (
                "text/plain;q=0.9,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7",
                Text,
                Underscores,
            ),
            // Protobuf needs proto=...MetricFamily and a known encoding; the text encodings
            // are not offered.
            (
                "application/vnd.google.protobuf;encoding=delimited",
                Text,
                Underscores,
            ),
            (
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text;escaping=dots",
                Text,
                Dots,
            ),
            // Case is kept, as goautoneg does: no match.
            (
                "Application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
                Text,
                Underscores,
            ),
            // */* matches nothing in v0.70.1: later clauses still set the escaping.
            ("*/*;q=0.5,text/html;escaping=dots;q=0.1", Text, Dots),
            (
                "text/plain;q=0.9,*/*;escaping=values;q=0.1",
                Text,
                Underscores,
            ),
            ("*/*;escaping=values", Text, Values),
            ("text/plain;escaping=bogus", Text, Underscores),
            ("text/plain;version=1.0.0;escaping=dots", Text, Dots),
            // An unparsable q is 0.
            (
                "text/plain;q=x,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.1",
                ProtoDelim,
                Underscores,
            ),
        ];
        for (accept, format, escaping) in cases {
            assert_eq!(
                negotiate(accept),
                Negotiated { format, escaping },
                "{accept}"
            );
        }
        assert_eq!(
            negotiate("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited").content_type(),
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=underscores"
        );
        assert_eq!(
            negotiate("").content_type(),
            "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"
        );
    }

    #[test]
    fn goautoneg_sorts_by_weight_then_wildcards_last() {
        let order = |h: &str| {
            parse_accept(h)
                .iter()
                .map(|c| format!("{}/{}", c.ty, c.sub))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            order("*/*;q=0.1,text/plain;q=0.5,application/json"),
            ["application/json", "text/plain", "*/*"]
        );
        assert_eq!(order("text/*,text/plain"), ["text/plain", "text/*"]);
        // A bare "*" is */*; other media ranges without a slash are dropped.
        assert_eq!(order("*,bogus,a/b/c"), ["*/*"]);
    }

    #[test]
    fn protobuf_carries_native_histograms_as_prometheus_maps_them() {
        let mut m = BTreeMap::new();
        m.insert(
            Labels::from_pairs([("__name__", "rpc_seconds"), ("job", "a")]),
            hist_point(2000, exp_hist(CounterResetHint::NotCounterReset)),
        );
        m.insert(
            Labels::from_pairs([("__name__", "rpc_seconds"), ("job", "b")]),
            hist_point(3000, exp_hist(CounterResetHint::Gauge)),
        );
        m.insert(
            Labels::from_pairs([("__name__", "rpc_seconds"), ("job", "c")]),
            float(4000, 7.0),
        );
        m.insert(
            Labels::from_pairs([("__name__", "up"), ("job", "a")]),
            float(1000, 1.0),
        );
        let ext = Labels::from_pairs([("dc", "eu")]);
        let fams = proto(&m, &ext, Escaping::Underscores);
        // One family per run of the same name and kind, in name order.
        let kinds: Vec<(&str, i32, usize)> = fams
            .iter()
            .map(|f| (f.name.as_str(), f.r#type, f.metric.len()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("rpc_seconds", dto::MetricType::Histogram as i32, 1),
                ("rpc_seconds", dto::MetricType::GaugeHistogram as i32, 1),
                ("rpc_seconds", dto::MetricType::Untyped as i32, 1),
                ("up", dto::MetricType::Untyped as i32, 1),
            ]
        );
        let h = &fams[0].metric[0];
        assert_eq!(h.timestamp_ms, 2000);
        let names: Vec<(&str, &str)> = h
            .label
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(names, [("job", "a"), ("dc", "eu"), ("instance", "")]);
        let want = dto::Histogram {
            sample_count_float: 9.5,
            sample_sum: 17.25,
            schema: 1,
            zero_threshold: 0.001,
            zero_count_float: 2.0,
            negative_span: vec![dto::BucketSpan {
                offset: 1,
                length: 1,
            }],
            negative_count: vec![1.0],
            positive_span: vec![
                dto::BucketSpan {
                    offset: 0,
                    length: 1,
                },
                dto::BucketSpan {
                    offset: 2,
                    length: 2,
                },
            ],
            positive_count: vec![1.0, 2.5, 3.0],
            ..Default::default()
        };
        assert_eq!(h.histogram.as_ref(), Some(&want));
        assert!(h.untyped.is_none());
        let f = &fams[2].metric[0];
        assert_eq!(f.untyped, Some(dto::Untyped { value: 7.0 }));
        assert_eq!(f.timestamp_ms, 4000);
        assert!(f.histogram.is_none());
    }

    #[test]
    fn text_leaves_out_native_histograms_but_writes_custom_buckets_as_classic() {
        let mut m = BTreeMap::new();
        m.insert(
            Labels::from_pairs([("__name__", "a_seconds"), ("job", "x")]),
            hist_point(2000, exp_hist(CounterResetHint::Unknown)),
        );
        m.insert(
            Labels::from_pairs([("__name__", "a_seconds"), ("job", "y")]),
            float(2000, 3.0),
        );
        m.insert(
            Labels::from_pairs([("__name__", "a_seconds"), ("job", "z")]),
            float(2500, 4.0),
        );
        m.insert(
            Labels::from_pairs([("__name__", "b.seconds"), ("job", "x")]),
            hist_point(3000, nhcb()),
        );
        let ext = Labels::from_pairs([("instance", "")]);
        // The skipped histogram does not split the float family.
        assert_eq!(
            text(&m, &ext, Escaping::Underscores),
            "# TYPE a_seconds untyped\n\
             a_seconds{job=\"y\",instance=\"\"} 3 2000\n\
             a_seconds{job=\"z\",instance=\"\"} 4 2500\n\
             # TYPE b_seconds histogram\n\
             b_seconds_bucket{job=\"x\",instance=\"\",le=\"0.1\"} 3 3000\n\
             b_seconds_bucket{job=\"x\",instance=\"\",le=\"0.5\"} 3 3000\n\
             b_seconds_bucket{job=\"x\",instance=\"\",le=\"1\"} 8 3000\n\
             b_seconds_bucket{job=\"x\",instance=\"\",le=\"+Inf\"} 10 3000\n\
             b_seconds_sum{job=\"x\",instance=\"\"} 4.5 3000\n\
             b_seconds_count{job=\"x\",instance=\"\"} 10 3000\n"
        );
        let utf8 = text(&m, &ext, Escaping::AllowUtf8);
        assert!(
            utf8.contains("{\"b.seconds_bucket\",job=\"x\",instance=\"\",le=\"+Inf\"} 10 3000\n"),
            "{utf8}"
        );
        // Protobuf: the same classic buckets without +Inf, and the native histogram.
        let fams = proto(&m, &ext, Escaping::Underscores);
        let kinds: Vec<(&str, usize)> = fams
            .iter()
            .map(|f| (f.name.as_str(), f.metric.len()))
            .collect();
        assert_eq!(
            kinds,
            [("a_seconds", 1), ("a_seconds", 2), ("b_seconds", 1)]
        );
        let h = fams[2].metric[0].histogram.as_ref().unwrap();
        assert_eq!(fams[2].r#type, dto::MetricType::Histogram as i32);
        let buckets: Vec<(f64, f64)> = h
            .bucket
            .iter()
            .map(|b| (b.upper_bound, b.cumulative_count_float))
            .collect();
        assert_eq!(buckets, [(0.1, 3.0), (0.5, 3.0), (1.0, 8.0)]);
        assert_eq!((h.sample_count_float, h.sample_sum), (10.0, 4.5));
        assert!(h.positive_span.is_empty() && h.schema == 0);
    }

    #[test]
    fn nameless_series_are_skipped() {
        let mut m = BTreeMap::new();
        m.insert(Labels::from_pairs([("job", "x")]), float(1, 1.0));
        assert!(families(&m, &Labels::empty(), Format::ProtoDelim).is_empty());
        // A NaN that is not a stale marker is written.
        m.insert(Labels::from_pairs([("__name__", "n")]), float(1, f64::NAN));
        assert_eq!(
            text(&m, &Labels::empty(), Escaping::Underscores),
            "# TYPE n untyped\nn{instance=\"\"} NaN 1\n"
        );
    }

    #[test]
    fn the_newest_sample_wins_and_stale_markers_drop_the_series() {
        let f = |t, v| Some(Sample { t, v });
        let h = |t, sum| {
            Some(HistogramSample {
                t,
                h: Arc::new(FloatHistogram {
                    sum,
                    ..Default::default()
                }),
            })
        };
        assert_eq!(newest(f(10, 1.0), h(5, 2.0)), Some(float(10, 1.0)));
        let p = newest(f(10, 1.0), h(20, 2.0)).unwrap();
        assert!(matches!(p.v, Value::Hist(ref x) if x.sum == 2.0) && p.t == 20);
        assert!(newest(None, h(20, 2.0)).is_some());
        assert_eq!(newest(f(3, 1.0), None), Some(float(3, 1.0)));
        assert_eq!(newest(None, None), None);
        // A stale newest sample hides the older one of the other kind too.
        assert_eq!(newest(f(10, stale_nan()), h(5, 2.0)), None);
        assert_eq!(newest(f(10, 1.0), h(20, stale_nan())), None);
        assert_eq!(newest(f(30, 1.0), h(20, stale_nan())), Some(float(30, 1.0)));
    }
}
