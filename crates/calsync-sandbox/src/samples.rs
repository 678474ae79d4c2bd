//! Sample events for an account a newcomer creates on the consent page, so the first sync
//! of the embedded default shows real work: a weekly meeting with one moved and one
//! cancelled occurrence, an all-day event, and a call in another time zone, all in the next
//! weeks by the sandbox clock.
//!
//! They are written through the provider's own API routes (in process, marked internal so
//! they are neither counted nor faulted nor throttled), so they are exactly what a client
//! would have made: etags, change log, series expansion and all.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, header};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::state::{Provider, Shared};
use crate::{google, microsoft};

/// Marks a request made by the sandbox itself (an extension, so no client can forge it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Internal;

/// Fills a new account with the samples. Failures are logged: a consent must not fail
/// because a sample could not be written.
pub(crate) async fn seed(shared: &Arc<Shared>, provider: Provider, email: &str) {
    let monday = next_monday(shared.clock.now());
    let result = match provider {
        Provider::Google => seed_google(shared, email, monday).await,
        Provider::Microsoft => seed_graph(shared, email, monday).await,
    };
    if let Err(e) = result {
        tracing::warn!(provider = ?provider, error = %e, "sandbox sample events incomplete");
    }
}

/// The Monday after `now` (a week ahead when `now` is a Monday).
fn next_monday(now: DateTime<Utc>) -> NaiveDate {
    let today = now.date_naive();
    today + Duration::days(7 - i64::from(today.weekday().num_days_from_monday()))
}

struct Client {
    router: axum::Router,
    token: String,
}

impl Client {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(ext) = req.extensions_mut() {
            ext.insert(Internal);
        }
        let req = req.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string()))).map_err(|e| e.to_string())?;
        let resp = self.router.clone().oneshot(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22).await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{method} {path}: {status} {}", String::from_utf8_lossy(&bytes)));
        }
        Ok(if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).map_err(|e| e.to_string())? })
    }
}

fn id_of(v: &Value) -> Result<String, String> {
    v["id"].as_str().map(str::to_owned).ok_or_else(|| format!("no id in {v}"))
}

async fn seed_google(shared: &Arc<Shared>, email: &str, monday: NaiveDate) -> Result<(), String> {
    let token = google::internal_token(shared, email);
    let api = Client { router: google::router(shared.clone()), token };
    let events = "/google/calendar/v3/calendars/primary/events";
    let d = |days: i64| (monday + Duration::days(days)).format("%Y-%m-%d").to_string();
    let weekly = api
        .call(
            Method::POST,
            events,
            Some(json!({
                "summary": "Team sync",
                "description": "Weekly planning: open matters, hearings, deadlines.",
                "location": "Room 2.14",
                "start": {"dateTime": format!("{}T10:00:00", d(0)), "timeZone": "Europe/Berlin"},
                "end": {"dateTime": format!("{}T10:30:00", d(0)), "timeZone": "Europe/Berlin"},
                "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=8"],
            })),
        )
        .await?;
    let instances =
        api.call(Method::GET, &format!("{events}/{}/instances?maxResults=3", id_of(&weekly)?), None).await?;
    let items = instances["items"].as_array().cloned().unwrap_or_default();
    if let [_, moved, cancelled, ..] = items.as_slice() {
        // The second meeting moves to Tuesday afternoon; the third is cancelled.
        api.call(
            Method::PATCH,
            &format!("{events}/{}", id_of(moved)?),
            Some(json!({
                "start": {"dateTime": format!("{}T15:00:00", d(8)), "timeZone": "Europe/Berlin"},
                "end": {"dateTime": format!("{}T15:30:00", d(8)), "timeZone": "Europe/Berlin"},
            })),
        )
        .await?;
        api.call(Method::DELETE, &format!("{events}/{}", id_of(cancelled)?), None).await?;
    }
    api.call(
        Method::POST,
        events,
        Some(json!({"summary": "Firm offsite", "start": {"date": d(10)}, "end": {"date": d(12)},
            "transparency": "transparent"})),
    )
    .await?;
    api.call(
        Method::POST,
        events,
        Some(json!({
            "summary": "Call with the Tokyo office",
            "start": {"dateTime": format!("{}T09:00:00", d(3)), "timeZone": "Asia/Tokyo"},
            "end": {"dateTime": format!("{}T09:45:00", d(3)), "timeZone": "Asia/Tokyo"},
        })),
    )
    .await?;
    Ok(())
}

async fn seed_graph(shared: &Arc<Shared>, email: &str, monday: NaiveDate) -> Result<(), String> {
    let token = microsoft::control_account(shared, email, "UTC").access_token;
    let api = Client { router: microsoft::router(shared.clone()), token };
    let g = "/microsoft/graph/v1.0";
    let d = |days: i64| (monday + Duration::days(days)).format("%Y-%m-%d").to_string();
    let weekly = api
        .call(
            Method::POST,
            &format!("{g}/me/events"),
            Some(json!({
                "subject": "Team sync",
                "body": {"contentType": "text", "content": "Weekly planning: open matters, hearings, deadlines."},
                "location": {"displayName": "Room 2.14"},
                "start": {"dateTime": format!("{}T10:00:00", d(0)), "timeZone": "W. Europe Standard Time"},
                "end": {"dateTime": format!("{}T10:30:00", d(0)), "timeZone": "W. Europe Standard Time"},
                "recurrence": {
                    "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                    "range": {"type": "numbered", "startDate": d(0), "numberOfOccurrences": 8},
                },
            })),
        )
        .await?;
    let instances = api
        .call(
            Method::GET,
            &format!(
                "{g}/me/events/{}/instances?startDateTime={}T00:00:00Z&endDateTime={}T00:00:00Z",
                id_of(&weekly)?,
                d(0),
                d(21)
            ),
            None,
        )
        .await?;
    let mut items = instances["value"].as_array().cloned().unwrap_or_default();
    items.sort_by(|a, b| a["start"]["dateTime"].as_str().cmp(&b["start"]["dateTime"].as_str()));
    if let [_, moved, cancelled, ..] = items.as_slice() {
        api.call(
            Method::PATCH,
            &format!("{g}/me/events/{}", id_of(moved)?),
            Some(json!({
                "start": {"dateTime": format!("{}T15:00:00", d(8)), "timeZone": "W. Europe Standard Time"},
                "end": {"dateTime": format!("{}T15:30:00", d(8)), "timeZone": "W. Europe Standard Time"},
            })),
        )
        .await?;
        api.call(Method::DELETE, &format!("{g}/me/events/{}", id_of(cancelled)?), None).await?;
    }
    api.call(
        Method::POST,
        &format!("{g}/me/events"),
        Some(json!({
            "subject": "Firm offsite", "isAllDay": true, "showAs": "free",
            "start": {"dateTime": format!("{}T00:00:00", d(10)), "timeZone": "UTC"},
            "end": {"dateTime": format!("{}T00:00:00", d(12)), "timeZone": "UTC"},
        })),
    )
    .await?;
    api.call(
        Method::POST,
        &format!("{g}/me/events"),
        Some(json!({
            "subject": "Call with the Tokyo office",
            "start": {"dateTime": format!("{}T09:00:00", d(3)), "timeZone": "Tokyo Standard Time"},
            "end": {"dateTime": format!("{}T09:45:00", d(3)), "timeZone": "Tokyo Standard Time"},
        })),
    )
    .await?;
    Ok(())
}
