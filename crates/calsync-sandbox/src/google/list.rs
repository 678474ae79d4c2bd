//! events.list: paging (ragged on request), sync tokens, filters, and `singleEvents` expansion
//! of series; the page cursor and row types are shared with `instances`.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Calendar;
use super::calendar::*;
use super::error::{ApiError, ApiResult};
use super::model::{self, Event};
use super::oauth::GoogleAuth;
use super::series::{self, MasterInfo};
use crate::cursor;
use crate::paging;
use crate::recurrence::Occ;
use crate::state::{Provider, Shared};
use crate::store::Item;
use std::rc::Rc;
// ---------------------------------------------------------------------------------------
// events.list

pub(super) const LIST_PARAMS: &[&str] = &[
    "maxResults",
    "pageToken",
    "syncToken",
    "timeMin",
    "timeMax",
    "updatedMin",
    "singleEvents",
    "showDeleted",
    "orderBy",
    "q",
    "privateExtendedProperty",
    "sharedExtendedProperty",
    "iCalUID",
    "eventTypes",
    "showHiddenInvitations",
    "maxAttendees",
    "timeZone",
    "alwaysIncludeEmail",
];

/// A listing restricted by any of these ends without a `nextSyncToken`: Google mints sync
/// tokens only for listings an incremental request can repeat.
const NO_SYNC_TOKEN: &[&str] =
    &["orderBy", "q", "iCalUID", "updatedMin", "timeMax", "privateExtendedProperty", "sharedExtendedProperty"];

/// Not allowed together with `syncToken` (B.4).
pub(super) const SYNC_FORBIDDEN: &[&str] = &[
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
];

#[derive(Serialize, Deserialize)]
pub(super) struct SyncCursor {
    c: String,
    /// Fingerprint of the listing shape the token was minted under (`singleEvents`,
    /// `showDeleted`, `timeMin`): an incremental request under another shape is refused.
    fp: String,
    /// `timeMin` of the full sync (epoch ms). An incremental request cannot repeat it (it is
    /// forbidden with `syncToken`), so the token carries it: expansions start there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    w: Option<i64>,
    ep: u32,
    s: u64,
    /// Issue time (sandbox ms), for the configurable token age.
    #[serde(default)]
    t: i64,
}

#[derive(Serialize, Deserialize)]
pub(super) struct PageCursor {
    pub(super) c: String,
    pub(super) fp: String,
    pub(super) ep: u32,
    /// Snapshot: the sync position the last page hands out.
    pub(super) e: u64,
    /// Log position already passed (log-ordered modes).
    pub(super) p: u64,
    /// `(start, id)` already passed (time-ordered mode).
    pub(super) k: Option<(i64, String)>,
    /// Expanded modes (`singleEvents=true`, instances): the last row key delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) v: Option<RowKey>,
    /// The round's window start (see [`SyncCursor::w`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) w: Option<i64>,
}

/// Sort key of an expanded row: (primary, secondary, id).
pub(super) type RowKey = (i64, i64, String);

pub(super) struct Filters {
    time_min: Option<i64>,
    time_max: Option<i64>,
    updated_min: Option<i64>,
    show_deleted: bool,
    q: Option<String>,
    private_props: Vec<(String, String)>,
    shared_props: Vec<(String, String)>,
    ical_uid: Option<String>,
    /// `eventTypes` (repeatable); empty = all.
    event_types: Vec<String>,
    single_events: bool,
    /// Plain deletions older than this are purged (tombstone retention).
    purge_before: i64,
}

impl Filters {
    /// `Some(include_as_stub)` when the item belongs on the page.
    fn admit(&self, item: &Item<Arc<Event>>) -> Option<bool> {
        self.admit_parts(&item.ev, item.start, item.end, item.updated_ms, item.deleted)
    }

