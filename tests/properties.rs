//! Property tests (proptest): what must hold for any input, not just the
//! cases someone thought of.
//!
//! * `McpPolicyLayer` hands the inner service exactly the bytes it received;
//! * policy decisions are deterministic, and a batch is allowed iff every
//!   element is;
//! * `Scopes` parse / Display round-trips;
//! * with a scope hierarchy, a token holding a broader scope is never
//!   refused where one holding the narrower scopes is allowed, and a
//!   decision is the one without the hierarchy on the token's scopes and
//!   every scope they imply;
//! * the rate limiter never allows more than limit + burst in any window;
//! * URI-template parsing and matching never panic;
//! * `McpRequest::parse` never panics and never answers 5xx, and agrees
//!   with `serde_json` on what is JSON and on what each message asks for.

use std::{convert::Infallible, num::NonZeroU32, time::Duration};

use axum::body::Body;
use governor::clock::FakeRelativeClock;
use http::{Request, Response, StatusCode};
use proptest::prelude::*;
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_auth::{
    mcp::{McpPolicy, McpPolicyLayer, McpRequest, UriTemplate},
    rate_limit::{MemoryStore, Quota, RateLimitKey},
    AuthScheme, Principal, ProtectedResource, Rule, ScopeHierarchy, Scopes,
};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    // McpPolicyLayer reads a body against a deadline: tokio's timer.
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

fn resource() -> ProtectedResource {
    ProtectedResource::builder("https://mcp.example.com/mcp")
        .build()
        .unwrap()
}

const TOOLS: [&str; 5] = ["read", "write", "admin", "open", "unknown"];
const SCOPES: [&str; 3] = ["read:data", "write:data", "admin"];

fn policy() -> McpPolicy {
    McpPolicy::builder()
        .default(Rule::authenticated())
        .tool("read", Rule::bearer().scopes(["read:data"]))
        .tool("write", Rule::bearer().scopes(["read:data", "write:data"]))
        .tool(
            "admin",
            Rule::api_key().or(Rule::bearer().scopes(["admin"])),
        )
        .tool("open", Rule::public())
        .resource("user://{id}/private", Rule::bearer().scopes(["read:data"]))
        .method("initialize", Rule::public())
        .build()
        .unwrap()
}

/// Echoes the request body.
async fn echo(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let bytes = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap();
    Ok(Response::new(Body::from(bytes)))
}

async fn through_layer(
    policy: McpPolicy,
    principal: Option<Principal>,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let svc = ServiceBuilder::new()
        .layer(resource().layer())
        .layer(McpPolicyLayer::new(policy).filter_lists(false))
        .service_fn(echo);
    let mut req = Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Body::from(body))
        .unwrap();
    if let Some(p) = principal {
        req.extensions_mut().insert(p);
    }
    let resp = svc.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

/// A JSON-RPC request text: a call of one of the tools, a resource read, or
/// another method, with arbitrary string content and optional white space.
fn call_value() -> impl Strategy<Value = serde_json::Value> {
    let id = prop_oneof![
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z0-9-]{0,12}".prop_map(|s| json!(s)),
    ];
    let target = prop_oneof![
        (0..TOOLS.len(), any::<String>()).prop_map(|(i, arg)| json!({
            "method": "tools/call",
            "params": {"name": TOOLS[i], "arguments": {"text": arg}}
        })),
        "[a-z0-9]{1,8}".prop_map(|id| json!({
            "method": "resources/read",
            "params": {"uri": format!("user://{id}/private")}
        })),
        Just(json!({"method": "ping"})),
        Just(json!({"method": "initialize", "params": {}})),
    ];
    (id, target).prop_map(|(id, mut t)| {
        t["jsonrpc"] = json!("2.0");
        t["id"] = id;
        t
    })
}

