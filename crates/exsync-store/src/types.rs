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
    Folder {
        /// The mailbox's user; only that user's pass may move the cursor.
        user: UserKey,
        /// Which synced folder, by the name the engine gives it (the record kind, such as
        /// `contact`); never empty.
        folder: String,
    },
    /// The org-wide CRM watermark of one object (e.g. `Contact`, `Event`).
    CrmObject {
        /// The CRM object's API name; never empty. Its cursor covers every user's records.
        object: String,
    },
}

impl CursorScope {
    /// The cursor of one synced folder of `user`'s mailbox, named by `folder` (see
    /// [`CursorScope::Folder`]).
    pub fn folder(user: &UserKey, folder: impl Into<String>) -> Self {
        CursorScope::Folder {
            user: user.clone(),
            folder: folder.into(),
        }
    }

    /// The org-wide cursor of one CRM object, such as `Contact`.
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
    /// Which cursor this is.
    pub scope: CursorScope,
    /// The token the side handed out (an Exchange SyncState or a CRM watermark). Only the
    /// connector that issued it reads it; the store keeps it as opaque text.
    pub value: String,
    /// When a commit last moved it: the end of that pass, or the time given to
    /// [`crate::SyncState::advance_org_cursors`].
    pub updated_at: DateTime<Utc>,
}

/// Moves a cursor; `None` forgets it, so the next pass reads that scope from the start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorAdvance {
    /// The cursor to move. A pass commit may move only its own user's folder cursors and
    /// org-wide ones, each at most once.
    pub scope: CursorScope,
    /// The new token, or `None` to forget the cursor.
    pub value: Option<String>,
}

/// Names one pair by both its ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PairKey {
    /// Whether the pair links contacts or events.
    pub kind: ItemKind,
    /// The CRM record of the pair. A removal matches only a pair holding both ids, so a pair
    /// re-linked since is left alone.
    pub crm_id: CrmId,
    /// The Exchange item of the pair.
    pub exchange_id: ExchangeId,
}

/// Names one record on one side.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ItemRef {
    /// Whether the record is a contact or an event.
    pub kind: ItemKind,
    /// The record's id; its variant says which side it is on.
    pub id: ItemId,
}

/// A conflict the planner settled in this pass, to keep for the admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictEntry {
    /// Whether the pair links contacts or events.
    pub kind: ItemKind,
    /// The CRM record of the pair the conflict was on.
    pub crm_id: CrmId,
    /// The Exchange item of the pair the conflict was on.
    pub exchange_id: ExchangeId,
    /// The field, the value on each side and which side won.
    pub conflict: Conflict,
    /// The pair's name (see `exsync_core::record_name`), shown next to its ids; `None` when
    /// unknown. It comes from outside: encode it wherever it is shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A record this pass could not sync, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnresolvedReport {
    /// Whether the record is a contact or an event.
    pub kind: ItemKind,
    /// The failing record, on whichever side it is.
    pub id: ItemId,
    /// Why it failed, in words for the admin. It replaces the reason an earlier pass gave for
    /// the same record.
    pub reason: String,
    /// The record's name as the pass saw it (see `exsync_core::record_name`), shown next to
    /// the id; `None` when the pass did not have the record's content. It comes from outside:
    /// the store cuts it to `exsync_core::NAME_MAX` characters, and it is encoded wherever it
    /// is shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A write exsync made to the CRM: the record id and the SystemModstamp it produced. Changes
/// carrying a modstamp found here are our own echo and are not synced back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmWrite {
    /// The CRM record written.
    pub crm_id: CrmId,
    /// The SystemModstamp the record got from this write, as the CRM returned it; a change
    /// matches only with exactly the same text.
    pub system_modstamp: String,
    /// Whether the record is a contact or an event.
    pub kind: ItemKind,
    /// The user whose pass made the write, if any. In a pass commit it must be that pass's user
    /// or `None`, and the pass's user is what gets stored.
    pub user: Option<UserKey>,
    /// When the write was made. [`crate::SyncState::crm_writes_since`] and
    /// [`crate::SyncState::prune_crm_writes`] go by it.
    pub written_at: DateTime<Utc>,
}

