//! What every endpoint shares: request parameters (URL query and form body merged, as Go's
//! `Request.Form`), Prometheus' error types and HTTP codes, and the JSON response envelope.
//! The endpoints themselves live by concern in `query`, `metadata`, `targets`, `status`,
//! `admin`, `federate` and `lifecycle`.

use crate::json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use vigil_model::{Matcher, Timestamp};
use vigil_promql::EngineError;

use crate::ApiState;

pub(crate) type St = State<Arc<ApiState>>;

/// Request parameters from the URL and, for form POSTs (and PUTs), the body; body values
/// first, as Go's `Request.Form` orders them.
pub(crate) struct Params(pub(crate) Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut v: Vec<(String, String)> =
            form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| {
                c.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        let has_body = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
        if has_body && is_form {
            let body = Bytes::from_request(req, state)
                .await
                .map_err(IntoResponse::into_response)?;
            let mut b: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
            b.append(&mut v);
            v = b;
        }
        Ok(Params(v))
    }
}

impl Params {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A parameter that is present and not empty.
    pub(crate) fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|s| !s.is_empty())
    }

    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A time parameter (`time`, `start`, `end`); `default` when absent or empty.
    pub(crate) fn time(&self, name: &str, default: Timestamp) -> Result<Timestamp, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(s) => crate::params::parse_time(s).map_err(|e| ApiError::bad_param(name, &e)),
        }
    }

    /// `start`/`end` of the metadata endpoints: the whole time range when absent.
    pub(crate) fn time_range(&self) -> Result<(Timestamp, Timestamp), ApiError> {
        let (start, end) = (self.time("start", MIN_TIME)?, self.time("end", MAX_TIME)?);
        if end < start {
            return Err(ApiError::bad_param(
                "end",
                "end timestamp must not be before start time",
            ));
        }
        Ok((start, end))
    }

    /// `limit`: absent, empty or 0 mean no limit; negative or non-numbers are an error.
    pub(crate) fn limit(&self) -> Result<Option<usize>, ApiError> {
        match self.get("limit") {
            None | Some("") => Ok(None),
            Some(s) => match s.parse::<i64>() {
                Ok(0) => Ok(None),
                Ok(n) if n > 0 => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
                _ => Err(ApiError::bad_param(
                    "limit",
                    &format!("cannot parse {s:?}: must be a non-negative integer"),
                )),
            },
        }
    }

    /// Every `match[]` selector parsed into matchers.
    pub(crate) fn matchers(&self, st: &ApiState) -> Result<Vec<Vec<Matcher>>, ApiError> {
        self.all("match[]")
            .into_iter()
            .map(|sel| {
                st.engine
                    .selector_matchers(sel)
                    .map_err(|e| ApiError::bad_data(e.to_string()))
            })
            .collect()
    }
}

/// Oldest and newest timestamps a query may name (Prometheus' `MinTime`/`MaxTime` in ms, kept
/// away from `i64` overflow).
pub(crate) const MIN_TIME: Timestamp = i64::MIN / 4;
pub(crate) const MAX_TIME: Timestamp = i64::MAX / 4;

/// Prometheus' `errorType`s (`web/api/v1`), each with the HTTP status Prometheus answers it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// The query or a parameter is malformed (400).
    BadData,
    /// The query is well-formed but failed while running (422).
    Execution,
    /// The query ran out of time (503).
    Timeout,
    /// The client went away or the query was cancelled (503).
    Canceled,
    /// Something failed inside vigil (500).
    Internal,
    /// The server cannot serve this now, or has it switched off (503).
    Unavailable,
    /// No such thing (404).
    NotFound,
}

impl ErrorType {
    /// The `errorType` string of the JSON body.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Canceled => "canceled",
            ErrorType::Internal => "internal",
            ErrorType::Unavailable => "unavailable",
            ErrorType::NotFound => "not_found",
        }
    }

    /// Prometheus' status for the type (`returnAPIError`).
    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout | ErrorType::Canceled | ErrorType::Unavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
        }
    }
}

/// An API error with Prometheus' `errorType` and HTTP status.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) kind: ErrorType,
    pub(crate) msg: String,
}

impl ApiError {
    /// An error of `kind` with the status Prometheus gives it.
    pub(crate) fn new(kind: ErrorType, msg: impl Into<String>) -> Self {
        ApiError {
            status: kind.status(),
            kind,
            msg: msg.into(),
        }
    }
    /// The same with another status (where Prometheus departs from its own mapping).
    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
    pub(crate) fn bad_data(msg: impl Into<String>) -> Self {
        Self::new(ErrorType::BadData, msg)
    }
    pub(crate) fn bad_param(name: &str, msg: &str) -> Self {
        Self::bad_data(format!("invalid parameter {name:?}: {msg}"))
    }
    pub(crate) fn internal(msg: impl Into<String>) -> Self {
        Self::new(ErrorType::Internal, msg)
    }
    pub(crate) fn unavailable(msg: impl Into<String>) -> Self {
        Self::new(ErrorType::Unavailable, msg)
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Parse(m) => ApiError::bad_param("query", &m),
            EngineError::Execution(m) => ApiError::new(ErrorType::Execution, m),
            EngineError::Storage(m) => ApiError::internal(m.to_string()),
            e @ EngineError::Timeout(_) => ApiError::new(ErrorType::Timeout, e.to_string()),
            e @ EngineError::Cancelled(_) => ApiError::new(ErrorType::Canceled, e.to_string()),
            e @ EngineError::TooManySamples(_) => {
                ApiError::new(ErrorType::Execution, e.to_string())
            }
        }
    }
}

impl From<vigil_model::StorageError> for ApiError {
    fn from(e: vigil_model::StorageError) -> Self {
        match e {
            vigil_model::StorageError::Limit(m) => ApiError::new(ErrorType::Execution, m),
            e => ApiError::internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, json::error(self.kind.as_str(), &self.msg))
    }
}

pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub(crate) fn ok(body: String) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, body))
}

/// Runs blocking work (storage reads, evaluation) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("request task failed: {e}")))?
}

pub(crate) fn string_list(items: impl IntoIterator<Item = String>) -> String {
    let mut out = String::from("[");
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_str(&mut out, &s);
    }
    out.push(']');
    out
}

pub(crate) fn labels_json(l: &vigil_model::Labels) -> serde_json::Value {
    serde_json::Value::Object(
        l.iter()
            .map(|l| (l.name.clone(), l.value.clone().into()))
            .collect(),
    )
}

pub use vigil_model::civil::rfc3339_millis;

pub async fn metrics(State(st): St) -> Response {
    let mut r = (st.self_metrics)().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

pub async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339() {
        assert_eq!(
            super::rfc3339_millis(1435781451781),
            "2015-07-01T20:10:51.781Z"
        );
        assert_eq!(super::rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
    }
}
