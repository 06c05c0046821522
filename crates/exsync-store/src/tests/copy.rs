//! `store copy`: a SQLite state moved into an empty PostgreSQL database arrives whole, ids and
//! all, and the copy goes on working there.

use exsync_core::plan::{Conflict, Op};
use exsync_core::{CrmId, ExchangeId, ItemId, ItemKind, Side};
use serde_json::json;

use super::*;
use crate::{
    copy_sqlite_to_postgres, AuditEvent, ConflictEntry, CrmUserSkip, Departures, PgOptions,
    PgStore, Role, Secret, Session, StoreError,
};

/// Everything a SQLite database can hold, a little of each.
fn populated(store: &SqliteStore) {
    let (alice, bob) = (user("alice"), user("bob"));
    let mut pass = commit(&alice, 0);
    pass.upserts = vec![
        contact("003A", "X1", "Lovelace"),
        event("00UA", "E1", "Kick-off"),
    ];
    pass.cursors = vec![
        set_cursor(CursorScope::folder(&alice, "contacts"), "s1"),
        set_cursor(CursorScope::crm_object("Contact"), "2026-09-21T10:00:00Z"),
    ];
    pass.unresolved = vec![UnresolvedReport {
        name: Some("Grace Hopper <grace@example.org>".into()),
        ..failing(
            ItemKind::Contact,
            ItemId::Exchange(ExchangeId::new("X9")),
            "no name",
        )
    }];
    pass.conflicts = vec![ConflictEntry {
        kind: ItemKind::Contact,
        crm_id: CrmId::new("003A"),
        exchange_id: ExchangeId::new("X1"),
        conflict: Conflict {
            field: "title".into(),
            crm_value: Some(json!("CEO")),
            exchange_value: Some(json!("CTO")),
            winner: Side::Crm,
            first_link: false,
        },
        name: Some("Ada Lovelace <ada@example.org>".into()),
    }];
    pass.crm_writes = vec![echo("003A", "2026-09-21T10:00:01.000+0000", t(1))];
    store.commit_pass(&pass).unwrap();
    let mut pass = commit(&bob, 10);
    pass.upserts = vec![contact("003B", "Y1", "Babbage")];
    pass.pause = Some("too many deletes".into());
    store.commit_pass(&pass).unwrap();
    let journaled = store
        .journal_intents(
            &alice,
            ItemKind::Contact,
            &[
                &Op::Delete {
                    kind: ItemKind::Contact,
                    on: Side::Exchange,
                    crm_id: CrmId::new("003A"),
                    exchange_id: ExchangeId::new("X1"),
                },
                &Op::Create {
                    kind: ItemKind::Contact,
                    on: Side::Exchange,
                    source: ItemId::Crm(CrmId::new("003C")),
                    source_version: None,
                    fields: fields(json!({"last_name": "Hopper"})),
                    replaces: None,
                },
            ],
            t(20),
        )
        .unwrap();
    store.mark_intents_sent(&journaled).unwrap();
    store
        .mark_intents_answered(&[(journaled[1], ItemId::Exchange(ExchangeId::new("X3")))])
        .unwrap();
    store
        .put_secret(&Secret {
            name: "exchange.password".into(),
            nonce: vec![1; 12],
            ciphertext: vec![0xAB; 40],
            updated_at: t(0),
        })
        .unwrap();
    store
        .create_admin_user("root", "$argon2id$hash", Role::Admin, t(0))
        .unwrap();
    store
        .create_api_token("tokenhash", "ci", Role::Viewer, t(0))
        .unwrap();
    store
        .create_session(&Session {
            id: "sess".into(),
            admin_user: "root".into(),
            csrf_token: "csrf".into(),
            created_at: t(0),
            expires_at: t(3600),
        })
        .unwrap();
    store
        .append_audit(&AuditEvent {
            at: t(5),
            actor: "root".into(),
            action: "secret.set".into(),
            detail: json!({ "name": "exchange.password" }),
        })
        .unwrap();
    store
        .put_setting("sync_enabled", &json!(false), t(6))
        .unwrap();
    store
        .record_skipped_crm_users(
            &[CrmUserSkip {
                crm_id: CrmId::new("005Z"),
                address: "not-an-address".into(),
                reason: "no mailbox".into(),
            }],
            t(7),
        )
        .unwrap();
    store
        .record_unmatched_users(&[(user("gone"), "no active CRM user".into())], t(7))
        .unwrap();
    // Bob left the sync: he reads his records in full when he is back, on either backend.
    store
        .retire_departed(std::slice::from_ref(&user("alice")), t(8))
        .unwrap();
}

