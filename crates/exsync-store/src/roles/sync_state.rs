//! What the sync engine keeps between passes.

use chrono::{DateTime, Utc};
use exsync_core::plan::{Op, SyncedPair};
use exsync_core::{CrmId, ExchangeId, ItemId, ItemKind, UserKey};

use crate::error::StoreResult;
use crate::types::{
    CommitReceipt, ConflictRecord, CrmUserSkip, CrmWrite, CursorAdvance, CursorEntry, CursorScope,
    Intent, MailboxRoute, PairLink, PassCommit, ResetCounts, RunRecord, SkippedCrmUser,
    UnmatchedUser, UnresolvedItem, UserStatus,
};

/// The sync state: linked pairs (the merge base), change cursors, per-user status and pass
/// history, unresolved items, conflicts, the CRM users left out, the CRM echo log, and the
/// console settings the engine obeys, such as the switch that turns sync off. (Exchange calls
/// a folder's change token its SyncState; here that is one kind of cursor.)
///
/// The sync engine reads and commits it pass by pass. `exsync status`, `exsync reset` and the
/// console's status pages read the same state and apply Reset Sync and pauses to it, so they
/// use this role too.
pub trait SyncState: Send + Sync {
    // ---- pairs and cursors ------------------------------------------------------------

    /// The last-synced pairs of one user and kind, ordered by CRM id.
    fn load_pairs(&self, user: &UserKey, kind: ItemKind) -> StoreResult<Vec<SyncedPair>>;

    /// Up to `limit` of the user's pairs after `after`, ordered by CRM id: a pass that must
    /// visit every pair pages through them rather than load them all.
    fn pairs_page(
        &self,
        user: &UserKey,
        kind: ItemKind,
        after: Option<&CrmId>,
        limit: usize,
    ) -> StoreResult<Vec<SyncedPair>>;

    /// [`Self::pairs_page`] without the content: the ids of up to `limit` pairs after `after`,
    /// ordered by CRM id, for a pass that only asks which records are synced.
    fn pair_ids_page(
        &self,
        user: &UserKey,
        kind: ItemKind,
        after: Option<&CrmId>,
        limit: usize,
    ) -> StoreResult<Vec<(CrmId, ExchangeId)>>;

    /// The pairs holding any of these records, each once, ordered by CRM id.
    fn pairs_of(
        &self,
        user: &UserKey,
        kind: ItemKind,
        ids: &[ItemId],
    ) -> StoreResult<Vec<SyncedPair>>;

    /// [`Self::pairs_of`] without the content: which pair holds each of these records and the
    /// Exchange version it last synced, each pair once, ordered by CRM id. Cheap enough for an
    /// echo pass, which lists every item the last pass wrote.
    fn pair_links(
        &self,
        user: &UserKey,
        kind: ItemKind,
        ids: &[ItemId],
    ) -> StoreResult<Vec<PairLink>>;

    /// How many pairs of this kind the user has.
    fn pair_count(&self, user: &UserKey, kind: ItemKind) -> StoreResult<u64>;

    /// The pair holding `id` on its side, if any.
    fn find_pair(
        &self,
        user: &UserKey,
        kind: ItemKind,
        id: &ItemId,
    ) -> StoreResult<Option<SyncedPair>>;

    /// For each of these CRM records, the users holding a pair for it: a CRM delete carries
    /// no owner, so this is how it reaches the mailboxes that hold a copy.
    fn crm_pair_users(
        &self,
        kind: ItemKind,
        crm_ids: &[CrmId],
    ) -> StoreResult<Vec<(CrmId, UserKey)>>;

    /// The value of one cursor; `None` when none is stored, and then the pass reads that scope
    /// from the start.
    fn cursor(&self, scope: &CursorScope) -> StoreResult<Option<String>>;

    /// Every stored cursor, org-wide ones first.
    fn list_cursors(&self) -> StoreResult<Vec<CursorEntry>>;

    // ---- committing -------------------------------------------------------------------

    /// Applies one pass in a single transaction (see [`PassCommit`] for the order). A commit
    /// that would put one record in two pairs, move another user's cursor or is otherwise
    /// malformed is refused and writes nothing.
    fn commit_pass(&self, commit: &PassCommit) -> StoreResult<CommitReceipt>;

    // ---- the intent journal -------------------------------------------------------------

