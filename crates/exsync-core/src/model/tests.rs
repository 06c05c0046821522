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

fn person(email: &str) -> Attendee {
    Attendee {
        email: email.into(),
        name: String::new(),
        kind: AttendeeKind::Required,
    }
}

#[test]
fn a_megabyte_name_is_cut_to_what_exchange_holds_once() {
    let mut contact = Contact {
        first_name: "A".repeat(1 << 20),
        last_name: "Lovelace".into(),
        ..Contact::default()
    };
    let notes = contact.sanitize();
    assert_eq!(contact.first_name, "A".repeat(MAX_LINE));
    assert_eq!(
        notes,
        vec!["first_name: 1048576 characters, cut to the first 255".to_string()]
    );
    // What was cut is the record from now on: nothing more to cut, nothing to report.
    let again = contact.clone();
    assert!(contact.sanitize().is_empty());
    assert_eq!(contact, again);
}

#[test]
fn the_planner_compares_what_fits() {
    let hostile = Contact {
        first_name: "B".repeat(300),
        last_name: "Lovelace".into(),
        title: "Count\u{0}ess".into(),
        emails: vec!["not an address".into(), "ada@example.test".into()],
        ..Contact::default()
    };
    let written = Contact {
        first_name: "B".repeat(MAX_LINE),
        last_name: "Lovelace".into(),
        title: "Countess".into(),
        emails: vec!["ada@example.test".into()],
        ..Contact::default()
    };
    // The CRM keeps the long text; Exchange holds what was written: the pair is in step.
    assert_eq!(hostile.to_fields(), written.to_fields());
    assert_eq!(
        content_hash(&hostile.to_fields()),
        content_hash(&written.to_fields())
    );
}

#[test]
fn text_is_cut_in_utf16_units_never_inside_a_character() {
    let mut contact = Contact {
        last_name: "😀".repeat(200),
        ..Contact::default()
    };
    let notes = contact.sanitize();
    assert_eq!(contact.last_name, "😀".repeat(127));
    assert_eq!(contact.last_name.encode_utf16().count(), 254);
    assert_eq!(
        notes,
        vec!["last_name: 400 characters, cut to the first 255".to_string()]
    );
}

#[test]
fn a_cut_that_ends_on_a_space_leaves_no_trailing_space() {
    let mut contact = Contact {
        company: format!("{} and more", "c".repeat(254)),
        ..Contact::default()
    };
    contact.sanitize();
    assert_eq!(contact.company, "c".repeat(254));
    assert!(contact.sanitize().is_empty(), "a second pass is idle");
}

#[test]
fn control_characters_are_removed_tab_and_newline_are_formatting() {
    let mut contact = Contact {
        first_name: "Ada\u{0}\u{7}".into(),
        last_name: "Love\u{1b}[31mlace\u{7f}".into(),
        department: "Re\tsearch\r\nLab".into(),
        notes: "line\u{0}one\r\n\tindented\u{b}\u{c}\u{85}\u{ffff}".into(),
        ..Contact::default()
    };
    let notes = contact.sanitize();
    assert_eq!(contact.first_name, "Ada");
    assert_eq!(contact.last_name, "Love[31mlace");
    assert_eq!(contact.department, "Re search Lab");
    assert_eq!(contact.notes, "lineone\n\tindented");
    assert_eq!(
        notes,
        vec![
            "first_name: control characters removed".to_string(),
            "last_name: control characters removed".to_string(),
            "notes: control characters removed".to_string(),
        ]
    );
}

#[test]
fn half_a_character_sent_alone_reads_as_the_replacement_character_and_is_noted() {
    let broken = crate::surrogates::BROKEN;
    let mut contact = Contact {
        last_name: format!("Ann{broken}"),
        company: "Acme".into(),
        notes: format!("first\nsecond {broken}"),
        ..Contact::default()
    };
    let notes = contact.sanitize();
    assert_eq!(contact.last_name, "Ann\u{fffd}");
    assert_eq!(contact.notes, "first\nsecond \u{fffd}");
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].starts_with("last_name: half of a character"),
        "{notes:?}"
    );
    assert!(
        notes[1].starts_with("notes: half of a character"),
        "{notes:?}"
    );
    // What it became is an ordinary character: nothing is noted again.
    assert!(contact.sanitize().is_empty());
    // U+FFFD that was sent as such is text like any other.
    let mut plain = Contact {
        last_name: "Ann\u{fffd}".into(),
        ..Contact::default()
    };
    assert!(plain.sanitize().is_empty());
}

#[test]
fn formatting_alone_is_never_reported() {
    let mut contact = Contact {
        first_name: "  Ada \t".into(),
        last_name: "Lovelace\r\n".into(),
        emails: vec![" ADA@Example.test ".into(), "ada@example.test".into()],
        notes: "one  \r\ntwo\r\n\r\n".into(),
        ..Contact::default()
    };
    assert!(contact.sanitize().is_empty());
    let mut event = Event::new(" Review ", at(9), at(10));
    event.attendees = vec![person("B@X.test"), person("b@x.test"), person("")];
    assert!(event.sanitize().is_empty());
}

