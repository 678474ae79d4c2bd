//! Admin routes: every connection of the firm with its owner and last attempt (failing first),
//! and the firm's sync statistics. Admins only; staff get 403.

use super::connections::ConnectionView;
use super::error::{ApiError, ErrorBody};
use super::sync::AttemptView;
use crate::auth::ApiCaller;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use calsync_domain::ValidationError;
use calsync_domain::connection::{ConnectionStatus, Provider};
use calsync_store::{AdminConnection, SyncStats};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/calendar/admin/connections/", get(connections))
        .route("/api/calendar/admin/stats/", get(stats))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OwnerView {
    pub id: Uuid,
    pub email: String,
    pub name: String,
}

/// A connection as the firm's admins see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminConnectionView {
    #[serde(flatten)]
    pub connection: ConnectionView,
    pub owner: OwnerView,
    /// Not active, failing its syncs, or with an error on record.
    pub failing: bool,
    /// Syncs that failed in a row; the wait before the next one doubles with each.
    pub consecutive_failures: i32,
    /// Why the last sync failed, in words; null when it did not.
    pub last_error: Option<String>,
    /// When the background worker syncs it next; null while it does not (auto-sync off,
    /// waiting for a reconnect).
    pub next_sync_at: Option<DateTime<Utc>>,
    pub last_attempt: Option<AttemptView>,
}

impl From<AdminConnection> for AdminConnectionView {
    fn from(a: AdminConnection) -> Self {
        let failing = a.failing();
        let c = a.connection;
        let scheduled =
            c.settings.sync_enabled && matches!(c.status, ConnectionStatus::Active | ConnectionStatus::Error);
        AdminConnectionView {
            owner: OwnerView { id: c.user_id.as_uuid(), email: a.owner_email, name: a.owner_name },
            failing,
            consecutive_failures: c.failure_count,
            last_error: c.last_error.clone(),
            next_sync_at: c.next_sync_at.filter(|_| scheduled),
            last_attempt: a.last_attempt.map(Into::into),
            connection: c.into(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdminConnectionList {
    pub items: Vec<AdminConnectionView>,
}

fn bad(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::BadRequest { code: "invalid_parameter", field: Some(field.to_owned()), message: message.into() }
}

/// Every connection of the firm, failing ones first, with owner, last attempt and error.
/// `status` (`active`, `expired`, `error`, `revoked`) and `provider` (`google`, `microsoft`)
/// narrow the list.
#[utoipa::path(get, path = "/api/calendar/admin/connections/", tag = "admin",
    params(("status" = Option<String>, Query), ("provider" = Option<String>, Query)),
    responses((status = 200, body = AdminConnectionList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn connections(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    RawQuery(raw): RawQuery,
) -> Result<Json<AdminConnectionList>, ApiError> {
    let (mut status, mut provider) = (None, None);
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "status" if !value.is_empty() => {
                let s: ConnectionStatus = value.parse().map_err(|e: ValidationError| bad("status", e.message))?;
                status = Some(s);
            }
            "provider" if !value.is_empty() => {
                let p: Provider = value.parse().map_err(|e: ValidationError| bad("provider", e.message))?;
                provider = Some(p);
            }
            "status" | "provider" => {}
            other => return Err(bad(other, "unknown parameter; use status or provider")),
        }
    }
    let list = state.sync.admin_connections(&caller.actor, status, provider).await?;
    Ok(Json(AdminConnectionList { items: list.into_iter().map(Into::into).collect() }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionCounts {
    pub total: i64,
    /// By status: `active`, `expired`, `error`, `revoked` (each present, 0 when none).
    pub by_status: BTreeMap<String, i64>,
    /// By provider: `google`, `microsoft` (each present).
    pub by_provider: BTreeMap<String, i64>,
    /// By provider, then status.
    pub by_provider_and_status: BTreeMap<String, BTreeMap<String, i64>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WindowStats {
    pub since: DateTime<Utc>,
    pub syncs: i64,
    pub succeeded: i64,
    /// Finished with some items or calendars failed, the rest synced.
    pub partial: i64,
    pub failed: i64,
    /// Share of syncs that did not fail (success or partial), 0 to 1; null without syncs.
    pub success_rate: Option<f64>,
    /// Events created, updated or deleted on either side.
    pub events_moved: i64,
    pub duration_p50_ms: Option<i64>,
    pub duration_p95_ms: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatsView {
    pub connections: ConnectionCounts,
    pub last_24h: WindowStats,
    /// Connections due now and not being synced.
    pub backlog: i64,
}

fn stats_view(s: SyncStats, since: DateTime<Utc>) -> StatsView {
    let statuses = ["active", "expired", "error", "revoked"];
    let providers = ["google", "microsoft"];
    let mut by_status: BTreeMap<String, i64> = statuses.iter().map(|s| ((*s).to_owned(), 0)).collect();
    let mut by_provider: BTreeMap<String, i64> = providers.iter().map(|p| ((*p).to_owned(), 0)).collect();
    let mut both: BTreeMap<String, BTreeMap<String, i64>> =
        providers.iter().map(|p| ((*p).to_owned(), by_status.clone())).collect();
    let mut total = 0;
    for (status, provider, n) in &s.connections {
        total += n;
        *by_status.entry(status.as_str().to_owned()).or_default() += n;
        *by_provider.entry(provider.as_str().to_owned()).or_default() += n;
        *both.entry(provider.as_str().to_owned()).or_default().entry(status.as_str().to_owned()).or_default() += n;
    }
    let done = s.succeeded + s.partial + s.failed;
    StatsView {
        connections: ConnectionCounts { total, by_status, by_provider, by_provider_and_status: both },
        last_24h: WindowStats {
            since,
            syncs: s.attempts,
            succeeded: s.succeeded,
            partial: s.partial,
            failed: s.failed,
            success_rate: (done > 0).then(|| (s.succeeded + s.partial) as f64 / done as f64),
            events_moved: s.events_moved,
            duration_p50_ms: s.p50_ms,
            duration_p95_ms: s.p95_ms,
        },
        backlog: s.backlog,
    }
}

/// The firm's connections by status and provider; its syncs of the last 24 hours (count,
/// failures, success rate, events moved, p50/p95 duration); and the backlog of due connections.
#[utoipa::path(get, path = "/api/calendar/admin/stats/", tag = "admin",
    responses((status = 200, body = StatsView), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn stats(State(state): State<AppState>, ApiCaller(caller): ApiCaller) -> Result<Json<StatsView>, ApiError> {
    let since = state.clock.now() - chrono::Duration::hours(24);
    let s = state.sync.stats(&caller.actor).await?;
    Ok(Json(stats_view(s, since)))
}
