//! Prometheus' remote-storage protocol messages (package `prometheus`, remote write 1.0 and
//! remote read), written here as `prost` structs from the protocol's specification
//! (<https://prometheus.io/docs/specs/prw/remote_write_spec/> and the remote-read API docs):
//! each field carries the number and wire type the specification gives it.
//!
//! Hand-written rather than generated so the repository carries no other project's `.proto`
//! files and the build needs no `protoc`. Only the messages vigil sends or serves are here.
//! `tests::wire_format_is_prometheus` pins the field numbers against bytes written by hand
//! from the specification, so a wrong tag fails a test, not an interop run.

#![allow(clippy::derive_partial_eq_without_eq)]

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct MetricMetadata {
    #[prost(enumeration = "metric_metadata::MetricType", tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: ::prost::alloc::string::String,
    #[prost(string, tag = "4")]
    pub help: ::prost::alloc::string::String,
    #[prost(string, tag = "5")]
    pub unit: ::prost::alloc::string::String,
}

pub mod metric_metadata {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum MetricType {
        Unknown = 0,
        Counter = 1,
        Gauge = 2,
        Histogram = 3,
        Gaugehistogram = 4,
        Summary = 5,
        Info = 6,
        Stateset = 7,
    }
}

#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Exemplar {
    #[prost(message, repeated, tag = "1")]
    pub labels: ::prost::alloc::vec::Vec<Label>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// A native histogram sample, integer or float. The integer form sets `count_int`,
/// `zero_count_int` and the `*_deltas` (each bucket as the difference to the previous one);
/// the float form sets `count_float`, `zero_count_float` and the absolute `*_counts`.
/// `custom_values` carries the bounds of schema −53 (custom buckets); the remote-write 1.0
/// specification does not define it, so senders leave it out (see `docs/scale-out.md`).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Histogram {
    #[prost(oneof = "histogram::Count", tags = "1, 2")]
    pub count: ::core::option::Option<histogram::Count>,
    #[prost(double, tag = "3")]
    pub sum: f64,
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    #[prost(oneof = "histogram::ZeroCount", tags = "6, 7")]
    pub zero_count: ::core::option::Option<histogram::ZeroCount>,
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: ::prost::alloc::vec::Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "9")]
    pub negative_deltas: ::prost::alloc::vec::Vec<i64>,
    #[prost(double, repeated, tag = "10")]
    pub negative_counts: ::prost::alloc::vec::Vec<f64>,
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: ::prost::alloc::vec::Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: ::prost::alloc::vec::Vec<i64>,
    #[prost(double, repeated, tag = "13")]
    pub positive_counts: ::prost::alloc::vec::Vec<f64>,
    #[prost(enumeration = "histogram::ResetHint", tag = "14")]
    pub reset_hint: i32,
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
    #[prost(double, repeated, tag = "16")]
    pub custom_values: ::prost::alloc::vec::Vec<f64>,
}

pub mod histogram {
    /// What the producer knows about a counter reset at this sample.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum ResetHint {
        Unknown = 0,
        Yes = 1,
        No = 2,
        Gauge = 3,
    }

    /// The observation count: integer (integer histograms) or float.
    #[derive(Clone, Copy, PartialEq, ::prost::Oneof)]
    pub enum Count {
        #[prost(uint64, tag = "1")]
        CountInt(u64),
        #[prost(double, tag = "2")]
        CountFloat(f64),
    }

    /// The zero bucket's count, in the same form as the count.
    #[derive(Clone, Copy, PartialEq, ::prost::Oneof)]
    pub enum ZeroCount {
        #[prost(uint64, tag = "6")]
        ZeroCountInt(u64),
        #[prost(double, tag = "7")]
        ZeroCountFloat(f64),
    }
}

/// A run of `length` consecutive buckets, `offset` indices after the previous run (the first
/// run's offset is its first bucket's index).
#[derive(Clone, Copy, PartialEq, Eq, ::prost::Message)]
pub struct BucketSpan {
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: ::prost::alloc::vec::Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: ::prost::alloc::vec::Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub exemplars: ::prost::alloc::vec::Vec<Exemplar>,
    #[prost(message, repeated, tag = "4")]
    pub histograms: ::prost::alloc::vec::Vec<Histogram>,
}

