//! libFuzzer target `json_rpc_inspect`: see `targets::json_rpc_inspect`.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::json_rpc_inspect(data));
