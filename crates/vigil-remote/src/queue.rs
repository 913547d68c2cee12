//! One remote-write queue: a reader thread tails the WAL and hands samples to shards (tokio
//! tasks), each of which batches, encodes, compresses and sends `WriteRequest`s with retries.
//!
//! Durability: the sender never holds the only copy of a sample. The reader sends each
//! shard a *marker* (a WAL position) after the samples it read before that position; a shard
//! acknowledges a marker once every sample before it was sent (or dropped for good). The
//! queue's position is the lowest acknowledged marker over all shards: it is persisted
//! (`position.rs`), it is the low-water mark that keeps WAL segments from being deleted
//! (a `WalHold` from the `WalSource` seam), and a restart resumes from it. A receiver that is down only
//! makes the shards retry and the reader wait; the WAL keeps everything in between.
//!
//! Samples of one series always go to the same shard, in WAL order, so a receiver never
//! sees them out of order. The number of shards follows the backlog: every 10 s the reader
//! estimates the shards needed to send the incoming rate plus the backlog within about 10 s,
//! from the measured send time per sample (Prometheus' approach), and reshards when that
//! differs by more than 30 % from the current number. Resharding flushes and stops the old
//! shards before starting the new ones, so per-series order holds across it.

use crate::codec;
use crate::metrics::QueueMetrics;
use crate::prompb;
use ahash::AHashMap;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use vigil_config::relabel::{self, RelabelConfig};
use vigil_model::wal::{WalHold, WalPos, WalReader, WalRecord, WalSource};
use vigil_model::{Labels, LabelsBuilder};

/// Where a queue without a saved position starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The start of the newest segment: with the queue created at process start (before
    /// scraping), that is everything this run writes.
    NewestSegment,
    /// Samples from now on (a queue added by a config reload): the newest segment is read
    /// from its start, but its samples older than the queue are skipped.
    Now,
}

/// Queue parameters, resolved from `remote_write` and the command line.
#[derive(Clone)]
pub struct QueueSettings {
    /// `remote_name` label value: the configured name, else a short hash.
    pub name: String,
    pub url: String,
    /// Key of the position file.
    pub key: String,
    pub timeout: Duration,
    pub headers: Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
    pub relabel: Vec<RelabelConfig>,
    pub external_labels: Labels,
    pub capacity: usize,
    pub min_shards: usize,
    pub max_shards: usize,
    pub max_samples_per_send: usize,
    pub batch_send_deadline: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub retry_on_429: bool,
    /// Samples older than this when read are dropped; zero: no limit.
    pub sample_age_limit: Duration,
    pub send_metadata: bool,
    pub metadata_interval: Duration,
    pub metadata_max_per_send: usize,
    /// How long stopping waits for pending samples to be sent.
    pub flush_deadline: Duration,
    pub client: reqwest::Client,
    pub start: StartAt,
    /// How often the reader looks for new WAL data when caught up.
    pub poll_interval: Duration,
    /// How often the position is saved.
    pub save_interval: Duration,
    /// How often shards are re-evaluated.
    pub reshard_interval: Duration,
}

/// The source of metric metadata sent with `metadata_config.send`.
pub type MetadataSource = Arc<dyn Fn() -> Vec<prompb::MetricMetadata> + Send + Sync>;

/// A series as the queue sends it: labels after external labels and relabeling, encoded.
pub(crate) struct SeriesEntry {
    labels_pb: Box<[u8]>,
    hash: u64,
}

type Pending = (Arc<SeriesEntry>, i64, f64);

struct Msg {
    samples: Vec<Pending>,
    marker: WalPos,
}

/// Sends one encoded request.
pub(crate) struct WriteClient {
    pub client: reqwest::Client,
    pub url: String,
    pub timeout: Duration,
    pub headers: Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
    pub retry_on_429: bool,
}

pub(crate) enum SendError {
    /// Worth retrying (network errors, 5xx, 429 with `retry_on_http_429`).
    Recoverable(String, Option<Duration>),
    /// Dropped (other 4xx).
    Fatal(String),
}

