//! A pass that dies in the middle of a write call, then a person's edit or delete on either
//! side of the record involved, then a clean pass: the edit is kept, the delete propagates,
//! nothing is duplicated, nothing is recreated, and no conflict is made up. The crash is
//! deterministic: the side's write call never returns and the test drops the pass, so
//! nothing after that point is committed, as when the process is killed.

use std::sync::Arc;

use exsync_core::{ItemKind, Side};
use serde_json::json;
use tokio::sync::Notify;

use super::*;

const ANN: &str = "ann@example.com";

/// Runs a pass that crashes in its next write call to `side`.
async fn crash_during_pass(w: &World, side: Side, at: CrashAt) {
    let crashed = Arc::new(Notify::new());
    w.mem.faults.lock().unwrap().crash = Some(Crash {
        side,
        at,
        skip: 0,
        crashed: Arc::clone(&crashed),
    });
    tokio::select! {
        _ = w.pass() => panic!("the pass was to crash in a write to {side}, but it ended"),
        () = crashed.notified() => {}
    }
}

impl World {
    fn field_in_mailbox(&self, user: &str, id: &str, field: &str) -> serde_json::Value {
        self.mem.mailboxes.lock().unwrap()[user].records[id].1[field].clone()
    }

    fn field_in_crm(&self, id: &str, field: &str) -> serde_json::Value {
        self.mem.crm.lock().unwrap().records[id].1[field].clone()
    }

    /// After a clean pass: the journal is settled, no conflict was recorded, and a further
    /// pass writes nothing.
    async fn settles_quietly(&self, user: &str) {
        let store = &self.syncer.store;
        let key = UserKey::new(user);
        assert!(
            store.intents(&key, ItemKind::Contact).unwrap().is_empty(),
            "the journal is settled"
        );
        assert!(
            store.conflicts(&key, 10).unwrap().is_empty(),
            "only one side changed, so nothing conflicted: {:?}",
            store.conflicts(&key, 10).unwrap()
        );
        let again = self.pass().await;
        let counts = &again.users[0].counts;
        assert_eq!(
            (
                counts.created,
                counts.updated,
                counts.deleted,
                counts.failures
            ),
            (0, 0, 0, 0),
            "a further pass writes nothing"
        );
    }
}

#[tokio::test]
async fn an_outlook_edit_of_a_copy_made_before_a_crash_reaches_the_crm() {
    let w = world(&[ANN]);
    let source = w.crm_create(0, person("Ng", "ng@example.com"));
    crash_during_pass(&w, Side::Exchange, CrashAt::Answered).await;
    let [copy] = w.mailbox_ids(ANN).try_into().unwrap();
    w.mailbox_edit(ANN, &copy, "first_name", json!("Patricia"));

    let report = w.pass().await;
    assert_eq!(report.users[0].recovered_pairs, 1);
    let metrics = crate::metrics::Metrics::default();
    super::super::daemon::record(&metrics, &report, std::time::Duration::from_secs(1));
    assert!(
        metrics.render().contains("exsync_recovered_writes_total 1"),
        "{}",
        metrics.render()
    );
    // Under `crm_wins`, a copy with no last-synced state lost this edit to the CRM's copy.
    assert_eq!(w.field_in_crm(&source, "first_name"), json!("Patricia"));
    assert_eq!(
        w.field_in_mailbox(ANN, &copy, "first_name"),
        json!("Patricia")
    );
    assert_eq!((w.crm_ids().len(), w.mailbox_ids(ANN).len()), (1, 1));
    w.settles_quietly(ANN).await;
}

#[tokio::test]
async fn a_crm_edit_after_a_crash_reaches_the_copy_without_a_conflict() {
    let w = world(&[ANN]);
    let source = w.crm_create(0, person("Ng", "ng@example.com"));
    crash_during_pass(&w, Side::Exchange, CrashAt::Answered).await;
    let [copy] = w.mailbox_ids(ANN).try_into().unwrap();
    w.crm_edit(&source, "last_name", json!("Ngata"));

    w.pass().await;
    assert_eq!(w.field_in_mailbox(ANN, &copy, "last_name"), json!("Ngata"));
    assert_eq!(w.mailbox_ids(ANN).len(), 1);
    w.settles_quietly(ANN).await;
}

