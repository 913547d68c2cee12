//! Protobuf exposition parsing beside the text parser, on the same 10,000 series: a
//! node_exporter-like set of counter families, once as delimited `MetricFamily` messages and
//! once as text 0.0.4; plus a body of 500 native histograms (about 20 buckets each, as a
//! client library exposes them with a bucket factor of 1.1).
//!
//! Criterion reports bytes/s of each body; the text and protobuf bodies differ in size, so
//! compare the time per iteration (the same series) too.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::fmt::Write;
use std::hint::black_box;
use vigil_exposition::proto::{dto, encode_delimited};
use vigil_exposition::{Entry, Format, Parser, ProtoOptions, ProtoParser, ProtoScratch};

fn lp(name: &str, value: String) -> dto::LabelPair {
    dto::LabelPair {
        name: name.into(),
        value,
    }
}

/// 250 families of 40 counters, as protobuf and as text.
fn counters() -> (Vec<u8>, String) {
    let mut fams = Vec::new();
    let mut text = String::new();
    for f in 0..250 {
        let name = format!("node_cpu_seconds_total_{f}");
        let _ = writeln!(text, "# HELP {name} Seconds the CPUs spent in each mode.");
        let _ = writeln!(text, "# TYPE {name} counter");
        let mut metric = Vec::new();
        for i in 0..40 {
            let v = (f * 7919 + i * 104729) as f64 / 13.0;
            let _ = writeln!(text, "{name}{{cpu=\"{i}\",mode=\"iowait\"}} {v}");
            metric.push(dto::Metric {
                label: vec![lp("cpu", i.to_string()), lp("mode", "iowait".into())],
                counter: Some(dto::Counter {
                    value: v,
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        fams.push(dto::MetricFamily {
            name,
            help: "Seconds the CPUs spent in each mode.".into(),
            r#type: dto::MetricType::Counter as i32,
            metric,
            unit: String::new(),
        });
    }
    (encode_delimited(&fams), text)
}

fn natives() -> Vec<u8> {
    let mut metric = Vec::new();
    for i in 0..500 {
        metric.push(dto::Metric {
            label: vec![lp("handler", format!("/api/v{i}"))],
            histogram: Some(dto::Histogram {
                sample_count: 1000,
                sample_sum: 123.4,
                schema: 3,
                zero_threshold: 1e-128,
                positive_span: vec![
                    dto::BucketSpan {
                        offset: -20,
                        length: 12,
                    },
                    dto::BucketSpan {
                        offset: 3,
                        length: 8,
                    },
                ],
                positive_delta: (0..20).map(|j| (j % 5) - 2).collect(),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    encode_delimited(&[dto::MetricFamily {
        name: "http_request_duration_seconds".into(),
        help: "Latency.".into(),
        r#type: dto::MetricType::Histogram as i32,
        metric,
        unit: String::new(),
    }])
}

fn count_proto(body: &[u8], scratch: &mut ProtoScratch) -> usize {
    ProtoParser::new(body, ProtoOptions::default(), scratch)
        .filter(|e| matches!(e, Ok(Entry::Sample(_) | Entry::Histogram(_))))
        .count()
}

fn count_text(body: &[u8]) -> usize {
    Parser::new(body, Format::PrometheusText)
        .filter(|e| matches!(e, Ok(Entry::Sample(_))))
        .count()
}

fn bench(c: &mut Criterion) {
    let (proto, text) = counters();
    let hist = natives();
    let mut scratch = ProtoScratch::default();
    eprintln!(
        "counters: protobuf {} bytes, text {} bytes, {} samples; histograms: {} bytes, {} entries",
        proto.len(),
        text.len(),
        count_proto(&proto, &mut scratch),
        hist.len(),
        count_proto(&hist, &mut scratch)
    );
    let mut g = c.benchmark_group("exposition_proto");
    g.throughput(Throughput::Bytes(proto.len() as u64));
    g.bench_with_input(
        BenchmarkId::new("protobuf", "counters"),
        &proto,
        |b, body| b.iter(|| count_proto(black_box(body), &mut scratch)),
    );
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_with_input(BenchmarkId::new("text", "counters"), &text, |b, body| {
        b.iter(|| count_text(black_box(body.as_bytes())))
    });
    g.throughput(Throughput::Bytes(hist.len() as u64));
    g.bench_with_input(
        BenchmarkId::new("protobuf", "native_histograms"),
        &hist,
        |b, body| b.iter(|| count_proto(black_box(body), &mut scratch)),
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
