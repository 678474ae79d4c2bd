//! The web UI in a real headless Chromium, driven over WebDriver (chromedriver), against the real
//! `calsync serve` binary with its built-in provider sandbox: what a new user clicks through.
//!
//! Every page visited is screenshotted at 1280 px and at 375 px (phone) into
//! `target/browser-screenshots/` (or `$CALSYNC_SCREENSHOTS`), and at 375 px the page must not
//! scroll sideways. `scripts/test.sh` installs Debian's `chromium` and `chromium-driver` when they
//! are missing.

mod common;

use calsync_testkit::{Backend, TestDb, backend_tests};
use fantoccini::{Client, ClientBuilder, Locator};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PHONE: (u32, u32) = (375, 812);
const LAPTOP: (u32, u32) = (1280, 900);

fn program(env: &str, default: &str) -> PathBuf {
    let p = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        p.exists(),
        "{} not found: install Debian's chromium and chromium-driver (scripts/test.sh does), or set {env}",
        p.display()
    );
    p
}

/// Every visible text of the page whose contrast with its background is below WCAG AA (4.5:1,
/// or 3:1 for large text), as "tag.class "text" ratio". The background is the nearest opaque one.
const CONTRAST: &str = r#"
const parse = c => { const m = /rgba?\(([^)]+)\)/.exec(c); return m ? m[1].split(',').map(parseFloat) : null; };
const rel = ([r, g, b]) => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
const under = el => { for (let e = el; e; e = e.parentElement) { const p = parse(getComputedStyle(e).backgroundColor);
  if (p && (p.length < 4 || p[3] > 0.5)) return p; } return [255, 255, 255]; };
const low = [];
for (const el of document.querySelectorAll('body *')) {
  if (el instanceof SVGElement || !(el.offsetWidth || el.offsetHeight)) continue;
  if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
  const cs = getComputedStyle(el);
  if (cs.visibility === 'hidden') continue;
  const a = rel(parse(cs.color)), b = rel(under(el));
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  const size = parseFloat(cs.fontSize), bold = parseInt(cs.fontWeight) >= 700;
  if (ratio < (size >= 24 || (bold && size >= 18.66) ? 3 : 4.5))
    low.push(el.tagName.toLowerCase() + '.' + el.className + ' "' + el.textContent.trim().slice(0, 40) + '" ' + ratio.toFixed(2));
}
return low;
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `calsync serve` process on the embedded default (SQLite in its directory) or on PostgreSQL.
struct Server {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
    db_url: Option<String>,
    admin_email: String,
    admin_password: String,
    api_token: String,
}

