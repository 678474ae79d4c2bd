//! The OAuth 2.0 authorization-code flow with PKCE, refresh and revocation, for Google and the
//! Microsoft identity platform. The two differ in details that matter: Google sends a refresh
//! token only with `access_type=offline` and `prompt=consent` and never rotates it; Microsoft needs
//! `offline_access` for one and returns a new refresh token on every refresh, which must replace
//! the old one.

use crate::Provider;
use crate::error::{ProviderError, ReauthKind, retry_after};
use serde::Deserialize;
use std::fmt;
use url::Url;

/// A registered OAuth client and the endpoints it talks to.
#[derive(Clone)]
pub struct OAuthClient {
    pub provider: Provider,
    pub client_id: String,
    client_secret: String,
    pub authorize_url: Url,
    pub token_url: Url,
    /// Google only; Microsoft has no revocation endpoint for a single grant.
    pub revoke_url: Option<Url>,
    pub scopes: Vec<String>,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("provider", &self.provider)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("authorize_url", &self.authorize_url.as_str())
            .field("token_url", &self.token_url.as_str())
            .field("revoke_url", &self.revoke_url.as_ref().map(Url::as_str))
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// What a token endpoint granted.
#[derive(Clone)]
pub struct TokenSet {
    pub access_token: String,
    /// Absent on Google refreshes (no rotation) and on grants without offline access.
    pub refresh_token: Option<String>,
    pub expires_in_secs: i64,
    /// The scopes actually granted, which may be fewer than requested.
    pub scopes: Vec<String>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[redacted]"))
            .field("expires_in_secs", &self.expires_in_secs)
            .field("scopes", &self.scopes)
            .finish()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
    scope: Option<String>,
}

#[derive(Deserialize, Default)]
struct TokenErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<i64>,
}

impl OAuthClient {
    pub fn new(
        provider: Provider,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        authorize_url: Url,
        token_url: Url,
        revoke_url: Option<Url>,
        scopes: Vec<String>,
    ) -> Self {
        Self {
            provider,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            authorize_url,
            token_url,
            revoke_url,
            scopes,
        }
    }

    /// The URL to send the browser to.
    pub fn authorization_url(
        &self,
        state: &str,
        code_challenge: &str,
        redirect_uri: &str,
        login_hint: Option<&str>,
    ) -> Url {
        let mut url = self.authorize_url.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("response_type", "code")
                .append_pair("scope", &self.scopes.join(" "))
                .append_pair("state", state)
                .append_pair("code_challenge", code_challenge)
                .append_pair("code_challenge_method", "S256");
            match self.provider {
                Provider::Google => {
                    // A refresh token comes only with offline access, and on a repeat consent only
                    // when consent is forced.
                    q.append_pair("access_type", "offline")
                        .append_pair("prompt", "consent")
                        .append_pair("include_granted_scopes", "true");
                }
                Provider::Microsoft => {
                    q.append_pair("response_mode", "query").append_pair("prompt", "select_account");
                }
                // CalDAV signs in with a password, not OAuth: no client is ever built for it.
                Provider::CalDav => {}
            }
            if let Some(hint) = login_hint {
                q.append_pair("login_hint", hint);
            }
        }
        url
    }

    pub async fn exchange_code(
        &self,
        http: &reqwest::Client,
        code: &str,
        code_verifier: &str,
        redirect_uri: &str,
    ) -> Result<TokenSet, ProviderError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", code_verifier),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
        ];
        let scope = self.scopes.join(" ");
        if self.provider == Provider::Microsoft {
            form.push(("scope", scope.as_str()));
        }
        self.token_request(http, &form).await
    }

    pub async fn refresh(&self, http: &reqwest::Client, refresh_token: &str) -> Result<TokenSet, ProviderError> {
        let scope = self.scopes.join(" ");
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
        ];
        // Microsoft documents `scope` as required on refresh; Google takes the original grant's.
        if self.provider == crate::Provider::Microsoft {
            form.push(("scope", scope.as_str()));
        }
        self.token_request(http, &form).await
    }

    /// Withdraws a grant where the provider supports it (Google); a token that is already invalid
    /// counts as revoked.
    pub async fn revoke(&self, http: &reqwest::Client, token: &str) -> Result<(), ProviderError> {
        let Some(url) = &self.revoke_url else { return Ok(()) };
        let resp = http.post(url.clone()).form(&[("token", token)]).send().await.map_err(ProviderError::transport)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let headers = resp.headers().clone();
        let body: TokenErrorBody = resp.json().await.unwrap_or_default();
        if status.as_u16() == 400 && matches!(body.error.as_str(), "invalid_token" | "invalid_grant") {
            return Ok(());
        }
        Err(classify(self.provider, status.as_u16(), &headers, body))
    }

    async fn token_request(&self, http: &reqwest::Client, form: &[(&str, &str)]) -> Result<TokenSet, ProviderError> {
        let resp = http
            .post(self.token_url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(form)
            .send()
            .await
            .map_err(ProviderError::transport)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        if !status.is_success() {
            let body: TokenErrorBody = resp.json().await.unwrap_or_default();
            return Err(classify(self.provider, status.as_u16(), &headers, body));
        }
        let t: TokenResponse = resp.json().await.map_err(ProviderError::transport)?;
        if t.access_token.is_empty() {
            return Err(ProviderError::Permanent {
                status: None,
                reason: "the token endpoint sent no access token".into(),
            });
        }
        Ok(TokenSet {
            access_token: t.access_token,
            refresh_token: t.refresh_token.filter(|r| !r.is_empty()),
            expires_in_secs: t.expires_in.unwrap_or(3600).max(0),
            scopes: t.scope.unwrap_or_default().split_whitespace().map(str::to_owned).collect(),
        })
    }
}

