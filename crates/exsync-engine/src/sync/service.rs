//! A whole pass over the org: who syncs with which configuration, one CRM read per kind for
//! everyone, then each user's pass with bounded concurrency, so one slow or failing mailbox
//! never holds the others. The org-wide CRM cursors move only once every user's pass that read
//! the changes they cover is committed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use exsync_core::config::{
    effective_configuration, AssignedBy, ContactScope, Direction, KindRules, SyncConfiguration,
};
use exsync_core::plan::{record_keys, Change};
use exsync_core::{CrmId, ItemId, ItemKind, UserKey};
use exsync_store::{CrmUserSkip, CursorAdvance, CursorScope, Store, SKIPPED_ADDRESS_MAX};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::exchange_slots::Turn;
use super::pass::{
    folder_cursor, on_store, run_user, FullRead, Notes, PassError, SyncUser, UserPass, UserReport,
    KINDS,
};
use super::sides::{CrmFilter, CrmSide, CrmUser, MailboxSide, OwnedChange, SideError};
use super::spool::{Spool, ToSpool};
use super::workers::WorkerOptions;

/// The sync service's moving parts.
pub struct Syncer<E, C> {
    /// The mailbox side: one backend, or the router that picks each user's
    /// ([`super::mailboxes::Mailboxes`]).
    pub exchange: E,
    /// The CRM side, read once per pass and kind for every user.
    pub crm: C,
    /// The state database: every user's pairs, cursors, intent journal and run history, and the
    /// org-wide CRM cursors.
    pub store: Arc<dyn Store>,
    /// The sync configurations from `exsync.toml`; each CRM user gets the one that assigns them,
    /// and a user none assigns is not synced.
    pub configurations: Vec<SyncConfiguration>,
    /// Users synced at the same time.
    pub concurrency: usize,
    /// Records a user's pass plans, writes and commits at once (see [`super::pass::SLICE`]).
    pub slice: usize,
    /// Set when this process is one of several workers on a shared store: its passes then
    /// take their users by lease ([`super::workers`]). Ignored on a store only one process
    /// uses.
    pub worker: Option<WorkerOptions>,
}

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct PassOptions {
    /// Only this user; the org-wide CRM cursors then stay where they are.
    pub only_user: Option<UserKey>,
    /// Plan only: nothing is written to either side or to the store, and each user's report keeps
    /// the plan.
    pub dry_run: bool,
    /// The time the event window is measured from; now when `None`.
    pub now: Option<DateTime<Utc>>,
    /// Set to `true` to stop: users already started finish and commit, the rest are left for
    /// the next pass.
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
    /// Called as each user's pass ends (progress display).
    pub progress: Option<Progress>,
    /// On a store several workers share: a user (or the org-wide CRM read) another worker
    /// finished less than this long ago is left for a later pass. The service sets half its
    /// interval, so workers whose passes overlap do not each sync a user or read the CRM in
    /// turn; a pass run by hand takes every user.
    pub rest: std::time::Duration,
}

