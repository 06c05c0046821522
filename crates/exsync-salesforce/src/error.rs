//! What can go wrong talking to Salesforce.

use std::time::Duration;

/// A connector failure. Per-record failures of a write are not errors: they come back as
/// [`crate::ItemError`]s next to the records that were written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be used (a CA file or private key that does not parse, a secret
    /// that is not text); retrying will not help.
    #[error("configuration: {0}")]
    Config(String),
    /// The token endpoint refused us (`invalid_grant`, `invalid_client`, …).
    #[error("authentication failed: {error}: {description}")]
    Auth {
        /// The OAuth error code, which says whether the app, the user or the key is at fault.
        error: String,
        /// Salesforce's explanation, passed on to the admin.
        description: String,
    },
    /// The org's daily API allowance is down to the reserve we keep for it (or already
    /// exhausted). Nothing was sent; the service should pause until the allowance recovers.
    #[error(
        "API allowance reserve reached: {used} of {max} calls used, {reserve} kept for the org"
    )]
    LimitReserved {
        /// Calls used in the org's rolling 24 hours.
        used: u64,
        /// Calls allowed in 24 hours.
        max: u64,
        /// Calls left for the org's other integrations, which exsync does not touch.
        reserve: u64,
    },
    /// The allowance the workers share is spent down to the reserve: every worker's calls
    /// together, as the state database counts them. Nothing was sent.
    #[error(
        "the workers' shared API budget is spent: {used} of {max} calls counted across all \
         workers, {reserve} kept for the org"
    )]
    BudgetSpent {
        /// Calls counted as used in the org's rolling 24 hours.
        used: u64,
        /// Calls allowed in 24 hours.
        max: u64,
        /// Calls left for the org's other integrations.
        reserve: u64,
    },
    /// The shared budget could not be drawn from or reported to (the state database failed);
    /// nothing was sent, since the call could not be accounted for.
    #[error("the workers' shared API budget could not be used: {0}")]
    Budget(String),
    /// Salesforce answered with an error body (`[{"errorCode": …, "message": …}]`).
    #[error("Salesforce answered HTTP {status}: {code}: {message}")]
    Api {
        /// The HTTP status of the answer.
        status: u16,
        /// Salesforce's `errorCode` (`INVALID_FIELD`, `ENTITY_IS_DELETED`, …), what callers branch
        /// on.
        code: String,
        /// Salesforce's explanation, passed on to the admin.
        message: String,
    },
    /// No usable answer: the connection failed after the retries, or the server stalled or
    /// sent more than any genuine reply holds.
    #[error("transport: {0}")]
    Transport(TransportError),
    /// An answer arrived but was not what the API documents (JSON that does not parse or lacks a
    /// field we read).
    #[error("unexpected response: {0}")]
    Decode(String),
}

/// Why a request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Connection refused or dropped, TLS refused, a reply cut short.
    #[error("{0}")]
    Failed(String),
    /// The reply went past the size cap; reading stopped there.
    #[error("{host} sent a reply larger than the {} limit; reading stopped there. No genuine Salesforce answer to our requests is that large: check that crm.login_url and crm.instance_url point at Salesforce, or raise network.max_reply_mib if the org's pages really are", mib(*.limit))]
    ReplyTooLarge {
        /// The server that sent it.
        host: String,
        /// The cap that was reached, in bytes (`network.max_reply_mib`).
        limit: u64,
    },
    /// Sending the request and reading the whole reply took longer than the timeout.
    #[error("{host} did not complete its reply within {timeout:?} (sending and reading the whole reply both count); the server is stalled or far too slow: check Salesforce's status and the network path (proxy, firewall)")]
    Timeout {
        /// The server that stalled.
        host: String,
        /// The per-request timeout that ran out.
        timeout: Duration,
    },
}

/// A byte count as MiB when it is a whole number of them (as the setting is written), else
/// as bytes.
fn mib(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes}-byte")
    }
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Error {
        Error::Transport(e)
    }
}

impl Error {
    /// Whether the service should pause syncing (rather than count a failure).
    pub fn is_pause(&self) -> bool {
        matches!(
            self,
            Error::LimitReserved { .. } | Error::BudgetSpent { .. }
        )
    }

    /// The Salesforce error code, when there is one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// What the connector's calls return; the error is [`Error`] unless said otherwise.
pub type Result<T, E = Error> = std::result::Result<T, E>;
