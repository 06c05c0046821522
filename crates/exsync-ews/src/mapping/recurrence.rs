//! Recurrence patterns and ranges ↔ EWS `t:Recurrence`.

use std::collections::BTreeSet;

use chrono::NaiveDate;

use exsync_core::{Day, Pattern, Recurrence, RecurrenceEnd, WeekIndex};

use super::parse_date;
use crate::xml::{Element, XmlWriter};

const DAYS: [(Day, &str); 10] = [
    (Day::Sunday, "Sunday"),
    (Day::Monday, "Monday"),
    (Day::Tuesday, "Tuesday"),
    (Day::Wednesday, "Wednesday"),
    (Day::Thursday, "Thursday"),
    (Day::Friday, "Friday"),
    (Day::Saturday, "Saturday"),
    (Day::Day, "Day"),
    (Day::Weekday, "Weekday"),
    (Day::WeekendDay, "WeekendDay"),
];

const INDEXES: [(WeekIndex, &str); 5] = [
    (WeekIndex::First, "First"),
    (WeekIndex::Second, "Second"),
    (WeekIndex::Third, "Third"),
    (WeekIndex::Fourth, "Fourth"),
    (WeekIndex::Last, "Last"),
];

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn day_name(day: Day) -> &'static str {
    DAYS.iter()
        .find(|(d, _)| *d == day)
        .map_or("Monday", |(_, n)| n)
}

fn day_of(name: &str) -> Result<Day, String> {
    DAYS.iter()
        .find(|(_, n)| *n == name)
        .map(|(d, _)| *d)
        .ok_or_else(|| format!("{name:?} is not a day of the week"))
}

fn index_name(index: WeekIndex) -> &'static str {
    INDEXES
        .iter()
        .find(|(i, _)| *i == index)
        .map_or("First", |(_, n)| n)
}

fn month_name(month: u32) -> &'static str {
    MONTHS
        .get((month.max(1) - 1) as usize)
        .copied()
        .unwrap_or("January")
}

/// Writes `t:Recurrence` (pattern then range).
pub(super) fn write_recurrence(w: &mut XmlWriter, r: &Recurrence) {
    w.open("t:Recurrence", &[]);
    match &r.pattern {
        Pattern::Daily { interval } => {
            w.open("t:DailyRecurrence", &[])
                .text("t:Interval", &interval.to_string())
                .close("t:DailyRecurrence");
        }
        Pattern::Weekly {
            interval,
            days,
            first_day_of_week,
        } => {
            let days: Vec<&str> = days.iter().map(|d| day_name(*d)).collect();
            w.open("t:WeeklyRecurrence", &[])
                .text("t:Interval", &interval.to_string())
                .text("t:DaysOfWeek", &days.join(" "))
                .text("t:FirstDayOfWeek", day_name(*first_day_of_week))
                .close("t:WeeklyRecurrence");
        }
        Pattern::AbsoluteMonthly {
            interval,
            day_of_month,
        } => {
            w.open("t:AbsoluteMonthlyRecurrence", &[])
                .text("t:Interval", &interval.to_string())
                .text("t:DayOfMonth", &day_of_month.to_string())
                .close("t:AbsoluteMonthlyRecurrence");
        }
        Pattern::RelativeMonthly {
            interval,
            day,
            index,
        } => {
            w.open("t:RelativeMonthlyRecurrence", &[])
                .text("t:Interval", &interval.to_string())
                .text("t:DaysOfWeek", day_name(*day))
                .text("t:DayOfWeekIndex", index_name(*index))
                .close("t:RelativeMonthlyRecurrence");
        }
        Pattern::AbsoluteYearly {
            month,
            day_of_month,
        } => {
            w.open("t:AbsoluteYearlyRecurrence", &[])
                .text("t:DayOfMonth", &day_of_month.to_string())
                .text("t:Month", month_name(*month))
                .close("t:AbsoluteYearlyRecurrence");
        }
        Pattern::RelativeYearly { month, day, index } => {
            w.open("t:RelativeYearlyRecurrence", &[])
                .text("t:DaysOfWeek", day_name(*day))
                .text("t:DayOfWeekIndex", index_name(*index))
                .text("t:Month", month_name(*month))
                .close("t:RelativeYearlyRecurrence");
        }
    }
    let start = r.start_date.format("%Y-%m-%d").to_string();
    match r.end {
        RecurrenceEnd::Never => {
            w.open("t:NoEndRecurrence", &[])
                .text("t:StartDate", &start)
                .close("t:NoEndRecurrence");
        }
        RecurrenceEnd::Until(until) => {
            w.open("t:EndDateRecurrence", &[])
                .text("t:StartDate", &start)
                .text("t:EndDate", &until.format("%Y-%m-%d").to_string())
                .close("t:EndDateRecurrence");
        }
        RecurrenceEnd::Count(count) => {
            w.open("t:NumberedRecurrence", &[])
                .text("t:StartDate", &start)
                .text("t:NumberOfOccurrences", &count.to_string())
                .close("t:NumberedRecurrence");
        }
    }
    w.close("t:Recurrence");
}

