//! A fake Kubernetes API server for the discovery tests, faithful enough that the real
//! `kubectl` lists and watches it (`tests/kubernetes_sd.rs` checks that):
//! - discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/<group>/v1`, `/version`);
//! - lists of every resource vigil watches, cluster-wide or per namespace, with label and field
//!   selectors (equality, inequality, existence), as `<Kind>List` with the list's
//!   `resourceVersion`;
//! - watches (`?watch=1|true&resourceVersion=…`) that stream the events after a version, turn a
//!   change that moves an object in or out of the selector into `ADDED`/`DELETED` as the real
//!   server does, send `BOOKMARK`s when asked, end after `timeoutSeconds`, and answer `410 Gone`
//!   (as a status or as an `ERROR` event) for a version older than the kept history;
//! - a bearer token (rotatable), plain HTTP or TLS with a self-signed certificate, and a
//!   "down" switch that closes the port as an API server restart does.
//!
//! Every request is logged with its `Authorization` header for the tests to inspect.

use super::{read_request_head, request_header};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "s3cr3t-token";

/// One resource the fake serves.
struct Kind {
    group: &'static str,
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static str,
}

const KINDS: &[Kind] = &[
    Kind {
        group: "",
        resource: "pods",
        kind: "Pod",
        namespaced: true,
        short: "po",
    },
    Kind {
        group: "",
        resource: "nodes",
        kind: "Node",
        namespaced: false,
        short: "no",
    },
    Kind {
        group: "",
        resource: "namespaces",
        kind: "Namespace",
        namespaced: false,
        short: "ns",
    },
    Kind {
        group: "",
        resource: "services",
        kind: "Service",
        namespaced: true,
        short: "svc",
    },
    Kind {
        group: "",
        resource: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        short: "ep",
    },
    Kind {
        group: "discovery.k8s.io",
        resource: "endpointslices",
        kind: "EndpointSlice",
        namespaced: true,
        short: "",
    },
    Kind {
        group: "networking.k8s.io",
        resource: "ingresses",
        kind: "Ingress",
        namespaced: true,
        short: "ing",
    },
    Kind {
        group: "apps",
        resource: "replicasets",
        kind: "ReplicaSet",
        namespaced: true,
        short: "rs",
    },
    Kind {
        group: "batch",
        resource: "jobs",
        kind: "Job",
        namespaced: true,
        short: "",
    },
];

fn kind_of(resource: &str) -> &'static Kind {
    KINDS
        .iter()
        .find(|k| k.resource == resource)
        .unwrap_or_else(|| panic!("the fake serves no {resource}"))
}

fn group_version(k: &Kind) -> String {
    if k.group.is_empty() {
        "v1".into()
    } else {
        format!("{}/v1", k.group)
    }
}

/// One change: (resource version, resource, event type, object before, object after).
type Change = (u64, &'static str, &'static str, Option<Value>, Value);

#[derive(Default)]
pub struct Cluster {
    pub rv: u64,
    /// resource → (namespace, name) → object, without `kind`/`apiVersion` (as list items).
    pub objects: BTreeMap<&'static str, BTreeMap<(String, String), Value>>,
    history: Vec<Change>,
    /// Watches from a version below this get 410.
    oldest: u64,
    /// Answer 410 as an `ERROR` event in a 200 stream instead of an HTTP status.
    gone_as_event: bool,
    /// Bumped to end every open watch stream.
    generation: u64,
    /// (path and query, authorization header) of every request.
    pub log: Vec<(String, String)>,
    /// The accepted bearer token.
    pub token: String,
}

pub struct FakeApi {
    pub state: Mutex<Cluster>,
    pub moved: Condvar,
    pub down: AtomicBool,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The PEM of the server's self-signed certificate (its own CA), when serving TLS.
    pub ca_pem: String,
}

impl Default for FakeApi {
    fn default() -> Self {
        FakeApi {
            state: Mutex::new(Cluster {
                token: TOKEN.into(),
                ..Default::default()
            }),
            moved: Condvar::new(),
            down: AtomicBool::new(false),
            tls: None,
            ca_pem: String::new(),
        }
    }
}

trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

/// A pod `name` in `default` on `node-1` with one container `main` exposing `metrics` 8080.
pub fn pod(name: &str, ip: &str, ready: bool, app: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                     "labels": {"app.kubernetes.io/name": app}},
        "spec": {"nodeName": "node-1", "containers": [
            {"name": "main", "image": "img:1", "ports": [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]}
        ]},
        "status": {"podIP": ip, "hostIP": "192.168.0.1", "phase": "Running",
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    })
}

fn key_of(obj: &Value) -> (String, String) {
    let m = &obj["metadata"];
    (
        m["namespace"].as_str().unwrap_or("").to_string(),
        m["name"].as_str().unwrap_or("").to_string(),
    )
}

