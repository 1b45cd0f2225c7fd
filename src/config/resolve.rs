//! The last stage: raw values into the typed [`Config`], with defaults, secret files, checks.
//!
//! Every check reports into a [`Report`] and carries on, so one run lists every problem. Each
//! function returns `Err(Reported)` once its problem is recorded; the whole config is built only
//! when nothing was reported.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use super::{
    AuthConfig, ChallengesConfig, Config, Http01Config, Loaded, ServerConfig, StorageConfig, acme,
    akash,
    error::{ConfigError, Problem},
    jwt, psk,
    raw::{RawAuth, RawChallenges, RawConfig, RawServer, RawStorage},
    secret::Secret,
    tree::Origins,
};

const DEFAULT_API_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8443);
/// Loopback: metrics are for the operator's Prometheus, which reaches them through a deliberate
/// `0.0.0.0:9090` (containers) or a local agent.
const DEFAULT_METRICS_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9090);
const DEFAULT_HTTP01_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 80);
const DEFAULT_ISSUE_WAIT: Duration = Duration::from_secs(60);
/// Longer than this, most HTTP clients and proxies give up before the 202 arrives.
const MAX_ISSUE_WAIT: Duration = Duration::from_secs(600);
const DEFAULT_DATABASE_URL: &str = "sqlite://certfleet.db";
const DEFAULT_MAX_CONNECTIONS: u32 = 10;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the typed config, or every problem found.
pub(super) fn resolve(raw: RawConfig, origins: &Origins) -> Result<Loaded, ConfigError> {
    let mut report = Report {
        origins,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let server = server(raw.server.unwrap_or_default(), &mut report);
    let storage = storage(raw.storage.unwrap_or_default(), &mut report);
    let acme = acme::acme(raw.acme.unwrap_or_default(), &mut report);
    let challenges = challenges(raw.challenges.unwrap_or_default(), &mut report);
    let auth = auth(raw.auth.unwrap_or_default(), &mut report);
    let log = super::log::log(raw.log.unwrap_or_default(), &mut report);
    match (server, storage, acme, challenges, auth, log) {
        (Ok(server), Ok(storage), Ok(acme), Ok(challenges), Ok(auth), Ok(log))
            if report.problems.is_empty() =>
        {
            Ok(Loaded {
                config: Config {
                    server,
                    storage,
                    acme,
                    challenges,
                    auth,
                    log,
                },
                warnings: report.warnings,
            })
        }
        _ => Err(ConfigError::Invalid(report.problems)),
    }
}

/// Proof that a problem was recorded in the [`Report`].
#[derive(Debug)]
pub(super) struct Reported(());

/// The problems and warnings found so far.
pub(super) struct Report<'a> {
    origins: &'a Origins,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

/// A secret read from its key or from its `File` key.
pub(super) struct SecretValue {
    pub secret: Secret,
    /// The key it came from (`auth.psk.key` or `auth.psk.keyFile`), for messages about it.
    pub key: String,
}

impl Report<'_> {
    /// Records a problem with `key`; `message` says what is wrong and how to fix it.
    pub(super) fn error(&mut self, key: &str, message: impl Into<String>) -> Reported {
        self.problems.push(Problem {
            key: key.to_owned(),
            env_var: self.origins.var_for(key).map(str::to_owned),
            message: message.into(),
        });
        Reported(())
    }

    /// Records a warning to log at start.
    pub(super) fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }

    /// Reads the secret `key`, given inline or as a path in `keyFile` (Kubernetes and Docker
    /// secrets), with one trailing newline removed from a file.
    pub(super) fn secret(
        &mut self,
        key: &str,
        value: Option<String>,
        file: Option<String>,
    ) -> Result<Option<SecretValue>, Reported> {
        let file_key = format!("{key}File");
        match (value, non_empty(file)) {
            (Some(_), Some(_)) => Err(self.error(
                key,
                format!("is set together with {file_key}; keep only one of the two"),
            )),
            (Some(value), None) => Ok(Some(SecretValue {
                secret: Secret::new(value),
                key: key.to_owned(),
            })),
            (None, Some(path)) => {
                let text = fs::read_to_string(&path).map_err(|e| {
                    self.error(
                        &file_key,
                        format!(
                            "cannot read {path}: {e}; point it at a readable file that holds \
                             only the secret"
                        ),
                    )
                })?;
                let trimmed = text
                    .strip_suffix("\r\n")
                    .or_else(|| text.strip_suffix('\n'))
                    .unwrap_or(&text);
                Ok(Some(SecretValue {
                    secret: Secret::new(trimmed.to_owned()),
                    key: file_key,
                }))
            }
            (None, None) => Ok(None),
        }
    }
}

