//! What a record means survives the trip, end to end against both simulators:
//!
//! - an all-day event stays on the same whole days in the CRM and in Outlook, whichever side
//!   it was made on and whatever zone the Outlook copy was made in, and a second pass is idle;
//! - events on the edges of the event window sync exactly once, and once they have left the
//!   window nothing deletes them or copies them again;
//! - an address removed on one side is removed on the other, and a second pass is idle;
//! - an event made beyond the window's end and never edited is copied once the window reaches
//!   it, also when the pass in which it comes due fails.
//!
//! Each runs on both mailbox backends from one body: the Outlook items are made as the
//! mailbox's server stores them (`Lab::outlook_event`, `Lab::all_day_in_outlook`), EWS XML on
//! premises and Graph JSON online.

use exsync_testkit::cli::sync_summaries;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::{shared_key, MASTER_KEY};
use chrono::{DateTime, Days, NaiveDate, SubsecRound, Utc};
use exsync_core::config::Window;
use exsync_core::plan::Change;
use exsync_core::{Address, AddressKind, Contact, Event, EventTime, ItemKind, Side};
use exsync_engine::sync::mailboxes::Backend;
use exsync_engine::sync::service::PassOptions;
use exsync_lab::{lab_configuration, Lab, LabOptions, LabUser};
use exsync_salesforce::{quote, NewRecord};
use serde_json::{json, Value};

/// Past the second both sides stamp modification times with, and the CRM connector's
/// last-second hold-back.
const TICK: Duration = Duration::from_millis(1100);

pub(crate) const IDLE: &str = "created 0 updated 0 deleted 0 conflicts 0 failures 0";

/// A lab of one user whose mailbox is on `backend`, with nothing in it yet, and its
/// `exsync.toml`.
async fn lab(
    dir: &Path,
    backend: Backend,
    options: impl FnOnce(&mut LabOptions),
) -> (Lab, std::path::PathBuf) {
    let mut lab_options = crate::lab_options(dir, 1, backend);
    lab_options.crm_key_pem = Some(shared_key());
    options(&mut lab_options);
    let lab = Lab::start(lab_options).await.unwrap();
    let config = dir.join("exsync.toml");
    lab.write_config(&config, MASTER_KEY).unwrap();
    (lab, config)
}

/// Runs `exsync sync` to its end and returns the user's summary line.
pub(crate) async fn sync(config: &Path) -> String {
    tokio::time::sleep(TICK).await;
    let config = config.to_owned();
    let lines = tokio::task::spawn_blocking(move || {
        sync_summaries(env!("CARGO_BIN_EXE_exsync"), &config, MASTER_KEY)
    })
    .await
    .unwrap();
    assert_eq!(lines.len(), 1, "one summary for the one user: {lines:?}");
    lines[0].clone()
}

/// The user's CRM events, raw, by subject.
async fn crm_events(lab: &Lab, user: &LabUser) -> BTreeMap<String, Vec<Value>> {
    let soql = format!(
        "SELECT Id, Subject, IsAllDayEvent, ActivityDate, DurationInMinutes, StartDateTime, \
         EndDateTime FROM Event WHERE OwnerId = {}",
        quote(user.crm_id.as_str())
    );
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for record in lab.crm.query_all(&soql).await.unwrap() {
        let subject = record["Subject"].as_str().unwrap_or_default().to_owned();
        out.entry(subject).or_default().push(record);
    }
    out
}

/// The user's Outlook events, as the connector reads them, by subject.
async fn outlook_events(lab: &Lab, user: &LabUser) -> BTreeMap<String, Vec<Event>> {
    let mut out: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for change in lab
        .syncer
        .exchange
        .read_folder(&user.key, ItemKind::Event)
        .await
        .unwrap()
    {
        if let Change::Upsert(item) = change {
            let event: Event = exsync_core::Record::from_fields(&item.fields).unwrap();
            out.entry(event.subject.clone()).or_default().push(event);
        }
    }
    out
}

