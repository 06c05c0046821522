//! Series on Graph: the dates of cancelled occurrences whose ids do not name them, and the
//! exceptions and cancellations a series we write needs after its master.
//!
//! Graph writes a cancelled occurrence as `OID.<master>.<date>`; a server that answers opaque
//! ids instead leaves us the series' instances: the pattern's dates that none of them (nor an
//! exception) stands on are the cancelled ones.

use std::collections::{BTreeSet, HashMap};

use chrono::{Duration, NaiveDate};
use exsync_core::plan::Change;
use exsync_core::{occurrence_dates, Event, EventTime, ExchangeId, ItemKind, Record, UserKey};
use exsync_graph::mapping::{
    cancelled_occurrence_date, find_occurrence, instances_window, noted_item_change,
    occurrence_date, occurrence_patch, read_event,
};
use exsync_graph::BatchRequest;
use http::Method;
use serde_json::{Map, Value};

use super::{enc, locked, seg, GraphConnection};
use crate::sync::sides::Write;

/// The ids of a master's cancelled occurrences that name no date we can read.
pub(super) fn unresolved_cancellations(
    body: &Value,
    known: &HashMap<String, NaiveDate>,
) -> Vec<String> {
    body.get("cancelledOccurrences")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .filter(|id| cancelled_occurrence_date(id).is_none() && !known.contains_key(*id))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// [`noted_item_change`] of an event whose cancelled occurrences are dated by `dates` where
/// their ids do not say: each such id is written in Graph's own `OID.<id>.<date>` form first.
pub(super) fn item_change_with(
    body: &Value,
    dates: &HashMap<String, NaiveDate>,
) -> Option<(Change, Vec<String>)> {
    let mut body = body.clone();
    if let Some(ids) = body
        .get_mut("cancelledOccurrences")
        .and_then(Value::as_array_mut)
    {
        for id in ids.iter_mut() {
            let date = id.as_str().and_then(|s| dates.get(s)).copied();
            if let (Some(date), Some(s)) = (date, id.as_str().map(str::to_owned)) {
                *id = Value::String(format!("OID.{s}.{date}"));
            }
        }
    }
    noted_item_change(ItemKind::Event, &body)
}

/// The original date of each instance of a series, from `/instances`.
fn instance_dates(e: &Event, instances: &[Value]) -> BTreeSet<NaiveDate> {
    instances
        .iter()
        .filter_map(|i| {
            let original = i
                .get("originalStart")
                .and_then(Value::as_str)
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())?
                .with_timezone(&chrono::Utc);
            Some(if e.is_all_day() {
                original.date_naive()
            } else {
                occurrence_date(e, &EventTime::At(original))
            })
        })
        .collect()
}

/// Dates the cancelled occurrences `unresolved` of the master `body`: the series' dates no
/// instance stands on. Fails when the count does not add up (a series whose instances Graph
/// did not all answer), so the series is reported unreadable rather than read wrong.
pub(super) async fn resolve(
    conn: &GraphConnection,
    user: &UserKey,
    master: &str,
    body: &Value,
    unresolved: &[String],
) -> Result<HashMap<String, NaiveDate>, String> {
    let mut plain = body.clone();
    if let Some(map) = plain.as_object_mut() {
        map.remove("cancelledOccurrences");
    }
    let e = read_event(&plain)?;
    let Some(r) = &e.recurrence else {
        return Err("cancelled occurrences on an event that is not a series".into());
    };
    let until = r
        .last_date_bound()
        .unwrap_or_else(|| conn.window_of(user).to);
    let pattern: BTreeSet<NaiveDate> = occurrence_dates(r, until).into_iter().collect();
    let from = r.start_date - Duration::days(1);
    let to = until + Duration::days(2);
    let url = format!(
        "{}/instances?startDateTime={}&endDateTime={}&$select=id,type,originalStart,start",
        GraphConnection::item_path(user, ItemKind::Event, master),
        enc(&format!("{from}T00:00:00Z")),
        enc(&format!("{to}T00:00:00Z")),
    );
    let instances = conn
        .client
        .collect(&url, &conn.page_headers())
        .await
        .map_err(|e| format!("the series' occurrences could not be read: {e}"))?;
    let present = instance_dates(&e, &instances.items);
    let missing: Vec<NaiveDate> = pattern.difference(&present).copied().collect();
    if missing.len() != unresolved.len() {
        return Err(format!(
            "the series has {} cancelled occurrences, but {} of its dates have no occurrence",
            unresolved.len(),
            missing.len()
        ));
    }
    let mut known = locked(&conn.cancelled);
    let mut out: HashMap<String, NaiveDate> = known.clone();
    for (id, date) in unresolved.iter().zip(missing) {
        known.insert(id.clone(), date);
        out.insert(id.clone(), date);
    }
    Ok(out)
}

