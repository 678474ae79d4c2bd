//! Who is calling: a bearer token for the API, a session cookie for the web UI. Both resolve to an
//! [`AuthenticatedUser`] whose actor carries the firm every later query is scoped to.

use crate::api::error::ApiError;
use crate::crypto::token_hash;
use crate::services::ServiceError;
use crate::services::accounts;
use crate::state::AppState;
use crate::throttle::client_key;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use calsync_store::{AuthenticatedUser, StoreError, WebSession};
use std::net::SocketAddr;

pub const SESSION_COOKIE: &str = "calsync_session";

/// An API caller authenticated with `Authorization: Bearer <token>`.
pub struct ApiCaller(pub AuthenticatedUser);

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(ApiError::Unauthorized("missing Authorization: Bearer <token> header"))?;
        let value = header.to_str().map_err(|_| ApiError::Unauthorized("malformed Authorization header"))?;
        let (scheme, token) = value.split_once(' ').ok_or(ApiError::Unauthorized("malformed Authorization header"))?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(ApiError::Unauthorized("the Authorization header must use the Bearer scheme"));
        }
        // A client that keeps presenting bad tokens is refused before the lookup.
        let client = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| client_key(c.0.ip()));
        let now = state.clock.now();
        if let Some(retry_after) = client.as_deref().and_then(|c| state.bad_token_throttle.blocked_for(c, now)) {
            return Err(ApiError::RateLimited { retry_after });
        }
        match accounts::user_for_api_token(&state.db, token.trim()).await {
            Ok(user) => match state.api_limiter.check(&user.actor.user_id.to_string()) {
                Ok(()) => Ok(ApiCaller(user)),
                Err(retry_after) => Err(ApiError::RateLimited { retry_after }),
            },
            Err(ServiceError::NotFound) => {
                if let Some(c) = client.as_deref() {
                    let _ = state.bad_token_throttle.try_hit(c, now);
                }
                Err(ApiError::Unauthorized("invalid, expired or revoked API token"))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// A logged-in web user. Without a valid session the browser is sent to the login page, which
/// brings it back here afterwards.
pub struct WebCaller {
    pub user: AuthenticatedUser,
    pub session: WebSession,
}

impl FromRequestParts<AppState> for WebCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_login = || {
            let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let q: String = url::form_urlencoded::Serializer::new(String::new()).append_pair("next", next).finish();
            Redirect::to(&format!("/login?{q}")).into_response()
        };
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(cookie) = jar.get(SESSION_COOKIE) else { return Err(to_login()) };
        match state.db.session(&token_hash(cookie.value())).await {
            Ok(session) => Ok(WebCaller { user: session.user.clone(), session }),
            Err(StoreError::NotFound) => Err(to_login()),
            Err(e) => Err(crate::web::error_page(e.into())),
        }
    }
}
