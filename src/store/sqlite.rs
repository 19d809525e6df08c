//! The SQLite backend: one file, WAL journal, one writer at a time.
//!
//! Its read queries are the shared ones (`sql.rs`), over a sqlx pool; here: opening with the
//! pragmas that matter. Ingest batches go through a connection of their own, driven
//! synchronously (`sqlite_writer.rs`): sqlx's thread hop per query cost more than the SQL.

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::StoreError;
use super::cipher::StoreKey;
use super::sql::{CHUNK, like_escape, now, store_queries};
use super::sql_access::{AuditFilter, TokenRecord, access_queries};
use super::sql_clinical::clinical_queries;
use super::sql_console::{FailedSend, RATE_SCAN_ROWS, SessionRecord, console_queries};
use super::sql_identity::identity_queries;
use super::sql_messages::message_queries;
use super::sql_notify::notify_queries;
use super::sql_ops::ops_queries;
use super::sql_pull::pull_queries;
use super::sql_queue::queue_queries;
use super::sql_retention::{PrunePlan, PruneReport, retention_queries};
use super::sql_schedule::schedule_queries;
use super::sql_subscriptions::{DeliveryCounts, DeliveryToSend, SubscriptionRow, subscription_queries};
use super::sqlite_outbox::OutboxWriter;
use super::sqlite_writer::{Checkpointer, SqliteWriter};
use super::types::*;
use crate::config::SqliteSync;
use crate::identity::Matcher;
use crate::model::ProfilePatch;
use crate::rules::RuleSet;

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    path: String,
    sync: SqliteSync,
    /// Ingest writes go through their own connection (see `sqlite_writer.rs`).
    writer: Arc<Mutex<Option<SqliteWriter>>>,
    /// Turns for the pool's writers (see [`SqliteStore::write_gate`]).
    gate: Arc<tokio::sync::Mutex<()>>,
    /// Set by the first failed sync of the write-ahead log (see [`SqliteStore::make_durable`]).
    sync_failed: Arc<std::sync::atomic::AtomicBool>,
    /// Where that log is, found on the first sync (symbolic links resolved once, not per sync).
    wal: Arc<std::sync::OnceLock<std::path::PathBuf>>,
    /// The thread the outbox's and the embedded queue's writes go through, started on first
    /// use (see `sqlite_outbox.rs`).
    outbox: Arc<std::sync::OnceLock<OutboxWriter>>,
    /// Checkpoints the write-ahead log off the writer's thread, started with the writer.
    checkpointer: Arc<std::sync::OnceLock<Option<Checkpointer>>>,
    /// The SQLCipher key every connection opens with (`sqlite_cipher.rs`); none: plain SQLite.
    key: Option<Arc<StoreKey>>,
}

