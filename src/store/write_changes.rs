//! Writing a batch's change events (`batch_changes.rs`) on each backend, inside the batch's
//! transaction: the SQLite writer's connection (rusqlite) and PostgreSQL's (sqlx).

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use super::batch::{self, Plan};
use super::sql::{CHUNK, now};
use super::sql_subscriptions::ChangeRow;

/// SQLite: the batch's change events, computed before its writes (the stored golden records
/// are read first) and written by the returned closure after them.
pub fn sqlite_before(c: &Connection, plan: &Plan<'_>) -> Result<HashMap<String, String>, StoreError> {
    let mut read = c.prepare_cached("SELECT profile FROM persons WHERE id = ?1")?;
    let mut stored = HashMap::new();
    for id in batch::persons_to_compare(plan) {
        if let Some(profile) = read
            .query_row(params![id], |r| r.get::<_, String>(0))
            .optional()?
        {
            stored.insert(id, profile);
        }
    }
    Ok(stored)
}

pub fn sqlite_write(
    c: &Connection,
    plan: &Plan<'_>,
    stored: &HashMap<String, String>,
) -> Result<(), StoreError> {
    let mut insert = c.prepare_cached(
        "INSERT INTO change_events (id, event, person_id, other_person_id, record_kind, record_system, record_key, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for r in batch::changes(plan, stored, &now()) {
        insert.execute(params![
            r.id,
            r.event,
            r.person_id,
            r.other_person_id,
            r.record_kind,
            r.record_system,
            r.record_key,
            r.created_at
        ])?;
    }
    Ok(())
}

/// PostgreSQL: the stored golden records of the batch's persons, before its writes.
pub async fn pg_before(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    plan: &Plan<'_>,
) -> Result<HashMap<String, String>, StoreError> {
    let ids = batch::persons_to_compare(plan);
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, profile FROM persons WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows.into_iter().collect())
}

pub async fn pg_write(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    plan: &Plan<'_>,
    stored: &HashMap<String, String>,
) -> Result<(), StoreError> {
    let rows = batch::changes(plan, stored, &now());
    pg_insert(tx, &rows).await
}

/// Inserts change events in the caller's PostgreSQL transaction.
pub async fn pg_insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    rows: &[ChangeRow],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(CHUNK) {
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "INSERT INTO change_events (id, event, person_id, other_person_id, record_kind, record_system, record_key, created_at) ",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(&r.id)
                .push_bind(r.event)
                .push_bind(&r.person_id)
                .push_bind(&r.other_person_id)
                .push_bind(&r.record_kind)
                .push_bind(&r.record_system)
                .push_bind(&r.record_key)
                .push_bind(&r.created_at);
        });
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}
