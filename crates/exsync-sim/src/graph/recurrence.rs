//! Graph's `patternedRecurrence` ⇄ the core recurrence model, and the occurrences of a series
//! that fall in a window. The expansion itself is core's (`occurrence_dates`); here only the
//! JSON shape, the wall-clock time of each occurrence and its zone are handled.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use exsync_core::{occurrence_dates, Day, Pattern, Recurrence, RecurrenceEnd, WeekIndex};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::time_zone::{in_range, Zone};

/// A series' rule as stored: the core model plus the range's zone name, echoed back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Rule {
    pub(crate) recurrence: Recurrence,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) zone: Option<String>,
    /// Graph's default first day of the week is Sunday, core's Monday; kept for patterns
    /// other than weekly (whose core form carries it) so it reads back as written.
    #[serde(default = "sunday")]
    pub(crate) first_day_of_week: Day,
}

fn sunday() -> Day {
    Day::Sunday
}

const DAY_NAMES: [(Day, &str); 7] = [
    (Day::Sunday, "sunday"),
    (Day::Monday, "monday"),
    (Day::Tuesday, "tuesday"),
    (Day::Wednesday, "wednesday"),
    (Day::Thursday, "thursday"),
    (Day::Friday, "friday"),
    (Day::Saturday, "saturday"),
];

const INDEX_NAMES: [(WeekIndex, &str); 5] = [
    (WeekIndex::First, "first"),
    (WeekIndex::Second, "second"),
    (WeekIndex::Third, "third"),
    (WeekIndex::Fourth, "fourth"),
    (WeekIndex::Last, "last"),
];

/// The date Graph writes for "no end date".
const NO_DATE: &str = "0001-01-01";

fn day_name(day: Day) -> &'static str {
    DAY_NAMES
        .iter()
        .find(|(d, _)| *d == day)
        .map_or("sunday", |(_, n)| n)
}

/// The plain weekdays a core day (possibly a group) stands for, in Graph's order.
fn plain_days(day: Day) -> Vec<Day> {
    match day {
        Day::Day => DAY_NAMES.iter().map(|(d, _)| *d).collect(),
        Day::Weekday => DAY_NAMES[1..6].iter().map(|(d, _)| *d).collect(),
        Day::WeekendDay => vec![Day::Sunday, Day::Saturday],
        plain => vec![plain],
    }
}

/// The single core day (or group) a relative pattern's `daysOfWeek` names.
fn day_group(days: &[Day]) -> Option<Day> {
    let mut sorted = days.to_vec();
    sorted.sort();
    sorted.dedup();
    let is = |group: Day| {
        let mut g = plain_days(group);
        g.sort();
        g == sorted
    };
    match sorted.as_slice() {
        [one] => Some(*one),
        _ if is(Day::Day) => Some(Day::Day),
        _ if is(Day::Weekday) => Some(Day::Weekday),
        _ if is(Day::WeekendDay) => Some(Day::WeekendDay),
        _ => None,
    }
}

fn enum_value<T: Copy>(table: &[(T, &str)], value: &Value, what: &str) -> Result<T, String> {
    let text = value
        .as_str()
        .ok_or_else(|| format!("{what} must be a string"))?;
    table
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(text))
        .map(|(v, _)| *v)
        .ok_or_else(|| format!("{what} '{text}' is not a valid value"))
}

fn int_field(obj: &Map<String, Value>, key: &str, what: &str) -> Result<Option<i64>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .filter(|n| i32::try_from(*n).is_ok())
            .map(Some)
            .ok_or_else(|| format!("{what}.{key} must be an Int32")),
    }
}

fn check_keys(obj: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), String> {
    match obj
        .keys()
        .find(|k| !k.starts_with("@odata.") && !allowed.contains(&k.as_str()))
    {
        Some(k) => Err(format!(
            "The property '{k}' does not exist on type 'microsoft.graph.{what}'."
        )),
        None => Ok(()),
    }
}

