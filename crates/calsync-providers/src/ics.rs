//! iCalendar (RFC 5545) output: appointments as `VEVENT`s, a series as its master with the
//! rule and its exceptions (`RECURRENCE-ID`), cancelled occurrences as `EXDATE`s, and a
//! `VTIMEZONE` for every zone used. The content lines are written here and then read back and
//! written out by calcard, which checks them, folds long lines and derives the `VTIMEZONE`s from
//! the time zone database over the span the events use.

use calsync_domain::appointment::{
    AppointmentData, AppointmentStatus, ResponseStatus, ShowAs, Visibility, When, local_midnight,
};
use calsync_domain::recurrence::OriginalStart;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

/// One `VEVENT`: an appointment, a series master, or an exception of one.
#[derive(Debug, Clone)]
pub struct IcsEvent {
    /// Shared by a master and its exceptions; stable across feeds.
    pub uid: String,
    /// calsync's appointment id (`X-CALSYNC-ID`); empty on an event calsync did not make.
    pub calsync_id: String,
    pub data: AppointmentData,
    /// Bumped with every change (`SEQUENCE`).
    pub sequence: i64,
    pub last_modified: DateTime<Utc>,
    /// On an exception: the occurrence of the series it stands for, and the series' zone (the
    /// form `RECURRENCE-ID` takes is the series' `DTSTART`'s, whatever zone the exception has).
    pub recurrence_id: Option<(OriginalStart, Tz)>,
    /// On a master: occurrences cancelled one by one, written as `EXDATE`s.
    pub cancelled: Vec<OriginalStart>,
}

#[derive(Debug, thiserror::Error)]
#[error("the calendar could not be written: {0}")]
pub struct IcsError(String);

/// A whole `VCALENDAR` named `name`, for a feed calendar apps subscribe to (`METHOD:PUBLISH`).
pub fn calendar(name: &str, events: &[IcsEvent], stamp: DateTime<Utc>) -> Result<String, IcsError> {
    let name = format!("X-WR-CALNAME:{}", text(name));
    let header = [
        "PRODID:-//calsync//calsync ICS feed//EN",
        "METHOD:PUBLISH",
        name.as_str(),
        // How often subscribers should fetch it again.
        "REFRESH-INTERVAL;VALUE=DURATION:PT15M",
        "X-PUBLISHED-TTL:PT15M",
    ];
    write(&header, events, stamp, true)
}

/// One calendar object resource for a CalDAV server (RFC 4791 §4.1): a single event, or a series
/// as its master and its overrides, all under the master's UID. Written for the user's own
/// calendar: private ones in full (marked `CLASS:PRIVATE`).
pub fn resource(master: &IcsEvent, overrides: &[IcsEvent], stamp: DateTime<Utc>) -> Result<String, IcsError> {
    if let Some(o) = overrides.iter().find(|o| o.uid != master.uid || o.recurrence_id.is_none()) {
        return Err(IcsError(format!("{:?} is not an override of {:?}", o.uid, master.uid)));
    }
    let events: Vec<IcsEvent> = std::iter::once(master.clone()).chain(overrides.iter().cloned()).collect();
    write(&["PRODID:-//calsync//calsync//EN"], &events, stamp, false)
}

/// A `VCALENDAR` of `events` after `header`, read back and written out by calcard with a
/// `VTIMEZONE` for every zone used.
fn write(header: &[&str], events: &[IcsEvent], stamp: DateTime<Utc>, redact_private: bool) -> Result<String, IcsError> {
    let mut out = String::new();
    line(&mut out, "BEGIN:VCALENDAR");
    line(&mut out, "VERSION:2.0");
    line(&mut out, "CALSCALE:GREGORIAN");
    for h in header {
        line(&mut out, h);
    }
    for e in events {
        vevent(&mut out, e, stamp, redact_private);
    }
    line(&mut out, "END:VCALENDAR");
    finish(&out)
}

/// A `VCALENDAR` text read back and written out by calcard: checked, folded, with a `VTIMEZONE`
/// for every zone its events use.
pub(crate) fn finish(text: &str) -> Result<String, IcsError> {
    let mut ical = calcard::icalendar::ICalendar::parse(text).map_err(|e| IcsError(format!("{e:?}")))?;
    ical.add_missing_timezones();
    Ok(ical.to_string())
}

