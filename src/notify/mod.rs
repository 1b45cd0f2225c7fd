//! Events and their notifications: what certfleet tells its operators, and how it gets there.
//!
//! An event (`certificate.renewed`, `delivery.stale`, ...) is built here by [`Notifier`] as a
//! [`NewEvent`]: a stable id, its type, the JSON body receivers get, and the channels that
//! subscribe to its type. Whoever makes the change the event reports hands it to the store
//! with that change, and the store writes both in one transaction (the outbox): a crash between
//! them loses nothing. [`outbox::run`] then sends what is pending, each notification claimed by
//! one process at a time, in order per certificate and channel, with back-off until
//! `notifications.maxAge`, every attempt recorded; [`scan::run`] writes the events no request
//! causes (`certificate.expiring`, `delivery.stale`). One file per channel: `webhook.rs`
//! (Standard Webhooks signatures, or a Slack-compatible message) and `email.rs` (SMTP);
//! `text.rs` says an event in words for both of the readable forms. docs/notifications.md is
//! the operator's guide.

pub mod email;
pub mod outbox;
pub mod scan;
pub mod text;
pub mod webhook;

use std::fmt;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::config::{NotificationsConfig, WebhookFormat};
use crate::domain::{CertKey, EventType};
use crate::store::{NewEvent, StoredCert};
use crate::util::clock::rfc3339;

/// The channel name email notifications are recorded under.
pub const EMAIL_CHANNEL: &str = "email";

/// The configured channels and the rules events are built by.
#[derive(Debug)]
pub struct Notifier {
    channels: Vec<Channel>,
    settings: NotificationsConfig,
}

/// Where notifications go: one webhook or the email settings.
#[derive(Debug)]
pub enum Channel {
    /// `notifications.webhooks[]` (boxed, as both are large: an HMAC key, an SMTP transport).
    Webhook(Box<webhook::Webhook>),
    /// `notifications.email`.
    Email(Box<email::Email>),
}

/// One event as a channel sends it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// `evt_...`: the receivers' deduplication key (`webhook-id`).
    pub id: &'a str,
    /// The event's type.
    pub kind: EventType,
    /// The JSON body, exactly as stored: `{"type", "timestamp", "data"}`.
    pub body: &'a str,
    /// When the event happened, Unix seconds.
    pub at: i64,
}

/// Why a channel did not take a notification. Never carries a secret: a webhook's URL and the
/// SMTP credentials stay out of it.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The receiver answered, but not with success.
    #[error("{0}")]
    Refused(String),
    /// No answer: connection, TLS, timeout.
    #[error("{0}")]
    Unreachable(String),
    /// The channel cannot be used as configured (a bad address, a secret that does not decode).
    #[error("{0}")]
    Misconfigured(String),
}

impl Notifier {
    /// The channels `settings` configures. Fails with a message naming the key when a channel
    /// cannot be built (the config checked most of it already).
    pub fn new(settings: &NotificationsConfig) -> Result<Self, String> {
        let mut channels = Vec::new();
        for (i, hook) in settings.webhooks.iter().enumerate() {
            let hook = webhook::Webhook::new(hook)
                .map_err(|e| format!("notifications.webhooks[{i}]: {e}"))?;
            channels.push(Channel::Webhook(Box::new(hook)));
        }
        if let Some(mail) = &settings.email {
            let mail = email::Email::new(mail).map_err(|e| format!("notifications.email: {e}"))?;
            channels.push(Channel::Email(Box::new(mail)));
        }
        Ok(Self {
            channels,
            settings: settings.clone(),
        })
    }

    /// A notifier with no channel: events are recorded and sent nowhere.
    pub fn none() -> Self {
        Self {
            channels: Vec::new(),
            settings: NotificationsConfig::default(),
        }
    }

