//! Remote-storage self-metrics under Prometheus' names (`prometheus_remote_storage_*`), with
//! the `remote_name` and `url` labels Prometheus uses.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use vigil_model::wal::WalPos;

/// Counters of one remote-write queue.
#[derive(Debug, Default)]
pub struct QueueMetrics {
    pub name: String,
    pub url: String,
    /// Samples sent successfully.
    pub samples: AtomicU64,
    /// Samples dropped after a non-recoverable error (4xx).
    pub failed: AtomicU64,
    /// Samples in batches that were retried.
    pub retried: AtomicU64,
    /// Samples dropped before sending: relabeled away, unknown series, too old.
    pub dropped: AtomicU64,
    /// Samples read from the WAL and not yet sent or failed.
    pub pending: AtomicI64,
    /// The same four counters and the gauge for native histogram samples.
    pub histograms: AtomicU64,
    pub histograms_failed: AtomicU64,
    pub histograms_retried: AtomicU64,
    /// Histograms dropped before sending: relabeled away, unknown series, too old, and
    /// histograms with custom buckets (schema −53), which remote write 1.0 does not carry.
    pub histograms_dropped: AtomicU64,
    pub pending_histograms: AtomicI64,
    pub highest_sent_ms: AtomicI64,
    pub shards: AtomicU64,
    pub desired_shards: AtomicU64,
    pub min_shards: AtomicU64,
    pub max_shards: AtomicU64,
    /// Total time spent in successful sends, and their number.
    pub send_ns: AtomicU64,
    pub sends: AtomicU64,
    /// Compressed bytes sent.
    pub bytes: AtomicU64,
    /// Wall clock (ms) of the last successful send.
    pub last_send_ms: AtomicI64,
    pub metadata: AtomicU64,
    pub metadata_failed: AtomicU64,
    /// WAL segments that were gone before the queue read them.
    pub wal_lost_segments: AtomicU64,
    /// Unreadable segment tails skipped.
    pub wal_skipped_tails: AtomicU64,
    /// The segment the reader is in.
    pub reader_segment: AtomicU64,
    /// The acknowledged (persisted) position, packed.
    pub position: AtomicU64,
    /// Estimated samples behind the WAL head.
    pub backlog_samples: AtomicU64,
}

impl QueueMetrics {
    pub fn new(name: &str, url: &str, min_shards: usize, max_shards: usize) -> Self {
        QueueMetrics {
            name: name.to_string(),
            url: url.to_string(),
            highest_sent_ms: AtomicI64::new(0),
            min_shards: AtomicU64::new(min_shards as u64),
            max_shards: AtomicU64::new(max_shards as u64),
            desired_shards: AtomicU64::new(min_shards as u64),
            ..Default::default()
        }
    }

    pub(crate) fn observe_send(&self, took: Duration, bytes: u64) {
        self.send_ns
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        self.sends.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.last_send_ms
            .store(vigil_model::now_millis(), Ordering::Relaxed);
    }

    pub(crate) fn set_position(&self, p: WalPos) {
        self.position.store(p.pack(), Ordering::Relaxed);
    }

    /// The acknowledged WAL position.
    pub fn position(&self) -> WalPos {
        WalPos::unpack(self.position.load(Ordering::Relaxed))
    }
}

