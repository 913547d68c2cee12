//! The `prometheus.yml` schema as serde types, key for key with Prometheus 3.x.
//!
//! Every struct denies unknown fields, so a misspelt key is an error with its line, as in
//! Prometheus. Prometheus' common HTTP client settings are inlined into each struct that uses
//! them by the `http_client_struct!` macro (serde's `flatten` cannot be combined with
//! `deny_unknown_fields`), and the service discoveries vigil does not implement are accepted as
//! opaque YAML so that any Prometheus config loads; the loader turns them into warnings.
//! Zero values (`0`, `0s`) mean "unset" where Prometheus does the same, so inheritance from
//! `global` can be resolved after decoding without `Option`s in the public fields.

use crate::de::{
    self, Opaque, Secret, default_true, is_false, is_zero, no_null_seq, string_list, unique_map,
};
use crate::relabel::RelabelConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use vigil_model::Duration;

fn is_zero_dur(d: &Duration) -> bool {
    d.0 == 0
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default, deserialize_with = "null_default")]
    pub global: GlobalConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeConfig>,
    #[serde(default, deserialize_with = "string_list")]
    pub rule_files: Vec<String>,
    #[serde(
        default,
        deserialize_with = "string_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub scrape_config_files: Vec<String>,
    #[serde(default, deserialize_with = "no_null_seq")]
    pub scrape_configs: Vec<ScrapeConfig>,
    #[serde(default, deserialize_with = "null_default")]
    pub alerting: AlertingConfig,
    #[serde(
        default,
        deserialize_with = "no_null_seq",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub remote_write: Vec<RemoteWriteConfig>,
    #[serde(
        default,
        deserialize_with = "no_null_seq",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub remote_read: Vec<RemoteReadConfig>,
    #[serde(default, deserialize_with = "null_default")]
    pub storage: StorageConfig,
    /// Accepted, not supported by vigil (warned about).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Opaque>,
    /// The OTLP receiver's translation settings (`docs/otlp.md`); `None` when the file has no
    /// `otlp` section (the defaults of [`OtlpConfig`] apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp: Option<OtlpConfig>,
}

/// `otlp:`: how the OTLP receiver turns OpenTelemetry metrics into series, key for key with
/// Prometheus 3.x. Checked by the loader (strategy names, the promote/ignore combinations).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    #[serde(default, skip_serializing_if = "is_false")]
    pub promote_all_resource_attributes: bool,
    #[serde(
        default,
        deserialize_with = "string_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub promote_resource_attributes: Vec<String>,
    #[serde(
        default,
        deserialize_with = "string_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ignore_resource_attributes: Vec<String>,
    /// One of [`TranslationStrategy`]'s names; validated by the loader.
    #[serde(default = "default_translation_strategy")]
    pub translation_strategy: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub keep_identifying_resource_attributes: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub convert_histograms_to_nhcb: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub promote_scope_metadata: bool,
    /// `_foo` becomes `key_foo` (Prometheus' default, for backwards compatibility).
    #[serde(default = "default_true")]
    pub label_name_underscore_sanitization: bool,
    /// `a..b` becomes `a__b`, not `a_b` (Prometheus' default, for backwards compatibility).
    #[serde(default = "default_true")]
    pub label_name_preserve_multiple_underscores: bool,
}

fn default_translation_strategy() -> String {
    TranslationStrategy::UnderscoreEscapingWithSuffixes
        .name()
        .to_string()
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            promote_all_resource_attributes: false,
            promote_resource_attributes: Vec::new(),
            ignore_resource_attributes: Vec::new(),
            translation_strategy: default_translation_strategy(),
            keep_identifying_resource_attributes: false,
            convert_histograms_to_nhcb: false,
            promote_scope_metadata: false,
            label_name_underscore_sanitization: true,
            label_name_preserve_multiple_underscores: true,
        }
    }
}

impl OtlpConfig {
    /// The parsed strategy (the loader has refused unknown names; the default otherwise).
    pub fn strategy(&self) -> TranslationStrategy {
        TranslationStrategy::parse(&self.translation_strategy)
            .unwrap_or(TranslationStrategy::UnderscoreEscapingWithSuffixes)
    }
}

/// `otlp.translation_strategy`: whether names are escaped to the legacy character set and
/// whether type and unit suffixes are added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranslationStrategy {
    UnderscoreEscapingWithSuffixes,
    UnderscoreEscapingWithoutSuffixes,
    NoUTF8EscapingWithSuffixes,
    NoTranslation,
}

