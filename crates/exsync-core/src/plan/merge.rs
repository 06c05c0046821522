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

/// Names of the fields whose values differ between two maps.
pub fn changed_fields(from: &Fields, to: &Fields) -> Vec<String> {
    let names: BTreeSet<&String> = from.keys().chain(to.keys()).collect();
    names
        .into_iter()
        .filter(|n| from.get(*n) != to.get(*n))
        .cloned()
        .collect()
}
