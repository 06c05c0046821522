//! `Recurrence` ↔ Graph `patternedRecurrence` (pattern and range). Cancelled and modified
//! occurrences are read by the event mapping, which knows the zone to read their times in.
//!
//! Graph's `dayOfWeek` has only the seven weekdays; the day groups of EWS's relative patterns
//! (any day, weekday, weekend day) are the matching sets of weekdays, as Outlook writes them.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use exsync_core::{Day, Pattern, Recurrence, RecurrenceEnd, WeekIndex};

use super::{object, parse_date, text};

const DAYS: [(Day, &str); 7] = [
    (Day::Sunday, "sunday"),
    (Day::Monday, "monday"),
    (Day::Tuesday, "tuesday"),
    (Day::Wednesday, "wednesday"),
    (Day::Thursday, "thursday"),
    (Day::Friday, "friday"),
    (Day::Saturday, "saturday"),
];

const INDEXES: [(WeekIndex, &str); 5] = [
    (WeekIndex::First, "first"),
    (WeekIndex::Second, "second"),
    (WeekIndex::Third, "third"),
    (WeekIndex::Fourth, "fourth"),
    (WeekIndex::Last, "last"),
];

/// The day groups relative patterns may use, and the weekdays Graph lists for each.
const GROUPS: [(Day, &[Day]); 3] = [
    (
        Day::Day,
        &[
            Day::Sunday,
            Day::Monday,
            Day::Tuesday,
            Day::Wednesday,
            Day::Thursday,
            Day::Friday,
            Day::Saturday,
        ],
    ),
    (
        Day::Weekday,
        &[
            Day::Monday,
            Day::Tuesday,
            Day::Wednesday,
            Day::Thursday,
            Day::Friday,
        ],
    ),
    (Day::WeekendDay, &[Day::Sunday, Day::Saturday]),
];

fn day_name(day: Day) -> &'static str {
    DAYS.iter()
        .find(|(d, _)| *d == day)
        .map_or("monday", |(_, n)| n)
}

fn day_of(name: &str) -> Result<Day, String> {
    DAYS.iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name.trim()))
        .map(|(d, _)| *d)
        .ok_or_else(|| format!("{name:?} is not a day of the week"))
}

/// The weekday names a day (or day group) stands for.
fn day_names(day: Day) -> Vec<Value> {
    match GROUPS.iter().find(|(g, _)| *g == day) {
        Some((_, days)) => days.iter().map(|d| Value::from(day_name(*d))).collect(),
        None => vec![Value::from(day_name(day))],
    }
}

fn index_name(index: WeekIndex) -> &'static str {
    INDEXES
        .iter()
        .find(|(i, _)| *i == index)
        .map_or("first", |(_, n)| n)
}

/// Writes a `patternedRecurrence`.
pub(super) fn write_recurrence(r: &Recurrence) -> Value {
    let mut pattern = Map::new();
    let mut put = |name: &str, value: Value| {
        pattern.insert(name.to_owned(), value);
    };
    match &r.pattern {
        Pattern::Daily { interval } => {
            put("type", "daily".into());
            put("interval", (*interval).into());
        }
        Pattern::Weekly {
            interval,
            days,
            first_day_of_week,
        } => {
            put("type", "weekly".into());
            put("interval", (*interval).into());
            put(
                "daysOfWeek",
                Value::Array(days.iter().map(|d| Value::from(day_name(*d))).collect()),
            );
            put("firstDayOfWeek", day_name(*first_day_of_week).into());
        }
        Pattern::AbsoluteMonthly {
            interval,
            day_of_month,
        } => {
            put("type", "absoluteMonthly".into());
            put("interval", (*interval).into());
            put("dayOfMonth", (*day_of_month).into());
        }
        Pattern::RelativeMonthly {
            interval,
            day,
            index,
        } => {
            put("type", "relativeMonthly".into());
            put("interval", (*interval).into());
            put("daysOfWeek", Value::Array(day_names(*day)));
            put("index", index_name(*index).into());
        }
        Pattern::AbsoluteYearly {
            month,
            day_of_month,
        } => {
            put("type", "absoluteYearly".into());
            put("interval", 1.into());
            put("month", (*month).into());
            put("dayOfMonth", (*day_of_month).into());
        }
        Pattern::RelativeYearly { month, day, index } => {
            put("type", "relativeYearly".into());
            put("interval", 1.into());
            put("month", (*month).into());
            put("daysOfWeek", Value::Array(day_names(*day)));
            put("index", index_name(*index).into());
        }
    }
    let mut range = Map::new();
    range.insert(
        "startDate".into(),
        r.start_date.format("%Y-%m-%d").to_string().into(),
    );
    match r.end {
        RecurrenceEnd::Never => {
            range.insert("type".into(), "noEnd".into());
        }
        RecurrenceEnd::Until(until) => {
            range.insert("type".into(), "endDate".into());
            range.insert(
                "endDate".into(),
                until.format("%Y-%m-%d").to_string().into(),
            );
        }
        RecurrenceEnd::Count(count) => {
            range.insert("type".into(), "numbered".into());
            range.insert("numberOfOccurrences".into(), count.into());
        }
    }
    let mut out = Map::new();
    out.insert("pattern".into(), Value::Object(pattern));
    out.insert("range".into(), Value::Object(range));
    Value::Object(out)
}

