//! A faithful local emulator of Google (OAuth 2.0 + Calendar API v3) and Microsoft (identity
//! platform v2.0 + Graph calendar), following `specs/provider-apis.md`. When the real service's
//! behaviour is uncertain the sandbox is stricter, never kinder.
//!
//! Mount [`Sandbox::router`] anywhere (for example under `/sandbox`), or run it alone with
//! [`serve`]. Paths below the mount point:
//!
//! | service | path |
//! |---|---|
//! | Google authorize / token / revoke | `/google/o/oauth2/v2/auth`, `/google/token`, `/google/revoke` |
//! | Google user info (e-mail of the account) | `/google/oauth2/v3/userinfo` (also `/google/oauth2/v2/userinfo`) |
//! | Google Calendar v3 | `/google/calendar/v3/…` |
//! | Microsoft authorize / token | `/microsoft/{tenant}/oauth2/v2.0/authorize`, `…/token` |
//! | Microsoft Graph v1.0 | `/microsoft/graph/v1.0/…` |
//! | Google batch | `/google/batch/calendar/v3` (multipart/mixed) |
//! | Microsoft Graph batch | `/microsoft/graph/v1.0/$batch` |
//! | control | `/_sandbox/…` |
//!
//! Control API (never counted or faulted):
//!
//! | endpoint | body | effect |
//! |---|---|---|
//! | `POST /_sandbox/accounts` | `{"provider", "email", "time_zone"?}` | creates an account, returns tokens |
//! | `POST /_sandbox/faults` | fault spec | injects faults (`retry_after` is refused with 400 for `google`: Google's error answers carry no `Retry-After`) |
//! | `GET /_sandbox/faults` | | the rules still armed, each with `remaining` |
//! | `DELETE /_sandbox/faults` | | disarms every rule (accounts, events and clock stay) |
//! | `POST /_sandbox/paging` | `{"provider", "mode": "normal"\|"ragged"}` | ragged: short and empty pages, repeated Graph delta ids (seeded) |
//! | `GET /_sandbox/mail?provider=&account=` | | invitations, updates and cancellations the services would have e-mailed |
//! | `POST /_sandbox/clock` | `{"advance_seconds"}` | moves the sandbox clock forward |
//! | `POST /_sandbox/latency` | `{"milliseconds"}` | delays every provider response |
//! | `POST /_sandbox/revoke` | `{"provider", "email"}` | revokes the account's grants |
//! | `POST /_sandbox/expire-cursors` | `{"provider", "email"?}` | invalidates sync/delta tokens |
//! | `GET /_sandbox/requests` | | request counters |
//! | `POST /_sandbox/reset` | | forgets everything |
//! | `POST /_sandbox/push` | `{"mode"?: "normal"\|"drop"\|"duplicate"\|"delay", "delay_ms", "count", "coalesce_ms"?}` | steers webhook deliveries; `coalesce_ms` sets the batching window (0: one delivery per change) |
//! | `POST /_sandbox/graph-lifecycle` | `{"subscription_id", "event"}` | sends a Graph lifecycle notification |
//! | `POST /_sandbox/seed-events` | `{"provider", "email", "count"}` | bulk-loads events |
//! | `POST /_sandbox/google/split-series` | `{"email", "calendar_id"?, "event_id", "from"}` | splits a Google series as the web UI's "this and following events" edit does (below) |
//! | `POST /_sandbox/google/invite` | `{"email", "calendar_id"?, "organizer", "event"}` | places a Google event (`event` is event JSON) organised by `organizer` in the account's calendar (default `primary`): the organizer is an attendee with `organizer: true`, `accepted`; the account an attendee with `self: true`, `needsAction`. Calendar API writes by the account may change only its own `responseStatus`, `reminders`, `colorId`, `transparency` and private extended properties (else 403 `forbiddenForNonOrganizer`); deleting removes its copy. 200 with the event |
//! | `POST /_sandbox/google/organizer-update` | `{"email", "calendar_id"?, "event_id", "patch"}` | changes such an event (or one instance) as its organizer would, with PATCH semantics; a new time bumps `sequence`; a guest list without the account cancels its copy; shows in incremental sync. 200 with the event; 400 for the account's own events, 410 when cancelled |
//! | `POST /_sandbox/google/organizer-cancel` | `{"email", "calendar_id"?, "event_id"}` | cancels such an event (or one instance) as its organizer: `status: cancelled` in incremental sync. 200; 410 when already cancelled |
//! | `POST /_sandbox/microsoft/invite` | `{"email", "organizer": {"name"?, "address"}, "event"}` | puts a meeting organised by someone else (Graph event JSON) in the mailbox's default calendar, not yet answered; 201 with the event |
//! | `POST /_sandbox/microsoft/organizer-update` | `{"email", "event_id", "event"}` | the organizer changed that meeting: the properties are merged into the attendee copy (a new time resets the answer) |
//! | `POST /_sandbox/microsoft/organizer-cancel` | `{"email", "event_id"}` | the organizer cancelled it: the copy stays, `isCancelled: true`, subject prefixed "Canceled: " |
//! | `POST /_sandbox/microsoft/mailbox-settings` | `{"email", "custom_time_zone"}` | the mailbox has a custom zone (e.g. `tzone://Microsoft/Custom`): events report it as `originalStartTimeZone`/`originalEndTimeZone`; `null` clears it |
//!
//! `google/split-series`: `calendar_id` defaults to `primary`; `from` is the original start
//! of the first instance of the new series (RFC 3339; `YYYY-MM-DD` for all-day series). The
//! master's RRULE gets an `UNTIL` one second before `from` (the day before for all-day
//! series), its exceptions at or after `from` are deleted, and a new recurring event
//! `<event_id>_R<YYYYMMDDTHHMMSS>` (UTC of `from`, Google's observed format; `_R<YYYYMMDD>`
//! for all-day series) with the master's properties and its own iCalUID starts at `from`
//! with the rest of the rule (`COUNT` reduced by the instances the old series keeps;
//! `RDATE`/`EXDATE` values go to the side they fall on). Both changes show in incremental
//! sync. 200 `{"old", "new"}` with both masters; 404 for an unknown account, calendar or
//! event; 400 when the event is not a series master or `from` is not an instance start
//! (or is the first one); 409 when the new id exists.
//!
//! Recurring Google instances carry their own etags (derived from the master's, so they
//! change with it), and `If-Match` on an instance id is checked against that etag. A master
//! edit carries every changed non-time field into the exceptions that did not override it;
//! those exceptions then show as changed in incremental sync. Graph does the same for a
//! series master PATCH: exceptions that did not override a changed property take the new
//! value, get a new change key and are resent by calendarView delta with the occurrences.
//!
//! Webhooks are coalesced: changes to one channel or subscription within
//! `webhook_coalesce_window` (200 ms) go out as one delivery, a single `exists` for Google
//! (with the newest message number) and one `value` array for Graph.
//!
//! With `SandboxConfig::state_file` ([`Sandbox::open`]) the whole state (accounts, grants,
//! tokens, events, channels, subscriptions, mail log, clock offset) is written atomically
//! within a second of a change and loaded at start; a corrupt file is an error. An account
//! created on the consent page gets sample events (a weekly series with one moved and one
//! cancelled occurrence, an all-day event, a call in Asia/Tokyo) in the next weeks.
//!
//! Google specifics: recurrence rules recur at most daily (`FREQ=HOURLY` and finer, and
//! `BYHOUR`/`BYMINUTE`/`BYSECOND`, are 400 "Invalid recurrence rule"); series expand from the
//! requested window (rules without COUNT/BYSETPOS/EXRULE jump straight there), and an
//! endless series without `timeMax` pages to ten years past now. Sync tokens are bound to
//! `singleEvents`/`showDeleted`/`timeMin` and absent after `orderBy`, `q`, `iCalUID`,
//! `updatedMin`, `timeMax` or extended-property filters. A series edit leaves cancelled stubs
//! for the instances it drops only inside the span `singleEvents` listings have expanded
//! (at most 50,000 per edit). Mail follows `sendUpdates`: added guests are invited, kept ones
//! updated, removed ones sent a cancellation. Batch parts run in a seeded shuffled order.
//! Rate-limit answers carry no `Retry-After`.
//!
//! Graph specifics: series expand from the requested window however long ago they began,
//! and a page expands only what it returns. Occurrence ids are opaque and stable (master id
//! and date encrypted with a per-sandbox secret kept in the state file; no index). calendarView delta sends occurrences reduced to
//! `@odata.type`, `@odata.etag`, `id`, `type`, `start`, `end` and `seriesMasterId` (read the
//! master for the rest; exceptions come whole); deleting one occurrence gives no `@removed`
//! and `/instances` just stops listing it, while deleted events, events moved or created
//! outside the window and occurrences a series edit dropped do come as `@removed` (a master
//! keeps its last 32 series versions for this; a delta round older than them gets 410
//! `SyncStateNotFound`). Bodies
//! are stored as HTML and returned as HTML unless `Prefer: outlook.body-content-type="text"`.
//! `singleValueExtendedProperties` come back only with
//! `$expand=singleValueExtendedProperties($filter=id eq '…')` (GET, calendarView, delta) and
//! `/events` takes `$filter=singleValueExtendedProperties/any(ep: ep/id eq '…' and ep/value
//! eq '…')`; other `$expand`/`$filter` forms are 400. Every Windows zone of CLDR's
//! windowsZones is accepted. Meetings the mailbox organises mail their attendees (see
//! `GET /_sandbox/mail`); attendee copies accept only attendee-owned PATCHes, and `decline`
//! removes them. `calendarView/delta()` (the OData function form the SDKs use) works like
//! `calendarView/delta`. In ragged paging mode Graph pages are short, delta pages may be
//! empty, and delta repeats an id later in the round in its current state.
//!
//! Webhooks (Google push channels, Graph subscriptions) are delivered only to `http://`
//! addresses on loopback hosts: a deliberate relaxation of the real services' https
//! requirement, so tests need no TLS receiver. Everything else is refused with 400.

