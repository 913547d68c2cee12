//! The HTTP side: `POST /api/v1/write` (the remote-write receiver, behind
//! `--web.enable-remote-write-receiver`) and `POST /api/v1/read` (remote read, samples or
//! streamed XOR chunks; native histograms go in samples responses only, see `docs/scale-out.md`).
//!
//! The receiver behaves as Prometheus' remote-write 1.0 handler: an undecodable body is a 400;
//! the whole request is one appender batch, so a sample refused as out of order (or too old)
//! rolls the batch back and answers 400 (a sender must not retry it) and nothing of the
//! request is stored; except that a float sample storage already holds with the same value
//! (a sender resending after a crash) is skipped, not refused (vigil's difference, see
//! [`append_request_held`]); series with invalid labels are skipped and counted; storage failures
//! answer 500 (retryable). Success is 204. Native histograms (`TimeSeries.histograms`) are
//! appended in the same batch; one that does not decode or validate is a 400 for the whole
//! request, as an out-of-order sample is (never dropped on its own).

use crate::codec::{self, DecodeError};
use crate::metrics::ServerMetrics;
use crate::prompb::{self, read_request::ResponseType};
use crate::xor::XorEncoder;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prost::Message;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use vigil_model::{
    AppendError, Appendable, HistogramSample, Labels, MatchOp, Matcher, Queryable, SelectHints,
    SeriesRef,
};

/// Largest decompressed remote-write or read request accepted.
const MAX_DECOMPRESSED: usize = 256 << 20;

/// What the handlers need.
pub struct ServerState {
    pub appendable: Arc<dyn Appendable>,
    /// Local storage only (remote read never reads through other remote reads).
    pub queryable: Arc<dyn Queryable>,
    pub enable_write: bool,
    pub external_labels: Box<dyn Fn() -> Labels + Send + Sync>,
    pub metrics: Arc<ServerMetrics>,
    /// `--storage.remote.read-sample-limit` (samples per SAMPLES response; 0: no limit).
    pub read_sample_limit: usize,
    /// `--storage.remote.read-max-bytes-in-frame`.
    pub read_max_bytes_in_frame: usize,
    /// `--storage.remote.read-concurrent-limit`.
    pub read_gate: Arc<tokio::sync::Semaphore>,
}

/// The routes, to merge into the API router.
pub fn routes(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/api/v1/write", post(write))
        .route("/api/v1/read", post(read))
        .with_state(state)
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut m = msg.into();
    m.push('\n');
    (status, m).into_response()
}

async fn write(State(st): State<Arc<ServerState>>, body: Bytes) -> Response {
    if !st.enable_write {
        return text(
            StatusCode::NOT_FOUND,
            "remote write receiver needs to be enabled with --web.enable-remote-write-receiver",
        );
    }
    st.metrics.write_requests.fetch_add(1, Ordering::Relaxed);
    let req: prompb::WriteRequest = match codec::decode_snappy(&body, MAX_DECOMPRESSED) {
        Ok(r) => r,
        Err(e) => {
            st.metrics.write_rejected.fetch_add(1, Ordering::Relaxed);
            tracing::error!("Error decoding remote write request: {e}");
            return text(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let st2 = st.clone();
    let res = tokio::task::spawn_blocking(move || {
        append_request_held(&*st2.appendable, Some(&*st2.queryable), &req, &st2.metrics)
    })
    .await
    .unwrap_or_else(|e| Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string())));
    match res {
        Ok(n) => {
            st.metrics
                .write_samples
                .fetch_add(n.samples, Ordering::Relaxed);
            st.metrics
                .write_histograms
                .fetch_add(n.histograms, Ordering::Relaxed);
            StatusCode::NO_CONTENT.into_response()
        }
        Err((code, msg)) => {
            st.metrics.write_rejected.fetch_add(1, Ordering::Relaxed);
            text(code, msg)
        }
    }
}

/// Prometheus 3's `labels.IsValid` with UTF-8 names: a non-empty metric name, non-empty and
/// unique label names (strings are UTF-8 by protobuf decoding already).
fn valid_labels(pb: &[prompb::Label]) -> bool {
    let mut has_name = false;
    for (i, l) in pb.iter().enumerate() {
        if l.name.is_empty() {
            return false;
        }
        if l.name == vigil_model::METRIC_NAME {
            if l.value.is_empty() {
                return false;
            }
            has_name = true;
        }
        if pb[..i].iter().any(|o| o.name == l.name) {
            return false;
        }
    }
    has_name
}

/// What a request appended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub samples: u64,
    pub histograms: u64,
    /// Float samples skipped because storage held them already (a sender's resend).
    pub resent: u64,
}

