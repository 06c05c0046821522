//! A series deleted in Outlook while exsync was stopped: each pass is an `exsync sync` process
//! of its own, so nothing the pass before learnt in memory is left when the next one reads the
//! mailbox's changes. Graph names a deleted series only by its occurrences' ids, which the new
//! process has never seen; the CRM copy must still go in that pass, not wait for a full listing.

use crate::fidelity::{sync, IDLE};
use crate::{on_each_backend, MASTER_KEY};
use exsync_core::ItemKind;
use exsync_engine::sync::mailboxes::Backend;
use exsync_lab::{Lab, Seed};

/// The CRM-made weekly series the lab seeds first.
const SERIES: &str = "CRM meeting 0.0";

on_each_backend!(a_series_deleted_while_exsync_was_stopped_goes_in_the_next_pass);

async fn a_series_deleted_while_exsync_was_stopped_goes_in_the_next_pass(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::start(crate::lab_options(dir.path().join("lab"), 1, backend))
        .await
        .unwrap();
    lab.seed(&Seed {
        crm_events: 3,
        ..Seed::default()
    })
    .await
    .unwrap();
    let config = dir.path().join("exsync.toml");
    lab.write_config(&config, MASTER_KEY).unwrap();
    let user = &lab.users[0];

    let first = sync(&config).await;
    assert!(first.contains("created 3"), "{first}");
    let copy = lab
        .exchange_item(user, ItemKind::Event, SERIES)
        .await
        .unwrap();
    assert!(
        copy.fields.get("recurrence").is_some_and(|r| !r.is_null()),
        "the Outlook copy is a series: {:?}",
        copy.fields
    );
    // The pass after the first reads the series' occurrences among its own writes; this
    // process then ends, as the service would be stopped.
    let second = sync(&config).await;
    assert!(second.contains(IDLE), "{second}");

    lab.delete_exchange(user, ItemKind::Event, SERIES)
        .await
        .unwrap();

    let third = sync(&config).await;
    assert!(
        third.contains("created 0 updated 0 deleted 1 "),
        "the series' deletion reaches the CRM in the first pass after the restart: {third}"
    );
    assert!(
        lab.crm_record(user, ItemKind::Event, SERIES).await.is_err(),
        "the CRM event of the deleted series is gone"
    );
    for other in ["CRM meeting 0.1", "CRM meeting 0.2"] {
        lab.crm_record(user, ItemKind::Event, other).await.unwrap();
        lab.exchange_item(user, ItemKind::Event, other)
            .await
            .unwrap();
    }
    let fourth = sync(&config).await;
    assert!(fourth.contains(IDLE), "{fourth}");
}