fn number(el: &Element, name: &str) -> Result<u32, String> {
    let text = el
        .child_text(name)
        .ok_or_else(|| format!("{} without {name}", el.name))?;
    text.trim()
        .parse()
        .map_err(|_| format!("{name} {text:?} is not a number"))
}

fn single_day(el: &Element) -> Result<Day, String> {
    let text = el.child_text("DaysOfWeek").unwrap_or("").trim();
    let days: Vec<&str> = text.split_whitespace().collect();
    match days.as_slice() {
        [one] => day_of(one),
        _ => Err(format!(
            "a relative pattern needs exactly one day or day group, got {text:?}"
        )),
    }
}

fn index(el: &Element) -> Result<WeekIndex, String> {
    let text = el.child_text("DayOfWeekIndex").unwrap_or("").trim();
    INDEXES
        .iter()
        .find(|(_, n)| *n == text)
        .map(|(i, _)| *i)
        .ok_or_else(|| format!("{text:?} is not a week index"))
}

fn month(el: &Element) -> Result<u32, String> {
    let text = el.child_text("Month").unwrap_or("").trim();
    MONTHS
        .iter()
        .position(|m| *m == text)
        .map(|i| i as u32 + 1)
        .ok_or_else(|| format!("{text:?} is not a month"))
}

/// Reads `t:Recurrence`. Deleted and modified occurrences are read by the event mapping,
/// which knows the time zone to read their times in.
pub(super) fn read_recurrence(el: &Element) -> Result<Recurrence, String> {
    let mut pattern = None;
    let mut range = None;
    for child in &el.children {
        match child.name.as_str() {
            "DailyRecurrence" => {
                pattern = Some(Pattern::Daily {
                    interval: number(child, "Interval")?,
                })
            }
            "WeeklyRecurrence" => {
                let mut days = Vec::new();
                for name in child
                    .child_text("DaysOfWeek")
                    .unwrap_or("")
                    .split_whitespace()
                {
                    let day = day_of(name)?;
                    if !day.is_plain() {
                        return Err(format!("a weekly pattern cannot use the day group {name}"));
                    }
                    days.push(day);
                }
                let first_day_of_week = match child.child_text("FirstDayOfWeek") {
                    Some(name) => day_of(name.trim())?,
                    None => Day::Sunday,
                };
                pattern = Some(Pattern::Weekly {
                    interval: number(child, "Interval")?,
                    days,
                    first_day_of_week,
                });
            }
            "AbsoluteMonthlyRecurrence" => {
                pattern = Some(Pattern::AbsoluteMonthly {
                    interval: number(child, "Interval")?,
                    day_of_month: number(child, "DayOfMonth")?,
                })
            }
            "RelativeMonthlyRecurrence" => {
                pattern = Some(Pattern::RelativeMonthly {
                    interval: number(child, "Interval")?,
                    day: single_day(child)?,
                    index: index(child)?,
                })
            }
            "AbsoluteYearlyRecurrence" => {
                pattern = Some(Pattern::AbsoluteYearly {
                    month: month(child)?,
                    day_of_month: number(child, "DayOfMonth")?,
                })
            }
            "RelativeYearlyRecurrence" => {
                pattern = Some(Pattern::RelativeYearly {
                    month: month(child)?,
                    day: single_day(child)?,
                    index: index(child)?,
                })
            }
            "NoEndRecurrence" | "EndDateRecurrence" | "NumberedRecurrence" => {
                let start_text = child.child_text("StartDate").unwrap_or("");
                let start = parse_date(start_text)
                    .ok_or_else(|| format!("StartDate {start_text:?} is not a date"))?;
                let end = match child.name.as_str() {
                    "EndDateRecurrence" => {
                        let text = child.child_text("EndDate").unwrap_or("");
                        RecurrenceEnd::Until(
                            parse_date(text)
                                .ok_or_else(|| format!("EndDate {text:?} is not a date"))?,
                        )
                    }
                    "NumberedRecurrence" => {
                        RecurrenceEnd::Count(number(child, "NumberOfOccurrences")?)
                    }
                    _ => RecurrenceEnd::Never,
                };
                range = Some((start, end));
            }
            other => {
                return Err(format!(
                    "recurrence element {other} is not one exsync can sync"
                ))
            }
        }
    }
    let pattern = pattern.ok_or("recurrence without a pattern")?;
    let (start_date, end): (NaiveDate, RecurrenceEnd) =
        range.ok_or("recurrence without a range")?;
    let recurrence = Recurrence {
        pattern,
        start_date,
        end,
        deleted: BTreeSet::new(),
        modified: Vec::new(),
    };
    match recurrence.problems().into_iter().next() {
        Some(problem) => Err(problem),
        None => Ok(recurrence),
    }
}