pub(crate) fn days_from_today(days: u64) -> NaiveDate {
    Utc::now()
        .date_naive()
        .checked_add_days(Days::new(days))
        .unwrap()
}

pub(crate) fn plus(date: NaiveDate, days: u64) -> NaiveDate {
    date.checked_add_days(Days::new(days)).unwrap()
}

/// All-day events owned by `user`, made in the CRM: subject, first day and number of days.
pub(crate) async fn crm_all_day(lab: &Lab, user: &LabUser, events: &[(&str, NaiveDate, u64)]) {
    let records: Vec<NewRecord<Event>> = events
        .iter()
        .map(|(subject, first, days)| NewRecord {
            external_key: None,
            owner_id: Some(user.crm_id.as_str().to_owned()),
            record: Event::new(
                subject,
                EventTime::Date(*first),
                EventTime::Date(plus(*first, *days)),
            ),
        })
        .collect();
    for outcome in lab.crm.create_events(&records).await.unwrap() {
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
    }
}

crate::on_each_backend!(all_day_events_keep_their_days_both_ways_in_any_zone);

async fn all_day_events_keep_their_days_both_ways_in_any_zone(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (lab, config) = lab(dir.path(), backend, |_| {}).await;
    let user = &lab.users[0];

    // Made in Outlook by people whose mailboxes are east and west of UTC: Berlin's midnight is
    // the evening before in UTC, Los Angeles' the morning of the same day.
    let berlin = days_from_today(10);
    let los_angeles = days_from_today(20);
    lab.all_day_in_outlook(user, "Outlook Berlin offsite", berlin, 2, "Europe/Berlin")
        .await
        .unwrap();
    lab.all_day_in_outlook(
        user,
        "Outlook LA offsite",
        los_angeles,
        1,
        "America/Los_Angeles",
    )
    .await
    .unwrap();
    // Made in the CRM: a day and three days.
    let crm_one = days_from_today(12);
    let crm_three = days_from_today(30);
    crm_all_day(
        &lab,
        user,
        &[
            ("CRM holiday", crm_one, 1),
            ("CRM trade fair", crm_three, 3),
        ],
    )
    .await;
    let expected = [
        ("Outlook Berlin offsite", berlin, 2),
        ("Outlook LA offsite", los_angeles, 1),
        ("CRM holiday", crm_one, 1),
        ("CRM trade fair", crm_three, 3),
    ];

    let first = sync(&config).await;
    assert!(first.contains("created 4 "), "one copy each way: {first}");

    let crm = crm_events(&lab, user).await;
    let outlook = outlook_events(&lab, user).await;
    for (subject, date, days) in expected {
        let records = crm.get(subject).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(records.len(), 1, "{subject}: one CRM record: {crm:#?}");
        let record = &records[0];
        assert_eq!(
            (
                &record["IsAllDayEvent"],
                &record["ActivityDate"],
                &record["DurationInMinutes"]
            ),
            (
                &json!(true),
                &json!(date.format("%Y-%m-%d").to_string()),
                &json!(days * 1440)
            ),
            "{subject}: all-day in the CRM from {date} for {days} days: {record:#}"
        );
        let items = outlook.get(subject).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(items.len(), 1, "{subject}: one Outlook item: {outlook:#?}");
        assert_eq!(
            (items[0].start, items[0].end),
            (EventTime::Date(date), EventTime::Date(plus(date, days))),
            "{subject}: all-day in Outlook from {date} for {days} days"
        );
    }

    let second = sync(&config).await;
    assert!(second.ends_with(IDLE), "the next pass is idle: {second}");
}

/// An instant `by` after (or before, when negative) `t`.
fn at(t: DateTime<Utc>, by: chrono::Duration) -> EventTime {
    EventTime::At(t + by)
}

crate::on_each_backend!(events_on_the_window_edges_sync_once_and_stay_when_they_leave_it);

