//! The intent journal: writes stay journaled until the commit that stores their outcome.

use exsync_core::plan::Op;
use exsync_core::{CrmId, ExchangeId, ItemId, ItemKind, Side};

use super::{commit, contact, fields, t, user, Db};
use crate::{StoreError, SyncState};

fn create(source: &str) -> Op {
    Op::Create {
        kind: ItemKind::Contact,
        on: Side::Exchange,
        source: ItemId::Crm(CrmId::new(source)),
        source_version: Some("v1".into()),
        fields: fields(serde_json::json!({"last_name": "Ng"})),
        replaces: None,
    }
}

/// Journals `ops` for the user, as contacts, at `t(10)`.
fn journal(store: &dyn SyncState, user: &exsync_core::UserKey, ops: &[Op]) -> Vec<i64> {
    store
        .journal_intents(
            user,
            ItemKind::Contact,
            &ops.iter().collect::<Vec<_>>(),
            t(10),
        )
        .unwrap()
}

fn delete(crm: &str, exchange: &str) -> Op {
    Op::Delete {
        kind: ItemKind::Contact,
        on: Side::Crm,
        crm_id: CrmId::new(crm),
        exchange_id: ExchangeId::new(exchange),
    }
}

fn journaled_writes_stay_until_a_commit_settles_them(db: &Db) {
    let store = db.open();
    let ann = user("ann@example.com");
    let ops = [create("003A"), delete("003B", "AAB")];
    let ids = journal(&*store, &ann, &ops);
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1], "ids follow the plan's order");

    let open = store.intents(&ann, ItemKind::Contact).unwrap();
    assert_eq!(
        open.iter().map(|i| &i.op).collect::<Vec<_>>(),
        [&ops[0], &ops[1]]
    );
    assert!(open.iter().all(|i| !i.sent), "nothing is sent yet");
    assert!(store.intents(&ann, ItemKind::Event).unwrap().is_empty());
    assert!(store
        .intents(&user("bob@example.com"), ItemKind::Contact)
        .unwrap()
        .is_empty());

    store.mark_intents_sent(&ids[..1]).unwrap();
    let sent: Vec<bool> = store
        .intents(&ann, ItemKind::Contact)
        .unwrap()
        .iter()
        .map(|i| i.sent)
        .collect();
    assert_eq!(sent, [true, false]);

    // The commit that stores the create's pair settles it, in the same transaction.
    let mut slice = commit(&ann, 20);
    slice.partial = true;
    slice.upserts.push(contact("003A", "AAA", "Ng"));
    slice.settled_intents.push(ids[0]);
    store.commit_pass(&slice).unwrap();
    let left: Vec<i64> = store
        .intents(&ann, ItemKind::Contact)
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(left, [ids[1]]);
}

fn a_refused_commit_settles_nothing(db: &Db) {
    let store = db.open();
    let ann = user("ann@example.com");
    let ids = store
        .journal_intents(&ann, ItemKind::Contact, &[&create("003A")], t(10))
        .unwrap();
    let mut bad = commit(&ann, 20);
    bad.partial = true;
    bad.upserts.push(contact("003A", "AAA", "Ng"));
    bad.upserts.push(contact("003B", "AAA", "Ng"));
    bad.settled_intents = ids.clone();
    assert!(store.commit_pass(&bad).is_err());
    assert_eq!(store.intents(&ann, ItemKind::Contact).unwrap().len(), 1);
}

fn only_writes_are_journaled(db: &Db) {
    let store = db.open();
    let ann = user("ann@example.com");
    let skip = Op::Skip {
        kind: ItemKind::Contact,
        id: ItemId::Crm(CrmId::new("003A")),
        reason: "bad".into(),
    };
    let err = store
        .journal_intents(&ann, ItemKind::Contact, &[&create("003B"), &skip], t(10))
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err}");
    assert!(store.intents(&ann, ItemKind::Contact).unwrap().is_empty());
}