fn principal() -> impl Strategy<Value = Option<Principal>> {
    prop_oneof![
        Just(None),
        Just(Some(Principal::new(AuthScheme::ApiKey, "svc"))),
        proptest::sample::subsequence(SCOPES.to_vec(), 0..=SCOPES.len()).prop_map(|s| {
            Some(Principal::new(AuthScheme::Jwt, "user").with_scopes(Scopes::parse(&s.join(" "))))
        }),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// Any bytes at all: the layer refuses them or passes them on unchanged.
    #[test]
    fn inner_service_gets_exactly_the_bytes_for_any_bytes(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        p in principal(),
    ) {
        let (status, echoed) = runtime().block_on(through_layer(policy(), p, body.clone()));
        prop_assert!(status.as_u16() < 500, "{status}");
        if status == StatusCode::OK {
            prop_assert_eq!(echoed, body);
        }
    }

    /// Valid JSON-RPC, serialised with or without white space: when the
    /// policy allows it, the inner service gets the same bytes.
    #[test]
    fn inner_service_gets_exactly_the_bytes_for_json_rpc(
        calls in proptest::collection::vec(call_value(), 1..4),
        batch in any::<bool>(),
        pretty in any::<bool>(),
    ) {
        let value = if batch { json!(calls) } else { calls[0].clone() };
        let body = if pretty {
            serde_json::to_vec_pretty(&value).unwrap()
        } else {
            serde_json::to_vec(&value).unwrap()
        };
        let all = Some(Principal::new(AuthScheme::Jwt, "u").with_scopes(Scopes::parse("read:data write:data admin")));
        let policy = McpPolicy::builder().default(Rule::any()).build().unwrap();
        let (status, echoed) = runtime().block_on(through_layer(policy, all, body.clone()));
        prop_assert_eq!(status, StatusCode::OK);
        prop_assert_eq!(echoed, body);
    }

    /// Deciding twice gives the same answer, and a batch passes the layer
    /// iff every element is allowed on its own.
    #[test]
    fn decisions_are_deterministic_and_batches_all_or_nothing(
        calls in proptest::collection::vec(call_value(), 1..5),
        p in principal(),
    ) {
        let policy = policy();
        let body = serde_json::to_vec(&json!(calls)).unwrap();
        let parsed = McpRequest::parse(&body).unwrap();
        prop_assert_eq!(parsed.calls().len(), calls.len());
        let mut all = true;
        for call in parsed.calls() {
            let first = policy.authorize(p.as_ref(), Some(call)).map_err(|e| e.status());
            let second = policy.authorize(p.as_ref(), Some(call)).map_err(|e| e.status());
            prop_assert_eq!(first, second);
            all &= first.is_ok();
        }
        let (status, _) = runtime().block_on(through_layer(policy, p, body));
        prop_assert_eq!(status == StatusCode::OK, all, "{}", status);
        if !all {
            prop_assert!(status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN, "{}", status);
        }
    }

    /// Parsing the Display of a parsed scope set gives the same set, and
    /// Display is canonical (sorted, deduplicated, single spaces).
    #[test]
    fn scopes_round_trip(words in proptest::collection::vec("[!#-\\[\\]-~]{1,10}", 0..8), sep in "[ \t\n]{1,3}") {
        let scopes = Scopes::parse(&words.join(&sep));
        let shown = scopes.to_string();
        let again = Scopes::parse(&shown);
        prop_assert_eq!(&again, &scopes);
        prop_assert_eq!(again.to_string(), shown.clone());
        for w in &words {
            prop_assert!(scopes.contains(w));
        }
        let mut expected: Vec<&str> = words.iter().map(String::as_str).collect();
        expected.sort_unstable();
        expected.dedup();
        prop_assert_eq!(shown, expected.join(" "));
    }

    /// Never more than limit + burst charged units in any window-long
    /// interval, whatever the pattern of calls and costs.
    #[test]
    fn rate_limiter_never_exceeds_limit_plus_burst_in_any_window(
        limit in 1u32..20,
        window_ms in 100u64..10_000,
        burst in 1u32..20,
        steps in proptest::collection::vec((0u64..2_000, 1u32..4), 1..120),
    ) {
        let window = Duration::from_millis(window_ms);
        let quota = Quota::try_new(limit, window).unwrap().burst(burst);
        let clock = FakeRelativeClock::default();
        let store = MemoryStore::with_clock(clock.clone());
        let key = RateLimitKey::custom("k");
        let mut now = 0u64;
        let mut allowed: Vec<(u64, u32)> = Vec::new();
        for (advance, cost) in steps {
            clock.advance(Duration::from_millis(advance));
            now += advance;
            let decision = store.check_now(&key, quota, NonZeroU32::new(cost).unwrap());
            if decision.is_allowed() {
                // A cost above the burst is charged as the whole burst
                // (documented on `RateLimitStore`), so count what is charged.
                allowed.push((now, cost.min(burst)));
            }
        }
        let max = u64::from(limit) + u64::from(burst);
        for (i, (start, _)) in allowed.iter().enumerate() {
            let used: u64 = allowed[i..]
                .iter()
                .take_while(|(t, _)| *t < start + window_ms)
                .map(|(_, c)| u64::from(*c))
                .sum();
            prop_assert!(used <= max, "{used} units in {window_ms} ms from {start} (limit {limit}, burst {burst})");
        }
    }

    /// Any template text and any URI: parse and match return, never panic.
    #[test]
    fn uri_templates_never_panic(
        template in prop_oneof![any::<String>(), "[a-z:/{}?#*+.-]{0,24}"],
        uri in prop_oneof![any::<String>(), "[a-z:/{}?#.-]{0,32}"],
    ) {
        if let Ok(t) = UriTemplate::parse(&template) {
            let _ = t.matches(&uri);
            // A template without variables matches exactly itself.
            if t.is_exact() {
                prop_assert!(t.matches(t.as_str()));
            }
        }
    }

    /// Any bytes, and JSON-ish text: parse returns, and a refusal is 4xx.
    #[test]
    fn mcp_request_parse_never_panics_nor_answers_5xx(
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            "[\\[\\]{}\",:0-9a-z .-]{0,64}".prop_map(String::into_bytes),
            call_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        ],
    ) {
        if let Err(e) = McpRequest::parse(&body) {
            prop_assert!(e.status().is_client_error(), "{}", e.status());
        }
    }

    /// The peek's own JSON scanner against serde_json: a body is "not
    /// JSON" (-32700) exactly when serde_json cannot read it, and what the
    /// peek reads of each message (method, target, id) is what serde_json
    /// reads. Bodies are valid JSON-RPC texts, then cut, spliced or
    /// corrupted at a random place.
    #[test]
    fn mcp_request_parse_agrees_with_serde_json(
        calls in proptest::collection::vec(call_value(), 1..3),
        batch in any::<bool>(),
        pretty in any::<bool>(),
        edit in prop_oneof![
            Just(None),
            (any::<prop::sample::Index>(), 0..3u8, "[\\[\\]{}\",:0-9a-z .\\\\\t\n-]").prop_map(Some),
        ],
    ) {
        let value = if batch { json!(calls) } else { calls[0].clone() };
        let mut text = if pretty {
            serde_json::to_string_pretty(&value).unwrap()
        } else {
            serde_json::to_string(&value).unwrap()
        };
        if let Some((at, how, s)) = edit {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            match how {
                0 => text.truncate(i),
                1 => text.insert_str(i, &s),
                _ => {
                    if i < text.len() {
                        let c = text[i..].chars().next().unwrap();
                        text.replace_range(i..i + c.len_utf8(), &s);
                    }
                }
            }
        }
        let body = text.as_bytes();
        let ignored = serde_json::from_slice::<serde::de::IgnoredAny>(body);
        let tree = serde_json::from_slice::<serde_json::Value>(body);
        match McpRequest::parse(body) {
            Err(e) if e.jsonrpc_code() == -32700 => {
                prop_assert!(ignored.is_err() || tree.is_err(), "we say not JSON, serde_json reads it: {text}");
            }
            Err(e) => {
                prop_assert_eq!(e.jsonrpc_code(), -32600);
                prop_assert!(ignored.is_ok(), "serde_json says not JSON, we say {}: {text}", e.description());
            }
            Ok(parsed) => {
                prop_assert!(ignored.is_ok(), "serde_json says not JSON, we accept: {text}");
                // A number out of f64's range is JSON that serde_json
                // reads only into `IgnoredAny`: nothing to compare.
                let Ok(tree) = tree else { return Ok(()) };
                let messages = match &tree {
                    serde_json::Value::Array(items) => items.clone(),
                    one => vec![one.clone()],
                };
                prop_assert_eq!(parsed.calls().len(), messages.len());
                for (call, m) in parsed.calls().iter().zip(&messages) {
                    prop_assert_eq!(call.method(), m["method"].as_str());
                    let id = call.id().map(|id| serde_json::from_str::<serde_json::Value>(id.get()).unwrap());
                    prop_assert_eq!(id.as_ref(), m.get("id"));
                    if let Some(t) = call.target() {
                        let member = match t.kind() { "resource" => "uri", "task" => "taskId", _ => "name" };
                        prop_assert_eq!(Some(t.name()), m["params"][member].as_str());
                    }
                }
            }
        }
    }
}

