//! DPoP on the authenticator model: [`Dpop`] (the configuration),
//! [`DpopAuthenticator`] (a token authenticator with proofs) and
//! [`AuthenticateLayer::dpop`], which turns a JWT or introspection layer
//! into one that also takes `Authorization: DPoP`.

use std::{future::Future, pin::Pin};

use http::{header, HeaderName, HeaderValue, Method, Request};

use super::{Binding, ProofError, ProofErrorKind, ProofValidator};
use crate::{
    authenticate::{AuthenticateLayer, Authenticator, Check, Verdict},
    bearer::{find_token, Scheme},
    challenge::{Challenge, ExtraChallenge},
    error::AuthError,
    metadata::ProtectedResourceBuilder,
    principal::{AuthScheme, Principal},
};

/// The `DPoP` request header (RFC 9449 §4.1).
pub static DPOP: HeaderName = HeaderName::from_static("dpop");
/// The `DPoP-Nonce` response header (RFC 9449 §8.1).
pub static DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// The DPoP configuration of a token layer: the [`ProofValidator`], and
/// whether unbound tokens are refused. Give the same one to
/// [`ProtectedResourceBuilder::dpop`](crate::ProtectedResourceBuilder::dpop)
/// (metadata, challenges) and to each layer's
/// [`dpop`](AuthenticateLayer::dpop). Cheap to clone.
///
/// # Example
///
/// ```
/// use tower_mcp_auth::dpop::{Dpop, ProofValidator};
///
/// let dpop = Dpop::new(ProofValidator::builder().build()?);
/// assert!(!dpop.is_required());
/// assert!(dpop.clone().required().is_required());
/// # Ok::<(), tower_mcp_auth::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Dpop {
    proofs: ProofValidator,
    required: bool,
    /// The `DPoP` challenge (RFC 9449 §7.1) with its `algs`, made once:
    /// the one a refusal of a DPoP credential carries its error in.
    challenge: ExtraChallenge,
}

impl Dpop {
    /// DPoP beside bearer tokens: bound tokens need a proof, unbound ones
    /// still work as bearer tokens.
    pub fn new(proofs: ProofValidator) -> Self {
        let algs: Vec<&str> = proofs
            .algorithms()
            .iter()
            .map(|a| super::algorithm_name(*a))
            .collect();
        Self {
            challenge: ExtraChallenge::new("DPoP").param("algs", algs.join(" ")),
            proofs,
            required: false,
        }
    }

    /// Refuses tokens that are not DPoP-bound (RFC 9728
    /// `dpop_bound_access_tokens_required`): every access token must come
    /// as `Authorization: DPoP` with a proof.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Whether unbound tokens are refused.
    #[must_use]
    pub fn is_required(&self) -> bool {
        self.required
    }

    /// The proof validator.
    #[must_use]
    pub fn proofs(&self) -> &ProofValidator {
        &self.proofs
    }

    /// The protected-resource metadata members.
    #[must_use]
    pub fn metadata(&self) -> super::DpopMetadata {
        self.proofs.metadata(self.required)
    }

    /// A refusal in the DPoP scheme: its error in the `DPoP` challenge
    /// (a 429 for a caller over its share of the replay store, with no
    /// challenge: its proof is good, it is throttled).
    fn refusal(&self, err: ProofError) -> AuthError {
        let out = match err.status() {
            http::StatusCode::SERVICE_UNAVAILABLE => AuthError::unavailable(err.message())
                .with_retry_after(std::time::Duration::from_secs(1)),
            http::StatusCode::TOO_MANY_REQUESTS => {
                return AuthError::new(crate::error::AuthErrorKind::RateLimited, err.message())
                    .with_retry_after(std::time::Duration::from_secs(1));
            }
            _ => AuthError::invalid_token(err.message()),
        };
        let out = match err.error_code() {
            Some(code) => out.with_error_code(code),
            None => out,
        };
        out.with_extra_challenge(self.challenge.clone())
    }
}

/// Protected-resource metadata for DPoP.
impl ProtectedResourceBuilder {
    /// The DPoP members of the metadata from the configuration of the DPoP
    /// layers: `dpop_signing_alg_values_supported` (the proof
    /// algorithms, also the `algs` of the `WWW-Authenticate: DPoP`
    /// challenge every refusal then carries beside the `Bearer` one) and,
    /// when unbound tokens are refused, `dpop_bound_access_tokens_required`.
    ///
    /// ```
    /// use tower_mcp_auth::{dpop::{Dpop, ProofValidator}, ProtectedResource};
    ///
    /// let dpop = Dpop::new(ProofValidator::builder().build()?).required();
    /// let resource = ProtectedResource::builder("https://mcp.example.com/mcp").dpop(&dpop).build()?;
    /// let doc: serde_json::Value = serde_json::from_slice(&resource.document()).unwrap();
    /// assert_eq!(doc["dpop_signing_alg_values_supported"], serde_json::json!(["ES256", "EdDSA", "RS256", "PS256"]));
    /// assert_eq!(doc["dpop_bound_access_tokens_required"], true);
    /// # Ok::<(), tower_mcp_auth::ConfigError>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
    pub fn dpop(self, dpop: &Dpop) -> Self {
        let metadata = dpop.metadata();
        self.dpop_signing_alg_values_supported(metadata.dpop_signing_alg_values_supported)
            .dpop_bound_access_tokens_required(metadata.dpop_bound_access_tokens_required)
    }
}

