//! Recurring calendar items: expansion of a master's pattern into occurrences.
//!
//! Occurrences are expanded in the series' own time zone (StartTimeZone), so a 09:00 meeting
//! stays at 09:00 local time across a daylight-saving change, as in Exchange. Windows zone
//! ids are mapped to IANA zones for the common cases; unknown zones fall back to UTC.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use super::shape::id_element;
use crate::exchange::store::{parse_time, Id, Item, Mailbox};
use crate::exchange::xml::Element;

/// No series is expanded beyond this many instances.
const MAX_INSTANCES: u32 = 5000;

#[derive(Debug, Clone)]
pub(crate) struct Occurrence {
    /// 1-based InstanceIndex.
    pub index: u32,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub original_start: DateTime<Utc>,
}

pub(crate) fn fmt(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()
}

/// The series' Recurrence with its range's StartDate/EndDate carrying the zone suffix
/// Exchange answers them with (the series zone's offset on that day, `Z` for UTC), whatever
/// form the client sent them in (`2026-03-02` comes back as `2026-03-02+01:00` in Paris).
pub(crate) fn recurrence_with_zone(item: &Item, rec: &Element) -> Element {
    let tz = item_zone(item);
    let mut rec = rec.clone();
    for range in rec.children.iter_mut() {
        for d in range
            .children
            .iter_mut()
            .filter(|c| c.name == "StartDate" || c.name == "EndDate")
        {
            let text = d.text.trim();
            let Some(day) = parse_date(text) else {
                continue;
            };
            if text.len() > 10 {
                continue;
            }
            let Some(midnight) = day.and_hms_opt(0, 0, 0) else {
                continue;
            };
            let offset = tz
                .offset_from_local_datetime(&midnight)
                .earliest()
                .map(|o| chrono::Offset::fix(&o).local_minus_utc())
                .unwrap_or(0);
            let suffix = if offset == 0 {
                "Z".to_string()
            } else {
                let sign = if offset < 0 { '-' } else { '+' };
                let m = offset.abs() / 60;
                format!("{sign}{:02}:{:02}", m / 60, m % 60)
            };
            d.text = format!("{}{suffix}", day.format("%Y-%m-%d"));
        }
    }
    rec
}

fn weekday(name: &str) -> Option<Weekday> {
    Some(match name {
        "Sunday" => Weekday::Sun,
        "Monday" => Weekday::Mon,
        "Tuesday" => Weekday::Tue,
        "Wednesday" => Weekday::Wed,
        "Thursday" => Weekday::Thu,
        "Friday" => Weekday::Fri,
        "Saturday" => Weekday::Sat,
        _ => return None,
    })
}

fn day_matches(spec: &str, d: NaiveDate) -> bool {
    spec.split_whitespace().any(|n| match n {
        "Day" => true,
        "Weekday" => !matches!(d.weekday(), Weekday::Sat | Weekday::Sun),
        "WeekendDay" => matches!(d.weekday(), Weekday::Sat | Weekday::Sun),
        other => weekday(other) == Some(d.weekday()),
    })
}

fn nth_matches(index: &str, days: &str, d: NaiveDate) -> bool {
    if !day_matches(days, d) {
        return false;
    }
    // Position of d among the days of its month that match `days`.
    let mut matching = Vec::new();
    let mut x = d.with_day(1).unwrap_or(d);
    while x.month() == d.month() {
        if day_matches(days, x) {
            matching.push(x);
        }
        match x.succ_opt() {
            Some(n) => x = n,
            None => break,
        }
    }
    let pos = matching.iter().position(|m| *m == d);
    match (index, pos) {
        ("First", Some(0)) | ("Second", Some(1)) | ("Third", Some(2)) | ("Fourth", Some(3)) => true,
        ("Last", Some(p)) => p + 1 == matching.len(),
        _ => false,
    }
}

