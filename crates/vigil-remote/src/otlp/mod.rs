//! The OTLP metrics receiver: `POST /api/v1/otlp/v1/metrics`, as Prometheus 3.x serves it
//! behind `--web.enable-otlp-receiver` (`docs/otlp.md`).
//!
//! A request is an OTLP `ExportMetricsServiceRequest`, protobuf (`application/x-protobuf`) or
//! OTLP/JSON (`application/json`), optionally gzip-compressed. The messages are the
//! `opentelemetry-proto` crate's (prost structs with the OTLP/JSON serde mapping: hex ids,
//! 64-bit integers as strings, enums as numbers), so the wire format is OpenTelemetry's own
//! generated code rather than ours ([`decode`]). The translation into series is ours, by
//! Prometheus' rules ([`names`], [`translate`]); the whole request is one appender batch, so a
//! request refused by storage or for delta temporality leaves nothing behind.
//!
//! Answers: 200 with an `ExportMetricsServiceResponse` in the request's content type, whose
//! `partial_success` counts the data points that could not be translated; 400 for a body that
//! does not decode, delta temporality (unless [`delta`] converts it, with
//! `--enable-feature=otlp-deltatocumulative`), or samples storage refuses as out of order; 413 for a
//! body over [`MAX_BODY`] (compressed or not); 400 for an unsupported content type too (as
//! Prometheus answers it); 404 when the receiver is off; 500 when storage fails.

pub mod decode;
pub mod delta;
pub mod names;
pub mod translate;

#[cfg(test)]
mod tests;

use crate::metrics::ServerMetrics;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use decode::{DecodeError, Format};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use translate::{Settings, TranslateError};
use vigil_model::{AppendError, Appendable};

/// Largest request body, compressed and decompressed (Prometheus' OTLP decode limit).
pub const MAX_BODY: usize = 32 << 20;

/// The path, under the route prefix.
pub const PATH: &str = "/api/v1/otlp/v1/metrics";

/// What the handler needs.
pub struct OtlpState {
    pub appendable: Arc<dyn Appendable>,
    /// `--web.enable-otlp-receiver`.
    pub enabled: bool,
    /// The translation settings of the running config (re-read per request, so a reload
    /// applies to the next request).
    pub settings: Box<dyn Fn() -> Settings + Send + Sync>,
    pub metrics: Arc<ServerMetrics>,
    /// `--enable-feature=otlp-deltatocumulative`: delta sums and histograms are converted
    /// (else a request holding one is refused).
    pub delta: Option<Arc<delta::DeltaToCumulative>>,
}

/// The route, to merge into the API router. Its own body limit replaces the API's (OTLP
/// batches are larger than form posts).
pub fn routes(state: Arc<OtlpState>) -> Router {
    Router::new()
        .route(PATH, post(export))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut m = msg.into();
    m.push('\n');
    (status, m).into_response()
}

async fn export(State(st): State<Arc<OtlpState>>, headers: HeaderMap, body: Bytes) -> Response {
    if !st.enabled {
        return text(
            StatusCode::NOT_FOUND,
            "otlp write receiver needs to be enabled with --web.enable-otlp-receiver",
        );
    }
    let m = st.metrics.clone();
    m.otlp_requests.fetch_add(1, Ordering::Relaxed);
    let fail = |code: StatusCode, msg: String| {
        m.otlp_requests_rejected.fetch_add(1, Ordering::Relaxed);
        text(code, msg)
    };
    let header = |h: header::HeaderName| {
        headers
            .get(h)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default()
    };
    let content_type = header(header::CONTENT_TYPE);
    let encoding = header(header::CONTENT_ENCODING);
    let st2 = st.clone();
    let res = tokio::task::spawn_blocking(move || {
        let format = Format::from_content_type(&content_type)?;
        let mut req = decode::decode(&body, format, &encoding, MAX_BODY)?;
        let points = decode::count_points(&req);
        let dropped = match &st2.delta {
            Some(d) => d.convert(&mut req, vigil_model::now_millis() as u64 * 1_000_000),
            None => delta::Dropped::default(),
        };
        let settings = (st2.settings)();
        let mut app = st2.appendable.appender();
        match translate::translate(&req, &settings, &mut *app) {
            Ok(mut out) => {
                out.points += dropped.points;
                out.rejected += dropped.points;
                out.messages.extend(dropped.messages);
                app.commit().map_err(|e| {
                    tracing::error!("Error committing OTLP write: {e}");
                    Rejected::Storage(e.to_string(), points)
                })?;
                Ok((format, out))
            }
            Err(e) => {
                app.rollback();
                Err(Rejected::Translate(e, points))
            }
        }
    })
    .await
    .unwrap_or_else(|e| Err(Rejected::Storage(e.to_string(), 0)));
    match res {
        Ok((format, out)) => {
            m.otlp_points_received
                .fetch_add(out.points, Ordering::Relaxed);
            m.otlp_points_rejected
                .fetch_add(out.rejected, Ordering::Relaxed);
            m.otlp_samples.fetch_add(out.samples, Ordering::Relaxed);
            m.otlp_histograms
                .fetch_add(out.histograms, Ordering::Relaxed);
            m.otlp_exemplars_dropped
                .fetch_add(out.exemplars, Ordering::Relaxed);
            if out.rejected > 0 {
                tracing::warn!(
                    rejected = out.rejected,
                    "OTLP data points could not be translated: {}",
                    out.messages.join("; ")
                );
            }
            let body = decode::encode_response(format, &out);
            let mut r = (StatusCode::OK, body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            r
        }
        Err(Rejected::Decode(e)) => {
            tracing::error!("Error decoding OTLP write request: {e}");
            let code = match e {
                DecodeError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            fail(code, e.to_string())
        }
        Err(Rejected::Translate(e, points)) => {
            m.otlp_points_received.fetch_add(points, Ordering::Relaxed);
            m.otlp_points_rejected.fetch_add(points, Ordering::Relaxed);
            let code = match &e {
                TranslateError::Delta { .. } => StatusCode::BAD_REQUEST,
                TranslateError::Append { source, .. } => match source {
                    AppendError::OutOfOrder
                    | AppendError::OutOfBounds
                    | AppendError::DuplicateTimestamp
                    | AppendError::EmptyLabels
                    | AppendError::InvalidHistogram(_)
                    | AppendError::HistogramsUnsupported => StatusCode::BAD_REQUEST,
                    AppendError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
                },
            };
            if code == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!("Error appending OTLP write: {e}");
            } else {
                tracing::warn!("OTLP write request refused: {e}");
            }
            fail(code, e.to_string())
        }
        Err(Rejected::Storage(e, points)) => {
            m.otlp_points_received.fetch_add(points, Ordering::Relaxed);
            m.otlp_points_rejected.fetch_add(points, Ordering::Relaxed);
            fail(StatusCode::INTERNAL_SERVER_ERROR, e)
        }
    }
}

/// Why a request was not stored.
enum Rejected {
    Decode(DecodeError),
    Translate(TranslateError, u64),
    Storage(String, u64),
}

impl From<DecodeError> for Rejected {
    fn from(e: DecodeError) -> Self {
        Rejected::Decode(e)
    }
}
