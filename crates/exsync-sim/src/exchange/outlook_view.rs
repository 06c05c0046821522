//! The mailbox's time zone (its owner's regional setting, UTC unless set) and the calendar as
//! the owner's Outlook shows it in that zone. Exchange keeps an all-day item as two instants
//! and the zone it was made in; a client in another zone shows those instants, so an item made
//! at UTC midnight shows in Berlin from 01:00 to 01:00, across two days.

use chrono::{NaiveDateTime, NaiveTime};
use chrono_tz::Tz;
use serde_json::{json, Value};

use super::ops::calendar::item_zone;
use super::store::{parse_time, Mailbox};

/// The mailbox's zone; an unreadable setting counts as UTC, as a fresh mailbox has.
pub(crate) fn mailbox_zone(mb: &Mailbox) -> Tz {
    mb.time_zone.parse().unwrap_or(Tz::UTC)
}

/// Checks a zone name before it becomes a mailbox's setting: an IANA name.
pub(crate) fn checked_zone(name: &str) -> Result<String, String> {
    name.trim()
        .parse::<Tz>()
        .map(|tz| tz.name().to_owned())
        .map_err(|_| format!("{name:?} is not an IANA time zone"))
}

fn local(t: &str, zone: Tz) -> Option<NaiveDateTime> {
    parse_time(t).map(|t| t.with_timezone(&zone).naive_local())
}

/// Each calendar item as the owner sees it: its times in the mailbox's zone, and for an
/// all-day item whether it covers whole days there (starts and ends at local midnight).
pub(crate) fn calendar_view(mb: &Mailbox) -> Value {
    let zone = mailbox_zone(mb);
    let Some(calendar) = mb.distinguished("calendar").map(|f| f.id) else {
        return json!({"time_zone": zone.name(), "items": []});
    };
    let fmt = |t: Option<NaiveDateTime>| t.map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string());
    let items: Vec<Value> = mb
        .items
        .values()
        .filter(|i| i.folder == calendar && i.kind == "CalendarItem")
        .map(|item| {
            let start = item.prop_text("Start").and_then(|t| local(t, zone));
            let end = item.prop_text("End").and_then(|t| local(t, zone));
            let all_day = item
                .prop_text("IsAllDayEvent")
                .is_some_and(|v| matches!(v, "true" | "1"));
            let midnight = |t: Option<NaiveDateTime>| t.is_some_and(|t| t.time() == NaiveTime::MIN);
            json!({
                "subject": item.prop_text("Subject").unwrap_or_default(),
                "is_all_day": all_day,
                "start": fmt(start),
                "end": fmt(end),
                "item_time_zone": item_zone(item).name(),
                "whole_days": all_day && midnight(start) && midnight(end),
            })
        })
        .collect();
    json!({"time_zone": zone.name(), "items": items})
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::exchange::store::State;
    use crate::exchange::xml::Element;

    fn prop(name: &str, text: &str) -> Element {
        let mut el = Element::new(name);
        el.text = text.to_owned();
        el
    }

    fn zone_prop(name: &str, id: &str) -> Element {
        let mut el = Element::new(name);
        el.attrs.push(("Id".to_owned(), id.to_owned()));
        el
    }

    fn mailbox_with(props: Vec<Element>, time_zone: &str) -> Mailbox {
        let mut st = State::new("contoso.test", "svc", "pw", "token");
        assert!(st.add_mailbox("ada@contoso.test", "Ada", true));
        let mut mb = st.mailbox("ada@contoso.test").unwrap().clone();
        mb.time_zone = time_zone.to_owned();
        let calendar = mb.distinguished("calendar").unwrap().id;
        let item = crate::exchange::store::Item {
            id: 9_999,
            folder: calendar,
            kind: "CalendarItem".into(),
            props,
            ..Default::default()
        };
        mb.items.insert(item.id, item);
        mb
    }

    fn all_day(start: &str, end: &str, zone: &str) -> Vec<Element> {
        vec![
            prop("Subject", "Holiday"),
            prop("Start", start),
            prop("End", end),
            prop("IsAllDayEvent", "true"),
            zone_prop("StartTimeZone", zone),
        ]
    }

    #[test]
    fn an_all_day_item_at_utc_midnight_spills_over_two_days_in_berlin() {
        let mb = mailbox_with(
            all_day("2026-06-06T00:00:00Z", "2026-06-07T00:00:00Z", "UTC"),
            "Europe/Berlin",
        );
        let view = calendar_view(&mb);
        assert_eq!(view["time_zone"], "Europe/Berlin");
        let item = &view["items"][0];
        assert_eq!(
            (&item["start"], &item["end"]),
            (&json!("2026-06-06T02:00:00"), &json!("2026-06-07T02:00:00"))
        );
        assert_eq!(item["whole_days"], false);
    }

    #[test]
    fn an_all_day_item_at_berlin_midnight_is_whole_days_in_berlin() {
        let mb = mailbox_with(
            all_day(
                "2026-06-05T22:00:00Z",
                "2026-06-06T22:00:00Z",
                "W. Europe Standard Time",
            ),
            "Europe/Berlin",
        );
        let item = &calendar_view(&mb)["items"][0];
        assert_eq!(item["start"], "2026-06-06T00:00:00");
        assert_eq!(item["item_time_zone"], "Europe/Berlin");
        assert_eq!(item["whole_days"], true);
    }

    #[test]
    fn a_fresh_mailbox_is_in_utc_and_zones_are_checked() {
        let mb = mailbox_with(Vec::new(), "");
        assert_eq!(calendar_view(&mb)["time_zone"], "UTC");
        assert_eq!(checked_zone(" Europe/Berlin ").unwrap(), "Europe/Berlin");
        assert!(checked_zone("Mars/Olympus_Mons").is_err());
    }
}
