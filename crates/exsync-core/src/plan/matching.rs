//! Linking records that exist on both sides but are not paired yet (first sync, or a create
//! retried after a crash), so they are linked instead of duplicated.
//!
//! Each rule derives keys from a record; a CRM record and an Exchange record with an equal key
//! of the same rule are the same record. Matching is greedy and deterministic: rules in order of
//! strength (so a tag or an e-mail match is never taken away by a weaker name match), CRM
//! records in id order, each taking the lowest-id Exchange record still free that shares its
//! first matching key. The algorithm is written once, over [`Candidates`]: the planner runs it
//! in memory, and a paged pass runs it over records spilled to disk.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::model::{clean_line, ItemId, ItemKind, Side};

use super::types::{Item, LinkReason};

/// The rules of a kind, strongest first; a rule's index is its number in [`match_keys`].
pub fn link_rules(kind: ItemKind) -> &'static [LinkReason] {
    match kind {
        ItemKind::Contact => &[
            LinkReason::Tag,
            LinkReason::Email,
            LinkReason::NameAndCompany,
        ],
        ItemKind::Event => &[LinkReason::Tag, LinkReason::SubjectAndTime],
    }
}

/// The keys of one record, as (rule number, key). `item.fields` must already be cut down to
/// the fields that sync, as the planner sees them.
pub fn match_keys(kind: ItemKind, item: &Item) -> Vec<(u8, String)> {
    keys_of(kind, item, &|name| item.fields.get(name))
}

/// A record's fields as the match rules read them, by name.
pub(crate) type FieldLookup<'a> = dyn Fn(&str) -> Option<&'a Value> + 'a;

/// [`match_keys`] of `item` with its fields read through `field`, which may hide some.
pub(crate) fn keys_of(kind: ItemKind, item: &Item, field: &FieldLookup<'_>) -> Vec<(u8, String)> {
    let side = item.id.side();
    // Our tag names the exact counterpart, and either side may carry it: a CRM record matches
    // an Exchange record tagged with the CRM record's id, or the one its own tag names.
    let tag = |id: &ItemId| format!("{}\u{1f}{}", id.side(), id.as_str());
    let mut keys = vec![(0, tag(&item.id))];
    if let Some(origin) = &item.origin {
        if origin.side() != side {
            keys.push((0, tag(origin)));
        }
    }
    let by_rule = match kind {
        ItemKind::Contact => vec![email_keys(field), name_company_key(field)],
        ItemKind::Event => vec![subject_time_key(field)],
    };
    for (n, rule_keys) in by_rule.into_iter().enumerate() {
        let rule = u8::try_from(n + 1).unwrap_or(u8::MAX);
        keys.extend(rule_keys.into_iter().map(|k| (rule, k)));
    }
    keys
}

/// Unpaired records as matching reads them. Implementations keep records that are linked out
/// of later answers.
pub trait Candidates {
    /// What the store behind the candidates fails with; matching stops on the first error and
    /// returns it.
    type Error;

    /// Up to `limit` CRM records not linked yet, after `after` in id order, each with its keys
    /// of `rule` in the order [`match_keys`] gave them.
    fn unlinked_crm(
        &mut self,
        rule: u8,
        after: Option<&ItemId>,
        limit: usize,
    ) -> Result<Vec<(ItemId, Vec<String>)>, Self::Error>;

    /// Whether any Exchange record not linked yet has a key of `rule`. With none, the rule
    /// links nothing and its CRM records are not gone through (a first sync into an empty
    /// mailbox would otherwise look up every key of every CRM record).
    fn any_exchange(&mut self, rule: u8) -> Result<bool, Self::Error>;

    /// The lowest-id Exchange record not linked yet with this key of `rule`.
    fn exchange_with(&mut self, rule: u8, key: &str) -> Result<Option<ItemId>, Self::Error>;

    /// Records that `crm` and `exchange` are a pair, so neither is offered again.
    fn link(
        &mut self,
        crm: &ItemId,
        exchange: &ItemId,
        reason: LinkReason,
    ) -> Result<(), Self::Error>;
}

/// Runs the greedy matching over `candidates`, `page` CRM records at a time.
pub fn link_unpaired<C: Candidates>(
    kind: ItemKind,
    candidates: &mut C,
    page: usize,
) -> Result<(), C::Error> {
    for (n, reason) in link_rules(kind).iter().enumerate() {
        let rule = u8::try_from(n).unwrap_or(u8::MAX);
        if !candidates.any_exchange(rule)? {
            continue;
        }
        let mut after: Option<ItemId> = None;
        loop {
            let records = candidates.unlinked_crm(rule, after.as_ref(), page.max(1))?;
            let Some((last, _)) = records.last() else {
                break;
            };
            let last = last.clone();
            for (crm, keys) in records {
                for key in keys {
                    if let Some(exchange) = candidates.exchange_with(rule, &key)? {
                        candidates.link(&crm, &exchange, *reason)?;
                        break;
                    }
                }
            }
            after = Some(last);
        }
    }
    Ok(())
}

