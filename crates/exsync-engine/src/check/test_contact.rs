//! The contact the write round trip makes, on EWS and Graph alike: tagged as the passes tag
//! what they write, so finding it again by the tag shows the passes can find theirs, and named
//! so that an admin who comes across one left over knows where it came from.

use exsync_core::{Contact, CrmId};

/// The round trip's step name.
pub(super) const ROUND_TRIP: &str = "Write round trip";

pub(super) struct TestContact {
    /// The tag, unique to this check run.
    pub(super) tag: CrmId,
    pub(super) contact: Contact,
}

impl TestContact {
    pub(super) fn new() -> TestContact {
        let stamp = chrono::Utc::now();
        TestContact {
            tag: CrmId::new(format!(
                "exsync-check-{}-{}",
                stamp.timestamp_millis(),
                std::process::id()
            )),
            contact: Contact {
                first_name: "exsync".into(),
                last_name: format!(
                    "connectivity check {}",
                    stamp.format("%Y-%m-%d %H:%M:%S UTC")
                ),
                ..Contact::default()
            },
        }
    }

    /// What to do when it could not be deleted again.
    pub(super) fn leftover_fix(&self, folder: &str, address: &str) -> String {
        format!(
            "delete the contact \"{} {}\" from Contacts/{folder} of {address} by hand",
            self.contact.first_name, self.contact.last_name
        )
    }
}
