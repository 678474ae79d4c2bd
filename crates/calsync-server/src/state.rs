//! Shared state handed to every handler.

use crate::clock::Clock;
use crate::config::Config;
use crate::services::connections::ConnectionService;
use crate::throttle::{RateLimiter, Throttle};
use calsync_store::Db;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    /// Failed sign-ins per e-mail address: slows guessing one account's password.
    pub login_throttle: Arc<Throttle>,
    /// Failed sign-ins per client address: slows spraying many accounts. Higher than the per-account
    /// limit, since one address may front a whole office.
    pub login_ip_throttle: Arc<Throttle>,
    /// API requests per user.
    pub api_limiter: Arc<RateLimiter>,
    pub connections: Arc<ConnectionService>,
    pub clock: Clock,
}
