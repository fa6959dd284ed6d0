//! A load generator for `scripts/load-test`: a BENCHMARK AND TEST TOOL,
//! not part of the library. It drives the example server
//! (`examples/mcp_server/`, stateless, full layer stack) over loopback
//! only, with a mix of clients whose every expected answer it knows, and
//! fails on any wrong decision, any 5xx and any connection error.
//!
//! ```text
//! load_mix --url http://127.0.0.1:PORT/mcp --api-key KEY --jwt-secret SECRET \
//!          --rate-limit-per-minute N [--seconds 60] [--connections 256] [--server-pid PID]
//! ```
//!
//! Each connection is one client kind (connection `i` is kind `i mod 7`)
//! and has its own loopback source address (`127.x.y.z`), so the server's
//! per-address `FailedAuthLayer` sees each client apart:
//!
//! | kind | request | expected |
//! | --- | --- | --- |
//! | `admin_key` | `X-API-Key`, the admin tool `get_user_by_id` | 200 with a result |
//! | `jwt_read` | HS256 JWT with `read:data`, `get_user_data` | 200 with a result |
//! | `jwt_no_scope` | HS256 JWT with `read:profile` only, `get_user_data` | 403 |
//! | `wrong_key` | a wrong `X-API-Key` | 401 for the first 10 from an address, then 429 (failed-auth cool-down) |
//! | `garbage_bearer` | `Authorization: Bearer` and garbage | as `wrong_key` |
//! | `throttled` | one JWT principal shared by its connections, flat out | 200 until its quota is spent, then 429 |
//! | `malformed` | valid API key, a body that is not JSON-RPC | 400 |
//!
//! The server's quota (`RATE_LIMIT_PER_MINUTE`, burst = limit) is per
//! principal. The valid clients stay within it on purpose: each `jwt_read`
//! connection moves to a fresh subject after half a burst, and the
//! `admin_key` connections (one principal, the key) share a token bucket
//! of half the burst refilled at half the rate, waiting when it is empty.
//! So a 429 for a valid client is a wrong decision. The `throttled`
//! principal is not paced: its 200s must never exceed
//! `burst + elapsed × limit / 60` (GCRA's bound), must reach the burst
//! before any 429, and it must be refused at least once.
//!
//! `wrong_key` and `garbage_bearer` connections move to a new source
//! address every 20 requests (the example's `FailedAuthLayer` blocks an
//! address after 10 failures within a minute, for five minutes), so both
//! the 401 and the 429 path are exercised and every answer is predictable.
//!
//! Prints a table per kind (requests, req/s, p50/p99 latency, wrong
//! decisions, 5xx, connection errors) and the server's resident memory
//! (`/proc/<pid>/status`, sampled every second: start / max / end). Exits
//! with status 1 on any wrong decision, 5xx or connection error.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddr},
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{client::conn::http1::SendRequest, Request};
use hyper_util::rt::TokioIo;

/// The example's `FailedAuthLayer::new()`: blocked after this many
/// failures from one address within a minute.
const FAILED_AUTH_THRESHOLD: u32 = 10;
/// Requests a bad-credential client sends from one address.
const PER_ADDRESS: u32 = 2 * FAILED_AUTH_THRESHOLD;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    AdminKey,
    JwtRead,
    JwtNoScope,
    WrongKey,
    GarbageBearer,
    Throttled,
    Malformed,
}

const KINDS: [Kind; 7] = [
    Kind::AdminKey,
    Kind::JwtRead,
    Kind::JwtNoScope,
    Kind::WrongKey,
    Kind::GarbageBearer,
    Kind::Throttled,
    Kind::Malformed,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::AdminKey => "admin_key",
            Kind::JwtRead => "jwt_read",
            Kind::JwtNoScope => "jwt_no_scope",
            Kind::WrongKey => "wrong_key",
            Kind::GarbageBearer => "garbage_bearer",
            Kind::Throttled => "throttled",
            Kind::Malformed => "malformed",
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Kind::AdminKey | Kind::JwtRead => "200",
            Kind::JwtNoScope => "403",
            Kind::WrongKey | Kind::GarbageBearer => "401, then 429",
            Kind::Throttled => "200, then 429",
            Kind::Malformed => "400",
        }
    }
}