/// One event's `VEVENT` lines for a user's own calendar (private content in full).
pub(crate) fn vevent_text(e: &IcsEvent, stamp: DateTime<Utc>) -> String {
    let mut out = String::new();
    vevent(&mut out, e, stamp, false);
    out
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

/// An `RRULE` line with `UNTIL` in the form RFC 5545 §3.3.10 asks for: a date for an all-day
/// series, a UTC date-time for a timed one (a date means the end of that day in the series'
/// zone; a floating time is read in it). Other lines pass unchanged.
pub fn rfc_rule(line: &str, all_day: bool, tz: Tz) -> String {
    let Some(body) = line.strip_prefix("RRULE:").or_else(|| line.strip_prefix("rrule:")) else {
        return line.to_owned();
    };
    let parts: Vec<String> = body
        .split(';')
        .map(|part| {
            let Some((k, v)) = part.split_once('=') else { return part.to_owned() };
            if !k.eq_ignore_ascii_case("UNTIL") {
                return part.to_owned();
            }
            let v = v.trim();
            let date = NaiveDate::parse_from_str(&v[..v.len().min(8)], "%Y%m%d").ok();
            let local = chrono::NaiveDateTime::parse_from_str(v.trim_end_matches(['Z', 'z']), "%Y%m%dT%H%M%S").ok();
            let until = match (all_day, v.len(), date, local) {
                (true, _, Some(d), _) => return format!("UNTIL={}", d.format("%Y%m%d")),
                // The last second of that day in the zone, as the domain reads a date UNTIL.
                (false, 8, Some(d), _) => {
                    Some(local_midnight(d + chrono::Duration::days(1), tz) - chrono::Duration::seconds(1))
                }
                (false, _, _, Some(n)) if v.ends_with(['Z', 'z']) => Some(n.and_utc()),
                (false, _, _, Some(n)) => local_instant(tz, n).ok(),
                _ => None,
            };
            match until {
                Some(u) => format!("UNTIL={}", utc_stamp(u)),
                None => part.to_owned(),
            }
        })
        .collect();
    format!("RRULE:{}", parts.join(";"))
}

fn vevent(out: &mut String, e: &IcsEvent, stamp: DateTime<Utc>, redact_private: bool) {
    let d = &e.data;
    let tz = d.time_zone;
    line(out, "BEGIN:VEVENT");
    line(out, &format!("UID:{}", text(&e.uid)));
    line(out, &format!("DTSTAMP:{}", utc_stamp(stamp)));
    line(out, &format!("LAST-MODIFIED:{}", utc_stamp(e.last_modified)));
    line(out, &format!("SEQUENCE:{}", e.sequence.max(0)));
    if let Some((o, series_tz)) = e.recurrence_id {
        line(out, &occurrence("RECURRENCE-ID", o, series_tz));
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
            line(out, &rfc_rule(r, d.is_all_day(), tz));
        }
        for o in &e.cancelled {
            line(out, &occurrence("EXDATE", *o, tz));
        }
    }
    // In a feed, a private appointment says only that the time is taken: its URL travels.
    let private = d.visibility == Visibility::Private;
    if private && redact_private {
        line(out, "SUMMARY:Busy");
    } else {
        line(out, &format!("SUMMARY:{}", text(&d.title)));
        if !d.location.is_empty() {
            line(out, &format!("LOCATION:{}", text(&d.location)));
        }
        if !d.description.is_empty() {
            line(out, &format!("DESCRIPTION:{}", text(&d.description)));
        }
    }
    line(out, if private { "CLASS:PRIVATE" } else { "CLASS:PUBLIC" });
    if !redact_private {
        // The user's own calendar: guests travel, and the server is told not to mail them
        // (RFC 6638 SCHEDULE-AGENT=CLIENT) unless the appointment asks for invitations.
        if let Some(o) = &d.organizer {
            line(out, &format!("ORGANIZER:mailto:{o}"));
        }
        let agent = if d.send_invitations { "" } else { ";SCHEDULE-AGENT=CLIENT" };
        for a in &d.attendees {
            let partstat = match a.response {
                ResponseStatus::Accepted => "ACCEPTED",
                ResponseStatus::Declined => "DECLINED",
                ResponseStatus::Tentative => "TENTATIVE",
                ResponseStatus::NeedsAction => "NEEDS-ACTION",
            };
            let cn = if a.name.is_empty() { String::new() } else { format!(";CN=\"{}\"", a.name.replace('"', "'")) };
            line(out, &format!("ATTENDEE{cn};PARTSTAT={partstat}{agent}:mailto:{}", a.email));
        }
    }
    let status = match d.status {
        AppointmentStatus::Confirmed => "CONFIRMED",
        AppointmentStatus::Tentative => "TENTATIVE",
        AppointmentStatus::Cancelled => "CANCELLED",
    };
    line(out, &format!("STATUS:{status}"));
    // A cancelled one takes no time, also for subscribers that do not read STATUS.
    let free = d.show_as == ShowAs::Free || d.status == AppointmentStatus::Cancelled;
    line(out, if free { "TRANSP:TRANSPARENT" } else { "TRANSP:OPAQUE" });
    if !e.calsync_id.is_empty() {
        line(out, &format!("X-CALSYNC-ID:{}", text(&e.calsync_id)));
    }
    line(out, "END:VEVENT");
}

