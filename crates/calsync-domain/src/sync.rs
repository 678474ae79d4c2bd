//! Sync planning: a pure, total function from what one appointment ↔ event pair looked like at
//! the last sync (the base), what calsync has now and what the provider has now, to the one
//! action that brings both sides together. No I/O: the engine gathers the three states, calls
//! [`plan`], then executes the action with preconditions and stores the new base.
//!
//! The base is what tells "changed here" from "changed there", and "deleted there" from "never
//! seen": without it a sync can only guess, which is where duplicates, resurrected deletions and
//! blind overwrites come from. A side counts as unchanged when its version (calsync) or etag
//! (provider) equals the base, or when its content hash does: our own write coming back with a
//! new etag is an echo, not an edit, so nothing ping-pongs.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ValidationError;
use crate::appointment::{AppointmentData, When};
use crate::connection::{ConflictStrategy, DeletePolicy};

string_enum!(
    /// Where one appointment ↔ event link stands.
    LinkState, "state", { Synced => "synced", Pending => "pending", Conflict => "conflict", Error => "error" }
);

string_enum!(
    /// A write to a provider, as recorded in the outbox before it is made.
    WriteOperation, "operation", { Create => "create", Update => "update", Delete => "delete" }
);

string_enum!(
    /// What started a sync attempt.
    SyncTrigger, "trigger", {
        Manual => "manual",
        Scheduled => "scheduled",
        Webhook => "webhook",
        Replay => "replay",
        Resync => "resync",
    }
);

string_enum!(
    /// How a sync attempt ended (`running` until it does).
    AttemptStatus, "status", { Running => "running", Success => "success", Partial => "partial", Failed => "failed" }
);

string_enum!(
    /// Which side a manually resolved conflict kept: calsync's appointment or the provider's event.
    ConflictSide, "keep", { Internal => "internal", External => "external" }
);

string_enum!(
    /// Which side a held (mass-delete guarded) deletion would have removed: `local`, the calsync
    /// appointment (its remote event is gone), or `remote`, the provider's event (the appointment
    /// was deleted in calsync).
    HeldSide, "side", { Local => "local", Remote => "remote" }
);

/// A stable digest of the content both sides can hold (title, description, location, time,
/// zone, attendees, status): equal content, equal hash, whatever the version or etag. It is
/// what recognises our own write coming back as an echo.
pub fn content_hash(data: &AppointmentData) -> String {
    let mut h = Sha256::new();
    let mut field = |s: &str| {
        h.update(s.as_bytes());
        h.update([0u8]);
    };
    field(&data.title);
    field(&data.description);
    field(&data.location);
    match data.when {
        When::Timed { start, end } => {
            field("timed");
            field(&start.timestamp().to_string());
            field(&end.timestamp().to_string());
        }
        When::AllDay { start, end } => {
            field("all-day");
            field(&start.to_string());
            field(&end.to_string());
        }
    }
    field(data.time_zone.name());
    let mut guests: Vec<_> = data.attendees.iter().map(|a| (a.email.as_str(), a.name.as_str(), a.response)).collect();
    guests.sort_unstable_by_key(|g| (g.0, g.1));
    for (email, name, response) in guests {
        field(email);
        field(name);
        // An answer only when there is one, so hashes from before answers were kept stand.
        if response != crate::appointment::ResponseStatus::NeedsAction {
            field(response.as_str());
        }
    }
    field(data.status.as_str());
    // Only when set, so the hashes of everything stored before privacy existed stay the same.
    if data.visibility == crate::appointment::Visibility::Private {
        field("private");
    }
    if data.show_as == crate::appointment::ShowAs::Free {
        field("free");
    }
    for line in &data.recurrence {
        field(line);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The pair as it was after the last successful sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    pub local_version: i64,
    pub local_hash: String,
    pub remote_etag: String,
    pub remote_hash: String,
}

/// calsync's side now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    /// No appointment (never was, or deleted and purged).
    Absent,
    Present {
        version: i64,
        hash: String,
        updated: DateTime<Utc>,
    },
    /// Deleted in calsync (a tombstone keeps the time).
    Deleted {
        at: DateTime<Utc>,
    },
}

/// The provider's side now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// This listing says nothing about the event (an incremental page without it): unchanged.
    Unmentioned,
    /// Gone at the provider: deleted, cancelled, `@removed`, or missing from a full listing.
    Absent,
    Present {
        etag: String,
        hash: String,
        updated: Option<DateTime<Utc>>,
    },
}

/// What to do with the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Both sides agree (or nothing is known to have changed).
    Skip,
    CreateRemote,
    UpdateRemote,
    DeleteRemote,
    CreateLocal,
    UpdateLocal,
    DeleteLocal,
    /// Both sides are gone: drop the link.
    Forget,
    /// The delete policy keeps the other side: drop the link, touch nothing.
    Unlink,
    /// Both sides changed (both still there) and the strategy is `manual`: record both
    /// versions, change nothing.
    Conflict,
}

