//! Microsoft: identity platform v2.0 (`identity`) and Graph calendar (`graph`), sharing one
//! account model, plus Outlook's per-mailbox throttling.

mod body;
mod error;
mod events;
mod extprops;
mod graph;
pub(crate) use events::seed_events;
mod identity;
mod listing;
pub(crate) mod meetings;
mod occid;
mod render;
mod rows;
mod series;
pub(crate) mod subscriptions;
mod tz;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::http::HeaderMap;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::control::Minted;
use crate::faults::Fired;
use crate::ids;
use crate::middleware::microsoft_layer;
use crate::state::{Shared, World};
use crate::store::EventStore;

use error::{AadError, GraphError};

/// Personal Microsoft accounts live in this well-known tenant.
const CONSUMERS_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct MsWorld {
    pub accounts: HashMap<String, MsAccount>,
    pub calendars: HashMap<String, MsCalendar>,
    pub codes: HashMap<String, identity::Code>,
    pub access: HashMap<String, identity::Access>,
    pub refresh: HashMap<String, identity::Refresh>,
    pub subscriptions: HashMap<String, subscriptions::Subscription>,
    /// The secret occurrence ids are encrypted with (`occid`), drawn from the world's
    /// generator the first time one is handed out. State files from before it existed load
    /// without one (and the occurrence ids handed out then no longer resolve).
    #[serde(default)]
    pub occurrence_key: Option<occid::OccKey>,
}

impl MsWorld {
    /// What an occurrence id stands for: `(series master id, occurrence)`.
    pub(crate) fn decode_occurrence(&self, id: &str) -> Option<(String, crate::recurrence::Occ)> {
        self.occurrence_key.as_ref()?.decode(id)
    }
}

