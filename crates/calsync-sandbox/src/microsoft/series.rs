//! Graph recurring events: the `recurrence` resource (pattern + range) validated,
//! normalized to the shape Graph returns and converted to an RRULE; synthesized
//! occurrences, the series history delta needs, and exception bookkeeping for master edits.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{GraphError, GraphResult};
use super::graph::{GEvent, Link, PastSeries};
use super::occid::OccKey;
use super::{MsCalendar, MsWorld, tz};
use crate::google::resolve_local;
use crate::recurrence::{Anchor, Occ, Series};
use crate::store::Item;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Recurrence {
    pattern: Pattern,
    range: Range,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Pattern {
    #[serde(rename = "type")]
    kind: String,
    interval: u32,
    days_of_week: Option<Vec<String>>,
    day_of_month: Option<u32>,
    month: Option<u32>,
    index: Option<String>,
    first_day_of_week: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Range {
    #[serde(rename = "type")]
    kind: String,
    start_date: String,
    end_date: Option<String>,
    number_of_occurrences: Option<u32>,
    recurrence_time_zone: Option<String>,
}

/// A master's series and instance length.
pub(crate) struct GSeries {
    pub series: Series,
    dur_ms: i64,
    /// Zone of the master's `start` (occurrences are rendered in it before `Prefer`).
    start_zone: (String, Tz),
    end_zone: (String, Tz),
}

fn invalid(msg: &str) -> GraphError {
    GraphError::new(400, "ErrorInvalidRequest", &format!("Your request can't be completed. {msg}"))
}

const DAYS: &[(&str, &str)] = &[
    ("sunday", "SU"),
    ("monday", "MO"),
    ("tuesday", "TU"),
    ("wednesday", "WE"),
    ("thursday", "TH"),
    ("friday", "FR"),
    ("saturday", "SA"),
];

fn day_code(d: &str) -> GraphResult<&'static str> {
    DAYS.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(d))
        .map(|(_, c)| *c)
        .ok_or_else(|| GraphError::new(400, "RequestBodyRead", &format!("Requested value '{d}' was not found.")))
}

/// Graph's placeholder for an unset date in returned ranges; clients echo it back.
const NO_DATE: &str = "0001-01-01";

fn date(v: &str, what: &str) -> GraphResult<NaiveDate> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| invalid(&format!("The {what} is invalid.")))
}

