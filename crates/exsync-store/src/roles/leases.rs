//! Who works on what when several workers share one database.

use std::time::Duration;

use chrono::{DateTime, Utc};
use exsync_core::plan::Change;
use exsync_core::{ItemKind, UserKey};

use crate::error::StoreResult;
use crate::types::CursorAdvance;

/// What a lease covers: one user's passes, or one org-wide job such as the CRM read and the
/// cursors it moves.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LeaseScope {
    /// Everything written on this user's behalf: pass commits, the intent journal, the echo
    /// log entries of their writes.
    User(UserKey),
    /// An org-wide job, by name ([`ORG_CRM_READ`]).
    Org(String),
}

impl std::fmt::Display for LeaseScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaseScope::User(user) => write!(f, "user {user}"),
            LeaseScope::Org(name) => write!(f, "the org-wide {name}"),
        }
    }
}

/// The largest user list [`Leases::share_crm_users`] keeps: some 40,000 users.
pub const CRM_USERS_MAX: usize = 16 << 20;

/// The org lease held by the worker that reads the CRM for everyone and moves the org-wide
/// cursors.
pub const ORG_CRM_READ: &str = "CRM read";

/// A lease this worker took. The epoch grows by one each time the scope changes hands, so a
/// write checked against it is refused once anyone else has taken over, however late the
/// write comes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// What it covers.
    pub scope: LeaseScope,
    /// The worker holding it.
    pub holder: String,
    /// Which taking of the scope this is.
    pub epoch: i64,
    /// When it lapses unless renewed, by the database's clock.
    pub expires_at: DateTime<Utc>,
}

/// A lease as `exsync status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeaseInfo {
    /// What it covers.
    pub scope: LeaseScope,
    /// The worker that holds, or last held, it.
    pub holder: String,
    /// Which taking of the scope this is.
    pub epoch: i64,
    /// When it lapses unless renewed.
    pub expires_at: DateTime<Utc>,
    /// Whether it had lapsed when read: the worker stopped renewing it (stopped, stalled or
    /// cut off) and any worker may take it.
    pub expired: bool,
}

impl serde::Serialize for LeaseScope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A CRM change the org-wide read routed to one user, for that user's pass on whichever
/// worker runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedChange {
    /// The user it concerns.
    pub user: UserKey,
    /// Contact or event.
    pub kind: ItemKind,
    /// What the CRM reported.
    pub change: Change,
    /// What had to be cut from the record for it to fit Exchange.
    pub notes: Vec<String>,
}

/// A routed change waiting in a user's inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    /// Its id, to settle it with once the user's pass committed.
    pub id: i64,
    /// The change.
    pub routed: RoutedChange,
}

/// Leases on users and org-wide jobs, so several workers on one database share the work and
/// none commits over another.
///
/// A worker takes leases, renews them while it works and releases them when done. From its
/// first lease on, the store fences every write made on a user's behalf: it commits only if,
/// inside its own transaction, the lease row still names this worker at the epoch it took,
/// and is otherwise refused with [`crate::StoreError::LeaseLost`] having written nothing.
/// Likewise the org-wide cursors move only under the [`ORG_CRM_READ`] lease.
///
/// A store only one process uses (SQLite) grants every lease at once and fences nothing.
pub trait Leases: Send + Sync {
    /// Whether several processes may share this store, so leases matter.
    fn shared(&self) -> bool;

    /// Takes up to `limit` of `candidates` that no worker holds (or whose lease lapsed), those
    /// synced longest ago first, for `ttl`; skips rows another worker is taking at that very
    /// moment rather than wait for them. A user released less than `rest` ago was just synced
    /// and is left alone, so workers whose passes overlap do not sync one user twice.
    fn acquire_users(
        &self,
        holder: &str,
        candidates: &[UserKey],
        limit: usize,
        ttl: Duration,
        rest: Duration,
    ) -> StoreResult<Vec<Lease>>;

    /// Takes the org-wide lease `name` if nobody holds it and it was not released less than
    /// `rest` ago (the job was just done); `None` otherwise.
    fn acquire_org(
        &self,
        holder: &str,
        name: &str,
        ttl: Duration,
        rest: Duration,
    ) -> StoreResult<Option<Lease>>;

    /// Extends a lease by `ttl` from now; [`crate::StoreError::LeaseLost`] when someone else
    /// took it over (or it was released), and then the holder must stop.
    fn renew(&self, lease: &Lease, ttl: Duration) -> StoreResult<Lease>;

    /// Gives a lease back so another worker can take it at once. Releasing a lease someone
    /// else already took over changes nothing.
    fn release(&self, lease: &Lease) -> StoreResult<()>;

    /// Every lease a worker holds or held and did not release, ordered by scope.
    fn leases(&self) -> StoreResult<Vec<LeaseInfo>>;

    /// One user's lease as [`Leases::leases`] lists it, read alone (a user's page asks for
    /// one user, and the list grows with every worker's batch); `None` when no worker holds
    /// the user or the last one released them.
    fn user_lease(&self, user: &UserKey) -> StoreResult<Option<LeaseInfo>>;

    // ---- the org-wide read, shared through the database ---------------------------------

    /// Puts what the org-wide CRM read routed into each user's inbox and moves the org-wide
    /// cursors past it, in one transaction under the [`ORG_CRM_READ`] lease: once the cursor
    /// has moved, the changes it covers are in the database for whichever worker syncs each
    /// user, so no worker has to wait for the others' commits. Returns how many were put.
    fn deliver_crm_read(
        &self,
        routed: &[RoutedChange],
        advances: &[CursorAdvance],
        at: DateTime<Utc>,
    ) -> StoreResult<u64>;

    /// Up to `limit` of the user's routed changes, oldest first.
    fn crm_inbox(&self, user: &UserKey, limit: usize) -> StoreResult<Vec<InboxEntry>>;

    /// Keeps the CRM's user list, as the worker holding the [`ORG_CRM_READ`] lease just read it
    /// (`users` is the engine's JSON, capped at [`CRM_USERS_MAX`] bytes), for the other workers'
    /// passes, so the CRM is asked once per read however many workers there are. Refused
    /// without that lease, like the org cursors.
    fn share_crm_users(&self, users: &str, at: DateTime<Utc>) -> StoreResult<()>;

    /// The CRM's user list last shared, and when it was read; `None` before the first.
    fn shared_crm_users(&self) -> StoreResult<Option<(String, DateTime<Utc>)>>;

    /// Removes routed changes the user's committed pass has used, under the user's lease.
    /// Removing them after the commit rather than in it can only apply a change twice, which
    /// a pass takes as an echo; never lose one.
    fn settle_crm_inbox(&self, user: &UserKey, ids: &[i64]) -> StoreResult<u64>;
}