fn object<'v>(value: &'v Value, what: &str) -> Result<&'v Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{what} must be an object"))
}

fn date_field(obj: &Map<String, Value>, key: &str) -> Result<Option<NaiveDate>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s == NO_DATE => Ok(None),
        Some(Value::String(s)) => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .ok()
            .filter(|d| in_range(*d))
            .map(Some)
            .ok_or_else(|| format!("recurrenceRange.{key} '{s}' is not a date (yyyy-MM-dd)")),
        Some(_) => Err(format!("recurrenceRange.{key} must be a string")),
    }
}

/// Reads a `patternedRecurrence`; the message of the error says what is wrong, for a 400.
pub(crate) fn parse(value: &Value) -> Result<Rule, String> {
    let top = object(value, "recurrence")?;
    check_keys(top, &["pattern", "range"], "patternedRecurrence")?;
    let pattern = object(
        top.get("pattern").ok_or("recurrence.pattern is required")?,
        "recurrence.pattern",
    )?;
    let range = object(
        top.get("range").ok_or("recurrence.range is required")?,
        "recurrence.range",
    )?;
    check_keys(
        pattern,
        &[
            "type",
            "interval",
            "month",
            "dayOfMonth",
            "daysOfWeek",
            "firstDayOfWeek",
            "index",
        ],
        "recurrencePattern",
    )?;
    check_keys(
        range,
        &[
            "type",
            "startDate",
            "endDate",
            "numberOfOccurrences",
            "recurrenceTimeZone",
        ],
        "recurrenceRange",
    )?;

    let kind = pattern
        .get("type")
        .ok_or("recurrence.pattern.type is required")?
        .as_str()
        .ok_or("recurrencePattern.type must be a string")?
        .to_ascii_lowercase();
    let interval = int_field(pattern, "interval", "recurrencePattern")?.unwrap_or(1);
    let interval = u32::try_from(interval)
        .ok()
        .filter(|i| (1..=999).contains(i))
        .ok_or("recurrencePattern.interval must be between 1 and 999")?;
    let month = int_field(pattern, "month", "recurrencePattern")?.unwrap_or(0);
    let day_of_month = int_field(pattern, "dayOfMonth", "recurrencePattern")?.unwrap_or(0);
    let days: Vec<Day> = match pattern.get("daysOfWeek") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= 7 => items
            .iter()
            .map(|d| enum_value(&DAY_NAMES, d, "recurrencePattern.daysOfWeek"))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("recurrencePattern.daysOfWeek must be a list of days".into()),
    };
    let first_day_of_week = match pattern.get("firstDayOfWeek") {
        None | Some(Value::Null) => Day::Sunday,
        Some(v) => enum_value(&DAY_NAMES, v, "recurrencePattern.firstDayOfWeek")?,
    };
    let index = match pattern.get("index") {
        None | Some(Value::Null) => WeekIndex::First,
        Some(v) => enum_value(&INDEX_NAMES, v, "recurrencePattern.index")?,
    };
    let month = u32::try_from(month).unwrap_or(0);
    let day_of_month = u32::try_from(day_of_month).unwrap_or(0);
    let need_days = || -> Result<Vec<Day>, String> {
        if days.is_empty() {
            Err(format!("a {kind} recurrence needs daysOfWeek"))
        } else {
            Ok(days.clone())
        }
    };
    let need_month = || -> Result<u32, String> {
        (1..=12)
            .contains(&month)
            .then_some(month)
            .ok_or_else(|| format!("a {kind} recurrence needs a month between 1 and 12"))
    };
    let need_day_of_month = || -> Result<u32, String> {
        (1..=31)
            .contains(&day_of_month)
            .then_some(day_of_month)
            .ok_or_else(|| format!("a {kind} recurrence needs a dayOfMonth between 1 and 31"))
    };
    let group = || -> Result<Day, String> {
        day_group(&need_days()?).ok_or_else(|| {
            "daysOfWeek of a relative recurrence must be one day, every day, the weekdays or the weekend"
                .to_string()
        })
    };
    let yearly = || -> Result<(), String> {
        // The core model (EWS's) has no yearly interval.
        (interval == 1).then_some(()).ok_or_else(|| {
            "a yearly recurrence with an interval other than 1 is not supported".to_string()
        })
    };
    let pattern = match kind.as_str() {
        "daily" => Pattern::Daily { interval },
        "weekly" => Pattern::Weekly {
            interval,
            days: need_days()?,
            first_day_of_week,
        },
        "absolutemonthly" => Pattern::AbsoluteMonthly {
            interval,
            day_of_month: need_day_of_month()?,
        },
        "relativemonthly" => Pattern::RelativeMonthly {
            interval,
            day: group()?,
            index,
        },
        "absoluteyearly" => {
            yearly()?;
            Pattern::AbsoluteYearly {
                month: need_month()?,
                day_of_month: need_day_of_month()?,
            }
        }
        "relativeyearly" => {
            yearly()?;
            Pattern::RelativeYearly {
                month: need_month()?,
                day: group()?,
                index,
            }
        }
        other => {
            return Err(format!(
                "recurrencePattern.type '{other}' is not a valid value"
            ))
        }
    };

    let range_kind = range
        .get("type")
        .ok_or("recurrence.range.type is required")?
        .as_str()
        .ok_or("recurrenceRange.type must be a string")?
        .to_ascii_lowercase();
    let start_date =
        date_field(range, "startDate")?.ok_or("recurrence.range.startDate is required")?;
    let end = match range_kind.as_str() {
        "noend" => RecurrenceEnd::Never,
        "enddate" => RecurrenceEnd::Until(
            date_field(range, "endDate")?.ok_or("a range of type endDate needs an endDate")?,
        ),
        "numbered" => {
            let n = int_field(range, "numberOfOccurrences", "recurrenceRange")?.unwrap_or(0);
            RecurrenceEnd::Count(
                u32::try_from(n)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("a numbered range needs numberOfOccurrences above 0")?,
            )
        }
        other => {
            return Err(format!(
                "recurrenceRange.type '{other}' is not a valid value"
            ))
        }
    };
    let zone = match range.get("recurrenceTimeZone") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => {
            Zone::parse(s)
                .ok_or_else(|| format!("recurrenceTimeZone '{s}' is not a known time zone"))?;
            Some(s.trim().to_owned())
        }
        Some(_) => return Err("recurrenceRange.recurrenceTimeZone must be a string".into()),
    };
    let mut recurrence = Recurrence {
        pattern,
        start_date,
        end,
        deleted: Default::default(),
        modified: Vec::new(),
    };
    recurrence.normalize();
    if let Some(problem) = recurrence.problems().into_iter().next() {
        return Err(problem);
    }
    Ok(Rule {
        recurrence,
        zone,
        first_day_of_week,
    })
}

