//! Leases on SQLite: one process holds the file, so it holds every lease, and nothing is
//! stored or checked for them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use exsync_core::UserKey;

use super::SqliteStore;
use crate::error::{StoreError, StoreResult};
use crate::roles::{InboxEntry, Lease, LeaseInfo, LeaseScope, Leases, RoutedChange};
use crate::types::CursorAdvance;

fn granted(scope: LeaseScope, holder: &str, ttl: Duration) -> Lease {
    Lease {
        scope,
        holder: holder.to_owned(),
        epoch: 1,
        expires_at: Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX),
    }
}

impl Leases for SqliteStore {
    fn shared(&self) -> bool {
        false
    }

    fn acquire_users(
        &self,
        holder: &str,
        candidates: &[UserKey],
        limit: usize,
        ttl: Duration,
        _rest: Duration,
    ) -> StoreResult<Vec<Lease>> {
        Ok(candidates
            .iter()
            .take(limit)
            .map(|user| granted(LeaseScope::User(user.clone()), holder, ttl))
            .collect())
    }

    fn acquire_org(
        &self,
        holder: &str,
        name: &str,
        ttl: Duration,
        _rest: Duration,
    ) -> StoreResult<Option<Lease>> {
        Ok(Some(granted(LeaseScope::Org(name.to_owned()), holder, ttl)))
    }

    fn renew(&self, lease: &Lease, ttl: Duration) -> StoreResult<Lease> {
        Ok(granted(lease.scope.clone(), &lease.holder, ttl))
    }

    fn release(&self, _lease: &Lease) -> StoreResult<()> {
        Ok(())
    }

    fn leases(&self) -> StoreResult<Vec<LeaseInfo>> {
        Ok(Vec::new())
    }

    fn user_lease(&self, _user: &UserKey) -> StoreResult<Option<LeaseInfo>> {
        Ok(None)
    }

    fn deliver_crm_read(
        &self,
        _routed: &[RoutedChange],
        _advances: &[CursorAdvance],
        _at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        Err(StoreError::InvalidInput {
            op: "deliver the CRM read",
            reason: "a SQLite store serves one process, which hands the CRM read to its users \
                     itself; use a PostgreSQL store to run several workers"
                .into(),
        })
    }

    fn crm_inbox(&self, _user: &UserKey, _limit: usize) -> StoreResult<Vec<InboxEntry>> {
        Ok(Vec::new())
    }

    fn settle_crm_inbox(&self, _user: &UserKey, _ids: &[i64]) -> StoreResult<u64> {
        Ok(0)
    }

    fn share_crm_users(&self, _users: &str, _at: DateTime<Utc>) -> StoreResult<()> {
        Ok(())
    }

    fn shared_crm_users(&self) -> StoreResult<Option<(String, DateTime<Utc>)>> {
        Ok(None)
    }
}
