//! Field-level three-way merge: when calsync and the provider both changed an appointment since
//! the last sync, the two versions are merged field by field against the base, so a new title
//! here and a moved time there both survive. The conflict strategy is asked only about a field
//! both sides changed differently, and only for that field. Pure and total like
//! [`crate::sync::plan`]: the engine brings the three versions, this says what the pair becomes.
//!
//! Attendees are a set keyed by e-mail, not one value: two people invited on two sides are two
//! additions, and one person removed here while another is added there is two edits, neither of
//! them a conflict.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::appointment::{AppointmentData, Attendee, ResponseStatus};
use crate::connection::ConflictStrategy;

string_enum!(
    /// A field merged on its own. `time` is start, end, all-day, zone and a series' rule together
    /// (a rule is only valid for its start).
    Field, "field", {
        Title => "title",
        Description => "description",
        Location => "location",
        Time => "time",
        Attendees => "attendees",
        Status => "status",
        Privacy => "visibility",
        FreeBusy => "show_as",
    }
);

/// Which side's value a field (or, for attendees, one attendee) takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Local,
    Remote,
}

/// The outcome of merging one pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The merged content. For fields left `unresolved` (strategy manual) it holds the LOCAL
    /// value (nothing is overwritten until the user decides).
    pub data: AppointmentData,
    /// Fields changed on one side only, or changed on both in a way that combines (disjoint
    /// attendee edits), or identically: taken without conflict.
    pub merged: Vec<Field>,
    /// Fields both sides changed differently, settled by the strategy (newest_wins /
    /// prefer_*), with the side that won.
    pub resolved: Vec<(Field, Side)>,
    /// Fields both sides changed differently under `manual`: left for the user.
    pub unresolved: Vec<Field>,
}

/// Three-way merge of calsync's (`local`) and the provider's (`remote`) version against `base`
/// (what both agreed on at the last sync). Per field: changed on one side only → that side;
/// same change on both → that value; different changes → the strategy, for that field alone
/// (`newest_wins` compares `local_updated` and `remote_updated`; ties and an unknown provider
/// time go to calsync, as in the planner). Attendees merge as a set keyed by e-mail
/// (case-insensitive): additions and removals from either side are combined; one attendee
/// changed differently on both sides (e.g. name) is a conflict on `attendees`, settled by the
/// strategy for that attendee alone; under `manual` such a conflict makes `attendees` unresolved.
pub fn merge(
    base: &AppointmentData,
    local: &AppointmentData,
    remote: &AppointmentData,
    strategy: ConflictStrategy,
    local_updated: DateTime<Utc>,
    remote_updated: Option<DateTime<Utc>>,
) -> Merged {
    let winner = winner(strategy, local_updated, remote_updated);
    let mut out = Merged { data: local.clone(), merged: Vec::new(), resolved: Vec::new(), unresolved: Vec::new() };
    for &field in Field::ALL {
        let outcome = if field == Field::Attendees {
            let (attendees, outcome) = merge_attendees(&base.attendees, &local.attendees, &remote.attendees, winner);
            out.data.attendees = attendees;
            outcome
        } else {
            let local_changed = !same(base, local, field);
            let remote_changed = !same(base, remote, field);
            let (side, outcome) = settle(local_changed, remote_changed, same(local, remote, field), winner);
            if side == Side::Remote {
                copy_field(&mut out.data, remote, field);
            }
            outcome
        };
        match outcome {
            Outcome::Unchanged => {}
            Outcome::Merged => out.merged.push(field),
            Outcome::Resolved(side) => out.resolved.push((field, side)),
            Outcome::Unresolved => out.unresolved.push(field),
        }
    }
    out
}

/// Applies per-field choices to a manual conflict: for each field, the side to keep (fields
/// not named keep the local value). Used when a user resolves a conflict field by field.
/// A field named twice takes the later choice, as a form submitted in order would.
pub fn choose(local: &AppointmentData, remote: &AppointmentData, picks: &[(Field, Side)]) -> AppointmentData {
    let mut data = local.clone();
    for &(field, side) in picks {
        let from = match side {
            Side::Local => local,
            Side::Remote => remote,
        };
        copy_field(&mut data, from, field);
    }
    data
}

