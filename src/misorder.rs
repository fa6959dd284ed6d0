//! Warnings for a stack assembled in an order that silently weakens it.
//!
//! Layers that read what an earlier layer decided (the MCP policy and the
//! rate limiter read the [`Principal`]; the throttles read the client
//! address) cannot refuse a request because that decision is missing: an
//! anonymous caller and a misplaced authenticator look the same to them.
//! What they can tell is a request that carries a credential no
//! authenticator has looked at, or a server that gives no client address
//! at all. Each says so once per process, as a `tracing` warning that
//! names the fix; the request itself is handled as before.

use std::sync::atomic::{AtomicBool, Ordering};

use http::{header::AUTHORIZATION, Extensions, HeaderMap, HeaderName};

use crate::{
    authenticate::AuthenticatorRan, principal::Principal, unverified::UnverifiedCredential,
};

/// The headers that carry a credential one of this crate's authenticators
/// reads.
static CREDENTIAL_HEADERS: [HeaderName; 2] = [AUTHORIZATION, HeaderName::from_static("x-api-key")];

/// A layer that reads the [`Principal`] and may sit in the wrong place.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reader {
    /// `McpPolicyLayer`.
    #[cfg_attr(not(feature = "mcp"), allow(dead_code))]
    Policy,
    /// `RateLimitLayer`.
    #[cfg_attr(not(feature = "rate-limit"), allow(dead_code))]
    RateLimit,
}

static POLICY_WARNED: AtomicBool = AtomicBool::new(false);
static RATE_LIMIT_WARNED: AtomicBool = AtomicBool::new(false);
#[cfg(feature = "rate-limit")]
static NO_ADDRESS_WARNED: AtomicBool = AtomicBool::new(false);

impl Reader {
    fn name(self) -> &'static str {
        match self {
            Self::Policy => "McpPolicyLayer",
            Self::RateLimit => "RateLimitLayer",
        }
    }

    fn warned(self) -> &'static AtomicBool {
        match self {
            Self::Policy => &POLICY_WARNED,
            Self::RateLimit => &RATE_LIMIT_WARNED,
        }
    }

    fn consequence(self) -> &'static str {
        match self {
            Self::Policy => {
                "every such request is treated as anonymous: a valid credential gets 401 missing_credential"
            }
            Self::RateLimit => {
                "every such request is counted against its client address with the base quota, shared by everyone behind that address, instead of against its principal"
            }
        }
    }

    /// Whether the request, which `self` is about to handle, carries a
    /// credential that no authenticator above `self` has looked at; if so,
    /// warns once per process. Cheap: a principal (the common case) ends
    /// it at the first lookup.
    pub(crate) fn check(self, extensions: &Extensions, headers: &HeaderMap) -> bool {
        if extensions.get::<Principal>().is_some()
            || extensions.get::<AuthenticatorRan>().is_some()
            || extensions.get::<UnverifiedCredential>().is_some()
        {
            return false;
        }
        let Some(header) = CREDENTIAL_HEADERS.iter().find(|h| headers.contains_key(*h)) else {
            return false;
        };
        if !self.warned().swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "tower_mcp_auth::misorder",
                layer = self.name(),
                header = header.as_str(),
                "{} saw a request with a credential ({}) that no authenticator has looked at: \
                 the authenticators (ApiKeyLayer, JwtLayer, IntrospectionLayer) must wrap it, \
                 that is come before it in a ServiceBuilder, or the request never reaches one. \
                 {}. Build the stack with tower_mcp_auth::stack::McpAuth to get the order right. \
                 (said once)",
                self.name(),
                header.as_str(),
                self.consequence(),
            );
        }
        true
    }
}

#[cfg(feature = "rate-limit")]
/// Warns, once per process, that a layer that tells clients apart by
/// address (`layer`) found no client address: the server was not served
/// with `into_make_service_with_connect_info::<SocketAddr>()`.
pub(crate) fn no_client_address(layer: &'static str) {
    if !NO_ADDRESS_WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            target: "tower_mcp_auth::misorder",
            layer,
            "{layer} found no client address in a request: every anonymous caller shares one \
             bucket. Serve the app with \
             `axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())` \
             (or insert `ConnectInfo<SocketAddr>` yourself). (said once)"
        );
    }
}