impl Server {
    fn start(db_url: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_calsync"));
        cmd.args(["serve", "--log-format", "json"])
            .current_dir(dir.path())
            .env("CALSYNC_BIND", "127.0.0.1:0")
            .env("RUST_LOG", "warn,calsync_server=info")
            .env_remove("DATABASE_URL")
            .env_remove("CALSYNC_ENCRYPTION_KEY")
            .env_remove("CALSYNC_SANDBOX_STATE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(url) = db_url {
            cmd.env("DATABASE_URL", url);
        }
        let mut child = cmd.spawn().unwrap();
        let mut banner = String::new();
        let mut out = child.stdout.take().unwrap();
        let mut buf = [0u8; 4096];
        while !banner.contains("API token:") {
            let n = out.read(&mut buf).unwrap();
            assert!(n > 0, "the first-run banner ends early: {banner}");
            banner.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        let field =
            |name: &str| banner.lines().find_map(|l| l.trim().strip_prefix(name)).map(|v| v.trim().to_owned()).unwrap();
        let (admin_email, admin_password, api_token) = (field("e-mail:"), field("password:"), field("API token:"));
        let base = Self::listening(&mut child);
        Server { child, base, dir, db_url: db_url.map(str::to_owned), admin_email, admin_password, api_token }
    }

    /// The address from the "listening on" log line.
    fn listening(child: &mut Child) -> String {
        use std::io::BufRead;
        let err = child.stderr.take().unwrap();
        let mut lines = std::io::BufReader::new(err).lines();
        let addr = loop {
            let line = lines.next().expect("the server logs where it listens").unwrap();
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(rest) = v["message"].as_str().and_then(|m| m.strip_prefix("listening on "))
            {
                break rest.to_owned();
            }
        };
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        addr
    }

    /// `calsync admin …` against the same database, from the same directory.
    fn admin(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_calsync"));
        cmd.arg("admin").args(args).current_dir(self.dir.path()).env_remove("DATABASE_URL");
        if let Some(url) = &self.db_url {
            cmd.env("DATABASE_URL", url);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "calsync admin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// A control call on the embedded provider sandbox (revoke a grant, seed events, …).
    async fn sandbox(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let resp =
            reqwest::Client::new().post(format!("{}/sandbox{path}", self.base)).json(&body).send().await.unwrap();
        assert!(resp.status().is_success(), "sandbox {path}: {}", resp.status());
        resp.json().await.unwrap()
    }
}

impl Server {
    /// A JSON call on calsync's own API as the first-run admin.
    async fn api(&self, method: reqwest::Method, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
        self.api_as(&self.api_token, method, path, body).await
    }

    async fn api_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut rb = reqwest::Client::new().request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    /// Renames the sandbox Google event titled `from`, as its owner would in Google Calendar.
    async fn rename_at_google(&self, email: &str, from: &str, to: &str) {
        let minted =
            self.sandbox("/_sandbox/accounts", serde_json::json!({"provider": "google", "email": email})).await;
        let token = minted["access_token"].as_str().unwrap();
        let events = format!("{}/sandbox/google/calendar/v3/calendars/primary/events", self.base);
        let http = reqwest::Client::new();
        let list: serde_json::Value = http.get(&events).bearer_auth(token).send().await.unwrap().json().await.unwrap();
        let id = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["summary"] == from)
            .and_then(|e| e["id"].as_str())
            .unwrap_or_else(|| panic!("no Google event titled {from:?}: {list}"));
        let resp = http
            .patch(format!("{events}/{id}"))
            .bearer_auth(token)
            .json(&serde_json::json!({"summary": to}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "patch at Google: {}", resp.status());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// chromedriver and a headless Chromium session, with helpers that say what failed.
struct Browser {
    client: Client,
    driver: Child,
    base: String,
    shots: PathBuf,
    prefix: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(base: &str, prefix: &str) -> Self {
        let chromium = program("CALSYNC_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = program("CALSYNC_CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--no-first-run",
                    "--disable-quic", "--disable-sync", "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={},{}", LAPTOP.0, LAPTOP.1),
                ],
            },
        });
        let caps = caps.as_object().unwrap().clone();
        let url = format!("http://127.0.0.1:{port}");
        let began = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(caps.clone()).connect(&url).await {
                Ok(c) => break c,
                Err(e) if began.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("chromedriver did not start a session: {e}"),
            }
        };
        let shots = std::env::var_os("CALSYNC_SCREENSHOTS").map_or_else(
            || Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("browser-screenshots"),
            PathBuf::from,
        );
        std::fs::create_dir_all(&shots).unwrap();
        // This run's pictures only: an earlier run's (a failure's, say) would mislead.
        for old in std::fs::read_dir(&shots).unwrap().flatten() {
            if old.file_name().to_string_lossy().starts_with(&format!("{prefix}-")) {
                let _ = std::fs::remove_file(old.path());
            }
        }
        Browser { client, driver, base: base.to_owned(), shots, prefix: prefix.to_owned(), _profile: profile }
    }

