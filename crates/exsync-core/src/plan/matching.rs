//! Linking records that exist on both sides but are not paired yet (first sync, or a create
//! retried after a crash), so they are linked instead of duplicated.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::model::{clean_line, Fields, ItemId, ItemKind};

use super::types::{Item, LinkReason};

/// The match keys a rule derives from a record; equal keys mean the same record.
type KeyFn = fn(&Fields) -> Vec<String>;

/// Pairs up unpaired CRM and Exchange items one to one. Stronger rules run first over all
/// items, so a tag or an e-mail match is never taken away by a weaker name match. Within a rule,
/// candidates are taken in id order, so the result does not depend on input order.
pub fn match_items<'a>(
    kind: ItemKind,
    crm: &[&'a Item],
    exchange: &[&'a Item],
) -> Vec<(&'a Item, &'a Item, LinkReason)> {
    let mut links = Vec::new();
    let mut crm_taken: BTreeSet<&ItemId> = BTreeSet::new();
    let mut exchange_taken: BTreeSet<&ItemId> = BTreeSet::new();

    // Our tag names the exact counterpart; either side may carry it.
    for c in crm {
        let tagged = exchange.iter().find(|e| {
            !exchange_taken.contains(&e.id)
                && (e.origin.as_ref() == Some(&c.id) || c.origin.as_ref() == Some(&e.id))
        });
        if let Some(e) = tagged {
            crm_taken.insert(&c.id);
            exchange_taken.insert(&e.id);
            links.push((*c, *e, LinkReason::Tag));
        }
    }

    let rules: &[(LinkReason, KeyFn)] = match kind {
        ItemKind::Contact => &[
            (LinkReason::Email, email_keys),
            (LinkReason::NameAndCompany, name_company_key),
        ],
        ItemKind::Event => &[(LinkReason::SubjectAndTime, subject_time_key)],
    };
    for (reason, keys_of) in rules {
        let mut by_key: BTreeMap<String, Vec<&'a Item>> = BTreeMap::new();
        for e in exchange.iter().filter(|e| !exchange_taken.contains(&e.id)) {
            for key in keys_of(&e.fields) {
                by_key.entry(key).or_default().push(e);
            }
        }
        for c in crm {
            if crm_taken.contains(&c.id) {
                continue;
            }
            let found = keys_of(&c.fields).into_iter().find_map(|key| {
                by_key.get(&key).and_then(|candidates| {
                    candidates.iter().find(|e| !exchange_taken.contains(&e.id))
                })
            });
            if let Some(e) = found {
                crm_taken.insert(&c.id);
                exchange_taken.insert(&e.id);
                links.push((*c, *e, *reason));
            }
        }
    }
    links
}

fn text(fields: &Fields, name: &str) -> String {
    fields
        .get(name)
        .and_then(Value::as_str)
        .map(|s| clean_line(s).to_lowercase())
        .unwrap_or_default()
}

/// Every address of a contact, primary first.
fn email_keys(fields: &Fields) -> Vec<String> {
    match fields.get("emails") {
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
fn name_company_key(fields: &Fields) -> Vec<String> {
    let (first, last) = (text(fields, "first_name"), text(fields, "last_name"));
    if first.is_empty() || last.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "{first}\u{1f}{last}\u{1f}{}",
        text(fields, "company")
    )]
}

/// Subject + start + end; the times are already normalised to UTC by the model.
fn subject_time_key(fields: &Fields) -> Vec<String> {
    match (fields.get("start"), fields.get("end")) {
        (Some(start), Some(end)) => vec![format!(
            "{}\u{1f}{start}\u{1f}{end}",
            text(fields, "subject")
        )],
        _ => Vec::new(),
    }
}
