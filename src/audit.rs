//! Audit events: every accept, refusal and throttle is a `tracing` event on
//! the target [`TARGET`] (`tower_mcp_auth::audit`) with structured fields.
//!
//! | field | meaning |
//! | --- | --- |
//! | `outcome` | `accepted`, `refused`, `throttled`, `degraded`; `exchanged` for a token exchange |
//! | `scheme` | `api_key`, `jwt`, `introspection` (when known) |
//! | `issuer` | who issued the credential: the token's `iss`, the introspection answer's `iss` or endpoint (when known) |
//! | `kind` | `subject`, or `client` for a client acting for itself (a token without `sub`) (when known) |
//! | `subject` | the token's `sub`, the API key's name, or a client identity's client id (when known) |
//! | `reason` | the refusal's code (`invalid_token`, `insufficient_scope`, …) |
//! | `detail` | the refusal's description |
//! | `method`, `path` | the HTTP request |
//! | `downstream` | the resource or audience a token exchange asked for (layer `token_exchange`) |
//! | `rpc_method`, `target_kind`, `target`, `calls` | the MCP call decided (MCP policy) |
//!
//! Events never carry a key, token, secret or `Authorization` value.
//!
//! Every field that a client chooses (subjects and client ids from tokens,
//! tool names, methods, URIs, paths, descriptions that quote input) is cut
//! to [`MAX_FIELD_BYTES`] by the functions of this module, which are the
//! only way the crate emits an event: a prefix is kept, and the cut is
//! marked with the field's original length (`…[cut: 1048576 bytes]`), so a
//! 1 MiB tool name adds a few hundred bytes to the log, not a megabyte.
//!
//! # Metrics (feature `metrics`)
//!
//! Every event is also counted, through the [`metrics`](https://docs.rs/metrics)
//! crate's facade (plug in its Prometheus or OpenTelemetry exporter; this
//! crate depends on no exporter). One counter, [`DECISIONS_METRIC`]:
//!
//! | metric | labels |
//! | --- | --- |
//! | `tower_mcp_auth_decisions_total` | `layer` (`api_key`, `jwt`, `introspection`, a custom authenticator's scheme, `scopes`, `mcp_policy`, `session_binding`, `rate_limit`, `failed_auth`, …), `outcome` (`accepted`, `refused`, `throttled`, `degraded`), `reason` (the refusal's code, `none` for an acceptance, `backend_failure` for a degraded backend, `repeated_authentication_failures` for a blocked address) |
//!
//! Every label value is one of a fixed set: no client-chosen text becomes
//! a label, so the series stay few. A rising `refused` count with reason
//! `invalid_token` on one layer is what monitoring for credential guessing
//! watches.
//!
//! # Example
//!
//! Route the audit trail to its own output with a target filter:
//!
//! ```no_run
//! use tracing_subscriber::{EnvFilter, fmt};
//!
//! fmt().with_env_filter(EnvFilter::new("tower_mcp_auth::audit=info")).init();
//! ```

use std::{borrow::Cow, fmt::Write as _, time::Duration};

use axum::extract::OriginalUri;
use http::{Extensions, Method, Uri};

use crate::{
    error::{AuthError, AuthErrorKind},
    principal::Principal,
};

/// The `tracing` target of every audit event.
pub const TARGET: &str = "tower_mcp_auth::audit";

/// The most bytes of one client-chosen field that an event carries.
pub const MAX_FIELD_BYTES: usize = 256;

/// `field` as an event carries it: unchanged (borrowed, no copy) when it
/// holds at most [`MAX_FIELD_BYTES`] bytes, else its longest prefix within
/// that bound (cut on a character boundary) followed by
/// `…[cut: <original length> bytes]`.
#[must_use]
pub(crate) fn bounded(field: &str) -> Cow<'_, str> {
    if field.len() <= MAX_FIELD_BYTES {
        return Cow::Borrowed(field);
    }
    let mut end = MAX_FIELD_BYTES;
    while !field.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + 32);
    out.push_str(&field[..end]);
    let _ = write!(out, "…[cut: {} bytes]", field.len());
    Cow::Owned(out)
}

/// The request's path for an event: the path as the client sent it (axum's
/// [`OriginalUri`], so `/mcp` rather than the `/` a nested service sees),
/// else the URI's path. Never the query string, which may hold a
/// credential that this crate never reads but a client may have sent.
#[must_use]
pub(crate) fn path<'a>(uri: &'a Uri, extensions: &'a Extensions) -> &'a str {
    extensions
        .get::<OriginalUri>()
        .map_or(uri.path(), |original| original.0.path())
}

