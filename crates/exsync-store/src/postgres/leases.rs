//! Leases and fencing on PostgreSQL. A lease is a row naming its holder, an epoch that grows
//! each time the row changes hands, and an expiry by the database's clock (workers' clocks
//! may disagree; the database's is the one they share). Workers take free rows with
//! `FOR UPDATE SKIP LOCKED`, so two never wait on each other nor take the same user.
//!
//! A store remembers the epochs of the leases its worker took ([`Held`]). Every write on a
//! user's behalf then locks that user's lease row inside its own transaction and goes ahead
//! only if the row still names this worker at that epoch: a worker that stalled past its
//! lease finds the epoch moved on and writes nothing, while a takeover has to wait for the
//! row lock, so it cannot slip in between the check and the commit.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use exsync_core::UserKey;
use postgres::{GenericClient, Row};

use super::codec::Ctx;
use super::{inbox, PgStore};
use crate::error::{StoreError, StoreResult};
use crate::roles::{
    InboxEntry, Lease, LeaseInfo, LeaseScope, Leases, RoutedChange, CRM_USERS_MAX, ORG_CRM_READ,
};
use crate::sqlite::codec::time_text;
use crate::sqlite::users::check_key;
use crate::types::CursorAdvance;

/// The leases this store's worker holds, by scope, with the epoch each was taken at.
#[derive(Debug, Default)]
pub(super) struct Held {
    inner: Mutex<HeldInner>,
}

#[derive(Debug, Default)]
struct HeldInner {
    /// Set by the first lease taken: from then on this store serves a worker among others,
    /// and a write for a scope it holds no lease on is refused.
    worker: Option<String>,
    epochs: HashMap<LeaseScope, (String, i64)>,
}

/// How a write for one scope is guarded.
#[derive(Debug, Clone)]
pub(super) enum Fence {
    /// This store never took a lease: it is the only process (or an administrator's command)
    /// and writes as it always did.
    Open,
    /// Held by this worker at this epoch; checked in the write's transaction.
    Held { holder: String, epoch: i64 },
    /// This store serves a worker that does not hold the scope.
    Missing { holder: String },
}

impl Held {
    fn lock(&self) -> MutexGuard<'_, HeldInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks this store as a worker's from its first attempt to take a lease, granted or not:
    /// a worker that was refused the org lease must not move the org-wide cursors either.
    fn joined(&self, holder: &str) {
        self.lock().worker.get_or_insert_with(|| holder.to_owned());
    }

    fn taken(&self, lease: &Lease) {
        let mut inner = self.lock();
        inner
            .epochs
            .insert(lease.scope.clone(), (lease.holder.clone(), lease.epoch));
    }

    fn given_back(&self, lease: &Lease) {
        let mut inner = self.lock();
        if inner
            .epochs
            .get(&lease.scope)
            .is_some_and(|(_, epoch)| *epoch == lease.epoch)
        {
            inner.epochs.remove(&lease.scope);
        }
    }

    pub(super) fn fence(&self, scope: &LeaseScope) -> Fence {
        let inner = self.lock();
        match (&inner.worker, inner.epochs.get(scope)) {
            (_, Some((holder, epoch))) => Fence::Held {
                holder: holder.clone(),
                epoch: *epoch,
            },
            (Some(worker), None) => Fence::Missing {
                holder: worker.clone(),
            },
            (None, None) => Fence::Open,
        }
    }
}

/// Locks the scope's lease row until the transaction ends and refuses the write unless it
/// still names this worker at the epoch it took. A lease that lapsed but that nobody took
/// over still passes: its epoch proves no other worker wrote in between, and the row lock now
/// keeps any from doing so before this transaction ends.
pub(super) fn check(
    client: &mut impl GenericClient,
    op: &'static str,
    scope: &LeaseScope,
    fence: &Fence,
) -> StoreResult<()> {
    let (holder, epoch) = match fence {
        Fence::Open => return Ok(()),
        Fence::Missing { holder } => {
            return Err(lost(op, scope, holder, "it took no lease on it".into()))
        }
        Fence::Held { holder, epoch } => (holder, *epoch),
    };
    let user = match scope {
        LeaseScope::User(user) => Some(user),
        LeaseScope::Org(_) => None,
    };
    let row = match scope {
        LeaseScope::User(user) => client.query_opt(
            "SELECT holder, epoch FROM user_lease WHERE user_key = $1 FOR UPDATE",
            &[&user.as_str()],
        ),
        LeaseScope::Org(name) => client.query_opt(
            "SELECT holder, epoch FROM org_lease WHERE name = $1 FOR UPDATE",
            &[&name.as_str()],
        ),
    }
    .ctx(op, user)?;
    let (now_holder, now_epoch): (Option<String>, i64) = match &row {
        Some(row) => (row.try_get(0).ctx(op, user)?, row.try_get(1).ctx(op, user)?),
        None => (None, 0),
    };
    if now_epoch == epoch && now_holder.as_deref() == Some(holder.as_str()) {
        return Ok(());
    }
    let detail = match now_holder {
        Some(other) if now_epoch != epoch => {
            format!("worker {other} took it over (epoch {now_epoch}; this worker's was {epoch})")
        }
        None if now_epoch != epoch => format!(
            "another worker took it over and has released it since (epoch {now_epoch}; this \
             worker's was {epoch})"
        ),
        _ => format!("it was released (epoch {now_epoch})"),
    };
    Err(lost(op, scope, holder, detail))
}

