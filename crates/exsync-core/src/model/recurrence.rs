//! Recurring series: the patterns EWS can express, and their iCalendar RRULE form (which is
//! what Salesforce's `Recurrence2PatternText` holds).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use chrono::{Datelike, Months, NaiveDate};
use serde::{Deserialize, Serialize};

use super::event::EventTime;
use super::text::{Fit, MAX_LINE};

/// A recurring series as both sides store it: the rule, its range and the exceptions to it.
/// The shape follows what EWS can express; [`Recurrence::from_rrule`] refuses anything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recurrence {
    /// How occurrences repeat.
    pub pattern: Pattern,
    /// Date of the first occurrence, in the event's time zone.
    pub start_date: NaiveDate,
    /// When the series stops.
    pub end: RecurrenceEnd,
    /// Occurrences removed from the series, by their original date.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub deleted: BTreeSet<NaiveDate>,
    /// Occurrences that differ from the series.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modified: Vec<Occurrence>,
}

/// How often a series repeats; one variant per EWS recurrence pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pattern {
    /// Every `interval` days.
    Daily {
        /// Days between occurrences, 1 to 999.
        interval: u32,
    },
    /// Every `interval` weeks, on each of `days`.
    Weekly {
        /// Weeks between occurrences, 1 to 999.
        interval: u32,
        /// The weekdays it occurs on; only plain days, at least one (sorted and deduplicated by
        /// [`Recurrence::normalize`]).
        days: Vec<Day>,
        /// The day a week starts on (iCalendar `WKST`), which decides which weeks an interval above
        /// 1 skips; Monday when absent.
        #[serde(default = "monday")]
        first_day_of_week: Day,
    },
    /// Every `interval` months, on a fixed day of the month.
    AbsoluteMonthly {
        /// Months between occurrences, 1 to 999.
        interval: u32,
        /// Day of the month, 1 to 31.
        day_of_month: u32,
    },
    /// Every `interval` months, on the `index`-th `day` of the month (say, the last Friday).
    RelativeMonthly {
        /// Months between occurrences, 1 to 999.
        interval: u32,
        /// The weekday, or a group of days, counted within the month.
        day: Day,
        /// Which of those days in the month.
        index: WeekIndex,
    },
    /// Every year on a fixed date.
    AbsoluteYearly {
        /// Month, 1 to 12.
        month: u32,
        /// Day of `month`; the pair must be a real date in a leap year.
        day_of_month: u32,
    },
    /// Every year on the `index`-th `day` of `month` (say, the first Monday of September).
    RelativeYearly {
        /// Month, 1 to 12.
        month: u32,
        /// The weekday, or a group of days, counted within the month.
        day: Day,
        /// Which of those days in the month.
        index: WeekIndex,
    },
}

fn monday() -> Day {
    Day::Monday
}

/// EWS `DayOfWeekType`: a weekday, or one of the three groups relative patterns may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Day {
    /// A plain weekday (iCalendar `MO`).
    Monday,
    /// A plain weekday (iCalendar `TU`).
    Tuesday,
    /// A plain weekday (iCalendar `WE`).
    Wednesday,
    /// A plain weekday (iCalendar `TH`).
    Thursday,
    /// A plain weekday (iCalendar `FR`).
    Friday,
    /// A plain weekday (iCalendar `SA`).
    Saturday,
    /// A plain weekday (iCalendar `SU`).
    Sunday,
    /// Any day.
    Day,
    /// Monday to Friday.
    Weekday,
    /// Saturday or Sunday.
    WeekendDay,
}

const PLAIN_DAYS: [(Day, &str); 7] = [
    (Day::Monday, "MO"),
    (Day::Tuesday, "TU"),
    (Day::Wednesday, "WE"),
    (Day::Thursday, "TH"),
    (Day::Friday, "FR"),
    (Day::Saturday, "SA"),
    (Day::Sunday, "SU"),
];

impl Day {
    /// Whether this is a single weekday rather than a group; weekly patterns only accept plain
    /// days.
    pub fn is_plain(self) -> bool {
        !matches!(self, Day::Day | Day::Weekday | Day::WeekendDay)
    }

