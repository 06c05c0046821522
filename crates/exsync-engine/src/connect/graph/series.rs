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
    cancelled_occurrence_date, find_occurrence, instances_window, item_change, occurrence_date,
    occurrence_patch, read_event,
};
use exsync_graph::GraphRequest;
use http::Method;
use serde_json::Value;

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

/// [`item_change`] of an event whose cancelled occurrences are dated by `dates` where their
/// ids do not say: each such id is written in Graph's own `OID.<id>.<date>` form first.
pub(super) fn item_change_with(body: &Value, dates: &HashMap<String, NaiveDate>) -> Option<Change> {
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
    item_change(ItemKind::Event, &body)
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

/// After a series' master was created or its recurrence written: cancels its deleted
/// occurrences and writes its modified ones, each found through `/instances`. Answers the
/// master's ETag afterwards (each exception changes it), `None` when there was nothing to do.
/// A failure is logged and left to the next pass, which reads the series back.
pub(super) async fn write_exceptions(
    conn: &GraphConnection,
    user: &UserKey,
    write: &Write<'_>,
    master: &ExchangeId,
) -> Option<Option<String>> {
    let fields = match write {
        Write::Create { fields, .. } => *fields,
        Write::Update {
            fields, changed, ..
        } if changed.iter().any(|c| c == "recurrence") => *fields,
        _ => return None,
    };
    let e = Event::from_fields(fields).ok()?;
    let r = e.recurrence.as_ref()?;
    if r.deleted.is_empty() && r.modified.is_empty() {
        return None;
    }
    let master_path = GraphConnection::item_path(user, ItemKind::Event, master.as_str());
    let occurrence = |date: NaiveDate| {
        let master_path = master_path.clone();
        let e = &e;
        async move {
            let (from, to) = instances_window(date);
            let url = format!(
                "{master_path}/instances?startDateTime={}&endDateTime={}",
                enc(&from),
                enc(&to)
            );
            let list = conn.client.collect(&url, &[]).await.ok()?;
            find_occurrence(e, &list.items, date)
        }
    };
    for date in &r.deleted {
        let Some(id) = occurrence(*date).await else {
            // Already cancelled (an update writing the same series again).
            continue;
        };
        let url = format!("/users/{}/events/{}", seg(user.as_str()), seg(&id));
        match conn
            .client
            .send(GraphRequest::new(Method::DELETE, url))
            .await
        {
            Ok(_) => {
                locked(&conn.cancelled).insert(id, *date);
            }
            Err(err) => {
                tracing::warn!(user = %user, %date, error = %err, "cancelling an occurrence of a series failed; the next pass reads the series again");
            }
        }
    }
    for o in &r.modified {
        let date = occurrence_date(&e, &o.original_start);
        let Some(id) = occurrence(date).await else {
            tracing::warn!(user = %user, %date, "no occurrence of the series on that date to make an exception of");
            continue;
        };
        let url = format!("/users/{}/events/{}", seg(user.as_str()), seg(&id));
        let patch = GraphRequest::new(Method::PATCH, url).json(Value::Object(occurrence_patch(
            &e,
            o,
            conn.day_zone_of(user),
        )));
        if let Err(err) = conn.client.send(patch).await {
            tracing::warn!(user = %user, %date, error = %err, "writing an exception of a series failed; the next pass reads the series again");
        }
    }
    let url = format!("{master_path}?$select=id,changeKey");
    match conn.client.get(&url).await {
        Ok(body) => Some(exsync_graph::mapping::GraphRef::read(&body).map(|r| r.etag)),
        Err(err) => {
            tracing::warn!(user = %user, error = %err, "reading the series' version after its exceptions failed");
            Some(None)
        }
    }
}