fn reset_sync_forgets_the_users_journal_only(db: &Db) {
    let store = db.open();
    let (ann, bob) = (user("ann@example.com"), user("bob@example.com"));
    for who in [&ann, &bob] {
        store
            .journal_intents(who, ItemKind::Event, &[&create("00UA")], t(10))
            .unwrap();
    }
    store.reset_user(&ann).unwrap();
    assert!(store.intents(&ann, ItemKind::Event).unwrap().is_empty());
    assert_eq!(store.intents(&bob, ItemKind::Event).unwrap().len(), 1);
}

fn a_creates_answer_is_kept_until_its_commit(db: &Db) {
    let store = db.open();
    let ann = user("ann@example.com");
    let mut to_crm = create("AAC");
    if let Op::Create { on, source, .. } = &mut to_crm {
        *on = Side::Crm;
        *source = ItemId::Exchange(ExchangeId::new("AAC"));
    }
    let ops = [create("003A"), to_crm, delete("003B", "AAB")];
    let ids = journal(&*store, &ann, &ops);
    store.mark_intents_sent(&ids).unwrap();
    let answered = |store: &dyn crate::Store| -> Vec<Option<ItemId>> {
        store
            .intents(&ann, ItemKind::Contact)
            .unwrap()
            .into_iter()
            .map(|i| i.answered)
            .collect()
    };
    assert_eq!(
        answered(&*store),
        [None, None, None],
        "nothing answered yet"
    );

    // Each create's answer is read back on the side it wrote to; the delete has none.
    store
        .mark_intents_answered(&[
            (ids[0], ItemId::Exchange(ExchangeId::new("AAMk-made"))),
            (ids[1], ItemId::Crm(CrmId::new("003M"))),
        ])
        .unwrap();
    assert_eq!(
        answered(&*store),
        [
            Some(ItemId::Exchange(ExchangeId::new("AAMk-made"))),
            Some(ItemId::Crm(CrmId::new("003M"))),
            None
        ]
    );

    // An empty id is no answer: refused, and nothing changes.
    let err = store
        .mark_intents_answered(&[(ids[0], ItemId::Exchange(ExchangeId::new("")))])
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err}");
    assert_eq!(
        answered(&*store)[0],
        Some(ItemId::Exchange(ExchangeId::new("AAMk-made")))
    );

    // Settled ones are gone with their answer; an answer for them later changes nothing.
    let mut slice = commit(&ann, 20);
    slice.partial = true;
    slice.settled_intents = ids[..2].to_vec();
    store.commit_pass(&slice).unwrap();
    store
        .mark_intents_answered(&[(ids[0], ItemId::Exchange(ExchangeId::new("late")))])
        .unwrap();
    assert_eq!(answered(&*store), [None]);
}

fn many_answers_are_each_kept_with_their_own_write(db: &Db) {
    let store = db.open();
    let ann = user("ann@example.com");
    // More than a batch of either side holds, more than SQLite keeps in one row, and one
    // write left unanswered.
    let n = 1024 + 7;
    let ops: Vec<Op> = (0..n).map(|i| create(&format!("003{i:04}"))).collect();
    let ids = journal(&*store, &ann, &ops);
    let unanswered = ids[103];
    let made = |i: usize| ItemId::Exchange(ExchangeId::new(format!("AAMk-{i}")));
    let mut answers: Vec<(i64, ItemId)> = ids
        .iter()
        .enumerate()
        .filter(|(_, id)| **id != unanswered)
        .map(|(i, id)| (*id, made(i)))
        .collect();
    // Answers come in any order; one for a write never journaled is ignored.
    answers.reverse();
    answers.push((ids[n - 1] + 1000, made(9999)));
    store.mark_intents_answered(&answers).unwrap();

    let kept: Vec<(i64, Option<ItemId>)> = store
        .intents(&ann, ItemKind::Contact)
        .unwrap()
        .into_iter()
        .map(|i| (i.id, i.answered))
        .collect();
    let expected: Vec<(i64, Option<ItemId>)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, (*id != unanswered).then(|| made(i))))
        .collect();
    assert_eq!(kept, expected);
}