/// One `VEVENT` read from a file, as calsync's appointment input.
#[derive(Debug, Clone)]
pub struct ParsedEvent {
    pub uid: String,
    /// On an override of one occurrence of a series.
    pub recurrence_id: Option<OriginalStart>,
    pub input: calsync_domain::appointment::AppointmentInput,
    /// `SUMMARY` or the UID, for messages.
    pub label: String,
    /// The appointment id calsync stamped on it (`X-CALSYNC-ID`), when calsync wrote it.
    pub calsync_id: Option<String>,
    /// `LAST-MODIFIED`, when it says.
    pub last_modified: Option<DateTime<Utc>>,
    /// `SEQUENCE` (0 when absent).
    pub sequence: i64,
}

/// One CalDAV calendar object resource, read: its UID, the master (absent when the resource
/// holds only overrides, as an invitation to single occurrences does) and the overrides.
#[derive(Debug, Clone)]
pub struct Resource {
    pub uid: String,
    pub master: Option<ParsedEvent>,
    pub overrides: Vec<ParsedEvent>,
}

/// Reads a calendar object resource (see [`resource`]); any event of it that cannot be read
/// makes the whole resource unreadable, with the reason.
pub fn parse_resource(text: &str, floating: Option<Tz>) -> Result<Resource, IcsError> {
    let mut master = None;
    let mut overrides = Vec::new();
    for e in parse_events(text, floating)? {
        let e = e.map_err(|(what, why)| IcsError(format!("{what}: {why}")))?;
        if e.recurrence_id.is_some() {
            overrides.push(e);
        } else if master.is_some() {
            return Err(IcsError("two events without RECURRENCE-ID in one resource".into()));
        } else {
            master = Some(e);
        }
    }
    let uid =
        master.as_ref().or(overrides.first()).map(|e| e.uid.clone()).ok_or_else(|| IcsError("no VEVENT".into()))?;
    if overrides.iter().any(|o| o.uid != uid) {
        return Err(IcsError("events with different UIDs in one resource".into()));
    }
    Ok(Resource { uid, master, overrides })
}

/// One `VEVENT` of a file: the appointment it becomes, or `(summary or UID, why not)`.
pub type Read = Result<ParsedEvent, (String, String)>;

/// Reads every `VEVENT` of an iCalendar file. Times with a `TZID` are read in that zone (IANA,
/// Windows or a zone the file defines), UTC ones as instants, and floating ones (no zone at all)
/// in `floating` or else the file's `X-WR-TIMEZONE`: never as UTC. Events that cannot become
/// appointments come back as `Err((label, reason))` beside the others.
pub fn parse_events(text: &str, floating: Option<Tz>) -> Result<Vec<Read>, IcsError> {
    use calcard::icalendar::{ICalendarComponentType, ICalendarProperty};
    let mut parser = calcard::Parser::new(text);
    let mut out = Vec::new();
    let mut calendars = 0;
    loop {
        match parser.entry() {
            calcard::Entry::ICalendar(ical) => {
                calendars += 1;
                let resolver = ical.build_owned_tz_resolver();
                let wr_zone = ical
                    .components
                    .first()
                    .and_then(|root| {
                        root.entries.iter().find(|e| e.name.as_str().eq_ignore_ascii_case("X-WR-TIMEZONE"))
                    })
                    .and_then(|e| e.values.first().and_then(|v| v.as_text()))
                    .and_then(|z| z.trim().parse::<Tz>().ok());
                let floating = floating.or(wr_zone);
                for c in ical.components.iter().filter(|c| c.component_type == ICalendarComponentType::VEvent) {
                    let label = c
                        .property(&ICalendarProperty::Summary)
                        .and_then(|e| e.values.first().and_then(|v| v.as_text()))
                        .or(c.uid())
                        .unwrap_or("an event without UID")
                        .to_owned();
                    out.push(read_event(c, &resolver, floating).map_err(|why| (label, why)));
                }
            }
            calcard::Entry::Eof => break,
            calcard::Entry::InvalidLine(_) | calcard::Entry::VCard(_) => continue,
            other => return Err(IcsError(format!("{other:?}"))),
        }
    }
    if calendars == 0 {
        return Err(IcsError("no VCALENDAR in the file".into()));
    }
    Ok(out)
}

