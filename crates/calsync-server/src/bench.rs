//! `calsync bench sync`: the sync engine against the provider sandbox in this process, with no
//! injected latency, on a fresh database. It measures an initial import of many events into one
//! connection (events/s, HTTP requests, peak RSS), a sync with nothing to do (requests per
//! calendar) and the push of new appointments (requests per event). Run it on a release build.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use calsync_domain::appointment::{AppointmentData, AppointmentStatus, When};
use calsync_domain::connection::{Provider, SyncWindowDays};
use calsync_domain::ids::{ConnectionId, FirmId, UserId};
use calsync_domain::sync::SyncTrigger;
use calsync_engine::{SyncConfig, SyncEngine, TokenSource};
use calsync_store::crypto::Keyring;
use calsync_store::{CalendarInfo, Db, NewGrant, NewUser, SettingsChange, SyncAttempt};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use url::Url;

use crate::providers::{ProviderSettings, SandboxMode, resolve};

/// Seeded sandbox events start here, one a minute.
const SEED_START: &str = "2020-01-01T00:00:00Z";

pub struct BenchOptions {
    pub provider: Provider,
    pub imports: Vec<usize>,
    pub push: usize,
}

struct World {
    db: Db,
    engine: Arc<SyncEngine>,
    keyring: Keyring,
    providers: Arc<calsync_engine::Providers>,
    sandbox: String,
    http: reqwest::Client,
    _dir: tempfile_dir::TempDir,
}

/// A throwaway directory removed on drop (the bench's SQLite file lives here).
mod tempfile_dir {
    pub struct TempDir(pub std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

async fn world(label: &str) -> anyhow::Result<World> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sandbox = format!("http://{}", listener.local_addr()?);
    // The bench measures calsync, not Google's per-user quota (600 requests a minute, which
    // the sandbox enforces and the engine backs off from): lifted here.
    let config = calsync_sandbox::SandboxConfig {
        public_base_url: sandbox.clone(),
        seed: Some(7),
        google_user_quota_per_minute: 1_000_000,
        google_project_quota_per_minute: 1_000_000,
        ..Default::default()
    };
    tokio::spawn(calsync_sandbox::serve(listener, config));
    let path = std::env::temp_dir().join(format!("calsync-bench-{}-{label}", std::process::id()));
    std::fs::create_dir_all(&path)?;
    let dir = tempfile_dir::TempDir(path);
    let db = Db::connect(&format!("sqlite://{}/bench.db", dir.0.display())).await?;
    db.migrate().await?;
    // The seeded events lie around SEED_START; calsync's clock is set there so they are in the window.
    let seed_start: DateTime<Utc> = SEED_START.parse()?;
    let now = seed_start + chrono::Duration::days(60);
    db.clock().advance((now - Utc::now()).num_seconds());
    let public: Url = "http://127.0.0.1:1".parse()?;
    let providers =
        Arc::new(resolve(&ProviderSettings::default(), &SandboxMode::External(sandbox.parse()?), &public, true)?);
    let keyring = Keyring::parse(&Keyring::generate_spec("bench"))?;
    let tokens = Arc::new(TokenSource::new(db.clone(), keyring.clone(), providers.clone(), db.clock().clone()));
    let engine = Arc::new(SyncEngine::new(
        db.clone(),
        tokens,
        providers.clone(),
        // The engine's own speed: like the sandbox's quota (lifted above), no account budget
        // paces it.
        SyncConfig { request_budgets: false, ..SyncConfig::default() },
    ));
    let http = calsync_providers::http_client(Duration::from_secs(120));
    Ok(World { db, engine, keyring, providers, sandbox, http, _dir: dir })
}

impl World {
    async fn control(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let resp = self.http.post(format!("{}{path}", self.sandbox)).json(&body).send().await?;
        if !resp.status().is_success() {
            bail!("sandbox {path}: {}", resp.status());
        }
        Ok(resp.json().await?)
    }

