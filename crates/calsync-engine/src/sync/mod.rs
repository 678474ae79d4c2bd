//! The sync of one connection, as DESIGN.md lays it out: claim the connection, get a working
//! token, then for every calendar pull, plan, push and record; the attempt log keeps the counts.
//!
//! One sync per connection runs at a time: within a process a second request waits for the
//! running one and gets its result; across processes the lease in the store decides.

mod calendar;
mod channels;
pub(crate) mod session;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use calsync_domain::clock::Clock;
use calsync_domain::connection::ConnectionStatus;
use calsync_domain::ids::{ConflictId, ConnectionId, FirmId, SyncAttemptId};
use calsync_domain::merge::{Field, Side};
use calsync_domain::sync::{AttemptStatus, ConflictSide, Rules, SyncTrigger};
use calsync_store::{AttemptCounts, Conflict, Connection, Db, StoreError, SyncAttempt};
use chrono::Duration;
use tokio::sync::watch;

use crate::registry::Providers;
use crate::tokens::TokenSource;
use calendar::{CalendarSync, Destructive, Frozen, window_for};
use session::{LiveCounts, Progress, Session, Stop};

pub use channels::{
    ChannelHealth, GOOGLE_PATH, MICROSOFT_LIFECYCLE_PATH, MICROSOFT_PATH, PENDING, WebhookConfig, secret_hash, stop_all,
};

/// Tunables of the engine; the defaults are what production runs with.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// How long a claimed connection stays ours without renewal.
    pub lease: Duration,
    /// When the next scheduled sync is due after one succeeds …
    pub interval: Duration,
    /// … give or take this share of it, so connections do not fall due in lockstep.
    pub jitter: f64,
    /// After failures in a row: the first wait, doubled with each further failure …
    pub failure_backoff: Duration,
    /// … up to this.
    pub failure_backoff_cap: Duration,
    /// Keep each provider account within its request budget ([`crate::budget`]). Off only
    /// against a sandbox that enforces no quota (tests, benchmarks of the engine itself).
    pub request_budgets: bool,
    /// Push channels (webhooks); `None` polls only.
    pub webhooks: Option<WebhookConfig>,
    /// Retries of one provider call that failed transiently.
    pub retries: u32,
    pub backoff_base: StdDuration,
    pub backoff_cap: StdDuration,
    /// The longest `Retry-After` honoured as given.
    pub retry_after_cap: StdDuration,
    /// Mass-delete guard: held when a sync would delete more than this many linked events of a
    /// calendar at once …
    pub mass_delete_min: usize,
    /// … and more than this share of them.
    pub mass_delete_share: f64,
}

impl SyncConfig {
    /// When a connection is due again after a sync that ended at `now`: the interval after a
    /// success; after `failures` failures in a row, the backoff doubled per failure up to its cap.
    /// Either way give or take `jitter` of it (`draw` in 0..1 picks where), and never before
    /// `now`: a tick missed meanwhile is skipped, not made up.
    pub fn next_sync(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        failures: u32,
        draw: f64,
    ) -> chrono::DateTime<chrono::Utc> {
        self.next_sync_after(now, failures, draw, self.interval)
    }

