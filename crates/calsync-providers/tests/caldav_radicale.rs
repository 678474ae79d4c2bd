//! CalDAV discovery against a real server: Radicale (from PyPI, installed by scripts/test.sh into
//! its virtualenv, `CALSYNC_PYTHON`), started on a free loopback port with a password file.

use calsync_providers::ProviderError;
use calsync_providers::caldav::{DavAuth, discover};
use calsync_testkit::radicale::Radicale;
use std::time::Duration;

const ANN: (&str, &str) = ("ann", "app-specific-1");

fn radicale() -> Radicale {
    Radicale::start(&[ANN])
}

#[tokio::test]
async fn radicale_discovery_finds_the_calendars_and_refuses_a_wrong_password() {
    let server = radicale();
    let http = calsync_providers::http_client(Duration::from_secs(10));
    server.mkcalendar(&http, ANN, "/ann/work/", "Work", "VEVENT").await;
    server.mkcalendar(&http, ANN, "/ann/tasks/", "Tasks", "VTODO").await;

    let auth = DavAuth { username: "ann", password: "app-specific-1" };
    let account = discover(&http, &server.base, &auth).await.unwrap();
    assert_eq!(account.principal.as_str(), format!("{}/ann/", server.base));
    assert_eq!(account.home.as_str(), format!("{}/ann/", server.base));
    let mut cals = account.calendars.clone();
    cals.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(cals.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["Tasks", "Work"]);
    let (tasks, work) = (&cals[0], &cals[1]);
    assert_eq!(work.href.as_str(), format!("{}/ann/work/", server.base));
    assert!(work.events && work.writable && work.sync_collection, "{work:?}");
    assert!(work.sync_token.is_some() && work.ctag.is_some(), "{work:?}");
    assert_eq!(work.color.as_deref(), Some("#0F5AA3FF"));
    assert!(!tasks.events, "a VTODO-only collection holds no events: {tasks:?}");

    // The server's address without a scheme: https is assumed, and this one speaks http only.
    let bare = server.base.trim_start_matches("http://");
    assert!(matches!(discover(&http, bare, &auth).await, Err(ProviderError::Retryable { .. })));

    let wrong = DavAuth { username: "ann", password: "her-main-password" };
    match discover(&http, &server.base, &wrong).await {
        Err(ProviderError::Reauthorize { reason, .. }) => assert!(reason.contains("app-specific password"), "{reason}"),
        other => panic!("a wrong password is refused as such: {other:?}"),
    }
}

