//! The loop's ingest against a recording fake storage: native histograms, NHCB conversion,
//! bucket limits, staleness and the counts of the synthetic series.

use super::*;
use crate::manager::TargetHealth;
use std::collections::HashMap;
use vigil_exposition::proto::{dto, encode_delimited};
use vigil_model::StorageError;
use vigil_model::is_stale_nan;

#[derive(Debug, Clone, PartialEq)]
enum V {
    F(f64),
    H(FloatHistogram),
}

#[derive(Default)]
struct Store {
    /// Label text → reference.
    refs: HashMap<String, SeriesRef>,
    names: Vec<String>,
    /// Committed samples: (series labels, t, value, whether the cached reference was used).
    samples: Vec<(String, i64, V, bool)>,
}

#[derive(Default, Clone)]
struct Fake(Arc<Mutex<Store>>);

struct FakeApp {
    store: Arc<Mutex<Store>>,
    batch: Vec<(String, i64, V, bool)>,
}

impl FakeApp {
    fn add(
        &mut self,
        cached: Option<SeriesRef>,
        labels: &Labels,
        t: i64,
        v: V,
    ) -> Result<SeriesRef, AppendError> {
        let mut st = self.store.lock();
        let (r, name) = match cached {
            Some(r) => (r, st.names[r as usize - 1].clone()),
            None => {
                if labels.is_empty() {
                    return Err(AppendError::EmptyLabels);
                }
                let key = labels.to_string();
                let n = st.names.len() as u64 + 1;
                let r = *st.refs.entry(key.clone()).or_insert(n);
                if r == n {
                    st.names.push(key.clone());
                }
                (r, key)
            }
        };
        self.batch.push((name, t, v, cached.is_some()));
        Ok(r)
    }
}

impl Appender for FakeApp {
    fn append(
        &mut self,
        cached: Option<SeriesRef>,
        labels: &Labels,
        t: Timestamp,
        v: f64,
    ) -> Result<SeriesRef, AppendError> {
        self.add(cached, labels, t, V::F(v))
    }

    fn append_histogram(
        &mut self,
        cached: Option<SeriesRef>,
        labels: &Labels,
        t: Timestamp,
        h: &FloatHistogram,
    ) -> Result<SeriesRef, AppendError> {
        self.add(cached, labels, t, V::H(h.clone()))
    }

    fn commit(self: Box<Self>) -> Result<(), StorageError> {
        self.store.lock().samples.extend(self.batch);
        Ok(())
    }

    fn rollback(self: Box<Self>) {}
}

impl Appendable for Fake {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(FakeApp {
            store: Arc::clone(&self.0),
            batch: Vec::new(),
        })
    }
}

fn settings() -> LoopSettings {
    LoopSettings {
        interval: Duration::from_secs(15),
        align_tolerance: None,
        timeout: Duration::from_secs(10),
        honor_labels: false,
        honor_timestamps: true,
        sample_limit: 0,
        label_limit: 0,
        label_name_length_limit: 0,
        label_value_length_limit: 0,
        body_size_limit: 0,
        metric_relabel: Arc::new(Vec::new()),
        client: vigil_http::build(&Default::default(), "test").unwrap(),
        accept: String::new(),
        fallback: None,
        native_histograms: true,
        keep_classic: false,
        convert_nhcb: false,
        bucket_limit: 0,
        max_schema: EXPONENTIAL_SCHEMA_MAX,
        legacy_names: false,
    }
}

fn new_loop(s: LoopSettings) -> (ScrapeLoop, Fake) {
    let fake = Fake::default();
    let mut b = LabelsBuilder::new();
    b.set("job", "j");
    b.set("instance", "i:1");
    let target = Target {
        url: "http://i:1/metrics".into(),
        labels: b.build(),
        discovered: Labels::empty(),
    };
    let status = Arc::new(Mutex::new(TargetStatus {
        job: "j".into(),
        url: target.url.clone(),
        labels: target.labels.clone(),
        discovered: Labels::empty(),
        health: TargetHealth::Unknown,
        last_error: String::new(),
        last_scrape_ms: 0,
        last_scrape_duration: 0.0,
        interval: "15s".into(),
        timeout: "10s".into(),
        metadata: Arc::default(),
    }));
    let sl = ScrapeLoop::new(target, s, Arc::new(fake.clone()), status);
    (sl, fake)
}

