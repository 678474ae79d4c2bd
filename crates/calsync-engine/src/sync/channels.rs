//! Push channels, kept by the sync that holds the connection's lease (the only holder of its
//! tokens): one working channel per watched calendar, renewed before it runs out, resumed when
//! Graph paused it, replaced when the provider dropped it, and stopped when its calendar is no
//! longer watched or the connection is disconnected.
//!
//! A delivery only makes its connection due (the receiver checks the secret against the hash
//! kept here); the sync that follows reads the changes. Polling stays on as the safety net, at a
//! longer interval while every watched calendar has a working channel.

use calsync_providers::ProviderError;
use calsync_providers::calendar::{CalendarProvider, WatchRequest};
use calsync_store::{Connection, SyncedCalendar, WebhookChannel};
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::SyncEngine;
use super::session::{Session, call};

/// The stand-in for the provider's id while a channel is being opened.
pub const PENDING: &str = "pending-";

/// Where providers deliver, under the public URL.
pub const GOOGLE_PATH: &str = "/webhooks/google";
pub const MICROSOFT_PATH: &str = "/webhooks/microsoft";
pub const MICROSOFT_LIFECYCLE_PATH: &str = "/webhooks/microsoft/lifecycle";

/// Push channels, on when the service has a public address providers can reach.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The public URL (no trailing slash) the paths above are appended to.
    pub base_url: String,
    /// The lifetime asked for (providers may grant less).
    pub ttl: Duration,
    /// A channel with less than this left is renewed (or replaced).
    pub renew_before: Duration,
    /// The polling interval while every watched calendar has a working channel.
    pub interval: Duration,
}

/// The hash a channel's secret is kept as, and checked against.
pub fn secret_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// What the channels of a connection look like after a sync kept them.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChannelHealth {
    /// Every watched calendar has a working channel.
    pub healthy: bool,
    /// The latest the next sync may come, to renew the first channel in time.
    pub renew_at: Option<DateTime<Utc>>,
}