/// The fields on which two versions differ (attendee order and e-mail case ignored).
pub fn differing(a: &AppointmentData, b: &AppointmentData) -> Vec<Field> {
    Field::ALL.iter().copied().filter(|&field| !same(a, b, field)).collect()
}

/// How one field (or one attendee) came out of the merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Unchanged,
    Merged,
    Resolved(Side),
    Unresolved,
}

impl Outcome {
    /// The outcome of a field made of parts (attendees): the most serious part decides, since a
    /// single open conflict is enough to need the user.
    fn and(self, other: Outcome) -> Outcome {
        match (self, other) {
            (Outcome::Unresolved, _) | (_, Outcome::Unresolved) => Outcome::Unresolved,
            (Outcome::Resolved(side), _) | (_, Outcome::Resolved(side)) => Outcome::Resolved(side),
            (Outcome::Merged, _) | (_, Outcome::Merged) => Outcome::Merged,
            (Outcome::Unchanged, Outcome::Unchanged) => Outcome::Unchanged,
        }
    }
}

/// Who wins a true conflict under `strategy`; `None` under `manual`, where the user decides.
/// Decided once per pair: the strategy and both times are the pair's, not a field's.
fn winner(
    strategy: ConflictStrategy,
    local_updated: DateTime<Utc>,
    remote_updated: Option<DateTime<Utc>>,
) -> Option<Side> {
    match strategy {
        ConflictStrategy::PreferInternal => Some(Side::Local),
        ConflictStrategy::PreferExternal => Some(Side::Remote),
        ConflictStrategy::Manual => None,
        // Ties and unknown provider times go to calsync, the system of record (as in `plan`).
        ConflictStrategy::NewestWins => {
            Some(if remote_updated.is_some_and(|r| r > local_updated) { Side::Remote } else { Side::Local })
        }
    }
}

/// The side one value is taken from and how that was decided, from whether each side changed it
/// since the base and whether the sides now agree. Where nothing forces a choice, local is
/// taken: it is calsync's own copy, so keeping it writes nothing.
fn settle(local_changed: bool, remote_changed: bool, agree: bool, winner: Option<Side>) -> (Side, Outcome) {
    match (local_changed, remote_changed) {
        (false, false) => (Side::Local, Outcome::Unchanged),
        (true, false) => (Side::Local, Outcome::Merged),
        (false, true) => (Side::Remote, Outcome::Merged),
        (true, true) if agree => (Side::Local, Outcome::Merged),
        (true, true) => match winner {
            Some(side) => (side, Outcome::Resolved(side)),
            None => (Side::Local, Outcome::Unresolved),
        },
    }
}

/// Whether two versions hold the same value for `field`.
fn same(a: &AppointmentData, b: &AppointmentData, field: Field) -> bool {
    match field {
        Field::Title => a.title == b.title,
        Field::Description => a.description == b.description,
        Field::Location => a.location == b.location,
        // A zone change alone moves how a timed event reads and where an all-day one falls, so
        // it travels with the times rather than merging apart from them.
        Field::Time => a.when == b.when && a.time_zone == b.time_zone && a.recurrence == b.recurrence,
        Field::Attendees => {
            let (a, b) = (by_email(&a.attendees), by_email(&b.attendees));
            a.len() == b.len()
                && a.iter().zip(&b).all(|((ka, x), (kb, y))| ka == kb && x.name == y.name && x.response == y.response)
        }
        Field::Status => a.status == b.status,
        Field::Privacy => a.visibility == b.visibility,
        Field::FreeBusy => a.show_as == b.show_as,
    }
}

