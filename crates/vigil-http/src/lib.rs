//! Outbound HTTP for every part of vigil that calls out: scrape pools, service discovery,
//! the Alertmanager notifier and remote write/read.
//!
//! Prometheus configures all of them with one block of settings (`http_config` in its
//! `common/config` package): TLS (CA, client certificate, server name checks, versions),
//! redirects, HTTP/2, proxies, and the `Authorization` header from `basic_auth` or
//! `authorization`, plus `http_headers`. This crate is the one owner of turning that block into
//! a client, so a new sender or discovery mechanism gets the same behaviour (and the same
//! errors) for free. It sits low in the crate DAG (it needs only `vigil-config`'s types), like
//! VictoriaMetrics' `lib/promauth`. OAuth2 and SigV4 belong here when they come.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::path::Path;
use vigil_config::HttpClientConfig;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read {what} file {path:?}: {reason}")]
    File {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}

fn read_file(what: &'static str, path: &str) -> Result<String, ClientError> {
    std::fs::read_to_string(Path::new(path))
        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| ClientError::File {
            what,
            path: path.to_string(),
            reason: e.to_string(),
        })
}

fn read_bytes(what: &'static str, path: &str) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| ClientError::File {
        what,
        path: path.to_string(),
        reason: e.to_string(),
    })
}

/// The `Authorization` header value the settings ask for, if any.
pub fn authorization_header(cfg: &HttpClientConfig) -> Result<Option<String>, ClientError> {
    if let Some(b) = &cfg.basic_auth {
        let user = match &b.username_file {
            Some(f) => read_file("username", f)?,
            None => b.username.clone(),
        };
        let pass = match (&b.password, &b.password_file) {
            (Some(p), _) => p.expose().to_string(),
            (None, Some(f)) => read_file("password", f)?,
            (None, None) => String::new(),
        };
        return Ok(Some(format!(
            "Basic {}",
            base64(format!("{user}:{pass}").as_bytes())
        )));
    }
    if let Some(a) = &cfg.authorization {
        let kind = if a.auth_type.is_empty() {
            "Bearer"
        } else {
            a.auth_type.as_str()
        };
        let cred = match (&a.credentials, &a.credentials_file) {
            (Some(c), _) => c.expose().to_string(),
            (None, Some(f)) => read_file("credentials", f)?,
            (None, None) => String::new(),
        };
        return Ok(Some(format!("{kind} {cred}")));
    }
    Ok(None)
}

/// Builds the client. Files (CA, certificates, secrets) are read now; a reload re-reads them.
pub fn build(cfg: &HttpClientConfig, user_agent: &str) -> Result<reqwest::Client, ClientError> {
    // rustls needs one process-wide crypto provider; installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut headers = HeaderMap::new();
    if let Some(v) = authorization_header(cfg)? {
        let hv = HeaderValue::from_str(&v).map_err(|e| ClientError::Invalid {
            what: "authorization",
            reason: e.to_string(),
        })?;
        headers.insert(reqwest::header::AUTHORIZATION, hv);
    }
    for (name, h) in &cfg.http_headers {
        let hn = HeaderName::from_bytes(name.as_bytes()).map_err(|e| ClientError::Invalid {
            what: "header name",
            reason: e.to_string(),
        })?;
        let mut values: Vec<String> = h.values.clone();
        values.extend(h.secrets.iter().map(|s| s.expose().to_string()));
        for f in &h.files {
            values.push(read_file("header", f)?);
        }
        for v in values {
            let hv = HeaderValue::from_str(&v).map_err(|e| ClientError::Invalid {
                what: "header value",
                reason: e.to_string(),
            })?;
            headers.append(hn.clone(), hv);
        }
    }
    let mut b = reqwest::Client::builder()
        .user_agent(user_agent)
        .default_headers(headers)
        .pool_max_idle_per_host(1)
        .redirect(if cfg.follow_redirects {
            reqwest::redirect::Policy::limited(10)
        } else {
            reqwest::redirect::Policy::none()
        })
        .tls_backend_rustls();
    if !cfg.enable_http2 {
        b = b.http1_only();
    }
    b = with_proxy(b, cfg)?;
    let tls = &cfg.tls_config;
    let ca = match (&tls.ca, &tls.ca_file) {
        (Some(pem), _) => Some(pem.as_bytes().to_vec()),
        (None, Some(f)) => Some(read_bytes("CA", f)?),
        _ => None,
    };
    if let Some(pem) = ca {
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ClientError::Invalid {
                what: "CA certificate",
                reason: e.to_string(),
            })?;
        b = b.tls_certs_only(certs);
    }
    let cert = match (&tls.cert, &tls.cert_file) {
        (Some(pem), _) => Some(pem.as_bytes().to_vec()),
        (None, Some(f)) => Some(read_bytes("client certificate", f)?),
        _ => None,
    };
    let key = match (&tls.key, &tls.key_file) {
        (Some(k), _) => Some(k.expose().as_bytes().to_vec()),
        (None, Some(f)) => Some(read_bytes("client key", f)?),
        _ => None,
    };
    if let (Some(mut cert), Some(key)) = (cert, key) {
        cert.push(b'\n');
        cert.extend_from_slice(&key);
        let id = reqwest::Identity::from_pem(&cert).map_err(|e| ClientError::Invalid {
            what: "client certificate",
            reason: e.to_string(),
        })?;
        b = b.identity(id);
    }
    if tls.insecure_skip_verify {
        b = b.tls_danger_accept_invalid_certs(true);
    }
    if let Some(v) = tls.min_version.as_deref().and_then(tls_version) {
        b = b.tls_version_min(v);
    }
    if let Some(v) = tls.max_version.as_deref().and_then(tls_version) {
        b = b.tls_version_max(v);
    }
    b.build().map_err(|e| ClientError::Invalid {
        what: "HTTP client",
        reason: e.to_string(),
    })
}

