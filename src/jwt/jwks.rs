//! Remote keys: a JWKS fetched from a URL (or found through the issuer's
//! RFC 8414 / OpenID Connect metadata, by the rules of
//! [`discovery`](crate::discovery)), cached, refreshed in the background.
//!
//! * Reads are lock-free: the current key set sits in an [`ArcSwapOption`].
//! * A background task refreshes the set every `refresh_interval`.
//! * A token naming an unknown `kid` may trigger a refetch, but at most one
//!   per `min_refetch_interval` (default 5 s), and concurrent askers share
//!   that one fetch (single flight); the others get their answer from it.
//!   Within the interval the key is "not known yet": 503 with
//!   `Retry-After` until a fetch is allowed, not 401 (a rotation the
//!   server has not seen yet is not a bad token).
//! * But a key that was missing from a key set fetched *after* the token
//!   was issued can never verify it: a token whose `iat` (plus the
//!   validator's leeway, for the two clocks) is not after the start of
//!   the last successful fetch, and whose `kid` is not in that set, is 401
//!   `invalid_token` at once, with no fetch (a key the authorization
//!   server has removed, or a made-up `kid` on an old token). Only a token
//!   issued after the last fetch may name a key published since: that one
//!   gets the 503 above. A token without `iat` (RFC 9068 requires it in
//!   JWT access tokens) is treated as possibly new. The `iat` read for
//!   this is not verified (no key can verify the token yet): a forged one
//!   can only choose between this 401 and the 503, whose fetches are
//!   bounded by the interval whatever it says.
//! * Time: the intervals run on Tokio's clock (`tokio::time::Instant`, so
//!   `tokio::time::pause` / `advance` drive them in tests); the time of a
//!   fetch compared with `iat` is the system clock, as `iat` is.
//! * A failed fetch keeps the last good keys (stale-on-error) and emits an
//!   `degraded` [audit](crate::audit) event. With no keys ever
//!   fetched, the validator answers 503.
//! * Each fetch (metadata and JWKS alike) is the crate's one bounded
//!   exchange ([`fetch`](crate::fetch)): a deadline over the whole
//!   exchange, a response-size cap, no redirects. HMAC (`oct`) keys are
//!   ignored unless explicitly allowed.

