//! A real CalDAV server for tests: Radicale (from PyPI, installed by `scripts/test.sh` into its
//! virtualenv, found through `CALSYNC_PYTHON`), started on a free loopback port with plain
//! passwords in a file, storing in a fresh directory. Stopped when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Radicale {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    users: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Radicale {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python that has Radicale (and the other test servers and libraries).
pub fn python() -> String {
    std::env::var("CALSYNC_PYTHON").unwrap_or_else(|_| "python3".into())
}

impl Radicale {
    /// Radicale with these users and passwords.
    pub fn start(users: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users");
        write_users(&file, users);
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(python())
            .args(["-m", "radicale", "--server-hosts", &format!("127.0.0.1:{port}")])
            .args(["--auth-type", "htpasswd", "--auth-htpasswd-encryption", "plain"])
            .arg("--auth-htpasswd-filename")
            .arg(&file)
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
        Radicale { child, base: format!("http://127.0.0.1:{port}"), users: file, _dir: dir }
    }

    /// Replaces the password file (a password changed or an app password revoked).
    pub fn set_users(&self, users: &[(&str, &str)]) {
        write_users(&self.users, users);
    }

    /// `MKCALENDAR` at `path` (`/ann/work/`) holding `comp` (`VEVENT`, `VTODO`).
    pub async fn mkcalendar(&self, http: &reqwest::Client, auth: (&str, &str), path: &str, name: &str, comp: &str) {
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<c:mkcalendar xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:a="http://apple.com/ns/ical/">
 <d:set><d:prop><d:displayname>{name}</d:displayname><a:calendar-color>#0F5AA3FF</a:calendar-color>
  <c:supported-calendar-component-set><c:comp name="{comp}"/></c:supported-calendar-component-set></d:prop></d:set>
</c:mkcalendar>"#
        );
        let url = format!("{}{path}", self.base);
        let resp = http
            .request(reqwest::Method::from_bytes(b"MKCALENDAR").unwrap(), &url)
            .basic_auth(auth.0, Some(auth.1))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::CREATED, "MKCALENDAR {url}");
    }

    /// Stores `ics` at `path` as a calendar app would (no precondition); answers the status.
    pub async fn put(&self, http: &reqwest::Client, auth: (&str, &str), path: &str, ics: &str) -> u16 {
        http.put(format!("{}{path}", self.base))
            .basic_auth(auth.0, Some(auth.1))
            .header("Content-Type", "text/calendar; charset=utf-8")
            .body(ics.to_owned())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The text at `path`, if any.
    pub async fn get(&self, http: &reqwest::Client, auth: (&str, &str), path: &str) -> Option<String> {
        let resp = http.get(format!("{}{path}", self.base)).basic_auth(auth.0, Some(auth.1)).send().await.unwrap();
        resp.status().is_success().then_some(resp.text().await.unwrap())
    }

    pub async fn delete(&self, http: &reqwest::Client, auth: (&str, &str), path: &str) -> u16 {
        http.delete(format!("{}{path}", self.base))
            .basic_auth(auth.0, Some(auth.1))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The paths of the calendar objects in the collection at `path`.
    pub async fn list(&self, http: &reqwest::Client, auth: (&str, &str), path: &str) -> Vec<String> {
        let resp = http
            .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), format!("{}{path}", self.base))
            .basic_auth(auth.0, Some(auth.1))
            .header("Depth", "1")
            .body(r#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>"#)
            .send()
            .await
            .unwrap();
        let text = resp.text().await.unwrap();
        // Whatever the namespace prefix: the text of every `…href>` element.
        let mut out: Vec<String> = text
            .split("href>")
            .skip(1)
            .filter_map(|s| s.split('<').next())
            .filter(|h| h.ends_with(".ics"))
            .map(str::to_owned)
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

fn write_users(file: &std::path::Path, users: &[(&str, &str)]) {
    let text: String = users.iter().map(|(u, p)| format!("{u}:{p}\n")).collect();
    std::fs::write(file, text).unwrap();
}
