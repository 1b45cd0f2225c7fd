//! The `Store` seam: everything certfleet persists, as the methods the app needs.
//!
//! Callers hold an `Arc<dyn Store>`. There is one implementation, [`sql::SqlStore`]: every
//! statement, row decoding and sealed column written once, run through the [`backend::Backend`]
//! seam on [`sqlite`] (the default: one file) or [`postgres`] (replicas sharing one database),
//! whichever `storage.url` named when the config was parsed. A backend holds only what is its
//! own: how to connect and how its migrations are applied; the schema is `migrations/<backend>/`,
//! the same tables, keys and versions on both. Every method is one short statement or
//! transaction, so a store is safe to share between tasks.

/// The schema's migrations as a sqlx `Migrator`, from the files of `migrations/<backend>/`:
/// the same versions and names on every backend, each file applied once, in its own
/// transaction. A new migration is one line here and one file per backend.
macro_rules! migrator {
    ($backend:literal) => {{
        let migrations = [
            (
                1,
                "init",
                include_str!(concat!("../../migrations/", $backend, "/0001_init.sql")),
            ),
            (
                2,
                "lifecycle",
                include_str!(concat!(
                    "../../migrations/",
                    $backend,
                    "/0002_lifecycle.sql"
                )),
            ),
            (
                3,
                "server identity",
                include_str!(concat!(
                    "../../migrations/",
                    $backend,
                    "/0003_server_identity.sql"
                )),
            ),
            (
                4,
                "akash",
                include_str!(concat!("../../migrations/", $backend, "/0004_akash.sql")),
            ),
            (
                5,
                "leases",
                include_str!(concat!("../../migrations/", $backend, "/0005_leases.sql")),
            ),
            (
                6,
                "covering renewal index",
                include_str!(concat!(
                    "../../migrations/",
                    $backend,
                    "/0006_covering_renewal_index.sql"
                )),
            ),
            (
                7,
                "inventory",
                include_str!(concat!(
                    "../../migrations/",
                    $backend,
                    "/0007_inventory.sql"
                )),
            ),
            (
                8,
                "inventory states",
                include_str!(concat!(
                    "../../migrations/",
                    $backend,
                    "/0008_inventory_states.sql"
                )),
            ),
            (
                9,
                "events",
                include_str!(concat!("../../migrations/", $backend, "/0009_events.sql")),
            ),
            (
                10,
                "client keys",
                include_str!(concat!(
                    "../../migrations/",
                    $backend,
                    "/0010_client_keys.sql"
                )),
            ),
            (
                11,
                "ca usage",
                include_str!(concat!("../../migrations/", $backend, "/0011_ca_usage.sql")),
            ),
            (
                12,
                "tls-alpn-01",
                include_str!(concat!(
                    "../../migrations/",
                    $backend,
                    "/0012_tls_alpn01.sql"
                )),
            ),
            (
                13,
                "issuing ca",
                include_str!(concat!(
                    "../../migrations/",
                    $backend,
                    "/0013_issuing_ca.sql"
                )),
            ),
        ];
        sqlx::migrate::Migrator::with_migrations(
            migrations
                .into_iter()
                .map(|(version, description, sql)| {
                    sqlx::migrate::Migration::new(
                        version,
                        std::borrow::Cow::Borrowed(description),
                        sqlx::migrate::MigrationType::Simple,
                        sqlx::SqlSafeStr::into_sql_str(sql),
                        false,
                    )
                })
                .collect(),
        )
    }};
}

pub mod backend;
pub mod outbox;
pub mod postgres;
pub mod seal;
pub mod sql;
pub mod sqlite;

pub use outbox::{
    AriCandidate, EventRecord, ExpiryCandidate, NewEvent, NotificationAttempt, NotificationOutcome,
    NotificationState, PendingNotification, StaleCandidate,
};

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;

