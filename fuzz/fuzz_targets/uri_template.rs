//! libFuzzer target `uri_template`: see `targets::uri_template`.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::uri_template(data));
