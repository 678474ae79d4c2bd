//! `calsync bench scheduler`: the background worker of a real calsync service (HTTP server,
//! webhook receivers, worker) against the provider sandbox running as a separate process with
//! 20 ms added to every request, so the CPU time and peak RSS printed are calsync's own.
//!
//! It connects many accounts (their first syncs open their push channels), then measures:
//! - one sweep of every connection with nothing changed: wall time, requests per connection,
//!   CPU seconds and peak RSS of this process;
//! - propagation, from an event created at the provider to its appointment in calsync: with
//!   webhooks (deliveries wake the worker), and with polling only (deliveries dropped, a
//!   smaller service polling every `--poll-seconds`).

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use calsync_domain::account::{Email, FirmSlug};
use calsync_domain::connection::{Provider, SyncWindowDays};
use calsync_domain::ids::{ConnectionId, FirmId};
use calsync_store::crypto::Keyring;
use calsync_store::{Db, NewGrant, NewUser, SettingsChange};
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::cli::LogFormat;
use crate::config::{Config, Environment};
use crate::startup::Application;
use crate::state::AppState;

pub struct SchedulerOptions {
    pub provider: Provider,
    pub connections: usize,
    pub latency_ms: u64,
    pub concurrency: usize,
    pub samples: usize,
    pub poll_seconds: u64,
    /// A PostgreSQL server to make a scratch database on; a fresh SQLite file when `None`.
    pub postgres: Option<String>,
}

