//! `mcp-auth-gateway`: see the crate documentation and `gateway/README.md`
//! for the variables.

use tower_mcp_auth_gateway::{config::GatewayConfig, demo, stack};

const USAGE: &str = "\
mcp-auth-gateway: tower-mcp-auth's stack in front of an MCP server (Streamable HTTP)

Usage: mcp-auth-gateway [--help | --version]

Configured by the environment (gateway/README.md lists every variable):
  UPSTREAM_URL      the MCP server's endpoint (default http://127.0.0.1:8000/mcp)
  BIND              listen address (default 127.0.0.1:3000)
  PUBLIC_URL        the URL clients use (default http://<BIND>/mcp)
  API_KEY           accepted X-API-Key values; unset: demo mode
  JWT_SECRET        HS256 secret of bearer tokens
  POLICY_FILE       rules per tool (JSON or TOML), re-read on SIGHUP
  RATE_LIMIT_PER_MINUTE, UPSTREAM_AUTHORIZATION, UPSTREAM_HEADER_<NAME>, UPSTREAM_CA_FILE,
  UPSTREAM_CONNECT_TIMEOUT_SECS, UPSTREAM_TIMEOUT_SECS, UPSTREAM_MAX_CONNECTIONS,
  UPSTREAM_IDENTITY_SECRET, UPSTREAM_IDENTITY_AUDIENCE, UPSTREAM_IDENTITY_TTL_SECS
                    a short-lived JWT per request telling the upstream who calls
  SHUTDOWN_GRACE_SECS  how long open streams may run after SIGTERM (default 10)
  METRICS_BIND      serve Prometheus metrics at http://<METRICS_BIND>/metrics
";

#[tokio::main]
async fn main() {
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("-h" | "--help") => {
            print!("{USAGE}");
            return;
        }
        Some("-V" | "--version") => {
            println!("mcp-auth-gateway {}", env!("CARGO_PKG_VERSION"));
            return;
        }
        Some(other) => exit(format!("unknown argument `{other}`\n\n{USAGE}")),
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter.unwrap_or_else(|_| "info".into()))
        .init();

    let gateway = GatewayConfig::from_env().unwrap_or_else(config_error);
    let listener = (tokio::net::TcpListener::bind(gateway.bind).await)
        .unwrap_or_else(|e| exit(format!("cannot listen on {} (BIND): {e}", gateway.bind)));
    // The address bound (BIND may ask for port 0), for the default PUBLIC_URL.
    let bound = listener.local_addr().unwrap_or(gateway.bind);
    let stack = stack::settings_from_env(bound).unwrap_or_else(config_error);
    let app = tower_mcp_auth_gateway::app(&gateway.upstream, &stack)
        .await
        .unwrap_or_else(config_error);
    println!(
        "mcp-auth-gateway listening on {bound} (public URL {}), forwarding to {}",
        stack.public_url, gateway.upstream.url
    );
    #[cfg(feature = "metrics")]
    if let Some(addr) = gateway.metrics_bind {
        let handle = tower_mcp_auth_gateway::metrics::install()
            .unwrap_or_else(|e| exit(format!("cannot start the metrics (METRICS_BIND): {e}")));
        let listener = (tokio::net::TcpListener::bind(addr).await)
            .unwrap_or_else(|e| exit(format!("cannot listen on {addr} (METRICS_BIND): {e}")));
        let bound = listener.local_addr().unwrap_or(addr);
        println!("mcp-auth-gateway metrics at http://{bound}/metrics");
        tokio::spawn(tower_mcp_auth_gateway::metrics::serve(listener, handle));
    }
    if let (Some(key), Ok(policy)) = (&stack.generated_key, stack::load_policy(&stack)) {
        let scopes = policy.scopes_named();
        let scopes: Vec<&str> = scopes.iter().collect();
        println!("{}", demo::banner(&stack, key, &scopes));
    }
    if let Err(e) =
        tower_mcp_auth_gateway::serve(listener, app, shutdown(), gateway.shutdown_grace).await
    {
        exit(format!("server error: {e}"));
    }
    eprintln!("mcp-auth-gateway stopped");
}

/// Completes on Ctrl-C or (Unix) SIGTERM.
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

fn config_error<T>(e: tower_mcp_auth::ConfigError) -> T {
    exit(format!("configuration error: {e}"))
}

fn exit(message: String) -> ! {
    eprintln!("{message}");
    std::process::exit(1)
}
