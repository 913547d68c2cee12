//! OTLP receiver throughput beside the remote-write receiver's: data points per second
//! through decoding and translation into labelled samples, the appender being a counter (the
//! storage behind both receivers is the same `Appender` path, measured by the ingest
//! benchmarks, so this isolates what differs: the wire format and the translation).
//!
//! Run: `cargo bench -p vigil-benches --bench otlp`. Each request holds 1,000 points: 100
//! metrics × 10 points with 3 attributes each under one resource (plus `target_info`), and the
//! remote-write request the same 1,000 series (6 labels each) with one sample. The histogram
//! case is 100 explicit-bucket points with 10 bounds (13 series each).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::hint::black_box;
use vigil_model::histogram::FloatHistogram;
use vigil_model::{AppendError, Appendable, Appender, Labels, SeriesRef, StorageError, Timestamp};
use vigil_remote::otlp::decode::{self, Format};
use vigil_remote::otlp::translate::{self, Settings};
use vigil_remote::{ServerMetrics, codec, prompb};

#[derive(Default)]
struct Count(u64);

impl Appender for Count {
    fn append(
        &mut self,
        _: Option<SeriesRef>,
        l: &Labels,
        _: Timestamp,
        _: f64,
    ) -> Result<SeriesRef, AppendError> {
        self.0 += l.len() as u64;
        Ok(0)
    }
    fn append_histogram(
        &mut self,
        _: Option<SeriesRef>,
        l: &Labels,
        _: Timestamp,
        _: &FloatHistogram,
    ) -> Result<SeriesRef, AppendError> {
        self.0 += l.len() as u64;
        Ok(0)
    }
    fn commit(self: Box<Self>) -> Result<(), StorageError> {
        black_box(self.0);
        Ok(())
    }
    fn rollback(self: Box<Self>) {}
}

struct CountDb;

impl Appendable for CountDb {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(Count::default())
    }
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

const T: u64 = 1_700_000_000_000_000_000;

fn otlp_request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "api"),
                    kv("service.namespace", "shop"),
                    kv("service.instance.id", "api-0"),
                    kv("k8s.pod.name", "api-0-abc"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

fn counters() -> ExportMetricsServiceRequest {
    let metrics = (0..100)
        .map(|m| Metric {
            name: format!("app.requests.{m}"),
            unit: "{request}".into(),
            data: Some(Data::Sum(Sum {
                data_points: (0..10)
                    .map(|p| NumberDataPoint {
                        attributes: vec![
                            kv("http.method", "GET"),
                            kv("http.route", &format!("/r/{p}")),
                            kv("http.status_code", "200"),
                        ],
                        start_time_unix_nano: T - 1_000_000_000,
                        time_unix_nano: T,
                        value: Some(number_data_point::Value::AsDouble(p as f64)),
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        })
        .collect();
    otlp_request(metrics)
}

fn histograms() -> ExportMetricsServiceRequest {
    let metrics = (0..10)
        .map(|m| Metric {
            name: format!("app.latency.{m}"),
            unit: "s".into(),
            data: Some(Data::Histogram(Histogram {
                data_points: (0..10)
                    .map(|p| HistogramDataPoint {
                        attributes: vec![kv("http.route", &format!("/r/{p}"))],
                        time_unix_nano: T,
                        count: 100,
                        sum: Some(12.0),
                        bucket_counts: vec![10; 11],
                        explicit_bounds: (1..=10).map(|b| b as f64 / 10.0).collect(),
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        })
        .collect();
    otlp_request(metrics)
}

fn remote_write() -> Vec<u8> {
    let l = |n: &str, v: &str| prompb::Label {
        name: n.into(),
        value: v.into(),
    };
    let req = prompb::WriteRequest {
        timeseries: (0..1000)
            .map(|i| prompb::TimeSeries {
                labels: vec![
                    l("__name__", &format!("app_requests_{}_total", i / 10)),
                    l("http_method", "GET"),
                    l("http_route", &format!("/r/{}", i % 10)),
                    l("http_status_code", "200"),
                    l("instance", "api-0"),
                    l("job", "shop/api"),
                ],
                samples: vec![prompb::Sample {
                    value: i as f64,
                    timestamp: 1_700_000_000_000,
                }],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    codec::snappy_compress(&req.encode_to_vec())
}

fn bench(c: &mut Criterion) {
    let settings = Settings::default();
    let mut g = c.benchmark_group("receivers");
    g.throughput(Throughput::Elements(1000));
    let rw = remote_write();
    let metrics = ServerMetrics::default();
    g.bench_function("remote_write_decode_append", |b| {
        b.iter(|| {
            let req: prompb::WriteRequest = codec::decode_snappy(black_box(&rw), 1 << 30).unwrap();
            vigil_remote::server::append_request(&CountDb, &req, &metrics).unwrap()
        })
    });
    let pb = counters().encode_to_vec();
    g.bench_function("otlp_protobuf_decode_translate", |b| {
        b.iter(|| {
            let req = decode::decode(black_box(&pb), Format::Protobuf, "", 1 << 30).unwrap();
            let mut app = Count::default();
            translate::translate(&req, &settings, &mut app).unwrap()
        })
    });
    let json = serde_json::to_vec(&counters()).unwrap();
    g.bench_function("otlp_json_decode_translate", |b| {
        b.iter(|| {
            let req = decode::decode(black_box(&json), Format::Json, "", 1 << 30).unwrap();
            let mut app = Count::default();
            translate::translate(&req, &settings, &mut app).unwrap()
        })
    });
    g.bench_function("otlp_protobuf_decode_only", |b| {
        b.iter(|| decode::decode(black_box(&pb), Format::Protobuf, "", 1 << 30).unwrap())
    });
    g.throughput(Throughput::Elements(100));
    let hist = histograms().encode_to_vec();
    g.bench_function("otlp_histograms_decode_translate", |b| {
        b.iter(|| {
            let req = decode::decode(black_box(&hist), Format::Protobuf, "", 1 << 30).unwrap();
            let mut app = Count::default();
            translate::translate(&req, &settings, &mut app).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