impl TranslationStrategy {
    pub const ALL: [TranslationStrategy; 4] = [
        TranslationStrategy::UnderscoreEscapingWithSuffixes,
        TranslationStrategy::UnderscoreEscapingWithoutSuffixes,
        TranslationStrategy::NoUTF8EscapingWithSuffixes,
        TranslationStrategy::NoTranslation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TranslationStrategy::UnderscoreEscapingWithSuffixes => "UnderscoreEscapingWithSuffixes",
            TranslationStrategy::UnderscoreEscapingWithoutSuffixes => {
                "UnderscoreEscapingWithoutSuffixes"
            }
            TranslationStrategy::NoUTF8EscapingWithSuffixes => "NoUTF8EscapingWithSuffixes",
            TranslationStrategy::NoTranslation => "NoTranslation",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == s)
    }

    /// Names are escaped to `[a-zA-Z0-9_:]` (else kept as UTF-8).
    pub fn escapes(self) -> bool {
        matches!(
            self,
            TranslationStrategy::UnderscoreEscapingWithSuffixes
                | TranslationStrategy::UnderscoreEscapingWithoutSuffixes
        )
    }

    /// Unit and type suffixes (`_seconds`, `_total`, `_ratio`) are added.
    pub fn adds_suffixes(self) -> bool {
        matches!(
            self,
            TranslationStrategy::UnderscoreEscapingWithSuffixes
                | TranslationStrategy::NoUTF8EscapingWithSuffixes
        )
    }
}

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gogc: Option<i64>,
}

/// `global:`. After loading, intervals and timeouts hold their effective values.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    #[serde(default, with = "de::duration")]
    pub scrape_interval: Duration,
    #[serde(default, with = "de::duration")]
    pub scrape_timeout: Duration,
    #[serde(
        default,
        deserialize_with = "opt_string_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub scrape_protocols: Option<Vec<String>>,
    #[serde(default, with = "de::duration")]
    pub evaluation_interval: Duration,
    #[serde(default, with = "de::duration", skip_serializing_if = "is_zero_dur")]
    pub rule_query_offset: Duration,
    #[serde(
        default,
        deserialize_with = "unique_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub external_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_log_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_failure_log_file: Option<String>,
    #[serde(default, with = "de::size", skip_serializing_if = "is_zero")]
    pub body_size_limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sample_limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub target_limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub label_limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub label_name_length_limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub label_value_length_limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_dropped_targets: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name_validation_scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name_escaping_scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_scrape_classic_histograms: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert_classic_histograms_to_nhcb: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_native_histograms: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_scrape_metrics: Option<bool>,
}

fn opt_string_list<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    Option::<Vec<String>>::deserialize(d)
}

/// `basic_auth:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_ref: Option<String>,
}

/// `authorization:` (`type` defaults to `Bearer`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(default, rename = "type")]
    pub auth_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_ref: Option<String>,
}

/// `tls_config:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_version: Option<String>,
}

/// `oauth2:` (accepted; vigil warns that it does not perform the OAuth2 flow).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2 {
    #[serde(default)]
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_key_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<Opaque>,
    #[serde(
        default,
        deserialize_with = "string_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub token_url: String,
    #[serde(
        default,
        deserialize_with = "unique_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub endpoint_params: BTreeMap<String, String>,
    #[serde(default)]
    pub tls_config: TlsConfig,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "de::ser_url_opt"
    )]
    pub proxy_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_proxy: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub proxy_from_environment: bool,
    #[serde(
        default,
        deserialize_with = "unique_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub proxy_connect_header: BTreeMap<String, Vec<Secret>>,
}

/// One entry of `http_headers:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpHeader {
    #[serde(
        default,
        deserialize_with = "string_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<Secret>,
    #[serde(
        default,
        deserialize_with = "string_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub files: Vec<String>,
}

/// Prometheus' common HTTP client settings, as one value (see `http_client_config()` on the
/// structs that inline them).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HttpClientConfig {
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub oauth2: Option<OAuth2>,
    pub tls_config: TlsConfig,
    pub proxy_url: Option<String>,
    pub no_proxy: Option<String>,
    pub proxy_from_environment: bool,
    pub proxy_connect_header: BTreeMap<String, Vec<Secret>>,
    pub follow_redirects: bool,
    pub enable_http2: bool,
    pub http_headers: BTreeMap<String, HttpHeader>,
}

