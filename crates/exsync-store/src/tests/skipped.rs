//! CRM users a pass leaves out: the list each pass replaces, kept for the console and
//! `exsync status`.

use super::*;
use crate::{CrmUserSkip, StoreError, SKIPPED_ADDRESS_MAX};

fn skip(id: &str, address: &str) -> CrmUserSkip {
    CrmUserSkip {
        crm_id: CrmId::new(id),
        address: address.to_owned(),
        reason: format!("{address:?} is not an e-mail address"),
    }
}

fn each_pass_replaces_the_list_and_keeps_when_a_user_was_first_left_out(db: &Db) {
    let store = db.open();
    assert!(store.skipped_crm_users().unwrap().is_empty());
    store
        .record_skipped_crm_users(
            &[
                skip("005B", "x@evil.test#.contoso.test"),
                skip("005A", "a b@contoso.test"),
            ],
            t(0),
        )
        .unwrap();
    let listed = store.skipped_crm_users().unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|s| (s.crm_id.as_str(), s.address.as_str()))
            .collect::<Vec<_>>(),
        [
            ("005A", "a b@contoso.test"),
            ("005B", "x@evil.test#.contoso.test")
        ]
    );
    assert_eq!(
        listed[0].reason,
        "\"a b@contoso.test\" is not an e-mail address"
    );

    // 005B got a valid address; 005A is still left out, since the first pass.
    store
        .record_skipped_crm_users(&[skip("005A", "a b@contoso.test")], t(60))
        .unwrap();
    let listed = store.skipped_crm_users().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].crm_id.as_str(), "005A");
    assert_eq!((listed[0].first_seen, listed[0].last_seen), (t(0), t(60)));

    store.record_skipped_crm_users(&[], t(120)).unwrap();
    assert!(store.skipped_crm_users().unwrap().is_empty());
}

fn a_hostile_address_is_kept_short(db: &Db) {
    let store = db.open();
    let huge = format!("{}@contoso.test", "<script>".repeat(100_000));
    store
        .record_skipped_crm_users(&[skip("005A", &huge)], t(0))
        .unwrap();
    let listed = store.skipped_crm_users().unwrap();
    assert_eq!(listed[0].address.chars().count(), SKIPPED_ADDRESS_MAX);
}

fn a_skipped_user_without_an_id_is_refused(db: &Db) {
    let store = db.open();
    let refused = store
        .record_skipped_crm_users(&[skip("", "a b@contoso.test")], t(0))
        .unwrap_err();
    assert!(
        matches!(refused, StoreError::InvalidInput { .. }),
        "{refused}"
    );
}

/// Users a configuration assigns whom no CRM user pairs with: each pass replaces the list,
/// and keeps when each was first found (`store copy` carries it: `tests/copy.rs`).
fn each_pass_replaces_the_unmatched_users(db: &Db) {
    let store = db.open();
    assert!(store.unmatched_users().unwrap().is_empty());
    let why = |u: &str| {
        (
            user(u),
            format!("no active CRM user has {u} in their Email field"),
        )
    };
    store
        .record_unmatched_users(&[why("gone"), why("left")], t(0))
        .unwrap();
    store.record_unmatched_users(&[why("gone")], t(60)).unwrap();
    let listed = store.unmatched_users().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].user, user("gone"));
    assert_eq!(listed[0].reason, why("gone").1);
    assert_eq!((listed[0].first_seen, listed[0].last_seen), (t(0), t(60)));
    let refused = store
        .record_unmatched_users(&[(UserKey(String::new()), "x".into())], t(90))
        .unwrap_err();
    assert!(
        matches!(refused, StoreError::InvalidInput { .. }),
        "{refused}"
    );

    store.record_unmatched_users(&[], t(120)).unwrap();
    assert!(store.unmatched_users().unwrap().is_empty());
}

crate::tests::both_backends!(
    each_pass_replaces_the_unmatched_users,
    each_pass_replaces_the_list_and_keeps_when_a_user_was_first_left_out,
    a_hostile_address_is_kept_short,
    a_skipped_user_without_an_id_is_refused,
);
