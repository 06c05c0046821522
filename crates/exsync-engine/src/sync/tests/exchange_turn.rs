//! Which user passes take one of the Exchange slots workers on one database share: a user
//! whose pass may send EWS requests as the service account waits for a free slot; a user Graph
//! serves by configuration sends none, so does not wait, and an org that is mostly online is not
//! held to `exchange.max_concurrency` passes at a time.

use std::time::Duration;

use exsync_ews::AccountShare;
use exsync_store::EXCHANGE_REQUESTS;

use super::super::exchange_slots::{ExchangeSlots, Turn};
use super::super::workers::WorkerOptions;
use super::*;

const ON_PREMISES: &str = "ann@x.test";
const ONLINE: &str = "bo@x.test";
const AUTO: &str = "cy@x.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_user_who_may_reach_ews_waits_for_an_exchange_slot() {
    let Some(db) = exsync_testkit::postgres::database() else {
        return;
    };
    let options = exsync_store::PgOptions::new(db.conninfo());
    let store: Arc<dyn Store> = Arc::new(
        std::thread::spawn(move || exsync_store::PgStore::open(&options).unwrap())
            .join()
            .unwrap(),
    );
    let w = world(&[ON_PREMISES, ONLINE, AUTO]);
    let rule = BackendRule::every_user(Backend::Ews)
        .with_user(UserKey::from_email(ONLINE), Backend::Graph)
        .with_auto_user(UserKey::from_email(AUTO));
    let slots = ExchangeSlots {
        share: AccountShare::new(),
        size: 1,
        metrics: Arc::new(crate::metrics::Metrics::default()),
    };
    let syncer = Syncer {
        exchange: Mailboxes::new(w.mem.clone(), w.mem.clone(), rule),
        crm: w.mem.clone(),
        store: Arc::clone(&store),
        configurations: vec![configuration(&[ON_PREMISES, ONLINE, AUTO])],
        concurrency: 4,
        slice: SLICE,
        worker: Some(
            WorkerOptions::new(Some("w".into()), Duration::from_secs(30), 10)
                .with_exchange_slots(slots),
        ),
    };
    // Another worker holds the only slot.
    let held = {
        let store = Arc::clone(&store);
        tokio::task::spawn_blocking(move || {
            store.take_slot(EXCHANGE_REQUESTS, "other", 1, Duration::from_secs(30))
        })
        .await
        .unwrap()
        .unwrap()
    };
    assert!(held.is_some(), "the other worker took the slot");

    let online = tokio::time::timeout(
        Duration::from_secs(5),
        syncer.exchange_turn(&UserKey::from_email(ONLINE), None),
    )
    .await
    .expect("a user Graph serves waited for an Exchange slot")
    .unwrap();
    assert!(matches!(online, Turn::Alone));

    for waits in [ON_PREMISES, AUTO] {
        let turn = tokio::time::timeout(
            Duration::from_secs(1),
            syncer.exchange_turn(&UserKey::from_email(waits), None),
        )
        .await;
        assert!(
            turn.is_err(),
            "{waits} started while another worker held every Exchange slot"
        );
    }
}
