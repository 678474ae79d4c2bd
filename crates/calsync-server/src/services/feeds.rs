//! A user's ICS feed: a secret URL (`/ics/{token}.ics`) any calendar app can subscribe to, with
//! the user's appointments from 30 days back to a year ahead. Series go out whole (master, rule,
//! exceptions, cancelled occurrences as `EXDATE`s), so subscribers expand them as calsync does.

use super::ServiceError;
use crate::crypto::{random_token, token_hash};
use calsync_domain::appointment::{Appointment, AppointmentStatus};
use calsync_domain::tenant::Actor;
use calsync_providers::ics::{IcsEvent, calendar};
use calsync_store::{AppointmentQuery, Db};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;

/// How far back and ahead the feed reaches.
pub const PAST_DAYS: i64 = 30;
pub const AHEAD_DAYS: i64 = 365;

/// A new feed token for the caller; the previous one (if any) stops working. The token itself
/// is shown once: only its hash is kept.
pub async fn regenerate(db: &Db, actor: &Actor) -> Result<String, ServiceError> {
    let token = random_token("ics_");
    db.set_ics_feed(actor.firm_id, actor.user_id, &token_hash(&token)).await?;
    Ok(token)
}

/// Stops the caller's feed; `false` when there was none.
pub async fn revoke(db: &Db, actor: &Actor) -> Result<bool, ServiceError> {
    Ok(db.revoke_ics_feed(actor.firm_id, actor.user_id).await?)
}

/// When the caller's current feed token was made, if there is one.
pub async fn created(db: &Db, actor: &Actor) -> Result<Option<DateTime<Utc>>, ServiceError> {
    Ok(db.ics_feed_created(actor.firm_id, actor.user_id).await?)
}

