//! The rows of a Graph listing: stored events, occurrences expanded from their masters
//! (starting at the window, however old the series, and never more than a page needs),
//! and removals. Incremental delta walks the change log: changed masters resend their
//! occurrences in the window, occurrences a client saw that the series no longer has come as
//! `@removed`, and a cancelled occurrence says nothing at all, as in Graph.

use std::collections::{BinaryHeap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use serde_json::{Value, json};

use super::extprops;
use super::graph::GEvent;
use super::listing::{Mode, ViewCursor};
use super::occid::OccKey;
use super::render::{Look, render, skeleton};
use super::series::{self, Forgotten, GSeries};
use super::{MsCalendar, MsWorld};
use crate::recurrence::Occ;
use crate::store::Item;

/// Sort key of a listing row: (start or change position, start, id).
pub(super) type RowKey = (i64, i64, String);

/// One row of a listing.
pub(super) enum Row<'a> {
    Stored(&'a Item<Arc<GEvent>>),
    Occurrence(&'a Item<Arc<GEvent>>, Rc<GSeries>, Occ),
    Removed(String),
}

impl Row<'_> {
    pub(super) fn pending(&self, key: &OccKey) -> Pending {
        match self {
            Row::Stored(i) => Pending::Event(i.ev.clone(), i.updated_ms),
            Row::Occurrence(m, g, occ) => Pending::Event(Arc::new(g.occurrence(key, &m.ev, *occ)), m.updated_ms),
            Row::Removed(id) => Pending::Removed(id.clone()),
        }
    }
}

/// A page item awaiting rendering outside the world lock.
pub(super) enum Pending {
    Event(Arc<GEvent>, i64),
    Removed(String),
}

impl Pending {
    /// `delta`: occurrences go out reduced to their identity and times.
    pub(super) fn render(&self, look: &Look, delta: bool) -> Value {
        match self {
            Pending::Event(ev, _) if delta && ev.link.as_ref().is_some_and(|l| !l.exception) => skeleton(ev, look),
            Pending::Event(ev, modified) => render(ev, *modified, look),
            // Deleted, or changed outside the window: both arrive as removals.
            Pending::Removed(id) => {
                json!({"@odata.type": "#microsoft.graph.event", "id": id, "@removed": {"reason": "deleted"}})
            }
        }
    }
}

/// A ragged delta page's repeat of an id sent earlier in the round, in its current state
/// (the later copy wins): the event, a removal, or nothing for a cancelled occurrence.
pub(super) fn repeat_row(ms: &MsWorld, cal: &str, id: &str, w: Option<(i64, i64)>) -> Option<Pending> {
    let (ev, (s, e), updated, deleted) = series::resolve(ms, cal, id)?;
    if deleted && ev.link.is_some() {
        return None;
    }
    if deleted || !w.is_none_or(|(ws, we)| s < we && e > ws) {
        return Some(Pending::Removed(id.to_owned()));
    }
    Some(Pending::Event(Arc::new(ev), updated))
}

/// Every row of the listing that can be on this page (unordered). `/events` lists singles
/// and series masters; calendarView, delta and instances list singles, occurrences and
/// exceptions, never masters. `Err` when an incremental round is older than a changed
/// master's kept history.
pub(super) fn collect_rows<'a>(
    cal: &'a MsCalendar,
    key: &OccKey,
    mode: Mode,
    cursor: &ViewCursor,
    master: Option<&'a str>,
    limit: usize,
) -> Result<Vec<(RowKey, Row<'a>)>, Forgotten> {
    let w = cursor.w;
    let after = cursor.v.as_ref();
    let overlaps = |s: i64, e: i64| w.is_none_or(|(ws, we)| s < we && e > ws);
    let mut rows = Vec::new();
    // Occurrences of a live master in the window past the page cursor, minus stored
    // exceptions: at most `limit`, reached from the window rather than the series start.
    let expand = |item: &'a Item<Arc<GEvent>>, rows: &mut Vec<(RowKey, Row<'a>)>, seq: Option<i64>| {
        let (Some(g), Some((ws, we))) = (series::master_series(&item.ev), w) else { return };
        let g = Rc::new(g);
        let floor = match (seq, after) {
            (None, Some(v)) => ws.max(v.0),
            _ => ws,
        };
        let mut kept = 0;
        for occ in g.overlapping(floor, we) {
            let s = g.span(occ).0;
            let id = key.encode(&item.ev.id, occ);
            let key = (seq.unwrap_or(s), s, id);
            if after.is_some_and(|v| &key <= v) || series::stored_exception(cal, &key.2, &item.ev.id).is_some() {
                continue;
            }
            rows.push((key, Row::Occurrence(item, g.clone(), occ)));
            kept += 1;
            if kept >= limit {
                break;
            }
        }
    };
    if let (Mode::Instances, Some(mid)) = (mode, master) {
        let Some(m) = cal.events.get(mid).filter(|m| !m.deleted) else { return Ok(rows) };
        expand(m, &mut rows, None);
        for (id, ex) in series::exceptions_of(cal, mid) {
            if !ex.deleted && overlaps(ex.start, ex.end) {
                rows.push(((ex.start, ex.start, id.clone()), Row::Stored(ex)));
            }
        }
        return Ok(rows);
    }
    if cursor.inc {
        incremental(cal, key, cursor, &mut rows, &expand)?;
        return Ok(rows);
    }
    // Start-ordered walk from the page cursor (the store widens the floor by the longest
    // span, so earlier series still contribute), stopping once `limit` rows are certain:
    // every later item starts after the largest kept key.
    let floor = match (w.map(|(ws, _)| ws), after.map(|v| v.0)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let mut smallest: BinaryHeap<RowKey> = BinaryHeap::new();
    for (id, item) in cal.events.by_start_from(None, floor) {
        if w.is_some_and(|(_, we)| item.start >= we) {
            break;
        }
        if smallest.len() >= limit && smallest.peek().is_some_and(|top| item.start > top.0) {
            break;
        }
        let before = rows.len();
        if !item.deleted {
            let is_master = item.ev.link.is_none() && item.ev.props.get("recurrence").is_some_and(|r| !r.is_null());
            let wanted = cursor.f.as_ref().is_none_or(|(p, v)| extprops::value(&item.ev.props, p) == Some(v));
            match mode {
                Mode::Events if item.ev.link.is_some() || !wanted => {}
                Mode::Events => rows.push(((item.start, 0, id.to_owned()), Row::Stored(item))),
                _ if is_master => expand(item, &mut rows, None),
                _ if overlaps(item.start, item.end) => rows.push(((item.start, 0, id.to_owned()), Row::Stored(item))),
                _ => {}
            }
        }
        for (k, _) in &rows[before..] {
            if after.is_none_or(|v| k > v) {
                smallest.push(k.clone());
                if smallest.len() > limit {
                    smallest.pop();
                }
            }
        }
    }
    Ok(rows)
}

