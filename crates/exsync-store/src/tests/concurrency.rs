//! Several connections on one file, as several processes would have: writers wait for each
//! other within the busy timeout, and a lock held too long is a clear `Busy` error.

use std::time::{Duration, Instant};

use exsync_core::ItemKind;

use super::*;
use crate::StoreError;

#[test]
fn a_write_lock_held_elsewhere_is_a_busy_error_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let alice = user("alice");
    let first = SqliteStore::open(&path).unwrap();
    let mut pass = commit(&alice, 0);
    pass.upserts = vec![contact("003A", "X1", "Lovelace")];
    first.commit_pass(&pass).unwrap();

    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();

    let waiting = SqliteStore::open_with_busy_timeout(&path, Duration::from_millis(300)).unwrap();
    let started = Instant::now();
    let err = waiting.commit_pass(&commit(&alice, 10)).unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "gave up after {:?}",
        started.elapsed()
    );
    assert_eq!(
        err,
        StoreError::Busy {
            op: "commit pass",
            user: Some(alice.clone())
        }
    );
    assert!(
        err.to_string()
            .contains("commit pass for alice@example.com")
            && err.to_string().contains("locked"),
        "{err}"
    );
    // Readers are not blocked by a writer.
    assert_eq!(
        waiting.load_pairs(&alice, ItemKind::Contact).unwrap().len(),
        1
    );

    holder.execute_batch("ROLLBACK").unwrap();
    waiting.commit_pass(&commit(&alice, 10)).unwrap();
    assert_eq!(first.runs(&alice, 10).unwrap().len(), 2);
}

#[test]
fn writers_on_separate_connections_take_turns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(SqliteStore::open(&path).unwrap());
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                let store = SqliteStore::open(&path).unwrap();
                let who = user(&format!("worker{w}"));
                for i in 0..25 {
                    let mut pass = commit(&who, i);
                    pass.upserts = vec![contact(
                        &format!("003-{w}-{i}"),
                        &format!("X-{w}-{i}"),
                        "Many",
                    )];
                    pass.cursors = vec![
                        set_cursor(CursorScope::folder(&who, "contacts"), &format!("s{i}")),
                        set_cursor(CursorScope::crm_object("Contact"), &format!("w{w}-{i}")),
                    ];
                    store.commit_pass(&pass).unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let users = store.list_users().unwrap();
    assert_eq!(users.len(), 4);
    for status in users {
        assert_eq!(status.contact_pairs, 25);
        assert_eq!(store.runs(&status.user, 100).unwrap().len(), 25);
        assert_eq!(
            store
                .cursor(&CursorScope::folder(&status.user, "contacts"))
                .unwrap()
                .as_deref(),
            Some("s24")
        );
    }
    assert_eq!(store.list_cursors().unwrap().len(), 5);
}
