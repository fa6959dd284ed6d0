//! The key store: [`ApiKey`], and [`ApiKeys`], the set of their digests
//! that every clone shares and a reload swaps.

use std::{collections::HashMap, fmt, sync::Arc};

use arc_swap::ArcSwap;
use base64::Engine;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{
    config::ConfigError,
    principal::{AuthScheme, Principal, Scopes},
};

use super::retire::retire;

/// The prefix of keys made by [`ApiKeys::generate`], so that secret
/// scanners and people can recognise one.
pub const KEY_PREFIX: &str = "mcp_sk_";

/// The shortest plaintext key accepted from code or the environment.
pub const MIN_KEY_LEN: usize = 16;

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
pub(super) struct KeySet(DigestMap);

impl KeySet {
    pub(super) fn from_keys(keys: impl IntoIterator<Item = ApiKey>) -> Self {
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
pub struct ApiKeys(pub(super) Arc<ArcSwap<KeySet>>);

impl ApiKeys {
    /// An empty set (every key is refused).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    pub(super) fn from_set(set: KeySet) -> Self {
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

/// The SHA-256 digest of `bytes`.
pub(super) fn digest(bytes: &[u8]) -> [u8; 32] {
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

#[cfg(test)]
mod tests {
    use super::super::test_keys::{KEY_A, KEY_B};
    use super::*;
    use secrecy::ExposeSecret;
    use std::time::{Duration, Instant};

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
}
