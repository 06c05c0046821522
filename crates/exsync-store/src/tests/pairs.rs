//! One record, one pair: the rule that keeps the merge base unambiguous.

use exsync_core::{CrmId, ExchangeId, ItemId, ItemKind};

use super::*;
use crate::{PairLink, StoreError};

fn seeded(db: &Db) -> (Box<dyn Store>, UserKey) {
    let store = db.open();
    let alice = user("alice");
    let mut pass = commit(&alice, 0);
    pass.upserts = vec![
        contact("003A", "X1", "Lovelace"),
        contact("003B", "X2", "Babbage"),
    ];
    pass.cursors = vec![set_cursor(CursorScope::folder(&alice, "contacts"), "s1")];
    store.commit_pass(&pass).unwrap();
    (store, alice)
}

fn one_crm_record_in_two_pairs_of_one_commit_is_refused(db: &Db) {
    let (store, alice) = seeded(db);
    let before = dump(&*store);
    let mut pass = commit(&alice, 10);
    pass.upserts = vec![contact("003C", "X3", "Cray"), contact("003C", "X4", "Cray")];
    pass.cursors = vec![set_cursor(CursorScope::folder(&alice, "contacts"), "s2")];
    let err = store.commit_pass(&pass).unwrap_err();
    match &err {
        StoreError::PairConflict {
            user, kind, record, ..
        } => {
            assert_eq!(
                (user, *kind, record),
                (&alice, ItemKind::Contact, &ItemId::Crm(CrmId::new("003C")))
            );
        }
        other => panic!("expected a pair conflict, got {other:?}"),
    }
    assert!(err.to_string().contains("X3 and X4"), "{err}");
    assert_eq!(dump(&*store), before, "nothing written");
}

fn one_exchange_item_in_two_pairs_of_one_commit_is_refused(db: &Db) {
    let (store, alice) = seeded(db);
    let before = dump(&*store);
    let mut pass = commit(&alice, 10);
    pass.upserts = vec![
        contact("003C", "X3", "Cray"),
        contact("003D", "X3", "Dijkstra"),
    ];
    let err = store.commit_pass(&pass).unwrap_err();
    assert!(
        matches!(&err, StoreError::PairConflict { record: ItemId::Exchange(id), .. } if id.as_str() == "X3"),
        "{err:?}"
    );
    assert_eq!(dump(&*store), before, "nothing written");
}

fn joining_two_stored_pairs_is_refused_and_rolls_back_the_whole_pass(db: &Db) {
    let (store, alice) = seeded(db);
    let before = dump(&*store);
    // 003A is paired with X1 and X2 with 003B: pairing 003A with X2 would leave one of them
    // in two pairs. Everything else in the commit (a valid new pair applied before it, a
    // cursor, a run) must not be written either.
    let mut pass = commit(&alice, 10);
    pass.upserts = vec![
        contact("003C", "X3", "Cray"),
        contact("003A", "X2", "Lovelace"),
    ];
    pass.cursors = vec![set_cursor(CursorScope::folder(&alice, "contacts"), "s2")];
    pass.unresolved = vec![failing(
        ItemKind::Contact,
        ItemId::Crm(CrmId::new("003Q")),
        "why",
    )];
    let err = store.commit_pass(&pass).unwrap_err();
    assert!(matches!(err, StoreError::PairConflict { .. }), "{err:?}");
    assert!(
        err.to_string().contains("003A/X1") && err.to_string().contains("003B/X2"),
        "{err}"
    );
    assert_eq!(dump(&*store), before, "nothing written");
    assert_eq!(store.runs(&alice, 10).unwrap().len(), 1);

    // Saying which pair goes makes the same re-link legal.
    pass.removals = vec![key(&contact("003B", "X2", ""))];
    store.commit_pass(&pass).unwrap();
    let pairs = store.load_pairs(&alice, ItemKind::Contact).unwrap();
    let ids: Vec<_> = pairs
        .iter()
        .map(|p| (p.crm_id.as_str(), p.exchange_id.as_str()))
        .collect();
    assert_eq!(ids, vec![("003A", "X2"), ("003C", "X3")]);
    assert_eq!(
        store
            .cursor(&CursorScope::folder(&alice, "contacts"))
            .unwrap()
            .as_deref(),
        Some("s2")
    );
}

fn a_pair_may_take_an_id_another_pair_of_the_same_commit_gives_up(db: &Db) {
    // X2 is 003B's until the commit moves that pair to X3; a new pair in the same commit
    // takes X2. In either order, the commit writes what its pairs say, one at a time.
    let store = db.open();
    for (round, mut upserts) in [
        vec![
            contact("003B", "X3", "Babbage"),
            contact("003C", "X2", "Cray"),
        ],
        vec![
            contact("003C", "X2", "Cray"),
            contact("003B", "X3", "Babbage"),
        ],
    ]
    .into_iter()
    .enumerate()
    {
        let someone = user(&format!("someone{round}"));
        let mut pass = commit(&someone, 0);
        pass.upserts = vec![
            contact("003A", "X1", "Lovelace"),
            contact("003B", "X2", "Babbage"),
        ];
        store.commit_pass(&pass).unwrap();
        let mut pass = commit(&someone, 10);
        // And a pair new to the store beside them, as a first sync's batch has.
        upserts.push(contact("003D", "X4", "Dijkstra"));
        pass.upserts = upserts;
        store.commit_pass(&pass).unwrap();
        let mut ids: Vec<(String, String)> = store
            .load_pairs(&someone, ItemKind::Contact)
            .unwrap()
            .into_iter()
            .map(|p| (p.crm_id.as_str().into(), p.exchange_id.as_str().into()))
            .collect();
        ids.sort();
        let want = [
            ("003A", "X1"),
            ("003B", "X3"),
            ("003C", "X2"),
            ("003D", "X4"),
        ];
        let want: Vec<(String, String)> = want.map(|(c, x)| (c.into(), x.into())).into();
        assert_eq!(ids, want, "order {round}");
    }
}

