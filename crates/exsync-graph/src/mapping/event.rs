//! Event ↔ Graph `event`.
//!
//! Times are written as `dateTimeTimeZone` in the Windows zone of the event's IANA zone, with
//! the exact IANA name kept in our `IanaTimeZone` property (Windows ids cover several IANA
//! zones); all-day events are midnight dates in the owner's zone ([`DayZone`]), as the EWS
//! mapping writes them. Reading
//! accepts any zone Graph may answer in (`Prefer: outlook.timezone` is a wish, not a promise):
//! UTC, a Windows id or an IANA name.
//!
//! A series is one record: the master, fetched with `$expand=exceptionOccurrences` and with
//! `cancelledOccurrences` selected, reads into one [`Event`] whose [`Recurrence`] carries the
//! cancelled dates and the modified occurrences. Writes that make a series match: PATCH the
//! master ([`event_updates`]), PATCH an occurrence ([`occurrence_patch`]) addressed by the id
//! [`find_occurrence`] picks from `GET …/events/{master}/instances` over
//! [`instances_window`], and DELETE that id to cancel an occurrence.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use exsync_core::tags::{CRM_ID_PROPERTY, TIME_ZONE_PROPERTY};
use exsync_core::zones::{iana_to_windows, windows_to_iana, DayZone};
use exsync_core::{
    clean_line, Attendee, AttendeeKind, CrmId, Event, EventTime, Occurrence, Recurrence, ShowAs,
};

use super::recurrence::{read_recurrence, write_recurrence};
use super::{
    array, crm_id_property_id, expand_properties, extended_property, flag, format_instant, object,
    parse_date, parse_instant, parse_local, property_id, read_body, read_extended, text, text_body,
    Zone,
};

const SHOW_AS: [(ShowAs, &str); 5] = [
    (ShowAs::Free, "free"),
    (ShowAs::Tentative, "tentative"),
    (ShowAs::Busy, "busy"),
    (ShowAs::OutOfOffice, "oof"),
    (ShowAs::WorkingElsewhere, "workingElsewhere"),
];

const ATTENDEE_TYPES: [(AttendeeKind, &str); 3] = [
    (AttendeeKind::Required, "required"),
    (AttendeeKind::Optional, "optional"),
    (AttendeeKind::Resource, "resource"),
];

/// The properties an event read uses, for `$select` on a master or an event read by id
/// (calendarView delta takes no `$select`). `type` tells a master from an occurrence.
pub const EVENT_SELECT: &str = "id,changeKey,lastModifiedDateTime,type,subject,body,location,\
start,end,isAllDay,originalStartTimeZone,originalEndTimeZone,sensitivity,showAs,isReminderOn,\
reminderMinutesBeforeStart,recurrence,organizer,attendees,categories,cancelledOccurrences";

/// The `$expand` an event read needs: our CRM tag and the IANA zone we wrote it in.
pub fn event_expand() -> String {
    expand_properties(&[crm_id_property_id(), property_id(TIME_ZONE_PROPERTY)])
}

/// The Windows zone an event is written in and the zone its local times are computed in.
/// An all-day event is midnight dates in `day`, the owner's zone, so Outlook shows it on
/// those days. The local times come from the exact IANA zone, whose rules the Windows zone
/// shares.
fn write_zone(e: &Event, day: DayZone) -> (&'static str, Zone) {
    if e.is_all_day() {
        let zone = day.iana().parse::<Tz>().map_or(Zone::Utc, Zone::Named);
        return (day.windows(), zone);
    }
    if e.time_zone.is_empty() {
        return ("UTC", Zone::Utc);
    }
    match iana_to_windows(&e.time_zone) {
        Some(windows) => {
            let zone = e
                .time_zone
                .parse::<Tz>()
                .ok()
                .map(Zone::Named)
                .or_else(|| Zone::named(windows))
                .unwrap_or(Zone::Utc);
            (windows, zone)
        }
        None => {
            tracing::warn!(zone = %e.time_zone, "no Windows zone for this IANA zone; writing UTC");
            ("UTC", Zone::Utc)
        }
    }
}

