//! Executing: each slice's writes in batches, each batch journaled, then sent to each side in
//! one request, as many batches out at once as the mailbox takes requests, and each batch's own
//! commit of what it did (pairs, the echo log, the items created), which settles the journal: a
//! crash at any point leaves each write either settled or journaled, and `recover.rs` settles
//! what is journaled.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::{stream, StreamExt};
use tokio::sync::mpsc;

use chrono::Utc;
use exsync_core::plan::{settle, Op, WriteResult};
use exsync_core::{CrmId, ExchangeId, ItemId, Side};
use exsync_store::{ConflictEntry, CrmWrite, ItemRef, PairKey, PassCommit, UnresolvedReport};

use super::cursor::FolderCursor;
use super::names::{self, BatchNames, Names, Planned};
use super::{on_store, KindPass, PassError, UserReport};
use crate::failpoints::{self, failpoint};
use crate::sync::sides::{CrmSide, MailboxSide, Write};

/// How many planned slices wait for the writer (see `KindPass::write_slices`).
pub(super) const SLICES_AHEAD: usize = 2;

/// A batch whose writes went out, with what each side answered.
struct SentBatch {
    /// The batch's plan.
    ops: Vec<Op>,
    /// The names of its slice's records that no write carries.
    names: Arc<Names>,
    /// The journal id of each of its writes, in plan order.
    intents: Vec<i64>,
    /// One result per write, in plan order.
    results: Vec<WriteResult>,
    /// Journal ids of writes whose outcome is unknown (their side's call failed as a whole).
    unsettled: BTreeSet<i64>,
}

/// What the pass wrote so far, for its commits.
pub(super) struct Written {
    /// The folder cursor the pass started from.
    pub(super) base: FolderCursor,
    /// Items the pass created in the mailbox.
    pub(super) created: Vec<ExchangeId>,
    /// How many of `created` are stored in chunks beside the cursor, and in how many chunks
    /// (see `cursor.rs`).
    pub(super) chunked: usize,
    pub(super) chunks: usize,
    /// Records whose writes failed in this pass.
    pub(super) failed: BTreeSet<ItemId>,
}

impl Written {
    /// Nothing written yet, from the folder cursor the pass read.
    pub(super) fn new(base: FolderCursor) -> Written {
        Written {
            base,
            created: Vec::new(),
            chunked: 0,
            chunks: 0,
            failed: BTreeSet::new(),
        }
    }
}

