//! End to end: the sync service against both simulators through the real connectors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use exsync::lab::{Lab, LabOptions, Seed};
use exsync::sync::service::PassOptions;

async fn settle() {
    // The CRM connector leaves records stamped within the last second for the next pass.
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_converge_and_a_second_pass_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::start(LabOptions::new(dir.path(), 2)).await.unwrap();
    lab.seed(&Seed {
        crm_contacts: 6,
        crm_events: 12,
        exchange_contacts: 3,
        exchange_events: 4,
        invalid_record: true,
    })
    .await
    .unwrap();
    settle().await;
    let first = lab.syncer.run_pass(&PassOptions::default()).await.unwrap();
    assert_eq!(first.failed_users(), 0, "{first:#?}");
    settle().await;
    let second = lab.syncer.run_pass(&PassOptions::default()).await.unwrap();
    let writes: Vec<_> = second
        .users
        .iter()
        .map(|u| (u.user.clone(), u.counts))
        .collect();
    let check = lab.convergence().await.unwrap();
    assert!(check.converged(), "{:#?}", check.problems);
    assert!(
        second
            .users
            .iter()
            .all(|u| u.counts.created + u.counts.updated + u.counts.deleted == 0),
        "second pass wrote: {writes:#?}"
    );
    assert_eq!(
        check.unresolved, 2,
        "the nameless Exchange contact of each user waits with its reason"
    );
}
