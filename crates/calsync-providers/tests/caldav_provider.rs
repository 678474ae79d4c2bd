//! The engine's `CalendarProvider` contract for CalDAV, against a real Radicale: a full listing
//! to a cursor, idempotent creates, conditional updates and deletes, changes since the cursor,
//! an all-day event, a recurring series with a moved and a cancelled occurrence written by
//! calsync and by a calendar app, a dead sync token and a revoked password.

use calsync_domain::appointment::{AppointmentData, AppointmentInput, AppointmentStatus, When};
use calsync_domain::recurrence::OriginalStart;
use calsync_providers::ProviderError;
use calsync_providers::caldav::{DavAuth, DavCredentials, discover};
use calsync_providers::caldav_events::CalDavCalendar;
use calsync_providers::calendar::{CalendarProvider, Change, ListFrom, PageNext, RemoteEvent, Window};
use calsync_testkit::radicale::Radicale;
use std::time::Duration;

const ANN: (&str, &str) = ("ann", "app-specific-1");

fn data(title: &str, start: &str, end: &str, all_day: bool) -> AppointmentData {
    AppointmentData::create(AppointmentInput {
        title: Some(title.into()),
        start: Some(start.into()),
        end: Some(end.into()),
        time_zone: Some("Europe/Berlin".into()),
        all_day: Some(all_day),
        description: Some("Bring the signed engagement letter.".into()),
        location: Some("Room 2.14".into()),
        ..Default::default()
    })
    .unwrap()
}

fn window() -> Window {
    Window { start: "2026-11-01T00:00:00Z".parse().unwrap(), end: "2027-02-01T00:00:00Z".parse().unwrap() }
}

async fn drain(
    p: &dyn CalendarProvider,
    token: &str,
    cal: &str,
    start: ListFrom<'_>,
) -> Result<(Vec<Change>, String), ProviderError> {
    let got = p.list_changes(token, cal, start).await?;
    match got.next {
        PageNext::Done(c) => Ok((got.changes, c)),
        PageNext::More(_) => panic!("CalDAV listings come in one page"),
    }
}

fn upserts(changes: &[Change]) -> Vec<&RemoteEvent> {
    changes.iter().filter_map(|c| if let Change::Upsert(e) = c { Some(e.as_ref()) } else { None }).collect()
}

/// Ann's sign-in at the server (or proxy) at `base`, as a connection keeps it.
async fn sign_in(http: &reqwest::Client, base: &str) -> String {
    let account = discover(http, base, &DavAuth { username: ANN.0, password: ANN.1 }).await.unwrap();
    DavCredentials::of(&account, ANN.0, ANN.1).token()
}

struct Setup {
    server: Radicale,
    http: reqwest::Client,
    token: String,
    cal: String,
    provider: CalDavCalendar,
}

async fn setup() -> Setup {
    let server = Radicale::start(&[ANN]);
    let http = calsync_providers::http_client(Duration::from_secs(10));
    server.mkcalendar(&http, ANN, "/ann/work/", "Work", "VEVENT").await;
    let token = sign_in(&http, &server.base).await;
    let provider = CalDavCalendar::new(http.clone());
    let cals = provider.list_calendars(&token).await.unwrap();
    assert_eq!(cals.len(), 1, "{cals:?}");
    assert!(cals[0].primary && cals[0].can_write);
    let cal = cals[0].remote_id.clone();
    Setup { server, http, token, cal, provider }
}

