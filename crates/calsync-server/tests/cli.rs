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
}

#[test]
fn unsupported_database_urls_fail_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let o = calsync("mysql://root@localhost/calsync", dir.path(), &["migrate"]);
    assert_fails_with(&o, "unsupported DATABASE_URL");
}

/// `serve` on an empty database creates the demo firm, prints the login once, serves a signed-in
/// page, logs JSON lines with request ids, and stops cleanly on SIGTERM.
async fn first_run_serves_a_signed_in_page(backend: Backend) {
    common::install_tls();
    let t = TestDb::empty(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_calsync"))
        .args(["serve", "--log-format", "json"])
        .current_dir(dir.path())
        .env("DATABASE_URL", &t.url)
        .env("CALSYNC_BIND", "127.0.0.1:0")
        .env_remove("CALSYNC_ENCRYPTION_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err_lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut base = None;
    let mut json_lines = Vec::new();
    while base.is_none() && Instant::now() < deadline {
        let Some(Ok(line)) = err_lines.next() else { break };
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            if let Some(rest) = v["message"].as_str().and_then(|m| m.strip_prefix("listening on ")) {
                base = Some(rest.to_owned());
            }
            json_lines.push(v);
        }
    }
    let base = base.expect("the server logs where it listens");
    assert!(!json_lines.is_empty(), "logs are JSON lines");
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

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
    let rest: Vec<String> = err_lines.map_while(Result::ok).collect();
    let request_logged = rest.iter().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).any(|v| {
        v["span"]["request_id"].as_str().is_some_and(|id| id.len() == 36) && v["span"]["route"] == "/api/appointments/"
    });
    assert!(request_logged, "request lines carry the route and request id: {rest:?}");
    assert!(!rest.iter().any(|l| l.contains(&password)), "the password is never logged");

    // Later starts create nothing more and show no credentials.
    let again = calsync_server::services::accounts::bootstrap_if_empty(&t.db).await.unwrap();
    assert!(again.is_none());
    assert_eq!(t.db.count_users().await.unwrap(), 1);
}

backend_tests!(admin_commands, first_run_serves_a_signed_in_page);
