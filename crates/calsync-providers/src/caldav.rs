//! CalDAV (RFC 4791) account discovery: from a server address and credentials to the user's
//! calendars, following RFC 6764 (`/.well-known/caldav`), RFC 5397 (`current-user-principal`)
//! and `calendar-home-set`, which may live on another host (iCloud's partition hosts): the URLs
//! found are absolute and used as they are from then on.
//!
//! Requests are `PROPFIND`s with Basic authentication (over TLS in production); redirects are
//! followed here, a few at most, keeping the method and the credentials. Replies are `207
//! Multi-Status` documents, read with roxmltree.

use crate::ProviderError;
use reqwest::{Method, StatusCode, Url};

const DAV: &str = "DAV:";
const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
const CS: &str = "http://calendarserver.org/ns/";
const APPLE: &str = "http://apple.com/ns/ical/";

/// Redirects followed for one request at most.
const MAX_REDIRECTS: usize = 5;

/// Where a user's calendars are, and what they are.
#[derive(Debug, Clone, PartialEq)]
pub struct DavAccount {
    pub principal: Url,
    pub home: Url,
    pub calendars: Vec<DavCalendar>,
}

/// One calendar collection of the home set.
#[derive(Debug, Clone, PartialEq)]
pub struct DavCalendar {
    pub href: Url,
    pub name: String,
    /// `#RRGGBB` or `#RRGGBBAA` as the server gives it (Apple's calendar-color).
    pub color: Option<String>,
    pub ctag: Option<String>,
    pub sync_token: Option<String>,
    /// Whether it holds events (`supported-calendar-component-set` has VEVENT, or says nothing).
    pub events: bool,
    /// Whether the user may write events into it.
    pub writable: bool,
    /// Whether it answers `sync-collection` (RFC 6578); without it, ctag and etag listing.
    pub sync_collection: bool,
    /// The calendar's zone (`calendar-timezone-id`, or the `VTIMEZONE` of `calendar-timezone`):
    /// where floating times in it are read.
    pub time_zone: Option<chrono_tz::Tz>,
}

/// The credentials of a CalDAV account.
#[derive(Clone)]
pub struct DavAuth<'a> {
    pub username: &'a str,
    pub password: &'a str,
}

impl std::fmt::Debug for DavAuth<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DavAuth").field("username", &self.username).field("password", &"[redacted]").finish()
    }
}

/// What the sealed token of a CalDAV connection holds: where the account is and how to sign in.
/// The engine passes it around as the connection's access token (see [`DavCredentials::token`]).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct DavCredentials {
    pub principal: String,
    /// The calendar home: where the calendars are listed (on iCloud, the partition host).
    pub home: String,
    pub username: String,
    pub password: String,
}

impl DavCredentials {
    /// The sign-in to keep for an account found by [`discover`].
    pub fn of(account: &DavAccount, username: &str, password: &str) -> Self {
        Self {
            principal: account.principal.to_string(),
            home: account.home.to_string(),
            username: username.to_owned(),
            password: password.to_owned(),
        }
    }

    /// The credentials as the one string the engine's provider calls take.
    pub fn token(&self) -> String {
        serde_json::to_string(self).expect("plain strings serialize")
    }

    pub fn read(token: &str) -> Result<Self, ProviderError> {
        serde_json::from_str(token).map_err(|_| ProviderError::Reauthorize {
            kind: crate::ReauthKind::Expired,
            reason: "the stored CalDAV sign-in cannot be read; connect the calendar again".into(),
        })
    }

    pub fn auth(&self) -> DavAuth<'_> {
        DavAuth { username: &self.username, password: &self.password }
    }
}

impl std::fmt::Debug for DavCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DavCredentials")
            .field("principal", &self.principal)
            .field("home", &self.home)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// Finds the user's calendars from `server` (a bare host, the server's root, or a DAV URL).
