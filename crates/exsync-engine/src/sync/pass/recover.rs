//! Recovering: what a crashed pass journaled and never settled, settled by evidence before
//! anything is planned.
//!
//! A pass journals each slice's writes before they go out and settles them in the commit
//! that stores their outcome (see `execute.rs`). An intent still in the journal is a write
//! whose outcome no commit stored: the process died, or the side's whole call failed without
//! saying what it did. For each one:
//! - a create whose copy is found carrying its tag is paired with it, with the content the
//!   create wrote as the last-synced state: a later edit on either side is then a one-sided
//!   change and wins, and a deletion of the original reaches the copy;
//! - a create never handed to its side wrote nothing, and is planned again like any record;
//! - a create that was sent and whose copy no read found is decided by what the side knows:
//!   a copy deleted since is paired as deleted (so it is not made again), a copy never made
//!   is made now; a side that cannot tell gets the create again, and the pass says so,
//!   unless the side's answer to the create was journaled before the crash: that copy was
//!   made, so one its tag no longer finds was deleted;
//! - an update that landed (the record holds what it wrote, in every field it wrote) puts
//!   those fields into the pair's last-synced state, as its commit would have: a person's
//!   later edit of the source is then one-sided, not a conflict the policy may settle against
//!   them; an update that did not land leaves the pair as it was;
//! - a delete needs nothing: its pair still holds the content both sides had, and the next
//!   read reports the deletion again, or the record still there.

use std::collections::BTreeMap;

use exsync_core::plan::{settle, Change, Op, SyncedPair, WriteResult};
use exsync_core::{CrmId, ExchangeId, ItemId, Side};
use exsync_store::{Intent, PairKey, PassCommit};

use super::{on_store, KindPass, PassError, UserReport};
use crate::sync::sides::{CopyEvidence, CrmSide, MailboxSide, SideError};
use crate::sync::stage::{Stage, StagedRecord};

/// How far a side's clock may be behind ours when it stamps a copy's creation. A copy the
/// side says was made earlier than the create's journal entry less this is an older copy's
/// (one exsync or a person deleted before), never the create's own.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// A sent create whose copy no read found, to ask its side about.
struct Asked {
    intent: i64,
    op: Op,
    /// The copy's id, when the side's answer to the create was stored before the crash.
    answered: Option<ItemId>,
}

/// A journaled create whose copy was found, with the state the copy is in now.
struct Found {
    op: Op,
    copy: Change,
}