    fn admit_parts(&self, ev: &Event, start: i64, end: i64, updated_ms: i64, deleted: bool) -> Option<bool> {
        if self.time_min.is_some_and(|t| end <= t) || self.time_max.is_some_and(|t| start >= t) {
            return None;
        }
        if self.updated_min.is_some_and(|t| updated_ms < t) {
            return None;
        }
        // With updatedMin, deletions since then are always included. Without singleEvents,
        // cancelled exceptions of live series always appear (they hide an occurrence).
        let cancelled_exception = ev.recurring_event_id.is_some() && !self.single_events;
        if deleted && !(self.show_deleted || self.updated_min.is_some() || cancelled_exception) {
            return None;
        }
        if deleted && ev.recurring_event_id.is_none() && updated_ms < self.purge_before {
            return None;
        }
        if let Some(uid) = &self.ical_uid
            && ev.ical_uid.as_ref() != Some(uid)
        {
            return None;
        }
        if !self.event_types.is_empty()
            && !self.event_types.iter().any(|t| Some(t.as_str()) == ev.event_type.as_deref().or(Some("default")))
        {
            return None;
        }
        let props = ev.extended_properties.as_ref();
        let has = |map: Option<&std::collections::BTreeMap<String, String>>, (k, v): &(String, String)| {
            map.and_then(|m| m.get(k)).is_some_and(|x| x == v)
        };
        if !self.private_props.iter().all(|p| has(props.and_then(|p| p.private.as_ref()), p))
            || !self.shared_props.iter().all(|p| has(props.and_then(|p| p.shared.as_ref()), p))
        {
            return None;
        }
        if let Some(text) = &self.q {
            let hay = [ev.summary.as_deref(), ev.description.as_deref(), ev.location.as_deref()]
                .into_iter()
                .flatten()
                .map(str::to_lowercase)
                .chain(ev.attendees.iter().flatten().flat_map(|a| {
                    [a.email.as_deref(), a.display_name.as_deref()].into_iter().flatten().map(str::to_lowercase)
                }))
                .any(|h| h.contains(text.as_str()));
            if !hay {
                return None;
            }
        }
        Some(deleted)
    }
}

pub(super) fn prop_filters(q: &Query, name: &str) -> ApiResult<Vec<(String, String)>> {
    q.all(name)
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| ApiError::invalid_param(name, &format!("Invalid {name} value.")))
        })
        .collect()
}

