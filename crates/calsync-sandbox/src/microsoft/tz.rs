//! Time zones Graph accepts: Windows names (mapped to IANA for arithmetic) and a fixed list
//! of IANA names. Anything else is `TimeZoneNotSupportedException`.

use chrono_tz::Tz;

/// Windows zone → IANA zone (CLDR territory "001"), the zones calendar clients meet most.
const WINDOWS: &[(&str, &str)] = &[
    ("UTC", "UTC"),
    ("GMT Standard Time", "Europe/London"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("E. Europe Standard Time", "Europe/Chisinau"),
    ("FLE Standard Time", "Europe/Kiev"),
    ("GTB Standard Time", "Europe/Bucharest"),
    ("Russian Standard Time", "Europe/Moscow"),
    ("Turkey Standard Time", "Europe/Istanbul"),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("South Africa Standard Time", "Africa/Johannesburg"),
    ("Arabian Standard Time", "Asia/Dubai"),
    ("India Standard Time", "Asia/Calcutta"),
    ("China Standard Time", "Asia/Shanghai"),
    ("Singapore Standard Time", "Asia/Singapore"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
    ("Eastern Standard Time", "America/New_York"),
    ("Central Standard Time", "America/Chicago"),
    ("Mountain Standard Time", "America/Denver"),
    ("US Mountain Standard Time", "America/Phoenix"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("Alaskan Standard Time", "America/Anchorage"),
    ("Hawaiian Standard Time", "Pacific/Honolulu"),
    ("Atlantic Standard Time", "America/Halifax"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
    ("Argentina Standard Time", "America/Buenos_Aires"),
    ("Central Standard Time (Mexico)", "America/Mexico_City"),
];

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

/// Resolves a Graph `timeZone` value.
pub(crate) fn resolve(name: &str) -> Option<Tz> {
    if let Some((_, iana)) = WINDOWS.iter().find(|(w, _)| w.eq_ignore_ascii_case(name)) {
        return iana.parse().ok();
    }
    let listed = WINDOWS.iter().any(|(_, i)| *i == name) || EXTRA_IANA.contains(&name);
    if listed { name.parse().ok() } else { None }
}