fn lost(op: &'static str, scope: &LeaseScope, holder: &str, detail: String) -> StoreError {
    StoreError::LeaseLost {
        op,
        scope: scope.to_string(),
        holder: holder.to_owned(),
        detail,
    }
}

/// The lease's length as whole milliseconds for SQL, at least one.
fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// A rest as whole milliseconds for SQL; zero for none.
fn rest_ms(rest: Duration) -> i64 {
    i64::try_from(rest.as_millis()).unwrap_or(i64::MAX)
}

/// Microseconds since the epoch as a time; SQL hands expiries over this way because the
/// client is built without a date-time codec.
fn micros(
    op: &'static str,
    user: Option<&UserKey>,
    row: &Row,
    index: usize,
) -> StoreResult<DateTime<Utc>> {
    let value: i64 = row.try_get(index).ctx(op, user)?;
    Utc.timestamp_micros(value)
        .single()
        .ok_or_else(|| StoreError::Corrupt {
            op,
            user: user.cloned(),
            detail: format!("lease expiry {value} is not a time"),
        })
}

const EXPIRES: &str = "(extract(epoch FROM expires_at) * 1000000)::bigint";

fn check_holder(op: &'static str, holder: &str) -> StoreResult<()> {
    if holder.trim().is_empty() {
        return Err(StoreError::InvalidInput {
            op,
            reason: "a worker needs a name to hold leases".into(),
        });
    }
    Ok(())
}

impl Leases for PgStore {
    fn shared(&self) -> bool {
        true
    }

    fn acquire_users(
        &self,
        holder: &str,
        candidates: &[UserKey],
        limit: usize,
        ttl: Duration,
        rest: Duration,
    ) -> StoreResult<Vec<Lease>> {
        const OP: &str = "lease users";
        check_holder(OP, holder)?;
        self.held.joined(holder);
        for user in candidates {
            check_key(OP, user)?;
        }
        if candidates.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let keys: Vec<&str> = candidates.iter().map(UserKey::as_str).collect();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let now = time_text(&Utc::now());
        let leases = self.with(OP, |client| {
            // Rows first, in a transaction of their own, so the taking below only ever locks
            // rows that exist and skips the ones another worker is locking.
            let mut tx = client.transaction().ctx(OP, None)?;
            tx.execute(
                "INSERT INTO users (user_key, created_at) SELECT u, $2 FROM unnest($1::text[]) u \
                 ON CONFLICT (user_key) DO NOTHING",
                &[&keys, &now],
            )
            .ctx(OP, None)?;
            tx.execute(
                "INSERT INTO user_lease (user_key) SELECT unnest($1::text[]) \
                 ON CONFLICT (user_key) DO NOTHING",
                &[&keys],
            )
            .ctx(OP, None)?;
            tx.commit().ctx(OP, None)?;
            let rows = client
                .query(
                    &format!(
                        "WITH free AS ( \
                           SELECT user_key FROM user_lease \
                           WHERE user_key = ANY($1) AND (holder IS NULL OR expires_at < now()) \
                             AND (released_at IS NULL \
                                  OR released_at < now() - $5::bigint * interval '1 millisecond') \
                           ORDER BY released_at NULLS FIRST, user_key \
                           LIMIT $2 FOR UPDATE SKIP LOCKED) \
                         UPDATE user_lease l SET holder = $3, epoch = l.epoch + 1, \
                           expires_at = now() + $4::bigint * interval '1 millisecond' \
                         FROM free WHERE l.user_key = free.user_key \
                         RETURNING l.user_key, l.epoch, {EXPIRES}"
                    ),
                    &[&keys, &limit, &holder, &ttl_ms(ttl), &rest_ms(rest)],
                )
                .ctx(OP, None)?;
            let mut leases = Vec::with_capacity(rows.len());
            for row in &rows {
                let user = UserKey(row.try_get(0).ctx(OP, None)?);
                let epoch = row.try_get(1).ctx(OP, Some(&user))?;
                let expires_at = micros(OP, Some(&user), row, 2)?;
                leases.push(Lease {
                    scope: LeaseScope::User(user),
                    holder: holder.to_owned(),
                    epoch,
                    expires_at,
                });
            }
            leases.sort_by(|a, b| a.scope.cmp(&b.scope));
            Ok(leases)
        })?;
        for lease in &leases {
            self.held.taken(lease);
        }
        Ok(leases)
    }

