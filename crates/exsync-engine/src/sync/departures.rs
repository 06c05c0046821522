//! Users who leave the sync and come back (see `exsync_store::Departures`). The pass that
//! reads the CRM for everyone marks the users it no longer syncs (in no configuration, or
//! paused) and, on a shared store, empties their inbox: nothing is routed to them while they
//! are away, so what waited there would stay for ever, and changes of the time away would be
//! missed. A user who is back reads their own records in full, which covers both, and the
//! mark goes once that pass committed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use exsync_core::config::Direction;
use exsync_core::{ItemKind, UserKey};

use super::pass::{on_store, FullRead, PassError, SyncUser, UserReport, KINDS};
use super::service::{CrmFilterKey, Syncer};
use super::sides::{CrmSide, MailboxSide};

/// The read of all of a user's own records of a kind in the CRM.
pub(super) fn own_records(kind: ItemKind, user: &SyncUser) -> FullRead {
    FullRead::Crm(CrmFilterKey::of(kind, &user.config).filter(&[user]))
}

impl<E, C> Syncer<E, C>
where
    E: MailboxSide + 'static,
    C: CrmSide + 'static,
{
    /// Marks every user the store knows and `active` does not hold, and drops what was
    /// routed to them; said in the log when it finds anyone new.
    pub(super) async fn retire_departed(
        &self,
        active: &[SyncUser],
        now: DateTime<Utc>,
    ) -> Result<(), PassError> {
        let keys: Vec<UserKey> = active.iter().map(|u| u.key.clone()).collect();
        let retired = on_store(&self.store, move |s| s.retire_departed(&keys, now)).await?;
        if retired.marked > 0 || retired.inbox_removed > 0 {
            tracing::info!(users = retired.marked, routed_changes_dropped = retired.inbox_removed, "Users left the sync (in no configuration now, or paused); what was routed to them is dropped, and each reads their records in full when they are back.");
        }
        Ok(())
    }

    /// When `user` is back after leaving the sync, adds a read of all their own records for
    /// every kind that syncs and has none yet, and returns the mark to settle after the pass.
    pub(super) async fn read_in_full_if_back(
        &self,
        user: &SyncUser,
        full_reads: &mut BTreeMap<ItemKind, FullRead>,
    ) -> Result<Option<DateTime<Utc>>, PassError> {
        let key = user.key.clone();
        let since = on_store(&self.store, move |s| s.full_read_due(&key)).await?;
        if since.is_some() {
            for kind in KINDS {
                if user.config.rules(kind).direction != Direction::Off {
                    full_reads
                        .entry(kind)
                        .or_insert_with(|| own_records(kind, user));
                }
            }
            tracing::info!(user = %user.key, "Back in the sync: reading the user's records in full.");
        }
        Ok(since)
    }

    /// Settles the mark once the pass that read in full committed without an error.
    pub(super) async fn settle_return(
        &self,
        since: Option<DateTime<Utc>>,
        done: &UserReport,
    ) -> Result<(), PassError> {
        let (Some(since), Some(user), None) = (since, done.user.clone(), &done.error) else {
            return Ok(());
        };
        on_store(&self.store, move |s| s.settle_full_read(&user, since)).await?;
        Ok(())
    }
}