/// A target group: `static_configs` entries and the content of `file_sd` files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    #[serde(default, deserialize_with = "string_list")]
    pub targets: Vec<String>,
    #[serde(
        default,
        deserialize_with = "unique_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
}

/// A target group as read by `file_sd` (same shape as a static config).
pub type TargetGroup = StaticConfig;

/// `file_sd_configs:` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    #[serde(default, deserialize_with = "string_list")]
    pub files: Vec<String>,
    #[serde(default = "default_file_sd_refresh", with = "de::duration")]
    pub refresh_interval: Duration,
}

fn default_file_sd_refresh() -> Duration {
    Duration::from_secs(300)
}

fn default_http_sd_refresh() -> Duration {
    Duration::from_secs(60)
}

macro_rules! http_client_struct {
    (@common $(#[$meta:meta])* pub struct $name:ident { $($body:tt)* } { $($extra:tt)* }) => {
        $(#[$meta])*
        pub struct $name {
            $($body)*
            $($extra)*
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub basic_auth: Option<BasicAuth>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub authorization: Option<Authorization>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub oauth2: Option<OAuth2>,
            /// Legacy; moved into `authorization` by the loader.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub bearer_token: Option<Secret>,
            /// Legacy; moved into `authorization.credentials_file` by the loader.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub bearer_token_file: Option<String>,
            #[serde(default)]
            pub tls_config: TlsConfig,
            #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "de::ser_url_opt")]
            pub proxy_url: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub no_proxy: Option<String>,
            #[serde(default, skip_serializing_if = "is_false")]
            pub proxy_from_environment: bool,
            #[serde(default, deserialize_with = "unique_map", skip_serializing_if = "BTreeMap::is_empty")]
            pub proxy_connect_header: BTreeMap<String, Vec<Secret>>,
            #[serde(default = "default_true")]
            pub follow_redirects: bool,
            #[serde(default = "default_true")]
            pub enable_http2: bool,
            #[serde(default, deserialize_with = "unique_map", skip_serializing_if = "BTreeMap::is_empty")]
            pub http_headers: BTreeMap<String, HttpHeader>,
        }

        impl $name {
            /// The HTTP client settings of this section as one value.
            pub fn http_client_config(&self) -> HttpClientConfig {
                HttpClientConfig {
                    basic_auth: self.basic_auth.clone(),
                    authorization: self.authorization.clone(),
                    oauth2: self.oauth2.clone(),
                    tls_config: self.tls_config.clone(),
                    proxy_url: self.proxy_url.clone(),
                    no_proxy: self.no_proxy.clone(),
                    proxy_from_environment: self.proxy_from_environment,
                    proxy_connect_header: self.proxy_connect_header.clone(),
                    follow_redirects: self.follow_redirects,
                    enable_http2: self.enable_http2,
                    http_headers: self.http_headers.clone(),
                }
            }

            pub(crate) fn http_parts_mut(&mut self) -> HttpPartsMut<'_> {
                HttpPartsMut {
                    basic_auth: &mut self.basic_auth,
                    authorization: &mut self.authorization,
                    oauth2: &mut self.oauth2,
                    bearer_token: &mut self.bearer_token,
                    bearer_token_file: &mut self.bearer_token_file,
                    tls_config: &mut self.tls_config,
                    http_headers: &mut self.http_headers,
                }
            }
        }
    };
    (sd $(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        http_client_struct!(@common $(#[$meta])* pub struct $name { $($body)* } {
            #[serde(default, deserialize_with = "no_null_seq", skip_serializing_if = "Vec::is_empty")]
            pub static_configs: Vec<StaticConfig>,
            #[serde(default, deserialize_with = "no_null_seq", skip_serializing_if = "Vec::is_empty")]
            pub file_sd_configs: Vec<FileSdConfig>,
            #[serde(default, deserialize_with = "no_null_seq", skip_serializing_if = "Vec::is_empty")]
            pub http_sd_configs: Vec<HttpSdConfig>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub azure_sd_configs: Option<Opaque>,
            #[serde(default, deserialize_with = "no_null_seq", skip_serializing_if = "Vec::is_empty")]
            pub consul_sd_configs: Vec<ConsulSdConfig>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub digitalocean_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub docker_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub dockerswarm_sd_configs: Option<Opaque>,
            #[serde(default, deserialize_with = "no_null_seq", skip_serializing_if = "Vec::is_empty")]
            pub dns_sd_configs: Vec<crate::dns_sd::DnsSdConfig>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub ec2_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub eureka_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub gce_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub hetzner_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub ionos_sd_configs: Option<Opaque>,
            #[serde(default, deserialize_with = "no_null_seq", skip_serializing_if = "Vec::is_empty")]
            pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub kuma_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub lightsail_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub linode_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub marathon_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub nerve_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub nomad_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub oci_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub openstack_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub outscale_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub ovhcloud_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub puppetdb_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub scaleway_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub serverset_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub stackit_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub triton_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub uyuni_sd_configs: Option<Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")] pub vultr_sd_configs: Option<Opaque>,
        });

        impl $name {
            /// Names of the service discovery keys present here that vigil does not implement.
            pub fn unsupported_service_discoveries(&self) -> Vec<&'static str> {
                let all: &[(&'static str, &Option<Opaque>)] = &[
                    ("azure_sd_configs", &self.azure_sd_configs),
                    ("digitalocean_sd_configs", &self.digitalocean_sd_configs),
                    ("docker_sd_configs", &self.docker_sd_configs),
                    ("dockerswarm_sd_configs", &self.dockerswarm_sd_configs),
                    ("ec2_sd_configs", &self.ec2_sd_configs),
                    ("eureka_sd_configs", &self.eureka_sd_configs),
                    ("gce_sd_configs", &self.gce_sd_configs),
                    ("hetzner_sd_configs", &self.hetzner_sd_configs),
                    ("ionos_sd_configs", &self.ionos_sd_configs),
                    ("kuma_sd_configs", &self.kuma_sd_configs),
                    ("lightsail_sd_configs", &self.lightsail_sd_configs),
                    ("linode_sd_configs", &self.linode_sd_configs),
                    ("marathon_sd_configs", &self.marathon_sd_configs),
                    ("nerve_sd_configs", &self.nerve_sd_configs),
                    ("nomad_sd_configs", &self.nomad_sd_configs),
                    ("oci_sd_configs", &self.oci_sd_configs),
                    ("openstack_sd_configs", &self.openstack_sd_configs),
                    ("outscale_sd_configs", &self.outscale_sd_configs),
                    ("ovhcloud_sd_configs", &self.ovhcloud_sd_configs),
                    ("puppetdb_sd_configs", &self.puppetdb_sd_configs),
                    ("scaleway_sd_configs", &self.scaleway_sd_configs),
                    ("serverset_sd_configs", &self.serverset_sd_configs),
                    ("stackit_sd_configs", &self.stackit_sd_configs),
                    ("triton_sd_configs", &self.triton_sd_configs),
                    ("uyuni_sd_configs", &self.uyuni_sd_configs),
                    ("vultr_sd_configs", &self.vultr_sd_configs),
                ];
                all.iter().filter(|(_, v)| v.as_ref().is_some_and(|v| !v.is_empty())).map(|(n, _)| *n).collect()
            }
        }
    };
    (plain $(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        http_client_struct!(@common $(#[$meta])* pub struct $name { $($body)* } {});
    };
}

/// Mutable access to the HTTP client fields shared by all sections (for validation and path
/// resolution).
pub(crate) struct HttpPartsMut<'a> {
    pub basic_auth: &'a mut Option<BasicAuth>,
    pub authorization: &'a mut Option<Authorization>,
    pub oauth2: &'a mut Option<OAuth2>,
    pub bearer_token: &'a mut Option<Secret>,
    pub bearer_token_file: &'a mut Option<String>,
    pub tls_config: &'a mut TlsConfig,
    pub http_headers: &'a mut BTreeMap<String, HttpHeader>,
}

http_client_struct! { plain
    /// `http_sd_configs:` entry (URL plus HTTP client settings).
    #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct HttpSdConfig {
        #[serde(default, serialize_with = "de::ser_url")]
        pub url: String,
        #[serde(default = "default_http_sd_refresh", with = "de::duration")]
        pub refresh_interval: Duration,
    }
}

// `consul_sd_configs:` entries (a child module, to use `http_client_struct!`).
mod consul_sd;
pub use consul_sd::ConsulSdConfig;
// `kubernetes_sd_configs:` entries.
mod kubernetes_sd;
pub use kubernetes_sd::{
    Kubeconfig, KubernetesAttachMetadata, KubernetesNamespaces, KubernetesSdConfig,
    KubernetesSelector,
};

http_client_struct! { sd
    /// One `scrape_configs:` entry. After loading, intervals, timeouts, limits and histogram
    /// switches hold their effective values (inherited from `global` where not set).
    #[derive(Debug, Clone, Default, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct ScrapeConfig {
        #[serde(default)]
        pub job_name: String,
        #[serde(default)]
        pub honor_labels: bool,
        #[serde(default = "default_true")]
        pub honor_timestamps: bool,
        #[serde(default)]
        pub track_timestamps_staleness: bool,
        #[serde(default, deserialize_with = "unique_map", skip_serializing_if = "BTreeMap::is_empty")]
        pub params: BTreeMap<String, Vec<String>>,
        #[serde(default, with = "de::duration")]
        pub scrape_interval: Duration,
        #[serde(default, with = "de::duration")]
        pub scrape_timeout: Duration,
        #[serde(default, deserialize_with = "opt_string_list", skip_serializing_if = "Option::is_none")]
        pub scrape_protocols: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub fallback_scrape_protocol: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub scrape_failure_log_file: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub always_scrape_classic_histograms: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub convert_classic_histograms_to_nhcb: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub scrape_native_histograms: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub extra_scrape_metrics: Option<bool>,
        #[serde(default = "default_metrics_path")]
        pub metrics_path: String,
        #[serde(default = "default_scheme")]
        pub scheme: String,
        #[serde(default = "default_true")]
        pub enable_compression: bool,
        #[serde(default, with = "de::size", skip_serializing_if = "is_zero")]
        pub body_size_limit: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        pub sample_limit: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        pub target_limit: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        pub label_limit: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        pub label_name_length_limit: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        pub label_value_length_limit: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        pub native_histogram_bucket_limit: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub native_histogram_min_bucket_factor: Option<f64>,
        #[serde(default, skip_serializing_if = "is_zero")]
        pub keep_dropped_targets: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub metric_name_validation_scheme: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub metric_name_escaping_scheme: Option<String>,
        #[serde(default, deserialize_with = "no_null_seq", skip_serializing_if = "Vec::is_empty")]
        pub relabel_configs: Vec<RelabelConfig>,
        #[serde(default, deserialize_with = "no_null_seq", skip_serializing_if = "Vec::is_empty")]
        pub metric_relabel_configs: Vec<RelabelConfig>,
    }
}

impl ScrapeConfig {
    /// Effective `scrape_native_histograms` (false unless enabled here or globally).
    pub fn native_histograms_enabled(&self) -> bool {
        self.scrape_native_histograms.unwrap_or(false)
    }
}

fn default_metrics_path() -> String {
    "/metrics".into()
}
fn default_scheme() -> String {
    "http".into()
}

/// `alerting:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    #[serde(
        default,
        deserialize_with = "no_null_seq",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub alert_relabel_configs: Vec<RelabelConfig>,
    #[serde(
        default,
        deserialize_with = "no_null_seq",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub alertmanagers: Vec<AlertmanagerConfig>,
}

http_client_struct! { sd
    /// One `alerting.alertmanagers:` entry.
    #[derive(Debug, Clone, Default, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct AlertmanagerConfig {
        #[serde(default = "default_scheme")]
        pub scheme: String,
        #[serde(default = "default_path_prefix")]
        pub path_prefix: String,
        #[serde(default = "default_am_timeout", with = "de::duration")]
        pub timeout: Duration,
        #[serde(default = "default_api_version")]
        pub api_version: String,
        #[serde(default, deserialize_with = "no_null_seq", skip_serializing_if = "Vec::is_empty")]
        pub relabel_configs: Vec<RelabelConfig>,
        #[serde(default, deserialize_with = "no_null_seq", skip_serializing_if = "Vec::is_empty")]
        pub alert_relabel_configs: Vec<RelabelConfig>,
        /// Accepted, not supported by vigil (warned about).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub sigv4: Option<Opaque>,
    }
}