#[tokio::test]
async fn caldav_fulfils_the_provider_contract() {
    let Setup { server, token, cal, provider: p, .. } = setup().await;
    let (before, cursor) = drain(&p, &token, &cal, ListFrom::Full { window: window(), page: None }).await.unwrap();
    assert!(before.is_empty(), "{before:?}");
    assert!(cursor.starts_with("sync:"), "Radicale answers sync-collection: {cursor}");

    let key = "0190c2a0-1234-7abc-8def-0123456789ab";
    let stamp = "0190c2a0-aaaa-7abc-8def-0123456789ab";
    let d = data("Intake: Meyer", "2026-12-03T09:00:00+01:00", "2026-12-03T09:45:00+01:00", false);
    let created = p.create(&token, &cal, key, stamp, &d).await.unwrap();
    let again = p.create(&token, &cal, key, stamp, &d).await.unwrap();
    assert_eq!(again.id, created.id, "a retried create made no second event");
    assert_eq!(again.etag, created.etag);
    assert_eq!(server.list(&calsync_providers::http_client(Duration::from_secs(5)), ANN, "/ann/work/").await.len(), 1);
    assert_eq!(created.calsync_id.as_deref(), Some(stamp));
    let read = p.get(&token, &cal, &created.id).await.unwrap().expect("created");
    assert_eq!(read.etag, created.etag, "the version is the content, whatever the server's ETag");
    let content = read.data.clone().unwrap();
    assert_eq!((content.title.as_str(), content.location.as_str()), ("Intake: Meyer", "Room 2.14"));
    assert_eq!((content.when, content.time_zone), (d.when, d.time_zone));
    assert_eq!(content.description, d.description);

    let moved = data("Intake: Meyer (moved)", "2026-12-04T09:00:00+01:00", "2026-12-04T09:45:00+01:00", false);
    let updated = p.update(&token, &cal, &created.id, &read.etag, &moved).await.unwrap();
    assert_ne!(updated.etag, read.etag);
    assert!(matches!(
        p.update(&token, &cal, &created.id, &read.etag, &d).await,
        Err(ProviderError::PreconditionFailed)
    ));

    let (changes, cursor2) = drain(&p, &token, &cal, ListFrom::Since { cursor: &cursor, page: None }).await.unwrap();
    let seen = upserts(&changes);
    assert_eq!(seen.len(), 1, "{changes:?}");
    assert_eq!(seen[0].data.as_ref().unwrap().title, "Intake: Meyer (moved)");
    assert_eq!(seen[0].etag, updated.etag, "our own write comes back at the version it was written at");

    let day = data("Office closed", "2026-12-24", "2026-12-25", true);
    let all_day = p.create(&token, &cal, "0190c2a0-1234-7abc-8def-0123456789ac", stamp, &day).await.unwrap();
    let back = p.get(&token, &cal, &all_day.id).await.unwrap().unwrap().data.unwrap();
    assert_eq!(back.when, day.when, "all-day dates stay dates");

    let current = p.get(&token, &cal, &created.id).await.unwrap().unwrap();
    assert!(matches!(p.delete(&token, &cal, &created.id, &read.etag).await, Err(ProviderError::PreconditionFailed)));
    p.delete(&token, &cal, &created.id, &current.etag).await.unwrap();
    p.delete(&token, &cal, &created.id, &current.etag).await.unwrap();
    assert!(p.get(&token, &cal, &created.id).await.unwrap().is_none());
    let (changes, _) = drain(&p, &token, &cal, ListFrom::Since { cursor: &cursor2, page: None }).await.unwrap();
    assert!(changes.iter().any(|c| matches!(c, Change::Deleted { id } if *id == created.id)), "{changes:?}");

    let dead =
        drain(&p, &token, &cal, ListFrom::Since { cursor: "sync:http://radicale.org/ns/sync/0", page: None }).await;
    assert!(matches!(dead, Err(ProviderError::CursorExpired)), "{dead:?}");

    // A revoked app password: a typed refusal the engine turns into "revoked".
    server.set_users(&[("ann", "a-new-app-password")]);
    match p.list_changes(&token, &cal, ListFrom::Full { window: window(), page: None }).await {
        Err(ProviderError::Reauthorize { kind: calsync_providers::ReauthKind::Revoked, .. }) => {}
        other => panic!("{other:?}"),
    }
}

fn at(s: &str) -> OriginalStart {
    OriginalStart::At(s.parse().unwrap())
}

