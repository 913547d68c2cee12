//! Wire helpers: snappy block format, the sender's hand-rolled `WriteRequest` encoder, and the
//! CRC32-Castagnoli frames of streamed remote-read responses.
//!
//! The sender encodes `WriteRequest`s itself instead of building prost structs: each series'
//! labels are encoded once (when the series is first seen in the WAL) and copied into every
//! request as bytes, so a batch costs a few varints per sample and no allocation per label.
//! The output decodes with the prost structs (tested below); decoding always goes through
//! prost.

use crate::prompb;
use prost::Message;
use std::sync::Arc;
use vigil_model::Labels;
use vigil_model::histogram::{
    CounterResetHint, EXPONENTIAL_SCHEMA_MAX, EXPONENTIAL_SCHEMA_MAX_RESERVED, FloatHistogram,
    Histogram, Span,
};

/// Remote-write protocol version header value (remote write 1.0).
pub const REMOTE_WRITE_VERSION: &str = "0.1.0";
/// Remote-read protocol version header value.
pub const REMOTE_READ_VERSION: &str = "0.1.0";
/// Content type of streamed remote-read responses.
pub const STREAMED_CONTENT_TYPE: &str =
    "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("snappy: {0}")]
    Snappy(#[from] snap::Error),
    #[error("protobuf: {0}")]
    Proto(#[from] prost::DecodeError),
    #[error("{0}")]
    Frame(String),
}

/// Snappy block-compresses `data`.
pub fn snappy_compress(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; snap::raw::max_compress_len(data.len())];
    // Cannot fail: the output buffer has the maximum size.
    let n = snap::raw::Encoder::new()
        .compress(data, &mut out)
        .unwrap_or(0);
    out.truncate(n);
    out
}

/// Decompresses a snappy block, refusing one that announces more than `max` bytes.
pub fn snappy_decompress(data: &[u8], max: usize) -> Result<Vec<u8>, DecodeError> {
    let len = snap::raw::decompress_len(data)?;
    if len > max {
        return Err(DecodeError::Frame(format!(
            "decompressed size {len} exceeds the limit of {max} bytes"
        )));
    }
    Ok(snap::raw::Decoder::new().decompress_vec(data)?)
}

/// Decodes a snappy-compressed protobuf message.
pub fn decode_snappy<M: Message + Default>(body: &[u8], max: usize) -> Result<M, DecodeError> {
    let raw = snappy_decompress(body, max)?;
    Ok(M::decode(&raw[..])?)
}

#[inline]
pub fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

#[inline]
pub fn uvarint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Reads a uvarint; returns it and the bytes it took.
pub fn get_uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= ((byte & 0x7f) as u64) << (7 * i);
        if byte < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

