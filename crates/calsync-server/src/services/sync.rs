//! Sync as callers may use it: who may sync, resync, replay, read the log, settle conflicts
//! and held deletions. The work itself is the engine's ([`calsync_engine::SyncEngine`]).
//!
//! Staff act on their own connections; admins also on every connection of their firm, and
//! only admins replay attempts.

use std::sync::Arc;

use calsync_domain::ValidationError;
use calsync_domain::connection::{ConnectionStatus, Provider};
use calsync_domain::ids::{ConflictId, ConnectionId, SyncAttemptId};
use calsync_domain::merge::{Field, Side};
use calsync_domain::sync::{ConflictSide, SyncTrigger};
use calsync_domain::tenant::Actor;
use calsync_engine::{SyncEngine, SyncError};
use calsync_store::{AdminConnection, AttemptQuery, Conflict, Connection, Db, HeldDelete, SyncAttempt, SyncStats};
use chrono::{DateTime, Utc};

use super::ServiceError;

impl From<SyncError> for ServiceError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::NotFound => ServiceError::NotFound,
            SyncError::Busy => ServiceError::Conflict {
                field: "connection".into(),
                message: "another worker is syncing this connection right now; try again shortly".into(),
            },
            SyncError::Conflict(m) => ServiceError::Conflict { field: "state".into(), message: m },
            SyncError::Internal(m) => ServiceError::Internal(anyhow::anyhow!(m)),
        }
    }
}

/// Where a connection's sync stands.
#[derive(Debug, Clone)]
pub struct SyncStatus {
    pub connection: Connection,
    pub in_progress: bool,
    /// What the sync this process runs has done so far.
    pub progress: Option<calsync_store::AttemptCounts>,
    pub last_attempt: Option<SyncAttempt>,
    pub next_sync_at: Option<DateTime<Utc>>,
    pub held_deletes: Vec<HeldDelete>,
}

pub struct SyncService {
    db: Db,
    engine: Arc<SyncEngine>,
}

impl SyncService {
    pub fn new(db: Db, engine: Arc<SyncEngine>) -> Self {
        SyncService { db, engine }
    }

    pub fn engine(&self) -> &Arc<SyncEngine> {
        &self.engine
    }

    /// The caller's own connection, or (for admins) any of the firm's.
    async fn reachable(&self, actor: &Actor, id: ConnectionId) -> Result<Connection, ServiceError> {
        let owner = if actor.is_admin() { None } else { Some(actor.user_id) };
        Ok(self.db.connection(actor.firm_id, owner, id).await?)
    }

    /// Syncs one of the caller's own connections now.
    pub async fn sync_now(&self, actor: &Actor, id: ConnectionId) -> Result<SyncAttempt, ServiceError> {
        self.db.connection(actor.firm_id, Some(actor.user_id), id).await?;
        Ok(self.engine.sync(actor.firm_id, id, SyncTrigger::Manual, None).await?)
    }

    pub async fn status(&self, actor: &Actor, id: ConnectionId) -> Result<SyncStatus, ServiceError> {
        let firm = actor.firm_id;
        // The attempt first: a sync finishes its attempt and the connection's error and schedule
        // together, so the connection read after it is at least as new (never an old error
        // beside a new attempt). It is shown only if the connection is the caller's to see.
        let last_attempt = self.db.last_attempt(firm, id).await?;
        let connection = self.reachable(actor, id).await?;
        Ok(SyncStatus {
            in_progress: self.engine.is_running(id) || self.db.sync_in_progress(firm, id).await?,
            progress: self.engine.progress(firm, id),
            last_attempt,
            next_sync_at: self.db.next_sync_at(firm, id).await?,
            held_deletes: self.db.held_deletes(firm, id).await?,
            connection,
        })
    }

    /// Fresh cursors and a full listing diffed against the links (owner or admin).
    pub async fn resync(&self, actor: &Actor, id: ConnectionId) -> Result<SyncAttempt, ServiceError> {
        self.reachable(actor, id).await?;
        Ok(self.engine.resync(actor.firm_id, id).await?)
    }

    /// Every connection of the firm, failing first (admins).
    pub async fn admin_connections(
        &self,
        actor: &Actor,
        status: Option<ConnectionStatus>,
        provider: Option<Provider>,
    ) -> Result<Vec<AdminConnection>, ServiceError> {
        if !actor.is_admin() {
            return Err(ServiceError::Forbidden("only admins can list the firm's connections".into()));
        }
        Ok(self.db.admin_connections(actor.firm_id, status, provider).await?)
    }

