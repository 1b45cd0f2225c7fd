//! The outbox's types: an event written with the change it reports, its notifications (one per
//! channel), what the delivery worker claims and records, and what the inventory shows of them.
//! The statements are in `sql.rs` with every other; `notify/` builds and sends the events.

use crate::domain::{CertKey, EventType};

/// An event to write in the transaction of the change it reports.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// `evt_...`, unique: a second event with the same id is not written, so an event that
    /// more than one process may notice (a scan's) has an id derived from what it reports.
    pub id: String,
    /// Its type.
    pub kind: EventType,
    /// The identity it is about.
    pub key: CertKey,
    /// The JSON body receivers get, exactly.
    pub body: String,
    /// When it happened, Unix seconds.
    pub at: i64,
    /// The channels it goes to (a webhook's name, `email`); none: recorded, not sent.
    pub channels: Vec<String>,
}

/// One notification a process claimed to send.
#[derive(Debug, Clone)]
pub struct PendingNotification {
    /// The event's place in the outbox.
    pub seq: i64,
    /// The channel it goes to.
    pub channel: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// The event's id.
    pub id: String,
    /// The event's type, as stored (a type this version does not know is given up).
    pub kind: String,
    /// The body to send.
    pub body: String,
    /// When the event happened.
    pub at: i64,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationOutcome {
    /// The channel took it.
    Delivered,
    /// It failed; the next attempt is at this time.
    Retry(i64),
    /// It failed and is given up (too old, or the channel is gone).
    GaveUp,
}

impl NotificationOutcome {
    /// The notification's state after it: `delivered`, `pending` or `failed`.
    pub fn state(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retry(_) => "pending",
            Self::GaveUp => "failed",
        }
    }
}

/// One delivery attempt, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationAttempt {
    /// When it started.
    pub at: i64,
    /// `delivered` or `failed`.
    pub outcome: String,
    /// The receiver's answer, or what went wrong (never a secret).
    pub message: String,
    /// How long it took.
    pub duration_ms: i64,
}

/// An event and where its notifications stand.
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// `evt_...`.
    pub id: String,
    /// Its type, as stored.
    pub kind: String,
    /// The identity it is about.
    pub key: CertKey,
    /// When it happened.
    pub at: i64,
    /// One per channel it goes to.
    pub notifications: Vec<NotificationState>,
}

/// One notification of an event.
#[derive(Debug, Clone)]
pub struct NotificationState {
    /// The channel.
    pub channel: String,
    /// `pending`, `delivered` or `failed` (given up).
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due, while pending.
    pub next_attempt: i64,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// When it was delivered or given up.
    pub done_at: Option<i64>,
    /// Every attempt, oldest first.
    pub history: Vec<NotificationAttempt>,
}

/// A certificate the expiring scan looks at: due for renewal and not yet renewed.
#[derive(Debug, Clone)]
pub struct ExpiryCandidate {
    /// Its identity.
    pub key: CertKey,
    /// Its serial.
    pub serial: String,
    /// Its validity.
    pub not_before: i64,
    /// Its validity.
    pub not_after: i64,
    /// The time left (seconds) at the last threshold notified for this serial.
    pub notified: Option<i64>,
}

/// A credential that received an earlier serial of a certificate renewed since.
#[derive(Debug, Clone)]
pub struct StaleCandidate {
    /// The identity.
    pub key: CertKey,
    /// The credential (`method:name`).
    pub principal: String,
    /// The serial it received last.
    pub delivered_serial: String,
    /// When.
    pub delivered_at: i64,
    /// The current serial.
    pub serial: String,
    /// When the current certificate was stored.
    pub renewed_at: i64,
}

/// A certificate not yet due whose renewal window (ARI) is to be asked again.
#[derive(Debug, Clone)]
pub struct AriCandidate {
    /// Its identity.
    pub key: CertKey,
    /// Its serial.
    pub serial: String,
    /// The certificate (the chain's leaf identifies it to the CA).
    pub cert_pem: String,
    /// Its validity.
    pub not_before: i64,
    /// Its validity.
    pub not_after: i64,
    /// When its renewal is planned.
    pub renew_after: i64,
    /// The ACME directory that issued it (`None`: the primary, stored before fallbacks).
    pub ca: Option<String>,
}