use std::{
    borrow::Cow,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, Weak,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::time::Instant;

use arc_swap::ArcSwapOption;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{
    cache::OnChange,
    keys::{JwtKey, KeySet},
};
use crate::{
    audit, config::ConfigError, discovery::AuthorizationServerMetadata, fetch::HttpClient,
    url::check_url,
};

/// Default background refresh interval.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
/// Default minimum time between two fetches caused by unknown `kid`s: also
/// the longest a key the authorization server has just started signing
/// with is answered "not known yet" (503 with `Retry-After`), plus one fetch.
pub const DEFAULT_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(5);
/// Default timeout of one fetch.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on a JWKS or metadata response.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;

#[derive(Clone, Debug)]
pub(crate) struct JwksOptions {
    pub(crate) refresh_interval: Duration,
    pub(crate) min_refetch_interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_bytes: usize,
    pub(crate) allow_hmac: bool,
    pub(crate) issuer: Option<String>,
}

impl Default for JwksOptions {
    fn default() -> Self {
        Self {
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            min_refetch_interval: DEFAULT_MIN_REFETCH_INTERVAL,
            timeout: DEFAULT_FETCH_TIMEOUT,
            max_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            allow_hmac: false,
            issuer: None,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) enum JwksSource {
    Url(String),
    Issuer(String),
}

/// A fetched key set and the digest of the JWKs it came from.
pub(crate) struct Loaded {
    pub(crate) keys: KeySet,
    fingerprint: [u8; 32],
}

/// A remote JWKS. Clones share one cache.
#[derive(Clone)]
pub(crate) struct RemoteJwks {
    shared: Arc<Shared>,
}

struct Shared {
    source: JwksSource,
    resolved_url: ArcSwapOption<String>,
    http: HttpClient,
    opts: JwksOptions,
    keys: ArcSwapOption<Loaded>,
    generation: AtomicU64,
    last_attempt: Mutex<Option<Instant>>,
    /// When the last successful fetch started, in whole seconds since the
    /// Unix epoch (rounded down); 0: never.
    last_success: AtomicU64,
    fetches: AtomicU64,
    inflight: tokio::sync::Mutex<()>,
    refresher_started: AtomicBool,
    on_change: Option<OnChange>,
}

/// Why a fetch failed, for the audit trail: never a key, never a body
/// beyond a bounded quote of a discovered issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FetchError(pub(crate) Cow<'static, str>);

impl FetchError {
    fn fixed(why: &'static str) -> Self {
        Self(Cow::Borrowed(why))
    }
}

impl RemoteJwks {
    pub(crate) fn new(
        source: JwksSource,
        opts: JwksOptions,
        on_change: Option<OnChange>,
    ) -> Result<Self, ConfigError> {
        let resolved = match &source {
            JwksSource::Url(url) => {
                check_url("JWKS URL", url)?;
                Some(Arc::new(url.clone()))
            }
            JwksSource::Issuer(issuer) => {
                AuthorizationServerMetadata::well_known_urls(issuer)?;
                None
            }
        };
        let http = HttpClient::with_limits(opts.max_bytes, opts.timeout)?;
        Ok(Self {
            shared: Arc::new(Shared {
                source,
                resolved_url: ArcSwapOption::new(resolved),
                http,
                opts,
                keys: ArcSwapOption::empty(),
                generation: AtomicU64::new(0),
                last_attempt: Mutex::new(None),
                last_success: AtomicU64::new(0),
                fetches: AtomicU64::new(0),
                inflight: tokio::sync::Mutex::new(()),
                refresher_started: AtomicBool::new(false),
                on_change,
            }),
        })
    }

    /// The current keys; `None` when none were ever fetched.
    pub(crate) fn current(&self) -> Option<Arc<Loaded>> {
        self.shared.keys.load_full()
    }

    /// Bumped whenever the key set changes.
    pub(crate) fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// How many fetches were attempted (for tests and metrics).
    pub(crate) fn fetch_count(&self) -> u64 {
        self.shared.fetches.load(Ordering::Relaxed)
    }

    /// Whether a fetch that started at or after `since` (seconds since
    /// the Unix epoch) has succeeded: its key set is what the
    /// authorization server published at that time or later.
    pub(crate) fn fetched_since(&self, since: u64) -> bool {
        let last = self.shared.last_success.load(Ordering::Acquire);
        last != 0 && last >= since
    }

    /// How long until a refetch is allowed (zero: now, or a fetch is in
    /// flight and its result can be waited for; the minimum interval
    /// counts from the last attempt).
    pub(crate) fn refetch_in(&self) -> Duration {
        if self.shared.inflight.try_lock().is_err() {
            return Duration::ZERO;
        }
        self.shared.refetch_in()
    }

    /// Fetches unless another fetch happened within the minimum interval;
    /// concurrent callers share one fetch.
    ///
    /// The fetch runs in a task of its own, so a caller that is dropped
    /// (its client went away) neither cancels the fetch the others are
    /// waiting for nor leaves its attempt counted with no keys to show.
    /// A caller that waited while a fetch was in flight takes that fetch's
    /// result and never starts another: each waits at most one timeout,
    /// however short the minimum interval.
    pub(crate) async fn refetch(&self) {
        self.ensure_refresher();
        let shared = self.shared.clone();
        let seen = shared.fetches.load(Ordering::Acquire);
        detached(async move {
            // Waits for a fetch in flight (its result is ours too); the
            // lock is uncontended otherwise.
            let _guard = shared.inflight.lock().await;
            if shared.fetches.load(Ordering::Acquire) != seen || !shared.may_refetch() {
                return; // fetched while we waited, or within the interval
            }
            let _ = shared.fetch_and_store().await;
        })
        .await;
    }

    /// Fetches now, whatever the interval (still single flight, and not
    /// cancelled with the caller).
    pub(crate) async fn refresh_now(&self) -> Result<(), FetchError> {
        self.ensure_refresher();
        let shared = self.shared.clone();
        detached(async move {
            let _guard = shared.inflight.lock().await;
            shared.fetch_and_store().await
        })
        .await
        .unwrap_or(Err(FetchError::fixed("the fetch task failed")))
    }

    /// Starts the background refresher once, if a Tokio runtime is running.
    pub(crate) fn ensure_refresher(&self) {
        if self.shared.refresher_started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.shared.refresher_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        let interval = self.shared.opts.refresh_interval;
        handle.spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(shared) = weak.upgrade() else {
                    return; // the validator is gone
                };
                let _guard = shared.inflight.lock().await;
                let _ = shared.fetch_and_store().await;
            }
        });
    }
}

/// Runs `f` in a task of its own on the current Tokio runtime and waits
/// for it: dropping the caller does not cancel `f`. Without a runtime
/// (never the case under `reqwest`), runs it in place.
async fn detached<F>(f: F) -> Option<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.spawn(f).await.ok(),
        Err(_) => Some(f.await),
    }
}

impl Shared {
    fn may_refetch(&self) -> bool {
        self.refetch_in().is_zero()
    }

    fn refetch_in(&self) -> Duration {
        let last = *self.last_attempt.lock().unwrap_or_else(|e| e.into_inner());
        last.map_or(Duration::ZERO, |t| {
            self.opts.min_refetch_interval.saturating_sub(t.elapsed())
        })
    }

