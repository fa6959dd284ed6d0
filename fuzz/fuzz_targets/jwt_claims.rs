//! libFuzzer target `jwt_claims`: see `targets::jwt_claims`.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::jwt_claims(data));
