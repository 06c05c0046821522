//! Throttling and transient faults injected by the simulator (and, for partial batch failures
//! and expired certificates, a scripted server).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use common::fake;
use common::sim::{Sim, SimOptions, MAIL_HOST};
use exsync_core::{Contact, CrmId, ExchangeId, ItemKind, Record};
use exsync_ews::{AuthMode, Credentials, EwsClient, EwsConfig, EwsError, MailboxClient, Resolve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_busy_back_off_is_honoured() {
    let sim = Sim::start(SimOptions::default());
    let client = EwsClient::new(sim.config(AuthMode::Basic, None)).unwrap();
    let mb = client.mailbox(&sim.allowed_mailbox(), sim.ews_url());
    sim.faults(json!({"server_busy": {"count": 2, "value": 300}, "operations": ["GetFolder"]}))
        .await;
    let start = Instant::now();
    mb.calendar_folder().await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(600),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(sim.counters().await["faults_injected"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_longer_back_off_than_we_wait_is_returned_not_slept() {
    let sim = Sim::start(SimOptions::default());
    let mut cfg = sim.config(AuthMode::Basic, None);
    cfg.retry.max_wait = Duration::from_secs(1);
    let client = EwsClient::new(cfg).unwrap();
    let mb = client.mailbox(&sim.allowed_mailbox(), sim.ews_url());
    sim.faults(json!({"server_busy": {"count": 1, "value": 297749}}))
        .await;
    let start = Instant::now();
    let err = mb.calendar_folder().await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5));
    match err {
        EwsError::Throttled { back_off } => assert_eq!(back_off, Duration::from_millis(297_749)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_503_retry_after_is_honoured() {
    let sim = Sim::start(SimOptions::default());
    let client = EwsClient::new(sim.config(AuthMode::Basic, None)).unwrap();
    let mb = client.mailbox(&sim.allowed_mailbox(), sim.ews_url());
    sim.faults(json!({"http_503": {"count": 1, "value": 1}}))
        .await;
    let start = Instant::now();
    mb.calendar_folder().await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_bounded() {
    let sim = Sim::start(SimOptions::default());
    let mut cfg = sim.config(AuthMode::Basic, None);
    cfg.retry.max_attempts = 3;
    let client = EwsClient::new(cfg).unwrap();
    let mb = client.mailbox(&sim.allowed_mailbox(), sim.ews_url());
    sim.faults(json!({"server_busy": {"count": 50, "value": 20}}))
        .await;
    let err = mb.calendar_folder().await.unwrap_err();
    assert!(matches!(err, EwsError::Throttled { .. }), "{err:?}");
    assert_eq!(sim.counters().await["faults_injected"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_and_malformed_replies_are_retried_for_reads() {
    let sim = Sim::start(SimOptions::default());
    let client = EwsClient::new(sim.config(AuthMode::Basic, None)).unwrap();
    let mb = client.mailbox(&sim.allowed_mailbox(), sim.ews_url());
    sim.faults(json!({"drop_connection": {"count": 1}})).await;
    mb.calendar_folder().await.unwrap();
    sim.faults(json!({"malformed_reply": {"count": 1}})).await;
    mb.calendar_folder().await.unwrap();
    assert_eq!(sim.counters().await["faults_injected"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_with_unknown_outcome_never_duplicates() {
    let sim = Sim::start(SimOptions::default());
    let client = EwsClient::new(sim.config(AuthMode::Basic, None)).unwrap();
    let mb = client.mailbox(&sim.allowed_mailbox(), sim.ews_url());
    let folder = mb.ensure_contacts_folder().await.unwrap();
    let records: Vec<_> = (0..3)
        .map(|i| {
            let c = Contact {
                first_name: format!("N{i}"),
                last_name: "Dup".into(),
                ..Contact::default()
            };
            (CrmId::new(format!("003D{i}")), c.to_fields())
        })
        .collect();
    sim.faults(json!({"malformed_reply": {"count": 1}, "operations": ["CreateItem"]}))
        .await;
    let created = mb
        .create(ItemKind::Contact, &folder, &records)
        .await
        .unwrap();
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
    let all = mb.sync_all(ItemKind::Contact, &folder, None).await.unwrap();
    assert_eq!(all.changes.len(), 3, "duplicates: {:?}", all.changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_caps_keep_us_under_the_server_budget() {
    // The server allows 2 concurrent requests per account and per mailbox, each taking 400 ms.
    let sim = Sim::start(SimOptions {
        max_concurrency: Some(2),
        mailboxes: 4,
        ..SimOptions::default()
    });
    sim.faults(json!({"latency_ms": 400})).await;
    let users: Vec<String> = sim.info["impersonation_allowed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .filter(|a| a.starts_with("user"))
        .map(str::to_owned)
        .collect();
    let run = |max_concurrency: usize| {
        let mut cfg = sim.config(AuthMode::Basic, None);
        cfg.max_concurrency = max_concurrency;
        cfg.max_per_mailbox = 2;
        cfg.retry.max_attempts = 1;
        let client = EwsClient::new(cfg).unwrap();
        let users = users.clone();
        let url = sim.ews_url();
        async move {
            let mut tasks = Vec::new();
            for i in 0..8 {
                let mb = client.mailbox(&users[i % users.len()], url.clone());
                tasks.push(tokio::spawn(async move { mb.calendar_folder().await }));
            }
            let mut failures = 0;
            for t in tasks {
                if t.await.unwrap().is_err() {
                    failures += 1;
                }
            }
            failures
        }
    };
    // Within the cap: nothing is throttled.
    assert_eq!(run(2).await, 0);
    assert_eq!(sim.counters().await["throttled"], 0);
    // The same load without our cap is throttled: the cap is what keeps us clean.
    let failures = run(8).await;
    assert!(failures > 0);
    assert!(sim.counters().await["throttled"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_mailbox_cap_serialises_one_mailbox() {
    let sim = Sim::start(SimOptions::default());
    sim.faults(json!({"latency_ms": 100})).await;
    let mut cfg = sim.config(AuthMode::Basic, None);
    cfg.max_per_mailbox = 1;
    let client = EwsClient::new(cfg).unwrap();
    let user = sim.allowed_mailbox();
    // Warm up the connection and the Basic pin.
    client
        .mailbox(&user, sim.ews_url())
        .calendar_folder()
        .await
        .unwrap();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let mb = client.mailbox(&user, sim.ews_url());
        tasks.push(tokio::spawn(async move { mb.calendar_folder().await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
}

/// A client of ann's mailbox on the scripted server, tracing its requests into `trace` if given.
fn fake_mailbox(server: &fake::Fake, trace: Option<&std::path::Path>) -> MailboxClient {
    let mut cfg = EwsConfig::new(Credentials::new("svc@contoso.test", "pw"));
    cfg.ca_file = Some(server.ca_file.clone());
    cfg.resolve = Resolve::new().with(MAIL_HOST, server.addr);
    cfg.trace_dir = trace.map(std::path::Path::to_path_buf);
    let url = url::Url::parse(&format!(
        "https://{MAIL_HOST}:{}/EWS/Exchange.asmx",
        server.addr.port()
    ))
    .unwrap();
    EwsClient::new(cfg)
        .unwrap()
        .mailbox("ann@contoso.test", url)
}

fn delete_response(codes: &[&str]) -> String {
    let mut messages = String::new();
    for code in codes {
        let class = if *code == "NoError" {
            "Success"
        } else {
            "Error"
        };
        messages.push_str(&format!(
            "<m:DeleteItemResponseMessage ResponseClass=\"{class}\"><m:MessageText>x</m:MessageText><m:ResponseCode>{code}</m:ResponseCode></m:DeleteItemResponseMessage>"
        ));
    }
    format!(
        "<m:DeleteItemResponse xmlns:m=\"http://schemas.microsoft.com/exchange/services/2006/messages\"><m:ResponseMessages>{messages}</m:ResponseMessages></m:DeleteItemResponse>"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_of_a_stopped_batch_is_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let server = fake::start(
        &[MAIL_HOST],
        false,
        Arc::new(move |seen: &fake::Seen| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let ids = seen.body.matches("<t:ItemId ").count();
            if n == 0 {
                // First call: item 1 done, item 2 fails for good, the rest never ran.
                let mut codes = vec!["NoError", "ErrorInvalidIdMalformed"];
                codes.extend(std::iter::repeat_n("ErrorBatchProcessingStopped", ids - 2));
                fake::soap_ok(&delete_response(&codes))
            } else {
                fake::soap_ok(&delete_response(&vec!["NoError"; ids]))
            }
        }),
    )
    .await;
    let trace = tempfile::tempdir().unwrap();
    let mb = fake_mailbox(&server, Some(trace.path()));
    let ids: Vec<ExchangeId> = (0..5).map(|i| ExchangeId::new(format!("id{i}"))).collect();
    let results = mb.delete(ItemKind::Contact, &ids).await.unwrap();
    assert!(results[0].is_ok());
    assert!(
        matches!(&results[1], Err(EwsError::Response { error, .. }) if error.code == "ErrorInvalidIdMalformed")
    );
    assert!(results[2..].iter().all(|r| r.is_ok()), "{results:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // The second call carried only the three that had not run.
    let seen = server.seen.lock().unwrap();
    let last = seen
        .iter()
        .rev()
        .find(|s| s.authorization.is_some())
        .unwrap();
    assert_eq!(last.body.matches("<t:ItemId ").count(), 3);
    exsync_testkit::schema::validate_requests(trace.path());
}

/// A batch Exchange stops every time is sent three times, then reported per item; an answer
/// with fewer messages than items is a protocol error for the items it left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_stopped_for_good_or_answered_short_ends_in_errors_per_item() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let server = fake::start(
        &[MAIL_HOST],
        false,
        Arc::new(move |seen: &fake::Seen| {
            let ids = seen.body.matches("<t:ItemId ").count();
            if ids == 2 {
                // The short answer: one message for two items.
                return fake::soap_ok(&delete_response(&["NoError"]));
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let mut codes = vec!["NoError"];
            codes.extend(std::iter::repeat_n("ErrorBatchProcessingStopped", ids - 1));
            fake::soap_ok(&delete_response(&codes))
        }),
    )
    .await;
    let trace = tempfile::tempdir().unwrap();
    let mb = fake_mailbox(&server, Some(trace.path()));

    // Five items: each round settles the first that is sent, the last round gives up on the rest.
    let ids: Vec<ExchangeId> = (0..5).map(|i| ExchangeId::new(format!("id{i}"))).collect();
    let results = mb.delete(ItemKind::Contact, &ids).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(results[..3].iter().all(|r| r.is_ok()), "{results:?}");
    for result in &results[3..] {
        assert!(
            matches!(result, Err(EwsError::Response { operation: "DeleteItem", error }) if error.code == "ErrorBatchProcessingStopped"),
            "{result:?}"
        );
    }

    let ids: Vec<ExchangeId> = (0..2)
        .map(|i| ExchangeId::new(format!("short{i}")))
        .collect();
    let results = mb.delete(ItemKind::Contact, &ids).await.unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    match &results[1] {
        Err(EwsError::Protocol { host, reason }) => {
            assert_eq!(host, MAIL_HOST);
            assert_eq!(reason, "DeleteItem answered fewer messages than items");
        }
        other => panic!("{other:?}"),
    }
    exsync_testkit::schema::validate_requests(trace.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused_naming_the_host() {
    let server = fake::start(
        &[MAIL_HOST],
        true,
        Arc::new(|_s: &fake::Seen| fake::soap_ok("")),
    )
    .await;
    let err = fake_mailbox(&server, None)
        .calendar_folder()
        .await
        .unwrap_err();
    match &err {
        EwsError::Tls { host, reason } => {
            assert_eq!(host, MAIL_HOST);
            assert!(
                reason.contains("expired") && reason.contains(MAIL_HOST),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(server.seen.lock().unwrap().is_empty());
}

/// A client that shares the service account with other processes sends only as many requests
/// at once as it was granted, whatever its own cap; the simulator's peak of requests in flight
/// shows it, and shows the client's own cap alone letting more through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sharing_the_account_sends_only_what_it_was_granted() {
    let sim = Sim::start(SimOptions {
        mailboxes: 4,
        ..SimOptions::default()
    });
    sim.faults(json!({"latency_ms": 200})).await;
    let users: Vec<String> = sim.info["impersonation_allowed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .filter(|a| a.starts_with("user"))
        .map(str::to_owned)
        .collect();
    let run = |share: Option<exsync_ews::AccountShare>| {
        let mut cfg = sim.config(AuthMode::Basic, None);
        cfg.max_concurrency = 8;
        cfg.max_per_mailbox = 2;
        cfg.share = share;
        let client = EwsClient::new(cfg).unwrap();
        let users = users.clone();
        let url = sim.ews_url();
        async move {
            let mut tasks = Vec::new();
            for i in 0..8 {
                let mb = client.mailbox(&users[i % users.len()], url.clone());
                tasks.push(tokio::spawn(async move { mb.calendar_folder().await }));
            }
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        }
    };
    let peak = || async {
        sim.counters().await["peak_requests_in_flight"]
            .as_u64()
            .unwrap()
    };

    let share = exsync_ews::AccountShare::new();
    share.grant();
    share.grant();
    run(Some(share.clone())).await;
    assert_eq!(peak().await, 2);
    assert_eq!(share.granted(), 2);

    sim.control_api().reset_counters().await;
    run(None).await;
    let alone = peak().await;
    assert!(
        alone > 2,
        "the client's own cap let {alone} through at once"
    );
}