    /// The firm's connections by status and provider, and its syncs of the last 24 hours (admins).
    pub async fn stats(&self, actor: &Actor) -> Result<SyncStats, ServiceError> {
        if !actor.is_admin() {
            return Err(ServiceError::Forbidden("only admins can read the firm's sync statistics".into()));
        }
        let since = self.db.clock().now() - chrono::Duration::hours(24);
        Ok(self.db.sync_stats(actor.firm_id, since).await?)
    }

    /// The attempt log: the caller's own connections, or the whole firm's for admins.
    pub async fn attempts(&self, actor: &Actor, mut q: AttemptQuery) -> Result<(Vec<SyncAttempt>, bool), ServiceError> {
        if let Some(c) = q.connection {
            self.reachable(actor, c).await?;
        }
        if !actor.is_admin() {
            q.user = Some(actor.user_id);
        }
        Ok(self.db.query_attempts(actor.firm_id, &q).await?)
    }

    /// Runs a failed attempt's sync again (admins).
    pub async fn replay(&self, actor: &Actor, id: SyncAttemptId) -> Result<SyncAttempt, ServiceError> {
        if !actor.is_admin() {
            return Err(ServiceError::Forbidden("only admins can replay sync attempts".into()));
        }
        Ok(self.engine.replay(actor.firm_id, id).await?)
    }

    pub async fn conflicts(&self, actor: &Actor) -> Result<Vec<Conflict>, ServiceError> {
        let user = if actor.is_admin() { None } else { Some(actor.user_id) };
        let mut list = self.db.open_conflicts(actor.firm_id, user).await?;
        for c in &mut list {
            self.redact(actor, c).await?;
        }
        Ok(list)
    }

    /// A conflict about a private appointment shows its versions to the connection's owner only.
    async fn redact(&self, actor: &Actor, c: &mut Conflict) -> Result<(), ServiceError> {
        let owner = self.db.connection(actor.firm_id, None, c.connection_id).await?.user_id;
        let private = [Some(&c.local), Some(&c.remote), c.base.as_ref()]
            .into_iter()
            .flatten()
            .any(|d| d.visibility == calsync_domain::appointment::Visibility::Private);
        if private && owner != actor.user_id {
            for d in [Some(&mut c.local), Some(&mut c.remote), c.base.as_mut()].into_iter().flatten() {
                d.visibility = calsync_domain::appointment::Visibility::Private;
                super::appointments::redact_for(actor, owner, d);
            }
        }
        Ok(())
    }

    /// Settles a conflict keeping one side whole (`keep`), or field by field (`picks`: every
    /// field in conflict named once).
    pub async fn resolve(
        &self,
        actor: &Actor,
        id: ConflictId,
        keep: ConflictSide,
        picks: &[(Field, Side)],
    ) -> Result<Conflict, ServiceError> {
        let c = self.db.conflict(actor.firm_id, id).await?;
        self.reachable(actor, c.connection_id).await?;
        if !picks.is_empty() {
            if c.fields.is_empty() {
                return Err(ValidationError::new(
                    "keep",
                    "this conflict is about the whole appointment: keep \"internal\" or \"external\"",
                )
                .into());
            }
            for (f, _) in picks {
                if !c.fields.iter().any(|x| x == f.as_str()) {
                    let msg = format!("not in conflict; the fields in conflict are {}", c.fields.join(", "));
                    return Err(ValidationError::new(format!("keep.{}", f.as_str()), msg).into());
                }
            }
            if let Some(missing) = c.fields.iter().find(|x| !picks.iter().any(|(f, _)| f.as_str() == x.as_str())) {
                return Err(ValidationError::new(
                    format!("keep.{missing}"),
                    "every field in conflict needs a side: \"internal\" or \"external\"",
                )
                .into());
            }
        }
        let mut done = self.engine.resolve_conflict(actor.firm_id, id, keep, picks).await?;
        self.redact(actor, &mut done).await?;
        Ok(done)
    }

    /// Applies (or refuses) the deletions the mass-delete guard held; answers with the status.
    pub async fn settle_deletes(
        &self,
        actor: &Actor,
        id: ConnectionId,
        confirm: bool,
    ) -> Result<SyncStatus, ServiceError> {
        self.reachable(actor, id).await?;
        if confirm {
            self.engine.confirm_deletes(actor.firm_id, id).await?;
        } else {
            self.engine.reject_deletes(actor.firm_id, id).await?;
        }
        self.status(actor, id).await
    }
}