#[tokio::test]
async fn deleting_the_crm_original_after_a_crash_deletes_the_copy_instead_of_copying_it_back() {
    let w = world(&[ANN]);
    let source = w.crm_create(0, person("Ng", "ng@example.com"));
    crash_during_pass(&w, Side::Exchange, CrashAt::Answered).await;
    assert_eq!(w.mailbox_ids(ANN).len(), 1);
    w.crm_delete(&source);

    w.pass().await;
    assert!(
        w.crm_ids().is_empty(),
        "the copy was not made into a new CRM record: {:?}",
        w.crm_records(0)
    );
    assert!(w.mailbox_ids(ANN).is_empty(), "the delete reached the copy");
    w.settles_quietly(ANN).await;
}

#[tokio::test]
async fn a_copy_deleted_after_a_crash_is_not_made_again() {
    let w = world(&[ANN]);
    let source = w.crm_create(0, person("Ng", "ng@example.com"));
    crash_during_pass(&w, Side::Exchange, CrashAt::Answered).await;
    let [copy] = w.mailbox_ids(ANN).try_into().unwrap();
    w.mailbox_delete(ANN, &copy);

    w.pass().await;
    assert!(w.mailbox_ids(ANN).is_empty(), "the copy was not made again");
    // The copy was a synced copy: its deletion goes where any synced copy's would, here
    // (both ways, deletes propagate) to the CRM.
    assert!(!w.crm_ids().contains(&source));
    w.settles_quietly(ANN).await;
}

#[tokio::test]
async fn a_create_lost_on_the_way_is_made_once() {
    let w = world(&[ANN]);
    w.crm_create(0, person("Ng", "ng@example.com"));
    crash_during_pass(&w, Side::Exchange, CrashAt::Sent).await;
    assert!(w.mailbox_ids(ANN).is_empty());
    let key = UserKey::new(ANN);
    let journaled = w.syncer.store.intents(&key, ItemKind::Contact).unwrap();
    assert!(
        journaled.len() == 1 && journaled[0].sent,
        "the create is journaled as sent: {journaled:?}"
    );

    w.pass().await;
    assert_eq!(w.mailbox_ids(ANN).len(), 1);
    w.settles_quietly(ANN).await;
}

#[tokio::test]
async fn a_crash_after_journaling_and_before_sending_writes_it_once() {
    let w = world(&[ANN]);
    w.mailbox_create(ANN, person("Ng", "ng@example.com"));
    // The CRM call crashes before it is made; the journal holds the create as sent, yet
    // nothing carries its tag: the CRM's answer decides.
    crash_during_pass(&w, Side::Crm, CrashAt::Sent).await;
    assert!(w.crm_ids().is_empty());
    w.pass().await;
    assert_eq!(w.crm_ids().len(), 1);
    w.settles_quietly(ANN).await;
}

#[tokio::test]
async fn an_outlook_edit_after_a_crash_reaches_the_crm_copy_made_before_it() {
    let w = world(&[ANN]);
    let original = w.mailbox_create(ANN, person("Ng", "ng@example.com"));
    crash_during_pass(&w, Side::Crm, CrashAt::Answered).await;
    let [copy] = w.crm_ids().try_into().unwrap();
    w.mailbox_edit(ANN, &original, "first_name", json!("Patricia"));

    w.pass().await;
    // Under `crm_wins`, the CRM copy with no last-synced state overwrote this edit.
    assert_eq!(w.field_in_crm(&copy, "first_name"), json!("Patricia"));
    assert_eq!(
        w.field_in_mailbox(ANN, &original, "first_name"),
        json!("Patricia")
    );
    assert_eq!((w.crm_ids().len(), w.mailbox_ids(ANN).len()), (1, 1));
    w.settles_quietly(ANN).await;
}

