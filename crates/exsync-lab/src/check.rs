//! Whether both sides agree: every pair's two records hold the same synced content (and the
//! status database says so too), every record in scope is paired or waiting with a reason,
//! and no record was copied twice.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, Result};
use chrono::Utc;
use exsync_core::config::KindRules;
use exsync_core::plan::{out_of_scope, Change, Item};
use exsync_core::{required_fields, Fields, ItemId, ItemKind, UserKey};

use super::Lab;
use exsync_engine::sync::pass::KINDS;

/// Something that does not agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub user: UserKey,
    pub kind: ItemKind,
    pub what: String,
}

/// The outcome of a check.
#[derive(Debug, Default)]
pub struct Convergence {
    pub problems: Vec<Problem>,
    pub pairs: usize,
    pub crm_records: usize,
    pub exchange_items: usize,
    /// Records waiting with a reason (e.g. one the CRM refuses).
    pub unresolved: usize,
}

impl Convergence {
    pub fn converged(&self) -> bool {
        self.problems.is_empty()
    }
}

fn synced(rules: &KindRules, kind: ItemKind, fields: &Fields) -> Fields {
    let keep: BTreeSet<&str> = rules
        .fields
        .keys()
        .map(String::as_str)
        .chain(required_fields(kind).iter().copied())
        .collect();
    fields
        .iter()
        .filter(|(k, _)| keep.contains(k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn upserts(changes: Vec<Change>) -> BTreeMap<ItemId, Item> {
    changes
        .into_iter()
        .filter_map(|c| match c {
            Change::Upsert(item) => Some((item.id.clone(), item)),
            _ => None,
        })
        .collect()
}

impl Lab {
    /// Reads both sides in full and compares them with each other and with the status database.
    pub async fn convergence(&self) -> Result<Convergence> {
        let mut out = Convergence::default();
        let now = Utc::now();
        let config = &self.syncer.configurations[0];
        let lens = exsync_engine::sync::sides::CrmSide::lens(&self.syncer.crm);
        for user in &self.users {
            let unresolved: BTreeSet<ItemId> = self
                .syncer
                .store
                .unresolved(&user.key)?
                .into_iter()
                .map(|u| u.id)
                .collect();
            out.unresolved += unresolved.len();
            for kind in KINDS {
                let rules = config.rules(kind);
                let problem = |what: String| Problem {
                    user: user.key.clone(),
                    kind,
                    what,
                };
                let ids = self.crm_ids(user, kind).await?;
                let crm = upserts(
                    self.crm
                        .fetch_changes(kind.into(), &ids)
                        .await?
                        .into_iter()
                        .map(|c| c.change)
                        .collect(),
                );
                let exchange = upserts(
                    self.syncer
                        .exchange
                        .read_folder(&user.key, kind)
                        .await
                        .map_err(|e| anyhow!("{e}"))?,
                );
                let pairs = self.syncer.store.load_pairs(&user.key, kind)?;
                out.pairs += pairs.len();
                out.crm_records += crm.len();
                out.exchange_items += exchange.len();

                let mut paired = BTreeSet::new();
                for pair in &pairs {
                    let (c, e) = (
                        pair.id_on(exsync_core::Side::Crm),
                        pair.id_on(exsync_core::Side::Exchange),
                    );
                    paired.insert(c.clone());
                    paired.insert(e.clone());
                    let (Some(ci), Some(ei)) = (crm.get(&c), exchange.get(&e)) else {
                        out.problems.push(problem(format!(
                            "pair {c} / {e} points at a record that is gone"
                        )));
                        continue;
                    };
                    if unresolved.contains(&c) || unresolved.contains(&e) {
                        continue;
                    }
                    let (cf, ef) = (
                        synced(rules, kind, &ci.fields),
                        synced(rules, kind, &ei.fields),
                    );
                    // The CRM holds what it can of the pair; Exchange holds all of it.
                    if cf != lens.narrow(kind, &ef) {
                        out.problems.push(problem(format!(
                            "{c} and {e} differ: CRM {cf:?} / Exchange {ef:?}"
                        )));
                    } else if ef != synced(rules, kind, &pair.content) {
                        out.problems.push(problem(format!(
                            "the status of {c} / {e} differs from both records"
                        )));
                    }
                }
                for (id, item) in crm.iter().chain(exchange.iter()) {
                    // A side whose changes do not flow keeps records of its own.
                    if !rules.direction.flows_from(id.side()) {
                        continue;
                    }
                    let waiting = unresolved.contains(id);
                    if !paired.contains(id)
                        && !waiting
                        && out_of_scope(kind, rules, &item.fields, now).is_none()
                    {
                        out.problems.push(problem(format!("{id} was never synced")));
                    }
                }
                let mut tags = BTreeSet::new();
                for item in exchange.values().filter_map(|i| i.origin.as_ref()) {
                    if !tags.insert(item.clone()) {
                        out.problems
                            .push(problem(format!("{item} was copied to Exchange twice")));
                    }
                }
                let mut origins = BTreeSet::new();
                for item in crm.values().filter_map(|i| i.origin.as_ref()) {
                    if !origins.insert(item.clone()) {
                        out.problems
                            .push(problem(format!("{item} was copied to the CRM twice")));
                    }
                }
            }
        }
        Ok(out)
    }
}
