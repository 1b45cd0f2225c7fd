//! The PostgreSQL backend: one database shared by every replica, migrations embedded in the
//! binary and applied under the migrator's advisory lock, so replicas may start together.
//!
//! The SQL is the SQLite backend's (`$n` placeholders, `ON CONFLICT`), statement for statement,
//! so both answer alike; `tests/store_story.rs` runs one story against both. Private keys are
//! sealed with the same contexts, so a sealed value means the same thing in either database.

use std::borrow::Cow;
use std::str::FromStr;

use async_trait::async_trait;
use base64::Engine as _;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow, PgSslMode};
use sqlx::{PgPool, Row};

use super::seal::Sealer;
use super::{
    Failure, OrderRecord, PresentedRecord, RenewalClaim, ScheduleEntry, Store, StoreError,
    StoredCert,
};
use crate::config::PostgresConfig;
use crate::domain::{CertKey, KeyType, NameSet};

/// The migrations, in order: the same versions and names as `migrations/sqlite/`. Each file is
/// applied once, in its own transaction.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "lifecycle",
        include_str!("../../migrations/postgres/0002_lifecycle.sql"),
    ),
    (
        3,
        "server identity",
        include_str!("../../migrations/postgres/0003_server_identity.sql"),
    ),
    (
        4,
        "akash",
        include_str!("../../migrations/postgres/0004_akash.sql"),
    ),
    (
        5,
        "leases",
        include_str!("../../migrations/postgres/0005_leases.sql"),
    ),
];

/// A PostgreSQL database reached through a pool of connections; private keys sealed by a
/// [`Sealer`].
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    sealer: Sealer,
}

impl PgStore {
    /// Connects to `storage.url` with the pool settings of `config` and applies pending
    /// migrations. Several processes may do this at once: the migrator holds a PostgreSQL
    /// advisory lock while it checks and applies, so the others wait and then find nothing to do.
    pub async fn open(config: &PostgresConfig, sealer: Sealer) -> Result<Self, StoreError> {
        let url = config.url.expose();
        // The driver's message for a bad URL never repeats the URL (it may hold a password).
        let mut options =
            PgConnectOptions::from_str(url).map_err(|e| StoreError::new("parse storage.url", e))?;
        if let Some(path) = &config.ca_certificates {
            // A private CA is only useful if the server is verified against it: without an
            // explicit sslmode, verify the certificate and the host name.
            options = options.ssl_root_cert(path);
            if config.ssl_mode.is_none() {
                options = options.ssl_mode(PgSslMode::VerifyFull);
            }
        }
        if options.get_application_name().is_none() {
            // What a DBA sees in pg_stat_activity.
            options = options.application_name("certfleet");
        }
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.connect_timeout)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::new("connect to PostgreSQL", e))?;
        migrator()
            .run(&pool)
            .await
            .map_err(|e| StoreError::new("apply migrations", e))?;
        Ok(Self { pool, sealer })
    }

    fn seal(&self, plaintext: &str, context: &str) -> Result<String, StoreError> {
        self.sealer
            .seal(plaintext.as_bytes(), context)
            .map_err(|e| StoreError::new("seal a private key", e))
    }

    /// Opens a sealed value; plaintext PEM or JSON (never written by this backend, but a database
    /// may be filled by hand or by an older tool) is accepted and re-sealed by `reseal`.
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

    /// Re-seals one column of one table where it is not sealed with the current key. The update
    /// is conditional on the old value, so replicas re-sealing at once cannot lose a write.
    async fn reseal_column(
        &self,
        select: &'static str,
        update: &'static str,
        context: impl Fn(&PgRow) -> Result<String, StoreError>,
    ) -> Result<u64, StoreError> {
        let rows = sqlx::query(select)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::new("read rows to re-seal", e))?;
        let mut count = 0;
        for row in rows {
            let value = text(&row, 2)?;
            if self.sealer.is_current(&value) {
                continue;
            }
            let context = context(&row)?;
            let sealed = self.seal(&self.open_sealed(&value, &context)?, &context)?;
            count += sqlx::query(update)
                .bind(sealed)
                .bind(text(&row, 0)?)
                .bind(text(&row, 1)?)
                .bind(value)
                .execute(&self.pool)
                .await
                .map_err(|e| StoreError::new("write a re-sealed row", e))?
                .rows_affected();
        }
        Ok(count)
    }
}