/// What a pass did, as counted by the executor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    /// Records the pass created, on either side.
    pub created: u64,
    /// Records the pass updated, on either side.
    pub updated: u64,
    /// Records the pass deleted, on either side.
    pub deleted: u64,
    /// Conflicts the planner settled in the pass, one per field.
    pub conflicts: u64,
    /// Records the pass could not sync; each is also reported as unresolved.
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
    /// The user whose pass this is. Every folder cursor and echo-log entry in the commit must
    /// be theirs; an unknown user is registered.
    pub user: UserKey,
    /// When the pass began.
    pub started: DateTime<Utc>,
    /// When the pass ended; it must not be before `started`. It stamps every row the commit
    /// writes (pairs, cursors, unresolved items, conflicts).
    pub finished: DateTime<Utc>,
    /// Pairs to write. An upsert replaces the existing pair that holds its CRM id or its
    /// Exchange id; one that would touch two existing pairs is refused.
    pub upserts: Vec<SyncedPair>,
    /// Pairs to forget. Removing a pair that is not there is not an error (a retried pass).
    pub removals: Vec<PairKey>,
    /// Cursors to move: the user's own folder cursors and org-wide CRM ones, each at most once.
    pub cursors: Vec<CursorAdvance>,
    /// Conflicts the planner settled, logged with the run; a partial commit cannot carry any.
    pub conflicts: Vec<ConflictEntry>,
    /// Records that failed in this pass. One already listed gets the new reason and last-seen
    /// time and its count goes up.
    pub unresolved: Vec<UnresolvedReport>,
    /// Items that are no longer failing although they were not upserted or removed.
    pub resolved: Vec<ItemRef>,
    /// CRM writes the pass made, added to the echo log so the next read of the CRM skips them.
    pub crm_writes: Vec<CrmWrite>,
    /// What the pass did, stored in its run row. A partial commit's counts are not stored; the
    /// last commit of the pass carries them all.
    pub counts: RunCounts,
    /// Why the pass failed as a whole, if it did.
    pub error: Option<String>,
    /// Pause the user with this reason (the mass-delete safety valve).
    pub pause: Option<String>,
    /// What the pass noticed, stored with its run (at most [`MAX_NOTICES`]).
    #[serde(default)]
    pub notices: Vec<Notice>,
    /// The mailbox backend that served the pass (`ews`, `graph`), stored with its run.
    #[serde(default)]
    pub backend: Option<String>,
    /// The configuration the pass synced the user by, and how it came to apply, stored with
    /// its run so status can say "sales, via group Sales User".
    #[serde(default)]
    pub assignment: Option<RunAssignment>,
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
            notices: Vec::new(),
            backend: None,
            assignment: None,
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
    /// How many pairs were inserted or replaced: every upsert counts once.
    pub pairs_written: u64,
    /// How many pairs were removed; a removal of a pair already gone does not count.
    pub pairs_removed: u64,
    /// How many cursors were set or forgotten; forgetting one that was not stored does not
    /// count.
    pub cursors_changed: u64,
}

/// One recorded pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's number. It grows with every run, so a higher one is newer; conflicts name
    /// their run by it.
    pub id: i64,
    /// The user whose pass it was.
    pub user: UserKey,
    /// When the pass began.
    pub started: DateTime<Utc>,
    /// When the pass ended.
    pub finished: DateTime<Utc>,
    /// What the pass did, as its last commit reported it.
    pub counts: RunCounts,
    /// Why the pass failed as a whole; `None` when it ran to the end.
    pub error: Option<String>,
    /// What the pass noticed that the admin should know, though nothing failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<Notice>,
    /// The mailbox backend that served the pass (`ews`, `graph`); `None` for runs stored before
    /// backends were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The configuration the pass synced the user by, and the group that brought it; `None`
    /// for runs stored before assignments were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<RunAssignment>,
}

/// The configuration a pass synced its user by, and how it came to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAssignment {
    /// The configuration's name.
    pub configuration: String,
    /// The CRM profile (group) that assigned it; `None` when the user is listed by address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// Something a pass noticed that the admin should know although no record failed: a sync folder