fn event(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261201T000000Z\r\n\
         DTSTART:20270104T090000Z\r\nDTEND:20270104T100000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// The calls a sync makes: create with If-None-Match (a retry never makes two), update and
/// delete with If-Match (a stale ETag loses), sync-collection from nothing and from a token
/// (changes and removals), multiget (a missing href is skipped), and a dead token.
#[tokio::test]
async fn radicale_writes_with_preconditions_and_lists_changes_by_sync_token() {
    use calsync_providers::caldav::{Precondition, delete, multiget, put, sync_collection};
    let server = radicale();
    let http = calsync_providers::http_client(Duration::from_secs(10));
    server.mkcalendar(&http, ANN, "/ann/work/", "Work", "VEVENT").await;
    let auth = DavAuth { username: "ann", password: "app-specific-1" };
    let cal = reqwest::Url::parse(&format!("{}/ann/work/", server.base)).unwrap();

    let first = sync_collection(&http, &cal, &auth, None).await.unwrap();
    assert!(first.changed.is_empty() && first.removed.is_empty() && !first.truncated, "{first:?}");

    let a = cal.join("calsync-a.ics").unwrap();
    let b = cal.join("calsync-b.ics").unwrap();
    let etag_a = put(&http, &a, &auth, &event("a@calsync", "A"), Precondition::Create).await.unwrap();
    put(&http, &b, &auth, &event("b@calsync", "B"), Precondition::Create).await.unwrap();
    // The same name again: refused, nothing doubled.
    assert!(matches!(
        put(&http, &a, &auth, &event("a@calsync", "A again"), Precondition::Create).await,
        Err(ProviderError::PreconditionFailed)
    ));

    let listed = sync_collection(&http, &cal, &auth, Some(&first.token)).await.unwrap();
    let mut hrefs: Vec<_> = listed.changed.iter().map(|(h, _)| h.clone()).collect();
    hrefs.sort();
    assert_eq!(hrefs, vec![a.clone(), b.clone()]);
    let etag_a = etag_a.unwrap_or_else(|| listed.changed.iter().find(|(h, _)| *h == a).unwrap().1.clone());

    let got = multiget(&http, &cal, &auth, &[a.clone(), cal.join("gone.ics").unwrap()]).await.unwrap();
    assert_eq!(got.len(), 1, "the missing one is skipped");
    assert_eq!(got[0].1, etag_a);
    assert!(got[0].2.contains("SUMMARY:A"), "{}", got[0].2);

    // An update at the current ETag wins; one at a stale ETag loses.
    let new_etag = put(&http, &a, &auth, &event("a@calsync", "A2"), Precondition::Match(&etag_a)).await.unwrap();
    assert!(matches!(
        put(&http, &a, &auth, &event("a@calsync", "A3"), Precondition::Match(&etag_a)).await,
        Err(ProviderError::PreconditionFailed)
    ));
    let etag_b = listed.changed.iter().find(|(h, _)| *h == b).unwrap().1.clone();
    assert!(matches!(delete(&http, &b, &auth, "\"stale\"").await, Err(ProviderError::PreconditionFailed)));
    delete(&http, &b, &auth, &etag_b).await.unwrap();
    delete(&http, &b, &auth, &etag_b).await.unwrap();

    let next = sync_collection(&http, &cal, &auth, Some(&listed.token)).await.unwrap();
    assert_eq!(next.changed.iter().map(|(h, _)| h.clone()).collect::<Vec<_>>(), vec![a.clone()]);
    if let Some(e) = new_etag {
        assert_eq!(next.changed[0].1, e);
    }
    assert_eq!(next.removed, vec![b.clone()]);
    assert_ne!(next.token, listed.token);

    assert!(matches!(
        sync_collection(&http, &cal, &auth, Some("http://radicale.org/ns/sync/not-a-token")).await,
        Err(ProviderError::CursorExpired)
    ));
    let wrong = DavAuth { username: "ann", password: "nope" };
    assert!(matches!(sync_collection(&http, &cal, &wrong, None).await, Err(ProviderError::Reauthorize { .. })));

    // A series as calsync writes it (master, an override, a cancelled occurrence, its zone) is
    // taken by the server as valid calendar data and reads back the same.
    use calsync_domain::appointment::{AppointmentData, AppointmentInput};
    use calsync_domain::recurrence::OriginalStart;
    use calsync_providers::ics::{IcsEvent, parse_resource, resource};
    let data = |title: &str, start: &str, end: &str| {
        AppointmentData::create(AppointmentInput {
            title: Some(title.into()),
            start: Some(start.into()),
            end: Some(end.into()),
            time_zone: Some("America/New_York".into()),
            ..Default::default()
        })
        .unwrap()
    };
    let ev = |d: AppointmentData| IcsEvent {
        uid: "s@calsync".into(),
        calsync_id: "appt-1".into(),
        data: d,
        sequence: 1,
        last_modified: chrono::Utc::now(),
        recurrence_id: None,
        cancelled: Vec::new(),
    };
    let mut master = ev(data("1:1", "2027-03-01T09:00:00-05:00", "2027-03-01T09:30:00-05:00"));
    master.data.recurrence = vec!["RRULE:FREQ=WEEKLY;COUNT=4".into()];
    master.cancelled = vec![OriginalStart::At("2027-03-22T13:00:00Z".parse().unwrap())];
    let mut moved = ev(data("1:1 (moved)", "2027-03-15T11:00:00-04:00", "2027-03-15T11:30:00-04:00"));
    moved.recurrence_id =
        Some((OriginalStart::At("2027-03-15T13:00:00Z".parse().unwrap()), chrono_tz::America::New_York));
    let ics = resource(&master, &[moved], chrono::Utc::now()).unwrap();
    let s_href = cal.join("calsync-s.ics").unwrap();
    put(&http, &s_href, &auth, &ics, Precondition::Create).await.unwrap();
    let back = multiget(&http, &cal, &auth, std::slice::from_ref(&s_href)).await.unwrap();
    let r = parse_resource(&back[0].2, None).unwrap();
    let m = r.master.unwrap();
    assert_eq!((m.input.title.as_deref(), m.calsync_id.as_deref()), (Some("1:1"), Some("appt-1")));
    assert_eq!(m.input.time_zone.as_deref(), Some("America/New_York"));
    assert_eq!(
        m.input.recurrence,
        Some(vec!["RRULE:FREQ=WEEKLY;COUNT=4".to_owned(), "EXDATE:20270322T130000Z".to_owned()])
    );
    assert_eq!(r.overrides.len(), 1);
    assert_eq!(r.overrides[0].input.start.as_deref(), Some("2027-03-15T15:00:00+00:00"));
}
