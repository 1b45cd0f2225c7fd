//! The PostgreSQL backend: one database shared by every replica. What is PostgreSQL's own: how
//! it connects (pool size, TLS to the server with a private CA), and its migrations, applied
//! under the migrator's advisory lock so replicas may start together. Every statement is the SQL
//! store's ([`super::sql`]), so both backends answer alike; `tests/it/store_story.rs` runs one story
//! against both.

use std::str::FromStr;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow, PgSslMode, Postgres};

use super::StoreError;
use super::backend::sqlx_backend;
use crate::config::PostgresConfig;

/// A pool of connections to one PostgreSQL database.
#[derive(Debug)]
pub struct PgBackend {
    pool: PgPool,
}

sqlx_backend!(PgBackend, Postgres, PgRow, pool);

impl PgBackend {
    /// Connects with the pool settings of `config` and applies pending migrations. Several
    /// processes may do this at once: the migrator holds a PostgreSQL advisory lock while it
    /// checks and applies (sqlx's `locking`, on by default), so the others wait and then find
    /// nothing to do.
    pub async fn open(config: &PostgresConfig) -> Result<Self, StoreError> {
        // The driver's message for a bad URL never repeats the URL (it may hold a password).
        let mut options = PgConnectOptions::from_str(config.url.expose())
            .map_err(|e| StoreError::new("parse storage.url", e))?;
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
        migrator!("postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::new("apply migrations", e))?;
        Ok(Self { pool })
    }
}
