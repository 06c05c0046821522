//! A stored event (single, or the master of a series with its exceptions and cancellations),
//! the instances a series stands for, and their Graph JSON.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::call::Answer;
use super::event_body::{When, Write};
use super::odata::etag;
use super::odata::extended::ExtendedProps;
use super::recurrence::{self, overlaps, Rule, Slot, Timing};
use super::time_zone::{format_stamp, format_utc, render as render_when, render_local, Zone};

/// What a single event, a master or an exception holds of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Fields {
    pub(crate) start: NaiveDateTime,
    pub(crate) start_zone: String,
    pub(crate) end: NaiveDateTime,
    pub(crate) end_zone: String,
    pub(crate) all_day: bool,
    /// Checked plain properties (subject, body, location, attendees, showAs, …).
    pub(crate) props: Map<String, Value>,
}

fn zone_named(name: &str) -> Zone {
    Zone::parse(name).unwrap_or_else(Zone::utc)
}

impl Fields {
    pub(crate) fn start_zone(&self) -> Zone {
        zone_named(&self.start_zone)
    }

    /// Start and end as instants. An all-day event is a span of dates, not of instants: it
    /// covers midnight to midnight of whatever zone it is looked at from, as in Outlook.
    pub(crate) fn instants(&self, view: &Zone) -> (DateTime<Utc>, DateTime<Utc>) {
        if self.all_day {
            (view.to_utc(self.start), view.to_utc(self.end))
        } else {
            (
                self.start_zone().to_utc(self.start),
                zone_named(&self.end_zone).to_utc(self.end),
            )
        }
    }

    /// Length as the series repeats it: whole days for an all-day event, else real time.
    fn length(&self) -> Duration {
        if self.all_day {
            self.end - self.start
        } else {
            let utc = Zone::utc();
            let (s, e) = self.instants(&utc);
            e - s
        }
    }

    /// Applies a checked write, then checks the result as a whole (end after start, the
    /// midnights of an all-day event). An exception keeps a cleared property as `null`, so
    /// it hides the series' value instead of falling back on it.
    pub(crate) fn apply(&mut self, write: &Write, overrides: bool) -> Result<(), Answer> {
        for (key, value) in &write.props {
            if value.is_null() && !overrides {
                self.props.remove(key);
            } else {
                self.props.insert(key.clone(), value.clone());
            }
        }
        if let Some(When { local, zone }) = &write.start {
            self.start = *local;
            self.start_zone = zone.name.clone();
        }
        if let Some(When { local, zone }) = &write.end {
            self.end = *local;
            self.end_zone = zone.name.clone();
        }
        if let Some(all_day) = write.all_day {
            self.all_day = all_day;
        }
        self.check()
    }

    fn check(&self) -> Result<(), Answer> {
        let utc = Zone::utc();
        let (start, end) = self.instants(&utc);
        if end < start {
            return Err(Answer::bad_request(
                "The end of the event is before its start.",
            ));
        }
        if self.all_day {
            let midnight = |t: NaiveDateTime| t.time() == chrono::NaiveTime::MIN;
            if !midnight(self.start) || !midnight(self.end) || self.end <= self.start {
                return Err(Answer::error(
                    400,
                    "ErrorPropertyValidationFailure",
                    "An all-day event must start and end at midnight, at least one day apart.",
                ));
            }
            if self.start_zone().tz != zone_named(&self.end_zone).tz {
                return Err(Answer::error(
                    400,
                    "ErrorPropertyValidationFailure",
                    "The start and end of an all-day event must be in the same time zone.",
                ));
            }
        }
        Ok(())
    }
}

/// A series: its rule and how its occurrences differ from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Series {
    pub(crate) rule: Rule,
    /// Sequence of the latest change every occurrence shares (the master's own fields or rule).
    pub(crate) series_seq: u64,
    /// Changed occurrences, by original date.
    #[serde(default)]
    pub(crate) exceptions: BTreeMap<NaiveDate, Exception>,
    /// Cancelled occurrences: original date → sequence of the cancellation.
    #[serde(default)]
    pub(crate) cancelled: BTreeMap<NaiveDate, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Exception {
    pub(crate) change_key: String,
    pub(crate) seq: u64,
    pub(crate) modified: DateTime<Utc>,
    pub(crate) fields: Fields,
    #[serde(default)]
    pub(crate) extended: ExtendedProps,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Event {
    pub(crate) id: String,
    pub(crate) change_key: String,
    /// Sequence of its latest change, of any part of it (exceptions included).
    pub(crate) seq: u64,
    pub(crate) created: DateTime<Utc>,
    pub(crate) modified: DateTime<Utc>,
    pub(crate) ical_uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) transaction_id: Option<String>,
    pub(crate) fields: Fields,
    #[serde(default)]
    pub(crate) extended: ExtendedProps,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) series: Option<Series>,
}

