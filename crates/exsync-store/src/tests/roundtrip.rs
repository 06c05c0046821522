//! Every API, written and read back, across a reopen of the file.

use std::sync::Arc;

use exsync_core::plan::Conflict;
use exsync_core::{CrmId, ExchangeId, ItemId, ItemKind, Side};
use serde_json::json;

use super::*;
use crate::{
    AuditEvent, ConflictEntry, Notice, Role, RunCounts, Secret, Session, StoreError, MAX_NOTICES,
};

#[test]
fn the_traits_are_object_safe_and_shareable() {
    fn shareable<T: Send + Sync + 'static>(_: &T) {}
    let (_dir, store) = temp_store();
    let store = Arc::new(store);
    let sync_state: Arc<dyn SyncState> = store.clone();
    let accounts: Arc<dyn Accounts> = store.clone();
    let secrets: Arc<dyn Secrets> = store.clone();
    shareable(&sync_state);
    shareable(&accounts);
    shareable(&secrets);
    let store: Arc<dyn Store> = store;
    shareable(&store);
    let alice = user("alice");
    let handle = {
        let store = Arc::clone(&store);
        let alice = alice.clone();
        std::thread::spawn(move || store.ensure_user(&alice))
    };
    handle.join().unwrap().unwrap();
    assert!(store.user_status(&alice).unwrap().is_some());
}

fn a_committed_pass_reads_back_after_reopening(db: &Db) {
    let alice = user("alice");
    let folder = CursorScope::folder(&alice, "contacts");
    let crm = CursorScope::crm_object("Contact");
    let ada = contact("003A", "AAMk-1", "Lovelace");
    let meeting = event("00UA", "AAMk-E1", "Kick-off");
    {
        let store = db.open();
        let mut pass = commit(&alice, 0);
        pass.upserts = vec![ada.clone(), meeting.clone()];
        pass.cursors = vec![
            set_cursor(folder.clone(), "H4sI-1"),
            set_cursor(crm.clone(), "2026-09-21T10:00:00.000+0000"),
        ];
        pass.counts = RunCounts {
            created: 2,
            ..RunCounts::default()
        };
        let receipt = store.commit_pass(&pass).unwrap();
        assert_eq!(
            (
                receipt.pairs_written,
                receipt.pairs_removed,
                receipt.cursors_changed
            ),
            (2, 0, 2)
        );
    }
    let store = db.open();
    assert_eq!(
        store.load_pairs(&alice, ItemKind::Contact).unwrap(),
        vec![ada.clone()]
    );
    assert_eq!(
        store.load_pairs(&alice, ItemKind::Event).unwrap(),
        vec![meeting.clone()]
    );
    assert_eq!(
        store.load_pairs(&user("bob"), ItemKind::Contact).unwrap(),
        vec![]
    );
    assert_eq!(
        store
            .find_pair(&alice, ItemKind::Contact, &ada.id_on(Side::Crm))
            .unwrap(),
        Some(ada.clone())
    );
    assert_eq!(
        store
            .find_pair(&alice, ItemKind::Contact, &ada.id_on(Side::Exchange))
            .unwrap(),
        Some(ada.clone())
    );
    assert_eq!(
        store
            .find_pair(&alice, ItemKind::Event, &ada.id_on(Side::Crm))
            .unwrap(),
        None
    );
    assert_eq!(store.cursor(&folder).unwrap().as_deref(), Some("H4sI-1"));
    assert_eq!(
        store.cursor(&crm).unwrap().as_deref(),
        Some("2026-09-21T10:00:00.000+0000")
    );
    assert_eq!(
        store
            .cursor(&CursorScope::folder(&user("bob"), "contacts"))
            .unwrap(),
        None
    );
    let cursors = store.list_cursors().unwrap();
    assert_eq!(cursors.len(), 2);
    assert_eq!(cursors[0].scope, crm, "org-wide cursors come first");
    assert_eq!(cursors[1].updated_at, t(5));

    let status = store.user_status(&alice).unwrap().unwrap();
    assert_eq!(
        (status.contact_pairs, status.event_pairs, status.unresolved),
        (1, 1, 0)
    );
    assert_eq!(status.paused, None);
    let last = status.last_run.unwrap();
    assert_eq!(
        (last.started, last.finished, last.counts.created),
        (t(0), t(5), 2)
    );
    assert_eq!(store.user_status(&user("nobody")).unwrap(), None);

    // Moving and then forgetting a cursor.
    let mut pass = commit(&alice, 10);
    pass.cursors = vec![set_cursor(folder.clone(), "H4sI-2")];
    store.commit_pass(&pass).unwrap();
    assert_eq!(store.cursor(&folder).unwrap().as_deref(), Some("H4sI-2"));
    let mut pass = commit(&alice, 20);
    pass.cursors = vec![CursorAdvance {
        scope: folder.clone(),
        value: None,
    }];
    assert_eq!(store.commit_pass(&pass).unwrap().cursors_changed, 1);
    assert_eq!(store.cursor(&folder).unwrap(), None);
}

