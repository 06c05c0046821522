//! A whole pass over the org: who syncs with which configuration, one CRM read per kind for
//! everyone, then each user's pass with bounded concurrency, so one slow or failing mailbox
//! never holds the others. The org-wide CRM cursors move only once every user's pass that read
//! the changes they cover is committed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use exsync_core::config::{effective_configuration, Direction, SyncConfiguration};
use exsync_core::plan::Change;
use exsync_core::{CrmId, ItemId, ItemKind, UserKey};
use exsync_store::{CursorAdvance, CursorScope, Store};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::pass::{
    folder_cursor, on_store, run_user, PassError, SyncUser, UserPass, UserReport, KINDS,
};
use super::sides::{CrmSide, ExchangeSide, OwnedChange, SideError};

/// The sync service's moving parts.
pub struct Syncer<E, C> {
    pub exchange: E,
    pub crm: C,
    pub store: Arc<dyn Store>,
    pub configurations: Vec<SyncConfiguration>,
    /// Users synced at the same time.
    pub concurrency: usize,
}

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct PassOptions {
    /// Only this user; the org-wide CRM cursors then stay where they are.
    pub only_user: Option<UserKey>,
    pub dry_run: bool,
    /// The time the event window is measured from; now when `None`.
    pub now: Option<DateTime<Utc>>,
    /// Set to `true` to stop: users already started finish and commit, the rest are left for
    /// the next pass.
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
}

/// What a pass did.
#[derive(Debug, Default)]
pub struct PassReport {
    pub users: Vec<UserReport>,
    /// Users left out, and why (paused, no configuration).
    pub skipped: Vec<(UserKey, String)>,
    /// Set when the CRM could not be read: no user was synced.
    pub crm_error: Option<SideError>,
    /// The pass was stopped before every user had run.
    pub interrupted: bool,
}

impl PassReport {
    pub fn failed_users(&self) -> usize {
        self.users.iter().filter(|u| u.error.is_some()).count()
    }
}

