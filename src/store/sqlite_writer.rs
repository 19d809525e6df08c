//! The SQLite ingest writer: one connection of its own, driven synchronously.
//!
//! sqlx runs every SQLite query on a worker thread and wakes the calling task when it is done;
//! a batch transaction of five queries made ten thread hops, and under load each hop waited
//! behind the connection tasks for a turn on the runtime — the single writer spent more time
//! waiting to be scheduled than writing. This connection belongs to one thread (the pipeline's
//! writer thread, or a blocking task for other callers): a batch is point look-ups and single
//! row inserts through prepared statements, back to back, then one commit. Reads stay on the
//! sqlx pool; WAL lets them run beside the writer.
//!
//! The planning is the shared one (`batch.rs`); only the statements differ from PostgreSQL's.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::StoreError;
use super::batch::{self, Lookups, Plan};
use super::types::*;
use crate::config::SqliteSync;
use crate::model::ProfilePatch;

/// The writer connection.
pub struct SqliteWriter {
    conn: Connection,
}

impl std::fmt::Debug for SqliteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteWriter")
    }
}

impl SqliteWriter {
    /// Opens the store's file for writing. The schema must exist (the sqlx side migrates it).
    pub fn open(path: &str, sync: SqliteSync) -> Result<SqliteWriter, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // The same settings as the pool's connections (see `sqlite.rs` for the why of each).
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; PRAGMA foreign_keys = ON;
             PRAGMA cache_size = -65536; PRAGMA mmap_size = 268435456; PRAGMA temp_store = memory;
             PRAGMA wal_autocheckpoint = 10000;",
            match sync {
                SqliteSync::Full => "FULL",
                SqliteSync::Normal => "NORMAL",
            }
        ))?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(SqliteWriter { conn })
    }

    /// Writes a group of records in one transaction (see [`super::Store::apply_batch`]).
    pub fn apply_batch(&mut self, records: &[NewRecord]) -> Result<Vec<Applied>, StoreError> {
        // IMMEDIATE: take the write lock first, so the ids read below stay ours.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let lookups = lookup(&tx, records)?;
        let plan = batch::plan(records, lookups)?;
        write(&tx, &plan)?;
        tx.commit()?;
        Ok(plan.applied)
    }
}

/// Everything the planner needs to know, by point look-ups on the indexes.
fn lookup(c: &Connection, records: &[NewRecord]) -> Result<Lookups, StoreError> {
    let keys = batch::lookup_keys(records);
    let mut l = Lookups {
        next_message_id: c
            .prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM messages")?
            .query_row([], |r| r.get(0))?,
        next_source_record_id: c
            .prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM source_records")?
            .query_row([], |r| r.get(0))?,
        ..Lookups::default()
    };

    let mut by_control_id = c.prepare_cached(
        "SELECT id, sender, control_id, content_hash, person_id, status FROM messages WHERE control_id = ?1",
    )?;
    for control_id in &keys.control_ids {
        let mut rows = by_control_id.query([control_id])?;
        while let Some(row) = rows.next()? {
            let status: String = row.get(5)?;
            if status != "processed" && status != "unmapped" {
                continue;
            }
            let id: i64 = row.get(0)?;
            let person: Option<String> = row.get(4)?;
            let entry = l
                .accepted
                .entry((row.get(1)?, row.get(2)?, row.get(3)?))
                .or_insert((id, person.clone()));
            if id < entry.0 {
                *entry = (id, person);
            }
        }
    }

    let mut by_value =
        c.prepare_cached("SELECT system, value, person_id FROM identifiers WHERE value = ?1")?;
    let mut profile = c.prepare_cached("SELECT profile FROM persons WHERE id = ?1")?;
    for value in &keys.identifier_values {
        let mut rows = by_value.query([value])?;
        while let Some(row) = rows.next()? {
            let person: String = row.get(2)?;
            if !l.profiles.contains_key(&person) {
                let text: Option<String> = profile.query_row([&person], |r| r.get(0)).optional()?;
                if let Some(text) = text {
                    l.profiles
                        .insert(person.clone(), serde_json::from_str::<ProfilePatch>(&text)?);
                }
            }
            l.identifiers.insert((row.get(0)?, row.get(1)?), person);
        }
    }

    let mut by_key =
        c.prepare_cached("SELECT id, source_system, source_key FROM source_records WHERE source_key = ?1")?;
    for key in &keys.source_keys {
        let mut rows = by_key.query([key])?;
        while let Some(row) = rows.next()? {
            l.source_records.insert((row.get(1)?, row.get(2)?), row.get(0)?);
        }
    }
    Ok(l)
}

/// Writes a planned batch, row by row through prepared statements.
fn write(c: &Connection, plan: &Plan<'_>) -> Result<(), StoreError> {
    let mut person = c.prepare_cached(
        "INSERT INTO persons (id, profile, created_at, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at",
    )?;
    for p in &plan.persons {
        person.execute(params![p.id, p.profile, p.created_at, p.updated_at])?;
    }
    let mut source = c.prepare_cached(
        "INSERT INTO source_records (id, source_system, source_key, person_id, patch, last_message_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
         ON CONFLICT (id) DO UPDATE SET patch = excluded.patch, last_message_id = excluded.last_message_id,
           updated_at = excluded.updated_at",
    )?;
    for s in &plan.source_records {
        source.execute(params![
            s.id,
            s.source_system,
            s.source_key,
            s.person_id,
            s.patch,
            s.last_message_id,
            s.at
        ])?;
    }
    let mut identifier = c.prepare_cached(
        "INSERT INTO identifiers (system, value, kind, person_id, source_record_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (value, system) DO NOTHING",
    )?;
    for i in &plan.identifiers {
        identifier.execute(params![
            i.system,
            i.value,
            i.kind,
            i.person_id,
            i.source_record_id,
            i.at
        ])?;
    }
    let mut message = c.prepare_cached(
        "INSERT INTO messages (id, connector, origin, received_at, sender, control_id, message_type, charset,
           content_hash, raw, status, error, warnings, mapping, person_id, duplicate_of)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?;
    for m in &plan.messages {
        let r = m.record;
        message.execute(params![
            m.id,
            r.connector,
            r.origin,
            r.received_at,
            r.sender,
            r.control_id,
            r.message_type,
            r.charset,
            r.content_hash,
            r.raw,
            m.status.as_str(),
            m.error,
            m.warnings,
            m.mapping,
            m.person_id,
            m.duplicate_of
        ])?;
    }
    let mut counter = c.prepare_cached(
        "INSERT INTO connectors (name, kind, state, received, processed, errors, duplicates, unmapped,
           last_message_at, updated_at)
         VALUES (?1, 'unknown', 'running', ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (name) DO UPDATE SET received = connectors.received + excluded.received,
           processed = connectors.processed + excluded.processed, errors = connectors.errors + excluded.errors,
           duplicates = connectors.duplicates + excluded.duplicates, unmapped = connectors.unmapped + excluded.unmapped,
           last_message_at = excluded.last_message_at, updated_at = excluded.updated_at",
    )?;
    let now = jiff::Timestamp::now().to_string();
    for (name, n) in &plan.counters {
        counter.execute(params![
            name,
            n.received,
            n.processed,
            n.errors,
            n.duplicates,
            n.unmapped,
            n.last_message_at,
            now
        ])?;
    }
    Ok(())
}