async fn events_on_the_window_edges_sync_once_and_stay_when_they_leave_it(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut rules = lab_configuration();
    rules.events.window = Some(Window {
        past_days: 1,
        future_days: 1,
    });
    let (lab, _) = lab(dir.path(), backend, |o| o.configuration = Some(rules)).await;
    let user = &lab.users[0];

    // The passes are run at chosen times so the edges fall where the events are.
    let now = Utc::now().trunc_subsecs(0);
    let day = chrono::Duration::days(1);
    let hour = chrono::Duration::hours(1);
    let second = chrono::Duration::seconds(1);
    let (from, to) = (now - day, now + day);
    // (name, start, end, in the window of the first pass)
    let cases = [
        (
            "ends on the past edge",
            at(from, -hour),
            at(from, chrono::Duration::zero()),
            true,
        ),
        ("spans the past edge", at(from, -hour), at(from, hour), true),
        (
            "ends before the past edge",
            at(from, -hour),
            at(from, -second),
            false,
        ),
        (
            "starts on the future edge",
            at(to, chrono::Duration::zero()),
            at(to, hour),
            true,
        ),
        ("spans the future edge", at(to, -hour), at(to, hour), true),
        (
            "starts after the future edge",
            at(to, second),
            at(to, hour),
            false,
        ),
    ];
    let subject = |side: &str, name: &str| format!("{side} event that {name}");
    let mut crm_new = Vec::new();
    for (name, start, end, _) in &cases {
        let event = |side| Event::new(&subject(side, name), *start, *end);
        lab.outlook_event(user, &event("Outlook")).await.unwrap();
        crm_new.push(NewRecord {
            external_key: None,
            owner_id: Some(user.crm_id.as_str().to_owned()),
            record: event("CRM"),
        });
    }
    for outcome in lab.crm.create_events(&crm_new).await.unwrap() {
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
    }

    let pass = |at: DateTime<Utc>| {
        let lab = &lab;
        async move {
            tokio::time::sleep(TICK).await;
            let report = lab
                .syncer
                .run_pass(&PassOptions {
                    now: Some(at),
                    ..PassOptions::default()
                })
                .await
                .unwrap();
            assert_eq!(report.failed_users(), 0, "{report:#?}");
            report.users[0].counts
        }
    };
    // How many copies of each event each side holds: (CRM, Outlook).
    let copies = || async {
        let crm = crm_events(&lab, user).await;
        let outlook = outlook_events(&lab, user).await;
        let mut out = BTreeMap::new();
        for (name, ..) in &cases {
            for side in ["Outlook", "CRM"] {
                let s = subject(side, name);
                let n = (
                    crm.get(&s).map_or(0, Vec::len),
                    outlook.get(&s).map_or(0, Vec::len),
                );
                out.insert(s, n);
            }
        }
        out
    };
    let expected = |in_window: &dyn Fn(bool) -> bool| {
        let mut out = BTreeMap::new();
        for (name, _, _, first) in &cases {
            let copied = usize::from(in_window(*first));
            out.insert(subject("Outlook", name), (copied, 1));
            out.insert(subject("CRM", name), (1, copied));
        }
        out
    };

    let counts = pass(now).await;
    assert_eq!(
        (counts.created, counts.deleted, counts.failures),
        (8, 0, 0),
        "the four events on or across an edge, made on either side, are copied: {counts:?}"
    );
    assert_eq!(copies().await, expected(&|first| first));
    let counts = pass(now).await;
    assert_eq!(counts, Default::default(), "the same pass again is idle");

    // Three days later every one of them has left the window: nothing is deleted, nothing
    // copied again (an event that enters the window with time is the next test's).
    let after = expected(&|first| first);
    let later = now + day * 3;
    let counts = pass(later).await;
    assert_eq!(
        (counts.created, counts.updated, counts.deleted),
        (0, 0, 0),
        "three days later every event has left the window and nothing is written: {counts:?}"
    );
    assert_eq!(copies().await, after);
    // Edited after they left: the edits are reported, and still nothing is copied or deleted.
    for (side, name) in [
        (Side::Crm, subject("CRM", "spans the past edge")),
        (Side::Exchange, subject("Outlook", "ends on the past edge")),
        (Side::Exchange, subject("CRM", "starts on the future edge")),
    ] {
        lab.edit(side, user, ItemKind::Event, &name, |f| {
            f.insert("location".into(), json!("Moved"));
        })
        .await
        .unwrap();
    }
    let counts = pass(later).await;
    assert_eq!(
        (counts.created, counts.updated, counts.deleted),
        (0, 0, 0),
        "edits outside the window are left alone: {counts:?}"
    );
    assert_eq!(copies().await, after);
}

