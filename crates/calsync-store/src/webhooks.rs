//! Push channels: one Google `events.watch` channel or Graph subscription per watched calendar.
//!
//! A delivery names its channel (Google by calsync's channel id, Graph by subscription id) and
//! carries its secret; the secret is kept only as a SHA-256 hash, which the receiver compares in
//! constant time. Deliveries arrive without a firm, so the two lookups by channel are the only
//! queries here not scoped by one; everything they lead to is (the channel row names its firm).

use calsync_domain::connection::Provider;
use calsync_domain::ids::{ConnectionId, FirmId, SyncedCalendarId};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Db, StoreError, on_pool};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookChannel {
    /// calsync's id of the channel; Google's channel id.
    pub id: Uuid,
    pub firm_id: FirmId,
    pub connection_id: ConnectionId,
    pub calendar_id: SyncedCalendarId,
    pub provider: Provider,
    /// Google `resourceId`; Graph subscription id.
    pub remote_id: String,
    /// SHA-256 (hex) of the channel token / `clientState`.
    pub secret_hash: String,
    pub expires_at: DateTime<Utc>,
    /// Graph paused the subscription (`reauthorizationRequired`).
    pub needs_reauthorization: bool,
    pub last_delivery_at: Option<DateTime<Utc>>,
    pub deliveries: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    firm_id: Uuid,
    connection_id: Uuid,
    calendar_id: Uuid,
    provider: String,
    remote_id: String,
    secret_hash: String,
    expires_at: DateTime<Utc>,
    needs_reauthorization: bool,
    last_delivery_at: Option<DateTime<Utc>>,
    deliveries: i64,
    created_at: DateTime<Utc>,
}

impl TryFrom<Row> for WebhookChannel {
    type Error = StoreError;

    fn try_from(r: Row) -> Result<Self, StoreError> {
        Ok(WebhookChannel {
            id: r.id,
            firm_id: r.firm_id.into(),
            connection_id: r.connection_id.into(),
            calendar_id: r.calendar_id.into(),
            provider: r.provider.parse().map_err(|_| StoreError::Corrupt("webhook_channels.provider".into()))?,
            remote_id: r.remote_id,
            secret_hash: r.secret_hash,
            expires_at: r.expires_at,
            needs_reauthorization: r.needs_reauthorization,
            last_delivery_at: r.last_delivery_at,
            deliveries: r.deliveries,
            created_at: r.created_at,
        })
    }
}

const COLUMNS: &str = "id, firm_id, connection_id, calendar_id, provider, remote_id, secret_hash, expires_at, \
                       needs_reauthorization, last_delivery_at, deliveries, created_at";

impl Db {
    /// Records a channel about to be opened, if its connection still syncs ([`StoreError::NotFound`]
    /// once it was disconnected or switched off meanwhile).
    pub async fn insert_channel(&self, c: &WebhookChannel) -> Result<(), StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO webhook_channels ({COLUMNS}) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 \
                 WHERE EXISTS (SELECT 1 FROM oauth_connections WHERE id = $3 AND firm_id = $2 AND sync_enabled)"
            )))
            .bind(c.id)
            .bind(c.firm_id.as_uuid())
            .bind(c.connection_id.as_uuid())
            .bind(c.calendar_id.as_uuid())
            .bind(c.provider.as_str())
            .bind(&c.remote_id)
            .bind(&c.secret_hash)
            .bind(c.expires_at)
            .bind(c.needs_reauthorization)
            .bind(c.last_delivery_at)
            .bind(c.deliveries)
            .bind(c.created_at)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if n == 1 { Ok(()) } else { Err(StoreError::NotFound) }
    }

    /// The connection's channels, soonest to expire first.
    pub async fn channels(&self, firm: FirmId, connection: ConnectionId) -> Result<Vec<WebhookChannel>, StoreError> {
        let rows: Vec<Row> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM webhook_channels WHERE firm_id = $1 AND connection_id = $2 \
                 ORDER BY expires_at, id"
            )))
            .bind(firm.as_uuid())
            .bind(connection.as_uuid())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(WebhookChannel::try_from).collect()
    }

    /// The channel a Google delivery names (by calsync's channel id).
    pub async fn channel_by_id(&self, id: Uuid) -> Result<Option<WebhookChannel>, StoreError> {
        let row: Option<Row> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM webhook_channels WHERE id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        row.map(WebhookChannel::try_from).transpose()
    }

    /// The channel a Graph delivery names (by subscription id).
    pub async fn channel_by_remote_id(
        &self,
        provider: Provider,
        remote_id: &str,
    ) -> Result<Option<WebhookChannel>, StoreError> {
        let row: Option<Row> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM webhook_channels WHERE provider = $1 AND remote_id = $2")))
                .bind(provider.as_str())
                .bind(remote_id)
                .fetch_optional(pool)
                .await?
        });
        row.map(WebhookChannel::try_from).transpose()
    }

    /// The provider's id and granted expiry of a channel recorded before it was opened
    /// ([`StoreError::NotFound`] when the row is gone: the caller stops the channel again).
    pub async fn channel_opened(
        &self,
        firm: FirmId,
        id: Uuid,
        remote_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query("UPDATE webhook_channels SET remote_id = $1, expires_at = $2 WHERE id = $3 AND firm_id = $4")
                .bind(remote_id)
                .bind(expires_at)
                .bind(id)
                .bind(firm.as_uuid())
                .execute(pool)
                .await?
                .rows_affected()
        });
        // Gone meanwhile: the connection was disconnected while the channel was being opened.
        if n == 1 { Ok(()) } else { Err(StoreError::NotFound) }
    }

    /// A renewed channel: its new expiry, and working again if it was paused.
    pub async fn renew_channel(&self, firm: FirmId, id: Uuid, expires_at: DateTime<Utc>) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE webhook_channels SET expires_at = $1, needs_reauthorization = FALSE WHERE id = $2 AND firm_id = $3",
            )
            .bind(expires_at)
            .bind(id)
            .bind(firm.as_uuid())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Graph paused the subscription until it is reauthorized.
    pub async fn flag_reauthorization(&self, firm: FirmId, id: Uuid) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE webhook_channels SET needs_reauthorization = TRUE WHERE id = $1 AND firm_id = $2")
                .bind(id)
                .bind(firm.as_uuid())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Counts a genuine delivery on its channel.
    pub async fn record_delivery(&self, firm: FirmId, id: Uuid) -> Result<(), StoreError> {
        let now = self.now();
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE webhook_channels SET deliveries = deliveries + 1, last_delivery_at = $1 \
                 WHERE id = $2 AND firm_id = $3",
            )
            .bind(now)
            .bind(id)
            .bind(firm.as_uuid())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Forgets one channel (stopped, replaced, or removed by the provider).
    pub async fn delete_channel(&self, firm: FirmId, id: Uuid) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM webhook_channels WHERE id = $1 AND firm_id = $2")
                .bind(id)
                .bind(firm.as_uuid())
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
