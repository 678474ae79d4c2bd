//! [`CalendarProvider`] for Google Calendar v3: `events.list` with `syncToken`/`pageToken`
//! (`singleEvents=false`, `showDeleted=true`), our own event id as the idempotency key,
//! `If-Match` on writes, `sendUpdates=none` (guests are never mailed by a sync), and the
//! appointment id in a private extended property.

use std::collections::HashMap;

use calsync_domain::appointment::{
    AppointmentData, AppointmentStatus, Attendee, ResponseStatus, ShowAs, Visibility, When,
};
use calsync_domain::recurrence::OriginalStart;
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::calendar::{
    CalendarProvider, Change, ChangePage, ListFrom, PageNext, ProviderFuture, RemoteEvent, Watch, WatchRequest,
};
use crate::google::{GoogleApi, done_or_gone, json_or_error};
use crate::html_text::{description_for_html_field, description_text};
use crate::{AccountIdentity, ProviderError, RemoteCalendar};

/// The private extended property that carries the appointment id.
pub const CALSYNC_ID_PROPERTY: &str = "calsyncId";
/// Google's largest page for `events.list`: fewer round trips on a big first listing.
const PAGE_SIZE: &str = "2500";

/// Google Calendar behind the provider trait.
#[derive(Debug, Clone)]
pub struct GoogleCalendar {
    pub api: GoogleApi,
    pub http: reqwest::Client,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(default)]
    items: Vec<Event>,
    next_page_token: Option<String>,
    next_sync_token: Option<String>,
    /// The calendar's zone: events without their own are in it.
    time_zone: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    id: String,
    #[serde(default)]
    etag: String,
    status: Option<String>,
    updated: Option<DateTime<Utc>>,
    summary: Option<String>,
    description: Option<String>,
    location: Option<String>,
    start: Option<Time>,
    end: Option<Time>,
    #[serde(default)]
    attendees: Vec<Guest>,
    #[serde(default)]
    recurrence: Vec<String>,
    recurring_event_id: Option<String>,
    original_start_time: Option<Time>,
    extended_properties: Option<Extended>,
    visibility: Option<String>,
    transparency: Option<String>,
    organizer: Option<Person>,
}