use crate::config::{Database, EncryptionKey, SqliteConfig, StorageConfig};
use crate::domain::{CertKey, FailureKind, KeySpec, NameSet, Profile};

/// A failure of the storage backend. Never carries a secret: only the step and the driver's
/// message (which holds no bound values).
#[derive(Debug, Error)]
#[error("storage: {step}: {source}")]
pub struct StoreError {
    step: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    /// Wraps a backend error with the step that failed.
    pub fn new(
        step: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            step,
            source: source.into(),
        }
    }
}

/// A certificate as stored: the newest one issued for its identity.
#[derive(Clone)]
pub struct StoredCert {
    /// The names on the certificate.
    pub names: NameSet,
    /// Whose private key, and which.
    pub key: KeySpec,
    /// The profile its identity names (`CertKey::profile`).
    pub profile: Option<Profile>,
    /// The leaf followed by its chain, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM, when certfleet holds it ([`KeySpec::Server`]); `None` for
    /// a client's key, which certfleet never sees. Redacted in `Debug`.
    pub key_pem: Option<String>,
    /// The chain without the leaf, PEM.
    pub issuer_pem: String,
    /// The leaf's serial number, lowercase hex.
    pub serial: String,
    /// Validity start, Unix seconds.
    pub not_before: i64,
    /// Validity end, Unix seconds.
    pub not_after: i64,
    /// When renewal should start, Unix seconds.
    pub renew_after: i64,
    /// When certfleet stored it, Unix seconds.
    pub issued_at: i64,
    /// The ACME directory that issued it (`acme.directoryUrl`, or `acme.fallback`'s); `None`
    /// for certificates stored before fallbacks existed, which the primary issued.
    pub ca: Option<String>,
}

/// When one stored certificate expires and is due for renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleEntry {
    /// The normalised name set as stored: sorted, comma-joined.
    pub names: String,
    /// The key type's name (`ecdsa-p256`, ...).
    pub key_type: String,
    /// Validity end, Unix seconds.
    pub not_after: i64,
    /// When renewal should start, Unix seconds.
    pub renew_after: i64,
}

/// How many stored certificates are in each state at one moment. The states partition the
/// store: every certificate is in exactly one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// Before its renewal time.
    pub valid: u64,
    /// At or past its renewal time, not expired, and not backing off from a failure.
    pub due: u64,
    /// At or past its renewal time, not expired, and waiting out a back-off after a failure.
    pub backing_off: u64,
    /// Past its `notAfter`.
    pub expired: u64,
    /// Revoked (listed by the inventory, never served; the other states count none of these).
    pub revoked: u64,
    /// The earliest `notAfter` of any stored certificate, Unix seconds.
    pub earliest_expiry: Option<i64>,
}

impl StoredCert {
    /// The bytes the certificate holds on the heap (its names, PEMs and serial), for caches
    /// bounded by size.
    pub fn heap_size(&self) -> usize {
        self.names.heap_size()
            + self.cert_pem.capacity()
            + self.key_pem.as_ref().map_or(0, String::capacity)
            + self.issuer_pem.capacity()
            + self.serial.capacity()
            + self.ca.as_ref().map_or(0, String::capacity)
    }

    /// Whether the certificate is still within its validity period at `now`.
    pub fn is_valid_at(&self, now: i64) -> bool {
        now < self.not_after
    }

    /// The identity this certificate answers for.
    pub fn key(&self) -> CertKey {
        CertKey {
            names: self.names.clone(),
            key: self.key,
            profile: self.profile.clone(),
        }
    }
}

impl fmt::Debug for StoredCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredCert")
            .field("names", &self.names.key())
            .field("key", &self.key)
            .field("serial", &self.serial)
            .field("not_after", &self.not_after)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// What a forced-renewal claim decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewalClaim {
    /// The claim was recorded: go ahead.
    Granted,
    /// A forced renewal ran too recently; the next one is allowed at this Unix time.
    TooSoon {
        /// Unix seconds when the next forced renewal is allowed.
        retry_at: i64,
    },
}

