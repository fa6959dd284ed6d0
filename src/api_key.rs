//! API keys: the [`ApiKeys`] store and the [`ApiKeyLayer`] that checks them.
//!
//! Keys are read from `X-API-Key` (or another header,
//! [`header`](ApiKeyLayer::header)) and from `Authorization: ApiKey <key>`
//! (turned off with [`authorization_scheme(false)`](ApiKeyLayer::authorization_scheme));
//! never from the query string. A key anywhere else (another header, the
//! query, `Authorization: Basic`) is no credential to this layer: see
//! [`FailedAuthLayer`](crate::rate_limit::failed_auth::FailedAuthLayer)
//! for what counts as a failed login. Only a
//! SHA-256 digest of each key is kept in memory, in a map keyed by that
//! digest: a presented key is hashed once and looked up, so checking it
//! costs the same with one key or a hundred thousand. The key's name
//! becomes the [`Principal`]'s subject.
//!
//! # Timing
//!
//! The lookup's timing depends only on the digest of the presented key
//! (and its comparison with a stored digest is constant time). An attacker
//! learns at most something about the SHA-256 digest of a string they
//! chose; to turn that into a valid key they would need a preimage of a
//! stored digest, which SHA-256 does not give. See SECURITY.md.
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_mcp_auth::api_key::{ApiKey, ApiKeyLayer, ApiKeys};
//! use tower_mcp_auth::Principal;
//!
//! let keys = ApiKeys::new()
//!     .with(ApiKey::new("billing-service", "mcp_sk_billing-0123456789abcdef").scopes(["read:data"]))
//!     .with(ApiKey::new("admin", "mcp_sk_admin-0123456789abcdef0123"));
//!
//! let app: Router = Router::new()
//!     .route("/whoami", get(|p: Principal| async move { p.name().to_owned() }))
//!     .layer(ApiKeyLayer::new(keys));
//! ```
//!
//! # Rotation and reload
//!
//! Several keys may share a name (old and new during a rotation). Clones of
//! an [`ApiKeys`] share one key set, swapped atomically:
//! [`ApiKeys::reload_digest_file`] and [`ApiKeys::replace`] take effect for
//! the very next request, with no restart and no lock on the request path.
//! A request sees either the old set or the new one, never a mix; the new
//! set is built before the swap, and the old one is freed by the thread
//! that swapped it out (or, while requests are still reading it, by a
//! short-lived thread once they are done), not by a request.

use std::{
    collections::HashMap,
    fmt,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use base64::Engine;
use http::{header, HeaderName, Request};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{
    authenticate::{AuthenticateLayer, Authenticator, Check, Verdict},
    config::{secret_from_env, ConfigError},
    error::AuthError,
    principal::{AuthScheme, Principal, Scopes},
};

/// The prefix of keys made by [`ApiKeys::generate`], so that secret
/// scanners and people can recognise one.
pub const KEY_PREFIX: &str = "mcp_sk_";

/// The shortest plaintext key accepted from code or the environment.
pub const MIN_KEY_LEN: usize = 16;

/// The default header: `X-API-Key`.
pub static DEFAULT_HEADER: HeaderName = HeaderName::from_static("x-api-key");

/// One API key: a name, the SHA-256 digest of the key, and its scopes.
#[derive(Clone)]
pub struct ApiKey {
    digest: KeyDigest,
    principal: Principal,
    too_short: bool,
}

impl ApiKey {
    /// A key from its plaintext. Only its digest is kept.
    ///
    /// Keys shorter than [`MIN_KEY_LEN`] are refused when the set is used in
    /// [`ApiKeys::with`] via [`ApiKeys::try_with`]; prefer
    /// [`ApiKeys::generate`] for new keys.
    pub fn new(name: impl Into<String>, key: impl AsRef<str>) -> Self {
        let key = key.as_ref();
        Self {
            digest: KeyDigest(digest(key.as_bytes())),
            principal: Principal::new(AuthScheme::ApiKey, name),
            too_short: key.len() < MIN_KEY_LEN,
        }
    }

    /// A key from the hex SHA-256 digest of its plaintext, so the plaintext
    /// never lives on the server.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when `digest_hex` is not 64 hex digits.
    pub fn from_digest(name: impl Into<String>, digest_hex: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            digest: KeyDigest(parse_hex_digest(digest_hex).ok_or_else(|| {
                ConfigError::Invalid("an API key digest must be 64 hex digits (SHA-256)".into())
            })?),
            principal: Principal::new(AuthScheme::ApiKey, name),
            too_short: false,
        })
    }

    /// Sets the scopes this key grants.
    #[must_use]
    pub fn scopes<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.principal = self.principal.with_scopes(scopes.into_iter().collect());
        self
    }

    /// The key's name (the principal's subject).
    #[must_use]
    pub fn name(&self) -> &str {
        self.principal.name()
    }

    /// The scopes the key grants.
    #[must_use]
    pub fn granted_scopes(&self) -> &Scopes {
        self.principal.scopes()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name())
            .field("scopes", self.granted_scopes())
            .finish_non_exhaustive()
    }
}

/// The SHA-256 digest of a key: the key of the set's map.
///
/// Equality is constant time (`subtle`); the map hashes digests with the
/// standard library's randomly keyed SipHash, so neither a stored digest
/// (a digest file may hold any 64 hex digits) nor a presented key can
/// steer entries into one bucket, and where a lookup probes is not
/// predictable from outside.
#[derive(Clone, Copy)]
struct KeyDigest([u8; 32]);