/// One scrape of `body` at `ts`, as `scrape_once` runs it after the fetch.
fn scrape(sl: &mut ScrapeLoop, body: &[u8], format: Format, ts: i64) -> Result<Report, String> {
    sl.iteration += 1;
    sl.body.clear();
    sl.body.extend_from_slice(body);
    let r = sl.ingest(format, ts).map_err(|(e, _)| e);
    if r.is_err() {
        sl.mark_all_stale(ts, false);
    }
    r
}

fn taken(fake: &Fake) -> Vec<(String, i64, V, bool)> {
    std::mem::take(&mut fake.0.lock().samples)
}

fn native_family(name: &str, with_classic: bool) -> dto::MetricFamily {
    let h = dto::Histogram {
        sample_count: 4,
        sample_sum: 7.5,
        schema: 3,
        zero_threshold: 0.001,
        zero_count: 1,
        positive_span: vec![dto::BucketSpan {
            offset: 1,
            length: 4,
        }],
        positive_delta: vec![1, -1, 0, 1],
        bucket: if with_classic {
            vec![dto::Bucket {
                cumulative_count: 3,
                upper_bound: 2.0,
                ..Default::default()
            }]
        } else {
            vec![]
        },
        ..Default::default()
    };
    dto::MetricFamily {
        name: name.into(),
        help: "h".into(),
        r#type: dto::MetricType::Histogram as i32,
        metric: vec![dto::Metric {
            label: vec![dto::LabelPair {
                name: "path".into(),
                value: "/x".into(),
            }],
            histogram: Some(h),
            ..Default::default()
        }],
        unit: String::new(),
    }
}

fn gauge_family(name: &str, v: f64) -> dto::MetricFamily {
    dto::MetricFamily {
        name: name.into(),
        help: String::new(),
        r#type: dto::MetricType::Gauge as i32,
        metric: vec![dto::Metric {
            gauge: Some(dto::Gauge { value: v }),
            ..Default::default()
        }],
        unit: String::new(),
    }
}

const SERIES: &str = r#"lat{instance="i:1", job="j", path="/x"}"#;

#[test]
fn native_histograms_are_appended_and_cached() {
    let (mut sl, fake) = new_loop(settings());
    let body = encode_delimited(&[native_family("lat", true), gauge_family("g", 2.0)]);
    let rep = scrape(&mut sl, &body, Format::PrometheusProto, 1000).unwrap();
    assert_eq!((rep.scraped, rep.post_relabel, rep.added), (2, 2, 2));
    let got = taken(&fake);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, SERIES);
    let V::H(h) = &got[0].2 else {
        panic!("{got:?}")
    };
    assert_eq!((h.schema, h.count, h.sum, h.zero_count), (3, 4.0, 7.5, 1.0));
    // Compacted as Prometheus does with what it parses: the empty buckets leave the spans.
    assert_eq!(h.positive_buckets, [1.0, 1.0]);
    assert_eq!(h.positive_spans.len(), 2);
    assert_eq!(h.counter_reset_hint, CounterResetHint::Unknown);
    assert!(!got[0].3);
    // The second scrape goes through the cache.
    let rep = scrape(&mut sl, &body, Format::PrometheusProto, 2000).unwrap();
    assert_eq!((rep.scraped, rep.added), (2, 0));
    let got = taken(&fake);
    assert!(
        got.iter().all(|s| s.3),
        "every sample through its reference"
    );
    assert!(matches!(&got[0].2, V::H(h) if h.count == 4.0));
}

#[test]
fn a_vanished_histogram_gets_a_histogram_stale_marker() {
    let (mut sl, fake) = new_loop(settings());
    let both = encode_delimited(&[native_family("lat", false), gauge_family("g", 1.0)]);
    scrape(&mut sl, &both, Format::PrometheusProto, 1000).unwrap();
    let only_gauge = encode_delimited(&[gauge_family("g", 1.0)]);
    scrape(&mut sl, &only_gauge, Format::PrometheusProto, 2000).unwrap();
    let got = taken(&fake);
    let stale: Vec<_> = got
        .iter()
        .filter(|s| s.1 == 2000 && s.0 == SERIES)
        .collect();
    assert_eq!(stale.len(), 1, "{got:?}");
    let V::H(h) = &stale[0].2 else {
        panic!("{stale:?}")
    };
    assert!(is_stale_nan(h.sum));
    // A failed scrape marks the gauge stale with a float.
    scrape(&mut sl, b"\xff\xff", Format::PrometheusProto, 3000).unwrap_err();
    let got = taken(&fake);
    assert!(matches!(&got[..], [(_, 3000, V::F(v), true)] if is_stale_nan(*v)));
}

