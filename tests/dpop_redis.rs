//! The Redis DPoP replay cache against a real `redis-server` on a free
//! loopback port (skipped, with a notice, when the binary is missing):
//! two replicas accept a proof once between them.

use std::{
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use tower_mcp_auth::dpop::{ProofErrorKind, RedisReplayCache, ReplayCache, ReplayKey};

struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let Ok(child) = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            eprintln!("NOTICE: redis-server not found; skipping the DPoP Redis replay test");
            return None;
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self { child, port })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn replicas_share_the_replay_set_and_it_fails_closed() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let prefix = format!("dpop-test-{}:", std::process::id());
    let a = RedisReplayCache::connect(&redis.url())
        .await
        .unwrap()
        .prefix(prefix.clone());
    let b = RedisReplayCache::connect(&redis.url())
        .await
        .unwrap()
        .prefix(prefix.clone());

    let key = ReplayKey::new("jkt", "jti-1");
    let t = now();
    assert!(a.insert_once(key, t, t + 301).await.is_ok());
    let e = b.insert_once(key, t, t + 301).await.unwrap_err();
    assert_eq!(e.kind(), ProofErrorKind::Replayed);
    // Another key's proof with the same jti is fresh.
    assert!(b
        .insert_once(ReplayKey::new("other", "jti-1"), t, t + 301)
        .await
        .is_ok());

    // One proof sent to both replicas at once, many times: accepted once.
    let (a, b) = (Arc::new(a), Arc::new(b));
    let race = ReplayKey::new("jkt", "race");
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let c = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { c.insert_once(race, t, t + 301).await.is_ok() })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        accepted += usize::from(task.await.unwrap());
    }
    assert_eq!(accepted, 1);

    // The entry expires with the proof's window (here one second).
    let short = ReplayKey::new("jkt", "short");
    assert!(a.insert_once(short, t, t + 1).await.is_ok());
    assert!(a.insert_once(short, t, t + 1).await.is_err());
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(b.insert_once(short, t, t + 1).await.is_ok());

    // Redis gone: refused with a 503, never accepted.
    let _ = redis.child.kill();
    let _ = redis.child.wait();
    let e = a
        .insert_once(ReplayKey::new("jkt", "after"), t, t + 301)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ProofErrorKind::ReplayStoreUnavailable);
    assert_eq!(e.status(), http::StatusCode::SERVICE_UNAVAILABLE);
}
