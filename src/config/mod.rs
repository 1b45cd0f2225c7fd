//! Typed configuration, parsed once: the YAML file, `CERTFLEET_*` overrides, `*File` secrets.
//!
//! Loading is a pipeline, one stage per file:
//! 1. `tree.rs`: YAML text to a generic tree, then environment overrides applied to that tree;
//! 2. `de.rs`: the tree into the raw serde structs of `raw.rs`, errors naming the key path;
//! 3. `resolve.rs` (with `acme.rs`, `psk.rs`, `jwt.rs` and `akash.rs`): defaults, secret files read, values parsed into types and
//!    checked, every problem collected, so one run reports them all.
//!
//! Everything past this module holds a [`Config`]: no code elsewhere parses a config string.

mod acme;
mod akash;
mod de;
mod dns01;
mod error;
mod jwt;
mod log;
mod psk;
mod raw;
mod resolve;
mod secret;
mod tls;
mod tree;

use std::{
    fmt::Display,
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Serialize, Serializer};

use crate::domain::{DomainPattern, KeyType};
use crate::util::duration::format_duration;

pub use self::{
    akash::{AkashConfig, AkashKeySource, AkashPrincipal},
    dns01::{Dns01Entry, DnsProviderConfig, TsigAlgorithm},
    error::{ConfigError, Problem},
    jwt::JwtConfig,
    log::{LogConfig, LogFormat},
    secret::Secret,
    tls::{TlsAcmeConfig, TlsConfig},
};

/// The whole configuration, with defaults applied and every value checked.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// `server`: the API listener.
    pub server: ServerConfig,
    /// `storage`: where certificates and state are kept.
    pub storage: StorageConfig,
    /// `acme`: the CA and the account.
    pub acme: AcmeConfig,
    /// `challenges`: how the CA's validations are answered.
    pub challenges: ChallengesConfig,
    /// `auth`: who may ask for which certificates.
    pub auth: AuthConfig,
    /// `log`: how log lines are written.
    pub log: LogConfig,
}

/// `server`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerConfig {
    /// `server.listen`: the API listener's address (default `0.0.0.0:8443`).
    #[serde(serialize_with = "as_display")]
    pub listen: SocketAddr,
    /// `server.metricsListen`: where `GET /metrics` is served (default `127.0.0.1:9090`);
    /// `None` when set to `""`, which turns the listener off.
    #[serde(serialize_with = "as_optional_listen")]
    pub metrics_listen: Option<SocketAddr>,
    /// `server.issueWait`: how long a request waits for an issuance before answering 202
    /// (default 60s; more than 0 and at most 10m).
    #[serde(serialize_with = "as_duration")]
    pub issue_wait: Duration,
    /// `server.tls`: certfleet's own certificate; `None` serves plain HTTP (warned at start).
    pub tls: Option<TlsConfig>,
}

/// `storage`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageConfig {
    /// `storage.url` (or `storage.urlFile`): the database URL, a secret because it may carry a
    /// password: `sqlite:...` (default `sqlite://certfleet.db`), or `postgres://` /
    /// `postgresql://` for a database shared by replicas (docs/postgresql.md).
    pub url: Secret,
    /// `storage.encryptionKey` (or `encryptionKeyFile`): 32 bytes, base64, sealing private keys
    /// at rest. Absent on SQLite: generated into a 0600 file beside the database. Always set on
    /// PostgreSQL (a config error otherwise): every replica seals and opens with the same key.
    pub encryption_key: Option<Secret>,
    /// `storage.previousEncryptionKeys`: keys that still open old values, never used to write.
    pub previous_encryption_keys: Vec<Secret>,
    /// `storage.maxConnections`: PostgreSQL connections per process (default 10).
    pub max_connections: u32,
    /// `storage.connectTimeout`: how long to wait for a PostgreSQL connection (default 10s).
    #[serde(serialize_with = "as_duration")]
    pub connect_timeout: Duration,
    /// `storage.caCertificates`: a PEM file of the CA certificates that sign the PostgreSQL
    /// server's certificate (a private CA); implies `sslmode=verify-full` when the URL names no
    /// `sslmode`. Checked to exist and to hold at least one certificate.
    #[serde(serialize_with = "as_optional_path")]
    pub ca_certificates: Option<PathBuf>,
    /// `storage.leaseTtl`: how long an issuance lease lasts unrenewed, so how soon another
    /// replica takes over the work of one that died (default 60s, 2s to 10m).
    #[serde(serialize_with = "as_duration")]
    pub lease_ttl: Duration,
}

