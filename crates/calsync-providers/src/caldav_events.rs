//! CalDAV behind the engine's [`CalendarProvider`] trait.
//!
//! One calendar object resource holds a whole series (RFC 4791 §4.1): its master, the overrides
//! of single occurrences (`RECURRENCE-ID`) and the cancelled ones (`EXDATE`). The engine sees it
//! the way Google lists a series: the master under the resource's path, each override and each
//! cancelled occurrence under `{path}#{occurrence}` (the cancelled ones as
//! [`Change::OccurrenceCancelled`]). Writing one of them rewrites the resource, keeping what
//! calsync does not model (alarms, other properties) and every other component as it was.
//!
//! An event's version ([`RemoteEvent::etag`]) is a digest of its content as calsync reads it,
//! not the resource's ETag: a server that reformats what calsync wrote changes nothing calsync
//! compares, so rewrites cause no update ping-pong, and a write to one occurrence does not make
//! the engine's precondition on the master fail. The resource's ETag guards every PUT and
//! DELETE (`If-Match`); losing that race re-reads the resource and checks the event's own
//! version again.
//!
//! The connection's "access token" is its [`DavCredentials`]. Listing uses `sync-collection`
//! (cursor `sync:{token}`); servers without it are listed by ctag and ETags (cursor
//! `ctag:{ctag}`): an unchanged ctag is no change, a changed one a full listing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use calsync_domain::appointment::{AppointmentData, AppointmentStatus, When, local_midnight};
use calsync_domain::recurrence::{OriginalStart, Series};
use chrono::{Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use reqwest::Url;

use crate::caldav::{self, DavAuth, DavCredentials, Precondition};
use crate::calendar::{CalendarProvider, Change, ChangePage, ListFrom, PageNext, ProviderFuture, RemoteEvent};
use crate::ics::{self, IcsEvent, ParsedEvent};
use crate::{AccountIdentity, ProviderError, RemoteCalendar};

/// Attempts at a read-modify-write of one resource when others keep changing it.
const WRITE_ATTEMPTS: usize = 4;

/// The properties calsync writes itself; everything else in a component it rewrites is kept.
const OWN: &[&str] = &[
    "UID",
    "DTSTAMP",
    "LAST-MODIFIED",
    "SEQUENCE",
    "RECURRENCE-ID",
    "DTSTART",
    "DTEND",
    "DURATION",
    "RRULE",
    "EXDATE",
    "SUMMARY",
    "LOCATION",
    "DESCRIPTION",
    "CLASS",
    "STATUS",
    "TRANSP",
    "X-CALSYNC-ID",
];

/// Written by calsync only when it changes who is invited; otherwise kept as the calendar app
/// wrote them (with their roles, RSVP and scheduling state).
const PEOPLE: &[&str] = &["ORGANIZER", "ATTENDEE"];

/// The version of a cancelled occurrence (it has no content of its own).
const CANCELLED: &str = "cancelled";

pub struct CalDavCalendar {
    pub http: reqwest::Client,
    /// Each calendar's zone, for floating times: read once per process.
    zones: Mutex<HashMap<String, Option<Tz>>>,
}

impl std::fmt::Debug for CalDavCalendar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CalDavCalendar").finish_non_exhaustive()
    }
}

impl CalDavCalendar {
    pub fn new(http: reqwest::Client) -> Self {
        Self { http, zones: Mutex::new(HashMap::new()) }
    }

    async fn zone(&self, calendar: &Url, auth: &DavAuth<'_>) -> Result<Option<Tz>, ProviderError> {
        let key = zone_key(auth, calendar);
        if let Some(z) = self.zones.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(*z);
        }
        let z = caldav::calendar_zone(&self.http, calendar, auth).await?;
        self.zones.lock().unwrap_or_else(|p| p.into_inner()).insert(key, z);
        Ok(z)
    }

    /// Reads the resource at `path`; `None` when there is none.
    async fn read(&self, cal: &Url, auth: &DavAuth<'_>, path: &str) -> Result<Option<Stored>, ProviderError> {
        let href = cal.join(path).map_err(bad_id)?;
        let floating = self.zone(cal, auth).await?;
        Ok(caldav::get(&self.http, &href, auth).await?.map(|(text, etag)| Stored::new(href, etag, &text, floating)))
    }

    /// Read, edit, `PUT` with `If-Match`, again when someone else wrote in between. `edit` gets
    /// the resource as it is and answers its new text. Answers the resource as now stored.
    async fn modify(
        &self,
        cal: &Url,
        auth: &DavAuth<'_>,
        path: &str,
        edit: impl Fn(&Stored) -> Result<String, ProviderError>,
    ) -> Result<Stored, ProviderError> {
        let floating = self.zone(cal, auth).await?;
        for _ in 0..WRITE_ATTEMPTS {
            let Some(stored) = self.read(cal, auth, path).await? else { return Err(ProviderError::NotFound) };
            stored.writable()?;
            let text = edit(&stored)?;
            match caldav::put(&self.http, &stored.href, auth, &text, Precondition::Match(&stored.etag)).await {
                Ok(Some(etag)) => return Ok(Stored::new(stored.href, etag, &text, floating)),
                // Changed while stored: what the server keeps is what counts.
                Ok(None) => return self.read(cal, auth, path).await?.ok_or(ProviderError::NotFound),
                Err(ProviderError::PreconditionFailed) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ProviderError::retryable("the event kept changing on the server while calsync wrote it"))
    }
}

/// A resource as read: its lines (unfolded) and its `VEVENT`s, each read on its own.
struct Stored {
    href: Url,
    etag: String,
    lines: Vec<String>,
    events: Vec<Component>,
}

struct Component {
    /// Lines `start..=end` of the resource.
    start: usize,
    end: usize,
    read: Result<ParsedEvent, String>,
}