/// The `AAMkA…` prefix bytes Exchange ids start with, and the marker of an occurrence id.
const ID_PREFIX: [u8; 4] = [0x00, 0x03, 0x24, 0x00];
const OCCURRENCE_MARK: &[u8] = b"OCC";

/// The id of a series' occurrence: made of the master's id and the occurrence's original
/// date, so it is the same on every call and names its series without a lookup.
pub(crate) fn occurrence_id(master_id: &str, date: NaiveDate) -> String {
    let mut bytes = ID_PREFIX.to_vec();
    bytes.extend_from_slice(OCCURRENCE_MARK);
    bytes.extend_from_slice(date.format("%Y%m%d").to_string().as_bytes());
    bytes.extend_from_slice(master_id.as_bytes());
    URL_SAFE.encode(bytes)
}

/// How a master's `cancelledOccurrences` names a cancelled occurrence: `OID.<master id>.<original
/// date, yyyy-MM-dd>`, as Graph answers it (beta `event-get`, example "expand a series master"):
/// the occurrence no longer exists, so it has no item id, only this occurrence id.
pub(crate) fn cancelled_occurrence_id(master_id: &str, date: NaiveDate) -> String {
    format!("OID.{master_id}.{}", date.format("%Y-%m-%d"))
}

/// The master id and original date an occurrence id stands for; `None` for any other id.
pub(crate) fn parse_occurrence_id(id: &str) -> Option<(String, NaiveDate)> {
    if id.len() > 1024 {
        return None;
    }
    let bytes = URL_SAFE.decode(id).ok()?;
    let rest = bytes
        .strip_prefix(&ID_PREFIX[..])?
        .strip_prefix(OCCURRENCE_MARK)?;
    let date =
        NaiveDate::parse_from_str(std::str::from_utf8(rest.get(..8)?).ok()?, "%Y%m%d").ok()?;
    let master = std::str::from_utf8(rest.get(8..)?).ok()?;
    Some((master.to_owned(), date))
}

/// Exchange's GlobalObjectId form: a fixed class id, four bytes of instance date (zero for
/// the series or a single event), then the item's own bytes.
pub(crate) fn new_ical_uid() -> String {
    let tail: String = uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    format!("040000008200E00074C5B7101A82E00800000000{tail}")
}

fn occurrence_ical_uid(master_uid: &str, date: NaiveDate) -> String {
    match (master_uid.get(..32), master_uid.get(40..)) {
        (Some(head), Some(tail)) => format!(
            "{head}{:04X}{:02X}{:02X}{tail}",
            date.year(),
            date.month(),
            date.day()
        ),
        _ => master_uid.to_owned(),
    }
}

/// Which kind of thing an instance is (Graph's `eventType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Single,
    Master,
    Occurrence,
    Exception,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Single => "singleInstance",
            Kind::Master => "seriesMaster",
            Kind::Occurrence => "occurrence",
            Kind::Exception => "exception",
        }
    }
}

/// One event as a view shows it: a stored event, or an occurrence or exception of a series.
#[derive(Debug, Clone)]
pub(crate) struct Instance<'a> {
    pub(crate) kind: Kind,
    pub(crate) id: String,
    /// The stored event: the instance itself, or its master.
    pub(crate) event: &'a Event,
    /// Original date (occurrences and exceptions).
    pub(crate) date: Option<NaiveDate>,
    pub(crate) exception: Option<&'a Exception>,
    pub(crate) start: DateTime<Utc>,
    pub(crate) end: DateTime<Utc>,
    /// Sequence of the latest change that concerns this instance.
    pub(crate) seq: u64,
}

