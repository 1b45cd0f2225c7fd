//! The SQLite backend: one file, WAL journal, migrations embedded in the binary.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::seal::Sealer;
use super::{
    Failure, OrderRecord, PresentedRecord, RenewalClaim, ScheduleEntry, Store, StoreError,
    StoredCert,
};
use crate::config::SqliteConfig;
use crate::domain::{CertKey, KeyType, NameSet};

/// The migrations, in order. Each file is applied once, in its own transaction.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "lifecycle",
        include_str!("../../migrations/sqlite/0002_lifecycle.sql"),
    ),
    (
        3,
        "server identity",
        include_str!("../../migrations/sqlite/0003_server_identity.sql"),
    ),
    (
        4,
        "akash",
        include_str!("../../migrations/sqlite/0004_akash.sql"),
    ),
    (
        5,
        "leases",
        include_str!("../../migrations/sqlite/0005_leases.sql"),
    ),
];

/// A SQLite database shared by a pool of connections; private keys sealed by a [`Sealer`].
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    sealer: Sealer,
}

impl SqliteStore {
    /// Opens (creating it 0600 when missing) the database at a `sqlite://PATH` URL and applies
    /// pending migrations.
    pub async fn open(config: &SqliteConfig, sealer: Sealer) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(config.url.expose())
            .map_err(|e| StoreError::new("parse storage.url", e))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable in WAL mode except for the last transactions on power loss.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            // Freed pages are zeroed, so a replaced key leaves no copy in the file.
            .pragma("secure_delete", "on")
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
        // Processes sharing the file may start together; sqlx takes no lock on SQLite, so
        // migrations run under an exclusive lock on a file beside the database.
        let guard = match is_memory(&path) {
            true => None,
            false => Some(migration_lock(&path).await?),
        };
        migrator()
            .run(&pool)
            .await
            .map_err(|e| StoreError::new("apply migrations", e))?;
        drop(guard);
        Ok(Self { pool, sealer })
    }

    fn seal(&self, plaintext: &str, context: &str) -> Result<String, StoreError> {
        self.sealer
            .seal(plaintext.as_bytes(), context)
            .map_err(|e| StoreError::new("seal a private key", e))
    }

    /// Opens a sealed value; plaintext PEM or JSON written before sealing existed is accepted
    /// (and re-sealed by `reseal`).
    fn open_sealed(&self, stored: &str, context: &str) -> Result<String, StoreError> {
        if is_legacy_plaintext(stored) {
            return Ok(stored.to_owned());
        }
        let bytes = self
            .sealer
            .open(stored, context)
            .map_err(|e| StoreError::new("open a sealed private key", e))?;
        String::from_utf8(bytes).map_err(|e| StoreError::new("open a sealed private key", e))
    }

    /// Re-seals one column of one table where it is not sealed with the current key.
    async fn reseal_column(
        &self,
        select: &'static str,
        update: &'static str,
        context: impl Fn(&sqlx::sqlite::SqliteRow) -> Result<String, StoreError>,
    ) -> Result<u64, StoreError> {
        let rows = sqlx::query(select)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::new("read rows to re-seal", e))?;
        let mut count = 0;
        for row in rows {
            let value: String = row
                .try_get("value")
                .map_err(|e| StoreError::new("re-seal", e))?;
            if self.sealer.is_current(&value) {
                continue;
            }
            let context = context(&row)?;
            let sealed = self.seal(&self.open_sealed(&value, &context)?, &context)?;
            let a: String = row.try_get(0).map_err(|e| StoreError::new("re-seal", e))?;
            let b: String = row.try_get(1).map_err(|e| StoreError::new("re-seal", e))?;
            sqlx::query(update)
                .bind(sealed)
                .bind(a)
                .bind(b)
                .bind(value)
                .execute(&self.pool)
                .await
                .map_err(|e| StoreError::new("write a re-sealed row", e))?;
            count += 1;
        }
        Ok(count)
    }
}

fn is_legacy_plaintext(stored: &str) -> bool {
    stored.starts_with("-----BEGIN") || stored.starts_with('{')
}

fn cert_context(names: &str, key_type: &str) -> String {
    format!("certificate|{names}|{key_type}")
}

fn order_context(names: &str, key_type: &str) -> String {
    format!("order|{names}|{key_type}")
}

fn identity_context(name: &str) -> String {
    format!("server-identity|{name}")
}