fn upserts_replace_and_removals_forget(db: &Db) {
    let store = db.open();
    let alice = user("alice");
    let mut pass = commit(&alice, 0);
    pass.upserts = vec![
        contact("003A", "X1", "Lovelace"),
        contact("003B", "X2", "Babbage"),
    ];
    store.commit_pass(&pass).unwrap();

    // Same CRM id, new content and versions: the row is replaced.
    let mut changed = contact("003A", "X1", "King");
    changed.crm_version = Some("v2".into());
    // Same CRM id, new Exchange id (item recreated in the mailbox): the row follows.
    let moved = contact("003B", "X9", "Babbage");
    let mut pass = commit(&alice, 10);
    pass.upserts = vec![changed.clone(), moved.clone()];
    store.commit_pass(&pass).unwrap();
    assert_eq!(
        store.load_pairs(&alice, ItemKind::Contact).unwrap(),
        vec![changed.clone(), moved.clone()]
    );
    assert_eq!(
        store
            .find_pair(
                &alice,
                ItemKind::Contact,
                &ItemId::Exchange(ExchangeId::new("X2"))
            )
            .unwrap(),
        None
    );

    let mut pass = commit(&alice, 20);
    pass.removals = vec![key(&moved), key(&contact("003Z", "XZ", "gone already"))];
    let receipt = store.commit_pass(&pass).unwrap();
    assert_eq!(
        receipt.pairs_removed, 1,
        "removing a pair that is not there is a no-op"
    );
    // A removal names both ids; a stale one does not remove the re-linked pair.
    let mut pass = commit(&alice, 30);
    pass.removals = vec![PairKey {
        kind: ItemKind::Contact,
        crm_id: CrmId::new("003A"),
        exchange_id: ExchangeId::new("X-old"),
    }];
    assert_eq!(store.commit_pass(&pass).unwrap().pairs_removed, 0);
    assert_eq!(
        store.load_pairs(&alice, ItemKind::Contact).unwrap(),
        vec![changed]
    );
}

fn unresolved_items_are_tracked_and_cleared_when_they_sync(db: &Db) {
    let store = db.open();
    let alice = user("alice");
    let too_long = ItemId::Crm(CrmId::new("003L"));
    let bad_address = ItemId::Exchange(ExchangeId::new("X-bad"));
    let gone = ItemId::Exchange(ExchangeId::new("X-gone"));

    let mut pass = commit(&alice, 0);
    pass.unresolved = vec![
        failing(ItemKind::Contact, too_long.clone(), "FIELD_TOO_LONG: Title"),
        failing(
            ItemKind::Contact,
            bad_address.clone(),
            "invalid e-mail address",
        ),
        failing(ItemKind::Event, gone.clone(), "ErrorItemNotFound"),
    ];
    pass.counts.failures = 3;
    store.commit_pass(&pass).unwrap();

    let mut pass = commit(&alice, 100);
    pass.unresolved = vec![failing(
        ItemKind::Contact,
        too_long.clone(),
        "FIELD_TOO_LONG: Title (130 > 128)",
    )];
    store.commit_pass(&pass).unwrap();
    let items = store.unresolved(&alice).unwrap();
    assert_eq!(items.len(), 3);
    let first = items.iter().find(|i| i.id == too_long).unwrap();
    assert_eq!(
        (first.first_seen, first.last_seen, first.occurrences),
        (t(5), t(105), 2)
    );
    assert_eq!(first.reason, "FIELD_TOO_LONG: Title (130 > 128)");
    assert_eq!(store.user_status(&alice).unwrap().unwrap().unresolved, 3);

    // The CRM record syncs (upsert), the Exchange item's pair goes (removal), and the event
    // is declared resolved: all three are cleared.
    let mut pass = commit(&alice, 200);
    pass.upserts = vec![contact("003L", "X-new", "Long")];
    pass.removals = vec![PairKey {
        kind: ItemKind::Contact,
        crm_id: CrmId::new("003Q"),
        exchange_id: ExchangeId::new("X-bad"),
    }];
    pass.resolved = vec![resolved(ItemKind::Event, gone.clone())];
    store.commit_pass(&pass).unwrap();
    assert_eq!(store.unresolved(&alice).unwrap(), vec![]);

    // Clearing is per kind and side: a CRM id equal to an Exchange id stays.
    let mut pass = commit(&alice, 300);
    pass.unresolved = vec![failing(
        ItemKind::Contact,
        ItemId::Exchange(ExchangeId::new("003L")),
        "odd",
    )];
    pass.upserts = vec![contact("003L", "X-new", "Long")];
    store.commit_pass(&pass).unwrap();
    assert_eq!(store.unresolved(&alice).unwrap().len(), 1);
}

