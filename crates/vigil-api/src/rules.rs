//! `/api/v1/rules` and `/api/v1/alerts` in Prometheus' JSON, from the [`RulesRetriever`].

use crate::handlers::{ApiError, Params, St, ok};
use crate::retrieve::{AlertStatus, GroupStatus, RuleDetail};
use axum::response::Response;
use serde_json::{Value as Json, json};
use vigil_model::Labels;

fn labels(l: &Labels) -> Json {
    Json::Object(
        l.iter()
            .map(|l| (l.name.clone(), Json::String(l.value.clone())))
            .collect(),
    )
}

fn pairs(p: &[(String, String)]) -> Json {
    Json::Object(
        p.iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect(),
    )
}

fn time(ms: Option<i64>) -> String {
    ms.map_or("0001-01-01T00:00:00Z".to_string(), crate::rfc3339_millis)
}

fn alert(a: &AlertStatus) -> Json {
    let mut o = json!({
        "labels": labels(&a.labels),
        "annotations": labels(&a.annotations),
        "state": a.state,
        "activeAt": time(Some(a.active_at_ms)),
        "value": vigil_model::gofmt::shortest_e(a.value),
    });
    if let Some(k) = a.keep_firing_since_ms {
        o["keepFiringSince"] = json!(time(Some(k)));
    }
    o
}

fn group_json(
    g: &GroupStatus,
    want_alerts: bool,
    want_records: bool,
    names: &[&str],
) -> Option<Json> {
    let mut rules = Vec::new();
    for r in &g.rules {
        if !names.is_empty() && !names.contains(&r.name.as_str()) {
            continue;
        }
        let mut o = match &r.detail {
            RuleDetail::Alerting {
                state,
                hold_ms,
                keep_firing_for_ms,
                annotations,
                alerts,
            } if want_alerts => {
                let alerts: Vec<Json> = alerts
                    .iter()
                    .filter(|al| al.state != "inactive")
                    .map(alert)
                    .collect();
                json!({
                    "state": state,
                    "name": r.name,
                    "query": r.query,
                    "duration": *hold_ms as f64 / 1000.0,
                    "keepFiringFor": *keep_firing_for_ms as f64 / 1000.0,
                    "labels": pairs(&r.labels),
                    "annotations": pairs(annotations),
                    "alerts": alerts,
                    "type": "alerting",
                })
            }
            RuleDetail::Recording if want_records => json!({
                "name": r.name,
                "query": r.query,
                "labels": pairs(&r.labels),
                "type": "recording",
            }),
            _ => continue,
        };
        o["health"] = json!(r.health);
        if let Some(e) = &r.last_error {
            o["lastError"] = json!(e);
        }
        o["evaluationTime"] = json!(r.eval_seconds);
        o["lastEvaluation"] = json!(time(r.last_eval_ms));
        rules.push(o);
    }
    if rules.is_empty() && (!want_alerts || !want_records || !names.is_empty()) {
        return None;
    }
    Some(json!({
        "name": g.name,
        "file": g.file,
        "rules": rules,
        "interval": g.interval_ms as f64 / 1000.0,
        "limit": g.limit,
        "evaluationTime": g.last_duration_s,
        "lastEvaluation": time(g.last_eval_ms),
    }))
}

/// `/api/v1/rules?type=alert|record&rule_name[]=&rule_group[]=&file[]=`.
pub async fn rules(st: St, p: Params) -> Result<Response, ApiError> {
    let (want_alerts, want_records) = match p.non_empty("type") {
        None => (true, true),
        Some("alert") => (true, false),
        Some("record") => (false, true),
        Some(other) => {
            return Err(ApiError::bad_data(format!(
                "invalid query parameter type='{other}': not supported value \"{other}\""
            )));
        }
    };
    let names = p.all("rule_name[]");
    let groups_filter = p.all("rule_group[]");
    let files = p.all("file[]");
    let groups: Vec<Json> = st
        .rules
        .as_ref()
        .map(|m| m.groups())
        .unwrap_or_default()
        .iter()
        .filter(|g| groups_filter.is_empty() || groups_filter.contains(&g.name.as_str()))
        .filter(|g| files.is_empty() || files.contains(&g.file.as_str()))
        .filter_map(|g| group_json(g, want_alerts, want_records, &names))
        .collect();
    ok(crate::json::success_raw(
        &json!({ "groups": groups }).to_string(),
    ))
}

/// `/api/v1/alerts`: every pending and firing alert.
pub async fn alerts(st: St) -> Result<Response, ApiError> {
    let alerts: Vec<Json> = st
        .rules
        .as_ref()
        .map(|m| m.alerts())
        .unwrap_or_default()
        .iter()
        .map(alert)
        .collect();
    ok(crate::json::success_raw(
        &json!({ "alerts": alerts }).to_string(),
    ))
}
