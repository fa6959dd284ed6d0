//! What a DPoP resource server tells clients: the `WWW-Authenticate: DPoP`
//! challenge (RFC 9449 §7.1) and its protected-resource metadata
//! (RFC 9728 §2, the members RFC 9449 §5.1 registers).

use jsonwebtoken::Algorithm;
use serde::Serialize;

use super::error::ProofError;

/// The `WWW-Authenticate` value for the DPoP scheme: `algs` lists the
/// accepted algorithms, and a refusal adds its RFC 9449 `error` and the
/// fixed `error_description` (never anything from the request). Send it
/// beside the `Bearer` challenge when both schemes are accepted, and, for
/// a [nonce error](ProofError::is_nonce_error), with a `DPoP-Nonce` header.
///
/// # Example
///
/// ```
/// use jsonwebtoken::Algorithm;
/// use tower_mcp_auth::dpop::{challenge, ProofError, ProofErrorKind};
///
/// let algs = [Algorithm::ES256, Algorithm::EdDSA];
/// assert_eq!(challenge(&algs, None), r#"DPoP algs="ES256 EdDSA""#);
/// let nonce = ProofError::new(ProofErrorKind::NonceMissing);
/// assert_eq!(
///     challenge(&algs, Some(&nonce)),
///     r#"DPoP error="use_dpop_nonce", error_description="DPoP proof must carry the server nonce", algs="ES256 EdDSA""#
/// );
/// ```
pub fn challenge(algorithms: &[Algorithm], error: Option<&ProofError>) -> String {
    let mut out = String::from("DPoP ");
    if let Some(code) = error.and_then(ProofError::error_code) {
        out.push_str("error=\"");
        out.push_str(code);
        out.push_str("\", error_description=\"");
        out.push_str(error.map(ProofError::message).unwrap_or_default());
        out.push_str("\", ");
    }
    out.push_str("algs=\"");
    for (i, alg) in algorithms.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(algorithm_name(*alg));
    }
    out.push('"');
    out
}

/// The DPoP members of the protected-resource metadata (RFC 9728 §2);
/// [`ProtectedResourceBuilder`](crate::metadata::ProtectedResourceBuilder)
/// publishes them (`dpop_signing_alg_values_supported`,
/// `dpop_bound_access_tokens_required`).
///
/// # Example
///
/// ```
/// use jsonwebtoken::Algorithm;
/// use tower_mcp_auth::dpop::DpopMetadata;
///
/// let m = DpopMetadata::new(&[Algorithm::ES256, Algorithm::EdDSA], true);
/// assert_eq!(
///     serde_json::to_string(&m).unwrap(),
///     r#"{"dpop_signing_alg_values_supported":["ES256","EdDSA"],"dpop_bound_access_tokens_required":true}"#
/// );
/// // Not required: the member is left out (its default is false).
/// let m = DpopMetadata::new(&[Algorithm::ES256], false);
/// assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"dpop_signing_alg_values_supported":["ES256"]}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DpopMetadata {
    /// `dpop_signing_alg_values_supported`.
    pub dpop_signing_alg_values_supported: Vec<&'static str>,
    /// `dpop_bound_access_tokens_required` (serialised only when true).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens_required: bool,
}

impl DpopMetadata {
    /// The metadata for these algorithms; `required` when unbound tokens
    /// are refused.
    pub fn new(algorithms: &[Algorithm], required: bool) -> Self {
        Self {
            dpop_signing_alg_values_supported: algorithms
                .iter()
                .map(|a| algorithm_name(*a))
                .collect(),
            dpop_bound_access_tokens_required: required,
        }
    }
}

/// The JOSE name of an algorithm (`"ES256"`).
pub fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => "unknown",
    }
}
