//! Leases and fencing: on PostgreSQL, several workers (each its own store, as each process
//! opens its own) share users without overlap, take over lapsed leases with a new epoch, and
//! a worker whose lease moved on writes nothing; on SQLite, the one process holds everything.

use std::collections::BTreeSet;
use std::thread;
use std::time::Duration;

use exsync_core::plan::Op;
use exsync_core::{CrmId, ExchangeId, ItemId, ItemKind, Side};

use super::*;
use crate::{
    Lease, LeaseScope, Leases, PgOptions, PgStore, RoutedChange, StoreError, ORG_CRM_READ,
};

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(300);
const NONE: Duration = Duration::ZERO;

fn pg() -> Option<(exsync_testkit::postgres::Database, PgOptions)> {
    let db = exsync_testkit::postgres::database()?;
    let options = PgOptions::new(db.conninfo());
    Some((db, options))
}

fn users(n: usize) -> Vec<UserKey> {
    (0..n).map(|i| user(&format!("u{i:02}"))).collect()
}

fn keys(leases: &[Lease]) -> BTreeSet<UserKey> {
    leases
        .iter()
        .map(|l| match &l.scope {
            LeaseScope::User(u) => u.clone(),
            other => panic!("not a user lease: {other:?}"),
        })
        .collect()
}

fn assert_lost(result: Result<impl std::fmt::Debug, StoreError>, holder: &str, says: &str) {
    match result {
        Err(StoreError::LeaseLost {
            holder: h, detail, ..
        }) => {
            assert_eq!(h, holder);
            assert!(detail.contains(says), "{detail}");
        }
        other => panic!("expected LeaseLost, got {other:?}"),
    }
}

fn create(source: &str) -> Op {
    Op::Create {
        kind: ItemKind::Contact,
        on: Side::Exchange,
        source: ItemId::Crm(CrmId::new(source)),
        source_version: None,
        fields: fields(serde_json::json!({"last_name": "Ng"})),
        replaces: None,
    }
}

#[test]
fn workers_taking_users_at_once_never_take_the_same_one() {
    let Some((_db, options)) = pg() else { return };
    let all = users(12);
    PgStore::open(&options).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|w| {
            let options = options.clone();
            let all = all.clone();
            thread::spawn(move || {
                let store = PgStore::open(&options).unwrap();
                let mut mine = Vec::new();
                // Several rounds, so the workers really do meet on the same rows.
                for _ in 0..3 {
                    mine.extend(
                        store
                            .acquire_users(&format!("w{w}"), &all, 1, LONG, NONE)
                            .unwrap(),
                    );
                }
                mine
            })
        })
        .collect();
    let mut taken = BTreeSet::new();
    let mut count = 0;
    for handle in handles {
        let leases = handle.join().unwrap();
        count += leases.len();
        for lease in &leases {
            assert_eq!(lease.epoch, 1, "{lease:?}");
        }
        taken.extend(keys(&leases));
    }
    assert_eq!(count, 12, "each worker took three, one at a time");
    assert_eq!(taken.len(), 12, "no user was taken twice");

    let late = PgStore::open(&options).unwrap();
    assert!(late
        .acquire_users("w9", &all, 100, LONG, NONE)
        .unwrap()
        .is_empty());
    let listed = late.leases().unwrap();
    assert_eq!(listed.len(), 12);
    assert!(listed
        .iter()
        .all(|l| !l.expired && l.holder.starts_with('w')));
}

#[test]
fn a_released_user_goes_to_the_next_worker_with_a_new_epoch() {
    let Some((_db, options)) = pg() else { return };
    let a = PgStore::open(&options).unwrap();
    let b = PgStore::open(&options).unwrap();
    let all = users(3);
    let first = a.acquire_users("a", &all, 2, LONG, NONE).unwrap();
    assert_eq!(keys(&first), all[..2].iter().cloned().collect());
    let second = b.acquire_users("b", &all, 10, LONG, NONE).unwrap();
    assert_eq!(keys(&second), BTreeSet::from([all[2].clone()]));

    a.release(&first[0]).unwrap();
    let third = b.acquire_users("b", &all, 10, LONG, NONE).unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].scope, first[0].scope);
    assert_eq!(third[0].epoch, first[0].epoch + 1);
    // The users synced longest ago come first: the one released just now goes last.
    b.release(&second[0]).unwrap();
    b.release(&third[0]).unwrap();
    let next = a.acquire_users("a", &all, 1, LONG, NONE).unwrap();
    assert_eq!(keys(&next), BTreeSet::from([all[2].clone()]));
}

