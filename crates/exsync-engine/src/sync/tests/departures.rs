//! A user who leaves the sync and comes back misses nothing: what the CRM changed while they
//! were away (an edit, a delete, a new record) reaches their mailbox when they are back, in a
//! single process on SQLite and as a worker on PostgreSQL, where what waited in their inbox
//! is dropped when they leave rather than kept for ever.

use std::time::Duration;

use exsync_core::{CrmId, ItemId, ItemKind, UserKey};
use exsync_store::{Leases, RoutedChange, ORG_CRM_READ};
use serde_json::json;

use super::super::pass::on_store;
use super::super::workers::WorkerOptions;
use super::*;

const ANN: &str = "ann@x.test";
const BO: &str = "bo@x.test";

/// Bo's contacts' last names, sorted.
fn names(w: &World, user: &str) -> Vec<String> {
    let mut names: Vec<String> = w
        .mailbox(user)
        .iter()
        .map(|f| f["last_name"].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    names
}

/// Runs the scenario on `store`; `stale` is called once Bo has left, to leave something in
/// his inbox the way a read routed to him just before he left would.
async fn leave_and_come_back(
    store: Arc<dyn Store>,
    worker: Option<WorkerOptions>,
    stale: impl AsyncFnOnce(&str),
) {
    let w = world(&[ANN, BO]);
    let syncer = |users: &[&str]| {
        Arc::new(Syncer {
            exchange: w.mem.clone(),
            crm: w.mem.clone(),
            store: Arc::clone(&store),
            configurations: vec![configuration(users)],
            concurrency: 4,
            slice: SLICE,
            worker: worker.clone(),
        })
    };
    let (both, ann_only) = (syncer(&[ANN, BO]), syncer(&[ANN]));
    let pass = |s: &Arc<Syncer<Mem, Mem>>| {
        let s = Arc::clone(s);
        async move {
            let report = s.run_pass(&PassOptions::default()).await.unwrap();
            assert_eq!(report.failed_users(), 0, "{report:?}");
        }
    };
    let stay = w.crm_create(1, person("Stay", "s@x.test"));
    let edit = w.crm_create(1, person("Edit", "e@x.test"));
    let gone = w.crm_create(1, person("Gone", "g@x.test"));
    pass(&both).await;
    assert_eq!(names(&w, BO), ["Edit", "Gone", "Stay"]);

    // Bo leaves the configuration; while he is away the CRM changes his records.
    pass(&ann_only).await;
    stale(stay.as_str()).await;
    w.crm_edit(&edit, "last_name", json!("Edited"));
    w.crm_delete(&gone);
    w.crm_create(1, person("New", "n@x.test"));
    pass(&ann_only).await;
    assert_eq!(
        names(&w, BO),
        ["Edit", "Gone", "Stay"],
        "nothing synced while away"
    );
    let bo = UserKey::new(BO);
    let marked = {
        let bo = bo.clone();
        on_store(&store, move |s| s.full_read_due(&bo))
            .await
            .unwrap()
    };
    assert!(marked.is_some(), "Bo was not marked when he left");

    // Back: everything that happened meanwhile reaches his mailbox, and only that.
    pass(&both).await;
    assert_eq!(names(&w, BO), ["Edited", "New", "Stay"]);
    let due = on_store(&store, move |s| s.full_read_due(&bo))
        .await
        .unwrap();
    assert_eq!(due, None, "the mark stays after the full read");
    pass(&both).await;
    assert_eq!(names(&w, BO), ["Edited", "New", "Stay"]);
    assert_eq!(w.crm_records(1).len(), 3, "the CRM is left as it was");
}

#[tokio::test]
async fn a_user_back_in_the_sync_gets_what_changed_while_away() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("state.db")).unwrap());
    leave_and_come_back(store, None, async |_: &str| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_drops_the_inbox_of_a_user_who_left_and_he_misses_nothing_when_back() {
    let Some(db) = exsync_testkit::postgres::database() else {
        return;
    };
    let open = || {
        let options = exsync_store::PgOptions::new(db.conninfo());
        std::thread::spawn(move || exsync_store::PgStore::open(&options).unwrap())
            .join()
            .unwrap()
    };
    let store: Arc<dyn Store> = Arc::new(open());
    let worker = WorkerOptions::new(Some("w".into()), Duration::from_secs(30), 10);
    // What an org read routed to Bo just before he left: a delete of a record he still has.
    let reader = Arc::new(open());
    let psql = |sql: &str| db.psql(sql);
    let stale = async |stay: &str| {
        let (reader, stay) = (Arc::clone(&reader), stay.to_owned());
        let (before, after) = tokio::task::spawn_blocking(move || {
            let lease = reader
                .acquire_org(
                    "reader",
                    ORG_CRM_READ,
                    Duration::from_secs(30),
                    Duration::ZERO,
                )
                .unwrap()
                .unwrap();
            let routed = RoutedChange {
                user: UserKey::new(BO),
                kind: ItemKind::Contact,
                change: Change::Deleted {
                    id: ItemId::Crm(CrmId::new(stay)),
                },
                notes: Vec::new(),
            };
            let before = reader.crm_inbox(&UserKey::new(BO), 10).unwrap().len();
            reader
                .deliver_crm_read(&[routed], &[], chrono::Utc::now())
                .unwrap();
            let after = reader.crm_inbox(&UserKey::new(BO), 10).unwrap().len();
            reader.release(&lease).unwrap();
            (before, after)
        })
        .await
        .unwrap();
        assert_eq!((before, after), (0, 1));
    };
    leave_and_come_back(Arc::clone(&store), Some(worker), stale).await;
    assert_eq!(
        psql("SELECT count(*) FROM crm_inbox"),
        "0",
        "routed changes left behind"
    );
}
