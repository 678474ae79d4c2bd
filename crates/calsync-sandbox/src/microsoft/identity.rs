//! Microsoft identity platform v2.0: authorize (consent page or `sandbox_approve=1`) and
//! token (code redemption with PKCE, refresh with rotation) for any tenant alias, plus the
//! bearer-token check Graph calls go through.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{AadError, GraphError};
use super::{MsWorld, ensure_account};
use crate::html::{ConsentPage, error_page, render};
use crate::ids;
use crate::oauth::{
    CODE_TTL_MS, Pkce, bearer, client_credentials, parse_params, parse_pkce, pkce_matches, redirect_allowed, with_query,
};
use crate::state::{DEV_CLIENT_ID, DEV_CLIENT_SECRET, Shared, World};

const GRAPH: &str = "https://graph.microsoft.com/";
/// Refresh tokens die after 90 days without use.
const REFRESH_IDLE_MS: i64 = 90 * 24 * 3600 * 1000;
const OIDC: &[&str] = &["openid", "profile", "email", "offline_access"];
const GRAPH_SCOPES: &[&str] = &[
    "User.Read",
    "User.ReadBasic.All",
    "Calendars.Read",
    "Calendars.ReadWrite",
    "Calendars.Read.Shared",
    "Calendars.ReadWrite.Shared",
    "MailboxSettings.Read",
];

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Code {
    redirect_uri: String,
    email: String,
    scopes: Vec<String>,
    pkce: Option<Pkce>,
    expires_ms: i64,
    used: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Access {
    pub email: String,
    pub scopes: Arc<[String]>,
    pub expires_ms: i64,
    pub issued_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Refresh {
    email: String,
    scopes: Vec<String>,
    issued_ms: i64,
    last_used_ms: i64,
}

/// Tenant aliases: `common`, `organizations`, `consumers`, a GUID or a domain name.
fn valid_tenant(t: &str) -> bool {
    matches!(t, "common" | "organizations" | "consumers")
        || uuid::Uuid::parse_str(t).is_ok()
        || (t.contains('.') && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
}

/// Short Graph names (`Calendars.ReadWrite`) or full URLs; OIDC scopes as is.
fn normalize_scope(s: &str) -> Option<String> {
    if OIDC.contains(&s) {
        return Some(s.to_owned());
    }
    let short = s.strip_prefix(GRAPH).unwrap_or(s);
    GRAPH_SCOPES.iter().find(|k| k.eq_ignore_ascii_case(short)).map(|k| (*k).to_owned())
}

fn parse_scopes(raw: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for s in raw.split(' ').filter(|s| !s.is_empty()) {
        let n = normalize_scope(s)?;
        if !out.contains(&n) {
            out.push(n);
        }
    }
    (!out.is_empty()).then_some(out)
}

struct AuthzRequest {
    redirect_uri: String,
    scopes: Vec<String>,
    state: Option<String>,
    fragment: bool,
    login_hint: Option<String>,
    pkce: Option<Pkce>,
}

fn page(status: StatusCode, code: u32, text: &str) -> Response {
    error_page("Microsoft", status, &format!("AADSTS{code}"), text)
}

fn redirect(req: &AuthzRequest, pairs: &[(&str, &str)]) -> Response {
    let mut all: Vec<(&str, &str)> = pairs.to_vec();
    if let Some(s) = &req.state {
        all.push(("state", s));
    }
    let url = with_query(&req.redirect_uri, &all);
    let url = if req.fragment { url.replacen('?', "#", 1) } else { url };
    Redirect::to(&url).into_response()
}

fn parse_authz(shared: &Shared, tenant: &str, q: &HashMap<String, String>) -> Result<AuthzRequest, Response> {
    if !valid_tenant(tenant) {
        return Err(page(StatusCode::BAD_REQUEST, 90002, &format!("Tenant '{tenant}' not found.")));
    }
    if q.get("client_id").map(String::as_str) != Some(DEV_CLIENT_ID) {
        return Err(page(StatusCode::BAD_REQUEST, 700016, "Application was not found in the directory."));
    }
    let Some(redirect_uri) = q.get("redirect_uri").filter(|r| redirect_allowed(&shared.config, r)) else {
        return Err(page(
            StatusCode::BAD_REQUEST,
            50011,
            "The redirect URI specified in the request does not match the redirect URIs configured for the application.",
        ));
    };
    let fragment = match q.get("response_mode").map(String::as_str) {
        None | Some("query") => false,
        Some("fragment") => true,
        Some(other) => {
            return Err(page(
                StatusCode::BAD_REQUEST,
                900144,
                &format!("response_mode '{other}' is not supported by the sandbox."),
            ));
        }
    };
    let mut req = AuthzRequest {
        redirect_uri: redirect_uri.clone(),
        scopes: Vec::new(),
        state: q.get("state").cloned(),
        fragment,
        login_hint: q.get("login_hint").map(|s| s.to_ascii_lowercase()),
        pkce: None,
    };
    if q.get("response_type").map(String::as_str) != Some("code") {
        return Err(redirect(
            &req,
            &[
                ("error", "unsupported_response_type"),
                (
                    "error_description",
                    "AADSTS70005: The provided value for the input parameter 'response_type' is not allowed for this request.",
                ),
            ],
        ));
    }
    match q.get("scope").and_then(|s| parse_scopes(s)) {
        Some(s) => req.scopes = s,
        None => {
            return Err(redirect(
                &req,
                &[
                    ("error", "invalid_scope"),
                    (
                        "error_description",
                        "AADSTS70011: The provided value for the input parameter 'scope' is not valid.",
                    ),
                ],
            ));
        }
    }
    match parse_pkce(q) {
        Ok(p) => req.pkce = p,
        Err(e) => {
            return Err(redirect(&req, &[("error", "invalid_request"), ("error_description", &e)]));
        }
    }
    Ok(req)
}

fn approve(shared: &Shared, req: &AuthzRequest, email: &str, scopes: Vec<String>) -> Response {
    let now = shared.clock.now_ms();
    let mut world = shared.world();
    ensure_account(&mut world, email, "UTC", now);
    let code = ids::token(&mut world.rng, "1.AXEA", 120);
    world.microsoft.codes.insert(
        code.clone(),
        Code {
            redirect_uri: req.redirect_uri.clone(),
            email: email.to_owned(),
            scopes,
            pkce: req.pkce.clone(),
            expires_ms: now + CODE_TTL_MS,
            used: false,
        },
    );
    redirect(req, &[("code", &code)])
}

pub(crate) async fn authorize(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let Ok(q) = parse_params(raw.unwrap_or_default().as_bytes()) else {
        return page(StatusCode::BAD_REQUEST, 900144, "A parameter was specified more than once.");
    };
    let req = match parse_authz(&shared, &tenant, &q) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if q.get("sandbox_approve").map(String::as_str) == Some("1") {
        let Some(email) = req.login_hint.clone().filter(|e| e.contains('@')) else {
            return page(StatusCode::BAD_REQUEST, 900144, "sandbox_approve=1 needs login_hint=<email>");
        };
        let granted = match q.get("sandbox_grant_scopes").map(|s| parse_scopes(s)) {
            None => req.scopes.clone(),
            Some(Some(s)) if s.iter().all(|x| req.scopes.contains(x)) => s,
            Some(_) => {
                return page(StatusCode::BAD_REQUEST, 70011, "sandbox_grant_scopes must be a subset of scope");
            }
        };
        return approve(&shared, &req, &email, granted);
    }
    if q.get("prompt").map(String::as_str) == Some("none") {
        return redirect(
            &req,
            &[
                ("error", "interaction_required"),
                ("error_description", "AADSTS50058: A silent sign-in request was sent but no user is signed in."),
            ],
        );
    }
    let accounts = {
        let world = shared.world();
        let mut emails: Vec<String> = world.microsoft.accounts.keys().cloned().collect();
        emails.sort();
        emails.truncate(50);
        emails
            .into_iter()
            .map(|e| {
                let checked = req.login_hint.as_deref() == Some(e.as_str());
                (e, checked)
            })
            .collect()
    };
    let mut hidden: Vec<(String, String)> = q.into_iter().collect();
    hidden.sort();
    let action = shared.public_url(&format!("/microsoft/{tenant}/oauth2/v2.0/authorize"));
    render(
        StatusCode::OK,
        &ConsentPage {
            provider: "Microsoft",
            client_id: DEV_CLIENT_ID,
            action: &action,
            scopes: req.scopes.clone(),
            accounts,
            login_hint: req.login_hint.as_deref().unwrap_or_default(),
            hidden,
        },
    )
}

pub(crate) async fn consent(State(shared): State<Arc<Shared>>, Path(tenant): Path<String>, body: Bytes) -> Response {
    let mut q = HashMap::new();
    let mut granted_raw = Vec::new();
    for (k, v) in url::form_urlencoded::parse(&body) {
        if k == "grant_scope" {
            granted_raw.push(v.to_string());
        } else {
            q.insert(k.to_string(), v.to_string());
        }
    }
    let req = match parse_authz(&shared, &tenant, &q) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if q.get("decision").map(String::as_str) != Some("allow") {
        return redirect(
            &req,
            &[
                ("error", "access_denied"),
                ("error_description", "AADSTS65004: User declined to consent to access the app."),
            ],
        );
    }
    let email = q
        .get("new_account")
        .filter(|s| !s.trim().is_empty())
        .or_else(|| q.get("account"))
        .map(|s| s.trim().to_ascii_lowercase());
    let Some(email) = email.filter(|e| e.contains('@')) else {
        return page(StatusCode::BAD_REQUEST, 900144, "Choose an account.");
    };
    let granted: Vec<String> =
        granted_raw.iter().filter_map(|s| normalize_scope(s)).filter(|s| req.scopes.contains(s)).collect();
    if granted.is_empty() {
        return redirect(
            &req,
            &[
                ("error", "access_denied"),
                ("error_description", "AADSTS65004: User declined to consent to access the app."),
            ],
        );
    }
    let new_account = !shared.world().microsoft.accounts.contains_key(&email);
    let resp = approve(&shared, &req, &email, granted);
    if new_account {
        crate::samples::seed(&shared, crate::state::Provider::Microsoft, &email).await;
    }
    resp
}

/// Mints an access token (and a refresh token when `offline_access` was granted).
fn mint(world: &mut World, now_ms: i64, email: &str, scopes: &[String]) -> serde_json::Value {
    let World { rng, microsoft, .. } = world;
    // Access tokens live a random 60–90 minutes.
    let ttl: i64 = rng.random_range(3600..=5400);
    let account = microsoft.accounts.get(email).expect("account exists");
    let resource: Vec<&String> = scopes.iter().filter(|s| !OIDC.contains(&s.as_str())).collect();
    let scp = resource.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
    let claims = json!({
        "aud": "https://graph.microsoft.com", "iss": format!("https://sts.windows.net/{}/", account.tenant),
        "iat": now_ms / 1000, "nbf": now_ms / 1000, "exp": now_ms / 1000 + ttl,
        "scp": scp, "upn": email, "oid": account.id, "tid": account.tenant, "appid": DEV_CLIENT_ID,
        "jti": ids::token(rng, "", 12),
    });
    let access = ids::jwt_like(rng, &claims);
    let mut body = json!({
        "token_type": "Bearer", "scope": scp, "expires_in": ttl, "ext_expires_in": ttl, "access_token": access,
    });
    if scopes.iter().any(|s| s == "offline_access") {
        let rt = ids::token(rng, "1.AR", 180);
        microsoft.refresh.insert(
            rt.clone(),
            Refresh { email: email.to_owned(), scopes: scopes.to_vec(), issued_ms: now_ms, last_used_ms: now_ms },
        );
        body["refresh_token"] = json!(rt);
    }
    if scopes.iter().any(|s| s == "openid") {
        let id_claims = json!({
            "aud": DEV_CLIENT_ID, "iss": format!("https://login.microsoftonline.com/{}/v2.0", account.tenant),
            "iat": now_ms / 1000, "exp": now_ms / 1000 + 3600, "oid": account.id, "tid": account.tenant,
            "preferred_username": email, "sub": account.id,
        });
        body["id_token"] = json!(ids::jwt_like(rng, &id_claims));
    }
    microsoft.access.insert(
        access,
        Access {
            email: email.to_owned(),
            scopes: scopes.to_vec().into(),
            expires_ms: now_ms + ttl * 1000,
            issued_ms: now_ms,
        },
    );
    body
}

pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match token_inner(&shared, &tenant, &headers, &body) {
        Ok(v) => {
            let mut resp = Json(v).into_response();
            resp.headers_mut().insert(header::CACHE_CONTROL, "no-store, no-cache".parse().expect("static"));
            resp
        }
        Err(e) => e.into_response(),
    }
}

fn token_inner(shared: &Shared, tenant: &str, headers: &HeaderMap, body: &[u8]) -> Result<serde_json::Value, AadError> {
    if !valid_tenant(tenant) {
        return Err(AadError::new(400, "invalid_request", 90002, &format!("Tenant '{tenant}' not found.")));
    }
    let form = parse_params(body).map_err(|_| AadError::for_code(9002313))?;
    let (client_id, secret) = client_credentials(headers, &form);
    if client_id.as_deref() != Some(DEV_CLIENT_ID) {
        return Err(AadError::for_code(700016));
    }
    match secret.as_deref() {
        None => return Err(AadError::for_code(7000218)),
        Some(s) if s != DEV_CLIENT_SECRET => return Err(AadError::for_code(7000215)),
        Some(_) => {}
    }
    let param = |n: &str| form.get(n).ok_or_else(|| AadError::missing(n));
    let now = shared.clock.now_ms();
    let mut world = shared.world();
    match param("grant_type")?.as_str() {
        "authorization_code" => {
            let code_value = param("code")?;
            let redirect_uri = param("redirect_uri")?;
            let code = world.microsoft.codes.get_mut(code_value).ok_or_else(|| AadError::for_code(9002313))?;
            if code.used {
                return Err(AadError::for_code(54005));
            }
            if code.expires_ms <= now {
                return Err(AadError::for_code(70008));
            }
            if &code.redirect_uri != redirect_uri {
                return Err(AadError::for_code(50011));
            }
            if let Some(pkce) = &code.pkce {
                let ok = form.get("code_verifier").is_some_and(|v| pkce_matches(pkce, v));
                if !ok {
                    return Err(AadError::for_code(501481));
                }
            }
            code.used = true;
            let (email, scopes) = (code.email.clone(), code.scopes.clone());
            Ok(mint(&mut world, now, &email, &scopes))
        }
        "refresh_token" => {
            let token = param("refresh_token")?;
            let rt = world.microsoft.refresh.get(token).ok_or_else(|| AadError::for_code(9002313))?;
            let (email, mut scopes, issued, last) =
                (rt.email.clone(), rt.scopes.clone(), rt.issued_ms, rt.last_used_ms);
            let revoked_before = world.microsoft.accounts.get(&email).map_or(0, |a| a.revoked_before_ms);
            if issued < revoked_before {
                return Err(AadError::for_code(50173));
            }
            if now - last > REFRESH_IDLE_MS {
                return Err(AadError::for_code(700082));
            }
            if let Some(requested) = form.get("scope") {
                let requested = parse_scopes(requested).ok_or_else(|| AadError::for_code(70011))?;
                if requested.iter().any(|s| !scopes.contains(s) && s != "openid" && s != "profile") {
                    return Err(AadError::for_code(70000));
                }
                // offline_access is kept: the grant, not the request, decides rotation.
                let keep_offline = scopes.iter().any(|s| s == "offline_access");
                scopes = requested;
                if keep_offline && !scopes.iter().any(|s| s == "offline_access") {
                    scopes.push("offline_access".into());
                }
            }
            if let Some(rt) = world.microsoft.refresh.get_mut(token) {
                rt.last_used_ms = now;
            }
            // Rotation: a new refresh token every time; the old one stays valid.
            Ok(mint(&mut world, now, &email, &scopes))
        }
        other => Err(AadError::new(
            400,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

/// An authenticated Graph caller.
#[derive(Debug, Clone)]
pub(crate) struct GraphAuth {
    pub email: String,
    scopes: Arc<[String]>,
}

impl GraphAuth {
    pub(crate) fn require(&self, accepted: &[&str]) -> Result<(), GraphError> {
        if self.scopes.iter().any(|s| accepted.contains(&s.as_str())) {
            Ok(())
        } else {
            Err(GraphError::access_denied())
        }
    }

    /// The mailbox itself, for control-API actions that stand for what a person did in
    /// Outlook (no token involved).
    pub(crate) fn control(email: &str) -> Self {
        Self { email: email.to_owned(), scopes: Arc::from(vec!["Calendars.ReadWrite".to_owned()]) }
    }
}

/// Resolves a Graph bearer token to its mailbox, or the 401 Graph would answer.
pub(crate) fn authenticate(microsoft: &MsWorld, headers: &HeaderMap, now_ms: i64) -> Result<GraphAuth, GraphError> {
    let token = bearer(headers).ok_or_else(|| GraphError::unauthorized("Access token is empty."))?;
    let access = microsoft
        .access
        .get(token)
        .ok_or_else(|| GraphError::unauthorized("IDX14100: JWT is not well formed, there are no dots (.)."))?;
    if access.expires_ms <= now_ms {
        return Err(GraphError::unauthorized("Lifetime validation failed, the token is expired."));
    }
    let revoked_before = microsoft.accounts.get(&access.email).map_or(0, |a| a.revoked_before_ms);
    if access.issued_ms < revoked_before {
        return Err(GraphError::unauthorized("Access token has been revoked."));
    }
    Ok(GraphAuth { email: access.email.clone(), scopes: access.scopes.clone() })
}

impl FromRequestParts<Arc<Shared>> for GraphAuth {
    type Rejection = GraphError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, GraphError> {
        let now = shared.clock.now_ms();
        let world = shared.world();
        authenticate(&world.microsoft, &parts.headers, now)
    }
}

/// The control API's full-scope grant.
pub(crate) fn mint_full_grant(world: &mut World, now_ms: i64, email: &str) -> (String, String) {
    let scopes: Vec<String> = ["openid", "profile", "offline_access", "User.Read", "Calendars.ReadWrite"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let body = mint(world, now_ms, email, &scopes);
    (
        body["access_token"].as_str().unwrap_or_default().to_owned(),
        body["refresh_token"].as_str().unwrap_or_default().to_owned(),
    )
}