/// Expands a master's occurrences into rows: `(master, rows, change position)`.
type Expand<'a, 'f> = dyn Fn(&'a Item<Arc<GEvent>>, &mut Vec<(RowKey, Row<'a>)>, Option<i64>) + 'f;

/// Incremental delta rows: what changed between the round's start and its snapshot.
fn incremental<'a>(
    cal: &'a MsCalendar,
    occ_key: &OccKey,
    cursor: &ViewCursor,
    rows: &mut Vec<(RowKey, Row<'a>)>,
    expand: &Expand<'a, '_>,
) -> Result<(), Forgotten> {
    let overlaps = |s: i64, e: i64| cursor.w.is_none_or(|(ws, we)| s < we && e > ws);
    for (id, item) in cal.events.log_range(cursor.p, cursor.e) {
        let seq = item.seq as i64;
        let key = (seq, item.start, id.clone());
        let ev = &item.ev;
        let was_series = ev.link.is_none() && (!ev.history.is_empty() || series::master_series(ev).is_some());
        if was_series {
            if !item.deleted {
                if series::master_series(ev).is_some() {
                    expand(item, rows, Some(seq));
                } else if overlaps(item.start, item.end) {
                    // It stopped recurring: now a single event.
                    rows.push((key, Row::Stored(item)));
                }
            }
            if let Some(w) = cursor.w {
                for (oid, s) in series::vanished(occ_key, ev, item.deleted, cursor.p, w)? {
                    rows.push(((seq, s, oid.clone()), Row::Removed(oid)));
                }
            }
        } else if item.deleted && ev.link.is_some() {
            // A cancelled occurrence: Graph's delta says nothing; it just stops being listed.
        } else if !item.deleted && overlaps(item.start, item.end) {
            rows.push((key, Row::Stored(item)));
        } else {
            rows.push((key, Row::Removed(id.clone())));
        }
    }
    // An orphaned exception and the vanished occurrence it was are one removal.
    let mut removed = HashSet::new();
    rows.retain(|(k, r)| !matches!(r, Row::Removed(_)) || removed.insert(k.2.clone()));
    Ok(())
}