crate::tests::both_backends!(
    many_answers_are_each_kept_with_their_own_write,
    a_creates_answer_is_kept_until_its_commit,
    journaled_writes_stay_until_a_commit_settles_them,
    a_refused_commit_settles_nothing,
    only_writes_are_journaled,
    reset_sync_forgets_the_users_journal_only,
);

/// SQLite keeps a batch of writes in one row and its marks in one row beside it: settling
/// part of the batch keeps the rest with their marks, settling all of it removes both, and
/// journaling or storing answers, whose commits are not synced, leaves the store's other
/// commits synced.
#[test]
fn on_sqlite_a_settled_batch_goes_with_its_marks_and_commits_stay_synced() {
    let (_dir, store) = super::temp_store();
    let ann = user("ann@example.com");
    let ops = [create("003A"), create("003B"), delete("003C", "AAC")];
    let ids = journal(&store, &ann, &ops);
    let synchronous = |store: &crate::SqliteStore| -> i64 {
        store
            .with_read_transaction(|c| {
                Ok(c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap())
            })
            .unwrap()
    };
    assert_eq!(
        synchronous(&store),
        2,
        "commits after journaling are synced (FULL)"
    );
    store.mark_intents_sent(&ids[..2]).unwrap();
    let made = ItemId::Exchange(ExchangeId::new("AAMk-A"));
    store
        .mark_intents_answered(&[(ids[0], made.clone())])
        .unwrap();
    assert_eq!(
        synchronous(&store),
        2,
        "commits after storing answers are synced (FULL)"
    );
    // Marking again changes nothing, and a later answer replaces an earlier one.
    store.mark_intents_sent(&ids[..1]).unwrap();
    let again = ItemId::Exchange(ExchangeId::new("AAMk-A2"));
    store
        .mark_intents_answered(&[(ids[0], again.clone())])
        .unwrap();
    type Rows = (i64, Option<(String, String, String)>);
    let rows = |store: &crate::SqliteStore| -> Rows {
        store
            .with_read_transaction(|c| {
                let batches = c
                    .query_row("SELECT count(*) FROM intent_batches", [], |r| r.get(0))
                    .unwrap();
                let marks = c
                    .query_row(
                        "SELECT sent, answered, settled FROM intent_marks",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .ok();
                Ok((batches, marks))
            })
            .unwrap()
    };
    let marks = |sent: &str, answered: &str, settled: &str| {
        Some((sent.to_owned(), answered.to_owned(), settled.to_owned()))
    };
    assert_eq!(
        rows(&store),
        (1, marks("[0,1]", r#"{"0":"AAMk-A2"}"#, "[]")),
        "one batch, one row of marks"
    );
    let open: Vec<(bool, Option<ItemId>)> = store
        .intents(&ann, ItemKind::Contact)
        .unwrap()
        .into_iter()
        .map(|i| (i.sent, i.answered))
        .collect();
    assert_eq!(open, [(true, Some(again)), (true, None), (false, None)]);

    let mut settle = commit(&ann, 20);
    settle.partial = true;
    settle.settled_intents = ids[..2].to_vec();
    store.commit_pass(&settle).unwrap();
    assert_eq!(
        rows(&store),
        (1, marks("[]", "{}", "[0,1]")),
        "settled writes leave no marks but their settling"
    );
    // A late mark of a settled write is not kept.
    store.mark_intents_sent(&ids[..1]).unwrap();
    assert_eq!(rows(&store), (1, marks("[]", "{}", "[0,1]")));
    let open = store.intents(&ann, ItemKind::Contact).unwrap();
    assert_eq!(open.iter().map(|i| i.id).collect::<Vec<_>>(), [ids[2]]);
    assert_eq!(open[0].op, ops[2]);

    settle.settled_intents = ids[2..].to_vec();
    store.commit_pass(&settle).unwrap();
    assert_eq!(rows(&store), (0, None), "a settled batch leaves nothing");
    assert!(store.intents(&ann, ItemKind::Contact).unwrap().is_empty());
}
