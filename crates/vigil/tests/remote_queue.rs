//! vigil-remote's queue, receiver and remote read against a real TSDB (as the `WalSource`
//! and `Queryable` seams), here because `vigil-remote` itself does not depend on the TSDB.
//! Queue tests against a tiny in-process receiver on loopback: delivery, 5xx and 429 retried,
//! other 4xx dropped and counted, the position persisted and resumed across restarts, WAL
//! segments kept through a checkpoint during an outage, and the receiver and read handlers.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use parking_lot::Mutex;
use prost::Message;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use vigil_model::histogram::{CounterResetHint, FloatHistogram, Span};
use vigil_model::{Appendable, Labels, Matcher, Queryable, SelectHints};
use vigil_remote::codec;
use vigil_remote::metrics::{QueueMetrics, ServerMetrics};
use vigil_remote::prompb;
use vigil_remote::queue::{Queue, QueueSettings, StartAt};
use vigil_tsdb::{Tsdb, TsdbOptions};

fn tempdir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "vigil-remote-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// What the fake receiver answers: 0 = 204, else that status.
#[derive(Default)]
struct Fake {
    status: AtomicU32,
    requests: AtomicU64,
    /// series labels (as text) → (t, v bits) received.
    got: Mutex<BTreeMap<String, Vec<(i64, u64)>>>,
    /// series labels (as text) → histograms received (as sent).
    hgot: Mutex<BTreeMap<String, Vec<prompb::Histogram>>>,
    headers_ok: AtomicU64,
}

async fn fake_write(
    State(f): State<Arc<Fake>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> StatusCode {
    f.requests.fetch_add(1, Ordering::Relaxed);
    if headers
        .get("content-encoding")
        .is_some_and(|v| v == "snappy")
        && headers
            .get("x-prometheus-remote-write-version")
            .is_some_and(|v| v == "0.1.0")
        && headers
            .get("content-type")
            .is_some_and(|v| v == "application/x-protobuf")
    {
        f.headers_ok.fetch_add(1, Ordering::Relaxed);
    }
    let st = f.status.load(Ordering::Relaxed);
    if st != 0 {
        return StatusCode::from_u16(st as u16).unwrap();
    }
    let req: prompb::WriteRequest = codec::decode_snappy(&body, 1 << 30).unwrap();
    let mut got = f.got.lock();
    let mut hgot = f.hgot.lock();
    for ts in req.timeseries {
        let l = codec::labels_from_pb(&ts.labels).to_string();
        if !ts.histograms.is_empty() {
            hgot.entry(l.clone()).or_default().extend(ts.histograms);
        }
        if !ts.samples.is_empty() {
            got.entry(l)
                .or_default()
                .extend(ts.samples.iter().map(|s| (s.timestamp, s.value.to_bits())));
        }
    }
    StatusCode::NO_CONTENT
}

async fn start_fake() -> (Arc<Fake>, String) {
    let f = Arc::new(Fake::default());
    let app = axum::Router::new()
        .route("/write", axum::routing::post(fake_write))
        .with_state(f.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/write", l.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (f, url)
}

fn settings(url: &str, key: &str) -> QueueSettings {
    let _ = rustls::crypto::ring::default_provider().install_default();
    QueueSettings {
        name: key.into(),
        url: url.into(),
        key: key.into(),
        timeout: Duration::from_secs(5),
        headers: vec![],
        relabel: vec![],
        external_labels: Labels::empty(),
        capacity: 1000,
        min_shards: 2,
        max_shards: 4,
        max_samples_per_send: 100,
        batch_send_deadline: Duration::from_millis(50),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        retry_on_429: false,
        send_native_histograms: true,
        sample_age_limit: Duration::ZERO,
        send_metadata: false,
        metadata_interval: Duration::from_secs(60),
        metadata_max_per_send: 100,
        flush_deadline: Duration::from_millis(500),
        client: reqwest::Client::builder().build().unwrap(),
        start: StartAt::NewestSegment,
        poll_interval: Duration::from_millis(10),
        save_interval: Duration::from_millis(20),
        reshard_interval: Duration::from_secs(3600),
    }
}

fn open(dir: &std::path::Path) -> Arc<Tsdb> {
    Arc::new(
        Tsdb::open(
            dir,
            TsdbOptions {
                retention_ms: 0,
                ..Default::default()
            },
        )
        .unwrap(),
    )
}

/// Appends `batches` commits of `per` series at t = from.. (1 s apart).
fn ingest(db: &Tsdb, from: i64, batches: i64, per: usize) {
    for b in from..from + batches {
        let mut a = db.appender();
        for i in 0..per {
            let l = Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]);
            a.append(None, &l, b * 1000, (b * 7 + i as i64) as f64)
                .unwrap();
        }
        a.commit().unwrap();
    }
}

fn total(f: &Fake) -> usize {
    f.got.lock().values().map(Vec::len).sum()
}

