//! Remote write and remote read against real peers (Debian packages `prometheus` 2.42 and
//! `victoria-metrics`), each compared series by series and sample by sample count through
//! both sides' query APIs:
//!
//! - vigil → Prometheus (`--web.enable-remote-write-receiver`),
//! - vigil → VictoriaMetrics (`/api/v1/write`),
//! - Prometheus (`remote_write`) → vigil's receiver,
//! - outage: the receiver stopped for two minutes while vigil keeps scraping, then restarted:
//!   zero samples missing,
//! - remote read both ways: Prometheus reading vigil's `/api/v1/read` (samples), vigil's
//!   `remote_read` reading Prometheus (streamed XOR chunks).
//!
//! A run scrapes the synthetic targets every second, then the scrape jobs are removed by a config reload
//! (so the data stops growing and staleness markers are written), and the test waits until
//! both sides hold the same samples. Counts exclude staleness markers on both sides.
//!
//! `.ci/run` installs the packages. Set VIGIL_SKIP_INTEROP=1 to skip on a machine without them.

mod common;

use common::peers::{PROMETHEUS, Peer, start_prometheus};
use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const VICTORIA: &str = "/usr/bin/victoria-metrics";

fn peers_present(bins: &[&str]) -> bool {
    if std::env::var_os("VIGIL_SKIP_INTEROP").is_some() {
        eprintln!("VIGIL_SKIP_INTEROP set: interop test skipped");
        return false;
    }
    for bin in bins {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: install the Debian packages prometheus and victoria-metrics (as .ci/run does), or set VIGIL_SKIP_INTEROP=1"
        );
    }
    true
}

/// Per series (labels as sorted JSON text) → number of samples.
type Counts = BTreeMap<String, usize>;

fn labels_key(metric: &serde_json::Value) -> String {
    let m: BTreeMap<String, String> = metric
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    serde_json::to_string(&m).unwrap()
}

/// Raw samples of every series in the last hour, through `/api/v1/query` with a range
/// selector (Prometheus and vigil return the raw samples, staleness markers excluded).
fn counts_prom_api(port: u16) -> Counts {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 5.0;
    let (status, v) = api(
        port,
        &format!(
            "/api/v1/query?query={}&time={now}",
            enc("{__name__=~\".+\"}[1h]")
        ),
    );
    assert_eq!(status, 200, "{v}");
    let mut out = Counts::new();
    for s in v["data"]["result"].as_array().cloned().unwrap_or_default() {
        let n = s["values"].as_array().map_or(0, Vec::len);
        out.insert(labels_key(&s["metric"]), n);
    }
    out
}

/// VictoriaMetrics' `/api/v1/export`: JSON lines of raw samples; staleness markers (exported
/// as NaN-like values) are not counted.
fn counts_vm(port: u16) -> Counts {
    let (status, body) = http_get(&format!(
        "http://127.0.0.1:{port}/api/v1/export?match[]={}",
        enc("{__name__=~\".+\"}")
    ))
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let mut out = Counts::new();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let n = v["values"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|x| x.is_number()).count());
        if n > 0 {
            *out.entry(labels_key(&v["metric"])).or_default() += n;
        }
    }
    out
}