/// The occurrence-id secret, drawn on first use.
pub(crate) fn occurrence_key(world: &mut World) -> occid::OccKey {
    *world.microsoft.occurrence_key.get_or_insert_with(|| occid::OccKey::generate(&mut world.rng))
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MsAccount {
    pub id: String,
    pub tenant: String,
    /// The first is the default calendar.
    pub calendars: Vec<String>,
    /// Bumped by `expire-cursors`: delta tokens of older epochs are dead.
    pub epoch: u32,
    /// Tokens issued before this instant are revoked ("revoke sessions").
    pub revoked_before_ms: i64,
    /// A mailbox time zone that is not a standard one (control API): events report it,
    /// e.g. `tzone://Microsoft/Custom`, as `originalStartTimeZone`/`originalEndTimeZone`.
    pub custom_zone: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MsCalendar {
    pub id: String,
    pub name: String,
    pub change_key: String,
    /// Shared immutable values: listings clone `Arc`s under the lock, render after it.
    pub events: EventStore<std::sync::Arc<graph::GEvent>>,
    /// `transactionId` → event id, so retried creates return the first event.
    pub transactions: HashMap<String, String>,
}

pub(crate) fn ensure_account(world: &mut World, email: &str, _time_zone: &str, _now_ms: i64) {
    let email = email.to_ascii_lowercase();
    if world.microsoft.accounts.contains_key(&email) {
        return;
    }
    let id = ids::uuid(&mut world.rng).to_string();
    let cal_id = ids::token(&mut world.rng, "AAMkAGI2", 72);
    let change_key = ids::token(&mut world.rng, "", 18);
    world.microsoft.calendars.insert(
        cal_id.clone(),
        MsCalendar {
            id: cal_id.clone(),
            name: "Calendar".into(),
            change_key,
            events: EventStore::default(),
            transactions: HashMap::new(),
        },
    );
    world.microsoft.accounts.insert(
        email,
        MsAccount {
            id,
            tenant: CONSUMERS_TENANT.into(),
            calendars: vec![cal_id],
            epoch: 0,
            revoked_before_ms: 0,
            custom_zone: None,
        },
    );
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let r = Router::new()
        .route("/microsoft/{tenant}/oauth2/v2.0/authorize", get(identity::authorize).post(identity::consent))
        .route("/microsoft/{tenant}/oauth2/v2.0/token", axum::routing::post(identity::token));
    graph::routes(r).layer(from_fn_with_state(shared.clone(), microsoft_layer)).with_state(shared)
}

pub(crate) fn fault_response(path: &str, fired: &Fired) -> Response {
    if path.contains("/oauth2/v2.0/") {
        let code = fired.reason.as_deref().and_then(|r| r.parse().ok());
        let mut e = match (fired.status, code) {
            (_, Some(c)) => AadError::for_code(c),
            (401, None) => AadError::for_code(7000215),
            (400, None) => AadError::for_code(70008),
            (s, None) => {
                AadError::new(s, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again.")
            }
        };
        e.status = fired.status;
        return e.into_response();
    }
    let mut e = GraphError::for_status(fired.status, fired.reason.as_deref());
    e.retry_after = fired.retry_after;
    e.into_response()
}

/// Holds one of the mailbox's concurrent-request slots until dropped.
pub(crate) struct Slot {
    shared: Arc<Shared>,
    mailbox: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut load = self.shared.graph_load.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = load.get_mut(&self.mailbox) {
            l.in_flight = l.in_flight.saturating_sub(1);
        }
    }
}

/// Outlook throttling per app + mailbox: a sliding request window and a concurrency cap,
/// both answered with 429 and `Retry-After`. Requests with bad tokens pass through so the
/// handler can answer 401.
pub(crate) fn admit(shared: &Arc<Shared>, headers: &HeaderMap) -> Result<Option<Slot>, Response> {
    let now = shared.clock.now_ms();
    let mailbox = {
        let world = shared.world();
        match identity::authenticate(&world.microsoft, headers, now) {
            Ok(a) => a.email,
            Err(_) => return Ok(None),
        }
    };
    let window_ms = shared.config.graph_mailbox_window.as_millis() as i64;
    let mut load = shared.graph_load.lock().unwrap_or_else(|e| e.into_inner());
    let l = load.entry(mailbox.clone()).or_default();
    while l.recent.front().is_some_and(|t| now - t >= window_ms) {
        l.recent.pop_front();
    }
    if l.recent.len() >= shared.config.graph_mailbox_limit as usize {
        let oldest = l.recent.front().copied().unwrap_or(now);
        let wait = ((oldest + window_ms - now) as f64 / 1000.0).ceil().max(1.0) as u64;
        let mut e = GraphError::for_status(429, None);
        e.retry_after = Some(wait);
        return Err(e.into_response());
    }
    if l.in_flight >= shared.config.graph_mailbox_concurrency {
        let mut e = GraphError::for_status(429, Some("ApplicationThrottled"));
        e.retry_after = Some(1);
        return Err(e.into_response());
    }
    l.recent.push_back(now);
    l.in_flight += 1;
    Ok(Some(Slot { shared: shared.clone(), mailbox }))
}

pub(crate) fn control_account(shared: &Shared, email: &str, time_zone: &str) -> Minted {
    let now = shared.clock.now_ms();
    let email = email.to_ascii_lowercase();
    let mut world = shared.world();
    ensure_account(&mut world, &email, time_zone, now);
    let (access_token, refresh_token) = identity::mint_full_grant(&mut world, now, &email);
    Minted { email, access_token, refresh_token }
}

pub(crate) fn expire_cursors(world: &mut World, email: Option<&str>) -> usize {
    let mut n = 0;
    for (e, acc) in world.microsoft.accounts.iter_mut() {
        if email.is_none_or(|x| x.eq_ignore_ascii_case(e)) {
            acc.epoch += 1;
            n += 1;
        }
    }
    n
}

pub(crate) fn revoke_account(world: &mut World, email: &str, now_ms: i64) -> bool {
    match world.microsoft.accounts.get_mut(&email.to_ascii_lowercase()) {
        Some(acc) => {
            // Tokens minted in this same millisecond are revoked too.
            acc.revoked_before_ms = now_ms + 1;
            true
        }
        None => false,
    }
}

/// A whole-batch 400 in Graph's error shape.
pub(crate) fn batch_error(message: &str) -> Response {
    GraphError::new(400, "BadRequest", message).into_response()
}
