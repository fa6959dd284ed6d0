//! The Redis store against a real `redis-server` started on a free
//! loopback port (skipped, with a notice, when the binary is missing).
#![cfg(feature = "redis")]

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use axum::{body::Body, routing::get, Router};
use http::Request;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_mcp_auth::{
    rate_limit::{FailMode, Quota, RateLimit, RateLimitLayer, RedisStore},
    AuthScheme, Principal,
};

struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start_on(port: u16) -> Option<Self> {
        let child = Command::new("redis-server")
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
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self { child, port })
    }

    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let redis = Self::start_on(port);
        if redis.is_none() {
            eprintln!("NOTICE: redis-server not found; skipping the Redis store test");
        }
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

type Svc = axum::routing::RouterIntoService<Body>;

fn replica(layer: RateLimitLayer<RedisStore>) -> RateLimit<Svc, RedisStore> {
    let router: Router = Router::new().route("/", get(|| async { "ok" }));
    let svc: Svc = router.into_service();
    ServiceBuilder::new().layer(layer).service(svc)
}

fn as_user(name: &str) -> Request<Body> {
    let mut req = Request::get("/").body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(Principal::new(AuthScheme::ApiKey, name));
    req
}

async fn status<S>(svc: &S, name: &str) -> (u16, Option<String>)
where
    S: Service<
            Request<Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone,
{
    let res = svc.clone().oneshot(as_user(name)).await.unwrap();
    let rl = res
        .headers()
        .get("ratelimit")
        .map(|v| v.to_str().unwrap().to_owned());
    (res.status().as_u16(), rl)
}

#[tokio::test]
async fn two_replicas_share_one_quota_exactly() {
    let Some(redis) = Redis::start() else { return };
    let prefix = format!("test-{}:", std::process::id());
    let make = || async {
        RateLimitLayer::per_principal(Quota::per_hour(10)).store(
            RedisStore::connect(&redis.url())
                .await
                .unwrap()
                .prefix(prefix.clone()),
        )
    };
    let (a, b) = (replica(make().await), replica(make().await));
    let mut allowed = 0;
    for i in 0..30 {
        let svc = if i % 2 == 0 { &a } else { &b };
        let (s, rl) = status(svc, "alice").await;
        if s == 200 {
            allowed += 1;
            assert_eq!(
                rl.unwrap(),
                format!(r#""default";r={};t={}"#, 10 - allowed, allowed * 360)
            );
        } else {
            assert_eq!(s, 429);
        }
    }
    assert_eq!(allowed, 10, "one quota across both replicas");
    assert_eq!(status(&b, "bob").await.0, 200);

    // Concurrent calls from both replicas at once: still exactly the quota.
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let svc = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { status(&svc, "carol").await.0 })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap() == 200);
    }
    assert_eq!(ok, 10);
}

#[tokio::test]
async fn redis_down_uses_the_fail_mode_and_recovers() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let store = RedisStore::connect(&redis.url())
        .await
        .unwrap()
        .prefix(format!("down-{}:", std::process::id()));
    let open = replica(RateLimitLayer::per_principal(Quota::per_hour(2)).store(store.clone()));
    let closed = replica(
        RateLimitLayer::per_principal(Quota::per_hour(2))
            .store(store)
            .fail_mode(FailMode::Closed),
    );
    assert_eq!(
        status(&open, "a").await,
        (200, Some(r#""default";r=1;t=1800"#.into()))
    );
    assert_eq!(status(&open, "a").await.0, 200);
    assert_eq!(status(&open, "a").await.0, 429);

    redis.kill();
    let started = Instant::now();
    // Open: calls pass (without headers); closed: 503. Neither hangs.
    for _ in 0..3 {
        assert_eq!(status(&open, "a").await, (200, None));
        assert_eq!(status(&closed, "a").await.0, 503);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Redis comes back (empty: it kept nothing on disk) on the same port.
    let _redis = Redis::start_on(redis.port).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, rl) = status(&closed, "b").await;
        if s == 200 {
            assert_eq!(rl.unwrap(), r#""default";r=1;t=1800"#);
            break;
        }
        assert_eq!(s, 503);
        assert!(
            Instant::now() < deadline,
            "no recovery after Redis restarted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status(&open, "b").await.0, 200);
    assert_eq!(status(&open, "b").await.0, 429);
}
