//! Google recurring events: a master's `recurrence[]` parsed into a [`Series`], instance ids
//! (`<masterId>_<YYYYMMDDTHHMMSSZ>` or `_<YYYYMMDD>`), synthesized instances, and the
//! bookkeeping that keeps exceptions consistent when the master changes.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use super::Calendar;
use super::error::{ApiError, ApiResult};
use super::model::{self, Event, EventDateTime};
use crate::recurrence::{Anchor, Occ, Series};
use crate::store::Item;

/// How far past the later of the sandbox clock and the window start an expansion without an
/// upper bound (`singleEvents=true` or `events.instances` without `timeMax`, incremental
/// sync, a master edit) lists the instances of an endless series: about ten years. Google's
/// own listings of endless series are long but do end (with a `nextSyncToken`); the exact
/// horizon is undocumented, so the sandbox picks one and pages through it.
pub(crate) const HORIZON_MS: i64 = 3653 * 86_400_000;

/// The end (exclusive, epoch ms) of an expansion: `time_max` when given, else
/// [`HORIZON_MS`] past the later of `now` and `time_min`.
pub(crate) fn expansion_end(time_max: Option<i64>, time_min: Option<i64>, now: i64) -> i64 {
    time_max.unwrap_or_else(|| time_min.unwrap_or(now).max(now).saturating_add(HORIZON_MS))
}

/// A parsed master: its series and the length of each instance.
pub(crate) struct MasterInfo {
    pub series: Series,
    dur_ms: i64,
    dur_days: i64,
    time_zone: Option<String>,
    anchor: Anchor,
}

pub(crate) fn is_master(ev: &Event) -> bool {
    ev.recurring_event_id.is_none() && ev.recurrence.as_ref().is_some_and(|r| !r.is_empty())
}

fn invalid_rule(detail: &str) -> ApiError {
    ApiError::invalid(&format!("Invalid recurrence rule. {detail}"))
}

/// `None` for a single event. Expects stored form: `dateTime` in UTC plus `timeZone`.
pub(crate) fn master_info(ev: &Event) -> ApiResult<Option<MasterInfo>> {
    if !is_master(ev) {
        return Ok(None);
    }
    let (Some(start), Some(end)) = (&ev.start, &ev.end) else {
        return Err(ApiError::required("Missing start time."));
    };
    let lines = ev.recurrence.as_deref().unwrap_or_default();
    if let (Some(s), Some(e)) = (&start.date, &end.date) {
        let s = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| ApiError::bad_request("Invalid start time."))?;
        let e = NaiveDate::parse_from_str(e, "%Y-%m-%d").map_err(|_| ApiError::bad_request("Invalid end time."))?;
        let anchor = Anchor::Date(s);
        let series = Series::parse(lines, anchor).map_err(|e| invalid_rule(&e))?;
        return Ok(Some(MasterInfo { series, dur_ms: 0, dur_days: (e - s).num_days(), time_zone: None, anchor }));
    }
    let instant = |edt: &EventDateTime| {
        edt.date_time
            .as_deref()
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| ApiError::bad_request("Invalid start time."))
    };
    let (s, e) = (instant(start)?, instant(end)?);
    // Recurring timed events require a zone (checked on write); it governs DST.
    let tz: Tz = start
        .time_zone
        .as_deref()
        .and_then(model::parse_tz)
        .ok_or_else(|| ApiError::bad_request("Missing time zone definition for start time."))?;
    let anchor = Anchor::Local(s.with_timezone(&tz).naive_local(), tz);
    let series = Series::parse(lines, anchor).map_err(|e| invalid_rule(&e))?;
    Ok(Some(MasterInfo {
        series,
        dur_ms: (e - s).num_milliseconds(),
        dur_days: 0,
        time_zone: start.time_zone.clone(),
        anchor,
    }))
}

impl MasterInfo {
    /// Start and exclusive end of one instance, in epoch ms.
    pub(crate) fn span(&self, occ: Occ, cal_tz: Tz) -> (i64, i64) {
        let s = occ.key(cal_tz);
        match occ {
            Occ::Date(d) => (s, Occ::Date(d + chrono::Days::new(self.dur_days as u64)).key(cal_tz)),
            Occ::At(_) => (s, s + self.dur_ms),
        }
    }

    /// The whole series' extent for the start index: first start to last end (far future
    /// for endless series), so window queries on masters match any overlapping instance.
    pub(crate) fn extent(&self, cal_tz: Tz) -> (i64, i64) {
        let first = self.series.occurrences().next();
        let start = first.map_or(0, |o| o.key(cal_tz));
        let end = match self.series.last() {
            Some(o) => self.span(o, cal_tz).1,
            None => i64::MAX / 4,
        };
        (start, end.max(start))
    }