fn put_len_field(buf: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    buf.push(tag);
    put_uvarint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// The `labels` fields (tag 1, repeated `Label`) of a `TimeSeries`, encoded once per series.
pub fn encode_labels(labels: &Labels) -> Vec<u8> {
    let mut out = Vec::new();
    let mut one = Vec::new();
    for l in labels {
        one.clear();
        put_len_field(&mut one, 0x0a, l.name.as_bytes());
        put_len_field(&mut one, 0x12, l.value.as_bytes());
        put_len_field(&mut out, 0x0a, &one);
    }
    out
}

#[inline]
fn sample_len(t: i64, v: f64) -> usize {
    let mut n = 0;
    if v.to_bits() != 0 {
        n += 9;
    }
    if t != 0 {
        n += 1 + uvarint_len(t as u64);
    }
    n
}

/// Appends one `TimeSeries` (as field 1 of a `WriteRequest`) with pre-encoded `labels`,
/// float `samples` in time order and native `histograms` in time order (field 4, encoded by
/// prost: histograms are few next to floats).
pub fn put_timeseries(
    buf: &mut Vec<u8>,
    labels: &[u8],
    samples: &[(i64, f64)],
    histograms: &[prompb::Histogram],
) {
    let body: usize = labels.len()
        + samples
            .iter()
            .map(|&(t, v)| {
                let n = sample_len(t, v);
                1 + uvarint_len(n as u64) + n
            })
            .sum::<usize>()
        + prost::encoding::message::encoded_len_repeated(4, histograms);
    buf.reserve(body + 11);
    buf.push(0x0a);
    put_uvarint(buf, body as u64);
    buf.extend_from_slice(labels);
    for &(t, v) in samples {
        buf.push(0x12);
        put_uvarint(buf, sample_len(t, v) as u64);
        if v.to_bits() != 0 {
            buf.push(0x09);
            buf.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        if t != 0 {
            buf.push(0x10);
            put_uvarint(buf, t as u64);
        }
    }
    for h in histograms {
        prost::encoding::message::encode(4, h, buf);
    }
}

/// A histogram sample as remote write carries it: the integer form when every count is a
/// non-negative integer (what Prometheus 2.x receivers, which take integer histograms only,
/// accept), the float form otherwise. Custom bounds (schema −53) are included.
pub fn histogram_to_pb(t: i64, h: &FloatHistogram) -> prompb::Histogram {
    use prompb::histogram::{Count, ZeroCount};
    let spans = |s: &[Span]| -> Vec<prompb::BucketSpan> {
        s.iter()
            .map(|s| prompb::BucketSpan {
                offset: s.offset,
                length: s.length,
            })
            .collect()
    };
    let mut pb = prompb::Histogram {
        sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        negative_spans: spans(&h.negative_spans),
        positive_spans: spans(&h.positive_spans),
        reset_hint: hint_to_pb(h.counter_reset_hint) as i32,
        timestamp: t,
        custom_values: h.custom().to_vec(),
        ..Default::default()
    };
    match Histogram::from_float(h) {
        Some(i) => {
            pb.count = Some(Count::CountInt(i.count));
            pb.zero_count = Some(ZeroCount::ZeroCountInt(i.zero_count));
            pb.negative_deltas = i.negative_buckets;
            pb.positive_deltas = i.positive_buckets;
        }
        None => {
            pb.count = Some(Count::CountFloat(h.count));
            pb.zero_count = Some(ZeroCount::ZeroCountFloat(h.zero_count));
            pb.negative_counts = h.negative_buckets.clone();
            pb.positive_counts = h.positive_buckets.clone();
        }
    }
    pb
}

fn hint_to_pb(h: CounterResetHint) -> prompb::histogram::ResetHint {
    use prompb::histogram::ResetHint;
    match h {
        CounterResetHint::Unknown => ResetHint::Unknown,
        CounterResetHint::CounterReset => ResetHint::Yes,
        CounterResetHint::NotCounterReset => ResetHint::No,
        CounterResetHint::Gauge => ResetHint::Gauge,
    }
}

fn hint_from_pb(h: i32) -> CounterResetHint {
    use prompb::histogram::ResetHint;
    match ResetHint::try_from(h) {
        Ok(ResetHint::Yes) => CounterResetHint::CounterReset,
        Ok(ResetHint::No) => CounterResetHint::NotCounterReset,
        Ok(ResetHint::Gauge) => CounterResetHint::Gauge,
        Ok(ResetHint::Unknown) | Err(_) => CounterResetHint::Unknown,
    }
}

/// A received histogram as vigil's float form. The message must be one form throughout: a
/// float count with integer deltas (or the reverse) would lose buckets, so it is refused
/// rather than read the way Prometheus does (taking the fields of the count's form only).
/// Exponential schemas above 8 that Prometheus reserves (up to 52) are reduced to schema 8,
/// as Prometheus' receiver does. The result is not validated here (see
/// [`FloatHistogram::validate`]).
pub fn histogram_from_pb(pb: &prompb::Histogram) -> Result<FloatHistogram, String> {
    use prompb::histogram::{Count, ZeroCount};
    let is_float = matches!(pb.count, Some(Count::CountFloat(_)));
    let spans = |s: &[prompb::BucketSpan]| -> Vec<Span> {
        s.iter()
            .map(|s| Span {
                offset: s.offset,
                length: s.length,
            })
            .collect()
    };
    let custom_values = (!pb.custom_values.is_empty()).then(|| Arc::from(&pb.custom_values[..]));
    let mut h = if is_float {
        if !pb.positive_deltas.is_empty() || !pb.negative_deltas.is_empty() {
            return Err("float histogram (count_float) with integer bucket deltas".into());
        }
        FloatHistogram {
            counter_reset_hint: hint_from_pb(pb.reset_hint),
            schema: pb.schema,
            zero_threshold: pb.zero_threshold,
            zero_count: match pb.zero_count {
                Some(ZeroCount::ZeroCountFloat(z)) => z,
                Some(ZeroCount::ZeroCountInt(z)) => z as f64,
                None => 0.0,
            },
            count: match pb.count {
                Some(Count::CountFloat(c)) => c,
                _ => 0.0,
            },
            sum: pb.sum,
            positive_spans: spans(&pb.positive_spans),
            negative_spans: spans(&pb.negative_spans),
            positive_buckets: pb.positive_counts.clone(),
            negative_buckets: pb.negative_counts.clone(),
            custom_values,
        }
    } else {
        if !pb.positive_counts.is_empty() || !pb.negative_counts.is_empty() {
            return Err("integer histogram (count_int) with float bucket counts".into());
        }
        if let Some(ZeroCount::ZeroCountFloat(_)) = pb.zero_count {
            return Err("integer histogram (count_int) with a float zero count".into());
        }
        Histogram {
            counter_reset_hint: hint_from_pb(pb.reset_hint),
            schema: pb.schema,
            zero_threshold: pb.zero_threshold,
            zero_count: match pb.zero_count {
                Some(ZeroCount::ZeroCountInt(z)) => z,
                _ => 0,
            },
            count: match pb.count {
                Some(Count::CountInt(c)) => c,
                _ => 0,
            },
            sum: pb.sum,
            positive_spans: spans(&pb.positive_spans),
            negative_spans: spans(&pb.negative_spans),
            positive_buckets: pb.positive_deltas.clone(),
            negative_buckets: pb.negative_deltas.clone(),
            custom_values,
        }
        .to_float()
    };
    if h.schema > EXPONENTIAL_SCHEMA_MAX && h.schema <= EXPONENTIAL_SCHEMA_MAX_RESERVED {
        // Spans and counts must be sound before buckets are merged: checked as if at
        // schema 8 (the checks do not depend on the exponential schema).
        let mut probe = h.clone();
        probe.schema = EXPONENTIAL_SCHEMA_MAX;
        probe.validate().map_err(|e| e.to_string())?;
        h = h.copy_to_schema(EXPONENTIAL_SCHEMA_MAX);
    }
    Ok(h)
}

/// Encodes metadata entries as `WriteRequest.metadata` fields (appendable to a request).
pub fn put_metadata(buf: &mut Vec<u8>, md: &[prompb::MetricMetadata]) {
    for m in md {
        buf.push(0x1a);
        put_uvarint(buf, m.encoded_len() as u64);
        m.encode_raw(buf);
    }
}

/// CRC-32 with the Castagnoli polynomial (as Go's `crc32.MakeTable(crc32.Castagnoli)`).
pub fn crc32c(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0x82f6_3b78 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// Appends one frame of a streamed read response: uvarint size, big-endian CRC32C of the
/// message, the message.
pub fn put_frame(buf: &mut Vec<u8>, msg: &[u8]) {
    put_uvarint(buf, msg.len() as u64);
    buf.extend_from_slice(&crc32c(msg).to_be_bytes());
    buf.extend_from_slice(msg);
}

/// Splits complete frames off the front of `buf`: returns each message and the bytes
/// consumed. An incomplete frame at the end is left for more input.
pub fn take_frames(buf: &[u8], max: usize) -> Result<(Vec<&[u8]>, usize), DecodeError> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let Some((len, n)) = get_uvarint(&buf[pos..]) else {
            if buf.len() - pos >= 10 {
                return Err(DecodeError::Frame("bad frame size varint".into()));
            }
            break;
        };
        let len = len as usize;
        if len > max {
            return Err(DecodeError::Frame(format!(
                "frame of {len} bytes exceeds the limit of {max}"
            )));
        }
        let start = pos + n + 4;
        if buf.len() < start + len {
            break;
        }
        let crc = u32::from_be_bytes([
            buf[pos + n],
            buf[pos + n + 1],
            buf[pos + n + 2],
            buf[pos + n + 3],
        ]);
        let msg = &buf[start..start + len];
        if crc32c(msg) != crc {
            return Err(DecodeError::Frame("frame checksum mismatch".into()));
        }
        out.push(msg);
        pos = start + len;
    }
    Ok((out, pos))
}

/// Labels of a protobuf series as vigil labels (sorted by name).
pub fn labels_from_pb(pb: &[prompb::Label]) -> Labels {
    Labels::from_pairs(pb.iter().map(|l| (l.name.as_str(), l.value.as_str())))
}

/// Labels as protobuf labels.
pub fn labels_to_pb(l: &Labels) -> Vec<prompb::Label> {
    l.iter()
        .map(|l| prompb::Label {
            name: l.name.clone(),
            value: l.value.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn snappy_round_trip_and_limit() {
        let data: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        let c = snappy_compress(&data);
        assert!(c.len() < data.len());
        assert_eq!(snappy_decompress(&c, 1 << 20).unwrap(), data);
        assert!(snappy_decompress(&c, 100).is_err());
        assert!(snappy_decompress(b"\xff\xff\xff\xff\x0fgarbage", 1 << 20).is_err());
    }

    #[test]
    fn frames_round_trip_and_detect_corruption() {
        let mut buf = Vec::new();
        put_frame(&mut buf, b"hello");
        put_frame(&mut buf, &[7u8; 300]);
        let (msgs, used) = take_frames(&buf, 1 << 20).unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0], b"hello");
        assert_eq!(used, buf.len());
        // A partial frame waits for more input.
        let (msgs, used) = take_frames(&buf[..buf.len() - 1], 1 << 20).unwrap();
        assert_eq!((msgs.len(), used), (1, 10));
        let mut bad = buf.clone();
        bad[7] ^= 1;
        assert!(take_frames(&bad, 1 << 20).is_err());
    }

    fn exp_hist() -> FloatHistogram {
        FloatHistogram {
            counter_reset_hint: CounterResetHint::NotCounterReset,
            schema: 1,
            zero_threshold: 0.001,
            zero_count: 2.0,
            count: 19.0,
            sum: 42.5,
            positive_spans: vec![
                Span {
                    offset: -2,
                    length: 2,
                },
                Span {
                    offset: 3,
                    length: 1,
                },
            ],
            negative_spans: vec![Span {
                offset: 1,
                length: 3,
            }],
            positive_buckets: vec![4.0, 1.0, 6.0],
            negative_buckets: vec![3.0, 0.0, 3.0],
            custom_values: None,
        }
    }

    /// Encoded with prost and decoded again, then converted back.
    fn through_wire(h: &FloatHistogram) -> (prompb::Histogram, FloatHistogram) {
        let pb = histogram_to_pb(1234, h);
        let bytes = pb.encode_to_vec();
        let back = prompb::Histogram::decode(&bytes[..]).unwrap();
        assert_eq!(back.encode_to_vec(), bytes);
        (back.clone(), histogram_from_pb(&back).unwrap())
    }

    #[test]
    fn integral_histogram_goes_as_integer_form_with_deltas() {
        use prompb::histogram::{Count, ResetHint, ZeroCount};
        let h = exp_hist();
        let (pb, back) = through_wire(&h);
        assert_eq!(pb.count, Some(Count::CountInt(19)));
        assert_eq!(pb.zero_count, Some(ZeroCount::ZeroCountInt(2)));
        assert_eq!(pb.positive_deltas, vec![4, -3, 5]);
        assert_eq!(pb.negative_deltas, vec![3, -3, 3]);
        assert!(pb.positive_counts.is_empty() && pb.negative_counts.is_empty());
        assert_eq!(pb.negative_spans[0].offset, 1);
        assert_eq!(pb.positive_spans[0].offset, -2);
        assert_eq!(pb.reset_hint, ResetHint::No as i32);
        assert_eq!(pb.timestamp, 1234);
        assert!(pb.custom_values.is_empty());
        assert_eq!(back, h);
        back.validate().unwrap();
    }

    #[test]
    fn fractional_histogram_goes_as_float_form() {
        use prompb::histogram::{Count, ZeroCount};
        let mut h = exp_hist();
        h.mul(0.5);
        h.counter_reset_hint = CounterResetHint::Gauge;
        let (pb, back) = through_wire(&h);
        assert_eq!(pb.count, Some(Count::CountFloat(9.5)));
        assert_eq!(pb.zero_count, Some(ZeroCount::ZeroCountFloat(1.0)));
        assert_eq!(pb.positive_counts, vec![2.0, 0.5, 3.0]);
        assert_eq!(pb.negative_counts, vec![1.5, 0.0, 1.5]);
        assert!(pb.positive_deltas.is_empty() && pb.negative_deltas.is_empty());
        assert_eq!(back, h);
    }

    #[test]
    fn custom_bucket_histogram_round_trips_its_bounds() {
        let h = FloatHistogram {
            schema: vigil_model::histogram::CUSTOM_BUCKETS_SCHEMA,
            count: 7.0,
            sum: 12.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 3,
            }],
            positive_buckets: vec![1.0, 2.0, 4.0],
            custom_values: Some(Arc::from(&[0.5, 1.0][..])),
            ..Default::default()
        };
        let (pb, back) = through_wire(&h);
        assert_eq!(pb.schema, -53);
        assert_eq!(pb.custom_values, vec![0.5, 1.0]);
        assert_eq!(back, h);
        back.validate().unwrap();
        // Fractional counts: the float form carries the bounds too.
        let mut f = h.clone();
        f.mul(0.25);
        assert_eq!(through_wire(&f).1, f);
    }

    #[test]
    fn every_reset_hint_maps_both_ways() {
        use prompb::histogram::ResetHint;
        for (hint, pb) in [
            (CounterResetHint::Unknown, ResetHint::Unknown),
            (CounterResetHint::CounterReset, ResetHint::Yes),
            (CounterResetHint::NotCounterReset, ResetHint::No),
            (CounterResetHint::Gauge, ResetHint::Gauge),
        ] {
            let mut h = exp_hist();
            h.counter_reset_hint = hint;
            let (p, back) = through_wire(&h);
            assert_eq!(p.reset_hint, pb as i32);
            assert_eq!(back.counter_reset_hint, hint);
        }
        // An unknown enum value reads as Unknown.
        let mut p = histogram_to_pb(0, &exp_hist());
        p.reset_hint = 9;
        assert_eq!(
            histogram_from_pb(&p).unwrap().counter_reset_hint,
            CounterResetHint::Unknown
        );
    }

    #[test]
    fn staleness_marker_sum_keeps_its_bits() {
        let mut h = exp_hist();
        h.sum = f64::from_bits(vigil_model::STALE_NAN_BITS);
        let (_, back) = through_wire(&h);
        assert_eq!(back.sum.to_bits(), vigil_model::STALE_NAN_BITS);
    }

    #[test]
    fn mixed_integer_and_float_fields_are_refused() {
        use prompb::histogram::{Count, ZeroCount};
        let mut p = histogram_to_pb(0, &exp_hist());
        p.positive_counts = vec![1.0];
        assert!(histogram_from_pb(&p).is_err());
        let mut p = histogram_to_pb(0, &exp_hist());
        p.zero_count = Some(ZeroCount::ZeroCountFloat(2.0));
        assert!(histogram_from_pb(&p).is_err());
        let mut p = histogram_to_pb(0, &exp_hist());
        p.count = Some(Count::CountFloat(19.0));
        assert!(histogram_from_pb(&p).is_err());
    }

    #[test]
    fn reserved_schemas_are_reduced_to_eight() {
        let mut h = exp_hist();
        h.schema = 10;
        let p = histogram_to_pb(0, &h);
        let back = histogram_from_pb(&p).unwrap();
        assert_eq!(back.schema, 8);
        assert_eq!(back.count, 19.0);
        let total: f64 = back.positive_buckets.iter().sum();
        assert_eq!(total, 11.0);
        back.validate().unwrap();
        // Broken spans are reported, not merged.
        let mut p = histogram_to_pb(0, &h);
        p.positive_spans[0].length = 7;
        assert!(histogram_from_pb(&p).is_err());
    }

    #[test]
    fn timeseries_with_histograms_decodes_with_prost() {
        let l = Labels::from_pairs([("__name__", "h"), ("job", "x")]);
        let mut f = exp_hist();
        f.mul(0.5);
        let hs = vec![histogram_to_pb(10, &exp_hist()), histogram_to_pb(20, &f)];
        let mut buf = Vec::new();
        put_timeseries(&mut buf, &encode_labels(&l), &[(5, 1.5)], &hs);
        put_timeseries(&mut buf, &encode_labels(&l), &[], &hs[..1]);
        let got = prompb::WriteRequest::decode(&buf[..]).unwrap();
        assert_eq!(got.timeseries.len(), 2);
        assert_eq!(got.timeseries[0].labels, labels_to_pb(&l));
        assert_eq!(got.timeseries[0].samples.len(), 1);
        assert_eq!(got.timeseries[0].histograms, hs);
        assert!(got.timeseries[1].samples.is_empty());
        assert_eq!(got.timeseries[1].histograms, hs[..1]);
    }

    proptest! {
        #[test]
        fn hand_encoder_decodes_with_prost(
            series in proptest::collection::vec(
                (proptest::collection::btree_map("[a-z_]{1,8}", "\\PC{0,12}", 1..5),
                 proptest::collection::vec((any::<i64>(), any::<f64>()), 0..6)),
                0..6)
        ) {
            let mut buf = Vec::new();
            let mut want = prompb::WriteRequest::default();
            for (labels, samples) in &series {
                let l = Labels::from_pairs(labels.iter().map(|(a, b)| (a.as_str(), b.as_str())));
                put_timeseries(&mut buf, &encode_labels(&l), samples, &[]);
                want.timeseries.push(prompb::TimeSeries {
                    labels: labels_to_pb(&l),
                    samples: samples.iter().map(|&(t, v)| prompb::Sample { value: v, timestamp: t }).collect(),
                    exemplars: vec![],
                    histograms: vec![],
                });
            }
            let got = prompb::WriteRequest::decode(&buf[..]).unwrap();
            prop_assert_eq!(got.timeseries.len(), want.timeseries.len());
            for (g, w) in got.timeseries.iter().zip(&want.timeseries) {
                prop_assert_eq!(&g.labels, &w.labels);
                let gs: Vec<(i64, u64)> = g.samples.iter().map(|s| (s.timestamp, s.value.to_bits())).collect();
                let ws: Vec<(i64, u64)> = w.samples.iter().map(|s| (s.timestamp, s.value.to_bits())).collect();
                prop_assert_eq!(gs, ws);
            }
        }
    }
}
