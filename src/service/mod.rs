//! The certificate service: stored certificates behind an in-memory cache, issuances shared
//! between everyone who asks for the same identity, leases so that processes sharing the store
//! never order twice, the failure back-off, and the rules of forced renewal. Every handler goes
//! through it; how its answers are rendered is the API's business (`api/body.rs`).
//!
//! Issuance runs in a spawned task, never in a request's future, so a client that disconnects
//! cannot cancel an order halfway. Concurrent requests for one identity join one task; distinct
//! identities are issued in parallel.

pub mod admin;
pub mod dns_persist;
pub mod limits;
pub mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{Notify, watch};

use crate::acme::solver::ChallengeChoice;
use crate::acme::{IssueError, Issuer};
use crate::domain::{CertKey, FailureKind, KeySpec};
use crate::notify::Notifier;
use crate::schedule::backoff;
use crate::store::{Attempt, Failure, RenewalClaim, Store, StoreError, StoredCert};
use crate::util::sized_cache::SizedCache;
use limits::{Asker, Limits};

/// A forced renewal runs at most once per identity in this many seconds.
const FORCED_RENEWAL_INTERVAL: i64 = 3600;

/// Why a forced renewal was not started.
#[derive(Debug, thiserror::Error)]
pub enum ForceError {
    /// A forced renewal of this identity ran less than an hour ago.
    #[error(
        "{key} was renewed on request less than an hour ago; the current certificate stays valid"
    )]
    TooSoon {
        /// The identity.
        key: CertKey,
        /// How long until the next forced renewal is allowed.
        retry_after: std::time::Duration,
    },
    /// The claim could not be recorded.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The end of one issuance, as every waiter sees it.
pub type Outcome = Result<Arc<StoredCert>, IssueError>;

/// A receiver that holds `Some` once the issuance has finished.
pub type Pending = watch::Receiver<Option<Outcome>>;

/// Stored certificates, the response cache and the issuances under way.
#[derive(Debug)]
pub struct CertService {
    store: Arc<dyn Store>,
    issuer: Arc<Issuer>,
    /// `acme.fallback`'s issuer, tried when `issuer` fails for the CA's reasons.
    fallback: Option<Arc<Issuer>>,
    /// Certificates as the store last gave them, within their share of `server.cacheSize`;
    /// what is dropped is read from the store again when asked for.
    cache: RwLock<SizedCache<CertKey, Arc<StoredCert>>>,
    inflight: Mutex<HashMap<CertKey, Pending>>,
    stored: Arc<Notify>,
    /// Bumped whenever a certificate this process serves may have changed (stored here, or
    /// dropped from the cache: revoked, deleted, renewed by another process): what waiting
    /// watchers (`GET ...&wait=`) wake on, each then comparing its own certificate.
    changes: watch::Sender<u64>,
    /// This process's name on leases: unique per start.
    owner: String,
    /// `storage.leaseTtl`: how long a lease lasts unrenewed (renewed every third of it).
    lease_ttl: std::time::Duration,
    /// Builds the events every change here is written with.
    notifier: Arc<Notifier>,
    /// The CA limits new orders are admitted by and counted in (`limits`).
    limits: Option<Arc<Limits>>,
}

/// How often a process waiting for another's lease looks again.
const LEASE_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// What a caller needs from an issuance; decides whether another process's work suffices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Any valid certificate (a client asking).
    Valid,
    /// A certificate that is no longer due (the renewal worker).
    Due,
    /// A certificate issued after the request began (a forced renewal).
    New,
    /// The recorded order finished (taking over an order a process left unfinished).
    Resume,
    /// A replacement for a certificate just revoked (which the store no longer reads).
    Replace,
}

impl Need {
    /// The `trigger` label of the issuance metrics.
    fn trigger(self) -> &'static str {
        match self {
            Self::Valid => "request",
            Self::Due => "renewal",
            Self::New => "forced",
            Self::Resume => "resume",
            Self::Replace => "replacement",
        }
    }
}