/// Sets `field` of `into` to `from`'s value.
fn copy_field(into: &mut AppointmentData, from: &AppointmentData, field: Field) {
    match field {
        Field::Title => into.title.clone_from(&from.title),
        Field::Description => into.description.clone_from(&from.description),
        Field::Location => into.location.clone_from(&from.location),
        Field::Time => {
            into.when = from.when;
            into.time_zone = from.time_zone;
            into.recurrence.clone_from(&from.recurrence);
        }
        Field::Attendees => into.attendees.clone_from(&from.attendees),
        Field::Status => into.status = from.status,
        Field::Privacy => into.visibility = from.visibility,
        Field::FreeBusy => into.show_as = from.show_as,
    }
}

/// Attendees by lower-cased e-mail. Validated data never lists an address twice; should a list
/// do so anyway, the first entry counts, so the merge stays total.
fn by_email(list: &[Attendee]) -> BTreeMap<String, &Attendee> {
    let mut map = BTreeMap::new();
    for a in list {
        map.entry(a.email.to_lowercase()).or_insert(a);
    }
    map
}

/// The name `key` is invited under and their answer, if invited at all.
fn name_in<'a>(list: &BTreeMap<String, &'a Attendee>, key: &str) -> Option<(&'a str, ResponseStatus)> {
    list.get(key).map(|a| (a.name.as_str(), a.response))
}