/// A lab whose event window reaches one day ahead, with an event made two days ahead on each
/// side (subjects "Outlook event two days ahead" and "CRM event two days ahead"), and the time
/// they were made relative to.
async fn events_ahead_of_the_window(dir: &Path, backend: Backend) -> (Lab, DateTime<Utc>) {
    let mut rules = lab_configuration();
    rules.events.window = Some(Window {
        past_days: 1,
        future_days: 1,
    });
    let (lab, _) = lab(dir, backend, |o| o.configuration = Some(rules)).await;
    let user = &lab.users[0];
    let now = Utc::now().trunc_subsecs(0);
    let start = now + chrono::Duration::days(2);
    let event = |side: &str| {
        Event::new(
            &format!("{side} event two days ahead"),
            EventTime::At(start),
            EventTime::At(start + chrono::Duration::hours(1)),
        )
    };
    lab.outlook_event(user, &event("Outlook")).await.unwrap();
    for outcome in lab
        .crm
        .create_events(&[NewRecord {
            external_key: None,
            owner_id: Some(user.crm_id.as_str().to_owned()),
            record: event("CRM"),
        }])
        .await
        .unwrap()
    {
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
    }
    (lab, now)
}

/// One pass of the lab's syncer as if it were `at`, and the user's report.
async fn pass_at(lab: &Lab, at: DateTime<Utc>) -> exsync_engine::sync::pass::UserReport {
    tokio::time::sleep(TICK).await;
    let mut report = lab
        .syncer
        .run_pass(&PassOptions {
            now: Some(at),
            ..PassOptions::default()
        })
        .await
        .unwrap();
    report.users.remove(0)
}

/// Each of the two events ahead is once in the CRM and once in Outlook, and nothing is left to
/// read again.
async fn assert_each_once(lab: &Lab) {
    let user = &lab.users[0];
    let crm = crm_events(lab, user).await;
    let outlook = outlook_events(lab, user).await;
    for side in ["Outlook", "CRM"] {
        let subject = format!("{side} event two days ahead");
        assert_eq!(
            crm.get(&subject).map_or(0, Vec::len),
            1,
            "{subject} in the CRM"
        );
        assert_eq!(
            outlook.get(&subject).map_or(0, Vec::len),
            1,
            "{subject} in Outlook"
        );
    }
    let unresolved = lab.syncer.store.unresolved(&user.key).unwrap();
    assert!(
        unresolved.is_empty(),
        "what came due and synced is not left to read again: {unresolved:?}"
    );
}

/// Forgets what the mailbox's simulator counted so far.
async fn reset_counters(lab: &Lab, backend: Backend) {
    let reset = match backend {
        Backend::Ews => {
            lab.exchange_control(reqwest::Method::DELETE, "/counters", &json!({}))
                .await
        }
        Backend::Graph => {
            lab.graph_control(reqwest::Method::POST, "/counters/reset", &json!({}))
                .await
        }
    };
    reset.unwrap();
}

/// How many events the mailbox's simulator was asked for by id since its counters were reset
/// (EWS `GetItem` requests, Graph reads of one event, each an item of a `$batch`), and all it
/// counted.
async fn events_fetched_by_id(lab: &Lab, backend: Backend) -> (u64, Value) {
    let (counters, [group, key]) = match backend {
        Backend::Ews => (
            lab.exchange_control(reqwest::Method::GET, "/counters", &json!({}))
                .await,
            ["requests_per_operation", "GetItem"],
        ),
        Backend::Graph => (
            lab.graph_control(reqwest::Method::GET, "/counters", &json!({}))
                .await,
            ["endpoints", "GET /users/{id}/events/{id}"],
        ),
    };
    let counters = counters.unwrap();
    let n = counters[group].get(key).and_then(Value::as_u64);
    (n.unwrap_or(0), counters)
}