fn account_context(directory_url: &str) -> String {
    format!("account|{directory_url}")
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

/// Takes an exclusive lock on `<database>.lock` (created 0600), released when dropped.
async fn migration_lock(path: &Path) -> Result<std::fs::File, StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(PathBuf::from(name))
        .map_err(|e| StoreError::new("open the migration lock", e))?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|e| StoreError::new("take the migration lock", e))?
        .map_err(|e| StoreError::new("take the migration lock", e))
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
        let Some(row) = row else { return Ok(None) };
        let mut cert = cert_from_row(&row)?;
        cert.key_pem = self.open_sealed(
            &cert.key_pem,
            &cert_context(&key.names.key(), key.key_type.as_str()),
        )?;
        Ok(Some(cert))
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
        .bind(self.seal(&cert.key_pem, &cert_context(&cert.names.key(), cert.key_type.as_str()))?)
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
        let sealed: Option<String> =
            sqlx::query_scalar("SELECT credentials FROM acme_accounts WHERE directory_url = $1")
                .bind(directory_url)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| StoreError::new("read ACME account", e))?;
        sealed
            .map(|sealed| self.open_sealed(&sealed, &account_context(directory_url)))
            .transpose()
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
        .bind(self.seal(credentials, &account_context(directory_url))?)
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

    async fn begin_order(&self, key: &CertKey, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO orders (names, key_type, started_at) VALUES ($1, $2, $3) \
             ON CONFLICT (names, key_type) DO NOTHING",
        )
        .bind(key.names.key())
        .bind(key.key_type.as_str())
        .bind(now)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(|e| StoreError::new("record an order", e))
    }

    async fn order(&self, key: &CertKey) -> Result<Option<OrderRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT order_url, key_pem, started_at FROM orders WHERE names = $1 AND key_type = $2",
        )
        .bind(key.names.key())
        .bind(key.key_type.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::new("read an order", e))?;
        let Some(row) = row else { return Ok(None) };
        let get = |e| StoreError::new("decode an order", e);
        let sealed: Option<String> = row.try_get("key_pem").map_err(get)?;
        let context = order_context(&key.names.key(), key.key_type.as_str());
        Ok(Some(OrderRecord {
            url: row.try_get("order_url").map_err(get)?,
            key_pem: sealed.map(|s| self.open_sealed(&s, &context)).transpose()?,
            started_at: row.try_get("started_at").map_err(get)?,
        }))
    }

    async fn set_order_url(&self, key: &CertKey, url: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE orders SET order_url = $3 WHERE names = $1 AND key_type = $2")
            .bind(key.names.key())
            .bind(key.key_type.as_str())
            .bind(url)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| StoreError::new("save the order URL", e))
    }

    async fn set_order_key(&self, key: &CertKey, key_pem: &str) -> Result<(), StoreError> {
        let context = order_context(&key.names.key(), key.key_type.as_str());
        sqlx::query("UPDATE orders SET key_pem = $3 WHERE names = $1 AND key_type = $2")
            .bind(key.names.key())
            .bind(key.key_type.as_str())
            .bind(self.seal(key_pem, &context)?)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| StoreError::new("save the order key", e))
    }

    async fn finish_order(&self, key: &CertKey) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| StoreError::new("finish an order", e))?;
        for sql in [
            "DELETE FROM presented WHERE names = $1 AND key_type = $2",
            "DELETE FROM orders WHERE names = $1 AND key_type = $2",
        ] {
            sqlx::query(sql)
                .bind(key.names.key())
                .bind(key.key_type.as_str())
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::new("finish an order", e))?;
        }
        tx.commit()
            .await
            .map_err(|e| StoreError::new("finish an order", e))
    }

    async fn orders(&self) -> Result<Vec<CertKey>, StoreError> {
        let rows = sqlx::query("SELECT names, key_type FROM orders ORDER BY started_at")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::new("list orders", e))?;
        rows.iter().map(key_from_row).collect()
    }

    async fn add_presented(
        &self,
        key: &CertKey,
        record: &PresentedRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO presented (names, key_type, challenge_type, name, handle) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (names, key_type, handle) DO NOTHING",
        )
        .bind(key.names.key())
        .bind(key.key_type.as_str())
        .bind(&record.challenge_type)
        .bind(&record.name)
        .bind(&record.handle)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(|e| StoreError::new("record a presented challenge", e))
    }

    async fn presented(&self, key: &CertKey) -> Result<Vec<PresentedRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT challenge_type, name, handle FROM presented WHERE names = $1 AND key_type = $2",
        )
        .bind(key.names.key())
        .bind(key.key_type.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::new("list presented challenges", e))?;
        let get = |e| StoreError::new("decode a presented challenge", e);
        rows.iter()
            .map(|row| {
                Ok(PresentedRecord {
                    challenge_type: row.try_get("challenge_type").map_err(get)?,
                    name: row.try_get("name").map_err(get)?,
                    handle: row.try_get("handle").map_err(get)?,
                })
            })
            .collect()
    }

    async fn remove_presented(&self, key: &CertKey, handle: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM presented WHERE names = $1 AND key_type = $2 AND handle = $3")
            .bind(key.names.key())
            .bind(key.key_type.as_str())
            .bind(handle)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| StoreError::new("forget a presented challenge", e))
    }

    async fn failure(&self, key: &CertKey) -> Result<Option<Failure>, StoreError> {
        let row = sqlx::query(
            "SELECT count, next_attempt, code, message FROM failures \
             WHERE names = $1 AND key_type = $2",
        )
        .bind(key.names.key())
        .bind(key.key_type.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::new("read a failure", e))?;
        let Some(row) = row else { return Ok(None) };
        let get = |e| StoreError::new("decode a failure", e);
        let count: i64 = row.try_get("count").map_err(get)?;
        Ok(Some(Failure {
            count: u32::try_from(count).unwrap_or(u32::MAX),
            next_attempt: row.try_get("next_attempt").map_err(get)?,
            code: row.try_get("code").map_err(get)?,
            message: row.try_get("message").map_err(get)?,
        }))
    }

    async fn record_failure(&self, key: &CertKey, failure: &Failure) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO failures (names, key_type, count, next_attempt, code, message) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (names, key_type) DO UPDATE SET \
             count = excluded.count, next_attempt = excluded.next_attempt, \
             code = excluded.code, message = excluded.message",
        )
        .bind(key.names.key())
        .bind(key.key_type.as_str())
        .bind(i64::from(failure.count))
        .bind(failure.next_attempt)
        .bind(&failure.code)
        .bind(&failure.message)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(|e| StoreError::new("record a failure", e))
    }

    async fn clear_failure(&self, key: &CertKey) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM failures WHERE names = $1 AND key_type = $2")
            .bind(key.names.key())
            .bind(key.key_type.as_str())
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| StoreError::new("clear a failure", e))
    }

    async fn due(&self, now: i64, limit: u32) -> Result<Vec<CertKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.names, c.key_type FROM certificates c \
             LEFT JOIN failures f ON f.names = c.names AND f.key_type = c.key_type \
             WHERE c.renew_after <= $1 AND (f.next_attempt IS NULL OR f.next_attempt <= $1) \
             ORDER BY c.renew_after LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::new("list due certificates", e))?;
        rows.iter().map(key_from_row).collect()
    }

    async fn schedule(&self) -> Result<Vec<ScheduleEntry>, StoreError> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT names, key_type, not_after, renew_after FROM certificates \
             ORDER BY names, key_type",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::new("list the certificates' schedule", e))?;
        Ok(rows
            .into_iter()
            .map(|(names, key_type, not_after, renew_after)| ScheduleEntry {
                names,
                key_type,
                not_after,
                renew_after,
            })
            .collect())
    }

    async fn next_due(&self) -> Result<Option<i64>, StoreError> {
        // Two indexed lookups rather than one scan: the earliest renewal of a certificate that is
        // not backing off, and the earliest end of a back-off of a stored certificate.
        let renewal: Option<i64> = sqlx::query_scalar(
            "SELECT c.renew_after FROM certificates c \
             WHERE NOT EXISTS (SELECT 1 FROM failures f \
                               WHERE f.names = c.names AND f.key_type = c.key_type) \
             ORDER BY c.renew_after LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::new("find the next renewal", e))?;
        let retry: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(f.next_attempt, c.renew_after) AS at FROM failures f \
             JOIN certificates c ON c.names = f.names AND c.key_type = f.key_type \
             ORDER BY at LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::new("find the next retry", e))?;
        Ok(match (renewal, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    async fn server_identity(&self, name: &str) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query("SELECT cert_pem, key_pem FROM server_identity WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::new("read the server identity", e))?;
        let Some(row) = row else { return Ok(None) };
        let cert_pem = text(&row, 0)?;
        let sealed = text(&row, 1)?;
        Ok(Some((
            cert_pem,
            self.open_sealed(&sealed, &identity_context(name))?,
        )))
    }

    async fn save_server_identity(
        &self,
        name: &str,
        cert_pem: &str,
        key_pem: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        // First writer wins: processes starting together agree on one identity.
        let inserted = sqlx::query(
            "INSERT INTO server_identity (name, cert_pem, key_pem, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(cert_pem)
        .bind(self.seal(key_pem, &identity_context(name))?)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::new("save the server identity", e))?
        .rows_affected();
        Ok(inserted == 1)
    }

    async fn try_lease(
        &self,
        name: &str,
        owner: &str,
        now: i64,
        ttl: i64,
    ) -> Result<bool, StoreError> {
        // One statement: taken when free, expired, or already ours (then extended).
        let taken = sqlx::query(
            "INSERT INTO leases (name, owner, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, \
             expires_at = excluded.expires_at \
             WHERE leases.owner = excluded.owner OR leases.expires_at <= $4",
        )
        .bind(name)
        .bind(owner)
        .bind(now.saturating_add(ttl))
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::new("take a lease", e))?
        .rows_affected();
        Ok(taken == 1)
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND owner = $2")
            .bind(name)
            .bind(owner)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| StoreError::new("release a lease", e))
    }

    async fn set_renew_after(&self, key: &CertKey, at: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE certificates SET renew_after = $3 WHERE names = $1 AND key_type = $2")
            .bind(key.names.key())
            .bind(key.key_type.as_str())
            .bind(at)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| StoreError::new("move a renewal time", e))
    }

    async fn reseal(&self) -> Result<u64, StoreError> {
        let certificates = self
            .reseal_column(
                "SELECT names, key_type, key_pem AS value FROM certificates",
                "UPDATE certificates SET key_pem = $1 WHERE names = $2 AND key_type = $3 AND key_pem = $4",
                |row| Ok(cert_context(&text(row, 0)?, &text(row, 1)?)),
            )
            .await?;
        let orders = self
            .reseal_column(
                "SELECT names, key_type, key_pem AS value FROM orders WHERE key_pem IS NOT NULL",
                "UPDATE orders SET key_pem = $1 WHERE names = $2 AND key_type = $3 AND key_pem = $4",
                |row| Ok(order_context(&text(row, 0)?, &text(row, 1)?)),
            )
            .await?;
        let accounts = self
            .reseal_column(
                "SELECT directory_url, directory_url, credentials AS value FROM acme_accounts",
                "UPDATE acme_accounts SET credentials = $1 WHERE directory_url = $2 \
                 AND directory_url = $3 AND credentials = $4",
                |row| Ok(account_context(&text(row, 0)?)),
            )
            .await?;
        let identities = self
            .reseal_column(
                "SELECT name, name, key_pem AS value FROM server_identity",
                "UPDATE server_identity SET key_pem = $1 WHERE name = $2 AND name = $3 \
                 AND key_pem = $4",
                |row| Ok(identity_context(&text(row, 0)?)),
            )
            .await?;
        Ok(certificates + orders + accounts + identities)
    }

    async fn akash_pubkey(&self, address: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let stored: Option<String> =
            sqlx::query_scalar("SELECT pubkey FROM akash_pubkeys WHERE address = $1")
                .bind(address)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| StoreError::new("read an Akash public key", e))?;
        stored
            .map(|text| {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| StoreError::new("decode a stored Akash public key", e))
            })
            .transpose()
    }

    async fn save_akash_pubkey(&self, address: &str, key: &[u8]) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO akash_pubkeys (address, pubkey) VALUES ($1, $2) \
             ON CONFLICT (address) DO UPDATE SET pubkey = excluded.pubkey",
        )
        .bind(address)
        .bind(base64::engine::general_purpose::STANDARD.encode(key))
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(|e| StoreError::new("save an Akash public key", e))
    }
}

fn text(row: &sqlx::sqlite::SqliteRow, index: usize) -> Result<String, StoreError> {
    row.try_get(index)
        .map_err(|e| StoreError::new("decode a row", e))
}

fn key_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<CertKey, StoreError> {
    let names = text(row, 0)?;
    let key_type = text(row, 1)?;
    Ok(CertKey {
        names: NameSet::parse(&names.split(',').collect::<Vec<_>>())
            .map_err(|e| StoreError::new("decode stored names", e))?,
        key_type: KeyType::parse(&key_type).ok_or_else(|| {
            StoreError::new(
                "decode stored key type",
                format!("unknown key type {key_type:?}"),
            )
        })?,
    })
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
