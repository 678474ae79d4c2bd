//! The one typed configuration: defaults, then `calsync.toml`, then environment and flags.
//! Everything is validated here, at load, so a bad value fails start-up instead of a request.

use crate::cli::{LogFormat, SettingsArgs};
use crate::crypto::{Keyring, load_or_generate_keyring};
use crate::providers::{ProviderSettings, SandboxMode};
use anyhow::{Context, bail};
use calsync_domain::Secret;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use url::Url;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/calsync.db";
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
const DEFAULT_CONFIG_FILE: &str = "calsync.toml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Production,
}

#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    pub bind: String,
    /// Base URL the browser uses, without a trailing slash.
    pub public_url: Url,
    pub environment: Environment,
    pub keyring: Keyring,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub session_ttl_hours: u32,
    pub max_body_bytes: usize,
    /// API requests per user per minute, and how many may come at once.
    pub api_rate_per_minute: u32,
    pub api_rate_burst: u32,
    pub sandbox: SandboxMode,
    /// The embedded sandbox's state file; `None` keeps its state in memory.
    pub sandbox_state: Option<PathBuf>,
    pub providers: ProviderSettings,
    /// The sync engine's tunables (the mass-delete guard and the schedule are configurable).
    pub sync: calsync_engine::SyncConfig,
    /// The background sync worker of this process.
    pub worker: crate::worker::WorkerConfig,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &calsync_store::redact_url(&self.database_url))
            .field("bind", &self.bind)
            .field("public_url", &self.public_url.as_str())
            .field("environment", &self.environment)
            .field("keyring", &self.keyring)
            .field("log_format", &self.log_format)
            .field("log_filter", &self.log_filter)
            .field("session_ttl_hours", &self.session_ttl_hours)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("api_rate_per_minute", &self.api_rate_per_minute)
            .field("api_rate_burst", &self.api_rate_burst)
            .field("sandbox", &self.sandbox)
            .field("sandbox_state", &self.sandbox_state)
            .field("providers", &self.providers)
            .field("sync", &self.sync)
            .field("worker", &self.worker)
            .finish()
    }
}

/// `calsync.toml`: the same settings, snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    database_url: Option<Secret>,
    bind: Option<String>,
    public_url: Option<String>,
    encryption_key: Option<Secret>,
    environment: Option<Environment>,
    log_format: Option<LogFormat>,
    log: Option<String>,
    session_ttl_hours: Option<u32>,
    max_body_bytes: Option<usize>,
    api_rate_per_minute: Option<u32>,
    api_rate_burst: Option<u32>,
    mass_delete_min: Option<usize>,
    mass_delete_percent: Option<u8>,
    sync_interval_seconds: Option<u64>,
    sync_backoff_cap_seconds: Option<u64>,
    webhook_ttl_seconds: Option<u64>,
    webhook_sync_interval_seconds: Option<u64>,
    webhooks: Option<String>,
    sync_lease_seconds: Option<u64>,
    worker_concurrency: Option<usize>,
    sandbox: Option<String>,
    sandbox_state: Option<String>,
    provider_timeout_secs: Option<u64>,
    google_client_id: Option<String>,
    google_client_secret: Option<Secret>,
    google_redirect_uri: Option<String>,
    google_authorize_url: Option<String>,
    google_token_url: Option<String>,
    google_revoke_url: Option<String>,
    google_userinfo_url: Option<String>,
    google_calendar_api_url: Option<String>,
    microsoft_client_id: Option<String>,
    microsoft_client_secret: Option<Secret>,
    microsoft_redirect_uri: Option<String>,
    microsoft_tenant: Option<String>,
    microsoft_login_url: Option<String>,
    microsoft_graph_url: Option<String>,
}