#[test]
fn a_user_or_org_job_just_done_rests_before_any_worker_takes_it_again() {
    let Some((_db, options)) = pg() else { return };
    let a = PgStore::open(&options).unwrap();
    let b = PgStore::open(&options).unwrap();
    let all = users(2);
    let rest = Duration::from_millis(400);
    let first = a.acquire_users("a", &all, 1, LONG, rest).unwrap();
    a.release(&first[0]).unwrap();
    // Released just now: b takes only the user nobody synced yet.
    let taken = b.acquire_users("b", &all, 10, LONG, rest).unwrap();
    assert_eq!(keys(&taken), BTreeSet::from([all[1].clone()]));
    let org = a
        .acquire_org("a", ORG_CRM_READ, LONG, rest)
        .unwrap()
        .unwrap();
    a.release(&org).unwrap();
    assert!(b
        .acquire_org("b", ORG_CRM_READ, LONG, rest)
        .unwrap()
        .is_none());
    thread::sleep(rest + Duration::from_millis(100));
    assert_eq!(
        keys(&b.acquire_users("b", &all, 10, LONG, rest).unwrap()),
        BTreeSet::from([all[0].clone()])
    );
    assert!(b
        .acquire_org("b", ORG_CRM_READ, LONG, rest)
        .unwrap()
        .is_some());
}

#[test]
fn a_lapsed_lease_is_taken_over_and_the_stalled_worker_writes_nothing() {
    let Some((_db, options)) = pg() else { return };
    let a = PgStore::open(&options).unwrap();
    let b = PgStore::open(&options).unwrap();
    let alice = user("alice");
    let lease = a
        .acquire_users("a", std::slice::from_ref(&alice), 1, SHORT, NONE)
        .unwrap()
        .remove(0);
    // A journaled write before the stall, which the new holder sees.
    a.journal_intents(&alice, ItemKind::Contact, &[&create("003A")], t(1))
        .unwrap();
    assert!(
        b.acquire_users("b", std::slice::from_ref(&alice), 1, LONG, NONE)
            .unwrap()
            .is_empty(),
        "a live lease is not taken"
    );
    thread::sleep(SHORT + Duration::from_millis(200));
    let taken = b
        .acquire_users("b", std::slice::from_ref(&alice), 1, LONG, NONE)
        .unwrap()
        .remove(0);
    assert_eq!(taken.epoch, lease.epoch + 1);
    let before = dump(&b);

    // Everything the stalled worker tries on alice's behalf is refused.
    let mut pass = commit(&alice, 10);
    pass.upserts = vec![contact("003A", "X1", "Lovelace")];
    pass.cursors = vec![set_cursor(
        CursorScope::folder(&alice, "contacts"),
        "token-from-a",
    )];
    assert_lost(a.commit_pass(&pass), "a", "worker b took it over (epoch 2");
    assert_lost(
        a.journal_intents(&alice, ItemKind::Contact, &[&create("003B")], t(11)),
        "a",
        "worker b",
    );
    let ids: Vec<i64> = a
        .intents(&alice, ItemKind::Contact)
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    assert_lost(a.mark_intents_sent(&ids), "a", "worker b");
    let answers: Vec<(i64, ItemId)> = ids
        .iter()
        .map(|id| (*id, ItemId::Exchange(ExchangeId::new("X9"))))
        .collect();
    assert_lost(a.mark_intents_answered(&answers), "a", "worker b");
    let mut write = echo("003A", "2026-09-21T10:00:00.000+0000", t(12));
    write.user = Some(alice.clone());
    assert_lost(a.record_crm_writes(&[write.clone()]), "a", "worker b");
    assert_lost(a.renew(&lease, LONG), "a", "took it over");
    assert_eq!(dump(&b), before, "the stalled worker changed nothing");
    assert!(!b.intents(&alice, ItemKind::Contact).unwrap()[0].sent);

    // The new holder writes as usual.
    b.commit_pass(&pass).unwrap();
    b.record_crm_writes(&[write]).unwrap();
    assert_eq!(b.load_pairs(&alice, ItemKind::Contact).unwrap().len(), 1);

    // Released, it stays out of the stalled worker's reach: the epoch is still not its own.
    b.release(&taken).unwrap();
    assert_lost(a.commit_pass(&commit(&alice, 20)), "a", "released");
    assert_eq!(b.runs(&alice, 10).unwrap().len(), 1);
}