/// Validates `recurrence` for a master starting at `start` (local wall time in its zone)
/// and returns the normalized resource plus the series.
pub(crate) fn parse(
    rec: &Value,
    start_local: NaiveDateTime,
    start_zone: &(String, Tz),
) -> GraphResult<(Value, Series)> {
    let r: Recurrence = serde_json::from_value(rec.clone())
        .map_err(|e| GraphError::new(400, "RequestBodyRead", &format!("Invalid recurrence: {e}")))?;
    let p = &r.pattern;
    if p.interval == 0 || p.interval > 99 {
        return Err(invalid("The recurrence pattern interval must be between 1 and 99."));
    }
    let days: Vec<&str> = p.days_of_week.iter().flatten().map(|d| day_code(d)).collect::<GraphResult<_>>()?;
    let wkst = day_code(p.first_day_of_week.as_deref().unwrap_or("sunday"))?;
    let index = match p.index.as_deref().unwrap_or("first") {
        "first" => 1,
        "second" => 2,
        "third" => 3,
        "fourth" => 4,
        "last" => -1,
        other => {
            return Err(GraphError::new(400, "RequestBodyRead", &format!("Requested value '{other}' was not found.")));
        }
    };
    let dom = p.day_of_month.filter(|d| *d != 0);
    let month = p.month.filter(|m| *m != 0);
    let need_days =
        || if days.is_empty() { Err(invalid("daysOfWeek is required for this pattern.")) } else { Ok(days.join(",")) };
    let need_dom = || match dom {
        Some(d @ 1..=31) => Ok(d),
        _ => Err(invalid("dayOfMonth must be between 1 and 31 for this pattern.")),
    };
    let need_month = || match month {
        Some(m @ 1..=12) => Ok(m),
        _ => Err(invalid("month must be between 1 and 12 for this pattern.")),
    };
    let mut rule = match p.kind.as_str() {
        "daily" => format!("FREQ=DAILY;INTERVAL={}", p.interval),
        "weekly" => format!("FREQ=WEEKLY;INTERVAL={};BYDAY={};WKST={wkst}", p.interval, need_days()?),
        "absoluteMonthly" => format!("FREQ=MONTHLY;INTERVAL={};{}", p.interval, month_day(need_dom()?)),
        "relativeMonthly" => {
            format!("FREQ=MONTHLY;INTERVAL={};BYDAY={};BYSETPOS={index}", p.interval, need_days()?)
        }
        "absoluteYearly" => {
            format!("FREQ=YEARLY;INTERVAL={};BYMONTH={};{}", p.interval, need_month()?, month_day(need_dom()?))
        }
        "relativeYearly" => format!(
            "FREQ=YEARLY;INTERVAL={};BYMONTH={};BYDAY={};BYSETPOS={index}",
            p.interval,
            need_month()?,
            need_days()?
        ),
        other => {
            return Err(GraphError::new(400, "RequestBodyRead", &format!("Requested value '{other}' was not found.")));
        }
    };
    let zone = match &r.range.recurrence_time_zone {
        Some(name) if !name.is_empty() => {
            (name.clone(), tz::resolve(name).ok_or_else(|| super::graph::tz_unsupported(name))?)
        }
        _ => start_zone.clone(),
    };
    let start_date = date(&r.range.start_date, "recurrence range start date")?;
    // Graph: "Must be the same value as the start property of the recurring event."
    if start_date != start_local.date() {
        return Err(invalid("The recurrence range start date must be the date of the event start."));
    }
    let end_date = r.range.end_date.as_deref().filter(|d| *d != NO_DATE);
    match r.range.kind.as_str() {
        "endDate" => {
            let end = date(end_date.ok_or_else(|| invalid("endDate is required for an endDate range."))?, "end date")?;
            if end < start_date {
                return Err(invalid("The recurrence range end date is before its start date."));
            }
            let until = resolve_local(end.and_hms_opt(23, 59, 59).expect("valid"), zone.1);
            rule.push_str(&format!(";UNTIL={}", until.format("%Y%m%dT%H%M%SZ")));
        }
        "numbered" => match r.range.number_of_occurrences {
            Some(n @ 1..) => rule.push_str(&format!(";COUNT={n}")),
            _ => return Err(invalid("numberOfOccurrences must be positive for a numbered range.")),
        },
        "noEnd" => {}
        other => {
            return Err(GraphError::new(400, "RequestBodyRead", &format!("Requested value '{other}' was not found.")));
        }
    }
    let anchor = Anchor::Local(start_date.and_time(start_local.time()), zone.1);
    let series = Series::parse_with(&[format!("RRULE:{rule}")], anchor, false).map_err(|e| invalid(&e))?;
    let normalized = json!({
        "pattern": {
            "type": p.kind, "interval": p.interval, "month": month.unwrap_or(0),
            "dayOfMonth": dom.unwrap_or(0),
            "daysOfWeek": p.days_of_week.clone().unwrap_or_default(),
            "firstDayOfWeek": p.first_day_of_week.clone().unwrap_or_else(|| "sunday".into()),
            "index": p.index.clone().unwrap_or_else(|| "first".into()),
        },
        "range": {
            "type": r.range.kind, "startDate": r.range.start_date,
            "endDate": end_date.unwrap_or(NO_DATE),
            "recurrenceTimeZone": zone.0,
            "numberOfOccurrences": r.range.number_of_occurrences.unwrap_or(0),
        },
    });
    Ok((normalized, series))
}

