//! exsync-store: the state database. It keeps the last-synced content of every linked pair
//! (the merge base), the change cursors, per-user status, pass history, unresolved items, the
//! conflict log, the CRM users left out of the sync, the CRM echo log, encrypted secrets,
//! console accounts and the audit log.
//!
//! The interface comes in roles, one per consumer: [`SyncState`] for the sync engine,
//! [`Accounts`] for the console's users, [`Secrets`] for the vault. [`Store`] is all of them
//! at once; [`SqliteStore`] is the single-process implementation and [`PgStore`] the one on a
//! PostgreSQL database that several processes can share. A pass is committed by
//! [`SyncState::commit_pass`] in one transaction, so cursors never move past writes whose
//! mappings were not saved.

#![warn(unreachable_pub)]
#![warn(missing_docs)]

mod console;
mod copy;
mod error;
mod postgres;
mod roles;
mod sqlite;
mod store;
mod types;

pub use console::{
    AdminUser, ApiToken, AuditEvent, AuditRecord, Role, Secret, SecretInfo, Session,
};
pub use copy::{copy_sqlite_to_postgres, CopyCounts};
pub use error::{StoreError, StoreResult};
pub use postgres::{PgOptions, PgStore, PgTls, PG_SCHEMA_VERSION};
pub use roles::{
    Accounts, BudgetLevel, Budgets, Departures, Draw, InboxEntry, Lease, LeaseInfo, LeaseScope,
    Leases, Retired, RoutedChange, Secrets, Slot, SlotInfo, Slots, SyncState, CRM_API_CALLS,
    CRM_USERS_MAX, EXCHANGE_REQUESTS, ORG_CRM_READ, SLOTS_MAX,
};
pub use sqlite::{SqliteStore, SCHEMA_VERSION};
pub use store::Store;
pub use types::{
    CommitReceipt, ConflictEntry, ConflictRecord, CrmUserSkip, CrmWrite, CursorAdvance,
    CursorEntry, CursorScope, Intent, ItemRef, MailboxRoute, Notice, PairKey, PairLink, PassCommit,
    Pause, ResetCounts, RunAssignment, RunCounts, RunRecord, SkippedCrmUser, UnmatchedUser,
    UnresolvedItem, UnresolvedReport, UserStatus, MAX_NOTICES, ROUTE_TEXT_MAX, SKIPPED_ADDRESS_MAX,
};

#[cfg(test)]
mod tests;
