//! Webhooks against the sandbox, with the worker running: the first sync opens a push channel
//! (Google `events.watch`, a Graph subscription after the validation handshake); a change made
//! there reaches calsync through a delivery, long before the next poll; forged, unknown and
//! duplicate deliveries change nothing; Graph's batches and lifecycle events are handled;
//! channels are renewed before they run out and stopped on disconnect.

mod common;

use calsync_domain::ids::ConnectionId;
use calsync_engine::sync::WebhookConfig;
use calsync_store::WebhookChannel;
use calsync_testkit::{Backend, backend_tests};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use common::{TestApp, connect_account, wait_for};
use serde_json::{Value, json};
use std::time::Duration as StdDuration;

const BASE: &str = "/api/calendar/oauth-connections";

struct World {
    app: TestApp,
    token: String,
    conn: ConnectionId,
    firm: calsync_domain::ids::FirmId,
    provider: &'static str,
    /// The account's access token at the sandbox, to make changes there.
    remote: String,
}

async fn world(backend: Backend, provider: &'static str) -> World {
    let app = TestApp::spawn_with_sandbox_using(backend, |c| {
        c.worker.enabled = true;
        c.worker.poll = StdDuration::from_millis(50);
        c.sync.webhooks = Some(WebhookConfig {
            base_url: String::new(),
            ttl: Duration::hours(1),
            renew_before: Duration::minutes(20),
            interval: Duration::minutes(30),
        });
    })
    .await;
    let token = app.user("acme", "ann@acme.test", "staff").await;
    let account = format!("ann@{provider}.test");
    let remote = app.control("/_sandbox/accounts", json!({"provider": provider, "email": account})).await;
    let c = connect_account(&app, &token, provider, &account).await;
    let conn: ConnectionId = c["id"].as_str().unwrap().parse().unwrap();
    let firm = app.db.firm_by_slug("acme").await.unwrap().id;
    World { app, token, conn, firm, provider, remote: remote["access_token"].as_str().unwrap().to_owned() }
}

impl World {
    async fn channels(&self) -> Vec<WebhookChannel> {
        self.app.db.channels(self.firm, self.conn).await.unwrap()
    }

    /// The one channel, once the worker has opened it.
    async fn channel(&self) -> WebhookChannel {
        wait_for(20, "a push channel", || async {
            let c = self.channels().await;
            (c.len() == 1 && !c[0].remote_id.starts_with(calsync_engine::sync::PENDING)).then(|| c[0].clone())
        })
        .await
    }

    async fn status(&self) -> Value {
        let url = format!("{BASE}/{}/sync_status/", self.conn);
        self.app.get(&url, &self.token).send().await.unwrap().json().await.unwrap()
    }

    async fn next_sync_at(&self) -> Option<DateTime<Utc>> {
        self.app.db.connection(self.firm, None, self.conn).await.unwrap().next_sync_at
    }

    /// Creates an event at the provider, as the account's owner would.
    async fn create_there(&self, title: &str) {
        let start = Utc::now().date_naive().and_hms_opt(9, 0, 0).unwrap().and_utc() + Duration::days(2);
        let end = start + Duration::hours(1);
        let f = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        let (url, body) = match self.provider {
            "google" => (
                "/google/calendar/v3/calendars/primary/events",
                json!({"summary": title, "start": {"dateTime": f(start)}, "end": {"dateTime": f(end)}}),
            ),
            _ => (
                "/microsoft/graph/v1.0/me/events",
                json!({
                    "subject": title,
                    "start": {"dateTime": f(start).trim_end_matches('Z'), "timeZone": "UTC"},
                    "end": {"dateTime": f(end).trim_end_matches('Z'), "timeZone": "UTC"},
                }),
            ),
        };
        let resp = self.app.http.post(self.app.sandbox_url(url)).bearer_auth(&self.remote).json(&body).send().await;
        assert!(resp.unwrap().status().is_success());
    }

    async fn titles(&self) -> Vec<String> {
        let v: Value =
            self.app.get("/api/appointments/?limit=500", &self.token).send().await.unwrap().json().await.unwrap();
        v["items"].as_array().unwrap().iter().map(|a| a["title"].as_str().unwrap().to_owned()).collect()
    }

    /// Waits until no sync is due for a while (the next poll is half an hour away): from then
    /// on only a delivery brings a change in soon.
    async fn quiet(&self) {
        wait_for(20, "no sync due", || async {
            let next = self.next_sync_at().await.unwrap();
            (next > self.app.state.clock.now() + Duration::minutes(10)).then_some(())
        })
        .await;
    }

    /// Waits until calsync has the appointment (see [`World::quiet`]), imported once.
    async fn arrives(&self, title: &str) {
        wait_for(10, title, || async { self.titles().await.iter().any(|t| t == title).then_some(()) }).await;
        let n = self.titles().await.iter().filter(|t| *t == title).count();
        assert_eq!(n, 1, "{title} imported {n} times");
    }

