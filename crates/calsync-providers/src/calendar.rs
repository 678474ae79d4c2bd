//! The one interface the sync engine uses for every calendar service: list calendars, list
//! changes from a cursor page by page (with a typed "cursor is dead" outcome), get, create with
//! an idempotency key, update and delete with a precondition. Google and Graph implement it
//! here; CalDAV will through the same trait.
//!
//! Event content is the domain's [`AppointmentData`]; series, exceptions and the rest of event
//! fidelity come with the next step, and are carried raw until then (`recurrence`,
//! `series_master_id`) so the engine can recognise them.

use std::future::Future;
use std::pin::Pin;

use calsync_domain::appointment::AppointmentData;
use calsync_domain::recurrence::OriginalStart;
use chrono::{DateTime, Utc};

use crate::{AccountIdentity, ProviderError, RemoteCalendar};

/// What a provider call returns: boxed, so providers can live behind `dyn CalendarProvider`.
pub type ProviderFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// The time range a full listing covers. Graph's delta is bound to it; Google lists from its
/// start on (a `timeMax` would cost the sync token), so callers apply the far edge themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Where a listing starts.
#[derive(Debug, Clone, Copy)]
pub enum ListFrom<'a> {
    /// Everything within the window (no cursor yet, or the cursor died); `page` continues one.
    Full { window: Window, page: Option<&'a str> },
    /// What changed since `cursor` (a Google sync token, a Graph delta link); `page` continues one.
    Since { cursor: &'a str, page: Option<&'a str> },
}

/// An event as the provider has it now.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteEvent {
    pub id: String,
    /// The precondition for writes: Google `etag`, Graph `@odata.etag` (change key).
    pub etag: String,
    pub updated: Option<DateTime<Utc>>,
    /// The appointment id calsync stamped on events it wrote (Google private extended property,
    /// Graph single-value extended property); `None` for events made elsewhere.
    pub calsync_id: Option<String>,
    /// The content; `None` when the provider sent only a skeleton (a Graph delta occurrence).
    pub data: Option<AppointmentData>,
    /// Recurrence lines of a series master, as the provider states them (empty otherwise).
    pub recurrence: Vec<String>,
    /// Set on occurrences and exceptions of a series.
    pub series_master_id: Option<String>,
    /// On occurrences and exceptions: the start the rule gave them (their key in the series).
    pub original_start: Option<OriginalStart>,
    /// Something calsync could not carry over exactly, in words (an unmappable zone, …).
    pub note: Option<String>,
}

