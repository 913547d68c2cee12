//! Remote-write sender throughput: samples/s from vigil's WAL to a receiver on loopback, and
//! the CPU the sender uses for it.
//!
//! Run: `cargo bench -p vigil-benches --bench remote_write` (env `SAMPLES`, `SERIES`, `SHARDS`,
//! `LIVE_SECS` to change the sizes).
//!
//! The receiver is a child process (this binary re-executed) that decodes every request
//! (snappy + protobuf) and counts samples, so this process' CPU time (from
//! `/proc/self/stat`) is the sender's alone: WAL tailing, batching, encoding, compression and
//! HTTP. Two measurements:
//! 1. backlog: `SAMPLES` samples are written to a TSDB first, then the queue sends them as fast
//!    as it can; reported: samples/s and sender CPU seconds per 200,000 samples (= cores
//!    needed at 200k samples/s).
//! 2. live: a writer appends 200,000 samples/s for `LIVE_SECS` while the queue sends; reported:
//!    whether the queue kept up (lag after the writer stops) and the sender's CPU share
//!    (process CPU minus the writer thread's).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use vigil_model::{Appendable, Labels};
use vigil_remote::prompb;
use vigil_remote::queue::{Queue, QueueSettings, StartAt};
use vigil_tsdb::{Tsdb, TsdbOptions};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// utime + stime of a `/proc/.../stat` file, in seconds.
fn cpu_of(path: &str) -> f64 {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let after = s.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    ticks / clk_tck()
}

fn clk_tck() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output();
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn receiver() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let count = Arc::new(AtomicU64::new(0));
        let c2 = count.clone();
        let app = axum::Router::new()
            .route(
                "/write",
                axum::routing::post(move |body: axum::body::Bytes| {
                    let c = c2.clone();
                    async move {
                        let req: prompb::WriteRequest =
                            vigil_remote::codec::decode_snappy(&body, 1 << 30).unwrap();
                        let n: usize = req.timeseries.iter().map(|t| t.samples.len()).sum();
                        c.fetch_add(n as u64, Ordering::Relaxed);
                        axum::http::StatusCode::NO_CONTENT
                    }
                }),
            )
            .route(
                "/count",
                axum::routing::get(move || {
                    let c = count.clone();
                    async move { c.load(Ordering::Relaxed).to_string() }
                }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", l.local_addr().unwrap().port());
        std::io::stdout().flush().unwrap();
        axum::serve(l, app).await.unwrap();
    });
}

fn received(port: u16) -> u64 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = write!(s, "GET /count HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.rsplit("\r\n\r\n")
        .next()
        .and_then(|b| b.trim().parse().ok())
        .unwrap_or(0)
}

fn settings(port: u16, shards: usize) -> QueueSettings {
    let _ = rustls::crypto::ring::default_provider().install_default();
    QueueSettings {
        name: "bench".into(),
        url: format!("http://127.0.0.1:{port}/write"),
        key: "bench".into(),
        timeout: Duration::from_secs(30),
        headers: vec![],
        relabel: vec![],
        external_labels: Labels::empty(),
        capacity: 10_000,
        min_shards: shards,
        max_shards: shards,
        max_samples_per_send: 2_000,
        batch_send_deadline: Duration::from_secs(5),
        min_backoff: Duration::from_millis(30),
        max_backoff: Duration::from_secs(5),
        retry_on_429: false,
        send_native_histograms: false,
        sample_age_limit: Duration::ZERO,
        send_metadata: false,
        metadata_interval: Duration::from_secs(60),
        metadata_max_per_send: 2000,
        flush_deadline: Duration::from_secs(10),
        client: reqwest::Client::builder().build().unwrap(),
        start: StartAt::NewestSegment,
        poll_interval: Duration::from_millis(20),
        save_interval: Duration::from_secs(1),
        reshard_interval: Duration::from_secs(3600),
    }
}

fn series_labels(n: usize) -> Vec<Labels> {
    (0..n)
        .map(|i| {
            Labels::from_pairs([
                (
                    "__name__",
                    format!("model_request_duration_seconds_bucket_{}", i % 50),
                ),
                ("instance", format!("10.0.{}.{}:9100", i / 250, i % 250)),
                ("job", "model-serving".to_string()),
                ("le", format!("{}", (i % 11) as f64 * 0.25)),
            ])
        })
        .collect()
}