#[test]
fn a_lapsed_lease_nobody_took_still_lets_its_holder_commit() {
    let Some((_db, options)) = pg() else { return };
    let a = PgStore::open(&options).unwrap();
    let alice = user("alice");
    let lease = a
        .acquire_users(
            "a",
            std::slice::from_ref(&alice),
            1,
            Duration::from_millis(50),
            NONE,
        )
        .unwrap()
        .remove(0);
    thread::sleep(Duration::from_millis(150));
    assert!(a.leases().unwrap()[0].expired);
    a.commit_pass(&commit(&alice, 1)).unwrap();
    let renewed = a.renew(&lease, LONG).unwrap();
    assert_eq!(renewed.epoch, lease.epoch);
    assert!(renewed.expires_at > lease.expires_at);
    assert!(!a.leases().unwrap()[0].expired);
}

#[test]
fn a_worker_writes_nothing_for_a_user_it_holds_no_lease_on() {
    let Some((_db, options)) = pg() else { return };
    let a = PgStore::open(&options).unwrap();
    let (alice, bob) = (user("alice"), user("bob"));
    a.acquire_users("a", std::slice::from_ref(&alice), 1, LONG, NONE)
        .unwrap();
    a.commit_pass(&commit(&alice, 1)).unwrap();
    assert_lost(a.commit_pass(&commit(&bob, 1)), "a", "took no lease");
    assert!(a.runs(&bob, 10).unwrap().is_empty());

    // A store that never asked for a lease (one process, or an administrator's command)
    // writes as before.
    let admin = PgStore::open(&options).unwrap();
    admin.commit_pass(&commit(&bob, 2)).unwrap();
}

#[test]
fn one_worker_holds_the_org_read_and_only_it_moves_the_org_cursors() {
    let Some((_db, options)) = pg() else { return };
    let a = PgStore::open(&options).unwrap();
    let b = PgStore::open(&options).unwrap();
    let org = a
        .acquire_org("a", ORG_CRM_READ, SHORT, NONE)
        .unwrap()
        .unwrap();
    assert_eq!(org.epoch, 1);
    assert!(b
        .acquire_org("b", ORG_CRM_READ, LONG, NONE)
        .unwrap()
        .is_none());
    assert!(a
        .acquire_org("a", ORG_CRM_READ, LONG, NONE)
        .unwrap()
        .is_none());
    let cursor = |v: &str| set_cursor(CursorScope::crm_object("Contact"), v);
    assert_lost(
        b.advance_org_cursors(&[cursor("from-b")], t(1)),
        "b",
        "took no lease",
    );
    a.advance_org_cursors(&[cursor("from-a")], t(1)).unwrap();

    thread::sleep(SHORT + Duration::from_millis(200));
    let b_org = b
        .acquire_org("b", ORG_CRM_READ, LONG, NONE)
        .unwrap()
        .unwrap();
    assert_eq!(b_org.epoch, 2);
    assert_lost(
        a.advance_org_cursors(&[cursor("late-a")], t(2)),
        "a",
        "worker b took it over",
    );
    b.advance_org_cursors(&[cursor("from-b")], t(2)).unwrap();
    assert_eq!(
        a.cursor(&CursorScope::crm_object("Contact"))
            .unwrap()
            .as_deref(),
        Some("from-b")
    );
    let listed = a.leases().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].scope, LeaseScope::Org(ORG_CRM_READ.into()));
    assert_eq!(listed[0].holder, "b");
}

