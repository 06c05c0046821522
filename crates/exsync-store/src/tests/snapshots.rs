//! Snapshots of the whole sync state after each step of a scripted sequence of passes, with
//! times redacted: a change in what a pass leaves behind shows up as a reviewable diff.

use chrono::Utc;
use exsync_core::plan::Conflict;
use exsync_core::{CrmId, ExchangeId, ItemId, ItemKind, Side};
use serde_json::json;

use super::*;
use crate::ConflictEntry;

fn snapshot_state(store: &(impl SyncState + ?Sized)) -> serde_json::Value {
    let mut state = dump(store);
    redact_times(&mut state);
    state
}

fn now_pass(who: &UserKey) -> PassCommit {
    let now = Utc::now();
    PassCommit::new(who.clone(), now, now)
}

fn scripted_passes(db: &Db) {
    let store = db.open();
    let alice = user("alice");
    let bob = user("bob");
    let contacts = |u: &UserKey| CursorScope::folder(u, "contacts");
    let calendar = |u: &UserKey| CursorScope::folder(u, "calendar");

    // 1. Alice's first pass links two contacts and an event and hits one bad record.
    let mut pass = now_pass(&alice);
    pass.upserts = vec![
        contact("003A", "X1", "Lovelace"),
        contact("003B", "X2", "Babbage"),
        event("00UA", "Y1", "Kick-off"),
    ];
    pass.cursors = vec![
        set_cursor(contacts(&alice), "alice-s1"),
        set_cursor(calendar(&alice), "alice-s1"),
        set_cursor(
            CursorScope::crm_object("Contact"),
            "2026-09-21T10:00:00.000+0000",
        ),
    ];
    pass.unresolved = vec![failing(
        ItemKind::Contact,
        ItemId::Crm(CrmId::new("003L")),
        "FIELD_TOO_LONG: Title",
    )];
    pass.crm_writes = vec![echo("003B", "2026-09-21T10:00:01.000+0000", Utc::now())];
    pass.counts = RunCounts {
        created: 3,
        failures: 1,
        ..RunCounts::default()
    };
    store.commit_pass(&pass).unwrap();
    insta::assert_json_snapshot!("step1_first_pass", snapshot_state(&*store));

    // 2. Both sides edited Lovelace; the CRM wins. Babbage was deleted in Exchange, so the
    //    pair goes. The long title was fixed and the contact now syncs.
    let mut pass = now_pass(&alice);
    pass.upserts = vec![contact("003A", "X1", "King"), contact("003L", "X5", "Long")];
    pass.removals = vec![key(&contact("003B", "X2", ""))];
    pass.conflicts = vec![ConflictEntry {
        kind: ItemKind::Contact,
        crm_id: CrmId::new("003A"),
        exchange_id: ExchangeId::new("X1"),
        conflict: Conflict {
            field: "last_name".into(),
            crm_value: Some(json!("King")),
            exchange_value: Some(json!("Byron")),
            winner: Side::Crm,
            first_link: false,
        },
        name: None,
    }];
    pass.cursors = vec![set_cursor(contacts(&alice), "alice-s2")];
    pass.counts = RunCounts {
        created: 1,
        updated: 1,
        deleted: 1,
        conflicts: 1,
        failures: 0,
    };
    store.commit_pass(&pass).unwrap();
    insta::assert_json_snapshot!("step2_conflict_delete_fix", snapshot_state(&*store));

    // 3. Bob's first pass, sharing a visible contact with Alice and moving the org watermark.
    let mut pass = now_pass(&bob);
    pass.upserts = vec![contact("003A", "BX1", "King")];
    pass.cursors = vec![
        set_cursor(contacts(&bob), "bob-s1"),
        set_cursor(
            CursorScope::crm_object("Contact"),
            "2026-09-21T11:00:00.000+0000",
        ),
    ];
    pass.unresolved = vec![failing(
        ItemKind::Event,
        ItemId::Exchange(ExchangeId::new("BY9")),
        "ErrorItemNotFound",
    )];
    pass.counts = RunCounts {
        created: 1,
        failures: 1,
        ..RunCounts::default()
    };
    store.commit_pass(&pass).unwrap();
    insta::assert_json_snapshot!("step3_second_user", snapshot_state(&*store));

    // 4. A pass that would delete most of Alice's contacts pauses her and writes no pair.
    let mut pass = now_pass(&alice);
    pass.pause = Some("would delete 2 of 2 contacts (100% > 50%)".into());
    pass.error = Some("paused by the mass-delete safety valve".into());
    store.commit_pass(&pass).unwrap();
    insta::assert_json_snapshot!("step4_paused", snapshot_state(&*store));

    // 5. The admin resets Alice: pairs and her cursors go, history stays, she is un-paused.
    let counts = store.reset_user(&alice).unwrap();
    assert_eq!(
        (counts.pairs, counts.cursors, counts.was_paused),
        (3, 2, true)
    );
    insta::assert_json_snapshot!("step5_reset", snapshot_state(&*store));

    // 6. Her next pass re-matches everything; the bad Exchange item of Bob is gone.
    let mut pass = now_pass(&alice);
    pass.upserts = vec![
        contact("003A", "X1", "King"),
        contact("003L", "X5", "Long"),
        event("00UA", "Y1", "Kick-off"),
    ];
    pass.cursors = vec![
        set_cursor(contacts(&alice), "alice-s1b"),
        set_cursor(calendar(&alice), "alice-s1b"),
    ];
    store.commit_pass(&pass).unwrap();
    let mut pass = now_pass(&bob);
    pass.resolved = vec![resolved(
        ItemKind::Event,
        ItemId::Exchange(ExchangeId::new("BY9")),
    )];
    store.commit_pass(&pass).unwrap();
    insta::assert_json_snapshot!("step6_relinked", snapshot_state(&*store));
}

crate::tests::both_backends!(scripted_passes,);
