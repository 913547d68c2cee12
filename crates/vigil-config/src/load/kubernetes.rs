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
            check_label_selector(&s.label).map_err(|e| Problem::new(k.clone(), e))?;
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

/// A token of apimachinery's label selector lexer.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    End,
    OpenPar,
    ClosedPar,
    Comma,
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    In,
    NotIn,
    Ident(String),
    /// A run of operator characters that is no operator (the lexer's error text).
    Error(String),
}

impl Tok {
    fn literal(&self) -> String {
        match self {
            Tok::End => String::new(),
            Tok::OpenPar => "(".into(),
            Tok::ClosedPar => ")".into(),
            Tok::Comma => ",".into(),
            Tok::Not => "!".into(),
            Tok::Eq => "=".into(),
            Tok::DoubleEq => "==".into(),
            Tok::NotEq => "!=".into(),
            Tok::Gt => ">".into(),
            Tok::Lt => "<".into(),
            Tok::In => "in".into(),
            Tok::NotIn => "notin".into(),
            Tok::Ident(s) | Tok::Error(s) => s.clone(),
        }
    }

    /// In a value position `in` and `notin` are plain identifiers.
    fn into_value(self) -> Tok {
        match self {
            Tok::In => Tok::Ident("in".into()),
            Tok::NotIn => Tok::Ident("notin".into()),
            t => t,
        }
    }
}

fn symbol(s: &[u8]) -> Option<Tok> {
    Some(match s {
        b"(" => Tok::OpenPar,
        b")" => Tok::ClosedPar,
        b"," => Tok::Comma,
        b"!" => Tok::Not,
        b"=" => Tok::Eq,
        b"==" => Tok::DoubleEq,
        b"!=" => Tok::NotEq,
        b">" => Tok::Gt,
        b"<" => Tok::Lt,
        _ => return None,
    })
}

