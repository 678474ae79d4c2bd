//! Google's error bodies: the Calendar API envelope and the flat OAuth token-endpoint shape.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// `{"error":{"errors":[{"domain","reason","message",…}],"code","message"}}`. Google sends
/// no `Retry-After` with any of them, so this type cannot carry one.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub code: u16,
    pub domain: &'static str,
    pub reason: String,
    pub message: String,
    /// `(locationType, location)`.
    pub location: Option<(&'static str, String)>,
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub(crate) fn new(code: u16, domain: &'static str, reason: &str, message: &str) -> Self {
        Self { code, domain, reason: reason.to_owned(), message: message.to_owned(), location: None }
    }

    pub(crate) fn at(mut self, location_type: &'static str, location: &str) -> Self {
        self.location = Some((location_type, location.to_owned()));
        self
    }

    pub(crate) fn bad_request(message: &str) -> Self {
        Self::new(400, "global", "badRequest", message)
    }

    pub(crate) fn invalid(message: &str) -> Self {
        Self::new(400, "global", "invalid", message)
    }

    pub(crate) fn invalid_param(param: &str, message: &str) -> Self {
        Self::invalid(message).at("parameter", param)
    }

    pub(crate) fn required(message: &str) -> Self {
        Self::new(400, "global", "required", message)
    }

    pub(crate) fn not_found() -> Self {
        Self::new(404, "global", "notFound", "Not Found")
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(401, "global", "authError", "Invalid Credentials").at("header", "Authorization")
    }

    pub(crate) fn login_required() -> Self {
        Self::new(401, "global", "required", "Login Required.").at("header", "Authorization")
    }

    pub(crate) fn insufficient_scope() -> Self {
        Self::new(403, "global", "insufficientPermissions", "Insufficient Permission")
    }

    pub(crate) fn full_sync_required() -> Self {
        Self::new(410, "calendar", "fullSyncRequired", "Sync token is no longer valid, a full sync is required.")
            .at("parameter", "syncToken")
    }

    pub(crate) fn precondition_failed() -> Self {
        Self::new(412, "global", "conditionNotMet", "Precondition Failed").at("header", "If-Match")
    }

    /// The canonical error for a status, as Google sends it (used by injected faults).
    pub(crate) fn for_status(status: u16, reason: Option<&str>) -> Self {
        let mut e = match status {
            400 => Self::bad_request("Bad Request"),
            401 => Self::unauthorized(),
            403 => Self::new(403, "usageLimits", "rateLimitExceeded", "Rate Limit Exceeded"),
            404 => Self::not_found(),
            409 => Self::new(409, "global", "conflict", "Conflict"),
            410 => Self::full_sync_required(),
            412 => Self::precondition_failed(),
            429 => Self::new(429, "usageLimits", "rateLimitExceeded", "Rate Limit Exceeded"),
            503 => Self::new(503, "global", "backendError", "Backend Error"),
            s if s >= 500 => Self::new(s, "global", "backendError", "Backend Error"),
            s => Self::new(s, "global", "badRequest", "Bad Request"),
        };
        if let Some(r) = reason {
            e.reason = r.to_owned();
            match r {
                "quotaExceeded" => e.message = "Calendar usage limits exceeded.".into(),
                "userRateLimitExceeded" => e.message = "User Rate Limit Exceeded".into(),
                "updatedMinTooLongAgo" => {
                    e.message = "The requested minimum modification time lies too far in the past.".into();
                    e.location = Some(("parameter", "updatedMin".into()));
                }
                _ => {}
            }
            if matches!(r, "quotaExceeded" | "userRateLimitExceeded" | "rateLimitExceeded") {
                e.domain = "usageLimits";
            }
        }
        e
    }

    fn body(&self) -> Value {
        let mut item = json!({"domain": self.domain, "reason": self.reason, "message": self.message});
        if let Some((t, l)) = &self.location {
            item["locationType"] = json!(t);
            item["location"] = json!(l);
        }
        json!({"error": {"errors": [item], "code": self.code, "message": self.message}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, Json(self.body())).into_response();
        if self.code == 401 {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\""),
            );
        }
        // Never a Retry-After: Google's rate-limit answers (403 usageLimits, 429) carry none,
        // and clients must back off exponentially on their own.
        resp
    }
}

/// Flat token-endpoint error `{"error","error_description"}`.
#[derive(Debug, Clone)]
pub(crate) struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub(crate) fn new(status: u16, error: &'static str, description: &str) -> Self {
        Self { status, error, description: description.to_owned() }
    }

    pub(crate) fn invalid_grant() -> Self {
        Self::new(400, "invalid_grant", "Bad Request")
    }

    pub(crate) fn expired_or_revoked() -> Self {
        Self::new(400, "invalid_grant", "Token has been expired or revoked.")
    }

    pub(crate) fn invalid_request(description: &str) -> Self {
        Self::new(400, "invalid_request", description)
    }

    pub(crate) fn for_status(status: u16, reason: Option<&str>) -> Self {
        match (status, reason) {
            (401, _) | (_, Some("invalid_client")) => Self::new(status, "invalid_client", "Unauthorized"),
            (400, _) => Self::expired_or_revoked(),
            (429, _) => Self::new(429, "rate_limit_exceeded", "Rate limit exceeded"),
            (s, _) if s >= 500 => Self::new(s, "internal_failure", "Backend Error"),
            (s, _) => Self::new(s, "invalid_request", "Bad Request"),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, Json(json!({"error": self.error, "error_description": self.description}))).into_response()
    }
}