/// the user deleted and the pass made again, say. Stored with the run, shown by `exsync status`
/// and the console, counted in the metrics by `code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// A stable name for what happened (`sync_folder_replaced`), for metrics and filters.
    pub code: String,
    /// What happened, for the admin.
    pub message: String,
    /// What the admin can do about it, or why nothing needs doing.
    pub fix: String,
}

/// The most notices one run keeps: a backend that notices the same thing for every item must not
/// grow a run row without bound.
pub const MAX_NOTICES: usize = 20;

/// Why and since when a user is paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// Why: what the admin typed, or what the pass that tripped the mass-delete valve said.
    pub reason: String,
    /// When the user was paused. Pausing an already paused user again changes the reason but
    /// keeps this time.
    pub since: DateTime<Utc>,
}

/// A user's status as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserStatus {
    /// Whose status this is.
    pub user: UserKey,
    /// Set while the user is paused; the service runs no pass for a paused user.
    pub paused: Option<Pause>,
    /// The user's last recorded pass; `None` before the first one ends. Partial commits record
    /// no run.
    pub last_run: Option<RunRecord>,
    /// How many contact pairs the user has.
    pub contact_pairs: u64,
    /// How many event pairs the user has.
    pub event_pairs: u64,
    /// How many of the user's records are failing to sync now.
    pub unresolved: u64,
}

impl UserStatus {
    /// The state the user is in, as status and the console name it: `paused`, `failing` (the
    /// last pass failed), `syncing`, or `new` (no pass has ended yet).
    pub fn state(&self) -> &'static str {
        match (&self.paused, &self.last_run) {
            (Some(_), _) => "paused",
            (None, None) => "new",
            (None, Some(run)) if run.error.is_some() => "failing",
            (None, Some(_)) => "syncing",
        }
    }
}

/// A record that keeps failing to sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnresolvedItem {
    /// Whether the record is a contact or an event.
    pub kind: ItemKind,
    /// The failing record, on whichever side it is.
    pub id: ItemId,
    /// Why it failed, as the last pass that reported it said.
    pub reason: String,
    /// When a pass first reported it, since it last synced.
    pub first_seen: DateTime<Utc>,
    /// When a pass last reported it.
    pub last_seen: DateTime<Utc>,
    /// How many passes reported it.
    pub occurrences: u64,
    /// The record's name as the last pass that knew it said (an earlier one is kept when a
    /// later pass had only the id); `None` when no pass did. Encode it wherever it is shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A CRM user a pass leaves out, and why: an address that cannot name a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmUserSkip {
    /// The CRM user's id; it must not be empty.
    pub crm_id: CrmId,
    /// The address as the CRM holds it, cut to [`SKIPPED_ADDRESS_MAX`] characters. It may
    /// hold anything a CRM admin typed: escape it wherever it is shown.
    pub address: String,
    /// Why the address cannot name a mailbox, for the admin.
    pub reason: String,
}

/// The most of a skipped user's address that is kept: more than any valid address has.
pub const SKIPPED_ADDRESS_MAX: usize = 320;

/// A CRM user left out of the sync, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedCrmUser {
    /// The CRM user's id.
    pub crm_id: CrmId,
    /// See [`CrmUserSkip::address`]: escape it wherever it is shown.
    pub address: String,
    /// Why the last pass left the user out.
    pub reason: String,
    /// The first pass that left the user out, of those in a row up to the last.
    pub first_seen: DateTime<Utc>,
    /// The last pass that did.
    pub last_seen: DateTime<Utc>,
}

/// A user a configuration assigns whom no active CRM user pairs with, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmatchedUser {
    /// The mailbox address the configuration names.
    pub user: UserKey,
    /// Why the last pass could not sync them, for the admin.
    pub reason: String,
    /// The first pass that found them unmatched, of those in a row up to the last.
    pub first_seen: DateTime<Utc>,
    /// The last pass that did.
    pub last_seen: DateTime<Utc>,
}

