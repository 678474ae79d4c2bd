//! [`CalendarProvider`] for Microsoft Graph: `calendarView/delta` followed through
//! `@odata.nextLink` to `@odata.deltaLink`, `transactionId` as the idempotency key, `If-Match`
//! on writes, times read in UTC (`Prefer: outlook.timezone="UTC"`) and bodies as HTML turned into
//! text by calsync (links kept), and the
//! appointment id in a single-value extended property.
//!
//! Graph mails every attendee of an event it creates or reschedules, with no switch to stop it.
//! So attendees are written as attendees only when the appointment asks for invitations
//! (`send_invitations`); otherwise they go into the body as a list under [`ATTENDEE_LIST`],
//! which reading takes back out, so the round trip gives the same appointment.

use calsync_domain::appointment::{
    AppointmentData, AppointmentStatus, Attendee, ResponseStatus, ShowAs, Visibility, When,
};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::calendar::{
    CalendarProvider, Change, ChangePage, ListFrom, PageNext, ProviderFuture, RemoteEvent, Watch, WatchRequest,
};
use crate::graph_recurrence::{self, SeriesStart};
use crate::html_text::{description_text, html_to_text, text_to_html};
use crate::microsoft::{GraphApi, done_or_gone, json_or_error};
use crate::{AccountIdentity, ProviderError, RemoteCalendar};
use calsync_domain::appointment::normalize_description;
use calsync_domain::recurrence::OriginalStart;

/// The extended property that carries the appointment id (a named string property in the
/// PublicStrings set).
pub const CALSYNC_ID_PROPERTY: &str = "String {00020329-0000-0000-C000-000000000046} Name calsyncId";
/// The heading of the attendee list written into the body of an event whose attendees are not
/// invited.
pub const ATTENDEE_LIST: &str = "Attendees (not invited by calsync):";
/// Times in UTC. Bodies come as Outlook stores them (HTML, usually): Graph's own text rendering
/// drops link targets, calsync's keeps them.
const PREFER_READ: &str = "outlook.timezone=\"UTC\", odata.maxpagesize=100";

/// Microsoft Graph calendars behind the provider trait.
#[derive(Debug, Clone)]
pub struct GraphCalendar {
    pub api: GraphApi,
    pub http: reqwest::Client,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    value: Vec<Value>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    delta_link: Option<String>,
}

