//! The one place the tests reach the example server
//! (`examples/mcp_server/`): its files compile into each test that says
//! `mod support;`, so the tests exercise exactly what
//! `cargo run --example mcp_server` serves, and the example carries
//! nothing for them.

#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/mcp_server/main.rs"]
mod example;

/// The example's items the tests use.
#[allow(unused_imports)]
pub mod mcp_server {
    pub use super::example::{
        app,
        config::{demo_banner, mint_token, Config, DEFAULT_BIND, DEMO_KEY_NAME, MCP_PATH},
        load_policy, policy,
        tools::conformance,
        transport::mcp_service,
    };

    /// Every scope the example's rules name: its metadata's
    /// `scopes_supported`, and what its demo token carries.
    #[allow(dead_code)]
    pub static SCOPES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
        let scopes = policy().expect("the example's rules").scopes_named();
        scopes
            .iter()
            .map(|s| &*String::leak(s.to_owned()))
            .collect()
    });
}
