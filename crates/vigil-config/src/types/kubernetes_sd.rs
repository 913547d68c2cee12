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

/// `attach_metadata:`. `deployment`, `job` and `cronjob` are read but not acted upon.
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
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
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
