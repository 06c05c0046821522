//! The names records are reported by next to their ids (`exsync_core::record_name`): each
//! failure, skip, conflict and waiting record a pass stores, and each line of a dry run's plan.
//! A write carries the record's content and is named by it; a delete or a skip carries none,
//! so it is named by the record as this pass read it, or else by the content its pair last
//! synced.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use exsync_core::plan::{Change, Op, SyncedPair};
use exsync_core::{record_name, ItemId, ItemKind, Side, UserKey};
use exsync_store::Store;

use super::{on_store, KindPass, PassError};
use crate::sync::sides::{CrmSide, MailboxSide};
use crate::sync::stage::Stage;

/// Record names by id, on either side.
pub(super) type Names = BTreeMap<ItemId, String>;

/// A slice's plan, as the planner hands it to the writer, with the names of its records.
pub(super) struct Planned {
    pub(super) ops: Vec<Op>,
    /// Shared by the slice's batches.
    pub(super) names: Arc<Names>,
}

/// The names of a slice's records: from the content its writes carry, then, for the records
/// its deletes and skips concern, from `read` (this pass's changes) or `pairs` (their pairs).
pub(super) fn of_plan(kind: ItemKind, ops: &[Op], read: &[Change], pairs: &[SyncedPair]) -> Names {
    let mut names = of_writes(ops);
    let unnamed: Vec<ItemId> = ops
        .iter()
        .flat_map(contentless_ids)
        .filter(|id| !names.contains_key(id))
        .collect();
    if unnamed.is_empty() {
        return names;
    }
    let read: BTreeMap<&ItemId, &Change> = read.iter().map(|c| (c.id(), c)).collect();
    let by_pair: BTreeMap<ItemId, &SyncedPair> = pairs
        .iter()
        .flat_map(|p| [(p.id_on(Side::Crm), p), (p.id_on(Side::Exchange), p)])
        .collect();
    for id in unnamed {
        let name = read
            .get(&id)
            .and_then(|change| of_change(kind, change))
            .or_else(|| by_pair.get(&id).and_then(|p| record_name(kind, &p.content)));
        if let Some(name) = name {
            names.insert(id, name);
        }
    }
    names
}

/// The record's name when the change carries its content.
pub(super) fn of_change(kind: ItemKind, change: &Change) -> Option<String> {
    match change {
        Change::Upsert(item) => record_name(kind, &item.fields),
        _ => None,
    }
}

/// The records an op concerns without carrying their content.
fn contentless_ids(op: &Op) -> Vec<ItemId> {
    match op {
        Op::Skip { id, .. } => vec![id.clone()],
        Op::Delete {
            crm_id,
            exchange_id,
            ..
        }
        | Op::Forget {
            crm_id,
            exchange_id,
            ..
        } => vec![
            ItemId::Crm(crm_id.clone()),
            ItemId::Exchange(exchange_id.clone()),
        ],
        _ => Vec::new(),
    }
}

/// The name of each record the ops carry content for, by its id on either side.
fn of_writes(ops: &[Op]) -> Names {
    let mut names = Names::new();
    for op in ops {
        let (kind, fields, ids) = match op {
            Op::Create {
                kind,
                source,
                fields,
                replaces,
                ..
            } => {
                let mut ids = vec![source.clone()];
                if let Some((crm_id, exchange_id)) = replaces {
                    ids.push(ItemId::Crm(crm_id.clone()));
                    ids.push(ItemId::Exchange(exchange_id.clone()));
                }
                (*kind, fields, ids)
            }
            Op::Update {
                kind,
                crm_id,
                exchange_id,
                fields,
                ..
            }
            | Op::Link {
                kind,
                crm_id,
                exchange_id,
                fields,
                ..
            } => (
                *kind,
                fields,
                vec![
                    ItemId::Crm(crm_id.clone()),
                    ItemId::Exchange(exchange_id.clone()),
                ],
            ),
            _ => continue,
        };
        if let Some(name) = record_name(kind, fields) {
            for id in ids {
                names.entry(id).or_insert_with(|| name.clone());
            }
        }
    }
    names
}

/// The names of these records by the content their pairs last synced, for records this pass
/// holds no content of (a deletion, a record it did not read); `slice` ids are looked up at
/// once.
pub(super) async fn of_pairs(
    store: &Arc<dyn Store>,
    user: &UserKey,
    kind: ItemKind,
    ids: &[ItemId],
    slice: usize,
) -> Result<Names, PassError> {
    let mut names = Names::new();
    for ids in ids.chunks(slice.max(1)) {
        let asked: BTreeSet<ItemId> = ids.iter().cloned().collect();
        let pairs = {
            let (key, ids) = (user.clone(), ids.to_vec());
            on_store(store, move |s| s.pairs_of(&key, kind, &ids)).await?
        };
        for pair in pairs {
            if let Some(name) = record_name(kind, &pair.content) {
                for id in [pair.id_on(Side::Crm), pair.id_on(Side::Exchange)] {
                    if asked.contains(&id) {
                        names.entry(id).or_insert_with(|| name.clone());
                    }
                }
            }
        }
    }
    Ok(names)
}

impl<E: MailboxSide, C: CrmSide> KindPass<'_, E, C> {
    /// The names of these records, which no plan carries (records waiting while the user is
    /// paused, or synced without what the other side cannot hold): from the record as this pass
    /// staged it, else from the content its pair last synced.
    pub(super) async fn names_of(&self, stage: &Stage, ids: &[ItemId]) -> Result<Names, PassError> {
        let kind = self.kind;
        let mut names = Names::new();
        for ids in ids.chunks(self.slice.max(1)) {
            names.extend(
                stage
                    .staged(ids)?
                    .iter()
                    .filter_map(|change| Some((change.id().clone(), of_change(kind, change)?))),
            );
        }
        let unnamed: Vec<ItemId> = ids
            .iter()
            .filter(|id| !names.contains_key(*id))
            .cloned()
            .collect();
        names.extend(of_pairs(self.store, &self.user.key, kind, &unnamed, self.slice).await?);
        Ok(names)
    }
}