fn default_path_prefix() -> String {
    "/".into()
}
fn default_am_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_api_version() -> String {
    "v2".into()
}

http_client_struct! { plain
    /// One `remote_write:` entry.
    #[derive(Debug, Clone, Default, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct RemoteWriteConfig {
        #[serde(default, deserialize_with = "null_default", serialize_with = "de::ser_url")]
        pub url: String,
        #[serde(default = "default_rw_timeout", with = "de::duration")]
        pub remote_timeout: Duration,
        #[serde(default, deserialize_with = "unique_map", skip_serializing_if = "BTreeMap::is_empty")]
        pub headers: BTreeMap<String, String>,
        #[serde(default, deserialize_with = "no_null_seq", skip_serializing_if = "Vec::is_empty")]
        pub write_relabel_configs: Vec<RelabelConfig>,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub name: String,
        #[serde(default, skip_serializing_if = "is_false")]
        pub send_exemplars: bool,
        #[serde(default, skip_serializing_if = "is_false")]
        pub send_native_histograms: bool,
        #[serde(default, skip_serializing_if = "is_false")]
        pub round_robin_dns: bool,
        #[serde(default = "default_protobuf_message")]
        pub protobuf_message: String,
        #[serde(default, deserialize_with = "null_default")]
        pub queue_config: QueueConfig,
        #[serde(default, deserialize_with = "null_default")]
        pub metadata_config: MetadataConfig,
        /// Accepted, not supported by vigil (warned about).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub sigv4: Option<Opaque>,
        /// Accepted, not supported by vigil (warned about).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub azuread: Option<Opaque>,
        /// Accepted, not supported by vigil (warned about).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub google_iam: Option<Opaque>,
    }
}