pub(super) async fn list_events(
    State(shared): State<Arc<Shared>>,
    auth: Result<GoogleAuth, ApiError>,
    Path(cal_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    respond(list_events_inner(&shared, auth, &cal_id, raw))
}

pub(super) fn list_events_inner(
    shared: &Shared,
    auth: ApiResult<GoogleAuth>,
    cal_id: &str,
    raw: Option<String>,
) -> ApiResult<Response> {
    let auth = auth?;
    auth.require(EVENTS_READ)?;
    let q = Query::parse(raw, LIST_PARAMS)?;
    let max = parse_max(&q, 250, 2500)?;
    let single_events = q.bool("singleEvents")?.unwrap_or(false);
    let show_deleted = q.bool("showDeleted")?;
    let order_by = q.get("orderBy");
    match order_by {
        None | Some("updated") => {}
        Some("startTime") if single_events => {}
        Some("startTime") => {
            return Err(ApiError::bad_request("The requested ordering is not available for the particular query.")
                .at("parameter", "orderBy"));
        }
        Some(_) => {
            return Err(ApiError::invalid_param("orderBy", "Invalid value for orderBy."));
        }
    }
    let time_min = q.time("timeMin")?;
    let time_max = q.time("timeMax")?;
    if let (Some(a), Some(b)) = (time_min, time_max)
        && a >= b
    {
        return Err(ApiError::new(400, "calendar", "timeRangeEmpty", "The specified time range is empty.")
            .at("parameter", "timeMax"));
    }
    let updated_min = q.time("updatedMin")?;
    let max_attendees = match q.get("maxAttendees") {
        None => None,
        Some(v) => Some(v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            ApiError::invalid_param("maxAttendees", &format!("Invalid value '{v}'. Values must be at least 1."))
        })?),
    };
    for t in q.all("eventTypes").flat_map(|v| v.split(',')) {
        if !matches!(t, "default" | "outOfOffice" | "focusTime" | "workingLocation" | "fromGmail" | "birthday") {
            return Err(ApiError::invalid_param("eventTypes", &format!("Invalid event type: {t}")));
        }
    }
    let req_tz = q.tz()?;
    let sync_token = q.get("syncToken");
    if sync_token.is_some() && (SYNC_FORBIDDEN.iter().any(|p| q.get(p).is_some()) || show_deleted == Some(false)) {
        return Err(ApiError::invalid_param("syncToken", "Sync token cannot be used with other request restrictions."));
    }
    let now = shared.clock.now_ms();
    if let Some(t) = updated_min
        && now - t.timestamp_millis() > shared.config.google_updated_min_max_age.as_millis() as i64
    {
        return Err(ApiError::for_status(410, Some("updatedMinTooLongAgo")));
    }
    let mut world = shared.world();
    // Drawn before anything else borrows the world; `normal` mode draws nothing.
    let page_max = paging::page_len(shared.paging(Provider::Google), &mut world.rng, max);
    let epoch = epoch_of(&world.google, &auth.email);
    let head = world.seq();
    let cal = calendar_mut(&mut world.google, &auth, cal_id)?;
    let shape = |window: Option<i64>| {
        let window = window.map(|w| w.to_string()).unwrap_or_default();
        let deleted = if show_deleted == Some(true) { "1" } else { "0" };
        cursor::fingerprint(&[&cal.id, if single_events { "1" } else { "0" }, deleted, &window])
    };
    let page_fp = q.fingerprint(&cal.id);
    let filters = Filters {
        time_min: time_min.map(|t| t.timestamp_millis()),
        time_max: time_max.map(|t| t.timestamp_millis()),
        updated_min: updated_min.map(|t| t.timestamp_millis()),
        show_deleted: show_deleted.unwrap_or(false) || sync_token.is_some(),
        q: q.get("q").map(str::to_lowercase),
        private_props: prop_filters(&q, "privateExtendedProperty")?,
        shared_props: prop_filters(&q, "sharedExtendedProperty")?,
        ical_uid: q.get("iCalUID").map(str::to_owned),
        event_types: q.all("eventTypes").flat_map(|v| v.split(',')).map(str::to_owned).collect(),
        single_events,
        purge_before: now - shared.config.google_tombstone_retention.as_millis() as i64,
    };

    // Where this page starts: (snapshot, log position, time key, row key, window start).
    let (snapshot, mut pos, mut key, vkey, window) = match (q.get("pageToken"), sync_token) {
        (Some(t), _) => {
            let c: PageCursor =
                cursor::decode(t).ok_or_else(|| ApiError::invalid_param("pageToken", "Invalid page token."))?;
            if c.c != cal.id || c.fp != page_fp {
                return Err(ApiError::invalid_param("pageToken", "Invalid page token."));
            }
            if sync_token.is_some() && c.ep != epoch {
                return Err(ApiError::full_sync_required());
            }
            (c.e, c.p, c.k, c.v, c.w)
        }
        (None, Some(t)) => {
            let c: SyncCursor =
                cursor::decode(t).ok_or_else(|| ApiError::invalid_param("syncToken", "Invalid sync token value."))?;
            if c.c != cal.id {
                return Err(ApiError::invalid_param("syncToken", "Invalid sync token value."));
            }
            let max_age = shared.config.google_sync_token_max_age.min(shared.config.google_tombstone_retention);
            if c.ep != epoch || c.s > head || now - c.t > max_age.as_millis() as i64 {
                return Err(ApiError::full_sync_required());
            }
            // Same refusal as window parameters next to a token: the request is not the
            // one the token was minted for.
            if c.fp != shape(c.w) {
                return Err(ApiError::invalid_param(
                    "syncToken",
                    "Sync token cannot be used with other request restrictions.",
                ));
            }
            (head, c.s, None, None, c.w)
        }
        (None, None) => (head, 0, None, None, filters.time_min),
    };
    let sync_fp = shape(window);
    // Expansions of an incremental round start at the full sync's window.
    let gen_min = filters.time_min.or(window);

    let tz = req_tz.unwrap_or(cal.tz);
    let time_mode = sync_token.is_none()
        && order_by != Some("updated")
        && (order_by == Some("startTime") || time_min.is_some() || time_max.is_some());
    // Only `Arc`s are collected under the lock; JSON is rendered after releasing it.
    let mut items: Vec<Pending> = Vec::new();
    let mut scanned = 0usize;
    let mut exhausted = true;
    let mut last_row = vkey.clone();
    if single_events {
        let until = series::expansion_end(filters.time_max, gen_min, now);
        // What clients may now hold instances of (see `Calendar::expanded`).
        let lo = gen_min.unwrap_or(i64::MIN);
        cal.expanded = Some(cal.expanded.map_or((lo, until), |(a, b)| (a.min(lo), b.max(until))));
        let cal = &*cal;
        let since = sync_token.map(|_| pos);
        let spec = Expansion {
            by_updated: order_by == Some("updated"),
            since,
            snapshot,
            after: vkey.as_ref(),
            limit: page_max + 1,
            gen_min,
            until,
        };
        let rows = expanded_rows(cal, &filters, &spec);
        let shown = rows.len().min(page_max);
        items = rows[..shown].iter().map(|(_, r)| r.pending()).collect();
        if let Some((k, _)) = rows[..shown].last() {
            last_row = Some(k.clone());
        }
        exhausted = rows.len() <= page_max;
    } else if time_mode {
        for (_, item) in cal.events.by_start_from(key.clone(), filters.time_min) {
            if filters.time_max.is_some_and(|t| item.start >= t) {
                break;
            }
            if items.len() == page_max || scanned == SCAN_BUDGET {
                exhausted = false;
                break;
            }
            scanned += 1;
            key = Some((item.start, item.ev.id.clone().unwrap_or_default()));
            if let Some(as_stub) = filters.admit(item) {
                items.push(if as_stub { Pending::Stub(item.ev.clone()) } else { Pending::Full(item.ev.clone()) });
            }
        }
    } else {
        for (_, item) in cal.events.log_range(pos, snapshot) {
            if items.len() == page_max || scanned == SCAN_BUDGET {
                exhausted = false;
                break;
            }
            scanned += 1;
            pos = item.seq;
            if let Some(as_stub) = filters.admit(item) {
                items.push(if as_stub { Pending::Stub(item.ev.clone()) } else { Pending::Full(item.ev.clone()) });
            }
        }
    }
    let mut body = envelope(cal, snapshot, Vec::new());
    let syncable = !NO_SYNC_TOKEN.iter().any(|p| q.get(p).is_some());
    if !exhausted {
        let c = PageCursor {
            c: cal.id.clone(),
            fp: page_fp,
            ep: epoch,
            e: snapshot,
            p: pos,
            k: key,
            v: last_row,
            w: window,
        };
        body["nextPageToken"] = json!(cursor::encode(&c));
    } else if syncable {
        let c = SyncCursor { c: cal.id.clone(), fp: sync_fp, w: window, ep: epoch, s: snapshot, t: now };
        body["nextSyncToken"] = json!(cursor::encode(&c));
    }
    drop(world);
    Ok(render_page(body, &items, tz, max_attendees))
}