/// Makes every request to the mailbox's simulator fail with a dropped connection, or, with
/// `unreachable` false, stops doing so.
async fn mailbox_unreachable(lab: &Lab, backend: Backend, unreachable: bool) {
    use reqwest::Method;
    let answer = match (backend, unreachable) {
        (Backend::Ews, true) => {
            let drop = json!({ "drop_connection": { "count": 10_000 } });
            lab.exchange_control(Method::PUT, "/faults", &drop).await
        }
        (Backend::Ews, false) => {
            lab.exchange_control(Method::DELETE, "/faults", &json!({}))
                .await
        }
        (Backend::Graph, true) => {
            let drop = json!({ "drop": true, "count": 10_000 });
            lab.graph_control(Method::POST, "/faults", &drop).await
        }
        (Backend::Graph, false) => {
            lab.graph_control(Method::DELETE, "/faults", &json!({}))
                .await
        }
    };
    answer.unwrap();
}

crate::on_each_backend!(
    an_event_that_enters_the_window_with_time_is_copied_once,
    an_event_that_comes_due_in_a_failing_pass_is_copied_by_the_next,
);

async fn an_event_that_enters_the_window_with_time_is_copied_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (lab, now) = events_ahead_of_the_window(dir.path(), backend).await;
    let day = chrono::Duration::days(1);
    let report = pass_at(&lab, now).await;
    assert_eq!(report.error, None);
    assert_eq!(
        report.counts.created, 0,
        "both are beyond the window: {report:?}"
    );
    // Half a day on, the window still ends before them: nothing is fetched for them.
    reset_counters(&lab, backend).await;
    let report = pass_at(&lab, now + day / 2).await;
    assert_eq!(report.counts, Default::default(), "{report:?}");
    let (fetched, counters) = events_fetched_by_id(&lab, backend).await;
    assert_eq!(fetched, 0, "{counters}");
    // Two days on both are inside it, unchanged: the Outlook one is fetched by its id.
    let report = pass_at(&lab, now + day * 2).await;
    assert_eq!(report.error, None);
    assert_eq!(
        report.counts.created, 2,
        "each is copied once it is in the window: {report:?}"
    );
    let (fetched, counters) = events_fetched_by_id(&lab, backend).await;
    assert!(
        fetched >= 1,
        "what is counted is what fetches it: {counters}"
    );
    let report = pass_at(&lab, now + day * 2).await;
    assert_eq!(report.counts, Default::default(), "and only once");
    assert_each_once(&lab).await;
}

async fn an_event_that_comes_due_in_a_failing_pass_is_copied_by_the_next(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (lab, now) = events_ahead_of_the_window(dir.path(), backend).await;
    let day = chrono::Duration::days(1);
    let report = pass_at(&lab, now).await;
    assert_eq!(report.counts.created, 0, "{report:?}");
    // The pass in which both come due cannot reach the mailbox: it reads the CRM event, and
    // writes nothing.
    mailbox_unreachable(&lab, backend, true).await;
    let report = pass_at(&lab, now + day * 2).await;
    assert!(report.error.is_some(), "{report:?}");
    // The CRM event waits to be read again, by its name as well as its id.
    let waiting = lab.syncer.store.unresolved(&lab.users[0].key).unwrap();
    assert!(
        waiting.iter().any(|u| u
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("CRM event two days ahead ("))),
        "{waiting:?}"
    );
    mailbox_unreachable(&lab, backend, false).await;
    let report = pass_at(&lab, now + day * 2).await;
    assert_eq!(report.error, None);
    assert_eq!(
        report.counts.created, 2,
        "the next pass copies each: {report:?}"
    );
    let report = pass_at(&lab, now + day * 2).await;
    assert_eq!(report.counts, Default::default(), "and only once");
    assert_each_once(&lab).await;
}

