//! The background workers' storage on SQLite and PostgreSQL: which connections are due, the
//! claim with its lease (exclusive, taken over once it runs out, never two workers on one
//! connection however they race), and the admins' listing and statistics, per firm.

use std::collections::HashSet;

use calsync_domain::account::{Email, FirmSlug};
use calsync_domain::connection::{ConnectionStatus, Provider, StatusReason};
use calsync_domain::ids::ConnectionId;
use calsync_domain::sync::{AttemptStatus, SyncTrigger};
use calsync_domain::tenant::Role;
use calsync_store::crypto::Keyring;
use calsync_store::{
    AttemptCounts, CalendarInfo, Connection, Db, NewGrant, NewUser, SettingsChange, StoreError, SyncOutcome, User,
    WebhookChannel,
};
use calsync_testkit::{Backend, TestDb, backend_tests};
use chrono::Duration;

async fn user(db: &Db, slug: &str, email: &str) -> User {
    let firm = match db.firm_by_slug(slug).await {
        Ok(f) => f,
        Err(_) => db.create_firm("Firm", &FirmSlug::parse(slug).unwrap()).await.unwrap(),
    };
    db.create_user(NewUser {
        firm_id: firm.id,
        email: Email::parse(email).unwrap(),
        name: email.split('@').next().unwrap().into(),
        role: Role::Staff,
        password_hash: "h".into(),
    })
    .await
    .unwrap()
}

async fn connect(db: &Db, u: &User, account: &str, provider: Provider) -> Connection {
    let k = Keyring::parse(&Keyring::generate_spec("k1")).unwrap();
    let grant = NewGrant {
        firm_id: u.firm_id,
        user_id: u.id,
        provider,
        account_id: format!("sub-{account}"),
        account_email: account.into(),
        access_token: "a".into(),
        refresh_token: Some("r".into()),
        expires_at: Some(db.clock().now() + Duration::hours(1)),
        scopes: vec![],
    };
    let cal = CalendarInfo {
        remote_id: "primary".into(),
        name: "P".into(),
        is_primary: true,
        can_write: true,
        time_zone: None,
        color: None,
    };
    db.save_grant(&k, &grant, &[cal]).await.unwrap()
}

fn ids(list: &[calsync_store::Claimed]) -> HashSet<ConnectionId> {
    list.iter().map(|c| c.connection_id).collect()
}

