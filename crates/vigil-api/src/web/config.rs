//! The `--web.config.file` format of Prometheus' exporter-toolkit: `tls_server_config`
//! (certificate and key, client certificates, TLS versions), `http_server_config.headers`,
//! and `basic_auth_users` (user → bcrypt hash). Unknown keys are errors, as in Prometheus;
//! relative file names are relative to the web config file.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfigFile {
    #[serde(default)]
    pub tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    pub http_server_config: Option<HttpServerConfig>,
    #[serde(default)]
    pub basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    #[serde(default)]
    pub cert_file: Option<String>,
    #[serde(default)]
    pub key_file: Option<String>,
    #[serde(default)]
    pub cert: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub client_auth_type: Option<String>,
    #[serde(default)]
    pub client_ca_file: Option<String>,
    #[serde(default)]
    pub client_ca: Option<String>,
    #[serde(default)]
    pub min_version: Option<String>,
    #[serde(default)]
    pub max_version: Option<String>,
    /// Accepted for compatibility; rustls chooses its own (safe) suites and curves.
    #[serde(default)]
    pub cipher_suites: Option<Vec<String>>,
    #[serde(default)]
    pub curve_preferences: Option<Vec<String>>,
    #[serde(default)]
    pub prefer_server_cipher_suites: Option<bool>,
    #[serde(default)]
    pub client_allowed_sans: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    #[serde(default)]
    pub http2: Option<bool>,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
}

/// A loaded web config: what the server and the auth layer need.
#[derive(Clone, Default)]
pub struct WebConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// User → bcrypt hash; empty: no authentication.
    pub users: BTreeMap<String, String>,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("headers", &self.headers)
            .finish()
    }
}

impl WebConfig {
    /// Reads and checks `path`; every problem is an error naming the file.
    pub fn load(path: &Path) -> Result<WebConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read web config {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| format!("web config {}: {e}", path.display()))
    }

    /// Parses a web config whose relative file names are relative to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<WebConfig, String> {
        let file: WebConfigFile = if text.trim().is_empty() {
            WebConfigFile::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| e.to_string())?
        };
        let users = file.basic_auth_users.unwrap_or_default();
        for (user, hash) in &users {
            if bcrypt::verify("", hash).is_err() {
                return Err(format!(
                    "basic_auth_users: the password of {user:?} is not a valid bcrypt hash"
                ));
            }
        }
        let headers = file
            .http_server_config
            .and_then(|h| h.headers)
            .unwrap_or_default()
            .into_iter()
            .collect();
        let tls = match file.tls_server_config {
            Some(t) if !t.is_empty() => Some(Arc::new(t.build(base)?)),
            _ => None,
        };
        Ok(WebConfig {
            tls,
            users,
            headers,
        })
    }
}

