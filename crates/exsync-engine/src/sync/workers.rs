//! A pass as one of several workers sharing a PostgreSQL store. The database hands out the
//! work: one worker at a time holds the org-wide CRM read, and puts what it routed into each
//! user's inbox together with the cursor moves; every worker then takes a bounded batch of
//! users no one else holds, renews their leases while it works, and gives them back when
//! done. Every write for a user is fenced by the store against the lease's epoch, so a worker
//! that stalled past its lease writes nothing and stops that user's pass.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use exsync_core::config::Direction;
use exsync_core::{ItemKind, UserKey};
use exsync_store::{
    CursorAdvance, CursorScope, Lease, LeaseScope, RoutedChange, Store, StoreError, ORG_CRM_READ,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::departures::own_records;
use super::exchange_slots::{ExchangeSlots, Turn};
use super::pass::{
    folder_cursor, on_store, run_user, Notes, PassError, SyncUser, UserPass, UserReport, KINDS,
};
use super::service::{read_groups, CrmFilterKey, PassOptions, PassReport, SyncUsers, Syncer};
use super::sides::{CrmSide, CrmUser, MailboxSide, SideError};

/// The most routed changes one user's pass takes from its inbox; the rest wait for the next.
const INBOX_CAP: usize = 20_000;

/// How often a worker looks whether the org's first CRM read has set the group cursors.
const FIRST_READ_POLL: Duration = Duration::from_millis(200);

/// Who this worker is and how it holds its users.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The worker's name in leases, logs and status.
    pub id: String,
    /// How long a lease lasts unless renewed.
    pub lease: Duration,
    /// Users taken at a time.
    pub batch: usize,
    /// The Exchange service account's requests in flight, shared with the other workers;
    /// `None` without `[exchange]`.
    pub exchange: Option<ExchangeSlots>,
}

impl WorkerOptions {
    /// `id`, or this host's name and the process id.
    pub fn new(id: Option<String>, lease: Duration, batch: usize) -> Self {
        WorkerOptions {
            id: id.unwrap_or_else(default_id),
            lease,
            batch: batch.max(1),
            exchange: None,
        }
    }

    /// The same, sharing Exchange's requests in flight through `slots`.
    pub fn with_exchange_slots(self, slots: ExchangeSlots) -> Self {
        WorkerOptions {
            exchange: Some(slots),
            ..self
        }
    }

    /// Renewing three times per lease survives one slow or lost renewal.
    fn heartbeat(&self) -> Duration {
        (self.lease / 3).max(Duration::from_millis(100))
    }
}

/// The host's name and this process's id: unique among workers without configuration.
fn default_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.len() <= 64 && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| "host".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Renews a set of leases in the background until dropped; a lease someone else took is
/// logged and dropped from the set (the store refuses that user's writes from then on).
pub(super) struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
    leases: Arc<Mutex<Vec<Lease>>>,
}

