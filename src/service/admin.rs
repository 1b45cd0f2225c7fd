//! The operator's actions on one identity: revocation at the CA and deletion. Both run under
//! the identity's issuance lease, so no process sharing the store issues it meanwhile; both are
//! kept in the identity's history and written as an audit line (who, what, from where); both
//! make every process sharing the store stop serving the certificate ([`watch_retirements`]).
//!
//! The API's routes and the dashboard call these; who may is theirs to check (an admin).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{CertService, ChallengeChoice, Need, Pending};
use crate::acme::IssueError;
use crate::domain::{CertKey, KeySpec, RevocationReason};
use crate::observe::audit::AUDIT_TARGET;
use crate::store::{Attempt, Store, StoreError, StoredCert};
use crate::util::clock;

/// How often every process reads the history for identities revoked or deleted by another
/// process sharing the store, and drops them from its cache.
pub const RETIREMENT_POLL: Duration = Duration::from_secs(2);

/// Who asks for an admin action: the principal the caller authenticated (and allowed), and the
/// client's address.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// The principal's name (the key's name, the token's subject).
    pub name: &'a str,
    /// The method that authenticated it (`psk`, `jwt`).
    pub method: &'static str,
    /// The client's address, when known.
    pub remote: Option<SocketAddr>,
}

impl Actor<'_> {
    /// `method:name`, as the history and the deliveries name credentials.
    fn who(&self) -> String {
        format!("{}:{}", self.method, self.name)
    }

    fn remote(&self) -> String {
        self.remote
            .map_or_else(|| "unknown".to_owned(), |a| a.to_string())
    }
}