impl<E, C> Syncer<E, C>
where
    E: ExchangeSide + 'static,
    C: CrmSide + 'static,
{
    /// The users who sync and the configuration each one gets.
    pub async fn sync_users(&self) -> Result<(Vec<SyncUser>, Vec<(UserKey, String)>), SideError> {
        let mut users = Vec::new();
        let mut skipped = Vec::new();
        for crm_user in self.crm.users().await? {
            if !crm_user.active {
                continue;
            }
            let groups = BTreeSet::from([crm_user.profile.clone()]);
            match effective_configuration(&self.configurations, &crm_user.email, &groups) {
                Some((config, _)) => users.push(SyncUser {
                    key: crm_user.email.clone(),
                    crm_id: crm_user.id.clone(),
                    config: Arc::new(config.clone()),
                }),
                None => {
                    skipped.push((crm_user.email.clone(), "no active configuration".to_owned()))
                }
            }
        }
        Ok((users, skipped))
    }

    /// Runs one pass.
    pub async fn run_pass(
        self: &Arc<Self>,
        options: &PassOptions,
    ) -> Result<PassReport, PassError> {
        let now = options.now.unwrap_or_else(Utc::now);
        let mut report = PassReport::default();
        let (mut users, skipped) = match self.sync_users().await {
            Ok(found) => found,
            Err(e) => {
                report.crm_error = Some(e);
                return Ok(report);
            }
        };
        report.skipped = skipped;
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

        let (per_user, org_cursors) = match self.read_crm(&active).await? {
            Ok(read) => read,
            Err(e) => {
                report.crm_error = Some(e);
                return Ok(report);
            }
        };

        let mut per_user = per_user;
        let limit = Arc::new(Semaphore::new(self.concurrency.max(1)));
        let mut jobs = JoinSet::new();
        for user in active {
            let this = Arc::clone(self);
            let limit = Arc::clone(&limit);
            let crm_changes = per_user.remove(&user.key).unwrap_or_default();
            let dry_run = options.dry_run;
            let stop = options.stop.clone();
            jobs.spawn(async move {
                let _slot = limit.acquire_owned().await;
                if stop.as_ref().is_some_and(|s| *s.borrow()) {
                    return (user.key.clone(), None);
                }
                let result = run_user(
                    &this.exchange,
                    &this.crm,
                    &this.store,
                    UserPass {
                        user: &user,
                        crm_changes,
                        now,
                        dry_run,
                    },
                )
                .await;
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
                Ok((_, Some(Ok(user_report)))) => report.users.push(user_report),
                Ok((user, Some(Err(e)))) => {
                    store_failed = true;
                    tracing::error!(user = %user, error = %e, "User pass could not be committed.");
                    report.users.push(UserReport {
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

    /// Reads the CRM once per kind for every user, and in full for users who have no Exchange
    /// cursor yet (new or reset): the org-wide cursor has moved past their existing records.
    #[allow(clippy::type_complexity)]
    async fn read_crm(
        &self,
        users: &[SyncUser],
    ) -> Result<
        Result<
            (
                BTreeMap<UserKey, BTreeMap<ItemKind, Vec<Change>>>,
                Vec<CursorAdvance>,
            ),
            SideError,
        >,
        PassError,
    > {
        let mut per_user: BTreeMap<UserKey, BTreeMap<ItemKind, Vec<Change>>> = BTreeMap::new();
        let mut cursors = Vec::new();
        for kind in KINDS {
            let syncing: Vec<&SyncUser> = users
                .iter()
                .filter(|u| u.config.rules(kind).direction != Direction::Off)
                .collect();
            if syncing.is_empty() {
                continue;
            }
            let owner_of: BTreeMap<&CrmId, &UserKey> =
                syncing.iter().map(|u| (&u.crm_id, &u.key)).collect();
            let mut fresh = Vec::new();
            for user in &syncing {
                let scope = folder_cursor(&user.key, kind);
                if on_store(&self.store, move |s| s.cursor(&scope))
                    .await?
                    .is_none()
                {
                    fresh.push(user.crm_id.clone());
                }
            }
            let scope = CursorScope::crm_object(crm_object(kind));
            let cursor = {
                let scope = scope.clone();
                on_store(&self.store, move |s| s.cursor(&scope)).await?
            };
            let everyone: Vec<CrmId> = syncing.iter().map(|u| u.crm_id.clone()).collect();
            let mut changes = match self.crm.changes(kind, cursor.as_deref(), &everyone).await {
                Ok((found, next)) => {
                    cursors.push(CursorAdvance {
                        scope,
                        value: Some(next),
                    });
                    found
                }
                Err(e) => return Ok(Err(e)),
            };
            if cursor.is_some() && !fresh.is_empty() {
                match self.crm.changes(kind, None, &fresh).await {
                    Ok((found, _)) => changes.extend(found),
                    Err(e) => return Ok(Err(e)),
                }
            }
            let routed = self.route(kind, changes, &owner_of).await?;
            for (user, change) in routed {
                per_user
                    .entry(user)
                    .or_default()
                    .entry(kind)
                    .or_default()
                    .push(change);
            }
        }
        Ok(Ok((per_user, cursors)))
    }
}

impl<E, C> Syncer<E, C>
where
    E: ExchangeSide + 'static,
    C: CrmSide + 'static,
{
    /// Sends each CRM change to the users it concerns: a record to its owner, and a delete or a
    /// change of owner to every user holding a copy (the CRM does not say whose a deleted
    /// record was, and a record given to someone else leaves its previous owner's scope).
    async fn route(
        &self,
        kind: ItemKind,
        changes: Vec<OwnedChange>,
        owner_of: &BTreeMap<&CrmId, &UserKey>,
    ) -> Result<Vec<(UserKey, Change)>, PassError> {
        let ids: Vec<CrmId> = changes
            .iter()
            .filter_map(|c| match c.change.id() {
                ItemId::Crm(id) => Some(id.clone()),
                ItemId::Exchange(_) => None,
            })
            .collect();
        let mut holders: BTreeMap<CrmId, Vec<UserKey>> = BTreeMap::new();
        for (id, user) in on_store(&self.store, move |s| s.crm_pair_users(kind, &ids)).await? {
            holders.entry(id).or_default().push(user);
        }
        let mut routed = Vec::new();
        for OwnedChange { owner, change } in changes {
            let owner = owner
                .as_ref()
                .and_then(|o| owner_of.get(o))
                .map(|u| (*u).clone());
            let holding = match change.id() {
                ItemId::Crm(id) => holders.get(id).cloned().unwrap_or_default(),
                ItemId::Exchange(_) => Vec::new(),
            };
            for holder in holding.iter().filter(|h| Some(*h) != owner.as_ref()) {
                let moved = match &change {
                    Change::Upsert(item) => Change::OutOfScope {
                        id: item.id.clone(),
                    },
                    other => other.clone(),
                };
                routed.push((holder.clone(), moved));
            }
            if let Some(owner) = owner {
                routed.push((owner, change));
            }
        }
        Ok(routed)
    }
}

/// The CRM object whose org-wide cursor a kind uses.
pub fn crm_object(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Contact => "Contact",
        ItemKind::Event => "Event",
    }
}
