//! The calendar's collections: `events` (singles and masters), `calendarView` and a master's
//! `instances` (what a window holds, series expanded) and `calendarView/delta` with its rules
//! (window required and kept in the token, `@removed`, brief occurrences, 410 once expired).

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::calendar::{applied, context, view_zone, Calendar, Shape};
use super::call::{Answer, Call};
use super::date_filter::{self, TimeTest};
use super::event::{Instance, Kind, View};
use super::odata::filter::{self, Filter, Schema};
use super::odata::{decode_token, encode_token, page_size, LIST_DEFAULT_PAGE, LIST_MAX_PAGE};
use super::paging::{base, next_skip, with_query};
use super::time_zone::{parse_query_instant, Zone};

/// calendarView refuses a window longer than this many days.
const MAX_WINDOW_DAYS: i64 = 1825;
/// A delta page holds this many entries unless `odata.maxpagesize` says otherwise.
const DELTA_DEFAULT_PAGE: usize = 100;
const DELTA_MAX_PAGE: usize = 1000;

/// The string properties `$filter` may compare on an event.
const FILTER_STRINGS: &[&str] = &[
    "subject",
    "iCalUId",
    "transactionId",
    "type",
    "seriesMasterId",
    "showAs",
    "importance",
    "sensitivity",
    "bodyPreview",
    "originalStartTimeZone",
    "originalEndTimeZone",
];

/// `$filter`: its comparisons of start and end times, and the rest (strings, extended
/// properties) for the shared parser.
fn parse_filter(call: &Call<'_>) -> Result<(Vec<TimeTest>, Option<Filter>), Answer> {
    let Some(raw) = call.query.filter.as_deref() else {
        return Ok((Vec::new(), None));
    };
    let (times, rest) = date_filter::split(raw)?;
    let rest = rest
        .map(|rest| {
            filter::parse(
                &rest,
                Schema {
                    strings: FILTER_STRINGS,
                    email_addresses: false,
                },
            )
        })
        .transpose()?;
    Ok((times, rest))
}

/// The window of a calendarView-like request, both ends required.
fn window(call: &Call<'_>) -> Result<(DateTime<Utc>, DateTime<Utc>), Answer> {
    let param = |name: &str| {
        call.query
            .params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let (Some(start), Some(end)) = (param("startDateTime"), param("endDateTime")) else {
        return Err(Answer::error(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        ));
    };
    let parse = |text: &str, name: &str| {
        parse_query_instant(text).ok_or_else(|| {
            Answer::error(
                400,
                "ErrorInvalidParameter",
                &format!("The value '{text}' of parameter '{name}' is not a valid date and time."),
            )
        })
    };
    let (from, to) = (parse(start, "StartDateTime")?, parse(end, "EndDateTime")?);
    if to < from {
        return Err(Answer::error(
            400,
            "ErrorInvalidParameter",
            "The EndDateTime must be after the StartDateTime.",
        ));
    }
    if to - from > Duration::days(MAX_WINDOW_DAYS) {
        return Err(Answer::bad_request(
            "The range between the start and end dates is greater than the allowed range. Maximum number of days: 1825",
        ));
    }
    Ok((from, to))
}

/// The sort key `$orderby` names, read off an instance without rendering it.
#[derive(Clone, Copy)]
enum OrderKey {
    Start,
    End,
    Subject,
    Created,
    Modified,
}

/// `$orderby` (the keys clients use on events), one key, `asc` or `desc`.
fn parse_order(call: &Call<'_>) -> Result<Option<(OrderKey, bool)>, Answer> {
    let Some(raw) = call.query.orderby.as_deref() else {
        return Ok(None);
    };
    let mut parts = raw.split_whitespace();
    let name = parts.next().unwrap_or_default();
    let key = match name {
        "start/dateTime" => OrderKey::Start,
        "end/dateTime" => OrderKey::End,
        "subject" => OrderKey::Subject,
        "createdDateTime" => OrderKey::Created,
        "lastModifiedDateTime" => OrderKey::Modified,
        _ => {
            return Err(Answer::bad_request(&format!(
                "$orderby on '{name}' is not supported; use start/dateTime, end/dateTime, subject, createdDateTime or lastModifiedDateTime."
            )))
        }
    };
    let descending = match parts.next().map(str::to_ascii_lowercase).as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(Answer::bad_request(&format!(
                "Invalid $orderby direction '{other}'."
            )))
        }
    };
    if parts.next().is_some() {
        return Err(Answer::bad_request("$orderby takes one property."));
    }
    Ok(Some((key, descending)))
}