// The Graph event resource is one large `json!` literal.
#![recursion_limit = "256"]
// Error types carry whole provider error bodies by value; they are the cold path, and
// boxing every one would only add noise to the handlers.
#![allow(clippy::result_large_err)]

mod batch;
mod clock;
mod control;
mod cursor;
mod faults;
mod google;
mod html;
mod ids;
mod mail;
mod microsoft;
mod middleware;
mod oauth;
mod paging;
mod persist;
mod recurrence;
mod samples;
mod state;
mod store;
mod webhook;

use std::path::PathBuf;

use sha2::Digest;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;

pub use persist::StateFileError;
pub use state::{DEV_CLIENT_ID, DEV_CLIENT_SECRET};

/// How often a sandbox with a state file writes it when something changed.
const SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// Sandbox settings. `Default` gives the documented provider limits.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Seeds every id and token, so a seeded run issuing the same requests repeats exactly.
    pub seed: Option<u64>,
    /// The externally visible URL of the sandbox root (for example
    /// `http://127.0.0.1:8080/sandbox`), used in Graph `@odata.nextLink`/`deltaLink`, Google
    /// `htmlLink`-style self references and consent-page form targets. [`serve`] fills it in
    /// from the bound address when empty.
    pub public_base_url: String,
    /// Redirect URIs accepted besides the always-allowed loopback ones.
    pub extra_redirect_uris: Vec<String>,
    /// How long a `timeout` fault holds the request before dropping the connection.
    pub timeout_fault_duration: Duration,
    /// Graph per-mailbox request budget per window (Outlook: 10,000 per 10 minutes).
    pub graph_mailbox_limit: u32,
    pub graph_mailbox_window: Duration,
    /// Graph concurrent requests per mailbox (Outlook: 4).
    pub graph_mailbox_concurrency: u32,
    /// Oldest `updatedMin` Google accepts before answering 410 `updatedMinTooLongAgo`.
    pub google_updated_min_max_age: Duration,
    /// Google consent screen in "Testing": refresh tokens die 7 days after consent.
    pub google_testing_mode: bool,
    /// Longest Google push channel life; longer requested expirations are cut to it
    /// (Google documents a 604,800 s default and no published maximum).
    pub google_channel_max_ttl: Duration,
    /// Longest Graph subscription life for Outlook events (10,080 min per current docs;
    /// older copies say 4,230).
    pub graph_subscription_max: Duration,
    /// How long Graph waits for the `validationToken` echo (10 s).
    pub graph_validation_timeout: Duration,
    /// How long a webhook receiver has to answer a notification (Graph: 3 s).
    pub webhook_timeout: Duration,
    /// Changes to one channel / subscription within this window go out as one delivery:
    /// Google sends one `exists` per burst, Graph a `value` array of several notifications.
    pub webhook_coalesce_window: Duration,
    /// Google sync tokens older than this (by the sandbox clock) answer 410
    /// `fullSyncRequired`.
    pub google_sync_token_max_age: Duration,
    /// Deleted Google events are purged this long after deletion; older sync tokens are
    /// refused, since they could miss purged deletions.
    pub google_tombstone_retention: Duration,
    /// Calendar API quota per user per minute (Google: 600) and per project (10,000),
    /// sliding windows; over them the API answers 403 `userRateLimitExceeded` / 429
    /// `rateLimitExceeded`. Batch items count one by one.
    pub google_user_quota_per_minute: u32,
    pub google_project_quota_per_minute: u32,
    /// Where the whole state is kept across restarts ([`Sandbox::open`]); `None` keeps it in
    /// memory only.
    pub state_file: Option<PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            seed: None,
            public_base_url: String::new(),
            extra_redirect_uris: Vec::new(),
            timeout_fault_duration: Duration::from_secs(30),
            graph_mailbox_limit: 10_000,
            graph_mailbox_window: Duration::from_secs(600),
            graph_mailbox_concurrency: 4,
            google_updated_min_max_age: Duration::from_secs(30 * 24 * 3600),
            google_testing_mode: false,
            google_channel_max_ttl: Duration::from_secs(604_800),
            graph_subscription_max: Duration::from_secs(10_080 * 60),
            graph_validation_timeout: Duration::from_secs(10),
            webhook_timeout: Duration::from_secs(3),
            webhook_coalesce_window: Duration::from_millis(200),
            google_sync_token_max_age: Duration::from_secs(30 * 24 * 3600),
            google_tombstone_retention: Duration::from_secs(30 * 24 * 3600),
            google_user_quota_per_minute: 600,
            google_project_quota_per_minute: 10_000,
            state_file: None,
        }
    }
}