/// Why an admin action was not carried out; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The identity has nothing to act on (no certificate to revoke; nothing to delete).
    #[error("{0}")]
    NotFound(String),
    /// An issuance of the identity is under way, here or in another process.
    #[error("{0}")]
    Busy(String),
    /// The CA refused or failed the revocation.
    #[error(transparent)]
    Ca(#[from] IssueError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A revocation carried out.
#[derive(Debug)]
pub struct Revoked {
    /// The serial revoked.
    pub serial: String,
    /// When, Unix seconds.
    pub at: i64,
    /// The replacement's issuance, for the reasons that ask for one.
    pub replacement: Option<Pending>,
}

/// A deletion carried out.
#[derive(Debug)]
pub struct Deleted {
    /// The serial of the certificate it held, if any.
    pub serial: Option<String>,
    /// Whether that certificate was revoked (`cessationOfOperation`) by this deletion.
    pub revoked: bool,
}

impl CertService {
    /// Revokes `key`'s current certificate at the CA for `reason`, marks it revoked (its key
    /// destroyed, never served again) and, for `keyCompromise` and `superseded`, starts the
    /// replacement with a new key at once.
    pub async fn revoke(
        self: &Arc<Self>,
        key: &CertKey,
        reason: RevocationReason,
        actor: Actor<'_>,
    ) -> Result<Revoked, AdminError> {
        // A client's key is the client's to replace: a compromised one is never issued for
        // again (its identity stays revoked until the client sends a CSR for a new key).
        let replaces = reason.replaces()
            && !(matches!(key.key, KeySpec::Client(_))
                && reason == RevocationReason::KeyCompromise);
        let (serial, at) = self
            .under_lease(key, "revoke", async {
                let Some(cert) = self.store.certificate(key).await? else {
                    return Err(AdminError::NotFound(format!(
                        "{key} holds no certificate to revoke (none issued, or already revoked)"
                    )));
                };
                self.revoke_at_ca(key, &cert, reason, actor).await?;
                let at = clock::now();
                let mut data = serde_json::json!({
                    "certificate": crate::notify::certificate(&cert),
                    "reason": reason.as_str(),
                    "replacing": replaces,
                    "by": actor.who(),
                });
                data["certificate"]["revokedAt"] = clock::rfc3339(at).into();
                let event = self.notifier.event(
                    crate::domain::EventType::CertificateRevoked,
                    key,
                    data,
                    at,
                    None,
                );
                let marked = self
                    .store
                    .revoke_certificate(key, &cert.serial, reason.as_str(), at, replaces, &[event])
                    .await?;
                if !marked {
                    // Only this lease's holder changes the certificate: a concurrent change
                    // means a process without the lease wrote it.
                    tracing::warn!(names = %key.names, "the revoked certificate changed meanwhile");
                }
                Ok((cert.serial, at))
            })
            .await?;
        self.forget(key);
        audit(actor, "revoke", key, Some(&serial), reason.as_str());
        let replacement = if replaces {
            // The operator's action overrides an earlier failure's back-off.
            self.store.clear_failure(key).await?;
            Some(self.start(
                key,
                Need::Replace,
                at,
                ChallengeChoice::Auto,
                super::limits::Asker::default(),
            ))
        } else {
            None
        };
        Ok(Revoked {
            serial,
            at,
            replacement,
        })
    }

    /// Stops managing `key`: its certificate and private key are deleted, it is renewed and
    /// served no more; its history stays. With `revoke`, its certificate is first revoked at
    /// the CA (`cessationOfOperation`); if that fails, nothing is deleted.
    pub async fn delete(
        self: &Arc<Self>,
        key: &CertKey,
        revoke: bool,
        actor: Actor<'_>,
    ) -> Result<Deleted, AdminError> {
        let deleted = self
            .under_lease(key, "delete", async {
                let Some(entry) = self.store.inventory_entry(key).await? else {
                    return Err(AdminError::NotFound(format!("{key} is not managed")));
                };
                let serial = entry.cert.as_ref().map(|c| c.serial.clone());
                let mut revoked = false;
                let current = match revoke && entry.revoked.is_none() {
                    true => self.store.certificate(key).await?,
                    false => None,
                };
                if let Some(cert) = current {
                    let reason = RevocationReason::CessationOfOperation;
                    self.revoke_at_ca(key, &cert, reason, actor).await?;
                    revoked = true;
                }
                let event = self.notifier.event(
                    crate::domain::EventType::CertificateDeleted,
                    key,
                    serde_json::json!({
                        "certificate": {"serial": serial},
                        "revoked": revoked,
                        "by": actor.who(),
                    }),
                    clock::now(),
                    None,
                );
                self.store.delete_identity(key, &[event]).await?;
                let note = match (&serial, revoked) {
                    (_, true) => "revoked (cessationOfOperation) and deleted",
                    (Some(_), false) => "deleted, not revoked",
                    (None, false) => "deleted (it held no certificate)",
                };
                self.record(
                    key,
                    "deletion",
                    "success",
                    note,
                    serial.as_deref(),
                    actor,
                    None,
                )
                .await;
                Ok(Deleted { serial, revoked })
            })
            .await?;
        self.forget(key);
        let what = if deleted.revoked {
            "revoked:cessationOfOperation"
        } else {
            "-"
        };
        audit(actor, "delete", key, deleted.serial.as_deref(), what);
        Ok(deleted)
    }

    /// After `key` (a client's key) was issued: retires the identity of the same names whose key
    /// its CSR said it rotates out, as a deletion (not revoked: the client may still be
    /// switching over; its history stays). A failure is logged; the next issuance of `key`, or
    /// the client's next request naming the old key, tries again.
    pub async fn retire_replaced(self: &Arc<Self>, key: &CertKey) {
        let old = match self.store.client_csr(key).await {
            Ok(Some(record)) => record.replaces,
            Ok(None) => None,
            Err(err) => {
                tracing::warn!(names = %key.names, error = %err, "cannot read the CSR kept for a client key");
                None
            }
        };
        let Some(old) = old else { return };
        let old = CertKey {
            names: key.names.clone(),
            key: old,
            profile: key.profile.clone(),
        };
        let by = format!("rotation to {}", key.key);
        let actor = Actor {
            name: &by,
            method: "certfleet",
            remote: None,
        };
        match self.delete(&old, false, actor).await {
            Ok(_) => {
                tracing::info!(names = %key.names, old = %old.key, new = %key.key, "the rotated-out client key is retired");
            }
            Err(AdminError::NotFound(_)) => {}
            Err(err) => {
                tracing::warn!(names = %key.names, old = %old.key, error = %err, "cannot retire the rotated-out client key yet");
            }
        }
    }

    /// Drops `key` from the cache: the store is read again at the next request.
    pub fn forget(&self, key: &CertKey) {
        let mut cache = self
            .cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.remove(key);
        crate::observe::metrics::cache_size("certificates", cache.len(), cache.bytes());
        drop(cache);
        // Watchers wake even when nothing was cached: with `server.cacheSize: 0`, or after an
        // eviction, a waiter's certificate is not in the cache.
        self.changed();
    }

    /// Runs `work` holding `key`'s issuance lease, which no process then holds for an order:
    /// [`AdminError::Busy`] while one is under way (here, or in another process).
    async fn under_lease<T>(
        &self,
        key: &CertKey,
        action: &str,
        work: impl Future<Output = Result<T, AdminError>>,
    ) -> Result<T, AdminError> {
        let busy = || {
            AdminError::Busy(format!(
                "an issuance of {key} is under way; {action} it once that has ended"
            ))
        };
        if self.is_issuing(key) {
            return Err(busy());
        }
        let lease = issuance_lease(key);
        let now = clock::now();
        if !self
            .store
            .try_lease(&lease, &self.owner, now, self.lease_secs())
            .await?
        {
            return Err(busy());
        }
        let result = work.await;
        if let Err(err) = self.store.release_lease(&lease, &self.owner).await {
            tracing::warn!(error = %err, "cannot release the issuance lease; it expires by itself");
        }
        result
    }

    /// Revokes at the CA and keeps the attempt, success or failure, in the history.
    async fn revoke_at_ca(
        &self,
        key: &CertKey,
        cert: &StoredCert,
        reason: RevocationReason,
        actor: Actor<'_>,
    ) -> Result<(), AdminError> {
        let (cert_pem, serial) = (cert.cert_pem.as_str(), cert.serial.as_str());
        let started = Instant::now();
        // The CA that issued it: a fallback's certificate is revoked there.
        let result = self
            .issuer_of(cert.ca.as_deref())
            .revoke(cert_pem, reason)
            .await;
        let outcome = match &result {
            Ok(()) => "success",
            Err(err) => err
                .kind()
                .map_or("internal_error", crate::domain::FailureKind::as_str),
        };
        let note = match &result {
            Ok(()) => reason.as_str().to_owned(),
            Err(err) => format!("{}: {err}", reason.as_str()),
        };
        self.record(
            key,
            "revocation",
            outcome,
            &note,
            Some(serial),
            actor,
            Some(started),
        )
        .await;
        result.map_err(AdminError::Ca)
    }

    /// Keeps an admin action in `key`'s history: `note`, then who and from where.
    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        key: &CertKey,
        trigger: &str,
        outcome: &str,
        note: &str,
        serial: Option<&str>,
        actor: Actor<'_>,
        started: Option<Instant>,
    ) {
        let attempt = Attempt {
            trigger: trigger.to_owned(),
            outcome: outcome.to_owned(),
            message: Some(format!(
                "{note}; by {} from {}",
                actor.who(),
                actor.remote()
            )),
            serial: serial.map(str::to_owned),
            started_at: clock::now(),
            duration_ms: started.map_or(0, |s| {
                i64::try_from(s.elapsed().as_millis()).unwrap_or(i64::MAX)
            }),
        };
        if let Err(err) = self.store.record_attempt(key, &attempt).await {
            tracing::warn!(names = %key.names, error = %err, "cannot record the admin action");
        }
    }
}

