#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, TimeZone, Utc};

use exsync_core::plan::Change;
use exsync_core::{
    Address, AddressKind, Attendee, AttendeeKind, Contact, CrmId, Day, Event, EventTime, ItemId,
    ItemKind, Occurrence, Pattern, PhoneKind, Recurrence, RecurrenceEnd, ShowAs, WeekIndex,
};

use super::contact::read_contact;
use super::event::{event_updates, read_event, write_event};
use super::recurrence::{read_recurrence, write_recurrence};
use super::*;
use crate::xml::parse;

fn full_contact() -> Contact {
    let mut c = Contact {
        first_name: "Ada".into(),
        middle_name: "K.".into(),
        last_name: "Lovelace & Co <x>".into(),
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
        ]),
        notes: "line 1\nline 2".into(),
        birthday: NaiveDate::from_ymd_opt(1815, 12, 10),
    };
    c.normalize();
    c
}

fn item_xml(build: impl FnOnce(&mut XmlWriter)) -> Element {
    let mut w = XmlWriter::new();
    build(&mut w);
    let xml = w.finish().replacen(
        "<t:Contact>",
        "<t:Contact xmlns:t=\"urn:t\"><t:ItemId Id=\"AAA\" ChangeKey=\"CK1\"/>",
        1,
    );
    let xml = xml.replacen(
        "<t:CalendarItem>",
        "<t:CalendarItem xmlns:t=\"urn:t\"><t:ItemId Id=\"BBB\" ChangeKey=\"CK2\"/>",
        1,
    );
    parse(&xml).unwrap()
}

