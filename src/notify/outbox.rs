//! The delivery worker: sends the outbox's pending notifications until they are delivered or
//! given up.
//!
//! Each round claims (in the store, for [`claim_secs`]) what is due and not claimed by a live
//! process: every replica runs this worker, and each notification is attempted by one of them
//! at a time. A claim holds at most one notification per certificate and channel, the
//! earliest, so one certificate's events reach a receiver in the order they happened. A failed
//! attempt waits `retryInitial`, doubling up to `retryMax`; one that would wait past the event's
//! `maxAge` is given up. Every attempt is recorded with its outcome. A process that dies while
//! sending leaves its claim to expire: the notification is then sent again (receivers
//! deduplicate by the event id, as Standard Webhooks asks).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};

use super::{Message, Notifier};
use crate::domain::EventType;
use crate::store::{NotificationAttempt, NotificationOutcome, PendingNotification, Store};
use crate::util::clock;
use crate::util::failpoint::hit;

/// How often the worker looks for due notifications (a read of one index while idle).
pub const POLL: Duration = Duration::from_secs(1);
/// The most notifications one round claims.
const BATCH: u32 = 32;
/// The most sent at once.
const CONCURRENCY: usize = 8;
/// Every how many rounds the pending notifications are counted for the gauge.
const GAUGE_EVERY: u64 = 15;
/// How often old events are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Sends notifications until `shutdown` turns true. `owner` names this process on claims.
pub async fn run(
    store: Arc<dyn Store>,
    notifier: Arc<Notifier>,
    owner: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut round = 0u64;
    let mut pruned = Instant::now()
        .checked_sub(PRUNE_EVERY)
        .unwrap_or_else(Instant::now);
    loop {
        if *shutdown.borrow() {
            return;
        }
        round += 1;
        let sent = deliver_round(&store, &notifier, &format!("{owner}:{round}")).await;
        if pruned.elapsed() >= PRUNE_EVERY {
            pruned = Instant::now();
            let retention = i64::try_from(notifier.settings().retention.as_secs()).unwrap_or(0);
            match store.prune_events(clock::now() - retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "pruned old events"),
                Err(err) => tracing::warn!(error = %err, "cannot prune old events"),
            }
        }
        // The backlog gauge: a count of the pending rows, every few rounds.
        if round % GAUGE_EVERY == 1
            && let Ok(pending) = store.pending_notifications().await
        {
            crate::observe::metrics::notifications_pending(pending);
        }
        if sent < BATCH as usize {
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// One round: claims what is due and sends it; returns how many were claimed.
pub async fn deliver_round(
    store: &Arc<dyn Store>,
    notifier: &Arc<Notifier>,
    claimer: &str,
) -> usize {
    let now = clock::now();
    let claimed = match store
        .claim_notifications(claimer, now, now + claim_secs(notifier), BATCH)
        .await
    {
        Ok(claimed) => claimed,
        Err(err) => {
            tracing::warn!(error = %err, "cannot claim notifications");
            return 0;
        }
    };
    if claimed.is_empty() {
        return 0;
    }
    hit("notification-claimed").await;
    let count = claimed.len();
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let mut sends = tokio::task::JoinSet::new();
    for notification in claimed {
        let (store, notifier, slots) = (store.clone(), notifier.clone(), slots.clone());
        let claimer = claimer.to_owned();
        sends.spawn(async move {
            let _slot = slots.acquire_owned().await;
            deliver(&store, &notifier, &notification, &claimer).await;
        });
    }
    while sends.join_next().await.is_some() {}
    count
}

/// Sends one claimed notification and records the attempt.
async fn deliver(
    store: &Arc<dyn Store>,
    notifier: &Notifier,
    notification: &PendingNotification,
    claimer: &str,
) {
    let at = clock::now();
    let started = Instant::now();
    let channel = notifier.channel(&notification.channel);
    let kind = EventType::parse(&notification.kind);
    let result = match (channel, kind) {
        (None, _) => Err(Failure::GiveUp(
            "the channel is no longer configured (notifications.webhooks or email)".to_owned(),
        )),
        (_, None) => Err(Failure::GiveUp(format!(
            "{} is not an event type this version sends",
            notification.kind
        ))),
        (Some(channel), Some(kind)) => {
            let message = Message {
                id: &notification.id,
                kind,
                body: &notification.body,
                at: notification.at,
            };
            channel
                .send(message)
                .await
                .map_err(|e| Failure::Retry(e.to_string()))
        }
    };
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let settings = notifier.settings();
    let (outcome, message) = match result {
        Ok(answer) => (NotificationOutcome::Delivered, answer),
        Err(Failure::GiveUp(why)) => (NotificationOutcome::GaveUp, format!("given up: {why}")),
        Err(Failure::Retry(why)) => {
            let attempts = notification.attempts.saturating_add(1);
            let wait = crate::schedule::notification_retry(
                attempts,
                secs(settings.retry_initial),
                secs(settings.retry_max),
            );
            if at + wait > notification.at + secs(settings.max_age) {
                let message =
                    format!("{why}; given up after {attempts} attempts (notifications.maxAge)");
                (NotificationOutcome::GaveUp, message)
            } else {
                (NotificationOutcome::Retry(at + wait), why)
            }
        }
    };
    let label = match outcome {
        NotificationOutcome::Delivered => "delivered",
        NotificationOutcome::Retry(_) => "retrying",
        NotificationOutcome::GaveUp => "given_up",
    };
    let channel_kind = channel.map_or("removed", super::Channel::kind);
    crate::observe::metrics::notification(
        channel_kind,
        &notification.kind,
        label,
        started.elapsed(),
    );
    match outcome {
        NotificationOutcome::Delivered => tracing::info!(
            event = %notification.id, kind = %notification.kind, channel = %notification.channel,
            "notification delivered"
        ),
        NotificationOutcome::Retry(next) => tracing::warn!(
            event = %notification.id, kind = %notification.kind, channel = %notification.channel,
            error = %message, next_attempt = %clock::rfc3339(next), "notification failed; will retry"
        ),
        NotificationOutcome::GaveUp => tracing::error!(
            event = %notification.id, kind = %notification.kind, channel = %notification.channel,
            error = %message, "notification given up"
        ),
    }
    let attempt = NotificationAttempt {
        at,
        outcome: if outcome == NotificationOutcome::Delivered {
            "delivered"
        } else {
            "failed"
        }
        .to_owned(),
        message,
        duration_ms,
    };
    if let Err(err) = store
        .finish_notification(notification, claimer, outcome, &attempt)
        .await
    {
        // The claim expires and the notification is attempted again.
        tracing::warn!(error = %err, event = %notification.id, "cannot record a notification attempt");
    }
}

/// Why an attempt failed.
enum Failure {
    /// Nothing another attempt could change (the channel is gone): given up at once.
    GiveUp(String),
    /// Worth another attempt, after the back-off.
    Retry(String),
}

/// How long a claim lasts: twice the slowest channel's timeout and 5 seconds, so a claim
/// outlives any attempt of a live process (each bounded by its channel's timeout), and a dead
/// process's claims are taken over soon after.
pub fn claim_secs(notifier: &Notifier) -> i64 {
    let slowest = notifier
        .settings()
        .webhooks
        .iter()
        .map(|hook| hook.timeout)
        .chain(notifier.settings().email.iter().map(|mail| mail.timeout))
        .max()
        .unwrap_or(Duration::from_secs(10));
    2 * secs(slowest) + 5
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}
