//! The SQLite backend: one file, WAL journal, migrations embedded in the binary.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::{RenewalClaim, Store, StoreError, StoredCert};
use crate::domain::{CertKey, KeyType, NameSet};

/// The migrations, in order. Each file is applied once, in its own transaction.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "init",
    include_str!("../../migrations/sqlite/0001_init.sql"),
)];

/// A SQLite database shared by a pool of connections.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating it 0600 when missing) the database at a `sqlite://PATH` URL and applies
    /// pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::new("parse storage.url", e))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable in WAL mode except for the last transactions on power loss.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let path = options.get_filename().to_path_buf();
        if !is_memory(&path) {
            create_private_file(&path)?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::new("open database", e))?;
        migrator()
            .run(&pool)
            .await
            .map_err(|e| StoreError::new("apply migrations", e))?;
        Ok(Self { pool })
    }
}

fn is_memory(path: &Path) -> bool {
    path.as_os_str().is_empty() || path.to_string_lossy().starts_with(":memory:")
}

/// Creates the database file with mode 0600 before SQLite does: it holds private keys. SQLite
/// gives its `-wal` and `-shm` files the main file's permissions.
fn create_private_file(path: &PathBuf) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::new("create database directory", e))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .or_else(|e| match e.kind() {
            // Another process created it first: fine.
            std::io::ErrorKind::AlreadyExists => Ok(()),
            _ => Err(StoreError::new("create database file", e)),
        })
}

fn migrator() -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                sqlx::SqlSafeStr::into_sql_str(sql),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator::with_migrations(migrations)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| StoreError::new("ping", e))
    }

    async fn certificate(&self, key: &CertKey) -> Result<Option<StoredCert>, StoreError> {
        let row = sqlx::query(
            "SELECT names, key_type, cert_pem, key_pem, issuer_pem, serial, not_before, not_after, \
             renew_after, issued_at FROM certificates WHERE names = $1 AND key_type = $2",
        )
        .bind(key.names.key())
        .bind(key.key_type.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::new("read certificate", e))?;
        row.map(|row| cert_from_row(&row)).transpose()
    }

    async fn save_certificate(&self, cert: &StoredCert) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO certificates (names, key_type, cert_pem, key_pem, issuer_pem, serial, \
             not_before, not_after, renew_after, issued_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (names, key_type) DO UPDATE SET cert_pem = excluded.cert_pem, \
             key_pem = excluded.key_pem, issuer_pem = excluded.issuer_pem, serial = excluded.serial, \
             not_before = excluded.not_before, not_after = excluded.not_after, \
             renew_after = excluded.renew_after, issued_at = excluded.issued_at",
        )
        .bind(cert.names.key())
        .bind(cert.key_type.as_str())
        .bind(&cert.cert_pem)
        .bind(&cert.key_pem)
        .bind(&cert.issuer_pem)
        .bind(&cert.serial)
        .bind(cert.not_before)
        .bind(cert.not_after)
        .bind(cert.renew_after)
        .bind(cert.issued_at)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(|e| StoreError::new("save certificate", e))
    }

    async fn put_http01(
        &self,
        token: &str,
        key_authorization: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO http01_tokens (token, key_authorization, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (token) DO UPDATE SET key_authorization = excluded.key_authorization",
        )
        .bind(token)
        .bind(key_authorization)
        .bind(now)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(|e| StoreError::new("save HTTP-01 token", e))
    }

    async fn http01(&self, token: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT key_authorization FROM http01_tokens WHERE token = $1")
            .bind(token)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::new("read HTTP-01 token", e))
    }

    async fn delete_http01(&self, token: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM http01_tokens WHERE token = $1")
            .bind(token)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| StoreError::new("delete HTTP-01 token", e))
    }

    async fn account(&self, directory_url: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT credentials FROM acme_accounts WHERE directory_url = $1")
            .bind(directory_url)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::new("read ACME account", e))
    }

    async fn save_account(
        &self,
        directory_url: &str,
        credentials: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO acme_accounts (directory_url, credentials, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (directory_url) DO UPDATE SET credentials = excluded.credentials",
        )
        .bind(directory_url)
        .bind(credentials)
        .bind(now)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(|e| StoreError::new("save ACME account", e))
    }

    async fn claim_forced_renewal(
        &self,
        key: &CertKey,
        now: i64,
        min_interval: i64,
    ) -> Result<RenewalClaim, StoreError> {
        // One statement: the row is written only when no claim exists or the last one is old
        // enough, so two concurrent requests cannot both be granted.
        let granted = sqlx::query(
            "INSERT INTO forced_renewals (names, key_type, renewed_at) VALUES ($1, $2, $3) \
             ON CONFLICT (names, key_type) DO UPDATE SET renewed_at = excluded.renewed_at \
             WHERE forced_renewals.renewed_at <= $4",
        )
        .bind(key.names.key())
        .bind(key.key_type.as_str())
        .bind(now)
        .bind(now - min_interval)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::new("claim forced renewal", e))?
        .rows_affected()
            == 1;
        if granted {
            return Ok(RenewalClaim::Granted);
        }
        let last: i64 = sqlx::query_scalar(
            "SELECT renewed_at FROM forced_renewals WHERE names = $1 AND key_type = $2",
        )
        .bind(key.names.key())
        .bind(key.key_type.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::new("read forced renewal", e))?;
        Ok(RenewalClaim::TooSoon {
            retry_at: last + min_interval,
        })
    }
}

fn cert_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<StoredCert, StoreError> {
    let get = |e| StoreError::new("decode certificate row", e);
    let names: String = row.try_get("names").map_err(get)?;
    let key_type: String = row.try_get("key_type").map_err(get)?;
    let names = NameSet::parse(&names.split(',').collect::<Vec<_>>())
        .map_err(|e| StoreError::new("decode stored names", e))?;
    let key_type = KeyType::parse(&key_type).ok_or_else(|| {
        StoreError::new(
            "decode stored key type",
            format!("unknown key type {key_type:?}"),
        )
    })?;
    Ok(StoredCert {
        names,
        key_type,
        cert_pem: row.try_get("cert_pem").map_err(get)?,
        key_pem: row.try_get("key_pem").map_err(get)?,
        issuer_pem: row.try_get("issuer_pem").map_err(get)?,
        serial: row.try_get("serial").map_err(get)?,
        not_before: row.try_get("not_before").map_err(get)?,
        not_after: row.try_get("not_after").map_err(get)?,
        renew_after: row.try_get("renew_after").map_err(get)?,
        issued_at: row.try_get("issued_at").map_err(get)?,
    })
}
