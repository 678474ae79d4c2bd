//! Google OAuth 2.0 web-server flow: authorize (consent page or `sandbox_approve=1`), token
//! (code exchange and refresh, no rotation), revoke, userinfo, and the bearer-token check that
//! every Calendar call goes through.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::GoogleWorld;
use super::error::{ApiError, OAuthError};
use crate::html::{ConsentPage, error_page, render};
use crate::ids;
use crate::oauth::{
    CODE_TTL_MS, Pkce, bearer, client_credentials, parse_params, parse_pkce, pkce_matches, redirect_allowed, with_query,
};
use crate::state::{DEV_CLIENT_ID, DEV_CLIENT_SECRET, Shared, World};

mod authorize;

pub(crate) use authorize::{authorize, consent};

const SCOPE_PREFIX: &str = "https://www.googleapis.com/auth/";
const ACCESS_TTL_S: i64 = 3599;
/// Unused refresh tokens die after six months.
const REFRESH_IDLE_MS: i64 = 183 * 24 * 3600 * 1000;
/// Consent screens in "Testing" issue refresh tokens that die after seven days.
const TESTING_REFRESH_MS: i64 = 7 * 24 * 3600 * 1000;
/// Live refresh tokens per account per client; the 101st evicts the oldest.
const REFRESH_CAP: usize = 100;

