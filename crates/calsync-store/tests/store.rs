//! The storage contract, run on SQLite and on PostgreSQL (each test in its own database).

use calsync_domain::account::{Email, FirmSlug};
use calsync_domain::appointment::{AppointmentData, AppointmentInput, AttendeeInput, When};
use calsync_domain::ids::{ApiTokenId, AppointmentId, FirmId};
use calsync_domain::tenant::Role;
use calsync_store::{AppointmentQuery, Db, NewUser, StoreError, User};
use calsync_testkit::{Backend, TestDb, backend_tests};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashSet;

async fn user(db: &Db, firm: FirmId, email: &str, role: Role) -> User {
    db.create_user(NewUser {
        firm_id: firm,
        email: Email::parse(email).unwrap(),
        name: "Someone".into(),
        role,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$x$y".into(),
    })
    .await
    .unwrap()
}

async fn firm_with_user(db: &Db, slug: &str) -> (FirmId, User) {
    let firm = db.create_firm("Firm", &FirmSlug::parse(slug).unwrap()).await.unwrap();
    let u = user(db, firm.id, &format!("staff@{slug}.test"), Role::Staff).await;
    (firm.id, u)
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn timed(title: &str, start: &str, end: &str) -> AppointmentData {
    AppointmentData::create(AppointmentInput {
        title: Some(title.into()),
        start: Some(start.into()),
        end: Some(end.into()),
        time_zone: Some("Europe/Berlin".into()),
        ..Default::default()
    })
    .unwrap()
}

async fn migrations_are_idempotent(backend: Backend) {
    let t = TestDb::new(backend).await;
    t.db.migrate().await.unwrap();
    assert_eq!(t.db.count_users().await.unwrap(), 0);
    t.db.ping().await.unwrap();
}

async fn firms_and_users_are_unique(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let (firm, _) = firm_with_user(db, "acme").await;
    assert!(matches!(
        db.create_firm("Other", &FirmSlug::parse("acme").unwrap()).await,
        Err(StoreError::Duplicate("slug"))
    ));
    let dup = db
        .create_user(NewUser {
            firm_id: firm,
            email: Email::parse("STAFF@acme.test").unwrap(),
            name: "Again".into(),
            role: Role::Admin,
            password_hash: "h".into(),
        })
        .await;
    assert!(matches!(dup, Err(StoreError::Duplicate("email"))), "{dup:?}");
    let orphan = db
        .create_user(NewUser {
            firm_id: FirmId::new(),
            email: Email::parse("x@nowhere.test").unwrap(),
            name: "X".into(),
            role: Role::Staff,
            password_hash: "h".into(),
        })
        .await;
    assert!(matches!(orphan, Err(StoreError::NotFound)), "{orphan:?}");
    assert_eq!(db.firm_by_slug("acme").await.unwrap().id, firm);
    assert!(matches!(db.firm_by_slug("nope").await, Err(StoreError::NotFound)));
    let (u, hash) = db.user_credentials(&Email::parse("staff@acme.test").unwrap()).await.unwrap();
    assert_eq!((u.role, hash.as_str()), (Role::Staff, "$argon2id$v=19$m=19456,t=2,p=1$x$y"));
    assert_eq!(db.count_users().await.unwrap(), 1);
}

async fn api_tokens_resolve_by_hash(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let (firm, u) = firm_with_user(db, "acme").await;
    let ci = db.create_api_token(&u, "ci", "hash-1", None).await.unwrap();
    let who = db.user_by_api_token("hash-1").await.unwrap();
    assert_eq!((who.actor.firm_id, who.actor.user_id, who.actor.role), (firm, u.id, Role::Staff));
    assert_eq!(who.firm_name, "Firm");
    // A second lookup within the minute does not need a write, and still resolves.
    assert!(db.user_by_api_token("hash-1").await.is_ok());
    assert!(matches!(db.user_by_api_token("hash-2").await, Err(StoreError::NotFound)));
    assert!(matches!(db.create_api_token(&u, "again", "hash-1", None).await, Err(StoreError::Duplicate(_))));

    // Expired tokens resolve to nothing; listing shows every token without its secret.
    let old = db.create_api_token(&u, "old", "hash-old", Some(Utc::now() - Duration::seconds(1))).await.unwrap();
    let soon = Utc::now() + Duration::days(7);
    db.create_api_token(&u, "weekly", "hash-week", Some(soon)).await.unwrap();
    assert!(matches!(db.user_by_api_token("hash-old").await, Err(StoreError::NotFound)));
    assert!(db.user_by_api_token("hash-week").await.is_ok());
    let listed = db.list_api_tokens(&u).await.unwrap();
    let names: Vec<_> = listed.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), 3);
    assert!(names.contains(&"ci") && names.contains(&"old") && names.contains(&"weekly"));
    assert!(listed.iter().find(|t| t.id == ci).unwrap().last_used_at.is_some(), "use is recorded");
    assert!(listed.iter().find(|t| t.id == old).unwrap().expires_at.is_some());

    // Revoked tokens stop resolving; revoking again keeps the first revocation time.
    let first = db.revoke_api_token(ci).await.unwrap();
    assert!(first.revoked_at.is_some());
    assert!(matches!(db.user_by_api_token("hash-1").await, Err(StoreError::NotFound)));
    assert_eq!(db.revoke_api_token(ci).await.unwrap().revoked_at, first.revoked_at);
    assert!(matches!(db.revoke_api_token(ApiTokenId::new()).await, Err(StoreError::NotFound)));
}

