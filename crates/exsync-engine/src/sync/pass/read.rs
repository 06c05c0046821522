//! Reading: both sides' changes for one kind of one user's pass, page by page, into the pass's
//! [`Stage`] on disk, each with the pair that holds it, so planning never needs a whole side in
//! memory.

use std::collections::{BTreeMap, BTreeSet};

use exsync_core::plan::{out_of_scope, record_keys, Change, SyncedPair};
use exsync_core::{record_name, CrmId, ExchangeId, ItemId, ItemKind, Side};
use exsync_store::PairLink;

use super::ahead::Ahead;
use super::cursor::FolderCursor;
use super::relink::Relinked;
use super::{on_store, FullRead, KindPass, Notes, PassError};
use crate::sync::sides::{CrmSide, MailboxSide, OwnedChange, SideError};
use crate::sync::spool::Routed;
use crate::sync::stage::{Stage, StagedRecord, StoredRecord};

/// Where the mailbox read ended.
pub(super) struct ExchangeListed {
    pub(super) state: String,
    pub(super) folder: Option<(String, String)>,
    /// Set when the mailbox moved to this backend since the last pass: how its pairs found
    /// their items again (see `relink.rs`).
    pub(super) moved: Option<Relinked>,
}

impl<E: MailboxSide, C: CrmSide> KindPass<'_, E, C> {
    /// Stages what the CRM reports for this user: everything (new or reset user), then what
    /// the org-wide read routed here (newer), then the records that failed last time, as they
    /// are now, then the events the window reached since they were read (see `ahead.rs`).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn read_crm(
        &self,
        stage: &mut Stage,
        routed: Vec<Change>,
        routed_notes: Notes,
        notes: &mut Notes,
        full_read: Option<&FullRead>,
        retry: &[ItemId],
        ahead: &mut Ahead,
    ) -> Result<Result<(), SideError>, PassError> {
        let kind = self.kind;
        match full_read {
            Some(FullRead::Crm(filter)) => {
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
                    let changes = self.noted(page.changes, notes, ahead);
                    self.stage(stage, changes).await?;
                    if !page.more {
                        break;
                    }
                    position = Some(page.cursor);
                }
            }
            Some(FullRead::Spooled(spool)) => {
                let mut after = None;
                loop {
                    let page = spool.page(&self.user.key, kind, after, self.slice.max(1))?;
                    let Some(last) = page.last() else {
                        break;
                    };
                    after = Some(last.seq);
                    self.stage_spooled(stage, page, notes, ahead).await?;
                }
            }
            None => {}
        }
        if full_read.is_some() {
            self.stage_unlisted(stage).await?;
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
        let routed = self.noted(routed, notes, ahead);
        self.stage(stage, routed).await?;
        let ids: Vec<CrmId> = retry.iter().filter_map(crm_id).collect();
        for chunk in ids.chunks(self.slice.max(1)) {
            match self.crm.fetch(kind, chunk).await {
                Ok(found) => {
                    let changes = self.noted(found, notes, ahead);
                    self.stage(stage, changes).await?
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        // After the reads above, which forget the events they saw again: those are not fetched
        // twice.
        let due = self.take_due(ahead, Side::Crm);
        let ids: Vec<CrmId> = due.iter().filter_map(crm_id).collect();
        let mut to_sync = Vec::new();
        for chunk in ids.chunks(self.slice.max(1)) {
            match self.crm.fetch(kind, chunk).await {
                Ok(found) => {
                    let changes = self.noted(found, notes, ahead);
                    to_sync.extend(self.to_sync(&changes, ahead));
                    self.stage(stage, changes).await?
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        self.keep_ahead(ahead, to_sync).await?;
        Ok(Ok(()))
    }

    /// The ids and names of these records, read because the window reached them, that the
    /// plan may sync: in scope now, not still ahead of the window.
    fn to_sync(&self, changes: &[Change], ahead: &Ahead) -> Vec<(ItemId, Option<String>)> {
        let rules = self.user.config.rules(self.kind);
        changes
            .iter()
            .filter_map(|change| match change {
                Change::Upsert(item)
                    if out_of_scope(self.kind, rules, &item.fields, self.now).is_none()
                        && !ahead.holds(&item.id) =>
                {
                    Some((item.id.clone(), record_name(self.kind, &item.fields)))
                }
                _ => None,
            })
            .collect()
    }

    /// The changes of a read of either side, with what had to be cut from them added to
    /// `notes`. A later read of a record replaces what an earlier one said; a record outside
    /// the user's scope, or whose side's changes do not flow to the other, is not copied there,
    /// so nothing is said about it. Events ahead of the window are remembered.
    fn noted(&self, read: Vec<OwnedChange>, notes: &mut Notes, ahead: &mut Ahead) -> Vec<Change> {
        let rules = self.user.config.rules(self.kind);
        read.into_iter()
            .map(|owned| {
                self.observe(ahead, &owned.change);
                let id = owned.change.id().clone();
                let copied = match &owned.change {
                    Change::Upsert(item) => {
                        rules.direction.flows_from(id.side())
                            && out_of_scope(self.kind, rules, &item.fields, self.now).is_none()
                    }
                    _ => false,
                };
                if copied && !owned.notes.is_empty() {
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
    ///
    /// When the folder the cursor named was deleted and the backend made a new one (see
    /// `connect/ews.rs`), the synced items missing from the new folder were not deleted one by
    /// one by anybody: their CRM records are staged as records no pair holds, so the plan
    /// copies them into the new folder and their pairs move to the new copies. Nothing is
    /// deleted in the CRM because a folder went away.
    pub(super) async fn read_exchange(
        &self,
        stage: &mut Stage,
        cursor: &FolderCursor,
        retry: &[ItemId],
        notes: &mut Notes,
        ahead: &mut Ahead,
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
            let pairs = self.links_of(ids).await?;
            let (unchanged, wanted): (Vec<_>, Vec<_>) =
                page.upserts.into_iter().partition(|(id, version)| {
                    pairs
                        .get(&ItemId::Exchange(id.clone()))
                        .and_then(|p| p.exchange_version.as_ref())
                        == Some(version)
                });
            stage.put_listed(&unchanged.into_iter().map(|(id, _)| id).collect::<Vec<_>>())?;
            let mut read: Vec<OwnedChange> = page
                .deleted
                .into_iter()
                .map(|id| {
                    OwnedChange::new(
                        None,
                        Change::Deleted {
                            id: ItemId::Exchange(id),
                        },
                    )
                })
                .collect();
            let wanted: Vec<ExchangeId> = wanted.into_iter().map(|(id, _)| id).collect();
            if !wanted.is_empty() {
                match self.exchange.fetch(user, kind, &wanted).await {
                    Ok(found) => read.extend(self.selected(found)),
                    Err(e) => return Ok(Err(e)),
                }
            }
            let changes = self.noted(read, notes, ahead);
            self.put(stage, changes, &pairs)?;
            state = Some(page.cursor);
            if page.last {
                break;
            }
        }

        // Items the last pass created came after the cursor it stored, so they must be listed
        // now: a backend may report one created and deleted since a cursor as nothing at all.
        // After a full listing, every synced item must be listed.
        let replaced = match (&cursor.folder, &folder) {
            (Some((old, _)), Some((new, _))) => old != new,
            _ => false,
        };
        let mut copied_again = 0;
        let mut moved = cursor.moved_from.map(|from| Relinked {
            from: Some(from),
            ..Relinked::default()
        });
        if full_listing && (moved.is_some() || replaced) {
            // Re-linking and copying again need each pair's content.
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
                if let Some(tally) = &mut moved {
                    self.relink(stage, &page, tally).await?;
                    continue;
                }
                match self.copy_again(stage, &page).await? {
                    Ok(n) => copied_again += n,
                    Err(e) => return Ok(Err(e)),
                }
            }
            if replaced {
                let what = if self.dry_run {
                    "The user's sync folder is not there: the pass will make it again and copy \
                     the synced CRM records into it; none is deleted in the CRM."
                } else {
                    "The user's sync folder was deleted and made again: the synced CRM records \
                     whose copies were in it are copied into the new folder; none is deleted in \
                     the CRM."
                };
                tracing::warn!(user = %user, %kind, copied = copied_again, "{what}");
            }
        } else if full_listing {
            // Only which items are synced matters here: ids, not content.
            let mut after: Option<CrmId> = None;
            loop {
                let page = {
                    let (key, from, limit) = (user.clone(), after.clone(), self.slice);
                    on_store(self.store, move |s| {
                        s.pair_ids_page(&key, kind, from.as_ref(), limit)
                    })
                    .await?
                };
                let Some((last, _)) = page.last() else {
                    break;
                };
                after = Some(last.clone());
                let ids: Vec<ExchangeId> = page.into_iter().map(|(_, e)| e).collect();
                self.stage_missing(stage, &ids).await?;
            }
        } else {
            self.stage_missing(stage, &cursor.created).await?;
        }

        let ids: Vec<ExchangeId> = retry.iter().filter_map(exchange_id).collect();
        for chunk in ids.chunks(self.slice.max(1)) {
            match self.exchange.fetch(user, kind, chunk).await {
                Ok(found) => {
                    let changes = self.noted(self.selected(found), notes, ahead);
                    self.stage(stage, changes).await?
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        // As in `read_crm`: after the listing and the retries, so nothing is fetched twice.
        let due = self.take_due(ahead, Side::Exchange);
        let ids: Vec<ExchangeId> = due.iter().filter_map(exchange_id).collect();
        let mut to_sync = Vec::new();
        for chunk in ids.chunks(self.slice.max(1)) {
            match self.exchange.fetch(user, kind, chunk).await {
                Ok(found) => {
                    let changes = self.noted(self.selected(found), notes, ahead);
                    to_sync.extend(self.to_sync(&changes, ahead));
                    self.stage(stage, changes).await?
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        self.keep_ahead(ahead, to_sync).await?;
        Ok(Ok(ExchangeListed {
            state: state.unwrap_or_default(),
            folder,
            moved,
        }))
    }

    /// Mailbox items as the configuration selects them: under `select = "category"` an event
    /// without the category is out of scope, so its pair is forgotten and nothing is deleted.
    fn selected(&self, found: Vec<OwnedChange>) -> Vec<OwnedChange> {
        let rules = self.user.config.rules(self.kind);
        found
            .into_iter()
            .map(|owned| OwnedChange {
                change: rules.select_exchange(self.kind, owned.change),
                ..owned
            })
            .collect()
    }

    /// After the folder was made again: the CRM records of these pairs whose copy the new
    /// folder does not hold, read again and staged as records no pair holds, so the plan makes
    /// a new copy of each (or links one the user already put there). Records gone from the
    /// CRM meanwhile are left out. Returns how many were staged.
    async fn copy_again(
        &self,
        stage: &mut Stage,
        pairs: &[SyncedPair],
    ) -> Result<Result<usize, SideError>, PassError> {
        let ids: Vec<ExchangeId> = pairs.iter().map(|p| p.exchange_id.clone()).collect();
        let missing: BTreeSet<ExchangeId> = stage.missing(&ids)?.into_iter().collect();
        let crm_ids: Vec<CrmId> = pairs
            .iter()
            .filter(|p| missing.contains(&p.exchange_id))
            .map(|p| p.crm_id.clone())
            .collect();
        if crm_ids.is_empty() {
            return Ok(Ok(0));
        }
        let found = match self.crm.fetch(self.kind, &crm_ids).await {
            Ok(found) => found,
            Err(e) => return Ok(Err(e)),
        };
        let records: Vec<Change> = found
            .into_iter()
            .map(|owned| owned.change)
            .filter(|change| matches!(change, Change::Upsert(_)))
            .collect();
        let staged = records.len();
        self.put(stage, records, &BTreeMap::new())?;
        Ok(Ok(staged))
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

    /// Which pairs hold these records, by record: ids and versions, not content, which
    /// staging does not need.
    async fn links_of(&self, ids: Vec<ItemId>) -> Result<BTreeMap<ItemId, PairLink>, PassError> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let (key, kind) = (self.user.key.clone(), self.kind);
        let links = on_store(self.store, move |s| s.pair_links(&key, kind, &ids)).await?;
        Ok(links
            .into_iter()
            .flat_map(|link| {
                [
                    (ItemId::Crm(link.crm_id.clone()), link.clone()),
                    (ItemId::Exchange(link.exchange_id.clone()), link),
                ]
            })
            .collect())
    }

    /// Puts changes in the stage with the pair holding each, and the match keys of those no
    /// pair holds.
    pub(super) async fn stage(
        &self,
        stage: &mut Stage,
        changes: Vec<Change>,
    ) -> Result<(), PassError> {
        if changes.is_empty() {
            return Ok(());
        }
        let pairs = self
            .links_of(changes.iter().map(|c| c.id().clone()).collect())
            .await?;
        self.put(stage, changes, &pairs)
    }

    /// [`Self::stage`] of one page of the spool, each change as the spool holds it, with its
    /// match keys as routing found them: the stage keeps it as it is. Only a change whose
    /// reading needs its content is parsed: an event, which may be ahead of the window, and
    /// a record cut to fit, whose notes depend on its scope ([`Self::noted`]).
    async fn stage_spooled(
        &self,
        stage: &mut Stage,
        page: Vec<Routed>,
        notes: &mut Notes,
        ahead: &mut Ahead,
    ) -> Result<(), PassError> {
        for routed in &page {
            if self.kind == ItemKind::Event || !routed.notes.is_empty() {
                let read = OwnedChange {
                    owner: None,
                    change: routed.change()?,
                    notes: routed.notes.clone(),
                };
                self.noted(vec![read], notes, ahead);
            } else {
                notes.remove(&ItemId::Crm(routed.id.clone()));
            }
        }
        let pairs = self
            .links_of(page.iter().map(|r| ItemId::Crm(r.id.clone())).collect())
            .await?;
        let records: Vec<StoredRecord> = page
            .into_iter()
            .map(|routed| {
                let id = ItemId::Crm(routed.id);
                let pair = pairs.get(&id).map(|p| p.crm_id.clone());
                StoredRecord {
                    // As `staged_records`: only a record no pair holds is matched.
                    keys: routed.keys.filter(|_| pair.is_none()),
                    id,
                    upsert: routed.upsert,
                    origin: routed.origin,
                    pair,
                    stored: routed.stored,
                }
            })
            .collect();
        stage.put_stored(&records)?;
        Ok(())
    }

    /// [`Self::stage`] with the pairs already looked up.
    pub(super) fn put(
        &self,
        stage: &mut Stage,
        changes: Vec<Change>,
        pairs: &BTreeMap<ItemId, PairLink>,
    ) -> Result<(), PassError> {
        stage.put(&self.staged_records(changes, pairs))?;
        Ok(())
    }

    /// Changes as the stage takes them: with the pair holding each, and the match keys of
    /// those no pair holds.
    fn staged_records(
        &self,
        changes: Vec<Change>,
        pairs: &BTreeMap<ItemId, PairLink>,
    ) -> Vec<StagedRecord> {
        let rules = self.user.config.rules(self.kind);
        changes
            .into_iter()
            .map(|change| {
                let pair = pairs.get(change.id()).map(|p| p.crm_id.clone());
                let keys = match (&change, &pair) {
                    (Change::Upsert(item), None) => record_keys(self.kind, rules, item),
                    _ => Vec::new(),
                };
                StagedRecord { change, pair, keys }
            })
            .collect()
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