/// A callback told of each finished user pass.
#[derive(Clone)]
pub struct Progress(pub Arc<dyn Fn(&UserReport) + Send + Sync>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

/// What a pass did.
#[derive(Debug, Default)]
pub struct PassReport {
    /// One report per user whose pass ran, ordered by user.
    pub users: Vec<UserReport>,
    /// Users left out, and why (paused, no configuration).
    pub skipped: Vec<(UserKey, String)>,
    /// Users a configuration names by address that no active CRM user matches, with why: they
    /// cannot sync until the CRM has them.
    pub missing_users: Vec<(UserKey, String)>,
    /// Active CRM users left out because their address cannot name a mailbox (kept in the
    /// store too, see [`exsync_store::SyncState::skipped_crm_users`]).
    pub skipped_crm_users: Vec<CrmUserSkip>,
    /// Set when the CRM could not be read: no user was synced.
    pub crm_error: Option<SideError>,
    /// The pass was stopped before every user had run.
    pub interrupted: bool,
    /// Sync is switched off (console): nothing was read or written.
    pub disabled: bool,
}

impl PassReport {
    /// How many users' passes ended with an error.
    pub fn failed_users(&self) -> usize {
        self.users.iter().filter(|u| u.error.is_some()).count()
    }
}

impl<E, C> Syncer<E, C>
where
    E: MailboxSide + 'static,
    C: CrmSide + 'static,
{
    /// The users who sync and the configuration each one gets; the users no configuration
    /// assigns; and the active users whose address cannot name a mailbox.
    pub async fn sync_users(&self) -> Result<SyncUsers, SideError> {
        Ok(self.classify_users(self.crm.users().await?))
    }

    /// [`Self::sync_users`] of a list already read.
    pub(super) fn classify_users(&self, crm_users: Vec<CrmUser>) -> SyncUsers {
        let mut found = SyncUsers::default();
        let mut inactive = BTreeSet::new();
        for crm_user in crm_users {
            if !crm_user.active {
                if let Ok(key) = UserKey::parse(&crm_user.email) {
                    inactive.insert(key);
                }
                continue;
            }
            let groups = BTreeSet::from([crm_user.profile.clone()]);
            // Under a pairing rule other than Email many users may leave the field empty; only
            // those a configuration's group would sync are worth an admin's attention.
            if crm_user.email.trim().is_empty() {
                if effective_configuration(&self.configurations, &UserKey::new(""), &groups)
                    .is_some()
                {
                    found.invalid.push(CrmUserSkip {
                        crm_id: crm_user.id.clone(),
                        address: String::new(),
                        reason: format!(
                            "the CRM user's {} field is empty, so it names no mailbox",
                            self.crm.mailbox_field()
                        ),
                    });
                }
                continue;
            }
            // The address becomes the key of a mailbox that credentials are used on, so it is
            // checked first, before any configuration is matched against it.
            let key = match UserKey::parse(&crm_user.email) {
                Ok(key) => key,
                Err(why) => {
                    found.invalid.push(CrmUserSkip {
                        crm_id: crm_user.id.clone(),
                        address: crm_user.email.chars().take(SKIPPED_ADDRESS_MAX).collect(),
                        reason: format!(
                            "the CRM user's {} field cannot name a mailbox: {why}",
                            self.crm.mailbox_field()
                        ),
                    });
                    continue;
                }
            };
            match effective_configuration(&self.configurations, &key, &groups) {
                Some((config, by)) => found.users.push(SyncUser {
                    key,
                    crm_id: crm_user.id.clone(),
                    config: Arc::new(config.clone()),
                    time_zone: crm_user.time_zone.clone(),
                    group: (by == AssignedBy::Group).then(|| crm_user.profile.clone()),
                }),
                None => found
                    .unassigned
                    .push((key, "no active configuration".to_owned())),
            }
        }
        found.missing = self.missing_users(&found, &inactive);
        found
    }

    /// The users active configurations name by address that no active CRM user matched.
    fn missing_users(
        &self,
        found: &SyncUsers,
        inactive: &BTreeSet<UserKey>,
    ) -> Vec<(UserKey, String)> {
        let syncing: BTreeSet<&UserKey> = found.users.iter().map(|u| &u.key).collect();
        let named: BTreeSet<&UserKey> = self
            .configurations
            .iter()
            .filter(|c| c.active)
            .flat_map(|c| &c.users)
            .collect();
        named
            .into_iter()
            .filter(|key| !syncing.contains(key))
            .map(|key| {
                let why = if inactive.contains(key) {
                    "the CRM user with this address is inactive".to_owned()
                } else {
                    format!(
                        "no active CRM user has this address in their {} field",
                        self.crm.mailbox_field()
                    )
                };
                (key.clone(), why)
            })
            .collect()
    }

    /// Runs one pass.
    pub async fn run_pass(
        self: &Arc<Self>,
        options: &PassOptions,
    ) -> Result<PassReport, PassError> {
        let now = options.now.unwrap_or_else(Utc::now);
        let mut report = PassReport::default();
        // An admin can switch sync off in the console; a pass then does nothing at all.
        let enabled = on_store(&self.store, |s| crate::switch::is_enabled(s)).await?;
        if !enabled {
            report.disabled = true;
            return Ok(report);
        }
        // A worker's pass lists the CRM's users only if it holds the org-wide read; the
        // others take the list that worker shared, so CRM calls do not grow with workers.
        let as_worker = self
            .worker
            .as_ref()
            .filter(|_| self.store.shared() && !options.dry_run && options.only_user.is_none());
        let (listed, org) = match as_worker {
            Some(worker) => self.list_users_as_worker(worker, options.rest, now).await?,
            None => (self.sync_users().await, None),
        };
        let SyncUsers {
            mut users,
            unassigned,
            invalid,
            missing,
        } = match listed {
            Ok(found) => found,
            Err(e) => {
                report.crm_error = Some(e);
                return Ok(report);
            }
        };
        report.skipped = unassigned;
        report.missing_users = missing;
        if !options.dry_run {
            let recorded = invalid.clone();
            let unmatched = report.missing_users.clone();
            on_store(&self.store, move |s| {
                s.record_skipped_crm_users(&recorded, now)?;
                // For `exsync status` and the console, which the pass's report never reaches.
                s.record_unmatched_users(&unmatched, now)
            })
            .await?;
        }
        report.skipped_crm_users = invalid;
        if let Some(only) = &options.only_user {
            users.retain(|u| &u.key == only);
            report.skipped.retain(|(key, _)| key == only);
        }
        let mut active = Vec::new();
        for user in users {
            let key = user.key.clone();
            let status = on_store(&self.store, move |s| s.user_status(&key)).await?;
            match status.and_then(|s| s.paused) {
                Some(pause) => report
                    .skipped
                    .push((user.key.clone(), format!("paused: {}", pause.reason))),
                None => active.push(user),
            }
        }

        if let Some(worker) = &self.worker {
            // A one-user pass (dry or not) writes no org cursor; it takes that user's lease
            // and then runs as a single process would. A dry run of every user writes nothing
            // at all and takes no lease.
            if self.store.shared() && options.only_user.is_some() && !active.is_empty() {
                return self
                    .run_by_hand_for_one(worker, active, report, options, now)
                    .await;
            }
            if as_worker.is_some() {
                return self
                    .run_as_worker(worker, org, active, report, options, now)
                    .await;
            }
        }
        self.run_local(active, report, options, now).await
    }

    /// The users in `active`, with the CRM read here for them: a single process's pass, or a
    /// pass by hand.
    pub(super) async fn run_local(
        self: &Arc<Self>,
        active: Vec<SyncUser>,
        mut report: PassReport,
        options: &PassOptions,
        now: DateTime<Utc>,
    ) -> Result<PassReport, PassError> {
        let OrgRead {
            mut per_user,
            mut notes,
            mut full_reads,
            cursors: org_cursors,
            // Each user's full read holds the spool; it goes when the last of them ends.
            spool: _,
        } = match self.read_crm(&active).await? {
            Ok(read) => read,
            Err(e) => {
                report.crm_error = Some(e);
                return Ok(report);
            }
        };
        // A pass for one user, or a dry run, leaves the others' marks as they are.
        if options.only_user.is_none() && !options.dry_run {
            self.retire_departed(&active, now).await?;
        }

        let limit = Arc::new(Semaphore::new(self.concurrency.max(1)));
        let mut jobs = JoinSet::new();
        for user in active {
            let this = Arc::clone(self);
            let limit = Arc::clone(&limit);
            let crm_changes = per_user.remove(&user.key).unwrap_or_default();
            let crm_notes = notes.remove(&user.key).unwrap_or_default();
            let mut crm_full_reads = full_reads.remove(&user.key).unwrap_or_default();
            let dry_run = options.dry_run;
            let stop = options.stop.clone();
            jobs.spawn(async move {
                let _slot = limit.acquire_owned().await;
                if stop.as_ref().is_some_and(|s| *s.borrow()) {
                    return (user.key.clone(), None);
                }
                // A pass by hand beside running workers shares Exchange's cap with them.
                let turn = match this.exchange_turn(&user.key, stop.as_ref()).await {
                    Ok(Turn::Stopping) => return (user.key.clone(), None),
                    Ok(turn) => turn,
                    Err(e) => return (user.key.clone(), Some(Err(e))),
                };
                let back = match this.read_in_full_if_back(&user, &mut crm_full_reads).await {
                    Ok(back) => back,
                    Err(e) => {
                        turn.end().await;
                        return (user.key.clone(), Some(Err(e)));
                    }
                };
                let result = run_user(
                    &this.exchange,
                    &this.crm,
                    &this.store,
                    UserPass {
                        user: &user,
                        crm_changes,
                        crm_notes,
                        crm_full_reads,
                        now,
                        dry_run,
                        slice: this.slice,
                    },
                )
                .await;
                turn.end().await;
                let result = match result {
                    Ok(done) if !dry_run => this.settle_return(back, &done).await.map(|()| done),
                    other => other,
                };
                (user.key.clone(), Some(result))
            });
        }
        let mut store_failed = false;
        while let Some(joined) = jobs.join_next().await {
            match joined {
                Ok((user, None)) => {
                    report.interrupted = true;
                    report
                        .skipped
                        .push((user, "not started: the service is stopping".to_owned()));
                }
                Ok((_, Some(Ok(user_report)))) => {
                    if let Some(progress) = &options.progress {
                        (progress.0)(&user_report);
                    }
                    report.users.push(user_report);
                }
                Ok((user, Some(Err(e)))) => {
                    store_failed = true;
                    tracing::error!(user = %user, error = %e, "User pass could not be committed.");
                    report.users.push(UserReport {
                        backend: Some(self.exchange.backend(&user)),
                        user: Some(user),
                        error: Some(e.to_string()),
                        ..UserReport::default()
                    });
                }
                Err(e) => {
                    store_failed = true;
                    tracing::error!(error = %e, "User pass task failed.");
                }
            }
        }
        report.users.sort_by(|a, b| a.user.cmp(&b.user));

        // A pass for one user, a dry run, or a pass whose results did not all reach the store
        // leaves the org-wide cursors where they are: reading the same changes again is
        // harmless (they are echoes by then), skipping them is not.
        if options.only_user.is_none()
            && !options.dry_run
            && !store_failed
            && !report.interrupted
            && !org_cursors.is_empty()
        {
            on_store(&self.store, move |s| {
                s.advance_org_cursors(&org_cursors, now)
            })
            .await?;
        }
        Ok(report)
    }

    /// Reads the CRM once per kind and filter group for every user (and notes which users
    /// read their own records in full in their job).
    async fn read_crm(&self, users: &[SyncUser]) -> Result<Result<OrgRead, SideError>, PassError> {
        let mut read = OrgRead::default();
        for kind in KINDS {
            // Users reading the same records (same scope and condition) share one read.
            for (key, group) in read_groups(kind, users) {
                let found = match self
                    .read_group(kind, &key, &group, &mut read.cursors, &mut read.spool)
                    .await?
                {
                    Ok(found) => found,
                    Err(e) => return Ok(Err(e)),
                };
                for (user, filter) in found.fresh {
                    read.full_reads
                        .entry(user)
                        .or_default()
                        .insert(kind, filter);
                }
                for (user, change, notes) in self.route(kind, found.changes, &key, &group).await? {
                    // What the last change of a record says stands.
                    let by_id = read
                        .notes
                        .entry(user.clone())
                        .or_default()
                        .entry(kind)
                        .or_default();
                    if notes.is_empty() {
                        by_id.remove(change.id());
                    } else {
                        by_id.insert(change.id().clone(), notes);
                    }
                    read.per_user
                        .entry(user)
                        .or_default()
                        .entry(kind)
                        .or_default()
                        .push(change);
                }
            }
        }
        Ok(Ok(read))
    }
}

impl<E, C> Syncer<E, C>
where
    E: MailboxSide + 'static,
    C: CrmSide + 'static,
{
    /// Deletions found by a full reconciliation: synced records no longer among the live ids.
    pub(super) async fn missing_from(
        &self,
        kind: ItemKind,
        users: &[&SyncUser],
        live: &BTreeSet<CrmId>,
    ) -> Result<Vec<OwnedChange>, PassError> {
        let mut gone = BTreeSet::new();
        for user in users {
            let key = user.key.clone();
            for pair in on_store(&self.store, move |s| s.load_pairs(&key, kind)).await? {
                if !live.contains(&pair.crm_id) {
                    gone.insert(pair.crm_id);
                }
            }
        }
        Ok(gone
            .into_iter()
            .map(|id| {
                OwnedChange::new(
                    None,
                    Change::Deleted {
                        id: ItemId::Crm(id),
                    },
                )
            })
            .collect())
    }

    /// Reads one group's changes since its cursor, and in full for its users who have no
    /// Exchange cursor yet (new or reset): the group cursor has moved past their records. With
    /// no group cursor yet (the org's first pass), reads every record of the group once and
    /// spools it for its users ([`Self::read_group_in_full`]).
    async fn read_group(
        &self,
        kind: ItemKind,
        key: &CrmFilterKey,
        group: &[&SyncUser],
        cursors: &mut Vec<CursorAdvance>,
        spool: &mut Option<Arc<Spool>>,
    ) -> Result<Result<GroupRead, SideError>, PassError> {
        let scope = CursorScope::crm_object(key.cursor_name(kind));
        // The org's cursor and which users have an Exchange cursor, in one store call: one
        // call per user cost each user's pass a round trip to a blocking thread.
        let (cursor, read_before) = {
            let scope = scope.clone();
            let folders: Vec<CursorScope> = group
                .iter()
                .map(|user| folder_cursor(&user.key, kind))
                .collect();
            on_store(&self.store, move |s| {
                let cursor = s.cursor(&scope)?;
                let read_before = match &cursor {
                    None => Vec::new(),
                    Some(_) => folders
                        .iter()
                        .map(|folder| Ok(s.cursor(folder)?.is_some()))
                        .collect::<Result<Vec<bool>, _>>()?,
                };
                Ok((cursor, read_before))
            })
            .await?
        };
        // Users without an Exchange cursor (new, or reset) read all their records, in their
        // own job: one user's records in memory at a time, not the whole org's.
        let fresh: Vec<(UserKey, FullRead)> = group
            .iter()
            .enumerate()
            .filter(|(at, _)| !read_before.get(*at).copied().unwrap_or(false))
            .map(|(_, user)| (user.key.clone(), FullRead::Crm(key.filter(&[*user]))))
            .collect();
        let filter = key.filter(group);
        let Some(cursor) = cursor else {
            let spool = match spool {
                Some(spool) => Arc::clone(spool),
                None => Arc::clone(spool.insert(Arc::new(Spool::new()?))),
            };
            return self
                .read_group_in_full(kind, key, group, &filter, scope, cursors, spool)
                .await;
        };
        match self.crm.changes(kind, Some(&cursor), &filter).await {
            Ok(read) => {
                cursors.push(CursorAdvance {
                    scope,
                    value: Some(read.cursor),
                });
                let mut changes = read.changes;
                if let Some(live) = read.live_ids {
                    changes.extend(self.missing_from(kind, group, &live).await?);
                }
                Ok(Ok(GroupRead { changes, fresh }))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// The org's first read of a group: every record the group's filter admits, page by page,
    /// routed to its users and spooled on disk as it comes, so memory stays flat and the CRM
    /// is asked once per page, not once per user. Every user of the group then reads their
    /// records in full from the spool; the group cursor ends where the read did.
    #[allow(clippy::too_many_arguments)]
    async fn read_group_in_full(
        &self,
        kind: ItemKind,
        key: &CrmFilterKey,
        group: &[&SyncUser],
        filter: &CrmFilter,
        scope: CursorScope,
        cursors: &mut Vec<CursorAdvance>,
        spool: Arc<Spool>,
    ) -> Result<Result<GroupRead, SideError>, PassError> {
        let mut page = match self.crm.changes_page(kind, None, filter).await {
            Ok(page) => page,
            Err(e) => return Ok(Err(e)),
        };
        // Each page is routed and spooled while the next is read: the CRM's latency and its
        // answer's parsing overlap the spool's writes.
        let position = loop {
            let (changes, position) = (std::mem::take(&mut page.changes), page.cursor.clone());
            let spooling = async {
                let routed = self.route(kind, changes, key, group).await?;
                let routed = to_spool(kind, group, routed);
                let spool = Arc::clone(&spool);
                tokio::task::spawn_blocking(move || spool.put(kind, &routed))
                    .await
                    .map_err(|e| PassError::Join(e.to_string()))?
                    .map_err(PassError::from)
            };
            let reading = async {
                match page.more {
                    true => Some(self.crm.changes_page(kind, Some(&position), filter).await),
                    false => None,
                }
            };
            let (spooled, next) = tokio::join!(spooling, reading);
            spooled?;
            match next {
                Some(Ok(next)) => page = next,
                Some(Err(e)) => return Ok(Err(e)),
                None => break position,
            }
        };
        cursors.push(CursorAdvance {
            scope,
            value: Some(position),
        });
        Ok(Ok(GroupRead {
            changes: Vec::new(),
            fresh: group
                .iter()
                .map(|u| (u.key.clone(), FullRead::Spooled(Arc::clone(&spool))))
                .collect(),
        }))
    }

    /// Sends each CRM change to the users it concerns: a record to its owner (to every user of
    /// a `visible` group), and a delete or a change of owner to every user holding a copy (the
    /// CRM does not say whose a deleted record was, and a record given to someone else leaves
    /// its previous owner's scope).
    pub(super) async fn route(
        &self,
        kind: ItemKind,
        changes: Vec<OwnedChange>,
        key: &CrmFilterKey,
        group: &[&SyncUser],
    ) -> Result<Vec<(UserKey, Change, Vec<String>)>, PassError> {
        let owner_of: BTreeMap<&CrmId, &UserKey> =
            group.iter().map(|u| (&u.crm_id, &u.key)).collect();
        let members: BTreeSet<&UserKey> = group.iter().map(|u| &u.key).collect();
        let ids: Vec<CrmId> = changes
            .iter()
            .filter_map(|c| match c.change.id() {
                ItemId::Crm(id) => Some(id.clone()),
                ItemId::Exchange(_) => None,
            })
            .collect();
        let mut holders: BTreeMap<CrmId, Vec<UserKey>> = BTreeMap::new();
        for (id, user) in on_store(&self.store, move |s| s.crm_pair_users(kind, &ids)).await? {
            // Another group's users hear of this record through their own read.
            if members.contains(&user) {
                holders.entry(id).or_default().push(user);
            }
        }
        let mut routed = Vec::new();
        for OwnedChange {
            owner,
            change,
            notes,
        } in changes
        {
            let recipients: Vec<UserKey> = match (&change, key.visible) {
                (Change::Deleted { .. }, _) => Vec::new(),
                (_, true) => group.iter().map(|u| u.key.clone()).collect(),
                (_, false) => owner
                    .as_ref()
                    .and_then(|o| owner_of.get(o))
                    .map(|u| vec![(*u).clone()])
                    .unwrap_or_default(),
            };
            let holding = match change.id() {
                ItemId::Crm(id) => holders.get(id).cloned().unwrap_or_default(),
                ItemId::Exchange(_) => Vec::new(),
            };
            for holder in holding.iter().filter(|h| !recipients.contains(h)) {
                let moved = match &change {
                    Change::Upsert(item) => Change::OutOfScope {
                        id: item.id.clone(),
                    },
                    other => other.clone(),
                };
                routed.push((holder.clone(), moved, Vec::new()));
            }
            // Most records have one recipient, who takes the change itself.
            if let Some((last, others)) = recipients.split_last() {
                for recipient in others {
                    routed.push((recipient.clone(), change.clone(), notes.clone()));
                }
                routed.push((last.clone(), change, notes));
            }
        }
        Ok(routed)
    }
}

/// Routed changes as the spool takes them, each with its match keys under its user's rules,
/// so that the user's pass stages it without reading it (see `Spool`).
fn to_spool(
    kind: ItemKind,
    group: &[&SyncUser],
    routed: Vec<(UserKey, Change, Vec<String>)>,
) -> Vec<ToSpool> {
    let rules: BTreeMap<&UserKey, &KindRules> = group
        .iter()
        .map(|u| (&u.key, u.config.rules(kind)))
        .collect();
    routed
        .into_iter()
        .map(|(user, change, notes)| {
            let keys = match (&change, rules.get(&user)) {
                (Change::Upsert(item), Some(rules)) => record_keys(kind, rules, item),
                _ => Vec::new(),
            };
            ToSpool {
                user,
                change,
                notes,
                keys,
            }
        })
        .collect()
}

/// The CRM's users, sorted for a pass.
#[derive(Debug, Default)]
pub struct SyncUsers {
    /// Those who sync, with their configuration.
    pub users: Vec<SyncUser>,
    /// Those no active configuration assigns.
    pub unassigned: Vec<(UserKey, String)>,
    /// Active users whose address cannot name a mailbox, with the reason.
    pub invalid: Vec<CrmUserSkip>,
    /// Addresses active configurations name that no active CRM user has, with the reason.
    pub missing: Vec<(UserKey, String)>,
}

/// What the org-wide read found, for the user passes.
#[derive(Default)]
struct OrgRead {
    per_user: BTreeMap<UserKey, BTreeMap<ItemKind, Vec<Change>>>,
    /// What had to be cut from the records routed to each user for them to fit Exchange.
    notes: BTreeMap<UserKey, BTreeMap<ItemKind, Notes>>,
    /// Users who read their own records in full, and where from.
    full_reads: BTreeMap<UserKey, BTreeMap<ItemKind, FullRead>>,
    cursors: Vec<CursorAdvance>,
    /// The org's first read of the groups that had no cursor yet, routed to their users.
    spool: Option<Arc<Spool>>,
}

/// What one group's read found: the changes to route, and the users who read in full.
struct GroupRead {
    changes: Vec<OwnedChange>,
    fresh: Vec<(UserKey, FullRead)>,
}

/// Which CRM records a configuration reads for a kind; users with equal keys share one read
/// and one org-wide cursor.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CrmFilterKey {
    /// Every record (that the condition admits), not only the user's own.
    pub visible: bool,
    /// The configuration's extra SOQL condition, if any.
    pub condition: Option<String>,
}

impl CrmFilterKey {
    pub(super) fn of(kind: ItemKind, config: &SyncConfiguration) -> CrmFilterKey {
        match kind {
            ItemKind::Contact => CrmFilterKey {
                visible: config.contact_scope == ContactScope::Visible,
                condition: config.contact_condition.clone(),
            },
            ItemKind::Event => CrmFilterKey {
                visible: false,
                condition: None,
            },
        }
    }

    /// The read of these users' records: their own, or every record for a `visible` group.
    pub(super) fn filter(&self, users: &[&SyncUser]) -> CrmFilter {
        CrmFilter {
            owners: if self.visible {
                Vec::new()
            } else {
                users.iter().map(|u| u.crm_id.clone()).collect()
            },
            condition: self.condition.clone(),
        }
    }

    /// The cursor's name: the object, plus what sets this read apart from the plain one.
    pub(super) fn cursor_name(&self, kind: ItemKind) -> String {
        let mut name = crm_object(kind).to_owned();
        if self.visible {
            name.push_str(" visible");
        }
        if let Some(condition) = &self.condition {
            name.push_str(&format!(" where {condition}"));
        }
        name
    }
}

/// The users that sync `kind`, by the CRM read they share: users reading the same records
/// (same scope and condition) share one read and one org-wide cursor.
pub(super) fn read_groups(
    kind: ItemKind,
    users: &[SyncUser],
) -> BTreeMap<CrmFilterKey, Vec<&SyncUser>> {
    let mut groups: BTreeMap<CrmFilterKey, Vec<&SyncUser>> = BTreeMap::new();
    for user in users
        .iter()
        .filter(|u| u.config.rules(kind).direction != Direction::Off)
    {
        groups
            .entry(CrmFilterKey::of(kind, &user.config))
            .or_default()
            .push(user);
    }
    groups
}

/// The CRM object whose org-wide cursor a kind uses.
pub fn crm_object(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Contact => "Contact",
        ItemKind::Event => "Event",
    }
}