/// The scopes of the hierarchy properties.
const POOL: [&str; 8] = ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"];

/// A hierarchy over [`POOL`] without cycles (a scope implies only scopes
/// after it), as its edges.
fn hierarchy_edges() -> impl Strategy<Value = Vec<(usize, usize)>> {
    proptest::collection::vec((0..POOL.len(), 0..POOL.len()), 0..12).prop_map(|pairs| {
        pairs
            .into_iter()
            .filter(|(a, b)| a != b)
            .map(|(a, b)| (a.min(b), a.max(b)))
            .collect()
    })
}

fn hierarchy(edges: &[(usize, usize)]) -> ScopeHierarchy {
    edges
        .iter()
        .fold(ScopeHierarchy::builder(), |b, &(broad, narrow)| {
            b.implies(POOL[broad], [POOL[narrow]])
        })
        .build()
        .unwrap()
}

/// A rule's alternatives: a scheme (0 bearer, 1 any, 2 API key), the
/// scopes it requires, its any-of groups.
type RuleSpec = Vec<(u8, Vec<usize>, Vec<Vec<usize>>)>;

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    let scopes = || proptest::collection::vec(0..POOL.len(), 0..4);
    let groups = proptest::collection::vec(proptest::collection::vec(0..POOL.len(), 1..3), 0..3);
    proptest::collection::vec((0..3u8, scopes(), groups), 1..3)
}