/// A `dateTimeTimeZone`.
fn wire_time(t: &EventTime, windows: &str, zone: Zone) -> Value {
    let local = match t {
        EventTime::At(t) => zone.local(*t),
        EventTime::Date(d) => d.and_time(NaiveTime::MIN),
    };
    let mut out = Map::new();
    out.insert(
        "dateTime".into(),
        local.format("%Y-%m-%dT%H:%M:%S").to_string().into(),
    );
    out.insert("timeZone".into(), windows.into());
    Value::Object(out)
}

fn location_json(location: &str) -> Value {
    let mut out = Map::new();
    out.insert("displayName".into(), location.into());
    Value::Object(out)
}

fn attendees_json(e: &Event) -> Value {
    Value::Array(
        e.attendees
            .iter()
            .map(|a| {
                let mut address = Map::new();
                address.insert("address".into(), a.email.as_str().into());
                if !a.name.is_empty() {
                    address.insert("name".into(), a.name.as_str().into());
                }
                let mut out = Map::new();
                out.insert("emailAddress".into(), Value::Object(address));
                out.insert("type".into(), attendee_type(a.kind).into());
                Value::Object(out)
            })
            .collect(),
    )
}

fn attendee_type(kind: AttendeeKind) -> &'static str {
    ATTENDEE_TYPES
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("required", |(_, n)| n)
}

fn show_as_name(show_as: ShowAs) -> &'static str {
    SHOW_AS
        .iter()
        .find(|(s, _)| *s == show_as)
        .map_or("busy", |(_, n)| n)
}

fn sensitivity(e: &Event) -> &'static str {
    if e.private {
        "private"
    } else {
        "normal"
    }
}

fn categories_json(e: &Event) -> Value {
    Value::Array(e.categories.iter().map(|c| c.as_str().into()).collect())
}

/// The body of `POST …/events`, all-day events in UTC (see [`write_event_in`]).
pub fn write_event(e: &Event, crm_id: Option<&CrmId>) -> Value {
    write_event_in(e, crm_id, DayZone::UTC)
}

/// The body of `POST …/events`, an all-day event as whole days in `day`. The organizer is the
/// mailbox owner and Exchange sets it itself; the exceptions of a series are written to its
/// occurrences once the master exists.
pub fn write_event_in(e: &Event, crm_id: Option<&CrmId>, day: DayZone) -> Value {
    let mut out = Map::new();
    if !e.subject.is_empty() {
        out.insert("subject".into(), e.subject.as_str().into());
    }
    out.insert("sensitivity".into(), sensitivity(e).into());
    if !e.body.is_empty() {
        out.insert("body".into(), text_body(&e.body));
    }
    if !e.categories.is_empty() {
        out.insert("categories".into(), categories_json(e));
    }
    out.insert("isReminderOn".into(), e.reminder_minutes.is_some().into());
    if let Some(minutes) = e.reminder_minutes {
        out.insert("reminderMinutesBeforeStart".into(), minutes.into());
    }
    let (windows, zone) = write_zone(e, day);
    out.insert("start".into(), wire_time(&e.start, windows, zone));
    out.insert("end".into(), wire_time(&e.end, windows, zone));
    out.insert("isAllDay".into(), e.is_all_day().into());
    out.insert("showAs".into(), show_as_name(e.show_as).into());
    if !e.location.is_empty() {
        out.insert("location".into(), location_json(&e.location));
    }
    if !e.attendees.is_empty() {
        out.insert("attendees".into(), attendees_json(e));
    }
    if let Some(recurrence) = &e.recurrence {
        out.insert("recurrence".into(), write_recurrence(recurrence));
    }
    let mut extended = Vec::new();
    if let Some(crm_id) = crm_id {
        extended.push(extended_property(
            property_id(CRM_ID_PROPERTY),
            crm_id.as_str(),
        ));
    }
    if !e.time_zone.is_empty() && !e.is_all_day() {
        extended.push(extended_property(
            property_id(TIME_ZONE_PROPERTY),
            &e.time_zone,
        ));
    }
    if !extended.is_empty() {
        out.insert(
            "singleValueExtendedProperties".into(),
            Value::Array(extended),
        );
    }
    Value::Object(out)
}

