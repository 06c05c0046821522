//! The TLS policy: rustls (TLS 1.2/1.3), the server certificate always verified against the
//! system roots plus an optional CA file. There is deliberately no way to turn verification off.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::error::EwsError;

/// Builds the client configuration: system roots, then the CA file's certificates.
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, EwsError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(error = %error, "a system root certificate could not be loaded");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "system root certificates loaded");
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| ca_error(path, &e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| ca_error(path, &e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_error(path, "no PEM certificate in the file"));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| ca_error(path, &e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EwsError::InvalidInput(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn ca_error(path: &Path, reason: &str) -> EwsError {
    EwsError::InvalidInput(format!("CA file {}: {reason}", path.display()))
}

/// Turns a failed TLS handshake into an error that says what is wrong with whose certificate.
pub(crate) fn handshake_error(host: &str, error: &std::io::Error) -> EwsError {
    let inner = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    let reason = match inner {
        Some(rustls::Error::InvalidCertificate(cert)) => {
            use rustls::CertificateError as C;
            match cert {
                C::Expired | C::ExpiredContext { .. } => {
                    format!("the certificate of {host} has expired; renew it on the server")
                }
                C::NotValidYet | C::NotValidYetContext { .. } => format!(
                    "the certificate of {host} is not valid yet; check the server's and our clocks"
                ),
                C::UnknownIssuer => format!(
                    "the certificate of {host} is not trusted (unknown issuer); add the issuing \
                     CA to the system roots or the connector's CA file"
                ),
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    format!("the certificate of {host} is not issued for the name {host}")
                }
                C::Revoked => format!("the certificate of {host} has been revoked"),
                other => format!("the certificate of {host} was rejected: {other:?}"),
            }
        }
        Some(other) => format!("TLS error with {host}: {other}"),
        None => format!("TLS handshake with {host} failed: {error}"),
    };
    EwsError::Tls {
        host: host.to_owned(),
        reason,
    }
}
