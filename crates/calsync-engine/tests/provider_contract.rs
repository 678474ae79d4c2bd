//! The `CalendarProvider` contract, the same scenario against Google and Graph in the provider
//! sandbox: listing calendars, a full listing to a cursor, idempotent creates, conditional
//! updates and deletes, changes since the cursor, and a dead cursor.

use calsync_domain::appointment::{AppointmentData, AppointmentStatus, Attendee, When};
use calsync_providers::ProviderError;
use calsync_providers::calendar::{CalendarProvider, Change, ListFrom, PageNext, RemoteEvent, Window};
use calsync_providers::google::GoogleApi;
use calsync_providers::google_events::GoogleCalendar;
use calsync_providers::graph_events::GraphCalendar;
use calsync_providers::microsoft::GraphApi;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{Value, json};

struct Sandbox {
    base: String,
    http: reqwest::Client,
}

impl Sandbox {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = calsync_sandbox::SandboxConfig { seed: Some(11), ..Default::default() };
        tokio::spawn(calsync_sandbox::serve(listener, config));
        Sandbox { base, http: calsync_providers::http_client(std::time::Duration::from_secs(10)) }
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let resp = self.http.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    async fn token(&self, provider: &str, email: &str) -> String {
        let v = self.control("/_sandbox/accounts", json!({"provider": provider, "email": email})).await;
        v["access_token"].as_str().unwrap().to_owned()
    }

    fn google(&self) -> GoogleCalendar {
        GoogleCalendar {
            api: GoogleApi {
                calendar_base: format!("{}/google/calendar/v3", self.base).parse().unwrap(),
                userinfo_url: format!("{}/google/oauth2/v3/userinfo", self.base).parse().unwrap(),
            },
            http: self.http.clone(),
        }
    }

    fn graph(&self) -> GraphCalendar {
        GraphCalendar {
            api: GraphApi { base: format!("{}/microsoft/graph/v1.0", self.base).parse().unwrap() },
            http: self.http.clone(),
        }
    }
}

fn appointment(title: &str, day: u32) -> AppointmentData {
    let tz: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    let start: DateTime<Utc> = format!("2026-12-{day:02}T08:00:00Z").parse().unwrap();
    AppointmentData {
        title: title.into(),
        description: "Bring the signed engagement letter.".into(),
        location: "Room 2.14".into(),
        when: When::Timed { start, end: start + Duration::minutes(45) },
        time_zone: tz,
        attendees: vec![],
        status: AppointmentStatus::Confirmed,
        visibility: Default::default(),
        show_as: Default::default(),
        send_invitations: false,
        organizer: None,
        recurrence: Vec::new(),
        series: None,
    }
}

fn window() -> Window {
    Window { start: "2026-11-01T00:00:00Z".parse().unwrap(), end: "2027-02-01T00:00:00Z".parse().unwrap() }
}

/// Follows pages to the end; returns every change in order and the new cursor.
async fn drain(
    p: &dyn CalendarProvider,
    token: &str,
    cal: &str,
    start: ListFrom<'_>,
) -> Result<(Vec<Change>, String), ProviderError> {
    let mut changes = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let from = match start {
            ListFrom::Full { window, .. } => ListFrom::Full { window, page: page.as_deref() },
            ListFrom::Since { cursor, .. } => ListFrom::Since { cursor, page: page.as_deref() },
        };
        let got = p.list_changes(token, cal, from).await?;
        changes.extend(got.changes);
        match got.next {
            PageNext::More(next) => page = Some(next),
            PageNext::Done(cursor) => return Ok((changes, cursor)),
        }
    }
}

fn upserts(changes: &[Change]) -> Vec<&RemoteEvent> {
    changes.iter().filter_map(|c| if let Change::Upsert(e) = c { Some(e.as_ref()) } else { None }).collect()
}