/// A running emulator's state; cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    shared: Arc<state::Shared>,
}

impl Sandbox {
    /// An in-memory sandbox; `config.state_file` is ignored (see [`Sandbox::open`]).
    pub fn new(config: SandboxConfig) -> Self {
        Self { shared: Arc::new(state::Shared::new(config)) }
    }

    /// A sandbox that keeps its state in `config.state_file`: loaded now when the file
    /// exists (an unreadable or corrupt file is an error), then written atomically within
    /// a second of every change by a background task, and by [`Sandbox::save`]. Must run
    /// inside a Tokio runtime when a state file is set.
    pub fn open(config: SandboxConfig) -> Result<Self, StateFileError> {
        let path = config.state_file.clone();
        let sandbox = Self::new(config);
        let Some(path) = path else { return Ok(sandbox) };
        if let Some((world, offset)) = persist::load(&path)? {
            sandbox.shared.restore(world, offset);
        }
        let weak = Arc::downgrade(&sandbox.shared);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAVE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                // The sandbox is gone once its last handle is dropped.
                let Some(shared) = weak.upgrade() else { return };
                // Serializing and fsyncing block: off the async workers.
                match tokio::task::spawn_blocking(move || save_if_dirty(&shared)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "sandbox state not saved"),
                    Err(e) => tracing::error!(error = %e, "sandbox state saver failed"),
                }
            }
        });
        Ok(sandbox)
    }

    /// Writes the state file now if anything may have changed since the last write (for a
    /// graceful shutdown). Without a state file it does nothing.
    pub fn save(&self) -> Result<(), StateFileError> {
        save_if_dirty(&self.shared)
    }

    /// All sandbox routes, ready for `Router::nest("/sandbox", sandbox.router())`.
    pub fn router(&self) -> Router {
        let shared = self.shared.clone();
        let google = google::router(shared.clone());
        let microsoft = microsoft::router(shared.clone());
        // Batch items are dispatched to the provider routes themselves.
        let inner = Router::new().merge(google.clone()).merge(microsoft.clone());
        Router::new()
            .merge(google)
            .merge(microsoft)
            .merge(batch::router(shared.clone(), inner))
            .merge(control::router(shared))
    }
}

