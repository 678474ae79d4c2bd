//! Conflicts (`/calendar-sync/conflicts`): appointments changed on both sides in ways calsync
//! does not settle on its own (strategy "Ask me"). Both versions side by side; keep one whole, or
//! choose field by field.

use super::session::csrf_ok;
use super::{Nav, csrf_rejected, error_page, render};
use crate::auth::WebCaller;
use crate::services::ServiceError;
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use calsync_domain::ValidationError;
use calsync_domain::appointment::AppointmentData;
use calsync_domain::ids::ConflictId;
use calsync_domain::merge::{Field, Side};
use calsync_domain::sync::ConflictSide;
use serde::Deserialize;
use std::collections::HashMap;

pub const PAGE: &str = "/calendar-sync/conflicts";

/// The fields a conflict can be about, in the order the page shows them.
const FIELDS: &[(&str, &str)] = &[
    ("title", "Title"),
    ("time", "When"),
    ("location", "Where"),
    ("description", "Description"),
    ("attendees", "Attendees"),
    ("status", "Status"),
    ("visibility", "Visibility"),
    ("show_as", "Show as"),
];

struct Line {
    field: &'static str,
    label: &'static str,
    internal: String,
    external: String,
    in_conflict: bool,
}

struct Card {
    id: String,
    connection: String,
    title: String,
    lines: Vec<Line>,
    /// Field by field is offered when the conflict names its fields.
    by_field: bool,
    detected: String,
}

#[derive(Template)]
#[template(path = "conflicts.html")]
struct ConflictsPage {
    nav: Nav,
    cards: Vec<Card>,
    notice: Option<String>,
    error: Option<String>,
}

fn value(d: &AppointmentData, field: &str) -> String {
    match field {
        "title" => d.title.clone(),
        "time" => super::appointments::describe_data(d),
        "location" => d.location.clone(),
        "description" => d.description.clone(),
        "attendees" => d.attendees.iter().map(|a| a.email.as_str()).collect::<Vec<_>>().join(", "),
        "status" => d.status.as_str().to_owned(),
        "visibility" => d.visibility.as_str().to_owned(),
        "show_as" => d.show_as.as_str().replace('_', " "),
        _ => String::new(),
    }
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    notice: String,
}

pub async fn show(State(state): State<AppState>, caller: WebCaller, Query(q): Query<PageQuery>) -> Response {
    let notice = match q.notice.as_str() {
        "resolved" => Some("Conflict resolved: the version you kept is being written to both sides.".to_owned()),
        _ => None,
    };
    page(&state, &caller, notice, None, StatusCode::OK).await
}

async fn page(
    state: &AppState,
    caller: &WebCaller,
    notice: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let list = match state.sync.conflicts(&caller.user.actor).await {
        Ok(l) => l,
        Err(e) => return error_page(e),
    };
    let names: HashMap<String, String> = match super::history::connection_options(state, caller).await {
        Ok(c) => c.into_iter().map(|c| (c.id, c.label)).collect(),
        Err(e) => return error_page(e),
    };
    let cards = list
        .iter()
        .map(|c| Card {
            id: c.id.to_string(),
            connection: names.get(&c.connection_id.to_string()).cloned().unwrap_or_default(),
            title: if c.local.title.is_empty() { c.remote.title.clone() } else { c.local.title.clone() },
            lines: FIELDS
                .iter()
                .map(|(field, label)| {
                    let (internal, external) = (value(&c.local, field), value(&c.remote, field));
                    // A conflict about the whole appointment marks what actually differs.
                    let in_conflict =
                        c.fields.iter().any(|f| f == field) || (c.fields.is_empty() && internal != external);
                    Line { field, label, internal, external, in_conflict }
                })
                .filter(|l| l.in_conflict || !(l.internal.is_empty() && l.external.is_empty()))
                .collect(),
            by_field: c.fields.len() > 1,
            detected: c.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        })
        .collect();
    render(status, &ConflictsPage { nav: Nav::of(caller, "conflicts"), cards, notice, error })
}

/// Keeps one version whole (`keep=internal|external`), or field by field (`keep=fields` with a
/// `pick.<field>` of `internal` or `external` for every field in conflict).
pub async fn resolve(
    State(state): State<AppState>,
    caller: WebCaller,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if !csrf_ok(&caller, get("csrf_token").unwrap_or_default()) {
        return csrf_rejected();
    }
    let Ok(id) = id.parse::<ConflictId>() else { return error_page(ServiceError::NotFound) };
    let parsed = (|| -> Result<(ConflictSide, Vec<(Field, Side)>), ValidationError> {
        match get("keep").unwrap_or_default() {
            "fields" => {
                let mut picks = Vec::new();
                for (k, v) in &pairs {
                    if let Some(name) = k.strip_prefix("pick.") {
                        let field: Field = name.parse()?;
                        let side = match v.parse::<ConflictSide>()? {
                            ConflictSide::Internal => Side::Local,
                            ConflictSide::External => Side::Remote,
                        };
                        picks.push((field, side));
                    }
                }
                if picks.is_empty() {
                    return Err(ValidationError::new("keep", "choose a version for each field"));
                }
                Ok((ConflictSide::Internal, picks))
            }
            other => Ok((other.parse::<ConflictSide>()?, Vec::new())),
        }
    })();
    let result = match parsed {
        Ok((keep, picks)) => state.sync.resolve(&caller.user.actor, id, keep, &picks).await,
        Err(v) => Err(v.into()),
    };
    match result {
        Ok(_) => Redirect::to(&format!("{PAGE}?notice=resolved")).into_response(),
        Err(ServiceError::Validation(v)) => {
            let message = format!("Not resolved: {}: {}", v.field, v.message);
            page(&state, &caller, None, Some(message), StatusCode::BAD_REQUEST).await
        }
        Err(e) => error_page(e),
    }
}
