//! The TSDB admin endpoints (`/api/v1/admin/tsdb/{snapshot,delete_series,clean_tombstones}`),
//! served only with `--web.enable-admin-api`; otherwise they answer as Prometheus does,
//! 503 `unavailable` "admin APIs disabled".

use crate::handlers::{ApiError, Params, St, blocking, ok};
use crate::json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use vigil_model::{Matcher, Timestamp};

/// What the admin endpoints ask of the storage engine.
pub trait TsdbAdmin: Send + Sync {
    /// Writes a snapshot under `<data>/snapshots/` and returns its directory name.
    fn snapshot(&self, skip_head: bool) -> Result<String, AdminError>;
    /// Deletes the samples of series matching any of `selectors` within `[start, end]`.
    fn delete_series(
        &self,
        selectors: &[Vec<Matcher>],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<(), AdminError>;
    /// Rewrites data without deleted samples.
    fn clean_tombstones(&self) -> Result<(), AdminError>;
}

/// Why an admin operation did not happen.
#[derive(Debug)]
pub enum AdminError {
    /// The storage cannot do this (501, `unavailable`).
    Unsupported(String),
    /// It tried and failed (500, `internal`, as Prometheus).
    Failed(String),
}

impl From<String> for AdminError {
    fn from(s: String) -> Self {
        AdminError::Failed(s)
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Unsupported(m) => {
                ApiError::unavailable(m).with_status(StatusCode::NOT_IMPLEMENTED)
            }
            AdminError::Failed(m) => ApiError::internal(m),
        }
    }
}

fn admin(st: &crate::ApiState) -> Result<Arc<dyn TsdbAdmin>, ApiError> {
    st.info
        .admin
        .clone()
        .ok_or_else(|| ApiError::unavailable("admin APIs disabled"))
}

pub async fn snapshot(st: St, p: Params) -> Result<Response, ApiError> {
    let a = admin(&st)?;
    let skip_head = match p.non_empty("skip_head") {
        None => false,
        Some(s) => parse_bool(s).ok_or_else(|| {
            ApiError::bad_data(format!(
                "unable to parse boolean 'skip_head' argument: {s:?}"
            ))
        })?,
    };
    let name = blocking(move || Ok(a.snapshot(skip_head)?)).await?;
    ok(json::success_raw(
        &serde_json::json!({ "name": name }).to_string(),
    ))
}

pub async fn delete_series(st: St, p: Params) -> Result<Response, ApiError> {
    let a = admin(&st)?;
    let sets = p.matchers(&st)?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = p.time_range()?;
    blocking(move || Ok(a.delete_series(&sets, start, end)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn clean_tombstones(st: St) -> Result<Response, ApiError> {
    let a = admin(&st)?;
    blocking(move || Ok(a.clean_tombstones()?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}