/// Persistence for certificates, HTTP-01 tokens, ACME accounts and renewal claims.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Checks that the backend answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// The stored certificate for exactly this identity.
    async fn certificate(&self, key: &CertKey) -> Result<Option<StoredCert>, StoreError>;

    /// Stores a certificate, replacing the previous one of the same identity, with `events`
    /// (the outbox: all in one transaction).
    async fn save_certificate(
        &self,
        cert: &StoredCert,
        events: &[NewEvent],
    ) -> Result<(), StoreError>;

    /// Records a key authorization to serve for an HTTP-01 token.
    async fn put_http01(
        &self,
        token: &str,
        key_authorization: &str,
        now: i64,
    ) -> Result<(), StoreError>;

    /// The key authorization for an HTTP-01 token, if one is being presented.
    async fn http01(&self, token: &str) -> Result<Option<String>, StoreError>;

    /// Removes an HTTP-01 token; a token already gone is not an error.
    async fn delete_http01(&self, token: &str) -> Result<(), StoreError>;

    /// Records a key authorization to present by TLS-ALPN-01 for `name` (a DNS name or an
    /// address in certfleet's form) under the challenge's `token`.
    async fn put_tls_alpn01(
        &self,
        name: &str,
        token: &str,
        key_authorization: &str,
        now: i64,
    ) -> Result<(), StoreError>;

    /// The newest key authorization being presented by TLS-ALPN-01 for `name`.
    async fn tls_alpn01(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Removes one TLS-ALPN-01 key authorization; already gone is not an error.
    async fn delete_tls_alpn01(&self, name: &str, token: &str) -> Result<(), StoreError>;

    /// The ACME account credentials (JSON) for a directory URL.
    async fn account(&self, directory_url: &str) -> Result<Option<String>, StoreError>;

    /// Stores ACME account credentials (JSON) for a directory URL.
    async fn save_account(
        &self,
        directory_url: &str,
        credentials: &str,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Atomically claims a forced renewal of `key` at `now` unless one was claimed less than
    /// `min_interval` seconds before.
    async fn claim_forced_renewal(
        &self,
        key: &CertKey,
        now: i64,
        min_interval: i64,
    ) -> Result<RenewalClaim, StoreError>;

    /// Records the start of an order for `key` (before it is created at the CA). An existing
    /// record is kept: the caller resumes it.
    async fn begin_order(&self, key: &CertKey, now: i64) -> Result<(), StoreError>;

    /// The order in progress for `key`.
    async fn order(&self, key: &CertKey) -> Result<Option<OrderRecord>, StoreError>;

    /// Saves the order's URL at the CA.
    async fn set_order_url(&self, key: &CertKey, url: &str) -> Result<(), StoreError>;

    /// Records, before finalize, that the order is being finalized, with the certificate's
    /// private key (sealed) when certfleet holds it; `None` for a client's key, of which only
    /// the fact is stored.
    async fn set_order_key(&self, key: &CertKey, key_pem: Option<&str>) -> Result<(), StoreError>;

    /// Keeps the CSR of a client-held key's identity ([`KeySpec::Client`]), which its first
    /// order and every renewal finalize with, and the identity of the same names it rotates out
    /// (`replaces`), if any. An identity keeps the CSR it was first given (any CSR of the same
    /// names and key is as good); `replaces`, when given, is set.
    async fn put_client_csr(
        &self,
        key: &CertKey,
        csr_pem: &str,
        replaces: Option<&KeySpec>,
        now: i64,
    ) -> Result<(), StoreError>;

    /// The CSR kept for a client-held key's identity.
    async fn client_csr(&self, key: &CertKey) -> Result<Option<ClientCsrRecord>, StoreError>;

    /// The client-held keys that have a CSR kept for exactly these names.
    async fn client_keys(&self, names: &NameSet) -> Result<Vec<KeySpec>, StoreError>;

    /// Forgets the order of `key` and its presented records.
    async fn finish_order(&self, key: &CertKey) -> Result<(), StoreError>;

    /// Every identity with an order in progress (to resume after a restart).
    async fn orders(&self) -> Result<Vec<CertKey>, StoreError>;

    /// Records a challenge response before it is made visible.
    async fn add_presented(
        &self,
        key: &CertKey,
        record: &PresentedRecord,
    ) -> Result<(), StoreError>;

    /// The challenge responses recorded for `key`'s order.
    async fn presented(&self, key: &CertKey) -> Result<Vec<PresentedRecord>, StoreError>;

    /// Forgets one presented record once it has been cleaned up.
    async fn remove_presented(&self, key: &CertKey, handle: &str) -> Result<(), StoreError>;

    /// The last failure of `key`, if it is backing off.
    async fn failure(&self, key: &CertKey) -> Result<Option<Failure>, StoreError>;

    /// Records a failure of `key`, with `events` in the same transaction.
    async fn record_failure(
        &self,
        key: &CertKey,
        failure: &Failure,
        events: &[NewEvent],
    ) -> Result<(), StoreError>;

    /// Forgets `key`'s failures (after a success).
    async fn clear_failure(&self, key: &CertKey) -> Result<(), StoreError>;

    /// Up to `limit` identities whose certificate is due at `now` and not backing off, most
    /// urgent first.
    async fn due(&self, now: i64, limit: u32) -> Result<Vec<CertKey>, StoreError>;

    /// The earliest time anything becomes due (a renewal time, or a back-off ending).
    async fn next_due(&self) -> Result<Option<i64>, StoreError>;

    /// Stored certificates' expiry and renewal times, for the metrics listener: with
    /// `renewal_by: Some(t)` only those whose renewal time is at or before `t`, earliest renewal
    /// first; with `None` every certificate, by names and key type. At most `limit` entries.
    async fn schedule(
        &self,
        renewal_by: Option<i64>,
        limit: u32,
    ) -> Result<Vec<ScheduleEntry>, StoreError>;

    /// How many stored certificates are in each state at `now`, and the earliest expiry.
    async fn census(&self, now: i64) -> Result<Census, StoreError>;

    /// certfleet's own TLS identity `name` (`fallback`): certificate and private key PEM.
    async fn server_identity(&self, name: &str) -> Result<Option<(String, String)>, StoreError>;

    /// Stores certfleet's own TLS identity unless one exists; returns whether it was stored.
    async fn save_server_identity(
        &self,
        name: &str,
        cert_pem: &str,
        key_pem: &str,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Takes the lease `name` for `owner` until `now + ttl` seconds, or extends it when `owner`
    /// holds it already. `false` while another owner holds an unexpired one. Leases guard
    /// cluster-wide work (an issuance): take it only for that work, check the store again after
    /// taking it, always release it.
    async fn try_lease(
        &self,
        name: &str,
        owner: &str,
        now: i64,
        ttl: i64,
    ) -> Result<bool, StoreError>;

    /// Releases the lease `name` if `owner` holds it.
    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError>;

    /// Moves the renewal time of `key`'s certificate (the CA's renewal window moved), with
    /// `events` in the same transaction.
    async fn set_renew_after(
        &self,
        key: &CertKey,
        at: i64,
        events: &[NewEvent],
    ) -> Result<(), StoreError>;

    /// Re-seals every private key not sealed with the current key; returns how many.
    async fn reseal(&self) -> Result<u64, StoreError>;

    /// The public key (33-byte compressed secp256k1) found on chain for an Akash address.
    async fn akash_pubkey(&self, address: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Keeps the public key found on chain for an Akash address (it never changes once set).
    async fn save_akash_pubkey(&self, address: &str, key: &[u8]) -> Result<(), StoreError>;

    /// Appends one issuance attempt to `key`'s history.
    async fn record_attempt(&self, key: &CertKey, attempt: &Attempt) -> Result<(), StoreError>;

    /// `key`'s history, newest first, at most `limit` attempts.
    async fn attempts(&self, key: &CertKey, limit: u32) -> Result<Vec<Attempt>, StoreError>;

    /// Records that `principal` (`method:name`) received `serial` of `key` at `at`.
    async fn record_delivery(
        &self,
        key: &CertKey,
        principal: &str,
        serial: &str,
        at: i64,
    ) -> Result<(), StoreError>;

    /// Per credential, the last serial of `key` it received, most recent first.
    async fn deliveries(&self, key: &CertKey) -> Result<Vec<Delivery>, StoreError>;

    /// Up to `limit` identities after `after`: first those with a failure and no certificate
    /// (by names and key type), then every stored certificate by expiry (then names and key
    /// type). The inventory's pages, each one range of an index.
    async fn inventory(
        &self,
        after: Option<&InventoryCursor>,
        limit: u32,
    ) -> Result<Vec<InventoryEntry>, StoreError>;

    /// The inventory's entry for `key`.
    async fn inventory_entry(&self, key: &CertKey) -> Result<Option<InventoryEntry>, StoreError>;

    /// Marks `key`'s certificate with `serial` revoked at `at` for `reason` (an RFC 5280 name),
    /// and destroys its private key: it stays listed, and is never read by
    /// [`Store::certificate`] again. With `replace`, its renewal time becomes `at`, so the
    /// renewal worker renews it (and retries until a replacement is stored). False when `key`
    /// holds no unrevoked certificate with that serial (renewed or revoked meanwhile).
    async fn revoke_certificate(
        &self,
        key: &CertKey,
        serial: &str,
        reason: &str,
        at: i64,
        replace: bool,
        events: &[NewEvent],
    ) -> Result<bool, StoreError>;

    /// Stops managing `key`, in one transaction: its certificate and private key (or client
    /// CSR), its failure, an unfinished order, its presented challenges and its forced-renewal
    /// claim are deleted, and identities that were to replace it no longer need to; its history ([`Store::attempts`]), deliveries and events stay; `events` are written in
    /// the same transaction.
    async fn delete_identity(&self, key: &CertKey, events: &[NewEvent]) -> Result<(), StoreError>;

    /// Seals `plaintext` for `context` under the store's current encryption key: a secret that
    /// leaves the database (the dashboard's session cookie), which every process sharing the
    /// store can open.
    fn seal_secret(&self, plaintext: &str, context: &str) -> Result<String, StoreError>;

    /// Opens what [`Store::seal_secret`] sealed for `context`. Unlike the store's own columns,
    /// nothing unsealed is accepted: the value comes from outside.
    fn open_secret(&self, sealed: &str, context: &str) -> Result<String, StoreError>;

    /// The identities revoked or deleted (by any process sharing the store) at or after
    /// `since`, from the history: what other processes must drop from their caches.
    async fn retired_since(&self, since: i64) -> Result<Vec<CertKey>, StoreError>;

    /// The identities that got a new certificate (by any process sharing the store) at or after
    /// `since`, from the events: what other processes must read again and tell their watchers.
    async fn stored_since(&self, since: i64) -> Result<Vec<CertKey>, StoreError>;

    /// Writes `events` on their own (what a scan noticed), each once: an id already written is
    /// skipped.
    async fn record_events(&self, events: &[NewEvent]) -> Result<(), StoreError>;

    /// The certificates due for renewal at `now` and not expired, unrevoked, at most `limit`,
    /// earliest expiry first: what the expiring scan judges.
    async fn expiring_candidates(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<ExpiryCandidate>, StoreError>;

    /// Notes that `key`'s certificate `serial` crossed the threshold that leaves `left`
    /// seconds, with `event`, in one transaction; false when that (or a later) threshold was
    /// already noted, or the certificate changed: then nothing is written.
    async fn note_expiring(
        &self,
        key: &CertKey,
        serial: &str,
        left: i64,
        event: &NewEvent,
    ) -> Result<bool, StoreError>;

    /// Credentials whose last delivery of an identity is an earlier serial than the current
    /// certificate, stored at or before `renewed_before`, not yet noted stale for it; at most
    /// `limit`.
    async fn stale_candidates(
        &self,
        renewed_before: i64,
        limit: u32,
    ) -> Result<Vec<StaleCandidate>, StoreError>;

    /// Notes that `principal` was told it is stale for `key`'s `serial`, with `event`, in one
    /// transaction; false when it already was.
    async fn note_stale(
        &self,
        key: &CertKey,
        principal: &str,
        serial: &str,
        event: &NewEvent,
    ) -> Result<bool, StoreError>;

    /// Claims for `claimer` until `until` up to `limit` notifications due at `now` and claimed
    /// by no live process, each the earliest pending one of its identity on its channel (so
    /// receivers get one certificate's events in order); returns them, oldest first.
    async fn claim_notifications(
        &self,
        claimer: &str,
        now: i64,
        until: i64,
        limit: u32,
    ) -> Result<Vec<PendingNotification>, StoreError>;

    /// Records one attempt of a claimed notification and its outcome, in one transaction.
    async fn finish_notification(
        &self,
        notification: &PendingNotification,
        claimer: &str,
        outcome: NotificationOutcome,
        attempt: &NotificationAttempt,
    ) -> Result<(), StoreError>;

    /// `key`'s events, newest first, at most `limit`, with their notifications.
    async fn events(&self, key: &CertKey, limit: u32) -> Result<Vec<EventRecord>, StoreError>;

    /// The latest events of every identity, newest first, at most `limit`; with `troubled`,
    /// only those with a notification given up or failed at least once.
    async fn recent_events(
        &self,
        limit: u32,
        troubled: bool,
    ) -> Result<Vec<EventRecord>, StoreError>;

    /// Deletes the events from before `before` whose notifications are all finished, with
    /// them; returns how many events.
    async fn prune_events(&self, before: i64) -> Result<u64, StoreError>;

    /// How many notifications are pending.
    async fn pending_notifications(&self) -> Result<u64, StoreError>;

    /// Up to `limit` unrevoked certificates not yet due at `now` whose renewal window is to be
    /// asked again, the longest waiting first.
    async fn ari_checks_due(&self, now: i64, limit: u32) -> Result<Vec<AriCandidate>, StoreError>;

    /// When to ask again for `key`'s certificate `serial` (a renewed one has its own time).
    async fn set_ari_next_check(
        &self,
        key: &CertKey,
        serial: &str,
        at: i64,
    ) -> Result<(), StoreError>;

    /// Records one use of `directory` at `at` counted in each `(dimension, subject)` (an order,
    /// or a failed authorization), all in one transaction: what the CA limits count
    /// (`service/limits.rs`).
    async fn record_ca_usage(
        &self,
        directory: &str,
        at: i64,
        renewal: bool,
        counted: &[(UsageDimension, &str)],
    ) -> Result<(), StoreError>;

    /// What `directory` saw of `subject` in `dimension` after `since`.
    async fn ca_usage(
        &self,
        directory: &str,
        dimension: UsageDimension,
        subject: &str,
        since: i64,
    ) -> Result<Usage, StoreError>;

    /// Deletes the uses recorded before `before` (older than the longest window); returns how
    /// many rows.
    async fn prune_ca_usage(&self, before: i64) -> Result<u64, StoreError>;
}

/// One dimension the CA limits count a use in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageDimension {
    /// Orders of the account (the directory itself; the subject is empty).
    Account,
    /// Orders holding a name under one registered domain (the subject).
    Domain,
    /// Orders for one exact name set (the subject is its key).
    NameSet,
    /// Orders asked for by one credential (the subject is `method:name`).
    Credential,
    /// Failed authorizations of one name (the subject).
    FailedValidation,
}

impl UsageDimension {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Domain => "domain",
            Self::NameSet => "set",
            Self::Credential => "credential",
            Self::FailedValidation => "failed",
        }
    }
}

/// What one dimension counted in a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Every use counted.
    pub total: u64,
    /// The uses by renewals.
    pub renewals: u64,
    /// When the oldest use counted happened, Unix seconds.
    pub oldest: Option<i64>,
    /// When the oldest use by a new certificate (not a renewal) happened.
    pub oldest_new: Option<i64>,
}

