//! exsync-ews: the EWS connector. TLS that always verifies, Basic or NTLM (v2, MIC, channel
//! binding) pinned per host, impersonation of each syncing mailbox, Autodiscover with an
//! allow-list, the operations the sync engine needs with contact and event mapping, batching,
//! throttling back-off and an opt-in wire trace with secrets redacted.

pub mod error;
pub mod mapping;
pub mod ops;
pub mod soap;
pub mod xml;

pub use error::{EwsError, ResponseError};
pub mod client;
pub mod throttle;
pub mod trace;
pub mod transport;

pub use client::{EwsClient, EwsConfig, MailboxClient, SyncBatch, SyncListing, Update};
pub use transport::auth::{AuthMode, Credentials};
pub use transport::conn::Resolve;
pub mod autodiscover;
pub mod dns;