/// One exception of a series to write: cancel the occurrence of `date`, or make it `patch`.
struct Exception {
    /// Which of the series written (an index into them).
    series: usize,
    date: NaiveDate,
    /// The changes that make the occurrence an exception; `None` cancels it.
    patch: Option<Map<String, Value>>,
    /// The occurrence's id, once the series' instances named it.
    occurrence: Option<String>,
}

/// After series masters were created or their recurrences written: cancels their deleted
/// occurrences and writes their modified ones, each found through `/instances`, for all the
/// series of one write call together. Answers, per series, the master's ETag afterwards (each
/// exception changes it), `None` when it had nothing to do. A failure is logged and left to the
/// next pass, which reads the series back.
///
/// Requests travel in `$batch`es of up to 20, so the cost grows with the exceptions of the
/// call, not with the series: one round of `/instances` reads, then the writes in rounds
/// holding at most one exception per series (Graph runs a parallel batch's items in any order,
/// and two writes to one series at once may conflict on it), then the masters' ETags.
pub(super) async fn write_exceptions(
    conn: &GraphConnection,
    user: &UserKey,
    written: &[(&Write<'_>, &ExchangeId)],
) -> Vec<Option<Option<String>>> {
    let mut out: Vec<Option<Option<String>>> = vec![None; written.len()];
    let mut exceptions: Vec<Exception> = Vec::new();
    let mut events: Vec<Option<Event>> = Vec::with_capacity(written.len());
    let day = conn.day_zone_of(user);
    for (series, (write, _)) in written.iter().enumerate() {
        let e = series_written(write);
        if let Some((e, r)) = e.as_ref().and_then(|e| Some((e, e.recurrence.as_ref()?))) {
            let cancel = r.deleted.iter().map(|date| (*date, None));
            let modify = r.modified.iter().map(|o| {
                let patch = occurrence_patch(e, o, day);
                (occurrence_date(e, &o.original_start), Some(patch))
            });
            for (date, patch) in cancel.chain(modify) {
                exceptions.push(Exception {
                    series,
                    date,
                    patch,
                    occurrence: None,
                });
            }
        }
        events.push(e);
    }
    if exceptions.is_empty() {
        return out;
    }
    let master_path = |series: usize| {
        GraphConnection::item_path(user, ItemKind::Event, written[series].1.as_str())
    };

    // Which occurrence each exception stands on.
    let lookups = exceptions
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let (from, to) = instances_window(x.date);
            BatchRequest::new(
                i.to_string(),
                Method::GET,
                format!(
                    "{}/instances?startDateTime={}&endDateTime={}",
                    master_path(x.series),
                    enc(&from),
                    enc(&to)
                ),
            )
        })
        .collect();
    match conn.client.batch(lookups).await {
        Ok(replies) => {
            for (x, reply) in exceptions.iter_mut().zip(replies) {
                let items = reply.body.get("value").and_then(Value::as_array);
                let e = events.get(x.series).and_then(Option::as_ref);
                if let (true, Some(items), Some(e)) = (reply.is_success(), items, e) {
                    x.occurrence = find_occurrence(e, items, x.date);
                }
            }
        }
        Err(err) => {
            tracing::warn!(user = %user, error = %err, "reading the occurrences of new series failed; the next pass reads the series again");
        }
    }
    for x in &exceptions {
        if x.occurrence.is_none() && x.patch.is_some() {
            tracing::warn!(user = %user, date = %x.date, "no occurrence of the series on that date to make an exception of");
        }
        // A cancellation without an occurrence: already cancelled (the same series written
        // again).
        out[x.series] = Some(None);
    }

    // The writes, at most one per series in each round.
    let mut pending: Vec<&Exception> = exceptions
        .iter()
        .filter(|x| x.occurrence.is_some())
        .collect();
    while !pending.is_empty() {
        let mut seen = BTreeSet::new();
        let (round, later): (Vec<&Exception>, Vec<&Exception>) =
            pending.into_iter().partition(|x| seen.insert(x.series));
        pending = later;
        let requests = round
            .iter()
            .enumerate()
            .filter_map(|(i, x)| {
                let id = x.occurrence.as_deref()?;
                let url = format!("/users/{}/events/{}", seg(user.as_str()), seg(id));
                Some(match &x.patch {
                    None => BatchRequest::new(i.to_string(), Method::DELETE, url),
                    Some(patch) => BatchRequest::new(i.to_string(), Method::PATCH, url)
                        .json(Value::Object(patch.clone())),
                })
            })
            .collect();
        let replies = match conn.client.batch(requests).await {
            Ok(replies) => replies,
            Err(err) => {
                tracing::warn!(user = %user, error = %err, "writing the exceptions of series failed; the next pass reads the series again");
                break;
            }
        };
        for (x, reply) in round.iter().zip(replies) {
            match (reply.is_success(), &x.patch, &x.occurrence) {
                (true, None, Some(id)) => {
                    locked(&conn.cancelled).insert(id.clone(), x.date);
                }
                (true, ..) => {}
                (false, None, _) => {
                    tracing::warn!(user = %user, date = %x.date, status = reply.status, "cancelling an occurrence of a series failed; the next pass reads the series again");
                }
                (false, Some(_), _) => {
                    tracing::warn!(user = %user, date = %x.date, status = reply.status, "writing an exception of a series failed; the next pass reads the series again");
                }
            }
        }
    }

    // Each series' version after its exceptions.
    let touched: Vec<usize> = (0..written.len()).filter(|i| out[*i].is_some()).collect();
    let reads = touched
        .iter()
        .map(|series| {
            BatchRequest::new(
                series.to_string(),
                Method::GET,
                format!("{}?$select=id,changeKey", master_path(*series)),
            )
        })
        .collect();
    match conn.client.batch(reads).await {
        Ok(replies) => {
            for (series, reply) in touched.iter().zip(replies) {
                let etag = reply
                    .is_success()
                    .then(|| exsync_graph::mapping::GraphRef::read(&reply.body).map(|r| r.etag))
                    .flatten();
                out[*series] = Some(etag);
            }
        }
        Err(err) => {
            tracing::warn!(user = %user, error = %err, "reading the series' versions after their exceptions failed");
        }
    }
    out
}

/// The series a write puts in the mailbox with its recurrence, when it has exceptions to
/// write after its master: a create, or an update that writes the recurrence.
fn series_written(write: &Write<'_>) -> Option<Event> {
    let fields = match write {
        Write::Create { fields, .. } => *fields,
        Write::Update {
            fields, changed, ..
        } if changed.iter().any(|c| c == "recurrence") => *fields,
        _ => return None,
    };
    let e = Event::from_fields(fields).ok()?;
    let r = e.recurrence.as_ref()?;
    (!r.deleted.is_empty() || !r.modified.is_empty()).then_some(e)
}
