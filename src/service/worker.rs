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
                        tracing::info!(names = %key.names, key_type = %key.key_type, "renewing");
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
