//! How the pass's scratch databases (the stage, the spool) hold a [`Change`]. `Change` is
//! internally tagged for the files people read and the state that must stay readable across
//! versions; deserialising that form makes serde buffer the whole record before it knows the
//! variant, which cost several per cent of a first sync. Scratch rows live for one pass only,
//! so they take serde's externally tagged form instead, read in one go.

use exsync_core::plan::{Change, Item};
use exsync_core::ItemId;
use serde::{Deserialize, Serialize};

/// The written form, borrowing from the change.
#[derive(Serialize)]
enum Stored<'a> {
    Upsert(&'a Item),
    Deleted(&'a ItemId),
    OutOfScope(&'a ItemId),
    Invalid(&'a ItemId, &'a str),
}

/// The read form, owning what it read.
#[derive(Deserialize)]
enum Loaded {
    Upsert(Item),
    Deleted(ItemId),
    OutOfScope(ItemId),
    Invalid(ItemId, String),
}

/// `change` as a scratch row's text.
pub(super) fn to_text(change: &Change) -> serde_json::Result<String> {
    serde_json::to_string(&match change {
        Change::Upsert(item) => Stored::Upsert(item),
        Change::Deleted { id } => Stored::Deleted(id),
        Change::OutOfScope { id } => Stored::OutOfScope(id),
        Change::Invalid { id, reason } => Stored::Invalid(id, reason),
    })
}

/// The change a scratch row's text holds.
pub(super) fn from_text(text: &str) -> serde_json::Result<Change> {
    Ok(match serde_json::from_str(text)? {
        Loaded::Upsert(item) => Change::Upsert(item),
        Loaded::Deleted(id) => Change::Deleted { id },
        Loaded::OutOfScope(id) => Change::OutOfScope { id },
        Loaded::Invalid(id, reason) => Change::Invalid { id, reason },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use exsync_core::{CrmId, ExchangeId, Fields};

    #[test]
    fn every_change_reads_back_as_written() -> serde_json::Result<()> {
        let crm = ItemId::Crm(CrmId::new("003A"));
        let exchange = ItemId::Exchange(ExchangeId::new("AAMk="));
        let mut fields = Fields::new();
        fields.insert("last_name".into(), "Lovelace \"Ada\"".into());
        let changes = [
            Change::Upsert(Item {
                id: exchange.clone(),
                fields,
                version: Some("CK1".into()),
                modified: None,
                origin: Some(crm.clone()),
            }),
            Change::Deleted { id: crm.clone() },
            Change::OutOfScope { id: exchange },
            Change::Invalid {
                id: crm,
                reason: "no \u{1F600} here".into(),
            },
        ];
        for change in changes {
            let text = to_text(&change)?;
            assert_eq!(from_text(&text)?, change, "{text}");
        }
        Ok(())
    }
}