/// A request's path for an event ([`path`]), looked up only when the
/// event is emitted: most accepted requests have no listener.
#[derive(Clone, Copy)]
pub(crate) struct LazyPath<'a> {
    uri: &'a Uri,
    extensions: &'a Extensions,
}

impl<'a> LazyPath<'a> {
    pub(crate) fn new(uri: &'a Uri, extensions: &'a Extensions) -> Self {
        Self { uri, extensions }
    }

    fn get(self) -> &'a str {
        path(self.uri, self.extensions)
    }
}

/// Emits an `accepted` event for a verified credential.
pub(crate) fn accepted(
    layer: &'static str,
    principal: &Principal,
    method: &Method,
    path: LazyPath<'_>,
) {
    count(layer, "accepted", "none");
    if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        return; // nobody listens: no field is even bounded
    }
    let subject = bounded(principal.name());
    let issuer = principal.issuer().map(bounded);
    let path = bounded(path.get());
    tracing::info!(
        target: TARGET,
        outcome = "accepted",
        layer,
        scheme = principal.scheme().as_str(),
        issuer = issuer.as_deref(),
        kind = principal.kind().as_str(),
        subject = &*subject,
        method = &*bounded(method.as_str()),
        path = &*path,
    );
}

/// Emits a `refused` (or `throttled`) event for a refusal. `subject` and
/// `scheme` are the caller's when it is known.
pub(crate) fn refused(
    layer: &'static str,
    err: &AuthError,
    principal: Option<&Principal>,
    method: &Method,
    path: &str,
) {
    let outcome = if matches!(
        err.kind(),
        AuthErrorKind::RateLimited | AuthErrorKind::TooManyFailedAuthentications
    ) {
        "throttled"
    } else {
        "refused"
    };
    refusal(
        layer,
        outcome,
        Refusal {
            reason: err.kind().code(),
            detail: err.description(),
            status: err.status().as_u16(),
        },
        principal,
        method,
        path,
    );
}

/// Why a layer refused something that is not an [`AuthError`] (a reply it
/// cannot read, a session id that is not the caller's): the `reason` code,
/// a `detail` text and the HTTP `status` given.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Refusal<'a> {
    /// A short stable code (`unknown_session`, `unreadable_reply`).
    pub(crate) reason: &'static str,
    /// What happened, for a person (bounded like every field).
    pub(crate) detail: &'a str,
    /// The status of the answer.
    pub(crate) status: u16,
}

/// Emits a `refused` event for a [`Refusal`]. Every client-chosen field is
/// [`bounded`].
// Used by feature-gated layers only: not dead with them on.
#[cfg_attr(not(feature = "mcp"), allow(dead_code))]
pub(crate) fn refused_because(
    layer: &'static str,
    why: Refusal<'_>,
    principal: Option<&Principal>,
    method: &Method,
    path: &str,
) {
    refusal(layer, "refused", why, principal, method, path);
}

fn refusal(
    layer: &'static str,
    outcome: &'static str,
    why: Refusal<'_>,
    principal: Option<&Principal>,
    method: &Method,
    path: &str,
) {
    count(layer, outcome, why.reason);
    if !tracing::enabled!(target: TARGET, tracing::Level::WARN) {
        return; // nobody listens: no field is even bounded
    }
    let scheme = principal.map(|p| p.scheme().as_str());
    let issuer = principal.and_then(|p| p.issuer().map(bounded));
    let kind = principal.map(|p| p.kind().as_str());
    let subject = principal.map(|p| bounded(p.name()));
    let detail = bounded(why.detail);
    let method = bounded(method.as_str());
    let path = bounded(path);
    tracing::warn!(
        target: TARGET,
        outcome,
        layer,
        scheme,
        issuer = issuer.as_deref(),
        kind,
        subject = subject.as_deref(),
        reason = why.reason,
        detail = &*detail,
        status = why.status,
        method = &*method,
        path = &*path,
    );
}

/// Emits a `degraded` event: a backend failed but the layer still decided
/// (stale keys served, rate-limit store unreachable and failing open).
// Used by feature-gated layers only: not dead with them on.
#[cfg_attr(
    not(any(feature = "jwks", feature = "introspection", feature = "rate-limit")),
    allow(dead_code)
)]
pub(crate) fn degraded(layer: &'static str, detail: &str) {
    count(layer, "degraded", "backend_failure");
    let detail = bounded(detail);
    tracing::warn!(target: TARGET, outcome = "degraded", layer, detail = &*detail);
}