async fn due_connections_are_claimed_once_and_taken_over_when_the_lease_runs_out(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let bob = user(db, "acme", "bob@acme.test").await;
    let eve = user(db, "globex", "eve@globex.test").await;
    let a = connect(db, &ann, "ann@gmail.test", Provider::Google).await;
    let b = connect(db, &bob, "bob@outlook.test", Provider::Microsoft).await;
    let off = connect(db, &bob, "bob@gmail.test", Provider::Google).await;
    let expired = connect(db, &ann, "ann@outlook.test", Provider::Microsoft).await;
    let e = connect(db, &eve, "eve@gmail.test", Provider::Google).await;
    // A new connection is due at once.
    assert!(a.next_sync_at.is_some_and(|t| t <= db.clock().now()));
    let change = SettingsChange { sync_enabled: Some(false), ..Default::default() };
    db.update_connection_settings(bob.firm_id, bob.id, off.id, &change).await.unwrap().unwrap();
    let msg = "reconnect";
    db.set_connection_status(
        ann.firm_id,
        expired.id,
        None,
        ConnectionStatus::Expired,
        StatusReason::GrantExpired,
        msg,
        false,
    )
    .await
    .unwrap();
    assert_eq!(db.due_backlog().await.unwrap(), 3, "disabled and expired connections are not due");

    // Every firm's due connections, at most `limit` of them, each to one worker only.
    let until = db.clock().now() + Duration::seconds(60);
    let first = db.claim_due("w1", until, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    let second = db.claim_due("w2", until, 10).await.unwrap();
    assert_eq!(second.len(), 1);
    let all: HashSet<ConnectionId> = ids(&first).union(&ids(&second)).copied().collect();
    assert_eq!(all, HashSet::from([a.id, b.id, e.id]));
    assert!(first.iter().chain(&second).all(|c| c.taken_from.is_none()));
    assert!(db.claim_due("w3", until, 10).await.unwrap().is_empty(), "all leased");
    assert_eq!(db.due_backlog().await.unwrap(), 0);
    let providers: HashSet<Provider> = first.iter().chain(&second).map(|c| c.provider).collect();
    assert_eq!(providers, HashSet::from([Provider::Google, Provider::Microsoft]));

    // A sync finishes: released, and scheduled later; not due again before then.
    let done = second[0].clone();
    db.record_sync_outcome(done.firm_id, done.connection_id, true, None, db.clock().now() + Duration::seconds(300))
        .await
        .unwrap();
    db.release_sync(done.firm_id, done.connection_id, "w2").await.unwrap();
    assert!(db.claim_due("w3", until, 10).await.unwrap().is_empty());

    // w1 dies: once its leases run out, another worker takes them over and says from whom.
    db.clock().advance(61);
    let taken = db.claim_due("w3", db.clock().now() + Duration::seconds(60), 10).await.unwrap();
    assert_eq!(ids(&taken), ids(&first));
    assert!(taken.iter().all(|c| c.taken_from.as_deref() == Some("w1")), "{taken:?}");
    // A stopping worker gives back what it holds.
    assert_eq!(db.release_all_leases("w3").await.unwrap(), 2);
    let again = db.claim_due("w4", db.clock().now() + Duration::seconds(60), 10).await.unwrap();
    assert_eq!(ids(&again), ids(&first));
    assert!(again.iter().all(|c| c.taken_from.is_none()), "released, not taken over");

    // Due later: a webhook makes it due now; the time of one due earlier is kept.
    db.clock().advance(1);
    assert!(db.mark_due(done.firm_id, done.connection_id).await.unwrap());
    let now_due = db.claim_due("w5", db.clock().now() + Duration::seconds(60), 10).await.unwrap();
    assert_eq!(ids(&now_due), HashSet::from([done.connection_id]));
    // Not for a disabled connection, nor across firms.
    assert!(!db.mark_due(bob.firm_id, off.id).await.unwrap());
    assert!(db.mark_due(eve.firm_id, a.id).await.is_err());

    // Switching auto-sync back on, or reconnecting an expired connection, makes it due at once.
    let on = SettingsChange { sync_enabled: Some(true), ..Default::default() };
    db.update_connection_settings(bob.firm_id, bob.id, off.id, &on).await.unwrap().unwrap();
    connect(db, &ann, "ann@outlook.test", Provider::Microsoft).await;
    let back = db.claim_due("w6", db.clock().now() + Duration::seconds(60), 10).await.unwrap();
    assert_eq!(ids(&back), HashSet::from([off.id, expired.id]));
}

async fn racing_workers_never_claim_one_connection_twice(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let mut made = HashSet::new();
    for i in 0..12 {
        let u = user(db, &format!("firm-{}", i % 3), &format!("u{i}@acme.test")).await;
        for p in [Provider::Google, Provider::Microsoft] {
            made.insert(connect(db, &u, &format!("u{i}@{}.test", p.as_str()), p).await.id);
        }
    }
    let until = db.clock().now() + Duration::seconds(600);
    let mut workers = Vec::new();
    for w in 0..4 {
        let db = db.clone();
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = db.claim_due(&format!("w{w}"), until, 3).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.connection_id));
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut claimed = Vec::new();
    for w in workers {
        claimed.extend(w.await.unwrap());
    }
    let unique: HashSet<ConnectionId> = claimed.iter().copied().collect();
    assert_eq!(unique.len(), claimed.len(), "a connection was claimed twice");
    assert_eq!(unique, made);
}

