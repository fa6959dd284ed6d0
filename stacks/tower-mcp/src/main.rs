//! The tower-mcp server behind the stack, or bare (`BARE=1`), on `BIND`
//! (default `127.0.0.1:3000`); `MCP_SSE=1` answers POSTs as SSE streams.

use tower_mcp_auth::api_key::ApiKeys;
use tower_mcp_auth_stack_tower_mcp::{app, bare, Settings, MCP_PATH};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flag = |name: &str| std::env::var(name).is_ok_and(|v| v == "1");
    let addr = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let public_url =
        std::env::var("PUBLIC_URL").unwrap_or_else(|_| format!("http://{addr}{MCP_PATH}"));
    let (sse, is_bare) = (flag("MCP_SSE"), flag("BARE"));
    let router = if is_bare {
        bare(&public_url, sse)?
    } else {
        let per_minute = match std::env::var("RATE_LIMIT_PER_MINUTE") {
            Ok(v) => v
                .parse()
                .map_err(|_| "RATE_LIMIT_PER_MINUTE: not a number")?,
            Err(_) => 100,
        };
        app(&Settings {
            public_url: public_url.clone(),
            api_keys: ApiKeys::from_env("API_KEY")?,
            jwt_secret: tower_mcp_auth::secret_from_env("JWT_SECRET")?,
            per_minute,
            sse,
        })?
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("tower-mcp server on {public_url} (bare: {is_bare}, sse: {sse})");
    // The peer address: anonymous callers' rate-limit key.
    let app = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).await?;
    Ok(())
}