impl Config {
    /// Loads the configuration. `key_file_allowed` lets development set-ups generate a key file
    /// when none is configured.
    pub fn load(args: &SettingsArgs) -> anyhow::Result<Self> {
        let file = read_file(args.config.as_deref())?;
        let environment = match args.environment.as_deref() {
            Some("development") => Environment::Development,
            Some("production") => Environment::Production,
            Some(other) => bail!("CALSYNC_ENV must be \"development\" or \"production\", not {other:?}"),
            None => file.environment.unwrap_or(Environment::Development),
        };
        let database_url = args
            .database_url
            .clone()
            .or(file.database_url)
            .map_or_else(|| DEFAULT_DATABASE_URL.into(), |u| u.expose().to_owned());
        let scheme = database_url.split_once(':').map(|(s, _)| s).unwrap_or("");
        if !matches!(scheme, "sqlite" | "postgres" | "postgresql") {
            bail!(
                "unsupported DATABASE_URL {:?}: use sqlite://path/to/file.db or postgres://user@host/db",
                calsync_store::redact_url(&database_url)
            );
        }
        let bind = args.bind.clone().or(file.bind).unwrap_or_else(|| DEFAULT_BIND.into());
        bind.parse::<std::net::SocketAddr>()
            .with_context(|| format!("CALSYNC_BIND {bind:?} is not an address such as 127.0.0.1:8080"))?;
        let explicit_public_url = args.public_url.is_some() || file.public_url.is_some();
        let public_url = match args.public_url.clone().or(file.public_url) {
            Some(u) => u,
            None => format!("http://{bind}"),
        };
        let mut public_url =
            Url::parse(&public_url).with_context(|| format!("CALSYNC_PUBLIC_URL {public_url:?} is not a URL"))?;
        if !matches!(public_url.scheme(), "http" | "https") {
            bail!("CALSYNC_PUBLIC_URL must be http:// or https://");
        }
        if environment == Environment::Production && public_url.scheme() != "https" {
            bail!("CALSYNC_PUBLIC_URL must be https:// in production (session cookies are Secure)");
        }
        let trimmed = public_url.path().trim_end_matches('/').to_owned();
        public_url.set_path(&trimmed);

        let keyring = match args.encryption_key.clone().or(file.encryption_key) {
            Some(spec) => Keyring::parse(spec.expose()).context("CALSYNC_ENCRYPTION_KEY")?,
            None if environment == Environment::Production => {
                bail!("CALSYNC_ENCRYPTION_KEY is required in production (id:base64key, 32-byte keys)")
            }
            None => load_or_generate_keyring(&key_file_path(&database_url))?,
        };
        let log_format = args.log_format.or(file.log_format).unwrap_or(LogFormat::Text);
        let log_filter = args.log.clone().or(file.log).unwrap_or_else(|| "info".into());
        let session_ttl_hours = args.session_ttl_hours.or(file.session_ttl_hours).unwrap_or(14 * 24);
        if !(1..=24 * 90).contains(&session_ttl_hours) {
            bail!("CALSYNC_SESSION_TTL_HOURS must be between 1 and 2160");
        }
        let max_body_bytes = args.max_body_bytes.or(file.max_body_bytes).unwrap_or(64 * 1024);
        if !(1024..=16 * 1024 * 1024).contains(&max_body_bytes) {
            bail!("CALSYNC_MAX_BODY_BYTES must be between 1024 and 16777216");
        }
        let api_rate_per_minute = args.api_rate_per_minute.or(file.api_rate_per_minute).unwrap_or(600);
        let api_rate_burst = args.api_rate_burst.or(file.api_rate_burst).unwrap_or(100);
        if api_rate_per_minute == 0 || api_rate_burst == 0 {
            bail!("CALSYNC_API_RATE_PER_MINUTE and CALSYNC_API_RATE_BURST must be at least 1");
        }
        let mut sync = calsync_engine::SyncConfig::default();
        if let Some(n) = args.mass_delete_min.or(file.mass_delete_min) {
            sync.mass_delete_min = n;
        }
        if let Some(p) = args.mass_delete_percent.or(file.mass_delete_percent) {
            if !(1..=100).contains(&p) {
                bail!("CALSYNC_MASS_DELETE_PERCENT must be between 1 and 100");
            }
            sync.mass_delete_share = f64::from(p) / 100.0;
        }
        let seconds = |v: Option<u64>,
                       name: &str,
                       range: std::ops::RangeInclusive<u64>|
         -> anyhow::Result<Option<chrono::Duration>> {
            match v {
                Some(n) if !range.contains(&n) => {
                    bail!("{name} must be between {} and {} seconds", range.start(), range.end())
                }
                Some(n) => Ok(Some(chrono::Duration::seconds(n as i64))),
                None => Ok(None),
            }
        };
        let interval = args.sync_interval_seconds.or(file.sync_interval_seconds);
        if let Some(d) = seconds(interval, "CALSYNC_SYNC_INTERVAL_SECONDS", 1..=86_400)? {
            sync.interval = d;
        }
        let cap = args.sync_backoff_cap_seconds.or(file.sync_backoff_cap_seconds);
        if let Some(d) = seconds(cap, "CALSYNC_SYNC_BACKOFF_CAP_SECONDS", 1..=86_400)? {
            sync.failure_backoff_cap = d;
            sync.failure_backoff = sync.failure_backoff.min(d);
        }
        let lease = args.sync_lease_seconds.or(file.sync_lease_seconds);
        if let Some(d) = seconds(lease, "CALSYNC_SYNC_LEASE_SECONDS", 3..=3_600)? {
            sync.lease = d;
        }
        // Providers deliver only to https addresses: unasked, webhooks go with an https public
        // URL; `on` forces them (the sandbox delivers to http on loopback).
        let webhooks_on = match args.webhooks.clone().or(file.webhooks).as_deref() {
            None => explicit_public_url && public_url.scheme() == "https",
            Some("on") => true,
            Some("off") => false,
            Some(other) => bail!("CALSYNC_WEBHOOKS must be on or off, not {other:?}"),
        };
        let ttl =
            seconds(args.webhook_ttl_seconds.or(file.webhook_ttl_seconds), "CALSYNC_WEBHOOK_TTL_SECONDS", 3..=604_800)?
                .unwrap_or(chrono::Duration::seconds(252_000));
        let webhook_interval = seconds(
            args.webhook_sync_interval_seconds.or(file.webhook_sync_interval_seconds),
            "CALSYNC_WEBHOOK_SYNC_INTERVAL_SECONDS",
            1..=86_400,
        )?
        .unwrap_or(chrono::Duration::seconds(1800));
        if webhooks_on {
            sync.webhooks = Some(calsync_engine::sync::WebhookConfig {
                // Set from the public URL once the listener is bound.
                base_url: String::new(),
                ttl,
                renew_before: ttl / 3,
                interval: webhook_interval.max(sync.interval),
            });
        }
        let mut worker = crate::worker::WorkerConfig::default();
        if let Some(n) = args.worker_concurrency.or(file.worker_concurrency) {
            if !(1..=1024).contains(&n) {
                bail!("CALSYNC_WORKER_CONCURRENCY must be between 1 and 1024");
            }
            worker.concurrency = n;
        }
        let sandbox_setting = args.sandbox.clone().or(file.sandbox);
        let sandbox_state = match args.sandbox_state.clone().or(file.sandbox_state) {
            Some(s) if s == "memory" => None,
            Some(s) if s.is_empty() => bail!("CALSYNC_SANDBOX_STATE must be a file path or \"memory\""),
            Some(s) => Some(PathBuf::from(s)),
            None => Some(data_dir(&database_url).join("sandbox.json")),
        };
        let providers = ProviderSettings {
            timeout_secs: args.provider_timeout_secs.or(file.provider_timeout_secs),
            google_client_id: args.google_client_id.clone().or(file.google_client_id),
            google_client_secret: args.google_client_secret.clone().or(file.google_client_secret),
            google_redirect_uri: args.google_redirect_uri.clone().or(file.google_redirect_uri),
            google_authorize_url: args.google_authorize_url.clone().or(file.google_authorize_url),
            google_token_url: args.google_token_url.clone().or(file.google_token_url),
            google_revoke_url: args.google_revoke_url.clone().or(file.google_revoke_url),
            google_userinfo_url: args.google_userinfo_url.clone().or(file.google_userinfo_url),
            google_calendar_api_url: args.google_calendar_api_url.clone().or(file.google_calendar_api_url),
            microsoft_client_id: args.microsoft_client_id.clone().or(file.microsoft_client_id),
            microsoft_client_secret: args.microsoft_client_secret.clone().or(file.microsoft_client_secret),
            microsoft_redirect_uri: args.microsoft_redirect_uri.clone().or(file.microsoft_redirect_uri),
            microsoft_tenant: args.microsoft_tenant.clone().or(file.microsoft_tenant),
            microsoft_login_url: args.microsoft_login_url.clone().or(file.microsoft_login_url),
            microsoft_graph_url: args.microsoft_graph_url.clone().or(file.microsoft_graph_url),
        };
        // Unasked, the embedded sandbox (whose control routes need no credentials) is mounted
        // only on a loopback address, outside production, and while some provider has no
        // real client to serve it.
        let loopback = bind.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_loopback());
        let some_provider_unconfigured =
            providers.google_client_id.is_none() || providers.microsoft_client_id.is_none();
        let sandbox = match sandbox_setting {
            Some(s) => SandboxMode::parse(&s)?,
            None if environment == Environment::Production => SandboxMode::Off,
            None if loopback && some_provider_unconfigured => SandboxMode::Embedded,
            None => SandboxMode::Off,
        };
        Ok(Config {
            database_url,
            bind,
            public_url,
            environment,
            keyring,
            log_format,
            log_filter,
            session_ttl_hours,
            max_body_bytes,
            api_rate_per_minute,
            api_rate_burst,
            sandbox,
            sandbox_state,
            providers,
            sync,
            worker,
        })
    }

    /// Cookies get the `Secure` attribute when the service is reached over https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// `path` (starting with `/`) under the public URL.
    pub fn public(&self, path: &str) -> String {
        format!("{}{}", self.public_url.as_str().trim_end_matches('/'), path)
    }
}