/// The `patternedRecurrence` Graph answers with: every property present, unused ones zero.
pub(crate) fn render(rule: &Rule, event_zone: &str) -> Value {
    let r = &rule.recurrence;
    let (kind, interval, month, day_of_month, days, first, index) = match &r.pattern {
        Pattern::Daily { interval } => (
            "daily",
            *interval,
            0,
            0,
            Vec::new(),
            rule.first_day_of_week,
            WeekIndex::First,
        ),
        Pattern::Weekly {
            interval,
            days,
            first_day_of_week,
        } => (
            "weekly",
            *interval,
            0,
            0,
            days.clone(),
            *first_day_of_week,
            WeekIndex::First,
        ),
        Pattern::AbsoluteMonthly {
            interval,
            day_of_month,
        } => (
            "absoluteMonthly",
            *interval,
            0,
            *day_of_month,
            Vec::new(),
            rule.first_day_of_week,
            WeekIndex::First,
        ),
        Pattern::RelativeMonthly {
            interval,
            day,
            index,
        } => (
            "relativeMonthly",
            *interval,
            0,
            0,
            plain_days(*day),
            rule.first_day_of_week,
            *index,
        ),
        Pattern::AbsoluteYearly {
            month,
            day_of_month,
        } => (
            "absoluteYearly",
            1,
            *month,
            *day_of_month,
            Vec::new(),
            rule.first_day_of_week,
            WeekIndex::First,
        ),
        Pattern::RelativeYearly { month, day, index } => (
            "relativeYearly",
            1,
            *month,
            0,
            plain_days(*day),
            rule.first_day_of_week,
            *index,
        ),
    };
    let mut ordered = days;
    ordered.sort_by_key(|d| DAY_NAMES.iter().position(|(x, _)| x == d));
    let (range_kind, end_date, count) = match r.end {
        RecurrenceEnd::Never => ("noEnd", NO_DATE.to_owned(), 0),
        RecurrenceEnd::Until(d) => ("endDate", d.format("%Y-%m-%d").to_string(), 0),
        RecurrenceEnd::Count(n) => ("numbered", NO_DATE.to_owned(), n),
    };
    json!({
        "pattern": {
            "type": kind,
            "interval": interval,
            "month": month,
            "dayOfMonth": day_of_month,
            "daysOfWeek": ordered.iter().map(|d| day_name(*d)).collect::<Vec<_>>(),
            "firstDayOfWeek": day_name(first),
            "index": INDEX_NAMES.iter().find(|(i, _)| *i == index).map_or("first", |(_, n)| n),
        },
        "range": {
            "type": range_kind,
            "startDate": r.start_date.format("%Y-%m-%d").to_string(),
            "endDate": end_date,
            "recurrenceTimeZone": rule.zone.as_deref().unwrap_or(event_zone),
            "numberOfOccurrences": count,
        },
    })
}

