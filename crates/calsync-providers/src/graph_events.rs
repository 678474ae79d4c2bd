//! [`CalendarProvider`] for Microsoft Graph: `calendarView/delta` followed through
//! `@odata.nextLink` to `@odata.deltaLink`, `transactionId` as the idempotency key, `If-Match`
//! on writes, times read in UTC (`Prefer: outlook.timezone="UTC"`) and bodies as text, and the
//! appointment id in a single-value extended property.
//!
//! Attendees are not written to Graph yet: Graph mails every attendee of an event it creates
//! or reschedules, with no switch to stop it, and how calsync avoids invitation spam is part of
//! event fidelity (next). They are read.

use calsync_domain::appointment::{AppointmentData, AppointmentStatus, Attendee, ShowAs, Visibility, When};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::calendar::{CalendarProvider, Change, ChangePage, ListFrom, PageNext, ProviderFuture, RemoteEvent};
use crate::microsoft::{GraphApi, json_or_error};
use crate::{AccountIdentity, ProviderError, RemoteCalendar};

/// The extended property that carries the appointment id (a named string property in the
/// PublicStrings set).
pub const CALSYNC_ID_PROPERTY: &str = "String {00020329-0000-0000-C000-000000000046} Name calsyncId";
const PREFER_READ: &str = "outlook.timezone=\"UTC\", outlook.body-content-type=\"text\", odata.maxpagesize=100";

/// Microsoft Graph calendars behind the provider trait.
#[derive(Debug, Clone)]
pub struct GraphCalendar {
    pub api: GraphApi,
    pub http: reqwest::Client,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    value: Vec<Value>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    delta_link: Option<String>,
}