/// A wrong user name or password is [`ProviderError::Reauthorize`].
pub async fn discover(http: &reqwest::Client, server: &str, auth: &DavAuth<'_>) -> Result<DavAccount, ProviderError> {
    let base = server_url(server)?;
    // The well-known address first (it redirects to the context root); the given URL itself
    // when the server has none.
    let mut principal = None;
    let candidates = [base.join("/.well-known/caldav").map_err(bad_url)?, base.clone()];
    for start in candidates {
        match propfind(http, &start, auth, 0, "<d:prop><d:current-user-principal/></d:prop>").await {
            Ok((at, doc)) => {
                if let Some(href) = first_href(&doc, DAV, "current-user-principal") {
                    principal = Some(at.join(&href).map_err(bad_url)?);
                    break;
                }
            }
            Err(ProviderError::NotFound | ProviderError::Permanent { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    let principal = principal.ok_or_else(|| ProviderError::Permanent {
        status: None,
        reason:
            "this server does not say where your calendars are (no current-user-principal): check the server address"
                .into(),
    })?;
    let (at, doc) = propfind(http, &principal, auth, 0, "<d:prop><c:calendar-home-set/></d:prop>").await?;
    let home = first_href(&doc, CALDAV, "calendar-home-set").ok_or_else(|| ProviderError::Permanent {
        status: None,
        reason: "this account has no calendar home (calendar-home-set): is it a CalDAV account?".into(),
    })?;
    let home = at.join(&home).map_err(bad_url)?;
    let calendars = calendars_in(http, &home, auth).await?;
    Ok(DavAccount { principal, home, calendars })
}

/// The calendar collections of a calendar home (`Depth: 1`).
pub async fn calendars_in(
    http: &reqwest::Client,
    home: &Url,
    auth: &DavAuth<'_>,
) -> Result<Vec<DavCalendar>, ProviderError> {
    let props = "<d:prop><d:resourcetype/><d:displayname/><cs:getctag/><d:sync-token/>\
                 <c:supported-calendar-component-set/><apple:calendar-color/><d:current-user-privilege-set/>\
                 <d:supported-report-set/><c:calendar-timezone/><c:calendar-timezone-id/></d:prop>";
    let (at, doc) = propfind(http, home, auth, 1, props).await?;
    calendars(&doc, &at)
}

/// One calendar's zone (see [`DavCalendar::time_zone`]).
pub async fn calendar_zone(
    http: &reqwest::Client,
    calendar: &Url,
    auth: &DavAuth<'_>,
) -> Result<Option<chrono_tz::Tz>, ProviderError> {
    let (_, doc) =
        propfind(http, calendar, auth, 0, "<d:prop><c:calendar-timezone/><c:calendar-timezone-id/></d:prop>").await?;
    let doc = parse(&doc)?;
    let text = |name: &str| {
        doc.descendants().find(|n| n.has_tag_name((CALDAV, name))).and_then(|n| n.text()).map(|t| t.trim().to_owned())
    };
    Ok(text("calendar-timezone-id")
        .and_then(|z| z.parse().ok())
        .or_else(|| text("calendar-timezone").and_then(|v| vtimezone_id(&v))))
}

/// One calendar's change tag (`getctag`, else its `sync-token`): what says whether anything in
/// it changed, for servers without `sync-collection`.
pub async fn ctag(http: &reqwest::Client, calendar: &Url, auth: &DavAuth<'_>) -> Result<String, ProviderError> {
    let (_, doc) = propfind(http, calendar, auth, 0, "<d:prop><cs:getctag/><d:sync-token/></d:prop>").await?;
    let doc = parse(&doc)?;
    let text = |ns: &str, name: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name((ns, name)))
            .and_then(|n| n.text())
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
    };
    text(CS, "getctag").or_else(|| text(DAV, "sync-token")).ok_or_else(|| ProviderError::Permanent {
        status: None,
        reason: "the calendar has neither a ctag nor a sync-token: calsync cannot tell when it changes".into(),
    })
}

/// Every member of a calendar with its ETag (`PROPFIND Depth: 1`), for servers without
/// `sync-collection`.
pub async fn members(
    http: &reqwest::Client,
    calendar: &Url,
    auth: &DavAuth<'_>,
) -> Result<Vec<(Url, String)>, ProviderError> {
    let (at, doc) = propfind(http, calendar, auth, 1, "<d:prop><d:getetag/><d:resourcetype/></d:prop>").await?;
    let doc = parse(&doc)?;
    let mut out = Vec::new();
    for response in doc.descendants().filter(|n| n.has_tag_name((DAV, "response"))) {
        let Some(href) = response.children().find(|n| n.has_tag_name((DAV, "href"))).and_then(|h| h.text()) else {
            continue;
        };
        let url = at.join(href.trim()).map_err(bad_url)?;
        if same_collection(&url, calendar) {
            continue;
        }
        let collection = response.descendants().any(|n| n.has_tag_name((DAV, "collection")));
        let etag = response.descendants().find(|n| n.has_tag_name((DAV, "getetag"))).and_then(|e| e.text());
        if let (false, Some(etag)) = (collection, etag) {
            out.push((url, etag.trim().to_owned()));
        }
    }
    Ok(out)
}

/// A resource's ETag as `PROPFIND` gives it (`getetag`: always the strong one).
async fn strong_etag(http: &reqwest::Client, href: &Url, auth: &DavAuth<'_>) -> Result<String, ProviderError> {
    let (_, doc) = propfind(http, href, auth, 0, "<d:prop><d:getetag/></d:prop>").await?;
    let doc = parse(&doc)?;
    doc.descendants()
        .find(|n| n.has_tag_name((DAV, "getetag")))
        .and_then(|n| n.text())
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty() && !t.starts_with("W/"))
        .ok_or_else(|| ProviderError::Permanent {
            status: None,
            reason: "the server gives no strong ETag for an event: calsync cannot write it safely".into(),
        })
}

/// One calendar object resource: its text and ETag, or `None` when there is none at `href`.
pub async fn get(
    http: &reqwest::Client,
    href: &Url,
    auth: &DavAuth<'_>,
) -> Result<Option<(String, String)>, ProviderError> {
    let resp = http
        .get(href.clone())
        .basic_auth(auth.username, Some(auth.password))
        .send()
        .await
        .map_err(ProviderError::transport)?;
    match resp.status() {
        StatusCode::NOT_FOUND | StatusCode::GONE => Ok(None),
        s if s.is_success() => {
            let etag = resp.headers().get(reqwest::header::ETAG).and_then(|e| e.to_str().ok()).map(str::to_owned);
            let text = resp.text().await.map_err(ProviderError::transport)?;
            // A weak ETag (a proxy that compresses answers makes one) never matches If-Match:
            // the resource's own, strong one is asked for.
            let etag = match etag {
                Some(e) if !e.starts_with("W/") => e,
                _ => strong_etag(http, href, auth).await?,
            };
            Ok(Some((text, etag)))
        }
        s => Err(classify(s, resp.headers(), "GET")),
    }
}

/// What changed in a calendar since a sync token (RFC 6578).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncReply {
    /// Members added or changed: href and ETag.
    pub changed: Vec<(Url, String)>,
    /// Members removed.
    pub removed: Vec<Url>,
    /// The token to ask from next time (or to continue with, when `truncated`).
    pub token: String,
    /// The server stopped early (507 on the collection itself): ask again with `token`.
    pub truncated: bool,
}

