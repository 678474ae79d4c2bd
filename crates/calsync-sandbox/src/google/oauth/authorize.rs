//! The authorize endpoint: request validation (errors on Google's page until the redirect
//! URI is trusted, redirects after), the consent page and its form, and the redirect with a
//! code.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::*;

/// A validated authorize request.
struct AuthzRequest {
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    state: Option<String>,
    offline: bool,
    prompt_consent: bool,
    prompt_none: bool,
    include_granted: bool,
    login_hint: Option<String>,
    pkce: Option<Pkce>,
}

/// Errors before the redirect URI is trusted are shown on the page; later ones redirect.
enum AuthzError {
    Page(StatusCode, &'static str, String),
    Redirect(String),
}

impl AuthzError {
    fn into_response(self) -> Response {
        match self {
            AuthzError::Page(status, error, desc) => error_page("Google", status, error, &desc),
            AuthzError::Redirect(url) => Redirect::to(&url).into_response(),
        }
    }
}

fn parse_authz(shared: &Shared, q: &HashMap<String, String>) -> Result<AuthzRequest, AuthzError> {
    let page = |e: &'static str, d: String| AuthzError::Page(StatusCode::BAD_REQUEST, e, d);
    let missing = |p: &str| page("invalid_request", format!("Missing required parameter: {p}"));
    let client_id = q.get("client_id").ok_or_else(|| missing("client_id"))?;
    if client_id != DEV_CLIENT_ID {
        return Err(AuthzError::Page(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.".into(),
        ));
    }
    let redirect_uri = q.get("redirect_uri").ok_or_else(|| missing("redirect_uri"))?;
    if !redirect_allowed(&shared.config, redirect_uri) {
        return Err(page(
            "redirect_uri_mismatch",
            format!(
                "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 policy. redirect_uri={redirect_uri}"
            ),
        ));
    }
    let state = q.get("state").cloned();
    let response_type = q.get("response_type").ok_or_else(|| missing("response_type"))?;
    if response_type != "code" {
        let mut pairs = vec![("error", "unsupported_response_type")];
        if let Some(s) = &state {
            pairs.push(("state", s));
        }
        return Err(AuthzError::Redirect(with_query(redirect_uri, &pairs)));
    }
    let scopes = parse_scopes(q.get("scope").ok_or_else(|| missing("scope"))?)
        .map_err(|bad| page("invalid_scope", format!("Some requested scopes were invalid. {{invalid=[{bad}]}}")))?;
    if scopes.is_empty() {
        return Err(missing("scope"));
    }
    let offline = match q.get("access_type").map(String::as_str) {
        None | Some("online") => false,
        Some("offline") => true,
        Some(other) => {
            return Err(page("invalid_request", format!("Invalid access_type: {other}")));
        }
    };
    let prompts: Vec<&str> =
        q.get("prompt").map(|p| p.split(' ').filter(|s| !s.is_empty()).collect()).unwrap_or_default();
    if prompts.iter().any(|p| !matches!(*p, "none" | "consent" | "select_account"))
        || (prompts.contains(&"none") && prompts.len() > 1)
    {
        return Err(page("invalid_request", "Invalid prompt value.".into()));
    }
    let include_granted = match q.get("include_granted_scopes").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(page("invalid_request", "Invalid include_granted_scopes".into()));
        }
    };
    let pkce = parse_pkce(q).map_err(|e| page("invalid_request", e))?;
    Ok(AuthzRequest {
        client_id: client_id.clone(),
        redirect_uri: redirect_uri.clone(),
        scopes,
        state,
        offline,
        prompt_consent: prompts.contains(&"consent"),
        prompt_none: prompts.contains(&"none"),
        include_granted,
        login_hint: q.get("login_hint").map(|s| s.to_ascii_lowercase()),
        pkce,
    })
}

fn deny_redirect(req: &AuthzRequest, error: &str) -> Response {
    let mut pairs = vec![("error", error)];
    if let Some(s) = &req.state {
        pairs.push(("state", s));
    }
    Redirect::to(&with_query(&req.redirect_uri, &pairs)).into_response()
}

