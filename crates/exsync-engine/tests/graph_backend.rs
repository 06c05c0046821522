//! The Graph mailbox backend against the in-process Graph simulator over HTTPS: the sync
//! folder, contacts and events deltas, an expired token, fetching a series, conditional
//! writes, finding a retried create, and a mailbox outside the app's scope.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use exsync_core::plan::{Change, WriteResult};
use exsync_core::{
    AllowList, Contact, CrmId, Day, Event, EventTime, ExchangeId, ItemId, ItemKind, Occurrence,
    Pattern, Record, Recurrence, RecurrenceEnd, UserKey,
};
use exsync_engine::connect::graph::{ews_id, graph_id, GraphConnection, GraphSettings};
use exsync_engine::sync::sides::{CopyEvidence, MailboxPage, MailboxSide, SideErrorKind, Write};
use exsync_graph::{Cloud, Credential, GraphClient, GraphConfig, GraphRequest, Secret};
use exsync_sim::graph::{GraphSim, Options, SimInfo};
use reqwest::Method;
use serde_json::{json, Value};

const USER: &str = "user1@contoso.test";

struct Lab {
    sim: GraphSim,
    _dir: tempfile::TempDir,
    client: Arc<GraphClient>,
    conn: GraphConnection,
    http: reqwest::Client,
}

async fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("app-key.pem"),
        exsync_testkit::keys::jwt_key_pem(),
    )
    .unwrap();
    let options = Options {
        domain: "contoso.test".into(),
        mailboxes: 1,
        out_of_scope: 1,
    };
    let sim = GraphSim::start_with(dir.path(), "127.0.0.1:0".parse().unwrap(), &options)
        .await
        .unwrap();
    let info = &sim.info;
    let authority = info.authority_url().to_owned();
    let mut config = GraphConfig::new(
        info.tenant_id.clone(),
        info.client_id.clone(),
        Cloud::custom(authority, info.graph_url.clone()),
        Credential::Secret(Secret::new(info.client_secret.clone())),
    );
    let pem = std::fs::read(&info.ca_pem).unwrap();
    config.ca_pem = Some(pem.clone());
    config.system_roots = false;
    config.allow = AllowList::new(["127.0.0.1"]);
    config.limits.timeout = Duration::from_secs(20);
    config.limits.retry_base = Duration::from_millis(50);
    let client = Arc::new(GraphClient::new(config).unwrap());
    let mut settings = GraphSettings::new(info.client_id.clone());
    settings.page_size = 3;
    let conn = GraphConnection::new(client.clone(), settings);
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    Lab {
        sim,
        _dir: dir,
        client,
        conn,
        http,
    }
}

