//! Every way an EWS call can fail, typed so the caller can tell a per-user problem (impersonation
//! not granted, mailbox gone) from a per-item one, a stale ChangeKey, throttling and a broken
//! connection. Messages name the account, host and mailbox involved, never a secret.

use std::time::Duration;

use crate::xml::XmlError;

/// One `ResponseCode` with its text, as a server returned it for an operation or an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseError {
    /// The `ResponseCode` (e.g. `ErrorItemNotFound`), which decides how the caller reacts.
    pub code: String,
    /// The server's `MessageText`, for the log.
    pub message: String,
    /// `BackOffMilliseconds` from `MessageXml`, for `ErrorServerBusy`.
    pub back_off: Option<Duration>,
}

impl std::fmt::Display for ResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.message.is_empty() {
            f.write_str(&self.code)
        } else {
            write!(f, "{}: {}", self.code, self.message)
        }
    }
}

/// What kind of failure a response code is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeClass {
    /// The whole mailbox cannot be reached through the service account: fix permissions or
    /// the address, then retry this user.
    Mailbox,
    /// The server asks us to slow down.
    Throttled,
    /// Worth retrying the same request after a short wait.
    Transient,
    /// The item changed since we read it: refetch and replan.
    Stale,
    /// The item is not there (deleted meanwhile).
    NotFound,
    /// Anything else: this item or request is wrong.
    Item,
}

pub(crate) fn classify(code: &str) -> CodeClass {
    match code {
        "ErrorImpersonateUserDenied"
        | "ErrorImpersonationDenied"
        | "ErrorImpersonationFailed"
        | "ErrorInvalidExchangeImpersonationHeaderData"
        | "ErrorNonExistentMailbox"
        | "ErrorAccessDenied"
        | "ErrorMailboxMoveInProgress"
        | "ErrorAccountDisabled"
        | "ErrorMailboxConfiguration"
        | "ErrorNoApplicableProxyCASServersAvailable"
        | "ErrorQuotaExceeded" => CodeClass::Mailbox,
        "ErrorServerBusy"
        | "ErrorExceededConnectionCount"
        | "ErrorTooManyObjectsOpened"
        | "ErrorTimeoutExpired" => CodeClass::Throttled,
        "ErrorInternalServerTransientError"
        | "ErrorMailboxStoreUnavailable"
        | "ErrorConnectionFailed"
        | "ErrorBatchProcessingStopped" => CodeClass::Transient,
        "ErrorIrresolvableConflict"
        | "ErrorStaleObject"
        | "ErrorChangeKeyRequiredForWriteOperations"
        | "ErrorInvalidChangeKey" => CodeClass::Stale,
        "ErrorItemNotFound" | "ErrorCalendarOccurrenceIsDeletedFromRecurrence" => {
            CodeClass::NotFound
        }
        _ => CodeClass::Item,
    }
}

/// What an Exchange administrator does about a per-user error.
pub(crate) fn remediation(code: &str, service_account: &str, mailbox: &str) -> Option<String> {
    let text = match code {
        "ErrorImpersonateUserDenied" | "ErrorImpersonationDenied" | "ErrorImpersonationFailed" => {
            format!(
                "the service account {service_account} may not impersonate {mailbox}. In the \
                 Exchange Management Shell, create a scope that covers the syncing users and \
                 grant the role on it: New-ManagementScope -Name exsync-users \
                 -RecipientRestrictionFilter \"MemberOfGroup -eq '<DN of the sync group>'\"; \
                 New-ManagementRoleAssignment -Name exsync-impersonation -Role \
                 ApplicationImpersonation -User {service_account} -CustomRecipientWriteScope \
                 exsync-users. Make sure {mailbox} is a member of that group."
            )
        }
        "ErrorInvalidExchangeImpersonationHeaderData" => format!(
            "Exchange rejected the impersonation header for {mailbox}; check that the address is \
             the mailbox's primary SMTP address (Get-Mailbox {mailbox} | fl PrimarySmtpAddress)."
        ),
        "ErrorNonExistentMailbox" => format!(
            "no mailbox has the address {mailbox}; check the user's e-mail in the CRM against \
             Get-Mailbox -Identity {mailbox}, or remove the user from sync."
        ),
        "ErrorAccessDenied" => format!(
            "the service account {service_account} was denied access in {mailbox}; check the \
             ApplicationImpersonation assignment (Get-ManagementRoleAssignment -Role \
             ApplicationImpersonation -RoleAssignee {service_account}) and that the folder was \
             not restricted by hand."
        ),
        "ErrorMailboxMoveInProgress" => {
            format!("{mailbox} is being moved between databases; sync resumes after the move.")
        }
        "ErrorAccountDisabled" => format!("the account of {mailbox} is disabled."),
        "ErrorQuotaExceeded" => {
            format!("{mailbox} is over its storage quota; raise it or clean up the mailbox.")
        }
        "ErrorMailboxStoreUnavailable" => {
            format!("the database holding {mailbox} is unavailable; check its health (Get-MailboxDatabaseCopyStatus).")
        }
        _ => return None,
    };
    Some(text)
}

