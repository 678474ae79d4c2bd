//! Pieces of the OAuth 2.0 code flow shared by the Google and Microsoft emulations.

use std::collections::HashMap;

use axum::http::HeaderMap;
use data_encoding::{BASE64, BASE64URL_NOPAD};
use sha2::{Digest, Sha256};

use crate::SandboxConfig;

/// Authorization codes live ten minutes (Google leaves it undocumented; Microsoft says ~10).
pub(crate) const CODE_TTL_MS: i64 = 10 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum PkceMethod {
    S256,
    Plain,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Pkce {
    pub challenge: String,
    pub method: PkceMethod,
}

/// Parses `code_challenge` / `code_challenge_method`. `default_plain`: Microsoft treats a
/// missing method as `plain`; Google does too. Err carries the message for the error page.
pub(crate) fn parse_pkce(q: &HashMap<String, String>) -> Result<Option<Pkce>, String> {
    let method = q.get("code_challenge_method").map(String::as_str);
    let Some(challenge) = q.get("code_challenge") else {
        return match method {
            Some(_) => Err("code_challenge_method without code_challenge".into()),
            None => Ok(None),
        };
    };
    let method = match method {
        None | Some("plain") => PkceMethod::Plain,
        Some("S256") => PkceMethod::S256,
        Some(other) => return Err(format!("Invalid code_challenge_method: {other}")),
    };
    if !valid_verifier_syntax(challenge) {
        return Err("Invalid code_challenge".into());
    }
    Ok(Some(Pkce { challenge: challenge.clone(), method }))
}

/// RFC 7636: 43–128 characters of `[A-Za-z0-9-._~]`.
fn valid_verifier_syntax(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

pub(crate) fn pkce_matches(pkce: &Pkce, verifier: &str) -> bool {
    if !valid_verifier_syntax(verifier) {
        return false;
    }
    match pkce.method {
        PkceMethod::Plain => pkce.challenge == verifier,
        PkceMethod::S256 => BASE64URL_NOPAD.encode(Sha256::digest(verifier.as_bytes()).as_slice()) == pkce.challenge,
    }
}

/// The dev client accepts any loopback redirect (any port, any path) plus configured extras.
/// The authorize and token requests must still carry the identical string.
pub(crate) fn redirect_allowed(config: &SandboxConfig, uri: &str) -> bool {
    if config.extra_redirect_uris.iter().any(|u| u == uri) {
        return true;
    }
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    url.scheme() == "http"
        && url.fragment().is_none()
        && matches!(
            url.host(),
            Some(url::Host::Domain("localhost"))
                | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
                | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
        )
        // The url crate lowercases hosts; the client's string must already be canonical,
        // as an exact-match provider would compare it.
        && uri.starts_with(&format!("http://{}", url.host_str().unwrap_or_default()))
}

/// `redirect_uri` with extra query parameters appended.
pub(crate) fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(uri).expect("redirect uri was validated");
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    url.to_string()
}

/// A form or query string as a map. Err names a parameter that appears twice, which both
/// providers reject.
pub(crate) fn parse_params(raw: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut map = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw) {
        if map.insert(k.to_string(), v.to_string()).is_some() {
            return Err(k.to_string());
        }
    }
    Ok(map)
}

/// Client credentials from the form or an HTTP Basic header (both providers accept either).
pub(crate) fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> (Option<String>, Option<String>) {
    if let Some(basic) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        && let Ok(decoded) = BASE64.decode(basic.trim().as_bytes())
        && let Ok(text) = String::from_utf8(decoded)
        && let Some((id, secret)) = text.split_once(':')
    {
        let dec = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        };
        return (Some(dec(id)), Some(dec(secret)));
    }
    (form.get("client_id").cloned(), form.get("client_secret").cloned())
}

/// The bearer token of a request, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}