/// The date of the series' first occurrence, `None` when the rule yields none.
pub(crate) fn first_date(rule: &Rule) -> Option<NaiveDate> {
    let r = &rule.recurrence;
    // Any pattern repeats within a few years of its start, or never.
    let horizon = r.start_date.checked_add_signed(Duration::days(366 * 30))?;
    let mut probe = r.clone();
    probe.end = match r.end {
        RecurrenceEnd::Count(_) => RecurrenceEnd::Count(1),
        other => other,
    };
    occurrence_dates(&probe, horizon).first().copied()
}

/// One occurrence of a series, by its place in the series (its original start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    /// The date the rule gives it, in the series' zone: what its id is made of.
    pub(crate) date: NaiveDate,
    pub(crate) start: DateTime<Utc>,
    pub(crate) end: DateTime<Utc>,
}

/// Where a series' occurrences sit in time: the wall-clock start of each in the series zone,
/// and their length.
#[derive(Debug, Clone)]
pub(crate) struct Timing<'a> {
    pub(crate) rule: &'a Rule,
    pub(crate) zone: &'a Zone,
    pub(crate) time_of_day: NaiveTime,
    pub(crate) length: Duration,
}

impl Timing<'_> {
    pub(crate) fn slot(&self, date: NaiveDate) -> Slot {
        let start = self.zone.to_utc(date.and_time(self.time_of_day));
        Slot {
            date,
            start,
            end: start + self.length,
        }
    }

    /// Whether the rule puts an occurrence on this date.
    pub(crate) fn has_date(&self, date: NaiveDate) -> bool {
        occurrence_dates(&self.rule.recurrence, date).last() == Some(&date)
    }

    /// The occurrences overlapping `[from, to)`; a zero-length one counts when it starts in it.
    pub(crate) fn slots_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Slot> {
        // A day on either side covers any zone offset and the length's spill-over.
        let first_day = (from - self.length.max(Duration::zero()) - Duration::days(2)).date_naive();
        let last_day = (to + Duration::days(2)).date_naive();
        occurrence_dates(&self.rule.recurrence, last_day)
            .into_iter()
            .filter(|d| *d >= first_day)
            .map(|d| self.slot(d))
            .filter(|s| overlaps(s.start, s.end, from, to))
            .collect()
    }
}