#[derive(Deserialize)]
struct Person {
    email: Option<String>,
    #[serde(rename = "self")]
    is_self: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Time {
    date: Option<NaiveDate>,
    date_time: Option<DateTime<FixedOffset>>,
    time_zone: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Guest {
    email: Option<String>,
    display_name: Option<String>,
    #[serde(default)]
    resource: bool,
    response_status: Option<String>,
}

#[derive(Deserialize)]
struct Extended {
    #[serde(default)]
    private: HashMap<String, String>,
}

/// Google event ids are 5–1024 characters of base32hex (`0-9a-v`). An appointment id (a UUID)
/// without its dashes already is one; anything else is encoded.
pub fn event_id_for(key: &str) -> String {
    let plain: String = key.chars().filter(|c| *c != '-').collect::<String>().to_ascii_lowercase();
    if (5..=1024).contains(&plain.len()) && plain.chars().all(|c| matches!(c, '0'..='9' | 'a'..='v')) {
        plain
    } else {
        data_encoding::BASE32HEX_NOPAD.encode(key.as_bytes()).to_ascii_lowercase()
    }
}

impl Event {
    fn into_change(self, calendar_zone: Option<&str>) -> Change {
        if self.status.as_deref() == Some("cancelled")
            && let (Some(master), Some(original_start)) = (&self.recurring_event_id, self.original_start())
        {
            return Change::OccurrenceCancelled {
                id: self.id.clone(),
                etag: self.etag.clone(),
                master: master.clone(),
                original_start,
            };
        }
        // An invitation its organizer cancelled stays, cancelled, in the attendee's calendar
        // with its details: the appointment is cancelled, not deleted. Any other cancelled
        // item is a deletion.
        if self.status.as_deref() == Some("cancelled") && (self.organized_elsewhere().is_none() || self.start.is_none())
        {
            return Change::Deleted { id: self.id };
        }
        Change::Upsert(Box::new(self.into_remote(calendar_zone)))
    }

    /// An instance's key in its series: `originalStartTime` as a date or an instant.
    fn original_start(&self) -> Option<OriginalStart> {
        let t = self.original_start_time.as_ref()?;
        match (t.date, t.date_time) {
            (Some(d), _) => Some(OriginalStart::Date(d)),
            (None, Some(at)) => Some(OriginalStart::At(at.with_timezone(&Utc))),
            _ => None,
        }
    }

    /// The organizer's address when it is not the calendar's owner.
    fn organized_elsewhere(&self) -> Option<String> {
        let o = self.organizer.as_ref().filter(|o| o.is_self != Some(true))?;
        o.email.as_deref().map(str::to_ascii_lowercase)
    }

    fn into_remote(self, calendar_zone: Option<&str>) -> RemoteEvent {
        let organizer = self.organized_elsewhere();
        let original_start = self.original_start();
        let calsync_id = self.extended_properties.and_then(|mut e| e.private.remove(CALSYNC_ID_PROPERTY));
        let zone = self
            .start
            .as_ref()
            .and_then(|t| t.time_zone.as_deref())
            .or(calendar_zone)
            .and_then(|z| z.parse::<Tz>().ok())
            .unwrap_or(Tz::UTC);
        let when = match (&self.start, &self.end) {
            (Some(Time { date: Some(s), .. }), end) => {
                let e = end.as_ref().and_then(|t| t.date).filter(|e| e > s).unwrap_or(*s + Duration::days(1));
                Some(When::AllDay { start: *s, end: e })
            }
            (Some(Time { date_time: Some(s), .. }), end) => {
                let s = s.with_timezone(&Utc);
                let e = end.as_ref().and_then(|t| t.date_time).map(|e| e.with_timezone(&Utc)).filter(|e| *e >= s);
                Some(When::Timed { start: s, end: e.unwrap_or(s) })
            }
            _ => None,
        };
        let data = when.map(|when| AppointmentData {
            title: self.summary.filter(|s| !s.trim().is_empty()).unwrap_or_else(|| "(No title)".into()),
            // Google's editor writes a little HTML; calsync keeps text.
            description: self
                .description
                .as_deref()
                .map(|d| calsync_domain::appointment::normalize_description(&description_text(d)))
                .unwrap_or_default(),
            location: self.location.unwrap_or_default(),
            when,
            time_zone: zone,
            attendees: self
                .attendees
                .into_iter()
                .filter(|g| !g.resource)
                .filter_map(|g| {
                    let response = match g.response_status.as_deref() {
                        Some("accepted") => ResponseStatus::Accepted,
                        Some("declined") => ResponseStatus::Declined,
                        Some("tentative") => ResponseStatus::Tentative,
                        _ => ResponseStatus::NeedsAction,
                    };
                    g.email.map(|e| Attendee {
                        email: e.to_ascii_lowercase(),
                        name: g.display_name.unwrap_or_default(),
                        response,
                    })
                })
                .collect(),
            status: match self.status.as_deref() {
                Some("tentative") => AppointmentStatus::Tentative,
                Some("cancelled") => AppointmentStatus::Cancelled,
                _ => AppointmentStatus::Confirmed,
            },
            // `confidential` is Google's older spelling of private.
            visibility: match self.visibility.as_deref() {
                Some("private" | "confidential") => Visibility::Private,
                _ => Visibility::Default,
            },
            show_as: if self.transparency.as_deref() == Some("transparent") { ShowAs::Free } else { ShowAs::Busy },
            // Whether pushes may mail guests is calsync's setting, not the event's.
            send_invitations: false,
            organizer,
            recurrence: self.recurrence.clone(),
            series: None,
        });
        RemoteEvent {
            id: self.id,
            etag: self.etag,
            updated: self.updated,
            calsync_id,
            data,
            recurrence: self.recurrence,
            series_master_id: self.recurring_event_id,
            original_start,
            note: None,
        }
    }
}

/// Google's `responseStatus` for an answer.
fn response_status(r: ResponseStatus) -> &'static str {
    match r {
        ResponseStatus::NeedsAction => "needsAction",
        ResponseStatus::Accepted => "accepted",
        ResponseStatus::Declined => "declined",
        ResponseStatus::Tentative => "tentative",
    }
}

/// `sendUpdates` for a write of `data`: guests are mailed only when the appointment asks.
fn send_updates(data: &AppointmentData) -> &'static str {
    if data.send_invitations && data.organizer.is_none() { "all" } else { "none" }
}

