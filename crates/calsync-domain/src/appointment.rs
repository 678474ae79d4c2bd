//! Appointments: the firm's own events, which sync later carries to external calendars.
//!
//! Input arrives as loose strings ([`AppointmentInput`]) and is parsed once into
//! [`AppointmentData`], whose invariants hold from then on: a non-empty title, an IANA zone, an end
//! after the start, and either instants (timed) or dates with an exclusive end (all-day). An
//! all-day appointment is never stored as midnight UTC: its dates stand on their own, and the UTC
//! range used for searching is derived from the appointment's zone.

use crate::ValidationError;
use crate::account::Email;
use crate::ids::{AppointmentId, ConnectionId, FirmId, SyncedCalendarId, UserId};
use crate::recurrence::{Series, SeriesRef};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

pub const TITLE_MAX: usize = 500;
pub const DESCRIPTION_MAX: usize = 10_000;
pub const LOCATION_MAX: usize = 1_000;
pub const ATTENDEES_MAX: usize = 100;
const NAME_MAX: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppointmentStatus {
    Confirmed,
    Tentative,
    Cancelled,
}

impl AppointmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Tentative => "tentative",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for AppointmentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AppointmentStatus {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "confirmed" => Ok(Self::Confirmed),
            "tentative" => Ok(Self::Tentative),
            "cancelled" => Ok(Self::Cancelled),
            other => Err(ValidationError::new(
                "status",
                format!("unknown status {other:?}: expected confirmed, tentative or cancelled"),
            )),
        }
    }
}

/// An invited person. The e-mail is normalised (lower case); the name may be empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attendee {
    pub email: String,
    pub name: String,
    /// Their answer, as the provider last reported it.
    #[serde(default)]
    pub response: ResponseStatus,
}

/// An attendee's answer to an invitation. Google `responseStatus`
/// (`needsAction|accepted|declined|tentative`), Graph `status.response`
/// (`none|notResponded|organizer|accepted|declined|tentativelyAccepted`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseStatus {
    #[default]
    NeedsAction,
    Accepted,
    Declined,
    Tentative,
}

impl ResponseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NeedsAction => "needs_action",
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Tentative => "tentative",
        }
    }
}

impl FromStr for ResponseStatus {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "needs_action" => Ok(Self::NeedsAction),
            "accepted" => Ok(Self::Accepted),
            "declined" => Ok(Self::Declined),
            "tentative" => Ok(Self::Tentative),
            other => Err(ValidationError::new(
                "response",
                format!("unknown response {other:?}: expected needs_action, accepted, declined or tentative"),
            )),
        }
    }
}

/// When an appointment happens. Serialised as `{"kind": "timed" | "all_day", "start", "end"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum When {
    /// Instants; rendered in the appointment's zone.
    Timed { start: DateTime<Utc>, end: DateTime<Utc> },
    /// Calendar dates, end exclusive (a one-day event on the 3rd ends on the 4th).
    AllDay { start: NaiveDate, end: NaiveDate },
}

/// The validated content of an appointment. Serde gives it a JSON form for storing a snapshot
/// (a sync conflict keeps both sides' content); it is not an input format: input is parsed
/// through [`AppointmentData::create`], which is where the invariants are checked.
/// Who may see an appointment's details. `private`: its owner only; everyone else (admins, the
/// calendars' other viewers) sees that the time is taken. Google `visibility: private`, Graph
/// `sensitivity: private`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    #[default]
    Default,
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Private => "private",
        }
    }
}

impl FromStr for Visibility {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(Self::Default),
            "private" => Ok(Self::Private),
            other => Err(ValidationError::new(
                "visibility",
                format!("unknown visibility {other:?}: expected default or private"),
            )),
        }
    }
}

/// Whether the time counts as taken in free/busy views. Google `transparency`
/// (`opaque` / `transparent`), Graph `showAs` (`busy` / `free`; `tentative` follows the status).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShowAs {
    #[default]
    Busy,
    Free,
}

impl ShowAs {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Busy => "busy",
            Self::Free => "free",
        }
    }
}

