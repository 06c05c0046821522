//! Faults injected into the simulators during passes: the passes finish later with nothing lost
//! or copied twice, and a user's status says why while it waits.

use std::time::Duration;

use exsync_core::ItemKind;
use exsync_engine::sync::service::{PassOptions, PassReport};
use exsync_lab::{crm_contact, Lab, LabOptions, Seed};
use reqwest::Method;
use serde_json::{json, Value};

async fn start(dir: &std::path::Path) -> Lab {
    let lab = Lab::start(LabOptions::new(dir, 2)).await.unwrap();
    lab.seed(&Seed {
        crm_contacts: 10,
        crm_events: 4,
        exchange_contacts: 3,
        exchange_events: 2,
        invalid_record: false,
    })
    .await
    .unwrap();
    pass(&lab).await;
    pass(&lab).await;
    assert_converged(&lab).await;
    lab
}

async fn pass(lab: &Lab) -> PassReport {
    tokio::time::sleep(lab.options.crm_settle + Duration::from_millis(100)).await;
    lab.syncer.run_pass(&PassOptions::default()).await.unwrap()
}

async fn assert_converged(lab: &Lab) {
    let check = lab.convergence().await.unwrap();
    assert!(check.converged(), "{:#?}", check.problems);
    assert_eq!(check.unresolved, 0, "nothing left waiting");
}

/// An edit on each side for every user, marked with `round`.
async fn edit_both_sides(lab: &Lab, round: usize) {
    for (u, user) in lab.users.iter().enumerate() {
        lab.edit_crm(user, ItemKind::Contact, &crm_contact(u, 0).last_name, |f| {
            f.insert("title".into(), json!(format!("Title {round}")));
        })
        .await
        .unwrap();
        lab.edit_exchange(user, ItemKind::Contact, &crm_contact(u, 1).last_name, |f| {
            f.insert("department".into(), json!(format!("Dept {round}")));
        })
        .await
        .unwrap();
    }
}

async fn assert_edits_arrived(lab: &Lab, round: usize) {
    for (u, user) in lab.users.iter().enumerate() {
        let copy = lab
            .exchange_item(user, ItemKind::Contact, &crm_contact(u, 0).last_name)
            .await
            .unwrap();
        assert_eq!(copy.fields["title"], format!("Title {round}"));
        let record = lab
            .crm_record(user, ItemKind::Contact, &crm_contact(u, 1).last_name)
            .await
            .unwrap();
        assert_eq!(record.fields["department"], format!("Dept {round}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_faults_delay_passes_but_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lab = start(dir.path()).await;
    let faults: [Value; 4] = [
        json!({ "server_busy": { "count": 3, "value": 50 } }),
        json!({ "http_503": { "count": 2, "value": 1 } }),
        json!({ "drop_connection": { "count": 2 } }),
        json!({ "malformed_reply": { "count": 2 } }),
    ];
    for (round, fault) in faults.iter().enumerate() {
        edit_both_sides(&lab, round).await;
        lab.exchange_control(Method::PUT, "/faults", fault)
            .await
            .unwrap();
        pass(&lab).await;
        lab.exchange_control(Method::DELETE, "/faults", &json!({}))
            .await
            .unwrap();
        pass(&lab).await;
        pass(&lab).await;
        assert_converged(&lab).await;
        assert_edits_arrived(&lab, round).await;
    }
    // The metrics saw the requests by endpoint and outcome, and the waits the server asked for.
    let metrics = lab.metrics.render();
    for expected in [
        r#"exsync_requests_total{side="exchange",endpoint="SyncFolderItems",outcome="ok"}"#,
        r#"exsync_requests_total{side="exchange",endpoint="UpdateItem",outcome="ok"}"#,
        r#"exsync_requests_total{side="crm",endpoint="query",outcome="ok"}"#,
        r#"exsync_throttle_wait_seconds_total{side="exchange"}"#,
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from:\n{metrics}"
        );
    }
    assert!(
        metrics.contains(r#"outcome="throttled""#) || metrics.contains(r#"outcome="http_503""#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_mailbox_shows_why_and_catches_up_later() {
    let dir = tempfile::tempdir().unwrap();
    let lab = start(dir.path()).await;
    edit_both_sides(&lab, 1).await;
    // Every connection is dropped: no retry can get through.
    lab.exchange_control(
        Method::PUT,
        "/faults",
        &json!({ "drop_connection": { "count": 10_000 } }),
    )
    .await
    .unwrap();
    let report = pass(&lab).await;
    assert_eq!(report.failed_users(), 2, "{report:#?}");
    for user in &lab.users {
        let status = lab.syncer.store.user_status(&user.key).unwrap().unwrap();
        let error = status
            .last_run
            .as_ref()
            .and_then(|r| r.error.clone())
            .unwrap_or_default();
        assert!(error.contains("Exchange"), "the status says why: {error}");
        // The CRM edit read in this pass waits as an unresolved item, so it is not lost when
        // the org-wide cursor moves on.
        assert!(status.unresolved >= 1, "{status:?}");
    }
    lab.exchange_control(Method::DELETE, "/faults", &json!({}))
        .await
        .unwrap();
    pass(&lab).await;
    pass(&lab).await;
    assert_converged(&lab).await;
    assert_edits_arrived(&lab, 1).await;
    for user in &lab.users {
        let status = lab.syncer.store.user_status(&user.key).unwrap().unwrap();
        assert_eq!(status.last_run.and_then(|r| r.error), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_faults_expired_tokens_errors_and_the_api_limit() {
    let dir = tempfile::tempdir().unwrap();
    let lab = start(dir.path()).await;

    // An expired session is refreshed without the pass noticing.
    edit_both_sides(&lab, 1).await;
    lab.crm_control(Method::POST, "/expire-tokens", &json!({}))
        .await
        .unwrap();
    let report = pass(&lab).await;
    assert!(
        report.crm_error.is_none() && report.failed_users() == 0,
        "{report:#?}"
    );
    assert_edits_arrived(&lab, 1).await;

    // Server errors and dropped connections are retried.
    edit_both_sides(&lab, 2).await;
    lab.crm_control(
        Method::POST,
        "/faults",
        &json!({ "fail_next": 2, "drop_next": 1 }),
    )
    .await
    .unwrap();
    let report = pass(&lab).await;
    assert!(report.crm_error.is_none(), "{report:#?}");
    pass(&lab).await;
    assert_converged(&lab).await;
    assert_edits_arrived(&lab, 2).await;

    // An exhausted allowance stops the pass before it starts, with the reason; nothing is lost.
    edit_both_sides(&lab, 3).await;
    lab.crm_control(Method::POST, "/limits", &json!({ "exhaust": true }))
        .await
        .unwrap();
    let report = pass(&lab).await;
    let error = report.crm_error.expect("the pass stops").to_string();
    assert!(error.contains("allowance"), "{error}");
    lab.crm_control(Method::POST, "/limits", &json!({ "used": 0 }))
        .await
        .unwrap();
    pass(&lab).await;
    pass(&lab).await;
    assert_converged(&lab).await;
    assert_edits_arrived(&lab, 3).await;
}
