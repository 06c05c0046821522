//! What went wrong in Kerberos terms, and the fix an administrator can apply.

use std::fmt;

use crate::ffi::{self, Status};

/// The kinds of failure we tell apart, each with its own fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// MIT's GSSAPI library is not installed.
    Unavailable,
    /// Clocks differ by more than the allowed skew.
    ClockSkew,
    /// The KDC has no principal for the service (`HTTP/<host>`).
    UnknownService,
    /// The KDC does not know the service account.
    UnknownClient,
    /// The password or keytab does not match the account's key.
    WrongKey,
    /// No KDC answered for the realm.
    KdcUnreachable,
    /// The acceptor refused the channel binding (Extended Protection).
    ChannelBinding,
    /// The server's reply did not prove it holds the service key (mutual authentication).
    MutualAuth,
    /// A ticket or credential expired.
    Expired,
    /// Anything else; the detail says what the library reported.
    Other,
}

/// A Kerberos failure: the kind, the library's own words, and what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub struct KrbError {
    /// The kind of failure.
    pub problem: Problem,
    /// What the library said (no secrets: GSSAPI messages name principals, never keys).
    pub detail: String,
    /// The service host the failure concerns, for the SPN fix.
    pub service_host: Option<String>,
}

// MIT's com_err codes: the krb5 error table starts at this value, and KDC/AP error numbers
// (RFC 4120 §7.5.9) are offsets into it.
const KRB5_BASE: i64 = -1_765_328_384;
fn krb5(code: i64) -> u32 {
    (KRB5_BASE + code) as i32 as u32
}

impl KrbError {
    pub(crate) fn new(problem: Problem, detail: impl Into<String>) -> KrbError {
        KrbError {
            problem,
            detail: detail.into(),
            service_host: None,
        }
    }

    /// The server's reply did not prove it is the service: `detail` says how.
    pub fn mutual_auth(detail: impl Into<String>) -> KrbError {
        KrbError::new(Problem::MutualAuth, detail)
    }

    /// A failure outside the Kerberos exchange itself (a task that could not run).
    pub fn other(detail: impl Into<String>) -> KrbError {
        KrbError::new(Problem::Other, detail)
    }

    pub(crate) fn unavailable(reason: &str) -> KrbError {
        KrbError::new(
            Problem::Unavailable,
            format!("{} cannot be loaded: {reason}", ffi::LIBRARY),
        )
    }

    /// Classifies a failed call's status.
    pub(crate) fn from_status(status: Status) -> KrbError {
        let detail = ffi::status_text(status);
        let minor = status.minor;
        let routine = ffi::routine_error(status.major);
        let lower = detail.to_ascii_lowercase();
        // The mechanism glue may renumber minor codes, so MIT's messages (com_err, not
        // translated) are matched too.
        let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
        let problem = if routine == ffi::ROUTINE_BAD_BINDINGS || has(&["channel binding"]) {
            Problem::ChannelBinding
        } else if minor == krb5(37)
            || minor == krb5(33)
            || has(&["clock skew", "ticket not yet valid"])
        {
            // 37: KRB_AP_ERR_SKEW; 33: KRB_AP_ERR_TKT_NYV, a ticket from a KDC whose clock is ahead.
            Problem::ClockSkew
        } else if minor == krb5(7) || (has(&["server"]) && has(&["not found in kerberos database"]))
        {
            Problem::UnknownService
        } else if minor == krb5(6) || (has(&["client"]) && has(&["not found in kerberos database"]))
        {
            Problem::UnknownClient
        } else if minor == krb5(24)
            || minor == krb5(31)
            || has(&[
                "preauthentication failed",
                "password incorrect",
                "integrity check failed",
            ])
        {
            // 24: KDC_ERR_PREAUTH_FAILED; 31: KRB_AP_ERR_BAD_INTEGRITY (a reply the key cannot decrypt).
            Problem::WrongKey
        } else if has(&["cannot contact any kdc", "cannot find kdc"]) {
            Problem::KdcUnreachable
        } else if routine == ffi::ROUTINE_CREDENTIALS_EXPIRED
            || minor == krb5(32)
            || has(&["ticket expired"])
        {
            Problem::Expired
        } else {
            Problem::Other
        };
        KrbError::new(problem, detail)
    }

    /// The same failure, concerning `host`'s service principal.
    pub fn for_host(mut self, host: &str) -> KrbError {
        self.service_host = Some(host.to_owned());
        self
    }

    /// What an administrator should do.
    pub fn fix(&self) -> String {
        let host = self.service_host.as_deref().unwrap_or("<EWS host>");
        match self.problem {
            Problem::Unavailable => {
                "install MIT Kerberos (Debian/Ubuntu: apt-get install libgssapi-krb5-2), or use \
                 exchange.auth = \"ntlm\""
                    .into()
            }
            Problem::ClockSkew => "the clocks of this host, the KDC (domain controller) and \
                 Exchange differ by more than the allowed skew (5 minutes by default): \
                 synchronise them with NTP"
                .into(),
            Problem::UnknownService => format!(
                "the KDC has no service principal HTTP/{host}: register it on the account \
                 Exchange runs as (setspn -s http/{host} <account>); behind a load balancer, \
                 on the Alternate Service Account shared by the Client Access servers \
                 (setspn -s http/{host} EXCH-ASA$); the host must be the name in \
                 exchange.ews_url, not an alias resolved by DNS"
            ),
            Problem::UnknownClient => "the KDC does not know the service account: check \
                 exchange.service_account and exchange.realm (the principal is user@REALM)"
                .into(),
            Problem::WrongKey => "the password or keytab does not match the service account: \
                 set it again (exsync secrets set exchange.password, or exsync secrets set \
                 exchange.keytab with a keytab exported after the last password change)"
                .into(),
            Problem::KdcUnreachable => "no KDC answered: check exchange.kdcs (or the krb5.conf \
                 named by exchange.krb5_conf) and that port 88 is reachable"
                .into(),
            Problem::ChannelBinding => "Exchange refused the TLS channel binding (Extended \
                 Protection): something between exsync and Exchange terminates TLS with another \
                 certificate; connect to Exchange directly or bypass TLS inspection for it"
                .into(),
            Problem::MutualAuth => format!(
                "the server did not prove it holds the key of HTTP/{host}: it may not be the \
                 Exchange server you configured"
            ),
            Problem::Expired => "the ticket expired; exsync asks for a new one, so a repeat \
                 means the account's ticket lifetime policy is too short"
                .into(),
            Problem::Other => "see the detail; KRB5_TRACE=/dev/stderr shows MIT's trace".into(),
        }
    }
}

impl fmt::Display for KrbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.problem {
            Problem::Unavailable => "Kerberos is not available",
            Problem::ClockSkew => "clock skew",
            Problem::UnknownService => "unknown service principal",
            Problem::UnknownClient => "unknown client principal",
            Problem::WrongKey => "wrong password or key",
            Problem::KdcUnreachable => "KDC unreachable",
            Problem::ChannelBinding => "channel binding refused",
            Problem::MutualAuth => "mutual authentication failed",
            Problem::Expired => "ticket expired",
            Problem::Other => "Kerberos failure",
        };
        write!(f, "{what} ({}); fix: {}", self.detail, self.fix())
    }
}