/// Records consent and redirects with a fresh code.
fn approve(shared: &Shared, req: &AuthzRequest, email: &str, granted: Vec<String>) -> Response {
    let now = shared.clock.now_ms();
    let mut world = shared.world();
    super::super::ensure_account(&mut world, email, "UTC", now);
    let World { rng, google, .. } = &mut *world;
    let key = (email.to_owned(), req.client_id.clone());
    let grant = google.oauth.grants.entry(key).or_default();
    let mut scopes: BTreeSet<String> = granted.into_iter().collect();
    if req.include_granted {
        scopes.extend(grant.scopes.iter().cloned());
    }
    grant.scopes.extend(scopes.iter().cloned());
    grant.consented_ms = now;
    let issue_refresh = req.offline && (!grant.refresh_issued || req.prompt_consent);
    let code = ids::token(rng, "4/0A", 60);
    google.oauth.codes.insert(
        code.clone(),
        Code {
            client_id: req.client_id.clone(),
            redirect_uri: req.redirect_uri.clone(),
            email: email.to_owned(),
            scopes: scopes.iter().cloned().collect(),
            pkce: req.pkce.clone(),
            expires_ms: now + CODE_TTL_MS,
            used: false,
            issue_refresh,
        },
    );
    let scope = scopes.into_iter().collect::<Vec<_>>().join(" ");
    let mut pairs = vec![("code", code.as_str()), ("scope", scope.as_str())];
    if let Some(s) = &req.state {
        pairs.push(("state", s));
    }
    Redirect::to(&with_query(&req.redirect_uri, &pairs)).into_response()
}

pub(crate) async fn authorize(State(shared): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> Response {
    let q = match parse_params(raw.unwrap_or_default().as_bytes()) {
        Ok(q) => q,
        Err(dup) => {
            return error_page(
                "Google",
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("Parameter specified more than once: {dup}"),
            );
        }
    };
    let req = match parse_authz(&shared, &q) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if q.get("sandbox_approve").map(String::as_str) == Some("1") {
        let Some(email) = req.login_hint.clone().filter(|e| e.contains('@')) else {
            return error_page(
                "Google",
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "sandbox_approve=1 needs login_hint=<email>",
            );
        };
        let granted = match q.get("sandbox_grant_scopes") {
            None => req.scopes.clone(),
            Some(subset) => match parse_scopes(subset) {
                Ok(s) if s.iter().all(|x| req.scopes.contains(x)) => s,
                _ => {
                    return error_page(
                        "Google",
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "sandbox_grant_scopes must be a subset of scope",
                    );
                }
            },
        };
        return approve(&shared, &req, &email, granted);
    }
    if req.prompt_none {
        // Silent approval only for a known account that already consented to every scope.
        let consented = req.login_hint.as_ref().and_then(|email| {
            let world = shared.world();
            let grant = world.google.oauth.grants.get(&(email.clone(), req.client_id.clone()))?;
            req.scopes.iter().all(|s| grant.scopes.contains(s)).then(|| email.clone())
        });
        return match consented {
            Some(email) => {
                let scopes = req.scopes.clone();
                approve(&shared, &req, &email, scopes)
            }
            None if req.login_hint.is_none() => deny_redirect(&req, "login_required"),
            None => deny_redirect(&req, "consent_required"),
        };
    }
    let accounts = {
        let world = shared.world();
        let mut emails: Vec<String> = world.google.accounts.keys().cloned().collect();
        emails.sort();
        emails.truncate(50);
        if let Some(h) = &req.login_hint
            && !emails.contains(h)
            && world.google.accounts.contains_key(h)
        {
            emails.insert(0, h.clone());
        }
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
    let action = shared.public_url("/google/o/oauth2/v2/auth");
    render(
        StatusCode::OK,
        &ConsentPage {
            provider: "Google",
            client_id: &req.client_id,
            action: &action,
            scopes: req.scopes.clone(),
            accounts,
            login_hint: req.login_hint.as_deref().unwrap_or_default(),
            hidden,
        },
    )
}

/// The consent form's POST: the original parameters plus the user's choices.
pub(crate) async fn consent(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let mut q = HashMap::new();
    let mut granted_raw = Vec::new();
    for (k, v) in url::form_urlencoded::parse(&body) {
        if k == "grant_scope" {
            granted_raw.push(v.to_string());
        } else {
            q.insert(k.to_string(), v.to_string());
        }
    }
    let req = match parse_authz(&shared, &q) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if q.get("decision").map(String::as_str) != Some("allow") {
        return deny_redirect(&req, "access_denied");
    }
    let email = q
        .get("new_account")
        .filter(|s| !s.trim().is_empty())
        .or_else(|| q.get("account"))
        .map(|s| s.trim().to_ascii_lowercase());
    let Some(email) = email.filter(|e| e.contains('@')) else {
        return error_page("Google", StatusCode::BAD_REQUEST, "invalid_request", "Choose an account.");
    };
    let granted: Vec<String> =
        granted_raw.iter().filter_map(|s| normalize_scope(s)).filter(|s| req.scopes.contains(s)).collect();
    if granted.is_empty() {
        return deny_redirect(&req, "access_denied");
    }
    let new_account = !shared.world().google.accounts.contains_key(&email);
    let resp = approve(&shared, &req, &email, granted);
    if new_account {
        crate::samples::seed(&shared, crate::state::Provider::Google, &email).await;
    }
    resp
}
