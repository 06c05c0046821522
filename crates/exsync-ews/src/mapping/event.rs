//! Event ↔ EWS `t:CalendarItem`.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

use exsync_core::{
    clean_line, Attendee, AttendeeKind, CrmId, Event, EventTime, Occurrence, ShowAs,
};

use super::recurrence::{read_recurrence, write_recurrence};
use super::{
    body, extended_property, format_instant, fragment, parse_instant, read_body, read_extended,
    set_text, FieldPath, FieldUpdate, CRM_ID_PROPERTY, TIME_ZONE_PROPERTY,
};
use crate::xml::{Element, XmlWriter};
use exsync_core::zones::{iana_to_windows, windows_to_iana, DayZone};

const FREE_BUSY: [(ShowAs, &str); 5] = [
    (ShowAs::Free, "Free"),
    (ShowAs::Tentative, "Tentative"),
    (ShowAs::Busy, "Busy"),
    (ShowAs::OutOfOffice, "OOF"),
    (ShowAs::WorkingElsewhere, "WorkingElsewhere"),
];

const ATTENDEE_LISTS: [(AttendeeKind, &str, &str); 3] = [
    (
        AttendeeKind::Required,
        "RequiredAttendees",
        "calendar:RequiredAttendees",
    ),
    (
        AttendeeKind::Optional,
        "OptionalAttendees",
        "calendar:OptionalAttendees",
    ),
    (AttendeeKind::Resource, "Resources", "calendar:Resources"),
];

/// The Windows zone an event is written in. An all-day event is whole days in `day`, the
/// owner's zone, so Outlook shows it on those days and not across two.
fn windows_zone(e: &Event, day: DayZone) -> &'static str {
    if e.is_all_day() {
        return day.windows();
    }
    if e.time_zone.is_empty() {
        return "UTC";
    }
    iana_to_windows(&e.time_zone).unwrap_or_else(|| {
        tracing::warn!(zone = %e.time_zone, "no Windows zone for this IANA zone; writing UTC");
        "UTC"
    })
}

fn wire_time(t: &EventTime, day: DayZone) -> String {
    match t {
        EventTime::At(t) => format_instant(t),
        EventTime::Date(d) => format_instant(&day.midnight(*d)),
    }
}

fn write_start(w: &mut XmlWriter, e: &Event, day: DayZone) {
    w.text("t:Start", &wire_time(&e.start, day));
}

fn write_end(w: &mut XmlWriter, e: &Event, day: DayZone) {
    w.text("t:End", &wire_time(&e.end, day));
}

fn write_all_day(w: &mut XmlWriter, e: &Event) {
    w.text(
        "t:IsAllDayEvent",
        if e.is_all_day() { "true" } else { "false" },
    );
}

fn write_attendees(w: &mut XmlWriter, list: &str, attendees: &[&Attendee]) {
    let element = format!("t:{list}");
    w.open(&element, &[]);
    for a in attendees {
        w.open("t:Attendee", &[]).open("t:Mailbox", &[]);
        if !a.name.is_empty() {
            w.text("t:Name", &a.name);
        }
        w.text("t:EmailAddress", &a.email);
        w.close("t:Mailbox").close("t:Attendee");
    }
    w.close(&element);
}

/// `t:Categories`, an ArrayOfStringsType: one `t:String` per category.
fn write_categories(w: &mut XmlWriter, categories: &[String]) {
    w.open("t:Categories", &[]);
    for category in categories {
        w.text("t:String", category);
    }
    w.close("t:Categories");
}