impl<E: MailboxSide, C: CrmSide> KindPass<'_, E, C> {
    /// Writes the slices' plans as the planner hands them over, in batches: each batch holds
    /// no more writes for a side than that side takes in one request, and its outcome is
    /// committed as soon as its answers are back. As many batches are out at once as the
    /// mailbox takes requests ([`MailboxSide::requests_at_once`]), and they keep going out
    /// while an answered one is committed, so a server's latency is paid about once per that
    /// many requests. A crash loses the answers of those batches and of the two answered ones
    /// waiting for their commit at most, all journaled. Batches settle in plan order.
    pub(super) async fn write_planned(
        &self,
        planned: mpsc::Receiver<Planned>,
        written: &mut Written,
        commit: &mut PassCommit,
        report: &mut UserReport,
    ) -> Result<(), PassError> {
        let kind = self.kind;
        let mut slices = stream::unfold(planned, |mut planned| async move {
            planned.recv().await.map(|ops| (ops, planned))
        })
        .boxed();
        if self.dry_run {
            while let Some(Planned { ops, names }) = slices.next().await {
                report
                    .names
                    .extend(names::with_writes(&ops, Arc::unwrap_or_clone(names)));
                match report.plans.last_mut() {
                    Some((k, plan)) if *k == kind => plan.extend(ops),
                    _ => report.plans.push((kind, ops)),
                }
            }
            return Ok(());
        }
        let limits = [
            self.crm.write_batch().max(1),
            self.exchange.write_batch(&self.user.key).max(1),
        ];
        let at_once = self.exchange.requests_at_once(&self.user.key).max(1);
        let mut sent = slices
            .flat_map(|planned| stream::iter(named_batches(planned, limits)))
            .map(|(batch, names)| self.send_batch(batch, names))
            .buffered(at_once);
        // Answered batches are committed apart from the sending, so that the next batches go
        // out while one is committed; a batch that failed ends the sending after it.
        let (answered, mut to_settle) = mpsc::channel(1);
        let sending = async move {
            while let Some(batch) = sent.next().await {
                let failed = batch.is_err();
                if answered.send(batch).await.is_err() || failed {
                    break;
                }
            }
            Ok(())
        };
        let settling = async {
            while let Some(batch) = to_settle.recv().await {
                self.settle_batch(batch?, written, commit, report).await?;
            }
            Ok::<(), PassError>(())
        };
        // The first error ends both: batches still out are dropped, their writes journaled.
        tokio::try_join!(sending, settling)?;
        Ok(())
    }

    /// Journals one batch's writes and sends them; nothing of what they did is committed yet.
    async fn send_batch(&self, ops: Vec<Op>, names: Arc<Names>) -> Result<SentBatch, PassError> {
        // The batch is planned and none of its writes has gone out yet.
        failpoint(failpoints::BEFORE_SLICE_WRITES);
        let (intents, ops) = {
            let (key, kind, now) = (self.user.key.clone(), self.kind, Utc::now());
            // The batch goes to the store and comes back, rather than a copy of its writes.
            on_store(self.store, move |s| {
                let writes: Vec<&Op> = ops.iter().filter(|op| op.writes()).collect();
                let ids = s.journal_intents(&key, kind, &writes, now)?;
                Ok((ids, ops))
            })
            .await?
        };
        failpoint(failpoints::JOURNAL_COMMITTED);
        let (results, unsettled) = self.execute(&ops, &intents).await?;
        Ok(SentBatch {
            ops,
            names,
            intents,
            results,
            unsettled,
        })
    }

    /// Commits what one sent batch wrote (pairs, echo log, the created items) on its own; what
    /// the pass as a whole reports (conflicts, failures, counts) goes into the pass's last
    /// commit.
    async fn settle_batch(
        &self,
        sent: SentBatch,
        written: &mut Written,
        commit: &mut PassCommit,
        report: &mut UserReport,
    ) -> Result<(), PassError> {
        let kind = self.kind;
        let SentBatch {
            mut ops,
            names,
            intents,
            results,
            unsettled,
        } = sent;
        let settlement = settle(&mut ops, &results);
        let names = BatchNames::new(&ops, &names);
        let name_of = |id: &ItemId| names.get(id);
        for (op, result) in ops.iter().filter(|op| op.writes()).zip(&results) {
            if let (Some((on, what)), WriteResult::Done { .. }) = (write_of(op), result) {
                *report.written.entry((kind, on, what)).or_default() += 1;
            }
        }
        let mut slice = PassCommit::new(self.user.key.clone(), commit.started, Utc::now());
        slice.partial = true;
        // A side whose whole call failed did not say what it wrote: its intents stay
        // journaled for the next pass to settle by evidence. So does an update that landed
        // on a pair whose other write failed: the pair is not committed, and the next pass
        // takes in what the update wrote (`recover.rs`) before it merges the pair again.
        let uncommitted: BTreeSet<&ItemId> = settlement.failures.iter().map(|f| &f.id).collect();
        let writes = ops.iter().filter(|op| op.writes());
        slice.settled_intents = intents
            .iter()
            .zip(writes)
            .filter(|(id, op)| {
                let landed_on_failed_pair = matches!(op, Op::Update { crm_id, .. }
                    if uncommitted.contains(&ItemId::Crm(crm_id.clone())));
                !unsettled.contains(*id) && !landed_on_failed_pair
            })
            .map(|(id, _)| *id)
            .collect();
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
        // The stored cursor stays where it was until the pass ends; the items created so far
        // are stored beside it, so a crash before the end cannot hide their deletion.
        slice.cursors.extend(self.created_chunk(written));
        on_store(self.store, move |s| s.commit_pass(&slice)).await?;
        // The slice's writes and pairs are stored; the pass's own report and cursors are not.
        failpoint(failpoints::SLICE_COMMITTED);

        // A first link's merges are recorded with the conflicts but are not conflicts: only
        // one of two records never synced could be taken, and the newer one was.
        let conflicts = settlement
            .conflicts
            .iter()
            .filter(|(_, _, conflict)| !conflict.first_link)
            .count() as u64;
        commit
            .conflicts
            .extend(
                settlement
                    .conflicts
                    .into_iter()
                    .map(|(crm_id, exchange_id, conflict)| ConflictEntry {
                        kind,
                        name: name_of(&ItemId::Crm(crm_id.clone())),
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
                name: name_of(&failure.id),
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
    /// its writes with its reason; the journal ids of those writes come back too, as their
    /// outcome is unknown. `intents` holds the journal id of each write, in order; both sides'
    /// are marked sent, in one transaction, just before the calls.
    async fn execute(
        &self,
        ops: &[Op],
        intents: &[i64],
    ) -> Result<(Vec<WriteResult>, BTreeSet<i64>), PassError> {
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
        let ids_of = |(indexes, _): &(Vec<usize>, Vec<Write<'_>>)| -> Vec<i64> {
            indexes
                .iter()
                .filter_map(|i| intents.get(*i).copied())
                .collect()
        };
        let (crm_ids, exchange_ids) = (ids_of(crm_batch), ids_of(exchange_batch));
        let sent: Vec<i64> = crm_ids.iter().chain(&exchange_ids).copied().collect();
        if !sent.is_empty() {
            on_store(self.store, move |s| s.mark_intents_sent(&sent)).await?;
        }
        // Both sides' writes are marked sent and neither request has gone out.
        if !crm_batch.1.is_empty() {
            failpoint(failpoints::CRM_BATCH_SENT);
        }
        if !exchange_batch.1.is_empty() {
            failpoint(failpoints::EXCHANGE_BATCH_SENT);
        }
        let (crm_results, exchange_results) = tokio::join!(
            async {
                if crm_batch.1.is_empty() {
                    return Ok(Ok(Vec::new()));
                }
                let answer = self
                    .crm
                    .write(self.kind, &self.user.crm_id, &crm_batch.1)
                    .await;
                self.record_answers(&writes, intents, &crm_batch.0, answer.as_ref().ok())
                    .await?;
                Ok::<_, PassError>(answer)
            },
            async {
                if exchange_batch.1.is_empty() {
                    return Ok(Ok(Vec::new()));
                }
                let answer = self
                    .exchange
                    .write(&self.user.key, self.kind, &exchange_batch.1)
                    .await;
                self.record_answers(&writes, intents, &exchange_batch.0, answer.as_ref().ok())
                    .await?;
                Ok::<_, PassError>(answer)
            },
        );
        // The sides hold the writes and the pass has stored only the ids they answered: the
        // next pass must recognise them (by their origin and those ids) instead of writing
        // them again. Reached once both sides answered, so a crash here leaves neither side's
        // answer half stored.
        if !crm_batch.1.is_empty() {
            failpoint(failpoints::CRM_WRITES_ANSWERED);
        }
        if !exchange_batch.1.is_empty() {
            failpoint(failpoints::EXCHANGE_WRITES_ANSWERED);
        }
        let (crm_results, exchange_results) = (crm_results?, exchange_results?);
        let mut unsettled = BTreeSet::new();
        let mut results: Vec<WriteResult> = vec![
            WriteResult::Failed {
                reason: "not attempted".into()
            };
            writes.len()
        ];
        for ((indexes, sent), answer, ids) in [
            (crm_batch, crm_results, crm_ids),
            (exchange_batch, exchange_results, exchange_ids),
        ] {
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
                    unsettled.extend(ids);
                }
            }
        }
        Ok((results, unsettled))
    }

    /// Stores, on their journal entries, the ids one side's call answered its creates with,
    /// before anything else of the call is stored: after a crash before the batch's commit,
    /// recovery then knows each of these copies was made, so one gone since was deleted by a
    /// person and is not made again (a side such as Graph cannot search its deleted items).
    /// `indexes` are the positions of the call's writes among `writes` and `intents`.
    async fn record_answers(
        &self,
        writes: &[&Op],
        intents: &[i64],
        indexes: &[usize],
        answers: Option<&Vec<WriteResult>>,
    ) -> Result<(), PassError> {
        let Some(answers) = answers else {
            return Ok(());
        };
        let answered: Vec<(i64, ItemId)> = indexes
            .iter()
            .zip(answers)
            .filter_map(|(i, answer)| match (writes.get(*i)?, answer) {
                (Op::Create { .. }, WriteResult::Done { id, .. }) if !id.as_str().is_empty() => {
                    Some((*intents.get(*i)?, id.clone()))
                }
                _ => None,
            })
            .collect();
        if answered.is_empty() {
            return Ok(());
        }
        on_store(self.store, move |s| s.mark_intents_answered(&answered)).await?;
        Ok(())
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

fn side_id<'a>(on: Side, crm_id: &'a CrmId, exchange_id: &'a ExchangeId) -> &'a str {
    match on {
        Side::Crm => crm_id.as_str(),
        Side::Exchange => exchange_id.as_str(),
    }
}

/// The pair an op belongs to, if it names one. The ops of one pair (its conflicts, its updates
/// on either side and its link) come together in a plan and must be settled together.
pub(super) fn pair_of(op: &Op) -> Option<(&CrmId, &ExchangeId)> {
    match op {
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
        } => Some((crm_id, exchange_id)),
        Op::Create { .. } | Op::Skip { .. } | Op::PauseUser { .. } => None,
    }
}

/// Splits a plan into batches of at most `limits` writes per side (CRM, mailbox), never
/// between the ops of one pair. A pair writes each side at most once, so a batch is closed
/// before the next pair once either side is full.
fn batches(ops: Vec<Op>, [crm_limit, mailbox_limit]: [usize; 2]) -> Vec<Vec<Op>> {
    let mut out: Vec<Vec<Op>> = Vec::new();
    let mut batch: Vec<Op> = Vec::new();
    let (mut crm, mut mailbox) = (0, 0);
    for op in ops {
        let same_pair = match (batch.last().and_then(pair_of), pair_of(&op)) {
            (Some(last), Some(this)) => last == this,
            _ => false,
        };
        if !same_pair && (crm >= crm_limit || mailbox >= mailbox_limit) {
            out.push(std::mem::take(&mut batch));
            (crm, mailbox) = (0, 0);
        }
        match op {
            Op::Create { on, .. } | Op::Update { on, .. } | Op::Delete { on, .. } => match on {
                Side::Crm => crm += 1,
                Side::Exchange => mailbox += 1,
            },
            _ => {}
        }
        batch.push(op);
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}

/// A slice's batches (see [`batches`]), each with the slice's names of records no write
/// carries.
fn named_batches(planned: Planned, limits: [usize; 2]) -> Vec<(Vec<Op>, Arc<Names>)> {
    let Planned { ops, names } = planned;
    batches(ops, limits)
        .into_iter()
        .map(|batch| (batch, Arc::clone(&names)))
        .collect()
}

/// The side a write goes to and what it does there, as the metrics name it.
fn write_of(op: &Op) -> Option<(Side, &'static str)> {
    match op {
        Op::Create { on, .. } => Some((*on, "create")),
        Op::Update { on, .. } => Some((*on, "update")),
        Op::Delete { on, .. } => Some((*on, "delete")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use exsync_core::plan::LinkReason;
    use exsync_core::{Fields, ItemKind};

    use super::*;

    fn update(on: Side, pair: &str) -> Op {
        Op::Update {
            kind: ItemKind::Contact,
            on,
            crm_id: CrmId::new(pair),
            exchange_id: ExchangeId::new(pair),
            fields: Fields::new(),
            changed: Vec::new(),
            expected_version: None,
        }
    }

    fn link(pair: &str) -> Op {
        Op::Link {
            kind: ItemKind::Contact,
            crm_id: CrmId::new(pair),
            exchange_id: ExchangeId::new(pair),
            fields: Fields::new(),
            crm_version: None,
            exchange_version: None,
            reason: LinkReason::Merged,
        }
    }

    fn create(on: Side, source: &str) -> Op {
        Op::Create {
            kind: ItemKind::Contact,
            on,
            source: match on {
                Side::Crm => ItemId::Exchange(ExchangeId::new(source)),
                Side::Exchange => ItemId::Crm(CrmId::new(source)),
            },
            source_version: None,
            fields: Fields::new(),
            replaces: None,
        }
    }

    /// Each batch as (CRM writes, mailbox writes, ops).
    fn shape(batches: &[Vec<Op>]) -> Vec<(usize, usize, usize)> {
        batches
            .iter()
            .map(|b| {
                let on = |side| {
                    b.iter()
                        .filter(|op| {
                            matches!(op, Op::Create { on, .. } | Op::Update { on, .. }
                                | Op::Delete { on, .. } if *on == side)
                        })
                        .count()
                };
                (on(Side::Crm), on(Side::Exchange), b.len())
            })
            .collect()
    }

    #[test]
    fn batches_fill_each_side_up_to_its_request_size() {
        let ops: Vec<Op> = (0..5)
            .map(|i| create(Side::Exchange, &format!("c{i}")))
            .chain((0..3).map(|i| create(Side::Crm, &format!("e{i}"))))
            .collect();
        assert_eq!(
            shape(&batches(ops, [2, 2])),
            // The third batch holds the last mailbox write and CRM writes until the CRM is full.
            [(0, 2, 2), (0, 2, 2), (2, 1, 3), (1, 0, 1)]
        );
    }

    #[test]
    fn the_ops_of_one_pair_stay_in_one_batch() {
        let ops = vec![
            update(Side::Crm, "a"),
            update(Side::Exchange, "a"),
            link("a"),
            update(Side::Crm, "b"),
            update(Side::Exchange, "b"),
            link("b"),
            link("c"),
        ];
        let split = batches(ops.clone(), [1, 1]);
        assert_eq!(shape(&split), [(1, 1, 3), (1, 1, 3), (0, 0, 1)]);
        assert_eq!(split.concat(), ops, "nothing lost or reordered");
    }

    #[test]
    fn a_plan_within_the_limits_is_one_batch() {
        let ops = vec![
            update(Side::Crm, "a"),
            link("a"),
            create(Side::Exchange, "c"),
        ];
        assert_eq!(batches(ops, [200, 100]).len(), 1);
        assert!(batches(Vec::new(), [1, 1]).is_empty());
    }
}
