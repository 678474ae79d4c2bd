//! Graph event writes and single reads: create (with `transactionId` dedupe), get, PATCH
//! with `If-Match`, DELETE and `cancel`, with the mail Graph sends for meetings and the
//! series bookkeeping (history for delta, orphaned exceptions, carried edits).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::{GraphError, GraphResult};
use super::graph::{GEvent, WRITE, calendar_id, check, look, prefer, respond, with_preference};
use super::identity::GraphAuth;
use super::render::render;
use super::{MsWorld, body, extprops, meetings, series, subscriptions};
use crate::ids;
use crate::state::{Shared, World};
use crate::store::Item;

/// Finds the calendar holding event `id` among the caller's calendars.
/// Occurrence ids resolve through their master.
pub(super) fn locate(microsoft: &MsWorld, auth: &GraphAuth, id: &str) -> GraphResult<String> {
    let acc = microsoft.accounts.get(&auth.email).ok_or_else(GraphError::not_found)?;
    acc.calendars
        .iter()
        .find(|c| series::resolve(microsoft, c, id).is_some_and(|r| !r.3))
        .cloned()
        .ok_or_else(GraphError::not_found)
}

/// The index extent: a master spans its whole series.
pub(super) fn extent(ev: &GEvent, s: i64, e: i64) -> (i64, i64) {
    series::master_series(ev).map_or((s, e), |g| g.extent())
}

pub(super) fn parse_object(body: &[u8]) -> GraphResult<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(GraphError::new(400, "RequestBodyRead", "Invalid JSON in request body.")),
    }
}

/// Client properties as Outlook keeps them: bodies as HTML, extended property ids
/// normalized (merged into `prior`'s on PATCH).
pub(super) fn normalize(props: &mut Map<String, Value>, prior: Option<&Map<String, Value>>) -> GraphResult<()> {
    extprops::write(props, prior)?;
    if let Some(b) = props.get("body").filter(|b| !b.is_null()) {
        let stored = body::stored(b);
        props.insert("body".into(), stored);
    }
    Ok(())
}

pub(super) fn store(world: &mut World, cal_id: &str, ev: GEvent, times: (i64, i64), now: i64, deleted: bool) -> u64 {
    let seq = world.next_seq();
    let cal = world.microsoft.calendars.get_mut(cal_id).expect("calendar exists");
    let id = ev.id.clone();
    let change = match cal.events.get(&id) {
        _ if deleted => "deleted",
        Some(prior) if !prior.deleted => "updated",
        _ => "created",
    };
    let etag = format!("W/\"{}\"", ev.change_key);
    cal.events.put(&id, Item { ev: Arc::new(ev), seq, start: times.0, end: times.1, updated_ms: now, deleted });
    subscriptions::notify(world, cal_id, &id, &etag, change, now);
    seq
}

/// A new stored event with fresh server-owned identity.
pub(super) fn new_event(world: &mut World, props: Map<String, Value>, all_day: bool, now: i64) -> GEvent {
    GEvent {
        props,
        id: ids::token(&mut world.rng, "AAMkAGI2", 96),
        change_key: ids::token(&mut world.rng, "", 18),
        created_ms: now,
        ical_uid: format!("040000008200E00074C5B7101A82E008{}", ids::token(&mut world.rng, "", 24)),
        all_day,
        link: None,
        invite: None,
        born_seq: world.seq() + 1,
        history: Arc::default(),
        history_floor: 0,
    }
}

pub(super) async fn create_default(
    State(shared): State<Arc<Shared>>,
    auth: Result<GraphAuth, GraphError>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(create_inner(&shared, auth, None, &headers, &body))
}

pub(super) async fn create(
    State(shared): State<Arc<Shared>>,
    auth: Result<GraphAuth, GraphError>,
    Path(cal): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(create_inner(&shared, auth, Some(&cal), &headers, &body))
}

