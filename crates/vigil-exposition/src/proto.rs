//! The Prometheus protobuf exposition: length-delimited `io.prometheus.client.MetricFamily`
//! messages (`application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
//! encoding=delimited`), each preceded by its length as an unsigned varint.
//!
//! The messages ([`dto`]) are `prost` structs written here from the client data model's
//! field numbers and types; the repository carries no `.proto` file and the build needs no
//! `protoc`. [`ProtoParser`] turns a body into the same [`Entry`] stream as the text
//! parsers, so the scrape loop treats every format alike:
//!
//! * per family: `Help` (always, as Prometheus does), `Unit` (when set), `Type`;
//! * counters, gauges, untyped: one sample named as the family;
//! * summaries: `_count`, `_sum`, then one sample per quantile (`quantile` label);
//! * classic histograms: `_count`, `_sum`, then one `_bucket` per bucket (`le` label), with a
//!   `+Inf` bucket holding the count added when the last bucket is not `+Inf`;
//! * native histograms (a histogram with a span, a zero threshold or a zero count): one
//!   [`Entry::Histogram`]; its classic buckets follow it only with
//!   [`ProtoOptions::keep_classic`], and a histogram is read as classic when
//!   [`ProtoOptions::native_histograms`] is off.
//!
//! Exemplars and created timestamps are decoded and dropped.
//!
//! # Entries without a body to borrow from
//! The scrape cache needs the series as bytes, and the text parsers borrow those from the
//! body. A protobuf body has no such text, so the parser writes each series in the text
//! format's own syntax (`name{label="value",...}`, names quoted when they are not legacy
//! names) into a [`ProtoScratch`] that the caller owns and reuses between scrapes, and the
//! entries borrow from it: [`SampleEntry::labels`] works unchanged, and a steady target
//! needs no new buffer space. The whole body is decoded before the first entry comes out.
//!
//! # Errors
//! A [`ParseError`] from this parser gives the number of the metric family (1-based) as its
//! `line` and the byte offset of that family's length prefix plus one as its `column`.

use std::borrow::Cow;

use prost::Message;

use crate::lex::{is_label_char, is_label_start, is_metric_char, is_metric_start};
use crate::parser::{Entry, SampleEntry};
use crate::{MetricType, ParseError};

/// `io.prometheus.client` messages, as `prost` structs. Proto2 and proto3 encodings of them
/// decode alike (packed or unpacked repeated numbers).
#[allow(clippy::derive_partial_eq_without_eq)]
pub mod dto {
    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct LabelPair {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `MetricFamily.type`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum MetricType {
        Counter = 0,
        Gauge = 1,
        Summary = 2,
        Untyped = 3,
        Histogram = 4,
        GaugeHistogram = 5,
    }

    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Gauge {
        #[prost(double, tag = "1")]
        pub value: f64,
    }

    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Counter {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(message, optional, tag = "2")]
        pub exemplar: Option<Exemplar>,
        #[prost(message, optional, tag = "3")]
        pub created_timestamp: Option<Timestamp>,
    }

    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Quantile {
        #[prost(double, tag = "1")]
        pub quantile: f64,
        #[prost(double, tag = "2")]
        pub value: f64,
    }

    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Summary {
        #[prost(uint64, tag = "1")]
        pub sample_count: u64,
        #[prost(double, tag = "2")]
        pub sample_sum: f64,
        #[prost(message, repeated, tag = "3")]
        pub quantile: Vec<Quantile>,
        #[prost(message, optional, tag = "4")]
        pub created_timestamp: Option<Timestamp>,
    }

    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Untyped {
        #[prost(double, tag = "1")]
        pub value: f64,
    }

    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Histogram {
        #[prost(uint64, tag = "1")]
        pub sample_count: u64,
        /// Overrides `sample_count` when above 0.
        #[prost(double, tag = "4")]
        pub sample_count_float: f64,
        #[prost(double, tag = "2")]
        pub sample_sum: f64,
        /// Classic buckets, by increasing upper bound; `+Inf` may be left out.
        #[prost(message, repeated, tag = "3")]
        pub bucket: Vec<Bucket>,
        #[prost(message, optional, tag = "15")]
        pub created_timestamp: Option<Timestamp>,
        #[prost(sint32, tag = "5")]
        pub schema: i32,
        #[prost(double, tag = "6")]
        pub zero_threshold: f64,
        #[prost(uint64, tag = "7")]
        pub zero_count: u64,
        /// Overrides `zero_count` when above 0.
        #[prost(double, tag = "8")]
        pub zero_count_float: f64,
        #[prost(message, repeated, tag = "9")]
        pub negative_span: Vec<BucketSpan>,
        /// Each bucket's count as a delta to the one before (the first to zero).
        #[prost(sint64, repeated, tag = "10")]
        pub negative_delta: Vec<i64>,
        /// Absolute counts (float histograms).
        #[prost(double, repeated, tag = "11")]
        pub negative_count: Vec<f64>,
        #[prost(message, repeated, tag = "12")]
        pub positive_span: Vec<BucketSpan>,
        #[prost(sint64, repeated, tag = "13")]
        pub positive_delta: Vec<i64>,
        #[prost(double, repeated, tag = "14")]
        pub positive_count: Vec<f64>,
        #[prost(message, repeated, tag = "16")]
        pub exemplars: Vec<Exemplar>,
    }

    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Bucket {
        #[prost(uint64, tag = "1")]
        pub cumulative_count: u64,
        /// Overrides `cumulative_count` when above 0.
        #[prost(double, tag = "4")]
        pub cumulative_count_float: f64,
        /// Inclusive.
        #[prost(double, tag = "2")]
        pub upper_bound: f64,
        #[prost(message, optional, tag = "3")]
        pub exemplar: Option<Exemplar>,
    }

    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct BucketSpan {
        /// Gap to the previous span (for the first: the index it starts at).
        #[prost(sint32, tag = "1")]
        pub offset: i32,
        #[prost(uint32, tag = "2")]
        pub length: u32,
    }

    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Exemplar {
        #[prost(message, repeated, tag = "1")]
        pub label: Vec<LabelPair>,
        #[prost(double, tag = "2")]
        pub value: f64,
        #[prost(message, optional, tag = "3")]
        pub timestamp: Option<Timestamp>,
    }