impl PartialEq for KeyDigest {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for KeyDigest {}

// Consistent with `eq`: equal digests have equal bytes.
impl std::hash::Hash for KeyDigest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

type DigestMap = HashMap<KeyDigest, Principal>;

/// One immutable key set: what a request sees.
#[derive(Clone, Default)]
struct KeySet(DigestMap);

impl KeySet {
    fn from_keys(keys: impl IntoIterator<Item = ApiKey>) -> Self {
        let mut set = Self::default();
        set.extend(keys);
        set
    }

    /// Adds keys; a key whose digest is already in the set replaces it (the
    /// last one given wins).
    fn extend(&mut self, keys: impl IntoIterator<Item = ApiKey>) {
        let keys = keys.into_iter();
        self.0.reserve(keys.size_hint().0);
        for key in keys {
            self.0.insert(key.digest, key.principal);
        }
    }
}

/// A set of API keys, shared by every clone and reloadable at run time.
///
/// Building a set is linear in its size ([`with`](Self::with) adds in
/// place when no clone shares the set; [`FromIterator`] and the loaders
/// build it in one pass), and [`verify`](Self::verify) is one SHA-256 and
/// one map lookup whatever the size.
#[derive(Clone, Default)]
pub struct ApiKeys(Arc<ArcSwap<KeySet>>);

/// How long the thread freeing an old key set waits for the requests
/// still reading it before it lets the last of them free it.
const RETIRE_PATIENCE: Duration = Duration::from_secs(1);

impl ApiKeys {
    /// An empty set (every key is refused).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn from_set(set: KeySet) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(set)))
    }

    /// Adds a key, returning a new set (clones made before do not see it;
    /// use [`replace`](Self::replace) to change a set in use). Use
    /// [`try_with`](Self::try_with) to refuse short keys.
    ///
    /// When no clone shares the set (a builder chain), the key is added in
    /// place: building a set of `n` keys this way is linear in `n`.
    #[must_use]
    pub fn with(self, key: ApiKey) -> Self {
        let mut set = match Arc::try_unwrap(self.0) {
            // Nobody else holds this set: take its keys without a copy.
            Ok(swap) => swap.into_inner(),
            Err(shared) => shared.load_full(),
        };
        Arc::make_mut(&mut set).extend([key]);
        Self(Arc::new(ArcSwap::new(set)))
    }

    /// Adds a key, refusing one shorter than [`MIN_KEY_LEN`].
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a short key (naming the key, not its
    /// value).
    pub fn try_with(self, key: ApiKey) -> Result<Self, ConfigError> {
        if key.too_short {
            return Err(ConfigError::Invalid(format!(
                "API key `{}` is shorter than {MIN_KEY_LEN} characters; generate one with ApiKeys::generate()",
                key.name()
            )));
        }
        Ok(self.with(key))
    }

    /// Reads keys from the environment variable `var`, comma separated
    /// (several keys: rotation, or one per client). Each entry is either
    ///
    /// * `key`: a bare key, named after the variable in lower case
    ///   (`API_KEY` → `api_key`), granting no scopes (the form of earlier
    ///   releases); or
    /// * `name:key` or `name:key:scope scope …`: a named key (the
    ///   principal's subject) granting scopes, as a line of a
    ///   [digest file](Self::from_digest_file) does.
    ///
    /// An entry with a `:` is read as a named key, so a key cannot
    /// contain `:` (nor `,` or white space; keys from
    /// [`generate`](Self::generate) never do).
    ///
    /// ```
    /// use secrecy::SecretString;
    /// use tower_mcp_auth::api_key::ApiKeys;
    ///
    /// // As `API_KEY="mcp_sk_legacy-0123456789,ops:mcp_sk_ops-0123456789abcdef:admin:write read:data"`.
    /// let value = SecretString::from(
    ///     "mcp_sk_legacy-0123456789,ops:mcp_sk_ops-0123456789abcdef:admin:write read:data",
    /// );
    /// let keys = ApiKeys::from_list("API_KEY", &value)?;
    /// let ops = keys.verify("mcp_sk_ops-0123456789abcdef").unwrap();
    /// assert_eq!(ops.subject(), Some("ops"));
    /// assert_eq!(ops.scopes().to_string(), "admin:write read:data");
    /// assert_eq!(keys.verify("mcp_sk_legacy-0123456789").unwrap().subject(), Some("api_key"));
    /// # Ok::<(), tower_mcp_auth::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingEnv`] / [`ConfigError::EmptyEnv`] when the
    /// variable is not set or empty; [`ConfigError::InvalidEnv`] when an
    /// entry's key contains white space or is shorter than
    /// [`MIN_KEY_LEN`], its name is empty or has white space, or a scope
    /// has characters RFC 6749 §3.3 does not allow. Errors name the
    /// variable and the entry by its number, never a key.
    pub fn from_env(var: &str) -> Result<Self, ConfigError> {
        let value = secret_from_env(var)?;
        Self::from_list(var, &value)
    }

    /// As [`from_env`](Self::from_env), for a value already read (for
    /// example from a secret manager); `var` names it in errors.
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    pub fn from_list(var: &str, value: &SecretString) -> Result<Self, ConfigError> {
        let default_name = var.to_ascii_lowercase();
        let mut keys = Vec::new();
        for (i, entry) in value.expose_secret().split(',').enumerate() {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let key =
                env_entry(&default_name, entry).map_err(|reason| ConfigError::InvalidEnv {
                    var: var.into(),
                    reason: format!("entry #{}: {reason}", i + 1),
                })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(ConfigError::EmptyEnv { var: var.into() });
        }
        Ok(Self::from_set(KeySet::from_keys(keys)))
    }

    /// Reads a file of key digests, one key per line:
    /// `name:sha256-hex[:scope scope …]`. Blank lines and lines starting
    /// with `#` are skipped.
    ///
    /// ```
    /// use tower_mcp_auth::api_key::ApiKeys;
    ///
    /// let key = ApiKeys::generate();
    /// let line = ApiKeys::digest_line("ci-bot", &key, ["read:data"]);
    /// let path = std::env::temp_dir().join("tower-mcp-auth-doctest-keys.txt");
    /// std::fs::write(&path, format!("# keys\n{line}\n"))?;
    ///
    /// let keys = ApiKeys::from_digest_file(&path)?;
    /// assert_eq!(keys.verify(secrecy::ExposeSecret::expose_secret(&key)).unwrap().subject(), Some("ci-bot"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::Io`] when the file cannot be read,
    /// [`ConfigError::KeyFile`] with the line number for a malformed line.
    pub fn from_digest_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Ok(Self::from_set(parse_digest_file(path.as_ref())?))
    }