    /// The plain weekdays this day stands for.
    fn expand(self) -> Vec<Day> {
        match self {
            Day::Day => PLAIN_DAYS.iter().map(|(d, _)| *d).collect(),
            Day::Weekday => PLAIN_DAYS[..5].iter().map(|(d, _)| *d).collect(),
            Day::WeekendDay => vec![Day::Saturday, Day::Sunday],
            plain => vec![plain],
        }
    }

    fn ical(self) -> &'static str {
        PLAIN_DAYS
            .iter()
            .find(|(d, _)| *d == self)
            .map_or("MO", |(_, s)| s)
    }

    fn from_ical(s: &str) -> Option<Day> {
        PLAIN_DAYS.iter().find(|(_, c)| *c == s).map(|(d, _)| *d)
    }

    /// The group (or single day) a set of plain days forms, if EWS can name it.
    fn group_of(days: &[Day]) -> Option<Day> {
        [Day::Day, Day::Weekday, Day::WeekendDay]
            .into_iter()
            .chain(PLAIN_DAYS.iter().map(|(d, _)| *d))
            .find(|g| g.expand() == days)
    }
}

/// Which of the matching days within a month a relative pattern means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeekIndex {
    /// The first (iCalendar position 1).
    First,
    /// The second (position 2).
    Second,
    /// The third (position 3).
    Third,
    /// The fourth (position 4).
    Fourth,
    /// The last in the month (position -1), whether that is the fourth or the fifth.
    Last,
}

impl WeekIndex {
    fn position(self) -> i32 {
        match self {
            WeekIndex::First => 1,
            WeekIndex::Second => 2,
            WeekIndex::Third => 3,
            WeekIndex::Fourth => 4,
            WeekIndex::Last => -1,
        }
    }

    fn from_position(p: i32) -> Option<WeekIndex> {
        Some(match p {
            1 => WeekIndex::First,
            2 => WeekIndex::Second,
            3 => WeekIndex::Third,
            4 => WeekIndex::Fourth,
            -1 => WeekIndex::Last,
            _ => return None,
        })
    }
}

/// When a series stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum RecurrenceEnd {
    /// Repeats without end.
    Never,
    /// Last date an occurrence may start on (inclusive).
    Until(NaiveDate),
    /// Stops after this many occurrences, counting the first; 0 is refused by
    /// [`Recurrence::problems`].
    Count(u32),
}

/// One occurrence moved or edited away from its series.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Occurrence {
    /// Where the series would have put it.
    pub original_start: EventTime,
    /// When it actually starts.
    pub start: EventTime,
    /// When it actually ends.
    pub end: EventTime,
    /// Its own subject, or `None` to keep the series' subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Its own location, or `None` to keep the series' location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// Why an RRULE could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("recurrence rule {rule:?}: {reason}")]
pub struct RruleError {
    /// The RRULE text as given, so the admin can see which record carried it.
    pub rule: String,
    /// What in the rule could not be read or expressed.
    pub reason: String,
}

impl Recurrence {
    /// Puts the series in the canonical form content hashing and comparison rely on: weekdays
    /// sorted and deduplicated, moved occurrences sorted with one per original start and their
    /// text cut to the line limit.
    pub fn normalize(&mut self) {
        if let Pattern::Weekly { days, .. } = &mut self.pattern {
            days.sort();
            days.dedup();
        }
        // Only Exchange holds moved occurrences, so what is cut from them concerns no CRM
        // record and is not reported.
        let mut fit = Fit::default();
        for occurrence in &mut self.modified {
            occurrence.subject = occurrence
                .subject
                .as_deref()
                .map(|s| fit.line("subject", s, MAX_LINE));
            occurrence.location = occurrence
                .location
                .as_deref()
                .map(|s| fit.line("location", s, MAX_LINE));
        }
        self.modified.sort();
        self.modified
            .dedup_by(|a, b| a.original_start == b.original_start);
    }