    /// `google.protobuf.Timestamp`.
    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }

    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Metric {
        #[prost(message, repeated, tag = "1")]
        pub label: Vec<LabelPair>,
        #[prost(message, optional, tag = "2")]
        pub gauge: Option<Gauge>,
        #[prost(message, optional, tag = "3")]
        pub counter: Option<Counter>,
        #[prost(message, optional, tag = "4")]
        pub summary: Option<Summary>,
        #[prost(message, optional, tag = "5")]
        pub untyped: Option<Untyped>,
        #[prost(message, optional, tag = "7")]
        pub histogram: Option<Histogram>,
        /// 0 reads as "no timestamp", as in Prometheus.
        #[prost(int64, tag = "6")]
        pub timestamp_ms: i64,
    }

    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct MetricFamily {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub help: String,
        #[prost(enumeration = "MetricType", tag = "3")]
        pub r#type: i32,
        #[prost(message, repeated, tag = "4")]
        pub metric: Vec<Metric>,
        #[prost(string, tag = "5")]
        pub unit: String,
    }

    impl Histogram {
        /// Whether the message carries a native histogram (Prometheus' rule: a span, a zero
        /// threshold or a zero count; an exporter marks an empty one with a span of length 0).
        pub fn is_native(&self) -> bool {
            !self.positive_span.is_empty()
                || !self.negative_span.is_empty()
                || self.zero_threshold > 0.0
                || self.zero_count > 0
        }
    }
}

/// Encodes families as a delimited protobuf body (for tests, benches and fuzzing).
pub fn encode_delimited(families: &[dto::MetricFamily]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in families {
        // Writing into a Vec cannot fail.
        let _ = f.encode_length_delimited(&mut out);
    }
    out
}

/// What the protobuf parser emits for histograms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtoOptions {
    /// Emit native histograms as [`Entry::Histogram`] (`scrape_native_histograms`). Off, a
    /// histogram is read as classic whatever native parts it has.
    pub native_histograms: bool,
    /// With a native histogram, also emit its classic series when it has classic buckets
    /// (`always_scrape_classic_histograms`).
    pub keep_classic: bool,
}

impl Default for ProtoOptions {
    fn default() -> Self {
        ProtoOptions {
            native_histograms: true,
            keep_classic: false,
        }
    }
}

/// A bucket span of a native histogram: `offset` from the end of the previous span (the
/// first: the index it starts at), `length` buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub offset: i32,
    pub length: u32,
}