    /// Re-reads a digest file and swaps its keys in for every clone of this
    /// set. On error the current keys stay in force.
    ///
    /// The new set is built first (reading and parsing happen on the
    /// calling thread, which blocks on the file: call it from
    /// `spawn_blocking` in async code), then swapped in atomically: a
    /// request sees either the old keys or the new ones. The old set is
    /// freed on the calling thread, or, when requests are still reading it
    /// (for one map lookup), on a short-lived thread once they are done: a
    /// reload of many keys costs requests nothing.
    ///
    /// # Errors
    ///
    /// As [`from_digest_file`](Self::from_digest_file).
    pub fn reload_digest_file(&self, path: impl AsRef<Path>) -> Result<(), ConfigError> {
        let set = parse_digest_file(path.as_ref())?;
        retire(self.0.swap(Arc::new(set)));
        Ok(())
    }

    /// Replaces the keys of this set (and of all its clones) with those of
    /// `other`. As with [`reload_digest_file`](Self::reload_digest_file),
    /// the old keys are never freed by a request.
    pub fn replace(&self, other: &ApiKeys) {
        retire(self.0.swap(other.0.load_full()));
    }

    /// Checks a presented key. Returns the matching key's principal.
    ///
    /// The presented key is hashed once (SHA-256) and its digest looked up
    /// in a map, so the cost does not depend on how many keys the set
    /// holds. The timing depends only on the presented key's own digest,
    /// which tells its sender nothing about any valid key (see the module
    /// docs).
    #[must_use]
    pub fn verify(&self, presented: &str) -> Option<Principal> {
        let d = KeyDigest(digest(presented.as_bytes()));
        self.0.load().0.get(&d).cloned()
    }

    /// How many keys the set holds (keys with the same digest count once).
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.load().0.len()
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.load().0.is_empty()
    }

    /// Makes a new random key: [`KEY_PREFIX`] followed by 256 bits of
    /// operating-system randomness in base64url.
    ///
    /// # Panics
    ///
    /// When the operating system has no randomness to give (never on a
    /// supported platform).
    #[must_use]
    pub fn generate() -> SecretString {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        let mut key = String::from(KEY_PREFIX);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(bytes, &mut key);
        SecretString::from(key)
    }

    /// The hex SHA-256 digest of a key, as a digest file holds it.
    #[must_use]
    pub fn digest_hex(key: &SecretString) -> String {
        digest(key.expose_secret().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A digest-file line for a key: `name:sha256-hex:scopes`.
    #[must_use]
    pub fn digest_line<I>(name: &str, key: &SecretString, scopes: I) -> String
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let scopes: Scopes = scopes.into_iter().collect();
        format!("{name}:{}:{scopes}", Self::digest_hex(key))
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = self.0.load();
        let mut keys: Vec<_> = set.0.values().map(|p| (p.name(), p.scopes())).collect();
        keys.sort_unstable_by_key(|&(name, _)| name);
        f.debug_list()
            .entries(keys.iter().map(|&(name, scopes)| KeyView { name, scopes }))
            .finish()
    }
}

/// How `Debug` shows one key of a set: its name and scopes, never a digest.
struct KeyView<'a> {
    name: &'a str,
    scopes: &'a Scopes,
}

impl fmt::Debug for KeyView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("scopes", self.scopes)
            .finish_non_exhaustive()
    }
}

/// A set built in one pass (linear in the number of keys). A key whose
/// digest repeats an earlier one replaces it.
///
/// ```
/// use tower_mcp_auth::api_key::{ApiKey, ApiKeys};
///
/// let keys: ApiKeys = (0..1000)
///     .map(|i| ApiKey::new(format!("tenant-{i}"), format!("mcp_sk_tenant-key-{i:08}")))
///     .collect();
/// assert_eq!(keys.len(), 1000);
/// assert_eq!(keys.verify("mcp_sk_tenant-key-00000042").unwrap().subject(), Some("tenant-42"));
/// ```
impl FromIterator<ApiKey> for ApiKeys {
    fn from_iter<I: IntoIterator<Item = ApiKey>>(keys: I) -> Self {
        Self::from_set(KeySet::from_keys(keys))
    }
}

