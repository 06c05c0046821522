//! What `exsync check` needs to explain a failing Exchange connection in the connector's own
//! terms. The check makes its own TLS connection and anonymous probe so it can report each
//! step; these functions keep its verdicts identical to what the connector would do.

use std::path::Path;
use std::sync::Arc;

use crate::error::EwsError;
use crate::transport::auth::{self, AuthMode};
use crate::transport::tls;

pub use crate::transport::auth::Scheme;

/// The TLS client configuration the connector connects with (system roots plus the optional
/// CA file, verification always on), so a handshake the check reports as good is one the
/// connector would accept too.
pub fn tls_client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, EwsError> {
    tls::client_config(ca_file)
}

/// Explains a failed TLS handshake with `host` (expired, untrusted issuer, wrong name, …) the
/// way the connector reports it, with what to fix.
pub fn tls_handshake_error(host: &str, error: &std::io::Error) -> EwsError {
    tls::handshake_error(host, error)
}

/// The authentication schemes a server offers in the `WWW-Authenticate` challenges of a
/// reply, in the order it lists them.
pub fn offered_schemes(headers: &http::HeaderMap) -> Vec<String> {
    auth::offered(headers)
}

/// The scheme the connector would use with `host` given the configured mode and what the
/// server offers (and whether a Kerberos realm is configured), or the error it would fail with
/// when none fits.
pub fn chosen_scheme(
    mode: AuthMode,
    kerberos: bool,
    host: &str,
    offered: &[String],
) -> Result<Scheme, EwsError> {
    auth::choose(mode, kerberos, host, offered)
}
