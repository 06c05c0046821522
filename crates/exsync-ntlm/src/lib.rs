//! NTLMv2 with a message integrity code (MIC) and TLS channel binding, both as the client
//! ([`Initiator`]) and as the server ([`Acceptor`]).
//!
//! Exchange 2019 CU14 and later turn Extended Protection on by default, which rejects NTLM
//! without a channel binding that matches the TLS certificate the client actually saw. This crate
//! is pure computation: callers move the tokens over one keep-alive HTTP connection, because NTLM
//! authenticates the connection, not the request.
//!
//! ```
//! use exsync_ntlm::{Acceptor, Credentials, Initiator, UserTable, VerifyPolicy};
//!
//! let store = UserTable::new().with_password("CONTOSO", "svc-sync", "Passw0rd!");
//! let mut server = Acceptor::new(store);
//! let mut client = Initiator::new(Credentials::new("CONTOSO", "svc-sync", "Passw0rd!"), None);
//!
//! let challenge = server.challenge_message(&client.negotiate_message()).unwrap();
//! let authenticate = client.authenticate_message(&challenge).unwrap();
//! let user = server.verify(&authenticate, &VerifyPolicy::without_channel_binding()).unwrap();
//! assert_eq!(user.username, "svc-sync");
//! ```

#![warn(unreachable_pub)]
#![warn(missing_docs)]

mod acceptor;
mod av_pairs;
mod channel_binding;
mod credentials;
mod crypto;
mod error;
pub mod flags;
mod http;
mod initiator;
mod messages;
mod wire;

pub use acceptor::{Acceptor, AuthenticatedUser, ChannelBindingPolicy, ServerNames, VerifyPolicy};
pub use channel_binding::{tls_server_end_point, ChannelBinding};
pub use credentials::{CredentialStore, Credentials, FnStore, UserTable};
pub use crypto::NtHash;
pub use error::{NtlmError, LOGON_FAILURE};
pub use http::{header_value, parse_header, NtlmHeader};
pub use initiator::Initiator;

/// Entry points for the fuzz tests: parse arbitrary bytes as each message kind.
#[doc(hidden)]
pub mod parse {
    use crate::error::NtlmError;

    pub fn negotiate(bytes: &[u8]) -> Result<(), NtlmError> {
        crate::messages::parse_negotiate(bytes).map(|_| ())
    }

    pub fn challenge(bytes: &[u8]) -> Result<(), NtlmError> {
        crate::messages::parse_challenge(bytes).map(|_| ())
    }

    pub fn authenticate(bytes: &[u8]) -> Result<(), NtlmError> {
        crate::messages::parse_authenticate(bytes).map(|_| ())
    }

    pub fn av_pairs(bytes: &[u8]) -> Result<(), NtlmError> {
        crate::av_pairs::AvPairs::parse(bytes).map(|_| ())
    }
}