/// An [`Authenticator`] of access tokens (`Authorization: Bearer`) that
/// DPoP can wrap: [`JwtAuthenticator`](crate::jwt::JwtAuthenticator),
/// [`IntrospectionAuthenticator`](crate::introspection::IntrospectionAuthenticator),
/// or one of yours whose principals carry the token's
/// [`cnf_jkt`](Principal::cnf_jkt).
pub trait TokenAuthenticator: for<'a> Authenticator<Credential<'a> = &'a str> + Clone {
    /// The longest token read, in bytes.
    fn max_token_len(&self) -> usize;

    /// Called once by [`AuthenticateLayer::dpop`]: from then on a DPoP
    /// wrapper checks the proofs of this authenticator's bound tokens, so
    /// it may accept them. The JWT and introspection authenticators refuse
    /// a bound token (one whose `cnf.jkt` is set) until then, since without
    /// a proof check it would be a bearer token again. The default does
    /// nothing.
    fn checked_by_dpop(&mut self) {}
}

#[cfg(feature = "jwt")]
impl TokenAuthenticator for crate::jwt::JwtAuthenticator {
    fn max_token_len(&self) -> usize {
        self.max_token_bytes()
    }

    fn checked_by_dpop(&mut self) {
        self.dpop = true;
    }
}

#[cfg(feature = "introspection")]
impl TokenAuthenticator for crate::introspection::IntrospectionAuthenticator {
    fn max_token_len(&self) -> usize {
        self.token_limit()
    }

    fn checked_by_dpop(&mut self) {
        self.dpop = true;
    }
}

/// A [`TokenAuthenticator`] that also takes DPoP-bound tokens
/// (`Authorization: DPoP` plus one `DPoP` proof), made by
/// [`AuthenticateLayer::dpop`]; see the [module docs](super#on-a-layer).
#[derive(Clone, Debug)]
pub struct DpopAuthenticator<A> {
    inner: A,
    dpop: Dpop,
}

/// The layer of a [`DpopAuthenticator`]: `JwtLayer::new(v).dpop(d)`.
pub type DpopLayer<A> = AuthenticateLayer<DpopAuthenticator<A>>;

impl<A: TokenAuthenticator> AuthenticateLayer<A> {
    /// Takes DPoP-bound tokens too (RFC 9449): `Authorization: DPoP
    /// <token>` with exactly one `DPoP` proof for this request, signed by
    /// the key the token's `cnf.jkt` names. A bound token sent as `Bearer`
    /// is refused, and, with [`Dpop::required`], so is every unbound
    /// token. Call it after the layer's own options
    /// ([`pass_opaque_tokens`](crate::jwt::JwtLayer::pass_opaque_tokens));
    /// [`optional`](AuthenticateLayer::optional) and
    /// [`renderer`](AuthenticateLayer::renderer) carry over.
    pub fn dpop(self, dpop: Dpop) -> DpopLayer<A> {
        self.map_authenticator(|mut inner| {
            inner.checked_by_dpop();
            DpopAuthenticator { inner, dpop }
        })
    }
}

/// The credential a [`DpopAuthenticator`] reads: the access token, and
/// for the DPoP scheme what its proof is checked against.
#[derive(Debug)]
pub struct DpopCredential<'a> {
    token: &'a str,
    proof: Option<ProofInput<'a>>,
}

#[derive(Debug)]
struct ProofInput<'a> {
    headers: &'a http::HeaderMap,
    method: &'a Method,
    /// The request's public URL: the resource's public origin and the
    /// path the application was asked for; `None` without a protected
    /// resource on the stack.
    htu: Option<String>,
}

/// What a proof check needs once the token is verified, owned.
struct OwnedProof {
    token: String,
    proofs: Vec<HeaderValue>,
    method: Method,
    htu: Option<String>,
}

impl ProofInput<'_> {
    fn to_owned(&self, token: &str) -> OwnedProof {
        OwnedProof {
            token: token.to_owned(),
            // Two are enough to refuse "more than one".
            proofs: self
                .headers
                .get_all(&DPOP)
                .iter()
                .take(2)
                .cloned()
                .collect(),
            method: self.method.clone(),
            htu: self.htu.clone(),
        }
    }
}

/// The slow path: the proof (replay store) and perhaps the token.
type Checking = Pin<Box<dyn Future<Output = Verdict> + Send>>;

static HEADERS: [HeaderName; 2] = [header::AUTHORIZATION, HeaderName::from_static("dpop")];