    /// [`SyncConfig::next_sync`] with another interval after a success (the longer one while
    /// push channels work).
    pub fn next_sync_after(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        failures: u32,
        draw: f64,
        interval: Duration,
    ) -> chrono::DateTime<chrono::Utc> {
        let base = if failures == 0 {
            interval
        } else {
            let doubled = self.failure_backoff.num_milliseconds().saturating_mul(1i64 << (failures - 1).min(30));
            Duration::milliseconds(doubled.min(self.failure_backoff_cap.num_milliseconds()))
        };
        let factor = 1.0 + self.jitter * (2.0 * draw.clamp(0.0, 1.0) - 1.0);
        now + Duration::milliseconds((base.num_milliseconds() as f64 * factor).max(0.0) as i64)
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            lease: Duration::minutes(10),
            interval: Duration::minutes(5),
            jitter: 0.2,
            failure_backoff: Duration::minutes(1),
            failure_backoff_cap: Duration::hours(1),
            webhooks: None,
            request_budgets: true,
            retries: 5,
            backoff_base: StdDuration::from_millis(500),
            backoff_cap: StdDuration::from_secs(30),
            retry_after_cap: StdDuration::from_secs(60),
            mass_delete_min: 50,
            mass_delete_share: 0.25,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SyncError {
    #[error("not found")]
    NotFound,
    /// Another process is syncing this connection.
    #[error("another worker is syncing this connection right now")]
    Busy,
    /// The request does not apply in the current state (nothing to replay, conflict resolved).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for SyncError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => SyncError::NotFound,
            other => SyncError::Internal(format!("storage: {other}")),
        }
    }
}

type Outcome = Option<Result<SyncAttempt, SyncError>>;

/// The sync lease a run starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// Take it (a sync someone asked for).
    Claim,
    /// The worker already claimed it ([`calsync_store::Db::claim_due`]); `took_over` when the
    /// claim took it from a worker that stopped renewing it, whose attempt may still be open.
    Held { took_over: bool },
}

/// A sync this process runs: the firm it was started for, where its outcome will be announced,
/// and its counts so far.
type Running = (FirmId, watch::Receiver<Outcome>, LiveCounts);

pub struct SyncEngine {
    db: Db,
    tokens: Arc<TokenSource>,
    providers: Arc<Providers>,
    clock: Clock,
    config: SyncConfig,
    instance: String,
    /// The syncs this process runs, with the firm each was started for and its counts so far.
    running: Mutex<HashMap<ConnectionId, Running>>,
    /// One writer per connection in this process: a sync, settling held deletions, resolving a
    /// conflict. (Across processes the lease in the store does the same.)
    locks: Mutex<HashMap<ConnectionId, Arc<tokio::sync::Mutex<()>>>>,
    /// Request budgets per provider account, shared by every sync of this process.
    budgets: crate::budget::Budgets,
    /// With webhooks off: connections whose push channels were all closed (none is opened
    /// again by this process), so their syncs need not look for channels.
    without_channels: Mutex<std::collections::HashSet<ConnectionId>>,
}

impl std::fmt::Debug for SyncEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncEngine").field("instance", &self.instance).finish_non_exhaustive()
    }
}

impl SyncEngine {
    pub fn new(db: Db, tokens: Arc<TokenSource>, providers: Arc<Providers>, config: SyncConfig) -> Self {
        let clock = db.clock().clone();
        let instance = format!("sync-{}-{}", std::process::id(), calsync_domain::ids::OutboxId::new());
        SyncEngine {
            db,
            tokens,
            providers,
            clock,
            config,
            instance,
            running: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            budgets: crate::budget::Budgets::default(),
            without_channels: Mutex::default(),
        }
    }