    /// Every configured channel.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// The channel named `name`, if it is still configured.
    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|channel| channel.name() == name)
    }

    /// The settings events are built and delivered by.
    pub fn settings(&self) -> &NotificationsConfig {
        &self.settings
    }

    /// An event of `kind` about `key`, happening at `at`, with `data` (which gets the
    /// certificate's `id`, `names` and `keyType` added under `certificate`). `id` is given
    /// for the events a scan writes (derived from what they report, so that no process writes
    /// one twice); otherwise a new one is made.
    pub fn event(
        &self,
        kind: EventType,
        key: &CertKey,
        mut data: Value,
        at: i64,
        id: Option<String>,
    ) -> NewEvent {
        let certificate = data
            .as_object_mut()
            .and_then(|object| {
                object
                    .entry("certificate")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
            })
            .map(|certificate| {
                certificate.insert("id".into(), json!(key.opaque_id()));
                let names: Vec<&str> = key
                    .names
                    .names()
                    .iter()
                    .map(crate::domain::DomainName::as_str)
                    .collect();
                certificate.insert("names".into(), json!(names));
                // As the API names a key: its type, or (CSR mode) the client's public key.
                certificate.insert("keyMode".into(), json!(key.key.mode()));
                certificate.insert(
                    "keyType".into(),
                    json!(key.key.key_type().map(|t| t.as_str())),
                );
                if let Some(spki) = key.key.spki() {
                    certificate.insert("spkiSha256".into(), json!(spki.digest_b64()));
                }
                if let Some(profile) = &key.profile {
                    certificate.insert("profile".into(), json!(profile.as_str()));
                }
            });
        debug_assert!(certificate.is_some(), "event data is an object");
        let body = json!({"type": kind.as_str(), "timestamp": rfc3339(at), "data": data});
        crate::observe::metrics::event(kind.as_str());
        NewEvent {
            id: id.unwrap_or_else(new_id),
            kind,
            key: key.clone(),
            body: body.to_string(),
            at,
            channels: self
                .channels
                .iter()
                .filter(|channel| channel.wants(kind))
                .map(|channel| channel.name().to_owned())
                .collect(),
        }
    }

    /// `certificate.issued` (no earlier certificate) or `certificate.renewed` for `cert`, which
    /// an issuance of `trigger` just stored.
    pub fn stored(&self, cert: &StoredCert, previous: Option<&str>, trigger: &str) -> NewEvent {
        let mut data = json!({"certificate": certificate(cert), "trigger": trigger});
        let kind = match previous {
            Some(serial) => {
                data["previousSerial"] = json!(serial);
                EventType::CertificateRenewed
            }
            None => EventType::CertificateIssued,
        };
        self.event(kind, &cert.key(), data, cert.issued_at, None)
    }
}

/// The certificate's own fields, as every event shows them.
pub fn certificate(cert: &StoredCert) -> Value {
    json!({
        "serial": cert.serial,
        "notBefore": rfc3339(cert.not_before),
        "notAfter": rfc3339(cert.not_after),
        "renewAfter": rfc3339(cert.renew_after),
    })
}

impl Channel {
    /// The name notifications to it are recorded under: a webhook's `name`, or `email`.
    pub fn name(&self) -> &str {
        match self {
            Self::Webhook(hook) => hook.name(),
            Self::Email(_) => EMAIL_CHANNEL,
        }
    }

    /// `webhook (standard)`, `webhook (slack)` or `email`: the kind of channel, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Webhook(hook) if hook.format() == WebhookFormat::Slack => "slack",
            Self::Webhook(_) => "webhook",
            Self::Email(_) => "email",
        }
    }

    /// Whether the channel takes events of `kind`.
    pub fn wants(&self, kind: EventType) -> bool {
        match self {
            Self::Webhook(hook) => hook.wants(kind),
            Self::Email(mail) => mail.wants(kind),
        }
    }

    /// Sends one event; `Ok` carries the receiver's answer in a few words, for the history.
    pub async fn send(&self, message: Message<'_>) -> Result<String, SendError> {
        match self {
            Self::Webhook(hook) => hook.send(message).await,
            Self::Email(mail) => mail.send(message).await,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.kind())
    }
}

/// A new event id: `evt_` and 26 Crockford base32 characters of the time in milliseconds (48
/// bits, so ids sort by creation) and 80 random bits.
pub fn new_id() -> String {
    use aws_lc_rs::rand::SecureRandom as _;
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis());
    let mut random = [0u8; 10];
    // A failing system RNG leaves zeros: the time part still keeps ids apart in practice.
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut random);
    let mut value = (millis & 0xFFFF_FFFF_FFFF) << 80;
    for (i, byte) in random.iter().enumerate() {
        value |= u128::from(*byte) << (8 * (9 - i));
    }
    format!("evt_{}", base32(value))
}

/// The id of an event that must be written once whatever process notices it: derived from
/// `parts` (its type, identity and what it reports).
pub fn derived_id(parts: &[&str]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, parts.join("\n").as_bytes());
    let mut value = 0u128;
    for byte in &digest.as_ref()[..16] {
        value = (value << 8) | u128::from(*byte);
    }
    format!("evt_{}", base32(value >> 2))
}

/// 26 Crockford base32 digits of `value` (the first stands for its top three bits).
fn base32(value: u128) -> String {
    const DIGITS: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    (0..26)
        .rev()
        .map(|i| {
            let index = if i * 5 >= 128 {
                0
            } else {
                (value >> (i * 5)) & 31
            };
            char::from(DIGITS[usize::try_from(index).unwrap_or(0)])
        })
        .collect()
}

/// The notifier every part of the service shares.
pub type SharedNotifier = Arc<Notifier>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_derived_ids_are_stable() {
        let first = new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_id();
        assert_eq!(first.len(), 30);
        assert!(first < second, "{first} < {second}");
        assert_eq!(derived_id(&["a", "b"]), derived_id(&["a", "b"]));
        assert_ne!(derived_id(&["a", "b"]), derived_id(&["a", "c"]));
        assert_eq!(derived_id(&["a"]).len(), 30);
    }
}