/// One issuance attempt, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// What started it: `request`, `renewal`, `forced` or `resume`.
    pub trigger: String,
    /// `success`, or the API error code of the failure.
    pub outcome: String,
    /// The failure's message.
    pub message: Option<String>,
    /// The serial issued, on success.
    pub serial: Option<String>,
    /// When it started, Unix seconds.
    pub started_at: i64,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
}

/// The last serial one credential received of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `method:name`.
    pub principal: String,
    /// The serial it received.
    pub serial: String,
    /// When, Unix seconds (the first fetch of that serial, then at most hourly).
    pub at: i64,
}

/// Where an inventory page ends: the last entry's expiry (`None` for an identity that has a
/// failure but no certificate yet: those come first) and identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryCursor {
    /// Its `notAfter`.
    pub not_after: Option<i64>,
    /// Its names as stored (sorted, comma-joined).
    pub names: String,
    /// Its key type.
    pub key_type: String,
}

/// The certificate an inventory entry holds, without its PEMs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// Its serial, lowercase hex.
    pub serial: String,
    /// Validity start, Unix seconds.
    pub not_before: i64,
    /// Validity end, Unix seconds.
    pub not_after: i64,
    /// When renewal starts, Unix seconds.
    pub renew_after: i64,
    /// When certfleet stored it, Unix seconds.
    pub issued_at: i64,
    /// The ACME directory that issued it (`None`: the primary, before fallbacks existed).
    pub ca: Option<String>,
}