/// `acme`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcmeConfig {
    /// `acme.directoryUrl`: an `https://` URL, or `http://` for a loopback host (a local Pebble).
    pub directory_url: String,
    /// `acme.email`: the account contact, a bare address (any `mailto:` prefix removed).
    pub email: Option<String>,
    /// `acme.caCertificates`: a PEM file of roots added to the system's for the CA's HTTPS;
    /// checked to exist and to hold at least one certificate.
    #[serde(serialize_with = "as_optional_path")]
    pub ca_certificates: Option<PathBuf>,
    /// `acme.eab`: External Account Binding (RFC 8555 section 7.3.4).
    pub eab: Option<EabConfig>,
    /// `acme.keyType`: the key type of certificates whose request names none
    /// (default `ecdsa-p256`).
    #[serde(serialize_with = "as_key_type")]
    pub key_type: KeyType,
    /// `acme.profile`: an ACME profile name, checked against the directory later.
    pub profile: Option<String>,
}

/// `acme.eab`: the key ID and HMAC key a CA such as ZeroSSL or Google Trust Services issues.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EabConfig {
    /// `acme.eab.kid`: the key ID.
    pub kid: String,
    /// `acme.eab.hmacKey` (or `hmacKeyFile`): known to decode to at least 16 bytes, and stored
    /// re-encoded as unpadded base64url whatever form the file used, so it decodes with
    /// `base64::engine::general_purpose::URL_SAFE_NO_PAD`.
    pub hmac_key: Secret,
}

/// `challenges`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChallengesConfig {
    /// `challenges.http01`.
    pub http01: Http01Config,
    /// `challenges.dns01`: DNS providers, the first whose zones match a name handles it.
    pub dns01: Vec<Dns01Entry>,
    /// `challenges.resolvers`: where DNS-01 propagation is checked; empty = the zone's
    /// authoritative servers.
    #[serde(serialize_with = "as_display_seq")]
    pub resolvers: Vec<SocketAddr>,
}

/// `challenges.http01`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Http01Config {
    /// `challenges.http01.listen`: where `/.well-known/acme-challenge/{token}` is served
    /// (default `0.0.0.0:80`).
    #[serde(serialize_with = "as_display")]
    pub listen: SocketAddr,
}

/// `auth`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthConfig {
    /// `auth.psk.key` (as a key named `default` for every domain) followed by `auth.psk.keys`.
    /// Names and keys are unique; empty when no PSK is configured.
    pub psk: Vec<PskKey>,
    /// `auth.jwt`: OIDC / OAuth 2.0 bearer tokens; `None` when not configured.
    pub jwt: Option<JwtConfig>,
    /// `auth.akash`: Akash provider-API tokens (AEP-64); `None` when not configured.
    pub akash: Option<AkashConfig>,
}

/// One pre-shared API key and the names it may request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PskKey {
    /// Who holds the key, for logs.
    pub name: String,
    /// The key clients send as `Authorization: APIKey <key>`.
    pub key: Secret,
    /// The patterns of names this key may request; `[DomainPattern::any()]` for every domain.
    #[serde(serialize_with = "as_display_seq")]
    pub domains: Vec<DomainPattern>,
}

/// A loaded configuration and the warnings to log at start (weak but accepted settings).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Human-readable warnings, one sentence each.
    pub warnings: Vec<String>,
}

impl Config {
    /// Loads the config file at `path` (or, with `None`, the defaults) and applies the
    /// `CERTFLEET_*` overrides found in `env` (the caller passes `std::env::vars()`).
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let Some(path) = path else {
            return Self::parse("", "<none>", env);
        };
        let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string(), env)
    }

    /// Loads a configuration from YAML text, as [`Config::load`] does from a file.
    pub fn from_yaml(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        Self::parse(text, "<text>", env)
    }

    /// The effective configuration as YAML, secrets shown as `<redacted>`: what
    /// `certfleet check-config` prints.
    pub fn to_redacted_yaml(&self) -> String {
        // These types serialize only strings, lists and mappings, which cannot fail; should the
        // serializer still refuse, a YAML comment says so rather than the process panicking.
        serde_saphyr::to_string(self)
            .unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
    }

    fn parse(
        text: &str,
        file: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let mut tree = tree::parse_yaml(text, file)?;
        let origins = tree::apply_env(&mut tree, env)?;
        let raw: raw::RawConfig = de::from_tree(&tree, &origins)?;
        resolve::resolve(raw, &origins)
    }
}

fn as_display<T: Display, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// A listener that may be off, printed as `""` then, which is also how it is turned off.
fn as_optional_listen<S: Serializer>(
    value: &Option<SocketAddr>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(address) => serializer.collect_str(address),
        None => serializer.serialize_str(""),
    }
}

fn as_duration<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_duration(*value))
}

fn as_key_type<S: Serializer>(value: &KeyType, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(value.as_str())
}

fn as_optional_path<S: Serializer>(
    value: &Option<PathBuf>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(path) => serializer.collect_str(&path.display()),
        None => serializer.serialize_none(),
    }
}

fn as_display_seq<'a, L, T, S>(value: &'a L, serializer: S) -> Result<S::Ok, S::Error>
where
    &'a L: IntoIterator<Item = &'a T>,
    T: Display + 'a,
    S: Serializer,
{
    serializer.collect_seq(value.into_iter().map(ToString::to_string))
}