/// The body of `PATCH …/events/{id}` that writes the `changed` fields of `e` and nothing else.
/// Start and end always go together (Graph checks the pair), with `isAllDay`; a changed zone
/// rewrites both in the new zone and our `IanaTimeZone` property, which Graph cannot remove,
/// so an event leaving its zone gets it empty (read back as no zone of ours). All-day events
/// in UTC (see [`event_updates_in`]).
pub fn event_updates(e: &Event, changed: &[String]) -> Result<Map<String, Value>, String> {
    event_updates_in(e, changed, DayZone::UTC)
}

/// [`event_updates`] with an all-day event as whole days in `day`.
pub fn event_updates_in(
    e: &Event,
    changed: &[String],
    day: DayZone,
) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let mut extended = Vec::new();
    let (windows, zone) = write_zone(e, day);
    let times = |out: &mut Map<String, Value>| {
        out.insert("start".into(), wire_time(&e.start, windows, zone));
        out.insert("end".into(), wire_time(&e.end, windows, zone));
        out.insert("isAllDay".into(), e.is_all_day().into());
    };
    for field in changed {
        match field.as_str() {
            "subject" => {
                let subject = if e.subject.is_empty() {
                    Value::Null
                } else {
                    e.subject.as_str().into()
                };
                out.insert("subject".into(), subject);
            }
            // Cleared as an empty display name: the location is a complex value, and an empty
            // one reads back as no location on every server.
            "location" => {
                out.insert("location".into(), location_json(&e.location));
            }
            "body" => {
                out.insert("body".into(), text_body(&e.body));
            }
            "start" | "end" => times(&mut out),
            "time_zone" => {
                times(&mut out);
                let value = if e.is_all_day() {
                    ""
                } else {
                    e.time_zone.as_str()
                };
                extended.push(extended_property(property_id(TIME_ZONE_PROPERTY), value));
            }
            "private" => {
                out.insert("sensitivity".into(), sensitivity(e).into());
            }
            "show_as" => {
                out.insert("showAs".into(), show_as_name(e.show_as).into());
            }
            "reminder_minutes" => {
                out.insert("isReminderOn".into(), e.reminder_minutes.is_some().into());
                if let Some(minutes) = e.reminder_minutes {
                    out.insert("reminderMinutesBeforeStart".into(), minutes.into());
                }
            }
            "recurrence" => {
                out.insert(
                    "recurrence".into(),
                    e.recurrence.as_ref().map_or(Value::Null, write_recurrence),
                );
            }
            "attendees" => {
                out.insert("attendees".into(), attendees_json(e));
            }
            "categories" => {
                out.insert("categories".into(), categories_json(e));
            }
            // Exchange makes the mailbox owner the organizer and does not let clients change it.
            "organizer" => {}
            other => return Err(format!("event field {other:?} is not synced to Exchange")),
        }
    }
    if !extended.is_empty() {
        out.insert(
            "singleValueExtendedProperties".into(),
            Value::Array(extended),
        );
    }
    Ok(out)
}

/// The body of `PATCH …/events/{occurrenceId}` that turns one occurrence into the exception
/// `o`, its times in the series' zone. Subject and location are set even when empty: an
/// exception that clears them is a real exception. All-day times are whole days in `day`.
pub fn occurrence_patch(e: &Event, o: &Occurrence, day: DayZone) -> Map<String, Value> {
    let (windows, zone) = write_zone(e, day);
    let mut out = Map::new();
    out.insert("start".into(), wire_time(&o.start, windows, zone));
    out.insert("end".into(), wire_time(&o.end, windows, zone));
    if let Some(subject) = &o.subject {
        out.insert("subject".into(), subject.as_str().into());
    }
    if let Some(location) = &o.location {
        out.insert("location".into(), location_json(location));
    }
    out
}