struct Args {
    url: String,
    server: SocketAddr,
    host: String,
    path: String,
    seconds: u64,
    connections: usize,
    api_key: String,
    jwt_secret: String,
    limit: u32,
    server_pid: Option<u32>,
}

fn usage(msg: &str) -> ! {
    eprintln!("load_mix: {msg}");
    eprintln!(
        "usage: load_mix --url http://127.0.0.1:PORT/mcp --api-key KEY --jwt-secret SECRET \
         --rate-limit-per-minute N [--seconds 60] [--connections 256] [--server-pid PID]"
    );
    std::process::exit(2);
}

impl Args {
    fn parse() -> Self {
        let mut map = HashMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let Some(name) = flag.strip_prefix("--") else {
                usage(&format!("unexpected argument {flag}"));
            };
            let Some(value) = it.next() else {
                usage(&format!("{flag} needs a value"));
            };
            map.insert(name.to_owned(), value);
        }
        let get = |k: &str| map.get(k).cloned();
        let need = |k: &str| get(k).unwrap_or_else(|| usage(&format!("--{k} is required")));
        let url = need("url");
        let (host, path) = url
            .strip_prefix("http://")
            .and_then(|r| r.find('/').map(|i| r.split_at(i)))
            .map(|(h, p)| (h.to_owned(), p.to_owned()))
            .unwrap_or_else(|| usage("--url must be http://HOST:PORT/PATH"));
        let server: SocketAddr = host
            .parse()
            .unwrap_or_else(|_| usage("--url must name a loopback IP address and port"));
        if !server.ip().is_loopback() {
            usage("loopback only: --url must be on 127.0.0.0/8 or [::1]");
        }
        let num = |k: &str, default: u64| -> u64 {
            get(k).map_or(default, |v| {
                v.parse()
                    .unwrap_or_else(|_| usage(&format!("--{k}: not a number")))
            })
        };
        Self {
            url,
            server,
            host,
            path,
            seconds: num("seconds", 60),
            connections: usize::try_from(num("connections", 256))
                .unwrap_or(256)
                .max(1),
            api_key: need("api-key"),
            jwt_secret: need("jwt-secret"),
            limit: u32::try_from(num("rate-limit-per-minute", 0))
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or_else(|| usage("--rate-limit-per-minute must be at least 1")),
            server_pid: get("server-pid").map(|v| {
                v.parse()
                    .unwrap_or_else(|_| usage("--server-pid: not a number"))
            }),
        }
    }
}

// ───────────────────────── requests ─────────────────────────

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An HS256 access token for the example (`aud` = its public URL).
fn token(secret: &str, aud: &str, sub: &str, scope: &str) -> String {
    tower_mcp_auth::jwt::install_crypto_provider();
    let claims = serde_json::json!({
        "sub": sub, "aud": aud, "iat": now_secs(), "exp": now_secs() + 3600, "scope": scope,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing does not fail")
}

fn tool_call(tool: &str, args: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{args}}}}}"#
    ))
}

/// A token bucket shared by the `admin_key` connections (one principal).
struct Bucket {
    tokens: f64,
    capacity: f64,
    per_sec: f64,
    last: Instant,
}

impl Bucket {
    /// Takes one token, or says how long to wait for one.
    fn take(&mut self) -> Result<(), Duration> {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.per_sec)
            .min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
        }
    }
}

/// What every connection shares.
struct Shared {
    args: Args,
    admin_bucket: Mutex<Bucket>,
    next_address: AtomicU32,
    throttled_token: String,
    jwt_no_scope: String,
    subjects: AtomicU64,
}

