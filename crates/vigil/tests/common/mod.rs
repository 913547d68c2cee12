//! Shared helpers for tests that start the real `vigil` binary and real peers on loopback.
#![allow(dead_code)]

/// A fake Kubernetes API server (list, watch, discovery, TLS).
pub mod kube;
/// ml-service, Alertmanager and a webhook sink for end-to-end alerting tests.
pub mod peers;
/// The synthetic scrape targets (live, and as an OpenMetrics file for backfill).
pub mod target;

// Not every test file uses each of them.
#[allow(unused_imports)]
pub use target::{History, start_targets, write_openmetrics};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Writes `dir/prometheus.yml`: job `sim` scraping `targets` (host:port) every 100 ms, as the
/// crash and restart tests run.
pub fn write_sim_config(dir: &Path, targets: &[String]) {
    let list = targets
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 100ms\n  scrape_timeout: 100ms\nscrape_configs:\n  - job_name: sim\n    static_configs:\n      - targets: [{list}]\n"
        ),
    )
    .unwrap();
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Off the ports benchmarks listen on (soak.py's 39090 and up; 29090 and up), with a
        // margin for tests that take a few consecutive ports from here.
        if !(29_070..=29_200).contains(&port) && !(39_070..=39_200).contains(&port) {
            return port;
        }
    }
}

