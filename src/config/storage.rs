//! `storage`: which database (chosen here, once, from `storage.url`), the keys that seal private
//! keys at rest, and the lease length replicas coordinate with.

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

use base64::Engine as _;
use serde::{Serialize, Serializer};
use sqlx::postgres::PgSslMode;
use sqlx::sqlite::SqliteConnectOptions;

use super::{
    print::{as_duration, as_optional_path},
    raw::RawStorage,
    report::{Report, Reported, non_empty, pem_certificates_file},
    secret::Secret,
};
use crate::util::duration::parse_duration;

const DEFAULT_DATABASE_URL: &str = "sqlite://certfleet.db";
const DEFAULT_MAX_CONNECTIONS: u32 = 10;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(60);
/// How to fix a malformed encryption key, for messages.
const KEY_FIX: &str = "must be 32 bytes, base64; generate one with: openssl rand -base64 32";

/// `storage`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageConfig {
    /// `storage.url` and the settings of that database.
    #[serde(flatten)]
    pub database: Database,
    /// `storage.encryptionKey` (or `encryptionKeyFile`): seals private keys at rest. Absent on
    /// SQLite: generated into a 0600 file beside the database. Always set on PostgreSQL (a
    /// config error otherwise): every replica seals and opens with the same key.
    pub encryption_key: Option<EncryptionKey>,
    /// `storage.previousEncryptionKeys`: keys that still open old values, never used to write.
    pub previous_encryption_keys: Vec<EncryptionKey>,
    /// `storage.leaseTtl`: how long an issuance lease lasts unrenewed, so how soon another
    /// replica takes over the work of one that died (default 60s, 2s to 10m).
    #[serde(serialize_with = "as_duration")]
    pub lease_ttl: Duration,
}

/// The database `storage.url` names: the one place the URL's scheme is looked at.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Database {
    /// `sqlite:...`: one file (or memory), one process or several on one machine.
    Sqlite(SqliteConfig),
    /// `postgres://` / `postgresql://`: one database shared by replicas (docs/postgresql.md).
    Postgres(PostgresConfig),
}

/// A SQLite database.
#[derive(Clone, Serialize)]
pub struct SqliteConfig {
    /// `storage.url` (or `urlFile`): a secret like every database URL.
    pub url: Secret,
    /// The database file; `None` for an in-memory database (`sqlite::memory:`).
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

/// A PostgreSQL database and how to reach it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostgresConfig {
    /// `storage.url` (or `urlFile`): secret, it may carry a password.
    pub url: Secret,
    /// `storage.maxConnections`: connections per process (default 10).
    pub max_connections: u32,
    /// `storage.connectTimeout`: how long to wait for a connection (default 10s).
    #[serde(serialize_with = "as_duration")]
    pub connect_timeout: Duration,
    /// `storage.caCertificates`: a PEM file of the CA certificates that sign the server's
    /// certificate (a private CA). Checked to exist and to hold at least one certificate.
    #[serde(serialize_with = "as_optional_path")]
    pub ca_certificates: Option<PathBuf>,
    /// The URL's `sslmode`, when it names one. With `ca_certificates` and no `sslmode`, the
    /// server is verified fully (`verify-full`).
    #[serde(skip)]
    pub ssl_mode: Option<PgSslMode>,
}

/// The file's path comes from the URL, a secret: `Debug` says only whether there is one.
impl fmt::Debug for SqliteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteConfig")
            .field("url", &self.url)
            .field("in_memory", &self.file.is_none())
            .finish()
    }
}

impl Database {
    /// `storage.url`.
    pub fn url(&self) -> &Secret {
        match self {
            Self::Sqlite(sqlite) => &sqlite.url,
            Self::Postgres(postgres) => &postgres.url,
        }
    }
}

/// A 32-byte key sealing private keys at rest, and the config key (or file) it came from, for
/// messages. Never printed: `Debug` and `Serialize` show `<redacted>`.
#[derive(Clone)]
pub struct EncryptionKey {
    origin: String,
    bytes: [u8; 32],
}

