//! Demo mode (no `API_KEY`): the generated key and secret, a sample token
//! and a ready `curl` line, printed at start.

use secrecy::{ExposeSecret, SecretString};
use tower_mcp_auth::{jwt::Hs256Signer, stack::Settings};

/// An HS256 access token for `subject` with `scopes`, valid for an hour,
/// whose audience is `public_url`: what an authorization server sharing
/// `JWT_SECRET` would issue.
///
/// # Panics
///
/// When `secret` is shorter than the validator takes (32 bytes): never
/// for the secrets [`Settings::from_env`] accepts or generates.
#[must_use]
pub fn mint_token(
    secret: &SecretString,
    public_url: &str,
    subject: &str,
    scopes: &[&str],
) -> String {
    Hs256Signer::new(secret)
        .and_then(|signer| {
            (signer.token(public_url))
                .subject(subject)
                .client_id("mcp-demo")
                .scopes(scopes.iter().copied())
                .sign()
        })
        .expect("a JWT_SECRET the validator takes signs")
}

/// The demo banner: the generated key, a `curl` line initializing a
/// session through the gateway, and (with a generated `JWT_SECRET`) a
/// sample token carrying every scope `scopes` names.
#[must_use]
pub fn banner(config: &Settings, key: &SecretString, scopes: &[&str]) -> String {
    let url = &config.public_url;
    let key = key.expose_secret();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1.0"}}}"#;
    let mut banner = format!(
        "\nDemo mode: API_KEY is not set, so this run generated an API key (valid until exit):\n\n    \
         {key}\n\nInitialize an MCP session with the server behind the gateway:\n\n    \
         curl -i {url} \\\n      \
         -H 'Content-Type: application/json' \\\n      \
         -H 'Accept: application/json, text/event-stream' \\\n      \
         -H 'X-API-Key: {key}' \\\n      \
         -d '{body}'\n\n\
         Set API_KEY (comma separated for several) to choose the keys yourself."
    );
    if let (true, Some(secret)) = (config.generated_jwt_secret, &config.jwt_secret) {
        let token = mint_token(secret, url, "demo-user", scopes);
        banner.push_str(&format!(
            "\n\nJWT_SECRET is not set either, so bearer tokens are HS256-signed with a generated secret.\n\
             A sample access token (subject demo-user, every scope the policy names, valid for an hour):\n\n    \
             {token}\n\nUse it with -H 'Authorization: Bearer <token>' in place of the X-API-Key line."
        ));
    }
    banner.push('\n');
    banner
}