impl Stored {
    fn new(href: Url, etag: String, text: &str, floating: Option<Tz>) -> Self {
        let lines = unfold(text);
        let zones: String =
            blocks(&lines, "VTIMEZONE").iter().flat_map(|&(s, e)| &lines[s..=e]).map(|l| format!("{l}\r\n")).collect();
        let events = blocks(&lines, "VEVENT")
            .into_iter()
            .map(|(start, end)| {
                let mut one = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//calsync//EN\r\n");
                one.push_str(&zones);
                for l in &lines[start..=end] {
                    one.push_str(l);
                    one.push_str("\r\n");
                }
                one.push_str("END:VCALENDAR\r\n");
                let read = match ics::parse_events(&one, floating) {
                    Ok(mut v) if v.len() == 1 => v.remove(0).map_err(|(_, why)| why),
                    Ok(_) => Err("not one event".into()),
                    Err(e) => Err(e.to_string()),
                };
                Component { start, end, read }
            })
            .collect();
        Self { href, etag, lines, events }
    }

    fn path(&self) -> String {
        self.href.path().to_owned()
    }

    /// A resource with a component calsync cannot read is not rewritten or deleted: that part
    /// would be lost, or changed blind.
    fn writable(&self) -> Result<(), ProviderError> {
        match self.events.iter().find_map(|c| c.read.as_ref().err()) {
            Some(why) => Err(ProviderError::Permanent {
                status: None,
                reason: format!("the event has a part calsync cannot read ({why}); calsync leaves it as it is"),
            }),
            None => Ok(()),
        }
    }

    fn master(&self) -> Option<(usize, &ParsedEvent)> {
        self.events
            .iter()
            .enumerate()
            .find_map(|(i, c)| c.read.as_ref().ok().filter(|p| p.recurrence_id.is_none()).map(|p| (i, p)))
    }

    fn find(&self, occurrence: Option<OriginalStart>) -> Option<(usize, &ParsedEvent)> {
        match occurrence {
            None => self.master(),
            Some(o) => self
                .events
                .iter()
                .enumerate()
                .find_map(|(i, c)| c.read.as_ref().ok().filter(|p| p.recurrence_id == Some(o)).map(|p| (i, p))),
        }
    }

    /// The master's cancelled occurrences (`EXDATE`s).
    fn cancelled(&self) -> Vec<OriginalStart> {
        self.master().map(|(_, m)| exdates(m)).unwrap_or_default()
    }

    /// Everything the engine should learn from this resource.
    fn changes(&self) -> Vec<Change> {
        let path = self.path();
        let cancelled = self.cancelled();
        let mut out = Vec::new();
        for c in &self.events {
            match &c.read {
                Ok(p) => match p.recurrence_id {
                    None => out.push(Change::Upsert(Box::new(remote(&path, p, None)))),
                    Some(o) if !cancelled.contains(&o) => {
                        out.push(Change::Upsert(Box::new(remote(&path, p, self.master().map(|(_, m)| m)))))
                    }
                    Some(_) => {}
                },
                Err(why) => {
                    if !out.iter().any(|c| matches!(c, Change::Upsert(e) if e.id == path)) {
                        out.push(Change::Upsert(Box::new(unreadable(&path, why))));
                    }
                }
            }
        }
        // The occurrences as the rule makes them, within any sync window, are listed as gone as
        // exceptions: one whose override went there (back to the rule) is read again by the
        // engine (`removals_may_be_moves`) and takes the rule's content; ids calsync never
        // linked are ignored.
        if let Some((_, m)) = self.master()
            && let Ok(series) = content(m)
            && !series.recurrence.is_empty()
            && let Ok(rule) = Series::parse(&series.recurrence, &series.when, series.time_zone)
        {
            let now = Utc::now();
            let overridden: Vec<OriginalStart> =
                self.events.iter().filter_map(|c| c.read.as_ref().ok().and_then(|p| p.recurrence_id)).collect();
            let plain = rule
                .between(now - Duration::days(400), now + Duration::days(400), series.time_zone)
                .into_iter()
                .filter(|o| !overridden.contains(o) && !cancelled.contains(o))
                .take(2000);
            out.extend(plain.map(|o| Change::Deleted { id: occurrence_id(&path, o) }));
        }
        for o in cancelled {
            out.push(Change::OccurrenceCancelled {
                id: occurrence_id(&path, o),
                etag: CANCELLED.into(),
                master: path.clone(),
                original_start: o,
            });
        }
        out
    }

    /// The resource with component `replace` (an index into `events`, or a new one when `None`)
    /// written as `with` (or removed when `None`), keeping what calsync does not write of it.
    fn edited(&self, edits: &[Edit]) -> Result<String, ProviderError> {
        let mut replaced: BTreeMap<usize, Option<String>> = BTreeMap::new();
        let mut added = Vec::new();
        for e in edits {
            match e.at {
                Some(i) => {
                    let c = &self.events[i];
                    let new = e.with.as_ref().map(|w| keep_foreign(&self.lines[c.start..=c.end], w, e.people));
                    replaced.insert(c.start, new);
                }
                None => added.extend(e.with.clone()),
            }
        }
        let mut out = String::new();
        let mut i = 0;
        while i < self.lines.len() {
            if let Some(new) = replaced.get(&i) {
                out.push_str(new.as_deref().unwrap_or(""));
                i = self.events.iter().find(|c| c.start == i).map_or(i, |c| c.end) + 1;
                continue;
            }
            let l = &self.lines[i];
            if l.eq_ignore_ascii_case("END:VCALENDAR") {
                for a in &added {
                    out.push_str(a);
                }
            }
            out.push_str(l);
            out.push_str("\r\n");
            i += 1;
        }
        ics::finish(&out).map_err(|e| ProviderError::Permanent { status: None, reason: e.to_string() })
    }
}

/// One change to a resource: component `at` (an index into [`Stored::events`], or a new one when
/// `None`) written as `with` (removed when `None`). `people`: calsync's organizer and attendees
/// replace the component's; otherwise the component keeps its own.
struct Edit {
    at: Option<usize>,
    with: Option<String>,
    people: bool,
}

impl Edit {
    fn put(at: Option<usize>, with: String, people: bool) -> Self {
        Self { at, with: Some(with), people }
    }

    fn remove(at: usize) -> Self {
        Self { at: Some(at), with: None, people: false }
    }
}

/// The key of a calendar's zone in the cache: whose account, and which calendar.
fn zone_key(auth: &DavAuth<'_>, calendar: &Url) -> String {
    format!("{}\n{}", auth.username, calendar.as_str())
}

