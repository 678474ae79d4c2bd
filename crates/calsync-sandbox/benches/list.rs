//! Listing throughput over real HTTP against a sandbox on an ephemeral port:
//! (a) paging through 100,000 seeded events (Google `maxResults=2500`, Graph delta with
//! `odata.maxpagesize=1000`), (b) requests per second of a no-change incremental call
//! (Google `syncToken`, Graph deltaLink) from 4 concurrent clients for ~5 s.
//!
//! `cargo bench -p calsync-sandbox --bench list` (release profile). Events are loaded with
//! the control endpoint `POST /_sandbox/seed-events {"provider","email","count"}`.
//! `SANDBOX_BENCH_EVENTS` overrides the count.

use std::time::{Duration, Instant};

use calsync_sandbox::{SandboxConfig, serve};
use reqwest::Client;
use serde_json::{Value, json};

const CLIENTS: usize = 4;
const RUN: Duration = Duration::from_secs(5);

async fn control(http: &Client, base: &str, path: &str, body: Value) -> Value {
    let r = http.post(format!("{base}{path}")).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

async fn get(http: &Client, url: &str, token: &str, prefer: Option<&str>) -> Value {
    let mut rb = http.get(url).bearer_auth(token);
    if let Some(p) = prefer {
        rb = rb.header("prefer", p);
    }
    let r = rb.send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

/// Requests per second of `url` (which must return no items) from `CLIENTS` clients.
async fn hammer(
    http: &Client,
    url: String,
    token: String,
    prefer: Option<&'static str>,
    items_key: &'static str,
) -> f64 {
    let began = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (http, url, token) = (http.clone(), url.clone(), token.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while began.elapsed() < RUN {
                    let body = get(&http, &url, &token, prefer).await;
                    assert_eq!(body[items_key].as_array().map(Vec::len), Some(0), "no changes expected");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / began.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n: usize = std::env::var("SANDBOX_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // Google quotas and Outlook's per-mailbox throttling would dominate a throughput run:
    // lifted here.
    let config = SandboxConfig {
        seed: Some(1),
        graph_mailbox_limit: u32::MAX,
        graph_mailbox_concurrency: 1024,
        google_user_quota_per_minute: u32::MAX,
        google_project_quota_per_minute: u32::MAX,
        ..Default::default()
    };
    tokio::spawn(serve(listener, config));
    let http = Client::builder().build().unwrap();

    // --- Google
    let acc =
        control(&http, &base, "/_sandbox/accounts", json!({"provider": "google", "email": "bench@example.com"})).await;
    let token = acc["access_token"].as_str().unwrap().to_owned();
    let t = Instant::now();
    control(
        &http,
        &base,
        "/_sandbox/seed-events",
        json!({"provider": "google", "email": "bench@example.com", "count": n}),
    )
    .await;
    println!("google: seeded {n} events in {:.2?}", t.elapsed());
    let events = format!("{base}/google/calendar/v3/calendars/primary/events");
    let t = Instant::now();
    let (mut seen, mut pages, mut page_token) = (0usize, 0usize, None::<String>);
    let sync = loop {
        let url = match &page_token {
            Some(p) => format!("{events}?maxResults=2500&pageToken={p}"),
            None => format!("{events}?maxResults=2500"),
        };
        let body = get(&http, &url, &token, None).await;
        seen += body["items"].as_array().unwrap().len();
        pages += 1;
        if let Some(s) = body["nextSyncToken"].as_str() {
            break s.to_owned();
        }
        page_token = Some(body["nextPageToken"].as_str().unwrap().to_owned());
    };
    let took = t.elapsed();
    assert_eq!(seen, n);
    println!(
        "google: listed {seen} events in {pages} pages of maxResults=2500 in {took:.2?} ({:.1} ms/page, {:.0} events/s)",
        took.as_secs_f64() * 1000.0 / pages as f64,
        seen as f64 / took.as_secs_f64()
    );
    let rps = hammer(&http, format!("{events}?syncToken={sync}"), token.clone(), None, "items").await;
    println!("google: incremental events.list?syncToken (no changes), {CLIENTS} clients: {rps:.0} req/s");

    // --- Graph
    let acc =
        control(&http, &base, "/_sandbox/accounts", json!({"provider": "microsoft", "email": "bench@example.com"}))
            .await;
    let token = acc["access_token"].as_str().unwrap().to_owned();
    control(
        &http,
        &base,
        "/_sandbox/seed-events",
        json!({"provider": "microsoft", "email": "bench@example.com", "count": n}),
    )
    .await;
    let prefer = Some("odata.maxpagesize=1000");
    let t = Instant::now();
    let mut url = format!(
        "{base}/microsoft/graph/v1.0/me/calendarView/delta?startDateTime=2019-12-31T00:00:00Z&endDateTime=2021-01-01T00:00:00Z"
    );
    let (mut seen, mut pages) = (0usize, 0usize);
    let delta_link = loop {
        let body = get(&http, &url, &token, prefer).await;
        seen += body["value"].as_array().unwrap().len();
        pages += 1;
        if let Some(d) = body["@odata.deltaLink"].as_str() {
            break d.to_owned();
        }
        url = body["@odata.nextLink"].as_str().unwrap().to_owned();
    };
    let took = t.elapsed();
    assert_eq!(seen, n);
    println!(
        "graph: delta initial round of {seen} events in {pages} pages of 1000 in {took:.2?} ({:.1} ms/page)",
        took.as_secs_f64() * 1000.0 / pages as f64
    );
    let rps = hammer(&http, delta_link, token, prefer, "value").await;
    println!("graph: deltaLink (no changes), {CLIENTS} clients: {rps:.0} req/s");
}
