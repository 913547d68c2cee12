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
    /// TLS 1.2 cipher suites by Go's names, in order of preference; empty: rustls' own list
    /// (AEAD suites with ECDHE only). TLS 1.3 suites are not configurable, as in Go.
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
        let provider = Arc::new(self.provider()?);
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| format!("TLS versions: {e}"))?;
        let auth = self.client_auth_type.as_deref().unwrap_or("NoClientCert");
        let builder = match auth {
            "" | "NoClientCert" => {
                if self.allowed_sans()?.is_some() {
                    return Err(
                        "client_allowed_sans needs client_auth_type RequireAndVerifyClientCert or VerifyClientCertIfGiven".into(),
                    );
                }
                builder.with_no_client_auth()
            }
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
                let v = v.build().map_err(|e| e.to_string())?;
                match self.allowed_sans()? {
                    None => builder.with_client_cert_verifier(v),
                    Some(sans) => {
                        builder.with_client_cert_verifier(Arc::new(AllowedSans { inner: v, sans }))
                    }
                }
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
        // exporter-toolkit's default: the server's order of cipher suites wins.
        cfg.ignore_client_order = self.prefer_server_cipher_suites.unwrap_or(true);
        Ok(cfg)
    }

    /// rustls' ring provider restricted to `cipher_suites` and `curve_preferences`, in their
    /// order. A name rustls does not implement (CBC or RSA key-exchange suites, P-521) is an
    /// error rather than silently ignored: a config that asks for it would otherwise be served
    /// something else than it says.
    fn provider(&self) -> Result<rustls::crypto::CryptoProvider, String> {
        let mut p = rustls::crypto::ring::default_provider();
        if let Some(names) = self.cipher_suites.as_ref().filter(|n| !n.is_empty()) {
            let tls12 = |s: &rustls::SupportedCipherSuite| s.version() == &rustls::version::TLS12;
            let name_of = |s: &rustls::SupportedCipherSuite| format!("{:?}", s.suite());
            let mut chosen: Vec<rustls::SupportedCipherSuite> = p
                .cipher_suites
                .iter()
                .copied()
                .filter(|s| !tls12(s))
                .collect();
            for n in names {
                // Go also accepts the ChaCha20 suites without their `_SHA256` suffix.
                let full = if n.ends_with("_CHACHA20_POLY1305") {
                    format!("{n}_SHA256")
                } else {
                    n.clone()
                };
                let Some(s) = p
                    .cipher_suites
                    .iter()
                    .find(|s| tls12(s) && name_of(s) == full)
                else {
                    let known: Vec<String> = p
                        .cipher_suites
                        .iter()
                        .filter(|s| tls12(s))
                        .map(name_of)
                        .collect();
                    return Err(format!(
                        "cipher_suites: {n:?} is not supported (TLS 1.2 suites vigil serves: {})",
                        known.join(", ")
                    ));
                };
                if !chosen.iter().any(|c| c.suite() == s.suite()) {
                    chosen.push(*s);
                }
            }
            // TLS 1.2 suites in the configured order, after TLS 1.3's.
            p.cipher_suites = chosen;
        }
        if let Some(names) = self.curve_preferences.as_ref().filter(|n| !n.is_empty()) {
            let mut chosen = Vec::new();
            for n in names {
                let want = match n.as_str() {
                    "X25519" => "X25519",
                    "CurveP256" => "secp256r1",
                    "CurveP384" => "secp384r1",
                    _ => {
                        return Err(format!(
                            "curve_preferences: {n:?} is not supported (X25519, CurveP256, CurveP384)"
                        ));
                    }
                };
                if let Some(g) = p
                    .kx_groups
                    .iter()
                    .find(|g| format!("{:?}", g.name()) == want)
                    && !chosen
                        .iter()
                        .any(|c: &&dyn rustls::crypto::SupportedKxGroup| c.name() == g.name())
                {
                    chosen.push(*g);
                }
            }
            p.kx_groups = chosen;
        }
        Ok(p)
    }

    /// `client_allowed_sans`, checked: DNS names, URIs and IP addresses (e-mail addresses are
    /// refused: not supported).
    fn allowed_sans(&self) -> Result<Option<Vec<String>>, String> {
        let Some(list) = self.client_allowed_sans.as_ref().filter(|l| !l.is_empty()) else {
            return Ok(None);
        };
        for s in list {
            if s.contains('@') && !s.contains("://") {
                return Err(format!(
                    "client_allowed_sans: {s:?}: e-mail SANs are not supported (DNS names, URIs and IP addresses are)"
                ));
            }
        }
        Ok(Some(list.clone()))
    }

    fn versions(&self) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
        // rustls implements TLS 1.2 and 1.3 only: a minimum of 1.0 or 1.1 is served as 1.2
        // (the oldest vigil can speak), but a maximum below 1.2 cannot be honoured.
        let rank = |v: Option<&str>, default: u8| -> Result<u8, String> {
            match v.unwrap_or("") {
                "" => Ok(default),
                "TLS10" => Ok(10),
                "TLS11" => Ok(11),
                "TLS12" => Ok(12),
                "TLS13" => Ok(13),
                other => Err(format!("unknown TLS version {other:?}")),
            }
        };
        let (min, max) = (
            rank(self.min_version.as_deref(), 12)?,
            rank(self.max_version.as_deref(), 13)?,
        );
        if max < 12 {
            return Err(format!(
                "max_version TLS1{} cannot be served: vigil speaks TLS 1.2 and 1.3 only",
                max - 10
            ));
        }
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