    /// Renews the connection's lease every third of its length while the work holding it runs
    /// (abort the handle when done): a long sync never outlives its lease.
    fn heartbeat(&self, firm: FirmId, id: ConnectionId) -> tokio::task::AbortHandle {
        let (db, clock, lease, owner) = (self.db.clone(), self.clock.clone(), self.config.lease, self.instance.clone());
        let every = (lease / 3).to_std().unwrap_or(StdDuration::from_secs(60));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match db.renew_sync(firm, id, &owner, clock.now() + lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(connection_id = %id, "the sync lease was taken by another worker");
                        return;
                    }
                    Err(e) => tracing::warn!(connection_id = %id, error = %e, "could not renew the sync lease"),
                }
            }
        })
        .abort_handle()
    }

    fn lock_for(&self, id: ConnectionId) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().unwrap_or_else(|p| p.into_inner()).entry(id).or_default().clone()
    }

    fn budget_of(&self, conn: &Connection) -> Option<Arc<crate::budget::AccountBudget>> {
        self.config
            .request_budgets
            .then(|| self.budgets.account(conn.provider, &conn.account_email.to_ascii_lowercase()))
    }

    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    /// This engine's name as a lease holder (and the worker named on its attempts).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Whether this process is syncing the connection right now.
    pub fn is_running(&self, id: ConnectionId) -> bool {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&id)
    }

    /// What the sync this process runs for the connection has done so far (updated before each
    /// request it makes to the provider); `None` when this process is not syncing it.
    pub fn progress(&self, firm: FirmId, id: ConnectionId) -> Option<AttemptCounts> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.get(&id).filter(|(of, _, _)| *of == firm).map(|(_, _, live)| live.get())
    }

    fn live_of(&self, id: ConnectionId) -> Option<LiveCounts> {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).get(&id).map(|(_, _, live)| live.clone())
    }

    /// Syncs the connection now and answers with the finished attempt. If this process is
    /// already syncing it, waits for that sync and answers with it instead of starting another.
    /// The sync runs in its own task: a caller that goes away does not cut it short.
    pub async fn sync(
        self: &Arc<Self>,
        firm: FirmId,
        id: ConnectionId,
        trigger: SyncTrigger,
        replay_of: Option<SyncAttemptId>,
    ) -> Result<SyncAttempt, SyncError> {
        self.start(firm, id, trigger, replay_of, false, Lease::Claim).await
    }

    /// [`SyncEngine::sync`] of a connection the worker already holds the lease of.
    pub async fn sync_leased(
        self: &Arc<Self>,
        firm: FirmId,
        id: ConnectionId,
        trigger: SyncTrigger,
        took_over: bool,
    ) -> Result<SyncAttempt, SyncError> {
        self.start(firm, id, trigger, None, false, Lease::Held { took_over }).await
    }

    /// `fresh`: a run that must start after this call (a resync, a replay) waits out one
    /// already running instead of answering with it.
    async fn start(
        self: &Arc<Self>,
        firm: FirmId,
        id: ConnectionId,
        trigger: SyncTrigger,
        replay_of: Option<SyncAttemptId>,
        fresh: bool,
        lease: Lease,
    ) -> Result<SyncAttempt, SyncError> {
        loop {
            let (mut rx, joined) = {
                let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
                match running.get(&id) {
                    // Only the firm's own connections: a running sync is never shared across
                    // firms (the run itself reads the connection as the firm's).
                    Some((of, _, _)) if *of != firm => return Err(SyncError::NotFound),
                    Some((_, rx, _)) => (rx.clone(), true),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        running.insert(id, (firm, rx.clone(), LiveCounts::default()));
                        let me = Arc::clone(self);
                        tokio::spawn(async move {
                            // The sync in a task of its own, so a panic in it still ends the
                            // run with an answer and frees the connection.
                            let inner = Arc::clone(&me);
                            let handle =
                                tokio::spawn(async move { inner.run(firm, id, trigger, replay_of, lease).await });
                            let result = match handle.await {
                                Ok(r) => r,
                                Err(e) => {
                                    tracing::error!(connection_id = %id, error = %e, "the sync task failed");
                                    // Only while the lease is still ours (nobody else can be
                                    // running one then); if closing fails, the lease runs out
                                    // and the next holder closes it.
                                    if me.db.close_interrupted_attempts_as(firm, id, &me.instance).await.is_ok() {
                                        let _ = me.db.release_sync(firm, id, &me.instance).await;
                                    }
                                    Err(SyncError::Internal("the sync stopped unexpectedly".into()))
                                }
                            };
                            me.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                            let _ = tx.send(Some(result));
                        });
                        (rx, false)
                    }
                }
            };
            let result = {
                let done = rx
                    .wait_for(Option::is_some)
                    .await
                    .map_err(|_| SyncError::Internal("the sync task ended without a result".into()))?;
                done.clone().expect("waited for a result")
            };
            if let Err(SyncError::Busy) = result {
                // Another process is syncing it: wait for that sync and answer with it (or, for
                // a run that must start afresh, start once it is done).
                self.wait_for_other(firm, id).await?;
                if fresh {
                    continue;
                }
                return self.db.last_attempt(firm, id).await?.ok_or(SyncError::Busy);
            }
            if joined && fresh {
                continue;
            }
            return result;
        }
    }

    /// Waits (up to one lease) until no process holds the connection's sync lease.
    async fn wait_for_other(&self, firm: FirmId, id: ConnectionId) -> Result<(), SyncError> {
        let deadline = std::time::Instant::now() + self.config.lease.to_std().unwrap_or(StdDuration::from_secs(600));
        while self.db.sync_in_progress(firm, id).await? {
            if std::time::Instant::now() >= deadline {
                return Err(SyncError::Busy);
            }
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Forgets every cursor of the connection and syncs: a full listing diffed against the links.
    pub async fn resync(self: &Arc<Self>, firm: FirmId, id: ConnectionId) -> Result<SyncAttempt, SyncError> {
        self.db.connection(firm, None, id).await?;
        // A sync under way would store its cursors again: clear them once it is done.
        let lock = self.lock_for(id);
        {
            let _guard = lock.lock().await;
            self.db.clear_cursors(firm, id).await?;
        }
        self.start(firm, id, SyncTrigger::Resync, None, true, Lease::Claim).await
    }

    /// Runs a failed or partial attempt's connection again, as a new attempt pointing back at it.
    pub async fn replay(self: &Arc<Self>, firm: FirmId, attempt: SyncAttemptId) -> Result<SyncAttempt, SyncError> {
        let old = self.db.attempt(firm, attempt).await?;
        if !matches!(old.status, AttemptStatus::Failed | AttemptStatus::Partial) {
            return Err(SyncError::Conflict(format!(
                "only failed or partial attempts can be replayed; this one is {}",
                old.status.as_str()
            )));
        }
        self.start(firm, old.connection_id, SyncTrigger::Replay, Some(attempt), true, Lease::Claim).await
    }

    async fn run(
        &self,
        firm: FirmId,
        id: ConnectionId,
        trigger: SyncTrigger,
        replay_of: Option<SyncAttemptId>,
        lease: Lease,
    ) -> Result<SyncAttempt, SyncError> {
        let conn = match self.db.connection(firm, None, id).await {
            Ok(c) => c,
            Err(e) => {
                if matches!(lease, Lease::Held { .. }) {
                    // The worker's claim is given back (a connection deleted meanwhile, or a
                    // database error: another worker may take it at once).
                    let _ = self.db.release_sync(firm, id, &self.instance).await;
                }
                return Err(e.into());
            }
        };
        let lock = self.lock_for(id);
        let _guard = lock.lock().await;
        let attempt = match self.begin(&conn, trigger, replay_of, lease).await {
            Ok(a) => a,
            Err(e) => {
                if !matches!(e, SyncError::Busy)
                    && let Err(e) = self.db.release_sync(firm, id, &self.instance).await
                {
                    tracing::error!(connection_id = %id, error = %e, "could not release the sync lease");
                }
                return Err(e);
            }
        };
        let heartbeat = self.heartbeat(firm, id);
        let attempt_id = attempt.id;
        let result = self.run_claimed(&conn, attempt, &heartbeat).await;
        heartbeat.abort();
        if let Err(e) = &result {
            // The outcome (and the lease given back with it) was not recorded: this attempt
            // (only this one: another worker may have taken the lease over and be running its
            // own) is closed as interrupted and the lease released here instead. If even that
            // fails, the lease runs out and whoever takes it over closes the attempt.
            tracing::error!(connection_id = %id, error = %e, "the sync could not record its outcome");
            let closed = self
                .db
                .finish_attempt(
                    firm,
                    attempt_id,
                    AttemptStatus::Failed,
                    &calsync_store::AttemptCounts::default(),
                    Some(("interrupted", "the sync could not record its outcome")),
                    &[],
                )
                .await;
            if matches!(closed, Ok(_) | Err(StoreError::NotFound))
                && let Err(e) = self.db.release_sync(firm, id, &self.instance).await
            {
                tracing::error!(connection_id = %id, error = %e, "could not release the sync lease");
            }
        }
        result
    }

    /// Holds the lease and opens the attempt: for a connection the worker claimed, one
    /// statement; otherwise the lease is taken first. Attempts a previous holder left running
    /// (it died mid-sync) are closed as interrupted.
    async fn begin(
        &self,
        conn: &Connection,
        trigger: SyncTrigger,
        replay_of: Option<SyncAttemptId>,
        lease: Lease,
    ) -> Result<SyncAttempt, SyncError> {
        let (firm, id) = (conn.firm_id, conn.id);
        if let Lease::Held { took_over } = lease {
            if took_over {
                // Only while the lease is still ours: then any running attempt is the dead
                // holder's.
                self.db.close_interrupted_attempts_as(firm, id, &self.instance).await?;
            }
            if let Some(a) = self.db.start_leased_attempt(firm, id, trigger, replay_of, &self.instance).await? {
                return Ok(a);
            }
            // The lease is gone (a sync of this process released it meanwhile): take it as
            // any other run does.
        }
        let until = self.clock.now() + self.config.lease;
        if !self.db.claim_sync(firm, id, &self.instance, until).await? {
            return Err(SyncError::Busy);
        }
        self.db.close_interrupted_attempts(firm, id).await?;
        Ok(self.db.start_attempt_by(firm, id, trigger, replay_of, Some(&self.instance)).await?)
    }

    /// The sync under the lease, to its recorded outcome (which gives the lease back).
    async fn run_claimed(
        &self,
        conn: &Connection,
        attempt: SyncAttempt,
        heartbeat: &tokio::task::AbortHandle,
    ) -> Result<SyncAttempt, SyncError> {
        let firm = conn.firm_id;
        let started = std::time::Instant::now();
        let mut notes = Vec::new();
        let mut channels = ChannelHealth::default();
        let cursors;
        let (status, counts, error) = match self.sync_connection(conn).await {
            Ok(mut s) => {
                cursors = std::mem::take(&mut s.cursors);
                notes.clone_from(&s.notes);
                channels = s.channels;
                let status = if s.item_errors.is_empty() { AttemptStatus::Success } else { AttemptStatus::Partial };
                let error = if s.held > 0 {
                    Some((
                        "deletes_held".to_owned(),
                        format!(
                            "{} deletions are waiting for confirmation: more than {} events and {:.0}% of a calendar at once",
                            s.held,
                            self.config.mass_delete_min,
                            self.config.mass_delete_share * 100.0
                        ),
                    ))
                } else {
                    s.item_errors.first().map(|e| ("item".to_owned(), summarise(&s.item_errors, e)))
                };
                (status, s.counts, error)
            }
            Err((stop, progress, partial)) => {
                cursors = progress.cursors;
                let status = if partial { AttemptStatus::Partial } else { AttemptStatus::Failed };
                (status, progress.counts, Some((stop.kind().to_owned(), stop.to_string())))
            }
        };
        let succeeded = status != AttemptStatus::Failed;
        let message = error.as_ref().map(|(_, m)| m.as_str());
        let failures = if succeeded { 0 } else { u32::try_from(conn.failure_count).unwrap_or(0) + 1 };
        let now = self.clock.now();
        let interval = match &self.config.webhooks {
            Some(w) if channels.healthy && succeeded => w.interval,
            _ => self.config.interval,
        };
        let mut next = self.config.next_sync_after(now, failures, rand::random::<f64>(), interval);
        if let Some(renew) = channels.renew_at {
            // In time to renew the first channel that runs out.
            next = next.min(renew.max(now));
        }
        let provider = conn.provider.as_str();
        metrics::counter!("calsync_syncs_total", "provider" => provider, "outcome" => status.as_str()).increment(1);
        metrics::histogram!("calsync_sync_duration_seconds", "provider" => provider)
            .record(started.elapsed().as_secs_f64());
        let err = error.as_ref().map(|(k, m)| (k.as_str(), m.as_str()));
        let outcome = calsync_store::SyncOutcome {
            connection: conn.id,
            succeeded,
            last_error: message,
            next_sync_at: next,
            release: Some(&self.instance),
            cursors: &cursors,
        };
        heartbeat.abort();
        let done = self.db.finish_sync(firm, attempt.id, status, &counts, err, &notes, &outcome).await?;
        tracing::info!(
            connection_id = %conn.id,
            attempt_id = %done.id,
            status = done.status.as_str(),
            requests = done.counts.requests,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "sync finished"
        );
        Ok(done)
    }

    /// Every calendar of the connection. A calendar that fails leaves the others going; a
    /// refused grant stops everything.
    async fn sync_connection(&self, conn: &Connection) -> Result<Session, (Stop, Progress, bool)> {
        let fail = |stop: Stop| (stop, Progress::default(), false);
        if matches!(conn.status, ConnectionStatus::Expired | ConnectionStatus::Revoked) {
            return Err(fail(Stop::Reauthorize(conn.status_message.clone())));
        }
        let provider = self.providers.calendar(conn.provider).ok_or_else(|| {
            fail(Stop::Permanent(format!("{} is not configured on this server", conn.provider.label())))
        })?;
        let mut s =
            Session::start(self.db.clone(), Arc::clone(&self.tokens), self.config.clone(), conn, self.budget_of(conn))
                .await
                .map_err(fail)?;
        s.live = self.live_of(conn.id);
        let firm = conn.firm_id;
        let load = async {
            let calendars = self.db.calendars(firm, conn.id).await?;
            let push = Db::push_calendar_of(&calendars, conn.push_calendar.as_deref());
            // Read by the first calendar with something to plan.
            let frozen = Frozen::default();
            Ok::<_, StoreError>((calendars, push, frozen))
        };
        let (calendars, push, mut frozen) = load.await.map_err(|e| fail(Stop::from(e)))?;
        let rules = Rules { conflicts: conn.settings.conflict_strategy, deletes: conn.settings.delete_policy };
        let window = window_for(self.clock.now(), conn.settings.sync_window_days.days());
        // Channels first: a change made while the calendars are read is then delivered, and
        // the listing that follows covers anything before.
        let watched: Vec<&calsync_store::SyncedCalendar> =
            calendars.iter().filter(|c| c.selected || push.as_ref().is_some_and(|p| p.id == c.id)).collect();
        s.channels = self.keep_channels(&mut s, provider.as_ref(), conn, &watched).await;
        if let Some(m) = s.reauthorize.clone() {
            return Err((Stop::Reauthorize(m), s.progress(), false));
        }
        let mut failures: Vec<Stop> = Vec::new();
        let mut done = 0usize;
        // The lease was taken (or renewed) just before this sync began.
        let mut renewed = std::time::Instant::now();
        for cal in calendars.iter().filter(|c| c.selected || push.as_ref().is_some_and(|p| p.id == c.id)) {
            let is_push = push.as_ref().is_some_and(|p| p.id == cal.id);
            // Renew the lease calendar by calendar (not right after it was taken); losing it
            // means another worker took over.
            if renewed.elapsed() >= self.config.lease.to_std().unwrap_or_default() / 10 {
                renewed = std::time::Instant::now();
                let until = self.clock.now() + self.config.lease;
                match self.db.renew_sync(firm, conn.id, &self.instance, until).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let stop = Stop::Internal("the sync lease was lost to another worker".into());
                        return Err((stop, s.progress(), done > 0));
                    }
                    Err(e) => return Err((Stop::from(e), s.progress(), done > 0)),
                }
            }
            let run =
                CalendarSync::lazy(&mut s, provider.as_ref(), conn, cal, is_push, rules, window, &mut frozen).run();
            match run.await {
                Ok(()) => done += 1,
                Err(stop @ Stop::Reauthorize(_)) => return Err((stop, s.progress(), done > 0)),
                Err(stop) => {
                    tracing::warn!(connection_id = %conn.id, calendar = %cal.id, error = %stop, "calendar sync failed");
                    failures.push(stop);
                }
            }
        }
        match failures.into_iter().next() {
            None => Ok(s),
            Some(stop) => Err((stop, s.progress(), done > 0)),
        }
    }

    /// Applies the deletions the mass-delete guard held.
    pub async fn confirm_deletes(self: &Arc<Self>, firm: FirmId, id: ConnectionId) -> Result<usize, SyncError> {
        self.settle_held(firm, id, true).await
    }

    /// Refuses the held deletions and restores the other side: appointments deleted in calsync
    /// come back; events deleted at the provider are created again from calsync's copy.
    pub async fn reject_deletes(self: &Arc<Self>, firm: FirmId, id: ConnectionId) -> Result<usize, SyncError> {
        self.settle_held(firm, id, false).await
    }

    async fn settle_held(&self, firm: FirmId, id: ConnectionId, confirm: bool) -> Result<usize, SyncError> {
        let conn = self.db.connection(firm, None, id).await?;
        let lock = self.lock_for(id);
        let _guard = lock.lock().await;
        let until = self.clock.now() + self.config.lease;
        if !self.db.claim_sync(firm, id, &self.instance, until).await? {
            return Err(SyncError::Busy);
        }
        let heartbeat = self.heartbeat(firm, id);
        let result = self.settle_claimed(&conn, confirm).await;
        heartbeat.abort();
        let _ = self.db.release_sync(firm, id, &self.instance).await;
        result
    }

    async fn settle_claimed(&self, conn: &Connection, confirm: bool) -> Result<usize, SyncError> {
        let firm = conn.firm_id;
        let held = self.db.held_deletes(firm, conn.id).await?;
        if held.is_empty() {
            return Ok(0);
        }
        let provider = self
            .providers
            .calendar(conn.provider)
            .ok_or_else(|| SyncError::Conflict(format!("{} is not configured", conn.provider.label())))?;
        let mut s =
            Session::start(self.db.clone(), Arc::clone(&self.tokens), self.config.clone(), conn, self.budget_of(conn))
                .await
                .map_err(|e| SyncError::Conflict(e.to_string()))?;
        let calendars = self.db.calendars(firm, conn.id).await?;
        let push = self.db.push_calendar(firm, conn.id).await?;
        let rules = Rules { conflicts: conn.settings.conflict_strategy, deletes: conn.settings.delete_policy };
        let window = window_for(self.clock.now(), conn.settings.sync_window_days.days());
        let mut frozen = Frozen::default();
        let mut settled = 0;
        for cal in &calendars {
            let mine: Vec<_> = held.iter().filter(|h| h.calendar_id == cal.id).collect();
            if mine.is_empty() {
                continue;
            }
            let is_push = push.as_ref().is_some_and(|p| p.id == cal.id);
            let mut cs = CalendarSync::new(&mut s, provider.as_ref(), conn, cal, is_push, rules, window, &mut frozen)
                .await
                .map_err(|e| SyncError::Internal(e.to_string()))?;
            for h in mine {
                let errors_before = cs.s.item_errors.len();
                let link = match self.db.link(firm, h.link_id).await {
                    Ok(l) => l,
                    Err(StoreError::NotFound) => {
                        self.db.release_held_delete(firm, h.id).await?;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                if confirm {
                    // Against the version the hold was made for: an edit since beats the deletion.
                    let version = Some(link.base.local_version);
                    cs.apply_destructive(Destructive { link, side: h.side, version, from_pull: false }).await;
                    cs.drain_deletes().await;
                } else {
                    cs.restore(link, h.side).await;
                }
                if cs.s.item_errors.len() > errors_before {
                    // Stays held: the user's decision is not half-applied and forgotten.
                    continue;
                }
                // Dropping the link already released it (the hold cascades with the link).
                match self.db.release_held_delete(firm, h.id).await {
                    Ok(()) | Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
                settled += 1;
            }
        }
        if let Some(first) = s.item_errors.first() {
            return Err(SyncError::Conflict(format!(
                "{} of the held deletions could not be settled and stay held: {first}",
                s.item_errors.len()
            )));
        }
        Ok(settled)
    }

    /// Settles an open conflict (strategy `manual`): each field in conflict takes the side named in
    /// `picks`, or `keep`; the result is written to whichever side differs.
    pub async fn resolve_conflict(
        self: &Arc<Self>,
        firm: FirmId,
        id: ConflictId,
        keep: ConflictSide,
        picks: &[(Field, Side)],
    ) -> Result<Conflict, SyncError> {
        let first = self.db.conflict(firm, id).await?;
        let conn = self.db.connection(firm, None, first.connection_id).await?;
        let lock = self.lock_for(conn.id);
        let _guard = lock.lock().await;
        // Read again under the lock: a concurrent resolve may have settled it.
        let c = self.db.conflict(firm, id).await?;
        if c.resolved_at.is_some() {
            return Err(SyncError::Conflict("this conflict is already resolved".into()));
        }
        let until = self.clock.now() + self.config.lease;
        if !self.db.claim_sync(firm, conn.id, &self.instance, until).await? {
            return Err(SyncError::Busy);
        }
        let heartbeat = self.heartbeat(firm, conn.id);
        let result = async {
            let provider = self
                .providers
                .calendar(conn.provider)
                .ok_or_else(|| SyncError::Conflict(format!("{} is not configured", conn.provider.label())))?;
            let mut s = Session::start(
                self.db.clone(),
                Arc::clone(&self.tokens),
                self.config.clone(),
                &conn,
                self.budget_of(&conn),
            )
            .await
            .map_err(|e| SyncError::Conflict(e.to_string()))?;
            let calendars = self.db.calendars(firm, conn.id).await?;
            let cal = calendars.iter().find(|k| k.id == c.calendar_id).ok_or(SyncError::NotFound)?;
            let push = self.db.push_calendar(firm, conn.id).await?;
            let is_push = push.as_ref().is_some_and(|p| p.id == cal.id);
            let rules = Rules { conflicts: conn.settings.conflict_strategy, deletes: conn.settings.delete_policy };
            let window = window_for(self.clock.now(), conn.settings.sync_window_days.days());
            let mut frozen = Frozen::default();
            let link = self.db.link(firm, c.link_id).await?;
            let mut cs = CalendarSync::new(&mut s, provider.as_ref(), &conn, cal, is_push, rules, window, &mut frozen)
                .await
                .map_err(|e| SyncError::Internal(e.to_string()))?;
            cs.settle_conflict(&c, link, keep, picks).await.map_err(SyncError::Conflict)?;
            let named: Vec<(&str, ConflictSide)> = picks
                .iter()
                .map(|(f, s)| {
                    (f.as_str(), if *s == Side::Local { ConflictSide::Internal } else { ConflictSide::External })
                })
                .collect();
            match self.db.resolve_conflict(firm, id, keep, &named).await {
                Ok(done) => Ok(done),
                // Settling it dropped the link, and the conflict record with it.
                Err(StoreError::NotFound) => {
                    Ok(Conflict { resolved_at: Some(self.clock.now()), resolution: Some(keep), ..c.clone() })
                }
                Err(e) => Err(e.into()),
            }
        }
        .await;
        heartbeat.abort();
        let _ = self.db.release_sync(firm, conn.id, &self.instance).await;
        result
    }
}

fn summarise(all: &[String], first: &str) -> String {
    match all.len() {
        1 => first.to_owned(),
        n => format!("{first} (and {} more)", n - 1),
    }
}
