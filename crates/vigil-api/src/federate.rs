//! `/federate`: the newest sample (within the lookback delta) of every series matching any
//! `match[]`, in the text exposition format, grouped by metric name with `# TYPE ... untyped`
//! lines and external labels attached, as Prometheus' federation handler writes it.
//! Names that are not legacy-valid are escaped as the consumer's `Accept` header asks
//! (`escaping=`; `underscores` when it does not say), or written quoted under `allow-utf-8`.

use crate::handlers::{Params, St};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use vigil_model::names::{Escaping, escape_name, is_legacy_metric_name};
use vigil_model::{Labels, SelectHints, is_stale_nan, now_millis};

pub async fn federate(st: St, headers: HeaderMap, p: Params) -> Response {
    let st = st.0;
    let escaping = negotiate_escaping(
        headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
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
        Ok(render(&latest, &external, escaping))
    })
    .await;
    match result {
        Ok(Ok(body)) => {
            let mut r = body.into_response();
            let ct = format!(
                "text/plain; version=0.0.4; charset=utf-8; escaping={}",
                escaping.as_str()
            );
            if let Ok(v) = HeaderValue::from_str(&ct) {
                r.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            r
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// The escaping scheme for a federation response, as `expfmt.Negotiate` picks it: the
/// clauses of `Accept` in order of weight; the last valid `escaping=` seen up to the first
/// clause that text 0.0.4 satisfies wins, `underscores` when none is given. vigil answers
/// every request in the text format (Prometheus also offers protobuf).
fn negotiate_escaping(accept: &str) -> Escaping {
    let mut clauses: Vec<(f64, &str)> = accept
        .split(',')
        .map(|c| {
            let q = c
                .split(';')
                .skip(1)
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse().ok())
                .unwrap_or(1.0);
            (q, c)
        })
        .collect();
    clauses.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut scheme = Escaping::Underscores;
    for (_, clause) in clauses {
        let mut parts = clause.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut version = None;
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                match k.trim() {
                    "escaping" => scheme = Escaping::parse(v.trim()).unwrap_or(scheme),
                    "version" => version = Some(v.trim()),
                    _ => {}
                }
            }
        }
        let text = match media.as_str() {
            "*/*" | "text/*" => true,
            "text/plain" => version.is_none_or(|v| v == "0.0.4"),
            _ => false,
        };
        if text {
            break;
        }
    }
    scheme
}

/// A metric or label name as the text writer puts it: bare when legacy-valid, else quoted.
fn push_name(out: &mut String, name: &str) {
    if is_legacy_metric_name(name) {
        out.push_str(name);
    } else {
        out.push('"');
        push_escaped(out, name);
        out.push('"');
    }
}

fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A name escaped for the consumer: legacy-valid names pass unchanged (as Prometheus'
/// `EscapeMetricFamily` leaves them, even under `dots`).
fn escaped(name: &str, scheme: Escaping) -> std::borrow::Cow<'_, str> {
    if is_legacy_metric_name(name) {
        std::borrow::Cow::Borrowed(name)
    } else {
        escape_name(name, scheme)
    }
}

/// Series grouped by metric name (the map is sorted by label set, so by name first).
fn render(latest: &BTreeMap<Labels, (i64, f64)>, external: &Labels, scheme: Escaping) -> String {
    let mut by_name: BTreeMap<&str, Vec<(&Labels, i64, f64)>> = BTreeMap::new();
    for (l, &(t, v)) in latest {
        by_name
            .entry(l.metric_name().unwrap_or(""))
            .or_default()
            .push((l, t, v));
    }
    let mut out = String::new();
    for (name, series) in by_name {
        let name = escaped(name, scheme);
        let quoted = !is_legacy_metric_name(&name);
        out.push_str("# TYPE ");
        push_name(&mut out, &name);
        out.push_str(" untyped\n");
        for (l, t, v) in series {
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
            if quoted {
                out.push('{');
                push_name(&mut out, &name);
            } else {
                out.push_str(&name);
            }
            if !pairs.is_empty() || quoted {
                for (i, (n, v)) in pairs.iter().enumerate() {
                    if i > 0 || quoted {
                        out.push(',');
                    } else {
                        out.push('{');
                    }
                    push_name(&mut out, &escaped(n, scheme));
                    out.push_str("=\"");
                    push_escaped(&mut out, v);
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
            render(&m, &ext, Escaping::Underscores),
            "# TYPE up untyped\nup{dc=\"mine\",job=\"x\"} 1e+21 2000\nup{job=\"a\\\"b\",dc=\"eu\"} 1 1000\n"
        );
    }

    #[test]
    fn utf8_names_are_escaped_or_quoted_as_the_consumer_asks() {
        let mut m = BTreeMap::new();
        m.insert(
            Labels::from_pairs([
                ("__name__", "model.latency"),
                ("job", "x"),
                ("dc.zone", "a"),
            ]),
            (1000, 2.0),
        );
        m.insert(Labels::from_pairs([("__name__", "ok_total")]), (1000, 1.0));
        let ext = Labels::empty();
        let want = [
            (
                Escaping::Underscores,
                "# TYPE model_latency untyped\nmodel_latency{dc_zone=\"a\",job=\"x\"} 2 1000\n",
            ),
            (
                Escaping::Dots,
                "# TYPE model_dot_latency untyped\nmodel_dot_latency{dc_dot_zone=\"a\",job=\"x\"} 2 1000\n",
            ),
            (
                Escaping::Values,
                "# TYPE U__model_2e_latency untyped\nU__model_2e_latency{U__dc_2e_zone=\"a\",job=\"x\"} 2 1000\n",
            ),
            (
                Escaping::AllowUtf8,
                "# TYPE \"model.latency\" untyped\n{\"model.latency\",\"dc.zone\"=\"a\",job=\"x\"} 2 1000\n",
            ),
        ];
        for (scheme, head) in want {
            let got = render(&m, &ext, scheme);
            assert_eq!(
                got,
                format!("{head}# TYPE ok_total untyped\nok_total 1 1000\n"),
                "{scheme:?}"
            );
        }
        let mut bare = BTreeMap::new();
        bare.insert(Labels::from_pairs([("__name__", "a.b")]), (5, 1.0));
        assert_eq!(
            render(&bare, &ext, Escaping::AllowUtf8),
            "# TYPE \"a.b\" untyped\n{\"a.b\"} 1 5\n"
        );
    }

    #[test]
    fn accept_header_negotiation_follows_expfmt() {
        use Escaping::*;
        let cases = [
            ("", Underscores),
            ("text/plain;version=0.0.4", Underscores),
            // Prometheus 3's default scrape Accept.
            (
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
                AllowUtf8,
            ),
            // metric_name_escaping_scheme: dots.
            (
                "application/openmetrics-text;version=1.0.0;escaping=dots;q=0.6,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
                Dots,
            ),
            // Prometheus 2.42's Accept: no escaping parameter.
            (
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                Underscores,
            ),
            // A lower-weighted clause after the matching one does not count.
            ("text/plain;q=0.9,*/*;escaping=values;q=0.1", Underscores),
            ("*/*;escaping=values", Values),
            ("text/plain;escaping=bogus", Underscores),
        ];
        for (accept, want) in cases {
            assert_eq!(negotiate_escaping(accept), want, "{accept}");
        }
    }
}
