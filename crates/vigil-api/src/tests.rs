//! Router tests against an in-memory head: status codes and JSON as Prometheus answers.

use super::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;
use vigil_model::{Appendable, Labels};
use vigil_promql::EngineOptions;
use vigil_tsdb::{Head, HeadOptions};

fn app() -> Router {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let mut a = head.appender();
    for (model, v) in [("resnet", 3.0), ("bert", 7.5)] {
        let l = Labels::from_pairs([
            ("__name__", "http_requests_total"),
            ("model", model),
            ("job", "ml"),
        ]);
        a.append(None, &l, 1_000_000, v).unwrap();
    }
    a.commit().unwrap();
    let state = ApiState {
        db: head,
        engine: Engine::new(EngineOptions::default()),
        scrape: None,
        self_metrics: Box::new(|| "x 1\n".to_string()),
        version: "test".into(),
        lifecycle: None,
        info: ServerInfo::default(),
        rules: None,
    };
    router(Arc::new(state))
}

async fn call(req: Request<Body>) -> (StatusCode, String) {
    let resp = app().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn get(uri: &str) -> (StatusCode, String) {
    call(Request::get(uri).body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn instant_query_json_is_prometheus_shaped() {
    let (s, body) =
        get("/api/v1/query?query=http_requests_total%7Bmodel%3D%22bert%22%7D&time=1000").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"http_requests_total","job":"ml","model":"bert"},"value":[1000,"7.5"]}]}}"#
    );
}

#[tokio::test]
async fn post_form_and_rfc3339_time() {
    let req = Request::post("/api/v1/query")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(
            "query=http_requests_total%7Bmodel%21~%22b.*%22%7D&time=1970-01-01T00:16:40.5Z",
        ))
        .unwrap();
    let (s, body) = call(req).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        body.contains(r#""model":"resnet"},"value":[1000.500,"3"]"#),
        "{body}"
    );
    assert!(!body.contains("bert"));
}

#[tokio::test]
async fn scalar_and_string_results() {
    let (_, body) = get("/api/v1/query?query=1%2B1&time=10").await;
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"scalar","result":[10,"2"]}}"#
    );
    let (_, body) = get("/api/v1/query?query=%22a%22&time=10").await;
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"string","result":[10,"a"]}}"#
    );
}

#[tokio::test]
async fn malformed_parameters_are_400_bad_data() {
    for uri in [
        "/api/v1/query?query=up%7B",
        "/api/v1/query?query=up&time=yesterday",
        "/api/v1/query?query=up&timeout=soon",
        "/api/v1/query",
        "/api/v1/query?query=%29%28",
        "/api/v1/query_range?query=up&start=1&end=0&step=1",
        "/api/v1/query_range?query=up&start=0&end=10&step=0",
        "/api/v1/query_range?query=up&start=0&end=10",
        "/api/v1/series?match[]=%7B",
        "/api/v1/series",
    ] {
        let (s, body) = get(uri).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "error", "{uri}");
        assert_eq!(v["errorType"], "bad_data", "{uri}");
        assert!(!v["error"].as_str().unwrap().is_empty(), "{uri}");
    }
}

#[tokio::test]
async fn metadata_endpoints() {
    let (_, body) = get("/api/v1/labels").await;
    assert_eq!(
        body,
        r#"{"status":"success","data":["__name__","job","model"]}"#
    );
    let (_, body) = get("/api/v1/label/model/values").await;
    assert_eq!(body, r#"{"status":"success","data":["bert","resnet"]}"#);
    let (_, body) = get("/api/v1/series?match[]=http_requests_total%7Bmodel%3D%22bert%22%7D").await;
    assert_eq!(
        body,
        r#"{"status":"success","data":[{"__name__":"http_requests_total","job":"ml","model":"bert"}]}"#
    );
}

#[tokio::test]
async fn health_and_unknown_paths() {
    assert_eq!(get("/-/healthy").await.0, StatusCode::OK);
    assert_eq!(get("/-/ready").await.0, StatusCode::OK);
    assert_eq!(get("/metrics").await, (StatusCode::OK, "x 1\n".to_string()));
    assert_eq!(get("/nope").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn lifecycle_is_off_by_default() {
    let (s, body) = call(Request::post("/-/reload").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("Lifecycle API is not enabled"));
}

/// `stats` asks for Prometheus' statistics object inside `data` (Grafana's query inspector
/// sends it); values other than `true` and `all` still work, with Prometheus' deprecation
/// warning.
#[tokio::test]
async fn query_statistics_on_request() {
    let (_, plain) = get("/api/v1/query?query=http_requests_total&time=1000").await;
    assert!(!plain.contains("\"stats\""), "{plain}");
    for q in [
        "/api/v1/query?query=http_requests_total&time=1000&stats=all",
        "/api/v1/query_range?query=http_requests_total&start=900&end=1000&step=50&stats=true",
    ] {
        let (s, body) = get(q).await;
        assert_eq!(s, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let st = &v["data"]["stats"];
        for k in [
            "evalTotalTime",
            "resultSortTime",
            "queryPreparationTime",
            "innerEvalTime",
            "execQueueTime",
            "execTotalTime",
        ] {
            assert!(
                st["timings"][k].as_f64().is_some_and(|x| x >= 0.0),
                "{k}: {body}"
            );
        }
        // Two series, one sample each per step.
        assert!(
            st["samples"]["totalQueryableSamples"].as_u64().unwrap() >= 2,
            "{body}"
        );
        assert_eq!(st["samples"]["samplesRead"].as_u64(), Some(2), "{body}");
        assert!(
            st["samples"]["peakSamples"].as_u64().unwrap() >= 2,
            "{body}"
        );
        assert!(v.get("warnings").is_none(), "{body}");
    }
    let (_, body) = get("/api/v1/query?query=http_requests_total&time=1000&stats=yes").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["data"]["stats"]["samples"].is_object());
    assert_eq!(
        v["warnings"][0],
        "value \"yes\" for parameter \"stats\" is deprecated and will be rejected in the next major release, use \"true\" or \"all\""
    );
}

#[tokio::test]
async fn openapi_and_blocks_are_served() {
    let (s, body) = get("/api/v1/openapi.yaml").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        body.starts_with("openapi:") || body.contains("\nopenapi:"),
        "{}",
        &body[..80.min(body.len())]
    );
    // No TSDB status behind this test server: an empty list, as Prometheus with no blocks.
    let (s, body) = get("/api/v1/status/tsdb/blocks").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, r#"{"status":"success","data":{"blocks":[]}}"#);
    let (s, _) = get("/api/v1/status/tsdb?limit=10001").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn features_say_what_vigil_supports() {
    let (s, body) = get("/api/v1/features").await;
    assert_eq!(s, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let d = &v["data"];
    assert_eq!(d["tsdb"]["native_histograms"], true);
    assert_eq!(d["promql_functions"]["rate"], true);
    assert_eq!(d["promql_functions"]["histogram_quantile"], true);
    assert_eq!(d["promql_functions"]["info"], true);
    assert_eq!(d["promql_functions"]["start_timestamp"], true);
    assert_eq!(d["promql_operators"][">/"], true);
    assert_eq!(d["promql"]["anchored"], true);
    assert_eq!(d["promql"]["duration_expr"], true);
    assert_eq!(d["api"]["lifecycle"], false);
    assert_eq!(d["prometheus"]["server_mode"], true);
}
