//! `/-/healthy`, `/-/ready`, and `/-/reload` and `/-/quit` (only with `--web.enable-lifecycle`).

use crate::handlers::St;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub async fn healthy() -> &'static str {
    "Prometheus Server is Healthy.\n"
}

pub async fn ready() -> &'static str {
    "Prometheus Server is Ready.\n"
}

pub async fn reload(st: St) -> Response {
    if st.lifecycle.is_none() {
        return (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.").into_response();
    }
    // Reloading reads files and builds clients: keep it off the async workers.
    let st2 = Arc::clone(&st.0);
    let result = tokio::task::spawn_blocking(move || {
        st2.lifecycle.as_ref().map_or(Ok(()), |lc| (lc.reload)())
    })
    .await
    .unwrap_or_else(|e| Err(format!("reload task failed: {e}")));
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}"),
        )
            .into_response(),
    }
}

pub async fn quit(st: St) -> Response {
    match st.lifecycle.as_ref() {
        None => (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.").into_response(),
        Some(lc) => {
            lc.quit.notify_one();
            (StatusCode::OK, "Requesting termination... Goodbye!").into_response()
        }
    }
}