/// One `sync-collection` report (`Depth: 0`). Without `token`, every member is listed. A token
/// the server no longer knows (403, 409 or 412 naming `valid-sync-token`, or a 400 some servers
/// send) is [`ProviderError::CursorExpired`]: list in full again.
pub async fn sync_collection(
    http: &reqwest::Client,
    calendar: &Url,
    auth: &DavAuth<'_>,
    token: Option<&str>,
) -> Result<SyncReply, ProviderError> {
    let token_xml = match token {
        Some(t) => format!("<d:sync-token>{}</d:sync-token>", xml_escape(t)),
        None => "<d:sync-token/>".to_owned(),
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<d:sync-collection xmlns:d=\"{DAV}\">{token_xml}\
         <d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"
    );
    let resp = report(http, calendar, auth, 0, body).await?;
    let status = resp.status();
    let text = resp.text().await.map_err(ProviderError::transport)?;
    if status != StatusCode::MULTI_STATUS {
        let dead = token.is_some()
            && (matches!(status.as_u16(), 403 | 409 | 412) && text.contains("valid-sync-token")
                || status == StatusCode::BAD_REQUEST);
        if dead {
            return Err(ProviderError::CursorExpired);
        }
        return Err(refused(status, "sync-collection"));
    }
    sync_reply(&text, calendar)
}

