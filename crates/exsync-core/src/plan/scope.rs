//! Which records a configuration syncs at all: the event window and private events. Records
//! outside are left alone on both sides; a pair whose record leaves the scope is kept, so it
//! resumes syncing if the record comes back.

use chrono::{DateTime, Duration, Utc};

use crate::config::KindRules;
use crate::model::{Event, Fields, ItemKind, Record};

/// Why a record is out of scope, or `None` when it syncs.
pub fn out_of_scope(
    kind: ItemKind,
    rules: &KindRules,
    fields: &Fields,
    now: DateTime<Utc>,
) -> Option<String> {
    if kind != ItemKind::Event {
        return None;
    }
    if !rules.sync_private && fields.get("private").and_then(|v| v.as_bool()) == Some(true) {
        return Some("private events do not sync under this configuration".into());
    }
    let window = rules.window?;
    // A record the planner cannot read as an event is caught by validation, not here.
    let event = Event::from_fields(fields).ok()?;
    let from = now - Duration::days(i64::from(window.past_days));
    let to = now + Duration::days(i64::from(window.future_days));
    let first = event.start.approx_instant();
    let last = match &event.recurrence {
        None => event.end.approx_instant(),
        Some(recurrence) => match recurrence.last_date_bound() {
            None => DateTime::<Utc>::MAX_UTC,
            Some(date) => date.and_time(chrono::NaiveTime::MIN).and_utc() + Duration::days(1),
        },
    };
    if last < from || first > to {
        return Some(format!(
            "outside the event window ({} days back, {} days ahead)",
            window.past_days, window.future_days
        ));
    }
    None
}
