//! `calsync bench caldav`: calsync's CalDAV sync against a real Radicale, next to vdirsyncer
//! syncing the same calendar into a folder, as a reference. Radicale (and vdirsyncer) come from
//! PyPI: `pip install radicale vdirsyncer` into the Python given by `--python` (default
//! `$CALSYNC_PYTHON`, else `python3`). Both clients reach Radicale through a proxy here that
//! counts their requests. Measured: the initial sync of `--events` events and a sync with
//! nothing new (wall time, HTTP requests). Run it on a release build.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use calsync_domain::connection::{Provider, SyncWindowDays};
use calsync_domain::sync::SyncTrigger;
use calsync_engine::{SyncConfig, SyncEngine, TokenSource};
use calsync_providers::caldav::{DavAuth, DavCredentials, discover};
use calsync_store::crypto::Keyring;
use calsync_store::{Db, NewGrant, NewUser, SettingsChange};
use chrono::{Duration as Days, DurationRound, Utc};

use crate::providers::{ProviderSettings, SandboxMode, resolve};

const USER: &str = "bench";
const PASSWORD: &str = "bench-app-password";

pub struct CalDavBenchOptions {
    pub events: usize,
    pub python: Option<String>,
}

/// A directory under the system's temporary one, removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("calsync-bench-caldav-{}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Radicale {
    child: Child,
    base: String,
}