fn sort(instances: &mut [Instance<'_>], order: Option<(OrderKey, bool)>) {
    let Some((key, descending)) = order else {
        return;
    };
    match key {
        OrderKey::Start => instances.sort_by_key(|i| i.start),
        OrderKey::End => instances.sort_by_key(|i| i.end),
        OrderKey::Subject => instances.sort_by_cached_key(|i| i.subject().to_lowercase()),
        OrderKey::Created => instances.sort_by_key(|i| i.event.created),
        OrderKey::Modified => instances.sort_by_key(|i| i.modified()),
    }
    if descending {
        instances.reverse();
    }
}

/// Filters, sorts and answers one `$skip`/`$top` page of a collection with its nextLink;
/// only that page is rendered.
fn listing(call: &Call<'_>, zone: &Zone, mut instances: Vec<Instance<'_>>, what: &str) -> Answer {
    let shape = match Shape::parse(call, false) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let (times, filter) = match parse_filter(call) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let order = match parse_order(call) {
        Ok(o) => o,
        Err(e) => return e,
    };
    instances.retain(|i| times.iter().all(|t| t.passes(i.start, i.end)));
    if let Some(filter) = &filter {
        let view = View {
            zone,
            extended: None,
        };
        instances.retain(|i| filter.matches(&i.render(&view), i.extended()));
    }
    sort(&mut instances, order);
    let size = page_size(
        call.prefer,
        call.query.top,
        LIST_DEFAULT_PAGE,
        LIST_MAX_PAGE,
    );
    let skip = call.query.skip.unwrap_or(0);
    let total = instances.len();
    let value: Vec<Value> = instances
        .iter()
        .skip(skip)
        .take(size)
        .map(|i| shape.render(i, zone))
        .collect();
    let mut body = json!({
        "@odata.context": context(call.user_url, what),
        "value": value,
    });
    if let Some(map) = body.as_object_mut() {
        let count = call.query.params.get("$count").map(|c| c.trim());
        if count.is_some_and(|c| c.eq_ignore_ascii_case("true")) {
            map.insert("@odata.count".into(), Value::from(total));
        } else if count.is_some_and(|c| !c.eq_ignore_ascii_case("false")) {
            return Answer::bad_request("$count must be true or false.");
        }
        if skip.saturating_add(size) < total {
            map.insert(
                "@odata.nextLink".into(),
                Value::from(next_skip(call, size, skip + size)),
            );
        }
    }
    applied(Answer::ok(body), call)
}

/// `GET events`: single events and series masters.
pub(crate) fn list_events(cal: &Calendar, call: &Call<'_>) -> Answer {
    let zone = match view_zone(call) {
        Ok(z) => z,
        Err(e) => return e,
    };
    let mut instances: Vec<Instance<'_>> =
        cal.events.values().map(|e| e.as_instance(&zone)).collect();
    instances.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
    listing(call, &zone, instances, "events")
}

/// Every instance a window shows: singles, occurrences and exceptions, never masters.
fn in_window<'a>(
    cal: &'a Calendar,
    zone: &Zone,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<Instance<'a>> {
    let mut out: Vec<Instance<'a>> = cal
        .events
        .values()
        .flat_map(|e| e.instances_between(zone, from, to))
        .collect();
    out.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
    out
}

