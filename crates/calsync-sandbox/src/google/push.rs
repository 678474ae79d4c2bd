//! Google push channels: `events.watch`, `channels.stop`, and the body-less `sync` /
//! `exists` POSTs with Google's `X-Goog-*` headers (B.9).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};

use super::calendar::{EVENTS_READ, Query, calendar_mut, json_body, respond};
use super::error::{ApiError, ApiResult};
use super::list::LIST_PARAMS;
use super::oauth::GoogleAuth;
use crate::state::{Shared, World};
use crate::webhook::{self, Coalesce, Delivery, RetryOn};

#[derive(Debug, serde::Serialize, Deserialize)]
pub(crate) struct Channel {
    id: String,
    resource_id: String,
    resource_uri: String,
    token: Option<String>,
    address: url::Url,
    expiration_ms: i64,
    email: String,
    cal_id: String,
    /// Last message number sent; numbers rise but may skip.
    msg_no: u64,
    timeout: Duration,
}

/// The channel resource as clients send it (discovery `Channel`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)] // Some fields are accepted only because clients may echo them.
struct ChannelReq {
    id: Option<String>,
    #[serde(rename = "type")]
    kind_: Option<String>,
    address: Option<String>,
    token: Option<String>,
    expiration: Option<Value>,
    params: Option<Value>,
    payload: Option<bool>,
    resource_id: Option<String>,
    resource_uri: Option<String>,
    kind: Option<String>,
}

fn parse_channel(body: &[u8]) -> ApiResult<ChannelReq> {
    serde_json::from_value(json_body(body)?)
        .map_err(|e| ApiError::invalid(&format!("Invalid JSON payload received. {e}")))
}

