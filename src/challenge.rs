//! What a challenge says besides the error: the resource's [`Challenge`]
//! (`realm`, `resource_metadata`, the public origin) and the
//! [`ExtraChallenge`] of a second scheme a layer adds. Rendered by
//! [`AuthError`](crate::AuthError).

use std::{borrow::Cow, sync::Arc};

/// The parameters every challenge of one protected resource carries:
/// `realm` and the RFC 9728 `resource_metadata` URL.
///
/// Made by [`ProtectedResource::challenge`](crate::ProtectedResource::challenge);
/// cheap to clone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Challenge(Arc<ChallengeInner>);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ChallengeInner {
    realm: Option<String>,
    resource_metadata: Option<String>,
    public_origin: Option<String>,
    extra: Option<ExtraChallenge>,
}

impl Challenge {
    /// A challenge with the given `realm` and `resource_metadata` URL.
    #[must_use]
    pub fn new(realm: Option<String>, resource_metadata: Option<String>) -> Self {
        Self(Arc::new(ChallengeInner {
            realm,
            resource_metadata,
            public_origin: None,
            extra: None,
        }))
    }

    /// Sets the scheme and authority clients reach the resource at
    /// (`https://mcp.example.com`): with a request's path, the URL a DPoP
    /// proof's `htu` must name (RFC 9449 §4.3), whatever address the
    /// socket has.
    #[must_use]
    pub fn with_public_origin(mut self, origin: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.0).public_origin = Some(origin.into());
        self
    }

    /// Adds a second challenge beside the `Bearer` one, for another scheme
    /// the resource accepts (a `DPoP` challenge, RFC 9449 §7.1, when the
    /// resource accepts DPoP-bound tokens).
    #[must_use]
    pub fn with_extra(mut self, extra: ExtraChallenge) -> Self {
        Arc::make_mut(&mut self.0).extra = Some(extra);
        self
    }

    /// The public origin ([`with_public_origin`](Self::with_public_origin)).
    #[must_use]
    pub fn public_origin(&self) -> Option<&str> {
        self.0.public_origin.as_deref()
    }

    /// The second challenge ([`with_extra`](Self::with_extra)), when the
    /// resource accepts a second scheme.
    #[must_use]
    pub fn extra(&self) -> Option<&ExtraChallenge> {
        self.0.extra.as_ref()
    }

    /// The `realm` parameter.
    #[must_use]
    pub fn realm(&self) -> Option<&str> {
        self.0.realm.as_deref()
    }

    /// The `resource_metadata` parameter (RFC 9728 §5.1).
    #[must_use]
    pub fn resource_metadata(&self) -> Option<&str> {
        self.0.resource_metadata.as_deref()
    }
}

/// A second `WWW-Authenticate` challenge, beside `Bearer`, for another
/// scheme a resource accepts: the scheme's name and its own parameters,
/// rendered after `scope` and before `resource_metadata`. The core knows
/// no scheme by name: a layer that adds one fills this slot (the `dpop`
/// layer's `DPoP` challenge with its `algs`, RFC 9449 §7.1). Cheap to
/// clone.
///
/// ```
/// use tower_mcp_auth::{Challenge, ExtraChallenge};
///
/// let dpop = ExtraChallenge::new("DPoP").param("algs", "ES256 EdDSA");
/// let challenge = Challenge::new(Some("mcp".into()), None).with_extra(dpop.clone());
/// assert_eq!(challenge.extra(), Some(&dpop));
/// assert_eq!(dpop.scheme(), "DPoP");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraChallenge(Arc<ExtraInner>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct ExtraInner {
    scheme: Cow<'static, str>,
    params: Vec<(Cow<'static, str>, String)>,
}

impl ExtraChallenge {
    /// A challenge of `scheme` (an RFC 9110 auth-scheme token) with no
    /// parameters of its own.
    #[must_use]
    pub fn new(scheme: impl Into<Cow<'static, str>>) -> Self {
        Self(Arc::new(ExtraInner {
            scheme: scheme.into(),
            params: Vec::new(),
        }))
    }

    /// Adds a parameter of the scheme (`algs="ES256 EdDSA"`), rendered as
    /// a quoted string.
    #[must_use]
    pub fn param(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.0)
            .params
            .push((name.into(), value.into()));
        self
    }

    /// The scheme's name.
    #[must_use]
    pub fn scheme(&self) -> &str {
        &self.0.scheme
    }

    /// The scheme's own parameters, in order.
    pub(crate) fn params(&self) -> &[(Cow<'static, str>, String)] {
        &self.0.params
    }
}