/// A child process killed when the test ends, whatever happens.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// True while the process has not exited.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// A fresh temporary directory for this test, under `$TMPDIR/vigil-tests/<pid>/`.
///
/// The directories outlive the test (a failing test's logs stay for reading); each test
/// process removes, on its first call, the roots of test processes that have exited, so
/// runs do not pile up data in the temp directory.
pub fn tempdir(tag: &str) -> PathBuf {
    static REAP: std::sync::Once = std::sync::Once::new();
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base = std::env::temp_dir().join("vigil-tests");
    REAP.call_once(|| reap_exited(&base));
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = base
        .join(std::process::id().to_string())
        .join(format!("vigil-test-{tag}-{n}"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Removes `base/<pid>` for every pid that no longer runs (no `/proc/<pid>`; nothing is
/// removed where there is no `/proc` to ask).
fn reap_exited(base: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

pub fn vigil_bin() -> &'static str {
    env!("CARGO_BIN_EXE_vigil")
}

/// Starts vigil on a loopback port with `config`; waits until `/-/ready` answers.
pub fn start_vigil(config: &str) -> (Proc, u16, PathBuf) {
    start_vigil_with(config, &[])
}

/// As [`start_vigil`], with extra command-line flags.
pub fn start_vigil_with(config: &str, extra: &[&str]) -> (Proc, u16, PathBuf) {
    start_vigil_ready(config, extra, &ready_200)
}

/// As [`start_vigil_with`], with a readiness check of its own (for a route prefix, TLS or
/// authentication) that is given the port.
pub fn start_vigil_ready(
    config: &str,
    extra: &[&str],
    ready: &dyn Fn(u16) -> bool,
) -> (Proc, u16, PathBuf) {
    let dir = tempdir("vigil");
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let (p, port) = start_vigil_in(&dir, &dir.join("data"), extra, "vigil.log", ready);
    (p, port, dir)
}

/// Starts vigil with `dir/prometheus.yml` and data in `data`, logging to `dir/log_name`;
/// waits (at most 30 s) until `ready(port)` answers true. For tests that restart vigil on the
/// same data.
pub fn start_vigil_in(
    dir: &Path,
    data: &Path,
    extra: &[&str],
    log_name: &str,
    ready: &dyn Fn(u16) -> bool,
) -> (Proc, u16) {
    start_vigil_under(&[], &[], dir, data, extra, log_name, ready)
}

/// As [`start_vigil_in`], run as the last arguments of `wrapper` (for example `unshare -m sh
/// -c …`; empty: vigil itself) with `env` added to its environment.
pub fn start_vigil_under(
    wrapper: &[&std::ffi::OsStr],
    env: &[(&str, &str)],
    dir: &Path,
    data: &Path,
    extra: &[&str],
    log_name: &str,
    ready: &dyn Fn(u16) -> bool,
) -> (Proc, u16) {
    let port = free_port();
    let log = std::fs::File::create(dir.join(log_name)).unwrap();
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(vigil_bin());
            c
        }
        None => Command::new(vigil_bin()),
    };
    let child = cmd
        .envs(env.iter().copied())
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut p = Proc {
        child,
        name: "vigil",
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready(port) {
        assert!(
            p.running(),
            "vigil exited: {}",
            std::fs::read_to_string(dir.join(log_name)).unwrap_or_default()
        );
        assert!(Instant::now() < deadline, "vigil not ready in 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    (p, port)
}

/// The default readiness check: `/-/ready` answers 200.
pub fn ready_200(port: u16) -> bool {
    http_get(&format!("http://127.0.0.1:{port}/-/ready")).is_ok_and(|(s, _)| s == 200)
}

pub fn http_get(url: &str) -> Result<(u16, String), reqwest::Error> {
    // reqwest is built without a default TLS provider; vigil installs ring, so do the tests.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let r = client.get(url).send()?;
    let status = r.status().as_u16();
    Ok((status, r.text()?))
}

/// GET an API URL and parse its JSON.
pub fn api(port: u16, path_and_query: &str) -> (u16, serde_json::Value) {
    let (s, body) = http_get(&format!("http://127.0.0.1:{port}{path_and_query}")).unwrap();
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (s, v)
}

pub fn wait_for(timeout: Duration, what: &str, cond: impl FnMut() -> bool) {
    wait_for_or(timeout, what, cond, String::new)
}

/// `wait_for` that, on timeout, adds what `explain` collects (logs, server state) to the
/// panic message, so a failure seen only in CI can be understood from its output.
pub fn wait_for_or(
    timeout: Duration,
    what: &str,
    mut cond: impl FnMut() -> bool,
    explain: impl FnOnce() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() >= deadline {
            panic!("timed out waiting for {what}\n{}", explain());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Percent-encodes a query parameter.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// POSTs an empty body; returns the status and body text.
pub fn http_post(url: &str) -> (u16, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = client.post(url).send().unwrap();
    let status = r.status().as_u16();
    (status, r.text().unwrap_or_default())
}

/// The python with the pinned PyPI test tools: VIGIL_PYTHON, else the venv `.ci/run` makes,
/// else the system python.
pub fn venv_python() -> String {
    let venv = std::env::var("HOME")
        .map(|h| format!("{h}/.cache/vigil-pyenv/bin/python"))
        .unwrap_or_default();
    std::env::var("VIGIL_PYTHON")
        .ok()
        .or_else(|| Path::new(&venv).exists().then(|| venv.clone()))
        .unwrap_or_else(|| "python3".into())
}

/// tools/drift_baseline.py over `csv` for `job`, imported into `data` with `vigil tsdb import
/// openmetrics`: the documented workflow (docs/drift.md, "Training baselines").
pub fn import_drift_baseline(dir: &Path, csv: &Path, data: &Path, job: &str, ts: u64) {
    let om = dir.join(format!("baseline-{job}.om"));
    let out = std::process::Command::new("python3")
        .arg(peers::repo().join("tools/drift_baseline.py"))
        .arg(csv)
        .args(["--timestamp", &ts.to_string()])
        .args([
            "--numeric",
            "x",
            "--numeric",
            "z",
            "--categorical",
            "country",
        ])
        .args(["--label", &format!("job={job}"), "-o"])
        .arg(&om)
        .output()
        .expect("python3 tools/drift_baseline.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(vigil_bin())
        .args(["tsdb", "import", "openmetrics"])
        .arg(&om)
        .arg(data)
        .output()
        .expect("vigil tsdb import");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reads an HTTP request up to the end of its head (for the tests' small fake servers);
/// `None` when the peer closes first.
pub fn read_request_head(conn: &mut impl std::io::Read) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// The value of header `name` (any case) in a request head, trimmed; empty when absent.
pub fn request_header(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// An exponential histogram (schema 1) with integral counts growing with `k`, carrying
/// `hint`: the test histogram of the remote-write and federation tests.
pub fn exp_hist(
    k: u32,
    hint: vigil_model::histogram::CounterResetHint,
) -> vigil_model::histogram::FloatHistogram {
    use vigil_model::histogram::{FloatHistogram, Span};
    let k = k as f64;
    FloatHistogram {
        counter_reset_hint: hint,
        schema: 1,
        zero_threshold: 0.001,
        zero_count: 1.0 + k,
        count: (1.0 + k) + (2.0 + 2.0 * k) + (1.0 + k),
        sum: 17.25 * (k + 1.0),
        positive_spans: vec![
            Span {
                offset: 0,
                length: 1,
            },
            Span {
                offset: 2,
                length: 1,
            },
        ],
        positive_buckets: vec![1.0 + k, 1.0 + k],
        negative_spans: vec![Span {
            offset: 1,
            length: 1,
        }],
        negative_buckets: vec![1.0 + k],
        custom_values: None,
    }
}