impl Heartbeat {
    fn start(store: &Arc<dyn Store>, worker: &WorkerOptions, leases: Vec<Lease>) -> Heartbeat {
        let held = Arc::new(Mutex::new(leases));
        let store = Arc::clone(store);
        let (every, ttl) = (worker.heartbeat(), worker.lease);
        let shared = Arc::clone(&held);
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let current = shared
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let mut kept = Vec::with_capacity(current.len());
                for lease in current {
                    let old = lease.clone();
                    match on_store(&store, move |s| s.renew(&old, ttl)).await {
                        Ok(renewed) => kept.push(renewed),
                        Err(PassError::Store(e @ StoreError::LeaseLost { .. })) => {
                            tracing::warn!(scope = %lease.scope, error = %e, "Lease lost: another worker took over; this worker's writes for it are refused from now on.");
                        }
                        // The database may be back by the next beat; until the lease lapses
                        // nothing is lost, and the fence guards the writes either way.
                        Err(e) => {
                            tracing::warn!(scope = %lease.scope, error = %e, "Could not renew a lease; trying again at the next beat.");
                            kept.push(lease);
                        }
                    }
                }
                *shared.lock().unwrap_or_else(PoisonError::into_inner) = kept;
            }
        });
        Heartbeat { task, leases: held }
    }

    /// Stops renewing and returns the leases as last renewed.
    fn stop(self) -> Vec<Lease> {
        self.task.abort();
        std::mem::take(&mut *self.leases.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A pass that ends early (a store error) lets its leases lapse rather than renew them for
/// ever.
impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Gives a lease back. One that cannot be given back (the database is unreachable) lapses
/// by itself after its length, so this only delays the next worker: it is said, not fatal.
async fn release(store: &Arc<dyn Store>, lease: Lease) {
    let scope = lease.scope.clone();
    if let Err(e) = on_store(store, move |s| s.release(&lease)).await {
        tracing::warn!(%scope, error = %e, "Could not give a lease back; it lapses by itself and another worker takes it then.");
    }
}

/// How a leased user's turn in a batch ended.
enum Outcome {
    /// The pass ran and committed.
    Done(Box<UserReport>),
    /// The service is stopping; the user was not started.
    NotStarted,
    /// The org's first CRM read has not set the user's group cursor yet.
    Waiting,
}

/// The leases a heartbeat keeps, as last renewed.
type Held = Arc<Mutex<Vec<Lease>>>;

fn holds(held: &Held, scope: &LeaseScope) -> bool {
    held.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .any(|l| &l.scope == scope)
}

impl<E, C> Syncer<E, C>
where
    E: MailboxSide + 'static,
    C: CrmSide + 'static,
{
    /// One pass as a worker, over `active`: the users that sync and are not paused.
    pub(super) async fn run_as_worker(
        self: &Arc<Self>,
        worker: &WorkerOptions,
        org: Option<Heartbeat>,
        active: Vec<SyncUser>,
        mut report: PassReport,
        options: &PassOptions,
        now: DateTime<Utc>,
    ) -> Result<PassReport, PassError> {
        if let Err(e) = self.share_crm_read(worker, org, &active, now).await? {
            report.crm_error = Some(e);
            return Ok(report);
        }
        self.await_first_read(worker, &active, options).await?;
        let mut left: Vec<UserKey> = active.iter().map(|u| u.key.clone()).collect();
        let by_key: BTreeMap<UserKey, SyncUser> =
            active.into_iter().map(|u| (u.key.clone(), u)).collect();
        // Batch after batch until no user is left that another worker does not hold.
        loop {
            if options.stop.as_ref().is_some_and(|s| *s.borrow()) {
                report.interrupted = true;
                break;
            }
            let (id, lease, batch, rest) =
                (worker.id.clone(), worker.lease, worker.batch, options.rest);
            let candidates = left.clone();
            let taken = on_store(&self.store, move |s| {
                s.acquire_users(&id, &candidates, batch, lease, rest)
            })
            .await?;
            if taken.is_empty() {
                break;
            }
            let keys: BTreeSet<UserKey> = taken
                .iter()
                .filter_map(|l| match &l.scope {
                    LeaseScope::User(u) => Some(u.clone()),
                    LeaseScope::Org(_) => None,
                })
                .collect();
            left.retain(|k| !keys.contains(k));
            tracing::info!(worker = %worker.id, users = keys.len(), "Took a batch of users.");
            let heartbeat = Heartbeat::start(&self.store, worker, taken);
            let users: Vec<SyncUser> = keys.iter().filter_map(|k| by_key.get(k).cloned()).collect();
            let batch = self
                .run_batch(worker, users, &heartbeat.leases, &mut report, options, now)
                .await;
            // Given back whatever happened, so no user waits out a lease for nothing.
            for lease in heartbeat.stop() {
                release(&self.store, lease).await;
            }
            batch?;
        }
        report.users.sort_by(|a, b| a.user.cmp(&b.user));
        Ok(report)
    }

    /// A pass by hand for one user (`exsync sync --user`, with or without `--dry-run`) beside
    /// running workers: it takes the user's lease first, so no worker syncs the user at the
    /// same time and its commit is fenced like theirs; while a worker holds the user it is
    /// refused, naming the holder. The lease is renewed while the pass runs and given back
    /// after it.
    pub(super) async fn run_by_hand_for_one(
        self: &Arc<Self>,
        worker: &WorkerOptions,
        active: Vec<SyncUser>,
        mut report: PassReport,
        options: &PassOptions,
        now: DateTime<Utc>,
    ) -> Result<PassReport, PassError> {
        let keys: Vec<UserKey> = active.iter().map(|u| u.key.clone()).collect();
        let (id, lease) = (worker.id.clone(), worker.lease);
        let wanted = keys.clone();
        let taken = on_store(&self.store, move |s| {
            s.acquire_users(&id, &wanted, wanted.len(), lease, Duration::ZERO)
        })
        .await?;
        if taken.len() < keys.len() {
            for lease in taken {
                release(&self.store, lease).await;
            }
            let holders = on_store(&self.store, |s| s.leases()).await?;
            for key in keys {
                let scope = LeaseScope::User(key.clone());
                let holder = holders.iter().find(|l| l.scope == scope).map_or_else(
                    || "another worker".to_owned(),
                    |l| format!("worker {}", l.holder),
                );
                let error = format!(
                    "not synced: {holder} is syncing this user now; run this again once it has finished (`exsync status` shows who holds each user), or stop that worker"
                );
                tracing::warn!(user = %key, %error, "A pass by hand was refused the user's lease.");
                report.users.push(UserReport {
                    backend: Some(self.exchange.backend(&key)),
                    user: Some(key),
                    error: Some(error),
                    ..UserReport::default()
                });
            }
            return Ok(report);
        }
        let heartbeat = Heartbeat::start(&self.store, worker, taken);
        let outcome = self.run_local(active, report, options, now).await;
        for lease in heartbeat.stop() {
            release(&self.store, lease).await;
        }
        outcome
    }

    /// The users of one batch, `concurrency` at a time.
    async fn run_batch(
        self: &Arc<Self>,
        worker: &WorkerOptions,
        users: Vec<SyncUser>,
        held: &Held,
        report: &mut PassReport,
        options: &PassOptions,
        now: DateTime<Utc>,
    ) -> Result<(), PassError> {
        let limit = Arc::new(Semaphore::new(self.concurrency.max(1)));
        let mut jobs = JoinSet::new();
        for user in users {
            let this = Arc::clone(self);
            let limit = Arc::clone(&limit);
            let stop = options.stop.clone();
            let held = Arc::clone(held);
            let holder = worker.id.clone();
            jobs.spawn(async move {
                let _slot = limit.acquire_owned().await;
                if stop.as_ref().is_some_and(|s| *s.borrow()) {
                    return (user.key.clone(), Ok(Outcome::NotStarted));
                }
                let scope = LeaseScope::User(user.key.clone());
                if !holds(&held, &scope) {
                    return (
                        user.key.clone(),
                        Err(PassError::Store(StoreError::LeaseLost {
                            op: "start pass",
                            scope: scope.to_string(),
                            holder,
                            detail: "the lease was lost before the pass started".into(),
                        })),
                    );
                }
                let turn = match this.exchange_turn(&user.key, stop.as_ref()).await {
                    Ok(Turn::Stopping) => return (user.key.clone(), Ok(Outcome::NotStarted)),
                    Ok(turn) => turn,
                    Err(e) => return (user.key.clone(), Err(e)),
                };
                let result = this.run_leased_user(&user, now).await;
                turn.end().await;
                (user.key.clone(), result)
            });
        }
        while let Some(joined) = jobs.join_next().await {
            match joined {
                Ok((user, Ok(Outcome::NotStarted))) => {
                    report.interrupted = true;
                    report
                        .skipped
                        .push((user, "not started: the service is stopping".to_owned()));
                }
                Ok((user, Ok(Outcome::Waiting))) => {
                    tracing::info!(user = %user, "Waiting for the org's first CRM read; the user syncs in a later pass.");
                    report.skipped.push((
                        user,
                        "waiting for the org's first CRM read by another worker".to_owned(),
                    ));
                }
                Ok((user, Ok(Outcome::Done(done)))) => {
                    // As it happens, not at the pass's end: who did which user is what an
                    // admin reads a worker's log for when another worker died.
                    if done.error.is_none() {
                        tracing::info!(worker = %worker.id, user = %user, "Committed a user's pass.");
                    }
                    if let Some(progress) = &options.progress {
                        (progress.0)(&done);
                    }
                    report.users.push(*done);
                }
                Ok((user, Err(PassError::Store(e @ StoreError::LeaseLost { .. })))) => {
                    tracing::warn!(user = %user, error = %e, "Lease lost: this user's pass stopped without committing; the worker that took the user over finishes it.");
                    report.skipped.push((user, format!("lease lost: {e}")));
                }
                Ok((user, Err(e))) => {
                    tracing::error!(user = %user, error = %e, "User pass could not be committed.");
                    report.users.push(UserReport {
                        backend: Some(self.exchange.backend(&user)),
                        user: Some(user),
                        error: Some(e.to_string()),
                        ..UserReport::default()
                    });
                }
                Err(e) => tracing::error!(error = %e, "User pass task failed."),
            }
        }
        Ok(())
    }

    /// A user's turn at Exchange: one of the slots the workers share when this process is
    /// one of them and the user's pass may send EWS requests, else nothing to wait for.
    pub(super) async fn exchange_turn(
        &self,
        user: &UserKey,
        stop: Option<&tokio::sync::watch::Receiver<bool>>,
    ) -> Result<Turn, PassError> {
        let shared = self
            .worker
            .as_ref()
            .filter(|_| self.store.shared() && self.exchange.uses_exchange_account(user));
        match shared.and_then(|w| w.exchange.as_ref().map(|slots| (w, slots))) {
            Some((worker, slots)) => {
                slots
                    .take(&self.store, &worker.id, worker.lease, user, stop)
                    .await
            }
            None => Ok(Turn::Alone),
        }
    }

    /// One leased user's pass: their routed changes from the inbox, a full read of their own
    /// records where they have no cursor yet, then the pass; the inbox entries it used are
    /// settled once it committed.
    async fn run_leased_user(
        self: &Arc<Self>,
        user: &SyncUser,
        now: DateTime<Utc>,
    ) -> Result<Outcome, PassError> {
        let key = user.key.clone();
        let inbox = on_store(&self.store, move |s| s.crm_inbox(&key, INBOX_CAP)).await?;
        let mut crm_changes: BTreeMap<ItemKind, Vec<_>> = BTreeMap::new();
        let mut crm_notes: BTreeMap<ItemKind, Notes> = BTreeMap::new();
        let mut ids = Vec::with_capacity(inbox.len());
        for entry in inbox {
            ids.push(entry.id);
            let RoutedChange {
                kind,
                change,
                notes,
                ..
            } = entry.routed;
            // What the last change of a record says stands.
            let by_id = crm_notes.entry(kind).or_default();
            if notes.is_empty() {
                by_id.remove(change.id());
            } else {
                by_id.insert(change.id().clone(), notes);
            }
            crm_changes.entry(kind).or_default().push(change);
        }
        let mut crm_full_reads = BTreeMap::new();
        for kind in KINDS {
            if user.config.rules(kind).direction == Direction::Off {
                continue;
            }
            let group = CrmFilterKey::of(kind, &user.config);
            let scope = CursorScope::crm_object(group.cursor_name(kind));
            if on_store(&self.store, move |s| s.cursor(&scope))
                .await?
                .is_none()
            {
                // Reading now could miss what changes before the org's first read sets the
                // group's cursor; the user waits for it instead.
                return Ok(Outcome::Waiting);
            }
            let folder = folder_cursor(&user.key, kind);
            if on_store(&self.store, move |s| s.cursor(&folder))
                .await?
                .is_none()
            {
                crm_full_reads.insert(kind, own_records(kind, user));
            }
        }
        let back = self.read_in_full_if_back(user, &mut crm_full_reads).await?;
        let done = run_user(
            &self.exchange,
            &self.crm,
            &self.store,
            UserPass {
                user,
                crm_changes,
                crm_notes,
                crm_full_reads,
                now,
                dry_run: false,
                slice: self.slice,
            },
        )
        .await?;
        if !ids.is_empty() {
            let key = user.key.clone();
            on_store(&self.store, move |s| s.settle_crm_inbox(&key, &ids)).await?;
        }
        self.settle_return(back, &done).await?;
        Ok(Outcome::Done(Box::new(done)))
    }

    /// Waits, up to one lease length, until the org's first CRM read (by whichever worker
    /// holds it) has set every group's cursor. Workers started together would otherwise take
    /// users only to put them back as waiting, and those users would sync a poll interval
    /// later. Past the wait the pass goes on, and such users wait for the next one, as before.
    async fn await_first_read(
        &self,
        worker: &WorkerOptions,
        active: &[SyncUser],
        options: &PassOptions,
    ) -> Result<(), PassError> {
        let scopes: Vec<CursorScope> = KINDS
            .iter()
            .flat_map(|kind| {
                read_groups(*kind, active)
                    .into_keys()
                    .map(|key| CursorScope::crm_object(key.cursor_name(*kind)))
            })
            .collect();
        let deadline = tokio::time::Instant::now() + worker.lease;
        let mut said = false;
        loop {
            let check = scopes.clone();
            let missing = on_store(&self.store, move |s| {
                for scope in &check {
                    if s.cursor(scope)?.is_none() {
                        return Ok(true);
                    }
                }
                Ok(false)
            })
            .await?;
            let stopping = options.stop.as_ref().is_some_and(|s| *s.borrow());
            if !missing || stopping || tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            if !said {
                tracing::info!(worker = %worker.id, "Waiting for another worker's first read of the CRM before taking users.");
                said = true;
            }
            tokio::time::sleep(FIRST_READ_POLL).await;
        }
    }

    /// The CRM's users for a worker's pass. The worker that gets the org read's lease lists
    /// them and shares the list through the database, and keeps the lease (renewed) for the
    /// read itself; the others take the shared list, and ask the CRM only while none is
    /// shared yet.
    pub(super) async fn list_users_as_worker(
        &self,
        worker: &WorkerOptions,
        rest: Duration,
        now: DateTime<Utc>,
    ) -> Result<(Result<SyncUsers, SideError>, Option<Heartbeat>), PassError> {
        let (id, ttl) = (worker.id.clone(), worker.lease);
        let org = on_store(&self.store, move |s| {
            s.acquire_org(&id, ORG_CRM_READ, ttl, rest)
        })
        .await?;
        let Some(org) = org else {
            let shared = on_store(&self.store, |s| s.shared_crm_users()).await?;
            let users = shared.and_then(|(text, _)| {
                serde_json::from_str::<Vec<CrmUser>>(&text)
                    .inspect_err(|e| tracing::warn!(error = %e, "The CRM's user list in the database cannot be read; asking the CRM instead."))
                    .ok()
            });
            let users = match users {
                Some(users) => users,
                None => match self.crm.users().await {
                    Ok(users) => users,
                    Err(e) => return Ok((Err(e), None)),
                },
            };
            return Ok((Ok(self.classify_users(users)), None));
        };
        let heartbeat = Heartbeat::start(&self.store, worker, vec![org]);
        let users = match self.crm.users().await {
            Ok(users) => users,
            Err(e) => {
                for lease in heartbeat.stop() {
                    release(&self.store, lease).await;
                }
                return Ok((Err(e), None));
            }
        };
        match serde_json::to_string(&users) {
            Ok(text) => match on_store(&self.store, move |s| s.share_crm_users(&text, now)).await {
                Ok(()) => {}
                Err(PassError::Store(e @ StoreError::LeaseLost { .. })) => {
                    tracing::warn!(error = %e, "Lease lost: the CRM's user list was not shared; the worker that took the read over shares it.");
                }
                Err(e) => return Err(e),
            },
            Err(e) => {
                tracing::warn!(error = %e, "The CRM's user list could not be put in the database; the other workers ask the CRM themselves.");
            }
        }
        Ok((Ok(self.classify_users(users)), Some(heartbeat)))
    }

    /// Reads the CRM for every user and puts the result in the database, if this worker holds
    /// the org read's lease (`org`, taken when it listed the users); otherwise another worker
    /// does it. A group read for the first time only sets its cursor: its users then read
    /// their own records in full.
    async fn share_crm_read(
        self: &Arc<Self>,
        worker: &WorkerOptions,
        org: Option<Heartbeat>,
        active: &[SyncUser],
        now: DateTime<Utc>,
    ) -> Result<Result<(), SideError>, PassError> {
        let Some(heartbeat) = org else {
            return Ok(Ok(()));
        };
        let read = self.read_for_inbox(active).await;
        if let Some(wait) = crate::failpoints::hold(crate::failpoints::ORG_READ_UNDELIVERED) {
            tokio::time::sleep(wait).await;
        }
        let lease = heartbeat.stop();
        let outcome = match read {
            Ok(Ok((routed, advances))) => {
                let count = routed.len();
                match on_store(&self.store, move |s| {
                    s.deliver_crm_read(&routed, &advances, now)
                })
                .await
                {
                    Ok(_) => {
                        tracing::info!(worker = %worker.id, changes = count, "Read the CRM for every worker.");
                        match self.retire_departed(active, now).await {
                            Err(PassError::Store(e @ StoreError::LeaseLost { .. })) => {
                                tracing::warn!(error = %e, "Lease lost: the users who left the sync were not retired; the worker that took the read over does it.");
                                Ok(Ok(()))
                            }
                            other => other.map(Ok),
                        }
                    }
                    Err(PassError::Store(e @ StoreError::LeaseLost { .. })) => {
                        tracing::warn!(error = %e, "Lease lost: the CRM read was not delivered; the worker that took it over reads again.");
                        Ok(Ok(()))
                    }
                    Err(e) => Err(e),
                }
            }
            other => other.map(|r| r.map(|_| ())),
        };
        for lease in lease {
            release(&self.store, lease).await;
        }
        outcome
    }

    /// Each group's changes since its cursor, routed to its users; a group with no cursor
    /// yet is paged to its end for the cursor alone.
    async fn read_for_inbox(
        &self,
        users: &[SyncUser],
    ) -> Result<Result<(Vec<RoutedChange>, Vec<CursorAdvance>), SideError>, PassError> {
        let mut routed = Vec::new();
        let mut advances = Vec::new();
        for kind in KINDS {
            for (key, group) in read_groups(kind, users) {
                let scope = CursorScope::crm_object(key.cursor_name(kind));
                let cursor = {
                    let scope = scope.clone();
                    on_store(&self.store, move |s| s.cursor(&scope)).await?
                };
                let filter = key.filter(&group);
                let Some(cursor) = cursor else {
                    let mut position: Option<String> = None;
                    loop {
                        let page = match self
                            .crm
                            .changes_page(kind, position.as_deref(), &filter)
                            .await
                        {
                            Ok(page) => page,
                            Err(e) => return Ok(Err(e)),
                        };
                        position = Some(page.cursor);
                        if !page.more {
                            break;
                        }
                    }
                    advances.push(CursorAdvance {
                        scope,
                        value: position,
                    });
                    continue;
                };
                let read = match self.crm.changes(kind, Some(&cursor), &filter).await {
                    Ok(read) => read,
                    Err(e) => return Ok(Err(e)),
                };
                advances.push(CursorAdvance {
                    scope,
                    value: Some(read.cursor),
                });
                let mut changes = read.changes;
                if let Some(live) = read.live_ids {
                    changes.extend(self.missing_from(kind, &group, &live).await?);
                }
                for (user, change, notes) in self.route(kind, changes, &key, &group).await? {
                    routed.push(RoutedChange {
                        user,
                        kind,
                        change,
                        notes,
                    });
                }
            }
        }
        Ok(Ok((routed, advances)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use exsync_store::{PgOptions, PgStore};

    /// The heartbeat keeps a lease alive well past its length, and once it stops, the lease
    /// lapses and another worker takes the user; a lease taken over is dropped from its set.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_heartbeat_keeps_a_lease_until_stopped_and_drops_one_taken_over() {
        let Some(db) = exsync_testkit::postgres::database() else {
            return;
        };
        let options = PgOptions::new(db.conninfo());
        let open = |options: PgOptions| async move {
            let store: Arc<dyn Store> = Arc::new(
                tokio::task::spawn_blocking(move || PgStore::open(&options).unwrap())
                    .await
                    .unwrap(),
            );
            store
        };
        let mine = open(options.clone()).await;
        let other = open(options).await;
        let worker = WorkerOptions::new(Some("a".into()), Duration::from_millis(400), 1);
        let users = vec![
            UserKey::from_email("alice@example.com"),
            UserKey::from_email("bob@example.com"),
        ];
        let take = |store: &Arc<dyn Store>, who: &'static str, users: Vec<UserKey>| {
            let store = Arc::clone(store);
            async move {
                on_store(&store, move |s| {
                    s.acquire_users(who, &users, 10, Duration::from_millis(400), Duration::ZERO)
                })
                .await
                .unwrap()
            }
        };
        let leases = take(&mine, "a", users.clone()).await;
        assert_eq!(leases.len(), 2);
        let heartbeat = Heartbeat::start(&mine, &worker, leases);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(
            take(&other, "b", users.clone()).await.is_empty(),
            "renewed leases hold"
        );

        // Another worker takes bob over behind the heartbeat's back: it lets him go.
        db.psql("UPDATE user_lease SET holder = 'b', epoch = epoch + 1 WHERE user_key = 'bob@example.com'");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let bob = LeaseScope::User(users[1].clone());
        assert!(!holds(&heartbeat.leases, &bob));
        assert!(holds(
            &heartbeat.leases,
            &LeaseScope::User(users[0].clone())
        ));

        let kept = heartbeat.stop();
        assert_eq!(kept.len(), 1);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            take(&other, "b", vec![users[0].clone()]).await.len(),
            1,
            "a lease not renewed lapses"
        );
    }
}
