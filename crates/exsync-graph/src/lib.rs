//! exsync's Microsoft Graph transport and identity, the foundation of the Exchange Online
//! mailbox backend: the national clouds (authority, Graph host and scope chosen together);
//! app-only tokens from client credentials with a certificate assertion (PS256 + `x5t#S256`
//! by default, RS256 + `x5t` as an option) or a secret, cached and renewed before expiry;
//! requests only to allowed hosts over verified TLS, under deadlines and reply caps, held to
//! Exchange Online's per-mailbox limits (requests in flight, a request budget, a pause of a
//! throttled mailbox alone) and retried as Graph asks; `$batch`; and delta paging.

#![warn(unreachable_pub)]
#![warn(missing_docs)]

mod assertion;
mod batch;
mod client;
mod cloud;
mod config;
mod error;
pub mod mapping;
mod throttle;
mod token;
mod transport;

pub use assertion::{certificate_expiry, Certificate, CERTIFICATE_WARNING_DAYS};
pub use batch::{BatchReply, BatchRequest, BATCH_MAX};
pub use client::{Collected, GraphClient, GraphReply, GraphRequest, Idempotency, Page, MAX_PAGES};
pub use cloud::{Cloud, API_VERSION};
pub use config::{
    AssertionAlgorithm, Credential, GraphConfig, Limits, Secret, DEFAULT_BUDGET_PER_MINUTE,
    DEFAULT_MAX_REPLY_BYTES, DEFAULT_PER_MAILBOX,
};
pub use error::{AuthError, Error, GraphError, Result, TransportError};
pub use throttle::parse_retry_after;
pub use token::AccessToken;
