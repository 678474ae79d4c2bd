//! Outgoing webhook deliveries (Google push channels, Graph change and lifecycle
//! notifications): a minimal HTTP/1.1 client for loopback `http://` receivers, the
//! delivery queue writes fill under the world lock, and the drop / duplicate / delay
//! control switch.
//!
//! Deliberate sandbox relaxation: the real services only call `https://` addresses with a
//! CA-valid certificate. The sandbox calls plain `http://` addresses on loopback hosts only
//! (and refuses everything else), so tests can run receivers without TLS.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::state::Shared;

/// One HTTP POST to make after the current request's changes are committed.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub url: url::Url,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// How long the receiver has to answer (Google: unspecified; Graph: 3 s).
    pub timeout: Duration,
    /// Attempts after the first on a retryable failure.
    pub retries: u32,
    /// Statuses that are retried (Google retries 500/502/503/504; Graph any non-2xx).
    pub retry_on: RetryOn,
    /// The channel / subscription this delivery belongs to, and how a later one within the
    /// coalescing window joins it; `None` goes out at once (handshakes, lifecycle events).
    pub coalesce: Option<(String, Coalesce)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coalesce {
    /// The later delivery replaces the held one (Google: one `exists` per burst, carrying
    /// the newest message number).
    Replace,
    /// The later delivery's JSON `value` items are appended to the held one's (Graph).
    AppendValue,
}

/// Most Graph notifications one delivery carries; a fuller batch goes out at once.
const MAX_BATCH: usize = 100;

/// A delivery waiting out its coalescing window.
#[derive(Debug)]
pub(crate) struct Held {
    delivery: Delivery,
    /// Graph: the notifications gathered so far (the body is rebuilt from them when sent).
    items: Vec<serde_json::Value>,
    /// Tells the window's timer whether this is still the batch it was started for.
    generation: u64,
}

impl Held {
    fn new(delivery: Delivery, generation: u64) -> Self {
        let items = value_items(&delivery);
        Self { delivery, items, generation }
    }

    fn absorb(&mut self, later: Delivery, how: Coalesce) {
        match how {
            Coalesce::Replace => self.delivery = later,
            Coalesce::AppendValue => self.items.extend(value_items(&later)),
        }
    }

    fn into_delivery(self) -> Delivery {
        let mut d = self.delivery;
        if !self.items.is_empty() {
            d.body = serde_json::json!({ "value": self.items }).to_string().into_bytes();
        }
        d
    }
}

/// The `value` items of a Graph notification body (none for other deliveries).
fn value_items(d: &Delivery) -> Vec<serde_json::Value> {
    if d.coalesce.as_ref().is_none_or(|(_, how)| *how != Coalesce::AppendValue) {
        return Vec::new();
    }
    serde_json::from_slice::<serde_json::Value>(&d.body)
        .ok()
        .and_then(|v| v.get("value").and_then(|v| v.as_array()).cloned())
        .unwrap_or_default()
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum RetryOn {
    GoogleServerErrors,
    AnyFailure,
}

/// `http://` on a loopback host; the error text explains the refusal.
pub(crate) fn check_address(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|_| format!("Invalid address: {raw}"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if url.scheme() != "http" || !loopback {
        return Err(format!(
            "The sandbox delivers only to http:// addresses on a loopback host (the real service requires https): {raw}"
        ));
    }
    Ok(url)
}

/// What the control switch does to the next deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PushMode {
    Normal,
    Drop,
    Duplicate,
    Delay,
}

#[derive(Debug)]
pub(crate) struct PushControl {
    pub mode: PushMode,
    pub delay_ms: u64,
    /// Deliveries the mode still applies to; `None` = all.
    pub remaining: Option<u32>,
}

impl Default for PushControl {
    fn default() -> Self {
        Self { mode: PushMode::Normal, delay_ms: 0, remaining: None }
    }
}

impl PushControl {
    /// The mode for the next delivery, consuming one use.
    fn take(&mut self) -> (PushMode, u64) {
        let out = (self.mode, self.delay_ms);
        if let Some(n) = self.remaining.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                *self = Self::default();
            }
        }
        out
    }
}