/// Windows time zone ids (as EWS names them) → IANA zones.
pub(crate) const WINDOWS_ZONES: &[(&str, Tz)] = &[
    ("UTC", Tz::UTC),
    ("GMT Standard Time", Tz::Europe__London),
    ("W. Europe Standard Time", Tz::Europe__Berlin),
    ("Romance Standard Time", Tz::Europe__Paris),
    ("Central Europe Standard Time", Tz::Europe__Budapest),
    ("Central European Standard Time", Tz::Europe__Warsaw),
    ("E. Europe Standard Time", Tz::Europe__Chisinau),
    ("FLE Standard Time", Tz::Europe__Kiev),
    ("Eastern Standard Time", Tz::America__New_York),
    ("Central Standard Time", Tz::America__Chicago),
    ("Mountain Standard Time", Tz::America__Denver),
    ("US Mountain Standard Time", Tz::America__Phoenix),
    ("Pacific Standard Time", Tz::America__Los_Angeles),
    ("AUS Eastern Standard Time", Tz::Australia__Sydney),
    ("Tokyo Standard Time", Tz::Asia__Tokyo),
    ("India Standard Time", Tz::Asia__Kolkata),
    ("China Standard Time", Tz::Asia__Shanghai),
    ("Singapore Standard Time", Tz::Asia__Singapore),
    ("Alaskan Standard Time", Tz::America__Anchorage),
    ("Hawaiian Standard Time", Tz::Pacific__Honolulu),
    ("Atlantic Standard Time", Tz::America__Halifax),
    ("Canada Central Standard Time", Tz::America__Regina),
    ("E. South America Standard Time", Tz::America__Sao_Paulo),
    ("South Africa Standard Time", Tz::Africa__Johannesburg),
    ("Russian Standard Time", Tz::Europe__Moscow),
    ("Turkey Standard Time", Tz::Europe__Istanbul),
    ("Israel Standard Time", Tz::Asia__Jerusalem),
    ("Arabian Standard Time", Tz::Asia__Dubai),
    ("SE Asia Standard Time", Tz::Asia__Bangkok),
    ("Korea Standard Time", Tz::Asia__Seoul),
    ("W. Australia Standard Time", Tz::Australia__Perth),
    ("New Zealand Standard Time", Tz::Pacific__Auckland),
];

/// The zone an item was made in: StartTimeZone's Id (Windows or IANA), else UTC.
pub(crate) fn item_zone(item: &Item) -> Tz {
    zone_of(item.prop("StartTimeZone"))
}

/// A zone element's (StartTimeZone / EndTimeZone) zone: Windows or IANA id, else UTC.
fn zone_of(el: Option<&Element>) -> Tz {
    let Some(id) = el.and_then(|z| z.attr("Id")) else {
        return Tz::UTC;
    };
    if let Some((_, tz)) = WINDOWS_ZONES.iter().find(|(w, _)| *w == id) {
        return *tz;
    }
    id.parse::<Tz>().unwrap_or(Tz::UTC)
}

/// Snaps an all-day event's Start and End to midnight in the event's zone, as Exchange does
/// on create and update ("Create all-day events by using EWS in Exchange"): a non-midnight
/// start moves to the midnight before it, a non-midnight end to the midnight after it, both
/// in the appointment's time zone (StartTimeZone, EndTimeZone for the end; UTC without).
pub(crate) fn snap_all_day(props: &mut [Element]) {
    let all_day = props
        .iter()
        .find(|p| p.name == "IsAllDayEvent")
        .is_some_and(|p| matches!(p.text.trim(), "true" | "1"));
    if !all_day {
        return;
    }
    let start_zone = zone_of(props.iter().find(|p| p.name == "StartTimeZone"));
    let end_zone = match props.iter().find(|p| p.name == "EndTimeZone") {
        Some(z) => zone_of(Some(z)),
        None => start_zone,
    };
    let midnight = |tz: Tz, t: DateTime<Utc>, after: bool| -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&tz).naive_local();
        let mut day = local.date();
        if after && local.time() != chrono::NaiveTime::MIN {
            day = day.succ_opt()?;
        }
        local_to_utc(tz, day.and_time(chrono::NaiveTime::MIN))
    };
    let mut start = None;
    for p in props.iter_mut() {
        let Some(t) = parse_time(&p.text) else {
            continue;
        };
        let snapped = match p.name.as_str() {
            "Start" => midnight(start_zone, t, false),
            "End" => midnight(end_zone, t, true),
            _ => continue,
        };
        if let Some(v) = snapped {
            if p.name == "Start" {
                start = Some(v);
            }
            p.text = fmt(&v);
        }
    }
    // An all-day event lasts at least a day: an end at its start moves a day on.
    if let Some(s) = start {
        for p in props.iter_mut().filter(|p| p.name == "End") {
            if parse_time(&p.text).is_some_and(|e| e <= s) {
                p.text = fmt(&(s + Duration::days(1)));
            }
        }
    }
}