#[test]
fn contact_round_trips_through_ews_xml() {
    let c = full_contact();
    let el = item_xml(|w| write_contact(w, &c, Some(&CrmId::new("003XYZ"))));
    assert_eq!(read_contact(&el).unwrap(), c);
    assert_eq!(
        read_extended(&el, CRM_ID_PROPERTY).as_deref(),
        Some("003XYZ")
    );
    match item_change(ItemKind::Contact, &el).unwrap() {
        Change::Upsert(item) => {
            assert_eq!(item.id, ItemId::Exchange("AAA".into()));
            assert_eq!(item.version.as_deref(), Some("CK1"));
            assert_eq!(item.origin, Some(ItemId::Crm(CrmId::new("003XYZ"))));
            assert_eq!(item.fields, exsync_core::Record::to_fields(&c));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_contact_cut_to_fit_is_read_with_what_was_cut() {
    let long = "C".repeat(4000);
    let el = parse(&format!(
        r#"<Contact><ItemId Id="A" ChangeKey="K"/><Surname>Typed</Surname><CompanyName>{long}</CompanyName></Contact>"#
    ))
    .unwrap();
    let (change, notes) = noted_item_change(ItemKind::Contact, &el).unwrap();
    assert_eq!(notes, ["company: 4000 characters, cut to the first 255"]);
    let Change::Upsert(item) = change else {
        panic!("{change:?}")
    };
    assert_eq!(item.fields["company"], "C".repeat(255));
    // What fits needs no word.
    let el = parse(r#"<Contact><ItemId Id="A" ChangeKey="K"/><Surname>Typed</Surname></Contact>"#)
        .unwrap();
    assert_eq!(
        noted_item_change(ItemKind::Contact, &el).unwrap().1,
        Vec::<String>::new()
    );
}

#[test]
fn birthday_stored_at_local_midnight_reads_as_that_day() {
    let el = parse(
        r#"<Contact><ItemId Id="A"/><GivenName>X</GivenName><Birthday>1990-05-16T22:00:00Z</Birthday></Contact>"#,
    )
    .unwrap();
    assert_eq!(
        read_contact(&el).unwrap().birthday,
        NaiveDate::from_ymd_opt(1990, 5, 17)
    );
}

#[test]
fn unreadable_item_becomes_invalid_change() {
    let el = parse(
        r#"<CalendarItem><ItemId Id="A" ChangeKey="B"/><Subject>x</Subject><Start>garbage</Start></CalendarItem>"#,
    )
    .unwrap();
    match item_change(ItemKind::Event, &el).unwrap() {
        Change::Invalid { id, reason } => {
            assert_eq!(id, ItemId::Exchange("A".into()));
            assert!(reason.contains("Start"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> EventTime {
    EventTime::At(Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap())
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn full_event() -> Event {
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
        deleted: BTreeSet::new(),
        modified: Vec::new(),
    });
    e.normalize();
    e
}

#[test]
fn event_round_trips_through_ews_xml() {
    let e = full_event();
    let el = item_xml(|w| write_event(w, &e, Some(&CrmId::new("00U1"))));
    assert_eq!(
        el.child("StartTimeZone").and_then(|z| z.attr("Id")),
        Some("W. Europe Standard Time")
    );
    assert_eq!(read_event(&el).unwrap(), e);
}

#[test]
fn all_day_event_reads_dates_in_its_zone() {
    // Exchange returns an all-day event in UTC: midnight Berlin is 23:00 the day before.
    let el = parse(
        r#"<CalendarItem><ItemId Id="A"/><Start>2026-03-01T23:00:00Z</Start><End>2026-03-02T23:00:00Z</End>
<IsAllDayEvent>true</IsAllDayEvent><StartTimeZone Id="W. Europe Standard Time"/></CalendarItem>"#,
    )
    .unwrap();
    let e = read_event(&el).unwrap();
    assert_eq!(e.start, EventTime::Date(date(2026, 3, 2)));
    assert_eq!(e.end, EventTime::Date(date(2026, 3, 3)));
    assert!(e.time_zone.is_empty());
}

#[test]
fn all_day_event_round_trips() {
    let mut e = Event::new(
        "Holiday",
        EventTime::Date(date(2026, 8, 1)),
        EventTime::Date(date(2026, 8, 3)),
    );
    e.show_as = ShowAs::Free;
    let el = item_xml(|w| write_event(w, &e, None));
    assert_eq!(el.child_text("IsAllDayEvent"), Some("true"));
    assert_eq!(read_event(&el).unwrap(), e);
}

#[test]
fn all_day_event_is_written_as_whole_days_in_the_owners_zone() {
    let berlin = exsync_core::zones::DayZone::from_iana("Europe/Berlin").unwrap();
    let e = Event::new(
        "Trade fair",
        EventTime::Date(date(2026, 8, 1)),
        EventTime::Date(date(2026, 8, 4)),
    );
    let el = item_xml(|w| write_event_in(w, &e, None, berlin));
    // Midnight in Berlin (summer, UTC+2) is 22:00 UTC the evening before.
    assert_eq!(el.child_text("Start"), Some("2026-07-31T22:00:00Z"));
    assert_eq!(el.child_text("End"), Some("2026-08-03T22:00:00Z"));
    for zone in ["StartTimeZone", "EndTimeZone"] {
        assert_eq!(
            el.child(zone).and_then(|z| z.attr("Id")),
            Some("W. Europe Standard Time"),
            "{zone}"
        );
    }
    // Read back in its zone, it is the same days: a second pass sees no change.
    assert_eq!(read_event(&el).unwrap(), e);
}

#[test]
fn all_day_updates_move_times_and_zone_together() {
    let la = exsync_core::zones::DayZone::from_iana("America/Los_Angeles").unwrap();
    let e = Event::new(
        "Offsite",
        EventTime::Date(date(2026, 1, 10)),
        EventTime::Date(date(2026, 1, 11)),
    );
    let updates = event_updates_in(&e, &["start".into()], la).unwrap();
    let set = |uri: &str| {
        updates.iter().find_map(|u| match u {
            FieldUpdate::Set {
                path: FieldPath::Field(f),
                value,
            } if *f == uri => Some(value.clone()),
            _ => None,
        })
    };
    assert!(
        set("calendar:Start")
            .unwrap()
            .contains("2026-01-10T08:00:00Z"),
        "{updates:?}"
    );
    assert!(set("calendar:StartTimeZone")
        .unwrap()
        .contains("Pacific Standard Time"));
    assert!(set("calendar:EndTimeZone")
        .unwrap()
        .contains("Pacific Standard Time"));
    // A timed event keeps its own zone whatever the owner's.
    let timed = Event::new("Call", at(2026, 1, 10, 9, 0), at(2026, 1, 10, 10, 0));
    let el = item_xml(|w| write_event_in(w, &timed, None, la));
    assert_eq!(
        el.child("StartTimeZone").and_then(|z| z.attr("Id")),
        Some("UTC")
    );
}

#[test]
fn zone_changed_in_outlook_wins_over_our_tag() {
    let e = full_event();
    let el = item_xml(|w| write_event(w, &e, None));
    let xml = format!("{el:?}");
    assert!(xml.contains("Europe/Vienna"));
    let mut changed = el.clone();
    for child in &mut changed.children {
        if child.name == "StartTimeZone" {
            child.attrs = vec![("Id".into(), "Tokyo Standard Time".into())];
        }
    }
    assert_eq!(read_event(&changed).unwrap().time_zone, "Asia/Tokyo");
}

#[test]
fn every_pattern_round_trips() {
    use Day::{Friday, Monday, Thursday, Tuesday, Wednesday, Weekday};
    let patterns = [
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
            day: Weekday,
            index: WeekIndex::Last,
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
    ];
    for pattern in patterns {
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
            let mut w = XmlWriter::new();
            write_recurrence(&mut w, &r);
            let xml = w.finish();
            assert_eq!(read_recurrence(&parse(&xml).unwrap()).unwrap(), r, "{xml}");
        }
    }
}

#[test]
fn exceptions_are_read_in_the_event_zone() {
    let el = parse(
        r#"<CalendarItem><ItemId Id="A"/><Start>2026-03-02T08:00:00Z</Start><End>2026-03-02T09:00:00Z</End>
<Recurrence><DailyRecurrence><Interval>1</Interval></DailyRecurrence><NumberedRecurrence><StartDate>2026-03-02+01:00</StartDate><NumberOfOccurrences>10</NumberOfOccurrences></NumberedRecurrence></Recurrence>
<ModifiedOccurrences><Occurrence><ItemId Id="O1"/><Start>2026-03-04T10:00:00Z</Start><End>2026-03-04T11:00:00Z</End><OriginalStart>2026-03-04T08:00:00Z</OriginalStart></Occurrence></ModifiedOccurrences>
<DeletedOccurrences><DeletedOccurrence><Start>2026-03-05T23:30:00Z</Start></DeletedOccurrence></DeletedOccurrences>
<StartTimeZone Id="W. Europe Standard Time"/></CalendarItem>"#,
    )
    .unwrap();
    let e = read_event(&el).unwrap();
    let r = e.recurrence.unwrap();
    // 23:30 UTC is already the next day in Berlin.
    assert_eq!(r.deleted, BTreeSet::from([date(2026, 3, 6)]));
    assert_eq!(
        r.modified,
        vec![Occurrence {
            original_start: at(2026, 3, 4, 8, 0),
            start: at(2026, 3, 4, 10, 0),
            end: at(2026, 3, 4, 11, 0),
            subject: None,
            location: None,
        }]
    );
    assert_eq!(e.time_zone, "Europe/Berlin");
}

#[test]
fn bad_recurrence_is_refused_with_reason() {
    for xml in [
        "<Recurrence><WeeklyRecurrence><Interval>1</Interval><DaysOfWeek>Weekday</DaysOfWeek></WeeklyRecurrence><NoEndRecurrence><StartDate>2026-01-01</StartDate></NoEndRecurrence></Recurrence>",
        "<Recurrence><DailyRecurrence><Interval>0</Interval></DailyRecurrence><NoEndRecurrence><StartDate>2026-01-01</StartDate></NoEndRecurrence></Recurrence>",
        "<Recurrence><DailyRecurrence><Interval>1</Interval></DailyRecurrence></Recurrence>",
        "<Recurrence><AbsoluteYearlyRecurrence><DayOfMonth>1</DayOfMonth><Month>Smarch</Month></AbsoluteYearlyRecurrence><NoEndRecurrence><StartDate>2026-01-01</StartDate></NoEndRecurrence></Recurrence>",
    ] {
        assert!(read_recurrence(&parse(xml).unwrap()).is_err(), "{xml}");
    }
}

#[test]
fn updates_touch_only_changed_fields() {
    let c = full_contact();
    let updates = contact_updates(&c, &["title".into()]).unwrap();
    assert_eq!(updates.len(), 1);
    assert!(matches!(
        &updates[0],
        FieldUpdate::Set { path: FieldPath::Field("contacts:JobTitle"), value } if value.contains("Countess")
    ));
    let mut cleared = c.clone();
    cleared.emails.truncate(1);
    let updates = contact_updates(&cleared, &["emails".into()]).unwrap();
    assert_eq!(updates.len(), 3);
    assert!(matches!(
        &updates[2],
        FieldUpdate::Delete {
            path: FieldPath::Indexed("contacts:EmailAddress", "EmailAddress3")
        }
    ));
    assert!(contact_updates(&c, &["shoe_size".into()]).is_err());

    let e = full_event();
    let updates = event_updates(&e, &["subject".into(), "organizer".into()]).unwrap();
    assert_eq!(updates.len(), 1);
    let updates = event_updates(&e, &["start".into(), "end".into()]).unwrap();
    let paths: Vec<_> = updates
        .iter()
        .map(|u| match u {
            FieldUpdate::Set { path, .. } | FieldUpdate::Delete { path } => path.clone(),
        })
        .collect();
    assert_eq!(
        paths,
        vec![
            FieldPath::Field("calendar:Start"),
            FieldPath::Field("calendar:IsAllDayEvent"),
            FieldPath::Field("calendar:StartTimeZone"),
            FieldPath::Field("calendar:EndTimeZone"),
            FieldPath::Field("calendar:End"),
        ]
    );
}

#[test]
fn event_categories_round_trip_through_ews_xml_with_xml_specials() {
    let mut e = full_event();
    e.categories = vec![
        " Salesforce ".into(),
        "R&D <\"core\"> 'team'".into(),
        "Salesforce".into(),
        "".into(),
    ];
    e.normalize();
    assert_eq!(e.categories, ["R&D <\"core\"> 'team'", "Salesforce"]);
    let el = item_xml(|w| write_event(w, &e, None));
    let written: Vec<&str> = el
        .child("Categories")
        .map(|c| {
            c.children_named("String")
                .map(|s| s.text.as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(written, ["R&D <\"core\"> 'team'", "Salesforce"]);
    assert_eq!(read_event(&el).unwrap(), e);

    // No categories: no element, and none read.
    let mut plain = full_event();
    plain.categories.clear();
    let el = item_xml(|w| write_event(w, &plain, None));
    assert!(el.child("Categories").is_none());
    assert!(read_event(&el).unwrap().categories.is_empty());
}

#[test]
fn event_category_updates_set_or_delete_item_categories() {
    let mut e = full_event();
    e.categories = vec!["Salesforce".into()];
    let updates = event_updates(&e, &["categories".to_owned()]).unwrap();
    assert_eq!(
        updates,
        [FieldUpdate::Set {
            path: FieldPath::Field("item:Categories"),
            value: fragment(|w| {
                w.open("t:Categories", &[])
                    .text("t:String", "Salesforce")
                    .close("t:Categories");
            }),
        }]
    );
    e.categories.clear();
    assert_eq!(
        event_updates(&e, &["categories".to_owned()]).unwrap(),
        [FieldUpdate::Delete {
            path: FieldPath::Field("item:Categories"),
        }]
    );
}
