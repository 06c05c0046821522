//! The zone a user's all-day events are whole days in. An all-day event is a span of dates,
//! but Exchange stores it as two instants with a zone, and Outlook shows it as all-day only
//! when those instants are midnights in the zone the owner looks from: written at UTC
//! midnight, a CRM holiday shows in Berlin as 01:00 to 01:00 across two days.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::iana_to_windows;

/// A zone whose midnights bound a user's all-day events, with the Windows id Exchange names
/// it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayZone {
    iana: Tz,
    windows: &'static str,
}

impl Default for DayZone {
    fn default() -> Self {
        DayZone::UTC
    }
}

impl DayZone {
    /// UTC: the dates as they are, for users whose zone is unknown.
    pub const UTC: DayZone = DayZone {
        iana: Tz::UTC,
        windows: "UTC",
    };

    /// The zone an IANA name (a CRM user's `TimeZoneSidKey`) stands for, when chrono-tz knows
    /// it and Exchange has a Windows id covering it; otherwise why not.
    pub fn from_iana(name: &str) -> Result<DayZone, String> {
        let name = name.trim();
        let iana: Tz = name
            .parse()
            .map_err(|_| format!("{name:?} is not an IANA time zone"))?;
        let windows = iana_to_windows(name)
            .ok_or_else(|| format!("Exchange has no Windows time zone for {name:?}"))?;
        Ok(DayZone { iana, windows })
    }

    /// The IANA name, as chrono-tz spells it.
    pub fn iana(&self) -> &'static str {
        self.iana.name()
    }

    /// The Windows zone id for EWS's `StartTimeZone`/`EndTimeZone` and Graph's
    /// `dateTimeTimeZone.timeZone`.
    pub fn windows(&self) -> &'static str {
        self.windows
    }

    /// The instant `day` begins in this zone. A day whose midnight a daylight-saving change
    /// skips begins when the clocks land (the first instant of that local day).
    pub fn midnight(&self, day: NaiveDate) -> DateTime<Utc> {
        let local = day.and_time(NaiveTime::MIN);
        // Zones skip at most a few hours; the first hour that exists is the day's start.
        (0..=24)
            .find_map(|hours| {
                self.iana
                    .from_local_datetime(&(local + Duration::hours(hours)))
                    .earliest()
            })
            .map_or_else(|| local.and_utc(), |t| t.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_crm_zone_names_its_windows_zone() {
        let berlin = DayZone::from_iana("Europe/Berlin").unwrap();
        assert_eq!(berlin.windows(), "W. Europe Standard Time");
        assert_eq!(berlin.iana(), "Europe/Berlin");
        assert_eq!(
            DayZone::from_iana(" America/Los_Angeles ")
                .unwrap()
                .windows(),
            "Pacific Standard Time"
        );
        assert_eq!(DayZone::from_iana("GMT").unwrap().windows(), "UTC");
        assert_eq!(DayZone::default(), DayZone::UTC);
    }

    #[test]
    fn an_unknown_zone_says_why() {
        let err = DayZone::from_iana("Mars/Olympus_Mons").unwrap_err();
        assert!(err.contains("not an IANA time zone"), "{err}");
        assert!(DayZone::from_iana("").is_err());
    }

    #[test]
    fn midnights_follow_the_zone_and_its_daylight_saving() {
        let berlin = DayZone::from_iana("Europe/Berlin").unwrap();
        // Summer (UTC+2) and winter (UTC+1): the day starts the evening before in UTC.
        assert_eq!(berlin.midnight(day(2026, 6, 6)), at("2026-06-05T22:00:00Z"));
        assert_eq!(berlin.midnight(day(2026, 1, 6)), at("2026-01-05T23:00:00Z"));
        let los_angeles = DayZone::from_iana("America/Los_Angeles").unwrap();
        assert_eq!(
            los_angeles.midnight(day(2026, 6, 6)),
            at("2026-06-06T07:00:00Z")
        );
        assert_eq!(
            DayZone::UTC.midnight(day(2026, 6, 6)),
            at("2026-06-06T00:00:00Z")
        );
    }

    #[test]
    fn a_day_without_a_midnight_starts_when_the_clocks_land() {
        // Santiago springs forward at midnight: 2026-09-06 starts at 01:00 local (UTC-3).
        let santiago = DayZone::from_iana("America/Santiago").unwrap();
        assert_eq!(
            santiago.midnight(day(2026, 9, 6)),
            at("2026-09-06T04:00:00Z")
        );
    }
}
