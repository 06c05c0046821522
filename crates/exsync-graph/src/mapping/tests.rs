#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csdl;
mod props;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::{json, Value};

use exsync_core::plan::Change;
use exsync_core::tags::PROPERTY_SET_ID;
use exsync_core::zones::DayZone;
use exsync_core::{
    Address, AddressKind, Attendee, AttendeeKind, Contact, CrmId, Day, Event, EventTime, ItemId,
    ItemKind, Occurrence, Pattern, PhoneKind, Recurrence, RecurrenceEnd, ShowAs, WeekIndex,
};

use super::recurrence::{read_recurrence, write_recurrence};
use super::*;

pub(super) fn full_contact() -> Contact {
    let mut c = Contact {
        first_name: "Ada".into(),
        middle_name: "K.".into(),
        last_name: "O'Lovelace & Co <x>".into(),
        emails: vec![
            "ada@contoso.test".into(),
            "a2@contoso.test".into(),
            "a3@x.test".into(),
        ],
        phones: BTreeMap::from([
            (PhoneKind::Business, "+1 555 0100".into()),
            (PhoneKind::Mobile, "+1 555 0101".into()),
            (PhoneKind::Home, "1".into()),
            (PhoneKind::Other, "2".into()),
            (PhoneKind::BusinessFax, "3".into()),
            (PhoneKind::Assistant, "4".into()),
        ]),
        company: "Analytical Engines".into(),
        title: "Countess".into(),
        department: "Maths".into(),
        addresses: BTreeMap::from([
            (
                AddressKind::Business,
                Address {
                    street: "1 Main St\nFloor 2".into(),
                    city: "London".into(),
                    state: "".into(),
                    postal_code: "W1".into(),
                    country: "UK".into(),
                },
            ),
            (
                AddressKind::Home,
                Address {
                    city: "Bath".into(),
                    ..Address::default()
                },
            ),
            (
                AddressKind::Other,
                Address {
                    state: "Somerset".into(),
                    ..Address::default()
                },
            ),
        ]),
        notes: "line 1\nline 2".into(),
        birthday: NaiveDate::from_ymd_opt(1815, 12, 10),
    };
    c.normalize();
    c
}

/// What Graph answers for an item we created: our body plus the server's own properties.
/// Extended property ids come back in another case, as Graph may answer them.
pub(super) fn served(mut body: Value, id: &str) -> Value {
    let map = body.as_object_mut().unwrap();
    map.insert("id".into(), id.into());
    map.insert("changeKey".into(), "CK1".into());
    map.insert("@odata.etag".into(), "W/\"CK1\"".into());
    map.insert(
        "lastModifiedDateTime".into(),
        "2026-03-01T10:00:00.1234567Z".into(),
    );
    if let Some(Value::Array(props)) = map.get_mut("singleValueExtendedProperties") {
        for p in props {
            let id = p["id"].as_str().unwrap().to_ascii_lowercase();
            p["id"] = id.into();
        }
    }
    body
}

#[test]
fn mapping_tag_ids_and_odata_strings() {
    assert_eq!(
        crm_id_property_id(),
        format!("String {{{PROPERTY_SET_ID}}} Name CrmId")
    );
    assert_eq!(odata_string("O'Brien"), "'O''Brien'");
    assert_eq!(
        expand_properties(&["a".into(), "b'c".into()]),
        "singleValueExtendedProperties($filter=id eq 'a' or id eq 'b''c')"
    );
    assert_eq!(
        tag_filter(&CrmId::new("003'X")),
        format!(
            "singleValueExtendedProperties/Any(ep: ep/id eq 'String {{{PROPERTY_SET_ID}}} Name CrmId' and ep/value eq '003''X')"
        )
    );
    assert!(contact_expand().contains("id eq 'String 0x3A24'"));
    assert!(event_expand().contains("Name IanaTimeZone'"));
}