    /// The longest an instance lasts in ms (an all-day instance can gain a DST hour).
    pub(crate) fn max_len_ms(&self) -> i64 {
        match self.anchor {
            Anchor::Date(_) => self.dur_days * 86_400_000 + 3_600_000,
            Anchor::Local(..) => self.dur_ms,
        }
    }

    /// Occurrences, ascending, that end at or after `min_end` (when given), start at or
    /// after `min_start` (when given) and start before `before`: the expansion starts near
    /// the window ([`Series::occurrences_from`]: re-anchored for rules without `COUNT`,
    /// `BYSETPOS` or `EXRULE`, else walked from the series start, at most one step a day),
    /// so a window years into a series is reached and an endless series is cut only by
    /// `before`. Callers apply their exact window rules.
    pub(crate) fn occurrences_between(
        &self,
        min_end: Option<i64>,
        min_start: Option<i64>,
        before: i64,
        cal_tz: Tz,
    ) -> impl Iterator<Item = Occ> + '_ {
        let from_end = min_end.map_or(i64::MIN, |m| m.saturating_sub(self.max_len_ms()));
        let from = from_end.max(min_start.unwrap_or(i64::MIN));
        self.series.occurrences_from(from, cal_tz).take_while(move |o| o.key(cal_tz) < before).filter(move |o| {
            let (s, e) = self.span(*o, cal_tz);
            min_end.is_none_or(|m| e >= m) && min_start.is_none_or(|m| s >= m)
        })
    }

    /// Whether `occ` is an occurrence of the series, however far into it.
    pub(crate) fn has(&self, occ: Occ, cal_tz: Tz) -> bool {
        self.series.occurrences_from(occ.key(cal_tz), cal_tz).next() == Some(occ)
    }

    fn edt(&self, occ: Occ, end: bool) -> EventDateTime {
        match occ {
            Occ::Date(d) => {
                let d = if end { d + chrono::Days::new(self.dur_days as u64) } else { d };
                EventDateTime { date: Some(d.format("%Y-%m-%d").to_string()), ..Default::default() }
            }
            Occ::At(t) => {
                let t = if end { t + chrono::Duration::milliseconds(self.dur_ms) } else { t };
                EventDateTime {
                    date: None,
                    date_time: Some(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                    time_zone: self.time_zone.clone(),
                }
            }
        }
    }

    /// The occurrence as an event: the master's fields, the instance's own id and times,
    /// `recurringEventId` + `originalStartTime`, no `recurrence`.
    pub(crate) fn instance(&self, master: &Event, occ: Occ) -> Event {
        let mid = master.id.clone().unwrap_or_default();
        let mut ev = master.clone();
        ev.id = Some(instance_id(&mid, occ));
        ev.etag = Some(instance_etag(master.etag.as_deref().unwrap_or_default(), ev.id.as_deref().unwrap_or_default()));
        ev.recurrence = None;
        ev.recurring_event_id = Some(mid);
        ev.original_start_time = Some(self.edt(occ, false));
        ev.start = Some(self.edt(occ, false));
        ev.end = Some(self.edt(occ, true));
        ev
    }
}

/// An unmodified instance's own etag: derived from the master's etag and the instance id,
/// so it differs between instances, is stable between reads and changes whenever the
/// master changes (Google gives every instance its own etag).
pub(crate) fn instance_etag(master_etag: &str, instance_id: &str) -> String {
    // FNV-1a, 64 bit: deterministic across runs (unlike the std hasher).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in master_etag.bytes().chain([0]).chain(instance_id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Numeric like Google's etags (16 digits).
    format!("\"{}\"", 1_000_000_000_000_000 + h % 9_000_000_000_000_000)
}