/// Counters of the receiver and remote read.
#[derive(Debug, Default)]
pub struct ServerMetrics {
    pub write_requests: AtomicU64,
    pub write_samples: AtomicU64,
    pub write_histograms: AtomicU64,
    /// Requests rejected (400) because a histogram did not decode or validate.
    pub write_invalid_histograms: AtomicU64,
    pub write_rejected: AtomicU64,
    pub write_out_of_order: AtomicU64,
    pub write_invalid_labels: AtomicU64,
    pub read_requests: AtomicU64,
    pub read_errors: AtomicU64,
    /// The OTLP receiver (`crate::otlp`).
    pub otlp_requests: AtomicU64,
    pub otlp_requests_rejected: AtomicU64,
    pub otlp_points_received: AtomicU64,
    pub otlp_points_rejected: AtomicU64,
    pub otlp_samples: AtomicU64,
    pub otlp_histograms: AtomicU64,
    pub otlp_exemplars_dropped: AtomicU64,
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The text exposition of all queues' metrics, the global highest timestamp and the server
/// counters.
pub fn render(
    queues: &[std::sync::Arc<QueueMetrics>],
    highest_ts_s: f64,
    srv: &ServerMetrics,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP prometheus_remote_storage_highest_timestamp_in_seconds Highest timestamp that has come into the remote storage via the Appender interface, in seconds since epoch.\n# TYPE prometheus_remote_storage_highest_timestamp_in_seconds gauge\nprometheus_remote_storage_highest_timestamp_in_seconds {highest_ts_s}"
    );
    type Get = fn(&QueueMetrics) -> f64;
    let per_queue: [(&str, &str, &str, Get); 25] = [
        (
            "prometheus_remote_storage_samples_total",
            "counter",
            "Total number of samples sent to remote storage.",
            |m| m.samples.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_samples_failed_total",
            "counter",
            "Total number of samples which failed on send to remote storage, non-recoverable errors.",
            |m| m.failed.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_samples_retried_total",
            "counter",
            "Total number of samples which failed on send to remote storage but were retried because the send error was recoverable.",
            |m| m.retried.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_samples_dropped_total",
            "counter",
            "Total number of samples which were dropped after being read from the WAL before being sent via remote write, either via relabelling or unintentionally because of an unknown reference ID.",
            |m| m.dropped.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_samples_pending",
            "gauge",
            "The number of samples pending in the queues shards to be sent to the remote storage.",
            |m| m.pending.load(Ordering::Relaxed).max(0) as f64,
        ),
        (
            "prometheus_remote_storage_histograms_total",
            "counter",
            "Total number of histograms sent to remote storage.",
            |m| m.histograms.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_histograms_failed_total",
            "counter",
            "Total number of histograms which failed on send to remote storage, non-recoverable errors.",
            |m| m.histograms_failed.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_histograms_retried_total",
            "counter",
            "Total number of histograms which failed on send to remote storage but were retried because the send error was recoverable.",
            |m| m.histograms_retried.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_histograms_dropped_total",
            "counter",
            "Total number of histograms which were dropped after being read from the WAL before being sent via remote write, either via relabelling, due to being too old, unintentionally because of an unknown reference ID, or because they have custom buckets, which remote write 1.0 does not carry.",
            |m| m.histograms_dropped.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_histograms_pending",
            "gauge",
            "The number of histograms pending in the queues shards to be sent to the remote storage.",
            |m| m.pending_histograms.load(Ordering::Relaxed).max(0) as f64,
        ),
        (
            "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
            "gauge",
            "Timestamp from a WAL sample, the highest timestamp successfully sent by this queue, in seconds since epoch.",
            |m| m.highest_sent_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        ),
        (
            "prometheus_remote_storage_shards",
            "gauge",
            "The number of shards used for parallel sending to the remote storage.",
            |m| m.shards.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_shards_desired",
            "gauge",
            "The number of shards that the queues shard calculation wants to run based on the rate of samples in vs. samples out.",
            |m| m.desired_shards.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_shards_min",
            "gauge",
            "The minimum number of shards that the queue is allowed to run.",
            |m| m.min_shards.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_shards_max",
            "gauge",
            "The maximum number of shards that the queue is allowed to run.",
            |m| m.max_shards.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_bytes_total",
            "counter",
            "The total number of bytes of data (not metadata) sent by the queue after compression.",
            |m| m.bytes.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_sent_batch_duration_seconds_sum",
            "counter",
            "Total time spent in successful sends to remote storage.",
            |m| m.send_ns.load(Ordering::Relaxed) as f64 / 1e9,
        ),
        (
            "prometheus_remote_storage_sent_batch_duration_seconds_count",
            "counter",
            "Number of successful sends to remote storage.",
            |m| m.sends.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_metadata_total",
            "counter",
            "Total number of metadata entries sent to remote storage.",
            |m| m.metadata.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_metadata_failed_total",
            "counter",
            "Total number of metadata entries which failed on send to remote storage, non-recoverable errors.",
            |m| m.metadata_failed.load(Ordering::Relaxed) as f64,
        ),
        (
            "vigil_remote_storage_wal_segments_lost_total",
            "counter",
            "WAL segments deleted before this queue read them (kept-WAL bound exceeded); their samples were never sent.",
            |m| m.wal_lost_segments.load(Ordering::Relaxed) as f64,
        ),
        (
            "vigil_remote_storage_wal_torn_tails_skipped_total",
            "counter",
            "Unreadable tails of finished WAL segments this queue skipped.",
            |m| m.wal_skipped_tails.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_wal_watcher_current_segment",
            "gauge",
            "Current segment the WAL watcher is reading records from.",
            |m| m.reader_segment.load(Ordering::Relaxed) as f64,
        ),
        (
            "vigil_remote_storage_acknowledged_segment",
            "gauge",
            "WAL segment of the position this queue has sent up to (persisted, resumed from after a restart).",
            |m| m.position().segment as f64,
        ),
        (
            "vigil_remote_storage_backlog_samples",
            "gauge",
            "Estimated samples in the WAL this queue has not read yet plus pending ones.",
            |m| m.backlog_samples.load(Ordering::Relaxed) as f64,
        ),
    ];
    for (name, kind, help, get) in per_queue {
        if queues.is_empty() {
            break;
        }
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for q in queues {
            let _ = writeln!(
                out,
                "{name}{{remote_name=\"{}\",url=\"{}\"}} {}",
                esc(&q.name),
                esc(&q.url),
                get(q)
            );
        }
    }
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    for (name, help, v) in [
        (
            "vigil_remote_write_requests_total",
            "Remote-write requests received (--web.enable-remote-write-receiver).",
            l(&srv.write_requests),
        ),
        (
            "vigil_remote_write_samples_received_total",
            "Samples appended from remote-write requests.",
            l(&srv.write_samples),
        ),
        (
            "vigil_remote_write_histograms_received_total",
            "Native histogram samples appended from remote-write requests.",
            l(&srv.write_histograms),
        ),
        (
            "vigil_remote_write_invalid_histograms_total",
            "Remote-write requests rejected with 400 because a native histogram was malformed or invalid (nothing of the request stored).",
            l(&srv.write_invalid_histograms),
        ),
        (
            "vigil_remote_write_requests_rejected_total",
            "Remote-write requests answered with an error status (nothing stored).",
            l(&srv.write_rejected),
        ),
        (
            "vigil_remote_write_out_of_order_samples_total",
            "Remote-write samples and histograms refused as out of order (their request was rejected with 400).",
            l(&srv.write_out_of_order),
        ),
        (
            "vigil_remote_write_invalid_labels_samples_total",
            "Remote-write samples and histograms skipped because their series had invalid labels.",
            l(&srv.write_invalid_labels),
        ),
        (
            "vigil_otlp_requests_total",
            "OTLP metrics export requests received (--web.enable-otlp-receiver).",
            l(&srv.otlp_requests),
        ),
        (
            "vigil_otlp_requests_rejected_total",
            "OTLP export requests answered with an error status (nothing of them stored).",
            l(&srv.otlp_requests_rejected),
        ),
        (
            "vigil_otlp_data_points_received_total",
            "OTLP data points received in decoded requests.",
            l(&srv.otlp_points_received),
        ),
        (
            "vigil_otlp_data_points_rejected_total",
            "OTLP data points dropped, reported to the client as rejected in a partial success (or with the whole request).",
            l(&srv.otlp_points_rejected),
        ),
        (
            "vigil_otlp_samples_appended_total",
            "Float samples appended from OTLP data points (series of gauges, counters, classic histograms, summaries and target_info).",
            l(&srv.otlp_samples),
        ),
        (
            "vigil_otlp_histograms_appended_total",
            "Native histogram samples appended from OTLP exponential histograms (and explicit-bucket ones with convert_histograms_to_nhcb).",
            l(&srv.otlp_histograms),
        ),
        (
            "vigil_otlp_exemplars_dropped_total",
            "OTLP exemplars read and not stored (vigil has no exemplar storage).",
            l(&srv.otlp_exemplars_dropped),
        ),
        (
            "vigil_remote_read_requests_total",
            "Remote-read requests served.",
            l(&srv.read_requests),
        ),
        (
            "vigil_remote_read_errors_total",
            "Remote-read requests answered with an error.",
            l(&srv.read_errors),
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    }
    out
}