/// The feed a token opens, as iCalendar text; `NotFound` for an unknown or revoked token.
pub async fn render(db: &Db, token: &str, now: DateTime<Utc>) -> Result<String, ServiceError> {
    let (firm, user, name) = db.ics_feed_owner(&token_hash(token)).await?;
    let mut q = AppointmentQuery {
        owner: Some(user),
        start: Some(now - Duration::days(PAST_DAYS)),
        end: Some(now + Duration::days(AHEAD_DAYS)),
        limit: 1000,
        after: None,
    };
    let mut rows: Vec<Appointment> = Vec::new();
    loop {
        let page = db.list_appointments(firm, &q).await?;
        rows.extend(page.items);
        match page.next {
            Some(c) => q.after = Some(c),
            None => break,
        }
    }
    // An occurrence moved into the window from a series that ends before it: its series comes too.
    let listed: std::collections::HashSet<_> = rows.iter().map(|a| a.id).collect();
    let missing: std::collections::BTreeSet<_> =
        rows.iter().filter_map(|a| a.data.series.map(|s| s.master)).filter(|m| !listed.contains(m)).collect();
    for m in missing {
        match db.appointment(firm, Some(user), m).await {
            Ok(a) => rows.push(a),
            Err(calsync_store::StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Every exception of the series listed, wherever it was moved: each stands for (or cancels)
    // an occurrence of its master.
    let masters: Vec<_> = rows.iter().filter(|a| !a.data.recurrence.is_empty()).map(|a| a.id).collect();
    let mut exceptions: HashMap<_, Vec<Appointment>> = HashMap::new();
    for e in db.exceptions_of(firm, &masters).await? {
        if let Some(s) = e.data.series {
            exceptions.entry(s.master).or_default().push(e);
        }
    }
    let mut events = Vec::new();
    for a in rows.iter().filter(|a| a.data.series.is_none()) {
        let uid = format!("{}@calsync", a.id);
        let mut master = event(a, uid.clone());
        let mut moved = Vec::new();
        for e in exceptions.remove(&a.id).unwrap_or_default() {
            let Some(s) = e.data.series else { continue };
            if e.data.status == AppointmentStatus::Cancelled {
                master.cancelled.push(s.original_start);
            } else {
                let mut ex = event(&e, uid.clone());
                ex.recurrence_id = Some((s.original_start, a.data.time_zone));
                // A private series keeps its moved occurrences private too, whatever they say.
                if a.data.visibility == calsync_domain::appointment::Visibility::Private {
                    ex.data.visibility = calsync_domain::appointment::Visibility::Private;
                }
                moved.push(ex);
            }
        }
        events.push(master);
        events.extend(moved);
    }
    let title = format!("calsync: {name}");
    calendar(&title, &events, now).map_err(|e| ServiceError::Internal(e.into()))
}

fn event(a: &Appointment, uid: String) -> IcsEvent {
    IcsEvent {
        uid,
        calsync_id: a.id.to_string(),
        data: a.data.clone(),
        sequence: a.version,
        last_modified: a.updated_at,
        recurrence_id: None,
        cancelled: Vec::new(),
    }
}

/// What importing a file did.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Events that were not imported: `(summary or UID, why)`.
    pub refused: Vec<(String, String)>,
}

/// Imports a `.ics` file as appointments of the user with this e-mail. Idempotent by UID: an
/// event imported before updates the appointment it became (nothing changes when the event did
/// not), and overrides of single occurrences (`RECURRENCE-ID`) become exceptions of their series.
/// Floating times are read in `floating`, else in the file's `X-WR-TIMEZONE`.
pub async fn import(
    db: &Db,
    email: &str,
    text: &str,
    floating: Option<chrono_tz::Tz>,
) -> Result<ImportReport, ServiceError> {
    use super::appointments as appts;
    let email = calsync_domain::account::Email::parse(email)?;
    let user = db.user_by_email(&email).await?;
    let actor = Actor { firm_id: user.firm_id, user_id: user.id, role: user.role };
    let events = calsync_providers::ics::parse_events(text, floating)
        .map_err(|e| calsync_domain::ValidationError::new("file", e.to_string()))?;
    let mut report = ImportReport::default();
    let (mut whole, mut overrides) = (Vec::new(), Vec::new());
    // One event per UID (and per UID and occurrence): a repeat would overwrite the first at every
    // import, so it is refused instead.
    let mut seen = std::collections::HashSet::new();
    for e in events {
        match e {
            Ok(e) if !seen.insert((e.uid.clone(), e.recurrence_id.map(|o| o.to_string()))) => {
                report.refused.push((e.label, format!("UID {:?} appears more than once in the file", e.uid)))
            }
            Ok(e) if e.recurrence_id.is_none() => whole.push(e),
            Ok(e) => overrides.push(e),
            Err(refused) => report.refused.push(refused),
        }
    }
    for e in whole {
        // Imported before and still there: updated; deleted in calsync since: made again.
        let known = match db.imported_as(actor.firm_id, actor.user_id, &e.uid).await? {
            Some(id) => match appts::get(db, &actor, id).await {
                Ok(a) => Some(a),
                Err(ServiceError::NotFound) => None,
                Err(other) => return Err(other),
            },
            None => None,
        };
        let result = match known {
            Some(before) => appts::update(db, &actor, before.id, None, e.input.clone())
                .await
                .map(|after| if after.version == before.version { report.unchanged += 1 } else { report.updated += 1 }),
            None => match calsync_domain::appointment::AppointmentData::create(e.input.clone()) {
                Ok(data) => {
                    db.insert_imported_appointment(actor.firm_id, actor.user_id, &e.uid, data).await?;
                    report.created += 1;
                    Ok(())
                }
                Err(v) => Err(ServiceError::Validation(v)),
            },
        };
        match result {
            Ok(()) => {}
            Err(ServiceError::Validation(v)) => report.refused.push((e.label, format!("{}: {}", v.field, v.message))),
            Err(other) => return Err(other),
        }
    }
    for e in overrides {
        let Some(original) = e.recurrence_id else { continue };
        let Some(master) = db.imported_as(actor.firm_id, actor.user_id, &e.uid).await? else {
            report.refused.push((e.label, "an override of a series that is not in the file".into()));
            continue;
        };
        let existing = db
            .exceptions_of(actor.firm_id, &[master])
            .await?
            .into_iter()
            .find(|x| x.data.series.is_some_and(|s| s.original_start == original));
        let result = if e.input.status.as_deref() == Some("cancelled") {
            if existing.is_some_and(|x| x.data.status == calsync_domain::appointment::AppointmentStatus::Cancelled) {
                report.unchanged += 1;
                Ok(())
            } else {
                appts::cancel_occurrence(db, &actor, master, original).await.map(|()| report.updated += 1)
            }
        } else {
            let mut input = e.input.clone();
            input.recurrence = None;
            let before = existing.map(|x| x.version);
            appts::edit_occurrence(db, &actor, master, original, input).await.map(|(after, _)| match before {
                None => report.created += 1,
                Some(v) if v == after.version => report.unchanged += 1,
                Some(_) => report.updated += 1,
            })
        };
        match result {
            Ok(()) => {}
            Err(ServiceError::Validation(v)) => report.refused.push((e.label, format!("{}: {}", v.field, v.message))),
            Err(ServiceError::NotFound) => report.refused.push((e.label, "its series was deleted in calsync".into())),
            Err(other) => return Err(other),
        }
    }
    Ok(report)
}
