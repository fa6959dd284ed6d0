//! DPoP (RFC 9449; MCP SEP-1932, "DPoP Profile for MCP"): sender-constrained
//! access tokens, so a stolen token is useless without its key.
//!
//! # On a layer
//!
//! DPoP is an option of the token layers, not a layer of its own: a
//! DPoP-bound token is still a JWT or an introspected token, verified by
//! the same [`JwtValidator`](crate::jwt::JwtValidator) or
//! [`Introspector`](crate::introspection::Introspector), with a proof on
//! top. [`JwtLayer::new(v).dpop(d)`](crate::authenticate::AuthenticateLayer::dpop)
//! (and the same on an `IntrospectionLayer`) wraps the layer's
//! authenticator in a [`DpopAuthenticator`], which runs in the one
//! [authenticator model](crate::authenticate) like every other: it reads
//! `Authorization: Bearer` and `Authorization: DPoP`, has the inner
//! authenticator verify the token, then, for the DPoP scheme, checks the
//! proof with the [`ProofValidator`] against the request's public URL and
//! the token's `cnf.jkt` ([`Principal::cnf_jkt`](crate::Principal::cnf_jkt)).
//! Give the same [`Dpop`] to
//! [`ProtectedResourceBuilder::dpop`](crate::ProtectedResourceBuilder::dpop):
//! the metadata then lists the algorithms (and
//! `dpop_bound_access_tokens_required` when [required](Dpop::required)),
//! and every challenge of the stack gets a `DPoP` one beside the `Bearer`
//! one.
//!
//! ```
//! use axum::{routing::post, Router};
//! use secrecy::SecretString;
//! use tower::ServiceBuilder;
//! use tower_mcp_auth::{
//!     dpop::{Dpop, Nonces, ProofValidator},
//!     jwt::{JwtLayer, JwtValidator},
//!     Principal, ProtectedResource,
//! };
//!
//! let dpop = Dpop::new(
//!     ProofValidator::builder()
//!         .nonces(Nonces::new([7u8; 32])?) // optional: server nonces
//!         .build()?,
//! ); // `.required()` to refuse unbound tokens
//! let resource = ProtectedResource::builder("https://mcp.example.com/mcp")
//!     .authorization_server("https://auth.example.com")
//!     .dpop(&dpop) // metadata and WWW-Authenticate: DPoP
//!     .build()?;
//! let validator = JwtValidator::builder(&resource)
//!     .hs256_secret(&SecretString::from("0123456789abcdef0123456789abcdef"))
//!     .build()?;
//!
//! let app: Router = Router::new()
//!     .route("/mcp", post(|p: Principal| async move { p.name().to_owned() }))
//!     .layer(
//!         ServiceBuilder::new()
//!             .layer(resource.layer()) // the public URL every proof's htu names
//!             .layer(JwtLayer::new(validator).dpop(dpop)),
//!     )
//!     .merge(resource.router());
//! # Ok::<(), tower_mcp_auth::ConfigError>(())
//! ```
//!
//! | the request | answer |
//! | --- | --- |
//! | `Authorization: DPoP <token>`, one good proof by the key of the token's `cnf.jkt` | accepted (the [`Principal`](crate::Principal) carries `cnf_jkt`) |
//! | a bound token (with `cnf.jkt`) as `Bearer` | 401 `invalid_token` (no downgrade) |
//! | an unbound token as `DPoP` | 401 `invalid_token`, in the `DPoP` challenge |
//! | an unbound token as `Bearer` | accepted; with [`Dpop::required`], 401 `invalid_token` |
//! | a bad token as `DPoP` | 401 `invalid_token`, in the `DPoP` challenge |
//! | no proof, two proofs, any failed check of the proof, another key | 401 `invalid_dpop_proof` |
//! | nonces on, proof without the current nonce | 401 `use_dpop_nonce` with `DPoP-Nonce` |
//! | the caller or the key holds its share of the replay store's live proofs | 429 `rate_limited` with `Retry-After` (that caller only) |
//! | replay store unreachable | 503 with `Retry-After` |
//! | two `Authorization` headers | 400 `invalid_request` (as for bearer tokens) |
//!
//! With nonces on, every response of the layer (accepted or refused)
//! carries the current nonce in `DPoP-Nonce`. A caller accepted with a
//! proof is answered in the DPoP scheme by the later steps too: the MCP
//! policy's 403 step-up puts `insufficient_scope` and the scopes in the
//! `DPoP` challenge.
//!
//! **The public URL.** A proof's `htu` is compared with the resource's
//! public origin (the scheme and authority of its identifier, from the
//! [`ProtectedResourceLayer`](crate::ProtectedResourceLayer) above the
//! stack) followed by the path the application was asked for (axum's
//! `OriginalUri` when nested): never the socket's address nor the `Host`
//! header. Without a protected resource on the stack no proof can match
//! (refused, `invalid_dpop_proof`).
//!
//! # The core
//!
//! The scheme's core, independent of any layer:
//!
//! - [`ProofValidator`]: every check of RFC 9449 §4.3 on the `DPoP`
//!   header of one request, the key binding (the [`Binding`]: the access
//!   token's `cnf.jkt` and its caller), then the replay check; it returns
//!   a [`VerifiedProof`];
//! - [`ProofError`]: one [kind](ProofErrorKind) per check, its RFC 9449
//!   error code and status;
//! - [`ReplayCache`]: [`MemoryReplayCache`] (bounded in all, per caller
//!   and per key, shared fairly when full, fail closed) and, with the
//!   `redis` feature, `RedisReplayCache` shared by replicas (bounded per
//!   caller and per key);
//! - [`Nonces`]: stateless, time-windowed server nonces (§8, §9);
//! - [`challenge`] and [`DpopMetadata`]: the `WWW-Authenticate: DPoP`
//!   value and the protected-resource metadata members.
//!
//! # The core alone
//!
//! ```
//! use std::time::Duration;
//! use tower_mcp_auth::dpop::{MemoryReplayCache, Nonces, ProofValidator};
//!
//! let validator = ProofValidator::builder()
//!     .iat_window(Duration::from_secs(300))
//!     .iat_future_skew(Duration::from_secs(5))
//!     .replay_cache(MemoryReplayCache::with_capacity(100_000).per_principal(5_000))
//!     .nonces(Nonces::new([42u8; 32])?)
//!     .build()?;
//! // In the request path, once the access token is verified:
//! // let binding = Binding::new(token_cnf_jkt, &token_issuer_and_subject);
//! // let proof = validator.validate(req.headers().get_all("dpop"), req.method(),
//! //     &public_url, access_token, binding).await?;
//! # Ok::<(), tower_mcp_auth::ConfigError>(())
//! ```
//!
//! # The checks, in order
//!
//! 1. exactly one `DPoP` header value, at most
//!    [`DEFAULT_MAX_PROOF_BYTES`] (configurable) before anything is parsed;
//! 2. a compact JWS: three base64url parts, JSON header and claims;
//! 3. `typ` is `dpop+jwt`; `alg` is one of the configured asymmetric
//!    algorithms; no `crit`; a `jwk` with no private member and of the
//!    type and size `alg` needs;
//! 4. the signature verifies with that `jwk`;
//! 5. `jti` (1 to [`MAX_JTI_BYTES`] bytes), `htm` equal to the method,
//!    `htu` equal to the request's public URL after normalisation, `iat`
//!    inside the window (at most [`DEFAULT_IAT_WINDOW`] old, at most
//!    [`DEFAULT_IAT_FUTURE_SKEW`] ahead), `ath` the base64url SHA-256 of
//!    the access token, and, when nonces are on, a current `nonce`;
//! 6. the proof's key is the one the token's `cnf.jkt` names;
//! 7. only then, the proof (its `jti` under its key) has not been seen in
//!    the window, and its caller and key are under their shares of the
//!    replay store: a proof that fails any earlier check leaves nothing
//!    behind.
//!
//! # Cost
//!
//! A proof cannot be cached (each is fresh), so every DPoP request pays one
//! signature check: `benches/dpop.rs` measures one validation at about
//! 40 µs for ES256 and 30 µs for EdDSA on aws-lc-rs, 85–90 % of it the
//! signature; the replay insert is under 1 µs. Against the JWT layer's
//! cache-hit bearer path (about 1.5 µs) in the same run, a DPoP request
//! costs about 28× (ES256) and 19× (EdDSA) a bearer request. Through the
//! layer (`layer/dpop_request` in the same bench, whole requests through
//! `JwtLayer::new(v).dpop(d)`), one run on a loaded two-core machine
//! measured 90 µs (ES256) and 65 µs (EdDSA) against 5.5 µs for the bearer
//! cache hit of that run (16× and 12×), the same as proof validation plus
//! the bearer path: the wrapper adds nothing measurable, and an unbound
//! bearer token through a DPoP-enabled layer costs what it costs without
//! DPoP (4.5 µs, within the noise).
//!
//! # Choices RFC 9449 and SEP-1932 leave open, and the choice made
//!
//! | where | choice |
//! | --- | --- |
//! | `iat` window (§11.1 "relatively recent"; SEP-1932: 5 minutes) | 5 minutes into the past, [configurable](ProofValidatorBuilder::iat_window); 5 seconds into the future, [configurable](ProofValidatorBuilder::iat_future_skew) (a proof dated ahead would hold its replay entry that much longer) |
//! | `jti` uniqueness scope (§11.1) | per key: the replay key is SHA-256(thumbprint ‖ 0 ‖ jti), truncated to 16 bytes |
//! | how long a `jti` is remembered | until `iat` + window: exactly as long as `iat` would pass |
//! | replay store per caller | at most [`DEFAULT_REPLAY_PER_PRINCIPAL`] live proofs per caller (issuer and subject) and [`DEFAULT_REPLAY_PER_KEY`] per key, configurable; over it, **429** ([`ProofErrorKind::ReplayQuotaExceeded`]) with `Retry-After`, for that caller only. 429, not 401: the proof is good and the caller is throttled, not wrong; a 401 `invalid_dpop_proof` would tell a client its proof is bad (and `FailedAuthLayer` would count it as a failed login against its address) |
//! | replay store at capacity | a caller below its fair share (capacity over the callers holding entries) is still accepted, room taken from the heaviest caller, whose dropped proofs stay refused (a watermark); a caller at its fair share gets 429. Never forget a live entry in a way that lets it be replayed |
//! | replay store unreachable (Redis) | refuse (503, [`ProofErrorKind::ReplayStoreUnavailable`]) |
//! | algorithms (§5.1 `dpop_signing_alg_values_supported`) | ES256, EdDSA (Ed25519), RS256, PS256 by default; ES384 and RS/PS 384/512 on request; never `none` or HMAC (refused at build) |
//! | RSA key size | 2048 to 4096 bits (a larger modulus is attacker-chosen verification cost) |
//! | `typ` comparison | ASCII case-insensitive (media types are, RFC 7515 §4.1.9) |
//! | `crit` | refused: no extension is understood |
//! | `jwk` private members | `d p q dp dq qi oth k` refused (§4.3 step 7) |
//! | `htu` normalisation (§4.3 step 9 "SHOULD" RFC 3986 §6.2.2/§6.2.3) | case of scheme and host, default and empty port, empty path, percent-encoding, dot segments; userinfo refused; query and fragment ignored |
//! | `htu` behind a proxy | the caller passes the configured public URL, never one built from the socket or `Host` |
//! | `htm` comparison | exact, case-sensitive (methods are, RFC 9110 §9.1) |
//! | `iat` with a fraction | accepted, the fraction dropped |
//! | `ath` (§4.3 step 11) | always required: a resource server always has an access token |
//! | nonces (§8, §9) | optional; stateless HMAC over a time window, current and previous window accepted, [5-minute](Nonces::DEFAULT_WINDOW) windows; not single-use (the `jti` check is) |
//! | nonce errors | `use_dpop_nonce` for a missing and for a stale or forged nonce |
//! | token not bound but sent as `DPoP` | `invalid_token` ([`ProofErrorKind::TokenNotBound`]) |
//! | proof key is not the token's `cnf.jkt` | `invalid_dpop_proof` ([`ProofErrorKind::KeyMismatch`]), §4.3 step 12 |
//! | `error_description` | a fixed sentence per check, never the proof |
//! | where the binding is read | `cnf.jkt` of the JWT's claims, or of the introspection response's members; a `cnf` that is not an object, or a `jkt` that is not a string of 1 to 128 bytes, makes the token invalid; `cnf` without `jkt` (another confirmation method) is no DPoP binding |
//! | status of proof failures (§7.1) | 401 with `WWW-Authenticate: DPoP error="invalid_dpop_proof"`, two proofs included; 400 only for two `Authorization` headers; 503 when the replay store cannot answer |
//! | challenges when both schemes are accepted | `Bearer` first, then `DPoP` (two header values), each with `realm` and `resource_metadata`; the error in the challenge of the scheme the client used; kept when DPoP is required, since MCP clients read `resource_metadata` from a leading `Bearer` challenge |
//! | `DPoP-Nonce` on responses (§8.2) | on every response of the DPoP layer while nonces are on: refusals and accepted requests alike |
//! | `htu` of the request | the resource's public origin plus the path the application was asked for |

mod challenge;
mod error;
mod htu;
mod jwk;
mod layer;
mod nonce;
mod proof;
#[cfg(feature = "redis")]
mod redis;
mod replay;
#[cfg(test)]
mod tests;

pub use challenge::{algorithm_name, challenge, DpopMetadata};
pub use error::{ProofError, ProofErrorKind};
pub use jwk::jkt_matches;
pub use layer::{
    Dpop, DpopAuthenticator, DpopCredential, DpopLayer, TokenAuthenticator, DPOP, DPOP_NONCE,
};
pub use nonce::Nonces;
pub use proof::{
    Binding, ProofValidator, ProofValidatorBuilder, VerifiedProof, DEFAULT_ALGORITHMS,
    DEFAULT_IAT_FUTURE_SKEW, DEFAULT_IAT_WINDOW, DEFAULT_MAX_PROOF_BYTES, MAX_JTI_BYTES,
};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::RedisReplayCache;
pub use replay::{
    MemoryReplayCache, ReplayCache, ReplayFuture, ReplayKey, ReplayOwner, DEFAULT_REPLAY_CAPACITY,
    DEFAULT_REPLAY_PER_KEY, DEFAULT_REPLAY_PER_PRINCIPAL,
};
