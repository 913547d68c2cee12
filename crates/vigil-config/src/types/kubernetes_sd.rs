//! `kubernetes_sd_configs:` entries, key for key with Prometheus 3.14's `discovery/kubernetes`
//! `SDConfig`. Validation (its `UnmarshalYAML`) is in `load/kubernetes.rs`; discovery itself is
//! in `vigil-scrape` (`kubernetes.rs`).
//!
//! A child module of `types` so that it can use the `http_client_struct!` macro.

use super::*;

/// yaml.v2's `omitempty` on a struct: left out when it is the zero value.
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// `namespaces:` of a `kubernetes_sd_config`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesNamespaces {
    #[serde(default, deserialize_with = "null_default")]
    pub own_namespace: bool,
    #[serde(default, deserialize_with = "string_list")]
    pub names: Vec<String>,
}

/// One `selectors:` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSelector {
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub role: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub label: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub field: String,
}

/// `attach_metadata:` (acted upon in `vigil-scrape`'s `kubernetes.rs`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesAttachMetadata {
    #[serde(default, deserialize_with = "null_default")]
    pub node: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub namespace: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub deployment: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub job: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub cronjob: bool,
}

http_client_struct! { plain
    /// One `kubernetes_sd_configs:` entry.
    #[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct KubernetesSdConfig {
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "String::is_empty", serialize_with = "de::ser_url")]
        pub api_server: String,
        #[serde(default, deserialize_with = "null_default")]
        pub role: String,
        #[serde(default, deserialize_with = "null_default")]
        pub kubeconfig_file: String,
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "is_default")]
        pub namespaces: KubernetesNamespaces,
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
        pub selectors: Vec<KubernetesSelector>,
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "is_default")]
        pub attach_metadata: KubernetesAttachMetadata,
    }
}

impl Default for KubernetesSdConfig {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("an empty kubernetes_sd_config decodes")
    }
}

impl KubernetesSdConfig {
    /// True when any HTTP client setting differs from Prometheus' `DefaultHTTPClientConfig`.
    pub fn has_custom_http_client(&self) -> bool {
        self.bearer_token.is_some()
            || self.bearer_token_file.is_some()
            || self.http_client_config() != Self::default().http_client_config()
    }

    /// A key that differs whenever anything in the entry differs, secrets included (their
    /// `Debug` form is redacted), for telling running discoveries apart.
    pub fn fingerprint(&self) -> String {
        let mut secrets = Vec::new();
        if let Some(p) = self.basic_auth.as_ref().and_then(|b| b.password.as_ref()) {
            secrets.push(p.expose());
        }
        if let Some(c) = self
            .authorization
            .as_ref()
            .and_then(|a| a.credentials.as_ref())
        {
            secrets.push(c.expose());
        }
        if let Some(t) = &self.bearer_token {
            secrets.push(t.expose());
        }
        for h in self.http_headers.values() {
            secrets.extend(h.secrets.iter().map(Secret::expose));
        }
        format!("{self:?}{secrets:?}")
    }
}

/// What a `kubeconfig_file` says for its current context, as client-go's loader reads the common
/// fields: the cluster's server and TLS settings and the user's credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct Kubeconfig {
    /// The cluster's `server`, without a trailing `/`.
    pub server: String,
    /// TLS (CA, client certificate, `insecure-skip-tls-verify`) and basic auth or a static
    /// `token`.
    pub http: HttpClientConfig,
    /// The user's `tokenFile`, to be read before every request.
    pub token_file: Option<String>,
    /// The context's `namespace` (informational; Prometheus does not use it).
    pub namespace: String,
}