#[tokio::test]
async fn a_batch_that_failed_after_writing_is_paired_next_pass() {
    let w = world(&[ANN]);
    let source = w.crm_create(0, person("Ng", "ng@example.com"));
    w.mem.faults.lock().unwrap().crash = Some(Crash {
        side: Side::Exchange,
        at: CrashAt::FailedAfterWriting,
        skip: 0,
        crashed: Arc::new(Notify::new()),
    });
    let first = w.pass().await;
    assert_eq!(first.users[0].counts.failures, 1, "{:?}", first.users[0]);
    let [copy] = w.mailbox_ids(ANN).try_into().unwrap();
    w.mailbox_edit(ANN, &copy, "first_name", json!("Patricia"));

    let second = w.pass().await;
    assert_eq!(second.users[0].recovered_pairs, 1);
    assert_eq!(
        w.mailbox_ids(ANN).len(),
        1,
        "the retried create found its copy"
    );
    assert_eq!(w.field_in_crm(&source, "first_name"), json!("Patricia"));
    w.settles_quietly(ANN).await;
}

#[tokio::test]
async fn an_update_cut_short_keeps_the_edits_made_since_on_both_sides() {
    let w = world(&[ANN]);
    let source = w.crm_create(0, person("Ng", "ng@example.com"));
    w.pass().await;
    let [copy] = w.mailbox_ids(ANN).try_into().unwrap();
    w.crm_edit(&source, "last_name", json!("Ngata"));
    crash_during_pass(&w, Side::Exchange, CrashAt::Answered).await;
    assert_eq!(w.field_in_mailbox(ANN, &copy, "last_name"), json!("Ngata"));
    w.mailbox_edit(ANN, &copy, "first_name", json!("Patricia"));

    w.pass().await;
    for (side, value) in [
        ("crm", w.field_in_crm(&source, "first_name")),
        ("mailbox", w.field_in_mailbox(ANN, &copy, "first_name")),
    ] {
        assert_eq!(value, json!("Patricia"), "{side}");
    }
    assert_eq!(w.field_in_crm(&source, "last_name"), json!("Ngata"));
    w.settles_quietly(ANN).await;
}

#[tokio::test]
async fn a_second_outlook_edit_after_an_update_cut_short_wins_over_the_first() {
    let w = world(&[ANN]);
    let source = w.crm_create(0, person("Ng", "ng@example.com"));
    w.pass().await;
    let [copy] = w.mailbox_ids(ANN).try_into().unwrap();
    w.mailbox_edit(ANN, &copy, "department", json!("Dept 10"));
    // The CRM takes "Dept 10"; the pass dies before storing that it did.
    crash_during_pass(&w, Side::Crm, CrashAt::Answered).await;
    assert_eq!(w.field_in_crm(&source, "department"), json!("Dept 10"));
    w.mailbox_edit(ANN, &copy, "department", json!("Dept 12"));

    w.pass().await;
    // Against the state before the update, both sides changed the department and `crm_wins`
    // put "Dept 10" back over the person's newer edit.
    assert_eq!(w.field_in_crm(&source, "department"), json!("Dept 12"));
    assert_eq!(
        w.field_in_mailbox(ANN, &copy, "department"),
        json!("Dept 12")
    );
    w.settles_quietly(ANN).await;
}

#[tokio::test]
async fn a_crm_delete_after_a_first_pass_died_midway_reaches_the_copies_it_made() {
    let w = world(&[ANN]);
    let sources: Vec<String> = ["Ng", "Oh", "Pe", "Qu"]
        .iter()
        .map(|last| w.crm_create(0, person(last, &format!("{last}@example.com"))))
        .collect();
    // The first slice (three records, two write calls) is committed; the pass dies in the
    // next slice's write, before any cursor is stored.
    let crashed = Arc::new(Notify::new());
    w.mem.faults.lock().unwrap().crash = Some(Crash {
        side: Side::Exchange,
        at: CrashAt::Sent,
        skip: 2,
        crashed: Arc::clone(&crashed),
    });
    tokio::select! {
        _ = w.pass() => panic!("the pass was to crash in its third write call"),
        () = crashed.notified() => {}
    }
    assert_eq!(w.mailbox_ids(ANN).len(), 3);
    w.crm_delete(&sources[0]);

    // The next pass reads Ann's records in full again; the deleted one is simply not among
    // them, and its copy goes.
    w.pass().await;
    assert_eq!((w.crm_ids().len(), w.mailbox_ids(ANN).len()), (3, 3));
    assert!(
        w.mailbox(ANN).iter().all(|f| f["last_name"] != json!("Ng")),
        "the deleted record's copy is gone: {:?}",
        w.mailbox(ANN)
    );
    w.settles_quietly(ANN).await;
}

