//! Every request body the connector can build validates against Microsoft's EWS schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, TimeZone, Utc};

use exsync_core::{
    Address, AddressKind, Attendee, AttendeeKind, Contact, CrmId, Day, Event, EventTime,
    ExchangeId, ItemKind, Pattern, PhoneKind, Recurrence, RecurrenceEnd, ShowAs, WeekIndex,
};
use exsync_ews::testing::{contact_updates, event_updates};
use exsync_ews::testing::{envelope, folders, items, sync};
use exsync_ews::XmlWriter;
use exsync_ews::{write_contact, write_event, FolderRef, ItemRef};
use exsync_testkit::schema::{run_validator, Envelopes};

fn contact() -> Contact {
    Contact {
        first_name: "Ada".into(),
        middle_name: "K".into(),
        last_name: "Lovelace".into(),
        emails: vec!["a@x.test".into(), "b@x.test".into(), "c@x.test".into()],
        phones: BTreeMap::from([
            (PhoneKind::Business, "1".into()),
            (PhoneKind::Mobile, "2".into()),
            (PhoneKind::Home, "3".into()),
            (PhoneKind::Other, "4".into()),
            (PhoneKind::BusinessFax, "5".into()),
            (PhoneKind::Assistant, "6".into()),
        ]),
        company: "Engines".into(),
        title: "Countess".into(),
        department: "Maths".into(),
        addresses: BTreeMap::from([(
            AddressKind::Business,
            Address {
                street: "1 Main".into(),
                city: "London".into(),
                state: "LDN".into(),
                postal_code: "W1".into(),
                country: "UK".into(),
            },
        )]),
        notes: "notes".into(),
        birthday: NaiveDate::from_ymd_opt(1815, 12, 10),
    }
}

fn event(pattern: Pattern, end: RecurrenceEnd) -> Event {
    let start = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
    let mut e = Event::new(
        "Sync",
        EventTime::At(start),
        EventTime::At(start + chrono::Duration::hours(1)),
    );
    e.location = "Room".into();
    // Categories sit where the schema orders them in a CalendarItem, escaped.
    e.categories = vec!["Salesforce".into(), "R&D <west>".into()];
    e.body = "Body".into();
    e.time_zone = "America/New_York".into();
    e.private = true;
    e.show_as = ShowAs::Tentative;
    e.reminder_minutes = Some(10);
    e.attendees = vec![
        Attendee {
            email: "r@x.test".into(),
            name: "R".into(),
            kind: AttendeeKind::Required,
        },
        Attendee {
            email: "o@x.test".into(),
            name: String::new(),
            kind: AttendeeKind::Optional,
        },
        Attendee {
            email: "room@x.test".into(),
            name: "Room".into(),
            kind: AttendeeKind::Resource,
        },
    ];
    e.recurrence = Some(Recurrence {
        pattern,
        start_date: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
        end,
        deleted: BTreeSet::new(),
        modified: Vec::new(),
    });
    e
}

fn patterns() -> Vec<(Pattern, RecurrenceEnd)> {
    let until = RecurrenceEnd::Until(NaiveDate::from_ymd_opt(2026, 12, 31).unwrap());
    vec![
        (Pattern::Daily { interval: 2 }, RecurrenceEnd::Never),
        (
            Pattern::Weekly {
                interval: 1,
                days: vec![Day::Monday, Day::Friday],
                first_day_of_week: Day::Monday,
            },
            until,
        ),
        (
            Pattern::AbsoluteMonthly {
                interval: 1,
                day_of_month: 15,
            },
            RecurrenceEnd::Count(5),
        ),
        (
            Pattern::RelativeMonthly {
                interval: 2,
                day: Day::WeekendDay,
                index: WeekIndex::Last,
            },
            until,
        ),
        (
            Pattern::AbsoluteYearly {
                month: 7,
                day_of_month: 4,
            },
            RecurrenceEnd::Never,
        ),
        (
            Pattern::RelativeYearly {
                month: 11,
                day: Day::Thursday,
                index: WeekIndex::Fourth,
            },
            RecurrenceEnd::Count(3),
        ),
    ]
}

