//! Audit events: what the `tower_mcp_auth::audit` target records for a
//! nested MCP endpoint, and that no credential ever appears in it.

use std::sync::{Arc, Mutex};

use axum::{body::Body, routing::post, Router};
use http::Request;
use tower::ServiceExt;
use tower_mcp_auth::api_key::{ApiKey, ApiKeyLayer, ApiKeys};

const KEY: &str = "mcp_sk_audit-test-key-0123456789";
const WRONG: &str = "mcp_sk_audit-wrong-key-0123456789";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn events_name_the_original_path_and_never_the_key() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let keys = ApiKeys::new().with(ApiKey::new("billing", KEY));
    let mcp = Router::new()
        .route("/", post(|| async { "ok" }))
        .layer(ApiKeyLayer::new(keys));
    let app = Router::new().nest_service("/mcp", mcp);

    for key in [KEY, WRONG] {
        let req = Request::post("/mcp?api_key=should-not-be-logged")
            .header("x-api-key", key)
            .body(Body::empty())
            .unwrap();
        app.clone().oneshot(req).await.unwrap();
    }

    let out = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains("tower_mcp_auth::audit"), "{out}");
    assert!(lines[0].contains("outcome=\"accepted\""), "{out}");
    assert!(lines[0].contains("subject=\"billing\""), "{out}");
    assert!(lines[1].contains("outcome=\"refused\""), "{out}");
    assert!(lines[1].contains("reason=\"invalid_token\""), "{out}");
    for line in &lines {
        assert!(line.contains("path=\"/mcp\""), "{line}");
    }
    assert!(!out.contains(KEY) && !out.contains(WRONG), "{out}");
    assert!(!out.contains("should-not-be-logged"), "{out}");
}