/// `GET calendarView?startDateTime&endDateTime`.
pub(crate) fn calendar_view(cal: &Calendar, call: &Call<'_>) -> Answer {
    let zone = match view_zone(call) {
        Ok(z) => z,
        Err(e) => return e,
    };
    let (from, to) = match window(call) {
        Ok(w) => w,
        Err(e) => return e,
    };
    listing(call, &zone, in_window(cal, &zone, from, to), "calendarView")
}

/// `GET events/{id}/instances?startDateTime&endDateTime`: a master's occurrences and
/// exceptions in the window (none for a single event).
pub(crate) fn instances(cal: &Calendar, call: &Call<'_>, id: &str) -> Answer {
    let zone = match view_zone(call) {
        Ok(z) => z,
        Err(e) => return e,
    };
    let (from, to) = match window(call) {
        Ok(w) => w,
        Err(e) => return e,
    };
    let Some(event) = cal.events.get(id) else {
        return Answer::not_found("event");
    };
    let found = match event.kind() {
        Kind::Master => event.instances_between(&zone, from, to),
        _ => Vec::new(),
    };
    listing(call, &zone, found, &format!("events('{id}')/instances"))
}

/// What a delta link or skip link carries.
#[derive(Debug, Serialize, Deserialize)]
struct DeltaState {
    /// Generation the token was issued in.
    g: u64,
    /// Window, as Unix seconds.
    from: i64,
    to: i64,
    /// Changes after this sequence are reported.
    since: u64,
    /// First round: the current state, no removals.
    first: bool,
    /// The sequence when the round began: what its deltaLink covers. Not the sequence at its
    /// last page, or a change made while the client paged (to an item already sent) would
    /// fall between two rounds and never be reported.
    #[serde(default)]
    upto: u64,
    /// Within a round: the last entry sent (sequence, id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<(u64, String)>,
}

enum Entry<'a> {
    Current(Instance<'a>),
    Removed(String),
}

/// The entries of a round, keyed by (sequence, id) so pages can resume after the last one
/// sent even while the calendar changes under them: a later change gets a later key.
fn delta_entries<'a>(
    cal: &'a Calendar,
    zone: &Zone,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    since: u64,
    first: bool,
) -> BTreeMap<(u64, String), Entry<'a>> {
    let current = in_window(cal, zone, from, to);
    let present: HashSet<String> = current.iter().map(|i| i.id.clone()).collect();
    let mut by_id: BTreeMap<String, (u64, Entry<'a>)> = BTreeMap::new();
    for instance in current {
        if instance.seq > since {
            by_id.insert(
                instance.id.clone(),
                (instance.seq, Entry::Current(instance)),
            );
        }
    }
    if !first {
        // Graph reports events changed outside the window as removed: the client can't
        // tell whether it holds them.
        for event in cal
            .events
            .values()
            .filter(|e| e.seq > since && e.kind() == Kind::Single)
        {
            if !present.contains(&event.id) {
                by_id.insert(
                    event.id.clone(),
                    (event.seq, Entry::Removed(event.id.clone())),
                );
            }
        }
        for past in cal.history.iter().filter(|p| p.seq > since) {
            for gone in past.event.instances_between(zone, from, to) {
                if present.contains(&gone.id) {
                    continue;
                }
                let newer = by_id.get(&gone.id).is_some_and(|(seq, _)| *seq >= past.seq);
                if !newer {
                    by_id.insert(gone.id.clone(), (past.seq, Entry::Removed(gone.id.clone())));
                }
            }
        }
    }
    by_id
        .into_iter()
        .map(|(id, (seq, entry))| ((seq, id), entry))
        .collect()
}