/// An Edm.Int32 that must be a small positive number here.
fn number(v: &Value, name: &str) -> Result<u32, String> {
    match v.get(name) {
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("{name} {n} is not a count")),
        None | Some(Value::Null) => Err(format!("recurrence without {name}")),
        Some(other) => Err(format!("{name} {other} is not a number")),
    }
}

fn days_of(pattern: &Value) -> Result<Vec<Day>, String> {
    let mut days = Vec::new();
    for day in super::array(pattern, "daysOfWeek")? {
        let name = day
            .as_str()
            .ok_or("daysOfWeek holds a value that is not a day")?;
        days.push(day_of(name)?);
    }
    days.sort();
    days.dedup();
    Ok(days)
}

/// The day (or group) a relative pattern's `daysOfWeek` names.
fn single_day(pattern: &Value) -> Result<Day, String> {
    let days = days_of(pattern)?;
    if let [one] = days.as_slice() {
        return Ok(*one);
    }
    GROUPS
        .iter()
        .find(|(_, group)| {
            let mut group = group.to_vec();
            group.sort();
            group == days
        })
        .map(|(g, _)| *g)
        .ok_or_else(|| format!("a relative pattern needs one day or a day group, got {days:?}"))
}

fn index(pattern: &Value) -> Result<WeekIndex, String> {
    let name = text(pattern, "index")?.trim();
    // Graph omits the index (or leaves `first`) when it is the default.
    if name.is_empty() {
        return Ok(WeekIndex::First);
    }
    INDEXES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map(|(i, _)| *i)
        .ok_or_else(|| format!("{name:?} is not a week index"))
}

/// Reads a `patternedRecurrence`.
pub(super) fn read_recurrence(v: &Value) -> Result<Recurrence, String> {
    let pattern_v = object(v, "pattern")?.ok_or("recurrence without a pattern")?;
    let range_v = object(v, "range")?.ok_or("recurrence without a range")?;
    let kind = text(pattern_v, "type")?;
    let pattern = match kind {
        "daily" => Pattern::Daily {
            interval: number(pattern_v, "interval")?,
        },
        "weekly" => {
            let first = text(pattern_v, "firstDayOfWeek")?;
            Pattern::Weekly {
                interval: number(pattern_v, "interval")?,
                days: days_of(pattern_v)?,
                // EWS reads a missing first day as Sunday, Exchange's default; so do we.
                first_day_of_week: if first.trim().is_empty() {
                    Day::Sunday
                } else {
                    day_of(first)?
                },
            }
        }
        "absoluteMonthly" => Pattern::AbsoluteMonthly {
            interval: number(pattern_v, "interval")?,
            day_of_month: number(pattern_v, "dayOfMonth")?,
        },
        "relativeMonthly" => Pattern::RelativeMonthly {
            interval: number(pattern_v, "interval")?,
            day: single_day(pattern_v)?,
            index: index(pattern_v)?,
        },
        "absoluteYearly" => Pattern::AbsoluteYearly {
            month: number(pattern_v, "month")?,
            day_of_month: number(pattern_v, "dayOfMonth")?,
        },
        "relativeYearly" => Pattern::RelativeYearly {
            month: number(pattern_v, "month")?,
            day: single_day(pattern_v)?,
            index: index(pattern_v)?,
        },
        other => {
            return Err(format!(
                "recurrence pattern {other:?} is not one exsync can sync"
            ))
        }
    };
    let start_text = text(range_v, "startDate")?;
    let start_date = parse_date(start_text)
        .ok_or_else(|| format!("recurrence startDate {start_text:?} is not a date"))?;
    let end = match text(range_v, "type")? {
        "noEnd" => RecurrenceEnd::Never,
        "endDate" => {
            let end_text = text(range_v, "endDate")?;
            RecurrenceEnd::Until(
                parse_date(end_text)
                    .ok_or_else(|| format!("recurrence endDate {end_text:?} is not a date"))?,
            )
        }
        "numbered" => RecurrenceEnd::Count(number(range_v, "numberOfOccurrences")?),
        other => {
            return Err(format!(
                "recurrence range {other:?} is not one exsync can sync"
            ))
        }
    };
    let mut recurrence = Recurrence {
        pattern,
        start_date,
        end,
        deleted: BTreeSet::new(),
        modified: Vec::new(),
    };
    recurrence.normalize();
    match recurrence.problems().into_iter().next() {
        Some(problem) => Err(problem),
        None => Ok(recurrence),
    }
}
