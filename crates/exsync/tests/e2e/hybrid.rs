//! A hybrid organisation through the `exsync` binary: one user's mailbox on premises (the
//! Exchange simulator, over EWS), another's in Exchange Online (the Graph simulator), routed by
//! `[exchange_online]` in `exsync.toml`. Each gets their CRM records in their own mailbox, the
//! status names each user's backend, and the next pass writes nothing.

use std::path::Path;
use std::time::Duration;

use crate::MASTER_KEY;
use exsync_core::plan::Change;
use exsync_core::ItemKind;
use exsync_lab::{Lab, LabOptions, Seed};
use exsync_sim::graph::SimInfo;
use exsync_testkit::cli::Cli;
use serde_json::Value;

fn exsync(config: &Path, args: &[&str], stdin: Option<&str>) -> exsync_testkit::cli::Ran {
    let mut cli = Cli::new(env!("CARGO_BIN_EXE_exsync"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("EXSYNC_MASTER_KEY", MASTER_KEY);
    if let Some(text) = stdin {
        cli = cli.stdin(text);
    }
    cli.run()
}

/// An HTTP client that trusts the Graph simulator, and a bearer token of its app.
async fn graph_client(info: &SimInfo) -> (reqwest::Client, String) {
    let pem = std::fs::read(&info.ca_pem).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let token: Value = http
        .post(&info.token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", info.client_id.as_str()),
            ("client_secret", info.client_secret.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    (http, bearer)
}

/// Calls Graph as the app: `path` under the user, with a JSON body for a POST.
pub(crate) async fn graph(info: &SimInfo, user: &str, path: &str, body: Option<&Value>) -> Value {
    let (http, bearer) = graph_client(info).await;
    let url = format!("{}/users/{user}/{path}", info.graph_url);
    let request = match body {
        Some(body) => http.post(url).json(body),
        None => http.get(url),
    };
    let reply = request
        .header("Authorization", bearer)
        .send()
        .await
        .unwrap();
    let status = reply.status();
    let value: Value = reply.json().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {value}");
    value
}

/// The user's sync folder in Exchange Online, if there is one.
async fn online_folder(info: &SimInfo, user: &str) -> Option<String> {
    let folders = graph(
        info,
        user,
        "contactFolders?$filter=displayName eq 'Salesforce_Sync'",
        None,
    )
    .await;
    folders["value"]
        .as_array()
        .and_then(|f| f.first())
        .and_then(|f| f["id"].as_str())
        .map(str::to_owned)
}

/// How many items the Graph simulator holds for `user`: contacts in the sync folder and
/// events in the calendar, read through Graph as a client would.
async fn online_items(info: &SimInfo, user: &str) -> (usize, usize) {
    let count = |v: Value| v["value"].as_array().map_or(0, Vec::len);
    let contacts = match online_folder(info, user).await {
        Some(id) => count(
            graph(
                info,
                user,
                &format!("contactFolders/{id}/contacts?$top=100"),
                None,
            )
            .await,
        ),
        None => 0,
    };
    let events = count(graph(info, user, "events?$top=100", None).await);
    (contacts, events)
}

/// A lab of two users, the last `online` of them in Exchange Online (the Graph simulator),
/// seeded, with the `exsync.toml` the lab writes for it: `[exchange_online]` names the online
/// users, and an organisation entirely online has no `[exchange]` section.
struct Org {
    _dir: tempfile::TempDir,
    lab: Lab,
    info: SimInfo,
    config: std::path::PathBuf,
}

async fn org(online: usize, seed: Seed) -> Org {
    let dir = tempfile::tempdir().unwrap();
    let mut options = LabOptions::new(dir.path().join("lab"), 2);
    options.crm_key_pem = Some(crate::shared_key());
    options.exchange_online = Some(online);
    let lab = Lab::start(options).await.unwrap();
    lab.seed(&seed).await.unwrap();
    let info = lab.graph_sim.as_ref().unwrap().info.clone();
    let config = dir.path().join("exsync.toml");
    lab.write_config(&config, MASTER_KEY).unwrap();
    Org {
        _dir: dir,
        lab,
        info,
        config,
    }
}

/// Four contacts and two events per user in the CRM.
fn records() -> Seed {
    Seed {
        crm_contacts: 4,
        crm_events: 2,
        ..Seed::default()
    }
}

async fn sync(config: &Path) -> exsync_testkit::cli::Ran {
    // Passes a second apart, so the CRM's change times tell them apart.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let config = config.to_owned();
    tokio::task::spawn_blocking(move || exsync(&config, &["sync"], None))
        .await
        .unwrap()
}

/// A pass that succeeded and changed nothing for any of the `users`.
fn assert_idle(ran: &exsync_testkit::cli::Ran, users: usize) {
    assert!(ran.status.success(), "{}", ran.text());
    assert_eq!(
        ran.stdout
            .matches("created 0 updated 0 deleted 0 conflicts 0 failures 0")
            .count(),
        users,
        "{}",
        ran.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hybrid_org_syncs_each_user_through_their_own_backend() {
    let Org {
        lab,
        info,
        config,
        _dir,
    } = org(1, records()).await;
    let (ews_user, online_user) = (lab.users[0].key.clone(), lab.users[1].key.clone());
    assert_eq!(online_user.as_str(), "user2@contoso.test");
    assert!(info.mailboxes.iter().any(|m| m == online_user.as_str()));

    let first = sync(&config).await;
    assert!(first.status.success(), "{}", first.text());
    for user in [&ews_user, &online_user] {
        assert!(
            first.stdout.contains(&format!(
                "{user}: created 6 updated 0 deleted 0 conflicts 0 failures 0"
            )),
            "{user}: {}",
            first.text()
        );
    }
    // The online user's records are in Exchange Online, read back through Graph.
    assert_eq!(online_items(&info, online_user.as_str()).await, (4, 2));
    // The on-premises user's are in the Exchange simulator, and not in Exchange Online.
    assert_eq!(online_items(&info, "user1@contoso.test").await, (0, 0));
    assert_eq!(ews_user.as_str(), "user1@contoso.test");

    // The status names the backend each user's mailbox is synced through.
    let status = exsync(&config, &["status"], None);
    for (user, backend) in [(&ews_user, "ews"), (&online_user, "graph")] {
        let row = status
            .stdout
            .lines()
            .find(|l| l.starts_with(user.as_str()))
            .unwrap_or_default();
        assert_eq!(
            row.split_whitespace().nth(2),
            Some(backend),
            "{user}: {}",
            status.stdout
        );
    }

    let again = sync(&config).await;
    assert!(again.status.success(), "{}", again.text());
    for user in [&ews_user, &online_user] {
        assert!(
            again.stdout.contains(&format!(
                "{user}: created 0 updated 0 deleted 0 conflicts 0 failures 0"
            )),
            "{user}: {}",
            again.text()
        );
    }
}

/// An organisation entirely in Exchange Online installs with no `[exchange]` section and no
/// service account: every user is synced through Graph, and `config check` and `status` say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_entirely_online_needs_no_exchange_section() {
    let Org {
        lab,
        info,
        config,
        _dir,
    } = org(2, records()).await;
    let checked = exsync(&config, &["config", "check"], None);
    assert!(checked.status.success(), "{}", checked.text());
    assert!(
        checked.stdout.contains(&format!(
            "exchange online: app {} in tenant {} (global cloud, secret) for every user",
            info.client_id, info.tenant_id
        )),
        "{}",
        checked.stdout
    );
    assert!(
        !checked.stdout.contains("\nexchange: "),
        "{}",
        checked.stdout
    );
    // The analyzer checks Graph and the CRM, and asks for no service account.
    let analyzed = {
        let (config, user) = (config.clone(), lab.users[0].key.to_string());
        tokio::task::spawn_blocking(move || exsync(&config, &["check", "--user", &user], None))
            .await
            .unwrap()
    };
    assert!(analyzed.status.success(), "{}", analyzed.text());
    assert!(
        analyzed.stdout.contains("PASS  Mailbox in the app's scope")
            && !analyzed.stdout.contains("exchange.password"),
        "{}",
        analyzed.stdout
    );

    let first = sync(&config).await;
    assert!(first.status.success(), "{}", first.text());
    for user in &lab.users {
        assert!(
            first.stdout.contains(&format!(
                "{}: created 6 updated 0 deleted 0 conflicts 0 failures 0",
                user.key
            )),
            "{}: {}",
            user.key,
            first.text()
        );
        assert_eq!(online_items(&info, user.key.as_str()).await, (4, 2));
    }
    let status = exsync(&config, &["status"], None);
    for user in &lab.users {
        let row = status
            .stdout
            .lines()
            .find(|l| l.starts_with(user.key.as_str()))
            .unwrap_or_default();
        assert_eq!(
            row.split_whitespace().nth(2),
            Some("graph"),
            "{}",
            status.stdout
        );
    }
    assert_idle(&sync(&config).await, lab.users.len());
}

/// `exsync check` asks Graph about each mailbox `[exchange_online]` names once: the Exchange
/// Online steps' probe of it also answers for its user's own line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_probes_each_online_mailbox_once() {
    let Org {
        lab, config, _dir, ..
    } = org(1, Seed::default()).await;
    let online = lab.users[1].key.to_string();
    lab.graph_control(reqwest::Method::DELETE, "/counters", &serde_json::json!({}))
        .await
        .unwrap();
    let analyzed = tokio::task::spawn_blocking(move || exsync(&config, &["check"], None))
        .await
        .unwrap();
    assert!(
        analyzed
            .stdout
            .contains(&format!("PASS  Mailbox in the app's scope ({online})")),
        "{}",
        analyzed.text()
    );
    assert!(
        analyzed
            .stdout
            .lines()
            .any(|l| l.starts_with(&format!("PASS  {online} ("))),
        "the user's own line: {}",
        analyzed.text()
    );
    let counters = lab
        .graph_control(reqwest::Method::GET, "/counters", &serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(counters["endpoints"]["GET /users/{id}"], 1, "{counters}");
}

/// A mailbox moved from on premises to Exchange Online between passes keeps every link: its
/// items are found again by our tags (or, for those the user made, by their e-mail address),
/// nothing is created or deleted on either side, and the edits made on both sides since the
/// last pass all arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_moved_online_keeps_its_links_and_its_edits() {
    let Org {
        lab,
        info,
        config,
        _dir,
    } = org(
        0,
        Seed {
            exchange_contacts: 2,
            ..records()
        },
    )
    .await;
    let mover = lab.users[1].clone();
    let first = sync(&config).await;
    assert!(first.status.success(), "{}", first.text());
    let expected = format!("{}: created 8 updated 0 deleted 0", mover.key);
    assert!(first.stdout.contains(&expected), "{}", first.text());
    let before = lab.convergence().await.unwrap();
    assert!(before.converged(), "{:?}", before.problems);

    // Edits on both sides after the last pass on premises: a CRM-made contact's title in the
    // CRM, and a mailbox-made contact's department in Outlook.
    let crm_made = lab.crm_record(&mover, ItemKind::Contact, "Crm1x0000").await;
    let crm_made = match crm_made {
        Ok(_) => "Crm1x0000",
        Err(_) => "Crm2x0000",
    };
    lab.edit_crm(&mover, ItemKind::Contact, crm_made, |f| {
        f.insert("title".into(), Value::from("Director"));
    })
    .await
    .unwrap();
    let outlook_made = lab
        .syncer
        .exchange
        .read_folder(&mover.key, ItemKind::Contact)
        .await
        .unwrap()
        .into_iter()
        .find_map(|c| match c {
            Change::Upsert(item) if item.origin.is_none() => item
                .fields
                .get("last_name")
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        })
        .unwrap();
    lab.edit_exchange(&mover, ItemKind::Contact, &outlook_made, |f| {
        f.insert("department".into(), Value::from("Moved"));
    })
    .await
    .unwrap();

    lab.move_online(&mover).await.unwrap();
    // The admin routes the user online.
    lab.write_config(&config, MASTER_KEY).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains(&format!("users = [\"{}\"]", mover.key)),
        "{text}"
    );

    // A dry run right after the move writes nothing, the pairs included.
    let pairs = |kind| lab.syncer.store.load_pairs(&mover.key, kind).unwrap();
    let before = (pairs(ItemKind::Contact), pairs(ItemKind::Event));
    let dry = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || exsync(&config, &["sync", "--dry-run"], None))
            .await
            .unwrap()
    };
    assert!(dry.status.success(), "{}", dry.text());
    assert_eq!((pairs(ItemKind::Contact), pairs(ItemKind::Event)), before);

    let moved = sync(&config).await;
    assert!(moved.status.success(), "{}", moved.text());
    let expected = format!(
        "{}: created 0 updated 2 deleted 0 conflicts 0 failures 0",
        mover.key
    );
    assert!(moved.stdout.contains(&expected), "{}", moved.text());
    // The admin is told, once per kind, and nothing speaks of a replaced folder.
    assert!(
        moved.stdout.contains("NOTICE [mailbox_moved] The mailbox moved from ews to graph: 4 synced contacts found again by their tag, 2 by their content, 0 not there")
            && moved.stdout.contains("NOTICE [mailbox_moved] The mailbox moved from ews to graph: 2 synced events found again by their tag, 0 by their content, 0 not there")
            && !moved.stdout.contains("sync_folder_replaced"),
        "{}",
        moved.text()
    );
    // Nothing was duplicated online, and both edits are on both sides.
    assert_eq!(online_items(&info, mover.key.as_str()).await, (6, 2));
    let title = lab
        .crm_record(&mover, ItemKind::Contact, crm_made)
        .await
        .unwrap();
    assert_eq!(title.fields.get("title"), Some(&Value::from("Director")));
    let department = lab
        .crm_record(&mover, ItemKind::Contact, &outlook_made)
        .await
        .unwrap();
    assert_eq!(
        department.fields.get("department"),
        Some(&Value::from("Moved"))
    );
    let again = sync(&config).await;
    let idle = format!(
        "{}: created 0 updated 0 deleted 0 conflicts 0 failures 0",
        mover.key
    );
    assert!(again.stdout.contains(&idle), "{}", again.text());
}

/// Every mailbox located automatically (`[exchange_online] auto`): on-premises Autodiscover
/// places one user on premises and the other online, each syncs through that backend, and
/// status says where each was found and why. Then the on-premises mailbox is migrated online
/// (items copied, the mailbox left remote on premises, its Autodiscover redirecting) with no
/// configuration change: in the next pass the service notices EWS no longer finds it, locates
/// it online, and re-links its items there, with no duplicate on either side and the CRM edit
/// made during the move written online.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_routing_follows_a_mailbox_moved_online() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = LabOptions::new(dir.path().join("lab"), 2);
    options.crm_key_pem = Some(crate::shared_key());
    options.exchange_online = Some(1);
    options.auto_routing = true;
    let lab = Lab::start(options).await.unwrap();
    lab.seed(&records()).await.unwrap();
    let info = lab.graph_sim.as_ref().unwrap().info.clone();
    let config = dir.path().join("exsync.toml");
    lab.write_config(&config, MASTER_KEY).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("auto = true") && !text.contains("users = [\"user"),
        "{text}"
    );
    let (mover, online) = (lab.users[0].clone(), lab.users[1].clone());
    // The online user's mailbox is a remote one on premises.
    lab.make_remote(&online).await.unwrap();

    let shown = exsync(
        &config,
        &["config", "show", "--user", mover.key.as_str()],
        None,
    );
    assert!(
        shown.stdout.contains(
            "# mailbox: auto (exchange_online.auto): located before each pass by on-premises Autodiscover"
        ),
        "{}",
        shown.text()
    );

    let first = sync(&config).await;
    assert!(first.status.success(), "{}", first.text());
    for user in [&mover, &online] {
        let expected = format!(
            "{}: created 6 updated 0 deleted 0 conflicts 0 failures 0",
            user.key
        );
        assert!(first.stdout.contains(&expected), "{}", first.text());
    }
    assert_eq!(online_items(&info, online.key.as_str()).await, (4, 2));
    assert_eq!(online_items(&info, mover.key.as_str()).await, (0, 0));

    // Status: each user's backend, and for `auto` where the mailbox was found and why.
    let status = exsync(&config, &["status"], None);
    let backend = |status: &str, user: &str| {
        status
            .lines()
            .find(|l| l.starts_with(user))
            .and_then(|row| row.split_whitespace().nth(2))
            .map(str::to_owned)
    };
    assert_eq!(
        backend(&status.stdout, mover.key.as_str()).as_deref(),
        Some("auto→ews"),
        "{}",
        status.stdout
    );
    assert_eq!(
        backend(&status.stdout, online.key.as_str()).as_deref(),
        Some("auto→graph"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains(&format!(
            "  {}: auto → graph (Autodiscover: routing address user2@contoso.mail.onmicrosoft.com, checked",
            online.key
        )),
        "{}",
        status.stdout
    );
    let detail = exsync(
        &config,
        &["status", "--user", online.key.as_str(), "--json"],
        None,
    );
    let detail: Value = serde_json::from_str(&detail.stdout).unwrap();
    assert_eq!(detail["backend"]["route"]["backend"], "graph", "{detail}");

    // The CRM edits a contact of the mover while their mailbox is being migrated.
    // The lab names a user's CRM contacts after the user's index (from 0).
    let crm_made = "Crm0x0000";
    lab.crm_record(&mover, ItemKind::Contact, crm_made)
        .await
        .unwrap();
    lab.edit_crm(&mover, ItemKind::Contact, crm_made, |f| {
        f.insert("title".into(), Value::from("Director"));
    })
    .await
    .unwrap();
    assert_eq!(lab.migrate_online(&mover).await.unwrap(), 6);

    // The next pass finds no mailbox on premises, asks Autodiscover again, and syncs it online
    // at once: every link kept, the CRM edit written there, nothing made on either side.
    let moved = sync(&config).await;
    assert!(moved.status.success(), "{}", moved.text());
    let expected = format!(
        "{}: created 0 updated 1 deleted 0 conflicts 0 failures 0",
        mover.key
    );
    assert!(moved.stdout.contains(&expected), "{}", moved.text());
    assert!(
        moved.stdout.contains("NOTICE [mailbox_located] Autodiscover now places the mailbox on graph (Autodiscover: routing address user1@contoso.mail.onmicrosoft.com); it was on ews.")
            && moved.stdout.contains("NOTICE [mailbox_moved] The mailbox moved from ews to graph: 4 synced contacts found again by their tag"),
        "{}",
        moved.text()
    );
    // The attempt on premises stays in the history, with what happened.
    let history = exsync(&config, &["status", "--user", mover.key.as_str()], None);
    assert!(
        history.stdout.contains("ErrorNonExistentMailbox")
            && history.stdout.contains("the mailbox is now on graph")
            && history.stdout.contains("Backend: auto → graph (Autodiscover: routing address user1@contoso.mail.onmicrosoft.com, checked"),
        "{}",
        history.stdout
    );
    assert_eq!(online_items(&info, mover.key.as_str()).await, (4, 2));
    let folder = online_folder(&info, mover.key.as_str()).await.unwrap();
    let contacts = graph(
        &info,
        mover.key.as_str(),
        &format!("contactFolders/{folder}/contacts?$top=100"),
        None,
    )
    .await;
    let directors = contacts["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["jobTitle"] == "Director")
        .count();
    assert_eq!(directors, 1, "{contacts}");
    let status = exsync(&config, &["status"], None);
    assert_eq!(
        backend(&status.stdout, mover.key.as_str()).as_deref(),
        Some("auto→graph"),
        "{}",
        status.stdout
    );

    assert_idle(&sync(&config).await, 2);
}