#[test]
fn every_request_body_is_schema_valid() {
    let dir = tempfile::tempdir().unwrap();
    let folder = FolderRef {
        id: "AAMkFolder=".into(),
        change_key: "AQ".into(),
        distinguished: false,
    };
    let item = ItemRef {
        id: ExchangeId::new("AAMkItem="),
        change_key: "CQAAAA".into(),
    };
    let crm = CrmId::new("003000000000001AAA");
    let mut bodies: Vec<(String, String)> = vec![
        (
            "get_contacts".into(),
            folders::get_distinguished("contacts"),
        ),
        (
            "get_calendar".into(),
            folders::get_distinguished("calendar"),
        ),
        (
            "find_folder".into(),
            folders::find_child("contacts", "Salesforce_Sync"),
        ),
        (
            "create_folder".into(),
            folders::create_contacts_folder("contacts", "Salesforce_Sync"),
        ),
        ("sync_first".into(), sync::request(&folder, None, 512)),
        (
            "sync_next".into(),
            sync::request(&folder, Some("H4sIAAA="), 9999),
        ),
        (
            "get_contacts_items".into(),
            items::get_items(ItemKind::Contact, &[item.id.clone(), ExchangeId::new("2")]),
        ),
        (
            "get_events".into(),
            items::get_items(ItemKind::Event, std::slice::from_ref(&item.id)),
        ),
        (
            "delete_contacts".into(),
            items::delete_items(ItemKind::Contact, std::slice::from_ref(&item.id)),
        ),
        (
            "delete_events".into(),
            items::delete_items(ItemKind::Event, std::slice::from_ref(&item.id)),
        ),
        // The calendar is named by its role, never looked up.
        (
            "sync_calendar".into(),
            sync::request(&FolderRef::distinguished("calendar"), None, 512),
        ),
        (
            "find_tag_in_calendar".into(),
            items::find_by_crm_id(&FolderRef::distinguished("calendar"), &crm),
        ),
        ("find_tag".into(), items::find_by_crm_id(&folder, &crm)),
        (
            "get_masters".into(),
            items::get_masters(std::slice::from_ref(&item.id)),
        ),
        (
            "calendar_view".into(),
            items::calendar_view(
                &folder,
                Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
                Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap(),
                1000,
            ),
        ),
    ];
    // Contacts: a full create, and an update of every field (set) and of every field emptied
    // (delete).
    let c = contact();
    let mut w = XmlWriter::new();
    write_contact(&mut w, &c, Some(&crm));
    bodies.push((
        "create_contact".into(),
        items::create_items(ItemKind::Contact, &folder, &[w.finish()]),
    ));
    let all_contact: Vec<String> = exsync_core::field_names(ItemKind::Contact)
        .iter()
        .map(|s| s.to_string())
        .collect();
    let set = contact_updates(&c, &all_contact).unwrap();
    let cleared = contact_updates(&Contact::default(), &all_contact).unwrap();
    bodies.push((
        "update_contact".into(),
        items::update_items(
            ItemKind::Contact,
            &[(item.clone(), set), (item.clone(), cleared)],
        ),
    ));
    // Events: one create per pattern, and full updates.
    let all_event: Vec<String> = exsync_core::field_names(ItemKind::Event)
        .iter()
        .map(|s| s.to_string())
        .collect();
    for (i, (pattern, end)) in patterns().into_iter().enumerate() {
        let e = event(pattern, end);
        let mut w = XmlWriter::new();
        write_event(&mut w, &e, Some(&crm));
        bodies.push((
            format!("create_event_{i}"),
            items::create_items(
                ItemKind::Event,
                &FolderRef::distinguished("calendar"),
                &[w.finish()],
            ),
        ));
        let updates = event_updates(&e, &all_event).unwrap();
        bodies.push((
            format!("update_event_{i}"),
            items::update_items(ItemKind::Event, &[(item.clone(), updates)]),
        ));
    }
    bodies.push((
        "delete_occurrences".into(),
        items::delete_occurrences(&item.id, &[2, 5]),
    ));
    let occurrence = exsync_core::Occurrence {
        original_start: EventTime::At(Utc.with_ymd_and_hms(2026, 3, 9, 9, 0, 0).unwrap()),
        start: EventTime::At(Utc.with_ymd_and_hms(2026, 3, 9, 11, 0, 0).unwrap()),
        end: EventTime::At(Utc.with_ymd_and_hms(2026, 3, 9, 12, 0, 0).unwrap()),
        subject: Some("Moved".into()),
        location: Some(String::new()),
    };
    bodies.push((
        "update_occurrences".into(),
        items::update_occurrences(
            &item.id,
            &[(
                3,
                exsync_ews::testing::occurrence_updates(
                    &occurrence,
                    exsync_ews::testing::DayZone::UTC,
                ),
            )],
        ),
    ));
    let mut bare = Event::new(
        "",
        EventTime::Date(NaiveDate::from_ymd_opt(2026, 5, 1).unwrap()),
        EventTime::Date(NaiveDate::from_ymd_opt(2026, 5, 2).unwrap()),
    );
    let mut w = XmlWriter::new();
    write_event(&mut w, &bare, None);
    bodies.push((
        "create_all_day".into(),
        items::create_items(ItemKind::Event, &folder, &[w.finish()]),
    ));
    bare.reminder_minutes = None;
    let updates = event_updates(&bare, &all_event).unwrap();
    bodies.push((
        "update_event_cleared".into(),
        items::update_items(ItemKind::Event, &[(item.clone(), updates)]),
    ));
    for (name, body) in &bodies {
        std::fs::write(
            dir.path().join(format!("{name}.xml")),
            envelope("ann@contoso.test", body),
        )
        .unwrap();
    }
    if let Some(checked) = exsync_testkit::schema::validate_requests(dir.path()) {
        assert_eq!(checked, bodies.len());
    }
}

/// The validator is not a rubber stamp: a body the schema forbids is reported.
#[test]
fn validator_rejects_an_invalid_body() {
    let dir = tempfile::tempdir().unwrap();
    let folder = FolderRef {
        id: "F".into(),
        change_key: String::new(),
        distinguished: false,
    };
    let bad = sync::request(&folder, None, 512).replace(">512<", ">513<");
    std::fs::write(dir.path().join("bad.xml"), envelope("a@x.test", &bad)).unwrap();
    let Some((code, report)) = run_validator(Envelopes::Requests, dir.path()) else {
        return;
    };
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("MaxChangesReturned"), "{report}");
}
