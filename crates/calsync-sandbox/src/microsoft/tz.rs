//! Time zones Graph accepts: every Windows zone id of CLDR's windowsZones mapping (through
//! the `windows-timezones` crate, generated from CLDR) mapped to IANA for arithmetic, and
//! the IANA names those map to plus a few common extras. Anything else is
//! `TimeZoneNotSupportedException`.

use chrono_tz::Tz;
use windows_timezones::WindowsTimezone;

/// IANA names accepted besides the Windows table's targets.
const EXTRA_IANA: &[&str] = &[
    "Etc/GMT",
    "Europe/Zurich",
    "Europe/Amsterdam",
    "Europe/Madrid",
    "Europe/Rome",
    "Europe/Vienna",
    "Europe/Stockholm",
    "Europe/Oslo",
    "Europe/Copenhagen",
    "Europe/Brussels",
    "Europe/Dublin",
    "Europe/Lisbon",
    "Europe/Prague",
    "Europe/Helsinki",
    "Europe/Athens",
    "America/Toronto",
    "America/Vancouver",
    "Asia/Hong_Kong",
    "Asia/Kolkata",
    "Australia/Melbourne",
];

/// Resolves a Graph `timeZone` value. Windows ids are matched exactly, as Exchange
/// documents them; an IANA name only when it is the CLDR target of a Windows id or listed.
pub(crate) fn resolve(name: &str) -> Option<Tz> {
    if let Ok(w) = name.parse::<WindowsTimezone>() {
        return Some(Tz::from(w));
    }
    let tz: Tz = name.parse().ok()?;
    let listed = EXTRA_IANA.contains(&name) || WindowsTimezone::try_from(tz).is_ok_and(|w| w.tzdb_id() == name);
    listed.then_some(tz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cldr_windows_zone_resolves() {
        for name in [
            "Dateline Standard Time",
            "UTC-11",
            "Aleutian Standard Time",
            "Yukon Standard Time",
            "Magallanes Standard Time",
            "Sao Tome Standard Time",
            "Volgograd Standard Time",
            "South Sudan Standard Time",
            "Chatham Islands Standard Time",
            "Line Islands Standard Time",
            "W. Europe Standard Time",
            "UTC",
        ] {
            assert!(resolve(name).is_some(), "{name}");
        }
        assert_eq!(resolve("Tokyo Standard Time"), Some(chrono_tz::Asia::Tokyo));
        assert_eq!(resolve("Europe/Berlin"), Some(chrono_tz::Europe::Berlin));
        assert!(resolve("Mars Standard Time").is_none());
        assert!(resolve("Europe/Busingen").is_none(), "IANA names outside the list are refused");
    }
}
