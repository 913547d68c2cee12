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

use crate::metrics::QueueMetrics;
use crate::position::Saved;
use crate::prompb;
use ahash::AHashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use vigil_config::relabel::RelabelConfig;
use vigil_model::Labels;
use vigil_model::wal::{WalHold, WalPos, WalReader, WalSource};

mod reader;
mod reshard;
mod send;

use reader::{Reader, Shards};
use reshard::{RateBase, desired_shards};
use send::{ShardCtx, WriteClient, metadata_loop};

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
    /// `send_native_histograms`: send native histogram samples (Prometheus' default: no; then
    /// histogram records are not sent at all, as in Prometheus).
    pub send_native_histograms: bool,
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
        let start = match crate::position::load_saved(&pos_path) {
            Saved::At(p) if p.segment <= newest => {
                tracing::info!(remote_name = %s.name, segment = p.segment, offset = p.offset, "Remote write resumes from its saved WAL position");
                p
            }
            Saved::At(p) => {
                tracing::warn!(remote_name = %s.name, saved = p.segment, newest, "Saved remote-write position is past the newest WAL segment (a new data directory?); starting at the newest segment");
                WalPos {
                    segment: newest,
                    offset: 0,
                }
            }
            Saved::Unreadable => {
                // Not the newest segment: what this queue had not sent yet would be skipped.
                // Resending from the oldest segment kept delivers it (again, for what the
                // receiver had: receivers drop duplicate samples).
                let oldest = db.oldest_segment().unwrap_or(newest).min(newest);
                tracing::warn!(remote_name = %s.name, segment = oldest, "The saved remote-write position is unreadable (a save cut short by a power cut?); resending from the oldest WAL segment kept");
                let p = WalPos {
                    segment: oldest,
                    offset: 0,
                };
                if let Err(e) = crate::position::save(&*db, &pos_path, &s.name, &s.url, p, true) {
                    tracing::warn!(remote_name = %s.name, "Cannot save the remote-write position: {e}");
                }
                p
            }
            Saved::Missing => {
                if s.start == StartAt::Now {
                    skip_before = Some((newest, vigil_model::now_millis()));
                }
                let p = WalPos {
                    segment: newest,
                    offset: 0,
                };
                // Saved at once: a crash before the first periodic save would otherwise leave
                // no position, and the next start would begin at its own newest segment,
                // skipping everything this run wrote (found by tools/crash_campaign.py).
                if let Err(e) = crate::position::save(&*db, &pos_path, &s.name, &s.url, p, true) {
                    tracing::warn!(remote_name = %s.name, "Cannot save the remote-write position: {e}");
                }
                p
            }
        };
        let hold = db.hold(&format!("remote_write {}", s.name), start.segment);
        metrics.set_position(start);
        // A restarted queue (reload) reuses the metrics: what the old one had pending is in
        // the WAL again, behind `start`.
        metrics.pending.store(0, Ordering::Relaxed);
        metrics.pending_histograms.store(0, Ordering::Relaxed);
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
            warned_nhcb: false,
            warned_histograms_off: false,
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
    let db = Arc::clone(&r.db);
    let save = |p: WalPos, sync: bool| {
        if let Err(e) = crate::position::save(&*db, pos_path, &s.name, &s.url, p, sync) {
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