impl SqliteStore {
    pub async fn open(
        path: &str,
        max_connections: u32,
        timeout: Duration,
        sync: SqliteSync,
        create: bool,
        key: Option<Arc<StoreKey>>,
    ) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = std::path::Path::new(path).parent()
            && create
            && !parent.as_os_str().is_empty()
            && !path.starts_with(':')
        {
            std::fs::create_dir_all(parent).map_err(StoreError::Folder)?;
        }
        // A key that does not fit gets its own error here, not "file is not a database" later.
        super::sqlite_cipher::check_key(path, key.as_deref())?;
        let mut options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?;
        if let Some(k) = &key {
            // sqlx runs `key` first of all its pragmas, as SQLCipher needs.
            options = options.pragma("key", k.sqlcipher_literal());
        }
        let options = options
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
        Ok(SqliteStore {
            pool,
            path: path.to_string(),
            sync,
            writer: Arc::new(Mutex::new(None)),
            gate: Arc::new(tokio::sync::Mutex::new(())),
            sync_failed: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            wal: Arc::new(std::sync::OnceLock::new()),
            outbox: Arc::new(std::sync::OnceLock::new()),
            checkpointer: Arc::new(std::sync::OnceLock::new()),
            key,
        })
    }

    /// A message body as read: SQLCipher already decrypted the page it was on.
    pub fn open_raw(&self, raw: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        Ok(raw)
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("migrations/sqlite").run(&self.pool).await?;
        Ok(())
    }

    /// See [`super::Store::close`].
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Writes a group of records in one transaction, on the calling thread (see
    /// `sqlite_writer.rs`). The writer connection opens on first use, after migrations.
    ///
    /// The commit does not wait for the disk: [`Self::make_durable`] does, for every commit
    /// before it at once.
    pub fn apply_batch_blocking(
        &self,
        records: &[NewRecord],
        matcher: &Matcher,
        rules: &RuleSet,
    ) -> Result<Vec<Applied>, StoreError> {
        self.with_writer(|w| w.apply_batch(records, matcher, rules))
    }

    /// Makes the writer's commits so far survive a power loss, as `synchronous = FULL` would
    /// have at each of them: one sync of the write-ahead log, whose frames hold every commit.
    /// With `normal` configured there is nothing to do.
    ///
    /// Safe because the writer's connection runs `synchronous = NORMAL`: SQLite keeps the log
    /// consistent and syncs it before each checkpoint copies it into the database; only the
    /// durability of the last commits is left to this call. The log is found where SQLite puts
    /// it: beside the database file with symbolic links followed. While the writer's
    /// connection is open the log exists, so a missing one is an error, not a success.
    ///
    /// A failed sync is final until carehub restarts: after a write error the kernel may mark
    /// the lost pages clean, and a later sync would then succeed without them on disk. Every
    /// call answers the error from then on, so nobody is told "stored" again; a restart lets
    /// SQLite recover from what the disk holds, and resent messages are matched against that.
    pub fn make_durable(&self) -> Result<(), StoreError> {
        if self.sync == SqliteSync::Normal || self.path.starts_with(':') {
            return Ok(());
        }
        if self.sync_failed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(StoreError::Sync(std::io::Error::other(
                "an earlier sync of the write-ahead log failed; restart carehub once the disk is fixed",
            )));
        }
        let wal = match self.wal.get() {
            Some(wal) => Ok(wal),
            None => std::fs::canonicalize(&self.path).map(|db| {
                let mut wal = db.into_os_string();
                wal.push("-wal");
                self.wal.get_or_init(|| wal.into())
            }),
        };
        let synced = wal.and_then(std::fs::File::open).and_then(|log| log.sync_data());
        synced.map_err(|e| {
            self.sync_failed.store(true, std::sync::atomic::Ordering::Release);
            StoreError::Sync(e)
        })
    }

    /// A turn to write through the pool. SQLite has one writer at a time; the relay, the
    /// channel workers and the embedded queue write often and at once, and a connection that
    /// finds the database locked sleeps in SQLite's busy handler (1, 2, 5, 10… ms) however soon
    /// the lock is free. Waiting here instead, in line, hands the lock over as soon as it is
    /// released. (Ingest's writer has a connection of its own and does not take turns here.)
    pub async fn write_gate(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        Some(self.gate.lock().await)
    }

    /// The outbox writer, started on first use. Its thread holds a copy of this store
    /// without the writer's handle, so it ends when the last handle of the store is dropped.
    pub(super) fn outbox(&self) -> Result<&OutboxWriter, StoreError> {
        if let Some(w) = self.outbox.get() {
            return Ok(w);
        }
        let mut inner = self.clone();
        inner.outbox = Arc::new(std::sync::OnceLock::new());
        let started = OutboxWriter::start(inner)?;
        // Two first callers at once: one writer is kept, the other's thread ends at once.
        Ok(self.outbox.get_or_init(|| started))
    }

    /// Runs `f` on the writer connection, opening it on first use.
    pub(super) fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut SqliteWriter) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // After a panic (the transaction rolled back), the writer is opened afresh, with an
        // empty cache.
        let mut guard = self.writer.lock().unwrap_or_else(|poisoned| {
            let mut guard = poisoned.into_inner();
            *guard = None;
            guard
        });
        let writer = match &mut *guard {
            Some(w) => w,
            none => none.insert(SqliteWriter::open(&self.path, self.key.as_deref())?),
        };
        let result = f(writer);
        drop(guard);
        if result.is_ok() && !self.path.starts_with(':') {
            let checkpointer = self
                .checkpointer
                .get_or_init(|| Checkpointer::start(&self.path, self.key.as_deref()));
            if let Some(c) = checkpointer {
                c.poke();
            }
        }
        result
    }

    /// What ingest would do with this patch, on the writer's connection (and its cache of
    /// prepared candidates) in a read transaction: see [`super::Store::match_patch`].
    pub fn match_blocking(&self, patch: &ProfilePatch, matcher: &Matcher) -> Result<MatchResult, StoreError> {
        self.with_writer(|w| w.match_patch(patch, matcher))
    }

    /// [`Self::apply_batch_blocking`] and [`Self::make_durable`] for async callers, on a
    /// blocking thread.
    pub async fn apply_batch(
        &self,
        records: &[NewRecord],
        matcher: &Arc<Matcher>,
        rules: &Arc<RuleSet>,
    ) -> Result<Vec<Applied>, StoreError> {
        let this = self.clone();
        let records = records.to_vec();
        let (matcher, rules) = (matcher.clone(), rules.clone());
        tokio::task::spawn_blocking(move || {
            let applied = this.apply_batch_blocking(&records, &matcher, &rules)?;
            this.make_durable()?;
            Ok(applied)
        })
        .await
        .map_err(|_| StoreError::WriterGone)?
    }
}

store_queries!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow);
message_queries!(SqliteStore, sqlx::Sqlite);

identity_queries!(
    SqliteStore,
    sqlx::Sqlite,
    sqlx::sqlite::SqliteRow,
    "BEGIN IMMEDIATE",
    "SELECT 1"
);

clinical_queries!(SqliteStore);
notify_queries!(SqliteStore);
schedule_queries!(SqliteStore);
queue_queries!(SqliteStore);
pull_queries!(SqliteStore, sqlx::sqlite::SqliteRow);
ops_queries!(SqliteStore, sqlx::sqlite::SqliteRow);
access_queries!(
    SqliteStore,
    sqlx::sqlite::SqliteRow,
    "BEGIN IMMEDIATE",
    "SELECT 1"
);
retention_queries!(SqliteStore, sqlx::Sqlite);
console_queries!(SqliteStore, sqlx::sqlite::SqliteRow);
subscription_queries!(
    SqliteStore,
    sqlx::Sqlite,
    sqlx::sqlite::SqliteRow,
    "BEGIN IMMEDIATE"
);
