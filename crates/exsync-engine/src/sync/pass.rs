//! One user's pass: read what changed on both sides, plan, write, and commit what was written
//! together with the cursors that cover it, in one store transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use exsync_core::config::SyncConfiguration;
use exsync_core::plan::{
    link_unpaired, out_of_scope, plan_unchecked, record_keys, settle, valve, Change, NewRecords,
    Op, PlanInput, SyncedPair, WriteResult,
};
use exsync_core::{CrmId, ExchangeId, ItemId, ItemKind, Side, UserKey};
use exsync_store::{
    ConflictEntry, CrmWrite, CursorAdvance, CursorScope, ItemRef, PairKey, PassCommit, RunCounts,
    Store, StoreError, UnresolvedReport,
};

use super::sides::{CrmFilter, CrmSide, ExchangeSide, OwnedChange, SideError, Write};
use super::stage::{Stage, StageError, StagedRecord};

/// How many records a pass plans, writes and commits at once: a pass holds about this many
/// records (and one page of each side's reads) in memory, whatever the mailbox's size.
pub const SLICE: usize = 500;

/// A user the service syncs, with the configuration that applies to them.
#[derive(Debug, Clone)]
pub struct SyncUser {
    pub key: UserKey,
    pub crm_id: CrmId,
    pub config: Arc<SyncConfiguration>,
}

/// What one user's pass did.
#[derive(Debug, Clone, Default)]
pub struct UserReport {
    pub user: Option<UserKey>,
    pub counts: RunCounts,
    /// Why (part of) the pass failed; the records involved are fetched again next pass.
    pub error: Option<String>,
    /// Set when the safety valve paused the user in this pass.
    pub paused: Option<String>,
    /// The plan, per kind (kept for `--dry-run`).
    pub plans: Vec<(ItemKind, Vec<Op>)>,
}

/// Where the pass stopped, when it could not go on at all.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("state database: {0}")]
    Store(#[from] StoreError),
    #[error("state database task: {0}")]
    Join(String),
    #[error(transparent)]
    Stage(#[from] StageError),
}

pub const KINDS: [ItemKind; 2] = [ItemKind::Contact, ItemKind::Event];

/// The Exchange cursor of one user's folder for one kind.
pub fn folder_cursor(user: &UserKey, kind: ItemKind) -> CursorScope {
    CursorScope::folder(user, kind.as_str())
}

/// What the service stores as a mailbox folder's cursor: Exchange's SyncState, and the items
/// the pass itself created after reading it (see where it is read).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct FolderCursor {
    state: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    created: Vec<ExchangeId>,
    /// The folder's id and ChangeKey, so a new process need not look it up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    folder: Option<(String, String)>,
}

impl FolderCursor {
    fn parse(text: Option<&str>) -> FolderCursor {
        match text {
            None => FolderCursor::default(),
            // A bare SyncState, as stored before the created items were remembered.
            Some(text) => serde_json::from_str(text).unwrap_or_else(|_| FolderCursor {
                state: Some(text.to_owned()),
                created: Vec::new(),
                folder: None,
            }),
        }
    }

    fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| self.state.clone().unwrap_or_default())
    }
}

/// Runs a blocking store call off the async threads.
pub async fn on_store<T, F>(store: &Arc<dyn Store>, f: F) -> Result<T, PassError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
{
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| PassError::Join(e.to_string()))?
        .map_err(PassError::from)
}

/// What had to be cut or left out of CRM records for them to fit Exchange, by record (see
/// `exsync_core::Contact::sanitize`). The records sync without it; the pass keeps each one
/// unresolved with these reasons, so the admin sees why Exchange differs from the CRM.
pub type Notes = BTreeMap<ItemId, Vec<String>>;

/// Inputs of one user's pass besides the sides and the store.
pub struct UserPass<'a> {
    pub user: &'a SyncUser,
    /// What the org-wide CRM read found for this user, per kind.
    pub crm_changes: BTreeMap<ItemKind, Vec<Change>>,
    /// What had to be cut from those records, per kind.
    pub crm_notes: BTreeMap<ItemKind, Notes>,
    /// Kinds whose CRM records this user reads in full in this pass (new or reset), and how.
    pub crm_full_reads: BTreeMap<ItemKind, CrmFilter>,
    pub now: DateTime<Utc>,
    /// Plan only: nothing is written to either side or to the store.
    pub dry_run: bool,
    /// Records per slice (see [`SLICE`]).
    pub slice: usize,
}