impl CertService {
    /// A service over `store`, issuing with `issuer`, coordinating with other processes sharing
    /// the store through leases of `lease_ttl`, keeping at most `cache_budget` bytes of
    /// certificates in memory, writing the events of its changes as `notifier` builds them.
    pub fn new(
        store: Arc<dyn Store>,
        issuer: Arc<Issuer>,
        lease_ttl: std::time::Duration,
        cache_budget: usize,
        notifier: Arc<Notifier>,
    ) -> Self {
        Self {
            store,
            issuer,
            fallback: None,
            cache: RwLock::new(SizedCache::new(cache_budget)),
            inflight: Mutex::new(HashMap::new()),
            stored: Arc::new(Notify::new()),
            changes: watch::Sender::new(0),
            owner: owner_id(),
            lease_ttl,
            notifier,
            limits: None,
        }
    }

    /// Admits every new order by `limits` (the CA limits known in advance) and counts it.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = Some(Arc::new(limits));
        self
    }

    /// The CA limits, when configured (the renewal worker reads its pace there).
    pub fn limits(&self) -> Option<&Limits> {
        self.limits.as_deref()
    }

    /// Orders from `fallback` (`acme.fallback`) when the primary issuer fails for the CA's
    /// reasons: unreachable, a 5xx or an unusable answer, its rate limit.
    #[must_use]
    pub fn with_fallback(mut self, fallback: Arc<Issuer>) -> Self {
        self.fallback = Some(fallback);
        self
    }

    /// The issuer of `ca`, the CA a certificate's row says issued it (ARI and revocation go
    /// there).
    pub fn issuer_of(&self, ca: Option<&str>) -> &Issuer {
        match &self.fallback {
            Some(fallback) if fallback.issued(ca) => fallback,
            _ => &self.issuer,
        }
    }

    /// This process's name on leases and claims: unique per start.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The notifier events are built by.
    pub fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    /// Notified whenever a certificate is stored (the renewal worker's wake-up).
    pub fn stored(&self) -> Arc<Notify> {
        self.stored.clone()
    }

    /// Changes whenever a certificate may have changed; subscribe before looking at the
    /// current one, so that no change is missed in between.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Wakes the watchers: some certificate may have changed.
    fn changed(&self) {
        self.changes
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// Renews `key` now (or joins the renewal under way), unless it is backing off or another
    /// process renewed it meanwhile.
    pub fn renew(self: &Arc<Self>, key: &CertKey, now: i64) -> Pending {
        self.start(key, Need::Due, now, ChallengeChoice::Auto, Asker::default())
    }

    /// Whether a certificate the store says is due should be renewed now. With ARI, the CA's
    /// window may have moved later: then the renewal time moves there and this says no.
    pub async fn still_due(&self, key: &CertKey, now: i64) -> bool {
        let Ok(Some(cert)) = self.store.certificate(key).await else {
            return true;
        };
        match self
            .issuer_of(cert.ca.as_deref())
            .ari_renewal_time(&cert.cert_pem)
            .await
        {
            Some(at) if at > now => {
                tracing::info!(names = %key.names, renew_after = at, "the CA's renewal window starts later");
                if let Err(err) = self.store.set_renew_after(key, at, &[]).await {
                    tracing::warn!(error = %err, "cannot move the renewal time");
                    return true;
                }
                self.forget(key);
                false
            }
            _ => true,
        }
    }

    /// Resumes every order a previous process left unfinished (crash recovery).
    pub async fn resume_orders(self: &Arc<Self>) -> Result<usize, StoreError> {
        let keys = self.store.orders().await?;
        for key in keys.iter().filter(|key| !self.is_issuing(key)) {
            tracing::info!(names = %key.names, key_type = %key.key, "resuming an unfinished order");
            drop(self.start(
                key,
                Need::Resume,
                crate::util::clock::now(),
                ChallengeChoice::Auto,
                Asker::default(),
            ));
        }
        Ok(keys.len())
    }

    /// The issuer (for its counters).
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// The stored certificate for `key` if it is valid at `now`: from the cache, else from the
    /// store (then cached).
    pub async fn valid(
        &self,
        key: &CertKey,
        now: i64,
    ) -> Result<Option<Arc<StoredCert>>, StoreError> {
        if let Some(hit) = self.cached(key).filter(|hit| hit.is_valid_at(now)) {
            return Ok(Some(hit));
        }
        let Some(cert) = self.store.certificate(key).await? else {
            return Ok(None);
        };
        let entry = Arc::new(cert);
        self.remember(key, entry.clone(), true);
        Ok(entry.is_valid_at(now).then_some(entry))
    }

    /// Whether an issuance for `key` is under way.
    pub fn is_issuing(&self, key: &CertKey) -> bool {
        lock(&self.inflight).contains_key(key)
    }

    /// Joins the issuance under way for `key`, or starts one; a certificate that became valid
    /// since the caller looked is returned instead of ordering another. The challenge `choice`
    /// is not part of the identity: a request joining an issuance under way gets that issuance
    /// as it runs.
    pub fn issue(self: &Arc<Self>, key: &CertKey, now: i64, choice: ChallengeChoice) -> Pending {
        self.start(key, Need::Valid, now, choice, Asker::default())
    }

    /// [`CertService::issue`] for a client: a new certificate also counts toward `asker`'s
    /// quota (and is refused past it). A request joining an issuance under way is not counted
    /// again: it orders nothing.
    pub fn issue_for(
        self: &Arc<Self>,
        key: &CertKey,
        now: i64,
        choice: ChallengeChoice,
        asker: Asker,
    ) -> Pending {
        self.start(key, Need::Valid, now, choice, asker)
    }

    /// Forces a new certificate for `key` (a new key, a new order), at most once per identity
    /// per hour across every process sharing the store; joins the issuance already under way
    /// instead, when there is one.
    pub async fn force(
        self: &Arc<Self>,
        key: &CertKey,
        now: i64,
        choice: ChallengeChoice,
    ) -> Result<Pending, ForceError> {
        if !self.is_issuing(key) {
            let claim = self
                .store
                .claim_forced_renewal(key, now, FORCED_RENEWAL_INTERVAL)
                .await?;
            if let RenewalClaim::TooSoon { retry_at } = claim {
                let wait = u64::try_from(retry_at - now).unwrap_or(1).max(1);
                return Err(ForceError::TooSoon {
                    key: key.clone(),
                    retry_after: std::time::Duration::from_secs(wait),
                });
            }
        }
        Ok(self.start(key, Need::New, now, choice, Asker::default()))
    }

    fn start(
        self: &Arc<Self>,
        key: &CertKey,
        need: Need,
        now: i64,
        choice: ChallengeChoice,
        asker: Asker,
    ) -> Pending {
        let force = need != Need::Valid;
        let mut inflight = lock(&self.inflight);
        if let Some(pending) = inflight.get(key) {
            return pending.clone();
        }
        if let Some(hit) = self
            .cached(key)
            .filter(|hit| !force && hit.is_valid_at(now))
        {
            return watch::channel(Some(Ok(hit))).1;
        }
        let (done, pending) = watch::channel(None);
        inflight.insert(key.clone(), pending.clone());
        drop(inflight);

        let service = self.clone();
        let key = key.clone();
        tokio::spawn(async move {
            // The order runs in its own task so that a panic in it still ends the issuance.
            let order = tokio::spawn({
                let (service, key) = (service.clone(), key.clone());
                async move { service.leased(&key, need, now, choice, &asker).await }
            });
            let outcome = match order.await {
                Ok(result) => result,
                Err(err) => Err(IssueError::Internal(format!(
                    "the issuance task failed: {err}"
                ))),
            }
            .map(|cert| {
                let entry = Arc::new(cert);
                // A client waits for this one, unless it is a renewal or a resumed order.
                let fresh = matches!(need, Need::Valid | Need::New | Need::Replace);
                service.remember(&key, entry.clone(), fresh);
                service.stored.notify_one();
                service.changed();
                entry
            });
            if let Err(err) = &outcome {
                tracing::warn!(names = %key.names, key_type = %key.key, error = %err, "issuance failed");
            }
            // The cache is updated before the issuance leaves the map, so a request arriving in
            // between finds one or the other.
            lock(&service.inflight).remove(&key);
            if outcome.is_ok() && matches!(key.key, KeySpec::Client(_)) {
                // Before the waiters hear of it: a client told its new key's certificate is
                // issued finds the key it rotated out retired.
                service.retire_replaced(&key).await;
            }
            done.send_replace(Some(outcome));
        });
        pending
    }

    /// Runs the attempt under the identity's lease, so that processes sharing the store never
    /// order the same certificate twice: while another holds it, wait; once held, look at the
    /// store again, because the other may just have done the work.
    async fn leased(
        &self,
        key: &CertKey,
        need: Need,
        started: i64,
        choice: ChallengeChoice,
        asker: &Asker,
    ) -> Result<StoredCert, IssueError> {
        let lease = admin::issuance_lease(key);
        let mut waited = false;
        while !self
            .store
            .try_lease(
                &lease,
                &self.owner,
                crate::util::clock::now(),
                self.lease_secs(),
            )
            .await?
        {
            if !waited {
                tracing::info!(names = %key.names, "another process is issuing this certificate; waiting for it");
                waited = true;
            }
            tokio::time::sleep(LEASE_POLL).await;
        }
        let keeper = tokio::spawn({
            let (store, lease, owner) = (self.store.clone(), lease.clone(), self.owner.clone());
            let (ttl, every) = (self.lease_secs(), self.lease_ttl / 3);
            async move {
                loop {
                    tokio::time::sleep(every).await;
                    match store
                        .try_lease(&lease, &owner, crate::util::clock::now(), ttl)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => tracing::error!(lease, "lost the issuance lease"),
                        Err(err) => tracing::warn!(error = %err, "cannot renew the issuance lease"),
                    }
                }
            }
        });
        let result = match self.done_elsewhere(key, need, started).await {
            Ok(Some(cert)) => Ok(cert),
            Ok(None) => self.attempt(key, need, choice, asker).await,
            Err(err) => Err(err.into()),
        };
        keeper.abort();
        if let Err(err) = self.store.release_lease(&lease, &self.owner).await {
            tracing::warn!(error = %err, "cannot release the issuance lease; it expires by itself");
        }
        result
    }

    fn lease_secs(&self) -> i64 {
        i64::try_from(self.lease_ttl.as_secs()).unwrap_or(60)
    }

    /// How long a lease lasts unrenewed: orders of a process that died are taken over by then.
    pub fn lease_ttl(&self) -> std::time::Duration {
        self.lease_ttl
    }

    /// The stored certificate, if it already satisfies what the caller needed (another process
    /// sharing the store did the work while this one waited).
    async fn done_elsewhere(
        &self,
        key: &CertKey,
        need: Need,
        started: i64,
    ) -> Result<Option<StoredCert>, StoreError> {
        let now = crate::util::clock::now();
        if need == Need::Resume && self.store.order(key).await?.is_none() {
            // Whoever held the lease finished (or abandoned) the order: nothing to take over.
            return match self.store.certificate(key).await? {
                Some(cert) => Ok(Some(cert)),
                None => Err(StoreError::new(
                    "resume an order",
                    "the order was abandoned",
                )),
            };
        }
        let Some(cert) = self.store.certificate(key).await? else {
            return Ok(None);
        };
        let satisfied = match need {
            Need::Valid => now < cert.not_after,
            Need::Due => now < cert.renew_after,
            // Strictly later: a certificate from the second the request began is the old one.
            Need::New => cert.issued_at > started,
            // The revoked one is not read: any certificate stored is a replacement.
            Need::Replace => true,
            Need::Resume => false,
        };
        Ok(satisfied.then_some(cert))
    }

    /// One issuance attempt under the back-off rules: a failing identity gets its last error
    /// (and no order) until its next attempt; a failure earns a longer wait, a success clears it.
    async fn attempt(
        &self,
        key: &CertKey,
        need: Need,
        choice: ChallengeChoice,
        asker: &Asker,
    ) -> Result<StoredCert, IssueError> {
        let now = crate::util::clock::now();
        let previous = self.store.failure(key).await?;
        if let Some(failure) = previous.as_ref().filter(|f| f.next_attempt > now) {
            let wait = u64::try_from(failure.next_attempt - now).unwrap_or(1);
            return Err(IssueError::BackingOff {
                kind: failure.kind,
                message: failure.message.clone(),
                retry_after: std::time::Duration::from_secs(wait),
            });
        }
        if let Some(limits) = &self.limits {
            self.admit(limits, key, need, asker, now).await?;
        }
        let started = std::time::Instant::now();
        let trigger = need.trigger();
        let announce = |cert: &StoredCert, previous: Option<&str>| {
            vec![self.notifier.stored(cert, previous, trigger)]
        };
        let result = self.issue_with_fallback(key, choice, &announce).await;
        let outcome = match &result {
            Ok(_) => "success",
            // A kind's name is the API code its failure is answered with (`error.rs` checks),
            // so the label needs no mapping of its own.
            Err(err) => err.kind().map_or("internal_error", FailureKind::as_str),
        };
        crate::observe::metrics::issuance(need.trigger(), outcome);
        if let (Some(limits), Err(IssueError::ValidationFailed(_))) = (&self.limits, &result) {
            limits.failed_validation(key, now).await;
        }
        let attempt = Attempt {
            trigger: need.trigger().to_owned(),
            outcome: outcome.to_owned(),
            message: result.as_ref().err().map(ToString::to_string),
            serial: result.as_ref().ok().map(|cert| cert.serial.clone()),
            started_at: now,
            duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        };
        if let Err(err) = self.store.record_attempt(key, &attempt).await {
            // The history is for the operator; the certificate (or the failure) stands.
            tracing::warn!(names = %key.names, error = %err, "cannot record the issuance attempt");
        }
        match (&result, result.as_ref().err().and_then(IssueError::kind)) {
            (Ok(_), _) if previous.is_some() => self.store.clear_failure(key).await?,
            // Only what the CA, a DNS provider or a validation refused backs off: certfleet's
            // own failures are retried at once.
            (Ok(_), _) | (Err(_), None) => {}
            (Err(err), Some(kind)) => {
                let count = previous.map_or(0, |f| f.count).saturating_add(1);
                let current = self.store.certificate(key).await?;
                let remaining = current.as_ref().map(|c| c.not_after - now);
                let mut wait = backoff(count, remaining);
                if let IssueError::RateLimited {
                    retry_after: Some(ca),
                    ..
                } = err
                {
                    wait = wait.max(i64::try_from(ca.as_secs()).unwrap_or(i64::MAX));
                }
                let next_attempt = now.saturating_add(wait);
                let failure = Failure {
                    count,
                    next_attempt,
                    kind,
                    message: format!(
                        "{err} (failure {count}; no new order before {})",
                        crate::util::clock::rfc3339(next_attempt)
                    ),
                };
                // A renewal that fails is news; a first issuance's failure is its client's answer.
                let events: Vec<_> = current
                    .iter()
                    .map(|cert| {
                        let data = serde_json::json!({
                            "certificate": crate::notify::certificate(cert),
                            "trigger": trigger,
                            "attempt": count,
                            "error": {"code": kind.as_str(), "message": err.to_string()},
                            "nextAttempt": crate::util::clock::rfc3339(next_attempt),
                        });
                        self.notifier.event(
                            crate::domain::EventType::CertificateRenewalFailed,
                            key,
                            data,
                            now,
                            None,
                        )
                    })
                    .collect();
                self.store.record_failure(key, &failure, &events).await?;
            }
        }
        result
    }

    /// Admits (and counts) the order this attempt is about to make, by the CA limits. An order
    /// the CA already knows (its URL recorded: resumed) orders nothing new and is not counted.
    /// Everything but a client's first certificate for an identity is a renewal, which the
    /// limits count and never refuse.
    async fn admit(
        &self,
        limits: &Limits,
        key: &CertKey,
        need: Need,
        asker: &Asker,
        now: i64,
    ) -> Result<(), IssueError> {
        if self
            .store
            .order(key)
            .await?
            .is_some_and(|o| o.url.is_some())
        {
            return Ok(());
        }
        let renewal = need != Need::Valid || self.store.certificate(key).await?.is_some();
        limits.admit(key, renewal, asker, now).await
    }

    /// The issuance at the primary CA, then, when it failed for the CA's reasons and no order
    /// the primary may still finish is kept, at `acme.fallback`'s. An order recorded at the
    /// fallback (a process stopped during it) is resumed there first.
    async fn issue_with_fallback(
        &self,
        key: &CertKey,
        choice: ChallengeChoice,
        announce: crate::acme::Announce<'_>,
    ) -> Result<StoredCert, IssueError> {
        let Some(fallback) = &self.fallback else {
            return self.issuer.issue(key, choice, announce).await;
        };
        let recorded = self.store.order(key).await?.and_then(|order| order.url);
        if recorded.is_some_and(|url| fallback.owns_order(&url)) {
            return fallback.issue(key, choice, announce).await;
        }
        let result = self.issuer.issue(key, choice, announce).await;
        let Err(err @ (IssueError::Ca(_) | IssueError::RateLimited { .. })) = &result else {
            return result;
        };
        if self.store.order(key).await?.is_some() {
            // Finalized at the primary, which may still issue: resumed there, never doubled.
            return result;
        }
        tracing::warn!(
            names = %key.names,
            primary = self.issuer.directory_url(),
            fallback = fallback.directory_url(),
            error = %err,
            "the primary CA failed; ordering from the fallback CA"
        );
        crate::observe::metrics::fallback_issuance();
        fallback.issue(key, choice, announce).await
    }

    fn cached(&self, key: &CertKey) -> Option<Arc<StoredCert>> {
        self.cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Keeps `entry` as the certificate for `key`. A renewal (`fresh == false`: the worker's,
    /// not a client's) only replaces an entry already kept: the certificates clients fetch stay
    /// cached, and a batch of renewals does not push them out.
    fn remember(&self, key: &CertKey, entry: Arc<StoredCert>, fresh: bool) {
        let mut cache = self
            .cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The `Arc`'s allocation (two counts and the struct) and what the struct points to.
        let heap =
            key.heap_size() + 2 * size_of::<usize>() + size_of::<StoredCert>() + entry.heap_size();
        if fresh {
            cache.insert(key.clone(), entry, heap);
        } else if !cache.replace(key.clone(), entry, heap) {
            return;
        }
        crate::observe::metrics::cache_size("certificates", cache.len(), cache.bytes());
    }
}

/// A lease owner name unique to this process start: the pid and 64 random bits.
fn owner_id() -> String {
    use aws_lc_rs::rand::SecureRandom as _;
    let mut bytes = [0u8; 8];
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut bytes);
    let random: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{random}", std::process::id())
}

/// Waits for an issuance to finish.
pub async fn finished(mut pending: Pending) -> Outcome {
    match pending.wait_for(Option::is_some).await {
        Ok(outcome) => outcome
            .clone()
            .unwrap_or_else(|| Err(IssueError::Internal("issuance vanished".to_owned()))),
        Err(_) => Err(IssueError::Internal(
            "the issuance task ended without a result".to_owned(),
        )),
    }
}

/// A poisoned map only means another task panicked while holding it; the map itself is intact.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
