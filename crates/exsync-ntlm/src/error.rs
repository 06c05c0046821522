//! Typed failures of the NTLM exchange.

/// What callers show for both an unknown user and a wrong password, so that a response never tells
/// an attacker which of the two it was.
pub const LOGON_FAILURE: &str = "logon failure: unknown user name or bad password";

/// Every way an NTLM exchange can fail. Nothing here carries a password, hash or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NtlmError {
    /// The bytes are not a well-formed NTLM message of the expected kind.
    #[error("malformed NTLM message: {reason}")]
    Malformed {
        /// Which field or length was wrong, for the log.
        reason: String,
    },
    /// A well-formed message of the wrong type (for example a CHALLENGE where an AUTHENTICATE
    /// was expected).
    #[error("unexpected NTLM message type {found} (expected {expected})")]
    UnexpectedMessageType {
        /// The message type this step needs (1, 2 or 3).
        expected: u32,
        /// The message type that arrived.
        found: u32,
    },
    /// The calls were made in the wrong order (for example `verify` before `challenge_message`).
    #[error("NTLM step out of order: {0}")]
    OutOfOrder(&'static str),
    /// The peer asked for something this implementation deliberately does not do.
    #[error("unsupported NTLM feature: {reason}")]
    Unsupported {
        /// What was asked for, for the log.
        reason: String,
    },
    /// No account of that name. Displays exactly like [`NtlmError::WrongPassword`].
    #[error("{}", LOGON_FAILURE)]
    UnknownUser,
    /// The NTLMv2 proof does not match the account's password. Displays exactly like
    /// [`NtlmError::UnknownUser`].
    #[error("{}", LOGON_FAILURE)]
    WrongPassword,
    /// The client answered with an NTLMv1 response, which is crackable and refused.
    #[error("NTLMv1 responses are refused; only NTLMv2 is accepted")]
    NtlmV1Refused,
    /// The client sent only an LM response, or none at all (anonymous).
    #[error("LM-only and anonymous NTLM logons are refused")]
    LmOrAnonymousRefused,
    /// The message integrity code over the three messages does not match: something in them was
    /// altered on the way.
    #[error("NTLM message integrity code (MIC) does not match")]
    BadMic,
    /// The policy requires a MIC and the client did not send one.
    #[error("NTLM message integrity code (MIC) is required but missing")]
    MicMissing,
    /// Channel binding is required and the client sent none (or an all-zero one).
    #[error("channel binding is required but the client sent none")]
    ChannelBindingMissing,
    /// The client's channel binding belongs to a different TLS endpoint: a relay or a TLS
    /// interception proxy sits in between.
    #[error("channel binding does not match this TLS endpoint")]
    ChannelBindingMismatch,
    /// The certificate given for the channel binding could not be used.
    #[error("cannot derive channel binding from the certificate: {reason}")]
    Certificate {
        /// Why the certificate was unusable (unparsable, unknown signature algorithm, …).
        reason: String,
    },
    /// An HTTP header value that is not an `NTLM` one.
    #[error("not an NTLM authentication header")]
    NotNtlmHeader,
}

impl NtlmError {
    pub(crate) fn malformed(reason: impl Into<String>) -> Self {
        NtlmError::Malformed {
            reason: reason.into(),
        }
    }

    /// True for [`NtlmError::UnknownUser`] and [`NtlmError::WrongPassword`], the two failures a
    /// server must answer identically.
    pub fn is_logon_failure(&self) -> bool {
        matches!(self, NtlmError::UnknownUser | NtlmError::WrongPassword)
    }
}
