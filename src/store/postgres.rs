//! The PostgreSQL backend: for production and for several hub replicas.
//!
//! Its queries are the shared ones (`sql.rs`). What differs from SQLite: each statement of a
//! batch runs on its own (the extended protocol takes one statement per query), and a batch
//! transaction first takes a transaction-scoped advisory lock, so that batches from several
//! replicas are applied one after the other and the ids a batch allocates stay its own.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::StoreError;
use super::batch::{self, Lookups, Plan};
use super::sql::{CHUNK, LOOKUP_TERMS, LOOKUP_VALUES, now, store_queries};
use super::types::*;
use crate::model::ProfilePatch;

/// The advisory lock key that serialises ingest batches ("carehub" in a number).
const INGEST_LOCK: i64 = 0x0063_6172_6568_7562;

#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn open(url: &str, max_connections: u32, timeout: Duration) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(timeout)
            .connect_with(options)
            .await?;
        Ok(PgStore { pool })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("migrations/postgres").run(&self.pool).await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn apply_batch(&self, records: &[NewRecord]) -> Result<Vec<Applied>, StoreError> {
        // READ COMMITTED whatever the server's default: the snapshot must be taken after the
        // lock is granted, so that MAX(id) and the look-ups see the previous batch.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(INGEST_LOCK)
            .execute(&mut *tx)
            .await?;
        let lookups = Self::ingest_lookup(&mut tx, records).await?;
        let plan = batch::plan(records, lookups)?;
        Self::ingest_write(&mut tx, &plan).await?;
        tx.commit().await?;
        Ok(plan.applied)
    }
}

store_queries!(PgStore, sqlx::Postgres, sqlx::postgres::PgRow, false);
