//! The mail the real services would have sent: invitations, updates and cancellations to an
//! event's attendees. Recorded in the world (so it survives a restart with the rest) and
//! listed at `GET /_sandbox/mail?provider=&account=`, which is how tests prove that a sync
//! did not spam guests.
//!
//! Who sends what is each provider's rule, applied where the event is written: Google mails
//! only when `sendUpdates` is `all` (every guest) or `externalOnly` (guests of another
//! domain); Graph mails attendees on every create, on an update that changes the time, the
//! location or the attendee list, and on delete or cancel, with no switch to suppress it.

use serde::{Deserialize, Serialize};

use crate::state::{Provider, World};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MailKind {
    Invitation,
    Update,
    Cancellation,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Mail {
    pub provider: Provider,
    /// The mailbox (lowercase e-mail) the event lives in: the sender.
    pub account: String,
    pub kind: MailKind,
    pub recipients: Vec<String>,
    pub event_id: String,
    pub subject: String,
    /// RFC 3339, sandbox clock.
    pub time: String,
}

/// Records one message unless it has no recipient (nobody to mail is no mail).
#[allow(clippy::too_many_arguments)]
pub(crate) fn record(
    world: &mut World,
    provider: Provider,
    account: &str,
    kind: MailKind,
    recipients: Vec<String>,
    event_id: &str,
    subject: &str,
    now_ms: i64,
) {
    if recipients.is_empty() {
        return;
    }
    let time = chrono::DateTime::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    world.mail.push(Mail {
        provider,
        account: account.to_ascii_lowercase(),
        kind,
        recipients,
        event_id: event_id.to_owned(),
        subject: subject.to_owned(),
        time,
    });
}

/// Google's `sendUpdates`: who of `attendees` (e-mails) gets mail from `organizer`.
/// `all` → everyone but the organizer; `externalOnly` → those of another domain; `none`,
/// absent or anything else → nobody.
pub(crate) fn google_recipients(send_updates: Option<&str>, organizer: &str, attendees: &[String]) -> Vec<String> {
    let domain = |e: &str| e.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()).unwrap_or_default();
    let others = attendees.iter().filter(|a| !a.eq_ignore_ascii_case(organizer));
    match send_updates {
        Some("all") => others.cloned().collect(),
        Some("externalOnly") => others.filter(|a| domain(a) != domain(organizer)).cloned().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_updates_picks_recipients_like_google() {
        let guests = vec!["me@firm.test".to_owned(), "ann@firm.test".to_owned(), "client@other.test".to_owned()];
        assert_eq!(google_recipients(Some("all"), "me@firm.test", &guests), ["ann@firm.test", "client@other.test"]);
        assert_eq!(google_recipients(Some("externalOnly"), "me@firm.test", &guests), ["client@other.test"]);
        assert!(google_recipients(Some("none"), "me@firm.test", &guests).is_empty());
        assert!(google_recipients(None, "me@firm.test", &guests).is_empty());
    }
}