/// One identity as the inventory shows it: its certificate (none when every attempt so far
/// failed), its failure, whether an order runs, its revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryEntry {
    /// The identity.
    pub key: CertKey,
    /// The current certificate.
    pub cert: Option<CertSummary>,
    /// The failure it is backing off from, if any.
    pub failure: Option<Failure>,
    /// When that failure happened (its attempt's start), if the history has it.
    pub failed_at: Option<i64>,
    /// Whether an order for it is in progress.
    pub ordering: bool,
    /// When it was revoked, and why (an RFC 5280 reason name).
    pub revoked: Option<(i64, String)>,
}

impl InventoryEntry {
    /// The entry of an identity that is not managed (deleted): nothing but its key.
    pub fn unmanaged(key: CertKey) -> Self {
        Self {
            key,
            cert: None,
            failure: None,
            failed_at: None,
            ordering: false,
            revoked: None,
        }
    }
}

impl InventoryEntry {
    /// Where a page ending with this entry continues.
    pub fn cursor(&self) -> InventoryCursor {
        InventoryCursor {
            not_after: self.cert.as_ref().map(|c| c.not_after),
            names: self.key.names.key(),
            key_type: self.key.variant().into_owned(),
        }
    }
}

/// An order in progress, as persisted.
#[derive(Clone)]
pub struct OrderRecord {
    /// The order's URL at the CA, once the CA has answered.
    pub url: Option<String>,
    /// Whether finalize was (or was about to be) sent: the CA may have issued.
    pub finalizing: bool,
    /// The certificate's private key (PEM), once generated; stored before finalize. Always
    /// `None` for a client's key.
    pub key_pem: Option<String>,
    /// When the order was begun, Unix seconds.
    pub started_at: i64,
}

