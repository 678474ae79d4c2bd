//! What each subcommand does. Errors become one line on stderr and a non-zero exit status.

use crate::cli::{AdminCommand, Command};
use crate::config::Config;
use crate::services::{ServiceError, accounts};
use crate::startup::{Application, Role, shutdown_signal};
use anyhow::{Context, anyhow};
use calsync_store::Db;

pub async fn run(config: Config, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { no_worker } => {
            let mut config = config;
            if no_worker {
                config.worker.enabled = false;
            }
            serve(config, Role::Service).await
        }
        Command::Worker => serve(config, Role::Worker).await,
        Command::Migrate => {
            open(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Admin(cmd) => admin(&config, cmd).await,
        Command::Sync { connection } => sync_once(&config, &connection).await,
        Command::Sandbox { bind, seed, state, no_quota } => sandbox(&bind, seed, state, no_quota).await,
        Command::Bench(_) => {
            anyhow::bail!("calsync bench runs on its own; it is handled before the configuration is loaded")
        }
    }
}

/// The provider sandbox on its own, for scripts and for several calsync processes to share.
pub async fn sandbox(
    bind: &str,
    seed: Option<u64>,
    state: Option<std::path::PathBuf>,
    no_quota: bool,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("cannot listen on {bind}"))?;
    let addr = listener.local_addr()?;
    let config = calsync_sandbox::SandboxConfig {
        seed,
        public_base_url: format!("http://{addr}"),
        state_file: state,
        ..Default::default()
    };
    let config = if no_quota {
        calsync_sandbox::SandboxConfig {
            google_user_quota_per_minute: u32::MAX,
            google_project_quota_per_minute: u32::MAX,
            ..config
        }
    } else {
        config
    };
    let sandbox = calsync_sandbox::Sandbox::open(config)?;
    tracing::info!("sandbox listening on http://{addr}");
    println!("calsync provider sandbox on http://{addr} (dev client id {:?})", calsync_sandbox::DEV_CLIENT_ID);
    axum::serve(listener, sandbox.router())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("sandbox server error")?;
    sandbox.save()?;
    Ok(())
}

async fn open(config: &Config) -> anyhow::Result<Db> {
    let db = Db::connect(&config.database_url).await.context("cannot open the database")?;
    db.migrate().await.context("cannot apply database migrations")?;
    Ok(db)
}

async fn serve(config: Config, role: Role) -> anyhow::Result<()> {
    let db = open(&config).await?;
    let login_url = config.public("/login");
    if role == Role::Service
        && let Some(first) = accounts::bootstrap_if_empty(&db).await.map_err(plain)?
    {
        println!(
            "\ncalsync first run: created the demo firm and its admin.\n\n  sign in:    {login_url}\n  e-mail:     {}\n  password:   {}\n  API token:  {}\n\nThese are shown once. Create more with `calsync admin create-user` / `create-token`.\n",
            first.email, first.password, first.api_token
        );
    }
    tracing::info!(config = ?config, "starting");
    let app = Application::build_as(config, db, role).await?;
    match role {
        Role::Service => tracing::info!("listening on http://{}", app.addr()),
        Role::Worker => tracing::info!("sync worker; operator endpoints on http://{}", app.addr()),
    }
    app.run_until_stopped(shutdown_signal()).await.context("server error")?;
    tracing::info!("stopped");
    Ok(())
}

/// `calsync sync --connection ID`: the same sync "Sync now" runs, from the command line. With the
/// embedded provider sandbox, the sandbox is the one the running `calsync serve` mounts at the
/// public URL.
async fn sync_once(config: &Config, connection: &str) -> anyhow::Result<()> {
    let id: calsync_domain::ids::ConnectionId =
        connection.parse().map_err(|_| anyhow!("--connection {connection:?} is not a connection id"))?;
    let db = open(config).await?;
    let firm = match db.connection_firm(id).await {
        Ok(f) => f,
        Err(calsync_store::StoreError::NotFound) => anyhow::bail!("no connection {id}"),
        Err(e) => return Err(e.into()),
    };
    let providers = std::sync::Arc::new(crate::providers::resolve(
        &config.providers,
        &config.sandbox,
        &config.public_url,
        config.environment == crate::config::Environment::Development,
    )?);
    let connections = crate::services::connections::ConnectionService::new(
        db.clone(),
        config.keyring.clone(),
        providers.clone(),
        db.clock().clone(),
    );
    let engine = std::sync::Arc::new(calsync_engine::SyncEngine::new(
        db.clone(),
        connections.tokens(),
        providers,
        config.sync.clone(),
    ));
    let attempt = engine
        .sync(firm, id, calsync_domain::sync::SyncTrigger::Manual, None)
        .await
        .map_err(|e| anyhow!("{}", crate::services::ServiceError::from(e)))?;
    let failed = attempt.status == calsync_domain::sync::AttemptStatus::Failed;
    println!("{}", serde_json::to_string_pretty(&crate::api::sync::AttemptView::from(attempt))?);
    db.close().await;
    if failed {
        anyhow::bail!("the sync failed (see \"error\" above)");
    }
    Ok(())
}

