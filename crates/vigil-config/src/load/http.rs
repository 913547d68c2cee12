//! HTTP client settings shared by scrape configs, HTTP SD, Alertmanagers and remote
//! read/write: Prometheus' `HTTPClientConfig.Validate`, TLS settings and URLs.

use crate::error::Problem;
use crate::types::*;

/// Headers a user may not set on remote read/write requests (Prometheus' `reservedHeaders`).
pub(super) const RESERVED_HEADERS: [&str; 16] = [
    "authorization",
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
    "x-amz-date",
    "x-amz-security-token",
];

/// URL and HTTP client settings of every `http_sd_configs` entry under `key`.
pub(super) fn validate_http_sds(sds: &mut [HttpSdConfig], key: &str) -> Result<(), Problem> {
    for (i, h) in sds.iter_mut().enumerate() {
        let k = format!("{key}.http_sd_configs[{i}]");
        check_http_url(&h.url, &format!("{k}.url"))?;
        validate_http_client(&mut h.http_parts_mut(), &k)?;
    }
    Ok(())
}

fn check_http_url(u: &str, key: &str) -> Result<(), Problem> {
    let Some((scheme, rest)) = u.split_once("://") else {
        return Err(Problem::new(
            key,
            format!("URL {u:?} has no scheme: use http:// or https://"),
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Err(Problem::new(
            key,
            format!("URL scheme must be 'http' or 'https', got {scheme:?} in {u:?}"),
        ));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or("");
    if host.is_empty() {
        return Err(Problem::new(key, format!("host is missing in URL {u:?}")));
    }
    Ok(())
}

pub(super) fn check_url_present(u: &str, what: &str, key: &str) -> Result<(), Problem> {
    if u.trim().is_empty() {
        return Err(Problem::new(key, format!("url for {what} is empty")));
    }
    if u.chars().any(char::is_whitespace) {
        return Err(Problem::new(key, format!("{u:?} is not a valid URL")));
    }
    Ok(())
}

fn validate_tls(t: &TlsConfig, key: &str) -> Result<(), Problem> {
    let both = |a: bool, b: bool, what: &str| {
        if a && b {
            Err(Problem::new(
                key,
                format!("at most one of {what} must be configured"),
            ))
        } else {
            Ok(())
        }
    };
    both(t.ca.is_some(), t.ca_file.is_some(), "ca & ca_file")?;
    both(t.cert.is_some(), t.cert_file.is_some(), "cert & cert_file")?;
    both(t.key.is_some(), t.key_file.is_some(), "key & key_file")?;
    let has_cert = t.cert.is_some() || t.cert_file.is_some() || t.cert_ref.is_some();
    let has_key = t.key.is_some() || t.key_file.is_some() || t.key_ref.is_some();
    if has_cert && !has_key {
        return Err(Problem::new(
            key,
            "exactly one of key or key_file must be configured when a client certificate is configured",
        ));
    }
    if has_key && !has_cert {
        return Err(Problem::new(
            key,
            "exactly one of cert or cert_file must be configured when a client key is configured",
        ));
    }
    for v in [&t.min_version, &t.max_version].into_iter().flatten() {
        if !["TLS10", "TLS11", "TLS12", "TLS13"].contains(&v.as_str()) {
            return Err(Problem::new(
                key,
                format!("unknown TLS version {v:?} (expected TLS10, TLS11, TLS12 or TLS13)"),
            ));
        }
    }
    Ok(())
}

/// Prometheus' `HTTPClientConfig.Validate`, then the legacy bearer token moves into
/// `authorization`.
pub(super) fn validate_http_client(h: &mut HttpPartsMut<'_>, key: &str) -> Result<(), Problem> {
    let has_bearer =
        h.bearer_token.as_ref().is_some_and(|s| !s.is_empty()) || h.bearer_token_file.is_some();
    if h.bearer_token.as_ref().is_some_and(|s| !s.is_empty()) && h.bearer_token_file.is_some() {
        return Err(Problem::new(
            format!("{key}.bearer_token"),
            "at most one of bearer_token & bearer_token_file must be configured",
        ));
    }
    if h.basic_auth.is_some() && has_bearer {
        return Err(Problem::new(
            format!("{key}.bearer_token"),
            "at most one of basic_auth, bearer_token & bearer_token_file must be configured",
        ));
    }
    if h.authorization.is_some() && has_bearer {
        return Err(Problem::new(
            format!("{key}.authorization"),
            "authorization is not compatible with bearer_token & bearer_token_file",
        ));
    }
    let n = [
        h.basic_auth.is_some(),
        h.authorization.is_some(),
        h.oauth2.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if n > 1 {
        return Err(Problem::new(
            key,
            "at most one of basic_auth, oauth2 & authorization must be configured",
        ));
    }
    if let Some(b) = h.basic_auth.as_ref() {
        let k = format!("{key}.basic_auth");
        if !b.username.is_empty() && b.username_file.is_some() {
            return Err(Problem::new(
                k,
                "at most one of basic_auth username & username_file must be configured",
            ));
        }
        if b.password.as_ref().is_some_and(|p| !p.is_empty()) && b.password_file.is_some() {
            return Err(Problem::new(
                k,
                "at most one of basic_auth password & password_file must be configured",
            ));
        }
    }
    if let Some(a) = h.authorization.as_mut() {
        let k = format!("{key}.authorization");
        if a.credentials.as_ref().is_some_and(|c| !c.is_empty()) && a.credentials_file.is_some() {
            return Err(Problem::new(
                k,
                "at most one of authorization credentials & credentials_file must be configured",
            ));
        }
        if a.auth_type.eq_ignore_ascii_case("basic") {
            return Err(Problem::new(
                k,
                "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
            ));
        }
        if a.auth_type.is_empty() {
            a.auth_type = "Bearer".into();
        }
    }
    if let Some(o) = h.oauth2.as_ref() {
        let k = format!("{key}.oauth2");
        if o.client_id.is_empty() {
            return Err(Problem::new(k, "oauth2 client_id must be configured"));
        }
        if o.token_url.is_empty() {
            return Err(Problem::new(k, "oauth2 token_url must be configured"));
        }
        if o.client_secret.is_some() && o.client_secret_file.is_some() {
            return Err(Problem::new(
                k,
                "at most one of oauth2 client_secret & client_secret_file must be configured",
            ));
        }
        validate_tls(&o.tls_config, &format!("{key}.oauth2.tls_config"))?;
    }
    validate_tls(h.tls_config, &format!("{key}.tls_config"))?;
    for name in h.http_headers.keys() {
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(Problem::new(
                format!("{key}.http_headers.{name}"),
                format!("setting header {name:?} is not allowed"),
            ));
        }
    }
    // Legacy bearer token settings become an Authorization header, as in Prometheus.
    if let Some(t) = h.bearer_token.take().filter(|t| !t.is_empty()) {
        *h.authorization = Some(Authorization {
            auth_type: "Bearer".into(),
            credentials: Some(t),
            ..Default::default()
        });
    }
    if let Some(f) = h.bearer_token_file.take() {
        *h.authorization = Some(Authorization {
            auth_type: "Bearer".into(),
            credentials_file: Some(f),
            ..Default::default()
        });
    }
    Ok(())
}