impl Drop for Radicale {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_radicale(python: &str, dir: &Path) -> anyhow::Result<Radicale> {
    let users = dir.join("users");
    std::fs::write(&users, format!("{USER}:{PASSWORD}\n"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(python)
        .args(["-m", "radicale", "--server-hosts", &format!("127.0.0.1:{port}")])
        .args(["--auth-type", "htpasswd", "--auth-htpasswd-encryption", "plain"])
        .arg("--auth-htpasswd-filename")
        .arg(&users)
        .arg("--storage-filesystem-folder")
        .arg(dir.join("collections"))
        .args(["--logging-level", "warning"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("{python} -m radicale (pip install radicale)"))?;
    let radicale = Radicale { child, base: format!("http://127.0.0.1:{port}") };
    let began = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if began.elapsed() > Duration::from_secs(20) {
            bail!("Radicale did not start: is it installed for {python}? (pip install radicale)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(radicale)
}

/// A proxy to `upstream` that counts the requests passing through.
async fn counting_proxy(upstream: String, count: Arc<AtomicU64>) -> anyhow::Result<String> {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, Response};
    let http = calsync_providers::http_client(Duration::from_secs(120));
    let handler = move |req: Request<Body>| {
        let (http, upstream, count) = (http.clone(), upstream.clone(), count.clone());
        async move {
            count.fetch_add(1, Ordering::Relaxed);
            let (parts, body) = req.into_parts();
            let body = to_bytes(body, 1 << 28).await.unwrap_or_default();
            let url = format!("{upstream}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
            let mut rb = http.request(parts.method.clone(), url).body(body.to_vec());
            for (k, v) in &parts.headers {
                if k != "host" && k != "content-length" {
                    rb = rb.header(k, v);
                }
            }
            match rb.send().await {
                Ok(resp) => {
                    let mut out = Response::builder().status(resp.status());
                    for (k, v) in resp.headers() {
                        if k != "content-length" && k != "transfer-encoding" {
                            out = out.header(k, v);
                        }
                    }
                    out.body(Body::from(resp.bytes().await.unwrap_or_default())).unwrap_or_default()
                }
                Err(_) => Response::builder().status(502).body(Body::empty()).unwrap_or_default(),
            }
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(handler)).await });
    Ok(base)
}

/// `n` events a calendar app made: singles an hour apart over the coming weeks, and every 25th
/// a daily series of five.
async fn seed(http: &reqwest::Client, calendar: &str, n: usize) -> anyhow::Result<()> {
    let first = Utc::now().duration_trunc(Days::days(1))? + Days::days(1) + Days::hours(8);
    for i in 0..n {
        let start = first + Days::hours(i as i64);
        let f = |t: chrono::DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
        let rule = if i % 25 == 0 { "RRULE:FREQ=DAILY;COUNT=5\r\n" } else { "" };
        let ics = format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync bench//EN\r\nBEGIN:VEVENT\r\nUID:bench-{i}\r\n\
             DTSTAMP:20261201T000000Z\r\nDTSTART:{}\r\nDTEND:{}\r\n{rule}SUMMARY:Appointment {i}\r\n\
             DESCRIPTION:Seeded by calsync bench caldav\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            f(start),
            f(start + Days::minutes(45))
        );
        let resp = http
            .put(format!("{calendar}bench-{i}.ics"))
            .basic_auth(USER, Some(PASSWORD))
            .header("Content-Type", "text/calendar; charset=utf-8")
            .body(ics)
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("seeding event {i}: {}", resp.status());
        }
    }
    Ok(())
}

struct Figures {
    initial: Duration,
    initial_requests: u64,
    quiet: Duration,
    quiet_requests: u64,
    items: String,
}

async fn calsync_side(proxy: &str, dir: &Path, count: &AtomicU64) -> anyhow::Result<Figures> {
    let db = Db::connect(&format!("sqlite://{}/bench.db", dir.display())).await?;
    db.migrate().await?;
    let public = "http://127.0.0.1:1".parse()?;
    let providers = Arc::new(resolve(&ProviderSettings::default(), &SandboxMode::Off, &public, true)?);
    let keyring = Keyring::parse(&Keyring::generate_spec("bench"))?;
    let tokens = Arc::new(TokenSource::new(db.clone(), keyring.clone(), providers.clone(), db.clock().clone()));
    let engine = Arc::new(SyncEngine::new(
        db.clone(),
        tokens,
        providers.clone(),
        SyncConfig { request_budgets: false, ..SyncConfig::default() },
    ));

    use calsync_domain::account::{Email, FirmSlug};
    let firm = db.create_firm("Bench", &FirmSlug::parse("bench")?).await?;
    let user = db
        .create_user(NewUser {
            firm_id: firm.id,
            email: Email::parse("staff@bench.test")?,
            name: "Bench".into(),
            role: calsync_domain::tenant::Role::Staff,
            password_hash: "-".into(),
        })
        .await?;
    let account = discover(&providers.http, proxy, &DavAuth { username: USER, password: PASSWORD }).await?;
    let token = DavCredentials::of(&account, USER, PASSWORD).token();
    let calendars = providers.caldav.list_calendars(&token).await?;
    let grant = NewGrant {
        firm_id: firm.id,
        user_id: user.id,
        provider: Provider::CalDav,
        account_id: account.principal.to_string(),
        account_email: format!("{USER}@127.0.0.1"),
        access_token: token.into(),
        refresh_token: None,
        expires_at: None,
        scopes: vec![],
    };
    let conn = db.save_grant(&keyring, &grant, &crate::services::connections::calendar_infos(calendars)).await?;
    let change = SettingsChange { sync_window_days: Some(SyncWindowDays::parse(365)?), ..Default::default() };
    db.update_connection_settings(firm.id, user.id, conn.id, &change).await?.map_err(anyhow::Error::from)?;

    let run = async || -> anyhow::Result<(Duration, u64, calsync_store::SyncAttempt)> {
        let before = count.load(Ordering::Relaxed);
        let t = Instant::now();
        let a = engine.sync(firm.id, conn.id, SyncTrigger::Manual, None).await?;
        let took = t.elapsed();
        if let Some(m) = &a.error_message {
            bail!("the sync reported a problem: {m}");
        }
        Ok((took, count.load(Ordering::Relaxed) - before, a))
    };
    let (initial, initial_requests, first) = run().await?;
    let (quiet, quiet_requests, second) = run().await?;
    if second.counts.pulled_created + second.counts.pulled_updated + second.counts.pushed_created > 0 {
        bail!("the second sync was not a no-op: {:?}", second.counts);
    }
    Ok(Figures {
        initial,
        initial_requests,
        quiet,
        quiet_requests,
        items: format!("{} appointments imported", first.counts.pulled_created),
    })
}

fn vdirsyncer_binary(python: &str) -> Option<PathBuf> {
    let beside = Path::new(python).parent().map(|d| d.join("vdirsyncer")).filter(|p| p.exists());
    beside.or_else(|| {
        std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("vdirsyncer")).find(|p| p.exists()))
    })
}

fn vdirsyncer_side(
    bin: &Path,
    proxy: &str,
    calendar_path: &str,
    dir: &Path,
    count: &AtomicU64,
) -> anyhow::Result<Figures> {
    let local = dir.join("local");
    let status = dir.join("status");
    std::fs::create_dir_all(&local)?;
    std::fs::create_dir_all(&status)?;
    let config = dir.join("config");
    std::fs::write(
        &config,
        format!(
            "[general]\nstatus_path = \"{}/\"\n\n[pair bench]\na = \"bench_local\"\nb = \"bench_remote\"\ncollections = null\n\n\
             [storage bench_local]\ntype = \"filesystem\"\npath = \"{}/\"\nfileext = \".ics\"\n\n\
             [storage bench_remote]\ntype = \"caldav\"\nurl = \"{proxy}{calendar_path}\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n",
            status.display(),
            local.display()
        ),
    )?;
    let vdir = |args: &[&str]| -> anyhow::Result<()> {
        let out = Command::new(bin).arg("-c").arg(&config).args(args).stdin(Stdio::null()).output()?;
        if !out.status.success() {
            bail!("vdirsyncer {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    vdir(&["discover", "bench"])?;
    let timed = |args: &[&str]| -> anyhow::Result<(Duration, u64)> {
        let before = count.load(Ordering::Relaxed);
        let t = Instant::now();
        vdir(args)?;
        Ok((t.elapsed(), count.load(Ordering::Relaxed) - before))
    };
    let (initial, initial_requests) = timed(&["sync"])?;
    let (quiet, quiet_requests) = timed(&["sync"])?;
    let files = std::fs::read_dir(&local)?.count();
    Ok(Figures { initial, initial_requests, quiet, quiet_requests, items: format!("{files} files written") })
}

pub async fn run(opts: CalDavBenchOptions) -> anyhow::Result<()> {
    let python = opts.python.or_else(|| std::env::var("CALSYNC_PYTHON").ok()).unwrap_or_else(|| "python3".into());
    let dir = ScratchDir::new()?;
    let radicale = start_radicale(&python, dir.path())?;
    let http = calsync_providers::http_client(Duration::from_secs(60));
    let calendar_path = format!("/{USER}/calendar/");
    let mk = http
        .request(reqwest::Method::from_bytes(b"MKCALENDAR")?, format!("{}{calendar_path}", radicale.base))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await?;
    if !mk.status().is_success() {
        bail!("MKCALENDAR: {}", mk.status());
    }
    println!(
        "calsync bench caldav · Radicale {} · {} events (every 25th a daily series of five)",
        radicale.base, opts.events
    );
    let t = Instant::now();
    seed(&http, &format!("{}{calendar_path}", radicale.base), opts.events).await?;
    println!("seeded in {:.1} s", t.elapsed().as_secs_f64());

    let count = Arc::new(AtomicU64::new(0));
    let proxy = counting_proxy(radicale.base.clone(), count.clone()).await?;
    let calsync_dir = dir.path().join("calsync");
    std::fs::create_dir_all(&calsync_dir)?;
    let ours = calsync_side(&proxy, &calsync_dir, &count).await?;
    let theirs = match vdirsyncer_binary(&python) {
        Some(bin) => {
            let vdir = dir.path().join("vdirsyncer");
            std::fs::create_dir_all(&vdir)?;
            let (proxy, calendar_path, count) = (proxy.clone(), calendar_path.clone(), count.clone());
            Some(
                tokio::task::spawn_blocking(move || vdirsyncer_side(&bin, &proxy, &calendar_path, &vdir, &count))
                    .await??,
            )
        }
        None => {
            println!(
                "vdirsyncer not found beside {python} or on PATH (pip install vdirsyncer): its figures are left out"
            );
            None
        }
    };
    println!();
    println!("| | initial sync | requests | no-change sync | requests | result |");
    println!("|---|---|---|---|---|---|");
    let row = |who: &str, f: &Figures| {
        println!(
            "| {who} | {:.2} s | {} | {:.3} s | {} | {} |",
            f.initial.as_secs_f64(),
            f.initial_requests,
            f.quiet.as_secs_f64(),
            f.quiet_requests,
            f.items
        );
    };
    row("calsync (engine, SQLite)", &ours);
    if let Some(v) = &theirs {
        row("vdirsyncer (into a folder)", v);
    }
    println!();
    println!("calsync's time includes reading and storing every appointment; vdirsyncer's includes starting Python.");
    Ok(())
}
