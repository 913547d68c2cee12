//! The built-in web UI: a small single-page app (hand-written HTML, CSS and JavaScript modules
//! in `crates/vigil-api/ui/`) compiled into the binary with `include_bytes!`. Nothing is
//! fetched from elsewhere at run time, and there is no build step.
//!
//! Every page path (`/query`, `/graph`, `/targets`, ...) serves the same `index.html`, so deep
//! links work; the app routes on the client. The page refers to its assets and to the API by
//! relative URLs (`assets/app.js`, `api/v1/query`), and all page paths are siblings, so the
//! UI works under `--web.route-prefix` and behind a proxy that serves it under a path.

use axum::Router;
use axum::extract::{NestedPath, Path, rejection::NestedPathRejection};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::OnceLock;

/// The client-side pages; each is served the app.
pub(crate) const PAGES: &[&str] = &[
    "/query",
    "/graph",
    "/targets",
    "/service-discovery",
    "/rules",
    "/alerts",
    "/config",
    "/flags",
    "/tsdb-status",
    "/status",
];

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../ui/index.html"),
};

/// Files under `assets/`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../ui/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../ui/app.js"),
    },
    Asset {
        name: "util.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../ui/util.js"),
    },
    Asset {
        name: "query.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../ui/query.js"),
    },
    Asset {
        name: "complete.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../ui/complete.js"),
    },
    Asset {
        name: "chart.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../ui/chart.js"),
    },
    Asset {
        name: "pages.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../ui/pages.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../ui/favicon.svg"),
    },
];

/// Scripts, styles and requests only from this origin; no inline script, no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'";

/// A strong validator per file: FNV-1a of the contents (computed once).
fn etag(a: &Asset) -> &'static str {
    static TAGS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        std::iter::once(&INDEX)
            .chain(ASSETS)
            .map(|a| {
                let h = a.body.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
                });
                (a.name, format!("\"{h:016x}\""))
            })
            .collect()
    });
    tags.iter()
        .find(|(n, _)| *n == a.name)
        .map_or("\"0\"", |(_, t)| t.as_str())
}

/// The file with its content type, an `ETag`, and `Cache-Control: no-cache` (file names are
/// not versioned, so browsers revalidate and get a 304 while the binary is unchanged).
fn serve(a: &Asset, req_headers: &HeaderMap) -> Response {
    let tag = etag(a);
    let fresh = req_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, a.content_type)], a.body).into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_static(tag));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if a.name == INDEX.name {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    resp
}

/// A page of the app (`/query`, `/targets`, ...): `index.html`.
pub(crate) async fn page(headers: HeaderMap) -> Response {
    serve(&INDEX, &headers)
}

/// `/`: the app, whose query page the client shows. Under a route prefix `/prom` this route
/// is `/prom` (no trailing slash), where relative URLs would resolve outside the prefix: a
/// redirect to `/prom/query` instead.
pub(crate) async fn root(
    nested: Result<NestedPath, NestedPathRejection>,
    headers: HeaderMap,
) -> Response {
    match nested {
        Ok(p) if p.as_str() != "/" && !p.as_str().is_empty() => {
            let to = format!("{}/query", p.as_str().trim_end_matches('/'));
            match HeaderValue::try_from(to) {
                Ok(v) => (StatusCode::FOUND, [(header::LOCATION, v)]).into_response(),
                Err(_) => serve(&INDEX, &headers),
            }
        }
        _ => serve(&INDEX, &headers),
    }
}

/// `{prefix}/` under a route prefix: the app (relative URLs resolve inside the prefix there).
pub(crate) fn prefix_root() -> axum::routing::MethodRouter {
    get(page)
}

/// `/assets/{file}`.
pub(crate) async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => serve(a, &headers),
        None => crate::handlers::not_found().await,
    }
}