/// A logged conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictRecord {
    /// The log's own number for the entry; a higher one is newer.
    pub id: i64,
    /// The run that settled the conflict.
    pub run_id: i64,
    /// The user whose pass settled it.
    pub user: UserKey,
    /// When that pass ended.
    pub at: DateTime<Utc>,
    /// Whether the pair links contacts or events.
    pub kind: ItemKind,
    /// The CRM record of the pair the conflict was on.
    pub crm_id: CrmId,
    /// The Exchange item of the pair the conflict was on.
    pub exchange_id: ExchangeId,
    /// The field, the value on each side and which side won.
    pub conflict: Conflict,
    /// The pair's name (see `exsync_core::record_name`), shown next to its ids; `None` when
    /// unknown. It comes from outside: encode it wherever it is shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What Reset Sync removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetCounts {
    /// How many of the user's pairs were forgotten.
    pub pairs: u64,
    /// How many of the user's folder cursors were forgotten. Org-wide CRM cursors are shared by
    /// every user and stay.
    pub cursors: u64,
    /// Whether the user was paused; the reset lifted the pause.
    pub was_paused: bool,
}

/// Which pair holds a record, and the Exchange version it last synced, without its content: all
/// a listing needs to tell our own writes coming back from real changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairLink {
    /// The pair's CRM record.
    pub crm_id: CrmId,
    /// The pair's Exchange item.
    pub exchange_id: ExchangeId,
    /// The Exchange item's version (ChangeKey) when it last synced.
    pub exchange_version: Option<String>,
}

/// A write a pass is about to make, journaled before it goes out (see
/// [`crate::SyncState::journal_intents`]). After a crash the next pass finds it still there and
/// settles it by evidence: the copy a create made is found by its tag and paired with the
/// content the create wrote, so a later edit on either side is a one-sided change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The journal's own number for the write, which a commit names to settle it.
    pub id: i64,
    /// The user whose pass journaled the write; that user's next pass settles it.
    pub user: UserKey,
    /// Whether the write is to a contact or an event.
    pub kind: ItemKind,
    /// The write as planned: an `Op::Create`, `Op::Update` or `Op::Delete`.
    pub op: Op,
    /// Whether the write was handed to its side's connector. An intent never sent cannot have
    /// written anything; one sent may have, whatever the pass heard back.
    pub sent: bool,
    /// When the pass journaled the write. Recovery searches for copies made since the earliest
    /// open intent, so this bounds how far back it looks.
    pub journaled_at: DateTime<Utc>,
    /// For a create, the id of the copy its side answered with, stored as soon as the side
    /// answered (see [`crate::SyncState::mark_intents_answered`]): the copy was made, so one
    /// missing since was deleted, not never made.
    pub answered: Option<ItemId>,
}

impl Intent {
    /// The id a create's side answered with, stored as `text`, on the side the create wrote
    /// to. Only creates are answered; anything else stored for another write is left out.
    pub(crate) fn answer_of(op: &Op, text: Option<String>) -> Option<ItemId> {
        match op {
            Op::Create { on, .. } => text.map(|id| match on {
                exsync_core::Side::Crm => ItemId::Crm(CrmId::new(id)),
                exsync_core::Side::Exchange => ItemId::Exchange(ExchangeId::new(id)),
            }),
            _ => None,
        }
    }
}

/// Where the service last found a mailbox whose backend is located automatically (`auto`):
/// the answer is reused until it is due to be checked again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxRoute {
    /// Whose mailbox.
    pub user: UserKey,
    /// The backend that serves it: `ews` or `graph`.
    pub backend: String,
    /// What said so, for the admin: the routing address Autodiscover redirected to, or the
    /// EWS URL it answered with.
    pub evidence: String,
    /// When it was found.
    pub checked_at: DateTime<Utc>,
    /// Set when the answer must be checked again before it is used (the mailbox was not found
    /// through that backend), with why.
    pub recheck: Option<String>,
}

/// The most of a route's evidence or re-check reason kept; the rest is cut.
pub const ROUTE_TEXT_MAX: usize = 1000;