/// The `startDateTime` and `endDateTime` of the `/instances` request that finds the
/// occurrence of `date`: a day either side, since the date is in the series' zone and the
/// window in UTC.
pub fn instances_window(date: NaiveDate) -> (String, String) {
    let at = |d: NaiveDate| format_instant(&d.and_time(NaiveTime::MIN).and_utc());
    let before = date.pred_opt().unwrap_or(date);
    let after = date.succ_opt().and_then(|d| d.succ_opt()).unwrap_or(date);
    (at(before), at(after))
}

/// The id of the occurrence (or exception) of `e` whose original date is `date`, among the
/// `value` of an `/instances` answer: the id to PATCH or DELETE. Graph's occurrence ids are
/// opaque, so the series' own answer is the only reliable way to address one.
pub fn find_occurrence(e: &Event, instances: &[Value], date: NaiveDate) -> Option<String> {
    instances
        .iter()
        .take(super::MAX_ENTRIES)
        .find_map(|instance| {
            let kind = instance.get("type").and_then(Value::as_str).unwrap_or("");
            if kind != "occurrence" && kind != "exception" {
                return None;
            }
            let original = match instance.get("originalStart").and_then(Value::as_str) {
                Some(s) => parse_instant(s)?,
                None => {
                    let (local, zone) = read_wire_time(instance, "start").ok()?;
                    zone.instant(local)?
                }
            };
            let day = if e.is_all_day() {
                all_day_date(original.naive_utc(), Zone::Utc, zone_of_name(&e.time_zone)).ok()?
            } else {
                occurrence_date(e, &EventTime::At(original))
            };
            if day != date {
                return None;
            }
            instance
                .get("id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
        })
}

/// The series date an occurrence time falls on, in the event's zone.
pub fn occurrence_date(e: &Event, t: &EventTime) -> NaiveDate {
    match t {
        EventTime::Date(d) => *d,
        EventTime::At(t) => zone_of_name(&e.time_zone)
            .unwrap_or(Zone::Utc)
            .local(*t)
            .date(),
    }
}

/// The original date a `cancelledOccurrences` entry names. Graph writes them as
/// `OID.<master id>.<yyyy-MM-dd>`: the date after the last dot.
pub fn cancelled_occurrence_date(id: &str) -> Option<NaiveDate> {
    let (_, date) = id.trim().rsplit_once('.')?;
    if date.len() != 10 {
        return None;
    }
    parse_date(date)
}

fn zone_of_name(name: &str) -> Option<Zone> {
    if name.is_empty() {
        None
    } else {
        Zone::named(name)
    }
}

/// Reads a `dateTimeTimeZone` property: its local time and the zone it is in (UTC when the
/// zone is left out, as Graph answers without `Prefer: outlook.timezone`).
fn read_wire_time(item: &Value, name: &str) -> Result<(NaiveDateTime, Zone), String> {
    let v = object(item, name)?.ok_or_else(|| format!("event without {name}"))?;
    let date_time = text(v, "dateTime")?;
    let local =
        parse_local(date_time).ok_or_else(|| format!("{name} {date_time:?} is not a date-time"))?;
    let zone_name = text(v, "timeZone")?;
    let zone = if zone_name.trim().is_empty() {
        Zone::Utc
    } else {
        Zone::named(zone_name)
            .ok_or_else(|| format!("{name} is in the time zone {zone_name:?}, unknown to exsync"))?
    };
    Ok((local, zone))
}

fn instant_of(local: NaiveDateTime, zone: Zone, name: &str) -> Result<DateTime<Utc>, String> {
    zone.instant(local)
        .ok_or_else(|| format!("{name} {local} does not exist in its time zone"))
}

/// The day of an all-day time. A midnight is the day itself (Graph answers all-day events at
/// midnight of the zone it answers in); any other time is an instant, whose day is taken in
/// the event's own zone, rounded to the nearest midnight, as EWS reads them.
fn all_day_date(
    local: NaiveDateTime,
    zone: Zone,
    event_zone: Option<Zone>,
) -> Result<NaiveDate, String> {
    if local.time() == NaiveTime::MIN {
        return Ok(local.date());
    }
    let instant = instant_of(local, zone, "all-day time")?;
    let local = event_zone.unwrap_or(zone).local(instant);
    Ok((local + Duration::hours(12)).date())
}

fn read_address(v: &Value, kind: AttendeeKind) -> Result<Option<Attendee>, String> {
    let Some(address) = object(v, "emailAddress")? else {
        return Ok(None);
    };
    let email = text(address, "address")?.trim();
    if email.is_empty() {
        return Ok(None);
    }
    Ok(Some(Attendee {
        email: email.to_owned(),
        name: text(address, "name")?.to_owned(),
        kind,
    }))
}

fn read_attendee(v: &Value) -> Result<Option<Attendee>, String> {
    let kind = text(v, "type")?;
    let kind = ATTENDEE_TYPES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(kind))
        .map_or(AttendeeKind::Required, |(k, _)| *k);
    read_address(v, kind)
}

