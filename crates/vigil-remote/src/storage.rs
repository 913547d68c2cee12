//! [`RemoteStorage`]: the remote-write queues and remote-read clients of the running config.
//!
//! A reload keeps queues whose settings did not change, restarts changed ones (the old queue
//! flushes and saves its position, the new one resumes from it; the old WAL hold is released
//! only after the new one is registered) and stops removed ones. At shutdown the queues stop
//! but their WAL holds stay registered until this value is dropped, so the shutdown
//! checkpoint keeps the segments the next start resumes from.

use crate::metrics::{QueueMetrics, ServerMetrics};
use crate::position::queue_key;
use crate::queue::{MetadataSource, Queue, QueueSettings, StartAt};
use crate::read::{ReadClient, ReadClients};
use parking_lot::Mutex;
use reqwest::header::{HeaderName, HeaderValue};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use vigil_config::{Config, RemoteReadConfig, RemoteWriteConfig, redact_url};
use vigil_model::Labels;
use vigil_model::wal::{WalHold, WalSource};

/// Settings from the command line.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// `--storage.remote.flush-deadline`.
    pub flush_deadline: Duration,
    pub user_agent: String,
    /// Reader poll interval when caught up.
    pub poll_interval: Duration,
    /// How often positions are persisted.
    pub save_interval: Duration,
    pub reshard_interval: Duration,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            flush_deadline: Duration::from_secs(60),
            user_agent: "vigil".into(),
            poll_interval: Duration::from_millis(50),
            save_interval: Duration::from_secs(1),
            reshard_interval: Duration::from_secs(10),
        }
    }
}

struct Running {
    fingerprint: String,
    metrics: Arc<QueueMetrics>,
    /// `None` while a restart is in progress.
    queue: Arc<tokio::sync::Mutex<Option<Queue>>>,
}

pub struct RemoteStorage {
    db: Arc<dyn WalSource>,
    rt: tokio::runtime::Handle,
    opts: RemoteOptions,
    metadata: Option<MetadataSource>,
    queues: Mutex<BTreeMap<String, Running>>,
    /// Holds of stopped queues, kept until drop (see the module docs).
    retired_holds: Mutex<Vec<Arc<dyn WalHold>>>,
    readers: Arc<ReadClients>,
    started: std::sync::atomic::AtomicBool,
    pub server_metrics: Arc<ServerMetrics>,
}

fn headers(h: &BTreeMap<String, String>) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    h.iter()
        .map(|(k, v)| {
            Ok((
                HeaderName::from_bytes(k.as_bytes()).map_err(|e| format!("header {k:?}: {e}"))?,
                HeaderValue::from_str(v).map_err(|e| format!("header {k:?}: {e}"))?,
            ))
        })
        .collect()
}

fn remote_name(name: &str, key: &str) -> String {
    if name.is_empty() {
        key[..6].to_string()
    } else {
        name.to_string()
    }
}

impl RemoteStorage {
    /// Must be called within a tokio runtime (queues run on it).
    pub fn new(
        db: Arc<dyn WalSource>,
        opts: RemoteOptions,
        metadata: Option<MetadataSource>,
    ) -> Arc<Self> {
        Arc::new(RemoteStorage {
            db,
            rt: tokio::runtime::Handle::current(),
            opts,
            metadata,
            queues: Mutex::new(BTreeMap::new()),
            retired_holds: Mutex::new(Vec::new()),
            readers: Arc::new(ReadClients::default()),
            started: false.into(),
            server_metrics: Arc::new(ServerMetrics::default()),
        })
    }

