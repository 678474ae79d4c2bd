//! iCalendar (RFC 5545) output: appointments as `VEVENT`s, a series as its master with the
//! rule and its exceptions (`RECURRENCE-ID`), cancelled occurrences as `EXDATE`s, and a
//! `VTIMEZONE` for every zone used. The content lines are written here and then read back and
//! written out by calcard, which checks them, folds long lines and derives the `VTIMEZONE`s from
//! the time zone database over the span the events use.

use calsync_domain::appointment::{AppointmentData, AppointmentStatus, ShowAs, Visibility, When};
use calsync_domain::recurrence::OriginalStart;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

/// One `VEVENT`: an appointment, a series master, or an exception of one.
#[derive(Debug, Clone)]
pub struct IcsEvent {
    /// Shared by a master and its exceptions; stable across feeds.
    pub uid: String,
    /// calsync's appointment id (`X-CALSYNC-ID`).
    pub calsync_id: String,
    pub data: AppointmentData,
    /// Bumped with every change (`SEQUENCE`).
    pub sequence: i64,
    pub last_modified: DateTime<Utc>,
    /// On an exception: the occurrence of the series it stands for.
    pub recurrence_id: Option<OriginalStart>,
    /// On a master: occurrences cancelled one by one, written as `EXDATE`s.
    pub cancelled: Vec<OriginalStart>,
}

#[derive(Debug, thiserror::Error)]
#[error("the calendar could not be written: {0}")]
pub struct IcsError(String);

/// A whole `VCALENDAR` named `name`, for a feed calendar apps subscribe to (`METHOD:PUBLISH`).
pub fn calendar(name: &str, events: &[IcsEvent], stamp: DateTime<Utc>) -> Result<String, IcsError> {
    let mut out = String::new();
    line(&mut out, "BEGIN:VCALENDAR");
    line(&mut out, "VERSION:2.0");
    line(&mut out, "PRODID:-//calsync//calsync ICS feed//EN");
    line(&mut out, "CALSCALE:GREGORIAN");
    line(&mut out, "METHOD:PUBLISH");
    line(&mut out, &format!("X-WR-CALNAME:{}", text(name)));
    // How often subscribers should fetch it again.
    line(&mut out, "REFRESH-INTERVAL;VALUE=DURATION:PT15M");
    line(&mut out, "X-PUBLISHED-TTL:PT15M");
    for e in events {
        vevent(&mut out, e, stamp);
    }
    line(&mut out, "END:VCALENDAR");
    let mut ical = calcard::icalendar::ICalendar::parse(&out).map_err(|e| IcsError(format!("{e:?}")))?;
    ical.add_missing_timezones();
    Ok(ical.to_string())
}

fn line(out: &mut String, l: &str) {
    out.push_str(l);
    out.push_str("\r\n");
}

/// A TEXT value, escaped (RFC 5545 §3.3.11).
fn text(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            ';' => o.push_str("\\;"),
            ',' => o.push_str("\\,"),
            '\n' => o.push_str("\\n"),
            '\r' => {}
            c => o.push(c),
        }
    }
    o
}

fn utc_stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

fn date(d: NaiveDate) -> String {
    d.format("%Y%m%d").to_string()
}

/// `NAME;TZID=zone:local`, or `NAME:…Z` in UTC.
fn instant(name: &str, t: DateTime<Utc>, tz: Tz) -> String {
    if tz == Tz::UTC {
        format!("{name}:{}", utc_stamp(t))
    } else {
        format!("{name};TZID={}:{}", tz.name(), t.with_timezone(&tz).format("%Y%m%dT%H%M%S"))
    }
}

/// An occurrence start as `RECURRENCE-ID` or `EXDATE` writes it, in the series' own form.
fn occurrence(name: &str, o: OriginalStart, tz: Tz) -> String {
    match o {
        OriginalStart::At(t) => instant(name, t, tz),
        OriginalStart::Date(d) => format!("{name};VALUE=DATE:{}", date(d)),
    }
}

fn vevent(out: &mut String, e: &IcsEvent, stamp: DateTime<Utc>) {
    let d = &e.data;
    let tz = d.time_zone;
    line(out, "BEGIN:VEVENT");
    line(out, &format!("UID:{}", text(&e.uid)));
    line(out, &format!("DTSTAMP:{}", utc_stamp(stamp)));
    line(out, &format!("LAST-MODIFIED:{}", utc_stamp(e.last_modified)));
    line(out, &format!("SEQUENCE:{}", e.sequence.max(0)));
    if let Some(o) = e.recurrence_id {
        line(out, &occurrence("RECURRENCE-ID", o, tz));
    }
    match d.when {
        When::Timed { start, end } => {
            line(out, &instant("DTSTART", start, tz));
            line(out, &instant("DTEND", end, tz));
        }
        When::AllDay { start, end } => {
            line(out, &format!("DTSTART;VALUE=DATE:{}", date(start)));
            line(out, &format!("DTEND;VALUE=DATE:{}", date(end)));
        }
    }
    if e.recurrence_id.is_none() {
        for r in &d.recurrence {
            line(out, r);
        }
        for o in &e.cancelled {
            line(out, &occurrence("EXDATE", *o, tz));
        }
    }
    // A private appointment says only that the time is taken: the URL of a feed travels.
    if d.visibility == Visibility::Private {
        line(out, "SUMMARY:Busy");
        line(out, "CLASS:PRIVATE");
    } else {
        line(out, &format!("SUMMARY:{}", text(&d.title)));
        if !d.location.is_empty() {
            line(out, &format!("LOCATION:{}", text(&d.location)));
        }
        if !d.description.is_empty() {
            line(out, &format!("DESCRIPTION:{}", text(&d.description)));
        }
        line(out, "CLASS:PUBLIC");
    }
    let status = match d.status {
        AppointmentStatus::Confirmed => "CONFIRMED",
        AppointmentStatus::Tentative => "TENTATIVE",
        AppointmentStatus::Cancelled => "CANCELLED",
    };
    line(out, &format!("STATUS:{status}"));
    line(out, if d.show_as == ShowAs::Free { "TRANSP:TRANSPARENT" } else { "TRANSP:OPAQUE" });
    line(out, &format!("X-CALSYNC-ID:{}", text(&e.calsync_id)));
    line(out, "END:VEVENT");
}

