//! The primary calendar of one mailbox (`calendar`, `calendars…`, `events…`,
//! `calendarView…`): events and series CRUD here, the views and delta in
//! [`super::calendar_view`].

use std::collections::{BTreeMap, VecDeque};

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::calendar_view;
use super::call::{Answer, Call};
use super::event::{
    cancelled_occurrence_id, new_ical_uid, parse_occurrence_id, Event, Exception, Fields, Instance,
    Series, View,
};
use super::event_body::{self, Write};
use super::odata::extended::{parse_expand, ExtendedProps};
use super::odata::{check_if_match, check_select, new_change_key, new_item_id, project};
use super::recurrence::{self, Rule};
use super::time_zone::Zone;

/// Prior versions kept for delta's `@removed`; a token older than the oldest one dropped
/// answers 410, as Exchange's token cache does when it overflows.
const MAX_HISTORY: usize = 2000;
/// More events than this in one calendar is a runaway client.
const MAX_EVENTS: usize = 200_000;

/// Every property `$select` may name on an event.
pub(crate) const EVENT_PROPERTIES: &[&str] = &[
    "id",
    "categories",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "allowNewTimeProposals",
    "attendees",
    "body",
    "bodyPreview",
    "cancelledOccurrences",
    "end",
    "hasAttachments",
    "hideAttendees",
    "iCalUId",
    "importance",
    "isAllDay",
    "isCancelled",
    "isDraft",
    "isOnlineMeeting",
    "isOrganizer",
    "isReminderOn",
    "location",
    "locations",
    "onlineMeeting",
    "onlineMeetingProvider",
    "onlineMeetingUrl",
    "organizer",
    "originalEndTimeZone",
    "originalStart",
    "originalStartTimeZone",
    "recurrence",
    "reminderMinutesBeforeStart",
    "responseRequested",
    "responseStatus",
    "sensitivity",
    "seriesMasterId",
    "showAs",
    "start",
    "subject",
    "transactionId",
    "type",
    "webLink",
];

/// An event as it was just before a change or its deletion.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Past {
    /// Sequence of the change that ended this version.
    pub(crate) seq: u64,
    pub(crate) event: Event,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Calendar {
    #[serde(default)]
    pub(crate) events: BTreeMap<String, Event>,
    /// Sequence of the latest change.
    #[serde(default)]
    pub(crate) seq: u64,
    /// Bumped when delta tokens expire: tokens of an older generation answer 410.
    #[serde(default)]
    pub(crate) generation: u64,
    /// transactionId → event id, what makes a repeated create idempotent.
    #[serde(default)]
    transactions: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) history: VecDeque<Past>,
    /// Tokens covering up to this sequence or less can't be answered any more.
    #[serde(default)]
    pub(crate) history_floor: u64,
}

/// `@odata.context` of an answer: `https://…/v1.0/$metadata#users('id')/…`.
pub(crate) fn context(user_url: &str, what: &str) -> String {
    match user_url.rsplit_once("/users/") {
        Some((root, user)) => format!("{root}/$metadata#users('{user}')/{what}"),
        None => format!("$metadata#{what}"),
    }
}

/// The zone `Prefer: outlook.timezone` names, UTC without it; an unknown name is a 400.
pub(crate) fn view_zone(call: &Call<'_>) -> Result<Zone, Answer> {
    match &call.prefer.time_zone {
        None => Ok(Zone::utc()),
        Some(name) => Zone::parse(name).ok_or_else(|| {
            Answer::error(
                400,
                "TimeZoneNotSupportedException",
                &format!("A valid TimeZone value must be specified. The following TimeZone value is not supported: '{name}'."),
            )
        }),
    }
}

/// Adds `Preference-Applied` for the time zone, as Graph does when it honours one.
pub(crate) fn applied(answer: Answer, call: &Call<'_>) -> Answer {
    match &call.prefer.time_zone {
        Some(name) => answer.header("Preference-Applied", format!("outlook.timezone=\"{name}\"")),
        None => answer,
    }
}

