//! How to reach a tenant's Graph and authenticate as its app registration, and the limits the
//! client keeps to.

use std::fmt;
use std::time::Duration;

use exsync_core::AllowList;

use crate::cloud::Cloud;

pub use exsync_core::Secret;

/// How a certificate assertion is signed and which thumbprint its header names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssertionAlgorithm {
    /// PS256 with `x5t#S256` (SHA-256 thumbprint): what Entra documents today.
    #[default]
    Ps256,
    /// RS256 with `x5t` (SHA-1 thumbprint): the older form, still accepted, for tenants or
    /// proxies that take nothing else.
    Rs256,
}

/// The app registration's credential.
#[derive(Clone)]
pub enum Credential {
    /// A certificate uploaded to the app registration, and its private key: each token
    /// request carries an assertion signed with the key.
    Certificate {
        /// The certificate (PEM; the first certificate of a chain is the one used).
        certificate_pem: Vec<u8>,
        /// Its RSA private key (PEM, PKCS#8 or PKCS#1, unencrypted; may be the same file).
        private_key_pem: Secret,
        /// How assertions are signed.
        algorithm: AssertionAlgorithm,
    },
    /// A client secret, sent with each token request.
    Secret(Secret),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The certificate is public but long; its size is enough in a log line.
            Credential::Certificate {
                certificate_pem,
                private_key_pem,
                algorithm,
            } => f
                .debug_struct("Certificate")
                .field(
                    "certificate_pem",
                    &format_args!("{} bytes", certificate_pem.len()),
                )
                .field("private_key_pem", private_key_pem)
                .field("algorithm", algorithm)
                .finish(),
            Credential::Secret(secret) => f.debug_tuple("Secret").field(secret).finish(),
        }
    }
}

/// Requests in flight per mailbox: Exchange Online allows 4 per app and mailbox; one is left
/// for the admin's other tools.
pub const DEFAULT_PER_MAILBOX: usize = 3;
/// Requests per minute per mailbox: Exchange Online allows 10,000 per 10 minutes per app and
/// mailbox; this stays well under it, with room for bursts.
pub const DEFAULT_BUDGET_PER_MINUTE: u32 = 900;
/// Replies up to this size are accepted: the largest genuine ones are delta pages and
/// `$batch` answers of 20 items, a few MiB at most.
pub const DEFAULT_MAX_REPLY_BYTES: u64 = 64 * 1024 * 1024;

/// What the client allows itself.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Per-request deadline: sending the request and reading the whole reply.
    pub timeout: Duration,
    /// Connecting (TCP and TLS) may take at most this.
    pub connect_timeout: Duration,
    /// The largest reply read; a larger one is an error, and is never held in full.
    pub max_reply_bytes: u64,
    /// Attempts per request, the first included, on 429/503/504 and dropped connections.
    pub max_attempts: u32,
    /// First back-off when Graph gives no `Retry-After`; doubled per retry, with jitter.
    pub retry_base: Duration,
    /// Longest back-off without `Retry-After`.
    pub retry_cap: Duration,
    /// A `Retry-After` longer than this is not waited out: the request fails with the wait,
    /// and the mailbox stays paused for it while the caller moves on to other mailboxes.
    pub max_wait: Duration,
    /// Requests in flight per mailbox.
    pub per_mailbox: usize,
    /// Requests per minute per mailbox (a token bucket that holds a minute's worth).
    pub budget_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            timeout: Duration::from_secs(100),
            connect_timeout: Duration::from_secs(15),
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
            max_attempts: 4,
            retry_base: Duration::from_secs(3),
            retry_cap: Duration::from_secs(180),
            max_wait: Duration::from_secs(180),
            per_mailbox: DEFAULT_PER_MAILBOX,
            budget_per_minute: DEFAULT_BUDGET_PER_MINUTE,
        }
    }
}

/// Everything a [`crate::GraphClient`] needs for one tenant.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// The directory (tenant) id, a GUID or a verified domain.
    pub tenant_id: String,
    /// The app registration's application (client) id.
    pub client_id: String,
    /// Which cloud: authority, Graph host and scope.
    pub cloud: Cloud,
    /// The app's certificate or secret.
    pub credential: Credential,
    /// Extra trusted CA certificates (PEM), added to the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Whether the system's roots are trusted too (tests against a simulator turn this off).
    pub system_roots: bool,
    /// Hosts the token and the assertion may be sent to. Left empty, it holds the cloud's
    /// authority and Graph hosts.
    pub allow: AllowList,
    /// Deadlines, sizes, retries, concurrency and budget.
    pub limits: Limits,
    /// Told of every request and every wait Graph asked for (metrics).
    pub observer: Option<exsync_core::observe::Observer>,
}

impl GraphConfig {
    /// A configuration with default limits, the system's roots and an allow-list of the
    /// cloud's own hosts.
    pub fn new(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        cloud: Cloud,
        credential: Credential,
    ) -> GraphConfig {
        GraphConfig {
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            cloud,
            credential,
            ca_pem: None,
            system_roots: true,
            allow: AllowList::default(),
            limits: Limits::default(),
            observer: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_holds_no_secret() {
        let secret = GraphConfig::new(
            "t",
            "c",
            Cloud::Global,
            Credential::Secret(Secret::new("s3cr3t-value")),
        );
        let text = format!("{secret:?}");
        assert!(
            !text.contains("s3cr3t-value") && text.contains("Secret(…)"),
            "{text}"
        );
        let cert = Credential::Certificate {
            certificate_pem: b"-----BEGIN CERTIFICATE-----".to_vec(),
            private_key_pem: Secret::new("-----BEGIN PRIVATE KEY-----MIIE"),
            algorithm: AssertionAlgorithm::Ps256,
        };
        let text = format!("{cert:?}");
        assert!(
            !text.contains("MIIE") && text.contains("27 bytes"),
            "{text}"
        );
    }
}