fn address(street: &str) -> Address {
    Address {
        street: street.into(),
        city: "Springfield".into(),
        state: "IL".into(),
        postal_code: "62701".into(),
        country: "USA".into(),
    }
}

crate::on_each_backend!(a_removed_address_is_removed_on_the_other_side);

async fn a_removed_address_is_removed_on_the_other_side(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (lab, config) = lab(dir.path(), backend, |_| {}).await;
    let user = &lab.users[0];

    let contact = |last: &str, street: &str| {
        let mut c = Contact {
            first_name: "Ada".into(),
            last_name: last.into(),
            company: "Analytical Engines".into(),
            ..Contact::default()
        };
        c.addresses.insert(AddressKind::Business, address(street));
        c
    };
    // One made in Outlook, one in the CRM; each will lose its address on the other side.
    lab.outlook_contact(user, &contact("Outlookmade", "1 Elm St"))
        .await
        .unwrap();
    for outcome in lab
        .crm
        .create_contacts(&[NewRecord {
            external_key: None,
            owner_id: Some(user.crm_id.as_str().to_owned()),
            record: contact("Crmmade", "2 Oak St"),
        }])
        .await
        .unwrap()
    {
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
    }

    let first = sync(&config).await;
    assert!(first.contains("created 2 "), "one copy each way: {first}");
    let business = |fields: &exsync_core::Fields| fields["addresses"]["business"].clone();
    for (name, street) in [("Outlookmade", "1 Elm St"), ("Crmmade", "2 Oak St")] {
        let expected = serde_json::to_value(address(street)).unwrap();
        for side in [Side::Crm, Side::Exchange] {
            let item = match side {
                Side::Crm => lab.crm_record(user, ItemKind::Contact, name).await,
                Side::Exchange => lab.exchange_item(user, ItemKind::Contact, name).await,
            }
            .unwrap();
            assert_eq!(business(&item.fields), expected, "{name} on {side:?}");
        }
    }
    assert!(sync(&config).await.ends_with(IDLE));

    // Cleared where the other side made it: the CRM contact in Outlook, the Outlook contact in
    // the CRM.
    for (side, name) in [(Side::Exchange, "Crmmade"), (Side::Crm, "Outlookmade")] {
        lab.edit(side, user, ItemKind::Contact, name, |f| {
            f.remove("addresses");
        })
        .await
        .unwrap();
    }
    let edited = lab
        .exchange_item(user, ItemKind::Contact, "Crmmade")
        .await
        .unwrap();
    assert_eq!(
        edited.fields.get("addresses"),
        None,
        "the address is gone in Outlook before the pass"
    );

    let pass = sync(&config).await;
    assert!(
        pass.contains("updated 2 ") && pass.contains(" conflicts 0 "),
        "each removal is carried across: {pass}"
    );
    let soql = format!(
        "SELECT LastName, MailingStreet, MailingCity, MailingState, MailingPostalCode, \
         MailingCountry FROM Contact WHERE OwnerId = {}",
        quote(user.crm_id.as_str())
    );
    for record in lab.crm.query_all(&soql).await.unwrap() {
        for field in [
            "MailingStreet",
            "MailingCity",
            "MailingState",
            "MailingPostalCode",
            "MailingCountry",
        ] {
            let value = record.get(field).cloned().unwrap_or(Value::Null);
            assert!(
                value.is_null() || value == json!(""),
                "{field} is cleared in the CRM: {record:#}"
            );
        }
    }
    for name in ["Outlookmade", "Crmmade"] {
        let item = lab
            .exchange_item(user, ItemKind::Contact, name)
            .await
            .unwrap();
        assert_eq!(
            item.fields.get("addresses"),
            None,
            "{name} has no address in Outlook: {:#?}",
            item.fields
        );
    }

    let again = sync(&config).await;
    assert!(again.ends_with(IDLE), "the next pass is idle: {again}");
}