/// Runs one user's pass and commits it. Errors of a side end the pass for this user only:
/// the CRM changes it could not apply are recorded as unresolved, so they are fetched again.
pub async fn run_user<E: ExchangeSide, C: CrmSide>(
    exchange: &E,
    crm: &C,
    store: &Arc<dyn Store>,
    pass: UserPass<'_>,
) -> Result<UserReport, PassError> {
    let started = Utc::now();
    let user = pass.user;
    let mut report = UserReport {
        user: Some(user.key.clone()),
        ..UserReport::default()
    };
    let mut commit = PassCommit::new(user.key.clone(), started, started);
    let unresolved = {
        let key = user.key.clone();
        on_store(store, move |s| s.unresolved(&key)).await?
    };

    // The mailbox is made ready (the sync folder created) once; after that, the folders
    // stored with the cursors are used as they are.
    let mut known = true;
    for kind in KINDS {
        if user.config.rules(kind).direction == exsync_core::config::Direction::Off {
            continue;
        }
        let scope = folder_cursor(&user.key, kind);
        let stored = on_store(store, move |s| s.cursor(&scope)).await?;
        known &= FolderCursor::parse(stored.as_deref()).folder.is_some();
    }
    let prepared = if pass.dry_run || known {
        Ok(())
    } else {
        exchange.prepare(&user.key).await
    };
    for kind in KINDS {
        let crm_changes = pass.crm_changes.get(&kind).cloned().unwrap_or_default();
        let crm_notes = pass.crm_notes.get(&kind).cloned().unwrap_or_default();
        if user.config.rules(kind).direction == exsync_core::config::Direction::Off {
            continue;
        }
        let retry: Vec<ItemId> = unresolved
            .iter()
            .filter(|u| u.kind == kind)
            .map(|u| u.id.clone())
            .collect();
        let result = match &prepared {
            Err(e) => Err(e.clone()),
            Ok(()) => {
                let kind_pass = KindPass {
                    exchange,
                    crm,
                    store,
                    user,
                    kind,
                    now: pass.now,
                    dry_run: pass.dry_run,
                    slice: pass.slice.max(1),
                };
                let full_read = pass.crm_full_reads.get(&kind);
                kind_pass
                    .run(
                        crm_changes.clone(),
                        crm_notes,
                        full_read,
                        &retry,
                        &mut commit,
                        &mut report,
                    )
                    .await?
            }
        };
        if let Err(e) = result {
            // Nothing of this kind was written. Keep what the CRM reported, so the changes
            // are fetched again instead of being lost with the org-wide cursor.
            let reason = format!("{kind}s not synced: {e}");
            commit
                .unresolved
                .extend(crm_changes.iter().map(|c| UnresolvedReport {
                    kind,
                    id: c.id().clone(),
                    reason: reason.clone(),
                }));
            report.error.get_or_insert(reason);
        }
    }

    if pass.dry_run {
        return Ok(report);
    }
    commit.finished = Utc::now();
    commit.counts = report.counts;
    commit.error = report.error.clone();
    on_store(store, move |s| s.commit_pass(&commit)).await?;
    Ok(report)
}

/// One kind of one user's pass.
struct KindPass<'a, E, C> {
    exchange: &'a E,
    crm: &'a C,
    store: &'a Arc<dyn Store>,
    user: &'a SyncUser,
    kind: ItemKind,
    now: DateTime<Utc>,
    dry_run: bool,
    slice: usize,
}

