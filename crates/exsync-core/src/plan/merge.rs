//! Three-way merge of field maps.

use std::collections::BTreeSet;

use crate::model::{Fields, Side};

use super::types::Conflict;

/// Merges `crm` and `exchange` against their last-synced `base`, field by field: a field
/// changed on one side only is taken from that side; a field changed on both sides to different
/// values is settled by `winner` and reported. With an empty base (first sync), a field set on
/// one side only counts as changed there, so blanks are filled rather than conflicting.
pub fn three_way(
    base: &Fields,
    crm: &Fields,
    exchange: &Fields,
    winner: Side,
) -> (Fields, Vec<Conflict>) {
    let names: BTreeSet<&String> = base
        .keys()
        .chain(crm.keys())
        .chain(exchange.keys())
        .collect();
    let mut merged = Fields::new();
    let mut conflicts = Vec::new();
    for name in names {
        let (b, c, e) = (base.get(name), crm.get(name), exchange.get(name));
        let value = if c == e || e == b {
            c
        } else if c == b {
            e
        } else {
            conflicts.push(Conflict {
                field: name.clone(),
                crm_value: c.cloned(),
                exchange_value: e.cloned(),
                winner,
                first_link: false,
            });
            match winner {
                Side::Crm => c,
                Side::Exchange => e,
            }
        };
        if let Some(value) = value {
            merged.insert(name.clone(), value.clone());
        }
    }
    (merged, conflicts)
}

/// Merges two records linked for the first time, which have no last-synced state: a field
/// only one holds is taken from it (a blank is not an edit that can be dated); a field both
/// hold differently is taken from `newer`, the side modified more recently, and reported as a
/// first-link merge. Without a newer side (a tie, or a time unknown) the fields are merged as
/// [`three_way`] does with an empty base, and differences are conflicts settled by `winner`.
pub(crate) fn first_link(
    crm: &Fields,
    exchange: &Fields,
    newer: Option<Side>,
    winner: Side,
) -> (Fields, Vec<Conflict>) {
    let Some(newer) = newer else {
        return three_way(&Fields::new(), crm, exchange, winner);
    };
    let (merged, mut differing) = three_way(&Fields::new(), crm, exchange, newer);
    for merge in &mut differing {
        merge.first_link = true;
    }
    // `three_way` with an empty base already took blanks from the side holding a value and
    // gave differing values to `newer`; only the reports change.
    (merged, differing)
}

/// Names of the fields whose values differ between two maps.
pub fn changed_fields(from: &Fields, to: &Fields) -> Vec<String> {
    let names: BTreeSet<&String> = from.keys().chain(to.keys()).collect();
    names
        .into_iter()
        .filter(|n| from.get(*n) != to.get(*n))
        .cloned()
        .collect()
}
