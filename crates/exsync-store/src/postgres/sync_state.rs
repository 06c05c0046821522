//! The sync state on PostgreSQL. The work is done in the files for each area; this takes a
//! pooled connection for it.

use chrono::{DateTime, Utc};
use exsync_core::plan::{Op, SyncedPair};
use exsync_core::{CrmId, ExchangeId, ItemId, ItemKind, UserKey};

use super::{commit, echo, routes, state, users, PgStore};
use crate::error::StoreResult;
use crate::roles::{LeaseScope, SyncState, ORG_CRM_READ};
use crate::types::{
    CommitReceipt, ConflictRecord, CrmUserSkip, CrmWrite, CursorAdvance, CursorEntry, CursorScope,
    Intent, MailboxRoute, PairLink, PassCommit, ResetCounts, RunRecord, SkippedCrmUser,
    UnmatchedUser, UnresolvedItem, UserStatus,
};

impl SyncState for PgStore {
    fn load_pairs(&self, user: &UserKey, kind: ItemKind) -> StoreResult<Vec<SyncedPair>> {
        self.with("load pairs", |c| state::load_pairs(c, user, kind))
    }

    fn pairs_page(
        &self,
        user: &UserKey,
        kind: ItemKind,
        after: Option<&CrmId>,
        limit: usize,
    ) -> StoreResult<Vec<SyncedPair>> {
        self.with("pairs page", |c| {
            state::pairs_page(c, user, kind, after, limit)
        })
    }

    fn pair_ids_page(
        &self,
        user: &UserKey,
        kind: ItemKind,
        after: Option<&CrmId>,
        limit: usize,
    ) -> StoreResult<Vec<(CrmId, ExchangeId)>> {
        self.with("pair ids page", |c| {
            state::pair_ids_page(c, user, kind, after, limit)
        })
    }

    fn pairs_of(
        &self,
        user: &UserKey,
        kind: ItemKind,
        ids: &[ItemId],
    ) -> StoreResult<Vec<SyncedPair>> {
        self.with("pairs of", |c| state::pairs_of(c, user, kind, ids))
    }

    fn pair_links(
        &self,
        user: &UserKey,
        kind: ItemKind,
        ids: &[ItemId],
    ) -> StoreResult<Vec<PairLink>> {
        self.with("pair links", |c| state::pair_links(c, user, kind, ids))
    }

    fn pair_count(&self, user: &UserKey, kind: ItemKind) -> StoreResult<u64> {
        self.with("pair count", |c| state::pair_count(c, user, kind))
    }

    fn find_pair(
        &self,
        user: &UserKey,
        kind: ItemKind,
        id: &ItemId,
    ) -> StoreResult<Option<SyncedPair>> {
        self.with("find pair", |c| state::find_pair(c, user, kind, id))
    }

    fn crm_pair_users(
        &self,
        kind: ItemKind,
        crm_ids: &[CrmId],
    ) -> StoreResult<Vec<(CrmId, UserKey)>> {
        self.with("crm pair users", |c| {
            state::crm_pair_users(c, kind, crm_ids)
        })
    }

    fn cursor(&self, scope: &CursorScope) -> StoreResult<Option<String>> {
        self.with("cursor", |c| state::cursor(c, scope))
    }

    fn list_cursors(&self) -> StoreResult<Vec<CursorEntry>> {
        self.with("list cursors", state::list_cursors)
    }

    fn commit_pass(&self, commit: &PassCommit) -> StoreResult<CommitReceipt> {
        let fence = self.held.fence(&LeaseScope::User(commit.user.clone()));
        self.with("commit pass", |c| commit::commit(c, commit, &fence))
    }