async fn admins_see_failing_connections_first_and_their_statistics(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let zed = user(db, "acme", "zed@acme.test").await;
    let eve = user(db, "globex", "eve@globex.test").await;
    let fine = connect(db, &ann, "ann@gmail.test", Provider::Google).await;
    let failing = connect(db, &zed, "zed@outlook.test", Provider::Microsoft).await;
    let other = connect(db, &eve, "eve@gmail.test", Provider::Google).await;
    let firm = ann.firm_id;
    let later = db.clock().now() + Duration::seconds(60);
    db.record_sync_outcome(firm, failing.id, false, Some("Microsoft is unavailable"), later).await.unwrap();

    // Ten attempts of 1 … 10 seconds, one failed and one partial, with 3 events each.
    let counts = AttemptCounts { pulled_created: 1, pushed_updated: 2, ..Default::default() };
    for secs in 1..=10 {
        let a = db.start_attempt_by(firm, fine.id, SyncTrigger::Scheduled, None, Some("w1")).await.unwrap();
        assert_eq!(a.worker.as_deref(), Some("w1"));
        db.clock().advance(secs);
        let status = match secs {
            3 => AttemptStatus::Failed,
            4 => AttemptStatus::Partial,
            _ => AttemptStatus::Success,
        };
        db.finish_attempt(firm, a.id, status, &counts, None, &[]).await.unwrap();
    }
    let last = db.start_attempt(firm, failing.id, SyncTrigger::Manual, None).await.unwrap();
    db.finish_attempt(
        firm,
        last.id,
        AttemptStatus::Failed,
        &AttemptCounts::default(),
        Some(("retry_after", "busy")),
        &[],
    )
    .await
    .unwrap();
    // Globex's attempt counts for globex only.
    let theirs = db.start_attempt(eve.firm_id, other.id, SyncTrigger::Manual, None).await.unwrap();
    db.finish_attempt(eve.firm_id, theirs.id, AttemptStatus::Success, &counts, None, &[]).await.unwrap();

    let since = db.clock().now() - Duration::hours(24);
    let s = db.sync_stats(firm, since).await.unwrap();
    assert_eq!((s.attempts, s.succeeded, s.partial, s.failed), (11, 8, 1, 2));
    assert_eq!(s.events_moved, 30);
    // Nearest rank over 11 durations (0 s and 1 … 10 s, plus the real time the test takes):
    // the 6th and the 11th.
    let (p50, p95) = (s.p50_ms.unwrap(), s.p95_ms.unwrap());
    assert!((5000..5500).contains(&p50) && (10_000..10_500).contains(&p95), "{p50} {p95}");
    assert_eq!(
        s.connections,
        vec![(ConnectionStatus::Active, Provider::Google, 1), (ConnectionStatus::Active, Provider::Microsoft, 1)]
    );
    assert_eq!(s.backlog, 1, "the fine connection is due; the failing one waits for its backoff");
    let g = db.sync_stats(eve.firm_id, since).await.unwrap();
    assert_eq!((g.attempts, g.events_moved), (1, 3));
    // Older attempts fall out of the window.
    let none = db.sync_stats(firm, db.clock().now() + Duration::seconds(1)).await.unwrap();
    assert_eq!((none.attempts, none.p50_ms), (0, None));

    let list = db.admin_connections(firm, None, None).await.unwrap();
    let order: Vec<ConnectionId> = list.iter().map(|c| c.connection.id).collect();
    assert_eq!(order, vec![failing.id, fine.id], "failing first");
    assert_eq!(list[0].owner_email, "zed@acme.test");
    assert_eq!(list[0].connection.failure_count, 1);
    assert_eq!(list[0].last_attempt.as_ref().map(|a| a.id), Some(last.id));
    assert_eq!(list[1].last_attempt.as_ref().map(|a| a.status), Some(AttemptStatus::Success));
    let google = db.admin_connections(firm, None, Some(Provider::Google)).await.unwrap();
    assert_eq!(google.iter().map(|c| c.connection.id).collect::<Vec<_>>(), vec![fine.id]);
    assert!(db.admin_connections(firm, Some(ConnectionStatus::Revoked), None).await.unwrap().is_empty());
}