/// Remote write protobuf message of Remote-Write 1.0.
pub const REMOTE_WRITE_V1: &str = "prometheus.WriteRequest";
/// Remote write protobuf message of Remote-Write 2.0.
pub const REMOTE_WRITE_V2: &str = "io.prometheus.write.v2.Request";

fn default_protobuf_message() -> String {
    REMOTE_WRITE_V1.into()
}
fn default_rw_timeout() -> Duration {
    Duration::from_secs(30)
}

/// `queue_config:` of a remote write.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    pub capacity: i64,
    pub max_shards: i64,
    pub min_shards: i64,
    pub max_samples_per_send: i64,
    #[serde(with = "de::duration")]
    pub batch_send_deadline: Duration,
    #[serde(with = "de::duration")]
    pub min_backoff: Duration,
    #[serde(with = "de::duration")]
    pub max_backoff: Duration,
    pub retry_on_http_429: bool,
    #[serde(with = "de::duration")]
    pub sample_age_limit: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: 10_000,
            max_shards: 50,
            min_shards: 1,
            max_samples_per_send: 2_000,
            batch_send_deadline: Duration::from_secs(5),
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            retry_on_http_429: false,
            sample_age_limit: Duration::ZERO,
        }
    }
}

/// `metadata_config:` of a remote write.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    pub send: bool,
    #[serde(with = "de::duration")]
    pub send_interval: Duration,
    pub max_samples_per_send: i64,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            send: true,
            send_interval: Duration::from_secs(60),
            max_samples_per_send: 2_000,
        }
    }
}