impl FromStr for ShowAs {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "busy" => Ok(Self::Busy),
            "free" => Ok(Self::Free),
            other => Err(ValidationError::new("show_as", format!("unknown value {other:?}: expected busy or free"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppointmentData {
    pub title: String,
    pub description: String,
    pub location: String,
    pub when: When,
    #[serde(with = "tz_name")]
    pub time_zone: Tz,
    pub attendees: Vec<Attendee>,
    pub status: AppointmentStatus,
    #[serde(default)]
    pub visibility: Visibility,
    #[serde(default)]
    pub show_as: ShowAs,
    /// Whether pushing it may e-mail its attendees. Off by default: a sync must not spam
    /// guests. On Google it picks `sendUpdates=all` over `none`; Graph mails every attendee of
    /// an event it stores, so without it the attendees go into the body as a list instead. A
    /// local setting: pulling never changes it.
    #[serde(default)]
    pub send_invitations: bool,
    /// The organizer's e-mail when someone other than the calendar's owner organises it (an
    /// invitation pulled from a connected calendar). The organizer's fields are then read-only
    /// here: see [`AppointmentData::organizer_owned_change`].
    #[serde(default)]
    pub organizer: Option<String>,
    /// A series master's RFC 5545 lines (`RRULE:…`, `EXDATE…`), as Google's API takes them;
    /// empty for a single appointment. Checked by [`crate::recurrence::Series::validate`].
    #[serde(default)]
    pub recurrence: Vec<String>,
    /// Set on an exception: the series and the occurrence it replaces.
    #[serde(default)]
    pub series: Option<SeriesRef>,
}

/// Where an appointment came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// Made in calsync: pushed to the connections' calendars.
    Calsync,
    /// Imported from an event of a connected calendar. Kept after the connection is gone, so an
    /// imported appointment is never mistaken for one of calsync's own and pushed elsewhere.
    Calendar { connection: ConnectionId, calendar: SyncedCalendarId },
}

/// A zone as its IANA name (chrono-tz's own serde support is not enabled).
mod tz_name {
    use chrono_tz::Tz;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tz.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
        let name = String::deserialize(d)?;
        super::parse_time_zone(&name).map_err(serde::de::Error::custom)
    }
}

/// A stored appointment.
#[derive(Debug, Clone, PartialEq)]
pub struct Appointment {
    pub id: AppointmentId,
    pub firm_id: FirmId,
    pub owner_id: UserId,
    pub data: AppointmentData,
    pub origin: Origin,
    /// Bumped on every change; the sync engine compares it with the version it last pushed.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Raw fields as a client sends them. `None` means "not given".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppointmentInput {
    pub title: Option<String>,
    pub description: Option<String>,
    pub location: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub time_zone: Option<String>,
    pub all_day: Option<bool>,
    pub attendees: Option<Vec<AttendeeInput>>,
    pub status: Option<String>,
    pub visibility: Option<String>,
    pub show_as: Option<String>,
    pub send_invitations: Option<bool>,
    /// RFC 5545 lines; an empty list makes a series a single appointment again.
    pub recurrence: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttendeeInput {
    pub email: String,
    pub name: Option<String>,
    /// When not given, an attendee already on the appointment keeps their answer, and a new
    /// one has not answered yet.
    pub response: Option<String>,
}

impl AppointmentData {
    /// Parses a new appointment: `title`, `start` and `end` are required; the zone defaults to UTC
    /// and the status to confirmed.
    pub fn create(input: AppointmentInput) -> Result<Self, ValidationError> {
        for (field, given) in
            [("title", input.title.is_some()), ("start", input.start.is_some()), ("end", input.end.is_some())]
        {
            if !given {
                return Err(ValidationError::new(field, "is required"));
            }
        }
        Self::parse(input)
    }

    /// Applies a partial update: given fields replace the current ones, then the whole is
    /// validated again, so a patch can never leave an invalid appointment behind.
    pub fn patched(&self, patch: AppointmentInput) -> Result<Self, ValidationError> {
        let current = self.to_input();
        // Emails (normalised) of the attendees the patch names with an answer of their own.
        let answered: Option<Vec<String>> = patch.attendees.as_ref().map(|list| {
            list.iter().filter(|a| a.response.is_some()).map(|a| a.email.trim().to_ascii_lowercase()).collect()
        });
        let merged = AppointmentInput {
            title: patch.title.or(current.title),
            description: patch.description.or(current.description),
            location: patch.location.or(current.location),
            start: patch.start.or(current.start),
            end: patch.end.or(current.end),
            time_zone: patch.time_zone.or(current.time_zone),
            all_day: patch.all_day.or(current.all_day),
            attendees: patch.attendees.or(current.attendees),
            status: patch.status.or(current.status),
            visibility: patch.visibility.or(current.visibility),
            show_as: patch.show_as.or(current.show_as),
            send_invitations: patch.send_invitations.or(current.send_invitations),
            recurrence: patch.recurrence.or(current.recurrence),
        };
        let mut data = Self::parse(merged)?;
        // Answers come from the attendees (through their providers), not from whoever edits
        // the list: an attendee named again without a response keeps theirs.
        if let Some(answered) = answered {
            for a in data.attendees.iter_mut().filter(|a| !answered.contains(&a.email)) {
                if let Some(old) = self.attendees.iter().find(|o| o.email == a.email) {
                    a.response = old.response;
                }
            }
        }
        data.organizer = self.organizer.clone();
        data.series = self.series;
        if data.series.is_some() && !data.recurrence.is_empty() {
            return Err(ValidationError::new(
                "recurrence",
                "an occurrence of a series cannot repeat itself: change the series, or split it",
            ));
        }
        Ok(data)
    }

    /// The first field of `self`'s organizer that `new` changes, when someone else organises
    /// it: only the organizer can change an event's title, description, location, time,
    /// attendees or status (Google answers `forbiddenForNonOrganizer`, Graph 400 and an
    /// attendee's edit would be lost at the organizer's next update). Visibility, free/busy and
    /// the invitation setting are the attendee's own.
    pub fn organizer_owned_change(&self, new: &AppointmentData) -> Option<ValidationError> {
        let organizer = self.organizer.as_deref()?;
        let same_people = {
            let key = |d: &AppointmentData| {
                let mut v: Vec<(String, String)> =
                    d.attendees.iter().map(|a| (a.email.clone(), a.name.clone())).collect();
                v.sort();
                v
            };
            key(self) == key(new)
        };
        let field = if self.title != new.title {
            "title"
        } else if self.description != new.description {
            "description"
        } else if self.location != new.location {
            "location"
        } else if self.when != new.when || self.time_zone != new.time_zone {
            if self.when == new.when { "time_zone" } else { "start" }
        } else if self.recurrence != new.recurrence {
            "recurrence"
        } else if !same_people {
            "attendees"
        } else if self.status != new.status {
            "status"
        } else {
            return None;
        };
        Some(ValidationError::new(
            field,
            format!(
                "is set by the organizer, {organizer}, and can only be changed by them; visibility, show_as and send_invitations can be changed here"
            ),
        ))
    }

    fn parse(input: AppointmentInput) -> Result<Self, ValidationError> {
        let title = input.title.unwrap_or_default();
        let title = title.trim();
        if title.is_empty() {
            return Err(ValidationError::new("title", "must not be empty"));
        }
        if title.chars().count() > TITLE_MAX {
            return Err(ValidationError::new("title", format!("must be at most {TITLE_MAX} characters")));
        }
        if title.chars().any(char::is_control) {
            return Err(ValidationError::new("title", "must not contain control characters"));
        }
        let description = normalize_description(&input.description.unwrap_or_default());
        if description.chars().count() > DESCRIPTION_MAX {
            return Err(ValidationError::new("description", format!("must be at most {DESCRIPTION_MAX} characters")));
        }
        let location = input.location.unwrap_or_default().trim().to_owned();
        if location.chars().count() > LOCATION_MAX {
            return Err(ValidationError::new("location", format!("must be at most {LOCATION_MAX} characters")));
        }
        let status = match input.status {
            Some(s) => s.parse()?,
            None => AppointmentStatus::Confirmed,
        };
        let visibility = match input.visibility {
            Some(v) => v.parse()?,
            None => Visibility::Default,
        };
        let show_as = match input.show_as {
            Some(v) => v.parse()?,
            None => ShowAs::Busy,
        };
        let time_zone = match input.time_zone.as_deref() {
            None => Tz::UTC,
            Some(name) => parse_time_zone(name)?,
        };
        let all_day = input.all_day.unwrap_or(false);
        let start = input.start.unwrap_or_default();
        let end = input.end.unwrap_or_default();
        let when = if all_day {
            let s = parse_date(&start, "start")?;
            let e = parse_date(&end, "end")?;
            if e <= s {
                return Err(ValidationError::new(
                    "end",
                    "must be after start (all-day end dates are exclusive: a one-day event on the 3rd ends on the 4th)",
                ));
            }
            When::AllDay { start: s, end: e }
        } else {
            let s = parse_instant(&start, "start")?;
            let e = parse_instant(&end, "end")?;
            if e <= s {
                return Err(ValidationError::new("end", "must be after start"));
            }
            When::Timed { start: s, end: e }
        };
        let attendees = parse_attendees(input.attendees.unwrap_or_default())?;
        let recurrence = Series::validate(input.recurrence.unwrap_or_default(), &when, time_zone)?;
        Ok(Self {
            title: title.to_owned(),
            description,
            location,
            when,
            time_zone,
            attendees,
            status,
            visibility,
            show_as,
            send_invitations: input.send_invitations.unwrap_or(false),
            organizer: None,
            recurrence,
            series: None,
        })
    }

    /// The fields as a client would send them; `patched` merges against this.
    pub fn to_input(&self) -> AppointmentInput {
        AppointmentInput {
            title: Some(self.title.clone()),
            description: Some(self.description.clone()),
            location: Some(self.location.clone()),
            start: Some(self.start_string()),
            end: Some(self.end_string()),
            time_zone: Some(self.time_zone.name().to_owned()),
            all_day: Some(self.is_all_day()),
            attendees: Some(
                self.attendees
                    .iter()
                    .map(|a| AttendeeInput {
                        email: a.email.clone(),
                        name: Some(a.name.clone()),
                        response: Some(a.response.as_str().to_owned()),
                    })
                    .collect(),
            ),
            status: Some(self.status.as_str().to_owned()),
            visibility: Some(self.visibility.as_str().to_owned()),
            show_as: Some(self.show_as.as_str().to_owned()),
            send_invitations: Some(self.send_invitations),
            recurrence: Some(self.recurrence.clone()),
        }
    }

    pub fn is_all_day(&self) -> bool {
        matches!(self.when, When::AllDay { .. })
    }

    /// RFC 3339 in the appointment's zone, or `YYYY-MM-DD` for all-day.
    pub fn start_string(&self) -> String {
        match self.when {
            When::Timed { start, .. } => format_instant(start, self.time_zone),
            When::AllDay { start, .. } => start.to_string(),
        }
    }

    pub fn end_string(&self) -> String {
        match self.when {
            When::Timed { end, .. } => format_instant(end, self.time_zone),
            When::AllDay { end, .. } => end.to_string(),
        }
    }

    /// The UTC span the appointment covers, used for range searches. All-day dates are taken as
    /// local days in the appointment's zone.
    pub fn utc_range(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        match self.when {
            When::Timed { start, end } => (start, end),
            When::AllDay { start, end } => (local_midnight(start, self.time_zone), local_midnight(end, self.time_zone)),
        }
    }
}

/// A description in the one form every calendar keeps as it is: `\n` line breaks, no tabs or
/// no-break spaces (spaces instead), no whitespace at the end of a line, at most one blank line in
/// a row, nothing blank around it. Outlook stores bodies as HTML, where anything else would
/// read back changed and look like an edit.
pub fn normalize_description(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace(['\r', '\u{c}'], "\n").replace(['\t', '\u{a0}'], " ");
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines().map(str::trim_end) {
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim().to_owned()
}

fn format_instant(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The first instant of `date` in `tz`. Where midnight does not exist (a DST gap at 00:00, as in
/// some zones), the day starts at the first valid minute after it.
pub fn local_midnight(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let mut local = NaiveDateTime::new(date, NaiveTime::MIN);
    for _ in 0..=24 * 4 {
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
        local += chrono::Duration::minutes(15);
    }
    Utc.from_utc_datetime(&NaiveDateTime::new(date, NaiveTime::MIN))
}

pub fn parse_time_zone(name: &str) -> Result<Tz, ValidationError> {
    name.parse::<Tz>().map_err(|_| {
        ValidationError::new(
            "time_zone",
            format!("unknown time zone {name:?}: use an IANA name such as \"Europe/Berlin\""),
        )
    })
}

/// Years outside this range are almost always typos (`0202` for `2026`), and are refused.
const YEAR_RANGE: std::ops::RangeInclusive<i32> = 1900..=2199;

fn parse_date(raw: &str, field: &str) -> Result<NaiveDate, ValidationError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(ValidationError::new(field, "is required"));
    }
    if raw.contains('T') || raw.contains(':') {
        return Err(ValidationError::new(
            field,
            format!("expected a date (YYYY-MM-DD) because all_day is true, got a date-time {raw:?}"),
        ));
    }
    let d = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| ValidationError::new(field, format!("{raw:?} is not a date in the form YYYY-MM-DD")))?;
    if !YEAR_RANGE.contains(&chrono::Datelike::year(&d)) {
        return Err(ValidationError::new(field, "year must be between 1900 and 2199"));
    }
    Ok(d)
}

fn parse_instant(raw: &str, field: &str) -> Result<DateTime<Utc>, ValidationError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(ValidationError::new(field, "is required"));
    }
    if NaiveDate::parse_from_str(raw, "%Y-%m-%d").is_ok() {
        return Err(ValidationError::new(
            field,
            format!(
                "expected a date-time with offset because all_day is false, got a date {raw:?} (set all_day to true for all-day events)"
            ),
        ));
    }
    let t = DateTime::parse_from_rfc3339(raw).map_err(|_| {
        ValidationError::new(
            field,
            format!("{raw:?} is not an RFC 3339 date-time with offset, e.g. 2026-12-01T09:30:00+01:00"),
        )
    })?;
    if !YEAR_RANGE.contains(&chrono::Datelike::year(&t)) {
        return Err(ValidationError::new(field, "year must be between 1900 and 2199"));
    }
    // Calendar providers work in whole seconds; keeping sub-second parts would make every
    // round trip look like a change.
    let t = t.with_timezone(&Utc);
    Ok(t - chrono::Duration::nanoseconds(i64::from(chrono::Timelike::nanosecond(&t))))
}

fn parse_attendees(list: Vec<AttendeeInput>) -> Result<Vec<Attendee>, ValidationError> {
    if list.len() > ATTENDEES_MAX {
        return Err(ValidationError::new("attendees", format!("at most {ATTENDEES_MAX} attendees")));
    }
    let mut out: Vec<Attendee> = Vec::with_capacity(list.len());
    for (i, a) in list.into_iter().enumerate() {
        let email = Email::parse_field(&a.email, &format!("attendees[{i}].email"))?;
        let name = a.name.unwrap_or_default().trim().to_owned();
        if name.chars().count() > NAME_MAX || name.chars().any(char::is_control) {
            return Err(ValidationError::new(
                format!("attendees[{i}].name"),
                format!("must be at most {NAME_MAX} characters, without control characters"),
            ));
        }
        if out.iter().any(|o| o.email == email.as_str()) {
            return Err(ValidationError::new(format!("attendees[{i}].email"), format!("{email} is listed twice")));
        }
        let response = match a.response.as_deref() {
            None => ResponseStatus::NeedsAction,
            Some(r) => r
                .parse()
                .map_err(|e: ValidationError| ValidationError::new(format!("attendees[{i}].response"), e.message))?,
        };
        out.push(Attendee { email: email.as_str().to_owned(), name, response });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(start: &str, end: &str) -> AppointmentInput {
        AppointmentInput {
            title: Some("Consultation".into()),
            start: Some(start.into()),
            end: Some(end.into()),
            ..Default::default()
        }
    }

    #[test]
    fn timed_appointment_keeps_its_zone_for_display() {
        let mut input = timed("2026-12-01T09:00:00+01:00", "2026-12-01T10:00:00+01:00");
        input.time_zone = Some("Europe/Berlin".into());
        let a = AppointmentData::create(input).unwrap();
        assert_eq!(a.start_string(), "2026-12-01T09:00:00+01:00");
        assert_eq!(a.utc_range().0.to_rfc3339(), "2026-12-01T08:00:00+00:00");
        assert_eq!(a.status, AppointmentStatus::Confirmed);
    }

    #[test]
    fn end_must_follow_start() {
        let e = AppointmentData::create(timed("2026-12-01T10:00:00Z", "2026-12-01T10:00:00Z")).unwrap_err();
        assert_eq!(e.field, "end");
        let e = AppointmentData::create(timed("2026-12-01T10:00:00Z", "2026-12-01T09:00:00Z")).unwrap_err();
        assert_eq!(e.field, "end");
    }

    #[test]
    fn date_and_date_time_must_match_all_day() {
        let e = AppointmentData::create(timed("2026-12-01", "2026-12-02")).unwrap_err();
        assert_eq!(e.field, "start");
        assert!(e.message.contains("all_day is false"), "{}", e.message);

        let mut input = timed("2026-12-01T10:00:00Z", "2026-12-02T10:00:00Z");
        input.all_day = Some(true);
        let e = AppointmentData::create(input).unwrap_err();
        assert_eq!(e.field, "start");
        assert!(e.message.contains("all_day is true"), "{}", e.message);
    }

    #[test]
    fn all_day_is_dates_in_its_zone_with_exclusive_end() {
        let mut input = timed("2026-03-29", "2026-03-30");
        input.all_day = Some(true);
        input.time_zone = Some("Europe/Berlin".into());
        let a = AppointmentData::create(input.clone()).unwrap();
        assert_eq!(a.start_string(), "2026-03-29");
        assert_eq!(a.end_string(), "2026-03-30");
        let (s, e) = a.utc_range();
        assert_eq!(s.to_rfc3339(), "2026-03-28T23:00:00+00:00");
        // The DST change shortens that day to 23 hours.
        assert_eq!(e.to_rfc3339(), "2026-03-29T22:00:00+00:00");

        input.end = Some("2026-03-29".into());
        assert_eq!(AppointmentData::create(input).unwrap_err().field, "end");
    }

    #[test]
    fn midnight_in_a_dst_gap_moves_to_the_first_valid_minute() {
        // America/Santiago skipped 2024-09-08 00:00 → 01:00.
        let t = local_midnight(NaiveDate::from_ymd_opt(2024, 9, 8).unwrap(), "America/Santiago".parse().unwrap());
        assert_eq!(t.to_rfc3339(), "2024-09-08T04:00:00+00:00");
    }

    type Mutation = Box<dyn Fn(&mut AppointmentInput)>;

    #[test]
    fn rejects_bad_fields_naming_them() {
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|i| i.title = Some("  ".into())), "title"),
            (Box::new(|i| i.title = Some("x".repeat(501))), "title"),
            (Box::new(|i| i.time_zone = Some("Mars/Olympus".into())), "time_zone"),
            (Box::new(|i| i.status = Some("done".into())), "status"),
            (Box::new(|i| i.start = Some("yesterday".into())), "start"),
            (Box::new(|i| i.end = Some("2026-12-01T10:00:00".into())), "end"),
            (
                Box::new(|i| {
                    i.attendees = Some(vec![AttendeeInput { email: "nope".into(), name: None, response: None }])
                }),
                "attendees[0].email",
            ),
            (
                Box::new(|i| {
                    i.attendees = Some(vec![
                        AttendeeInput { email: "a@b.test".into(), name: None, response: None },
                        AttendeeInput { email: "A@B.test".into(), name: None, response: None },
                    ])
                }),
                "attendees[1].email",
            ),
        ];
        for (mutate, field) in cases {
            let mut input = timed("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z");
            mutate(&mut input);
            assert_eq!(AppointmentData::create(input).unwrap_err().field, field);
        }
        assert!(AppointmentData::create(timed("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z")).is_ok());
        let e =
            AppointmentData::create(AppointmentInput { title: Some("x".into()), ..Default::default() }).unwrap_err();
        assert_eq!((e.field.as_str(), e.message.as_str()), ("start", "is required"));
    }

    #[test]
    fn title_of_exactly_500_characters_is_accepted() {
        let mut input = timed("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z");
        input.title = Some("é".repeat(500));
        assert!(AppointmentData::create(input).is_ok());
    }

    #[test]
    fn patch_revalidates_the_whole() {
        let a = AppointmentData::create(timed("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z")).unwrap();
        let moved = a
            .patched(AppointmentInput { start: Some("2026-12-01T11:00:00Z".into()), ..Default::default() })
            .unwrap_err();
        assert_eq!(moved.field, "end");
        let renamed = a.patched(AppointmentInput { title: Some("Follow-up".into()), ..Default::default() }).unwrap();
        assert_eq!(renamed.title, "Follow-up");
        assert_eq!(renamed.when, a.when);
        // Switching to all-day without new dates is refused rather than guessed.
        let e = a.patched(AppointmentInput { all_day: Some(true), ..Default::default() }).unwrap_err();
        assert_eq!(e.field, "start");
    }

    #[test]
    fn data_round_trips_through_json_with_zone_and_kind() {
        let mut timed_input = timed("2026-12-01T09:00:00+01:00", "2026-12-01T10:00:00+01:00");
        timed_input.time_zone = Some("Europe/Berlin".into());
        timed_input.attendees = Some(vec![AttendeeInput {
            email: "Bo@Example.test".into(),
            name: Some("Bo".into()),
            response: Some("accepted".into()),
        }]);
        let mut all_day = timed("2026-03-29", "2026-03-30");
        all_day.all_day = Some(true);
        all_day.time_zone = Some("America/Santiago".into());
        for input in [timed_input, all_day] {
            let a = AppointmentData::create(input).unwrap();
            let json = serde_json::to_string(&a).unwrap();
            assert!(json.contains(&format!("\"time_zone\":\"{}\"", a.time_zone.name())), "{json}");
            let back: AppointmentData = serde_json::from_str(&json).unwrap();
            assert_eq!(back, a);
        }
        let bad = r#"{"title":"x","description":"","location":"","when":{"kind":"timed","start":"2026-12-01T09:00:00Z","end":"2026-12-01T10:00:00Z"},"time_zone":"Mars/Olympus","attendees":[],"status":"confirmed"}"#;
        assert!(serde_json::from_str::<AppointmentData>(bad).is_err(), "unknown zones are refused");
    }

    fn guest(email: &str, response: Option<&str>) -> AttendeeInput {
        AttendeeInput { email: email.into(), name: None, response: response.map(Into::into) }
    }

    #[test]
    fn a_new_attendee_list_keeps_the_answers_already_given() {
        let mut input = timed("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z");
        input.attendees = Some(vec![guest("ann@x.test", Some("accepted")), guest("bo@x.test", None)]);
        let a = AppointmentData::create(input).unwrap();
        assert_eq!(a.attendees[1].response, ResponseStatus::NeedsAction);
        let b = a
            .patched(AppointmentInput {
                attendees: Some(vec![
                    guest("ANN@x.test", None),
                    guest("bo@x.test", Some("declined")),
                    guest("cy@x.test", None),
                ]),
                ..Default::default()
            })
            .unwrap();
        let answers: Vec<_> = b.attendees.iter().map(|x| (x.email.as_str(), x.response)).collect();
        assert_eq!(
            answers,
            [
                ("ann@x.test", ResponseStatus::Accepted),
                ("bo@x.test", ResponseStatus::Declined),
                ("cy@x.test", ResponseStatus::NeedsAction)
            ]
        );
        let mut bad = timed("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z");
        bad.attendees = Some(vec![guest("ann@x.test", Some("maybe"))]);
        assert_eq!(AppointmentData::create(bad).unwrap_err().field, "attendees[0].response");
    }

    #[test]
    fn only_the_organizer_changes_what_the_organizer_owns() {
        let mut a = AppointmentData::create(timed("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z")).unwrap();
        let retitled = a.patched(AppointmentInput { title: Some("Mine".into()), ..Default::default() }).unwrap();
        assert_eq!(a.organizer_owned_change(&retitled), None, "calsync's own appointments are all ours");
        a.organizer = Some("boss@other.test".into());
        let retitled = a.patched(AppointmentInput { title: Some("Mine".into()), ..Default::default() }).unwrap();
        assert_eq!(retitled.organizer.as_deref(), Some("boss@other.test"), "a patch keeps the organizer");
        let e = a.organizer_owned_change(&retitled).unwrap();
        assert_eq!(e.field, "title");
        assert!(e.message.contains("boss@other.test"), "{}", e.message);
        let moved =
            a.patched(AppointmentInput { end: Some("2026-12-01T11:00:00Z".into()), ..Default::default() }).unwrap();
        assert_eq!(a.organizer_owned_change(&moved).unwrap().field, "start");
        let personal = a
            .patched(AppointmentInput {
                visibility: Some("private".into()),
                show_as: Some("free".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(a.organizer_owned_change(&personal), None);
    }

    #[test]
    fn descriptions_take_the_form_every_calendar_keeps() {
        assert_eq!(normalize_description("  a  \r\n\tb\u{a0}c\n\n\n\nd \n\n"), "a\n b c\n\nd");
        assert_eq!(normalize_description("x\ry"), "x\ny");
        let once = normalize_description("  Bring\t the lease \n\n\n");
        assert_eq!(normalize_description(&once), once);
    }

    #[test]
    fn sub_second_parts_are_dropped() {
        let a = AppointmentData::create(timed("2026-12-01T09:00:00.750Z", "2026-12-01T10:00:00Z")).unwrap();
        assert_eq!(a.start_string(), "2026-12-01T09:00:00Z");
    }
}