/// Push channels: found by the id a delivery names, scoped to their firm for every change,
/// renewed, paused and forgotten; a disconnect forgets them all.
async fn push_channels_are_found_by_delivery_and_kept_per_firm(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let eve = user(db, "globex", "eve@globex.test").await;
    let a = connect(db, &ann, "ann@outlook.test", Provider::Microsoft).await;
    let cal = db.calendars(ann.firm_id, a.id).await.unwrap().remove(0);
    // As stored: to the microsecond.
    let now = chrono::DateTime::from_timestamp_micros(db.clock().now().timestamp_micros()).unwrap();
    let ch = WebhookChannel {
        id: uuid::Uuid::now_v7(),
        firm_id: ann.firm_id,
        connection_id: a.id,
        calendar_id: cal.id,
        provider: Provider::Microsoft,
        remote_id: "sub-1".into(),
        secret_hash: "ab".repeat(32),
        expires_at: now + Duration::hours(70),
        needs_reauthorization: false,
        last_delivery_at: None,
        deliveries: 0,
        created_at: now,
    };
    db.insert_channel(&ch).await.unwrap();
    assert_eq!(db.channel_by_id(ch.id).await.unwrap().as_ref(), Some(&ch));
    assert_eq!(db.channel_by_remote_id(Provider::Microsoft, "sub-1").await.unwrap().as_ref(), Some(&ch));
    assert_eq!(db.channel_by_remote_id(Provider::Google, "sub-1").await.unwrap(), None);
    // One subscription id is one channel.
    let twin = WebhookChannel { id: uuid::Uuid::now_v7(), ..ch.clone() };
    assert!(db.insert_channel(&twin).await.is_err());

    // Another firm changes nothing of it.
    db.flag_reauthorization(eve.firm_id, ch.id).await.unwrap();
    db.record_delivery(eve.firm_id, ch.id).await.unwrap();
    db.delete_channel(eve.firm_id, ch.id).await.unwrap();
    assert!(db.channels(eve.firm_id, a.id).await.unwrap().is_empty());
    assert_eq!(db.channels(ann.firm_id, a.id).await.unwrap(), vec![ch.clone()]);

    db.flag_reauthorization(ann.firm_id, ch.id).await.unwrap();
    db.record_delivery(ann.firm_id, ch.id).await.unwrap();
    let got = db.channel_by_id(ch.id).await.unwrap().unwrap();
    assert!(got.needs_reauthorization);
    assert_eq!((got.deliveries, got.last_delivery_at.is_some()), (1, true));
    let later = now + Duration::hours(140);
    db.renew_channel(ann.firm_id, ch.id, later).await.unwrap();
    let got = db.channel_by_id(ch.id).await.unwrap().unwrap();
    assert!(!got.needs_reauthorization);
    assert_eq!(got.expires_at.timestamp_micros(), later.timestamp_micros());
    db.channel_opened(ann.firm_id, ch.id, "sub-2", now + Duration::hours(1)).await.unwrap();
    assert_eq!(db.channel_by_remote_id(Provider::Microsoft, "sub-2").await.unwrap().unwrap().id, ch.id);

    // Google's resource id names the calendar: a replacement channel may share it.
    let g = connect(db, &ann, "ann@gmail.test", Provider::Google).await;
    let gcal = db.calendars(ann.firm_id, g.id).await.unwrap().remove(0);
    let google = |n: u8| WebhookChannel {
        id: uuid::Uuid::now_v7(),
        connection_id: g.id,
        calendar_id: gcal.id,
        provider: Provider::Google,
        remote_id: "resource-of-primary".into(),
        secret_hash: format!("{n:064}"),
        ..ch.clone()
    };
    db.insert_channel(&google(1)).await.unwrap();
    db.insert_channel(&google(2)).await.unwrap();
    assert_eq!(db.channels(ann.firm_id, g.id).await.unwrap().len(), 2);

    // Disconnecting forgets the connection's channels; a channel being opened for it then is
    // refused, and one recorded just before cannot be completed.
    db.disconnect(ann.firm_id, ann.id, a.id, "bye").await.unwrap();
    assert!(db.channels(ann.firm_id, a.id).await.unwrap().is_empty());
    assert_eq!(db.channel_by_id(ch.id).await.unwrap(), None);
    assert!(matches!(
        db.insert_channel(&WebhookChannel { remote_id: "sub-3".into(), ..ch.clone() }).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(db.channel_opened(ann.firm_id, ch.id, "sub-4", now).await, Err(StoreError::NotFound)));
}

/// A delivery that comes while its connection is being synced makes it due again as soon as
/// that sync ends (the sync may have listed the calendar before the change); one that comes
/// between syncs only makes it due now.
async fn a_delivery_during_a_sync_makes_the_connection_due_again(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let c = connect(db, &ann, "ann@gmail.test", Provider::Google).await;
    let firm = ann.firm_id;
    let finish = |delivered: bool| async move {
        let now = db.clock().now();
        let claimed = db.claim_due("w1", now + Duration::minutes(10), 10).await.unwrap();
        assert_eq!(ids(&claimed), HashSet::from([c.id]));
        let attempt = db.start_attempt_by(firm, c.id, SyncTrigger::Scheduled, None, Some("w1")).await.unwrap();
        if delivered {
            assert!(db.mark_due(firm, c.id).await.unwrap());
        }
        let later = now + Duration::minutes(30);
        let outcome = SyncOutcome {
            connection: c.id,
            succeeded: true,
            last_error: None,
            next_sync_at: later,
            release: None,
            cursors: &[],
        };
        db.finish_sync(firm, attempt.id, AttemptStatus::Success, &AttemptCounts::default(), None, &[], &outcome)
            .await
            .unwrap();
        db.release_sync(firm, c.id, "w1").await.unwrap();
        db.connection(firm, None, c.id).await.unwrap().next_sync_at.unwrap() - now
    };
    // A delivery mid-sync: due again at once.
    assert!(finish(true).await <= Duration::seconds(1));
    // None: due in half an hour, as scheduled.
    let ahead = finish(false).await;
    assert!(ahead > Duration::minutes(29) && ahead <= Duration::minutes(30), "{ahead}");
    // A delivery between syncs makes it due now, and the next sync ends as scheduled.
    assert!(db.mark_due(firm, c.id).await.unwrap());
    assert!(db.connection(firm, None, c.id).await.unwrap().next_sync_at.unwrap() <= db.clock().now());
    let ahead = finish(false).await;
    assert!(ahead > Duration::minutes(29), "{ahead}");
}

/// The worker's short path: an attempt opens only under the opener's live lease; a heartbeat
/// renews a lease but never takes a free one; the outcome gives the lease back and stores the
/// cursors in its transaction; a stopping worker's unfinished attempts are closed.
async fn a_claimed_sync_runs_under_its_lease_and_gives_it_back_with_its_outcome(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.db;
    let ann = user(db, "acme", "ann@acme.test").await;
    let c = connect(db, &ann, "ann@gmail.test", Provider::Google).await;
    let firm = ann.firm_id;
    let now = db.clock().now();
    let trigger = SyncTrigger::Scheduled;
    // No lease: no attempt, and a heartbeat does not take it.
    assert!(db.start_leased_attempt(firm, c.id, trigger, None, "w1").await.unwrap().is_none());
    assert!(!db.renew_sync(firm, c.id, "w1", now + Duration::minutes(10)).await.unwrap());
    assert!(!db.sync_in_progress(firm, c.id).await.unwrap());
    assert_eq!(ids(&db.claim_due("w1", now + Duration::seconds(60), 10).await.unwrap()), HashSet::from([c.id]));
    // Another worker's name, or another firm, opens nothing.
    assert!(db.start_leased_attempt(firm, c.id, trigger, None, "w2").await.unwrap().is_none());
    let eve = user(db, "evil", "eve@evil.test").await;
    assert!(db.start_leased_attempt(eve.firm_id, c.id, trigger, None, "w1").await.unwrap().is_none());
    // A lease that ran out opens nothing either, until it is renewed.
    db.clock().advance(61);
    assert!(db.start_leased_attempt(firm, c.id, trigger, None, "w1").await.unwrap().is_none());
    assert!(db.renew_sync(firm, c.id, "w1", db.clock().now() + Duration::seconds(60)).await.unwrap());
    let attempt = db.start_leased_attempt(firm, c.id, trigger, None, "w1").await.unwrap().expect("under the lease");
    assert_eq!(attempt.status, AttemptStatus::Running);
    assert_eq!(attempt.worker.as_deref(), Some("w1"));
    // The outcome stores the cursor and gives the lease back, in one go.
    let cal = db.calendars(firm, c.id).await.unwrap().remove(0);
    assert_eq!(cal.cursor, None);
    // Windows start and end at midnight (the engine's `window_for`).
    let midnight = db.clock().now().date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let cursor = calsync_store::CalendarCursor {
        cursor: "token-2".into(),
        window_start: midnight - Duration::days(30),
        window_end: midnight + Duration::days(31),
    };
    let cursors = [calsync_store::CursorMove { calendar: cal.id, from: None, to: cursor.clone() }];
    let later = db.clock().now() + Duration::minutes(30);
    let outcome = SyncOutcome {
        connection: c.id,
        succeeded: true,
        last_error: None,
        next_sync_at: later,
        release: Some("w1"),
        cursors: &cursors,
    };
    db.finish_sync(firm, attempt.id, AttemptStatus::Success, &AttemptCounts::default(), None, &[], &outcome)
        .await
        .unwrap();
    assert!(!db.sync_in_progress(firm, c.id).await.unwrap(), "given back");
    assert_eq!(db.calendars(firm, c.id).await.unwrap()[0].cursor, Some(cursor.clone()));
    assert_eq!(db.calendar_cursor(firm, cal.id).await.unwrap(), Some(cursor.clone()));
    // A late heartbeat after that changes nothing.
    assert!(!db.renew_sync(firm, c.id, "w1", later).await.unwrap());
    assert!(!db.sync_in_progress(firm, c.id).await.unwrap());
    // A resync cleared the cursor while a sync listed from it: that sync's cursor is not stored.
    db.clear_cursors(firm, c.id).await.unwrap();
    db.clock().advance(31 * 60);
    assert_eq!(db.claim_due("w1", db.clock().now() + Duration::minutes(10), 10).await.unwrap().len(), 1);
    let second = db.start_leased_attempt(firm, c.id, trigger, None, "w1").await.unwrap().unwrap();
    let stale = [calsync_store::CursorMove {
        calendar: cal.id,
        from: Some("token-2".into()),
        to: calsync_store::CalendarCursor { cursor: "token-3".into(), ..cursor.clone() },
    }];
    let later = db.clock().now() + Duration::minutes(30);
    let outcome = SyncOutcome { next_sync_at: later, cursors: &stale, ..outcome };
    db.finish_sync(firm, second.id, AttemptStatus::Success, &AttemptCounts::default(), None, &[], &outcome)
        .await
        .unwrap();
    assert_eq!(db.calendars(firm, c.id).await.unwrap()[0].cursor, None, "the clear stands");
    // A worker stopping mid-sync: its attempt is closed and its lease released.
    db.clock().advance(31 * 60);
    assert_eq!(db.claim_due("w1", db.clock().now() + Duration::minutes(10), 10).await.unwrap().len(), 1);
    let open = db.start_leased_attempt(firm, c.id, trigger, None, "w1").await.unwrap().unwrap();
    assert_eq!(db.release_all_leases("w1").await.unwrap(), 1);
    let closed = db.attempt(firm, open.id).await.unwrap();
    assert_eq!((closed.status, closed.error_kind.as_deref()), (AttemptStatus::Failed, Some("interrupted")));
    assert!(!db.sync_in_progress(firm, c.id).await.unwrap());
}

backend_tests!(
    a_claimed_sync_runs_under_its_lease_and_gives_it_back_with_its_outcome,
    push_channels_are_found_by_delivery_and_kept_per_firm,
    a_delivery_during_a_sync_makes_the_connection_due_again,
    due_connections_are_claimed_once_and_taken_over_when_the_lease_runs_out,
    racing_workers_never_claim_one_connection_twice,
    admins_see_failing_connections_first_and_their_statistics,
);