#[cfg(test)]
mod tests {
    use super::*;
    use calsync_domain::appointment::AppointmentInput;

    fn data(title: &str, start: &str, end: &str, tz: &str, all_day: bool) -> AppointmentData {
        AppointmentData::create(AppointmentInput {
            title: Some(title.into()),
            start: Some(start.into()),
            end: Some(end.into()),
            time_zone: Some(tz.into()),
            all_day: Some(all_day),
            ..Default::default()
        })
        .unwrap()
    }

    fn event(uid: &str, d: AppointmentData) -> IcsEvent {
        IcsEvent {
            uid: uid.into(),
            calsync_id: uid.into(),
            data: d,
            sequence: 1,
            last_modified: "2026-11-30T10:00:00Z".parse().unwrap(),
            recurrence_id: None,
            cancelled: Vec::new(),
        }
    }

    fn unfolded(ics: &str) -> String {
        ics.replace("\r\n ", "").replace("\r\n", "\n")
    }

    #[test]
    fn zones_get_a_vtimezone_and_local_times() {
        let mut series = event(
            "s1",
            data("Stand-up", "2026-12-07T09:00:00+01:00", "2026-12-07T09:15:00+01:00", "Europe/Berlin", false),
        );
        series.data.recurrence = vec!["RRULE:FREQ=WEEKLY;COUNT=5".into()];
        series.cancelled = vec![OriginalStart::At("2026-12-14T08:00:00Z".parse().unwrap())];
        let mut moved = event(
            "s1",
            data("Stand-up (late)", "2026-12-21T10:00:00+01:00", "2026-12-21T10:15:00+01:00", "Europe/Berlin", false),
        );
        moved.recurrence_id = Some(OriginalStart::At("2026-12-21T08:00:00Z".parse().unwrap()));
        let day = event("d1", data("Offsite, day 1; bring \\ laptops", "2026-12-24", "2026-12-25", "UTC", true));
        let ics = unfolded(&calendar("Ann's appointments", &[series, moved, day], Utc::now()).unwrap());
        assert!(ics.contains("BEGIN:VTIMEZONE\nTZID:Europe/Berlin\n"), "{ics}");
        assert!(ics.contains("DTSTART;TZID=Europe/Berlin:20261207T090000\n"), "{ics}");
        assert!(ics.contains("RRULE:FREQ=WEEKLY;COUNT=5\n"), "{ics}");
        assert!(ics.contains("EXDATE;TZID=Europe/Berlin:20261214T090000\n"), "{ics}");
        assert!(ics.contains("RECURRENCE-ID;TZID=Europe/Berlin:20261221T090000\n"), "{ics}");
        assert!(ics.contains("DTSTART;VALUE=DATE:20261224\n") && ics.contains("DTEND;VALUE=DATE:20261225\n"), "{ics}");
        assert!(ics.contains("SUMMARY:Offsite\\, day 1\\; bring \\\\ laptops\n"), "{ics}");
        assert!(ics.contains("X-WR-CALNAME:Ann's appointments\n"), "{ics}");
        assert_eq!(ics.matches("BEGIN:VEVENT").count(), 3);
        assert_eq!(ics.matches("BEGIN:VTIMEZONE").count(), 1, "one per zone used (UTC needs none)");
    }

    #[test]
    fn private_appointments_say_only_busy() {
        let mut d = data("Dentist", "2026-12-03T08:00:00Z", "2026-12-03T09:00:00Z", "UTC", false);
        d.visibility = Visibility::Private;
        d.location = "Main St 1".into();
        let ics = unfolded(&calendar("x", &[event("p", d)], Utc::now()).unwrap());
        assert!(ics.contains("SUMMARY:Busy\n") && ics.contains("CLASS:PRIVATE\n"), "{ics}");
        assert!(!ics.contains("Dentist") && !ics.contains("Main St"), "{ics}");
    }

    #[test]
    fn long_lines_are_folded() {
        let d = data(&"word ".repeat(40), "2026-12-03T08:00:00Z", "2026-12-03T09:00:00Z", "UTC", false);
        let ics = calendar("x", &[event("l", d)], Utc::now()).unwrap();
        assert!(ics.split("\r\n").all(|l| l.len() <= 75), "{ics}");
    }
}