/// A date or date-time property value, resolved: `Ok(None)` when it is absent.
enum Moment {
    Date(NaiveDate),
    /// The instant and the zone it was given in (UTC for `Z` and fixed offsets).
    At(DateTime<Utc>, Tz),
}

fn moment(
    e: &calcard::icalendar::ICalendarEntry,
    v: &calcard::icalendar::ICalendarValue,
    resolver: &calcard::icalendar::timezone::TzResolver<String>,
    floating: Option<Tz>,
) -> Result<Moment, String> {
    use calcard::common::timezone::Tz as CTz;
    use calcard::icalendar::ICalendarParameterName;
    let p = v.as_partial_date_time().ok_or_else(|| format!("{} is not a date or date-time", e.name.as_str()))?;
    if p.hour.is_none() {
        let d = NaiveDate::from_ymd_opt(
            i32::from(p.year.unwrap_or(0)),
            u32::from(p.month.unwrap_or(0)),
            u32::from(p.day.unwrap_or(0)),
        )
        .ok_or_else(|| format!("{} is not a valid date", e.name.as_str()))?;
        return Ok(Moment::Date(d));
    }
    let tzid = e.parameter(&ICalendarParameterName::Tzid).and_then(|t| t.as_text());
    let dt = p.to_date_time().ok_or_else(|| format!("{} is not a valid date-time", e.name.as_str()))?;
    if let Some(offset) = dt.offset {
        let at = chrono::TimeZone::from_local_datetime(&offset, &dt.date_time)
            .single()
            .ok_or_else(|| format!("{} is not a valid date-time", e.name.as_str()))?;
        return Ok(Moment::At(at.with_timezone(&Utc), Tz::UTC));
    }
    let zone = match tzid {
        Some(name) => match resolver.resolve(name) {
            Some(CTz::Tz(z)) => z,
            Some(CTz::Fixed(off)) => {
                let at = chrono::TimeZone::from_local_datetime(&off, &dt.date_time)
                    .single()
                    .ok_or_else(|| format!("{} is not a valid date-time", e.name.as_str()))?;
                return Ok(Moment::At(at.with_timezone(&Utc), Tz::UTC));
            }
            _ => return Err(format!("unknown time zone {name:?}")),
        },
        None => floating.ok_or_else(|| {
            format!("{} has a floating time (no zone); give the zone to read it in (--time-zone)", e.name.as_str())
        })?,
    };
    Ok(Moment::At(local_instant(zone, dt.date_time)?, zone))
}

/// A local time in `zone`: the earlier one when clocks go back; one that a spring-forward skips
/// is read with the offset before the gap, as RFC 5545 §3.3.5 says (02:30 becomes 03:30).
pub(crate) fn local_instant(zone: Tz, local: chrono::NaiveDateTime) -> Result<DateTime<Utc>, String> {
    use chrono::TimeZone;
    if let Some(t) = zone.from_local_datetime(&local).earliest() {
        return Ok(t.with_timezone(&Utc));
    }
    let before = zone
        .from_local_datetime(&(local - chrono::Duration::hours(3)))
        .earliest()
        .ok_or_else(|| format!("{local} does not exist in {}", zone.name()))?;
    let offset = chrono::Offset::fix(before.offset());
    offset
        .from_local_datetime(&local)
        .single()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("{local} does not exist in {}", zone.name()))
}