    fn acquire_org(
        &self,
        holder: &str,
        name: &str,
        ttl: Duration,
        rest: Duration,
    ) -> StoreResult<Option<Lease>> {
        const OP: &str = "lease org-wide job";
        check_holder(OP, holder)?;
        self.held.joined(holder);
        if name.trim().is_empty() {
            return Err(StoreError::InvalidInput {
                op: OP,
                reason: "an org-wide lease needs a name".into(),
            });
        }
        let lease = self.with(OP, |client| {
            client
                .execute(
                    "INSERT INTO org_lease (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                    &[&name],
                )
                .ctx(OP, None)?;
            let row = client
                .query_opt(
                    &format!(
                        "UPDATE org_lease SET holder = $2, epoch = epoch + 1, \
                           expires_at = now() + $3::bigint * interval '1 millisecond' \
                         WHERE name = $1 AND (holder IS NULL OR expires_at < now()) \
                           AND (released_at IS NULL \
                                OR released_at < now() - $4::bigint * interval '1 millisecond') \
                         RETURNING epoch, {EXPIRES}"
                    ),
                    &[&name, &holder, &ttl_ms(ttl), &rest_ms(rest)],
                )
                .ctx(OP, None)?;
            row.map(|row| -> StoreResult<Lease> {
                Ok(Lease {
                    scope: LeaseScope::Org(name.to_owned()),
                    holder: holder.to_owned(),
                    epoch: row.try_get(0).ctx(OP, None)?,
                    expires_at: micros(OP, None, &row, 1)?,
                })
            })
            .transpose()
        })?;
        if let Some(lease) = &lease {
            self.held.taken(lease);
        }
        Ok(lease)
    }

    fn renew(&self, lease: &Lease, ttl: Duration) -> StoreResult<Lease> {
        const OP: &str = "renew lease";
        let row = self.with(OP, |client| {
            let sql = |table: &str, key: &str| {
                format!(
                    "UPDATE {table} SET expires_at = now() + $4::bigint * interval '1 millisecond' \
                     WHERE {key} = $1 AND holder = $2 AND epoch = $3 RETURNING {EXPIRES}"
                )
            };
            let (sql, key) = match &lease.scope {
                LeaseScope::User(user) => (sql("user_lease", "user_key"), user.as_str()),
                LeaseScope::Org(name) => (sql("org_lease", "name"), name.as_str()),
            };
            client
                .query_opt(&sql, &[&key, &lease.holder, &lease.epoch, &ttl_ms(ttl)])
                .ctx(OP, None)
        })?;
        let Some(row) = row else {
            // Who has it now is for the write that gets refused to say; here it is enough
            // that this worker must stop.
            return Err(lost(
                OP,
                &lease.scope,
                &lease.holder,
                format!(
                    "another worker took it over after epoch {}, or it was released",
                    lease.epoch
                ),
            ));
        };
        Ok(Lease {
            expires_at: micros(OP, None, &row, 0)?,
            ..lease.clone()
        })
    }

    fn release(&self, lease: &Lease) -> StoreResult<()> {
        const OP: &str = "release lease";
        self.with(OP, |client| {
            let sql = |table: &str, key: &str| {
                format!(
                    "UPDATE {table} SET holder = NULL, expires_at = NULL, released_at = now() \
                     WHERE {key} = $1 AND holder = $2 AND epoch = $3"
                )
            };
            let (sql, key) = match &lease.scope {
                LeaseScope::User(user) => (sql("user_lease", "user_key"), user.as_str()),
                LeaseScope::Org(name) => (sql("org_lease", "name"), name.as_str()),
            };
            client
                .execute(&sql, &[&key, &lease.holder, &lease.epoch])
                .ctx(OP, None)
        })?;
        self.held.given_back(lease);
        Ok(())
    }

    fn deliver_crm_read(
        &self,
        routed: &[RoutedChange],
        advances: &[CursorAdvance],
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let fence = self.held.fence(&LeaseScope::Org(ORG_CRM_READ.to_owned()));
        self.with("deliver CRM read", |c| {
            inbox::deliver(c, routed, advances, &at, &fence)
        })
    }

