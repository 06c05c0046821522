//! The names records are reported by next to their ids (`exsync_core::record_name`): each
//! failure, skip, conflict and waiting record a pass stores, and each line of a dry run's plan.
//! A write carries the record's content and is named by it; a delete or a skip carries none,
//! so it is named by the record as this pass read it, or else by the content its pair last
//! synced.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use exsync_core::plan::{Change, Op, SyncedPair};
use exsync_core::{record_name, ItemId, ItemKind, Side, UserKey};
use exsync_store::Store;

use super::{on_store, KindPass, PassError};
use crate::sync::sides::{CrmSide, MailboxSide};
use crate::sync::stage::Stage;

/// Record names by id, on either side.
pub(super) type Names = BTreeMap<ItemId, String>;

/// A slice's plan, as the planner hands it to the writer, with the names of its records that
/// its writes do not carry (see [`of_plan`]).
pub(super) struct Planned {
    pub(super) ops: Vec<Op>,
    /// Shared by the slice's batches.
    pub(super) names: Arc<Names>,
}

/// The names of a slice's records its writes carry no content for (its deletes and skips),
/// from `read` (this pass's changes) or `pairs` (their pairs). A write is named from its own
/// content only when a report needs the name ([`BatchNames`], [`with_writes`]): nearly every
/// write succeeds, and naming each in advance cost a noticeable part of a first sync.
pub(super) fn of_plan(kind: ItemKind, ops: &[Op], read: &[Change], pairs: &[SyncedPair]) -> Names {
    let mut names = Names::new();
    let contentless = contentless(ops);
    if contentless.is_empty() {
        return names;
    }
    // A record a write names keeps the write's name.
    let carried = of_writes(ops);
    let unnamed: Vec<ItemId> = contentless
        .into_iter()
        .filter(|id| !carried.contains_key(id))
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

/// Every name of a slice's records: those its writes carry, then `others` (from [`of_plan`]).
pub(super) fn with_writes(ops: &[Op], others: Names) -> Names {
    let mut names = of_writes(ops);
    names.extend(others);
    names
}

/// The names of one batch's records, for its failures and conflicts: a write's name is made
/// from the batch's writes the first time one is asked for, never when none is.
pub(super) struct BatchNames<'a> {
    ops: &'a [Op],
    others: &'a Names,
    carried: OnceLock<Names>,
}

impl<'a> BatchNames<'a> {
    /// The names of the records of `ops`, the batch, whose slice's contentless records
    /// `others` names.
    pub(super) fn new(ops: &'a [Op], others: &'a Names) -> BatchNames<'a> {
        BatchNames {
            ops,
            others,
            carried: OnceLock::new(),
        }
    }

    /// The record's name, from the batch's writes first.
    pub(super) fn get(&self, id: &ItemId) -> Option<String> {
        self.carried
            .get_or_init(|| of_writes(self.ops))
            .get(id)
            .or_else(|| self.others.get(id))
            .cloned()
    }
}

/// The record's name when the change carries its content.
pub(super) fn of_change(kind: ItemKind, change: &Change) -> Option<String> {
    match change {
        Change::Upsert(item) => record_name(kind, &item.fields),
        _ => None,
    }
}

/// The records an op concerns without carrying their content.
/// The records the ops' writes carry no content for, which [`of_plan`] names from what was
/// read.
pub(super) fn contentless(ops: &[Op]) -> Vec<ItemId> {
    ops.iter().flat_map(contentless_ids).collect()
}

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use exsync_core::plan::Item;
    use exsync_core::{CrmId, ExchangeId, Fields};
    use serde_json::json;

    use super::*;

    fn contact(last_name: &str) -> Fields {
        match json!({"first_name": "Ann", "last_name": last_name}) {
            serde_json::Value::Object(map) => map.into_iter().collect(),
            _ => unreachable!(),
        }
    }

    fn create(crm: &str, last_name: &str) -> Op {
        Op::Create {
            kind: ItemKind::Contact,
            on: Side::Exchange,
            source: ItemId::Crm(CrmId::new(crm)),
            source_version: None,
            fields: contact(last_name),
            replaces: None,
        }
    }

    fn delete(crm: &str, exchange: &str) -> Op {
        Op::Delete {
            kind: ItemKind::Contact,
            on: Side::Exchange,
            crm_id: CrmId::new(crm),
            exchange_id: ExchangeId::new(exchange),
        }
    }

    #[test]
    fn writes_are_named_from_their_content_only_when_asked() {
        let ops = [create("003A", "Ng"), create("003B", "Ito")];
        let others = of_plan(ItemKind::Contact, &ops, &[], &[]);
        assert!(others.is_empty(), "nothing named in advance: {others:?}");

        let batch = BatchNames::new(&ops[1..], &others);
        assert_eq!(
            batch.get(&ItemId::Crm(CrmId::new("003B"))).as_deref(),
            Some("Ann Ito")
        );
        assert_eq!(batch.get(&ItemId::Crm(CrmId::new("003A"))), None);

        let all = with_writes(&ops, others);
        assert_eq!(all.len(), 2);
        assert_eq!(
            all.get(&ItemId::Crm(CrmId::new("003A")))
                .map(String::as_str),
            Some("Ann Ng")
        );
    }

    #[test]
    fn a_delete_is_named_from_the_record_read_unless_a_write_names_it() {
        let read = Change::Upsert(Item {
            id: ItemId::Exchange(ExchangeId::new("AAB")),
            version: None,
            modified: None,
            origin: None,
            fields: contact("Read"),
        });
        let ops = [
            delete("003B", "AAB"),
            delete("003A", "AAA"),
            create("003A", "Written"),
        ];
        let others = of_plan(ItemKind::Contact, &ops, &[read], &[]);
        assert_eq!(
            others,
            Names::from([(ItemId::Exchange(ExchangeId::new("AAB")), "Ann Read".into())])
        );
        let batch = BatchNames::new(&ops, &others);
        for (id, name) in [
            (ItemId::Exchange(ExchangeId::new("AAB")), Some("Ann Read")),
            (ItemId::Crm(CrmId::new("003A")), Some("Ann Written")),
            (ItemId::Crm(CrmId::new("003B")), None),
        ] {
            assert_eq!(batch.get(&id).as_deref(), name, "{id:?}");
        }
    }
}