#[tokio::test]
async fn a_series_is_one_resource_both_ways() {
    let Setup { server, http, token, cal, provider: p } = setup().await;
    let (_, cursor) = drain(&p, &token, &cal, ListFrom::Full { window: window(), page: None }).await.unwrap();
    let mut series = data("Stand-up", "2026-12-07T09:00:00+01:00", "2026-12-07T09:15:00+01:00", false);
    series.recurrence = vec!["RRULE:FREQ=DAILY;COUNT=5".into()];
    let stamp = "0190c2a0-5555-7abc-8def-0123456789ab";
    let master = p.create(&token, &cal, stamp, stamp, &series).await.unwrap();

    // calsync moves the second occurrence and cancels the third.
    let moved = data("Stand-up (late)", "2026-12-08T10:00:00+01:00", "2026-12-08T10:15:00+01:00", false);
    let second = at("2026-12-08T08:00:00Z");
    let x = p.write_occurrence(&token, &cal, &master.id, second, "x-1", &moved).await.unwrap();
    assert_eq!(x.id, format!("{}#20261208T080000Z", master.id));
    assert_eq!(x.calsync_id.as_deref(), Some("x-1"));
    let cancelled = AppointmentData { status: AppointmentStatus::Cancelled, ..moved.clone() };
    let third = at("2026-12-09T08:00:00Z");
    p.write_occurrence(&token, &cal, &master.id, third, "x-2", &cancelled).await.unwrap();
    // An occurrence the rule does not make is refused.
    let nowhere = p.write_occurrence(&token, &cal, &master.id, at("2026-12-09T09:00:00Z"), "x-3", &moved).await;
    assert!(matches!(nowhere, Err(ProviderError::NotFound)), "{nowhere:?}");

    let paths = server.list(&http, ANN, "/ann/work/").await;
    assert_eq!(paths.len(), 1, "one resource for the series: {paths:?}");
    let text = server.get(&http, ANN, &paths[0]).await.unwrap().replace("\r\n ", "");
    assert!(text.contains("RECURRENCE-ID;TZID=Europe/Berlin:20261208T090000"), "{text}");
    assert!(text.contains("EXDATE;TZID=Europe/Berlin:20261209T090000"), "{text}");
    assert!(text.contains("BEGIN:VTIMEZONE"), "{text}");
    assert_eq!(text.matches("BEGIN:VEVENT").count(), 2, "{text}");

    let (changes, cursor2) = drain(&p, &token, &cal, ListFrom::Since { cursor: &cursor, page: None }).await.unwrap();
    let ups = upserts(&changes);
    assert_eq!(ups.len(), 2, "{changes:?}");
    assert_eq!(ups[0].etag, master.etag, "writing occurrences leaves the master's version alone");
    assert_eq!(ups[1].data.as_ref().unwrap().title, "Stand-up (late)");
    assert!(changes.iter().any(|c| matches!(c, Change::OccurrenceCancelled { original_start, master: m, .. }
        if *original_start == third && *m == master.id)));

    // A calendar app edits the series: the fourth occurrence moved, the fifth deleted, an
    // alarm added; it copies the master's properties (calsync's stamp among them) into the
    // occurrence it edits.
    let app = text
        .replace(
            "END:VEVENT\r\nEND:VCALENDAR",
            "END:VEVENT\r\nBEGIN:VEVENT\r\nUID:0190c2a0-5555-7abc-8def-0123456789ab\r\nDTSTAMP:20261201T000000Z\r\n\
             RECURRENCE-ID;TZID=Europe/Berlin:20261210T090000\r\nDTSTART;TZID=Europe/Berlin:20261210T140000\r\n\
             DTEND;TZID=Europe/Berlin:20261210T141500\r\nSUMMARY:Stand-up\r\nX-CALSYNC-ID:0190c2a0-5555-7abc-8def-0123456789ab\r\n\
             END:VEVENT\r\nEND:VCALENDAR",
        )
        .replacen(
            "EXDATE;TZID=Europe/Berlin:20261209T090000",
            "EXDATE;TZID=Europe/Berlin:20261209T090000,20261211T090000\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\n\
             DESCRIPTION:Stand-up\r\nTRIGGER:-PT5M\r\nEND:VALARM",
            1,
        );
    assert_eq!(server.put(&http, ANN, &paths[0], &app).await, 204, "{app}");
    let (changes, _) = drain(&p, &token, &cal, ListFrom::Since { cursor: &cursor2, page: None }).await.unwrap();
    let fourth = upserts(&changes).into_iter().find(|e| e.original_start == Some(at("2026-12-10T08:00:00Z"))).cloned();
    let fourth = fourth.unwrap_or_else(|| panic!("{changes:?}"));
    assert_eq!(fourth.calsync_id, None, "the master's stamp on an occurrence is not calsync's");
    assert_eq!(
        fourth.data.as_ref().unwrap().when,
        When::Timed { start: "2026-12-10T13:00:00Z".parse().unwrap(), end: "2026-12-10T13:15:00Z".parse().unwrap() }
    );
    let cancels: Vec<OriginalStart> = changes
        .iter()
        .filter_map(|c| {
            if let Change::OccurrenceCancelled { original_start, .. } = c { Some(*original_start) } else { None }
        })
        .collect();
    assert_eq!(cancels, vec![third, at("2026-12-11T08:00:00Z")]);

    // calsync retitles the series: the app's override, its alarm and both cancellations stay.
    let m = p.get(&token, &cal, &master.id).await.unwrap().unwrap();
    let retitled = AppointmentData { title: "Daily stand-up".into(), ..series.clone() };
    p.update(&token, &cal, &master.id, &m.etag, &retitled).await.unwrap();
    let text = server.get(&http, ANN, &paths[0]).await.unwrap().replace("\r\n ", "");
    assert!(text.contains("SUMMARY:Daily stand-up") && text.contains("TRIGGER:-PT5M"), "{text}");
    assert!(text.contains("RECURRENCE-ID;TZID=Europe/Berlin:20261210T090000"), "{text}");
    assert_eq!(text.matches("BEGIN:VEVENT").count(), 3, "{text}");
    let m = p.get(&token, &cal, &master.id).await.unwrap().unwrap();
    assert_eq!(m.data.unwrap().title, "Daily stand-up");

    // Deleting calsync's override cancels that occurrence; the series stays.
    p.delete(&token, &cal, &x.id, &x.etag).await.unwrap();
    assert!(p.get(&token, &cal, &x.id).await.unwrap().is_none());
    assert!(p.get(&token, &cal, &master.id).await.unwrap().is_some());
    let listed = p.list_changes(&token, &cal, ListFrom::Full { window: window(), page: None }).await.unwrap();
    let cancels = listed.changes.iter().filter(|c| matches!(c, Change::OccurrenceCancelled { .. })).count();
    assert_eq!(cancels, 3, "{:?}", listed.changes);

    // The app's override of the fourth goes (the occurrence back to the rule): reading that
    // occurrence gives the rule's version, not "gone".
    let text = server.get(&http, ANN, &paths[0]).await.unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    let begin = lines.iter().position(|l| l.starts_with("RECURRENCE-ID;TZID=Europe/Berlin:20261210")).unwrap();
    let start = lines[..begin].iter().rposition(|l| *l == "BEGIN:VEVENT").unwrap();
    let end = start + lines[start..].iter().position(|l| *l == "END:VEVENT").unwrap();
    let reverted: Vec<&str> = lines[..start].iter().chain(&lines[end + 1..]).copied().collect();
    assert_eq!(server.put(&http, ANN, &paths[0], &reverted.join("\r\n")).await, 204);
    let back = p.get(&token, &cal, &fourth.id).await.unwrap().expect("the rule's occurrence");
    assert_eq!(back.data.as_ref().unwrap().title, "Daily stand-up");
    assert_eq!(back.original_start, Some(at("2026-12-10T08:00:00Z")));
    let since = p.list_changes(&token, &cal, ListFrom::Since { cursor: &cursor2, page: None }).await.unwrap();
    assert!(
        since.changes.iter().any(|c| matches!(c, Change::Deleted { id } if *id == fourth.id)),
        "an exception gone there is told, for the engine to read it again: {:?}",
        since.changes
    );
    // Written again from here: a new override, at the rule occurrence's version.
    let again = AppointmentData { title: "Stand-up (again)".into(), ..back.data.clone().unwrap() };
    assert!(matches!(
        p.update(&token, &cal, &fourth.id, &fourth.etag, &again).await,
        Err(ProviderError::PreconditionFailed)
    ));
    let rewritten = p.update(&token, &cal, &fourth.id, &back.etag, &again).await.unwrap();
    assert_eq!(
        (rewritten.id.as_str(), rewritten.data.unwrap().title.as_str()),
        (fourth.id.as_str(), "Stand-up (again)")
    );
    let x4 = p.get(&token, &cal, &fourth.id).await.unwrap().unwrap();
    p.delete(&token, &cal, &fourth.id, &x4.etag).await.unwrap();
    let restored = AppointmentData { title: "Stand-up (restored)".into(), ..again };
    let un = p.update(&token, &cal, &fourth.id, "cancelled", &restored).await.unwrap();
    assert_eq!(un.data.unwrap().title, "Stand-up (restored)", "a cancelled occurrence written again is back");
    let x4 = p.get(&token, &cal, &fourth.id).await.unwrap().unwrap();
    p.delete(&token, &cal, &fourth.id, &x4.etag).await.unwrap();

    // The series moved an hour later here: cancellations of starts the rule no longer makes go
    // with the old times.
    let m = p.get(&token, &cal, &master.id).await.unwrap().unwrap();
    let later = AppointmentData {
        when: When::Timed {
            start: "2026-12-07T09:00:00Z".parse().unwrap(),
            end: "2026-12-07T09:15:00Z".parse().unwrap(),
        },
        ..retitled
    };
    p.update(&token, &cal, &master.id, &m.etag, &later).await.unwrap();
    let text = server.get(&http, ANN, &paths[0]).await.unwrap();
    assert_eq!(text.matches("BEGIN:VEVENT").count(), 1, "{text}");
    assert!(!text.contains("EXDATE"), "{text}");
    assert!(text.contains("TRIGGER:-PT5M"), "the alarm stays: {text}");

    // An override again, then the series made a single event here: the override goes with the
    // rule instead of standing alone as a stray event.
    let m = p.get(&token, &cal, &master.id).await.unwrap().unwrap();
    let first = at("2026-12-07T09:00:00Z");
    p.write_occurrence(&token, &cal, &master.id, first, "x-9", &moved).await.unwrap();
    let single = AppointmentData { recurrence: Vec::new(), ..m.data.clone().unwrap() };
    let m = p.get(&token, &cal, &master.id).await.unwrap().unwrap();
    p.update(&token, &cal, &master.id, &m.etag, &single).await.unwrap();
    let text = server.get(&http, ANN, &paths[0]).await.unwrap();
    assert_eq!(text.matches("BEGIN:VEVENT").count(), 1, "{text}");
    let event = &text[text.find("BEGIN:VEVENT").unwrap()..];
    assert!(!event.contains("RRULE") && !event.contains("RECURRENCE-ID"), "{text}");
}

