//! The dates a recurrence pattern produces: how a mailbox side finds an occurrence's place in
//! its series (EWS addresses one by its 1-based `InstanceIndex`) and which occurrences a window
//! holds.

use chrono::{Datelike, Days, Months, NaiveDate, Weekday};

use super::recurrence::{Day, Pattern, Recurrence, RecurrenceEnd, WeekIndex};

/// Upper bound on the occurrences we walk: ten years of a daily series.
const MAX_OCCURRENCES: usize = 3660;

fn weekday(day: Day) -> Option<Weekday> {
    Some(match day {
        Day::Monday => Weekday::Mon,
        Day::Tuesday => Weekday::Tue,
        Day::Wednesday => Weekday::Wed,
        Day::Thursday => Weekday::Thu,
        Day::Friday => Weekday::Fri,
        Day::Saturday => Weekday::Sat,
        Day::Sunday => Weekday::Sun,
        _ => return None,
    })
}

fn day_matches(day: Day, date: NaiveDate) -> bool {
    match day {
        Day::Day => true,
        Day::Weekday => !matches!(date.weekday(), Weekday::Sat | Weekday::Sun),
        Day::WeekendDay => matches!(date.weekday(), Weekday::Sat | Weekday::Sun),
        plain => weekday(plain) == Some(date.weekday()),
    }
}

fn last_of_month(year: i32, month: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, 1)?
        .checked_add_months(Months::new(1))?
        .pred_opt()
}

fn absolute(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    // A day the month lacks (the 31st in April) falls on its last day, as in Outlook.
    NaiveDate::from_ymd_opt(year, month, day).or_else(|| last_of_month(year, month))
}

fn relative(year: i32, month: u32, day: Day, index: WeekIndex) -> Option<NaiveDate> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let last = last_of_month(year, month)?;
    let matching: Vec<NaiveDate> = first
        .iter_days()
        .take_while(|d| *d <= last)
        .filter(|d| day_matches(day, *d))
        .collect();
    match index {
        WeekIndex::First => matching.first().copied(),
        WeekIndex::Second => matching.get(1).copied(),
        WeekIndex::Third => matching.get(2).copied(),
        WeekIndex::Fourth => matching.get(3).copied(),
        WeekIndex::Last => matching.last().copied(),
    }
}