/// Frees a key set swapped out of an [`ApiKeys`], never in a request:
/// at once when nobody else holds it (the usual case), else on a thread of
/// its own that waits for the requests still reading it (they hold it for
/// one map lookup). The caller never waits.
fn retire<T: Send + Sync + 'static>(old: Arc<T>) {
    let Err(shared) = Arc::try_unwrap(old).map(drop) else {
        return;
    };
    // If no thread can be made, the closure and its reference are dropped
    // here, and the last holder frees the set, as with any `Arc`.
    let _ = std::thread::Builder::new()
        .name("tower-mcp-auth-key-retire".into())
        .spawn(move || wait_and_free(shared, RETIRE_PATIENCE));
}

/// Waits (up to `patience`) until `old` is held by nobody else, then frees
/// it. Returns whether it was freed here (`false`: it is still held, by
/// another [`ApiKeys`] sharing the set through [`ApiKeys::replace`] or a
/// reader descheduled for longer than `patience`; the last holder frees
/// it).
fn wait_and_free<T>(mut old: Arc<T>, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    loop {
        match Arc::try_unwrap(old) {
            Ok(set) => {
                drop(set);
                return true;
            }
            Err(shared) if Instant::now() < deadline => {
                old = shared;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(_) => return false,
        }
    }
}

/// One entry of an environment variable's key list: `key` (named
/// `default_name`, no scopes) or `name:key[:scopes]`. The error never
/// holds the key.
fn env_entry(default_name: &str, entry: &str) -> Result<ApiKey, String> {
    let (name, key, scopes) = match entry.split_once(':') {
        None => (default_name, entry, ""),
        Some((name, rest)) => {
            let (key, scopes) = rest.split_once(':').unwrap_or((rest, ""));
            if name.is_empty() || name.chars().any(char::is_whitespace) {
                return Err("expected `key` or `name:key[:scope scope …]`; the name is empty or has white space".into());
            }
            (name, key, scopes)
        }
    };
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    if key.chars().any(char::is_whitespace) {
        return Err("the key contains white space".into());
    }
    if key.len() < MIN_KEY_LEN {
        return Err(format!(
            "the key is shorter than {MIN_KEY_LEN} characters; generate one with ApiKeys::generate()"
        ));
    }
    if let Some(n) = scopes
        .split_ascii_whitespace()
        .position(|s| !crate::principal::is_scope_token(s))
    {
        return Err(format!(
            "scope #{} has characters RFC 6749 §3.3 does not allow",
            n + 1
        ));
    }
    Ok(ApiKey::new(name, key).scopes(scopes.split_ascii_whitespace()))
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn parse_hex_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

fn parse_digest_file(path: &Path) -> Result<KeySet, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: &str| ConfigError::KeyFile {
            path: path.to_owned(),
            line: n + 1,
            reason: reason.into(),
        };
        let mut fields = line.splitn(3, ':');
        let name = fields.next().unwrap_or_default().trim();
        let hex = fields
            .next()
            .ok_or_else(|| bad("expected `name:sha256-hex[:scopes]`"))?
            .trim();
        if name.is_empty() {
            return Err(bad("the key name is empty"));
        }
        let key = ApiKey::from_digest(name, hex)
            .map_err(|_| bad("the digest must be 64 hex digits (SHA-256 of the key)"))?;
        let scopes = fields.next().unwrap_or_default();
        keys.push(key.scopes(scopes.split_ascii_whitespace()));
    }
    Ok(KeySet::from_keys(keys))
}

/// The [`Layer`](tower_layer::Layer) that authenticates requests by API
/// key: the one [`AuthenticateLayer`] around an [`ApiKeyAuthenticator`].
/// See the [module docs](self) and the [shared rules](crate::authenticate).
///
/// * Required (default): no key → 401 with the challenge.
/// * [`optional`](AuthenticateLayer::optional): no key → the request passes
///   on without a principal (a later layer or the policy decides).
/// * A key that is present but wrong → 401 `invalid_token`, always.
/// * Two key headers, or a key on a request that already has a principal
///   (another credential) → 400 `invalid_request`.
pub type ApiKeyLayer = AuthenticateLayer<ApiKeyAuthenticator>;

/// The [`Authenticator`] of API keys: reads the key from its header and
/// from `Authorization: ApiKey <key>` (unless turned off) and looks it up
/// in an [`ApiKeys`] set. Built by [`ApiKeyLayer::new`].
#[derive(Clone, Debug)]
pub struct ApiKeyAuthenticator {
    keys: ApiKeys,
    /// The key header, then `Authorization` when that scheme is accepted.
    headers: Vec<HeaderName>,
}

impl ApiKeyAuthenticator {
    fn header(&self) -> &HeaderName {
        &self.headers[0]
    }

    fn authorization_scheme(&self) -> bool {
        self.headers.len() > 1
    }
}