    /// A firm, a user and a connection to a fresh sandbox account, syncing a 365-day window.
    async fn connection(&self, provider: Provider, n: usize) -> anyhow::Result<(FirmId, UserId, ConnectionId, String)> {
        use calsync_domain::account::{Email, FirmSlug};
        let firm = self.db.create_firm("Bench", &FirmSlug::parse(&format!("bench-{n}"))?).await?;
        let user = self
            .db
            .create_user(NewUser {
                firm_id: firm.id,
                email: Email::parse(&format!("staff{n}@bench.test"))?,
                name: "Bench".into(),
                role: calsync_domain::tenant::Role::Staff,
                password_hash: "-".into(),
            })
            .await?;
        let email = format!("bench{n}@{}.test", provider.as_str());
        let minted = self.control("/_sandbox/accounts", json!({"provider": provider.as_str(), "email": email})).await?;
        let access = minted["access_token"].as_str().context("access token")?.to_owned();
        let refresh = minted["refresh_token"].as_str().context("refresh token")?.to_owned();
        let calendars = self.engine_calendars(provider, &access).await?;
        let grant = NewGrant {
            firm_id: firm.id,
            user_id: user.id,
            provider,
            account_id: format!("bench-{n}"),
            account_email: email.clone(),
            access_token: access.into(),
            refresh_token: Some(refresh.into()),
            expires_at: Some(self.db.clock().now() + chrono::Duration::minutes(55)),
            scopes: vec![],
        };
        let conn = self.db.save_grant(&self.keyring, &grant, &calendars).await?;
        let change = SettingsChange { sync_window_days: Some(SyncWindowDays::parse(365)?), ..Default::default() };
        self.db.update_connection_settings(firm.id, user.id, conn.id, &change).await?.map_err(anyhow::Error::from)?;
        Ok((firm.id, user.id, conn.id, email))
    }

    async fn engine_calendars(&self, provider: Provider, token: &str) -> anyhow::Result<Vec<CalendarInfo>> {
        let setup = self.providers.get(provider).context("provider configured")?;
        Ok(crate::services::connections::calendar_infos(setup.calendar.list_calendars(token).await?))
    }

    async fn sync(&self, firm: FirmId, id: ConnectionId) -> anyhow::Result<(SyncAttempt, Duration)> {
        let t = Instant::now();
        let a = self.engine.sync(firm, id, SyncTrigger::Manual, None).await?;
        let took = t.elapsed();
        if let Some(m) = &a.error_message {
            bail!("the sync reported a problem: {m}");
        }
        Ok((a, took))
    }
}

pub async fn run(opts: BenchOptions) -> anyhow::Result<()> {
    println!("calsync bench sync · provider {} · SQLite · sandbox in-process, no latency", opts.provider.as_str());
    println!("{:<44} {:>12} {:>10} {:>10} {:>12}", "scenario", "events/s", "seconds", "requests", "peak RSS MiB");
    for (i, &n) in opts.imports.iter().enumerate() {
        let w = world(&format!("import{i}")).await?;
        let (firm, _user, conn, email) = w.connection(opts.provider, i).await?;
        w.control("/_sandbox/seed-events", json!({"provider": opts.provider.as_str(), "email": email, "count": n}))
            .await?;
        let (a, took) = w.sync(firm, conn).await?;
        if a.counts.pulled_created != n as i64 {
            bail!("imported {} of {n} events", a.counts.pulled_created);
        }
        println!(
            "{:<44} {:>12.0} {:>10.2} {:>10} {:>12.1}",
            format!("initial import, {n} events"),
            n as f64 / took.as_secs_f64(),
            took.as_secs_f64(),
            a.counts.requests,
            peak_rss_mib().unwrap_or(f64::NAN)
        );
        let calendars = w.db.calendars(firm, conn).await?.iter().filter(|c| c.selected).count().max(1);
        let (quiet, took) = w.sync(firm, conn).await?;
        println!(
            "{:<44} {:>12} {:>10.3} {:>10} {:>12}",
            format!("no-change sync after it ({calendars} calendar)"),
            "-",
            took.as_secs_f64(),
            quiet.counts.requests,
            format!("{:.2}/cal", quiet.counts.requests as f64 / calendars as f64)
        );
        w.db.close().await;
    }
    if opts.push > 0 {
        let w = world("push").await?;
        let (firm, user, conn, _) = w.connection(opts.provider, 99).await?;
        let now = w.db.clock().now();
        for i in 0..opts.push {
            let start = now + chrono::Duration::minutes(30 * i as i64 + 60);
            let data = AppointmentData {
                title: format!("Appointment {i}"),
                description: String::new(),
                location: String::new(),
                when: When::Timed { start, end: start + chrono::Duration::minutes(30) },
                time_zone: chrono_tz::Tz::UTC,
                attendees: vec![],
                status: AppointmentStatus::Confirmed,
                visibility: Default::default(),
                show_as: Default::default(),
                send_invitations: false,
                organizer: None,
                recurrence: Vec::new(),
                series: None,
            };
            w.db.insert_appointment(firm, user, data).await?;
        }
        let (a, took) = w.sync(firm, conn).await?;
        if a.counts.pushed_created != opts.push as i64 {
            bail!("pushed {} of {} appointments", a.counts.pushed_created, opts.push);
        }
        println!(
            "{:<44} {:>12.0} {:>10.2} {:>10} {:>12}",
            format!("push of {} new appointments", opts.push),
            opts.push as f64 / took.as_secs_f64(),
            took.as_secs_f64(),
            a.counts.requests,
            format!("{:.3}/event", a.counts.requests as f64 / opts.push as f64)
        );
        w.db.close().await;
    }
    Ok(())
}
