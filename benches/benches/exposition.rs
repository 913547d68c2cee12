//! Exposition parsing throughput on realistic 10,000-line payloads, vigil's parser beside the
//! `prometheus-parse` crate in the same run.
//!
//! Payloads: a node_exporter-like body (CPU, filesystem, network, memory families with HELP
//! and TYPE) generated here deterministically, and targetsim's ML payload rendered by
//! `../shared/bench/targetsim.py` (falls back to a generated one if python3 is missing).
//! Criterion reports bytes/s; samples/s = bytes/s × samples ÷ bytes, printed at start.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::fmt::Write;
use std::hint::black_box;
use vigil_exposition::{Entry, Format, Parser};

fn node_like(lines: usize) -> String {
    let mut s = String::new();
    let mut n = 0;
    let mut fam = 0;
    while n < lines {
        let name = match fam % 6 {
            0 => "node_cpu_seconds_total",
            1 => "node_filesystem_avail_bytes",
            2 => "node_network_receive_bytes_total",
            3 => "node_memory_MemFree_bytes",
            4 => "node_disk_io_time_seconds_total",
            _ => "node_netstat_Tcp_InSegs",
        };
        let _ = writeln!(
            s,
            "# HELP {name}_{fam} Seconds the CPUs spent in each mode.\n# TYPE {name}_{fam} counter"
        );
        n += 2;
        for i in 0..40 {
            let v = (fam * 7919 + i * 104729) as f64 / 13.0;
            let _ = match fam % 3 {
                0 => writeln!(s, "{name}_{fam}{{cpu=\"{i}\",mode=\"iowait\"}} {v}"),
                1 => writeln!(
                    s,
                    "{name}_{fam}{{device=\"/dev/nvme0n{i}p1\",fstype=\"ext4\",mountpoint=\"/var/lib/data{i}\"}} {v:e}"
                ),
                _ => writeln!(s, "{name}_{fam}{{device=\"eth{i}\"}} {}", v as u64),
            };
            n += 1;
        }
        fam += 1;
    }
    s
}

fn targetsim_payload() -> String {
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/bench/targetsim.py"
        ))
        .args(["--targets", "1", "--series", "9500", "--print-target", "0"])
        .output();
    match out {
        Ok(o) if o.status.success() && !o.stdout.is_empty() => String::from_utf8(o.stdout).unwrap(),
        _ => node_like(10_000),
    }
}

fn count_vigil(body: &[u8]) -> usize {
    let mut n = 0;
    for e in Parser::new(body, Format::PrometheusText) {
        if let Ok(Entry::Sample(s)) = e {
            black_box(s.value);
            n += 1;
        }
    }
    n
}

/// The same work with label access, as a scrape-cache miss does.
fn count_vigil_with_labels(body: &[u8]) -> usize {
    let mut n = 0;
    for e in Parser::new(body, Format::PrometheusText) {
        if let Ok(Entry::Sample(s)) = e {
            for l in s.labels() {
                black_box(l);
            }
            n += 1;
        }
    }
    n
}

fn count_prometheus_parse(body: &str) -> usize {
    let lines = body.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines)
        .map(|s| s.samples.len())
        .unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    let payloads = [
        ("node_exporter_like", node_like(10_000)),
        ("targetsim_ml", targetsim_payload()),
    ];
    let mut g = c.benchmark_group("exposition_parse");
    for (name, body) in &payloads {
        let samples = count_vigil(body.as_bytes());
        eprintln!(
            "{name}: {} lines, {} bytes, {samples} samples (prometheus-parse sees {})",
            body.lines().count(),
            body.len(),
            count_prometheus_parse(body)
        );
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("vigil", name), body, |b, body| {
            b.iter(|| count_vigil(black_box(body.as_bytes())))
        });
        g.bench_with_input(
            BenchmarkId::new("vigil_with_labels", name),
            body,
            |b, body| b.iter(|| count_vigil_with_labels(black_box(body.as_bytes()))),
        );
        g.bench_with_input(
            BenchmarkId::new("prometheus_parse", name),
            body,
            |b, body| b.iter(|| count_prometheus_parse(black_box(body))),
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