/// The sandbox as a child process, killed on drop.
struct SandboxProcess {
    child: Child,
    url: String,
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_sandbox() -> anyhow::Result<SandboxProcess> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(std::env::current_exe()?)
        .args(["sandbox", "--bind", &format!("127.0.0.1:{port}"), "--no-quota"])
        .env("CALSYNC_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("starting the sandbox process")?;
    let sandbox = SandboxProcess { child, url: format!("http://127.0.0.1:{port}") };
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http.get(format!("{}/_sandbox/requests", sandbox.url)).send().await.is_ok() {
            return Ok(sandbox);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("the sandbox process did not start")
}

fn cpu_seconds() -> f64 {
    // utime and stime (fields 14 and 15) in clock ticks of 1/100 s.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map_or(f64::NAN, |k| k / 1024.0)
}

struct Service {
    state: AppState,
    db: Db,
    keyring: Keyring,
    sandbox: String,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: Option<TempDir>,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A calsync service as `calsync serve` runs it, with its worker and (optionally) webhooks.
async fn service(
    opts: &SchedulerOptions,
    sandbox: &str,
    label: &str,
    interval: chrono::Duration,
    webhooks: bool,
) -> anyhow::Result<Service> {
    let (database_url, dir) = match &opts.postgres {
        Some(server) => {
            let name = format!("calsync_bench_{}_{label}", std::process::id());
            (Db::create_postgres_database(server, &name).await?, None)
        }
        None => {
            let path = std::env::temp_dir().join(format!("calsync-bench-scheduler-{}-{label}", std::process::id()));
            std::fs::create_dir_all(&path)?;
            (format!("sqlite://{}/bench.db", path.display()), Some(TempDir(path)))
        }
    };
    let db = Db::connect(&database_url).await?;
    db.migrate().await?;
    let keyring = Keyring::parse(&Keyring::generate_spec("bench"))?;
    let mut sync = calsync_engine::SyncConfig { interval, ..Default::default() };
    if webhooks {
        sync.webhooks = Some(calsync_engine::sync::WebhookConfig {
            base_url: String::new(),
            ttl: chrono::Duration::hours(70),
            renew_before: chrono::Duration::hours(23),
            interval,
        });
    }
    let config = Config {
        database_url,
        bind: "127.0.0.1:0".into(),
        public_url: "http://127.0.0.1:0".parse()?,
        environment: Environment::Development,
        keyring: keyring.clone(),
        log_format: LogFormat::Text,
        log_filter: "warn".into(),
        session_ttl_hours: 1,
        max_body_bytes: 1 << 20,
        api_rate_per_minute: 600,
        api_rate_burst: 100,
        sandbox: crate::providers::SandboxMode::External(sandbox.parse()?),
        sandbox_state: None,
        providers: Default::default(),
        sync,
        worker: crate::worker::WorkerConfig { concurrency: opts.concurrency, ..Default::default() },
    };
    let app = Application::build_with_db(config, db.clone()).await?;
    let state = app.state();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    Ok(Service {
        state,
        db,
        keyring,
        sandbox: sandbox.to_owned(),
        http: calsync_providers::http_client(Duration::from_secs(60)),
        stop: Some(tx),
        _dir: dir,
    })
}

/// A connected account: where it lives in calsync and its access token at the sandbox.
#[derive(Clone)]
struct Account {
    firm: FirmId,
    connection: ConnectionId,
    token: String,
}

impl Service {
    async fn control(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let resp = self.http.post(format!("{}{path}", self.sandbox)).json(&body).send().await?;
        if !resp.status().is_success() {
            bail!("sandbox {path}: {}", resp.status());
        }
        Ok(resp.json().await?)
    }

    async fn requests(&self) -> anyhow::Result<u64> {
        let v: Value = self.http.get(format!("{}/_sandbox/requests", self.sandbox)).send().await?.json().await?;
        v["total"].as_u64().context("request total")
    }

    fn syncs(&self) -> u64 {
        self.state.worker.as_ref().map_or(0, |w| w.report().syncs)
    }

    /// `n` accounts connected in one firm, each with its own staff user.
    async fn connect(&self, provider: Provider, n: usize, tag: &str) -> anyhow::Result<Vec<Account>> {
        let firm = self.db.create_firm("Bench", &FirmSlug::parse(&format!("bench-{tag}"))?).await?;
        let setup = self.state.connections.providers().get(provider).context("provider configured")?.clone();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let user = self
                .db
                .create_user(NewUser {
                    firm_id: firm.id,
                    email: Email::parse(&format!("staff{i}@{tag}.bench.test"))?,
                    name: format!("Staff {i}"),
                    role: calsync_domain::tenant::Role::Staff,
                    password_hash: "-".into(),
                })
                .await?;
            let email = format!("{tag}{i}@{}.test", provider.as_str());
            let minted =
                self.control("/_sandbox/accounts", json!({"provider": provider.as_str(), "email": email})).await?;
            let access = minted["access_token"].as_str().context("access token")?.to_owned();
            let refresh = minted["refresh_token"].as_str().context("refresh token")?.to_owned();
            let calendars = crate::services::connections::calendar_infos(setup.calendar.list_calendars(&access).await?);
            let grant = NewGrant {
                firm_id: firm.id,
                user_id: user.id,
                provider,
                account_id: format!("{tag}-{i}"),
                account_email: email,
                access_token: access.clone().into(),
                refresh_token: Some(refresh.into()),
                expires_at: Some(self.db.clock().now() + chrono::Duration::minutes(55)),
                scopes: vec![],
            };
            let conn = self.db.save_grant(&self.keyring, &grant, &calendars).await?;
            let change = SettingsChange { sync_window_days: Some(SyncWindowDays::parse(30)?), ..Default::default() };
            self.db
                .update_connection_settings(firm.id, user.id, conn.id, &change)
                .await?
                .map_err(anyhow::Error::from)?;
            out.push(Account { firm: firm.id, connection: conn.id, token: access });
        }
        Ok(out)
    }

    /// Waits until the worker has finished `n` more syncs than `before` and nothing is due.
    async fn settle(&self, before: u64, n: usize, limit: Duration) -> anyhow::Result<Duration> {
        let began = Instant::now();
        loop {
            let r = self.state.worker.as_ref().context("a worker")?.report();
            if r.syncs >= before + n as u64 && r.in_flight == 0 {
                return Ok(began.elapsed());
            }
            if began.elapsed() > limit {
                bail!("only {} of {n} syncs after {limit:?} ({} in flight)", r.syncs - before, r.in_flight);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Creates an event at the provider for `a` and times how long until calsync has it.
    async fn propagation(&self, provider: Provider, a: &Account, title: &str) -> anyhow::Result<Duration> {
        let start = Utc::now() + chrono::Duration::days(2);
        let end = start + chrono::Duration::hours(1);
        let f = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        let (path, body) = match provider {
            Provider::Google => (
                "/google/calendar/v3/calendars/primary/events",
                json!({"summary": title, "start": {"dateTime": f(start)}, "end": {"dateTime": f(end)}}),
            ),
            Provider::Microsoft => (
                "/microsoft/graph/v1.0/me/events",
                json!({"subject": title,
                       "start": {"dateTime": f(start).trim_end_matches('Z'), "timeZone": "UTC"},
                       "end": {"dateTime": f(end).trim_end_matches('Z'), "timeZone": "UTC"}}),
            ),
            Provider::CalDav => anyhow::bail!("the scheduler bench runs on the sandbox's Google and Graph"),
        };
        let earlier: HashSet<_> =
            self.db.attempts(a.firm, Some(a.connection), 5).await?.into_iter().map(|x| x.id).collect();
        let began = Instant::now();
        let resp = self.http.post(format!("{}{path}", self.sandbox)).bearer_auth(&a.token).json(&body).send().await?;
        if !resp.status().is_success() {
            bail!("creating an event at the sandbox: {}", resp.status());
        }
        loop {
            let latest = self.db.attempts(a.firm, Some(a.connection), 3).await?;
            if latest.iter().any(|x| !earlier.contains(&x.id) && x.finished_at.is_some() && x.counts.pulled_created > 0)
            {
                return Ok(began.elapsed());
            }
            if began.elapsed() > Duration::from_secs(600) {
                bail!("{title} never reached calsync");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    // Nearest rank.
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub async fn run(opts: SchedulerOptions) -> anyhow::Result<()> {
    if opts.connections == 0 || opts.samples == 0 {
        bail!("--connections and --samples must be at least 1");
    }
    let backend = if opts.postgres.is_some() { "PostgreSQL" } else { "SQLite" };
    println!(
        "calsync bench scheduler · {} · {backend} · {} connections · worker concurrency {} · sandbox process, {} ms per request",
        opts.provider.as_str(),
        opts.connections,
        opts.concurrency,
        opts.latency_ms
    );
    let sandbox = start_sandbox().await?;
    let s = service(&opts, &sandbox.url, "sweep", chrono::Duration::minutes(30), true).await?;

    // Connected with no latency: their first syncs open their push channels.
    let setup = Instant::now();
    let before = s.syncs();
    let accounts = s.connect(opts.provider, opts.connections, "sweep").await?;
    s.settle(before, opts.connections, Duration::from_secs(1800)).await?;
    let channels: usize = {
        let mut n = 0;
        for a in accounts.iter().take(20) {
            n += s.db.channels(a.firm, a.connection).await?.len();
        }
        n
    };
    println!(
        "setup: {} connections connected and synced once in {:.1} s; push channels on the first 20: {channels}",
        accounts.len(),
        setup.elapsed().as_secs_f64()
    );

    // The sweep: every connection due at once, nothing changed.
    s.control("/_sandbox/latency", json!({"milliseconds": opts.latency_ms})).await?;
    let (req0, cpu0, syncs0) = (s.requests().await?, cpu_seconds(), s.syncs());
    s.db.clock().advance(40 * 60);
    if let Some(w) = &s.state.worker {
        w.wake();
    }
    let took = s.settle(syncs0, opts.connections, Duration::from_secs(1800)).await?;
    let (req1, cpu1) = (s.requests().await?, cpu_seconds());
    println!("{:<52} {:>10}", "scenario", "result");
    println!("{:<52} {:>10.2} s", format!("sweep of {} connections, no changes", opts.connections), took.as_secs_f64());
    println!("{:<52} {:>10.3}", "requests per connection in the sweep", (req1 - req0) as f64 / opts.connections as f64);
    println!("{:<52} {:>10.1} s", "CPU of calsync during the sweep", cpu1 - cpu0);
    println!("{:<52} {:>10.0} MiB", "peak RSS of calsync (setup included)", peak_rss_mib());

    // Propagation with webhooks: one change at a time on random connections.
    let mut rng_state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    let mut pushed = Vec::with_capacity(opts.samples);
    for i in 0..opts.samples {
        let a = &accounts[(next() % accounts.len() as u64) as usize];
        pushed.push(s.propagation(opts.provider, a, &format!("Webhook sample {i}")).await?);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pushed.sort();
    println!(
        "{:<52} {:>10}",
        "propagation with webhooks, p50 / p95",
        format!("{} / {} ms", percentile(&pushed, 0.5).as_millis(), percentile(&pushed, 0.95).as_millis())
    );
    drop(s);

    // Polling only: a smaller service, deliveries dropped, changes spread over one interval.
    let poll = chrono::Duration::seconds(opts.poll_seconds as i64);
    let p = service(&opts, &sandbox.url, "poll", poll, false).await?;
    p.control("/_sandbox/latency", json!({"milliseconds": opts.latency_ms})).await?;
    p.control("/_sandbox/push", json!({"mode": "drop"})).await?;
    let n = opts.samples.min(opts.connections).max(1);
    let before = p.syncs();
    let polled_accounts = p.connect(opts.provider, n, "poll").await?;
    p.settle(before, n, Duration::from_secs(600)).await?;
    let p = Arc::new(p);
    let mut tasks = Vec::new();
    for (i, a) in polled_accounts.into_iter().enumerate() {
        let p = Arc::clone(&p);
        let delay = Duration::from_millis(next() % (opts.poll_seconds * 1000).max(1));
        let provider = opts.provider;
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            p.propagation(provider, &a, &format!("Polled sample {i}")).await
        }));
    }
    let mut polled = Vec::with_capacity(n);
    for t in tasks {
        polled.push(t.await??);
    }
    polled.sort();
    if let Some(server) = &opts.postgres {
        for label in ["sweep", "poll"] {
            let _ = Db::drop_postgres_database(server, &format!("calsync_bench_{}_{label}", std::process::id())).await;
        }
    }
    println!(
        "{:<52} {:>10}",
        format!("propagation polling every {} s (±20%), p50 / p95", opts.poll_seconds),
        format!("{} / {} ms", percentile(&polled, 0.5).as_millis(), percentile(&polled, 0.95).as_millis())
    );
    Ok(())
}
