//! The JSON REST API under `/api/`, its OpenAPI document and Swagger UI.

pub mod admin;
pub mod appointments;
pub mod connections;
pub mod error;
pub mod json;
pub mod openapi;
pub mod sync;

use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderValue;
use axum::http::header::{CONTENT_SECURITY_POLICY, X_FRAME_OPTIONS};
use axum::routing::any;
use axum::{Extension, Router};
use error::ApiError;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub fn router(max_body_bytes: usize) -> Router<AppState> {
    Router::new()
        .merge(appointments::router())
        .merge(connections::router())
        .merge(sync::router())
        .merge(admin::router())
        .merge(docs())
        .route("/api/{*rest}", any(no_such_route))
        .layer(Extension(json::BodyLimit(max_body_bytes)))
        .layer(DefaultBodyLimit::max(max_body_bytes))
}

/// Swagger UI, whose assets are compiled into the binary (no CDN), and the document. The UI
/// runs inline scripts and styles of its own, so its CSP allows those and nothing from
/// elsewhere; it may not be framed.
fn docs() -> Router<AppState> {
    let csp = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; \
               img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
    Router::new()
        .merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", openapi::ApiDoc::openapi()))
        .layer(SetResponseHeaderLayer::if_not_present(CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp)))
        .layer(SetResponseHeaderLayer::if_not_present(X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
}

/// A path id: one that cannot even be parsed cannot exist either, so it is simply not found.
pub(crate) fn parse_id<T: std::str::FromStr>(raw: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

async fn no_such_route() -> ApiError {
    ApiError::NoSuchRoute
}
