//! The events no request causes, found by looking at the store periodically:
//!
//! - `certificate.expiring`: a certificate past its renewal time, not yet renewed, crossed one
//!   of `notifications.expiringAt` (a share of its lifetime left, or a time left). Each
//!   threshold is notified once per serial: the store notes the tightest one crossed, and a
//!   renewal clears it. A scan that finds several crossed at once (the process was down)
//!   notifies only the tightest.
//! - `delivery.stale`: a credential received an earlier serial of a certificate renewed more
//!   than `notifications.staleAfter` ago and has not fetched the new one (its machine is
//!   probably still serving the old certificate). Once per credential and serial.
//!
//! Every replica scans; the ids of these events are derived from what they report and the
//! store's note is conditional, so each is written once.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use super::{Notifier, derived_id};
use crate::domain::EventType;
use crate::store::Store;
use crate::util::clock::{self, rfc3339};

/// The most certificates (or deliveries) one scan judges.
const LIMIT: u32 = 500;

/// Scans every [`interval`] (the first after one interval) until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    notifier: Arc<Notifier>,
    mut shutdown: watch::Receiver<bool>,
) {
    let every = interval(&notifier);
    loop {
        // The first scan waits one interval too: start-up (the renewal worker's first batch,
        // resumed orders) is busy enough, and nothing a scan finds is that urgent.
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
        let now = clock::now();
        if let Err(err) = expiring(store.as_ref(), &notifier, now).await {
            tracing::warn!(error = %err, "cannot scan for expiring certificates");
        }
        if let Err(err) = stale(store.as_ref(), &notifier, now).await {
            tracing::warn!(error = %err, "cannot scan for stale deliveries");
        }
    }
}

/// A quarter of `staleAfter`, between a second and a minute: a stale delivery is noticed
/// within a quarter of its delay, and an expiring certificate within a minute.
pub fn interval(notifier: &Notifier) -> Duration {
    (notifier.settings().stale_after / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Writes the `certificate.expiring` events due at `now`; returns how many.
pub async fn expiring(
    store: &dyn Store,
    notifier: &Notifier,
    now: i64,
) -> Result<usize, crate::store::StoreError> {
    let thresholds = &notifier.settings().expiring_at;
    if thresholds.is_empty() {
        return Ok(0);
    }
    let mut written = 0;
    for candidate in store.expiring_candidates(now, LIMIT).await? {
        let left = candidate.not_after - now;
        let crossed = thresholds
            .iter()
            .map(|t| (t, t.left_at(candidate.not_before, candidate.not_after)))
            .filter(|(_, at)| left <= *at)
            .filter(|(_, at)| candidate.notified.is_none_or(|noted| *at < noted))
            .min_by_key(|(_, at)| *at);
        let Some((threshold, at)) = crossed else {
            continue;
        };
        let key = &candidate.key;
        let data = json!({
            "certificate": {
                "serial": candidate.serial,
                "notBefore": rfc3339(candidate.not_before),
                "notAfter": rfc3339(candidate.not_after),
            },
            "threshold": threshold.to_string(),
            "remainingSeconds": left,
            "expiresIn": if left < 60 {
                "in under a minute".to_owned()
            } else {
                clock::relative(candidate.not_after, now)
            },
        });
        let id = derived_id(&[
            EventType::CertificateExpiring.as_str(),
            &key.names.key(),
            key.key.as_str(),
            &candidate.serial,
            &at.to_string(),
        ]);
        let event = notifier.event(EventType::CertificateExpiring, key, data, now, Some(id));
        if store
            .note_expiring(key, &candidate.serial, at, &event)
            .await?
        {
            tracing::warn!(names = %key.names, serial = %candidate.serial, threshold = %threshold.to_string(), "certificate expiring without a renewal");
            written += 1;
        }
    }
    Ok(written)
}

/// Writes the `delivery.stale` events due at `now`; returns how many.
pub async fn stale(
    store: &dyn Store,
    notifier: &Notifier,
    now: i64,
) -> Result<usize, crate::store::StoreError> {
    let delay = i64::try_from(notifier.settings().stale_after.as_secs()).unwrap_or(i64::MAX);
    let mut written = 0;
    for candidate in store.stale_candidates(now - delay, LIMIT).await? {
        let key = &candidate.key;
        let data = json!({
            "certificate": {"serial": candidate.serial},
            "credential": candidate.principal,
            "deliveredSerial": candidate.delivered_serial,
            "deliveredAt": rfc3339(candidate.delivered_at),
            "renewedAt": rfc3339(candidate.renewed_at),
        });
        let id = derived_id(&[
            EventType::DeliveryStale.as_str(),
            &key.names.key(),
            key.key.as_str(),
            &candidate.principal,
            &candidate.serial,
        ]);
        let event = notifier.event(EventType::DeliveryStale, key, data, now, Some(id));
        if store
            .note_stale(key, &candidate.principal, &candidate.serial, &event)
            .await?
        {
            tracing::warn!(names = %key.names, credential = %candidate.principal, serial = %candidate.serial, "a credential has not fetched the renewed certificate");
            written += 1;
        }
    }
    Ok(written)
}