    fn crm_inbox(&self, user: &UserKey, limit: usize) -> StoreResult<Vec<InboxEntry>> {
        self.with("read CRM inbox", |c| inbox::inbox(c, user, limit))
    }

    fn settle_crm_inbox(&self, user: &UserKey, ids: &[i64]) -> StoreResult<u64> {
        let fence = self.held.fence(&LeaseScope::User(user.clone()));
        self.with("settle CRM inbox", |c| inbox::settle(c, user, ids, &fence))
    }

    fn share_crm_users(&self, users: &str, at: DateTime<Utc>) -> StoreResult<()> {
        const OP: &str = "share the CRM's users";
        if users.len() > CRM_USERS_MAX {
            return Err(StoreError::InvalidInput {
                op: OP,
                reason: format!(
                    "the user list is {} bytes, more than the {CRM_USERS_MAX} kept",
                    users.len()
                ),
            });
        }
        let fence = self.held.fence(&LeaseScope::Org(ORG_CRM_READ.to_owned()));
        let at = time_text(&at);
        self.with_transaction(OP, |tx| {
            check(tx, OP, &LeaseScope::Org(ORG_CRM_READ.to_owned()), &fence)?;
            tx.execute(
                "INSERT INTO crm_user_list (id, users, listed_at) VALUES (1, $1, $2) \
                 ON CONFLICT (id) DO UPDATE SET users = EXCLUDED.users, \
                   listed_at = EXCLUDED.listed_at",
                &[&users, &at],
            )
            .ctx(OP, None)?;
            Ok(())
        })
    }

    fn shared_crm_users(&self) -> StoreResult<Option<(String, DateTime<Utc>)>> {
        const OP: &str = "read the shared CRM users";
        let row = self.with(OP, |client| {
            client
                .query_opt(
                    "SELECT users, listed_at FROM crm_user_list WHERE id = 1",
                    &[],
                )
                .ctx(OP, None)
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        let users: String = row.try_get(0).ctx(OP, None)?;
        let at: String = row.try_get(1).ctx(OP, None)?;
        let at = crate::sqlite::codec::parse_time(&at).map_err(|detail| StoreError::Corrupt {
            op: OP,
            user: None,
            detail,
        })?;
        Ok(Some((users, at)))
    }

    fn leases(&self) -> StoreResult<Vec<LeaseInfo>> {
        const OP: &str = "list leases";
        let columns = lease_columns();
        let rows = self.with(OP, |client| {
            client
                .query(
                    &format!(
                        "SELECT 'org', name, {columns} FROM org_lease WHERE holder IS NOT NULL \
                         UNION ALL \
                         SELECT 'user', user_key, {columns} FROM user_lease \
                           WHERE holder IS NOT NULL \
                         ORDER BY 1, 2"
                    ),
                    &[],
                )
                .ctx(OP, None)
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let kind: String = row.try_get(0).ctx(OP, None)?;
            let name: String = row.try_get(1).ctx(OP, None)?;
            let scope = if kind == "user" {
                LeaseScope::User(UserKey(name))
            } else {
                LeaseScope::Org(name)
            };
            out.push(lease_info(OP, scope, row, 2)?);
        }
        Ok(out)
    }

    fn user_lease(&self, user: &UserKey) -> StoreResult<Option<LeaseInfo>> {
        const OP: &str = "read a user's lease";
        let columns = lease_columns();
        let row = self.with(OP, |client| {
            client
                .query_opt(
                    &format!(
                        "SELECT {columns} FROM user_lease \
                         WHERE user_key = $1 AND holder IS NOT NULL"
                    ),
                    &[&user.as_str()],
                )
                .ctx(OP, Some(user))
        })?;
        row.map(|row| lease_info(OP, LeaseScope::User(user.clone()), &row, 0))
            .transpose()
    }
}

/// What [`lease_info`] reads from a lease row, in order.
fn lease_columns() -> String {
    format!("holder, epoch, {EXPIRES}, expires_at < now()")
}

/// A held lease from the [`lease_columns`], which start at column `first`.
fn lease_info(
    op: &'static str,
    scope: LeaseScope,
    row: &Row,
    first: usize,
) -> StoreResult<LeaseInfo> {
    let user = match &scope {
        LeaseScope::User(user) => Some(user),
        LeaseScope::Org(_) => None,
    };
    Ok(LeaseInfo {
        holder: row.try_get(first).ctx(op, user)?,
        epoch: row.try_get(first + 1).ctx(op, user)?,
        expires_at: micros(op, user, row, first + 2)?,
        expired: row.try_get(first + 3).ctx(op, user)?,
        scope,
    })
}