impl Shared {
    /// A loopback source address never used before (127.1.0.1 onward; the
    /// server itself is on 127.0.0.1).
    fn new_address(&self) -> Ipv4Addr {
        let n = self.next_address.fetch_add(1, Ordering::Relaxed);
        let [_, a, b, c] = n.to_be_bytes();
        Ipv4Addr::new(127, a.wrapping_add(1), b, c)
    }
}

// ───────────────────────── results ─────────────────────────

#[derive(Default)]
struct Tally {
    requests: u64,
    wrong: u64,
    server_errors: u64,
    conn_errors: u64,
    ok: u64,
    throttled: u64,
    latencies_us: Vec<u32>,
    wrong_examples: Vec<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.requests += other.requests;
        self.wrong += other.wrong;
        self.server_errors += other.server_errors;
        self.conn_errors += other.conn_errors;
        self.ok += other.ok;
        self.throttled += other.throttled;
        self.latencies_us.extend(other.latencies_us);
        for e in other.wrong_examples {
            if self.wrong_examples.len() < 5 {
                self.wrong_examples.push(e);
            }
        }
    }

    fn wrong(&mut self, what: String) {
        self.wrong += 1;
        self.note(what);
    }

    /// Keeps a few examples of what went wrong, for the report.
    fn note(&mut self, what: String) {
        if self.wrong_examples.len() < 5 {
            self.wrong_examples.push(what);
        }
    }
}

// ───────────────────────── a client ─────────────────────────