impl<E: ExchangeSide, C: CrmSide> KindPass<'_, E, C> {
    /// Returns `Ok(Err(_))` when a side failed (the user's problem), `Err` when the store did.
    ///
    /// Both sides are read page by page into a [`Stage`] on disk, then planned, written and
    /// committed in slices of `slice` records: the pairs that changed first (the safety valve
    /// weighs all their deletes before anything is written), then the records no pair holds,
    /// matched on disk. Memory is bounded by the page and slice sizes, not by the mailbox.
    async fn run(
        &self,
        crm_changes: Vec<Change>,
        routed_notes: Notes,
        full_read: Option<&CrmFilter>,
        retry: &[ItemId],
        commit: &mut PassCommit,
        report: &mut UserReport,
    ) -> Result<Result<(), SideError>, PassError> {
        let (user, kind) = (&self.user.key, self.kind);
        let mut stage = Stage::new()?;
        let mut notes = Notes::new();
        let scope = folder_cursor(user, kind);
        let cursor = {
            let scope = scope.clone();
            on_store(self.store, move |s| s.cursor(&scope)).await?
        };
        let cursor = FolderCursor::parse(cursor.as_deref());
        if let Some(folder) = &cursor.folder {
            self.exchange.known_folder(user, kind, folder);
        }

        if let Err(e) = self
            .read_crm(
                &mut stage,
                crm_changes,
                routed_notes,
                &mut notes,
                full_read,
                retry,
            )
            .await?
        {
            return Ok(Err(e));
        }
        let read = match self.read_exchange(&mut stage, &cursor, retry).await? {
            Ok(read) => read,
            Err(e) => return Ok(Err(e)),
        };

        let total = {
            let key = user.clone();
            on_store(self.store, move |s| s.pair_count(&key, kind)).await?
        };
        let deletes = self.count_deletes(&mut stage).await?;
        let rules = self.user.config.rules(kind);
        if let Some(Op::PauseUser { reason, kind }) = valve(
            kind,
            rules,
            deletes,
            usize::try_from(total).unwrap_or(usize::MAX),
        ) {
            if self.dry_run {
                report
                    .plans
                    .push((kind, vec![Op::PauseUser { kind, reason }]));
                return Ok(Ok(()));
            }
            // Nothing is written and the Exchange cursor stays; the CRM changes wait as
            // unresolved items until an admin resumes the user.
            commit.pause = Some(reason.clone());
            report.paused = Some(reason);
            let mut after = None;
            loop {
                let ids = stage.crm_ids(after.as_ref(), self.slice)?;
                let Some(last) = ids.last().cloned() else {
                    break;
                };
                commit
                    .unresolved
                    .extend(ids.into_iter().map(|id| UnresolvedReport {
                        kind,
                        id: ItemId::Crm(id),
                        reason: "waiting: the user is paused".into(),
                    }));
                after = Some(last);
            }
            return Ok(Ok(()));
        }

        let mut written = Written {
            base: cursor,
            created: Vec::new(),
            failed: BTreeSet::new(),
        };
        let mut after: Option<CrmId> = None;
        loop {
            let ids = stage.touched_pairs(after.as_ref(), self.slice)?;
            let Some(last) = ids.last().cloned() else {
                break;
            };
            after = Some(last);
            let (ops, settled) = self.plan_pairs(&mut stage, &ids).await?;
            stage.mark_done(&settled)?;
            self.apply(ops, &mut written, commit, report).await?;
        }

        link_unpaired(kind, &mut stage, self.slice)?;
        let mut after: Option<ItemId> = None;
        loop {
            let records = stage.new_records(after.as_ref(), self.slice)?;
            let Some(last) = records.last() else {
                break;
            };
            after = Some(last.change.id().clone());
            let mut links = Vec::new();
            let mut changes = Vec::with_capacity(records.len());
            for record in records {
                if let Some((other, reason)) = record.linked {
                    links.push((record.change.id().clone(), other.id().clone(), reason));
                    changes.push(other);
                }
                changes.push(record.change);
            }
            let (crm_changes, exchange_changes) = by_side(changes);
            let ops = plan_unchecked(&PlanInput {
                crm_lens: self.crm.lens(),
                kind,
                rules,
                pairs: &[],
                crm_changes: &crm_changes,
                exchange_changes: &exchange_changes,
                now: self.now,
                new_records: NewRecords::Linked(&links),
            });
            self.apply(ops, &mut written, commit, report).await?;
        }
        if self.dry_run {
            return Ok(Ok(()));
        }

        // A record fetched again because it failed before, and that did not fail now, is
        // resolved, whether it needed a write or was already in step; unless something still
        // had to be cut from it.
        commit.resolved.extend(
            retry
                .iter()
                .filter(|id| !written.failed.contains(*id) && !notes.contains_key(*id))
                .map(|id| ItemRef {
                    kind,
                    id: id.clone(),
                }),
        );
        // A record whose write failed or that was skipped keeps that reason instead.
        commit.unresolved.extend(
            notes
                .into_iter()
                .filter(|(id, _)| !written.failed.contains(id))
                .map(|(id, notes)| UnresolvedReport {
                    kind,
                    id,
                    reason: format!(
                        "synced without what Exchange cannot hold: {}",
                        notes.join("; ")
                    ),
                }),
        );
        commit.cursors.push(CursorAdvance {
            scope,
            value: Some(
                FolderCursor {
                    state: Some(read.state),
                    created: written.created,
                    folder: read.folder,
                }
                .to_text(),
            ),
        });
        Ok(Ok(()))
    }

    /// Stages what the CRM reports for this user: everything (new or reset user), then what
    /// the org-wide read routed here (newer), then the records that failed last time, as they
    /// are now.
    async fn read_crm(
        &self,
        stage: &mut Stage,
        routed: Vec<Change>,
        routed_notes: Notes,
        notes: &mut Notes,
        full_read: Option<&CrmFilter>,
        retry: &[ItemId],
    ) -> Result<Result<(), SideError>, PassError> {
        let kind = self.kind;
        if let Some(filter) = full_read {
            let mut position: Option<String> = None;
            loop {
                let page = match self
                    .crm
                    .changes_page(kind, position.as_deref(), filter)
                    .await
                {
                    Ok(page) => page,
                    Err(e) => return Ok(Err(e)),
                };
                let changes = self.noted(page.changes, notes);
                self.stage(stage, changes).await?;
                if !page.more {
                    break;
                }
                position = Some(page.cursor);
            }
        }
        let routed = routed
            .into_iter()
            .map(|change| {
                // The notes are those of the record's last change, which stand.
                let notes = routed_notes.get(change.id()).cloned().unwrap_or_default();
                OwnedChange {
                    owner: None,
                    change,
                    notes,
                }
            })
            .collect();
        let routed = self.noted(routed, notes);
        self.stage(stage, routed).await?;
        let ids: Vec<CrmId> = retry.iter().filter_map(crm_id).collect();
        for chunk in ids.chunks(self.slice.max(1)) {
            match self.crm.fetch(kind, chunk).await {
                Ok(found) => {
                    let changes = self.noted(found, notes);
                    self.stage(stage, changes).await?
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(()))
    }

    /// The changes of a CRM read, with what had to be cut from them added to `notes`. A later
    /// read of a record replaces what an earlier one said; a record outside the user's scope
    /// does not sync, so nothing is said about it.
    fn noted(&self, read: Vec<OwnedChange>, notes: &mut Notes) -> Vec<Change> {
        let rules = self.user.config.rules(self.kind);
        read.into_iter()
            .map(|owned| {
                let id = owned.change.id().clone();
                let in_scope = match &owned.change {
                    Change::Upsert(item) => {
                        out_of_scope(self.kind, rules, &item.fields, self.now).is_none()
                    }
                    _ => false,
                };
                if in_scope && !owned.notes.is_empty() {
                    notes.insert(id, owned.notes);
                } else {
                    notes.remove(&id);
                }
                owned.change
            })
            .collect()
    }

    /// Stages the mailbox folder's changes since the stored cursor, page by page, fetching
    /// only items whose version the pairs do not already hold (our own writes come back as
    /// changes), then the deletions a listing reveals only by absence.
    async fn read_exchange(
        &self,
        stage: &mut Stage,
        cursor: &FolderCursor,
        retry: &[ItemId],
    ) -> Result<Result<ExchangeListed, SideError>, PassError> {
        let (user, kind) = (&self.user.key, self.kind);
        let mut state = cursor.state.clone();
        // Listing from the start (first pass, or a cursor Exchange refused) shows every item,
        // so a synced item missing from it was deleted.
        let mut full_listing = state.is_none();
        let mut folder = cursor.folder.clone();
        loop {
            let page = match self
                .exchange
                .changes_page(user, kind, state.as_deref())
                .await
            {
                Ok(page) => page,
                Err(e) => return Ok(Err(e)),
            };
            if page.restarted {
                stage.clear_side(Side::Exchange)?;
                full_listing = true;
            }
            folder = page.folder.or(folder);
            // One lookup per page serves both the known versions and the staging below.
            let ids: Vec<ItemId> = page
                .upserts
                .iter()
                .map(|(id, _)| id)
                .chain(&page.deleted)
                .map(|id| ItemId::Exchange(id.clone()))
                .collect();
            let pairs = self.pairs_of(ids).await?;
            let (unchanged, wanted): (Vec<_>, Vec<_>) =
                page.upserts.into_iter().partition(|(id, version)| {
                    pairs
                        .get(&ItemId::Exchange(id.clone()))
                        .and_then(|p| p.exchange_version.as_ref())
                        == Some(version)
                });
            stage.put_listed(&unchanged.into_iter().map(|(id, _)| id).collect::<Vec<_>>())?;
            let mut changes: Vec<Change> = page
                .deleted
                .into_iter()
                .map(|id| Change::Deleted {
                    id: ItemId::Exchange(id),
                })
                .collect();
            let wanted: Vec<ExchangeId> = wanted.into_iter().map(|(id, _)| id).collect();
            if !wanted.is_empty() {
                match self.exchange.fetch(user, kind, &wanted).await {
                    Ok(found) => changes.extend(found),
                    Err(e) => return Ok(Err(e)),
                }
            }
            self.put(stage, changes, &pairs)?;
            state = Some(page.cursor);
            if page.last {
                break;
            }
        }

        // Items the last pass created came after the cursor it stored, so they must be listed
        // now: Exchange reports one created and deleted since a SyncState as nothing at all.
        // After a full listing, every synced item must be listed.
        if full_listing {
            let mut after: Option<CrmId> = None;
            loop {
                let page = {
                    let (key, from, limit) = (user.clone(), after.clone(), self.slice);
                    on_store(self.store, move |s| {
                        s.pairs_page(&key, kind, from.as_ref(), limit)
                    })
                    .await?
                };
                let Some(last) = page.last() else {
                    break;
                };
                after = Some(last.crm_id.clone());
                let ids: Vec<ExchangeId> = page.into_iter().map(|p| p.exchange_id).collect();
                self.stage_missing(stage, &ids).await?;
            }
        } else {
            self.stage_missing(stage, &cursor.created).await?;
        }

        let ids: Vec<ExchangeId> = retry.iter().filter_map(exchange_id).collect();
        for chunk in ids.chunks(self.slice.max(1)) {
            match self.exchange.fetch(user, kind, chunk).await {
                Ok(found) => self.stage(stage, found).await?,
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(ExchangeListed {
            state: state.unwrap_or_default(),
            folder,
        }))
    }

    /// Stages these Exchange items as deleted where the listing did not show them.
    async fn stage_missing(&self, stage: &mut Stage, ids: &[ExchangeId]) -> Result<(), PassError> {
        let missing = stage.missing(ids)?;
        let deleted = missing
            .into_iter()
            .map(|id| Change::Deleted {
                id: ItemId::Exchange(id),
            })
            .collect();
        self.stage(stage, deleted).await
    }

    /// The pairs holding these records, by record.
    async fn pairs_of(&self, ids: Vec<ItemId>) -> Result<BTreeMap<ItemId, SyncedPair>, PassError> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let (key, kind) = (self.user.key.clone(), self.kind);
        let pairs = on_store(self.store, move |s| s.pairs_of(&key, kind, &ids)).await?;
        Ok(pairs
            .into_iter()
            .flat_map(|p| {
                [
                    (p.id_on(Side::Crm), p.clone()),
                    (p.id_on(Side::Exchange), p),
                ]
            })
            .collect())
    }

    /// Puts changes in the stage with the pair holding each, and the match keys of those no
    /// pair holds.
    async fn stage(&self, stage: &mut Stage, changes: Vec<Change>) -> Result<(), PassError> {
        if changes.is_empty() {
            return Ok(());
        }
        let pairs = self
            .pairs_of(changes.iter().map(|c| c.id().clone()).collect())
            .await?;
        self.put(stage, changes, &pairs)
    }

    /// [`Self::stage`] with the pairs already looked up.
    fn put(
        &self,
        stage: &mut Stage,
        changes: Vec<Change>,
        pairs: &BTreeMap<ItemId, SyncedPair>,
    ) -> Result<(), PassError> {
        let rules = self.user.config.rules(self.kind);
        let records: Vec<StagedRecord> = changes
            .into_iter()
            .map(|change| {
                let pair = pairs.get(change.id()).map(|p| p.crm_id.clone());
                let keys = match (&change, &pair) {
                    (Change::Upsert(item), None) => record_keys(self.kind, rules, item),
                    _ => Vec::new(),
                };
                StagedRecord { change, pair, keys }
            })
            .collect();
        stage.put(&records)?;
        Ok(())
    }

    /// How many deletes the pair slices would plan, read before any of them is written.
    async fn count_deletes(&self, stage: &mut Stage) -> Result<usize, PassError> {
        let mut deletes = 0;
        let mut after: Option<CrmId> = None;
        loop {
            let ids = stage.touched_pairs(after.as_ref(), self.slice)?;
            let Some(last) = ids.last().cloned() else {
                return Ok(deletes);
            };
            after = Some(last);
            let ops = self.plan_pairs(stage, &ids).await?.0;
            deletes += ops
                .iter()
                .filter(|op| matches!(op, Op::Delete { .. }))
                .count();
        }
    }

    /// Plans the pairs with these CRM ids, with the unpaired records our tag links to them.
    /// Returns the plan and the records it settled.
    async fn plan_pairs(
        &self,
        stage: &mut Stage,
        ids: &[CrmId],
    ) -> Result<(Vec<Op>, Vec<ItemId>), PassError> {
        let pairs: Vec<SyncedPair> = {
            let (key, kind) = (self.user.key.clone(), self.kind);
            let ids: Vec<ItemId> = ids.iter().cloned().map(ItemId::Crm).collect();
            on_store(self.store, move |s| s.pairs_of(&key, kind, &ids)).await?
        };
        let held: Vec<ItemId> = pairs
            .iter()
            .flat_map(|p| [p.id_on(Side::Crm), p.id_on(Side::Exchange)])
            .collect();
        let tagged = stage.tagged(&held)?;
        let tagged_ids: BTreeSet<ItemId> = tagged.iter().map(|c| c.id().clone()).collect();
        let (crm_changes, exchange_changes) =
            by_side(stage.changes_of_pairs(ids)?.into_iter().chain(tagged));
        let ops = plan_unchecked(&PlanInput {
            crm_lens: self.crm.lens(),
            kind: self.kind,
            rules: self.user.config.rules(self.kind),
            pairs: &pairs,
            crm_changes: &crm_changes,
            exchange_changes: &exchange_changes,
            now: self.now,
            new_records: NewRecords::Claim,
        });
        // A tagged record the plan used is settled; the others are matched later.
        let claimed = ops
            .iter()
            .flat_map(op_ids)
            .filter(|id| tagged_ids.contains(id));
        let settled = held.into_iter().chain(claimed).collect();
        Ok((ops, settled))
    }

    /// Writes one slice's plan and commits what it wrote (pairs, echo log, the created
    /// items) on its own; what the pass as a whole reports (conflicts, failures, counts) goes
    /// into the pass's last commit.
    async fn apply(
        &self,
        ops: Vec<Op>,
        written: &mut Written,
        commit: &mut PassCommit,
        report: &mut UserReport,
    ) -> Result<(), PassError> {
        let kind = self.kind;
        if ops.is_empty() {
            return Ok(());
        }
        if self.dry_run {
            match report.plans.last_mut() {
                Some((k, plan)) if *k == kind => plan.extend(ops),
                _ => report.plans.push((kind, ops)),
            }
            return Ok(());
        }
        let results = self.execute(&ops).await;
        let settlement = settle(&ops, &results);
        let mut slice = PassCommit::new(self.user.key.clone(), commit.started, Utc::now());
        slice.partial = true;
        slice.crm_writes = self.crm_writes(&ops, &results);
        slice.removals = settlement
            .removals
            .iter()
            .map(|(crm_id, exchange_id)| PairKey {
                kind,
                crm_id: crm_id.clone(),
                exchange_id: exchange_id.clone(),
            })
            .collect();
        slice.upserts = settlement.upserts;
        slice.resolved = settlement
            .resolved
            .iter()
            .map(|id| ItemRef {
                kind,
                id: id.clone(),
            })
            .collect();
        written.created.extend(
            ops.iter()
                .filter(|op| op.writes())
                .zip(&results)
                .filter_map(|(op, result)| match (op, result) {
                    (
                        Op::Create {
                            on: Side::Exchange, ..
                        },
                        WriteResult::Done {
                            id: ItemId::Exchange(id),
                            ..
                        },
                    ) => Some(id.clone()),
                    _ => None,
                }),
        );
        // The stored cursor stays where it was until the pass ends, but learns of the items
        // created so far, so a crash before the end cannot hide their deletion.
        if written.base.state.is_some() && !written.created.is_empty() {
            slice.cursors.push(CursorAdvance {
                scope: folder_cursor(&self.user.key, kind),
                value: Some(
                    FolderCursor {
                        state: written.base.state.clone(),
                        created: written
                            .base
                            .created
                            .iter()
                            .chain(&written.created)
                            .cloned()
                            .collect(),
                        folder: written.base.folder.clone(),
                    }
                    .to_text(),
                ),
            });
        }
        on_store(self.store, move |s| s.commit_pass(&slice)).await?;

        let conflicts = settlement.conflicts.len() as u64;
        commit
            .conflicts
            .extend(
                settlement
                    .conflicts
                    .into_iter()
                    .map(|(crm_id, exchange_id, conflict)| ConflictEntry {
                        kind,
                        crm_id,
                        exchange_id,
                        conflict,
                    }),
            );
        report.counts.failures += settlement.failures.len() as u64;
        for failure in settlement.failures {
            written.failed.insert(failure.id.clone());
            commit.unresolved.push(UnresolvedReport {
                kind,
                id: failure.id,
                reason: failure.reason,
            });
        }
        report.counts.created += settlement.created as u64;
        report.counts.updated += settlement.updated as u64;
        report.counts.deleted += settlement.deleted as u64;
        report.counts.conflicts += conflicts;
        Ok(())
    }

    /// Sends the plan's writes, each side in one call (connectors batch and throttle), and
    /// returns one result per write in plan order. A side that fails as a whole fails each of
    /// its writes with its reason.
    async fn execute(&self, ops: &[Op]) -> Vec<WriteResult> {
        let writes: Vec<&Op> = ops.iter().filter(|op| op.writes()).collect();
        let mut per_side: BTreeMap<Side, (Vec<usize>, Vec<Write<'_>>)> = BTreeMap::new();
        for (i, op) in writes.iter().enumerate() {
            let (side, write) = match op {
                Op::Create {
                    on, source, fields, ..
                } => (
                    *on,
                    Write::Create {
                        fields,
                        origin: source,
                    },
                ),
                Op::Update {
                    on,
                    crm_id,
                    exchange_id,
                    fields,
                    changed,
                    expected_version,
                    ..
                } => (
                    *on,
                    Write::Update {
                        id: side_id(*on, crm_id, exchange_id),
                        fields,
                        changed,
                        expected_version: expected_version.as_deref(),
                    },
                ),
                Op::Delete {
                    on,
                    crm_id,
                    exchange_id,
                    ..
                } => (
                    *on,
                    Write::Delete {
                        id: side_id(*on, crm_id, exchange_id),
                    },
                ),
                _ => continue,
            };
            let entry = per_side.entry(side).or_default();
            entry.0.push(i);
            entry.1.push(write);
        }
        let empty = (Vec::new(), Vec::new());
        let crm_batch = per_side.get(&Side::Crm).unwrap_or(&empty);
        let exchange_batch = per_side.get(&Side::Exchange).unwrap_or(&empty);
        let (crm_results, exchange_results) = tokio::join!(
            async {
                if crm_batch.1.is_empty() {
                    return Ok(Vec::new());
                }
                self.crm
                    .write(self.kind, &self.user.crm_id, &crm_batch.1)
                    .await
            },
            async {
                if exchange_batch.1.is_empty() {
                    return Ok(Vec::new());
                }
                self.exchange
                    .write(&self.user.key, self.kind, &exchange_batch.1)
                    .await
            },
        );
        let mut results: Vec<WriteResult> = vec![
            WriteResult::Failed {
                reason: "not attempted".into()
            };
            writes.len()
        ];
        for ((indexes, sent), answer) in
            [(crm_batch, crm_results), (exchange_batch, exchange_results)]
        {
            match answer {
                Ok(answers) => {
                    for (n, index) in indexes.iter().enumerate() {
                        results[*index] =
                            answers
                                .get(n)
                                .cloned()
                                .unwrap_or_else(|| WriteResult::Failed {
                                    reason: format!(
                                        "the connector answered {} of {} writes",
                                        answers.len(),
                                        sent.len()
                                    ),
                                });
                    }
                }
                Err(e) => {
                    for index in indexes {
                        results[*index] = WriteResult::Failed {
                            reason: e.to_string(),
                        };
                    }
                }
            }
        }
        results
    }

    /// Our CRM writes and the versions they produced, so their echo is recognised.
    fn crm_writes(&self, ops: &[Op], results: &[WriteResult]) -> Vec<CrmWrite> {
        let written = ops.iter().filter(|op| op.writes()).zip(results);
        written
            .filter_map(|(op, result)| match (op, result) {
                (
                    Op::Create { on: Side::Crm, .. } | Op::Update { on: Side::Crm, .. },
                    WriteResult::Done {
                        id,
                        version: Some(version),
                    },
                ) => Some(CrmWrite {
                    crm_id: CrmId::new(id.as_str()),
                    system_modstamp: version.clone(),
                    kind: self.kind,
                    user: Some(self.user.key.clone()),
                    written_at: self.now,
                }),
                _ => None,
            })
            .collect()
    }
}

/// What the pass wrote so far, for its commits.
struct Written {
    /// The folder cursor the pass started from.
    base: FolderCursor,
    /// Items the pass created in the mailbox.
    created: Vec<ExchangeId>,
    /// Records whose writes failed in this pass.
    failed: BTreeSet<ItemId>,
}

/// Where the mailbox read ended.
struct ExchangeListed {
    state: String,
    folder: Option<(String, String)>,
}

/// Changes split as the planner takes them: the CRM's, then Exchange's.
fn by_side(changes: impl IntoIterator<Item = Change>) -> (Vec<Change>, Vec<Change>) {
    changes
        .into_iter()
        .partition(|change| change.id().side() == Side::Crm)
}

/// The records an op concerns.
fn op_ids(op: &Op) -> Vec<ItemId> {
    match op {
        Op::Create { source, .. } => vec![source.clone()],
        Op::Update {
            crm_id,
            exchange_id,
            ..
        }
        | Op::Delete {
            crm_id,
            exchange_id,
            ..
        }
        | Op::Link {
            crm_id,
            exchange_id,
            ..
        }
        | Op::Forget {
            crm_id,
            exchange_id,
            ..
        }
        | Op::Conflict {
            crm_id,
            exchange_id,
            ..
        } => vec![
            ItemId::Crm(crm_id.clone()),
            ItemId::Exchange(exchange_id.clone()),
        ],
        Op::Skip { id, .. } => vec![id.clone()],
        Op::PauseUser { .. } => Vec::new(),
    }
}

fn side_id<'a>(on: Side, crm_id: &'a CrmId, exchange_id: &'a ExchangeId) -> &'a str {
    match on {
        Side::Crm => crm_id.as_str(),
        Side::Exchange => exchange_id.as_str(),
    }
}

fn crm_id(id: &ItemId) -> Option<CrmId> {
    match id {
        ItemId::Crm(id) => Some(id.clone()),
        ItemId::Exchange(_) => None,
    }
}

fn exchange_id(id: &ItemId) -> Option<ExchangeId> {
    match id {
        ItemId::Exchange(id) => Some(id.clone()),
        ItemId::Crm(_) => None,
    }
}

/// The pairs a user has, for status pages.
pub async fn user_pairs(
    store: &Arc<dyn Store>,
    user: &UserKey,
    kind: ItemKind,
) -> Result<Vec<SyncedPair>, PassError> {
    let key = user.clone();
    on_store(store, move |s| s.load_pairs(&key, kind)).await
}