fn diff(a: &Counts, b: &Counts) -> String {
    let mut lines = Vec::new();
    for (k, n) in a {
        match b.get(k) {
            Some(m) if m == n => {}
            Some(m) => lines.push(format!("{k}: {n} vs {m}")),
            None => lines.push(format!("{k}: {n} vs missing")),
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        lines.push(format!("{k}: missing vs {}", b[k]));
    }
    let total = lines.len();
    lines.truncate(10);
    format!("{total} series differ, e.g.:\n{}", lines.join("\n"))
}

/// Waits (up to `secs`) until both sides hold the same counts; returns them.
fn wait_equal(secs: u64, a: impl Fn() -> Counts, b: impl Fn() -> Counts) -> Counts {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (x, y) = (a(), b());
        if x == y && !x.is_empty() {
            return x;
        }
        if Instant::now() > deadline {
            panic!("the two sides differ: {}", diff(&x, &y));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn scrape_config(targets: &[u16]) -> String {
    let t: Vec<String> = targets.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
    format!(
        "scrape_configs:\n  - job_name: sim\n    static_configs:\n      - targets: [{}]\n",
        t.join(", ")
    )
}

const GLOBAL: &str = "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n";

fn rw_section(url: &str) -> String {
    format!(
        "remote_write:\n  - url: {url}\n    name: peer\n    queue_config:\n      batch_send_deadline: 1s\n      max_samples_per_send: 500\n      min_backoff: 100ms\n      max_backoff: 2s\n"
    )
}

/// Rewrites vigil's config without scrape jobs and reloads it: the data stops growing.
fn stop_vigil_scraping(port: u16, dir: &Path, rest: &str) {
    std::fs::write(dir.join("prometheus.yml"), format!("{GLOBAL}{rest}")).unwrap();
    let (s, body) = http_post(&format!("http://127.0.0.1:{port}/-/reload"));
    assert_eq!(s, 200, "reload: {body}");
}

fn start_vm() -> Peer {
    let dir = tempdir("vm");
    let port = free_port();
    let log = std::fs::File::create(dir.join("vm.log")).unwrap();
    let child = Command::new(VICTORIA)
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg(format!("-storageDataPath={}", dir.join("data").display()))
        .args([
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-retentionPeriod=1y",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut proc = Proc {
        child,
        name: "victoria-metrics",
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http_get(&format!("http://127.0.0.1:{port}/health")).is_ok_and(|(s, _)| s == 200) {
        assert!(proc.running(), "victoria-metrics exited");
        assert!(Instant::now() < deadline, "victoria-metrics not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    Peer { proc, port, dir }
}

/// Stops a process with SIGTERM and waits for it (a clean shutdown).
fn terminate(p: &mut Proc) {
    let _ = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = p.child.kill();
    let _ = p.child.wait();
}

fn metric(port: u16, name: &str) -> f64 {
    let (_, body) = http_get(&format!("http://127.0.0.1:{port}/metrics")).unwrap();
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn sim_ports(base: u16, n: u16) -> Vec<u16> {
    (0..n).map(|i| base + i).collect()
}

#[test]
fn vigil_to_prometheus_every_sample_arrives() {
    if !peers_present(&[PROMETHEUS]) {
        return;
    }
    let started = Instant::now();
    let (_sim, base) = start_targets(2, 150, 1000);
    let peer = start_prometheus(
        "global: {}\n",
        &["--web.enable-remote-write-receiver"],
        None,
        None,
    );
    let rw = rw_section(&format!("http://127.0.0.1:{}/api/v1/write", peer.port));
    let cfg = format!("{GLOBAL}{}{rw}", scrape_config(&sim_ports(base, 2)));
    let (_vigil, port, dir) = start_vigil_with(&cfg, &["--web.enable-lifecycle"]);
    std::thread::sleep(Duration::from_secs(12));
    stop_vigil_scraping(port, &dir, &rw);
    let c = wait_equal(60, || counts_prom_api(port), || counts_prom_api(peer.port));
    let samples: usize = c.values().sum();
    eprintln!(
        "vigil → prometheus: {} series, {samples} samples equal on both sides ({:?})",
        c.len(),
        started.elapsed()
    );
    assert!(
        c.len() >= 300 && samples >= 300 * 8,
        "too little data: {} series, {samples} samples",
        c.len()
    );
    assert_eq!(
        metric(port, "prometheus_remote_storage_samples_failed_total"),
        0.0
    );
}

#[test]
fn vigil_to_victoriametrics_every_sample_arrives() {
    if !peers_present(&[VICTORIA]) {
        return;
    }
    let started = Instant::now();
    let (_sim, base) = start_targets(2, 150, 1000);
    let peer = start_vm();
    let rw = rw_section(&format!("http://127.0.0.1:{}/api/v1/write", peer.port));
    let cfg = format!("{GLOBAL}{}{rw}", scrape_config(&sim_ports(base, 2)));
    let (_vigil, port, dir) = start_vigil_with(&cfg, &["--web.enable-lifecycle"]);
    std::thread::sleep(Duration::from_secs(12));
    stop_vigil_scraping(port, &dir, &rw);
    let c = wait_equal(60, || counts_prom_api(port), || counts_vm(peer.port));
    let samples: usize = c.values().sum();
    eprintln!(
        "vigil → victoria-metrics: {} series, {samples} samples equal on both sides ({:?})",
        c.len(),
        started.elapsed()
    );
    assert!(
        c.len() >= 300 && samples >= 300 * 8,
        "too little data: {} series, {samples} samples",
        c.len()
    );
    let _ = &peer.dir;
}

#[test]
fn prometheus_to_vigil_receiver_every_sample_arrives() {
    if !peers_present(&[PROMETHEUS]) {
        return;
    }
    let started = Instant::now();
    let (_sim, base) = start_targets(2, 150, 1000);
    let (_vigil, port, _dir) =
        start_vigil_with("global: {}\n", &["--web.enable-remote-write-receiver"]);
    let rw = rw_section(&format!("http://127.0.0.1:{port}/api/v1/write"));
    let cfg = format!("{GLOBAL}{}{rw}", scrape_config(&sim_ports(base, 2)));
    let mut peer = start_prometheus(&cfg, &["--web.enable-lifecycle"], None, None);
    std::thread::sleep(Duration::from_secs(12));
    std::fs::write(peer.dir.join("prometheus.yml"), format!("{GLOBAL}{rw}")).unwrap();
    let (s, body) = http_post(&format!("http://127.0.0.1:{}/-/reload", peer.port));
    assert_eq!(s, 200, "{body}");
    // Prometheus 2.42 reads its WAL every 15 s at most; give it time.
    let c = wait_equal(90, || counts_prom_api(peer.port), || counts_prom_api(port));
    let samples: usize = c.values().sum();
    eprintln!(
        "prometheus → vigil: {} series, {samples} samples equal on both sides ({:?})",
        c.len(),
        started.elapsed()
    );
    // Prometheus scrapes a few seconds after it is ready: at least 5 samples per series.
    assert!(
        c.len() >= 300 && samples >= 300 * 5,
        "too little data: {} series, {samples} samples",
        c.len()
    );
    assert!(metric(port, "vigil_remote_write_samples_received_total") >= samples as f64);
    let _ = &mut peer.proc;
}

#[test]
fn outage_of_two_minutes_loses_no_sample() {
    if !peers_present(&[PROMETHEUS]) {
        return;
    }
    let started = Instant::now();
    let (_sim, base) = start_targets(2, 100, 1000);
    let mut peer = start_prometheus(
        "global: {}\n",
        &["--web.enable-remote-write-receiver"],
        None,
        None,
    );
    let (peer_port, peer_dir) = (peer.port, peer.dir.clone());
    let rw = rw_section(&format!("http://127.0.0.1:{peer_port}/api/v1/write"));
    let cfg = format!("{GLOBAL}{}{rw}", scrape_config(&sim_ports(base, 2)));
    let (_vigil, port, dir) = start_vigil_with(&cfg, &["--web.enable-lifecycle"]);
    std::thread::sleep(Duration::from_secs(8));
    let sent_before = metric(port, "prometheus_remote_storage_samples_total");
    assert!(sent_before > 0.0, "nothing sent before the outage");
    terminate(&mut peer.proc);
    let outage = Instant::now();
    std::thread::sleep(Duration::from_secs(120));
    let retried = metric(port, "prometheus_remote_storage_samples_retried_total");
    let pending = metric(port, "prometheus_remote_storage_samples_pending");
    eprintln!("after the outage: retried {retried}, pending {pending}");
    assert!(
        retried > 0.0,
        "the queue should have retried during the outage"
    );
    let peer = start_prometheus(
        "global: {}\n",
        &["--web.enable-remote-write-receiver"],
        Some(peer_dir),
        Some(peer_port),
    );
    eprintln!("receiver back after {:?}", outage.elapsed());
    std::thread::sleep(Duration::from_secs(5));
    stop_vigil_scraping(port, &dir, &rw);
    let c = wait_equal(90, || counts_prom_api(port), || counts_prom_api(peer.port));
    let samples: usize = c.values().sum();
    eprintln!(
        "outage: {} series, {samples} samples equal on both sides ({:?})",
        c.len(),
        started.elapsed()
    );
    // Two minutes of 1 s scrapes were kept in the WAL and sent afterwards: the receiver has
    // every series' samples from before, during and after the outage.
    assert!(c.len() >= 150, "too few series: {}", c.len());
    assert!(
        samples >= c.len() * 125,
        "too little data: {samples} samples"
    );
    assert_eq!(
        metric(port, "prometheus_remote_storage_samples_failed_total"),
        0.0
    );
}

#[test]
fn remote_read_both_ways_with_prometheus() {
    if !peers_present(&[PROMETHEUS]) {
        return;
    }
    let started = Instant::now();
    let (_sim, base) = start_targets(1, 150, 1000);
    // vigil scrapes; a Prometheus without scrape jobs reads vigil through remote_read.
    let cfg = format!("{GLOBAL}{}", scrape_config(&sim_ports(base, 1)));
    let (_vigil, port, dir) = start_vigil_with(&cfg, &["--web.enable-lifecycle"]);
    // ...and a Prometheus scrapes the same target; a vigil without scrape jobs reads it.
    let prom_scraper = start_prometheus(&cfg, &["--web.enable-lifecycle"], None, None);
    std::thread::sleep(Duration::from_secs(10));
    stop_vigil_scraping(port, &dir, "");
    std::fs::write(prom_scraper.dir.join("prometheus.yml"), GLOBAL).unwrap();
    let (s, _) = http_post(&format!("http://127.0.0.1:{}/-/reload", prom_scraper.port));
    assert_eq!(s, 200);
    std::thread::sleep(Duration::from_secs(2));

    let reader = start_prometheus(
        &format!(
            "global: {{}}\nremote_read:\n  - url: http://127.0.0.1:{port}/api/v1/read\n    read_recent: true\n"
        ),
        &[],
        None,
        None,
    );
    let c = wait_equal(
        30,
        || counts_prom_api(port),
        || counts_prom_api(reader.port),
    );
    eprintln!(
        "prometheus remote_read ← vigil: {} series, {} samples equal",
        c.len(),
        c.values().sum::<usize>()
    );
    assert!(c.len() >= 150);

    let (_reader_vigil, rport, _) = start_vigil_with(
        &format!(
            "global: {{}}\nremote_read:\n  - url: http://127.0.0.1:{}/api/v1/read\n    read_recent: true\n",
            prom_scraper.port
        ),
        &[],
    );
    let c = wait_equal(
        30,
        || counts_prom_api(prom_scraper.port),
        || counts_prom_api(rport),
    );
    eprintln!(
        "vigil remote_read ← prometheus (streamed chunks): {} series, {} samples equal ({:?})",
        c.len(),
        c.values().sum::<usize>(),
        started.elapsed()
    );
    assert!(c.len() >= 150);
    // Prometheus answered with streamed XOR chunks (vigil asks for them first).
    let (_, body) = http_get(&format!("http://127.0.0.1:{rport}/metrics")).unwrap();
    let line = body
        .lines()
        .find(|l| {
            l.starts_with("vigil_remote_read_client_requests_total")
                && l.contains("response=\"streamed\"")
        })
        .unwrap_or_else(|| panic!("no remote read counters: {body}"));
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n > 0.0, "no streamed responses: {line}");
}

#[test]
fn restart_during_an_outage_resumes_from_the_saved_position() {
    if !peers_present(&[PROMETHEUS]) {
        return;
    }
    let started = Instant::now();
    let (_sim, base) = start_targets(1, 100, 1000);
    // The receiver is down from the start: its port is reserved but nothing listens.
    let peer_port = free_port();
    let rw = rw_section(&format!("http://127.0.0.1:{peer_port}/api/v1/write"));
    let cfg = format!("{GLOBAL}{}{rw}", scrape_config(&sim_ports(base, 1)));
    let extra = [
        "--web.enable-lifecycle",
        "--storage.remote.flush-deadline=2s",
    ];
    let (mut vigil, _port, dir) = start_vigil_with(&cfg, &extra);
    std::thread::sleep(Duration::from_secs(10));
    terminate(&mut vigil);
    let saved: Vec<_> = std::fs::read_dir(dir.join("data/remote"))
        .expect("the queue saved its position at shutdown")
        .filter_map(Result::ok)
        .collect();
    assert_eq!(saved.len(), 1, "one position file");
    // Restart on the same data, still during the outage, then bring the receiver up.
    let (_vigil2, port) = start_vigil_in(&dir, &dir.join("data"), &extra, "vigil2.log", &ready_200);
    std::thread::sleep(Duration::from_secs(5));
    let peer = start_prometheus(
        "global: {}\n",
        &["--web.enable-remote-write-receiver"],
        None,
        Some(peer_port),
    );
    std::thread::sleep(Duration::from_secs(3));
    stop_vigil_scraping(port, &dir, &rw);
    let c = wait_equal(60, || counts_prom_api(port), || counts_prom_api(peer.port));
    let samples: usize = c.values().sum();
    eprintln!(
        "restart during outage: {} series, {samples} samples equal on both sides ({:?})",
        c.len(),
        started.elapsed()
    );
    // Both runs' samples arrived: at least the first run's 10 s plus the second's 8 s.
    assert!(
        samples >= c.len() * 14,
        "too little data: {samples} samples"
    );
}
