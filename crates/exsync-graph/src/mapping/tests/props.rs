//! Round trips over generated records, through Graph JSON and against the EWS mapping: the
//! same record must read the same through both backends, field by field, or a mailbox moving
//! to Exchange Online would look edited to the planner.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use proptest::prelude::*;

use exsync_core::{
    Address, AddressKind, Attendee, AttendeeKind, Contact, CrmId, Day, Event, EventTime, ItemKind,
    Occurrence, Pattern, PhoneKind, Record, Recurrence, RecurrenceEnd, ShowAs, WeekIndex,
};

use super::super::{read_contact, read_event, write_contact, write_event};
use super::{served, served_event};

fn line() -> impl Strategy<Value = String> {
    // Letters, spaces, XML and JSON specials, quotes, non-ASCII, and sometimes nothing.
    prop_oneof![Just(String::new()), "[a-zA-Z0-9 &<>\"'äöü€\\\\/-]{1,24}",]
}

fn multiline() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z &<>'\"\n]{1,60}"]
}

fn email() -> impl Strategy<Value = String> {
    "[a-z]{1,8}(\\.[a-z]{1,4})?@[a-z]{2,8}\\.test"
}

fn address() -> impl Strategy<Value = Address> {
    (multiline(), line(), line(), line(), line()).prop_map(
        |(street, city, state, postal_code, country)| Address {
            street,
            city,
            state,
            postal_code,
            country,
        },
    )
}

fn contact() -> impl Strategy<Value = Contact> {
    let phones = proptest::collection::btree_map(
        prop_oneof![
            Just(PhoneKind::Business),
            Just(PhoneKind::Mobile),
            Just(PhoneKind::Home),
            Just(PhoneKind::Other),
            Just(PhoneKind::BusinessFax),
            Just(PhoneKind::Assistant),
        ],
        "\\+?[0-9 ()-]{1,15}",
        0..6,
    );
    let addresses = proptest::collection::btree_map(
        prop_oneof![
            Just(AddressKind::Business),
            Just(AddressKind::Home),
            Just(AddressKind::Other)
        ],
        address(),
        0..3,
    );
    (
        (line(), line(), line(), line(), line(), line()),
        proptest::collection::vec(email(), 0..4),
        phones,
        addresses,
        multiline(),
        proptest::option::of((1900i32..2020, 1u32..=12, 1u32..=28)),
    )
        .prop_map(
            |(
                (first, middle, last, company, title, department),
                emails,
                phones,
                addresses,
                notes,
                birthday,
            )| {
                let mut c = Contact {
                    first_name: first,
                    middle_name: middle,
                    last_name: last,
                    emails,
                    phones,
                    company,
                    title,
                    department,
                    addresses,
                    notes,
                    birthday: birthday.and_then(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d)),
                };
                c.normalize();
                c
            },
        )
}

/// Zones whose summer-time changes fall outside 08:00–18:00 UTC, where the times below lie,
/// so every local time we write names one instant (the hour lived twice is tested apart).
const ZONES: [&str; 6] = [
    "Europe/Berlin",
    "Europe/Vienna",
    "America/New_York",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Etc/UTC",
];