/// An optional value where an empty string means "not set", as an empty environment variable
/// conventionally does.
pub(super) fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn server(raw: RawServer, report: &mut Report<'_>) -> Result<ServerConfig, Reported> {
    let listen = listen_addr(raw.listen, "server.listen", DEFAULT_API_LISTEN, report);
    // An empty value turns the metrics listener off (SPEC), unlike other keys where "" = unset.
    let metrics_listen = match raw.metrics_listen.as_deref() {
        Some("") => Ok(None),
        _ => listen_addr(
            raw.metrics_listen,
            "server.metricsListen",
            DEFAULT_METRICS_LISTEN,
            report,
        )
        .map(Some),
    };
    let issue_wait = issue_wait(raw.issue_wait, report);
    let tls = super::tls::tls(raw.tls, report);
    let (listen, metrics_listen) = (listen?, metrics_listen?);
    if metrics_listen == Some(listen) {
        return Err(report.error(
            "server.metricsListen",
            format!(
                "is the same address as server.listen ({listen}); give metrics their own port \
                 (default {DEFAULT_METRICS_LISTEN}) or \"\" to turn them off"
            ),
        ));
    }
    Ok(ServerConfig {
        listen,
        metrics_listen,
        issue_wait: issue_wait?,
        tls: tls?,
    })
}

fn listen_addr(
    value: Option<String>,
    key: &str,
    default: SocketAddr,
    report: &mut Report<'_>,
) -> Result<SocketAddr, Reported> {
    let Some(text) = value else {
        return Ok(default);
    };
    text.parse().map_err(|_| {
        let port = default.port();
        report.error(
            key,
            format!(
                "\"{text}\" is not an IP address and port; write it like {default} or \
                 [::]:{port} (a host name is not accepted)"
            ),
        )
    })
}

fn issue_wait(value: Option<String>, report: &mut Report<'_>) -> Result<Duration, Reported> {
    const KEY: &str = "server.issueWait";
    let Some(text) = value else {
        return Ok(DEFAULT_ISSUE_WAIT);
    };
    match parse_duration(&text) {
        Err(message) => Err(report.error(KEY, message)),
        Ok(wait) if wait.is_zero() => Err(report.error(
            KEY,
            "must be more than 0: a request needs some time to wait for its certificate \
             (default 60s)",
        )),
        Ok(wait) if wait > MAX_ISSUE_WAIT => Err(report.error(
            KEY,
            format!(
                "\"{text}\" is longer than the 10m maximum, and clients would time out first; \
                 use at most 10m (default 60s)"
            ),
        )),
        Ok(wait) => Ok(wait),
    }
}

use crate::store::postgres::{is_postgres_url, ssl_mode_param};
use crate::store::seal::decode_key;
use crate::util::duration::parse_duration;

