//! Delta temporality to cumulative, in memory, for `--enable-feature=otlp-deltatocumulative`
//! (Prometheus 3.x runs the OpenTelemetry Collector's `deltatocumulative` processor there;
//! this follows its rules). A stream is one series of one metric: resource, scope, metric
//! name, unit, kind and point attributes. Its first delta point starts the running total (with
//! its start time); each later point is added if it is newer than the last one, and dropped
//! (counted as rejected) if it is not or if it started before the stream did. Streams not
//! updated for five minutes are forgotten, as the processor's default `max_stale`. Sums add
//! values; explicit-bucket histograms add counts when the bounds are the same (else the point
//! is dropped); exponential histograms are brought to the coarser scale and added.
//!
//! The state lives in memory only: after a restart, or once a stream went stale, totals start
//! again from zero, which PromQL reads as a counter reset.

use super::translate::{DataPoint, value_string};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint, NumberDataPoint,
    exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
};
use parking_lot::Mutex;
use std::collections::HashMap;

/// Streams silent for this long are forgotten.
const MAX_STALE_NS: u64 = 5 * 60 * 1_000_000_000;
/// Widest exponential bucket range kept for one stream (malformed offsets stay bounded).
const MAX_BUCKET_SPAN: i64 = 16_384;
const NO_RECORDED_VALUE: u32 = 1;

/// The running total of one stream.
#[derive(Debug, Clone)]
enum Total {
    Number(f64),
    Histogram(HistogramDataPoint),
    Exponential(ExponentialHistogramDataPoint),
}

#[derive(Debug, Clone)]
struct Stream {
    start: u64,
    last: u64,
    seen_ns: u64,
    total: Total,
}

/// The conversion state, shared by all requests.
#[derive(Debug, Default)]
pub struct DeltaToCumulative {
    streams: Mutex<(HashMap<Vec<u8>, Stream>, u64)>,
}

/// What one request's conversion dropped.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Dropped {
    pub points: u64,
    pub messages: Vec<String>,
}

fn key_part(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn key_attrs(out: &mut Vec<u8>, attrs: &[KeyValue]) {
    let mut pairs: Vec<(&str, String)> = attrs
        .iter()
        .map(|kv| (kv.key.as_str(), value_string(kv.value.as_ref())))
        .collect();
    pairs.sort();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        key_part(out, k);
        key_part(out, &v);
    }
}

fn number(p: &NumberDataPoint) -> f64 {
    match p.value {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => 0.0,
    }
}

impl DeltaToCumulative {
    pub fn new() -> Self {
        Self::default()
    }

    /// Streams held (for tests and self-metrics).
    pub fn streams(&self) -> usize {
        self.streams.lock().0.len()
    }

    /// Rewrites every delta sum and histogram of `req` as cumulative, in place; `now_ns` is
    /// the wall clock (for forgetting stale streams).
    pub fn convert(&self, req: &mut ExportMetricsServiceRequest, now_ns: u64) -> Dropped {
        let mut dropped = Dropped::default();
        let mut guard = self.streams.lock();
        let (streams, last_sweep) = &mut *guard;
        if now_ns.saturating_sub(*last_sweep) > MAX_STALE_NS / 5 {
            streams.retain(|_, s| now_ns.saturating_sub(s.seen_ns) <= MAX_STALE_NS);
            *last_sweep = now_ns;
        }
        let delta = AggregationTemporality::Delta as i32;
        let cumulative = AggregationTemporality::Cumulative as i32;
        for rm in &mut req.resource_metrics {
            let mut res_key = Vec::new();
            key_attrs(
                &mut res_key,
                rm.resource.as_ref().map_or(&[][..], |r| &r.attributes),
            );
            for sm in &mut rm.scope_metrics {
                let mut scope_key = res_key.clone();
                if let Some(sc) = &sm.scope {
                    key_part(&mut scope_key, &sc.name);
                    key_part(&mut scope_key, &sc.version);
                    key_attrs(&mut scope_key, &sc.attributes);
                }
                for m in &mut sm.metrics {
                    let mut base = scope_key.clone();
                    key_part(&mut base, &m.name);
                    key_part(&mut base, &m.unit);
                    let name = m.name.clone();
                    let reject = |why: &str| {
                        dropped.points += 1;
                        if dropped.messages.len() < 10 {
                            dropped
                                .messages
                                .push(format!("metric {name:?}: delta point {why}"));
                        }
                    };
                    match &mut m.data {
                        Some(Data::Sum(s)) if s.aggregation_temporality == delta => {
                            base.push(if s.is_monotonic { b'm' } else { b's' });
                            s.aggregation_temporality = cumulative;
                            accumulate_points(streams, &mut s.data_points, &base, now_ns, reject);
                        }
                        Some(Data::Histogram(h)) if h.aggregation_temporality == delta => {
                            base.push(b'h');
                            h.aggregation_temporality = cumulative;
                            accumulate_points(streams, &mut h.data_points, &base, now_ns, reject);
                        }
                        Some(Data::ExponentialHistogram(h))
                            if h.aggregation_temporality == delta =>
                        {
                            base.push(b'e');
                            h.aggregation_temporality = cumulative;
                            accumulate_points(streams, &mut h.data_points, &base, now_ns, reject);
                        }
                        _ => {}
                    }
                }
            }
        }
        dropped
    }
}

