//! Which Google and Microsoft endpoints and OAuth clients this instance uses.
//!
//! With client ids configured, the real services (every endpoint can still be overridden).
//! Without them, the provider sandbox with its always-registered dev client: mounted in-process
//! at `/sandbox` (the embedded default), or an external one given by URL (`calsync sandbox`).

use anyhow::{Context, bail};
use calsync_domain::Secret;
use calsync_domain::connection::Provider;
use calsync_providers::google::GoogleApi;
use calsync_providers::google_events::GoogleCalendar;
use calsync_providers::graph_events::GraphCalendar;
use calsync_providers::microsoft::GraphApi;
use calsync_providers::oauth::OAuthClient;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

pub const SANDBOX_PATH: &str = "/sandbox";

/// Where the sandbox is, if one is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SandboxMode {
    /// Mounted in this process at `/sandbox`.
    Embedded,
    /// A sandbox running elsewhere (`calsync sandbox --bind …`).
    External(Url),
    Off,
}

impl SandboxMode {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "embedded" => Ok(SandboxMode::Embedded),
            "off" => Ok(SandboxMode::Off),
            url if url.starts_with("http://") || url.starts_with("https://") => {
                Ok(SandboxMode::External(Url::parse(url).with_context(|| format!("CALSYNC_SANDBOX {url:?}"))?))
            }
            other => bail!("CALSYNC_SANDBOX must be \"embedded\", \"off\" or the URL of a sandbox, not {other:?}"),
        }
    }
}

/// Provider settings as configured (flags, environment, file). Secrets are redacted in `Debug`.
#[derive(Clone, Default)]
pub struct ProviderSettings {
    pub google_client_id: Option<String>,
    pub google_client_secret: Option<Secret>,
    pub google_redirect_uri: Option<String>,
    pub google_authorize_url: Option<String>,
    pub google_token_url: Option<String>,
    pub google_revoke_url: Option<String>,
    pub google_userinfo_url: Option<String>,
    pub google_calendar_api_url: Option<String>,
    pub microsoft_client_id: Option<String>,
    pub microsoft_client_secret: Option<Secret>,
    pub microsoft_redirect_uri: Option<String>,
    pub microsoft_tenant: Option<String>,
    pub microsoft_login_url: Option<String>,
    pub microsoft_graph_url: Option<String>,
    pub timeout_secs: Option<u64>,
}

impl std::fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("google_client_id", &self.google_client_id)
            .field("google_client_secret", &self.google_client_secret)
            .field("google_redirect_uri", &self.google_redirect_uri)
            .field("microsoft_client_id", &self.microsoft_client_id)
            .field("microsoft_client_secret", &self.microsoft_client_secret)
            .field("microsoft_redirect_uri", &self.microsoft_redirect_uri)
            .field("microsoft_tenant", &self.microsoft_tenant)
            .finish_non_exhaustive()
    }
}

pub use calsync_engine::registry::{Providers, Setup};

fn url(value: Option<&String>, default: String, name: &str) -> anyhow::Result<Url> {
    let raw = value.cloned().unwrap_or(default);
    Url::parse(&raw).with_context(|| format!("{name} {raw:?} is not a URL"))
}

