//! Audit rows on SQLite: appended on the store's writer connection through the outbox writer
//! (`sqlite_outbox.rs`), in the transaction of whatever group it runs with.
//!
//! Through the sqlx pool an append had to win SQLite's write lock from the ingest writer, whose
//! commits follow each other closely under load; the busy handler's sleeps then held a
//! clinician's answer for seconds. On the writer's own connection it takes turns with ingest.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use crate::audit::{AuditEntry, GENESIS, chain_hash};

/// Appends `entries` after the log's last row, each chained to the one before; their ids.
pub(super) fn append(c: &Connection, entries: &[AuditEntry]) -> Result<Vec<i64>, StoreError> {
    let last: Option<(i64, String)> = c
        .prepare_cached("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (mut id, mut prev) = last.unwrap_or((0, GENESIS.to_string()));
    let mut insert = c.prepare_cached(
        "INSERT INTO audit_log (id, at, subject, role, action, status, persons, person_count, purpose, client, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    let mut index =
        c.prepare_cached("INSERT OR IGNORE INTO audit_persons (person_id, audit_id) VALUES (?1, ?2)")?;
    let mut ids = Vec::with_capacity(entries.len());
    for e in entries {
        id += 1;
        let hash = chain_hash(&prev, id, e);
        insert.execute(params![
            id,
            e.at,
            e.subject,
            e.role,
            e.action,
            e.status,
            serde_json::to_string(&e.persons)?,
            e.person_count,
            e.purpose,
            e.client,
            prev,
            hash
        ])?;
        for p in &e.persons {
            index.execute(params![p, id])?;
        }
        ids.push(id);
        prev = hash;
    }
    Ok(ids)
}
