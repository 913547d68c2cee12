//! Status pages: `/api/v1/status/{config,flags,buildinfo,runtimeinfo,tsdb,walreplay}` and
//! `/api/v1/alertmanagers`. What the binary knows (flags, config, TSDB counters) comes in
//! through [`crate::ServerInfo`]; cardinality statistics are computed through the Querier.

use crate::handlers::{ApiError, Params, St, blocking, ok, rfc3339_millis};
use crate::json;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::HashMap;
use vigil_model::{Matcher, SelectHints};

/// The Prometheus release whose API and PromQL vigil follows. `buildinfo` reports it as
/// `version`, so clients that gate features on the server version (Grafana's version
/// detection, tools checking for >= 2.24 label matchers) treat vigil as a current Prometheus.
pub const PROMETHEUS_API_VERSION: &str = "3.5.0";

pub async fn buildinfo(st: St) -> Result<Response, ApiError> {
    // No `features` key: with it Grafana takes the server for Mimir and tries its ruler API.
    let data = json!({
        "version": PROMETHEUS_API_VERSION,
        "revision": format!("vigil-{}", st.version),
        "branch": "vigil",
        "buildUser": "vigil",
        "buildDate": "",
        "goVersion": "rust",
    });
    ok(json::success_raw(&data.to_string()))
}

pub async fn config(st: St) -> Result<Response, ApiError> {
    let yaml = (st.info.config_yaml)();
    ok(json::success_raw(&json!({ "yaml": yaml }).to_string()))
}

pub async fn flags(st: St) -> Result<Response, ApiError> {
    let map: serde_json::Map<String, serde_json::Value> = st
        .info
        .flags
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    ok(json::success_raw(
        &serde_json::Value::Object(map).to_string(),
    ))
}

pub async fn runtimeinfo(st: St) -> Result<Response, ApiError> {
    let (reload_ok, last_reload_s) = (st.info.reload_status)();
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let tasks = tokio::runtime::Handle::try_current()
        .map(|h| h.metrics().num_alive_tasks())
        .unwrap_or(0);
    let procs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let corruptions = st.info.tsdb.as_ref().map_or(0, |t| t.corruption_count());
    let data = json!({
        "startTime": rfc3339_millis(st.info.start_time_ms),
        "CWD": cwd,
        "reloadConfigSuccess": reload_ok,
        "lastConfigTime": rfc3339_millis(last_reload_s.saturating_mul(1000)),
        "corruptionCount": corruptions,
        "goroutineCount": tasks,
        "GOMAXPROCS": procs,
        "GOMEMLIMIT": i64::MAX,
        "GOGC": "",
        "GODEBUG": "",
        "storageRetention": st.info.storage_retention,
    });
    ok(json::success_raw(&data.to_string()))
}

pub async fn walreplay(st: St) -> Result<Response, ApiError> {
    let w = st
        .info
        .tsdb
        .as_ref()
        .map(|t| t.wal_replay())
        .unwrap_or_default();
    ok(json::success_raw(
        &json!({"min": w.min, "max": w.max, "current": w.current}).to_string(),
    ))
}

pub async fn alertmanagers(st: St) -> Result<Response, ApiError> {
    let active: Vec<serde_json::Value> = (st.info.alertmanagers)()
        .into_iter()
        .map(|url| json!({ "url": url }))
        .collect();
    let dropped: Vec<serde_json::Value> = (st.info.dropped_alertmanagers)()
        .into_iter()
        .map(|url| json!({ "url": url }))
        .collect();
    ok(json::success_raw(
        &json!({"activeAlertmanagers": active, "droppedAlertmanagers": dropped}).to_string(),
    ))
}