// The sealing contexts are part of the stored format: the same strings as `sqlite.rs`.

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
    // `locking` is on by default: pg_advisory_lock around the whole run.
    Migrator::with_migrations(migrations)
}

#[async_trait]
impl Store for PgStore {
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
        // enough. ON CONFLICT locks the row and re-checks the condition on its newest version,
        // so two replicas claiming together cannot both be granted.
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
        // Ordered by the key, as SQLite's WITHOUT ROWID table returns them.
        let rows = sqlx::query(
            "SELECT challenge_type, name, handle FROM presented WHERE names = $1 AND key_type = $2 \
             ORDER BY handle",
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
        // As on SQLite: the earliest renewal of a certificate that is not backing off, and the
        // earliest end of a back-off of a stored certificate (GREATEST is SQLite's two-argument
        // MAX).
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
            "SELECT GREATEST(f.next_attempt, c.renew_after) AS at FROM failures f \
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
        // First writer wins: replicas starting together agree on one identity.
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
        // One statement: taken when free, expired, or already ours (then extended). ON CONFLICT
        // locks the row, so of two replicas racing for an expired lease exactly one gets it.
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
                "SELECT names, key_type, key_pem FROM certificates",
                "UPDATE certificates SET key_pem = $1 WHERE names = $2 AND key_type = $3 AND key_pem = $4",
                |row| Ok(cert_context(&text(row, 0)?, &text(row, 1)?)),
            )
            .await?;
        let orders = self
            .reseal_column(
                "SELECT names, key_type, key_pem FROM orders WHERE key_pem IS NOT NULL",
                "UPDATE orders SET key_pem = $1 WHERE names = $2 AND key_type = $3 AND key_pem = $4",
                |row| Ok(order_context(&text(row, 0)?, &text(row, 1)?)),
            )
            .await?;
        let accounts = self
            .reseal_column(
                "SELECT directory_url, directory_url, credentials FROM acme_accounts",
                "UPDATE acme_accounts SET credentials = $1 WHERE directory_url = $2 \
                 AND directory_url = $3 AND credentials = $4",
                |row| Ok(account_context(&text(row, 0)?)),
            )
            .await?;
        let identities = self
            .reseal_column(
                "SELECT name, name, key_pem FROM server_identity",
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

fn text(row: &PgRow, index: usize) -> Result<String, StoreError> {
    row.try_get(index)
        .map_err(|e| StoreError::new("decode a row", e))
}

fn key_from_row(row: &PgRow) -> Result<CertKey, StoreError> {
    Ok(CertKey {
        names: names(&text(row, 0)?)?,
        key_type: key_type(&text(row, 1)?)?,
    })
}

fn names(stored: &str) -> Result<NameSet, StoreError> {
    NameSet::parse(&stored.split(',').collect::<Vec<_>>())
        .map_err(|e| StoreError::new("decode stored names", e))
}

fn key_type(stored: &str) -> Result<KeyType, StoreError> {
    KeyType::parse(stored).ok_or_else(|| {
        StoreError::new(
            "decode stored key type",
            format!("unknown key type {stored:?}"),
        )
    })
}

fn cert_from_row(row: &PgRow) -> Result<StoredCert, StoreError> {
    let get = |e| StoreError::new("decode certificate row", e);
    Ok(StoredCert {
        names: names(&row.try_get::<String, _>("names").map_err(get)?)?,
        key_type: key_type(&row.try_get::<String, _>("key_type").map_err(get)?)?,
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
