//! What goes into the sync-state half of the store and what comes out of it.

use chrono::{DateTime, Utc};
use exsync_core::plan::{Conflict, Op, SyncedPair};
use exsync_core::{CrmId, ExchangeId, ItemId, ItemKind, UserKey};
use serde::{Deserialize, Serialize};

/// Where a change cursor belongs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum CursorScope {
    /// The Exchange `SyncState` of one folder of one mailbox.
    Folder { user: UserKey, folder: String },
    /// The org-wide CRM watermark of one object (e.g. `Contact`, `Event`).
    CrmObject { object: String },
}

impl CursorScope {
    pub fn folder(user: &UserKey, folder: impl Into<String>) -> Self {
        CursorScope::Folder {
            user: user.clone(),
            folder: folder.into(),
        }
    }

    pub fn crm_object(object: impl Into<String>) -> Self {
        CursorScope::CrmObject {
            object: object.into(),
        }
    }

    /// The user a cursor belongs to; org-wide cursors belong to nobody.
    pub fn user(&self) -> Option<&UserKey> {
        match self {
            CursorScope::Folder { user, .. } => Some(user),
            CursorScope::CrmObject { .. } => None,
        }
    }
}

/// A stored cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorEntry {
    pub scope: CursorScope,
    pub value: String,
    pub updated_at: DateTime<Utc>,
}

/// Moves a cursor; `None` forgets it, so the next pass reads that scope from the start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorAdvance {
    pub scope: CursorScope,
    pub value: Option<String>,
}

/// Names one pair by both its ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PairKey {
    pub kind: ItemKind,
    pub crm_id: CrmId,
    pub exchange_id: ExchangeId,
}

/// Names one record on one side.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ItemRef {
    pub kind: ItemKind,
    pub id: ItemId,
}

/// A conflict the planner settled in this pass, to keep for the admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictEntry {
    pub kind: ItemKind,
    pub crm_id: CrmId,
    pub exchange_id: ExchangeId,
    pub conflict: Conflict,
}

/// A record this pass could not sync, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnresolvedReport {
    pub kind: ItemKind,
    pub id: ItemId,
    pub reason: String,
}

/// A write exsync made to the CRM: the record id and the SystemModstamp it produced. Changes
/// carrying a modstamp found here are our own echo and are not synced back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmWrite {
    pub crm_id: CrmId,
    pub system_modstamp: String,
    pub kind: ItemKind,
    pub user: Option<UserKey>,
    pub written_at: DateTime<Utc>,
}

/// What a pass did, as counted by the executor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
    pub conflicts: u64,
    pub failures: u64,
}

/// Everything one user's pass changes in the store. [`crate::SyncState::commit_pass`] applies
/// it in one transaction: mappings, cursors and logs advance together or not at all.
///
/// Order of application: removals, then upserts (so a pair can be re-linked by removing the
/// old pair and upserting the new one), cursors, unresolved items (items that synced are
/// cleared first, then new reports recorded), the run row with its conflicts, echo writes,
/// and the user's last-pass summary and pause flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassCommit {
    pub user: UserKey,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    /// Pairs to write. An upsert replaces the existing pair that holds its CRM id or its
    /// Exchange id; one that would touch two existing pairs is refused.
    pub upserts: Vec<SyncedPair>,
    /// Pairs to forget. Removing a pair that is not there is not an error (a retried pass).
    pub removals: Vec<PairKey>,
    pub cursors: Vec<CursorAdvance>,
    pub conflicts: Vec<ConflictEntry>,
    pub unresolved: Vec<UnresolvedReport>,
    /// Items that are no longer failing although they were not upserted or removed.
    pub resolved: Vec<ItemRef>,
    pub crm_writes: Vec<CrmWrite>,
    pub counts: RunCounts,
    /// Why the pass failed as a whole, if it did.
    pub error: Option<String>,
    /// Pause the user with this reason (the mass-delete safety valve).
    pub pause: Option<String>,
    /// One slice of a pass too large to commit at once: pairs, cursors, unresolved items and
    /// echo writes are applied, but no run is recorded; the pass's last commit records it.
    #[serde(default)]
    pub partial: bool,
    /// Journaled writes (see [`Intent`]) whose outcome this commit stores: they leave the
    /// journal in the same transaction, so a write is always either journaled or settled.
    #[serde(default)]
    pub settled_intents: Vec<i64>,
}