impl Lab {
    fn info(&self) -> &SimInfo {
        &self.sim.info
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.info().control_url);
        let reply = self
            .http
            .post(url)
            .json(&body)
            .bearer_auth(&self.info().control_token)
            .send()
            .await
            .unwrap();
        let status = reply.status();
        let body: Value = reply.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// What the simulator counted since the last `/counters/reset`.
    async fn counters(&self) -> Value {
        let url = format!("{}/counters", self.info().control_url);
        let reply = self
            .http
            .get(url)
            .bearer_auth(&self.info().control_token)
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_success(), "{}", reply.status());
        reply.json().await.unwrap()
    }

    /// A request as the mailbox's owner would make it in Outlook.
    async fn outlook(&self, method: Method, url: &str, body: Option<Value>) -> Value {
        let mut request = GraphRequest::new(method, url);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.client.send(request).await.unwrap().body
    }

    async fn folder_ids(&self) -> Vec<String> {
        let list = self
            .outlook(
                Method::GET,
                &format!("/users/{USER}/contactFolders?$select=id,displayName"),
                None,
            )
            .await;
        list["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["displayName"] == "Salesforce_Sync")
            .map(|f| f["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Every page from `cursor` to the last one.
    async fn listing(&self, kind: ItemKind, cursor: Option<&str>) -> (Vec<MailboxPage>, String) {
        listing_by(&self.conn, kind, cursor).await
    }
}

/// Every page from `cursor` to the last one, as `conn` (a process of its own) lists them.
async fn listing_by(
    conn: &GraphConnection,
    kind: ItemKind,
    cursor: Option<&str>,
) -> (Vec<MailboxPage>, String) {
    let user = user();
    let mut pages = Vec::new();
    let mut position = cursor.map(str::to_owned);
    loop {
        let page = conn
            .changes_page(&user, kind, position.as_deref())
            .await
            .unwrap();
        position = Some(page.cursor.clone());
        let last = page.last;
        pages.push(page);
        if last {
            return (pages, position.unwrap_or_default());
        }
        assert!(pages.len() < 100, "the listing does not end");
    }
}

fn user() -> UserKey {
    UserKey::parse(USER).unwrap()
}

fn upserted(pages: &[MailboxPage]) -> BTreeSet<String> {
    pages
        .iter()
        .flat_map(|p| p.upserts.iter().map(|(id, _)| id.to_string()))
        .collect()
}

fn deleted(pages: &[MailboxPage]) -> BTreeSet<String> {
    pages
        .iter()
        .flat_map(|p| p.deleted.iter().map(ToString::to_string))
        .collect()
}

fn contact(first: &str, last: &str) -> Contact {
    let mut c = Contact {
        first_name: first.into(),
        last_name: last.into(),
        emails: vec![format!("{}@example.test", last.to_lowercase())],
        company: "Engines".into(),
        ..Contact::default()
    };
    c.normalize();
    c
}

fn done_id(result: &WriteResult) -> (String, Option<String>) {
    match result {
        WriteResult::Done { id, version } => (id.as_str().to_owned(), version.clone()),
        other => panic!("not written: {other:?}"),
    }
}

async fn create_contacts(lab: &Lab, people: &[(&str, &str, &str)]) -> Vec<(String, String)> {
    let fields: Vec<_> = people
        .iter()
        .map(|(f, l, _)| contact(f, l).to_fields())
        .collect();
    let origins: Vec<ItemId> = people
        .iter()
        .map(|(_, _, crm)| ItemId::Crm(CrmId::new(*crm)))
        .collect();
    let writes: Vec<Write<'_>> = fields
        .iter()
        .zip(&origins)
        .map(|(fields, origin)| Write::Create { fields, origin })
        .collect();
    let results = lab
        .conn
        .write(&user(), ItemKind::Contact, &writes)
        .await
        .unwrap();
    results
        .iter()
        .map(|r| {
            let (id, version) = done_id(r);
            (id, version.expect("a version"))
        })
        .collect()
}

#[tokio::test]
async fn graph_prepare_makes_the_sync_folder_once() {
    let lab = lab().await;
    lab.conn.prepare(&user()).await.unwrap();
    lab.conn.prepare(&user()).await.unwrap();
    assert_eq!(lab.folder_ids().await.len(), 1);
    // Another process finds it rather than making a second one.
    let other = GraphConnection::new(
        lab.client.clone(),
        GraphSettings::new(lab.info().client_id.clone()),
    );
    other.prepare(&user()).await.unwrap();
    assert_eq!(lab.folder_ids().await.len(), 1);
    // The folder made by this pass is empty: its first listing is skipped.
    let page = lab
        .conn
        .changes_page(&user(), ItemKind::Contact, None)
        .await
        .unwrap();
    assert!(page.last && page.upserts.is_empty() && page.cursor.is_empty());
    assert_eq!(graph_id(&page.folder.unwrap().0), lab.folder_ids().await[0]);
}

#[tokio::test]
async fn graph_contacts_list_in_full_then_by_delta_and_restart_when_the_token_expires() {
    let lab = lab().await;
    let made = create_contacts(
        &lab,
        &[
            ("Ada", "Lovelace", "003A"),
            ("Alan", "Turing", "003B"),
            ("Grace", "Hopper", "003C"),
            ("Edsger", "Dijkstra", "003D"),
        ],
    )
    .await;
    let (pages, cursor) = lab.listing(ItemKind::Contact, None).await;
    assert!(pages.len() > 1, "pages of three: {pages:?}");
    assert_eq!(
        upserted(&pages),
        made.iter().map(|(id, _)| id.clone()).collect()
    );
    // The versions listed are the ones the writes answered.
    for (id, version) in &made {
        let listed = pages
            .iter()
            .flat_map(|p| &p.upserts)
            .find(|(i, _)| i.as_str() == id)
            .unwrap();
        assert_eq!(&listed.1, version);
    }
    assert!(cursor.starts_with("graph1:"));

    // Nothing changed: nothing listed.
    let (pages, cursor) = lab.listing(ItemKind::Contact, Some(&cursor)).await;
    assert!(upserted(&pages).is_empty() && deleted(&pages).is_empty());

    // The owner adds one, edits one and deletes one in Outlook.
    let folder = lab.folder_ids().await.remove(0);
    let added = lab
        .outlook(
            Method::POST,
            &format!("/users/{USER}/contactFolders/{folder}/contacts"),
            Some(json!({"givenName": "Barbara", "surname": "Liskov"})),
        )
        .await["id"]
        .as_str()
        .map(ews_id)
        .unwrap();
    lab.outlook(
        Method::PATCH,
        &format!("/users/{USER}/contacts/{}", graph_id(&made[0].0)),
        Some(json!({"jobTitle": "Countess"})),
    )
    .await;
    lab.outlook(
        Method::DELETE,
        &format!("/users/{USER}/contacts/{}", graph_id(&made[1].0)),
        None,
    )
    .await;
    let (pages, cursor) = lab.listing(ItemKind::Contact, Some(&cursor)).await;
    assert_eq!(
        upserted(&pages),
        BTreeSet::from([added.clone(), made[0].0.clone()])
    );
    assert_eq!(deleted(&pages), BTreeSet::from([made[1].0.clone()]));
    assert!(pages.iter().all(|p| !p.restarted));

    // Graph forgets the token: the folder is listed from the start, and the pass is told.
    lab.control(&format!("/mailboxes/{USER}/expire-delta-tokens"), json!({}))
        .await;
    let (pages, _) = lab.listing(ItemKind::Contact, Some(&cursor)).await;
    assert!(pages[0].restarted);
    assert_eq!(
        upserted(&pages),
        BTreeSet::from([
            added,
            made[0].0.clone(),
            made[2].0.clone(),
            made[3].0.clone()
        ])
    );

    // A cursor of another backend (EWS's SyncState) is refused the same way.
    let page = lab
        .conn
        .changes_page(&user(), ItemKind::Contact, Some("H4sIAAAAAAAEAGNgYGA"))
        .await
        .unwrap();
    assert!(page.restarted);
}

#[tokio::test]
async fn graph_fetch_reads_a_contact_with_its_tag_and_a_gone_one_as_deleted() {
    let lab = lab().await;
    let made = create_contacts(
        &lab,
        &[("Ada", "Lovelace", "003A"), ("Alan", "Turing", "003B")],
    )
    .await;
    lab.outlook(
        Method::DELETE,
        &format!("/users/{USER}/contacts/{}", graph_id(&made[1].0)),
        None,
    )
    .await;
    let fetched = lab
        .conn
        .fetch(
            &user(),
            ItemKind::Contact,
            &[
                ExchangeId::new(made[0].0.as_str()),
                ExchangeId::new(made[1].0.as_str()),
            ],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|read| read.change)
        .collect::<Vec<_>>();
    let Change::Upsert(item) = &fetched[0] else {
        panic!("{fetched:?}")
    };
    assert_eq!(item.origin, Some(ItemId::Crm(CrmId::new("003A"))));
    assert_eq!(item.version.as_deref(), Some(made[0].1.as_str()));
    assert_eq!(
        Contact::from_fields(&item.fields).unwrap(),
        contact("Ada", "Lovelace")
    );
    assert!(matches!(fetched[1], Change::Deleted { .. }), "{fetched:?}");
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> EventTime {
    EventTime::At(Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap())
}

/// A weekly series starting next Monday, with its second occurrence moved and its third
/// cancelled.
fn series() -> Event {
    let today = Utc::now().date_naive();
    let monday = (1..=7)
        .map(|n| today + chrono::Duration::days(n))
        .find(|d| chrono::Datelike::weekday(d) == chrono::Weekday::Mon)
        .unwrap();
    let t = |d: NaiveDate, h: u32| {
        at(
            chrono::Datelike::year(&d),
            chrono::Datelike::month(&d),
            chrono::Datelike::day(&d),
            h,
            0,
        )
    };
    let second = monday + chrono::Duration::days(7);
    let third = monday + chrono::Duration::days(14);
    let mut e = Event::new("Weekly board", t(monday, 9), t(monday, 10));
    e.time_zone = "Europe/Vienna".into();
    e.recurrence = Some(Recurrence {
        pattern: Pattern::Weekly {
            interval: 1,
            days: vec![Day::Monday],
            first_day_of_week: Day::Sunday,
        },
        start_date: monday,
        end: RecurrenceEnd::Count(5),
        deleted: BTreeSet::from([third]),
        modified: vec![Occurrence {
            original_start: t(second, 9),
            start: t(second, 13),
            end: t(second, 14),
            subject: Some("Weekly board, moved".into()),
            location: None,
        }],
    });
    e.normalize();
    e
}

#[tokio::test]
async fn graph_series_with_an_exception_and_a_cancelled_occurrence_is_written_listed_and_fetched_as_one(
) {
    let lab = lab().await;
    let e = series();
    let fields = e.to_fields();
    let origin = ItemId::Crm(CrmId::new("00U1"));
    let single_fields = Event::new("Lunch", at(2026, 12, 20, 12, 0), at(2026, 12, 20, 13, 0));
    let single_fields = single_fields.to_fields();
    let single_origin = ItemId::Crm(CrmId::new("00U2"));
    let results = lab
        .conn
        .write(
            &user(),
            ItemKind::Event,
            &[
                Write::Create {
                    fields: &fields,
                    origin: &origin,
                },
                Write::Create {
                    fields: &single_fields,
                    origin: &single_origin,
                },
            ],
        )
        .await
        .unwrap();
    let (master, version) = done_id(&results[0]);
    let (single, _) = done_id(&results[1]);

    // The listing names the series by its master only, never an occurrence.
    let (pages, cursor) = lab.listing(ItemKind::Event, None).await;
    let listed = upserted(&pages);
    assert!(
        listed.contains(&master) && listed.contains(&single),
        "{listed:?}"
    );
    assert_eq!(listed.len(), 2, "{pages:?}");
    let master_version = pages
        .iter()
        .flat_map(|p| &p.upserts)
        .find(|(id, _)| id.as_str() == master)
        .unwrap()
        .1
        .clone();
    assert_eq!(Some(master_version.clone()), version);

    let fetched = lab
        .conn
        .fetch(
            &user(),
            ItemKind::Event,
            &[ExchangeId::new(master.as_str())],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|read| read.change)
        .collect::<Vec<_>>();
    let Change::Upsert(item) = &fetched[0] else {
        panic!("{fetched:?}")
    };
    assert_eq!(item.origin, Some(origin));
    assert_eq!(item.version.as_deref(), Some(master_version.as_str()));
    let mut read = Event::from_fields(&item.fields).unwrap();
    read.organizer = None;
    assert_eq!(read, e);

    // A fresh process, which did not cancel the occurrence, dates it from the instances.
    let fresh = GraphConnection::new(
        lab.client.clone(),
        GraphSettings::new(lab.info().client_id.clone()),
    );
    let fetched = fresh
        .fetch(
            &user(),
            ItemKind::Event,
            &[ExchangeId::new(master.as_str())],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|read| read.change)
        .collect::<Vec<_>>();
    let Change::Upsert(item) = &fetched[0] else {
        panic!("{fetched:?}")
    };
    let mut read = Event::from_fields(&item.fields).unwrap();
    read.organizer = None;
    assert_eq!(read, e);

    // The owner cancels another occurrence: the next delta names the master.
    let r = e.recurrence.as_ref().unwrap();
    let fourth = r.start_date + chrono::Duration::days(21);
    let (from, to) = exsync_graph::mapping::instances_window(fourth);
    let instances = lab
        .outlook(
            Method::GET,
            &format!(
                "/users/{USER}/events/{}/instances?startDateTime={from}&endDateTime={to}",
                graph_id(&master)
            ),
            None,
        )
        .await;
    let occurrence =
        exsync_graph::mapping::find_occurrence(&e, instances["value"].as_array().unwrap(), fourth)
            .unwrap();
    lab.outlook(
        Method::DELETE,
        &format!("/users/{USER}/events/{occurrence}"),
        None,
    )
    .await;
    let (pages, _) = lab.listing(ItemKind::Event, Some(&cursor)).await;
    assert!(upserted(&pages).contains(&master), "{pages:?}");
    assert!(deleted(&pages).is_empty(), "{pages:?}");
}

/// HTTP requests the simulator answered (a `$batch` is one), from what it counted.
fn http_requests(counters: &Value) -> u64 {
    counters["hosts"]
        .as_object()
        .unwrap()
        .values()
        .map(|host| host["requests"].as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn graph_the_exceptions_of_many_series_are_written_in_batches() {
    let lab = lab().await;
    // The token and the calendar are had before counting.
    let lunch = Event::new("Lunch", at(2026, 12, 20, 12, 0), at(2026, 12, 20, 13, 0)).to_fields();
    let lunch_origin = ItemId::Crm(CrmId::new("00UL"));
    let warm = [Write::Create {
        fields: &lunch,
        origin: &lunch_origin,
    }];
    lab.conn
        .write(&user(), ItemKind::Event, &warm)
        .await
        .unwrap();

    // 25 series in one call, each with a moved and a cancelled occurrence: two chunks of
    // creates (20 and 5).
    const SERIES: usize = 25;
    let events: Vec<Event> = (0..SERIES)
        .map(|i| {
            let mut e = series();
            e.subject = format!("Board {i}");
            e
        })
        .collect();
    let fields: Vec<_> = events.iter().map(Record::to_fields).collect();
    let origins: Vec<ItemId> = (0..SERIES)
        .map(|i| ItemId::Crm(CrmId::new(format!("00U{i:03}"))))
        .collect();
    let writes: Vec<Write<'_>> = fields
        .iter()
        .zip(&origins)
        .map(|(fields, origin)| Write::Create { fields, origin })
        .collect();
    lab.control("/counters/reset", json!({})).await;
    let results = lab
        .conn
        .write(&user(), ItemKind::Event, &writes)
        .await
        .unwrap();
    let counters = lab.counters().await;

    // Per chunk: the creates, the occurrences' lookups (two per series, 20 to a batch), the
    // exceptions in rounds of one per series (two rounds), the masters' versions. Written
    // one series at a time, each series costs five requests of its own: 2 + 125.
    assert_eq!(
        http_requests(&counters),
        (1 + 2 + 2 + 1) + (1 + 1 + 2 + 1),
        "{counters:#}"
    );
    assert_eq!(
        counters["endpoints"]["POST /$batch"],
        json!(11),
        "{counters:#}"
    );

    // Each series reads back whole, with the version its exceptions left it at.
    let masters: Vec<(String, Option<String>)> = results.iter().map(done_id).collect();
    let ids: Vec<ExchangeId> = masters
        .iter()
        .map(|(id, _)| ExchangeId::new(id.as_str()))
        .collect();
    let fetched = lab
        .conn
        .fetch(&user(), ItemKind::Event, &ids)
        .await
        .unwrap()
        .into_iter()
        .map(|read| read.change)
        .collect::<Vec<_>>();
    for ((e, (id, version)), change) in events.iter().zip(&masters).zip(&fetched) {
        let Change::Upsert(item) = change else {
            panic!("{id}: {change:?}")
        };
        assert_eq!(&item.version, version, "{id}");
        let mut read = Event::from_fields(&item.fields).unwrap();
        read.organizer = None;
        assert_eq!(&read, e, "{id}");
    }
}

/// What the series masters a cursor keeps cost: a removed id a process cannot tie to a master
/// (here a single event deleted in Outlook) sends every known series to be read again, one
/// `$batch` per 20. Prints the requests of that listing for several numbers of series.
#[tokio::test]
async fn graph_a_deleted_single_event_costs_one_batch_per_twenty_known_series() {
    let lab = lab().await;
    let mut made = 0;
    let mut figures = Vec::new();
    for series in [0, 20, 40, 100] {
        let events: Vec<_> = (made..series)
            .map(|i| {
                let mut e = series_plain();
                e.subject = format!("Stand-up {i}");
                e.to_fields()
            })
            .collect();
        let origins: Vec<ItemId> = (made..series)
            .map(|i| ItemId::Crm(CrmId::new(format!("00S{i:03}"))))
            .collect();
        let single = Event::new("Dentist", at(2026, 12, 21, 9, 0), at(2026, 12, 21, 10, 0));
        let single = single.to_fields();
        let single_origin = ItemId::Crm(CrmId::new(format!("00D{series:03}")));
        let mut writes: Vec<Write<'_>> = events
            .iter()
            .zip(&origins)
            .map(|(fields, origin)| Write::Create { fields, origin })
            .collect();
        writes.push(Write::Create {
            fields: &single,
            origin: &single_origin,
        });
        let results = lab
            .conn
            .write(&user(), ItemKind::Event, &writes)
            .await
            .unwrap();
        made = series;
        let (dentist, _) = done_id(results.last().unwrap());
        // Listed by a process with pages of the default size, then by one started since, which
        // has seen none of the calendar's ids; meanwhile the owner deletes the single event.
        let process = || {
            GraphConnection::new(
                lab.client.clone(),
                GraphSettings::new(lab.info().client_id.clone()),
            )
        };
        let (_, cursor) = listing_by(&process(), ItemKind::Event, None).await;
        let fresh = process();
        lab.outlook(
            Method::DELETE,
            &format!("/users/{USER}/events/{}", graph_id(&dentist)),
            None,
        )
        .await;
        lab.control("/counters/reset", json!({})).await;
        let (pages, _) = listing_by(&fresh, ItemKind::Event, Some(&cursor)).await;
        assert_eq!(deleted(&pages), BTreeSet::from([dentist]), "{pages:?}");
        let counters = lab.counters().await;
        // The delta page, the read of the removed id, and the known series again.
        let expected = 2 + (series as u64).div_ceil(20);
        assert_eq!(
            http_requests(&counters),
            expected,
            "{series} series: {counters:#}"
        );
        figures.push((series, http_requests(&counters)));
    }
    eprintln!("known series → requests of a listing with one deleted single event: {figures:?}");
}

/// A weekly series with no exception.
fn series_plain() -> Event {
    let mut e = series();
    if let Some(r) = e.recurrence.as_mut() {
        r.deleted.clear();
        r.modified.clear();
    }
    e
}

#[tokio::test]
async fn graph_events_restart_when_the_token_expires_and_keep_events_outside_the_window() {
    let lab = lab().await;
    let inside = Event::new("Inside", at(2026, 12, 20, 12, 0), at(2026, 12, 20, 13, 0));
    let far = Event::new("Far", at(2031, 6, 1, 12, 0), at(2031, 6, 1, 13, 0));
    let (f1, f2) = (inside.to_fields(), far.to_fields());
    let (o1, o2) = (
        ItemId::Crm(CrmId::new("00U1")),
        ItemId::Crm(CrmId::new("00U2")),
    );
    let results = lab
        .conn
        .write(
            &user(),
            ItemKind::Event,
            &[
                Write::Create {
                    fields: &f1,
                    origin: &o1,
                },
                Write::Create {
                    fields: &f2,
                    origin: &o2,
                },
            ],
        )
        .await
        .unwrap();
    let (inside_id, _) = done_id(&results[0]);
    let (far_id, _) = done_id(&results[1]);
    let (pages, cursor) = lab.listing(ItemKind::Event, None).await;
    assert_eq!(upserted(&pages), BTreeSet::from([inside_id.clone()]));

    // Moved out of the window by its owner: Graph says "removed", the backend says changed.
    lab.outlook(
        Method::PATCH,
        &format!("/users/{USER}/events/{}", graph_id(&inside_id)),
        Some(json!({
            "start": {"dateTime": "2031-07-01T12:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2031-07-01T13:00:00", "timeZone": "UTC"},
        })),
    )
    .await;
    let (pages, cursor) = lab.listing(ItemKind::Event, Some(&cursor)).await;
    assert_eq!(upserted(&pages), BTreeSet::from([inside_id.clone()]));
    assert!(deleted(&pages).is_empty());

    lab.control(&format!("/mailboxes/{USER}/expire-delta-tokens"), json!({}))
        .await;
    let (pages, _) = lab.listing(ItemKind::Event, Some(&cursor)).await;
    assert!(pages[0].restarted);
    // A full listing: the events outside the window are in it too, so none counts as deleted.
    assert_eq!(upserted(&pages), BTreeSet::from([inside_id, far_id]));
}

#[tokio::test]
async fn graph_writes_in_a_batch_refuse_a_stale_etag_and_do_the_rest() {
    let lab = lab().await;
    let made = create_contacts(
        &lab,
        &[
            ("Ada", "Lovelace", "003A"),
            ("Alan", "Turing", "003B"),
            ("Grace", "Hopper", "003C"),
        ],
    )
    .await;
    // The third is already gone when the pass deletes it.
    lab.outlook(
        Method::DELETE,
        &format!("/users/{USER}/contacts/{}", graph_id(&made[2].0)),
        None,
    )
    .await;
    // The owner edits the first in Outlook after the pass read it.
    lab.outlook(
        Method::PATCH,
        &format!("/users/{USER}/contacts/{}", graph_id(&made[0].0)),
        Some(json!({"jobTitle": "Countess"})),
    )
    .await;
    let mut a = contact("Ada", "Lovelace");
    a.company = "Analytical".into();
    let mut b = contact("Alan", "Turing");
    b.company = "Bletchley".into();
    let (fa, fb) = (a.to_fields(), b.to_fields());
    let changed = vec!["company".to_owned()];
    let results = lab
        .conn
        .write(
            &user(),
            ItemKind::Contact,
            &[
                Write::Update {
                    id: &made[0].0,
                    fields: &fa,
                    changed: &changed,
                    expected_version: Some(&made[0].1),
                },
                Write::Update {
                    id: &made[1].0,
                    fields: &fb,
                    changed: &changed,
                    expected_version: Some(&made[1].1),
                },
                Write::Delete { id: &made[2].0 },
            ],
        )
        .await
        .unwrap();
    match &results[0] {
        WriteResult::Failed { reason } => {
            assert!(
                reason.contains("412") && reason.contains("refetch"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    let (id, version) = done_id(&results[1]);
    assert_eq!(id, made[1].0);
    assert_ne!(version.as_deref(), Some(made[1].1.as_str()));
    assert!(
        matches!(results[2], WriteResult::Done { .. }),
        "{results:?}"
    );
    // Nothing was overwritten: the owner's edit stands, the company is the old one.
    let fetched = lab
        .conn
        .fetch(
            &user(),
            ItemKind::Contact,
            &[ExchangeId::new(made[0].0.as_str())],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|read| read.change)
        .collect::<Vec<_>>();
    let Change::Upsert(item) = &fetched[0] else {
        panic!("{fetched:?}")
    };
    let read = Contact::from_fields(&item.fields).unwrap();
    assert_eq!(
        (read.title.as_str(), read.company.as_str()),
        ("Countess", "Engines")
    );
    // The version the write answered is the one the next fetch reports.
    let fetched = lab
        .conn
        .fetch(
            &user(),
            ItemKind::Contact,
            &[ExchangeId::new(made[1].0.as_str())],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|read| read.change)
        .collect::<Vec<_>>();
    let Change::Upsert(item) = &fetched[0] else {
        panic!("{fetched:?}")
    };
    assert_eq!(item.version, version);
}

#[tokio::test]
async fn graph_a_retried_create_finds_its_first_copy_by_tag() {
    let lab = lab().await;
    let before = Utc::now() - chrono::Duration::seconds(2);
    let made = create_contacts(&lab, &[("Ada", "Lovelace", "003A")]).await;
    let origins = [
        ItemId::Crm(CrmId::new("003A")),
        ItemId::Crm(CrmId::new("003Z")),
    ];
    let found = lab
        .conn
        .find_copies(&user(), ItemKind::Contact, &origins, before)
        .await
        .unwrap();
    match &found[0] {
        CopyEvidence::Present(Change::Upsert(item)) => {
            assert_eq!(item.id.as_str(), made[0].0);
            assert_eq!(item.origin, Some(origins[0].clone()));
        }
        other => panic!("{other:?}"),
    }
    // No copy found, and Graph cannot search Deleted Items: unknown, never "never".
    assert_eq!(found[1], CopyEvidence::Unknown);
    // A copy made before the create was journaled is an earlier one's.
    let later = Utc::now() + chrono::Duration::seconds(5);
    let found = lab
        .conn
        .find_copies(&user(), ItemKind::Contact, &origins[..1], later)
        .await
        .unwrap();
    assert_eq!(found[0], CopyEvidence::Unknown);

    // An event create sent twice (same transactionId) makes one event.
    let e = Event::new("Lunch", at(2026, 12, 20, 12, 0), at(2026, 12, 20, 13, 0)).to_fields();
    let origin = ItemId::Crm(CrmId::new("00U9"));
    let write = [Write::Create {
        fields: &e,
        origin: &origin,
    }];
    let first = lab
        .conn
        .write(&user(), ItemKind::Event, &write)
        .await
        .unwrap();
    let again = lab
        .conn
        .write(&user(), ItemKind::Event, &write)
        .await
        .unwrap();
    assert_eq!(done_id(&first[0]).0, done_id(&again[0]).0);
    let found = lab
        .conn
        .find_copies(&user(), ItemKind::Event, &[origin], before)
        .await
        .unwrap();
    assert!(matches!(found[0], CopyEvidence::Present(_)), "{found:?}");
}

#[tokio::test]
async fn graph_a_mailbox_outside_the_apps_scope_fails_alone_with_the_fix() {
    let lab = lab().await;
    let outside = UserKey::parse(&lab.info().out_of_scope[0]).unwrap();
    let error = lab.conn.prepare(&outside).await.unwrap_err();
    assert_eq!(error.kind, SideErrorKind::User);
    let remedy = error.remedy.clone().unwrap();
    let app = &lab.info().client_id;
    assert!(
        remedy.contains(&format!(
            "Test-ServicePrincipalAuthorization -Identity {app} -Resource {outside}"
        )),
        "{remedy}"
    );
    assert!(
        remedy.contains(&format!(
            "New-ManagementRoleAssignment -App {app} -Role \"Application Contacts.ReadWrite\" -CustomResourceScope <scope>"
        )),
        "{remedy}"
    );
    // The mailbox in scope goes on.
    lab.conn.prepare(&user()).await.unwrap();
    let (pages, _) = lab.listing(ItemKind::Contact, None).await;
    assert!(upserted(&pages).is_empty());
    // A mailbox that leaves the scope later fails the same way.
    lab.control(
        &format!("/mailboxes/{USER}/scope"),
        json!({"in_scope": false}),
    )
    .await;
    let error = lab
        .conn
        .changes_page(&user(), ItemKind::Contact, Some(""))
        .await
        .unwrap_err();
    assert_eq!(error.kind, SideErrorKind::User, "{error}");
    assert!(error
        .to_string()
        .contains("Test-ServicePrincipalAuthorization"));
}

#[tokio::test]
async fn graph_a_phone_update_keeps_the_second_business_number() {
    let lab = lab().await;
    let made = create_contacts(&lab, &[("Ada", "Lovelace", "003A")]).await;
    // The owner adds a second business number in Outlook; it does not sync.
    let current = lab
        .outlook(
            Method::PATCH,
            &format!("/users/{USER}/contacts/{}", graph_id(&made[0].0)),
            Some(json!({"businessPhones": ["+1 555 0100", "+1 555 0199"]})),
        )
        .await;
    let version = current["@odata.etag"].as_str().unwrap().to_owned();
    let mut c = contact("Ada", "Lovelace");
    c.phones
        .insert(exsync_core::PhoneKind::Business, "+1 555 0111".into());
    let fields = c.to_fields();
    let changed = vec!["phones".to_owned()];
    let results = lab
        .conn
        .write(
            &user(),
            ItemKind::Contact,
            &[Write::Update {
                id: &made[0].0,
                fields: &fields,
                changed: &changed,
                expected_version: Some(&version),
            }],
        )
        .await
        .unwrap();
    done_id(&results[0]);
    let item = lab
        .outlook(
            Method::GET,
            &format!(
                "/users/{USER}/contacts/{}?$select=businessPhones",
                graph_id(&made[0].0)
            ),
            None,
        )
        .await;
    assert_eq!(
        item["businessPhones"],
        json!(["+1 555 0111", "+1 555 0199"])
    );
}

#[tokio::test]
async fn graph_a_window_that_moved_sets_the_events_delta_up_again_without_a_restart() {
    let lab = lab().await;
    let near = Event::new("Near", at(2026, 12, 20, 12, 0), at(2026, 12, 20, 13, 0));
    let far = Event::new("Far", at(2030, 6, 1, 12, 0), at(2030, 6, 1, 13, 0));
    let (f1, f2) = (near.to_fields(), far.to_fields());
    let (o1, o2) = (
        ItemId::Crm(CrmId::new("00U1")),
        ItemId::Crm(CrmId::new("00U2")),
    );
    let results = lab
        .conn
        .write(
            &user(),
            ItemKind::Event,
            &[
                Write::Create {
                    fields: &f1,
                    origin: &o1,
                },
                Write::Create {
                    fields: &f2,
                    origin: &o2,
                },
            ],
        )
        .await
        .unwrap();
    let (near_id, _) = done_id(&results[0]);
    let (far_id, _) = done_id(&results[1]);
    let (pages, cursor) = lab.listing(ItemKind::Event, None).await;
    assert_eq!(upserted(&pages), BTreeSet::from([near_id.clone()]));

    // The user's configuration now looks four years ahead: the old round is read to its end,
    // then the new window's round lists what it holds; nothing counts as deleted.
    lab.conn.set_window(
        &user(),
        exsync_core::config::Window {
            past_days: 30,
            future_days: 1500,
        },
    );
    let (pages, cursor) = lab.listing(ItemKind::Event, Some(&cursor)).await;
    assert!(
        pages.len() >= 2 && pages.iter().all(|p| !p.restarted),
        "{pages:?}"
    );
    assert_eq!(upserted(&pages), BTreeSet::from([near_id, far_id]));
    assert!(deleted(&pages).is_empty());
    // And the new round's token goes on from there.
    let (pages, _) = lab.listing(ItemKind::Event, Some(&cursor)).await;
    assert!(
        upserted(&pages).is_empty() && deleted(&pages).is_empty(),
        "{pages:?}"
    );
}