async fn connect(server: SocketAddr, local: Ipv4Addr) -> std::io::Result<SendRequest<Full<Bytes>>> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((local, 0)))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One connection of one kind, until the deadline.
async fn client(kind: Kind, conn: usize, shared: Arc<Shared>, deadline: Instant) -> Tally {
    let args = &shared.args;
    let mut tally = Tally::default();
    let mut address = shared.new_address();
    let mut sent_from_address = 0u32;
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    // jwt_read: a fresh subject every half burst.
    let half_burst = u64::from(args.limit / 2).max(1);
    let mut subject_left = 0u64;
    let mut jwt_read = String::new();

    let admin_body = tool_call("get_user_by_id", r#"{"user_id":"user_001"}"#);
    let read_body = tool_call("get_user_data", r#"{"user_id":"user_001"}"#);
    let op_body = tool_call("protected_operation", r#"{"param":"load"}"#);
    let malformed_body = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"#);

    while Instant::now() < deadline {
        // Pacing and identities.
        match kind {
            Kind::AdminKey => {
                let wait = shared.admin_bucket.lock().unwrap().take();
                if let Err(wait) = wait {
                    tokio::time::sleep(
                        wait.min(deadline.saturating_duration_since(Instant::now())),
                    )
                    .await;
                    continue;
                }
            }
            Kind::JwtRead if subject_left == 0 => {
                let n = shared.subjects.fetch_add(1, Ordering::Relaxed);
                jwt_read = token(
                    &args.jwt_secret,
                    &args.url,
                    &format!("load-{conn}-{n}"),
                    "read:data",
                );
                subject_left = half_burst;
            }
            Kind::WrongKey | Kind::GarbageBearer if sent_from_address == PER_ADDRESS => {
                address = shared.new_address();
                sent_from_address = 0;
                sender = None;
            }
            _ => {}
        }
        let builder = Request::post(args.path.as_str())
            .header("host", args.host.as_str())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25");
        let req = match kind {
            Kind::AdminKey => builder
                .header("x-api-key", args.api_key.as_str())
                .body(Full::new(admin_body.clone())),
            Kind::JwtRead => {
                subject_left -= 1;
                builder
                    .header("authorization", format!("Bearer {jwt_read}"))
                    .body(Full::new(read_body.clone()))
            }
            Kind::JwtNoScope => builder
                .header("authorization", format!("Bearer {}", shared.jwt_no_scope))
                .body(Full::new(read_body.clone())),
            Kind::WrongKey => builder
                .header("x-api-key", "mcp_sk_load-wrong-key-0123456789abcdef")
                .body(Full::new(op_body.clone())),
            Kind::GarbageBearer => builder
                .header("authorization", "Bearer garbage%%not-a-token")
                .body(Full::new(op_body.clone())),
            Kind::Throttled => builder
                .header(
                    "authorization",
                    format!("Bearer {}", shared.throttled_token),
                )
                .body(Full::new(op_body.clone())),
            Kind::Malformed => builder
                .header("x-api-key", args.api_key.as_str())
                .body(Full::new(malformed_body.clone())),
        }
        .expect("a valid request");

        let s = match &mut sender {
            Some(s) => s,
            None => match connect(args.server, address).await {
                Ok(s) => sender.insert(s),
                Err(e) => {
                    tally.conn_errors += 1;
                    tally.note(format!("connect from {address}: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let started = Instant::now();
        let result = async {
            s.ready().await?;
            let res = s.send_request(req).await?;
            let status = res.status().as_u16();
            let body = res.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        }
        .await;
        let elapsed = started.elapsed();
        tally.requests += 1;
        let (status, body) = match result {
            Ok(r) => r,
            Err(e) => {
                tally.conn_errors += 1;
                tally.note(format!("{}: {e}", kind.name()));
                sender = None;
                continue;
            }
        };
        tally
            .latencies_us
            .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
        if status >= 500 {
            tally.server_errors += 1;
        }
        let has_result = || {
            let b = &body[..];
            contains(b, b"\"result\"") && !contains(b, b"\"isError\":true")
        };
        let right = match kind {
            Kind::AdminKey | Kind::JwtRead => status == 200 && has_result(),
            Kind::JwtNoScope => status == 403,
            Kind::WrongKey | Kind::GarbageBearer => {
                let n = sent_from_address;
                sent_from_address += 1;
                status == if n < FAILED_AUTH_THRESHOLD { 401 } else { 429 }
            }
            Kind::Throttled => match status {
                200 if has_result() => {
                    tally.ok += 1;
                    true
                }
                429 => {
                    tally.throttled += 1;
                    true
                }
                _ => false,
            },
            Kind::Malformed => status == 400,
        };
        if !right {
            tally.wrong(format!(
                "{} from {address}: {status} {}",
                kind.name(),
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ));
        }
    }
    tally
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ───────────────────────── memory ─────────────────────────

fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let limit = args.limit;
    let seconds = args.seconds;
    let connections = args.connections;
    let burst = f64::from(limit);
    let shared = Arc::new(Shared {
        admin_bucket: Mutex::new(Bucket {
            tokens: (burst / 2.0).max(1.0),
            capacity: (burst / 2.0).max(1.0),
            per_sec: f64::from(limit) / 60.0 / 2.0,
            last: Instant::now(),
        }),
        next_address: AtomicU32::new(0),
        throttled_token: token(&args.jwt_secret, &args.url, "throttled-principal", ""),
        jwt_no_scope: token(&args.jwt_secret, &args.url, "no-scope", "read:profile"),
        subjects: AtomicU64::new(0),
        args,
    });

    // The server's memory, every second.
    let rss = Arc::new(Mutex::new(Vec::<u64>::new()));
    let sampler = shared.args.server_pid.map(|pid| {
        let rss = rss.clone();
        if let Some(kib) = rss_kib(pid) {
            rss.lock().unwrap().push(kib);
        }
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                match rss_kib(pid) {
                    Some(kib) => rss.lock().unwrap().push(kib),
                    None => return,
                }
            }
        })
    });

    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let kind = KINDS[i % KINDS.len()];
            let shared = shared.clone();
            (kind, tokio::spawn(client(kind, i, shared, deadline)))
        })
        .collect();
    let mut per_kind: HashMap<Kind, Tally> = HashMap::new();
    for (kind, task) in tasks {
        let tally = task.await.expect("a client task panicked");
        per_kind.entry(kind).or_default().merge(tally);
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(s) = sampler {
        if let Some(kib) = shared.args.server_pid.and_then(rss_kib) {
            rss.lock().unwrap().push(kib);
        }
        s.abort();
    }

    // The throttled principal against GCRA's bound.
    let mut failures = Vec::new();
    let throttled = per_kind.entry(Kind::Throttled).or_default();
    let bound = (burst + elapsed * f64::from(limit) / 60.0).ceil() as u64 + 1;
    let (t_ok, t_429) = (throttled.ok, throttled.throttled);
    if t_ok > bound {
        failures.push(format!(
            "throttled principal: {t_ok} calls allowed, more than burst + elapsed × rate = {bound}"
        ));
    }
    if t_429 == 0 {
        failures.push(
            "throttled principal: never refused; raise --connections or lower the rate limit"
                .into(),
        );
    } else if t_ok < u64::from(limit) {
        failures.push(format!(
            "throttled principal: refused before its burst was spent ({t_ok} < {limit})"
        ));
    }

    println!();
    println!(
        "Load: {seconds} s × {connections} connections, loopback, RATE_LIMIT_PER_MINUTE={limit} ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| client kind | expected | connections | requests | req/s | p50 ms | p99 ms | wrong | of which 5xx | conn errors |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut all = Tally::default();
    for kind in KINDS {
        let mut t = per_kind.remove(&kind).unwrap_or_default();
        t.latencies_us.sort_unstable();
        let conns = (0..connections)
            .filter(|i| KINDS[i % KINDS.len()] == kind)
            .count();
        println!(
            "| {} | {} | {conns} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} |",
            kind.name(),
            kind.expected(),
            t.requests,
            t.requests as f64 / elapsed,
            percentile(&t.latencies_us, 50.0),
            percentile(&t.latencies_us, 99.0),
            t.wrong,
            t.server_errors,
            t.conn_errors
        );
        for e in &t.wrong_examples {
            eprintln!("  wrong: {e}");
        }
        all.merge(t);
    }
    all.latencies_us.sort_unstable();
    println!(
        "| **all** | | {connections} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} |",
        all.requests,
        all.requests as f64 / elapsed,
        percentile(&all.latencies_us, 50.0),
        percentile(&all.latencies_us, 99.0),
        all.wrong,
        all.server_errors,
        all.conn_errors
    );
    println!();
    println!(
        "throttled principal: {t_ok} allowed (bound {bound} = burst {limit} + {elapsed:.1} s × {limit}/min), {t_429} refused with 429"
    );
    println!(
        "client source addresses used: {}",
        shared.next_address.load(Ordering::Relaxed)
    );
    let samples = rss.lock().unwrap().clone();
    if let (Some(first), Some(last), Some(max)) =
        (samples.first(), samples.last(), samples.iter().max())
    {
        println!(
            "server RSS: start {:.1} MiB, max {:.1} MiB, end {:.1} MiB ({} samples)",
            *first as f64 / 1024.0,
            *max as f64 / 1024.0,
            *last as f64 / 1024.0,
            samples.len()
        );
        let series: Vec<String> = samples
            .iter()
            .step_by(10)
            .map(|kib| format!("{:.1}", *kib as f64 / 1024.0))
            .collect();
        println!("server RSS every 10 s (MiB): {}", series.join(", "));
    }

    if all.wrong > 0 {
        failures.push(format!("{} wrong decisions", all.wrong));
    }
    if all.server_errors > 0 {
        failures.push(format!("{} responses were 5xx", all.server_errors));
    }
    if all.conn_errors > 0 {
        failures.push(format!("{} connection errors", all.conn_errors));
    }
    if failures.is_empty() {
        println!("\nOK: no wrong decision, no 5xx, no connection error");
    } else {
        for f in &failures {
            eprintln!("FAIL: {f}");
        }
        std::process::exit(1);
    }
}
