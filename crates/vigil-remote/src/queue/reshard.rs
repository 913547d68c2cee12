//! Resharding: how many shards the queue needs, from the incoming rate, the backlog and the
//! measured send time per sample (Prometheus' approach; see the module doc of `queue`).

use super::reader::Reader;
use std::sync::atomic::Ordering;
use std::time::Instant;
use vigil_model::wal::WalReader;

/// Counters at one moment, for rates.
pub(super) struct RateBase {
    pub(super) at: Instant,
    pub(super) sent: u64,
    pub(super) send_ns: u64,
    pub(super) appended: u64,
    pub(super) last_success_ms: i64,
}

impl RateBase {
    pub(super) fn take(r: &Reader) -> RateBase {
        RateBase {
            at: Instant::now(),
            sent: r.metrics.samples.load(Ordering::Relaxed)
                + r.metrics.failed.load(Ordering::Relaxed)
                + r.metrics.histograms.load(Ordering::Relaxed)
                + r.metrics.histograms_failed.load(Ordering::Relaxed),
            send_ns: r.metrics.send_ns.load(Ordering::Relaxed),
            appended: r.db.samples_appended(),
            last_success_ms: r.metrics.last_send_ms.load(Ordering::Relaxed),
        }
    }
}

/// The number of shards to switch to, if it should change.
pub(super) fn desired_shards(
    r: &Reader,
    a: &RateBase,
    b: &RateBase,
    tailer: &dyn WalReader,
) -> Option<usize> {
    let secs = b.at.duration_since(a.at).as_secs_f64().max(0.001);
    let sent = b.sent.saturating_sub(a.sent);
    let current = r.shards.senders.len().max(1);
    let bytes_per_sample = if r.read_samples > 0 {
        (r.read_bytes as f64 / r.read_samples as f64).max(1.0)
    } else {
        20.0
    };
    let backlog = tailer.bytes_behind() as f64 / bytes_per_sample
        + r.metrics.pending.load(Ordering::Relaxed).max(0) as f64
        + r.metrics.pending_histograms.load(Ordering::Relaxed).max(0) as f64;
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
