//! Content negotiation as Prometheus 3 does it: the `Accept` header from a job's
//! `scrape_protocols`, and the parser from the response's `Content-Type`.

use crate::proto::{ProtoOptions, ProtoParser, ProtoScratch};
use crate::{Entry, Format, ParseError, Parser};

/// The media type (with parameters) Prometheus sends for each scrape protocol.
fn protocol_media(protocol: &str) -> Option<&'static str> {
    Some(match protocol {
        "PrometheusProto" => {
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
        }
        "PrometheusText0.0.4" => "text/plain;version=0.0.4",
        "PrometheusText1.0.0" => "text/plain;version=1.0.0",
        "OpenMetricsText0.0.1" => "application/openmetrics-text;version=0.0.1",
        "OpenMetricsText1.0.0" => "application/openmetrics-text;version=1.0.0",
        _ => return None,
    })
}

/// The number of scrape protocols Prometheus knows; the first protocol's weight is one more.
const PROTOCOLS: usize = 5;

/// The `Accept` header for `protocols` in order of preference, as Prometheus builds it: each
/// protocol's media type (the 1.0.0 text formats with `escaping=<escaping>`) with weights
/// `q=0.6`, `q=0.5`, ... from the first, then `*/*` with the next lower weight. Unknown
/// protocol names are skipped (the config refuses them).
pub fn accept_header(protocols: &[impl AsRef<str>], escaping: &str) -> String {
    let mut out = String::new();
    let mut weight = PROTOCOLS + 1;
    for p in protocols {
        let p = p.as_ref();
        let Some(media) = protocol_media(p) else {
            continue;
        };
        out.push_str(media);
        if p == "PrometheusText1.0.0" || p == "OpenMetricsText1.0.0" {
            out.push_str(";escaping=");
            out.push_str(escaping);
        }
        out.push_str(&format!(";q=0.{weight},"));
        weight = weight.saturating_sub(1);
    }
    out.push_str(&format!("*/*;q=0.{weight}"));
    out
}

/// The format a scrape protocol name stands for (`fallback_scrape_protocol`).
pub fn protocol_format(protocol: &str) -> Option<Format> {
    match protocol {
        "PrometheusProto" => Some(Format::PrometheusProto),
        "PrometheusText0.0.4" | "PrometheusText1.0.0" => Some(Format::PrometheusText),
        "OpenMetricsText0.0.1" | "OpenMetricsText1.0.0" => Some(Format::OpenMetrics),
        _ => None,
    }
}

/// The parser for a response, from its `Content-Type`: `text/plain`,
/// `application/openmetrics-text` and `application/vnd.google.protobuf` name their formats;
/// a missing, empty or unknown media type takes `fallback` (`fallback_scrape_protocol`) when
/// the job has one, as in Prometheus. Without one vigil reads such a body as text 0.0.4,
/// where Prometheus 3 fails the scrape.
pub fn format_for_scrape(content_type: Option<&str>, fallback: Option<Format>) -> Format {
    let media = content_type
        .and_then(|ct| ct.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    let known = if media.eq_ignore_ascii_case("application/openmetrics-text") {
        Some(Format::OpenMetrics)
    } else if media.eq_ignore_ascii_case("application/vnd.google.protobuf") {
        Some(Format::PrometheusProto)
    } else if media.eq_ignore_ascii_case("text/plain") {
        Some(Format::PrometheusText)
    } else {
        None
    };
    known.or(fallback).unwrap_or(Format::PrometheusText)
}

/// One parser for any scrape body: the text parser for the text formats, the protobuf
/// parser (decoding into the caller's scratch) for protobuf. Both yield the same entries.
pub enum ScrapeParser<'a> {
    Text(Parser<'a>),
    Proto(ProtoParser<'a>),
}

impl<'a> ScrapeParser<'a> {
    pub fn new(
        body: &'a [u8],
        format: Format,
        opts: ProtoOptions,
        scratch: &'a mut ProtoScratch,
    ) -> Self {
        match format {
            Format::PrometheusProto => ScrapeParser::Proto(ProtoParser::new(body, opts, scratch)),
            f => ScrapeParser::Text(Parser::new(body, f)),
        }
    }

    /// [`Parser::defer_label_checks`] for the text formats; the protobuf parser writes the
    /// series text itself, so it has nothing to check later.
    pub fn defer_label_checks(self) -> Self {
        match self {
            ScrapeParser::Text(p) => ScrapeParser::Text(p.defer_label_checks()),
            p => p,
        }
    }
}

impl<'a> Iterator for ScrapeParser<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            ScrapeParser::Text(p) => p.next(),
            ScrapeParser::Proto(p) => p.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_is_prometheus_default() {
        let default = [
            "OpenMetricsText1.0.0",
            "OpenMetricsText0.0.1",
            "PrometheusText1.0.0",
            "PrometheusText0.0.4",
        ];
        assert_eq!(accept_header(&default, "allow-utf-8"), crate::ACCEPT_HEADER);
    }

    #[test]
    fn accept_header_with_proto_first() {
        let protos = [
            "PrometheusProto",
            "OpenMetricsText1.0.0",
            "OpenMetricsText0.0.1",
            "PrometheusText1.0.0",
            "PrometheusText0.0.4",
        ];
        assert_eq!(
            accept_header(&protos, "underscores"),
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,\
             application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.5,\
             application/openmetrics-text;version=0.0.1;q=0.4,\
             text/plain;version=1.0.0;escaping=underscores;q=0.3,\
             text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
        );
        assert_eq!(
            accept_header(&["PrometheusText0.0.4"], "allow-utf-8"),
            "text/plain;version=0.0.4;q=0.6,*/*;q=0.5"
        );
    }

    #[test]
    fn content_type_and_fallback() {
        let proto = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";
        assert_eq!(
            format_for_scrape(Some(proto), None),
            Format::PrometheusProto
        );
        assert_eq!(
            format_for_scrape(Some("application/openmetrics-text; version=1.0.0"), None),
            Format::OpenMetrics
        );
        assert_eq!(
            format_for_scrape(Some("text/plain; version=0.0.4"), Some(Format::OpenMetrics)),
            Format::PrometheusText
        );
        assert_eq!(format_for_scrape(None, None), Format::PrometheusText);
        assert_eq!(
            format_for_scrape(Some(""), Some(Format::PrometheusProto)),
            Format::PrometheusProto
        );
        assert_eq!(
            format_for_scrape(Some("application/json"), Some(Format::OpenMetrics)),
            Format::OpenMetrics
        );
        assert_eq!(
            protocol_format("OpenMetricsText0.0.1"),
            Some(Format::OpenMetrics)
        );
        assert_eq!(protocol_format("nope"), None);
    }
}
