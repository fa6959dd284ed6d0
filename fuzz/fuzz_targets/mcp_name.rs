//! libFuzzer target `mcp_name`: see `targets::mcp_name`.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::mcp_name(data));
