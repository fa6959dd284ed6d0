//! TLS to an `https://` upstream: rustls on aws-lc-rs, trusting the
//! system's root certificates, or only the CAs of `UPSTREAM_CA_FILE`.

use std::{path::Path, sync::Arc};

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::{
    pki_types::{pem::PemObject, CertificateDer},
    ClientConfig, RootCertStore,
};
use tower_mcp_auth::ConfigError;

/// The connector: plain TCP for `http://`, TLS for `https://`.
pub(super) fn connector(
    http: HttpConnector,
    https: bool,
    ca_file: Option<&Path>,
) -> Result<HttpsConnector<HttpConnector>, ConfigError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Invalid(format!("TLS: {e}")))?;
    let roots = match ca_file {
        Some(path) => roots_from(path)?,
        // The system's roots, read only for an https upstream.
        None if https => {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(ConfigError::InvalidEnv {
                    var: "UPSTREAM_URL".into(),
                    reason: "an https upstream, and no root certificate on this system: \
                             install the CA certificates or set UPSTREAM_CA_FILE"
                        .into(),
                });
            }
            roots
        }
        None => RootCertStore::empty(),
    };
    let config = config.with_root_certificates(roots).with_no_client_auth();
    Ok(HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

/// Every certificate of the PEM file at `path`.
fn roots_from(path: &Path) -> Result<RootCertStore, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidEnv {
        var: "UPSTREAM_CA_FILE".into(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        let cert = cert.map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        roots
            .add(cert)
            .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(invalid(format!("{} holds no certificate", path.display())));
    }
    Ok(roots)
}
