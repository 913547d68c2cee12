//! `--web.config.file` against the real binary: TLS with a self-signed certificate made here
//! (rcgen), basic auth with a bcrypt hash (no credentials 401, wrong password 401, right one
//! 200, before any handler runs), together with `--web.route-prefix`.

mod common;

use common::*;
use std::time::Duration;

fn client(ca_pem: &str) -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[test]
fn tls_and_basic_auth_with_route_prefix() {
    let dir = tempdir("webcfg");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert_pem = ck.cert.pem();
    std::fs::write(dir.join("server.crt"), &cert_pem).unwrap();
    std::fs::write(dir.join("server.key"), ck.key_pair.serialize_pem()).unwrap();
    let hash = bcrypt::hash("correct horse", 4).unwrap();
    let web = dir.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  grafana: {hash}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n"
        ),
    )
    .unwrap();
    let web_flag = format!("--web.config.file={}", web.display());
    let http = client(&cert_pem);
    let ready = |port: u16| {
        http.get(format!("https://localhost:{port}/prom/-/ready"))
            .basic_auth("grafana", Some("correct horse"))
            .send()
            .is_ok_and(|r| r.status() == 200)
    };
    let (_vigil, port, _d) = start_vigil_ready(
        "scrape_configs: []\n",
        &[&web_flag, "--web.route-prefix=/prom"],
        &ready,
    );
    let url = format!("https://localhost:{port}/prom/api/v1/query?query=1%2B1&time=4");

    let r = http.get(&url).send().unwrap();
    assert_eq!(r.status(), 401, "no credentials");
    assert_eq!(r.headers()["www-authenticate"], "Basic");
    let r = http
        .get(&url)
        .basic_auth("grafana", Some("wrong"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401, "wrong password");
    let r = http
        .get(&url)
        .basic_auth("nobody", Some("correct horse"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401, "unknown user");
    // Checked before routing: an unknown path is 401 too, not 404.
    let r = http
        .get(format!("https://localhost:{port}/prom/nope"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);

    let r = http
        .get(&url)
        .basic_auth("grafana", Some("correct horse"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-frame-options"], "deny");
    assert_eq!(
        r.text().unwrap(),
        r#"{"status":"success","data":{"resultType":"scalar","result":[4,"2"]}}"#
    );
    // Outside the prefix: 404.
    let r = http
        .get(format!("https://localhost:{port}/api/v1/query?query=1"))
        .basic_auth("grafana", Some("correct horse"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    // Plain HTTP on the TLS port gets no answer.
    let plain = http_get(&format!("http://127.0.0.1:{port}/prom/-/ready"));
    assert!(plain.is_err() || plain.is_ok_and(|(s, _)| s != 200));
}

#[test]
fn bad_web_config_stops_the_start() {
    let dir = tempdir("webcfg-bad");
    let web = dir.join("web.yml");
    std::fs::write(&web, "basic_auth_users:\n  alice: not-a-hash\n").unwrap();
    let out = std::process::Command::new(vigil_bin())
        .arg(format!("--web.config.file={}", web.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bcrypt"), "{err}");
}