/// Every way a call to the connector can fail. The caller decides from the variant (or
/// [`EwsError::is_transient`], [`EwsError::is_per_user`]) whether to retry, skip the user or
/// fail the item; the message is written for the admin who reads the log.
#[derive(Debug, thiserror::Error)]
pub enum EwsError {
    /// No TCP connection to the host (refused, unreachable, name not resolved).
    #[error("cannot connect to {host}: {reason}")]
    Connect {
        /// The host we tried to reach.
        host: String,
        /// What the network stack said.
        reason: String,
    },

    /// The TLS handshake failed; the reason says what is wrong with whose certificate.
    #[error("TLS with {host} failed: {reason}")]
    Tls {
        /// The host whose handshake failed.
        host: String,
        /// What to fix, in the admin's terms.
        reason: String,
    },

    /// The server refused the service account's credentials.
    #[error("{host} rejected the credentials of {account} ({scheme}); check the service account's user name and password")]
    Unauthorized {
        /// The service account that was refused.
        account: String,
        /// The host that refused it.
        host: String,
        /// The scheme it was refused with (Basic or NTLM).
        scheme: String,
    },

    /// A host stopped offering the scheme pinned for it; we refuse rather than fall back.
    #[error("{host} offers only {offered}, but {pinned} was used with it before; refusing the weaker scheme (possible downgrade attack)")]
    AuthDowngrade {
        /// The host whose offer changed.
        host: String,
        /// The scheme that worked with it before.
        pinned: String,
        /// What it offers now.
        offered: String,
    },

    /// Kerberos failed (no ticket, or the server refused it); the message carries the fix.
    #[error("Kerberos to {host} as {principal}: {error}")]
    Kerberos {
        /// The EWS host.
        host: String,
        /// The service account's principal.
        principal: String,
        /// What failed, with the fix.
        error: exsync_gss::KrbError,
    },

    /// The host offers neither Basic nor NTLM (or not the configured one).
    #[error("{host} offers no authentication scheme we use (offered: {offered})")]
    NoUsableAuth {
        /// The host that was asked.
        host: String,
        /// The schemes it offered, for the admin to compare with the configuration.
        offered: String,
    },

    /// Credentials would have gone over something other than HTTPS, so the request was not
    /// sent.
    #[error("refusing to send credentials to {url}: {reason}")]
    CredentialsRefused {
        /// Where the request would have gone.
        url: String,
        /// Which rule refused it.
        reason: String,
    },

    /// The server answered with an HTTP status that is not a SOAP reply.
    #[error("{host} answered HTTP {status}: {excerpt}")]
    Http {
        /// The host that answered.
        host: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the body, which usually names the cause.
        excerpt: String,
        /// The server's `Retry-After`, honoured before a retry.
        retry_after: Option<Duration>,
    },

    /// The reply is not the SOAP we expect (wrong content, missing elements).
    #[error("{host} sent a response we cannot read: {reason}")]
    Protocol {
        /// The host that sent it.
        host: String,
        /// What was wrong with it.
        reason: String,
    },

    /// The reply went past the size cap; reading stopped there.
    #[error("{host} sent a reply larger than the {} limit; reading stopped there. No genuine EWS or Autodiscover answer to our requests is that large: check what answers at {host}, or raise network.max_reply_mib if its replies really are", mib(*.limit))]
    ReplyTooLarge {
        /// The host that sent it.
        host: String,
        /// The cap in bytes (`network.max_reply_mib`).
        limit: u64,
    },

    /// Connecting, sending and reading the whole reply took longer than the request timeout.
    #[error("{host} did not complete its reply within {timeout:?} (connecting, sending and reading the whole reply all count); the server is stalled or far too slow: check its health and the network path to it")]
    Timeout {
        /// The host that did not finish.
        host: String,
        /// The request timeout that ran out.
        timeout: Duration,
    },