fn rule(spec: &RuleSpec) -> Rule {
    Rule::one_of(spec.iter().map(|(scheme, all, any)| {
        let mut rule = match scheme {
            0 => Rule::bearer(),
            1 => Rule::authenticated(),
            _ => Rule::api_key(),
        };
        rule = rule.scopes(all.iter().map(|&i| POOL[i]));
        for group in any {
            rule = rule.any_scope(group.iter().map(|&i| POOL[i]));
        }
        rule
    }))
}

fn token(scopes: &[&str]) -> Principal {
    Principal::new(AuthScheme::Jwt, "u").with_scopes(scopes.iter().copied().collect())
}

proptest! {
    #![proptest_config(config(512))]

    /// MCP 2026-07-28 ("Servers MUST account for scope hierarchies"): a
    /// token holding a broad scope in place of some of the narrower ones
    /// it implies is allowed wherever the narrower token is, by a rule
    /// and by a policy (its decisions and its list filter); and a decision
    /// with the hierarchy is the one without it on the token's scopes and
    /// every scope they imply.
    #[test]
    fn a_broader_scope_is_never_refused_where_the_narrower_is_allowed(
        edges in hierarchy_edges(),
        spec in rule_spec(),
        held in proptest::sample::subsequence(POOL.to_vec(), 0..=4),
        broad in 0..POOL.len(),
        dropped in proptest::collection::vec(any::<bool>(), POOL.len()),
    ) {
        let h = hierarchy(&edges);
        let plain = rule(&spec);
        let with = plain.clone().scope_hierarchy(h.clone());
        let policy = McpPolicy::builder()
            .scope_hierarchy(h.clone())
            .tool("t", plain.clone())
            .build()
            .unwrap();
        // The broader token: `broad`, and the held scopes less some of
        // those `broad` implies.
        let broad = POOL[broad];
        let mut wider: Vec<&str> = held
            .iter()
            .enumerate()
            .filter(|(i, s)| !(h.grants(broad, s) && dropped[*i]))
            .map(|(_, s)| *s)
            .collect();
        wider.push(broad);
        let (narrow, wide) = (token(&held), token(&wider));

        if with.permits(Some(&narrow)) {
            prop_assert!(with.permits(Some(&wide)), "{:?} allowed, {:?} refused", held, wider);
        }
        if policy.may_call_tool(Some(&narrow), "t") {
            prop_assert!(policy.may_call_tool(Some(&wide), "t"));
        }
        for p in [&narrow, &wide] {
            let expanded = p.clone().with_scopes(h.expand(p.scopes()));
            prop_assert_eq!(with.permits(Some(p)), plain.permits(Some(&expanded)));
            prop_assert_eq!(policy.may_call_tool(Some(p), "t"), with.permits(Some(p)));
            // A 403 names every scope the refused alternative requires,
            // and no scope that is neither required nor held.
            if let Err(err) = policy.authorize(Some(p), Some(&tower_mcp_auth::mcp::McpCall::new(
                "tools/call",
                Some(tower_mcp_auth::mcp::Target::Tool("t".into())),
            ))) {
                if let Some(scope) = err.scope() {
                    let named = plain.scopes_named();
                    prop_assert!(scope.iter().all(|s| named.contains(s) || p.scopes().contains(s)), "{}", scope);
                }
            }
        }
    }
}