/// A `sync-collection` multistatus, read.
fn sync_reply(text: &str, calendar: &Url) -> Result<SyncReply, ProviderError> {
    let doc = parse(text)?;
    let mut reply = SyncReply::default();
    for response in doc.descendants().filter(|n| n.has_tag_name((DAV, "response"))) {
        let Some(href) = response.children().find(|n| n.has_tag_name((DAV, "href"))).and_then(|h| h.text()) else {
            continue;
        };
        let url = calendar.join(href.trim()).map_err(bad_url)?;
        let own_status = response
            .children()
            .find(|n| n.has_tag_name((DAV, "status")))
            .and_then(|s| s.text())
            .and_then(|s| s.split_whitespace().nth(1).map(str::to_owned));
        if same_collection(&url, calendar) {
            // The collection itself: 507 says the listing was cut short (iCloud also lists it
            // among the changes: ignored).
            reply.truncated |= own_status.as_deref() == Some("507");
            continue;
        }
        if own_status.as_deref() == Some("404") {
            reply.removed.push(url);
            continue;
        }
        let etag = response
            .descendants()
            .find(|n| n.has_tag_name((DAV, "getetag")))
            .and_then(|e| e.text())
            .map(|t| t.trim().to_owned())
            .unwrap_or_default();
        reply.changed.push((url, etag));
    }
    reply.token = doc
        .root_element()
        .children()
        .find(|n| n.has_tag_name((DAV, "sync-token")))
        .and_then(|t| t.text())
        .map(|t| t.trim().to_owned())
        .ok_or_else(|| ProviderError::Permanent {
            status: None,
            reason: "sync-collection answered without a sync-token".into(),
        })?;
    Ok(reply)
}

/// The iCalendar text and ETag of each href (`calendar-multiget`); hrefs the server no longer
/// has (a 404 for a member just listed is normal) are left out.
pub async fn multiget(
    http: &reqwest::Client,
    calendar: &Url,
    auth: &DavAuth<'_>,
    hrefs: &[Url],
) -> Result<Vec<(Url, String, String)>, ProviderError> {
    let mut out = Vec::new();
    // Servers take 50 to 100 hrefs per request comfortably.
    for chunk in hrefs.chunks(50) {
        let list: String = chunk.iter().map(|h| format!("<d:href>{}</d:href>", xml_escape(h.path()))).collect();
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<c:calendar-multiget xmlns:d=\"{DAV}\" xmlns:c=\"{CALDAV}\">\
             <d:prop><d:getetag/><c:calendar-data/></d:prop>{list}</c:calendar-multiget>"
        );
        let resp = report(http, calendar, auth, 1, body).await?;
        let status = resp.status();
        if status != StatusCode::MULTI_STATUS {
            return Err(refused(status, "calendar-multiget"));
        }
        let text = resp.text().await.map_err(ProviderError::transport)?;
        let doc = parse(&text)?;
        for response in doc.descendants().filter(|n| n.has_tag_name((DAV, "response"))) {
            let Some(href) = response.children().find(|n| n.has_tag_name((DAV, "href"))).and_then(|h| h.text()) else {
                continue;
            };
            let found = response.children().filter(|n| n.has_tag_name((DAV, "propstat"))).find(|ps| ok_propstat(*ps));
            let Some(ps) = found else { continue };
            let data = ps.descendants().find(|n| n.has_tag_name((CALDAV, "calendar-data"))).and_then(|d| d.text());
            let etag = ps.descendants().find(|n| n.has_tag_name((DAV, "getetag"))).and_then(|e| e.text());
            if let (Some(data), Some(etag)) = (data, etag) {
                out.push((calendar.join(href.trim()).map_err(bad_url)?, etag.trim().to_owned(), data.to_owned()));
            }
        }
    }
    Ok(out)
}