/// Who is invited, as a calendar app wrote it (roles, RSVP, the organizer), survives calsync's
/// rewrites that do not change the guests.
#[tokio::test]
async fn guests_written_elsewhere_survive_rewrites() {
    let Setup { server, http, token, cal, provider: p } = setup().await;
    let ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example//App//EN\r\nBEGIN:VEVENT\r\nUID:inv-1\r\n\
               DTSTAMP:20261201T000000Z\r\nDTSTART:20261203T090000Z\r\nDTEND:20261203T100000Z\r\nSUMMARY:Review\r\n\
               ORGANIZER;CN=Ann:mailto:ann@example.com\r\n\
               ATTENDEE;CN=Bob;ROLE=REQ-PARTICIPANT;RSVP=TRUE;PARTSTAT=ACCEPTED:mailto:bob@example.com\r\n\
               END:VEVENT\r\nEND:VCALENDAR\r\n";
    assert_eq!(server.put(&http, ANN, "/ann/work/inv.ics", ics).await, 201);
    let e = p.get(&token, &cal, "/ann/work/inv.ics").await.unwrap().unwrap();
    let d = e.data.clone().unwrap();
    assert_eq!(d.attendees.len(), 1);
    assert_eq!((d.attendees[0].email.as_str(), d.attendees[0].name.as_str()), ("bob@example.com", "Bob"));
    let retitled = AppointmentData { title: "Review (room 3)".into(), ..d.clone() };
    p.update(&token, &cal, &e.id, &e.etag, &retitled).await.unwrap();
    let text = server.get(&http, ANN, "/ann/work/inv.ics").await.unwrap().replace("\r\n ", "");
    assert!(text.contains("ROLE=REQ-PARTICIPANT") && text.contains("RSVP=TRUE"), "{text}");
    assert!(text.contains("ORGANIZER;CN=Ann:mailto:ann@example.com"), "{text}");
    assert!(!text.contains("SCHEDULE-AGENT"), "calsync did not rewrite the guests: {text}");
    // A guest added in calsync: now calsync writes the guests, unmailed.
    let mut more = retitled.clone();
    more.attendees.push(calsync_domain::appointment::Attendee {
        email: "carol@example.com".into(),
        name: "Carol".into(),
        response: Default::default(),
    });
    let now = p.get(&token, &cal, &e.id).await.unwrap().unwrap();
    p.update(&token, &cal, &e.id, &now.etag, &more).await.unwrap();
    let text = server.get(&http, ANN, "/ann/work/inv.ics").await.unwrap().replace("\r\n ", "");
    assert!(text.contains("mailto:carol@example.com") && text.contains("SCHEDULE-AGENT=CLIENT"), "{text}");
    assert_eq!(text.matches("mailto:bob@example.com").count(), 1, "{text}");
}

