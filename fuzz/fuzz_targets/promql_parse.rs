#![no_main]
//! PromQL parser: never panic; whatever parses prints to a query that parses again.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else {
        return;
    };
    let _ = vigil_promql_parser::parse_metric_selector(q);
    if let Ok(e) = vigil_promql_parser::parse(q) {
        let printed = e.to_string();
        if let Err(err) = vigil_promql_parser::parse(&printed) {
            panic!("{q:?} printed as {printed:?} does not parse: {err}");
        }
    }
});