async fn sessions_expire_and_end(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let (_, u) = firm_with_user(db, "acme").await;
    let who = db.user_by_api_token("none").await;
    assert!(who.is_err());
    let actor = calsync_domain::tenant::Actor { firm_id: u.firm_id, user_id: u.id, role: u.role };
    let live = db.create_session(&actor, "live", "csrf-1", Utc::now() + Duration::hours(1)).await.unwrap();
    db.create_session(&actor, "stale", "csrf-2", Utc::now() - Duration::seconds(1)).await.unwrap();
    let s = db.session("live").await.unwrap();
    assert_eq!((s.id, s.csrf_token.expose(), s.user.actor.user_id), (live, "csrf-1", u.id));
    assert!(matches!(db.session("stale").await, Err(StoreError::NotFound)));
    db.delete_session(live).await.unwrap();
    assert!(matches!(db.session("live").await, Err(StoreError::NotFound)));
}

async fn appointments_round_trip(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let (firm, u) = firm_with_user(db, "acme").await;
    let mut data = timed("Intake", "2026-12-01T09:00:00+01:00", "2026-12-01T10:00:00+01:00");
    data.attendees = vec![calsync_domain::appointment::Attendee {
        email: "c@client.test".into(),
        name: "Cé".into(),
        response: calsync_domain::appointment::ResponseStatus::Tentative,
    }];
    // Every column comes back: answers, the invitation setting and an invitation's organizer.
    data.send_invitations = true;
    data.organizer = Some("boss@elsewhere.test".into());
    let created = db.insert_appointment(firm, u.id, data.clone()).await.unwrap();
    let read = db.appointment(firm, Some(u.id), created.id).await.unwrap();
    assert_eq!(read, created, "what a write returns is what a read returns, timestamps included");
    assert_eq!(read.data, data);
    assert_eq!(read.version, 1);
    assert_eq!(read.data.start_string(), "2026-12-01T09:00:00+01:00");

    let all_day = AppointmentData::create(AppointmentInput {
        title: Some("Holiday".into()),
        start: Some("2026-12-24".into()),
        end: Some("2026-12-27".into()),
        all_day: Some(true),
        time_zone: Some("America/New_York".into()),
        attendees: Some(vec![AttendeeInput { email: "a@b.test".into(), name: None, response: None }]),
        ..Default::default()
    })
    .unwrap();
    let created = db.insert_appointment(firm, u.id, all_day.clone()).await.unwrap();
    let read = db.appointment(firm, None, created.id).await.unwrap();
    assert_eq!(read.data, all_day);
    assert!(matches!(read.data.when, When::AllDay { .. }));
}

