use super::dto;
use super::dto::*;
use super::{Entry, ProtoOptions, ProtoParser, ProtoScratch, encode_delimited, openmetrics_float};
use dto::MetricType;
use prost::Message;

fn lp(n: &str, v: &str) -> LabelPair {
    LabelPair {
        name: n.into(),
        value: v.into(),
    }
}

fn fam(name: &str, t: MetricType, metric: Vec<Metric>) -> MetricFamily {
    MetricFamily {
        name: name.into(),
        help: format!("{name} help"),
        r#type: t as i32,
        metric,
        unit: String::new(),
    }
}

/// Entries rendered as strings, for compact assertions.
fn render(body: &[u8], opts: ProtoOptions) -> Vec<String> {
    let mut scratch = ProtoScratch::default();
    ProtoParser::new(body, opts, &mut scratch)
        .map(|e| match e {
            Ok(Entry::Help { family, help }) => format!("HELP {family} {help}"),
            Ok(Entry::Type { family, kind }) => format!("TYPE {family} {kind}"),
            Ok(Entry::Unit { family, unit }) => format!("UNIT {family} {unit}"),
            Ok(Entry::Sample(s)) => {
                let labels: Vec<String> = s.labels().map(|(k, v)| format!("{k}={v}")).collect();
                format!(
                    "{} [{}] {} {:?} {}",
                    String::from_utf8_lossy(s.series),
                    labels.join(","),
                    s.value,
                    s.timestamp_ms,
                    s.name
                )
            }
            Ok(Entry::Histogram(h)) => {
                let n = &h.histogram;
                format!(
                    "H {} s={} zt={} zc={} c={} sum={} f={} g={} p={:?}/{:?} n={:?}/{:?}",
                    String::from_utf8_lossy(h.series),
                    n.schema,
                    n.zero_threshold,
                    n.zero_count,
                    n.count,
                    n.sum,
                    n.float_counts,
                    n.gauge,
                    n.positive_spans
                        .iter()
                        .map(|s| (s.offset, s.length))
                        .collect::<Vec<_>>(),
                    n.positive_counts,
                    n.negative_spans
                        .iter()
                        .map(|s| (s.offset, s.length))
                        .collect::<Vec<_>>(),
                    n.negative_counts
                )
            }
            Err(e) => format!("ERR {e}"),
        })
        .collect()
}

