//! Windows ↔ IANA time zone names. Exchange names zones the Windows way (EWS's `TimeZone Id`,
//! Graph's `dateTimeTimeZone.timeZone`), the CRM and chrono-tz the IANA way.

mod day;
mod table;

pub use day::DayZone;
pub use table::{ALIASES, PRIMARY};

/// The IANA zone a Windows zone id stands for.
pub fn windows_to_iana(windows: &str) -> Option<&'static str> {
    PRIMARY
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(windows.trim()))
        .map(|(_, iana)| *iana)
}

/// The Windows zone id that covers an IANA zone.
pub fn iana_to_windows(iana: &str) -> Option<&'static str> {
    let iana = iana.trim();
    PRIMARY
        .iter()
        .chain(ALIASES)
        .find(|(_, i)| *i == iana)
        .map(|(w, _)| *w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_pairs() {
        assert_eq!(
            iana_to_windows("Europe/Berlin"),
            Some("W. Europe Standard Time")
        );
        assert_eq!(
            iana_to_windows("Europe/Vienna"),
            Some("W. Europe Standard Time")
        );
        assert_eq!(
            iana_to_windows("America/New_York"),
            Some("Eastern Standard Time")
        );
        assert_eq!(iana_to_windows("Asia/Kolkata"), Some("India Standard Time"));
        assert_eq!(iana_to_windows("Etc/UTC"), Some("UTC"));
        assert_eq!(windows_to_iana("Tokyo Standard Time"), Some("Asia/Tokyo"));
        assert_eq!(
            windows_to_iana("pacific standard time"),
            Some("America/Los_Angeles")
        );
        assert_eq!(windows_to_iana("Nowhere Standard Time"), None);
        assert_eq!(iana_to_windows("Mars/Olympus_Mons"), None);
    }

    #[test]
    fn every_primary_zone_round_trips() {
        for (windows, iana) in PRIMARY {
            assert_eq!(iana_to_windows(iana), Some(*windows));
            assert_eq!(windows_to_iana(windows), Some(*iana));
        }
    }
}