fn pauses_runs_and_conflicts_read_back(db: &Db) {
    let store = db.open();
    let alice = user("alice");
    let bob = user("bob");
    store.set_paused(&alice, Some("too many deletes")).unwrap();
    let paused = store.user_status(&alice).unwrap().unwrap().paused.unwrap();
    assert_eq!(paused.reason, "too many deletes");
    store.set_paused(&alice, Some("still too many")).unwrap();
    let again = store.user_status(&alice).unwrap().unwrap().paused.unwrap();
    assert_eq!(
        (again.reason.as_str(), again.since),
        ("still too many", paused.since),
        "the first pause time stays"
    );
    assert!(matches!(
        store.set_paused(&alice, Some("  ")),
        Err(StoreError::InvalidInput { .. })
    ));
    store.set_paused(&alice, None).unwrap();
    assert_eq!(store.user_status(&alice).unwrap().unwrap().paused, None);

    for i in 0..5 {
        let mut pass = commit(&alice, i * 100);
        pass.counts = RunCounts {
            created: i as u64,
            updated: 1,
            deleted: 2,
            conflicts: 0,
            failures: 0,
        };
        if i == 3 {
            pass.error = Some("ErrorServerBusy: back off 30000 ms".into());
        }
        if i == 4 {
            pass.conflicts = vec![ConflictEntry {
                kind: ItemKind::Contact,
                crm_id: CrmId::new("003A"),
                exchange_id: ExchangeId::new("X1"),
                conflict: Conflict {
                    field: "title".into(),
                    crm_value: Some(json!("CEO")),
                    exchange_value: None,
                    winner: Side::Crm,
                    first_link: true,
                },
                name: None,
            }];
            pass.counts.conflicts = 1;
            pass.pause = Some("would delete 80% of contacts".into());
        }
        store.commit_pass(&pass).unwrap();
    }
    store.ensure_user(&bob).unwrap();
    store.ensure_user(&bob).unwrap();

    let runs = store.runs(&alice, 3).unwrap();
    assert_eq!(
        runs.iter().map(|r| r.counts.created).collect::<Vec<_>>(),
        vec![4, 3, 2],
        "newest first"
    );
    assert_eq!(
        runs[1].error.as_deref(),
        Some("ErrorServerBusy: back off 30000 ms")
    );
    assert_eq!(store.runs(&alice, 100).unwrap().len(), 5);
    assert_eq!(store.runs(&bob, 100).unwrap(), vec![]);

    let conflicts = store.conflicts(&alice, 10).unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].run_id, runs[0].id);
    assert_eq!(conflicts[0].conflict.crm_value, Some(json!("CEO")));
    assert_eq!(conflicts[0].conflict.winner, Side::Crm);
    assert!(
        conflicts[0].conflict.first_link,
        "a first link's merge is kept as such"
    );
    assert_eq!(conflicts[0].at, t(405));

    let users = store.list_users().unwrap();
    assert_eq!(
        users.iter().map(|u| u.user.as_str()).collect::<Vec<_>>(),
        vec!["alice@example.com", "bob@example.com"]
    );
    assert_eq!(users[0].last_run.as_ref().map(|r| r.id), Some(runs[0].id));
    assert_eq!(
        users[0]
            .paused
            .as_ref()
            .map(|p| (p.reason.as_str(), p.since)),
        Some(("would delete 80% of contacts", t(405)))
    );
    assert_eq!(users[1].last_run, None);
}

