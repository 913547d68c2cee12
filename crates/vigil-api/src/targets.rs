//! What the [`TargetRetriever`](crate::TargetRetriever) knows: `/api/v1/targets`, `/api/v1/targets/metadata` and
//! `/api/v1/metadata` (metric types, help and units from the scraped expositions).

use crate::handlers::{ApiError, Params, St, labels_json, ok, rfc3339_millis};
use crate::json;
use axum::response::Response;

/// `/api/v1/targets` with Prometheus' `state` (active, dropped, any) and `scrapePool` filters.
pub async fn targets(st: St, p: Params) -> Result<Response, ApiError> {
    let st = st.0;
    let state = p.get("state").unwrap_or("any").to_ascii_lowercase();
    let pool = p.non_empty("scrapePool");
    let (want_active, want_dropped) = (
        state == "active" || state == "any" || state.is_empty(),
        state == "dropped" || state == "any" || state.is_empty(),
    );
    let Some(scrape) = st.scrape.as_ref() else {
        return ok(json::success_raw(
            r#"{"activeTargets":[],"droppedTargets":[],"droppedTargetCounts":{}}"#,
        ));
    };
    let external = st.info.external_url.trim_end_matches('/').to_string();
    let mut data = serde_json::Map::new();
    if want_active {
        let active: Vec<serde_json::Value> = scrape
            .active()
            .iter()
            .filter(|t| pool.is_none_or(|p| p == t.pool))
            .map(|t| {
                serde_json::json!({
                    "discoveredLabels": labels_json(&t.discovered),
                    "labels": labels_json(&t.labels),
                    "scrapePool": t.pool,
                    "scrapeUrl": t.url,
                    "globalUrl": global_url(&t.url, &external),
                    "lastError": t.last_error,
                    "lastScrape": rfc3339_millis(t.last_scrape_ms),
                    "lastScrapeDuration": t.last_scrape_duration,
                    "health": t.health,
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
            counts.insert(
                job.clone(),
                dropped.iter().filter(|d| d.pool == job).count().into(),
            );
        }
        let list: Vec<serde_json::Value> = dropped
            .iter()
            .filter(|d| pool.is_none_or(|p| p == d.pool))
            .map(|d| {
                serde_json::json!({"discoveredLabels": labels_json(&d.discovered), "scrapePool": d.pool})
            })
            .collect();
        data.insert("droppedTargets".into(), list.into());
        data.insert("droppedTargetCounts".into(), counts.into());
    }
    ok(json::success_raw(
        &serde_json::Value::Object(data).to_string(),
    ))
}

/// Prometheus' `globalUrl`: the scrape URL with a loopback host replaced by the external URL's
/// host, so links work from elsewhere. Without an external URL it is the scrape URL.
fn global_url(scrape_url: &str, external: &str) -> String {
    let host_of = |u: &str| -> Option<String> {
        let rest = u.split_once("://")?.1;
        let authority = rest.split(['/', '?']).next()?;
        Some(
            authority
                .rsplit_once(':')
                .map_or(authority, |(h, _)| h)
                .to_string(),
        )
    };
    let (Some(host), Some(ext_host)) = (host_of(scrape_url), host_of(external)) else {
        return scrape_url.to_string();
    };
    if matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]") && host != ext_host {
        scrape_url.replacen(&host, &ext_host, 1)
    } else {
        scrape_url.to_string()
    }
}

/// `/api/v1/targets/metadata`: `match_target` (a selector over target labels), `metric`, `limit`.
pub async fn targets_metadata(st: St, p: Params) -> Result<Response, ApiError> {
    let st = st.0;
    let matchers = match p.non_empty("match_target") {
        Some(sel) => st
            .engine
            .selector_matchers(sel)
            .map_err(|e| ApiError::bad_param("match_target", &e.to_string()))?,
        None => Vec::new(),
    };
    let metric = p.non_empty("metric");
    let limit = p.limit()?;
    let mut out = Vec::new();
    for t in st.scrape.as_ref().map(|s| s.active()).unwrap_or_default() {
        if !matchers
            .iter()
            .all(|m| m.matches(t.labels.get(&m.name).unwrap_or("")))
        {
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
    ok(json::success_raw(
        &serde_json::Value::Array(out).to_string(),
    ))
}

/// `/api/v1/metadata`: metric name → distinct metadata over all targets; `metric`, `limit`,
/// `limit_per_metric`.
pub async fn metadata(st: St, p: Params) -> Result<Response, ApiError> {
    let st = st.0;
    let metric = p.non_empty("metric");
    let limit = p.limit()?;
    let per_metric = match p.non_empty("limit_per_metric") {
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n <= 0 => None,
            Ok(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            Err(_) => {
                return Err(ApiError::bad_param(
                    "limit_per_metric",
                    &format!("cannot parse {s:?}: must be an integer"),
                ));
            }
        },
        None => None,
    };
    let mut all: std::collections::BTreeMap<String, Vec<vigil_model::MetricMetadata>> =
        Default::default();
    for t in st.scrape.as_ref().map(|s| s.active()).unwrap_or_default() {
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
        let items: Vec<serde_json::Value> = list
            .iter()
            .map(|m| serde_json::json!({"type": m.kind, "help": m.help, "unit": m.unit}))
            .collect();
        data.insert(name, items.into());
    }
    ok(json::success_raw(
        &serde_json::Value::Object(data).to_string(),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn global_url_uses_external_host_for_loopback() {
        assert_eq!(
            super::global_url("http://localhost:9100/metrics", "http://prom.example:9090"),
            "http://prom.example:9100/metrics"
        );
        assert_eq!(
            super::global_url("http://10.0.0.1:9100/metrics", "http://prom.example:9090"),
            "http://10.0.0.1:9100/metrics"
        );
        assert_eq!(
            super::global_url("http://localhost:9100/metrics", ""),
            "http://localhost:9100/metrics"
        );
    }
}