/// `/api/v1/status/tsdb`: head statistics and the top-`limit` (default 10) cardinalities.
pub async fn tsdb(st: St, p: Params) -> Result<Response, ApiError> {
    let st = st.0;
    let limit = match p.non_empty("limit") {
        None => 10,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n > 10_000 => {
                return Err(ApiError::bad_data("limit must not exceed 10000"));
            }
            Ok(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
            _ => return Err(ApiError::bad_data("limit must be a positive number")),
        },
    };
    let head = st.info.tsdb.as_ref().map(|t| t.head());
    let data = blocking(move || {
        let (mint, maxt) = match &head {
            Some(h) if h.min_time <= h.max_time => (h.min_time, h.max_time),
            _ => (crate::handlers::MIN_TIME, crate::handlers::MAX_TIME),
        };
        let c = Cardinality::collect(st.db.as_ref(), mint, maxt)?;
        let head = head.unwrap_or(HeadStats {
            num_series: c.series as u64,
            chunk_count: 0,
            min_time: mint.max(0),
            max_time: maxt.max(0),
        });
        Ok(json!({
            "headStats": {
                "numSeries": head.num_series,
                "numLabelPairs": c.label_pairs.len(),
                "chunkCount": head.chunk_count,
                "minTime": head.min_time,
                "maxTime": head.max_time,
            },
            "seriesCountByMetricName": top(&c.by_metric, limit),
            "labelValueCountByLabelName": top(&c.values_by_name, limit),
            "memoryInBytesByLabelName": top(&c.bytes_by_name, limit),
            "seriesCountByLabelValuePair": top(&c.label_pairs, limit),
        }))
    })
    .await?;
    ok(json::success_raw(&data.to_string()))
}

/// Head numbers the TSDB reports.
#[derive(Debug, Clone, Default)]
pub struct HeadStats {
    pub num_series: u64,
    pub chunk_count: u64,
    pub min_time: i64,
    pub max_time: i64,
}

/// WAL replay progress, in segment numbers.
#[derive(Debug, Clone, Default)]
pub struct WalReplay {
    pub min: i64,
    pub max: i64,
    pub current: i64,
}

/// What the status pages need from the storage engine.
pub trait TsdbStatus: Send + Sync {
    fn head(&self) -> HeadStats;
    fn wal_replay(&self) -> WalReplay;
    fn corruption_count(&self) -> u64 {
        0
    }
    /// The blocks' `meta.json` contents, oldest first (`/api/v1/status/tsdb/blocks`).
    fn block_metas(&self) -> Vec<serde_json::Value> {
        Vec::new()
    }
}

/// `/api/v1/openapi.yaml`: the API's OpenAPI description (docs/openapi.yaml, built in).
pub async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/yaml")],
        include_str!("../../../docs/openapi.yaml"),
    )
        .into_response()
}

/// `/api/v1/status/tsdb/blocks`: every block's metadata, as Prometheus 3 lists them.
pub async fn tsdb_blocks(st: St) -> Result<Response, ApiError> {
    let blocks =
        st.0.info
            .tsdb
            .as_ref()
            .map(|t| t.block_metas())
            .unwrap_or_default();
    let data = serde_json::json!({ "blocks": blocks });
    ok(json::success_raw(&data.to_string()))
}

#[derive(Default)]
struct Cardinality {
    series: usize,
    by_metric: HashMap<String, u64>,
    values_by_name: HashMap<String, u64>,
    bytes_by_name: HashMap<String, u64>,
    label_pairs: HashMap<String, u64>,
}

impl Cardinality {
    fn collect(
        db: &dyn vigil_model::Queryable,
        mint: i64,
        maxt: i64,
    ) -> Result<Cardinality, ApiError> {
        let q = db.querier(mint, maxt)?;
        let all =
            Matcher::regex("__name__", ".+").map_err(|e| ApiError::internal(e.to_string()))?;
        let mut c = Cardinality::default();
        for s in q.select(
            &[all],
            &SelectHints {
                start: mint,
                end: maxt,
            },
        )? {
            c.series += 1;
            for l in s.labels.iter() {
                if l.name == "__name__" {
                    *c.by_metric.entry(l.value.clone()).or_default() += 1;
                }
                let pair = format!("{}={}", l.name, l.value);
                let n = c.label_pairs.entry(pair).or_default();
                if *n == 0 {
                    *c.values_by_name.entry(l.name.clone()).or_default() += 1;
                    *c.bytes_by_name.entry(l.name.clone()).or_default() += l.value.len() as u64;
                }
                *n += 1;
            }
        }
        Ok(c)
    }
}

