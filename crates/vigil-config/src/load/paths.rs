//! Resolving relative file paths against the directory of the file that names them, as
//! Prometheus' `JoinDir` does, and checking `rule_files`-style glob patterns.
//!
//! Kept together so every section resolves credentials, CA files and SD files alike.

use crate::types::*;
use std::path::Path;

/// Prometheus' `JoinDir`: relative paths are taken relative to the config file's directory.
pub(super) fn join_dir(dir: &Path, p: &mut String) {
    if p.is_empty() || dir.as_os_str().is_empty() || Path::new(p.as_str()).is_absolute() {
        return;
    }
    *p = dir.join(p.as_str()).to_string_lossy().into_owned();
}

fn join_opt(dir: &Path, p: &mut Option<String>) {
    if let Some(p) = p {
        join_dir(dir, p);
    }
}

fn set_tls_dir(t: &mut TlsConfig, dir: &Path) {
    join_opt(dir, &mut t.ca_file);
    join_opt(dir, &mut t.cert_file);
    join_opt(dir, &mut t.key_file);
}

pub(super) fn set_http_dir(h: &mut HttpPartsMut<'_>, dir: &Path) {
    set_tls_dir(h.tls_config, dir);
    if let Some(b) = h.basic_auth.as_mut() {
        join_opt(dir, &mut b.password_file);
        join_opt(dir, &mut b.username_file);
    }
    if let Some(a) = h.authorization.as_mut() {
        join_opt(dir, &mut a.credentials_file);
    }
    if let Some(o) = h.oauth2.as_mut() {
        join_opt(dir, &mut o.client_secret_file);
        join_opt(dir, &mut o.client_certificate_key_file);
        set_tls_dir(&mut o.tls_config, dir);
    }
    join_opt(dir, h.bearer_token_file);
    for hh in h.http_headers.values_mut() {
        for f in &mut hh.files {
            join_dir(dir, f);
        }
    }
}

pub(super) fn set_scrape_dir(sc: &mut ScrapeConfig, dir: &Path) {
    set_http_dir(&mut sc.http_parts_mut(), dir);
    for f in &mut sc.file_sd_configs {
        for p in &mut f.files {
            join_dir(dir, p);
        }
    }
    for h in &mut sc.http_sd_configs {
        set_http_dir(&mut h.http_parts_mut(), dir);
    }
    super::consul::set_consul_dirs(&mut sc.consul_sd_configs, dir);
    super::kubernetes::set_kubernetes_dirs(&mut sc.kubernetes_sd_configs, dir);
    join_opt(dir, &mut sc.scrape_failure_log_file);
}

/// Prometheus' `^[^*]*(\*[^/]*)?$`: a wildcard only in the last path element.
pub(super) fn glob_pattern_ok(p: &str) -> bool {
    match p.find('*') {
        None => true,
        Some(i) => !p[i..].contains('/'),
    }
}