/// A native histogram as exposed, bucket counts made absolute. Borrowed from the parser's
/// scratch; copy it into a reused histogram buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeHistogram<'a> {
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    /// Counts were floats (`sample_count_float` or `zero_count_float` set), not integers.
    pub float_counts: bool,
    /// A gauge histogram (`GAUGE_HISTOGRAM`): its counts may go down.
    pub gauge: bool,
    pub positive_spans: &'a [Span],
    pub negative_spans: &'a [Span],
    pub positive_counts: &'a [f64],
    pub negative_counts: &'a [f64],
}

/// A native-histogram sample.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramEntry<'a> {
    /// The series in the text format's syntax; the scrape cache's key.
    pub series: &'a [u8],
    pub name: Cow<'a, str>,
    pub timestamp_ms: Option<i64>,
    pub histogram: NativeHistogram<'a>,
    labels_src: &'a str,
}

impl<'a> HistogramEntry<'a> {
    /// The labels, excluding the metric name, as [`SampleEntry::labels`] gives them.
    pub fn labels(&self) -> impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)> + 'a {
        crate::parser::label_iter(self.labels_src)
    }
}

type R = (usize, usize);

#[derive(Debug, Clone)]
enum Item {
    Help {
        family: R,
        help: R,
    },
    Type {
        family: R,
        kind: MetricType,
    },
    Unit {
        family: R,
        unit: R,
    },
    Sample {
        key: Key,
        value: f64,
        ts: Option<i64>,
    },
    Histogram {
        key: Key,
        ts: Option<i64>,
        h: Hist,
    },
}

#[derive(Debug, Clone, Copy)]
struct Key {
    series: R,
    name: R,
    labels: R,
}

#[derive(Debug, Clone, Copy)]
struct Hist {
    schema: i32,
    zero_threshold: f64,
    zero_count: f64,
    count: f64,
    sum: f64,
    float_counts: bool,
    gauge: bool,
    pos_spans: R,
    neg_spans: R,
    pos_counts: R,
    neg_counts: R,
}

/// The buffers a [`ProtoParser`] fills; keep one per scrape loop and pass it to every parse,
/// so a steady target reuses its space.
#[derive(Default, Debug)]
pub struct ProtoScratch {
    text: String,
    items: Vec<Item>,
    spans: Vec<Span>,
    counts: Vec<f64>,
    /// A bucket bound or quantile as text, reused.
    num: String,
    error: Option<ParseError>,
}

impl ProtoScratch {
    fn clear(&mut self) {
        self.text.clear();
        self.items.clear();
        self.spans.clear();
        self.counts.clear();
        self.error = None;
    }

    fn push_str(&mut self, s: &str) -> R {
        let a = self.text.len();
        self.text.push_str(s);
        (a, self.text.len())
    }

    fn str(&self, r: R) -> &str {
        self.text.get(r.0..r.1).unwrap_or("")
    }

    /// Decodes the whole body; stops at the first error, which comes out after the entries
    /// before it.
    fn fill(&mut self, body: &[u8], opts: ProtoOptions) {
        self.clear();
        let mut pos = 0usize;
        let mut family_no = 0usize;
        let mut mf = dto::MetricFamily::default();
        while pos < body.len() {
            family_no += 1;
            let at = pos;
            let fail = |msg: String| ParseError {
                line: family_no,
                column: at + 1,
                message: msg,
            };
            let Some((len, n)) = uvarint(&body[pos..]) else {
                self.error = Some(fail("truncated or invalid length prefix".into()));
                return;
            };
            pos += n;
            let end = match usize::try_from(len).ok().and_then(|l| pos.checked_add(l)) {
                Some(end) if end <= body.len() => end,
                _ => {
                    self.error = Some(fail(format!(
                        "message length {len} runs past the end of the body"
                    )));
                    return;
                }
            };
            mf.clear();
            if let Err(e) = mf.merge(&body[pos..end]) {
                self.error = Some(fail(format!("invalid MetricFamily message: {e}")));
                return;
            }
            pos = end;
            if let Err(msg) = self.family(&mf, opts) {
                self.error = Some(fail(msg));
                return;
            }
        }
    }