/// `$select` and `$expand` of an event read.
pub(crate) struct Shape {
    pub(crate) select: Option<Vec<String>>,
    pub(crate) extended: Option<Vec<String>>,
    /// `$expand=exceptionOccurrences`, with the `$select` of its own options if any.
    pub(crate) exceptions: Option<Option<Vec<String>>>,
}

/// `exceptionOccurrences` or `exceptionOccurrences($select=a,b)`: the nested `$select`, if
/// the expand item names it; `None` when the item is something else.
fn exceptions_expand(item: &str) -> Result<Option<Option<Vec<String>>>, Answer> {
    let (name, options) = match item.split_once('(') {
        Some((name, rest)) => (name.trim(), Some(rest.strip_suffix(')').unwrap_or(rest))),
        None => (item.trim(), None),
    };
    if !name.eq_ignore_ascii_case("exceptionOccurrences") {
        return Ok(None);
    }
    let mut select = None;
    for option in options.into_iter().flat_map(|o| o.split(';')) {
        match option.split_once('=') {
            Some((key, value)) if key.trim().eq_ignore_ascii_case("$select") => {
                let names: Vec<String> = value.split(',').map(|s| s.trim().to_owned()).collect();
                check_select(Some(&names), EVENT_PROPERTIES)?;
                select = Some(names);
            }
            _ if option.trim().is_empty() => {}
            _ => {
                return Err(Answer::bad_request(&format!(
                "Only $select is supported inside $expand=exceptionOccurrences(…), not '{option}'."
            )))
            }
        }
    }
    Ok(Some(select))
}

impl Shape {
    pub(crate) fn parse(call: &Call<'_>, allow_exceptions: bool) -> Result<Shape, Answer> {
        check_select(call.query.select.as_deref(), EVENT_PROPERTIES)?;
        let expand = parse_expand(call.query.expand.as_deref())?;
        let mut exceptions = None;
        for other in &expand.other {
            if let (true, Some(nested)) = (allow_exceptions, exceptions_expand(other)?) {
                exceptions = Some(nested);
            } else {
                return Err(Answer::error(
                    400,
                    "BadRequest",
                    &format!("Parsing OData Select and Expand failed: Could not find a property named '{other}' on type 'microsoft.graph.event'."),
                ));
            }
        }
        Ok(Shape {
            select: call.query.select.clone(),
            extended: expand.extended,
            exceptions,
        })
    }

    fn selects(&self, name: &str) -> bool {
        self.select
            .as_ref()
            .is_some_and(|s| s.iter().any(|n| n.eq_ignore_ascii_case(name)))
    }

    /// An instance as this read wants it.
    pub(crate) fn render(&self, instance: &Instance<'_>, zone: &Zone) -> Value {
        let view = View {
            zone,
            extended: self.extended.as_deref(),
        };
        let mut full = instance.render(&view);
        let series = instance
            .event
            .series
            .as_ref()
            .filter(|_| instance.id == instance.event.id);
        if let (Some(series), true, Some(map)) = (
            series,
            self.selects("cancelledOccurrences"),
            full.as_object_mut(),
        ) {
            let ids: Vec<Value> = series
                .cancelled
                .keys()
                .map(|d| Value::from(cancelled_occurrence_id(&instance.event.id, *d)))
                .collect();
            map.insert("cancelledOccurrences".into(), Value::Array(ids));
        }
        let mut out = project(
            &full,
            self.select.as_deref(),
            &["singleValueExtendedProperties"],
        );
        if let Some(nested) = &self.exceptions {
            if let Some(map) = out.as_object_mut() {
                let exceptions: Vec<Value> = instance
                    .event
                    .exceptions(zone)
                    .iter()
                    .filter(|_| series.is_some())
                    .map(|e| project(&e.render(&view), nested.as_deref(), &[]))
                    .collect();
                map.insert("exceptionOccurrences".into(), Value::Array(exceptions));
            }
        }
        out
    }
}

