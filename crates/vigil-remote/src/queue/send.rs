//! Sending: a shard (a tokio task) batches the samples the reader hands it, encodes and
//! snappy-compresses `WriteRequest`s, sends them with retries and backoff, and acknowledges the
//! WAL marker that followed them once all are sent (or dropped for good). Metadata goes out on
//! its own loop through the same client.

use super::MetadataSource;
use crate::codec;
use crate::metrics::QueueMetrics;
use crate::prompb;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use vigil_model::histogram::FloatHistogram;
use vigil_model::wal::WalPos;

/// A series as the queue sends it: labels after external labels and relabeling, encoded.
pub(crate) struct SeriesEntry {
    pub(super) labels_pb: Box<[u8]>,
    pub(super) hash: u64,
}

/// A sample's value: a float or a native histogram.
#[derive(Clone)]
pub(super) enum Value {
    Float(f64),
    Histogram(Arc<FloatHistogram>),
}

pub(super) type Pending = (Arc<SeriesEntry>, i64, Value);

/// Samples and histograms in a list of pending entries.
pub(super) fn count(p: &[Pending]) -> Counts {
    let histograms = p
        .iter()
        .filter(|x| matches!(x.2, Value::Histogram(_)))
        .count() as u64;
    Counts {
        samples: p.len() as u64 - histograms,
        histograms,
    }
}

/// Float samples and histogram samples, counted apart as Prometheus' metrics do.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counts {
    pub(super) samples: u64,
    pub(super) histograms: u64,
}

pub(super) struct Msg {
    pub(super) samples: Vec<Pending>,
    pub(super) marker: WalPos,
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
    n: Counts,
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
                tracing::error!(remote_name = %m.name, url = %m.url, samples = n.samples, histograms = n.histograms, "Non-recoverable error sending to remote storage, dropping the batch: {e}");
                return Outcome::Failed;
            }
            Err(SendError::Recoverable(e, retry_after)) => {
                m.retried.fetch_add(n.samples, Ordering::Relaxed);
                m.histograms_retried
                    .fetch_add(n.histograms, Ordering::Relaxed);
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

pub(super) struct ShardCtx {
    pub(super) client: WriteClient,
    pub(super) metrics: Arc<QueueMetrics>,
    pub(super) max_per_send: usize,
    pub(super) deadline: Duration,
    pub(super) min_backoff: Duration,
    pub(super) max_backoff: Duration,
}

/// Encodes a batch: one `TimeSeries` per series, its float samples and its histograms each
/// in order (as Prometheus, a series' floats and histograms share its `TimeSeries`).
fn encode_batch(
    batch: &mut [Pending],
    buf: &mut Vec<u8>,
    scratch: &mut Vec<(i64, f64)>,
    hscratch: &mut Vec<prompb::Histogram>,
) {
    buf.clear();
    batch.sort_by_key(|p| Arc::as_ptr(&p.0) as usize);
    let mut i = 0;
    while i < batch.len() {
        let e = &batch[i].0;
        scratch.clear();
        hscratch.clear();
        let mut j = i;
        while j < batch.len() && Arc::ptr_eq(&batch[j].0, e) {
            match &batch[j].2 {
                Value::Float(v) => scratch.push((batch[j].1, *v)),
                Value::Histogram(h) => hscratch.push(codec::histogram_to_pb(batch[j].1, h)),
            }
            j += 1;
        }
        codec::put_timeseries(buf, &e.labels_pb, scratch, hscratch);
        i = j;
    }
}

#[allow(unused_assignments)] // the flush macro resets `deadline` also where it is not read again
pub(super) async fn run_shard(
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
    let mut hscratch = Vec::new();
    // Sends the batch; false when aborted.
    macro_rules! flush {
        () => {{
            let n = count(&batch);
            let maxt = batch.iter().map(|p| p.1).max().unwrap_or(i64::MIN);
            encode_batch(&mut batch, &mut buf, &mut scratch, &mut hscratch);
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
                        m.samples.fetch_add(n.samples, Ordering::Relaxed);
                        m.histograms.fetch_add(n.histograms, Ordering::Relaxed);
                        m.highest_sent_ms.fetch_max(maxt, Ordering::Relaxed);
                    } else {
                        m.failed.fetch_add(n.samples, Ordering::Relaxed);
                        m.histograms_failed
                            .fetch_add(n.histograms, Ordering::Relaxed);
                    }
                    m.pending.fetch_sub(n.samples as i64, Ordering::Relaxed);
                    m.pending_histograms
                        .fetch_sub(n.histograms as i64, Ordering::Relaxed);
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

pub(super) async fn metadata_loop(
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
                Counts::default(),
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
