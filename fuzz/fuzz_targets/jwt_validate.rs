//! libFuzzer target `jwt_validate`: see `targets::jwt_validate`.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::jwt_validate(data));
