//! The HTTP server around the API router: `--web.config.file` (TLS and basic auth, see
//! [`config`]), `--web.route-prefix`/`--web.external-url`, `--web.max-connections`,
//! `--web.read-timeout` and `--web.read-header-timeout` (see `conn.rs`: slow clients must not
//! lock vigil out), gzip when the client asks, and a limit on request bodies. Connections are
//! served by hyper directly (HTTP/1.1, TLS through rustls) so TLS, the timeouts and the
//! connection limit sit below axum.

pub mod auth;
pub mod config;
mod conn;

pub use config::WebConfig;

use crate::{ApiState, router};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;

/// How the server is exposed.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// Path prefix of every endpoint (`/` or `/prom`), from `--web.route-prefix` or the path of
    /// `--web.external-url`.
    pub route_prefix: String,
    /// TLS, users and headers from `--web.config.file`.
    pub config: WebConfig,
    /// Most connections open at once (`--web.max-connections`); 0: no limit. Connections
    /// without a request in flight are shed to admit new ones when it is reached.
    pub max_connections: usize,
    /// Time to read a request head (`--web.read-header-timeout`); `None`: no limit.
    pub read_header_timeout: Option<Duration>,
    /// Time to read a whole request, and to keep an idle connection open
    /// (`--web.read-timeout`); `None`: no limit.
    pub read_timeout: Option<Duration>,
    /// Largest request body accepted (form-encoded parameters of POSTs).
    pub max_body_bytes: usize,
}

impl Default for WebOptions {
    fn default() -> Self {
        WebOptions {
            route_prefix: "/".into(),
            config: WebConfig::default(),
            max_connections: 512,
            read_header_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(300)),
            max_body_bytes: 10 << 20,
        }
    }
}

/// Prometheus' `--web.external-url` default and the route prefix derived from it:
/// the external URL (default `http://<host>:<port>/`) and the prefix (`--web.route-prefix`,
/// else the external URL's path), normalised to start with `/` and have no trailing `/`
/// (except `/` itself).
pub fn resolve_urls(
    listen: &str,
    external_url: Option<&str>,
    route_prefix: Option<&str>,
) -> Result<(String, String), String> {
    let external = match external_url.filter(|s| !s.is_empty()) {
        Some(u) => {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(format!(
                    "--web.external-url {u:?} must be an absolute http:// or https:// URL"
                ));
            }
            u.to_string()
        }
        None => {
            let (host, port) = listen.rsplit_once(':').unwrap_or((listen, "9090"));
            let host = if host.is_empty() || host == "0.0.0.0" || host == "[::]" {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "localhost".into())
            } else {
                host.to_string()
            };
            format!("http://{host}:{port}/")
        }
    };
    let path_of_external = external
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
        .unwrap_or_default();
    let prefix = route_prefix.map(str::to_string).unwrap_or(path_of_external);
    let trimmed = prefix.trim_end_matches('/');
    let prefix = if trimmed.is_empty() {
        "/".to_string()
    } else if trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("/{trimmed}")
    };
    Ok((external, prefix))
}

/// The router with the prefix, body limit, gzip and authentication applied (outermost last:
/// authentication runs before anything else).
pub fn app(state: Arc<ApiState>, opts: &WebOptions) -> Result<Router, String> {
    app_with(state, opts, Router::new())
}

/// As [`app`], with `extra` routes (the remote-write receiver and remote read, which live in
/// `vigil-remote`) served beside the API, under the same prefix, limits and authentication.
pub fn app_with(state: Arc<ApiState>, opts: &WebOptions, extra: Router) -> Result<Router, String> {
    let api = router(state).merge(extra);
    let routed = if opts.route_prefix == "/" || opts.route_prefix.is_empty() {
        api
    } else {
        // Nesting serves the UI's `/` at `/prom` only; `/prom/` is the UI too.
        Router::new()
            .nest(&opts.route_prefix, api)
            .route(&format!("{}/", opts.route_prefix), crate::ui::prefix_root())
    };
    let auth = auth::Auth::new(&opts.config)?;
    Ok(routed
        .layer(DefaultBodyLimit::max(opts.max_body_bytes))
        .layer(CompressionLayer::new())
        .layer(axum::middleware::from_fn_with_state(auth, auth::layer)))
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open requests finish (for
/// up to 10 s). TLS when the web config has it. Connections are admitted, timed out and shed
/// as [`conn`] describes: at most `max_connections` open, of which only those serving a
/// request are safe; further connections wait in the accept queue only while every open one
/// is serving a request.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    opts: &WebOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = opts.config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let limits = conn::Limits {
        header: opts.read_header_timeout,
        read: opts.read_timeout,
    };
    let events = Arc::new(conn::Events::new(limits, opts.max_connections));
    let table = Arc::new(conn::Table::new(opts.max_connections, Arc::clone(&events)));
    // Reports what the last burst of timeouts and sheds left unreported.
    let reporter = {
        let events = Arc::clone(&events);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                events.report_if_due();
            }
        })
    };
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = table.wait_for_room() => {}
            _ = &mut shutdown => break,
        }
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // At the cap this sheds a connection and waits until it is closed (or, if every
        // open connection became busy meanwhile, until a request ends).
        let c = tokio::select! {
            c = table.admit() => c,
            _ = &mut shutdown => break,
        };
        events.report_if_due();
        let _ = stream.set_nodelay(true);
        let svc = conn::ConnService {
            app: app.clone(),
            table: Arc::clone(&table),
            conn: Arc::clone(&c),
            limits,
        };
        let tls = tls.clone();
        let watcher = graceful.watcher();
        let table = Arc::clone(&table);
        tokio::spawn(async move {
            let builder = hyper::server::conn::http1::Builder::new();
            let io = conn::Timed::new(stream, Arc::clone(&table), Arc::clone(&c), limits);
            let serve = async {
                match tls {
                    None => {
                        let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(io), svc);
                        let _ = watcher.watch(conn).await;
                    }
                    Some(acceptor) => {
                        let handshake =
                            tokio::time::timeout(Duration::from_secs(10), acceptor.accept(io));
                        let Ok(Ok(tls_stream)) = handshake.await else {
                            return;
                        };
                        let conn =
                            builder.serve_connection(hyper_util::rt::TokioIo::new(tls_stream), svc);
                        let _ = watcher.watch(conn).await;
                    }
                }
            };
            tokio::select! {
                _ = serve => {}
                // Dropping the connection closes its socket.
                _ = c.shed() => {}
            }
            table.remove(&c);
        });
    }
    drop(listener);
    reporter.abort();
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("open connections did not finish within 10 s");
        }
    }
    events.report_if_due();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::resolve_urls;

    #[test]
    fn urls_and_prefix() {
        let (ext, prefix) =
            resolve_urls("0.0.0.0:9090", Some("https://example.com/prom/"), None).unwrap();
        assert_eq!(
            (ext.as_str(), prefix.as_str()),
            ("https://example.com/prom/", "/prom")
        );
        let (_, prefix) =
            resolve_urls("0.0.0.0:9090", Some("https://example.com/prom"), Some("/")).unwrap();
        assert_eq!(prefix, "/");
        let (ext, prefix) = resolve_urls("127.0.0.1:9999", None, Some("x/")).unwrap();
        assert_eq!(
            (ext.as_str(), prefix.as_str()),
            ("http://127.0.0.1:9999/", "/x")
        );
        assert!(resolve_urls("0.0.0.0:9090", Some("example.com"), None).is_err());
    }
}
