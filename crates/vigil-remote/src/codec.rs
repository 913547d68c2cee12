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
