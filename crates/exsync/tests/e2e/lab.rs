//! End to end: the sync service against both simulators through the real connectors.

use std::collections::BTreeMap;
use std::time::Duration;

use exsync_core::config::{Direction, SyncConfiguration};
use exsync_engine::sync::mailboxes::Backend;
use exsync_engine::sync::service::PassOptions;
use exsync_lab::{lab_configuration, Lab, LabOptions, Seed};
use exsync_testkit::cli::Cli;
use serde_json::json;

async fn settle() {
    // The CRM connector leaves records stamped within the last second for the next pass.
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

async fn both_sides_converge_and_a_second_pass_writes_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::start(crate::lab_options(dir.path(), 2, backend))
        .await
        .unwrap();
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
    assert!(first.users.iter().all(|u| u.backend == Some(backend)));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_converges_with_every_scripted_change_carried() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = exsync_lab::demo::run(&exsync_lab::demo::DemoOptions {
        users: 3,
        contacts: 6,
        events: 4,
        online: None,
        dir: Some(dir.path().to_path_buf()),
        kerberos: None,
    })
    .await
    .unwrap();
    assert!(outcome.converged);
    let lab = &outcome.lab;
    // A hybrid organisation: the first user on premises, the last online from the start, the
    // second located by Autodiscover (`auto`) and migrated online between the passes.
    let online: Vec<&str> = lab.online_users().iter().map(|u| u.key.as_str()).collect();
    assert_eq!(online, ["user3@contoso.test"], "configured online");
    for user in &lab.users[1..] {
        let runs = lab.syncer.store.runs(&user.key, 2).unwrap();
        assert_eq!(runs[0].backend.as_deref(), Some("graph"), "{}", user.key);
    }
    // The move went through `auto`: the rule still locates the mover rather than naming a
    // backend, Autodiscover's redirect put it online, and the pass re-linked it there.
    let mover = &lab.users[1].key;
    assert!(lab.syncer.exchange.rule().is_auto(mover));
    assert_eq!(
        exsync_engine::sync::sides::MailboxSide::backend(&lab.syncer.exchange, mover),
        Backend::Graph
    );
    let route = lab.syncer.store.mailbox_route(mover).unwrap().unwrap();
    assert_eq!(route.backend, "graph", "{route:?}");
    assert!(
        route
            .evidence
            .contains("routing address user2@contoso.mail.onmicrosoft.com"),
        "{route:?}"
    );
    let runs = lab.syncer.store.runs(mover, 5).unwrap();
    assert_eq!(
        runs.last().and_then(|r| r.backend.as_deref()),
        Some("ews"),
        "located on premises for the first sync: {runs:?}"
    );
    assert!(
        runs[0]
            .notices
            .iter()
            .any(|n| n.code == "mailbox_moved" && n.message.contains("from ews to graph")),
        "{runs:?}"
    );
    for (u, user) in lab.users.iter().enumerate() {
        let name = |i| exsync_lab::crm_contact(u, i).last_name;
        use exsync_core::ItemKind::Contact;
        // The CRM edit reached Outlook, the Outlook edit reached the CRM.
        let edited = lab.exchange_item(user, Contact, &name(0)).await.unwrap();
        assert_eq!(edited.fields["title"], "Chief Buyer");
        let edited = lab.crm_record(user, Contact, &name(1)).await.unwrap();
        assert_eq!(edited.fields["department"], "Research");
        // Each side's delete reached the other.
        assert!(lab.exchange_item(user, Contact, &name(2)).await.is_err());
        assert!(lab.crm_record(user, Contact, &name(3)).await.is_err());
        // The both-sides change went to the CRM's value, on both sides.
        assert_eq!(
            lab.exchange_item(user, Contact, &name(4))
                .await
                .unwrap()
                .fields["title"],
            "Head of Purchasing"
        );
        assert_eq!(
            lab.crm_record(user, Contact, &name(4))
                .await
                .unwrap()
                .fields["title"],
            "Head of Purchasing"
        );
        let conflicts = lab.syncer.store.conflicts(&user.key, 10).unwrap();
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert_eq!(conflicts[0].conflict.field, "title");
    }
}