fn expand() -> String {
    format!("singleValueExtendedProperties($filter=id eq '{CALSYNC_ID_PROPERTY}')")
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// `2026-12-01T09:00:00.0000000` (in UTC, as asked for) as an instant.
fn utc(v: &Value) -> Option<DateTime<Utc>> {
    let raw = v.get("dateTime")?.as_str()?;
    NaiveDateTime::parse_from_str(raw.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
}

/// A zone as Graph names it: IANA (what calsync writes), or Windows (what Outlook writes,
/// `W. Europe Standard Time`), mapped through CLDR's table.
fn zone_named(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok().or_else(|| name.parse::<windows_timezones::WindowsTimezone>().ok().map(Tz::from))
}

fn into_change(item: Value) -> Option<Change> {
    let id = text(&item, "id")?;
    if item.get("@removed").is_some() {
        return Some(Change::Deleted { id });
    }
    Some(Change::Upsert(Box::new(into_remote(id, &item))))
}

fn into_remote(id: String, item: &Value) -> RemoteEvent {
    let calsync_id = item
        .get("singleValueExtendedProperties")
        .and_then(Value::as_array)
        .and_then(|props| {
            props.iter().find(|p| {
                p.get("id").and_then(Value::as_str).is_some_and(|i| i.eq_ignore_ascii_case(CALSYNC_ID_PROPERTY))
            })
        })
        .and_then(|p| text(p, "value"));
    let zone_name = text(item, "originalStartTimeZone");
    let zone = zone_name.as_deref().and_then(zone_named).unwrap_or(Tz::UTC);
    // Outlook's custom zones (`tzone://Microsoft/Custom`) have no IANA equivalent: the times
    // (read in UTC) stay right, the zone is UTC, and the sync says so.
    let note = zone_name.filter(|z| zone_named(z).is_none()).map(|z| {
        format!("Outlook's time zone {z:?} has no IANA equivalent: its events are read in UTC (their times are right; their zone is UTC)")
    });
    let organizer = (item.get("isOrganizer").and_then(Value::as_bool) == Some(false))
        .then(|| item.get("organizer")?.get("emailAddress").and_then(|a| text(a, "address")))
        .flatten()
        .map(|a| a.to_ascii_lowercase());
    // Delta sends occurrences of a series as skeletons: no subject, read the master.
    let data = item.get("subject").and_then(|_| {
        let (start, end) = (utc(item.get("start")?)?, utc(item.get("end")?)?);
        let when = if item.get("isAllDay").and_then(Value::as_bool) == Some(true) {
            let s: NaiveDate = start.date_naive();
            let e = end.date_naive().max(s + Duration::days(1));
            When::AllDay { start: s, end: e }
        } else {
            When::Timed { start, end: end.max(start) }
        };
        let invited: Vec<Attendee> = item
            .get("attendees")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter(|a| a.get("type").and_then(Value::as_str) != Some("resource"))
                    .filter_map(|a| {
                        let addr = a.get("emailAddress")?;
                        let response = match a.get("status").and_then(|s| s.get("response")).and_then(Value::as_str) {
                            Some("accepted" | "organizer") => ResponseStatus::Accepted,
                            Some("declined") => ResponseStatus::Declined,
                            Some("tentativelyAccepted") => ResponseStatus::Tentative,
                            _ => ResponseStatus::NeedsAction,
                        };
                        Some(Attendee {
                            email: text(addr, "address")?.to_ascii_lowercase(),
                            name: text(addr, "name").unwrap_or_default(),
                            response,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let body = match item.get("body") {
            Some(b) if text(b, "contentType").is_some_and(|t| t.eq_ignore_ascii_case("html")) => {
                normalize_description(&html_to_text(&text(b, "content").unwrap_or_default()))
            }
            Some(b) => normalize_description(&description_text(&text(b, "content").unwrap_or_default())),
            None => String::new(),
        };
        let (description, listed) = split_attendee_list(&body);
        // An event with invited attendees is a meeting: later pushes keep inviting (writing
        // the list into the body instead would uninvite everyone, with a cancellation each).
        let send_invitations = !invited.is_empty() && organizer.is_none();
        let attendees = if invited.is_empty() { listed } else { invited };
        let cancelled = item.get("isCancelled").and_then(Value::as_bool) == Some(true);
        // A master's pattern as RFC 5545 lines; one that does not convert leaves the event
        // unread (no content) rather than read as a single event.
        let recurrence = match item.get("recurrence").filter(|r| !r.is_null()) {
            None => Vec::new(),
            Some(r) => graph_recurrence::from_graph(r, &series_start(&when, zone)).ok()?,
        };
        let mut title = text(item, "subject").unwrap_or_default();
        // Outlook renames a meeting its organizer cancelled; the status already says so.
        if cancelled && let Some(rest) = title.strip_prefix("Canceled: ") {
            title = rest.to_owned();
        }
        if title.trim().is_empty() {
            title = "(No title)".into();
        }
        Some(AppointmentData {
            title,
            description,
            location: item.get("location").and_then(|l| text(l, "displayName")).unwrap_or_default(),
            when,
            time_zone: zone,
            attendees,
            status: if cancelled {
                AppointmentStatus::Cancelled
            } else if item.get("showAs").and_then(Value::as_str) == Some("tentative") {
                AppointmentStatus::Tentative
            } else {
                AppointmentStatus::Confirmed
            },
            // Outlook's `confidential` hides the details as well.
            visibility: match item.get("sensitivity").and_then(Value::as_str) {
                Some("private" | "confidential") => Visibility::Private,
                _ => Visibility::Default,
            },
            show_as: if item.get("showAs").and_then(Value::as_str) == Some("free") {
                ShowAs::Free
            } else {
                ShowAs::Busy
            },
            send_invitations,
            organizer: organizer.clone(),
            recurrence,
            series: None,
        })
    });
    let all_day = item.get("isAllDay").and_then(Value::as_bool) == Some(true);
    let original_start = text(item, "originalStart").and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| {
        if all_day {
            OriginalStart::Date(t.with_timezone(&zone).date_naive())
        } else {
            OriginalStart::At(t.with_timezone(&Utc))
        }
    });
    RemoteEvent {
        id,
        etag: text(item, "@odata.etag").unwrap_or_default(),
        updated: text(item, "lastModifiedDateTime")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)),
        calsync_id,
        data,
        recurrence: item.get("recurrence").filter(|r| !r.is_null()).map(|r| vec![r.to_string()]).unwrap_or_default(),
        series_master_id: text(item, "seriesMasterId"),
        original_start,
        note,
    }
}

/// `- Ann Example <ann@example.org>`, with the answer in brackets when there is one.
fn attendee_line(a: &Attendee) -> String {
    let mut line = if a.name.is_empty() { format!("- <{}>", a.email) } else { format!("- {} <{}>", a.name, a.email) };
    if a.response != ResponseStatus::NeedsAction {
        line.push_str(&format!(" ({})", a.response.as_str()));
    }
    line
}

fn parse_attendee_line(line: &str) -> Option<Attendee> {
    let rest = line.trim_end().strip_prefix("- ")?;
    let (rest, response) = match rest.rsplit_once(" (") {
        Some((r, answer)) if rest.ends_with(')') => (r, answer.trim_end_matches(')').parse().ok()?),
        _ => (rest, ResponseStatus::NeedsAction),
    };
    let (name, email) = rest.strip_suffix('>')?.rsplit_once('<')?;
    if !email.contains('@') || email.contains(char::is_whitespace) {
        return None;
    }
    Some(Attendee { email: email.to_ascii_lowercase(), name: name.trim().to_owned(), response })
}

/// The body of an event whose attendees are not invited: the description, then the list.
fn with_attendee_list(description: &str, attendees: &[Attendee]) -> String {
    if attendees.is_empty() {
        return description.to_owned();
    }
    let mut out = description.to_owned();
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(ATTENDEE_LIST);
    for a in attendees {
        out.push('\n');
        out.push_str(&attendee_line(a));
    }
    out
}

/// Splits a body read back into the description and the attendee list calsync wrote into it.
/// A list that does not parse whole is someone's text, and stays in the description.
fn split_attendee_list(body: &str) -> (String, Vec<Attendee>) {
    let body = body.replace("\r\n", "\n");
    let body = body.trim();
    let start = if body.starts_with(ATTENDEE_LIST) {
        Some(0)
    } else {
        body.rfind(&format!("\n\n{ATTENDEE_LIST}")).map(|i| i + 2)
    };
    if let Some(start) = start {
        let list: Option<Vec<Attendee>> = body[start + ATTENDEE_LIST.len()..]
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(parse_attendee_line)
            .collect();
        if let Some(list) = list.filter(|l| !l.is_empty()) {
            return (body[..start].trim_end().to_owned(), list);
        }
    }
    (body.to_owned(), Vec::new())
}

/// Where a series starting at `when` in `zone` starts, as [`graph_recurrence`] takes it.
fn series_start(when: &When, zone: Tz) -> SeriesStart {
    let local = match *when {
        When::Timed { start, .. } => start.with_timezone(&zone).naive_local(),
        When::AllDay { start, .. } => start.and_time(chrono::NaiveTime::MIN),
    };
    SeriesStart { date: local.date(), time: local.time(), zone, all_day: matches!(when, When::AllDay { .. }) }
}

/// The event resource for a write: times in the appointment's zone (IANA names are accepted),
/// a master's rule as a `patternedRecurrence`. A rule Graph cannot express is refused
/// ([`ProviderError::Permanent`] with the reason), never written as something else.
fn body(data: &AppointmentData) -> Result<Value, ProviderError> {
    let mut v = body_without_rule(data);
    if data.organizer.is_none() && data.series.is_none() {
        let (rule, _) = graph_recurrence::to_graph(&data.recurrence, &series_start(&data.when, data.time_zone))
            .map_err(|e| ProviderError::Permanent { status: None, reason: format!("Outlook cannot repeat it: {e}") })?;
        v["recurrence"] = rule;
    }
    Ok(v)
}

fn body_without_rule(data: &AppointmentData) -> Value {
    let personal = json!({
        "showAs": match (data.status, data.show_as) {
            (AppointmentStatus::Tentative, _) => "tentative",
            (_, ShowAs::Free) => "free",
            _ => "busy",
        },
        "sensitivity": if data.visibility == Visibility::Private { "private" } else { "normal" },
    });
    if data.organizer.is_some() {
        // An attendee's copy: Graph refuses (400) a change to anything its organizer owns.
        return personal;
    }
    let zone = data.time_zone.name();
    let (start, end, all_day) = match data.when {
        When::AllDay { start, end } => {
            (start.and_hms_opt(0, 0, 0).expect("midnight"), end.and_hms_opt(0, 0, 0).expect("midnight"), true)
        }
        When::Timed { start, end } => (
            start.with_timezone(&data.time_zone).naive_local(),
            end.with_timezone(&data.time_zone).naive_local(),
            false,
        ),
    };
    let at = |n: NaiveDateTime| n.format("%Y-%m-%dT%H:%M:%S").to_string();
    let (content, attendees) = if data.send_invitations {
        let invited: Vec<Value> = data
            .attendees
            .iter()
            .map(|a| json!({"type": "required", "emailAddress": {"address": a.email, "name": a.name}}))
            .collect();
        (data.description.clone(), invited)
    } else {
        (with_attendee_list(&data.description, &data.attendees), Vec::new())
    };
    // Written as HTML, as Outlook keeps it anyway: read back, it gives the same text.
    let mut v = json!({
        "subject": data.title,
        "body": {"contentType": "html", "content": text_to_html(&content)},
        "location": {"displayName": data.location},
        "start": {"dateTime": at(start), "timeZone": zone},
        "end": {"dateTime": at(end), "timeZone": zone},
        "isAllDay": all_day,
        "attendees": attendees,
    });
    if let (Some(v), Some(p)) = (v.as_object_mut(), personal.as_object()) {
        v.extend(p.clone());
    }
    v
}

impl GraphCalendar {
    fn events_url(&self, calendar: Option<&str>, id: Option<&str>) -> Url {
        let mut url = self.api.url("/me");
        {
            let mut segs = url.path_segments_mut().expect("an http(s) URL");
            if let Some(cal) = calendar {
                segs.push("calendars").push(cal);
            }
            segs.push("events");
            if let Some(id) = id {
                segs.push(id);
            }
        }
        url
    }

    async fn fetch(&self, token: &str, id: &str) -> Result<Option<RemoteEvent>, ProviderError> {
        let resp = self
            .http
            .get(self.events_url(None, Some(id)))
            .bearer_auth(token)
            .header("Prefer", PREFER_READ)
            .query(&[("$expand", expand())])
            .send()
            .await
            .map_err(ProviderError::transport)?;
        match json_or_error::<Value>(resp).await {
            Ok(v) => Ok(Some(into_remote(id.to_owned(), &v))),
            Err(ProviderError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn changes(&self, token: &str, calendar: &str, from: ListFrom<'_>) -> Result<ChangePage, ProviderError> {
        let url = match from {
            ListFrom::Full { window, page: None } => {
                let mut url = self.api.url("/me");
                url.path_segments_mut()
                    .expect("an http(s) URL")
                    .push("calendars")
                    .push(calendar)
                    .push("calendarView")
                    .push("delta");
                let at = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
                url.query_pairs_mut()
                    .append_pair("startDateTime", &at(window.start))
                    .append_pair("endDateTime", &at(window.end))
                    .append_pair("$expand", &expand());
                url
            }
            ListFrom::Full { page: Some(link), .. } | ListFrom::Since { page: Some(link), .. } => {
                self.api.same_origin(link)?
            }
            ListFrom::Since { cursor, page: None } => self.api.same_origin(cursor)?,
        };
        let resp = self
            .http
            .get(url)
            .bearer_auth(token)
            .header("Prefer", PREFER_READ)
            .send()
            .await
            .map_err(ProviderError::transport)?;
        let page: Page = json_or_error(resp).await?;
        let changes = page.value.into_iter().filter_map(into_change).collect();
        let next = match (page.next_link, page.delta_link) {
            (Some(n), _) => PageNext::More(n),
            (None, Some(d)) => PageNext::Done(d),
            (None, None) => {
                return Err(ProviderError::Permanent {
                    status: None,
                    reason: "Graph ended a delta round without a delta link".into(),
                });
            }
        };
        Ok(ChangePage { changes, next })
    }

    async fn insert(
        &self,
        token: &str,
        calendar: &str,
        key: &str,
        stamp: &str,
        data: &AppointmentData,
    ) -> Result<RemoteEvent, ProviderError> {
        let mut event = body(data)?;
        // Graph returns the first event again for a repeated transactionId.
        event["transactionId"] = json!(key);
        event["singleValueExtendedProperties"] = json!([{"id": CALSYNC_ID_PROPERTY, "value": stamp}]);
        let resp = self
            .http
            .post(self.events_url(Some(calendar), None))
            .bearer_auth(token)
            .header("Prefer", PREFER_READ)
            .json(&event)
            .send()
            .await
            .map_err(ProviderError::transport)?;
        let v: Value = json_or_error(resp).await?;
        let id = text(&v, "id").ok_or_else(|| ProviderError::Permanent {
            status: None,
            reason: "Graph created an event without an id".into(),
        })?;
        let mut created = into_remote(id.clone(), &v);
        created.calsync_id.get_or_insert_with(|| stamp.to_owned());
        if self.drop_excluded(token, &id, data).await? {
            // Re-read: deleting occurrences moved the master's change key on.
            created = self.fetch(token, &id).await?.ok_or(ProviderError::NotFound)?;
        }
        Ok(created)
    }

    /// Deletes the occurrences a master's `EXDATE`s exclude (Graph's rule cannot hold them).
    /// Whether any was deleted.
    async fn drop_excluded(&self, token: &str, master: &str, data: &AppointmentData) -> Result<bool, ProviderError> {
        if data.recurrence.is_empty() || data.series.is_some() {
            return Ok(false);
        }
        let Ok((_, excluded)) = graph_recurrence::to_graph(&data.recurrence, &series_start(&data.when, data.time_zone))
        else {
            return Ok(false);
        };
        let zone = data.time_zone;
        let wanted: Vec<OriginalStart> = excluded
            .into_iter()
            .filter_map(|n| {
                if data.is_all_day() {
                    Some(OriginalStart::Date(n.date()))
                } else {
                    n.and_local_timezone(zone).earliest().map(|t| OriginalStart::At(t.with_timezone(&Utc)))
                }
            })
            .collect();
        let mut dropped = false;
        for o in wanted {
            if let Some(occ) = self.occurrence_at(token, master, o, zone).await? {
                self.remove(token, &occ.id, &occ.etag).await?;
                dropped = true;
            }
        }
        Ok(dropped)
    }

    /// `master`'s instances in `[from, to)`, following the pages (which may be short or empty).
    async fn instances_between(
        &self,
        token: &str,
        master: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<RemoteEvent>, ProviderError> {
        let f = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut url = self.events_url(None, Some(master));
        url.path_segments_mut().expect("an http(s) URL").push("instances");
        url.query_pairs_mut().append_pair("startDateTime", &f(from)).append_pair("endDateTime", &f(to));
        let mut out = Vec::new();
        loop {
            let resp = self
                .http
                .get(url.clone())
                .bearer_auth(token)
                .header("Prefer", PREFER_READ)
                .send()
                .await
                .map_err(ProviderError::transport)?;
            let page: Page = json_or_error(resp).await?;
            out.extend(page.value.iter().filter_map(|item| Some(into_remote(text(item, "id")?, item))));
            match page.next_link {
                Some(next) => url = self.api.same_origin(&next)?,
                None => return Ok(out),
            }
        }
    }

    /// Original starts of `master`'s instances in `[from, to)`.
    async fn instances(
        &self,
        token: &str,
        master: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<OriginalStart>, ProviderError> {
        let all = self.instances_between(token, master, from, to).await?;
        Ok(all.into_iter().filter_map(|e| e.original_start).collect())
    }

    /// The occurrence (or exception) of `master` whose original start is `o`.
    async fn occurrence_at(
        &self,
        token: &str,
        master: &str,
        o: OriginalStart,
        zone: Tz,
    ) -> Result<Option<RemoteEvent>, ProviderError> {
        let at = o.instant(zone);
        let all = self.instances_between(token, master, at - Duration::days(2), at + Duration::days(3)).await?;
        Ok(all.into_iter().find(|e| e.original_start == Some(o)))
    }

    async fn occurrence(
        &self,
        token: &str,
        master: &str,
        original: OriginalStart,
        stamp: &str,
        data: &AppointmentData,
    ) -> Result<RemoteEvent, ProviderError> {
        let found = self.occurrence_at(token, master, original, data.time_zone).await?;
        if data.status == AppointmentStatus::Cancelled && found.is_none() {
            // Already gone (a retry after the delete went through): cancelled is what it is.
            return Ok(RemoteEvent {
                id: format!("{master}@{original}"),
                etag: String::new(),
                updated: None,
                calsync_id: Some(stamp.to_owned()),
                data: Some(data.clone()),
                recurrence: Vec::new(),
                series_master_id: Some(master.to_owned()),
                original_start: Some(original),
                note: None,
            });
        }
        let occ = found.ok_or(ProviderError::NotFound)?;
        if data.status == AppointmentStatus::Cancelled {
            // Graph has no cancelled occurrences: a cancelled one is deleted, and gone.
            self.remove(token, &occ.id, &occ.etag).await?;
            return Ok(RemoteEvent {
                data: Some(data.clone()),
                calsync_id: Some(stamp.to_owned()),
                series_master_id: Some(master.to_owned()),
                original_start: Some(original),
                ..occ
            });
        }
        let mut patch = body(data)?;
        patch["singleValueExtendedProperties"] = json!([{"id": CALSYNC_ID_PROPERTY, "value": stamp}]);
        let resp = self
            .http
            .patch(self.events_url(None, Some(&occ.id)))
            .bearer_auth(token)
            .header("Prefer", PREFER_READ)
            .header(reqwest::header::IF_MATCH, &occ.etag)
            .query(&[("$expand", expand())])
            .json(&patch)
            .send()
            .await
            .map_err(ProviderError::transport)?;
        let v: Value = json_or_error(resp).await?;
        let mut written = into_remote(occ.id.clone(), &v);
        written.calsync_id.get_or_insert_with(|| stamp.to_owned());
        Ok(written)
    }

    async fn replace(
        &self,
        token: &str,
        id: &str,
        etag: &str,
        data: &AppointmentData,
    ) -> Result<RemoteEvent, ProviderError> {
        if data.organizer.is_none() && data.status == AppointmentStatus::Cancelled {
            // Graph has no cancelled events of one's own (`cancel` mails every attendee):
            // cancelling an appointment or an occurrence deletes its event. Confirmed again, it is
            // created anew.
            self.remove(token, id, etag).await?;
            return Ok(RemoteEvent {
                id: id.to_owned(),
                etag: etag.to_owned(),
                updated: None,
                calsync_id: None,
                data: Some(data.clone()),
                recurrence: Vec::new(),
                series_master_id: None,
                original_start: data.series.map(|s| s.original_start),
                note: None,
            });
        }
        let resp = self
            .http
            .patch(self.events_url(None, Some(id)))
            .bearer_auth(token)
            .header("Prefer", PREFER_READ)
            .header(reqwest::header::IF_MATCH, etag)
            .json(&body(data)?)
            .send()
            .await
            .map_err(ProviderError::transport)?;
        let v: Value = json_or_error(resp).await?;
        if self.drop_excluded(token, id, data).await? {
            return self.fetch(token, id).await?.ok_or(ProviderError::NotFound);
        }
        Ok(into_remote(id.to_owned(), &v))
    }

    fn subscription_url(&self, id: Option<&str>) -> Url {
        let mut url = self.api.url("/subscriptions");
        if let Some(id) = id {
            url.path_segments_mut().expect("an http(s) URL").push(id);
        }
        url
    }

    /// A subscription to the calendar's events (created, updated, deleted), with calsync's
    /// `clientState` and a lifecycle URL. Graph checks both URLs with the validation handshake
    /// before it answers.
    async fn subscribe(&self, token: &str, calendar: &str, req: &WatchRequest) -> Result<Watch, ProviderError> {
        let mut body = json!({
            "changeType": "created,updated,deleted",
            "notificationUrl": req.address,
            "resource": format!("me/calendars/{calendar}/events"),
            "expirationDateTime": req.until.to_rfc3339_opts(SecondsFormat::Millis, true),
            "clientState": req.secret,
        });
        if let Some(l) = &req.lifecycle_address {
            body["lifecycleNotificationUrl"] = json!(l);
        }
        let resp = self
            .http
            .post(self.subscription_url(None))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .map_err(ProviderError::transport)?;
        let sub: Subscription = json_or_error(resp).await?;
        Ok(Watch { remote_id: sub.id, expires_at: sub.expiration_date_time.unwrap_or(req.until) })
    }

    /// Moves the subscription's expiry (Graph may grant less).
    async fn extend(
        &self,
        token: &str,
        id: &str,
        until: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, ProviderError> {
        let body = json!({ "expirationDateTime": until.to_rfc3339_opts(SecondsFormat::Millis, true) });
        let resp = self
            .http
            .patch(self.subscription_url(Some(id)))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .map_err(ProviderError::transport)?;
        let sub: Subscription = json_or_error(resp).await?;
        Ok(Some(sub.expiration_date_time.unwrap_or(until)))
    }

    async fn reauthorize_subscription(&self, token: &str, id: &str) -> Result<(), ProviderError> {
        let mut url = self.subscription_url(Some(id));
        url.path_segments_mut().expect("an http(s) URL").push("reauthorize");
        let resp = self.http.post(url).bearer_auth(token).send().await.map_err(ProviderError::transport)?;
        if resp.status().is_success() {
            return Ok(());
        }
        json_or_error::<Value>(resp).await.map(|_| ())
    }

    async fn unsubscribe(&self, token: &str, id: &str) -> Result<(), ProviderError> {
        let resp = self
            .http
            .delete(self.subscription_url(Some(id)))
            .bearer_auth(token)
            .send()
            .await
            .map_err(ProviderError::transport)?;
        done_or_gone(resp).await
    }

    async fn remove(&self, token: &str, id: &str, etag: &str) -> Result<(), ProviderError> {
        let resp = self
            .http
            .delete(self.events_url(None, Some(id)))
            .bearer_auth(token)
            .header(reqwest::header::IF_MATCH, etag)
            .send()
            .await
            .map_err(ProviderError::transport)?;
        done_or_gone(resp).await
    }
}

impl CalendarProvider for GraphCalendar {
    fn account<'a>(&'a self, token: &'a str) -> ProviderFuture<'a, AccountIdentity> {
        Box::pin(self.api.account(&self.http, token))
    }

    fn list_calendars<'a>(&'a self, token: &'a str) -> ProviderFuture<'a, Vec<RemoteCalendar>> {
        Box::pin(self.api.calendars(&self.http, token))
    }

    fn list_changes<'a>(
        &'a self,
        token: &'a str,
        calendar: &'a str,
        from: ListFrom<'a>,
    ) -> ProviderFuture<'a, ChangePage> {
        Box::pin(self.changes(token, calendar, from))
    }

    fn get<'a>(&'a self, token: &'a str, _calendar: &'a str, id: &'a str) -> ProviderFuture<'a, Option<RemoteEvent>> {
        Box::pin(self.fetch(token, id))
    }

    fn create<'a>(
        &'a self,
        token: &'a str,
        calendar: &'a str,
        key: &'a str,
        stamp: &'a str,
        data: &'a AppointmentData,
    ) -> ProviderFuture<'a, RemoteEvent> {
        Box::pin(self.insert(token, calendar, key, stamp, data))
    }

    fn removals_may_be_moves(&self) -> bool {
        true
    }

    fn lists_deleted_occurrences(&self) -> bool {
        false
    }

    fn occurrences<'a>(
        &'a self,
        token: &'a str,
        _calendar: &'a str,
        master: &'a str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> ProviderFuture<'a, Vec<OriginalStart>> {
        Box::pin(self.instances(token, master, from, to))
    }

    fn write_occurrence<'a>(
        &'a self,
        token: &'a str,
        _calendar: &'a str,
        master: &'a str,
        original: OriginalStart,
        stamp: &'a str,
        data: &'a AppointmentData,
    ) -> ProviderFuture<'a, RemoteEvent> {
        Box::pin(self.occurrence(token, master, original, stamp, data))
    }

    fn update<'a>(
        &'a self,
        token: &'a str,
        _calendar: &'a str,
        id: &'a str,
        etag: &'a str,
        data: &'a AppointmentData,
    ) -> ProviderFuture<'a, RemoteEvent> {
        Box::pin(self.replace(token, id, etag, data))
    }

    fn delete<'a>(&'a self, token: &'a str, _calendar: &'a str, id: &'a str, etag: &'a str) -> ProviderFuture<'a, ()> {
        Box::pin(self.remove(token, id, etag))
    }

    fn can_watch(&self) -> bool {
        true
    }

    fn watch<'a>(&'a self, token: &'a str, calendar: &'a str, req: &'a WatchRequest) -> ProviderFuture<'a, Watch> {
        Box::pin(self.subscribe(token, calendar, req))
    }

    fn renew_watch<'a>(
        &'a self,
        token: &'a str,
        remote_id: &'a str,
        until: DateTime<Utc>,
    ) -> ProviderFuture<'a, Option<DateTime<Utc>>> {
        Box::pin(self.extend(token, remote_id, until))
    }

    fn reauthorize_watch<'a>(&'a self, token: &'a str, remote_id: &'a str) -> ProviderFuture<'a, ()> {
        Box::pin(self.reauthorize_subscription(token, remote_id))
    }

    fn unwatch<'a>(&'a self, token: &'a str, _channel_id: &'a str, remote_id: &'a str) -> ProviderFuture<'a, ()> {
        Box::pin(self.unsubscribe(token, remote_id))
    }
}