/// Whether calsync's attendees differ from the component's own (addresses and names).
fn people_changed(old: &ParsedEvent, data: &AppointmentData) -> bool {
    let Ok(before) = content(old) else { return true };
    let key = |a: &[calsync_domain::appointment::Attendee]| {
        let mut v: Vec<(String, String)> = a.iter().map(|a| (a.email.to_ascii_lowercase(), a.name.clone())).collect();
        v.sort();
        v
    };
    key(&before.attendees) != key(&data.attendees)
}

/// Lines with continuation lines joined (RFC 5545 §3.1).
fn unfold(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let l = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = l.strip_prefix([' ', '\t'])
            && let Some(last) = out.last_mut()
        {
            last.push_str(rest);
        } else if !l.is_empty() {
            out.push(l.to_owned());
        }
    }
    out
}

/// The `(first, last)` lines of every `kind` component directly inside the `VCALENDAR`.
fn blocks(lines: &[String], kind: &str) -> Vec<(usize, usize)> {
    let (begin, end) = (format!("BEGIN:{kind}"), format!("END:{kind}"));
    let mut depth = 0usize;
    let mut start = None;
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let upper = l.trim_end().to_ascii_uppercase();
        if upper.starts_with("BEGIN:") {
            depth += 1;
            if depth == 2 && upper == begin {
                start = Some(i);
            }
        } else if upper.starts_with("END:") {
            if depth == 2
                && upper == end
                && let Some(s) = start.take()
            {
                out.push((s, i));
            }
            depth = depth.saturating_sub(1);
        }
    }
    out
}

/// A property line's name.
fn name_of(line: &str) -> String {
    line.split([';', ':']).next().unwrap_or("").trim().to_ascii_uppercase()
}

/// `new` (a `VEVENT` calsync wrote) with what the `old` one held that calsync does not write:
/// other properties and nested components (alarms).
fn keep_foreign(old: &[String], new: &str, people: bool) -> String {
    let mut kept = String::new();
    let mut depth = 0usize;
    for l in old.iter().skip(1).take(old.len().saturating_sub(2)) {
        let n = name_of(l);
        if n == "BEGIN" {
            depth += 1;
        }
        let ours = OWN.contains(&n.as_str()) || (people && PEOPLE.contains(&n.as_str()));
        if depth > 0 || !ours {
            kept.push_str(l);
            kept.push_str("\r\n");
        }
        if n == "END" {
            depth = depth.saturating_sub(1);
        }
    }
    // Without a change of people, the component's own lines stand and calsync's are dropped.
    let new: String = if people {
        new.to_owned()
    } else {
        new.split_inclusive('\n').filter(|l| !PEOPLE.contains(&name_of(l).as_str())).collect()
    };
    match new.rfind("END:VEVENT") {
        Some(at) => format!("{}{kept}{}", &new[..at], &new[at..]),
        None => new.to_owned(),
    }
}

/// `{path}#{occurrence}`: an occurrence's id, as its start (`20261207T080000Z` or `20261207`).
fn occurrence_id(path: &str, o: OriginalStart) -> String {
    match o {
        OriginalStart::At(t) => format!("{path}#{}", t.format("%Y%m%dT%H%M%SZ")),
        OriginalStart::Date(d) => format!("{path}#{}", d.format("%Y%m%d")),
    }
}

/// The resource path and the occurrence of an event id.
fn split_id(id: &str) -> Result<(&str, Option<OriginalStart>), ProviderError> {
    let Some((path, key)) = id.split_once('#') else { return Ok((id, None)) };
    let o = if key.len() == 8 {
        NaiveDate::parse_from_str(key, "%Y%m%d").ok().map(OriginalStart::Date)
    } else {
        chrono::NaiveDateTime::parse_from_str(key.trim_end_matches('Z'), "%Y%m%dT%H%M%S")
            .ok()
            .map(|t| OriginalStart::At(t.and_utc()))
    };
    o.map(|o| (path, Some(o))).ok_or_else(|| bad_id(url::ParseError::InvalidDomainCharacter))
}

fn bad_id(_: url::ParseError) -> ProviderError {
    ProviderError::Permanent { status: None, reason: "not a CalDAV event id calsync made".into() }
}

/// A master's `EXDATE`s, from the lines the reader gives them as.
fn exdates(p: &ParsedEvent) -> Vec<OriginalStart> {
    exdate_lines(p.input.recurrence.as_deref().unwrap_or_default(), series_zone(p))
}

/// The occurrences `EXDATE` lines name (`;VALUE=DATE`, UTC, `;TZID=`, floating in `tz`, lists).
fn exdate_lines(lines: &[String], tz: Tz) -> Vec<OriginalStart> {
    let mut out = Vec::new();
    for l in lines.iter().filter(|l| l.to_ascii_uppercase().starts_with("EXDATE")) {
        let Some((head, values)) = l.split_once(':') else { continue };
        let zone =
            head.split(';').find_map(|p| p.strip_prefix("TZID=")).and_then(|z| z.parse::<Tz>().ok()).unwrap_or(tz);
        for v in values.split(',').map(str::trim) {
            let o = if v.len() == 8 {
                NaiveDate::parse_from_str(v, "%Y%m%d").ok().map(OriginalStart::Date)
            } else {
                chrono::NaiveDateTime::parse_from_str(v.trim_end_matches('Z'), "%Y%m%dT%H%M%S").ok().and_then(|t| {
                    if v.ends_with('Z') {
                        Some(OriginalStart::At(t.and_utc()))
                    } else {
                        ics::local_instant(zone, t).ok().map(OriginalStart::At)
                    }
                })
            };
            out.extend(o.filter(|o| !out.contains(o)));
        }
    }
    out
}

/// An event's content: the master's rule without its `EXDATE`s (those are the cancelled
/// occurrences, listed on their own).
fn content(p: &ParsedEvent) -> Result<AppointmentData, String> {
    let mut input = p.input.clone();
    if let Some(r) = input.recurrence.as_mut() {
        r.retain(|l| !l.starts_with("EXDATE"));
    }
    AppointmentData::create(input).map_err(|e| e.to_string())
}

