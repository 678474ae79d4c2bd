//! The sync engine's storage on SQLite and PostgreSQL: event links with their base, the outbox of
//! provider writes and the attempt log; all strictly per firm.

use calsync_domain::account::{Email, FirmSlug};
use calsync_domain::appointment::{AppointmentData, AppointmentInput};
use calsync_domain::connection::Provider;
use calsync_domain::ids::{AppointmentId, ConnectionId, EventLinkId, SyncedCalendarId};
use calsync_domain::sync::{AttemptStatus, Base, LinkState, SyncTrigger, WriteOperation};
use calsync_domain::tenant::Role;
use calsync_store::crypto::Keyring;
use calsync_store::{AttemptCounts, CalendarInfo, Connection, Db, LinkWrite, NewGrant, NewUser, StoreError, User};
use calsync_testkit::{Backend, TestDb, backend_tests};
use chrono::{Duration, Utc};

async fn user(db: &Db, slug: &str, email: &str) -> User {
    let firm = db.create_firm("Firm", &FirmSlug::parse(slug).unwrap()).await.unwrap();
    db.create_user(NewUser {
        firm_id: firm.id,
        email: Email::parse(email).unwrap(),
        name: "U".into(),
        role: Role::Staff,
        password_hash: "h".into(),
    })
    .await
    .unwrap()
}

async fn connected(db: &Db, u: &User) -> Connection {
    let k = Keyring::parse(&Keyring::generate_spec("k1")).unwrap();
    let grant = NewGrant {
        firm_id: u.firm_id,
        user_id: u.id,
        provider: Provider::Google,
        account_id: format!("sub-{}", u.id),
        account_email: "ann@gmail.test".into(),
        access_token: "a".into(),
        refresh_token: Some("r".into()),
        expires_at: Some(Utc::now() + Duration::hours(1)),
        scopes: vec![],
    };
    let cal = CalendarInfo {
        remote_id: "primary".into(),
        name: "Main".into(),
        is_primary: true,
        can_write: true,
        time_zone: None,
        color: None,
    };
    db.save_grant(&k, &grant, &[cal]).await.unwrap()
}

fn data(title: &str) -> AppointmentData {
    AppointmentData::create(AppointmentInput {
        title: Some(title.into()),
        start: Some("2026-12-01T09:00:00+01:00".into()),
        end: Some("2026-12-01T10:00:00+01:00".into()),
        ..Default::default()
    })
    .unwrap()
}

fn base(version: i64, etag: &str) -> Base {
    Base {
        local_version: version,
        local_hash: format!("L{version}"),
        remote_etag: etag.into(),
        remote_hash: format!("R{etag}"),
    }
}

fn write(
    (connection_id, calendar_id, appointment_id): (ConnectionId, SyncedCalendarId, AppointmentId),
    base: &Base,
    state: LinkState,
) -> LinkWrite<'_> {
    LinkWrite {
        connection_id,
        calendar_id,
        appointment_id,
        remote_id: "evt1",
        base,
        remote_updated_at: Some(Utc::now()),
        series_remote_id: None,
        original_start: None,
        state,
        last_error: None,
        base_data: None,
    }
}