fn method_not_allowed() -> Answer {
    Answer::error(
        405,
        "ErrorInvalidRequest",
        "The OData request is not supported.",
    )
}

fn one_answer(mut body: Value, call: &Call<'_>, what: &str) -> Value {
    if let Some(map) = body.as_object_mut() {
        map.insert(
            "@odata.context".into(),
            Value::from(context(call.user_url, what)),
        );
    }
    body
}

impl Calendar {
    /// Answers a call whose path this store owns; `None` for any other path.
    pub(crate) fn handle(&mut self, call: &Call<'_>) -> Option<Answer> {
        // Kiota-built SDKs call the function with its parentheses (`delta()`).
        let path: Vec<&str> = call
            .path
            .iter()
            .map(|s| if s == "delta()" { "delta" } else { s.as_str() })
            .collect();
        let calendar_id = calendar_id(call.user_url);
        let rest: &[&str] = match path.as_slice() {
            ["calendar"] => {
                return Some(match *call.method {
                    Method::GET => self.calendar(call, "calendar/$entity"),
                    _ => method_not_allowed(),
                })
            }
            ["calendars"] => {
                return Some(match *call.method {
                    Method::GET => {
                        let mut one = self.calendar(call, "");
                        if let Some(body) = one.body.take() {
                            let mut item = body;
                            if let Some(map) = item.as_object_mut() {
                                map.remove("@odata.context");
                            }
                            one.body = Some(json!({
                                "@odata.context": context(call.user_url, "calendars"),
                                "value": [item],
                            }));
                        }
                        one
                    }
                    _ => method_not_allowed(),
                })
            }
            ["calendars", id, rest @ ..] => {
                if *id != calendar_id {
                    return Some(Answer::not_found("calendar"));
                }
                if rest.is_empty() {
                    return Some(match *call.method {
                        Method::GET => self.calendar(call, "calendars/$entity"),
                        _ => method_not_allowed(),
                    });
                }
                rest
            }
            ["calendar", rest @ ..] => rest,
            ["events", ..] | ["calendarView", ..] => &path,
            _ => return None,
        };
        let answer = match (call.method.clone(), rest) {
            (Method::GET, ["events"]) => calendar_view::list_events(self, call),
            (Method::POST, ["events"]) => self.create(call),
            (Method::GET, ["events", id]) => self.get(call, id),
            (Method::PATCH, ["events", id]) => self.patch(call, id),
            (Method::DELETE, ["events", id]) => self.delete(call, id),
            (Method::GET, ["events", id, "instances"]) => calendar_view::instances(self, call, id),
            (Method::GET, ["calendarView"]) => calendar_view::calendar_view(self, call),
            (Method::GET, ["calendarView", "delta"]) => calendar_view::delta(self, call),
            (
                _,
                ["events"]
                | ["events", _]
                | ["events", _, "instances"]
                | ["calendarView"]
                | ["calendarView", "delta"],
            ) => method_not_allowed(),
            _ => Answer::error(
                400,
                "BadRequest",
                &format!(
                    "Resource not found for the segment '{}'.",
                    rest.last().copied().unwrap_or_default()
                ),
            ),
        };
        Some(answer)
    }

    /// Forgets every delta and skip token handed out so far: their next use answers 410
    /// `syncStateNotFound`, as Exchange Online does when its token cache drops them.
    pub(crate) fn expire_delta_tokens(&mut self) {
        self.generation += 1;
        self.history.clear();
        self.history_floor = self.seq;
    }