/// calendarView's rule: an event is in the window when it starts before the window ends and
/// ends after it starts (or, lasting no time, starts within it).
pub(crate) fn overlaps(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> bool {
    if end <= start {
        start >= from && start < to
    } else {
        start < to && end > from
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn weekly_json() -> Value {
        json!({
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "Wednesday"]},
            "range": {"type": "endDate", "startDate": "2026-03-02", "endDate": "2026-04-30"}
        })
    }

    #[test]
    fn weekly_round_trips_in_graphs_full_shape() {
        let rule = parse(&weekly_json()).unwrap();
        assert_eq!(
            rule.recurrence.pattern,
            Pattern::Weekly {
                interval: 1,
                days: vec![Day::Monday, Day::Wednesday],
                first_day_of_week: Day::Sunday
            }
        );
        let out = render(&rule, "W. Europe Standard Time");
        assert_eq!(out["pattern"]["type"], "weekly");
        assert_eq!(out["pattern"]["daysOfWeek"], json!(["monday", "wednesday"]));
        assert_eq!(out["pattern"]["firstDayOfWeek"], "sunday");
        assert_eq!(out["pattern"]["month"], 0);
        assert_eq!(out["range"]["endDate"], "2026-04-30");
        assert_eq!(
            out["range"]["recurrenceTimeZone"],
            "W. Europe Standard Time"
        );
        assert_eq!(
            parse(&out).unwrap(),
            Rule {
                zone: Some("W. Europe Standard Time".into()),
                ..rule
            }
        );
    }

    #[test]
    fn every_pattern_type_maps() {
        let cases = [
            json!({"type": "daily", "interval": 2}),
            json!({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31}),
            json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["saturday", "sunday"], "index": "last"}),
            json!({"type": "absoluteYearly", "interval": 1, "month": 2, "dayOfMonth": 29}),
            json!({"type": "relativeYearly", "interval": 1, "month": 9, "daysOfWeek": ["monday"], "index": "first"}),
        ];
        for pattern in cases {
            let value = json!({"pattern": pattern, "range": {"type": "numbered", "startDate": "2026-01-01", "numberOfOccurrences": 3}});
            let rule = parse(&value).unwrap_or_else(|e| panic!("{pattern}: {e}"));
            let back = render(&rule, "UTC");
            assert_eq!(back["pattern"]["type"], pattern["type"]);
            assert_eq!(back["range"]["numberOfOccurrences"], 3);
            assert_eq!(back["range"]["endDate"], NO_DATE);
            assert_eq!(parse(&back).unwrap().recurrence, rule.recurrence);
        }
        let weekend = parse(&json!({"pattern": {"type": "relativeMonthly", "daysOfWeek": ["saturday", "sunday"], "index": "last"}, "range": {"type": "noEnd", "startDate": "2026-01-01"}})).unwrap();
        assert!(matches!(
            weekend.recurrence.pattern,
            Pattern::RelativeMonthly {
                day: Day::WeekendDay,
                index: WeekIndex::Last,
                ..
            }
        ));
    }

    #[test]
    fn bad_recurrences_say_what_is_wrong() {
        let bad = [
            (
                json!({"pattern": {"type": "hourly"}, "range": {"type": "noEnd", "startDate": "2026-01-01"}}),
                "hourly",
            ),
            (
                json!({"pattern": {"type": "weekly"}, "range": {"type": "noEnd", "startDate": "2026-01-01"}}),
                "daysOfWeek",
            ),
            (
                json!({"pattern": {"type": "daily", "interval": "2"}, "range": {"type": "noEnd", "startDate": "2026-01-01"}}),
                "Int32",
            ),
            (
                json!({"pattern": {"type": "daily"}, "range": {"type": "endDate", "startDate": "2026-01-01"}}),
                "endDate",
            ),
            (
                json!({"pattern": {"type": "daily"}, "range": {"type": "numbered", "startDate": "2026-01-01", "numberOfOccurrences": 0}}),
                "numberOfOccurrences",
            ),
            (
                json!({"pattern": {"type": "daily", "colour": 1}, "range": {"type": "noEnd", "startDate": "2026-01-01"}}),
                "colour",
            ),
            (
                json!({"pattern": {"type": "daily"}, "range": {"type": "noEnd", "startDate": "01/02/2026"}}),
                "startDate",
            ),
            (
                json!({"pattern": {"type": "daily"}, "range": {"type": "noEnd", "startDate": "+99999-01-01"}}),
                "startDate",
            ),
            (
                json!({"pattern": {"type": "daily"}, "range": {"type": "endDate", "startDate": "2026-02-01", "endDate": "2026-01-01"}}),
                "ends before",
            ),
            (
                json!({"pattern": {"type": "daily"}, "range": {"type": "noEnd", "startDate": "2026-02-01", "recurrenceTimeZone": "Nowhere"}}),
                "Nowhere",
            ),
        ];
        for (value, needle) in bad {
            let err = parse(&value).unwrap_err();
            assert!(err.contains(needle), "{value}: {err}");
        }
    }

    #[test]
    fn first_date_is_the_first_matching_day() {
        // 2026-03-01 is a Sunday; the first Monday/Wednesday after it is the 2nd.
        let mut value = weekly_json();
        value["range"]["startDate"] = json!("2026-03-01");
        let rule = parse(&value).unwrap();
        assert_eq!(first_date(&rule), NaiveDate::from_ymd_opt(2026, 3, 2));
        let never = parse(&json!({"pattern": {"type": "weekly", "daysOfWeek": ["monday"]}, "range": {"type": "endDate", "startDate": "2026-03-03", "endDate": "2026-03-05"}})).unwrap();
        assert_eq!(first_date(&never), None);
    }

    #[test]
    fn occurrences_keep_their_wall_clock_time_across_dst() {
        let rule = parse(&json!({
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["friday"]},
            "range": {"type": "noEnd", "startDate": "2026-03-20"}
        }))
        .unwrap();
        let zone = Zone::parse("W. Europe Standard Time").unwrap();
        let timing = Timing {
            rule: &rule,
            zone: &zone,
            time_of_day: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            length: Duration::minutes(30),
        };
        let from = "2026-03-16T00:00:00Z".parse().unwrap();
        let to = "2026-04-06T00:00:00Z".parse().unwrap();
        let slots = timing.slots_between(from, to);
        let starts: Vec<String> = slots
            .iter()
            .map(|s| super::super::time_zone::format_utc(s.start))
            .collect();
        // Berlin leaves CET on 2026-03-29: 09:00 is 08:00 UTC before, 07:00 UTC after.
        assert_eq!(
            starts,
            [
                "2026-03-20T08:00:00Z",
                "2026-03-27T08:00:00Z",
                "2026-04-03T07:00:00Z"
            ]
        );
        assert!(timing.has_date(NaiveDate::from_ymd_opt(2026, 3, 27).unwrap()));
        assert!(!timing.has_date(NaiveDate::from_ymd_opt(2026, 3, 26).unwrap()));
    }

    #[test]
    fn overlap_follows_calendar_view() {
        let t = |s: &str| -> DateTime<Utc> { s.parse().unwrap() };
        let (from, to) = (t("2026-03-02T00:00:00Z"), t("2026-03-03T00:00:00Z"));
        assert!(overlaps(
            t("2026-03-01T23:00:00Z"),
            t("2026-03-02T01:00:00Z"),
            from,
            to
        ));
        assert!(!overlaps(
            t("2026-03-01T23:00:00Z"),
            t("2026-03-02T00:00:00Z"),
            from,
            to
        ));
        assert!(!overlaps(
            t("2026-03-03T00:00:00Z"),
            t("2026-03-03T01:00:00Z"),
            from,
            to
        ));
        assert!(overlaps(
            t("2026-03-02T00:00:00Z"),
            t("2026-03-02T00:00:00Z"),
            from,
            to
        ));
    }
}
