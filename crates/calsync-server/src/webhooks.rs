//! Webhook receivers: Google push channels and Graph change and lifecycle notifications.
//!
//! A delivery carries no change data and is trusted for nothing but "look now": once its
//! secret checks out (constant time, against the hash the channel was opened with) its
//! connection is made due and the worker woken. The answer comes at once (a few indexed
//! queries). Duplicate, late and reordered deliveries only make a due connection due again; a
//! forged one changes nothing. The sync that follows reads what changed from the cursor.

use std::collections::BTreeSet;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use calsync_domain::connection::Provider;
use calsync_domain::ids::{ConnectionId, FirmId};
use calsync_engine::sync::{GOOGLE_PATH, MICROSOFT_LIFECYCLE_PATH, MICROSOFT_PATH, secret_hash};
use calsync_store::WebhookChannel;
use serde::Deserialize;

use crate::crypto::constant_time_eq;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(GOOGLE_PATH, post(google))
        .route(MICROSOFT_PATH, post(microsoft))
        .route(MICROSOFT_LIFECYCLE_PATH, post(microsoft_lifecycle))
}

/// The longest Graph validation token echoed back (Graph's are a few hundred characters).
const MAX_VALIDATION_TOKEN: usize = 2048;
/// The most notifications one Graph delivery may carry (Graph batches far fewer).
const MAX_BATCH: usize = 1000;

fn count(provider: Provider, outcome: &'static str) {
    metrics::counter!("calsync_webhook_deliveries_total", "provider" => provider.as_str(), "outcome" => outcome)
        .increment(1);
}

/// Whether `secret` is the channel's.
fn genuine(ch: &WebhookChannel, secret: Option<&str>) -> bool {
    secret.is_some_and(|s| constant_time_eq(secret_hash(s).as_bytes(), ch.secret_hash.as_bytes()))
}