fn the_same_ids_may_pair_for_other_users_and_kinds(db: &Db) {
    let (store, alice) = seeded(db);
    // A contact visible to several users syncs into each of their mailboxes.
    let bob = user("bob");
    let mut pass = commit(&bob, 10);
    pass.upserts = vec![contact("003A", "X1", "Lovelace")];
    store.commit_pass(&pass).unwrap();
    let mut pass = commit(&alice, 20);
    pass.upserts = vec![event("003A", "X1", "odd but legal")];
    store.commit_pass(&pass).unwrap();
    assert_eq!(store.load_pairs(&bob, ItemKind::Contact).unwrap().len(), 1);
    assert_eq!(
        store.load_pairs(&alice, ItemKind::Contact).unwrap().len(),
        2
    );
    assert_eq!(store.load_pairs(&alice, ItemKind::Event).unwrap().len(), 1);
}

fn the_schema_itself_refuses_a_second_pair_for_a_record(db: &Db) {
    let (_store, _alice) = seeded(db);
    let insert = |crm: &str, exchange: &str| {
        db.execute(&format!(
            "INSERT INTO pairs (user_key, kind, crm_id, exchange_id, content, content_hash, updated_at) \
             VALUES ('alice@example.com', 'contact', '{crm}', '{exchange}', '{{}}', 'h', 't')"
        ))
    };
    assert!(insert("003A", "X9").is_err(), "CRM id already paired");
    assert!(insert("003Z", "X1").is_err(), "Exchange id already paired");
    assert!(insert("003Z", "X9").is_ok());
}

fn the_users_of_crm_records_and_the_pairs_of_mixed_ids(db: &Db) {
    let store = db.open();
    let (alice, bob) = (user("alice"), user("bob"));
    let mut pass = commit(&alice, 0);
    pass.upserts = vec![
        contact("003A", "XA1", "Lovelace"),
        contact("003B", "XA2", "Babbage"),
    ];
    store.commit_pass(&pass).unwrap();
    let mut pass = commit(&bob, 1);
    pass.upserts = vec![contact("003A", "XB1", "Lovelace")];
    store.commit_pass(&pass).unwrap();

    let ids = [CrmId::new("003B"), CrmId::new("003A"), CrmId::new("003Z")];
    assert_eq!(
        store.crm_pair_users(ItemKind::Contact, &ids).unwrap(),
        vec![
            (CrmId::new("003B"), alice.clone()),
            (CrmId::new("003A"), alice.clone()),
            (CrmId::new("003A"), bob.clone()),
        ],
        "in the order asked, each record's users by key"
    );
    assert!(store
        .crm_pair_users(ItemKind::Event, &ids)
        .unwrap()
        .is_empty());

    let found = store
        .pairs_of(
            &alice,
            ItemKind::Contact,
            &[
                ItemId::Exchange(ExchangeId::new("XA2")),
                ItemId::Crm(CrmId::new("003A")),
                ItemId::Exchange(ExchangeId::new("XA1")),
                ItemId::Crm(CrmId::new("003Q")),
            ],
        )
        .unwrap();
    let keys: Vec<_> = found.iter().map(|p| p.crm_id.as_str()).collect();
    assert_eq!(keys, ["003A", "003B"], "each pair once, by CRM id");

    // The same pairs without their content, as a listing reads them.
    let links = store
        .pair_links(
            &alice,
            ItemKind::Contact,
            &[
                ItemId::Exchange(ExchangeId::new("XA2")),
                ItemId::Crm(CrmId::new("003A")),
                ItemId::Exchange(ExchangeId::new("XA1")),
                ItemId::Crm(CrmId::new("003Q")),
                ItemId::Exchange(ExchangeId::new("XB1")),
            ],
        )
        .unwrap();
    let expected: Vec<PairLink> = found
        .iter()
        .map(|p| PairLink {
            crm_id: p.crm_id.clone(),
            exchange_id: p.exchange_id.clone(),
            exchange_version: p.exchange_version.clone(),
        })
        .collect();
    assert_eq!(
        links, expected,
        "each pair once, by CRM id; bob's item is not alice's"
    );
    assert!(links.iter().all(|l| l.exchange_version.is_some()));
    assert!(store
        .pair_links(&alice, ItemKind::Event, &[ItemId::Crm(CrmId::new("003A"))])
        .unwrap()
        .is_empty());
}

crate::tests::both_backends!(
    the_users_of_crm_records_and_the_pairs_of_mixed_ids,
    one_crm_record_in_two_pairs_of_one_commit_is_refused,
    one_exchange_item_in_two_pairs_of_one_commit_is_refused,
    joining_two_stored_pairs_is_refused_and_rolls_back_the_whole_pass,
    a_pair_may_take_an_id_another_pair_of_the_same_commit_gives_up,
    the_same_ids_may_pair_for_other_users_and_kinds,
    the_schema_itself_refuses_a_second_pair_for_a_record,
);
