//! Replays, against the real binary, the requests Grafana's Prometheus data source sends
//! (../shared/testdata/grafana/README.md): "Save & test", buildinfo, the metrics browser
//! (label names and values with `match[]` and `U__` names, series, metadata), dashboard panels
//! as form POSTs of `query_range` with Grafana's fields, instant queries, annotations, the
//! exemplar probe, error bodies and gzip, and checks every response field Grafana reads.

mod common;

use common::*;
use serde_json::Value;
use std::io::Read;
use std::time::Duration;

struct Client {
    http: reqwest::blocking::Client,
    base: String,
}

struct Resp {
    status: u16,
    encoding: Option<String>,
    json: Value,
}

impl Client {
    fn new(port: u16) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client {
            // Grafana's Go client asks for gzip; decode by hand to see the encoding.
            http: reqwest::blocking::Client::builder()
                .no_gzip()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn finish(r: reqwest::blocking::Response) -> Resp {
        let status = r.status().as_u16();
        let encoding = r
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = r.bytes().unwrap();
        let text = if encoding.as_deref() == Some("gzip") {
            let mut s = String::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut s)
                .unwrap();
            s
        } else {
            String::from_utf8(bytes.to_vec()).unwrap()
        };
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {status}: {text}"));
        Resp {
            status,
            encoding,
            json,
        }
    }

    /// A form POST as Grafana's backend sends it: keys sorted, `+` for spaces.
    fn post(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        let mut pairs: Vec<(&str, &str)> = form.to_vec();
        pairs.sort();
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        Self::finish(
            self.http
                .post(format!("{}{path}", self.base))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .header("Accept-Encoding", "gzip")
                .header("User-Agent", "Grafana/12.3.0")
                .header("X-Grafana-Org-Id", "1")
                .body(body)
                .send()
                .unwrap(),
        )
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Resp {
        let q = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        let sep = if q.is_empty() { "" } else { "?" };
        Self::finish(
            self.http
                .get(format!("{}{path}{sep}{q}", self.base))
                .header("Accept-Encoding", "gzip")
                .send()
                .unwrap(),
        )
    }
}

/// What Grafana's converter requires of a successful query response.
fn check_query_result(r: &Resp, want_type: &str) -> Vec<Value> {
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["status"], "success", "{}", r.json);
    let data = &r.json["data"];
    assert_eq!(data["resultType"], want_type, "{}", r.json);
    for key in ["warnings", "infos"] {
        if let Some(w) = r.json.get(key) {
            assert!(w.as_array().unwrap().iter().all(Value::is_string));
        }
    }
    match want_type {
        "matrix" | "vector" => {
            let result = data["result"].as_array().unwrap().clone();
            for s in &result {
                assert!(
                    s["metric"]
                        .as_object()
                        .unwrap()
                        .values()
                        .all(Value::is_string)
                );
                let points: Vec<&Value> = if want_type == "matrix" {
                    s["values"].as_array().unwrap().iter().collect()
                } else {
                    vec![&s["value"]]
                };
                for p in points {
                    check_point(p);
                }
            }
            result
        }
        _ => {
            check_point(&data["result"]);
            vec![data["result"].clone()]
        }
    }
}