http_client_struct! { plain
    /// One `remote_read:` entry.
    #[derive(Debug, Clone, Default, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct RemoteReadConfig {
        #[serde(default, deserialize_with = "null_default", serialize_with = "de::ser_url")]
        pub url: String,
        #[serde(default = "default_rr_timeout", with = "de::duration")]
        pub remote_timeout: Duration,
        #[serde(default, deserialize_with = "unique_map", skip_serializing_if = "BTreeMap::is_empty")]
        pub headers: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub name: String,
        #[serde(default, deserialize_with = "unique_map", skip_serializing_if = "BTreeMap::is_empty")]
        pub required_matchers: BTreeMap<String, String>,
        #[serde(default)]
        pub read_recent: bool,
        #[serde(default = "default_true")]
        pub filter_external_labels: bool,
    }
}

fn default_rr_timeout() -> Duration {
    Duration::from_secs(60)
}

/// `storage:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsdb: Option<TsdbConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemplars: Option<ExemplarsConfig>,
}

/// `storage.tsdb:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TsdbConfig {
    #[serde(default, with = "de::duration", skip_serializing_if = "is_zero_dur")]
    pub out_of_order_time_window: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_series_compaction_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_encoding: Option<ChunkEncodingConfig>,
}

/// `storage.tsdb.retention:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    #[serde(
        default,
        with = "de::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub time: Option<Duration>,
    /// Bytes. Negative values are refused by the loader.
    #[serde(
        default,
        with = "de::signed_size",
        skip_serializing_if = "Option::is_none"
    )]
    pub size: Option<i64>,
    /// Percentage of the disk, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<f64>,
}

/// `storage.tsdb.chunk_encoding:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkEncodingConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floats: Option<String>,
}

/// `storage.exemplars:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExemplarsConfig {
    #[serde(default)]
    pub max_exemplars: i64,
}

/// A file listed in `scrape_config_files`: only `scrape_configs` is allowed there.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScrapeConfigsFile {
    #[serde(default, deserialize_with = "no_null_seq")]
    pub scrape_configs: Vec<ScrapeConfig>,
}
