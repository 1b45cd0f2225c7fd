//! Typed configuration, parsed once: the YAML file, `CERTFLEET_*` overrides, `*File` secrets.
//!
//! Loading is a pipeline, one stage per file:
//! 1. `tree.rs`: YAML text to a generic tree, then environment overrides applied to that tree;
//! 2. `de.rs`: the tree into the raw serde structs of `raw.rs`, errors naming the key path;
//! 3. `resolve.rs`: one section file at a time (`server.rs`, `storage.rs`, `acme.rs`,
//!    `challenges.rs` with `dns01/`, `auth.rs` with `psk.rs`, `jwt.rs` and `akash.rs`,
//!    `log.rs`, `tls.rs`, `notifications.rs`), each defining its typed section and resolving
//!    it: defaults, secret files read, values parsed into types and checked, every problem
//!    collected in the `report.rs` `Report`, so one run reports them all.
//!
//! Each section file uses only `raw.rs`, `report.rs`, `print.rs` (how `check-config` prints
//! values), `secret.rs` and the sections it contains (`dns01/` also `de.rs`, to read each entry
//! once its provider is known); `resolve.rs` uses the sections. This module
//! is the bottom layer of certfleet: it uses `domain` and `util` and no subsystem, and everything
//! past it holds a [`Config`]: no code elsewhere parses a config string.

mod acme;
mod akash;
mod auth;
mod certificates;
mod challenges;
mod de;
mod dns01;
mod dns_persist;
mod error;
mod jwt;
mod limits;
mod log;
mod notifications;
mod print;
mod psk;
mod raw;
mod report;
mod resolve;
mod secret;
mod server;
mod storage;
mod tls;
mod tree;
mod watch;

use std::{fs, path::Path};

use serde::Serialize;

pub use self::{
    acme::{AcmeConfig, EabConfig, FallbackConfig},
    akash::{AkashConfig, AkashKeySource, AkashPrincipal},
    auth::AuthConfig,
    certificates::{CertificatesConfig, PrivateKeys},
    challenges::{ChallengesConfig, Http01Config, TlsAlpn01Config},
    dns_persist::{DnsPersistEntry, PersistUntil},
    dns01::{
        CloudflareConfig, Dns01Challenge, Dns01Entry, DnsProviderConfig, GcloudConfig,
        Rfc2136Config, ServiceAccountKey, ServiceAccountKeyError, TsigAlgorithm,
    },
    error::{ConfigError, Problem},
    jwt::JwtConfig,
    limits::{Limit, LimitsConfig},
    log::{LogConfig, LogFormat},
    notifications::{
        EmailConfig, ExpiryThreshold, NotificationsConfig, SmtpTls, WebhookConfig, WebhookFormat,
    },
    psk::PskKey,
    secret::Secret,
    server::{CertificateSeries, ServerConfig},
    storage::{Database, EncryptionKey, PostgresConfig, SqliteConfig, StorageConfig},
    tls::{TlsAcmeConfig, TlsConfig},
    watch::WatchConfig,
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
    /// `notifications`: where certfleet's events are sent (webhooks, email); nothing by default.
    pub notifications: NotificationsConfig,
    /// `certificates`: who holds private keys (CSR mode), and how many client keys a name set
    /// may have.
    pub certificates: CertificatesConfig,
    /// `limits`: the CA's limits certfleet keeps to before asking (Let's Encrypt's by default
    /// for its directories).
    pub limits: LimitsConfig,
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
    /// Whether TLS-ALPN-01 is answered by the API's own TLS listener (`challenges.tlsAlpn01.listen`
    /// is `server.listen`, with `server.tls`): then it opens no socket of its own.
    pub fn tls_alpn01_on_api_listener(&self) -> bool {
        self.server.tls.is_some()
            && self
                .challenges
                .tls_alpn01
                .as_ref()
                .is_some_and(|alpn| alpn.listen == self.server.listen)
    }

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