async fn other_firms_and_owners_see_nothing(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let (acme, ann) = firm_with_user(db, "acme").await;
    let (globex, gus) = firm_with_user(db, "globex").await;
    let colleague = user(db, acme, "bob@acme.test", Role::Staff).await;
    let a =
        db.insert_appointment(acme, ann.id, timed("A", "2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z")).await.unwrap();

    assert!(matches!(db.appointment(globex, None, a.id).await, Err(StoreError::NotFound)));
    assert!(matches!(db.appointment(acme, Some(colleague.id), a.id).await, Err(StoreError::NotFound)));
    assert!(db.appointment(acme, None, a.id).await.is_ok());
    let other_firm_page =
        db.list_appointments(globex, &AppointmentQuery { limit: 50, ..Default::default() }).await.unwrap();
    assert!(other_firm_page.items.is_empty());
    let update =
        db.update_appointment(globex, a.id, 1, timed("X", "2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z")).await;
    assert!(matches!(update, Err(StoreError::NotFound)), "{update:?}");
    assert!(matches!(db.delete_appointment(globex, a.id, 1).await, Err(StoreError::NotFound)));
    // An owner from another firm is refused by the composite foreign key.
    let cross = db.insert_appointment(acme, gus.id, timed("X", "2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z")).await;
    assert!(matches!(cross, Err(StoreError::NotFound)), "{cross:?}");
    assert_eq!(db.appointment(acme, None, a.id).await.unwrap().data.title, "A");
}