/// Outlook puts day 29–31 on the month's last day when the month is shorter ("Some
/// months have fewer than 31 days…"); RFC 5545's BYMONTHDAY would skip those months.
fn month_day(d: u32) -> String {
    if d <= 28 {
        return format!("BYMONTHDAY={d}");
    }
    let days: Vec<String> = (28..=d).map(|x| x.to_string()).collect();
    format!("BYMONTHDAY={};BYSETPOS=-1", days.join(","))
}

fn zone_of(props: &serde_json::Map<String, Value>, key: &str) -> Option<(String, Tz)> {
    let name = props.get(key)?.get("timeZone").and_then(Value::as_str).unwrap_or("UTC").to_owned();
    let tz = tz::resolve(&name)?;
    Some((name, tz))
}

fn instant(props: &serde_json::Map<String, Value>, key: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let v = props.get(key)?.get("dateTime")?.as_str()?;
    let naive = NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    Some(resolve_local(naive, tz))
}

/// The series of a stored master (already validated on write).
pub(crate) fn master_series(ev: &GEvent) -> Option<GSeries> {
    if ev.link.is_some() {
        return None;
    }
    series_of(&ev.props)
}

/// The series described by a master's `start`, `end` and `recurrence`.
fn series_of(props: &serde_json::Map<String, Value>) -> Option<GSeries> {
    let rec = props.get("recurrence").filter(|r| !r.is_null())?;
    let start_zone = zone_of(props, "start")?;
    let end_zone = zone_of(props, "end")?;
    let s = instant(props, "start", start_zone.1)?;
    let e = instant(props, "end", end_zone.1)?;
    let (_, series) = parse(rec, s.with_timezone(&start_zone.1).naive_local(), &start_zone).ok()?;
    Some(GSeries { series, dur_ms: (e - s).num_milliseconds(), start_zone, end_zone })
}

/// Earlier series versions a master keeps for delta. A delta round begun before the oldest
/// kept one ended gets 410 `SyncStateNotFound`, as a too-old Graph delta token does; a
/// client rarely falls this many series edits of one master behind.
pub(crate) const HISTORY_KEPT: usize = 32;

/// Records in `new`'s history that `old`'s series ended at change position `until`,
/// dropping the oldest versions beyond [`HISTORY_KEPT`].
pub(crate) fn record_version(new: &mut GEvent, old: &GEvent, until: u64) {
    let mut history = (*new.history).clone();
    history.push((until, PastSeries::of(old)));
    let excess = history.len().saturating_sub(HISTORY_KEPT);
    if excess > 0 {
        new.history_floor = new.history_floor.max(history[excess - 1].0);
        history.drain(..excess);
    }
    new.history = Arc::new(history);
}

impl GSeries {
    pub(crate) fn span(&self, occ: Occ) -> (i64, i64) {
        let s = occ.key(Tz::UTC);
        (s, s + self.dur_ms)
    }

    /// Occurrences overlapping `[from, to)` (epoch ms), ascending, however long ago the
    /// series began.
    pub(crate) fn overlapping(&self, from: i64, to: i64) -> impl Iterator<Item = Occ> + '_ {
        self.series
            .occurrences_from(from.saturating_sub(self.dur_ms.max(1)), Tz::UTC)
            .take_while(move |o| self.span(*o).0 < to)
            .filter(move |o| self.span(*o).1 > from)
    }

    /// First start to last end (far future for endless series).
    pub(crate) fn extent(&self) -> (i64, i64) {
        let start = self.series.occurrences().next().map_or(0, |o| o.key(Tz::UTC));
        let end = self.series.last().map_or(i64::MAX / 4, |o| self.span(o).1);
        (start, end.max(start))
    }

    /// Whether `occ` is one of the series' occurrences, however far into the series: the
    /// same reach as listings ([`crate::recurrence::MAX_SKIP`]), so every id a listing hands
    /// out resolves.
    pub(crate) fn contains(&self, occ: Occ) -> bool {
        self.series.occurrences_from(occ.key(Tz::UTC), Tz::UTC).next() == Some(occ)
    }

    /// The occurrence as an event of type `occurrence`.
    pub(crate) fn occurrence(&self, key: &OccKey, master: &GEvent, occ: Occ) -> GEvent {
        let (s, e) = self.span(occ);
        let local = |ms: i64, zone: &(String, Tz)| {
            let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
            json!({"dateTime": t.with_timezone(&zone.1).format("%Y-%m-%dT%H:%M:%S.0000000").to_string(), "timeZone": zone.0})
        };
        let mut ev = master.clone();
        ev.props.remove("recurrence");
        ev.props.insert("start".into(), local(s, &self.start_zone));
        ev.props.insert("end".into(), local(e, &self.end_zone));
        ev.id = key.encode(&master.id, occ);
        // iCalUId differs per occurrence on v1.0.
        ev.ical_uid = format!("{}{}", master.ical_uid, occ.stamp().replace(['T', 'Z'], ""));
        ev.link = Some(Link { master: master.id.clone(), original_ms: s, exception: false, occ });
        ev.history = Arc::default();
        ev.history_floor = 0;
        ev
    }
}