    fn family(&mut self, mf: &dto::MetricFamily, opts: ProtoOptions) -> Result<(), String> {
        if mf.metric.is_empty() {
            return Ok(()); // Prometheus skips empty families.
        }
        if mf.name.is_empty() {
            return Err("metric family without a name".into());
        }
        let kind = dto::MetricType::try_from(mf.r#type)
            .map_err(|_| format!("unknown metric type {} for metric {:?}", mf.r#type, mf.name))?;
        let family = self.push_str(&mf.name);
        let help = self.push_str(&mf.help);
        self.items.push(Item::Help { family, help });
        if !mf.unit.is_empty() {
            let unit = self.push_str(&mf.unit);
            self.items.push(Item::Unit { family, unit });
        }
        self.items.push(Item::Type {
            family,
            kind: match kind {
                dto::MetricType::Counter => MetricType::Counter,
                dto::MetricType::Gauge => MetricType::Gauge,
                dto::MetricType::Summary => MetricType::Summary,
                dto::MetricType::Untyped => MetricType::Unknown,
                dto::MetricType::Histogram => MetricType::Histogram,
                dto::MetricType::GaugeHistogram => MetricType::GaugeHistogram,
            },
        });
        let name = mf.name.as_str();
        for m in &mf.metric {
            for l in &m.label {
                if l.name.is_empty() {
                    return Err(format!("empty label name in metric {name:?}"));
                }
            }
            let ts = (m.timestamp_ms != 0).then_some(m.timestamp_ms);
            match kind {
                dto::MetricType::Counter => {
                    let v = m.counter.as_ref().map_or(0.0, |c| c.value);
                    self.sample(name, "", &m.label, None, v, ts);
                }
                dto::MetricType::Gauge => {
                    let v = m.gauge.as_ref().map_or(0.0, |c| c.value);
                    self.sample(name, "", &m.label, None, v, ts);
                }
                dto::MetricType::Untyped => {
                    let v = m.untyped.as_ref().map_or(0.0, |c| c.value);
                    self.sample(name, "", &m.label, None, v, ts);
                }
                dto::MetricType::Summary => {
                    let empty = dto::Summary::default();
                    let s = m.summary.as_ref().unwrap_or(&empty);
                    self.sample(name, "_count", &m.label, None, s.sample_count as f64, ts);
                    self.sample(name, "_sum", &m.label, None, s.sample_sum, ts);
                    let mut q = std::mem::take(&mut self.num);
                    for qu in &s.quantile {
                        q.clear();
                        openmetrics_float(qu.quantile, &mut q);
                        self.sample(name, "", &m.label, Some(("quantile", &q)), qu.value, ts);
                    }
                    self.num = q;
                }
                dto::MetricType::Histogram | dto::MetricType::GaugeHistogram => {
                    let empty = dto::Histogram::default();
                    let h = m.histogram.as_ref().unwrap_or(&empty);
                    let gauge = kind == dto::MetricType::GaugeHistogram;
                    let native = opts.native_histograms && h.is_native();
                    if native {
                        self.native(name, &m.label, h, gauge, ts)?;
                    }
                    if !native || (opts.keep_classic && !h.bucket.is_empty()) {
                        self.classic(name, &m.label, h, ts);
                    }
                }
            }
        }
        Ok(())
    }

    fn classic(
        &mut self,
        name: &str,
        labels: &[dto::LabelPair],
        h: &dto::Histogram,
        ts: Option<i64>,
    ) {
        let count = if h.sample_count_float > 0.0 {
            h.sample_count_float
        } else {
            h.sample_count as f64
        };
        self.sample(name, "_count", labels, None, count, ts);
        self.sample(name, "_sum", labels, None, h.sample_sum, ts);
        let mut le = std::mem::take(&mut self.num);
        let mut saw_inf = false;
        for b in &h.bucket {
            le.clear();
            openmetrics_float(b.upper_bound, &mut le);
            let v = if b.cumulative_count_float > 0.0 {
                b.cumulative_count_float
            } else {
                b.cumulative_count as f64
            };
            self.sample(name, "_bucket", labels, Some(("le", &le)), v, ts);
            if b.upper_bound == f64::INFINITY {
                saw_inf = true;
                break;
            }
        }
        self.num = le;
        if !saw_inf {
            self.sample(name, "_bucket", labels, Some(("le", "+Inf")), count, ts);
        }
    }

    fn native(
        &mut self,
        name: &str,
        labels: &[dto::LabelPair],
        h: &dto::Histogram,
        gauge: bool,
        ts: Option<i64>,
    ) -> Result<(), String> {
        let float_counts = h.sample_count_float > 0.0 || h.zero_count_float > 0.0;
        let (pos_n, neg_n) = if float_counts {
            (h.positive_count.len(), h.negative_count.len())
        } else {
            (h.positive_delta.len(), h.negative_delta.len())
        };
        for (side, spans, n) in [
            ("positive", &h.positive_span, pos_n),
            ("negative", &h.negative_span, neg_n),
        ] {
            let total: u64 = spans.iter().map(|s| u64::from(s.length)).sum();
            if total != n as u64 {
                return Err(format!(
                    "histogram {name:?}: {side} side: spans require {total} buckets, have {n}"
                ));
            }
        }
        let key = self.key(name, "", labels, None);
        let spans = |s: &[dto::BucketSpan], out: &mut Vec<Span>| {
            let a = out.len();
            out.extend(s.iter().map(|s| Span {
                offset: s.offset,
                length: s.length,
            }));
            (a, out.len())
        };
        let pos_spans = spans(&h.positive_span, &mut self.spans);
        let neg_spans = spans(&h.negative_span, &mut self.spans);
        let counts = |deltas: &[i64], floats: &[f64], out: &mut Vec<f64>| {
            let a = out.len();
            if float_counts {
                out.extend_from_slice(floats);
            } else {
                let mut cur = 0i64;
                for d in deltas {
                    cur = cur.wrapping_add(*d);
                    out.push(cur as f64);
                }
            }
            (a, out.len())
        };
        let pos_counts = counts(&h.positive_delta, &h.positive_count, &mut self.counts);
        let neg_counts = counts(&h.negative_delta, &h.negative_count, &mut self.counts);
        let (count, zero_count) = if float_counts {
            (h.sample_count_float, h.zero_count_float)
        } else {
            (h.sample_count as f64, h.zero_count as f64)
        };
        self.items.push(Item::Histogram {
            key,
            ts,
            h: Hist {
                schema: h.schema,
                zero_threshold: h.zero_threshold,
                zero_count,
                count,
                sum: h.sample_sum,
                float_counts,
                gauge,
                pos_spans,
                neg_spans,
                pos_counts,
                neg_counts,
            },
        });
        Ok(())
    }

    fn sample(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &[dto::LabelPair],
        magic: Option<(&str, &str)>,
        value: f64,
        ts: Option<i64>,
    ) {
        let key = self.key(name, suffix, labels, magic);
        self.items.push(Item::Sample { key, value, ts });
    }

    /// Writes the series in the text format's syntax: `name{l="v",...}`, or
    /// `{"name",l="v",...}` when the name is not a legacy one (then the plain name is
    /// written before it, for `Entry`'s `name`).
    fn key(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &[dto::LabelPair],
        magic: Option<(&str, &str)>,
    ) -> Key {
        let t = &mut self.text;
        let legacy = is_legacy_metric_name(name) && is_legacy_metric_name(suffix);
        let name_r;
        let series_start;
        let mut first = true;
        if legacy {
            series_start = t.len();
            t.push_str(name);
            t.push_str(suffix);
            name_r = (series_start, t.len());
        } else {
            let a = t.len();
            t.push_str(name);
            t.push_str(suffix);
            name_r = (a, t.len());
            series_start = t.len();
        }
        let has_labels = !labels.is_empty() || magic.is_some() || !legacy;
        if !has_labels {
            let end = t.len();
            return Key {
                series: (series_start, end),
                name: name_r,
                labels: (end, end),
            };
        }
        t.push('{');
        let labels_start = t.len();
        if !legacy {
            t.push('"');
            escape_into(t, name);
            escape_into(t, suffix);
            t.push('"');
            first = false;
        }
        let pairs = labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .chain(magic);
        for (n, v) in pairs {
            if !first {
                t.push(',');
            }
            first = false;
            if is_legacy_label_name(n) {
                t.push_str(n);
            } else {
                t.push('"');
                escape_into(t, n);
                t.push('"');
            }
            t.push_str("=\"");
            escape_into(t, v);
            t.push('"');
        }
        let labels_end = t.len();
        t.push('}');
        Key {
            series: (series_start, t.len()),
            name: name_r,
            labels: (labels_start, labels_end),
        }
    }
}

fn is_legacy_metric_name(s: &str) -> bool {
    let b = s.as_bytes();
    match b.first() {
        None => true, // an empty suffix
        Some(&c) => is_metric_start(c) && b.iter().all(|&c| is_metric_char(c)),
    }
}

fn is_legacy_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(|&c| is_label_start(c)) && b.iter().all(|&c| is_label_char(c))
}

/// The escapes of a quoted string in the text format: `\\`, `\"`, `\n`.
fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Reads an unsigned varint; `None` when truncated or longer than ten bytes.
fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().take(10).enumerate() {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

/// A float as Prometheus writes `le` and `quantile` values it makes from protobuf (Go's
/// shortest `%g`, with `.0` added to an integral value): `1.0`, `0.25`, `1e+06`, `+Inf`.
pub fn openmetrics_float(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str("NaN");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    let start = out.len();
    go_shortest_g(f, out);
    let s = &out[start..];
    if !s.contains(['.', 'e', 'E']) {
        out.push_str(".0");
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` for finite `f`. Allocates nothing beyond
/// `out`'s growth: the shortest digits come from Rust's `{:e}`, written into `out` and
/// rearranged in place.
fn go_shortest_g(f: f64, out: &mut String) {
    use std::fmt::Write;
    if f == 0.0 {
        out.push_str(if f.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    let start = out.len();
    // "-1.2345e-7": at most 17 significant digits.
    let _ = write!(out, "{f:e}");
    let mut digits = [0u8; 24];
    let mut n = 0usize;
    let mut exp = 0i32;
    let mut exp_neg = false;
    let mut in_exp = false;
    let neg = f < 0.0;
    for &c in &out.as_bytes()[start..] {
        match c {
            b'e' => in_exp = true,
            b'-' if in_exp => exp_neg = true,
            b'0'..=b'9' if in_exp => exp = exp * 10 + i32::from(c - b'0'),
            b'0'..=b'9' if n < digits.len() => {
                digits[n] = c;
                n += 1;
            }
            _ => {}
        }
    }
    if exp_neg {
        exp = -exp;
    }
    out.truncate(start);
    let digits = match std::str::from_utf8(&digits[..n]) {
        Ok(d) if !d.is_empty() => d,
        _ => "0",
    };
    if neg {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let a = exp.unsigned_abs();
        if a < 10 {
            out.push('0');
        }
        let _ = write!(out, "{a}");
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
}

/// A pull parser over a delimited protobuf body. See the module documentation.
pub struct ProtoParser<'a> {
    s: &'a ProtoScratch,
    next: usize,
    done: bool,
}

impl<'a> ProtoParser<'a> {
    /// Decodes `body` into `scratch` (cleared first) and iterates over its entries.
    pub fn new(body: &[u8], opts: ProtoOptions, scratch: &'a mut ProtoScratch) -> Self {
        scratch.fill(body, opts);
        ProtoParser {
            s: scratch,
            next: 0,
            done: false,
        }
    }
}

impl<'a> Iterator for ProtoParser<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let s: &'a ProtoScratch = self.s;
        let Some(item) = s.items.get(self.next) else {
            self.done = true;
            return s.error.clone().map(Err);
        };
        self.next += 1;
        let str = |r: R| s.str(r);
        Some(Ok(match *item {
            Item::Help { family, help } => Entry::Help {
                family: str(family),
                help: Cow::Borrowed(str(help)),
            },
            Item::Type { family, kind } => Entry::Type {
                family: str(family),
                kind,
            },
            Item::Unit { family, unit } => Entry::Unit {
                family: str(family),
                unit: str(unit),
            },
            Item::Sample { key, value, ts } => Entry::Sample(SampleEntry::from_proto(
                str(key.series).as_bytes(),
                Cow::Borrowed(str(key.name)),
                value,
                ts,
                str(key.labels),
            )),
            Item::Histogram { key, ts, h } => {
                let spans = |r: R| s.spans.get(r.0..r.1).unwrap_or(&[]);
                let counts = |r: R| s.counts.get(r.0..r.1).unwrap_or(&[]);
                Entry::Histogram(HistogramEntry {
                    series: str(key.series).as_bytes(),
                    name: Cow::Borrowed(str(key.name)),
                    timestamp_ms: ts,
                    labels_src: str(key.labels),
                    histogram: NativeHistogram {
                        schema: h.schema,
                        zero_threshold: h.zero_threshold,
                        zero_count: h.zero_count,
                        count: h.count,
                        sum: h.sum,
                        float_counts: h.float_counts,
                        gauge: h.gauge,
                        positive_spans: spans(h.pos_spans),
                        negative_spans: spans(h.neg_spans),
                        positive_counts: counts(h.pos_counts),
                        negative_counts: counts(h.neg_counts),
                    },
                })
            }
        }))
    }
}

#[cfg(test)]
mod tests;