#[test]
fn mapping_contact_round_trips_through_graph_json() {
    let c = full_contact();
    let body = write_contact(&c, Some(&CrmId::new("003XYZ")));
    assert_eq!(body["givenName"], "Ada");
    assert_eq!(body["surname"], "O'Lovelace & Co <x>");
    assert_eq!(body["displayName"], "Ada K. O'Lovelace & Co <x>");
    assert_eq!(body["fileAs"], body["displayName"]);
    assert_eq!(body["jobTitle"], "Countess");
    assert_eq!(body["companyName"], "Analytical Engines");
    assert_eq!(body["businessPhones"], json!(["+1 555 0100"]));
    assert_eq!(body["homePhones"], json!(["1"]));
    assert_eq!(body["mobilePhone"], "+1 555 0101");
    assert_eq!(body["emailAddresses"][2], json!({"address": "a3@x.test"}));
    assert_eq!(
        body["businessAddress"],
        json!({"street": "1 Main St\nFloor 2", "city": "London", "countryOrRegion": "UK", "postalCode": "W1"})
    );
    assert_eq!(body["personalNotes"], "line 1\nline 2");
    assert_eq!(body["birthday"], "1815-12-10T00:00:00Z");
    let item = served(body, "AAA");
    assert_eq!(read_contact(&item).unwrap(), c);
    match item_change(ItemKind::Contact, &item).unwrap() {
        Change::Upsert(i) => {
            assert_eq!(i.id, ItemId::Exchange("AAA".into()));
            assert_eq!(i.version.as_deref(), Some("W/\"CK1\""));
            assert_eq!(i.origin, Some(ItemId::Crm(CrmId::new("003XYZ"))));
            assert_eq!(
                i.modified,
                Some(
                    Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap()
                        + chrono::Duration::nanoseconds(123_456_700)
                )
            );
            assert_eq!(i.fields, exsync_core::Record::to_fields(&c));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mapping_contact_reads_what_other_clients_write() {
    let item = json!({
        "id": "A", "givenName": "Bo", "surname": null, "middleName": "",
        "emailAddresses": [null, {"name": "Bo", "address": "SMTP:bo@x.test"}, {"address": ""},
            {"address": "b2@x.test"}, {"address": "b3@x.test"}, {"address": "b4@x.test"}],
        "businessPhones": ["+1", "+2"], "homePhones": [], "mobilePhone": null,
        "homeAddress": {}, "otherAddress": null,
        "birthday": "1990-05-16T22:00:00Z",
        "singleValueExtendedProperties": [{"id": "String 0x3a24", "value": "fax"}, {"id": "String 0x3A1F", "value": ""}],
    });
    let c = read_contact(&item).unwrap();
    assert_eq!(c.first_name, "Bo");
    assert_eq!(c.emails, ["bo@x.test", "b2@x.test", "b3@x.test"]);
    assert_eq!(
        c.phones,
        BTreeMap::from([
            (PhoneKind::Business, "+1".into()),
            (PhoneKind::BusinessFax, "fax".into())
        ])
    );
    assert!(c.addresses.is_empty());
    // Stored at local midnight east of UTC: the nearest midnight is the day meant.
    assert_eq!(c.birthday, NaiveDate::from_ymd_opt(1990, 5, 17));
    // Birthday as Outlook on the web writes it, at 11:59 on the day.
    let noon = json!({"givenName": "x", "birthday": "1990-05-17T11:59:00Z"});
    assert_eq!(
        read_contact(&noon).unwrap().birthday,
        NaiveDate::from_ymd_opt(1990, 5, 17)
    );
}

#[test]
fn an_item_cut_to_fit_is_read_with_what_was_cut() {
    let item = json!({"id": "A", "surname": "Typed", "givenName": "Ctrl\u{0}x", "companyName": "C".repeat(4000)});
    let (change, notes) = noted_item_change(ItemKind::Contact, &item).unwrap();
    assert_eq!(
        notes,
        [
            "first_name: control characters removed",
            "company: 4000 characters, cut to the first 255"
        ]
    );
    let Change::Upsert(read) = change else {
        panic!("{change:?}")
    };
    assert_eq!(read.fields["first_name"], "Ctrlx");
    assert_eq!(read.fields["company"], "C".repeat(255));
    let event = json!({"id": "E", "subject": "S\u{7}", "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-03-02T10:00:00", "timeZone": "UTC"}});
    let (_, notes) = noted_item_change(ItemKind::Event, &event).unwrap();
    assert_eq!(notes, ["subject: control characters removed"]);
}

#[test]
fn mapping_contact_of_unknown_shape_is_an_error_not_a_panic() {
    for item in [
        json!([]),
        json!("x"),
        json!({"givenName": 3}),
        json!({"emailAddresses": "a@b"}),
        json!({"emailAddresses": [{"address": 1}]}),
        json!({"businessPhones": [1]}),
        json!({"homeAddress": "Oslo"}),
        json!({"homeAddress": {"city": []}}),
        json!({"birthday": "yesterday"}),
        json!({"birthday": 19900517}),
    ] {
        assert!(read_contact(&item).is_err(), "{item}");
    }
    assert_eq!(
        item_change(ItemKind::Contact, &json!({"givenName": "x"})),
        None
    );
    match item_change(ItemKind::Contact, &json!({"id": "A", "givenName": 1})).unwrap() {
        Change::Invalid { id, reason } => {
            assert_eq!(id, ItemId::Exchange("A".into()));
            assert!(reason.contains("givenName"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mapping_contact_values_from_outside_are_bounded() {
    let long = "x".repeat(10_000);
    let item = json!({
        "givenName": long, "personalNotes": "n".repeat(100_000),
        "jobTitle": "a\u{0}b\u{7}c",
        "emailAddresses": (0..5000).map(|i| json!({"address": format!("a{i}@x.test")})).collect::<Vec<_>>(),
    });
    let c = read_contact(&item).unwrap();
    assert_eq!(c.first_name.chars().count(), exsync_core::MAX_LINE);
    assert_eq!(c.notes.chars().count(), exsync_core::MAX_TEXT);
    assert_eq!(c.emails.len(), exsync_core::MAX_EMAILS);
    assert!(!c.title.contains('\u{0}'));
}

#[test]
fn mapping_contact_updates_touch_only_changed_fields_and_clear_as_graph_does() {
    let c = full_contact();
    let patch = contact_updates(&c, &["title".into()]).unwrap();
    assert_eq!(Value::Object(patch), json!({"jobTitle": "Countess"}));

    let mut cleared = c.clone();
    cleared.title.clear();
    cleared.birthday = None;
    cleared.emails.truncate(1);
    cleared.phones.retain(|k, _| *k == PhoneKind::Home);
    cleared.addresses.remove(&AddressKind::Business);
    cleared.notes.clear();
    let patch = contact_updates(
        &cleared,
        &[
            "title",
            "birthday",
            "emails",
            "phones",
            "addresses",
            "notes",
        ]
        .map(String::from),
    )
    .unwrap();
    let empty =
        json!({"street": "", "city": "", "state": "", "countryOrRegion": "", "postalCode": ""});
    assert_eq!(
        Value::Object(patch),
        json!({
            "jobTitle": null, "birthday": null, "personalNotes": null,
            "emailAddresses": [{"address": "ada@contoso.test"}],
            "businessPhones": [], "homePhones": ["1"], "mobilePhone": null,
            "businessAddress": empty,
            "homeAddress": {"street": "", "city": "Bath", "state": "", "countryOrRegion": "", "postalCode": ""},
            "otherAddress": {"street": "", "city": "", "state": "Somerset", "countryOrRegion": "", "postalCode": ""},
            "singleValueExtendedProperties": [
                {"id": "String 0x3A24", "value": ""},
                {"id": "String 0x3A1F", "value": ""},
                {"id": "String 0x3A2E", "value": ""},
            ],
        })
    );
    // The patched contact, as the server then holds it, reads as the record.
    let mut stored = write_contact(&c, None);
    let patch = contact_updates(
        &cleared,
        &[
            "title",
            "birthday",
            "emails",
            "phones",
            "addresses",
            "notes",
        ]
        .map(String::from),
    )
    .unwrap();
    apply_patch(&mut stored, &patch);
    assert_eq!(read_contact(&stored).unwrap(), cleared);

    let mut renamed = c.clone();
    renamed.first_name = "Augusta".into();
    let patch = contact_updates(&renamed, &["first_name".into()]).unwrap();
    assert_eq!(patch["displayName"], "Augusta K. O'Lovelace & Co <x>");
    assert_eq!(patch["fileAs"], patch["displayName"]);
    assert!(contact_updates(&c, &["shoe_size".into()]).is_err());
}

/// What a server does with a PATCH body: top-level properties replaced, extended properties
/// set by id.
pub(super) fn apply_patch(stored: &mut Value, patch: &serde_json::Map<String, Value>) {
    let map = stored.as_object_mut().unwrap();
    for (key, value) in patch {
        if key == "singleValueExtendedProperties" {
            let list = map
                .entry(key.clone())
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .unwrap();
            for p in value.as_array().unwrap() {
                list.retain(|q| q["id"] != p["id"]);
                list.push(p.clone());
            }
        } else {
            map.insert(key.clone(), value.clone());
        }
    }
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> EventTime {
    EventTime::At(Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap())
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

pub(super) fn full_event() -> Event {
    let mut e = Event::new(
        "Board <meeting> & co",
        at(2026, 3, 2, 9, 0),
        at(2026, 3, 2, 10, 30),
    );
    e.location = "Room 1".into();
    e.body = "Agenda:\n1. money".into();
    e.time_zone = "Europe/Vienna".into();
    e.private = true;
    e.show_as = ShowAs::OutOfOffice;
    e.reminder_minutes = Some(30);
    e.categories = vec!["R&D 'core'".into(), "Salesforce".into()];
    e.attendees = vec![
        Attendee {
            email: "bob@contoso.test".into(),
            name: "Bob".into(),
            kind: AttendeeKind::Required,
        },
        Attendee {
            email: "carol@contoso.test".into(),
            name: String::new(),
            kind: AttendeeKind::Optional,
        },
        Attendee {
            email: "room1@contoso.test".into(),
            name: "Room 1".into(),
            kind: AttendeeKind::Resource,
        },
    ];
    e.recurrence = Some(Recurrence {
        pattern: Pattern::Weekly {
            interval: 2,
            days: vec![Day::Monday, Day::Thursday],
            first_day_of_week: Day::Sunday,
        },
        start_date: date(2026, 3, 2),
        end: RecurrenceEnd::Until(date(2026, 12, 31)),
        deleted: BTreeSet::from([date(2026, 3, 16)]),
        modified: vec![
            Occurrence {
                original_start: at(2026, 3, 5, 8, 0),
                start: at(2026, 3, 5, 12, 0),
                end: at(2026, 3, 5, 13, 0),
                subject: Some("Moved board".into()),
                location: None,
            },
            Occurrence {
                original_start: at(2026, 3, 19, 8, 0),
                start: at(2026, 3, 19, 8, 0),
                end: at(2026, 3, 19, 9, 30),
                subject: None,
                location: Some(String::new()),
            },
        ],
    });
    e.normalize();
    e
}

/// A series master as `GET …/events/{id}?$expand=exceptionOccurrences` answers it once its
/// exceptions and cancellations are written: the master's properties, each exception as an
/// event (with its own copy of the series' subject and location unless changed), the
/// cancelled occurrences as ids that name their dates.
pub(super) fn served_event(e: &Event, id: &str) -> Value {
    let body = write_event(e, Some(&CrmId::new("00U1")));
    let mut item = served(body, id);
    item["originalStartTimeZone"] = item["start"]["timeZone"].clone();
    item["originalEndTimeZone"] = item["end"]["timeZone"].clone();
    item["organizer"] = json!({"emailAddress": {"name": "Owner", "address": "owner@contoso.test"}});
    if let Some(r) = &e.recurrence {
        item["type"] = "seriesMaster".into();
        item["cancelledOccurrences"] = r
            .deleted
            .iter()
            .map(|d| Value::from(format!("OID.{id}.{}", d.format("%Y-%m-%d"))))
            .collect();
        item["exceptionOccurrences"] = r
            .modified
            .iter()
            .map(|o| {
                let mut ex = Value::Object(occurrence_patch(e, o, DayZone::UTC));
                ex["type"] = "exception".into();
                ex["seriesMasterId"] = id.into();
                ex["originalStart"] = format_instant(&o.original_start.approx_instant()).into();
                if ex.get("subject").is_none() {
                    ex["subject"] = e.subject.as_str().into();
                }
                if ex.get("location").is_none() {
                    ex["location"] = json!({"displayName": e.location});
                }
                ex
            })
            .collect();
    }
    item
}

#[test]
fn mapping_event_round_trips_through_graph_json() {
    let e = full_event();
    let body = write_event(&e, Some(&CrmId::new("00U1")));
    assert_eq!(
        body["start"],
        json!({"dateTime": "2026-03-02T10:00:00", "timeZone": "W. Europe Standard Time"})
    );
    assert_eq!(body["end"]["dateTime"], "2026-03-02T11:30:00");
    assert_eq!(body["sensitivity"], "private");
    assert_eq!(body["showAs"], "oof");
    assert_eq!(body["isAllDay"], false);
    assert_eq!(body["isReminderOn"], true);
    assert_eq!(body["reminderMinutesBeforeStart"], 30);
    assert_eq!(
        body["body"],
        json!({"contentType": "text", "content": "Agenda:\n1. money"})
    );
    assert_eq!(body["location"], json!({"displayName": "Room 1"}));
    assert_eq!(
        body["attendees"][2],
        json!({"emailAddress": {"address": "room1@contoso.test"}, "type": "resource"})
    );
    assert_eq!(
        body["singleValueExtendedProperties"][1],
        json!({"id": format!("String {{{PROPERTY_SET_ID}}} Name IanaTimeZone"), "value": "Europe/Vienna"})
    );
    let item = served_event(&e, "BBB");
    let read = read_event(&item).unwrap();
    let mut expected = e.clone();
    expected.organizer = Some(Attendee {
        email: "owner@contoso.test".into(),
        name: String::new(),
        kind: AttendeeKind::Required,
    });
    expected.normalize();
    assert_eq!(read, expected);
    match item_change(ItemKind::Event, &item).unwrap() {
        Change::Upsert(i) => {
            assert_eq!(i.origin, Some(ItemId::Crm(CrmId::new("00U1"))));
            assert_eq!(i.fields, exsync_core::Record::to_fields(&expected));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mapping_event_times_read_in_any_zone_graph_answers_in() {
    let item = |start: Value, end: Value| json!({"subject": "x", "start": start, "end": end});
    let expected = (at(2026, 7, 1, 7, 30), at(2026, 7, 1, 8, 0));
    for (start, end) in [
        // Prefer: outlook.timezone="UTC", seven fractional digits.
        (
            json!({"dateTime": "2026-07-01T07:30:00.0000000", "timeZone": "UTC"}),
            json!({"dateTime": "2026-07-01T08:00:00.0000000", "timeZone": "UTC"}),
        ),
        // The event's Windows zone (summer time in Berlin).
        (
            json!({"dateTime": "2026-07-01T09:30:00.0000000", "timeZone": "W. Europe Standard Time"}),
            json!({"dateTime": "2026-07-01T10:00:00", "timeZone": "W. Europe Standard Time"}),
        ),
        // An IANA zone, as `Prefer: outlook.timezone="America/New_York"` answers.
        (
            json!({"dateTime": "2026-07-01T03:30:00.0000000", "timeZone": "America/New_York"}),
            json!({"dateTime": "2026-07-01T04:00:00.0000000", "timeZone": "America/New_York"}),
        ),
        // No zone at all: UTC, as Graph means it.
        (
            json!({"dateTime": "2026-07-01T07:30:00.1234567"}),
            json!({"dateTime": "2026-07-01T08:00:00"}),
        ),
    ] {
        let e = read_event(&item(start.clone(), end)).unwrap();
        assert_eq!((e.start, e.end), expected, "{start}");
    }
    // A zone nobody can place is an error naming it, not a guess.
    let custom = item(
        json!({"dateTime": "2026-07-01T07:30:00", "timeZone": "Customized Time Zone"}),
        json!({"dateTime": "2026-07-01T08:00:00", "timeZone": "UTC"}),
    );
    assert!(read_event(&custom)
        .unwrap_err()
        .contains("Customized Time Zone"));
    // 02:30 on the day Berlin springs forward does not exist: read an hour later, as Outlook
    // shows it; 02:30 on the day it falls back happens twice: the first one.
    let gap = item(
        json!({"dateTime": "2026-03-29T02:30:00", "timeZone": "Europe/Berlin"}),
        json!({"dateTime": "2026-03-29T04:00:00", "timeZone": "Europe/Berlin"}),
    );
    assert_eq!(read_event(&gap).unwrap().start, at(2026, 3, 29, 1, 30));
    let twice = item(
        json!({"dateTime": "2026-10-25T02:30:00", "timeZone": "Europe/Berlin"}),
        json!({"dateTime": "2026-10-25T04:00:00", "timeZone": "Europe/Berlin"}),
    );
    assert_eq!(read_event(&twice).unwrap().start, at(2026, 10, 25, 0, 30));
}

#[test]
fn mapping_all_day_events_are_dates_whatever_zone_answers() {
    let mut e = Event::new(
        "Holiday",
        EventTime::Date(date(2026, 8, 1)),
        EventTime::Date(date(2026, 8, 3)),
    );
    e.show_as = ShowAs::Free;
    let body = write_event(&e, None);
    assert_eq!(body["isAllDay"], true);
    assert_eq!(
        body["start"],
        json!({"dateTime": "2026-08-01T00:00:00", "timeZone": "UTC"})
    );
    assert!(body.get("singleValueExtendedProperties").is_none());
    assert_eq!(read_event(&served(body, "A")).unwrap(), e);
    // Created in Berlin by Outlook, answered in UTC: midnight Berlin is 22:00 UTC in summer.
    let outlook = json!({
        "isAllDay": true, "originalStartTimeZone": "W. Europe Standard Time",
        "start": {"dateTime": "2026-07-31T22:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-08-02T22:00:00.0000000", "timeZone": "UTC"},
        "showAs": "free", "subject": "Holiday",
    });
    assert_eq!(read_event(&outlook).unwrap(), e);
    // Answered floating, at midnight of the zone asked for.
    let floating = json!({
        "isAllDay": true, "originalStartTimeZone": "Pacific Standard Time",
        "start": {"dateTime": "2026-08-01T00:00:00.0000000", "timeZone": "Tokyo Standard Time"},
        "end": {"dateTime": "2026-08-03T00:00:00.0000000", "timeZone": "Tokyo Standard Time"},
        "showAs": "free", "subject": "Holiday",
    });
    assert_eq!(read_event(&floating).unwrap(), e);
}

#[test]
fn mapping_all_day_events_are_written_in_the_owners_zone() {
    let berlin = DayZone::from_iana("Europe/Berlin").unwrap();
    let e = Event::new(
        "Trade fair",
        EventTime::Date(date(2026, 8, 1)),
        EventTime::Date(date(2026, 8, 4)),
    );
    let body = write_event_in(&e, None, berlin);
    assert_eq!(
        (&body["start"], &body["end"]),
        (
            &json!({"dateTime": "2026-08-01T00:00:00", "timeZone": "W. Europe Standard Time"}),
            &json!({"dateTime": "2026-08-04T00:00:00", "timeZone": "W. Europe Standard Time"})
        )
    );
    // Answered in UTC, the Berlin midnights are the same days again.
    let answered = json!({
        "isAllDay": true, "originalStartTimeZone": "W. Europe Standard Time",
        "start": {"dateTime": "2026-07-31T22:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-08-03T22:00:00.0000000", "timeZone": "UTC"},
        "subject": "Trade fair",
    });
    assert_eq!(read_event(&answered).unwrap(), e);
    let patch = event_updates_in(&e, &["start".into()], berlin).unwrap();
    assert_eq!(patch["start"]["timeZone"], "W. Europe Standard Time");
    assert_eq!(patch["end"]["dateTime"], "2026-08-04T00:00:00");
    // A timed event keeps its own zone whatever the owner's.
    let timed = Event::new("Call", at(2026, 8, 1, 9, 0), at(2026, 8, 1, 10, 0));
    assert_eq!(
        write_event_in(&timed, None, berlin)["start"]["timeZone"],
        "UTC"
    );
}

#[test]
fn mapping_event_zone_follows_our_tag_until_outlook_changes_it() {
    let e = full_event();
    let item = served_event(&e, "B");
    assert_eq!(read_event(&item).unwrap().time_zone, "Europe/Vienna");
    // Moved to Tokyo in Outlook: the Windows zone no longer covers our tag.
    let mut moved = item.clone();
    moved["originalStartTimeZone"] = "Tokyo Standard Time".into();
    assert_eq!(read_event(&moved).unwrap().time_zone, "Asia/Tokyo");
    // Created by a client with an IANA zone, no tag of ours.
    let mut iana = item;
    iana["singleValueExtendedProperties"] = json!([]);
    iana["originalStartTimeZone"] = "America/Chicago".into();
    assert_eq!(read_event(&iana).unwrap().time_zone, "America/Chicago");
}

#[test]
fn mapping_event_fields_read_one_by_one() {
    let base = || {
        json!({
            "start": {"dateTime": "2026-07-01T07:30:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-07-01T08:00:00", "timeZone": "UTC"},
        })
    };
    let with = |key: &str, value: Value| {
        let mut item = base();
        item[key] = value;
        read_event(&item)
    };
    assert!(with("sensitivity", "confidential".into()).unwrap().private);
    assert!(with("sensitivity", "private".into()).unwrap().private);
    assert!(!with("sensitivity", "personal".into()).unwrap().private);
    for (name, show_as) in [
        ("free", ShowAs::Free),
        ("tentative", ShowAs::Tentative),
        ("busy", ShowAs::Busy),
        ("oof", ShowAs::OutOfOffice),
        ("workingElsewhere", ShowAs::WorkingElsewhere),
        ("unknown", ShowAs::Busy),
    ] {
        assert_eq!(with("showAs", name.into()).unwrap().show_as, show_as);
    }
    assert_eq!(
        with("isReminderOn", false.into()).unwrap().reminder_minutes,
        None
    );
    let mut item = base();
    item["isReminderOn"] = true.into();
    assert_eq!(read_event(&item).unwrap().reminder_minutes, Some(15));
    item["reminderMinutesBeforeStart"] = 45.into();
    assert_eq!(read_event(&item).unwrap().reminder_minutes, Some(45));
    item["reminderMinutesBeforeStart"] = (-5).into();
    assert!(read_event(&item).is_err());
    assert_eq!(
        with(
            "body",
            json!({"contentType": "html", "content": "<p>a &amp; b</p><br>c"})
        )
        .unwrap()
        .body,
        "a & bc"
    );
    assert_eq!(
        with(
            "attendees",
            json!([
                {"type": "optional", "emailAddress": {"address": " Bob@X.test ", "name": "Bob"}},
                {"emailAddress": {"address": ""}},
                {"type": "resource", "emailAddress": null},
                {"type": "required", "emailAddress": {"address": "owner@x.test"}},
            ])
        )
        .unwrap()
        .attendees,
        [
            Attendee {
                email: "bob@x.test".into(),
                name: String::new(),
                kind: AttendeeKind::Optional
            },
            Attendee {
                email: "owner@x.test".into(),
                name: String::new(),
                kind: AttendeeKind::Required
            },
        ]
    );
    assert_eq!(
        with("categories", json!(["b", " a ", "b"]))
            .unwrap()
            .categories,
        ["a", "b"]
    );
    for (key, bad) in [
        ("subject", json!(1)),
        ("isAllDay", json!("yes")),
        ("attendees", json!({})),
        ("start", json!("2026-07-01")),
        ("end", json!({"dateTime": "soon", "timeZone": "UTC"})),
        ("recurrence", json!({"pattern": {"type": "hourly"}})),
        ("categories", json!([1])),
    ] {
        assert!(with(key, bad.clone()).is_err(), "{key}: {bad}");
    }
    assert!(read_event(&json!({"subject": "no times"})).is_err());
}

fn patterns() -> Vec<Pattern> {
    use Day::{Friday, Monday, Thursday, Tuesday, Wednesday};
    vec![
        Pattern::Daily { interval: 3 },
        Pattern::Weekly {
            interval: 1,
            days: vec![Monday, Tuesday, Wednesday, Thursday, Friday],
            first_day_of_week: Monday,
        },
        Pattern::AbsoluteMonthly {
            interval: 2,
            day_of_month: 31,
        },
        Pattern::RelativeMonthly {
            interval: 1,
            day: Day::Weekday,
            index: WeekIndex::Last,
        },
        Pattern::RelativeMonthly {
            interval: 3,
            day: Day::Day,
            index: WeekIndex::Second,
        },
        Pattern::RelativeMonthly {
            interval: 1,
            day: Day::WeekendDay,
            index: WeekIndex::First,
        },
        Pattern::RelativeMonthly {
            interval: 1,
            day: Day::Friday,
            index: WeekIndex::Third,
        },
        Pattern::AbsoluteYearly {
            month: 2,
            day_of_month: 29,
        },
        Pattern::RelativeYearly {
            month: 11,
            day: Thursday,
            index: WeekIndex::Fourth,
        },
    ]
}

#[test]
fn mapping_every_pattern_and_range_round_trips() {
    for pattern in patterns() {
        for end in [
            RecurrenceEnd::Never,
            RecurrenceEnd::Count(7),
            RecurrenceEnd::Until(date(2027, 1, 1)),
        ] {
            let r = Recurrence {
                pattern: pattern.clone(),
                start_date: date(2026, 3, 2),
                end,
                deleted: BTreeSet::new(),
                modified: Vec::new(),
            };
            let v = write_recurrence(&r);
            assert_eq!(read_recurrence(&v).unwrap(), r, "{v}");
        }
    }
    let weekday = write_recurrence(&Recurrence {
        pattern: Pattern::RelativeMonthly {
            interval: 1,
            day: Day::Weekday,
            index: WeekIndex::Last,
        },
        start_date: date(2026, 3, 2),
        end: RecurrenceEnd::Count(3),
        deleted: BTreeSet::new(),
        modified: Vec::new(),
    });
    assert_eq!(
        weekday,
        json!({
            "pattern": {"type": "relativeMonthly", "interval": 1, "index": "last",
                "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"]},
            "range": {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 3},
        })
    );
}

#[test]
fn mapping_recurrence_as_graph_answers_it() {
    // Graph answers every pattern field and the range's unused ones, with defaults.
    let v = json!({
        "pattern": {"type": "weekly", "interval": 1, "month": 0, "dayOfMonth": 0,
            "daysOfWeek": ["thursday", "monday"], "firstDayOfWeek": "sunday", "index": "first"},
        "range": {"type": "noEnd", "startDate": "2026-03-02", "endDate": "0001-01-01",
            "recurrenceTimeZone": "W. Europe Standard Time", "numberOfOccurrences": 0},
    });
    assert_eq!(
        read_recurrence(&v).unwrap(),
        Recurrence {
            pattern: Pattern::Weekly {
                interval: 1,
                days: vec![Day::Monday, Day::Thursday],
                first_day_of_week: Day::Sunday,
            },
            start_date: date(2026, 3, 2),
            end: RecurrenceEnd::Never,
            deleted: BTreeSet::new(),
            modified: Vec::new(),
        }
    );
}

#[test]
fn mapping_bad_recurrence_is_refused_with_reason() {
    let range = json!({"type": "noEnd", "startDate": "2026-01-01"});
    for pattern in [
        json!({"type": "weekly", "interval": 1, "daysOfWeek": []}),
        json!({"type": "daily", "interval": 0}),
        json!({"type": "daily", "interval": -1}),
        json!({"type": "daily"}),
        json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["monday", "friday"], "index": "first"}),
        json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["monday"], "index": "fifth"}),
        json!({"type": "absoluteYearly", "interval": 1, "month": 13, "dayOfMonth": 1}),
        json!({"type": "weekly", "interval": 1, "daysOfWeek": ["funday"]}),
    ] {
        let v = json!({"pattern": pattern, "range": range});
        assert!(read_recurrence(&v).is_err(), "{v}");
    }
    let daily = json!({"type": "daily", "interval": 1});
    for range in [
        json!({"type": "endDate", "startDate": "2026-01-01", "endDate": "2025-01-01"}),
        json!({"type": "numbered", "startDate": "2026-01-01", "numberOfOccurrences": 0}),
        json!({"type": "noEnd"}),
        json!({"type": "forever", "startDate": "2026-01-01"}),
    ] {
        let v = json!({"pattern": daily, "range": range});
        assert!(read_recurrence(&v).is_err(), "{v}");
    }
    assert!(read_recurrence(&json!({"range": range})).is_err());
}

#[test]
fn mapping_series_reads_its_exceptions_and_cancellations() {
    let e = full_event();
    let r = read_event(&served_event(&e, "M"))
        .unwrap()
        .recurrence
        .unwrap();
    assert_eq!(r.deleted, BTreeSet::from([date(2026, 3, 16)]));
    assert_eq!(r.modified, e.recurrence.unwrap().modified);
    // An exception Graph answers in the series' own zone reads as the same instant.
    let item = json!({
        "start": {"dateTime": "2026-03-02T08:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-03-02T09:00:00", "timeZone": "UTC"},
        "originalStartTimeZone": "W. Europe Standard Time",
        "subject": "S", "location": {"displayName": "L"},
        "recurrence": {"pattern": {"type": "daily", "interval": 1},
            "range": {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 10}},
        "cancelledOccurrences": ["OID.AAMkAGI=.2026-03-06"],
        "exceptionOccurrences": [{
            "type": "exception", "originalStart": "2026-03-04T08:00:00Z",
            "start": {"dateTime": "2026-03-04T11:00:00.0000000", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2026-03-04T12:00:00.0000000", "timeZone": "W. Europe Standard Time"},
            "subject": "S", "location": {"displayName": "Elsewhere"},
        }],
    });
    let e = read_event(&item).unwrap();
    assert_eq!(e.time_zone, "Europe/Berlin");
    let r = e.recurrence.unwrap();
    assert_eq!(r.deleted, BTreeSet::from([date(2026, 3, 6)]));
    assert_eq!(
        r.modified,
        [Occurrence {
            original_start: at(2026, 3, 4, 8, 0),
            start: at(2026, 3, 4, 10, 0),
            end: at(2026, 3, 4, 11, 0),
            subject: None,
            location: Some("Elsewhere".into()),
        }]
    );
    // Ids that name no date need the backend's own resolver (e.g. from /instances).
    let mut opaque = item.clone();
    opaque["cancelledOccurrences"] = json!(["AAMkOPAQUE"]);
    assert!(read_event(&opaque).unwrap_err().contains("AAMkOPAQUE"));
    let resolved = read_series(&opaque, &|id| {
        (id == "AAMkOPAQUE").then(|| date(2026, 3, 7))
    })
    .unwrap();
    assert_eq!(
        resolved.recurrence.unwrap().deleted,
        BTreeSet::from([date(2026, 3, 7)])
    );
    assert_eq!(
        cancelled_occurrence_date("OID.AAMk.AA=.2020-04-30"),
        Some(date(2020, 4, 30))
    );
    assert_eq!(cancelled_occurrence_date("OID.AAMk"), None);
}

#[test]
fn mapping_all_day_series_exceptions_are_dates() {
    let mut e = Event::new(
        "Days",
        EventTime::Date(date(2026, 3, 2)),
        EventTime::Date(date(2026, 3, 3)),
    );
    e.recurrence = Some(Recurrence {
        pattern: Pattern::Daily { interval: 1 },
        start_date: date(2026, 3, 2),
        end: RecurrenceEnd::Count(5),
        deleted: BTreeSet::from([date(2026, 3, 3)]),
        modified: vec![Occurrence {
            original_start: EventTime::Date(date(2026, 3, 4)),
            start: EventTime::Date(date(2026, 3, 10)),
            end: EventTime::Date(date(2026, 3, 11)),
            subject: None,
            location: None,
        }],
    });
    e.normalize();
    assert_eq!(
        read_event(&served_event(&e, "D")).unwrap().recurrence,
        e.recurrence
    );
}

#[test]
fn mapping_event_updates_touch_only_changed_fields() {
    let e = full_event();
    let patch = event_updates(&e, &["subject".into(), "organizer".into()]).unwrap();
    assert_eq!(
        Value::Object(patch),
        json!({"subject": "Board <meeting> & co"})
    );
    let patch = event_updates(&e, &["start".into()]).unwrap();
    let keys: Vec<&str> = patch.keys().map(String::as_str).collect();
    assert_eq!(keys, ["end", "isAllDay", "start"]);
    let mut cleared = e.clone();
    cleared.subject.clear();
    cleared.location.clear();
    cleared.body.clear();
    cleared.attendees.clear();
    cleared.categories.clear();
    cleared.reminder_minutes = None;
    cleared.recurrence = None;
    cleared.private = false;
    cleared.show_as = ShowAs::Busy;
    let all: Vec<String> = [
        "subject",
        "location",
        "body",
        "attendees",
        "categories",
        "reminder_minutes",
        "recurrence",
        "private",
        "show_as",
        "time_zone",
    ]
    .map(String::from)
    .to_vec();
    let patch = event_updates(&cleared, &all).unwrap();
    assert_eq!(patch["subject"], Value::Null);
    assert_eq!(patch["location"], json!({"displayName": ""}));
    assert_eq!(patch["body"], json!({"contentType": "text", "content": ""}));
    assert_eq!(patch["attendees"], json!([]));
    assert_eq!(patch["categories"], json!([]));
    assert_eq!(patch["isReminderOn"], false);
    assert_eq!(patch["recurrence"], Value::Null);
    assert_eq!(patch["sensitivity"], "normal");
    assert_eq!(patch["showAs"], "busy");
    // Applied to the stored series, the patch leaves the cleared record (the zone goes with
    // the series: a single event keeps none).
    let mut stored = write_event(&e, None);
    apply_patch(&mut stored, &patch);
    let mut expected = cleared.clone();
    expected.normalize();
    assert_eq!(read_event(&stored).unwrap(), expected);
    assert!(event_updates(&e, &["weather".into()]).is_err());
}

#[test]
fn mapping_a_changed_zone_rewrites_times_and_our_tag() {
    let mut e = full_event();
    e.time_zone = "America/New_York".into();
    let patch = event_updates(&e, &["time_zone".into()]).unwrap();
    assert_eq!(
        patch["start"],
        json!({"dateTime": "2026-03-02T04:00:00", "timeZone": "Eastern Standard Time"})
    );
    assert_eq!(
        patch["singleValueExtendedProperties"],
        json!([{"id": property_id("IanaTimeZone"), "value": "America/New_York"}])
    );
    let mut stored = served_event(&full_event(), "M");
    apply_patch(&mut stored, &patch);
    stored["originalStartTimeZone"] = "Eastern Standard Time".into();
    assert_eq!(read_event(&stored).unwrap().time_zone, "America/New_York");
}

#[test]
fn mapping_occurrences_are_found_patched_and_cancelled_by_id() {
    let e = full_event();
    let instances = [
        json!({"id": "I1", "type": "occurrence", "originalStart": "2026-03-05T08:00:00Z",
            "start": {"dateTime": "2026-03-05T08:00:00.0000000", "timeZone": "UTC"}}),
        // No originalStart selected: its start tells the date.
        json!({"id": "I2", "type": "occurrence",
            "start": {"dateTime": "2026-03-09T09:00:00.0000000", "timeZone": "W. Europe Standard Time"}}),
        json!({"id": "M", "type": "seriesMaster", "originalStart": "2026-03-12T08:00:00Z"}),
        json!({"id": "I4", "type": "exception", "originalStart": "2026-03-19T08:00:00Z"}),
    ];
    assert_eq!(
        find_occurrence(&e, &instances, date(2026, 3, 5)).as_deref(),
        Some("I1")
    );
    assert_eq!(
        find_occurrence(&e, &instances, date(2026, 3, 9)).as_deref(),
        Some("I2")
    );
    assert_eq!(find_occurrence(&e, &instances, date(2026, 3, 12)), None);
    assert_eq!(
        find_occurrence(&e, &instances, date(2026, 3, 19)).as_deref(),
        Some("I4")
    );
    assert_eq!(
        instances_window(date(2026, 3, 5)),
        ("2026-03-04T00:00:00Z".into(), "2026-03-07T00:00:00Z".into())
    );
    let o = &e.recurrence.as_ref().unwrap().modified[0];
    assert_eq!(
        Value::Object(occurrence_patch(&e, o, DayZone::UTC)),
        json!({
            "start": {"dateTime": "2026-03-05T13:00:00", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2026-03-05T14:00:00", "timeZone": "W. Europe Standard Time"},
            "subject": "Moved board",
        })
    );
    assert_eq!(
        occurrence_date(&e, &at(2026, 3, 5, 23, 30)),
        date(2026, 3, 6)
    );
}

#[test]
fn mapping_second_phone_numbers_survive_a_phone_update() {
    let c = full_contact();
    let current = json!({"businessPhones": ["old", "+2 second"], "homePhones": ["h1"]});
    let patch = contact_updates_keeping(&c, &["phones".into()], &current).unwrap();
    assert_eq!(patch["businessPhones"], json!(["+1 555 0100", "+2 second"]));
    assert_eq!(patch["homePhones"], json!(["1"]));
    let mut cleared = c.clone();
    cleared.phones.clear();
    let patch = contact_updates_keeping(&cleared, &["phones".into()], &current).unwrap();
    assert_eq!(patch["businessPhones"], json!([]));
    let patch = contact_updates_keeping(&c, &["title".into()], &current).unwrap();
    assert!(patch.get("businessPhones").is_none());
}

#[test]
fn mapping_an_occurrence_is_not_read_as_a_record_of_its_own() {
    let mut item = served_event(&full_event(), "M");
    item["type"] = "exception".into();
    assert!(read_event(&item).unwrap_err().contains("series master"));
    item["type"] = "occurrence".into();
    assert!(matches!(
        item_change(ItemKind::Event, &item),
        Some(Change::Invalid { .. })
    ));
}

#[test]
fn mapping_json_we_send_matches_graphs_schema() {
    let Some(csdl) = csdl::Csdl::load() else {
        return;
    };
    for (select, type_name) in [(CONTACT_SELECT, "contact"), (EVENT_SELECT, "event")] {
        let names: serde_json::Map<String, Value> = select
            .split(',')
            .map(|n| (n.to_owned(), Value::Null))
            .collect();
        let problems = csdl.check(&Value::Object(names), type_name);
        assert!(problems.is_empty(), "{select}: {problems:?}");
    }
    let c = full_contact();
    let e = full_event();
    let mut all_day = Event::new(
        "Off",
        EventTime::Date(date(2026, 8, 1)),
        EventTime::Date(date(2026, 8, 2)),
    );
    all_day.recurrence = Some(Recurrence {
        pattern: Pattern::RelativeYearly {
            month: 8,
            day: Day::WeekendDay,
            index: WeekIndex::First,
        },
        start_date: date(2026, 8, 1),
        end: RecurrenceEnd::Count(3),
        deleted: BTreeSet::new(),
        modified: Vec::new(),
    });
    let contact_fields: Vec<String> = exsync_core::field_names(ItemKind::Contact)
        .iter()
        .map(|s| s.to_string())
        .collect();
    let event_fields: Vec<String> = exsync_core::field_names(ItemKind::Event)
        .iter()
        .map(|s| s.to_string())
        .chain(["categories".to_owned()])
        .collect();
    let mut cleared = Contact {
        first_name: "x".into(),
        ..Contact::default()
    };
    cleared.normalize();
    let mut bodies: Vec<(Value, &str)> = vec![
        (write_contact(&c, Some(&CrmId::new("003"))), "contact"),
        (
            Value::Object(contact_updates(&c, &contact_fields).unwrap()),
            "contact",
        ),
        (
            Value::Object(contact_updates(&cleared, &contact_fields).unwrap()),
            "contact",
        ),
        (write_event(&e, Some(&CrmId::new("00U"))), "event"),
        (write_event(&all_day, None), "event"),
        (
            Value::Object(event_updates(&e, &event_fields).unwrap()),
            "event",
        ),
        (
            Value::Object(event_updates(&all_day, &event_fields).unwrap()),
            "event",
        ),
    ];
    for o in &e.recurrence.as_ref().unwrap().modified {
        bodies.push((
            Value::Object(occurrence_patch(&e, o, DayZone::UTC)),
            "event",
        ));
    }
    for pattern in patterns() {
        let mut series = e.clone();
        if let Some(r) = &mut series.recurrence {
            r.pattern = pattern;
        }
        bodies.push((write_event(&series, None), "event"));
    }
    // What our tests feed the readers is checked too, so they read Graph's shape.
    bodies.push((served_event(&e, "M"), "event"));
    bodies.push((served(write_contact(&c, None), "C"), "contact"));
    for (body, type_name) in bodies {
        let problems = csdl.check(&body, type_name);
        assert!(
            problems.is_empty(),
            "{type_name} {body:#}:\n{}",
            problems.join("\n")
        );
    }
}
