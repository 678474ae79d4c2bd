//! The `calsync` command line. Every setting is a global flag with an environment variable, so
//! `calsync --bind … serve` and `CALSYNC_BIND=… calsync` mean the same thing.

use calsync_domain::Secret;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "calsync", version, about = "Two-way sync between a firm's appointments and its staff's calendars")]
pub struct Cli {
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Settings given on the command line or in the environment; they override `calsync.toml`.
#[derive(Debug, Default, Args)]
pub struct SettingsArgs {
    /// Configuration file (TOML). Optional unless given explicitly.
    #[arg(long, global = true, env = "CALSYNC_CONFIG")]
    pub config: Option<PathBuf>,
    /// `sqlite://path/to/file.db` or `postgres://user@host/db` [default: sqlite://data/calsync.db]
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, global = true, env = "CALSYNC_BIND")]
    pub bind: Option<String>,
    /// Public base URL of this service, used in links and OAuth redirects [default: http://<bind>]
    #[arg(long, global = true, env = "CALSYNC_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Token encryption keys: `id:base64key[,id:base64key…]`, newest first.
    #[arg(long, global = true, env = "CALSYNC_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<Secret>,
    /// `development` or `production`; production refuses unsafe defaults.
    #[arg(long, global = true, env = "CALSYNC_ENV")]
    pub environment: Option<String>,
    /// Log line format.
    #[arg(long, global = true, env = "CALSYNC_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Log filter in `RUST_LOG` syntax [default: info]
    #[arg(long, global = true, env = "CALSYNC_LOG")]
    pub log: Option<String>,
    /// Web session lifetime in hours [default: 336]
    #[arg(long, global = true, env = "CALSYNC_SESSION_TTL_HOURS")]
    pub session_ttl_hours: Option<u32>,
    /// Largest accepted request body in bytes [default: 65536]
    #[arg(long, global = true, env = "CALSYNC_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// API requests allowed per user per minute [default: 600]
    #[arg(long, global = true, env = "CALSYNC_API_RATE_PER_MINUTE")]
    pub api_rate_per_minute: Option<u32>,
    /// API requests a user may make in a burst [default: 100]
    #[arg(long, global = true, env = "CALSYNC_API_RATE_BURST")]
    pub api_rate_burst: Option<u32>,
    /// Mass-delete guard: a sync that would delete more than this many linked events of one
    /// calendar at once (and more than CALSYNC_MASS_DELETE_PERCENT of them) waits for
    /// confirmation [default: 50]
    #[arg(long, global = true, env = "CALSYNC_MASS_DELETE_MIN")]
    pub mass_delete_min: Option<usize>,
    /// Mass-delete guard: the share of a calendar's linked events, in percent [default: 25]
    #[arg(long, global = true, env = "CALSYNC_MASS_DELETE_PERCENT")]
    pub mass_delete_percent: Option<u8>,
    /// Background sync: seconds between two syncs of a connection, give or take 20% [default: 300]
    #[arg(long, global = true, env = "CALSYNC_SYNC_INTERVAL_SECONDS")]
    pub sync_interval_seconds: Option<u64>,
    /// Background sync: the longest wait after failed syncs (the backoff doubles from one minute
    /// up to this), in seconds [default: 3600]
    #[arg(long, global = true, env = "CALSYNC_SYNC_BACKOFF_CAP_SECONDS")]
    pub sync_backoff_cap_seconds: Option<u64>,
    /// Background sync: how long a worker's claim on a connection lasts without renewal; a
    /// worker that dies loses its connections to the others after this, in seconds [default: 600]
    #[arg(long, global = true, env = "CALSYNC_SYNC_LEASE_SECONDS")]
    pub sync_lease_seconds: Option<u64>,
    /// Push channels (webhooks, on when CALSYNC_PUBLIC_URL is set): the lifetime asked of the
    /// provider; a channel is renewed when less than a third is left, in seconds [default: 252000]
    #[arg(long, global = true, env = "CALSYNC_WEBHOOK_TTL_SECONDS")]
    pub webhook_ttl_seconds: Option<u64>,
    /// Push channels: seconds between two syncs of a connection while its channels work (polling
    /// is the safety net), give or take 20% [default: 1800]
    #[arg(long, global = true, env = "CALSYNC_WEBHOOK_SYNC_INTERVAL_SECONDS")]
    pub webhook_sync_interval_seconds: Option<u64>,
    /// Push channels: `off` turns them off even with CALSYNC_PUBLIC_URL set [default: on]
    #[arg(long, global = true, env = "CALSYNC_WEBHOOKS")]
    pub webhooks: Option<String>,
    /// Background sync: syncs one worker process runs at once [default: 128]
    #[arg(long, global = true, env = "CALSYNC_WORKER_CONCURRENCY")]
    pub worker_concurrency: Option<usize>,
    /// Provider sandbox: `embedded` (mounted at /sandbox), `off`, or the URL of a running one
    /// [default: embedded outside production, off in production]
    #[arg(long, global = true, env = "CALSYNC_SANDBOX")]
    pub sandbox: Option<String>,
    /// Where the embedded sandbox keeps its accounts, tokens and events across restarts, or
    /// `memory` to keep nothing [default: sandbox.json beside the SQLite database, else data/]
    #[arg(long, global = true, env = "CALSYNC_SANDBOX_STATE")]
    pub sandbox_state: Option<String>,
    /// Timeout of each request to Google or Microsoft, in seconds [default: 30]
    #[arg(long, global = true, env = "CALSYNC_PROVIDER_TIMEOUT_SECS")]
    pub provider_timeout_secs: Option<u64>,
    /// Google OAuth client id (unset: the provider sandbox's dev client)
    #[arg(long, global = true, env = "GOOGLE_CALENDAR_CLIENT_ID")]
    pub google_client_id: Option<String>,
    /// Google OAuth client secret
    #[arg(long, global = true, env = "GOOGLE_CALENDAR_CLIENT_SECRET", hide_env_values = true)]
    pub google_client_secret: Option<Secret>,
    /// Where Google sends the browser back [default: <public URL>/calendar/oauth/callback]
    #[arg(long, global = true, env = "GOOGLE_CALENDAR_REDIRECT_URI")]
    pub google_redirect_uri: Option<String>,
    /// Google authorization endpoint override
    #[arg(long, global = true, env = "GOOGLE_OAUTH_AUTHORIZE_URL")]
    pub google_authorize_url: Option<String>,
    /// Google token endpoint override
    #[arg(long, global = true, env = "GOOGLE_OAUTH_TOKEN_URL")]
    pub google_token_url: Option<String>,
    /// Google revocation endpoint override
    #[arg(long, global = true, env = "GOOGLE_OAUTH_REVOKE_URL")]
    pub google_revoke_url: Option<String>,
    /// Google user-info endpoint override
    #[arg(long, global = true, env = "GOOGLE_USERINFO_URL")]
    pub google_userinfo_url: Option<String>,
    /// Google Calendar API base override (…/calendar/v3)
    #[arg(long, global = true, env = "GOOGLE_CALENDAR_API_URL")]
    pub google_calendar_api_url: Option<String>,
    /// Microsoft application (client) id (unset: the provider sandbox's dev client)
    #[arg(long, global = true, env = "MICROSOFT_CALENDAR_CLIENT_ID")]
    pub microsoft_client_id: Option<String>,
    /// Microsoft client secret
    #[arg(long, global = true, env = "MICROSOFT_CALENDAR_CLIENT_SECRET", hide_env_values = true)]
    pub microsoft_client_secret: Option<Secret>,
    /// Where Microsoft sends the browser back [default: <public URL>/calendar/oauth/callback]
    #[arg(long, global = true, env = "MICROSOFT_CALENDAR_REDIRECT_URI")]
    pub microsoft_redirect_uri: Option<String>,
    /// Microsoft tenant: common, organizations, consumers or a tenant id [default: common]
    #[arg(long, global = true, env = "MICROSOFT_TENANT")]
    pub microsoft_tenant: Option<String>,
    /// Microsoft identity platform base override
    #[arg(long, global = true, env = "MICROSOFT_LOGIN_URL")]
    pub microsoft_login_url: Option<String>,
    /// Microsoft Graph base override (…/v1.0)
    #[arg(long, global = true, env = "MICROSOFT_GRAPH_URL")]
    pub microsoft_graph_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web service (the default), with a background sync worker.
    Serve {
        /// Run no background sync worker in this process (run `calsync worker` elsewhere).
        #[arg(long)]
        no_worker: bool,
    },
    /// Run only a background sync worker (with /healthz, /readyz and /metrics on --bind).
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage firms, users, API tokens and encryption keys.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Run the provider sandbox (local Google and Microsoft) on its own.
    Sandbox {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9090")]
        bind: String,
        /// Seed for deterministic ids and tokens.
        #[arg(long)]
        seed: Option<u64>,
        /// Keep the sandbox's state in this file across restarts (in memory only without it).
        #[arg(long)]
        state: Option<std::path::PathBuf>,
        /// Lift Google's per-user and per-project quotas (benchmarks with many accounts).
        #[arg(long)]
        no_quota: bool,
    },
    /// Sync one connection now, in this process, and print the attempt as JSON (exit status 1 when
    /// it failed). For operators, scripts and benchmarks; the connection's firm is looked up.
    Sync {
        /// The connection's id.
        #[arg(long)]
        connection: String,
    },
    /// Measure the service on a fresh database against the in-process sandbox (use a release build).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The background worker of a real service against a sandbox process with latency: a sweep
    /// of many connections without changes, and change propagation with webhooks and by polling.
    Scheduler {
        /// `google` or `microsoft`.
        #[arg(long, default_value = "google")]
        provider: String,
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Added by the sandbox to every request, in milliseconds.
        #[arg(long, default_value_t = 20)]
        latency_ms: u64,
        /// Syncs the worker runs at once (the service's default is 128).
        #[arg(long, default_value_t = 128)]
        concurrency: usize,
        /// Changes timed per propagation scenario.
        #[arg(long, default_value_t = 50)]
        samples: usize,
        /// The polling interval of the polling-only scenario, in seconds.
        #[arg(long, default_value_t = 30)]
        poll_seconds: u64,
        /// Run on PostgreSQL: the server's URL (scratch databases are made there, e.g.
        /// postgres://postgres@127.0.0.1:5432/postgres); a fresh SQLite file without it.
        #[arg(long)]
        postgres: Option<String>,
    },
    /// CalDAV against a real Radicale (started here): the initial sync of many events and a
    /// no-change sync, next to vdirsyncer syncing the same calendar into a folder.
    Caldav {
        /// Events in the calendar.
        #[arg(long, default_value_t = 1000)]
        events: usize,
        /// The Python with Radicale and vdirsyncer installed (default: $CALSYNC_PYTHON, else python3).
        #[arg(long)]
        python: Option<String>,
    },
    /// Initial import, a no-change sync and the push of new appointments, through the sync engine.
    Sync {
        /// `google` or `microsoft`.
        #[arg(long, default_value = "google")]
        provider: String,
        /// Sizes of the initial imports, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        events: Vec<usize>,
        /// How many new appointments to push (0 skips it).
        #[arg(long, default_value_t = 1000)]
        push: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a firm (tenant).
    CreateFirm {
        #[arg(long)]
        name: String,
        #[arg(long)]
        slug: String,
    },
    /// Create a user in a firm.
    CreateUser {
        /// The firm's slug.
        #[arg(long)]
        firm: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// `staff` or `admin`.
        #[arg(long)]
        role: String,
        #[arg(long)]
        password: Secret,
    },
    /// Create an API token for a user; prints the token alone on stdout.
    CreateToken {
        #[arg(long)]
        email: String,
        /// A label to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
        /// The token stops working after this many days (1–3650) [default: never]
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List a user's API tokens: id, name, created, last used, expiry, revocation.
    ListTokens {
        #[arg(long)]
        email: String,
    },
    /// Revoke an API token by the id `list-tokens` shows.
    RevokeToken {
        /// The token id.
        id: String,
    },
    /// Re-encrypt every stored token under the newest key of CALSYNC_ENCRYPTION_KEY.
    RotateKey,
    /// Import an iCalendar (.ics) file as a user's appointments. Idempotent by UID: importing the
    /// same file again updates what it made instead of adding copies.
    ImportIcs {
        /// Whose appointments they become.
        #[arg(long)]
        email: String,
        /// The zone to read floating times in (times without any zone) [default: the file's
        /// X-WR-TIMEZONE; without either, such events are refused rather than read as UTC].
        #[arg(long)]
        time_zone: Option<String>,
        /// The .ics file.
        file: std::path::PathBuf,
    },
}