impl fmt::Debug for OrderRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderRecord")
            .field("url", &self.url)
            .field("finalizing", &self.finalizing)
            .field("has_key", &self.key_pem.is_some())
            .field("started_at", &self.started_at)
            .finish()
    }
}

/// The CSR kept for a client-held key's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCsrRecord {
    /// The client's PKCS #10 request, PEM.
    pub csr_pem: String,
    /// The identity of the same names this key rotates out, until that one is retired.
    pub replaces: Option<KeySpec>,
}

/// A challenge response recorded for an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedRecord {
    /// `http-01` or `dns-01`.
    pub challenge_type: String,
    /// The name being validated.
    pub name: String,
    /// The solver's handle.
    pub handle: String,
}

/// The last failure of an identity and the back-off it earned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Consecutive failures.
    pub count: u32,
    /// No new order before this Unix time.
    pub next_attempt: i64,
    /// What kind of failure the last one was.
    pub kind: FailureKind,
    /// Its message.
    pub message: String,
}

/// Opens the store `config` names, with private keys sealed by `storage.encryptionKey` (or, on
/// SQLite without one, by a key generated into a 0600 file beside the database).
pub async fn open(config: &StorageConfig) -> Result<Arc<dyn Store>, StoreError> {
    let store = connect(&config.database, sealer(config)?).await?;
    let resealed = store.reseal().await?;
    if resealed > 0 {
        tracing::info!(
            rows = resealed,
            "re-encrypted private keys with the current storage key"
        );
    }
    Ok(store)
}