/// Makes the connections due and wakes this process's worker.
async fn make_due(state: &AppState, due: &BTreeSet<(FirmId, ConnectionId)>) -> Result<(), StatusCode> {
    for (firm, connection) in due {
        if let Err(e) = state.db.mark_due(*firm, *connection).await {
            tracing::error!(connection_id = %connection, error = %e, "a webhook could not make its connection due");
            return Err(StatusCode::INTERNAL_SERVER_ERROR);
        }
    }
    if !due.is_empty()
        && let Some(w) = &state.worker
    {
        w.wake();
    }
    Ok(())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A Google push message: `X-Goog-Channel-ID` names the channel (calsync's id), the token and
/// the resource id must match it. `sync` opens a channel; `exists` / `not_exists` say the
/// calendar changed.
async fn google(State(state): State<AppState>, headers: HeaderMap) -> StatusCode {
    let provider = Provider::Google;
    let Some(id) = header_str(&headers, "x-goog-channel-id").and_then(|v| v.parse::<uuid::Uuid>().ok()) else {
        count(provider, "invalid");
        return StatusCode::BAD_REQUEST;
    };
    let ch = match state.db.channel_by_id(id).await {
        Ok(Some(ch)) if ch.provider == provider => ch,
        Ok(_) => {
            // A channel calsync stopped or never opened.
            count(provider, "unknown");
            return StatusCode::NOT_FOUND;
        }
        Err(e) => {
            tracing::error!(error = %e, "webhook channel lookup failed");
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    };
    // The `sync` message may come before the channel's resource id is recorded.
    let opening = ch.remote_id.starts_with(calsync_engine::sync::PENDING);
    let resource_matches = opening
        || header_str(&headers, "x-goog-resource-id")
            .is_some_and(|r| constant_time_eq(r.as_bytes(), ch.remote_id.as_bytes()));
    if !genuine(&ch, header_str(&headers, "x-goog-channel-token")) || !resource_matches {
        tracing::warn!(channel = %ch.id, "webhook delivery with a wrong token refused");
        count(provider, "forged");
        return StatusCode::FORBIDDEN;
    }
    match header_str(&headers, "x-goog-resource-state") {
        Some("sync") => {
            count(provider, "handshake");
            StatusCode::OK
        }
        // On a channel still opening too: its token checked out, and the sync's listing may
        // already be past the change.
        Some("exists" | "not_exists") => {
            if let Err(e) = state.db.record_delivery(ch.firm_id, ch.id).await {
                tracing::warn!(channel = %ch.id, error = %e, "webhook delivery not counted");
            }
            let due = BTreeSet::from([(ch.firm_id, ch.connection_id)]);
            match make_due(&state, &due).await {
                Ok(()) => {
                    count(provider, "accepted");
                    StatusCode::OK
                }
                Err(s) => s,
            }
        }
        _ => {
            count(provider, "invalid");
            StatusCode::BAD_REQUEST
        }
    }
}

#[derive(Deserialize)]
struct Validation {
    #[serde(rename = "validationToken")]
    validation_token: Option<String>,
}

/// Graph's handshake: the token, URL-decoded, echoed as `text/plain`.
fn validation_echo(provider: Provider, q: &Validation) -> Option<Response> {
    let token = q.validation_token.as_ref()?;
    if token.len() > MAX_VALIDATION_TOKEN {
        count(provider, "invalid");
        return Some(StatusCode::BAD_REQUEST.into_response());
    }
    count(provider, "validation");
    Some(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], token.clone()).into_response())
}

#[derive(Deserialize)]
struct Notifications {
    value: Vec<Notification>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    subscription_id: String,
    client_state: Option<String>,
    lifecycle_event: Option<String>,
}

/// What a batch came to.
#[derive(Default)]
struct Tally {
    accepted: usize,
    forged: usize,
}

/// The genuine notifications of a batch, each with its channel. Unknown subscriptions (one
/// calsync deleted, whose last deliveries are still on their way) and forged ones are dropped.
async fn genuine_items(
    state: &AppState,
    items: Vec<Notification>,
    tally: &mut Tally,
) -> Result<Vec<(WebhookChannel, Notification)>, StatusCode> {
    let provider = Provider::Microsoft;
    if items.len() > MAX_BATCH {
        count(provider, "invalid");
        return Err(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let mut out = Vec::new();
    // One lookup per subscription, however many of its notifications the batch holds.
    let mut known: std::collections::HashMap<String, Option<WebhookChannel>> = std::collections::HashMap::new();
    for n in items {
        if !known.contains_key(&n.subscription_id) {
            match state.db.channel_by_remote_id(provider, &n.subscription_id).await {
                Ok(ch) => known.insert(n.subscription_id.clone(), ch),
                Err(e) => {
                    tracing::error!(error = %e, "webhook channel lookup failed");
                    return Err(StatusCode::INTERNAL_SERVER_ERROR);
                }
            };
        }
        let Some(ch) = known.get(&n.subscription_id).cloned().flatten() else {
            count(provider, "unknown");
            continue;
        };
        if !genuine(&ch, n.client_state.as_deref()) {
            tracing::warn!(channel = %ch.id, "webhook notification with a wrong clientState dropped");
            count(provider, "forged");
            tally.forged += 1;
            continue;
        }
        tally.accepted += 1;
        out.push((ch, n));
    }
    Ok(out)
}

fn parse(body: &Bytes) -> Result<Notifications, (StatusCode, String)> {
    serde_json::from_slice(body).map_err(|e| {
        count(Provider::Microsoft, "invalid");
        (StatusCode::BAD_REQUEST, format!("body: not a notification batch ({e})"))
    })
}

/// The answer to a batch: accepted when anything in it was genuine or merely stale; refused
/// when all it held was forged.
fn answer(t: &Tally) -> Response {
    if t.forged > 0 && t.accepted == 0 { StatusCode::FORBIDDEN } else { StatusCode::ACCEPTED }.into_response()
}

/// What every Graph delivery goes through first: the validation handshake (answered at once),
/// then the batch's genuine items with their channels. `Err` is the answer to give.
async fn graph_batch(
    state: &AppState,
    q: &Validation,
    body: &Bytes,
) -> Result<(Vec<(WebhookChannel, Notification)>, Tally), Response> {
    if let Some(r) = validation_echo(Provider::Microsoft, q) {
        return Err(r);
    }
    let batch = parse(body).map_err(IntoResponse::into_response)?;
    let mut tally = Tally::default();
    let items = genuine_items(state, batch.value, &mut tally).await.map_err(IntoResponse::into_response)?;
    Ok((items, tally))
}

/// Graph change notifications (`value` may hold several, for several subscriptions).
async fn microsoft(State(state): State<AppState>, Query(q): Query<Validation>, body: Bytes) -> Response {
    let provider = Provider::Microsoft;
    let (items, tally) = match graph_batch(&state, &q, &body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut due = BTreeSet::new();
    let mut channels = BTreeSet::new();
    for (ch, _) in &items {
        due.insert((ch.firm_id, ch.connection_id));
        channels.insert((ch.firm_id, ch.id));
        count(provider, "accepted");
    }
    for (firm, id) in channels {
        if let Err(e) = state.db.record_delivery(firm, id).await {
            tracing::warn!(channel = %id, error = %e, "webhook delivery not counted");
        }
    }
    if let Err(s) = make_due(&state, &due).await {
        return s.into_response();
    }
    answer(&tally)
}

/// Graph lifecycle notifications: `reauthorizationRequired` (the subscription is paused until
/// the next sync reauthorizes it), `subscriptionRemoved` (forgotten; the next sync opens a new
/// one and its delta catches up), `missed` (the next sync's delta catches up). Each makes the
/// connection due at once.
async fn microsoft_lifecycle(State(state): State<AppState>, Query(q): Query<Validation>, body: Bytes) -> Response {
    let provider = Provider::Microsoft;
    let (items, tally) = match graph_batch(&state, &q, &body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut due = BTreeSet::new();
    for (ch, n) in items {
        let done = match n.lifecycle_event.as_deref() {
            Some("reauthorizationRequired") => state.db.flag_reauthorization(ch.firm_id, ch.id).await,
            Some("subscriptionRemoved") => state.db.delete_channel(ch.firm_id, ch.id).await,
            Some("missed") => Ok(()),
            other => {
                tracing::info!(channel = %ch.id, event = ?other, "unknown lifecycle event: the connection syncs");
                Ok(())
            }
        };
        if let Err(e) = done {
            tracing::error!(channel = %ch.id, error = %e, "lifecycle event not recorded");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        count(provider, "lifecycle");
        due.insert((ch.firm_id, ch.connection_id));
    }
    if let Err(s) = make_due(&state, &due).await {
        return s.into_response();
    }
    answer(&tally)
}