/// Token-endpoint errors by the documented `error` values and AADSTS codes, never by description
/// text (which is for humans and changes).
fn classify(
    provider: Provider,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: TokenErrorBody,
) -> ProviderError {
    let code = body.error_codes.first().copied();
    let reason = match code {
        Some(c) => format!("{} (AADSTS{c})", body.error),
        None if body.error.is_empty() => format!("HTTP {status}"),
        None => body.error.clone(),
    };
    if status >= 500 || status == 429 || body.error == "temporarily_unavailable" {
        return ProviderError::Retryable { after: retry_after(headers), reason };
    }
    match body.error.as_str() {
        "invalid_grant" => {
            let kind = match (provider, code) {
                (Provider::Microsoft, Some(50173)) => ReauthKind::Revoked,
                (Provider::Microsoft, Some(70008)) => ReauthKind::Revoked,
                (Provider::Microsoft, Some(700082)) => ReauthKind::Expired,
                (Provider::Google, _) if body.error_description.to_ascii_lowercase().contains("revoked") => {
                    // Google says "expired or revoked" for both; without more, the grant is gone either way.
                    ReauthKind::Expired
                }
                _ => ReauthKind::Expired,
            };
            ProviderError::Reauthorize { kind, reason }
        }
        "interaction_required" | "consent_required" | "login_required" => {
            ProviderError::Reauthorize { kind: ReauthKind::Interaction, reason }
        }
        _ => ProviderError::Permanent { status: Some(status), reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(provider: Provider) -> OAuthClient {
        OAuthClient::new(
            provider,
            "cid",
            "secret-value",
            "https://auth.example/authorize".parse().unwrap(),
            "https://auth.example/token".parse().unwrap(),
            None,
            vec!["a".into(), "b c".into()],
        )
    }

    #[test]
    fn authorization_urls_carry_what_each_provider_needs() {
        let g = client(Provider::Google).authorization_url("st", "ch", "http://127.0.0.1/cb", Some("ann@x.test"));
        let q: std::collections::HashMap<_, _> = g.query_pairs().into_owned().collect();
        assert_eq!(q["access_type"], "offline");
        assert_eq!(q["prompt"], "consent");
        assert_eq!(q["include_granted_scopes"], "true");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["state"], "st");
        assert_eq!(q["login_hint"], "ann@x.test");
        let m = client(Provider::Microsoft).authorization_url("st", "ch", "http://127.0.0.1/cb", None);
        let q: std::collections::HashMap<_, _> = m.query_pairs().into_owned().collect();
        assert_eq!(q["response_mode"], "query");
        assert!(!q.contains_key("access_type"));
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        assert!(!format!("{:?}", client(Provider::Google)).contains("secret-value"));
        let t = TokenSet {
            access_token: "ya29.x".into(),
            refresh_token: Some("1//y".into()),
            expires_in_secs: 1,
            scopes: vec![],
        };
        let shown = format!("{t:?}");
        assert!(!shown.contains("ya29") && !shown.contains("1//"), "{shown}");
    }

    #[test]
    fn token_errors_are_classified() {
        let h = reqwest::header::HeaderMap::new();
        let body = |e: &str, codes: Vec<i64>| TokenErrorBody {
            error: e.into(),
            error_description: String::new(),
            error_codes: codes,
        };
        assert!(matches!(
            classify(Provider::Microsoft, 400, &h, body("invalid_grant", vec![50173])),
            ProviderError::Reauthorize { kind: ReauthKind::Revoked, .. }
        ));
        assert!(matches!(
            classify(Provider::Microsoft, 400, &h, body("invalid_grant", vec![700082])),
            ProviderError::Reauthorize { kind: ReauthKind::Expired, .. }
        ));
        assert!(matches!(
            classify(Provider::Microsoft, 400, &h, body("interaction_required", vec![53003])),
            ProviderError::Reauthorize { kind: ReauthKind::Interaction, .. }
        ));
        assert!(classify(Provider::Google, 503, &h, body("", vec![])).is_retryable());
        assert!(classify(Provider::Microsoft, 400, &h, body("temporarily_unavailable", vec![])).is_retryable());
        assert!(matches!(
            classify(Provider::Google, 401, &h, body("invalid_client", vec![])),
            ProviderError::Permanent { .. }
        ));
    }
}
