//! Records are kept with their names (a contact's name and address, an event's subject and
//! start), so status shows more than ids: capped, kept across passes that only know the id.

use exsync_core::plan::Conflict;
use exsync_core::{CrmId, ExchangeId, ItemId, ItemKind, Side, NAME_MAX};
use serde_json::json;

use super::*;
use crate::ConflictEntry;

fn named(id: &str, name: Option<&str>, reason: &str) -> UnresolvedReport {
    UnresolvedReport {
        name: name.map(str::to_owned),
        ..failing(ItemKind::Contact, ItemId::Crm(CrmId::new(id)), reason)
    }
}

fn unresolved_items_and_conflicts_keep_their_names(db: &Db) {
    let store = db.open();
    let alice = user("alice");
    let mut pass = commit(&alice, 0);
    pass.unresolved = vec![
        named("003A", Some("Ann Lee <ann@contoso.test>"), "FIELD_TOO_LONG"),
        named("003B", None, "no content read"),
        named("003C", Some(&"x".repeat(NAME_MAX * 3)), "too long a name"),
    ];
    let conflict = Conflict {
        field: "subject".into(),
        crm_value: Some(json!("Kick-off")),
        exchange_value: Some(json!("Kick-off call")),
        winner: Side::Exchange,
        first_link: true,
    };
    pass.conflicts = vec![ConflictEntry {
        name: Some("Kick-off call (2026-12-08)".into()),
        kind: ItemKind::Event,
        crm_id: CrmId::new("00U7"),
        exchange_id: ExchangeId::new("E7"),
        conflict,
    }];
    store.commit_pass(&pass).unwrap();

    let items = store.unresolved(&alice).unwrap();
    let name_of = |id: &str| {
        items
            .iter()
            .find(|i| i.id == ItemId::Crm(CrmId::new(id)))
            .and_then(|i| i.name.clone())
    };
    assert_eq!(
        name_of("003A").as_deref(),
        Some("Ann Lee <ann@contoso.test>")
    );
    assert_eq!(name_of("003B"), None);
    let long = name_of("003C").unwrap();
    assert_eq!(
        long.chars().count(),
        NAME_MAX,
        "a name from outside is capped"
    );
    assert!(long.ends_with('…'), "{long}");

    let conflicts = store.conflicts(&alice, 10).unwrap();
    assert_eq!(
        conflicts[0].name.as_deref(),
        Some("Kick-off call (2026-12-08)")
    );

    // A later pass that knows only the id keeps the name; one that knows a new name
    // replaces it.
    let mut pass = commit(&alice, 100);
    pass.unresolved = vec![
        named("003A", None, "FIELD_TOO_LONG again"),
        named("003B", Some("Bo Chen <bo@contoso.test>"), "still failing"),
    ];
    store.commit_pass(&pass).unwrap();
    drop(store);
    let store = db.open();
    let items = store.unresolved(&alice).unwrap();
    let a = items
        .iter()
        .find(|i| i.id == ItemId::Crm(CrmId::new("003A")))
        .unwrap();
    assert_eq!(
        (a.name.as_deref(), a.reason.as_str(), a.occurrences),
        (
            Some("Ann Lee <ann@contoso.test>"),
            "FIELD_TOO_LONG again",
            2
        )
    );
    let b = items
        .iter()
        .find(|i| i.id == ItemId::Crm(CrmId::new("003B")))
        .unwrap();
    assert_eq!(b.name.as_deref(), Some("Bo Chen <bo@contoso.test>"));
}

crate::tests::both_backends!(unresolved_items_and_conflicts_keep_their_names);