/// Appends a decoded request as one batch: per series its float samples, then its native
/// histograms (Prometheus' order). A histogram that does not decode or fails validation
/// rejects the whole request with 400, as an out-of-order sample does: nothing is stored and
/// the sender must not retry.
pub fn append_request(
    db: &dyn Appendable,
    req: &prompb::WriteRequest,
    m: &ServerMetrics,
) -> Result<Appended, (StatusCode, String)> {
    append_request_held(db, None, req, m)
}

/// True when `q` holds exactly this float sample (same series, timestamp and value bits).
fn holds(q: &dyn Queryable, labels: &Labels, t: i64, v: f64) -> bool {
    let Ok(querier) = q.querier(t, t) else {
        return false;
    };
    let matchers: Vec<Matcher> = labels
        .iter()
        .map(|l| Matcher::equal(&l.name, &l.value))
        .collect();
    let Ok(set) = querier.select(&matchers, &SelectHints { start: t, end: t }) else {
        return false;
    };
    set.filter(|s| &s.labels == labels)
        .flat_map(|s| s.samples)
        .any(|x| x.t == t && x.v.to_bits() == v.to_bits())
}

/// As [`append_request`], and a float sample refused as out of order or duplicate that
/// `held` (the local storage) already holds with the same value is skipped instead of
/// rejecting the request. A sender restarted after a crash resends from its saved position
/// (up to a second behind what it had sent); refusing those requests whole made it drop the
/// new samples in them (docs/reliability.md, crash campaign). Prometheus' 1.0 handler refuses
/// them; this is vigil's deliberate difference: a resend is not an error.
pub fn append_request_held(
    db: &dyn Appendable,
    held: Option<&dyn Queryable>,
    req: &prompb::WriteRequest,
    m: &ServerMetrics,
) -> Result<Appended, (StatusCode, String)> {
    let mut app = db.appender();
    let mut n = Appended::default();
    for ts in &req.timeseries {
        if !valid_labels(&ts.labels) {
            m.write_invalid_labels.fetch_add(
                (ts.samples.len() + ts.histograms.len()) as u64,
                Ordering::Relaxed,
            );
            tracing::warn!(labels = ?ts.labels, "Invalid metric names or labels in remote write");
            continue;
        }
        let labels = codec::labels_from_pb(&ts.labels);
        let mut cached: Option<SeriesRef> = None;
        for s in &ts.samples {
            let res = app.append(cached, &labels, s.timestamp, s.value);
            if matches!(
                res,
                Err(AppendError::OutOfOrder | AppendError::DuplicateTimestamp)
            ) && held.is_some_and(|q| holds(q, &labels, s.timestamp, s.value))
            {
                n.resent += 1;
                continue;
            }
            match judge(res, m, &labels, s.timestamp, "sample") {
                Next::Appended(r) => {
                    cached = Some(r);
                    n.samples += 1;
                }
                Next::SkipSeries => break,
                Next::Reject(e) => {
                    app.rollback();
                    return Err(e);
                }
            }
        }
        for hp in &ts.histograms {
            let h = match codec::histogram_from_pb(hp).and_then(|h| {
                h.validate().map_err(|e| e.to_string())?;
                Ok(h)
            }) {
                Ok(h) => h,
                Err(e) => {
                    app.rollback();
                    m.write_invalid_histograms.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(series = %labels, timestamp = hp.timestamp, "Invalid histogram received in remote write: {e}");
                    return Err((
                        StatusCode::BAD_REQUEST,
                        format!(
                            "invalid histogram for series {labels} at timestamp {}: {e}",
                            hp.timestamp
                        ),
                    ));
                }
            };
            let res = app.append_histogram(cached, &labels, hp.timestamp, &h);
            match judge(res, m, &labels, hp.timestamp, "histogram") {
                Next::Appended(r) => {
                    cached = Some(r);
                    n.histograms += 1;
                }
                Next::SkipSeries => break,
                Next::Reject(e) => {
                    app.rollback();
                    return Err(e);
                }
            }
        }
    }
    app.commit().map_err(|e| {
        tracing::error!("Error committing remote write: {e}");
        (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    })?;
    Ok(n)
}

/// What one append's result means for the request.
enum Next {
    /// Stored: go on with this reference.
    Appended(SeriesRef),
    /// The series' labels were refused: skip the rest of its samples of this kind.
    SkipSeries,
    /// Reject the whole request (the caller rolls back): 400 for what a retry cannot fix
    /// (out of order, out of bounds, duplicate, a histogram storage refuses), else 500.
    Reject((StatusCode, String)),
}

/// Counts and logs a refused append as Prometheus' receiver does, and says what follows.
fn judge(
    res: Result<SeriesRef, AppendError>,
    m: &ServerMetrics,
    labels: &Labels,
    t: i64,
    what: &str,
) -> Next {
    match res {
        Ok(r) => Next::Appended(r),
        Err(
            e @ (AppendError::OutOfOrder
            | AppendError::OutOfBounds
            | AppendError::DuplicateTimestamp),
        ) => {
            m.write_out_of_order.fetch_add(1, Ordering::Relaxed);
            tracing::error!(series = %labels, timestamp = t, "Out of order {what} from remote write: {e}");
            Next::Reject((StatusCode::BAD_REQUEST, e.to_string()))
        }
        Err(AppendError::EmptyLabels) => {
            m.write_invalid_labels.fetch_add(1, Ordering::Relaxed);
            Next::SkipSeries
        }
        Err(e @ (AppendError::InvalidHistogram(_) | AppendError::HistogramsUnsupported)) => {
            m.write_invalid_histograms.fetch_add(1, Ordering::Relaxed);
            tracing::error!(series = %labels, timestamp = t, "Histogram from remote write refused: {e}");
            Next::Reject((
                StatusCode::BAD_REQUEST,
                format!("{what} for series {labels} at timestamp {t} refused: {e}"),
            ))
        }
        Err(e) => {
            tracing::error!("Error appending remote write: {e}");
            Next::Reject((StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        }
    }
}

/// Protobuf matchers as vigil matchers.
pub fn matchers_from_pb(pb: &[prompb::LabelMatcher]) -> Result<Vec<Matcher>, String> {
    use prompb::label_matcher::Type;
    pb.iter()
        .map(|m| match Type::try_from(m.r#type) {
            Ok(Type::Eq) => Ok(Matcher::equal(&m.name, &m.value)),
            Ok(Type::Neq) => Ok(Matcher::not_equal(&m.name, &m.value)),
            Ok(Type::Re) => Matcher::regex(&m.name, &m.value).map_err(|e| e.to_string()),
            Ok(Type::Nre) => Matcher::not_regex(&m.name, &m.value).map_err(|e| e.to_string()),
            Err(_) => Err(format!("unknown matcher type {}", m.r#type)),
        })
        .collect()
}

/// vigil matchers as protobuf matchers.
pub fn matchers_to_pb(ms: &[Matcher]) -> Vec<prompb::LabelMatcher> {
    use prompb::label_matcher::Type;
    ms.iter()
        .map(|m| prompb::LabelMatcher {
            r#type: match m.op {
                MatchOp::Equal => Type::Eq,
                MatchOp::NotEqual => Type::Neq,
                MatchOp::RegexMatch(_) => Type::Re,
                MatchOp::RegexNoMatch(_) => Type::Nre,
            } as i32,
            name: m.name.clone(),
            value: m.value.clone(),
        })
        .collect()
}

/// Prometheus' `filterExtLabelsFromMatchers`: matchers on external labels are checked against
/// the external label values and removed. `None` when one of them cannot match.
fn filter_external(ms: Vec<Matcher>, ext: &Labels) -> Option<Vec<Matcher>> {
    let mut out = Vec::with_capacity(ms.len());
    for m in ms {
        match ext.get(&m.name) {
            Some(v) => {
                if !m.matches(v) {
                    return None;
                }
            }
            None => out.push(m),
        }
    }
    Some(out)
}

fn with_external(l: &Labels, ext: &Labels) -> Labels {
    if ext.is_empty() {
        return l.clone();
    }
    let mut b = l.to_builder();
    for e in ext {
        if l.get(&e.name).is_none() {
            b.set(e.name.clone(), e.value.clone());
        }
    }
    b.build()
}

/// One series selected for a remote-read response.
pub struct SelectedSeries {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
    pub histograms: Vec<HistogramSample>,
}

type Selected = Vec<SelectedSeries>;

fn select(
    q: &dyn Queryable,
    query: &prompb::Query,
    ext: &Labels,
    limit: usize,
    total: &mut usize,
) -> Result<Selected, (StatusCode, String)> {
    let ms = matchers_from_pb(&query.matchers).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    let Some(ms) = filter_external(ms, ext) else {
        return Ok(Vec::new());
    };
    let (start, end) = (query.start_timestamp_ms, query.end_timestamp_ms);
    let querier = q
        .querier(start, end)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if ms.is_empty() || ms.iter().all(|m| m.matches_empty()) {
        return Err((
            StatusCode::BAD_REQUEST,
            "query must contain at least one matcher that does not match the empty string".into(),
        ));
    }
    let set = querier
        .select(&ms, &SelectHints { start, end })
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut out = Vec::new();
    for s in set {
        let samples: Vec<(i64, f64)> = s
            .samples
            .filter(|x| x.t >= start && x.t <= end)
            .map(|x| (x.t, x.v))
            .collect();
        let histograms: Vec<HistogramSample> = s
            .histograms
            .into_iter()
            .filter(|x| x.t >= start && x.t <= end)
            .collect();
        if samples.is_empty() && histograms.is_empty() {
            continue;
        }
        // Histogram samples count against the limit as float samples do (as in Prometheus).
        *total += samples.len() + histograms.len();
        if limit > 0 && *total > limit {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("exceeded sample limit ({limit})"),
            ));
        }
        out.push(SelectedSeries {
            labels: with_external(&s.labels, ext),
            samples,
            histograms,
        });
    }
    Ok(out)
}

/// Encodes streamed chunk frames for one query's series (Prometheus' `StreamChunkedReadResponses`:
/// chunks of at most 120 samples, frames of at most `max_frame` bytes, a series may span frames).
/// Only float samples (XOR chunks): histogram chunks are not encoded, callers send series with
/// histograms as a SAMPLES response or refuse (see `read`).
pub fn chunked_frames(series: &Selected, query_index: i64, max_frame: usize, out: &mut Vec<u8>) {
    for SelectedSeries {
        labels, samples, ..
    } in series
    {
        if samples.is_empty() {
            continue;
        }
        let pb_labels = codec::labels_to_pb(labels);
        let mut chunks = Vec::new();
        let mut size = 0usize;
        for part in samples.chunks(120) {
            let mut e = XorEncoder::default();
            for &(t, v) in part {
                e.append(t, v);
            }
            let c = prompb::Chunk {
                min_time_ms: part[0].0,
                max_time_ms: part[part.len() - 1].0,
                r#type: prompb::chunk::Encoding::Xor as i32,
                data: e.into_bytes(),
            };
            size += c.encoded_len() + 4;
            chunks.push(c);
            if size >= max_frame {
                let msg = prompb::ChunkedReadResponse {
                    chunked_series: vec![prompb::ChunkedSeries {
                        labels: pb_labels.clone(),
                        chunks: std::mem::take(&mut chunks),
                    }],
                    query_index,
                };
                codec::put_frame(out, &msg.encode_to_vec());
                size = 0;
            }
        }
        if !chunks.is_empty() {
            let msg = prompb::ChunkedReadResponse {
                chunked_series: vec![prompb::ChunkedSeries {
                    labels: pb_labels,
                    chunks,
                }],
                query_index,
            };
            codec::put_frame(out, &msg.encode_to_vec());
        }
    }
}

/// A SAMPLES response: floats as `samples`, native histograms as `histograms` (integer form
/// when the counts are integral, float form otherwise).
fn samples_response(results: Vec<Selected>) -> prompb::ReadResponse {
    prompb::ReadResponse {
        results: results
            .into_iter()
            .map(|series| prompb::QueryResult {
                timeseries: series
                    .into_iter()
                    .map(|s| prompb::TimeSeries {
                        labels: codec::labels_to_pb(&s.labels),
                        samples: s
                            .samples
                            .into_iter()
                            .map(|(t, v)| prompb::Sample {
                                value: v,
                                timestamp: t,
                            })
                            .collect(),
                        exemplars: vec![],
                        histograms: s
                            .histograms
                            .iter()
                            .map(|h| codec::histogram_to_pb(h.t, &h.h))
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

async fn read(State(st): State<Arc<ServerState>>, body: Bytes) -> Response {
    st.metrics.read_requests.fetch_add(1, Ordering::Relaxed);
    let fail = |st: &ServerState, code: StatusCode, msg: String| {
        st.metrics.read_errors.fetch_add(1, Ordering::Relaxed);
        text(code, msg)
    };
    let req: prompb::ReadRequest = match codec::decode_snappy(&body, MAX_DECOMPRESSED) {
        Ok(r) => r,
        Err(e @ (DecodeError::Snappy(_) | DecodeError::Proto(_) | DecodeError::Frame(_))) => {
            return fail(&st, StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let kind = if req.accepted_response_types.is_empty() {
        Some(ResponseType::Samples)
    } else {
        req.accepted_response_types
            .iter()
            .find_map(|&t| ResponseType::try_from(t).ok())
    };
    let Some(kind) = kind else {
        return fail(
            &st,
            StatusCode::BAD_REQUEST,
            format!(
                "server does not support any of the requested response types: {:?}; supported: SAMPLES, STREAMED_XOR_CHUNKS",
                req.accepted_response_types
            ),
        );
    };
    let samples_accepted = req.accepted_response_types.is_empty()
        || req
            .accepted_response_types
            .contains(&(ResponseType::Samples as i32));
    let Ok(_permit) = st.read_gate.clone().acquire_owned().await else {
        return fail(&st, StatusCode::SERVICE_UNAVAILABLE, "shutting down".into());
    };
    let st2 = st.clone();
    let res = tokio::task::spawn_blocking(move || {
        let ext = (st2.external_labels)();
        let mut total = 0usize;
        // The streamed response has no sample limit in Prometheus (frames bound memory
        // there); here the whole body is built, so the limit applies to both kinds.
        let mut results = Vec::with_capacity(req.queries.len());
        for q in &req.queries {
            results.push(select(
                &*st2.queryable,
                q,
                &ext,
                st2.read_sample_limit,
                &mut total,
            )?);
        }
        let has_histograms = results
            .iter()
            .flatten()
            .any(|s| !s.histograms.is_empty());
        let kind = match kind {
            // Histogram chunks (HISTOGRAM / FLOAT_HISTOGRAM encodings) are not implemented:
            // a client that also takes SAMPLES gets those, with every histogram in them.
            ResponseType::StreamedXorChunks if has_histograms && samples_accepted => {
                ResponseType::Samples
            }
            ResponseType::StreamedXorChunks if has_histograms => {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "the selected series hold native histograms, which this server cannot send as streamed chunks (histogram chunk encodings are not implemented); ask for the SAMPLES response type as well".to_string(),
                ));
            }
            k => k,
        };
        match kind {
            ResponseType::Samples => Ok((
                kind,
                codec::snappy_compress(&samples_response(results).encode_to_vec()),
            )),
            ResponseType::StreamedXorChunks => {
                let mut out = Vec::new();
                for (i, series) in results.iter().enumerate() {
                    chunked_frames(series, i as i64, st2.read_max_bytes_in_frame, &mut out);
                }
                Ok((kind, out))
            }
        }
    })
    .await
    .unwrap_or_else(|e| Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string())));
    match res {
        Ok((ResponseType::Samples, body)) => {
            let mut r = body.into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            );
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
            r
        }
        Ok((ResponseType::StreamedXorChunks, body)) => {
            let mut r = body.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(codec::STREAMED_CONTENT_TYPE),
            );
            r
        }
        Err((code, msg)) => fail(&st, code, msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_validity_follows_prometheus() {
        let l = |pairs: &[(&str, &str)]| -> Vec<prompb::Label> {
            pairs
                .iter()
                .map(|(n, v)| prompb::Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect()
        };
        assert!(valid_labels(&l(&[("__name__", "up"), ("job", "a")])));
        assert!(!valid_labels(&l(&[("job", "a")])));
        assert!(!valid_labels(&l(&[("__name__", "up"), ("", "a")])));
        assert!(!valid_labels(&l(&[
            ("__name__", "up"),
            ("a", "1"),
            ("a", "2")
        ])));
    }

    #[test]
    fn external_label_matchers_are_filtered() {
        let ext = Labels::from_pairs([("cluster", "eu")]);
        let ms = vec![
            Matcher::equal("cluster", "eu"),
            Matcher::equal("__name__", "up"),
        ];
        assert_eq!(filter_external(ms, &ext).unwrap().len(), 1);
        let ms = vec![
            Matcher::equal("cluster", "us"),
            Matcher::equal("__name__", "up"),
        ];
        assert!(filter_external(ms, &ext).is_none());
    }
}
