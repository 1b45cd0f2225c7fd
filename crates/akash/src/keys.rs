//! Where the issuer's public key comes from: the chain, or the signature itself.
//!
//! - [`KeySource::Chain`] (the Akash reference): the account's key from the Cosmos auth module
//!   over REST, `GET {rest}/cosmos/auth/v1beta1/accounts/{address}` (`account.pub_key`, nested
//!   under `base_vesting_account.base_account` for vesting accounts, `base_account` for module
//!   accounts), falling back to the flattened `.../account_info/{address}` for account types it
//!   does not know. A key never changes once set, so a key found is kept for good: in memory
//!   and in a [`KeyCache`] that survives restarts (certfleet's store). Failures (network, 5xx,
//!   429) are retried with back-off within a lookup; after a failed or empty lookup the address
//!   is not asked again until its back-off ends (doubling, capped), so a flood of tokens cannot
//!   flood the chain. An outage never affects addresses already known.
//! - [`KeySource::Recover`]: the key recovered from the signature, each recovery id in turn,
//!   accepted only if its address is `iss`. No chain needed, and it works for wallets that never
//!   sent a transaction (whose key the chain does not know yet).
//!
//! Every key, from the chain or a cache, is accepted only if it derives to the address asked
//! for: a wrong or tampered REST answer can make a lookup fail, never make a forgery pass.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k256::ecdsa::VerifyingKey;
use serde_json::Value;

use crate::Rejection;
use crate::address::{Address, compressed};

/// The only key type that signs Akash tokens.
const SECP256K1_PUBKEY: &str = "/cosmos.crypto.secp256k1.PubKey";
/// An account document is a few hundred bytes; a vesting account's schedule a few KiB.
const MAX_BODY_BYTES: usize = 256 * 1024;
/// gRPC's `NotFound`, which the Cosmos REST gateway answers with HTTP 404.
const GRPC_NOT_FOUND: i64 = 5;
/// Addresses in back-off kept before expired ones are dropped.
const MAX_BACKOFF_ENTRIES: usize = 10_000;

/// Where public keys come from.
#[derive(Debug)]
// One per verifier, built once and never moved in a hot path: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum KeySource {
    /// From the chain, cached (see [`ChainKeys`]).
    Chain(ChainKeys),
    /// Recovered from each token's signature.
    Recover,
}

/// A persistent home for public keys found on chain (they never change once set).
///
/// A failing cache never fails a verification: a failed `load` is logged and the chain asked,
/// a failed `save` is logged and the key kept in memory.
#[async_trait]
pub trait KeyCache: Send + Sync + fmt::Debug {
    /// The stored 33-byte compressed key of `address`, if any.
    async fn load(&self, address: &Address) -> Result<Option<Vec<u8>>, KeyCacheError>;
    /// Stores the key of `address`.
    async fn save(&self, address: &Address, key: &[u8; 33]) -> Result<(), KeyCacheError>;
}

/// Why a [`KeyCache`] could not load or store a key: the implementation's own error (a
/// database's, say), shown as it is.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct KeyCacheError(Box<dyn std::error::Error + Send + Sync>);

impl KeyCacheError {
    /// Wraps the cache's own error (or a message: `&str` and `String` convert too).
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(source.into())
    }
}

/// No persistence: keys live only in the process's memory.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryOnly;

#[async_trait]
impl KeyCache for MemoryOnly {
    async fn load(&self, _address: &Address) -> Result<Option<Vec<u8>>, KeyCacheError> {
        Ok(None)
    }

    async fn save(&self, _address: &Address, _key: &[u8; 33]) -> Result<(), KeyCacheError> {
        Ok(())
    }
}

/// How the chain is asked.
#[derive(Debug, Clone)]
pub struct ChainOptions {
    /// The Cosmos REST (LCD) endpoint, such as `https://api.akashnet.net`.
    pub rest_url: String,
    /// PEM roots added to the system's, for an endpoint behind a private CA.
    pub ca_certificates: Option<PathBuf>,
    /// Requests per lookup when the chain fails (network, 5xx, 429).
    pub attempts: u32,
    /// The pause before the first retry; doubled before each next one.
    pub first_retry: Duration,
    /// One request's time limit.
    pub timeout: Duration,
    /// After a failed or empty lookup, how long the address is not asked again; doubled after
    /// each further one, up to `max_backoff`.
    pub first_backoff: Duration,
    /// The longest back-off.
    pub max_backoff: Duration,
}