#[test]
fn native_histograms_off_keeps_the_classic_series() {
    let mut s = settings();
    s.native_histograms = false;
    let (mut sl, fake) = new_loop(s);
    let body = encode_delimited(&[native_family("lat", true)]);
    let rep = scrape(&mut sl, &body, Format::PrometheusProto, 1000).unwrap();
    assert_eq!(rep.scraped, 4, "_count, _sum, le=2.0, le=+Inf");
    let got = taken(&fake);
    assert!(got.iter().all(|s| matches!(s.2, V::F(_))));
    assert!(got[2].0.contains(r#"le="2.0""#), "{got:?}");
}

#[test]
fn always_scrape_classic_keeps_both() {
    let mut s = settings();
    s.keep_classic = true;
    let (mut sl, fake) = new_loop(s);
    let body = encode_delimited(&[native_family("lat", true)]);
    let rep = scrape(&mut sl, &body, Format::PrometheusProto, 1000).unwrap();
    assert_eq!(rep.scraped, 5);
    let got = taken(&fake);
    assert!(matches!(got[0].2, V::H(_)));
    assert_eq!(got.iter().filter(|s| matches!(s.2, V::F(_))).count(), 4);
}

const CLASSIC_TEXT: &str = "# TYPE rt histogram\n\
rt_bucket{a=\"1\",le=\"0.1\"} 1\n\
rt_bucket{a=\"1\",le=\"1\"} 3\n\
rt_bucket{a=\"1\",le=\"+Inf\"} 4\n\
rt_sum{a=\"1\"} 2.5\n\
rt_count{a=\"1\"} 4\n\
rt_bucket{a=\"2\",le=\"0.1\"} 0\n\
rt_bucket{a=\"2\",le=\"1\"} 0\n\
rt_bucket{a=\"2\",le=\"+Inf\"} 2\n\
rt_sum{a=\"2\"} 9\n\
rt_count{a=\"2\"} 2\n\
# TYPE up2 gauge\n\
up2 1\n";

#[test]
fn classic_histograms_convert_to_nhcb() {
    let mut s = settings();
    s.convert_nhcb = true;
    let (mut sl, fake) = new_loop(s);
    for round in 0..2 {
        let ts = 1000 * (round + 1);
        let rep = scrape(&mut sl, CLASSIC_TEXT.as_bytes(), Format::PrometheusText, ts).unwrap();
        assert_eq!(rep.scraped, 3, "two NHCBs and up2");
        let got = taken(&fake);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].0, r#"rt{a="1", instance="i:1", job="j"}"#);
        let V::H(h) = &got[0].2 else { panic!() };
        assert_eq!(h.schema, -53);
        assert_eq!(h.custom(), &[0.1, 1.0]);
        assert_eq!(h.positive_buckets, [1.0, 2.0, 1.0]);
        assert_eq!((h.count, h.sum), (4.0, 2.5));
        let V::H(h2) = &got[1].2 else { panic!() };
        assert_eq!((h2.count, h2.sum), (2.0, 9.0));
        assert_eq!(got[2].0, r#"up2{instance="i:1", job="j"}"#);
        assert_eq!(got[0].3, round == 1, "cached on the second scrape");
    }
    // With always_scrape_classic_histograms the classic series stay too.
    let mut s = settings();
    s.convert_nhcb = true;
    s.keep_classic = true;
    let (mut sl, fake) = new_loop(s);
    let rep = scrape(
        &mut sl,
        CLASSIC_TEXT.as_bytes(),
        Format::PrometheusText,
        1000,
    )
    .unwrap();
    assert_eq!(rep.scraped, 13);
    let got = taken(&fake);
    assert_eq!(got.iter().filter(|s| matches!(s.2, V::H(_))).count(), 2);
}

#[test]
fn classic_proto_histograms_convert_too_and_openmetrics() {
    let mut s = settings();
    s.convert_nhcb = true;
    let (mut sl, fake) = new_loop(s);
    let mut fam = native_family("lat", true);
    if let Some(h) = fam.metric[0].histogram.as_mut() {
        h.positive_span.clear();
        h.positive_delta.clear();
        h.zero_threshold = 0.0;
        h.zero_count = 0;
    }
    scrape(
        &mut sl,
        &encode_delimited(&[fam]),
        Format::PrometheusProto,
        1000,
    )
    .unwrap();
    let got = taken(&fake);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, SERIES);
    assert!(matches!(&got[0].2, V::H(h) if h.custom() == [2.0] && h.count == 4.0));
    let om = "# TYPE x histogram\nx_bucket{le=\"1.0\"} 1\nx_bucket{le=\"+Inf\"} 1\nx_count 1\nx_sum 0.5\n# EOF\n";
    let rep = scrape(&mut sl, om.as_bytes(), Format::OpenMetrics, 2000).unwrap();
    assert_eq!(rep.scraped, 1);
    let got = taken(&fake);
    assert!(got.iter().any(|s| s.0.starts_with("x{")));
}

#[test]
fn bucket_limit_reduces_resolution_or_fails() {
    let mut s = settings();
    s.bucket_limit = 1;
    let (mut sl, fake) = new_loop(s);
    let body = encode_delimited(&[native_family("lat", false)]);
    scrape(&mut sl, &body, Format::PrometheusProto, 1000).unwrap();
    let got = taken(&fake);
    let V::H(h) = &got[0].2 else { panic!() };
    assert!(h.schema < 3);
    assert_eq!(h.positive_buckets, [2.0]);
    assert_eq!(h.count, 4.0);
    // A positive and a negative bucket never merge: over a limit of 1 even at schema -4.
    let mut s = settings();
    s.bucket_limit = 1;
    let (mut sl, _) = new_loop(s);
    let mut fam = native_family("lat", false);
    if let Some(h) = fam.metric[0].histogram.as_mut() {
        h.negative_span = vec![dto::BucketSpan {
            offset: 1,
            length: 1,
        }];
        h.negative_delta = vec![1];
        h.sample_count = 5;
    }
    let err = scrape(
        &mut sl,
        &encode_delimited(&[fam]),
        Format::PrometheusProto,
        1000,
    )
    .unwrap_err();
    assert_eq!(err, "histogram bucket limit exceeded");
}

#[test]
fn min_bucket_factor_lowers_the_schema() {
    assert_eq!(pick_schema(None), 8);
    assert_eq!(pick_schema(Some(1.0)), 8);
    assert_eq!(pick_schema(Some(1.1)), 2);
    assert_eq!(pick_schema(Some(2.0)), 0);
    assert_eq!(pick_schema(Some(4.0)), -1);
    assert_eq!(pick_schema(Some(1e300)), -4);
    let mut s = settings();
    s.max_schema = pick_schema(Some(2.0));
    let (mut sl, fake) = new_loop(s);
    let body = encode_delimited(&[native_family("lat", false)]);
    scrape(&mut sl, &body, Format::PrometheusProto, 1000).unwrap();
    let got = taken(&fake);
    let V::H(h) = &got[0].2 else { panic!() };
    assert_eq!(h.schema, 0);
    assert_eq!(h.count, 4.0);
    // A schema Prometheus reserves (above 8) comes down to 8 with no factor set.
    let (mut sl, fake) = new_loop(settings());
    let mut fam = native_family("lat", false);
    if let Some(h) = fam.metric[0].histogram.as_mut() {
        h.schema = 10;
    }
    scrape(
        &mut sl,
        &encode_delimited(&[fam]),
        Format::PrometheusProto,
        1000,
    )
    .unwrap();
    let got = taken(&fake);
    let V::H(h) = &got[0].2 else { panic!() };
    assert_eq!((h.schema, h.count), (8, 4.0));
}

/// Against the real head: the histogram arrives, and its staleness marker is one the head
/// takes (a histogram whose sum is StaleNaN, after the last real sample).
#[test]
fn a_real_head_takes_histograms_and_their_stale_markers() {
    use vigil_model::{Matcher, Queryable, SelectHints};
    let head = Arc::new(vigil_tsdb::Head::new(vigil_tsdb::HeadOptions::default()));
    let mut b = LabelsBuilder::new();
    b.set("job", "j");
    let target = Target {
        url: "http://i:1/metrics".into(),
        labels: b.build(),
        discovered: Labels::empty(),
    };
    let (probe, _) = new_loop(settings());
    let status = Arc::clone(&probe.status);
    let mut sl = ScrapeLoop::new(target, settings(), head.clone(), status);
    let t0 = now_millis();
    let both = encode_delimited(&[native_family("lat", false), gauge_family("g", 1.0)]);
    scrape(&mut sl, &both, Format::PrometheusProto, t0 + 1000).unwrap();
    scrape(&mut sl, &both, Format::PrometheusProto, t0 + 2000).unwrap();
    let only_gauge = encode_delimited(&[gauge_family("g", 1.0)]);
    scrape(&mut sl, &only_gauge, Format::PrometheusProto, t0 + 3000).unwrap();
    let q = head.querier(t0, t0 + 10_000).unwrap();
    let series: Vec<_> = q
        .select(
            &[Matcher::equal("__name__", "lat")],
            &SelectHints {
                start: t0,
                end: t0 + 10_000,
            },
        )
        .unwrap()
        .collect();
    assert_eq!(series.len(), 1);
    let hs = &series[0].histograms;
    assert_eq!(
        hs.iter().map(|h| h.t).collect::<Vec<_>>(),
        [t0 + 1000, t0 + 2000, t0 + 3000]
    );
    assert_eq!(hs[1].h.count, 4.0);
    assert!(is_stale_nan(hs[2].h.sum));
}

#[test]
fn legacy_validation_fails_a_scrape_with_a_utf8_name() {
    let body = b"{\"model.latency\",job_x=\"a\"} 1\nok_total 2\n";
    let (mut sl, fake) = new_loop(settings());
    let rep = scrape(&mut sl, body, Format::PrometheusText, 1000).unwrap();
    assert_eq!(rep.added, 2, "UTF-8 validation (the default) takes both");
    assert_eq!(taken(&fake).len(), 2);

    let mut s = settings();
    s.legacy_names = true;
    let (mut sl, fake) = new_loop(s.clone());
    let err = scrape(&mut sl, body, Format::PrometheusText, 1000).unwrap_err();
    assert!(
        err.starts_with("invalid metric name or label names: {__name__=\"model.latency\""),
        "{err}"
    );
    assert!(
        taken(&fake).iter().all(|x| !x.0.contains("ok_total")),
        "the failed scrape commits nothing"
    );
    let (mut sl, _) = new_loop(s.clone());
    let err = scrape(
        &mut sl,
        b"ok{\"a.b\"=\"1\"} 1\n",
        Format::PrometheusText,
        1000,
    )
    .unwrap_err();
    assert!(err.contains("a.b=\"1\""), "{err}");
    let (mut sl, fake) = new_loop(s);
    scrape(&mut sl, b"a:b{c_9=\"x\"} 1\n", Format::PrometheusText, 1000).unwrap();
    assert_eq!(taken(&fake).len(), 1, "legacy-valid names pass");
}

/// With `honor_labels`, a label exposed with an empty value (a federation endpoint writes
/// `instance=""`) keeps the target's label out, and the series has neither, as in Prometheus;
/// without it, the target's label is set and no `exported_` label appears.
#[test]
fn honor_labels_with_an_empty_exposed_label() {
    let body = b"m{instance=\"\",a=\"1\"} 5\n";
    let (mut sl, fake) = new_loop(LoopSettings {
        honor_labels: true,
        ..settings()
    });
    scrape(&mut sl, body, Format::PrometheusText, 1000).unwrap();
    let got = taken(&fake);
    assert_eq!(got[0].0, r#"m{a="1", job="j"}"#);
    let (mut sl, fake) = new_loop(settings());
    scrape(&mut sl, body, Format::PrometheusText, 1000).unwrap();
    let got = taken(&fake);
    assert_eq!(got[0].0, r#"m{a="1", instance="i:1", job="j"}"#);
}

#[test]
fn scrapes_close_to_their_slot_get_the_slot_time() {
    let sec = Duration::from_secs(1);
    let mut s = Schedule::new(10_000, sec, Duration::from_millis(2));
    // Timer jitter within 2 ms: the scheduled time.
    assert_eq!(s.stamp(10_000), 10_000);
    assert_eq!(s.stamp(11_002), 11_000);
    assert_eq!(s.stamp(12_001), 12_000);
    // Too late: the real time, and the schedule stays on its slots.
    assert_eq!(s.stamp(13_003), 13_003);
    assert_eq!(s.stamp(14_000), 14_000);
    // Skipped ticks advance by whole intervals.
    assert_eq!(s.stamp(19_002), 19_000);
    // A slightly early wall clock still aligns; a clock stepped back restarts the schedule.
    assert_eq!(s.stamp(18_999), 19_000);
    assert_eq!(s.stamp(19_999), 19_999);
    assert_eq!(s.stamp(15_500), 15_500);
    assert_eq!(s.stamp(16_501), 16_500);
}

#[test]
fn alignment_tolerance_is_at_most_a_hundredth_of_the_interval() {
    // 100 ms interval: 1 ms tolerance even if 2 ms was asked for.
    let mut s = Schedule::new(0, Duration::from_millis(100), Duration::from_millis(2));
    assert_eq!(s.stamp(101), 100);
    assert_eq!(s.stamp(202), 202);
    // Under 100 ms: only exact slots.
    let mut s = Schedule::new(0, Duration::from_millis(50), Duration::from_millis(2));
    assert_eq!(s.stamp(51), 51);
    assert_eq!(s.stamp(100), 100);
}