fn the_echo_log_recognises_our_own_writes(db: &Db) {
    let store = db.open();
    let alice = user("alice");
    let mut pass = commit(&alice, 0);
    pass.crm_writes = vec![echo("003A", "2026-09-21T10:00:00.000+0000", t(1))];
    store.commit_pass(&pass).unwrap();
    let mut later = echo("003B", "2026-09-21T11:00:00.000+0000", t(3600));
    later.user = Some(user("bob"));
    store.record_crm_writes(&[later.clone()]).unwrap();

    assert!(store
        .is_own_crm_write(&CrmId::new("003A"), "2026-09-21T10:00:00.000+0000")
        .unwrap());
    assert!(!store
        .is_own_crm_write(&CrmId::new("003A"), "2026-09-21T10:00:01.000+0000")
        .unwrap());
    assert!(!store
        .is_own_crm_write(&CrmId::new("003C"), "2026-09-21T10:00:00.000+0000")
        .unwrap());

    let all = store.crm_writes_since(t(0)).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        all[0].user.as_ref(),
        Some(&alice),
        "a pass's writes belong to its user"
    );
    assert_eq!(all[1], later);
    assert_eq!(store.crm_writes_since(t(2)).unwrap(), vec![later.clone()]);

    assert_eq!(store.prune_crm_writes(t(60)).unwrap(), 1);
    assert_eq!(store.crm_writes_since(t(0)).unwrap(), vec![later]);
    assert!(matches!(
        store.record_crm_writes(&[echo("", "x", t(0))]),
        Err(StoreError::InvalidInput { .. })
    ));

    let mut other = commit(&alice, 10);
    let mut foreign = echo("003Z", "m", t(10));
    foreign.user = Some(user("bob"));
    other.crm_writes = vec![foreign];
    assert!(matches!(
        store.commit_pass(&other),
        Err(StoreError::InvalidCommit { .. })
    ));

    // One record's write logged twice with one stamp (a write retried within the pass), among
    // others: one entry, the last one's.
    let mut twice = commit(&alice, 20);
    twice.crm_writes = vec![
        echo("003T", "2026-09-21T12:00:00.000+0000", t(100)),
        echo("003U", "2026-09-21T12:00:00.000+0000", t(100)),
        echo("003T", "2026-09-21T12:00:00.000+0000", t(101)),
    ];
    store.commit_pass(&twice).unwrap();
    let logged: Vec<(String, DateTime<Utc>)> = store
        .crm_writes_since(t(100))
        .unwrap()
        .into_iter()
        .filter(|w| ["003T", "003U"].contains(&w.crm_id.as_str()))
        .map(|w| (w.crm_id.as_str().to_owned(), w.written_at))
        .collect();
    assert_eq!(
        logged,
        [("003U".to_owned(), t(100)), ("003T".to_owned(), t(101))]
    );
}

