//! Control API operations on Google calendars: bulk seeding and the web UI's series split.

use serde_json::Value;

use super::calendar::*;
use super::events::html_link;
use super::model::{self, Event};
use super::series;
use super::write::{Times, commit, settle_orphans};
use crate::ids;
use crate::state::Shared;

/// Control API bulk load: `count` half-hour events a minute apart from 2020-01-01 in the
/// primary calendar, stored exactly as inserts would store them. Returns false for an
/// unknown account.
pub(crate) fn seed_events(shared: &Shared, email: &str, count: usize, first_start_ms: i64) -> bool {
    let now = shared.clock.now_ms();
    let mut world = shared.world();
    let Some(cal_key) = world.google.accounts.get(email).map(|a| a.calendars[0].clone()) else {
        return false;
    };
    let base = first_start_ms;
    let stamp = |ms: i64| {
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let owner = model::Person { email: Some(email.to_owned()), is_self: Some(true), ..Default::default() };
    for i in 0..count {
        let id = ids::base32hex_id(&mut world.rng);
        let start = base + i as i64 * 60_000;
        let ev = Event {
            kind: Some("calendar#event".into()),
            id: Some(id.clone()),
            status: Some("confirmed".into()),
            html_link: Some(html_link(&id, &cal_key)),
            created: Some(model::format_stamp(now)),
            summary: Some(format!("Seeded event {i}")),
            creator: Some(owner.clone()),
            organizer: Some(owner.clone()),
            start: Some(model::EventDateTime { date_time: Some(stamp(start)), ..Default::default() }),
            end: Some(model::EventDateTime { date_time: Some(stamp(start + 1_800_000)), ..Default::default() }),
            ical_uid: Some(format!("{id}@google.com")),
            sequence: Some(0),
            reminders: Some(model::Reminders { use_default: Some(true), overrides: None }),
            event_type: Some("default".into()),
            ..Default::default()
        };
        commit(&mut world, &cal_key, &id, ev, &Times { start, end: start + 1_800_000 }, false, now);
    }
    true
}

/// Control API: a user splits a series in Google's web UI ("this and following events").
/// The master's rule ends just before `from` (exceptions at or after it go away as
/// deletions) and a new series `<id>_R<YYYYMMDDTHHMMSS>` (UTC of `from`; `_R<YYYYMMDD>`
/// for all-day series) with the same properties starts at `from`. `from` is the original
/// start of one of the series' instances (RFC 3339; `YYYY-MM-DD` for all-day series), not
/// the first. Returns both masters, or (status, message).
pub(crate) fn split_series(
    shared: &Shared,
    email: &str,
    cal_id: &str,
    event_id: &str,
    from: &str,
) -> Result<Value, (u16, String)> {
    let now = shared.clock.now_ms();
    let mut world = shared.world();
    let email = email.to_ascii_lowercase();
    let account = world.google.accounts.get(&email).ok_or((404, "no such account".to_owned()))?;
    let cal_key = if cal_id == "primary" {
        account.calendars[0].clone()
    } else if account.calendars.iter().any(|c| c == cal_id) {
        cal_id.to_owned()
    } else {
        return Err((404, "no such calendar".into()));
    };
    let cal = world.google.calendars.get(&cal_key).filter(|c| !c.deleted).ok_or((404, "no such calendar".into()))?;
    let cal_tz = cal.tz;
    let item = cal.events.get(event_id).filter(|i| !i.deleted).ok_or((404, "no such event".into()))?;
    let master = (*item.ev).clone();
    let info = series::master_info(&master)
        .ok()
        .flatten()
        .ok_or((400, "the event is not a recurring event (series master)".into()))?;
    let all_day = master.start.as_ref().is_some_and(|s| s.date.is_some());
    let occ = if all_day {
        chrono::NaiveDate::parse_from_str(from, "%Y-%m-%d").map(crate::recurrence::Occ::Date).ok()
    } else {
        chrono::DateTime::parse_from_rfc3339(from)
            .ok()
            .map(|t| crate::recurrence::Occ::At(t.with_timezone(&chrono::Utc)))
    }
    .ok_or((400, format!("from must be {}", if all_day { "a YYYY-MM-DD date" } else { "an RFC 3339 time" })))?;
    if !info.has(occ, cal_tz) {
        return Err((400, "from is not the original start of an instance of the series".into()));
    }
    if info.series.occurrences().next() == Some(occ) {
        return Err((400, "from is the series' first instance: edit the whole series instead".into()));
    }
    let (old_lines, new_lines) = series::split_lines(&master, &info, occ).map_err(|e| (400, e))?;
    let new_id = match occ {
        crate::recurrence::Occ::At(t) => format!("{event_id}_R{}", t.format("%Y%m%dT%H%M%S")),
        crate::recurrence::Occ::Date(d) => format!("{event_id}_R{}", d.format("%Y%m%d")),
    };
    if cal.events.get(&new_id).is_some() {
        return Err((409, format!("{new_id} already exists")));
    }

    // The new series: the master's properties, first instance at `from`.
    let mut new_ev = info.instance(&master, occ);
    new_ev.id = Some(new_id.clone());
    new_ev.recurring_event_id = None;
    new_ev.original_start_time = None;
    new_ev.recurrence = Some(new_lines);
    new_ev.ical_uid = Some(format!("{new_id}@google.com"));
    new_ev.html_link = Some(html_link(&new_id, &cal_key));
    new_ev.created = Some(model::format_stamp(now));
    let new_info = series::master_info(&new_ev)
        .map_err(|e| (400, e.message))
        .and_then(|i| i.ok_or((400, "the remaining rule has no instances".to_owned())))?;
    if new_info.series.occurrences().next().is_none() {
        return Err((400, "the remaining rule has no instances".into()));
    }

    // The old series ends before `from`.
    let mut old_ev = master.clone();
    old_ev.recurrence = Some(old_lines);
    old_ev.sequence = Some(old_ev.sequence.unwrap_or(0) + 1);
    let old_new_info = series::master_info(&old_ev)
        .map_err(|e| (400, e.message))
        .and_then(|i| i.ok_or((400, "the truncated rule has no instances".to_owned())))?;
    let (s, e) = old_new_info.extent(cal_tz);
    let old_stored = commit(&mut world, &cal_key, event_id, old_ev, &Times { start: s, end: e }, false, now);
    settle_orphans(&mut world, &cal_key, event_id, Some(&info), Some(&old_new_info), now);
    let (s, e) = new_info.extent(cal_tz);
    let new_stored = commit(&mut world, &cal_key, &new_id, new_ev, &Times { start: s, end: e }, false, now);
    Ok(serde_json::json!({"old": render(&old_stored, cal_tz), "new": render(&new_stored, cal_tz)}))
}
