//! Microsoft Graph: the signed-in mailbox (`/me`) and its calendars.

use crate::error::{ProviderError, ReauthKind, retry_after};
use crate::{AccountIdentity, RemoteCalendar};
use serde::Deserialize;
use url::Url;

/// What calsync asks Microsoft for: `offline_access` is the only way to get a refresh token.
pub fn scopes() -> Vec<String> {
    ["offline_access", "Calendars.ReadWrite", "User.Read"].map(str::to_owned).to_vec()
}

/// Granted scopes may come back as short names or as `https://graph.microsoft.com/…` URLs.
pub fn missing_scopes(granted: &[String]) -> Vec<&'static str> {
    let has = |s: &str| {
        granted.iter().any(|g| {
            let short = g.rsplit('/').next().unwrap_or(g);
            short.eq_ignore_ascii_case(s)
        })
    };
    let mut missing = Vec::new();
    if !has("Calendars.ReadWrite") {
        missing.push("read and write your calendars (Calendars.ReadWrite)");
    }
    if !has("User.Read") {
        missing.push("sign you in and read your profile (User.Read)");
    }
    missing
}

#[derive(Debug, Clone)]
pub struct GraphApi {
    /// e.g. `https://graph.microsoft.com/v1.0`
    pub base: Url,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Me {
    id: Option<String>,
    mail: Option<String>,
    user_principal_name: Option<String>,
}

#[derive(Deserialize)]
struct CalendarPage {
    #[serde(default)]
    value: Vec<GraphCalendar>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphCalendar {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    is_default_calendar: bool,
    #[serde(default)]
    can_edit: bool,
    /// Empty, or `#rrggbb`.
    #[serde(default)]
    hex_color: String,
}

#[derive(Deserialize, Default)]
struct ErrorEnvelope {
    error: Option<ErrorBody>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl GraphApi {
    pub(crate) fn url(&self, path: &str) -> Url {
        let mut u = self.base.clone();
        let base = u.path().trim_end_matches('/').to_owned();
        u.set_path(&format!("{base}{path}"));
        u
    }

    /// A link from a Graph response, accepted only on Graph's own origin: the bearer token is
    /// attached to it, so a response must not be able to send it anywhere else.
    pub(crate) fn same_origin(&self, link: &str) -> Result<Url, ProviderError> {
        let url = Url::parse(link)
            .map_err(|_| ProviderError::Permanent { status: None, reason: "Graph sent an unusable link".into() })?;
        if url.origin() != self.base.origin() {
            return Err(ProviderError::Permanent { status: None, reason: "Graph sent a link to another host".into() });
        }
        Ok(url)
    }

    /// The user's Graph `id` (immutable) and mailbox address (`mail`, else the user
    /// principal name; both can be renamed).
    pub async fn account(&self, http: &reqwest::Client, access_token: &str) -> Result<AccountIdentity, ProviderError> {
        let resp =
            http.get(self.url("/me")).bearer_auth(access_token).send().await.map_err(ProviderError::transport)?;
        let me: Me = json_or_error(resp).await?;
        let email = me.mail.or(me.user_principal_name).filter(|e| e.contains('@')).ok_or_else(|| {
            ProviderError::Permanent { status: None, reason: "Microsoft did not share the mailbox address".into() }
        })?;
        let id = me.id.filter(|s| !s.is_empty()).ok_or_else(|| ProviderError::Permanent {
            status: None,
            reason: "Microsoft did not share the user's id".into(),
        })?;
        Ok(AccountIdentity { id, email: email.to_lowercase() })
    }

    pub async fn calendars(
        &self,
        http: &reqwest::Client,
        access_token: &str,
    ) -> Result<Vec<RemoteCalendar>, ProviderError> {
        let mut out = Vec::new();
        let mut next: Option<Url> = Some(self.url("/me/calendars"));
        while let Some(url) = next.take() {
            let resp = http.get(url).bearer_auth(access_token).send().await.map_err(ProviderError::transport)?;
            let page: CalendarPage = json_or_error(resp).await?;
            out.extend(page.value.into_iter().map(|c| RemoteCalendar {
                remote_id: c.id,
                name: c.name,
                primary: c.is_default_calendar,
                can_write: c.can_edit,
                time_zone: None,
                color: crate::hex_color(&c.hex_color),
            }));
            next = match page.next_link {
                Some(link) => Some(self.same_origin(&link)?),
                None => None,
            };
        }
        Ok(out)
    }
}

/// The answer to a deletion-like call (delete, stop, unsubscribe): done, or already gone.
pub(crate) async fn done_or_gone(resp: reqwest::Response) -> Result<(), ProviderError> {
    if resp.status().is_success() {
        return Ok(());
    }
    match json_or_error::<serde_json::Value>(resp).await {
        Ok(_) | Err(ProviderError::NotFound) => Ok(()),
        Err(e) => Err(e),
    }
}

pub(crate) async fn json_or_error<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> Result<T, ProviderError> {
    let status = resp.status().as_u16();
    if resp.status().is_success() {
        return resp.json().await.map_err(ProviderError::transport);
    }
    let headers = resp.headers().clone();
    let body = resp.json::<ErrorEnvelope>().await.unwrap_or_default().error.unwrap_or_default();
    let describe =
        || if body.code.is_empty() { format!("HTTP {status}") } else { format!("{} (HTTP {status})", body.code) };
    Err(match (status, body.code.as_str()) {
        (401, _) => ProviderError::Reauthorize { kind: ReauthKind::TokenRejected, reason: describe() },
        (404, _) => ProviderError::NotFound,
        (410, _) | (_, "SyncStateNotFound" | "SyncStateInvalid") => ProviderError::CursorExpired,
        (412, _) => ProviderError::PreconditionFailed,
        (429 | 503 | 504, _) => ProviderError::Retryable { after: retry_after(&headers), reason: describe() },
        (s, _) if s >= 500 => ProviderError::Retryable { after: retry_after(&headers), reason: describe() },
        _ => ProviderError::Permanent {
            status: Some(status),
            reason: format!("{} {}", describe(), body.message).trim().to_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn links_must_stay_on_graph() {
        let api = super::GraphApi { base: "https://graph.microsoft.com/v1.0".parse().unwrap() };
        assert!(api.same_origin("https://graph.microsoft.com/v1.0/me/calendars?$skiptoken=x").is_ok());
        assert!(api.same_origin("https://evil.example/v1.0/me/calendars").is_err());
        assert!(api.same_origin("http://graph.microsoft.com/v1.0/me").is_err());
    }

    #[test]
    fn scope_forms_are_equivalent() {
        let granted = vec!["https://graph.microsoft.com/Calendars.ReadWrite".to_owned(), "User.Read".to_owned()];
        assert!(super::missing_scopes(&granted).is_empty());
        assert_eq!(super::missing_scopes(&["User.Read".to_owned()]).len(), 1);
    }
}