/// A write's precondition.
#[derive(Debug, Clone, Copy)]
pub enum Precondition<'a> {
    /// Create only: the name must be free (`If-None-Match: *`), so a retry never makes two.
    Create,
    /// Replace only this version (`If-Match`).
    Match(&'a str),
}

/// Stores an iCalendar object at `href`. Answers its new ETag, or `None` when the server did not
/// give one (it changed the object while storing it: read it back before the next conditional
/// write). A lost precondition is [`ProviderError::PreconditionFailed`].
pub async fn put(
    http: &reqwest::Client,
    href: &Url,
    auth: &DavAuth<'_>,
    ics: &str,
    pre: Precondition<'_>,
) -> Result<Option<String>, ProviderError> {
    let rb = http
        .put(href.clone())
        .basic_auth(auth.username, Some(auth.password))
        .header(reqwest::header::CONTENT_TYPE, "text/calendar; charset=utf-8")
        .body(ics.to_owned());
    let rb = match pre {
        Precondition::Create => rb.header(reqwest::header::IF_NONE_MATCH, "*"),
        Precondition::Match(etag) => rb.header(reqwest::header::IF_MATCH, etag),
    };
    let resp = rb.send().await.map_err(ProviderError::transport)?;
    match resp.status() {
        s if s.is_success() => {
            Ok(resp.headers().get(reqwest::header::ETAG).and_then(|e| e.to_str().ok()).map(str::to_owned))
        }
        StatusCode::PRECONDITION_FAILED => Err(ProviderError::PreconditionFailed),
        s => Err(classify(s, resp.headers(), "PUT")),
    }
}

/// Deletes the object at `href` if it is still at `etag`; one already gone counts as deleted.
pub async fn delete(http: &reqwest::Client, href: &Url, auth: &DavAuth<'_>, etag: &str) -> Result<(), ProviderError> {
    let resp = http
        .delete(href.clone())
        .basic_auth(auth.username, Some(auth.password))
        .header(reqwest::header::IF_MATCH, etag)
        .send()
        .await
        .map_err(ProviderError::transport)?;
    match resp.status() {
        s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
        StatusCode::PRECONDITION_FAILED => Err(ProviderError::PreconditionFailed),
        s => Err(classify(s, resp.headers(), "DELETE")),
    }
}

async fn report(
    http: &reqwest::Client,
    url: &Url,
    auth: &DavAuth<'_>,
    depth: u8,
    body: String,
) -> Result<reqwest::Response, ProviderError> {
    let resp = http
        .request(Method::from_bytes(b"REPORT").expect("a valid method"), url.clone())
        .basic_auth(auth.username, Some(auth.password))
        .header("Depth", depth.to_string())
        .header(reqwest::header::CONTENT_TYPE, "application/xml; charset=utf-8")
        .body(body)
        .send()
        .await
        .map_err(ProviderError::transport)?;
    match resp.status() {
        StatusCode::UNAUTHORIZED => Err(wrong_password()),
        StatusCode::NOT_FOUND => Err(ProviderError::NotFound),
        // 501: the server has no such report (sync-collection): the caller falls back.
        s if s.is_server_error() && s != StatusCode::INSUFFICIENT_STORAGE && s != StatusCode::NOT_IMPLEMENTED => {
            Err(classify(s, resp.headers(), "REPORT"))
        }
        _ => Ok(resp),
    }
}

fn wrong_password() -> ProviderError {
    ProviderError::Reauthorize {
        kind: crate::ReauthKind::Revoked,
        reason: "the server refused the user name or password (for iCloud and Fastmail, use an app-specific password)"
            .into(),
    }
}

fn classify(status: StatusCode, headers: &reqwest::header::HeaderMap, what: &str) -> ProviderError {
    match status {
        StatusCode::UNAUTHORIZED => wrong_password(),
        StatusCode::NOT_FOUND => ProviderError::NotFound,
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => ProviderError::Retryable {
            after: crate::error::retry_after(headers),
            reason: format!("the server answered {} to {what}", s.as_u16()),
        },
        s => refused(s, what),
    }
}

fn refused(status: StatusCode, what: &str) -> ProviderError {
    ProviderError::Permanent {
        status: Some(status.as_u16()),
        reason: format!("the server answered {} to {what}", status.as_u16()),
    }
}

