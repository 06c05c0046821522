//! The sync state on SQLite. The work is done in the files for each area (pairs and cursors,
//! the pass commit, users, the echo log, settings); this only takes the connection for it.

use chrono::{DateTime, Utc};
use exsync_core::plan::{Op, SyncedPair};
use exsync_core::{CrmId, ExchangeId, ItemId, ItemKind, UserKey};

use super::{commit, echo, journal, routes, settings, state, users, SqliteStore};
use crate::error::StoreResult;
use crate::roles::SyncState;
use crate::types::{
    CommitReceipt, ConflictRecord, CrmUserSkip, CrmWrite, CursorAdvance, CursorEntry, CursorScope,
    Intent, MailboxRoute, PairLink, PassCommit, ResetCounts, RunRecord, SkippedCrmUser,
    UnmatchedUser, UnresolvedItem, UserStatus,
};

impl SyncState for SqliteStore {
    fn load_pairs(&self, user: &UserKey, kind: ItemKind) -> StoreResult<Vec<SyncedPair>> {
        state::load_pairs(&self.lock(), user, kind)
    }

    fn pairs_page(
        &self,
        user: &UserKey,
        kind: ItemKind,
        after: Option<&CrmId>,
        limit: usize,
    ) -> StoreResult<Vec<SyncedPair>> {
        state::pairs_page(&self.lock(), user, kind, after, limit)
    }

    fn pair_ids_page(
        &self,
        user: &UserKey,
        kind: ItemKind,
        after: Option<&CrmId>,
        limit: usize,
    ) -> StoreResult<Vec<(CrmId, ExchangeId)>> {
        state::pair_ids_page(&self.lock(), user, kind, after, limit)
    }

    fn pairs_of(
        &self,
        user: &UserKey,
        kind: ItemKind,
        ids: &[ItemId],
    ) -> StoreResult<Vec<SyncedPair>> {
        state::pairs_of(&self.lock(), user, kind, ids)
    }

    fn pair_links(
        &self,
        user: &UserKey,
        kind: ItemKind,
        ids: &[ItemId],
    ) -> StoreResult<Vec<PairLink>> {
        state::pair_links(&self.lock(), user, kind, ids)
    }

    fn pair_count(&self, user: &UserKey, kind: ItemKind) -> StoreResult<u64> {
        state::pair_count(&self.lock(), user, kind)
    }

    fn find_pair(
        &self,
        user: &UserKey,
        kind: ItemKind,
        id: &ItemId,
    ) -> StoreResult<Option<SyncedPair>> {
        state::find_pair(&self.lock(), user, kind, id)
    }

    fn crm_pair_users(
        &self,
        kind: ItemKind,
        crm_ids: &[CrmId],
    ) -> StoreResult<Vec<(CrmId, UserKey)>> {
        state::crm_pair_users(&self.lock(), kind, crm_ids)
    }

    fn cursor(&self, scope: &CursorScope) -> StoreResult<Option<String>> {
        state::cursor(&self.lock(), scope)
    }

    fn list_cursors(&self) -> StoreResult<Vec<CursorEntry>> {
        state::list_cursors(&self.lock())
    }

    fn commit_pass(&self, commit: &PassCommit) -> StoreResult<CommitReceipt> {
        commit::validate(commit)?;
        let mut conn = self.lock();
        commit::apply(&mut conn, commit, |step, conn| self.checkpoint(step, conn))
    }

    fn journal_intents(
        &self,
        user: &UserKey,
        kind: ItemKind,
        ops: &[&Op],
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<i64>> {
        journal::journal(&mut self.lock(), user, kind, ops, &at)
    }

    fn mark_intents_sent(&self, ids: &[i64]) -> StoreResult<()> {
        journal::mark_sent(&mut self.lock(), ids)
    }

    fn mark_intents_answered(&self, answers: &[(i64, ItemId)]) -> StoreResult<()> {
        journal::mark_answered(&mut self.lock(), answers)
    }

    fn intents(&self, user: &UserKey, kind: ItemKind) -> StoreResult<Vec<Intent>> {
        journal::outstanding(&self.lock(), user, kind)
    }

    fn advance_org_cursors(
        &self,
        advances: &[CursorAdvance],
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        commit::advance_org(&mut self.lock(), advances, &at)
    }

    fn reset_user(&self, user: &UserKey) -> StoreResult<ResetCounts> {
        users::reset_user(&mut self.lock(), user)
    }

    fn ensure_user(&self, user: &UserKey) -> StoreResult<()> {
        users::ensure_user(&self.lock(), user)
    }

    fn set_paused(&self, user: &UserKey, reason: Option<&str>) -> StoreResult<()> {
        users::set_paused(&self.lock(), user, reason)
    }

    fn user_status(&self, user: &UserKey) -> StoreResult<Option<UserStatus>> {
        users::user_status(&self.lock(), user)
    }

    fn list_users(&self) -> StoreResult<Vec<UserStatus>> {
        users::list_users(&self.lock())
    }

    fn unresolved(&self, user: &UserKey) -> StoreResult<Vec<UnresolvedItem>> {
        users::unresolved(&self.lock(), user)
    }

    fn runs(&self, user: &UserKey, limit: usize) -> StoreResult<Vec<RunRecord>> {
        users::runs(&self.lock(), user, limit)
    }

    fn conflicts(&self, user: &UserKey, limit: usize) -> StoreResult<Vec<ConflictRecord>> {
        users::conflicts(&self.lock(), user, limit)
    }

    fn record_skipped_crm_users(
        &self,
        skipped: &[CrmUserSkip],
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        users::record_skipped_crm_users(&mut self.lock(), skipped, &at)
    }

    fn skipped_crm_users(&self) -> StoreResult<Vec<SkippedCrmUser>> {
        users::skipped_crm_users(&self.lock())
    }

    fn record_unmatched_users(
        &self,
        unmatched: &[(UserKey, String)],
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        users::record_unmatched_users(&mut self.lock(), unmatched, &at)
    }

    fn unmatched_users(&self) -> StoreResult<Vec<UnmatchedUser>> {
        users::unmatched_users(&self.lock())
    }

    fn record_crm_writes(&self, writes: &[CrmWrite]) -> StoreResult<()> {
        echo::record(&mut self.lock(), writes)
    }

    fn is_own_crm_write(&self, crm_id: &CrmId, system_modstamp: &str) -> StoreResult<bool> {
        echo::is_own(&self.lock(), crm_id, system_modstamp)
    }

    fn crm_writes_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<CrmWrite>> {
        echo::since(&self.lock(), since)
    }

    fn prune_crm_writes(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        echo::prune(&self.lock(), before)
    }

    fn setting(&self, name: &str) -> StoreResult<Option<serde_json::Value>> {
        settings::setting(&self.lock(), name)
    }

    fn put_setting(
        &self,
        name: &str,
        value: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        settings::put_setting(&self.lock(), name, value, at)
    }

    fn mailbox_route(&self, user: &UserKey) -> StoreResult<Option<MailboxRoute>> {
        routes::mailbox_route(&self.lock(), user)
    }

    fn mailbox_routes(&self) -> StoreResult<Vec<MailboxRoute>> {
        routes::mailbox_routes(&self.lock())
    }

    fn put_mailbox_route(&self, route: &MailboxRoute) -> StoreResult<()> {
        routes::put_mailbox_route(&self.lock(), route)
    }

    fn recheck_mailbox_route(&self, user: &UserKey, why: &str) -> StoreResult<bool> {
        routes::recheck_mailbox_route(&self.lock(), user, why)
    }
}