async fn contract(p: &dyn CalendarProvider, token: &str, sandbox: &Sandbox, provider: &str, email: &str) {
    let calendars = p.list_calendars(token).await.unwrap();
    let cal = calendars.iter().find(|c| c.primary).expect("a primary calendar").remote_id.clone();

    // A full listing of the (empty) window ends with a cursor.
    let (before, cursor) = drain(p, token, &cal, ListFrom::Full { window: window(), page: None }).await.unwrap();
    assert!(upserts(&before).is_empty());

    // Creates are idempotent on the key: a retry returns the same event.
    // The stamp (an appointment id) is separate from the key: a fresh key re-creates.
    let key = "0190c2a0-1234-7abc-8def-0123456789ab";
    let stamp = "0190c2a0-aaaa-7abc-8def-0123456789ab";
    let data = appointment("Intake: Meyer", 3);
    let created = p.create(token, &cal, key, stamp, &data).await.unwrap();
    let again = p.create(token, &cal, key, stamp, &data).await.unwrap();
    assert_eq!(again.id, created.id, "{provider}: a retried create made no second event");
    assert_eq!(created.calsync_id.as_deref(), Some(stamp));
    let read = p.get(token, &cal, &created.id).await.unwrap().expect("created");
    let content = read.data.clone().expect("full content");
    assert_eq!((content.title.as_str(), content.location.as_str()), ("Intake: Meyer", "Room 2.14"));
    assert_eq!(content.when, data.when, "{provider}: the instants round-trip");
    assert_eq!(content.description, data.description);
    assert_eq!(read.calsync_id.as_deref(), Some(stamp), "{provider}: our stamp comes back");

    // Conditional update: the current etag wins, the old one is refused.
    let moved = AppointmentData { title: "Intake: Meyer (moved)".into(), ..appointment("x", 4) };
    let updated = p.update(token, &cal, &created.id, &read.etag, &moved).await.unwrap();
    assert_ne!(updated.etag, read.etag);
    let stale = p.update(token, &cal, &created.id, &read.etag, &data).await;
    assert!(matches!(stale, Err(ProviderError::PreconditionFailed)), "{provider}: {stale:?}");

    // Changes since the cursor carry the event once, in its latest state.
    let (changes, cursor2) = drain(p, token, &cal, ListFrom::Since { cursor: &cursor, page: None }).await.unwrap();
    let seen: Vec<_> = upserts(&changes).into_iter().filter(|e| e.id == created.id).collect();
    let last = seen.last().expect("the event is in the changes");
    assert_eq!(last.data.as_ref().unwrap().title, "Intake: Meyer (moved)", "{provider}");

    // An all-day appointment keeps its dates.
    let day = AppointmentData {
        when: When::AllDay {
            start: NaiveDate::from_ymd_opt(2026, 12, 24).unwrap(),
            end: NaiveDate::from_ymd_opt(2026, 12, 25).unwrap(),
        },
        attendees: vec![Attendee {
            email: "client@example.com".into(),
            name: "Client".into(),
            response: Default::default(),
        }],
        ..appointment("Office closed", 24)
    };
    let all_day = p
        .create(token, &cal, "0190c2a0-1234-7abc-8def-0123456789ac", "0190c2a0-1234-7abc-8def-0123456789ac", &day)
        .await
        .unwrap();
    let back = p.get(token, &cal, &all_day.id).await.unwrap().unwrap().data.unwrap();
    assert_eq!(back.when, day.when, "{provider}: all-day dates stay dates");

    // Deletes need the current etag; a second delete of a gone event is fine.
    let current = p.get(token, &cal, &created.id).await.unwrap().unwrap();
    p.delete(token, &cal, &created.id, &current.etag).await.unwrap();
    p.delete(token, &cal, &created.id, &current.etag).await.unwrap();
    assert!(p.get(token, &cal, &created.id).await.unwrap().is_none());
    let (changes, _) = drain(p, token, &cal, ListFrom::Since { cursor: &cursor2, page: None }).await.unwrap();
    assert!(
        changes.iter().any(|c| matches!(c, Change::Deleted { id } if *id == created.id)),
        "{provider}: the deletion shows in the changes: {changes:?}"
    );

    // A dead cursor is typed, so the engine lists in full again.
    sandbox.control("/_sandbox/expire-cursors", json!({"provider": provider, "email": email})).await;
    let dead = drain(p, token, &cal, ListFrom::Since { cursor: &cursor2, page: None }).await;
    assert!(matches!(dead, Err(ProviderError::CursorExpired)), "{provider}: {dead:?}");
}

#[tokio::test]
async fn google_fulfils_the_provider_contract() {
    let sandbox = Sandbox::start().await;
    let token = sandbox.token("google", "ann@gmail.test").await;
    contract(&sandbox.google(), &token, &sandbox, "google", "ann@gmail.test").await;
    // Google was never asked to mail anyone.
    let mail: Value =
        sandbox.http.get(format!("{}/_sandbox/mail", sandbox.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(mail["mail"].as_array().unwrap().len(), 0, "{mail}");
}

#[tokio::test]
async fn graph_fulfils_the_provider_contract() {
    let sandbox = Sandbox::start().await;
    let token = sandbox.token("microsoft", "ann@outlook.test").await;
    contract(&sandbox.graph(), &token, &sandbox, "microsoft", "ann@outlook.test").await;
}

#[tokio::test]
async fn ragged_pages_still_add_up() {
    let sandbox = Sandbox::start().await;
    for (provider, email) in [("google", "rag@gmail.test"), ("microsoft", "rag@outlook.test")] {
        let token = sandbox.token(provider, email).await;
        sandbox.control("/_sandbox/paging", json!({"provider": provider, "mode": "ragged"})).await;
        let p: Box<dyn CalendarProvider> =
            if provider == "google" { Box::new(sandbox.google()) } else { Box::new(sandbox.graph()) };
        let cal = p.list_calendars(&token).await.unwrap().into_iter().find(|c| c.primary).unwrap().remote_id;
        let mut ids = Vec::new();
        for i in 0..30 {
            let key = format!("0190c2a0-0000-7000-8000-{i:012}");
            ids.push(p.create(&token, &cal, &key, &key, &appointment(&format!("e{i}"), 1 + i % 28)).await.unwrap().id);
        }
        let (changes, cursor) =
            drain(p.as_ref(), &token, &cal, ListFrom::Full { window: window(), page: None }).await.unwrap();
        let mut seen: Vec<_> = upserts(&changes).into_iter().map(|e| e.id.clone()).collect();
        seen.sort();
        seen.dedup();
        ids.sort();
        assert_eq!(seen, ids, "{provider}: every event once, whatever the page shapes");
        // Incremental rounds page the same way.
        let mut more = Vec::new();
        for i in 30..45 {
            let key = format!("0190c2a0-0000-7000-8000-{i:012}");
            more.push(p.create(&token, &cal, &key, &key, &appointment(&format!("e{i}"), 1 + i % 28)).await.unwrap().id);
        }
        let (changes, _) =
            drain(p.as_ref(), &token, &cal, ListFrom::Since { cursor: &cursor, page: None }).await.unwrap();
        let mut seen: Vec<_> = upserts(&changes).into_iter().map(|e| e.id.clone()).collect();
        seen.sort();
        seen.dedup();
        more.sort();
        assert_eq!(seen, more, "{provider}: the new events, each once");
    }
}