/// A page item awaiting rendering: the event in full, or its cancelled stub.
enum Pending {
    Full(Arc<Event>),
    Stub(Arc<Event>),
}

/// Serializes the envelope with `items` written straight into the output buffer.
fn render_page(mut body: Value, items: &[Pending], tz: Tz, max_attendees: Option<usize>) -> Response {
    body.as_object_mut().expect("envelope").remove("items");
    let mut out = Vec::with_capacity(256 + items.len() * 700);
    out.extend_from_slice(b"{\"items\":[");
    for (i, p) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let written = match p {
            Pending::Full(ev) => {
                let mut ev = render(ev, tz);
                // `maxAttendees`: the list is cut and `attendeesOmitted` says so.
                if let (Some(n), Some(list)) = (max_attendees, ev.attendees.as_mut())
                    && list.len() > n
                {
                    list.truncate(n);
                    ev.attendees_omitted = Some(true);
                }
                serde_json::to_writer(&mut out, &ev)
            }
            Pending::Stub(ev) => serde_json::to_writer(&mut out, &stub(ev, tz)),
        };
        written.expect("event serializes");
    }
    out.extend_from_slice(b"],");
    let rest = serde_json::to_vec(&body).expect("envelope serializes");
    out.extend_from_slice(&rest[1..]);
    ([(axum::http::header::CONTENT_TYPE, "application/json")], out).into_response()
}

