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
                ex.recurrence_id = Some(s.original_start);
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