impl PassCommit {
    /// An empty commit: recording it only adds a run row.
    pub fn new(user: UserKey, started: DateTime<Utc>, finished: DateTime<Utc>) -> Self {
        PassCommit {
            user,
            started,
            finished,
            upserts: Vec::new(),
            removals: Vec::new(),
            cursors: Vec::new(),
            conflicts: Vec::new(),
            unresolved: Vec::new(),
            resolved: Vec::new(),
            crm_writes: Vec::new(),
            counts: RunCounts::default(),
            error: None,
            pause: None,
            partial: false,
            settled_intents: Vec::new(),
        }
    }
}

/// What a committed pass changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitReceipt {
    /// The run recorded; 0 for a partial commit, which records none.
    pub run_id: i64,
    pub pairs_written: u64,
    pub pairs_removed: u64,
    pub cursors_changed: u64,
}

/// One recorded pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: i64,
    pub user: UserKey,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub counts: RunCounts,
    pub error: Option<String>,
}

/// Why and since when a user is paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub reason: String,
    pub since: DateTime<Utc>,
}

/// A user's status as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserStatus {
    pub user: UserKey,
    pub paused: Option<Pause>,
    pub last_run: Option<RunRecord>,
    pub contact_pairs: u64,
    pub event_pairs: u64,
    pub unresolved: u64,
}

/// A record that keeps failing to sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnresolvedItem {
    pub kind: ItemKind,
    pub id: ItemId,
    pub reason: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// How many passes reported it.
    pub occurrences: u64,
}

/// A CRM user a pass leaves out, and why: an address that cannot name a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmUserSkip {
    pub crm_id: CrmId,
    /// The address as the CRM holds it, cut to [`SKIPPED_ADDRESS_MAX`] characters. It may
    /// hold anything a CRM admin typed: escape it wherever it is shown.
    pub address: String,
    pub reason: String,
}

/// The most of a skipped user's address that is kept: more than any valid address has.
pub const SKIPPED_ADDRESS_MAX: usize = 320;

/// A CRM user left out of the sync, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedCrmUser {
    pub crm_id: CrmId,
    /// See [`CrmUserSkip::address`]: escape it wherever it is shown.
    pub address: String,
    pub reason: String,
    /// The first pass that left the user out, of those in a row up to the last.
    pub first_seen: DateTime<Utc>,
    /// The last pass that did.
    pub last_seen: DateTime<Utc>,
}

/// A logged conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictRecord {
    pub id: i64,
    pub run_id: i64,
    pub user: UserKey,
    pub at: DateTime<Utc>,
    pub kind: ItemKind,
    pub crm_id: CrmId,
    pub exchange_id: ExchangeId,
    pub conflict: Conflict,
}

/// What Reset Sync removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetCounts {
    pub pairs: u64,
    pub cursors: u64,
    pub was_paused: bool,
}

/// A write a pass is about to make, journaled before it goes out (see
/// [`crate::SyncState::journal_intents`]). After a crash the next pass finds it still there and
/// settles it by evidence: the copy a create made is found by its tag and paired with the
/// content the create wrote, so a later edit on either side is a one-sided change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The journal's own number for the write, which a commit names to settle it.
    pub id: i64,
    pub user: UserKey,
    pub kind: ItemKind,
    /// The write as planned: an `Op::Create`, `Op::Update` or `Op::Delete`.
    pub op: Op,
    /// Whether the write was handed to its side's connector. An intent never sent cannot have
    /// written anything; one sent may have, whatever the pass heard back.
    pub sent: bool,
    pub journaled_at: DateTime<Utc>,
}