async fn wait(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn start(s: QueueSettings, db: &Arc<Tsdb>) -> (Queue, Arc<QueueMetrics>) {
    let m = Arc::new(QueueMetrics::new(
        &s.name,
        &s.url,
        s.min_shards,
        s.max_shards,
    ));
    let q = Queue::start(
        s,
        db.clone(),
        m.clone(),
        None,
        tokio::runtime::Handle::current(),
    );
    (q, m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_every_sample_in_order_with_prometheus_headers() {
    let dir = tempdir("deliver");
    let db = open(&dir);
    let (f, url) = start_fake().await;
    let (mut q, m) = start(settings(&url, "deliver"), &db);
    ingest(&db, 1, 50, 40);
    wait("all samples", 20, || total(&f) == 2000).await;
    let got = f.got.lock().clone();
    assert_eq!(got.len(), 40);
    for (l, s) in &got {
        assert!(s.windows(2).all(|w| w[0].0 < w[1].0), "{l}: out of order");
        assert_eq!(s.len(), 50);
    }
    assert_eq!(
        f.headers_ok.load(Ordering::Relaxed),
        f.requests.load(Ordering::Relaxed)
    );
    wait("pending drained", 5, || {
        m.pending.load(Ordering::Relaxed) == 0
    })
    .await;
    assert_eq!(m.samples.load(Ordering::Relaxed), 2000);
    assert_eq!(m.highest_sent_ms.load(Ordering::Relaxed), 50_000);
    q.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_5xx_and_drops_4xx_with_counting() {
    let dir = tempdir("status");
    let db = open(&dir);
    let (f, url) = start_fake().await;
    f.status.store(503, Ordering::Relaxed);
    let (mut q, m) = start(settings(&url, "status"), &db);
    ingest(&db, 1, 5, 10);
    wait("retries", 10, || m.retried.load(Ordering::Relaxed) >= 50).await;
    assert_eq!(total(&f), 0);
    f.status.store(0, Ordering::Relaxed);
    wait("delivery after 5xx", 10, || total(&f) == 50).await;
    assert_eq!(m.failed.load(Ordering::Relaxed), 0);

    // 400: dropped and counted, the queue moves on.
    f.status.store(400, Ordering::Relaxed);
    ingest(&db, 6, 5, 10);
    wait("failed", 10, || m.failed.load(Ordering::Relaxed) == 50).await;
    // 429 without retry_on_http_429 is dropped as well (Prometheus' default).
    f.status.store(429, Ordering::Relaxed);
    ingest(&db, 11, 1, 10);
    wait("429 failed", 10, || m.failed.load(Ordering::Relaxed) == 60).await;
    f.status.store(0, Ordering::Relaxed);
    ingest(&db, 12, 1, 10);
    wait("later samples still flow", 10, || total(&f) == 60).await;
    wait("pending drained", 5, || {
        m.pending.load(Ordering::Relaxed) == 0
    })
    .await;
    q.stop().await;

    // With retry_on_http_429 a 429 is retried.
    let (f2, url2) = start_fake().await;
    f2.status.store(429, Ordering::Relaxed);
    let mut s = settings(&url2, "status429");
    s.retry_on_429 = true;
    s.start = StartAt::NewestSegment;
    let dir2 = tempdir("status429");
    let db2 = open(&dir2);
    let (mut q2, m2) = start(s, &db2);
    ingest(&db2, 13, 1, 10);
    wait("429 retried", 10, || {
        m2.retried.load(Ordering::Relaxed) >= 10
    })
    .await;
    f2.status.store(0, Ordering::Relaxed);
    wait("delivery after 429", 10, || total(&f2) == 10).await;
    assert_eq!(m2.failed.load(Ordering::Relaxed), 0);
    q2.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn position_is_persisted_and_a_restart_resumes_during_an_outage() {
    let dir = tempdir("resume");
    let db = open(&dir);
    let (f, url) = start_fake().await;
    let (mut q, m) = start(settings(&url, "resume"), &db);
    ingest(&db, 1, 10, 10);
    wait("first 100", 10, || total(&f) == 100).await;
    // Outage: the receiver fails, vigil keeps writing, the queue is stopped (restart).
    f.status.store(503, Ordering::Relaxed);
    ingest(&db, 11, 10, 10);
    wait("retries", 10, || m.retried.load(Ordering::Relaxed) > 0).await;
    let before = q.stop().await.unwrap();
    let saved =
        vigil_remote::position::load(&vigil_remote::position::position_path(&dir, "resume"))
            .unwrap();
    assert_eq!(saved, before);
    // A checkpoint while the queue is down keeps the segment it resumes from.
    db.checkpoint().unwrap();
    assert!(
        db.wal_dir()
            .join(vigil_tsdb::wal::segment_name(saved.segment))
            .exists()
    );
    ingest(&db, 21, 10, 10);
    f.status.store(0, Ordering::Relaxed);
    let (mut q2, _m2) = start(settings(&url, "resume"), &db);
    wait("everything after the restart", 20, || total(&f) == 300).await;
    let got = f.got.lock().clone();
    for s in got.values() {
        let ts: Vec<i64> = s.iter().map(|x| x.0).collect();
        assert_eq!(
            ts,
            (1..=30).map(|t| t * 1000).collect::<Vec<_>>(),
            "no gap, no duplicate"
        );
    }
    drop(q);
    q2.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A position file a power cut left unreadable (the periodic saves are not fsynced; found with
/// the TSDB's fault-injecting file layer, docs/reliability.md "Disk faults"): the queue used to
/// start at the newest segment and skip everything it had not sent; it now resends from the
/// oldest segment kept, so every sample arrives (some twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_position_resends_from_the_oldest_segment_instead_of_skipping() {
    let dir = tempdir("unreadable-pos");
    let db = open(&dir);
    let (f, url) = start_fake().await;
    let (mut q, m) = start(settings(&url, "unreadable"), &db);
    ingest(&db, 1, 10, 10);
    wait("first 100", 10, || total(&f) == 100).await;
    f.status.store(503, Ordering::Relaxed);
    ingest(&db, 11, 10, 10);
    wait("retries", 10, || m.retried.load(Ordering::Relaxed) > 0).await;
    q.stop().await;
    let path = vigil_remote::position::position_path(&dir, "unreadable");
    std::fs::write(&path, b"").unwrap();
    // The WAL moves on to a new segment, as after a restart.
    db.checkpoint().unwrap();
    ingest(&db, 21, 10, 10);
    f.status.store(0, Ordering::Relaxed);
    let (mut q2, _m2) = start(settings(&url, "unreadable"), &db);
    wait("every sample, the unsent ones included", 20, || {
        let got = f.got.lock();
        got.len() == 10
            && got.values().all(|s| {
                let ts: std::collections::BTreeSet<i64> = s.iter().map(|x| x.0).collect();
                ts == (1..=30).map(|t| t * 1000).collect()
            })
    })
    .await;
    q2.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_across_a_tsdb_restart_and_reads_labels_of_old_series_from_the_head() {
    let dir = tempdir("reopen");
    let (f, url) = start_fake().await;
    {
        let db = open(&dir);
        ingest(&db, 1, 5, 10);
        f.status.store(503, Ordering::Relaxed);
        // The queue starts at the newest segment's start, the one this open created: the
        // 50 samples above are in it and due.
        let (mut q, _m) = start(settings(&url, "reopen"), &db);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let hold = q.hold();
        q.stop().await;
        db.close().unwrap();
        drop(hold);
    }
    // The saved position is in the first run's segment; series records before it, if any,
    // are resolved through the reopened head.
    let db = open(&dir);
    ingest(&db, 6, 5, 10);
    f.status.store(0, Ordering::Relaxed);
    let (mut q, _m) = start(settings(&url, "reopen"), &db);
    wait("both runs' samples", 20, || total(&f) == 100).await;
    q.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_relabel_and_external_labels_apply() {
    let dir = tempdir("relabel");
    let db = open(&dir);
    let (f, url) = start_fake().await;
    let mut s = settings(&url, "relabel");
    s.external_labels = Labels::from_pairs([("cluster", "eu"), ("i", "ignored")]);
    let yaml = "- source_labels: [i]\n  regex: '[0-4]'\n  action: drop\n";
    s.relabel = serde_yaml::from_str(yaml).unwrap();
    let (mut q, m) = start(s, &db);
    ingest(&db, 1, 3, 10);
    wait("kept series", 10, || total(&f) == 15).await;
    wait("dropped counted", 10, || {
        m.dropped.load(Ordering::Relaxed) == 15
    })
    .await;
    for l in f.got.lock().keys() {
        assert!(l.contains("cluster=\"eu\""), "{l}");
        assert!(
            !l.contains("ignored"),
            "series labels win over external ones: {l}"
        );
    }
    q.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn server_state(db: Arc<Tsdb>, enable: bool) -> Arc<vigil_remote::server::ServerState> {
    Arc::new(vigil_remote::server::ServerState {
        appendable: db.clone(),
        queryable: db,
        enable_write: enable,
        external_labels: Box::new(Labels::empty),
        metrics: Arc::new(ServerMetrics::default()),
        read_sample_limit: 0,
        read_max_bytes_in_frame: 1 << 20,
        read_gate: Arc::new(tokio::sync::Semaphore::new(4)),
    })
}

async fn serve(router: axum::Router) -> String {
    // reqwest is built without a default TLS provider (the clients of these tests need one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(l, router).await;
    });
    base
}

fn count(db: &Tsdb) -> usize {
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    q.select(
        &[Matcher::regex("__name__", ".+").unwrap()],
        &SelectHints {
            start: i64::MIN,
            end: i64::MAX,
        },
    )
    .unwrap()
    .map(|s| s.samples.count())
    .sum()
}

fn write_req(series: &[(&str, &[(i64, f64)])]) -> Vec<u8> {
    let req = prompb::WriteRequest {
        timeseries: series
            .iter()
            .map(|(name, samples)| prompb::TimeSeries {
                labels: vec![prompb::Label {
                    name: "__name__".into(),
                    value: name.to_string(),
                }],
                samples: samples
                    .iter()
                    .map(|&(t, v)| prompb::Sample {
                        value: v,
                        timestamp: t,
                    })
                    .collect(),
                exemplars: vec![],
                histograms: vec![],
            })
            .collect(),
        metadata: vec![],
    };
    codec::snappy_compress(&req.encode_to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_skips_samples_a_restarted_sender_resends() {
    // Found by the crash campaign: a sender restarted after a crash resends from its saved
    // position; refusing the resend whole (out of order) made it drop the new samples too.
    let dir = tempdir("receiver-resend");
    let db = open(&dir);
    let st = server_state(db.clone(), true);
    let base = serve(vigil_remote::server::routes(st.clone())).await;
    let c = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        let c = c.clone();
        let url = format!("{base}/api/v1/write");
        async move {
            c.post(url)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let first = write_req(&[("a", &[(1000, 1.0), (2000, 2.0)]), ("b", &[(1000, 3.0)])]);
    assert_eq!(post(first).await, 204);
    assert_eq!(count(&db), 3);
    // The same samples again, with new ones after them: the new ones are stored.
    let resend = write_req(&[
        ("a", &[(1000, 1.0), (2000, 2.0), (3000, 4.0)]),
        ("b", &[(1000, 3.0), (2000, 5.0)]),
    ]);
    assert_eq!(post(resend).await, 204);
    assert_eq!(count(&db), 5);
    assert_eq!(st.metrics.write_out_of_order.load(Ordering::Relaxed), 0);
    // An old timestamp with another value is still out of order: 400, nothing stored.
    let changed = write_req(&[("a", &[(2000, 9.0), (4000, 1.0)])]);
    assert_eq!(post(changed).await, 400);
    assert_eq!(count(&db), 5);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_appends_and_bad_payloads_change_nothing() {
    let dir = tempdir("receiver");
    let db = open(&dir);
    let base = serve(vigil_remote::server::routes(server_state(db.clone(), true))).await;
    let c = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        let c = c.clone();
        let url = format!("{base}/api/v1/write");
        async move {
            c.post(url)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        post(write_req(&[
            ("a", &[(1000, 1.0), (2000, 2.0)]),
            ("b", &[(1000, 3.0)])
        ]))
        .await,
        204
    );
    assert_eq!(count(&db), 3);
    // Not snappy, snappy of garbage protobuf: 400, nothing stored.
    assert_eq!(post(b"definitely not snappy".to_vec()).await, 400);
    assert_eq!(post(codec::snappy_compress(&[0xff, 0xff, 0xff])).await, 400);
    // One out-of-order sample rejects the whole request (Prometheus' 1.0 handler).
    assert_eq!(
        post(write_req(&[("c", &[(5000, 1.0)]), ("a", &[(500, 9.0)])])).await,
        400
    );
    assert_eq!(count(&db), 3);
    // Disabled receiver: 404.
    let base2 = serve(vigil_remote::server::routes(server_state(
        db.clone(),
        false,
    )))
    .await;
    let r = c
        .post(format!("{base2}/api/v1/write"))
        .body(write_req(&[("z", &[(1, 1.0)])]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(count(&db), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_read_round_trips_samples_and_streamed_chunks() {
    let dir = tempdir("read");
    let db = open(&dir);
    ingest(&db, 1, 300, 3);
    let base = serve(vigil_remote::server::routes(server_state(
        db.clone(),
        false,
    )))
    .await;
    let client = vigil_remote::read::ReadClient {
        name: "r".into(),
        url: format!("{base}/api/v1/read"),
        timeout: Duration::from_secs(10),
        headers: vec![],
        required_matchers: vec![],
        read_recent: true,
        filter_external_labels: true,
        external_labels: Labels::empty(),
        client: reqwest::Client::new(),
        counts: Default::default(),
    };
    let query = prompb::Query {
        start_timestamp_ms: 10_000,
        end_timestamp_ms: 250_000,
        matchers: vigil_remote::server::matchers_to_pb(&[Matcher::equal("__name__", "m")]),
        hints: None,
    };
    // Streamed chunks (asked first).
    let got = client.read(query.clone()).await.unwrap();
    assert_eq!(client.counts.streamed.load(Ordering::Relaxed), 1);
    assert_eq!(got.len(), 3);
    for (_, s, _) in &got {
        assert_eq!(s.len(), 241);
        assert_eq!(s[0].t, 10_000);
    }
    // Samples, as Prometheus 2.x clients ask.
    let req = prompb::ReadRequest {
        queries: vec![query],
        accepted_response_types: vec![],
    };
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/read"))
        .body(codec::snappy_compress(&req.encode_to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "snappy");
    let resp: prompb::ReadResponse =
        codec::decode_snappy(&r.bytes().await.unwrap(), 1 << 30).unwrap();
    let n: usize = resp.results[0]
        .timeseries
        .iter()
        .map(|t| t.samples.len())
        .sum();
    assert_eq!(n, 3 * 241);
    // Fanout: an empty local store plus the remote gives the remote's data.
    let n = through_fanout(client, "read-empty", "m", |s| s.samples.count()).await;
    assert_eq!(n, 900);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_restarts_a_changed_queue_from_its_position_and_stops_removed_ones() {
    use vigil_remote::storage::{RemoteOptions, RemoteStorage};
    let dir = tempdir("reload");
    let db = open(&dir);
    let (f, url) = start_fake().await;
    let cfg = |n: i64| {
        let y = format!(
            "remote_write:\n  - url: {url}\n    name: q\n    queue_config:\n      batch_send_deadline: 50ms\n      max_samples_per_send: {n}\n      min_backoff: 10ms\n      max_backoff: 50ms\n"
        );
        vigil_config::load_str(&y, std::path::Path::new("test.yml"))
            .unwrap()
            .config
    };
    let rs = RemoteStorage::new(
        db.clone(),
        RemoteOptions {
            flush_deadline: Duration::from_secs(2),
            poll_interval: Duration::from_millis(10),
            save_interval: Duration::from_millis(20),
            ..Default::default()
        },
        None,
    );
    rs.apply_config(&cfg(100)).unwrap();
    ingest(&db, 1, 10, 10);
    wait("first config", 10, || total(&f) == 100).await;
    // Unchanged config: nothing restarts.
    rs.apply_config(&cfg(100)).unwrap();
    rs.apply_config(&cfg(7)).unwrap();
    ingest(&db, 11, 10, 10);
    wait("after the restart", 10, || total(&f) == 200).await;
    for s in f.got.lock().values() {
        let ts: Vec<i64> = s.iter().map(|x| x.0).collect();
        assert_eq!(
            ts,
            (1..=20).map(|t| t * 1000).collect::<Vec<_>>(),
            "no gap, no duplicate"
        );
    }
    let text = rs.render_metrics();
    assert!(
        text.contains(&format!(
            "prometheus_remote_storage_samples_total{{remote_name=\"q\",url=\"{url}\"}} 200"
        )),
        "{text}"
    );
    // A bad config (unreadable CA file) is refused as a whole.
    let mut bad = cfg(7);
    bad.remote_write[0].tls_config.ca_file = Some("/nonexistent/ca.pem".into());
    assert!(rs.apply_config(&bad).is_err());
    // Removed from the config: stopped.
    rs.apply_config(&vigil_config::Config::default()).unwrap();
    assert!(rs.queue_metrics().is_empty());
    rs.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A histogram with `k` in its counts (integral counts; `frac` halves them, fractional).
fn hist(k: u32, frac: bool) -> FloatHistogram {
    let k = k as f64;
    let mut h = FloatHistogram {
        counter_reset_hint: if k == 0.0 {
            CounterResetHint::Unknown
        } else {
            CounterResetHint::NotCounterReset
        },
        schema: 0,
        zero_threshold: 0.001,
        zero_count: 1.0 + k,
        count: 1.0 + k + 2.0 + 3.0 * k + 1.0,
        sum: 10.0 * k + 0.5,
        positive_spans: vec![
            Span {
                offset: 0,
                length: 2,
            },
            Span {
                offset: 2,
                length: 1,
            },
        ],
        positive_buckets: vec![1.0, 1.0, 3.0 * k],
        negative_spans: vec![Span {
            offset: -1,
            length: 1,
        }],
        negative_buckets: vec![1.0],
        custom_values: None,
    };
    if frac {
        h.mul(0.5);
    }
    h
}

fn nhcb() -> FloatHistogram {
    FloatHistogram {
        schema: vigil_model::histogram::CUSTOM_BUCKETS_SCHEMA,
        count: 3.0,
        sum: 2.0,
        positive_spans: vec![Span {
            offset: 0,
            length: 2,
        }],
        positive_buckets: vec![1.0, 2.0],
        custom_values: Some(Arc::from(&[1.0][..])),
        ..Default::default()
    }
}

/// The histograms of every series, from the TSDB.
fn histograms(db: &Tsdb) -> BTreeMap<String, Vec<(i64, FloatHistogram)>> {
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    q.select(
        &[Matcher::regex("__name__", ".+").unwrap()],
        &SelectHints {
            start: i64::MIN,
            end: i64::MAX,
        },
    )
    .unwrap()
    .filter(|s| !s.histograms.is_empty())
    .map(|s| {
        (
            s.labels.to_string(),
            s.histograms.iter().map(|h| (h.t, (*h.h).clone())).collect(),
        )
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_histograms_with_floats_counts_them_and_drops_nhcb_with_counting() {
    let dir = tempdir("hist-send");
    let db = open(&dir);
    let (f, url) = start_fake().await;
    let (mut q, m) = start(settings(&url, "hq"), &db);
    let hl = Labels::from_pairs([("__name__", "h"), ("kind", "int")]);
    let fl = Labels::from_pairs([("__name__", "h"), ("kind", "float")]);
    // A series switching kind: floats, then histograms.
    let ml = Labels::from_pairs([("__name__", "mixed")]);
    let cl = Labels::from_pairs([("__name__", "nhcb")]);
    for i in 0..60u32 {
        let mut a = db.appender();
        let t = 1000 * (i as i64 + 1);
        a.append_histogram(None, &hl, t, &hist(i, false)).unwrap();
        a.append_histogram(None, &fl, t, &hist(i, true)).unwrap();
        if i < 30 {
            a.append(None, &ml, t, i as f64).unwrap();
        } else {
            a.append_histogram(None, &ml, t, &hist(i, false)).unwrap();
        }
        if i < 5 {
            a.append_histogram(None, &cl, t, &nhcb()).unwrap();
        }
        a.commit().unwrap();
    }
    let sent = |f: &Fake| f.hgot.lock().values().map(Vec::len).sum::<usize>();
    wait("histograms delivered", 30, || {
        sent(&f) == 150 && total(&f) == 30
    })
    .await;
    let got = f.hgot.lock().clone();
    let want_int = &got[&hl.to_string()];
    assert_eq!(want_int.len(), 60);
    for (i, p) in want_int.iter().enumerate() {
        assert_eq!(p.timestamp, 1000 * (i as i64 + 1));
        // Integral counts go as the integer form (what Prometheus 2.x receivers take).
        assert!(matches!(
            p.count,
            Some(prompb::histogram::Count::CountInt(_))
        ));
        assert_eq!(codec::histogram_from_pb(p).unwrap(), hist(i as u32, false));
    }
    for (i, p) in got[&fl.to_string()].iter().enumerate() {
        assert!(matches!(
            p.count,
            Some(prompb::histogram::Count::CountFloat(_))
        ));
        assert_eq!(codec::histogram_from_pb(p).unwrap(), hist(i as u32, true));
    }
    assert_eq!(got[&ml.to_string()].len(), 30);
    assert_eq!(got[&ml.to_string()][0].timestamp, 31_000);
    assert_eq!(f.got.lock()[&ml.to_string()].len(), 30);
    assert!(!got.contains_key(&cl.to_string()));
    wait("counters", 10, || {
        m.histograms.load(Ordering::Relaxed) == 150
            && m.pending_histograms.load(Ordering::Relaxed) == 0
    })
    .await;
    assert_eq!(m.samples.load(Ordering::Relaxed), 30);
    assert_eq!(m.histograms_dropped.load(Ordering::Relaxed), 5);
    assert_eq!(m.histograms_failed.load(Ordering::Relaxed), 0);
    let text =
        vigil_remote::metrics::render(std::slice::from_ref(&m), 0.0, &ServerMetrics::default());
    assert!(text.contains("prometheus_remote_storage_histograms_total{remote_name=\"hq\",url="));
    assert!(text.contains("prometheus_remote_storage_histograms_dropped_total{remote_name=\"hq\""));
    // A 4xx drops the batch and counts its histograms as failed.
    f.status.store(400, Ordering::Relaxed);
    let mut a = db.appender();
    a.append_histogram(None, &hl, 100_000, &hist(1, false))
        .unwrap();
    a.commit().unwrap();
    wait("failed histogram counted", 10, || {
        m.histograms_failed.load(Ordering::Relaxed) == 1
    })
    .await;
    q.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histograms_are_not_sent_without_send_native_histograms() {
    let dir = tempdir("hist-off");
    let db = open(&dir);
    let (f, url) = start_fake().await;
    let mut s = settings(&url, "hoff");
    s.send_native_histograms = false;
    let (mut q, m) = start(s, &db);
    let hl = Labels::from_pairs([("__name__", "h")]);
    for i in 0..20u32 {
        let mut a = db.appender();
        let t = 1000 * (i as i64 + 1);
        a.append_histogram(None, &hl, t, &hist(i, false)).unwrap();
        a.append(None, &Labels::from_pairs([("__name__", "f")]), t, 1.0)
            .unwrap();
        a.commit().unwrap();
    }
    wait("floats delivered", 30, || total(&f) == 20).await;
    assert!(f.hgot.lock().is_empty());
    assert_eq!(m.histograms.load(Ordering::Relaxed), 0);
    assert_eq!(m.pending_histograms.load(Ordering::Relaxed), 0);
    q.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn key(name: &str) -> String {
    Labels::from_pairs([("__name__", name)]).to_string()
}

fn hist_req(series: &[(&str, Vec<(i64, FloatHistogram)>)], floats: &[(i64, f64)]) -> Vec<u8> {
    let req = prompb::WriteRequest {
        timeseries: series
            .iter()
            .map(|(name, hs)| prompb::TimeSeries {
                labels: vec![prompb::Label {
                    name: "__name__".into(),
                    value: name.to_string(),
                }],
                samples: floats
                    .iter()
                    .map(|&(t, v)| prompb::Sample {
                        value: v,
                        timestamp: t,
                    })
                    .collect(),
                exemplars: vec![],
                histograms: hs
                    .iter()
                    .map(|(t, h)| codec::histogram_to_pb(*t, h))
                    .collect(),
            })
            .collect(),
        metadata: vec![],
    };
    codec::snappy_compress(&req.encode_to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_appends_histograms_and_refuses_invalid_ones_whole() {
    let dir = tempdir("hist-recv");
    let db = open(&dir);
    let st = server_state(db.clone(), true);
    let base = serve(vigil_remote::server::routes(st.clone())).await;
    let c = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        let c = c.clone();
        let url = format!("{base}/api/v1/write");
        async move {
            let r = c.post(url).body(body).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // Floats and histograms of one series in one TimeSeries (at different timestamps), an
    // integer-form series, a float-form one and a custom-bucket one.
    let (code, body) = post(hist_req(
        &[
            ("hi", vec![(2000, hist(1, false)), (3000, hist(2, false))]),
            ("hf", vec![(2000, hist(1, true))]),
            ("hc", vec![(2000, nhcb())]),
        ],
        &[(1000, 5.0)],
    ))
    .await;
    assert_eq!(code, 204, "{body}");
    let got = histograms(&db);
    // Stored as Prometheus' head reads them back: a series' first histogram "unknown", the
    // ones continuing it "no reset", whatever hint the sender put on them.
    let first = |mut h: FloatHistogram| {
        h.counter_reset_hint = CounterResetHint::Unknown;
        h
    };
    assert_eq!(
        got[&key("hi")],
        vec![(2000, first(hist(1, false))), (3000, hist(2, false))]
    );
    assert_eq!(got[&key("hf")], vec![(2000, first(hist(1, true)))]);
    assert_eq!(got[&key("hc")], vec![(2000, nhcb())]);
    assert_eq!(count(&db), 3);
    assert_eq!(st.metrics.write_histograms.load(Ordering::Relaxed), 4);
    assert_eq!(st.metrics.write_samples.load(Ordering::Relaxed), 3);

    // An invalid histogram (spans announce more buckets than given) rejects the whole
    // request with 400, the floats and valid histograms in it included.
    let mut bad = hist(3, false);
    bad.positive_spans[0].length = 5;
    let (code, body) = post(hist_req(
        &[
            ("hi", vec![(4000, hist(3, false))]),
            ("hbad", vec![(4000, bad)]),
        ],
        &[(3500, 1.0)],
    ))
    .await;
    assert_eq!(code, 400);
    assert!(body.contains("invalid histogram"), "{body}");
    assert!(body.contains("hbad"), "{body}");
    assert_eq!(histograms(&db)[&key("hi")].len(), 2);
    assert_eq!(count(&db), 3);
    assert_eq!(
        st.metrics.write_invalid_histograms.load(Ordering::Relaxed),
        1
    );
    // A negative bucket count, a mixed integer/float message: 400 too.
    let mut neg = hist(3, true);
    neg.positive_buckets[0] = -1.0;
    assert_eq!(
        post(hist_req(&[("hn", vec![(5000, neg)])], &[])).await.0,
        400
    );
    let mut pb = codec::histogram_to_pb(5000, &hist(1, false));
    pb.positive_counts = vec![1.0];
    let req = prompb::WriteRequest {
        timeseries: vec![prompb::TimeSeries {
            labels: vec![prompb::Label {
                name: "__name__".into(),
                value: "hm".into(),
            }],
            histograms: vec![pb],
            ..Default::default()
        }],
        metadata: vec![],
    };
    let (code, body) = post(codec::snappy_compress(&req.encode_to_vec())).await;
    assert_eq!(code, 400);
    assert!(body.contains("float bucket counts"), "{body}");
    // Out of order histogram: 400, counted as out of order.
    let (code, _) = post(hist_req(&[("hi", vec![(1500, hist(0, false))])], &[])).await;
    assert_eq!(code, 400);
    assert_eq!(st.metrics.write_out_of_order.load(Ordering::Relaxed), 1);
    assert_eq!(histograms(&db).len(), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_read_returns_histograms_in_samples_responses() {
    let dir = tempdir("hist-read");
    let db = open(&dir);
    let hl = Labels::from_pairs([("__name__", "h"), ("k", "int")]);
    let fl = Labels::from_pairs([("__name__", "h"), ("k", "float")]);
    let ml = Labels::from_pairs([("__name__", "h"), ("k", "mixed")]);
    for i in 0..50u32 {
        let t = 1000 * (i as i64 + 1);
        let mut a = db.appender();
        a.append_histogram(None, &hl, t, &hist(i, false)).unwrap();
        a.append_histogram(None, &fl, t, &hist(i, true)).unwrap();
        if i % 2 == 0 {
            a.append(None, &ml, t, i as f64).unwrap();
        } else {
            a.append_histogram(None, &ml, t, &hist(i, false)).unwrap();
        }
        a.commit().unwrap();
    }
    let st = server_state(db.clone(), false);
    let base = serve(vigil_remote::server::routes(st)).await;
    let client = vigil_remote::read::ReadClient {
        name: "r".into(),
        url: format!("{base}/api/v1/read"),
        timeout: Duration::from_secs(10),
        headers: vec![],
        required_matchers: vec![],
        read_recent: true,
        filter_external_labels: true,
        external_labels: Labels::empty(),
        client: reqwest::Client::new(),
        counts: Default::default(),
    };
    let query = prompb::Query {
        start_timestamp_ms: 5_000,
        end_timestamp_ms: 40_000,
        matchers: vigil_remote::server::matchers_to_pb(&[Matcher::equal("__name__", "h")]),
        hints: None,
    };
    // The client asks for streamed chunks first; with histograms selected the server answers
    // SAMPLES, which the client also accepts.
    let got = client.read(query.clone()).await.unwrap();
    assert_eq!(client.counts.samples.load(Ordering::Relaxed), 1);
    assert_eq!(client.counts.streamed.load(Ordering::Relaxed), 0);
    let by: BTreeMap<String, _> = got
        .into_iter()
        .map(|(l, s, h)| (l.to_string(), (s, h)))
        .collect();
    let (s, h) = &by[&hl.to_string()];
    assert!(s.is_empty());
    assert_eq!(h.len(), 36);
    assert_eq!(h[0].t, 5_000);
    assert_eq!(*h[0].h, hist(4, false));
    let (_, h) = &by[&fl.to_string()];
    assert_eq!(*h[35].h, hist(39, true));
    let (s, h) = &by[&ml.to_string()];
    assert_eq!((s.len(), h.len()), (18, 18));
    // A client that takes streamed chunks only is told why not.
    let req = prompb::ReadRequest {
        queries: vec![query.clone()],
        accepted_response_types: vec![prompb::read_request::ResponseType::StreamedXorChunks as i32],
    };
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/read"))
        .body(codec::snappy_compress(&req.encode_to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("native histograms"));
    // Floats only: still streamed.
    let fq = prompb::Query {
        matchers: vigil_remote::server::matchers_to_pb(&[
            Matcher::equal("__name__", "h"),
            Matcher::equal("k", "mixed"),
        ]),
        start_timestamp_ms: 0,
        end_timestamp_ms: 1000,
        ..query.clone()
    };
    let got = client.read(fq).await.unwrap();
    assert_eq!(client.counts.streamed.load(Ordering::Relaxed), 1);
    assert_eq!(got.len(), 1);
    // Through the fanout: Series::histograms carries them to PromQL.
    let n = through_fanout(client, "hist-read-empty", "h", |s| s.histograms.len()).await;
    assert_eq!(n, 125);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server streaming histogram chunks (as Prometheus 3 does) is asked again for samples.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_client_falls_back_to_samples_on_histogram_chunks() {
    async fn handler(State(n): State<Arc<AtomicU64>>, body: Bytes) -> axum::response::Response {
        use axum::response::IntoResponse;
        n.fetch_add(1, Ordering::Relaxed);
        let req: prompb::ReadRequest = codec::decode_snappy(&body, 1 << 20).unwrap();
        let labels = vec![prompb::Label {
            name: "__name__".into(),
            value: "h".into(),
        }];
        if req.accepted_response_types.first()
            == Some(&(prompb::read_request::ResponseType::StreamedXorChunks as i32))
        {
            let msg = prompb::ChunkedReadResponse {
                chunked_series: vec![prompb::ChunkedSeries {
                    labels,
                    chunks: vec![prompb::Chunk {
                        min_time_ms: 1,
                        max_time_ms: 1,
                        r#type: prompb::chunk::Encoding::Histogram as i32,
                        data: vec![0, 1],
                    }],
                }],
                query_index: 0,
            };
            let mut out = Vec::new();
            codec::put_frame(&mut out, &msg.encode_to_vec());
            return ([("content-type", codec::STREAMED_CONTENT_TYPE)], out).into_response();
        }
        let resp = prompb::ReadResponse {
            results: vec![prompb::QueryResult {
                timeseries: vec![prompb::TimeSeries {
                    labels,
                    histograms: vec![codec::histogram_to_pb(1, &hist(2, false))],
                    ..Default::default()
                }],
            }],
        };
        (
            [("content-type", "application/x-protobuf")],
            codec::snappy_compress(&resp.encode_to_vec()),
        )
            .into_response()
    }
    let n = Arc::new(AtomicU64::new(0));
    let base = serve(
        axum::Router::new()
            .route("/read", axum::routing::post(handler))
            .with_state(n.clone()),
    )
    .await;
    let client = vigil_remote::read::ReadClient {
        name: "r".into(),
        url: format!("{base}/read"),
        timeout: Duration::from_secs(10),
        headers: vec![],
        required_matchers: vec![],
        read_recent: true,
        filter_external_labels: false,
        external_labels: Labels::empty(),
        client: reqwest::Client::new(),
        counts: Default::default(),
    };
    let got = client
        .read(prompb::Query {
            start_timestamp_ms: 0,
            end_timestamp_ms: 10,
            matchers: vigil_remote::server::matchers_to_pb(&[Matcher::equal("__name__", "h")]),
            hints: None,
        })
        .await
        .unwrap();
    assert_eq!(n.load(Ordering::Relaxed), 2);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2.len(), 1);
    assert_eq!(*got[0].2[0].h, hist(2, false));
}

/// Selects `name` over [0, 400 s] through a remote-read fanout of an empty local store and
/// `client`, summing `count` over the series.
async fn through_fanout(
    client: vigil_remote::read::ReadClient,
    tag: &str,
    name: &'static str,
    count: fn(vigil_model::Series<'_>) -> usize,
) -> usize {
    let empty = open(&tempdir(tag));
    let clients = Arc::new(vigil_remote::read::ReadClients::default());
    clients.set(vec![Arc::new(client)]);
    let fan = vigil_remote::read::Fanout {
        local: empty,
        remotes: clients,
        local_start: Box::new(|| i64::MAX),
    };
    tokio::task::spawn_blocking(move || {
        let q = fan.querier(0, 400_000).unwrap();
        q.select(
            &[Matcher::equal("__name__", name)],
            &SelectHints {
                start: 0,
                end: 400_000,
            },
        )
        .unwrap()
        .map(count)
        .sum::<usize>()
    })
    .await
    .unwrap()
}
