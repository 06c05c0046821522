//! Faults injected into the simulators during passes: the passes finish later with nothing lost
//! or copied twice, and a user's status says why while it waits. Exchange Online's own
//! (throttling with `Retry-After`, 503 and 504, expired delta and access tokens, a mailbox that
//! leaves the app's scope) through the Graph simulator.

use std::time::Duration;

use exsync_core::ItemKind;
use exsync_engine::sync::mailboxes::Backend;
use exsync_engine::sync::service::{PassOptions, PassReport};
use exsync_lab::{crm_contact, Lab, Seed};
use reqwest::Method;
use serde_json::{json, Value};

async fn start(dir: &std::path::Path) -> Lab {
    start_on(dir, Backend::Ews).await
}

async fn start_on(dir: &std::path::Path, backend: Backend) -> Lab {
    let lab = Lab::start(crate::lab_options(dir, 2, backend))
        .await
        .unwrap();
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

/// Exchange Online's faults during passes with edits on both sides: throttling with and without
/// `Retry-After`, 503 and 504, dropped and malformed replies, delta tokens and access tokens
/// that expire. Each pass may be slower; nothing is lost or copied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_faults_delay_passes_but_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lab = start_on(dir.path(), Backend::Graph).await;
    let faults: [Value; 6] = [
        json!({ "status": 429, "retry_after": 1, "count": 3 }),
        json!({ "status": 429, "count": 2 }),
        json!({ "status": 503, "count": 2 }),
        json!({ "status": 504, "count": 2 }),
        json!({ "drop": true, "count": 2 }),
        json!({ "malformed": true, "count": 2 }),
    ];
    for (round, fault) in faults.iter().enumerate() {
        edit_both_sides(&lab, round).await;
        lab.graph_control(Method::POST, "/faults", fault)
            .await
            .unwrap();
        pass(&lab).await;
        lab.graph_control(Method::DELETE, "/faults", &json!({}))
            .await
            .unwrap();
        pass(&lab).await;
        assert_converged(&lab).await;
        assert_edits_arrived(&lab, round).await;
    }
    // Expired delta tokens: the next pass lists from the start and deletes nothing.
    let round = faults.len();
    edit_both_sides(&lab, round).await;
    for user in &lab.users {
        let path = format!("/mailboxes/{}/expire-delta-tokens", user.key);
        lab.graph_control(Method::POST, &path, &json!({}))
            .await
            .unwrap();
    }
    let report = pass(&lab).await;
    assert!(
        report
            .users
            .iter()
            .all(|u| u.counts.deleted == 0 && u.error.is_none()),
        "{report:#?}"
    );
    assert_converged(&lab).await;
    assert_edits_arrived(&lab, round).await;
    // Access tokens revoked: a new one is asked for and the pass goes on.
    let round = round + 1;
    edit_both_sides(&lab, round).await;
    lab.graph_control(Method::POST, "/expire-tokens", &json!({}))
        .await
        .unwrap();
    let report = pass(&lab).await;
    assert_eq!(report.failed_users(), 0, "{report:#?}");
    assert_converged(&lab).await;
    assert_edits_arrived(&lab, round).await;
    let metrics = lab.metrics.render();
    assert!(
        metrics.contains(r#"exsync_throttle_wait_seconds_total{side="graph"}"#),
        "{metrics}"
    );
}

/// A mailbox that leaves the app's scope (RBAC for Applications) fails alone, with the fix;
/// the other user goes on, and the mailbox catches up once it is back in scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_a_mailbox_out_of_scope_fails_alone_with_the_fix_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let lab = start_on(dir.path(), Backend::Graph).await;
    edit_both_sides(&lab, 1).await;
    let (out, other) = (&lab.users[0], &lab.users[1]);
    let scope = format!("/mailboxes/{}/scope", out.key);
    lab.graph_control(Method::PUT, &scope, &json!({ "in_scope": false }))
        .await
        .unwrap();
    let report = pass(&lab).await;
    assert_eq!(report.failed_users(), 1, "{report:#?}");
    let failed = report
        .users
        .iter()
        .find(|u| u.user.as_ref() == Some(&out.key))
        .unwrap();
    let error = failed.error.clone().unwrap_or_default();
    assert!(error.contains("New-ManagementRoleAssignment"), "{error}");
    let went_on = report
        .users
        .iter()
        .find(|u| u.user.as_ref() == Some(&other.key))
        .unwrap();
    assert!(went_on.error.is_none(), "{report:#?}");
    lab.graph_control(Method::PUT, &scope, &json!({ "in_scope": true }))
        .await
        .unwrap();
    pass(&lab).await;
    pass(&lab).await;
    assert_converged(&lab).await;
    assert_edits_arrived(&lab, 1).await;
}
