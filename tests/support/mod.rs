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
        config::{mint_token, Config, DEFAULT_BIND, DEMO_KEY_NAME, MCP_PATH, SCOPES},
        policy,
        transport::mcp_service,
    };
}