fn http_date(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn delivery(ch: &Channel, state: &str) -> Delivery {
    let mut headers = vec![
        ("X-Goog-Channel-ID".to_owned(), ch.id.clone()),
        ("X-Goog-Channel-Expiration".to_owned(), http_date(ch.expiration_ms)),
        ("X-Goog-Resource-ID".to_owned(), ch.resource_id.clone()),
        ("X-Goog-Resource-URI".to_owned(), ch.resource_uri.clone()),
        ("X-Goog-Resource-State".to_owned(), state.to_owned()),
        ("X-Goog-Message-Number".to_owned(), ch.msg_no.to_string()),
        ("User-Agent".to_owned(), "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)".into()),
    ];
    if let Some(t) = &ch.token {
        headers.push(("X-Goog-Channel-Token".to_owned(), t.clone()));
    }
    Delivery {
        url: ch.address.clone(),
        headers,
        body: Vec::new(),
        timeout: ch.timeout,
        retries: 3,
        retry_on: RetryOn::GoogleServerErrors,
        // The `sync` handshake goes out at once; `exists` messages coalesce per channel.
        coalesce: (state == "exists").then(|| (format!("google:{}", ch.id), Coalesce::Replace)),
    }
}

/// Queues an `exists` message on every live channel watching `cal_id`; expired channels
/// are dropped here.
pub(crate) fn notify(world: &mut World, cal_id: &str, now_ms: i64) {
    world.google.channels.retain(|_, c| c.expiration_ms > now_ms);
    let mut out = Vec::new();
    let World { rng, google, .. } = world;
    for ch in google.channels.values_mut().filter(|c| c.cal_id == cal_id) {
        ch.msg_no += rng.random_range(1..=3);
        out.push(delivery(ch, "exists"));
    }
    world.outbox.extend(out);
}

pub(super) async fn watch(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path(cal_id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    respond(watch_inner(&shared, auth, Some(&cal_id), raw, &body))
}

/// `calendarList.watch`: pushes when calendarList entries change.
pub(super) async fn watch_calendar_list(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    respond(watch_inner(&shared, auth, None, raw, &body))
}

/// The channel key of an account's calendar list (event channels use the calendar id).
pub(crate) fn calendar_list_key(email: &str) -> String {
    format!("calendarList:{email}")
}

fn watch_inner(
    shared: &Shared,
    auth: ApiResult<GoogleAuth>,
    cal_id: Option<&str>,
    raw: Option<String>,
    body: &[u8],
) -> ApiResult<Response> {
    let auth = auth?;
    match cal_id {
        Some(_) => {
            auth.require(EVENTS_READ)?;
            Query::parse(raw, LIST_PARAMS)?;
        }
        None => {
            auth.require(super::calendar::CALENDARS_READ)?;
            Query::parse(raw, &["maxResults", "pageToken", "syncToken", "showDeleted", "showHidden", "minAccessRole"])?;
        }
    }
    let req = parse_channel(body)?;
    let id = req.id.filter(|i| !i.is_empty()).ok_or_else(|| ApiError::required("Required channel id."))?;
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_+/=".contains(&b)) {
        return Err(ApiError::invalid("Invalid channel id."));
    }
    match req.kind_.as_deref() {
        Some("web_hook") => {}
        Some(_) => return Err(ApiError::invalid("Invalid channel type.")),
        None => return Err(ApiError::required("Required channel type.")),
    }
    let address = req.address.ok_or_else(|| ApiError::required("Required channel address."))?;
    let address =
        webhook::check_address(&address).map_err(|m| ApiError::new(400, "global", "push.webhookUrlNotHttps", &m))?;
    if req.token.as_ref().is_some_and(|t| t.len() > 256) {
        return Err(ApiError::invalid("Channel token too long."));
    }
    let now = shared.clock.now_ms();
    let max = now + shared.config.google_channel_max_ttl.as_millis() as i64;
    let expiration = match &req.expiration {
        None => max,
        Some(v) => {
            let ms = match v {
                Value::String(s) => s.parse::<i64>().ok(),
                Value::Number(n) => n.as_i64(),
                _ => None,
            }
            .ok_or_else(|| ApiError::invalid("Invalid channel expiration."))?;
            if ms <= now {
                return Err(ApiError::invalid("Channel expiration must be in the future."));
            }
            ms.min(max)
        }
    };
    let mut world = shared.world();
    let (cal_key, path) = match cal_id {
        Some(c) => {
            let key = calendar_mut(&mut world.google, &auth, c)?.id.clone();
            (key.clone(), format!("/google/calendar/v3/calendars/{key}/events?alt=json"))
        }
        None => (calendar_list_key(&auth.email), "/google/calendar/v3/users/me/calendarList?alt=json".to_owned()),
    };
    if world.google.channels.contains_key(&id) {
        return Err(ApiError::new(400, "global", "channelIdNotUnique", "Channel id not unique."));
    }
    // Google's resource id names the watched resource: every channel on it gets the same one.
    let resource_id = resource_id_of(&cal_key);
    let resource_uri = shared.public_url(&path);
    let ch = Channel {
        id: id.clone(),
        resource_id,
        resource_uri,
        token: req.token,
        address,
        expiration_ms: expiration,
        email: auth.email.clone(),
        cal_id: cal_key,
        msg_no: 1,
        timeout: shared.config.webhook_timeout,
    };
    let mut out = json!({
        "kind": "api#channel",
        "id": ch.id,
        "resourceId": ch.resource_id,
        "resourceUri": ch.resource_uri,
        "expiration": expiration.to_string(),
    });
    if let Some(t) = &ch.token {
        out["token"] = json!(t);
    }
    // The `sync` message (number 1) may reach the receiver before this reply does.
    world.outbox.push(delivery(&ch, "sync"));
    world.google.channels.insert(id, ch);
    Ok(Json(out).into_response())
}

/// A stable opaque id for a watched resource (the same across channels and restarts).
fn resource_id_of(key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("resource:{key}").as_bytes());
    digest.iter().take(13).map(|b| format!("{b:02x}")).collect::<String>()[..26].to_owned()
}

pub(super) async fn stop(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(EVENTS_READ)?;
        let _q = Query::parse(raw, &[])?;
        let req = parse_channel(&body)?;
        let (Some(id), Some(rid)) = (req.id, req.resource_id) else {
            return Err(ApiError::required("Required channel id and resourceId."));
        };
        let mut world = shared.world();
        // Only the creating user may stop a channel, and only with its resourceId.
        match world.google.channels.get(&id) {
            Some(c) if c.resource_id == rid && c.email == auth.email => {}
            _ => return Err(ApiError::not_found()),
        }
        world.google.channels.remove(&id);
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}