fn secrets_store_only_bytes_and_replace_atomically(db: &Db) {
    let store = db.open();
    let password = Secret {
        name: "ews.password".into(),
        nonce: vec![1; 12],
        ciphertext: vec![0xAB; 40],
        updated_at: t(0),
    };
    let key = Secret {
        name: "crm.private_key".into(),
        nonce: vec![2; 12],
        ciphertext: vec![0xCD; 900],
        updated_at: t(0),
    };
    store.put_secret(&password).unwrap();
    store.put_secret(&key).unwrap();
    assert_eq!(
        store.get_secret("ews.password").unwrap(),
        Some(password.clone())
    );
    assert_eq!(store.get_secret("missing").unwrap(), None);
    let names: Vec<_> = store
        .list_secrets()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, vec!["crm.private_key", "ews.password"]);

    let debug = format!("{password:?}");
    assert!(
        debug.contains("ciphertext_len: 40") && !debug.contains("171"),
        "{debug}"
    );

    // Rotation: both or neither.
    let rotated = Secret {
        nonce: vec![9; 12],
        ciphertext: vec![0xEE; 40],
        updated_at: t(60),
        ..password.clone()
    };
    let broken = Secret {
        nonce: vec![],
        ..key.clone()
    };
    assert!(matches!(
        store.put_secrets(&[rotated.clone(), broken]),
        Err(StoreError::InvalidInput { .. })
    ));
    assert_eq!(
        store.get_secret("ews.password").unwrap(),
        Some(password.clone())
    );
    let rotated_key = Secret {
        nonce: vec![8; 12],
        updated_at: t(60),
        ..key.clone()
    };
    store
        .put_secrets(&[rotated.clone(), rotated_key.clone()])
        .unwrap();
    drop(store);
    let store = db.open();
    assert_eq!(store.get_secret("ews.password").unwrap(), Some(rotated));
    assert_eq!(
        store.get_secret("crm.private_key").unwrap(),
        Some(rotated_key)
    );

    assert!(store.delete_secret("ews.password").unwrap());
    assert!(!store.delete_secret("ews.password").unwrap());
    assert_eq!(store.list_secrets().unwrap().len(), 1);
}

fn admin_accounts_and_api_tokens(db: &Db) {
    let store = db.open();
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
    store
        .create_admin_user("root", hash, Role::Admin, t(0))
        .unwrap();
    store
        .create_admin_user("ops", hash, Role::Operator, t(1))
        .unwrap();
    let err = store
        .create_admin_user("root", hash, Role::Viewer, t(2))
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }));
    assert!(err.to_string().contains("\"root\" already exists"), "{err}");
    assert!(matches!(
        store.create_admin_user("", hash, Role::Viewer, t(2)),
        Err(StoreError::InvalidInput { .. })
    ));

    let root = store.admin_user("root").unwrap().unwrap();
    assert_eq!(
        (root.role, root.password_hash.as_str(), root.created_at),
        (Role::Admin, hash, t(0))
    );
    assert!(
        !format!("{root:?}").contains("argon2id"),
        "Debug must not show the hash"
    );
    assert!(store
        .set_admin_password("root", "$argon2id$new", t(10))
        .unwrap());
    assert!(store.set_admin_role("ops", Role::Viewer, t(11)).unwrap());
    assert!(!store.set_admin_role("ghost", Role::Viewer, t(11)).unwrap());
    let all = store.list_admin_users().unwrap();
    assert_eq!(
        all.iter()
            .map(|a| (a.name.as_str(), a.role))
            .collect::<Vec<_>>(),
        vec![("ops", Role::Viewer), ("root", Role::Admin)]
    );
    assert_eq!(
        store.admin_user("root").unwrap().unwrap().password_hash,
        "$argon2id$new"
    );
    assert_eq!(store.admin_user("root").unwrap().unwrap().updated_at, t(10));

    let id = store
        .create_api_token("sha256:aaaa", "ci", Role::Operator, t(20))
        .unwrap();
    assert!(matches!(
        store.create_api_token("sha256:aaaa", "dup", Role::Viewer, t(20)),
        Err(StoreError::AlreadyExists { .. })
    ));
    let token = store.api_token_by_hash("sha256:aaaa").unwrap().unwrap();
    assert_eq!(
        (
            token.id,
            token.name.as_str(),
            token.role,
            token.last_used_at
        ),
        (id, "ci", Role::Operator, None)
    );
    assert!(!format!("{token:?}").contains("aaaa"));
    assert!(store.touch_api_token(id, t(30)).unwrap());
    assert_eq!(
        store.list_api_tokens().unwrap()[0].last_used_at,
        Some(t(30))
    );
    assert_eq!(store.api_token_by_hash("sha256:bbbb").unwrap(), None);
    assert!(store.delete_api_token(id).unwrap());
    assert!(!store.delete_api_token(id).unwrap());
    assert_eq!(store.list_api_tokens().unwrap(), vec![]);

    assert!(store.delete_admin_user("ops").unwrap());
    assert!(!store.delete_admin_user("ops").unwrap());
    assert_eq!(store.admin_user("ops").unwrap(), None);
}