#[test]
fn an_invalid_address_is_left_out_with_its_reason_and_the_contact_kept() {
    let mut contact = Contact {
        last_name: "Lovelace".into(),
        emails: vec!["a b@example.test".into(), "ada@example.test".into()],
        ..Contact::default()
    };
    let notes = contact.sanitize();
    assert_eq!(contact.emails, ["ada@example.test"]);
    assert_eq!(
        notes,
        vec!["emails: \"a b@example.test\" (the part before `@` has ` ` where only letters, digits and !#$%&'*+-/=?^_`{|}~ may be, unless it is quoted) left out, not an e-mail address".to_string()]
    );
    assert!(
        Record::problems(&contact).is_empty(),
        "nothing left to refuse"
    );
    // Addresses abroad are addresses.
    let mut abroad = Contact {
        last_name: "Müller".into(),
        emails: vec!["jörg@müller.test".into()],
        ..Contact::default()
    };
    assert!(abroad.sanitize().is_empty());
    assert_eq!(abroad.emails, ["jörg@müller.test"]);
}

#[test]
fn a_reason_quotes_a_hostile_value_short_and_escaped() {
    let mut contact = Contact {
        last_name: "X".into(),
        emails: vec![format!("\u{1b}[2J{}@example.test", "x".repeat(1 << 20))],
        ..Contact::default()
    };
    let notes = contact.sanitize();
    assert!(contact.emails.is_empty());
    assert_eq!(notes.len(), 1);
    assert!(notes[0].len() < 200, "{}", notes[0]);
    assert!(notes[0].contains("\\u{1b}[2j"), "{}", notes[0]);
    assert!(!notes[0].contains('\u{1b}'), "{}", notes[0]);
}

#[test]
fn event_text_is_cut_and_invalid_invitees_left_out_in_one_note() {
    let mut event = Event::new(&"S".repeat(1 << 20), at(9), at(10));
    event.location = format!("Room\u{0} {}", "9".repeat(300));
    event.body = "b".repeat(1 << 20);
    event.attendees = (0..5)
        .map(|i| person(&format!("bad{i}@x.test#.contoso.test")))
        .chain([person("good@x.test")])
        .collect();
    let notes = event.sanitize();
    assert_eq!(event.subject.chars().count(), MAX_LINE);
    assert_eq!(event.location.chars().count(), MAX_LINE);
    assert_eq!(event.body.chars().count(), MAX_TEXT);
    assert_eq!(event.attendees, vec![person("good@x.test")]);
    assert_eq!(
        notes,
        vec![
            "subject: 1048576 characters, cut to the first 255".to_string(),
            "location: control characters removed".to_string(),
            "location: 305 characters, cut to the first 255".to_string(),
            "body: 1048576 characters, cut to the first 32000".to_string(),
            "attendees: 5 entries left out that are no e-mail address, the first \"bad0@x.test#.contoso.test\" (the domain has `#`, where only letters, digits, hyphens and dots may be)".to_string(),
        ]
    );
    assert!(event.sanitize().is_empty(), "a second pass is idle");
    assert!(Record::problems(&event).is_empty());
}

#[test]
fn an_invalid_organizer_is_left_out() {
    let mut event = Event::new("Sync", at(9), at(10));
    event.organizer = Some(person("/o=ExchangeLabs/ou=Exchange Administrative Group"));
    let notes = event.sanitize();
    assert_eq!(event.organizer, None);
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].starts_with("organizer: \"/o=exchangelabs"),
        "{notes:?}"
    );
}

#[test]
fn an_event_with_too_many_invitees_is_refused_with_the_limit() {
    let invitees =
        |n: usize| -> Vec<Attendee> { (0..n).map(|i| person(&format!("p{i}@x.test"))).collect() };
    let mut crowd = Event::new("All hands", at(9), at(10));
    crowd.attendees = invitees(10_000);
    assert!(crowd.sanitize().is_empty(), "every address is fine");
    assert_eq!(
        Record::problems(&crowd),
        vec!["10000 attendees, more than the 500 Exchange takes in one meeting (and the 50 a CRM event can relate)".to_string()]
    );
    let mut large = Event::new("Town hall", at(9), at(10));
    large.attendees = invitees(MAX_ATTENDEES + 1);
    assert_eq!(
        Record::problems(&large),
        vec!["51 attendees, more than the 50 a CRM event can relate".to_string()]
    );
    let mut fits = Event::new("Team", at(9), at(10));
    fits.attendees = invitees(MAX_ATTENDEES);
    assert!(Record::problems(&fits).is_empty());
}

#[test]
fn a_user_key_is_made_only_from_an_address() {
    assert_eq!(
        UserKey::parse(" Ann@Contoso.test "),
        Ok(UserKey::new("ann@contoso.test"))
    );
    assert_eq!(
        UserKey::parse("x'-alert`document.domain`-'@contoso.test"),
        Ok(UserKey::new("x'-alert`document.domain`-'@contoso.test"))
    );
    for bad in [
        "a b@contoso.test",
        "x@evil.test#.contoso.test",
        "x@evil.test/.contoso.test",
        "jörg@müller.test",
        "",
        "ann",
    ] {
        assert!(UserKey::parse(bad).is_err(), "{bad:?}");
    }
}
