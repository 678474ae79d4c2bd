//! Google: OAuth 2.0 (`oauth`) and Calendar API v3 (`calendar`), sharing one account model.

mod admin;
mod calendar;
mod calendars;
mod error;
mod events;
pub(crate) mod fields;
mod guests;
mod instances;
pub(crate) mod invite;
mod list;
mod model;
mod oauth;
mod push;
mod series;
mod write;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::control::Minted;
use crate::faults::Fired;
use crate::middleware::google_layer;
use crate::state::{Shared, World};
use crate::store::EventStore;

pub(crate) use admin::seed_events;
pub(crate) use error::ApiError;

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct GoogleWorld {
    /// Keyed by lowercase e-mail.
    pub accounts: HashMap<String, Account>,
    pub calendars: HashMap<String, Calendar>,
    pub oauth: oauth::GoogleOAuth,
    /// Push channels by channel id.
    pub channels: HashMap<String, push::Channel>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Account {
    pub sub: String,
    /// Calendar ids; the first is the primary calendar, whose id is the e-mail.
    pub calendars: Vec<String>,
    /// Bumped by `expire-cursors`: tokens minted under an older epoch are dead.
    pub epoch: u32,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Calendar {
    pub id: String,
    pub summary: String,
    pub description: Option<String>,
    pub time_zone: String,
    pub tz: Tz,
    pub primary: bool,
    pub deleted: bool,
    /// Change sequence of the calendar-list entry (for calendarList sync tokens).
    pub list_seq: u64,
    pub updated_ms: i64,
    /// Events are shared immutable values: listings clone `Arc`s under the lock and render
    /// after releasing it.
    pub events: EventStore<Arc<model::Event>>,
    /// iCalUID → event id, for `iCalUID=` filters and `import`.
    pub by_ical: HashMap<String, String>,
    /// The span (epoch ms: earliest window start, `i64::MIN` for none; latest expansion
    /// end) that `singleEvents=true` listings of this calendar have expanded series over,
    /// full or incremental. A sync client can hold instances only from there, so that is
    /// where instances lost by a master edit get tombstones. Only ever widens.
    #[serde(default)]
    pub expanded: Option<(i64, i64)>,
}

/// Creates the account and its primary calendar if missing.
pub(crate) fn ensure_account(world: &mut World, email: &str, time_zone: &str, now_ms: i64) {
    let email = email.to_ascii_lowercase();
    if world.google.accounts.contains_key(&email) {
        return;
    }
    let seq = world.next_seq();
    let sub = {
        use rand::Rng;
        // Google subjects are 21 decimal digits.
        format!(
            "1{:010}{:010}",
            world.rng.random_range(0..10_000_000_000u64),
            world.rng.random_range(0..10_000_000_000u64)
        )
    };
    let tz: Tz = time_zone.parse().unwrap_or(Tz::UTC);
    world.google.calendars.insert(
        email.clone(),
        Calendar {
            id: email.clone(),
            summary: email.clone(),
            description: None,
            time_zone: tz.name().to_owned(),
            tz,
            primary: true,
            deleted: false,
            list_seq: seq,
            updated_ms: now_ms,
            events: EventStore::default(),
            by_ical: HashMap::new(),
            expanded: None,
        },
    );
    world.google.accounts.insert(email.clone(), Account { sub, calendars: vec![email], epoch: 0 });
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let c = "/google/calendar/v3";
    let r = Router::new()
        .route("/google/o/oauth2/v2/auth", get(oauth::authorize).post(oauth::consent))
        .route("/google/token", post(oauth::token))
        .route("/google/revoke", post(oauth::revoke))
        .route("/google/oauth2/v3/userinfo", get(oauth::userinfo))
        .route("/google/oauth2/v2/userinfo", get(oauth::userinfo));
    calendar::routes(r, c).layer(from_fn_with_state(shared.clone(), google_layer)).with_state(shared)
}

/// The error body an injected status fault answers with, by endpoint family. Google
/// faults never carry `Retry-After` (the control API refuses `retry_after` for them).
pub(crate) fn fault_response(path: &str, fired: &Fired) -> Response {
    if path.starts_with("/google/token") || path.starts_with("/google/revoke") {
        return error::OAuthError::for_status(fired.status, fired.reason.as_deref()).into_response();
    }
    ApiError::for_status(fired.status, fired.reason.as_deref()).into_response()
}

/// Why a Google fault spec is refused, if it is: Google's rate-limit and error answers
/// carry no `Retry-After`, so a fault asking for one would teach clients to wait for a
/// header that never comes.
pub(crate) fn check_fault(retry_after: Option<u64>) -> Result<(), String> {
    match retry_after {
        Some(_) => Err("retry_after is not allowed for provider google: Google's error answers carry no \
                        Retry-After header (clients back off exponentially)"
            .into()),
        None => Ok(()),
    }
}

/// A token for the sandbox's own writes to an existing account (see `oauth::mint_internal`).
pub(crate) fn internal_token(shared: &Shared, email: &str) -> String {
    let now = shared.clock.now_ms();
    oauth::mint_internal(&mut shared.world(), now, &email.to_ascii_lowercase())
}

pub(crate) fn control_account(shared: &Shared, email: &str, time_zone: &str) -> Minted {
    let now = shared.clock.now_ms();
    let email = email.to_ascii_lowercase();
    let mut world = shared.world();
    ensure_account(&mut world, &email, time_zone, now);
    let (access_token, refresh_token) = oauth::mint_full_grant(&mut world, now, &email);
    Minted { email, access_token, refresh_token }
}

pub(crate) fn expire_cursors(world: &mut World, email: Option<&str>) -> usize {
    let mut n = 0;
    for (e, acc) in world.google.accounts.iter_mut() {
        if email.is_none_or(|x| x.eq_ignore_ascii_case(e)) {
            acc.epoch += 1;
            n += 1;
        }
    }
    n
}

pub(crate) fn revoke_account(world: &mut World, email: &str) -> bool {
    let email = email.to_ascii_lowercase();
    if !world.google.accounts.contains_key(&email) {
        return false;
    }
    world.google.oauth.revoke_account(&email);
    true
}
pub(crate) use admin::split_series;
pub(crate) use model::resolve_local;

/// Calendar API quotas (B.10): sliding one-minute windows per user and per project.
/// Requests without a valid token pass through so the handler can answer 401.
pub(crate) fn admit(shared: &Shared, headers: &axum::http::HeaderMap) -> Result<(), Response> {
    let now = shared.clock.now_ms();
    let email = {
        let token = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let world = shared.world();
        match token.and_then(|t| world.google.oauth.token_owner(t, now)) {
            Some(e) => e.to_owned(),
            None => return Ok(()),
        }
    };
    let mut q = shared.google_quota.lock().unwrap_or_else(|e| e.into_inner());
    let (users, project) = &mut *q;
    let user = users.entry(email).or_default();
    for w in [&mut *user, &mut *project] {
        while w.front().is_some_and(|t| now - t >= 60_000) {
            w.pop_front();
        }
    }
    // No Retry-After: Google leaves the wait to the client's exponential backoff.
    if user.len() >= shared.config.google_user_quota_per_minute as usize {
        return Err(ApiError::for_status(403, Some("userRateLimitExceeded")).into_response());
    }
    if project.len() >= shared.config.google_project_quota_per_minute as usize {
        return Err(ApiError::for_status(429, Some("rateLimitExceeded")).into_response());
    }
    user.push_back(now);
    project.push_back(now);
    Ok(())
}