/// Does `obj` pass a label selector (`a=b,c!=d,e,!f`) and a field selector
/// (`metadata.name=x,spec.nodeName=y`)?
fn selected(obj: &Value, labels: &str, fields: &str) -> bool {
    let label = |k: &str| obj["metadata"]["labels"][k].as_str().map(str::to_string);
    let field = |path: &str| -> Option<String> {
        let mut v = obj;
        for p in path.split('.') {
            v = &v[p];
        }
        v.as_str().map(str::to_string)
    };
    let check = |sel: &str, get: &dyn Fn(&str) -> Option<String>| {
        sel.split(',').filter(|t| !t.is_empty()).all(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                get(k.trim()).as_deref() != Some(v.trim())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                get(k.trim()).as_deref() == Some(v.trim())
            } else if let Some(k) = term.strip_prefix('!') {
                get(k.trim()).is_none()
            } else {
                get(term.trim()).is_some()
            }
        })
    };
    check(labels, &label) && check(fields, &field)
}

impl FakeApi {
    /// A fake serving TLS with a fresh self-signed certificate for 127.0.0.1 and localhost.
    pub fn with_tls() -> FakeApi {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
        let cfg = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .unwrap();
        FakeApi {
            tls: Some(Arc::new(cfg)),
            ca_pem: ck.cert.pem(),
            ..Default::default()
        }
    }

    /// Creates or replaces an object of `resource` (its `resourceVersion` set here).
    pub fn apply(&self, resource: &'static str, mut obj: Value) {
        let k = kind_of(resource);
        let mut s = self.state.lock().unwrap();
        s.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(s.rv.to_string());
        if k.namespaced && obj["metadata"]["namespace"].is_null() {
            obj["metadata"]["namespace"] = json!("default");
        }
        let key = key_of(&obj);
        let before = s
            .objects
            .entry(k.resource)
            .or_default()
            .insert(key, obj.clone());
        let ty = if before.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        let rv = s.rv;
        s.history.push((rv, k.resource, ty, before, obj));
        self.moved.notify_all();
    }

    /// Deletes an object; false if there was none.
    pub fn remove(&self, resource: &'static str, namespace: &str, name: &str) -> bool {
        let k = kind_of(resource);
        let mut s = self.state.lock().unwrap();
        let Some(mut obj) = s
            .objects
            .entry(k.resource)
            .or_default()
            .remove(&(namespace.to_string(), name.to_string()))
        else {
            return false;
        };
        s.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(s.rv.to_string());
        let rv = s.rv;
        s.history.push((rv, k.resource, "DELETED", None, obj));
        self.moved.notify_all();
        true
    }

    /// [`pod`] applied.
    pub fn put(&self, name: &str, ip: &str, ready: bool, app: &str) {
        self.apply("pods", pod(name, ip, ready, app));
    }

    /// Deletes the pod `name` in `default`.
    pub fn delete(&self, name: &str) {
        assert!(self.remove("pods", "default", name), "no pod {name}");
    }

    /// Forgets the history (as etcd compaction does) and ends the open watches, so that the
    /// next watch from an earlier version is answered with 410.
    pub fn compact(&self, as_event: bool) {
        let mut s = self.state.lock().unwrap();
        s.oldest = s.rv + 1;
        s.history.clear();
        s.gone_as_event = as_event;
        s.generation += 1;
        self.moved.notify_all();
    }

    /// Ends every open watch (as an API server does when a watch times out).
    pub fn end_watches(&self) {
        self.state.lock().unwrap().generation += 1;
        self.moved.notify_all();
    }

    /// Accepts `token` from now on (and no longer the old one).
    pub fn rotate_token(&self, token: &str) {
        self.state.lock().unwrap().token = token.into();
    }

    /// How many lists (not watches) of `resource` were served.
    pub fn lists(&self, resource: &str) -> usize {
        let s = self.state.lock().unwrap();
        s.log
            .iter()
            .filter(|(q, _)| {
                let path = q.split('?').next().unwrap_or("");
                path.ends_with(&format!("/{resource}"))
                    && !q.contains("watch=1")
                    && !q.contains("watch=true")
            })
            .count()
    }