    fn calendar(&self, call: &Call<'_>, what: &str) -> Answer {
        let id = calendar_id(call.user_url);
        let change_key = URL_SAFE.encode(&Sha256::digest(id.as_bytes())[..16]);
        let mut body = json!({
            "@odata.etag": super::odata::etag(&change_key),
            "id": id,
            "name": "Calendar",
            "color": "auto",
            "hexColor": "",
            "isDefaultCalendar": true,
            "changeKey": change_key,
            "canShare": true,
            "canViewPrivateItems": true,
            "canEdit": true,
            "isRemovable": false,
            "isTallyingResponses": true,
            "allowedOnlineMeetingProviders": ["teamsForBusiness"],
            "defaultOnlineMeetingProvider": "teamsForBusiness",
        });
        if !what.is_empty() {
            body = one_answer(body, call, what);
        }
        Answer::ok(project(&body, call.query.select.as_deref(), &[]))
    }

    fn bump(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Keeps where an event's instances were before the change `seq` made: its times, rule,
    /// exceptions and cancellations, not its text (which delta's `@removed` never needs and
    /// which would make every save of the mailbox carry it again).
    fn remember(&mut self, seq: u64, mut before: Event) {
        before.fields.props.clear();
        before.extended = ExtendedProps::default();
        if let Some(series) = &mut before.series {
            for exception in series.exceptions.values_mut() {
                exception.fields.props.clear();
                exception.extended = ExtendedProps::default();
            }
        }
        self.history.push_back(Past { seq, event: before });
        while self.history.len() > MAX_HISTORY {
            if let Some(dropped) = self.history.pop_front() {
                self.history_floor = self.history_floor.max(dropped.seq);
            }
        }
    }

    fn created_answer(&self, id: &str, call: &Call<'_>) -> Answer {
        let zone = match view_zone(call) {
            Ok(z) => z,
            Err(e) => return e,
        };
        match self.events.get(id) {
            Some(event) => {
                let shape = Shape {
                    select: None,
                    extended: None,
                    exceptions: None,
                };
                let body = shape.render(&event.as_instance(&zone), &zone);
                applied(
                    Answer::created(one_answer(body, call, "events/$entity")),
                    call,
                )
            }
            None => Answer::not_found("event"),
        }
    }

    fn create(&mut self, call: &Call<'_>) -> Answer {
        if let Err(e) = view_zone(call) {
            return e;
        }
        let write = match event_body::parse(call.body) {
            Ok(w) => w,
            Err(e) => return e,
        };
        if let Some(existing) = write
            .transaction_id
            .as_ref()
            .and_then(|t| self.transactions.get(t))
            .filter(|id| self.events.contains_key(*id))
            .cloned()
        {
            return self.created_answer(&existing, call);
        }
        if self.events.len() >= MAX_EVENTS {
            return Answer::error(
                507,
                "ErrorQuotaExceeded",
                "The calendar holds too many events.",
            );
        }
        let (Some(start), Some(end)) = (&write.start, &write.end) else {
            return Answer::bad_request("An event needs both start and end.");
        };
        let mut fields = Fields {
            start: start.local,
            start_zone: start.zone.name.clone(),
            end: end.local,
            end_zone: end.zone.name.clone(),
            all_day: false,
            props: Default::default(),
        };
        if let Err(e) = fields.apply(&write, false) {
            return e;
        }
        let mut extended = ExtendedProps::default();
        if let Some(props) = write.extended.clone() {
            if let Err(e) = extended.apply(props) {
                return e;
            }
        }
        let seq = self.seq + 1;
        let series = match &write.recurrence {
            Some(Some(rule)) => match start_series(&mut fields, rule) {
                Ok(()) => Some(Series {
                    rule: rule.clone(),
                    series_seq: seq,
                    exceptions: BTreeMap::new(),
                    cancelled: BTreeMap::new(),
                }),
                Err(e) => return e,
            },
            _ => None,
        };
        let seq = self.bump();
        let id = new_item_id();
        let event = Event {
            id: id.clone(),
            change_key: new_change_key(),
            seq,
            created: call.now,
            modified: call.now,
            ical_uid: new_ical_uid(),
            transaction_id: write.transaction_id.clone(),
            fields,
            extended,
            series,
        };
        self.events.insert(id.clone(), event);
        if let Some(t) = write.transaction_id {
            self.transactions.insert(t, id.clone());
        }
        self.created_answer(&id, call)
    }

    fn get(&self, call: &Call<'_>, id: &str) -> Answer {
        let zone = match view_zone(call) {
            Ok(z) => z,
            Err(e) => return e,
        };
        let shape = match Shape::parse(call, true) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let body = match self.find(id, &zone) {
            Some(instance) => shape.render(&instance, &zone),
            None => return Answer::not_found("event"),
        };
        applied(Answer::ok(one_answer(body, call, "events/$entity")), call)
    }

    /// A stored event, or an occurrence or exception by its id.
    pub(crate) fn find<'a>(&'a self, id: &str, zone: &Zone) -> Option<Instance<'a>> {
        if let Some(event) = self.events.get(id) {
            return Some(event.as_instance(zone));
        }
        let (master, date) = parse_occurrence_id(id)?;
        self.events.get(&master)?.instance_on(date, zone)
    }

    fn patch(&mut self, call: &Call<'_>, id: &str) -> Answer {
        let zone = match view_zone(call) {
            Ok(z) => z,
            Err(e) => return e,
        };
        let write = match event_body::parse(call.body) {
            Ok(w) => w,
            Err(e) => return e,
        };
        let (date, change_key, master_id) = match self.find(id, &zone) {
            Some(i) => (i.date, i.change_key().to_owned(), i.event.id.clone()),
            None => return Answer::not_found("event"),
        };
        if let Err(e) = check_if_match(call.if_match, &change_key) {
            return e;
        }
        let result = match date {
            None => self.patch_event(&master_id, &write, call),
            Some(date) => self.patch_occurrence(&master_id, date, &write, call),
        };
        match result {
            Ok(()) => {
                let shape = Shape {
                    select: None,
                    extended: None,
                    exceptions: None,
                };
                match self.find(id, &zone) {
                    Some(instance) => {
                        let body = shape.render(&instance, &zone);
                        applied(Answer::ok(one_answer(body, call, "events/$entity")), call)
                    }
                    None => Answer::not_found("event"),
                }
            }
            Err(e) => e,
        }
    }

    fn patch_event(&mut self, id: &str, write: &Write, call: &Call<'_>) -> Result<(), Answer> {
        let Some(before) = self.events.get(id).cloned() else {
            return Err(Answer::not_found("event"));
        };
        let mut after = before.clone();
        after.fields.apply(write, false)?;
        if let Some(props) = write.extended.clone() {
            after.extended.apply(props)?;
        }
        let seq = self.seq + 1;
        let timing_changed =
            write.start.is_some() || write.end.is_some() || write.all_day.is_some();
        match &write.recurrence {
            Some(Some(rule)) => {
                start_series(&mut after.fields, rule)?;
                // A new pattern regenerates the series: Outlook drops its exceptions.
                after.series = Some(Series {
                    rule: rule.clone(),
                    series_seq: seq,
                    exceptions: BTreeMap::new(),
                    cancelled: BTreeMap::new(),
                });
            }
            Some(None) => after.series = None,
            None => {
                if let Some(series) = &mut after.series {
                    let rule = series.rule.clone();
                    if timing_changed {
                        start_series(&mut after.fields, &rule)?;
                        series.exceptions.clear();
                    }
                    series.series_seq = seq;
                }
            }
        }
        let seq = self.bump();
        after.seq = seq;
        after.change_key = new_change_key();
        after.modified = call.now;
        self.events.insert(id.to_owned(), after);
        self.remember(seq, before);
        Ok(())
    }

    fn patch_occurrence(
        &mut self,
        master_id: &str,
        date: chrono::NaiveDate,
        write: &Write,
        call: &Call<'_>,
    ) -> Result<(), Answer> {
        if write.recurrence.is_some() {
            return Err(Answer::bad_request(
                "The recurrence of an occurrence can't be set; change the series master instead.",
            ));
        }
        let Some(before) = self.events.get(master_id).cloned() else {
            return Err(Answer::not_found("event"));
        };
        let own = before.fields.start_zone();
        let Some(instance) = before.instance_on(date, &own) else {
            return Err(Answer::not_found("event"));
        };
        let mut exception = match instance.exception {
            Some(e) => e.clone(),
            None => {
                let start_zone = Zone::parse(&before.fields.start_zone).unwrap_or_else(Zone::utc);
                let end_zone = Zone::parse(&before.fields.end_zone).unwrap_or_else(Zone::utc);
                let mut fields = before.fields.clone();
                // The series' text stays the series': the exception holds what it overrides.
                fields.props.clear();
                if !fields.all_day {
                    fields.start = start_zone.to_local(instance.start);
                    fields.end = end_zone.to_local(instance.end);
                } else {
                    let days = fields.end - fields.start;
                    fields.start = date.and_time(chrono::NaiveTime::MIN);
                    fields.end = fields.start + days;
                }
                Exception {
                    change_key: String::new(),
                    seq: 0,
                    modified: call.now,
                    fields,
                    extended: before.extended.clone(),
                }
            }
        };
        exception.fields.apply(write, true)?;
        if let Some(props) = write.extended.clone() {
            exception.extended.apply(props)?;
        }
        let seq = self.bump();
        exception.seq = seq;
        exception.change_key = new_change_key();
        exception.modified = call.now;
        let mut after = before.clone();
        if let Some(series) = &mut after.series {
            series.exceptions.insert(date, exception);
        }
        after.seq = seq;
        after.change_key = new_change_key();
        after.modified = call.now;
        self.events.insert(master_id.to_owned(), after);
        self.remember(seq, before);
        Ok(())
    }

    fn delete(&mut self, call: &Call<'_>, id: &str) -> Answer {
        let zone = Zone::utc();
        let (date, change_key, master_id) = match self.find(id, &zone) {
            Some(i) => (i.date, i.change_key().to_owned(), i.event.id.clone()),
            None => return Answer::not_found("event"),
        };
        if let Err(e) = check_if_match(call.if_match, &change_key) {
            return e;
        }
        let Some(before) = self.events.get(&master_id).cloned() else {
            return Answer::not_found("event");
        };
        let seq = self.bump();
        match date {
            None => {
                self.events.remove(&master_id);
                if let Some(t) = &before.transaction_id {
                    self.transactions.remove(t);
                }
            }
            Some(date) => {
                let mut after = before.clone();
                if let Some(series) = &mut after.series {
                    series.exceptions.remove(&date);
                    series.cancelled.insert(date, seq);
                }
                after.seq = seq;
                after.change_key = new_change_key();
                after.modified = call.now;
                self.events.insert(master_id, after);
            }
        }
        self.remember(seq, before);
        Answer::no_content()
    }
}

/// Moves a master's start to its series' first occurrence, keeping its time and length,
/// as Outlook does when the range starts before the pattern's first day.
fn start_series(fields: &mut Fields, rule: &Rule) -> Result<(), Answer> {
    let first = recurrence::first_date(rule).ok_or_else(|| {
        Answer::bad_request("The recurrence has no occurrence between its start and end dates.")
    })?;
    let shift = first - fields.start.date();
    fields.start += shift;
    fields.end += shift;
    Ok(())
}

/// The primary calendar's id: made of the mailbox's, so it is the same across restarts
/// without being stored.
pub(crate) fn calendar_id(user_url: &str) -> String {
    let mailbox = user_url.rsplit('/').next().unwrap_or_default();
    let digest = Sha256::digest(format!("calendar:{}", mailbox.to_ascii_lowercase()).as_bytes());
    let mut bytes = vec![0x00, 0x03, 0x24, 0x00];
    bytes.extend_from_slice(&digest);
    bytes.extend_from_slice(&digest[..11]);
    URL_SAFE.encode(bytes)
}

#[cfg(test)]
#[path = "calendar_tests.rs"]
mod tests;
