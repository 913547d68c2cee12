#![no_main]
//! OTLP receiver bodies: decoding (protobuf, OTLP/JSON, gzip) never panics, and a request that
//! decodes translates without panicking, every data point accounted for and every appended
//! series named.
use libfuzzer_sys::fuzz_target;
use vigil_model::histogram::FloatHistogram;
use vigil_model::{AppendError, Appender, Labels, SeriesRef, StorageError, Timestamp};
use vigil_remote::otlp::decode::{self, DecodeError, Format};
use vigil_remote::otlp::translate::{self, Settings, TranslateError};

struct Check;

impl Appender for Check {
    fn append(&mut self, _: Option<SeriesRef>, l: &Labels, _: Timestamp, _: f64) -> Result<SeriesRef, AppendError> {
        assert!(l.metric_name().is_some_and(|n| !n.is_empty()), "unnamed series {l}");
        Ok(0)
    }
    fn append_histogram(&mut self, _: Option<SeriesRef>, l: &Labels, _: Timestamp, h: &FloatHistogram) -> Result<SeriesRef, AppendError> {
        assert!(l.metric_name().is_some_and(|n| !n.is_empty()), "unnamed series {l}");
        h.validate().expect("translated histograms are validated");
        Ok(0)
    }
    fn commit(self: Box<Self>) -> Result<(), StorageError> {
        Ok(())
    }
    fn rollback(self: Box<Self>) {}
}

fuzz_target!(|data: &[u8]| {
    for format in [Format::Protobuf, Format::Json] {
        for encoding in ["", "gzip"] {
            match decode::decode(data, format, encoding, 1 << 20) {
                Ok(req) => {
                    let points = decode::count_points(&req);
                    match translate::translate(&req, &Settings::default(), &mut Check) {
                        Ok(out) => {
                            assert_eq!(out.points, points);
                            assert!(out.rejected <= points);
                        }
                        Err(TranslateError::Delta { count, .. }) => assert!(count > 0),
                        Err(e) => panic!("the checking appender refuses nothing: {e}"),
                    }
                }
                Err(DecodeError::ContentType(_)) => panic!("the format is given"),
                Err(_) => {}
            }
        }
    }
});
