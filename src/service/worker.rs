//! The renewal worker: renews everything due without any client asking. When a certificate is
//! due and how long a failing one waits are decided in [`crate::schedule`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::{CertService, finished};
use crate::domain::FailureKind;
use crate::store::Store;
use crate::util::clock;

/// The most renewals the worker runs at once.
const BATCH: u32 = 20;

/// The longest the worker sleeps without looking at the store again.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// How long the worker waits after a whole batch failed because of the CA itself (down,
/// unreachable, refusing the account): going on would only record the same failure for every
/// other due certificate, as fast as the CA refuses.
pub const CA_DOWN_PAUSE: Duration = Duration::from_secs(60);

/// Renews every due certificate until `shutdown` turns true. Wakes when the next certificate
/// becomes due, when `wake` is notified (a certificate was stored), and at least hourly. When
/// the CA fails a whole batch, waits [`CA_DOWN_PAUSE`] before the next.
pub async fn run(
    certs: Arc<CertService>,
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut pacer =
        super::limits::Pacer::new(certs.limits().and_then(super::limits::Limits::renewal_pace));
    loop {
        if *shutdown.borrow() {
            return;
        }
        // Orders left by a process that died (its lease expired): take them over. Orders under
        // way here are joined, not restarted; another live process's are waited for.
        if let Err(err) = certs.resume_orders().await {
            tracing::error!(error = %err, "cannot look for unfinished orders");
        }
        let now = clock::now();
        match store.due(now, BATCH).await {
            Ok(due) if !due.is_empty() => {
                // Renew this batch concurrently and wait for it, so the next scan does not see
                // the same certificates again while they are being renewed.
                let mut pending = Vec::new();
                for key in &due {
                    if certs.still_due(key, now).await {
                        // `limits.renewalPace`: a batch due at once starts spread out.
                        tokio::select! {
                            () = pacer.turn() => {}
                            _ = shutdown.changed() => break,
                        }
                        tracing::info!(names = %key.names, key_type = %key.key, "renewing");
                        pending.push(certs.renew(key, now));
                    }
                }
                let tried = pending.len();
                let mut ca_failures = 0;
                for pending in pending {
                    if let Err(err) = finished(pending).await
                        && err.kind() == Some(FailureKind::Ca)
                    {
                        ca_failures += 1;
                    }
                }
                if tried > 0 && ca_failures == tried {
                    tracing::warn!(
                        failed = tried,
                        pause_secs = CA_DOWN_PAUSE.as_secs(),
                        "every renewal of the batch failed at the CA; pausing renewals"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(CA_DOWN_PAUSE) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                continue;
            }
            Ok(_) => {}
            Err(err) => tracing::error!(error = %err, "renewal scan failed"),
        }
        let sleep = match store.next_due().await {
            Ok(Some(at)) => {
                Duration::from_secs(u64::try_from(at - clock::now()).unwrap_or(0).max(1))
            }
            Ok(None) => MAX_SLEEP,
            Err(err) => {
                tracing::error!(error = %err, "renewal scan failed");
                Duration::from_secs(60)
            }
        }
        .min(MAX_SLEEP)
        .min(certs.lease_ttl());
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = wake.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// How often [`watch_ari`] looks for renewal windows to ask again (an index read while idle).
const ARI_POLL: Duration = Duration::from_secs(1);
/// How long after start the first look waits.
const ARI_START_DELAY: Duration = Duration::from_secs(10);
/// When a CA without ARI is asked again about a certificate, in seconds.
const NO_ARI_RECHECK: i64 = 7 * 86_400;
/// The most windows asked per look.
const ARI_BATCH: u32 = 20;

/// Asks the CA again, every [`crate::schedule::ari_check_interval`], for the renewal window
/// (ARI, RFC 9773) of every certificate not yet due, until `shutdown` turns true. A window that
/// now ends before the planned renewal means the CA wants the certificate replaced sooner (as
/// before a mass revocation, or because it was revoked elsewhere): the renewal moves into the
/// window, with a `certificate.renewal_advanced` event, and the renewal worker is woken. While
/// the CA cannot be asked, the watch waits [`CA_DOWN_PAUSE`].
pub async fn watch_ari(
    certs: Arc<CertService>,
    store: Arc<dyn Store>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Not during start-up, which the renewal worker's first batch keeps busy.
    tokio::select! {
        () = tokio::time::sleep(ARI_START_DELAY) => {}
        _ = shutdown.changed() => {}
    }
    loop {
        if *shutdown.borrow() {
            return;
        }
        // At most one batch a second however many are due: the CA's ARI endpoint is asked at
        // most ARI_BATCH times a second.
        let pause = match ari_round(&certs, store.as_ref()).await {
            Ok(()) => ARI_POLL,
            Err(()) => CA_DOWN_PAUSE,
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One look: asks for the windows due, at most [`ARI_BATCH`]. `Err` when the CA could not be
/// asked.
async fn ari_round(certs: &CertService, store: &dyn Store) -> Result<(), ()> {
    let now = clock::now();
    let due = match store.ari_checks_due(now, ARI_BATCH).await {
        Ok(due) => due,
        Err(err) => {
            tracing::warn!(error = %err, "cannot list the renewal windows to ask again");
            return Ok(());
        }
    };
    for cert in due {
        let window = match certs
            .issuer_of(cert.ca.as_deref())
            .ari_window(&cert.cert_pem)
            .await
        {
            Ok(window) => window,
            Err(err) => {
                tracing::warn!(error = %err, "cannot ask the CA for renewal windows; trying again later");
                return Err(());
            }
        };
        let now = clock::now();
        if let Some((start, end)) = window
            && end < cert.renew_after
        {
            let at = crate::schedule::point_in_window(start, end, now, crate::schedule::jitter());
            let data = serde_json::json!({
                "certificate": {
                    "serial": cert.serial,
                    "notBefore": clock::rfc3339(cert.not_before),
                    "notAfter": clock::rfc3339(cert.not_after),
                },
                "previousRenewAfter": clock::rfc3339(cert.renew_after),
                "renewAfter": clock::rfc3339(at),
                "window": {"start": clock::rfc3339(start), "end": clock::rfc3339(end)},
            });
            let event = certs.notifier().event(
                crate::domain::EventType::CertificateRenewalAdvanced,
                &cert.key,
                data,
                now,
                None,
            );
            match store.set_renew_after(&cert.key, at, &[event]).await {
                Ok(()) => {
                    tracing::warn!(names = %cert.key.names, serial = %cert.serial, renew_after = at, "the CA moved the renewal window earlier; renewing sooner");
                    certs.forget(&cert.key);
                    certs.stored().notify_one();
                }
                Err(err) => tracing::warn!(error = %err, "cannot move the renewal time"),
            }
        }
        // A CA without ARI is asked again only weekly, in case it gains it.
        let next = match window {
            Some(_) => now + crate::schedule::ari_check_interval(cert.not_before, cert.not_after),
            None => now + NO_ARI_RECHECK,
        };
        if let Err(err) = store
            .set_ari_next_check(&cert.key, &cert.serial, next)
            .await
        {
            tracing::warn!(error = %err, "cannot note when to ask for the renewal window again");
        }
    }
    Ok(())
}