    fn queue_settings(
        &self,
        rw: &RemoteWriteConfig,
        ext: &Labels,
        start: StartAt,
    ) -> Result<QueueSettings, String> {
        let key = queue_key(&rw.name, &rw.url);
        let client = vigil_http::build(&rw.http_client_config(), &self.opts.user_agent)
            .map_err(|e| format!("remote_write {:?}: {e}", redact_url(&rw.url)))?;
        let q = &rw.queue_config;
        Ok(QueueSettings {
            name: remote_name(&rw.name, &key),
            url: rw.url.clone(),
            key,
            timeout: Duration::from_millis(rw.remote_timeout.as_millis().max(1)),
            headers: headers(&rw.headers)?,
            relabel: rw.write_relabel_configs.clone(),
            external_labels: ext.clone(),
            capacity: q.capacity.max(1) as usize,
            min_shards: q.min_shards.max(1) as usize,
            max_shards: q.max_shards.max(1) as usize,
            max_samples_per_send: q.max_samples_per_send.max(1) as usize,
            batch_send_deadline: Duration::from_millis(q.batch_send_deadline.as_millis().max(1)),
            min_backoff: Duration::from_millis(q.min_backoff.as_millis().max(1)),
            max_backoff: Duration::from_millis(q.max_backoff.as_millis().max(1)),
            retry_on_429: q.retry_on_http_429,
            send_native_histograms: rw.send_native_histograms,
            sample_age_limit: Duration::from_millis(q.sample_age_limit.as_millis()),
            send_metadata: rw.metadata_config.send,
            metadata_interval: Duration::from_millis(rw.metadata_config.send_interval.as_millis()),
            metadata_max_per_send: rw.metadata_config.max_samples_per_send.max(1) as usize,
            flush_deadline: self.opts.flush_deadline,
            client,
            start,
            poll_interval: self.opts.poll_interval,
            save_interval: self.opts.save_interval,
            reshard_interval: self.opts.reshard_interval,
        })
    }

    fn read_client(&self, rr: &RemoteReadConfig, ext: &Labels) -> Result<ReadClient, String> {
        let key = queue_key(&rr.name, &rr.url);
        Ok(ReadClient {
            name: remote_name(&rr.name, &key),
            url: rr.url.clone(),
            timeout: Duration::from_millis(rr.remote_timeout.as_millis().max(1)),
            headers: headers(&rr.headers)?,
            required_matchers: rr
                .required_matchers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            read_recent: rr.read_recent,
            filter_external_labels: rr.filter_external_labels,
            external_labels: ext.clone(),
            client: vigil_http::build(&rr.http_client_config(), &self.opts.user_agent)
                .map_err(|e| format!("remote_read {:?}: {e}", redact_url(&rr.url)))?,
            counts: Default::default(),
        })
    }