/// The version the engine's preconditions compare: the content as calsync reads it.
fn version(data: Option<&AppointmentData>, stamp: Option<&str>) -> String {
    match data {
        Some(d) => format!("{}.{}", &calsync_domain::sync::content_hash(d)[..24], stamp.unwrap_or("")),
        None => "unreadable".into(),
    }
}

fn remote(path: &str, p: &ParsedEvent, master: Option<&ParsedEvent>) -> RemoteEvent {
    let (data, note) = match content(p) {
        Ok(d) => (Some(d), None),
        Err(why) => (None, Some(format!("An event calsync cannot read was left alone ({}: {why}).", p.label))),
    };
    let recurrence = data.as_ref().map(|d| d.recurrence.clone()).unwrap_or_default();
    let (id, series_master_id) = match p.recurrence_id {
        Some(o) => (occurrence_id(path, o), Some(path.to_owned())),
        None => (path.to_owned(), None),
    };
    // An override carries its master's stamp only when calsync wrote it for the master.
    let calsync_id = match (p.recurrence_id, master) {
        // Calendar apps copy the master's properties into an occurrence they edit.
        (Some(_), Some(m)) if m.calsync_id == p.calsync_id => None,
        _ => p.calsync_id.clone(),
    };
    RemoteEvent {
        id,
        etag: version(data.as_ref(), calsync_id.as_deref()),
        updated: p.last_modified,
        calsync_id,
        data,
        recurrence: if p.recurrence_id.is_some() { Vec::new() } else { recurrence },
        series_master_id,
        original_start: p.recurrence_id,
        note,
    }
}

fn unreadable(path: &str, why: &str) -> RemoteEvent {
    RemoteEvent {
        id: path.to_owned(),
        etag: version(None, None),
        updated: None,
        calsync_id: None,
        data: None,
        recurrence: Vec::new(),
        series_master_id: None,
        original_start: None,
        note: Some(format!("An event calsync cannot read was left alone ({why}).")),
    }
}

/// An event as calsync writes it into a resource.
fn written(uid: &str, stamp: &str, data: &AppointmentData, sequence: i64) -> IcsEvent {
    IcsEvent {
        uid: uid.to_owned(),
        calsync_id: stamp.to_owned(),
        data: AppointmentData { series: None, ..data.clone() },
        sequence,
        last_modified: Utc::now(),
        recurrence_id: None,
        cancelled: Vec::new(),
    }
}

fn ics_error(e: ics::IcsError) -> ProviderError {
    ProviderError::Permanent { status: None, reason: e.to_string() }
}

/// Whether the series `master` has an occurrence starting at `o` by its rule.
fn occurs(master: &AppointmentData, o: OriginalStart) -> bool {
    let Ok(series) = Series::parse(&master.recurrence, &master.when, master.time_zone) else { return false };
    let at = match o {
        OriginalStart::At(t) => t,
        OriginalStart::Date(d) => local_midnight(d, master.time_zone),
    };
    series.between(at - Duration::days(1), at + Duration::days(2), master.time_zone).contains(&o)
}

/// Occurrence `o` of the series `m` as its rule makes it, when the rule makes it.
fn rule_occurrence(path: &str, m: &ParsedEvent, o: OriginalStart) -> Option<RemoteEvent> {
    let series = content(m).ok()?;
    if !occurs(&series, o) {
        return None;
    }
    let when = match (series.when, o) {
        (When::Timed { start, end }, OriginalStart::At(t)) => When::Timed { start: t, end: t + (end - start) },
        (When::AllDay { start, end }, OriginalStart::Date(d)) => When::AllDay { start: d, end: d + (end - start) },
        _ => return None,
    };
    let data = AppointmentData { when, recurrence: Vec::new(), series: None, ..series };
    Some(RemoteEvent {
        id: occurrence_id(path, o),
        etag: version(Some(&data), None),
        updated: m.last_modified,
        calsync_id: None,
        data: Some(data),
        recurrence: Vec::new(),
        series_master_id: Some(path.to_owned()),
        original_start: Some(o),
        note: None,
    })
}

/// An update of occurrence `o` that has no override (its override gone there, or cancelled
/// there): written as a new override (an `EXDATE` dropped), if it is still at `etag`.
fn plain_occurrence_written(
    stored: &Stored,
    o: OriginalStart,
    etag: &str,
    data: &AppointmentData,
) -> Result<String, ProviderError> {
    let (mi, m) = stored.master().ok_or(ProviderError::NotFound)?;
    let cancelled = exdates(m);
    let current = if cancelled.contains(&o) {
        CANCELLED.to_owned()
    } else {
        rule_occurrence(&stored.path(), m, o).ok_or(ProviderError::NotFound)?.etag
    };
    if !etag.is_empty() && current != etag {
        return Err(ProviderError::PreconditionFailed);
    }
    if data.status == AppointmentStatus::Cancelled {
        return cancel_in(stored, o);
    }
    let mut e = written(&m.uid, "", data, m.sequence + 1);
    e.data.recurrence.clear();
    e.recurrence_id = Some((o, series_zone(m)));
    let mut edits = vec![Edit::put(None, ics::vevent_text(&e, Utc::now()), true)];
    if cancelled.contains(&o) {
        let back = master_text(m, cancelled.into_iter().filter(|c| *c != o).collect())?;
        edits.push(Edit::put(Some(mi), back, false));
    }
    stored.edited(&edits)
}

/// An occurrence calsync cancelled (an `EXDATE` now), as the engine keeps it.
fn cancelled_occurrence(path: &str, o: OriginalStart, stamp: Option<&str>, data: &AppointmentData) -> RemoteEvent {
    RemoteEvent {
        id: occurrence_id(path, o),
        etag: CANCELLED.into(),
        updated: Some(Utc::now()),
        calsync_id: stamp.map(str::to_owned),
        data: Some(AppointmentData { series: None, recurrence: Vec::new(), ..data.clone() }),
        recurrence: Vec::new(),
        series_master_id: Some(path.to_owned()),
        original_start: Some(o),
        note: None,
    }
}