#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: ::prost::alloc::string::String,
    #[prost(string, tag = "2")]
    pub value: ::prost::alloc::string::String,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct LabelMatcher {
    #[prost(enumeration = "label_matcher::Type", tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub name: ::prost::alloc::string::String,
    #[prost(string, tag = "3")]
    pub value: ::prost::alloc::string::String,
}

pub mod label_matcher {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum Type {
        Eq = 0,
        Neq = 1,
        Re = 2,
        Nre = 3,
    }
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ReadHints {
    #[prost(int64, tag = "1")]
    pub step_ms: i64,
    #[prost(string, tag = "2")]
    pub func: ::prost::alloc::string::String,
    #[prost(int64, tag = "3")]
    pub start_ms: i64,
    #[prost(int64, tag = "4")]
    pub end_ms: i64,
    #[prost(string, repeated, tag = "5")]
    pub grouping: ::prost::alloc::vec::Vec<::prost::alloc::string::String>,
    #[prost(bool, tag = "6")]
    pub by: bool,
    #[prost(int64, tag = "7")]
    pub range_ms: i64,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Chunk {
    #[prost(int64, tag = "1")]
    pub min_time_ms: i64,
    #[prost(int64, tag = "2")]
    pub max_time_ms: i64,
    #[prost(enumeration = "chunk::Encoding", tag = "3")]
    pub r#type: i32,
    #[prost(bytes = "vec", tag = "4")]
    pub data: ::prost::alloc::vec::Vec<u8>,
}

pub mod chunk {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum Encoding {
        Unknown = 0,
        Xor = 1,
        Histogram = 2,
        FloatHistogram = 3,
    }
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ChunkedSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: ::prost::alloc::vec::Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub chunks: ::prost::alloc::vec::Vec<Chunk>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: ::prost::alloc::vec::Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: ::prost::alloc::vec::Vec<MetricMetadata>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ReadRequest {
    #[prost(message, repeated, tag = "1")]
    pub queries: ::prost::alloc::vec::Vec<Query>,
    #[prost(enumeration = "read_request::ResponseType", repeated, tag = "2")]
    pub accepted_response_types: ::prost::alloc::vec::Vec<i32>,
}

pub mod read_request {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum ResponseType {
        Samples = 0,
        StreamedXorChunks = 1,
    }
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ReadResponse {
    #[prost(message, repeated, tag = "1")]
    pub results: ::prost::alloc::vec::Vec<QueryResult>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Query {
    #[prost(int64, tag = "1")]
    pub start_timestamp_ms: i64,
    #[prost(int64, tag = "2")]
    pub end_timestamp_ms: i64,
    #[prost(message, repeated, tag = "3")]
    pub matchers: ::prost::alloc::vec::Vec<LabelMatcher>,
    #[prost(message, optional, tag = "4")]
    pub hints: ::core::option::Option<ReadHints>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct QueryResult {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: ::prost::alloc::vec::Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ChunkedReadResponse {
    #[prost(message, repeated, tag = "1")]
    pub chunked_series: ::prost::alloc::vec::Vec<ChunkedSeries>,
    #[prost(int64, tag = "2")]
    pub query_index: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn wire_format_is_prometheus() {
        // WriteRequest{timeseries: [{labels: [{name: "a", value: "b"}],
        //                            samples: [{value: 1.0, timestamp: 5}]}]}
        // field 1 (timeseries, LEN) { field 1 (labels, LEN) { 1: "a", 2: "b" },
        //                             field 2 (samples, LEN) { 1: double 1.0, 2: varint 5 } }
        let label = [0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b'];
        let mut sample = vec![0x12, 0x0b, 0x09];
        sample.extend_from_slice(&1.0f64.to_le_bytes());
        sample.extend_from_slice(&[0x10, 0x05]);
        let mut ts = label.to_vec();
        ts.extend_from_slice(&sample);
        let mut want = vec![0x0a, ts.len() as u8];
        want.extend_from_slice(&ts);
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label {
                    name: "a".into(),
                    value: "b".into(),
                }],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 5,
                }],
                exemplars: vec![],
                histograms: vec![],
            }],
            metadata: vec![],
        };
        assert_eq!(req.encode_to_vec(), want);
        assert_eq!(WriteRequest::decode(&want[..]).unwrap(), req);

        // ReadRequest{queries: [{start: 1, end: 2, matchers: [{type: RE, name: "n", value: "v"}]}],
        //             accepted_response_types: [STREAMED_XOR_CHUNKS]} (packed repeated enum)
        let m = [0x08, 0x02, 0x12, 0x01, b'n', 0x1a, 0x01, b'v'];
        let mut q = vec![0x08, 0x01, 0x10, 0x02, 0x1a, m.len() as u8];
        q.extend_from_slice(&m);
        let mut want = vec![0x0a, q.len() as u8];
        want.extend_from_slice(&q);
        want.extend_from_slice(&[0x12, 0x01, 0x01]);
        let rr = ReadRequest {
            queries: vec![Query {
                start_timestamp_ms: 1,
                end_timestamp_ms: 2,
                matchers: vec![LabelMatcher {
                    r#type: label_matcher::Type::Re as i32,
                    name: "n".into(),
                    value: "v".into(),
                }],
                hints: None,
            }],
            accepted_response_types: vec![read_request::ResponseType::StreamedXorChunks as i32],
        };
        assert_eq!(rr.encode_to_vec(), want);
        assert_eq!(ReadRequest::decode(&want[..]).unwrap(), rr);
    }

    #[test]
    fn histogram_wire_format_is_prometheus() {
        // TimeSeries{histograms: [{count_int: 3, schema: -1, positive_spans: [{offset: -1,
        // length: 2}], positive_deltas: [2, -1], reset_hint: YES, timestamp: 7}]}
        // schema and offsets are zigzag (sint32), deltas zigzag and packed (sint64).
        let h = [
            0x08, 0x03, // 1: count_int 3
            0x20, 0x01, // 4: schema zigzag(-1)
            0x5a, 0x04, 0x08, 0x01, 0x10, 0x02, // 11: span {1: zigzag(-1), 2: 2}
            0x62, 0x02, 0x04, 0x01, // 12: packed zigzag [2, -1]
            0x70, 0x01, // 14: reset_hint YES
            0x78, 0x07, // 15: timestamp 7
        ];
        let mut want = vec![0x22, h.len() as u8];
        want.extend_from_slice(&h);
        let ts = TimeSeries {
            histograms: vec![Histogram {
                count: Some(histogram::Count::CountInt(3)),
                schema: -1,
                positive_spans: vec![BucketSpan {
                    offset: -1,
                    length: 2,
                }],
                positive_deltas: vec![2, -1],
                reset_hint: histogram::ResetHint::Yes as i32,
                timestamp: 7,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(ts.encode_to_vec(), want);
        assert_eq!(TimeSeries::decode(&want[..]).unwrap(), ts);

        // The float form: count_float (2), sum (3), zero_threshold (5), zero_count_float (7),
        // negative_spans (8), negative_counts (10, packed doubles), custom_values (16).
        let d = |v: f64| v.to_le_bytes();
        let mut h = vec![0x11];
        h.extend_from_slice(&d(2.5));
        h.push(0x19);
        h.extend_from_slice(&d(4.0));
        h.push(0x29);
        h.extend_from_slice(&d(0.5));
        h.push(0x39);
        h.extend_from_slice(&d(1.0));
        h.extend_from_slice(&[0x42, 0x04, 0x08, 0x04, 0x10, 0x01]); // span {offset 2, length 1}
        h.extend_from_slice(&[0x52, 0x08]);
        h.extend_from_slice(&d(1.5));
        h.extend_from_slice(&[0x70, 0x03]); // GAUGE
        h.extend_from_slice(&[0x82, 0x01, 0x08]); // 16: packed, 8 bytes
        h.extend_from_slice(&d(10.0));
        let want = h;
        let fh = Histogram {
            count: Some(histogram::Count::CountFloat(2.5)),
            sum: 4.0,
            zero_threshold: 0.5,
            zero_count: Some(histogram::ZeroCount::ZeroCountFloat(1.0)),
            negative_spans: vec![BucketSpan {
                offset: 2,
                length: 1,
            }],
            negative_counts: vec![1.5],
            reset_hint: histogram::ResetHint::Gauge as i32,
            custom_values: vec![10.0],
            ..Default::default()
        };
        assert_eq!(fh.encode_to_vec(), want);
        assert_eq!(Histogram::decode(&want[..]).unwrap(), fh);
    }
}