fn pattern() -> impl Strategy<Value = Pattern> {
    let plain = prop_oneof![
        Just(Day::Monday),
        Just(Day::Tuesday),
        Just(Day::Wednesday),
        Just(Day::Thursday),
        Just(Day::Friday),
        Just(Day::Saturday),
        Just(Day::Sunday),
    ];
    let any_day = prop_oneof![
        plain.clone(),
        Just(Day::Day),
        Just(Day::Weekday),
        Just(Day::WeekendDay)
    ];
    let index = prop_oneof![
        Just(WeekIndex::First),
        Just(WeekIndex::Second),
        Just(WeekIndex::Third),
        Just(WeekIndex::Fourth),
        Just(WeekIndex::Last),
    ];
    prop_oneof![
        (1u32..=999).prop_map(|interval| Pattern::Daily { interval }),
        (
            1u32..=4,
            proptest::collection::vec(plain.clone(), 1..4),
            plain
        )
            .prop_map(|(interval, days, first_day_of_week)| Pattern::Weekly {
                interval,
                days,
                first_day_of_week
            }),
        (1u32..=12, 1u32..=31).prop_map(|(interval, day_of_month)| Pattern::AbsoluteMonthly {
            interval,
            day_of_month
        }),
        (1u32..=12, any_day.clone(), index.clone()).prop_map(|(interval, day, index)| {
            Pattern::RelativeMonthly {
                interval,
                day,
                index,
            }
        }),
        (1u32..=12, 1u32..=28).prop_map(|(month, day_of_month)| Pattern::AbsoluteYearly {
            month,
            day_of_month
        }),
        (1u32..=12, any_day, index).prop_map(|(month, day, index)| Pattern::RelativeYearly {
            month,
            day,
            index
        }),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    let attendee = (
        email(),
        line(),
        prop_oneof![
            Just(AttendeeKind::Required),
            Just(AttendeeKind::Optional),
            Just(AttendeeKind::Resource)
        ],
    )
        .prop_map(|(email, name, kind)| Attendee { email, name, kind });
    let show_as = prop_oneof![
        Just(ShowAs::Free),
        Just(ShowAs::Tentative),
        Just(ShowAs::Busy),
        Just(ShowAs::OutOfOffice),
        Just(ShowAs::WorkingElsewhere),
    ];
    // The end date counts from the series' start, which is only known below.
    let end = prop_oneof![
        Just((0u8, 0i64)),
        (1i64..50).prop_map(|n| (1u8, n)),
        (0i64..400).prop_map(|days| (2u8, days)),
    ];
    (
        (
            line(),
            line(),
            multiline(),
            any::<bool>(),
            show_as,
            proptest::option::of(0u32..10_000),
        ),
        (0i64..700, 8u32..17, 0u32..4, 1i64..6, any::<bool>()),
        proptest::sample::select(ZONES.to_vec()),
        proptest::option::of((pattern(), end)),
        proptest::collection::vec(attendee, 0..5),
        proptest::collection::vec("[A-Za-z &']{1,10}", 0..3),
        (
            proptest::collection::btree_set(1i64..30, 0..3),
            proptest::collection::vec(
                (
                    1i64..30,
                    0i64..5,
                    prop_oneof![Just(String::new()), "Ex [a-z]{1,8}"],
                ),
                0..3,
            ),
        ),
    )
        .prop_map(
            |(text, when, zone, series, attendees, categories, (deleted, moved))| {
                let (subject, location, body, private, show_as, reminder_minutes) = text;
                let (day, hour, quarter, length, all_day) = when;
                let first =
                    NaiveDate::from_ymd_opt(2026, 1, 5).unwrap_or_default() + Duration::days(day);
                let start = Utc.from_utc_datetime(
                    &first.and_hms_opt(hour, quarter * 15, 0).unwrap_or_default(),
                );
                let (start, end) = if all_day {
                    (
                        EventTime::Date(first),
                        EventTime::Date(first + Duration::days(length)),
                    )
                } else {
                    (
                        EventTime::At(start),
                        EventTime::At(start + Duration::minutes(30 * length)),
                    )
                };
                let mut e = Event::new(&subject, start, end);
                e.location = location;
                e.body = body;
                e.private = private;
                e.show_as = show_as;
                e.reminder_minutes = reminder_minutes;
                e.time_zone = zone.to_owned();
                e.attendees = attendees;
                e.categories = categories;
                e.recurrence = series.map(|(pattern, (end, n))| {
                    let end = match end {
                        0 => RecurrenceEnd::Never,
                        1 => RecurrenceEnd::Count(u32::try_from(n).unwrap_or(1)),
                        _ => RecurrenceEnd::Until(first + Duration::days(n)),
                    };
                    let shift = |t: &EventTime, days: i64, hours: i64| match t {
                        EventTime::Date(d) => EventTime::Date(*d + Duration::days(days + hours)),
                        EventTime::At(t) => {
                            EventTime::At(*t + Duration::days(days) + Duration::hours(hours))
                        }
                    };
                    Recurrence {
                        pattern,
                        start_date: first,
                        end,
                        deleted: deleted
                            .iter()
                            .map(|d| first + Duration::days(*d))
                            .collect::<BTreeSet<_>>(),
                        modified: moved
                            .iter()
                            .map(|(d, h, subject)| Occurrence {
                                original_start: shift(&e.start, *d, 0),
                                start: shift(&e.start, *d, *h),
                                end: shift(&e.end, *d, *h),
                                subject: (!subject.is_empty()).then(|| subject.clone()),
                                location: None,
                            })
                            .collect(),
                    }
                });
                e.normalize();
                e
            },
        )
        .prop_filter("a record both sides can hold", |e| e.problems().is_empty())
}

/// The record as a reader of either backend returns it: Exchange sets the organizer, the
/// exceptions and cancellations only exist once written to the occurrences.
fn without_series_edits(e: &Event) -> Event {
    let mut e = e.clone();
    if let Some(r) = &mut e.recurrence {
        r.deleted.clear();
        r.modified.clear();
    }
    e
}

fn ews_contact_fields(c: &Contact) -> BTreeMap<String, serde_json::Value> {
    let mut w = exsync_ews::XmlWriter::new();
    exsync_ews::write_contact(&mut w, c, Some(&CrmId::new("003")));
    exsync_ews::testing::read_item_fields(ItemKind::Contact, &w.finish()).unwrap()
}

fn ews_event_fields(e: &Event) -> BTreeMap<String, serde_json::Value> {
    let mut w = exsync_ews::XmlWriter::new();
    exsync_ews::write_event(&mut w, e, Some(&CrmId::new("00U")));
    exsync_ews::testing::read_item_fields(ItemKind::Event, &w.finish()).unwrap()
}

/// The EWS reading of `e` as Exchange serves a series once its edits are written: the
/// create's XML plus the organizer and the `ModifiedOccurrences` / `DeletedOccurrences` a
/// GetItem answers with (times as UTC instants, as EWS gives them). The EWS writers do not
/// write these, since exceptions go to the occurrences after the create.
fn ews_served_event_fields(e: &Event) -> BTreeMap<String, serde_json::Value> {
    let mut w = exsync_ews::XmlWriter::new();
    exsync_ews::write_event(&mut w, e, Some(&CrmId::new("00U")));
    let created = w.finish();
    let body = created
        .strip_suffix("</t:CalendarItem>")
        .expect("a CalendarItem element");
    let mut w = exsync_ews::XmlWriter::new();
    w.open("t:Organizer", &[])
        .open("t:Mailbox", &[])
        .text("t:Name", "Owner")
        .text("t:EmailAddress", "owner@contoso.test")
        .close("t:Mailbox")
        .close("t:Organizer");
    let instant = |t: &EventTime| t.approx_instant().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    if let Some(r) = &e.recurrence {
        w.open("t:ModifiedOccurrences", &[]);
        for o in &r.modified {
            w.open("t:Occurrence", &[])
                .empty("t:ItemId", &[("Id", "O")])
                .text("t:Subject", o.subject.as_deref().unwrap_or(&e.subject))
                .text("t:Location", o.location.as_deref().unwrap_or(&e.location))
                .text("t:Start", &instant(&o.start))
                .text("t:End", &instant(&o.end))
                .text("t:OriginalStart", &instant(&o.original_start))
                .close("t:Occurrence");
        }
        w.close("t:ModifiedOccurrences");
        w.open("t:DeletedOccurrences", &[]);
        for day in &r.deleted {
            // The occurrence's start on that day, in the series' zone.
            let start = match e.start {
                EventTime::Date(_) => day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
                EventTime::At(t) => {
                    let zone: chrono_tz::Tz = e.time_zone.parse().unwrap_or(chrono_tz::UTC);
                    let local = t.with_timezone(&zone).time();
                    zone.from_local_datetime(&day.and_time(local))
                        .earliest()
                        .map(|t| t.with_timezone(&Utc))
                        .unwrap_or_default()
                }
            };
            w.open("t:DeletedOccurrence", &[])
                .text("t:Start", &instant(&EventTime::At(start)))
                .close("t:DeletedOccurrence");
        }
        w.close("t:DeletedOccurrences");
    }
    let xml = format!("{body}{}</t:CalendarItem>", w.finish());
    exsync_ews::testing::read_item_fields(ItemKind::Event, &xml).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mapping_contact_round_trips_and_reads_as_through_ews(c in contact()) {
        let item = served(write_contact(&c, Some(&CrmId::new("003"))), "A");
        let read = read_contact(&item).unwrap();
        prop_assert_eq!(&read, &c);
        prop_assert_eq!(read.to_fields(), ews_contact_fields(&c));
    }

    #[test]
    fn mapping_event_round_trips_and_reads_as_through_ews(e in event()) {
        let read = read_event(&served_event(&e, "M")).unwrap();
        let mut expected = e.clone();
        expected.organizer = Some(Attendee {
            email: "owner@contoso.test".into(),
            name: String::new(),
            kind: AttendeeKind::Required,
        });
        expected.normalize();
        prop_assert_eq!(&read, &expected);
        // A whole series, exceptions and cancellations included, reads the same through EWS.
        prop_assert_eq!(read.to_fields(), ews_served_event_fields(&e));
        // Neither writer writes series edits or the organizer (they go to the occurrences,
        // and Exchange sets the organizer), so the two readers are compared on what the
        // create writes.
        let plain = without_series_edits(&e);
        let graph = read_event(&served(write_event(&plain, None), "M")).unwrap();
        prop_assert_eq!(graph.to_fields(), ews_event_fields(&plain));
    }
}