/// One scrape-like commit of every series at `t`.
fn commit(db: &Tsdb, labels: &[Labels], refs: &mut [Option<u64>], t: i64) {
    let mut a = db.appender();
    for (i, l) in labels.iter().enumerate() {
        refs[i] = Some(
            a.append(refs[i], l, t, (t / 1000 + i as i64) as f64)
                .unwrap(),
        );
    }
    a.commit().unwrap();
}

fn main() {
    if std::env::var_os("VIGIL_BENCH_RECEIVER").is_some() {
        receiver();
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let samples = env("SAMPLES", 2_000_000);
    let series = env("SERIES", 10_000) as usize;
    let shards = env("SHARDS", 4) as usize;
    let live_secs = env("LIVE_SECS", 10);
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .env("VIGIL_BENCH_RECEIVER", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().unwrap();

    let dir = std::env::temp_dir().join(format!("vigil-bench-rw-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = Arc::new(
        Tsdb::open(
            &dir,
            TsdbOptions {
                retention_ms: 0,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let labels = series_labels(series);
    let mut refs = vec![None; series];
    let steps = (samples as usize).div_ceil(series);
    let t0 = 1_700_000_000_000i64;
    for k in 0..steps {
        commit(&db, &labels, &mut refs, t0 + k as i64 * 1000);
    }
    let total = (steps * series) as u64;
    println!(
        "remote_write bench: {total} samples of {series} series in the WAL, {shards} shards, receiver pid {}",
        child.id()
    );

    // 1. Backlog.
    let cpu0 = cpu_of("/proc/self/stat");
    let start = Instant::now();
    let metrics = Arc::new(vigil_remote::QueueMetrics::new(
        "bench", "x", shards, shards,
    ));
    let mut q = {
        let _g = rt.enter();
        Queue::start(
            settings(port, shards),
            db.clone(),
            metrics.clone(),
            None,
            rt.handle().clone(),
        )
    };
    while received(port) < total {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "backlog not sent in 300 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_of("/proc/self/stat") - cpu0;
    println!(
        "backlog: {total} samples in {wall:.2} s = {:.0} samples/s; sender CPU {cpu:.2} s ({:.2} cores while draining); {:.3} CPU-s per 200,000 samples",
        total as f64 / wall,
        cpu / wall,
        cpu / total as f64 * 200_000.0
    );

    // 2. Live: 200,000 samples/s (20 commits/s of 10,000 series) for LIVE_SECS.
    let per_commit = series as u64;
    let commits_per_s = (200_000 / per_commit).max(1);
    let before = received(port);
    let cpu0 = cpu_of("/proc/self/stat");
    let start = Instant::now();
    let db2 = db.clone();
    let writer = std::thread::spawn(move || {
        let wcpu0 = cpu_of("/proc/thread-self/stat");
        let mut t = t0 + steps as i64 * 1000;
        let mut n = 0u64;
        let begin = Instant::now();
        for c in 0..live_secs * commits_per_s {
            let due = begin + Duration::from_secs_f64(c as f64 / commits_per_s as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            t += 1000 / commits_per_s as i64;
            commit(&db2, &labels, &mut refs, t);
            n += per_commit;
        }
        (n, cpu_of("/proc/thread-self/stat") - wcpu0)
    });
    let (written, writer_cpu) = writer.join().unwrap();
    let write_wall = start.elapsed().as_secs_f64();
    let caught_up = Instant::now();
    while received(port) < before + written {
        assert!(
            caught_up.elapsed() < Duration::from_secs(120),
            "live: the sender fell behind"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let lag = caught_up.elapsed().as_secs_f64();
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_of("/proc/self/stat") - cpu0 - writer_cpu;
    println!(
        "live: {written} samples written at {:.0} samples/s for {write_wall:.1} s; all received {lag:.2} s after the last write; sender CPU {cpu:.2} s = {:.2} cores",
        written as f64 / write_wall,
        cpu / wall
    );
    rt.block_on(q.stop());
    let _ = child.kill();
    let _ = child.wait();
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