/// [`Candidates`] over records in memory.
struct InMemory<'a> {
    crm: BTreeMap<&'a ItemId, Vec<(u8, String)>>,
    /// Exchange records by (rule, key), lowest id first.
    exchange: BTreeMap<(u8, String), BTreeSet<&'a ItemId>>,
    items: BTreeMap<&'a ItemId, &'a Item>,
    linked: BTreeSet<ItemId>,
    links: Vec<(&'a Item, &'a Item, LinkReason)>,
}

impl Candidates for InMemory<'_> {
    type Error = std::convert::Infallible;

    fn unlinked_crm(
        &mut self,
        rule: u8,
        after: Option<&ItemId>,
        limit: usize,
    ) -> Result<Vec<(ItemId, Vec<String>)>, Self::Error> {
        Ok(self
            .crm
            .iter()
            .filter(|(id, _)| after.is_none_or(|after| **id > after))
            .filter(|(id, _)| !self.linked.contains(**id))
            .take(limit)
            .map(|(id, keys)| {
                let keys = keys
                    .iter()
                    .filter(|(r, _)| *r == rule)
                    .map(|(_, k)| k.clone())
                    .collect();
                ((*id).clone(), keys)
            })
            .collect())
    }

    fn any_exchange(&mut self, rule: u8) -> Result<bool, Self::Error> {
        Ok(self
            .exchange
            .iter()
            .any(|((r, _), ids)| *r == rule && ids.iter().any(|id| !self.linked.contains(*id))))
    }

    fn exchange_with(&mut self, rule: u8, key: &str) -> Result<Option<ItemId>, Self::Error> {
        Ok(self.exchange.get(&(rule, key.to_owned())).and_then(|ids| {
            ids.iter()
                .find(|id| !self.linked.contains(**id))
                .map(|id| (*id).clone())
        }))
    }

    fn link(
        &mut self,
        crm: &ItemId,
        exchange: &ItemId,
        reason: LinkReason,
    ) -> Result<(), Self::Error> {
        if let (Some(c), Some(e)) = (self.items.get(crm), self.items.get(exchange)) {
            self.links.push((c, e, reason));
        }
        self.linked.insert(crm.clone());
        self.linked.insert(exchange.clone());
        Ok(())
    }
}

/// Pairs up unpaired CRM and Exchange items one to one (see the module comment).
pub(super) fn match_items<'a>(
    kind: ItemKind,
    crm: &[&'a Item],
    exchange: &[&'a Item],
) -> Vec<(&'a Item, &'a Item, LinkReason)> {
    let mut index = InMemory {
        crm: BTreeMap::new(),
        exchange: BTreeMap::new(),
        items: BTreeMap::new(),
        linked: BTreeSet::new(),
        links: Vec::new(),
    };
    for item in crm.iter().chain(exchange) {
        index.items.insert(&item.id, item);
        let keys = match_keys(kind, item);
        match item.id.side() {
            Side::Crm => {
                index.crm.insert(&item.id, keys);
            }
            Side::Exchange => {
                for key in keys {
                    index.exchange.entry(key).or_default().insert(&item.id);
                }
            }
        }
    }
    let Ok(()) = link_unpaired(kind, &mut index, usize::MAX);
    index.links
}

fn text(field: &FieldLookup<'_>, name: &str) -> String {
    field(name)
        .and_then(Value::as_str)
        .map(|s| clean_line(s).to_lowercase())
        .unwrap_or_default()
}

/// Every address of a contact, primary first.
fn email_keys(field: &FieldLookup<'_>) -> Vec<String> {
    match field("emails") {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_lowercase)
            .collect(),
        _ => Vec::new(),
    }
}

/// First + last name + company, case-insensitive; only when both names are known, since a
/// match on a surname alone would link strangers.
fn name_company_key(field: &FieldLookup<'_>) -> Vec<String> {
    let (first, last) = (text(field, "first_name"), text(field, "last_name"));
    if first.is_empty() || last.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "{first}\u{1f}{last}\u{1f}{}",
        text(field, "company")
    )]
}

/// Subject + start + end; the times are already normalised to UTC by the model.
fn subject_time_key(field: &FieldLookup<'_>) -> Vec<String> {
    match (field("start"), field("end")) {
        (Some(start), Some(end)) => vec![format!(
            "{}\u{1f}{start}\u{1f}{end}",
            text(field, "subject")
        )],
        _ => Vec::new(),
    }
}
