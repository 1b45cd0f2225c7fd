//! The seam between the SQL store ([`super::sql`]) and a database driver: run a statement with
//! arguments, read rows by column position, run statements in one transaction.
//!
//! The store's SQL is written once for every backend: `$n` placeholders, `INSERT ... ON CONFLICT`
//! upserts, integer Unix seconds and text columns, all of which SQLite and PostgreSQL read
//! alike. A backend supplies only what differs: how to connect, its migrations (and how they are
//! locked against processes starting together), and the driver calls behind this trait.

use std::fmt;

use async_trait::async_trait;

/// One argument bound to a statement: the only kinds the schema uses.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// A `TEXT` value.
    Text(&'a str),
    /// A `TEXT` value or `NULL`.
    OptionalText(Option<&'a str>),
    /// An `INTEGER` (`BIGINT`) value: counts and Unix seconds.
    Int(i64),
    /// An `INTEGER` (`BIGINT`) value or `NULL`.
    OptionalInt(Option<i64>),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(text: &'a str) -> Self {
        Self::Text(text)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(text: &'a String) -> Self {
        Self::Text(text)
    }
}

impl From<i64> for Arg<'_> {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

/// One row of a result, read by column position.
pub trait Row: Send {
    /// A `TEXT NOT NULL` column.
    fn text(&self, column: usize) -> Result<String, sqlx::Error>;
    /// A nullable `TEXT` column.
    fn optional_text(&self, column: usize) -> Result<Option<String>, sqlx::Error>;
    /// An `INTEGER NOT NULL` column.
    fn int(&self, column: usize) -> Result<i64, sqlx::Error>;
    /// A nullable `INTEGER` column (an aggregate over no rows).
    fn optional_int(&self, column: usize) -> Result<Option<i64>, sqlx::Error>;
}

/// A database the SQL store runs its statements on. Every method is one round trip (or one
/// transaction), so a backend is safe to share between tasks.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// The driver's row type.
    type Row: Row;

    /// Runs a statement; returns how many rows it changed.
    async fn execute(&self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, sqlx::Error>;

    /// Runs a query; returns every row.
    async fn fetch_all(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Vec<Self::Row>, sqlx::Error>;

    /// Runs a query; returns its first row, if any.
    async fn fetch_optional(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Option<Self::Row>, sqlx::Error>;

    /// Runs `statements` in order in one transaction: all of them or none.
    async fn execute_all(
        &self,
        statements: &[(&'static str, &[Arg<'_>])],
    ) -> Result<(), sqlx::Error>;

    /// Runs `statements` in order in one transaction, unless the first changes no row: then
    /// none is run and the answer is false (a change and the event that reports it, written
    /// only when the change happened).
    async fn execute_guarded(
        &self,
        statements: &[(&'static str, &[Arg<'_>])],
    ) -> Result<bool, sqlx::Error>;
}

/// Implements [`Backend`] and [`Row`] for one sqlx driver: the driver calls are the same for
/// every driver, only the types differ, and sqlx has no trait for `rows_affected`.
macro_rules! sqlx_backend {
    ($backend:ty, $db:ty, $row:ty, $pool:ident) => {
        impl $crate::store::backend::Row for $row {
            fn text(&self, column: usize) -> Result<String, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn optional_text(&self, column: usize) -> Result<Option<String>, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn int(&self, column: usize) -> Result<i64, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn optional_int(&self, column: usize) -> Result<Option<i64>, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::backend::Backend for $backend {
            type Row = $row;

            async fn execute(
                &self,
                sql: &'static str,
                args: &[$crate::store::backend::Arg<'_>],
            ) -> Result<u64, sqlx::Error> {
                let query = bind(sqlx::query::<$db>(sql), args);
                Ok(query.execute(&self.$pool).await?.rows_affected())
            }

            async fn fetch_all(
                &self,
                sql: &'static str,
                args: &[$crate::store::backend::Arg<'_>],
            ) -> Result<Vec<$row>, sqlx::Error> {
                bind(sqlx::query::<$db>(sql), args)
                    .fetch_all(&self.$pool)
                    .await
            }

            async fn fetch_optional(
                &self,
                sql: &'static str,
                args: &[$crate::store::backend::Arg<'_>],
            ) -> Result<Option<$row>, sqlx::Error> {
                bind(sqlx::query::<$db>(sql), args)
                    .fetch_optional(&self.$pool)
                    .await
            }

            async fn execute_all(
                &self,
                statements: &[(&'static str, &[$crate::store::backend::Arg<'_>])],
            ) -> Result<(), sqlx::Error> {
                let mut tx = self.$pool.begin().await?;
                for (sql, args) in statements {
                    bind(sqlx::query::<$db>(*sql), args)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            }

            async fn execute_guarded(
                &self,
                statements: &[(&'static str, &[$crate::store::backend::Arg<'_>])],
            ) -> Result<bool, sqlx::Error> {
                let mut tx = self.$pool.begin().await?;
                for (i, (sql, args)) in statements.iter().enumerate() {
                    let changed = bind(sqlx::query::<$db>(*sql), args)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if i == 0 && changed == 0 {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                }
                tx.commit().await?;
                Ok(true)
            }
        }

        /// Binds `args` in order, as `$1`, `$2`, ...
        fn bind<'q>(
            mut query: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>,
            args: &[$crate::store::backend::Arg<'_>],
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments> {
            use $crate::store::backend::Arg;
            for arg in args {
                query = match *arg {
                    Arg::Text(text) => query.bind(text),
                    Arg::OptionalText(text) => query.bind(text),
                    Arg::Int(value) => query.bind(value),
                    Arg::OptionalInt(value) => query.bind(value),
                };
            }
            query
        }
    };
}

pub(super) use sqlx_backend;