/// What the conversion needs of a delta data point (a sum's, a histogram's or an exponential
/// histogram's) besides its attributes, times and flags.
trait DeltaPoint: DataPoint {
    /// The running total a stream starts with at this point.
    fn first_total(&self) -> Total;
    /// Adds this point to its stream's running total (of the same kind, else an error).
    fn add_to(&self, total: &mut Total) -> Result<(), &'static str>;
    /// Rewrites this point as the running `total` of a stream that started at `start` (left
    /// as it is if `total` is of another kind).
    fn set_cumulative(&mut self, start: u64, total: Total);
}

impl DeltaPoint for NumberDataPoint {
    fn first_total(&self) -> Total {
        Total::Number(number(self))
    }
    fn add_to(&self, total: &mut Total) -> Result<(), &'static str> {
        let Total::Number(v) = total else {
            return Err("changed kind");
        };
        *v += number(self);
        Ok(())
    }
    fn set_cumulative(&mut self, start: u64, total: Total) {
        if let Total::Number(v) = total {
            self.start_time_unix_nano = start;
            self.value = Some(number_data_point::Value::AsDouble(v));
        }
    }
}

impl DeltaPoint for HistogramDataPoint {
    fn first_total(&self) -> Total {
        Total::Histogram(self.clone())
    }
    fn add_to(&self, total: &mut Total) -> Result<(), &'static str> {
        let Total::Histogram(acc) = total else {
            return Err("changed kind");
        };
        add_histogram(acc, self)
    }
    fn set_cumulative(&mut self, start: u64, total: Total) {
        if let Total::Histogram(acc) = total {
            *self = HistogramDataPoint {
                start_time_unix_nano: start,
                time_unix_nano: self.time_unix_nano,
                attributes: std::mem::take(&mut self.attributes),
                exemplars: std::mem::take(&mut self.exemplars),
                ..acc
            };
        }
    }
}

impl DeltaPoint for ExponentialHistogramDataPoint {
    fn first_total(&self) -> Total {
        Total::Exponential(self.clone())
    }
    fn add_to(&self, total: &mut Total) -> Result<(), &'static str> {
        let Total::Exponential(acc) = total else {
            return Err("changed kind");
        };
        add_exponential(acc, self)
    }
    fn set_cumulative(&mut self, start: u64, total: Total) {
        if let Total::Exponential(acc) = total {
            *self = ExponentialHistogramDataPoint {
                start_time_unix_nano: start,
                time_unix_nano: self.time_unix_nano,
                attributes: std::mem::take(&mut self.attributes),
                exemplars: std::mem::take(&mut self.exemplars),
                ..acc
            };
        }
    }
}

/// Rewrites one metric's delta `points` as cumulative, in place. `base` is the metric's part
/// of the stream key; a point that does not fit its stream is removed and `reject` told why.
fn accumulate_points<P: DeltaPoint>(
    streams: &mut HashMap<Vec<u8>, Stream>,
    points: &mut Vec<P>,
    base: &[u8],
    now_ns: u64,
    mut reject: impl FnMut(&str),
) {
    let mut key = Vec::new();
    points.retain_mut(|p| {
        key.clear();
        key.extend_from_slice(base);
        key_attrs(&mut key, p.attributes());
        match accumulate(streams, &key, &*p, now_ns) {
            Ok(Some((start, total))) => {
                p.set_cumulative(start, total);
                true
            }
            Ok(None) => true,
            Err(why) => {
                reject(why);
                false
            }
        }
    });
}

