//! A real pass of the sync service with every mailbox on the Graph backend: the Graph and
//! Salesforce simulators, the router sending the user to [`GraphConnection`], and records
//! flowing both ways, then a second pass that has nothing to do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use exsync_core::config::{ContactScope, KindRules, SyncConfiguration};
use exsync_core::plan::Change;
use exsync_core::{AllowList, Contact, Event, EventTime, ItemKind, Record, UserKey};
use exsync_engine::connect::graph::{GraphConnection, GraphSettings};
use exsync_engine::connect::salesforce::SalesforceSide;
use exsync_engine::sync::mailboxes::{Backend, BackendRule, Mailboxes, Unconfigured};
use exsync_engine::sync::service::{PassOptions, Syncer};
use exsync_engine::sync::sides::MailboxSide;
use exsync_graph::{Cloud, Credential, GraphClient, GraphConfig, GraphRequest, Secret};
use exsync_salesforce::{AuthConfig, NewRecord, SalesforceClient, SalesforceConfig};
use exsync_sim::graph::{GraphSim, Options};
use exsync_sim::salesforce::SalesforceSim;
use exsync_store::{SqliteStore, Store};
use reqwest::Method;
use serde_json::{json, Value};

const USER: &str = "user1@contoso.test";
const PROFILE: &str = "Sales User";
/// A mailbox the app's RBAC scope does not cover.
const OUTSIDE: &str = "outside1@contoso.test";

fn graph_client(sim: &GraphSim) -> Arc<GraphClient> {
    let info = &sim.info;
    let authority = info.authority_url().to_owned();
    let mut config = GraphConfig::new(
        info.tenant_id.clone(),
        info.client_id.clone(),
        Cloud::custom(authority, info.graph_url.clone()),
        Credential::Secret(Secret::new(info.client_secret.clone())),
    );
    config.ca_pem = Some(std::fs::read(&info.ca_pem).unwrap());
    config.system_roots = false;
    config.allow = AllowList::new(["127.0.0.1"]);
    config.limits.timeout = Duration::from_secs(20);
    Arc::new(GraphClient::new(config).unwrap())
}