fn read_event(
    c: &calcard::icalendar::ICalendarComponent,
    resolver: &calcard::icalendar::timezone::TzResolver<String>,
    floating: Option<Tz>,
) -> Result<ParsedEvent, String> {
    use calcard::icalendar::{
        ICalendarClassification, ICalendarProperty, ICalendarStatus, ICalendarTransparency, ICalendarValue,
    };
    let uid = c.uid().filter(|u| !u.trim().is_empty()).ok_or("no UID")?.to_owned();
    let text_of = |p: ICalendarProperty| {
        c.property(&p).and_then(|e| e.values.first().and_then(|v| v.as_text())).unwrap_or_default().to_owned()
    };
    let first = |p: ICalendarProperty| -> Result<Option<Moment>, String> {
        match c.property(&p) {
            Some(e) => match e.values.first() {
                Some(v) => moment(e, v, resolver, floating).map(Some),
                None => Ok(None),
            },
            None => Ok(None),
        }
    };
    let start = first(ICalendarProperty::Dtstart)?.ok_or("no DTSTART")?;
    let duration = c.property(&ICalendarProperty::Duration).and_then(|e| match e.values.first() {
        Some(ICalendarValue::Duration(d)) => {
            let secs = i64::from(d.weeks) * 604_800
                + i64::from(d.days) * 86_400
                + i64::from(d.hours) * 3600
                + i64::from(d.minutes) * 60
                + i64::from(d.seconds);
            Some(if d.neg { -secs } else { secs })
        }
        _ => None,
    });
    let end = first(ICalendarProperty::Dtend)?;
    let (start_s, end_s, zone, all_day) = match (start, end) {
        (Moment::Date(s), Some(Moment::Date(e))) => (s.to_string(), e.to_string(), Tz::UTC, true),
        (Moment::Date(s), None) => {
            let days = duration.map_or(1, |secs| (secs / 86_400).max(1));
            (s.to_string(), (s + chrono::Duration::days(days)).to_string(), Tz::UTC, true)
        }
        (Moment::At(s, zone), Some(Moment::At(e, _))) => (s.to_rfc3339(), e.to_rfc3339(), zone, false),
        (Moment::At(s, zone), None) => {
            let secs = duration.ok_or("no DTEND or DURATION: a timed event needs an end")?;
            let e = s + chrono::Duration::seconds(secs);
            (s.to_rfc3339(), e.to_rfc3339(), zone, false)
        }
        _ => return Err("DTSTART and DTEND mix a date with a date-time".into()),
    };
    let mut recurrence = Vec::new();
    for e in c.properties(&ICalendarProperty::Rrule) {
        if let Some(ICalendarValue::RecurrenceRule(r)) = e.values.first() {
            // calcard writes UNTIL back as it was read: a floating one is read in the series' zone.
            recurrence.push(rfc_rule(&format!("RRULE:{r}"), all_day, zone));
        }
    }
    for e in c.properties(&ICalendarProperty::Exdate) {
        for v in &e.values {
            recurrence.push(match moment(e, v, resolver, Some(zone))? {
                Moment::Date(d) => format!("EXDATE;VALUE=DATE:{}", date(d)),
                Moment::At(t, _) => format!("EXDATE:{}", utc_stamp(t)),
            });
        }
    }
    if c.has_property(&ICalendarProperty::Rdate) {
        return Err(
            "RDATE is not supported (Outlook cannot hold extra dates); import them as appointments of their own".into(),
        );
    }
    // A floating RECURRENCE-ID is in the series' zone, which an override shares with its DTSTART.
    let recurrence_id = match c.property(&ICalendarProperty::RecurrenceId) {
        Some(e) => {
            if e.parameter(&calcard::icalendar::ICalendarParameterName::Range).is_some() {
                return Err("RANGE=THISANDFUTURE overrides are not supported; split the series instead".into());
            }
            match e.values.first().map(|v| moment(e, v, resolver, Some(zone))).transpose()? {
                Some(Moment::Date(d)) => Some(OriginalStart::Date(d)),
                Some(Moment::At(t, _)) => Some(OriginalStart::At(t)),
                None => None,
            }
        }
        None => None,
    };
    let status = match c.status() {
        Some(ICalendarStatus::Tentative) => "tentative",
        Some(ICalendarStatus::Cancelled) => "cancelled",
        _ => "confirmed",
    };
    let private = c.property(&ICalendarProperty::Class).is_some_and(|e| {
        matches!(
            e.values.first(),
            Some(ICalendarValue::Classification(
                ICalendarClassification::Private | ICalendarClassification::Confidential
            ))
        )
    });
    let free = matches!(c.transparency(), Some(ICalendarTransparency::Transparent));
    let attendees = c
        .properties(&ICalendarProperty::Attendee)
        .filter_map(|e| {
            use calcard::icalendar::{ICalendarParameterName, ICalendarParameterValue, ICalendarParticipationStatus};
            let address = e.values.first().and_then(|v| v.as_text())?;
            let email = address.strip_prefix("mailto:").or_else(|| address.strip_prefix("MAILTO:"))?.trim();
            // An address calsync could not keep is left out rather than making the event unreadable.
            if !email.contains('@') || email.contains(char::is_whitespace) || email.len() > 320 {
                return None;
            }
            let name = e.parameter(&ICalendarParameterName::Cn).and_then(|v| v.as_text()).map(str::to_owned);
            let response = match e.parameter(&ICalendarParameterName::Partstat) {
                Some(ICalendarParameterValue::Partstat(ICalendarParticipationStatus::Accepted)) => "accepted",
                Some(ICalendarParameterValue::Partstat(ICalendarParticipationStatus::Declined)) => "declined",
                Some(ICalendarParameterValue::Partstat(ICalendarParticipationStatus::Tentative)) => "tentative",
                _ => "needs_action",
            };
            Some(calsync_domain::appointment::AttendeeInput {
                email: email.to_ascii_lowercase(),
                name,
                response: Some(response.to_owned()),
            })
        })
        .collect::<Vec<_>>();
    let title = text_of(ICalendarProperty::Summary);
    let input = calsync_domain::appointment::AppointmentInput {
        title: Some(if title.trim().is_empty() { "(no title)".to_owned() } else { title.clone() }),
        description: Some(text_of(ICalendarProperty::Description)),
        location: Some(text_of(ICalendarProperty::Location)),
        start: Some(start_s),
        end: Some(end_s),
        time_zone: Some(zone.name().to_owned()),
        all_day: Some(all_day),
        status: Some(status.to_owned()),
        visibility: Some(if private { "private" } else { "default" }.to_owned()),
        show_as: Some(if free { "free" } else { "busy" }.to_owned()),
        recurrence: (recurrence_id.is_none()).then_some(recurrence),
        attendees: Some(attendees),
        ..Default::default()
    };
    let calsync_id = c
        .entries
        .iter()
        .find(|e| e.name.as_str().eq_ignore_ascii_case("X-CALSYNC-ID"))
        .and_then(|e| e.values.first().and_then(|v| v.as_text()))
        .map(str::to_owned);
    let last_modified = match first(ICalendarProperty::LastModified) {
        Ok(Some(Moment::At(t, _))) => Some(t),
        _ => None,
    };
    let sequence = c
        .property(&ICalendarProperty::Sequence)
        .and_then(|e| e.values.first())
        .and_then(|v| match v {
            ICalendarValue::Integer(n) => Some(*n),
            other => other.as_text().and_then(|t| t.trim().parse().ok()),
        })
        .unwrap_or(0);
    Ok(ParsedEvent {
        label: if title.is_empty() { uid.clone() } else { title },
        uid,
        recurrence_id,
        input,
        calsync_id,
        last_modified,
        sequence,
    })
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
        moved.recurrence_id =
            Some((OriginalStart::At("2026-12-21T08:00:00Z".parse().unwrap()), chrono_tz::Europe::Berlin));
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
    fn until_takes_the_form_of_dtstart() {
        let (timed, day) = (false, true);
        let berlin = chrono_tz::Europe::Berlin;
        assert_eq!(
            rfc_rule("RRULE:FREQ=WEEKLY;UNTIL=20270131", timed, berlin),
            "RRULE:FREQ=WEEKLY;UNTIL=20270131T225959Z"
        );
        assert_eq!(
            rfc_rule("RRULE:FREQ=WEEKLY;UNTIL=20270131T090000", timed, berlin),
            "RRULE:FREQ=WEEKLY;UNTIL=20270131T080000Z"
        );
        assert_eq!(
            rfc_rule("RRULE:FREQ=WEEKLY;UNTIL=20270131T080000Z", timed, berlin),
            "RRULE:FREQ=WEEKLY;UNTIL=20270131T080000Z"
        );
        assert_eq!(
            rfc_rule("RRULE:FREQ=DAILY;UNTIL=20270131T000000Z;COUNT=3", day, Tz::UTC),
            "RRULE:FREQ=DAILY;UNTIL=20270131;COUNT=3"
        );
        assert_eq!(rfc_rule("EXDATE:20270131T080000Z", timed, berlin), "EXDATE:20270131T080000Z");
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
    fn files_are_read_back_into_appointment_input() {
        let file = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nX-WR-TIMEZONE:Europe/Paris\r\n\
BEGIN:VEVENT\r\nUID:a1\r\nSUMMARY:Weekly\\, with a comma\r\nDTSTART;TZID=W. Europe Standard Time:20261207T090000\r\n\
DTEND;TZID=W. Europe Standard Time:20261207T093000\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\n\
EXDATE;TZID=W. Europe Standard Time:20261214T090000\r\nCLASS:PRIVATE\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:a1\r\nRECURRENCE-ID;TZID=W. Europe Standard Time:20261221T090000\r\nSUMMARY:Moved\r\n\
DTSTART;TZID=W. Europe Standard Time:20261221T110000\r\nDURATION:PT45M\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:f1\r\nSUMMARY:Floating\r\nDTSTART:20261208T080000\r\nDTEND:20261208T090000\r\nTRANSP:TRANSPARENT\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:d1\r\nSUMMARY:Holiday\r\nDTSTART;VALUE=DATE:20261224\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:r1\r\nSUMMARY:Extra dates\r\nDTSTART:20261208T080000Z\r\nDTEND:20261208T090000Z\r\n\
RRULE:FREQ=DAILY;COUNT=2\r\nRDATE:20261220T080000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let events = parse_events(file, None).unwrap();
        assert_eq!(events.len(), 5);
        let weekly = events[0].as_ref().unwrap();
        assert_eq!(weekly.input.title.as_deref(), Some("Weekly, with a comma"));
        assert_eq!(weekly.input.time_zone.as_deref(), Some("Europe/Berlin"), "Windows zone names are mapped");
        assert_eq!(weekly.input.start.as_deref(), Some("2026-12-07T08:00:00+00:00"));
        assert_eq!(weekly.input.visibility.as_deref(), Some("private"));
        assert_eq!(
            weekly.input.recurrence,
            Some(vec!["RRULE:FREQ=WEEKLY;COUNT=4".to_owned(), "EXDATE:20261214T080000Z".to_owned()])
        );
        let moved = events[1].as_ref().unwrap();
        assert_eq!(moved.recurrence_id, Some(OriginalStart::At("2026-12-21T08:00:00Z".parse().unwrap())));
        assert_eq!(moved.input.end.as_deref(), Some("2026-12-21T10:45:00+00:00"), "DURATION counts from DTSTART");
        assert_eq!(moved.input.recurrence, None);
        let floating = events[2].as_ref().unwrap();
        assert_eq!(
            (floating.input.start.as_deref(), floating.input.time_zone.as_deref(), floating.input.show_as.as_deref()),
            (Some("2026-12-08T07:00:00+00:00"), Some("Europe/Paris"), Some("free")),
            "floating times in the file's X-WR-TIMEZONE, never UTC"
        );
        let day = events[3].as_ref().unwrap();
        assert_eq!((day.input.start.as_deref(), day.input.end.as_deref()), (Some("2026-12-24"), Some("2026-12-25")));
        let (label, why) = events[4].as_ref().unwrap_err();
        assert_eq!(label, "Extra dates");
        assert!(why.contains("RDATE"), "{why}");
        // Without any zone for it, a floating time is refused, not read as UTC.
        let bare = file.replace("X-WR-TIMEZONE:Europe/Paris\r\n", "");
        let (_, why) = parse_events(&bare, None).unwrap()[2].clone().unwrap_err();
        assert!(why.contains("floating"), "{why}");
        let given = parse_events(&bare, Some(chrono_tz::America::New_York)).unwrap();
        assert_eq!(given[2].as_ref().unwrap().input.start.as_deref(), Some("2026-12-08T13:00:00+00:00"));
    }

    #[test]
    fn times_a_clock_change_skips_are_read_with_the_offset_before_it() {
        let berlin = chrono_tz::Europe::Berlin;
        let local = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").unwrap();
        // 02:30 on 28 March 2027 does not exist in Berlin: read at +01:00, it is 03:30 CEST.
        assert_eq!(local_instant(berlin, local("2027-03-28T02:30")).unwrap().to_rfc3339(), "2027-03-28T01:30:00+00:00");
        // 02:30 on 31 October 2027 happens twice: the earlier one.
        assert_eq!(local_instant(berlin, local("2027-10-31T02:30")).unwrap().to_rfc3339(), "2027-10-31T00:30:00+00:00");
    }

    #[test]
    fn what_the_feed_writes_reads_back_the_same() {
        let mut series = event(
            "s1",
            data("Stand-up", "2026-12-07T09:00:00+01:00", "2026-12-07T09:15:00+01:00", "Europe/Berlin", false),
        );
        series.data.recurrence = vec!["RRULE:FREQ=WEEKLY;COUNT=5".into()];
        let ics = calendar("x", &[series], Utc::now()).unwrap();
        let back = parse_events(&ics, None).unwrap();
        let e = back[0].as_ref().unwrap();
        assert_eq!(e.uid, "s1");
        assert_eq!(e.input.time_zone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(e.input.start.as_deref(), Some("2026-12-07T08:00:00+00:00"));
        assert_eq!(e.input.recurrence, Some(vec!["RRULE:FREQ=WEEKLY;COUNT=5".to_owned()]));
    }

    #[test]
    fn a_series_resource_round_trips_with_its_overrides_and_private_content() {
        let mut master = event(
            "u1@calsync",
            data("Planning", "2027-01-04T09:00:00+01:00", "2027-01-04T10:00:00+01:00", "Europe/Berlin", false),
        );
        master.data.recurrence = vec!["RRULE:FREQ=WEEKLY;UNTIL=20270201".into()];
        master.data.visibility = Visibility::Private;
        master.data.location = "Room 4".into();
        master.cancelled = vec![OriginalStart::At("2027-01-18T08:00:00Z".parse().unwrap())];
        let mut moved = event(
            "u1@calsync",
            data("Planning (late)", "2027-01-11T11:00:00+01:00", "2027-01-11T12:00:00+01:00", "Europe/Berlin", false),
        );
        moved.recurrence_id =
            Some((OriginalStart::At("2027-01-11T08:00:00Z".parse().unwrap()), chrono_tz::Europe::Berlin));
        let ics = resource(&master, std::slice::from_ref(&moved), Utc::now()).unwrap();
        assert!(!ics.contains("METHOD:") && ics.contains("BEGIN:VTIMEZONE"), "{ics}");
        let r = parse_resource(&ics, None).unwrap();
        assert_eq!(r.uid, "u1@calsync");
        let m = r.master.unwrap();
        assert_eq!(m.input.title.as_deref(), Some("Planning"), "its own calendar gets private content in full");
        assert_eq!((m.input.location.as_deref(), m.input.visibility.as_deref()), (Some("Room 4"), Some("private")));
        assert_eq!(m.calsync_id.as_deref(), Some("u1@calsync"));
        assert_eq!(
            m.input.recurrence,
            Some(vec!["RRULE:FREQ=WEEKLY;UNTIL=20270201T225959Z".to_owned(), "EXDATE:20270118T080000Z".to_owned()])
        );
        assert_eq!(r.overrides.len(), 1);
        assert_eq!(r.overrides[0].recurrence_id, Some(OriginalStart::At("2027-01-11T08:00:00Z".parse().unwrap())));
        assert_eq!(r.overrides[0].input.start.as_deref(), Some("2027-01-11T10:00:00+00:00"));
        // An override of another UID is refused, both ways.
        let mut stray = moved.clone();
        stray.uid = "other".into();
        assert!(resource(&master, &[stray], Utc::now()).is_err());
        let two = ics.replacen("UID:u1@calsync", "UID:other", 1);
        assert!(parse_resource(&two, None).is_err());
    }

    #[test]
    fn long_lines_are_folded() {
        let d = data(&"word ".repeat(40), "2026-12-03T08:00:00Z", "2026-12-03T09:00:00Z", "UTC", false);
        let ics = calendar("x", &[event("l", d)], Utc::now()).unwrap();
        assert!(ics.split("\r\n").all(|l| l.len() <= 75), "{ics}");
    }
}