/// The master rewritten with `cancelled` as its `EXDATE`s.
fn master_text(m: &ParsedEvent, cancelled: Vec<OriginalStart>) -> Result<String, ProviderError> {
    let data = content(m).map_err(|why| ProviderError::Permanent { status: None, reason: why })?;
    let mut e = written(&m.uid, m.calsync_id.as_deref().unwrap_or(""), &data, m.sequence + 1);
    e.cancelled = cancelled;
    Ok(ics::vevent_text(&e, Utc::now()))
}

/// The series' zone and form for `RECURRENCE-ID`.
fn series_zone(m: &ParsedEvent) -> Tz {
    m.input.time_zone.as_deref().and_then(|z| z.parse().ok()).unwrap_or(Tz::UTC)
}

/// Cancels occurrence `o` of the resource's series: its override goes, an `EXDATE` comes.
fn cancel_in(stored: &Stored, o: OriginalStart) -> Result<String, ProviderError> {
    let (mi, m) = stored.master().ok_or(ProviderError::NotFound)?;
    let mut cancelled = exdates(m);
    let mut edits = Vec::new();
    if !cancelled.contains(&o) {
        cancelled.push(o);
    }
    edits.push(Edit::put(Some(mi), master_text(m, cancelled)?, false));
    if let Some((oi, _)) = stored.find(Some(o)) {
        edits.push(Edit::remove(oi));
    }
    stored.edited(&edits)
}

fn cal_url(calendar: &str) -> Result<Url, ProviderError> {
    Url::parse(calendar)
        .map_err(|_| ProviderError::Permanent { status: None, reason: "the calendar's address is not a URL".into() })
}

/// A resource name from an idempotency key: the characters every server takes.
fn resource_name(key: &str) -> String {
    let safe: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    format!("{safe}.ics")
}

impl CalDavCalendar {
    /// Every resource's changes, read in chunks by `calendar-multiget`; hrefs gone meanwhile
    /// (a 404 in the multiget) are left out and answered in the second list.
    async fn fetch(
        &self,
        cal: &Url,
        auth: &DavAuth<'_>,
        hrefs: &[Url],
    ) -> Result<(Vec<Change>, Vec<Url>), ProviderError> {
        let floating = self.zone(cal, auth).await?;
        let got = caldav::multiget(&self.http, cal, auth, hrefs).await?;
        let mut changes = Vec::new();
        let mut found = std::collections::HashSet::new();
        for (href, etag, text) in got {
            found.insert(href.path().to_owned());
            changes.extend(Stored::new(href, etag, &text, floating).changes());
        }
        let missing = hrefs.iter().filter(|h| !found.contains(h.path())).cloned().collect();
        Ok((changes, missing))
    }

    /// `sync-collection` until the server says it is done: changed and removed members.
    async fn sync_all(
        &self,
        cal: &Url,
        auth: &DavAuth<'_>,
        token: Option<&str>,
    ) -> Result<(Vec<Url>, Vec<Url>, String), ProviderError> {
        let mut changed: BTreeMap<String, Url> = BTreeMap::new();
        let mut removed: BTreeMap<String, Url> = BTreeMap::new();
        let mut token = token.map(str::to_owned);
        loop {
            let reply = caldav::sync_collection(&self.http, cal, auth, token.as_deref()).await?;
            for (href, _) in reply.changed {
                removed.remove(href.path());
                changed.insert(href.path().to_owned(), href);
            }
            for href in reply.removed {
                changed.remove(href.path());
                removed.insert(href.path().to_owned(), href);
            }
            let more = reply.truncated && token.as_deref() != Some(reply.token.as_str());
            token = Some(reply.token);
            if !more {
                break;
            }
        }
        Ok((changed.into_values().collect(), removed.into_values().collect(), token.unwrap_or_default()))
    }
}

impl CalendarProvider for CalDavCalendar {
    fn account<'a>(&'a self, token: &'a str) -> ProviderFuture<'a, AccountIdentity> {
        Box::pin(async move {
            let creds = DavCredentials::read(token)?;
            Ok(AccountIdentity { id: creds.principal.clone(), email: creds.username.to_lowercase() })
        })
    }

    fn list_calendars<'a>(&'a self, token: &'a str) -> ProviderFuture<'a, Vec<RemoteCalendar>> {
        Box::pin(async move {
            let creds = DavCredentials::read(token)?;
            let home = cal_url(&creds.home)?;
            let mut cals: Vec<_> = caldav::calendars_in(&self.http, &home, &creds.auth())
                .await?
                .into_iter()
                .filter(|c| c.events)
                .collect();
            cals.sort_by(|a, b| a.href.as_str().cmp(b.href.as_str()));
            // CalDAV has no primary calendar: the first one the user can write to stands in.
            let primary = cals.iter().position(|c| c.writable);
            let mut zones = self.zones.lock().unwrap_or_else(|p| p.into_inner());
            Ok(cals
                .into_iter()
                .enumerate()
                .map(|(i, c)| {
                    zones.insert(c.href.as_str().to_owned(), c.time_zone);
                    RemoteCalendar {
                        remote_id: c.href.to_string(),
                        name: c.name,
                        primary: Some(i) == primary,
                        can_write: c.writable,
                        time_zone: c.time_zone.map(|z| z.name().to_owned()),
                        color: c.color.as_deref().and_then(crate::hex_color),
                    }
                })
                .collect())
        })
    }