impl Event {
    pub(crate) fn kind(&self) -> Kind {
        if self.series.is_some() {
            Kind::Master
        } else {
            Kind::Single
        }
    }

    /// The event itself as an instance (a single event, or a master).
    pub(crate) fn as_instance(&self, view: &Zone) -> Instance<'_> {
        let (start, end) = self.fields.instants(view);
        Instance {
            kind: self.kind(),
            id: self.id.clone(),
            event: self,
            date: None,
            exception: None,
            start,
            end,
            seq: self.seq,
        }
    }

    /// How the series places its occurrences as seen from `view` (all-day series follow the
    /// viewer's midnights).
    pub(crate) fn timing<'a>(
        &'a self,
        series: &'a Series,
        view: &'a Zone,
        own: &'a Zone,
    ) -> Timing<'a> {
        Timing {
            rule: &series.rule,
            zone: if self.fields.all_day { view } else { own },
            time_of_day: self.fields.start.time(),
            length: self.fields.length(),
        }
    }

    fn occurrence(&self, series: &Series, slot: Slot) -> Instance<'_> {
        Instance {
            kind: Kind::Occurrence,
            id: occurrence_id(&self.id, slot.date),
            event: self,
            date: Some(slot.date),
            exception: None,
            start: slot.start,
            end: slot.end,
            seq: series.series_seq,
        }
    }

    fn exception_instance<'a>(
        &'a self,
        series: &Series,
        date: NaiveDate,
        exception: &'a Exception,
        view: &Zone,
    ) -> Instance<'a> {
        let (start, end) = exception.fields.instants(view);
        Instance {
            kind: Kind::Exception,
            id: occurrence_id(&self.id, date),
            event: self,
            date: Some(date),
            exception: Some(exception),
            start,
            end,
            seq: exception.seq.max(series.series_seq),
        }
    }

    /// The instances a view of `[from, to)` shows of this event: itself when single, its
    /// occurrences and exceptions when a master (never the master itself).
    pub(crate) fn instances_between(
        &self,
        view: &Zone,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<Instance<'_>> {
        let Some(series) = &self.series else {
            let me = self.as_instance(view);
            return if overlaps(me.start, me.end, from, to) {
                vec![me]
            } else {
                Vec::new()
            };
        };
        let own = self.fields.start_zone();
        let timing = self.timing(series, view, &own);
        let mut out: Vec<Instance<'_>> = timing
            .slots_between(from, to)
            .into_iter()
            .filter(|s| {
                !series.cancelled.contains_key(&s.date) && !series.exceptions.contains_key(&s.date)
            })
            .map(|s| self.occurrence(series, s))
            .collect();
        out.extend(
            series
                .exceptions
                .iter()
                .map(|(date, e)| self.exception_instance(series, *date, e, view))
                .filter(|i| overlaps(i.start, i.end, from, to)),
        );
        out.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
        out
    }

    /// The occurrence or exception of this series on an original date, if the rule has one
    /// there and it was not cancelled.
    pub(crate) fn instance_on(&self, date: NaiveDate, view: &Zone) -> Option<Instance<'_>> {
        let series = self.series.as_ref()?;
        if series.cancelled.contains_key(&date) {
            return None;
        }
        if let Some(exception) = series.exceptions.get(&date) {
            return Some(self.exception_instance(series, date, exception, view));
        }
        let own = self.fields.start_zone();
        let timing = self.timing(series, view, &own);
        timing
            .has_date(date)
            .then(|| self.occurrence(series, timing.slot(date)))
    }

    /// The series' exceptions as instances, by original date.
    pub(crate) fn exceptions<'a>(&'a self, view: &Zone) -> Vec<Instance<'a>> {
        let Some(series) = &self.series else {
            return Vec::new();
        };
        series
            .exceptions
            .iter()
            .map(|(date, e)| self.exception_instance(series, *date, e, view))
            .collect()
    }
}

