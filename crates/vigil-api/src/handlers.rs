//! Endpoint handlers. Each parses its parameters (query string and form body alike), reads
//! through the Querier or the engine, and answers in Prometheus' JSON.

use crate::{ApiState, json, params};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use vigil_model::{Matcher, SelectHints, Timestamp, now_millis};
use vigil_promql::EngineError;

type St = State<Arc<ApiState>>;

/// Request parameters from the URL and, for form POSTs, the body, in order.
struct Params(Vec<(String, String)>);

impl Params {
    fn new(method: &Method, headers: &HeaderMap, query: Option<String>, body: &Bytes) -> Params {
        let mut v: Vec<(String, String)> =
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        if *method == Method::POST && is_form {
            // Body parameters come first, as Go's Request.Form puts them.
            let mut b: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
            b.append(&mut v);
            v = b;
        }
        Params(v)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn time(&self, name: &str, default: Timestamp) -> Result<Timestamp, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(s) => params::parse_time(s).map_err(|e| ApiError::bad_param(name, &e)),
        }
    }
}

/// An API error with Prometheus' `errorType` and HTTP status.
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    msg: String,
}

impl ApiError {
    fn bad_data(msg: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_data",
            msg: msg.into(),
        }
    }
    fn bad_param(name: &str, msg: &str) -> Self {
        Self::bad_data(format!("invalid parameter {name:?}: {msg}"))
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Parse(m) => ApiError::bad_param("query", &m),
            EngineError::Execution(m) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                kind: "execution",
                msg: m,
            },
            EngineError::Storage(m) => ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                kind: "internal",
                msg: m.to_string(),
            },
        }
    }
}

impl From<vigil_model::StorageError> for ApiError {
    fn from(e: vigil_model::StorageError) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal",
            msg: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, json::error(self.kind, &self.msg))
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn ok(body: String) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, body))
}

pub async fn query(
    State(st): St,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::new(&method, &headers, q, &body);
    let t = p.time("time", now_millis())?;
    if let Some(s) = p.get("timeout") {
        params::parse_duration(s).map_err(|e| ApiError::bad_param("timeout", &e))?;
    }
    let query = p.get("query").unwrap_or("").to_string();
    let st2 = Arc::clone(&st);
    let v = tokio::task::spawn_blocking(move || st2.engine.instant(st2.db.as_ref(), &query, t))
        .await
        .map_err(|e| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal",
            msg: e.to_string(),
        })??;
    ok(json::success_value(&v))
}

pub async fn query_range(
    State(st): St,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::new(&method, &headers, q, &body);
    let need = |name: &str| -> Result<Timestamp, ApiError> {
        let s = p.get(name).ok_or_else(|| {
            ApiError::bad_param(
                name,
                &format!(
                    "cannot parse \"\" to a valid {}",
                    if name == "step" {
                        "duration"
                    } else {
                        "timestamp"
                    }
                ),
            )
        })?;
        if name == "step" {
            params::parse_duration(s).map_err(|e| ApiError::bad_param(name, &e))
        } else {
            params::parse_time(s).map_err(|e| ApiError::bad_param(name, &e))
        }
    };
    let (start, end, step) = (need("start")?, need("end")?, need("step")?);
    if end < start {
        return Err(ApiError::bad_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    if step <= 0 {
        return Err(ApiError::bad_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    let query = p.get("query").unwrap_or("").to_string();
    let st2 = Arc::clone(&st);
    let v = tokio::task::spawn_blocking(move || {
        st2.engine.range(st2.db.as_ref(), &query, start, end, step)
    })
    .await
    .map_err(|e| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        kind: "internal",
        msg: e.to_string(),
    })??;
    ok(json::success_value(&v))
}

/// Parses every `match[]` selector into matcher lists.
fn match_params(st: &ApiState, p: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let mut out = Vec::new();
    for sel in p.all("match[]") {
        out.push(
            st.engine
                .selector_matchers(sel)
                .map_err(|e| ApiError::bad_data(e.to_string()))?,
        );
    }
    Ok(out)
}

fn time_range(p: &Params) -> Result<(Timestamp, Timestamp), ApiError> {
    Ok((p.time("start", i64::MIN / 2)?, p.time("end", i64::MAX / 2)?))
}

pub async fn series(
    State(st): St,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::new(&method, &headers, q, &body);
    let sets = match_params(&st, &p)?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = time_range(&p)?;
    let querier = st.db.querier(start, end)?;
    let mut all = std::collections::BTreeSet::new();
    for ms in &sets {
        for s in querier.select(ms, &SelectHints { start, end })? {
            all.insert(s.labels);
        }
    }
    let mut out = String::from("[");
    for (i, l) in all.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_labels(&mut out, l);
    }
    out.push(']');
    ok(json::success_raw(&out))
}

fn string_list(items: impl IntoIterator<Item = String>) -> String {
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

pub async fn labels(
    State(st): St,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::new(&method, &headers, q, &body);
    let sets = match_params(&st, &p)?;
    let (start, end) = time_range(&p)?;
    let querier = st.db.querier(start, end)?;
    let mut names = std::collections::BTreeSet::new();
    if sets.is_empty() {
        names.extend(querier.label_names(&[])?);
    }
    for ms in &sets {
        names.extend(querier.label_names(ms)?);
    }
    ok(json::success_raw(&string_list(names)))
}

pub async fn label_values(
    State(st): St,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::new(&Method::GET, &headers, q, &Bytes::new());
    let sets = match_params(&st, &p)?;
    let (start, end) = time_range(&p)?;
    let querier = st.db.querier(start, end)?;
    let mut values = std::collections::BTreeSet::new();
    if sets.is_empty() {
        values.extend(querier.label_values(&name, &[])?);
    }
    for ms in &sets {
        values.extend(querier.label_values(&name, ms)?);
    }
    ok(json::success_raw(&string_list(values)))
}

pub async fn targets(State(st): St) -> Result<Response, ApiError> {
    let statuses = st.scrape.as_ref().map(|s| s.statuses()).unwrap_or_default();
    let active: Vec<serde_json::Value> = statuses
        .iter()
        .map(|t| {
            let labels: serde_json::Map<String, serde_json::Value> = t
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone().into()))
                .collect();
            let discovered: serde_json::Map<String, serde_json::Value> = t
                .discovered
                .iter()
                .map(|l| (l.name.clone(), l.value.clone().into()))
                .collect();
            serde_json::json!({
                "discoveredLabels": discovered,
                "labels": labels,
                "scrapePool": t.job,
                "scrapeUrl": t.url,
                "globalUrl": t.url,
                "lastError": t.last_error,
                "lastScrape": rfc3339_millis(t.last_scrape_ms),
                "lastScrapeDuration": t.last_scrape_duration,
                "health": t.health.as_str(),
                "scrapeInterval": t.interval,
                "scrapeTimeout": t.timeout,
            })
        })
        .collect();
    let data = serde_json::json!({"activeTargets": active, "droppedTargets": [], "droppedTargetCounts": {}});
    ok(json::success_raw(&data.to_string()))
}

/// Formats a ms timestamp as RFC3339 UTC with milliseconds.
fn rfc3339_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}

pub async fn buildinfo(State(st): St) -> Result<Response, ApiError> {
    let data = serde_json::json!({
        "version": st.version,
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    });
    ok(json::success_raw(&data.to_string()))
}

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
