//! Zero-copy pull parsers for the Prometheus text format 0.0.4 and OpenMetrics 1.0 text, a
//! parser for the protobuf format (delimited `MetricFamily` messages, with native histograms;
//! see [`proto`]) that yields the same entries, and content negotiation ([`accept_header`],
//! [`format_for_scrape`], [`ScrapeParser`] over all three).
//!
//! `vigil-exposition` sits just below `vigil-scrape` in the crate DAG and depends on no other
//! vigil crate: it turns the bytes of one scrape response into a stream of [`Entry`]s
//! (metadata and samples). The scrape loop decides what to do with them.
//!
//! # Design
//!
//! * **Pull, not push.** [`Parser`] is an [`Iterator`] over `Result<Entry, ParseError>`; the
//!   caller drives it and can stop at the first error or at a sample limit. After an error
//!   the iterator ends.
//! * **Zero-copy.** Every entry borrows from the response body (`&'a str`, `&'a [u8]`,
//!   `Cow<'a, str>`); the borrow checker guarantees no entry outlives the buffer. A string is
//!   only copied when an escape sequence (`\"`, `\\`, `\n`) forces an owned, unescaped copy.
//!   No sample allocates: [`SampleEntry::series`] is the raw series text, which the scrape
//!   cache uses as its key, and [`SampleEntry::labels`] re-lexes that text lazily, only on a
//!   cache miss. (Exemplars, which are rare, collect their labels into a `Vec`.)
//! * **Hand-written lexer.** The grammar is line-based and tiny; a hand-written lexer over
//!   bytes (lines split with `memchr`, quoted strings scanned with `memchr2` for `"` and `\`)
//!   is faster than a generated one, needs no dependency, reports exact line and column, and
//!   is easy to make panic-free: every slice goes through a non-panicking helper. The body
//!   is checked for UTF-8 once up front; a line past the first invalid byte is an error.
//! * **Validated once.** Labels are fully validated while parsing (syntax, duplicates), so
//!   [`SampleEntry::labels`] cannot fail.
//! * **Two strictness levels.** [`Parser::new`] checks the syntax of the format, as
//!   Prometheus' scrape parsers do. [`Parser::strict`] adds OpenMetrics 1.0's semantic rules
//!   (metadata placement, histogram structure, counter values, ...) for validation tools and
//!   the conformance suite.
//!
//! # Example
//!
//! ```
//! use vigil_exposition::{format_from_content_type, Entry, Parser};
//!
//! let body = b"# TYPE http_requests_total counter\n\
//!              http_requests_total{code=\"200\",path=\"/a\"} 1027 1395066363000\n";
//! let format = format_from_content_type(Some("text/plain; version=0.0.4"));
//! for entry in Parser::new(body, format) {
//!     if let Entry::Sample(s) = entry? {
//!         assert_eq!(s.series, b"http_requests_total{code=\"200\",path=\"/a\"}");
//!         assert_eq!((s.value, s.timestamp_ms), (1027.0, Some(1395066363000)));
//!         let labels: Vec<_> = s.labels().collect();
//!         assert_eq!(labels[1], ("path".into(), "/a".into()));
//!     }
//! }
//! # Ok::<(), vigil_exposition::ParseError>(())
//! ```

mod lex;
mod negotiate;
mod parser;
pub mod proto;
mod strict;

use thiserror::Error;

pub use negotiate::{ScrapeParser, accept_header, format_for_scrape, protocol_format};
pub use parser::{Entry, Exemplar, Parser, SampleEntry};
pub use proto::{HistogramEntry, NativeHistogram, ProtoOptions, ProtoParser, ProtoScratch, Span};

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    PrometheusText,
    /// OpenMetrics 1.0 text (`application/openmetrics-text; version=1.0.0`).
    OpenMetrics,
    /// Delimited protobuf `io.prometheus.client.MetricFamily` messages
    /// (`application/vnd.google.protobuf`), read by [`ProtoParser`].
    PrometheusProto,
}

/// The format of a response, from its `Content-Type` header. Anything that is not
/// `application/openmetrics-text` or `application/vnd.google.protobuf` (including no header)
/// is read as the text format 0.0.4. (The scrape loop uses [`format_for_scrape`], which
/// also knows `fallback_scrape_protocol`.)
pub fn format_from_content_type(ct: Option<&str>) -> Format {
    let media = ct
        .and_then(|ct| ct.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if media.eq_ignore_ascii_case("application/openmetrics-text") {
        Format::OpenMetrics
    } else if media.eq_ignore_ascii_case("application/vnd.google.protobuf") {
        Format::PrometheusProto
    } else {
        Format::PrometheusText
    }
}

/// The `Accept` header of a Prometheus 3 scrape with the default scrape protocols:
/// OpenMetrics preferred, the text format as fallback.
pub const ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

/// The type of a metric family, from `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    /// `unknown` in OpenMetrics, `untyped` in the text format.
    Unknown,
}

impl MetricType {
    /// Prometheus' name of the type, as /api/v1/metadata reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }

    /// A type word of OpenMetrics 1.0 (`untyped` is not one).
    pub(crate) fn from_openmetrics(s: &str) -> Option<Self> {
        Some(match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "gaugehistogram" => MetricType::GaugeHistogram,
            "summary" => MetricType::Summary,
            "info" => MetricType::Info,
            "stateset" => MetricType::StateSet,
            "unknown" => MetricType::Unknown,
            _ => return None,
        })
    }

    /// A type word of the text format: `untyped` plus, leniently, OpenMetrics' words.
    pub(crate) fn from_text(s: &str) -> Option<Self> {
        if s == "untyped" {
            return Some(MetricType::Unknown);
        }
        Self::from_openmetrics(s)
    }
}

impl std::fmt::Display for MetricType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parse failure: where (1-based line and byte column) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}:{column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}