impl<E: MailboxSide, C: CrmSide> KindPass<'_, E, C> {
    /// Settles the user's outstanding intents of this kind and stages the pairs recovered, so
    /// the plan treats them like any pair. Commits on its own: a crash later in the pass
    /// finds the recovered pairs stored and the journal settled.
    pub(super) async fn recover(
        &self,
        stage: &mut Stage,
        report: &mut UserReport,
    ) -> Result<Result<(), SideError>, PassError> {
        if self.stored.intents.is_empty() {
            return Ok(Ok(()));
        }
        let intents = self.stored.intents.clone();
        let mut settled = Vec::with_capacity(intents.len());
        let mut found = Vec::new();
        let mut ask: BTreeMap<Side, Vec<Asked>> = BTreeMap::new();
        let mut updated = BTreeMap::new();
        // Copies made before the first of these creates was journaled are not theirs.
        let since = intents
            .iter()
            .map(|i| i.journaled_at)
            .min()
            .unwrap_or(self.now)
            - CLOCK_SKEW;
        for Intent {
            id,
            op,
            sent,
            answered,
            ..
        } in intents
        {
            if let Op::Update { .. } = &op {
                settled.push(id);
                if sent {
                    self.landed_update(stage, &op, &mut updated).await?;
                }
                continue;
            }
            let Op::Create { on, source, .. } = &op else {
                settled.push(id);
                continue;
            };
            if self.already_paired(source).await? {
                // A pass since has paired the source (the journal outlived its answer).
                settled.push(id);
                continue;
            }
            let copy = stage
                .tagged(std::slice::from_ref(source))?
                .into_iter()
                .find(|c| c.id().side() == *on);
            match copy {
                Some(copy) => {
                    settled.push(id);
                    found.push(Found { op, copy });
                }
                // Never handed to the side: nothing was written; the source is planned as
                // any unpaired record is.
                None if !sent => settled.push(id),
                None => ask.entry(*on).or_default().push(Asked {
                    intent: id,
                    op,
                    answered,
                }),
            }
        }
        for (side, asked) in ask {
            let origins: Vec<ItemId> = asked.iter().filter_map(|a| source_of(&a.op)).collect();
            let answers = match side {
                Side::Crm => self.crm.find_copies(self.kind, &origins, since).await,
                Side::Exchange => {
                    self.exchange
                        .find_copies(&self.user.key, self.kind, &origins, since)
                        .await
                }
            };
            let answers = match answers {
                Ok(answers) => answers,
                // The intents stay journaled, to be settled by a pass that can ask.
                Err(e) => return Ok(Err(e)),
            };
            for (
                Asked {
                    intent,
                    op,
                    answered,
                },
                answer,
            ) in asked.into_iter().zip(answers)
            {
                settled.push(intent);
                // The side answered the create with this copy before the crash: a copy its
                // tag no longer finds was deleted since, whatever the side can search.
                let answer = match (answer, answered) {
                    (CopyEvidence::Never | CopyEvidence::Unknown, Some(made)) => {
                        CopyEvidence::Deleted(made)
                    }
                    (answer, _) => answer,
                };
                match answer {
                    CopyEvidence::Present(copy) => found.push(Found { op, copy }),
                    CopyEvidence::Deleted(copy) => found.push(Found {
                        op,
                        copy: Change::Deleted { id: copy },
                    }),
                    CopyEvidence::Never => {}
                    CopyEvidence::Unknown => {
                        report.uncertain_creates += 1;
                        tracing::warn!(
                            user = %self.user.key,
                            kind = %self.kind,
                            source = ?source_of(&op),
                            "a create sent before a crash may have made a copy that is gone \
                             now; the {side} side cannot say, so the record is created again"
                        );
                    }
                }
            }
        }
        report.recovered_pairs += found.len() as u64;
        self.pair_found(stage, found, updated.into_values().collect(), settled)
            .await?;
        Ok(Ok(()))
    }

    /// Takes in an update that went out, when the side shows it landed: the record holds, in
    /// every field the update wrote, what it wrote. Those fields then hold the same on both
    /// sides, so they join the pair's last-synced state, as the update's commit would have
    /// made them; an edit made since on either side is then one-sided, not a conflict the
    /// policy may settle against the person. The other fields keep the state before: the
    /// other side's update of the same plan may not have landed. When the record holds
    /// something else (the update never landed, or a person changed those fields since), the
    /// pair is left as it was and the merge decides. `pairs` gathers the pairs so changed,
    /// by CRM id, so both updates of one pair build on each other.
    async fn landed_update(
        &self,
        stage: &Stage,
        op: &Op,
        pairs: &mut BTreeMap<CrmId, SyncedPair>,
    ) -> Result<(), PassError> {
        let Op::Update {
            on,
            crm_id,
            exchange_id,
            fields,
            changed,
            ..
        } = op
        else {
            return Ok(());
        };
        let target = match on {
            Side::Crm => ItemId::Crm(crm_id.clone()),
            Side::Exchange => ItemId::Exchange(exchange_id.clone()),
        };
        let Some(Change::Upsert(item)) = stage.staged(std::slice::from_ref(&target))?.pop() else {
            return Ok(());
        };
        if !changed.iter().all(|f| item.fields.get(f) == fields.get(f)) {
            return Ok(());
        }
        let pair = match pairs.remove(crm_id) {
            Some(pair) => Some(pair),
            None => {
                let (key, kind) = (self.user.key.clone(), self.kind);
                on_store(self.store, move |s| s.find_pair(&key, kind, &target)).await?
            }
        };
        let Some(mut pair) = pair else {
            return Ok(());
        };
        if pair.crm_id == *crm_id && pair.exchange_id == *exchange_id {
            for field in changed {
                match fields.get(field) {
                    Some(value) => pair.content.insert(field.clone(), value.clone()),
                    None => pair.content.remove(field),
                };
            }
            // As for a recovered copy: the version now may include a person's later edit.
            match on {
                Side::Crm => pair.crm_version = None,
                Side::Exchange => pair.exchange_version = None,
            }
        }
        pairs.insert(pair.crm_id.clone(), pair);
        Ok(())
    }

    async fn already_paired(&self, source: &ItemId) -> Result<bool, PassError> {
        let (key, kind, source) = (self.user.key.clone(), self.kind, source.clone());
        Ok(
            on_store(self.store, move |s| s.find_pair(&key, kind, &source))
                .await?
                .is_some(),
        )
    }

    /// Stores the recovered pairs and settles the intents in one commit, then stages both
    /// records of each pair under it, fetching the source when this pass did not read it
    /// (a deletion of an unpaired CRM record reaches no user's read).
    async fn pair_found(
        &self,
        stage: &mut Stage,
        found: Vec<Found>,
        updated: Vec<SyncedPair>,
        settled: Vec<i64>,
    ) -> Result<(), PassError> {
        let mut commit = PassCommit::new(self.user.key.clone(), self.now, self.now);
        commit.partial = true;
        commit.settled_intents = settled;
        commit.upserts = updated;
        let mut staged = Vec::new();
        for Found { mut op, copy } in found {
            // No version for the copy: the one it has now may include a person's edit, and a
            // pair holding it would take that edit for our own write when next listed. Without
            // one, the copy is read and compared with the content written.
            let result = WriteResult::Done {
                id: copy.id().clone(),
                version: None,
            };
            let settlement = settle(std::slice::from_mut(&mut op), &[result]);
            commit.removals.extend(
                settlement
                    .removals
                    .into_iter()
                    .map(|(crm_id, exchange_id)| PairKey {
                        kind: self.kind,
                        crm_id,
                        exchange_id,
                    }),
            );
            for pair in &settlement.upserts {
                staged.push((pair.crm_id.clone(), pair.exchange_id.clone(), copy.clone()));
            }
            commit.upserts.extend(settlement.upserts);
        }
        on_store(self.store, move |s| s.commit_pass(&commit)).await?;

        let mut sources: BTreeMap<Side, Vec<(ItemId, CrmId)>> = BTreeMap::new();
        for (crm_id, exchange_id, copy) in staged {
            let ids = [
                ItemId::Crm(crm_id.clone()),
                ItemId::Exchange(exchange_id.clone()),
            ];
            let source = ids
                .iter()
                .find(|id| *id != copy.id())
                .cloned()
                .unwrap_or_else(|| ids[0].clone());
            if stage.staged(std::slice::from_ref(copy.id()))?.is_empty() {
                stage.put(&[paired(copy, &crm_id)])?;
            }
            if stage.staged(std::slice::from_ref(&source))?.is_empty() {
                sources
                    .entry(source.side())
                    .or_default()
                    .push((source, crm_id.clone()));
            }
            stage.set_pair(&ids, &crm_id)?;
        }
        self.stage_sources(stage, sources).await
    }

    /// Fetches sources of recovered pairs this pass did not read and stages their state, so
    /// an edit or a deletion since the crash is planned. A side that cannot answer leaves
    /// them as the pair holds them; the next read that reports them plans them.
    async fn stage_sources(
        &self,
        stage: &mut Stage,
        sources: BTreeMap<Side, Vec<(ItemId, CrmId)>>,
    ) -> Result<(), PassError> {
        for (side, wanted) in sources {
            let ids: Vec<&ItemId> = wanted.iter().map(|(id, _)| id).collect();
            let changes = match side {
                Side::Crm => {
                    let crm_ids: Vec<CrmId> =
                        ids.iter().map(|id| CrmId::new(id.as_str())).collect();
                    self.crm.fetch(self.kind, &crm_ids).await
                }
                Side::Exchange => {
                    let exchange_ids: Vec<ExchangeId> =
                        ids.iter().map(|id| ExchangeId::new(id.as_str())).collect();
                    self.exchange
                        .fetch(&self.user.key, self.kind, &exchange_ids)
                        .await
                }
            };
            let Ok(read) = changes else {
                continue;
            };
            let changes: Vec<_> = read.into_iter().map(|owned| owned.change).collect();
            // Matched by id, whatever order the side answers in; a change for an id not
            // asked for is left out rather than filed under the wrong pair.
            let pairs: BTreeMap<&ItemId, &CrmId> =
                wanted.iter().map(|(id, pair)| (id, pair)).collect();
            let records: Vec<StagedRecord> = changes
                .into_iter()
                .filter_map(|change| {
                    let pair = (*pairs.get(change.id())?).clone();
                    Some(paired(change, &pair))
                })
                .collect();
            stage.put(&records)?;
        }
        Ok(())
    }
}

fn source_of(op: &Op) -> Option<ItemId> {
    match op {
        Op::Create { source, .. } => Some(source.clone()),
        _ => None,
    }
}

fn paired(change: Change, pair: &CrmId) -> StagedRecord {
    StagedRecord {
        change,
        pair: Some(pair.clone()),
        keys: Vec::new(),
    }
}