/// The UI's routes: `/`, every page, and `/assets/{file}`.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(mut r: Router<S>) -> Router<S> {
    r = r.route("/", get(root)).route("/assets/{file}", get(asset));
    for p in PAGES {
        r = r.route(p, get(page));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::{WebOptions, app};
    use crate::{ApiState, ServerInfo};
    use axum::body::Body;
    use axum::http::Request;
    use std::sync::Arc;
    use tower::ServiceExt;

    fn server(prefix: &str) -> Router {
        let state = ApiState {
            db: Arc::new(vigil_tsdb::Head::new(vigil_tsdb::HeadOptions::default())),
            engine: vigil_promql::Engine::new(vigil_promql::EngineOptions::default()),
            scrape: None,
            self_metrics: Box::new(String::new),
            version: "test".into(),
            lifecycle: None,
            info: ServerInfo::default(),
            rules: None,
        };
        let opts = WebOptions {
            route_prefix: prefix.into(),
            ..WebOptions::default()
        };
        app(Arc::new(state), &opts).unwrap()
    }

    /// Status, headers and body of a GET.
    async fn get(r: &Router, uri: &str, etag: Option<&str>) -> (StatusCode, HeaderMap, String) {
        let mut req = Request::get(uri);
        if let Some(t) = etag {
            req = req.header(header::IF_NONE_MATCH, t);
        }
        let resp = r
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let body = axum::body::to_bytes(body, 1 << 22).await.unwrap();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    #[tokio::test]
    async fn pages_and_assets() {
        let r = server("/");
        for p in std::iter::once(&"/").chain(PAGES) {
            let (s, h, body) = get(&r, p, None).await;
            assert_eq!(s, StatusCode::OK, "{p}");
            assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
            assert!(
                h[header::CONTENT_SECURITY_POLICY]
                    .to_str()
                    .unwrap()
                    .contains("script-src 'self'")
            );
            assert!(body.contains("<script type=\"module\" src=\"assets/app.js\">"));
        }
        for a in ASSETS {
            let (s, h, body) = get(&r, &format!("/assets/{}", a.name), None).await;
            assert_eq!(s, StatusCode::OK, "{}", a.name);
            assert_eq!(h[header::CONTENT_TYPE], a.content_type);
            assert_eq!(h[header::CACHE_CONTROL], "no-cache");
            assert_eq!(body.as_bytes(), a.body);
            let tag = h[header::ETAG].to_str().unwrap().to_string();
            let (s, h2, body) = get(&r, &format!("/assets/{}", a.name), Some(&tag)).await;
            assert_eq!(s, StatusCode::NOT_MODIFIED, "{}", a.name);
            assert_eq!(h2[header::ETAG], tag.as_str());
            assert!(body.is_empty());
        }
        let (s, _, _) = get(&r, "/assets/nope.js", None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _, _) = get(&r, "/assets/../lib.rs", None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _, _) = get(&r, "/nope", None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn under_a_route_prefix() {
        let r = server("/prom");
        // `/prom` would resolve relative URLs outside the prefix: redirected into it.
        let (s, h, _) = get(&r, "/prom", None).await;
        assert_eq!(s, StatusCode::FOUND);
        assert_eq!(h[header::LOCATION], "/prom/query");
        for p in [
            "/prom/",
            "/prom/query",
            "/prom/targets",
            "/prom/tsdb-status",
        ] {
            let (s, _, body) = get(&r, p, None).await;
            assert_eq!(s, StatusCode::OK, "{p}");
            assert!(body.contains("src=\"assets/app.js\""), "{p}");
        }
        let (s, h, _) = get(&r, "/prom/assets/app.css", None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "text/css; charset=utf-8");
        let (s, _, body) = get(&r, "/prom/api/v1/query?query=1%2B1&time=4", None).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        for p in ["/", "/query", "/assets/app.js"] {
            let (s, _, _) = get(&r, p, None).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{p} outside the prefix");
        }
    }

    #[test]
    fn index_refers_to_embedded_assets_only() {
        let html = std::str::from_utf8(INDEX.body).unwrap();
        for needle in ["src=\"", "href=\""] {
            for part in html.split(needle).skip(1) {
                let url = part.split('"').next().unwrap();
                assert!(
                    !url.contains("//") && !url.starts_with('/'),
                    "index.html must use relative, local URLs: {url}"
                );
                if let Some(name) = url.strip_prefix("assets/") {
                    assert!(
                        ASSETS.iter().any(|a| a.name == name),
                        "missing asset {name}"
                    );
                }
            }
        }
        // Module imports between the scripts name embedded files too.
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let js = std::str::from_utf8(a.body).unwrap();
            assert_eq!(
                js.matches(" from '").count(),
                js.matches(" from './").count(),
                "{}: every import is relative",
                a.name
            );
            for part in js.split(" from './").skip(1) {
                let name = &part[..part.find('\'').unwrap()];
                assert!(
                    ASSETS.iter().any(|a| a.name == name),
                    "{} imports ./{name}, which is not embedded",
                    a.name
                );
            }
        }
    }
}