/// Resolves the settings against the service's public URL (known only once bound).
/// `caldav_local`: whether CalDAV servers may be on this machine or a private network and speak
/// plain http (development and tests); production takes public https servers only.
pub fn resolve(
    s: &ProviderSettings,
    sandbox: &SandboxMode,
    public_url: &Url,
    caldav_local: bool,
) -> anyhow::Result<Providers> {
    let base = public_url.as_str().trim_end_matches('/').to_owned();
    let sandbox_root = match sandbox {
        SandboxMode::Embedded => Some(format!("{base}{SANDBOX_PATH}")),
        SandboxMode::External(u) => Some(u.as_str().trim_end_matches('/').to_owned()),
        SandboxMode::Off => None,
    };
    let default_redirect = format!("{base}/calendar/oauth/callback");
    let timeout = Duration::from_secs(s.timeout_secs.unwrap_or(30).clamp(1, 300));
    let http = calsync_providers::http_client(timeout);

    let google = match (&s.google_client_id, &sandbox_root) {
        (Some(id), _) => {
            let secret = s
                .google_client_secret
                .clone()
                .context("GOOGLE_CALENDAR_CLIENT_SECRET is required with GOOGLE_CALENDAR_CLIENT_ID")?;
            Some(google_setup(
                s,
                id,
                secret.expose(),
                "https://accounts.google.com/o/oauth2/v2/auth",
                "https://oauth2.googleapis.com",
                "https://openidconnect.googleapis.com/v1/userinfo",
                "https://www.googleapis.com/calendar/v3",
                &default_redirect,
                false,
                &http,
            )?)
        }
        (None, Some(root)) => Some(google_setup(
            s,
            calsync_sandbox::DEV_CLIENT_ID,
            calsync_sandbox::DEV_CLIENT_SECRET,
            &format!("{root}/google/o/oauth2/v2/auth"),
            &format!("{root}/google"),
            &format!("{root}/google/oauth2/v3/userinfo"),
            &format!("{root}/google/calendar/v3"),
            &default_redirect,
            true,
            &http,
        )?),
        (None, None) => None,
    };
    let tenant = s.microsoft_tenant.clone().unwrap_or_else(|| "common".into());
    let microsoft = match (&s.microsoft_client_id, &sandbox_root) {
        (Some(id), _) => {
            let secret = s
                .microsoft_client_secret
                .clone()
                .context("MICROSOFT_CALENDAR_CLIENT_SECRET is required with MICROSOFT_CALENDAR_CLIENT_ID")?;
            Some(microsoft_setup(
                s,
                id,
                secret.expose(),
                "https://login.microsoftonline.com",
                &tenant,
                "https://graph.microsoft.com/v1.0",
                &default_redirect,
                false,
                &http,
            )?)
        }
        (None, Some(root)) => Some(microsoft_setup(
            s,
            calsync_sandbox::DEV_CLIENT_ID,
            calsync_sandbox::DEV_CLIENT_SECRET,
            &format!("{root}/microsoft"),
            &tenant,
            &format!("{root}/microsoft/graph/v1.0"),
            &default_redirect,
            true,
            &http,
        )?),
        (None, None) => None,
    };
    let caldav = Arc::new(calsync_providers::caldav_events::CalDavCalendar::new(http.clone()));
    Ok(Providers { http, timeout, google, microsoft, caldav, caldav_local })
}

#[allow(clippy::too_many_arguments)]
fn google_setup(
    s: &ProviderSettings,
    client_id: &str,
    secret: &str,
    authorize: &str,
    oauth_base: &str,
    userinfo: &str,
    calendar: &str,
    default_redirect: &str,
    sandboxed: bool,
    http: &reqwest::Client,
) -> anyhow::Result<Setup> {
    let (token_default, revoke_default) = (format!("{oauth_base}/token"), format!("{oauth_base}/revoke"));
    let oauth = OAuthClient::new(
        Provider::Google,
        client_id,
        secret,
        url(s.google_authorize_url.as_ref(), authorize.into(), "GOOGLE_OAUTH_AUTHORIZE_URL")?,
        url(s.google_token_url.as_ref(), token_default, "GOOGLE_OAUTH_TOKEN_URL")?,
        Some(url(s.google_revoke_url.as_ref(), revoke_default, "GOOGLE_OAUTH_REVOKE_URL")?),
        calsync_providers::google::scopes(),
    );
    let api = GoogleApi {
        calendar_base: url(s.google_calendar_api_url.as_ref(), calendar.into(), "GOOGLE_CALENDAR_API_URL")?,
        userinfo_url: url(s.google_userinfo_url.as_ref(), userinfo.into(), "GOOGLE_USERINFO_URL")?,
    };
    let redirect_uri = s.google_redirect_uri.clone().unwrap_or_else(|| default_redirect.to_owned());
    Url::parse(&redirect_uri).with_context(|| format!("GOOGLE_CALENDAR_REDIRECT_URI {redirect_uri:?} is not a URL"))?;
    let calendar = Arc::new(GoogleCalendar { api, http: http.clone() });
    Ok(Setup { oauth, redirect_uri, calendar, sandboxed })
}

