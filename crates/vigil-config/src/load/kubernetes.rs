//! `kubernetes_sd_configs`: Prometheus 3.14's `kubernetes.SDConfig.UnmarshalYAML` (and
//! `Role.UnmarshalYAML`), with its words.

use super::http::validate_http_client;
use super::paths::set_http_dir;
use crate::error::Problem;
use crate::types::*;
use std::path::Path;

const ROLES: [&str; 6] = [
    "node",
    "pod",
    "service",
    "endpoints",
    "endpointslice",
    "ingress",
];

fn allowed_selectors(role: &str) -> &'static [&'static str] {
    match role {
        "pod" => &["pod", "node"],
        "service" => &["service"],
        "endpointslice" => &["pod", "service", "endpointslice"],
        "endpoints" => &["pod", "service", "endpoints"],
        "node" => &["node"],
        "ingress" => &["ingress"],
        _ => &[],
    }
}

/// Validates every `kubernetes_sd_configs` entry under `key`.
pub(super) fn validate_kubernetes_sds(
    sds: &mut [KubernetesSdConfig],
    key: &str,
) -> Result<(), Problem> {
    for (i, c) in sds.iter_mut().enumerate() {
        let k = format!("{key}.kubernetes_sd_configs[{i}]");
        if c.role.is_empty() {
            return Err(Problem::new(
                k,
                "role missing (one of: pod, service, endpoints, endpointslice, node, ingress)",
            ));
        }
        if !ROLES.contains(&c.role.as_str()) {
            return Err(Problem::new(
                format!("{k}.role"),
                format!("unknown Kubernetes SD role {:?}", c.role),
            ));
        }
        for (j, s) in c.selectors.iter().enumerate() {
            if !s.role.is_empty() && !ROLES.contains(&s.role.as_str()) {
                return Err(Problem::new(
                    format!("{k}.selectors[{j}].role"),
                    format!("unknown Kubernetes SD role {:?}", s.role),
                ));
            }
        }
        let custom = c.has_custom_http_client();
        validate_http_client(&mut c.http_parts_mut(), &k)?;
        if !c.api_server.is_empty() {
            match c.api_server.split_once("://") {
                Some(("http" | "https", rest)) if !rest.is_empty() => {}
                _ => {
                    return Err(Problem::new(
                        format!("{k}.api_server"),
                        format!("parse {:?}: invalid URL", c.api_server),
                    ));
                }
            }
        }
        let api = !c.api_server.is_empty();
        let kubeconfig = !c.kubeconfig_file.is_empty();
        if api && kubeconfig {
            return Err(Problem::new(
                k,
                "cannot use 'kubeconfig_file' and 'api_server' simultaneously",
            ));
        }
        if kubeconfig && custom {
            return Err(Problem::new(
                k,
                "cannot use a custom HTTP client configuration together with 'kubeconfig_file'",
            ));
        }
        if !api && custom {
            return Err(Problem::new(
                k,
                "to use custom HTTP client configuration please provide the 'api_server' URL explicitly",
            ));
        }
        if api && c.namespaces.own_namespace {
            return Err(Problem::new(
                k,
                "cannot use 'api_server' and 'namespaces.own_namespace' simultaneously",
            ));
        }
        if kubeconfig && c.namespaces.own_namespace {
            return Err(Problem::new(
                k,
                "cannot use 'kubeconfig_file' and 'namespaces.own_namespace' simultaneously",
            ));
        }
        let allowed = allowed_selectors(&c.role);
        let mut seen: Vec<&str> = Vec::new();
        for s in &c.selectors {
            if seen.contains(&s.role.as_str()) {
                return Err(Problem::new(
                    k,
                    format!("duplicated selector role: {}", s.role),
                ));
            }
            seen.push(&s.role);
            if !allowed.contains(&s.role.as_str()) {
                return Err(Problem::new(
                    k,
                    format!(
                        "{} role supports only {} selectors",
                        c.role,
                        allowed.join(", ")
                    ),
                ));
            }
            check_field_selector(&s.field).map_err(|e| Problem::new(k.clone(), e))?;
        }
    }
    Ok(())
}