/// Emits the outcome of a run-time reload of `what` (a policy file) from
/// `source`: `reloaded` (info), or `reload_refused` (warn) with `detail`
/// saying why, the configuration in force kept.
// Used by feature-gated layers only: not dead with them on.
#[cfg_attr(not(feature = "mcp"), allow(dead_code))]
pub(crate) fn reload(layer: &'static str, source: &str, error: Option<&str>) {
    let source = bounded(source);
    match error {
        None => tracing::info!(target: TARGET, outcome = "reloaded", layer, source = &*source),
        Some(detail) => {
            let detail = bounded(detail);
            tracing::warn!(
                target: TARGET,
                outcome = "reload_refused",
                layer,
                source = &*source,
                detail = &*detail,
            );
        }
    }
}

/// Emits the `throttled` event of an address that
/// [`FailedAuthLayer`](crate::rate_limit::failed_auth::FailedAuthLayer) starts to
/// refuse for `cooldown`.
// Used by feature-gated layers only: not dead with them on.
#[cfg_attr(not(feature = "rate-limit"), allow(dead_code))]
pub(crate) fn blocked(layer: &'static str, client: &str, cooldown: Duration) {
    count(layer, "throttled", "repeated_authentication_failures");
    let client = bounded(client);
    tracing::warn!(
        target: TARGET,
        outcome = "throttled",
        layer,
        client = &*client,
        reason = "repeated_authentication_failures",
        cooldown_secs = cooldown.as_secs(),
    );
}

/// The MCP policy's decision on one request, as [`mcp_decision`] reports
/// it.
// Used by feature-gated layers only: not dead with them on.
#[cfg_attr(not(feature = "mcp"), allow(dead_code))]
pub(crate) struct McpDecision<'a> {
    /// The refusal; `None` when the request is accepted.
    pub(crate) err: Option<&'a AuthError>,
    /// The caller, when authenticated.
    pub(crate) principal: Option<&'a Principal>,
    /// The JSON-RPC method of the call (the refused one, else the first).
    pub(crate) rpc_method: Option<&'a str>,
    /// Which kind of target `target` is (tool, prompt or resource).
    pub(crate) target_kind: Option<&'static str>,
    /// The tool, prompt or resource the call names.
    pub(crate) target: Option<&'a str>,
    /// How many calls the request held.
    pub(crate) calls: usize,
    /// The HTTP method.
    pub(crate) method: &'a Method,
    /// The request's path ([`path`]).
    pub(crate) path: LazyPath<'a>,
}

/// Emits the MCP policy's decision on one request: `accepted` (with the
/// first call and how many calls the request held) or `refused`/… (with
/// the call that was refused).
// Used by feature-gated layers only: not dead with them on.
#[cfg_attr(not(feature = "mcp"), allow(dead_code))]
pub(crate) fn mcp_decision(decision: McpDecision<'_>) {
    let McpDecision {
        err,
        principal,
        rpc_method,
        target_kind,
        target,
        calls,
        method,
        path,
    } = decision;
    match err {
        None => count("mcp_policy", "accepted", "none"),
        Some(err) => count("mcp_policy", "refused", err.kind().code()),
    }
    let listening = match err {
        None => tracing::enabled!(target: TARGET, tracing::Level::INFO),
        Some(_) => tracing::enabled!(target: TARGET, tracing::Level::WARN),
    };
    if !listening {
        return; // nobody listens: no field is even bounded
    }
    let scheme = principal.map(|p| p.scheme().as_str());
    let issuer = principal.and_then(|p| p.issuer().map(bounded));
    let issuer = issuer.as_deref();
    let kind = principal.map(|p| p.kind().as_str());
    let subject = principal.map(|p| bounded(p.name()));
    let subject = subject.as_deref();
    let rpc_method = rpc_method.map(bounded);
    let rpc_method = rpc_method.as_deref();
    let target = target.map(bounded);
    let target = target.as_deref();
    let method = bounded(method.as_str());
    let method = &*method;
    let path = bounded(path.get());
    let path = &*path;
    match err {
        None => tracing::info!(
            target: TARGET,
            outcome = "accepted",
            layer = "mcp_policy",
            scheme,
            issuer,
            kind,
            subject,
            rpc_method,
            target_kind,
            target,
            calls,
            method,
            path,
        ),
        Some(err) => {
            let detail = bounded(err.description());
            tracing::warn!(
                target: TARGET,
                outcome = "refused",
                layer = "mcp_policy",
                scheme,
                issuer,
                kind,
                subject,
                rpc_method,
                target_kind,
                target,
                calls,
                reason = err.kind().code(),
                detail = &*detail,
                status = err.status().as_u16(),
                method,
                path,
            );
        }
    }
}

