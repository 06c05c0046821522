//! Users who leave the sync: marked once to read their records in full when back, the mark
//! settled only by the pass that read in full; on PostgreSQL their inbox is emptied with the
//! mark, under the org read's lease, and the mark is settled under the user's own.

use std::time::Duration;

use exsync_core::{CrmId, ItemId, ItemKind};

use super::*;
use crate::{
    Departures, Leases, PgOptions, PgStore, Retired, RoutedChange, StoreError, ORG_CRM_READ,
};

fn users_who_left_are_marked_once_and_their_full_read_settles_the_mark(db: &Db) {
    let store = db.open();
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    for u in [&alice, &bob, &carol] {
        store.commit_pass(&commit(u, 1)).unwrap();
    }
    let active = [alice.clone()];
    assert_eq!(
        store.retire_departed(&active, t(10)).unwrap(),
        Retired {
            marked: 2,
            inbox_removed: 0
        }
    );
    assert_eq!(store.full_read_due(&alice).unwrap(), None);
    assert_eq!(store.full_read_due(&bob).unwrap(), Some(t(10)));
    // A later pass finds them still gone: the mark keeps the time they were first missed.
    assert_eq!(store.retire_departed(&active, t(20)).unwrap().marked, 0);
    assert_eq!(store.full_read_due(&bob).unwrap(), Some(t(10)));

    // Bob is back; a settlement for another mark changes nothing, his full read's does.
    assert!(!store.settle_full_read(&bob, t(5)).unwrap());
    assert!(store.settle_full_read(&bob, t(10)).unwrap());
    assert_eq!(store.full_read_due(&bob).unwrap(), None);
    assert_eq!(
        store
            .retire_departed(&[alice.clone(), bob.clone()], t(30))
            .unwrap()
            .marked,
        0,
        "carol was marked already"
    );
    assert_eq!(store.full_read_due(&carol).unwrap(), Some(t(10)));
    // Survives a restart.
    drop(store);
    assert_eq!(db.open().full_read_due(&carol).unwrap(), Some(t(10)));
}

both_backends!(users_who_left_are_marked_once_and_their_full_read_settles_the_mark);

fn routed(who: &UserKey, crm: &str) -> RoutedChange {
    RoutedChange {
        user: who.clone(),
        kind: ItemKind::Contact,
        change: exsync_core::plan::Change::Deleted {
            id: ItemId::Crm(CrmId::new(crm)),
        },
        notes: Vec::new(),
    }
}

#[test]
fn the_inbox_of_users_who_left_is_emptied_under_the_org_read_and_theirs_alone() {
    let Some(db) = exsync_testkit::postgres::database() else {
        return;
    };
    let options = PgOptions::new(db.conninfo());
    let reader = PgStore::open(&options).unwrap();
    let other = PgStore::open(&options).unwrap();
    let (alice, bob) = (user("alice"), user("bob"));
    let long = Duration::from_secs(60);
    reader
        .acquire_org("r", ORG_CRM_READ, long, Duration::ZERO)
        .unwrap()
        .unwrap();
    reader
        .deliver_crm_read(
            &[
                routed(&alice, "003A"),
                routed(&bob, "003B"),
                routed(&bob, "003C"),
            ],
            &[],
            t(1),
        )
        .unwrap();

    // A worker without the org read's lease retires nobody.
    let lease = other
        .acquire_users("o", std::slice::from_ref(&bob), 1, long, Duration::ZERO)
        .unwrap()
        .remove(0);
    assert!(matches!(
        other.retire_departed(std::slice::from_ref(&alice), t(2)),
        Err(StoreError::LeaseLost { .. })
    ));
    assert_eq!(other.crm_inbox(&bob, 10).unwrap().len(), 2);

    assert_eq!(
        reader
            .retire_departed(std::slice::from_ref(&alice), t(2))
            .unwrap(),
        Retired {
            marked: 1,
            inbox_removed: 2
        }
    );
    assert!(other.crm_inbox(&bob, 10).unwrap().is_empty());
    assert_eq!(reader.crm_inbox(&alice, 10).unwrap().len(), 1);
    assert_eq!(other.full_read_due(&bob).unwrap(), Some(t(2)));

    // Bob's mark is settled under his lease only.
    assert!(matches!(
        reader.settle_full_read(&bob, t(2)),
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(other.settle_full_read(&bob, t(2)).unwrap());
    other.release(&lease).unwrap();
}
