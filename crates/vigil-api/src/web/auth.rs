//! Basic authentication against `basic_auth_users` (bcrypt hashes), checked before routing so
//! no handler runs for an unauthenticated request, and the configured response headers.
//!
//! bcrypt is slow on purpose, so it runs on the blocking pool, and a verified user/password
//! pair is remembered (as a keyed hash, never the password) as exporter-toolkit does. An
//! unknown user is checked against a dummy hash so timing does not reveal which users exist.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

/// A bcrypt hash of a random string, for unknown users.
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

pub struct Auth {
    users: BTreeMap<String, String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    verified: Mutex<HashSet<u64>>,
    keyed: RandomState,
}

impl Auth {
    pub fn new(cfg: &super::WebConfig) -> Result<Arc<Auth>, String> {
        let headers = cfg
            .headers
            .iter()
            .map(|(k, v)| {
                Ok((
                    HeaderName::try_from(k.as_str()).map_err(|e| format!("header {k:?}: {e}"))?,
                    HeaderValue::try_from(v.as_str()).map_err(|e| format!("header {k:?}: {e}"))?,
                ))
            })
            .collect::<Result<_, String>>()?;
        Ok(Arc::new(Auth {
            users: cfg.users.clone(),
            headers,
            verified: Mutex::new(HashSet::new()),
            keyed: RandomState::new(),
        }))
    }

    /// Is `authorization` (the header value) a valid user and password?
    async fn check(self: &Arc<Self>, authorization: Option<&HeaderValue>) -> bool {
        let Some((user, pass)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let hash = self.users.get(&user).cloned();
        let key = self.keyed.hash_one((&user, &pass, &hash));
        if hash.is_some() && self.verified.lock().is_ok_and(|v| v.contains(&key)) {
            return true;
        }
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_string());
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(pass, &hash).unwrap_or(false))
            .await
            .unwrap_or(false)
            && known;
        if ok && let Ok(mut v) = self.verified.lock() {
            if v.len() > 10_000 {
                v.clear();
            }
            v.insert(key);
        }
        ok
    }
}

/// `Basic <base64(user:password)>` → (user, password).
fn parse_basic(h: &HeaderValue) -> Option<(String, String)> {
    let s = h.to_str().ok()?;
    let (scheme, rest) = s.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// The middleware: 401 with `WWW-Authenticate` unless the credentials check out.
pub async fn layer(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Response {
    let mut resp =
        if auth.users.is_empty() || auth.check(req.headers().get(header::AUTHORIZATION)).await {
            next.run(req).await
        } else {
            let mut r = (StatusCode::UNAUTHORIZED, Body::from("Unauthorized\n")).into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
            r
        };
    for (k, v) in &auth.headers {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header() {
        let v = HeaderValue::from_static("Basic YWxpY2U6czNjOnJldA==");
        assert_eq!(parse_basic(&v), Some(("alice".into(), "s3c:ret".into())));
        assert_eq!(parse_basic(&HeaderValue::from_static("Bearer x")), None);
        assert_eq!(parse_basic(&HeaderValue::from_static("Basic !!")), None);
    }

    #[test]
    fn dummy_hash_is_valid_bcrypt() {
        assert_eq!(bcrypt::verify("x", DUMMY_HASH).ok(), Some(false));
    }
}