    /// The reply is not well-formed XML (or nests too deep).
    #[error(transparent)]
    Xml(#[from] XmlError),

    /// The server answered with a SOAP fault instead of a response.
    #[error("SOAP fault from {host}: {error}")]
    Fault {
        /// The host that sent the fault.
        host: String,
        /// The fault's response code and text.
        error: ResponseError,
    },

    /// A failure that concerns the whole mailbox; the pass for this user stops with the hint.
    #[error("mailbox {mailbox}: {error}. Remediation: {remediation}")]
    Mailbox {
        /// The mailbox that cannot be used.
        mailbox: String,
        /// The server's response code and text.
        error: ResponseError,
        /// What the admin should do (grant impersonation, fix the address, …).
        remediation: String,
    },

    /// An operation as a whole failed with a response code that concerns neither the mailbox
    /// nor a single item.
    #[error("{operation} failed: {error}")]
    Response {
        /// The EWS operation (e.g. `SyncFolderItems`).
        operation: &'static str,
        /// The server's response code and text.
        error: ResponseError,
    },

    /// The server asked us to slow down and retries ran out; try again after the back-off.
    #[error("the server is throttling us; retry after {back_off:?}")]
    Throttled {
        /// How long the server asked us to wait.
        back_off: Duration,
    },

    /// An item changed since it was read: refetch it and plan again rather than overwrite.
    #[error("item {item_id} changed on the server since it was read ({code}); refetch and replan")]
    StaleChangeKey {
        /// The item that changed.
        item_id: String,
        /// The response code that said so.
        code: String,
    },

    /// The server no longer accepts the folder's sync state; the listing starts over.
    #[error("the sync state was rejected (ErrorInvalidSyncStateData)")]
    InvalidSyncState,

    /// Our own input cannot be turned into a request (bad configuration, unmappable record).
    #[error("invalid request: {0}")]
    InvalidInput(String),

    /// Autodiscover found no usable EWS URL for an address.
    #[error("Autodiscover for {address} failed: {reason}")]
    Autodiscover {
        /// The mailbox address being discovered.
        address: String,
        /// Why every candidate failed.
        reason: String,
    },
}

impl EwsError {
    /// Worth retrying the same call after a wait.
    pub fn is_transient(&self) -> bool {
        match self {
            // A stalled server is transient too, but [`crate::EwsClient`] does not repeat the
            // call at once: the next attempt would most likely cost another whole timeout.
            EwsError::Connect { .. } | EwsError::Throttled { .. } | EwsError::Timeout { .. } => {
                true
            }
            EwsError::Http { status, .. } => matches!(status, 502..=504),
            EwsError::Fault { error, .. } | EwsError::Response { error, .. } => matches!(
                classify(&error.code),
                CodeClass::Throttled | CodeClass::Transient
            ),
            _ => false,
        }
    }

    /// How long the server asked us to wait, when it did.
    pub fn back_off(&self) -> Option<Duration> {
        match self {
            EwsError::Throttled { back_off } => Some(*back_off),
            EwsError::Http { retry_after, .. } => *retry_after,
            EwsError::Fault { error, .. } | EwsError::Response { error, .. } => error.back_off,
            _ => None,
        }
    }

    /// A failure of the mailbox as a whole (not of the connection or of one item).
    pub fn is_per_user(&self) -> bool {
        matches!(self, EwsError::Mailbox { .. })
    }
}

/// A byte count as MiB when it is a whole number of them (as the setting is written), else
/// as bytes.
pub(crate) fn mib(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes}-byte")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impersonation_denied_tells_the_admin_the_exact_command() {
        let hint = remediation(
            "ErrorImpersonateUserDenied",
            "svc-sync@contoso.test",
            "ann@contoso.test",
        )
        .unwrap_or_default();
        assert!(hint.contains("New-ManagementRoleAssignment"), "{hint}");
        assert!(hint.contains("-Role ApplicationImpersonation"), "{hint}");
        assert!(hint.contains("-User svc-sync@contoso.test"), "{hint}");
        assert!(hint.contains("-CustomRecipientWriteScope"), "{hint}");
        assert!(hint.contains("ann@contoso.test"), "{hint}");
    }

    #[test]
    fn classes() {
        assert_eq!(classify("ErrorNonExistentMailbox"), CodeClass::Mailbox);
        assert_eq!(classify("ErrorServerBusy"), CodeClass::Throttled);
        assert_eq!(classify("ErrorIrresolvableConflict"), CodeClass::Stale);
        assert_eq!(classify("ErrorItemNotFound"), CodeClass::NotFound);
        assert_eq!(classify("ErrorInvalidPropertySet"), CodeClass::Item);
        assert!(remediation("ErrorNonExistentMailbox", "s", "m").is_some());
        assert!(remediation("ErrorAccessDenied", "s", "m").is_some());
        assert!(remediation("ErrorInvalidPropertySet", "s", "m").is_none());
    }
}