/// Every file under `dir`, recursively.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_left_in_the_database_the_wire_trace_or_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let mut options = LabOptions::new(dir.path().join("lab"), 2);
    options.exchange_trace = Some(trace.clone());
    let lab = Lab::start(options).await.unwrap();
    lab.seed(&Seed {
        crm_contacts: 5,
        crm_events: 3,
        exchange_contacts: 2,
        exchange_events: 1,
        invalid_record: false,
    })
    .await
    .unwrap();
    // Secrets as an admin stores them: in the vault, in the state database.
    let config = dir.path().join("exsync.toml");
    lab.write_config(&config, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .unwrap();
    settle().await;
    let output = Cli::new(env!("CARGO_BIN_EXE_exsync"))
        .args(["sync", "--config"])
        .arg(&config)
        .env(
            "EXSYNC_MASTER_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .env("RUST_LOG", "trace")
        .run();
    assert!(output.status.success(), "{}", output.stdout);
    let password = lab.exchange_sim.info["service_account"]["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let pem = std::fs::read_to_string(&lab.salesforce_sim.info.private_key_file).unwrap();
    let key_line = pem.lines().nth(1).unwrap().to_owned();
    assert!(password.len() > 8 && key_line.len() > 20);
    let mut searched = vec![(
        "the service's output".to_owned(),
        output.text().into_bytes(),
    )];
    let ours = files(&trace)
        .into_iter()
        .chain(files(&dir.path().join("lab")).into_iter().filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("exsync.db"))
        }));
    for path in ours {
        searched.push((path.display().to_string(), std::fs::read(&path).unwrap()));
    }
    assert!(
        !files(&trace.join("service")).is_empty(),
        "the service wrote its wire trace"
    );
    assert!(
        searched.len() > 3,
        "the trace and the database were written"
    );
    for (what, bytes) in &searched {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains(&password), "the password is in {what}");
        assert!(!text.contains(&key_line), "the private key is in {what}");
    }
}

/// Requests per operation the Exchange simulator counted, and calls per endpoint the Salesforce
/// simulator counted, since their counters were last reset.
async fn requests(lab: &Lab) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let ews = lab
        .exchange_control(reqwest::Method::GET, "/counters", &json!({}))
        .await
        .unwrap();
    let crm = lab
        .crm_control(reqwest::Method::GET, "/counters", &json!({}))
        .await
        .unwrap();
    (
        serde_json::from_value(ews["requests_per_operation"].clone()).unwrap(),
        serde_json::from_value(crm["counters"].clone()).unwrap(),
    )
}

/// Three mailboxes and 150 CRM contacts each, synced for the first time under
/// `configuration`: the requests it made to each simulator, once a second pass has been
/// checked to write nothing.
async fn first_sync_requests(
    configuration: SyncConfiguration,
) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = LabOptions::new(dir.path(), 3);
    options.configuration = Some(configuration);
    let lab = Lab::start(options).await.unwrap();
    lab.seed(&Seed {
        crm_contacts: 150,
        ..Seed::default()
    })
    .await
    .unwrap();
    settle().await;
    lab.exchange_control(reqwest::Method::DELETE, "/counters", &json!({}))
        .await
        .unwrap();
    lab.crm_control(reqwest::Method::DELETE, "/counters", &json!({}))
        .await
        .unwrap();
    let first = lab.syncer.run_pass(&PassOptions::default()).await.unwrap();
    assert_eq!(first.failed_users(), 0, "{first:#?}");
    let (ews, crm) = requests(&lab).await;
    // A first read lists every record there is: the delete log has nothing to add.
    assert!(
        !crm.keys().any(|endpoint| endpoint.contains("deleted")),
        "CRM calls of the first sync: {crm:#?}"
    );

    // The next pass lists the folders from their start, finds exsync's own copies and
    // writes nothing.
    settle().await;
    let second = lab.syncer.run_pass(&PassOptions::default()).await.unwrap();
    assert!(
        second
            .users
            .iter()
            .all(|u| u.counts.created + u.counts.updated + u.counts.deleted == 0),
        "{second:#?}"
    );
    let check = lab.convergence().await.unwrap();
    assert!(check.converged(), "{:#?}", check.problems);
    (ews, crm)
}

