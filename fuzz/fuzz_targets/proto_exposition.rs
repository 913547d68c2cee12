#![no_main]
//! Protobuf exposition (delimited MetricFamily): never panic, under every histogram option;
//! errors point inside the input; every series' labels re-lex cleanly.
use libfuzzer_sys::fuzz_target;
use vigil_exposition::{Entry, ProtoOptions, ProtoParser, ProtoScratch};

fuzz_target!(|data: &[u8]| {
    let mut scratch = ProtoScratch::default();
    for (native_histograms, keep_classic) in [(true, false), (true, true), (false, false)] {
        let opts = ProtoOptions { native_histograms, keep_classic };
        for entry in ProtoParser::new(data, opts, &mut scratch) {
            match entry {
                Ok(Entry::Sample(s)) => {
                    assert!(!s.series.is_empty());
                    for (name, _) in s.labels() {
                        assert!(!name.is_empty(), "empty label name");
                    }
                }
                Ok(Entry::Histogram(h)) => {
                    let n = &h.histogram;
                    let want: u64 = n.positive_spans.iter().map(|s| u64::from(s.length)).sum();
                    assert_eq!(want, n.positive_counts.len() as u64);
                    for (name, _) in h.labels() {
                        assert!(!name.is_empty(), "empty label name");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    assert!(e.column >= 1 && e.column <= data.len().max(1));
                    assert!(!e.message.is_empty());
                }
            }
        }
    }
});
