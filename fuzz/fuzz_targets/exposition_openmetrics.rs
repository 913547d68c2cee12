#![no_main]
//! OpenMetrics 1.0 text: never panic, errors name a line of the input.
use libfuzzer_sys::fuzz_target;
#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| common::check(data, vigil_exposition::Format::OpenMetrics));