    async fn go(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    async fn path(&self) -> String {
        let u = self.client.current_url().await.unwrap();
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        }
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => panic!("{css} not on {}: {e}", self.path().await),
        }
    }

    async fn all(&self, css: &str) -> Vec<fantoccini::elements::Element> {
        self.client.find_all(Locator::Css(css)).await.unwrap()
    }

    async fn exists(&self, css: &str) -> bool {
        !self.all(css).await.is_empty()
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Clicks something that loads another page, and waits until that page has loaded.
    async fn nav(&self, css: &str) {
        self.js("window.__calsyncOldPage = true;").await;
        self.click(css).await;
        let began = Instant::now();
        loop {
            let done = self
                .client
                .execute("return !window.__calsyncOldPage && document.readyState === 'complete';", vec![])
                .await;
            if matches!(done, Ok(serde_json::Value::Bool(true))) {
                return;
            }
            assert!(began.elapsed() < Duration::from_secs(30), "clicking {css} loaded no page");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Clicks something that ends in another page loading, and meanwhile records every text the
    /// element `watch` shows (a live progress state, say).
    async fn nav_watching(&self, css: &str, watch: &str) -> Vec<String> {
        self.js("window.__calsyncOldPage = true;").await;
        self.click(css).await;
        let began = Instant::now();
        let mut seen: Vec<String> = Vec::new();
        loop {
            let probe = "const e = document.querySelector(arguments[0]); \
                         return [!!window.__calsyncOldPage, e ? e.textContent.trim() : ''];";
            if let Ok(v) = self.client.execute(probe, vec![watch.into()]).await {
                if v[0] == false {
                    break;
                }
                let text = v[1].as_str().unwrap_or_default().to_owned();
                if !text.is_empty() && seen.last() != Some(&text) {
                    seen.push(text);
                }
            }
            assert!(began.elapsed() < Duration::from_secs(30), "clicking {css} loaded no page; saw {seen:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.nav_settled().await;
        seen
    }

    /// Waits for the page that replaces one marked with `__calsyncOldPage`.
    async fn nav_settled_after_marker(&self) {
        let began = Instant::now();
        while self.js("return !!window.__calsyncOldPage;").await == true {
            assert!(began.elapsed() < Duration::from_secs(30), "no new page loaded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.nav_settled().await;
    }

    async fn nav_settled(&self) {
        let began = Instant::now();
        while self.js("return document.readyState;").await != "complete" {
            assert!(began.elapsed() < Duration::from_secs(30), "the page did not finish loading");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Moves the focus with the Tab key until it is on `css` (at most 60 presses), and checks the
    /// focused control shows a focus ring.
    async fn tab_to(&self, css: &str) {
        self.js("document.activeElement && document.activeElement.blur(); window.focus();").await;
        for _ in 0..60 {
            self.client.active_element().await.unwrap().send_keys("\u{E004}").await.unwrap();
            let here = self
                .client
                .execute("return document.activeElement.matches(arguments[0]);", vec![css.into()])
                .await
                .unwrap();
            if here == true {
                let ring = self.js("return getComputedStyle(document.activeElement).outlineStyle;").await;
                assert_ne!(ring, "none", "{css} shows where the focus is");
                return;
            }
        }
        panic!("{css} cannot be reached with the Tab key on {}", self.path().await);
    }

    async fn fill(&self, css: &str, value: &str) {
        let e = self.find(css).await;
        e.clear().await.unwrap();
        e.send_keys(value).await.unwrap();
    }

    /// Sets a field's value from script (date and time inputs take keys in the locale's format).
    async fn set(&self, css: &str, value: &str) {
        let e = self.find(css).await;
        let arg = serde_json::to_value(&e).unwrap();
        self.client.execute("arguments[0].value = arguments[1];", vec![arg, value.into()]).await.unwrap();
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    async fn js(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Screenshots the page at laptop and phone width; at phone width nothing may stick out.
    async fn page(&self, name: &str) {
        self.client.set_window_size(LAPTOP.0, LAPTOP.1).await.unwrap();
        self.save(&format!("{name}-laptop")).await;
        self.client.set_window_size(PHONE.0, PHONE.1).await.unwrap();
        let widths = self
            .js("const d = document.documentElement; return [d.scrollWidth, d.clientWidth, window.innerWidth];")
            .await;
        let (scroll, client) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
        assert!(
            scroll <= client,
            "{name} ({}) scrolls sideways at {} px: {scroll} px wide in a {client} px viewport",
            self.path().await,
            PHONE.0
        );
        self.save(&format!("{name}-phone")).await;
        self.client.set_window_size(LAPTOP.0, LAPTOP.1).await.unwrap();
        let low = self.js(CONTRAST).await;
        assert_eq!(low, serde_json::json!([]), "{name} ({}): text below WCAG AA contrast", self.path().await);
    }

    /// A screenshot of the whole page at the window's current width.
    async fn save(&self, name: &str) {
        let (width, _) = self.client.get_window_size().await.unwrap();
        let height = self.js("return document.documentElement.scrollHeight;").await.as_u64().unwrap_or(900);
        self.client.set_window_size(width as u32, height.clamp(400, 6000) as u32).await.unwrap();
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{}-{name}.png", self.prefix)), png).unwrap();
    }

    /// Runs `flow`; whatever happens, a failure leaves a screenshot and the page source behind,
    /// and the browser is closed.
    async fn run<F, Fut>(self, flow: F)
    where
        F: FnOnce(std::sync::Arc<Browser>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let me = std::sync::Arc::new(self);
        let outcome = tokio::spawn(flow(me.clone())).await;
        if outcome.is_err() {
            me.save("failure").await;
            if let Ok(src) = me.client.source().await {
                let _ = std::fs::write(me.shots.join(format!("{}-failure.html", me.prefix)), src);
            }
        }
        let _ = me.client.clone().close().await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// What the appointment list shows for each appointment titled `title`: its edit link ("" when
/// it has none) and its link states ("google:synced", …), in list order.
async fn appointments_titled(b: &Browser, title: &str) -> Vec<(String, Vec<String>)> {
    let script = "return [...document.querySelectorAll('.appt')] \
        .filter(e => e.querySelector('.appt-title').textContent === arguments[0]) \
        .map(e => { const a = e.querySelector('a.edit'); \
                    return [a ? a.getAttribute('href') : '', \
                            [...e.querySelectorAll('li.link')].map(l => l.dataset.provider + ':' + l.dataset.state)]; });";
    let v = b.client.execute(script, vec![title.into()]).await.unwrap();
    serde_json::from_value(v).unwrap()
}

/// The number before `what` in a sentence like "pulled 3 new, 0 updated".
fn count(text: &str, what: &str) -> u64 {
    let at = text.find(what).unwrap_or_else(|| panic!("{what:?} not in {text:?}"));
    text[..at].split_whitespace().last().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no count in {text:?}"))
}

async fn sign_in(b: &Browser, email: &str, password: &str) {
    b.fill("input[name=email]", email).await;
    b.fill("input[name=password]", password).await;
    b.nav("form[action='/login'] button[type=submit]").await;
}

/// Connects `provider` by clicking through the sandbox's consent page; returns the new card's id.
async fn connect(b: &Browser, provider: &str) -> String {
    let before: Vec<String> = card_ids(b).await;
    b.nav(&format!("#connect-{provider}")).await;
    assert!(b.path().await.starts_with(&format!("/sandbox/{provider}/")), "consent page: {}", b.path().await);
    b.page(&format!("consent-{provider}")).await;
    b.nav("button.allow").await;
    assert_eq!(b.path().await, "/calendar-sync?notice=connected");
    assert_eq!(b.text("#notice").await, "Calendar connected.");
    let after = card_ids(b).await;
    after.into_iter().find(|id| !before.contains(id)).expect("a card for the new connection")
}

async fn card_ids(b: &Browser) -> Vec<String> {
    let mut ids = Vec::new();
    for card in b.all("article.connection").await {
        ids.push(card.attr("data-connection").await.unwrap().unwrap());
    }
    ids
}

fn card(id: &str, css: &str) -> String {
    format!("article[data-connection='{id}'] {css}")
}

/// A new user's first session: sign in, connect both providers, settings (one refused), Sync now,
/// an appointment that syncs out, a revoked grant and its one-click reconnect, disconnect.
async fn calendar_sync_end_to_end(backend: Backend) {
    common::install_tls();
    let pg = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(TestDb::empty(backend).await),
    };
    let server = std::sync::Arc::new(Server::start(pg.as_ref().map(|t| t.url.as_str())));
    let browser = Browser::start(&server.base, &format!("{backend:?}").to_lowercase()).await;
    let s = server.clone();
    browser
        .run(|b| async move {
            // Signing in from a deep link lands on the page asked for.
            b.go("/calendar").await;
            assert!(b.path().await.starts_with("/login"), "{}", b.path().await);
            // The contrast check itself finds pale text.
            b.js("const p = document.createElement('p'); p.id = 'pale'; p.textContent = 'pale words'; \
                  p.style.color = '#aaaaaa'; document.querySelector('main').append(p);")
                .await;
            let low = b.js(CONTRAST).await;
            assert_eq!(low.as_array().map(Vec::len), Some(1), "{low}");
            assert!(low[0].as_str().unwrap().starts_with("p. \"pale words\" 2.17"), "{low}");
            b.js("document.getElementById('pale').remove();").await;
            b.page("login").await;
            sign_in(&b, &s.admin_email, &s.admin_password).await;
            assert_eq!(b.path().await, "/calendar-sync");
            assert_eq!(b.find("#nav-calendar-sync").await.attr("aria-current").await.unwrap().as_deref(), Some("page"));
            assert!(b.exists("#no-connections").await);
            assert!(b.text("#connect-google").await.contains("Sandbox"));
            b.page("calendar-sync-empty").await;

            // Declining at the consent page: said in plain words, with the way back.
            b.nav("#connect-microsoft").await;
            b.nav("button[value=deny]").await;
            assert_eq!(b.text("#oauth-result h1").await, "You declined access");
            assert!(b.text("#oauth-detail").await.contains("access was denied"));
            b.page("oauth-denied").await;
            b.nav("#back-to-calendar-sync").await;
            assert!(b.exists("#no-connections").await, "nothing was connected");

            // A colleague with a private appointment: the admin sees its time, as "Busy".
            s.admin(&["create-user", "--firm", "demo", "--email", "sam@demo.test", "--name", "Sam Staff", "--role", "staff", "--password", "a long staff passphrase"]);
            let sam = s.admin(&["create-token", "--email", "sam@demo.test", "--name", "browser-test"]).trim().to_owned();
            let day3 = chrono::Utc::now().date_naive() + chrono::Days::new(3);
            let private = serde_json::json!({"title": "Dentist", "start": format!("{day3}T08:00:00Z"), "end": format!("{day3}T09:00:00Z"), "time_zone": "UTC", "visibility": "private"});
            s.api_as(&sam, reqwest::Method::POST, "/api/appointments/", Some(private)).await;

            let google = connect(&b, "google").await;
            let microsoft = connect(&b, "microsoft").await;
            for id in [&google, &microsoft] {
                assert_eq!(b.text(&card(id, ".status")).await, "Active");
            }
            assert_eq!(b.text(&card(&google, ".account")).await, "admin@google.sandbox.test");
            b.page("calendar-sync-connected").await;

            // A 3-day window: the browser itself refuses it, and so does the server when a form
            // gets through anyway; the reason sits next to the field and the form stays open.
            b.click(&card(&google, "details.settings summary")).await;
            b.fill(&card(&google, "input[name=sync_window_days]"), "3").await;
            let window = b.find(&card(&google, "input[name=sync_window_days]")).await;
            let underflow = b
                .client
                .execute("return arguments[0].validity.rangeUnderflow;", vec![serde_json::to_value(&window).unwrap()])
                .await
                .unwrap();
            assert_eq!(underflow, true, "the field itself says 7 is the least");
            b.js("document.querySelectorAll('form').forEach(f => f.noValidate = true);").await;
            b.nav(&card(&google, "details.settings button[type=submit]")).await;
            assert_eq!(b.text("#connect-error").await, "Settings not saved.");
            let reason = b.text(&format!("#window-error-{google}")).await;
            assert!(reason.contains("from 7 to 365"), "{reason}");
            let field = b.find(&card(&google, "input[name=sync_window_days]")).await;
            assert_eq!(field.attr("aria-invalid").await.unwrap().as_deref(), Some("true"));
            assert_eq!(field.prop("value").await.unwrap().as_deref(), Some("3"));
            b.page("calendar-sync-settings-refused").await;

            // Automatic sync off, so that only "Sync now" syncs this connection from here on.
            b.fill(&card(&google, "input[name=sync_window_days]"), "60").await;
            b.click(&card(&google, "input[name=sync_enabled]")).await;
            b.nav(&card(&google, "details.settings button[type=submit]")).await;
            assert_eq!(b.text("#notice").await, "Settings saved.");
            let push = b.find(&card(&google, "select[name=push_calendar]")).await;
            assert!(!push.prop("value").await.unwrap().unwrap_or_default().is_empty(), "the primary is the default");
            let facts = b.text(&card(&google, "dl.facts")).await;
            assert!(facts.contains("60 days") && facts.contains("Automatic sync\noff"), "{facts}");

            // Five events made at Google: Sync now pulls them and says so.
            let email = b.text(&card(&google, ".account")).await;
            let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
            s.sandbox(
                "/_sandbox/seed-events",
                serde_json::json!({"provider": "google", "email": email, "count": 5, "start": tomorrow}),
            )
            .await;
            // With the provider slowed down, the card shows the sync running, then the page
            // its result (htmx polls the progress; without scripts the form just waits).
            s.sandbox("/_sandbox/latency", serde_json::json!({"milliseconds": 300})).await;
            let states = b.nav_watching(&card(&google, "button.sync-now"), &format!("#progress-{google}")).await;
            s.sandbox("/_sandbox/latency", serde_json::json!({"milliseconds": 0})).await;
            assert!(
                !states.is_empty() && states.iter().all(|t| t.starts_with("Starting the sync") || t.starts_with("Syncing…")),
                "{states:?}"
            );
            assert!(b.path().await.starts_with("/calendar-sync?synced="), "{}", b.path().await);
            let said = b.text("#notice").await;
            assert!(said.starts_with("Synced:"), "{said}");
            assert_eq!(count(&said, "new,"), 5, "{said}");
            assert_eq!(count(&said, "deleted;"), 0, "{said}");
            assert_eq!(b.text(&card(&google, "time")).await, "just now");
            b.page("calendar-sync-synced").await;

            // An appointment made in calsync goes out on the next sync; the list says where it
            // stands on each connected calendar.
            b.nav("#nav-appointments").await;
            let start = chrono::Utc::now().date_naive() + chrono::Days::new(2);
            b.fill("input[name=title]", "Browser-made review").await;
            b.set("input[name=start]", &format!("{start}T10:00")).await;
            b.set("input[name=end]", &format!("{start}T11:00")).await;
            b.fill("input[name=time_zone]", "Europe/Berlin").await;
            b.nav("form[action='/appointments'] button[type=submit]").await;
            let made = appointments_titled(&b, "Browser-made review").await;
            assert_eq!(made.len(), 1);
            // Outlook syncs on its own and has it waiting (or already synced); Google has
            // automatic sync off, so nothing waits there until Sync now.
            assert!(made[0].1.iter().any(|l| l.starts_with("microsoft:")), "{made:?}");
            assert!(!made[0].1.iter().any(|l| l.starts_with("google:")), "{made:?}");
            let busy = appointments_titled(&b, "Busy").await;
            assert_eq!(busy.len(), 1, "Sam's private appointment shows as Busy");
            assert_eq!(busy[0].0, "", "and cannot be edited by the admin");
            assert!(!b.text("#appointments").await.contains("Dentist"));
            b.page("appointments").await;
            b.nav("#nav-calendar-sync").await;
            // From the keyboard alone: Tab to Sync now, Enter.
            b.tab_to(&card(&google, "button.sync-now")).await;
            b.js("window.__calsyncOldPage = true;").await;
            b.client.active_element().await.unwrap().send_keys("\u{E007}").await.unwrap();
            b.nav_settled_after_marker().await;
            let said = b.text("#notice").await;
            assert_eq!(said.split("pushed ").nth(1).map(|p| count(p, "new")), Some(1), "{said}");
            b.nav("#nav-appointments").await;
            let made = appointments_titled(&b, "Browser-made review").await;
            assert!(made[0].1.contains(&"google:synced".to_owned()), "{made:?}");

            // A weekly series: its occurrences in the list and the week view; one occurrence
            // edited, another deleted, the rest untouched.
            let first = start + chrono::Days::new(1);
            b.fill("input[name=title]", "Weekly check-in").await;
            b.set("input[name=start]", &format!("{first}T09:00")).await;
            b.set("input[name=end]", &format!("{first}T09:30")).await;
            b.fill("input[name=time_zone]", "UTC").await;
            b.find("select[name=repeat]").await.select_by_value("WEEKLY").await.unwrap();
            b.fill("input[name=count]", "4").await;
            b.nav("form[action='/appointments'] button[type=submit]").await;
            assert!(b.text("#notice").await.starts_with("Appointment created."));
            let series = appointments_titled(&b, "Weekly check-in").await;
            assert_eq!(series.len(), 4, "{series:?}");
            b.go(&format!("/appointments?view=week&week={first}")).await;
            assert!(b.text(&format!("section[data-day='{first}']")).await.contains("Weekly check-in"));
            b.page("appointments-week").await;
            b.nav("#next-week").await;
            let next = first + chrono::Days::new(7);
            assert!(b.text(&format!("section[data-day='{next}']")).await.contains("Weekly check-in"));
            b.go(&series[1].0).await;
            assert_eq!(b.text("h1").await, "Edit an occurrence");
            b.page("appointment-edit").await;
            b.fill("input[name=title]", "Check-in (moved)").await;
            b.nav("#save").await;
            assert_eq!(b.text("#notice").await, "Appointment saved.");
            assert_eq!(appointments_titled(&b, "Check-in (moved)").await.len(), 1);
            let rest = appointments_titled(&b, "Weekly check-in").await;
            assert_eq!(rest.len(), 3, "{rest:?}");
            b.go(&rest[1].0).await;
            b.nav("#delete-occurrence").await;
            assert!(b.text("#notice").await.starts_with("That occurrence was cancelled"));
            assert_eq!(appointments_titled(&b, "Weekly check-in").await.len(), 2);
            assert_eq!(appointments_titled(&b, "Check-in (moved)").await.len(), 1);
            b.nav("#nav-calendar-sync").await;

            // Both sides rename it before the next sync, and this connection asks: the conflict
            // page shows both versions and keeps the one chosen.
            b.click(&card(&google, "details.settings summary")).await;
            let strategy = b.find(&card(&google, "select[name=conflict_strategy]")).await;
            strategy.select_by_value("manual").await.unwrap();
            b.nav(&card(&google, "details.settings button[type=submit]")).await;
            assert_eq!(b.text("#notice").await, "Settings saved.");
            let list = s.api(reqwest::Method::GET, "/api/appointments/", None).await;
            let made = list["items"].as_array().unwrap().iter().find(|a| a["title"] == "Browser-made review").unwrap();
            let path = format!("/api/appointments/{}/", made["id"].as_str().unwrap());
            s.api(reqwest::Method::PATCH, &path, Some(serde_json::json!({"title": "Review (calsync)"}))).await;
            s.rename_at_google(&email, "Browser-made review", "Review (Google)").await;
            b.nav(&card(&google, "button.sync-now")).await;
            let said = b.text("#notice").await;
            assert!(said.contains("1 conflict to resolve"), "{said}");
            assert!(b.text(&card(&google, ".conflicts-waiting")).await.starts_with("1 conflict waits for you."));
            b.nav(&card(&google, ".conflicts-waiting a")).await;
            let differs = b.text(".conflict tr.differs").await;
            assert!(differs.contains("Review (calsync)") && differs.contains("Review (Google)"), "{differs}");
            b.page("conflicts").await;
            b.nav(".conflict button.keep-external").await;
            assert!(b.text("#notice").await.starts_with("Conflict resolved"));
            assert!(b.exists("#no-conflicts").await);
            let after = s.api(reqwest::Method::GET, &path, None).await;
            assert_eq!(after["title"], "Review (Google)", "the calendar's version was kept");
            b.nav("#nav-calendar-sync").await;

            // The user revokes calsync at Google: the next sync says so and one click reconnects
            // the same connection.
            s.sandbox("/_sandbox/revoke", serde_json::json!({"provider": "google", "email": email})).await;
            b.nav(&card(&google, "button.sync-now")).await;
            assert!(b.text("#connect-error").await.starts_with("Sync failed"), "{}", b.text("#connect-error").await);
            // Google answers invalid_grant for a revoked grant and for an expired one alike.
            assert_eq!(b.text(&card(&google, ".status")).await, "Expired");
            assert!(b.exists(&card(&google, ".status-message")).await, "the card says what to do");
            b.page("calendar-sync-revoked").await;
            b.nav(&card(&google, "button.reconnect")).await;
            b.nav("button.allow").await;
            assert_eq!(b.path().await, "/calendar-sync?notice=connected");
            assert_eq!(card_ids(&b).await.len(), 2, "reconnecting brings back the same connection");
            assert_eq!(b.text(&card(&google, ".status")).await, "Active");

            // Disconnect asks first; the card stays, revoked, with its history and a way back.
            b.click(&card(&microsoft, "details.confirm summary")).await;
            b.page("calendar-sync-disconnect").await;
            b.nav(&card(&microsoft, "details.confirm button.danger")).await;
            assert!(b.text("#notice").await.starts_with("Calendar disconnected."));
            assert_eq!(b.text(&card(&microsoft, ".status")).await, "Revoked");
            assert!(!b.exists(&card(&microsoft, "button.sync-now")).await, "nothing to sync once disconnected");
            assert!(b.text(&card(&microsoft, ".status-message")).await.contains("reconnect"));
            // The card links to what the status means in the guide.
            b.nav(&card(&microsoft, ".status-message a")).await;
            assert_eq!(b.path().await, "/docs/troubleshooting.md");
            assert!(b.exists("h3#revoked").await, "the link lands on its passage");
            b.page("docs-troubleshooting").await;
            b.go("/calendar-sync").await;
            b.nav(&card(&microsoft, "button.reconnect")).await;
            b.nav("button.allow").await;
            assert_eq!(b.text(&card(&microsoft, ".status")).await, "Active");
            assert_eq!(card_ids(&b).await.len(), 2);

            // A calendar feed address for any calendar app, shown once.
            b.nav("#new-feed").await;
            let feed = b.find("#feed-url").await.prop("value").await.unwrap().unwrap_or_default();
            assert!(feed.starts_with(&format!("{}/ics/ics_", s.base)) && feed.ends_with(".ics"), "{feed}");
            let got = reqwest::get(&feed).await.unwrap();
            assert_eq!(got.headers()["content-type"], "text/calendar; charset=utf-8");
            assert!(got.text().await.unwrap().contains("SUMMARY:Check-in (moved)"));
            b.page("calendar-sync-feed").await;

            // Sync history: every attempt, the failure among them, its details, a replay, CSV.
            b.nav("#nav-history").await;
            assert_eq!(b.all("#chart g.day").await.len(), 14);
            let rows = b.all("#attempts tbody tr").await.len();
            assert!(rows >= 5, "{rows} attempts listed");
            b.page("history").await;
            b.find("#f-outcome").await.select_by_value("failed").await.unwrap();
            b.nav("#filters button[type=submit]").await;
            let failed = b.all("#attempts tbody tr").await;
            assert_eq!(failed.len(), 1, "one failed sync: the revoked grant");
            assert_eq!(failed[0].attr("data-outcome").await.unwrap().as_deref(), Some("failed"));
            // The export follows the filters: one failed attempt and a header.
            let csv = b
                .js("return fetch(document.querySelector('#export-csv').href).then(r => r.text().then(t => [r.status, r.headers.get('content-type'), t]));")
                .await;
            assert_eq!((csv[0].as_u64(), csv[1].as_str()), (Some(200), Some("text/csv; charset=utf-8")));
            let lines: Vec<&str> = csv[2].as_str().unwrap().lines().collect();
            assert_eq!(lines.len(), 2, "{lines:?}");
            assert!(lines[0].starts_with("id,started_at,") && lines[1].contains(",failed,"), "{lines:?}");
            b.nav("#attempts a.details").await;
            assert_eq!(b.text("#outcome").await, "Failed");
            assert!(b.text("#attempt-error").await.contains("Reconnect"));
            b.page("attempt-failed").await;
            b.nav("#replay").await;
            assert_eq!(b.text("#outcome").await, "Succeeded", "the replay runs after the reconnect");
            assert!(b.exists("a[href^='/calendar-sync/history/']").await, "it links to the attempt it replays");
            b.page("attempt-replay").await;

            // Admin: statistics and every connection; a forced full resync.
            b.nav("#nav-admin").await;
            assert_eq!(b.text("#stat-connections").await, "2");
            assert_eq!(b.all("#admin-connections tbody tr").await.len(), 2);
            b.page("admin").await;
            b.nav(&format!("tr[data-connection='{google}'] button.resync")).await;
            assert!(b.text("#notice").await.starts_with("Full resync done"), "{}", b.text("#notice").await);

            // Signed out, the page is closed again.
            b.nav("nav form[action='/logout'] button").await;
            b.go("/calendar-sync").await;
            assert!(b.path().await.starts_with("/login"), "{}", b.path().await);

            // Staff: no Admin in the navigation, the admin page refused, only their own history;
            // their own private appointment in full.
            sign_in(&b, "sam@demo.test", "a long staff passphrase").await;
            assert!(!b.exists("#nav-admin").await);
            b.go("/admin/calendar").await;
            assert_eq!(b.text("h1").await, "Not allowed");
            b.page("admin-refused").await;
            b.go("/calendar-sync/history").await;
            assert!(b.exists("#no-attempts").await, "a colleague's syncs stay out of sight");
            b.go(&format!("/calendar-sync/history?connection={google}")).await;
            assert_eq!(b.text("h1").await, "Not found");
            b.go("/appointments").await;
            assert_eq!(appointments_titled(&b, "Dentist").await.len(), 1);
            assert!(appointments_titled(&b, "Busy").await.is_empty());
        })
        .await;
    let _ = server.admin(&["list-tokens", "--email", &server.admin_email]);
}

backend_tests!(calendar_sync_end_to_end);

/// Connecting a CalDAV calendar (a real Radicale) from the Calendar Sync page's form: a wrong
/// password comes back next to its field with what was typed (never the password), the right
/// one connects, and the card says Active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caldav_form_in_chromium() {
    common::install_tls();
    let radicale = calsync_testkit::radicale::Radicale::start(&[("ann", "app-specific-1")]);
    let http = calsync_providers::http_client(Duration::from_secs(10));
    radicale.mkcalendar(&http, ("ann", "app-specific-1"), "/ann/work/", "Work", "VEVENT").await;
    let server = std::sync::Arc::new(Server::start(None));
    let browser = Browser::start(&server.base, "caldav").await;
    let (s, dav) = (server.clone(), radicale.base.clone());
    browser
        .run(|b| async move {
            b.go("/calendar-sync").await;
            sign_in(&b, &s.admin_email, &s.admin_password).await;
            assert_eq!(b.path().await, "/calendar-sync");
            assert!(!b.exists("#caldav[open]").await, "the form starts folded");
            b.click("#caldav summary").await;
            b.set("#caldav-provider", "").await;
            b.fill("#caldav-server", &dav).await;
            b.fill("#caldav-username", "ann").await;
            b.fill("#caldav-password", "her-main-password").await;
            b.page("caldav-form").await;
            b.nav("#connect-caldav").await;
            assert!(b.text("#caldav-error").await.contains("app-specific password"));
            assert_eq!(b.find("#caldav-password").await.attr("aria-invalid").await.unwrap().as_deref(), Some("true"));
            assert_eq!(b.find("#caldav-server").await.prop("value").await.unwrap().as_deref(), Some(dav.as_str()));
            assert_eq!(b.find("#caldav-password").await.prop("value").await.unwrap().as_deref(), Some(""));
            b.page("caldav-refused").await;
            b.fill("#caldav-password", "app-specific-1").await;
            b.nav("#connect-caldav").await;
            assert_eq!(b.path().await, "/calendar-sync?notice=connected");
            let ids = card_ids(&b).await;
            assert_eq!(ids.len(), 1);
            assert_eq!(b.text(&card(&ids[0], ".provider-name")).await, "CalDAV calendar");
            assert_eq!(b.text(&card(&ids[0], ".status")).await, "Active");
            b.page("caldav-connected").await;
        })
        .await;
}
