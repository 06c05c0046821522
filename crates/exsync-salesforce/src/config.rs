//! How to reach and authenticate to a Salesforce org.

use std::time::Duration;

pub use exsync_core::Secret;

/// Replies up to this size are accepted unless configured otherwise. The largest genuine
/// replies are query pages of [`SalesforceConfig::page_size`] (2,000) records: a few MiB
/// usually, and about 64 MiB if every record carried a full 32,000-character description.
pub(crate) const DEFAULT_MAX_REPLY_BYTES: u64 = 64 * 1024 * 1024;

/// How the client obtains an access token: which OAuth 2.0 flow, and the connected app's
/// credentials for it.
#[derive(Debug, Clone)]
pub enum AuthConfig {
    /// OAuth 2.0 JWT bearer: an assertion signed with the connected app's private key (PEM,
    /// PKCS#1 or PKCS#8) for `username`. No password is stored.
    JwtBearer {
        /// The connected app's consumer key, the `iss` of the assertion.
        client_id: String,
        /// The integration user the token is issued for, the `sub` of the assertion.
        username: String,
        /// The connected app's private key in PEM, which signs the assertion.
        private_key_pem: Secret,
        /// `aud` of the assertion: `https://login.salesforce.com`, `https://test.salesforce.com`
        /// or the org's My Domain URL.
        audience: String,
    },
    /// OAuth 2.0 client credentials; the app runs as the integration user set on it.
    ClientCredentials {
        /// The connected app's consumer key.
        client_id: String,
        /// The connected app's consumer secret, sent to the token endpoint with each login.
        client_secret: Secret,
    },
}

/// Everything a [`crate::SalesforceClient`] needs to reach and use one org, with the
/// limits it keeps to. [`SalesforceConfig::new`] fills in defaults for all but the login.
#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    /// Where tokens are requested: `https://login.salesforce.com` or the My Domain URL
    /// (`/services/oauth2/token` is appended).
    pub login_url: String,
    /// REST API version, e.g. `59.0`.
    pub api_version: String,
    /// How tokens are obtained.
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
    /// The allowance shared with other processes, drawn from before each counted call; `None`
    /// for a process alone, which paces itself by the replies it gets.
    pub budget: Option<crate::Budget>,
    /// The pairing rule: the `User` field read as the address of each user's mailbox.
    pub mailbox_field: exsync_core::config::MailboxField,
}

impl SalesforceConfig {
    /// A configuration for the org behind `login_url` with default limits: API 59.0, 60 s timeout,
    /// 4 retries from 200 ms, 1,000 calls kept in reserve, 2,000-record pages, a 2 s settle.
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
            budget: None,
            mailbox_field: exsync_core::config::MailboxField::Email,
        }
    }
}
