//! `/federate`: the newest sample (within the lookback delta) of every series matching any
//! `match[]`, in the text exposition format, grouped by metric name with `# TYPE ... untyped`
//! lines and external labels attached, as Prometheus' federation handler writes it.

use crate::handlers::{Params, St};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use vigil_model::{Labels, SelectHints, is_stale_nan, now_millis};

pub async fn federate(st: St, p: Params) -> Response {
    let st = st.0;
    let mut sets = Vec::new();
    for sel in p.all("match[]") {
        match st.engine.selector_matchers(sel) {
            Ok(ms) => sets.push(ms),
            Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        }
    }
    let external = (st.info.external_labels)();
    let maxt = now_millis();
    let mint = maxt - st.engine.options().lookback_delta_ms;
    let result = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let q = st.db.querier(mint, maxt).map_err(|e| e.to_string())?;
        let mut latest: BTreeMap<Labels, (i64, f64)> = BTreeMap::new();
        for ms in &sets {
            let hints = SelectHints {
                start: mint,
                end: maxt,
            };
            for s in q.select(ms, &hints).map_err(|e| e.to_string())? {
                if let Some(last) = s.samples.last()
                    && !is_stale_nan(last.v)
                {
                    latest.insert(s.labels, (last.t, last.v));
                }
            }
        }
        Ok(render(&latest, &external))
    })
    .await;
    match result {
        Ok(Ok(body)) => {
            let mut r = body.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// Series grouped by metric name (the map is sorted by label set, so by name first).
fn render(latest: &BTreeMap<Labels, (i64, f64)>, external: &Labels) -> String {
    let mut by_name: BTreeMap<&str, Vec<(&Labels, i64, f64)>> = BTreeMap::new();
    for (l, &(t, v)) in latest {
        by_name
            .entry(l.metric_name().unwrap_or(""))
            .or_default()
            .push((l, t, v));
    }
    let mut out = String::new();
    for (name, series) in by_name {
        out.push_str("# TYPE ");
        out.push_str(name);
        out.push_str(" untyped\n");
        for (l, t, v) in series {
            out.push_str(name);
            let mut pairs: Vec<(&str, &str)> = l
                .iter()
                .filter(|p| p.name != "__name__")
                .map(|p| (p.name.as_str(), p.value.as_str()))
                .collect();
            for e in external.iter() {
                if l.get(&e.name).is_none() {
                    pairs.push((&e.name, &e.value));
                }
            }
            if !pairs.is_empty() {
                out.push('{');
                for (i, (n, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(n);
                    out.push_str("=\"");
                    for c in v.chars() {
                        match c {
                            '\\' => out.push_str("\\\\"),
                            '"' => out.push_str("\\\""),
                            '\n' => out.push_str("\\n"),
                            c => out.push(c),
                        }
                    }
                    out.push('"');
                }
                out.push('}');
            }
            out.push(' ');
            // client_golang's writeFloat: 'g' shortest, with 0 (and so -0) written as "0".
            if v == 0.0 {
                out.push('0');
            } else {
                out.push_str(&vigil_model::gofmt::g(v, None));
            }
            out.push(' ');
            out.push_str(&t.to_string());
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_with_external_labels() {
        let mut m = BTreeMap::new();
        m.insert(
            Labels::from_pairs([("__name__", "up"), ("job", "a\"b")]),
            (1000, 1.0),
        );
        m.insert(
            Labels::from_pairs([("__name__", "up"), ("job", "x"), ("dc", "mine")]),
            (2000, 1e21),
        );
        let ext = Labels::from_pairs([("dc", "eu")]);
        assert_eq!(
            render(&m, &ext),
            "# TYPE up untyped\nup{dc=\"mine\",job=\"x\"} 1e+21 2000\nup{job=\"a\\\"b\",dc=\"eu\"} 1 1000\n"
        );
    }
}
