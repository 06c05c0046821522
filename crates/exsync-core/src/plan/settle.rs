//! What a pass commits once its writes have run: the pair rows to store or drop, the conflicts
//! to record, and the records to fetch again next pass. Pure, so the executor's bookkeeping is
//! tested without any connector.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::model::{CrmId, ExchangeId, Fields, ItemId, ItemKind, Side};

use super::types::{Conflict, Op, SyncedPair};

/// How one write of the plan went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum WriteResult {
    /// Written; `id` is the record's id on the written side (new for a create) and `version`
    /// its version afterwards.
    Done {
        /// The record's id on the written side; for a create, the id of the new record.
        id: ItemId,
        /// The record's version after the write, stored so the next write is conditional on it.
        version: Option<String>,
    },
    /// Not written; nothing changed on that side.
    Failed {
        /// What the side answered, recorded with the failure for the admin.
        reason: String,
    },
}

/// A record that did not sync in this pass and is fetched again in the next.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ItemFailure {
    /// Whether the record is a contact or an event.
    pub kind: ItemKind,
    /// The record to fetch again, on the side that reported it.
    pub id: ItemId,
    /// Why it did not sync, shown to the admin until it does.
    pub reason: String,
}

/// Everything a pass commits, in one transaction, for one user and kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    /// Pair rows to insert or replace, with the content and versions now held on both sides.
    pub upserts: Vec<SyncedPair>,
    /// `(CRM, Exchange)` pairs to delete from the status database.
    pub removals: Vec<(CrmId, ExchangeId)>,
    /// Conflicts to record against their pair, only for pairs whose link was committed.
    pub conflicts: Vec<(CrmId, ExchangeId, Conflict)>,
    /// Records that did not sync, each to be fetched again next pass.
    pub failures: Vec<ItemFailure>,
    /// The records that synced in this pass, whose earlier failures are resolved.
    pub resolved: BTreeSet<ItemId>,
    /// Set with the valve's reason when the plan paused the user; the user stays paused until an
    /// admin resumes it.
    pub paused: Option<String>,
    /// Creates that succeeded, for the pass report.
    pub created: usize,
    /// Updates that succeeded, for the pass report.
    pub updated: usize,
    /// Deletes that succeeded, for the pass report.
    pub deleted: usize,
}