/// A subscription as Graph answers it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Subscription {
    id: String,
    expiration_date_time: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_zone_names_map_to_iana() {
        assert_eq!(zone_named("W. Europe Standard Time"), Some(Tz::Europe__Berlin));
        assert_eq!(zone_named("Eastern Standard Time"), Some(Tz::America__New_York));
        assert_eq!(zone_named("AUS Eastern Standard Time"), Some(Tz::Australia__Sydney));
        assert_eq!(zone_named("Europe/Paris"), Some(Tz::Europe__Paris));
        assert_eq!(zone_named("tzone://Microsoft/Custom"), None);
    }

    fn guest(email: &str, name: &str, response: ResponseStatus) -> Attendee {
        Attendee { email: email.into(), name: name.into(), response }
    }

    #[test]
    fn an_attendee_list_in_the_body_reads_back_as_attendees() {
        let people = vec![
            guest("ann@x.test", "Ann (Legal)", ResponseStatus::NeedsAction),
            guest("bo@x.test", "", ResponseStatus::Accepted),
        ];
        for description in ["", "Bring the lease", "Two\n\nparagraphs"] {
            let body = with_attendee_list(description, &people);
            assert_eq!(split_attendee_list(&body), (description.to_owned(), people.clone()), "{body}");
            assert_eq!(split_attendee_list(&body.replace('\n', "\r\n")).1, people);
        }
        // Text that only looks like a list heading stays text.
        let odd = format!("Notes\n\n{ATTENDEE_LIST}\nnot a person");
        assert_eq!(split_attendee_list(&odd), (odd.clone(), Vec::new()));
        assert_eq!(split_attendee_list("Plain"), ("Plain".to_owned(), Vec::new()));
    }

    #[test]
    fn attendees_are_invited_only_when_asked() {
        let mut data = AppointmentData::create(calsync_domain::appointment::AppointmentInput {
            title: Some("Intake".into()),
            start: Some("2026-12-01T09:00:00Z".into()),
            end: Some("2026-12-01T10:00:00Z".into()),
            attendees: Some(vec![calsync_domain::appointment::AttendeeInput {
                email: "ann@x.test".into(),
                name: Some("Ann".into()),
                response: None,
            }]),
            ..Default::default()
        })
        .unwrap();
        let quiet = body(&data).unwrap();
        assert_eq!(quiet["attendees"], json!([]));
        let listed = html_to_text(quiet["body"]["content"].as_str().unwrap());
        assert!(listed.ends_with("- Ann <ann@x.test>"), "{listed}");
        data.send_invitations = true;
        let loud = body(&data).unwrap();
        assert_eq!(loud["attendees"][0]["emailAddress"]["address"], "ann@x.test");
        assert_eq!(loud["body"]["content"], "");
        data.organizer = Some("boss@y.test".into());
        let copy = body(&data).unwrap();
        assert_eq!(copy.as_object().unwrap().keys().collect::<Vec<_>>(), ["sensitivity", "showAs"]);
    }
}