/// How the proxy in front of Radicale changes what servers say.
#[derive(Clone, Copy)]
enum Quirk {
    /// Refuses `sync-collection` (403 `supported-report`), as servers without RFC 6578 do.
    NoSyncCollection,
    /// Answers `PUT` without an ETag (a server that changed the object while storing it) and
    /// `GET` with a weak one (a compressing proxy).
    NoPutEtagWeakGetEtag,
}

/// A proxy in front of Radicale with `quirk`; everything else passes through.
async fn proxy(upstream: String, quirk: Quirk) -> String {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, Response, StatusCode};
    let http = calsync_providers::http_client(Duration::from_secs(10));
    let handler = move |req: Request<Body>| {
        let (http, upstream) = (http.clone(), upstream.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body = to_bytes(body, 1 << 24).await.unwrap();
            let sync_report =
                parts.method.as_str() == "REPORT" && String::from_utf8_lossy(&body).contains("sync-collection");
            if matches!(quirk, Quirk::NoSyncCollection) && sync_report {
                return Response::builder()
                    .status(StatusCode::FORBIDDEN)
                    .body(Body::from(r#"<?xml version="1.0"?><d:error xmlns:d="DAV:"><d:supported-report/></d:error>"#))
                    .unwrap();
            }
            let url = format!("{upstream}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
            let mut rb = http.request(parts.method.clone(), url).body(body.to_vec());
            for (k, v) in &parts.headers {
                if k != "host" && k != "content-length" {
                    rb = rb.header(k, v);
                }
            }
            let resp = rb.send().await.unwrap();
            let mut out = Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                if k == "etag" && matches!(quirk, Quirk::NoPutEtagWeakGetEtag) {
                    match parts.method.as_str() {
                        "PUT" => continue,
                        "GET" => {
                            out = out.header(k, format!("W/{}", v.to_str().unwrap()));
                            continue;
                        }
                        _ => {}
                    }
                }
                if k != "content-length" && k != "transfer-encoding" {
                    out = out.header(k, v);
                }
            }
            out.body(Body::from(resp.bytes().await.unwrap())).unwrap()
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(handler)).await.unwrap() });
    base
}