impl EncryptionKey {
    /// Decodes a base64 (standard or URL-safe, padding optional) 32-byte key; `origin` names
    /// where it came from (`storage.encryptionKey`, a key file's path).
    pub fn parse(origin: &str, text: &str) -> Option<Self> {
        use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
        let trimmed = text.trim().trim_end_matches('=');
        let bytes = STANDARD_NO_PAD
            .decode(trimmed)
            .or_else(|_| URL_SAFE_NO_PAD.decode(trimmed))
            .ok()?;
        Some(Self {
            origin: origin.to_owned(),
            bytes: bytes.try_into().ok()?,
        })
    }

    /// Where the key came from, for messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The key itself: for the sealer only.
    pub fn expose(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionKey({}: <redacted>)", self.origin)
    }
}

impl Serialize for EncryptionKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Secret::new(String::new()).serialize(serializer)
    }
}

/// Resolves `storage`.
pub(super) fn storage(raw: RawStorage, report: &mut Report<'_>) -> Result<StorageConfig, Reported> {
    let (url, url_key) = match report.secret("storage.url", raw.url, raw.url_file)? {
        Some(value) => (value.secret, value.key),
        None => (
            Secret::new(DEFAULT_DATABASE_URL.to_owned()),
            "storage.url".to_owned(),
        ),
    };
    let scheme = Scheme::of(url.expose()).map_err(|message| report.error(&url_key, message))?;
    let encryption_key = report.secret(
        "storage.encryptionKey",
        raw.encryption_key,
        raw.encryption_key_file,
    )?;
    let encryption_key = match encryption_key {
        Some(value) => Some(
            EncryptionKey::parse("storage.encryptionKey", value.secret.expose())
                .ok_or_else(|| report.error(&value.key, KEY_FIX))?,
        ),
        None if scheme == Scheme::Postgres => {
            return Err(report.error(
                "storage.encryptionKey",
                "is required with a PostgreSQL storage.url: every replica seals and opens private \
                 keys with the same key; generate one with: openssl rand -base64 32, and give the \
                 same value to every replica (storage.encryptionKey or storage.encryptionKeyFile)",
            ));
        }
        None => None,
    };
    let mut previous_encryption_keys = Vec::new();
    for (i, text) in raw
        .previous_encryption_keys
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let key = format!("storage.previousEncryptionKeys[{i}]");
        let parsed =
            EncryptionKey::parse(&key, &text).ok_or_else(|| report.error(&key, KEY_FIX))?;
        previous_encryption_keys.push(parsed);
    }
    let settings = [
        raw.max_connections,
        raw.connect_timeout,
        raw.ca_certificates,
    ]
    .map(non_empty);
    let database = match scheme {
        Scheme::Sqlite => sqlite(url, &url_key, &settings, report)?,
        Scheme::Postgres => postgres(url, &url_key, settings, report)?,
    };
    let lease_ttl = lease_ttl(non_empty(raw.lease_ttl), report)?;
    Ok(StorageConfig {
        database,
        encryption_key,
        previous_encryption_keys,
        lease_ttl,
    })
}

/// The two kinds of database URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Sqlite,
    Postgres,
}