/// Sends everything queued under the world lock. Called after the request's handler.
/// Deliveries with a coalescing key wait out the window; later ones for the same key join
/// the held delivery instead of going out on their own.
pub(crate) fn flush(shared: &Arc<Shared>) {
    let pending = std::mem::take(&mut shared.world_unmarked().outbox);
    let window = shared.coalesce_ms.load(std::sync::atomic::Ordering::Relaxed);
    for d in pending {
        let Some((key, how)) = d.coalesce.clone().filter(|_| window > 0) else {
            send(shared, d);
            continue;
        };
        let mut held = shared.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = held.get_mut(&key) {
            h.absorb(d, how);
            if h.items.len() >= MAX_BATCH
                && let Some(full) = held.remove(&key)
            {
                drop(held);
                send(shared, full.into_delivery());
            }
            continue;
        }
        let generation = shared.held_generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        held.insert(key.clone(), Held::new(d, generation));
        drop(held);
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(window)).await;
            let mut held = shared.held.lock().unwrap_or_else(|e| e.into_inner());
            if held.get(&key).is_some_and(|h| h.generation == generation)
                && let Some(h) = held.remove(&key)
            {
                drop(held);
                send(&shared, h.into_delivery());
            }
        });
    }
}

/// Sends every held delivery now (`POST /_sandbox/push {"flush": true}`); answers how many.
pub(crate) fn flush_held(shared: &Arc<Shared>) -> usize {
    let held: Vec<Held> = shared.held.lock().unwrap_or_else(|e| e.into_inner()).drain().map(|(_, h)| h).collect();
    let n = held.len();
    for h in held {
        send(shared, h.into_delivery());
    }
    n
}

/// One delivery through the drop / duplicate / delay switch.
fn send(shared: &Arc<Shared>, d: Delivery) {
    let (mode, delay) = shared.push_control.lock().unwrap_or_else(|e| e.into_inner()).take();
    let copies = match mode {
        PushMode::Drop => 0,
        PushMode::Duplicate => 2,
        PushMode::Normal | PushMode::Delay => 1,
    };
    for _ in 0..copies {
        let d = d.clone();
        let delay = if mode == PushMode::Delay { delay } else { 0 };
        tokio::spawn(async move {
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            deliver(d).await;
        });
    }
}

async fn deliver(d: Delivery) {
    let mut backoff = Duration::from_millis(50);
    for attempt in 0..=d.retries {
        let result = post(&d.url, &d.headers, &d.body, d.timeout).await;
        let retry = match (&result, d.retry_on) {
            (Ok((s, _)), RetryOn::GoogleServerErrors) => matches!(s, 500 | 502 | 503 | 504),
            (Ok((s, _)), RetryOn::AnyFailure) => !(200..300).contains(s),
            (Err(_), _) => true,
        };
        if !retry || attempt == d.retries {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
}

/// POSTs `body` and returns `(status, body)`. HTTP/1.1 with `Connection: close`, so the
/// response ends at EOF; chunked bodies are decoded.
pub(crate) async fn post(
    url: &url::Url,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<(u16, String), String> {
    tokio::time::timeout(timeout, post_inner(url, headers, body)).await.map_err(|_| "receiver timed out".to_string())?
}

async fn post_inner(url: &url::Url, headers: &[(String, String)], body: &[u8]) -> Result<(u16, String), String> {
    let host = url.host_str().ok_or("no host")?;
    let port = url.port_or_known_default().unwrap_or(80);
    let addr = format!("{}:{port}", host.trim_matches(['[', ']']));
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut target = url.path().to_owned();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let mut req = format!(
        "POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    stream.write_all(body).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf);
    let (head, rest) = text.split_once("\r\n\r\n").ok_or("malformed response")?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok()).ok_or("malformed status line")?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.to_ascii_lowercase().contains("chunked")
    });
    let content_type = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-type:"))
        .map(|l| l[13..].trim().to_ascii_lowercase())
        .unwrap_or_default();
    let body = if chunked { dechunk(rest) } else { rest.to_owned() };
    // The content type rides along for callers that check it (Graph's validation echo).
    Ok((status, format!("{content_type}\n{body}")))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Splits what [`post`] returns into `(content type, body)`.
pub(crate) fn split_body(b: &str) -> (&str, &str) {
    b.split_once('\n').unwrap_or(("", b))
}