/// Scopes the sandbox knows; anything else is `invalid_scope`.
const KNOWN_SCOPES: &[&str] = &[
    "calendar",
    "calendar.readonly",
    "calendar.events",
    "calendar.events.readonly",
    "calendar.settings.readonly",
    "calendar.events.owned",
    "calendar.events.owned.readonly",
    "calendar.calendarlist",
    "calendar.calendarlist.readonly",
    "calendar.calendars",
    "calendar.calendars.readonly",
    "calendar.freebusy",
    "calendar.events.freebusy",
    "calendar.app.created",
    "calendar.acls",
    "calendar.acls.readonly",
    "userinfo.email",
    "userinfo.profile",
];

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct GoogleOAuth {
    codes: HashMap<String, Code>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, Refresh>,
    /// Consent per (account e-mail, client id).
    #[serde(with = "crate::persist::pairs")]
    grants: HashMap<(String, String), Grant>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Code {
    client_id: String,
    redirect_uri: String,
    email: String,
    scopes: Vec<String>,
    pkce: Option<Pkce>,
    expires_ms: i64,
    used: bool,
    /// Whether the exchange returns a refresh token (decided at consent time).
    issue_refresh: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Access {
    email: String,
    client_id: String,
    scopes: Arc<[String]>,
    expires_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Refresh {
    email: String,
    client_id: String,
    scopes: Vec<String>,
    last_used_ms: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Grant {
    scopes: BTreeSet<String>,
    consented_ms: i64,
    /// Oldest first, for the per-client cap.
    refresh_tokens: VecDeque<String>,
    access_tokens: Vec<String>,
    /// A refresh token was already handed out for this consent: later consents get none
    /// unless `prompt=consent`.
    refresh_issued: bool,
}

impl GoogleOAuth {
    /// Revokes the whole grant of `email` for `client_id`: every token and the consent.
    fn revoke_grant(&mut self, email: &str, client_id: &str) {
        if let Some(grant) = self.grants.remove(&(email.to_owned(), client_id.to_owned())) {
            for t in grant.refresh_tokens {
                self.refresh.remove(&t);
            }
            for t in grant.access_tokens {
                self.access.remove(&t);
            }
        }
    }

    /// The account a live access token belongs to.
    pub(crate) fn token_owner(&self, token: &str, now_ms: i64) -> Option<&str> {
        self.access.get(token).filter(|a| a.expires_ms > now_ms).map(|a| a.email.as_str())
    }

    pub(crate) fn revoke_account(&mut self, email: &str) {
        let clients: Vec<String> = self.grants.keys().filter(|(e, _)| e == email).map(|(_, c)| c.clone()).collect();
        for c in clients {
            self.revoke_grant(email, &c);
        }
    }

    /// Mints an access token (and optionally a refresh token) on the grant.
    fn mint(
        &mut self,
        rng: &mut rand::rngs::StdRng,
        now_ms: i64,
        email: &str,
        client_id: &str,
        scopes: &[String],
        with_refresh: bool,
    ) -> (String, Option<String>) {
        let access = ids::token(rng, "ya29.a0", 96);
        let grant = self.grants.entry((email.to_owned(), client_id.to_owned())).or_default();
        // Expired access tokens are pruned here so long-lived grants stay small.
        let table = &mut self.access;
        grant.access_tokens.retain(|t| table.get(t).is_some_and(|a| a.expires_ms > now_ms));
        grant.access_tokens.push(access.clone());
        table.insert(
            access.clone(),
            Access {
                email: email.to_owned(),
                client_id: client_id.to_owned(),
                scopes: scopes.to_vec().into(),
                expires_ms: now_ms + ACCESS_TTL_S * 1000,
            },
        );
        let refresh = with_refresh.then(|| {
            let token = ids::token(rng, "1//0g", 72);
            grant.refresh_tokens.push_back(token.clone());
            grant.refresh_issued = true;
            self.refresh.insert(
                token.clone(),
                Refresh {
                    email: email.to_owned(),
                    client_id: client_id.to_owned(),
                    scopes: scopes.to_vec(),
                    last_used_ms: now_ms,
                },
            );
            while grant.refresh_tokens.len() > REFRESH_CAP {
                if let Some(old) = grant.refresh_tokens.pop_front() {
                    self.refresh.remove(&old);
                }
            }
            token
        });
        (access, refresh)
    }
}

/// Full scope names; `email`/`profile` shorthands map to their userinfo URLs as Google
/// reports them in granted scopes.
fn normalize_scope(s: &str) -> Option<String> {
    match s {
        "openid" => Some("openid".into()),
        "email" => Some(format!("{SCOPE_PREFIX}userinfo.email")),
        "profile" => Some(format!("{SCOPE_PREFIX}userinfo.profile")),
        _ => {
            let short = s.strip_prefix(SCOPE_PREFIX)?;
            KNOWN_SCOPES.contains(&short).then(|| s.to_owned())
        }
    }
}

fn parse_scopes(raw: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for s in raw.split(' ').filter(|s| !s.is_empty()) {
        let n = normalize_scope(s).ok_or_else(|| s.to_owned())?;
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

/// `(email, client_id)` of a grant.
type Who<'a> = (&'a str, &'a str);

fn token_response(
    google: &GoogleWorld,
    rng: &mut rand::rngs::StdRng,
    now_ms: i64,
    (email, client_id): Who<'_>,
    scopes: &[String],
    access: &str,
    refresh: Option<String>,
) -> Response {
    let mut body = json!({
        "access_token": access,
        "expires_in": ACCESS_TTL_S,
        "scope": scopes.join(" "),
        "token_type": "Bearer",
    });
    if let Some(r) = refresh {
        body["refresh_token"] = json!(r);
    }
    if scopes.iter().any(|s| s == "openid") {
        let sub = google.accounts.get(email).map(|a| a.sub.clone()).unwrap_or_default();
        let mut claims = json!({
            "iss": "https://accounts.google.com",
            "azp": client_id,
            "aud": client_id,
            "sub": sub,
            "iat": now_ms / 1000,
            "exp": now_ms / 1000 + ACCESS_TTL_S,
        });
        if scopes.iter().any(|s| s.ends_with("userinfo.email")) {
            claims["email"] = json!(email);
            claims["email_verified"] = json!(true);
        }
        body["id_token"] = json!(ids::jwt_like(rng, &claims));
    }
    let mut resp = Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, "no-cache, no-store, max-age=0, must-revalidate".parse().expect("static"));
    resp
}

pub(crate) async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    match token_inner(&shared, &headers, &body) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn token_inner(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Response, OAuthError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(OAuthError::invalid_request("Invalid Content-Type; expected application/x-www-form-urlencoded"));
    }
    let form = parse_params(body)
        .map_err(|p| OAuthError::invalid_request(&format!("Parameter specified more than once: {p}")))?;
    let (client_id, secret) = client_credentials(headers, &form);
    let client_id =
        client_id.ok_or_else(|| OAuthError::invalid_request("Could not determine client ID from request."))?;
    if client_id != DEV_CLIENT_ID {
        return Err(OAuthError::new(401, "invalid_client", "The OAuth client was not found."));
    }
    match secret.as_deref() {
        None => return Err(OAuthError::invalid_request("client_secret is missing.")),
        Some(s) if s != DEV_CLIENT_SECRET => {
            return Err(OAuthError::new(401, "invalid_client", "Unauthorized"));
        }
        Some(_) => {}
    }
    let now = shared.clock.now_ms();
    let param = |name: &str| {
        form.get(name).ok_or_else(|| OAuthError::invalid_request(&format!("Missing required parameter: {name}")))
    };
    let grant_type = param("grant_type")?;
    let mut world = shared.world();
    let World { rng, google, .. } = &mut *world;
    match grant_type.as_str() {
        "authorization_code" => {
            let code_value = param("code")?;
            let redirect_uri = param("redirect_uri")?;
            let code = google.oauth.codes.get_mut(code_value).ok_or_else(OAuthError::invalid_grant)?;
            if code.used || code.expires_ms <= now || code.client_id != client_id {
                return Err(OAuthError::invalid_grant());
            }
            if &code.redirect_uri != redirect_uri {
                return Err(OAuthError::new(400, "redirect_uri_mismatch", "Bad Request"));
            }
            if let Some(pkce) = &code.pkce {
                let verifier = form
                    .get("code_verifier")
                    .ok_or_else(|| OAuthError::new(400, "invalid_grant", "Missing code verifier."))?;
                if !pkce_matches(pkce, verifier) {
                    return Err(OAuthError::new(400, "invalid_grant", "Invalid code verifier."));
                }
            }
            code.used = true;
            let (email, scopes, issue_refresh) = (code.email.clone(), code.scopes.clone(), code.issue_refresh);
            let (access, refresh) = google.oauth.mint(rng, now, &email, &client_id, &scopes, issue_refresh);
            Ok(token_response(google, rng, now, (&email, &client_id), &scopes, &access, refresh))
        }
        "refresh_token" => {
            let token = param("refresh_token")?;
            let testing = shared.config.google_testing_mode;
            let rt = google.oauth.refresh.get_mut(token).ok_or_else(OAuthError::expired_or_revoked)?;
            if rt.client_id != client_id {
                return Err(OAuthError::new(401, "unauthorized_client", "Unauthorized"));
            }
            let consented =
                google.oauth.grants.get(&(rt.email.clone(), client_id.clone())).map_or(0, |g| g.consented_ms);
            let dead = now - rt.last_used_ms > REFRESH_IDLE_MS || (testing && now - consented > TESTING_REFRESH_MS);
            if dead {
                google.oauth.refresh.remove(token);
                return Err(OAuthError::expired_or_revoked());
            }
            rt.last_used_ms = now;
            let (email, mut scopes) = (rt.email.clone(), rt.scopes.clone());
            if let Some(requested) = form.get("scope") {
                let requested = parse_scopes(requested)
                    .map_err(|s| OAuthError::new(400, "invalid_scope", &format!("Invalid scope: {s}")))?;
                if requested.iter().any(|s| !scopes.contains(s)) {
                    return Err(OAuthError::new(400, "invalid_scope", "Bad Request"));
                }
                scopes = requested;
            }
            let (access, _) = google.oauth.mint(rng, now, &email, &client_id, &scopes, false);
            Ok(token_response(google, rng, now, (&email, &client_id), &scopes, &access, None))
        }
        other => Err(OAuthError::new(400, "unsupported_grant_type", &format!("Invalid grant_type: {other}"))),
    }
}

/// `POST /revoke?token=…` or with the token in a form body. Revokes the whole grant.
pub(crate) async fn revoke(State(shared): State<Arc<Shared>>, RawQuery(raw): RawQuery, body: Bytes) -> Response {
    let from_query = parse_params(raw.unwrap_or_default().as_bytes()).ok().and_then(|q| q.get("token").cloned());
    let token = from_query.or_else(|| parse_params(&body).ok().and_then(|f| f.get("token").cloned()));
    let Some(token) = token else {
        return OAuthError::invalid_request("Missing required parameter: token").into_response();
    };
    let mut world = shared.world();
    let oauth = &mut world.google.oauth;
    let owner = oauth
        .access
        .get(&token)
        .map(|a| (a.email.clone(), a.client_id.clone()))
        .or_else(|| oauth.refresh.get(&token).map(|r| (r.email.clone(), r.client_id.clone())));
    match owner {
        Some((email, client)) => {
            oauth.revoke_grant(&email, &client);
            (StatusCode::OK, Json(json!({}))).into_response()
        }
        None => OAuthError::new(400, "invalid_token", "Token expired or revoked").into_response(),
    }
}

/// An authenticated Calendar API caller.
#[derive(Debug, Clone)]
pub(crate) struct GoogleAuth {
    pub email: String,
    scopes: Arc<[String]>,
}

impl GoogleAuth {
    /// Passes when the token holds any of `accepted` (short names below the scope prefix).
    pub(crate) fn require(&self, accepted: &[&str]) -> Result<(), ApiError> {
        let ok =
            self.scopes.iter().any(|s| s.strip_prefix(SCOPE_PREFIX).is_some_and(|short| accepted.contains(&short)));
        if ok { Ok(()) } else { Err(ApiError::insufficient_scope()) }
    }

    fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

impl FromRequestParts<Arc<Shared>> for GoogleAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(ApiError::login_required)?;
        let now = shared.clock.now_ms();
        let world = shared.world();
        let access =
            world.google.oauth.access.get(token).filter(|a| a.expires_ms > now).ok_or_else(ApiError::unauthorized)?;
        Ok(GoogleAuth { email: access.email.clone(), scopes: access.scopes.clone() })
    }
}

/// OpenID userinfo. The calendar-only way to learn the account e-mail is the primary
/// calendar's id (`GET /calendar/v3/calendars/primary`); this endpoint needs `openid`,
/// `email` or `profile` and returns `email` only with the email scope.
pub(crate) async fn userinfo(State(shared): State<Arc<Shared>>, auth: Result<GoogleAuth, ApiError>) -> Response {
    let auth = match auth {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let email_scope = format!("{SCOPE_PREFIX}userinfo.email");
    let profile_scope = format!("{SCOPE_PREFIX}userinfo.profile");
    if !(auth.has("openid") || auth.has(&email_scope) || auth.has(&profile_scope)) {
        return ApiError::insufficient_scope().into_response();
    }
    let world = shared.world();
    let sub = world.google.accounts.get(&auth.email).map(|a| a.sub.clone()).unwrap_or_default();
    let mut body: Value = json!({"sub": sub});
    if auth.has(&email_scope) {
        body["email"] = json!(auth.email);
        body["email_verified"] = json!(true);
    }
    Json(body).into_response()
}

/// The sandbox's own client, for writes it makes itself (sample events): its grant is
/// separate from every real client's, so those writes never widen what a client was granted.
const INTERNAL_CLIENT_ID: &str = "calsync-sandbox-internal";

/// A short-lived calendar token of the sandbox's own client (no refresh token).
pub(crate) fn mint_internal(world: &mut World, now_ms: i64, email: &str) -> String {
    let scopes = vec![format!("{SCOPE_PREFIX}calendar")];
    let World { rng, google, .. } = world;
    google.oauth.mint(rng, now_ms, email, INTERNAL_CLIENT_ID, &scopes, false).0
}

/// The control API's full-scope offline grant for the dev client.
pub(crate) fn mint_full_grant(world: &mut World, now_ms: i64, email: &str) -> (String, String) {
    let scopes: Vec<String> = ["openid", "userinfo.email", "calendar"]
        .iter()
        .map(|s| normalize_scope(s).unwrap_or_else(|| format!("{SCOPE_PREFIX}{s}")))
        .collect();
    let World { rng, google, .. } = world;
    let grant = google.oauth.grants.entry((email.to_owned(), DEV_CLIENT_ID.to_owned())).or_default();
    grant.scopes.extend(scopes.iter().cloned());
    grant.consented_ms = now_ms;
    let (access, refresh) = google.oauth.mint(rng, now_ms, email, DEV_CLIENT_ID, &scopes, true);
    (access, refresh.expect("requested"))
}