/// Emits a `policy_gap` warning: the MCP list filter found `target` (a
/// `target_kind`) that the policy does not name, or a rule naming one the
/// server does not list (`reason`, see the module docs).
#[cfg_attr(not(feature = "mcp"), allow(dead_code))]
pub(crate) fn policy_gap(
    reason: &'static str,
    target_kind: &'static str,
    target: &str,
    detail: &'static str,
) {
    // Not a decision on a request (as a reload is not): not counted.
    let target = bounded(target);
    tracing::warn!(
        target: TARGET,
        outcome = "policy_gap",
        layer = "mcp_policy",
        reason,
        target_kind,
        target = &*target,
        detail,
    );
}

/// How one token exchange (RFC 8693) ended.
#[cfg(feature = "token-exchange")]
#[derive(Debug)]
pub(crate) enum ExchangeOutcome<'a> {
    /// A token was issued.
    Exchanged,
    /// Refused: by the authorization server (its OAuth error code as the
    /// reason), or before asking it (`no_subject_token`).
    Refused {
        reason: &'static str,
        detail: &'a str,
    },
    /// The authorization server could not be used (down, too slow, an
    /// answer that is not a token response).
    Failed(String),
}

/// Emits the outcome of a token exchange for `subject` (the caller's
/// name) to `target` (the downstream resource or audience), on the layer
/// `token_exchange`: `exchanged` (info), `refused` or `degraded` (warn).
/// Never a token.
#[cfg(feature = "token-exchange")]
pub(crate) fn token_exchange(subject: &str, target: &str, outcome: ExchangeOutcome<'_>) {
    const LAYER: &str = "token_exchange";
    let subject = bounded(subject);
    let target = bounded(target);
    match outcome {
        ExchangeOutcome::Exchanged => {
            count(LAYER, "exchanged", "none");
            tracing::info!(
                target: TARGET,
                outcome = "exchanged",
                layer = LAYER,
                subject = &*subject,
                downstream = &*target,
            );
        }
        ExchangeOutcome::Refused { reason, detail } => {
            count(LAYER, "refused", reason);
            tracing::warn!(
                target: TARGET,
                outcome = "refused",
                layer = LAYER,
                subject = &*subject,
                downstream = &*target,
                reason,
                detail = &*bounded(detail),
            );
        }
        ExchangeOutcome::Failed(detail) => {
            count(LAYER, "degraded", "backend_failure");
            tracing::warn!(
                target: TARGET,
                outcome = "degraded",
                layer = LAYER,
                subject = &*subject,
                downstream = &*target,
                detail = &*bounded(&detail),
            );
        }
    }
}

/// The name of the decision counter (feature `metrics`).
pub const DECISIONS_METRIC: &str = "tower_mcp_auth_decisions_total";

/// Counts one decision (feature `metrics`): every event of this module
/// goes through here, so the counters and the audit trail agree.
#[inline]
fn count(layer: &'static str, outcome: &'static str, reason: &'static str) {
    #[cfg(feature = "metrics")]
    counters::increment(layer, outcome, reason);
    #[cfg(not(feature = "metrics"))]
    let _ = (layer, outcome, reason);
}

/// The decision counter's keys, made once per label combination (and
/// thread) rather than once per request: a key built per call (a vector of
/// labels, hashed) cost more than the rest of an API-key check.
#[cfg(feature = "metrics")]
mod counters {
    use std::cell::RefCell;

    use metrics::{Key, Label, Level, Metadata};

    use super::DECISIONS_METRIC;

    static METADATA: Metadata<'static> =
        Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