/// One entry of a change listing.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Upsert(Box<RemoteEvent>),
    /// Gone: deleted or cancelled (Google), `@removed` (Graph).
    Deleted {
        id: String,
    },
    /// One occurrence of a live series cancelled (Google's cancelled instance stub): it hides
    /// that occurrence; the series stays.
    OccurrenceCancelled {
        id: String,
        etag: String,
        master: String,
        original_start: OriginalStart,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum PageNext {
    /// More pages: pass this back as `page` with the same `ListFrom`.
    More(String),
    /// The listing is complete: this is the cursor to store for the next sync.
    Done(String),
}

/// One page of changes. Pages may be short or empty and still lead on; an id may appear again
/// in a later page of the same round (the later copy wins).
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePage {
    pub changes: Vec<Change>,
    pub next: PageNext,
}

pub trait CalendarProvider: Send + Sync + std::fmt::Debug {
    /// Whose account the token belongs to (immutable id and address).
    fn account<'a>(&'a self, token: &'a str) -> ProviderFuture<'a, AccountIdentity>;

    fn list_calendars<'a>(&'a self, token: &'a str) -> ProviderFuture<'a, Vec<RemoteCalendar>>;

    /// One page of changes. A dead cursor is [`ProviderError::CursorExpired`]: list `Full` again.
    fn list_changes<'a>(
        &'a self,
        token: &'a str,
        calendar: &'a str,
        from: ListFrom<'a>,
    ) -> ProviderFuture<'a, ChangePage>;

    /// `None` when the event does not exist (or no longer does).
    fn get<'a>(&'a self, token: &'a str, calendar: &'a str, id: &'a str) -> ProviderFuture<'a, Option<RemoteEvent>>;

    /// Creates an event stamped with `stamp` (the appointment id, read back as
    /// [`RemoteEvent::calsync_id`]). Idempotent on `key` (Google: the event id made from it;
    /// Graph: `transactionId`): a retry after a lost response returns the event the first attempt
    /// made, never a second one. A fresh key makes a fresh event (re-creating one deleted there).
    /// [`ProviderError::NotFound`] means the key's event was made and has since been deleted
    /// there.
    fn create<'a>(
        &'a self,
        token: &'a str,
        calendar: &'a str,
        key: &'a str,
        stamp: &'a str,
        data: &'a AppointmentData,
    ) -> ProviderFuture<'a, RemoteEvent>;

    /// Writes one occurrence of the series `master` (an event id in `calendar`) as an exception:
    /// its content becomes `data` (`status: cancelled` cancels it). Idempotent: the occurrence is
    /// found by `original`, so a retry writes the same one. [`ProviderError::NotFound`] when the
    /// series has no such occurrence (any more).
    #[allow(clippy::too_many_arguments)]
    fn write_occurrence<'a>(
        &'a self,
        token: &'a str,
        calendar: &'a str,
        master: &'a str,
        original: OriginalStart,
        stamp: &'a str,
        data: &'a AppointmentData,
    ) -> ProviderFuture<'a, RemoteEvent>;

    /// Whether a change listing reports an occurrence deleted from a series (Google: a cancelled
    /// instance). Graph's does not: the engine then compares [`CalendarProvider::occurrences`]
    /// with the rule.
    fn lists_deleted_occurrences(&self) -> bool {
        true
    }

    /// The original starts of the occurrences (and exceptions) the series `master` has in
    /// `[from, to)`.
    fn occurrences<'a>(
        &'a self,
        _token: &'a str,
        _calendar: &'a str,
        _master: &'a str,
        _from: DateTime<Utc>,
        _to: DateTime<Utc>,
    ) -> ProviderFuture<'a, Vec<OriginalStart>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Whether a listing states a series' master before its exceptions, and a write of the
    /// master drops the exceptions its new rule no longer makes (CalDAV: one resource per
    /// series). The engine then leaves exceptions of occurrences its series no longer has
    /// unimported.
    fn lists_masters_first(&self) -> bool {
        false
    }

    /// Whether [`Change::Deleted`] can also mean "left the listing's window" (Graph's `@removed`
    /// for an event moved out of a delta window): the engine then reads the event before it
    /// deletes anything.
    fn removals_may_be_moves(&self) -> bool {
        false
    }

    /// Replaces the event's content if it is still at `etag` (else
    /// [`ProviderError::PreconditionFailed`]); guests are not mailed.
    fn update<'a>(
        &'a self,
        token: &'a str,
        calendar: &'a str,
        id: &'a str,
        etag: &'a str,
        data: &'a AppointmentData,
    ) -> ProviderFuture<'a, RemoteEvent>;

    /// Deletes the event if it is still at `etag`; an event already gone counts as deleted.
    fn delete<'a>(&'a self, token: &'a str, calendar: &'a str, id: &'a str, etag: &'a str) -> ProviderFuture<'a, ()>;

    /// Whether the provider can push change notifications ([`CalendarProvider::watch`]).
    fn can_watch(&self) -> bool {
        false
    }

    /// Opens a push channel on the calendar's events (Google `events.watch`, a Graph
    /// subscription). The provider may shorten the requested lifetime: the answer says.
    fn watch<'a>(&'a self, _token: &'a str, _calendar: &'a str, _req: &'a WatchRequest) -> ProviderFuture<'a, Watch> {
        Box::pin(async { Err(unsupported()) })
    }

    /// Extends a channel's life. `Ok(None)` when the provider has no renewal (Google: a new
    /// channel replaces the old one); [`ProviderError::NotFound`] when the channel is gone.
    fn renew_watch<'a>(
        &'a self,
        _token: &'a str,
        _remote_id: &'a str,
        _until: DateTime<Utc>,
    ) -> ProviderFuture<'a, Option<DateTime<Utc>>> {
        Box::pin(async { Ok(None) })
    }

    /// Resumes a channel the provider paused until the app proves it still has access (Graph's
    /// `reauthorizationRequired`).
    fn reauthorize_watch<'a>(&'a self, _token: &'a str, _remote_id: &'a str) -> ProviderFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    /// Closes a channel; one already gone counts as closed.
    fn unwatch<'a>(&'a self, _token: &'a str, _channel_id: &'a str, _remote_id: &'a str) -> ProviderFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// A push channel to open.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    /// calsync's channel id (Google's channel `id`; Graph assigns its own).
    pub id: String,
    /// Where notifications go.
    pub address: String,
    /// Where Graph's lifecycle notifications go.
    pub lifecycle_address: Option<String>,
    /// Sent back with every delivery (Google channel token, Graph `clientState`).
    pub secret: String,
    pub until: DateTime<Utc>,
}

/// A channel the provider opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// Google `resourceId`; Graph subscription id.
    pub remote_id: String,
    pub expires_at: DateTime<Utc>,
}

fn unsupported() -> ProviderError {
    ProviderError::Permanent { status: None, reason: "this provider has no push notifications".into() }
}