/// Stored exceptions (live or cancelled) of `master`.
pub(crate) fn exceptions_of<'a>(
    cal: &'a MsCalendar,
    master: &'a str,
) -> impl Iterator<Item = (&'a String, &'a Item<Arc<GEvent>>)> + 'a {
    cal.events.ids().filter_map(move |id| {
        let item = stored_exception(cal, id, master)?;
        Some((id, item))
    })
}

/// A stored exception (or cancelled occurrence) of `master` under `id`.
pub(crate) fn stored_exception<'a>(cal: &'a MsCalendar, id: &str, master: &str) -> Option<&'a Item<Arc<GEvent>>> {
    cal.events.get(id).filter(|i| i.ev.link.as_ref().is_some_and(|l| l.master == master))
}

/// An event of calendar `cal` by id: a stored exception or event, else an occurrence
/// synthesized from its live master. Returns the event, its span, its modification time and
/// whether it is deleted.
pub(crate) fn resolve(ms: &MsWorld, cal: &str, id: &str) -> Option<(GEvent, (i64, i64), i64, bool)> {
    let cal = ms.calendars.get(cal)?;
    let stored = cal.events.get(id);
    // A tombstone under an occurrence id (an exception orphaned by a series edit) gives way
    // to the occurrence when a later edit brought it back.
    if let Some(i) = stored
        && (i.ev.link.is_some() || !i.deleted)
    {
        return Some(((*i.ev).clone(), (i.start, i.end), i.updated_ms, i.deleted));
    }
    if let (Some(key), Some((mid, occ))) = (ms.occurrence_key.as_ref(), ms.decode_occurrence(id))
        && let Some(m) = cal.events.get(&mid).filter(|m| !m.deleted)
        && let Some(gs) = master_series(&m.ev)
        && gs.contains(occ)
    {
        return Some((gs.occurrence(key, &m.ev, occ), gs.span(occ), m.updated_ms, false));
    }
    stored.map(|i| ((*i.ev).clone(), (i.start, i.end), i.updated_ms, i.deleted))
}

/// Tombstones a master write leaves for its exceptions that no longer match the new series
/// (all of them when the master is deleted or stops recurring), so delta reports them
/// `@removed`. Occurrences that merely vanish are found by delta from the master's history.
pub(crate) fn orphans(cal: &MsCalendar, master: &str, new: Option<&GSeries>) -> Vec<(GEvent, (i64, i64))> {
    let mut out = Vec::new();
    for (_, item) in exceptions_of(cal, master) {
        let occ = item.ev.link.as_ref().expect("exception").occ;
        if item.deleted || new.is_some_and(|n| n.series.contains(occ)) {
            continue;
        }
        let mut ev = (*item.ev).clone();
        ev.link = None;
        out.push((ev, (item.start, item.end)));
    }
    out
}

