//! The control API under `/_sandbox/`: accounts, faults, cursor expiry, revocation, latency,
//! clock, request counters and the webhook delivery switch. Not part of any provider; never counted or faulted.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Json, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::faults::FaultSpec;
use crate::paging::PagingMode;
use crate::state::{Provider, Shared};
use crate::{google, microsoft};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_sandbox/accounts", post(accounts))
        .route("/_sandbox/faults", post(faults).get(list_faults).delete(clear_faults))
        .route("/_sandbox/paging", post(paging))
        .route("/_sandbox/mail", get(mail))
        .route("/_sandbox/expire-cursors", post(expire_cursors))
        .route("/_sandbox/revoke", post(revoke))
        .route("/_sandbox/latency", post(latency))
        .route("/_sandbox/clock", post(clock))
        .route("/_sandbox/requests", get(requests))
        .route("/_sandbox/reset", post(reset))
        .route("/_sandbox/push", post(push))
        .route("/_sandbox/seed-events", post(seed_events))
        .route("/_sandbox/graph-lifecycle", post(graph_lifecycle))
        .route("/_sandbox/google/split-series", post(google_split_series))
        .route("/_sandbox/google/invite", post(google::invite::invite))
        .route("/_sandbox/google/organizer-update", post(google::invite::organizer_update))
        .route("/_sandbox/google/organizer-cancel", post(google::invite::organizer_cancel))
        .route("/_sandbox/microsoft/invite", post(microsoft::meetings::invite))
        .route("/_sandbox/microsoft/organizer-update", post(microsoft::meetings::organizer_update))
        .route("/_sandbox/microsoft/organizer-cancel", post(microsoft::meetings::organizer_cancel))
        .route("/_sandbox/microsoft/mailbox-settings", post(microsoft::meetings::mailbox_settings))
        // Control writes (invitations, organizer changes, lifecycle events) notify webhooks
        // like provider writes do.
        .layer(axum::middleware::from_fn_with_state(shared.clone(), flush_after))
        .with_state(shared)
}

async fn flush_after(
    State(shared): State<Arc<Shared>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let resp = next.run(req).await;
    crate::webhook::flush(&shared);
    resp
}

/// A control-API failure: `{"error": message}` with `status`.
pub(crate) fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({"error": msg.into()}))).into_response()
}

fn bad(msg: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, msg)
}

