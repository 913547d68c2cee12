#![no_main]
//! The remote-write receiver's and remote read's decode paths on arbitrary bodies: snappy
//! (with the receiver's size limit), then protobuf `WriteRequest` appended through the
//! receiver's own code into a checking appender, `ReadRequest` turned into matchers, and the
//! remote-read client's side (a `ReadResponse`, and streamed chunked frames whose XOR chunks
//! are decoded). Nothing may panic.
//!
//! The first byte picks how the rest is used: raw body through snappy, or (so the fuzzer need
//! not produce valid snappy) the rest compressed here first.
use libfuzzer_sys::fuzz_target;
use prost::Message;
use vigil_model::histogram::FloatHistogram;
use vigil_model::{
    AppendError, Appendable, Appender, Labels, SeriesRef, StorageError, Timestamp,
};
use vigil_remote::{ServerMetrics, codec, prompb, server};

const MAX: usize = 1 << 20;

struct Check;

impl Appender for Check {
    fn append(&mut self, _: Option<SeriesRef>, l: &Labels, _: Timestamp, _: f64) -> Result<SeriesRef, AppendError> {
        assert!(l.metric_name().is_some_and(|n| !n.is_empty()), "unnamed series {l}");
        Ok(0)
    }
    fn append_histogram(&mut self, _: Option<SeriesRef>, l: &Labels, _: Timestamp, h: &FloatHistogram) -> Result<SeriesRef, AppendError> {
        assert!(l.metric_name().is_some_and(|n| !n.is_empty()), "unnamed series {l}");
        h.validate().expect("the receiver validates histograms before appending");
        Ok(0)
    }
    fn commit(self: Box<Self>) -> Result<(), StorageError> {
        Ok(())
    }
    fn rollback(self: Box<Self>) {}
}

struct Db;

impl Appendable for Db {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(Check)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let body = if mode & 1 == 1 { rest.to_vec() } else { codec::snappy_compress(rest) };
    let metrics = ServerMetrics::default();
    if let Ok(req) = codec::decode_snappy::<prompb::WriteRequest>(&body, MAX) {
        let _ = server::append_request(&Db, &req, &metrics);
    }
    if let Ok(req) = codec::decode_snappy::<prompb::ReadRequest>(&body, MAX) {
        for q in &req.queries {
            if let Ok(ms) = server::matchers_from_pb(&q.matchers) {
                assert_eq!(ms.len(), q.matchers.len());
            }
        }
    }
    if let Ok(resp) = codec::decode_snappy::<prompb::ReadResponse>(&body, MAX) {
        for r in &resp.results {
            for ts in &r.timeseries {
                std::hint::black_box(codec::labels_from_pb(&ts.labels));
                for h in &ts.histograms {
                    let _ = codec::histogram_from_pb(h);
                }
            }
        }
    }
    // The streamed (chunked) remote-read response, as the client reads it: frames, then
    // messages, then XOR chunks. With bit 1 of the first byte set, the rest is one frame
    // framed here (a valid length and CRC), so the message decoder is reached.
    let framed;
    let stream = if mode & 2 == 2 {
        let mut b = Vec::new();
        codec::put_frame(&mut b, rest);
        framed = b;
        &framed[..]
    } else {
        rest
    };
    if let Ok((frames, used)) = codec::take_frames(stream, MAX) {
        assert!(used <= stream.len());
        for f in frames {
            if let Ok(msg) = prompb::ChunkedReadResponse::decode(f) {
                for s in &msg.chunked_series {
                    std::hint::black_box(codec::labels_from_pb(&s.labels));
                    for c in &s.chunks {
                        if let Some(samples) = vigil_remote::xor::decode(&c.data) {
                            std::hint::black_box(samples);
                        }
                    }
                }
            }
        }
    }
});