    fn journal_intents(
        &self,
        user: &UserKey,
        kind: ItemKind,
        ops: &[&Op],
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<i64>> {
        let fence = self.held.fence(&LeaseScope::User(user.clone()));
        self.with("journal intents", |c| {
            echo::journal(c, user, kind, ops, &at, &fence)
        })
    }

    fn mark_intents_sent(&self, ids: &[i64]) -> StoreResult<()> {
        self.with("mark intents sent", |c| {
            echo::mark_sent(c, ids, &|user| {
                self.held.fence(&LeaseScope::User(user.clone()))
            })
        })
    }

    fn mark_intents_answered(&self, answers: &[(i64, ItemId)]) -> StoreResult<()> {
        self.with("mark intents answered", |c| {
            echo::mark_answered(c, answers, &|user| {
                self.held.fence(&LeaseScope::User(user.clone()))
            })
        })
    }

    fn intents(&self, user: &UserKey, kind: ItemKind) -> StoreResult<Vec<Intent>> {
        self.with("intents", |c| echo::outstanding(c, user, kind))
    }

    fn advance_org_cursors(
        &self,
        advances: &[CursorAdvance],
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let fence = self.held.fence(&LeaseScope::Org(ORG_CRM_READ.to_owned()));
        self.with("advance org cursors", |c| {
            commit::advance_org(c, advances, &at, &fence)
        })
    }

    fn reset_user(&self, user: &UserKey) -> StoreResult<ResetCounts> {
        self.with("reset user", |c| users::reset_user(c, user))
    }

    fn ensure_user(&self, user: &UserKey) -> StoreResult<()> {
        self.with("ensure user", |c| users::ensure_user(c, user))
    }

    fn set_paused(&self, user: &UserKey, reason: Option<&str>) -> StoreResult<()> {
        self.with("set paused", |c| users::set_paused(c, user, reason))
    }

    fn user_status(&self, user: &UserKey) -> StoreResult<Option<UserStatus>> {
        self.with("user status", |c| users::user_status(c, user))
    }

    fn list_users(&self) -> StoreResult<Vec<UserStatus>> {
        self.with("list users", users::list_users)
    }

    fn unresolved(&self, user: &UserKey) -> StoreResult<Vec<UnresolvedItem>> {
        self.with("unresolved", |c| users::unresolved(c, user))
    }

    fn runs(&self, user: &UserKey, limit: usize) -> StoreResult<Vec<RunRecord>> {
        self.with("runs", |c| users::runs(c, user, limit))
    }

    fn conflicts(&self, user: &UserKey, limit: usize) -> StoreResult<Vec<ConflictRecord>> {
        self.with("conflicts", |c| users::conflicts(c, user, limit))
    }

    fn record_skipped_crm_users(
        &self,
        skipped: &[CrmUserSkip],
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.with("record skipped crm users", |c| {
            users::record_skipped_crm_users(c, skipped, &at)
        })
    }

    fn skipped_crm_users(&self) -> StoreResult<Vec<SkippedCrmUser>> {
        self.with("skipped crm users", users::skipped_crm_users)
    }

    fn record_unmatched_users(
        &self,
        unmatched: &[(UserKey, String)],
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.with("record unmatched users", |c| {
            users::record_unmatched_users(c, unmatched, &at)
        })
    }

    fn unmatched_users(&self) -> StoreResult<Vec<UnmatchedUser>> {
        self.with("unmatched users", users::unmatched_users)
    }

    fn record_crm_writes(&self, writes: &[CrmWrite]) -> StoreResult<()> {
        self.with("record crm writes", |c| {
            echo::record(c, writes, &|user| {
                self.held.fence(&LeaseScope::User(user.clone()))
            })
        })
    }

    fn is_own_crm_write(&self, crm_id: &CrmId, system_modstamp: &str) -> StoreResult<bool> {
        self.with("is own crm write", |c| {
            echo::is_own(c, crm_id, system_modstamp)
        })
    }

    fn crm_writes_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<CrmWrite>> {
        self.with("crm writes since", |c| echo::since(c, since))
    }

    fn prune_crm_writes(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.with("prune crm writes", |c| echo::prune(c, before))
    }

    fn setting(&self, name: &str) -> StoreResult<Option<serde_json::Value>> {
        self.with("setting", |c| echo::setting(c, name))
    }

    fn put_setting(
        &self,
        name: &str,
        value: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.with("put setting", |c| echo::put_setting(c, name, value, at))
    }

    fn mailbox_route(&self, user: &UserKey) -> StoreResult<Option<MailboxRoute>> {
        self.with("mailbox route", |c| routes::mailbox_route(c, user))
    }

    fn mailbox_routes(&self) -> StoreResult<Vec<MailboxRoute>> {
        self.with("mailbox routes", routes::mailbox_routes)
    }

    fn put_mailbox_route(&self, route: &MailboxRoute) -> StoreResult<()> {
        self.with("put mailbox route", |c| routes::put_mailbox_route(c, route))
    }

    fn recheck_mailbox_route(&self, user: &UserKey, why: &str) -> StoreResult<bool> {
        self.with("recheck mailbox route", |c| {
            routes::recheck_mailbox_route(c, user, why)
        })
    }
}