/// Writes the state file if the world may have changed. One writer at a time (the background
/// task and [`Sandbox::save`] share the temporary file, and a shutdown save must not return
/// while another write is still in flight). Any lock of the world marks it possibly changed,
/// so a save first compares the snapshot with what was last written and skips the disk when
/// nothing changed.
fn save_if_dirty(shared: &state::Shared) -> Result<(), StateFileError> {
    let Some(path) = &shared.config.state_file else { return Ok(()) };
    let mut last = shared.last_saved.lock().unwrap_or_else(|e| e.into_inner());
    // Cleared before the snapshot: a change made while it is written marks it again.
    if !shared.dirty.swap(false, Ordering::Relaxed) {
        return Ok(());
    }
    let bytes = persist::snapshot(&shared.world_unmarked(), shared.clock.offset_ms());
    let digest: [u8; 32] = sha2::Sha256::digest(&bytes).into();
    if *last == Some(digest) {
        return Ok(());
    }
    persist::write_atomically(path, &bytes).inspect_err(|_| shared.dirty.store(true, Ordering::Relaxed))?;
    *last = Some(digest);
    Ok(())
}

/// Serves a sandbox on `listener` until the task is dropped. With an empty
/// `public_base_url` the sandbox advertises `http://<bound address>`.
pub async fn serve(listener: tokio::net::TcpListener, mut config: SandboxConfig) -> std::io::Result<()> {
    if config.public_base_url.is_empty() {
        config.public_base_url = format!("http://{}", listener.local_addr()?);
    }
    let sandbox = Sandbox::open(config).map_err(std::io::Error::other)?;
    axum::serve(listener, sandbox.router()).await
}
