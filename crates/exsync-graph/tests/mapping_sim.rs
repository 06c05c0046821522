//! The Graph mapping against the Graph simulator over real HTTPS: what we create, patch and
//! delete is accepted, and reads back as the record we wrote (contacts, single events, a
//! series with an exception and a cancelled occurrence). The fax, other and assistant
//! numbers are left out: they are MAPI properties addressed by tag (`String 0x3A24`), which
//! Graph takes and the simulator does not yet.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use exsync_core::{
    AllowList, Attendee, AttendeeKind, Contact, CrmId, Day, Event, EventTime, Occurrence, Pattern,
    PhoneKind, Recurrence, RecurrenceEnd, ShowAs,
};
use exsync_graph::mapping::{
    contact_updates, event_expand, event_updates, find_occurrence, instances_window,
    occurrence_patch, read_contact, read_series, write_contact, write_event, CONTACT_SELECT,
    EVENT_SELECT, PREFER_TEXT_BODY,
};
use exsync_graph::{Cloud, Credential, GraphClient, GraphConfig, GraphRequest, Secret};
use exsync_sim::graph::{GraphSim, Options};
use reqwest::Method;
use serde_json::Value;

const USER: &str = "user1@contoso.test";

async fn start() -> (GraphSim, tempfile::TempDir, GraphClient) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("app-key.pem"),
        exsync_testkit::keys::jwt_key_pem(),
    )
    .unwrap();
    let options = Options {
        domain: "contoso.test".into(),
        mailboxes: 1,
        out_of_scope: 0,
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
    config.ca_pem = Some(std::fs::read(&info.ca_pem).unwrap());
    config.system_roots = false;
    config.allow = AllowList::new(["127.0.0.1"]);
    config.limits.timeout = Duration::from_secs(20);
    let client = GraphClient::new(config).unwrap();
    (sim, dir, client)
}

/// Percent-encodes a query value, spaces as `%20` (not form encoding's `+`).
fn enc(s: &str) -> String {
    let form: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
    form.replace('+', "%20")
}