/// Adds one point to its stream. `Ok(Some((start, total)))`: the cumulative point to store;
/// `Ok(None)`: a point without a value (passed on as it is, the stream untouched).
fn accumulate(
    streams: &mut HashMap<Vec<u8>, Stream>,
    key: &[u8],
    p: &impl DeltaPoint,
    now_ns: u64,
) -> Result<Option<(u64, Total)>, &'static str> {
    let (start, t) = (p.start(), p.time());
    if p.flags() & NO_RECORDED_VALUE != 0 {
        return Ok(None);
    }
    match streams.get_mut(key) {
        None => {
            let total = p.first_total();
            streams.insert(
                key.to_vec(),
                Stream {
                    start,
                    last: t,
                    seen_ns: now_ns,
                    total: total.clone(),
                },
            );
            Ok(Some((start, total)))
        }
        Some(s) => {
            if start < s.start {
                return Err("started before its stream");
            }
            if t <= s.last {
                return Err("out of order");
            }
            p.add_to(&mut s.total)?;
            s.last = t;
            s.seen_ns = now_ns;
            Ok(Some((s.start, s.total.clone())))
        }
    }
}

fn add_histogram(acc: &mut HistogramDataPoint, p: &HistogramDataPoint) -> Result<(), &'static str> {
    if acc.explicit_bounds != p.explicit_bounds || acc.bucket_counts.len() != p.bucket_counts.len()
    {
        return Err("has other bucket bounds than its stream");
    }
    for (a, b) in acc.bucket_counts.iter_mut().zip(&p.bucket_counts) {
        *a = a.saturating_add(*b);
    }
    acc.count = acc.count.saturating_add(p.count);
    acc.sum = match (acc.sum, p.sum) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
    acc.min = match (acc.min, p.min) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    acc.max = match (acc.max, p.max) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    Ok(())
}

/// Buckets at `scale` reduced by `down` scale steps, added into a map from index to count.
fn fold_buckets(b: Option<&Buckets>, down: u32, into: &mut std::collections::BTreeMap<i64, u64>) {
    if let Some(b) = b {
        for (i, c) in b.bucket_counts.iter().enumerate() {
            if *c != 0 {
                let idx = (b.offset as i64 + i as i64) >> down.min(62);
                *into.entry(idx).or_default() += c;
            }
        }
    }
}

fn dense(m: &std::collections::BTreeMap<i64, u64>) -> Result<Option<Buckets>, &'static str> {
    let (Some((&lo, _)), Some((&hi, _))) = (m.first_key_value(), m.last_key_value()) else {
        return Ok(None);
    };
    if hi - lo >= MAX_BUCKET_SPAN || lo < i32::MIN as i64 || hi > i32::MAX as i64 {
        return Err("has a bucket range too wide to accumulate");
    }
    let mut counts = vec![0u64; (hi - lo + 1) as usize];
    for (i, c) in m {
        counts[(i - lo) as usize] = *c;
    }
    Ok(Some(Buckets {
        offset: lo as i32,
        bucket_counts: counts,
    }))
}