/// Settles a plan given the result of each write, in plan order (`results[i]` belongs to the
/// i-th op for which [`Op::writes`] is true). A missing result counts as a failed write, so a
/// pass cut short commits only what is known to be written.
///
/// The fields of each create that succeeded move into its pair, leaving the create without
/// them: a first sync settles little else, and copying each record it made cost more than
/// the settling. A plan is spent once settled; only the names of the records that did not
/// sync are still read from it.
pub fn settle(ops: &mut [Op], results: &[WriteResult]) -> Settlement {
    let mut out = Settlement::default();
    let mut results = results.iter();
    // Pairs with a failed write in this plan: their link must not be committed.
    let mut failed_pairs: BTreeSet<(CrmId, ExchangeId)> = BTreeSet::new();
    // Versions our updates produced, by pair and side, to store with the link.
    let mut written: Vec<(CrmId, ExchangeId, Side, Option<String>)> = Vec::new();
    let unknown = WriteResult::Failed {
        reason: "the pass ended before this write was confirmed".into(),
    };

    for op in ops.iter_mut() {
        let result = if op.writes() {
            Some(results.next().unwrap_or(&unknown))
        } else {
            None
        };
        match (op, result) {
            (
                Op::Create {
                    kind,
                    on,
                    source,
                    source_version,
                    fields,
                    replaces,
                },
                Some(WriteResult::Done { id, version }),
            ) => {
                let (crm_id, exchange_id, crm_version, exchange_version) = match on {
                    Side::Exchange => (
                        CrmId::new(source.as_str()),
                        ExchangeId::new(id.as_str()),
                        source_version.clone(),
                        version.clone(),
                    ),
                    Side::Crm => (
                        CrmId::new(id.as_str()),
                        ExchangeId::new(source.as_str()),
                        version.clone(),
                        source_version.clone(),
                    ),
                };
                out.removals.extend(replaces.clone());
                out.resolved.insert(source.clone());
                out.created += 1;
                out.upserts.push(SyncedPair {
                    kind: *kind,
                    crm_id,
                    exchange_id,
                    content: std::mem::take(fields),
                    crm_version,
                    exchange_version,
                });
            }
            (
                Op::Create {
                    kind,
                    source,
                    replaces,
                    ..
                },
                Some(WriteResult::Failed { reason }),
            ) => match replaces {
                // The old pair stays; both its records are fetched again and replanned.
                Some((crm_id, exchange_id)) => {
                    fail_pair(&mut out, *kind, crm_id, exchange_id, reason)
                }
                None => out.failures.push(ItemFailure {
                    kind: *kind,
                    id: source.clone(),
                    reason: reason.clone(),
                }),
            },
            (
                Op::Update {
                    on,
                    crm_id,
                    exchange_id,
                    ..
                },
                Some(WriteResult::Done { version, .. }),
            ) => {
                out.updated += 1;
                written.push((crm_id.clone(), exchange_id.clone(), *on, version.clone()));
            }
            (
                Op::Update {
                    kind,
                    crm_id,
                    exchange_id,
                    ..
                },
                Some(WriteResult::Failed { reason }),
            ) => {
                failed_pairs.insert((crm_id.clone(), exchange_id.clone()));
                fail_pair(&mut out, *kind, crm_id, exchange_id, reason);
            }
            (
                Op::Delete {
                    on,
                    crm_id,
                    exchange_id,
                    ..
                },
                Some(WriteResult::Done { .. }),
            ) => {
                out.deleted += 1;
                out.resolved.insert(ItemId::Crm(crm_id.clone()));
                out.resolved.insert(ItemId::Exchange(exchange_id.clone()));
                let _ = on;
                out.removals.push((crm_id.clone(), exchange_id.clone()));
            }
            (
                Op::Delete {
                    kind,
                    crm_id,
                    exchange_id,
                    ..
                },
                Some(WriteResult::Failed { reason }),
            ) => {
                fail_pair(&mut out, *kind, crm_id, exchange_id, reason);
            }
            (
                Op::Link {
                    kind,
                    crm_id,
                    exchange_id,
                    fields,
                    crm_version,
                    exchange_version,
                    reason,
                },
                None,
            ) => {
                if failed_pairs.contains(&(crm_id.clone(), exchange_id.clone())) {
                    if reason.is_match() {
                        // Keep the match itself: a lost write may have changed a record's match
                        // key, and matching again could pick another record. With an empty
                        // base the next pass merges the two records as on the first sync.
                        out.upserts.push(SyncedPair {
                            kind: *kind,
                            crm_id: crm_id.clone(),
                            exchange_id: exchange_id.clone(),
                            content: Fields::new(),
                            crm_version: None,
                            exchange_version: None,
                        });
                    }
                    continue;
                }
                let newest = |side: Side, fallback: &Option<String>| {
                    written
                        .iter()
                        .rev()
                        .find(|(c, e, s, _)| c == crm_id && e == exchange_id && *s == side)
                        .map_or_else(|| fallback.clone(), |(_, _, _, v)| v.clone())
                };
                out.resolved.insert(ItemId::Crm(crm_id.clone()));
                out.resolved.insert(ItemId::Exchange(exchange_id.clone()));
                out.upserts.push(SyncedPair {
                    kind: *kind,
                    crm_id: crm_id.clone(),
                    exchange_id: exchange_id.clone(),
                    content: fields.clone(),
                    crm_version: newest(Side::Crm, crm_version),
                    exchange_version: newest(Side::Exchange, exchange_version),
                });
            }
            (
                Op::Forget {
                    crm_id,
                    exchange_id,
                    ..
                },
                None,
            ) => {
                out.removals.push((crm_id.clone(), exchange_id.clone()));
            }
            (
                Op::Conflict {
                    crm_id,
                    exchange_id,
                    conflict,
                    ..
                },
                None,
            ) => {
                out.conflicts
                    .push((crm_id.clone(), exchange_id.clone(), conflict.clone()));
            }
            (Op::Skip { kind, id, reason }, None) => {
                out.failures.push(ItemFailure {
                    kind: *kind,
                    id: id.clone(),
                    reason: reason.clone(),
                });
            }
            (Op::PauseUser { reason, .. }, None) => out.paused = Some(reason.clone()),
            // `writes()` decides which ops take a result, so no other combination occurs.
            _ => {}
        }
    }
    // A conflict whose pair was not committed will be met again; record it then.
    out.conflicts
        .retain(|(c, e, _)| !failed_pairs.contains(&(c.clone(), e.clone())));
    for failure in &out.failures {
        out.resolved.remove(&failure.id);
    }
    out
}

fn fail_pair(
    out: &mut Settlement,
    kind: ItemKind,
    crm_id: &CrmId,
    exchange_id: &ExchangeId,
    reason: &str,
) {
    // Both records are fetched again: the next pass replans the pair from what each side holds.
    for id in [
        ItemId::Crm(crm_id.clone()),
        ItemId::Exchange(exchange_id.clone()),
    ] {
        if !out.failures.iter().any(|f| f.id == id) {
            out.failures.push(ItemFailure {
                kind,
                id,
                reason: reason.to_owned(),
            });
        }
    }
}
