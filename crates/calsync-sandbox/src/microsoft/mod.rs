//! Microsoft: identity platform v2.0 and Graph calendar.

use std::sync::Arc;

use axum::Router;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::control::Minted;
use crate::faults::Fired;
use crate::state::{Shared, World};

#[derive(Debug, Default)]
pub(crate) struct MsWorld {}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().with_state(shared)
}

pub(crate) fn fault_response(_path: &str, fired: &Fired) -> Response {
    axum::http::StatusCode::from_u16(fired.status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
        .into_response()
}

pub(crate) struct Slot;

pub(crate) fn admit(_shared: &Shared, _headers: &HeaderMap) -> Result<Option<Slot>, Response> {
    Ok(None)
}

pub(crate) fn control_account(_shared: &Shared, email: &str, _tz: &str) -> Minted {
    Minted {
        email: email.to_owned(),
        access_token: String::new(),
        refresh_token: String::new(),
    }
}

pub(crate) fn expire_cursors(_world: &mut World, _email: Option<&str>) -> usize {
    0
}

pub(crate) fn revoke_account(_world: &mut World, _email: &str, _now: i64) -> bool {
    false
}
