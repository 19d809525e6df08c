//! The SQLite backend: one file, WAL journal, one writer at a time.
//!
//! Its queries are the shared ones (`sql.rs`); here: opening with the pragmas that matter, and
//! the batch transaction, which takes the write lock first (`BEGIN IMMEDIATE`) and sends all
//! of a batch's writes as one multi-statement query — sqlx runs each SQLite query on a worker
//! thread, and every round trip between threads costs more than the SQL.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::StoreError;
use super::batch::{self, Lookups, Plan};
use super::sql::{CHUNK, LOOKUP_TERMS, LOOKUP_VALUES, now, store_queries};
use super::types::*;
use crate::config::SqliteSync;
use crate::model::ProfilePatch;

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn open(
        path: &str,
        max_connections: u32,
        timeout: Duration,
        sync: SqliteSync,
        create: bool,
    ) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = std::path::Path::new(path).parent()
            && create
            && !parent.as_os_str().is_empty()
            && !path.starts_with(':')
        {
            std::fs::create_dir_all(parent).map_err(StoreError::Folder)?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL (the default): a commit is on disk before its ACK goes out, even across a
            // power loss. NORMAL survives a crash of the process only. Group commit pays the
            // sync once per group.
            .synchronous(match sync {
                SqliteSync::Full => SqliteSynchronous::Full,
                SqliteSync::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // A larger page cache and memory-mapped reads keep look-ups off the read syscall.
            .pragma("cache_size", "-65536")
            .pragma("mmap_size", "268435456")
            .pragma("temp_store", "memory")
            // Checkpoint every ~40 MB of WAL instead of ~4 MB: an index page touched by many
            // commits is copied back to the database once, not once per few commits.
            .pragma("wal_autocheckpoint", "10000");
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(2))
            // A local file needs no liveness ping before each use; it costs a round trip per batch.
            .test_before_acquire(false)
            .acquire_timeout(timeout)
            .connect_with(options)
            .await?;
        Ok(SqliteStore { pool })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("migrations/sqlite").run(&self.pool).await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn apply_batch(&self, records: &[NewRecord]) -> Result<Vec<Applied>, StoreError> {
        // IMMEDIATE: take the write lock first, so the ids read below stay ours.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let lookups = Self::ingest_lookup(&mut tx, records).await?;
        let plan = batch::plan(records, lookups)?;
        Self::ingest_write(&mut tx, &plan).await?;
        tx.commit().await?;
        Ok(plan.applied)
    }
}

store_queries!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow, true);
