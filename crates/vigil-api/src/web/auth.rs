//! Basic authentication against `basic_auth_users` (bcrypt hashes), checked before routing so
//! no handler runs for an unauthenticated request, and the configured response headers.
//!
//! bcrypt is slow on purpose, so it runs on the blocking pool, half as many at a time as there
//! are cores (a flood of bad credentials queues there instead of taking every core), and a
//! verified user/password pair is remembered (as a keyed hash, never the password), so a
//! client that authenticated once is not slowed by the flood. An unknown user is checked
//! against a hash made at start, of a random password with the highest cost among the
//! configured users, so the time of an answer does not tell which users exist. The hash
//! comparison itself is bcrypt's (constant time).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// The cost of a bcrypt hash (`$2b$12$...` → 12).
fn bcrypt_cost(hash: &str) -> Option<u32> {
    hash.split('$').nth(2)?.parse().ok()
}

/// A hash of a random password at `cost`, for users that do not exist.
fn dummy_hash(cost: u32) -> String {
    let keyed = RandomState::new();
    let password = format!("{:016x}{:016x}", keyed.hash_one(1u8), keyed.hash_one(2u8));
    bcrypt::hash(password, cost).unwrap_or_default()
}

pub struct Auth {
    users: BTreeMap<String, String>,
    /// Checked for users that do not exist (see the module's doc).
    dummy: String,
    /// bcrypt verifications allowed at once: half the cores, at least one.
    verifying: Semaphore,
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
        let cost = cfg
            .users
            .values()
            .filter_map(|h| bcrypt_cost(h))
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST);
        let dummy = if cfg.users.is_empty() {
            String::new()
        } else {
            dummy_hash(cost)
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Arc::new(Auth {
            users: cfg.users.clone(),
            dummy,
            verifying: Semaphore::new((cores / 2).max(1)),
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
        let hash = hash.unwrap_or_else(|| self.dummy.clone());
        let Ok(_permit) = self.verifying.acquire().await else {
            return false;
        };
        let ok = tokio::task::spawn_blocking(move || verify(&pass, &hash))
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

/// Does `pass` hash to `hash`? A password over bcrypt's 72 bytes is refused rather than
/// checked on its first 72 bytes (which would accept any suffix after a right prefix).
fn verify(pass: &str, hash: &str) -> bool {
    // `bcrypt::non_truncating_verify` would also refuse exactly 72 bytes (it counts the NUL
    // it appends), which a hash can stand for.
    pass.len() <= 72 && bcrypt::verify(pass, hash).unwrap_or(false)
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
    fn passwords_over_72_bytes_are_refused_not_truncated() {
        let long = "p".repeat(72);
        let hash = bcrypt::hash(&long, 4).unwrap();
        assert!(verify(&long, &hash));
        assert!(
            !verify(&format!("{long}x"), &hash),
            "checked on its first 72 bytes only"
        );
        assert!(!verify("p", &hash));
    }

    #[test]
    fn dummy_hash_has_the_cost_of_the_costliest_user() {
        let users = BTreeMap::from([
            ("a".to_string(), bcrypt::hash("pa", 4).unwrap()),
            ("b".to_string(), bcrypt::hash("pb", 6).unwrap()),
        ]);
        let cfg = super::super::WebConfig {
            users,
            ..Default::default()
        };
        let auth = Auth::new(&cfg).unwrap();
        assert_eq!(bcrypt_cost(&auth.dummy), Some(6), "{}", auth.dummy);
        assert_eq!(bcrypt::verify("", &auth.dummy).ok(), Some(false));
        assert_eq!(bcrypt_cost("$2b$10$abc"), Some(10));
    }
}
