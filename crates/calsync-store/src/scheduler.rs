//! The background workers' view of connections: which are due, claiming them with a lease, and
//! what the firm's admins read about them (every connection, failing first, and statistics).
//!
//! A claim is one statement. On PostgreSQL its inner `SELECT … FOR UPDATE SKIP LOCKED` lets
//! many workers claim at once without waiting on each other or claiming the same row; SQLite
//! has a single writer, so the statement is a claim on its own.

use std::collections::HashMap;

use calsync_domain::connection::{ConnectionStatus, Provider};
use calsync_domain::ids::{ConnectionId, FirmId, UserId};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Backend, Connection, Db, StoreError, SyncAttempt, micros, on_pool};

/// A connection a worker now holds the lease of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub firm_id: FirmId,
    pub connection_id: ConnectionId,
    pub provider: Provider,
    /// The worker whose lease had run out (it died or hung), when this claim took one over.
    pub taken_from: Option<String>,
}

/// What the claim selects: enabled, not waiting for a reconnect, due, and not leased.
const DUE: &str = "sync_enabled AND status IN ('active', 'error') AND next_sync_at IS NOT NULL \
                   AND next_sync_at <= $1 AND (lease_owner IS NULL OR lease_until IS NULL OR lease_until <= $1)";

/// A connection as the firm's admins see it: with its owner and its last attempt.
#[derive(Debug, Clone)]
pub struct AdminConnection {
    pub connection: Connection,
    pub owner_email: String,
    pub owner_name: String,
    pub last_attempt: Option<SyncAttempt>,
}

impl AdminConnection {
    /// Not active, failing its syncs, or with an error on record.
    pub fn failing(&self) -> bool {
        let c = &self.connection;
        c.status != ConnectionStatus::Active || c.failure_count > 0 || c.last_error.is_some()
    }
}

/// The firm's sync statistics since a time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncStats {
    /// Connections by status and provider: `(status, provider, count)`.
    pub connections: Vec<(ConnectionStatus, Provider, i64)>,
    pub attempts: i64,
    pub succeeded: i64,
    pub partial: i64,
    pub failed: i64,
    /// Events created, updated or deleted on either side.
    pub events_moved: i64,
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
    /// Connections due now and not being synced.
    pub backlog: i64,
}

