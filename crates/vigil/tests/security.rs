//! Security review (issue 20, docs/reliability.md "Security review"), against the real binary:
//! what an unauthenticated client can do with the default flags, which TLS versions and cipher
//! suites are served, whether basic auth's timing tells which users exist, and whether
//! credentials from the config reach anything an operator or a client can read.

mod common;

use common::*;
use prost::Message;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_remote::prompb;

fn client() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn send(method: &str, url: &str, body: Vec<u8>) -> (u16, String) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let r = client().request(m, url).body(body).send().unwrap();
    (r.status().as_u16(), r.text().unwrap_or_default())
}

fn write_body(metric: &str) -> Vec<u8> {
    let req = prompb::WriteRequest {
        timeseries: vec![prompb::TimeSeries {
            labels: vec![prompb::Label {
                name: "__name__".into(),
                value: metric.into(),
            }],
            samples: vec![prompb::Sample {
                value: 1.0,
                timestamp: vigil_now_ms(),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    vigil_remote::codec::snappy_compress(&req.encode_to_vec())
}

fn vigil_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn series_count(port: u16, selector: &str) -> usize {
    let (_, v) = api(port, &format!("/api/v1/series?match[]={}", enc(selector)));
    v["data"].as_array().map_or(0, Vec::len)
}

/// Every route of the HTTP server (crates/vigil-api/src/lib.rs `router`, the UI pages in
/// ui.rs, and vigil-remote's `/api/v1/write`, `/api/v1/read`, `/api/v1/otlp/v1/metrics`) with
/// the default flags and no web config: the ones that write or change anything refuse, the
/// rest read. No credentials are needed for any of them, as in Prometheus.
#[test]
fn default_flags_leave_nothing_writable_to_an_unauthenticated_client() {
    let dir = tempdir("sec-defaults");
    std::fs::write(dir.join("prometheus.yml"), "scrape_configs: []\n").unwrap();
    let (mut vigil, port) = start_vigil_in(&dir, &dir.join("data"), &[], "vigil.log", &ready_200);
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();

    // Writes and mutations: each refused, nothing changed.
    let refused: [(&str, &str, Vec<u8>, u16, &str); 7] = [
        (
            "POST",
            "/api/v1/write",
            write_body("sec_injected"),
            404,
            "--web.enable-remote-write-receiver",
        ),
        (
            "POST",
            "/api/v1/otlp/v1/metrics",
            Vec::new(),
            404,
            "--web.enable-otlp-receiver",
        ),
        (
            "POST",
            "/api/v1/admin/tsdb/snapshot",
            Vec::new(),
            503,
            "admin APIs disabled",
        ),
        (
            "POST",
            "/api/v1/admin/tsdb/delete_series?match[]=up",
            Vec::new(),
            503,
            "admin APIs disabled",
        ),
        (
            "POST",
            "/api/v1/admin/tsdb/clean_tombstones",
            Vec::new(),
            503,
            "admin APIs disabled",
        ),
        (
            "POST",
            "/-/reload",
            Vec::new(),
            403,
            "Lifecycle API is not enabled",
        ),
        (
            "POST",
            "/-/quit",
            Vec::new(),
            403,
            "Lifecycle API is not enabled",
        ),
    ];
    for (method, path, body, want, why) in refused {
        let (status, text) = send(method, &format!("{base}{path}"), body);
        assert_eq!(status, want, "{method} {path}: {text}");
        assert!(text.contains(why), "{method} {path}: {text}");
        eprintln!("{method} {path}: {status} {}", text.trim());
    }
    // PUT is the other verb Prometheus accepts on these.
    for path in ["/api/v1/admin/tsdb/snapshot", "/-/reload", "/-/quit"] {
        let (status, _) = send("PUT", &format!("{base}{path}"), Vec::new());
        assert!(status == 403 || status == 503, "PUT {path}: {status}");
    }
    assert!(vigil.running(), "/-/quit stopped vigil");
    assert_eq!(series_count(port, "{__name__=\"sec_injected\"}"), 0);
    assert!(
        !dir.join("data").join("snapshots").exists()
            || std::fs::read_dir(dir.join("data").join("snapshots"))
                .unwrap()
                .next()
                .is_none(),
        "a snapshot was written"
    );

    // Verbs a route does not serve: 405, whatever the route.
    for (method, path) in [
        ("DELETE", "/api/v1/series"),
        ("PUT", "/api/v1/query"),
        ("POST", "/api/v1/status/config"),
        ("POST", "/federate"),
        ("POST", "/metrics"),
        ("DELETE", "/api/v1/admin/tsdb/snapshot"),
    ] {
        let (status, _) = send(method, &format!("{base}{path}"), Vec::new());
        assert_eq!(status, 405, "{method} {path}");
    }

    // Reads: answered without credentials (Prometheus' model: put an authenticating proxy or
    // `--web.config.file` in front). Remote read is on, as in Prometheus.
    let reads = [
        "/api/v1/query?query=1",
        "/api/v1/query_range?query=1&start=0&end=60&step=15",
        "/api/v1/query_exemplars?query=up&start=0&end=60",
        "/api/v1/format_query?query=up",
        "/api/v1/parse_query?query=up",
        "/api/v1/series?match[]=up",
        "/api/v1/labels",
        "/api/v1/label/job/values",
        "/api/v1/targets",
        "/api/v1/targets/metadata",
        "/api/v1/metadata",
        "/api/v1/alertmanagers",
        "/api/v1/rules",
        "/api/v1/alerts",
        "/api/v1/status/config",
        "/api/v1/status/flags",
        "/api/v1/status/buildinfo",
        "/api/v1/status/runtimeinfo",
        "/api/v1/status/tsdb",
        "/api/v1/status/tsdb/blocks",
        "/api/v1/status/walreplay",
        "/api/v1/openapi.yaml",
        "/api/v1/features",
        "/api/v1/notifications",
        "/federate?match[]=up",
        "/metrics",
        "/-/healthy",
        "/-/ready",
        "/",
        "/query",
    ];
    for path in reads {
        let (status, _) = http_get(&format!("{base}{path}")).unwrap();
        assert_eq!(status, 200, "GET {path}");
    }
    let read = prompb::ReadRequest {
        queries: vec![prompb::Query {
            start_timestamp_ms: 0,
            end_timestamp_ms: vigil_now_ms(),
            matchers: vec![prompb::LabelMatcher {
                r#type: 0,
                name: "__name__".into(),
                value: "up".into(),
            }],
            hints: None,
        }],
        accepted_response_types: vec![],
    };
    let (status, _) = send(
        "POST",
        &format!("{base}/api/v1/read"),
        vigil_remote::codec::snappy_compress(&read.encode_to_vec()),
    );
    assert_eq!(status, 200, "remote read");
    assert!(vigil.running());
    eprintln!("checked in {:?}", started.elapsed());
}

/// Credentials in the config never reach `/api/v1/status/config`, the log (at debug level),
/// `/metrics`, `/api/v1/targets` or the data directory. The defect: a password in the
/// userinfo of a `remote_write` URL (`https://user:password@host/...`, which Prometheus prints
/// as `user:xxxxx@`) was shown verbatim by `/api/v1/status/config`, the log lines of the
/// queue, the `url` label of the `prometheus_remote_storage_*` metrics on `/metrics`, and the
/// queue's position file under the data directory.
#[test]
fn password_in_a_remote_write_url_leaked_into_status_config_logs_metrics_and_data_dir() {
    // A receiver that refuses every request (500, so the queue retries and logs).
    let sink = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sink_port = sink.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in sink.incoming().flatten() {
            std::thread::spawn(move || {
                let mut c = c;
                let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 65536];
                let _ = c.read(&mut buf);
                let _ = c.write_all(
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope",
                );
            });
        }
    });
    // A scrape target that refuses (401), so lastError is set.
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target_port = target.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in target.incoming().flatten() {
            let mut c = c;
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 65536];
            let _ = c.read(&mut buf);
            let _ = c.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let secrets = [
        "url-pa55word",
        "proxy-pa55word",
        "basic-pa55word",
        "bearer-t0ken",
        "authz-cred3ntial",
        "oauth-s3cret",
        "header-s3cret",
        "am-pa55word",
        "read-pa55word",
        "httpsd-pa55word",
    ];
    let config = format!(
        r#"global:
  scrape_interval: 200ms
scrape_configs:
  - job_name: basic
    basic_auth: {{username: scraper, password: basic-pa55word}}
    static_configs: [{{targets: ["127.0.0.1:{target_port}"]}}]
  - job_name: bearer
    bearer_token: bearer-t0ken
    static_configs: [{{targets: ["127.0.0.1:{target_port}"]}}]
  - job_name: authz
    authorization: {{type: Bearer, credentials: authz-cred3ntial}}
    http_headers:
      X-Api-Key: {{secrets: [header-s3cret]}}
    static_configs: [{{targets: ["127.0.0.1:{target_port}"]}}]
  - job_name: httpsd
    http_sd_configs:
      - url: http://sd:httpsd-pa55word@127.0.0.1:{target_port}/sd
        refresh_interval: 1s
  - job_name: oauth
    oauth2:
      client_id: vigil
      client_secret: oauth-s3cret
      token_url: http://127.0.0.1:{target_port}/token
    static_configs: [{{targets: ["127.0.0.1:{target_port}"]}}]
remote_write:
  - url: http://writer:url-pa55word@127.0.0.1:{sink_port}/api/v1/write
    proxy_url: http://proxyuser:proxy-pa55word@127.0.0.1:{sink_port}/
    queue_config: {{batch_send_deadline: 200ms, min_backoff: 100ms, max_backoff: 200ms}}
remote_read:
  - url: http://reader:read-pa55word@127.0.0.1:{sink_port}/api/v1/read
alerting:
  alertmanagers:
    - basic_auth: {{username: am, password: am-pa55word}}
      static_configs: [{{targets: ["127.0.0.1:{sink_port}"]}}]
"#
    );
    let dir = tempdir("sec-secrets");
    std::fs::write(dir.join("prometheus.yml"), &config).unwrap();
    let data = dir.join("data");
    let (_vigil, port) =
        start_vigil_in(&dir, &data, &["--log.level=debug"], "vigil.log", &ready_200);
    let base = format!("http://127.0.0.1:{port}");
    // Scrapes fail, the queue sends and is refused, remote read is asked and fails.
    let log_path = dir.join("vigil.log");
    wait_for(
        Duration::from_secs(20),
        "the queue to log a failed send",
        || std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains("Failed to send batch")),
    );
    let _ = http_get(&format!("{base}/api/v1/query?query=up"));
    wait_for(Duration::from_secs(10), "lastError on every target", || {
        let (_, v) = api(port, "/api/v1/targets");
        let t = v["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        t.len() >= 4
            && t.iter()
                .all(|t| t["lastError"].as_str().is_some_and(|e| !e.is_empty()))
    });

    let (_, cfg) = api(port, "/api/v1/status/config");
    let yaml = cfg["data"]["yaml"].as_str().unwrap().to_string();
    let mut places: Vec<(String, String)> = vec![
        ("/api/v1/status/config".into(), yaml.clone()),
        ("log".into(), std::fs::read_to_string(&log_path).unwrap()),
    ];
    for path in [
        "/metrics",
        "/api/v1/targets",
        "/api/v1/status/flags",
        "/api/v1/alertmanagers",
        "/api/v1/notifications",
    ] {
        places.push((path.into(), http_get(&format!("{base}{path}")).unwrap().1));
    }
    for f in walk(&data) {
        if let Ok(text) = std::fs::read(&f) {
            places.push((
                f.display().to_string(),
                String::from_utf8_lossy(&text).into(),
            ));
        }
    }
    for (place, text) in &places {
        for s in secrets {
            assert!(!text.contains(s), "{s} found in {place}:\n{text}");
        }
    }
    // What is shown instead: Prometheus' forms.
    assert!(
        yaml.contains(&format!(
            "url: http://writer:xxxxx@127.0.0.1:{sink_port}/api/v1/write"
        )),
        "{yaml}"
    );
    assert!(
        yaml.contains("proxy_url: http://proxyuser:xxxxx@127.0.0.1"),
        "{yaml}"
    );
    assert!(yaml.contains("password: <secret>"), "{yaml}");
    assert!(yaml.contains("client_secret: <secret>"), "{yaml}");
    let metrics = &places.iter().find(|(p, _)| p == "/metrics").unwrap().1;
    assert!(metrics.contains("writer:xxxxx@"), "the url label");
    let log = &places[1].1;
    assert!(
        log.contains("writer:xxxxx@"),
        "the queue's log lines name the URL"
    );
    eprintln!(
        "{} places checked for {} secrets",
        places.len(),
        secrets.len()
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Unknown users and wrong passwords of a known user take the same time: an unknown user is
/// checked against a hash of the same cost as the configured ones. The defect: the hash used
/// for unknown users had a fixed cost (10), so with users hashed at another cost the answer's
/// time told which user names exist (at cost 12 a known user took 4 times as long; here,
/// hashed at cost 6, an unknown user took 16 times as long as a known one).
#[test]
fn unknown_user_answered_at_another_speed_than_a_wrong_password_revealed_which_users_exist() {
    let dir = tempdir("sec-timing");
    let hash = bcrypt::hash("right horse", 6).unwrap();
    let web = dir.join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  alice: {hash}\n")).unwrap();
    let web_flag = format!("--web.config.file={}", web.display());
    std::fs::write(dir.join("prometheus.yml"), "scrape_configs: []\n").unwrap();
    let http = client();
    let ready = |port: u16| {
        http.get(format!("http://127.0.0.1:{port}/-/ready"))
            .basic_auth("alice", Some("right horse"))
            .send()
            .is_ok_and(|r| r.status() == 200)
    };
    let (_vigil, port) = start_vigil_in(&dir, &dir.join("data"), &[&web_flag], "vigil.log", &ready);
    let url = format!("http://127.0.0.1:{port}/-/healthy");
    let time = |user: &str, pass: &str| {
        let mut t: Vec<Duration> = (0..7)
            .map(|i| {
                let started = Instant::now();
                let r = http
                    .get(&url)
                    .basic_auth(user, Some(format!("{pass}{i}")))
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 401);
                started.elapsed()
            })
            .collect();
        t.sort();
        t[3]
    };
    // Interleaved, so load on the machine hits both alike.
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..3 {
        known.push(time("alice", "wrong"));
        unknown.push(time("mallory", "wrong"));
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[1].as_secs_f64(), unknown[1].as_secs_f64());
    eprintln!("median 401 time: known user, wrong password {k:.4} s; unknown user {u:.4} s");
    let ratio = u / k;
    assert!(
        (0.5..2.0).contains(&ratio),
        "unknown/known = {ratio:.2}: the time tells which users exist"
    );
}

/// A TLS ClientHello offering only TLS 1.1 (legacy version 0x0302, no supported_versions
/// extension) with a CBC suite, as an old client sends it.
fn tls11_client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x02];
    hello.extend_from_slice(&[7u8; 32]); // random
    hello.push(0); // session id
    hello.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0xc0, 0x09]); // ECDHE_{RSA,ECDSA}_AES_128_CBC_SHA
    hello.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut hs = vec![0x01, 0, 0, hello.len() as u8];
    hs.extend_from_slice(&hello);
    let mut rec = vec![0x16, 0x03, 0x01, 0, hs.len() as u8];
    rec.extend_from_slice(&hs);
    rec
}