/// A local wall-clock time in `tz` as UTC; a time in a spring-forward gap moves an hour on.
fn local_to_utc(tz: Tz, local: chrono::NaiveDateTime) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(local + Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}

fn months_between(a: NaiveDate, b: NaiveDate) -> i64 {
    (b.year() as i64 - a.year() as i64) * 12 + b.month() as i64 - a.month() as i64
}

fn num(el: &Element, name: &str, default: i64) -> i64 {
    el.child_text(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Expands the master's series; stops after `until` (inclusive of instances starting
/// before it) or the range's own end.
pub(crate) fn expand(item: &Item, until: DateTime<Utc>) -> Vec<Occurrence> {
    let mut out = Vec::new();
    let (Some(rec), Some(start), Some(end)) = (
        item.prop("Recurrence"),
        item.prop_text("Start").and_then(parse_time),
        item.prop_text("End").and_then(parse_time),
    ) else {
        return out;
    };
    let duration = end - start;
    let Some(pattern) = rec.children.first() else {
        return out;
    };
    let Some(range) = rec.children.get(1) else {
        return out;
    };
    let Some(first) = range.child_text("StartDate").and_then(parse_date) else {
        return out;
    };
    let end_date = range.child_text("EndDate").and_then(parse_date);
    let count = range
        .child_text("NumberOfOccurrences")
        .and_then(|v| v.parse::<u32>().ok());
    let interval = num(pattern, "Interval", 1).max(1);
    let days = pattern.child_text("DaysOfWeek").unwrap_or("");
    let first_dow = pattern
        .child_text("FirstDayOfWeek")
        .and_then(weekday)
        .unwrap_or(Weekday::Sun);
    let week0 = first - Duration::days(first.weekday().days_since(first_dow) as i64);
    let tz = item_zone(item);
    let time = start.with_timezone(&tz).time();
    let mut d = first;
    let mut index = 0u32;
    let hard_stop = first + Duration::days(366 * 30);
    while d <= hard_stop && index < MAX_INSTANCES {
        if let Some(e) = end_date {
            if d > e {
                break;
            }
        }
        if let Some(c) = count {
            if index >= c {
                break;
            }
        }
        let hit = match pattern.name.as_str() {
            "DailyRecurrence" => (d - first).num_days() % interval == 0,
            "WeeklyRecurrence" => {
                day_matches(days, d) && ((d - week0).num_days() / 7) % interval == 0
            }
            "AbsoluteMonthlyRecurrence" => {
                falls_on(d, num(pattern, "DayOfMonth", first.day() as i64))
                    && months_between(first, d) % interval == 0
            }
            "RelativeMonthlyRecurrence" => {
                nth_matches(
                    pattern.child_text("DayOfWeekIndex").unwrap_or("First"),
                    days,
                    d,
                ) && months_between(first, d) % interval == 0
            }
            "AbsoluteYearlyRecurrence" => {
                falls_on(d, num(pattern, "DayOfMonth", first.day() as i64))
                    && month_matches(pattern, d)
            }
            "RelativeYearlyRecurrence" => {
                nth_matches(
                    pattern.child_text("DayOfWeekIndex").unwrap_or("First"),
                    days,
                    d,
                ) && month_matches(pattern, d)
            }
            _ => false,
        };
        if hit {
            let Some(s) = local_to_utc(tz, d.and_time(time)) else {
                d = match d.succ_opt() {
                    Some(n) => n,
                    None => break,
                };
                continue;
            };
            if s > until {
                break;
            }
            index += 1;
            out.push(Occurrence {
                index,
                start: s,
                end: s + duration,
                original_start: s,
            });
        }
        match d.succ_opt() {
            Some(n) => d = n,
            None => break,
        }
    }
    out
}

fn month_matches(pattern: &Element, d: NaiveDate) -> bool {
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
    let want = pattern.child_text("Month").unwrap_or("");
    MONTHS.get(d.month0() as usize) == Some(&want)
}

fn far_future() -> DateTime<Utc> {
    parse_time("2200-01-01T00:00:00Z").unwrap_or_else(Utc::now)
}

/// The occurrence with `index`, with its modified start/end applied.
pub(crate) fn occurrence(item: &Item, index: u32) -> Option<Occurrence> {
    let all = expand(item, far_future());
    let mut o = all.into_iter().find(|o| o.index == index)?;
    apply_override_times(item, &mut o);
    Some(o)
}

fn apply_override_times(item: &Item, o: &mut Occurrence) {
    if let Some(over) = item.modified_occurrences.get(&o.index) {
        for p in over {
            if p.name == "Start" {
                if let Some(t) = parse_time(&p.text) {
                    o.start = t;
                }
            }
            if p.name == "End" {
                if let Some(t) = parse_time(&p.text) {
                    o.end = t;
                }
            }
        }
    }
}

/// Live (not deleted) occurrences overlapping [from, to).
pub(crate) fn occurrences_in(
    item: &Item,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<Occurrence> {
    // A modified occurrence may have moved later than the window end; look a little further.
    let mut all = expand(item, to + Duration::days(366));
    all.retain(|o| !item.deleted_occurrences.contains(&o.index));
    for o in all.iter_mut() {
        apply_override_times(item, o);
    }
    // Exchange's CalendarView leaves out items that end before StartDate or start on or
    // after EndDate (CalendarView reference), so one ending exactly at StartDate is in.
    all.retain(|o| o.start < to && o.end >= from);
    all
}

fn occurrence_info(mb: &Mailbox, item: &Item, name: &str, o: &Occurrence) -> Element {
    let mut e = Element::new(name);
    e.push(id_element(
        &Id::Occurrence {
            mailbox: mb.key(),
            id: item.id,
            index: o.index,
        },
        item.seq,
    ));
    e.push(Element::with_text("Start", &fmt(&o.start)));
    e.push(Element::with_text("End", &fmt(&o.end)));
    e.push(Element::with_text("OriginalStart", &fmt(&o.original_start)));
    e
}

/// Server-computed calendar properties of a master/single item or of one occurrence.
pub(crate) fn computed_props(mb: &Mailbox, item: &Item, occ: Option<&Occurrence>) -> Vec<Element> {
    let mut out = Vec::new();
    if item.prop("UID").is_none() {
        out.push(Element::with_text(
            "UID",
            &format!("040000008200E00074C5B7101A82E008{:032X}", item.id),
        ));
    }
    if let Some(o) = occ {
        let kind = if item.modified_occurrences.contains_key(&o.index) {
            "Exception"
        } else {
            "Occurrence"
        };
        out.push(Element::with_text("RecurrenceId", &fmt(&o.original_start)));
        out.push(Element::with_text("OriginalStart", &fmt(&o.original_start)));
        out.push(Element::with_text("IsRecurring", "true"));
        out.push(Element::with_text("CalendarItemType", kind));
        return out;
    }
    // IsRecurring as the IsRecurring reference tabulates it for the organizer (the mailbox
    // owner, whose calendar this is): false on a single item and, as Exchange really
    // answers, false on the recurring master too; true on occurrences and exceptions.
    out.push(Element::with_text("IsRecurring", "false"));
    if item.prop("Recurrence").is_none() {
        out.push(Element::with_text("CalendarItemType", "Single"));
        return out;
    }
    out.push(Element::with_text("CalendarItemType", "RecurringMaster"));
    let bounded = item
        .prop("Recurrence")
        .and_then(|r| r.children.get(1))
        .is_some_and(|r| r.name != "NoEndRecurrence");
    let mut all = expand(item, far_future());
    for o in all.iter_mut() {
        apply_override_times(item, o);
    }
    let live: Vec<&Occurrence> = all
        .iter()
        .filter(|o| !item.deleted_occurrences.contains(&o.index))
        .collect();
    if let Some(first) = live.first() {
        out.push(occurrence_info(mb, item, "FirstOccurrence", first));
    }
    if bounded {
        if let Some(last) = live.last() {
            out.push(occurrence_info(mb, item, "LastOccurrence", last));
        }
    }
    let modified: Vec<&Occurrence> = all
        .iter()
        .filter(|o| item.modified_occurrences.contains_key(&o.index))
        .collect();
    if !modified.is_empty() {
        let mut m = Element::new("ModifiedOccurrences");
        for o in modified {
            m.push(occurrence_info(mb, item, "Occurrence", o));
        }
        out.push(m);
    }
    let deleted: Vec<&Occurrence> = all
        .iter()
        .filter(|o| item.deleted_occurrences.contains(&o.index))
        .collect();
    if !deleted.is_empty() {
        let mut d = Element::new("DeletedOccurrences");
        for o in deleted {
            let mut x = Element::new("DeletedOccurrence");
            x.push(Element::with_text("Start", &fmt(&o.original_start)));
            d.push(x);
        }
        out.push(d);
    }
    out
}

/// Whether day `day_of_month` of `d`'s month is `d`: a day the month lacks (the 29th in a
/// short February, the 31st in April) falls on its last day, as in Exchange and Outlook.
fn falls_on(d: NaiveDate, day_of_month: i64) -> bool {
    let last = d
        .with_day(1)
        .and_then(|first| first.checked_add_months(chrono::Months::new(1)))
        .and_then(|next| next.pred_opt())
        .map_or(31, |last| last.day() as i64);
    d.day() as i64 == day_of_month.min(last)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_day_the_month_lacks_falls_on_its_last_day() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap_or(NaiveDate::MIN);
        assert!(super::falls_on(d(2023, 2, 28), 29));
        assert!(!super::falls_on(d(2023, 2, 27), 29));
        assert!(super::falls_on(d(2024, 2, 29), 29));
        assert!(!super::falls_on(d(2024, 2, 28), 29));
        assert!(super::falls_on(d(2023, 4, 30), 31));
        assert!(super::falls_on(d(2023, 5, 15), 15));
    }

    use crate::exchange::xml::parse;

    fn master(rec: &str) -> Item {
        let r = parse(rec).unwrap();
        Item {
            kind: "CalendarItem".into(),
            props: vec![
                Element::with_text("Start", "2026-01-05T09:00:00Z"),
                Element::with_text("End", "2026-01-05T10:00:00Z"),
                r,
            ],
            ..Default::default()
        }
    }

    #[test]
    fn weekly_numbered_series() {
        let m = master("<Recurrence><WeeklyRecurrence><Interval>1</Interval><DaysOfWeek>Monday Wednesday</DaysOfWeek></WeeklyRecurrence><NumberedRecurrence><StartDate>2026-01-05</StartDate><NumberOfOccurrences>5</NumberOfOccurrences></NumberedRecurrence></Recurrence>");
        let all = expand(&m, far_future());
        let starts: Vec<String> = all.iter().map(|o| fmt(&o.start)).collect();
        assert_eq!(
            starts,
            vec![
                "2026-01-05T09:00:00Z",
                "2026-01-07T09:00:00Z",
                "2026-01-12T09:00:00Z",
                "2026-01-14T09:00:00Z",
                "2026-01-19T09:00:00Z"
            ]
        );
        assert_eq!(all[4].index, 5);
        assert_eq!(fmt(&all[0].end), "2026-01-05T10:00:00Z");
    }

    #[test]
    fn series_keeps_local_time_across_daylight_saving() {
        let mut m = master("<Recurrence><WeeklyRecurrence><Interval>1</Interval><DaysOfWeek>Monday</DaysOfWeek></WeeklyRecurrence><NumberedRecurrence><StartDate>2026-03-23</StartDate><NumberOfOccurrences>2</NumberOfOccurrences></NumberedRecurrence></Recurrence>");
        m.props[0] = Element::with_text("Start", "2026-03-23T08:00:00Z");
        m.props[1] = Element::with_text("End", "2026-03-23T09:00:00Z");
        let mut tz = Element::new("StartTimeZone");
        tz.set_attr("Id", "W. Europe Standard Time");
        m.props.push(tz);
        let starts: Vec<String> = expand(&m, far_future())
            .iter()
            .map(|o| fmt(&o.start))
            .collect();
        // 09:00 CET, then 09:00 CEST a week later.
        assert_eq!(starts, vec!["2026-03-23T08:00:00Z", "2026-03-30T07:00:00Z"]);
    }

    #[test]
    fn deleted_occurrences_are_not_in_views() {
        let mut m = master("<Recurrence><DailyRecurrence><Interval>2</Interval></DailyRecurrence><EndDateRecurrence><StartDate>2026-01-05</StartDate><EndDate>2026-01-15</EndDate></EndDateRecurrence></Recurrence>");
        m.deleted_occurrences.insert(2);
        let v = occurrences_in(
            &m,
            parse_time("2026-01-01T00:00:00Z").unwrap(),
            parse_time("2026-02-01T00:00:00Z").unwrap(),
        );
        let idx: Vec<u32> = v.iter().map(|o| o.index).collect();
        assert_eq!(idx, vec![1, 3, 4, 5, 6]);
    }
}