    /// What makes the series invalid, one sentence each (interval outside 1..=999, impossible
    /// dates, an end before the start…); empty when both sides can hold it.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let interval = match &self.pattern {
            Pattern::Daily { interval }
            | Pattern::Weekly { interval, .. }
            | Pattern::AbsoluteMonthly { interval, .. }
            | Pattern::RelativeMonthly { interval, .. } => *interval,
            Pattern::AbsoluteYearly { .. } | Pattern::RelativeYearly { .. } => 1,
        };
        if interval == 0 || interval > 999 {
            problems.push(format!("recurrence interval {interval} is outside 1..=999"));
        }
        match &self.pattern {
            Pattern::Weekly { days, .. }
                if days.is_empty() || !days.iter().all(|d| d.is_plain()) =>
            {
                problems.push("a weekly recurrence needs one or more plain weekdays".into());
            }
            Pattern::AbsoluteMonthly { day_of_month, .. } if !(1..=31).contains(day_of_month) => {
                problems.push(format!("day of month {day_of_month} is outside 1..=31"));
            }
            Pattern::AbsoluteYearly {
                month,
                day_of_month,
            } if NaiveDate::from_ymd_opt(2024, *month, *day_of_month).is_none() => {
                problems.push(format!("month {month} / day {day_of_month} is not a date"));
            }
            Pattern::RelativeYearly { month, .. } if !(1..=12).contains(month) => {
                problems.push(format!("month {month} is outside 1..=12"));
            }
            _ => {}
        }
        match self.end {
            RecurrenceEnd::Count(0) => {
                problems.push("a recurrence must occur at least once".into())
            }
            RecurrenceEnd::Until(until) if until < self.start_date => {
                problems.push("the recurrence ends before it starts".into());
            }
            _ => {}
        }
        problems
    }

    /// A date no occurrence starts after, or `None` for a series without end. Used to decide
    /// whether a series reaches into the sync window; an upper bound is enough there.
    pub fn last_date_bound(&self) -> Option<NaiveDate> {
        let last_modified = self
            .modified
            .iter()
            .map(|o| o.start.approx_instant().date_naive())
            .max();
        let by_rule = match self.end {
            RecurrenceEnd::Never => return None,
            RecurrenceEnd::Until(until) => until,
            RecurrenceEnd::Count(count) => {
                let count = count.saturating_add(1);
                let bound = match &self.pattern {
                    Pattern::Daily { interval } => self.start_date.checked_add_days(
                        chrono::Days::new(u64::from(count) * u64::from(*interval)),
                    ),
                    Pattern::Weekly { interval, .. } => self.start_date.checked_add_days(
                        chrono::Days::new(u64::from(count) * u64::from(*interval) * 7),
                    ),
                    Pattern::AbsoluteMonthly { interval, .. }
                    | Pattern::RelativeMonthly { interval, .. } => self
                        .start_date
                        .checked_add_months(Months::new(count.saturating_mul(*interval))),
                    Pattern::AbsoluteYearly { .. } | Pattern::RelativeYearly { .. } => self
                        .start_date
                        .checked_add_months(Months::new(count.saturating_mul(12))),
                };
                bound.unwrap_or(NaiveDate::MAX)
            }
        };
        Some(last_modified.map_or(by_rule, |m| m.max(by_rule)))
    }

    /// The rule as an iCalendar RRULE value (without the `RRULE:` prefix).
    pub fn to_rrule(&self) -> String {
        let mut out = String::new();
        let by_day = |days: &[Day]| days.iter().map(|d| d.ical()).collect::<Vec<_>>().join(",");
        match &self.pattern {
            Pattern::Daily { interval } => {
                let _ = write!(out, "FREQ=DAILY;INTERVAL={interval}");
            }
            Pattern::Weekly {
                interval,
                days,
                first_day_of_week,
            } => {
                let _ = write!(
                    out,
                    "FREQ=WEEKLY;INTERVAL={interval};BYDAY={};WKST={}",
                    by_day(days),
                    first_day_of_week.ical()
                );
            }
            Pattern::AbsoluteMonthly {
                interval,
                day_of_month,
            } => {
                let _ = write!(
                    out,
                    "FREQ=MONTHLY;INTERVAL={interval};BYMONTHDAY={day_of_month}"
                );
            }
            Pattern::RelativeMonthly {
                interval,
                day,
                index,
            } => {
                let _ = write!(out, "FREQ=MONTHLY;INTERVAL={interval};");
                write_relative(&mut out, *day, *index);
            }
            Pattern::AbsoluteYearly {
                month,
                day_of_month,
            } => {
                let _ = write!(
                    out,
                    "FREQ=YEARLY;INTERVAL=1;BYMONTH={month};BYMONTHDAY={day_of_month}"
                );
            }
            Pattern::RelativeYearly { month, day, index } => {
                let _ = write!(out, "FREQ=YEARLY;INTERVAL=1;BYMONTH={month};");
                write_relative(&mut out, *day, *index);
            }
        }
        match self.end {
            RecurrenceEnd::Never => {}
            RecurrenceEnd::Count(count) => {
                let _ = write!(out, ";COUNT={count}");
            }
            RecurrenceEnd::Until(until) => {
                let _ = write!(out, ";UNTIL={}", until.format("%Y%m%d"));
            }
        }
        out
    }

    /// Reads an RRULE (with or without the `RRULE:` prefix) for a series starting on
    /// `start_date`. Rules EWS cannot express (BYHOUR, several BYMONTHDAY, …) are refused with
    /// the reason, never approximated.
    pub fn from_rrule(rule: &str, start_date: NaiveDate) -> Result<Recurrence, RruleError> {
        let fail = |reason: String| RruleError {
            rule: rule.to_owned(),
            reason,
        };
        let body = rule.trim();
        let body = body.strip_prefix("RRULE:").unwrap_or(body);
        let mut freq = None;
        let mut interval = 1u32;
        let mut by_day: Vec<(i32, Day)> = Vec::new();
        let mut by_month_day: Option<u32> = None;
        let mut by_month: Option<u32> = None;
        let mut by_set_pos: Option<i32> = None;
        let mut wkst = Day::Monday;
        let mut end = RecurrenceEnd::Never;
        for part in body.split(';').filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| fail(format!("part {part:?} is not KEY=VALUE")))?;
            let number = |v: &str| -> Result<i64, RruleError> {
                v.parse::<i64>()
                    .map_err(|_| fail(format!("{key}={v} is not a number")))
            };
            match key.to_ascii_uppercase().as_str() {
                "FREQ" => freq = Some(value.to_ascii_uppercase()),
                "INTERVAL" => {
                    interval = u32::try_from(number(value)?)
                        .map_err(|_| fail("INTERVAL is negative".into()))?
                }
                "COUNT" => {
                    end = RecurrenceEnd::Count(
                        u32::try_from(number(value)?)
                            .map_err(|_| fail("COUNT is negative".into()))?,
                    )
                }
                "UNTIL" => {
                    end = RecurrenceEnd::Until(
                        parse_until(value)
                            .ok_or_else(|| fail(format!("UNTIL={value} is not a date")))?,
                    )
                }
                "BYDAY" => {
                    for item in value.split(',') {
                        let item = item.trim().to_ascii_uppercase();
                        let split = item.len().saturating_sub(2);
                        let (pos, code) = item.split_at(split);
                        let day = Day::from_ical(code)
                            .ok_or_else(|| fail(format!("BYDAY {item:?} is not a weekday")))?;
                        let pos = if pos.is_empty() {
                            0
                        } else {
                            i32::try_from(number(pos)?)
                                .map_err(|_| fail(format!("BYDAY {item:?} position")))?
                        };
                        by_day.push((pos, day));
                    }
                }
                "BYMONTHDAY" => {
                    if value.contains(',') {
                        return Err(fail(
                            "several BYMONTHDAY values cannot be expressed in Exchange".into(),
                        ));
                    }
                    by_month_day = Some(u32::try_from(number(value)?).map_err(|_| {
                        fail("negative BYMONTHDAY cannot be expressed in Exchange".into())
                    })?);
                }
                "BYMONTH" => {
                    if value.contains(',') {
                        return Err(fail(
                            "several BYMONTH values cannot be expressed in Exchange".into(),
                        ));
                    }
                    by_month = Some(
                        u32::try_from(number(value)?)
                            .map_err(|_| fail("BYMONTH is negative".into()))?,
                    );
                }
                "BYSETPOS" => {
                    by_set_pos = Some(
                        i32::try_from(number(value)?)
                            .map_err(|_| fail("BYSETPOS out of range".into()))?,
                    )
                }
                "WKST" => {
                    wkst = Day::from_ical(&value.to_ascii_uppercase())
                        .ok_or_else(|| fail(format!("WKST={value} is not a weekday")))?
                }
                other => return Err(fail(format!("{other} cannot be expressed in Exchange"))),
            }
        }
        let relative = |by_day: &[(i32, Day)]| -> Result<(Day, WeekIndex), RruleError> {
            let positions: BTreeSet<i32> = by_day.iter().map(|(p, _)| *p).collect();
            let mut days: Vec<Day> = by_day.iter().map(|(_, d)| *d).collect();
            days.sort();
            days.dedup();
            let position =
                match (positions.len(), positions.first().copied(), by_set_pos) {
                    (1, Some(0), Some(set_pos)) => set_pos,
                    (1, Some(p), None) if p != 0 && days.len() == 1 => p,
                    _ => return Err(fail(
                        "BYDAY must name one weekday with a position, or a day group with BYSETPOS"
                            .into(),
                    )),
                };
            let index = WeekIndex::from_position(position)
                .ok_or_else(|| fail(format!("position {position} is not 1-4 or -1")))?;
            let day = Day::group_of(&days)
                .ok_or_else(|| fail("BYDAY names a set of days Exchange cannot group".into()))?;
            Ok((day, index))
        };
        let month = || by_month.unwrap_or_else(|| start_date.month());
        let pattern = match freq.as_deref() {
            Some("DAILY") if by_day.is_empty() => Pattern::Daily { interval },
            Some("DAILY") => {
                // Outlook writes "every weekday" as a weekly rule; accept the daily spelling too.
                if interval != 1 {
                    return Err(fail("a daily rule with BYDAY needs INTERVAL=1".into()));
                }
                Pattern::Weekly {
                    interval: 1,
                    days: plain_days(&by_day, &fail)?,
                    first_day_of_week: wkst,
                }
            }
            Some("WEEKLY") => {
                let days = if by_day.is_empty() {
                    vec![weekday_of(start_date)]
                } else {
                    plain_days(&by_day, &fail)?
                };
                Pattern::Weekly {
                    interval,
                    days,
                    first_day_of_week: wkst,
                }
            }
            Some("MONTHLY") if by_day.is_empty() => Pattern::AbsoluteMonthly {
                interval,
                day_of_month: by_month_day.unwrap_or_else(|| start_date.day()),
            },
            Some("MONTHLY") => {
                let (day, index) = relative(&by_day)?;
                Pattern::RelativeMonthly {
                    interval,
                    day,
                    index,
                }
            }
            Some("YEARLY") if interval != 1 => {
                return Err(fail(
                    "Exchange yearly patterns repeat every year; INTERVAL must be 1".into(),
                ))
            }
            Some("YEARLY") if by_day.is_empty() => Pattern::AbsoluteYearly {
                month: month(),
                day_of_month: by_month_day.unwrap_or_else(|| start_date.day()),
            },
            Some("YEARLY") => {
                let (day, index) = relative(&by_day)?;
                Pattern::RelativeYearly {
                    month: month(),
                    day,
                    index,
                }
            }
            Some(other) => {
                return Err(fail(format!(
                    "FREQ={other} cannot be expressed in Exchange"
                )))
            }
            None => return Err(fail("FREQ is missing".into())),
        };
        let recurrence = Recurrence {
            pattern,
            start_date,
            end,
            deleted: BTreeSet::new(),
            modified: Vec::new(),
        };
        match recurrence.problems().into_iter().next() {
            Some(problem) => Err(fail(problem)),
            None => Ok(recurrence),
        }
    }
}