fn location_of(item: &Value) -> Result<String, String> {
    Ok(match object(item, "location")? {
        Some(location) => text(location, "displayName")?.to_owned(),
        None => String::new(),
    })
}

/// Reads a Graph `event` (expanded with [`event_expand`]); a series master also with
/// `exceptionOccurrences` and `cancelledOccurrences`, whose ids name their dates.
pub fn read_event(item: &Value) -> Result<Event, String> {
    let mut event = read_event_as_typed(item)?;
    event.normalize();
    Ok(event)
}

/// A Graph `event` as the user typed it, before it is made to fit (see [`Event::sanitize`]),
/// so the caller can say what had to go.
pub fn read_event_as_typed(item: &Value) -> Result<Event, String> {
    read_series(item, &cancelled_occurrence_date)
}

/// [`read_event`] with the way to tell the original date of a cancelled occurrence from its
/// id, for servers whose ids do not carry it.
pub fn read_series(
    item: &Value,
    cancelled_date: &dyn Fn(&str) -> Option<NaiveDate>,
) -> Result<Event, String> {
    if !item.is_object() {
        return Err("an event must be a JSON object".into());
    }
    // A series syncs as one unit through its master: an occurrence or exception read as a
    // record of its own would become a second, single event.
    let kind = text(item, "type")?;
    if kind == "occurrence" || kind == "exception" {
        return Err(format!(
            "an {kind} of a series syncs with its series master, not on its own"
        ));
    }
    let all_day = flag(item, "isAllDay")?;
    let (start_local, start_wire_zone) = read_wire_time(item, "start")?;
    let (end_local, end_wire_zone) = read_wire_time(item, "end")?;
    // The zone the event was scheduled in: what Graph reports as its original zone, else the
    // zone it answered in when that is not UTC (asked for by `Prefer: outlook.timezone`).
    let original = text(item, "originalStartTimeZone")?.trim();
    let zone_id: Option<String> = if !original.is_empty() {
        Some(original.to_owned())
    } else if start_wire_zone != Zone::Utc {
        Some(text(object(item, "start")?.unwrap_or(&Value::Null), "timeZone")?.to_owned())
    } else {
        None
    };
    let start_zone = zone_id.as_deref().and_then(Zone::named);
    let end_zone = match text(item, "originalEndTimeZone")?.trim() {
        "" => start_zone,
        name => Zone::named(name).or(start_zone),
    };
    let to_event_time = |local: NaiveDateTime,
                         wire: Zone,
                         zone: Option<Zone>,
                         name: &str|
     -> Result<EventTime, String> {
        if all_day {
            Ok(EventTime::Date(all_day_date(local, wire, zone)?))
        } else {
            Ok(EventTime::At(instant_of(local, wire, name)?))
        }
    };
    let time_zone = if all_day {
        String::new()
    } else {
        let ours = read_extended(item, &property_id(TIME_ZONE_PROPERTY))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        match (ours, zone_id.as_deref()) {
            // Our exact IANA name holds while the item's zone still matches it; a zone changed
            // in Outlook wins.
            (Some(ours), Some(id))
                if iana_to_windows(&ours).is_some_and(|w| w.eq_ignore_ascii_case(id))
                    || ours == id =>
            {
                ours
            }
            (Some(ours), None) if ours.parse::<Tz>().is_ok() => ours,
            (_, Some(id)) => match windows_to_iana(id) {
                Some(iana) => iana.to_owned(),
                None if id.parse::<Tz>().is_ok() => id.to_owned(),
                None => String::new(),
            },
            (_, None) => String::new(),
        }
    };
    let show_as = {
        let name = text(item, "showAs")?;
        SHOW_AS
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map_or(ShowAs::Busy, |(s, _)| *s)
    };
    let reminder_minutes = if flag(item, "isReminderOn")? {
        match item.get("reminderMinutesBeforeStart") {
            None | Some(Value::Null) => Some(15),
            Some(v) => Some(
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| format!("reminderMinutesBeforeStart {v} is not a number"))?,
            ),
        }
    } else {
        None
    };
    let subject = text(item, "subject")?.to_owned();
    let location = location_of(item)?;
    let mut recurrence: Option<Recurrence> = match object(item, "recurrence")? {
        Some(v) => Some(read_recurrence(v)?),
        None => None,
    };
    if let Some(recurrence) = &mut recurrence {
        for id in array(item, "cancelledOccurrences")? {
            let id = id
                .as_str()
                .ok_or("cancelledOccurrences holds a value that is not an id")?;
            let date = cancelled_date(id)
                .ok_or_else(|| format!("cancelled occurrence {id:?} names no date"))?;
            recurrence.deleted.insert(date);
        }
        let master_subject = clean_line(&subject);
        let master_location = clean_line(&location);
        for exception in array(item, "exceptionOccurrences")? {
            let original = text(exception, "originalStart")?;
            let original = parse_instant(original).ok_or_else(|| {
                format!("exception originalStart {original:?} is not a date-time")
            })?;
            let original_start = if all_day {
                EventTime::Date(all_day_date(original.naive_utc(), Zone::Utc, start_zone)?)
            } else {
                EventTime::At(original)
            };
            let (s_local, s_zone) = read_wire_time(exception, "start")?;
            let (e_local, e_zone) = read_wire_time(exception, "end")?;
            // An exception's subject and location are its own copies; only a value that
            // differs from the series' is part of the exception.
            let own_subject = clean_line(text(exception, "subject")?);
            let own_location = clean_line(&location_of(exception)?);
            recurrence.modified.push(Occurrence {
                original_start,
                start: to_event_time(s_local, s_zone, start_zone, "exception start")?,
                end: to_event_time(e_local, e_zone, end_zone, "exception end")?,
                subject: (exception.get("subject").is_some() && own_subject != master_subject)
                    .then_some(own_subject),
                location: (exception.get("location").is_some() && own_location != master_location)
                    .then_some(own_location),
            });
        }
    }
    let mut attendees = Vec::new();
    for a in array(item, "attendees")? {
        if let Some(attendee) = read_attendee(a)? {
            attendees.push(attendee);
        }
    }
    let organizer = match object(item, "organizer")? {
        Some(o) => read_address(o, AttendeeKind::Required)?,
        None => None,
    };
    let mut categories = Vec::new();
    for c in array(item, "categories")? {
        categories.push(
            c.as_str()
                .ok_or("categories holds a value that is not a string")?
                .to_owned(),
        );
    }
    let sensitivity = text(item, "sensitivity")?;
    let event = Event {
        subject,
        location,
        body: read_body(object(item, "body")?)?,
        start: to_event_time(start_local, start_wire_zone, start_zone, "start")?,
        end: to_event_time(end_local, end_wire_zone, end_zone, "end")?,
        time_zone,
        private: sensitivity.eq_ignore_ascii_case("private")
            || sensitivity.eq_ignore_ascii_case("confidential"),
        show_as,
        reminder_minutes,
        recurrence,
        organizer,
        attendees,
        categories,
    };
    Ok(event)
}
