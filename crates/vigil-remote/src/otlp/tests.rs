//! Translation tests: each rule of `translate` and `names` on small requests, against an
//! appender that records what it is given.

use super::translate::{self, Promote, Settings, TranslateError};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use vigil_config::{OtlpConfig, TranslationStrategy};
use vigil_model::histogram::{FloatHistogram, Span};
use vigil_model::{
    AppendError, Appender, Labels, SeriesRef, StorageError, Timestamp, is_stale_nan,
};

/// Records every append; refuses samples older than the newest of their series when
/// `strict`.
#[derive(Default)]
pub(crate) struct NullAppender {
    pub floats: Vec<(Labels, i64, f64, i64)>,
    pub hists: Vec<(Labels, i64, FloatHistogram, i64)>,
}

impl Appender for NullAppender {
    fn append(
        &mut self,
        _c: Option<SeriesRef>,
        labels: &Labels,
        t: Timestamp,
        v: f64,
    ) -> Result<SeriesRef, AppendError> {
        self.append_with_st(None, labels, t, v, 0)
    }
    fn append_with_st(
        &mut self,
        _c: Option<SeriesRef>,
        labels: &Labels,
        t: Timestamp,
        v: f64,
        st: Timestamp,
    ) -> Result<SeriesRef, AppendError> {
        if labels.metric_name().is_none_or(str::is_empty) {
            return Err(AppendError::EmptyLabels);
        }
        if self
            .floats
            .iter()
            .any(|(l, ot, _, _)| l == labels && *ot > t)
        {
            return Err(AppendError::OutOfOrder);
        }
        self.floats.push((labels.clone(), t, v, st));
        Ok(0)
    }
    fn append_histogram_with_st(
        &mut self,
        _c: Option<SeriesRef>,
        labels: &Labels,
        t: Timestamp,
        h: &FloatHistogram,
        st: Timestamp,
    ) -> Result<SeriesRef, AppendError> {
        self.hists.push((labels.clone(), t, h.clone(), st));
        Ok(0)
    }
    fn commit(self: Box<Self>) -> Result<(), StorageError> {
        Ok(())
    }
    fn rollback(self: Box<Self>) {}
}

impl NullAppender {
    fn value(&self, series: &str) -> f64 {
        let hits: Vec<_> = self
            .floats
            .iter()
            .filter(|f| f.0.to_string() == series)
            .collect();
        assert_eq!(hits.len(), 1, "{series} in {:#?}", self.names());
        hits[0].2
    }
    /// Asserts [`Self::value`] of each series.
    fn assert_values(&self, expected: &[(&str, f64)]) {
        for &(series, v) in expected {
            assert_eq!(self.value(series), v, "{series}");
        }
    }
    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.floats.iter().map(|f| f.0.to_string()).collect();
        v.extend(self.hists.iter().map(|h| h.0.to_string()));
        v
    }
}

fn s(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    })
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: s(v),
        ..Default::default()
    }
}

const T: u64 = 1_700_000_000_000_000_000;
const T_MS: i64 = 1_700_000_000_000;

fn request(resource: Vec<KeyValue>, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "my.lib".into(),
                    version: "1.2".into(),
                    attributes: vec![kv("lib.kind", "http")],
                    ..Default::default()
                }),
                metrics,
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn service() -> Vec<KeyValue> {
    vec![
        kv("service.name", "api"),
        kv("service.namespace", "shop"),
        kv("service.instance.id", "pod-1"),
        kv("deployment.environment", "prod"),
        kv("k8s.pod.name", "api-7f9"),
    ]
}

fn number(v: f64, attrs: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: T - 60_000_000_000,
        time_unix_nano: T,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

fn sum(
    name: &str,
    unit: &str,
    monotonic: bool,
    temporality: AggregationTemporality,
    pts: Vec<NumberDataPoint>,
) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(Data::Sum(Sum {
            data_points: pts,
            aggregation_temporality: temporality as i32,
            is_monotonic: monotonic,
        })),
        ..Default::default()
    }
}

fn gauge(name: &str, unit: &str, pts: Vec<NumberDataPoint>) -> Metric {
    metric(name, unit, Data::Gauge(Gauge { data_points: pts }))
}

fn metric(name: &str, unit: &str, data: Data) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(data),
        ..Default::default()
    }
}

