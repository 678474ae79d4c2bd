//! Shared state handed to every handler.

use crate::clock::Clock;
use crate::config::Config;
use crate::services::connections::ConnectionService;
use crate::services::sync::SyncService;
use crate::throttle::{Backoff, RateLimiter, Throttle};
use calsync_store::Db;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    /// Failed sign-ins per (e-mail, client address): progressively slower guessing from one
    /// place, never a lockout of the account itself.
    pub login_throttle: Arc<Backoff>,
    /// Sign-in attempts per client address (IPv6 per /64): slows spraying many accounts.
    /// Generous, since one address may front a whole office.
    pub login_ip_throttle: Arc<Throttle>,
    /// API requests per user.
    pub api_limiter: Arc<RateLimiter>,
    /// Requests with an unknown, revoked or expired API token per client address: a client
    /// over it is refused before any lookup.
    pub bad_token_throttle: Arc<Throttle>,
    pub connections: Arc<ConnectionService>,
    /// Sync now, status, attempts, conflicts, held deletions (the engine does the work).
    pub sync: Arc<SyncService>,
    pub clock: Clock,
    /// This process's sync worker, when it runs one.
    pub worker: Option<Arc<crate::worker::WorkerState>>,
}
