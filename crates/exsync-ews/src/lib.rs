//! exsync-ews: the EWS connector. TLS that always verifies, Basic or NTLM (v2, MIC, channel
//! binding) pinned per host, impersonation of each syncing mailbox, Autodiscover with an
//! allow-list, the operations the sync engine needs with contact and event mapping, batching,
//! throttling back-off and an opt-in wire trace with secrets redacted.
//!
//! The modules are private: what the engine and the lab use is exported below, the
//! connectivity check gets [`diagnostics`], and integration tests reach the request builders
//! through the hidden `testing` module. Anything else can change without notice.

#![warn(unreachable_pub)]
#![warn(missing_docs)]

mod autodiscover;
mod client;
pub mod diagnostics;
mod dns;
mod error;
mod mapping;
mod ops;
mod share;
mod soap;
mod throttle;
mod trace;
mod transport;
mod xml;

pub use autodiscover::{Autodiscover, AutodiscoverConfig, MailboxLocation};
pub use client::{
    EwsClient, EwsConfig, FolderPlace, MailboxClient, SyncBatch, SyncListing, TagSearch,
    TaggedItem, Update,
};
pub use dns::{SrvFuture, SrvRecord, SrvResolver, StaticSrv, SystemSrv};
pub use error::{EwsError, ResponseError};
pub use exsync_core::AllowList;
pub use mapping::contact::write_contact;
pub use mapping::event::{write_event, write_event_in};
pub use mapping::ItemRef;
pub use ops::{DeletedFolder, FolderRef, SearchFolder};
pub use share::AccountShare;
pub use throttle::RetryPolicy;
pub use transport::auth::{AuthMode, Credentials, Scheme, Secret};
pub use transport::conn::Resolve;
pub use transport::negotiate::{KerberosLogin, KerberosStatus};
pub use transport::HttpClient;
pub use xml::XmlWriter;

/// Internals re-exported for this crate's integration tests (request building, mapping, raw
/// HTTP). Not part of the API: hidden from the docs and free to change in any release.
#[doc(hidden)]
pub mod testing {
    pub use crate::mapping::contact::contact_updates;
    pub use crate::mapping::event::{event_updates, event_updates_in, occurrence_updates};
    pub use crate::ops::{folders, items, sync};
    pub use crate::soap::envelope;
    pub use crate::transport::conn::Response;
    pub use crate::transport::HttpConfig;
    pub use exsync_core::occurrence_dates;
    pub use exsync_core::zones::iana_to_windows;
    pub use exsync_core::zones::{DayZone, ALIASES, PRIMARY};

    /// Reads an item element as written by [`crate::write_contact`] / [`crate::write_event`]
    /// (the `t:` prefix needs no declaration here) into the record's field form, the way a
    /// sync reads it from the server: lets another backend's tests check that a record reads
    /// the same through EWS as through their own mapping.
    pub fn read_item_fields(
        kind: exsync_core::ItemKind,
        xml: &str,
    ) -> Result<exsync_core::Fields, String> {
        let declared = xml
            .replacen("<t:Contact>", "<t:Contact xmlns:t=\"urn:t\">", 1)
            .replacen("<t:CalendarItem>", "<t:CalendarItem xmlns:t=\"urn:t\">", 1);
        let element = crate::xml::parse(&declared).map_err(|e| e.to_string())?;
        match kind {
            exsync_core::ItemKind::Contact => crate::mapping::contact::read_contact(&element)
                .map(exsync_core::Record::into_fields),
            exsync_core::ItemKind::Event => {
                crate::mapping::event::read_event(&element).map(exsync_core::Record::into_fields)
            }
        }
    }
}