async fn listing_pages_through_an_overlapping_window(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let (firm, ann) = firm_with_user(db, "acme").await;
    let bob = user(db, firm, "bob@acme.test", Role::Staff).await;
    let base = at("2026-12-01T00:00:00Z");
    let mut expected = Vec::new();
    for i in 0..25 {
        // Several share a start time, so the id tie-break matters.
        let start = base + Duration::hours(i / 3);
        let d = timed(&format!("A{i}"), &start.to_rfc3339(), &(start + Duration::minutes(30)).to_rfc3339());
        let a = db.insert_appointment(firm, ann.id, d).await.unwrap();
        expected.push(a.id);
    }
    db.insert_appointment(firm, bob.id, timed("Bob's", "2026-12-01T01:00:00Z", "2026-12-01T02:00:00Z")).await.unwrap();
    // Ends exactly at the window start: not overlapping.
    db.insert_appointment(firm, ann.id, timed("Before", "2026-11-30T23:00:00Z", "2026-12-01T00:00:00Z")).await.unwrap();

    let mut seen = Vec::new();
    let mut q = AppointmentQuery {
        owner: Some(ann.id),
        start: Some(base),
        end: Some(base + Duration::days(2)),
        limit: 7,
        after: None,
    };
    let mut pages = 0;
    loop {
        let page = db.list_appointments(firm, &q).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 7);
        seen.extend(page.items.iter().map(|a| a.id));
        match page.next {
            Some(c) => q.after = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(seen.len(), 25);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 25, "no duplicates across pages");
    assert_eq!(seen.iter().collect::<HashSet<_>>(), expected.iter().collect::<HashSet<_>>());

    let firm_wide = db
        .list_appointments(
            firm,
            &AppointmentQuery {
                start: Some(base),
                end: Some(base + Duration::hours(2)),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // Hours 0 and 1 hold six of Ann's, plus Bob's.
    assert_eq!(firm_wide.items.len(), 7);
    assert!(firm_wide.items.iter().any(|a| a.owner_id == bob.id));
    assert!(firm_wide.next.is_none());
}

async fn updates_and_deletes_are_versioned(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let (firm, ann) = firm_with_user(db, "acme").await;
    let a =
        db.insert_appointment(firm, ann.id, timed("A", "2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z")).await.unwrap();
    let changed = a.data.patched(AppointmentInput { title: Some("B".into()), ..Default::default() }).unwrap();
    let b = db.update_appointment(firm, a.id, 1, changed.clone()).await.unwrap();
    assert_eq!((b.version, b.data.title.as_str()), (2, "B"));
    assert!(b.updated_at >= a.updated_at);
    let stale = db.update_appointment(firm, a.id, 1, changed).await;
    assert!(matches!(stale, Err(StoreError::VersionMismatch)), "{stale:?}");
    assert!(matches!(db.delete_appointment(firm, a.id, 1).await, Err(StoreError::VersionMismatch)));
    db.delete_appointment(firm, a.id, 2).await.unwrap();
    assert!(matches!(db.appointment(firm, None, a.id).await, Err(StoreError::NotFound)));
    assert!(matches!(db.delete_appointment(firm, a.id, 3).await, Err(StoreError::NotFound)));
    assert!(matches!(db.appointment(firm, None, AppointmentId::new()).await, Err(StoreError::NotFound)));
    let page = db.list_appointments(firm, &AppointmentQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert!(page.items.is_empty(), "deleted appointments are not listed");
}

/// One ICS feed token per user, found by its hash; regenerating replaces it, revoking forgets
/// it, and a user's deletion takes it along.
async fn ics_feed_tokens_resolve_by_hash(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let (firm, ann) = firm_with_user(db, "acme").await;
    let bob = user(db, firm, "bob@acme.test", Role::Staff).await;
    assert_eq!(db.ics_feed_created(firm, ann.id).await.unwrap(), None);
    db.set_ics_feed(firm, ann.id, "hash-1").await.unwrap();
    db.set_ics_feed(firm, bob.id, "hash-b").await.unwrap();
    assert_eq!(db.ics_feed_owner("hash-1").await.unwrap(), (firm, ann.id, ann.name.clone()));
    assert!(db.ics_feed_created(firm, ann.id).await.unwrap().is_some());
    // Regenerated: the old token opens nothing.
    db.set_ics_feed(firm, ann.id, "hash-2").await.unwrap();
    assert!(matches!(db.ics_feed_owner("hash-1").await, Err(StoreError::NotFound)));
    assert_eq!(db.ics_feed_owner("hash-2").await.unwrap().1, ann.id);
    // Another firm cannot revoke it; its owner can.
    let (other, _) = firm_with_user(db, "globex").await;
    assert!(!db.revoke_ics_feed(other, ann.id).await.unwrap());
    assert!(db.revoke_ics_feed(firm, ann.id).await.unwrap());
    assert!(!db.revoke_ics_feed(firm, ann.id).await.unwrap());
    assert!(matches!(db.ics_feed_owner("hash-2").await, Err(StoreError::NotFound)));
    assert_eq!(db.ics_feed_owner("hash-b").await.unwrap().1, bob.id, "Bob's is untouched");

    // Imported UIDs map to one appointment per user, written together with it; a re-made one
    // moves the mapping; the mapping stays in its firm.
    assert_eq!(db.imported_as(firm, ann.id, "uid-1").await.unwrap(), None);
    let a1 = db
        .insert_imported_appointment(firm, ann.id, "uid-1", timed("I", "2027-01-04T09:00:00Z", "2027-01-04T10:00:00Z"))
        .await
        .unwrap();
    assert_eq!(db.imported_as(firm, ann.id, "uid-1").await.unwrap(), Some(a1.id));
    assert_eq!(db.appointment(firm, Some(ann.id), a1.id).await.unwrap().data.title, "I");
    assert_eq!(db.imported_as(firm, bob.id, "uid-1").await.unwrap(), None, "per user");
    let a2 = db
        .insert_imported_appointment(firm, ann.id, "uid-1", timed("J", "2027-01-04T09:00:00Z", "2027-01-04T10:00:00Z"))
        .await
        .unwrap();
    assert_eq!(db.imported_as(firm, ann.id, "uid-1").await.unwrap(), Some(a2.id));
    assert_eq!(db.imported_as(other, ann.id, "uid-1").await.unwrap(), None, "per firm");
    // An owner outside the firm: neither the appointment nor the mapping is written.
    assert!(
        db.insert_imported_appointment(
            other,
            ann.id,
            "uid-2",
            timed("K", "2027-01-04T09:00:00Z", "2027-01-04T10:00:00Z")
        )
        .await
        .is_err()
    );
    assert_eq!(db.imported_as(other, ann.id, "uid-2").await.unwrap(), None);
}

backend_tests!(
    ics_feed_tokens_resolve_by_hash,
    migrations_are_idempotent,
    firms_and_users_are_unique,
    api_tokens_resolve_by_hash,
    sessions_expire_and_end,
    appointments_round_trip,
    other_firms_and_owners_see_nothing,
    listing_pages_through_an_overlapping_window,
    updates_and_deletes_are_versioned,
);
