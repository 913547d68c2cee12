//! PromQL endpoints: `/api/v1/query`, `/api/v1/query_range`, `/api/v1/query_exemplars`,
//! `/api/v1/format_query` and `/api/v1/parse_query`.
//!
//! Queries run on the blocking pool with a per-request engine whose timeout is the smaller of
//! `timeout` and `--query.timeout`; a client that goes away cancels its query.

use crate::handlers::{ApiError, Params, St, blocking, ok};
use crate::{json, params};
use axum::response::Response;
use std::sync::Arc;
use std::time::Duration;
use vigil_model::now_millis;
use vigil_promql::{Cancel, Engine, EngineOptions};

/// Cancels the query when the handler's future is dropped (the client disconnected).
struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// An engine with the request's `timeout` applied (never longer than the server's).
fn request_engine(base: &Engine, p: &Params) -> Result<Engine, ApiError> {
    let mut opts: EngineOptions = base.options().clone();
    if let Some(s) = p.non_empty("timeout") {
        let ms = params::parse_duration(s).map_err(|e| ApiError::bad_param("timeout", &e))?;
        if ms <= 0 {
            return Err(ApiError::bad_param(
                "timeout",
                "timeout must be a positive duration",
            ));
        }
        let d = Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX));
        opts.timeout = Some(opts.timeout.map_or(d, |t| t.min(d)));
    }
    Ok(Engine::new(opts))
}

/// The `stats` parameter: whether to include statistics (any non-empty value, as Prometheus
/// does), and Prometheus' deprecation warning for values other than `true` and `all`.
fn stats_param(p: &Params) -> (bool, Vec<String>) {
    match p.get("stats").unwrap_or("") {
        "" => (false, Vec::new()),
        "true" | "all" => (true, Vec::new()),
        other => (
            true,
            vec![format!(
                "value {other:?} for parameter \"stats\" is deprecated and will be rejected in the next major release, use \"true\" or \"all\""
            )],
        ),
    }
}

fn query_param(p: &Params) -> Result<String, ApiError> {
    match p.get("query") {
        Some(q) => Ok(q.to_string()),
        None => Err(ApiError::bad_param("query", "query parameter is missing")),
    }
}

pub async fn query(st: St, p: Params) -> Result<Response, ApiError> {
    let st = st.0;
    let t = p.time("time", now_millis())?;
    let engine = request_engine(&st.engine, &p)?;
    let query = query_param(&p)?;
    let cancel = CancelOnDrop(Cancel::new());
    let c = cancel.0.clone();
    let st2 = Arc::clone(&st);
    let out =
        blocking(move || Ok(engine.instant_query_sorted(st2.db.as_ref(), &query, t, Some(&c))?))
            .await?;
    drop(cancel);
    let (stats, warn) = stats_param(&p);
    ok(json::success_output_with(&out, stats, &warn))
}

pub async fn query_range(st: St, p: Params) -> Result<Response, ApiError> {
    let st = st.0;
    let need = |name: &str| -> Result<&str, ApiError> {
        p.non_empty(name).ok_or_else(|| {
            let what = if name == "step" {
                "duration"
            } else {
                "timestamp"
            };
            ApiError::bad_param(name, &format!("cannot parse \"\" to a valid {what}"))
        })
    };
    let start = params::parse_time(need("start")?).map_err(|e| ApiError::bad_param("start", &e))?;
    let end = params::parse_time(need("end")?).map_err(|e| ApiError::bad_param("end", &e))?;
    if end < start {
        return Err(ApiError::bad_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step =
        params::parse_duration(need("step")?).map_err(|e| ApiError::bad_param("step", &e))?;
    if step <= 0 {
        return Err(ApiError::bad_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    // Prometheus' limit: 11,000 points per series.
    if (end - start) / step > 11_000 {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let engine = request_engine(&st.engine, &p)?;
    let query = query_param(&p)?;
    let cancel = CancelOnDrop(Cancel::new());
    let c = cancel.0.clone();
    let st2 = Arc::clone(&st);
    let out = blocking(move || {
        Ok(engine.range_query(st2.db.as_ref(), &query, start, end, step, Some(&c))?)
    })
    .await?;
    drop(cancel);
    let (stats, warn) = stats_param(&p);
    ok(json::success_output_with(&out, stats, &warn))
}

/// `/api/v1/query_exemplars`: vigil stores no exemplars, so a valid request gets `[]`.
/// Grafana's probe sends milliseconds where seconds belong; they parse as far-future seconds.
pub async fn query_exemplars(st: St, p: Params) -> Result<Response, ApiError> {
    let (start, end) = p.time_range()?;
    let _ = (start, end);
    let query = query_param(&p)?;
    st.engine.parse(&query)?;
    ok(json::success_raw("[]"))
}

/// `/api/v1/format_query`: the query pretty-printed as Prometheus' `Pretty` does.
pub async fn format_query(st: St, p: Params) -> Result<Response, ApiError> {
    let query = query_param(&p)?;
    let expr = st.engine.parse(&query)?;
    let mut out = String::new();
    json::write_str(&mut out, &expr.prettify());
    ok(json::success_raw(&out))
}

/// `/api/v1/parse_query`: the syntax tree as JSON, in the shape Prometheus' UI reads.
pub async fn parse_query(st: St, p: Params) -> Result<Response, ApiError> {
    let query = query_param(&p)?;
    let expr = st.engine.parse(&query)?;
    ok(json::success_raw(&expr.to_json().to_string()))
}