impl Db {
    /// The firm a connection belongs to, for operator commands that name a connection alone
    /// (`calsync sync --connection`); everything after this lookup is scoped to that firm.
    pub async fn connection_firm(&self, id: ConnectionId) -> Result<FirmId, StoreError> {
        let row: Option<(Uuid,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT firm_id FROM oauth_connections WHERE id = $1")
                .bind(id.as_uuid())
                .fetch_optional(pool)
                .await?
        });
        row.map(|(f,)| FirmId(f)).ok_or(StoreError::NotFound)
    }

    /// Claims up to `limit` due connections for `owner` until `until`, the longest-waiting
    /// first. A connection is never claimed while another worker's lease on it runs.
    pub async fn claim_due(&self, owner: &str, until: DateTime<Utc>, limit: u32) -> Result<Vec<Claimed>, StoreError> {
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        // The pick is a CTE, which PostgreSQL evaluates once: as a plain `IN (subquery)` it
        // may be run again while rows are rechecked, and claim more than `limit`.
        let sql = format!(
            "WITH picked AS (SELECT id FROM oauth_connections WHERE {DUE} ORDER BY next_sync_at, id LIMIT $4 {lock}) \
             UPDATE oauth_connections SET lease_taken_from = lease_owner, lease_owner = $2, lease_until = $3, \
             due_again = FALSE \
             WHERE id IN (SELECT id FROM picked) AND {DUE} RETURNING firm_id, id, provider, lease_taken_from"
        );
        let rows: Vec<(Uuid, Uuid, String, Option<String>)> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(self.now())
                .bind(owner)
                .bind(micros(until))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|(firm, id, provider, taken_from)| {
                Ok(Claimed {
                    firm_id: firm.into(),
                    connection_id: id.into(),
                    provider: provider.parse().map_err(|_| StoreError::Corrupt("oauth_connections.provider".into()))?,
                    taken_from,
                })
            })
            .collect()
    }

    /// How many connections are due and not leased (the backlog), across all firms.
    pub async fn due_backlog(&self) -> Result<i64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM oauth_connections WHERE {DUE}");
        let (n,): (i64,) = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(self.now()).fetch_one(pool).await?
        });
        Ok(n)
    }

    /// When the next connection falls due (`None`: none is scheduled), across all firms.
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row: (Option<DateTime<Utc>>,) = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT MIN(next_sync_at) FROM oauth_connections \
                 WHERE sync_enabled AND status IN ('active', 'error') AND next_sync_at IS NOT NULL",
            )
            .fetch_one(pool)
            .await?
        });
        Ok(row.0)
    }

    /// Makes an enabled connection due now (a webhook said it changed). One due earlier keeps
    /// its time; one being synced is due again once that sync ends (it may have listed the
    /// calendar before the change). Returns whether it is enabled (and so will be synced).
    pub async fn mark_due(&self, firm: FirmId, connection: ConnectionId) -> Result<bool, StoreError> {
        let now = self.now();
        let n = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE oauth_connections SET due_again = TRUE, next_sync_at = CASE \
                 WHEN next_sync_at IS NULL OR next_sync_at > $1 THEN $1 ELSE next_sync_at END \
                 WHERE id = $2 AND firm_id = $3 AND sync_enabled",
            )
            .bind(now)
            .bind(connection.as_uuid())
            .bind(firm.as_uuid())
            .execute(pool)
            .await?
            .rows_affected()
        });
        if n == 1 {
            return Ok(true);
        }
        let c = self.connection(firm, None, connection).await?;
        Ok(c.settings.sync_enabled)
    }

    /// Every connection of the firm with its owner's e-mail and name.
    pub async fn connections_with_owners(&self, firm: FirmId) -> Result<Vec<(Connection, String, String)>, StoreError> {
        let connections = self.connections(firm, None).await?;
        let users: Vec<(Uuid, String, String)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, email, name FROM users WHERE firm_id = $1")
                .bind(firm.as_uuid())
                .fetch_all(pool)
                .await?
        });
        let users: HashMap<UserId, (String, String)> =
            users.into_iter().map(|(id, email, name)| (UserId::from(id), (email, name))).collect();
        Ok(connections
            .into_iter()
            .map(|c| {
                let (email, name) = users.get(&c.user_id).cloned().unwrap_or_default();
                (c, email, name)
            })
            .collect())
    }

    /// Every connection of the firm (optionally of one status or provider) with its owner and
    /// last attempt: failing ones first, then by owner and account.
    pub async fn admin_connections(
        &self,
        firm: FirmId,
        status: Option<ConnectionStatus>,
        provider: Option<Provider>,
    ) -> Result<Vec<AdminConnection>, StoreError> {
        let mut last = self.last_attempts(firm).await?;
        let mut list: Vec<AdminConnection> = self
            .connections_with_owners(firm)
            .await?
            .into_iter()
            .filter(|(c, _, _)| status.is_none_or(|s| c.status == s) && provider.is_none_or(|p| c.provider == p))
            .map(|(c, owner_email, owner_name)| {
                let last_attempt = last.remove(&c.id);
                AdminConnection { connection: c, owner_email, owner_name, last_attempt }
            })
            .collect();
        list.sort_by(|a, b| {
            (!a.failing(), &a.owner_email, &a.connection.account_email, a.connection.id).cmp(&(
                !b.failing(),
                &b.owner_email,
                &b.connection.account_email,
                b.connection.id,
            ))
        });
        Ok(list)
    }

    /// The firm's connections by status and provider, and its attempts since `since`.
    pub async fn sync_stats(&self, firm: FirmId, since: DateTime<Utc>) -> Result<SyncStats, StoreError> {
        let by: Vec<(String, String, i64)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT status, provider, COUNT(*) FROM oauth_connections WHERE firm_id = $1 \
                 GROUP BY status, provider ORDER BY status, provider",
            )
            .bind(firm.as_uuid())
            .fetch_all(pool)
            .await?
        });
        let corrupt = |what: &str| StoreError::Corrupt(format!("oauth_connections.{what}"));
        let mut connections = Vec::with_capacity(by.len());
        for (status, provider, n) in by {
            connections.push((
                status.parse().map_err(|_| corrupt("status"))?,
                provider.parse().map_err(|_| corrupt("provider"))?,
                n,
            ));
        }
        type Totals = (i64, Option<i64>, Option<i64>, Option<i64>, Option<i64>);
        let (attempts, succeeded, partial, failed, moved): Totals = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT COUNT(*), \
                 CAST(SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END) AS BIGINT), \
                 CAST(SUM(CASE WHEN status = 'partial' THEN 1 ELSE 0 END) AS BIGINT), \
                 CAST(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS BIGINT), \
                 CAST(SUM(pulled_created + pulled_updated + pulled_deleted + pushed_created + pushed_updated \
                 + pushed_deleted) AS BIGINT) \
                 FROM sync_attempts WHERE firm_id = $1 AND started_at >= $2",
            )
            .bind(firm.as_uuid())
            .bind(micros(since))
            .fetch_one(pool)
            .await?
        });
        let (timed,): (i64,) = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT COUNT(*) FROM sync_attempts WHERE firm_id = $1 AND started_at >= $2 AND duration_ms IS NOT NULL",
            )
            .bind(firm.as_uuid())
            .bind(micros(since))
            .fetch_one(pool)
            .await?
        });
        let p50_ms = self.duration_rank(firm, since, timed, 0.50).await?;
        let p95_ms = self.duration_rank(firm, since, timed, 0.95).await?;
        let backlog_sql = format!("SELECT COUNT(*) FROM oauth_connections WHERE firm_id = $2 AND {DUE}");
        let (backlog,): (i64,) = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(backlog_sql)).bind(self.now()).bind(firm.as_uuid()).fetch_one(pool).await?
        });
        Ok(SyncStats {
            connections,
            attempts,
            succeeded: succeeded.unwrap_or(0),
            partial: partial.unwrap_or(0),
            failed: failed.unwrap_or(0),
            events_moved: moved.unwrap_or(0),
            p50_ms,
            p95_ms,
            backlog,
        })
    }

    /// The `q` quantile of the firm's attempt durations since `since` (nearest rank), of `n`.
    async fn duration_rank(
        &self,
        firm: FirmId,
        since: DateTime<Utc>,
        n: i64,
        q: f64,
    ) -> Result<Option<i64>, StoreError> {
        if n == 0 {
            return Ok(None);
        }
        let rank = ((q * n as f64).ceil() as i64).clamp(1, n) - 1;
        let row: Option<(i64,)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT duration_ms FROM sync_attempts WHERE firm_id = $1 AND started_at >= $2 \
                 AND duration_ms IS NOT NULL ORDER BY duration_ms LIMIT 1 OFFSET $3",
            )
            .bind(firm.as_uuid())
            .bind(micros(since))
            .bind(rank)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|r| r.0))
    }
}

impl Db {
    /// Gives back every lease `owner` holds (a worker stopping with syncs unfinished), and
    /// closes the attempts it leaves running as interrupted (the next claim, finding the lease
    /// free, has no reason to look for them). Returns how many leases.
    pub async fn release_all_leases(&self, owner: &str) -> Result<u64, StoreError> {
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write_sql()).await?;
            sqlx::query(
                "UPDATE sync_attempts SET status = 'failed', finished_at = $1, error_kind = 'interrupted', \
                 error_message = 'the sync stopped before it finished (the worker was stopped)' \
                 WHERE worker = $2 AND status = 'running'",
            )
            .bind(self.now())
            .bind(owner)
            .execute(&mut *tx)
            .await?;
            let n = sqlx::query("UPDATE oauth_connections SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1")
                .bind(owner)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            n
        }))
    }
}