/// `GET calendarView/delta`.
pub(crate) fn delta(cal: &Calendar, call: &Call<'_>) -> Answer {
    let refused: Vec<&str> = [
        ("$select", call.query.select.is_some()),
        ("$expand", call.query.expand.is_some()),
        ("$filter", call.query.filter.is_some()),
        ("$orderby", call.query.orderby.is_some()),
        ("$search", call.query.params.contains_key("$search")),
    ]
    .iter()
    .filter(|(_, given)| *given)
    .map(|(name, _)| *name)
    .collect();
    if !refused.is_empty() {
        return Answer::error(
            400,
            "ErrorInvalidUrlQuery",
            &format!(
                "The following parameters are not supported with change tracking over the 'CalendarView' resource: '{}'.",
                refused.join(", ")
            ),
        );
    }
    let zone = match view_zone(call) {
        Ok(z) => z,
        Err(e) => return e,
    };
    let token = call
        .query
        .params
        .get("$deltatoken")
        .map(|t| (t, "$deltatoken"))
        .or_else(|| {
            call.query
                .params
                .get("$skiptoken")
                .map(|t| (t, "$skiptoken"))
        });
    let state = match token {
        Some((token, param)) => {
            let mut state: DeltaState = match decode_token(token, param) {
                Ok(s) => s,
                Err(e) => return e,
            };
            if state.g != cal.generation || (!state.first && state.since < cal.history_floor) {
                return Answer::sync_state_not_found();
            }
            if param == "$deltatoken" {
                state.upto = cal.seq;
                state.after = None;
            }
            state
        }
        None => {
            let (from, to) = match window(call) {
                Ok(w) => w,
                Err(e) => return e,
            };
            DeltaState {
                g: cal.generation,
                from: from.timestamp(),
                to: to.timestamp(),
                since: 0,
                first: true,
                upto: cal.seq,
                after: None,
            }
        }
    };
    let (Some(from), Some(to)) = (
        DateTime::<Utc>::from_timestamp(state.from, 0),
        DateTime::<Utc>::from_timestamp(state.to, 0),
    ) else {
        return Answer::bad_request("The delta token's window is not valid.");
    };
    let size = page_size(call.prefer, None, DELTA_DEFAULT_PAGE, DELTA_MAX_PAGE);
    let entries = delta_entries(cal, &zone, from, to, state.since, state.first);
    let view = View {
        zone: &zone,
        extended: None,
    };
    let remaining = entries
        .iter()
        .filter(|(key, _)| state.after.as_ref().is_none_or(|after| *key > after));
    let mut value = Vec::new();
    let mut last = None;
    let mut more = false;
    for (key, entry) in remaining {
        if value.len() == size {
            more = true;
            break;
        }
        value.push(match entry {
            Entry::Current(i) if i.kind == Kind::Occurrence => i.render_brief(&view),
            Entry::Current(i) => i.render(&view),
            Entry::Removed(id) => json!({
                "@odata.type": "#microsoft.graph.event",
                "id": id,
                "@removed": {"reason": "deleted"},
            }),
        });
        last = Some(key.clone());
    }
    let link_base = base(call);
    let (link_name, link) = if more {
        let next = DeltaState {
            after: last,
            ..state
        };
        (
            "@odata.nextLink",
            with_query(&link_base, &[("$skiptoken".into(), encode_token(&next))]),
        )
    } else {
        let next = DeltaState {
            g: cal.generation,
            from: state.from,
            to: state.to,
            since: state.upto,
            first: false,
            upto: state.upto,
            after: None,
        };
        (
            "@odata.deltaLink",
            with_query(&link_base, &[("$deltatoken".into(), encode_token(&next))]),
        )
    };
    let body = json!({
        "@odata.context": context(call.user_url, "calendarView"),
        link_name: link,
        "value": value,
    });
    let answer = applied(Answer::ok(body), call);
    match call.prefer.max_page_size {
        Some(_) => answer.header("Preference-Applied", format!("odata.maxpagesize={size}")),
        None => answer,
    }
}