/// Prometheus uses a proxy only when the config names one (`proxy_url`) or asks for the
/// environment's (`proxy_from_environment`); reqwest would read `HTTP_PROXY` and friends by
/// default, so without either setting the client is told to use none.
fn with_proxy(
    b: reqwest::ClientBuilder,
    cfg: &HttpClientConfig,
) -> Result<reqwest::ClientBuilder, ClientError> {
    let invalid = |e: reqwest::Error| ClientError::Invalid {
        what: "proxy_url",
        reason: e.to_string(),
    };
    if let Some(url) = cfg.proxy_url.as_deref().filter(|u| !u.is_empty()) {
        let mut proxy = reqwest::Proxy::all(url).map_err(invalid)?;
        if let Some(np) = cfg.no_proxy.as_deref() {
            proxy = proxy.no_proxy(reqwest::NoProxy::from_string(np));
        }
        let mut headers = HeaderMap::new();
        for (name, values) in &cfg.proxy_connect_header {
            let hn = HeaderName::from_bytes(name.as_bytes()).map_err(|e| ClientError::Invalid {
                what: "proxy_connect_header name",
                reason: e.to_string(),
            })?;
            for v in values {
                let hv = HeaderValue::from_str(v.expose()).map_err(|e| ClientError::Invalid {
                    what: "proxy_connect_header value",
                    reason: e.to_string(),
                })?;
                headers.append(hn.clone(), hv);
            }
        }
        if !headers.is_empty() {
            proxy = proxy.headers(headers);
        }
        return Ok(b.proxy(proxy));
    }
    if cfg.proxy_from_environment {
        // reqwest's default: HTTP_PROXY, HTTPS_PROXY and NO_PROXY (either case).
        return Ok(b);
    }
    Ok(b.no_proxy())
}

fn tls_version(v: &str) -> Option<reqwest::tls::Version> {
    match v {
        "TLS12" => Some(reqwest::tls::Version::TLS_1_2),
        "TLS13" => Some(reqwest::tls::Version::TLS_1_3),
        _ => None,
    }
}

/// Standard base64 with padding (for basic auth; not worth a dependency).
fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Go's `url.QueryEscape`: unreserved bytes as they are, space as `+`, the rest `%XX`
/// (alert generator URLs, the `urlquery` template function).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_escape_is_gos() {
        assert_eq!(query_escape("a b&c=d/é~"), "a+b%26c%3Dd%2F%C3%A9~");
    }
    use vigil_config::{Authorization, BasicAuth, Secret};

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("user:pass", "dXNlcjpwYXNz"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn auth_headers() {
        let cfg = HttpClientConfig {
            basic_auth: Some(BasicAuth {
                username: "user".into(),
                password: Some(Secret("pass".into())),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            authorization_header(&cfg).unwrap().as_deref(),
            Some("Basic dXNlcjpwYXNz")
        );
        let cfg = HttpClientConfig {
            authorization: Some(Authorization {
                credentials: Some(Secret("tok".into())),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            authorization_header(&cfg).unwrap().as_deref(),
            Some("Bearer tok")
        );
        let missing = HttpClientConfig {
            authorization: Some(Authorization {
                credentials_file: Some("/nonexistent/x".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(authorization_header(&missing).is_err());
    }

    /// A one-shot HTTP proxy on loopback: answers 200 and hands back the request head.
    fn proxy() -> (String, std::thread::JoinHandle<String>) {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = c.read(&mut b).unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&b[..n]);
            }
            let _ =
                c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            String::from_utf8_lossy(&head).into_owned()
        });
        (url, h)
    }

    fn get(client: &reqwest::Client, url: &str) -> Result<String, reqwest::Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            client
                .get(url)
                .timeout(std::time::Duration::from_secs(5))
                .send()
                .await?
                .text()
                .await
        })
    }

    #[test]
    fn proxy_url_is_used_and_no_proxy_bypasses_it() {
        let (proxy_url, seen) = proxy();
        let cfg = HttpClientConfig {
            proxy_url: Some(proxy_url.clone()),
            ..Default::default()
        };
        let client = build(&cfg, "vigil-test").unwrap();
        // The target does not exist: only the proxy can answer.
        assert_eq!(
            get(&client, "http://target.invalid:9100/metrics").unwrap(),
            "ok"
        );
        let head = seen.join().unwrap();
        assert!(
            head.starts_with("GET http://target.invalid:9100/metrics HTTP/1.1\r\n"),
            "{head}"
        );
        // A host on no_proxy is asked directly (and so fails: nothing listens there).
        let cfg = HttpClientConfig {
            proxy_url: Some(proxy_url),
            no_proxy: Some("target.invalid".into()),
            ..Default::default()
        };
        let client = build(&cfg, "vigil-test").unwrap();
        assert!(get(&client, "http://target.invalid:9100/metrics").is_err());
    }

    #[test]
    fn a_bad_proxy_url_is_refused() {
        let cfg = HttpClientConfig {
            proxy_url: Some("::not a url".into()),
            ..Default::default()
        };
        assert!(matches!(
            build(&cfg, "vigil-test"),
            Err(ClientError::Invalid {
                what: "proxy_url",
                ..
            })
        ));
    }
}
