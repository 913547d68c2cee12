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
            e @ EngineError::Timeout(_) => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "timeout",
                msg: e.to_string(),
            },
            e @ EngineError::Cancelled(_) => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "canceled",
                msg: e.to_string(),
            },
            e @ EngineError::TooManySamples(_) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                kind: "execution",
                msg: e.to_string(),
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

fn labels_json(l: &vigil_model::Labels) -> serde_json::Value {
    serde_json::Value::Object(l.iter().map(|l| (l.name.clone(), l.value.clone().into())).collect())
}

/// `/api/v1/targets` with Prometheus' `state` (active, dropped, any) and `scrapePool` filters.
pub async fn targets(State(st): St, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::new(&Method::GET, &HeaderMap::new(), q, &Bytes::new());
    let state = p.get("state").unwrap_or("any").to_ascii_lowercase();
    let pool = p.get("scrapePool").filter(|s| !s.is_empty());
    let (want_active, want_dropped) = (state == "active" || state == "any", state == "dropped" || state == "any");
    let Some(scrape) = st.scrape.as_ref() else {
        return ok(json::success_raw(r#"{"activeTargets":[],"droppedTargets":[],"droppedTargetCounts":{}}"#));
    };
    let mut data = serde_json::Map::new();
    if want_active {
        let active: Vec<serde_json::Value> = scrape
            .statuses()
            .iter()
            .filter(|t| pool.is_none_or(|p| p == t.job))
            .map(|t| {
                serde_json::json!({
                    "discoveredLabels": labels_json(&t.discovered),
                    "labels": labels_json(&t.labels),
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
        data.insert("activeTargets".into(), active.into());
    }
    if want_dropped {
        let dropped = scrape.dropped();
        let mut counts = serde_json::Map::new();
        for job in scrape.pools() {
            counts.insert(job.clone(), dropped.iter().filter(|d| d.job == job).count().into());
        }
        let list: Vec<serde_json::Value> = dropped
            .iter()
            .filter(|d| pool.is_none_or(|p| p == d.job))
            .map(|d| serde_json::json!({"discoveredLabels": labels_json(&d.discovered), "scrapePool": d.job}))
            .collect();
        data.insert("droppedTargets".into(), list.into());
        data.insert("droppedTargetCounts".into(), counts.into());
    }
    ok(json::success_raw(&serde_json::Value::Object(data).to_string()))
}

/// `/api/v1/targets/metadata`: `match_target` (a selector over target labels), `metric`, `limit`.
pub async fn targets_metadata(State(st): St, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::new(&Method::GET, &HeaderMap::new(), q, &Bytes::new());
    let matchers = match p.get("match_target").filter(|s| !s.is_empty()) {
        Some(sel) => st.engine.selector_matchers(sel).map_err(|e| ApiError::bad_param("match_target", &e.to_string()))?,
        None => Vec::new(),
    };
    let metric = p.get("metric").filter(|s| !s.is_empty());
    let limit = parse_limit(&p)?;
    let mut out = Vec::new();
    for t in st.scrape.as_ref().map(|s| s.statuses()).unwrap_or_default() {
        if !matchers.iter().all(|m| m.matches(t.labels.get(&m.name).unwrap_or(""))) {
            continue;
        }
        for (name, m) in t.metadata.iter() {
            if metric.is_some_and(|want| want != name) {
                continue;
            }
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
            out.push(serde_json::json!({"target": labels_json(&t.labels), "metric": name, "type": m.kind, "help": m.help, "unit": m.unit}));
        }
    }
    ok(json::success_raw(&serde_json::Value::Array(out).to_string()))
}

/// `/api/v1/metadata`: metric name → distinct metadata over all targets; `metric`, `limit`,
/// `limit_per_metric`.
pub async fn metadata(State(st): St, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::new(&Method::GET, &HeaderMap::new(), q, &Bytes::new());
    let metric = p.get("metric").filter(|s| !s.is_empty());
    let limit = parse_limit(&p)?;
    let per_metric = match p.get("limit_per_metric") {
        Some(s) if !s.is_empty() => Some(s.parse::<usize>().map_err(|_| ApiError::bad_param("limit_per_metric", "must be a number"))?),
        _ => None,
    };
    let mut all: std::collections::BTreeMap<String, Vec<vigil_scrape::MetricMeta>> = Default::default();
    for t in st.scrape.as_ref().map(|s| s.statuses()).unwrap_or_default() {
        for (name, m) in t.metadata.iter() {
            if metric.is_some_and(|want| want != name) {
                continue;
            }
            let list = all.entry(name.clone()).or_default();
            if !list.contains(m) && per_metric.is_none_or(|l| list.len() < l) {
                list.push(m.clone());
            }
        }
    }
    let mut data = serde_json::Map::new();
    for (name, list) in all {
        if limit.is_some_and(|l| data.len() >= l) {
            break;
        }
        let items: Vec<serde_json::Value> = list.iter().map(|m| serde_json::json!({"type": m.kind, "help": m.help, "unit": m.unit})).collect();
        data.insert(name, items.into());
    }
    ok(json::success_raw(&serde_json::Value::Object(data).to_string()))
}

/// `limit`: absent, empty or 0 mean no limit; negative or non-numbers are an error.
fn parse_limit(p: &Params) -> Result<Option<usize>, ApiError> {
    match p.get("limit") {
        None | Some("") => Ok(None),
        Some(s) => match s.parse::<i64>() {
            Ok(0) => Ok(None),
            Ok(n) if n > 0 => Ok(Some(n as usize)),
            _ => Err(ApiError::bad_param("limit", "must be a positive number")),
        },
    }
}

pub async fn reload(State(st): St) -> Response {
    if st.lifecycle.is_none() {
        return (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.").into_response();
    }
    // Reloading reads files and builds clients: keep it off the async workers.
    let st2 = Arc::clone(&st);
    let result = tokio::task::spawn_blocking(move || st2.lifecycle.as_ref().map_or(Ok(()), |lc| (lc.reload)()))
        .await
        .unwrap_or_else(|e| Err(format!("reload task failed: {e}")));
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("failed to reload config: {e}")).into_response(),
    }
}

pub async fn quit(State(st): St) -> Response {
    match st.lifecycle.as_ref() {
        None => (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.").into_response(),
        Some(lc) => {
            lc.quit.notify_one();
            (StatusCode::OK, "Requesting termination... Goodbye!").into_response()
        }
    }
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
