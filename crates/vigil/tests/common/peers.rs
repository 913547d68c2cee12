//! Peers for end-to-end tests: the example `ml-service`, a real Alertmanager
//! (`prometheus-alertmanager`), a webhook sink that records what Alertmanager posts, and
//! Prometheus 2.42.
//! (The same procedure as `alerting_e2e.rs`, shared so other tests can use it.)

use super::{Proc, free_port, http_get, tempdir, vigil_bin, wait_for};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
/// Debian's Prometheus 2.42.
pub const PROMETHEUS: &str = "/usr/bin/prometheus";

/// The checkout's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// True if Alertmanager is installed; in CI its absence is a failure, elsewhere a skip.
pub fn have_alertmanager() -> bool {
    if Path::new(ALERTMANAGER).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{ALERTMANAGER} is missing: .ci/run installs prometheus-alertmanager"
    );
    eprintln!("skipping: {ALERTMANAGER} not installed");
    false
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The ml-service binary beside vigil's, (re)built with cargo when it is missing or older
/// than its sources (`cargo test -p vigil` does not build it).
pub fn ml_service_bin() -> PathBuf {
    let vigil = Path::new(vigil_bin());
    let dir = vigil.parent().unwrap();
    let bin = dir.join("ml-service");
    let crate_dir = repo().join("crates/ml-service");
    let newest_source = [crate_dir.join("src/main.rs"), crate_dir.join("Cargo.toml")]
        .iter()
        .filter_map(|p| mtime(p))
        .max();
    let stale = match (mtime(&bin), newest_source) {
        (None, _) => true,
        (Some(b), Some(s)) => b < s,
        (Some(_), None) => false,
    };
    if stale {
        let target = dir.parent().unwrap();
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "-p", "ml-service"])
            .env("CARGO_TARGET_DIR", target)
            .current_dir(repo())
            .status()
            .expect("cargo build -p ml-service");
        assert!(status.success(), "building ml-service failed");
    }
    bin
}

/// Starts ml-service on a loopback port with `args`; waits until `/metrics` answers.
pub fn start_ml_service(args: &[&str]) -> (Proc, u16) {
    let port = free_port();
    let child = Command::new(ml_service_bin())
        .arg(format!("--listen=127.0.0.1:{port}"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ml-service");
    let p = Proc {
        child,
        name: "ml-service",
    };
    wait_for(Duration::from_secs(10), "ml-service up", || {
        http_get(&format!("http://127.0.0.1:{port}/metrics")).is_ok_and(|(s, _)| s == 200)
    });
    (p, port)
}

/// Changes ml-service's faults at runtime (`/admin/faults?{query}`).
pub fn set_faults(port: u16, query: &str) {
    let (s, body) = http_get(&format!("http://127.0.0.1:{port}/admin/faults?{query}")).unwrap();
    assert_eq!(s, 200, "{body}");
}

/// Webhook bodies Alertmanager posted to the sink.
pub type Received = Arc<Mutex<Vec<serde_json::Value>>>;

/// A webhook receiver on a loopback port that keeps every JSON body posted to it.
pub fn start_sink() -> (u16, Received) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got: Received = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let mut r = BufReader::new(conn);
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; len];
            if r.read_exact(&mut body).is_ok()
                && let Ok(v) = serde_json::from_slice(&body)
            {
                g.lock().unwrap().push(v);
            }
            let mut c = r.into_inner();
            let _ =
                c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, got)
}

/// The alerts named `alertname` with `status` the sink has received.
pub fn sink_alerts(got: &Received, alertname: &str, status: &str) -> Vec<serde_json::Value> {
    got.lock()
        .unwrap()
        .iter()
        .flat_map(|body| body["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["labels"]["alertname"] == alertname && a["status"] == status)
        .collect()
}

/// Starts Alertmanager on `port` (no clustering), routing everything to the sink at once.
pub fn start_alertmanager(dir: &Path, port: u16, sink: u16) -> Proc {
    let cfg = dir.join("alertmanager.yml");
    std::fs::write(
        &cfg,
        format!(
            "route:\n  receiver: sink\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: sink\n    webhook_configs:\n      - url: http://127.0.0.1:{sink}/hook\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let storage = dir.join(format!("am-data-{}", free_port()));
    let log = std::fs::File::create(dir.join("alertmanager.log")).unwrap();
    let child = Command::new(ALERTMANAGER)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", storage.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start alertmanager");
    let p = Proc {
        child,
        name: "alertmanager",
    };
    wait_for(Duration::from_secs(20), "alertmanager ready", || {
        http_get(&format!("http://127.0.0.1:{port}/-/ready")).is_ok_and(|(s, _)| s == 200)
    });
    p
}

/// A real peer process (Prometheus 2.42 or VictoriaMetrics), its port and directory.
pub struct Peer {
    pub proc: Proc,
    pub port: u16,
    pub dir: PathBuf,
}

/// Prometheus 2.42 with `config` as its `prometheus.yml` and `extra` flags, in `dir` (else a
/// new one) on `port` (else a free one); waits (at most 60 s) until it is ready.
pub fn start_prometheus(
    config: &str,
    extra: &[&str],
    dir: Option<PathBuf>,
    port: Option<u16>,
) -> Peer {
    let dir = dir.unwrap_or_else(|| tempdir("prom"));
    let port = port.unwrap_or_else(free_port);
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(PROMETHEUS)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut proc = Proc {
        child,
        name: "prometheus",
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http_get(&format!("http://127.0.0.1:{port}/-/ready")).is_ok_and(|(s, _)| s == 200) {
        assert!(
            proc.running(),
            "prometheus exited: {}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
        assert!(Instant::now() < deadline, "prometheus not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    Peer { proc, port, dir }
}
