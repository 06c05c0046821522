use chrono::{NaiveDate, TimeZone, Utc};

use super::*;

fn at(h: u32) -> EventTime {
    EventTime::At(
        Utc.with_ymd_and_hms(2026, 5, 4, h, 0, 0)
            .single()
            .unwrap_or_default(),
    )
}

#[test]
fn contact_fields_omit_empty_values() {
    let contact = Contact {
        first_name: "  Ada ".into(),
        last_name: "Lovelace".into(),
        emails: vec!["ADA@Example.test".into()],
        ..Contact::default()
    };
    let fields = contact.to_fields();
    assert_eq!(
        fields.keys().collect::<Vec<_>>(),
        ["emails", "first_name", "last_name"]
    );
    assert_eq!(fields["first_name"], "Ada");
    assert_eq!(fields["emails"], serde_json::json!(["ada@example.test"]));
}

#[test]
fn formatting_differences_hash_equal() {
    let a = Contact {
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        notes: "line one\r\nline two  ".into(),
        ..Contact::default()
    };
    let b = Contact {
        first_name: " Ada".into(),
        last_name: "Lovelace ".into(),
        notes: "line one\nline two\n".into(),
        ..Contact::default()
    };
    assert_eq!(content_hash(&a.to_fields()), content_hash(&b.to_fields()));
    let c = Contact {
        title: "Countess".into(),
        ..b
    };
    assert_ne!(content_hash(&a.to_fields()), content_hash(&c.to_fields()));
}

#[test]
fn fields_round_trip_to_records() {
    let mut event = Event::new("Review", at(9), at(10));
    event.time_zone = "Europe/Berlin".into();
    event.recurrence = Recurrence::from_rrule(
        "FREQ=WEEKLY;COUNT=3",
        NaiveDate::from_ymd_opt(2026, 5, 4).unwrap_or_default(),
    )
    .ok();
    event.private = true;
    event.attendees = vec![Attendee {
        email: "b@x.test".into(),
        name: String::new(),
        kind: AttendeeKind::Optional,
    }];
    let fields = event.to_fields();
    let back = Event::from_fields(&fields);
    assert_eq!(back, Ok(event));
}

#[test]
fn single_events_drop_their_zone_series_keep_it() {
    let mut single = Event::new("Call", at(9), at(10));
    single.time_zone = "Etc/UTC".into();
    assert!(!single.to_fields().contains_key("time_zone"));
    let mut series = single.clone();
    series.time_zone = "Europe/Berlin".into();
    series.recurrence = Recurrence::from_rrule(
        "FREQ=DAILY;COUNT=2",
        NaiveDate::from_ymd_opt(2026, 5, 4).unwrap_or_default(),
    )
    .ok();
    assert_eq!(series.to_fields()["time_zone"], "Europe/Berlin");
}

#[test]
fn all_day_events_drop_their_zone() {
    let day = |d| EventTime::Date(NaiveDate::from_ymd_opt(2026, 5, d).unwrap_or_default());
    let mut event = Event::new("Offsite", day(4), day(5));
    event.time_zone = "Europe/Paris".into();
    assert!(event.is_all_day());
    assert!(!event.to_fields().contains_key("time_zone"));
}

#[test]
fn attendees_are_sorted_deduped_and_exclude_the_organizer() {
    let person = |e: &str| Attendee {
        email: e.into(),
        name: String::new(),
        kind: AttendeeKind::Required,
    };
    let mut event = Event::new("Sync", at(9), at(10));
    event.organizer = Some(person("Boss@X.test"));
    event.attendees = vec![
        person("z@x.test"),
        person("A@x.test"),
        person("a@x.test"),
        person("boss@x.test"),
    ];
    event.normalize();
    let emails: Vec<&str> = event.attendees.iter().map(|a| a.email.as_str()).collect();
    assert_eq!(emails, ["a@x.test", "z@x.test"]);
}

#[test]
fn record_problems_name_the_fault() {
    let event = Event::new("Backwards", at(10), at(9));
    assert_eq!(
        Record::problems(&event),
        vec!["end is before start".to_string()]
    );
    let contact = Contact {
        last_name: "X".into(),
        emails: vec!["not-an-address".into()],
        ..Contact::default()
    };
    assert_eq!(
        Record::problems(&contact),
        vec!["\"not-an-address\" is not an e-mail address".to_string()]
    );
    let mut zone = Event::new("Zoned", at(9), at(10));
    zone.time_zone = "Mars/Olympus".into();
    assert_eq!(
        Record::problems(&zone),
        vec!["unknown time zone \"Mars/Olympus\"".to_string()]
    );
}

#[test]
fn field_names_cover_every_serialised_field() {
    let mut event = Event::new("All", at(9), at(10));
    event.location = "L".into();
    event.body = "B".into();
    event.time_zone = "UTC".into();
    event.private = true;
    event.show_as = ShowAs::Free;
    event.reminder_minutes = Some(15);
    event.organizer = Some(Attendee {
        email: "o@x.test".into(),
        name: String::new(),
        kind: AttendeeKind::Required,
    });
    event.attendees = vec![Attendee {
        email: "a@x.test".into(),
        name: String::new(),
        kind: AttendeeKind::Required,
    }];
    event.recurrence = Recurrence::from_rrule(
        "FREQ=DAILY",
        NaiveDate::from_ymd_opt(2026, 5, 4).unwrap_or_default(),
    )
    .ok();
    let names: Vec<String> = event.to_fields().into_keys().collect();
    let mut expected: Vec<&str> = field_names(ItemKind::Event).to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
}