/// A text preview of a body: tags dropped, whitespace folded, 255 characters at most.
fn preview(body: Option<&Value>) -> String {
    let content = body
        .and_then(|b| b.get("content"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let html = body
        .and_then(|b| b.get("contentType"))
        .and_then(Value::as_str)
        == Some("html");
    let mut text = String::new();
    let mut in_tag = false;
    for c in content.chars() {
        match c {
            '<' if html => in_tag = true,
            '>' if html && in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if in_tag => {}
            _ => text.push(c),
        }
    }
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(255)
        .collect()
}

fn default_location() -> Value {
    json!({
        "displayName": "",
        "locationType": "default",
        "uniqueIdType": "unknown",
        "address": {},
        "coordinates": {},
    })
}

/// What the rendering of an instance needs besides the instance.
pub(crate) struct View<'a> {
    pub(crate) zone: &'a Zone,
    /// Canonical ids of the extended properties `$expand` asked for.
    pub(crate) extended: Option<&'a [String]>,
}

impl Instance<'_> {
    fn fields(&self) -> &Fields {
        self.exception.map_or(&self.event.fields, |e| &e.fields)
    }

    /// A plain property as the instance shows it: an exception's own value, else the
    /// series' (so a change to the series reaches the exceptions that didn't override it,
    /// as in Outlook); `None` when unset or cleared.
    fn prop(&self, name: &str) -> Option<&Value> {
        let own = self.exception.and_then(|e| e.fields.props.get(name));
        own.or_else(|| self.event.fields.props.get(name))
            .filter(|v| !v.is_null())
    }

    /// The subject it shows (`$orderby=subject`).
    pub(crate) fn subject(&self) -> &str {
        self.prop("subject")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub(crate) fn modified(&self) -> DateTime<Utc> {
        self.exception.map_or(self.event.modified, |e| e.modified)
    }

    pub(crate) fn change_key(&self) -> &str {
        self.exception
            .map_or(&self.event.change_key, |e| &e.change_key)
    }

    pub(crate) fn extended(&self) -> &ExtendedProps {
        self.exception.map_or(&self.event.extended, |e| &e.extended)
    }

    fn when(&self, instant: DateTime<Utc>, local: NaiveDateTime, zone: &Zone) -> Value {
        if self.fields().all_day {
            // The viewer's midnight; an occurrence's date is what moves.
            render_local(zone.to_local(instant).date().and_time(local.time()), zone)
        } else {
            render_when(instant, zone)
        }
    }

    fn series_master_id(&self) -> Value {
        match self.kind {
            Kind::Occurrence | Kind::Exception => Value::from(self.event.id.clone()),
            _ => Value::Null,
        }
    }

    /// Only what calendarView delta gives of an occurrence.
    pub(crate) fn render_brief(&self, view: &View<'_>) -> Value {
        let fields = self.fields();
        json!({
            "@odata.type": "#microsoft.graph.event",
            "@odata.etag": etag(self.change_key()),
            "seriesMasterId": self.series_master_id(),
            "type": self.kind.name(),
            "id": self.id,
            "start": self.when(self.start, fields.start, view.zone),
            "end": self.when(self.end, fields.end, view.zone),
        })
    }

    /// The whole event, as `GET events/{id}` answers it (without `cancelledOccurrences` and
    /// `exceptionOccurrences`, which Graph only gives when asked).
    pub(crate) fn render(&self, view: &View<'_>) -> Value {
        let fields = self.fields();
        let event = self.event;
        let modified = self.exception.map_or(event.modified, |e| e.modified);
        let ical_uid = match self.date {
            Some(date) => occurrence_ical_uid(&event.ical_uid, date),
            None => event.ical_uid.clone(),
        };
        let prop = |name: &str, default: Value| self.prop(name).cloned().unwrap_or(default);
        let location = prop("location", default_location());
        let has_place = location
            .get("displayName")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        let locations = self.prop("locations").cloned().unwrap_or_else(|| {
            Value::Array(if has_place {
                vec![location.clone()]
            } else {
                Vec::new()
            })
        });
        let body = prop("body", json!({"contentType": "text", "content": ""}));
        let mut out = json!({
            "@odata.type": "#microsoft.graph.event",
            "@odata.etag": etag(self.change_key()),
            "id": self.id,
            "createdDateTime": format_stamp(event.created),
            "lastModifiedDateTime": format_stamp(modified),
            "changeKey": self.change_key(),
            "categories": prop("categories", json!([])),
            "transactionId": if self.kind == Kind::Occurrence || self.kind == Kind::Exception { Value::Null } else { json!(event.transaction_id) },
            "originalStartTimeZone": fields.start_zone,
            "originalEndTimeZone": fields.end_zone,
            "iCalUId": ical_uid,
            "reminderMinutesBeforeStart": prop("reminderMinutesBeforeStart", json!(15)),
            "isReminderOn": prop("isReminderOn", json!(true)),
            "hasAttachments": false,
            "subject": prop("subject", json!("")),
            "bodyPreview": preview(self.prop("body")),
            "importance": prop("importance", json!("normal")),
            "sensitivity": prop("sensitivity", json!("normal")),
            "isAllDay": fields.all_day,
            "isCancelled": false,
            "isOrganizer": true,
            "responseRequested": prop("responseRequested", json!(true)),
            "seriesMasterId": self.series_master_id(),
            "showAs": prop("showAs", json!("busy")),
            "type": self.kind.name(),
            "webLink": format!(
                "https://outlook.office365.com/owa/?itemid={}&exvsurl=1&path=/calendar/item",
                self.id.replace('=', "%3D")
            ),
            "onlineMeetingUrl": Value::Null,
            "isOnlineMeeting": prop("isOnlineMeeting", json!(false)),
            "onlineMeetingProvider": prop("onlineMeetingProvider", json!("unknown")),
            "allowNewTimeProposals": prop("allowNewTimeProposals", json!(true)),
            "isDraft": false,
            "hideAttendees": prop("hideAttendees", json!(false)),
            "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
            "body": body,
            "start": self.when(self.start, fields.start, view.zone),
            "end": self.when(self.end, fields.end, view.zone),
            "location": location,
            "locations": locations,
            "recurrence": Value::Null,
            "attendees": prop("attendees", json!([])),
            "onlineMeeting": Value::Null,
        });
        if let Some(map) = out.as_object_mut() {
            if let Some(organizer) = self.prop("organizer") {
                map.insert("organizer".into(), organizer.clone());
            }
            if let (Some(series), Kind::Master) = (&event.series, self.kind) {
                map.insert(
                    "recurrence".into(),
                    recurrence::render(&series.rule, &fields.start_zone),
                );
            }
            if let Some(date) = self.date {
                let own = event.fields.start_zone();
                let original = match &event.series {
                    Some(series) => event.timing(series, &own, &own).slot(date).start,
                    None => self.start,
                };
                map.insert("originalStart".into(), Value::from(format_utc(original)));
            }
            if let Some(wanted) = view.extended {
                if let Some(found) = self.extended().render(wanted) {
                    map.insert("singleValueExtendedProperties".into(), found);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn occurrence_ids_are_stable_and_name_their_series() {
        let date = NaiveDate::from_ymd_opt(2026, 3, 9).unwrap();
        let master = "AAMkAGI2TG93AAA=";
        let id = occurrence_id(master, date);
        assert_eq!(id, occurrence_id(master, date));
        assert!(id.starts_with("AAMkA"), "{id}");
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)));
        assert_eq!(parse_occurrence_id(&id), Some((master.to_owned(), date)));
        assert_eq!(parse_occurrence_id(master), None);
        assert_eq!(parse_occurrence_id("not base64!"), None);
    }

    #[test]
    fn cancelled_occurrences_are_named_by_master_and_date() {
        let date = NaiveDate::from_ymd_opt(2020, 4, 30).unwrap();
        assert_eq!(
            cancelled_occurrence_id("AAMkADAGAADDdm4NAAA=", date),
            "OID.AAMkADAGAADDdm4NAAA=.2020-04-30"
        );
    }

    #[test]
    fn occurrence_ical_uids_carry_the_date() {
        let uid = new_ical_uid();
        assert_eq!(uid.len(), 72);
        let occ = occurrence_ical_uid(&uid, NaiveDate::from_ymd_opt(2026, 3, 9).unwrap());
        assert_eq!(&occ[32..40], "07EA0309");
        assert_eq!(occ[40..], uid[40..]);
    }

    #[test]
    fn previews_drop_tags() {
        let body =
            json!({"contentType": "html", "content": "<p>Hello <b>you</b></p>\n<p>there</p>"});
        assert_eq!(preview(Some(&body)), "Hello you there");
        assert_eq!(preview(None), "");
    }
}