/// The same collection, whatever the trailing slash.
fn same_collection(a: &Url, b: &Url) -> bool {
    a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path().trim_end_matches('/') == b.path().trim_end_matches('/')
}

/// The zone a `calendar-timezone` value (a VCALENDAR with one VTIMEZONE) names, when it is an
/// IANA zone.
fn vtimezone_id(vcalendar: &str) -> Option<chrono_tz::Tz> {
    vcalendar
        .lines()
        .find_map(|l| l.trim().strip_prefix("TZID:").or_else(|| l.trim().strip_prefix("X-WR-TIMEZONE:")))
        .and_then(|z| z.trim().parse().ok())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn bad_url(e: url::ParseError) -> ProviderError {
    ProviderError::Permanent { status: None, reason: format!("the server gave an address that is not a URL: {e}") }
}

/// A CalDAV server's address as given (a bare host, a root or a DAV URL), read as an http(s)
/// URL; `https://` is assumed when no scheme is given.
pub fn server_url(server: &str) -> Result<Url, ProviderError> {
    let s = server.trim();
    let with_scheme = if s.contains("://") { s.to_owned() } else { format!("https://{s}") };
    let url = Url::parse(&with_scheme).map_err(|e| ProviderError::Permanent {
        status: None,
        reason: format!("{s:?} is not a server address: {e}"),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ProviderError::Permanent {
            status: None,
            reason: format!("{s:?} is not an http(s) server address"),
        });
    }
    Ok(url)
}

/// A `PROPFIND` with `depth`, following redirects; answers the URL that replied and its document.
async fn propfind(
    http: &reqwest::Client,
    url: &Url,
    auth: &DavAuth<'_>,
    depth: u8,
    prop: &str,
) -> Result<(Url, String), ProviderError> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<d:propfind xmlns:d=\"{DAV}\" xmlns:c=\"{CALDAV}\" \
         xmlns:cs=\"{CS}\" xmlns:apple=\"{APPLE}\">{prop}</d:propfind>"
    );
    let method = Method::from_bytes(b"PROPFIND").expect("a valid method");
    let mut at = url.clone();
    for _ in 0..=MAX_REDIRECTS {
        let resp = http
            .request(method.clone(), at.clone())
            .basic_auth(auth.username, Some(auth.password))
            .header("Depth", depth.to_string())
            .header(reqwest::header::CONTENT_TYPE, "application/xml; charset=utf-8")
            .body(body.clone())
            .send()
            .await
            .map_err(ProviderError::transport)?;
        let status = resp.status();
        if status.is_redirection() {
            let location =
                resp.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok()).ok_or_else(|| {
                    ProviderError::Permanent {
                        status: Some(status.as_u16()),
                        reason: "a redirect without a Location".into(),
                    }
                })?;
            let next = at.join(location).map_err(bad_url)?;
            // The password goes with the request: never from https down to plain http.
            if at.scheme() == "https" && next.scheme() != "https" {
                return Err(ProviderError::Permanent {
                    status: Some(status.as_u16()),
                    reason: "the server redirects from https to plain http; calsync does not send the password there"
                        .into(),
                });
            }
            at = next;
            continue;
        }
        return match status {
            StatusCode::MULTI_STATUS => Ok((at, resp.text().await.map_err(ProviderError::transport)?)),
            s => Err(classify(s, resp.headers(), "PROPFIND")),
        };
    }
    Err(ProviderError::Permanent { status: None, reason: "too many redirects".into() })
}

fn parse(doc: &str) -> Result<roxmltree::Document<'_>, ProviderError> {
    roxmltree::Document::parse(doc).map_err(|e| ProviderError::Permanent {
        status: None,
        reason: format!("the server sent XML that cannot be read: {e}"),
    })
}

/// The `href` inside the first `ns:name` property of a multistatus document.
fn first_href(doc: &str, ns: &str, name: &str) -> Option<String> {
    let doc = parse(doc).ok()?;
    doc.descendants()
        .find(|n| n.has_tag_name((ns, name)))
        .and_then(|p| p.descendants().find(|n| n.has_tag_name((DAV, "href"))))
        .and_then(|h| h.text())
        .map(|t| t.trim().to_owned())
}

