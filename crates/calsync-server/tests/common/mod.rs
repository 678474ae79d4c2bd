//! Test harness: the real application on port 0 over a fresh database, spoken to over HTTP.
#![allow(dead_code)]

use calsync_server::cli::LogFormat;
use calsync_server::config::{Config, Environment};
use calsync_server::crypto::Keyring;
use calsync_server::services::accounts;
use calsync_server::startup::Application;
use calsync_store::Db;
use calsync_testkit::{Backend, TestDb};
use reqwest::header::{COOKIE, HeaderMap, SET_COOKIE};
use std::collections::BTreeMap;
use std::sync::Once;
use tokio::sync::oneshot;

pub const PASSWORD: &str = "correct horse battery";
pub const MAX_BODY: usize = 16 * 1024;

pub fn install_tls() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub struct TestApp {
    pub base: String,
    pub db: Db,
    pub http: reqwest::Client,
    pub state: calsync_server::state::AppState,
    /// The provider sandbox this app talks to, when started with one.
    pub sandbox: Option<String>,
    pub url_db: String,
    config: Config,
    _tdb: TestDb,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The test configuration's encryption key, for processes started beside the app.
pub const TEST_KEY: &str = "test:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

pub fn test_config() -> Config {
    Config {
        database_url: String::new(),
        bind: "127.0.0.1:0".into(),
        public_url: "http://127.0.0.1:0".parse().unwrap(),
        environment: Environment::Development,
        keyring: Keyring::parse(TEST_KEY).unwrap(),
        log_format: LogFormat::Text,
        log_filter: "warn".into(),
        session_ttl_hours: 1,
        max_body_bytes: MAX_BODY,
        api_rate_per_minute: 60_000,
        api_rate_burst: 10_000,
        sandbox: calsync_server::providers::SandboxMode::Off,
        sandbox_state: None,
        providers: Default::default(),
        // Retries back off in milliseconds here: a 429 storm costs no test time.
        sync: calsync_engine::SyncConfig {
            backoff_base: std::time::Duration::from_millis(1),
            backoff_cap: std::time::Duration::from_millis(20),
            retry_after_cap: std::time::Duration::from_millis(20),
            // Some tests send hundreds of requests per account at once, which the budgets would
            // pace to nine a second; the budgets have their own tests.
            request_budgets: false,
            ..Default::default()
        },
        // Tests sync when they say so; the worker's own tests turn it on.
        worker: calsync_server::worker::WorkerConfig { enabled: false, ..Default::default() },
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, test_config()).await
    }

    pub async fn spawn_with(backend: Backend, mut config: Config) -> Self {
        install_tls();
        let tdb = TestDb::new(backend).await;
        config.database_url = tdb.url.clone();
        let app = Application::build_with_db(config.clone(), tdb.db.clone()).await.expect("app builds");
        let base = format!("http://{}", app.addr());
        let state = app.state();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let url_db = tdb.url.clone();
        TestApp { base, db: tdb.db.clone(), http, state, sandbox: None, url_db, config, _tdb: tdb, stop: Some(tx) }
    }

    /// A second instance of the service on the same database and sandbox (another process, as
    /// far as calsync can tell): its base URL, and the sender that stops it.
    pub async fn sibling(&self) -> (String, oneshot::Sender<()>) {
        let db = Db::connect(&self.url_db).await.expect("database opens");
        let app = Application::build_with_db(self.config.clone(), db).await.expect("app builds");
        let base = format!("http://{}", app.addr());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        (base, tx)
    }

    /// Stops this process's service and starts a fresh one on the same database and sandbox:
    /// nothing held in memory survives (engine, token cache, throttles).
    pub async fn restart(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The old service closes its pool on the way out: the new one gets its own.
        self.db = Db::connect(&self.url_db).await.expect("database reopens");
        let app = Application::build_with_db(self.config.clone(), self.db.clone()).await.expect("app builds");
        self.base = format!("http://{}", app.addr());
        self.state = app.state();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        self.stop = Some(tx);
    }

    /// The app with its own provider sandbox on port 0. Provider calls time out after a second,
    /// and the sandbox's `timeout` fault holds requests for two.
    pub async fn spawn_with_sandbox(backend: Backend) -> Self {
        Self::spawn_with_sandbox_using(backend, |_| {}).await
    }

    /// [`TestApp::spawn_with_sandbox`] with the configuration adjusted first.
    pub async fn spawn_with_sandbox_using(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        install_tls();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sandbox = format!("http://{}", listener.local_addr().unwrap());
        let sandbox_config = calsync_sandbox::SandboxConfig {
            public_base_url: sandbox.clone(),
            timeout_fault_duration: std::time::Duration::from_secs(2),
            ..Default::default()
        };
        tokio::spawn(calsync_sandbox::serve(listener, sandbox_config));
        let mut config = test_config();
        config.sandbox = calsync_server::providers::SandboxMode::External(sandbox.parse().unwrap());
        config.providers.timeout_secs = Some(1);
        adjust(&mut config);
        let mut app = Self::spawn_with(backend, config).await;
        app.sandbox = Some(sandbox);
        app
    }

    pub fn sandbox_url(&self, path: &str) -> String {
        format!("{}{}", self.sandbox.as_deref().expect("started with a sandbox"), path)
    }

    /// POSTs to the sandbox control API.
    pub async fn control(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let resp = self.http.post(self.sandbox_url(path)).json(&body).send().await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    /// Requests the sandbox has seen whose "METHOD /route" key satisfies `pred`.
    pub async fn sandbox_requests(&self, pred: impl Fn(&str) -> bool) -> u64 {
        let v: serde_json::Value =
            self.http.get(self.sandbox_url("/_sandbox/requests")).send().await.unwrap().json().await.unwrap();
        v["requests"].as_object().unwrap().iter().filter(|(k, _)| pred(k)).map(|(_, n)| n.as_u64().unwrap()).sum()
    }

    pub async fn token_requests(&self) -> u64 {
        self.sandbox_requests(|k| k.starts_with("POST ") && k.ends_with("/token")).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Creates the firm if needed, a user in it, and returns an API token for that user.
    pub async fn user(&self, firm: &str, email: &str, role: &str) -> String {
        if self.db.firm_by_slug(firm).await.is_err() {
            accounts::create_firm(&self.db, &format!("Firm {firm}"), firm).await.unwrap();
        }
        accounts::create_user(&self.db, firm, email, &format!("User {email}"), role, PASSWORD).await.unwrap();
        accounts::create_api_token(&self.db, email, "test", None).await.unwrap()
    }

    pub fn get(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(token)
    }

    pub fn post(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(token)
    }

    pub fn patch(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.patch(self.url(path)).bearer_auth(token)
    }

    pub fn delete(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.delete(self.url(path)).bearer_auth(token)
    }
}

/// Connects `provider` for the user of `token` as `account`, approving at the sandbox's consent
/// page; answers with the connection as the API shows it.
pub async fn connect_account(app: &TestApp, token: &str, provider: &str, account: &str) -> serde_json::Value {
    const BASE: &str = "/api/calendar/oauth-connections";
    let resp = app.post(&format!("{BASE}/initiate_{provider}_oauth/"), token).send().await.unwrap();
    let v: serde_json::Value = resp.json().await.unwrap();
    let url = format!("{}&sandbox_approve=1&login_hint={account}", v["authorization_url"].as_str().unwrap());
    let resp = app.http.get(url).send().await.unwrap();
    let location = reqwest::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let q: BTreeMap<String, String> = location.query_pairs().into_owned().collect();
    let resp = app
        .post(&format!("{BASE}/oauth_callback/"), token)
        .json(&serde_json::json!({"code": q["code"], "state": q["state"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    resp.json().await.unwrap()
}

/// A minimal cookie jar for the web tests (reqwest's is a feature we do not build).
#[derive(Default, Debug, Clone)]
pub struct Cookies(pub BTreeMap<String, String>);

impl Cookies {
    pub fn absorb(&mut self, headers: &HeaderMap) {
        for v in headers.get_all(SET_COOKIE) {
            let s = v.to_str().unwrap();
            let pair = s.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            let expired = s.contains("Max-Age=0");
            if expired || v.is_empty() {
                self.0.remove(k);
            } else {
                self.0.insert(k.to_owned(), v.to_owned());
            }
        }
    }

    pub fn header(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub fn apply(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.0.is_empty() { rb } else { rb.header(COOKIE, self.header()) }
    }
}

/// The value of `<input … name="{name}" value="…">` in a page.
pub fn form_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no input {name} in page")) + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Signs in through the login form and returns the cookies of the session.
pub async fn sign_in(app: &TestApp, email: &str, password: &str) -> (Cookies, reqwest::StatusCode) {
    let mut jar = Cookies::default();
    let page = app.http.get(app.url("/login")).send().await.unwrap();
    jar.absorb(page.headers());
    let html = page.text().await.unwrap();
    let csrf = form_value(&html, "csrf_token");
    let resp = jar
        .apply(app.http.post(app.url("/login")))
        .form(&[("email", email), ("password", password), ("csrf_token", &csrf), ("next", "/")])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    jar.absorb(resp.headers());
    (jar, status)
}

/// Polls `check` every 50 ms until it answers `Some`, for at most `secs` seconds.
#[allow(dead_code)] // Not every test binary waits.
pub async fn wait_for<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let began = std::time::Instant::now();
    let deadline = began + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what} ({:?})", began.elapsed());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
