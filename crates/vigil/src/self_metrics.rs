//! vigil's own `/metrics`, under Prometheus' metric names where a counterpart exists.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use vigil_tsdb::Head;

pub fn renderer(head: Arc<Head>) -> impl Fn() -> String + Send + Sync {
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    move || {
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "prometheus_tsdb_head_series",
            "gauge",
            "Total number of series in the head block.",
            head.num_series() as f64,
        );
        let s = &head.stats;
        metric(
            "prometheus_tsdb_head_samples_appended_total",
            "counter",
            "Total number of appended samples.",
            s.samples_appended.load(Ordering::Relaxed) as f64,
        );
        metric(
            "prometheus_tsdb_head_series_created_total",
            "counter",
            "Total number of series created in the head.",
            s.series_created.load(Ordering::Relaxed) as f64,
        );
        metric(
            "prometheus_tsdb_out_of_order_samples_total",
            "counter",
            "Total number of out of order samples ingestion failed attempts.",
            s.out_of_order_samples.load(Ordering::Relaxed) as f64,
        );
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