/// Occurrences of `master` a delta client synced up to change position `p` saw in `window`
/// and that the master's current series lacks (all of them when it no longer recurs or is
/// deleted): `(id, start)`.
/// `Err(Forgotten)` when the version the client saw is older than the history kept.
pub(crate) fn vanished(
    key: &OccKey,
    master: &GEvent,
    deleted: bool,
    p: u64,
    window: (i64, i64),
) -> Result<Vec<(String, i64)>, Forgotten> {
    if master.born_seq > p {
        return Ok(Vec::new());
    }
    if p < master.history_floor {
        return Err(Forgotten);
    }
    let seen = match master.history.iter().find(|(until, _)| *until > p) {
        Some((_, v)) => &v.props,
        None if deleted => &master.props,
        None => return Ok(Vec::new()),
    };
    let Some(old) = series_of(seen) else { return Ok(Vec::new()) };
    let now: HashSet<Occ> = match master_series(master).filter(|_| !deleted) {
        Some(n) => n.overlapping(window.0, window.1).collect(),
        None => HashSet::new(),
    };
    Ok(old
        .overlapping(window.0, window.1)
        .filter(|o| !now.contains(o))
        .map(|o| (key.encode(&master.id, o), old.span(o).0))
        .collect())
}

/// A delta round older than the series history a master keeps.
#[derive(Debug)]
pub(crate) struct Forgotten;

/// Properties that place an occurrence in time or identify it: master edits never carry
/// them into exceptions.
const NOT_CARRIED: &[&str] =
    &["start", "end", "recurrence", "isAllDay", "originalStartTimeZone", "originalEndTimeZone", "transactionId"];

