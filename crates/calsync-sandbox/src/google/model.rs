//! The Calendar v3 `Event` resource exactly as the discovery document names and types its
//! fields, with the validation Google applies on insert/update/patch.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Event {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html_link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creator: Option<Person>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organizer: Option<Person>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<EventDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<EventDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time_unspecified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurring_event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_start_time: Option<EventDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transparency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<String>,
    #[serde(rename = "iCalUID", skip_serializing_if = "Option::is_none")]
    pub ical_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attendees: Option<Vec<Attendee>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attendees_omitted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extended_properties: Option<ExtendedProperties>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hangout_link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conference_data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gadget: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anyone_can_add_self: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guests_can_invite_others: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guests_can_modify: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guests_can_see_other_guests: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_copy: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reminders: Option<Reminders>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<Attachment>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_location_properties: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_office_properties: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub focus_time_properties: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birthday_properties: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct EventDateTime {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Person {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(rename = "self", skip_serializing_if = "Option::is_none")]
    pub is_self: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Attendee {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organizer: Option<bool>,
    #[serde(rename = "self", skip_serializing_if = "Option::is_none")]
    pub is_self: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_guests: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ExtendedProperties {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Reminders {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_default: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overrides: Option<Vec<Reminder>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Reminder {
    pub method: String,
    pub minutes: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Source {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Attachment {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
}

/// A resolved start or end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum When {
    Date(NaiveDate),
    Instant(DateTime<Utc>),
}

impl When {
    /// Epoch milliseconds; all-day dates start at midnight in the calendar's zone.
    pub(crate) fn key(&self, cal_tz: Tz) -> i64 {
        match self {
            When::Instant(t) => t.timestamp_millis(),
            When::Date(d) => local_midnight(*d, cal_tz).timestamp_millis(),
        }
    }
}

pub(crate) fn local_midnight(d: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let naive = d.and_hms_opt(0, 0, 0).expect("midnight exists");
    resolve_local(naive, tz)
}

/// Local wall time to an instant: the earlier of an ambiguous pair; a time inside a DST gap
/// moves forward by the gap, as calendar clients do.
pub(crate) fn resolve_local(naive: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
        chrono::LocalResult::None => tz
            .from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()
            .map_or_else(|| Utc.from_utc_datetime(&naive), |t| t.with_timezone(&Utc)),
    }
}

pub(crate) fn parse_tz(name: &str) -> Option<Tz> {
    name.parse().ok()
}

/// Validates one `start`/`end`/`originalStartTime` object and resolves it.
pub(crate) fn resolve(edt: &EventDateTime, which: &str) -> ApiResult<When> {
    let tz = match &edt.time_zone {
        Some(name) => Some(
            parse_tz(name)
                .ok_or_else(|| ApiError::invalid(&format!("Invalid time zone definition for {which} time.")))?,
        ),
        None => None,
    };
    match (&edt.date, &edt.date_time) {
        (Some(_), Some(_)) | (None, None) => Err(ApiError::bad_request(&format!("Invalid {which} time."))),
        (Some(d), None) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map(When::Date)
            .map_err(|_| ApiError::bad_request(&format!("Invalid {which} time."))),
        (None, Some(dt)) => {
            if let Ok(t) = DateTime::parse_from_rfc3339(dt) {
                return Ok(When::Instant(t.with_timezone(&Utc)));
            }
            let naive = NaiveDateTime::parse_from_str(dt, "%Y-%m-%dT%H:%M:%S%.f")
                .map_err(|_| ApiError::bad_request(&format!("Invalid {which} time.")))?;
            let tz =
                tz.ok_or_else(|| ApiError::bad_request(&format!("Missing time zone definition for {which} time.")))?;
            Ok(When::Instant(resolve_local(naive, tz)))
        }
    }
}

/// RFC 3339 with the zone's offset, `Z` for UTC, as Google renders `dateTime`.
pub(crate) fn format_instant(t: DateTime<Utc>, tz: Tz) -> String {
    let local = t.with_timezone(&tz);
    let fixed: DateTime<FixedOffset> = local.fixed_offset();
    fixed.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Google stamps `created`/`updated` with millisecond precision in UTC.
pub(crate) fn format_stamp(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `^[a-v0-9]{5,1024}$`.
pub(crate) fn valid_event_id(id: &str) -> bool {
    (5..=1024).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b))
}

fn one_of(value: &Option<String>, allowed: &[&str], field: &str) -> ApiResult<()> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(ApiError::invalid(&format!("Invalid value for {field}: {v}"))),
        _ => Ok(()),
    }
}

/// Field checks Google performs on writes (besides times, which the caller resolves).
pub(crate) fn validate(ev: &Event) -> ApiResult<()> {
    one_of(&ev.status, &["confirmed", "tentative", "cancelled"], "status")?;
    one_of(&ev.transparency, &["opaque", "transparent"], "transparency")?;
    one_of(&ev.visibility, &["default", "public", "private", "confidential"], "visibility")?;
    one_of(
        &ev.event_type,
        &["default", "outOfOffice", "focusTime", "workingLocation", "fromGmail", "birthday"],
        "eventType",
    )?;
    if let Some(c) = &ev.color_id
        && !matches!(c.parse::<u8>(), Ok(1..=11))
    {
        return Err(ApiError::invalid("Invalid color id."));
    }
    if let Some(r) = &ev.reminders {
        let overrides = r.overrides.as_deref().unwrap_or_default();
        if r.use_default == Some(true) && !overrides.is_empty() {
            return Err(ApiError::new(
                400,
                "global",
                "cannotUseDefaultRemindersAndSpecifyOverride",
                "Cannot specify both default reminders and overrides at the same time.",
            ));
        }
        if overrides.len() > 5 {
            return Err(ApiError::invalid("Too many reminders."));
        }
        for o in overrides {
            if !matches!(o.method.as_str(), "email" | "popup") || !(0..=40320).contains(&o.minutes) {
                return Err(ApiError::invalid("Invalid reminder."));
            }
        }
    }
    for a in ev.attendees.iter().flatten() {
        if a.email.as_deref().is_none_or(|e| !e.contains('@')) {
            return Err(ApiError::required("Missing attendee email."));
        }
        one_of(&a.response_status, &["needsAction", "declined", "tentative", "accepted"], "responseStatus")?;
    }
    if let Some(p) = &ev.extended_properties {
        let all = p.private.iter().chain(p.shared.iter()).flatten();
        let mut count = 0;
        for (k, v) in all {
            count += 1;
            if k.is_empty() || k.chars().count() > 44 || v.chars().count() > 1024 {
                return Err(ApiError::invalid("Invalid extended property value."));
            }
        }
        if count > 300 {
            return Err(ApiError::invalid("Too many extended properties."));
        }
    }
    if ev
        .recurrence
        .iter()
        .flatten()
        .any(|line| !["RRULE:", "EXRULE:", "RDATE", "EXDATE"].iter().any(|p| line.starts_with(p)))
    {
        return Err(ApiError::invalid("Invalid recurrence rule."));
    }
    Ok(())
}
