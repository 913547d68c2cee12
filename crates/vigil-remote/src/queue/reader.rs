//! The reader thread's side: WAL records in, per-shard buffers out. Series records become
//! sendable entries (external labels and `write_relabel_configs` applied once per series,
//! labels encoded once); samples are routed to the shard of their series, and every hand-over
//! carries the WAL position the shard acknowledges when done.

use super::QueueSettings;
use super::send::{Msg, Pending, SeriesEntry, ShardCtx, Value, count, run_shard};
use crate::codec;
use crate::metrics::QueueMetrics;
use ahash::AHashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, watch};
use vigil_config::relabel;
use vigil_model::wal::{WalPos, WalRecord, WalSource};
use vigil_model::{Labels, LabelsBuilder};

pub(super) struct Shards {
    pub(super) senders: Vec<mpsc::Sender<Msg>>,
    pub(super) acks: Vec<Arc<AtomicU64>>,
    pub(super) tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The reader thread's state (everything but the tailer, so record callbacks can borrow it).
pub(super) struct Reader {
    pub(super) s: QueueSettings,
    pub(super) db: Arc<dyn WalSource>,
    pub(super) rt: tokio::runtime::Handle,
    pub(super) metrics: Arc<QueueMetrics>,
    pub(super) abort: watch::Receiver<bool>,
    pub(super) ctx: Arc<ShardCtx>,
    pub(super) shards: Shards,
    pub(super) bufs: Vec<Vec<Pending>>,
    /// Marker last sent to each shard.
    pub(super) sent_marker: Vec<WalPos>,
    pub(super) series: AHashMap<u64, Option<Arc<SeriesEntry>>>,
    /// End of the last fully processed record.
    pub(super) boundary: WalPos,
    pub(super) skip_before: Option<(u32, i64)>,
    /// A shard is gone (aborted): stop reading.
    pub(super) broken: bool,
    pub(super) read_samples: u64,
    pub(super) read_bytes: u64,
    /// Logged that histograms with custom buckets are dropped.
    pub(super) warned_nhcb: bool,
    /// Logged that histograms are not sent (`send_native_histograms: false`).
    pub(super) warned_histograms_off: bool,
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
    pub(super) fn start_shards(&mut self, n: usize) {
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
    pub(super) fn stop_shards(&mut self) {
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
    pub(super) fn committed(&self) -> WalPos {
        self.shards
            .acks
            .iter()
            .map(|a| WalPos::unpack(a.load(Ordering::Acquire)))
            .min()
            .unwrap_or(self.boundary)
    }

    fn send(&mut self, shard: usize, marker: WalPos) {
        let samples = std::mem::take(&mut self.bufs[shard]);
        let n = count(&samples);
        let Some(tx) = self.shards.senders.get(shard) else {
            return;
        };
        let m = &self.metrics;
        m.pending.fetch_add(n.samples as i64, Ordering::Relaxed);
        m.pending_histograms
            .fetch_add(n.histograms as i64, Ordering::Relaxed);
        if tx.blocking_send(Msg { samples, marker }).is_err() {
            m.pending.fetch_sub(n.samples as i64, Ordering::Relaxed);
            m.pending_histograms
                .fetch_sub(n.histograms as i64, Ordering::Relaxed);
            self.broken = true;
        }
        self.sent_marker[shard] = marker;
    }

    /// Sends every shard its buffer and the current boundary as marker (when it moved).
    pub(super) fn flush_bufs(&mut self) {
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

    pub(super) fn on_record(&mut self, rec: WalRecord<'_>, end: WalPos) {
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
            WalRecord::Histograms(hs) if !self.s.send_native_histograms => {
                // As Prometheus: without `send_native_histograms` they are not sent (nor
                // counted); said once so it is not a surprise.
                if !self.warned_histograms_off && !hs.is_empty() {
                    self.warned_histograms_off = true;
                    tracing::info!(remote_name = %self.s.name, "Native histogram samples are not sent by this remote_write: send_native_histograms is false");
                }
            }
            WalRecord::Histograms(hs) => {
                let (age_min, skip) = self.time_filters(end);
                let mut dropped = 0u64;
                self.read_samples += hs.len() as u64;
                for (r, t, h) in hs {
                    if skip.is_some_and(|s| *t < s) {
                        continue;
                    }
                    if age_min.is_some_and(|m| *t < m) {
                        dropped += 1;
                        continue;
                    }
                    if h.uses_custom_buckets() {
                        // Remote write 1.0 has no place for custom bounds (its `custom_values`
                        // field is not part of the specification): Prometheus drops these too.
                        dropped += 1;
                        if !self.warned_nhcb {
                            self.warned_nhcb = true;
                            tracing::warn!(remote_name = %self.s.name, series = *r, "Native histograms with custom buckets (NHCB) are not sent by remote write 1.0; they are dropped and counted in prometheus_remote_storage_histograms_dropped_total");
                        }
                        continue;
                    }
                    let Some(e) = self.lookup(*r) else {
                        dropped += 1;
                        continue;
                    };
                    self.push(e, *t, Value::Histogram(h.clone()));
                }
                if dropped > 0 {
                    self.metrics
                        .histograms_dropped
                        .fetch_add(dropped, Ordering::Relaxed);
                }
            }
            WalRecord::Samples(samples) => {
                let (age_min, skip) = self.time_filters(end);
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
                        cached = Some((r, self.lookup(r)));
                    }
                    let Some(Some(e)) = cached.as_ref().map(|c| c.1.clone()) else {
                        dropped += 1;
                        continue;
                    };
                    self.push(e, t, Value::Float(v));
                }
                if dropped > 0 {
                    self.metrics.dropped.fetch_add(dropped, Ordering::Relaxed);
                }
            }
            WalRecord::Other => {}
        }
        self.boundary = end;
    }

    /// The oldest timestamp `sample_age_limit` lets through, and the start of a queue added
    /// by a reload (samples before it in its first segment are skipped).
    fn time_filters(&self, end: WalPos) -> (Option<i64>, Option<i64>) {
        let now = vigil_model::now_millis();
        let age_min = (!self.s.sample_age_limit.is_zero())
            .then(|| now - self.s.sample_age_limit.as_millis() as i64);
        let skip = self
            .skip_before
            .and_then(|(seg, t)| (seg == end.segment).then_some(t));
        (age_min, skip)
    }

    /// The sendable entry of series `r` (`None`: relabeled away or unknown).
    fn lookup(&mut self, r: u64) -> Option<Arc<SeriesEntry>> {
        match self.series.get(&r) {
            Some(e) => e.clone(),
            None => {
                // Its series record is older than where we started.
                let e = self.db.series_labels(r).and_then(|l| self.entry(&l));
                self.series.insert(r, e.clone());
                e
            }
        }
    }

    /// Buffers one sample for its series' shard, handing the buffer over when full.
    fn push(&mut self, e: Arc<SeriesEntry>, t: i64, v: Value) {
        let shard = (e.hash % self.bufs.len() as u64) as usize;
        self.bufs[shard].push((e, t, v));
        if self.bufs[shard].len() >= self.s.max_samples_per_send {
            // Everything of this shard before the record's start is in the buffer, so that
            // start is a valid marker.
            self.send(shard, self.boundary);
        }
    }

    /// Forgets series the head no longer has (their samples are all behind us).
    pub(super) fn gc_series(&mut self) {
        let db = &self.db;
        if self.series.len() > 2 * db.num_series() + 1024 {
            self.series.retain(|&r, _| db.series_labels(r).is_some());
        }
    }
}