/// The connection's rules for a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub conflicts: ConflictStrategy,
    pub deletes: DeletePolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Unchanged,
    Changed,
    Gone,
}

fn local_side(base: &Base, local: &Local) -> Side {
    match local {
        Local::Present { version, hash, .. } if *version == base.local_version || *hash == base.local_hash => {
            Side::Unchanged
        }
        Local::Present { .. } => Side::Changed,
        Local::Absent | Local::Deleted { .. } => Side::Gone,
    }
}

fn remote_side(base: &Base, remote: &Remote) -> Side {
    match remote {
        Remote::Unmentioned => Side::Unchanged,
        Remote::Present { etag, hash, .. } if *etag == base.remote_etag || *hash == base.remote_hash => Side::Unchanged,
        Remote::Present { .. } => Side::Changed,
        Remote::Absent => Side::Gone,
    }
}

/// The action for one pair. Total: every combination has an answer.
pub fn plan(base: Option<&Base>, local: &Local, remote: &Remote, rules: Rules) -> Action {
    let Some(base) = base else {
        // Never synced: whatever exists is new to the other side.
        return match (local, remote) {
            (Local::Present { .. }, Remote::Absent | Remote::Unmentioned) => Action::CreateRemote,
            (Local::Absent | Local::Deleted { .. }, Remote::Present { .. }) => Action::CreateLocal,
            // Linked by our stamp but no base (a lost commit after the write): the newer wins.
            (Local::Present { updated, .. }, Remote::Present { updated: r, .. }) => {
                if rules.conflicts == ConflictStrategy::PreferExternal || r.is_some_and(|r| r > *updated) {
                    Action::UpdateLocal
                } else {
                    Action::UpdateRemote
                }
            }
            _ => Action::Skip,
        };
    };
    use Side::{Changed, Gone, Unchanged};
    let deletes_propagate = rules.deletes == DeletePolicy::Propagate;
    match (local_side(base, local), remote_side(base, remote)) {
        (Unchanged, Unchanged) => Action::Skip,
        (Changed, Unchanged) => Action::UpdateRemote,
        (Unchanged, Changed) => Action::UpdateLocal,
        (Gone, Gone) => Action::Forget,
        (Gone, Unchanged) if deletes_propagate => Action::DeleteRemote,
        (Unchanged, Gone) if deletes_propagate => Action::DeleteLocal,
        (Gone, Unchanged) | (Unchanged, Gone) => Action::Unlink,
        (Changed, Changed) => match rules.conflicts {
            ConflictStrategy::PreferInternal => Action::UpdateRemote,
            ConflictStrategy::PreferExternal => Action::UpdateLocal,
            ConflictStrategy::Manual => Action::Conflict,
            ConflictStrategy::NewestWins => {
                let (Local::Present { updated: l, .. }, Remote::Present { updated: r, .. }) = (local, remote) else {
                    unreachable!("both sides changed, so both are present")
                };
                // Ties and unknown provider times go to calsync, the system of record.
                if r.is_some_and(|r| r > *l) { Action::UpdateLocal } else { Action::UpdateRemote }
            }
        },
        // Edited on one side, deleted on the other. A conflict record needs both versions, so
        // `manual` keeps the edit like `newest_wins`: nothing the user wrote is lost either way.
        (Changed, Gone) => match rules.conflicts {
            ConflictStrategy::PreferExternal if deletes_propagate => Action::DeleteLocal,
            ConflictStrategy::PreferExternal => Action::Unlink,
            // An edit is newer information than a deletion it never saw: keep the data.
            ConflictStrategy::PreferInternal | ConflictStrategy::NewestWins | ConflictStrategy::Manual => {
                Action::CreateRemote
            }
        },
        (Gone, Changed) => match rules.conflicts {
            ConflictStrategy::PreferInternal if deletes_propagate => Action::DeleteRemote,
            ConflictStrategy::PreferInternal => Action::Unlink,
            ConflictStrategy::PreferExternal | ConflictStrategy::NewestWins | ConflictStrategy::Manual => {
                Action::CreateLocal
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEWEST: Rules = Rules { conflicts: ConflictStrategy::NewestWins, deletes: DeletePolicy::Propagate };

    fn t(s: &str) -> DateTime<Utc> {
        format!("2026-12-01T{s}:00Z").parse().unwrap()
    }

    fn base() -> Base {
        Base { local_version: 3, local_hash: "L3".into(), remote_etag: "e1".into(), remote_hash: "R1".into() }
    }

    fn local(version: i64, hash: &str, at: &str) -> Local {
        Local::Present { version, hash: hash.into(), updated: t(at) }
    }

    fn remote(etag: &str, hash: &str, at: &str) -> Remote {
        Remote::Present { etag: etag.into(), hash: hash.into(), updated: Some(t(at)) }
    }

    #[test]
    fn content_hashes_ignore_attendee_order_and_see_every_field() {
        use crate::appointment::{AppointmentStatus, Attendee};
        let a = AppointmentData {
            title: "Intake".into(),
            description: String::new(),
            location: String::new(),
            when: When::Timed { start: t("09:00"), end: t("10:00") },
            time_zone: chrono_tz::Tz::UTC,
            attendees: vec![
                Attendee { email: "a@x.test".into(), name: "A".into(), response: Default::default() },
                Attendee { email: "b@x.test".into(), name: "B".into(), response: Default::default() },
            ],
            status: AppointmentStatus::Confirmed,
            visibility: Default::default(),
            show_as: Default::default(),
            send_invitations: false,
            organizer: None,
            recurrence: Vec::new(),
            series: None,
        };
        let mut b = a.clone();
        b.attendees.reverse();
        assert_eq!(content_hash(&a), content_hash(&b));
        for change in [
            AppointmentData { title: "Intake!".into(), ..a.clone() },
            AppointmentData { location: "Room 1".into(), ..a.clone() },
            AppointmentData { when: When::Timed { start: t("09:00"), end: t("10:30") }, ..a.clone() },
            AppointmentData { time_zone: chrono_tz::Tz::Europe__Berlin, ..a.clone() },
            AppointmentData { status: AppointmentStatus::Tentative, ..a.clone() },
            // Field boundaries matter: "ab" + "" differs from "a" + "b".
            AppointmentData { title: "Intak".into(), description: "e".into(), ..a.clone() },
        ] {
            assert_ne!(content_hash(&a), content_hash(&change), "{change:?}");
        }
    }

    #[test]
    fn one_sided_changes_flow_to_the_other_side() {
        let b = base();
        assert_eq!(plan(Some(&b), &local(3, "L3", "09:00"), &remote("e1", "R1", "09:00"), NEWEST), Action::Skip);
        assert_eq!(
            plan(Some(&b), &local(4, "L4", "10:00"), &remote("e1", "R1", "09:00"), NEWEST),
            Action::UpdateRemote
        );
        assert_eq!(plan(Some(&b), &local(3, "L3", "09:00"), &remote("e2", "R2", "10:00"), NEWEST), Action::UpdateLocal);
        assert_eq!(plan(Some(&b), &local(4, "L4", "10:00"), &Remote::Unmentioned, NEWEST), Action::UpdateRemote);
        assert_eq!(plan(Some(&b), &local(3, "L3", "09:00"), &Remote::Unmentioned, NEWEST), Action::Skip);
    }

    #[test]
    fn our_own_writes_coming_back_are_echoes() {
        let b = base();
        // New etag, same content: the provider re-stamped our write.
        assert_eq!(plan(Some(&b), &local(3, "L3", "09:00"), &remote("e9", "R1", "11:00"), NEWEST), Action::Skip);
        // New version, same content (a no-op save in calsync).
        assert_eq!(plan(Some(&b), &local(5, "L3", "11:00"), &remote("e1", "R1", "09:00"), NEWEST), Action::Skip);
    }

    #[test]
    fn conflicts_follow_the_strategy() {
        let b = base();
        let (l, r) = (local(4, "L4", "10:00"), remote("e2", "R2", "11:00"));
        let rules = |c| Rules { conflicts: c, deletes: DeletePolicy::Propagate };
        assert_eq!(plan(Some(&b), &l, &r, rules(ConflictStrategy::NewestWins)), Action::UpdateLocal);
        assert_eq!(plan(Some(&b), &local(4, "L4", "12:00"), &r, NEWEST), Action::UpdateRemote);
        assert_eq!(plan(Some(&b), &l, &r, rules(ConflictStrategy::PreferInternal)), Action::UpdateRemote);
        assert_eq!(plan(Some(&b), &l, &r, rules(ConflictStrategy::PreferExternal)), Action::UpdateLocal);
        assert_eq!(plan(Some(&b), &l, &r, rules(ConflictStrategy::Manual)), Action::Conflict);
        let unknown_time = Remote::Present { etag: "e2".into(), hash: "R2".into(), updated: None };
        assert_eq!(plan(Some(&b), &l, &unknown_time, NEWEST), Action::UpdateRemote, "ties go to calsync");
    }

    #[test]
    fn deletes_propagate_or_unlink_by_policy() {
        let b = base();
        let keep = Rules { conflicts: ConflictStrategy::NewestWins, deletes: DeletePolicy::Keep };
        let gone_here = Local::Deleted { at: t("10:00") };
        assert_eq!(plan(Some(&b), &gone_here, &remote("e1", "R1", "09:00"), NEWEST), Action::DeleteRemote);
        assert_eq!(plan(Some(&b), &gone_here, &Remote::Unmentioned, NEWEST), Action::DeleteRemote);
        assert_eq!(plan(Some(&b), &local(3, "L3", "09:00"), &Remote::Absent, NEWEST), Action::DeleteLocal);
        assert_eq!(plan(Some(&b), &gone_here, &remote("e1", "R1", "09:00"), keep), Action::Unlink);
        assert_eq!(plan(Some(&b), &local(3, "L3", "09:00"), &Remote::Absent, keep), Action::Unlink);
        assert_eq!(plan(Some(&b), &gone_here, &Remote::Absent, NEWEST), Action::Forget);
    }

    #[test]
    fn an_edit_beats_a_deletion_it_never_saw_unless_told_otherwise() {
        let b = base();
        let edited_here = local(4, "L4", "10:00");
        assert_eq!(plan(Some(&b), &edited_here, &Remote::Absent, NEWEST), Action::CreateRemote);
        let ext = Rules { conflicts: ConflictStrategy::PreferExternal, deletes: DeletePolicy::Propagate };
        assert_eq!(plan(Some(&b), &edited_here, &Remote::Absent, ext), Action::DeleteLocal);
        let edited_there = remote("e2", "R2", "10:00");
        assert_eq!(plan(Some(&b), &Local::Deleted { at: t("09:30") }, &edited_there, NEWEST), Action::CreateLocal);
        let int = Rules { conflicts: ConflictStrategy::PreferInternal, deletes: DeletePolicy::Propagate };
        assert_eq!(plan(Some(&b), &Local::Deleted { at: t("09:30") }, &edited_there, int), Action::DeleteRemote);
        // `manual` has no second version to show, so the edit is kept there too.
        let manual = Rules { conflicts: ConflictStrategy::Manual, deletes: DeletePolicy::Propagate };
        assert_eq!(plan(Some(&b), &edited_here, &Remote::Absent, manual), Action::CreateRemote);
        assert_eq!(plan(Some(&b), &Local::Deleted { at: t("09:30") }, &edited_there, manual), Action::CreateLocal);
    }

    #[test]
    fn without_a_base_whatever_exists_is_new_to_the_other_side() {
        assert_eq!(plan(None, &local(1, "L", "09:00"), &Remote::Absent, NEWEST), Action::CreateRemote);
        assert_eq!(plan(None, &Local::Absent, &remote("e", "R", "09:00"), NEWEST), Action::CreateLocal);
        assert_eq!(plan(None, &Local::Absent, &Remote::Absent, NEWEST), Action::Skip);
        assert_eq!(plan(None, &local(1, "L", "09:00"), &remote("e", "R", "10:00"), NEWEST), Action::UpdateLocal);
    }

    /// Every combination of states and rules has an answer, and the safety rules hold in all of
    /// them: nothing is deleted on the strength of an unmentioned event, and no side is
    /// overwritten when nothing changed.
    #[test]
    fn total_and_safe_over_every_combination() {
        let locals = [
            Local::Absent,
            Local::Deleted { at: t("10:00") },
            local(3, "L3", "09:00"),
            local(4, "L4", "10:00"),
            local(5, "L3", "11:00"),
        ];
        let remotes = [
            Remote::Unmentioned,
            Remote::Absent,
            remote("e1", "R1", "09:00"),
            remote("e2", "R2", "10:00"),
            remote("e3", "R1", "11:00"),
            Remote::Present { etag: "e4".into(), hash: "R4".into(), updated: None },
        ];
        let b = base();
        for conflicts in ConflictStrategy::ALL {
            for deletes in DeletePolicy::ALL {
                let rules = Rules { conflicts: *conflicts, deletes: *deletes };
                for l in &locals {
                    for r in &remotes {
                        for base in [None, Some(&b)] {
                            let a = plan(base, l, r, rules);
                            if *r == Remote::Unmentioned {
                                assert_ne!(a, Action::DeleteLocal, "{l:?} {r:?} {rules:?}");
                            }
                            if let Some(b) = base
                                && local_side(b, l) == Side::Unchanged
                                && remote_side(b, r) == Side::Unchanged
                            {
                                assert_eq!(a, Action::Skip, "{l:?} {r:?} {rules:?}");
                            }
                            if *deletes == DeletePolicy::Keep {
                                let destructive = matches!(a, Action::DeleteLocal | Action::DeleteRemote);
                                let gone_side =
                                    matches!(l, Local::Deleted { .. } | Local::Absent) || matches!(r, Remote::Absent);
                                assert!(!(destructive && gone_side), "keep never propagates: {l:?} {r:?} {a:?}");
                            }
                        }
                    }
                }
            }
        }
    }
}