fn resolve(base: &Path, f: &str) -> PathBuf {
    let p = Path::new(f);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn read_pem(
    base: &Path,
    file: Option<&str>,
    inline: Option<&str>,
    what: &str,
) -> Result<Vec<u8>, String> {
    match (
        file.filter(|s| !s.is_empty()),
        inline.filter(|s| !s.is_empty()),
    ) {
        (Some(_), Some(_)) => Err(format!("at most one of {what}_file and {what} must be set")),
        (Some(f), None) => {
            let p = resolve(base, f);
            std::fs::read(&p).map_err(|e| format!("cannot read {what}_file {}: {e}", p.display()))
        }
        (None, Some(s)) => Ok(s.as_bytes().to_vec()),
        (None, None) => Err(format!("missing {what}_file")),
    }
}

impl TlsServerConfig {
    fn is_empty(&self) -> bool {
        [
            &self.cert_file,
            &self.key_file,
            &self.cert,
            &self.key,
            &self.client_ca_file,
            &self.client_ca,
        ]
        .iter()
        .all(|o| o.as_deref().is_none_or(str::is_empty))
    }

    fn build(&self, base: &Path) -> Result<rustls::ServerConfig, String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let cert_pem = read_pem(
            base,
            self.cert_file.as_deref(),
            self.cert.as_deref(),
            "cert",
        )?;
        let key_pem = read_pem(base, self.key_file.as_deref(), self.key.as_deref(), "key")?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("cannot parse the certificate: {e}"))?;
        if certs.is_empty() {
            return Err("the certificate file holds no certificate".into());
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| format!("cannot parse the private key: {e}"))?;
        let versions = self.versions()?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| format!("TLS versions: {e}"))?;
        let auth = self.client_auth_type.as_deref().unwrap_or("NoClientCert");
        let builder = match auth {
            "" | "NoClientCert" => builder.with_no_client_auth(),
            "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {
                let ca_pem = read_pem(
                    base,
                    self.client_ca_file.as_deref(),
                    self.client_ca.as_deref(),
                    "client_ca",
                )
                .map_err(|e| format!("client_auth_type {auth} needs client_ca_file: {e}"))?;
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_slice_iter(&ca_pem) {
                    let c = c.map_err(|e| format!("cannot parse client_ca_file: {e}"))?;
                    roots
                        .add(c)
                        .map_err(|e| format!("bad client CA certificate: {e}"))?;
                }
                let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                );
                let v = if auth == "VerifyClientCertIfGiven" {
                    v.allow_unauthenticated()
                } else {
                    v
                };
                builder.with_client_cert_verifier(v.build().map_err(|e| e.to_string())?)
            }
            other => {
                return Err(format!(
                    "client_auth_type {other:?} is not supported (NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
                ));
            }
        };
        let mut cfg = builder
            .with_single_cert(certs, key)
            .map_err(|e| format!("certificate and key do not go together: {e}"))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(cfg)
    }

    fn versions(&self) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
        let rank = |v: Option<&str>, default: u8| -> Result<u8, String> {
            match v.unwrap_or("") {
                "" => Ok(default),
                "TLS10" | "TLS11" | "TLS12" => Ok(12),
                "TLS13" => Ok(13),
                other => Err(format!("unknown TLS version {other:?}")),
            }
        };
        let (min, max) = (
            rank(self.min_version.as_deref(), 12)?,
            rank(self.max_version.as_deref(), 13)?,
        );
        if min > max {
            return Err("min_version is above max_version".into());
        }
        let mut v = Vec::new();
        if min <= 12 {
            v.push(&rustls::version::TLS12);
        }
        if max >= 13 {
            v.push(&rustls::version::TLS13);
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_and_headers() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let text = format!(
            "basic_auth_users:\n  alice: {hash}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n"
        );
        let c = WebConfig::parse(&text, Path::new(".")).unwrap();
        assert!(c.tls.is_none());
        assert_eq!(c.users.len(), 1);
        assert_eq!(
            c.headers,
            vec![("X-Frame-Options".to_string(), "deny".to_string())]
        );
    }

    #[test]
    fn errors_are_reported() {
        for (text, want) in [
            ("nope: 1\n", "unknown field"),
            ("basic_auth_users:\n  bob: plain\n", "bcrypt"),
            (
                "tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /x.key\n",
                "cannot read cert_file",
            ),
            ("tls_server_config:\n  cert_file: a.crt\n", "cannot read"),
        ] {
            let e = WebConfig::parse(text, Path::new("/nonexistent")).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        assert!(
            WebConfig::parse("", Path::new("."))
                .unwrap()
                .users
                .is_empty()
        );
    }

    #[test]
    fn tls_from_generated_certificate() {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let dir = std::env::temp_dir().join(format!("vigil-webcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("c.crt"), ck.cert.pem()).unwrap();
        std::fs::write(dir.join("c.key"), ck.key_pair.serialize_pem()).unwrap();
        let c = WebConfig::parse(
            "tls_server_config:\n  cert_file: c.crt\n  key_file: c.key\n  min_version: TLS13\n",
            &dir,
        )
        .unwrap();
        assert!(c.tls.is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
