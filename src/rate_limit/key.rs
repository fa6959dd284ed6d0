//! Which bucket a request counts against: [`RateLimitKey`], and how it is
//! found ([`KeyExtractor`], [`TrustedProxies`]).

use std::{
    fmt,
    hash::Hash,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use axum::extract::ConnectInfo;
use http::{request::Parts, HeaderMap, HeaderName};

use crate::{config::ConfigError, principal::Principal};

/// The bucket a request counts against. Cheap to hash and compare.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RateLimitKey(Repr);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    /// The principal's identity key (scheme, issuer, kind, name).
    Principal(Arc<str>),
    Ip(IpAddr),
    /// An IPv6 network: the address masked to its prefix, and the prefix.
    Net(Ipv6Addr, u8),
    Custom(Box<str>),
    UnknownClient,
    Overflow,
}

/// A key's bytes in at most two writes, a tag then the value (a hasher
/// pays per write about what it pays per byte of a short key; the derived
/// hash writes each field, length and discriminant apart). Equal keys
/// write equal bytes; the tag keeps the kinds apart.
impl std::hash::Hash for Repr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            Self::Principal(identity) => {
                state.write_u8(0);
                state.write(identity.as_bytes());
            }
            Self::Custom(key) => {
                state.write_u8(1);
                state.write(key.as_bytes());
            }
            Self::Ip(IpAddr::V4(ip)) => {
                let [a, b, c, d] = ip.octets();
                state.write(&[2, a, b, c, d]);
            }
            Self::Ip(IpAddr::V6(ip)) => {
                let mut bytes = [3; 17];
                bytes[1..].copy_from_slice(&ip.octets());
                state.write(&bytes);
            }
            Self::Net(net, prefix) => {
                let mut bytes = [4; 18];
                bytes[1..17].copy_from_slice(&net.octets());
                bytes[17] = *prefix;
                state.write(&bytes);
            }
            Self::UnknownClient => state.write_u8(5),
            Self::Overflow => state.write_u8(6),
        }
    }
}

impl RateLimitKey {
    /// The key of an authenticated caller: its
    /// [`identity_key`](Principal::identity_key) (scheme, issuer, kind and
    /// name), so a client and a user of one name, or one subject at two
    /// issuers, never share a bucket; an API key's is its name.
    #[must_use]
    pub fn principal(principal: &Principal) -> Self {
        Self(Repr::Principal(principal.shared_identity_key()))
    }

    /// The key of one exact client address (see [`client`](Self::client)
    /// for the key the layers use).
    #[must_use]
    pub fn ip(ip: IpAddr) -> Self {
        // One bucket per address: an IPv4-mapped IPv6 address is the IPv4 one.
        Self(Repr::Ip(ip.to_canonical()))
    }

    /// The key of an anonymous client: an IPv4 address as it is, an IPv6
    /// address by its network, the first `ipv6_prefix` bits (at most 128;
    /// [`DEFAULT_IPV6_PREFIX`] in the layers). One host is commonly given a
    /// whole IPv6 /64 and can send from any of its 2^64 addresses: keyed
    /// by exact address, it would get a fresh quota (and fresh guesses) per
    /// request.
    ///
    /// ```
    /// use tower_mcp_auth::rate_limit::RateLimitKey;
    ///
    /// let a = RateLimitKey::client("2001:db8:1:2::1".parse()?, 64);
    /// let b = RateLimitKey::client("2001:db8:1:2:ffff::9".parse()?, 64);
    /// assert_eq!(a, b);
    /// assert_eq!(a.to_string(), "ip:2001:db8:1:2::/64");
    /// assert_ne!(a, RateLimitKey::client("2001:db8:1:3::1".parse()?, 64));
    /// assert_eq!(RateLimitKey::client("192.0.2.1".parse()?, 64).to_string(), "ip:192.0.2.1");
    /// # Ok::<(), std::net::AddrParseError>(())
    /// ```
    #[must_use]
    pub fn client(ip: IpAddr, ipv6_prefix: u8) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) if ipv6_prefix < 128 => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(ipv6_prefix))
                    .unwrap_or(0);
                Self(Repr::Net(
                    Ipv6Addr::from(u128::from(v6) & mask),
                    ipv6_prefix,
                ))
            }
            ip => Self(Repr::Ip(ip)),
        }
    }

    /// A key of your own (a tenant id, an API key's group, …).
    #[must_use]
    pub fn custom(key: impl Into<String>) -> Self {
        Self(Repr::Custom(key.into().into_boxed_str()))
    }

    /// The one bucket shared by anonymous requests whose address is unknown
    /// (no `ConnectInfo`).
    #[must_use]
    pub fn unknown_client() -> Self {
        Self(Repr::UnknownClient)
    }

    /// A bucket for a store of your own to share among new keys once it is
    /// full. The stores and layers of this crate no longer use it: a full
    /// table there makes room (see
    /// [`MemoryStore::max_keys`](super::MemoryStore::max_keys)), because a
    /// shared bucket that a flood exhausts refuses every honest newcomer.
    #[must_use]
    pub fn overflow() -> Self {
        Self(Repr::Overflow)
    }

    /// Whether this is an anonymous caller's key (a client address or
    /// network, the unknown client, the overflow bucket).
    pub(crate) fn is_anonymous(&self) -> bool {
        matches!(
            self.0,
            Repr::Ip(_) | Repr::Net(..) | Repr::UnknownClient | Repr::Overflow
        )
    }

    /// Whether this is the [`overflow`](Self::overflow) key.
    #[must_use]
    pub fn is_overflow(&self) -> bool {
        matches!(self.0, Repr::Overflow)
    }
}