/// The lease an identity's issuance (and an admin action on it) runs under.
pub(super) fn issuance_lease(key: &CertKey) -> String {
    format!("issue|{}|{}", key.names.key(), key.key.as_str())
}

/// The admin action's audit line, target [`AUDIT_TARGET`].
fn audit(actor: Actor<'_>, action: &str, key: &CertKey, serial: Option<&str>, detail: &str) {
    tracing::info!(
        target: AUDIT_TARGET,
        principal = %actor.name,
        method = actor.method,
        action,
        names = %key.names,
        key_type = key.key.as_str(),
        serial = serial.unwrap_or("-"),
        detail,
        remote = %actor.remote(),
        "admin action"
    );
}

/// Until `shutdown`, every [`RETIREMENT_POLL`], drops from `certs`' cache the identities any
/// process sharing `store` revoked, deleted or stored a new certificate for since the last look
/// (with a few seconds of overlap for clocks that differ between machines), which also wakes
/// the watchers waiting on them.
pub async fn watch_retirements(
    certs: Arc<CertService>,
    store: Arc<dyn Store>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut since = clock::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(RETIREMENT_POLL) => {}
            _ = shutdown.changed() => return,
        }
        let now = clock::now();
        let retired = store.retired_since(since - 5).await;
        let stored = store.stored_since(since - 5).await;
        match (retired, stored) {
            (Ok(retired), Ok(stored)) => {
                for key in retired.iter().chain(&stored) {
                    certs.forget(key);
                }
                since = now;
            }
            (Err(err), _) | (_, Err(err)) => {
                tracing::warn!(error = %err, "cannot read revocations, deletions and renewals");
            }
        }
    }
}