    /// Journals writes (`Op::Create`, `Op::Update`, `Op::Delete`) the user's pass is about to
    /// make, in one transaction, before any of them goes out; returns their ids in order. A
    /// commit naming them in [`PassCommit::settled_intents`] removes them.
    fn journal_intents(
        &self,
        user: &UserKey,
        kind: ItemKind,
        ops: &[&Op],
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<i64>>;

    /// Records that these journaled writes were handed to their side, just before they are.
    fn mark_intents_sent(&self, ids: &[i64]) -> StoreResult<()>;

    /// Records the id each journaled create's side answered with, as soon as it answers and
    /// before the commit that settles it: a crash in between leaves recovery knowing the copy
    /// was made, so a copy gone since counts as deleted rather than never made. Ids no longer
    /// journaled are ignored.
    fn mark_intents_answered(&self, answers: &[(i64, ItemId)]) -> StoreResult<()>;

    /// The user's journaled writes of one kind that no commit has settled, oldest first:
    /// after a crash, what the next pass must settle before it plans.
    fn intents(&self, user: &UserKey, kind: ItemKind) -> StoreResult<Vec<Intent>>;

    /// Moves org-wide CRM cursors (only those), in one transaction. The service calls it once
    /// every user's pass covering the changes is committed.
    fn advance_org_cursors(
        &self,
        advances: &[CursorAdvance],
        at: DateTime<Utc>,
    ) -> StoreResult<u64>;

    /// Reset Sync: forgets the user's pairs, cursors and journaled writes so the next pass
    /// re-matches everything, and un-pauses the user. Nothing else (runs, logs, other users)
    /// changes.
    fn reset_user(&self, user: &UserKey) -> StoreResult<ResetCounts>;

    // ---- users ------------------------------------------------------------------------

    /// Registers a user with no state; a no-op for a known user.
    fn ensure_user(&self, user: &UserKey) -> StoreResult<()>;

    /// Pauses the user with a reason, or un-pauses with `None`.
    fn set_paused(&self, user: &UserKey, reason: Option<&str>) -> StoreResult<()>;

    /// The user's status; `None` for a user the store has never seen.
    fn user_status(&self, user: &UserKey) -> StoreResult<Option<UserStatus>>;

    /// Every known user, ordered by key.
    fn list_users(&self) -> StoreResult<Vec<UserStatus>>;

    /// The user's failing items, oldest first.
    fn unresolved(&self, user: &UserKey) -> StoreResult<Vec<UnresolvedItem>>;

    /// The user's last `limit` passes, newest first.
    fn runs(&self, user: &UserKey, limit: usize) -> StoreResult<Vec<RunRecord>>;

    /// The user's last `limit` conflicts, newest first.
    fn conflicts(&self, user: &UserKey, limit: usize) -> StoreResult<Vec<ConflictRecord>>;

    /// Replaces the list of CRM users left out of the sync (their address cannot name a
    /// mailbox) with those a pass found at `at`: users no longer in it are forgotten, those
    /// still in it keep the time they were first seen.
    fn record_skipped_crm_users(
        &self,
        skipped: &[CrmUserSkip],
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// The CRM users the last pass left out, by CRM id.
    fn skipped_crm_users(&self) -> StoreResult<Vec<SkippedCrmUser>>;

    /// Replaces the list of users a configuration assigns but no active CRM user pairs with,
    /// each with why, by those a pass found at `at`, as [`SyncState::record_skipped_crm_users`]
    /// does: users no longer in it are forgotten, the others keep when they were first seen.
    fn record_unmatched_users(
        &self,
        users: &[(UserKey, String)],
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// The users the last pass found assigned but unmatched, by address.
    fn unmatched_users(&self) -> StoreResult<Vec<UnmatchedUser>>;

    // ---- CRM echo log -----------------------------------------------------------------

    /// Records writes outside a pass commit (e.g. right after each batch, to narrow the
    /// window in which a crash loses them).
    fn record_crm_writes(&self, writes: &[CrmWrite]) -> StoreResult<()>;

    /// Whether this version of this record is one exsync wrote.
    fn is_own_crm_write(&self, crm_id: &CrmId, system_modstamp: &str) -> StoreResult<bool>;

    /// Writes recorded at or after `since`, oldest first.
    fn crm_writes_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<CrmWrite>>;

    /// Forgets writes recorded before `before`; returns how many.
    fn prune_crm_writes(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    // ---- settings -----------------------------------------------------------------------

    /// A console-managed setting that `exsync.toml` does not hold, as JSON. They live with the
    /// sync state because the engine reads them before every pass; the console writes them.
    fn setting(&self, name: &str) -> StoreResult<Option<serde_json::Value>>;

    /// Stores a setting, replacing the value it had. A blank name is refused with
    /// [`crate::StoreError::InvalidInput`].
    fn put_setting(
        &self,
        name: &str,
        value: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    // ---- mailbox routes -----------------------------------------------------------------

    /// Where the user's mailbox was last found, when its backend is located automatically.
    fn mailbox_route(&self, user: &UserKey) -> StoreResult<Option<MailboxRoute>>;

    /// Every stored route, by user, for status.
    fn mailbox_routes(&self) -> StoreResult<Vec<MailboxRoute>>;

    /// Stores where the mailbox was found, replacing the route it had (and its re-check mark);
    /// registers the user when new. Evidence longer than [`crate::ROUTE_TEXT_MAX`] is cut.
    fn put_mailbox_route(&self, route: &MailboxRoute) -> StoreResult<()>;

    /// Marks the user's route to be checked again before its next use, with why; does nothing
    /// when the user has none. Returns whether there was one.
    fn recheck_mailbox_route(&self, user: &UserKey, why: &str) -> StoreResult<bool>;
}
