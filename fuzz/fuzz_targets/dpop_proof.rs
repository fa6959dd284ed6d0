//! libFuzzer target `dpop_proof`: see `targets::dpop_proof`.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::dpop_proof(data));