/// A control request's JSON body, or a 400 saying what is wrong with it.
pub(crate) fn body<T>(payload: Result<Json<T>, JsonRejection>) -> Result<T, Response> {
    payload.map(|Json(v)| v).map_err(|e| bad(e.body_text()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountReq {
    provider: Provider,
    email: String,
    /// IANA zone of the primary calendar (default `UTC`).
    time_zone: Option<String>,
}

async fn accounts(State(shared): State<Arc<Shared>>, payload: Result<Json<AccountReq>, JsonRejection>) -> Response {
    let req = match body(payload) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if !req.email.contains('@') {
        return bad("email must be an e-mail address");
    }
    let tz = req.time_zone.as_deref().unwrap_or("UTC");
    if tz.parse::<chrono_tz::Tz>().is_err() {
        return bad("time_zone must be an IANA zone");
    }
    let tokens = match req.provider {
        Provider::Google => google::control_account(&shared, &req.email, tz),
        Provider::Microsoft => microsoft::control_account(&shared, &req.email, tz),
    };
    Json(json!({
        "email": tokens.email,
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
    }))
    .into_response()
}

/// Tokens minted for a control-API account.
pub(crate) struct Minted {
    pub email: String,
    pub access_token: String,
    pub refresh_token: String,
}

async fn faults(State(shared): State<Arc<Shared>>, payload: Result<Json<FaultSpec>, JsonRejection>) -> Response {
    let spec = match body(payload) {
        Ok(r) => r,
        Err(e) => return e,
    };
    match shared.faults.add(spec) {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => bad(e),
    }
}

async fn list_faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!({"faults": shared.faults.list()})).into_response()
}

/// Disarms every fault rule; accounts, events and the clock stay as they are.
async fn clear_faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!({"cleared": shared.faults.clear()})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PagingReq {
    provider: Provider,
    mode: PagingMode,
}

async fn paging(State(shared): State<Arc<Shared>>, payload: Result<Json<PagingReq>, JsonRejection>) -> Response {
    let req = match body(payload) {
        Ok(r) => r,
        Err(e) => return e,
    };
    shared.set_paging(req.provider, req.mode);
    Json(json!({"provider": req.provider, "mode": req.mode})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MailQuery {
    provider: Option<Provider>,
    account: Option<String>,
}

/// What the services would have e-mailed, oldest first, filtered by provider and account.
async fn mail(State(shared): State<Arc<Shared>>, query: Result<Query<MailQuery>, QueryRejection>) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return bad(e.body_text()),
    };
    let world = shared.world();
    let mail: Vec<_> = world
        .mail
        .iter()
        .filter(|m| q.provider.is_none_or(|p| p == m.provider))
        .filter(|m| q.account.as_deref().is_none_or(|a| a.eq_ignore_ascii_case(&m.account)))
        .collect();
    Json(json!({"mail": mail})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderEmail {
    provider: Provider,
    email: Option<String>,
}

async fn expire_cursors(
    State(shared): State<Arc<Shared>>,
    payload: Result<Json<ProviderEmail>, JsonRejection>,
) -> Response {
    let req = match body(payload) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let mut world = shared.world();
    let n = match req.provider {
        Provider::Google => google::expire_cursors(&mut world, req.email.as_deref()),
        Provider::Microsoft => microsoft::expire_cursors(&mut world, req.email.as_deref()),
    };
    Json(json!({"accounts": n})).into_response()
}

async fn revoke(State(shared): State<Arc<Shared>>, payload: Result<Json<ProviderEmail>, JsonRejection>) -> Response {
    let req = match body(payload) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let Some(email) = req.email else {
        return bad("email is required");
    };
    let now = shared.clock.now_ms();
    let mut world = shared.world();
    let found = match req.provider {
        Provider::Google => google::revoke_account(&mut world, &email),
        Provider::Microsoft => microsoft::revoke_account(&mut world, &email, now),
    };
    if !found {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "no such account"}))).into_response();
    }
    Json(json!({"ok": true})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyReq {
    milliseconds: u64,
}

async fn latency(State(shared): State<Arc<Shared>>, payload: Result<Json<LatencyReq>, JsonRejection>) -> Response {
    match body(payload) {
        Ok(r) => {
            shared.latency_ms.store(r.milliseconds, Ordering::Relaxed);
            Json(json!({"milliseconds": r.milliseconds})).into_response()
        }
        Err(e) => e,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockReq {
    advance_seconds: i64,
}

async fn clock(State(shared): State<Arc<Shared>>, payload: Result<Json<ClockReq>, JsonRejection>) -> Response {
    let req = match body(payload) {
        Ok(r) => r,
        Err(e) => return e,
    };
    // Time only moves forward: expiry and log order depend on it.
    if req.advance_seconds < 0 {
        return bad("advance_seconds must not be negative");
    }
    shared.clock.advance(req.advance_seconds);
    // The offset is part of the saved state.
    shared.dirty.store(true, Ordering::Relaxed);
    Json(json!({"now": shared.clock.now().to_rfc3339()})).into_response()
}

async fn requests(State(shared): State<Arc<Shared>>) -> Response {
    let map = shared.requests.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let total: u64 = map.values().sum();
    Json(json!({"total": total, "requests": map})).into_response()
}

async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.reset();
    Json(json!({"ok": true})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushReq {
    /// `normal`, `drop`, `duplicate` or `delay` for the next `count` webhook deliveries
    /// (all of them when `count` is absent), Google pushes and Graph notifications alike.
    /// Absent: the mode stays as it is (to change only `coalesce_ms`).
    mode: Option<crate::webhook::PushMode>,
    delay_ms: Option<u64>,
    count: Option<u32>,
    /// Coalescing window in ms from now on: notifications for one channel or subscription
    /// within it go out as one delivery. `0` sends every change on its own.
    coalesce_ms: Option<u64>,
    /// Sends the deliveries waiting in their window now (tests: no waiting on the clock).
    #[serde(default)]
    flush: bool,
}

async fn push(State(shared): State<Arc<Shared>>, payload: Result<Json<PushReq>, JsonRejection>) -> Response {
    let req = match body(payload) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if req.count == Some(0) {
        return bad("count must be at least 1");
    }
    if req.mode.is_none() && (req.count.is_some() || req.delay_ms.is_some()) {
        return bad("count and delay_ms go with a mode");
    }
    if req.coalesce_ms.is_some_and(|ms| ms > 600_000) {
        return bad("coalesce_ms must be at most 600000");
    }
    if let Some(mode) = req.mode {
        *shared.push_control.lock().unwrap_or_else(|e| e.into_inner()) =
            crate::webhook::PushControl { mode, delay_ms: req.delay_ms.unwrap_or(0), remaining: req.count };
    }
    if let Some(ms) = req.coalesce_ms {
        shared.coalesce_ms.store(ms, Ordering::Relaxed);
    }
    let flushed = if req.flush { crate::webhook::flush_held(&shared) } else { 0 };
    Json(json!({"ok": true, "coalesce_ms": shared.coalesce_ms.load(Ordering::Relaxed), "flushed": flushed}))
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LifecycleReq {
    subscription_id: String,
    /// `reauthorizationRequired`, `subscriptionRemoved` or `missed`.
    event: String,
}

async fn graph_lifecycle(
    State(shared): State<Arc<Shared>>,
    payload: Result<Json<LifecycleReq>, JsonRejection>,
) -> Response {
    let req = match body(payload) {
        Ok(r) => r,
        Err(e) => return e,
    };
    match microsoft::subscriptions::lifecycle(&shared, &req.subscription_id, &req.event) {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => bad(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SplitReq {
    email: String,
    /// Default `primary`.
    calendar_id: Option<String>,
    event_id: String,
    /// Original start of the new series' first instance (RFC 3339; `YYYY-MM-DD` for
    /// all-day series).
    from: String,
}

/// Simulates a user splitting a Google series in the web UI ("this and following
/// events"); see [`google::split_series`]. 200 `{"old", "new"}` with both masters.
async fn google_split_series(
    State(shared): State<Arc<Shared>>,
    payload: Result<Json<SplitReq>, JsonRejection>,
) -> Response {
    let req = match body(payload) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let cal = req.calendar_id.as_deref().unwrap_or("primary");
    match google::split_series(&shared, &req.email, cal, &req.event_id, &req.from) {
        Ok(v) => Json(v).into_response(),
        Err((status, msg)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            (status, Json(json!({"error": msg}))).into_response()
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedReq {
    provider: Provider,
    email: String,
    /// At most 1,000,000 per call.
    count: usize,
    /// When the first event starts (RFC 3339); the others follow a minute apart.
    /// Default: 2020-01-01T00:00:00Z.
    #[serde(default)]
    start: Option<chrono::DateTime<chrono::Utc>>,
}

/// Bulk-loads `count` events into the account's primary/default calendar without HTTP
/// round trips (benchmarks, scale tests). Same storage path as real inserts.
async fn seed_events(State(shared): State<Arc<Shared>>, payload: Result<Json<SeedReq>, JsonRejection>) -> Response {
    let req = match body(payload) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if req.count == 0 || req.count > 1_000_000 {
        return bad("count must be within 1..=1000000");
    }
    let email = req.email.to_ascii_lowercase();
    let first = req.start.unwrap_or_else(|| "2020-01-01T00:00:00Z".parse().expect("valid")).timestamp_millis();
    let found = match req.provider {
        Provider::Google => google::seed_events(&shared, &email, req.count, first),
        Provider::Microsoft => microsoft::seed_events(&shared, &email, req.count, first),
    };
    if !found {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "no such account"}))).into_response();
    }
    Json(json!({"seeded": req.count})).into_response()
}