fn run(
    req: &ExportMetricsServiceRequest,
    settings: &Settings,
) -> (NullAppender, translate::Outcome) {
    let mut app = NullAppender::default();
    let out = translate::translate(req, settings, &mut app).unwrap();
    (app, out)
}

/// Translates `metrics` of the service `api` (no other resource attribute).
fn run_api(metrics: Vec<Metric>, settings: &Settings) -> (NullAppender, translate::Outcome) {
    run(&request(vec![kv("service.name", "api")], metrics), settings)
}

fn with_strategy(st: TranslationStrategy) -> Settings {
    Settings::new(
        &OtlpConfig {
            translation_strategy: st.name().into(),
            ..Default::default()
        },
        300_000,
    )
}

#[test]
fn counter_and_gauge_with_job_instance_and_target_info() {
    let req = request(
        service(),
        vec![
            sum(
                "http.requests",
                "{request}",
                true,
                AggregationTemporality::Cumulative,
                vec![number(42.0, vec![kv("http.method", "GET")])],
            ),
            gauge("memory.usage", "By", vec![number(1024.0, vec![])]),
        ],
    );
    let (app, out) = run(&req, &Settings::default());
    app.assert_values(&[
        (
            r#"http_requests_total{http_method="GET", instance="pod-1", job="shop/api"}"#,
            42.0,
        ),
        (
            r#"memory_usage_bytes{instance="pod-1", job="shop/api"}"#,
            1024.0,
        ),
        // target_info: the non-identifying resource attributes, one sample (earliest == latest).
        (
            r#"target_info{deployment_environment="prod", instance="pod-1", job="shop/api", k8s_pod_name="api-7f9"}"#,
            1.0,
        ),
    ]);
    let c = app
        .floats
        .iter()
        .find(|f| f.0.metric_name() == Some("http_requests_total"))
        .unwrap();
    assert_eq!(
        (c.1, c.3),
        (T_MS, T_MS - 60_000),
        "timestamp and start timestamp in ms"
    );
    assert_eq!(out.points, 2);
    assert_eq!(out.samples, 3);
    assert_eq!(out.rejected, 0);
}

#[test]
fn every_strategy() {
    let req = request(
        service(),
        vec![
            sum(
                "http.requests",
                "",
                true,
                AggregationTemporality::Cumulative,
                vec![number(1.0, vec![kv("http.method", "GET")])],
            ),
            gauge("cpu.utilization", "1", vec![number(0.5, vec![])]),
        ],
    );
    let names = |st| {
        let (app, _) = run(&req, &with_strategy(st));
        let mut n: Vec<String> = app
            .floats
            .iter()
            .map(|f| {
                let l = &f.0;
                format!(
                    "{} {}",
                    l.metric_name().unwrap(),
                    l.iter()
                        .map(|x| x.name.as_str())
                        .filter(|n| *n != "__name__")
                        .collect::<Vec<_>>()
                        .join(",")
                )
            })
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        names(TranslationStrategy::UnderscoreEscapingWithSuffixes),
        [
            "cpu_utilization_ratio instance,job",
            "http_requests_total http_method,instance,job",
            "target_info deployment_environment,instance,job,k8s_pod_name"
        ]
    );
    assert_eq!(
        names(TranslationStrategy::UnderscoreEscapingWithoutSuffixes),
        [
            "cpu_utilization instance,job",
            "http_requests http_method,instance,job",
            "target_info deployment_environment,instance,job,k8s_pod_name"
        ]
    );
    assert_eq!(
        names(TranslationStrategy::NoUTF8EscapingWithSuffixes),
        [
            "cpu.utilization_ratio instance,job",
            "http.requests_total http.method,instance,job",
            "target_info deployment.environment,instance,job,k8s.pod.name"
        ]
    );
    assert_eq!(
        names(TranslationStrategy::NoTranslation),
        [
            "cpu.utilization instance,job",
            "http.requests http.method,instance,job",
            "target_info deployment.environment,instance,job,k8s.pod.name"
        ]
    );
}