/// The stable text form, used in Redis keys: `p:<identity key>` (see
/// [`Principal::identity_key`]), `ip:<address>`, `ip:<network>/<prefix>`
/// (IPv6, [`client`](Self::client)), `c:<custom>`, `anon`, `overflow`.
impl fmt::Display for RateLimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Principal(identity) => write!(f, "p:{identity}"),
            Repr::Ip(ip) => write!(f, "ip:{ip}"),
            Repr::Net(net, prefix) => write!(f, "ip:{net}/{prefix}"),
            Repr::Custom(key) => write!(f, "c:{key}"),
            Repr::UnknownClient => f.write_str("anon"),
            Repr::Overflow => f.write_str("overflow"),
        }
    }
}

impl fmt::Debug for RateLimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RateLimitKey({self})")
    }
}

/// Which header the trusted proxies append the client address to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the default).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

/// The proxies (addresses or CIDR blocks) whose forwarding header is
/// believed. Only the hops these proxies appended are skipped; the first
/// address from the right that is not a trusted proxy is the client.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    nets: Arc<[Net]>,
    header: ProxyHeader,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

impl TrustedProxies {
    /// Trusts the given addresses or CIDR blocks (`10.0.0.0/8`,
    /// `127.0.0.1`, `fd00::/8`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming an entry that is not an address or
    /// block.
    pub fn new<I>(nets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let nets = nets
            .into_iter()
            .map(|s| {
                Net::parse(s.as_ref()).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "`{}` is not an IP address or CIDR block",
                        s.as_ref()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            nets: nets.into(),
            header: ProxyHeader::default(),
        })
    }

    /// Reads the given header (default `X-Forwarded-For`). Use the one
    /// your proxies write: the other is client-controlled.
    #[must_use]
    pub fn header(mut self, header: ProxyHeader) -> Self {
        self.header = header;
        self
    }

    /// Whether `ip` is a trusted proxy.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// The client address of a request that came from `peer`.
    #[must_use]
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.contains(peer) {
            return peer.to_canonical();
        }
        let mut client = peer;
        let mut hops: Vec<&str> = Vec::new();
        match self.header {
            ProxyHeader::XForwardedFor => {
                for v in headers.get_all(&X_FORWARDED_FOR) {
                    let Ok(v) = v.to_str() else {
                        return client.to_canonical();
                    };
                    hops.extend(v.split(','));
                }
            }
            ProxyHeader::Forwarded => {
                for v in headers.get_all(http::header::FORWARDED) {
                    let Ok(v) = v.to_str() else {
                        return client.to_canonical();
                    };
                    hops.extend(v.split(',').map(forwarded_for));
                }
            }
        }
        for hop in hops.iter().rev() {
            // A hop we cannot read ends the walk: the last address read is
            // the best we know (never something further left).
            let Some(ip) = parse_hop(hop) else { break };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        client.to_canonical()
    }
}

