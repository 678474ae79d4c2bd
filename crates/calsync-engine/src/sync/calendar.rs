//! The sync of one calendar of a connection: pull (incremental, or in full diffed against the
//! links when there is no live cursor), plan every pair with the domain planner, push calsync's
//! own changes, hold mass deletions for confirmation, and save the cursor only once all of it
//! was applied.

use std::collections::{HashMap, HashSet};

use calsync_domain::appointment::{AppointmentData, AppointmentStatus};
use calsync_domain::connection::{ConflictStrategy, DeletePolicy};
use calsync_domain::ids::{AppointmentId, EventLinkId, HeldDeleteId, OutboxId};
use calsync_domain::merge::{Field, Side, choose, differing, merge};
use calsync_domain::recurrence::{OriginalStart, Series, SeriesRef, occurrence_data};
use calsync_domain::sync::{
    Action, Base, ConflictSide, HeldSide, LinkState, Local, Remote, Rules, WriteOperation, content_hash, plan,
};
use calsync_providers::ProviderError;
use calsync_providers::calendar::{CalendarProvider, Change, ListFrom, PageNext, RemoteEvent, Window};
use calsync_store::{
    CalendarCursor, Conflict, Connection, EventLink, LinkWrite, PendingWrite, StoreError, SyncAppointment,
    SyncedCalendar,
};
use chrono::{DateTime, Duration, Utc};

use super::session::{Session, Stop, call};

/// How often one pair is re-planned after losing a race (412, or a local edit meanwhile).
const REPLANS: usize = 4;

/// The remote side of a pair as this sync knows it.
#[derive(Debug, Clone)]
pub enum Seen {
    Unmentioned,
    Absent,
    Present(Box<RemoteEvent>),
}

/// Links not to be planned now: deletions held by the mass-delete guard (by link, with the
/// hold) and open conflicts.
#[derive(Debug, Default)]
pub struct Frozen {
    pub held: HashMap<EventLinkId, HeldDeleteId>,
    pub conflicts: HashSet<EventLinkId>,
    /// Read from the store (a sync reads them once, when a calendar first has work to do);
    /// left unread, nothing is frozen.
    pub loaded: bool,
}

impl Frozen {
    fn contains(&self, link: EventLinkId) -> bool {
        self.held.contains_key(&link) || self.conflicts.contains(&link)
    }
}

/// A deletion waiting for the mass-delete guard.
#[derive(Debug, Clone)]
pub struct Destructive {
    pub link: EventLink,
    pub side: HeldSide,
    /// The appointment version the plan saw (a local deletion is refused if it moved on).
    pub version: Option<i64>,
    /// It came from what the provider reported: if it fails, the cursor must stay put.
    pub from_pull: bool,
}

pub struct CalendarSync<'a> {
    pub s: &'a mut Session,
    pub provider: &'a dyn CalendarProvider,
    pub conn: &'a Connection,
    pub cal: &'a SyncedCalendar,
    pub push_target: bool,
    pub rules: Rules,
    pub window: Window,
    frozen: &'a mut Frozen,
    links: HashMap<String, EventLink>,
    by_appointment: HashMap<AppointmentId, String>,
    processed: HashSet<AppointmentId>,
    destructive: Vec<Destructive>,
    /// Pending create writes of this calendar, by appointment (their keys are reused).
    pending_creates: HashMap<AppointmentId, PendingWrite>,
    /// New events of the current page by remote id, imported together when the page is done
    /// (a repeat within the page replaces the earlier copy; a removal drops it).
    imports: HashMap<String, RemoteEvent>,
    /// Series masters read this sync because one of their occurrences was listed (Graph lists
    /// occurrences, never masters): read once, whatever came of it.
    masters_read: HashSet<String>,
    /// Appointments whose events were reported gone there this round: a series among them
    /// decides for its exceptions (see [`CalendarSync::series_gone`]).
    gone_there: HashSet<AppointmentId>,
    /// Listing is under way: a failed item is a pulled change that did not land.
    pulling: bool,
    /// A pulled change could not be applied: the cursor must not move past it.
    pull_failed: bool,
    /// The links and pending writes were read ([`CalendarSync::load`]). A sync reads them
    /// only when there is something to plan: a calendar with no change on either side costs
    /// the listing and one query.
    loaded: bool,
    /// How many events were linked when the links were read (the mass-delete guard's base).
    linked_before: usize,
}

/// The sync window for `days`: from midnight UTC `days` days ago to the end of the day `days`
/// days ahead, so it moves once a day and a cursor made today stays valid all day.
pub fn window_for(now: DateTime<Utc>, days: i64) -> Window {
    let midnight = now.date_naive().and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
    Window { start: midnight - Duration::days(days), end: midnight + Duration::days(days + 1) }
}

/// Whether `data` (a series: any of its occurrences) falls in the window.
fn overlaps(data: &AppointmentData, w: &Window) -> bool {
    let (start, end) = calsync_domain::recurrence::span(data);
    start < w.end && end > w.start
}

fn local_of(a: Option<&SyncAppointment>) -> Local {
    match a {
        None => Local::Absent,
        Some(SyncAppointment { deleted_at: Some(at), .. }) => Local::Deleted { at: *at },
        Some(SyncAppointment { appointment, .. }) => Local::Present {
            version: appointment.version,
            hash: content_hash(&appointment.data),
            updated: appointment.updated_at,
        },
    }
}

fn remote_of(seen: &Seen) -> Remote {
    match seen {
        Seen::Unmentioned => Remote::Unmentioned,
        Seen::Absent => Remote::Absent,
        Seen::Present(e) => Remote::Present {
            etag: e.etag.clone(),
            hash: e.data.as_ref().map(content_hash).unwrap_or_default(),
            updated: e.updated,
        },
    }
}

/// An event with content (a Graph occurrence skeleton has none: its master holds it). An
/// occurrence or exception must already have been tied to its master ([`CalendarSync::pulled`]).
/// Whether the series `d` has occurrence `o` by its rule.
fn generates(d: &AppointmentData, o: OriginalStart) -> bool {
    Series::parse(&d.recurrence, &d.when, d.time_zone).is_ok_and(|s| s.generates(o, d.time_zone))
}

fn supported(e: &RemoteEvent) -> bool {
    e.data.as_ref().is_some_and(|d| e.series_master_id.is_none() || d.series.is_some())
}

/// Whether both sides moved on from the base (by version or etag, and by content).
fn both_changed(base: &Base, a: &SyncAppointment, r: &RemoteEvent) -> bool {
    let local = a.appointment.version != base.local_version && content_hash(&a.appointment.data) != base.local_hash;
    let remote =
        r.etag != base.remote_etag && r.data.as_ref().map(content_hash).unwrap_or_default() != base.remote_hash;
    local && remote
}

/// The fields a `manual` conflict is about: those changed differently on both sides since
/// `base`; none (the whole version) when the base content is not known.
fn conflict_fields(
    base: Option<&AppointmentData>,
    local: &AppointmentData,
    remote: &AppointmentData,
) -> Vec<&'static str> {
    let Some(base) = base else { return Vec::new() };
    let now = chrono::Utc::now();
    merge(base, local, remote, ConflictStrategy::Manual, now, Some(now)).unresolved.iter().map(|f| f.as_str()).collect()
}

fn describe(e: &ProviderError) -> String {
    e.to_string()
}

/// Why an action did not complete.
pub enum Retry {
    /// The provider's copy moved on (412, 404): re-read it and plan again.
    Remote,
    /// calsync's copy moved on: re-read it and plan again.
    Local,
    /// Plan again with this link and remote state (after relinking a retried create).
    Again(Box<EventLink>, Seen),
    Failed(String),
}

fn store(e: StoreError) -> Retry {
    Retry::Failed(format!("storage: {e}"))
}

fn store_to_provider(e: StoreError) -> ProviderError {
    ProviderError::Permanent { status: None, reason: format!("storage: {e}") }
}

/// The base of a pair whose event came from a retried create: both sides as calsync sent them
/// (`sent` is the content hash recorded with the write), versions unknown. Planning against it
/// sends a later local edit out and takes a later edit made there in.
fn sent_base(sent: &str) -> Base {
    Base { local_version: -1, local_hash: sent.to_owned(), remote_etag: String::new(), remote_hash: sent.to_owned() }
}

