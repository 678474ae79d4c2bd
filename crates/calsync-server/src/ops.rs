//! Endpoints for operators and orchestrators: health, readiness (with the worker's state) and
//! Prometheus metrics.

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

/// The process is up and serving.
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The process can do useful work: its database answers, and its sync worker (where it runs
/// one) reaches the database too.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let worker = state.worker.as_ref().map(|w| w.report());
    let worker_json = match &worker {
        Some(r) => serde_json::to_value(r).unwrap_or(Value::Null),
        None => json!({"running": false, "reason": "this process runs no sync worker"}),
    };
    match state.db.ping().await {
        Ok(()) if worker.as_ref().is_none_or(|w| w.healthy) => {
            (StatusCode::OK, Json(json!({"status": "ready", "database": "ok", "worker": worker_json})))
        }
        Ok(()) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "database": "ok", "worker": worker_json})),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "database": "unreachable", "worker": worker_json})),
            )
        }
    }
}

/// Prometheus text format.
async fn metrics() -> Response {
    let body = crate::metrics::render();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}