/// The `for=` value of one `Forwarded` element ("" when absent).
fn forwarded_for(element: &str) -> &str {
    element
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
        .map_or("", |(_, v)| v.trim())
}

/// An address, with or without port, brackets or quotes.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = hop.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    let inner = hop.strip_prefix('[')?.split(']').next()?;
    inner.parse().ok()
}

/// The IPv6 prefix by which the layers group anonymous clients (a /64, the
/// block one host or one home is commonly given).
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

type KeyFn = dyn Fn(&Parts) -> Option<RateLimitKey> + Send + Sync;

/// Finds the [`RateLimitKey`] of a request.
///
/// * An authenticated request: its [`Principal`]'s scheme and subject, so
///   a key named `ci` and a token whose `sub` is `ci` are different callers.
/// * An anonymous request: the client's IP address. That is the peer
///   address from axum's [`ConnectInfo<SocketAddr>`](axum::extract::ConnectInfo)
///   (serve with `into_make_service_with_connect_info::<SocketAddr>()`),
///   unless the peer is a [trusted proxy](TrustedProxies): then the
///   right-most address in `X-Forwarded-For` (or `Forwarded`) that is not
///   itself a trusted proxy. The left-most hop is whatever the client wrote
///   and is never used. An IPv6 address counts by its network, the first
///   [`ipv6_prefix`](Self::ipv6_prefix) bits (a /64 by default:
///   [`RateLimitKey::client`]). Without `ConnectInfo` every anonymous
///   request shares one bucket.
/// * A custom function of the request's [`Parts`] can replace both.
///
/// # Example
///
/// ```
/// use std::net::{IpAddr, SocketAddr};
/// use axum::extract::ConnectInfo;
/// use http::Request;
/// use tower_mcp_auth::rate_limit::{KeyExtractor, RateLimitKey, TrustedProxies};
///
/// let proxies = TrustedProxies::new(["10.0.0.0/8"])?;
/// let extractor = KeyExtractor::default().trusted_proxies(proxies);
///
/// let mut req = Request::get("/mcp")
///     .header("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.1.2.3")
///     .body(())?;
/// req.extensions_mut()
///     .insert(ConnectInfo("10.0.0.1:40000".parse::<SocketAddr>()?));
/// let (parts, ()) = req.into_parts();
///
/// // 10.0.0.1 and 10.1.2.3 are proxies; 203.0.113.9 is the client.
/// let ip: IpAddr = "203.0.113.9".parse()?;
/// assert_eq!(extractor.extract(&parts), RateLimitKey::ip(ip));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct KeyExtractor {
    custom: Option<Arc<KeyFn>>,
    proxies: TrustedProxies,
    ipv6_prefix: u8,
}

impl Default for KeyExtractor {
    fn default() -> Self {
        Self {
            custom: None,
            proxies: TrustedProxies::default(),
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
        }
    }
}

impl KeyExtractor {
    /// Groups IPv6 clients by their first `bits` bits (default
    /// [`DEFAULT_IPV6_PREFIX`], 64; 128 keys each address alone; more than
    /// 128 is taken as 128). IPv4 addresses are keyed one by one.
    #[must_use]
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits.min(128);
        self
    }

    /// The key of an anonymous client at `ip` (grouped by the IPv6 prefix).
    #[must_use]
    pub fn client_key(&self, ip: IpAddr) -> RateLimitKey {
        RateLimitKey::client(ip, self.ipv6_prefix)
    }

    /// Believes forwarding headers from these proxies.
    #[must_use]
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// A custom key function; when it returns `None` the default key
    /// (principal, else client address) is used.
    #[must_use]
    pub fn custom<F>(mut self, f: F) -> Self
    where
        F: Fn(&Parts) -> Option<RateLimitKey> + Send + Sync + 'static,
    {
        self.custom = Some(Arc::new(f));
        self
    }

    /// The key of a request.
    #[must_use]
    pub fn extract(&self, parts: &Parts) -> RateLimitKey {
        if let Some(key) = self.custom.as_ref().and_then(|f| f(parts)) {
            return key;
        }
        match Principal::from_parts(parts) {
            Some(p) => RateLimitKey::principal(p),
            None => match self.client_ip(parts) {
                Some(ip) => self.client_key(ip),
                None => {
                    crate::misorder::no_client_address("RateLimitLayer");
                    RateLimitKey::unknown_client()
                }
            },
        }
    }

    pub(crate) fn proxies(&self) -> &TrustedProxies {
        &self.proxies
    }

    /// The client address of a request: the peer from `ConnectInfo`, or
    /// the right-most untrusted forwarded hop when the peer is a trusted
    /// proxy. `None` without `ConnectInfo`.
    #[must_use]
    pub fn client_ip(&self, parts: &Parts) -> Option<IpAddr> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
        Some(self.proxies.client_ip(peer, &parts.headers))
    }
}

