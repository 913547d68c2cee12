//! vigil's own `/metrics`, under Prometheus' metric names where a counterpart exists.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use vigil_tsdb::Tsdb;

pub fn renderer(db: Arc<Tsdb>) -> impl Fn() -> String + Send + Sync {
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    move || {
        let mut out = String::with_capacity(4096);
        let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let head = db.head();
        let s = &head.stats;
        let c = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
        metric(
            "prometheus_tsdb_head_series",
            "gauge",
            "Total number of series in the head block.",
            head.num_series() as f64,
        );
        metric(
            "prometheus_tsdb_head_chunks",
            "gauge",
            "Total number of chunks in the head block.",
            head.num_chunks() as f64,
        );
        for (name, kind, help, v) in [
            (
                "prometheus_tsdb_head_samples_appended_total",
                "counter",
                "Total number of appended samples.",
                c(&s.samples_appended),
            ),
            (
                "prometheus_tsdb_head_series_created_total",
                "counter",
                "Total number of series created in the head.",
                c(&s.series_created),
            ),
            (
                "prometheus_tsdb_head_series_removed_total",
                "counter",
                "Total number of series removed in the head.",
                c(&s.series_removed),
            ),
            (
                "prometheus_tsdb_head_chunks_created_total",
                "counter",
                "Total number of chunks created in the head.",
                c(&s.chunks_created),
            ),
            (
                "prometheus_tsdb_head_chunks_removed_total",
                "counter",
                "Total number of chunks removed in the head.",
                c(&s.chunks_removed),
            ),
            (
                "prometheus_tsdb_out_of_order_samples_total",
                "counter",
                "Total number of out of order samples ingestion failed attempts.",
                c(&s.out_of_order_samples),
            ),
            (
                "prometheus_tsdb_head_out_of_order_samples_appended_total",
                "counter",
                "Total number of appended out of order samples.",
                c(&s.out_of_order_accepted),
            ),
            (
                "vigil_tsdb_head_histogram_samples_appended_total",
                "counter",
                "Native histogram samples appended to the head (also counted in prometheus_tsdb_head_samples_appended_total).",
                c(&s.histogram_samples_appended),
            ),
            (
                "vigil_tsdb_head_series_refused_total",
                "counter",
                "New series refused because the head held --storage.tsdb.max-series series.",
                c(&s.series_refused),
            ),
            (
                "prometheus_tsdb_wal_corruptions_total",
                "counter",
                "Total number of WAL corruptions.",
                c(&db.stats().wal_corruptions),
            ),
            (
                "prometheus_tsdb_wal_writes_failed_total",
                "counter",
                "Total number of write log writes that failed.",
                c(&db.stats().wal_writes_failed),
            ),
            (
                "prometheus_tsdb_checkpoint_creations_total",
                "counter",
                "Total number of checkpoint creations attempted.",
                c(&db.stats().checkpoints),
            ),
            (
                "prometheus_tsdb_checkpoint_creations_failed_total",
                "counter",
                "Total number of checkpoint creations that failed.",
                c(&db.stats().checkpoint_failures),
            ),
            (
                "prometheus_tsdb_data_replay_duration_seconds",
                "gauge",
                "Time taken to replay the data on disk.",
                db.replay_duration().as_secs_f64(),
            ),
            (
                "prometheus_tsdb_compactions_total",
                "counter",
                "Total number of compactions that were executed for the partition.",
                c(&db.stats().compactions),
            ),
            (
                "prometheus_tsdb_compactions_failed_total",
                "counter",
                "Total number of compactions that failed for the partition.",
                c(&db.stats().compactions_failed),
            ),
            (
                "prometheus_tsdb_time_retentions_total",
                "counter",
                "The number of times that blocks were deleted because the maximum time limit was exceeded.",
                c(&db.stats().time_retentions),
            ),
            (
                "prometheus_tsdb_size_retentions_total",
                "counter",
                "The number of times that blocks were deleted because the maximum number of bytes was exceeded.",
                c(&db.stats().size_retentions),
            ),
            (
                "vigil_tsdb_block_corruptions_total",
                "counter",
                "Blocks that failed to load and are skipped.",
                c(&db.stats().block_corruptions),
            ),
            (
                "vigil_tsdb_chunk_corruptions_total",
                "counter",
                "Stored chunks that a read found damaged; their samples are left out of answers.",
                vigil_tsdb::chunk::corrupt_chunks_total() as f64,
            ),
            (
                "prometheus_tsdb_blocks_loaded",
                "gauge",
                "Number of currently loaded data blocks.",
                db.blocks().len() as f64,
            ),
            (
                "prometheus_tsdb_storage_blocks_bytes",
                "gauge",
                "The number of bytes that are currently used for local storage by all blocks.",
                db.blocks_bytes() as f64,
            ),
            (
                "prometheus_tsdb_head_chunks_storage_size_bytes",
                "gauge",
                "Size of the chunks_head directory.",
                db.chunks_head_bytes() as f64,
            ),
            (
                "prometheus_tsdb_head_max_time",
                "gauge",
                "Maximum timestamp of the head block.",
                head.max_time().unwrap_or(0) as f64,
            ),
            (
                "prometheus_tsdb_head_min_time",
                "gauge",
                "Minimum time bound of the head block.",
                head.min_time().unwrap_or(0) as f64,
            ),
        ] {
            metric(name, kind, help, v);
        }
        if let Some((cpu, rss)) = proc_stat() {
            metric(
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
                cpu,
            );
            metric(
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                rss,
            );
        }
        metric(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            start,
        );
        let _ = writeln!(
            out,
            "# HELP vigil_build_info A metric with a constant '1' value labeled by version.\n# TYPE vigil_build_info gauge\nvigil_build_info{{version=\"{}\"}} 1",
            crate::cli::VERSION
        );
        out
    }
}

/// CPU seconds and resident bytes from /proc/self/stat (Linux).
fn proc_stat() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks = 100.0; // USER_HZ on Linux
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let rss_pages: f64 = f.get(21)?.parse().ok()?;
    Some(((utime + stime) / ticks, rss_pages * 4096.0))
}
