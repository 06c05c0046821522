//! Reset Sync forgets one user's pairs and cursors, and nothing else.

use exsync_core::{CrmId, ItemId, ItemKind};

use super::*;
use crate::ResetCounts;

fn pass_for(who: &UserKey, at: i64, prefix: &str) -> PassCommit {
    let mut pass = commit(who, at);
    pass.upserts = vec![
        contact(&format!("{prefix}A"), &format!("{prefix}-X1"), "Lovelace"),
        contact(&format!("{prefix}B"), &format!("{prefix}-X2"), "Babbage"),
        event(&format!("{prefix}E"), &format!("{prefix}-Y1"), "Review"),
    ];
    pass.cursors = vec![
        set_cursor(
            CursorScope::folder(who, "contacts"),
            &format!("{prefix}-s1"),
        ),
        set_cursor(
            CursorScope::folder(who, "calendar"),
            &format!("{prefix}-s1"),
        ),
    ];
    pass.unresolved = vec![failing(
        ItemKind::Contact,
        ItemId::Crm(CrmId::new(format!("{prefix}Z"))),
        "FIELD_TOO_LONG",
    )];
    pass.crm_writes = vec![echo(&format!("{prefix}A"), "m1", t(at))];
    pass
}

fn reset_touches_only_that_users_pairs_and_cursors(db: &Db) {
    let store = db.open();
    let alice = user("alice");
    let bob = user("bob");
    let mut org = commit(&alice, 0);
    org.cursors = vec![set_cursor(
        CursorScope::crm_object("Contact"),
        "2026-09-21T10:00:00.000+0000",
    )];
    store.commit_pass(&org).unwrap();
    store.commit_pass(&pass_for(&alice, 10, "003a")).unwrap();
    store.commit_pass(&pass_for(&bob, 20, "003b")).unwrap();
    store.set_paused(&alice, Some("too many deletes")).unwrap();
    store.set_paused(&bob, Some("bob stays paused")).unwrap();

    let before = dump(&*store);
    let counts = store.reset_user(&alice).unwrap();
    assert_eq!(
        counts,
        ResetCounts {
            pairs: 3,
            cursors: 2,
            was_paused: true
        }
    );
    let after = dump(&*store);

    assert_eq!(
        after["users"]["bob@example.com"], before["users"]["bob@example.com"],
        "bob untouched"
    );
    assert_eq!(
        after["crm_writes"], before["crm_writes"],
        "echo log untouched"
    );
    let a_before = &before["users"]["alice@example.com"];
    let a_after = &after["users"]["alice@example.com"];
    for kept in ["unresolved", "runs", "conflicts"] {
        assert_eq!(a_after[kept], a_before[kept], "alice's {kept} kept");
    }
    assert_eq!(store.load_pairs(&alice, ItemKind::Contact).unwrap(), vec![]);
    assert_eq!(store.load_pairs(&alice, ItemKind::Event).unwrap(), vec![]);
    let status = store.user_status(&alice).unwrap().unwrap();
    assert_eq!(
        (status.paused, status.contact_pairs, status.event_pairs),
        (None, 0, 0)
    );
    assert_eq!(status.last_run, before_status_last_run(&before));

    let scopes: Vec<_> = store
        .list_cursors()
        .unwrap()
        .into_iter()
        .map(|c| c.scope)
        .collect();
    assert_eq!(
        scopes,
        vec![
            CursorScope::crm_object("Contact"),
            CursorScope::folder(&bob, "calendar"),
            CursorScope::folder(&bob, "contacts"),
        ],
        "the org-wide watermark and bob's cursors stay"
    );

    assert_eq!(
        store.reset_user(&alice).unwrap(),
        ResetCounts::default(),
        "a second reset finds nothing"
    );
    assert_eq!(
        store.reset_user(&user("nobody")).unwrap(),
        ResetCounts::default()
    );
    assert_eq!(
        store.user_status(&user("nobody")).unwrap(),
        None,
        "reset does not invent users"
    );

    // The next pass re-links from scratch.
    store.commit_pass(&pass_for(&alice, 100, "003a")).unwrap();
    assert_eq!(
        store.load_pairs(&alice, ItemKind::Contact).unwrap().len(),
        2
    );
}

fn before_status_last_run(before: &serde_json::Value) -> Option<crate::RunRecord> {
    serde_json::from_value(before["users"]["alice@example.com"]["status"]["last_run"].clone())
        .unwrap()
}

fn org_cursors_advance_alone_and_folder_cursors_are_refused(db: &Db) {
    use crate::{CursorAdvance, CursorScope};
    let store = db.open();
    let at = chrono::Utc::now();
    let org = CursorAdvance {
        scope: CursorScope::crm_object("Contact"),
        value: Some("w1".into()),
    };
    assert_eq!(
        store
            .advance_org_cursors(std::slice::from_ref(&org), at)
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .cursor(&CursorScope::crm_object("Contact"))
            .unwrap()
            .as_deref(),
        Some("w1")
    );
    let user = exsync_core::UserKey::new("a@x.test");
    let folder = CursorAdvance {
        scope: CursorScope::folder(&user, "contact"),
        value: Some("s".into()),
    };
    let err = store.advance_org_cursors(&[org, folder], at).unwrap_err();
    assert!(
        err.to_string().contains("is not an org-wide cursor"),
        "{err}"
    );
    assert_eq!(
        store
            .cursor(&CursorScope::folder(&user, "contact"))
            .unwrap(),
        None
    );
}

crate::tests::both_backends!(
    reset_touches_only_that_users_pairs_and_cursors,
    org_cursors_advance_alone_and_folder_cursors_are_refused,
);