fn create_inner(
    shared: &Shared,
    auth: GraphResult<GraphAuth>,
    cal: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> GraphResult<Response> {
    let auth = auth?;
    auth.require(WRITE)?;
    let pref = prefer(headers)?;
    let mut props = parse_object(body)?;
    let (s, e, all_day) = check(&mut props, true)?;
    normalize(&mut props, None)?;
    let now = shared.clock.now_ms();
    let mut world = shared.world();
    let cal_id = calendar_id(&world.microsoft, &auth, cal)?;
    let lk = look(&world.microsoft, &auth, &pref, None);
    let tx = props.get("transactionId").and_then(Value::as_str).map(str::to_owned);
    // A retried POST with the same transactionId returns the first event, unchanged.
    if let Some(tx) = &tx
        && let Some(existing) = world.microsoft.calendars[&cal_id].transactions.get(tx)
        && let Some(item) = world.microsoft.calendars[&cal_id].events.get(existing)
    {
        let v = render(&item.ev, item.updated_ms, &lk);
        return Ok(with_preference((StatusCode::CREATED, Json(v)).into_response(), &pref));
    }
    let ev = new_event(&mut world, props, all_day, now);
    let (s, e) = extent(&ev, s, e);
    if let Some(tx) = tx {
        world.microsoft.calendars.get_mut(&cal_id).expect("exists").transactions.insert(tx, ev.id.clone());
    }
    let v = render(&ev, now, &lk);
    meetings::mail_created(&mut world, &auth.email, &ev, now);
    store(&mut world, &cal_id, ev, (s, e), now, false);
    Ok(with_preference((StatusCode::CREATED, Json(v)).into_response(), &pref))
}

/// `$expand` (one extended property) and `$select` are the query options of a single GET.
fn single_options(raw: Option<String>) -> GraphResult<(Option<String>, Option<Vec<String>>)> {
    let mut expand = None;
    let mut select = None;
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "$expand" => expand = Some(extprops::parse_expand(&v)?),
            "$select" => select = Some(v.split(',').map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect()),
            other => {
                return Err(GraphError::bad_request(&format!(
                    "The query parameter '{other}' is not supported with this request."
                )));
            }
        }
    }
    Ok((expand, select))
}

pub(super) async fn get_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GraphAuth, GraphError>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(super::graph::READ)?;
        let pref = prefer(&headers)?;
        let (expand, select) = single_options(raw)?;
        let world = shared.world();
        let cal = locate(&world.microsoft, &auth, &id)?;
        let (ev, _, updated, _) = series::resolve(&world.microsoft, &cal, &id).ok_or_else(GraphError::not_found)?;
        let lk = look(&world.microsoft, &auth, &pref, expand);
        drop(world);
        let mut v = render(&ev, updated, &lk);
        if let Some(fields) = select {
            v = super::listing::project(v, &fields)?;
        }
        Ok(with_preference(Json(v).into_response(), &pref))
    })())
}

/// `If-Match` must carry the current `W/"changeKey"` (a bare change key does not match).
pub(super) fn if_match(headers: &HeaderMap, change_key: &str) -> GraphResult<()> {
    match headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        None | Some("*") => Ok(()),
        Some(v) if v == format!("W/\"{change_key}\"") => Ok(()),
        Some(_) => Err(GraphError::conflict()),
    }
}

pub(super) async fn patch_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GraphAuth, GraphError>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(WRITE)?;
        let pref = prefer(&headers)?;
        let mut patch = parse_object(&body)?;
        if patch.contains_key("transactionId") {
            return Err(GraphError::bad_request("The property 'transactionId' is read-only after creation."));
        }
        let now = shared.clock.now_ms();
        let mut world = shared.world();
        let cal = locate(&world.microsoft, &auth, &id)?;
        let (current, _, _, _) = series::resolve(&world.microsoft, &cal, &id).ok_or_else(GraphError::not_found)?;
        if_match(&headers, &current.change_key)?;
        if current.invite.is_some() {
            meetings::check_attendee_patch(&patch)?;
        }
        let mut ev = current.clone();
        let ext = patch.remove("singleValueExtendedProperties");
        // Top-level properties replace whole values, arrays and complex types included;
        // extended properties are upserted one by one.
        for (k, v) in patch {
            ev.props.insert(k, v);
        }
        let is_instance = ev.link.is_some();
        let (s, e, all_day) = check(&mut ev.props, !is_instance)?;
        if let Some(x) = ext {
            ev.props.insert("singleValueExtendedProperties".into(), x);
            extprops::write(&mut ev.props, Some(&current.props))?;
        }
        if let Some(b) = ev.props.get("body").filter(|b| current.props.get("body") != Some(*b)) {
            let stored = body::stored(b);
            ev.props.insert("body".into(), stored);
        }
        ev.all_day = all_day;
        ev.change_key = ids::token(&mut world.rng, "", 18);
        if let Some(l) = ev.link.as_mut() {
            // Editing an occurrence makes it an exception.
            l.exception = true;
        }
        let times = extent(&ev, s, e);
        let lk = look(&world.microsoft, &auth, &pref, None);
        let v = render(&ev, now, &lk);
        meetings::mail_changed(&mut world, &auth.email, &current, &ev, now);
        store_edit(&mut world, &cal, &current, ev, times, now);
        Ok(with_preference(Json(v).into_response(), &pref))
    })())
}