impl<A: TokenAuthenticator> DpopAuthenticator<A> {
    /// The verdict on a token sent as `Bearer`.
    fn bearer_verdict(&self, verdict: Verdict) -> Verdict {
        match verdict {
            Verdict::Accept(p) if p.cnf_jkt().is_some() => {
                Verdict::Refuse(AuthError::invalid_token(
                    "the access token is DPoP-bound: send it with the DPoP scheme and a proof",
                ))
            }
            other => other,
        }
    }

    /// The verdict on a token sent as `DPoP`, once the token is verified.
    async fn dpop_verdict(dpop: Dpop, verdict: Verdict, proof: OwnedProof) -> Verdict {
        let principal = match verdict {
            Verdict::Accept(principal) => principal,
            // The token is bad: `invalid_token`, in the DPoP challenge.
            Verdict::Refuse(err) => {
                return Verdict::Refuse(err.with_extra_challenge(dpop.challenge))
            }
            Verdict::HandOn => return Verdict::HandOn,
        };
        match Self::check_proof(&dpop, &principal, &proof).await {
            Ok(()) => Verdict::Accept(principal),
            Err(err) => Verdict::Refuse(dpop.refusal(err)),
        }
    }

    async fn check_proof(
        dpop: &Dpop,
        principal: &Principal,
        proof: &OwnedProof,
    ) -> Result<(), ProofError> {
        let jkt = principal.cnf_jkt().ok_or(ProofErrorKind::TokenNotBound)?;
        // No protected resource on the stack: the public URL is unknown,
        // and no proof can be checked against it (fail closed).
        let htu = proof.htu.as_deref().ok_or(ProofErrorKind::HtuMismatch)?;
        // The caller the replay store counts the proof against: its
        // identity (scheme, issuer, kind and name).
        let binding = Binding::new(Some(jkt), principal.identity_key());
        dpop.proofs
            .validate(&proof.proofs, &proof.method, htu, &proof.token, binding)
            .await
            .map(drop)
    }
}

impl<A: TokenAuthenticator> Authenticator for DpopAuthenticator<A> {
    type Credential<'a> = DpopCredential<'a>;
    type Future = Checking;

    fn scheme(&self) -> AuthScheme {
        self.inner.scheme()
    }

    fn credential_headers(&self) -> &[HeaderName] {
        &HEADERS
    }

    fn find<'a, B>(&self, req: &'a Request<B>) -> Result<Option<DpopCredential<'a>>, AuthError> {
        let found = find_token(req.headers(), self.inner.max_token_len(), true)?;
        Ok(found.map(|(scheme, token)| DpopCredential {
            token,
            proof: (scheme == Scheme::Dpop).then(|| ProofInput {
                headers: req.headers(),
                method: req.method(),
                htu: req
                    .extensions()
                    .get::<Challenge>()
                    .and_then(Challenge::public_origin)
                    .map(|origin| {
                        format!(
                            "{origin}{}",
                            crate::audit::path(req.uri(), req.extensions())
                        )
                    }),
            }),
        }))
    }

    fn verify(&self, credential: DpopCredential<'_>) -> Check<Checking> {
        let DpopCredential { token, proof } = credential;
        let Some(proof) = proof else {
            if self.dpop.required {
                // Bound or not, a bearer token is refused: no need to verify it.
                return Check::Ready(Verdict::Refuse(AuthError::invalid_token(
                    "this resource accepts only DPoP-bound access tokens, sent with the DPoP scheme",
                )));
            }
            return match self.inner.verify(token) {
                Check::Ready(verdict) => Check::Ready(self.bearer_verdict(verdict)),
                Check::Pending(future) => {
                    let this = self.clone();
                    Check::Pending(Box::pin(async move { this.bearer_verdict(future.await) }))
                }
            };
        };
        let owned = proof.to_owned(token);
        let dpop = self.dpop.clone();
        match self.inner.verify(token) {
            // Refused or handed on at once: no proof to check.
            Check::Ready(Verdict::Refuse(err)) => {
                Check::Ready(Verdict::Refuse(err.with_extra_challenge(dpop.challenge)))
            }
            Check::Ready(Verdict::HandOn) => Check::Ready(Verdict::HandOn),
            Check::Ready(Verdict::Accept(p)) if p.cnf_jkt().is_none() => Check::Ready(
                Verdict::Refuse(dpop.refusal(ProofErrorKind::TokenNotBound.into())),
            ),
            Check::Ready(verdict) => {
                Check::Pending(Box::pin(Self::dpop_verdict(dpop, verdict, owned)))
            }
            Check::Pending(future) => Check::Pending(Box::pin(async move {
                Self::dpop_verdict(dpop, future.await, owned).await
            })),
        }
    }

    fn response_header(&self) -> Option<(HeaderName, HeaderValue)> {
        let nonce = self.dpop.proofs.nonces()?.current();
        Some((DPOP_NONCE.clone(), HeaderValue::from_str(&nonce).ok()?))
    }
}
