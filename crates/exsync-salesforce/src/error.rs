//! What can go wrong talking to Salesforce.

/// A connector failure. Per-record failures of a write are not errors: they come back as
/// [`crate::ItemError`]s next to the records that were written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    /// The token endpoint refused us (`invalid_grant`, `invalid_client`, …).
    #[error("authentication failed: {error}: {description}")]
    Auth { error: String, description: String },
    /// The org's daily API allowance is down to the reserve we keep for it (or already
    /// exhausted). Nothing was sent; the service should pause until the allowance recovers.
    #[error(
        "API allowance reserve reached: {used} of {max} calls used, {reserve} kept for the org"
    )]
    LimitReserved { used: u64, max: u64, reserve: u64 },
    /// Salesforce answered with an error body (`[{"errorCode": …, "message": …}]`).
    #[error("Salesforce answered HTTP {status}: {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer after the retries (connection refused or dropped, timeout, 5xx).
    #[error("transport: {0}")]
    Transport(String),
    #[error("unexpected response: {0}")]
    Decode(String),
}

impl Error {
    /// Whether the service should pause syncing (rather than count a failure).
    pub fn is_pause(&self) -> bool {
        matches!(self, Error::LimitReserved { .. })
    }

    /// The Salesforce error code, when there is one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