/// The `calendar#events` envelope around `items`.
pub(super) fn envelope(cal: &Calendar, snapshot: u64, items: Vec<Value>) -> Value {
    let mut body = json!({
        "kind": "calendar#events",
        "etag": format!("\"{snapshot}\""),
        "summary": cal.summary,
        "updated": model::format_stamp(cal.updated_ms),
        "timeZone": cal.time_zone,
        "accessRole": "owner",
        "defaultReminders": [{"method": "popup", "minutes": 10}],
    });
    if let Some(d) = &cal.description {
        body["description"] = json!(d);
    }
    body["items"] = Value::Array(items);
    body
}

// ---------------------------------------------------------------------------------------
// Expansion (singleEvents=true, events.instances)

/// One row of an expanded listing.
pub(super) enum Row<'a> {
    /// A stored single event or exception.
    Stored(&'a Item<Arc<Event>>),
    /// An occurrence synthesized from its master.
    Instance(&'a Item<Arc<Event>>, Rc<MasterInfo>, Occ),
    /// An occurrence of a deleted master, reported cancelled to incremental sync.
    Gone(&'a Item<Arc<Event>>, Rc<MasterInfo>, Occ),
}

impl Row<'_> {
    fn pending(&self) -> Pending {
        match self {
            Row::Stored(item) if item.deleted => Pending::Stub(item.ev.clone()),
            Row::Stored(item) => Pending::Full(item.ev.clone()),
            Row::Instance(m, info, occ) => Pending::Full(Arc::new(info.instance(&m.ev, *occ))),
            Row::Gone(m, info, occ) => Pending::Stub(Arc::new(info.instance(&m.ev, *occ))),
        }
    }

    pub(super) fn render(&self, tz: Tz) -> Value {
        match self.pending() {
            Pending::Full(ev) => to_value(&render(&ev, tz)),
            Pending::Stub(ev) => stub(&ev, tz),
        }
    }
}

/// What one page of an expanded listing needs.
struct Expansion<'k> {
    /// `orderBy=updated`: rows keyed by `updated`, then start.
    by_updated: bool,
    /// Incremental: rows keyed by change position, changes after this one.
    since: Option<u64>,
    snapshot: u64,
    /// The last row key already delivered.
    after: Option<&'k RowKey>,
    /// Rows wanted: the page size plus one, which tells whether more remain.
    limit: usize,
    /// Occurrences ending before this are not expanded (the window start).
    gen_min: Option<i64>,
    /// Occurrences starting at or after this are not expanded (`timeMax` or the horizon).
    until: i64,
}