/// Everything either backend can say about its state, through the roles alone.
fn everything(store: &dyn Store) -> serde_json::Value {
    let alice = user("alice");
    json!({
        "sync": dump(store),
        "intents": store.intents(&alice, ItemKind::Contact).unwrap(),
        "secrets": store.list_secrets().unwrap(),
        "secret": format!("{:?}", store.get_secret("exchange.password").unwrap().map(|s| s.ciphertext)),
        "admins": store.list_admin_users().unwrap().iter().map(|a| (a.name.clone(), a.role.as_str(), a.created_at)).collect::<Vec<_>>(),
        "tokens": store.list_api_tokens().unwrap().iter().map(|t| (t.id, t.name.clone(), t.token_hash.clone())).collect::<Vec<_>>(),
        "session": store.session("sess", t(1)).unwrap().map(|s| (s.admin_user, s.csrf_token)),
        "audit": store.list_audit(100, None).unwrap(),
        "setting": store.setting("sync_enabled").unwrap(),
        "skipped": store.skipped_crm_users().unwrap(),
        "unmatched": store.unmatched_users().unwrap(),
        "full_read_due": store.full_read_due(&user("bob")).unwrap(),
    })
}

#[test]
fn a_sqlite_state_arrives_whole_in_postgres_and_goes_on_working_there() {
    let Some(pg) = exsync_testkit::postgres::database() else {
        return;
    };
    let (_dir, sqlite) = temp_store();
    populated(&sqlite);
    let target = PgStore::open(&PgOptions::new(pg.conninfo())).unwrap();
    let counts = copy_sqlite_to_postgres(&sqlite, &target).unwrap();
    let count = |table: &str| counts.iter().find(|(t, _)| *t == table).unwrap().1;
    assert_eq!((count("pairs"), count("runs"), count("secrets")), (3, 2, 1));

    let before = everything(&sqlite);
    assert_eq!(everything(&target), before);
    let answered: Vec<_> = target
        .intents(&user("alice"), ItemKind::Contact)
        .unwrap()
        .into_iter()
        .map(|i| i.answered)
        .collect();
    assert_eq!(
        answered,
        [None, Some(ItemId::Exchange(ExchangeId::new("X3")))],
        "a create's answered id is carried"
    );
    assert!(before["sync"]["users"]["bob@example.com"]["status"]["paused"].is_object());
    assert!(!before["full_read_due"].is_null());

    // The ids PostgreSQL hands out next follow the copied ones.
    let audit_id = target
        .append_audit(&AuditEvent {
            at: t(8),
            actor: "root".into(),
            action: "store.copy".into(),
            detail: json!({}),
        })
        .unwrap();
    assert_eq!(audit_id, 2);
    let receipt = target.commit_pass(&commit(&user("alice"), 30)).unwrap();
    assert_eq!(receipt.run_id, 3);
    assert_eq!(
        target
            .create_api_token("other", "x", Role::Viewer, t(9))
            .unwrap(),
        2
    );

    // A second copy would merge two states: refused, and nothing of it written.
    let err = copy_sqlite_to_postgres(&sqlite, &target).unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidInput { reason, .. } if reason.contains("already holds")),
        "{err}"
    );
    assert_eq!(target.list_audit(100, None).unwrap().len(), 2);
}