fn names(changes: &[Change], kind: ItemKind) -> BTreeSet<String> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Upsert(item) => Some(match kind {
                ItemKind::Contact => Contact::from_fields(&item.fields).unwrap().last_name,
                ItemKind::Event => Event::from_fields(&item.fields).unwrap().subject,
            }),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn graph_pass_syncs_contacts_and_events_both_ways_then_rests() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let graph_dir = dir.path().join("graph");
    std::fs::create_dir_all(&graph_dir).unwrap();
    std::fs::write(
        graph_dir.join("app-key.pem"),
        exsync_testkit::keys::jwt_key_pem(),
    )
    .unwrap();
    let options = Options {
        domain: "contoso.test".into(),
        mailboxes: 1,
        out_of_scope: 1,
    };
    let graph_sim = GraphSim::start_with(&graph_dir, "127.0.0.1:0".parse().unwrap(), &options)
        .await
        .unwrap();
    let sf_dir = dir.path().join("salesforce");
    std::fs::create_dir_all(&sf_dir).unwrap();
    std::fs::write(
        sf_dir.join(exsync_sim::salesforce::JWT_KEY_FILE),
        exsync_testkit::keys::jwt_key_pem(),
    )
    .unwrap();
    let sf_sim = SalesforceSim::start(&sf_dir, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let sf = &sf_sim.info;

    // The CRM user whose mailbox is user1's.
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&sf.ca_file).unwrap()).unwrap(),
        )
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    let seeded: Value = http
        .post(format!("{}/seed", sf.control_url))
        .bearer_auth(&sf.control_token)
        .json(&json!({"users": [{
            "username": format!("{USER}.crm"), "email": USER, "first_name": "User",
            "last_name": "1", "profile": PROFILE,
        }, {
            "username": format!("{OUTSIDE}.crm"), "email": OUTSIDE, "first_name": "Outside",
            "last_name": "1", "profile": PROFILE,
        }]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let owner = seeded["users"][0]["id"].as_str().unwrap().to_owned();

    let key = std::fs::read(&sf.private_key_file).unwrap();
    let mut crm_config = SalesforceConfig::new(
        sf.instance_url.clone(),
        AuthConfig::JwtBearer {
            client_id: sf.client_id.clone(),
            username: sf.integration_user.username.clone(),
            private_key_pem: exsync_salesforce::Secret::new(key),
            audience: "https://login.salesforce.com".into(),
        },
    );
    crm_config.api_version = sf.api_version.clone();
    crm_config.ca_pem = Some(std::fs::read(&sf.ca_file).unwrap());
    crm_config.settle = Duration::ZERO;
    crm_config.limit_reserve = 0;
    let crm = SalesforceClient::new(crm_config.clone()).unwrap();

    // One contact and one event in the CRM, one of each in Outlook.
    let mut from_crm = Contact {
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        emails: vec!["ada@example.test".into()],
        ..Contact::default()
    };
    from_crm.normalize();
    let outcome = crm
        .create_contacts(&[NewRecord {
            external_key: None,
            owner_id: Some(owner.clone()),
            record: from_crm,
        }])
        .await
        .unwrap();
    assert!(outcome[0].error.is_none(), "{:?}", outcome[0].error);
    let soon = Utc::now() + chrono::Duration::days(3);
    let crm_event = Event::new(
        "Quarterly review",
        EventTime::At(soon),
        EventTime::At(soon + chrono::Duration::hours(1)),
    );
    let outcome = crm
        .create_events(&[NewRecord {
            external_key: None,
            owner_id: Some(owner.clone()),
            record: crm_event,
        }])
        .await
        .unwrap();
    assert!(outcome[0].error.is_none(), "{:?}", outcome[0].error);

    let client = graph_client(&graph_sim);
    let user = UserKey::parse(USER).unwrap();
    let app = graph_sim.info.client_id.clone();
    // The owner's own contact goes into the sync folder (made for them, as when they were
    // enabled), their event into the calendar.
    let setup = GraphConnection::new(client.clone(), GraphSettings::new(app.clone()));
    setup.prepare(&user).await.unwrap();
    let folders = client
        .get(&format!(
            "/users/{USER}/contactFolders?$select=id,displayName"
        ))
        .await
        .unwrap();
    let folder = folders["value"][0]["id"].as_str().unwrap().to_owned();
    for (url, body) in [
        (
            format!("/users/{USER}/contactFolders/{folder}/contacts"),
            json!({"givenName": "Grace", "surname": "Hopper",
                   "emailAddresses": [{"address": "grace@example.test"}]}),
        ),
        (
            format!("/users/{USER}/calendar/events"),
            json!({"subject": "Customer lunch",
                   "start": {"dateTime": (soon + chrono::Duration::days(1)).format("%Y-%m-%dT12:00:00").to_string(), "timeZone": "UTC"},
                   "end": {"dateTime": (soon + chrono::Duration::days(1)).format("%Y-%m-%dT13:00:00").to_string(), "timeZone": "UTC"}}),
        ),
    ] {
        client
            .send(GraphRequest::new(Method::POST, url).json(body))
            .await
            .unwrap();
    }

    let conn = GraphConnection::new(client.clone(), GraphSettings::new(app));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("exsync.db")).unwrap());
    let syncer = Arc::new(Syncer {
        exchange: Mailboxes::new(
            Unconfigured(Backend::Ews),
            conn,
            BackendRule::every_user(Backend::Graph),
        ),
        crm: SalesforceSide {
            client: SalesforceClient::new(crm_config).unwrap(),
        },
        store,
        configurations: vec![SyncConfiguration {
            name: "sales".into(),
            active: true,
            contacts: KindRules::default_for(ItemKind::Contact),
            contact_scope: ContactScope::Owned,
            contact_condition: None,
            events: KindRules::default_for(ItemKind::Event),
            users: BTreeSet::new(),
            groups: BTreeSet::from([PROFILE.to_owned()]),
        }],
        concurrency: 1,
        slice: exsync_engine::sync::pass::SLICE,
        worker: None,
    });

    let report = syncer.run_pass(&PassOptions::default()).await.unwrap();
    assert_eq!(report.users.len(), 2, "{report:?}");
    let report_of = |report: &exsync_engine::sync::service::PassReport, address: &str| {
        report
            .users
            .iter()
            .find(|u| u.user.as_ref().map(UserKey::as_str) == Some(address))
            .cloned()
            .unwrap()
    };
    let user_report = report_of(&report, USER);
    assert_eq!(user_report.error, None, "{user_report:?}");
    assert_eq!(user_report.backend, Some(Backend::Graph));
    // The mailbox outside the app's scope fails alone, with the commands that fix it.
    let outside = report_of(&report, OUTSIDE);
    let error = outside.error.clone().unwrap_or_default();
    assert!(
        error.contains(&format!(
            "Test-ServicePrincipalAuthorization -Identity {} -Resource {OUTSIDE}",
            graph_sim.info.client_id
        )),
        "{outside:?}"
    );

    // Both sides hold both records.
    let mailbox = &syncer.exchange.graph();
    let mut read = Vec::new();
    for kind in [ItemKind::Contact, ItemKind::Event] {
        let (mut cursor, mut ids) = (None::<String>, Vec::new());
        loop {
            let page = mailbox
                .changes_page(&user, kind, cursor.as_deref().or(Some("")))
                .await
                .unwrap();
            ids.extend(page.upserts.into_iter().map(|(id, _)| id));
            cursor = Some(page.cursor);
            if page.last {
                break;
            }
        }
        let fetched = mailbox.fetch(&user, kind, &ids).await.unwrap();
        read.push(
            fetched
                .into_iter()
                .map(|owned| owned.change)
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        names(&read[0], ItemKind::Contact),
        BTreeSet::from(["Hopper".to_owned(), "Lovelace".to_owned()])
    );
    assert_eq!(
        names(&read[1], ItemKind::Event),
        BTreeSet::from(["Customer lunch".to_owned(), "Quarterly review".to_owned()])
    );
    let crm_contacts = crm
        .query_all(&format!(
            "SELECT Id, LastName FROM Contact WHERE OwnerId = '{owner}'"
        ))
        .await
        .unwrap();
    let crm_names: BTreeSet<String> = crm_contacts
        .iter()
        .filter_map(|r| r["LastName"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        crm_names,
        BTreeSet::from(["Hopper".to_owned(), "Lovelace".to_owned()])
    );
    let crm_events = crm
        .query_all(&format!(
            "SELECT Id, Subject FROM Event WHERE OwnerId = '{owner}'"
        ))
        .await
        .unwrap();
    let crm_subjects: BTreeSet<String> = crm_events
        .iter()
        .filter_map(|r| r["Subject"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        crm_subjects,
        BTreeSet::from(["Customer lunch".to_owned(), "Quarterly review".to_owned()])
    );

    // Nothing changed since: the next pass writes nothing on either side.
    let report = syncer.run_pass(&PassOptions::default()).await.unwrap();
    let user_report = report_of(&report, USER);
    assert_eq!(user_report.error, None, "{user_report:?}");
    assert!(user_report.written.is_empty(), "{user_report:?}");

    // The owner edits the CRM's contact in Outlook: the edit reaches the CRM.
    let lovelace = read[0]
        .iter()
        .find_map(|c| match c {
            Change::Upsert(item)
                if Contact::from_fields(&item.fields).unwrap().last_name == "Lovelace" =>
            {
                Some(item.id.as_str().to_owned())
            }
            _ => None,
        })
        .unwrap();
    client
        .send(
            GraphRequest::new(
                Method::PATCH,
                format!(
                    "/users/{USER}/contacts/{}",
                    exsync_engine::connect::graph::graph_id(&lovelace)
                ),
            )
            .json(json!({"jobTitle": "Countess"})),
        )
        .await
        .unwrap();
    let report = syncer.run_pass(&PassOptions::default()).await.unwrap();
    let user_report = report_of(&report, USER);
    assert_eq!(user_report.error, None, "{user_report:?}");
    let titles = crm
        .query_all(&format!(
            "SELECT Id, Title FROM Contact WHERE OwnerId = '{owner}' AND LastName = 'Lovelace'"
        ))
        .await
        .unwrap();
    assert_eq!(titles.len(), 1, "{titles:?}");
    assert_eq!(titles[0]["Title"], "Countess", "{titles:?}");
}