fn read_file(explicit: Option<&Path>) -> anyhow::Result<FileSettings> {
    let (path, required) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(FileSettings::default()),
        Err(e) => return Err(e).with_context(|| format!("cannot read config file {}", path.display())),
    };
    // The parser's own message quotes the offending line, which may hold a secret: report the
    // position and the reason only.
    toml::from_str(&text).map_err(|e: toml::de::Error| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        anyhow::anyhow!(
            "invalid config file {}{}: {}",
            path.display(),
            line.map(|l| format!(" (line {l})")).unwrap_or_default(),
            e.message()
        )
    })
}

/// Where a generated development key lives.
fn key_file_path(database_url: &str) -> PathBuf {
    data_dir(database_url).join("calsync.key")
}

/// Local files of a development set-up live beside the SQLite database, else in `./data`.
fn data_dir(database_url: &str) -> PathBuf {
    database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or(rest))
        .filter(|p| !p.is_empty() && !p.contains(":memory:"))
        .and_then(|p| Path::new(p).parent().map(Path::to_path_buf))
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("data"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> SettingsArgs {
        let dir = tempfile::tempdir().unwrap().keep();
        SettingsArgs {
            config: Some(dir.join("none.toml")),
            database_url: Some(format!("sqlite://{}/x.db", dir.display()).into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_and_key_file() {
        let mut a = args();
        a.config = None;
        let c = Config::load(&a).unwrap();
        assert_eq!(c.bind, DEFAULT_BIND);
        assert_eq!(c.public_url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(c.public("/login"), "http://127.0.0.1:8080/login");
        assert!(!c.secure_cookies());
        let key_file = key_file_path(a.database_url.as_ref().unwrap().expose());
        assert!(key_file.exists(), "a development key file is generated beside the database");
        // The same key is read back on the next start.
        let again = Config::load(&a).unwrap();
        assert_eq!(again.keyring.primary_id(), c.keyring.primary_id());
    }

    #[test]
    fn database_passwords_never_show_in_the_configuration() {
        let mut a = args();
        a.config = None;
        a.database_url = Some("postgres://app:first-secret@db.internal/calsync?password=second-secret".into());
        a.encryption_key = Some("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into());
        let c = Config::load(&a).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("first-secret") && !shown.contains("second-secret"), "{shown}");
        assert!(shown.contains("db.internal"), "{shown}");
    }

    #[test]
    fn the_embedded_sandbox_is_mounted_unasked_only_on_loopback_while_a_provider_needs_it() {
        let mut a = args();
        assert_eq!(Config::load(&a).map(|c| c.sandbox).ok(), None, "the named config file is missing");
        a.config = None;
        assert_eq!(Config::load(&a).unwrap().sandbox, SandboxMode::Embedded);
        a.bind = Some("0.0.0.0:8080".into());
        assert_eq!(Config::load(&a).unwrap().sandbox, SandboxMode::Off, "not on a public address");
        a.sandbox = Some("embedded".into());
        assert_eq!(Config::load(&a).unwrap().sandbox, SandboxMode::Embedded, "unless asked for");
        a.sandbox = None;
        a.bind = None;
        a.google_client_id = Some("g".into());
        assert_eq!(Config::load(&a).unwrap().sandbox, SandboxMode::Embedded, "Microsoft still needs it");
        a.microsoft_client_id = Some("m".into());
        assert_eq!(Config::load(&a).unwrap().sandbox, SandboxMode::Off, "real clients for both");
    }

    #[test]
    fn explicit_config_file_must_exist_and_be_valid() {
        let a = args();
        let err = Config::load(&a).unwrap_err();
        assert!(format!("{err:#}").contains("cannot read config file"), "{err:#}");
        let path = a.config.clone().unwrap();
        std::fs::write(&path, "bind = \"127.0.0.1:9999\"\nsession_ttl_hours = 2\n").unwrap();
        let c = Config::load(&a).unwrap();
        assert_eq!((c.bind.as_str(), c.session_ttl_hours), ("127.0.0.1:9999", 2));
        std::fs::write(&path, "bnid = \"x\"\n").unwrap();
        assert!(format!("{:#}", Config::load(&a).unwrap_err()).contains("unknown field"));
        std::fs::write(&path, "bind = \"127.0.0.1:1\"\nencryption_key = 42 # k1:c2VjcmV0\n").unwrap();
        let shown = format!("{:#}", Config::load(&a).unwrap_err());
        assert!(shown.contains("line 2") && !shown.contains("c2VjcmV0"), "{shown}");
    }

    #[test]
    fn flags_override_the_file() {
        let mut a = args();
        std::fs::write(a.config.as_ref().unwrap(), "bind = \"127.0.0.1:9999\"\n").unwrap();
        a.bind = Some("127.0.0.1:7000".into());
        assert_eq!(Config::load(&a).unwrap().bind, "127.0.0.1:7000");
    }

    #[test]
    fn bad_values_fail_at_load() {
        let mut a = args();
        std::fs::write(a.config.as_ref().unwrap(), "").unwrap();
        a.database_url = Some("mysql://root@localhost/x".into());
        assert!(format!("{:#}", Config::load(&a).unwrap_err()).contains("unsupported DATABASE_URL"));
        let mut a = args();
        std::fs::write(a.config.as_ref().unwrap(), "").unwrap();
        a.bind = Some("localhost".into());
        assert!(Config::load(&a).is_err());
        let mut a = args();
        std::fs::write(a.config.as_ref().unwrap(), "").unwrap();
        a.environment = Some("production".into());
        a.public_url = Some("https://calsync.example".into());
        assert!(format!("{:#}", Config::load(&a).unwrap_err()).contains("CALSYNC_ENCRYPTION_KEY is required"));
    }

    #[test]
    fn webhooks_follow_the_public_url() {
        let mut a = args();
        std::fs::write(a.config.as_ref().unwrap(), "").unwrap();
        assert!(Config::load(&a).unwrap().sync.webhooks.is_none(), "no public URL, no webhooks");
        a.public_url = Some("http://calsync.example/".into());
        assert!(Config::load(&a).unwrap().sync.webhooks.is_none(), "providers deliver only to https");
        a.webhooks = Some("on".into());
        assert!(Config::load(&a).unwrap().sync.webhooks.is_some(), "forced (the sandbox delivers to http)");
        a.webhooks = None;
        a.public_url = Some("https://calsync.example/".into());
        a.webhook_ttl_seconds = Some(3000);
        let w = Config::load(&a).unwrap().sync.webhooks.expect("on with a public URL");
        assert_eq!((w.ttl.num_seconds(), w.renew_before.num_seconds(), w.interval.num_seconds()), (3000, 1000, 1800));
        a.webhooks = Some("off".into());
        assert!(Config::load(&a).unwrap().sync.webhooks.is_none());
        a.webhooks = Some("maybe".into());
        assert!(format!("{:#}", Config::load(&a).unwrap_err()).contains("CALSYNC_WEBHOOKS"));
        a.webhooks = None;
        a.webhook_ttl_seconds = Some(1);
        assert!(format!("{:#}", Config::load(&a).unwrap_err()).contains("CALSYNC_WEBHOOK_TTL_SECONDS"));
    }

    #[test]
    fn https_public_url_makes_cookies_secure() {
        let mut a = args();
        std::fs::write(a.config.as_ref().unwrap(), "").unwrap();
        a.public_url = Some("https://calsync.example/".into());
        let c = Config::load(&a).unwrap();
        assert!(c.secure_cookies());
        assert_eq!(c.public("/login"), "https://calsync.example/login");
    }

    #[test]
    fn debug_redacts_secrets() {
        let mut a = args();
        std::fs::write(a.config.as_ref().unwrap(), "").unwrap();
        a.database_url = Some("postgres://app:hunter2@db/x".into());
        a.encryption_key = Some(format!("k1:{}", data_encoding::BASE64.encode(&[7u8; 32])).into());
        let c = Config::load(&a).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains(&data_encoding::BASE64.encode(&[7u8; 32])), "{shown}");
    }
}