fn write_relative(out: &mut String, day: Day, index: WeekIndex) {
    if day.is_plain() {
        let _ = write!(out, "BYDAY={}{}", index.position(), day.ical());
    } else {
        let days: Vec<&str> = day.expand().into_iter().map(Day::ical).collect();
        let _ = write!(
            out,
            "BYDAY={};BYSETPOS={}",
            days.join(","),
            index.position()
        );
    }
}

fn plain_days(
    by_day: &[(i32, Day)],
    fail: &dyn Fn(String) -> RruleError,
) -> Result<Vec<Day>, RruleError> {
    if by_day.iter().any(|(p, _)| *p != 0) {
        return Err(fail("a weekly rule cannot give BYDAY positions".into()));
    }
    let mut days: Vec<Day> = by_day.iter().map(|(_, d)| *d).collect();
    days.sort();
    days.dedup();
    Ok(days)
}

fn weekday_of(date: NaiveDate) -> Day {
    PLAIN_DAYS[date.weekday().num_days_from_monday() as usize].0
}

fn parse_until(value: &str) -> Option<NaiveDate> {
    let digits = value.get(..8)?;
    NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
    }

    fn roundtrip(pattern: Pattern, end: RecurrenceEnd) {
        let original = Recurrence {
            pattern,
            start_date: date(2026, 3, 2),
            end,
            deleted: BTreeSet::new(),
            modified: Vec::new(),
        };
        let rule = original.to_rrule();
        let back = Recurrence::from_rrule(&rule, original.start_date);
        assert_eq!(back.as_ref(), Ok(&original), "rule {rule}");
    }

    #[test]
    fn every_pattern_survives_rrule() {
        use Day::{Monday, Sunday, Thursday, Tuesday, Weekday, WeekendDay};
        roundtrip(Pattern::Daily { interval: 3 }, RecurrenceEnd::Count(10));
        roundtrip(
            Pattern::Weekly {
                interval: 2,
                days: vec![Monday, Thursday],
                first_day_of_week: Sunday,
            },
            RecurrenceEnd::Until(date(2026, 12, 31)),
        );
        roundtrip(
            Pattern::AbsoluteMonthly {
                interval: 1,
                day_of_month: 31,
            },
            RecurrenceEnd::Never,
        );
        roundtrip(
            Pattern::RelativeMonthly {
                interval: 2,
                day: Tuesday,
                index: WeekIndex::Second,
            },
            RecurrenceEnd::Never,
        );
        roundtrip(
            Pattern::RelativeMonthly {
                interval: 1,
                day: Weekday,
                index: WeekIndex::Last,
            },
            RecurrenceEnd::Count(5),
        );
        roundtrip(
            Pattern::AbsoluteYearly {
                month: 2,
                day_of_month: 29,
            },
            RecurrenceEnd::Never,
        );
        roundtrip(
            Pattern::RelativeYearly {
                month: 11,
                day: Thursday,
                index: WeekIndex::Fourth,
            },
            RecurrenceEnd::Never,
        );
        roundtrip(
            Pattern::RelativeYearly {
                month: 5,
                day: WeekendDay,
                index: WeekIndex::First,
            },
            RecurrenceEnd::Never,
        );
    }

    #[test]
    fn weekly_without_byday_takes_the_start_weekday() {
        let r = Recurrence::from_rrule("RRULE:FREQ=WEEKLY", date(2026, 3, 4));
        assert_eq!(
            r.map(|r| r.pattern),
            Ok(Pattern::Weekly {
                interval: 1,
                days: vec![Day::Wednesday],
                first_day_of_week: Day::Monday
            })
        );
    }

    #[test]
    fn until_with_time_reads_the_date() {
        let r = Recurrence::from_rrule("FREQ=DAILY;UNTIL=20260401T235959Z", date(2026, 3, 4));
        assert_eq!(r.map(|r| r.end), Ok(RecurrenceEnd::Until(date(2026, 4, 1))));
    }

    #[test]
    fn inexpressible_rules_are_refused_with_reason() {
        for (rule, reason) in [
            ("FREQ=HOURLY", "FREQ=HOURLY cannot be expressed in Exchange"),
            (
                "FREQ=DAILY;BYHOUR=9",
                "BYHOUR cannot be expressed in Exchange",
            ),
            (
                "FREQ=MONTHLY;BYMONTHDAY=1,15",
                "several BYMONTHDAY values cannot be expressed in Exchange",
            ),
            (
                "FREQ=YEARLY;INTERVAL=2",
                "Exchange yearly patterns repeat every year; INTERVAL must be 1",
            ),
            ("FREQ=MONTHLY;BYDAY=5MO", "position 5 is not 1-4 or -1"),
            ("INTERVAL=2", "FREQ is missing"),
            (
                "FREQ=DAILY;COUNT=0",
                "a recurrence must occur at least once",
            ),
            ("FREQ=DAILY;INTERVAL=x", "INTERVAL=x is not a number"),
        ] {
            let err = Recurrence::from_rrule(rule, date(2026, 1, 1))
                .err()
                .map(|e| e.reason);
            assert_eq!(err.as_deref(), Some(reason), "rule {rule}");
        }
    }

    #[test]
    fn count_bound_covers_the_last_occurrence() {
        let r = Recurrence {
            pattern: Pattern::Weekly {
                interval: 1,
                days: vec![Day::Monday],
                first_day_of_week: Day::Monday,
            },
            start_date: date(2026, 1, 5),
            end: RecurrenceEnd::Count(3),
            deleted: BTreeSet::new(),
            modified: Vec::new(),
        };
        assert!(r.last_date_bound() >= Some(date(2026, 1, 19)));
    }
}