async fn links_keep_the_base_per_remote_event(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let conn = connected(db, &ann).await;
    let cal = db.calendars(ann.firm_id, conn.id).await.unwrap().remove(0);
    let appt = db.insert_appointment(ann.firm_id, ann.id, data("Intake")).await.unwrap();
    let ids = (conn.id, cal.id, appt.id);
    let first = db.save_link(ann.firm_id, &write(ids, &base(1, "e1"), LinkState::Synced)).await.unwrap();
    assert_eq!((first.remote_id.as_str(), first.base.clone()), ("evt1", base(1, "e1")));
    // Saving again for the same remote event replaces the base, keeping the link.
    let second = db.save_link(ann.firm_id, &write(ids, &base(2, "e2"), LinkState::Synced)).await.unwrap();
    assert_eq!((second.id, second.base.clone()), (first.id, base(2, "e2")));
    let found = db.link_by_remote(ann.firm_id, cal.id, "evt1").await.unwrap().unwrap();
    assert_eq!(found, second);
    assert!(db.link_by_remote(ann.firm_id, cal.id, "other").await.unwrap().is_none());
    assert_eq!(db.links(ann.firm_id, cal.id).await.unwrap(), vec![second.clone()]);

    // One appointment links once per calendar: a second remote event for it is refused.
    let other_base = base(2, "e3");
    let dup = LinkWrite { remote_id: "evt2", ..write(ids, &other_base, LinkState::Synced) };
    assert!(matches!(db.save_link(ann.firm_id, &dup).await, Err(StoreError::Duplicate(_))));

    // Another firm can neither see nor write these links.
    let eve = user(db, "globex", "eve@globex.test").await;
    assert!(db.link_by_remote(eve.firm_id, cal.id, "evt1").await.unwrap().is_none());
    assert!(db.links(eve.firm_id, cal.id).await.unwrap().is_empty());
    assert!(matches!(
        db.save_link(eve.firm_id, &write(ids, &base(9, "x"), LinkState::Synced)).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(db.delete_link(eve.firm_id, second.id).await, Err(StoreError::NotFound)));

    db.delete_link(ann.firm_id, second.id).await.unwrap();
    assert!(db.links(ann.firm_id, cal.id).await.unwrap().is_empty());
    assert!(matches!(db.delete_link(ann.firm_id, EventLinkId::new()).await, Err(StoreError::NotFound)));
}

async fn attempts_are_logged_once_and_listed_newest_first(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let conn = connected(db, &ann).await;
    let first = db.start_attempt(ann.firm_id, conn.id, SyncTrigger::Manual, None).await.unwrap();
    assert_eq!((first.status, first.finished_at), (AttemptStatus::Running, None));
    let counts = AttemptCounts { pulled_created: 3, pushed_updated: 1, requests: 4, ..Default::default() };
    let notes = vec!["tzone://Microsoft/Custom is not a zone calsync can map: read as UTC".to_owned()];
    let done = db.finish_attempt(ann.firm_id, first.id, AttemptStatus::Success, &counts, None, &notes).await.unwrap();
    assert_eq!((done.status, done.counts.clone()), (AttemptStatus::Success, counts));
    assert_eq!(done.notes, notes, "notes are kept with the attempt");
    assert!(done.finished_at.is_some());
    // A finished attempt is not rewritten.
    let again =
        db.finish_attempt(ann.firm_id, first.id, AttemptStatus::Failed, &AttemptCounts::default(), None, &[]).await;
    assert!(matches!(again, Err(StoreError::NotFound)));

    db.clock().advance(1);
    let replay = db.start_attempt(ann.firm_id, conn.id, SyncTrigger::Replay, Some(first.id)).await.unwrap();
    let failed = db
        .finish_attempt(
            ann.firm_id,
            replay.id,
            AttemptStatus::Failed,
            &AttemptCounts::default(),
            Some(("provider_unavailable", "Google could not be reached")),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(failed.replay_of, Some(first.id));
    assert_eq!(failed.error_kind.as_deref(), Some("provider_unavailable"));
    let listed = db.attempts(ann.firm_id, Some(conn.id), 10).await.unwrap();
    assert_eq!(listed.iter().map(|a| a.id).collect::<Vec<_>>(), vec![replay.id, first.id]);
    assert_eq!(db.attempts(ann.firm_id, None, 1).await.unwrap().len(), 1);

    // Another firm sees nothing and cannot log against this connection or replay this attempt.
    let eve = user(db, "globex", "eve@globex.test").await;
    assert!(db.attempts(eve.firm_id, None, 10).await.unwrap().is_empty());
    assert!(matches!(
        db.start_attempt(eve.firm_id, conn.id, SyncTrigger::Manual, None).await,
        Err(StoreError::NotFound)
    ));
    let eve_conn = connected(db, &eve).await;
    let foreign_replay = db.start_attempt(eve.firm_id, eve_conn.id, SyncTrigger::Replay, Some(first.id)).await;
    assert!(matches!(foreign_replay, Err(StoreError::NotFound)));
    assert!(matches!(
        db.finish_attempt(eve.firm_id, replay.id, AttemptStatus::Success, &AttemptCounts::default(), None, &[]).await,
        Err(StoreError::NotFound)
    ));
}

async fn writes_are_recorded_before_they_are_made(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let conn = connected(db, &ann).await;
    let cal = db.calendars(ann.firm_id, conn.id).await.unwrap().remove(0);
    let appt = db.insert_appointment(ann.firm_id, ann.id, data("Intake")).await.unwrap();
    let key = appt.id.to_string();
    let create =
        db.record_write(ann.firm_id, conn.id, cal.id, appt.id, WriteOperation::Create, &key, None, None).await.unwrap();
    db.clock().advance(1);
    let update = db
        .record_write(ann.firm_id, conn.id, cal.id, appt.id, WriteOperation::Update, &key, Some("evt1"), Some("e1"))
        .await
        .unwrap();
    let pending = db.pending_writes(ann.firm_id, conn.id).await.unwrap();
    assert_eq!(pending.iter().map(|w| w.id).collect::<Vec<_>>(), vec![create.id, update.id], "oldest first");
    assert_eq!((pending[1].remote_id.as_deref(), pending[1].expected_etag.as_deref()), (Some("evt1"), Some("e1")));

    // A failure keeps it pending, counted; completion removes it from the pending list, once.
    db.fail_write(ann.firm_id, create.id, "timed out").await.unwrap();
    let again = db.pending_writes(ann.firm_id, conn.id).await.unwrap();
    assert_eq!((again[0].attempts, again[0].last_error.as_deref()), (1, Some("timed out")));
    db.complete_write(ann.firm_id, create.id).await.unwrap();
    assert!(matches!(db.complete_write(ann.firm_id, create.id).await, Err(StoreError::NotFound)));
    assert_eq!(db.pending_writes(ann.firm_id, conn.id).await.unwrap().len(), 1);

    // Another firm can neither record against this connection nor see or settle its writes.
    let eve = user(db, "globex", "eve@globex.test").await;
    let foreign =
        db.record_write(eve.firm_id, conn.id, cal.id, appt.id, WriteOperation::Delete, &key, Some("evt1"), None).await;
    assert!(matches!(foreign, Err(StoreError::NotFound)));
    assert!(db.pending_writes(eve.firm_id, conn.id).await.unwrap().is_empty());
    assert!(matches!(db.complete_write(eve.firm_id, update.id).await, Err(StoreError::NotFound)));
    assert!(matches!(db.fail_write(eve.firm_id, update.id, "x").await, Err(StoreError::NotFound)));
}

backend_tests!(
    links_keep_the_base_per_remote_event,
    attempts_are_logged_once_and_listed_newest_first,
    writes_are_recorded_before_they_are_made,
);