/// The event resource for a write.
fn body(data: &AppointmentData, key: Option<(&str, &str)>) -> Value {
    if data.organizer.is_some() {
        // An attendee's copy: only the attendee's own properties may be written (anything else
        // is 403 `forbiddenForNonOrganizer`), and a PATCH leaves the rest as the organizer set it.
        return json!({"transparency": if data.show_as == ShowAs::Free { "transparent" } else { "opaque" }});
    }
    let time = |t: &When, start: bool| match *t {
        // The zone rides along (Google keeps it on date-only times too), so an all-day
        // appointment comes back in its own zone rather than the calendar's.
        When::AllDay { start: s, end: e } => {
            json!({"date": (if start { s } else { e }).to_string(), "timeZone": data.time_zone.name()})
        }
        When::Timed { start: s, end: e } => {
            let at = if start { s } else { e };
            json!({
                "dateTime": at.with_timezone(&data.time_zone).to_rfc3339_opts(SecondsFormat::Secs, true),
                "timeZone": data.time_zone.name(),
            })
        }
    };
    // Text that would read as HTML goes as HTML, so it reads back as the same text.
    let description = description_for_html_field(&data.description);
    let mut v = json!({
        "summary": data.title,
        "description": description,
        "location": data.location,
        "start": time(&data.when, true),
        "end": time(&data.when, false),
        "status": data.status.as_str(),
        "visibility": data.visibility.as_str(),
        "transparency": if data.show_as == ShowAs::Free { "transparent" } else { "opaque" },
        "attendees": data
            .attendees
            .iter()
            .map(|a| json!({"email": a.email, "displayName": a.name, "responseStatus": response_status(a.response)}))
            .collect::<Vec<_>>(),
    });
    // A master's rule (or none, which makes a former series single); an instance has none of
    // its own.
    if data.series.is_none() {
        v["recurrence"] = json!(data.recurrence);
    }
    if let Some((key, stamp)) = key {
        v["id"] = json!(event_id_for(key));
        v["extendedProperties"] = json!({"private": {CALSYNC_ID_PROPERTY: stamp}});
    }
    v
}

/// An instance's id: `<masterId>_20240105T150000Z`, or `_20240105` in an all-day series.
fn instance_id(master: &str, original: OriginalStart) -> String {
    match original {
        OriginalStart::At(t) => format!("{master}_{}", t.format("%Y%m%dT%H%M%SZ")),
        OriginalStart::Date(d) => format!("{master}_{}", d.format("%Y%m%d")),
    }
}

impl GoogleCalendar {
    fn events_url(&self, calendar: &str, id: Option<&str>) -> Url {
        let mut url = self.api.url("/calendars");
        {
            let mut segs = url.path_segments_mut().expect("an http(s) URL");
            segs.push(calendar).push("events");
            if let Some(id) = id {
                segs.push(id);
            }
        }
        url
    }