impl WriteClient {
    pub(crate) async fn send(&self, body: Bytes) -> Result<(), SendError> {
        use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};
        let mut req = self
            .client
            .post(&self.url)
            .timeout(self.timeout)
            .header(CONTENT_ENCODING, "snappy")
            .header(CONTENT_TYPE, "application/x-protobuf")
            .header(
                "X-Prometheus-Remote-Write-Version",
                codec::REMOTE_WRITE_VERSION,
            );
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let resp = match req.body(body).send().await {
            Ok(r) => r,
            Err(e) if e.is_builder() => return Err(SendError::Fatal(e.to_string())),
            Err(e) => return Err(SendError::Recoverable(error_chain(&e), None)),
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp.text().await.unwrap_or_default();
        let msg = format!(
            "server returned HTTP status {status}: {}",
            body.chars().take(256).collect::<String>().trim()
        );
        if status.is_server_error() || (status.as_u16() == 429 && self.retry_on_429) {
            Err(SendError::Recoverable(msg, retry_after))
        } else {
            Err(SendError::Fatal(msg))
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

enum Outcome {
    Sent,
    Failed,
    Aborted,
}

/// Sends `body` until it succeeds, fails for good, or the queue is aborted.
async fn send_with_retry(
    client: &WriteClient,
    body: Bytes,
    n: u64,
    m: &QueueMetrics,
    min_backoff: Duration,
    max_backoff: Duration,
    abort: &mut watch::Receiver<bool>,
) -> Outcome {
    let mut backoff = min_backoff;
    loop {
        if *abort.borrow() {
            return Outcome::Aborted;
        }
        let started = Instant::now();
        let res = tokio::select! {
            r = client.send(body.clone()) => r,
            _ = abort.changed() => return Outcome::Aborted,
        };
        match res {
            Ok(()) => {
                m.observe_send(started.elapsed(), body.len() as u64);
                return Outcome::Sent;
            }
            Err(SendError::Fatal(e)) => {
                tracing::error!(remote_name = %m.name, url = %m.url, samples = n, "Non-recoverable error sending to remote storage, dropping the batch: {e}");
                return Outcome::Failed;
            }
            Err(SendError::Recoverable(e, retry_after)) => {
                m.retried.fetch_add(n, Ordering::Relaxed);
                let wait = retry_after.map_or(backoff, |r| r.max(backoff));
                tracing::warn!(remote_name = %m.name, url = %m.url, retry_in = ?wait, "Failed to send batch, retrying: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = abort.changed() => return Outcome::Aborted,
                }
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}

struct ShardCtx {
    client: WriteClient,
    metrics: Arc<QueueMetrics>,
    max_per_send: usize,
    deadline: Duration,
    min_backoff: Duration,
    max_backoff: Duration,
}

/// Encodes a batch: one `TimeSeries` per series, samples in order.
fn encode_batch(batch: &mut [Pending], buf: &mut Vec<u8>, scratch: &mut Vec<(i64, f64)>) {
    buf.clear();
    batch.sort_by_key(|p| Arc::as_ptr(&p.0) as usize);
    let mut i = 0;
    while i < batch.len() {
        let e = &batch[i].0;
        scratch.clear();
        let mut j = i;
        while j < batch.len() && Arc::ptr_eq(&batch[j].0, e) {
            scratch.push((batch[j].1, batch[j].2));
            j += 1;
        }
        codec::put_timeseries(buf, &e.labels_pb, scratch);
        i = j;
    }
}

#[allow(unused_assignments)] // the flush macro resets `deadline` also where it is not read again
async fn run_shard(
    mut rx: mpsc::Receiver<Msg>,
    ctx: Arc<ShardCtx>,
    ack: Arc<AtomicU64>,
    mut abort: watch::Receiver<bool>,
) {
    let mut batch: Vec<Pending> = Vec::with_capacity(ctx.max_per_send);
    let mut marker: Option<WalPos> = None;
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut buf = Vec::new();
    let mut scratch = Vec::new();
    // Sends the batch; false when aborted.
    macro_rules! flush {
        () => {{
            let n = batch.len() as u64;
            let maxt = batch.iter().map(|p| p.1).max().unwrap_or(i64::MIN);
            encode_batch(&mut batch, &mut buf, &mut scratch);
            let body = Bytes::from(codec::snappy_compress(&buf));
            let out = send_with_retry(
                &ctx.client,
                body,
                n,
                &ctx.metrics,
                ctx.min_backoff,
                ctx.max_backoff,
                &mut abort,
            )
            .await;
            batch.clear();
            deadline = None;
            let m = &ctx.metrics;
            match out {
                Outcome::Aborted => false,
                o => {
                    if matches!(o, Outcome::Sent) {
                        m.samples.fetch_add(n, Ordering::Relaxed);
                        m.highest_sent_ms.fetch_max(maxt, Ordering::Relaxed);
                    } else {
                        m.failed.fetch_add(n, Ordering::Relaxed);
                    }
                    m.pending.fetch_sub(n as i64, Ordering::Relaxed);
                    if let Some(p) = marker.take() {
                        ack.store(p.pack(), Ordering::Release);
                    }
                    true
                }
            }
        }};
    }
    loop {
        let msg = match deadline {
            Some(d) => tokio::select! {
                m = rx.recv() => m,
                _ = tokio::time::sleep_until(d) => {
                    if !flush!() { return; }
                    continue;
                }
                _ = abort.changed() => return,
            },
            None => tokio::select! {
                m = rx.recv() => m,
                _ = abort.changed() => return,
            },
        };
        let Some(msg) = msg else {
            if !batch.is_empty() {
                flush!();
            }
            return;
        };
        for s in msg.samples {
            batch.push(s);
            if batch.len() >= ctx.max_per_send && !flush!() {
                return;
            }
        }
        if batch.is_empty() {
            ack.store(msg.marker.pack(), Ordering::Release);
            marker = None;
        } else {
            marker = Some(msg.marker);
            if deadline.is_none() {
                deadline = Some(tokio::time::Instant::now() + ctx.deadline);
            }
        }
    }
}

struct Shards {
    senders: Vec<mpsc::Sender<Msg>>,
    acks: Vec<Arc<AtomicU64>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The reader thread's state (everything but the tailer, so record callbacks can borrow it).
struct Reader {
    s: QueueSettings,
    db: Arc<dyn WalSource>,
    rt: tokio::runtime::Handle,
    metrics: Arc<QueueMetrics>,
    abort: watch::Receiver<bool>,
    ctx: Arc<ShardCtx>,
    shards: Shards,
    bufs: Vec<Vec<Pending>>,
    /// Marker last sent to each shard.
    sent_marker: Vec<WalPos>,
    series: AHashMap<u64, Option<Arc<SeriesEntry>>>,
    /// End of the last fully processed record.
    boundary: WalPos,
    skip_before: Option<(u32, i64)>,
    /// A shard is gone (aborted): stop reading.
    broken: bool,
    read_samples: u64,
    read_bytes: u64,
}

fn fnv(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Reader {
    fn start_shards(&mut self, n: usize) {
        let cap = (self.s.capacity / self.s.max_samples_per_send).max(2);
        let mut shards = Shards {
            senders: Vec::with_capacity(n),
            acks: Vec::with_capacity(n),
            tasks: Vec::with_capacity(n),
        };
        for _ in 0..n {
            let (tx, rx) = mpsc::channel(cap);
            let ack = Arc::new(AtomicU64::new(self.boundary.pack()));
            shards.tasks.push(self.rt.spawn(run_shard(
                rx,
                self.ctx.clone(),
                ack.clone(),
                self.abort.clone(),
            )));
            shards.senders.push(tx);
            shards.acks.push(ack);
        }
        self.shards = shards;
        self.bufs = (0..n).map(|_| Vec::new()).collect();
        self.sent_marker = vec![self.boundary; n];
        self.metrics.shards.store(n as u64, Ordering::Relaxed);
    }

    /// Flushes the read buffers, closes the shards and waits until they have sent everything.
    fn stop_shards(&mut self) {
        self.flush_bufs();
        let acks = std::mem::take(&mut self.shards.acks);
        self.shards.senders.clear();
        let tasks = std::mem::take(&mut self.shards.tasks);
        self.rt.block_on(async {
            for t in tasks {
                let _ = t.await;
            }
        });
        self.shards.acks = acks;
    }

    /// The position every shard has acknowledged.
    fn committed(&self) -> WalPos {
        self.shards
            .acks
            .iter()
            .map(|a| WalPos::unpack(a.load(Ordering::Acquire)))
            .min()
            .unwrap_or(self.boundary)
    }

    fn send(&mut self, shard: usize, marker: WalPos) {
        let samples = std::mem::take(&mut self.bufs[shard]);
        let n = samples.len();
        let Some(tx) = self.shards.senders.get(shard) else {
            return;
        };
        self.metrics.pending.fetch_add(n as i64, Ordering::Relaxed);
        if tx.blocking_send(Msg { samples, marker }).is_err() {
            self.metrics.pending.fetch_sub(n as i64, Ordering::Relaxed);
            self.broken = true;
        }
        self.sent_marker[shard] = marker;
    }

    /// Sends every shard its buffer and the current boundary as marker (when it moved).
    fn flush_bufs(&mut self) {
        for i in 0..self.shards.senders.len() {
            if !self.bufs[i].is_empty() || self.sent_marker[i] < self.boundary {
                self.send(i, self.boundary);
            }
        }
    }

    fn entry(&self, labels: &Labels) -> Option<Arc<SeriesEntry>> {
        let mut l = labels.clone();
        if !self.s.external_labels.is_empty() {
            let mut b: LabelsBuilder = l.to_builder();
            for e in &self.s.external_labels {
                if labels.get(&e.name).is_none() {
                    b.set(e.name.clone(), e.value.clone());
                }
            }
            l = b.build();
        }
        if !self.s.relabel.is_empty() {
            l = relabel::process(&l, &self.s.relabel)?;
        }
        if l.is_empty() {
            return None;
        }
        let pb = codec::encode_labels(&l).into_boxed_slice();
        let hash = fnv(&pb);
        Some(Arc::new(SeriesEntry {
            labels_pb: pb,
            hash,
        }))
    }

    fn on_record(&mut self, rec: WalRecord<'_>, end: WalPos) {
        match rec {
            WalRecord::Series(found) => {
                for (r, l) in found {
                    let e = self.entry(l);
                    self.series.insert(*r, e);
                }
            }
            WalRecord::Malformed(kind) => {
                tracing::warn!(remote_name = %self.s.name, segment = end.segment, "Malformed {kind} record in the WAL");
            }
            WalRecord::Samples(samples) => {
                let now = vigil_model::now_millis();
                let age_min = (!self.s.sample_age_limit.is_zero())
                    .then(|| now - self.s.sample_age_limit.as_millis() as i64);
                let skip = self
                    .skip_before
                    .and_then(|(seg, t)| (seg == end.segment).then_some(t));
                let mut dropped = 0u64;
                self.read_samples += samples.len() as u64;
                let mut cached: Option<(u64, Option<Arc<SeriesEntry>>)> = None;
                for &(r, t, v) in samples {
                    if skip.is_some_and(|s| t < s) {
                        continue;
                    }
                    if age_min.is_some_and(|m| t < m) {
                        dropped += 1;
                        continue;
                    }
                    if cached.as_ref().is_none_or(|c| c.0 != r) {
                        let e = match self.series.get(&r) {
                            Some(e) => e.clone(),
                            None => {
                                // Its series record is older than where we started.
                                let e = self.db.series_labels(r).and_then(|l| self.entry(&l));
                                self.series.insert(r, e.clone());
                                e
                            }
                        };
                        cached = Some((r, e));
                    }
                    let Some(Some(e)) = cached.as_ref().map(|c| &c.1) else {
                        dropped += 1;
                        continue;
                    };
                    let shard = (e.hash % self.bufs.len() as u64) as usize;
                    self.bufs[shard].push((e.clone(), t, v));
                    if self.bufs[shard].len() >= self.s.max_samples_per_send {
                        // Everything of this shard before the record's start is in the
                        // buffer, so that start is a valid marker.
                        self.send(shard, self.boundary);
                    }
                }
                if dropped > 0 {
                    self.metrics.dropped.fetch_add(dropped, Ordering::Relaxed);
                }
            }
            WalRecord::Other => {}
        }
        self.boundary = end;
    }

    /// Forgets series the head no longer has (their samples are all behind us).
    fn gc_series(&mut self) {
        let db = &self.db;
        if self.series.len() > 2 * db.num_series() + 1024 {
            self.series.retain(|&r, _| db.series_labels(r).is_some());
        }
    }
}

/// A running queue.
pub struct Queue {
    pub settings: QueueSettings,
    pub metrics: Arc<QueueMetrics>,
    stop: Arc<AtomicBool>,
    abort: watch::Sender<bool>,
    done: Option<oneshot::Receiver<WalPos>>,
    hold: Arc<dyn WalHold>,
    metadata_task: Option<tokio::task::JoinHandle<()>>,
}

impl Queue {
    /// Starts a queue on `db`'s WAL, resuming from its saved position if there is one.
    pub fn start(
        s: QueueSettings,
        db: Arc<dyn WalSource>,
        metrics: Arc<QueueMetrics>,
        metadata: Option<MetadataSource>,
        rt: tokio::runtime::Handle,
    ) -> Queue {
        let pos_path = crate::position::position_path(db.data_dir(), &s.key);
        let newest = db.newest_segment().unwrap_or(0);
        let mut skip_before = None;
        let start = match crate::position::load(&pos_path) {
            Some(p) if p.segment <= newest => {
                tracing::info!(remote_name = %s.name, segment = p.segment, offset = p.offset, "Remote write resumes from its saved WAL position");
                p
            }
            Some(p) => {
                tracing::warn!(remote_name = %s.name, saved = p.segment, newest, "Saved remote-write position is past the newest WAL segment (a new data directory?); starting at the newest segment");
                WalPos {
                    segment: newest,
                    offset: 0,
                }
            }
            None => {
                if s.start == StartAt::Now {
                    skip_before = Some((newest, vigil_model::now_millis()));
                }
                WalPos {
                    segment: newest,
                    offset: 0,
                }
            }
        };
        let hold = db.hold(&format!("remote_write {}", s.name), start.segment);
        metrics.set_position(start);
        // A restarted queue (reload) reuses the metrics: what the old one had pending is in
        // the WAL again, behind `start`.
        metrics.pending.store(0, Ordering::Relaxed);
        let (abort_tx, abort_rx) = watch::channel(false);
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done_rx) = oneshot::channel();
        let ctx = Arc::new(ShardCtx {
            client: WriteClient {
                client: s.client.clone(),
                url: s.url.clone(),
                timeout: s.timeout,
                headers: s.headers.clone(),
                retry_on_429: s.retry_on_429,
            },
            metrics: metrics.clone(),
            max_per_send: s.max_samples_per_send,
            deadline: s.batch_send_deadline,
            min_backoff: s.min_backoff,
            max_backoff: s.max_backoff,
        });
        let metadata_task = match (&metadata, s.send_metadata) {
            (Some(src), true) => Some(rt.spawn(metadata_loop(
                ctx.clone(),
                src.clone(),
                s.metadata_interval,
                s.metadata_max_per_send,
                abort_rx.clone(),
                stop.clone(),
            ))),
            _ => None,
        };
        let mut reader = Reader {
            s: s.clone(),
            db,
            rt,
            metrics: metrics.clone(),
            abort: abort_rx,
            ctx,
            shards: Shards {
                senders: Vec::new(),
                acks: Vec::new(),
                tasks: Vec::new(),
            },
            bufs: Vec::new(),
            sent_marker: Vec::new(),
            series: AHashMap::new(),
            boundary: start,
            skip_before,
            broken: false,
            read_samples: 0,
            read_bytes: 0,
        };
        let tailer = reader.db.reader(start);
        let stop2 = stop.clone();
        let hold2 = hold.clone();
        let name = s.name.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("remote-write-{}", s.name))
            .spawn(move || {
                let end = run_reader(&mut reader, tailer, &stop2, hold2.as_ref(), &pos_path);
                let _ = done_tx.send(end);
            });
        if let Err(e) = spawned {
            tracing::error!(remote_name = %name, "Cannot start the remote-write reader thread: {e}");
        }
        Queue {
            settings: s,
            metrics,
            stop,
            abort: abort_tx,
            done: Some(done_rx),
            hold,
            metadata_task,
        }
    }

    /// The WAL hold of this queue (kept registered after `stop` until dropped, so that the
    /// shutdown checkpoint keeps the segments a restart resumes from).
    pub fn hold(&self) -> Arc<dyn WalHold> {
        self.hold.clone()
    }

    /// Stops reading, gives the shards up to the flush deadline to send what they have, then
    /// aborts them; saves the position. Returns the final position.
    pub async fn stop(&mut self) -> Option<WalPos> {
        self.stop.store(true, Ordering::Relaxed);
        let done = self.done.take()?;
        tokio::pin!(done);
        let pos = tokio::select! {
            p = &mut done => p.ok(),
            _ = tokio::time::sleep(self.settings.flush_deadline) => {
                tracing::warn!(remote_name = %self.settings.name, "Remote write flush deadline reached; unsent samples stay in the WAL for the next start");
                let _ = self.abort.send(true);
                done.await.ok()
            }
        };
        let _ = self.abort.send(true);
        if let Some(t) = self.metadata_task.take() {
            let _ = t.await;
        }
        pos
    }
}

fn run_reader(
    r: &mut Reader,
    mut tailer: Box<dyn WalReader>,
    stop: &AtomicBool,
    hold: &dyn WalHold,
    pos_path: &std::path::Path,
) -> WalPos {
    let s = r.s.clone();
    r.start_shards(s.min_shards.max(1));
    let mut last_save = Instant::now();
    let mut saved = r.boundary;
    let mut last_reshard = Instant::now();
    let mut rate_base = RateBase::take(r);
    let mut last_segment = tailer.position().segment;
    let save = |p: WalPos, sync: bool| {
        if let Err(e) = crate::position::save(pos_path, &s.name, &s.url, p, sync) {
            tracing::warn!(remote_name = %s.name, "Cannot save the remote-write position: {e}");
        }
    };
    while !stop.load(Ordering::Relaxed) && !r.broken {
        let step = tailer.step(1 << 20, &mut |rec, end| r.on_record(rec, end));
        match step {
            Ok(st) => {
                r.read_bytes += st.bytes;
                if st.next_segment {
                    // The segment is done: its end is where the next one starts.
                    r.boundary = r.boundary.max(tailer.position());
                }
                if st.progressed() {
                    r.flush_bufs();
                } else {
                    std::thread::sleep(s.poll_interval);
                }
            }
            Err(e) => {
                tracing::error!(remote_name = %s.name, "Reading the WAL failed: {e}");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        r.metrics
            .wal_lost_segments
            .store(tailer.lost_segments(), Ordering::Relaxed);
        r.metrics
            .wal_skipped_tails
            .store(tailer.skipped_tails(), Ordering::Relaxed);
        r.metrics
            .reader_segment
            .store(tailer.position().segment as u64, Ordering::Relaxed);
        if tailer.position().segment != last_segment {
            last_segment = tailer.position().segment;
            r.gc_series();
        }
        if last_save.elapsed() >= s.save_interval {
            last_save = Instant::now();
            let c = r.committed();
            hold.set(c.segment);
            r.metrics.set_position(c);
            if c != saved {
                save(c, false);
                saved = c;
            }
        }
        if last_reshard.elapsed() >= s.reshard_interval {
            last_reshard = Instant::now();
            let now = RateBase::take(r);
            if let Some(n) = desired_shards(r, &rate_base, &now, tailer.as_ref()) {
                tracing::info!(remote_name = %s.name, from = r.shards.senders.len(), to = n, "Remote storage resharding");
                r.stop_shards();
                r.start_shards(n);
            }
            rate_base = now;
        }
    }
    // Stopping: hand over what was read, let the shards drain (or be aborted at the flush
    // deadline), and record what was acknowledged.
    r.stop_shards();
    let c = r.committed();
    hold.set(c.segment);
    r.metrics.set_position(c);
    save(c, true);
    tracing::info!(remote_name = %s.name, segment = c.segment, offset = c.offset, "Remote write stopped; position saved");
    c
}

/// Counters at one moment, for rates.
struct RateBase {
    at: Instant,
    sent: u64,
    send_ns: u64,
    appended: u64,
    last_success_ms: i64,
}

impl RateBase {
    fn take(r: &Reader) -> RateBase {
        RateBase {
            at: Instant::now(),
            sent: r.metrics.samples.load(Ordering::Relaxed)
                + r.metrics.failed.load(Ordering::Relaxed),
            send_ns: r.metrics.send_ns.load(Ordering::Relaxed),
            appended: r.db.samples_appended(),
            last_success_ms: r.metrics.last_send_ms.load(Ordering::Relaxed),
        }
    }
}

/// The number of shards to switch to, if it should change.
fn desired_shards(r: &Reader, a: &RateBase, b: &RateBase, tailer: &dyn WalReader) -> Option<usize> {
    let secs = b.at.duration_since(a.at).as_secs_f64().max(0.001);
    let sent = b.sent.saturating_sub(a.sent);
    let current = r.shards.senders.len().max(1);
    let bytes_per_sample = if r.read_samples > 0 {
        (r.read_bytes as f64 / r.read_samples as f64).max(1.0)
    } else {
        20.0
    };
    let backlog = tailer.bytes_behind() as f64 / bytes_per_sample
        + r.metrics.pending.load(Ordering::Relaxed).max(0) as f64;
    r.metrics
        .backlog_samples
        .store(backlog as u64, Ordering::Relaxed);
    if sent == 0 {
        // Nothing went out: either idle (keep) or failing (resharding would not help).
        return None;
    }
    if b.last_success_ms == a.last_success_ms {
        return None;
    }
    let in_rate = b.appended.saturating_sub(a.appended) as f64 / secs;
    let time_per_sample = b.send_ns.saturating_sub(a.send_ns) as f64 / 1e9 / sent as f64;
    let want = time_per_sample * (in_rate + backlog / 10.0) * 1.3;
    let desired = (want.ceil() as usize).clamp(r.s.min_shards.max(1), r.s.max_shards.max(1));
    r.metrics
        .desired_shards
        .store(desired as u64, Ordering::Relaxed);
    let diff = (desired as f64 - current as f64).abs() / current as f64;
    (desired != current && diff > 0.3).then_some(desired)
}

async fn metadata_loop(
    ctx: Arc<ShardCtx>,
    src: MetadataSource,
    interval: Duration,
    max_per_send: usize,
    mut abort: watch::Receiver<bool>,
    stop: Arc<AtomicBool>,
) {
    let interval = interval.max(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = abort.changed() => return,
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let md = src();
        for chunk in md.chunks(max_per_send.max(1)) {
            let mut buf = Vec::new();
            codec::put_metadata(&mut buf, chunk);
            let body = Bytes::from(codec::snappy_compress(&buf));
            let m = &ctx.metrics;
            let n = chunk.len() as u64;
            match send_with_retry(
                &ctx.client,
                body,
                0,
                m,
                ctx.min_backoff,
                ctx.max_backoff,
                &mut abort,
            )
            .await
            {
                Outcome::Sent => {
                    m.metadata.fetch_add(n, Ordering::Relaxed);
                }
                Outcome::Failed => {
                    m.metadata_failed.fetch_add(n, Ordering::Relaxed);
                }
                Outcome::Aborted => return,
            }
        }
    }
}
