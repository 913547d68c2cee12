//! `consul_sd_configs:` entries, key for key with Prometheus 3.14's `discovery/consul`
//! `SDConfig` (defaults from its `DefaultSDConfig`). Validation (its `UnmarshalYAML`) is in
//! `load/consul.rs`; discovery itself is in `vigil-scrape`.
//!
//! A child module of `types` so that it can use the `http_client_struct!` macro.

use super::*;

fn default_consul_server() -> String {
    "localhost:8500".into()
}

fn default_tag_separator() -> String {
    ",".into()
}

fn default_consul_refresh() -> Duration {
    Duration::from_secs(30)
}

fn is_empty_secret(s: &Secret) -> bool {
    s.is_empty()
}

http_client_struct! { plain
    /// One `consul_sd_configs:` entry. A YAML null reads as the empty value, as yaml.v2 does.
    #[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct ConsulSdConfig {
        #[serde(default = "default_consul_server", deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
        pub server: String,
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
        pub path_prefix: String,
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "is_empty_secret")]
        pub token: Secret,
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
        pub datacenter: String,
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
        pub namespace: String,
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
        pub partition: String,
        #[serde(default = "default_tag_separator", deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
        pub tag_separator: String,
        #[serde(default = "default_scheme", deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
        pub scheme: String,
        /// Deprecated; the loader turns `username`/`password` into `basic_auth`.
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
        pub username: String,
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "is_empty_secret")]
        pub password: Secret,
        #[serde(default = "default_true", deserialize_with = "null_default")]
        pub allow_stale: bool,
        #[serde(default = "default_consul_refresh", with = "de::duration", skip_serializing_if = "is_zero_dur")]
        pub refresh_interval: Duration,
        #[serde(default, deserialize_with = "string_list", skip_serializing_if = "Vec::is_empty")]
        pub services: Vec<String>,
        #[serde(default, deserialize_with = "string_list", skip_serializing_if = "Vec::is_empty")]
        pub tags: Vec<String>,
        #[serde(default, deserialize_with = "unique_map", skip_serializing_if = "BTreeMap::is_empty")]
        pub node_meta: BTreeMap<String, String>,
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
        pub filter: String,
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
        pub health_filter: String,
    }
}

impl Default for ConsulSdConfig {
    /// Prometheus' `DefaultSDConfig`.
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("an empty consul_sd_config decodes")
    }
}

impl ConsulSdConfig {
    /// A key that differs whenever anything in the entry differs, secrets included (their
    /// `Debug` form is redacted), for telling running discoveries apart.
    pub fn fingerprint(&self) -> String {
        let mut secrets = vec![self.token.expose(), self.password.expose()];
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