/// A series edit carried into its live exceptions: each property the master changed takes
/// the new value in exceptions that still had the old master value (did not override it),
/// and an organizer's cancellation of the series cancels every exception of the copy.
/// Returns the changed exceptions (change key still to renew) with their spans.
pub(crate) fn carried_into_exceptions(cal: &MsCalendar, old: &GEvent, new: &GEvent) -> Vec<(GEvent, (i64, i64))> {
    let changed: Vec<&String> = old
        .props
        .keys()
        .chain(new.props.keys())
        .filter(|k| !NOT_CARRIED.contains(&k.as_str()) && old.props.get(*k) != new.props.get(*k))
        .collect();
    let cancelled = |e: &GEvent| e.invite.as_ref().is_some_and(|i| i.cancelled);
    if changed.is_empty() && cancelled(old) == cancelled(new) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (_, item) in exceptions_of(cal, &new.id).filter(|(_, i)| !i.deleted) {
        let mut ex = (*item.ev).clone();
        let mut touched = false;
        for k in &changed {
            if ex.props.get(*k) != old.props.get(*k) {
                continue; // overridden by the exception
            }
            match new.props.get(*k) {
                Some(v) => ex.props.insert((*k).clone(), v.clone()),
                None => ex.props.remove(*k),
            };
            touched = true;
        }
        // An organizer's cancellation of the series cancels its exceptions too.
        if cancelled(new) && !cancelled(&ex) && ex.invite.is_some() {
            super::meetings::cancel_copy(&mut ex);
            touched = true;
        }
        if touched {
            out.push((ex, (item.start, item.end)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dates(rec: Value, start: &str, n: usize) -> Vec<String> {
        let zone = ("UTC".to_owned(), Tz::UTC);
        let local = NaiveDateTime::parse_from_str(start, "%Y-%m-%dT%H:%M:%S").unwrap();
        let (_, s) = parse(&rec, local, &zone).unwrap();
        s.occurrences()
            .take(n)
            .map(|o| match o {
                Occ::At(t) => t.format("%Y-%m-%d").to_string(),
                Occ::Date(d) => d.to_string(),
            })
            .collect()
    }

    fn master(minute: u32) -> GEvent {
        let props = json!({"subject": "Weekly", "body": {"contentType": "html", "content": "x".repeat(2_000)},
            "start": {"dateTime": format!("2024-03-04T10:{minute:02}:00"), "timeZone": "UTC"},
            "end": {"dateTime": "2024-03-04T11:00:00", "timeZone": "UTC"},
            "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                "range": {"type": "noEnd", "startDate": "2024-03-04"}}});
        GEvent {
            props: props.as_object().unwrap().clone(),
            id: "AAMkAGI2master".into(),
            change_key: "ck".into(),
            created_ms: 0,
            ical_uid: "uid".into(),
            all_day: false,
            link: None,
            invite: None,
            born_seq: 1,
            history: Arc::default(),
            history_floor: 0,
        }
    }

    #[test]
    fn series_history_keeps_only_times_and_a_bounded_number_of_versions() {
        let mut ev = master(0);
        let mut sizes = Vec::new();
        for i in 1..=40u32 {
            let old = ev.clone();
            let mut new = master(i);
            new.history = old.history.clone();
            new.history_floor = old.history_floor;
            record_version(&mut new, &old, u64::from(i) + 1);
            ev = new;
            sizes.push(serde_json::to_vec(&ev).unwrap().len());
        }
        // No body, no nested history: each version costs the same few hundred bytes.
        let per_version = sizes[9] - sizes[8];
        assert!(per_version < 600, "{per_version} bytes per version");
        // Once full, only the digits of the change positions vary.
        assert!(sizes[39].abs_diff(sizes[33]) < 16, "no growth once {HISTORY_KEPT} versions are kept: {sizes:?}");
        assert_eq!(ev.history.len(), HISTORY_KEPT);
        // Versions ended at positions 2..=41; the first 8 were dropped.
        assert_eq!(ev.history_floor, 9);
        assert_eq!(ev.history[0].0, 10);
        assert!(ev.history.iter().all(|(_, v)| !v.props.contains_key("body")));
        let key = OccKey::generate(&mut rand::SeedableRng::seed_from_u64(1));
        let w = (1_709_251_200_000, 1_714_521_600_000); // March and April 2024
        assert!(vanished(&key, &ev, false, 8, w).is_err(), "that version was dropped");
        // A round at position 9 saw the version that ended at 10: still answerable.
        assert_eq!(vanished(&key, &ev, false, 9, w).unwrap().len(), 9, "every occurrence moved");
    }

    #[test]
    fn history_written_as_whole_events_still_loads() {
        let old = json!({"props": master(5).props, "id": "x", "change_key": "c", "created_ms": 0, "ical_uid": "u",
            "all_day": false, "link": null, "invite": null, "born_seq": 1, "history": []});
        let mut stored = serde_json::to_value(master(6)).unwrap();
        stored["history"] = json!([[4, old]]);
        stored.as_object_mut().unwrap().remove("history_floor");
        let ev: GEvent = serde_json::from_value(stored).unwrap();
        assert_eq!(ev.history_floor, 0);
        assert_eq!(ev.history[0].1.props["start"]["dateTime"], "2024-03-04T10:05:00");
    }

    #[test]
    fn day_31_falls_on_the_last_day_of_shorter_months() {
        let rec = json!({"pattern": {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31},
            "range": {"type": "numbered", "startDate": "2024-01-31", "numberOfOccurrences": 4}});
        assert_eq!(dates(rec, "2024-01-31T09:00:00", 4), ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30"]);
    }

    #[test]
    fn relative_monthly_last_friday_and_weekly_with_days() {
        let rec = json!({"pattern": {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"},
            "range": {"type": "endDate", "startDate": "2024-01-26", "endDate": "2024-03-31"}});
        assert_eq!(dates(rec, "2024-01-26T09:00:00", 10), ["2024-01-26", "2024-02-23", "2024-03-29"]);
        // The first occurrence is the first matching date on or after startDate.
        let rec = json!({"pattern": {"type": "weekly", "interval": 2, "daysOfWeek": ["monday", "thursday"]},
            "range": {"type": "numbered", "startDate": "2024-01-04", "numberOfOccurrences": 4}});
        assert_eq!(dates(rec, "2024-01-04T09:00:00", 4), ["2024-01-04", "2024-01-15", "2024-01-18", "2024-01-29"]);
    }
}