fn add_exponential(
    acc: &mut ExponentialHistogramDataPoint,
    p: &ExponentialHistogramDataPoint,
) -> Result<(), &'static str> {
    let scale = acc.scale.min(p.scale);
    let (da, dp) = ((acc.scale - scale) as u32, (p.scale - scale) as u32);
    let mut pos = std::collections::BTreeMap::new();
    let mut neg = std::collections::BTreeMap::new();
    fold_buckets(acc.positive.as_ref(), da, &mut pos);
    fold_buckets(p.positive.as_ref(), dp, &mut pos);
    fold_buckets(acc.negative.as_ref(), da, &mut neg);
    fold_buckets(p.negative.as_ref(), dp, &mut neg);
    acc.positive = dense(&pos)?;
    acc.negative = dense(&neg)?;
    acc.scale = scale;
    acc.count = acc.count.saturating_add(p.count);
    acc.zero_count = acc.zero_count.saturating_add(p.zero_count);
    acc.zero_threshold = acc.zero_threshold.max(p.zero_threshold);
    acc.sum = match (acc.sum, p.sum) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
    acc.min = match (acc.min, p.min) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    acc.max = match (acc.max, p.max) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, Histogram, Metric, ResourceMetrics, ScopeMetrics, Sum,
    };

    const S: u64 = 1_000_000_000;

    fn req(data: Data) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "m".into(),
                        data: Some(data),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn sum(points: &[(u64, u64, f64)]) -> ExportMetricsServiceRequest {
        req(Data::Sum(Sum {
            data_points: points
                .iter()
                .map(|&(st, t, v)| NumberDataPoint {
                    start_time_unix_nano: st * S,
                    time_unix_nano: t * S,
                    value: Some(number_data_point::Value::AsDouble(v)),
                    ..Default::default()
                })
                .collect(),
            aggregation_temporality: AggregationTemporality::Delta as i32,
            is_monotonic: true,
        }))
    }

    fn sum_points(r: &ExportMetricsServiceRequest) -> Vec<(u64, u64, f64)> {
        let Some(Data::Sum(s)) = &r.resource_metrics[0].scope_metrics[0].metrics[0].data else {
            panic!()
        };
        assert_eq!(
            s.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        s.data_points
            .iter()
            .map(|p| (p.start_time_unix_nano / S, p.time_unix_nano / S, number(p)))
            .collect()
    }

    #[test]
    fn sums_accumulate_per_stream() {
        let d = DeltaToCumulative::new();
        let mut r = sum(&[(0, 10, 1.0), (10, 20, 2.0)]);
        assert_eq!(d.convert(&mut r, 100 * S), Dropped::default());
        assert_eq!(sum_points(&r), [(0, 10, 1.0), (0, 20, 3.0)]);
        let mut r = sum(&[(20, 30, 4.0), (20, 25, 9.0), (0, 40, 1.0)]);
        let dropped = d.convert(&mut r, 101 * S);
        // Not newer than the last point: dropped. Start 0 is the stream's own start: added.
        assert_eq!(dropped.points, 1);
        assert!(dropped.messages[0].contains("out of order"), "{dropped:?}");
        assert_eq!(sum_points(&r), [(0, 30, 7.0), (0, 40, 8.0)]);
        assert_eq!(d.streams(), 1);
        // Forgotten after five minutes of silence: the total starts again.
        let mut r = sum(&[(50, 500, 1.0)]);
        d.convert(&mut r, 1000 * S);
        assert_eq!(sum_points(&r), [(50, 500, 1.0)]);
    }

    #[test]
    fn histograms_add_bucket_counts() {
        let d = DeltaToCumulative::new();
        let h = |t: u64, counts: Vec<u64>, bounds: Vec<f64>| HistogramDataPoint {
            start_time_unix_nano: (t - 10) * S,
            time_unix_nano: t * S,
            count: counts.iter().sum(),
            sum: Some(1.0),
            bucket_counts: counts,
            explicit_bounds: bounds,
            ..Default::default()
        };
        let mut r = req(Data::Histogram(Histogram {
            data_points: vec![
                h(10, vec![1, 2, 3], vec![1.0, 2.0]),
                h(20, vec![1, 0, 1], vec![1.0, 2.0]),
                h(30, vec![1, 1], vec![5.0]),
            ],
            aggregation_temporality: AggregationTemporality::Delta as i32,
        }));
        let dropped = d.convert(&mut r, S);
        assert_eq!(dropped.points, 1, "other bounds");
        let Some(Data::Histogram(out)) = &r.resource_metrics[0].scope_metrics[0].metrics[0].data
        else {
            panic!()
        };
        let last = &out.data_points[1];
        assert_eq!(last.bucket_counts, [2, 2, 4]);
        assert_eq!(last.count, 8);
        assert_eq!(last.sum, Some(2.0));
        assert_eq!(last.start_time_unix_nano, 0);
    }

    #[test]
    fn exponential_histograms_merge_to_the_coarser_scale() {
        let d = DeltaToCumulative::new();
        let e = |t: u64, scale: i32, offset: i32, counts: Vec<u64>| ExponentialHistogramDataPoint {
            start_time_unix_nano: (t - 10) * S,
            time_unix_nano: t * S,
            count: counts.iter().sum::<u64>() + 1,
            zero_count: 1,
            scale,
            positive: Some(Buckets {
                offset,
                bucket_counts: counts,
            }),
            ..Default::default()
        };
        let mut r = req(Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![e(10, 2, 0, vec![1, 1, 1, 1]), e(20, 1, 1, vec![5])],
            aggregation_temporality: AggregationTemporality::Delta as i32,
        }));
        assert_eq!(d.convert(&mut r, S).points, 0);
        let Some(Data::ExponentialHistogram(out)) =
            &r.resource_metrics[0].scope_metrics[0].metrics[0].data
        else {
            panic!()
        };
        let p = &out.data_points[1];
        // Scale 2 indices 0..3 become scale-1 indices 0,0,1,1; the new point adds 5 at 1.
        assert_eq!(p.scale, 1);
        assert_eq!(
            p.positive,
            Some(Buckets {
                offset: 0,
                bucket_counts: vec![2, 7]
            })
        );
        assert_eq!((p.count, p.zero_count), (11, 2));
    }
}