fn storage(raw: RawStorage, report: &mut Report<'_>) -> Result<StorageConfig, Reported> {
    let (url, key) = match report.secret("storage.url", raw.url, raw.url_file)? {
        Some(value) => (value.secret, value.key),
        None => (
            Secret::new(DEFAULT_DATABASE_URL.to_owned()),
            "storage.url".to_owned(),
        ),
    };
    check_database_url(url.expose()).map_err(|message| report.error(&key, message))?;
    let postgres = is_postgres_url(url.expose());
    const KEY_FIX: &str = "must be 32 bytes, base64; generate one with: openssl rand -base64 32";
    let encryption_key = report.secret(
        "storage.encryptionKey",
        raw.encryption_key,
        raw.encryption_key_file,
    )?;
    let encryption_key = match encryption_key {
        Some(value) if decode_key(value.secret.expose()).is_none() => {
            return Err(report.error(&value.key, KEY_FIX));
        }
        None if postgres => {
            return Err(report.error(
                "storage.encryptionKey",
                "is required with a PostgreSQL storage.url: every replica seals and opens private \
                 keys with the same key; generate one with: openssl rand -base64 32, and give the \
                 same value to every replica (storage.encryptionKey or storage.encryptionKeyFile)",
            ));
        }
        other => other.map(|value| value.secret),
    };
    let mut previous_encryption_keys = Vec::new();
    for (i, text) in raw
        .previous_encryption_keys
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        if decode_key(&text).is_none() {
            return Err(report.error(&format!("storage.previousEncryptionKeys[{i}]"), KEY_FIX));
        }
        previous_encryption_keys.push(Secret::new(text));
    }
    let settings = [
        raw.max_connections,
        raw.connect_timeout,
        raw.ca_certificates,
    ];
    let (max_connections, connect_timeout, ca_certificates) =
        connection_settings(settings.map(non_empty), url.expose(), report)?;
    let lease_ttl = lease_ttl(non_empty(raw.lease_ttl), report)?;
    Ok(StorageConfig {
        url,
        encryption_key,
        previous_encryption_keys,
        max_connections,
        connect_timeout,
        ca_certificates,
        lease_ttl,
    })
}

fn lease_ttl(value: Option<String>, report: &mut Report<'_>) -> Result<Duration, Reported> {
    const KEY: &str = "storage.leaseTtl";
    let Some(text) = value else {
        return Ok(Duration::from_secs(60));
    };
    match parse_duration(&text) {
        Err(message) => Err(report.error(KEY, message)),
        Ok(ttl) if ttl < Duration::from_secs(2) || ttl > Duration::from_secs(600) => Err(report.error(
            KEY,
            format!("\"{text}\" is outside 2s..10m: a replica renews its lease every third of it (default 60s)"),
        )),
        Ok(ttl) => Ok(ttl),
    }
}

/// `storage.maxConnections`, `connectTimeout` and `caCertificates`: PostgreSQL's connection
/// settings (a warning with a SQLite URL, which ignores them).
fn connection_settings(
    [max_connections, connect_timeout, ca_certificates]: [Option<String>; 3],
    url: &str,
    report: &mut Report<'_>,
) -> Result<(u32, Duration, Option<PathBuf>), Reported> {
    if !is_postgres_url(url) {
        let keys = ["maxConnections", "connectTimeout", "caCertificates"];
        let values = [&max_connections, &connect_timeout, &ca_certificates];
        for (key, value) in keys.iter().zip(values) {
            if value.is_some() {
                report.warn(format!(
                    "storage.{key} applies only to PostgreSQL and is ignored with a SQLite \
                     storage.url; remove it"
                ));
            }
        }
    }
    let max_connections = max_connections.map_or(Ok(DEFAULT_MAX_CONNECTIONS), |text| {
        text.parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                report.error(
                    "storage.maxConnections",
                    format!(
                        "\"{text}\" is not a number of connections; write a whole number from 1 \
                         to 1000 (default {DEFAULT_MAX_CONNECTIONS})"
                    ),
                )
            })
    });
    let connect_timeout = match connect_timeout.map(|text| parse_duration(&text)) {
        None => Ok(DEFAULT_CONNECT_TIMEOUT),
        Some(Ok(timeout)) if !timeout.is_zero() => Ok(timeout),
        Some(Ok(_)) => Err(report.error(
            "storage.connectTimeout",
            "must be more than 0: a connection attempt needs some time (default 10s)",
        )),
        Some(Err(message)) => Err(report.error("storage.connectTimeout", message)),
    };
    let ca_certificates = ca_certificates
        .map(|path| database_ca_certificates(path, url, report))
        .transpose();
    Ok((max_connections?, connect_timeout?, ca_certificates?))
}