    fn list_changes<'a>(
        &'a self,
        token: &'a str,
        calendar: &'a str,
        from: ListFrom<'a>,
    ) -> ProviderFuture<'a, ChangePage> {
        Box::pin(async move {
            let creds = DavCredentials::read(token)?;
            let auth = creds.auth();
            let cal = cal_url(calendar)?;
            match from {
                ListFrom::Full { .. } => match self.sync_all(&cal, &auth, None).await {
                    Ok((changed, _, token)) => {
                        let (changes, _) = self.fetch(&cal, &auth, &changed).await?;
                        Ok(ChangePage { changes, next: PageNext::Done(format!("sync:{token}")) })
                    }
                    // No sync-collection here: every member by its ETag, and the ctag to tell
                    // next time whether anything changed. The ctag is read first, so a change
                    // made while listing shows next time.
                    Err(ProviderError::Permanent { status: Some(400 | 403 | 405 | 415 | 501), .. }) => {
                        let ctag = caldav::ctag(&self.http, &cal, &auth).await?;
                        let members: Vec<Url> =
                            caldav::members(&self.http, &cal, &auth).await?.into_iter().map(|(h, _)| h).collect();
                        let (changes, _) = self.fetch(&cal, &auth, &members).await?;
                        Ok(ChangePage { changes, next: PageNext::Done(format!("ctag:{ctag}")) })
                    }
                    Err(e) => Err(e),
                },
                ListFrom::Since { cursor, .. } => {
                    if let Some(sync_token) = cursor.strip_prefix("sync:") {
                        let (changed, removed, token) = self.sync_all(&cal, &auth, Some(sync_token)).await?;
                        let (mut changes, missing) = self.fetch(&cal, &auth, &changed).await?;
                        for href in missing.iter().chain(&removed) {
                            changes.push(Change::Deleted { id: href.path().to_owned() });
                        }
                        Ok(ChangePage { changes, next: PageNext::Done(format!("sync:{token}")) })
                    } else if let Some(ctag) = cursor.strip_prefix("ctag:") {
                        if caldav::ctag(&self.http, &cal, &auth).await? == ctag {
                            Ok(ChangePage { changes: Vec::new(), next: PageNext::Done(cursor.to_owned()) })
                        } else {
                            // Something changed, and without sync-collection only a full listing
                            // tells what (deletions included).
                            Err(ProviderError::CursorExpired)
                        }
                    } else {
                        Err(ProviderError::CursorExpired)
                    }
                }
            }
        })
    }

    fn lists_masters_first(&self) -> bool {
        true
    }

    /// The rule's own occurrences are listed as gone (see [`Stored::changes`]): the engine reads
    /// each linked one before it concludes anything.
    fn removals_may_be_moves(&self) -> bool {
        true
    }

    fn get<'a>(&'a self, token: &'a str, calendar: &'a str, id: &'a str) -> ProviderFuture<'a, Option<RemoteEvent>> {
        Box::pin(async move {
            let creds = DavCredentials::read(token)?;
            let cal = cal_url(calendar)?;
            let (path, occurrence) = split_id(id)?;
            let Some(stored) = self.read(&cal, &creds.auth(), path).await? else { return Ok(None) };
            if occurrence.is_some_and(|o| stored.cancelled().contains(&o)) {
                return Ok(None);
            }
            let master = stored.master().map(|(_, m)| m);
            if let Some((_, p)) = stored.find(occurrence) {
                return Ok(Some(remote(&stored.path(), p, master)));
            }
            // An occurrence as the rule makes it (its override gone, say): the master's content
            // at that start.
            Ok(match (occurrence, master) {
                (Some(o), Some(m)) => rule_occurrence(&stored.path(), m, o),
                _ => None,
            })
        })
    }

    fn create<'a>(
        &'a self,
        token: &'a str,
        calendar: &'a str,
        key: &'a str,
        stamp: &'a str,
        data: &'a AppointmentData,
    ) -> ProviderFuture<'a, RemoteEvent> {
        Box::pin(async move {
            let creds = DavCredentials::read(token)?;
            let auth = creds.auth();
            let cal = cal_url(calendar)?;
            let name = resource_name(key);
            let href = cal.join(&name).map_err(bad_id)?;
            let text = ics::resource(&written(key, stamp, data, 0), &[], Utc::now()).map_err(ics_error)?;
            let floating = self.zone(&cal, &auth).await?;
            let stored = match caldav::put(&self.http, &href, &auth, &text, Precondition::Create).await {
                Ok(Some(etag)) => Stored::new(href, etag, &text, floating),
                Ok(None) => self.read(&cal, &auth, href.path()).await?.ok_or(ProviderError::NotFound)?,
                // The name is taken: an earlier attempt made it (its answer was lost).
                Err(ProviderError::PreconditionFailed) => {
                    let stored = self.read(&cal, &auth, href.path()).await?.ok_or(ProviderError::NotFound)?;
                    if stored.master().and_then(|(_, m)| m.calsync_id.as_deref()) != Some(stamp) {
                        return Err(ProviderError::Permanent {
                            status: Some(412),
                            reason: format!("another event already has the name {name}"),
                        });
                    }
                    stored
                }
                Err(e) => return Err(e),
            };
            let (_, m) = stored.master().ok_or_else(|| ProviderError::Permanent {
                status: None,
                reason: "the server stored the event in a form calsync cannot read back".into(),
            })?;
            Ok(remote(&stored.path(), m, None))
        })
    }

    fn write_occurrence<'a>(
        &'a self,
        token: &'a str,
        calendar: &'a str,
        master: &'a str,
        original: OriginalStart,
        stamp: &'a str,
        data: &'a AppointmentData,
    ) -> ProviderFuture<'a, RemoteEvent> {
        Box::pin(async move {
            let creds = DavCredentials::read(token)?;
            let cal = cal_url(calendar)?;
            let cancel = data.status == AppointmentStatus::Cancelled;
            let stored = self
                .modify(&cal, &creds.auth(), master, |stored| {
                    let (mi, m) = stored.master().ok_or(ProviderError::NotFound)?;
                    let series = content(m).map_err(|why| ProviderError::Permanent { status: None, reason: why })?;
                    let existing = stored.find(Some(original));
                    if existing.is_none() && !occurs(&series, original) {
                        return Err(ProviderError::NotFound);
                    }
                    if cancel {
                        return cancel_in(stored, original);
                    }
                    let sequence = existing.map_or(m.sequence, |(_, p)| p.sequence) + 1;
                    let mut e = written(&m.uid, stamp, data, sequence);
                    e.data.recurrence.clear();
                    e.recurrence_id = Some((original, series_zone(m)));
                    let people = existing.is_none_or(|(_, p)| people_changed(p, data));
                    let mut edits = vec![Edit::put(existing.map(|(i, _)| i), ics::vevent_text(&e, Utc::now()), people)];
                    let cancelled = exdates(m);
                    if cancelled.contains(&original) {
                        // Written again after being cancelled: it is back.
                        let back = master_text(m, cancelled.into_iter().filter(|c| *c != original).collect())?;
                        edits.push(Edit::put(Some(mi), back, false));
                    }
                    stored.edited(&edits)
                })
                .await?;
            let path = stored.path();
            if cancel {
                return Ok(cancelled_occurrence(&path, original, Some(stamp), data));
            }
            let master = stored.master().map(|(_, m)| m);
            let (_, p) = stored.find(Some(original)).ok_or(ProviderError::NotFound)?;
            Ok(remote(&path, p, master))
        })
    }

    fn update<'a>(
        &'a self,
        token: &'a str,
        calendar: &'a str,
        id: &'a str,
        etag: &'a str,
        data: &'a AppointmentData,
    ) -> ProviderFuture<'a, RemoteEvent> {
        Box::pin(async move {
            let creds = DavCredentials::read(token)?;
            let cal = cal_url(calendar)?;
            let (path, occurrence) = split_id(id)?;
            let stored = self
                .modify(&cal, &creds.auth(), path, |stored| {
                    if let Some(o) = occurrence
                        && stored.find(occurrence).is_none()
                    {
                        return plain_occurrence_written(stored, o, etag, data);
                    }
                    let (i, p) = stored.find(occurrence).ok_or(ProviderError::NotFound)?;
                    let master = stored.master().map(|(_, m)| m);
                    if !etag.is_empty() && remote(&stored.path(), p, master).etag != etag {
                        return Err(ProviderError::PreconditionFailed);
                    }
                    if let (Some(o), true) = (occurrence, data.status == AppointmentStatus::Cancelled) {
                        // An occurrence cancelled: an EXDATE, not a cancelled override.
                        return cancel_in(stored, o);
                    }
                    let mut e = written(&p.uid, p.calsync_id.as_deref().unwrap_or(""), data, p.sequence + 1);
                    let mut edits = Vec::new();
                    match (occurrence, master) {
                        (Some(o), Some(m)) => {
                            e.recurrence_id = Some((o, series_zone(m)));
                            e.data.recurrence.clear();
                        }
                        (Some(o), None) => e.recurrence_id = Some((o, series_zone(p))),
                        (None, _) => {
                            // The master: its cancellations are the resource's and calsync's
                            // own EXDATE lines, once each; those and the overrides the new rule
                            // no longer makes go, as Google drops the exceptions of a series
                            // whose times change (they would stand alone as stray events).
                            let tz = data.time_zone;
                            let mut cancelled = exdates(p);
                            for o in exdate_lines(&data.recurrence, tz) {
                                if !cancelled.contains(&o) {
                                    cancelled.push(o);
                                }
                            }
                            e.data.recurrence.retain(|l| !l.to_ascii_uppercase().starts_with("EXDATE"));
                            let still = |o: &OriginalStart| !e.data.recurrence.is_empty() && occurs(&e.data, *o);
                            e.cancelled = cancelled.into_iter().filter(still).collect();
                            for (j, c) in stored.events.iter().enumerate() {
                                if let Ok(x) = &c.read
                                    && let Some(o) = x.recurrence_id
                                    && !still(&o)
                                {
                                    edits.push(Edit::remove(j));
                                }
                            }
                        }
                    }
                    edits.push(Edit::put(Some(i), ics::vevent_text(&e, Utc::now()), people_changed(p, data)));
                    stored.edited(&edits)
                })
                .await?;
            let master = stored.master().map(|(_, m)| m);
            if let Some(o) = occurrence.filter(|o| stored.cancelled().contains(o)) {
                let stamp = stored.find(occurrence).and_then(|(_, p)| p.calsync_id.clone());
                return Ok(cancelled_occurrence(&stored.path(), o, stamp.as_deref(), data));
            }
            let (_, p) = stored.find(occurrence).ok_or(ProviderError::NotFound)?;
            Ok(remote(&stored.path(), p, master))
        })
    }

    fn delete<'a>(&'a self, token: &'a str, calendar: &'a str, id: &'a str, etag: &'a str) -> ProviderFuture<'a, ()> {
        Box::pin(async move {
            let creds = DavCredentials::read(token)?;
            let auth = creds.auth();
            let cal = cal_url(calendar)?;
            let (path, occurrence) = split_id(id)?;
            let check = |stored: &Stored, o: Option<OriginalStart>| -> Result<bool, ProviderError> {
                let Some((_, p)) = stored.find(o) else { return Ok(false) };
                let master = stored.master().map(|(_, m)| m);
                if !etag.is_empty() && etag != CANCELLED && remote(&stored.path(), p, master).etag != etag {
                    return Err(ProviderError::PreconditionFailed);
                }
                Ok(true)
            };
            if let Some(o) = occurrence {
                // One occurrence of a series: cancelled in the series.
                let result = self
                    .modify(&cal, &auth, path, |stored| {
                        check(stored, Some(o))?;
                        if stored.cancelled().contains(&o) {
                            return Err(ProviderError::NotFound);
                        }
                        cancel_in(stored, o)
                    })
                    .await;
                return match result {
                    Ok(_) | Err(ProviderError::NotFound) => Ok(()),
                    Err(e) => Err(e),
                };
            }
            for _ in 0..WRITE_ATTEMPTS {
                let Some(stored) = self.read(&cal, &auth, path).await? else { return Ok(()) };
                stored.writable()?;
                check(&stored, None)?;
                match caldav::delete(&self.http, &stored.href, &auth, &stored.etag).await {
                    Err(ProviderError::PreconditionFailed) => continue,
                    other => return other,
                }
            }
            Err(ProviderError::retryable("the event kept changing on the server while calsync deleted it"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERIES: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Apple Inc.//macOS 15//EN\r\n\
BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:s1\r\nDTSTAMP:20261130T100000Z\r\nDTSTART;TZID=Europe/Berlin:20261207T090000\r\nDTEND;TZID=Europe/Berlin:20261207T091500\r\n\
RRULE:FREQ=DAILY;COUNT=5\r\nEXDATE;TZID=Europe/Berlin:20261209T090000\r\nSUMMARY:Stand-up\r\nX-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC\r\n\
BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Reminder\r\nTRIGGER:-PT10M\r\nEND:VALARM\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:s1\r\nDTSTAMP:20261130T100000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20261208T090000\r\nDTSTART;TZID=Europe/Berlin:20261208T100000\r\n\
DTEND;TZID=Europe/Berlin:20261208T101500\r\nSUMMARY:Stand-up (late)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    fn stored(text: &str) -> Stored {
        Stored::new(Url::parse("http://dav.test/cal/s1.ics").unwrap(), "\"1\"".into(), text, None)
    }

    fn at(s: &str) -> OriginalStart {
        OriginalStart::At(s.parse().unwrap())
    }

    #[test]
    fn a_series_resource_lists_as_master_override_and_cancelled_occurrence() {
        let all = stored(SERIES).changes();
        let plain: Vec<&str> =
            all.iter().filter_map(|c| if let Change::Deleted { id } = c { Some(id.as_str()) } else { None }).collect();
        assert_eq!(
            plain,
            ["/cal/s1.ics#20261207T080000Z", "/cal/s1.ics#20261210T080000Z", "/cal/s1.ics#20261211T080000Z"],
            "the rule's own occurrences, as gone as exceptions"
        );
        let changes: Vec<Change> = all.into_iter().filter(|c| !matches!(c, Change::Deleted { .. })).collect();
        assert_eq!(changes.len(), 3, "{changes:#?}");
        let Change::Upsert(m) = &changes[0] else { panic!("{changes:?}") };
        assert_eq!(
            (m.id.as_str(), m.recurrence.as_slice()),
            ("/cal/s1.ics", &["RRULE:FREQ=DAILY;COUNT=5".to_owned()][..])
        );
        let Change::Upsert(o) = &changes[1] else { panic!("{changes:?}") };
        assert_eq!(o.id, "/cal/s1.ics#20261208T080000Z");
        assert_eq!(o.series_master_id.as_deref(), Some("/cal/s1.ics"));
        assert_eq!(o.original_start, Some(at("2026-12-08T08:00:00Z")));
        assert_eq!(o.data.as_ref().unwrap().title, "Stand-up (late)");
        assert!(matches!(&changes[2], Change::OccurrenceCancelled { id, master, original_start, .. }
            if id == "/cal/s1.ics#20261209T080000Z" && master == "/cal/s1.ics" && *original_start == at("2026-12-09T08:00:00Z")));
    }

    #[test]
    fn ids_round_trip() {
        for o in [at("2026-12-08T08:00:00Z"), OriginalStart::Date(NaiveDate::from_ymd_opt(2026, 12, 24).unwrap())] {
            let id = occurrence_id("/cal/a b.ics", o);
            assert_eq!(split_id(&id).unwrap(), ("/cal/a b.ics", Some(o)));
        }
        assert_eq!(split_id("/cal/x.ics").unwrap(), ("/cal/x.ics", None));
        assert!(split_id("/cal/x.ics#nonsense").is_err());
    }

    #[test]
    fn rewriting_one_component_keeps_alarms_foreign_properties_and_the_others() {
        let s = stored(SERIES);
        let text = cancel_in(&s, at("2026-12-10T08:00:00Z")).unwrap();
        let flat = unfold(&text).join("\n");
        assert!(flat.contains("BEGIN:VALARM") && flat.contains("TRIGGER:-PT10M"), "{flat}");
        assert!(flat.contains("X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC"), "{flat}");
        assert!(flat.contains("SUMMARY:Stand-up (late)"), "the override stays: {flat}");
        assert!(!flat.contains("X-CALSYNC-ID"), "no stamp on an event calsync did not make: {flat}");
        let again = stored(&text);
        assert_eq!(again.cancelled(), vec![at("2026-12-09T08:00:00Z"), at("2026-12-10T08:00:00Z")]);
        // The master's own content did not change: its version stands.
        let before = stored(SERIES).changes();
        let after = again.changes();
        let version = |c: &[Change]| match &c[0] {
            Change::Upsert(e) => e.etag.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(version(&before), version(&after));
        // Cancelling the override's occurrence removes the override.
        let text = cancel_in(&again, at("2026-12-08T08:00:00Z")).unwrap();
        assert!(!text.contains("Stand-up (late)"), "{text}");
        assert_eq!(stored(&text).cancelled().len(), 3);
    }

    #[test]
    fn a_resource_with_a_part_calsync_cannot_read_is_not_rewritten() {
        let with_rdate = SERIES.replacen(
            "RRULE:FREQ=DAILY;COUNT=5\r\n",
            "RRULE:FREQ=DAILY;COUNT=5\r\nRDATE:20261224T080000Z\r\n",
            1,
        );
        let s = stored(&with_rdate);
        assert!(s.master().is_none());
        assert!(matches!(s.writable(), Err(ProviderError::Permanent { .. })));
        assert!(stored(SERIES).writable().is_ok());
        let changes = s.changes();
        assert!(
            changes.iter().any(|c| matches!(c, Change::Upsert(e) if e.data.is_none() && e.note.is_some())),
            "{changes:?}"
        );
    }

    #[test]
    fn exdate_lines_in_every_form() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let lines = [
            "EXDATE:20261214T080000Z,20261215T080000Z".to_owned(),
            "EXDATE;TZID=Europe/Berlin:20261216T090000".to_owned(),
            "EXDATE;VALUE=DATE:20261224".to_owned(),
            "EXDATE:20261217T090000".to_owned(),
            "EXDATE:20261214T080000Z".to_owned(),
        ];
        assert_eq!(
            exdate_lines(&lines, berlin),
            vec![
                at("2026-12-14T08:00:00Z"),
                at("2026-12-15T08:00:00Z"),
                at("2026-12-16T08:00:00Z"),
                OriginalStart::Date(NaiveDate::from_ymd_opt(2026, 12, 24).unwrap()),
                at("2026-12-17T08:00:00Z"),
            ],
            "floating ones in the series' zone, each once"
        );
    }

    #[test]
    fn occurrences_are_checked_against_the_rule() {
        let s = stored(SERIES);
        let m = content(s.master().unwrap().1).unwrap();
        assert!(occurs(&m, at("2026-12-10T08:00:00Z")));
        assert!(!occurs(&m, at("2026-12-10T09:00:00Z")));
        assert!(!occurs(&m, at("2026-12-20T08:00:00Z")), "after COUNT");
    }
}
