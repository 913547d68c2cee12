//! `/api/v1/rules` and `/api/v1/alerts` in Prometheus' JSON, from the rule manager's state.

use crate::handlers::{ApiError, Params, St, ok};
use axum::response::Response;
use serde_json::{Value as Json, json};
use vigil_model::Labels;
use vigil_rules::{Alert, Group, RuleKind};

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
    ms.map_or(
        "0001-01-01T00:00:00Z".to_string(),
        vigil_rules::notifier::rfc3339,
    )
}

fn alert(a: &Alert) -> Json {
    let mut o = json!({
        "labels": labels(&a.labels),
        "annotations": labels(&a.annotations),
        "state": a.state.as_str(),
        "activeAt": time(Some(a.active_at)),
        "value": vigil_model::gofmt::shortest_e(a.value),
    });
    if let Some(k) = a.keep_firing_since {
        o["keepFiringSince"] = json!(time(Some(k)));
    }
    o
}

fn group_json(g: &Group, want_alerts: bool, want_records: bool, names: &[&str]) -> Option<Json> {
    let mut rules = Vec::new();
    for r in &g.rules {
        if !names.is_empty() && !names.contains(&r.name()) {
            continue;
        }
        let mut o = match &r.kind {
            RuleKind::Alerting(a) if want_alerts => {
                let alerts: Vec<Json> = a
                    .alerts()
                    .into_iter()
                    .filter(|al| al.state != vigil_rules::AlertState::Inactive)
                    .map(alert)
                    .collect();
                json!({
                    "state": a.state().as_str(),
                    "name": a.name,
                    "query": a.expr,
                    "duration": a.hold_ms as f64 / 1000.0,
                    "keepFiringFor": a.keep_firing_for_ms as f64 / 1000.0,
                    "labels": pairs(&a.labels),
                    "annotations": pairs(&a.annotations),
                    "alerts": alerts,
                    "type": "alerting",
                })
            }
            RuleKind::Recording(rr) if want_records => json!({
                "name": rr.name,
                "query": rr.expr,
                "labels": pairs(&rr.labels),
                "type": "recording",
            }),
            _ => continue,
        };
        o["health"] = json!(r.health.as_str());
        if let Some(e) = &r.last_error {
            o["lastError"] = json!(e);
        }
        o["evaluationTime"] = json!(r.eval_seconds);
        o["lastEvaluation"] = json!(time(r.last_eval));
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
        "lastEvaluation": time(g.last_eval),
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