/// Standard base64 (with or without padding), as kubeconfig's `*-data` fields hold.
fn decode_base64(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return Err(format!("illegal base64 data: {:?}", c as char)),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

impl Kubeconfig {
    /// Reads `path` (client-go's `clientcmd.BuildConfigFromFlags("", path)` for the common
    /// fields). Relative file paths in it are resolved against its directory, as client-go
    /// does. Errors name the file.
    pub fn load(path: &str) -> Result<Kubeconfig, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("kubeconfig {path:?}: {e}"))?;
        Self::parse(&text, path)
    }

    /// [`Kubeconfig::load`] on text already read from `path`.
    pub fn parse(text: &str, path: &str) -> Result<Kubeconfig, String> {
        use serde_yaml::Value;
        let err = |m: String| format!("kubeconfig {path:?}: {m}");
        let doc: Value = serde_yaml::from_str(text).map_err(|e| err(e.to_string()))?;
        let dir = std::path::Path::new(path)
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let resolve = |p: &str| {
            if std::path::Path::new(p).is_relative() {
                dir.join(p).display().to_string()
            } else {
                p.to_string()
            }
        };
        let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let named = |list: &str, name: &str, inner: &str| -> Option<Value> {
            doc.get(list)?
                .as_sequence()?
                .iter()
                .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
                .and_then(|e| e.get(inner).cloned())
        };
        let current = str_of(&doc, "current-context").unwrap_or_default();
        if current.is_empty() {
            return Err(err(
                "invalid configuration: no configuration has been provided (no current-context)"
                    .into(),
            ));
        }
        let ctx = named("contexts", &current, "context").ok_or_else(|| {
            err(format!(
                "context was not found for specified context: {current}"
            ))
        })?;
        let cluster_name = str_of(&ctx, "cluster").unwrap_or_default();
        let cluster = named("clusters", &cluster_name, "cluster").ok_or_else(|| {
            err(format!(
                "invalid configuration: context {current:?} names cluster {cluster_name:?}, which was not found"
            ))
        })?;
        let user_name = str_of(&ctx, "user").unwrap_or_default();
        let user = if user_name.is_empty() {
            Value::Null
        } else {
            named("users", &user_name, "user").ok_or_else(|| {
                err(format!(
                    "invalid configuration: context {current:?} names user {user_name:?}, which was not found"
                ))
            })?
        };
        let server = str_of(&cluster, "server").unwrap_or_default();
        if server.is_empty() {
            return Err(err(format!(
                "invalid configuration: no server found for cluster {cluster_name:?}"
            )));
        }
        let mut http = KubernetesSdConfig::default().http_client_config();
        let data = |v: &Value, k: &str| -> Result<Option<String>, String> {
            match str_of(v, k) {
                Some(d) => decode_base64(&d)
                    .map_err(|e| err(format!("{k}: {e}")))
                    .and_then(|b| String::from_utf8(b).map_err(|e| err(format!("{k}: {e}"))))
                    .map(Some),
                None => Ok(None),
            }
        };
        let tls = &mut http.tls_config;
        tls.ca = data(&cluster, "certificate-authority-data")?;
        if tls.ca.is_none() {
            tls.ca_file = str_of(&cluster, "certificate-authority").map(|p| resolve(&p));
        }
        tls.insecure_skip_verify = cluster
            .get("insecure-skip-tls-verify")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        tls.server_name = str_of(&cluster, "tls-server-name").filter(|s| !s.is_empty());
        tls.cert = data(&user, "client-certificate-data")?;
        if tls.cert.is_none() {
            tls.cert_file = str_of(&user, "client-certificate").map(|p| resolve(&p));
        }
        tls.key = data(&user, "client-key-data")?.map(Secret);
        if tls.key.is_none() {
            tls.key_file = str_of(&user, "client-key").map(|p| resolve(&p));
        }
        let mut token_file = None;
        if let Some(t) = str_of(&user, "token").filter(|t| !t.is_empty()) {
            http.authorization = Some(Authorization {
                auth_type: "Bearer".into(),
                credentials: Some(Secret(t)),
                credentials_file: None,
                credentials_ref: None,
            });
        } else if let Some(f) = str_of(&user, "tokenFile").filter(|t| !t.is_empty()) {
            token_file = Some(resolve(&f));
        } else if let Some(u) = str_of(&user, "username").filter(|u| !u.is_empty()) {
            http.basic_auth = Some(BasicAuth {
                username: u,
                password: str_of(&user, "password").map(Secret),
                ..Default::default()
            });
        }
        Ok(Kubeconfig {
            server: server.trim_end_matches('/').to_string(),
            http,
            token_file,
            namespace: str_of(&ctx, "namespace").unwrap_or_default(),
        })
    }
}
