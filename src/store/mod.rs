//! The `Store` seam: everything certfleet persists, as the methods the app needs.
//!
//! Callers hold an `Arc<dyn Store>`; [`sqlite::SqliteStore`] is the default backend, and a
//! PostgreSQL backend implements the same trait without touching callers. Every method is one
//! short statement or transaction, so a store is safe to share between tasks.

pub mod sqlite;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;

use crate::domain::{CertKey, KeyType, NameSet};

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
    /// The private key algorithm.
    pub key_type: KeyType,
    /// The leaf followed by its chain, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM. Redacted in `Debug`.
    pub key_pem: String,
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
}

impl StoredCert {
    /// The identity this certificate answers for.
    pub fn key(&self) -> CertKey {
        CertKey {
            names: self.names.clone(),
            key_type: self.key_type,
        }
    }
}

impl fmt::Debug for StoredCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredCert")
            .field("names", &self.names.key())
            .field("key_type", &self.key_type)
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

    /// Stores a certificate, replacing the previous one of the same identity.
    async fn save_certificate(&self, cert: &StoredCert) -> Result<(), StoreError>;

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
}

/// Opens the store named by a `storage.url`.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
}
