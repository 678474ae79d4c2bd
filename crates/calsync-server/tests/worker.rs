//! Background sync: the worker in `calsync serve` syncs due connections by itself, backs off
//! on failure and leaves revoked connections alone; several `calsync worker` processes share a
//! PostgreSQL database, and one killed mid-round loses its connections to the others. The
//! admin API lists the firm's connections and statistics. Real processes, a real sandbox.

mod common;

use calsync_domain::account::{Email, FirmSlug};
use calsync_domain::appointment::{AppointmentData, AppointmentInput};
use calsync_domain::connection::Provider;
use calsync_domain::ids::ConnectionId;
use calsync_domain::tenant::Role;
use calsync_server::crypto::Keyring;
use calsync_store::{CalendarInfo, NewGrant, NewUser};
use calsync_testkit::{Backend, backend_tests};
use chrono::{DateTime, Duration, Utc};
use common::{TEST_KEY, TestApp, connect_account, wait_for};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration as StdDuration;

const BASE: &str = "/api/calendar/oauth-connections";

async fn status_of(app: &TestApp, token: &str, conn: &str) -> Value {
    app.get(&format!("{BASE}/{conn}/sync_status/"), token).send().await.unwrap().json().await.unwrap()
}

/// Switching auto-sync off and on makes a connection due at once.
async fn make_due(app: &TestApp, token: &str, conn: &str) {
    for on in [false, true] {
        let resp =
            app.patch(&format!("{BASE}/{conn}/"), token).json(&json!({"sync_enabled": on})).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
}

async fn the_worker_syncs_by_itself_backs_off_and_leaves_revoked_connections_alone(backend: Backend) {
    let app = TestApp::spawn_with_sandbox_using(backend, |c| {
        c.worker.enabled = true;
        c.worker.poll = StdDuration::from_millis(50);
    })
    .await;
    let token = app.user("acme", "ann@acme.test", "staff").await;
    // The appointment first: the worker takes a new connection at once.
    let body = json!({"title": "Intake", "start": "2026-12-03T09:00:00Z", "end": "2026-12-03T10:00:00Z"});
    let resp = app.post("/api/appointments/", &token).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let c = connect_account(&app, &token, "google", "ann@google.test").await;
    let conn = c["id"].as_str().unwrap().to_owned();

    // Nobody presses a button: the worker pushes the appointment.
    let s = wait_for(20, "a scheduled sync", || async {
        let s = status_of(&app, &token, &conn).await;
        (s["last_attempt"]["status"] == "success").then_some(s)
    })
    .await;
    assert_eq!(s["last_attempt"]["trigger"], "scheduled");
    assert_eq!(s["last_attempt"]["pushed"]["created"], 1);
    // Next in five minutes, give or take 20%.
    let next: DateTime<Utc> = s["next_sync_at"].as_str().unwrap().parse().unwrap();
    let ahead = next - app.state.clock.now();
    assert!(ahead > Duration::seconds(230) && ahead <= Duration::seconds(360), "{ahead}");
    let ready: Value = app.http.get(app.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["worker"]["running"], true, "{ready}");
    // Counted once the worker's task is over (it may still be releasing the lease).
    let seen = ready["worker"]["syncs"].as_u64().unwrap() + ready["worker"]["in_flight"].as_u64().unwrap();
    assert!(seen >= 1, "{ready}");

    // Google fails: the sync fails, the reason is on the connection, and the next try waits a
    // minute (±20%), not five.
    app.control(
        "/_sandbox/faults",
        json!({"provider": "google", "path_regex": "/events", "kind": "status", "status": 503, "count": 1000}),
    )
    .await;
    let first = s["last_attempt"]["attempt_id"].clone();
    make_due(&app, &token, &conn).await;
    let s = wait_for(20, "a failed scheduled sync", || async {
        let s = status_of(&app, &token, &conn).await;
        (s["last_attempt"]["attempt_id"] != first && s["last_attempt"]["status"] == "failed").then_some(s)
    })
    .await;
    assert!(s["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{s}");
    let next: DateTime<Utc> = s["next_sync_at"].as_str().unwrap().parse().unwrap();
    let ahead = next - app.state.clock.now();
    assert!(ahead > Duration::seconds(40) && ahead <= Duration::seconds(72), "{ahead}");
    app.http.delete(app.sandbox_url("/_sandbox/faults")).send().await.unwrap();

    // Revoked there: found out by the next sync, and then not tried again until reconnected.
    app.control("/_sandbox/revoke", json!({"provider": "google", "email": "ann@google.test"})).await;
    let failed = s["last_attempt"]["attempt_id"].clone();
    make_due(&app, &token, &conn).await;
    let s = wait_for(20, "the revocation to be noticed", || async {
        let s = status_of(&app, &token, &conn).await;
        // Google answers a revoked grant's refresh with `invalid_grant`, as for an expired one.
        let refused = s["status"] == "revoked" || s["status"] == "expired";
        let over = s["last_attempt"]["attempt_id"] != failed && s["last_attempt"]["status"] == "failed";
        (over && refused).then_some(s)
    })
    .await;
    assert_eq!(s["last_attempt"]["error_kind"], "reauthorize");
    // Due by the clock an hour later, and still not claimable.
    app.state.clock.advance(3600);
    assert_eq!(app.db.due_backlog().await.unwrap(), 0);
    assert!(app.db.claim_due("probe", app.state.clock.now() + Duration::seconds(5), 10).await.unwrap().is_empty());

    // The metrics count what happened.
    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for needle in [
        "calsync_syncs_total{provider=\"google\",outcome=\"success\"}",
        "calsync_syncs_total{provider=\"google\",outcome=\"failed\"}",
        "calsync_provider_requests_total{provider=\"google\"}",
        "calsync_sync_duration_seconds_bucket{provider=\"google\"",
    ] {
        assert!(text.contains(needle), "{needle} missing from /metrics:\n{text}");
    }
}

async fn admins_list_the_firms_connections_and_statistics(backend: Backend) {
    let app = TestApp::spawn_with_sandbox(backend).await;
    let admin = app.user("acme", "boss@acme.test", "admin").await;
    let ann = app.user("acme", "ann@acme.test", "staff").await;
    let zed = app.user("acme", "zed@acme.test", "staff").await;
    let rival = app.user("globex", "boss@globex.test", "admin").await;
    let a = connect_account(&app, &ann, "google", "ann@google.test").await;
    let z = connect_account(&app, &zed, "microsoft", "zed@microsoft.test").await;
    let (a, z) = (a["id"].as_str().unwrap().to_owned(), z["id"].as_str().unwrap().to_owned());
    for (token, conn) in [(&ann, &a), (&zed, &z)] {
        let resp = app.post(&format!("{BASE}/{conn}/sync_now/"), token).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    // Zed's Microsoft account fails its next sync.
    app.control("/_sandbox/faults", json!({"provider": "microsoft", "kind": "status", "status": 503, "count": 1000}))
        .await;
    let resp = app.post(&format!("{BASE}/{z}/sync_now/"), &zed).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    app.http.delete(app.sandbox_url("/_sandbox/faults")).send().await.unwrap();

    // Staff may not look.
    for path in ["/api/calendar/admin/connections/", "/api/calendar/admin/stats/"] {
        let resp = app.get(path, &ann).send().await.unwrap();
        assert_eq!(resp.status(), 403, "{path}");
    }
    let list: Value = app.get("/api/calendar/admin/connections/", &admin).send().await.unwrap().json().await.unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], z.as_str(), "failing first: {list}");
    assert_eq!(items[0]["owner"]["email"], "zed@acme.test");
    assert_eq!(items[0]["failing"], true);
    assert_eq!(items[0]["consecutive_failures"], 1);
    assert_eq!(items[0]["last_attempt"]["status"], "failed");
    assert!(items[0]["last_error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(items[1]["id"], a.as_str());
    assert_eq!(items[1]["failing"], false);
    assert_eq!(items[1]["last_attempt"]["status"], "success");
    assert!(items[1]["next_sync_at"].is_string());
    let only: Value = app
        .get("/api/calendar/admin/connections/?provider=google&status=active", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(only["items"].as_array().unwrap().len(), 1);
    for (query, field) in [("status=sleepy", "status"), ("provider=yahoo", "provider"), ("owner=me", "owner")] {
        let resp = app.get(&format!("/api/calendar/admin/connections/?{query}"), &admin).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{query}");
        let e: Value = resp.json().await.unwrap();
        assert_eq!(e["error"]["field"], field, "{e}");
    }

    let stats: Value = app.get("/api/calendar/admin/stats/", &admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["connections"]["total"], 2, "{stats}");
    assert_eq!(stats["connections"]["by_provider"]["google"], 1);
    assert_eq!(stats["connections"]["by_provider"]["microsoft"], 1);
    assert_eq!(stats["connections"]["by_status"]["revoked"], 0);
    assert_eq!(stats["last_24h"]["syncs"], 3);
    assert_eq!(stats["last_24h"]["failed"], 1);
    let rate = stats["last_24h"]["success_rate"].as_f64().unwrap();
    assert!((rate - 2.0 / 3.0).abs() < 1e-9, "{stats}");
    assert!(
        stats["last_24h"]["duration_p95_ms"].as_i64().unwrap()
            >= stats["last_24h"]["duration_p50_ms"].as_i64().unwrap()
    );

    // Another firm's admin sees none of it, and cannot resync it; this firm's admin can.
    let theirs: Value = app.get("/api/calendar/admin/connections/", &rival).send().await.unwrap().json().await.unwrap();
    assert!(theirs["items"].as_array().unwrap().is_empty());
    let s: Value = app.get("/api/calendar/admin/stats/", &rival).send().await.unwrap().json().await.unwrap();
    assert_eq!((s["connections"]["total"].as_i64(), s["last_24h"]["syncs"].as_i64()), (Some(0), Some(0)));
    let resp = app.post(&format!("{BASE}/{a}/resync/"), &rival).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = app.post(&format!("{BASE}/{a}/resync/"), &admin).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

backend_tests!(
    the_worker_syncs_by_itself_backs_off_and_leaves_revoked_connections_alone,
    admins_list_the_firms_connections_and_statistics,
);

/// Connection, status, worker, started, finished.
type AttemptRow = (uuid::Uuid, String, Option<String>, DateTime<Utc>, Option<DateTime<Utc>>);
/// Connection, lease owner, lease end, last error, next sync.
type LeaseRow = (uuid::Uuid, Option<String>, Option<DateTime<Utc>>, Option<String>, Option<DateTime<Utc>>);

/// A child process killed when the test ends, passed or not.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One `calsync worker` process on the test's database and sandbox.
fn worker(app: &TestApp, lease_secs: u64) -> Reaped {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_calsync"))
        .arg("worker")
        .env("DATABASE_URL", &app.url_db)
        .env("CALSYNC_ENCRYPTION_KEY", TEST_KEY)
        .env("CALSYNC_SANDBOX", app.sandbox.as_deref().unwrap())
        .env("CALSYNC_BIND", "127.0.0.1:0")
        .env("CALSYNC_SYNC_LEASE_SECONDS", lease_secs.to_string())
        .env("CALSYNC_SYNC_INTERVAL_SECONDS", "3600")
        .env("CALSYNC_WORKER_CONCURRENCY", "4")
        .env("CALSYNC_PROVIDER_TIMEOUT_SECS", "10")
        .env("CALSYNC_LOG", "warn")
        .env_remove("CALSYNC_CONFIG")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("calsync worker starts");
    Reaped(child)
}

/// Three worker processes, 300 connections with an appointment each, one worker killed with
/// SIGKILL mid-round: every connection synced once, no two attempts of one connection at the
/// same time, the killed worker's connections taken over within the lease, no event twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_share_the_connections_and_survive_a_kill() {
    const N: usize = 300;
    const LEASE: u64 = 6;
    let app = TestApp::spawn_with_sandbox(Backend::Postgres).await;
    // Slow enough that the round is still going when a worker dies.
    app.control("/_sandbox/latency", json!({"milliseconds": 40})).await;
    let db = &app.db;
    let keyring = Keyring::parse(TEST_KEY).unwrap();
    let firm = db.create_firm("Scale", &FirmSlug::parse("scale").unwrap()).await.unwrap();
    let mut accounts: HashMap<ConnectionId, (String, String)> = HashMap::new();
    for i in 0..N {
        let user = db
            .create_user(NewUser {
                firm_id: firm.id,
                email: Email::parse(&format!("s{i}@scale.test")).unwrap(),
                name: format!("Staff {i}"),
                role: Role::Staff,
                password_hash: "-".into(),
            })
            .await
            .unwrap();
        let email = format!("s{i}@google.test");
        let minted = app.control("/_sandbox/accounts", json!({"provider": "google", "email": email})).await;
        let grant = NewGrant {
            firm_id: firm.id,
            user_id: user.id,
            provider: Provider::Google,
            account_id: format!("scale-{i}"),
            account_email: email.clone(),
            access_token: minted["access_token"].as_str().unwrap().to_owned().into(),
            refresh_token: Some(minted["refresh_token"].as_str().unwrap().to_owned().into()),
            expires_at: Some(db.clock().now() + Duration::minutes(55)),
            scopes: vec![],
        };
        let cal = CalendarInfo {
            remote_id: "primary".into(),
            name: email.clone(),
            is_primary: true,
            can_write: true,
            time_zone: None,
            color: None,
        };
        let conn = db.save_grant(&keyring, &grant, &[cal]).await.unwrap();
        let title = format!("Appointment {i}");
        let data = AppointmentData::create(AppointmentInput {
            title: Some(title.clone()),
            start: Some("2026-12-04T09:00:00Z".into()),
            end: Some("2026-12-04T09:30:00Z".into()),
            ..Default::default()
        })
        .unwrap();
        db.insert_appointment(firm.id, user.id, data).await.unwrap();
        accounts.insert(conn.id, (minted["access_token"].as_str().unwrap().to_owned(), title));
    }

    let mut workers: Vec<Reaped> = (0..3).map(|_| worker(&app, LEASE)).collect();
    let pool = sqlx::PgPool::connect(&app.url_db).await.unwrap();
    let attempts = || async {
        let rows: Vec<AttemptRow> = sqlx::query_as(
            "SELECT connection_id, status, worker, started_at, finished_at FROM sync_attempts WHERE firm_id = $1",
        )
        .bind(firm.id.as_uuid())
        .fetch_all(&pool)
        .await
        .unwrap();
        rows
    };
    // Kill the first worker once it is busy and the round is a good way along.
    let victim = workers[0].0.id();
    let prefix = format!("sync-{victim}-");
    wait_for(120, "the victim to be mid-round", || async {
        let rows = attempts().await;
        let mine = rows.iter().filter(|r| r.2.as_deref().is_some_and(|w| w.starts_with(&prefix))).count();
        let running = rows.iter().any(|r| r.1 == "running" && r.2.as_deref().is_some_and(|w| w.starts_with(&prefix)));
        (mine >= 10 && running && rows.len() >= N / 5).then_some(())
    })
    .await;
    workers[0].0.kill().unwrap();
    workers[0].0.wait().unwrap();
    let killed_at = Utc::now();

    let polls = std::sync::atomic::AtomicU32::new(0);
    let rows = wait_for(180, "every connection synced", || async {
        let rows = attempts().await;
        let done: std::collections::HashSet<uuid::Uuid> =
            rows.iter().filter(|r| r.1 == "success").map(|r| r.0).collect();
        let n = polls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        // Every few seconds, where things stand (shown if the test fails).
        if n.is_multiple_of(100) || std::env::var("WORKER_DEBUG").is_ok() {
            let mut by: HashMap<&str, usize> = HashMap::new();
            for r in &rows {
                *by.entry(r.1.as_str()).or_default() += 1;
            }
            let leases: Vec<LeaseRow> = sqlx::query_as(
                "SELECT id, lease_owner, lease_until, last_error, next_sync_at FROM oauth_connections \
                     WHERE firm_id = $1 AND (last_sync_at IS NULL OR last_error IS NOT NULL)",
            )
            .bind(firm.id.as_uuid())
            .fetch_all(&pool)
            .await
            .unwrap();
            eprintln!(
                "{} synced; attempts {by:?}; unsynced {:?}",
                done.len(),
                leases.iter().take(3).collect::<Vec<_>>()
            );
        }
        (done.len() == N).then_some(rows)
    })
    .await;

    let mut by_conn: HashMap<uuid::Uuid, Vec<_>> = HashMap::new();
    for r in &rows {
        by_conn.entry(r.0).or_default().push(r.clone());
    }
    let mut taken_over = 0;
    for (conn, mut list) in by_conn {
        list.sort_by_key(|r| r.3);
        // Synced once this round: one success each (an attempt the kill cut short is closed as
        // failed by the worker that took over).
        assert_eq!(list.iter().filter(|r| r.1 == "success").count(), 1, "{conn}: {list:?}");
        for pair in list.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let a_end = a.4.expect("closed before the next began");
            assert!(a_end <= b.3, "{conn}: attempts overlap: {list:?}");
            if a.2.as_deref().is_some_and(|w| w.starts_with(&prefix)) {
                assert_eq!(a.1, "failed", "{conn}: the killed worker's attempt is closed as interrupted");
                // Taken over within the lease (plus the pollers' second and some slack).
                assert!(b.3 <= killed_at + Duration::seconds(LEASE as i64 * 3 + 5), "{conn}: {list:?}");
                taken_over += 1;
            }
        }
        // The killed worker's own successes were finished before it died.
        let last = list.last().unwrap();
        if last.2.as_deref().is_some_and(|w| w.starts_with(&prefix)) {
            assert!(last.1 == "success" && last.4.is_some_and(|f| f <= killed_at), "{conn}: {list:?}");
        }
    }
    assert!(taken_over >= 1, "the kill cut at least one sync short");

    // No event twice, none missing: each account holds exactly its one appointment.
    let events_url = app.sandbox_url("/google/calendar/v3/calendars/primary/events?maxResults=2500");
    app.control("/_sandbox/latency", json!({"milliseconds": 0})).await;
    for (token, title) in accounts.values() {
        let v: Value = app.http.get(&events_url).bearer_auth(token).send().await.unwrap().json().await.unwrap();
        let titles: Vec<&str> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["status"] != "cancelled")
            .filter_map(|e| e["summary"].as_str())
            .collect();
        assert_eq!(titles, vec![title.as_str()]);
    }

    // The others stop gracefully on SIGTERM.
    for w in &mut workers[1..] {
        let status = std::process::Command::new("kill").args(["-TERM", &w.0.id().to_string()]).status().unwrap();
        assert!(status.success());
        assert!(w.0.wait().unwrap().success());
    }
}