    async fn fetch(&self, token: &str, calendar: &str, id: &str) -> Result<Option<RemoteEvent>, ProviderError> {
        let resp = self.http.get(self.events_url(calendar, Some(id))).bearer_auth(token).send().await;
        match json_or_error::<Event>(resp.map_err(ProviderError::transport)?).await {
            Ok(e) if e.status.as_deref() == Some("cancelled") => Ok(None),
            Ok(e) => Ok(Some(e.into_remote(None))),
            Err(ProviderError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn changes(&self, token: &str, calendar: &str, from: ListFrom<'_>) -> Result<ChangePage, ProviderError> {
        let mut req = self.http.get(self.events_url(calendar, None)).bearer_auth(token).query(&[
            ("singleEvents", "false"),
            ("showDeleted", "true"),
            ("maxResults", PAGE_SIZE),
        ]);
        let (page, incremental) = match from {
            // `timeMin` only: with `timeMax` Google ends the listing without a sync token, so
            // the window's far edge is the engine's to apply.
            ListFrom::Full { window, page } => {
                req = req.query(&[("timeMin", window.start.to_rfc3339_opts(SecondsFormat::Secs, true))]);
                (page, false)
            }
            ListFrom::Since { cursor, page } => {
                req = req.query(&[("syncToken", cursor)]);
                (page, true)
            }
        };
        if let Some(p) = page {
            req = req.query(&[("pageToken", p)]);
        }
        let resp = req.send().await.map_err(ProviderError::transport)?;
        let page: Page = match json_or_error(resp).await {
            Ok(p) => p,
            // Google answers a sync token it no longer honours with 410, and one that does not
            // fit the request with 400: either way, list in full again.
            Err(ProviderError::Permanent { status: Some(400), .. }) if incremental => {
                return Err(ProviderError::CursorExpired);
            }
            Err(e) => return Err(e),
        };
        let zone = page.time_zone.clone();
        let changes = page.items.into_iter().map(|e| e.into_change(zone.as_deref())).collect();
        let next = match (page.next_page_token, page.next_sync_token) {
            (Some(p), _) => PageNext::More(p),
            (None, Some(s)) => PageNext::Done(s),
            (None, None) => {
                return Err(ProviderError::Permanent {
                    status: None,
                    reason: "Google ended a listing without a sync token".into(),
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
        let resp = self
            .http
            .post(self.events_url(calendar, None))
            .bearer_auth(token)
            .query(&[("sendUpdates", send_updates(data))])
            .json(&body(data, Some((key, stamp))))
            .send()
            .await
            .map_err(ProviderError::transport)?;
        match json_or_error::<Event>(resp).await {
            Ok(e) => Ok(e.into_remote(None)),
            // The id is ours: a 409 means an earlier attempt created it (its answer was lost).
            Err(ProviderError::Permanent { status: Some(409), .. }) => {
                match self.fetch(token, calendar, &event_id_for(key)).await? {
                    Some(e) if e.calsync_id.as_deref() == Some(stamp) => Ok(e),
                    // It was made, then deleted there before calsync heard of it.
                    None => Err(ProviderError::NotFound),
                    Some(_) => Err(ProviderError::Permanent {
                        status: Some(409),
                        reason: "an event with calsync's id exists but is not this appointment's".into(),
                    }),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn replace(
        &self,
        token: &str,
        calendar: &str,
        id: &str,
        etag: &str,
        data: &AppointmentData,
    ) -> Result<RemoteEvent, ProviderError> {
        let resp = self
            .http
            .patch(self.events_url(calendar, Some(id)))
            .bearer_auth(token)
            .header(reqwest::header::IF_MATCH, etag)
            .query(&[("sendUpdates", send_updates(data))])
            .json(&body(data, None))
            .send()
            .await
            .map_err(ProviderError::transport)?;
        json_or_error::<Event>(resp).await.map(|e| e.into_remote(None))
    }

    async fn occurrence(
        &self,
        token: &str,
        calendar: &str,
        master: &str,
        original: OriginalStart,
        stamp: &str,
        data: &AppointmentData,
    ) -> Result<RemoteEvent, ProviderError> {
        let id = instance_id(master, original);
        // An instance exists from the rule on, changed or not (cancelled ones too): read its
        // etag, then change it only if nobody else did in between.
        let resp = self.http.get(self.events_url(calendar, Some(&id))).bearer_auth(token).send().await;
        let current: Event = json_or_error(resp.map_err(ProviderError::transport)?).await?;
        let mut patch = body(data, None);
        patch["extendedProperties"] = json!({"private": {CALSYNC_ID_PROPERTY: stamp}});
        let resp = self
            .http
            .patch(self.events_url(calendar, Some(&id)))
            .bearer_auth(token)
            .header(reqwest::header::IF_MATCH, current.etag)
            .query(&[("sendUpdates", send_updates(data))])
            .json(&patch)
            .send()
            .await
            .map_err(ProviderError::transport)?;
        json_or_error::<Event>(resp).await.map(|e| e.into_remote(None))
    }

    /// `events.watch` on the calendar: a `web_hook` channel with calsync's id and token.
    async fn open_channel(&self, token: &str, calendar: &str, req: &WatchRequest) -> Result<Watch, ProviderError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Channel {
            resource_id: String,
            expiration: Option<String>,
        }
        let mut url = self.events_url(calendar, None);
        url.path_segments_mut().expect("an http(s) URL").push("watch");
        let body = json!({
            "id": req.id,
            "type": "web_hook",
            "address": req.address,
            "token": req.secret,
            "expiration": req.until.timestamp_millis().to_string(),
        });
        let resp = self.http.post(url).bearer_auth(token).json(&body).send().await.map_err(ProviderError::transport)?;
        let ch: Channel = json_or_error(resp).await?;
        // Google answers with the expiry it granted (at most what was asked).
        let expires_at = ch
            .expiration
            .and_then(|ms| ms.parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_millis)
            .unwrap_or(req.until);
        Ok(Watch { remote_id: ch.resource_id, expires_at })
    }

    /// `channels.stop`; a channel Google no longer knows counts as stopped.
    async fn stop_channel(&self, token: &str, id: &str, resource_id: &str) -> Result<(), ProviderError> {
        let body = json!({ "id": id, "resourceId": resource_id });
        let resp = self
            .http
            .post(self.api.url("/channels/stop"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .map_err(ProviderError::transport)?;
        done_or_gone(resp).await
    }

    async fn remove(&self, token: &str, calendar: &str, id: &str, etag: &str) -> Result<(), ProviderError> {
        let resp = self
            .http
            .delete(self.events_url(calendar, Some(id)))
            .bearer_auth(token)
            .header(reqwest::header::IF_MATCH, etag)
            .query(&[("sendUpdates", "none")])
            .send()
            .await
            .map_err(ProviderError::transport)?;
        done_or_gone(resp).await
    }
}

impl CalendarProvider for GoogleCalendar {
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

    fn get<'a>(&'a self, token: &'a str, calendar: &'a str, id: &'a str) -> ProviderFuture<'a, Option<RemoteEvent>> {
        Box::pin(self.fetch(token, calendar, id))
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

    fn update<'a>(
        &'a self,
        token: &'a str,
        calendar: &'a str,
        id: &'a str,
        etag: &'a str,
        data: &'a AppointmentData,
    ) -> ProviderFuture<'a, RemoteEvent> {
        Box::pin(self.replace(token, calendar, id, etag, data))
    }

    fn write_occurrence<'a>(
        &'a self,
        token: &'a str,
        calendar: &'a str,
        master: &'a str,
        original: OriginalStart,
        stamp: &'a str,
        data: &'a AppointmentData,
    ) -> ProviderFuture<'a, RemoteEvent> {
        Box::pin(self.occurrence(token, calendar, master, original, stamp, data))
    }

    fn delete<'a>(&'a self, token: &'a str, calendar: &'a str, id: &'a str, etag: &'a str) -> ProviderFuture<'a, ()> {
        Box::pin(self.remove(token, calendar, id, etag))
    }

    fn can_watch(&self) -> bool {
        true
    }

    fn watch<'a>(&'a self, token: &'a str, calendar: &'a str, req: &'a WatchRequest) -> ProviderFuture<'a, Watch> {
        Box::pin(self.open_channel(token, calendar, req))
    }

    fn unwatch<'a>(&'a self, token: &'a str, channel_id: &'a str, remote_id: &'a str) -> ProviderFuture<'a, ()> {
        Box::pin(self.stop_channel(token, channel_id, remote_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appointment_ids_are_google_event_ids() {
        assert_eq!(event_id_for("0190c2a0-1234-7abc-8def-0123456789ab"), "0190c2a012347abc8def0123456789ab");
        let odd = event_id_for("Not/A-Uuid!");
        assert!(odd.chars().all(|c| matches!(c, '0'..='9' | 'a'..='v')) && odd.len() >= 5, "{odd}");
    }
}
