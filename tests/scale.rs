//! Scale (issue 18): a reload of a large key set under load, through a real
//! loopback HTTP server, serves every request with either the old or the
//! new set; template precedence holds in a policy of 10,000 templates.
#![cfg(feature = "mcp")]

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use axum::{routing::get, Router};
use secrecy::SecretString;
use tower_mcp_auth::{
    api_key::{ApiKeyLayer, ApiKeys},
    mcp::McpPolicy,
    AuthScheme, Principal, Rule, Scopes,
};

const SHARED: &str = "mcp_sk_shared-key-in-both-sets-0123456789";
const OLD_ONLY: &str = "mcp_sk_only-in-the-old-set-0123456789abc";
const NEW_ONLY: &str = "mcp_sk_only-in-the-new-set-0123456789abc";
const FILLER: usize = 5_000;

/// A digest file: the shared key named and scoped `version`, the set's own
/// key, and `FILLER` other digests.
fn write_set(path: &Path, version: &str, own: &str, own_name: &str) {
    let mut text = ApiKeys::digest_line(version, &SecretString::from(SHARED), [version]);
    text.push('\n');
    text.push_str(&ApiKeys::digest_line(
        own_name,
        &SecretString::from(own),
        [version],
    ));
    for i in 0..FILLER {
        text.push_str(&format!("\nfiller-{i}:{:064x}", i + 1));
    }
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_serves_the_old_or_the_new_set() {
    let dir = std::env::temp_dir().join(format!("tma-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (old, new) = (dir.join("old.txt"), dir.join("new.txt"));
    write_set(&old, "v1", OLD_ONLY, "old");
    write_set(&new, "v2", NEW_ONLY, "new");
    let keys = ApiKeys::from_digest_file(&old).unwrap();

    let app = Router::new()
        .route(
            "/",
            get(|p: Principal| async move { format!("{}|{}", p.name(), p.scopes()) }),
        )
        .layer(ApiKeyLayer::new(keys.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // Reload back and forth on a thread of its own while clients call.
    let stop = Arc::new(AtomicBool::new(false));
    let reloader = {
        let (keys, stop) = (keys.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut reloads = 0;
            while !stop.load(Ordering::Relaxed) {
                let path = if reloads % 2 == 0 { &new } else { &old };
                keys.reload_digest_file(path).unwrap();
                reloads += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            reloads
        })
    };

    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut seen = [0usize; 2];
                let mut n = 0usize;
                while Instant::now() < deadline {
                    let key = [SHARED, OLD_ONLY, NEW_ONLY][(n + c) % 3];
                    n += 1;
                    let res = client
                        .get(&url)
                        .header("x-api-key", key)
                        .send()
                        .await
                        .unwrap();
                    let status = res.status().as_u16();
                    let body = res.text().await.unwrap();
                    match (key, status, body.as_str()) {
                        (SHARED, 200, "v1|v1") => seen[0] += 1,
                        (SHARED, 200, "v2|v2") => seen[1] += 1,
                        (OLD_ONLY, 200, "old|v1") | (NEW_ONLY, 200, "new|v2") => {}
                        (OLD_ONLY | NEW_ONLY, 401, _) => {}
                        other => panic!("neither the old nor the new set: {other:?}"),
                    }
                }
                (seen, n)
            })
        })
        .collect();
    let mut seen = [0usize; 2];
    let mut requests = 0;
    for c in clients {
        let (s, n) = c.await.unwrap();
        seen = [seen[0] + s[0], seen[1] + s[1]];
        requests += n;
    }
    stop.store(true, Ordering::Relaxed);
    let reloads = reloader.join().unwrap();
    assert!(reloads >= 4, "{reloads} reloads");
    assert!(
        seen[0] > 0 && seen[1] > 0,
        "both sets served the shared key: {seen:?} of {requests} requests"
    );
    assert_eq!(keys.len(), FILLER + 2);
}

#[test]
fn precedence_holds_among_ten_thousand_templates() {
    let mut b = McpPolicy::builder().default(Rule::public());
    for i in 0..5_000 {
        b = b
            .resource(
                format!("res://service-{i}/{{id}}"),
                Rule::bearer().scopes([format!("s{i}")]),
            )
            .resource(
                format!("user://{{id}}/field-{i}"),
                Rule::bearer().scopes([format!("f{i}")]),
            );
    }
    let policy = b
        // Less specific than every `user://{id}/field-N` (8 literals < 14+).
        .resource("user://{id}/{field}", Rule::api_key())
        // More specific than `res://service-42/{id}` for this one document.
        .resource("res://service-42/{id}/audit", Rule::api_key())
        // An exact URI beats every template.
        .resource("res://service-7/home", Rule::api_key())
        .build()
        .unwrap();
    let bearer =
        |scope: &str| Principal::new(AuthScheme::Jwt, "u").with_scopes(Scopes::parse(scope));
    let key = Principal::new(AuthScheme::ApiKey, "svc");
    assert!(policy.may_read_resource(Some(&bearer("s4999")), "res://service-4999/x"));
    assert!(!policy.may_read_resource(Some(&bearer("s4998")), "res://service-4999/x"));
    assert!(policy.may_read_resource(Some(&bearer("f4999")), "user://9/field-4999"));
    assert!(!policy.may_read_resource(Some(&key), "user://9/field-4999"));
    assert!(
        policy.may_read_resource(Some(&key), "user://9/other"),
        "the general template"
    );
    assert!(policy.may_read_resource(Some(&key), "res://service-42/x/audit"));
    assert!(!policy.may_read_resource(Some(&bearer("s42")), "res://service-42/x/audit"));
    assert!(policy.may_read_resource(Some(&bearer("s42")), "res://service-42/x"));
    assert!(policy.may_read_resource(Some(&key), "res://service-7/home"));
    assert!(!policy.may_read_resource(Some(&bearer("s7")), "res://service-7/home"));
    assert!(policy.may_read_resource(Some(&bearer("s7")), "res://service-7/other"));
    assert!(
        policy.may_read_resource(None, "mail://nobody"),
        "no template: the default"
    );
}
