//! OTLP/HTTP bodies: content type, gzip, the size limit, protobuf or OTLP/JSON decoding, and
//! the response message. Never panics on input (fuzzed by `fuzz/fuzz_targets/otlp_decode.rs`).

use super::translate::Outcome;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;
use std::io::Read;

pub const PROTOBUF: &str = "application/x-protobuf";
pub const JSON: &str = "application/json";

/// The two encodings OTLP/HTTP defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Protobuf,
    Json,
}

impl Format {
    /// The format of a `Content-Type` (media type parameters such as `charset` are ignored).
    pub fn from_content_type(ct: &str) -> Result<Format, DecodeError> {
        let media = ct.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case(PROTOBUF) {
            Ok(Format::Protobuf)
        } else if media.eq_ignore_ascii_case(JSON) {
            Ok(Format::Json)
        } else {
            Err(DecodeError::ContentType(ct.to_string()))
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => PROTOBUF,
            Format::Json => JSON,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("unsupported content type: {0}, supported: [{JSON}, {PROTOBUF}]")]
    ContentType(String),
    #[error("unsupported compression: {0}. Only \"gzip\" or no compression supported")]
    Encoding(String),
    #[error("request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    #[error("gzip: {0}")]
    Gzip(String),
    #[error("decoding protobuf ExportMetricsServiceRequest: {0}")]
    Protobuf(String),
    #[error("decoding OTLP/JSON ExportMetricsServiceRequest: {0}")]
    Json(String),
}

/// Decodes a body (`Content-Encoding` `encoding`: `gzip` or none) of at most `limit` bytes
/// after decompression.
pub fn decode(
    body: &[u8],
    format: Format,
    encoding: &str,
    limit: usize,
) -> Result<ExportMetricsServiceRequest, DecodeError> {
    if body.len() > limit {
        return Err(DecodeError::TooLarge(limit));
    }
    let inflated;
    let raw = match encoding.trim() {
        "" | "identity" => body,
        e if e.eq_ignore_ascii_case("gzip") => {
            inflated = gunzip(body, limit)?;
            &inflated[..]
        }
        other => return Err(DecodeError::Encoding(other.to_string())),
    };
    decode_raw(raw, format)
}

/// Decodes an uncompressed message.
pub fn decode_raw(raw: &[u8], format: Format) -> Result<ExportMetricsServiceRequest, DecodeError> {
    match format {
        Format::Protobuf => ExportMetricsServiceRequest::decode(raw)
            .map_err(|e| DecodeError::Protobuf(e.to_string())),
        Format::Json => serde_json::from_slice(raw).map_err(|e| DecodeError::Json(e.to_string())),
    }
}

fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    flate2::read::GzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Gzip(e.to_string()))?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge(limit));
    }
    Ok(out)
}

/// Data points in a request.
pub fn count_points(req: &ExportMetricsServiceRequest) -> u64 {
    req.resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
            None => 0,
        } as u64)
        .sum()
}