/// A client-certificate verifier that also requires one of `client_allowed_sans` among the
/// verified certificate's SANs, compared as exporter-toolkit does: the same string as a DNS
/// name or URI of the certificate (no wildcard matching), or the same IP address.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    sans: Vec<String>,
}

impl AllowedSans {
    fn allows(&self, cert: &webpki::EndEntityCert<'_>) -> bool {
        self.sans.iter().any(|s| {
            cert.valid_dns_names().any(|d| d == s)
                || cert.valid_uri_names().any(|u| u == s)
                || s.parse::<std::net::IpAddr>().is_ok_and(|ip| {
                    let name = rustls_pki_types::ServerName::IpAddress(ip.into());
                    cert.verify_is_valid_for_subject_name(&name).is_ok()
                })
        })
    }
}

impl rustls::server::danger::ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| rustls::Error::General(format!("client certificate: {e}")))?;
        if self.allows(&cert) {
            Ok(verified)
        } else {
            Err(rustls::Error::General(
                "client certificate has none of client_allowed_sans".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
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

    #[test]
    fn tls_defaults_are_prometheus_minimum_and_aead_only() {
        let t = |yaml: &str| -> TlsServerConfig { serde_yaml::from_str(yaml).unwrap() };
        let names = |c: &TlsServerConfig| -> Vec<String> {
            c.provider()
                .unwrap()
                .cipher_suites
                .iter()
                .map(|s| format!("{:?}", s.suite()))
                .collect()
        };
        let default = t("cert_file: x\n");
        assert_eq!(
            default.versions().unwrap(),
            vec![&rustls::version::TLS12, &rustls::version::TLS13]
        );
        let suites = names(&default);
        for s in &suites {
            assert!(
                s.starts_with("TLS13_")
                    || (s.starts_with("TLS_ECDHE_")
                        && (s.contains("_GCM_") || s.contains("CHACHA20"))),
                "{s} in {suites:?}"
            );
        }
        // Older minimums are served as TLS 1.2; a maximum below it is refused.
        assert_eq!(
            t("min_version: TLS10\n").versions().unwrap(),
            vec![&rustls::version::TLS12, &rustls::version::TLS13]
        );
        assert_eq!(
            t("min_version: TLS13\n").versions().unwrap(),
            vec![&rustls::version::TLS13]
        );
        assert!(
            t("max_version: TLS11\n")
                .versions()
                .unwrap_err()
                .contains("TLS11")
        );
        // cipher_suites: TLS 1.3's, then the listed ones in order; unknown or unsupported
        // names are errors.
        let chosen = t(
            "cipher_suites: [TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n",
        );
        let n = names(&chosen);
        let tls12: Vec<&String> = n.iter().filter(|s| !s.starts_with("TLS13_")).collect();
        assert_eq!(
            tls12,
            [
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
            ]
        );
        assert_eq!(n.iter().filter(|s| s.starts_with("TLS13_")).count(), 3);
        for bad in [
            "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
            "TLS_RSA_WITH_AES_128_GCM_SHA256",
            "nope",
        ] {
            let e = t(&format!("cipher_suites: [{bad}]\n"))
                .provider()
                .unwrap_err();
            assert!(e.contains(bad) && e.contains("not supported"), "{e}");
        }
        let curves = t("curve_preferences: [CurveP384, X25519]\n")
            .provider()
            .unwrap();
        let curves: Vec<String> = curves
            .kx_groups
            .iter()
            .map(|g| format!("{:?}", g.name()))
            .collect();
        assert_eq!(curves, ["secp384r1", "X25519"]);
        assert!(t("curve_preferences: [CurveP521]\n").provider().is_err());
    }
}