fn native_hist() -> Histogram {
    Histogram {
        sample_count: 5,
        sample_sum: 12.5,
        schema: 3,
        zero_threshold: 0.001,
        zero_count: 1,
        positive_span: vec![
            BucketSpan {
                offset: 0,
                length: 2,
            },
            BucketSpan {
                offset: 2,
                length: 1,
            },
        ],
        positive_delta: vec![1, 1, -1],
        negative_span: vec![BucketSpan {
            offset: -1,
            length: 1,
        }],
        negative_delta: vec![1],
        bucket: vec![
            Bucket {
                cumulative_count: 2,
                upper_bound: 1.0,
                ..Default::default()
            },
            Bucket {
                cumulative_count: 4,
                upper_bound: 2.5,
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

#[test]
fn counters_gauges_untyped_and_summaries() {
    let body = encode_delimited(&[
        fam(
            "http_requests_total",
            MetricType::Counter,
            vec![Metric {
                label: vec![lp("code", "200"), lp("path", "/a \"b\"\n")],
                counter: Some(Counter {
                    value: 1027.0,
                    ..Default::default()
                }),
                timestamp_ms: 1395066363000,
                ..Default::default()
            }],
        ),
        fam(
            "temp",
            MetricType::Gauge,
            vec![Metric {
                gauge: Some(Gauge { value: -3.5 }),
                ..Default::default()
            }],
        ),
        fam(
            "u",
            MetricType::Untyped,
            vec![Metric {
                untyped: Some(Untyped { value: 7.0 }),
                ..Default::default()
            }],
        ),
        fam(
            "rpc",
            MetricType::Summary,
            vec![Metric {
                summary: Some(Summary {
                    sample_count: 9,
                    sample_sum: 4.5,
                    quantile: vec![
                        Quantile {
                            quantile: 0.5,
                            value: 0.1,
                        },
                        Quantile {
                            quantile: 1.0,
                            value: 2.0,
                        },
                    ],
                    ..Default::default()
                }),
                ..Default::default()
            }],
        ),
    ]);
    assert_eq!(
        render(&body, ProtoOptions::default()),
        [
            "HELP http_requests_total http_requests_total help",
            "TYPE http_requests_total counter",
            "http_requests_total{code=\"200\",path=\"/a \\\"b\\\"\\n\"} [code=200,path=/a \"b\"\n] 1027 Some(1395066363000) http_requests_total",
            "HELP temp temp help",
            "TYPE temp gauge",
            "temp [] -3.5 None temp",
            "HELP u u help",
            "TYPE u unknown",
            "u [] 7 None u",
            "HELP rpc rpc help",
            "TYPE rpc summary",
            "rpc_count [] 9 None rpc_count",
            "rpc_sum [] 4.5 None rpc_sum",
            "rpc{quantile=\"0.5\"} [quantile=0.5] 0.1 None rpc",
            "rpc{quantile=\"1.0\"} [quantile=1.0] 2 None rpc",
        ]
    );
}

#[test]
fn classic_histogram_gets_inf_bucket() {
    let mut h = native_hist();
    h.positive_span.clear();
    h.negative_span.clear();
    h.zero_threshold = 0.0;
    h.zero_count = 0;
    let body = encode_delimited(&[fam(
        "lat",
        MetricType::Histogram,
        vec![Metric {
            label: vec![lp("a", "b")],
            histogram: Some(h),
            ..Default::default()
        }],
    )]);
    let got = render(&body, ProtoOptions::default());
    assert_eq!(
        &got[2..],
        [
            "lat_count{a=\"b\"} [a=b] 5 None lat_count",
            "lat_sum{a=\"b\"} [a=b] 12.5 None lat_sum",
            "lat_bucket{a=\"b\",le=\"1.0\"} [a=b,le=1.0] 2 None lat_bucket",
            "lat_bucket{a=\"b\",le=\"2.5\"} [a=b,le=2.5] 4 None lat_bucket",
            "lat_bucket{a=\"b\",le=\"+Inf\"} [a=b,le=+Inf] 5 None lat_bucket",
        ]
    );
}

#[test]
fn native_histogram_alone_with_classic_or_ignored() {
    let body = encode_delimited(&[fam(
        "lat",
        MetricType::Histogram,
        vec![Metric {
            histogram: Some(native_hist()),
            ..Default::default()
        }],
    )]);
    let native = "H lat s=3 zt=0.001 zc=1 c=5 sum=12.5 f=false g=false p=[(0, 2), (2, 1)]/[1.0, 2.0, 1.0] n=[(-1, 1)]/[1.0]";
    let got = render(&body, ProtoOptions::default());
    assert_eq!(&got[2..], [native]);
    let both = render(
        &body,
        ProtoOptions {
            native_histograms: true,
            keep_classic: true,
        },
    );
    assert_eq!(both[2], native);
    assert_eq!(
        both.len(),
        3 + 5,
        "native, then _count, _sum and three buckets"
    );
    assert!(both[3].starts_with("lat_count [] 5"), "{both:?}");
    let classic = render(
        &body,
        ProtoOptions {
            native_histograms: false,
            keep_classic: false,
        },
    );
    assert_eq!(classic.len(), 2 + 5);
    assert!(classic.iter().all(|l| !l.starts_with("H ")));
}

#[test]
fn float_and_gauge_native_histograms() {
    let h = Histogram {
        sample_count_float: 2.5,
        sample_sum: 1.0,
        schema: -1,
        zero_count_float: 0.5,
        positive_span: vec![BucketSpan {
            offset: 1,
            length: 2,
        }],
        positive_count: vec![1.5, 0.5],
        ..Default::default()
    };
    let body = encode_delimited(&[fam(
        "g",
        MetricType::GaugeHistogram,
        vec![Metric {
            histogram: Some(h),
            timestamp_ms: 5,
            ..Default::default()
        }],
    )]);
    let got = render(&body, ProtoOptions::default());
    assert_eq!(got[1], "TYPE g gaugehistogram");
    assert_eq!(
        got[2],
        "H g s=-1 zt=0 zc=0.5 c=2.5 sum=1 f=true g=true p=[(1, 2)]/[1.5, 0.5] n=[]/[]"
    );
}

#[test]
fn an_empty_native_histogram_is_marked_by_a_zero_length_span() {
    let h = Histogram {
        schema: 3,
        positive_span: vec![BucketSpan {
            offset: 0,
            length: 0,
        }],
        ..Default::default()
    };
    let body = encode_delimited(&[fam(
        "e",
        MetricType::Histogram,
        vec![Metric {
            histogram: Some(h),
            ..Default::default()
        }],
    )]);
    assert!(render(&body, ProtoOptions::default())[2].starts_with("H e s=3 "));
}

#[test]
fn utf8_names_are_quoted_in_the_series_text() {
    let body = encode_delimited(&[fam(
        "my.metric",
        MetricType::Gauge,
        vec![Metric {
            label: vec![lp("la.bel", "v")],
            gauge: Some(Gauge { value: 1.0 }),
            ..Default::default()
        }],
    )]);
    let got = render(&body, ProtoOptions::default());
    assert_eq!(
        got[2],
        "{\"my.metric\",\"la.bel\"=\"v\"} [la.bel=v] 1 None my.metric"
    );
}

#[test]
fn errors_name_the_family() {
    let mut h = native_hist();
    h.positive_delta.pop();
    let good = fam(
        "ok",
        MetricType::Gauge,
        vec![Metric {
            gauge: Some(Gauge { value: 1.0 }),
            ..Default::default()
        }],
    );
    let bad = fam(
        "lat",
        MetricType::Histogram,
        vec![Metric {
            histogram: Some(h),
            ..Default::default()
        }],
    );
    let body = encode_delimited(&[good.clone(), bad]);
    let got = render(&body, ProtoOptions::default());
    assert_eq!(got.len(), 6, "{got:?}");
    assert_eq!(
        got[5],
        format!(
            "ERR line 2:{}: histogram \"lat\": positive side: spans require 3 buckets, have 2",
            good.encoded_len() + 2
        )
    );
    // Truncated body, unknown type, bad length.
    let mut body = encode_delimited(std::slice::from_ref(&good));
    body.pop();
    assert!(render(&body, ProtoOptions::default())[0].starts_with("ERR line 1:1: "));
    let mut t = good.clone();
    t.r#type = 9;
    let got = render(&encode_delimited(&[t]), ProtoOptions::default());
    assert_eq!(
        got,
        ["ERR line 1:1: unknown metric type 9 for metric \"ok\""]
    );
    assert_eq!(
        render(&[0xff; 11], ProtoOptions::default()),
        ["ERR line 1:1: truncated or invalid length prefix"]
    );
}

#[test]
fn empty_families_are_skipped_and_timestamps_zero_is_none() {
    let body = encode_delimited(&[fam("none", MetricType::Counter, vec![])]);
    assert!(render(&body, ProtoOptions::default()).is_empty());
    assert!(render(&[], ProtoOptions::default()).is_empty());
}

#[test]
fn floats_as_prometheus_writes_le() {
    let cases = [
        (1.0, "1.0"),
        (0.25, "0.25"),
        (100000.0, "100000.0"),
        (1e6, "1e+06"),
        (1.5e6, "1.5e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.5, "-2.5"),
        (0.0, "0.0"),
        (1e300, "1e+300"),
        (123456.0, "123456.0"),
        (1234567.0, "1.234567e+06"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
        (f64::NAN, "NaN"),
    ];
    for (f, want) in cases {
        let mut s = String::new();
        openmetrics_float(f, &mut s);
        assert_eq!(s, want, "{f}");
    }
}

#[test]
fn scratch_is_reused() {
    let body = encode_delimited(&[fam(
        "lat",
        MetricType::Histogram,
        vec![Metric {
            histogram: Some(native_hist()),
            ..Default::default()
        }],
    )]);
    let mut scratch = ProtoScratch::default();
    let n = ProtoParser::new(&body, ProtoOptions::default(), &mut scratch).count();
    let caps = (scratch.text.capacity(), scratch.items.capacity());
    for _ in 0..3 {
        assert_eq!(
            ProtoParser::new(&body, ProtoOptions::default(), &mut scratch).count(),
            n
        );
    }
    assert_eq!((scratch.text.capacity(), scratch.items.capacity()), caps);
}
