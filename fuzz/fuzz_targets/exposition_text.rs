#![no_main]
//! Prometheus text format 0.0.4: never panic, errors name a line of the input.
use libfuzzer_sys::fuzz_target;
#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| common::check(data, vigil_exposition::Format::PrometheusText));
