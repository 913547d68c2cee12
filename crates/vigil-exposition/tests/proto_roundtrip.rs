//! Property tests of the protobuf parser: arbitrary bytes never panic it (and an error names a
//! family inside the body), and random families encoded with `prost` parse back to the same
//! names, labels, values, timestamps and native histograms.

use proptest::prelude::*;
use vigil_exposition::proto::{dto, encode_delimited};
use vigil_exposition::{Entry, ProtoOptions, ProtoParser, ProtoScratch};

fn label_value() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just('"'),
            Just('\\'),
            Just('\n'),
            Just('{'),
            Just('}'),
            Just(','),
            Just('='),
            Just('é'),
            prop::char::range('a', 'z'),
        ],
        0..8,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn labels() -> impl Strategy<Value = Vec<dto::LabelPair>> {
    prop::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_.]{0,5}", label_value(), 0..4).prop_map(|m| {
        m.into_iter()
            .filter(|(k, _)| k != "le" && k != "quantile")
            .map(|(name, value)| dto::LabelPair { name, value })
            .collect()
    })
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::INFINITY),
        Just(0.0),
        (-1000i32..1000).prop_map(f64::from),
    ]
}

fn spans_and_deltas() -> impl Strategy<Value = (Vec<dto::BucketSpan>, Vec<i64>)> {
    prop::collection::vec((-5i32..5, 0u32..4), 0..4).prop_flat_map(|spans| {
        let n: u32 = spans.iter().map(|s| s.1).sum();
        let spans: Vec<dto::BucketSpan> = spans
            .into_iter()
            .map(|(offset, length)| dto::BucketSpan { offset, length })
            .collect();
        (
            Just(spans),
            prop::collection::vec(-3i64..5, n as usize..=n as usize),
        )
    })
}

fn native() -> impl Strategy<Value = dto::Histogram> {
    (
        -4i32..=8,
        spans_and_deltas(),
        spans_and_deltas(),
        0u64..100,
        float(),
        0u64..10,
    )
        .prop_map(
            |(schema, (ps, pd), (ns, nd), count, sum, zc)| dto::Histogram {
                sample_count: count,
                sample_sum: sum,
                schema,
                zero_threshold: 0.001,
                zero_count: zc,
                positive_span: ps,
                positive_delta: pd,
                negative_span: ns,
                negative_delta: nd,
                ..Default::default()
            },
        )
}

#[derive(Debug, Clone)]
enum Kind {
    Gauge(f64),
    Counter(f64),
    Native(Box<dto::Histogram>),
}

fn family() -> impl Strategy<Value = (String, Vec<(Vec<dto::LabelPair>, Kind, i64)>)> {
    (
        "[a-zA-Z_:][a-zA-Z0-9_:.]{0,8}",
        prop::collection::vec(
            (
                labels(),
                prop_oneof![
                    float().prop_map(Kind::Gauge),
                    float().prop_map(Kind::Counter),
                    native().prop_map(|h| Kind::Native(Box::new(h))),
                ],
                prop_oneof![Just(0i64), 1i64..1_000_000_000_000_000],
            ),
            1..4,
        ),
    )
}

fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn bucket_bounds_print_and_parse_back(f in any::<f64>()) {
        let mut s = String::new();
        vigil_exposition::proto::openmetrics_float(f, &mut s);
        let back: f64 = match s.as_str() {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other.parse().unwrap(),
        };
        prop_assert!(back == f || (f.is_nan() && back.is_nan()), "{} -> {}", f, s);
        // Go's %g: an exponent of at least two digits, and integral values end in ".0".
        if let Some((_, e)) = s.split_once('e') {
            prop_assert!(e.len() >= 3, "{}", s);
        } else if f.is_finite() {
            prop_assert!(s.contains('.'), "{}", s);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut scratch = ProtoScratch::default();
        for opts in [ProtoOptions::default(), ProtoOptions { native_histograms: false, keep_classic: true }] {
            for e in ProtoParser::new(&data, opts, &mut scratch) {
                match e {
                    Ok(Entry::Sample(s)) => {
                        prop_assert!(!s.series.is_empty());
                        for (name, _) in s.labels() {
                            prop_assert!(!name.is_empty());
                        }
                    }
                    Ok(_) => {}
                    Err(err) => {
                        prop_assert!(err.column >= 1 && err.column <= data.len().max(1));
                        prop_assert!(!err.message.is_empty());
                    }
                }
            }
        }
    }

    #[test]
    fn encode_then_parse_round_trips(families in prop::collection::vec(family(), 0..4)) {
        // Each family holds one kind (the first metric's).
        let mut mfs = Vec::new();
        for (name, metrics) in &families {
            let t = match metrics[0].1 {
                Kind::Gauge(_) => dto::MetricType::Gauge,
                Kind::Counter(_) => dto::MetricType::Counter,
                Kind::Native(_) => dto::MetricType::Histogram,
            };
            let metric = metrics
                .iter()
                .map(|(label, k, ts)| {
                    let mut m = dto::Metric { label: label.clone(), timestamp_ms: *ts, ..Default::default() };
                    match (t, k) {
                        (dto::MetricType::Gauge, Kind::Gauge(v) | Kind::Counter(v)) => m.gauge = Some(dto::Gauge { value: *v }),
                        (dto::MetricType::Counter, Kind::Gauge(v) | Kind::Counter(v)) => m.counter = Some(dto::Counter { value: *v, ..Default::default() }),
                        (dto::MetricType::Histogram, Kind::Native(h)) => m.histogram = Some((**h).clone()),
                        // A metric of another kind than its family: a gauge of 0 as exposed.
                        (dto::MetricType::Histogram, _) => m.histogram = Some(dto::Histogram { zero_threshold: 1.0, ..Default::default() }),
                        _ => {}
                    }
                    m
                })
                .collect();
            mfs.push(dto::MetricFamily { name: name.clone(), help: "h".into(), r#type: t as i32, metric, unit: String::new() });
        }
        let body = encode_delimited(&mfs);
        let mut scratch = ProtoScratch::default();
        let mut entries = ProtoParser::new(&body, ProtoOptions::default(), &mut scratch);
        for mf in &mfs {
            let help = matches!(entries.next(), Some(Ok(Entry::Help { family, .. })) if family == mf.name);
            prop_assert!(help, "help entry");
            let ty = matches!(entries.next(), Some(Ok(Entry::Type { family, .. })) if family == mf.name);
            prop_assert!(ty, "type entry");
            for m in &mf.metric {
                let want_labels: Vec<(String, String)> = m.label.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
                let want_ts = (m.timestamp_ms != 0).then_some(m.timestamp_ms);
                match entries.next() {
                    Some(Ok(Entry::Sample(s))) => {
                        prop_assert_eq!(s.name.as_ref(), mf.name.as_str());
                        let got: Vec<(String, String)> = s.labels().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
                        prop_assert_eq!(got, want_labels);
                        prop_assert_eq!(s.timestamp_ms, want_ts);
                        let want = m.gauge.as_ref().map(|g| g.value).or(m.counter.as_ref().map(|c| c.value)).unwrap_or(0.0);
                        prop_assert!(same(s.value, want), "{} != {}", s.value, want);
                    }
                    Some(Ok(Entry::Histogram(h))) => {
                        let src = m.histogram.as_ref().unwrap();
                        prop_assert_eq!(h.name.as_ref(), mf.name.as_str());
                        let got: Vec<(String, String)> = h.labels().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
                        prop_assert_eq!(got, want_labels);
                        prop_assert_eq!(h.timestamp_ms, want_ts);
                        let n = &h.histogram;
                        prop_assert_eq!(n.schema, src.schema);
                        prop_assert_eq!(n.count, src.sample_count as f64);
                        prop_assert!(same(n.sum, src.sample_sum));
                        prop_assert_eq!(n.zero_count, src.zero_count as f64);
                        let mut cur = 0i64;
                        let abs: Vec<f64> = src.positive_delta.iter().map(|d| { cur += d; cur as f64 }).collect();
                        prop_assert_eq!(n.positive_counts, &abs[..]);
                        prop_assert_eq!(n.positive_spans.len(), src.positive_span.len());
                        prop_assert_eq!(n.negative_counts.len(), src.negative_delta.len());
                    }
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
        }
        prop_assert!(entries.next().is_none());
    }
}