    /// Serves on `port` (0: any) until the process ends; while `down`, the port is closed.
    pub fn serve(self: Arc<Self>, port: u16) -> u16 {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let mut listener = Some(listener);
            loop {
                let down = self.down.load(Ordering::SeqCst);
                if down && listener.is_some() {
                    listener = None;
                } else if !down && listener.is_none() {
                    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
                    l.set_nonblocking(true).unwrap();
                    listener = Some(l);
                }
                match listener.as_ref().map(|l| l.accept()) {
                    Some(Ok((conn, _))) => {
                        conn.set_nonblocking(false).unwrap();
                        let me = Arc::clone(&self);
                        std::thread::spawn(move || me.accept(conn));
                    }
                    _ => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        port
    }

    fn accept(&self, conn: TcpStream) {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
        match &self.tls {
            Some(cfg) => {
                let Ok(tls) = rustls::ServerConnection::new(Arc::clone(cfg)) else {
                    return;
                };
                self.handle(Box::new(rustls::StreamOwned::new(tls, conn)));
            }
            None => self.handle(Box::new(conn)),
        }
    }

    fn handle(&self, mut conn: Box<dyn Conn>) {
        let Some(head) = read_request_head(&mut conn) else {
            return;
        };
        let target = head.split(' ').nth(1).unwrap_or("/").to_string();
        let auth = request_header(&head, "authorization");
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let params: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let (generation, token) = {
            let mut s = self.state.lock().unwrap();
            s.log.push((target.clone(), auth.clone()));
            (s.generation, s.token.clone())
        };
        fn reply(conn: &mut Box<dyn Conn>, status: &str, body: &str) {
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.flush();
        }
        let status = |code: u16, reason: &str, message: &str| {
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": message, "reason": reason, "code": code})
            .to_string()
        };
        if auth != format!("Bearer {token}") {
            return reply(
                &mut conn,
                "401 Unauthorized",
                &status(401, "Unauthorized", "Unauthorized"),
            );
        }
        if let Some(doc) = self.discovery(path) {
            return reply(&mut conn, "200 OK", &doc.to_string());
        }
        let Some((k, namespace, name)) = parse_resource_path(path) else {
            return reply(
                &mut conn,
                "404 Not Found",
                &status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ),
            );
        };
        let labels = params.get("labelSelector").cloned().unwrap_or_default();
        let mut fields = params.get("fieldSelector").cloned().unwrap_or_default();
        if let Some(n) = &name {
            fields = format!("metadata.name={n},{fields}");
        }
        let wanted = |obj: &Value| {
            namespace
                .as_deref()
                .is_none_or(|ns| obj["metadata"]["namespace"] == ns)
                && selected(obj, &labels, &fields)
        };
        let gv = group_version(k);
        let with_kind = |obj: &Value| {
            let mut o = obj.clone();
            o["kind"] = json!(k.kind);
            o["apiVersion"] = json!(gv);
            o
        };
        let watch = matches!(params.get("watch").map(String::as_str), Some("1" | "true"));
        if !watch {
            let s = self.state.lock().unwrap();
            let items: Vec<Value> = s
                .objects
                .get(k.resource)
                .map(|m| m.values().filter(|o| wanted(o)).cloned().collect())
                .unwrap_or_default();
            let rv = s.rv.to_string();
            drop(s);
            if name.is_some() {
                return match items.first() {
                    Some(o) => reply(&mut conn, "200 OK", &with_kind(o).to_string()),
                    None => reply(
                        &mut conn,
                        "404 Not Found",
                        &status(404, "NotFound", "not found"),
                    ),
                };
            }
            let body = json!({"kind": format!("{}List", k.kind), "apiVersion": gv,
                "metadata": {"resourceVersion": rv}, "items": items});
            return reply(&mut conn, "200 OK", &body.to_string());
        }

        let from: u64 = params
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let bookmarks = params.get("allowWatchBookmarks").map(String::as_str) == Some("true");
        let until = params
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .map(|t: u64| Instant::now() + Duration::from_secs(t));
        let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
            "metadata": {}, "status": "Failure", "reason": "Expired", "code": 410,
            "message": format!("too old resource version: {from}")}});
        let mut out = String::new();
        let mut expired = false;
        let mut sent = from;
        {
            let s = self.state.lock().unwrap();
            if from != 0 && from < s.oldest {
                if s.gone_as_event {
                    drop(s);
                    out = format!("{gone}\n");
                    expired = true;
                } else {
                    drop(s);
                    return reply(&mut conn, "410 Gone", &gone["object"].to_string());
                }
            } else if from == 0 {
                // A watch without a version starts with the current objects as ADDED.
                for o in s
                    .objects
                    .get(k.resource)
                    .into_iter()
                    .flat_map(|m| m.values())
                {
                    if wanted(o) {
                        out.push_str(&json!({"type": "ADDED", "object": with_kind(o)}).to_string());
                        out.push('\n');
                    }
                }
                sent = s.rv;
            }
        }
        let _ = write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        let chunk = |conn: &mut Box<dyn Conn>, data: &str| -> bool {
            write!(conn, "{:x}\r\n{data}\r\n", data.len()).is_ok() && conn.flush().is_ok()
        };
        if !out.is_empty() && (!chunk(&mut conn, &out) || expired) {
            let _ = write!(conn, "0\r\n\r\n");
            return;
        }

        let mut quiet_since = Instant::now();
        let mut s = self.state.lock().unwrap();
        loop {
            if s.generation != generation
                || self.down.load(Ordering::SeqCst)
                || until.is_some_and(|u| Instant::now() >= u)
            {
                drop(s);
                let _ = write!(conn, "0\r\n\r\n");
                let _ = conn.flush();
                return;
            }
            let mut out = String::new();
            for (rv, res, ty, before, obj) in &s.history {
                if *rv <= sent || *res != k.resource {
                    continue;
                }
                sent = *rv;
                let was = before.as_ref().is_some_and(&wanted);
                let is = wanted(obj);
                let ty = match (*ty, was, is) {
                    ("DELETED", _, true) => "DELETED",
                    ("MODIFIED", true, true) => "MODIFIED",
                    ("MODIFIED", true, false) => "DELETED",
                    ("MODIFIED" | "ADDED", false, true) => "ADDED",
                    _ => continue,
                };
                out.push_str(&json!({"type": ty, "object": with_kind(obj)}).to_string());
                out.push('\n');
            }
            if out.is_empty() && bookmarks && quiet_since.elapsed() >= Duration::from_secs(1) {
                out = json!({"type": "BOOKMARK", "object": {"kind": k.kind, "apiVersion": gv,
                    "metadata": {"resourceVersion": s.rv.to_string()}}})
                .to_string()
                    + "\n";
            }
            if !out.is_empty() {
                drop(s);
                if !chunk(&mut conn, &out) {
                    return;
                }
                quiet_since = Instant::now();
                s = self.state.lock().unwrap();
                continue;
            }
            s = self
                .moved
                .wait_timeout(s, Duration::from_millis(100))
                .unwrap()
                .0;
        }
    }

    /// The discovery documents kubectl reads before it lists anything.
    fn discovery(&self, path: &str) -> Option<Value> {
        let groups: Vec<&str> = {
            let mut g: Vec<&str> = KINDS
                .iter()
                .map(|k| k.group)
                .filter(|g| !g.is_empty())
                .collect();
            g.dedup();
            g
        };
        let resources = |group: &str| -> Value {
            let list: Vec<Value> = KINDS
                .iter()
                .filter(|k| k.group == group)
                .map(|k| {
                    let mut r = json!({"name": k.resource, "singularName": k.kind.to_lowercase(),
                        "namespaced": k.namespaced, "kind": k.kind,
                        "verbs": ["get", "list", "watch"]});
                    if !k.short.is_empty() {
                        r["shortNames"] = json!([k.short]);
                    }
                    r
                })
                .collect();
            let gv = if group.is_empty() {
                "v1".to_string()
            } else {
                format!("{group}/v1")
            };
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                   "resources": list})
        };
        match path {
            "/version" => Some(
                json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0-fake",
                "platform": "linux/amd64"}),
            ),
            "/api" => Some(json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})),
            "/apis" => Some(json!({"kind": "APIGroupList", "apiVersion": "v1",
                "groups": groups.iter().map(|g| {
                    let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
                    json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
                }).collect::<Vec<_>>()})),
            "/api/v1" => Some(resources("")),
            _ => {
                let rest = path.strip_prefix("/apis/")?;
                let (group, version) = rest.split_once('/')?;
                (version == "v1" && groups.contains(&group)).then(|| resources(group))
            }
        }
    }
}

/// `/api/v1/[namespaces/<ns>/]<resource>[/<name>]` or the same under `/apis/<group>/v1/`:
/// the resource, the namespace and the object name.
fn parse_resource_path(path: &str) -> Option<(&'static Kind, Option<String>, Option<String>)> {
    let (group, rest) = if let Some(rest) = path.strip_prefix("/api/v1/") {
        ("", rest)
    } else {
        let rest = path.strip_prefix("/apis/")?;
        let mut it = rest.splitn(3, '/');
        let group = it.next()?;
        if it.next()? != "v1" {
            return None;
        }
        (group, it.next()?)
    };
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let (ns, res, name) = match segs.as_slice() {
        [res] => (None, *res, None),
        ["namespaces", name] if group.is_empty() => (None, "namespaces", Some(*name)),
        ["namespaces", ns, res] => (Some(*ns), *res, None),
        ["namespaces", ns, res, name] => (Some(*ns), *res, Some(*name)),
        [res, name] => (None, *res, Some(*name)),
        _ => return None,
    };
    let k = KINDS
        .iter()
        .find(|k| k.group == group && k.resource == res)?;
    if ns.is_some() && !k.namespaced {
        return None;
    }
    Some((k, ns.map(str::to_string), name.map(str::to_string)))
}