/// A `...caCertificates` key: a readable file holding at least one PEM certificate. `fix` ends
/// the message when it is not.
pub(super) fn pem_certificates_file(
    path: String,
    key: &str,
    fix: &str,
    report: &mut Report<'_>,
) -> Result<PathBuf, Reported> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    let pem = fs::read(&path)
        .map_err(|e| report.error(key, format!("cannot read {path}: {e}; {fix}")))?;
    if !pem.windows(BEGIN.len()).any(|w| w == BEGIN) {
        return Err(report.error(
            key,
            format!("{path} holds no PEM certificate (no \"-----BEGIN CERTIFICATE-----\"); {fix}"),
        ));
    }
    Ok(PathBuf::from(path))
}

/// `storage.caCertificates`: a readable PEM file of certificates, for a URL that verifies the
/// server (sslmode verify-full or verify-ca, or none, which then means verify-full).
fn database_ca_certificates(
    path: String,
    url: &str,
    report: &mut Report<'_>,
) -> Result<PathBuf, Reported> {
    const KEY: &str = "storage.caCertificates";
    const FIX: &str = "point it at a PEM file of the CA certificates that sign your PostgreSQL \
                       server's certificate";
    let path = pem_certificates_file(path, KEY, FIX, report)?;
    match ssl_mode_param(url) {
        Some(mode) if is_postgres_url(url) && !matches!(mode, "verify-full" | "verify-ca") => {
            Err(report.error(
                KEY,
                format!(
                    "is used only to verify the server, but storage.url has sslmode={mode}, which \
                     does not verify it; use sslmode=verify-full (or leave sslmode out: with \
                     caCertificates it defaults to verify-full)"
                ),
            ))
        }
        _ => Ok(path),
    }
}

/// Accepts `sqlite:` and `postgres://` (`postgresql://`) URLs. The message quotes at most the
/// scheme and the sslmode: the rest may hold a password.
fn check_database_url(url: &str) -> Result<(), String> {
    const FIX: &str = "use a SQLite URL such as sqlite://certfleet.db, or a PostgreSQL URL such \
                       as postgres://certfleet:PASSWORD@db.example.com:5432/certfleet";
    if url.starts_with("sqlite:") {
        return Ok(());
    }
    if is_postgres_url(url) {
        return match ssl_mode_param(url) {
            Some(mode) if mode.parse::<sqlx::postgres::PgSslMode>().is_err() => Err(format!(
                "sslmode={mode} is not a PostgreSQL SSL mode; use disable, prefer, require, \
                 verify-ca or verify-full (verify-full checks the server's certificate and name)"
            )),
            _ => Ok(()),
        };
    }
    match url.split_once("://") {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            Err(format!("the {scheme}:// scheme is not supported; {FIX}"))
        }
        _ => Err(format!("is not a database URL; {FIX}")),
    }
}

fn challenges(raw: RawChallenges, report: &mut Report<'_>) -> Result<ChallengesConfig, Reported> {
    let http01 = raw.http01.unwrap_or_default();
    let listen = listen_addr(
        http01.listen,
        "challenges.http01.listen",
        DEFAULT_HTTP01_LISTEN,
        report,
    )?;
    let dns01 = super::dns01::entries(raw.dns01, report);
    let resolvers = super::dns01::resolvers(raw.resolvers, report);
    Ok(ChallengesConfig {
        http01: Http01Config { listen },
        dns01: dns01?,
        resolvers: resolvers?,
    })
}

/// `auth`: every configured method; warns when there is none, since then every request is
/// refused.
fn auth(raw: RawAuth, report: &mut Report<'_>) -> Result<AuthConfig, Reported> {
    let psk = psk::keys(raw.psk.unwrap_or_default(), report);
    let jwt = jwt::jwt(raw.jwt, report);
    let akash = akash::akash(raw.akash, report);
    let (psk, jwt, akash) = (psk?, jwt?, akash?);
    if psk.is_empty() && jwt.is_none() && akash.is_none() {
        report.warn(
            "no auth method is configured (auth.psk, auth.jwt and auth.akash are empty): every \
             API request will be refused; add a key under auth.psk.keys or configure auth.jwt or \
             auth.akash",
        );
    }
    Ok(AuthConfig { psk, jwt, akash })
}