impl Scheme {
    /// Accepts `sqlite:` and `postgres://` (`postgresql://`) URLs. The message quotes at most
    /// the scheme: the rest may hold a password.
    fn of(url: &str) -> Result<Self, String> {
        const FIX: &str = "use a SQLite URL such as sqlite://certfleet.db, or a PostgreSQL URL \
                           such as postgres://certfleet:PASSWORD@db.example.com:5432/certfleet";
        if url.starts_with("sqlite:") {
            return Ok(Self::Sqlite);
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres);
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
}

/// A SQLite URL: where its file is. PostgreSQL's connection settings are warned about: SQLite
/// ignores them.
fn sqlite(
    url: Secret,
    url_key: &str,
    settings: &[Option<String>; 3],
    report: &mut Report<'_>,
) -> Result<Database, Reported> {
    let keys = ["maxConnections", "connectTimeout", "caCertificates"];
    for (key, value) in keys.iter().zip(settings) {
        if value.is_some() {
            report.warn(format!(
                "storage.{key} applies only to PostgreSQL and is ignored with a SQLite \
                 storage.url; remove it"
            ));
        }
    }
    // The driver's own parser, so the file is the one it will open; its message never repeats
    // the URL.
    let options = SqliteConnectOptions::from_str(url.expose()).map_err(|e| {
        report.error(
            url_key,
            format!("is not a SQLite URL ({e}); write it like sqlite://certfleet.db"),
        )
    })?;
    let path = options.get_filename();
    let in_memory = path.as_os_str().is_empty() || path.to_string_lossy().starts_with(":memory:");
    Ok(Database::Sqlite(SqliteConfig {
        file: (!in_memory).then(|| path.to_path_buf()),
        url,
    }))
}

/// A PostgreSQL URL and `storage.maxConnections`, `connectTimeout` and `caCertificates`.
fn postgres(
    url: Secret,
    url_key: &str,
    [max_connections, connect_timeout, ca_certificates]: [Option<String>; 3],
    report: &mut Report<'_>,
) -> Result<Database, Reported> {
    let ssl_mode = match ssl_mode_param(url.expose()) {
        None => None,
        Some(mode) => Some(mode.parse::<PgSslMode>().map_err(|_| {
            report.error(
                url_key,
                format!(
                    "sslmode={mode} is not a PostgreSQL SSL mode; use disable, prefer, require, \
                     verify-ca or verify-full (verify-full checks the server's certificate and name)"
                ),
            )
        })?),
    };
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
        .map(|path| database_ca_certificates(path, ssl_mode, report))
        .transpose();
    Ok(Database::Postgres(PostgresConfig {
        url,
        max_connections: max_connections?,
        connect_timeout: connect_timeout?,
        ca_certificates: ca_certificates?,
        ssl_mode,
    }))
}

/// `storage.caCertificates`: a readable PEM file of certificates, for a URL that verifies the
/// server (sslmode verify-full or verify-ca, or none, which then means verify-full).
fn database_ca_certificates(
    path: String,
    ssl_mode: Option<PgSslMode>,
    report: &mut Report<'_>,
) -> Result<PathBuf, Reported> {
    const KEY: &str = "storage.caCertificates";
    const FIX: &str = "point it at a PEM file of the CA certificates that sign your PostgreSQL \
                       server's certificate";
    let path = pem_certificates_file(path, KEY, FIX, report)?;
    match ssl_mode {
        Some(mode) if !matches!(mode, PgSslMode::VerifyFull | PgSslMode::VerifyCa) => Err(report
            .error(
                KEY,
                format!(
                    "is used only to verify the server, but storage.url has sslmode={}, which \
                     does not verify it; use sslmode=verify-full (or leave sslmode out: with \
                     caCertificates it defaults to verify-full)",
                    ssl_mode_name(mode)
                ),
            )),
        _ => Ok(path),
    }
}

/// The name an `sslmode` is written with.
fn ssl_mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// The `sslmode` query parameter of a PostgreSQL URL as written (`ssl-mode` is sqlx's alias),
/// the last one winning as in sqlx's parser.
fn ssl_mode_param(url: &str) -> Option<&str> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| matches!(*key, "sslmode" | "ssl-mode"))
        .map(|(_, value)| value)
        .next_back()
}

fn lease_ttl(value: Option<String>, report: &mut Report<'_>) -> Result<Duration, Reported> {
    const KEY: &str = "storage.leaseTtl";
    let Some(text) = value else {
        return Ok(DEFAULT_LEASE_TTL);
    };
    match parse_duration(&text) {
        Err(message) => Err(report.error(KEY, message)),
        Ok(ttl) if ttl < Duration::from_secs(2) || ttl > Duration::from_secs(600) => Err(report
            .error(
                KEY,
                format!(
                    "\"{text}\" is outside 2s..10m: a replica renews its lease every third of it \
                     (default 60s)"
                ),
            )),
        Ok(ttl) => Ok(ttl),
    }
}
