//! The sync of one calendar of a connection: pull (incremental, or in full diffed against the
//! links when there is no live cursor), plan every pair with the domain planner, push calsync's
//! own changes, hold mass deletions for confirmation, and save the cursor only once all of it
//! was applied.

use std::collections::{HashMap, HashSet};

use calsync_domain::appointment::AppointmentData;
use calsync_domain::ids::{AppointmentId, EventLinkId, OutboxId};
use calsync_domain::sync::{
    Action, Base, ConflictSide, HeldSide, LinkState, Local, Remote, Rules, WriteOperation, content_hash, plan,
};
use calsync_providers::ProviderError;
use calsync_providers::calendar::{CalendarProvider, Change, ListFrom, PageNext, RemoteEvent, Window};
use calsync_store::{CalendarCursor, Connection, EventLink, LinkWrite, StoreError, SyncAppointment, SyncedCalendar};
use chrono::{DateTime, Duration, Utc};

use super::session::{Session, Stop, call};

/// How often one pair is re-planned after losing a race (412, or a local edit meanwhile).
const REPLANS: usize = 3;

/// The remote side of a pair as this sync knows it.
#[derive(Debug, Clone)]
pub enum Seen {
    Unmentioned,
    Absent,
    Present(Box<RemoteEvent>),
}

/// A deletion waiting for the mass-delete guard.
#[derive(Debug, Clone)]
pub struct Destructive {
    pub link: EventLink,
    pub side: HeldSide,
}

pub struct CalendarSync<'a> {
    pub s: &'a mut Session,
    pub provider: &'a dyn CalendarProvider,
    pub conn: &'a Connection,
    pub cal: &'a SyncedCalendar,
    pub push_target: bool,
    pub rules: Rules,
    pub window: Window,
    /// Links on hold (mass delete awaiting confirmation, or an open conflict): not touched.
    pub frozen: &'a HashSet<EventLinkId>,
    links: HashMap<String, EventLink>,
    by_appointment: HashMap<AppointmentId, String>,
    processed: HashSet<AppointmentId>,
    destructive: Vec<Destructive>,
    /// Listing is under way: a failed item is a pulled change that did not land.
    pulling: bool,
    /// A pulled change could not be applied: the cursor must not move past it.
    pull_failed: bool,
}

/// The sync window for `days`: from midnight UTC `days` days ago to the end of the day `days`
/// days ahead, so it moves once a day and a cursor made today stays valid all day.
pub fn window_for(now: DateTime<Utc>, days: i64) -> Window {
    let midnight = now.date_naive().and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
    Window { start: midnight - Duration::days(days), end: midnight + Duration::days(days + 1) }
}