fn sessions_expire_and_go_with_their_account(db: &Db) {
    let store = db.open();
    store
        .create_admin_user("root", "$argon2id$x", Role::Admin, t(0))
        .unwrap();
    let session = |id: &str, expires: i64| Session {
        id: id.into(),
        admin_user: "root".into(),
        csrf_token: format!("csrf-{id}"),
        created_at: t(0),
        expires_at: t(expires),
    };
    store.create_session(&session("s1", 3600)).unwrap();
    store.create_session(&session("s2", 60)).unwrap();
    store.create_session(&session("s3", 7200)).unwrap();
    assert!(matches!(
        store.create_session(&session("s1", 3600)),
        Err(StoreError::AlreadyExists { .. })
    ));
    let orphan = Session {
        admin_user: "ghost".into(),
        ..session("s4", 60)
    };
    assert!(matches!(
        store.create_session(&orphan),
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(matches!(
        store.create_session(&session("s5", 0)),
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(!format!("{:?}", session("secret-id", 1)).contains("secret-id"));

    assert_eq!(
        store.session("s1", t(10)).unwrap(),
        Some(session("s1", 3600))
    );
    assert_eq!(
        store.session("s2", t(60)).unwrap(),
        None,
        "expired at its expiry time"
    );
    assert_eq!(store.session("nope", t(10)).unwrap(), None);
    assert_eq!(store.delete_expired_sessions(t(100)).unwrap(), 1);
    assert!(store.delete_session("s1").unwrap());
    assert!(!store.delete_session("s1").unwrap());
    store.create_session(&session("s6", 7200)).unwrap();
    assert_eq!(store.delete_sessions_of("root").unwrap(), 2);
    store.create_session(&session("s7", 7200)).unwrap();
    store.delete_admin_user("root").unwrap();
    assert_eq!(
        store.session("s7", t(10)).unwrap(),
        None,
        "sessions go with the account"
    );
}

fn the_audit_log_pages_newest_first(db: &Db) {
    let store = db.open();
    for i in 0..5 {
        let id = store
            .append_audit(&AuditEvent {
                at: t(i),
                actor: "root".into(),
                action: if i == 2 {
                    "reset_sync".into()
                } else {
                    "save_config".into()
                },
                detail: json!({ "n": i, "user": "alice@example.com" }),
            })
            .unwrap();
        assert_eq!(id, i + 1);
    }
    let page = store.list_audit(2, None).unwrap();
    assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), vec![5, 4]);
    let next = store.list_audit(2, Some(4)).unwrap();
    assert_eq!(next.iter().map(|r| r.id).collect::<Vec<_>>(), vec![3, 2]);
    assert_eq!(
        (next[0].action.as_str(), next[0].at, &next[0].detail),
        (
            "reset_sync",
            t(2),
            &json!({"n": 2, "user": "alice@example.com"})
        )
    );
    assert_eq!(store.list_audit(10, Some(1)).unwrap(), vec![]);
    let bad = AuditEvent {
        at: t(0),
        actor: " ".into(),
        action: "x".into(),
        detail: json!({}),
    };
    assert!(matches!(
        store.append_audit(&bad),
        Err(StoreError::InvalidInput { .. })
    ));
}

fn malformed_commits_are_refused_and_write_nothing(db: &Db) {
    let store = db.open();
    let alice = user("alice");
    let mut base = commit(&alice, 0);
    base.upserts = vec![contact("003A", "X1", "Lovelace")];
    base.cursors = vec![set_cursor(CursorScope::folder(&alice, "contacts"), "s1")];

    let mut other_users_cursor = base.clone();
    other_users_cursor.cursors.push(set_cursor(
        CursorScope::folder(&user("bob"), "contacts"),
        "s1",
    ));
    let mut backwards = base.clone();
    backwards.finished = t(-10);
    let mut twice = base.clone();
    twice
        .cursors
        .push(set_cursor(CursorScope::folder(&alice, "contacts"), "s2"));
    let mut empty_id = base.clone();
    empty_id.upserts.push(contact("", "X2", "Nobody"));
    let mut empty_pause = base.clone();
    empty_pause.pause = Some(String::new());
    let mut huge = base.clone();
    huge.counts.created = u64::MAX;

    for (name, bad) in [
        ("other user's cursor", other_users_cursor),
        ("finished before started", backwards),
        ("cursor twice", twice),
        ("empty id", empty_id),
        ("empty pause reason", empty_pause),
        ("count too large", huge),
    ] {
        let err = store.commit_pass(&bad).unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidCommit { .. }),
            "{name}: {err}"
        );
        assert!(
            err.to_string().contains("alice@example.com")
                && err.to_string().contains("nothing written"),
            "{name}: {err}"
        );
        assert_eq!(
            store.list_users().unwrap(),
            vec![],
            "{name}: nothing written"
        );
        assert_eq!(
            store.list_cursors().unwrap(),
            vec![],
            "{name}: nothing written"
        );
    }
    store.commit_pass(&base).unwrap();
}