#[tokio::test]
async fn servers_without_sync_collection_are_listed_by_ctag_and_etags() {
    let server = Radicale::start(&[ANN]);
    let http = calsync_providers::http_client(Duration::from_secs(10));
    server.mkcalendar(&http, ANN, "/ann/work/", "Work", "VEVENT").await;
    let proxy = proxy(server.base.clone(), Quirk::NoSyncCollection).await;
    let token = sign_in(&http, &proxy).await;
    let p = CalDavCalendar::new(http.clone());
    let cal = p.list_calendars(&token).await.unwrap().remove(0).remote_id;
    assert!(cal.starts_with(&proxy), "{cal}");
    let d = data("Intake: Meyer", "2026-12-03T09:00:00+01:00", "2026-12-03T09:45:00+01:00", false);
    let created = p.create(&token, &cal, "k-1", "s-1", &d).await.unwrap();

    let (changes, cursor) = drain(&p, &token, &cal, ListFrom::Full { window: window(), page: None }).await.unwrap();
    assert!(cursor.starts_with("ctag:"), "{cursor}");
    assert_eq!(upserts(&changes).iter().map(|e| e.id.clone()).collect::<Vec<_>>(), vec![created.id.clone()]);
    // Nothing changed: the ctag says so, and nothing is read.
    let (changes, same) = drain(&p, &token, &cal, ListFrom::Since { cursor: &cursor, page: None }).await.unwrap();
    assert!(changes.is_empty() && same == cursor, "{changes:?} {same}");
    // A change (here a deletion by another client) changes the ctag: list in full again.
    assert!(matches!(server.delete(&http, ANN, &created.id).await, 200 | 204));
    let again = drain(&p, &token, &cal, ListFrom::Since { cursor: &cursor, page: None }).await;
    assert!(matches!(again, Err(ProviderError::CursorExpired)), "{again:?}");
    let (changes, next) = drain(&p, &token, &cal, ListFrom::Full { window: window(), page: None }).await.unwrap();
    assert!(changes.is_empty() && next != cursor, "{changes:?}");
}