/// Merges the attendee lists person by person (see [`merge`]). The result lists local's
/// attendees in local's order, then those only remote has in remote's order: the order people
/// already see in calsync does not shift under them.
fn merge_attendees(
    base: &[Attendee],
    local: &[Attendee],
    remote: &[Attendee],
    winner: Option<Side>,
) -> (Vec<Attendee>, Outcome) {
    let (b, l, r) = (by_email(base), by_email(local), by_email(remote));
    let keys: BTreeSet<&str> = b.keys().chain(l.keys()).chain(r.keys()).map(String::as_str).collect();
    let mut outcome = Outcome::Unchanged;
    let mut sides: BTreeMap<&str, Side> = BTreeMap::new();
    for key in keys {
        // An attendee's value is whether they are invited, under which name, and their answer.
        let (bn, ln, rn) = (name_in(&b, key), name_in(&l, key), name_in(&r, key));
        let (side, o) = settle(ln != bn, rn != bn, ln == rn, winner);
        outcome = outcome.and(o);
        sides.insert(key, side);
    }
    if outcome == Outcome::Unresolved {
        // Nothing is overwritten until the user decides, and a half-merged list would be a
        // version neither side ever had.
        return (local.to_vec(), outcome);
    }
    let mut seen = BTreeSet::new();
    let merged = local
        .iter()
        .chain(remote)
        .filter_map(|a| {
            let key = a.email.to_lowercase();
            if !seen.insert(key.clone()) {
                return None;
            }
            let from = match sides.get(key.as_str()) {
                Some(Side::Remote) => &r,
                Some(Side::Local) | None => &l,
            };
            from.get(&key).map(|&a| a.clone())
        })
        .collect();
    (merged, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appointment::{AppointmentStatus, When};
    use chrono::NaiveDate;
    use chrono_tz::Tz;
    use proptest::prelude::*;
    use proptest::sample::select;

    fn t(s: &str) -> DateTime<Utc> {
        format!("2026-12-01T{s}:00Z").parse().unwrap()
    }

    fn guest(email: &str, name: &str) -> Attendee {
        Attendee { email: email.into(), name: name.into(), response: Default::default() }
    }

    fn base() -> AppointmentData {
        AppointmentData {
            title: "Intake".into(),
            description: String::new(),
            location: String::new(),
            when: When::Timed { start: t("09:00"), end: t("10:00") },
            time_zone: Tz::UTC,
            attendees: vec![guest("ann@x.test", "Ann"), guest("bo@x.test", "Bo")],
            status: AppointmentStatus::Confirmed,
            visibility: Default::default(),
            show_as: Default::default(),
            send_invitations: false,
            organizer: None,
            recurrence: Vec::new(),
            series: None,
        }
    }

    /// Local edited at 10:00, the provider at 11:00.
    fn run(b: &AppointmentData, l: &AppointmentData, r: &AppointmentData, s: ConflictStrategy) -> Merged {
        merge(b, l, r, s, t("10:00"), Some(t("11:00")))
    }

    #[test]
    fn title_here_and_time_there_are_both_kept() {
        let b = base();
        let l = AppointmentData { title: "Intake (moved)".into(), ..b.clone() };
        let moved = When::Timed { start: t("14:00"), end: t("15:00") };
        let r = AppointmentData { when: moved, time_zone: Tz::Europe__Berlin, ..b.clone() };
        for s in ConflictStrategy::ALL {
            let m = run(&b, &l, &r, *s);
            assert_eq!(m.data.title, "Intake (moved)");
            assert_eq!((m.data.when, m.data.time_zone), (moved, Tz::Europe__Berlin));
            assert_eq!(m.merged, [Field::Title, Field::Time]);
            assert!(m.resolved.is_empty() && m.unresolved.is_empty(), "{s}: {m:?}");
        }
    }

    #[test]
    fn description_here_and_attendee_added_there_are_both_kept() {
        let b = base();
        let l = AppointmentData { description: "Bring the lease".into(), ..b.clone() };
        let mut r = b.clone();
        r.attendees.push(guest("cy@x.test", "Cy"));
        let m = run(&b, &l, &r, ConflictStrategy::Manual);
        assert_eq!(m.data.description, "Bring the lease");
        assert_eq!(m.data.attendees, [guest("ann@x.test", "Ann"), guest("bo@x.test", "Bo"), guest("cy@x.test", "Cy")]);
        assert_eq!(m.merged, [Field::Description, Field::Attendees]);
        assert!(m.resolved.is_empty() && m.unresolved.is_empty());
    }

    #[test]
    fn the_same_change_on_both_sides_is_merged_not_a_conflict() {
        let b = base();
        let mut l = AppointmentData { location: "Room 1".into(), status: AppointmentStatus::Tentative, ..b.clone() };
        l.attendees.push(guest("cy@x.test", "Cy"));
        let mut r = l.clone();
        // Same people, other order and e-mail case: the same set.
        r.attendees.reverse();
        r.attendees[0].email = "CY@x.test".into();
        let m = run(&b, &l, &r, ConflictStrategy::Manual);
        assert!(differing(&m.data, &l).is_empty(), "{m:?}");
        assert_eq!(m.data.attendees, l.attendees, "local's order and spelling are kept");
        assert_eq!(m.merged, [Field::Location, Field::Attendees, Field::Status]);
        assert!(m.resolved.is_empty() && m.unresolved.is_empty());
    }

    #[test]
    fn a_title_changed_on_both_sides_follows_the_strategy_for_the_title_alone() {
        let b = base();
        let l = AppointmentData { title: "Intake (ours)".into(), location: "Room 1".into(), ..b.clone() };
        let r = AppointmentData { title: "Intake (theirs)".into(), status: AppointmentStatus::Tentative, ..b.clone() };
        let cases = [
            (ConflictStrategy::NewestWins, t("10:00"), Some(t("11:00")), Some(Side::Remote)),
            (ConflictStrategy::NewestWins, t("12:00"), Some(t("11:00")), Some(Side::Local)),
            (ConflictStrategy::NewestWins, t("11:00"), Some(t("11:00")), Some(Side::Local)),
            (ConflictStrategy::NewestWins, t("10:00"), None, Some(Side::Local)),
            (ConflictStrategy::PreferInternal, t("10:00"), Some(t("11:00")), Some(Side::Local)),
            (ConflictStrategy::PreferExternal, t("12:00"), Some(t("11:00")), Some(Side::Remote)),
            (ConflictStrategy::Manual, t("10:00"), Some(t("11:00")), None),
        ];
        for (s, tl, tr, won) in cases {
            let m = merge(&b, &l, &r, s, tl, tr);
            let why = format!("{s} {tl} {tr:?}: {m:?}");
            // The other fields merge whatever the strategy.
            assert_eq!(m.data.location, "Room 1", "{why}");
            assert_eq!(m.data.status, AppointmentStatus::Tentative, "{why}");
            assert_eq!(m.merged, [Field::Location, Field::Status], "{why}");
            match won {
                Some(side) => {
                    let title = if side == Side::Local { &l.title } else { &r.title };
                    assert_eq!(&m.data.title, title, "{why}");
                    assert_eq!(m.resolved, [(Field::Title, side)], "{why}");
                    assert!(m.unresolved.is_empty(), "{why}");
                }
                None => {
                    assert_eq!(m.data.title, l.title, "manual keeps local until the user decides: {why}");
                    assert!(m.resolved.is_empty(), "{why}");
                    assert_eq!(m.unresolved, [Field::Title], "{why}");
                }
            }
        }
    }

    #[test]
    fn an_attendee_removed_here_and_another_added_there_are_both_applied() {
        let b = base();
        let l = AppointmentData { attendees: vec![guest("ann@x.test", "Ann")], ..b.clone() };
        let mut r = b.clone();
        r.attendees.insert(0, guest("cy@x.test", "Cy"));
        for s in ConflictStrategy::ALL {
            let m = run(&b, &l, &r, *s);
            assert_eq!(m.data.attendees, [guest("ann@x.test", "Ann"), guest("cy@x.test", "Cy")], "{s}");
            assert_eq!(m.merged, [Field::Attendees], "{s}");
            assert!(m.resolved.is_empty() && m.unresolved.is_empty(), "{s}");
        }
    }

    #[test]
    fn one_attendee_changed_differently_on_both_sides_is_a_conflict_for_that_attendee() {
        let b = base();
        let mut l = b.clone();
        l.attendees[0].name = "Ann Lee".into();
        let mut r = b.clone();
        r.attendees[0].name = "Annie".into();
        // A disjoint edit next to the conflict: Bo renamed on the remote side only.
        r.attendees[1].name = "Bo Chan".into();

        let m = run(&b, &l, &r, ConflictStrategy::NewestWins);
        assert_eq!(m.data.attendees, [guest("ann@x.test", "Annie"), guest("bo@x.test", "Bo Chan")]);
        assert_eq!((m.merged.as_slice(), m.resolved.as_slice()), (&[][..], &[(Field::Attendees, Side::Remote)][..]));

        let m = run(&b, &l, &r, ConflictStrategy::PreferInternal);
        assert_eq!(m.data.attendees, [guest("ann@x.test", "Ann Lee"), guest("bo@x.test", "Bo Chan")]);
        assert_eq!(m.resolved, [(Field::Attendees, Side::Local)]);

        let m = run(&b, &l, &r, ConflictStrategy::Manual);
        assert_eq!(m.data.attendees, l.attendees, "left as local until the user decides");
        assert_eq!((m.merged.len(), m.resolved.len(), m.unresolved.as_slice()), (0, 0, &[Field::Attendees][..]));

        // Removed on one side, renamed on the other: also a conflict, not a silent removal.
        let gone = AppointmentData { attendees: vec![guest("bo@x.test", "Bo")], ..b.clone() };
        let m = run(&b, &gone, &r, ConflictStrategy::Manual);
        assert_eq!(m.unresolved, [Field::Attendees]);
        let m = run(&b, &gone, &r, ConflictStrategy::PreferInternal);
        assert_eq!(m.data.attendees, [guest("bo@x.test", "Bo Chan")]);
        assert_eq!(m.resolved, [(Field::Attendees, Side::Local)]);
    }

    #[test]
    fn choose_takes_the_named_fields_from_the_named_side() {
        let b = base();
        let r = AppointmentData {
            title: "Theirs".into(),
            when: When::AllDay {
                start: NaiveDate::from_ymd_opt(2026, 12, 3).unwrap(),
                end: NaiveDate::from_ymd_opt(2026, 12, 4).unwrap(),
            },
            time_zone: Tz::Europe__Berlin,
            attendees: vec![guest("cy@x.test", "Cy")],
            ..b.clone()
        };
        let c = choose(&b, &r, &[(Field::Time, Side::Remote), (Field::Title, Side::Local)]);
        assert_eq!(differing(&c, &b), [Field::Time]);
        assert_eq!((c.when, c.time_zone), (r.when, r.time_zone));
        assert_eq!(choose(&b, &r, &[]), b);
        let later_wins = choose(&b, &r, &[(Field::Attendees, Side::Remote), (Field::Attendees, Side::Local)]);
        assert_eq!(later_wins, b);
        assert_eq!(differing(&b, &r), [Field::Title, Field::Time, Field::Attendees]);
    }

    #[test]
    fn fields_have_stable_names() {
        for f in Field::ALL {
            assert_eq!(f.as_str().parse::<Field>().unwrap(), *f);
        }
        assert_eq!(serde_json::to_string(&Field::Time).unwrap(), "\"time\"");
        assert_eq!("when".parse::<Field>().unwrap_err().field, "field");
    }

    // Property tests. Versions are drawn from small pools so that sides often agree with the base
    // or with each other: that is where merges go wrong.

    const EMAILS: [&str; 4] = ["ann@x.test", "bo@x.test", "cy@x.test", "di@x.test"];
    const NAMES: [[&str; 2]; 4] = [["Ann", "Ann Lee"], ["Bo", ""], ["Cy", "Cyrus"], ["Di", "Diane"]];

    fn times() -> Vec<(When, Tz)> {
        let day = |d| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
        vec![
            (When::Timed { start: t("09:00"), end: t("10:00") }, Tz::UTC),
            (When::Timed { start: t("09:00"), end: t("11:00") }, Tz::UTC),
            (When::Timed { start: t("09:00"), end: t("10:00") }, Tz::Europe__Berlin),
            (When::AllDay { start: day(1), end: day(2) }, Tz::Europe__Berlin),
        ]
    }

    /// Up to four people, each under one of two names, the e-mail sometimes in capitals, in any
    /// order.
    fn arb_attendees() -> impl Strategy<Value = Vec<Attendee>> {
        prop::collection::vec(prop::option::of((0..2usize, prop::bool::weighted(0.2))), 4)
            .prop_map(|slots| {
                slots
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, slot)| {
                        slot.map(|(n, upper)| Attendee {
                            email: if upper { EMAILS[i].to_uppercase() } else { EMAILS[i].to_owned() },
                            name: NAMES[i][n].to_owned(),
                            response: Default::default(),
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .prop_shuffle()
    }

    fn arb_data() -> impl Strategy<Value = AppointmentData> {
        (
            select(&["Intake", "Review", "Hearing"][..]),
            select(&["", "Bring the lease", "Call first"][..]),
            select(&["", "Room 1", "Court 4"][..]),
            select(times()),
            arb_attendees(),
            select(&[AppointmentStatus::Confirmed, AppointmentStatus::Tentative, AppointmentStatus::Cancelled][..]),
        )
            .prop_map(|(title, description, location, (when, time_zone), attendees, status)| AppointmentData {
                title: title.into(),
                description: description.into(),
                location: location.into(),
                when,
                time_zone,
                attendees,
                status,
                visibility: Default::default(),
                show_as: Default::default(),
                send_invitations: false,
                organizer: None,
                recurrence: Vec::new(),
                series: None,
            })
    }

    /// A version edited from `base`: each field kept, or replaced by `other`'s; attendees person
    /// by person (each kept, or as `other` has them: added, removed or renamed).
    fn edited(
        base: &AppointmentData,
        other: &AppointmentData,
        fields: [bool; 6],
        people: [bool; 4],
    ) -> AppointmentData {
        let picks: Vec<(Field, Side)> =
            Field::ALL.iter().zip(fields).filter(|&(_, take)| take).map(|(f, _)| (*f, Side::Remote)).collect();
        let mut out = choose(base, other, &picks);
        let find = |list: &[Attendee], email: &str| list.iter().find(|a| a.email.eq_ignore_ascii_case(email)).cloned();
        out.attendees = EMAILS
            .iter()
            .zip(people)
            .filter_map(|(email, take)| find(if take { &other.attendees } else { &base.attendees }, email))
            .collect();
        out
    }

    /// A base and two versions edited from it.
    fn arb_triple() -> impl Strategy<Value = (AppointmentData, AppointmentData, AppointmentData)> {
        let side = || (arb_data(), any::<[bool; 6]>(), any::<[bool; 4]>());
        (arb_data(), side(), side()).prop_map(|(base, (o1, f1, p1), (o2, f2, p2))| {
            let (l, r) = (edited(&base, &o1, f1, p1), edited(&base, &o2, f2, p2));
            (base, l, r)
        })
    }

    /// A base and two versions edited from it on different fields: each field is left alone,
    /// or edited on one side only. (Independent edits rarely miss each other on all six.)
    fn arb_disjoint() -> impl Strategy<Value = (AppointmentData, AppointmentData, AppointmentData)> {
        let side = || (arb_data(), any::<[bool; 4]>());
        (arb_data(), prop::array::uniform6(0..3u8), side(), side()).prop_map(|(base, owner, (o1, p1), (o2, p2))| {
            let version = |other: &AppointmentData, people: [bool; 4], me: u8| {
                let fields = owner.map(|o| o == me);
                let attendees = Field::ALL.iter().position(|f| *f == Field::Attendees).unwrap_or_default();
                edited(&base, other, fields, if fields[attendees] { people } else { [false; 4] })
            };
            let (l, r) = (version(&o1, p1, 1), version(&o2, p2, 2));
            (base, l, r)
        })
    }

    fn arb_strategy() -> impl Strategy<Value = ConflictStrategy> {
        select(ConflictStrategy::ALL)
    }

    fn arb_times() -> impl Strategy<Value = (DateTime<Utc>, Option<DateTime<Utc>>)> {
        (0i64..3, prop::option::weighted(0.8, 0i64..3)).prop_map(|(l, r)| {
            (t("10:00") + chrono::Duration::minutes(l), r.map(|r| t("10:00") + chrono::Duration::minutes(r)))
        })
    }

    fn mirror(s: ConflictStrategy) -> ConflictStrategy {
        match s {
            ConflictStrategy::PreferInternal => ConflictStrategy::PreferExternal,
            ConflictStrategy::PreferExternal => ConflictStrategy::PreferInternal,
            other => other,
        }
    }

    fn flip(side: Side) -> Side {
        match side {
            Side::Local => Side::Remote,
            Side::Remote => Side::Local,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn the_same_version_on_both_sides_merges_to_itself(
            (base, x, _) in arb_triple(), s in arb_strategy(), (tl, tr) in arb_times(),
        ) {
            let m = merge(&base, &x, &x, s, tl, tr);
            prop_assert!(differing(&m.data, &x).is_empty(), "{m:?}");
            prop_assert!(m.resolved.is_empty() && m.unresolved.is_empty(), "{m:?}");
        }

        #[test]
        fn a_side_left_as_the_base_takes_the_other(
            (base, x, _) in arb_triple(), s in arb_strategy(), (tl, tr) in arb_times(),
        ) {
            for m in [merge(&base, &base, &x, s, tl, tr), merge(&base, &x, &base, s, tl, tr)] {
                prop_assert!(differing(&m.data, &x).is_empty(), "{m:?}");
                prop_assert!(m.resolved.is_empty() && m.unresolved.is_empty(), "{m:?}");
            }
        }

        /// Swapping the sides, the strategy's preference and the times gives the same merge;
        /// fields left to the user hold each call's own local value.
        #[test]
        fn merging_is_symmetric(
            (base, l, r) in arb_triple(), s in arb_strategy(), (tl, tr) in (0i64..4, 0i64..4),
        ) {
            prop_assume!(tl != tr);
            let (tl, tr) = (t("10:00") + chrono::Duration::minutes(tl), t("10:00") + chrono::Duration::minutes(tr));
            let a = merge(&base, &l, &r, s, tl, Some(tr));
            let b = merge(&base, &r, &l, mirror(s), tr, Some(tl));
            prop_assert_eq!(&a.merged, &b.merged);
            prop_assert_eq!(&a.unresolved, &b.unresolved);
            let flipped: Vec<(Field, Side)> = b.resolved.iter().map(|&(f, side)| (f, flip(side))).collect();
            prop_assert_eq!(&a.resolved, &flipped);
            for &f in Field::ALL {
                if a.unresolved.contains(&f) {
                    prop_assert!(same(&a.data, &l, f) && same(&b.data, &r, f), "{f}: {a:?} {b:?}");
                } else {
                    prop_assert!(same(&a.data, &b.data, f), "{f}: {a:?} {b:?}");
                }
            }
        }

        #[test]
        fn edits_to_different_fields_are_all_kept(
            (base, l, r) in arb_disjoint(), s in arb_strategy(), (tl, tr) in arb_times(),
        ) {
            let (dl, dr) = (differing(&base, &l), differing(&base, &r));
            prop_assert!(dl.iter().all(|f| !dr.contains(f)), "the generator edits each field on one side at most");
            let m = merge(&base, &l, &r, s, tl, tr);
            for f in dl {
                prop_assert!(same(&m.data, &l, f), "{f}: {m:?}");
            }
            for f in dr {
                prop_assert!(same(&m.data, &r, f), "{f}: {m:?}");
            }
            prop_assert!(m.resolved.is_empty() && m.unresolved.is_empty(), "{m:?}");
        }

        #[test]
        fn every_merged_value_comes_from_one_of_the_three(
            (base, l, r) in arb_triple(), s in arb_strategy(), (tl, tr) in arb_times(),
        ) {
            let m = merge(&base, &l, &r, s, tl, tr);
            for &f in Field::ALL {
                if f == Field::Attendees {
                    for a in &m.data.attendees {
                        let known = [&base, &l, &r].iter().any(|v| v.attendees.contains(a));
                        prop_assert!(known, "{a:?} is in none of the versions: {m:?}");
                    }
                } else {
                    prop_assert!([&base, &l, &r].iter().any(|v| same(&m.data, v, f)), "{f}: {m:?}");
                }
            }
        }

        /// The three lists are in field order, name a field at most once, and name exactly the
        /// fields some side changed.
        #[test]
        fn the_lists_name_each_changed_field_once_in_order(
            (base, l, r) in arb_triple(), s in arb_strategy(), (tl, tr) in arb_times(),
        ) {
            let m = merge(&base, &l, &r, s, tl, tr);
            let mut listed: Vec<Field> = m.merged.clone();
            listed.extend(m.resolved.iter().map(|&(f, _)| f));
            listed.extend(m.unresolved.iter().copied());
            let index = |f: &Field| Field::ALL.iter().position(|x| x == f);
            for list in [m.merged.clone(), m.resolved.iter().map(|&(f, _)| f).collect(), m.unresolved.clone()] {
                prop_assert!(list.windows(2).all(|w| index(&w[0]) < index(&w[1])), "{m:?}");
            }
            listed.sort_by_key(index);
            let (dl, dr) = (differing(&base, &l), differing(&base, &r));
            let changed: Vec<Field> = Field::ALL.iter().copied().filter(|f| dl.contains(f) || dr.contains(f)).collect();
            prop_assert_eq!(listed, changed);
            if s != ConflictStrategy::Manual {
                prop_assert!(m.unresolved.is_empty());
            } else {
                prop_assert!(m.resolved.is_empty());
            }
        }
    }
}