async fn send(client: &GraphClient, method: Method, url: &str, body: Option<Value>) -> Value {
    let mut request = GraphRequest::new(method, url).header("Prefer", PREFER_TEXT_BODY.to_owned());
    if let Some(body) = body {
        request = request.json(body);
    }
    client.send(request).await.unwrap().body
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> EventTime {
    EventTime::At(Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap())
}

#[tokio::test]
async fn mapping_contacts_create_patch_and_read_back_through_the_simulator() {
    let (_sim, _dir, client) = start().await;
    let mut c = Contact {
        first_name: "Ada".into(),
        last_name: "O'Lovelace".into(),
        emails: vec!["ada@contoso.test".into(), "a2@contoso.test".into()],
        company: "Engines".into(),
        title: "Countess".into(),
        notes: "one\ntwo".into(),
        birthday: NaiveDate::from_ymd_opt(1815, 12, 10),
        ..Contact::default()
    };
    c.phones.insert(PhoneKind::Business, "+1 555".into());
    c.phones.insert(PhoneKind::Mobile, "+1 556".into());
    c.phones.insert(PhoneKind::Home, "+1 557".into());
    c.normalize();
    let created = send(
        &client,
        Method::POST,
        &format!("/users/{USER}/contacts"),
        Some(write_contact(&c, Some(&CrmId::new("003X")))),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let url = format!(
        "/users/{USER}/contacts/{id}?$select={CONTACT_SELECT}&$expand={}",
        // Our tag only: the simulator refuses ids by tag (see above), Graph takes them.
        enc(&exsync_graph::mapping::expand_properties(&[
            exsync_graph::mapping::crm_id_property_id()
        ]))
    );
    let item = send(&client, Method::GET, &url, None).await;
    assert_eq!(read_contact(&item).unwrap(), c, "{item:#}");

    let mut changed = c.clone();
    changed.title.clear();
    changed.middle_name = "K.".into();
    changed.emails.truncate(1);
    let patch = contact_updates(
        &changed,
        &["title", "middle_name", "emails"].map(String::from),
    )
    .unwrap();
    send(
        &client,
        Method::PATCH,
        &format!("/users/{USER}/contacts/{id}"),
        Some(Value::Object(patch)),
    )
    .await;
    let item = send(&client, Method::GET, &url, None).await;
    assert_eq!(read_contact(&item).unwrap(), changed, "{item:#}");
}

#[tokio::test]
async fn mapping_events_and_a_series_with_its_edits_read_back_through_the_simulator() {
    let (_sim, _dir, client) = start().await;
    let mut e = Event::new("Board", at(2026, 3, 2, 9, 0), at(2026, 3, 2, 10, 0));
    e.time_zone = "Europe/Vienna".into();
    e.location = "Room 1".into();
    e.body = "Agenda".into();
    e.private = true;
    e.show_as = ShowAs::Tentative;
    e.reminder_minutes = Some(10);
    e.attendees = vec![Attendee {
        email: "bob@contoso.test".into(),
        name: String::new(),
        kind: AttendeeKind::Optional,
    }];
    e.recurrence = Some(Recurrence {
        pattern: Pattern::Weekly {
            interval: 1,
            days: vec![Day::Monday, Day::Thursday],
            first_day_of_week: Day::Sunday,
        },
        start_date: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
        end: RecurrenceEnd::Count(8),
        deleted: BTreeSet::new(),
        modified: Vec::new(),
    });
    e.normalize();
    let created = send(
        &client,
        Method::POST,
        &format!("/users/{USER}/events"),
        Some(write_event(&e, Some(&CrmId::new("00U1")))),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let master_url = format!(
        "/users/{USER}/events/{id}?$select={EVENT_SELECT}&$expand=exceptionOccurrences,{}",
        enc(&event_expand())
    );

    // Move the Thursday of the first week, cancel the Monday of the second.
    let moved_day = NaiveDate::from_ymd_opt(2026, 3, 5).unwrap();
    let cancelled_day = NaiveDate::from_ymd_opt(2026, 3, 9).unwrap();
    let mut ids = Vec::new();
    for day in [moved_day, cancelled_day] {
        let (from, to) = instances_window(day);
        let instances = send(
            &client,
            Method::GET,
            &format!(
                "/users/{USER}/events/{id}/instances?startDateTime={}&endDateTime={}",
                enc(&from),
                enc(&to)
            ),
            None,
        )
        .await;
        let list = instances["value"].as_array().unwrap();
        ids.push(find_occurrence(&e, list, day).expect("the occurrence of that day"));
    }
    let moved = Occurrence {
        original_start: at(2026, 3, 5, 9, 0),
        start: at(2026, 3, 5, 12, 0),
        end: at(2026, 3, 5, 13, 0),
        subject: Some("Board, moved".into()),
        location: None,
    };
    send(
        &client,
        Method::PATCH,
        &format!("/users/{USER}/events/{}", ids[0]),
        Some(Value::Object(occurrence_patch(
            &e,
            &moved,
            exsync_core::zones::DayZone::UTC,
        ))),
    )
    .await;
    send(
        &client,
        Method::DELETE,
        &format!("/users/{USER}/events/{}", ids[1]),
        None,
    )
    .await;

    let mut expected = e.clone();
    if let Some(r) = &mut expected.recurrence {
        r.deleted.insert(cancelled_day);
        r.modified.push(moved);
    }
    let item = send(&client, Method::GET, &master_url, None).await;
    // The cancelled occurrence's id: Graph's name the date (`OID.<master>.<date>`); for any
    // other form the backend knows which id it deleted.
    let cancelled_id = ids[1].clone();
    let resolve = |oid: &str| {
        exsync_graph::mapping::cancelled_occurrence_date(oid)
            .or_else(|| (oid == cancelled_id).then_some(cancelled_day))
    };
    let mut read = read_series(&item, &resolve).unwrap();
    read.organizer = None;
    assert_eq!(read, expected, "{item:#}");

    // A PATCH of the master's plain fields keeps the series and its edits.
    let mut renamed = expected.clone();
    renamed.subject = "Board (new)".into();
    renamed.private = false;
    let patch = event_updates(&renamed, &["subject", "private"].map(String::from)).unwrap();
    send(
        &client,
        Method::PATCH,
        &format!("/users/{USER}/events/{id}"),
        Some(Value::Object(patch)),
    )
    .await;
    let item = send(&client, Method::GET, &master_url, None).await;
    let mut read = read_series(&item, &resolve).unwrap();
    read.organizer = None;
    assert_eq!(read, renamed, "{item:#}");
}