/// Runs a pass whose write call to `side` after `skip` others never returns, and lets the
/// batches answered before it settle before the pass is dropped.
async fn crash_after_settling(w: &World, side: Side, skip: usize) {
    let crashed = Arc::new(Notify::new());
    w.mem.faults.lock().unwrap().crash = Some(Crash {
        side,
        at: CrashAt::Sent,
        skip,
        crashed: Arc::clone(&crashed),
    });
    let pass = w.pass();
    tokio::pin!(pass);
    tokio::select! {
        _ = &mut pass => panic!("the pass was to crash in a write to {side}, but it ended"),
        () = crashed.notified() => {}
    }
    // The hung call holds back only its own batch and those after it.
    let settling = tokio::time::timeout(std::time::Duration::from_millis(500), &mut pass);
    assert!(settling.await.is_err(), "the crashed pass ended");
}

/// Removes a copy as a backend does that reports an item created and deleted since a cursor
/// as nothing at all: from the folder and from its change log.
fn mailbox_vanish(w: &World, user: &str, id: &str) {
    let mut boxes = w.mem.mailboxes.lock().unwrap();
    let mailbox = boxes.get_mut(user).unwrap();
    mailbox.records.remove(id);
    mailbox.log.retain(|logged| logged != id);
}

/// The created-item chunks stored beside the user's contact folder cursor, by name.
fn created_chunks(w: &World) -> BTreeMap<String, Vec<String>> {
    w.syncer
        .store
        .list_cursors()
        .unwrap()
        .into_iter()
        .filter_map(|c| match c.scope {
            exsync_store::CursorScope::Folder { folder, .. }
                if folder.starts_with("contact.created.") =>
            {
                Some((folder, serde_json::from_str(&c.value).unwrap()))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_copy_made_before_a_crash_and_deleted_unseen_is_deleted_in_the_crm() {
    let w = world(&[ANN]);
    // A pass over nothing stores the folder's cursor, so the next pass reads from it.
    w.pass().await;
    let scope = folder_cursor(&UserKey::new(ANN), ItemKind::Contact);
    let cursor = w.syncer.store.cursor(&scope).unwrap();
    assert!(cursor.is_some());
    let sources: Vec<String> = (0..7)
        .map(|i| w.crm_create(0, person(&format!("P{i}"), &format!("p{i}@example.com"))))
        .collect();

    // The first batches of copies are committed (a slice of three records goes in batches of
    // two and one), then the third write call hangs.
    crash_after_settling(&w, Side::Exchange, 2).await;
    // The cursor did not move and was not rewritten: each committed batch's copies went
    // beside it, in a chunk of their own.
    assert_eq!(w.syncer.store.cursor(&scope).unwrap(), cursor);
    let chunks = created_chunks(&w);
    // Batches go out two at a time, so the call that hangs may be the third batch's or the
    // fourth's: the two or three batches settled before it each made one chunk, numbered on.
    let names: Vec<&str> = chunks.keys().map(String::as_str).collect();
    let numbered: Vec<String> = (1..=chunks.len())
        .map(|n| format!("contact.created.{n}"))
        .collect();
    assert!((2..=3).contains(&chunks.len()), "{names:?}");
    assert_eq!(names, numbered);
    let copies = w.mailbox_ids(ANN);
    assert!(
        chunks.values().flatten().all(|id| copies.contains(id)),
        "{chunks:?} {copies:?}"
    );

    // A person deletes the first copy, and the folder's changes since the cursor do not say.
    let vanished = chunks["contact.created.1"][0].clone();
    let source = w.mem.mailboxes.lock().unwrap()[ANN].records[&vanished]
        .2
        .clone()
        .unwrap();
    mailbox_vanish(&w, ANN, &vanished);

    w.pass().await;
    // Its original is deleted (not copied again), every other record has one copy, and the
    // chunks are folded into the cursor and gone.
    let left = w.crm_ids();
    assert!(!left.contains(&source.as_str().to_owned()), "{left:?}");
    assert_eq!(left.len(), sources.len() - 1);
    assert_eq!(w.mailbox_ids(ANN).len(), sources.len() - 1);
    assert!(created_chunks(&w).is_empty());
    w.settles_quietly(ANN).await;
}