fn tls_client(
    ca: &rustls::RootCertStore,
    version: &'static rustls::SupportedProtocolVersion,
    suite: Option<rustls::CipherSuite>,
) -> Arc<rustls::ClientConfig> {
    let mut p = rustls::crypto::ring::default_provider();
    if let Some(s) = suite {
        p.cipher_suites.retain(|c| c.suite() == s);
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(p))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(ca.clone())
            .with_no_client_auth(),
    )
}

/// Connects, sends `GET /-/healthy`, and returns the negotiated suite, or the error.
fn handshake(port: u16, cfg: Arc<rustls::ClientConfig>) -> Result<rustls::CipherSuite, String> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).map_err(|e| e.to_string())?;
    let sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    let _ = tls.read_to_end(&mut resp);
    if !resp.starts_with(b"HTTP/1.1 200") {
        return Err(format!("answer: {:?}", String::from_utf8_lossy(&resp)));
    }
    Ok(tls.conn.negotiated_cipher_suite().unwrap().suite())
}

/// TLS as Prometheus' web config serves it by default: TLS 1.2 and 1.3, never older; with
/// `cipher_suites` set, only those TLS 1.2 suites (they used to be accepted and ignored).
#[test]
fn tls_serves_1_2_and_1_3_only_and_honours_cipher_suites() {
    use rustls::CipherSuite as S;
    let dir = tempdir("sec-tls");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("server.crt"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), ck.key_pair.serialize_pem()).unwrap();
    let mut ca = rustls::RootCertStore::empty();
    ca.add(ck.cert.der().clone()).unwrap();
    let start = |extra: &str| {
        let web = dir.join(format!("web{}.yml", extra.len()));
        std::fs::write(
            &web,
            format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}"),
        )
        .unwrap();
        std::fs::write(dir.join("prometheus.yml"), "scrape_configs: []\n").unwrap();
        let ca = ca.clone();
        let ready = move |port: u16| {
            handshake(port, tls_client(&ca, &rustls::version::TLS13, None)).is_ok()
        };
        start_vigil_in(
            &dir,
            &dir.join(format!("data{}", extra.len())),
            &[&format!("--web.config.file={}", web.display())],
            &format!("vigil{}.log", extra.len()),
            &ready,
        )
    };

    // Defaults.
    let (_v, port) = start("");
    let s13 = handshake(port, tls_client(&ca, &rustls::version::TLS13, None)).unwrap();
    let s12 = handshake(port, tls_client(&ca, &rustls::version::TLS12, None)).unwrap();
    eprintln!("default: TLS 1.3 {s13:?}, TLS 1.2 {s12:?}");
    assert!(format!("{s12:?}").starts_with("TLS_ECDHE_"), "{s12:?}");
    // TLS 1.1: refused with an alert (0x15), never a ServerHello (0x16).
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.write_all(&tls11_client_hello()).unwrap();
    let mut answer = [0u8; 7];
    let n = sock.read(&mut answer).unwrap_or(0);
    eprintln!("TLS 1.1 ClientHello answered with {:02x?}", &answer[..n]);
    assert!(n == 0 || answer[0] == 0x15, "{:02x?}", &answer[..n]);
    // Which TLS 1.2 suites the server offers (ECDHE with AEAD ciphers only: no CBC, no RSA
    // key exchange) is checked by the unit test
    // `web::config::tests::tls_defaults_are_prometheus_minimum_and_aead_only`: a rustls client
    // cannot offer the others.

    // cipher_suites: only the one listed.
    let (_v2, port) = start("  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n");
    let ok = handshake(
        port,
        tls_client(
            &ca,
            &rustls::version::TLS12,
            Some(S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
        ),
    );
    assert_eq!(ok, Ok(S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384));
    let refused = handshake(
        port,
        tls_client(
            &ca,
            &rustls::version::TLS12,
            Some(S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
        ),
    );
    eprintln!("suite not listed: {refused:?}");
    assert!(refused.is_err());
    // TLS 1.3 is not affected by cipher_suites (as in Go).
    assert!(handshake(port, tls_client(&ca, &rustls::version::TLS13, None)).is_ok());
}

/// `client_allowed_sans` restricts which verified client certificates are let in. The defect:
/// it was accepted and ignored, so any certificate the CA signed was let in.
#[test]
fn client_allowed_sans_was_ignored_and_let_in_any_certificate_of_the_ca() {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let dir = tempdir("sec-sans");
    let server = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("server.crt"), server.cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server.key_pair.serialize_pem()).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    let client_cert = |san: &str| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![san.to_string()]).unwrap();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
        (cert.der().clone(), key.serialize_der())
    };
    std::fs::write(
        dir.join("web.yml"),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_allowed_sans: [good.client.example]\n",
    )
    .unwrap();
    std::fs::write(dir.join("prometheus.yml"), "scrape_configs: []\n").unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.cert.der().clone()).unwrap();
    let with_cert = |san: &str| {
        let (cert, key) = client_cert(san);
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(
                vec![cert],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
            )
            .unwrap(),
        )
    };
    let good = with_cert("good.client.example");
    let g = good.clone();
    let ready = move |port: u16| handshake(port, g.clone()).is_ok();
    let (_v, port) = start_vigil_in(
        &dir,
        &dir.join("data"),
        &[&format!(
            "--web.config.file={}",
            dir.join("web.yml").display()
        )],
        "vigil.log",
        &ready,
    );
    assert!(handshake(port, good).is_ok());
    let bad = handshake(port, with_cert("other.client.example"));
    eprintln!("certificate of the CA without an allowed SAN: {bad:?}");
    assert!(bad.is_err());
    // Compared as strings, as exporter-toolkit does: a wildcard does not stand for the name.
    assert!(handshake(port, with_cert("*.client.example")).is_err());
    let none = handshake(port, tls_client(&roots, &rustls::version::TLS13, None));
    assert!(none.is_err(), "no client certificate");
}

/// A target address with a password (`user:password@host:port`, which the scrape sends as
/// basic auth): Prometheus' `lastError` comes from Go's HTTP client, which writes the password
/// as `***`. The defect: vigil's `lastError` had it in clear. (`scrapeUrl`, `globalUrl` and the
/// `instance` label still show the address as written, as in Prometheus.)
#[test]
fn password_in_a_target_address_leaked_into_last_error() {
    let closed = free_port();
    let config = format!(
        "global: {{scrape_interval: 200ms}}\nscrape_configs:\n  - job_name: a\n    static_configs: [{{targets: [\"u:tgt-pa55@127.0.0.1:{closed}\"]}}]\n"
    );
    let (_v, port, _dir) = start_vigil(&config);
    let mut last_error = String::new();
    wait_for(Duration::from_secs(10), "a lastError", || {
        let (_, v) = api(port, "/api/v1/targets");
        last_error = v["data"]["activeTargets"][0]["lastError"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        !last_error.is_empty()
    });
    eprintln!("lastError: {last_error}");
    assert!(!last_error.contains("tgt-pa55"), "{last_error}");
    assert!(
        last_error.contains(&format!("\"http://u:***@127.0.0.1:{closed}/metrics\"")),
        "{last_error}"
    );
}