/// A `PUT` answered without an ETag is read back, and a weak ETag from `GET` is replaced by the
/// strong one before any `If-Match`: writes go through instead of failing their precondition.
#[tokio::test]
async fn missing_and_weak_etags_do_not_stop_writes() {
    let server = Radicale::start(&[ANN]);
    let http = calsync_providers::http_client(Duration::from_secs(10));
    server.mkcalendar(&http, ANN, "/ann/work/", "Work", "VEVENT").await;
    let proxy = proxy(server.base.clone(), Quirk::NoPutEtagWeakGetEtag).await;
    let token = sign_in(&http, &proxy).await;
    let p = CalDavCalendar::new(http.clone());
    let cal = p.list_calendars(&token).await.unwrap().remove(0).remote_id;
    let d = data("Intake: Meyer", "2026-12-03T09:00:00+01:00", "2026-12-03T09:45:00+01:00", false);
    let created = p.create(&token, &cal, "k-1", "s-1", &d).await.unwrap();
    assert_eq!(created.calsync_id.as_deref(), Some("s-1"));
    let moved = AppointmentData { title: "Intake: Meyer (moved)".into(), ..d.clone() };
    let updated = p.update(&token, &cal, &created.id, &created.etag, &moved).await.unwrap();
    assert_eq!(updated.data.unwrap().title, "Intake: Meyer (moved)");
    p.delete(&token, &cal, &created.id, &updated.etag).await.unwrap();
    assert!(p.get(&token, &cal, &created.id).await.unwrap().is_none());
}
