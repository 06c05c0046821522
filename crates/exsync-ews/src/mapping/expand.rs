//! An occurrence's `InstanceIndex`: its 1-based position in the unmodified series, which is
//! how EWS addresses one occurrence.

use chrono::NaiveDate;

use exsync_core::{occurrence_dates, Recurrence};

/// The 1-based position of the occurrence on `date`, if the series has one that day.
pub(crate) fn instance_index(r: &Recurrence, date: NaiveDate) -> Option<u32> {
    occurrence_dates(r, date)
        .iter()
        .position(|d| *d == date)
        .and_then(|i| u32::try_from(i + 1).ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::collections::BTreeSet;

    use exsync_core::{Day, Pattern, RecurrenceEnd};

    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn index_counts_from_the_start_date() {
        // Mon 2026-03-02; Mondays and Wednesdays.
        let r = Recurrence {
            pattern: Pattern::Weekly {
                interval: 1,
                days: vec![Day::Monday, Day::Wednesday],
                first_day_of_week: Day::Sunday,
            },
            start_date: d(2026, 3, 4),
            end: RecurrenceEnd::Count(4),
            deleted: BTreeSet::new(),
            modified: Vec::new(),
        };
        assert_eq!(instance_index(&r, d(2026, 3, 11)), Some(3));
        assert_eq!(instance_index(&r, d(2026, 3, 10)), None);
        assert_eq!(instance_index(&r, d(2026, 3, 18)), None);
    }
}
