//! A hybrid organisation through the `exsync` binary: one user's mailbox on premises (the
//! Exchange simulator, over EWS), another's in Exchange Online (the Graph simulator), routed by
//! `[exchange_online]` in `exsync.toml`. Each gets their CRM records in their own mailbox, the
//! status names each user's backend, and the next pass writes nothing.

use std::path::Path;
use std::time::Duration;

use crate::MASTER_KEY;
use exsync_lab::{Lab, LabOptions, Seed};
use exsync_sim::graph::{GraphSim, SimInfo};
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

/// How many items the Graph simulator holds for `user`: contacts in the sync folder and
/// events in the calendar, read through Graph as a client would.
async fn online_items(info: &SimInfo, user: &str) -> (usize, usize) {
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
    let get = |path: String| {
        let (http, bearer) = (http.clone(), bearer.clone());
        async move {
            http.get(format!("{}/users/{user}/{path}", info.graph_url))
                .header("Authorization", bearer)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let folders = get("contactFolders?$filter=displayName eq 'Salesforce_Sync'".into()).await;
    let contacts = match folders["value"].as_array().and_then(|f| f.first()) {
        Some(folder) => {
            let id = folder["id"].as_str().unwrap();
            get(format!("contactFolders/{id}/contacts?$top=100")).await["value"]
                .as_array()
                .map_or(0, Vec::len)
        }
        None => 0,
    };
    let events = get("events?$top=100".into()).await["value"]
        .as_array()
        .map_or(0, Vec::len);
    (contacts, events)
}

/// A lab of two users with CRM records, the Graph simulator beside it, and an `exsync.toml`
/// for the lab with `[exchange_online]` added (`users` as given, or every user when `None`,
/// with the `[exchange]` section and the service account's password removed).
struct Org {
    _dir: tempfile::TempDir,
    lab: Lab,
    graph: GraphSim,
    info: SimInfo,
    config: std::path::PathBuf,
}

async fn org(online_users: Option<&[&str]>) -> Org {
    let dir = tempfile::tempdir().unwrap();
    let mut options = LabOptions::new(dir.path().join("lab"), 2);
    options.crm_key_pem = Some(crate::shared_key());
    let lab = Lab::start(options).await.unwrap();
    lab.seed(&Seed {
        crm_contacts: 4,
        crm_events: 2,
        ..Seed::default()
    })
    .await
    .unwrap();
    let graph = GraphSim::start(&dir.path().join("graph"), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let info = graph.info.clone();
    let authority = info
        .authority
        .strip_suffix(&format!("/{}", info.tenant_id))
        .unwrap();
    let config = dir.path().join("exsync.toml");
    lab.write_config(&config, MASTER_KEY).unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    let users = match online_users {
        Some(users) => format!("users = {users:?}\n"),
        None => {
            // An organisation entirely online: no [exchange] section and no password for it.
            let start = text.find("[exchange]\n").unwrap();
            let end = start + text[start..].find("\n\n").unwrap();
            text.replace_range(start..end, "");
            let deleted = exsync(&config, &["secrets", "delete", "exchange.password"], None);
            assert!(deleted.status.success(), "{}", deleted.text());
            String::new()
        }
    };
    text.push_str(&format!(
        "\n[exchange_online]\ntenant = \"{}\"\nclient_id = \"{}\"\ncredential = \"secret\"\n\
         {users}authority_url = \"{authority}\"\ngraph_url = \"{}\"\nca_file = \"{}\"\n",
        info.tenant_id,
        info.client_id,
        info.graph_url,
        info.ca_pem.display()
    ));
    std::fs::write(&config, text).unwrap();
    let set = exsync(
        &config,
        &["secrets", "set", "exchange_online.client_secret"],
        Some(&format!("{}\n", info.client_secret)),
    );
    assert!(set.status.success(), "{}", set.text());
    Org {
        _dir: dir,
        lab,
        graph,
        info,
        config,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hybrid_org_syncs_each_user_through_their_own_backend() {
    let Org {
        lab,
        graph,
        info,
        config,
        _dir,
    } = org(Some(&["user2@contoso.test"])).await;
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
    graph.shutdown().await;
}

/// An organisation entirely in Exchange Online installs with no `[exchange]` section and no
/// service account: every user is synced through Graph, and `config check` and `status` say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_entirely_online_needs_no_exchange_section() {
    let Org {
        lab,
        graph,
        info,
        config,
        _dir,
    } = org(None).await;
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
    let again = sync(&config).await;
    assert!(again.status.success(), "{}", again.text());
    assert_eq!(
        again
            .stdout
            .matches("created 0 updated 0 deleted 0 conflicts 0 failures 0")
            .count(),
        lab.users.len(),
        "{}",
        again.text()
    );
    graph.shutdown().await;
}