fn operations(counts: &[(&str, u64)]) -> BTreeMap<String, u64> {
    counts.iter().map(|(op, n)| (op.to_string(), *n)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sync_asks_each_mailbox_only_what_it_must() {
    let (ews, crm) = first_sync_requests(lab_configuration()).await;
    // Per mailbox: the sync folder is made without looking for it first and not listed (it is
    // empty), the calendar is named by its role and listed once, and 150 contacts go in two
    // batches.
    let expected = operations(&[
        ("CreateFolder", 3),
        ("SyncFolderItems", 3),
        ("CreateItem", 6),
    ]);
    assert_eq!(ews, expected, "EWS requests of the first sync");
    // The CRM: its users, then one read per kind for the whole org (routed to the users on
    // disk), not one per user.
    assert_eq!(
        crm.get("GET query").copied(),
        Some(3),
        "CRM calls of the first sync: {crm:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sync_of_contacts_alone_asks_each_mailbox_for_its_folder_and_the_writes_only() {
    let mut configuration = lab_configuration();
    configuration.events.direction = Direction::Off;
    let (ews, crm) = first_sync_requests(configuration).await;
    // Per mailbox: the folder, made without a look first and not listed, and the contacts'
    // two batches. The calendar is not synced, so it is not read.
    let expected = operations(&[("CreateFolder", 3), ("CreateItem", 6)]);
    assert_eq!(ews, expected, "EWS requests of the first sync");
    // The CRM: its users and one read of the org's contacts.
    assert_eq!(
        crm.get("GET query").copied(),
        Some(2),
        "CRM calls of the first sync: {crm:#?}"
    );
}

crate::on_each_backend!(both_sides_converge_and_a_second_pass_writes_nothing);

/// HTTP requests the Graph simulator answered for Graph since its counters were last reset (a
/// `$batch` is one; the token endpoint is Entra's, not Graph's), and per endpoint.
async fn graph_requests(lab: &Lab) -> (u64, serde_json::Value) {
    let counters = lab
        .graph_control(reqwest::Method::GET, "/counters", &json!({}))
        .await
        .unwrap();
    let http: u64 = counters["hosts"]
        .as_object()
        .unwrap()
        .values()
        .map(|host| host["requests"].as_u64().unwrap())
        .sum();
    let entra: u64 = counters["endpoints"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(endpoint, _)| endpoint.contains("/{tenant}/"))
        .map(|(_, n)| n.as_u64().unwrap())
        .sum();
    (http - entra, counters["endpoints"].clone())
}

/// Mailboxes and contacts of the Graph variant: enough contacts that the first sync's fixed
/// cost per mailbox (the folder, both listings) is weighed against its writes, as in an org.
const GRAPH_MAILBOXES: usize = 2;
const GRAPH_CONTACTS: usize = 600;

/// Exchange Online's limits from the product's targets: a first sync at most 0.06 Graph
/// requests per synced item (writes go in `$batch`es of 20), a pass with nothing to do at most
/// 2 per mailbox (the two delta listings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sync_on_graph_asks_each_mailbox_only_what_it_must() {
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::start(crate::lab_options(
        dir.path(),
        GRAPH_MAILBOXES,
        Backend::Graph,
    ))
    .await
    .unwrap();
    lab.seed(&Seed {
        crm_contacts: GRAPH_CONTACTS,
        ..Seed::default()
    })
    .await
    .unwrap();
    settle().await;
    let nothing = json!({});
    let reset = || lab.graph_control(reqwest::Method::DELETE, "/counters", &nothing);
    reset().await.unwrap();
    let first = lab.syncer.run_pass(&PassOptions::default()).await.unwrap();
    assert_eq!(first.failed_users(), 0, "{first:#?}");
    crate::served_by(&lab, Backend::Graph);
    let synced: u64 = first.users.iter().map(|u| u.counts.created).sum();
    assert_eq!(
        synced,
        (GRAPH_MAILBOXES * GRAPH_CONTACTS) as u64,
        "{first:#?}"
    );
    let (requests, endpoints) = graph_requests(&lab).await;
    let per_item = requests as f64 / synced as f64;
    eprintln!("first sync: {requests} Graph requests for {synced} items ({per_item:.4} per item)");
    assert!(
        per_item <= 0.06,
        "{requests} Graph requests for {synced} items: {endpoints:#}"
    );

    // The pass after it reads exsync's own writes back; the one after that has nothing to do.
    settle().await;
    let echo = lab.syncer.run_pass(&PassOptions::default()).await.unwrap();
    assert_eq!(echo.failed_users(), 0, "{echo:#?}");
    settle().await;
    reset().await.unwrap();
    let idle = lab.syncer.run_pass(&PassOptions::default()).await.unwrap();
    assert_eq!(idle.failed_users(), 0, "{idle:#?}");
    assert!(
        idle.users
            .iter()
            .all(|u| u.counts.created + u.counts.updated + u.counts.deleted == 0),
        "{idle:#?}"
    );
    let (requests, endpoints) = graph_requests(&lab).await;
    eprintln!("no-change pass: {requests} Graph requests for {GRAPH_MAILBOXES} mailboxes");
    assert!(
        requests <= 2 * GRAPH_MAILBOXES as u64,
        "{requests} Graph requests for {GRAPH_MAILBOXES} mailboxes with nothing to do: {endpoints:#}"
    );
    let check = lab.convergence().await.unwrap();
    assert!(check.converged(), "{:#?}", check.problems);
}
