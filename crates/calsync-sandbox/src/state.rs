//! Shared sandbox state: configuration, clock, the provider "worlds" behind one lock,
//! injected faults, latency and request counters.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::SandboxConfig;
use crate::clock::Clock;
use crate::faults::Faults;
use crate::paging::PagingMode;
use crate::{google, mail, microsoft, webhook};

/// The OAuth client that is always registered, for both providers.
pub const DEV_CLIENT_ID: &str = "calsync-dev";
pub const DEV_CLIENT_SECRET: &str = "calsync-dev-secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Provider {
    Google,
    Microsoft,
}

/// Everything a request may change, behind one mutex: operations are short and in memory,
/// and one lock keeps the change sequence and the random generator deterministic.
/// Serialized whole into the state file (`persist`).
#[derive(Serialize, Deserialize)]
pub(crate) struct World {
    /// Saved as a seed beside the world (`persist`).
    #[serde(skip, default = "StdRng::from_os_rng")]
    pub rng: StdRng,
    /// Global change sequence; every stored change takes the next number.
    seq: u64,
    pub google: google::GoogleWorld,
    pub microsoft: microsoft::MsWorld,
    /// Webhook deliveries queued by this request's writes, sent once it finishes.
    #[serde(skip)]
    pub outbox: Vec<webhook::Delivery>,
    /// Invitations, updates and cancellations the real service would have e-mailed.
    pub mail: Vec<mail::Mail>,
}

impl World {
    fn new(seed: Option<u64>) -> Self {
        Self {
            rng: match seed {
                Some(s) => StdRng::seed_from_u64(s),
                None => StdRng::from_os_rng(),
            },
            seq: 0,
            google: Default::default(),
            microsoft: Default::default(),
            outbox: Vec::new(),
            mail: Vec::new(),
        }
    }

    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }
}

/// Per-mailbox Graph load, for the Outlook throttling rules.
#[derive(Debug, Default)]
pub(crate) struct MailboxLoad {
    /// Admission times (sandbox ms) inside the current sliding window.
    pub recent: std::collections::VecDeque<i64>,
    pub in_flight: u32,
}

/// Admission times per user e-mail, and for the whole project.
pub(crate) type GoogleQuota = (HashMap<String, std::collections::VecDeque<i64>>, std::collections::VecDeque<i64>);

pub(crate) struct Shared {
    pub config: SandboxConfig,
    pub clock: Clock,
    world: Mutex<World>,
    pub faults: Faults,
    pub latency_ms: AtomicU64,
    pub requests: Mutex<BTreeMap<String, u64>>,
    pub graph_load: Mutex<HashMap<String, MailboxLoad>>,
    pub push_control: Mutex<webhook::PushControl>,
    /// Google Calendar API admissions (sandbox ms) per user e-mail, and for the project.
    pub google_quota: Mutex<GoogleQuota>,
    /// Page shapes per provider (`POST /_sandbox/paging`).
    paging: Mutex<HashMap<Provider, PagingMode>>,
    /// Webhook coalescing window in ms (`POST /_sandbox/push {"coalesce_ms"}`).
    pub coalesce_ms: AtomicU64,
    /// Deliveries waiting out their coalescing window, by channel / subscription.
    pub held: Mutex<HashMap<String, webhook::Held>>,
    /// Numbers the held batches, so a window's timer sends only the batch it started for.
    pub held_generation: AtomicU64,
    /// Set whenever the world is locked (or the clock moved), cleared by a save: the state
    /// file is written only after something may have changed.
    pub dirty: AtomicBool,
    /// SHA-256 of the last state written; also the lock that keeps saves one at a time.
    pub last_saved: Mutex<Option<[u8; 32]>>,
}

impl Shared {
    pub(crate) fn new(config: SandboxConfig) -> Self {
        let world = World::new(config.seed);
        Self {
            coalesce_ms: AtomicU64::new(config.webhook_coalesce_window.as_millis() as u64),
            config,
            clock: Clock::default(),
            world: Mutex::new(world),
            faults: Faults::default(),
            latency_ms: AtomicU64::new(0),
            requests: Mutex::new(BTreeMap::new()),
            graph_load: Mutex::new(HashMap::new()),
            push_control: Mutex::new(webhook::PushControl::default()),
            google_quota: Mutex::new(Default::default()),
            paging: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
            held_generation: AtomicU64::new(0),
            dirty: AtomicBool::new(false),
            last_saved: Mutex::new(None),
        }
    }

    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.dirty.store(true, Ordering::Relaxed);
        self.world_unmarked()
    }

    /// The world without marking it changed: for the state-file writer itself.
    pub(crate) fn world_unmarked(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock must not wedge the whole sandbox.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn count_request(&self, key: String) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(key).or_insert(0) += 1;
    }

    pub(crate) fn latency(&self) -> u64 {
        self.latency_ms.load(Ordering::Relaxed)
    }

    /// Replaces the world with one loaded from the state file.
    pub(crate) fn restore(&self, world: World, clock_offset_ms: i64) {
        *self.world() = world;
        self.clock.set_offset_ms(clock_offset_ms);
        self.dirty.store(false, Ordering::Relaxed);
    }

    /// Back to a freshly started sandbox (same configuration and seed).
    pub(crate) fn reset(&self) {
        *self.world() = World::new(self.config.seed);
        self.faults.clear();
        self.latency_ms.store(0, Ordering::Relaxed);
        self.requests.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.graph_load.lock().unwrap_or_else(|e| e.into_inner()).clear();
        *self.push_control.lock().unwrap_or_else(|e| e.into_inner()) = Default::default();
        *self.google_quota.lock().unwrap_or_else(|e| e.into_inner()) = Default::default();
        self.paging.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.coalesce_ms.store(self.config.webhook_coalesce_window.as_millis() as u64, Ordering::Relaxed);
        self.held.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.clock.reset();
    }

    pub(crate) fn paging(&self, provider: Provider) -> PagingMode {
        self.paging.lock().unwrap_or_else(|e| e.into_inner()).get(&provider).copied().unwrap_or_default()
    }

    pub(crate) fn set_paging(&self, provider: Provider, mode: PagingMode) {
        self.paging.lock().unwrap_or_else(|e| e.into_inner()).insert(provider, mode);
    }

    pub(crate) fn public_url(&self, path: &str) -> String {
        format!("{}{}", self.config.public_base_url.trim_end_matches('/'), path)
    }
}