/// "This and following events" as Google's web UI does it: the recurrence lines of the
/// old series (its RRULE ends just before `from`) and of the new one starting at `from`
/// (the rest of the rule; `COUNT` reduced by the instances the old series keeps).
/// `RDATE`/`EXDATE` values go to the side of `from` they fall on.
pub(crate) fn split_lines(master: &Event, info: &MasterInfo, from: Occ) -> Result<(Vec<String>, Vec<String>), String> {
    let lines = master.recurrence.as_deref().unwrap_or_default();
    let new_anchor = match (info.anchor, from) {
        (Anchor::Local(_, tz), Occ::At(t)) => Anchor::Local(t.with_timezone(&tz).naive_local(), tz),
        (Anchor::Date(_), Occ::Date(d)) => Anchor::Date(d),
        _ => return Err("from does not match the series' kind (date vs dateTime)".into()),
    };
    let until = match from {
        Occ::At(t) => (t - chrono::Duration::seconds(1)).format("%Y%m%dT%H%M%SZ").to_string(),
        Occ::Date(d) => (d - chrono::Days::new(1)).format("%Y%m%d").to_string(),
    };
    let (mut old, mut new) = (Vec::new(), Vec::new());
    for line in lines {
        let upper = line.to_ascii_uppercase();
        if let Some(body) = upper.strip_prefix("RRULE:") {
            let parts: Vec<&str> = body.split(';').collect();
            let kept: Vec<&str> =
                parts.iter().copied().filter(|p| !p.starts_with("UNTIL=") && !p.starts_with("COUNT=")).collect();
            old.push(format!("RRULE:{};UNTIL={until}", kept.join(";")));
            let mut rest = kept.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
            if let Some(u) = parts.iter().find(|p| p.starts_with("UNTIL=")) {
                rest.push((*u).to_owned());
            }
            if let Some(n) = parts.iter().find_map(|p| p.strip_prefix("COUNT=")) {
                let n: usize = n.parse().map_err(|_| "bad COUNT".to_owned())?;
                // COUNT counts the rule's instances (EXDATEs included), DTSTART first.
                let rule_only = Series::parse(std::slice::from_ref(line), info.anchor)?;
                let before = rule_only.occurrences().take_while(|o| *o < from).take(n).count();
                if before >= n {
                    return Err("from is past the rule's last instance".into());
                }
                rest.push(format!("COUNT={}", n - before));
            }
            new.push(format!("RRULE:{}", rest.join(";")));
            continue;
        }
        if let Some(l) = crate::recurrence::retain_dates(line, info.anchor, |o| o < from) {
            old.push(l);
        }
        if let Some(l) = crate::recurrence::retain_dates(line, new_anchor, |o| o >= from) {
            new.push(l);
        }
    }
    Ok((old, new))
}

pub(crate) fn instance_id(master_id: &str, occ: Occ) -> String {
    format!("{master_id}_{}", occ.stamp())
}

/// `abc_20240105T150000Z` → (`abc`, occurrence).
pub(crate) fn split_id(id: &str) -> Option<(&str, Occ)> {
    let (m, stamp) = id.rsplit_once('_')?;
    Some((m, Occ::parse_stamp(stamp)?))
}

/// A stored exception of `master_id` under `id` (not a plain tombstone that reuses the id).
pub(crate) fn stored_exception<'a>(cal: &'a Calendar, id: &str, master_id: &str) -> Option<&'a Item<Arc<Event>>> {
    cal.events.get(id).filter(|i| i.ev.recurring_event_id.as_deref() == Some(master_id))
}

/// The live master of an instance id and the occurrence, when the series has it.
pub(crate) fn virtual_instance(cal: &Calendar, id: &str) -> Option<(Event, i64, i64)> {
    let (mid, occ) = split_id(id)?;
    let master = cal.events.get(mid).filter(|i| !i.deleted)?;
    let info = master_info(&master.ev).ok()??;
    if !info.has(occ, cal.tz) {
        return None;
    }
    let (s, e) = info.span(occ, cal.tz);
    Some((info.instance(&master.ev, occ), s, e))
}

/// The occurrence an exception replaces.
pub(crate) fn exception_occ(ev: &Event) -> Option<Occ> {
    ev.id.as_deref().and_then(split_id).map(|(_, o)| o)
}

/// Most tombstones one master write stores for lost occurrences: more than a daily series
/// has from 1970 to ten years ahead (rules recur at most daily). Past it, later lost
/// occurrences get no tombstone, and a warning is logged.
pub(crate) const MAX_TOMBSTONES: usize = 50_000;