/// Whether a `propstat` says `200`.
fn ok_propstat(propstat: roxmltree::Node<'_, '_>) -> bool {
    propstat
        .children()
        .find(|n| n.has_tag_name((DAV, "status")))
        .and_then(|s| s.text())
        .is_some_and(|s| s.split_whitespace().nth(1) == Some("200"))
}

/// The calendar collections of a `Depth: 1` listing of the home set.
fn calendars(doc: &str, at: &Url) -> Result<Vec<DavCalendar>, ProviderError> {
    let doc = parse(doc)?;
    let mut out = Vec::new();
    for response in doc.descendants().filter(|n| n.has_tag_name((DAV, "response"))) {
        let Some(href) = response.children().find(|n| n.has_tag_name((DAV, "href"))).and_then(|h| h.text()) else {
            continue;
        };
        let props: Vec<roxmltree::Node<'_, '_>> = response
            .children()
            .filter(|n| n.has_tag_name((DAV, "propstat")) && ok_propstat(*n))
            .filter_map(|ps| ps.children().find(|n| n.has_tag_name((DAV, "prop"))))
            .flat_map(|p| p.children().filter(|c| c.is_element()))
            .collect();
        let prop = |ns: &str, name: &str| props.iter().find(|p| p.has_tag_name((ns, name))).copied();
        let text = |ns: &str, name: &str| {
            prop(ns, name).and_then(|p| p.text()).map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
        };
        let is_calendar =
            prop(DAV, "resourcetype").is_some_and(|r| r.children().any(|c| c.has_tag_name((CALDAV, "calendar"))));
        if !is_calendar {
            continue;
        }
        let events = prop(CALDAV, "supported-calendar-component-set").is_none_or(|set| {
            let comps: Vec<_> = set.children().filter(|c| c.has_tag_name((CALDAV, "comp"))).collect();
            comps.is_empty()
                || comps.iter().any(|c| c.attribute("name").is_some_and(|n| n.eq_ignore_ascii_case("VEVENT")))
        });
        let writable = prop(DAV, "current-user-privilege-set").is_none_or(|set| {
            set.descendants()
                .filter(|n| n.is_element() && n.tag_name().namespace() == Some(DAV))
                .any(|n| matches!(n.tag_name().name(), "write" | "write-content" | "all"))
        });
        let sync_collection = prop(DAV, "supported-report-set")
            .is_some_and(|set| set.descendants().any(|n| n.has_tag_name((DAV, "sync-collection"))));
        let url = at.join(href.trim()).map_err(bad_url)?;
        let name = text(DAV, "displayname").unwrap_or_else(|| {
            url.path_segments().and_then(|mut s| s.rfind(|p| !p.is_empty())).unwrap_or("Calendar").to_owned()
        });
        out.push(DavCalendar {
            href: url,
            name,
            color: text(APPLE, "calendar-color"),
            ctag: text(CS, "getctag"),
            sync_token: text(DAV, "sync-token"),
            events,
            writable,
            sync_collection,
            time_zone: text(CALDAV, "calendar-timezone-id")
                .and_then(|z| z.parse().ok())
                .or_else(|| text(CALDAV, "calendar-timezone").and_then(|v| vtimezone_id(&v))),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_set_listings_keep_calendars_and_what_they_hold() {
        let doc = r##"<?xml version="1.0"?>
<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:cs="http://calendarserver.org/ns/" xmlns:a="http://apple.com/ns/ical/">
 <d:response><d:href>/dav/calendars/user/ann/</d:href>
  <d:propstat><d:prop><d:resourcetype><d:collection/></d:resourcetype></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
 <d:response><d:href>/dav/calendars/user/ann/work/</d:href>
  <d:propstat><d:prop><d:resourcetype><d:collection/><c:calendar/></d:resourcetype><d:displayname>Work</d:displayname>
   <cs:getctag>42</cs:getctag><d:sync-token>http://sabre.io/ns/sync/7</d:sync-token><a:calendar-color>#FF2968FF</a:calendar-color>
   <c:supported-calendar-component-set><c:comp name="VEVENT"/></c:supported-calendar-component-set>
   <d:current-user-privilege-set><d:privilege><d:read/></d:privilege><d:privilege><d:write/></d:privilege></d:current-user-privilege-set>
   <d:supported-report-set><d:supported-report><d:report><d:sync-collection/></d:report></d:supported-report></d:supported-report-set>
  </d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
 <d:response><d:href>https://p42-caldav.example.com/ann/tasks/</d:href>
  <d:propstat><d:prop><d:resourcetype><d:collection/><c:calendar/></d:resourcetype>
   <c:supported-calendar-component-set><c:comp name="VTODO"/></c:supported-calendar-component-set>
   <d:current-user-privilege-set><d:privilege><d:read/></d:privilege></d:current-user-privilege-set></d:prop>
   <d:status>HTTP/1.1 200 OK</d:status></d:propstat>
  <d:propstat><d:prop><d:displayname/></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat></d:response>
 <d:response><d:href>/dav/calendars/user/ann/inbox/</d:href>
  <d:propstat><d:prop><d:resourcetype><d:collection/><c:schedule-inbox/></d:resourcetype></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
</d:multistatus>"##;
        let at = Url::parse("https://dav.example.com/dav/calendars/user/ann/").unwrap();
        let cals = calendars(doc, &at).unwrap();
        assert_eq!(cals.len(), 2, "the home itself and the inbox are not calendars");
        let work = &cals[0];
        assert_eq!(work.href.as_str(), "https://dav.example.com/dav/calendars/user/ann/work/");
        assert_eq!(
            (work.name.as_str(), work.color.as_deref(), work.ctag.as_deref()),
            ("Work", Some("#FF2968FF"), Some("42"))
        );
        assert_eq!(work.sync_token.as_deref(), Some("http://sabre.io/ns/sync/7"));
        assert!(work.events && work.writable && work.sync_collection);
        let tasks = &cals[1];
        assert_eq!(tasks.href.as_str(), "https://p42-caldav.example.com/ann/tasks/", "another host is kept as given");
        assert_eq!(tasks.name, "tasks", "no display name: the last path segment");
        assert!(!tasks.events && !tasks.writable && !tasks.sync_collection);
    }

    #[test]
    fn sync_replies_say_removed_changed_and_cut_short() {
        let doc = r#"<d:multistatus xmlns:d="DAV:">
 <d:response><d:href>/cal/</d:href><d:status>HTTP/1.1 507 Insufficient Storage</d:status></d:response>
 <d:response><d:href>/cal/a.ics</d:href><d:propstat><d:prop><d:getetag>"1"</d:getetag></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
 <d:response><d:href>/cal/b.ics</d:href><d:status>HTTP/1.1 404 Not Found</d:status></d:response>
 <d:sync-token>http://example.com/ns/sync/9</d:sync-token>
</d:multistatus>"#;
        let cal = Url::parse("https://dav.example.com/cal").unwrap();
        let r = sync_reply(doc, &cal).unwrap();
        assert!(r.truncated, "507 on the collection itself");
        assert_eq!(r.changed, vec![(Url::parse("https://dav.example.com/cal/a.ics").unwrap(), "\"1\"".to_owned())]);
        assert_eq!(r.removed, vec![Url::parse("https://dav.example.com/cal/b.ics").unwrap()]);
        assert_eq!(r.token, "http://example.com/ns/sync/9");
        let no_token = doc.replace("<d:sync-token>http://example.com/ns/sync/9</d:sync-token>", "");
        assert!(sync_reply(&no_token, &cal).is_err());
    }

    #[test]
    fn server_addresses_default_to_https() {
        assert_eq!(server_url("caldav.fastmail.com").unwrap().as_str(), "https://caldav.fastmail.com/");
        assert_eq!(server_url("http://127.0.0.1:5232/").unwrap().as_str(), "http://127.0.0.1:5232/");
        assert!(server_url("ftp://x").is_err());
        assert!(server_url("").is_err());
    }

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let auth = DavAuth { username: "ann", password: "hunter2" };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}
