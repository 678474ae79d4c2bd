//! `/api/calendar/oauth-connections/`: connect, list, configure and disconnect external calendars.
//! Every route is the caller's own: another user's or firm's connection id answers 404.

use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::parse_id;
use crate::auth::ApiCaller;
use crate::services::ServiceError;
use crate::services::connections::{CallbackInput, ConnectError};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use calsync_domain::Secret;
use calsync_domain::connection::{ConflictStrategy, DeletePolicy, Provider, SyncWindowDays};
use calsync_store::{Connection, SettingsChange, SyncedCalendar};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

const BASE: &str = "/api/calendar/oauth-connections";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(&format!("{BASE}/"), get(list))
        .route(&format!("{BASE}/initiate_google_oauth/"), post(initiate_google))
        .route(&format!("{BASE}/initiate_microsoft_oauth/"), post(initiate_microsoft))
        .route(&format!("{BASE}/oauth_callback/"), post(callback))
        .route(&format!("{BASE}/connect_caldav/"), post(connect_caldav))
        .route(&format!("{BASE}/{{id}}/"), get(show).patch(update))
        .route(&format!("{BASE}/{{id}}/disconnect/"), post(disconnect))
        .route(&format!("{BASE}/{{id}}/calendars/"), get(calendars))
}

/// A connection as clients see it. Tokens never appear.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    pub id: Uuid,
    /// `google`, `microsoft` or `caldav`.
    pub provider: String,
    pub account_email: String,
    /// `active`, `expired`, `error` or `revoked`.
    pub status: String,
    /// What happened and what to do, in words; empty when all is well.
    pub status_message: String,
    /// Why the connection is not active, for programs: `grant_expired`, `grant_revoked`,
    /// `sign_in_required`, `no_refresh_token` (these four: reconnect), `provider_unavailable`
    /// (calsync retries), `provider_refused` or `disconnected`; null while active.
    pub status_reason: Option<String>,
    pub sync_enabled: bool,
    pub sync_window_days: i64,
    /// `newest_wins`, `prefer_internal`, `prefer_external` or `manual`.
    pub conflict_strategy: String,
    /// `propagate` or `keep`.
    pub delete_policy: String,
    pub last_sync_at: Option<DateTime<Utc>>,
    /// The calendar (provider id) appointments made in calsync go to; null means the primary.
    pub push_calendar: Option<String>,
    pub token_expires_at: Option<DateTime<Utc>>,
    pub granted_scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Connection> for ConnectionView {
    fn from(c: Connection) -> Self {
        ConnectionView {
            id: c.id.as_uuid(),
            provider: c.provider.as_str().to_owned(),
            account_email: c.account_email,
            status: c.status.as_str().to_owned(),
            status_message: c.status_message,
            status_reason: c.status_reason.map(|r| r.as_str().to_owned()),
            sync_enabled: c.settings.sync_enabled,
            sync_window_days: c.settings.sync_window_days.days(),
            conflict_strategy: c.settings.conflict_strategy.as_str().to_owned(),
            delete_policy: c.settings.delete_policy.as_str().to_owned(),
            last_sync_at: c.last_sync_at,
            push_calendar: c.push_calendar,
            token_expires_at: c.token_expires_at,
            granted_scopes: c.granted_scopes,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarView {
    /// The provider's calendar id.
    pub id: String,
    pub name: String,
    pub primary: bool,
    /// Whether calsync syncs this calendar.
    pub selected: bool,
    pub can_write: bool,
    pub time_zone: Option<String>,
    /// `#rrggbb`, as the provider gives it.
    pub color: Option<String>,
}

impl From<SyncedCalendar> for CalendarView {
    fn from(c: SyncedCalendar) -> Self {
        CalendarView {
            id: c.remote_id,
            name: c.name,
            primary: c.is_primary,
            selected: c.selected,
            can_write: c.can_write,
            time_zone: c.time_zone,
            color: c.color,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InitiateResponse {
    /// Send the user's browser here.
    pub authorization_url: String,
    /// Single use, bound to the caller, valid 10 minutes; it comes back on the redirect.
    pub state: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InitiateBody {
    /// Pre-selects the account at the consent screen (e.g. when reconnecting).
    pub login_hint: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackBody {
    #[schema(value_type = Option<String>)]
    pub state: Option<Secret>,
    #[schema(value_type = Option<String>)]
    pub code: Option<Secret>,
    /// The provider's `error` parameter, e.g. `access_denied`, when the user refused.
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A CalDAV account: `server_url` (or `provider`: `icloud`, `fastmail`), user name and an
/// app-specific password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CalDavBody {
    /// The server's address (`https://dav.example.com/`, a bare host, or a DAV URL).
    pub server_url: Option<String>,
    /// `icloud` or `fastmail` instead of `server_url`.
    pub provider: Option<String>,
    pub username: Option<String>,
    /// Stored sealed; never shown again.
    #[schema(value_type = Option<String>)]
    pub password: Option<Secret>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    pub sync_enabled: Option<bool>,
    /// 7–365.
    pub sync_window_days: Option<i64>,
    /// `newest_wins` | `prefer_internal` | `prefer_external` | `manual`
    pub conflict_strategy: Option<String>,
    /// `propagate` | `keep`
    pub delete_policy: Option<String>,
    /// Provider calendar ids to sync (see `calendars/`); the others stop syncing.
    pub selected_calendars: Option<Vec<String>>,
    /// The writable calendar (provider id) that appointments made in calsync go to; default the primary.
    pub push_calendar: Option<String>,
}

/// Settings errors are 400 naming the field (the contract for this route).
fn settings_error(e: ServiceError) -> ApiError {
    match e {
        ServiceError::Validation(v) => {
            ApiError::BadRequest { code: "validation_failed", field: Some(v.field), message: v.message }
        }
        other => other.into(),
    }
}

impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Rejected { code, field, message } => {
                ApiError::BadRequest { code, field: field.map(str::to_owned), message }
            }
            ConnectError::ProviderUnavailable(m) => ApiError::ProviderUnavailable(m),
            ConnectError::Service(s) => s.into(),
        }
    }
}

/// The caller's calendar connections.
#[utoipa::path(get, path = "/api/calendar/oauth-connections/", tag = "calendar connections",
    responses((status = 200, body = Vec<ConnectionView>), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<Vec<ConnectionView>>, ApiError> {
    let list = state.connections.list(&caller.actor).await?;
    Ok(Json(list.into_iter().map(ConnectionView::from).collect()))
}

async fn initiate(
    state: AppState,
    caller: ApiCaller,
    provider: Provider,
    body: Bytes,
) -> Result<Json<InitiateResponse>, ApiError> {
    let body: InitiateBody =
        if body.iter().all(u8::is_ascii_whitespace) { InitiateBody::default() } else { super::json::parse(&body)? };
    let hint = body.login_hint.filter(|h| !h.trim().is_empty());
    let (authorization_url, state_token) =
        state.connections.initiate(&caller.0.actor, provider, hint.as_deref()).await.map_err(|e| match e {
            ServiceError::Validation(v) => {
                ApiError::BadRequest { code: "provider_not_configured", field: Some(v.field), message: v.message }
            }
            other => other.into(),
        })?;
    Ok(Json(InitiateResponse { authorization_url, state: state_token }))
}

/// Start connecting Google Calendar: send the browser to `authorization_url`.
#[utoipa::path(post, path = "/api/calendar/oauth-connections/initiate_google_oauth/", tag = "calendar connections",
    request_body(content = Option<InitiateBody>, description = "optional"),
    responses((status = 200, body = InitiateResponse), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn initiate_google(
    State(state): State<AppState>,
    caller: ApiCaller,
    body: Bytes,
) -> Result<Json<InitiateResponse>, ApiError> {
    initiate(state, caller, Provider::Google, body).await
}

/// Start connecting Microsoft Outlook: send the browser to `authorization_url`.
#[utoipa::path(post, path = "/api/calendar/oauth-connections/initiate_microsoft_oauth/", tag = "calendar connections",
    request_body(content = Option<InitiateBody>, description = "optional"),
    responses((status = 200, body = InitiateResponse), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn initiate_microsoft(
    State(state): State<AppState>,
    caller: ApiCaller,
    body: Bytes,
) -> Result<Json<InitiateResponse>, ApiError> {
    initiate(state, caller, Provider::Microsoft, body).await
}

/// Finish connecting with the `code` and `state` the provider redirected with.
#[utoipa::path(post, path = "/api/calendar/oauth-connections/oauth_callback/", tag = "calendar connections", request_body = CallbackBody,
    responses(
        (status = 200, body = ConnectionView),
        (status = 400, body = ErrorBody, description = "invalid_state, state_used, state_expired, access_denied, invalid_grant, insufficient_scope, …"),
        (status = 502, body = ErrorBody, description = "the provider is unavailable"),
    ),
    security(("bearer" = [])))]
pub async fn callback(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiJson(body): ApiJson<CallbackBody>,
) -> Result<Json<ConnectionView>, ApiError> {
    let input = CallbackInput {
        state: body.state,
        code: body.code,
        error: body.error,
        error_description: body.error_description,
    };
    let c = state.connections.complete(&caller.actor, input).await?;
    Ok(Json(c.into()))
}

/// Connect a CalDAV calendar account (iCloud, Fastmail, Nextcloud, any RFC 4791 server). The
/// calendars are discovered and the sign-in checked before anything is stored.
#[utoipa::path(post, path = "/api/calendar/oauth-connections/connect_caldav/", tag = "calendar connections", request_body = CalDavBody,
    responses(
        (status = 200, body = ConnectionView),
        (status = 400, body = ErrorBody, description = "invalid_request (the field says which), invalid_credentials, caldav_error, no_calendars"),
        (status = 502, body = ErrorBody, description = "the server could not be reached"),
    ),
    security(("bearer" = [])))]
pub async fn connect_caldav(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ApiJson(body): ApiJson<CalDavBody>,
) -> Result<Json<ConnectionView>, ApiError> {
    let input = crate::services::connections::CalDavInput {
        server_url: body.server_url,
        provider: body.provider,
        username: body.username,
        password: body.password,
    };
    let c = state.connections.connect_caldav(&caller.actor, input).await?;
    Ok(Json(c.into()))
}

/// One connection.
#[utoipa::path(get, path = "/api/calendar/oauth-connections/{id}/", tag = "calendar connections", params(("id" = Uuid, Path)),
    responses((status = 200, body = ConnectionView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<ConnectionView>, ApiError> {
    Ok(Json(state.connections.get(&caller.actor, parse_id(&id)?).await?.into()))
}

/// Change sync settings and the calendars to sync.
#[utoipa::path(patch, path = "/api/calendar/oauth-connections/{id}/", tag = "calendar connections", params(("id" = Uuid, Path)),
    request_body = SettingsBody,
    responses((status = 200, body = ConnectionView), (status = 400, body = ErrorBody, description = "`field` names the bad setting"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SettingsBody>,
) -> Result<Json<ConnectionView>, ApiError> {
    let id = parse_id(&id)?;
    let v = |e: calsync_domain::ValidationError| settings_error(ServiceError::Validation(e));
    let change = SettingsChange {
        sync_enabled: body.sync_enabled,
        sync_window_days: body.sync_window_days.map(SyncWindowDays::parse).transpose().map_err(v)?,
        conflict_strategy: body
            .conflict_strategy
            .as_deref()
            .map(str::parse::<ConflictStrategy>)
            .transpose()
            .map_err(v)?,
        delete_policy: body.delete_policy.as_deref().map(str::parse::<DeletePolicy>).transpose().map_err(v)?,
        selected_calendars: body.selected_calendars,
    };
    let c = state
        .connections
        .update_settings(&caller.actor, id, change, body.push_calendar)
        .await
        .map_err(settings_error)?;
    Ok(Json(c.into()))
}

/// Disconnect: revoke at the provider where possible, forget the tokens, stop syncing. Appointments
/// already synced stay.
#[utoipa::path(post, path = "/api/calendar/oauth-connections/{id}/disconnect/", tag = "calendar connections", params(("id" = Uuid, Path)),
    responses((status = 200, body = ConnectionView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn disconnect(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<ConnectionView>, ApiError> {
    Ok(Json(state.connections.disconnect(&caller.actor, parse_id(&id)?).await?.into()))
}

/// The account's calendars and which of them are synced.
#[utoipa::path(get, path = "/api/calendar/oauth-connections/{id}/calendars/", tag = "calendar connections", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<CalendarView>), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn calendars(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Vec<CalendarView>>, ApiError> {
    let list = state.connections.calendars(&caller.actor, parse_id(&id)?).await?;
    Ok(Json(list.into_iter().map(CalendarView::from).collect()))
}