/// What a master write leaves behind: exceptions that no longer match the new series
/// (or of a deleted master) become plain deletions, as Google drops them; occurrences the
/// old series had and the new one lacks get tombstones, so `singleEvents=true` sync
/// clients learn the instances are gone.
///
/// Tombstones are only written where a client can hold instances: within
/// [`Calendar::expanded`], the span of every `singleEvents=true` listing of the calendar so
/// far (nothing when there was none: later listings show the new series), and at most
/// [`MAX_TOMBSTONES`]. One left by an earlier write for an occurrence that has come back
/// since is written again (same id, new log position), so back-and-forth edits overwrite
/// rather than pile up, and clients that saw the instance return learn it went again.
pub(crate) fn orphans(
    cal: &Calendar,
    master_id: &str,
    old: Option<&MasterInfo>,
    new: Option<&MasterInfo>,
) -> Vec<(String, Event, i64, i64)> {
    let mut out = Vec::new();
    let prefix = format!("{master_id}_");
    for id in cal.events.ids().filter(|i| i.starts_with(&prefix)) {
        let item = cal.events.get(id).expect("listed");
        if item.ev.recurring_event_id.as_deref() != Some(master_id) {
            continue;
        }
        let still = match (exception_occ(&item.ev), new) {
            (Some(o), Some(n)) => n.has(o, cal.tz),
            _ => false,
        };
        if !still {
            let mut ev = (*item.ev).clone();
            ev.recurring_event_id = None;
            ev.original_start_time = None;
            ev.status = Some("cancelled".into());
            out.push((id.clone(), ev, item.start, item.end));
        }
    }
    if let (Some(o), Some(n), Some((listed_from, listed_until))) = (old, new, cal.expanded) {
        let tz = cal.tz;
        // Listings include instances that began before their window and overlap it.
        let from = listed_from.saturating_sub(o.max_len_ms());
        // Both series ascend: one merge walk finds the occurrences only the old one has.
        let mut kept = n.series.occurrences_from(from, tz).take_while(|x| x.key(tz) < listed_until).peekable();
        let mut stored = 0;
        for occ in o.series.occurrences_from(from, tz).take_while(|x| x.key(tz) < listed_until) {
            while kept.next_if(|k| *k < occ).is_some() {}
            if kept.peek() == Some(&occ) {
                continue;
            }
            let id = instance_id(master_id, occ);
            // Exceptions were settled above.
            if stored_exception(cal, &id, master_id).is_some() {
                continue;
            }
            if stored == MAX_TOMBSTONES {
                tracing::warn!(
                    master_id,
                    "a series edit lost more than {MAX_TOMBSTONES} instances: later ones get no tombstone"
                );
                break;
            }
            stored += 1;
            let ev = Event {
                kind: Some("calendar#event".into()),
                id: Some(id.clone()),
                status: Some("cancelled".into()),
                ..Default::default()
            };
            let (s, e) = o.span(occ, tz);
            out.push((id, ev, s, e));
        }
    }
    out
}

/// Fields that identify an instance or belong to its timing: a master edit never carries
/// them into exceptions.
const NOT_CARRIED: &[&str] = &[
    "kind",
    "etag",
    "id",
    "status",
    "htmlLink",
    "created",
    "updated",
    "creator",
    "organizer",
    "start",
    "end",
    "endTimeUnspecified",
    "recurrence",
    "recurringEventId",
    "originalStartTime",
    "iCalUID",
    "sequence",
    "eventType",
];

/// A master edit carried into its live exceptions, as Google does: every non-time field
/// the master changed takes the new value in each exception that still had the old master
/// value (did not override it); overridden fields keep the exception's value. Returns the
/// exceptions that changed, ready to store.
pub(crate) fn carried_into_exceptions(
    cal: &Calendar,
    master_id: &str,
    old: &Event,
    new: &Event,
) -> Vec<(String, Event, i64, i64)> {
    let (old_v, new_v) = (super::calendar::to_value(old), super::calendar::to_value(new));
    let (Some(old_m), Some(new_m)) = (old_v.as_object(), new_v.as_object()) else {
        return Vec::new();
    };
    let changed: Vec<&String> = old_m
        .keys()
        .chain(new_m.keys())
        .filter(|k| !NOT_CARRIED.contains(&k.as_str()) && old_m.get(*k) != new_m.get(*k))
        .collect();
    if changed.is_empty() {
        return Vec::new();
    }
    let prefix = format!("{master_id}_");
    let mut out = Vec::new();
    for id in cal.events.ids().filter(|i| i.starts_with(&prefix)) {
        let Some(item) = stored_exception(cal, id, master_id).filter(|i| !i.deleted) else {
            continue;
        };
        let mut ex = super::calendar::to_value(&item.ev);
        let Some(ex_m) = ex.as_object_mut() else { continue };
        let mut touched = false;
        for k in &changed {
            if ex_m.get(*k) != old_m.get(*k) {
                continue; // overridden by the exception
            }
            match new_m.get(*k) {
                Some(v) => ex_m.insert((*k).clone(), v.clone()),
                None => ex_m.remove(*k),
            };
            touched = true;
        }
        if touched && let Ok(ev) = serde_json::from_value::<Event>(ex) {
            out.push((id.clone(), ev, item.start, item.end));
        }
    }
    out
}
