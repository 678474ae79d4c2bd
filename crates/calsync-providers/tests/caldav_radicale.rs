//! CalDAV discovery against a real server: Radicale (from PyPI, installed by scripts/test.sh into
//! its virtualenv, `CALSYNC_PYTHON`), started on a free loopback port with a password file.

use calsync_providers::ProviderError;
use calsync_providers::caldav::{DavAuth, discover};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Radicale {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Radicale {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var("CALSYNC_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Radicale with user `ann` (password `app-specific-1`), storing in a fresh directory.
fn radicale() -> Radicale {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, "ann:app-specific-1\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(python())
        .args(["-m", "radicale", "--server-hosts", &format!("127.0.0.1:{port}")])
        .args(["--auth-type", "htpasswd", "--auth-htpasswd-encryption", "plain"])
        .arg("--auth-htpasswd-filename")
        .arg(&users)
        .arg("--storage-filesystem-folder")
        .arg(dir.path().join("collections"))
        .args(["--logging-level", "warning"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{} -m radicale: {e} (scripts/test.sh installs Radicale)", python()));
    let began = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "Radicale did not start (is it installed for {}?)",
            python()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Radicale { child, base: format!("http://127.0.0.1:{port}"), _dir: dir }
}

async fn mkcalendar(http: &reqwest::Client, url: &str, name: &str, comp: &str) {
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<c:mkcalendar xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:a="http://apple.com/ns/ical/">
 <d:set><d:prop><d:displayname>{name}</d:displayname><a:calendar-color>#0F5AA3FF</a:calendar-color>
  <c:supported-calendar-component-set><c:comp name="{comp}"/></c:supported-calendar-component-set></d:prop></d:set>
</c:mkcalendar>"#
    );
    let resp = http
        .request(reqwest::Method::from_bytes(b"MKCALENDAR").unwrap(), url)
        .basic_auth("ann", Some("app-specific-1"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED, "MKCALENDAR {url}");
}

#[tokio::test]
async fn radicale_discovery_finds_the_calendars_and_refuses_a_wrong_password() {
    let server = radicale();
    let http = calsync_providers::http_client(Duration::from_secs(10));
    mkcalendar(&http, &format!("{}/ann/work/", server.base), "Work", "VEVENT").await;
    mkcalendar(&http, &format!("{}/ann/tasks/", server.base), "Tasks", "VTODO").await;

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
