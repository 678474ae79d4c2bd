//! The storage the sync engine runs on, on SQLite and PostgreSQL: cursors, the sync lease and
//! outcome, the push target, appointments as the engine sees them, the atomic applies of remote
//! changes, conflicts, held deletes and the attempt log's queries; all strictly per firm.

use calsync_domain::account::{Email, FirmSlug};
use calsync_domain::appointment::{AppointmentData, AppointmentInput, Origin};
use calsync_domain::connection::Provider;
use calsync_domain::ids::{
    AppointmentId, ConflictId, ConnectionId, EventLinkId, FirmId, HeldDeleteId, SyncedCalendarId,
};
use calsync_domain::sync::{AttemptStatus, Base, ConflictSide, HeldSide, LinkState, SyncTrigger, WriteOperation};
use calsync_domain::tenant::Role;
use calsync_store::crypto::Keyring;
use calsync_store::{
    AttemptCounts, AttemptQuery, CalendarCursor, CalendarInfo, Connection, Db, LinkWrite, NewGrant, NewUser,
    StoreError, SyncedCalendar, User,
};
use calsync_testkit::{Backend, TestDb, backend_tests};
use chrono::{DateTime, Duration, Utc};

async fn user(db: &Db, slug: &str, email: &str) -> User {
    let firm = match db.firm_by_slug(slug).await {
        Ok(f) => f,
        Err(_) => db.create_firm("Firm", &FirmSlug::parse(slug).unwrap()).await.unwrap(),
    };
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

fn calendar(remote_id: &str, is_primary: bool, can_write: bool) -> CalendarInfo {
    CalendarInfo {
        remote_id: remote_id.into(),
        name: remote_id.into(),
        is_primary,
        can_write,
        time_zone: None,
        color: None,
    }
}

/// A Google connection of `u` with a writable primary, a writable "team" calendar (not
/// selected) and a read-only "holidays" one.
async fn connected(db: &Db, u: &User) -> (Connection, Vec<SyncedCalendar>) {
    let k = Keyring::parse(&Keyring::generate_spec("k1")).unwrap();
    let grant = NewGrant {
        firm_id: u.firm_id,
        user_id: u.id,
        provider: Provider::Google,
        account_id: format!("sub-{}", u.id),
        account_email: format!("{}@gmail.test", u.id),
        access_token: "a".into(),
        refresh_token: Some("r".into()),
        expires_at: Some(Utc::now() + Duration::hours(1)),
        scopes: vec![],
    };
    let list = [calendar("primary", true, true), calendar("team", false, true), calendar("holidays", false, false)];
    let conn = db.save_grant(&k, &grant, &list).await.unwrap();
    let cals = db.calendars(u.firm_id, conn.id).await.unwrap();
    (conn, cals)
}

fn cal<'a>(cals: &'a [SyncedCalendar], remote_id: &str) -> &'a SyncedCalendar {
    cals.iter().find(|c| c.remote_id == remote_id).unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A one-hour appointment starting on 2026-12-01 at `hour` UTC plus `day` days.
fn data_on(title: &str, day: u32, hour: u32) -> AppointmentData {
    AppointmentData::create(AppointmentInput {
        title: Some(title.into()),
        start: Some(format!("2026-12-{:02}T{hour:02}:00:00Z", day + 1)),
        end: Some(format!("2026-12-{:02}T{hour:02}:30:00Z", day + 1)),
        ..Default::default()
    })
    .unwrap()
}

fn data(title: &str) -> AppointmentData {
    data_on(title, 0, 9)
}

fn base(version: i64, etag: &str) -> Base {
    Base {
        local_version: version,
        local_hash: format!("L{version}"),
        remote_etag: etag.into(),
        remote_hash: format!("R{etag}"),
    }
}

fn link_write<'a>(
    conn: ConnectionId,
    calendar: SyncedCalendarId,
    appointment: AppointmentId,
    remote_id: &'a str,
    base: &'a Base,
) -> LinkWrite<'a> {
    LinkWrite {
        connection_id: conn,
        calendar_id: calendar,
        appointment_id: appointment,
        remote_id,
        base,
        remote_updated_at: Some(at("2026-11-01T08:00:00Z")),
        series_remote_id: None,
        original_start: None,
        state: LinkState::Synced,
        last_error: None,
        base_data: None,
    }
}

/// A column the store does not expose, read straight from the database.
async fn failure_count(t: &TestDb, conn: ConnectionId) -> i32 {
    let sql = "SELECT failure_count FROM oauth_connections WHERE id = $1";
    match t.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&t.url).await.unwrap();
            sqlx::query_as::<_, (i32,)>(sql).bind(conn.as_uuid()).fetch_one(&pool).await.unwrap().0
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&t.url).await.unwrap();
            sqlx::query_as::<_, (i32,)>(sql).bind(conn.as_uuid()).fetch_one(&pool).await.unwrap().0
        }
    }
}

async fn cursors_are_kept_per_calendar_and_cleared_per_connection(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let (conn, cals) = connected(db, &ann).await;
    let (primary, team) = (cal(&cals, "primary").id, cal(&cals, "team").id);
    assert_eq!(db.calendar_cursor(ann.firm_id, primary).await.unwrap(), None);

    let c1 = CalendarCursor {
        cursor: "token-1".into(),
        window_start: at("2026-11-01T00:00:00Z"),
        window_end: at("2027-02-01T00:00:00.123456Z"),
    };
    let c2 = CalendarCursor { cursor: "token-2".into(), ..c1.clone() };
    db.save_calendar_cursor(ann.firm_id, primary, Some(&c1)).await.unwrap();
    db.save_calendar_cursor(ann.firm_id, team, Some(&c2)).await.unwrap();
    assert_eq!(db.calendar_cursor(ann.firm_id, primary).await.unwrap(), Some(c1.clone()));
    assert_eq!(db.calendar_cursor(ann.firm_id, team).await.unwrap(), Some(c2.clone()));
    db.save_calendar_cursor(ann.firm_id, team, None).await.unwrap();
    assert_eq!(db.calendar_cursor(ann.firm_id, team).await.unwrap(), None);
    assert_eq!(db.calendar_cursor(ann.firm_id, primary).await.unwrap(), Some(c1.clone()), "only that calendar");

    // Another firm can neither read, write nor clear them.
    let eve = user(db, "globex", "eve@globex.test").await;
    let (eve_conn, _) = connected(db, &eve).await;
    assert!(matches!(db.calendar_cursor(eve.firm_id, primary).await, Err(StoreError::NotFound)));
    assert!(matches!(db.save_calendar_cursor(eve.firm_id, primary, None).await, Err(StoreError::NotFound)));
    assert!(matches!(db.clear_cursors(eve.firm_id, conn.id).await, Err(StoreError::NotFound)));
    db.clear_cursors(eve.firm_id, eve_conn.id).await.unwrap();
    assert_eq!(db.calendar_cursor(ann.firm_id, primary).await.unwrap(), Some(c1.clone()));

    db.save_calendar_cursor(ann.firm_id, team, Some(&c2)).await.unwrap();
    db.clear_cursors(ann.firm_id, conn.id).await.unwrap();
    assert_eq!(db.calendar_cursor(ann.firm_id, primary).await.unwrap(), None);
    assert_eq!(db.calendar_cursor(ann.firm_id, team).await.unwrap(), None);
    assert!(matches!(
        db.save_calendar_cursor(ann.firm_id, SyncedCalendarId::new(), Some(&c1)).await,
        Err(StoreError::NotFound)
    ));
}