    /// Applies `remote_write` and `remote_read` of a (new) config. Every client is built
    /// first; any error refuses the whole config and leaves the running queues alone.
    pub fn apply_config(&self, cfg: &Config) -> Result<(), String> {
        let ext = Labels::from_pairs(cfg.global.external_labels.clone());
        let first = !self
            .started
            .swap(true, std::sync::atomic::Ordering::Relaxed);
        let start = if first {
            StartAt::NewestSegment
        } else {
            StartAt::Now
        };
        let mut wanted: BTreeMap<String, (String, QueueSettings)> = BTreeMap::new();
        for rw in &cfg.remote_write {
            let s = self.queue_settings(rw, &ext, start)?;
            let fp = serde_json::to_string(&(rw, &cfg.global.external_labels)).unwrap_or_default();
            wanted.insert(s.key.clone(), (fp, s));
        }
        let readers: Vec<Arc<ReadClient>> = cfg
            .remote_read
            .iter()
            .map(|rr| self.read_client(rr, &ext).map(Arc::new))
            .collect::<Result<_, _>>()?;
        self.readers.set(readers);

        let mut queues = self.queues.lock();
        let gone: Vec<String> = queues
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(r) = queues.remove(&k) {
                tracing::info!(remote_name = %r.metrics.name, url = %r.metrics.url, "Stopping removed remote-write queue");
                self.rt.spawn(async move {
                    if let Some(mut q) = r.queue.lock().await.take() {
                        q.stop().await;
                    }
                });
            }
        }
        for (key, (fp, s)) in wanted {
            if let Some(r) = queues.get_mut(&key) {
                if r.fingerprint == fp {
                    continue;
                }
                // Changed: restart with the new settings from the old queue's position.
                r.fingerprint = fp;
                r.metrics
                    .min_shards
                    .store(s.min_shards as u64, std::sync::atomic::Ordering::Relaxed);
                r.metrics
                    .max_shards
                    .store(s.max_shards as u64, std::sync::atomic::Ordering::Relaxed);
                let slot = r.queue.clone();
                let (db, metrics, md, rt) = (
                    self.db.clone(),
                    r.metrics.clone(),
                    self.metadata.clone(),
                    self.rt.clone(),
                );
                tracing::info!(remote_name = %s.name, url = %redact_url(&s.url), "Restarting remote-write queue with its new settings");
                self.rt.spawn(async move {
                    let mut slot = slot.lock().await;
                    let old = slot.take();
                    let mut old_hold = None;
                    let mut s = s;
                    if let Some(mut q) = old {
                        q.stop().await;
                        old_hold = Some(q.hold());
                        // It resumes from the saved position, so nothing is skipped.
                        s.start = StartAt::NewestSegment;
                    }
                    *slot = Some(Queue::start(s, db, metrics, md, rt));
                    drop(old_hold);
                });
                continue;
            }
            let metrics = Arc::new(QueueMetrics::new(
                &s.name,
                &redact_url(&s.url),
                s.min_shards,
                s.max_shards,
            ));
            tracing::info!(remote_name = %s.name, url = %redact_url(&s.url), "Starting remote-write queue");
            let q = Queue::start(
                s,
                self.db.clone(),
                metrics.clone(),
                self.metadata.clone(),
                self.rt.clone(),
            );
            queues.insert(
                key,
                Running {
                    fingerprint: fp,
                    metrics,
                    queue: Arc::new(tokio::sync::Mutex::new(Some(q))),
                },
            );
        }
        Ok(())
    }

    /// Stops every queue (flushing up to the flush deadline) and saves their positions. Their
    /// WAL holds stay registered until `self` is dropped.
    pub async fn stop(&self) {
        let slots: Vec<_> = self
            .queues
            .lock()
            .values()
            .map(|r| r.queue.clone())
            .collect();
        let mut tasks = Vec::new();
        for slot in slots {
            tasks.push(tokio::spawn(async move {
                let mut g = slot.lock().await;
                let mut hold = None;
                if let Some(q) = g.as_mut() {
                    q.stop().await;
                    hold = Some(q.hold());
                }
                *g = None;
                hold
            }));
        }
        for t in tasks {
            if let Ok(Some(h)) = t.await {
                self.retired_holds.lock().push(h);
            }
        }
    }

    /// The metrics of the queues, the receiver and remote read.
    pub fn render_metrics(&self) -> String {
        let queues: Vec<Arc<QueueMetrics>> = self
            .queues
            .lock()
            .values()
            .map(|r| r.metrics.clone())
            .collect();
        let highest = self.db.max_time().map_or(0.0, |t| t as f64 / 1000.0);
        let mut out = crate::metrics::render(&queues, highest, &self.server_metrics);
        let readers = self.readers.get();
        if !readers.is_empty() {
            use std::fmt::Write;
            let name = "vigil_remote_read_client_requests_total";
            let _ = writeln!(
                out,
                "# HELP {name} Remote-read requests sent, by response type (streamed XOR chunks, samples) or failed.\n# TYPE {name} counter"
            );
            for r in readers {
                for (kind, c) in [
                    ("streamed", &r.counts.streamed),
                    ("samples", &r.counts.samples),
                    ("failed", &r.counts.failed),
                ] {
                    let _ = writeln!(
                        out,
                        "{name}{{remote_name=\"{}\",url=\"{}\",response=\"{kind}\"}} {}",
                        r.name,
                        redact_url(&r.url),
                        c.load(std::sync::atomic::Ordering::Relaxed)
                    );
                }
            }
        }
        out
    }

    /// The metrics of each running queue (tests, status pages).
    pub fn queue_metrics(&self) -> Vec<Arc<QueueMetrics>> {
        self.queues
            .lock()
            .values()
            .map(|r| r.metrics.clone())
            .collect()
    }

    /// The remote-read clients of the current config.
    pub fn read_clients(&self) -> Arc<ReadClients> {
        self.readers.clone()
    }
}
