//! `consul_sd_configs`: Prometheus 3.14's `consul.SDConfig.UnmarshalYAML`, with its words.

use super::http::validate_http_client;
use super::paths::set_http_dir;
use crate::error::Problem;
use crate::types::*;
use std::path::Path;

/// Validates every `consul_sd_configs` entry under `key` (a scrape config or an
/// Alertmanager set) and moves the deprecated `username`/`password` into `basic_auth`.
pub(super) fn validate_consul_sds(sds: &mut [ConsulSdConfig], key: &str) -> Result<(), Problem> {
    for (i, c) in sds.iter_mut().enumerate() {
        let k = format!("{key}.consul_sd_configs[{i}]");
        if c.server.trim().is_empty() {
            return Err(Problem::new(
                format!("{k}.server"),
                "consul SD configuration requires a server address",
            ));
        }
        if !c.username.is_empty() || !c.password.is_empty() {
            if c.basic_auth.is_some() {
                return Err(Problem::new(
                    k,
                    "at most one of consul SD configuration username and password and basic auth can be configured",
                ));
            }
            c.basic_auth = Some(BasicAuth {
                username: c.username.clone(),
                password: Some(c.password.clone()),
                ..Default::default()
            });
        }
        if !c.token.is_empty() && (c.authorization.is_some() || c.oauth2.is_some()) {
            return Err(Problem::new(
                k,
                "at most one of consul SD token, authorization, or oauth2 can be configured",
            ));
        }
        validate_http_client(&mut c.http_parts_mut(), &k)?;
    }
    Ok(())
}

/// Resolves the relative paths (TLS files, secret files) of every entry against `dir`.
pub(super) fn set_consul_dirs(sds: &mut [ConsulSdConfig], dir: &Path) {
    for c in sds {
        set_http_dir(&mut c.http_parts_mut(), dir);
    }
}

#[cfg(test)]
mod tests {
    use crate::{ConsulSdConfig, load_str};
    use std::path::Path;

    fn load(sd: &str) -> Result<crate::Loaded, crate::ConfigError> {
        let indented: String = sd.lines().map(|l| format!("        {l}\n")).collect();
        let yaml = format!(
            "scrape_configs:\n  - job_name: c\n    consul_sd_configs:\n      -\n{indented}"
        );
        load_str(&yaml, Path::new("/etc/p/prometheus.yml"))
    }

    fn first(sd: &str) -> ConsulSdConfig {
        let l = load(sd).unwrap_or_else(|e| panic!("{e}"));
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        l.config.scrape_configs[0].consul_sd_configs[0].clone()
    }

