//! Sync routes: sync now, status, resync, held deletions, the attempt log with replay, and
//! conflicts. Staff reach their own connections; admins every connection of their firm.

use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::parse_id;
use crate::auth::ApiCaller;
use crate::services::sync::SyncStatus;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use calsync_domain::ValidationError;
use calsync_domain::appointment::AppointmentData;
use calsync_domain::ids::{ConnectionId, SyncAttemptId};
use calsync_domain::merge::{Field, Side};
use calsync_domain::sync::{AttemptStatus, ConflictSide, HeldSide};
use calsync_store::{AttemptQuery, Conflict, SyncAttempt};
use chrono::{DateTime, Utc};
use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

const CONNECTIONS: &str = "/api/calendar/oauth-connections";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(&format!("{CONNECTIONS}/{{id}}/sync_now/"), post(sync_now))
        .route(&format!("{CONNECTIONS}/{{id}}/sync_status/"), get(sync_status))
        .route(&format!("{CONNECTIONS}/{{id}}/resync/"), post(resync))
        .route(&format!("{CONNECTIONS}/{{id}}/confirm_deletes/"), post(confirm_deletes))
        .route(&format!("{CONNECTIONS}/{{id}}/reject_deletes/"), post(reject_deletes))
        .route("/api/calendar/sync-attempts/", get(attempts))
        .route("/api/calendar/sync-attempts/{id}/replay/", post(replay))
        .route("/api/calendar/conflicts/", get(conflicts))
        .route("/api/calendar/conflicts/{id}/resolve/", post(resolve))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Counts {
    pub created: i64,
    pub updated: i64,
    pub deleted: i64,
}

/// What a running sync has done so far.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressView {
    pub pulled: Counts,
    pub pushed: Counts,
    /// HTTP requests made to the provider so far.
    pub requests: i64,
}

impl From<&calsync_store::AttemptCounts> for ProgressView {
    fn from(c: &calsync_store::AttemptCounts) -> Self {
        ProgressView {
            pulled: Counts { created: c.pulled_created, updated: c.pulled_updated, deleted: c.pulled_deleted },
            pushed: Counts { created: c.pushed_created, updated: c.pushed_updated, deleted: c.pushed_deleted },
            requests: c.requests,
        }
    }
}

/// One sync attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt_id: Uuid,
    pub connection_id: Uuid,
    /// `manual`, `scheduled`, `webhook`, `replay` or `resync`.
    pub trigger: String,
    /// `running`, `success`, `partial` (some items or calendars failed, the rest synced) or `failed`.
    pub status: String,
    /// Changes made in calsync from the provider's side.
    pub pulled: Counts,
    /// Changes made at the provider from calsync's side.
    pub pushed: Counts,
    /// Conflicts recorded for manual resolution.
    pub conflicts: i64,
    /// Appointments edited on both sides whose edits were combined field by field.
    pub merged: i64,
    /// HTTP requests made to the provider (retries included).
    pub requests: i64,
    pub duration_ms: Option<i64>,
    /// What went wrong, in words; null on success.
    pub error: Option<String>,
    /// `reauthorize`, `retry_after`, `permanent`, `internal`, `item`, `deletes_held`, `interrupted`.
    pub error_kind: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The attempt this one replayed.
    pub replay_of: Option<Uuid>,
    /// What the sync noticed without failing, in words (an Outlook time zone with no IANA
    /// equivalent, read as UTC, …).
    pub notes: Vec<String>,
}