impl AuthenticateLayer<ApiKeyAuthenticator> {
    /// A required API-key layer reading `X-API-Key` and
    /// `Authorization: ApiKey <key>` (scheme name case-insensitive); a key
    /// in both is two credentials (400).
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use tower::ServiceExt;
    /// use tower_mcp_auth::api_key::{ApiKey, ApiKeyLayer, ApiKeys};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let keys = ApiKeys::new().with(ApiKey::new("ci", "mcp_sk_ci-0123456789abcdef"));
    /// let app = Router::new().route("/", get(|| async { "ok" })).layer(ApiKeyLayer::new(keys));
    /// for (name, value) in [
    ///     ("x-api-key", "mcp_sk_ci-0123456789abcdef"),
    ///     ("authorization", "ApiKey mcp_sk_ci-0123456789abcdef"),
    /// ] {
    ///     let req = http::Request::get("/").header(name, value).body(axum::body::Body::empty())?;
    ///     assert_eq!(app.clone().oneshot(req).await?.status(), 200);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn new(keys: ApiKeys) -> Self {
        Self::custom(ApiKeyAuthenticator {
            keys,
            headers: vec![DEFAULT_HEADER.clone(), header::AUTHORIZATION],
        })
    }

    /// Reads the key from another header instead of `X-API-Key`.
    pub fn header(mut self, name: HeaderName) -> Self {
        self.authenticator_mut().headers[0] = name;
        self
    }

    /// Whether `Authorization: ApiKey <key>` is read too (default `true`).
    /// Turned off, such a header is no credential to this layer (as any
    /// header it does not read).
    pub fn authorization_scheme(mut self, accept: bool) -> Self {
        let auth = self.authenticator_mut();
        auth.headers.truncate(1);
        if accept {
            auth.headers.push(header::AUTHORIZATION);
        }
        self
    }
}

fn strip_apikey_scheme(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("apikey").then_some(rest)
}

impl Authenticator for ApiKeyAuthenticator {
    type Credential<'a> = &'a str;
    type Future = std::future::Ready<Verdict>;

    fn scheme(&self) -> AuthScheme {
        AuthScheme::ApiKey
    }

    fn credential_headers(&self) -> &[HeaderName] {
        &self.headers
    }

