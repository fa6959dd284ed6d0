//! The Redis DPoP replay cache against a real `redis-server` on a free
//! loopback port (skipped, with a notice, when the binary is missing):
//! two replicas accept a proof once between them, and one caller's flood
//! costs Redis no more than its share.

use std::{
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use tower_mcp_auth::dpop::{ProofErrorKind, RedisReplayCache, ReplayCache, ReplayKey, ReplayOwner};

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

fn owner() -> ReplayOwner {
    ReplayOwner::new("jkt", "caller")
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
    assert!(a.insert_once(key, owner(), t, t + 301).await.is_ok());
    let e = b.insert_once(key, owner(), t, t + 301).await.unwrap_err();
    assert_eq!(e.kind(), ProofErrorKind::Replayed);
    // Another key's proof with the same jti is fresh.
    assert!(b
        .insert_once(ReplayKey::new("other", "jti-1"), owner(), t, t + 301)
        .await
        .is_ok());

    // One proof sent to both replicas at once, many times: accepted once.
    let (a, b) = (Arc::new(a), Arc::new(b));
    let race = ReplayKey::new("jkt", "race");
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let c = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { c.insert_once(race, owner(), t, t + 301).await.is_ok() })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        accepted += usize::from(task.await.unwrap());
    }
    assert_eq!(accepted, 1);

    // The entry expires with the proof's window (here one second).
    let short = ReplayKey::new("jkt", "short");
    assert!(a.insert_once(short, owner(), t, t + 1).await.is_ok());
    assert!(a.insert_once(short, owner(), t, t + 1).await.is_err());
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(b.insert_once(short, owner(), t, t + 1).await.is_ok());

    // Redis gone: refused with a 503, never accepted.
    let _ = redis.child.kill();
    let _ = redis.child.wait();
    let e = a
        .insert_once(ReplayKey::new("jkt", "after"), owner(), t, t + 301)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ProofErrorKind::ReplayStoreUnavailable);
    assert_eq!(e.status(), http::StatusCode::SERVICE_UNAVAILABLE);
}

async fn redis_int(conn: &mut redis::aio::MultiplexedConnection, cmd: &str) -> i64 {
    redis::cmd(cmd).query_async(conn).await.unwrap()
}

async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// One caller (one bound token, one key) sends 10 000 good proofs: it is
/// refused at its share (429) and Redis holds no more than that share,
/// while another caller's proofs are still accepted.
#[tokio::test]
async fn one_caller_flooding_costs_redis_only_its_share() {
    let Some(redis) = Redis::start() else {
        return;
    };
    const SHARE: usize = 100;
    let cache = RedisReplayCache::connect(&redis.url())
        .await
        .unwrap()
        .per_principal(SHARE);
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let t = now();
    let mallory = ReplayOwner::new("mallory-key", "mallory");
    // Warm up (the script loaded), then measure from the first proof.
    cache
        .insert_once(
            ReplayKey::new("warm", "0"),
            ReplayOwner::new("warm", "warm"),
            t,
            t + 301,
        )
        .await
        .unwrap();
    let before = used_memory(&mut conn).await;
    let mut accepted = 0;
    let mut at_share = 0;
    for i in 0..10_000 {
        let key = ReplayKey::new("mallory-key", &format!("jti-{i}"));
        match cache.insert_once(key, mallory, t, t + 301).await {
            Ok(()) => accepted += 1,
            Err(e) => {
                assert_eq!(e.kind(), ProofErrorKind::ReplayQuotaExceeded);
                assert_eq!(e.status(), http::StatusCode::TOO_MANY_REQUESTS);
            }
        }
        if i == SHARE {
            at_share = used_memory(&mut conn).await;
        }
    }
    assert_eq!(accepted, SHARE);
    let after = used_memory(&mut conn).await;
    let keys = redis_int(&mut conn, "DBSIZE").await;
    println!(
        "DPoP Redis replay: {} bytes at the share of {SHARE}, {} bytes after 10 000 proofs; {keys} keys",
        at_share - before,
        after - before
    );
    // The proofs of the share, the caller's and the key's sets, and the
    // warm-up's three keys.
    assert!(keys <= SHARE as i64 + 2 + 3, "{keys} keys");
    // Without the bound 10 000 proofs would hold about 1 MB; the 9 900
    // refused ones hold nothing (allow Redis's own buffers some room).
    assert!(
        after - at_share < 64 * 1024,
        "{} bytes grown",
        after - at_share
    );
    // Another caller is not concerned.
    let alice = ReplayOwner::new("alice-key", "alice");
    for i in 0..10 {
        cache
            .insert_once(
                ReplayKey::new("alice-key", &i.to_string()),
                alice,
                t,
                t + 301,
            )
            .await
            .unwrap();
    }
    // The same key for other callers is bounded by the key's share too.
    let shared = RedisReplayCache::connect(&redis.url())
        .await
        .unwrap()
        .prefix("shared:")
        .per_key(5);
    let mut by_key = 0;
    for caller in ["u1", "u2", "u3"] {
        for i in 0..3 {
            let key = ReplayKey::new("one-key", &format!("{caller}-{i}"));
            by_key += usize::from(
                shared
                    .insert_once(key, ReplayOwner::new("one-key", caller), t, t + 301)
                    .await
                    .is_ok(),
            );
        }
    }
    assert_eq!(by_key, 5);
    // Entries past their expiry free the share (the validator's clock).
    let key = ReplayKey::new("mallory-key", "later");
    assert!(cache
        .insert_once(key, mallory, t + 302, t + 603)
        .await
        .is_ok());
}