fn expand() -> String {
    format!("singleValueExtendedProperties($filter=id eq '{CALSYNC_ID_PROPERTY}')")
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// `2026-12-01T09:00:00.0000000` (in UTC, as asked for) as an instant.
fn utc(v: &Value) -> Option<DateTime<Utc>> {
    let raw = v.get("dateTime")?.as_str()?;
    NaiveDateTime::parse_from_str(raw.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
}

/// A zone as Graph names it: IANA (what calsync writes), or Windows (what Outlook writes,
/// `W. Europe Standard Time`), mapped through CLDR's table.
fn zone_named(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok().or_else(|| name.parse::<windows_timezones::WindowsTimezone>().ok().map(Tz::from))
}

fn into_change(item: Value) -> Option<Change> {
    let id = text(&item, "id")?;
    if item.get("@removed").is_some() {
        return Some(Change::Deleted { id });
    }
    Some(Change::Upsert(Box::new(into_remote(id, &item))))
}

fn into_remote(id: String, item: &Value) -> RemoteEvent {
    let calsync_id = item
        .get("singleValueExtendedProperties")
        .and_then(Value::as_array)
        .and_then(|props| {
            props.iter().find(|p| {
                p.get("id").and_then(Value::as_str).is_some_and(|i| i.eq_ignore_ascii_case(CALSYNC_ID_PROPERTY))
            })
        })
        .and_then(|p| text(p, "value"));
    let zone = text(item, "originalStartTimeZone").and_then(|z| zone_named(&z)).unwrap_or(Tz::UTC);
    // Delta sends occurrences of a series as skeletons: no subject, read the master.
    let data = item.get("subject").and_then(|_| {
        let (start, end) = (utc(item.get("start")?)?, utc(item.get("end")?)?);
        let when = if item.get("isAllDay").and_then(Value::as_bool) == Some(true) {
            let s: NaiveDate = start.date_naive();
            let e = end.date_naive().max(s + Duration::days(1));
            When::AllDay { start: s, end: e }
        } else {
            When::Timed { start, end: end.max(start) }
        };
        Some(AppointmentData {
            title: text(item, "subject").filter(|s| !s.trim().is_empty()).unwrap_or_else(|| "(No title)".into()),
            description: item.get("body").and_then(|b| text(b, "content")).unwrap_or_default().trim().to_owned(),
            location: item.get("location").and_then(|l| text(l, "displayName")).unwrap_or_default(),
            when,
            time_zone: zone,
            attendees: item
                .get("attendees")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter(|a| a.get("type").and_then(Value::as_str) != Some("resource"))
                        .filter_map(|a| {
                            let addr = a.get("emailAddress")?;
                            Some(Attendee {
                                email: text(addr, "address")?.to_ascii_lowercase(),
                                name: text(addr, "name").unwrap_or_default(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
            status: if item.get("isCancelled").and_then(Value::as_bool) == Some(true) {
                AppointmentStatus::Cancelled
            } else if item.get("showAs").and_then(Value::as_str) == Some("tentative") {
                AppointmentStatus::Tentative
            } else {
                AppointmentStatus::Confirmed
            },
            // Outlook's `confidential` hides the details as well.
            visibility: match item.get("sensitivity").and_then(Value::as_str) {
                Some("private" | "confidential") => Visibility::Private,
                _ => Visibility::Default,
            },
            show_as: if item.get("showAs").and_then(Value::as_str) == Some("free") {
                ShowAs::Free
            } else {
                ShowAs::Busy
            },
        })
    });
    RemoteEvent {
        id,
        etag: text(item, "@odata.etag").unwrap_or_default(),
        updated: text(item, "lastModifiedDateTime")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)),
        calsync_id,
        data,
        recurrence: item.get("recurrence").filter(|r| !r.is_null()).map(|r| vec![r.to_string()]).unwrap_or_default(),
        series_master_id: text(item, "seriesMasterId"),
    }
}

/// The event resource for a write: times in the appointment's zone (IANA names are accepted).
fn body(data: &AppointmentData) -> Value {
    let zone = data.time_zone.name();
    let (start, end, all_day) = match data.when {
        When::AllDay { start, end } => {
            (start.and_hms_opt(0, 0, 0).expect("midnight"), end.and_hms_opt(0, 0, 0).expect("midnight"), true)
        }
        When::Timed { start, end } => (
            start.with_timezone(&data.time_zone).naive_local(),
            end.with_timezone(&data.time_zone).naive_local(),
            false,
        ),
    };
    let at = |n: NaiveDateTime| n.format("%Y-%m-%dT%H:%M:%S").to_string();
    json!({
        "subject": data.title,
        "body": {"contentType": "text", "content": data.description},
        "location": {"displayName": data.location},
        "start": {"dateTime": at(start), "timeZone": zone},
        "end": {"dateTime": at(end), "timeZone": zone},
        "isAllDay": all_day,
        "showAs": match (data.status, data.show_as) {
            (AppointmentStatus::Tentative, _) => "tentative",
            (_, ShowAs::Free) => "free",
            _ => "busy",
        },
        "sensitivity": if data.visibility == Visibility::Private { "private" } else { "normal" },
    })
}

impl GraphCalendar {
    fn events_url(&self, calendar: Option<&str>, id: Option<&str>) -> Url {
        let mut url = self.api.url("/me");
        {
            let mut segs = url.path_segments_mut().expect("an http(s) URL");
            if let Some(cal) = calendar {
                segs.push("calendars").push(cal);
            }
            segs.push("events");
            if let Some(id) = id {
                segs.push(id);
            }
        }
        url
    }

    async fn fetch(&self, token: &str, id: &str) -> Result<Option<RemoteEvent>, ProviderError> {
        let resp = self
            .http
            .get(self.events_url(None, Some(id)))
            .bearer_auth(token)
            .header("Prefer", PREFER_READ)
            .query(&[("$expand", expand())])
            .send()
            .await
            .map_err(ProviderError::transport)?;
        match json_or_error::<Value>(resp).await {
            Ok(v) => Ok(Some(into_remote(id.to_owned(), &v))),
            Err(ProviderError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn changes(&self, token: &str, calendar: &str, from: ListFrom<'_>) -> Result<ChangePage, ProviderError> {
        let url = match from {
            ListFrom::Full { window, page: None } => {
                let mut url = self.api.url("/me");
                url.path_segments_mut()
                    .expect("an http(s) URL")
                    .push("calendars")
                    .push(calendar)
                    .push("calendarView")
                    .push("delta");
                let at = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
                url.query_pairs_mut()
                    .append_pair("startDateTime", &at(window.start))
                    .append_pair("endDateTime", &at(window.end))
                    .append_pair("$expand", &expand());
                url
            }
            ListFrom::Full { page: Some(link), .. } | ListFrom::Since { page: Some(link), .. } => {
                self.api.same_origin(link)?
            }
            ListFrom::Since { cursor, page: None } => self.api.same_origin(cursor)?,
        };
        let resp = self
            .http
            .get(url)
            .bearer_auth(token)
            .header("Prefer", PREFER_READ)
            .send()
            .await
            .map_err(ProviderError::transport)?;
        let page: Page = json_or_error(resp).await?;
        let changes = page.value.into_iter().filter_map(into_change).collect();
        let next = match (page.next_link, page.delta_link) {
            (Some(n), _) => PageNext::More(n),
            (None, Some(d)) => PageNext::Done(d),
            (None, None) => {
                return Err(ProviderError::Permanent {
                    status: None,
                    reason: "Graph ended a delta round without a delta link".into(),
                });
            }
        };
        Ok(ChangePage { changes, next })
    }

    async fn insert(
        &self,
        token: &str,
        calendar: &str,
        key: &str,
        stamp: &str,
        data: &AppointmentData,
    ) -> Result<RemoteEvent, ProviderError> {
        let mut event = body(data);
        // Graph returns the first event again for a repeated transactionId.
        event["transactionId"] = json!(key);
        event["singleValueExtendedProperties"] = json!([{"id": CALSYNC_ID_PROPERTY, "value": stamp}]);
        let resp = self
            .http
            .post(self.events_url(Some(calendar), None))
            .bearer_auth(token)
            .header("Prefer", PREFER_READ)
            .json(&event)
            .send()
            .await
            .map_err(ProviderError::transport)?;
        let v: Value = json_or_error(resp).await?;
        let id = text(&v, "id").ok_or_else(|| ProviderError::Permanent {
            status: None,
            reason: "Graph created an event without an id".into(),
        })?;
        let mut created = into_remote(id, &v);
        created.calsync_id.get_or_insert_with(|| stamp.to_owned());
        Ok(created)
    }

    async fn replace(
        &self,
        token: &str,
        id: &str,
        etag: &str,
        data: &AppointmentData,
    ) -> Result<RemoteEvent, ProviderError> {
        let resp = self
            .http
            .patch(self.events_url(None, Some(id)))
            .bearer_auth(token)
            .header("Prefer", PREFER_READ)
            .header(reqwest::header::IF_MATCH, etag)
            .json(&body(data))
            .send()
            .await
            .map_err(ProviderError::transport)?;
        let v: Value = json_or_error(resp).await?;
        Ok(into_remote(id.to_owned(), &v))
    }

    async fn remove(&self, token: &str, id: &str, etag: &str) -> Result<(), ProviderError> {
        let resp = self
            .http
            .delete(self.events_url(None, Some(id)))
            .bearer_auth(token)
            .header(reqwest::header::IF_MATCH, etag)
            .send()
            .await
            .map_err(ProviderError::transport)?;
        if resp.status().is_success() {
            return Ok(());
        }
        match json_or_error::<Value>(resp).await {
            Ok(_) | Err(ProviderError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl CalendarProvider for GraphCalendar {
    fn account<'a>(&'a self, token: &'a str) -> ProviderFuture<'a, AccountIdentity> {
        Box::pin(self.api.account(&self.http, token))
    }

    fn list_calendars<'a>(&'a self, token: &'a str) -> ProviderFuture<'a, Vec<RemoteCalendar>> {
        Box::pin(self.api.calendars(&self.http, token))
    }

    fn list_changes<'a>(
        &'a self,
        token: &'a str,
        calendar: &'a str,
        from: ListFrom<'a>,
    ) -> ProviderFuture<'a, ChangePage> {
        Box::pin(self.changes(token, calendar, from))
    }

    fn get<'a>(&'a self, token: &'a str, _calendar: &'a str, id: &'a str) -> ProviderFuture<'a, Option<RemoteEvent>> {
        Box::pin(self.fetch(token, id))
    }

    fn create<'a>(
        &'a self,
        token: &'a str,
        calendar: &'a str,
        key: &'a str,
        stamp: &'a str,
        data: &'a AppointmentData,
    ) -> ProviderFuture<'a, RemoteEvent> {
        Box::pin(self.insert(token, calendar, key, stamp, data))
    }

    fn removals_may_be_moves(&self) -> bool {
        true
    }

    fn update<'a>(
        &'a self,
        token: &'a str,
        _calendar: &'a str,
        id: &'a str,
        etag: &'a str,
        data: &'a AppointmentData,
    ) -> ProviderFuture<'a, RemoteEvent> {
        Box::pin(self.replace(token, id, etag, data))
    }

    fn delete<'a>(&'a self, token: &'a str, _calendar: &'a str, id: &'a str, etag: &'a str) -> ProviderFuture<'a, ()> {
        Box::pin(self.remove(token, id, etag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_zone_names_map_to_iana() {
        assert_eq!(zone_named("W. Europe Standard Time"), Some(Tz::Europe__Berlin));
        assert_eq!(zone_named("Eastern Standard Time"), Some(Tz::America__New_York));
        assert_eq!(zone_named("AUS Eastern Standard Time"), Some(Tz::Australia__Sydney));
        assert_eq!(zone_named("Europe/Paris"), Some(Tz::Europe__Paris));
        assert_eq!(zone_named("tzone://Microsoft/Custom"), None);
    }
}