async fn the_sync_lease_is_exclusive_until_it_expires(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let (conn, _) = connected(db, &ann).await;
    let firm = ann.firm_id;
    assert!(!db.sync_in_progress(firm, conn.id).await.unwrap());

    let until = db.clock().now() + Duration::seconds(60);
    assert!(db.claim_sync(firm, conn.id, "w1", until).await.unwrap());
    assert!(db.sync_in_progress(firm, conn.id).await.unwrap());
    assert!(!db.claim_sync(firm, conn.id, "w2", until).await.unwrap(), "held by w1");
    assert!(db.claim_sync(firm, conn.id, "w1", until + Duration::seconds(60)).await.unwrap(), "w1 extends");
    // Releasing someone else's lease does nothing.
    db.release_sync(firm, conn.id, "w2").await.unwrap();
    assert!(!db.claim_sync(firm, conn.id, "w2", until).await.unwrap());

    // Another firm cannot take, release or even ask about it.
    let eve = user(db, "globex", "eve@globex.test").await;
    assert!(matches!(db.claim_sync(eve.firm_id, conn.id, "w1", until).await, Err(StoreError::NotFound)));
    assert!(matches!(db.release_sync(eve.firm_id, conn.id, "w1").await, Err(StoreError::NotFound)));
    assert!(matches!(db.sync_in_progress(eve.firm_id, conn.id).await, Err(StoreError::NotFound)));
    assert!(db.sync_in_progress(firm, conn.id).await.unwrap());

    // Expired (w1 crashed): no longer in progress, and w2 takes it over; w1 cannot release it.
    db.clock().advance(121);
    assert!(!db.sync_in_progress(firm, conn.id).await.unwrap());
    let later = db.clock().now() + Duration::seconds(60);
    assert!(db.claim_sync(firm, conn.id, "w2", later).await.unwrap());
    db.release_sync(firm, conn.id, "w1").await.unwrap();
    assert!(db.sync_in_progress(firm, conn.id).await.unwrap());
    assert!(!db.claim_sync(firm, conn.id, "w1", later).await.unwrap());

    db.release_sync(firm, conn.id, "w2").await.unwrap();
    assert!(!db.sync_in_progress(firm, conn.id).await.unwrap());
    assert!(db.claim_sync(firm, conn.id, "w1", later).await.unwrap());
    assert!(matches!(db.claim_sync(firm, ConnectionId::new(), "w1", later).await, Err(StoreError::NotFound)));
}