    /// Label values are `&'static str`s from fixed sets: compared by
    /// address and length, a hit costs a few comparisons.
    type Labels = [&'static str; 3];

    thread_local! {
        static KEYS: RefCell<Vec<(Labels, Key)>> = const { RefCell::new(Vec::new()) };
    }

    fn same(a: &Labels, b: &Labels) -> bool {
        a.iter().zip(b).all(|(x, y)| std::ptr::eq(*x, *y) || x == y)
    }

    pub(super) fn increment(layer: &'static str, outcome: &'static str, reason: &'static str) {
        let labels = [layer, outcome, reason];
        KEYS.with(|keys| {
            let mut keys = keys.borrow_mut();
            let i = match keys.iter().position(|(l, _)| same(l, &labels)) {
                Some(i) => i,
                None => {
                    let key = Key::from_parts(
                        DECISIONS_METRIC,
                        vec![
                            Label::from_static_parts("layer", layer),
                            Label::from_static_parts("outcome", outcome),
                            Label::from_static_parts("reason", reason),
                        ],
                    );
                    keys.push((labels, key));
                    keys.len() - 1
                }
            };
            let key = &keys[i].1;
            metrics::with_recorder(|recorder| {
                recorder.register_counter(key, &METADATA).increment(1)
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_fields_are_borrowed_unchanged() {
        for s in ["", "get_user_data", &"a".repeat(MAX_FIELD_BYTES)] {
            assert!(matches!(bounded(s), Cow::Borrowed(b) if b == s));
        }
    }

    #[test]
    fn long_fields_keep_a_prefix_and_their_length() {
        let long = "é".repeat(MAX_FIELD_BYTES); // 2 bytes a character
        let cut = bounded(&long);
        let (prefix, mark) = cut.split_once('…').unwrap();
        assert_eq!(prefix.len(), MAX_FIELD_BYTES);
        assert!(long.starts_with(prefix));
        assert_eq!(mark, format!("[cut: {} bytes]", 2 * MAX_FIELD_BYTES));
        // A character straddling the bound is dropped whole.
        let odd = format!("a{long}");
        let cut = bounded(&odd);
        assert_eq!(cut.split_once('…').unwrap().0.len(), MAX_FIELD_BYTES - 1);
    }
}

#[cfg(all(test, feature = "metrics"))]
mod metrics_tests {
    //! The counters, seen by a small recorder, for decisions of several
    //! layers.

    use std::{
        collections::BTreeMap,
        sync::{Arc, Mutex},
    };

    use axum::body::Body;
    use http::{Request, StatusCode};
    use metrics::{
        Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };
    use tower::{ServiceBuilder, ServiceExt};

    use crate::{
        api_key::{ApiKey, ApiKeyLayer, ApiKeys},
        AuthorizeLayer, Rule,
    };

    /// Counts per `name{label=value,...}`.
    #[derive(Clone, Default)]
    struct Counts(Arc<Mutex<BTreeMap<String, u64>>>);

    struct One(Counts, String);

    impl CounterFn for One {
        fn increment(&self, value: u64) {
            *self.0 .0.lock().unwrap().entry(self.1.clone()).or_default() += value;
        }
        fn absolute(&self, value: u64) {
            self.0 .0.lock().unwrap().insert(self.1.clone(), value);
        }
    }

    impl Recorder for Counts {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            Counter::from_arc(Arc::new(One(self.clone(), name)))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    const KEY: &str = "mcp_sk_aaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn every_decision_is_counted_by_layer_outcome_and_reason() {
        let counts = Counts::default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        metrics::with_local_recorder(&counts, || {
            runtime.block_on(async {
                let keys = ApiKeys::new().with(ApiKey::new("svc", KEY).scopes(["read"]));
                let svc = ServiceBuilder::new()
                    .layer(ApiKeyLayer::new(keys))
                    .layer(AuthorizeLayer::new(Rule::authenticated().scopes(["write"])).unwrap())
                    .service_fn(|_: Request<Body>| async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
                    });
                for (key, want) in [
                    (Some(KEY), StatusCode::FORBIDDEN),
                    (Some("mcp_sk_wrong-wrong-wrong"), StatusCode::UNAUTHORIZED),
                    (None, StatusCode::UNAUTHORIZED),
                    (Some("mcp_sk_wrong-wrong-wrong"), StatusCode::UNAUTHORIZED),
                ] {
                    let mut req = Request::get("/mcp");
                    if let Some(key) = key {
                        req = req.header("x-api-key", key);
                    }
                    let res = svc
                        .clone()
                        .oneshot(req.body(Body::empty()).unwrap())
                        .await
                        .unwrap();
                    assert_eq!(res.status(), want);
                }
            });
        });
        let counts = counts.0.lock().unwrap().clone();
        let name = super::DECISIONS_METRIC;
        let want: BTreeMap<String, u64> = [
            (
                format!("{name}{{layer=api_key,outcome=accepted,reason=none}}"),
                1,
            ),
            (
                format!("{name}{{layer=api_key,outcome=refused,reason=invalid_token}}"),
                2,
            ),
            (
                format!("{name}{{layer=api_key,outcome=refused,reason=missing_credential}}"),
                1,
            ),
            (
                format!("{name}{{layer=authorize,outcome=refused,reason=insufficient_scope}}"),
                1,
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(counts, want);
    }
}
