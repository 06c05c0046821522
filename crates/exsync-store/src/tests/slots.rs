//! Slots of a shared cap: a pool hands out at most its size, a slot given back or left to
//! lapse goes to the next taker with a new epoch (and the old holder's renewal is refused),
//! and workers racing on their own connections never hold more than the pool between them,
//! nor the same slot.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::*;
use crate::{StoreError, EXCHANGE_REQUESTS, SLOTS_MAX};

const LONG: Duration = Duration::from_secs(600);

fn a_pool_hands_out_its_size_and_takes_slots_back(db: &Db) {
    let store = db.open();
    let a = store
        .take_slot(EXCHANGE_REQUESTS, "a", 2, LONG)
        .unwrap()
        .unwrap();
    let b = store
        .take_slot(EXCHANGE_REQUESTS, "b", 2, LONG)
        .unwrap()
        .unwrap();
    assert_eq!((a.number, b.number), (0, 1));
    assert_eq!(
        store.take_slot(EXCHANGE_REQUESTS, "c", 2, LONG).unwrap(),
        None
    );
    // Another pool is other rows.
    assert!(store.take_slot("other", "c", 2, LONG).unwrap().is_some());
    let held: Vec<(u32, String, bool)> = store
        .held_slots(EXCHANGE_REQUESTS)
        .unwrap()
        .into_iter()
        .map(|s| (s.number, s.holder, s.expired))
        .collect();
    assert_eq!(held, vec![(0, "a".into(), false), (1, "b".into(), false)]);

    let renewed = store.renew_slot(&a, LONG).unwrap();
    assert!(renewed.expires_at >= a.expires_at);
    store.release_slot(&renewed).unwrap();
    let c = store
        .take_slot(EXCHANGE_REQUESTS, "c", 2, LONG)
        .unwrap()
        .unwrap();
    assert_eq!(c.number, 0);
    assert!(c.epoch > a.epoch, "{c:?} after {a:?}");
    // The slot is c's now: a's late release and renewal change nothing.
    store.release_slot(&a).unwrap();
    assert!(matches!(
        store.renew_slot(&a, LONG),
        Err(StoreError::LeaseLost { .. })
    ));
    assert_eq!(
        store.take_slot(EXCHANGE_REQUESTS, "d", 2, LONG).unwrap(),
        None
    );

    // A smaller pool (a worker configured with a lower cap) takes only among its first slots.
    store.release_slot(&b).unwrap();
    assert_eq!(
        store.take_slot(EXCHANGE_REQUESTS, "d", 1, LONG).unwrap(),
        None
    );
    assert_eq!(
        store
            .take_slot(EXCHANGE_REQUESTS, "d", 3, LONG)
            .unwrap()
            .map(|s| s.number),
        Some(1)
    );
}

fn a_slot_left_to_lapse_goes_to_the_next_taker(db: &Db) {
    let store = db.open();
    let short = Duration::from_millis(300);
    let dead = store
        .take_slot(EXCHANGE_REQUESTS, "dead", 1, short)
        .unwrap()
        .unwrap();
    assert_eq!(
        store.take_slot(EXCHANGE_REQUESTS, "live", 1, LONG).unwrap(),
        None
    );
    thread::sleep(short + Duration::from_millis(200));
    assert!(store.held_slots(EXCHANGE_REQUESTS).unwrap()[0].expired);
    let live = store
        .take_slot(EXCHANGE_REQUESTS, "live", 1, LONG)
        .unwrap()
        .unwrap();
    assert_eq!((live.number, live.epoch), (0, dead.epoch + 1));
    // The worker that stalled past its slot learns it at its next renewal.
    match store.renew_slot(&dead, LONG) {
        Err(StoreError::LeaseLost { holder, .. }) => assert_eq!(holder, "dead"),
        other => panic!("{other:?}"),
    }
}

fn bad_pools_are_refused(db: &Db) {
    let store = db.open();
    for (name, holder, size) in [
        ("", "a", 1),
        (EXCHANGE_REQUESTS, " ", 1),
        (EXCHANGE_REQUESTS, "a", 0),
        (EXCHANGE_REQUESTS, "a", SLOTS_MAX + 1),
    ] {
        assert!(
            matches!(
                store.take_slot(name, holder, size, LONG),
                Err(StoreError::InvalidInput { .. })
            ),
            "{name:?} {holder:?} {size}"
        );
    }
}

/// Workers, each on its own connection as each process has, take slots at once: between
/// them they hold the pool's size, each slot once.
fn racing_workers_hold_the_pool_between_them_and_never_one_slot_twice(db: &Db) {
    const SIZE: u32 = 5;
    const WORKERS: usize = 4;
    let stores: Vec<Arc<dyn Store>> = (0..WORKERS).map(|_| Arc::from(db.open())).collect();
    let start = Arc::new(std::sync::Barrier::new(WORKERS));
    let handles: Vec<_> = stores
        .into_iter()
        .enumerate()
        .map(|(i, store)| {
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                let mut held = Vec::new();
                for _ in 0..SIZE {
                    if let Some(slot) = store
                        .take_slot(EXCHANGE_REQUESTS, &format!("w{i}"), SIZE, LONG)
                        .unwrap()
                    {
                        held.push(slot.number);
                    }
                }
                held
            })
        })
        .collect();
    let held: Vec<u32> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let distinct: BTreeSet<u32> = held.iter().copied().collect();
    assert_eq!(
        held.len(),
        distinct.len(),
        "a slot was taken twice: {held:?}"
    );
    assert_eq!(distinct, (0..SIZE).collect::<BTreeSet<_>>());
}

both_backends!(
    a_pool_hands_out_its_size_and_takes_slots_back,
    a_slot_left_to_lapse_goes_to_the_next_taker,
    bad_pools_are_refused,
    racing_workers_hold_the_pool_between_them_and_never_one_slot_twice,
);
