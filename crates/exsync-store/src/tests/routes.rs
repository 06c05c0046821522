//! Where automatically routed mailboxes were last found: kept per user, replaced when located
//! again, marked for a re-check, cut to size, gone with the user.

use super::*;
use crate::{MailboxRoute, StoreError, ROUTE_TEXT_MAX};

fn route(name: &str, backend: &str, evidence: &str, at: i64) -> MailboxRoute {
    MailboxRoute {
        user: user(name),
        backend: backend.to_owned(),
        evidence: evidence.to_owned(),
        checked_at: t(at),
        recheck: None,
    }
}

fn a_route_is_kept_replaced_and_marked_for_a_recheck(db: &Db) {
    let store = db.open();
    assert_eq!(store.mailbox_route(&user("ann")).unwrap(), None);
    // Nothing to mark before the first answer.
    assert!(!store
        .recheck_mailbox_route(&user("ann"), "not found")
        .unwrap());

    let first = route(
        "ann",
        "ews",
        "https://mail.contoso.test/EWS/Exchange.asmx",
        0,
    );
    store.put_mailbox_route(&first).unwrap();
    store
        .put_mailbox_route(&route(
            "bob",
            "graph",
            "bob@contoso.mail.onmicrosoft.com",
            5,
        ))
        .unwrap();
    assert_eq!(
        store.mailbox_route(&user("ann")).unwrap(),
        Some(first.clone())
    );
    // The user is registered with their first route.
    assert!(store.user_status(&user("ann")).unwrap().is_some());

    assert!(store
        .recheck_mailbox_route(&user("ann"), "Exchange: no mailbox has the address")
        .unwrap());
    let marked = store.mailbox_route(&user("ann")).unwrap().unwrap();
    assert_eq!(
        marked.recheck.as_deref(),
        Some("Exchange: no mailbox has the address")
    );
    assert_eq!((marked.backend.as_str(), marked.checked_at), ("ews", t(0)));

    // Located again: the new answer replaces the old, mark and all.
    let moved = route("ann", "graph", "ann@contoso.mail.onmicrosoft.com", 60);
    store.put_mailbox_route(&moved).unwrap();
    assert_eq!(
        store.mailbox_route(&user("ann")).unwrap(),
        Some(moved.clone())
    );
    let all = store.mailbox_routes().unwrap();
    assert_eq!(
        all.iter().map(|r| r.user.as_str()).collect::<Vec<_>>(),
        ["ann@example.com", "bob@example.com"]
    );
    assert_eq!(all[0], moved);

    // A reset forgets what was synced, not where the mailbox is.
    store.reset_user(&user("ann")).unwrap();
    assert_eq!(store.mailbox_route(&user("ann")).unwrap(), Some(moved));
}

fn a_hostile_answer_is_kept_short_and_a_blank_route_refused(db: &Db) {
    let store = db.open();
    let huge = format!("{}@contoso.mail.onmicrosoft.com", "<x>".repeat(100_000));
    store
        .put_mailbox_route(&route("ann", "graph", &huge, 0))
        .unwrap();
    let kept = store.mailbox_route(&user("ann")).unwrap().unwrap();
    assert_eq!(kept.evidence.chars().count(), ROUTE_TEXT_MAX);
    store
        .recheck_mailbox_route(&user("ann"), &"y".repeat(50_000))
        .unwrap();
    let kept = store.mailbox_route(&user("ann")).unwrap().unwrap();
    assert_eq!(
        kept.recheck.map(|r| r.chars().count()),
        Some(ROUTE_TEXT_MAX)
    );

    for refused in [
        store
            .put_mailbox_route(&route("ann", "", "x", 0))
            .unwrap_err(),
        store.recheck_mailbox_route(&user("ann"), "").unwrap_err(),
    ] {
        assert!(
            matches!(refused, StoreError::InvalidInput { .. }),
            "{refused}"
        );
    }
}

crate::tests::both_backends!(
    a_route_is_kept_replaced_and_marked_for_a_recheck,
    a_hostile_answer_is_kept_short_and_a_blank_route_refused,
);