fn read_categories(item: &Element) -> Vec<String> {
    item.child("Categories")
        .map(|list| {
            list.children_named("String")
                .map(|c| c.text.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn attendees_of(e: &Event, kind: AttendeeKind) -> Vec<&Attendee> {
    e.attendees.iter().filter(|a| a.kind == kind).collect()
}

fn free_busy_name(show_as: ShowAs) -> &'static str {
    FREE_BUSY
        .iter()
        .find(|(s, _)| *s == show_as)
        .map_or("Busy", |(_, n)| n)
}

/// The `t:CalendarItem` element for CreateItem, all-day events in UTC (see [`write_event_in`]).
pub fn write_event(w: &mut XmlWriter, e: &Event, crm_id: Option<&CrmId>) {
    write_event_in(w, e, crm_id, DayZone::UTC);
}

/// The `t:CalendarItem` element for CreateItem, an all-day event as whole days in `day`. The
/// organizer is the mailbox owner and Exchange sets it itself; exceptions of a series are
/// written with occurrence operations after the master exists.
pub fn write_event_in(w: &mut XmlWriter, e: &Event, crm_id: Option<&CrmId>, day: DayZone) {
    w.open("t:CalendarItem", &[]);
    if !e.subject.is_empty() {
        w.text("t:Subject", &e.subject);
    }
    w.text(
        "t:Sensitivity",
        if e.private { "Private" } else { "Normal" },
    );
    if !e.body.is_empty() {
        body(w, &e.body);
    }
    if !e.categories.is_empty() {
        write_categories(w, &e.categories);
    }
    match e.reminder_minutes {
        Some(minutes) => {
            w.text("t:ReminderIsSet", "true")
                .text("t:ReminderMinutesBeforeStart", &minutes.to_string());
        }
        None => {
            w.text("t:ReminderIsSet", "false");
        }
    }
    if let Some(crm_id) = crm_id {
        extended_property(w, CRM_ID_PROPERTY, crm_id.as_str());
    }
    if !e.time_zone.is_empty() && !e.is_all_day() {
        extended_property(w, TIME_ZONE_PROPERTY, &e.time_zone);
    }
    write_start(w, e, day);
    write_end(w, e, day);
    write_all_day(w, e);
    w.text("t:LegacyFreeBusyStatus", free_busy_name(e.show_as));
    if !e.location.is_empty() {
        w.text("t:Location", &e.location);
    }
    for (kind, list, _) in ATTENDEE_LISTS {
        let attendees = attendees_of(e, kind);
        if !attendees.is_empty() {
            write_attendees(w, list, &attendees);
        }
    }
    if let Some(recurrence) = &e.recurrence {
        write_recurrence(w, recurrence);
    }
    let zone = windows_zone(e, day);
    w.empty("t:StartTimeZone", &[("Id", zone)]);
    w.empty("t:EndTimeZone", &[("Id", zone)]);
    w.close("t:CalendarItem");
}

/// The SetItemField / DeleteItemField changes that write `changed` fields of `e`, all-day
/// events in UTC (see [`event_updates_in`]).
pub fn event_updates(e: &Event, changed: &[String]) -> Result<Vec<FieldUpdate>, String> {
    event_updates_in(e, changed, DayZone::UTC)
}

/// The SetItemField / DeleteItemField changes that write `changed` fields of `e`, an all-day
/// event as whole days in `day`.
pub fn event_updates_in(
    e: &Event,
    changed: &[String],
    day: DayZone,
) -> Result<Vec<FieldUpdate>, String> {
    let mut updates: Vec<FieldUpdate> = Vec::new();
    let push = |update: FieldUpdate, updates: &mut Vec<FieldUpdate>| {
        if !updates.contains(&update) {
            updates.push(update);
        }
    };
    let zone = windows_zone(e, day);
    let zone_updates = |updates: &mut Vec<FieldUpdate>| {
        for (uri, element) in [
            ("calendar:StartTimeZone", "t:StartTimeZone"),
            ("calendar:EndTimeZone", "t:EndTimeZone"),
        ] {
            let update = FieldUpdate::Set {
                path: FieldPath::Field(uri),
                value: fragment(|w| {
                    w.empty(element, &[("Id", zone)]);
                }),
            };
            if !updates.contains(&update) {
                updates.push(update);
            }
        }
    };
    let all_day = FieldUpdate::Set {
        path: FieldPath::Field("calendar:IsAllDayEvent"),
        value: fragment(|w| write_all_day(w, e)),
    };
    for field in changed {
        match field.as_str() {
            "subject" => set_text(&mut updates, "item:Subject", "t:Subject", &e.subject),
            "location" => set_text(&mut updates, "calendar:Location", "t:Location", &e.location),
            "body" => {
                if e.body.is_empty() {
                    push(
                        FieldUpdate::Delete {
                            path: FieldPath::Field("item:Body"),
                        },
                        &mut updates,
                    );
                } else {
                    push(
                        FieldUpdate::Set {
                            path: FieldPath::Field("item:Body"),
                            value: fragment(|w| body(w, &e.body)),
                        },
                        &mut updates,
                    );
                }
            }
            "start" => {
                push(
                    FieldUpdate::Set {
                        path: FieldPath::Field("calendar:Start"),
                        value: fragment(|w| write_start(w, e, day)),
                    },
                    &mut updates,
                );
                push(all_day.clone(), &mut updates);
                zone_updates(&mut updates);
            }
            "end" => {
                push(
                    FieldUpdate::Set {
                        path: FieldPath::Field("calendar:End"),
                        value: fragment(|w| write_end(w, e, day)),
                    },
                    &mut updates,
                );
                push(all_day.clone(), &mut updates);
                zone_updates(&mut updates);
            }
            "time_zone" => {
                zone_updates(&mut updates);
                let path = FieldPath::Extended(TIME_ZONE_PROPERTY);
                if e.time_zone.is_empty() || e.is_all_day() {
                    push(FieldUpdate::Delete { path }, &mut updates);
                } else {
                    push(
                        FieldUpdate::Set {
                            path,
                            value: fragment(|w| {
                                extended_property(w, TIME_ZONE_PROPERTY, &e.time_zone)
                            }),
                        },
                        &mut updates,
                    );
                }
            }
            "private" => set_text(
                &mut updates,
                "item:Sensitivity",
                "t:Sensitivity",
                if e.private { "Private" } else { "Normal" },
            ),
            "show_as" => set_text(
                &mut updates,
                "calendar:LegacyFreeBusyStatus",
                "t:LegacyFreeBusyStatus",
                free_busy_name(e.show_as),
            ),
            "reminder_minutes" => match e.reminder_minutes {
                Some(minutes) => {
                    set_text(
                        &mut updates,
                        "item:ReminderIsSet",
                        "t:ReminderIsSet",
                        "true",
                    );
                    set_text(
                        &mut updates,
                        "item:ReminderMinutesBeforeStart",
                        "t:ReminderMinutesBeforeStart",
                        &minutes.to_string(),
                    );
                }
                None => set_text(
                    &mut updates,
                    "item:ReminderIsSet",
                    "t:ReminderIsSet",
                    "false",
                ),
            },
            "recurrence" => match &e.recurrence {
                Some(recurrence) => push(
                    FieldUpdate::Set {
                        path: FieldPath::Field("calendar:Recurrence"),
                        value: fragment(|w| write_recurrence(w, recurrence)),
                    },
                    &mut updates,
                ),
                None => push(
                    FieldUpdate::Delete {
                        path: FieldPath::Field("calendar:Recurrence"),
                    },
                    &mut updates,
                ),
            },
            "attendees" => {
                for (kind, list, uri) in ATTENDEE_LISTS {
                    let attendees = attendees_of(e, kind);
                    if attendees.is_empty() {
                        push(
                            FieldUpdate::Delete {
                                path: FieldPath::Field(uri),
                            },
                            &mut updates,
                        );
                    } else {
                        push(
                            FieldUpdate::Set {
                                path: FieldPath::Field(uri),
                                value: fragment(|w| write_attendees(w, list, &attendees)),
                            },
                            &mut updates,
                        );
                    }
                }
            }
            "categories" => {
                if e.categories.is_empty() {
                    push(
                        FieldUpdate::Delete {
                            path: FieldPath::Field("item:Categories"),
                        },
                        &mut updates,
                    );
                } else {
                    push(
                        FieldUpdate::Set {
                            path: FieldPath::Field("item:Categories"),
                            value: fragment(|w| write_categories(w, &e.categories)),
                        },
                        &mut updates,
                    );
                }
            }
            // Exchange makes the mailbox owner the organizer and does not let clients change it.
            "organizer" => {}
            other => return Err(format!("event field {other:?} is not synced to Exchange")),
        }
    }
    Ok(updates)
}

fn zone_of(id: Option<&str>) -> Option<Tz> {
    id.and_then(windows_to_iana)
        .and_then(|iana| iana.parse().ok())
}

/// The calendar date an instant falls on in a zone (UTC when the zone is unknown).
fn date_in(t: DateTime<Utc>, zone: Option<Tz>) -> chrono::NaiveDate {
    match zone {
        Some(zone) => zone.from_utc_datetime(&t.naive_utc()).date_naive(),
        None => t.date_naive(),
    }
}

fn read_time(item: &Element, name: &str) -> Result<DateTime<Utc>, String> {
    let text = item
        .child_text(name)
        .ok_or_else(|| format!("calendar item without {name}"))?;
    parse_instant(text).ok_or_else(|| format!("{name} {text:?} is not a date-time"))
}

fn read_mailbox(el: &Element, kind: AttendeeKind) -> Option<Attendee> {
    let mailbox = el.child("Mailbox")?;
    let email = mailbox.child_text("EmailAddress")?.trim();
    if email.is_empty() {
        return None;
    }
    Some(Attendee {
        email: email.to_owned(),
        name: mailbox.child_text("Name").unwrap_or("").to_owned(),
        kind,
    })
}

/// Reads a `t:CalendarItem` element.
pub(crate) fn read_event(item: &Element) -> Result<Event, String> {
    let mut event = read_event_as_typed(item)?;
    event.normalize();
    Ok(event)
}

/// A `t:CalendarItem` element as the user typed it, before it is made to fit (see
/// [`Event::sanitize`]), so the caller can say what had to go.
pub(crate) fn read_event_as_typed(item: &Element) -> Result<Event, String> {
    let all_day = item.child_text("IsAllDayEvent").map(str::trim) == Some("true");
    let start_zone_id = item.child("StartTimeZone").and_then(|z| z.attr("Id"));
    let end_zone_id = item
        .child("EndTimeZone")
        .and_then(|z| z.attr("Id"))
        .or(start_zone_id);
    let start_zone = zone_of(start_zone_id);
    let end_zone = zone_of(end_zone_id);
    let start = read_time(item, "Start")?;
    let end = read_time(item, "End")?;
    let to_event_time = |t: DateTime<Utc>, zone: Option<Tz>| {
        if all_day {
            EventTime::Date(date_in(t, zone))
        } else {
            EventTime::At(t)
        }
    };
    let time_zone = if all_day {
        String::new()
    } else {
        let ours = read_extended(item, TIME_ZONE_PROPERTY);
        match (ours, start_zone_id) {
            // Our exact IANA name holds while the item's Windows zone still matches it; a zone
            // changed in Outlook wins.
            (Some(ours), Some(id))
                if iana_to_windows(&ours).is_some_and(|w| w.eq_ignore_ascii_case(id)) =>
            {
                ours
            }
            (Some(ours), None) if ours.parse::<Tz>().is_ok() => ours,
            (_, Some(id)) => windows_to_iana(id).unwrap_or("").to_owned(),
            (_, None) => String::new(),
        }
    };
    let event_zone: Option<Tz> = time_zone.parse().ok().or(start_zone);
    let sensitivity = item.child_text("Sensitivity").unwrap_or("Normal").trim();
    let show_as = match item.child_text("LegacyFreeBusyStatus").map(str::trim) {
        Some(name) => FREE_BUSY
            .iter()
            .find(|(_, n)| *n == name)
            .map_or(ShowAs::Busy, |(s, _)| *s),
        None => ShowAs::Busy,
    };
    let reminder_minutes = if item.child_text("ReminderIsSet").map(str::trim) == Some("true") {
        match item.child_text("ReminderMinutesBeforeStart") {
            Some(text) => Some(
                text.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("ReminderMinutesBeforeStart {text:?} is not a number"))?,
            ),
            None => Some(15),
        }
    } else {
        None
    };
    let mut recurrence = match item.child("Recurrence") {
        Some(el) => Some(read_recurrence(el)?),
        None => None,
    };
    if let Some(recurrence) = &mut recurrence {
        if let Some(deleted) = item.child("DeletedOccurrences") {
            for occurrence in deleted.children_named("DeletedOccurrence") {
                let t = read_time(occurrence, "Start")?;
                recurrence.deleted.insert(date_in(t, event_zone));
            }
        }
        let master_subject = clean_line(item.child_text("Subject").unwrap_or(""));
        let master_location = clean_line(item.child_text("Location").unwrap_or(""));
        // Subject/Location on an Occurrence element come from the occurrence itself (the
        // client adds them); only a value that differs from the series is an exception.
        let differing = |occurrence: &Element, name: &str, master: &str| {
            occurrence
                .child_text(name)
                .map(clean_line)
                .filter(|v| v != master)
        };
        if let Some(modified) = item.child("ModifiedOccurrences") {
            for occurrence in modified.children_named("Occurrence") {
                recurrence.modified.push(Occurrence {
                    original_start: to_event_time(
                        read_time(occurrence, "OriginalStart")?,
                        start_zone,
                    ),
                    start: to_event_time(read_time(occurrence, "Start")?, start_zone),
                    end: to_event_time(read_time(occurrence, "End")?, end_zone),
                    subject: differing(occurrence, "Subject", &master_subject),
                    location: differing(occurrence, "Location", &master_location),
                });
            }
        }
    }
    let mut attendees = Vec::new();
    for (kind, list, _) in ATTENDEE_LISTS {
        if let Some(list) = item.child(list) {
            attendees.extend(
                list.children_named("Attendee")
                    .filter_map(|a| read_mailbox(a, kind)),
            );
        }
    }
    let event = Event {
        subject: item.child_text("Subject").unwrap_or("").to_owned(),
        location: item.child_text("Location").unwrap_or("").to_owned(),
        body: read_body(item),
        start: to_event_time(start, start_zone),
        end: to_event_time(end, end_zone),
        time_zone,
        private: matches!(sensitivity, "Private" | "Confidential"),
        show_as,
        reminder_minutes,
        recurrence,
        organizer: item
            .child("Organizer")
            .and_then(|o| read_mailbox(o, AttendeeKind::Required)),
        attendees,
        categories: read_categories(item),
    };
    Ok(event)
}

/// The updates that turn one occurrence into the exception `o`, all-day times as whole days
/// in `day`.
pub fn occurrence_updates(o: &Occurrence, day: DayZone) -> Vec<FieldUpdate> {
    let mut updates = vec![
        FieldUpdate::Set {
            path: FieldPath::Field("calendar:Start"),
            value: fragment(|w| {
                w.text("t:Start", &wire_time(&o.start, day));
            }),
        },
        FieldUpdate::Set {
            path: FieldPath::Field("calendar:End"),
            value: fragment(|w| {
                w.text("t:End", &wire_time(&o.end, day));
            }),
        },
    ];
    // Set even when empty: deleting the property on an occurrence would fall back to the
    // series' value, and an exception that clears it is a real exception.
    for (value, uri, element) in [
        (&o.subject, "item:Subject", "t:Subject"),
        (&o.location, "calendar:Location", "t:Location"),
    ] {
        if let Some(value) = value {
            updates.push(FieldUpdate::Set {
                path: FieldPath::Field(uri),
                value: fragment(|w| {
                    w.text(element, value);
                }),
            });
        }
    }
    updates
}

/// The series date an occurrence time falls on, in the event's zone.
pub(crate) fn occurrence_date(e: &Event, t: &EventTime) -> chrono::NaiveDate {
    match t {
        EventTime::Date(d) => *d,
        EventTime::At(t) => date_in(*t, e.time_zone.parse().ok()),
    }
}