    fn err(sd: &str) -> String {
        load(sd).unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_prometheus_default_sd_config() {
        let c = first("services: []");
        assert_eq!(c.server, "localhost:8500");
        assert_eq!(c.tag_separator, ",");
        assert_eq!(c.scheme, "http");
        assert!(c.allow_stale);
        assert_eq!(c.refresh_interval.to_string(), "30s");
        assert!(c.follow_redirects && c.enable_http2);
        assert!(c.services.is_empty() && c.tags.is_empty() && c.node_meta.is_empty());
        assert!(c.basic_auth.is_none());
        assert_eq!(c, ConsulSdConfig::default());
    }

    #[test]
    fn every_key_is_read() {
        let c = first(
            "server: consul.example:8501\npath_prefix: /consul\ntoken: t0k\ndatacenter: dc1\nnamespace: ns1\npartition: p1\nscheme: https\nusername: u\npassword: pw\nallow_stale: false\nrefresh_interval: 1m\nservices: [web, db]\ntags: [prod]\nnode_meta:\n  rack: r1\ntag_separator: ';'\nfilter: 'ServiceName != \"x\"'\nhealth_filter: 'Service.Port > 0'\ntls_config:\n  ca_file: ca.pem\n",
        );
        assert_eq!(c.server, "consul.example:8501");
        assert_eq!(c.path_prefix, "/consul");
        assert_eq!(c.token.expose(), "t0k");
        assert_eq!(
            (
                c.datacenter.as_str(),
                c.namespace.as_str(),
                c.partition.as_str()
            ),
            ("dc1", "ns1", "p1")
        );
        assert_eq!(c.scheme, "https");
        assert!(!c.allow_stale);
        assert_eq!(c.refresh_interval.to_string(), "1m");
        assert_eq!(c.services, ["web", "db"]);
        assert_eq!(c.tags, ["prod"]);
        assert_eq!(c.node_meta["rack"], "r1");
        assert_eq!(c.tag_separator, ";");
        assert_eq!(c.filter, "ServiceName != \"x\"");
        assert_eq!(c.health_filter, "Service.Port > 0");
        // username/password become basic auth, as in Prometheus.
        let b = c.basic_auth.as_ref().unwrap();
        assert_eq!(b.username, "u");
        assert_eq!(b.password.as_ref().unwrap().expose(), "pw");
        // Relative paths are resolved against the config file's directory.
        assert_eq!(c.tls_config.ca_file.as_deref(), Some("/etc/p/ca.pem"));
    }

    #[test]
    fn secrets_are_redacted_and_empty_values_omitted_on_output() {
        let l = load("token: t0k\npassword: pw\nusername: u\n").unwrap();
        let y = serde_yaml::to_string(&l.config.scrape_configs[0]).unwrap();
        assert!(y.contains("token: <secret>"), "{y}");
        assert!(y.contains("password: <secret>"), "{y}");
        assert!(!y.contains("t0k") && !y.contains("pw\n"), "{y}");
        assert!(y.contains("server: localhost:8500"), "{y}");
        assert!(y.contains("allow_stale: true"), "{y}");
        assert!(!y.contains("path_prefix"), "{y}");
    }

    #[test]
    fn validation_errors_are_prometheus_words() {
        let e = err("server: ''");
        assert!(
            e.ends_with(
                "scrape_configs[0].consul_sd_configs[0].server: consul SD configuration requires a server address"
            ),
            "{e}"
        );
        assert!(e.starts_with("/etc/p/prometheus.yml:5:"), "{e}");
        assert!(err("server: '  '").ends_with("consul SD configuration requires a server address"));
        assert!(
            err("username: u\nbasic_auth:\n  username: v\n").ends_with(
                "at most one of consul SD configuration username and password and basic auth can be configured"
            )
        );
        assert!(
            err("password: p\nbasic_auth:\n  username: v\n").ends_with(
                "at most one of consul SD configuration username and password and basic auth can be configured"
            )
        );
        assert!(
            err("token: t\nauthorization:\n  credentials: c\n").ends_with(
                "at most one of consul SD token, authorization, or oauth2 can be configured"
            )
        );
        assert!(
            err("token: t\noauth2:\n  client_id: a\n  token_url: http://x/\n").ends_with(
                "at most one of consul SD token, authorization, or oauth2 can be configured"
            )
        );
        // The HTTP client settings are validated as everywhere else.
        assert!(err("username: u\nbearer_token: b\n").ends_with(
            "at most one of basic_auth, bearer_token & bearer_token_file must be configured"
        ));
        let e = err("servers: x");
        assert!(e.contains("unknown field `servers`"), "{e}");
        let e = err("refresh_interval: soon");
        assert!(e.contains("not a valid duration string"), "{e}");
    }

    #[test]
    fn alertmanager_entries_are_validated() {
        let l = load_str(
            "alerting:\n  alertmanagers:\n    - consul_sd_configs:\n        - services: [am]\n          username: u\n",
            Path::new("/tmp/p.yml"),
        )
        .unwrap();
        // Consul discovery runs for Alertmanagers: nothing to warn about.
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let am = &l.config.alerting.alertmanagers[0].consul_sd_configs[0];
        assert_eq!(am.basic_auth.as_ref().unwrap().username, "u");
        let e = load_str(
            "alerting:\n  alertmanagers:\n    - consul_sd_configs:\n        - server: ''\n",
            Path::new("/tmp/p.yml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.ends_with("alerting.alertmanagers[0].consul_sd_configs[0].server: consul SD configuration requires a server address"),
            "{e}"
        );
    }

    #[test]
    fn consul_is_no_longer_warned_about() {
        let l = load("services: [a]").unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let l = load_str(
            "scrape_configs:\n  - job_name: c\n    kuma_sd_configs:\n      - server: x\n",
            Path::new("/tmp/p.yml"),
        )
        .unwrap();
        assert_eq!(
            l.warnings,
            ["job \"c\": kuma_sd_configs is not supported by vigil and is ignored"]
        );
    }
}