async fn admin(config: &Config, cmd: AdminCommand) -> anyhow::Result<()> {
    let db = open(config).await?;
    match cmd {
        AdminCommand::CreateFirm { name, slug } => {
            let firm = accounts::create_firm(&db, &name, &slug).await.map_err(plain)?;
            println!("created firm {:?} (slug {}, id {})", firm.name, firm.slug, firm.id);
        }
        AdminCommand::CreateUser { firm, email, name, role, password } => {
            let user =
                accounts::create_user(&db, &firm, &email, &name, &role, password.expose()).await.map_err(plain)?;
            println!("created {} {} in firm {} (id {})", user.role, user.email, firm, user.id);
        }
        AdminCommand::CreateToken { email, name, expires_in_days } => {
            let token = accounts::create_api_token(&db, &email, &name, expires_in_days).await.map_err(plain)?;
            println!("{token}");
        }
        AdminCommand::ListTokens { email } => {
            let tokens = accounts::list_api_tokens(&db, &email).await.map_err(plain)?;
            let when = |t: Option<chrono::DateTime<chrono::Utc>>, none: &str| {
                t.map_or_else(|| none.to_owned(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            };
            println!("{:<36}  {:<20}  {:<20}  {:<20}  {:<20}  state", "id", "name", "created", "last used", "expires");
            let now = chrono::Utc::now();
            for t in tokens {
                let state = match (t.revoked_at, t.expires_at) {
                    (Some(_), _) => "revoked",
                    (None, Some(e)) if e <= now => "expired",
                    _ => "active",
                };
                println!(
                    "{:<36}  {:<20}  {:<20}  {:<20}  {:<20}  {state}",
                    t.id,
                    t.name,
                    when(Some(t.created_at), "-"),
                    when(t.last_used_at, "never"),
                    when(t.expires_at, "never"),
                );
            }
        }
        AdminCommand::RevokeToken { id } => {
            let t = accounts::revoke_api_token(&db, &id).await.map_err(plain)?;
            println!("revoked API token {} ({})", t.id, t.name);
        }
        AdminCommand::RotateKey => {
            let n = db.rotate_keys(&config.keyring).await.context("key rotation failed")?;
            println!("re-encrypted {n} stored secrets under key {}", config.keyring.primary_id());
        }
        AdminCommand::ImportIcs { email, time_zone, file } => {
            let zone = match time_zone {
                Some(z) => {
                    Some(z.parse::<chrono_tz::Tz>().map_err(|_| anyhow!("--time-zone {z:?} is not an IANA zone"))?)
                }
                None => None,
            };
            let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let report = crate::services::feeds::import(&db, &email, &text, zone).await.map_err(plain)?;
            for (what, why) in &report.refused {
                eprintln!("not imported: {what}: {why}");
            }
            println!(
                "imported {}: {} new, {} updated, {} unchanged, {} not imported",
                file.display(),
                report.created,
                report.updated,
                report.unchanged,
                report.refused.len()
            );
            if !report.refused.is_empty() {
                db.close().await;
                anyhow::bail!("{} events were not imported (listed above)", report.refused.len());
            }
        }
    }
    db.close().await;
    Ok(())
}

/// A service error as the one-line reason a CLI user needs.
fn plain(e: ServiceError) -> anyhow::Error {
    match e {
        ServiceError::Validation(v) => anyhow!("{}: {}", v.field, v.message),
        ServiceError::Internal(e) => e,
        other => anyhow!("{other}"),
    }
}