impl ChainOptions {
    /// The defaults for `rest_url`: 3 attempts 250 ms and 500 ms apart, 5 s per request, and
    /// back-off from 2 s to 1 min between lookups of an address that failed.
    pub fn new(rest_url: &str) -> Self {
        Self {
            rest_url: rest_url.trim_end_matches('/').to_owned(),
            ca_certificates: None,
            attempts: 3,
            first_retry: Duration::from_millis(250),
            timeout: Duration::from_secs(5),
            first_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Public keys from the chain, remembered in memory and in a [`KeyCache`].
pub struct ChainKeys {
    options: ChainOptions,
    http: reqwest::Client,
    cache: Arc<dyn KeyCache>,
    memory: RwLock<HashMap<Address, VerifyingKey>>,
    /// One lookup at a time per address: concurrent tokens of a new address share it.
    lookups: Mutex<HashMap<Address, Arc<tokio::sync::Mutex<()>>>>,
    backoff: Mutex<HashMap<Address, Backoff>>,
    requests: AtomicU64,
}

/// An address that failed recently: the failure, repeated until `until`.
#[derive(Debug, Clone)]
struct Backoff {
    failures: u32,
    until: Instant,
    rejection: Rejection,
}

/// What one REST answer said.
enum Fetched {
    Key(VerifyingKey),
    /// A definite answer without a usable key (401 for the token).
    NoKey(String),
    /// The account's type is not one whose key this code can find: ask `account_info`.
    UnknownShape(String),
    /// The chain could not answer (retried; 503 for the token).
    Failed(String),
}

impl fmt::Debug for ChainKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainKeys")
            .field("rest_url", &self.options.rest_url)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl ChainKeys {
    /// A key source asking `options.rest_url`, persisting keys in `cache`.
    pub fn new(options: ChainOptions, cache: Arc<dyn KeyCache>) -> Result<Self, ChainKeysError> {
        let mut builder = reqwest::Client::builder()
            // certfleet-akash/<version>: the chain's operators see which software asks.
            .user_agent(concat!(
                env!("CARGO_PKG_NAME"),
                "/",
                env!("CARGO_PKG_VERSION")
            ))
            .connect_timeout(options.timeout)
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &options.ca_certificates {
            let pem = std::fs::read(path).map_err(|source| ChainKeysError::ReadCaCertificates {
                path: path.clone(),
                source,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                ChainKeysError::CaCertificatesNotPem {
                    path: path.clone(),
                    source,
                }
            })?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(ChainKeysError::Client)?;
        Ok(Self {
            options,
            http,
            cache,
            memory: RwLock::new(HashMap::new()),
            lookups: Mutex::new(HashMap::new()),
            backoff: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
        })
    }

    /// How many REST requests this source has sent (for tests and logs).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The public key of `address`: from memory, the cache, or the chain.
    pub async fn key(&self, address: &Address) -> Result<VerifyingKey, Rejection> {
        if let Some(key) = self.remembered(address) {
            return Ok(key);
        }
        let lock = self.lookup_lock(address);
        let result = {
            let _one_at_a_time = lock.lock().await;
            // Another task may have found it while this one waited.
            match self.remembered(address) {
                Some(key) => Ok(key),
                None => self.look_up(address).await,
            }
        };
        drop(lock);
        let mut lookups = self.lookups.lock().unwrap_or_else(PoisonError::into_inner);
        if lookups
            .get(address)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            lookups.remove(address);
        }
        result
    }

    fn remembered(&self, address: &Address) -> Option<VerifyingKey> {
        self.memory
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(address)
            .copied()
    }

    fn remember(&self, address: &Address, key: VerifyingKey) {
        self.memory
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(address.clone(), key);
    }

    fn lookup_lock(&self, address: &Address) -> Arc<tokio::sync::Mutex<()>> {
        self.lookups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(address.clone())
            .or_default()
            .clone()
    }

    /// The cache, then (unless backing off) the chain.
    async fn look_up(&self, address: &Address) -> Result<VerifyingKey, Rejection> {
        match self.cache.load(address).await {
            Ok(Some(bytes)) => match key_of(&bytes, address) {
                Some(key) => {
                    self.remember(address, key);
                    return Ok(key);
                }
                None => tracing::warn!(
                    %address,
                    "the stored public key does not derive to its address; asking the chain"
                ),
            },
            Ok(None) => {}
            Err(error) => tracing::warn!(
                %address,
                %error,
                "cannot read the stored public keys; asking the chain"
            ),
        }
        if let Some(rejection) = self.backing_off(address) {
            return Err(rejection);
        }
        match self.fetch(address).await {
            Ok(key) => {
                if let Err(error) = self.cache.save(address, &compressed(&key)).await {
                    tracing::warn!(%address, %error, "cannot store the public key; kept in memory");
                }
                self.remember(address, key);
                self.backoff
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(address);
                tracing::debug!(%address, "public key found on chain");
                Ok(key)
            }
            Err(rejection) => {
                self.back_off(address, &rejection);
                Err(rejection)
            }
        }
    }

    fn backing_off(&self, address: &Address) -> Option<Rejection> {
        let backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = backoff.get(address)?;
        let left = entry.until.checked_duration_since(Instant::now())?;
        let again = format!("; the chain is asked again in {}s", left.as_secs().max(1));
        Some(match &entry.rejection {
            Rejection::Invalid(m) => Rejection::Invalid(format!("{m}{again}")),
            Rejection::Unavailable(m) => Rejection::Unavailable(format!("{m}{again}")),
        })
    }

    fn back_off(&self, address: &Address, rejection: &Rejection) {
        let mut backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        if backoff.len() >= MAX_BACKOFF_ENTRIES {
            // A gateway sees arbitrary addresses: forget those whose back-off is over.
            let now = Instant::now();
            backoff.retain(|_, b| b.until > now);
        }
        let failures = backoff.get(address).map_or(0, |b| b.failures) + 1;
        let wait = self
            .options
            .first_backoff
            .saturating_mul(1 << (failures - 1).min(16))
            .min(self.options.max_backoff);
        backoff.insert(
            address.clone(),
            Backoff {
                failures,
                until: Instant::now() + wait,
                rejection: rejection.clone(),
            },
        );
    }

    /// Asks the chain, retrying failures with back-off.
    async fn fetch(&self, address: &Address) -> Result<VerifyingKey, Rejection> {
        let mut pause = self.options.first_retry;
        let mut attempt = 1;
        loop {
            let fetched = match self.fetch_once(address, "accounts").await {
                Fetched::UnknownShape(kind) => {
                    let fetched = self.fetch_once(address, "account_info").await;
                    if let Fetched::UnknownShape(_) = fetched {
                        Fetched::Failed(format!(
                            "the chain's answer for {address} has no pub_key where the Cosmos \
                             SDK puts it (account type {kind})"
                        ))
                    } else {
                        fetched
                    }
                }
                other => other,
            };
            let reason = match fetched {
                Fetched::Key(key) => return Ok(key),
                Fetched::NoKey(reason) => return Err(Rejection::Invalid(reason)),
                Fetched::Failed(reason) | Fetched::UnknownShape(reason) => reason,
            };
            if attempt >= self.options.attempts {
                tracing::warn!(%address, reason, "the chain cannot tell the public key");
                return Err(Rejection::Unavailable(format!(
                    "cannot look up the public key of {address} on chain: {reason}"
                )));
            }
            tracing::debug!(%address, attempt, reason, "chain lookup failed; retrying");
            tokio::time::sleep(pause).await;
            pause = pause.saturating_mul(2);
            attempt += 1;
        }
    }

    /// One `GET {rest}/cosmos/auth/v1beta1/{endpoint}/{address}`.
    async fn fetch_once(&self, address: &Address, endpoint: &str) -> Fetched {
        let url = format!(
            "{}/cosmos/auth/v1beta1/{endpoint}/{address}",
            self.options.rest_url
        );
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = match self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) => return Fetched::Failed(format!("GET {url}: {}", e.without_url())),
        };
        let status = response.status();
        let body = match read_json(response).await {
            Ok(body) => body,
            Err(e) if status.is_success() => return Fetched::Failed(format!("GET {url}: {e}")),
            Err(_) => Value::Null,
        };
        if status == reqwest::StatusCode::NOT_FOUND {
            return match body.get("code").and_then(Value::as_i64) {
                Some(GRPC_NOT_FOUND) => Fetched::NoKey(format!(
                    "{address} has no account on chain (it never received tokens), so the chain \
                     knows no public key for it; use keySource recover, or fund the wallet and \
                     send a transaction from it"
                )),
                _ => Fetched::Failed(format!(
                    "GET {url}: HTTP 404 without a Cosmos error: is the REST URL a Cosmos REST \
                     (LCD) endpoint?"
                )),
            };
        }
        if status == reqwest::StatusCode::BAD_REQUEST {
            return Fetched::NoKey(format!("the chain refuses the address {address}"));
        }
        if !status.is_success() {
            return Fetched::Failed(format!("GET {url}: HTTP {status}"));
        }
        let (account, pub_key) = match endpoint {
            "account_info" => {
                let info = body.get("info").unwrap_or(&Value::Null);
                (info, info.get("pub_key"))
            }
            _ => {
                let account = body.get("account").unwrap_or(&Value::Null);
                let pub_key = [
                    "/pub_key",
                    "/base_account/pub_key",
                    "/base_vesting_account/base_account/pub_key",
                ]
                .iter()
                .find_map(|path| account.pointer(path));
                (account, pub_key)
            }
        };
        let Some(pub_key) = pub_key else {
            let kind = account
                .get("@type")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            return Fetched::UnknownShape(kind.to_owned());
        };
        decode_pub_key(pub_key, address)
    }
}

/// A `pub_key` value of an account: `null` (never signed anything), or
/// `{"@type": "/cosmos.crypto.secp256k1.PubKey", "key": "<base64 of 33 bytes>"}`.
fn decode_pub_key(pub_key: &Value, address: &Address) -> Fetched {
    if pub_key.is_null() {
        return Fetched::NoKey(format!(
            "{address} has no public key on chain yet: the wallet has never sent a transaction; \
             send one from it, or use keySource recover"
        ));
    }
    let kind = pub_key.get("@type").and_then(Value::as_str).unwrap_or("");
    if kind != SECP256K1_PUBKEY {
        return Fetched::NoKey(format!(
            "the key of {address} on chain is a {kind} key, not secp256k1: it cannot sign \
             Akash tokens"
        ));
    }
    let Some(bytes) = pub_key
        .get("key")
        .and_then(Value::as_str)
        .and_then(|key| STANDARD.decode(key).ok())
    else {
        return Fetched::Failed(format!("the chain's public key of {address} is not base64"));
    };
    match key_of(&bytes, address) {
        Some(key) => Fetched::Key(key),
        None => Fetched::Failed(format!(
            "the chain's public key for {address} does not derive to that address: the REST \
             endpoint is wrong or its answer was altered"
        )),
    }
}

/// A 33-byte compressed key, if it is a point on the curve whose address is `address`.
fn key_of(bytes: &[u8], address: &Address) -> Option<VerifyingKey> {
    let compressed: &[u8; 33] = bytes.try_into().ok()?;
    let key = VerifyingKey::from_sec1_bytes(compressed).ok()?;
    (Address::from_compressed_key(compressed) == *address).then_some(key)
}

/// A JSON body of at most [`MAX_BODY_BYTES`].
async fn read_json(mut response: reqwest::Response) -> Result<Value, BodyError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        // The URL is in the message already ("GET {url}: ..."), once.
        .map_err(|e| BodyError::Read(e.without_url()))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(BodyError::NotJson)
}

/// Why a REST answer's body could not be read.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("read the body: {0}")]
    Read(#[source] reqwest::Error),
    #[error("the body is larger than {max} bytes", max = MAX_BODY_BYTES)]
    TooLarge,
    #[error("the body is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
}

/// Why [`ChainKeys::new`] could not build its HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ChainKeysError {
    /// [`ChainOptions::ca_certificates`] cannot be read.
    #[error("caCertificates: cannot read {}: {source}", .path.display())]
    ReadCaCertificates {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// [`ChainOptions::ca_certificates`] holds no PEM certificates reqwest accepts.
    #[error("caCertificates: {} is not a PEM bundle: {source}", .path.display())]
    CaCertificatesNotPem {
        /// The file.
        path: PathBuf,
        /// Why.
        source: reqwest::Error,
    },
    /// The TLS backend refused the client's settings.
    #[error("build the HTTP client for the chain: {0}")]
    Client(#[source] reqwest::Error),
}
