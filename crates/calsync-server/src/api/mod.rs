//! The JSON REST API under `/api/`, its OpenAPI document and Swagger UI.

pub mod appointments;
pub mod connections;
pub mod error;
pub mod json;
pub mod openapi;

use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::routing::any;
use axum::{Extension, Router};
use error::ApiError;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub fn router(max_body_bytes: usize) -> Router<AppState> {
    Router::new()
        .merge(appointments::router())
        .merge(connections::router())
        // Swagger UI's assets are compiled into the binary (no CDN); it also serves the document.
        .merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", openapi::ApiDoc::openapi()))
        .route("/api/{*rest}", any(no_such_route))
        .layer(Extension(json::BodyLimit(max_body_bytes)))
        .layer(DefaultBodyLimit::max(max_body_bytes))
}

/// A path id: one that cannot even be parsed cannot exist either, so it is simply not found.
pub(crate) fn parse_id<T: std::str::FromStr>(raw: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

async fn no_such_route() -> ApiError {
    ApiError::NoSuchRoute
}
