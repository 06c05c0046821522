//! How to reach and authenticate to a Salesforce org.

use std::fmt;
use std::time::Duration;

/// Bytes that must never be printed (a private key, a client secret).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Replies up to this size are accepted unless configured otherwise. The largest genuine
/// replies are query pages of [`SalesforceConfig::page_size`] (2,000) records: a few MiB
/// usually, and about 64 MiB if every record carried a full 32,000-character description.
pub(crate) const DEFAULT_MAX_REPLY_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone)]
pub enum AuthConfig {
    /// OAuth 2.0 JWT bearer: an assertion signed with the connected app's private key (PEM,
    /// PKCS#1 or PKCS#8) for `username`. No password is stored.
    JwtBearer {
        client_id: String,
        username: String,
        private_key_pem: Secret,
        /// `aud` of the assertion: `https://login.salesforce.com`, `https://test.salesforce.com`
        /// or the org's My Domain URL.
        audience: String,
    },
    /// OAuth 2.0 client credentials; the app runs as the integration user set on it.
    ClientCredentials {
        client_id: String,
        client_secret: Secret,
    },
}

#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    /// Where tokens are requested: `https://login.salesforce.com` or the My Domain URL
    /// (`/services/oauth2/token` is appended).
    pub login_url: String,
    /// REST API version, e.g. `59.0`.
    pub api_version: String,
    pub auth: AuthConfig,
    /// Extra trusted CA certificates (PEM). When empty, the system's roots are used.
    pub ca_pem: Option<Vec<u8>>,
    /// Per-request timeout: sending the request and reading the whole reply.
    pub timeout: Duration,
    /// The largest reply read; a larger one is an error, and is never held in full.
    pub max_reply_bytes: u64,
    /// Retries of a request after a 5xx answer or a dropped connection.
    pub max_retries: u32,
    /// First back-off; doubled per retry, with jitter.
    pub retry_base: Duration,
    /// API calls left untouched for the org's other integrations: once the allowance left
    /// is at or below this, calls fail with [`crate::Error::LimitReserved`].
    pub limit_reserve: u64,
    /// The same as a share of the daily allowance (0.0–1.0); the larger of the two applies.
    pub limit_reserve_share: f64,
    /// Records per change-cursor page.
    pub page_size: usize,
    /// Records stamped within this much of now are left for the next pass, so a transaction
    /// still committing at the cursor's stamp is never skipped.
    pub settle: Duration,
    /// Told of every request (metrics).
    pub observer: Option<exsync_core::observe::Observer>,
}

impl SalesforceConfig {
    pub fn new(login_url: impl Into<String>, auth: AuthConfig) -> SalesforceConfig {
        SalesforceConfig {
            login_url: login_url.into(),
            api_version: "59.0".into(),
            auth,
            ca_pem: None,
            timeout: Duration::from_secs(60),
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
            max_retries: 4,
            retry_base: Duration::from_millis(200),
            limit_reserve: 1000,
            limit_reserve_share: 0.0,
            page_size: 2000,
            settle: Duration::from_secs(2),
            observer: None,
        }
    }
}
