//! A mailbox that moved to another backend (on-premises Exchange to Exchange Online, or back).
//! The new backend lists the same items under new ids, so every pair still names the old one;
//! a listing from the start would otherwise take each of them for deleted.
//!
//! Each pair moves to its item's new id instead, found by our tag (items exsync created carry
//! their CRM record's id) or, for items the user made, by the record's match keys as last
//! synced. The pair keeps its merge base, so edits made on either side around the move are
//! merged as any other edit, not settled as a first link. A pair whose item cannot be found is
//! forgotten and its CRM record staged as one no pair holds: the plan links it to what the
//! mailbox has or copies it there, as when the sync folder is replaced. Nothing is created,
//! and nothing deleted in the CRM, because a mailbox moved.

use std::collections::BTreeMap;

use exsync_core::plan::{match_keys, Candidates, Change, Item, SyncedPair};
use exsync_core::{CrmId, ExchangeId, ItemId};
use exsync_store::{Notice, PairKey, PassCommit};

use super::{on_store, KindPass, PassError};
use crate::sync::mailboxes::Backend;
use crate::sync::sides::{CrmSide, MailboxSide, SideError};
use crate::sync::stage::Stage;

/// How the pairs of a moved mailbox found their items, summed over the pass's pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Relinked {
    /// The backend the mailbox was on.
    pub(super) from: Option<Backend>,
    /// Pairs whose item carried our tag.
    pub(super) by_tag: usize,
    /// Pairs whose item matched the record as last synced.
    pub(super) by_content: usize,
    /// Pairs whose item was not in the moved mailbox: their CRM records are matched or copied
    /// again.
    pub(super) copied_again: usize,
}

impl Relinked {
    /// What the admin is told: that the move was noticed, and that nothing needs doing.
    pub(super) fn notice(&self, kind: exsync_core::ItemKind, to: Backend) -> Notice {
        let from = self.from.map_or("another backend", Backend::as_str);
        Notice {
            code: "mailbox_moved".to_owned(),
            message: format!(
                "The mailbox moved from {from} to {to}: {} synced {kind}s found again by their \
                 tag, {} by their content, {} not found and matched or copied again.",
                self.by_tag, self.by_content, self.copied_again
            ),
            fix: "Nothing to do: every link moved with the mailbox, and nothing was deleted \
                  because of the move."
                .to_owned(),
        }
    }
}

impl<E: MailboxSide, C: CrmSide> KindPass<'_, E, C> {
    /// Moves one page of the user's pairs to their items' new ids in the staged listing, and
    /// commits the moved pairs before anything is planned, so the plan merges each against
    /// its base. Returns `Ok(Err(_))` when the CRM could not be read for the pairs left over.
    pub(super) async fn relink(
        &self,
        stage: &mut Stage,
        pairs: &[SyncedPair],
        tally: &mut Relinked,
    ) -> Result<Result<(), SideError>, PassError> {
        let ids: Vec<ExchangeId> = pairs.iter().map(|p| p.exchange_id.clone()).collect();
        let missing: std::collections::BTreeSet<ExchangeId> =
            stage.missing(&ids)?.into_iter().collect();
        let moving: Vec<&SyncedPair> = pairs
            .iter()
            .filter(|p| missing.contains(&p.exchange_id))
            .collect();
        if moving.is_empty() {
            return Ok(Ok(()));
        }

        // Our tag first: it names the exact record.
        let origins: Vec<ItemId> = moving
            .iter()
            .map(|p| ItemId::Crm(p.crm_id.clone()))
            .collect();
        let mut tagged: BTreeMap<CrmId, ExchangeId> = BTreeMap::new();
        for change in stage.tagged(&origins)? {
            if let (Change::Upsert(item), ItemId::Exchange(id)) = (&change, change.id()) {
                if let Some(ItemId::Crm(crm_id)) = &item.origin {
                    tagged.entry(crm_id.clone()).or_insert_with(|| id.clone());
                }
            }
        }
        let mut found: Vec<(SyncedPair, ExchangeId)> = Vec::new();
        let mut untagged = Vec::new();
        for pair in moving {
            match tagged.remove(&pair.crm_id) {
                Some(id) => {
                    tally.by_tag += 1;
                    claim(stage, pair, &id)?;
                    found.push((pair.clone(), id));
                }
                None => untagged.push(pair),
            }
        }
        // Then the record as last synced: the e-mail address or name a contact had, the
        // subject and times an event had, the keys first sync matches by.
        let mut left = Vec::new();
        for pair in untagged {
            match self.by_content(stage, pair)? {
                Some(id) => {
                    tally.by_content += 1;
                    claim(stage, pair, &id)?;
                    found.push((pair.clone(), id));
                }
                None => left.push(pair),
            }
        }

        let mut commit = PassCommit::new(self.user.key.clone(), self.now, self.now);
        commit.partial = true;
        // No version for the new item: it may hold an edit made before the move, which the
        // plan must see as one, so the item is read and compared with the base.
        commit.upserts = found
            .into_iter()
            .map(|(pair, id)| SyncedPair {
                exchange_id: id,
                exchange_version: None,
                ..pair
            })
            .collect();
        commit.removals = left
            .iter()
            .map(|p| PairKey {
                kind: self.kind,
                crm_id: p.crm_id.clone(),
                exchange_id: p.exchange_id.clone(),
            })
            .collect();
        on_store(self.store, move |s| s.commit_pass(&commit).map(|_| ())).await?;

        if left.is_empty() {
            return Ok(Ok(()));
        }
        let crm_ids: Vec<CrmId> = left.iter().map(|p| p.crm_id.clone()).collect();
        let records = match self.crm.fetch(self.kind, &crm_ids).await {
            Ok(found) => found,
            Err(e) => return Ok(Err(e)),
        };
        let records: Vec<Change> = records
            .into_iter()
            .map(|owned| owned.change)
            .filter(|change| matches!(change, Change::Upsert(_)))
            .collect();
        tally.copied_again += records.len();
        self.put(stage, records, &BTreeMap::new())?;
        Ok(Ok(()))
    }

    /// The staged, unpaired item that matches the pair's record as last synced, if any.
    fn by_content(
        &self,
        stage: &mut Stage,
        pair: &SyncedPair,
    ) -> Result<Option<ExchangeId>, PassError> {
        let base = Item {
            id: ItemId::Crm(pair.crm_id.clone()),
            fields: pair.content.clone(),
            version: None,
            modified: None,
            origin: None,
        };
        // Rule 0 is the tag, tried already.
        for (rule, key) in match_keys(self.kind, &base)
            .into_iter()
            .filter(|(r, _)| *r > 0)
        {
            if let Some(ItemId::Exchange(id)) = stage.exchange_with(rule, &key)? {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }
}

/// Files the staged item and the pair's staged CRM record (if the CRM reported it) under the
/// pair, so neither is matched again and both are planned with it.
fn claim(stage: &mut Stage, pair: &SyncedPair, id: &ExchangeId) -> Result<(), PassError> {
    stage.set_pair(
        &[
            ItemId::Exchange(id.clone()),
            ItemId::Crm(pair.crm_id.clone()),
        ],
        &pair.crm_id,
    )?;
    Ok(())
}