/// `[<number>, "<Go ParseFloat-able string>"]`.
fn check_point(p: &Value) {
    let a = p.as_array().unwrap();
    assert_eq!(a.len(), 2, "{p}");
    assert!(a[0].is_number(), "timestamp must be a JSON number: {p}");
    let v = a[1].as_str().expect("value must be a JSON string");
    assert!(
        matches!(v, "NaN" | "+Inf" | "-Inf") || v.parse::<f64>().is_ok(),
        "{v}"
    );
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn grafana_prometheus_data_source() {
    let (_sim, base) = start_targets(2, 200, 3_600_000);
    let cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: synth\n    static_configs:\n      - targets: ['127.0.0.1:{}', '127.0.0.1:{}']\n",
        base,
        base + 1
    );
    let (_vigil, port, _dir) = start_vigil(&cfg);
    let c = Client::new(port);
    wait_for(Duration::from_secs(20), "three scrapes", || {
        let r = c.post("/api/v1/query", &[("query", "count_over_time(up[1m])")]);
        r.json["data"]["result"].as_array().is_some_and(|a| {
            a.len() == 2
                && a.iter()
                    .all(|s| s["value"][1] == "3" || s["value"][1] == "4")
        })
    });
    let now = now_s();

    // 2.1 "Save & test": 1+1 at t=4, exactly HTTP 200.
    let r = c.post("/api/v1/query", &[("query", "1+1"), ("time", "4")]);
    assert_eq!(
        serde_json::to_string(&r.json).unwrap(),
        r#"{"data":{"result":[4,"2"],"resultType":"scalar"},"status":"success"}"#
    );
    assert_eq!(
        r.encoding.as_deref(),
        Some("gzip"),
        "gzip when asked, as Prometheus"
    );
    // GET mode sends the same in the URL.
    let r = c.get("/api/v1/query", &[("query", "1+1"), ("time", "4")]);
    check_query_result(&r, "scalar");

    // 2.2 buildinfo: Prometheus-shaped, no `features` (else Grafana assumes Mimir).
    let r = c.get("/api/v1/status/buildinfo", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json["status"], "success");
    let d = r.json["data"].as_object().unwrap();
    for k in [
        "version",
        "revision",
        "branch",
        "buildUser",
        "buildDate",
        "goVersion",
    ] {
        assert!(d[k].is_string(), "buildinfo.{k}");
    }
    assert!(!d.contains_key("features"));
    let version: Vec<u32> = d["version"]
        .as_str()
        .unwrap()
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(
        version.len() == 3 && version >= vec![2, 24, 0],
        "a semver at least 2.24.0, so Grafana uses the labels match[] API"
    );

    // 5.2 editor opens: rules (errors ignored, but must be JSON) and the exemplar probe in ms.
    let r = c.get("/api/v1/rules", &[]);
    assert_eq!(r.json["status"], "success", "{}", r.json);
    let (ms_now, ms_start) = ((now * 1000).to_string(), ((now - 1800) * 1000).to_string());
    let r = c.post(
        "/api/v1/query_exemplars",
        &[("query", "test"), ("start", &ms_start), ("end", &ms_now)],
    );
    assert_eq!(r.json["status"], "success", "{}", r.json);
    assert!(r.json["data"].is_array());

    // 5.3 metrics browser: names, label names and metadata in parallel, start/end snapped.
    let (s, e) = (
        (now / 60 * 60 - 3600).to_string(),
        ((now / 60 + 1) * 60).to_string(),
    );
    let limit = "40000";
    let r = c.get(
        "/api/v1/label/__name__/values",
        &[("limit", limit), ("start", &s), ("end", &e)],
    );
    assert_eq!(r.status, 200);
    let names = strings(&r.json["data"]);
    assert!(
        names.contains(&"up".to_string()) && names.contains(&"http_requests_total".to_string()),
        "{names:?}"
    );
    assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
    let r = c.post(
        "/api/v1/labels",
        &[("limit", limit), ("start", &s), ("end", &e)],
    );
    let labels = strings(&r.json["data"]);
    for l in ["__name__", "instance", "job"] {
        assert!(labels.contains(&l.to_string()), "{labels:?}");
    }
    let r = c.get("/api/v1/metadata", &[("limit", limit)]);
    assert_eq!(r.status, 200);
    let meta = r.json["data"].as_object().unwrap();
    let m = &meta["http_requests_total"][0];
    assert_eq!(m["type"], "counter");
    assert!(m["help"].is_string() && m["unit"].is_string());

    // 5.4 label values and filtered label names with match[]; U__ escaping of the name.
    let sel = r#"{__name__="up",job="synth"}"#;
    let r = c.get(
        "/api/v1/label/instance/values",
        &[
            ("limit", limit),
            ("start", &s),
            ("end", &e),
            ("match[]", sel),
        ],
    );
    assert_eq!(
        strings(&r.json["data"]),
        vec![
            format!("127.0.0.1:{base}"),
            format!("127.0.0.1:{}", base + 1)
        ]
    );
    let r = c.get(
        "/api/v1/label/U__inst_61_nce/values",
        &[("start", &s), ("end", &e), ("match[]", sel)],
    );
    assert_eq!(strings(&r.json["data"]).len(), 2, "{}", r.json);
    let r = c.post(
        "/api/v1/labels",
        &[
            ("limit", limit),
            ("start", &s),
            ("end", &e),
            ("match[]", sel),
        ],
    );
    assert_eq!(
        strings(&r.json["data"]),
        vec!["__name__", "instance", "job"]
    );
    // The suggestions path POSTs label values with parameters in the URL.
    let r = c.post(
        &format!("/api/v1/label/job/values?match[]={}&limit=1", enc(sel)),
        &[],
    );
    assert_eq!(strings(&r.json["data"]), vec!["synth"]);
    // limit truncates, with Prometheus' warning.
    let r = c.get("/api/v1/label/__name__/values", &[("limit", "1")]);
    assert_eq!(strings(&r.json["data"]).len(), 1);
    assert_eq!(r.json["warnings"][0], "results truncated due to limit");

    // 5.5 series-endpoint mode.
    let (cs, ce) = ((now - 3600).to_string(), (now + 1).to_string());
    let r = c.post(
        "/api/v1/series",
        &[
            ("start", &cs),
            ("end", &ce),
            ("match[]", r#"{__name__!=""}"#),
            ("limit", limit),
        ],
    );
    assert_eq!(r.status, 200);
    let series = r.json["data"].as_array().unwrap();
    assert!(series.len() > 100, "{}", series.len());
    assert!(series.iter().all(
        |s| s["__name__"].is_string() && s.as_object().unwrap().values().all(Value::is_string)
    ));
    assert!(
        r.encoding.as_deref() == Some("gzip"),
        "large answers are gzipped"
    );

    // 3.4 dashboard panel: POST query_range with Grafana's fields, start/end aligned to step,
    // a compound `$__rate_interval`, stats=all and a custom parameter in the URL.
    let step = 20;
    // (The end is rounded up here so the few seconds of data fall inside the range.)
    let (ps, pe) = ((now - 300) / step * step, (now / step + 1) * step);
    let r = c.post(
        "/api/v1/query_range?stats=all&customParam=1",
        &[
            ("query", "sum by (job) (rate(http_requests_total[1m0s]))"),
            ("start", &ps.to_string()),
            ("end", &pe.to_string()),
            ("step", &step.to_string()),
            ("timeout", "60s"),
        ],
    );
    let result = check_query_result(&r, "matrix");
    assert_eq!(result.len(), 1, "{}", r.json);
    assert_eq!(result[0]["metric"]["job"], "synth");
    for p in result[0]["values"].as_array().unwrap() {
        let t = p[0].as_i64().expect("aligned steps are whole seconds");
        assert_eq!((t - ps) % step, 0);
        assert!(t >= ps && t <= pe);
    }
    // Fractional step and RFC3339 times work too.
    let r = c.post(
        "/api/v1/query_range",
        &[
            ("query", "up"),
            ("start", &(now - 5).to_string()),
            ("end", &now.to_string()),
            ("step", "0.5"),
        ],
    );
    let result = check_query_result(&r, "matrix");
    let t0 = &result[0]["values"][1][0];
    assert!(
        t0.as_f64().unwrap().fract() != 0.0
            || result[0]["values"][0][0].as_f64().unwrap().fract() != 0.0
    );

    // 3.4 instant query (time = `to`, fractional) and 5.6 query_result() variables.
    let r = c.post(
        "/api/v1/query",
        &[
            ("query", "up"),
            ("time", &format!("{now}.123")),
            ("timeout", "60s"),
        ],
    );
    let result = check_query_result(&r, "vector");
    assert_eq!(result.len(), 2);
    assert_eq!(result[0]["value"][0].as_f64().unwrap(), now as f64 + 0.123);
    assert_eq!(result[0]["value"][1], "1");
    assert_eq!(result[0]["metric"]["__name__"], "up");

    // Annotations: a range query over the dashboard range, series turned into events.
    let r = c.post(
        "/api/v1/query_range",
        &[
            ("query", "changes(up[5m]) == 0"),
            ("start", &(now - 600).to_string()),
            ("end", &now.to_string()),
            ("step", "60"),
        ],
    );
    check_query_result(&r, "matrix");

    // Errors Grafana shows as "<errorType>: <error>": 400 bad_data, 422 execution.
    let r = c.post(
        "/api/v1/query_range",
        &[
            ("query", "rate(up)"),
            ("start", "1"),
            ("end", "2"),
            ("step", "1"),
        ],
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json["status"], "error");
    assert_eq!(r.json["errorType"], "bad_data");
    assert!(
        r.json["error"].as_str().unwrap().contains("rate"),
        "{}",
        r.json
    );
    let r = c.post(
        "/api/v1/query_range",
        &[
            ("query", "up[5m]"),
            ("start", "1"),
            ("end", "2"),
            ("step", "1"),
        ],
    );
    assert!(matches!(r.status, 400 | 422), "{}", r.json);
    assert_eq!(r.json["status"], "error");
    let r = c.post("/api/v1/query", &[("query", "up"), ("time", "soon")]);
    assert_eq!(
        (r.status, r.json["errorType"].as_str()),
        (400, Some("bad_data"))
    );

    // Alerting UI: feature discovery may also read flags.
    let r = c.get("/api/v1/status/flags", &[]);
    assert_eq!(r.json["status"], "success");
    assert!(
        r.json["data"]["web.listen-address"].is_string(),
        "{}",
        r.json
    );
}
