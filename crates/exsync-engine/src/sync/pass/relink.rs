//! A mailbox that moved to another backend (on-premises Exchange to Exchange Online, or back).
//! The new backend lists the same items under new ids, so every pair still names the old one;
//! a listing from the start would otherwise take each of them for deleted.
//!
//! Each pair moves to its item's new id instead, found by our tag (items exsync created carry
//! their CRM record's id) or, for items the user made, by the record's match keys as last
//! synced. The pair keeps its merge base, so edits made on either side around the move are
//! merged as any other edit, not settled as a first link. A move carries every item, so one
//! that is not there was deleted, as in any listing from the start, and the safety valve
//! weighs those deletes as any others. Nothing is created because a mailbox moved.

use std::collections::BTreeMap;

use exsync_core::plan::{match_keys, Candidates, Change, Item, SyncedPair};
use exsync_core::{CrmId, ExchangeId, ItemId};
use exsync_store::{Notice, PassCommit};

use super::{on_store, KindPass, PassError};
use crate::sync::mailboxes::Backend;
use crate::sync::sides::{CrmSide, MailboxSide};
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
    /// Pairs whose item was not in the moved mailbox: deleted there.
    pub(super) deleted: usize,
}

impl Relinked {
    /// What the admin is told: that the move was noticed, and that nothing needs doing.
    pub(super) fn notice(&self, kind: exsync_core::ItemKind, to: Backend) -> Notice {
        let from = self.from.map_or("another backend", Backend::as_str);
        Notice {
            code: "mailbox_moved".to_owned(),
            message: format!(
                "The mailbox moved from {from} to {to}: {} synced {kind}s found again by their \
                 tag, {} by their content, {} not there (deleted).",
                self.by_tag, self.by_content, self.deleted
            ),
            fix: "Nothing to do: the links moved with the mailbox. An item not there was deleted \
                  in the mailbox, and the safety valve weighs those deletes as any others."
                .to_owned(),
        }
    }
}

impl<E: MailboxSide, C: CrmSide> KindPass<'_, E, C> {
    /// Moves one page of the user's pairs to their items' new ids in the staged listing, and
    /// commits the moved pairs before anything is planned, so the plan merges each against
    /// its base; the items of the pairs left over are staged as deleted.
    pub(super) async fn relink(
        &self,
        stage: &mut Stage,
        pairs: &[SyncedPair],
        tally: &mut Relinked,
    ) -> Result<(), PassError> {
        let ids: Vec<ExchangeId> = pairs.iter().map(|p| p.exchange_id.clone()).collect();
        let missing: std::collections::BTreeSet<ExchangeId> =
            stage.missing(&ids)?.into_iter().collect();
        let moving: Vec<&SyncedPair> = pairs
            .iter()
            .filter(|p| missing.contains(&p.exchange_id))
            .collect();
        if moving.is_empty() {
            return Ok(());
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
        // A dry run writes nothing, the store included: it plans from the pairs as stored.
        if !commit.upserts.is_empty() && !self.dry_run {
            on_store(self.store, move |s| s.commit_pass(&commit).map(|_| ())).await?;
        }
        tally.deleted += left.len();
        let deleted = left
            .into_iter()
            .map(|p| Change::Deleted {
                id: ItemId::Exchange(p.exchange_id.clone()),
            })
            .collect();
        self.stage(stage, deleted).await
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