    fn find<'a, B>(&self, req: &'a Request<B>) -> Result<Option<&'a str>, AuthError> {
        let headers = req.headers();
        let mut found = None;
        let mut values = headers.get_all(self.header()).iter();
        if let Some(v) = values.next() {
            if values.next().is_some() {
                return Err(AuthError::invalid_request(
                    "more than one API key header was sent",
                ));
            }
            found = Some(
                v.to_str()
                    .map_err(|_| AuthError::invalid_token("the API key is not valid"))?,
            );
        }
        if self.authorization_scheme() {
            for v in headers.get_all(header::AUTHORIZATION) {
                let Some(key) = v.to_str().ok().and_then(strip_apikey_scheme) else {
                    continue;
                };
                if found.is_some() {
                    return Err(AuthError::invalid_request("more than one API key was sent"));
                }
                found = Some(key);
            }
        }
        Ok(found.map(str::trim))
    }

    fn verify(&self, key: &str) -> Check<Self::Future> {
        Check::Ready(match self.keys.verify(key) {
            Some(principal) => Verdict::Accept(principal),
            None => Verdict::Refuse(AuthError::invalid_token("the API key is not valid")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::ProtectedResource;
    use axum::body::Body;
    use http::{HeaderMap, StatusCode};
    use http_body_util::BodyExt;
    use std::convert::Infallible;
    use tower::{ServiceBuilder, ServiceExt};

    const KEY_A: &str = "mcp_sk_aaaaaaaaaaaaaaaaaaaaaaaa";
    const KEY_B: &str = "mcp_sk_bbbbbbbbbbbbbbbbbbbbbbbb";

    async fn echo(req: Request<Body>) -> Result<http::Response<Body>, Infallible> {
        let who = Principal::from_extensions(req.extensions())
            .map_or("anonymous".to_owned(), |p| {
                format!("{}:{}:{}", p.scheme(), p.name(), p.scopes())
            });
        Ok(http::Response::new(Body::from(who)))
    }

    fn keys() -> ApiKeys {
        ApiKeys::new()
            .with(ApiKey::new("svc-a", KEY_A).scopes(["read:data"]))
            .with(ApiKey::new("svc-b", KEY_B))
    }

    async fn send(layer: ApiKeyLayer, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
        let svc = ServiceBuilder::new().layer(layer).service_fn(echo);
        let res = svc.oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    fn get() -> http::request::Builder {
        Request::get("/mcp")
    }

    #[tokio::test]
    async fn valid_key_inserts_principal() {
        let (status, _, body) = send(
            ApiKeyLayer::new(keys()),
            get()
                .header("x-api-key", KEY_A)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body, "api_key:svc-a:read:data");
    }

    #[tokio::test]
    async fn missing_key_is_401_with_challenge() {
        let resource = ProtectedResource::builder("https://mcp.example.com/mcp")
            .build()
            .unwrap();
        // As the ProtectedResourceLayer above the stack would.
        let mut req = get().body(Body::empty()).unwrap();
        req.extensions_mut().insert(resource.challenge());
        let (status, headers, body) = send(ApiKeyLayer::new(keys()), req).await;
        assert_eq!(status, 401);
        // A required key layer takes API keys only: no OAuth offered
        // (issue 25 item 4).
        assert_eq!(headers[header::WWW_AUTHENTICATE], "ApiKey");
        assert_eq!(
            body,
            r#"{"error":"missing_credential","error_description":"authentication is required"}"#
        );
    }

    #[tokio::test]
    async fn wrong_key_is_401_even_when_optional_and_never_echoed() {
        for (layer, scheme) in [
            (ApiKeyLayer::new(keys()), "ApiKey"),
            (ApiKeyLayer::new(keys()).optional(), "Bearer"),
        ] {
            let (status, headers, body) = send(
                layer,
                get()
                    .header("x-api-key", "mcp_sk_guessguessguessguess")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
            assert_eq!(status, 401);
            assert_eq!(
                headers[header::WWW_AUTHENTICATE],
                format!(
                    r#"{scheme} error="invalid_token", error_description="the API key is not valid""#
                )
            );
            assert!(!body.contains("guess"));
        }
    }

    #[tokio::test]
    async fn optional_passes_anonymous_on() {
        let (status, _, body) = send(
            ApiKeyLayer::new(keys()).optional(),
            get().body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body, "anonymous");
    }

    #[tokio::test]
    async fn duplicate_or_ambiguous_credentials_are_400() {
        let (status, _, _) = send(
            ApiKeyLayer::new(keys()),
            get()
                .header("x-api-key", KEY_A)
                .header("x-api-key", KEY_B)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400);

        let (status, _, _) = send(
            ApiKeyLayer::new(keys()),
            get()
                .header("x-api-key", KEY_A)
                .header("authorization", format!("ApiKey {KEY_B}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400);

        // A principal from another layer plus an API key: two credentials.
        let mut req = get()
            .header("x-api-key", KEY_A)
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(Principal::new(AuthScheme::Jwt, "someone"));
        let (status, headers, _) = send(ApiKeyLayer::new(keys()), req).await;
        assert_eq!(status, 400);
        assert!(headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_request""#));
    }

    #[tokio::test]
    async fn principal_already_present_passes_on() {
        let mut req = get().body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(Principal::new(AuthScheme::Jwt, "someone"));
        let (status, _, body) = send(ApiKeyLayer::new(keys()), req).await;
        assert_eq!(status, 200);
        assert_eq!(body, "jwt:someone:");
    }

    #[tokio::test]
    async fn authorization_apikey_header_is_marked_sensitive() {
        let svc = ServiceBuilder::new()
            .layer(ApiKeyLayer::new(keys()))
            .service_fn(|req: Request<Body>| async move {
                let v = &req.headers()[header::AUTHORIZATION];
                Ok::<_, Infallible>(http::Response::new(Body::from(if v.is_sensitive() {
                    "sensitive"
                } else {
                    "plain"
                })))
            });
        let req = get()
            .header("authorization", format!("ApiKey {KEY_B}"))
            .body(Body::empty())
            .unwrap();
        let resp = svc.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "sensitive");
    }

    /// README: `ApiKeyLayer` reads `X-API-Key` "(or `Authorization:
    /// ApiKey`)". It did only after `.accept_authorization_scheme()`; now
    /// by default (issue 17, item 1), and `.authorization_scheme(false)`
    /// turns it off.
    #[tokio::test]
    async fn authorization_apikey_is_read_by_default() {
        let req = || {
            get()
                .header("authorization", format!("apikey {KEY_B}"))
                .body(Body::empty())
                .unwrap()
        };
        let (status, _, body) = send(ApiKeyLayer::new(keys()), req()).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "api_key:svc-b:"));
        let (status, _, body) =
            send(ApiKeyLayer::new(keys()).authorization_scheme(false), req()).await;
        assert_eq!(status, 401);
        assert!(body.contains("missing_credential"), "{body}");
        // Turned on again, and with another key header.
        let layer = ApiKeyLayer::new(keys())
            .header(HeaderName::from_static("x-key"))
            .authorization_scheme(false)
            .authorization_scheme(true);
        assert_eq!(send(layer, req()).await.0, 200);
    }

    #[tokio::test]
    async fn query_string_key_is_never_read() {
        let (status, _, _) = send(
            ApiKeyLayer::new(keys()),
            Request::get(format!("/mcp?api_key={KEY_A}&x-api-key={KEY_A}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401);
    }

    #[tokio::test]
    async fn custom_header_name() {
        let (status, _, _) = send(
            ApiKeyLayer::new(keys()).header(HeaderName::from_static("x-service-key")),
            get()
                .header("x-service-key", KEY_B)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn non_ascii_header_value_is_401_not_500() {
        let (status, _, _) = send(
            ApiKeyLayer::new(keys()),
            get()
                .header(
                    "x-api-key",
                    http::HeaderValue::from_bytes(b"\xff\xfe-not-ascii").unwrap(),
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401);
    }

    #[test]
    fn env_parsing() {
        std::env::set_var("TMA_KEYS_OK", format!(" {KEY_A} ,{KEY_B},"));
        std::env::set_var("TMA_KEYS_SHORT", "short");
        std::env::set_var("TMA_KEYS_EMPTY", " , ");
        std::env::remove_var("TMA_KEYS_UNSET");
        let keys = ApiKeys::from_env("TMA_KEYS_OK").unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.verify(KEY_B).unwrap().subject(), Some("tma_keys_ok"));
        let err = ApiKeys::from_env("TMA_KEYS_SHORT").unwrap_err();
        assert!(err.to_string().contains("TMA_KEYS_SHORT") && !err.to_string().contains("short\""));
        let err = ApiKeys::from_env("TMA_KEYS_EMPTY").unwrap_err();
        assert!(matches!(err, ConfigError::EmptyEnv { .. }), "{err}");
        let err = ApiKeys::from_env("TMA_KEYS_UNSET").unwrap_err();
        assert!(matches!(err, ConfigError::MissingEnv { .. }), "{err}");
        assert!(err.to_string().contains("TMA_KEYS_UNSET"));
    }

    #[test]
    fn env_entries_carry_names_and_scopes() {
        let list = |v: &str| ApiKeys::from_list("API_KEY", &SecretString::from(v.to_owned()));
        // Old values keep working beside named, scoped entries.
        let keys = list(&format!(
            "{KEY_A}, ops:{KEY_B}:admin:write  read:data ,ci:mcp_sk_ci-0123456789abcdef"
        ))
        .unwrap();
        assert_eq!(keys.len(), 3);
        let a = keys.verify(KEY_A).unwrap();
        assert_eq!((a.name(), a.scopes().len()), ("api_key", 0));
        let ops = keys.verify(KEY_B).unwrap();
        assert_eq!(ops.subject(), Some("ops"));
        assert_eq!(ops.scopes().to_string(), "admin:write read:data");
        let ci = keys.verify("mcp_sk_ci-0123456789abcdef").unwrap();
        assert_eq!((ci.name(), ci.scopes().len()), ("ci", 0));
        // Errors name the variable and the entry, never the key.
        for (value, want) in [
            (format!("{KEY_A},ops:short"), "entry #2: the key is shorter"),
            (format!(":{KEY_A}"), "entry #1: expected `key` or `name:key"),
            (
                format!("{KEY_A},x:{KEY_B}:bad\"scope"),
                "entry #2: scope #1 has characters",
            ),
            ("ops:".to_owned(), "entry #1: the key is empty"),
            (
                format!("{KEY_A} {KEY_B}"),
                "entry #1: the key contains white space",
            ),
        ] {
            let err = list(&value).unwrap_err().to_string();
            assert!(
                err.contains("API_KEY") && err.contains(want),
                "{value}: {err}"
            );
            assert!(!err.contains(KEY_A) && !err.contains(KEY_B), "{err}");
        }
    }

    #[test]
    fn generated_keys_are_prefixed_unique_and_verify() {
        let a = ApiKeys::generate();
        let b = ApiKeys::generate();
        assert!(a.expose_secret().starts_with(KEY_PREFIX));
        assert_eq!(a.expose_secret().len(), KEY_PREFIX.len() + 43);
        assert_ne!(a.expose_secret(), b.expose_secret());
        let keys = ApiKeys::new()
            .try_with(ApiKey::new("gen", a.expose_secret()))
            .unwrap();
        assert!(keys.verify(a.expose_secret()).is_some());
        assert!(keys.verify(b.expose_secret()).is_none());
        assert!(ApiKeys::new().try_with(ApiKey::new("x", "short")).is_err());
        assert!(!format!("{keys:?}").contains(a.expose_secret()));
    }

    #[test]
    fn digest_file_errors_carry_line_numbers() {
        let dir = std::env::temp_dir().join(format!("tma-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.txt");
        std::fs::write(&path, "# ok\n\nname-only\n").unwrap();
        let err = ApiKeys::from_digest_file(&path).unwrap_err();
        assert!(matches!(err, ConfigError::KeyFile { line: 3, .. }), "{err}");
        std::fs::write(&path, "a:zz\n").unwrap();
        let err = ApiKeys::from_digest_file(&path).unwrap_err();
        assert!(err.to_string().contains(":1:"), "{err}");
        let err = ApiKeys::from_digest_file(dir.join("missing.txt")).unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }));
    }

    #[tokio::test]
    async fn reload_swaps_keys_for_running_layers() {
        let dir = std::env::temp_dir().join(format!("tma-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.txt");
        let old = SecretString::from(KEY_A);
        let new = SecretString::from(KEY_B);
        std::fs::write(&path, ApiKeys::digest_line("svc", &old, ["read:data"])).unwrap();
        let keys = ApiKeys::from_digest_file(&path).unwrap();
        let svc = ServiceBuilder::new()
            .layer(ApiKeyLayer::new(keys.clone()))
            .service_fn(echo);
        let status = |key: &'static str| {
            let svc = svc.clone();
            async move {
                svc.oneshot(get().header("x-api-key", key).body(Body::empty()).unwrap())
                    .await
                    .unwrap()
                    .status()
            }
        };
        assert_eq!(status(KEY_A).await, 200);
        assert_eq!(status(KEY_B).await, 401);

        std::fs::write(&path, ApiKeys::digest_line("svc", &new, ["read:data"])).unwrap();
        keys.reload_digest_file(&path).unwrap();
        assert_eq!(status(KEY_A).await, 401, "old key stops working");
        assert_eq!(status(KEY_B).await, 200, "new key starts working");

        std::fs::write(&path, "garbage").unwrap();
        assert!(keys.reload_digest_file(&path).is_err());
        assert_eq!(status(KEY_B).await, 200, "a failed reload keeps the keys");
    }

    #[test]
    fn building_a_large_set_is_linear() {
        // With a copy per `with` (the old set), 100,000 keys took minutes.
        // No clock: each `with` on a set nobody else holds extends that
        // very set (same allocation), so building is linear.
        let set_of = |keys: &ApiKeys| Arc::as_ptr(&keys.0.load_full()) as usize;
        let mut keys = ApiKeys::new();
        for i in 0..100_000 {
            let before = (i > 0).then(|| set_of(&keys));
            keys = keys.with(ApiKey::from_digest(format!("k{i}"), &format!("{i:064x}")).unwrap());
            if let Some(before) = before {
                assert_eq!(set_of(&keys), before, "`with` copied the set at key {i}");
            }
        }
        let collected: ApiKeys = (0..100_000)
            .map(|i| ApiKey::from_digest(format!("k{i}"), &format!("{i:064x}")).unwrap())
            .collect();
        assert_eq!((keys.len(), collected.len()), (100_000, 100_000));
        let digest = KeyDigest(parse_hex_digest(&format!("{:064x}", 77_777)).unwrap());
        assert_eq!(keys.0.load().0[&digest].subject(), Some("k77777"));
    }

    #[test]
    fn with_on_a_shared_set_leaves_the_clone_alone() {
        let a = ApiKeys::new().with(ApiKey::new("a", KEY_A));
        let clone = a.clone();
        let ab = a.with(ApiKey::new("b", KEY_B));
        assert!(clone.verify(KEY_B).is_none());
        assert_eq!(clone.len(), 1);
        assert_eq!(ab.verify(KEY_B).unwrap().subject(), Some("b"));
        assert_eq!(ab.verify(KEY_A).unwrap().subject(), Some("a"));
    }

    #[test]
    fn a_repeated_key_is_the_last_one_given() {
        let keys = ApiKeys::new()
            .with(ApiKey::new("old-name", KEY_A))
            .with(ApiKey::new("new-name", KEY_A).scopes(["x"]));
        assert_eq!(keys.len(), 1);
        let p = keys.verify(KEY_A).unwrap();
        assert_eq!(
            (p.name(), p.scopes().to_string().as_str()),
            ("new-name", "x")
        );
    }

    #[test]
    fn digests_compare_in_full() {
        let a = KeyDigest([7; 32]);
        let mut b = [7; 32];
        b[31] = 8;
        assert!(a != KeyDigest(b));
        let keys = ApiKeys::new().with(ApiKey::from_digest("a", &"07".repeat(32)).unwrap());
        assert!(!keys.0.load().0.contains_key(&KeyDigest(b)));
        assert!(keys.0.load().0.contains_key(&a));
    }

    #[test]
    fn an_old_set_is_freed_after_its_last_reader_not_by_it() {
        // A reader still holds the set for 50 ms: the freeing waits for it,
        // so the reader's drop is not the last one.
        let old = Arc::new(vec![0u8; 1024]);
        let reader = Arc::clone(&old);
        let held = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(reader);
        });
        let start = Instant::now();
        assert!(wait_and_free(old, Duration::from_secs(10)));
        assert!(start.elapsed() >= Duration::from_millis(40));
        held.join().unwrap();

        // Held for good (another `ApiKeys` shares it): gives up after its
        // patience, and the other holder keeps a working set.
        let old = Arc::new(vec![0u8; 1024]);
        let other = Arc::clone(&old);
        assert!(!wait_and_free(old, Duration::from_millis(10)));
        assert_eq!(Arc::strong_count(&other), 1);

        // `retire` itself never waits, even for a set held for good.
        let old = Arc::new(vec![0u8; 1024]);
        let other = Arc::clone(&old);
        let start = Instant::now();
        retire(old);
        assert!(start.elapsed() < Duration::from_millis(100));
        drop(other);
    }

    #[test]
    fn replace_shares_the_set_and_a_second_replace_does_not_block() {
        let a = ApiKeys::new().with(ApiKey::new("a", KEY_A));
        let b = ApiKeys::new().with(ApiKey::new("b", KEY_B));
        a.replace(&b);
        assert_eq!(a.verify(KEY_B).unwrap().subject(), Some("b"));
        assert!(a.verify(KEY_A).is_none());
        let start = Instant::now();
        a.replace(&ApiKeys::new()); // `b` still holds the old set
        assert!(start.elapsed() < Duration::from_millis(100));
        assert!(a.is_empty());
        assert_eq!(b.verify(KEY_B).unwrap().subject(), Some("b"));
    }

    #[test]
    fn reload_under_concurrent_verification_sees_old_or_new_only() {
        let dir = std::env::temp_dir().join(format!("tma-reload-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (old, new) = (dir.join("old.txt"), dir.join("new.txt"));
        let shared = SecretString::from(KEY_A);
        let file = |path: &Path, version: &str| {
            let mut text = ApiKeys::digest_line(version, &shared, [version]);
            for i in 0..5_000 {
                text.push_str(&format!("\nfiller-{i}:{i:064x}"));
            }
            std::fs::write(path, text).unwrap();
        };
        file(&old, "v1");
        file(&new, "v2");
        let keys = ApiKeys::from_digest_file(&old).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        let seen = std::thread::scope(|s| {
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    let (keys, stop) = (keys.clone(), &stop);
                    s.spawn(move || {
                        let mut seen = [0usize; 2];
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            let p = keys.verify(KEY_A).expect("the shared key never fails");
                            let scopes = p.scopes().to_string();
                            assert_eq!(p.name(), scopes, "name and scopes of one set");
                            seen[usize::from(p.subject() == Some("v2"))] += 1;
                        }
                        seen
                    })
                })
                .collect();
            for round in 0..10 {
                let path = if round % 2 == 0 { &new } else { &old };
                keys.reload_digest_file(path).unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            readers
                .into_iter()
                .map(|r| r.join().unwrap())
                .fold([0, 0], |a, b| [a[0] + b[0], a[1] + b[1]])
        });
        assert!(
            seen[0] > 0 && seen[1] > 0,
            "both sets were served: {seen:?}"
        );
        assert_eq!(keys.len(), 5_001);
    }
}