fn damaged_pair_content_is_reported_not_used(db: &Db) {
    let store = db.open();
    let alice = user("alice");
    let mut pass = commit(&alice, 0);
    pass.upserts = vec![contact("003A", "X1", "Lovelace")];
    store.commit_pass(&pass).unwrap();
    db.execute("UPDATE pairs SET content = '{\"last_name\":\"Tampered\"}'")
        .unwrap();
    let err = store.load_pairs(&alice, ItemKind::Contact).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("load pairs for alice@example.com: stored data is damaged"),
        "{text}"
    );
    assert!(text.contains("003A/X1"), "{text}");
    assert!(matches!(
        store.find_pair(&alice, ItemKind::Contact, &ItemId::Crm(CrmId::new("003A"))),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn the_database_runs_in_wal_mode_with_foreign_keys() {
    let (_dir, store) = temp_store();
    let (mode, fk): (String, i64) = store.with_conn(|c| {
        let mode = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let fk = c
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        (mode, fk)
    });
    assert_eq!((mode.as_str(), fk), ("wal", 1));
    // A run for a user that does not exist violates the foreign key.
    let err = store.with_conn(|c| {
        c.execute(
            "INSERT INTO runs (user_key, started_at, finished_at) VALUES ('ghost', 'a', 'b')",
            [],
        )
    });
    assert!(err.is_err());
    let in_memory = SqliteStore::open_in_memory().unwrap();
    assert_eq!(in_memory.schema_version().unwrap(), crate::SCHEMA_VERSION);
    in_memory.ensure_user(&user("alice")).unwrap();
    assert_eq!(in_memory.list_users().unwrap().len(), 1);
}

#[test]
fn the_users_of_a_crm_record_are_found_through_an_index() {
    let (_dir, store) = temp_store();
    let plan: Vec<String> = store.with_conn(|c| {
        let mut statement = c
            .prepare(&format!(
                "EXPLAIN QUERY PLAN {}",
                crate::sqlite::state::PAIR_USERS
            ))
            .unwrap();
        let rows = statement
            .query_map(["contact", "003A"], |r| r.get::<_, String>(3))
            .unwrap();
        rows.map(Result::unwrap).collect()
    });
    assert!(
        plan.iter().any(|step| step.contains("pairs_by_crm_id")),
        "{plan:?}"
    );
    assert!(
        !plan.iter().any(|step| step.starts_with("SCAN")),
        "{plan:?}"
    );
}

fn console_settings_round_trip_and_replace(db: &Db) {
    let store = db.open();
    assert_eq!(store.setting("sync.enabled").unwrap(), None);
    let at = chrono::Utc::now();
    store
        .put_setting("sync.enabled", &serde_json::json!(false), at)
        .unwrap();
    store
        .put_setting("sync.enabled", &serde_json::json!(true), at)
        .unwrap();
    assert_eq!(
        store.setting("sync.enabled").unwrap(),
        Some(serde_json::json!(true))
    );
}

fn a_partial_commit_writes_pairs_and_echoes_but_records_no_run(db: &Db) {
    let store = db.open();
    let alice = user("alice");
    let mut slice = commit(&alice, 0);
    slice.partial = true;
    slice.upserts = vec![
        contact("003A", "X1", "Lovelace"),
        contact("003B", "X2", "Babbage"),
        contact("003C", "X3", "Hopper"),
    ];
    slice.crm_writes = vec![echo("003A", "m1", t(0))];
    let receipt = store.commit_pass(&slice).unwrap();
    assert_eq!((receipt.run_id, receipt.pairs_written), (0, 3));
    assert!(store.runs(&alice, 10).unwrap().is_empty());
    assert!(store.is_own_crm_write(&CrmId::new("003A"), "m1").unwrap());

    // The paged reads a sliced pass uses.
    assert_eq!(store.pair_count(&alice, ItemKind::Contact).unwrap(), 3);
    let first = store
        .pairs_page(&alice, ItemKind::Contact, None, 2)
        .unwrap();
    assert_eq!(
        first,
        vec![slice.upserts[0].clone(), slice.upserts[1].clone()]
    );
    let rest = store
        .pairs_page(&alice, ItemKind::Contact, Some(&first[1].crm_id), 2)
        .unwrap();
    assert_eq!(rest, vec![slice.upserts[2].clone()]);
    let ids = |after: Option<&str>, limit| {
        store
            .pair_ids_page(
                &alice,
                ItemKind::Contact,
                after.map(CrmId::new).as_ref(),
                limit,
            )
            .unwrap()
    };
    let id = |crm: &str, exchange: &str| (CrmId::new(crm), ExchangeId::new(exchange));
    assert_eq!(ids(None, 2), [id("003A", "X1"), id("003B", "X2")]);
    assert_eq!(ids(Some("003B"), 2), [id("003C", "X3")]);
    assert_eq!(ids(Some("003C"), 2), []);
    assert!(store
        .pair_ids_page(&alice, ItemKind::Event, None, 2)
        .unwrap()
        .is_empty());
    let held = store
        .pairs_of(
            &alice,
            ItemKind::Contact,
            &[
                ItemId::Exchange(ExchangeId::new("X3")),
                ItemId::Crm(CrmId::new("003A")),
                ItemId::Crm(CrmId::new("003A")),
                ItemId::Crm(CrmId::new("003Z")),
            ],
        )
        .unwrap();
    assert_eq!(
        held,
        vec![slice.upserts[0].clone(), slice.upserts[2].clone()]
    );

    // What needs a run cannot ride on a partial commit.
    let mut bad = commit(&alice, 5);
    bad.partial = true;
    bad.error = Some("boom".into());
    assert!(matches!(
        store.commit_pass(&bad),
        Err(StoreError::InvalidCommit { .. })
    ));

    // The pass's last commit records the run.
    let last = commit(&alice, 10);
    assert!(store.commit_pass(&last).unwrap().run_id > 0);
    assert_eq!(store.runs(&alice, 10).unwrap().len(), 1);
}

fn a_runs_notices_are_stored_with_it_and_capped(db: &Db) {
    let store = db.open();
    let alice = user("alice");
    let notice = |i: usize| Notice {
        code: "sync_folder_replaced".to_owned(),
        message: format!("folder {i} was deleted"),
        fix: "nothing to do".to_owned(),
    };
    let mut pass = commit(&alice, 0);
    pass.notices = (0..MAX_NOTICES + 5).map(notice).collect();
    store.commit_pass(&pass).unwrap();
    let run = store
        .user_status(&alice)
        .unwrap()
        .unwrap()
        .last_run
        .unwrap();
    assert_eq!(
        run.notices,
        (0..MAX_NOTICES).map(notice).collect::<Vec<_>>()
    );

    // A run without notices has none: they belong to the run, not the user.
    store.commit_pass(&commit(&alice, 10)).unwrap();
    let status = store.user_status(&alice).unwrap().unwrap();
    assert!(status.last_run.unwrap().notices.is_empty());
    assert_eq!(store.runs(&alice, 5).unwrap()[1].notices.len(), MAX_NOTICES);
}

crate::tests::both_backends!(
    a_committed_pass_reads_back_after_reopening,
    upserts_replace_and_removals_forget,
    unresolved_items_are_tracked_and_cleared_when_they_sync,
    pauses_runs_and_conflicts_read_back,
    the_echo_log_recognises_our_own_writes,
    secrets_store_only_bytes_and_replace_atomically,
    admin_accounts_and_api_tokens,
    sessions_expire_and_go_with_their_account,
    the_audit_log_pages_newest_first,
    malformed_commits_are_refused_and_write_nothing,
    damaged_pair_content_is_reported_not_used,
    console_settings_round_trip_and_replace,
    a_partial_commit_writes_pairs_and_echoes_but_records_no_run,
    a_runs_notices_are_stored_with_it_and_capped,
);
