//! Planning: the safety valve, which weighs every delete the pass would make before any write,
//! then the plan in slices of at most `slice` records, handed to the writer (see `execute.rs`)
//! at most two ahead of it, so memory is bounded by a few slices, not by the mailbox.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use exsync_core::plan::{
    link_unpaired, plan_unchecked, valve, Change, NewRecords, Op, PlanInput, SyncedPair,
};
use exsync_core::{CrmId, ItemId, Side};
use exsync_store::{PassCommit, UnresolvedReport};

use tokio::sync::mpsc;

use super::execute::{pair_of, Written, SLICES_AHEAD};
use super::names::{self, Names, Planned};
use super::{on_store, KindPass, PassError, UserReport};
use crate::sync::sides::{CrmSide, MailboxSide};
use crate::sync::stage::Stage;

impl<E: MailboxSide, C: CrmSide> KindPass<'_, E, C> {
    /// Whether the safety valve paused the user: too many of the pairs' records would be
    /// deleted. Then nothing is written; the plan says so (`--dry-run`) or the pass's commit
    /// pauses the user.
    pub(super) async fn paused_by_valve(
        &self,
        stage: &mut Stage,
        commit: &mut PassCommit,
        report: &mut UserReport,
    ) -> Result<bool, PassError> {
        let (user, kind) = (&self.user.key, self.kind);
        let total = {
            let key = user.clone();
            on_store(self.store, move |s| s.pair_count(&key, kind)).await?
        };
        let deletes = self.count_deletes(stage).await?;
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
                return Ok(true);
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
                let ids: Vec<ItemId> = ids.into_iter().map(ItemId::Crm).collect();
                let mut names = self.names_of(stage, &ids).await?;
                commit
                    .unresolved
                    .extend(ids.into_iter().map(|id| UnresolvedReport {
                        kind,
                        name: names.remove(&id),
                        id,
                        reason: "waiting: the user is paused".into(),
                    }));
                after = Some(last);
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// Plans and writes the staged records slice by slice: the pairs that changed first, then
    /// the records no pair holds, matched on disk (by our tag, then by their match keys). The
    /// next slice is planned while the last one's writes are out; no slice's plan depends on
    /// what an earlier one wrote (each holds other pairs, and new records are matched on disk).
    pub(super) async fn write_slices(
        &self,
        stage: &mut Stage,
        written: &mut Written,
        commit: &mut PassCommit,
        report: &mut UserReport,
    ) -> Result<(), PassError> {
        let (planned, to_write) = mpsc::channel(SLICES_AHEAD);
        tokio::try_join!(
            self.plan_slices(stage, planned),
            self.write_planned(to_write, written, commit, report),
        )?;
        Ok(())
    }

    /// Plans every slice and hands each plan to the writer. Stops early, without an error of
    /// its own, when the writer has stopped: the writer's error ends the pass.
    async fn plan_slices(
        &self,
        stage: &mut Stage,
        planned: mpsc::Sender<Planned>,
    ) -> Result<(), PassError> {
        let kind = self.kind;
        let rules = self.user.config.rules(kind);
        let mut after: Option<CrmId> = None;
        loop {
            let ids = stage.touched_pairs(after.as_ref(), self.slice)?;
            let Some(last) = ids.last().cloned() else {
                break;
            };
            after = Some(last);
            let (ops, settled, names) = self.plan_pairs(stage, &ids, true).await?;
            stage.mark_done(&settled)?;
            if !hand_over(&planned, ops, names).await {
                return Ok(());
            }
        }

        link_unpaired(kind, stage, self.slice)?;
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
            // The records are given to the plan, which moves those it creates into their
            // creates; the few a write carries no content for are read again to be named.
            let ops = plan_unchecked(PlanInput {
                crm_lens: self.crm.lens(),
                kind,
                rules,
                pairs: &[],
                crm_changes: Cow::Owned(crm_changes),
                exchange_changes: Cow::Owned(exchange_changes),
                now: self.now,
                new_records: NewRecords::Linked(&links),
            });
            let unnamed = names::contentless(&ops);
            let read = if unnamed.is_empty() {
                Vec::new()
            } else {
                stage.staged(&unnamed)?
            };
            let names = names::of_plan(kind, &ops, &read, &[]);
            if !hand_over(&planned, ops, names).await {
                return Ok(());
            }
        }
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
            let ops = self.plan_pairs(stage, &ids, false).await?.0;
            deletes += ops
                .iter()
                .filter(|op| matches!(op, Op::Delete { .. }))
                .count();
        }
    }

    /// Plans the pairs with these CRM ids, with the unpaired records our tag links to them.
    /// Returns the plan, the records it settled and, when `named`, their names.
    async fn plan_pairs(
        &self,
        stage: &mut Stage,
        ids: &[CrmId],
        named: bool,
    ) -> Result<(Vec<Op>, Vec<ItemId>, Names), PassError> {
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
        let ops = plan_unchecked(PlanInput {
            crm_lens: self.crm.lens(),
            kind: self.kind,
            rules: self.user.config.rules(self.kind),
            pairs: &pairs,
            crm_changes: Cow::Borrowed(&crm_changes),
            exchange_changes: Cow::Borrowed(&exchange_changes),
            now: self.now,
            new_records: NewRecords::Claim,
        });
        // A tagged record the plan used is settled; the others are matched later.
        let claimed = ops
            .iter()
            .flat_map(op_ids)
            .filter(|id| tagged_ids.contains(id));
        let settled = held.into_iter().chain(claimed).collect();
        let names = if named {
            let read: Vec<Change> = crm_changes.into_iter().chain(exchange_changes).collect();
            names::of_plan(self.kind, &ops, &read, &pairs)
        } else {
            Names::new()
        };
        Ok((ops, settled, names))
    }
}

/// Hands a slice's plan to the writer; false when the writer has stopped.
async fn hand_over(planned: &mpsc::Sender<Planned>, ops: Vec<Op>, names: Names) -> bool {
    ops.is_empty()
        || planned
            .send(Planned {
                ops,
                names: Arc::new(names),
            })
            .await
            .is_ok()
}

/// Changes split as the planner takes them: the CRM's, then Exchange's.
fn by_side(changes: impl IntoIterator<Item = Change>) -> (Vec<Change>, Vec<Change>) {
    changes
        .into_iter()
        .partition(|change| change.id().side() == Side::Crm)
}

/// The records an op concerns.
fn op_ids(op: &Op) -> Vec<ItemId> {
    if let Some((crm_id, exchange_id)) = pair_of(op) {
        return vec![
            ItemId::Crm(crm_id.clone()),
            ItemId::Exchange(exchange_id.clone()),
        ];
    }
    match op {
        Op::Create { source, .. } => vec![source.clone()],
        Op::Skip { id, .. } => vec![id.clone()],
        _ => Vec::new(),
    }
}