#[test]
fn non_monotonic_sum_is_a_gauge_without_total() {
    let req = request(
        vec![kv("service.name", "api")],
        vec![sum(
            "queue.size",
            "{item}",
            false,
            AggregationTemporality::Cumulative,
            vec![number(-3.0, vec![])],
        )],
    );
    let (app, _) = run(&req, &Settings::default());
    assert_eq!(app.value(r#"queue_size{job="api"}"#), -3.0);
    // Only service.name: no other resource attribute, so no target_info.
    assert_eq!(app.names(), [r#"queue_size{job="api"}"#]);
}

#[test]
fn classic_histogram_series() {
    let h = metric(
        "http.server.duration",
        "s",
        Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                time_unix_nano: T,
                count: 10,
                sum: Some(4.5),
                bucket_counts: vec![2, 3, 5],
                explicit_bounds: vec![0.1, 1.0],
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        }),
    );
    let (app, out) = run_api(vec![h], &Settings::default());
    app.assert_values(&[
        (r#"http_server_duration_seconds_sum{job="api"}"#, 4.5),
        (r#"http_server_duration_seconds_count{job="api"}"#, 10.0),
        (
            r#"http_server_duration_seconds_bucket{job="api", le="0.1"}"#,
            2.0,
        ),
        (
            r#"http_server_duration_seconds_bucket{job="api", le="1"}"#,
            5.0,
        ),
        (
            r#"http_server_duration_seconds_bucket{job="api", le="+Inf"}"#,
            10.0,
        ),
    ]);
    assert_eq!(out.samples, 5);
}

#[test]
fn histogram_as_nhcb() {
    let p = HistogramDataPoint {
        time_unix_nano: T,
        count: 10,
        sum: Some(4.5),
        bucket_counts: vec![0, 3, 0, 7],
        explicit_bounds: vec![0.1, 1.0, 2.0],
        ..Default::default()
    };
    let h = translate::custom_buckets_histogram(&p);
    assert_eq!(h.schema, -53);
    assert_eq!(h.custom_values.as_deref(), Some(&[0.1, 1.0, 2.0][..]));
    // First non-empty bucket starts the span; the one-bucket gap is filled with a zero.
    assert_eq!(
        h.positive_spans,
        [Span {
            offset: 1,
            length: 3
        }]
    );
    assert_eq!(h.positive_buckets, [3.0, 0.0, 7.0]);
    h.validate().unwrap();
    let m = metric(
        "latency",
        "ms",
        Data::Histogram(Histogram {
            data_points: vec![p],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        }),
    );
    let settings = Settings {
        convert_histograms_to_nhcb: true,
        ..Default::default()
    };
    let (app, out) = run_api(vec![m], &settings);
    assert_eq!(app.hists.len(), 1);
    assert_eq!(
        app.hists[0].0.to_string(),
        r#"latency_milliseconds{job="api"}"#
    );
    assert_eq!(out.histograms, 1);
}

fn exp_point(scale: i32, offset: i32, counts: Vec<u64>) -> ExponentialHistogramDataPoint {
    let total: u64 = counts.iter().sum();
    ExponentialHistogramDataPoint {
        time_unix_nano: T,
        count: total + 1,
        sum: Some(12.5),
        scale,
        zero_count: 1,
        positive: Some(Buckets {
            offset,
            bucket_counts: counts,
        }),
        ..Default::default()
    }
}

#[test]
fn exponential_histogram_layout() {
    // OTLP bucket k is Prometheus bucket k+1.
    let h = translate::exponential_histogram(&exp_point(3, -2, vec![1, 2, 0, 0, 0, 0, 4]), false)
        .unwrap();
    assert_eq!(h.schema, 3);
    assert_eq!(h.zero_count, 1.0);
    assert_eq!(h.zero_threshold, 1e-128);
    assert_eq!(h.count, 8.0);
    assert_eq!(
        h.positive_spans,
        [
            Span {
                offset: -1,
                length: 2
            },
            Span {
                offset: 4,
                length: 1
            }
        ]
    );
    assert_eq!(h.positive_buckets, [1.0, 2.0, 4.0]);
    h.validate().unwrap();
}

#[test]
fn exponential_scale_above_8_is_merged_down() {
    // Scale 10 → 8: four OTLP buckets per Prometheus bucket.
    let p = exp_point(10, 0, vec![1, 1, 1, 1, 2, 2, 2, 2, 5]);
    let h = translate::exponential_histogram(&p, false).unwrap();
    assert_eq!(h.schema, 8);
    assert_eq!(
        h.positive_spans,
        [Span {
            offset: 1,
            length: 3
        }]
    );
    assert_eq!(h.positive_buckets, [4.0, 8.0, 5.0]);
    h.validate().unwrap();
    // Negative offsets shift arithmetically: OTLP -4..-1 at scale 9 → Prometheus -1 and 0.
    let h = translate::exponential_histogram(&exp_point(9, -4, vec![1, 1, 1, 1]), false).unwrap();
    assert_eq!(
        h.positive_spans,
        [Span {
            offset: -1,
            length: 2
        }]
    );
    assert_eq!(h.positive_buckets, [2.0, 2.0]);
    assert!(translate::exponential_histogram(&exp_point(-5, 0, vec![1]), false).is_err());
}

#[test]
fn exponential_histogram_metric_is_native() {
    let m = metric(
        "request.latency",
        "s",
        Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![exp_point(2, 0, vec![3, 4]), exp_point(-9, 0, vec![1])],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        }),
    );
    let (app, out) = run_api(vec![m], &Settings::default());
    // The second point has an unusable scale: its metric's remaining points are rejected.
    assert_eq!(app.hists.len(), 1);
    assert_eq!(
        app.hists[0].0.to_string(),
        r#"request_latency_seconds{job="api"}"#
    );
    assert_eq!(out.rejected, 2);
    assert!(
        out.messages[0].contains("Scale must be >= -4"),
        "{:?}",
        out.messages
    );
}

#[test]
fn summary_series() {
    let m = metric(
        "rpc.duration",
        "ms",
        Data::Summary(Summary {
            data_points: vec![SummaryDataPoint {
                time_unix_nano: T,
                count: 7,
                sum: 70.0,
                quantile_values: vec![
                    ValueAtQuantile {
                        quantile: 0.5,
                        value: 9.0,
                    },
                    ValueAtQuantile {
                        quantile: 0.99,
                        value: 20.0,
                    },
                ],
                ..Default::default()
            }],
        }),
    );
    let (app, _) = run_api(vec![m], &Settings::default());
    app.assert_values(&[
        (r#"rpc_duration_milliseconds_sum{job="api"}"#, 70.0),
        (r#"rpc_duration_milliseconds_count{job="api"}"#, 7.0),
        (
            r#"rpc_duration_milliseconds{job="api", quantile="0.5"}"#,
            9.0,
        ),
        (
            r#"rpc_duration_milliseconds{job="api", quantile="0.99"}"#,
            20.0,
        ),
    ]);
}

#[test]
fn no_recorded_value_is_a_staleness_marker() {
    let mut p = number(5.0, vec![]);
    p.flags = 1;
    let (app, _) = run(
        &request(vec![], vec![gauge("g", "", vec![p])]),
        &Settings::default(),
    );
    assert!(is_stale_nan(app.floats[0].2));
    let mut e = exp_point(0, 0, vec![1]);
    e.flags = 1;
    let h = translate::exponential_histogram(&e, false).unwrap();
    assert!(is_stale_nan(h.sum));
}

#[test]
fn delta_refuses_the_request() {
    let req = request(
        service(),
        vec![
            gauge("ok", "", vec![number(1.0, vec![])]),
            sum(
                "d",
                "",
                true,
                AggregationTemporality::Delta,
                vec![number(1.0, vec![])],
            ),
        ],
    );
    let mut app = NullAppender::default();
    let e = translate::translate(&req, &Settings::default(), &mut app).unwrap_err();
    assert_eq!(
        e,
        TranslateError::Delta {
            metric: "d".into(),
            count: 1
        }
    );
    assert!(
        e.to_string()
            .contains("delta temporality needs --enable-feature=otlp-deltatocumulative")
    );
    assert!(app.floats.is_empty(), "nothing appended before the refusal");
    // Unspecified temporality is refused per metric, as Prometheus does.
    let req = request(
        vec![],
        vec![
            sum(
                "u",
                "",
                true,
                AggregationTemporality::Unspecified,
                vec![number(1.0, vec![])],
            ),
            gauge("ok", "", vec![number(1.0, vec![])]),
        ],
    );
    let (app, out) = run(&req, &Settings::default());
    assert_eq!(app.names(), ["ok{}"]);
    assert_eq!(out.rejected, 1);
}

#[test]
fn out_of_order_is_an_error_for_the_request() {
    let mut old = number(1.0, vec![]);
    old.time_unix_nano = T - 1_000_000_000;
    let req = request(vec![], vec![gauge("g", "", vec![number(1.0, vec![]), old])]);
    let mut app = NullAppender::default();
    let e = translate::translate(&req, &Settings::default(), &mut app).unwrap_err();
    assert!(
        matches!(
            e,
            TranslateError::Append {
                source: AppendError::OutOfOrder,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn promoted_and_ignored_resource_attributes() {
    let req = request(
        service(),
        vec![gauge(
            "g",
            "",
            vec![number(1.0, vec![kv("k8s.pod.name", "from-point")])],
        )],
    );
    let promote = |p: Promote, keep: bool| {
        let st = Settings {
            promote: p,
            keep_identifying_resource_attributes: keep,
            ..Default::default()
        };
        run(&req, &st).0.names()
    };
    let listed = promote(
        Promote::Listed(
            [
                "deployment.environment".to_string(),
                "k8s.pod.name".to_string(),
            ]
            .into(),
        ),
        false,
    );
    // A point attribute wins over a promoted resource attribute of the same name.
    assert_eq!(
        listed[0],
        r#"g{deployment_environment="prod", instance="pod-1", job="shop/api", k8s_pod_name="from-point"}"#
    );
    let all = promote(
        Promote::AllExcept(
            [
                "k8s.pod.name".to_string(),
                "service.instance.id".to_string(),
            ]
            .into(),
        ),
        false,
    );
    assert_eq!(
        all[0],
        r#"g{deployment_environment="prod", instance="pod-1", job="shop/api", k8s_pod_name="from-point", service_name="api", service_namespace="shop"}"#
    );
    let kept = promote(Promote::None, true);
    assert_eq!(
        kept[1],
        r#"target_info{deployment_environment="prod", instance="pod-1", job="shop/api", k8s_pod_name="api-7f9", service_instance_id="pod-1", service_name="api", service_namespace="shop"}"#
    );
}

#[test]
fn scope_metadata_labels() {
    let req = request(
        vec![kv("service.name", "api")],
        vec![gauge("g", "", vec![number(1.0, vec![])])],
    );
    let st = Settings {
        promote_scope_metadata: true,
        ..Default::default()
    };
    assert_eq!(
        run(&req, &st).0.names(),
        [
            r#"g{job="api", otel_scope_lib_kind="http", otel_scope_name="my.lib", otel_scope_schema_url="https://opentelemetry.io/schemas/1.26.0", otel_scope_version="1.2"}"#
        ]
    );
    assert_eq!(
        run(&req, &Settings::default()).0.names(),
        [r#"g{job="api"}"#]
    );
}

#[test]
fn colliding_attribute_names_are_joined() {
    let req = request(
        vec![],
        vec![gauge(
            "g",
            "",
            vec![number(1.0, vec![kv("a.b", "x"), kv("a_b", "y")])],
        )],
    );
    let st = Settings::new(
        &OtlpConfig {
            label_name_preserve_multiple_underscores: false,
            ..Default::default()
        },
        300_000,
    );
    assert_eq!(run(&req, &st).0.names(), [r#"g{a_b="x;y"}"#]);
    let req = request(
        vec![],
        vec![gauge(
            "g",
            "",
            vec![number(
                1.0,
                vec![kv("_x", "1"), kv("2y", "2"), kv("__name__", "no")],
            )],
        )],
    );
    assert_eq!(
        run(&req, &Settings::default()).0.names(),
        [r#"g{key_2y="2", key_x="1"}"#]
    );
}

#[test]
fn target_info_spans_the_points_every_half_lookback() {
    let mut early = number(1.0, vec![]);
    early.time_unix_nano = T - 6 * 60 * 1_000_000_000;
    let req = request(
        service(),
        vec![gauge("g", "", vec![early, number(2.0, vec![])])],
    );
    let (app, _) = run(&req, &Settings::default());
    let times: Vec<i64> = app
        .floats
        .iter()
        .filter(|f| f.0.metric_name() == Some("target_info"))
        .map(|f| f.1)
        .collect();
    let start = T_MS - 360_000;
    assert_eq!(times, [start, start + 150_000, start + 300_000, T_MS]);
}

#[test]
fn attribute_values_as_strings() {
    use any_value::Value as V;
    let v = |x| translate::value_string(Some(&AnyValue { value: Some(x) }));
    assert_eq!(v(V::IntValue(-3)), "-3");
    assert_eq!(v(V::BoolValue(true)), "true");
    assert_eq!(v(V::DoubleValue(1.5)), "1.5");
    assert_eq!(v(V::DoubleValue(1e21)), "1e+21");
    assert_eq!(v(V::DoubleValue(1e-7)), "1e-7");
    assert_eq!(v(V::BytesValue(b"hi!?".to_vec())), "aGkhPw==");
    assert_eq!(translate::value_string(None), "");
    assert_eq!(translate::go_float(0.25), "0.25");
    assert_eq!(translate::go_float(1e-7), "0.0000001");
    assert_eq!(translate::go_float(100.0), "100");
}

#[test]
fn unusable_names_are_partial_rejections() {
    let req = request(
        vec![],
        vec![
            gauge("...", "", vec![number(1.0, vec![]), number(2.0, vec![])]),
            gauge("ok", "", vec![number(1.0, vec![])]),
        ],
    );
    let (app, out) = run(&req, &Settings::default());
    assert_eq!(app.names(), ["ok{}"]);
    assert_eq!(out.rejected, 2);
    assert_eq!(out.points, 3);
    assert!(
        out.messages[0].contains("resulted in empty name"),
        "{:?}",
        out.messages
    );
}

#[test]
fn target_info_samples_are_bounded() {
    let mut ancient = number(1.0, vec![]);
    ancient.time_unix_nano = 0;
    let req = request(
        service(),
        vec![gauge("g", "", vec![ancient, number(2.0, vec![])])],
    );
    let (app, _) = run(&req, &Settings::default());
    let times: Vec<i64> = app
        .floats
        .iter()
        .filter(|f| f.0.metric_name() == Some("target_info"))
        .map(|f| f.1)
        .collect();
    assert!(times.len() <= 1002, "{}", times.len());
    assert_eq!(*times.last().unwrap(), T_MS);
    assert!(times[0] > T_MS - 1001 * 150_000);
}

#[test]
fn exponential_offsets_out_of_range_are_refused() {
    for offset in [i32::MAX, i32::MAX - 3, i32::MIN] {
        let p = exp_point(0, offset, vec![1, 2, 3]);
        let e = translate::exponential_histogram(&p, false).unwrap_err();
        assert!(e.contains("out of range"), "{e}");
    }
    let p = exp_point(0, i32::MIN + 2, vec![1, 2, 3]);
    translate::exponential_histogram(&p, false)
        .unwrap()
        .validate()
        .unwrap();
}

mod generated {
    //! Random well-formed requests (any names, units, attributes, scales, offsets, bucket
    //! layouts, flags and temporalities) through translation under every strategy and
    //! option: never a panic, every point accounted for, every histogram valid.
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z._]{0,12}",
            "[\\PC]{0,6}",
            Just("__name__".to_string()),
            Just("service.name".to_string()),
            Just("1".to_string()),
            Just("By/s".to_string()),
        ]
    }

    fn attrs() -> impl Strategy<Value = Vec<KeyValue>> {
        proptest::collection::vec((text(), text()).prop_map(|(k, v)| kv(&k, &v)), 0..4)
    }

    fn number_point() -> impl Strategy<Value = NumberDataPoint> {
        (attrs(), any::<u64>(), any::<u64>(), any::<f64>(), 0u32..3).prop_map(
            |(a, st, t, v, flags)| NumberDataPoint {
                attributes: a,
                start_time_unix_nano: st,
                time_unix_nano: t,
                value: Some(number_data_point::Value::AsDouble(v)),
                flags,
                ..Default::default()
            },
        )
    }

    fn hist_point() -> impl Strategy<Value = HistogramDataPoint> {
        (
            attrs(),
            any::<u64>(),
            proptest::collection::vec(0u64..1000, 0..6),
            proptest::collection::vec(-10.0f64..10.0, 0..6),
            proptest::option::of(any::<f64>()),
            0u32..3,
        )
            .prop_map(|(a, t, counts, mut bounds, sum, flags)| {
                bounds.sort_by(|x, y| x.partial_cmp(y).unwrap());
                HistogramDataPoint {
                    attributes: a,
                    time_unix_nano: t,
                    count: counts.iter().sum(),
                    bucket_counts: counts,
                    explicit_bounds: bounds,
                    sum,
                    flags,
                    ..Default::default()
                }
            })
    }

    fn exp_point_any() -> impl Strategy<Value = ExponentialHistogramDataPoint> {
        (
            attrs(),
            any::<u64>(),
            -12i32..24,
            prop_oneof![any::<i32>(), -50i32..50],
            proptest::collection::vec(0u64..100, 0..40),
            0u64..5,
            0u32..3,
        )
            .prop_map(|(a, t, scale, offset, counts, zero, flags)| {
                ExponentialHistogramDataPoint {
                    attributes: a,
                    time_unix_nano: t,
                    count: counts.iter().sum::<u64>() + zero,
                    zero_count: zero,
                    scale,
                    positive: Some(Buckets {
                        offset,
                        bucket_counts: counts.clone(),
                    }),
                    negative: Some(Buckets {
                        offset: offset.wrapping_neg(),
                        bucket_counts: counts,
                    }),
                    flags,
                    sum: Some(1.0),
                    ..Default::default()
                }
            })
    }

    fn metric() -> impl Strategy<Value = Metric> {
        let temporality = prop_oneof![Just(0i32), Just(1), Just(2), Just(7)];
        let data = prop_oneof![
            proptest::collection::vec(number_point(), 0..3)
                .prop_map(|p| Data::Gauge(Gauge { data_points: p })),
            (
                proptest::collection::vec(number_point(), 0..3),
                temporality.clone(),
                any::<bool>()
            )
                .prop_map(|(p, t, m)| Data::Sum(Sum {
                    data_points: p,
                    aggregation_temporality: t,
                    is_monotonic: m
                })),
            (
                proptest::collection::vec(hist_point(), 0..3),
                temporality.clone()
            )
                .prop_map(|(p, t)| Data::Histogram(Histogram {
                    data_points: p,
                    aggregation_temporality: t
                })),
            (
                proptest::collection::vec(exp_point_any(), 0..3),
                temporality
            )
                .prop_map(|(p, t)| Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: p,
                    aggregation_temporality: t
                })),
            proptest::collection::vec((attrs(), any::<u64>(), any::<f64>()), 0..3).prop_map(|v| {
                Data::Summary(Summary {
                    data_points: v
                        .into_iter()
                        .map(|(a, t, q)| SummaryDataPoint {
                            attributes: a,
                            time_unix_nano: t,
                            quantile_values: vec![ValueAtQuantile {
                                quantile: q,
                                value: 1.0,
                            }],
                            ..Default::default()
                        })
                        .collect(),
                })
            }),
        ];
        (text(), text(), proptest::option::of(data)).prop_map(|(name, unit, data)| Metric {
            name,
            unit,
            data,
            ..Default::default()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn random_requests_translate_without_panicking(
            resource_attrs in attrs(),
            metrics in proptest::collection::vec(metric(), 0..5),
            strategy in 0usize..4,
            nhcb in any::<bool>(),
            scope in any::<bool>(),
            promote_all in any::<bool>(),
        ) {
            let mut req = request(resource_attrs, metrics);
            let cfg = OtlpConfig {
                translation_strategy: TranslationStrategy::ALL[strategy].name().into(),
                convert_histograms_to_nhcb: nhcb,
                promote_scope_metadata: scope,
                promote_all_resource_attributes: promote_all,
                ..Default::default()
            };
            let settings = Settings::new(&cfg, 300_000);
            let points = super::super::decode::count_points(&req);
            let mut app = NullAppender::default();
            match translate::translate(&req, &settings, &mut app) {
                Ok(out) => {
                    prop_assert_eq!(out.points, points);
                    prop_assert!(out.rejected <= points);
                    for (_, _, h, _) in &app.hists {
                        prop_assert!(h.validate().is_ok(), "{:?}", h);
                    }
                }
                Err(TranslateError::Delta { count, .. }) => prop_assert!(count > 0),
                Err(TranslateError::Append { .. }) => {}
            }
            // The same request through delta-to-cumulative first.
            let d = super::super::delta::DeltaToCumulative::new();
            let dropped = d.convert(&mut req, 1);
            prop_assert!(dropped.points <= points);
            let mut app = NullAppender::default();
            let _ = translate::translate(&req, &settings, &mut app);
        }
    }
}
