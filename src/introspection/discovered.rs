//! The introspection client from an authorization server's discovered
//! metadata: discovery serves both token kinds and knows neither, so the
//! glue lives here, on the side that uses it.

use super::introspector::{ClientAuth, Introspector, IntrospectorBuilder};
use crate::{config::ConfigError, discovery::AuthorizationServerMetadata};

/// The introspection client of a discovered authorization server.
impl AuthorizationServerMetadata {
    /// An [`Introspector`] builder for this server's
    /// `introspection_endpoint`, authenticating as `client_id` with
    /// `client_secret_basic`, or `client_secret_post` when that is the only
    /// one of the two the server lists.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when the metadata names no introspection
    /// endpoint.
    #[cfg_attr(docsrs, doc(cfg(feature = "introspection")))]
    pub fn introspector(
        &self,
        client_id: impl Into<String>,
        client_secret: secrecy::SecretString,
    ) -> Result<IntrospectorBuilder, ConfigError> {
        let url = self.introspection_endpoint.as_deref().ok_or_else(|| {
            ConfigError::Invalid(format!(
                "the authorization server {} publishes no introspection_endpoint",
                self.issuer
            ))
        })?;
        let methods = &self.introspection_endpoint_auth_methods_supported;
        let has = |m: ClientAuth| methods.iter().any(|x| x == m.as_str());
        let auth = if !has(ClientAuth::ClientSecretBasic) && has(ClientAuth::ClientSecretPost) {
            ClientAuth::ClientSecretPost
        } else {
            ClientAuth::ClientSecretBasic
        };
        Ok(Introspector::builder(url, client_id, client_secret).client_auth(auth))
    }
}