async fn sync_outcomes_count_failures_and_schedule_the_next(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let (conn, _) = connected(db, &ann).await;
    let firm = ann.firm_id;
    let next = at("2026-12-01T10:00:00.5Z");

    db.record_sync_outcome(firm, conn.id, false, Some("Google could not be reached"), next).await.unwrap();
    db.record_sync_outcome(firm, conn.id, false, Some("still down"), next).await.unwrap();
    let c = db.connection(firm, None, conn.id).await.unwrap();
    assert_eq!((c.last_sync_at, c.last_error.as_deref()), (None, Some("still down")));
    assert_eq!(db.next_sync_at(firm, conn.id).await.unwrap(), Some(next));
    assert_eq!(failure_count(&t, conn.id).await, 2);

    let later = next + Duration::minutes(15);
    db.record_sync_outcome(firm, conn.id, true, None, later).await.unwrap();
    let c = db.connection(firm, None, conn.id).await.unwrap();
    assert!(c.last_sync_at.is_some());
    assert_eq!(c.last_error, None);
    assert_eq!(db.next_sync_at(firm, conn.id).await.unwrap(), Some(later));
    assert_eq!(failure_count(&t, conn.id).await, 0);

    let eve = user(db, "globex", "eve@globex.test").await;
    assert!(matches!(
        db.record_sync_outcome(eve.firm_id, conn.id, false, Some("x"), next).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(db.next_sync_at(eve.firm_id, conn.id).await, Err(StoreError::NotFound)));
    assert_eq!(failure_count(&t, conn.id).await, 0);
}

async fn the_push_calendar_is_the_chosen_writable_one_else_the_primary(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let (conn, cals) = connected(db, &ann).await;
    let firm = ann.firm_id;
    // The engine picks it from the calendars it has read already: always the same answer.
    let same_in_memory = || async move {
        let chosen = db.connection(firm, None, conn.id).await.unwrap().push_calendar;
        let all = db.calendars(firm, conn.id).await.unwrap();
        assert_eq!(Db::push_calendar_of(&all, chosen.as_deref()), db.push_calendar(firm, conn.id).await.unwrap());
    };
    assert_eq!(conn.push_calendar, None);
    assert_eq!(db.push_calendar(firm, conn.id).await.unwrap().as_ref(), Some(cal(&cals, "primary")));
    same_in_memory().await;

    // A writable calendar not selected for sync can still be the push target.
    db.set_push_calendar(firm, conn.id, Some("team")).await.unwrap();
    assert_eq!(db.push_calendar(firm, conn.id).await.unwrap().as_ref(), Some(cal(&cals, "team")));
    same_in_memory().await;
    assert_eq!(db.connection(firm, None, conn.id).await.unwrap().push_calendar.as_deref(), Some("team"));

    for bad in ["holidays", "nope"] {
        let e = db.set_push_calendar(firm, conn.id, Some(bad)).await.unwrap_err();
        assert!(matches!(&e, StoreError::Invalid(v) if v.field == "push_calendar"), "{bad}: {e}");
    }
    assert_eq!(db.connection(firm, None, conn.id).await.unwrap().push_calendar.as_deref(), Some("team"));

    // Another firm can neither see nor set it, even to a calendar that exists.
    let eve = user(db, "globex", "eve@globex.test").await;
    assert!(matches!(db.push_calendar(eve.firm_id, conn.id).await, Err(StoreError::NotFound)));
    assert!(matches!(db.set_push_calendar(eve.firm_id, conn.id, Some("primary")).await, Err(StoreError::NotFound)));
    assert!(matches!(db.set_push_calendar(eve.firm_id, conn.id, None).await, Err(StoreError::NotFound)));

    // The chosen calendar no longer listed: back to the primary. A read-only primary: nowhere.
    db.replace_calendars(firm, conn.id, &[calendar("primary", true, true), calendar("holidays", false, false)])
        .await
        .unwrap();
    assert_eq!(db.push_calendar(firm, conn.id).await.unwrap().map(|c| c.remote_id), Some("primary".into()));
    same_in_memory().await;
    db.replace_calendars(firm, conn.id, &[calendar("primary", true, false)]).await.unwrap();
    assert_eq!(db.push_calendar(firm, conn.id).await.unwrap(), None);
    same_in_memory().await;

    db.set_push_calendar(firm, conn.id, None).await.unwrap();
    assert_eq!(db.connection(firm, None, conn.id).await.unwrap().push_calendar, None);
}

async fn local_changes_are_edits_deletions_and_unlinked_own_appointments(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let bob = user(db, "acme", "bob@acme.test").await;
    let (conn, cals) = connected(db, &ann).await;
    let (primary, team) = (cal(&cals, "primary").id, cal(&cals, "team").id);
    let firm = ann.firm_id;
    let v1 = base(1, "e1");
    let linked = |a: AppointmentId, remote: &'static str| link_write(conn.id, primary, a, remote, &v1);

    let unchanged = db.insert_appointment(firm, ann.id, data_on("unchanged", 0, 8)).await.unwrap();
    db.save_link(firm, &linked(unchanged.id, "r-unchanged")).await.unwrap();
    let edited = db.insert_appointment(firm, ann.id, data_on("edited", 0, 12)).await.unwrap();
    db.save_link(firm, &linked(edited.id, "r-edited")).await.unwrap();
    let edited = db.update_appointment(firm, edited.id, 1, data_on("edited again", 0, 12)).await.unwrap();
    let deleted = db.insert_appointment(firm, ann.id, data_on("deleted", 0, 10)).await.unwrap();
    db.save_link(firm, &linked(deleted.id, "r-deleted")).await.unwrap();
    db.delete_appointment(firm, deleted.id, 1).await.unwrap();
    let fresh = db.insert_appointment(firm, ann.id, data_on("fresh", 1, 9)).await.unwrap();
    // Not changes for this calendar: outside the window, deleted before ever being linked,
    // someone else's, and imported (linked here, or from another calendar).
    db.insert_appointment(firm, ann.id, data_on("outside", 20, 9)).await.unwrap();
    let gone = db.insert_appointment(firm, ann.id, data_on("gone", 1, 11)).await.unwrap();
    db.delete_appointment(firm, gone.id, 1).await.unwrap();
    db.insert_appointment(firm, bob.id, data_on("bob's", 1, 12)).await.unwrap();
    let b1 = base(1, "x1");
    db.import_event(
        firm,
        ann.id,
        data_on("imported here", 1, 13),
        &link_write(conn.id, primary, appt_id(), "r-imp", &b1),
    )
    .await
    .unwrap();
    let (from_team, _) = db
        .import_event(
            firm,
            ann.id,
            data_on("imported there", 1, 14),
            &link_write(conn.id, team, appt_id(), "t-imp", &b1),
        )
        .await
        .unwrap();
    assert_eq!(from_team.origin, Origin::Calendar { connection: conn.id, calendar: team });

    let (start, end) = (at("2026-12-01T00:00:00Z"), at("2026-12-08T00:00:00Z"));
    let ids = |v: Vec<calsync_store::SyncAppointment>| v.into_iter().map(|s| s.appointment.id).collect::<Vec<_>>();
    let pushing = db.local_changes(firm, ann.id, primary, true, start, end).await.unwrap();
    assert_eq!(
        pushing.iter().map(|s| (s.appointment.data.title.as_str(), s.deleted_at.is_some())).collect::<Vec<_>>(),
        vec![("deleted", true), ("edited again", false), ("fresh", false)],
        "by start"
    );
    assert_eq!(ids(pushing), vec![deleted.id, edited.id, fresh.id]);
    let not_pushing = db.local_changes(firm, ann.id, primary, false, start, end).await.unwrap();
    assert_eq!(ids(not_pushing), vec![deleted.id, edited.id]);
    // On the team calendar nothing is linked but the import from there, which is no change.
    let on_team = db.local_changes(firm, ann.id, team, true, start, end).await.unwrap();
    assert_eq!(ids(on_team), vec![unchanged.id, edited.id, fresh.id]);

    // Once the new base records the edit, it is no longer a change.
    let v2 = base(edited.version, "e2");
    db.save_link(firm, &link_write(conn.id, primary, edited.id, "r-edited", &v2)).await.unwrap();
    let after = db.local_changes(firm, ann.id, primary, true, start, end).await.unwrap();
    assert_eq!(ids(after), vec![deleted.id, fresh.id]);

    let eve = user(db, "globex", "eve@globex.test").await;
    assert!(db.local_changes(eve.firm_id, ann.id, primary, true, start, end).await.unwrap().is_empty());
    db.insert_appointment(eve.firm_id, eve.id, data_on("eve's", 1, 9)).await.unwrap();
    assert!(
        db.local_changes(eve.firm_id, eve.id, primary, true, start, end).await.unwrap().is_empty(),
        "another firm's calendar is nobody's push target"
    );
}

async fn sync_appointments_include_tombstones_in_chunks(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let eve = user(db, "globex", "eve@globex.test").await;
    let firm = ann.firm_id;
    let live = db.insert_appointment(firm, ann.id, data("live")).await.unwrap();
    assert_eq!(live.origin, Origin::Calsync);
    assert_eq!(db.appointment(firm, None, live.id).await.unwrap().origin, Origin::Calsync);
    let dead = db.insert_appointment(firm, ann.id, data("dead")).await.unwrap();
    db.delete_appointment(firm, dead.id, 1).await.unwrap();
    let other = db.insert_appointment(firm, ann.id, data("other")).await.unwrap();
    let foreign = db.insert_appointment(eve.firm_id, eve.id, data("eve's")).await.unwrap();

    let one = db.sync_appointment(firm, live.id).await.unwrap().unwrap();
    assert_eq!((one.appointment, one.deleted_at), (live.clone(), None));
    let tomb = db.sync_appointment(firm, dead.id).await.unwrap().unwrap();
    assert_eq!(tomb.appointment.version, 2);
    assert!(tomb.deleted_at.is_some());
    assert!(db.sync_appointment(firm, foreign.id).await.unwrap().is_none());
    assert!(db.sync_appointment(eve.firm_id, live.id).await.unwrap().is_none());

    // More ids than one IN list holds, the real ones in different chunks.
    let mut ids: Vec<AppointmentId> = (0..1200).map(|_| AppointmentId::new()).collect();
    ids[0] = live.id;
    ids[600] = dead.id;
    ids[1100] = other.id;
    ids[1199] = foreign.id;
    let mut found: Vec<_> =
        db.sync_appointments(firm, &ids).await.unwrap().into_iter().map(|s| s.appointment.id).collect();
    found.sort();
    let mut want = vec![live.id, dead.id, other.id];
    want.sort();
    assert_eq!(found, want);
    assert!(db.sync_appointments(firm, &[]).await.unwrap().is_empty());
    let theirs = db.sync_appointments(eve.firm_id, &ids).await.unwrap();
    assert_eq!(theirs.iter().map(|s| s.appointment.id).collect::<Vec<_>>(), vec![foreign.id]);
}

async fn imports_write_the_appointment_and_its_link_or_nothing(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let (conn, cals) = connected(db, &ann).await;
    let primary = cal(&cals, "primary").id;
    let firm = ann.firm_id;
    let count = |firm: FirmId| async move {
        db.list_appointments(firm, &calsync_store::AppointmentQuery { limit: 100, ..Default::default() })
            .await
            .unwrap()
            .items
            .len()
    };

    // The passed appointment id and local version are not trusted: the new ones are used.
    let b = base(7, "e1");
    let w = link_write(conn.id, primary, AppointmentId::new(), "evt-1", &b);
    let (appt, link) = db.import_event(firm, ann.id, data("Imported"), &w).await.unwrap();
    assert_eq!((appt.version, appt.owner_id), (1, ann.id));
    assert_eq!(appt.origin, Origin::Calendar { connection: conn.id, calendar: primary });
    assert_eq!((link.appointment_id, link.base.local_version, link.remote_id.as_str()), (appt.id, 1, "evt-1"));
    assert_eq!(link.base.remote_etag, "e1");
    assert_eq!(db.link(firm, link.id).await.unwrap(), link);
    assert_eq!(db.sync_appointment(firm, appt.id).await.unwrap().unwrap().appointment, appt);
    assert_eq!(db.appointment(firm, None, appt.id).await.unwrap(), appt);

    // The same remote event again would re-point the link: refused, and no appointment is left.
    let again = db.import_event(firm, ann.id, data("Twice"), &w).await;
    assert!(matches!(again, Err(StoreError::Duplicate(_))), "{again:?}");
    assert_eq!(count(firm).await, 1);

    // Into another firm's calendar, or for another firm's user: nothing at all.
    let eve = user(db, "globex", "eve@globex.test").await;
    let (eve_conn, eve_cals) = connected(db, &eve).await;
    let eve_primary = cal(&eve_cals, "primary").id;
    let foreign_cal = link_write(eve_conn.id, eve_primary, AppointmentId::new(), "evt-2", &b);
    assert!(matches!(db.import_event(firm, ann.id, data("x"), &foreign_cal).await, Err(StoreError::NotFound)));
    let mismatched = link_write(conn.id, eve_primary, AppointmentId::new(), "evt-2", &b);
    assert!(matches!(db.import_event(firm, ann.id, data("x"), &mismatched).await, Err(StoreError::NotFound)));
    let w2 = link_write(conn.id, primary, AppointmentId::new(), "evt-2", &b);
    assert!(matches!(db.import_event(firm, eve.id, data("x"), &w2).await, Err(StoreError::NotFound)));
    assert!(matches!(db.import_event(eve.firm_id, eve.id, data("x"), &w2).await, Err(StoreError::NotFound)));
    assert_eq!((count(firm).await, count(eve.firm_id).await), (1, 0));
    assert!(db.link_by_remote(firm, primary, "evt-2").await.unwrap().is_none());
    assert!(matches!(db.link(eve.firm_id, link.id).await, Err(StoreError::NotFound)));
}

async fn remote_updates_apply_with_their_link_or_not_at_all(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let (conn, cals) = connected(db, &ann).await;
    let primary = cal(&cals, "primary").id;
    let firm = ann.firm_id;
    let b1 = base(1, "e1");
    let (appt, link) = db
        .import_event(firm, ann.id, data("v1"), &link_write(conn.id, primary, appt_id(), "evt-1", &b1))
        .await
        .unwrap();

    let b2 = Base { local_hash: "h2".into(), ..base(99, "e2") };
    let w2 = link_write(conn.id, primary, appt_id(), "evt-1", &b2);
    let (updated, link2) = db.apply_remote_update(firm, appt.id, 1, data("v2"), &w2).await.unwrap();
    assert_eq!((updated.version, updated.data.title.as_str()), (2, "v2"));
    assert_eq!(updated.origin, appt.origin);
    assert_eq!((link2.id, link2.appointment_id), (link.id, appt.id), "the same link, on this appointment");
    assert_eq!(link2.base, Base { local_version: 2, local_hash: "h2".into(), ..base(0, "e2") });

    // Stale: neither the appointment nor the link changes.
    let b3 = base(3, "e3");
    let w3 = link_write(conn.id, primary, appt.id, "evt-1", &b3);
    let stale = db.apply_remote_update(firm, appt.id, 1, data("v3"), &w3).await;
    assert!(matches!(stale, Err(StoreError::VersionMismatch)), "{stale:?}");
    assert_eq!(db.appointment(firm, None, appt.id).await.unwrap(), updated);
    assert_eq!(db.link(firm, link.id).await.unwrap(), link2);

    // A link write that fails (this appointment already has a link on the calendar, for another
    // remote event) undoes the appointment update too.
    let clash = link_write(conn.id, primary, appt.id, "evt-other", &b3);
    let refused = db.apply_remote_update(firm, appt.id, 2, data("v3"), &clash).await;
    assert!(matches!(refused, Err(StoreError::Duplicate(_))), "{refused:?}");
    assert_eq!(db.appointment(firm, None, appt.id).await.unwrap(), updated);

    // Another firm, or a deleted appointment: not found, nothing written.
    let eve = user(db, "globex", "eve@globex.test").await;
    assert!(matches!(
        db.apply_remote_update(eve.firm_id, appt.id, 2, data("v3"), &w3).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(db.appointment(firm, None, appt.id).await.unwrap(), updated);
    db.delete_appointment(firm, appt.id, 2).await.unwrap();
    assert!(matches!(db.apply_remote_update(firm, appt.id, 3, data("v4"), &w3).await, Err(StoreError::NotFound)));
    assert_eq!(db.link(firm, link.id).await.unwrap(), link2);
}

fn appt_id() -> AppointmentId {
    AppointmentId::new()
}

async fn remote_deletes_tombstone_and_unlink_together(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let (conn, cals) = connected(db, &ann).await;
    let primary = cal(&cals, "primary").id;
    let firm = ann.firm_id;
    let b = base(1, "e1");
    let import = |remote: &'static str, title: &'static str| {
        let w = link_write(conn.id, primary, appt_id(), remote, &b);
        async move { db.import_event(firm, ann.id, data(title), &w).await.unwrap() }
    };
    let (a, la) = import("evt-a", "a").await;
    let (b_appt, lb) = import("evt-b", "b").await;

    // Edited here meanwhile: the edit wins, nothing is deleted.
    let a2 = db.update_appointment(firm, a.id, 1, data("a edited")).await.unwrap();
    assert!(matches!(db.apply_remote_delete(firm, a.id, 1, la.id).await, Err(StoreError::VersionMismatch)));
    assert_eq!(db.appointment(firm, None, a.id).await.unwrap(), a2);
    assert_eq!(db.link(firm, la.id).await.unwrap(), la);
    // A link of another appointment, or another firm: not found, nothing written.
    assert!(matches!(db.apply_remote_delete(firm, a.id, 2, lb.id).await, Err(StoreError::NotFound)));
    let eve = user(db, "globex", "eve@globex.test").await;
    assert!(matches!(db.apply_remote_delete(eve.firm_id, a.id, 2, la.id).await, Err(StoreError::NotFound)));
    assert_eq!(db.appointment(firm, None, a.id).await.unwrap(), a2);
    assert!(db.link(firm, lb.id).await.is_ok());

    db.apply_remote_delete(firm, a.id, 2, la.id).await.unwrap();
    let tomb = db.sync_appointment(firm, a.id).await.unwrap().unwrap();
    assert_eq!(tomb.appointment.version, 3);
    assert!(tomb.deleted_at.is_some());
    assert!(matches!(db.link(firm, la.id).await, Err(StoreError::NotFound)));

    // Already deleted here: only the link goes, whatever version the caller read.
    db.delete_appointment(firm, b_appt.id, 1).await.unwrap();
    db.apply_remote_delete(firm, b_appt.id, 1, lb.id).await.unwrap();
    assert!(matches!(db.link(firm, lb.id).await, Err(StoreError::NotFound)));
    assert_eq!(db.sync_appointment(firm, b_appt.id).await.unwrap().unwrap().appointment.version, 2);
    assert!(matches!(db.apply_remote_delete(firm, AppointmentId::new(), 1, lb.id).await, Err(StoreError::NotFound)));

    // Restored: live again with a new version; only deleted appointments of the firm.
    assert!(matches!(db.restore_appointment(eve.firm_id, a.id).await, Err(StoreError::NotFound)));
    let back = db.restore_appointment(firm, a.id).await.unwrap();
    assert_eq!((back.version, back.data.title.as_str()), (4, "a edited"));
    assert_eq!(db.appointment(firm, None, a.id).await.unwrap(), back);
    assert!(matches!(db.restore_appointment(firm, a.id).await, Err(StoreError::NotFound)));
}

async fn links_are_listed_per_appointment_and_their_state_set(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let (conn, cals) = connected(db, &ann).await;
    let (primary, team) = (cal(&cals, "primary").id, cal(&cals, "team").id);
    let firm = ann.firm_id;
    let b = base(1, "e1");
    let x = db.insert_appointment(firm, ann.id, data("x")).await.unwrap();
    let y = db.insert_appointment(firm, ann.id, data("y")).await.unwrap();
    let lx1 = db.save_link(firm, &link_write(conn.id, primary, x.id, "x1", &b)).await.unwrap();
    let lx2 = db.save_link(firm, &link_write(conn.id, team, x.id, "x2", &b)).await.unwrap();
    let ly = db.save_link(firm, &link_write(conn.id, primary, y.id, "y1", &b)).await.unwrap();

    let found = db.links_of(firm, &[x.id, y.id]).await.unwrap();
    assert!(found.iter().all(|(_, p)| *p == Provider::Google));
    let mut got: Vec<EventLinkId> = found.into_iter().map(|(l, _)| l.id).collect();
    got.sort();
    let mut want = vec![lx1.id, lx2.id, ly.id];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(db.links_of(firm, &[y.id]).await.unwrap(), vec![(ly.clone(), Provider::Google)]);
    assert!(db.links_of(firm, &[]).await.unwrap().is_empty());

    db.set_link_state(firm, lx1.id, LinkState::Error, Some("quota")).await.unwrap();
    let changed = db.link(firm, lx1.id).await.unwrap();
    assert_eq!((changed.state, changed.last_error.as_deref()), (LinkState::Error, Some("quota")));
    assert_eq!(changed.base, lx1.base, "the base stays");
    db.set_link_state(firm, lx1.id, LinkState::Synced, None).await.unwrap();
    assert_eq!(db.link(firm, lx1.id).await.unwrap().last_error, None);

    let eve = user(db, "globex", "eve@globex.test").await;
    assert!(db.links_of(eve.firm_id, &[x.id, y.id]).await.unwrap().is_empty());
    assert!(matches!(
        db.set_link_state(eve.firm_id, ly.id, LinkState::Error, Some("x")).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(db.link(firm, ly.id).await.unwrap(), ly);
}

async fn conflicts_open_once_per_link_and_resolve_once(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let bob = user(db, "acme", "bob@acme.test").await;
    let (conn, cals) = connected(db, &ann).await;
    let primary = cal(&cals, "primary").id;
    let firm = ann.firm_id;
    let b = base(1, "e1");
    let (appt, link) = db
        .import_event(firm, ann.id, data("ours"), &link_write(conn.id, primary, appt_id(), "evt-1", &b))
        .await
        .unwrap();
    let (local, theirs) = (data("ours, edited"), data("theirs"));

    let base_content = data("ours");
    let first =
        db.open_conflict(firm, link.id, &local, &theirs, "e2", None, &["title"], Some(&base_content)).await.unwrap();
    assert_eq!((first.link_id, first.appointment_id, first.connection_id), (link.id, appt.id, conn.id));
    assert_eq!((first.fields.clone(), first.base.as_ref()), (vec!["title".to_owned()], Some(&base_content)));
    assert_eq!((first.calendar_id, &first.local, &first.remote), (primary, &local, &theirs));
    assert_eq!((first.resolved_at, first.resolution), (None, None));

    // The remote changed again: the open conflict is refreshed, not doubled.
    db.clock().advance(1);
    let newer = data_on("theirs, again", 2, 15);
    let when = Some(at("2026-11-30T12:00:00Z"));
    let refreshed = db
        .open_conflict(firm, link.id, &local, &newer, "e3", when, &["title", "time"], Some(&base_content))
        .await
        .unwrap();
    assert_eq!(refreshed.fields, vec!["title".to_owned(), "time".to_owned()], "the fields follow the newest versions");
    assert_eq!((refreshed.id, refreshed.created_at), (first.id, first.created_at));
    assert_eq!((&refreshed.remote, refreshed.remote_etag.as_str(), refreshed.remote_updated_at), (&newer, "e3", when));
    assert_eq!(db.open_conflicts(firm, None).await.unwrap(), vec![refreshed.clone()]);
    assert_eq!(db.open_conflicts(firm, Some(ann.id)).await.unwrap().len(), 1);
    assert!(db.open_conflicts(firm, Some(bob.id)).await.unwrap().is_empty(), "not bob's connection");

    // Another firm sees none of it and cannot open, read or resolve.
    let eve = user(db, "globex", "eve@globex.test").await;
    assert!(matches!(
        db.open_conflict(eve.firm_id, link.id, &local, &theirs, "e9", None, &[], None).await,
        Err(StoreError::NotFound)
    ));
    assert!(db.open_conflicts(eve.firm_id, None).await.unwrap().is_empty());
    assert!(matches!(db.conflict(eve.firm_id, first.id).await, Err(StoreError::NotFound)));
    assert!(matches!(
        db.resolve_conflict(eve.firm_id, first.id, ConflictSide::Internal, &[]).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        db.open_conflict(firm, EventLinkId::new(), &local, &theirs, "e", None, &[], None).await,
        Err(StoreError::NotFound)
    ));

    let resolved = db
        .resolve_conflict(
            firm,
            first.id,
            ConflictSide::External,
            &[("title", ConflictSide::External), ("time", ConflictSide::Internal)],
        )
        .await
        .unwrap();
    assert_eq!(resolved.resolution, Some(ConflictSide::External));
    assert_eq!(
        resolved.picks,
        vec![("title".to_owned(), ConflictSide::External), ("time".to_owned(), ConflictSide::Internal)]
    );
    assert!(resolved.resolved_at.is_some());
    assert!(matches!(
        db.resolve_conflict(firm, first.id, ConflictSide::Internal, &[]).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(db.conflict(firm, first.id).await.unwrap(), resolved);
    assert!(db.open_conflicts(firm, None).await.unwrap().is_empty());
    assert!(matches!(db.conflict(firm, ConflictId::new()).await, Err(StoreError::NotFound)));

    // A new disagreement on the same link is a new conflict; the newest is listed first.
    db.clock().advance(1);
    let reopened = db.open_conflict(firm, link.id, &local, &theirs, "e4", None, &[], None).await.unwrap();
    assert_ne!(reopened.id, first.id);
    db.clock().advance(1);
    let b2 = base(1, "f1");
    let (_, other_link) = db
        .import_event(firm, ann.id, data("other"), &link_write(conn.id, primary, appt_id(), "evt-2", &b2))
        .await
        .unwrap();
    let other = db.open_conflict(firm, other_link.id, &local, &theirs, "f2", None, &[], None).await.unwrap();
    let open: Vec<ConflictId> = db.open_conflicts(firm, None).await.unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(open, vec![other.id, reopened.id]);

    // Conflicts go with their link.
    db.delete_link(firm, other_link.id).await.unwrap();
    assert!(matches!(db.conflict(firm, other.id).await, Err(StoreError::NotFound)));
}

async fn held_deletes_are_held_once_until_released(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let (conn, cals) = connected(db, &ann).await;
    let (primary, team) = (cal(&cals, "primary").id, cal(&cals, "team").id);
    let firm = ann.firm_id;
    let b = base(1, "e1");
    let mut links = Vec::new();
    for (calendar, remote) in [(primary, "p1"), (primary, "p2"), (primary, "p3"), (team, "t1")] {
        let w = link_write(conn.id, calendar, appt_id(), remote, &b);
        links.push(db.import_event(firm, ann.id, data(remote), &w).await.unwrap().1.id);
    }
    let [p1, p2, p3, t1] = links[..] else { unreachable!() };

    db.hold_deletes(firm, conn.id, primary, &[(p1, HeldSide::Local), (p2, HeldSide::Remote)]).await.unwrap();
    db.clock().advance(1);
    // Held again: kept as first held, not doubled.
    db.hold_deletes(firm, conn.id, primary, &[(p1, HeldSide::Remote)]).await.unwrap();
    let held = db.held_deletes(firm, conn.id).await.unwrap();
    let side_of = |held: &[calsync_store::HeldDelete], link| held.iter().find(|h| h.link_id == link).map(|h| h.side);
    assert_eq!(held.len(), 2);
    assert_eq!((side_of(&held, p1), side_of(&held, p2)), (Some(HeldSide::Local), Some(HeldSide::Remote)));
    assert!(held.iter().all(|h| h.calendar_id == primary && h.connection_id == conn.id));

    // All or none: a link of another calendar fails the whole batch.
    let mixed = db.hold_deletes(firm, conn.id, primary, &[(p3, HeldSide::Local), (t1, HeldSide::Local)]).await;
    assert!(matches!(mixed, Err(StoreError::NotFound)), "{mixed:?}");
    assert_eq!(db.held_deletes(firm, conn.id).await.unwrap().len(), 2);
    db.hold_deletes(firm, conn.id, primary, &[]).await.unwrap();

    let eve = user(db, "globex", "eve@globex.test").await;
    let (eve_conn, eve_cals) = connected(db, &eve).await;
    let theft = db.hold_deletes(eve.firm_id, eve_conn.id, cal(&eve_cals, "primary").id, &[(p3, HeldSide::Local)]).await;
    assert!(matches!(theft, Err(StoreError::NotFound)));
    assert!(matches!(
        db.hold_deletes(eve.firm_id, conn.id, primary, &[(p3, HeldSide::Local)]).await,
        Err(StoreError::NotFound)
    ));
    assert!(db.held_deletes(eve.firm_id, conn.id).await.unwrap().is_empty());
    assert!(matches!(db.release_held_delete(eve.firm_id, held[0].id).await, Err(StoreError::NotFound)));

    let p1_held = held.iter().find(|h| h.link_id == p1).unwrap().id;
    db.release_held_delete(firm, p1_held).await.unwrap();
    assert!(matches!(db.release_held_delete(firm, p1_held).await, Err(StoreError::NotFound)));
    assert!(matches!(db.release_held_delete(firm, HeldDeleteId::new()).await, Err(StoreError::NotFound)));
    let left = db.held_deletes(firm, conn.id).await.unwrap();
    assert_eq!((left.len(), side_of(&left, p2)), (1, Some(HeldSide::Remote)));
    // A held delete goes with its link.
    db.delete_link(firm, p2).await.unwrap();
    assert!(db.held_deletes(firm, conn.id).await.unwrap().is_empty());
}

async fn attempts_are_filtered_and_paged_newest_first(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let bob = user(db, "acme", "bob@acme.test").await;
    let (c1, _) = connected(db, &ann).await;
    let (c2, _) = connected(db, &bob).await;
    let firm = ann.firm_id;
    // Oldest first: c1 success, c1 failed, c2 success, c1 success, c2 failed, c1 failed, c1 success.
    let plan = [
        (c1.id, AttemptStatus::Success),
        (c1.id, AttemptStatus::Failed),
        (c2.id, AttemptStatus::Success),
        (c1.id, AttemptStatus::Success),
        (c2.id, AttemptStatus::Failed),
        (c1.id, AttemptStatus::Failed),
        (c1.id, AttemptStatus::Success),
    ];
    let mut made = Vec::new();
    for (conn, status) in plan {
        db.clock().advance(1);
        let a = db.start_attempt(firm, conn, SyncTrigger::Scheduled, None).await.unwrap();
        made.push(db.finish_attempt(firm, a.id, status, &AttemptCounts::default(), None, &[]).await.unwrap());
    }
    made.reverse();
    let all: Vec<_> = made.iter().map(|a| a.id).collect();

    // Pages of 3 by keyset, each item once, newest first.
    let mut q = AttemptQuery { limit: 3, ..Default::default() };
    let (mut pages, mut seen) = (Vec::new(), Vec::new());
    loop {
        let (items, more) = db.query_attempts(firm, &q).await.unwrap();
        pages.push(items.len());
        q.before = items.last().map(|a| (a.started_at, a.id));
        seen.extend(items.into_iter().map(|a| a.id));
        if !more {
            break;
        }
    }
    assert_eq!(pages, vec![3, 3, 1]);
    assert_eq!(seen, all);

    let ids = |q: AttemptQuery| async move {
        db.query_attempts(firm, &q).await.unwrap().0.into_iter().map(|a| a.id).collect::<Vec<_>>()
    };
    let of = |pred: &dyn Fn(&calsync_store::SyncAttempt) -> bool| {
        made.iter().filter(|a| pred(a)).map(|a| a.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(AttemptQuery { connection: Some(c2.id), limit: 50, ..Default::default() }).await,
        of(&|a| a.connection_id == c2.id)
    );
    assert_eq!(
        ids(AttemptQuery { status: Some(AttemptStatus::Failed), limit: 50, ..Default::default() }).await,
        of(&|a| a.status == AttemptStatus::Failed)
    );
    assert_eq!(
        ids(AttemptQuery {
            connection: Some(c1.id),
            status: Some(AttemptStatus::Success),
            since: Some(made[3].started_at),
            limit: 50,
            ..Default::default()
        })
        .await,
        vec![made[0].id, made[3].id],
        "since is inclusive"
    );
    assert_eq!(ids(AttemptQuery { limit: 0, ..Default::default() }).await, vec![made[0].id], "limit at least 1");

    assert_eq!(db.attempt(firm, made[2].id).await.unwrap(), made[2]);
    assert_eq!(db.last_attempt(firm, c1.id).await.unwrap().map(|a| a.id), Some(made[0].id));
    assert_eq!(db.last_attempt(firm, c2.id).await.unwrap().map(|a| a.id), Some(made[2].id));

    let eve = user(db, "globex", "eve@globex.test").await;
    assert!(matches!(db.attempt(eve.firm_id, made[2].id).await, Err(StoreError::NotFound)));
    assert!(
        db.query_attempts(eve.firm_id, &AttemptQuery { limit: 50, ..Default::default() }).await.unwrap().0.is_empty()
    );
    let theirs = AttemptQuery { connection: Some(c1.id), limit: 50, ..Default::default() };
    assert!(db.query_attempts(eve.firm_id, &theirs).await.unwrap().0.is_empty());
    assert_eq!(db.last_attempt(eve.firm_id, c1.id).await.unwrap(), None);
}

/// The history chart's figures: attempts and failures per UTC day, filtered like the log.
async fn attempts_are_counted_per_day(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let bob = user(db, "acme", "bob@acme.test").await;
    let (c1, _) = connected(db, &ann).await;
    let (c2, _) = connected(db, &bob).await;
    let firm = ann.firm_id;
    // Real time plus an offset: move to 09:00 UTC tomorrow so that no attempt straddles midnight.
    let now = db.clock().now();
    let nine = (now.date_naive() + chrono::Days::new(1)).and_hms_opt(9, 0, 0).unwrap().and_utc();
    db.clock().advance((nine - now).num_seconds());
    let first_day = nine.date_naive();
    // Day 0: c1 ok, c1 failed, c2 failed; day 2: c1 ok, c2 partial; nothing on day 1.
    let plan = [
        (0, c1.id, AttemptStatus::Success),
        (0, c1.id, AttemptStatus::Failed),
        (0, c2.id, AttemptStatus::Failed),
        (2, c1.id, AttemptStatus::Success),
        (2, c2.id, AttemptStatus::Partial),
    ];
    for (day, conn, status) in plan {
        let at = nine + chrono::Duration::days(day);
        if db.clock().now() < at {
            db.clock().advance((at - db.clock().now()).num_seconds());
        }
        db.clock().advance(1);
        let a = db.start_attempt(firm, conn, SyncTrigger::Scheduled, None).await.unwrap();
        db.finish_attempt(firm, a.id, status, &AttemptCounts::default(), None, &[]).await.unwrap();
    }
    let days = |q: AttemptQuery| async move {
        db.attempts_per_day(firm, &q)
            .await
            .unwrap()
            .into_iter()
            .map(|d| ((d.day - first_day).num_days(), d.attempts, d.failed))
            .collect::<Vec<_>>()
    };
    assert_eq!(days(AttemptQuery::default()).await, vec![(0, 3, 2), (2, 2, 0)]);
    assert_eq!(days(AttemptQuery { connection: Some(c1.id), ..Default::default() }).await, vec![(0, 2, 1), (2, 1, 0)]);
    assert_eq!(days(AttemptQuery { user: Some(bob.id), ..Default::default() }).await, vec![(0, 1, 1), (2, 1, 0)]);
    let since = AttemptQuery { since: Some(nine + chrono::Duration::days(1)), ..Default::default() };
    assert_eq!(days(since).await, vec![(2, 2, 0)]);
    let eve = user(db, "globex", "eve@globex.test").await;
    assert!(db.attempts_per_day(eve.firm_id, &AttemptQuery::default()).await.unwrap().is_empty());
}

async fn interrupted_attempts_are_closed_as_failed(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let (conn, _) = connected(db, &ann).await;
    let firm = ann.firm_id;
    let done = db.start_attempt(firm, conn.id, SyncTrigger::Manual, None).await.unwrap();
    let done =
        db.finish_attempt(firm, done.id, AttemptStatus::Success, &AttemptCounts::default(), None, &[]).await.unwrap();
    let left = db.start_attempt(firm, conn.id, SyncTrigger::Scheduled, None).await.unwrap();

    let eve = user(db, "globex", "eve@globex.test").await;
    assert_eq!(db.close_interrupted_attempts(eve.firm_id, conn.id).await.unwrap(), 0);
    assert_eq!(db.attempt(firm, left.id).await.unwrap().status, AttemptStatus::Running);

    assert_eq!(db.close_interrupted_attempts(firm, conn.id).await.unwrap(), 1);
    let closed = db.attempt(firm, left.id).await.unwrap();
    assert_eq!((closed.status, closed.error_kind.as_deref()), (AttemptStatus::Failed, Some("interrupted")));
    assert!(closed.finished_at.is_some());
    assert_eq!(db.attempt(firm, done.id).await.unwrap(), done, "finished attempts are left alone");
    assert_eq!(db.close_interrupted_attempts(firm, conn.id).await.unwrap(), 0);
}

async fn superseded_writes_are_completed_per_calendar_and_appointment(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let (conn, cals) = connected(db, &ann).await;
    let (primary, team) = (cal(&cals, "primary").id, cal(&cals, "team").id);
    let firm = ann.firm_id;
    let x = db.insert_appointment(firm, ann.id, data("x")).await.unwrap();
    let y = db.insert_appointment(firm, ann.id, data("y")).await.unwrap();
    let rec = |calendar, appt: AppointmentId, op| async move {
        db.record_write(firm, conn.id, calendar, appt, op, &appt.to_string(), None, None).await.unwrap().id
    };
    rec(primary, x.id, WriteOperation::Create).await;
    rec(primary, x.id, WriteOperation::Update).await;
    let keep_team = rec(team, x.id, WriteOperation::Create).await;
    let keep_y = rec(primary, y.id, WriteOperation::Create).await;

    let eve = user(db, "globex", "eve@globex.test").await;
    assert_eq!(db.complete_writes_for(eve.firm_id, primary, x.id).await.unwrap(), 0);
    assert_eq!(db.pending_writes(firm, conn.id).await.unwrap().len(), 4);

    assert_eq!(db.complete_writes_for(firm, primary, x.id).await.unwrap(), 2);
    let mut left: Vec<_> = db.pending_writes(firm, conn.id).await.unwrap().into_iter().map(|w| w.id).collect();
    left.sort();
    let mut want = vec![keep_team, keep_y];
    want.sort();
    assert_eq!(left, want);
    assert_eq!(db.complete_writes_for(firm, primary, x.id).await.unwrap(), 0);
}

backend_tests!(
    cursors_are_kept_per_calendar_and_cleared_per_connection,
    the_sync_lease_is_exclusive_until_it_expires,
    sync_outcomes_count_failures_and_schedule_the_next,
    the_push_calendar_is_the_chosen_writable_one_else_the_primary,
    local_changes_are_edits_deletions_and_unlinked_own_appointments,
    sync_appointments_include_tombstones_in_chunks,
    imports_write_the_appointment_and_its_link_or_nothing,
    remote_updates_apply_with_their_link_or_not_at_all,
    remote_deletes_tombstone_and_unlink_together,
    links_are_listed_per_appointment_and_their_state_set,
    conflicts_open_once_per_link_and_resolve_once,
    held_deletes_are_held_once_until_released,
    attempts_are_filtered_and_paged_newest_first,
    attempts_are_counted_per_day,
    interrupted_attempts_are_closed_as_failed,
    superseded_writes_are_completed_per_calendar_and_appointment,
);
