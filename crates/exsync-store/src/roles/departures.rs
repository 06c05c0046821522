//! Users who leave the sync and come back. While a user is in no configuration (or paused),
//! the org-wide CRM read routes nothing to them, so the CRM's changes of that time reach no
//! inbox; what was routed to them before they left would wait in theirs for ever. So when
//! the read finds users gone, their inbox is emptied and each is marked to read their own
//! records in full when they are back: a full read lists everything in their scope as it is
//! now, and a synced record it does not list is taken as gone, so nothing the dropped
//! changes or the time away held is lost.

use chrono::{DateTime, Utc};
use exsync_core::UserKey;

use crate::error::StoreResult;

/// What [`Departures::retire_departed`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retired {
    /// Users newly marked to read their records in full when they are back.
    pub marked: u64,
    /// Routed changes removed from the inboxes of users who left.
    pub inbox_removed: u64,
}

/// Marks for users who left the sync, kept until their first pass back has read in full.
pub trait Departures: Send + Sync {
    /// Every user the store knows who is not in `active` (the users this pass syncs) is
    /// marked, if not marked yet, to read their records in full when they are back, and their
    /// CRM inbox is emptied, in one transaction. On a store several workers share it runs
    /// under the org read's lease, like the delivery it follows.
    fn retire_departed(&self, active: &[UserKey], at: DateTime<Utc>) -> StoreResult<Retired>;

    /// When the user was marked, if their next pass must read their records in full.
    fn full_read_due(&self, user: &UserKey) -> StoreResult<Option<DateTime<Utc>>>;

    /// Removes the mark set at `since` once a pass read in full and committed, under the
    /// user's lease; a mark set again since stays. Whether a mark was removed.
    fn settle_full_read(&self, user: &UserKey, since: DateTime<Utc>) -> StoreResult<bool>;
}