    async fn metric(&self, outcome: &str) -> u64 {
        let text = self.app.http.get(self.app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let key = format!("calsync_webhook_deliveries_total{{provider=\"{}\",outcome=\"{outcome}\"}} ", self.provider);
        text.lines().find_map(|l| l.strip_prefix(&key)).map_or(0, |v| v.trim().parse().unwrap())
    }

    async fn disconnect_stops_the_channel(&self) {
        let resp = self.app.post(&format!("{BASE}/{}/disconnect/", self.conn), &self.token).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(self.channels().await.is_empty());
    }
}

/// After the first sync a channel watches the calendar and polling slows to the webhook interval.
async fn first_sync_opens_a_channel(w: &World) -> WebhookChannel {
    let ch = w.channel().await;
    wait_for(20, "the first sync", || async {
        (w.status().await["last_attempt"]["status"] == "success").then_some(())
    })
    .await;
    let now = w.app.state.clock.now();
    assert!(ch.expires_at > now + Duration::minutes(50) && ch.expires_at <= now + Duration::minutes(61), "{ch:?}");
    // Due again within the webhook interval (30 min ± 20%), and before the channel needs renewal.
    let next = w.next_sync_at().await.unwrap();
    assert!(next > now + Duration::minutes(23) && next <= ch.expires_at - Duration::minutes(20), "{next}");
    ch
}

async fn google_push_channels(backend: Backend) {
    let w = world(backend, "google").await;
    let ch = first_sync_opens_a_channel(&w).await;
    // Google's first message on a channel (it may come before the watch answer) is accepted.
    wait_for(10, "the sync message", || async { (w.metric("handshake").await >= 1).then_some(()) }).await;

    // A change there arrives through the channel.
    w.quiet().await;
    w.create_there("Pushed intake").await;
    w.arrives("Pushed intake").await;
    assert!(w.metric("accepted").await >= 1);
    let ch = w.channels().await.into_iter().find(|c| c.id == ch.id).unwrap();
    assert!(ch.deliveries >= 1 && ch.last_delivery_at.is_some(), "{ch:?}");

    // Forged: a wrong token, the wrong resource, an unknown channel, no channel at all. None of
    // them makes the connection due.
    let before = w.next_sync_at().await;
    let post = |id: String, token: &str, resource: &str| {
        w.app
            .http
            .post(w.app.url("/webhooks/google"))
            .header("X-Goog-Channel-ID", id)
            .header("X-Goog-Channel-Token", token)
            .header("X-Goog-Resource-ID", resource)
            .header("X-Goog-Resource-State", "exists")
            .header("X-Goog-Message-Number", "99")
    };
    let forged = post(ch.id.to_string(), "guess", &ch.remote_id).send().await.unwrap();
    assert_eq!(forged.status(), 403);
    let wrong_resource = post(ch.id.to_string(), "guess", "another").send().await.unwrap();
    assert_eq!(wrong_resource.status(), 403);
    let unknown = post(uuid::Uuid::now_v7().to_string(), "guess", &ch.remote_id).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let bare = w.app.http.post(w.app.url("/webhooks/google")).send().await.unwrap();
    assert_eq!(bare.status(), 400);
    assert_eq!(w.next_sync_at().await, before);
    assert!(w.metric("forged").await >= 2);

    // Every delivery twice: one appointment all the same.
    w.app.control("/_sandbox/push", json!({"mode": "duplicate", "count": 10})).await;
    w.quiet().await;
    w.create_there("Twice told").await;
    w.arrives("Twice told").await;
    w.app.control("/_sandbox/push", json!({"mode": "normal"})).await;

    // Close to its expiry the channel is replaced (Google has no renewal): a new one opens,
    // the old one is stopped, and deliveries come on the new one.
    let stops = w.app.sandbox_requests(|k| k.contains("/channels/stop")).await;
    w.app.state.clock.advance(45 * 60);
    let renewed = wait_for(20, "the channel's replacement", || async {
        let c = w.channels().await;
        (c.len() == 1 && c[0].id != ch.id && !c[0].remote_id.starts_with(calsync_engine::sync::PENDING))
            .then(|| c[0].clone())
    })
    .await;
    assert!(renewed.expires_at > w.app.state.clock.now() + Duration::minutes(50), "{renewed:?}");
    assert_eq!(w.app.sandbox_requests(|k| k.contains("/channels/stop")).await, stops + 1);
    // The old channel's deliveries, were any late, find no channel.
    let late = post(ch.id.to_string(), "guess", &ch.remote_id).send().await.unwrap();
    assert_eq!(late.status(), 404);
    w.quiet().await;
    w.create_there("After renewal").await;
    w.arrives("After renewal").await;

    // Disconnecting stops the channel there.
    w.disconnect_stops_the_channel().await;
    assert_eq!(w.app.sandbox_requests(|k| k.contains("/channels/stop")).await, stops + 2);
}

async fn graph_subscriptions(backend: Backend) {
    let w = world(backend, "microsoft").await;
    let ch = first_sync_opens_a_channel(&w).await;
    // Graph checked both URLs with the handshake before it made the subscription.
    assert!(w.metric("validation").await >= 2);

    // The handshake answer: the token, decoded, as text.
    let resp = w.app.http.post(w.app.url("/webhooks/microsoft?validationToken=a%20b%3Cc%3E")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(resp.text().await.unwrap(), "a b<c>");

    // Changes there arrive; several close together come in one batch.
    w.app.control("/_sandbox/push", json!({"coalesce_ms": 300})).await;
    w.quiet().await;
    for t in ["Batch one", "Batch two", "Batch three"] {
        w.create_there(t).await;
    }
    for t in ["Batch one", "Batch two", "Batch three"] {
        w.arrives(t).await;
    }
    assert!(w.metric("accepted").await >= 3);

    // Forged clientState: refused, nothing due. A batch with a genuine item among forged and
    // unknown ones is accepted for the genuine one only.
    let item = |sub: &str, state: &str| {
        json!({"subscriptionId": sub, "changeType": "updated", "clientState": state,
               "resource": "Users/x/Events/y", "tenantId": "t"})
    };
    let before = w.next_sync_at().await;
    let send = |body: Value| w.app.http.post(w.app.url("/webhooks/microsoft")).json(&body).send();
    let forged = send(json!({"value": [item(&ch.remote_id, "guess")]})).await.unwrap();
    assert_eq!(forged.status(), 403);
    let unknown = send(json!({"value": [item("no-such-subscription", "guess")]})).await.unwrap();
    assert_eq!(unknown.status(), 202);
    let garbage = w.app.http.post(w.app.url("/webhooks/microsoft")).body("{").send().await.unwrap();
    assert_eq!(garbage.status(), 400);
    assert_eq!(w.next_sync_at().await, before);
    assert!(w.metric("forged").await >= 1);

    // Lifecycle: reauthorizationRequired pauses the subscription; the sync it triggers
    // resumes it, and deliveries flow again.
    let app = &w.app;
    let lifecycle = |event: &'static str| {
        let id = ch.remote_id.clone();
        async move { app.control("/_sandbox/graph-lifecycle", json!({"subscription_id": id, "event": event})).await }
    };
    let last = w.status().await["last_attempt"]["attempt_id"].clone();
    lifecycle("reauthorizationRequired").await;
    wait_for(20, "the reauthorizing sync", || async {
        let s = w.status().await;
        let c = w.channels().await;
        (s["last_attempt"]["attempt_id"] != last && c.len() == 1 && !c[0].needs_reauthorization).then_some(())
    })
    .await;
    assert_eq!(w.app.sandbox_requests(|k| k.contains("/reauthorize")).await, 1);
    w.quiet().await;
    w.create_there("After reauthorization").await;
    w.arrives("After reauthorization").await;

    // missed: the connection syncs at once (its delta catches up).
    let last = w.status().await["last_attempt"]["attempt_id"].clone();
    lifecycle("missed").await;
    wait_for(20, "the catch-up sync", || async {
        (w.status().await["last_attempt"]["attempt_id"] != last).then_some(())
    })
    .await;

    // subscriptionRemoved: forgotten, and the sync it triggers subscribes anew.
    lifecycle("subscriptionRemoved").await;
    let fresh = wait_for(20, "a new subscription", || async {
        let c = w.channels().await;
        (c.len() == 1 && c[0].remote_id != ch.remote_id && !c[0].remote_id.starts_with(calsync_engine::sync::PENDING))
            .then(|| c[0].clone())
    })
    .await;
    w.quiet().await;
    w.create_there("After removal").await;
    w.arrives("After removal").await;

    // Close to its expiry the subscription is renewed in place.
    w.app.state.clock.advance(45 * 60);
    let renewed = wait_for(20, "the renewal", || async {
        let c = w.channels().await;
        (c.len() == 1 && c[0].expires_at > fresh.expires_at + Duration::minutes(30)).then(|| c[0].clone())
    })
    .await;
    assert_eq!((renewed.id, &renewed.remote_id), (fresh.id, &fresh.remote_id));
    assert!(w.app.sandbox_requests(|k| k.starts_with("PATCH ") && k.contains("/subscriptions/")).await >= 1);

    // Disconnecting deletes the subscription there.
    w.disconnect_stops_the_channel().await;
    assert!(w.app.sandbox_requests(|k| k.starts_with("DELETE ") && k.contains("/subscriptions/")).await >= 1);
}

backend_tests!(google_push_channels, graph_subscriptions);