impl SyncEngine {
    /// Opens, renews, resumes and closes the connection's channels so that each watched
    /// calendar has exactly one working channel. Failures are noted on the attempt and leave
    /// the connection on polling; they never fail the sync.
    pub(super) async fn keep_channels(
        &self,
        s: &mut Session,
        provider: &dyn CalendarProvider,
        conn: &Connection,
        watched: &[&SyncedCalendar],
    ) -> ChannelHealth {
        let firm = conn.firm_id;
        let webhooks = self.config.webhooks.clone().filter(|_| provider.can_watch());
        if webhooks.is_none() && self.without_channels.lock().unwrap_or_else(|p| p.into_inner()).contains(&conn.id) {
            // Known to have none, and with webhooks off this process opens none.
            return ChannelHealth::default();
        }
        let mut channels = match self.db.channels(firm, conn.id).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(connection_id = %conn.id, error = %e, "could not read the push channels");
                return ChannelHealth::default();
            }
        };
        let Some(cfg) = webhooks else {
            // Webhooks switched off since: the channels opened before are closed.
            for ch in &channels {
                self.close_channel(s, provider, ch).await;
            }
            if channels.is_empty() {
                self.without_channels.lock().unwrap_or_else(|p| p.into_inner()).insert(conn.id);
            }
            return ChannelHealth::default();
        };
        // Channels of calendars no longer watched, and all but the longest-lived of a calendar
        // (a replacement whose old channel could not be stopped yet), are closed.
        channels.sort_by_key(|c| std::cmp::Reverse(c.expires_at));
        let mut keep: Vec<WebhookChannel> = Vec::new();
        for ch in channels {
            let wanted = watched.iter().any(|c| c.id == ch.calendar_id);
            if wanted && !keep.iter().any(|k| k.calendar_id == ch.calendar_id) {
                keep.push(ch);
            } else {
                self.close_channel(s, provider, &ch).await;
            }
        }
        let mut health = ChannelHealth { healthy: true, renew_at: None };
        let mut failure: Option<String> = None;
        for cal in watched {
            let current = keep.iter().find(|c| c.calendar_id == cal.id).cloned();
            match self.keep_channel(s, provider, conn, cal, current, &cfg).await {
                Ok(expires_at) => {
                    let at = expires_at - cfg.renew_before;
                    health.renew_at = Some(health.renew_at.map_or(at, |r| r.min(at)));
                }
                Err(e) => {
                    health.healthy = false;
                    tracing::warn!(connection_id = %conn.id, calendar = %cal.id, error = %e, "push channel not set up");
                    failure.get_or_insert(e.to_string());
                }
            }
        }
        if let Some(why) = failure {
            let note = format!(
                "{} did not accept a push channel ({why}); changes there are picked up every {} minutes instead.",
                s.label,
                self.config.interval.num_minutes()
            );
            if !s.notes.contains(&note) {
                s.notes.push(note);
            }
        }
        health
    }

    /// One calendar's channel: the expiry it has afterwards.
    async fn keep_channel(
        &self,
        s: &mut Session,
        provider: &dyn CalendarProvider,
        conn: &Connection,
        cal: &SyncedCalendar,
        current: Option<WebhookChannel>,
        cfg: &WebhookConfig,
    ) -> Result<DateTime<Utc>, ProviderError> {
        let firm = conn.firm_id;
        let store = |e: calsync_store::StoreError| ProviderError::retryable(e.to_string());
        let Some(mut ch) = current else {
            return self.open_channel(s, provider, conn, cal, cfg).await;
        };
        if ch.remote_id.starts_with(PENDING) {
            // Recorded, but the provider's answer never was (a crash in between): opened anew.
            self.close_channel(s, provider, &ch).await;
            return self.open_channel(s, provider, conn, cal, cfg).await;
        }
        if ch.needs_reauthorization {
            let rid = ch.remote_id.clone();
            match call!(s, |t| provider.reauthorize_watch(t, &rid)) {
                Ok(()) => {
                    self.db.renew_channel(firm, ch.id, ch.expires_at).await.map_err(store)?;
                    ch.needs_reauthorization = false;
                }
                Err(ProviderError::NotFound) => {
                    self.db.delete_channel(firm, ch.id).await.map_err(store)?;
                    return self.open_channel(s, provider, conn, cal, cfg).await;
                }
                Err(e) => return Err(e),
            }
        }
        let now = self.clock.now();
        if ch.expires_at - now > cfg.renew_before {
            return Ok(ch.expires_at);
        }
        let rid = ch.remote_id.clone();
        let until = now + cfg.ttl;
        match call!(s, |t| provider.renew_watch(t, &rid, until)) {
            Ok(Some(expires_at)) => {
                self.db.renew_channel(firm, ch.id, expires_at).await.map_err(store)?;
                Ok(expires_at)
            }
            // No renewal there (Google): a new channel first, then the old one goes; a change
            // in between is delivered on both, which is harmless.
            Ok(None) => {
                let expires_at = self.open_channel(s, provider, conn, cal, cfg).await?;
                self.close_channel(s, provider, &ch).await;
                Ok(expires_at)
            }
            Err(ProviderError::NotFound) => {
                self.db.delete_channel(firm, ch.id).await.map_err(store)?;
                self.open_channel(s, provider, conn, cal, cfg).await
            }
            Err(e) => Err(e),
        }
    }

    async fn open_channel(
        &self,
        s: &mut Session,
        provider: &dyn CalendarProvider,
        conn: &Connection,
        cal: &SyncedCalendar,
        cfg: &WebhookConfig,
    ) -> Result<DateTime<Utc>, ProviderError> {
        let id = Uuid::now_v7();
        let secret: String = (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
        let (path, lifecycle) = match conn.provider {
            calsync_domain::connection::Provider::Google => (GOOGLE_PATH, None),
            calsync_domain::connection::Provider::Microsoft => {
                (MICROSOFT_PATH, Some(format!("{}{MICROSOFT_LIFECYCLE_PATH}", cfg.base_url)))
            }
            // CalDAV has no push channels (`can_watch` is false): never asked.
            calsync_domain::connection::Provider::CalDav => {
                return Err(ProviderError::Permanent { status: None, reason: "CalDAV has no push channels".into() });
            }
        };
        let req = WatchRequest {
            id: id.to_string(),
            address: format!("{}{path}", cfg.base_url),
            lifecycle_address: lifecycle,
            secret,
            until: self.clock.now() + cfg.ttl,
        };
        // Recorded before it is opened: Google's first message may come before its answer.
        let mut channel = WebhookChannel {
            id,
            firm_id: conn.firm_id,
            connection_id: conn.id,
            calendar_id: cal.id,
            provider: conn.provider,
            remote_id: format!("{PENDING}{id}"),
            secret_hash: secret_hash(&req.secret),
            expires_at: req.until,
            needs_reauthorization: false,
            last_delivery_at: None,
            deliveries: 0,
            created_at: self.clock.now(),
        };
        let store = |e: calsync_store::StoreError| ProviderError::retryable(e.to_string());
        if let Err(e) = self.db.insert_channel(&channel).await {
            return Err(match e {
                calsync_store::StoreError::NotFound => {
                    ProviderError::Permanent { status: None, reason: "the connection no longer syncs".into() }
                }
                e => store(e),
            });
        }
        let remote = cal.remote_id.clone();
        let watch = match call!(s, |t| provider.watch(t, &remote, &req)) {
            Ok(w) => w,
            Err(e) => {
                let _ = self.db.delete_channel(conn.firm_id, id).await;
                return Err(e);
            }
        };
        channel.remote_id = watch.remote_id;
        channel.expires_at = watch.expires_at;
        if let Err(e) = self.db.channel_opened(conn.firm_id, id, &channel.remote_id, channel.expires_at).await {
            // Not recorded (or the connection was disconnected meanwhile, taking the row): its
            // deliveries could not be checked, so it is closed again.
            self.close_channel(s, provider, &channel).await;
            return Err(store(e));
        }
        tracing::info!(connection_id = %conn.id, calendar = %cal.id, channel = %channel.id, expires_at = %channel.expires_at, "push channel opened");
        Ok(channel.expires_at)
    }

    /// Stops a channel at the provider (best effort: one that cannot be stopped runs out) and
    /// forgets it.
    async fn close_channel(&self, s: &mut Session, provider: &dyn CalendarProvider, ch: &WebhookChannel) {
        let (cid, rid) = (ch.id.to_string(), ch.remote_id.clone());
        if !rid.starts_with(PENDING)
            && let Err(e) = call!(s, |t| provider.unwatch(t, &cid, &rid))
        {
            tracing::warn!(channel = %ch.id, error = %e, "push channel not stopped at the provider; it runs out on its own");
        }
        if let Err(e) = self.db.delete_channel(ch.firm_id, ch.id).await {
            tracing::warn!(channel = %ch.id, error = %e, "push channel not forgotten");
        }
    }
}

/// Stops channels at the provider for a connection that has been disconnected (its rows went
/// with it), best effort and within `limit`: one that cannot be stopped runs out, and its
/// deliveries then find no channel.
pub async fn stop_all(
    provider: &dyn CalendarProvider,
    token: &str,
    channels: &[WebhookChannel],
    limit: std::time::Duration,
) {
    let stop = async {
        for ch in channels.iter().filter(|c| !c.remote_id.starts_with(PENDING)) {
            if let Err(e) = provider.unwatch(token, &ch.id.to_string(), &ch.remote_id).await {
                tracing::warn!(channel = %ch.id, error = %e, "push channel not stopped at the provider; it runs out on its own");
            }
        }
    };
    if tokio::time::timeout(limit, stop).await.is_err() {
        tracing::warn!("the provider did not answer in time; the remaining push channels run out on their own");
    }
}
