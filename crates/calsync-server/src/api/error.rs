//! The API's one error type. Variants are named after what the client sees; internal causes are
//! logged with their chain and never sent.

use crate::services::ServiceError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use calsync_domain::ValidationError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub enum ApiError {
    /// 422: well-formed input that breaks a rule.
    Validation(ValidationError),
    /// 400: input that could not be read at all (malformed JSON, unknown field, bad parameter).
    BadRequest {
        code: &'static str,
        field: Option<String>,
        message: String,
    },
    Unauthorized(&'static str),
    Forbidden(String),
    NotFound,
    /// No API route has this path (or it lacks the trailing slash).
    NoSuchRoute,
    Conflict {
        field: String,
        message: String,
    },
    PreconditionFailed(String),
    PayloadTooLarge(usize),
    /// 502: Google or Microsoft could not be reached; worth retrying.
    ProviderUnavailable(String),
    /// 429 with `Retry-After`.
    RateLimited {
        retry_after: u64,
    },
    UnsupportedMediaType,
    /// 503 with `Retry-After`: bounded work is at capacity.
    Busy {
        retry_after: u64,
    },
    Internal(anyhow::Error),
}

/// `{"error": {"code", "message", "field"}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `validation_failed`, `unknown_field`, `not_found`.
    pub code: String,
    pub message: String,
    /// The offending field (dotted path) when one is to blame.
    pub field: Option<String>,
}

impl ApiError {
    pub fn bad_request(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadRequest { code, field: Some(field.into()), message: message.into() }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Validation(v) => ApiError::Validation(v),
            ServiceError::NotFound => ApiError::NotFound,
            ServiceError::Forbidden(m) => ApiError::Forbidden(m),
            ServiceError::Conflict { field, message } => ApiError::Conflict { field, message },
            ServiceError::PreconditionFailed(m) => ApiError::PreconditionFailed(m),
            ServiceError::Busy { retry_after } => ApiError::Busy { retry_after },
            ServiceError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, field, message) = match self {
            ApiError::Validation(v) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", Some(v.field), v.message)
            }
            ApiError::BadRequest { code, field, message } => (StatusCode::BAD_REQUEST, code, field, message),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", None, m.to_owned()),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", None, m),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", None, "not found".to_owned()),
            ApiError::NoSuchRoute => (
                StatusCode::NOT_FOUND,
                "no_such_route",
                None,
                "no such API route (API paths end with a slash, e.g. /api/appointments/); see /api/docs".to_owned(),
            ),
            ApiError::Conflict { field, message } => (StatusCode::CONFLICT, "conflict", Some(field), message),
            ApiError::PreconditionFailed(m) => (StatusCode::PRECONDITION_FAILED, "precondition_failed", None, m),
            ApiError::PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                None,
                format!("request body is larger than {limit} bytes"),
            ),
            ApiError::ProviderUnavailable(m) => (StatusCode::BAD_GATEWAY, "provider_unavailable", None, m),
            ApiError::Busy { retry_after } => {
                let body = ErrorBody {
                    error: ErrorDetail {
                        code: "busy".into(),
                        message: format!("the server is busy; retry in {retry_after} s"),
                        field: None,
                    },
                };
                let mut resp = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                return resp;
            }
            ApiError::RateLimited { retry_after } => {
                let body = ErrorBody {
                    error: ErrorDetail {
                        code: "rate_limited".into(),
                        message: format!("too many requests; retry in {retry_after} s"),
                        field: None,
                    },
                };
                let mut resp = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                return resp;
            }
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                None,
                "send the body as JSON with Content-Type: application/json".to_owned(),
            ),
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", None, "internal error; see the server log".to_owned())
            }
        };
        let body = ErrorBody { error: ErrorDetail { code: code.to_owned(), message, field } };
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