/// The occurrence dates of a series (deleted ones included: they keep their index), up to
/// `until` or the series' own end.
pub fn occurrence_dates(r: &Recurrence, until: NaiveDate) -> Vec<NaiveDate> {
    let limit = match r.end {
        RecurrenceEnd::Count(n) => (n as usize).min(MAX_OCCURRENCES),
        _ => MAX_OCCURRENCES,
    };
    let until = match r.end {
        RecurrenceEnd::Until(end) => end.min(until),
        _ => until,
    };
    let start = r.start_date;
    let mut out = Vec::new();
    let push = |d: NaiveDate, out: &mut Vec<NaiveDate>| -> bool {
        if d < start {
            return true;
        }
        if d > until || out.len() >= limit {
            return false;
        }
        out.push(d);
        true
    };
    match &r.pattern {
        Pattern::Daily { interval } => {
            let mut d = start;
            while push(d, &mut out) {
                match d.checked_add_days(Days::new(u64::from((*interval).max(1)))) {
                    Some(next) => d = next,
                    None => break,
                }
            }
        }
        Pattern::Weekly {
            interval,
            days,
            first_day_of_week,
        } => {
            let week_start = weekday(*first_day_of_week).unwrap_or(Weekday::Mon);
            let back = (7 + start.weekday().num_days_from_monday()
                - week_start.num_days_from_monday())
                % 7;
            let mut week = start - Days::new(u64::from(back));
            'weeks: loop {
                for offset in 0..7 {
                    let d = week + Days::new(offset);
                    if days.iter().any(|day| day_matches(*day, d)) && !push(d, &mut out) {
                        break 'weeks;
                    }
                }
                match week.checked_add_days(Days::new(7 * u64::from((*interval).max(1)))) {
                    Some(next) => week = next,
                    None => break,
                }
            }
        }
        Pattern::AbsoluteMonthly { .. }
        | Pattern::RelativeMonthly { .. }
        | Pattern::AbsoluteYearly { .. }
        | Pattern::RelativeYearly { .. } => {
            let (step, month) = match &r.pattern {
                Pattern::AbsoluteMonthly { interval, .. }
                | Pattern::RelativeMonthly { interval, .. } => ((*interval).max(1), start.month()),
                Pattern::AbsoluteYearly { month, .. } | Pattern::RelativeYearly { month, .. } => {
                    (12, *month)
                }
                _ => (1, start.month()),
            };
            let Some(mut cursor) = NaiveDate::from_ymd_opt(start.year(), month, 1) else {
                return out;
            };
            for _ in 0..MAX_OCCURRENCES {
                let date = match &r.pattern {
                    Pattern::AbsoluteMonthly { day_of_month, .. }
                    | Pattern::AbsoluteYearly { day_of_month, .. } => {
                        absolute(cursor.year(), cursor.month(), *day_of_month)
                    }
                    Pattern::RelativeMonthly { day, index, .. }
                    | Pattern::RelativeYearly { day, index, .. } => {
                        relative(cursor.year(), cursor.month(), *day, *index)
                    }
                    _ => None,
                };
                if let Some(d) = date {
                    if !push(d, &mut out) {
                        break;
                    }
                }
                match cursor.checked_add_months(Months::new(step)) {
                    Some(next) => cursor = next,
                    None => break,
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::collections::BTreeSet;

    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn series(pattern: Pattern, start: NaiveDate, end: RecurrenceEnd) -> Recurrence {
        Recurrence {
            pattern,
            start_date: start,
            end,
            deleted: BTreeSet::new(),
            modified: Vec::new(),
        }
    }

    #[test]
    fn weekly_counts_from_the_start_date() {
        // Mon 2026-03-02; Mondays and Wednesdays.
        let r = series(
            Pattern::Weekly {
                interval: 1,
                days: vec![Day::Monday, Day::Wednesday],
                first_day_of_week: Day::Sunday,
            },
            d(2026, 3, 4),
            RecurrenceEnd::Count(4),
        );
        assert_eq!(
            occurrence_dates(&r, d(2027, 1, 1)),
            vec![d(2026, 3, 4), d(2026, 3, 9), d(2026, 3, 11), d(2026, 3, 16)]
        );
    }

    #[test]
    fn monthly_and_yearly_patterns() {
        let r = series(
            Pattern::AbsoluteMonthly {
                interval: 1,
                day_of_month: 31,
            },
            d(2026, 1, 31),
            RecurrenceEnd::Count(3),
        );
        assert_eq!(
            occurrence_dates(&r, d(2027, 1, 1)),
            vec![d(2026, 1, 31), d(2026, 2, 28), d(2026, 3, 31)]
        );
        let r = series(
            Pattern::RelativeMonthly {
                interval: 2,
                day: Day::Weekday,
                index: WeekIndex::Last,
            },
            d(2026, 1, 1),
            RecurrenceEnd::Until(d(2026, 6, 1)),
        );
        assert_eq!(
            occurrence_dates(&r, d(2027, 1, 1)),
            vec![d(2026, 1, 30), d(2026, 3, 31), d(2026, 5, 29)]
        );
        let r = series(
            Pattern::RelativeYearly {
                month: 11,
                day: Day::Thursday,
                index: WeekIndex::Fourth,
            },
            d(2026, 1, 1),
            RecurrenceEnd::Count(2),
        );
        assert_eq!(
            occurrence_dates(&r, d(2030, 1, 1)),
            vec![d(2026, 11, 26), d(2027, 11, 25)]
        );
        let r = series(
            Pattern::Daily { interval: 3 },
            d(2026, 1, 1),
            RecurrenceEnd::Never,
        );
        assert_eq!(
            occurrence_dates(&r, d(2026, 1, 7)),
            vec![d(2026, 1, 1), d(2026, 1, 4), d(2026, 1, 7)]
        );
    }
}
