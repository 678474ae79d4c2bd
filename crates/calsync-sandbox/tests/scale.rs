//! Scale check (ignored by default: it fills a calendar over HTTP). Run with
//! `cargo test -p calsync-sandbox --release --test scale -- --ignored --nocapture`.

mod common;

use std::time::Instant;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn listing_a_2500_event_page_from_a_large_calendar() {
    let n: usize = std::env::var("SANDBOX_SCALE_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let h = start_with(calsync_sandbox::SandboxConfig {
        seed: Some(7),
        google_user_quota_per_minute: u32::MAX,
        google_project_quota_per_minute: u32::MAX,
        ..Default::default()
    })
    .await;
    let t = h.google_account("big@example.com").await;
    let url = h.url("/google/calendar/v3/calendars/primary/events");
    let began = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let futs: Vec<_> = chunk
            .iter()
            .map(|i| {
                let body = json!({"summary": format!("E{i}"),
                    "start": {"dateTime": "2020-01-01T00:00:00Z"},
                    "end": {"dateTime": "2020-01-01T01:00:00Z"}});
                h.http.post(&url).bearer_auth(&t).json(&body).send()
            })
            .collect();
        for f in futs {
            assert_eq!(f.await.unwrap().status(), StatusCode::OK);
        }
    }
    println!("inserted {n} events in {:?}", began.elapsed());
    let began = Instant::now();
    let resp = h.get(&t, "/google/calendar/v3/calendars/primary/events?maxResults=2500").await;
    let body = json_of(resp, StatusCode::OK).await;
    println!("first 2500-page over HTTP: {:?} ({} items)", began.elapsed(), body["items"].as_array().unwrap().len());
    let tok = body["nextPageToken"].as_str().unwrap().to_owned();
    let began = Instant::now();
    let body = json_of(
        h.get(&t, &format!("/google/calendar/v3/calendars/primary/events?maxResults=2500&pageToken={tok}")).await,
        StatusCode::OK,
    )
    .await;
    println!("second 2500-page over HTTP: {:?} ({} items)", began.elapsed(), body["items"].as_array().unwrap().len());
}
