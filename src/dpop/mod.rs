//! DPoP (RFC 9449; MCP SEP-1932, "DPoP Profile for MCP"): sender-constrained
//! access tokens, so a stolen token is useless without its key.
//!
//! This module is the scheme's core, independent of any layer:
//!
//! - [`ProofValidator`]: every check of RFC 9449 §4.3 on the `DPoP`
//!   header of one request, then the replay check; it returns a
//!   [`VerifiedProof`] whose [`jkt`](VerifiedProof::jkt) the caller
//!   compares with the access token's `cnf.jkt`
//!   ([`VerifiedProof::check_binding`], [`jkt_matches`]);
//! - [`ProofError`]: one [kind](ProofErrorKind) per check, its RFC 9449
//!   error code and status;
//! - [`ReplayCache`]: [`MemoryReplayCache`] (bounded, fail closed) and,
//!   with the `redis` feature, `RedisReplayCache` shared by replicas;
//! - [`Nonces`]: stateless, time-windowed server nonces (§8, §9);
//! - [`challenge`] and [`DpopMetadata`]: the `WWW-Authenticate: DPoP`
//!   value and the protected-resource metadata members.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower_mcp_auth::dpop::{MemoryReplayCache, Nonces, ProofValidator};
//!
//! let validator = ProofValidator::builder()
//!     .iat_window(Duration::from_secs(300))
//!     .replay_cache(MemoryReplayCache::with_capacity(100_000))
//!     .nonces(Nonces::new([42u8; 32])?)
//!     .build()?;
//! // In the request path:
//! // let proof = validator.validate(req.headers().get_all("dpop"), req.method(),
//! //     &public_url, access_token).await?;
//! // proof.check_binding(token_cnf_jkt)?;
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
//!    inside the window, `ath` the base64url SHA-256 of the access token,
//!    and, when nonces are on, a current `nonce`;
//! 6. the proof (its `jti` under its key) has not been seen in the window.
//!
//! # Cost
//!
//! A proof cannot be cached (each is fresh), so every DPoP request pays one
//! signature check: `benches/dpop.rs` measures one validation at about
//! 40 µs for ES256 and 30 µs for EdDSA on aws-lc-rs, 85–90 % of it the
//! signature; the replay insert is under 1 µs. Against the JWT layer's
//! cache-hit bearer path (about 1.5 µs) in the same run, a DPoP request
//! costs about 28× (ES256) and 19× (EdDSA) a bearer request.
//!
//! # Choices RFC 9449 and SEP-1932 leave open, and the choice made
//!
//! | where | choice |
//! | --- | --- |
//! | `iat` window (§11.1 "relatively recent"; SEP-1932: 5 minutes) | ±5 minutes by default, the same both ways, [configurable](ProofValidatorBuilder::iat_window) |
//! | `jti` uniqueness scope (§11.1) | per key: the replay key is SHA-256(thumbprint ‖ 0 ‖ jti), truncated to 16 bytes |
//! | how long a `jti` is remembered | until `iat` + window: exactly as long as `iat` would pass |
//! | replay store at capacity | refuse (503, [`ProofErrorKind::ReplayCacheFull`]): fail closed, never forget a live entry |
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

pub use challenge::{challenge, DpopMetadata};
pub use error::{ProofError, ProofErrorKind};
pub use jwk::jkt_matches;
pub use layer::{
    Dpop, DpopAuthenticator, DpopCredential, DpopLayer, TokenAuthenticator, DPOP, DPOP_NONCE,
};
pub use nonce::Nonces;
pub use proof::{
    algorithm_name, ProofValidator, ProofValidatorBuilder, VerifiedProof, DEFAULT_ALGORITHMS,
    DEFAULT_IAT_WINDOW, DEFAULT_MAX_PROOF_BYTES, MAX_JTI_BYTES,
};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::RedisReplayCache;
pub use replay::{
    MemoryReplayCache, ReplayCache, ReplayFuture, ReplayKey, DEFAULT_REPLAY_CAPACITY,
};
