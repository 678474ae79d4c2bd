//! Google: the account's e-mail (OpenID user info) and its calendar list (Calendar API v3).

use crate::error::{ProviderError, ReauthKind, retry_after};
use crate::{AccountIdentity, RemoteCalendar};
use serde::Deserialize;
use url::Url;

pub const SCOPE_EVENTS: &str = "https://www.googleapis.com/auth/calendar.events";
/// `calendarList.list` accepts only `calendar` or `calendar.readonly`.
pub const SCOPE_CALENDARS_READ: &str = "https://www.googleapis.com/auth/calendar.readonly";
pub const SCOPE_EMAIL: &str = "https://www.googleapis.com/auth/userinfo.email";

/// What calsync asks Google for.
pub fn scopes() -> Vec<String> {
    ["openid", SCOPE_EMAIL, SCOPE_EVENTS, SCOPE_CALENDARS_READ].map(str::to_owned).to_vec()
}

/// Google reports granted scopes in full URL form, except `openid`; `email` is the short alias.
pub fn missing_scopes(granted: &[String]) -> Vec<&'static str> {
    let has = |s: &str| granted.iter().any(|g| g == s);
    let mut missing = Vec::new();
    if !(has(SCOPE_EVENTS) || has("https://www.googleapis.com/auth/calendar")) {
        missing.push("see and edit events on your calendars");
    }
    if !(has(SCOPE_CALENDARS_READ) || has("https://www.googleapis.com/auth/calendar")) {
        missing.push("see your list of calendars");
    }
    if !(has(SCOPE_EMAIL) || has("email")) {
        missing.push("see your e-mail address");
    }
    missing
}

#[derive(Debug, Clone)]
pub struct GoogleApi {
    /// e.g. `https://www.googleapis.com/calendar/v3`
    pub calendar_base: Url,
    /// e.g. `https://openidconnect.googleapis.com/v1/userinfo`
    pub userinfo_url: Url,
}

#[derive(Deserialize)]
struct UserInfo {
    sub: Option<String>,
    email: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CalendarListPage {
    #[serde(default)]
    items: Vec<CalendarListEntry>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CalendarListEntry {
    id: String,
    #[serde(default)]
    summary: String,
    summary_override: Option<String>,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    access_role: String,
    time_zone: Option<String>,
    #[serde(default)]
    deleted: bool,
    background_color: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorEnvelope {
    error: Option<ErrorBody>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize, Default)]
struct ErrorItem {
    #[serde(default)]
    reason: String,
}

impl GoogleApi {
    pub(crate) fn url(&self, path: &str) -> Url {
        let mut u = self.calendar_base.clone();
        let base = u.path().trim_end_matches('/').to_owned();
        u.set_path(&format!("{base}{path}"));
        u
    }

    /// The account's `sub` (immutable) and e-mail address, from the OpenID userinfo endpoint.
    pub async fn account(&self, http: &reqwest::Client, access_token: &str) -> Result<AccountIdentity, ProviderError> {
        let resp = http
            .get(self.userinfo_url.clone())
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(ProviderError::transport)?;
        let info: UserInfo = json_or_error(resp).await?;
        let email = info.email.filter(|e| e.contains('@')).ok_or_else(|| ProviderError::Permanent {
            status: None,
            reason: "Google did not share the account's e-mail address".into(),
        })?;
        let id = info.sub.filter(|s| !s.is_empty()).ok_or_else(|| ProviderError::Permanent {
            status: None,
            reason: "Google did not share the account's id (sub)".into(),
        })?;
        Ok(AccountIdentity { id, email: email.to_lowercase() })
    }

    pub async fn calendars(
        &self,
        http: &reqwest::Client,
        access_token: &str,
    ) -> Result<Vec<RemoteCalendar>, ProviderError> {
        let mut out = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut req =
                http.get(self.url("/users/me/calendarList")).bearer_auth(access_token).query(&[("maxResults", "250")]);
            if let Some(t) = &page_token {
                req = req.query(&[("pageToken", t)]);
            }
            let page: CalendarListPage = json_or_error(req.send().await.map_err(ProviderError::transport)?).await?;
            out.extend(page.items.into_iter().filter(|e| !e.deleted).map(|e| RemoteCalendar {
                name: e.summary_override.unwrap_or(e.summary),
                primary: e.primary,
                can_write: matches!(e.access_role.as_str(), "owner" | "writer"),
                time_zone: e.time_zone,
                color: e.background_color.as_deref().and_then(crate::hex_color),
                remote_id: e.id,
            }));
            match page.next_page_token {
                Some(t) if !t.is_empty() => page_token = Some(t),
                _ => break,
            }
        }
        Ok(out)
    }
}

/// Google API errors by status and `errors[].reason`.
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
    let body: ErrorEnvelope = resp.json().await.unwrap_or_default();
    let body = body.error.unwrap_or_default();
    let reason = body.errors.first().map(|e| e.reason.clone()).unwrap_or_default();
    let describe =
        || if body.message.is_empty() { format!("HTTP {status}") } else { format!("{} (HTTP {status})", body.message) };
    Err(match (status, reason.as_str()) {
        (401, _) => ProviderError::Reauthorize { kind: ReauthKind::TokenRejected, reason: describe() },
        (403 | 429, "rateLimitExceeded" | "userRateLimitExceeded" | "quotaExceeded") | (429, _) => {
            ProviderError::Retryable { after: retry_after(&headers), reason: describe() }
        }
        (403, "insufficientPermissions" | "ACCESS_TOKEN_SCOPE_INSUFFICIENT") => {
            ProviderError::Reauthorize { kind: ReauthKind::Interaction, reason: describe() }
        }
        (404, _) => ProviderError::NotFound,
        (410, "fullSyncRequired" | "updatedMinTooLongAgo") => ProviderError::CursorExpired,
        (410, _) => ProviderError::NotFound,
        (412, _) => ProviderError::PreconditionFailed,
        (s, _) if s >= 500 => ProviderError::Retryable { after: retry_after(&headers), reason: describe() },
        _ => ProviderError::Permanent { status: Some(status), reason: describe() },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn missing_scopes_are_named() {
        let all: Vec<String> = super::scopes();
        assert!(super::missing_scopes(&all).is_empty());
        let partial = vec!["openid".to_owned(), super::SCOPE_EMAIL.to_owned(), super::SCOPE_CALENDARS_READ.to_owned()];
        assert_eq!(super::missing_scopes(&partial), ["see and edit events on your calendars"]);
        let full = vec!["https://www.googleapis.com/auth/calendar".to_owned(), "email".to_owned()];
        assert!(super::missing_scopes(&full).is_empty());
    }
}
