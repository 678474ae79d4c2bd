//! The background worker: keeps every enabled connection in sync without anyone pressing a
//! button. It runs inside `calsync serve` (unless `--no-worker`) and alone as `calsync worker`;
//! any number of them may share one PostgreSQL database.
//!
//! Each round it claims due connections with a lease ([`Db::claim_due`]: never two workers on
//! one connection), up to its free slots, and syncs each through the engine, which renews the
//! lease while it works and releases it when done. A worker that dies leaves leases that run
//! out and are taken over by the others. Stopping, it claims nothing more, lets the syncs under
//! way finish for a grace period, and releases what it still holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use calsync_domain::ids::{ConnectionId, FirmId};
use calsync_domain::sync::SyncTrigger;
use calsync_engine::SyncEngine;
use calsync_store::{Claimed, Db};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

/// Tunables of one worker process.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Run a worker inside `calsync serve`.
    pub enabled: bool,
    /// Syncs this process runs at once.
    pub concurrency: usize,
    /// How often it looks for due connections when nothing wakes it sooner.
    pub poll: StdDuration,
    /// How long a stopping worker lets its syncs finish before releasing their leases.
    pub grace: StdDuration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            enabled: true,
            // A sync mostly waits for the provider: many run at once on few cores. What one
            // provider account takes is bounded by its budget, what the database takes by its pool.
            concurrency: 128,
            poll: StdDuration::from_secs(1),
            grace: StdDuration::from_secs(20),
        }
    }
}

/// What `/readyz` and the metrics say about the worker.
#[derive(Debug, Default)]
pub struct WorkerState {
    running: AtomicBool,
    in_flight: AtomicUsize,
    syncs: AtomicU64,
    takeovers: AtomicU64,
    /// Unix milliseconds of the last round that reached the database.
    last_round_ms: AtomicI64,
    backlog: AtomicI64,
    /// Set while the last round failed to reach the database.
    failing: AtomicBool,
    wake: Notify,
}

#[derive(Debug, Serialize)]
pub struct WorkerReport {
    pub running: bool,
    pub in_flight: usize,
    pub syncs: u64,
    pub lease_takeovers: u64,
    pub backlog: i64,
    pub last_round_at: Option<DateTime<Utc>>,
    pub healthy: bool,
}

impl WorkerState {
    pub fn report(&self) -> WorkerReport {
        let last = self.last_round_ms.load(Ordering::Relaxed);
        WorkerReport {
            running: self.running.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
            lease_takeovers: self.takeovers.load(Ordering::Relaxed),
            backlog: self.backlog.load(Ordering::Relaxed),
            last_round_at: (last > 0).then(|| DateTime::from_timestamp_millis(last)).flatten(),
            healthy: !self.failing.load(Ordering::Relaxed),
        }
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// Something fell due (a webhook, a setting): look now instead of at the next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

pub struct Worker {
    db: Db,
    engine: Arc<SyncEngine>,
    config: WorkerConfig,
    state: Arc<WorkerState>,
}

impl Worker {
    pub fn new(db: Db, engine: Arc<SyncEngine>, config: WorkerConfig, state: Arc<WorkerState>) -> Self {
        Worker { db, engine, config, state }
    }

    /// Runs until `stop` completes, then winds down (see the module docs).
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let slots = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut tasks: JoinSet<(FirmId, ConnectionId)> = JoinSet::new();
        self.state.running.store(true, Ordering::Relaxed);
        tracing::info!(worker = self.engine.instance(), concurrency = self.config.concurrency, "sync worker started");
        let mut last_backlog = std::time::Instant::now() - StdDuration::from_secs(60);
        // With more due than slots, claims go in batches of a quarter of the slots: one
        // statement starts several syncs instead of one per sync that ends.
        let batch = (self.config.concurrency / 4).max(1);
        let mut more_due = false;
        loop {
            while tasks.try_join_next().is_some() {}
            let free = slots.available_permits();
            if free > 0 && (!more_due || free >= batch) {
                let lease = self.engine.config().lease;
                let until = self.db.clock().now() + lease;
                match self.db.claim_due(self.engine.instance(), until, free as u32).await {
                    Ok(claimed) => {
                        self.state.failing.store(false, Ordering::Relaxed);
                        self.state.last_round_ms.store(Utc::now().timestamp_millis(), Ordering::Relaxed);
                        more_due = claimed.len() == free;
                        for c in claimed {
                            let permit =
                                Arc::clone(&slots).acquire_owned().await.expect("the semaphore is never closed");
                            self.start(&mut tasks, c, permit);
                        }
                    }
                    Err(e) => {
                        more_due = false;
                        self.state.failing.store(true, Ordering::Relaxed);
                        tracing::error!(error = %e, "the worker could not claim due connections");
                    }
                }
            }
            if last_backlog.elapsed() >= StdDuration::from_secs(5) {
                last_backlog = std::time::Instant::now();
                if let Ok(n) = self.db.due_backlog().await {
                    self.state.backlog.store(n, Ordering::Relaxed);
                    metrics::gauge!("calsync_sync_backlog").set(n as f64);
                }
            }
            // Every slot busy, or more due than slots were free: go again as slots free up.
            let full = (free == 0 || more_due) && !tasks.is_empty();
            tokio::select! {
                () = &mut stop => break,
                () = self.state.wake.notified() => {}
                Some(_) = tasks.join_next(), if full => {}
                () = tokio::time::sleep(self.config.poll), if !full => {}
            }
        }
        self.wind_down(tasks).await;
    }

    fn start(
        &self,
        tasks: &mut JoinSet<(FirmId, ConnectionId)>,
        c: Claimed,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        if let Some(from) = &c.taken_from {
            self.state.takeovers.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("calsync_lease_takeovers_total").increment(1);
            tracing::warn!(connection_id = %c.connection_id, from = %from, "took over the lease of a worker that stopped renewing it");
        }
        let (engine, state) = (Arc::clone(&self.engine), Arc::clone(&self.state));
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        tasks.spawn(async move {
            let (firm, id) = (c.firm_id, c.connection_id);
            match engine.sync_leased(firm, id, SyncTrigger::Scheduled, c.taken_from.is_some()).await {
                // Either way the engine gave back the lease (here the worker's and the
                // engine's are one name: releasing it here could free a newer sync's).
                Ok(a) => tracing::debug!(connection_id = %id, status = a.status.as_str(), "scheduled sync done"),
                Err(e) => tracing::warn!(connection_id = %id, error = %e, "scheduled sync did not run"),
            }
            state.syncs.fetch_add(1, Ordering::Relaxed);
            state.in_flight.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
            (firm, id)
        });
    }

    async fn wind_down(&self, mut tasks: JoinSet<(FirmId, ConnectionId)>) {
        self.state.running.store(false, Ordering::Relaxed);
        let n = tasks.len();
        if n > 0 {
            tracing::info!(in_flight = n, "sync worker stopping: letting the syncs under way finish");
        }
        let finished =
            tokio::time::timeout(self.config.grace, async { while tasks.join_next().await.is_some() {} }).await;
        if finished.is_err() {
            // Syncs still running past the grace period: their leases are given back so another
            // worker takes them at once rather than after the lease runs out.
            tasks.abort_all();
            match self.db.release_all_leases(self.engine.instance()).await {
                Ok(k) => tracing::warn!(
                    released = k,
                    "sync worker stopped with syncs unfinished; their leases were released"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "could not release the worker's leases; they run out on their own")
                }
            }
        }
        tracing::info!("sync worker stopped");
    }
}