    async fn fetch_and_store(&self) -> Result<(), FetchError> {
        *self.last_attempt.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        // Rounded down: a set fetched at `started` is at least as new as
        // the server's keys at this second.
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match self.fetch().await {
            Ok(loaded) => {
                self.last_success.fetch_max(started, Ordering::AcqRel);
                let changed = self
                    .keys
                    .load()
                    .as_ref()
                    .is_none_or(|old| old.fingerprint != loaded.fingerprint);
                if changed {
                    self.keys.store(Some(Arc::new(loaded)));
                    self.generation.fetch_add(1, Ordering::AcqRel);
                    if let Some(f) = &self.on_change {
                        f();
                    }
                }
                Ok(())
            }
            Err(e) => {
                if self.keys.load().is_some() {
                    audit::degraded(
                        "jwt",
                        &format!("JWKS fetch failed ({}); serving the last good keys", e.0),
                    );
                } else {
                    audit::degraded(
                        "jwt",
                        &format!(
                            "JWKS fetch failed ({}); no keys yet, refusing with 503",
                            e.0
                        ),
                    );
                }
                Err(e)
            }
        }
    }

    async fn fetch(&self) -> Result<Loaded, FetchError> {
        let url = match self.resolved_url.load_full() {
            Some(url) => url,
            None => {
                let JwksSource::Issuer(issuer) = &self.source else {
                    return Err(FetchError::fixed("no JWKS URL"));
                };
                let url = Arc::new(self.discover(issuer).await?);
                self.resolved_url.store(Some(url.clone()));
                url
            }
        };
        let response = self
            .http
            .get_json(&url)
            .await
            .map_err(|e| FetchError(e.to_string().into()))?;
        if !response.status().is_success() {
            return Err(FetchError(
                format!("the JWKS URL answered HTTP {}", response.status().as_u16()).into(),
            ));
        }
        let body: Value = serde_json::from_slice(response.body())
            .map_err(|_| FetchError::fixed("the JWKS is not JSON"))?;
        parse_jwks(&body, self.opts.allow_hmac, self.opts.issuer.as_deref())
    }

    /// The issuer's `jwks_uri`, by the crate's one discovery
    /// ([`AuthorizationServerMetadata::discover_by`]) with this JWKS's
    /// limits.
    async fn discover(&self, issuer: &str) -> Result<String, FetchError> {
        let metadata = AuthorizationServerMetadata::discover_by(&self.http, issuer)
            .await
            .map_err(|e| FetchError(format!("discovery: {e}").into()))?;
        metadata.jwks_uri.ok_or_else(|| {
            FetchError(format!("discovery: the metadata of {issuer} has no jwks_uri").into())
        })
    }
}

/// Builds a key set from a JWKS document. Unusable keys (encryption keys,
/// unknown types, HMAC unless allowed, bad material) are skipped; a set with
/// no usable key is an error.
pub(crate) fn parse_jwks(
    doc: &Value,
    allow_hmac: bool,
    issuer: Option<&str>,
) -> Result<Loaded, FetchError> {
    let Some(items) = doc.get("keys").and_then(Value::as_array) else {
        return Err(FetchError::fixed("the JWKS has no keys array"));
    };
    let mut set = KeySet::default();
    let mut accepted: Vec<String> = Vec::new();
    for item in items {
        let Ok(jwk) = serde_json::from_value::<Jwk>(item.clone()) else {
            continue;
        };
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) && !allow_hmac {
            continue;
        }
        let Ok(mut key) = JwtKey::from_jwk(&jwk) else {
            continue;
        };
        if let Some(iss) = issuer {
            key = key.with_issuer(iss);
        }
        if set.insert(key).is_err() {
            continue; // duplicate kid: keep the first
        }
        accepted.push(item.to_string());
    }
    if set.is_empty() {
        return Err(FetchError::fixed("the JWKS has no usable signing key"));
    }
    accepted.sort();
    let mut h = Sha256::new();
    for a in &accepted {
        h.update(a.as_bytes());
        h.update([0]);
    }
    Ok(Loaded {
        keys: set,
        fingerprint: h.finalize().into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jwks_skips_hmac_unless_allowed_and_unusable_keys() {
        super::super::install_crypto_provider();
        let doc = json!({"keys": [
            {"kty": "oct", "alg": "HS256", "kid": "h", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "weird"},
            "not an object"
        ]});
        let loaded = parse_jwks(&doc, false, None).unwrap();
        assert_eq!(loaded.keys.len(), 1);
        let with_hmac = parse_jwks(&doc, true, None).unwrap();
        assert_eq!(with_hmac.keys.len(), 2);
        assert_ne!(loaded.fingerprint, with_hmac.fingerprint);
        assert!(parse_jwks(
            &json!({"keys": [{"kty": "oct", "alg": "HS256", "k": "AA"}]}),
            false,
            None
        )
        .is_err());
        assert!(parse_jwks(&json!({"nope": 1}), true, None).is_err());
    }
}