/// The success answer: `partial_success` set when points were dropped or a metric was
/// skipped (then with zero rejected points, which OTLP reads as a warning).
pub fn encode_response(format: Format, out: &Outcome) -> Vec<u8> {
    let resp = ExportMetricsServiceResponse {
        partial_success: (out.rejected > 0 || !out.messages.is_empty()).then(|| {
            ExportMetricsPartialSuccess {
                rejected_data_points: out.rejected as i64,
                error_message: out.messages.join("; "),
            }
        }),
    };
    match format {
        Format::Protobuf => resp.encode_to_vec(),
        // An empty message is `{}` (the serde mapping would write `"partialSuccess": null`).
        Format::Json if resp.partial_success.is_none() => b"{}".to_vec(),
        Format::Json => serde_json::to_vec(&resp).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn content_types() {
        assert_eq!(
            Format::from_content_type("application/x-protobuf").unwrap(),
            Format::Protobuf
        );
        assert_eq!(
            Format::from_content_type("application/json; charset=utf-8").unwrap(),
            Format::Json
        );
        let e = Format::from_content_type("text/plain").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported content type: text/plain, supported: [application/json, application/x-protobuf]"
        );
    }

    #[test]
    fn otlp_json_rules() {
        // 64-bit integers as strings, enums as numbers, hex trace ids, camelCase names.
        let body = br#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
          "scopeMetrics":[{"metrics":[{"name":"c","sum":{"aggregationTemporality":2,"isMonotonic":true,
          "dataPoints":[{"timeUnixNano":"1700000000000000000","asInt":"42",
          "exemplars":[{"timeUnixNano":"1700000000000000000","asDouble":1.5,"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]}}]}]}]}"#;
        let req = decode_raw(body, Format::Json).unwrap();
        let m = &req.resource_metrics[0].scope_metrics[0].metrics[0];
        let Some(Data::Sum(s)) = &m.data else {
            panic!("{m:?}")
        };
        assert_eq!(s.aggregation_temporality, 2);
        let p = &s.data_points[0];
        assert_eq!(p.time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(
            p.value,
            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(42))
        );
        assert_eq!(p.exemplars[0].trace_id[0], 0x5b);
        assert_eq!(p.exemplars[0].span_id.len(), 8);
        assert_eq!(count_points(&req), 1);
    }

    #[test]
    fn gzip_and_limits() {
        use flate2::{Compression, write::GzEncoder};
        use std::io::Write;
        let req = ExportMetricsServiceRequest::default();
        let raw = req.encode_to_vec();
        let mut z = GzEncoder::new(Vec::new(), Compression::default());
        z.write_all(&raw).unwrap();
        let gz = z.finish().unwrap();
        assert_eq!(decode(&gz, Format::Protobuf, "gzip", 1024).unwrap(), req);
        // A small gzip body that inflates past the limit.
        let mut z = GzEncoder::new(Vec::new(), Compression::default());
        z.write_all(&vec![0u8; 4096]).unwrap();
        let bomb = z.finish().unwrap();
        assert_eq!(
            decode(&bomb, Format::Protobuf, "gzip", 1024).unwrap_err(),
            DecodeError::TooLarge(1024)
        );
        assert!(matches!(
            decode(b"not gzip", Format::Protobuf, "gzip", 1024),
            Err(DecodeError::Gzip(_))
        ));
        assert!(matches!(
            decode(b"", Format::Protobuf, "br", 1024),
            Err(DecodeError::Encoding(_))
        ));
        assert_eq!(
            decode(&[0u8; 2000], Format::Protobuf, "", 1024).unwrap_err(),
            DecodeError::TooLarge(1024)
        );
    }

    #[test]
    fn truncated_protobuf_is_an_error() {
        use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics};
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "some.metric.with.a.long.name".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let raw = req.encode_to_vec();
        assert!(matches!(
            decode_raw(&raw[..raw.len() - 3], Format::Protobuf),
            Err(DecodeError::Protobuf(_))
        ));
    }

    #[test]
    fn responses() {
        let ok = Outcome::default();
        assert!(encode_response(Format::Protobuf, &ok).is_empty());
        assert_eq!(encode_response(Format::Json, &ok), b"{}");
        let partial = Outcome {
            rejected: 3,
            messages: vec!["bad".into()],
            ..Default::default()
        };
        let pb =
            ExportMetricsServiceResponse::decode(&encode_response(Format::Protobuf, &partial)[..])
                .unwrap();
        assert_eq!(pb.partial_success.unwrap().rejected_data_points, 3);
        let js: serde_json::Value =
            serde_json::from_slice(&encode_response(Format::Json, &partial)).unwrap();
        assert_eq!(js["partialSuccess"]["errorMessage"], "bad");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            for f in [Format::Protobuf, Format::Json] {
                if let Ok(req) = decode(&body, f, "", 1 << 16) {
                    let mut db = crate::otlp::tests::NullAppender::default();
                    let _ = crate::otlp::translate::translate(&req, &Default::default(), &mut db);
                }
                let _ = decode(&body, f, "gzip", 1 << 16);
            }
        }
    }
}