/// Stores an edit of `current` (a PATCH, or an organizer's change to an attendee copy)
/// with the series bookkeeping: the old series goes into the master's history (delta rounds
/// begun earlier compare against it), exceptions the new series lacks become tombstones,
/// and changed master properties reach the exceptions that did not override them, each
/// with a new change key so delta resends it.
pub(super) fn store_edit(world: &mut World, cal: &str, current: &GEvent, mut ev: GEvent, times: (i64, i64), now: i64) {
    let is_instance = ev.link.is_some();
    let old_series = series::master_series(current);
    let series_changed = ["start", "end", "recurrence"].iter().any(|k| current.props.get(*k) != ev.props.get(*k));
    if series_changed && old_series.is_some() {
        series::record_version(&mut ev, current, world.seq() + 1);
    }
    let new_series = series::master_series(&ev);
    let master = ev.clone();
    store(world, cal, ev, times, now, false);
    if series_changed && !is_instance {
        let orphans = series::orphans(&world.microsoft.calendars[cal], &master.id, new_series.as_ref());
        for (o, span) in orphans {
            store(world, cal, o, span, now, true);
        }
    }
    if !is_instance && old_series.is_some() && new_series.is_some() {
        let carried = series::carried_into_exceptions(&world.microsoft.calendars[cal], current, &master);
        for (mut ex, span) in carried {
            ex.change_key = ids::token(&mut world.rng, "", 18);
            store(world, cal, ex, span, now, false);
        }
    }
}

pub(super) async fn delete_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GraphAuth, GraphError>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(WRITE)?;
        remove(&shared, &auth, &id, &headers, false)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)] // Validated only.
pub(super) struct ResponseBody {
    comment: Option<String>,
    pub(super) send_response: Option<bool>,
    proposed_new_time: Option<Value>,
}

pub(super) fn response_body(body: &[u8]) -> GraphResult<ResponseBody> {
    serde_json::from_slice(body)
        .map_err(|e| GraphError::new(400, "RequestBodyRead", &format!("Invalid request body: {e}")))
}

/// `POST /me/events/{id}/cancel`: the organizer cancels (attendees are mailed); the event,
/// or the occurrence, goes away as with DELETE. 202. Attendees cannot cancel.
pub(super) async fn cancel_event(
    State(shared): State<Arc<Shared>>,
    auth: Result<GraphAuth, GraphError>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond((|| {
        let auth = auth?;
        auth.require(WRITE)?;
        response_body(&body)?;
        remove(&shared, &auth, &id, &headers, true)?;
        Ok(StatusCode::ACCEPTED.into_response())
    })())
}

/// Deletes an event (a master with its series) or cancels one occurrence; the organizer's
/// deletion mails a cancellation to the attendees. `organizer_only`: the `cancel` action.
pub(super) fn remove(
    shared: &Shared,
    auth: &GraphAuth,
    id: &str,
    headers: &HeaderMap,
    organizer_only: bool,
) -> GraphResult<()> {
    let now = shared.clock.now_ms();
    let mut world = shared.world();
    let cal = locate(&world.microsoft, auth, id)?;
    let (mut ev, times, _, _) = series::resolve(&world.microsoft, &cal, id).ok_or_else(GraphError::not_found)?;
    if_match(headers, &ev.change_key)?;
    if organizer_only && ev.invite.is_some() {
        return Err(GraphError::new(
            400,
            "ErrorInvalidRequest",
            "Your request can't be completed. Only the meeting organizer can cancel the meeting.",
        ));
    }
    // Deleting an occurrence cancels it (a deleted exception); deleting a master deletes
    // the series with its exceptions.
    if let Some(l) = ev.link.as_mut() {
        l.exception = true;
    }
    meetings::mail_cancelled(&mut world, &auth.email, &ev, now);
    let master_id = ev.id.clone();
    let is_master = series::master_series(&ev).is_some();
    store(&mut world, &cal, ev, times, now, true);
    if is_master {
        for (o, span) in series::orphans(&world.microsoft.calendars[&cal], &master_id, None) {
            store(&mut world, &cal, o, span, now, true);
        }
    }
    Ok(())
}

/// Control API bulk load: `count` half-hour events a minute apart from 2020-01-01 in the
/// default calendar. Returns false for an unknown account.
pub(crate) fn seed_events(shared: &Shared, email: &str, count: usize, first_start_ms: i64) -> bool {
    let now = shared.clock.now_ms();
    let mut world = shared.world();
    let Some(cal_id) = world.microsoft.accounts.get(email).map(|a| a.calendars[0].clone()) else {
        return false;
    };
    let base = first_start_ms;
    let local = |ms: i64| {
        DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%dT%H:%M:%S").to_string()
    };
    for i in 0..count {
        let start = base + i as i64 * 60_000;
        let mut props = Map::new();
        props.insert("subject".into(), json!(format!("Seeded event {i}")));
        props.insert("start".into(), json!({"dateTime": local(start), "timeZone": "UTC"}));
        props.insert("end".into(), json!({"dateTime": local(start + 1_800_000), "timeZone": "UTC"}));
        let ev = new_event(&mut world, props, false, now);
        store(&mut world, &cal_id, ev, (start, start + 1_800_000), now, false);
    }
    true
}