/// The `limit` largest entries as `[{"name":..,"value":..}]`, largest first, ties by name.
fn top(m: &HashMap<String, u64>, limit: usize) -> serde_json::Value {
    let mut v: Vec<(&String, &u64)> = m.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    v.into_iter()
        .take(limit)
        .map(|(k, n)| json!({"name": k, "value": n}))
        .collect::<Vec<_>>()
        .into()
}

/// `/api/v1/features`: what this server supports, by Prometheus 3.14's categories and
/// names (`{"promql_functions":{"rate":true,"info":false,…},"tsdb":{"native_histograms":true,…}}`),
/// so clients that probe Prometheus' features see vigil's honestly.
pub async fn features(st: St) -> Result<Response, ApiError> {
    let flag = |name: &str| {
        st.0.info
            .flags
            .iter()
            .any(|(n, v)| n == name && v == "true")
    };
    // The parser's function table: vigil evaluates every function it knows (the experimental
    // ones are always on).
    let functions: serde_json::Map<String, serde_json::Value> =
        vigil_promql_parser::functions::FUNCTIONS
            .iter()
            .map(|f| (f.name.to_string(), serde_json::Value::Bool(true)))
            .collect();
    let operators: serde_json::Map<String, serde_json::Value> = [
        "+",
        "-",
        "*",
        "/",
        "%",
        "^",
        "==",
        "!=",
        ">",
        "<",
        ">=",
        "<=",
        "and",
        "or",
        "unless",
        "atan2",
        "sum",
        "avg",
        "count",
        "min",
        "max",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "count_values",
        "quantile",
        "limitk",
        "limit_ratio",
        "</",
        ">/",
    ]
    .iter()
    .map(|o| (o.to_string(), serde_json::Value::Bool(true)))
    .collect();
    let data = json!({
        "api": {
            "admin": flag("web.enable-admin-api"),
            "lifecycle": flag("web.enable-lifecycle"),
            "otlp_write_receiver": flag("web.enable-otlp-receiver"),
            "remote_write_receiver": flag("web.enable-remote-write-receiver"),
        },
        "prometheus": {
            "agent_mode": false,
            "server_mode": true,
            "auto_reload_config": false,
        },
        "promql": {
            "at_modifier": true,
            "negative_offset": true,
            "per_step_stats": false,
            "delayed_name_removal": true,
            "type_and_unit_labels": false,
            "per_query_lookback_delta": false,
            "subqueries": true,
            "duration_expr": true,
            "anchored": true,
            "smoothed": true,
            "fill": true,
            "fill_left": true,
            "fill_right": true,
        },
        "promql_functions": functions,
        "promql_operators": operators,
        "rules": {
            "concurrent_rule_eval": false,
            "keep_firing_for": true,
            "query_offset": true,
        },
        "scrape": {
            "extra_scrape_metrics": false,
            "start_timestamp_zero_ingestion": false,
            "type_and_unit_labels": false,
        },
        "service_discovery_providers": {
            "consul": true,
            "file": true,
            "http": true,
            "static": true,
        },
        "tsdb": {
            "delayed_compaction": false,
            "exemplar_storage": false,
            "histograms_st_encoding": false,
            "isolation": true,
            "native_histograms": true,
            "st_storage": false,
            "use_uncached_io": false,
            "xor2_encoding": false,
        },
    });
    ok(json::success_raw(&data.to_string()))
}

/// `/api/v1/notifications`: the current server notifications.
pub async fn notifications(st: St) -> Result<Response, ApiError> {
    let list = st.info.notifications.get();
    ok(json::success_raw(
        &serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()),
    ))
}

/// `/api/v1/notifications/live`: the same, as server-sent events.
pub async fn notifications_live(st: St) -> Response {
    crate::notifications::live(&st.info.notifications)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_orders_by_count_then_name() {
        let m: HashMap<String, u64> = [("b".into(), 2), ("a".into(), 2), ("c".into(), 5)]
            .into_iter()
            .collect();
        assert_eq!(
            top(&m, 2).to_string(),
            r#"[{"name":"c","value":5},{"name":"a","value":2}]"#
        );
    }
}