#[allow(clippy::too_many_arguments)]
fn microsoft_setup(
    s: &ProviderSettings,
    client_id: &str,
    secret: &str,
    login_base: &str,
    tenant: &str,
    graph: &str,
    default_redirect: &str,
    sandboxed: bool,
    http: &reqwest::Client,
) -> anyhow::Result<Setup> {
    let login = s.microsoft_login_url.clone().unwrap_or_else(|| login_base.to_owned());
    let login = login.trim_end_matches('/');
    let oauth = OAuthClient::new(
        Provider::Microsoft,
        client_id,
        secret,
        url(None, format!("{login}/{tenant}/oauth2/v2.0/authorize"), "MICROSOFT_LOGIN_URL")?,
        url(None, format!("{login}/{tenant}/oauth2/v2.0/token"), "MICROSOFT_LOGIN_URL")?,
        None,
        calsync_providers::microsoft::scopes(),
    );
    let api = GraphApi { base: url(s.microsoft_graph_url.as_ref(), graph.into(), "MICROSOFT_GRAPH_URL")? };
    let redirect_uri = s.microsoft_redirect_uri.clone().unwrap_or_else(|| default_redirect.to_owned());
    Url::parse(&redirect_uri)
        .with_context(|| format!("MICROSOFT_CALENDAR_REDIRECT_URI {redirect_uri:?} is not a URL"))?;
    let calendar = Arc::new(GraphCalendar { api, http: http.clone() });
    Ok(Setup { oauth, redirect_uri, calendar, sandboxed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_points_at_the_sandbox() {
        let p = resolve(
            &ProviderSettings::default(),
            &SandboxMode::Embedded,
            &"http://127.0.0.1:8080/".parse().unwrap(),
            true,
        )
        .unwrap();
        let g = p.google.unwrap();
        assert!(g.sandboxed);
        assert_eq!(g.oauth.authorize_url.as_str(), "http://127.0.0.1:8080/sandbox/google/o/oauth2/v2/auth");
        assert_eq!(g.oauth.token_url.as_str(), "http://127.0.0.1:8080/sandbox/google/token");
        assert_eq!(g.redirect_uri, "http://127.0.0.1:8080/calendar/oauth/callback");
        let m = p.microsoft.unwrap();
        assert_eq!(m.oauth.token_url.as_str(), "http://127.0.0.1:8080/sandbox/microsoft/common/oauth2/v2.0/token");
    }

    #[test]
    fn real_clients_need_secrets_and_use_real_endpoints() {
        let mut s = ProviderSettings { google_client_id: Some("id".into()), ..Default::default() };
        let public = "https://calsync.example".parse().unwrap();
        assert!(resolve(&s, &SandboxMode::Off, &public, false).is_err());
        s.google_client_secret = Some("secret".into());
        s.microsoft_tenant = Some("organizations".into());
        let p = resolve(&s, &SandboxMode::Off, &public, false).unwrap();
        let g = p.google.unwrap();
        assert!(!g.sandboxed);
        assert_eq!(g.oauth.token_url.as_str(), "https://oauth2.googleapis.com/token");
        assert!(p.microsoft.is_none(), "no Microsoft client and no sandbox: not offered");
        assert!(!format!("{s:?}").contains("secret\""));
        assert!(SandboxMode::parse("bogus").is_err());
        assert_eq!(
            SandboxMode::parse("http://127.0.0.1:9000").unwrap(),
            SandboxMode::External("http://127.0.0.1:9000".parse().unwrap())
        );
    }
}
