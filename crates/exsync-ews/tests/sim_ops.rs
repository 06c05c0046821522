//! The operations against the Exchange simulator: folders, sync cursor, batched reads and
//! writes with our tag, conditional updates, deletes, FindItem and CalendarView; every request
//! sent is checked against the schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, TimeZone, Utc};

use common::sim::{Sim, SimOptions};
use exsync_core::plan::Change;
use exsync_core::{
    Attendee, AttendeeKind, Contact, CrmId, Day, Event, EventTime, ExchangeId, ItemId, ItemKind,
    Pattern, PhoneKind, Record, Recurrence, RecurrenceEnd, ShowAs,
};
use exsync_ews::{AuthMode, EwsClient, EwsError, Update};

fn contact(i: usize) -> Contact {
    let mut c = Contact {
        first_name: format!("First{i}"),
        last_name: format!("Last & <{i}>"),
        emails: vec![format!("c{i}@example.test")],
        phones: BTreeMap::from([(PhoneKind::Mobile, format!("+1 555 01{i:02}"))]),
        company: "Acme".into(),
        notes: "met at the fair\nsecond line".into(),
        birthday: NaiveDate::from_ymd_opt(1980, 1, 1 + (i as u32 % 28)),
        ..Contact::default()
    };
    c.normalize();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_lifecycle() {
    let sim = Sim::start(SimOptions::default());
    let trace = tempfile::tempdir().unwrap();
    let client = EwsClient::new(sim.config(AuthMode::Auto, Some(trace.path()))).unwrap();
    let mb = client.mailbox(&sim.allowed_mailbox(), sim.ews_url());

    // The folder is created once and found afterwards.
    let folder = mb.ensure_contacts_folder().await.unwrap();
    assert_eq!(mb.ensure_contacts_folder().await.unwrap().id, folder.id);

    // Nothing to sync yet.
    let first = mb.sync_all(ItemKind::Contact, &folder, None).await.unwrap();
    assert!(first.changes.is_empty(), "{:?}", first.changes);
    assert!(first.last);

    // Create 5 in batches of 2 (three CreateItem calls).
    let records: Vec<(CrmId, exsync_core::Fields)> = (0..5)
        .map(|i| (CrmId::new(format!("003C{i:04}")), contact(i).to_fields()))
        .collect();
    let created = mb
        .create(ItemKind::Contact, &folder, &records)
        .await
        .unwrap();
    let refs: Vec<_> = created.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(refs.len(), 5);

    // The cursor returns them with content, version and tag, and the next page is empty.
    let batch = mb
        .sync_all(ItemKind::Contact, &folder, Some(&first.state))
        .await
        .unwrap();
    assert_eq!(batch.changes.len(), 5);
    for change in &batch.changes {
        let Change::Upsert(item) = change else {
            panic!("{change:?}")
        };
        let Some(ItemId::Crm(crm)) = &item.origin else {
            panic!("untagged {item:?}")
        };
        let (_, fields) = records.iter().find(|(c, _)| c == crm).unwrap();
        assert_eq!(&item.fields, fields);
        assert!(item.version.is_some());
        assert!(item.modified.is_some());
    }
    let quiet = mb
        .sync_all(ItemKind::Contact, &folder, Some(&batch.state))
        .await
        .unwrap();
    assert!(quiet.changes.is_empty());

    // FindItem by tag.
    let found = mb
        .find_by_crm_id(&folder, &CrmId::new("003C0002"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, refs[2].id);
    assert!(mb
        .find_by_crm_id(&folder, &CrmId::new("003NOPE"))
        .await
        .unwrap()
        .is_none());

    // Update only the changed field; the ChangeKey moves on.
    let mut changed = contact(0);
    changed.title = "CEO".into();
    changed.emails.push("second@example.test".into());
    let updated = mb
        .update(
            ItemKind::Contact,
            &[Update {
                item: refs[0].clone(),
                fields: changed.to_fields(),
                changed: vec!["title".into(), "emails".into()],
            }],
        )
        .await
        .unwrap();
    let new_ref = updated[0].as_ref().unwrap().clone();
    assert_ne!(new_ref.change_key, refs[0].change_key);
    let items = mb
        .get_items(ItemKind::Contact, &[refs[0].id.clone()])
        .await
        .unwrap();
    assert_eq!(items[0].fields, changed.to_fields());

    // The old ChangeKey is stale now: a typed error, and nothing written.
    let mut other = contact(0);
    other.title = "Intern".into();
    let stale = mb
        .update(
            ItemKind::Contact,
            &[Update {
                item: refs[0].clone(),
                fields: other.to_fields(),
                changed: vec!["title".into()],
            }],
        )
        .await
        .unwrap();
    assert!(
        matches!(stale[0], Err(EwsError::StaleChangeKey { .. })),
        "{:?}",
        stale[0]
    );
    let items = mb
        .get_items(ItemKind::Contact, &[refs[0].id.clone()])
        .await
        .unwrap();
    assert_eq!(items[0].fields, changed.to_fields());

    // Deletes, including one already gone.
    let ids = vec![refs[3].id.clone(), refs[4].id.clone()];
    let deleted = mb.delete(ItemKind::Contact, &ids).await.unwrap();
    assert!(deleted.iter().all(|r| r.is_ok()), "{deleted:?}");
    let again = mb.delete(ItemKind::Contact, &ids).await.unwrap();
    assert!(again.iter().all(|r| r.is_ok()), "{again:?}");

    let after = mb
        .sync_all(ItemKind::Contact, &folder, Some(&batch.state))
        .await
        .unwrap();
    let deleted_ids: BTreeSet<_> = after
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Deleted { id } => Some(id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        deleted_ids,
        ids.iter()
            .cloned()
            .map(ItemId::Exchange)
            .collect::<BTreeSet<_>>()
    );

    // A gone id reads as deleted.
    let gone = mb
        .get_changes(ItemKind::Contact, &[refs[3].id.clone()])
        .await
        .unwrap();
    assert!(matches!(gone[0], Change::Deleted { .. }), "{gone:?}");

    // Every call carried the impersonation header and X-AnchorMailbox for this user.
    let user = sim.allowed_mailbox();
    let mut calls = 0;
    for entry in std::fs::read_dir(trace.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".http.txt") {
            calls += 1;
            let meta = std::fs::read_to_string(&path).unwrap();
            assert!(
                meta.contains(&format!("X-AnchorMailbox: {user}")),
                "{name}: {meta}"
            );
        } else if !name.ends_with(".response.xml") {
            let body = std::fs::read_to_string(&path).unwrap();
            assert!(
                body.contains(&format!(
                    "<t:PrimarySmtpAddress>{user}</t:PrimarySmtpAddress>"
                )) && body.contains("RequestServerVersion Version=\"Exchange2013_SP1\""),
                "{name}"
            );
        }
    }
    assert!(calls > 10, "{calls}");
    exsync_testkit::schema::validate_requests(trace.path());
}

/// The check every simulator runs on the requests it was sent fails on an invalid one. Without
/// Microsoft's schema there is nothing to check against: the validator says it skipped, and so
/// does this test.
#[test]
fn the_trace_check_catches_an_invalid_request() {
    let sim = Sim::start(SimOptions::default());
    std::fs::create_dir_all(sim.client_trace()).unwrap();
    let bad = exsync_ews::testing::envelope("a@contoso.test", "<m:SyncFolderItems/>");
    std::fs::write(sim.client_trace().join("000000-SyncFolderItems.xml"), bad).unwrap();
    let schema_found = exsync_testkit::schema::run_validator(
        exsync_testkit::schema::Envelopes::Requests,
        &sim.client_trace(),
    )
    .is_some();
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(sim)));
    if !schema_found {
        assert!(dropped.is_ok(), "without the schema the check skips");
        return;
    }
    let message = dropped.expect_err("the invalid request is caught when the simulator stops");
    let text = message
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| message.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert!(text.contains("schema validation failed"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_pages_and_restarts_on_a_refused_state() {
    let sim = Sim::start(SimOptions::default());
    let mut cfg = sim.config(AuthMode::Basic, None);
    cfg.sync_page_size = 3;
    cfg.batch_size = 4;
    cfg.contacts_folder = "CRM Contacts".into();
    let client = EwsClient::new(cfg).unwrap();
    let mb = client.mailbox(&sim.allowed_mailbox(), sim.ews_url());
    let folder = mb.ensure_contacts_folder().await.unwrap();
    // The configured name is what was created.
    let (status, state) = sim.control("GET", "/state", None).await;
    assert_eq!(status, 200);
    assert!(state.to_string().contains("CRM Contacts"), "{state}");
    let records: Vec<_> = (0..10)
        .map(|i| (CrmId::new(format!("003P{i}")), contact(i).to_fields()))
        .collect();
    for r in mb
        .create(ItemKind::Contact, &folder, &records)
        .await
        .unwrap()
    {
        r.unwrap();
    }
    // Page by page: each state covers only its page.
    let page = mb
        .sync_page(ItemKind::Contact, &folder, None, &Default::default())
        .await
        .unwrap();
    assert_eq!(page.changes.len(), 3);
    assert!(!page.last);
    let rest = mb
        .sync_all(ItemKind::Contact, &folder, Some(&page.state))
        .await
        .unwrap();
    assert_eq!(rest.changes.len(), 7);
    assert!(rest.last && !rest.restarted);

    // A state the server refuses: the cursor starts over and says so.
    let restarted = mb
        .sync_all(ItemKind::Contact, &folder, Some("bm90IGEgc3RhdGU="))
        .await
        .unwrap();
    assert!(restarted.restarted);
    assert_eq!(restarted.changes.len(), 10);
}

fn event_in(zone: &str, recurrence: Option<Recurrence>) -> Event {
    let start = Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap();
    let mut e = Event::new(
        "Weekly review",
        EventTime::At(start),
        EventTime::At(start + chrono::Duration::minutes(45)),
    );
    e.location = "Room 4".into();
    e.body = "Agenda".into();
    e.time_zone = zone.into();
    e.private = true;
    e.show_as = ShowAs::Tentative;
    e.reminder_minutes = Some(5);
    e.attendees = vec![Attendee {
        email: "guest@example.test".into(),
        name: "Guest".into(),
        kind: AttendeeKind::Optional,
    }];
    e.recurrence = recurrence;
    e.normalize();
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_round_trip_and_calendar_view() {
    let sim = Sim::start(SimOptions::default());
    let trace = tempfile::tempdir().unwrap();
    let client = EwsClient::new(sim.config(AuthMode::Auto, Some(trace.path()))).unwrap();
    let mb = client.mailbox(&sim.allowed_mailbox(), sim.ews_url());
    let calendar = mb.calendar_folder().await.unwrap();
    let weekly = Recurrence {
        pattern: Pattern::Weekly {
            interval: 1,
            days: vec![Day::Monday, Day::Wednesday],
            first_day_of_week: Day::Monday,
        },
        start_date: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
        end: RecurrenceEnd::Count(6),
        deleted: BTreeSet::new(),
        modified: Vec::new(),
    };
    let mut all_day = Event::new(
        "Offsite",
        EventTime::Date(NaiveDate::from_ymd_opt(2026, 3, 10).unwrap()),
        EventTime::Date(NaiveDate::from_ymd_opt(2026, 3, 12).unwrap()),
    );
    all_day.normalize();
    let events = [
        event_in("Europe/Vienna", Some(weekly)),
        event_in("America/New_York", None),
        all_day,
    ];
    let records: Vec<_> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (CrmId::new(format!("00UE{i}")), e.to_fields()))
        .collect();
    let refs: Vec<_> = mb
        .create(ItemKind::Event, &calendar, &records)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let ids: Vec<ExchangeId> = refs.iter().map(|r| r.id.clone()).collect();
    let items = mb.get_items(ItemKind::Event, &ids).await.unwrap();
    for (item, (_, fields)) in items.iter().zip(&records) {
        assert_eq!(&item.fields, fields);
    }
    let batch = mb.sync_all(ItemKind::Event, &calendar, None).await.unwrap();
    assert_eq!(batch.changes.len(), 3);

    // The window holds the 6 occurrences, the single event and the all-day one.
    let view = mb
        .calendar_view(
            &calendar,
            Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(view.len(), 8, "{view:?}");
    // As records: the two single events and the series once, as its master.
    let window = mb
        .events_in_window(
            &calendar,
            Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap(),
        )
        .await
        .unwrap();
    let mut got: Vec<_> = window
        .iter()
        .map(|c| match c {
            Change::Upsert(item) => (item.id.clone(), item.fields.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want: Vec<_> = refs
        .iter()
        .zip(&records)
        .map(|(r, (_, f))| (ItemId::Exchange(r.id.clone()), f.clone()))
        .collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want);

    // A time change updates start, end and the zone only.
    let mut moved = events[1].clone();
    moved.start = EventTime::At(Utc.with_ymd_and_hms(2026, 3, 3, 15, 0, 0).unwrap());
    moved.end = EventTime::At(Utc.with_ymd_and_hms(2026, 3, 3, 16, 0, 0).unwrap());
    moved.time_zone = "Asia/Tokyo".into();
    let updated = mb
        .update(
            ItemKind::Event,
            &[Update {
                item: refs[1].clone(),
                fields: moved.to_fields(),
                changed: vec!["start".into(), "end".into(), "time_zone".into()],
            }],
        )
        .await
        .unwrap();
    updated[0].as_ref().unwrap();
    let items = mb
        .get_items(ItemKind::Event, &[ids[1].clone()])
        .await
        .unwrap();
    assert_eq!(items[0].fields, moved.to_fields());

    exsync_testkit::schema::validate_requests(trace.path());
}
