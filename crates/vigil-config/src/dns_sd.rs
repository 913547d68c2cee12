//! `dns_sd_configs:` (Prometheus' `discovery/dns.SDConfig`): names resolved periodically as
//! SRV, A, AAAA, MX or NS records. The lookups themselves live in `vigil-scrape`.

use crate::de::{self, string_list};
use crate::error::Problem;
use serde::{Deserialize, Serialize};
use vigil_model::Duration;

/// One `dns_sd_configs:` entry, with Prometheus' defaults (`type: SRV`, `refresh_interval: 30s`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSdConfig {
    #[serde(default, deserialize_with = "string_list")]
    pub names: Vec<String>,
    #[serde(default = "default_refresh", with = "de::duration")]
    pub refresh_interval: Duration,
    /// As written; compared case-insensitively, as Prometheus does.
    #[serde(default = "default_type", rename = "type")]
    pub record_type: String,
    /// Ignored for SRV records; required for the others.
    #[serde(default)]
    pub port: i64,
}

impl Default for DnsSdConfig {
    fn default() -> Self {
        DnsSdConfig {
            names: Vec::new(),
            refresh_interval: default_refresh(),
            record_type: default_type(),
            port: 0,
        }
    }
}

fn default_refresh() -> Duration {
    Duration::from_secs(30)
}

fn default_type() -> String {
    "SRV".into()
}

/// The DNS record types `dns_sd_configs` can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnsRecordType {
    Srv,
    A,
    Aaaa,
    Mx,
    Ns,
}

impl DnsSdConfig {
    /// Prometheus' `SDConfig.UnmarshalYAML` checks, with its error texts.
    pub fn validate(&self) -> Result<DnsRecordType, String> {
        if self.names.is_empty() {
            return Err("DNS-SD config must contain at least one SRV record name".into());
        }
        let t = match self.record_type.to_uppercase().as_str() {
            "SRV" => return Ok(DnsRecordType::Srv),
            "A" => DnsRecordType::A,
            "AAAA" => DnsRecordType::Aaaa,
            "MX" => DnsRecordType::Mx,
            "NS" => DnsRecordType::Ns,
            _ => return Err(format!("invalid DNS-SD records type {}", self.record_type)),
        };
        if self.port == 0 {
            return Err(
                "a port is required in DNS-SD configs for all record types except SRV".into(),
            );
        }
        Ok(t)
    }

    /// The record type to query (SRV for a config that did not validate).
    pub fn qtype(&self) -> DnsRecordType {
        self.validate().unwrap_or(DnsRecordType::Srv)
    }
}

/// Validates every `dns_sd_configs` entry under `key`.
pub(crate) fn validate_dns_sds(sds: &[DnsSdConfig], key: &str) -> Result<(), Problem> {
    for (i, d) in sds.iter().enumerate() {
        d.validate()
            .map_err(|m| Problem::new(format!("{key}.dns_sd_configs[{i}]"), m))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load(sd: &str) -> Result<crate::Loaded, crate::ConfigError> {
        let yaml = format!("scrape_configs:\n  - job_name: d\n    dns_sd_configs:\n{sd}");
        crate::load_str(&yaml, Path::new("/tmp/dns.yml"))
    }

    fn err(sd: &str) -> String {
        load(sd).unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_prometheus_defaults() {
        let l = load("      - names: [_prom._tcp.example.com]\n").unwrap();
        let d = &l.config.scrape_configs[0].dns_sd_configs[0];
        assert_eq!(d.record_type, "SRV");
        assert_eq!(d.refresh_interval, Duration::from_secs(30));
        assert_eq!(d.port, 0);
        assert_eq!(d.qtype(), DnsRecordType::Srv);
        assert!(
            l.warnings.iter().all(|w| !w.contains("dns_sd_configs")),
            "{:?}",
            l.warnings
        );
        let l = load("      - names: [a.example.com]\n        type: aaaa\n        port: 9100\n        refresh_interval: 5s\n").unwrap();
        let d = &l.config.scrape_configs[0].dns_sd_configs[0];
        assert_eq!(
            (d.qtype(), d.port, d.refresh_interval),
            (DnsRecordType::Aaaa, 9100, Duration::from_secs(5))
        );
    }

    #[test]
    fn validation_errors_are_worded_as_prometheus() {
        let e = err("      - type: A\n        port: 80\n");
        assert!(
            e.contains("scrape_configs[0].dns_sd_configs[0]: DNS-SD config must contain at least one SRV record name"),
            "{e}"
        );
        for t in ["A", "AAAA", "MX", "NS", "ns"] {
            let e = err(&format!("      - names: [x]\n        type: {t}\n"));
            assert!(
                e.contains("a port is required in DNS-SD configs for all record types except SRV"),
                "{t}: {e}"
            );
        }
        let e = err("      - names: [x]\n        type: TXT\n        port: 1\n");
        assert!(e.contains("invalid DNS-SD records type TXT"), "{e}");
        let e = err("      - names: [x]\n        typo: A\n");
        assert!(e.contains("unknown field `typo`"), "{e}");
        // SRV needs no port; the type is case-insensitive.
        load("      - names: [x]\n        type: srv\n").unwrap();
        load("      - names: [x]\n        type: mx\n        port: 25\n").unwrap();
    }

    #[test]
    fn alertmanagers_validate_dns_sd_configs_too() {
        let yaml = "alerting:\n  alertmanagers:\n    - dns_sd_configs:\n        - names: [am.example.com]\n          type: A\n";
        let e = crate::load_str(yaml, Path::new("/tmp/dns.yml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("alerting.alertmanagers[0].dns_sd_configs[0]: a port is required"),
            "{e}"
        );
    }
}