/// Connects to `database` and applies pending migrations, sealing private keys with `sealer`.
/// Values sealed with an older key stay so until [`Store::reseal`] (which [`open`] calls).
pub async fn connect(
    database: &Database,
    sealer: seal::Sealer,
) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match database {
        Database::Sqlite(config) => {
            let db = sqlite::SqliteBackend::open(config).await?;
            Arc::new(sql::SqlStore::new(db, sealer))
        }
        Database::Postgres(config) => {
            let db = postgres::PgBackend::open(config).await?;
            Arc::new(sql::SqlStore::new(db, sealer))
        }
    })
}

/// The sealer of `storage.encryptionKey`, or of the key file a SQLite database keeps beside it.
fn sealer(config: &StorageConfig) -> Result<seal::Sealer, StoreError> {
    let seal = |key: &EncryptionKey| {
        seal::Sealer::new(key, &config.previous_encryption_keys)
            .map_err(|e| StoreError::new("load encryption keys", e))
    };
    if let Some(key) = &config.encryption_key {
        return seal(key);
    }
    // The generated key file is SQLite's alone: replicas on PostgreSQL must share one key, and
    // the config refuses PostgreSQL without one.
    let file = match &config.database {
        Database::Sqlite(SqliteConfig {
            file: Some(file), ..
        }) => file,
        Database::Sqlite(_) => {
            return Err(StoreError::new(
                "encryption key",
                "an in-memory database needs storage.encryptionKey",
            ));
        }
        Database::Postgres(_) => {
            return Err(StoreError::new(
                "encryption key",
                "a PostgreSQL database needs storage.encryptionKey, the same on every replica",
            ));
        }
    };
    let mut path = file.as_os_str().to_owned();
    path.push(".key");
    let path = std::path::PathBuf::from(path);
    let (text, created) = seal::load_or_create_key_file(&path)
        .map_err(|e| StoreError::new("encryption key file", e))?;
    if created {
        tracing::warn!(
            path = %path.display(),
            "generated a storage encryption key for private keys at rest; back it up with the database, \
             or set storage.encryptionKey"
        );
    }
    let origin = path.display().to_string();
    let key = EncryptionKey::parse(&origin, &text).ok_or_else(|| {
        StoreError::new(
            "encryption key file",
            seal::SealError::BadKey(origin.clone()),
        )
    })?;
    seal(&key)
}