fn lex_label_selector(sel: &str) -> Vec<Tok> {
    let special = |c: u8| b"=!(),><".contains(&c);
    let space = |c: u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let b = sel.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        while i < b.len() && space(b[i]) {
            i += 1;
        }
        if i >= b.len() || b[i] == 0 {
            out.push(Tok::End);
            return out;
        }
        if special(b[i]) {
            // The longest run of operator characters that is an operator, as the Go lexer
            // scans it.
            let start = i;
            let mut last: Option<(Tok, usize)> = None;
            while i < b.len() && special(b[i]) {
                i += 1;
                match symbol(&b[start..i]) {
                    Some(t) => last = Some((t, i)),
                    None if last.is_some() => break,
                    None => {}
                }
            }
            match last {
                Some((t, end)) => {
                    i = end;
                    out.push(t);
                }
                None => out.push(Tok::Error(format!(
                    "error expected: keyword found '{}'",
                    &sel[start..i]
                ))),
            }
            continue;
        }
        let start = i;
        while i < b.len() && b[i] != 0 && !special(b[i]) && !space(b[i]) {
            i += 1;
        }
        out.push(match &sel[start..i] {
            "in" => Tok::In,
            "notin" => Tok::NotIn,
            s => Tok::Ident(s.to_string()),
        });
    }
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`: a label name part or a non-empty value.
fn is_label_token(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

/// A DNS-1123 subdomain: lower-case labels of alphanumerics and `-`, joined by dots.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase() || *c == b'-')
                && !b.iter().any(|c| c.is_ascii_uppercase())
        })
}

/// apimachinery's `IsQualifiedName`: `[prefix/]name`.
fn check_label_key(k: &str) -> Result<(), String> {
    let invalid = |why: &str| Err(format!("key: Invalid value: {k:?}: {why}"));
    let (prefix, name) = match k.split('/').collect::<Vec<_>>().as_slice() {
        [name] => (None, *name),
        [prefix, name] => (Some(*prefix), *name),
        _ => {
            return invalid(
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, with an optional DNS subdomain prefix and '/'",
            );
        }
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            return invalid("prefix part must be non-empty");
        }
        if !is_dns_subdomain(p) {
            return invalid(
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            );
        }
    }
    if name.is_empty() {
        return invalid("name part must be non-empty");
    }
    if name.len() > 63 {
        return invalid("name part must be no more than 63 characters");
    }
    if !is_label_token(name) {
        return invalid(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
        );
    }
    Ok(())
}

fn check_label_value(v: &str) -> Result<(), String> {
    if v.len() > 63 {
        return Err(format!(
            "values: Invalid value: {v:?}: must be no more than 63 characters"
        ));
    }
    if !v.is_empty() && !is_label_token(v) {
        return Err(format!(
            "values: Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

/// apimachinery's `labels.Parse`, which Prometheus runs on every `selectors[].label` at load:
/// comma-separated requirements `key`, `!key`, `key=v`, `key==v`, `key!=v`, `key in (a,b)`,
/// `key notin (a,b)`, `key>1`, `key<1`, with its key and value rules and error texts.
fn check_label_selector(sel: &str) -> Result<(), String> {
    let mut c = Cursor {
        toks: lex_label_selector(sel),
        pos: 0,
    };
    loop {
        match c.peek() {
            Tok::End => return Ok(()),
            Tok::Ident(_) | Tok::Not => {
                parse_requirement(&mut c)
                    .map_err(|e| format!("unable to parse requirement: {e}"))?;
                match c.next(true) {
                    Tok::End => return Ok(()),
                    Tok::Comma => {
                        let next = c.peek();
                        if !matches!(next, Tok::Ident(_) | Tok::Not) {
                            return Err(format!(
                                "found '{}', expected: identifier after ','",
                                next.literal()
                            ));
                        }
                    }
                    t => {
                        return Err(format!(
                            "found '{}', expected: ',' or 'end of string'",
                            t.literal()
                        ));
                    }
                }
            }
            t => {
                return Err(format!(
                    "found '{}', expected: !, identifier, or 'end of string'",
                    t.literal()
                ));
            }
        }
    }
}

/// The parser's position in the tokens (the last one, `End`, repeats).
struct Cursor {
    toks: Vec<Tok>,
    pos: usize,
}

impl Cursor {
    /// The next token, as a value (`in`, `notin` are identifiers there).
    fn peek(&self) -> Tok {
        self.toks[self.pos.min(self.toks.len() - 1)]
            .clone()
            .into_value()
    }

    fn next(&mut self, as_value: bool) -> Tok {
        let t = self.toks[self.pos.min(self.toks.len() - 1)].clone();
        self.pos += 1;
        if as_value { t.into_value() } else { t }
    }
}

fn parse_requirement(c: &mut Cursor) -> Result<(), String> {
    let mut t = c.next(true);
    let not = t == Tok::Not;
    if not {
        t = c.next(true);
    }
    let Tok::Ident(key) = t else {
        return Err(format!("found '{}', expected: identifier", t.literal()));
    };
    check_label_key(&key)?;
    let ahead = c.peek();
    if not || matches!(ahead, Tok::End | Tok::Comma) {
        // `!key` or a bare `key`: nothing may follow but a comma or the end (checked by
        // the caller).
        return Ok(());
    }
    let op = c.next(false);
    let values: Vec<String> = match op {
        Tok::In | Tok::NotIn => {
            let t = c.next(true);
            if t != Tok::OpenPar {
                return Err(format!("found '{}' expected: '('", t.literal()));
            }
            let first = c.peek();
            match first {
                Tok::ClosedPar => {
                    c.next(true);
                    vec![String::new()]
                }
                Tok::Ident(_) | Tok::Comma => {
                    let mut vals = Vec::new();
                    loop {
                        match c.next(true) {
                            Tok::Ident(v) => {
                                vals.push(v);
                                match c.peek() {
                                    Tok::Comma => continue,
                                    Tok::ClosedPar => break,
                                    t => {
                                        return Err(format!(
                                            "found '{}', expected: ',' or ')'",
                                            t.literal()
                                        ));
                                    }
                                }
                            }
                            Tok::Comma => {
                                vals.push(String::new());
                                match c.peek() {
                                    Tok::ClosedPar => break,
                                    Tok::Comma => {
                                        c.next(true);
                                    }
                                    _ => {}
                                }
                            }
                            t => {
                                return Err(format!(
                                    "found '{}', expected: ',', or identifier",
                                    t.literal()
                                ));
                            }
                        }
                    }
                    if c.next(true) != Tok::ClosedPar {
                        return Err(format!("found '{}', expected: ')'", first.literal()));
                    }
                    vals
                }
                t => {
                    return Err(format!(
                        "found '{}', expected: ',', ')' or identifier",
                        t.literal()
                    ));
                }
            }
        }
        Tok::Eq | Tok::DoubleEq | Tok::NotEq | Tok::Gt | Tok::Lt => match c.peek() {
            Tok::End | Tok::Comma => vec![String::new()],
            _ => match c.next(true) {
                Tok::Ident(v) => vec![v],
                t => return Err(format!("found '{}', expected: identifier", t.literal())),
            },
        },
        t => {
            return Err(format!(
                "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                t.literal()
            ));
        }
    };
    if matches!(op, Tok::Gt | Tok::Lt) && values.iter().any(|v| v.parse::<i64>().is_err()) {
        return Err(format!(
            "values[0]: Invalid value: {:?}: for 'Gt', 'Lt' operators, the value must be an integer",
            values[0]
        ));
    }
    for v in &values {
        check_label_value(v)?;
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

    /// Label selectors are parsed at load as apimachinery's `labels.Parse` does.
    #[test]
    fn label_selectors_are_parsed_at_load() {
        let with = |sel: &str| {
            load(&format!(
                "role: pod\nselectors:\n  - role: pod\n    label: '{sel}'"
            ))
        };
        for good in [
            "",
            "app=web",
            "app==web,tier!=db",
            "app",
            "!canary",
            "env in (prod, staging),tier notin (db)",
            "x in (foo,,baz),y,z notin ()",
            "value in (in)",
            "k8s.io/app=web",
            "app.kubernetes.io/name=model-server",
            "gen>3,gen<10",
            "x=",
        ] {
            assert!(with(good).is_ok(), "{good}: {:?}", with(good).err());
        }
        for (bad, why) in [
            ("foo in (bar", "found '', expected: ',' or ')'"),
            ("foo=bar,,", "found ',', expected: identifier after ','"),
            ("!", "found '', expected: identifier"),
            ("a b", "found 'b', expected: in, notin, =, ==, !=, gt, lt"),
            (
                "env IN (a)",
                "found 'IN', expected: in, notin, =, ==, !=, gt, lt",
            ),
            ("Foo.io/x=1", "prefix part"),
            ("x=a b", "found 'b', expected: ',' or 'end of string'"),
            ("x=-a", "a valid label must be an empty string"),
            ("gen>x", "must be an integer"),
            ("a/b/c", "qualified name"),
            ("x in a", "found 'a' expected: '('"),
        ] {
            let e = with(bad).expect_err(bad).to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
