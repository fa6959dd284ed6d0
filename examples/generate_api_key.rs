//! Makes a new API key and the digest-file line for it.
//!
//! ```text
//! cargo run --example generate_api_key -- ci-bot read:data write:data
//! ```
//!
//! Give the key to the client; put the line (which holds only a SHA-256
//! digest) into the server's key file, read with
//! `ApiKeys::from_digest_file` and reloaded with
//! `ApiKeys::reload_digest_file`.

use secrecy::ExposeSecret;
use tower_mcp_auth::api_key::ApiKeys;

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "service".to_owned());
    let scopes: Vec<String> = args.collect();
    let key = ApiKeys::generate();
    println!(
        "key (give to the client, store nowhere else):\n  {}",
        key.expose_secret()
    );
    println!(
        "digest line (for the server's key file):\n  {}",
        ApiKeys::digest_line(&name, &key, &scopes)
    );
}
