//! DNS providers for DNS-01 (RFC 8555 section 8.4), in the shape of certmagic's libdns: a
//! provider only adds one TXT record in a zone (returning a handle that is stored) and deletes
//! exactly that record. Everything else is written once, above the providers:
//!
//! - [`zone`]: which zone a name is in (the entry's `zones`, an SOA walk, the provider's API);
//! - [`propagation`]: wait until every value is visible before the CA is told to validate;
//! - cleanup: `acme/dns01.rs` deletes by the stored handle, after success, failure or restart.
//!
//! Each provider is one file here taking its own settings struct from the config (one arm of
//! [`DnsProviderConfig`]); [`build`] makes the provider of each arm. docs/dns-providers.md lists
//! the steps of adding one.

pub mod cloudflare;
pub mod gcloud;
pub mod propagation;
pub mod rfc2136;
pub mod wire;
pub mod zone;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::wire::WireError;
use crate::config::{Dns01Entry, DnsProviderConfig};

/// One TXT record a provider adds or deletes: `fqdn` (no trailing dot, lowercase) in `zone`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxtRecord {
    /// The zone's apex, e.g. `example.com`.
    pub zone: String,
    /// The record's name, e.g. `_acme-challenge.www.example.com`.
    pub fqdn: String,
    /// The TXT value (for DNS-01, base64url of a SHA-256 digest: 43 characters).
    pub value: String,
}

/// A DNS provider: adds and deletes single TXT records through its own API.
///
/// Contract (checked for every provider by `tests/it/dns_conformance.rs`):
/// - `add_txt` adds one value and never touches other values of the same name (`example.com`
///   and `*.example.com` share `_acme-challenge.example.com`); adding a value that is already
///   there succeeds and returns a handle to it;
/// - `delete_txt` deletes exactly that value; already gone is success. With no handle (a crash
///   came between the add and storing its handle), the record is found by name and value;
/// - errors name the provider, the step and the provider's own message, never a credential.
#[async_trait]
pub trait DnsProvider: Send + Sync + fmt::Debug {
    /// The provider's name in messages (`cloudflare`, `gcloud`, `rfc2136`).
    fn name(&self) -> &'static str;

    /// Adds `record`; returns the provider's handle to it (plain JSON, stored).
    async fn add_txt(&self, record: &TxtRecord) -> Result<Value, DnsError>;

    /// Deletes `record` (the one `handle` names, when known). Already gone is success.
    async fn delete_txt(&self, record: &TxtRecord, handle: Option<&Value>) -> Result<(), DnsError>;

    /// The zone holding `fqdn` according to the provider's own API, if it has one.
    async fn find_zone(&self, _fqdn: &str) -> Result<Option<String>, DnsError> {
        Ok(None)
    }

    /// A server that is authoritative for the provider's zones and answers SOA queries (the
    /// RFC 2136 primary), used for zone discovery when `challenges.resolvers` is not set.
    fn authoritative_server(&self) -> Option<&str> {
        None
    }
}

/// A provider's failure: who, at which step, and why (the provider's own words, or the DNS or
/// HTTP error underneath). Never holds a credential.
#[derive(Debug, thiserror::Error)]
#[error("{provider}: {step}: {reason}")]
pub struct DnsError {
    /// `cloudflare`, `gcloud`, `rfc2136`, or `dns` for the shared steps.
    pub provider: String,
    /// What was being done: `create TXT record in zone example.com`.
    pub step: String,
    /// What went wrong (boxed: errors travel through every `Result` of the DNS path, which
    /// stay small this way).
    #[source]
    pub reason: Box<Reason>,
}

/// Why a provider's step failed.
#[derive(Debug, thiserror::Error)]
pub enum Reason {
    /// In the provider's words, or why its answer cannot be used: `403 9109 Invalid access
    /// token`, `the token sees no zone named example.com`.
    #[error("{0}")]
    Provider(String),
    /// A DNS exchange (the SOA walk, the propagation check).
    #[error(transparent)]
    Wire(#[from] WireError),
    /// An RFC 2136 update, or its TSIG key.
    #[error(transparent)]
    Rfc2136(#[from] rfc2136::Rfc2136Error),
    /// The HTTP client of an API-based provider could not be built.
    #[error(transparent)]
    HttpClient(reqwest::Error),
}

impl DnsError {
    /// A failure of `provider` at `step`, in the provider's own words.
    pub fn new(provider: &str, step: impl Into<String>, message: impl Into<String>) -> Self {
        Self::at(provider, step, Reason::Provider(message.into()))
    }

    /// A failure of `provider` at `step` for `reason` (a [`WireError`], an
    /// [`rfc2136::Rfc2136Error`], ...).
    pub fn at(provider: &str, step: impl Into<String>, reason: impl Into<Reason>) -> Self {
        Self {
            provider: provider.to_owned(),
            step: step.into(),
            reason: Box::new(reason.into()),
        }
    }
}

/// Builds the provider of one `challenges.dns01` entry: the registry of providers.
pub fn build(entry: &Dns01Entry) -> Result<Arc<dyn DnsProvider>, DnsError> {
    let (ttl, timeout) = (entry.ttl, entry.timeout);
    Ok(match &entry.provider {
        DnsProviderConfig::Cloudflare(config) => {
            Arc::new(cloudflare::Cloudflare::new(config, ttl, timeout)?)
        }
        DnsProviderConfig::Gcloud(config) => {
            Arc::new(gcloud::GoogleCloudDns::new(config, ttl, timeout)?)
        }
        DnsProviderConfig::Rfc2136(config) => {
            Arc::new(rfc2136::Rfc2136::new(config, ttl, timeout)?)
        }
    })
}

/// The HTTP client of the API-based providers: rustls on the system's roots, bounded in time.
pub(crate) fn http_client(provider: &str, timeout: Duration) -> Result<reqwest::Client, DnsError> {
    reqwest::Client::builder()
        .user_agent(concat!("certfleet/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| DnsError::at(provider, "build the HTTP client", Reason::HttpClient(e)))
}

/// A transport failure in words, without the URL's query (which never holds a secret here,
/// but keeps messages short).
pub(crate) fn transport_error(err: reqwest::Error) -> String {
    if err.is_timeout() {
        "the API did not answer in time".to_owned()
    } else if err.is_connect() {
        "cannot connect to the API".to_owned()
    } else {
        let err = err.without_url();
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        text
    }
}

/// `url` with `query` appended, form-encoded.
pub(crate) fn with_query(url: &str, query: &[(&str, &str)]) -> String {
    if query.is_empty() {
        return url.to_owned();
    }
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(query)
        .finish();
    format!("{url}?{encoded}")
}