/// Warnings for the parts of `kubernetes_sd_configs` vigil does not implement (none left: kept
/// so that callers need not change when one is added).
pub(super) fn kubernetes_warnings(
    _sds: &[KubernetesSdConfig],
    _job: &str,
    _warnings: &mut Vec<String>,
) {
}

/// apimachinery's `fields.ParseSelector`: comma-separated terms (`\` escapes a comma), each
/// `key=value`, `key==value` or `key!=value`.
fn check_field_selector(sel: &str) -> Result<(), String> {
    let mut terms = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in sel.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            cur.push(c);
            escaped = true;
        } else if c == ',' {
            terms.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    terms.push(cur);
    for t in terms {
        if t.is_empty() {
            continue;
        }
        if !["!=", "==", "="].iter().any(|op| t.contains(op)) {
            return Err(format!("invalid selector: '{sel}'; can't understand '{t}'"));
        }
    }
    Ok(())
}

/// Resolves the relative paths (TLS files, secret files, kubeconfig) against `dir`.
pub(super) fn set_kubernetes_dirs(sds: &mut [KubernetesSdConfig], dir: &Path) {
    for c in sds {
        set_http_dir(&mut c.http_parts_mut(), dir);
        if !c.kubeconfig_file.is_empty() && Path::new(&c.kubeconfig_file).is_relative() {
            c.kubeconfig_file = dir.join(&c.kubeconfig_file).display().to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{KubernetesSdConfig, load_str};
    use std::path::Path;

    fn load(sd: &str) -> Result<crate::Loaded, crate::ConfigError> {
        let indented: String = sd.lines().map(|l| format!("        {l}\n")).collect();
        let yaml = format!(
            "scrape_configs:\n  - job_name: k\n    kubernetes_sd_configs:\n      -\n{indented}"
        );
        load_str(&yaml, Path::new("/etc/p/prometheus.yml"))
    }

    fn first(sd: &str) -> KubernetesSdConfig {
        let l = load(sd).unwrap_or_else(|e| panic!("{e}"));
        l.config.scrape_configs[0].kubernetes_sd_configs[0].clone()
    }

    fn err(sd: &str) -> String {
        load(sd).unwrap_err().to_string()
    }

    #[test]
    fn every_key_is_read() {
        let c = first(
            "role: pod\napi_server: https://k8s.example:6443\nbearer_token: t0k\nnamespaces:\n  names: [a, b]\nselectors:\n  - role: pod\n    label: app=x\n    field: spec.nodeName=n1\n  - role: node\n    label: zone=z\nattach_metadata:\n  node: true\n  namespace: true\ntls_config:\n  ca_file: ca.pem\n",
        );
        assert_eq!(c.role, "pod");
        assert_eq!(c.api_server, "https://k8s.example:6443");
        assert_eq!(c.namespaces.names, ["a", "b"]);
        assert!(!c.namespaces.own_namespace);
        assert_eq!(c.selectors.len(), 2);
        assert_eq!(c.selectors[0].label, "app=x");
        assert_eq!(c.selectors[0].field, "spec.nodeName=n1");
        assert!(c.attach_metadata.node && c.attach_metadata.namespace);
        assert_eq!(
            c.authorization
                .as_ref()
                .unwrap()
                .credentials
                .as_ref()
                .unwrap()
                .expose(),
            "t0k"
        );
        assert_eq!(c.tls_config.ca_file.as_deref(), Some("/etc/p/ca.pem"));
        let c = first("role: node\nnamespaces:\n  own_namespace: true\n");
        assert!(c.namespaces.own_namespace);
        let c = first("role: service\nkubeconfig_file: kc.yml\n");
        assert_eq!(c.kubeconfig_file, "/etc/p/kc.yml");
    }

    #[test]
    fn secrets_are_redacted_and_empty_parts_omitted_on_output() {
        let l = load("role: node\napi_server: https://k:6443\nbearer_token: t0k\n").unwrap();
        let y = serde_yaml::to_string(&l.config.scrape_configs[0]).unwrap();
        assert!(y.contains("role: node"), "{y}");
        assert!(y.contains("api_server: https://k:6443"), "{y}");
        assert!(y.contains("<secret>") && !y.contains("t0k"), "{y}");
        assert!(
            !y.contains("namespaces") && !y.contains("attach_metadata"),
            "{y}"
        );
        let l = load("role: pod\nnamespaces:\n  names: [a]\n").unwrap();
        let y = serde_yaml::to_string(&l.config.scrape_configs[0]).unwrap();
        assert!(y.contains("namespaces:"), "{y}");
    }

    #[test]
    fn alertmanager_entries_are_validated_and_discovered() {
        let l = load_str(
            "alerting:\n  alertmanagers:\n    - kubernetes_sd_configs:\n        - role: pod\n",
            Path::new("/tmp/p.yml"),
        )
        .unwrap();
        // Discovered by the notify manager like the other mechanisms: no warning.
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let e = load_str(
            "alerting:\n  alertmanagers:\n    - kubernetes_sd_configs:\n        - role: x\n",
            Path::new("/tmp/p.yml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.ends_with("unknown Kubernetes SD role \"x\""), "{e}");
    }

    #[test]
    fn implemented_parts_are_not_warned_about() {
        let w = |sd: &str| load(sd).unwrap().warnings;
        assert!(w("role: pod\napi_server: http://x").is_empty());
        assert!(w("role: endpointslice").is_empty());
        assert!(w("role: endpoints").is_empty());
        assert!(w("role: node\nkubeconfig_file: k.yml").is_empty());
        assert!(
            w("role: pod\nattach_metadata:\n  node: true\n  namespace: true\n  deployment: true\n  job: true\n  cronjob: true").is_empty()
        );
    }

    const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\ncurrent-context: c2\ncontexts:\n  - name: c1\n    context: {cluster: a, user: u1}\n  - name: c2\n    context: {cluster: b, user: u2, namespace: ns}\nclusters:\n  - name: a\n    cluster: {server: https://a:6443}\n  - name: b\n    cluster:\n      server: https://b:6443/\n      certificate-authority: ca.crt\n      insecure-skip-tls-verify: true\nusers:\n  - name: u1\n    user: {token: t1}\n  - name: u2\n    user:\n      client-certificate-data: aGVsbG8=\n      client-key: /abs/k.pem\n      tokenFile: tok\n";

    #[test]
    fn kubeconfig_current_context_is_read() {
        let k = crate::Kubeconfig::parse(KUBECONFIG, "/etc/kube/config").unwrap();
        assert_eq!(k.server, "https://b:6443");
        assert_eq!(k.namespace, "ns");
        let t = &k.http.tls_config;
        assert_eq!(t.ca_file.as_deref(), Some("/etc/kube/ca.crt"));
        assert!(t.insecure_skip_verify);
        assert_eq!(t.cert.as_deref(), Some("hello"));
        assert_eq!(t.key_file.as_deref(), Some("/abs/k.pem"));
        assert_eq!(k.token_file.as_deref(), Some("/etc/kube/tok"));
        assert!(k.http.authorization.is_none() && k.http.basic_auth.is_none());

        let k = crate::Kubeconfig::parse(
            &KUBECONFIG.replace("current-context: c2", "current-context: c1"),
            "/k",
        )
        .unwrap();
        assert_eq!(k.server, "https://a:6443");
        let a = k.http.authorization.unwrap();
        assert_eq!(
            (a.auth_type.as_str(), a.credentials.unwrap().expose()),
            ("Bearer", "t1")
        );

        let k = crate::Kubeconfig::parse(
            "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\nclusters: [{name: c, cluster: {server: 'http://h:1', certificate-authority-data: 'Y2E='}}]\nusers: [{name: u, user: {username: me, password: pw}}]\n",
            "/k",
        )
        .unwrap();
        assert_eq!(k.http.tls_config.ca.as_deref(), Some("ca"));
        let b = k.http.basic_auth.unwrap();
        assert_eq!(
            (b.username.as_str(), b.password.unwrap().expose()),
            ("me", "pw")
        );
    }

    #[test]
    fn kubeconfig_errors_name_the_file() {
        let e = crate::Kubeconfig::load("/nonexistent/kc").unwrap_err();
        assert!(e.starts_with("kubeconfig \"/nonexistent/kc\": "), "{e}");
        let e = crate::Kubeconfig::parse("clusters: []", "/k").unwrap_err();
        assert!(e.contains("no configuration has been provided"), "{e}");
        let e = crate::Kubeconfig::parse(&KUBECONFIG.replace("c2\ncontexts", "c3\ncontexts"), "/k")
            .unwrap_err();
        assert_eq!(
            e,
            "kubeconfig \"/k\": context was not found for specified context: c3"
        );
        let e = crate::Kubeconfig::parse(&KUBECONFIG.replace("cluster: b, ", "cluster: z, "), "/k")
            .unwrap_err();
        assert!(
            e.contains("names cluster \"z\", which was not found"),
            "{e}"
        );
    }

    #[test]
    fn validation_errors_are_prometheus_words() {
        assert!(err("api_server: http://x").ends_with(
            "role missing (one of: pod, service, endpoints, endpointslice, node, ingress)"
        ));
        assert!(err("role: pods").ends_with("unknown Kubernetes SD role \"pods\""));
        assert!(
            err("role: pod\napi_server: http://x\nkubeconfig_file: k")
                .ends_with("cannot use 'kubeconfig_file' and 'api_server' simultaneously")
        );
        assert!(
            err("role: pod\nkubeconfig_file: k\nbearer_token: t").ends_with(
                "cannot use a custom HTTP client configuration together with 'kubeconfig_file'"
            )
        );
        assert!(err("role: pod\nbearer_token: t").ends_with(
            "to use custom HTTP client configuration please provide the 'api_server' URL explicitly"
        ));
        assert!(err("role: pod\nfollow_redirects: false").ends_with(
            "to use custom HTTP client configuration please provide the 'api_server' URL explicitly"
        ));
        assert!(
            err("role: pod\napi_server: http://x\nnamespaces:\n  own_namespace: true")
                .ends_with("cannot use 'api_server' and 'namespaces.own_namespace' simultaneously")
        );
        assert!(
            err("role: pod\nkubeconfig_file: k\nnamespaces:\n  own_namespace: true").ends_with(
                "cannot use 'kubeconfig_file' and 'namespaces.own_namespace' simultaneously"
            )
        );
        assert!(
            err("role: pod\nselectors:\n  - role: pod\n  - role: pod\n")
                .ends_with("duplicated selector role: pod")
        );
        assert!(
            err("role: node\nselectors:\n  - role: pod\n")
                .ends_with("node role supports only node selectors")
        );
        assert!(
            err("role: endpointslice\nselectors:\n  - role: node\n").ends_with(
                "endpointslice role supports only pod, service, endpointslice selectors"
            )
        );
        assert!(
            err("role: endpointslice\nselectors:\n  - role: pod\n    field: metadata.status-Running\n").ends_with(
                "invalid selector: 'metadata.status-Running'; can't understand 'metadata.status-Running'"
            )
        );
        assert!(
            first("role: pod\nselectors:\n  - role: pod\n    field: a=b,c!=d,e==f\n").selectors[0]
                .field
                == "a=b,c!=d,e==f"
        );
        assert!(err("role: pod\nnamespace: x").contains("unknown field `namespace`"));
    }
}