impl<'a> CalendarSync<'a> {
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        s: &'a mut Session,
        provider: &'a dyn CalendarProvider,
        conn: &'a Connection,
        cal: &'a SyncedCalendar,
        push_target: bool,
        rules: Rules,
        window: Window,
        frozen: &'a mut Frozen,
    ) -> Result<CalendarSync<'a>, Stop> {
        let mut cs = Self::lazy(s, provider, conn, cal, push_target, rules, window, frozen);
        cs.load_links().await?;
        Ok(cs)
    }

    /// [`CalendarSync::new`] without reading anything yet: what [`CalendarSync::run`] needs
    /// it reads when it needs it, the frozen links included.
    #[allow(clippy::too_many_arguments)]
    pub fn lazy(
        s: &'a mut Session,
        provider: &'a dyn CalendarProvider,
        conn: &'a Connection,
        cal: &'a SyncedCalendar,
        push_target: bool,
        rules: Rules,
        window: Window,
        frozen: &'a mut Frozen,
    ) -> CalendarSync<'a> {
        CalendarSync {
            s,
            provider,
            conn,
            cal,
            push_target,
            rules,
            window,
            frozen,
            links: HashMap::new(),
            by_appointment: HashMap::new(),
            processed: HashSet::new(),
            destructive: Vec::new(),
            pending_creates: HashMap::new(),
            imports: HashMap::new(),
            masters_read: HashSet::new(),
            gone_there: HashSet::new(),
            pulling: false,
            pull_failed: false,
            loaded: false,
            linked_before: 0,
        }
    }

    /// Reads what planning needs, once: the links held or in conflict across the connection,
    /// then this calendar's links and pending creates.
    async fn load(&mut self) -> Result<(), StoreError> {
        let (firm, id) = (self.conn.firm_id, self.conn.id);
        if !self.frozen.loaded {
            self.frozen.held = self.s.db.held_deletes(firm, id).await?.into_iter().map(|h| (h.link_id, h.id)).collect();
            self.frozen.conflicts = self
                .s
                .db
                .open_conflicts(firm, Some(self.conn.user_id))
                .await?
                .into_iter()
                .filter(|c| c.connection_id == id)
                .map(|c| c.link_id)
                .collect();
            self.frozen.loaded = true;
        }
        self.load_links().await
    }

    async fn load_links(&mut self) -> Result<(), StoreError> {
        if self.loaded {
            return Ok(());
        }
        let firm = self.conn.firm_id;
        let all = self.s.db.links(firm, self.cal.id).await?;
        self.by_appointment = all.iter().map(|l| (l.appointment_id, l.remote_id.clone())).collect();
        self.links = all.into_iter().map(|l| (l.remote_id.clone(), l)).collect();
        let cal = self.cal.id;
        self.pending_creates = self
            .s
            .db
            .pending_writes(firm, self.conn.id)
            .await?
            .into_iter()
            .filter(|w| w.calendar_id == cal && w.operation == WriteOperation::Create)
            .map(|w| (w.appointment_id, w))
            .collect();
        self.linked_before = self.links.len();
        self.loaded = true;
        Ok(())
    }

    /// Pull, plan, push, guard, and the cursor last.
    pub async fn run(mut self) -> Result<(), Stop> {
        let stored = self.cal.cursor.clone();
        let mut cursor =
            stored.clone().filter(|c| c.window_start == self.window.start && c.window_end == self.window.end);
        self.pulling = true;
        // A cursor (or a page token) that dies mid-round restarts the listing in full; pages
        // already applied come back as echoes. Bounded, in case the provider keeps doing it.
        let mut restarts = 0;
        let new_cursor = loop {
            match self.listing(cursor.as_ref()).await {
                Ok(done) => break done,
                Err(ProviderError::CursorExpired) if restarts < 3 => {
                    tracing::info!(connection_id = %self.conn.id, calendar = %self.cal.id, "sync cursor expired; listing in full");
                    cursor = None;
                    restarts += 1;
                }
                Err(e) => return Err(Stop::from_provider(&e)),
            }
        };
        self.pulling = false;
        self.push_local_changes().await?;
        self.guard_and_apply_deletes().await?;
        if let Some(m) = &self.s.reauthorize {
            return Err(Stop::Reauthorize(m.clone()));
        }
        if !self.pull_failed {
            let c = CalendarCursor { cursor: new_cursor, window_start: self.window.start, window_end: self.window.end };
            // Stored with the outcome, in its transaction (a sync that dies first lists again
            // from the old one, and what it finds again is an echo). A listing that changed
            // nothing may hand the same cursor back.
            if stored.as_ref() != Some(&c) {
                let from = stored.map(|s| s.cursor);
                self.s.cursors.push(calsync_store::CursorMove { calendar: self.cal.id, from, to: c });
            }
        }
        Ok(())
    }

    /// Every page of one listing round, applied as it comes; deletions wait for the end of the
    /// round (a later page may bring the event back). Returns the new cursor.
    async fn listing(&mut self, cursor: Option<&CalendarCursor>) -> Result<String, ProviderError> {
        let full = cursor.is_none();
        let mut page: Option<String> = None;
        let mut seen: HashSet<String> = HashSet::new();
        let mut removed: HashSet<String> = HashSet::new();
        let mut cancels = Vec::new();
        let provider = self.provider;
        let remote_cal = self.cal.remote_id.clone();
        let window = self.window;
        let next_cursor = loop {
            let from = match cursor {
                None => ListFrom::Full { window, page: page.as_deref() },
                Some(c) => ListFrom::Since { cursor: &c.cursor, page: page.as_deref() },
            };
            let got = call!(self.s, |t| provider.list_changes(t, &remote_cal, from))?;
            if full || !got.changes.is_empty() {
                self.load().await.map_err(store_to_provider)?;
            }
            for change in got.changes {
                match change {
                    Change::Upsert(e) => {
                        seen.insert(e.id.clone());
                        removed.remove(&e.id);
                        self.pulled(*e).await;
                    }
                    Change::Deleted { id } => {
                        self.imports.remove(&id);
                        if self.links.contains_key(&id) {
                            removed.insert(id);
                        }
                    }
                    Change::OccurrenceCancelled { id, etag, master, original_start } => {
                        seen.insert(id.clone());
                        removed.remove(&id);
                        self.imports.remove(&id);
                        // After the rest of the round: its series may be restored or imported
                        // by a later item.
                        cancels.push((id, etag, master, original_start));
                    }
                }
            }
            self.flush_imports().await;
            match got.next {
                PageNext::More(p) => page = Some(p),
                PageNext::Done(c) => break c,
            }
        };
        // A stub of a series that is itself gone there waits for the series' own removal: if
        // calsync keeps the series (edited here meanwhile), it is written anew with all its
        // exceptions; if not, its exceptions go with it.
        let (later, cancels): (Vec<_>, Vec<_>) = cancels.into_iter().partition(|c| removed.contains(&c.2));
        self.gone_there.extend(later.iter().filter_map(|c| self.links.get(&c.2)).map(|l| l.appointment_id));
        for (id, etag, master, original_start) in cancels {
            self.occurrence_cancelled(id, etag, master, original_start).await;
        }
        if !self.provider.lists_deleted_occurrences() {
            // Which series to check is in the links.
            self.load().await.map_err(store_to_provider)?;
            self.find_deleted_occurrences().await;
        }
        // Reported removals may be moves out of the window (Graph); a linked event missing from
        // a full listing may have moved before its start (Google lists from `timeMin` on).
        // Either way the event is read before anything is deleted.
        let mut verify = self.provider.removals_may_be_moves();
        if full {
            // Whatever is linked, in the window, and was not listed is gone there or moved: this
            // is how deletions made while there was no live cursor are found.
            let unseen: Vec<EventLink> =
                self.links.values().filter(|l| !seen.contains(&l.remote_id)).cloned().collect();
            let ids: Vec<AppointmentId> = unseen.iter().map(|l| l.appointment_id).collect();
            let appointments = self.s.db.sync_appointments(self.conn.firm_id, &ids).await.map_err(store_to_provider)?;
            let by_id: HashMap<AppointmentId, &SyncAppointment> =
                appointments.iter().map(|a| (a.appointment.id, a)).collect();
            for l in unseen {
                let in_window = by_id.get(&l.appointment_id).is_none_or(|a| overlaps(&a.appointment.data, &window));
                if in_window {
                    removed.insert(l.remote_id);
                }
            }
            verify = true;
        }
        let mut removed: Vec<String> = removed.into_iter().collect();
        removed.sort_unstable();
        self.gone_there.extend(removed.iter().filter_map(|r| self.links.get(r)).map(|l| l.appointment_id));
        for id in removed {
            self.removed(&id, verify).await;
        }
        for (id, etag, master, original_start) in later {
            self.occurrence_cancelled(id, etag, master, original_start).await;
        }
        Ok(next_cursor)
    }

    /// A pulled event: linked, ours without a link (a commit lost after the write), or new.
    /// An occurrence or exception is first tied to its series' master, read and imported if
    /// calsync does not have it yet.
    async fn pulled(&mut self, mut e: RemoteEvent) {
        if let Some(note) = e.note.take()
            && !self.s.notes.contains(&note)
        {
            self.s.notes.push(note);
        }
        if let Some(master) = e.series_master_id.clone() {
            let Some(master_id) = Box::pin(self.series_master(&master)).await else { return };
            e = self.tagged(e);
            if e.data.as_ref().and_then(|d| d.series).is_none() {
                // An occurrence as the rule makes it: the master stands for it.
                return;
            }
            // A series deleted here (its deletion not yet written there) takes its occurrences
            // with it: nothing of it is imported.
            let master = match self.s.db.sync_appointment(self.conn.firm_id, master_id).await {
                Ok(Some(m)) if m.deleted_at.is_none() => m,
                Ok(_) => return,
                Err(err) => return self.pull_error(&e.id, &err.to_string()),
            };
            // Where a listing states each series' master before its exceptions (CalDAV, one
            // resource per series), an exception new to calsync for an occurrence the series
            // here no longer has (moved or ended here, not yet written there) is not imported:
            // writing the series there drops it, as calsync dropped its own.
            if self.provider.lists_masters_first()
                && !self.links.contains_key(&e.id)
                && let Some(o) = e.original_start
                && !generates(&master.appointment.data, o)
            {
                return;
            }
        }
        if !supported(&e) {
            return;
        }
        let firm = self.conn.firm_id;
        if let Some(link) = self.links.get(&e.id).cloned() {
            let local = match self.s.db.sync_appointment(firm, link.appointment_id).await {
                Ok(a) => a,
                Err(err) => return self.pull_error(&e.id, &err.to_string()),
            };
            if self.frozen.conflicts.contains(&link.id) {
                // Changed there again while the user decides: show the latest version.
                if let (Some(a), Some(theirs)) = (local.as_ref().filter(|a| a.deleted_at.is_none()), e.data.as_ref())
                    && let Err(err) = {
                        let fields = conflict_fields(link.base_data.as_ref(), &a.appointment.data, theirs);
                        let base = link.base_data.as_ref();
                        self.s
                            .db
                            .open_conflict(
                                firm,
                                link.id,
                                &a.appointment.data,
                                theirs,
                                &e.etag,
                                e.updated,
                                &fields,
                                base,
                            )
                            .await
                    }
                {
                    self.pull_error(&e.id, &err.to_string());
                }
                return;
            }
            if let Some(&hold) = self.frozen.held.get(&link.id) {
                // A hold of the event's deletion (the appointment was deleted here) stands while
                // the event is merely listed again; an edit there is news the hold did not know.
                // A hold of the appointment's deletion ends when the event turns out to exist.
                let edited = e.data.as_ref().is_some_and(|d| content_hash(d) != link.base.remote_hash);
                let local_gone = local.as_ref().is_none_or(|a| a.deleted_at.is_some());
                if local_gone && !edited {
                    return;
                }
                self.frozen.held.remove(&link.id);
                match self.s.db.release_held_delete(firm, hold).await {
                    Ok(()) | Err(StoreError::NotFound) => {}
                    Err(err) => return self.pull_error(&e.id, &err.to_string()),
                }
            }
            self.processed.insert(link.appointment_id);
            return self.reconcile(Some(link), local, Seen::Present(Box::new(e))).await;
        }
        if let Some(stamp) = e.calsync_id.as_deref().and_then(|s| s.parse::<AppointmentId>().ok()) {
            // Stamped by calsync: never imported (that is how duplicates are born). This user's
            // appointment without a link here gets its event back (a commit lost after the
            // write); one deleted meanwhile loses the event.
            let local = match self.s.db.sync_appointment(firm, stamp).await {
                Ok(a) => a,
                Err(err) => return self.pull_error(&e.id, &err.to_string()),
            };
            let Some(a) = local.filter(|a| a.appointment.owner_id == self.conn.user_id) else { return };
            if e.series_master_id.is_some() && !a.appointment.data.recurrence.is_empty() {
                // An instance stamped with a series' master that is not its own (Google's "this
                // and following" copies the master's stamp to the new series): unstamped, as
                // instances inherit the stamp and calsync writes exceptions with their own.
                e.calsync_id = None;
                return Box::pin(self.pulled(e)).await;
            }
            if self.by_appointment.get(&stamp).is_some_and(|rid| *rid != e.id)
                && e.series_master_id.is_none()
                && !self.pending_creates.contains_key(&stamp)
            {
                // Linked here to another event already, and no create of it pending (whose lost
                // answer this would be): a copy made there (Google's "this and following"
                // clones the master, stamp and all), new to calsync.
                e.calsync_id = None;
                return Box::pin(self.pulled(e)).await;
            }
            // Linked to another event with a create pending: a re-create (its old event gone
            // there) whose answer was lost; this is its event.
            if self.by_appointment.contains_key(&stamp) && !self.pending_creates.contains_key(&stamp) {
                return;
            }
            // An occurrence calsync wrote for an exception that has moved to another series
            // since (a split): a leftover of the old series, not this exception's event.
            if e.data.as_ref().map(|d| d.series) != Some(a.appointment.data.series) {
                return;
            }
            // Only where calsync creates events for it (the push target, or where a create is
            // pending): elsewhere it is an event someone moved or copied, left alone.
            if !self.push_target && !self.pending_creates.contains_key(&stamp) {
                return;
            }
            self.processed.insert(stamp);
            if a.deleted_at.is_none() {
                return self.relink(a, e).await;
            }
            if self.rules.deletes == DeletePolicy::Propagate {
                self.delete_orphan(stamp, &e).await;
            }
            return;
        }
        if let Some(series) = e.data.as_ref().and_then(|d| d.series) {
            // calsync has an exception for this occurrence already (made here, not yet written
            // there): the two are one, and their differences are settled like any other edit.
            match self.s.db.exceptions_of(firm, &[series.master]).await {
                Ok(list) => {
                    if let Some(x) = list
                        .into_iter()
                        .find(|x| x.data.series.is_some_and(|s| s.original_start == series.original_start))
                    {
                        if self.by_appointment.contains_key(&x.id) {
                            return;
                        }
                        return self.adopt(x.id, e).await;
                    }
                }
                Err(err) => return self.pull_error(&e.id, &err.to_string()),
            }
        }
        // A calendar pulled only because it is the push target imports nothing foreign.
        let in_window = e.data.as_ref().is_some_and(|d| overlaps(d, &self.window));
        // A cancelled invitation calsync never had is nothing to show.
        let cancelled = e.data.as_ref().is_some_and(|d| d.status == AppointmentStatus::Cancelled);
        if in_window && self.cal.selected && !cancelled {
            // New to calsync (the planner's answer without a base is always an import): imported
            // with the rest of the page. A repeat within the page replaces the earlier copy.
            self.imports.insert(e.id.clone(), e);
        }
    }

    /// An occurrence or exception tied to its series' master, if calsync has the master linked
    /// (it does not read masters: [`CalendarSync::pulled`] imports them first). Instances carry
    /// their master's stamp until calsync writes one of their own: that stamp is dropped.
    fn tagged(&self, mut e: RemoteEvent) -> RemoteEvent {
        if let (Some(master), Some(o)) = (&e.series_master_id, e.original_start)
            && let Some(l) = self.links.get(master)
        {
            if e.calsync_id.as_deref().and_then(|s| s.parse::<AppointmentId>().ok()) == Some(l.appointment_id) {
                e.calsync_id = None;
            }
            if let Some(d) = e.data.as_mut() {
                d.series = Some(SeriesRef { master: l.appointment_id, original_start: o });
                d.recurrence.clear();
            }
        }
        e
    }

    /// The appointment of the series master `remote_id`: linked already, waiting in this page's
    /// imports (imported now), or read from the provider once per sync and imported.
    async fn series_master(&mut self, remote_id: &str) -> Option<AppointmentId> {
        if let Some(l) = self.links.get(remote_id) {
            // Graph lists a changed series as its occurrences only: the master is read (once
            // per sync) to see what changed. Google lists masters themselves.
            if !self.provider.lists_deleted_occurrences() && self.masters_read.insert(remote_id.to_owned()) {
                let id = l.appointment_id;
                let provider = self.provider;
                let cal = self.cal.remote_id.clone();
                match call!(self.s, |t| provider.get(t, &cal, remote_id)) {
                    Ok(Some(m)) if m.series_master_id.is_none() => self.pulled(m).await,
                    Ok(_) => {}
                    Err(err) => self.pull_error(remote_id, &describe(&err)),
                }
                return self.links.get(remote_id).map(|l| l.appointment_id).or(Some(id));
            }
            return Some(l.appointment_id);
        }
        if !self.imports.contains_key(remote_id) && self.masters_read.insert(remote_id.to_owned()) {
            let provider = self.provider;
            let cal = self.cal.remote_id.clone();
            match call!(self.s, |t| provider.get(t, &cal, remote_id)) {
                Ok(Some(m)) if m.series_master_id.is_none() => self.pulled(m).await,
                Ok(_) => {}
                Err(err) => {
                    self.pull_error(remote_id, &describe(&err));
                    return None;
                }
            }
        }
        if let Some(m) = self.imports.remove(remote_id) {
            self.reconcile(None, None, Seen::Present(Box::new(m))).await;
        }
        self.links.get(remote_id).map(|l| l.appointment_id)
    }

    /// Occurrences deleted there without a word in the listing (Graph): each linked series'
    /// instances in the window, compared with what its rule (as the provider last stated it)
    /// makes. One request per series in the window.
    async fn find_deleted_occurrences(&mut self) {
        let window = self.window;
        let masters: Vec<(String, AppointmentData)> = self
            .links
            .values()
            .filter(|l| !self.frozen.contains(l.id))
            .filter_map(|l| {
                let d = l.base_data.as_ref()?;
                (!d.recurrence.is_empty() && overlaps(d, &window)).then(|| (l.remote_id.clone(), d.clone()))
            })
            .collect();
        let provider = self.provider;
        let cal = self.cal.remote_id.clone();
        for (rid, data) in masters {
            let Ok(series) = Series::parse(&data.recurrence, &data.when, data.time_zone) else { continue };
            let expected = series.between(window.start, window.end, data.time_zone);
            if expected.is_empty() {
                continue;
            }
            let present: HashSet<OriginalStart> =
                match call!(self.s, |t| provider.occurrences(t, &cal, &rid, window.start, window.end)) {
                    Ok(list) => list.into_iter().collect(),
                    // The series itself is gone there. calendarView never lists masters, so no
                    // listing will say so: this is its removal.
                    Err(ProviderError::NotFound) => {
                        if let Some(l) = self.links.get(&rid) {
                            self.gone_there.insert(l.appointment_id);
                        }
                        self.removed(&rid, true).await;
                        continue;
                    }
                    Err(err) => {
                        self.pull_error(&rid, &describe(&err));
                        continue;
                    }
                };
            for o in expected.into_iter().filter(|o| !present.contains(o)) {
                self.occurrence_cancelled(format!("{rid}@{o}"), String::new(), rid.clone(), o).await;
            }
        }
    }

    /// Google's stub for one cancelled occurrence: the exception calsync has is cancelled, or a
    /// cancelled exception is made from the master, which hides that occurrence here too.
    async fn occurrence_cancelled(&mut self, id: String, etag: String, master: String, original: OriginalStart) {
        let firm = self.conn.firm_id;
        if let Some(link) = self.links.get(&id).cloned() {
            if self.frozen.contains(link.id) {
                return;
            }
            match self.s.db.sync_appointment(firm, link.appointment_id).await {
                Ok(Some(a)) if a.deleted_at.is_none() => {
                    if self.series_gone(&a, &link).await {
                        return;
                    }
                    self.processed.insert(a.appointment.id);
                    self.cancel_here(link, a).await;
                }
                Ok(_) => {}
                Err(err) => self.pull_error(&id, &err.to_string()),
            }
            return;
        }
        let Some(master_id) = Box::pin(self.series_master(&master)).await else { return };
        // An exception calsync already has for that occurrence (cancelled here and deleted
        // there by calsync, or linked under another id) settles it.
        match self.s.db.exceptions_of(firm, &[master_id]).await {
            Ok(list) => {
                if let Some(x) = list.into_iter().find(|x| x.data.series.is_some_and(|s| s.original_start == original))
                {
                    // The exception calsync has for it: cancelled there, so cancelled here
                    // (unless it is already, or was never written there).
                    let link = self.by_appointment.get(&x.id).and_then(|r| self.links.get(r)).cloned();
                    if x.data.status != AppointmentStatus::Cancelled && link.is_none() {
                        // Edited here, not written there yet, and gone there: a deleted
                        // occurrence cannot be brought back there, so it is cancelled here too.
                        self.cancel_unwritten(&x).await;
                        return;
                    }
                    if x.data.status != AppointmentStatus::Cancelled
                        && let Some(link) = link
                    {
                        // Missing from the window's instances may mean moved out of it: only an
                        // exception that is gone there is cancelled.
                        let provider = self.provider;
                        let cal = self.cal.remote_id.clone();
                        match call!(self.s, |t| provider.get(t, &cal, &link.remote_id)) {
                            Ok(None) => {}
                            Ok(Some(_)) => return,
                            Err(err) => return self.pull_error(&link.remote_id, &describe(&err)),
                        }
                        if let Ok(Some(a)) = self.s.db.sync_appointment(firm, x.id).await {
                            self.processed.insert(x.id);
                            self.cancel_here(link, a).await;
                        }
                    }
                    return;
                }
            }
            Err(err) => return self.pull_error(&id, &err.to_string()),
        }
        let m = match self.s.db.sync_appointment(firm, master_id).await {
            Ok(Some(m)) if m.deleted_at.is_none() => m,
            Ok(_) => return,
            Err(err) => return self.pull_error(&id, &err.to_string()),
        };
        let data = &m.appointment.data;
        let Ok(series) = Series::parse(&data.recurrence, &data.when, data.time_zone) else { return };
        if !series.generates(original, data.time_zone) {
            // Not an occurrence of the series as calsync has it (its end moved before it).
            return;
        }
        let mut cancelled = occurrence_data(data, &series, original);
        cancelled.status = AppointmentStatus::Cancelled;
        cancelled.series = Some(SeriesRef { master: master_id, original_start: original });
        if !overlaps(&cancelled, &self.window) || !self.cal.selected {
            return;
        }
        let stub = RemoteEvent {
            id,
            etag,
            updated: None,
            calsync_id: None,
            data: Some(cancelled),
            recurrence: Vec::new(),
            series_master_id: Some(master),
            original_start: Some(original),
            note: None,
        };
        self.reconcile(None, None, Seen::Present(Box::new(stub))).await;
    }

    /// Imports the page's new events in one go; if that is refused, one by one, so one bad
    /// event cannot hold back the others.
    async fn flush_imports(&mut self) {
        if self.imports.is_empty() {
            return;
        }
        let mut events: Vec<RemoteEvent> = std::mem::take(&mut self.imports).into_values().collect();
        events.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let bases: Vec<Base> = events
            .iter()
            .map(|e| {
                let hash = e.data.as_ref().map(content_hash).unwrap_or_default();
                Base { local_version: 1, local_hash: hash.clone(), remote_etag: e.etag.clone(), remote_hash: hash }
            })
            .collect();
        let items: Vec<(AppointmentData, LinkWrite<'_>)> = events
            .iter()
            .zip(&bases)
            .filter_map(|(e, base)| {
                let data = e.data.clone()?;
                let w = self.link_write(AppointmentId::default(), &e.id, base, e.updated, e.data.as_ref());
                Some((data, w))
            })
            .collect();
        match self.s.db.import_events(self.conn.firm_id, self.conn.user_id, items).await {
            Ok(links) => {
                self.s.counts.pulled_created += links.len() as i64;
                for l in links {
                    self.remember(l);
                }
            }
            Err(err) => {
                tracing::info!(connection_id = %self.conn.id, error = %err, "batch import refused; importing one by one");
                for e in events {
                    self.reconcile(None, None, Seen::Present(Box::new(e))).await;
                }
            }
        }
    }

    /// Links an appointment to an event both sides made for the same thing, with a base neither
    /// matches: both count as changed, and the strategy settles it.
    async fn adopt(&mut self, id: AppointmentId, e: RemoteEvent) {
        let firm = self.conn.firm_id;
        let local = match self.s.db.sync_appointment(firm, id).await {
            Ok(a) => a,
            Err(err) => return self.pull_error(&e.id, &err.to_string()),
        };
        let unknown = Base {
            local_version: -1,
            local_hash: String::new(),
            remote_etag: String::new(),
            remote_hash: String::new(),
        };
        let link = match self.save_link_with(id, &e, &unknown, None).await {
            Ok(l) => l,
            Err(err) => return self.pull_error(&e.id, &err.to_string()),
        };
        self.processed.insert(id);
        self.reconcile(Some(link), local, Seen::Present(Box::new(e))).await;
    }

    /// Links an appointment to the event a create made for it whose answer was lost.
    async fn relink(&mut self, a: SyncAppointment, e: RemoteEvent) {
        let id = a.appointment.id;
        let sent = self.pending_creates.get(&id).and_then(|w| w.expected_etag.clone());
        let base = match &sent {
            Some(hash) => sent_base(hash),
            // No record of what was sent: the event is our create's echo.
            None => Self::base_for(&a.appointment.data, a.appointment.version, &e),
        };
        let base_data = if sent.is_some() { None } else { e.data.as_ref() };
        if let Some(old) = self.by_appointment.get(&id).filter(|r| **r != e.id).and_then(|r| self.links.get(r)).cloned()
        {
            // A re-create: the old event's link goes, and a series' exceptions are written anew
            // on the new one.
            let dropped = match self.drop_link(&old).await {
                Ok(()) if !a.appointment.data.recurrence.is_empty() => self.unlink_exceptions(id).await,
                other => other,
            };
            if let Err(Retry::Failed(why)) = dropped {
                return self.failed(None, Some(&a), &why).await;
            }
        }
        let link = match self.save_link_with(id, &e, &base, base_data).await {
            Ok(l) => l,
            Err(err) => return self.failed(None, Some(&a), &err.to_string()).await,
        };
        self.complete_writes(id).await;
        if sent.is_some() {
            self.reconcile(Some(link), Some(a), Seen::Present(Box::new(e))).await;
        }
    }

    /// A linked event reported gone. Where that can also mean "moved out of the window"
    /// (`verify`), the event is read first: only a 404 deletes anything.
    async fn removed(&mut self, remote_id: &str, verify: bool) {
        let Some(link) = self.links.get(remote_id).cloned() else { return };
        if self.frozen.contains(link.id) {
            return;
        }
        // A cancelled appointment or occurrence is expected to be gone there (a cancelled
        // Google event is a deleted one; Graph has no cancelled events of one's own): calsync
        // keeps it, cancelled, as the record of it.
        if let Ok(Some(a)) = self.s.db.sync_appointment(self.conn.firm_id, link.appointment_id).await
            && a.deleted_at.is_none()
            && a.appointment.data.status == AppointmentStatus::Cancelled
        {
            self.processed.insert(a.appointment.id);
            return;
        }
        let seen = if verify {
            let provider = self.provider;
            let cal = self.cal.remote_id.clone();
            match call!(self.s, |t| provider.get(t, &cal, remote_id)).map(|o| o.map(|e| self.tagged(e))) {
                Ok(Some(e)) if supported(&e) => Seen::Present(Box::new(e)),
                Ok(Some(_)) => return,
                Ok(None) => Seen::Absent,
                Err(err) => return self.pull_error(remote_id, &describe(&err)),
            }
        } else {
            Seen::Absent
        };
        let local = match self.s.db.sync_appointment(self.conn.firm_id, link.appointment_id).await {
            Ok(a) => a,
            Err(err) => return self.pull_error(remote_id, &err.to_string()),
        };
        if let (Seen::Absent, Some(a)) = (&seen, local.as_ref().filter(|a| a.deleted_at.is_none()))
            && self.series_gone(a, &link).await
        {
            return;
        }
        self.processed.insert(link.appointment_id);
        if let (Seen::Absent, Some(a)) = (&seen, local.as_ref().filter(|a| a.deleted_at.is_none()))
            && (a.appointment.data.organizer.is_some() || a.appointment.data.series.is_some())
        {
            // An invitation gone from the attendee's calendar: its organizer cancelled it
            // (Google leaves only a stub). An occurrence gone from its series: cancelled there
            // (Graph deletes an occurrence; it would otherwise come back from the rule here).
            // Either way the appointment is cancelled, not deleted.
            return self.cancel_here(link, a.clone()).await;
        }
        self.reconcile(Some(link), local, seen).await;
    }

    /// An exception whose whole series was deleted there this round: the series decides. Kept
    /// here (edited meanwhile), it is written anew there with every exception, so this one's
    /// link (to an event that went with the old series) is dropped; deleted here, its
    /// exceptions go with it. Either way the exception itself is not cancelled.
    async fn series_gone(&mut self, a: &SyncAppointment, link: &EventLink) -> bool {
        let Some(series) = a.appointment.data.series else { return false };
        if !self.gone_there.contains(&series.master) {
            return false;
        }
        if let Err(Retry::Failed(why)) = self.drop_link(link).await {
            self.pull_error(&link.remote_id, &why);
        }
        true
    }

    /// Cancels an exception calsync has not written yet whose occurrence is gone there; the
    /// cancellation is written like any local change.
    async fn cancel_unwritten(&mut self, x: &calsync_domain::appointment::Appointment) {
        let data = AppointmentData { status: AppointmentStatus::Cancelled, ..x.data.clone() };
        match self.s.db.update_appointment(self.conn.firm_id, x.id, x.version, data).await {
            Ok(_) | Err(StoreError::VersionMismatch | StoreError::NotFound) => {}
            Err(err) => self.pull_error(&x.id.to_string(), &err.to_string()),
        }
    }

    /// Marks an appointment whose event was cancelled there (by an invitation's organizer, or
    /// one occurrence of a series) as cancelled.
    async fn cancel_here(&mut self, link: EventLink, a: SyncAppointment) {
        if a.appointment.data.status == AppointmentStatus::Cancelled {
            return;
        }
        let data = AppointmentData { status: AppointmentStatus::Cancelled, ..a.appointment.data.clone() };
        let gone = RemoteEvent {
            id: link.remote_id.clone(),
            etag: link.base.remote_etag.clone(),
            updated: None,
            calsync_id: None,
            data: Some(data.clone()),
            recurrence: Vec::new(),
            series_master_id: None,
            original_start: None,
            note: None,
        };
        match self.update_local(a.appointment.version, a.appointment.id, &gone, data).await {
            Ok(()) => self.s.counts.pulled_updated += 1,
            Err(Retry::Failed(why)) => self.pull_error(&link.remote_id, &why),
            // Changed here meanwhile: the next sync sees the stub again.
            Err(_) => {}
        }
    }

    /// Deletes an event calsync made whose appointment was deleted before the link was stored.
    async fn delete_orphan(&mut self, appointment: AppointmentId, e: &RemoteEvent) {
        let firm = self.conn.firm_id;
        let recorded = self.record(appointment, WriteOperation::Delete, Some(&e.id), Some(&e.etag)).await;
        let w = match recorded {
            Ok(w) => w,
            Err(err) => return self.s.item_failed(format!("event {}: {err}", e.id)),
        };
        let provider = self.provider;
        let cal = self.cal.remote_id.clone();
        match call!(self.s, |t| provider.delete(t, &cal, &e.id, &e.etag)) {
            Ok(()) | Err(ProviderError::NotFound | ProviderError::CursorExpired) => {
                self.complete_writes(appointment).await;
                self.s.counts.pushed_deleted += 1;
            }
            // Changed there since: someone wants it; the next sync sees it again.
            Err(ProviderError::PreconditionFailed) => self.complete_writes(appointment).await,
            Err(err) => {
                let _ = self.s.db.fail_write(firm, w.id, &describe(&err)).await;
                self.s.item_failed(format!("event {}: {}", e.id, describe(&err)));
            }
        }
    }

    fn pull_error(&mut self, remote_id: &str, what: &str) {
        self.pull_failed = true;
        self.s.item_failed(format!("event {remote_id}: {what}"));
    }

    /// calsync's own changes the pull did not already settle.
    async fn push_local_changes(&mut self) -> Result<(), Stop> {
        let changes = self
            .s
            .db
            .local_changes(
                self.conn.firm_id,
                self.conn.user_id,
                self.cal.id,
                self.push_target,
                self.window.start,
                self.window.end,
            )
            .await?;
        if !changes.is_empty() {
            self.load().await?;
        }
        let mut changes = changes;
        // Series masters before their exceptions: an exception is written against its master.
        changes.sort_by_key(|a| a.appointment.data.series.is_some());
        let total = changes.len();
        for (done, a) in changes.into_iter().enumerate() {
            if self.s.reauthorize.is_some() {
                break;
            }
            if self.s.throttled {
                // The provider keeps refusing for now: the rest waits for the next sync rather
                // than being pushed into the same wall.
                let label = self.s.label;
                self.s.item_failed(format!(
                    "{label} is limiting requests; {} changes wait for the next sync",
                    total - done
                ));
                break;
            }
            let id = a.appointment.id;
            if !self.processed.insert(id) {
                continue;
            }
            let link = self.by_appointment.get(&id).and_then(|r| self.links.get(r)).cloned();
            if link.as_ref().is_some_and(|l| self.frozen.contains(l.id)) {
                continue;
            }
            self.reconcile(link, Some(a), Seen::Unmentioned).await;
        }
        Ok(())
    }

    /// Plans one pair and carries the action out, re-reading and re-planning when a
    /// precondition lost a race.
    pub(super) async fn reconcile(
        &mut self,
        mut link: Option<EventLink>,
        mut local: Option<SyncAppointment>,
        mut seen: Seen,
    ) {
        let firm = self.conn.firm_id;
        for _ in 0..REPLANS {
            let mut action =
                plan(link.as_ref().map(|l| &l.base), &local_of(local.as_ref()), &remote_of(&seen), self.rules);
            if let (Some(a), Seen::Present(r)) = (local.as_ref().filter(|a| a.deleted_at.is_none()), &seen)
                && r.data.as_ref().is_some_and(|d| content_hash(d) == content_hash(&a.appointment.data))
            {
                // Both sides hold the same content (an update whose answer was lost, or two
                // identical edits): converged, whatever the bases say.
                action = Action::Skip;
            }
            let merge_input = match (&link, local.as_ref().filter(|a| a.deleted_at.is_none()), &seen) {
                // Only where both sides changed: a one-sided change is taken whole, as planned
                // (the base content is the provider's copy, which may lack what it cannot hold).
                (Some(l), Some(a), Seen::Present(r))
                    if matches!(action, Action::UpdateLocal | Action::UpdateRemote | Action::Conflict)
                        && both_changed(&l.base, a, r) =>
                {
                    l.base_data
                        .as_ref()
                        .zip(r.data.as_ref())
                        .map(|(b, d)| (l.clone(), a.clone(), r.clone(), b.clone(), d.clone()))
                }
                _ => None,
            };
            let outcome = match merge_input {
                // Both versions and what they diverged from are known: merge field by field.
                Some((l, a, r, base, theirs)) => {
                    let m = merge(
                        &base,
                        &a.appointment.data,
                        &theirs,
                        self.rules.conflicts,
                        a.appointment.updated_at,
                        r.updated,
                    );
                    if m.unresolved.is_empty() {
                        self.write_merged(&a, &r, m.data, None).await
                    } else {
                        let fields: Vec<&str> = m.unresolved.iter().map(|f| f.as_str()).collect();
                        self.open_conflict(&l, &a, &r, &fields).await
                    }
                }
                None => self.execute(action, link.as_ref(), local.as_ref(), &seen).await,
            };
            match outcome {
                Ok(()) => return,
                Err(Retry::Remote) => {
                    // The event changed or vanished at the provider: read it and plan again.
                    let id = match (&seen, &link) {
                        (Seen::Present(e), _) => e.id.clone(),
                        (_, Some(l)) => l.remote_id.clone(),
                        _ => return,
                    };
                    let provider = self.provider;
                    let cal = self.cal.remote_id.clone();
                    seen = match call!(self.s, |t| provider.get(t, &cal, &id)).map(|o| o.map(|e| self.tagged(e))) {
                        Ok(Some(e)) if supported(&e) => Seen::Present(Box::new(e)),
                        // Turned into something this version leaves alone (a series).
                        Ok(Some(_)) => return,
                        Ok(None) => Seen::Absent,
                        Err(e) => return self.failed(link.as_ref(), local.as_ref(), &describe(&e)).await,
                    };
                }
                Err(Retry::Local) => {
                    let Some(a) = &local else { return };
                    local = match self.s.db.sync_appointment(firm, a.appointment.id).await {
                        Ok(a) => a,
                        Err(e) => return self.failed(link.as_ref(), None, &e.to_string()).await,
                    };
                    if let Some(l) = &link {
                        link = match self.s.db.link_by_remote(firm, self.cal.id, &l.remote_id).await {
                            Ok(l) => l,
                            Err(e) => return self.failed(None, local.as_ref(), &e.to_string()).await,
                        };
                    }
                }
                Err(Retry::Again(l, s)) => {
                    link = Some(*l);
                    seen = s;
                }
                Err(Retry::Failed(why)) => return self.failed(link.as_ref(), local.as_ref(), &why).await,
            }
        }
        self.failed(link.as_ref(), local.as_ref(), "it kept changing while calsync synced it; next sync retries").await;
    }

    /// Records a failed item: on its link (state `error`) and in the attempt.
    async fn failed(&mut self, link: Option<&EventLink>, local: Option<&SyncAppointment>, why: &str) {
        if let Some(l) = link {
            let _ = self.s.db.set_link_state(self.conn.firm_id, l.id, LinkState::Error, Some(why)).await;
        }
        let what = match (link, local) {
            (Some(l), _) => format!("event {}: {why}", l.remote_id),
            (None, Some(a)) => format!("appointment {}: {why}", a.appointment.id),
            (None, None) => why.to_owned(),
        };
        // A pulled change that could not land: the cursor stays where it was, so the next sync
        // sees the change again (everything already applied comes back as an echo).
        self.pull_failed |= self.pulling;
        self.s.item_failed(what);
    }

    fn base_for(local: &AppointmentData, version: i64, remote: &RemoteEvent) -> Base {
        Base {
            local_version: version,
            local_hash: content_hash(local),
            remote_etag: remote.etag.clone(),
            remote_hash: remote.data.as_ref().map(content_hash).unwrap_or_default(),
        }
    }

    async fn save_link(
        &mut self,
        appointment: AppointmentId,
        remote: &RemoteEvent,
        base: &Base,
    ) -> Result<EventLink, StoreError> {
        self.save_link_with(appointment, remote, base, remote.data.as_ref()).await
    }

    /// [`Self::save_link`] with the base content given: `None` where it is not known (a pair
    /// planned against what was sent), so the planner compares whole versions.
    async fn save_link_with(
        &mut self,
        appointment: AppointmentId,
        remote: &RemoteEvent,
        base: &Base,
        base_data: Option<&AppointmentData>,
    ) -> Result<EventLink, StoreError> {
        let w = self.link_write(appointment, &remote.id, base, remote.updated, base_data);
        let link = self.s.db.save_link(self.conn.firm_id, &w).await?;
        self.remember(link.clone());
        Ok(link)
    }

    /// Stores a new base for an existing link, keeping what it knows of the remote side.
    async fn rebase(&mut self, l: &EventLink, base: Base) -> Result<(), Retry> {
        let w = LinkWrite {
            series_remote_id: l.series_remote_id.as_deref(),
            original_start: l.original_start,
            ..self.link_write(l.appointment_id, &l.remote_id, &base, l.remote_updated_at, l.base_data.as_ref())
        };
        let saved = self.s.db.save_link(self.conn.firm_id, &w).await.map_err(store)?;
        self.remember(saved);
        Ok(())
    }

    fn remember(&mut self, link: EventLink) {
        self.by_appointment.insert(link.appointment_id, link.remote_id.clone());
        self.links.insert(link.remote_id.clone(), link);
    }

    fn forget(&mut self, link: &EventLink) {
        self.destructive.retain(|d| d.link.id != link.id);
        self.links.remove(&link.remote_id);
        if self.by_appointment.get(&link.appointment_id) == Some(&link.remote_id) {
            self.by_appointment.remove(&link.appointment_id);
        }
    }

    /// What to store for this calendar's pair, in state `synced`.
    fn link_write<'b>(
        &self,
        appointment: AppointmentId,
        remote_id: &'b str,
        base: &'b Base,
        remote_updated_at: Option<DateTime<Utc>>,
        base_data: Option<&'b AppointmentData>,
    ) -> LinkWrite<'b> {
        LinkWrite {
            connection_id: self.conn.id,
            calendar_id: self.cal.id,
            appointment_id: appointment,
            remote_id,
            base,
            remote_updated_at,
            series_remote_id: None,
            original_start: None,
            state: LinkState::Synced,
            last_error: None,
            base_data,
        }
    }

    /// Records a provider write in the outbox, under a fresh key, before it is made.
    async fn record(
        &self,
        appointment: AppointmentId,
        operation: WriteOperation,
        remote_id: Option<&str>,
        etag: Option<&str>,
    ) -> Result<PendingWrite, StoreError> {
        let key = OutboxId::new().to_string();
        let (firm, connection, calendar) = (self.conn.firm_id, self.conn.id, self.cal.id);
        self.s.db.record_write(firm, connection, calendar, appointment, operation, &key, remote_id, etag).await
    }

    async fn complete_writes(&mut self, appointment: AppointmentId) {
        self.pending_creates.remove(&appointment);
        let _ = self.s.db.complete_writes_for(self.conn.firm_id, self.cal.id, appointment).await;
    }

    /// Drops this calendar's links of the master's exceptions (their events went with the old
    /// series there); the next push writes them on the new one.
    async fn unlink_exceptions(&mut self, master: AppointmentId) -> Result<(), Retry> {
        let exceptions = self.s.db.exceptions_of(self.conn.firm_id, &[master]).await.map_err(store)?;
        for x in exceptions {
            if let Some(link) = self.by_appointment.get(&x.id).and_then(|r| self.links.get(r)).cloned() {
                self.drop_link(&link).await?;
            }
        }
        Ok(())
    }

    async fn drop_link(&mut self, link: &EventLink) -> Result<(), Retry> {
        match self.s.db.delete_link(self.conn.firm_id, link.id).await {
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(Retry::Failed(e.to_string())),
        }
        self.complete_writes(link.appointment_id).await;
        self.forget(link);
        Ok(())
    }

    async fn execute(
        &mut self,
        action: Action,
        link: Option<&EventLink>,
        local: Option<&SyncAppointment>,
        seen: &Seen,
    ) -> Result<(), Retry> {
        let firm = self.conn.firm_id;
        let live = local.filter(|a| a.deleted_at.is_none());
        let remote = match seen {
            Seen::Present(e) => Some(e.as_ref()),
            _ => None,
        };
        let content =
            |r: &RemoteEvent| r.data.clone().ok_or_else(|| Retry::Failed("the provider sent no content".into()));
        match action {
            Action::Skip => {
                // Nothing to write; keep the base current (an echo's new etag, a no-op save).
                if let (Some(a), Some(r)) = (live, remote) {
                    let base = Self::base_for(&a.appointment.data, a.appointment.version, r);
                    if link.is_none_or(|l| l.base != base || l.state != LinkState::Synced) {
                        self.save_link(a.appointment.id, r, &base).await.map_err(store)?;
                    }
                } else if let (Some(a), Some(l)) = (live, link)
                    && l.base.local_version != a.appointment.version
                {
                    // Saved in calsync without a change of content: move the base on.
                    self.rebase(l, Base { local_version: a.appointment.version, ..l.base.clone() }).await?;
                }
                if let Some(id) = local.map(|a| a.appointment.id).or(link.map(|l| l.appointment_id)) {
                    self.complete_writes(id).await;
                }
                Ok(())
            }
            Action::CreateLocal => {
                let r = remote.ok_or_else(|| Retry::Failed("nothing to import".into()))?;
                let data = content(r)?;
                match local {
                    Some(a) if a.deleted_at.is_some() => {
                        // Edited there after it was deleted here: bring the appointment back.
                        let back = self.s.db.restore_appointment(firm, a.appointment.id).await.map_err(store)?;
                        self.update_local(back.version, back.id, r, data).await?;
                    }
                    _ => {
                        let base = Base {
                            local_version: 1,
                            local_hash: content_hash(&data),
                            remote_etag: r.etag.clone(),
                            remote_hash: content_hash(&data),
                        };
                        if let Some(l) = link {
                            self.drop_link(l).await?;
                        }
                        let w = self.link_write(AppointmentId::default(), &r.id, &base, r.updated, r.data.as_ref());
                        let (_, link) =
                            self.s.db.import_event(firm, self.conn.user_id, data, &w).await.map_err(store)?;
                        self.remember(link);
                    }
                }
                self.s.counts.pulled_created += 1;
                Ok(())
            }
            Action::UpdateLocal => {
                let (Some(a), Some(r)) = (live, remote) else {
                    return Err(Retry::Failed("nothing to update".into()));
                };
                let data = content(r)?;
                self.update_local(a.appointment.version, a.appointment.id, r, data).await?;
                self.s.counts.pulled_updated += 1;
                Ok(())
            }
            Action::DeleteLocal => {
                let l = link.ok_or_else(|| Retry::Failed("a deletion without a link".into()))?.clone();
                let version = live.map(|a| a.appointment.version);
                // One deletion per link, the latest plan's (a listing may mention it twice).
                self.destructive.retain(|d| d.link.id != l.id);
                self.destructive.push(Destructive { link: l, side: HeldSide::Local, version, from_pull: self.pulling });
                Ok(())
            }
            Action::CreateRemote => {
                let a = live.ok_or_else(|| Retry::Failed("nothing to create from".into()))?;
                self.create_remote(link, a).await
            }
            Action::UpdateRemote => {
                let a = live.ok_or_else(|| Retry::Failed("nothing to update from".into()))?;
                let (remote_id, etag) = match (remote, link) {
                    (Some(r), _) => (r.id.clone(), r.etag.clone()),
                    // The provider's version is not known yet (a retried create): read it first.
                    (None, Some(l)) if l.base.remote_etag.is_empty() => return Err(Retry::Remote),
                    (None, Some(l)) => (l.remote_id.clone(), l.base.remote_etag.clone()),
                    (None, None) => return Err(Retry::Failed("nothing to update".into())),
                };
                let w = self
                    .record(a.appointment.id, WriteOperation::Update, Some(&remote_id), Some(&etag))
                    .await
                    .map_err(store)?;
                let provider = self.provider;
                let cal = self.cal.remote_id.clone();
                let data = a.appointment.data.clone();
                let result = call!(self.s, |t| provider.update(t, &cal, &remote_id, &etag, &data));
                match result {
                    Ok(updated) => {
                        let base = Self::base_for(&data, a.appointment.version, &updated);
                        self.save_link(a.appointment.id, &updated, &base).await.map_err(store)?;
                        self.complete_writes(a.appointment.id).await;
                        self.s.counts.pushed_updated += 1;
                        Ok(())
                    }
                    Err(ProviderError::PreconditionFailed | ProviderError::NotFound) => {
                        let _ = self.s.db.complete_write(firm, w.id).await;
                        Err(Retry::Remote)
                    }
                    Err(e) => {
                        let _ = self.s.db.fail_write(firm, w.id, &describe(&e)).await;
                        Err(Retry::Failed(describe(&e)))
                    }
                }
            }
            Action::DeleteRemote => {
                let l = link.ok_or_else(|| Retry::Failed("a deletion without a link".into()))?.clone();
                let l = match remote {
                    // Delete the version we saw, not the base's.
                    Some(r) => EventLink { base: Base { remote_etag: r.etag.clone(), ..l.base.clone() }, ..l },
                    None => l,
                };
                if l.base.remote_etag.is_empty() && remote.is_none() {
                    // The provider's version is not known yet (a retried create): read it first.
                    return Err(Retry::Remote);
                }
                self.destructive.retain(|d| d.link.id != l.id);
                self.destructive.push(Destructive { link: l, side: HeldSide::Remote, version: None, from_pull: false });
                Ok(())
            }
            Action::Forget => {
                if let Some(l) = link {
                    self.drop_link(l).await?;
                }
                Ok(())
            }
            Action::Unlink => {
                let Some(l) = link else { return Ok(()) };
                match (live, local) {
                    // Gone at the provider, kept here by the delete policy: it stays in calsync
                    // and is not sent back to a calendar that deleted it.
                    (Some(a), _) => {
                        // Detached first: a crash in between must not leave it looking new.
                        self.s
                            .db
                            .detach_appointment(firm, a.appointment.id, self.conn.id, self.cal.id)
                            .await
                            .map_err(store)?;
                        self.drop_link(l).await?;
                    }
                    // Deleted here, kept there: the link stays (so the event is not imported
                    // again), acknowledging the deletion.
                    (None, Some(a)) if l.base.local_version != a.appointment.version => {
                        let base = match remote {
                            Some(r) => Base {
                                local_version: a.appointment.version,
                                remote_etag: r.etag.clone(),
                                remote_hash: r.data.as_ref().map(content_hash).unwrap_or_default(),
                                ..l.base.clone()
                            },
                            None => Base { local_version: a.appointment.version, ..l.base.clone() },
                        };
                        self.rebase(l, base).await?;
                    }
                    (None, Some(_)) => {}
                    (None, None) => self.drop_link(l).await?,
                }
                Ok(())
            }
            Action::Conflict => {
                let (Some(a), Some(r), Some(l)) = (live, remote, link) else {
                    return Err(Retry::Failed("a conflict needs both versions".into()));
                };
                self.open_conflict(l, a, r, &[]).await
            }
        }
    }

    /// Records a `manual` conflict (only `fields` when the base is known; all of it otherwise):
    /// nothing is written to either side until the user decides.
    async fn open_conflict(
        &mut self,
        l: &EventLink,
        a: &SyncAppointment,
        r: &RemoteEvent,
        fields: &[&str],
    ) -> Result<(), Retry> {
        let firm = self.conn.firm_id;
        let theirs = r.data.clone().ok_or_else(|| Retry::Failed("the provider sent no content".into()))?;
        self.s
            .db
            .open_conflict(firm, l.id, &a.appointment.data, &theirs, &r.etag, r.updated, fields, l.base_data.as_ref())
            .await
            .map_err(store)?;
        self.s.db.set_link_state(firm, l.id, LinkState::Conflict, None).await.map_err(store)?;
        self.frozen.conflicts.insert(l.id);
        self.s.counts.conflicts += 1;
        Ok(())
    }

    /// Writes a merged version to whichever side differs from it (the provider first, against
    /// `etag` or the version seen), then stores it as the new base. Written to both sides, it
    /// counts as a merge.
    async fn write_merged(
        &mut self,
        a: &SyncAppointment,
        r: &RemoteEvent,
        merged: AppointmentData,
        etag: Option<&str>,
    ) -> Result<(), Retry> {
        let firm = self.conn.firm_id;
        let theirs = r.data.clone().ok_or_else(|| Retry::Failed("the provider sent no content".into()))?;
        let to_remote = !differing(&theirs, &merged).is_empty();
        let to_local = !differing(&a.appointment.data, &merged).is_empty();
        let mut now_there = r.clone();
        if to_remote {
            let etag = etag.unwrap_or(&r.etag).to_owned();
            let w =
                self.record(a.appointment.id, WriteOperation::Update, Some(&r.id), Some(&etag)).await.map_err(store)?;
            let provider = self.provider;
            let cal = self.cal.remote_id.clone();
            match call!(self.s, |t| provider.update(t, &cal, &r.id, &etag, &merged)) {
                Ok(updated) => now_there = updated,
                Err(ProviderError::PreconditionFailed | ProviderError::NotFound) => {
                    let _ = self.s.db.complete_write(firm, w.id).await;
                    return Err(Retry::Remote);
                }
                Err(e) => {
                    let _ = self.s.db.fail_write(firm, w.id, &describe(&e)).await;
                    return Err(Retry::Failed(describe(&e)));
                }
            }
        }
        if to_local {
            if let Err(e) = self.update_local(a.appointment.version, a.appointment.id, &now_there, merged).await {
                if to_remote {
                    // The provider has the merge, calsync's copy moved on meanwhile: the base is
                    // calsync's copy as it was, so the next plan sees the merge as the
                    // provider's change and the new edit as calsync's.
                    let hash = content_hash(&a.appointment.data);
                    let base = Base {
                        local_version: a.appointment.version,
                        local_hash: hash.clone(),
                        remote_etag: now_there.etag.clone(),
                        remote_hash: hash,
                    };
                    self.save_link_with(a.appointment.id, &now_there, &base, Some(&a.appointment.data))
                        .await
                        .map_err(store)?;
                    self.complete_writes(a.appointment.id).await;
                }
                return Err(e);
            }
        } else {
            let base = Self::base_for(&a.appointment.data, a.appointment.version, &now_there);
            self.save_link(a.appointment.id, &now_there, &base).await.map_err(store)?;
            self.complete_writes(a.appointment.id).await;
        }
        match (to_local, to_remote) {
            (true, true) => self.s.counts.merged += 1,
            (true, false) => self.s.counts.pulled_updated += 1,
            (false, true) => self.s.counts.pushed_updated += 1,
            (false, false) => {}
        }
        Ok(())
    }

    async fn update_local(
        &mut self,
        version: i64,
        id: AppointmentId,
        r: &RemoteEvent,
        mut data: AppointmentData,
    ) -> Result<(), Retry> {
        if !data.recurrence.is_empty()
            && !self.provider.lists_deleted_occurrences()
            && let Ok(Some(here)) = self.s.db.sync_appointment(self.conn.firm_id, id).await
        {
            // Graph's rule holds no exclusions (they are deleted occurrences there): the ones
            // calsync has stay.
            data.recurrence
                .extend(here.appointment.data.recurrence.iter().filter(|l| l.starts_with("EXDATE")).cloned());
        }
        let base = Base {
            local_version: version + 1,
            local_hash: content_hash(&data),
            remote_etag: r.etag.clone(),
            remote_hash: r.data.as_ref().map_or_else(|| content_hash(&data), content_hash),
        };
        let w = self.link_write(id, &r.id, &base, r.updated, r.data.as_ref());
        match self.s.db.apply_remote_update(self.conn.firm_id, id, version, data, &w).await {
            Ok((a, link)) => {
                self.remember(link);
                self.complete_writes(id).await;
                // A series moved or re-ruled there: exceptions of occurrences it no longer has go.
                if a.data.series.is_none()
                    && let Err(e) = self.s.db.prune_exceptions(self.conn.firm_id, &a).await
                {
                    return Err(Retry::Failed(e.to_string()));
                }
                Ok(())
            }
            Err(StoreError::VersionMismatch | StoreError::NotFound) => Err(Retry::Local),
            Err(e) => Err(Retry::Failed(e.to_string())),
        }
    }

    /// Creates the event for an appointment in this calendar. The key is recorded before the
    /// call (with the content hash sent) and reused by every retry, so the provider dedupes: a
    /// lost answer or a crash never makes a second event.
    async fn create_remote(&mut self, link: Option<&EventLink>, a: &SyncAppointment) -> Result<(), Retry> {
        let firm = self.conn.firm_id;
        let id = a.appointment.id;
        let provider = self.provider;
        let cal = self.cal.remote_id.clone();
        let stamp = id.to_string();
        let data = a.appointment.data.clone();
        if data.status == AppointmentStatus::Cancelled && data.series.is_none() {
            // Nothing to show there: a cancelled appointment is not created (it is when it is
            // confirmed again).
            self.complete_writes(id).await;
            return Ok(());
        }
        let mut pending = self.pending_creates.remove(&id);
        for _ in 0..2 {
            let retrying = pending.is_some();
            let write = match pending.take() {
                Some(w) => w,
                None => {
                    // The content hash sent rides in the etag slot: a retry plans against it.
                    let hash = content_hash(&data);
                    self.record(id, WriteOperation::Create, None, Some(&hash)).await.map_err(store)?
                }
            };
            let key = write.idempotency_key.clone();
            let mut result = match data.series {
                // An occurrence exists with its series: it is written, not created, and found by
                // its original start, so a retry writes the same one.
                Some(series) => {
                    let Some(master) = self.by_appointment.get(&series.master).cloned() else {
                        // A series deleted in this round (its create turned out to have been
                        // deleted there) took its exceptions with it: nothing is left to write.
                        let live = |a: Option<SyncAppointment>| a.is_some_and(|a| a.deleted_at.is_none());
                        if !live(self.s.db.sync_appointment(firm, series.master).await.map_err(store)?)
                            || !live(self.s.db.sync_appointment(firm, id).await.map_err(store)?)
                        {
                            self.complete_writes(id).await;
                            return Ok(());
                        }
                        let _ = self.s.db.fail_write(firm, write.id, "its series is not on this calendar yet").await;
                        return Err(Retry::Failed("its series is not on this calendar yet".into()));
                    };
                    let o = series.original_start;
                    call!(self.s, |t| provider.write_occurrence(t, &cal, &master, o, &stamp, &data))
                }
                None => call!(self.s, |t| provider.create(t, &cal, &key, &stamp, &data)),
            };
            if retrying
                && data.series.is_none()
                && let Ok(created) = &result
            {
                // A retry may be answered with the event the first attempt made even though it
                // has been deleted there since (Graph dedupes on transactionId): check.
                let rid = created.id.clone();
                match call!(self.s, |t| provider.get(t, &cal, &rid)) {
                    Ok(Some(_)) => {}
                    Ok(None) => result = Err(ProviderError::NotFound),
                    Err(e) => result = Err(e),
                }
            }
            match result {
                Ok(created) => {
                    if let Some(l) = link {
                        self.drop_link(l).await?;
                        if !data.recurrence.is_empty() {
                            // A series made anew there: its exceptions are written on it anew.
                            self.unlink_exceptions(id).await?;
                        }
                    }
                    self.s.counts.pushed_created += 1;
                    if retrying {
                        // The event holds what the first attempt sent; plan against that, so a
                        // later edit on either side is not mistaken for the other's.
                        let sent = write.expected_etag.clone().unwrap_or_else(|| content_hash(&data));
                        let linked = self.save_link_with(id, &created, &sent_base(&sent), None).await.map_err(store)?;
                        self.complete_writes(id).await;
                        return Err(Retry::Again(Box::new(linked), Seen::Present(Box::new(created))));
                    }
                    let base = Self::base_for(&data, a.appointment.version, &created);
                    self.save_link(id, &created, &base).await.map_err(store)?;
                    self.complete_writes(id).await;
                    return Ok(());
                }
                Err(ProviderError::NotFound) if data.series.is_some() => {
                    // The occurrence is gone there (deleted, or no longer made by the rule): it
                    // cannot be written back, so it is cancelled here.
                    self.complete_writes(id).await;
                    if data.status != AppointmentStatus::Cancelled {
                        self.cancel_unwritten(&a.appointment).await;
                    }
                    return Ok(());
                }
                Err(ProviderError::NotFound) if retrying => {
                    // The first attempt made the event and it was deleted there before calsync
                    // heard back: a deletion there like any other, unless calsync's copy was
                    // edited since (an edit beats a deletion it never saw).
                    self.complete_writes(id).await;
                    if self.rules.deletes == DeletePolicy::Keep {
                        self.s.db.detach_appointment(firm, id, self.conn.id, self.cal.id).await.map_err(store)?;
                        if let Some(l) = link {
                            self.drop_link(l).await?;
                        }
                        return Ok(());
                    }
                    if a.appointment.updated_at <= write.created_at && link.is_none() {
                        return match self.s.db.delete_appointment(firm, id, a.appointment.version).await {
                            Ok(()) => {
                                self.s.counts.pulled_deleted += 1;
                                Ok(())
                            }
                            Err(StoreError::VersionMismatch) => Err(Retry::Local),
                            Err(e) => Err(store(e)),
                        };
                    }
                    // Edited since: create it again under a fresh key.
                }
                Err(e) => {
                    let _ = self.s.db.fail_write(firm, write.id, &describe(&e)).await;
                    return Err(Retry::Failed(describe(&e)));
                }
            }
        }
        Err(Retry::Failed("the event could not be created".into()))
    }

    /// Applies the deletions of this calendar, unless there are so many at once that they look
    /// like an accident: then nothing destructive happens and they wait for confirmation.
    async fn guard_and_apply_deletes(&mut self) -> Result<(), Stop> {
        let linked_before = self.linked_before;
        let n = self.destructive.len();
        let c = &self.s.config;
        if n > c.mass_delete_min && (n as f64) > c.mass_delete_share * linked_before as f64 {
            let items: Vec<(EventLinkId, HeldSide)> = self.destructive.iter().map(|d| (d.link.id, d.side)).collect();
            self.s.db.hold_deletes(self.conn.firm_id, self.conn.id, self.cal.id, &items).await?;
            tracing::warn!(connection_id = %self.conn.id, calendar = %self.cal.id, deletes = n, linked = linked_before, "mass delete held for confirmation");
            self.s.held += n;
            self.destructive.clear();
            return Ok(());
        }
        self.drain_deletes().await;
        Ok(())
    }

    /// Carries out the queued deletions. One that lost a race is planned again, which may
    /// queue it again: bounded.
    pub(super) async fn drain_deletes(&mut self) {
        let mut budget = self.destructive.len() * REPLANS + 1;
        while let Some(d) = self.destructive.pop() {
            if self.s.reauthorize.is_some() || self.s.throttled || budget == 0 {
                self.pull_failed |= d.from_pull;
                let why = "not deleted in this sync; the next one retries";
                self.failed(Some(&d.link), None, why).await;
                continue;
            }
            budget -= 1;
            self.apply_destructive(d).await;
        }
    }

    /// Carries out one deletion (after the guard let it through, or on confirmation).
    pub(super) async fn apply_destructive(&mut self, d: Destructive) {
        let firm = self.conn.firm_id;
        let was_pulling = self.pulling;
        self.pulling = d.from_pull;
        let local = match self.s.db.sync_appointment(firm, d.link.appointment_id).await {
            Ok(a) => a,
            Err(e) => {
                self.failed(Some(&d.link), None, &e.to_string()).await;
                self.pulling = was_pulling;
                return;
            }
        };
        match d.side {
            HeldSide::Local => match local {
                None => {
                    let _ = self.drop_link(&d.link).await;
                }
                Some(a) => {
                    let version = d.version.unwrap_or(a.appointment.version);
                    match self.s.db.apply_remote_delete(firm, a.appointment.id, version, d.link.id).await {
                        Ok(()) => {
                            self.forget(&d.link);
                            self.complete_writes(a.appointment.id).await;
                            self.s.counts.pulled_deleted += 1;
                        }
                        // Edited here meanwhile: plan again against the deletion.
                        Err(StoreError::VersionMismatch) => {
                            let fresh = self.s.db.sync_appointment(firm, a.appointment.id).await.ok().flatten();
                            Box::pin(self.reconcile(Some(d.link), fresh, Seen::Absent)).await;
                        }
                        Err(e) => self.failed(Some(&d.link), Some(&a), &e.to_string()).await,
                    }
                }
            },
            HeldSide::Remote if local.as_ref().is_some_and(|a| a.deleted_at.is_none()) => {
                // The appointment is back (restored since the plan): plan the pair again.
                Box::pin(self.reconcile(Some(d.link), local, Seen::Unmentioned)).await;
            }
            HeldSide::Remote => {
                let appointment = d.link.appointment_id;
                let recorded = self
                    .record(
                        appointment,
                        WriteOperation::Delete,
                        Some(&d.link.remote_id),
                        Some(&d.link.base.remote_etag),
                    )
                    .await;
                let w = match recorded {
                    Ok(w) => w,
                    Err(e) => {
                        self.failed(Some(&d.link), local.as_ref(), &e.to_string()).await;
                        self.pulling = was_pulling;
                        return;
                    }
                };
                let provider = self.provider;
                let cal = self.cal.remote_id.clone();
                let (rid, etag) = (d.link.remote_id.clone(), d.link.base.remote_etag.clone());
                match call!(self.s, |t| provider.delete(t, &cal, &rid, &etag)) {
                    // Gone already counts as deleted (Graph answers 410 for some).
                    Ok(()) | Err(ProviderError::NotFound | ProviderError::CursorExpired) => {
                        let _ = self.drop_link(&d.link).await;
                        self.s.counts.pushed_deleted += 1;
                    }
                    Err(ProviderError::PreconditionFailed) => {
                        let _ = self.s.db.complete_write(firm, w.id).await;
                        // Edited there meanwhile: plan again with what is there now.
                        let seen =
                            match call!(self.s, |t| provider.get(t, &cal, &rid)).map(|o| o.map(|e| self.tagged(e))) {
                                Ok(Some(e)) if supported(&e) => Seen::Present(Box::new(e)),
                                Ok(Some(_)) => Seen::Unmentioned,
                                Ok(None) => Seen::Absent,
                                Err(e) => {
                                    self.failed(Some(&d.link), local.as_ref(), &describe(&e)).await;
                                    self.pulling = was_pulling;
                                    return;
                                }
                            };
                        Box::pin(self.reconcile(Some(d.link), local, seen)).await;
                    }
                    Err(e) => {
                        let _ = self.s.db.fail_write(firm, w.id, &describe(&e)).await;
                        self.failed(Some(&d.link), local.as_ref(), &describe(&e)).await;
                    }
                }
            }
        }
        self.pulling = was_pulling;
    }

    /// Undoes a held deletion: the side that was to be deleted stays, and the side already gone
    /// is brought back from it.
    pub async fn restore(&mut self, link: EventLink, side: HeldSide) {
        let firm = self.conn.firm_id;
        match side {
            // The event is gone at the provider: create it again from the appointment.
            HeldSide::Local => match self.s.db.sync_appointment(firm, link.appointment_id).await {
                Ok(Some(a)) if a.deleted_at.is_none() => match self.create_remote(Some(&link), &a).await {
                    Ok(()) => {}
                    Err(Retry::Again(l, seen)) => Box::pin(self.reconcile(Some(*l), Some(a), seen)).await,
                    Err(Retry::Failed(why)) => self.failed(Some(&link), Some(&a), &why).await,
                    Err(_) => self.failed(Some(&link), Some(&a), "it changed meanwhile; the next sync retries").await,
                },
                Ok(_) => {
                    let _ = self.drop_link(&link).await;
                }
                Err(e) => self.failed(Some(&link), None, &e.to_string()).await,
            },
            // The appointment was deleted in calsync: bring it back, linked as before.
            HeldSide::Remote => match self.s.db.restore_appointment(firm, link.appointment_id).await {
                Ok(a) => {
                    if let Err(e) = self.rebase(&link, Base { local_version: a.version, ..link.base.clone() }).await {
                        let why = match e {
                            Retry::Failed(w) => w,
                            _ => "the link could not be stored".into(),
                        };
                        self.failed(Some(&link), None, &why).await;
                    } else {
                        self.s.counts.pulled_created += 1;
                    }
                }
                Err(e) => self.failed(Some(&link), None, &e.to_string()).await,
            },
        }
    }

    /// Settles a `manual` conflict: the kept side is written over the other. The provider's
    /// version the user saw is the precondition: if it changed since, nothing is written and the
    /// conflict shows the new version.
    pub async fn settle_conflict(
        &mut self,
        c: &Conflict,
        link: EventLink,
        keep: ConflictSide,
        picks: &[(Field, Side)],
    ) -> Result<(), String> {
        let firm = self.conn.firm_id;
        let local = self.s.db.sync_appointment(firm, link.appointment_id).await.map_err(|e| e.to_string())?;
        let provider = self.provider;
        let cal = self.cal.remote_id.clone();
        let rid = link.remote_id.clone();
        let remote = call!(self.s, |t| provider.get(t, &cal, &rid)).map_err(|e| describe(&e))?.map(|e| self.tagged(e));
        let changed_since = |r: &RemoteEvent| r.etag != c.remote_etag;
        let live = local.filter(|a| a.deleted_at.is_none());
        match (keep, live, remote) {
            (_, Some(a), Some(r)) => {
                let theirs = r.data.clone().ok_or("the provider sent no content")?;
                if changed_since(&r) {
                    // The user decided on a version that is no longer there: show the new one.
                    let fields = conflict_fields(link.base_data.as_ref(), &a.appointment.data, &theirs);
                    let _ = self
                        .s
                        .db
                        .open_conflict(
                            firm,
                            link.id,
                            &a.appointment.data,
                            &theirs,
                            &r.etag,
                            r.updated,
                            &fields,
                            link.base_data.as_ref(),
                        )
                        .await;
                    return Err("the event changed at the provider since; review the conflict again".into());
                }
                let default = match keep {
                    ConflictSide::Internal => Side::Local,
                    ConflictSide::External => Side::Remote,
                };
                let side_of = |f: Field| picks.iter().find(|(p, _)| *p == f).map_or(default, |(_, s)| *s);
                let data = match link.base_data.as_ref() {
                    // The fields without conflict keep their merge; the others follow the picks.
                    Some(base) => {
                        let (mine, when) = (&a.appointment.data, a.appointment.updated_at);
                        let m = merge(base, mine, &theirs, ConflictStrategy::Manual, when, r.updated);
                        let shown: Vec<&str> = m.unresolved.iter().map(|f| f.as_str()).collect();
                        if !c.fields.is_empty() && shown != c.fields.iter().map(String::as_str).collect::<Vec<_>>() {
                            // calsync's copy changed since the user saw the conflict.
                            let _ = self
                                .s
                                .db
                                .open_conflict(firm, link.id, mine, &theirs, &r.etag, r.updated, &shown, Some(base))
                                .await;
                            return Err("the appointment changed since; review the conflict again".into());
                        }
                        // Each field in conflict from the merge that prefers the chosen side, so
                        // the other side's harmless attendee edits survive a pick of attendees.
                        let internal = merge(base, mine, &theirs, ConflictStrategy::PreferInternal, when, r.updated);
                        let external = merge(base, mine, &theirs, ConflictStrategy::PreferExternal, when, r.updated);
                        let mut data = m.data;
                        for f in &m.unresolved {
                            let from = if side_of(*f) == Side::Local { &internal.data } else { &external.data };
                            data = choose(&data, from, &[(*f, Side::Remote)]);
                        }
                        data
                    }
                    None => {
                        let take: Vec<(Field, Side)> = Field::ALL.iter().map(|f| (*f, side_of(*f))).collect();
                        choose(&a.appointment.data, &theirs, &take)
                    }
                };
                self.write_merged(&a, &r, data, Some(&c.remote_etag)).await.map_err(|e| match e {
                    Retry::Remote => "the event changed at the provider since; review the conflict again".to_owned(),
                    Retry::Local => "the appointment changed meanwhile; try again".to_owned(),
                    Retry::Again(..) => "try again".to_owned(),
                    Retry::Failed(why) => why,
                })
            }
            (ConflictSide::Internal, Some(a), None) => match self.create_remote(Some(&link), &a).await {
                Ok(()) | Err(Retry::Again(..)) => Ok(()),
                Err(_) => Err("the event could not be created again".to_owned()),
            },
            (ConflictSide::Internal, None, Some(r)) => {
                // Deleted in calsync meanwhile: that is calsync's version.
                match call!(self.s, |t| provider.delete(t, &cal, &rid, &r.etag)) {
                    Ok(()) | Err(ProviderError::NotFound | ProviderError::CursorExpired) => {
                        let _ = self.drop_link(&link).await;
                        self.s.counts.pushed_deleted += 1;
                        Ok(())
                    }
                    Err(e) => Err(describe(&e)),
                }
            }
            (ConflictSide::External, Some(a), None) => {
                self.s
                    .db
                    .apply_remote_delete(firm, a.appointment.id, a.appointment.version, link.id)
                    .await
                    .map_err(|e| e.to_string())?;
                self.s.counts.pulled_deleted += 1;
                Ok(())
            }
            (ConflictSide::External, None, Some(r)) => {
                let back = self.s.db.restore_appointment(firm, link.appointment_id).await.map_err(|e| e.to_string())?;
                let data = r.data.clone().ok_or("the provider sent no content")?;
                self.update_local(back.version, back.id, &r, data)
                    .await
                    .map_err(|_| "the appointment changed meanwhile; try again".to_owned())?;
                self.s.counts.pulled_created += 1;
                Ok(())
            }
            (_, None, None) => {
                let _ = self.drop_link(&link).await;
                Ok(())
            }
        }
    }
}
