//! The validator builder's remote-key settings (feature `jwks`): where the
//! JWKS comes from and how it is fetched. Apart from both the builder and
//! the fetcher, so that neither file imports the other's.

use std::time::Duration;

use super::{builder::JwtValidatorBuilder, jwks::JwksSource};

/// Remote keys (feature `jwks`): without it a validator has local keys
/// only and this crate makes no HTTP request for JWTs.
#[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
impl JwtValidatorBuilder {
    /// Fetches keys from a JWKS URL (https, or http on loopback).
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks = Some(JwksSource::Url(url.into()));
        self
    }

    /// Finds the JWKS through the issuer's metadata (RFC 8414, then OpenID
    /// Connect Discovery, by the [rules of
    /// discovery](crate::discovery#the-rules-of-discovery): the document
    /// must name exactly this issuer). Tokens checked with those keys must
    /// carry this `iss` (as with [`jwks_issuer`](Self::jwks_issuer)). An
    /// issuer that is not an https URL (http on loopback), or has a query
    /// or a fragment, fails at [`build`](Self::build).
    pub fn jwks_from_issuer(mut self, issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        self.jwks = Some(JwksSource::Issuer(issuer.clone()));
        self.jwks_options.issuer = Some(issuer);
        self
    }

    /// Pins the remote JWKS keys to an issuer: a token checked with one of
    /// them must carry exactly this `iss`, whatever
    /// [`issuer`](Self::issuer) says. Use it with
    /// [`jwks_url`](Self::jwks_url) when the authorization server's keys
    /// sit beside local keys (for example an HS256 secret whose tokens have
    /// no `iss`).
    pub fn jwks_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.jwks_options.issuer = Some(issuer.into());
        self
    }

    /// How often remote keys are refreshed in the background (default 5 min).
    pub fn jwks_refresh_interval(mut self, every: Duration) -> Self {
        self.jwks_options.refresh_interval = every;
        self
    }

    /// The minimum time between two fetches caused by unknown `kid`s
    /// (default 5 s, [`DEFAULT_MIN_REFETCH_INTERVAL`](super::DEFAULT_MIN_REFETCH_INTERVAL)).
    ///
    /// It bounds both the load a flood of made-up `kid`s puts on the
    /// authorization server (one fetch per interval) and the time a key
    /// the server has just started signing with is refused: a token
    /// naming a `kid` not in the key set is answered 503 with
    /// `Retry-After` (the time left until a fetch is allowed, never
    /// counted as a failed login) for at most this interval plus one fetch
    /// timeout, then accepted once the fetch finds the key (or refused
    /// with 401 if the fetched set does not have it either). A token issued
    /// before the last successful fetch (its `iat` plus the
    /// [leeway](JwtValidatorBuilder::leeway) not after the fetch's start)
    /// whose key was not in that set is refused with 401 at once: its key
    /// has left the set (or never was in it), and no fetch can bring it
    /// back.
    pub fn jwks_min_refetch_interval(mut self, every: Duration) -> Self {
        self.jwks_options.min_refetch_interval = every;
        self
    }

    /// The timeout of one fetch (default 5 s).
    pub fn jwks_fetch_timeout(mut self, timeout: Duration) -> Self {
        self.jwks_options.timeout = timeout;
        self
    }

    /// The size cap of a JWKS or metadata response (default 256 KiB).
    pub fn jwks_max_response_bytes(mut self, max: usize) -> Self {
        self.jwks_options.max_bytes = max;
        self
    }

    /// Accepts HMAC (`oct`) keys from the remote JWKS. Off by default: a
    /// published symmetric key lets anyone mint tokens.
    pub fn jwks_allow_hmac(mut self, allow: bool) -> Self {
        self.jwks_options.allow_hmac = allow;
        self
    }
}