/// The first `x.limit` rows after `x.after` of a `singleEvents=true` listing, sorted: by
/// start (or `updated`) for full listings, by change position for incremental ones. Series
/// masters never appear; their occurrences do, except those replaced by a stored
/// exception. Each series is expanded from the window (or the cursor), never from its
/// first instance, and only as far as the page needs.
fn expanded_rows<'a>(cal: &'a Calendar, f: &Filters, x: &Expansion<'_>) -> Vec<(RowKey, Row<'a>)> {
    let source: Box<dyn Iterator<Item = &'a Item<Arc<Event>>> + 'a> = match x.since {
        Some(p) => Box::new(cal.events.log_range(p, x.snapshot).map(|(_, i)| i)),
        None => {
            let tmax = f.time_max;
            Box::new(
                cal.events
                    .by_start_from(None, f.time_min)
                    .map(|(_, i)| i)
                    .take_while(move |i| tmax.is_none_or(|t| i.start < t)),
            )
        }
    };
    let start_ordered = x.since.is_none() && !x.by_updated;
    let primary = |item: &Item<Arc<Event>>, start: i64| match (x.since, x.by_updated) {
        (Some(_), _) => item.seq as i64,
        (None, true) => item.updated_ms,
        (None, false) => start,
    };
    let key = |item: &Item<Arc<Event>>, start: i64, id: &str| -> RowKey {
        if start_ordered { (start, 0, id.to_owned()) } else { (primary(item, start), start, id.to_owned()) }
    };
    let fresh = |k: &RowKey| x.after.is_none_or(|a| k > a);
    // A series' rows share its primary key unless ordered by start: the cursor then says
    // where in the series to resume, or that the series is behind it altogether.
    let resume = |item: &Item<Arc<Event>>| -> Option<Option<i64>> {
        match x.after {
            None => Some(None),
            Some(a) if start_ordered => Some(Some(a.0)),
            Some(a) => match primary(item, 0).cmp(&a.0) {
                std::cmp::Ordering::Less => None,
                std::cmp::Ordering::Equal => Some(Some(a.1)),
                std::cmp::Ordering::Greater => Some(None),
            },
        }
    };
    let mut rows: Vec<(RowKey, Row<'a>)> = Vec::new();
    // Start order only: once `limit` rows are kept, nothing starting after the last of them
    // can make the page.
    let mut cutoff: Option<i64> = None;
    let compact = |rows: &mut Vec<(RowKey, Row<'a>)>, cutoff: &mut Option<i64>| {
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows.truncate(x.limit);
        if start_ordered && rows.len() == x.limit {
            *cutoff = rows.last().map(|(k, _)| k.0);
        }
    };
    for item in source {
        if cutoff.is_some_and(|c| item.start > c) {
            break;
        }
        if rows.len() > 4 * x.limit + 1024 {
            compact(&mut rows, &mut cutoff);
        }
        if !series::is_master(&item.ev) {
            let k = key(item, item.start, item.ev.id.as_deref().unwrap_or_default());
            if fresh(&k) && f.admit(item).is_some() {
                rows.push((k, Row::Stored(item)));
            }
            continue;
        }
        // Deleted masters are not listed; incremental sync reports their instances.
        if item.deleted && x.since.is_none() {
            continue;
        }
        let Some(min_start) = resume(item) else { continue };
        let Ok(Some(info)) = series::master_info(&item.ev) else {
            continue;
        };
        let info = Rc::new(info);
        let mid = item.ev.id.as_deref().unwrap_or_default();
        let occs = info.occurrences_between(x.gen_min, min_start, x.until, cal.tz);
        let mut taken = 0;
        for occ in occs {
            if taken == x.limit {
                break;
            }
            let (s, e) = info.span(occ, cal.tz);
            let id = series::instance_id(mid, occ);
            let k = key(item, s, &id);
            if !fresh(&k) {
                continue;
            }
            if item.deleted {
                rows.push((k, Row::Gone(item, info.clone(), occ)));
                taken += 1;
                continue;
            }
            if series::stored_exception(cal, &id, mid).is_some() {
                continue;
            }
            if f.admit_parts(&item.ev, s, e, item.updated_ms, false).is_some() {
                rows.push((k, Row::Instance(item, info.clone(), occ)));
                taken += 1;
            }
        }
    }
    compact(&mut rows, &mut cutoff);
    rows
}