impl From<SyncAttempt> for AttemptView {
    fn from(a: SyncAttempt) -> Self {
        AttemptView {
            attempt_id: a.id.as_uuid(),
            connection_id: a.connection_id.as_uuid(),
            trigger: a.trigger.as_str().to_owned(),
            status: a.status.as_str().to_owned(),
            pulled: Counts {
                created: a.counts.pulled_created,
                updated: a.counts.pulled_updated,
                deleted: a.counts.pulled_deleted,
            },
            pushed: Counts {
                created: a.counts.pushed_created,
                updated: a.counts.pushed_updated,
                deleted: a.counts.pushed_deleted,
            },
            conflicts: a.counts.conflicts,
            merged: a.counts.merged,
            requests: a.counts.requests,
            duration_ms: a.finished_at.map(|f| (f - a.started_at).num_milliseconds()),
            error: a.error_message,
            error_kind: a.error_kind,
            started_at: a.started_at,
            finished_at: a.finished_at,
            replay_of: a.replay_of.map(|r| r.as_uuid()),
            notes: a.notes,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PendingDeletes {
    /// Deletions held by the mass-delete guard, waiting for `confirm_deletes/` or `reject_deletes/`.
    pub count: usize,
    /// Of those, appointments calsync would delete (the events are gone at the provider).
    pub in_calsync: usize,
    /// Of those, events calsync would delete at the provider (the appointments were deleted here).
    pub at_provider: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncStatusView {
    /// The connection's status: `active`, `expired`, `error` or `revoked`.
    pub status: String,
    pub status_message: String,
    pub sync_enabled: bool,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub in_progress: bool,
    /// While a sync runs in the process answering: what it has pulled and pushed so far
    /// (updated before each request it makes to the provider). Null otherwise, and while
    /// another process runs it.
    pub progress: Option<ProgressView>,
    pub last_attempt: Option<AttemptView>,
    pub last_error: Option<String>,
    pub next_sync_at: Option<DateTime<Utc>>,
    pub pending_deletes: PendingDeletes,
}

impl From<SyncStatus> for SyncStatusView {
    fn from(s: SyncStatus) -> Self {
        let local = s.held_deletes.iter().filter(|h| h.side == HeldSide::Local).count();
        SyncStatusView {
            status: s.connection.status.as_str().to_owned(),
            status_message: s.connection.status_message,
            sync_enabled: s.connection.settings.sync_enabled,
            last_sync_at: s.connection.last_sync_at,
            in_progress: s.in_progress,
            progress: s.progress.as_ref().map(Into::into),
            last_attempt: s.last_attempt.map(Into::into),
            last_error: s.connection.last_error,
            next_sync_at: s.next_sync_at,
            pending_deletes: PendingDeletes {
                count: s.held_deletes.len(),
                in_calsync: local,
                at_provider: s.held_deletes.len() - local,
            },
        }
    }
}

/// Syncs the connection now (the caller's own) and answers with the finished attempt. A sync
/// already running for it is waited for and answered with, never run twice.
#[utoipa::path(post, path = "/api/calendar/oauth-connections/{id}/sync_now/", tag = "sync", params(("id" = Uuid, Path)),
    responses((status = 200, body = AttemptView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "another worker is syncing it")),
    security(("bearer" = [])))]
pub async fn sync_now(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<AttemptView>, ApiError> {
    Ok(Json(state.sync.sync_now(&caller.actor, parse_id(&id)?).await?.into()))
}

#[utoipa::path(get, path = "/api/calendar/oauth-connections/{id}/sync_status/", tag = "sync", params(("id" = Uuid, Path)),
    responses((status = 200, body = SyncStatusView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn sync_status(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<SyncStatusView>, ApiError> {
    Ok(Json(state.sync.status(&caller.actor, parse_id(&id)?).await?.into()))
}

/// Forgets the sync cursors and syncs with a full listing diffed against what is linked.
#[utoipa::path(post, path = "/api/calendar/oauth-connections/{id}/resync/", tag = "sync", params(("id" = Uuid, Path)),
    responses((status = 200, body = AttemptView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn resync(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<AttemptView>, ApiError> {
    Ok(Json(state.sync.resync(&caller.actor, parse_id(&id)?).await?.into()))
}

/// Applies the deletions the mass-delete guard held.
#[utoipa::path(post, path = "/api/calendar/oauth-connections/{id}/confirm_deletes/", tag = "sync", params(("id" = Uuid, Path)),
    responses((status = 200, body = SyncStatusView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn confirm_deletes(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<SyncStatusView>, ApiError> {
    Ok(Json(state.sync.settle_deletes(&caller.actor, parse_id(&id)?, true).await?.into()))
}

/// Refuses the held deletions and restores the side that was deleted.
#[utoipa::path(post, path = "/api/calendar/oauth-connections/{id}/reject_deletes/", tag = "sync", params(("id" = Uuid, Path)),
    responses((status = 200, body = SyncStatusView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn reject_deletes(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<SyncStatusView>, ApiError> {
    Ok(Json(state.sync.settle_deletes(&caller.actor, parse_id(&id)?, false).await?.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptPage {
    pub items: Vec<AttemptView>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

fn bad(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::BadRequest { code: "invalid_parameter", field: Some(field.to_owned()), message: message.into() }
}

fn encode_cursor(a: &SyncAttempt) -> String {
    BASE64URL_NOPAD.encode(format!("{}|{}", a.started_at.to_rfc3339(), a.id).as_bytes())
}

fn decode_cursor(raw: &str) -> Option<(DateTime<Utc>, SyncAttemptId)> {
    let bytes = BASE64URL_NOPAD.decode(raw.as_bytes()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (at, id) = text.split_once('|')?;
    Some((DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc), id.parse().ok()?))
}

fn attempt_query(raw: Option<&str>) -> Result<AttemptQuery, ApiError> {
    let mut q = AttemptQuery { limit: 50, ..Default::default() };
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "connection" => {
                let id: ConnectionId =
                    value.parse().map_err(|_| bad("connection", "must be a connection id (UUID)"))?;
                q.connection = Some(id);
            }
            "status" => {
                let s: AttemptStatus = value.parse().map_err(|e: ValidationError| bad("status", e.message))?;
                q.status = Some(s);
            }
            "since" => {
                let at = DateTime::parse_from_rfc3339(&value)
                    .map_err(|_| bad("since", "must be an RFC 3339 time such as 2026-12-01T00:00:00Z"))?;
                q.since = Some(at.with_timezone(&Utc));
            }
            "limit" => {
                let n: u32 = value.parse().map_err(|_| bad("limit", "must be a whole number from 1 to 200"))?;
                if !(1..=200).contains(&n) {
                    return Err(bad("limit", "must be a whole number from 1 to 200"));
                }
                q.limit = n;
            }
            "cursor" => {
                q.before = Some(decode_cursor(&value).ok_or_else(|| bad("cursor", "not a cursor this API issued"))?);
            }
            other => return Err(bad(other, "unknown parameter; use connection, status, since, limit or cursor")),
        }
    }
    Ok(q)
}

/// The log of sync attempts, newest first: the caller's own connections, or the firm's for admins.
#[utoipa::path(get, path = "/api/calendar/sync-attempts/", tag = "sync",
    params(("connection" = Option<Uuid>, Query), ("status" = Option<String>, Query, description = "running | success | partial | failed"),
        ("since" = Option<String>, Query, description = "RFC 3339"), ("limit" = Option<u32>, Query, description = "1–200, default 50"),
        ("cursor" = Option<String>, Query)),
    responses((status = 200, body = AttemptPage), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn attempts(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    RawQuery(raw): RawQuery,
) -> Result<Json<AttemptPage>, ApiError> {
    let q = attempt_query(raw.as_deref())?;
    let (items, more) = state.sync.attempts(&caller.actor, q).await?;
    let next_cursor = if more { items.last().map(encode_cursor) } else { None };
    Ok(Json(AttemptPage { items: items.into_iter().map(Into::into).collect(), next_cursor }))
}

/// Runs a failed or partial attempt's connection again as a new attempt with `replay_of` (admins).
#[utoipa::path(post, path = "/api/calendar/sync-attempts/{id}/replay/", tag = "sync", params(("id" = Uuid, Path)),
    responses((status = 200, body = AttemptView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replay(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<AttemptView>, ApiError> {
    Ok(Json(state.sync.replay(&caller.actor, parse_id(&id)?).await?.into()))
}

/// One side of a conflict.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    pub title: String,
    pub description: String,
    pub location: String,
    pub start: String,
    pub end: String,
    pub time_zone: String,
    pub all_day: bool,
    pub status: String,
    pub visibility: String,
    pub show_as: String,
    /// E-mail addresses.
    pub attendees: Vec<String>,
}

impl From<&AppointmentData> for VersionView {
    fn from(d: &AppointmentData) -> Self {
        VersionView {
            title: d.title.clone(),
            description: d.description.clone(),
            location: d.location.clone(),
            start: d.start_string(),
            end: d.end_string(),
            time_zone: d.time_zone.name().to_owned(),
            all_day: d.is_all_day(),
            status: d.status.as_str().to_owned(),
            visibility: d.visibility.as_str().to_owned(),
            show_as: d.show_as.as_str().to_owned(),
            attendees: d.attendees.iter().map(|a| a.email.clone()).collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictView {
    pub id: Uuid,
    pub connection_id: Uuid,
    pub appointment_id: Uuid,
    /// calsync's version.
    pub internal: VersionView,
    /// The provider's version.
    pub external: VersionView,
    /// The fields in conflict (`title`, `description`, `location`, `time`, `attendees`,
    /// `status`, `visibility`, `show_as`); empty when the versions conflict as a whole.
    pub fields: Vec<String>,
    /// What both sides agreed on before they diverged, when known.
    pub base: Option<VersionView>,
    /// How it was resolved field by field (`{"title": "external", …}`), once resolved that way.
    #[schema(value_type = Object)]
    pub picks: serde_json::Value,
    pub external_updated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// `internal` or `external` once resolved.
    pub kept: Option<String>,
}

impl From<Conflict> for ConflictView {
    fn from(c: Conflict) -> Self {
        ConflictView {
            id: c.id.as_uuid(),
            connection_id: c.connection_id.as_uuid(),
            appointment_id: c.appointment_id.as_uuid(),
            internal: (&c.local).into(),
            external: (&c.remote).into(),
            fields: c.fields.clone(),
            base: c.base.as_ref().map(Into::into),
            picks: serde_json::Value::Object(
                c.picks.iter().map(|(f, s)| (f.clone(), serde_json::Value::String(s.as_str().to_owned()))).collect(),
            ),
            external_updated_at: c.remote_updated_at,
            created_at: c.created_at,
            resolved_at: c.resolved_at,
            kept: c.resolution.map(|r| r.as_str().to_owned()),
        }
    }
}

/// Open conflicts (strategy `manual`): the caller's own, or the firm's for admins.
#[utoipa::path(get, path = "/api/calendar/conflicts/", tag = "sync",
    responses((status = 200, body = Vec<ConflictView>)), security(("bearer" = [])))]
pub async fn conflicts(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<Vec<ConflictView>>, ApiError> {
    Ok(Json(state.sync.conflicts(&caller.actor).await?.into_iter().map(Into::into).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// `"internal"` (calsync's version wins every field in conflict) or `"external"` (the
    /// provider's does), or per field: `{"title": "internal", "time": "external"}` naming each
    /// field in conflict. Fields not in conflict keep their merge either way.
    #[schema(value_type = Object)]
    pub keep: Option<serde_json::Value>,
}

/// Settles a conflict by keeping one version and writing it over the other.
#[utoipa::path(post, path = "/api/calendar/conflicts/{id}/resolve/", tag = "sync", params(("id" = Uuid, Path)),
    request_body = ResolveBody,
    responses((status = 200, body = ConflictView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn resolve(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ResolveBody>,
) -> Result<Json<ConflictView>, ApiError> {
    let raw = body.keep.ok_or_else(|| bad("keep", "required: internal, external, or an object of field: side"))?;
    let side = |field: &str, v: &serde_json::Value| -> Result<ConflictSide, ApiError> {
        v.as_str()
            .ok_or_else(|| bad(field, "must be \"internal\" or \"external\""))?
            .parse()
            .map_err(|e: ValidationError| bad(field, e.message))
    };
    let (keep, picks) = match &raw {
        serde_json::Value::Object(map) => {
            let mut picks = Vec::new();
            for (name, v) in map {
                let field = format!("keep.{name}");
                let f: Field = name.parse().map_err(|e: ValidationError| bad(&field, e.message))?;
                let s = match side(&field, v)? {
                    ConflictSide::Internal => Side::Local,
                    ConflictSide::External => Side::Remote,
                };
                picks.push((f, s));
            }
            if picks.is_empty() {
                return Err(bad("keep", "name at least one field"));
            }
            (ConflictSide::Internal, picks)
        }
        other => (side("keep", other)?, Vec::new()),
    };
    let id = parse_id(&id)?;
    let resolved = state.sync.resolve(&caller.actor, id, keep, &picks).await.map_err(|e| match e {
        crate::services::ServiceError::Validation(v) => {
            ApiError::BadRequest { code: "invalid_parameter", field: Some(v.field), message: v.message }
        }
        other => other.into(),
    })?;
    Ok(Json(resolved.into()))
}
