//! The `calsync` binary as operators and scripts use it: admin commands, migrate, and the first
//! run of `serve`, on SQLite and PostgreSQL.

mod common;

use calsync_testkit::{Backend, TestDb, backend_tests};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn calsync(db_url: &str, dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_calsync"))
        .args(args)
        .current_dir(dir)
        .env("DATABASE_URL", db_url)
        .env_remove("CALSYNC_ENCRYPTION_KEY")
        .env_remove("CALSYNC_CONFIG")
        .output()
        .expect("calsync runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails with exactly one line on stderr naming the reason.
fn assert_fails_with(o: &Output, reason: &str) {
    assert!(!o.status.success(), "expected failure, got {o:?}");
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("WARNING:")).collect();
    assert_eq!(lines.len(), 1, "one line of reason: {err:?}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(reason), "{:?} lacks {reason:?}", lines[0]);
}

async fn admin_commands(backend: Backend) {
    let t = TestDb::empty(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| calsync(&t.url, dir.path(), args);

    let o = run(&["migrate"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["admin", "create-firm", "--name", "Acme Consulting", "--slug", "acme"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("acme"));
    assert_fails_with(&run(&["admin", "create-firm", "--name", "Again", "--slug", "acme"]), "slug");
    assert_fails_with(&run(&["admin", "create-firm", "--name", "Bad", "--slug", "Not A Slug"]), "slug");

    let user = |email: &str, role: &str, password: &str, firm: &str| {
        run(&[
            "admin",
            "create-user",
            "--firm",
            firm,
            "--email",
            email,
            "--name",
            "Ann",
            "--role",
            role,
            "--password",
            password,
        ])
    };
    let o = user("ann@acme.test", "staff", "correct horse battery", "acme");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_fails_with(&user("bob@acme.test", "staff", "correct horse battery", "nope"), "no firm");
    assert_fails_with(&user("ANN@acme.test", "admin", "correct horse battery", "acme"), "already exists");
    assert_fails_with(&user("bob@acme.test", "owner", "correct horse battery", "acme"), "role");
    assert_fails_with(&user("bob@acme.test", "staff", "", "acme"), "password: must not be empty");
    assert_fails_with(&user("bob@acme.test", "staff", "short", "acme"), "too weak");
    assert_fails_with(&user("not-an-email", "staff", "correct horse battery", "acme"), "email");

    let o = run(&["admin", "create-token", "--email", "ann@acme.test", "--name", "ci"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "the token alone: {out:?}");
    let token = out.trim();
    assert!(token.starts_with("cs_") && token.len() > 40, "{token}");
    // Only the hash is stored, and it resolves to Ann.
    let who = t.db.user_by_api_token(&calsync_server::crypto::token_hash(token)).await.unwrap();
    assert_eq!(who.email, "ann@acme.test");
    assert_fails_with(&run(&["admin", "create-token", "--email", "nobody@acme.test"]), "no user");

    // Expiring tokens, the list (never a secret) and revocation.
    let o = run(&["admin", "create-token", "--email", "ann@acme.test", "--name", "weekly", "--expires-in-days", "7"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let weekly = stdout(&o).trim().to_owned();
    assert_fails_with(
        &run(&["admin", "create-token", "--email", "ann@acme.test", "--expires-in-days", "0"]),
        "expires_in_days",
    );
    let o = run(&["admin", "list-tokens", "--email", "ann@acme.test"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let listing = stdout(&o);
    assert!(!listing.contains(token) && !listing.contains(&weekly), "no secret is shown: {listing}");
    let ci_line = listing.lines().find(|l| l.contains(" ci ")).expect("the ci token is listed");
    assert!(ci_line.ends_with("active"), "{ci_line}");
    let weekly_line = listing.lines().find(|l| l.contains(" weekly ")).unwrap();
    assert_eq!(weekly_line.matches("never").count(), 1, "never used, but it expires: {weekly_line}");
    let ci_id = ci_line.split_whitespace().next().unwrap().to_owned();
    let o = run(&["admin", "revoke-token", &ci_id]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(matches!(
        t.db.user_by_api_token(&calsync_server::crypto::token_hash(token)).await,
        Err(calsync_store::StoreError::NotFound)
    ));
    let o = run(&["admin", "list-tokens", "--email", "ann@acme.test"]);
    assert!(stdout(&o).lines().find(|l| l.starts_with(&ci_id)).unwrap().ends_with("revoked"));
    assert_fails_with(&run(&["admin", "revoke-token", "not-an-id"]), "id");
    assert_fails_with(&run(&["admin", "revoke-token", "0190c2a0-0000-7000-8000-000000000000"]), "no API token");
}

#[test]
fn unsupported_database_urls_fail_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let o = calsync("mysql://root@localhost/calsync", dir.path(), &["migrate"]);
    assert_fails_with(&o, "unsupported DATABASE_URL");
}

type Lines = std::io::Lines<BufReader<std::process::ChildStderr>>;

/// `calsync serve` with JSON logs on port 0 in `dir`; returns once it logs its address.
fn spawn_serve(db_url: &str, dir: &std::path::Path) -> (std::process::Child, String, Lines) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_calsync"))
        .args(["serve", "--log-format", "json"])
        .current_dir(dir)
        .env("DATABASE_URL", db_url)
        .env("CALSYNC_BIND", "127.0.0.1:0")
        .env_remove("CALSYNC_ENCRYPTION_KEY")
        .env_remove("CALSYNC_SANDBOX_STATE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err_lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut base = None;
    let mut json_lines = 0;
    while base.is_none() && Instant::now() < deadline {
        let Some(Ok(line)) = err_lines.next() else { break };
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            if let Some(rest) = v["message"].as_str().and_then(|m| m.strip_prefix("listening on ")) {
                base = Some(rest.to_owned());
            }
            json_lines += 1;
        }
    }
    let base = base.expect("the server logs where it listens");
    assert!(json_lines > 0, "logs are JSON lines");
    (child, base, err_lines)
}

fn stop(child: &mut std::process::Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
}

/// `serve` on an empty database creates the demo firm, prints the login once, serves a signed-in
/// page, logs JSON lines with request ids, and stops cleanly on SIGTERM.
async fn first_run_serves_a_signed_in_page(backend: Backend) {
    common::install_tls();
    let t = TestDb::empty(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base, err_lines) = spawn_serve(&t.url, dir.path());
    let mut out = child.stdout.take().unwrap();
    let mut banner = String::new();
    let mut buf = [0u8; 4096];
    while !banner.contains("API token:") {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "banner ends early: {banner}");
        banner.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let field =
        |name: &str| banner.lines().find_map(|l| l.trim().strip_prefix(name)).map(|v| v.trim().to_owned()).unwrap();
    let (email, password) = (field("e-mail:"), field("password:"));
    assert_eq!(email, "admin@demo.test");
    // Without CALSYNC_ENCRYPTION_KEY a development key is generated beside the SQLite file, or in ./data.
    let key_file = match backend {
        Backend::Sqlite => {
            std::path::PathBuf::from(t.url.trim_start_matches("sqlite://")).with_file_name("calsync.key")
        }
        Backend::Postgres => dir.path().join("data/calsync.key"),
    };
    assert!(key_file.exists(), "{} missing", key_file.display());

    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut jar = common::Cookies::default();
    let page = http.get(format!("{base}/login")).send().await.unwrap();
    jar.absorb(page.headers());
    let csrf = common::form_value(&page.text().await.unwrap(), "csrf_token");
    let resp = jar
        .apply(http.post(format!("{base}/login")))
        .form(&[("email", email.as_str()), ("password", &password), ("csrf_token", &csrf), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::SEE_OTHER);
    jar.absorb(resp.headers());
    let home = jar.apply(http.get(format!("{base}/"))).send().await.unwrap();
    assert_eq!(home.status(), reqwest::StatusCode::OK);
    assert!(home.text().await.unwrap().contains("Demo Admin"));
    let api = http.get(format!("{base}/api/appointments/")).bearer_auth(field("API token:")).send().await.unwrap();
    assert_eq!(api.status(), reqwest::StatusCode::OK, "the printed token works");

    // The embedded default mounts the provider sandbox: a Google calendar connects with no credentials.
    let token = field("API token:");
    let init: serde_json::Value = http
        .post(format!("{base}/api/calendar/oauth-connections/initiate_google_oauth/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let consent = init["authorization_url"].as_str().unwrap();
    assert!(consent.starts_with(&format!("{base}/sandbox/google/")), "{consent}");
    let back = http.get(format!("{consent}&sandbox_approve=1&login_hint=demo@gmail.test")).send().await.unwrap();
    let back = reqwest::Url::parse(back.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<String, String> = back.query_pairs().into_owned().collect();
    let connected = http
        .post(format!("{base}/api/calendar/oauth-connections/oauth_callback/"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"code": q["code"], "state": q["state"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(connected.status(), reqwest::StatusCode::OK);
    let connected: serde_json::Value = connected.json().await.unwrap();
    assert_eq!(
        (connected["account_email"].as_str(), connected["status"].as_str()),
        (Some("demo@gmail.test"), Some("active"))
    );

    // `calsync sync --connection` runs a sync of it from the command line (the sandbox being the
    // one this server mounts) and prints the attempt as JSON.
    let one_shot = |id: &str| {
        Command::new(env!("CARGO_BIN_EXE_calsync"))
            .args(["sync", "--connection", id])
            .current_dir(dir.path())
            .env("DATABASE_URL", &t.url)
            .env("CALSYNC_PUBLIC_URL", &base)
            .env_remove("CALSYNC_ENCRYPTION_KEY")
            .env_remove("CALSYNC_SANDBOX_STATE")
            .output()
            .unwrap()
    };
    let o = one_shot(connected["id"].as_str().unwrap());
    assert!(o.status.success(), "{}", stderr(&o));
    let attempt: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (attempt["status"].as_str(), attempt["connection_id"].as_str()),
        (Some("success"), connected["id"].as_str())
    );
    assert!(attempt["requests"].as_i64() >= Some(1) && attempt["finished_at"].is_string(), "{attempt}");
    assert_fails_with(&one_shot(&uuid::Uuid::now_v7().to_string()), "no connection");
    assert_fails_with(&one_shot("nope"), "not a connection id");

    stop(&mut child);
    let rest: Vec<String> = err_lines.map_while(Result::ok).collect();
    let request_logged = rest.iter().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).any(|v| {
        v["span"]["request_id"].as_str().is_some_and(|id| id.len() == 36) && v["span"]["route"] == "/api/appointments/"
    });
    assert!(request_logged, "request lines carry the route and request id: {rest:?}");
    assert!(!rest.iter().any(|l| l.contains(&password)), "the password is never logged");
    assert!(!rest.iter().any(|l| l.contains(&q["code"]) || l.contains("ya29.")), "neither codes nor tokens are logged");

    // The embedded sandbox kept its state beside the database (or in ./data).
    let state_file = key_file.with_file_name("sandbox.json");
    assert!(state_file.exists(), "{} missing", state_file.display());

    // After a restart the connection still works: the sandbox kept the account and its tokens.
    let (mut child, base, _lines) = spawn_serve(&t.url, dir.path());
    let id = connected["id"].as_str().unwrap();
    let conn = format!("{base}/api/calendar/oauth-connections/{id}/");
    let calendars = http.get(format!("{conn}calendars/")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(calendars.status(), reqwest::StatusCode::OK);
    let after: serde_json::Value = http.get(&conn).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(after["status"], "active", "{after}");
    stop(&mut child);

    // Later starts create nothing more and show no credentials.
    let again = calsync_server::services::accounts::bootstrap_if_empty(&t.db).await.unwrap();
    assert!(again.is_none());
    assert_eq!(t.db.count_users().await.unwrap(), 1);
}

async fn rotate_key_reencrypts_under_the_newest_key(backend: Backend) {
    use calsync_store::crypto::Keyring;
    let t = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (Keyring::generate_spec("old"), Keyring::generate_spec("new"));
    calsync_server::services::accounts::create_firm(&t.db, "Acme", "acme").await.unwrap();
    let user = calsync_server::services::accounts::create_user(
        &t.db,
        "acme",
        "ann@acme.test",
        "Ann",
        "staff",
        "correct horse battery",
    )
    .await
    .unwrap();
    let grant = calsync_store::NewGrant {
        firm_id: user.firm_id,
        user_id: user.id,
        provider: calsync_domain::connection::Provider::Microsoft,
        account_id: "00000000-0000-0000-0000-0000000000aa".into(),
        account_email: "ann@outlook.test".into(),
        access_token: "eyJ.access".into(),
        refresh_token: Some("1.refresh".into()),
        expires_at: Some(chrono::Utc::now()),
        scopes: vec![],
    };
    let c = t.db.save_grant(&Keyring::parse(&old).unwrap(), &grant, &[]).await.unwrap();
    let run = |keys: &str| {
        Command::new(env!("CARGO_BIN_EXE_calsync"))
            .args(["admin", "rotate-key"])
            .current_dir(dir.path())
            .env("DATABASE_URL", &t.url)
            .env("CALSYNC_ENCRYPTION_KEY", keys)
            .output()
            .unwrap()
    };
    let o = run(&format!("{new},{old}"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "re-encrypted 2 stored secrets under key new");
    let tokens = t.db.tokens(&Keyring::parse(&new).unwrap(), user.firm_id, c.id).await.unwrap();
    assert_eq!(tokens.refresh_token.as_deref(), Some("1.refresh"), "readable with the new key alone");
    // A keyring that lacks the key of stored values fails loudly instead of skipping them.
    let unrelated = Keyring::generate_spec("other");
    assert_fails_with(&run(&unrelated), "key rotation failed");
}

#[tokio::test]
async fn sandbox_command_serves_the_provider_sandbox() {
    common::install_tls();
    let mut child = Command::new(env!("CARGO_BIN_EXE_calsync"))
        .args(["sandbox", "--bind", "127.0.0.1:0", "--seed", "7"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first.split_whitespace().find(|w| w.starts_with("http://")).expect("prints its URL").to_owned();
    let http = reqwest::Client::new();
    let account: serde_json::Value = http
        .post(format!("{base}/_sandbox/accounts"))
        .json(&serde_json::json!({"provider": "google", "email": "ann@gmail.test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = account["access_token"].as_str().unwrap();
    assert!(token.starts_with("ya29."), "{account}");
    let list =
        http.get(format!("{base}/google/calendar/v3/users/me/calendarList")).bearer_auth(token).send().await.unwrap();
    assert_eq!(list.status(), reqwest::StatusCode::OK);
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());
}

/// Peak memory of the real server process (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmHWM in /proc status");
    kib / 1024
}

/// 200 parallel sign-ins for unknown addresses (each checked against a dummy hash) keep the
/// server small: password checks are bounded, the rest wait or are turned away.
#[tokio::test]
async fn a_sign_in_flood_keeps_the_server_small() {
    common::install_tls();
    let t = TestDb::empty(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base, lines) = spawn_serve(&t.url, dir.path());
    // Keep reading the log, or the server would block writing to a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut jar = common::Cookies::default();
    let page = http.get(format!("{base}/login")).send().await.unwrap();
    jar.absorb(page.headers());
    let csrf = common::form_value(&page.text().await.unwrap(), "csrf_token");
    let before = peak_rss_mib(child.id());
    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..200 {
        let email = format!("nobody{i}@flood.test");
        let req = jar.apply(http.post(format!("{base}/login"))).form(&[
            ("email", email.as_str()),
            ("password", "wrong password"),
            ("csrf_token", &csrf),
            ("next", "/"),
        ]);
        attempts.spawn(async move { req.send().await.unwrap().status().as_u16() });
    }
    let statuses = attempts.join_all().await;
    let peak = peak_rss_mib(child.id());
    stop(&mut child);
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(statuses.iter().all(|s| matches!(s, 401 | 429 | 503)), "{statuses:?}");
    assert!(checked <= 100, "the per-address budget holds: {checked} checks");
    assert!(peak < 300, "peak RSS {peak} MiB (before the flood: {before} MiB)");
}

/// `calsync admin import-ics`: a file with a zone of its own, a Windows zone name, a series with a
/// moved and a cancelled occurrence, an all-day event and a floating time; importing it again
/// changes nothing, an edited event is updated in place, and nothing is ever read as UTC by guess.
async fn import_ics_is_idempotent_by_uid(backend: Backend) {
    let t = TestDb::empty(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| calsync(&t.url, dir.path(), args);
    assert!(run(&["admin", "create-firm", "--name", "Acme", "--slug", "acme"]).status.success());
    let o = run(&[
        "admin",
        "create-user",
        "--firm",
        "acme",
        "--email",
        "ann@acme.test",
        "--name",
        "Ann",
        "--role",
        "staff",
        "--password",
        "a long passphrase here",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n\
BEGIN:VEVENT\r\nUID:review-1\r\nSUMMARY:Review\r\nLOCATION:Room 2\\, east\r\nDTSTART;TZID=Europe/Berlin:20270111T100000\r\nDTEND;TZID=Europe/Berlin:20270111T110000\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:weekly-1\r\nSUMMARY:Weekly\r\nDTSTART;TZID=W. Europe Standard Time:20270104T090000\r\nDTEND;TZID=W. Europe Standard Time:20270104T093000\r\nRRULE:FREQ=WEEKLY;COUNT=6\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:weekly-1\r\nRECURRENCE-ID;TZID=W. Europe Standard Time:20270111T090000\r\nSUMMARY:Weekly (moved)\r\nDTSTART;TZID=W. Europe Standard Time:20270111T140000\r\nDTEND;TZID=W. Europe Standard Time:20270111T143000\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:weekly-1\r\nRECURRENCE-ID;TZID=W. Europe Standard Time:20270118T090000\r\nSTATUS:CANCELLED\r\nDTSTART;TZID=W. Europe Standard Time:20270118T090000\r\nDTEND;TZID=W. Europe Standard Time:20270118T093000\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:holiday-1\r\nSUMMARY:Holiday\r\nDTSTART;VALUE=DATE:20270101\r\nDTEND;VALUE=DATE:20270102\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:floating-1\r\nSUMMARY:Call\r\nDTSTART:20270112T080000\r\nDTEND:20270112T083000\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";
    let file = dir.path().join("import.ics");
    std::fs::write(&file, ics).unwrap();
    let file = file.to_str().unwrap();

    // The floating "Call" has no zone to be read in: refused, the rest imported, exit status 1.
    let o = run(&["admin", "import-ics", "--email", "ann@acme.test", file]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not imported: Call: DTSTART has a floating time"), "{}", stderr(&o));
    assert!(stdout(&o).contains("4 new, 1 updated, 0 unchanged, 1 not imported"), "{}", stdout(&o));

    // With the zone given: the Call arrives; everything else is already there.
    let o = run(&["admin", "import-ics", "--email", "ann@acme.test", "--time-zone", "America/New_York", file]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("1 new, 0 updated, 5 unchanged, 0 not imported"), "{}", stdout(&o));
    let o = run(&["admin", "import-ics", "--email", "ann@acme.test", "--time-zone", "America/New_York", file]);
    assert!(stdout(&o).contains("0 new, 0 updated, 6 unchanged, 0 not imported"), "{}", stdout(&o));

    let ann = t.db.user_by_email(&calsync_domain::account::Email::parse("ann@acme.test").unwrap()).await.unwrap();
    let q = calsync_store::AppointmentQuery { owner: Some(ann.id), limit: 100, ..Default::default() };
    let all = t.db.list_appointments(ann.firm_id, &q).await.unwrap().items;
    let by = |title: &str| all.iter().filter(|a| a.data.title == title).collect::<Vec<_>>();
    assert_eq!(all.len(), 6, "four events, one series exception moved, one cancelled: {all:#?}");
    assert_eq!(by("Review")[0].data.location, "Room 2, east");
    assert_eq!(by("Review")[0].data.time_zone, chrono_tz::Europe::Berlin);
    let weekly = by("Weekly")[0];
    assert_eq!(weekly.data.time_zone, chrono_tz::Europe::Berlin, "the Windows zone name is mapped");
    assert_eq!(weekly.data.recurrence, vec!["RRULE:FREQ=WEEKLY;COUNT=6".to_owned()]);
    let moved = by("Weekly (moved)")[0];
    assert_eq!(moved.data.series.map(|s| s.master), Some(weekly.id));
    let call = by("Call")[0];
    assert_eq!(
        call.data.utc_range().0,
        "2027-01-12T13:00:00Z".parse::<chrono::DateTime<chrono::Utc>>().unwrap(),
        "08:00 in New York"
    );

    // An event edited in the file updates its appointment, not a copy.
    std::fs::write(dir.path().join("import.ics"), ics.replace("SUMMARY:Review", "SUMMARY:Review (final)")).unwrap();
    let o = run(&["admin", "import-ics", "--email", "ann@acme.test", "--time-zone", "America/New_York", file]);
    assert!(stdout(&o).contains("0 new, 1 updated, 5 unchanged"), "{}", stdout(&o));
    let all = t.db.list_appointments(ann.firm_id, &q).await.unwrap().items;
    assert_eq!(all.len(), 6);
    assert!(all.iter().any(|a| a.data.title == "Review (final)"));
    assert_fails_with(&run(&["admin", "import-ics", "--email", "nobody@acme.test", file]), "not found");
}

backend_tests!(
    admin_commands,
    first_run_serves_a_signed_in_page,
    rotate_key_reencrypts_under_the_newest_key,
    import_ics_is_idempotent_by_uid
);