impl fmt::Debug for KeyExtractor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyExtractor")
            .field("custom", &self.custom.is_some())
            .field("proxies", &self.proxies)
            .field("ipv6_prefix", &self.ipv6_prefix)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::AuthScheme;
    use http::Request;

    #[test]
    fn equal_keys_hash_alike_and_kinds_apart() {
        use std::hash::BuildHasher;
        let state = std::collections::hash_map::RandomState::new();
        let h = |k: &RateLimitKey| state.hash_one(k);
        let alice = Principal::new(AuthScheme::ApiKey, "alice");
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let keys = [
            RateLimitKey::principal(&alice),
            RateLimitKey::custom(alice.identity_key()),
            RateLimitKey::ip(v4),
            RateLimitKey::ip(v6),
            RateLimitKey::ip("::ffff:10.0.0.1".parse().unwrap()),
        ];
        // Built twice, equal and hashed alike.
        assert_eq!(h(&keys[0]), h(&RateLimitKey::principal(&alice.clone())));
        assert_eq!(h(&keys[2]), h(&keys[4]));
        // Different kinds with the same text hash apart.
        assert_ne!(h(&keys[0]), h(&keys[1]));
        assert_ne!(h(&keys[2]), h(&keys[3]));
    }

    fn parts(peer: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::get("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut req = b.body(()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        req.into_parts().0
    }

    fn ip(s: &str) -> RateLimitKey {
        RateLimitKey::ip(s.parse().unwrap())
    }

    #[test]
    fn untrusted_peer_ignores_forwarded_headers() {
        let e = KeyExtractor::default();
        let p = parts("198.51.100.7:1234", &[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(e.extract(&p), ip("198.51.100.7"));
    }

    #[test]
    fn right_most_untrusted_hop_wins() {
        let e = KeyExtractor::default()
            .trusted_proxies(TrustedProxies::new(["10.0.0.0/8", "192.168.1.1"]).unwrap());
        // The client wrote "6.6.6.6"; the proxy appended the real peer.
        let p = parts(
            "10.0.0.5:1",
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-for", "203.0.113.1, 192.168.1.1"),
            ],
        );
        assert_eq!(e.extract(&p), ip("203.0.113.1"));
        // All hops trusted: the left-most (trusted) one is the client.
        let p = parts("10.0.0.5:1", &[("x-forwarded-for", "10.9.9.9")]);
        assert_eq!(e.extract(&p), ip("10.9.9.9"));
        // Garbage ends the walk at the last readable address.
        let p = parts(
            "10.0.0.5:1",
            &[("x-forwarded-for", "1.1.1.1, junk, 10.2.2.2")],
        );
        assert_eq!(e.extract(&p), ip("10.2.2.2"));
        // No header: the proxy itself.
        let p = parts("10.0.0.5:1", &[]);
        assert_eq!(e.extract(&p), ip("10.0.0.5"));
    }

    #[test]
    fn forwarded_header() {
        let proxies = TrustedProxies::new(["2001:db8::/32"])
            .unwrap()
            .header(ProxyHeader::Forwarded);
        let e = KeyExtractor::default().trusted_proxies(proxies);
        let p = parts(
            "[2001:db8::1]:443",
            &[
                (
                    "forwarded",
                    r#"for=6.6.6.6;proto=https, for="[2001:db8::9]:4711""#,
                ),
                (
                    "forwarded",
                    r#"For="198.51.100.17:80";by=x, for="[2001:db8::2]""#,
                ),
                ("x-forwarded-for", "7.7.7.7"),
            ],
        );
        assert_eq!(e.extract(&p), ip("198.51.100.17"));
    }

    #[test]
    fn principal_custom_and_unknown() {
        let mut req = Request::get("/").body(()).unwrap();
        req.extensions_mut()
            .insert(Principal::new(AuthScheme::ApiKey, "svc"));
        let (p, ()) = req.into_parts();
        let e = KeyExtractor::default();
        assert_eq!(e.extract(&p).to_string(), "p:7:api_key:subject:-:svc");
        let e = e.custom(|parts| {
            parts
                .headers
                .get("x-tenant")
                .and_then(|v| v.to_str().ok())
                .map(RateLimitKey::custom)
        });
        assert_eq!(e.extract(&p).to_string(), "p:7:api_key:subject:-:svc");
        let (t, ()) = Request::get("/")
            .header("x-tenant", "acme")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(e.extract(&t).to_string(), "c:acme");
        let (anon, ()) = Request::get("/").body(()).unwrap().into_parts();
        assert_eq!(e.extract(&anon), RateLimitKey::unknown_client());
    }

    /// Issue 23, item 1: one host's /64 is one anonymous client, not 2^64.
    #[test]
    fn ipv6_clients_are_grouped_by_prefix() {
        let e = KeyExtractor::default();
        let a = e.extract(&parts("[2001:db8:1:2::1]:1", &[]));
        let b = e.extract(&parts("[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:1", &[]));
        let other = e.extract(&parts("[2001:db8:1:3::1]:1", &[]));
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(a.to_string(), "ip:2001:db8:1:2::/64");
        // IPv4 (mapped or not) stays one address each.
        assert_eq!(
            e.extract(&parts("[::ffff:192.0.2.1]:1", &[])),
            ip("192.0.2.1")
        );
        assert_ne!(
            e.extract(&parts("192.0.2.1:1", &[])),
            e.extract(&parts("192.0.2.2:1", &[]))
        );
        // Configurable: a /48 groups more, /128 none, > 128 is 128.
        let wide = KeyExtractor::default().ipv6_prefix(48);
        assert_eq!(
            wide.extract(&parts("[2001:db8:1:2::1]:1", &[])),
            wide.extract(&parts("[2001:db8:1:3::1]:1", &[]))
        );
        let exact = KeyExtractor::default().ipv6_prefix(200);
        assert_ne!(
            exact.extract(&parts("[2001:db8:1:2::1]:1", &[])),
            exact.extract(&parts("[2001:db8:1:2::2]:1", &[]))
        );
        assert_eq!(
            exact.extract(&parts("[2001:db8:1:2::1]:1", &[])),
            ip("2001:db8:1:2::1")
        );
        assert_eq!(
            RateLimitKey::client("2001:db8::1".parse().unwrap(), 0).to_string(),
            "ip:::/0"
        );
    }

    /// Issue 23 6e: a client and a user of one name, and one subject at
    /// two issuers, are different buckets.
    #[test]
    fn principal_keys_keep_kind_and_issuer_apart() {
        let user = Principal::new(AuthScheme::Jwt, "user_001");
        let keys = [
            RateLimitKey::principal(&user),
            RateLimitKey::principal(&Principal::client(AuthScheme::Jwt, "user_001")),
            RateLimitKey::principal(&user.clone().with_issuer("https://a.example.com")),
            RateLimitKey::principal(&user.clone().with_issuer("https://b.example.com")),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
                assert_ne!(a.to_string(), b.to_string(), "the Redis keys too");
            }
        }
        assert_eq!(RateLimitKey::principal(&user), keys[0]);
    }

    #[test]
    fn cidr_parsing() {
        assert!(TrustedProxies::new(["10.0.0.0/33"]).is_err());
        assert!(TrustedProxies::new(["nope"]).is_err());
        let t = TrustedProxies::new(["0.0.0.0/0", "::ffff:127.0.0.1"]).unwrap();
        assert!(t.contains("8.8.8.8".parse().unwrap()));
        assert!(!t.contains("::1".parse().unwrap()));
        assert_eq!(ip("::ffff:1.2.3.4"), ip("1.2.3.4"));
    }
}