/// The CRM's user list, read by the worker holding the org read, reaches the others through
/// the database; a worker without that lease, or whose lease was taken over, cannot replace it.
#[test]
fn the_crm_user_list_is_shared_only_under_the_org_read() {
    let Some((_db, options)) = pg() else { return };
    let a = PgStore::open(&options).unwrap();
    let b = PgStore::open(&options).unwrap();
    assert_eq!(b.shared_crm_users().unwrap(), None);
    a.acquire_org("a", ORG_CRM_READ, SHORT, NONE)
        .unwrap()
        .unwrap();
    assert!(b
        .acquire_org("b", ORG_CRM_READ, LONG, NONE)
        .unwrap()
        .is_none());
    a.share_crm_users(r#"[{"id":"005A"}]"#, t(1)).unwrap();
    assert_lost(b.share_crm_users("[]", t(1)), "b", "took no lease");
    assert_eq!(
        b.shared_crm_users().unwrap(),
        Some((r#"[{"id":"005A"}]"#.to_owned(), t(1)))
    );

    thread::sleep(SHORT + Duration::from_millis(200));
    b.acquire_org("b", ORG_CRM_READ, LONG, NONE)
        .unwrap()
        .unwrap();
    assert_lost(a.share_crm_users("[]", t(2)), "a", "worker b took it over");
    b.share_crm_users(r#"[{"id":"005B"}]"#, t(3)).unwrap();
    assert_eq!(
        a.shared_crm_users().unwrap(),
        Some((r#"[{"id":"005B"}]"#.to_owned(), t(3)))
    );
    // Text that is not JSON, or too long, is refused.
    assert!(b.share_crm_users("not json", t(4)).is_err());
    assert!(b
        .share_crm_users(&" ".repeat(crate::CRM_USERS_MAX + 1), t(4))
        .is_err());

    // SQLite serves one process: nothing to share.
    let (_dir, one) = temp_store();
    one.share_crm_users("[]", t(1)).unwrap();
    assert_eq!(one.shared_crm_users().unwrap(), None);
}

#[test]
fn a_takeover_waits_for_a_commit_in_flight_and_does_not_slip_in_between() {
    let Some((db, options)) = pg() else { return };
    let a = PgStore::open(&options).unwrap();
    let alice = user("alice");
    a.acquire_users(
        "a",
        std::slice::from_ref(&alice),
        1,
        Duration::from_millis(50),
        NONE,
    )
    .unwrap();
    thread::sleep(Duration::from_millis(150));
    // Another session holds the row lock as a's commit would: a worker trying to take the
    // lapsed lease skips it rather than wait, and so cannot take it mid-commit.
    let mut locker = postgres::Client::connect(&db.conninfo(), postgres::NoTls).unwrap();
    let mut tx = locker.transaction().unwrap();
    tx.execute(
        "SELECT 1 FROM user_lease WHERE user_key = $1 FOR UPDATE",
        &[&alice.as_str()],
    )
    .unwrap();
    let b = PgStore::open(&options).unwrap();
    assert!(b
        .acquire_users("b", std::slice::from_ref(&alice), 1, LONG, NONE)
        .unwrap()
        .is_empty());
    tx.rollback().unwrap();
    assert_eq!(
        b.acquire_users("b", std::slice::from_ref(&alice), 1, LONG, NONE)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn invalid_holders_and_names_are_refused() {
    let Some((_db, options)) = pg() else { return };
    let a = PgStore::open(&options).unwrap();
    assert!(matches!(
        a.acquire_users(" ", &users(1), 1, LONG, NONE),
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(matches!(
        a.acquire_org("a", "", LONG, NONE),
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(a.acquire_users("a", &[], 5, LONG, NONE).unwrap().is_empty());
}

/// One user's lease, read alone, is what the list of leases says of that user, through
/// taking, lapsing and giving back; a user nobody holds has none. SQLite keeps no lease
/// (`sqlite_grants_every_lease_and_fences_nothing` holds it to that).
#[test]
fn one_users_lease_is_read_alone() {
    let Some((_db, options)) = pg() else { return };
    let store = PgStore::open(&options).unwrap();
    let (ann, bo, cy) = (user("ann"), user("bo"), user("cy"));
    store.ensure_user(&cy).unwrap();
    let listed = |who: &UserKey| {
        store
            .leases()
            .unwrap()
            .into_iter()
            .find(|l| l.scope == LeaseScope::User(who.clone()))
    };
    let same = |who: &UserKey| {
        let alone = store.user_lease(who).unwrap();
        assert_eq!(alone, listed(who), "{who}");
        alone
    };
    let ann_lease = store
        .acquire_users("w<1>", std::slice::from_ref(&ann), 1, LONG, NONE)
        .unwrap()
        .remove(0);
    let bo_lease = store
        .acquire_users(
            "w2",
            std::slice::from_ref(&bo),
            1,
            Duration::from_millis(50),
            NONE,
        )
        .unwrap()
        .remove(0);
    assert!(store
        .acquire_org("w3", ORG_CRM_READ, LONG, NONE)
        .unwrap()
        .is_some());
    thread::sleep(Duration::from_millis(150));
    let (ann_now, bo_now) = (same(&ann), same(&bo));
    assert_eq!(same(&cy), None, "nobody holds cy");
    assert_eq!(
        same(&user("nobody")),
        None,
        "a user the store does not know"
    );
    let ann_now = ann_now.expect("ann is held");
    assert_eq!(
        (ann_now.holder.as_str(), ann_now.epoch, ann_now.expired),
        ("w<1>", ann_lease.epoch, false)
    );
    assert_eq!(ann_now.scope, LeaseScope::User(ann.clone()));
    let bo_now = bo_now.expect("bo's lapsed lease is still his worker's");
    assert_eq!((bo_now.holder.as_str(), bo_now.expired), ("w2", true));
    store.release(&ann_lease).unwrap();
    store.release(&bo_lease).unwrap();
    assert_eq!((same(&ann), same(&bo)), (None, None), "given back");
}

#[test]
fn sqlite_grants_every_lease_and_fences_nothing() {
    let (_dir, store) = temp_store();
    assert!(!store.shared());
    let all = users(3);
    let leases = store.acquire_users("a", &all, 2, LONG, NONE).unwrap();
    assert_eq!(keys(&leases), all[..2].iter().cloned().collect());
    assert!(store
        .acquire_org("b", ORG_CRM_READ, LONG, NONE)
        .unwrap()
        .is_some());
    store.commit_pass(&commit(&all[2], 1)).unwrap();
    // One process holds the file and so every user: no lease is kept, and a user's page
    // names no worker, even for a user just taken.
    assert!(store.leases().unwrap().is_empty());
    assert_eq!(store.user_lease(&all[0]).unwrap(), None);
    store.release(&leases[0]).unwrap();
    assert!(store.leases().unwrap().is_empty());
}

fn routed(who: &UserKey, crm: &str) -> RoutedChange {
    RoutedChange {
        user: who.clone(),
        kind: ItemKind::Contact,
        change: exsync_core::plan::Change::Deleted {
            id: ItemId::Crm(CrmId::new(crm)),
        },
        notes: vec![format!("note on {crm}")],
    }
}

#[test]
fn the_org_read_reaches_every_worker_through_the_inbox_under_its_lease() {
    let Some((_db, options)) = pg() else { return };
    let reader = PgStore::open(&options).unwrap();
    let other = PgStore::open(&options).unwrap();
    let (alice, bob) = (user("alice"), user("bob"));
    let scope = CursorScope::crm_object("Contact");
    let org = reader
        .acquire_org("r", ORG_CRM_READ, SHORT, NONE)
        .unwrap()
        .unwrap();
    let first = [
        routed(&alice, "003A"),
        routed(&bob, "003B"),
        routed(&alice, "003C"),
    ];
    assert_eq!(
        reader
            .deliver_crm_read(&first, &[set_cursor(scope.clone(), "c1")], t(1))
            .unwrap(),
        3
    );
    assert_eq!(reader.cursor(&scope).unwrap().as_deref(), Some("c1"));
    // A folder cursor is a user's, never the org read's.
    assert!(matches!(
        reader.deliver_crm_read(
            &[],
            &[set_cursor(CursorScope::folder(&alice, "contacts"), "x")],
            t(1)
        ),
        Err(StoreError::InvalidInput { .. })
    ));

    // The reader stalls; another worker takes the read over, and the stalled one's late
    // delivery writes nothing, not even its cursor.
    thread::sleep(SHORT + Duration::from_millis(200));
    other
        .acquire_org("o", ORG_CRM_READ, LONG, NONE)
        .unwrap()
        .unwrap();
    assert_lost(
        reader.deliver_crm_read(
            &[routed(&bob, "003Z")],
            &[set_cursor(scope.clone(), "late")],
            t(2),
        ),
        "r",
        "worker o took it over",
    );
    assert_eq!(reader.cursor(&scope).unwrap().as_deref(), Some("c1"));
    assert_lost(reader.renew(&org, LONG), "r", "took it over");

    // Alice's worker takes her changes, in order, and settles them once used.
    let lease = other
        .acquire_users("o", std::slice::from_ref(&alice), 1, LONG, NONE)
        .unwrap()
        .remove(0);
    let inbox = other.crm_inbox(&alice, 100).unwrap();
    assert_eq!(
        inbox.iter().map(|e| e.routed.clone()).collect::<Vec<_>>(),
        vec![first[0].clone(), first[2].clone()]
    );
    assert_eq!(
        other.crm_inbox(&alice, 1).unwrap().len(),
        1,
        "reads are capped"
    );
    assert_lost(
        reader.settle_crm_inbox(&alice, &[inbox[0].id]),
        "r",
        "took no lease",
    );
    assert_eq!(
        other
            .settle_crm_inbox(&alice, &inbox.iter().map(|e| e.id).collect::<Vec<_>>())
            .unwrap(),
        2
    );
    assert!(other.crm_inbox(&alice, 100).unwrap().is_empty());
    let bobs: Vec<RoutedChange> = other
        .crm_inbox(&bob, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.routed)
        .collect();
    assert_eq!(
        bobs,
        vec![first[1].clone()],
        "the late delivery left nothing"
    );
    other.release(&lease).unwrap();
}

#[test]
fn sqlite_refuses_to_deliver_a_read_and_has_no_inbox() {
    let (_dir, store) = temp_store();
    let alice = user("alice");
    assert!(matches!(
        store.deliver_crm_read(&[routed(&alice, "003A")], &[], t(1)),
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(store.crm_inbox(&alice, 10).unwrap().is_empty());
}
