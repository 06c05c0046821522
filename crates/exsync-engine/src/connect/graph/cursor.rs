//! The cursors the Graph backend stores: which listing it was in, over which folder or window,
//! and Graph's link to go on from. They carry a prefix of their own, so a cursor another
//! backend issued (before the mailbox moved) is told apart and the folder listed again.

use std::collections::BTreeSet;

use chrono::{Datelike, Duration, NaiveDate};
use exsync_core::config::Window;
use serde::{Deserialize, Serialize};

/// What every Graph cursor starts with; the version lets a later format refuse this one.
const PREFIX: &str = "graph1:";

/// Graph refuses a calendarView longer than this many days.
pub(super) const MAX_VIEW_DAYS: i64 = 1825;

/// The dates an events delta covers, `from` included, `to` excluded, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ViewWindow {
    pub(super) from: NaiveDate,
    pub(super) to: NaiveDate,
}

impl ViewWindow {
    /// The delta window for a sync window on `today`: wider than the window, its ends on the
    /// first of a month, so it moves (and the delta is set up again) once a month rather than
    /// every day. The pass applies the exact window itself, as it does for EWS, which lists
    /// the whole calendar.
    pub(super) fn around(today: NaiveDate, window: &Window) -> ViewWindow {
        let first_of = |d: NaiveDate| d.with_day(1).unwrap_or(d);
        let mut from = first_of(today - Duration::days(i64::from(window.past_days)));
        let end = today + Duration::days(i64::from(window.future_days));
        // The first of the month after next: the end is never less than a month away.
        let mut to = first_of(end);
        for _ in 0..2 {
            to = first_of(to + Duration::days(32));
        }
        if (to - from).num_days() > MAX_VIEW_DAYS {
            // Graph's limit: the past gives way first, then the far future.
            from = to - Duration::days(MAX_VIEW_DAYS);
            if from > today {
                from = today;
                to = from + Duration::days(MAX_VIEW_DAYS);
            }
        }
        ViewWindow { from, to }
    }
}

/// Where a listing stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k")]
pub(super) enum GraphCursor {
    /// The contacts delta of the folder `f`; `l` is Graph's next or delta link.
    #[serde(rename = "c")]
    Contacts { f: String, l: String },
    /// Every event of the calendar, listed after a delta token was lost so that a synced event
    /// outside the window is not taken for deleted; `l` is the next page, empty for the first.
    /// The calendarView delta of `w` follows.
    #[serde(rename = "a")]
    AllEvents {
        w: ViewWindow,
        l: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        m: Vec<String>,
    },
    /// The calendarView delta of `w`; `l` is Graph's next or delta link, empty before the
    /// first request of a new round. `m` holds the series masters seen so far: a delta names
    /// a deleted series only by its occurrences' ids, which a process started since cannot
    /// tie to a master, so the masters must outlive the process that saw them.
    #[serde(rename = "e")]
    Events {
        w: ViewWindow,
        l: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        m: Vec<String>,
    },
}

/// At most this many series masters are kept in a cursor (about 150 bytes each), so a calendar
/// full of series cannot grow the stored cursor without bound; past it the rest are dropped
/// and their deletion waits for the next full listing (see [`kept_masters`]).
pub(super) const MASTERS_MAX: usize = 1000;

/// The masters a cursor keeps, at most [`MASTERS_MAX`].
pub(super) fn kept_masters(masters: BTreeSet<String>) -> Vec<String> {
    if masters.len() > MASTERS_MAX {
        tracing::warn!(
            series = masters.len(),
            kept = MASTERS_MAX,
            "More series in the calendar than the events cursor keeps: the deletion of a series \
             left out, while exsync is stopped, waits for the next full listing."
        );
    }
    masters.into_iter().take(MASTERS_MAX).collect()
}

impl GraphCursor {
    /// The cursor as stored.
    pub(super) fn encode(&self) -> String {
        // Serialising plain strings and dates cannot fail; an empty cursor would only restart.
        let json = serde_json::to_string(self).unwrap_or_default();
        format!("{PREFIX}{json}")
    }

    /// A stored cursor, `None` when this backend did not issue it (or it is damaged).
    pub(super) fn decode(stored: &str) -> Option<GraphCursor> {
        serde_json::from_str(stored.strip_prefix(PREFIX)?).ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn graph_cursors_round_trip_and_refuse_others() {
        let c = GraphCursor::Events {
            w: ViewWindow {
                from: day(2026, 1, 1),
                to: day(2027, 2, 1),
            },
            l: "https://graph/v1.0/users/a/calendarView/delta?$deltatoken=x|y".into(),
            m: vec!["AAMkMaster1".into()],
        };
        assert_eq!(GraphCursor::decode(&c.encode()), Some(c));
        // A cursor stored before the masters were kept still reads, with none.
        let old = r#"graph1:{"k":"e","w":{"from":"2026-01-01","to":"2027-02-01"},"l":"x"}"#;
        assert!(matches!(
            GraphCursor::decode(old),
            Some(GraphCursor::Events { m, .. }) if m.is_empty()
        ));
        assert_eq!(GraphCursor::decode("AAQkSyncState=="), None);
        assert_eq!(GraphCursor::decode("graph1:{\"k\":\"z\"}"), None);
    }

    #[test]
    fn graph_view_window_covers_the_sync_window_and_moves_monthly() {
        let window = Window {
            past_days: 30,
            future_days: 365,
        };
        let w = ViewWindow::around(day(2026, 12, 6), &window);
        assert_eq!(w.from, day(2026, 11, 1));
        assert_eq!(w.to, day(2028, 2, 1));
        // Days later in the same month: the same window, so the delta goes on.
        assert_eq!(ViewWindow::around(day(2026, 12, 20), &window), w);
        assert_ne!(ViewWindow::around(day(2027, 1, 10), &window), w);
        let longest = Window {
            past_days: 3650,
            future_days: 3650,
        };
        let w = ViewWindow::around(day(2026, 12, 6), &longest);
        assert!((w.to - w.from).num_days() <= MAX_VIEW_DAYS);
    }
}
