//! libFuzzer target `auth_headers`: see `targets::auth_headers`.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::auth_headers(data));
