//! Shared state handed to every handler.

use crate::config::Config;
use crate::throttle::Throttle;
use calsync_store::Db;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    /// Failed-login throttle per e-mail address and per client address.
    pub login_throttle: Arc<Throttle>,
}