fn overlaps(data: &AppointmentData, w: &Window) -> bool {
    let (start, end) = data.utc_range();
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

/// Series, occurrences and skeletons are the next step's (event fidelity); until then they are
/// left alone on both sides rather than imported half-understood.
fn supported(e: &RemoteEvent) -> bool {
    e.data.is_some() && e.recurrence.is_empty() && e.series_master_id.is_none()
}

fn describe(e: &ProviderError) -> String {
    e.to_string()
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
        frozen: &'a HashSet<EventLinkId>,
    ) -> Result<CalendarSync<'a>, Stop> {
        let all = s.db.links(conn.firm_id, cal.id).await?;
        let by_appointment = all.iter().map(|l| (l.appointment_id, l.remote_id.clone())).collect();
        let links = all.into_iter().map(|l| (l.remote_id.clone(), l)).collect();
        Ok(CalendarSync {
            s,
            provider,
            conn,
            cal,
            push_target,
            rules,
            window,
            frozen,
            links,
            by_appointment,
            processed: HashSet::new(),
            destructive: Vec::new(),
            pulling: false,
            pull_failed: false,
        })
    }

    /// Pull, plan, push, guard, and the cursor last.
    pub async fn run(mut self) -> Result<(), Stop> {
        let firm = self.conn.firm_id;
        let stored = self.s.db.calendar_cursor(firm, self.cal.id).await?;
        let mut cursor = stored.filter(|c| c.window_start == self.window.start && c.window_end == self.window.end);
        let linked_before = self.links.len();
        self.pulling = true;
        let new_cursor = loop {
            match self.listing(cursor.as_ref()).await {
                Ok(done) => break done,
                Err(ProviderError::CursorExpired) if cursor.is_some() => {
                    tracing::info!(connection_id = %self.conn.id, calendar = %self.cal.id, "sync cursor expired; listing in full");
                    cursor = None;
                }
                Err(e) => return Err(Stop::from_provider(&e)),
            }
        };
        self.pulling = false;
        self.push_local_changes().await?;
        self.guard_and_apply_deletes(linked_before).await?;
        if self.s.reauthorize.is_some() {
            return Err(Stop::Reauthorize(self.s.reauthorize.clone().unwrap_or_default()));
        }
        if !self.pull_failed {
            let c = CalendarCursor { cursor: new_cursor, window_start: self.window.start, window_end: self.window.end };
            self.s.db.save_calendar_cursor(firm, self.cal.id, Some(&c)).await?;
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
        let provider = self.provider;
        let remote_cal = self.cal.remote_id.clone();
        let window = self.window;
        let next_cursor = loop {
            let from = match cursor {
                None => ListFrom::Full { window, page: page.as_deref() },
                Some(c) => ListFrom::Since { cursor: &c.cursor, page: page.as_deref() },
            };
            let got = call!(self.s, |t| provider.list_changes(t, &remote_cal, from))?;
            for change in got.changes {
                match change {
                    Change::Upsert(e) => {
                        seen.insert(e.id.clone());
                        removed.remove(&e.id);
                        self.pulled(*e).await;
                    }
                    Change::Deleted { id } => {
                        if self.links.contains_key(&id) {
                            removed.insert(id);
                        }
                    }
                }
            }
            match got.next {
                PageNext::More(p) => page = Some(p),
                PageNext::Done(c) => break c,
            }
        };
        if full {
            // Whatever is linked, in the window, and was not listed is gone there: this is how
            // deletions made while there was no live cursor are found.
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
        }
        let mut removed: Vec<String> = removed.into_iter().collect();
        removed.sort_unstable();
        for id in removed {
            self.removed(&id).await;
        }
        Ok(next_cursor)
    }

    /// A pulled event: linked, ours without a link (a commit lost after the write), or new.
    async fn pulled(&mut self, e: RemoteEvent) {
        if !supported(&e) {
            return;
        }
        let firm = self.conn.firm_id;
        if let Some(link) = self.links.get(&e.id).cloned() {
            if self.frozen.contains(&link.id) {
                return;
            }
            let local = match self.s.db.sync_appointment(firm, link.appointment_id).await {
                Ok(a) => a,
                Err(err) => return self.pull_error(&e.id, &err.to_string()),
            };
            self.processed.insert(link.appointment_id);
            return self.reconcile(Some(link), local, Seen::Present(Box::new(e))).await;
        }
        if let Some(stamp) = e.calsync_id.as_deref().and_then(|s| s.parse::<AppointmentId>().ok()) {
            // Stamped by calsync. Relink it if it is this user's appointment without a link here;
            // any other stamped event is never imported (that is how duplicates are born).
            let local = match self.s.db.sync_appointment(firm, stamp).await {
                Ok(a) => a,
                Err(err) => return self.pull_error(&e.id, &err.to_string()),
            };
            let ours =
                local.as_ref().is_some_and(|a| a.appointment.owner_id == self.conn.user_id && a.deleted_at.is_none());
            if ours && !self.by_appointment.contains_key(&stamp) {
                self.processed.insert(stamp);
                return self.reconcile(None, local, Seen::Present(Box::new(e))).await;
            }
            return;
        }
        let in_window = e.data.as_ref().is_some_and(|d| overlaps(d, &self.window));
        if in_window {
            self.reconcile(None, None, Seen::Present(Box::new(e))).await;
        }
    }

    /// A linked event reported gone. Where that can also mean "moved out of the window", the
    /// event is read first: only a 404 deletes anything.
    async fn removed(&mut self, remote_id: &str) {
        let Some(link) = self.links.get(remote_id).cloned() else { return };
        if self.frozen.contains(&link.id) {
            return;
        }
        let seen = if self.provider.removals_may_be_moves() {
            let provider = self.provider;
            let cal = self.cal.remote_id.clone();
            match call!(self.s, |t| provider.get(t, &cal, remote_id)) {
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
        self.processed.insert(link.appointment_id);
        self.reconcile(Some(link), local, seen).await;
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
        for a in changes {
            if self.s.reauthorize.is_some() {
                break;
            }
            let id = a.appointment.id;
            if !self.processed.insert(id) {
                continue;
            }
            let link = self.by_appointment.get(&id).and_then(|r| self.links.get(r)).cloned();
            if link.as_ref().is_some_and(|l| self.frozen.contains(&l.id)) {
                continue;
            }
            self.reconcile(link, Some(a), Seen::Unmentioned).await;
        }
        Ok(())
    }

    /// Plans one pair and carries the action out, re-reading and re-planning when a
    /// precondition lost a race.
    async fn reconcile(&mut self, mut link: Option<EventLink>, mut local: Option<SyncAppointment>, mut seen: Seen) {
        let firm = self.conn.firm_id;
        for _ in 0..REPLANS {
            let mut action =
                plan(link.as_ref().map(|l| &l.base), &local_of(local.as_ref()), &remote_of(&seen), self.rules);
            if let (None, Some(a), Seen::Present(r)) = (&link, &local, &seen)
                && r.data.as_ref().is_some_and(|d| content_hash(d) == content_hash(&a.appointment.data))
            {
                // Our own event whose link was lost with a commit, unchanged since: just relink.
                action = Action::Skip;
            }
            match self.execute(action, link.as_ref(), local.as_ref(), &seen).await {
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
                    seen = match call!(self.s, |t| provider.get(t, &cal, &id)) {
                        Ok(Some(e)) => Seen::Present(Box::new(e)),
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
        let w = LinkWrite {
            connection_id: self.conn.id,
            calendar_id: self.cal.id,
            appointment_id: appointment,
            remote_id: &remote.id,
            base,
            remote_updated_at: remote.updated,
            series_remote_id: None,
            original_start: None,
            state: LinkState::Synced,
            last_error: None,
        };
        let link = self.s.db.save_link(self.conn.firm_id, &w).await?;
        self.remember(link.clone());
        Ok(link)
    }

    fn remember(&mut self, link: EventLink) {
        self.by_appointment.insert(link.appointment_id, link.remote_id.clone());
        self.links.insert(link.remote_id.clone(), link);
    }

    fn forget(&mut self, link: &EventLink) {
        self.links.remove(&link.remote_id);
        if self.by_appointment.get(&link.appointment_id) == Some(&link.remote_id) {
            self.by_appointment.remove(&link.appointment_id);
        }
    }

    async fn drop_link(&mut self, link: &EventLink) -> Result<(), Retry> {
        match self.s.db.delete_link(self.conn.firm_id, link.id).await {
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(Retry::Failed(e.to_string())),
        }
        let _ = self.s.db.complete_writes_for(self.conn.firm_id, self.cal.id, link.appointment_id).await;
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
        match action {
            Action::Skip => {
                // Nothing to write; keep the base current (an echo's new etag, a no-op save).
                if let (Some(a), Some(r)) = (live, remote) {
                    let base = Self::base_for(&a.appointment.data, a.appointment.version, r);
                    let stale = link.is_none_or(|l| l.base != base || l.state != LinkState::Synced);
                    let same_content = link.is_some() || base.local_hash == base.remote_hash;
                    if stale && same_content {
                        self.save_link(a.appointment.id, r, &base).await.map_err(store)?;
                    }
                } else if let (Some(a), Some(l)) = (live, link)
                    && l.base.local_version != a.appointment.version
                {
                    // Saved in calsync without a change of content: move the base on.
                    let base = Base { local_version: a.appointment.version, ..l.base.clone() };
                    let w = LinkWrite {
                        connection_id: self.conn.id,
                        calendar_id: self.cal.id,
                        appointment_id: a.appointment.id,
                        remote_id: &l.remote_id,
                        base: &base,
                        remote_updated_at: l.remote_updated_at,
                        series_remote_id: l.series_remote_id.as_deref(),
                        original_start: l.original_start,
                        state: LinkState::Synced,
                        last_error: None,
                    };
                    let saved = self.s.db.save_link(firm, &w).await.map_err(store)?;
                    self.remember(saved);
                }
                if let Some(id) = local.map(|a| a.appointment.id).or(link.map(|l| l.appointment_id)) {
                    let _ = self.s.db.complete_writes_for(firm, self.cal.id, id).await;
                }
                Ok(())
            }
            Action::CreateLocal => {
                let r = remote.expect("create local from a present event");
                let data = r.data.clone().expect("supported events have content");
                match local {
                    Some(a) if a.deleted_at.is_some() => {
                        // Edited there after it was deleted here: bring the appointment back.
                        let back = self.s.db.restore_appointment(firm, a.appointment.id).await.map_err(store)?;
                        self.update_local(&back.data.clone(), back.version, back.id, r, data).await?;
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
                        let w = LinkWrite {
                            connection_id: self.conn.id,
                            calendar_id: self.cal.id,
                            appointment_id: AppointmentId::default(),
                            remote_id: &r.id,
                            base: &base,
                            remote_updated_at: r.updated,
                            series_remote_id: None,
                            original_start: None,
                            state: LinkState::Synced,
                            last_error: None,
                        };
                        let (_, link) =
                            self.s.db.import_event(firm, self.conn.user_id, data, &w).await.map_err(store)?;
                        self.remember(link);
                    }
                }
                self.s.counts.pulled_created += 1;
                Ok(())
            }
            Action::UpdateLocal => {
                let (a, r) = (live.expect("update of a live appointment"), remote.expect("from a present event"));
                let data = r.data.clone().expect("supported events have content");
                self.update_local(&a.appointment.data, a.appointment.version, a.appointment.id, r, data).await?;
                self.s.counts.pulled_updated += 1;
                Ok(())
            }
            Action::DeleteLocal => {
                let l = link.expect("a local delete follows a link").clone();
                self.destructive.push(Destructive { link: l, side: HeldSide::Local });
                Ok(())
            }
            Action::CreateRemote => {
                let a = live.expect("create from a live appointment");
                self.create_remote(link, a).await?;
                self.s.counts.pushed_created += 1;
                Ok(())
            }
            Action::UpdateRemote => {
                let a = live.expect("update from a live appointment");
                let (remote_id, etag) = match (remote, link) {
                    (Some(r), _) => (r.id.clone(), r.etag.clone()),
                    (None, Some(l)) => (l.remote_id.clone(), l.base.remote_etag.clone()),
                    (None, None) => return Err(Retry::Failed("nothing to update".into())),
                };
                let key = OutboxId::new().to_string();
                let w = self
                    .s
                    .db
                    .record_write(
                        firm,
                        self.conn.id,
                        self.cal.id,
                        a.appointment.id,
                        WriteOperation::Update,
                        &key,
                        Some(&remote_id),
                        Some(&etag),
                    )
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
                        let _ = self.s.db.complete_writes_for(firm, self.cal.id, a.appointment.id).await;
                        self.s.counts.pushed_updated += 1;
                        Ok(())
                    }
                    Err(ProviderError::PreconditionFailed | ProviderError::NotFound) => Err(Retry::Remote),
                    Err(e) => {
                        let _ = self.s.db.fail_write(firm, w.id, &describe(&e)).await;
                        Err(Retry::Failed(describe(&e)))
                    }
                }
            }
            Action::DeleteRemote => {
                let l = link.expect("a remote delete follows a link").clone();
                let l = match remote {
                    // Delete the version we saw, not the base's.
                    Some(r) => EventLink { base: Base { remote_etag: r.etag.clone(), ..l.base.clone() }, ..l },
                    None => l,
                };
                self.destructive.push(Destructive { link: l, side: HeldSide::Remote });
                Ok(())
            }
            Action::Forget | Action::Unlink => {
                if let Some(l) = link {
                    self.drop_link(l).await?;
                    if action == Action::Unlink
                        && let Some(a) = live
                    {
                        // Kept here by the delete policy: it stays in calsync, and is not sent
                        // back to a calendar that deleted it.
                        self.s
                            .db
                            .detach_appointment(firm, a.appointment.id, self.conn.id, self.cal.id)
                            .await
                            .map_err(store)?;
                    }
                }
                Ok(())
            }
            Action::Conflict => {
                let (a, r, l) = match (live, remote, link) {
                    (Some(a), Some(r), Some(l)) => (a, r, l),
                    _ => return Err(Retry::Failed("a conflict needs both versions".into())),
                };
                let theirs = r.data.clone().expect("supported events have content");
                self.s
                    .db
                    .open_conflict(firm, l.id, &a.appointment.data, &theirs, &r.etag, r.updated)
                    .await
                    .map_err(store)?;
                self.s.db.set_link_state(firm, l.id, LinkState::Conflict, None).await.map_err(store)?;
                self.s.counts.conflicts += 1;
                Ok(())
            }
        }
    }

    async fn update_local(
        &mut self,
        _old: &AppointmentData,
        version: i64,
        id: AppointmentId,
        r: &RemoteEvent,
        data: AppointmentData,
    ) -> Result<(), Retry> {
        let base = Base {
            local_version: version + 1,
            local_hash: content_hash(&data),
            remote_etag: r.etag.clone(),
            remote_hash: content_hash(&data),
        };
        let w = LinkWrite {
            connection_id: self.conn.id,
            calendar_id: self.cal.id,
            appointment_id: id,
            remote_id: &r.id,
            base: &base,
            remote_updated_at: r.updated,
            series_remote_id: None,
            original_start: None,
            state: LinkState::Synced,
            last_error: None,
        };
        match self.s.db.apply_remote_update(self.conn.firm_id, id, version, data, &w).await {
            Ok((_, link)) => {
                self.remember(link);
                Ok(())
            }
            Err(StoreError::VersionMismatch | StoreError::NotFound) => Err(Retry::Local),
            Err(e) => Err(Retry::Failed(e.to_string())),
        }
    }

    /// Creates the event for an appointment in this calendar. The key is recorded before the
    /// call and reused by every retry, so the provider dedupes: a lost answer or a crash
    /// never makes a second event.
    async fn create_remote(&mut self, link: Option<&EventLink>, a: &SyncAppointment) -> Result<(), Retry> {
        let firm = self.conn.firm_id;
        let id = a.appointment.id;
        let pending =
            self.s.db.pending_writes(firm, self.conn.id).await.map_err(store)?.into_iter().find(|w| {
                w.calendar_id == self.cal.id && w.appointment_id == id && w.operation == WriteOperation::Create
            });
        let write = match pending {
            Some(w) => w,
            None => {
                let key = OutboxId::new().to_string();
                self.s
                    .db
                    .record_write(firm, self.conn.id, self.cal.id, id, WriteOperation::Create, &key, None, None)
                    .await
                    .map_err(store)?
            }
        };
        let provider = self.provider;
        let cal = self.cal.remote_id.clone();
        let stamp = id.to_string();
        let data = a.appointment.data.clone();
        let key = write.idempotency_key.clone();
        match call!(self.s, |t| provider.create(t, &cal, &key, &stamp, &data)) {
            Ok(created) => {
                if let Some(l) = link {
                    self.drop_link(l).await?;
                }
                let base = Self::base_for(&data, a.appointment.version, &created);
                self.save_link(id, &created, &base).await.map_err(store)?;
                let _ = self.s.db.complete_writes_for(firm, self.cal.id, id).await;
                Ok(())
            }
            Err(e) => {
                let _ = self.s.db.fail_write(firm, write.id, &describe(&e)).await;
                Err(Retry::Failed(describe(&e)))
            }
        }
    }

    /// Applies the deletions of this calendar, unless there are so many at once that they look
    /// like an accident: then nothing destructive happens and they wait for confirmation.
    async fn guard_and_apply_deletes(&mut self, linked_before: usize) -> Result<(), Stop> {
        let n = self.destructive.len();
        let c = &self.s.config;
        if n > c.mass_delete_min && (n as f64) > c.mass_delete_share * linked_before as f64 {
            let items: Vec<(EventLinkId, HeldSide)> = self.destructive.iter().map(|d| (d.link.id, d.side)).collect();
            self.s.db.hold_deletes(self.conn.firm_id, self.conn.id, self.cal.id, &items).await?;
            tracing::warn!(connection_id = %self.conn.id, calendar = %self.cal.id, deletes = n, linked = linked_before, "mass delete held for confirmation");
            self.s.held += n;
            return Ok(());
        }
        // A deletion that lost a race is planned again, which may queue it again: bounded.
        let mut budget = n * REPLANS + 1;
        while let Some(d) = self.destructive.pop() {
            if self.s.reauthorize.is_some() || budget == 0 {
                break;
            }
            budget -= 1;
            apply_destructive(self, d).await;
        }
        Ok(())
    }
}

impl CalendarSync<'_> {
    /// Undoes a held deletion: the side that was to be deleted stays, and the side already gone
    /// is brought back from it.
    pub async fn restore(&mut self, link: EventLink, side: HeldSide) {
        let firm = self.conn.firm_id;
        match side {
            // The event is gone at the provider: create it again from the appointment.
            HeldSide::Local => match self.s.db.sync_appointment(firm, link.appointment_id).await {
                Ok(Some(a)) if a.deleted_at.is_none() => match self.create_remote(Some(&link), &a).await {
                    Ok(()) => self.s.counts.pushed_created += 1,
                    Err(Retry::Failed(why)) => self.failed(Some(&link), Some(&a), &why).await,
                    Err(_) => self.failed(Some(&link), Some(&a), "the event changed meanwhile").await,
                },
                Ok(_) => {
                    let _ = self.drop_link(&link).await;
                }
                Err(e) => self.failed(Some(&link), None, &e.to_string()).await,
            },
            // The appointment was deleted in calsync: bring it back, linked as before.
            HeldSide::Remote => match self.s.db.restore_appointment(firm, link.appointment_id).await {
                Ok(a) => {
                    let base = Base { local_version: a.version, ..link.base.clone() };
                    let w = LinkWrite {
                        connection_id: self.conn.id,
                        calendar_id: self.cal.id,
                        appointment_id: a.id,
                        remote_id: &link.remote_id,
                        base: &base,
                        remote_updated_at: link.remote_updated_at,
                        series_remote_id: link.series_remote_id.as_deref(),
                        original_start: link.original_start,
                        state: LinkState::Synced,
                        last_error: None,
                    };
                    if let Err(e) = self.s.db.save_link(firm, &w).await {
                        self.failed(Some(&link), None, &e.to_string()).await;
                    } else {
                        self.s.counts.pulled_created += 1;
                    }
                }
                Err(e) => self.failed(Some(&link), None, &e.to_string()).await,
            },
        }
    }

    /// Settles a `manual` conflict: the kept side is written over the other, against the
    /// provider's current version.
    pub async fn settle_conflict(&mut self, link: EventLink, keep: ConflictSide) -> Result<(), String> {
        let firm = self.conn.firm_id;
        let local = self.s.db.sync_appointment(firm, link.appointment_id).await.map_err(|e| e.to_string())?;
        let provider = self.provider;
        let cal = self.cal.remote_id.clone();
        let rid = link.remote_id.clone();
        let remote = call!(self.s, |t| provider.get(t, &cal, &rid)).map_err(|e| describe(&e))?;
        let live = local.filter(|a| a.deleted_at.is_none());
        match (keep, live, remote) {
            (ConflictSide::Internal, Some(a), Some(r)) => {
                let data = a.appointment.data.clone();
                let etag = r.etag.clone();
                let updated =
                    call!(self.s, |t| provider.update(t, &cal, &rid, &etag, &data)).map_err(|e| describe(&e))?;
                let base = Self::base_for(&data, a.appointment.version, &updated);
                self.save_link(a.appointment.id, &updated, &base).await.map_err(|e| e.to_string())?;
                self.s.counts.pushed_updated += 1;
                Ok(())
            }
            (ConflictSide::Internal, Some(a), None) => {
                self.create_remote(Some(&link), &a).await.map_err(|_| "the event could not be created again".to_owned())
            }
            (ConflictSide::External, Some(a), Some(r)) => {
                let data = r.data.clone().ok_or("the provider sent no content")?;
                self.update_local(&a.appointment.data, a.appointment.version, a.appointment.id, &r, data)
                    .await
                    .map_err(|_| "the appointment changed meanwhile; try again".to_owned())?;
                self.s.counts.pulled_updated += 1;
                Ok(())
            }
            (ConflictSide::External, Some(a), None) => self
                .s
                .db
                .apply_remote_delete(firm, a.appointment.id, a.appointment.version, link.id)
                .await
                .map_err(|e| e.to_string()),
            (_, None, _) => Err("the appointment no longer exists in calsync".to_owned()),
        }
    }
}

/// Why an action did not complete.
pub enum Retry {
    /// The provider's copy moved on (412, 404): re-read it and plan again.
    Remote,
    /// calsync's copy moved on: re-read it and plan again.
    Local,
    Failed(String),
}

fn store(e: StoreError) -> Retry {
    Retry::Failed(format!("storage: {e}"))
}

fn store_to_provider(e: StoreError) -> ProviderError {
    ProviderError::Permanent { status: None, reason: format!("storage: {e}") }
}

/// Carries out one deletion (after the guard let it through, or on confirmation).
pub async fn apply_destructive(cs: &mut CalendarSync<'_>, d: Destructive) {
    let firm = cs.conn.firm_id;
    let local = match cs.s.db.sync_appointment(firm, d.link.appointment_id).await {
        Ok(a) => a,
        Err(e) => return cs.failed(Some(&d.link), None, &e.to_string()).await,
    };
    match d.side {
        HeldSide::Local => {
            let Some(a) = local else {
                let _ = cs.drop_link(&d.link).await;
                return;
            };
            match cs.s.db.apply_remote_delete(firm, a.appointment.id, a.appointment.version, d.link.id).await {
                Ok(()) => {
                    cs.forget(&d.link);
                    cs.s.counts.pulled_deleted += 1;
                }
                // Edited here meanwhile: plan again against the deletion.
                Err(StoreError::VersionMismatch) => {
                    let fresh = cs.s.db.sync_appointment(firm, a.appointment.id).await.ok().flatten();
                    Box::pin(cs.reconcile(Some(d.link), fresh, Seen::Absent)).await;
                }
                Err(e) => cs.failed(Some(&d.link), Some(&a), &e.to_string()).await,
            }
        }
        HeldSide::Remote => {
            let appointment = d.link.appointment_id;
            let key = OutboxId::new().to_string();
            let w = match cs
                .s
                .db
                .record_write(
                    firm,
                    cs.conn.id,
                    cs.cal.id,
                    appointment,
                    WriteOperation::Delete,
                    &key,
                    Some(&d.link.remote_id),
                    Some(&d.link.base.remote_etag),
                )
                .await
            {
                Ok(w) => w,
                Err(e) => return cs.failed(Some(&d.link), local.as_ref(), &e.to_string()).await,
            };
            let provider = cs.provider;
            let cal = cs.cal.remote_id.clone();
            let (rid, etag) = (d.link.remote_id.clone(), d.link.base.remote_etag.clone());
            match call!(cs.s, |t| provider.delete(t, &cal, &rid, &etag)) {
                Ok(()) => {
                    let _ = cs.drop_link(&d.link).await;
                    cs.s.counts.pushed_deleted += 1;
                }
                Err(ProviderError::PreconditionFailed) => {
                    // Edited there meanwhile: plan again with what is there now.
                    let seen = match call!(cs.s, |t| provider.get(t, &cal, &rid)) {
                        Ok(Some(e)) => Seen::Present(Box::new(e)),
                        Ok(None) => Seen::Absent,
                        Err(e) => return cs.failed(Some(&d.link), local.as_ref(), &describe(&e)).await,
                    };
                    Box::pin(cs.reconcile(Some(d.link), local, seen)).await;
                }
                Err(e) => {
                    let _ = cs.s.db.fail_write(firm, w.id, &describe(&e)).await;
                    cs.failed(Some(&d.link), local.as_ref(), &describe(&e)).await;
                }
            }
        }
    }
}
