//! Graph's `dateTimeTimeZone`: zone names (Windows or IANA, as Graph takes both), local
//! date-times without offset, and their rendering with seven fractional digits.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use exsync_core::zones::windows_to_iana;

/// A zone as a client named it, and what it means.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Zone {
    /// The name as sent (`W. Europe Standard Time`, `Europe/Berlin`, `UTC`): Graph echoes it.
    pub(crate) name: String,
    pub(crate) tz: Tz,
}

impl Zone {
    pub(crate) fn utc() -> Zone {
        Zone {
            name: "UTC".into(),
            tz: Tz::UTC,
        }
    }

    /// Windows names first (what Outlook writes), then IANA; `None` for an unknown name.
    pub(crate) fn parse(name: &str) -> Option<Zone> {
        let trimmed = name.trim();
        if trimmed.is_empty() || trimmed.len() > 100 {
            return None;
        }
        let tz = match windows_to_iana(trimmed) {
            Some(iana) => iana.parse::<Tz>().ok()?,
            None => trimmed.parse::<Tz>().ok()?,
        };
        Some(Zone {
            name: trimmed.to_owned(),
            tz,
        })
    }

    /// The instant a wall-clock time stands for. A time skipped by a DST change moves an
    /// hour forward and an ambiguous one takes its first instance, as Exchange does.
    pub(crate) fn to_utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        let direct = self.tz.from_local_datetime(&local).earliest();
        let shifted = || {
            self.tz
                .from_local_datetime(&(local + Duration::hours(1)))
                .earliest()
        };
        match direct.or_else(shifted) {
            Some(t) => t.with_timezone(&Utc),
            // No zone skips two hours; fall back on reading the time as UTC.
            None => Utc.from_utc_datetime(&local),
        }
    }

    pub(crate) fn to_local(&self, instant: DateTime<Utc>) -> NaiveDateTime {
        instant.with_timezone(&self.tz).naive_local()
    }
}

/// `2026-03-02T09:00:00.0000000`, the form Graph answers with.
pub(crate) fn format_local(local: NaiveDateTime) -> String {
    format!("{}.{:07}", local.format("%Y-%m-%dT%H:%M:%S"), ticks(local))
}

/// The 100 ns ticks past the second (.NET's unit, hence Graph's seven digits).
fn ticks(local: NaiveDateTime) -> u32 {
    use chrono::Timelike;
    local.nanosecond() % 1_000_000_000 / 100
}

/// `{"dateTime": …, "timeZone": …}` for an instant seen from `zone`.
pub(crate) fn render(instant: DateTime<Utc>, zone: &Zone) -> serde_json::Value {
    serde_json::json!({
        "dateTime": format_local(zone.to_local(instant)),
        "timeZone": zone.name,
    })
}

/// `{"dateTime": …, "timeZone": …}` for a wall-clock time already in `zone` (all-day events).
pub(crate) fn render_local(local: NaiveDateTime, zone: &Zone) -> serde_json::Value {
    serde_json::json!({
        "dateTime": format_local(local),
        "timeZone": zone.name,
    })
}

/// A local date-time as clients send it: `2026-03-02T09:00:00`, with up to seven fractional
/// digits; an offset or `Z` is tolerated and ignored, as the zone travels separately.
pub(crate) fn parse_local(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    if text.len() > 40 {
        return None;
    }
    let bare = text
        .strip_suffix('Z')
        .or_else(|| {
            // `+01:00` / `-05:00` after the seconds.
            let cut = text.len().checked_sub(6)?;
            let tail = text.get(cut..)?;
            (cut > 10 && (tail.starts_with('+') || tail.starts_with('-')) && tail.contains(':'))
                .then(|| text.get(..cut))
                .flatten()
        })
        .unwrap_or(text);
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(bare, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(bare, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
    .filter(|t| in_range(t.date()))
}

/// Years 1 to 9999, what .NET's DateTime holds: beyond them Exchange has no dates, and
/// keeping inside them keeps every shift by days or by a series' length in range.
pub(crate) fn in_range(date: NaiveDate) -> bool {
    use chrono::Datelike;
    (1..=9999).contains(&date.year())
}

/// A query's `startDateTime` / `endDateTime`: ISO 8601 with its offset, or without one read
/// as UTC. Graph documents that `Prefer: outlook.timezone` does not change how they read.
pub(crate) fn parse_query_instant(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc)).filter(|t| in_range(t.date_naive()));
    }
    parse_local(text).map(|local| Zone::utc().to_utc(local))
}

/// `2026-03-02T08:00:00Z`, the form of `originalStart` and the audit timestamps.
pub(crate) fn format_utc(instant: DateTime<Utc>) -> String {
    instant.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `createdDateTime` / `lastModifiedDateTime`: seven fractional digits, as Graph writes them.
pub(crate) fn format_stamp(instant: DateTime<Utc>) -> String {
    format!("{}Z", format_local(instant.naive_utc()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        parse_local(s).unwrap()
    }

    #[test]
    fn windows_and_iana_names_resolve() {
        let w = Zone::parse("W. Europe Standard Time").unwrap();
        assert_eq!(w.tz, Tz::Europe__Berlin);
        assert_eq!(w.name, "W. Europe Standard Time");
        assert_eq!(Zone::parse("Europe/Paris").unwrap().tz, Tz::Europe__Paris);
        assert_eq!(
            Zone::parse("UTC")
                .unwrap()
                .to_utc(at("2026-07-01T12:00"))
                .to_string(),
            "2026-07-01 12:00:00 UTC"
        );
        assert!(Zone::parse("Mars Standard Time").is_none());
        assert!(Zone::parse("").is_none());
    }

    #[test]
    fn wall_clock_follows_daylight_saving() {
        let w = Zone::parse("W. Europe Standard Time").unwrap();
        assert_eq!(
            format_utc(w.to_utc(at("2026-03-27T09:00:00"))),
            "2026-03-27T08:00:00Z"
        );
        assert_eq!(
            format_utc(w.to_utc(at("2026-03-30T09:00:00"))),
            "2026-03-30T07:00:00Z"
        );
        // 02:30 does not exist on 2026-03-29 in Berlin.
        assert_eq!(
            format_utc(w.to_utc(at("2026-03-29T02:30:00"))),
            "2026-03-29T01:30:00Z"
        );
    }

    #[test]
    fn local_times_parse_in_the_forms_clients_send() {
        assert_eq!(at("2026-03-02T09:00:00.0000000"), at("2026-03-02T09:00:00"));
        assert_eq!(at("2026-03-02T09:00:00Z"), at("2026-03-02T09:00"));
        assert_eq!(at("2026-03-02T09:00:00+01:00"), at("2026-03-02T09:00:00"));
        assert!(parse_local("tomorrow").is_none());
        assert!(parse_local("+20000-01-01T00:00:00").is_none());
        assert!(parse_local("0000-01-01T00:00:00").is_none());
        assert_eq!(
            format_local(at("2026-03-02T09:00")),
            "2026-03-02T09:00:00.0000000"
        );
    }

    #[test]
    fn query_instants_take_their_offset_or_utc() {
        assert_eq!(
            format_utc(parse_query_instant("2026-03-02T09:00:00+01:00").unwrap()),
            "2026-03-02T08:00:00Z"
        );
        assert_eq!(
            format_utc(parse_query_instant("2026-03-02T09:00:00").unwrap()),
            "2026-03-02T09:00:00Z"
        );
        assert!(parse_query_instant("soon").is_none());
    }
}
