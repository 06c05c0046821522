//! Shared budgets: draws stop at the limit, reports raise the use within a window and set it
//! after, and workers racing on their own connections for the last calls never take more than
//! the limit between them.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::*;
use crate::{BudgetLevel, Draw, CRM_API_CALLS};

const LONG: Duration = Duration::from_secs(600);

fn level(used: u64, max: u64, reserve: u64) -> BudgetLevel {
    BudgetLevel { used, max, reserve }
}

fn draws_stop_at_the_limit_and_nothing_is_taken_before_a_report(db: &Db) {
    let store = db.open();
    assert_eq!(store.draw_budget(CRM_API_CALLS, 1).unwrap(), Draw::Unknown);
    assert_eq!(store.budget(CRM_API_CALLS).unwrap(), None);

    store
        .report_budget(CRM_API_CALLS, level(5, 10, 2), LONG)
        .unwrap();
    assert_eq!(
        store.draw_budget(CRM_API_CALLS, 3).unwrap(),
        Draw::Granted(level(8, 10, 2))
    );
    // The reserve is never drawn from, and a refused draw takes nothing.
    assert_eq!(
        store.draw_budget(CRM_API_CALLS, 1).unwrap(),
        Draw::Refused(level(8, 10, 2))
    );
    assert_eq!(store.budget(CRM_API_CALLS).unwrap(), Some(level(8, 10, 2)));
    // Another budget is another row.
    assert_eq!(store.draw_budget("other", 1).unwrap(), Draw::Unknown);
    // Counts past any real allowance are capped, not overflowed.
    store
        .report_budget("huge", level(u64::MAX, u64::MAX, 0), LONG)
        .unwrap();
    assert!(matches!(
        store.draw_budget("huge", u64::MAX).unwrap(),
        Draw::Refused(_)
    ));
}

fn reports_raise_the_use_within_a_window_and_set_it_once_the_window_ended(db: &Db) {
    let store = db.open();
    let window = Duration::from_millis(400);
    store
        .report_budget(CRM_API_CALLS, level(5, 100, 0), window)
        .unwrap();
    assert!(matches!(
        store.draw_budget(CRM_API_CALLS, 2).unwrap(),
        Draw::Granted(l) if l.used == 7
    ));
    // What a report leaves in the row.
    let report = |l: BudgetLevel| {
        store.report_budget(CRM_API_CALLS, l, window).unwrap();
        store.budget(CRM_API_CALLS).unwrap().unwrap()
    };
    // A report from before those two calls were made must not hand them back.
    assert_eq!(report(level(6, 100, 0)).used, 7);
    assert_eq!(report(level(9, 120, 10)), level(9, 120, 10));
    // Once the window has ended, what the CRM reports is the use: calls that left its rolling
    // period come back.
    thread::sleep(window + Duration::from_millis(100));
    assert_eq!(report(level(3, 120, 10)).used, 3);
    // And a new window has begun.
    assert_eq!(report(level(1, 120, 10)).used, 3);
}

/// Workers, each on its own connection as each process has, draw the last calls at once:
/// between them they take exactly what was left.
fn racing_workers_never_take_more_than_the_limit(db: &Db) {
    const LEFT: u64 = 60;
    const WORKERS: usize = 4;
    let first = db.open();
    first
        .report_budget(CRM_API_CALLS, level(40, 120, 20), LONG)
        .unwrap();
    let stores: Vec<Arc<dyn Store>> = (0..WORKERS).map(|_| Arc::from(db.open())).collect();
    let start = Arc::new(std::sync::Barrier::new(WORKERS));
    let handles: Vec<_> = stores
        .into_iter()
        .enumerate()
        .map(|(i, store)| {
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                let mut taken = 0;
                // Bounded, so a budget that never refuses ends the test with a wrong sum.
                for round in 0..LEFT {
                    let n = 1 + (i as u64 + round) % 3;
                    match store.draw_budget(CRM_API_CALLS, n).unwrap() {
                        Draw::Granted(l) => {
                            assert!(l.used <= l.limit(), "{l:?}");
                            taken += n;
                        }
                        Draw::Refused(l) => assert!(l.used + n > l.limit(), "{l:?}"),
                        Draw::Unknown => panic!("the budget was reported"),
                    }
                }
                taken
            })
        })
        .collect();
    let taken: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(taken <= LEFT, "took {taken} of {LEFT}");
    // The draws of 1 use up whatever the larger ones left.
    assert_eq!(taken, LEFT);
    assert_eq!(
        first.budget(CRM_API_CALLS).unwrap(),
        Some(level(100, 120, 20))
    );
}

both_backends!(
    draws_stop_at_the_limit_and_nothing_is_taken_before_a_report,
    reports_raise_the_use_within_a_window_and_set_it_once_the_window_ended,
    racing_workers_never_take_more_than_the_limit,
);
