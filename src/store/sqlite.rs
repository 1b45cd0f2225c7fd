//! The SQLite backend: one file (mode 0600, WAL journal), or memory. What is SQLite's own:
//! how it connects, the file's permissions, and the lock that lets processes sharing the file
//! migrate it one at a time. Every statement is the SQL store's ([`super::sql`]).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use super::StoreError;
use super::backend::sqlx_backend;
use crate::config::SqliteConfig;

/// A pool of connections to one SQLite database.
#[derive(Debug)]
pub struct SqliteBackend {
    pool: SqlitePool,
}

sqlx_backend!(SqliteBackend, Sqlite, SqliteRow, pool);

impl SqliteBackend {
    /// Opens (creating it 0600 when missing) the database and applies pending migrations.
    pub async fn open(config: &SqliteConfig) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(config.url.expose())
            .map_err(|e| StoreError::new("parse storage.url", e))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable in WAL mode except for the last transactions on power loss.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            // Freed pages are zeroed, so a replaced key leaves no copy in the file.
            .pragma("secure_delete", "on")
            // 256 KiB of pages per connection (SQLite's default is 2 MiB), 1 MiB over the pool:
            // the kernel's page cache holds the file as well, and a scan of a large table would
            // otherwise leave every connection's share filled for good.
            .pragma("cache_size", "-256")
            .foreign_keys(true);
        if let Some(file) = &config.file {
            create_private_file(file)?;
        }
        // Processes sharing the file may start together. The first connection switches the
        // journal to WAL, which needs the file to itself (SQLite answers "database is locked"
        // at once, without waiting out the busy timeout, while another process migrates), and
        // sqlx takes no lock around migrations: opening and migrating both run under an
        // exclusive lock on a file beside the database.
        let guard = match &config.file {
            Some(file) => Some(migration_lock(file).await?),
            None => None,
        };
        // Four connections: SQLite runs one writer at a time anyway, reads are short, and each
        // connection keeps its own page cache and prepared statements (memory at 100,000
        // certificates: bench/README.md).
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::new("open database", e))?;
        migrator!("sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::new("apply migrations", e))?;
        drop(guard);
        Ok(Self { pool })
    }
}

/// Creates the database file with mode 0600 before SQLite does: it holds private keys. SQLite
/// gives its `-wal` and `-shm` files the main file's permissions.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
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
