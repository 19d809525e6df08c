//! The SQLite side of a group commit: one query to look up what a batch needs, one
//! multi-statement query to write it.
//!
//! sqlx runs each SQLite query on the connection's worker thread; every query is a round trip
//! between threads, which on two busy cores costs more than the SQL itself. So a batch is
//! four round trips — BEGIN, look-up, write, COMMIT — whatever its size. Anonymous `?`
//! parameters number on across the statements of one query.

use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use super::StoreError;
use super::batch::{self, Lookups, Plan};
use super::types::NewRecord;
use crate::model::ProfilePatch;

/// Rows per statement: SQLite allows 32,766 bound values and the widest row binds 16.
const CHUNK: usize = 500;

fn push_list(q: &mut QueryBuilder<Sqlite>, values: &[String]) {
    q.push("(");
    let mut sep = q.separated(", ");
    for v in values {
        sep.push_bind(v.clone());
    }
    sep.push_unseparated(")");
}

/// Everything a batch needs to know, in one UNION ALL query. Columns: kind, id, a, b, c, d, e.
pub async fn lookup(tx: &mut Transaction<'_, Sqlite>, records: &[NewRecord]) -> Result<Lookups, StoreError> {
    let keys = batch::lookup_keys(records);
    let mut q = QueryBuilder::<Sqlite>::new(
        "SELECT 'n' AS kind, (SELECT COALESCE(MAX(id), 0) + 1 FROM messages) AS id, NULL AS a, NULL AS b, NULL AS c, \
         NULL AS d, NULL AS e \
         UNION ALL SELECT 'r', (SELECT COALESCE(MAX(id), 0) + 1 FROM source_records), NULL, NULL, NULL, NULL, NULL",
    );
    for chunk in keys.control_ids.chunks(CHUNK) {
        // The status is filtered after: a status condition lures SQLite onto the status index.
        q.push(
            " UNION ALL SELECT 'm', id, sender, control_id, content_hash, person_id, status FROM messages \
             WHERE control_id IN ",
        );
        push_list(&mut q, chunk);
    }
    for chunk in keys.identifier_values.chunks(CHUNK) {
        q.push(" UNION ALL SELECT 'i', NULL, system, value, person_id, NULL, NULL FROM identifiers WHERE value IN ");
        push_list(&mut q, chunk);
        q.push(
            " UNION ALL SELECT 'p', NULL, id, profile, NULL, NULL, NULL FROM persons \
             WHERE id IN (SELECT person_id FROM identifiers WHERE value IN ",
        );
        push_list(&mut q, chunk);
        q.push(")");
    }
    for chunk in keys.source_keys.chunks(CHUNK) {
        q.push(" UNION ALL SELECT 's', id, source_system, source_key, NULL, NULL, NULL FROM source_records WHERE source_key IN ");
        push_list(&mut q, chunk);
    }
    let mut l = Lookups::default();
    for row in q.build().fetch_all(&mut **tx).await? {
        let kind: String = row.get("kind");
        match kind.as_str() {
            "n" => l.next_message_id = row.get("id"),
            "r" => l.next_source_record_id = row.get("id"),
            "m" => {
                let status: String = row.get("e");
                if status != "processed" && status != "unmapped" {
                    continue;
                }
                let id: i64 = row.get("id");
                let person: Option<String> = row.get("d");
                let key = (row.get("a"), row.get("b"), row.get("c"));
                let entry = l.accepted.entry(key).or_insert((id, person.clone()));
                if id < entry.0 {
                    *entry = (id, person);
                }
            }
            "i" => {
                l.identifiers.insert((row.get("a"), row.get("b")), row.get("c"));
            }
            "p" => {
                let profile: String = row.get("b");
                l.profiles
                    .insert(row.get("a"), serde_json::from_str::<ProfilePatch>(&profile)?);
            }
            "s" => {
                l.source_records
                    .insert((row.get("a"), row.get("b")), row.get("id"));
            }
            _ => {}
        }
    }
    Ok(l)
}

/// Writes a planned batch in one multi-statement query.
pub async fn write(tx: &mut Transaction<'_, Sqlite>, plan: &Plan<'_>) -> Result<(), StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new("");
    for chunk in plan.persons.chunks(CHUNK) {
        q.push("INSERT INTO persons (id, profile, created_at, updated_at) ");
        q.push_values(chunk, |mut b, p| {
            b.push_bind(&p.id)
                .push_bind(&p.profile)
                .push_bind(&p.created_at)
                .push_bind(&p.updated_at);
        });
        q.push(
            " ON CONFLICT (id) DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at; ",
        );
    }
    for chunk in plan.source_records.chunks(CHUNK) {
        q.push(
            "INSERT INTO source_records (id, source_system, source_key, person_id, patch, last_message_id, \
             created_at, updated_at) ",
        );
        q.push_values(chunk, |mut b, s| {
            b.push_bind(s.id)
                .push_bind(&s.source_system)
                .push_bind(&s.source_key)
                .push_bind(&s.person_id)
                .push_bind(&s.patch)
                .push_bind(s.last_message_id)
                .push_bind(&s.at)
                .push_bind(&s.at);
        });
        q.push(
            " ON CONFLICT (id) DO UPDATE SET patch = excluded.patch, last_message_id = excluded.last_message_id, \
             updated_at = excluded.updated_at; ",
        );
    }
    for chunk in plan.identifiers.chunks(CHUNK) {
        q.push("INSERT INTO identifiers (system, value, kind, person_id, source_record_id, created_at) ");
        q.push_values(chunk, |mut b, i| {
            b.push_bind(&i.system)
                .push_bind(&i.value)
                .push_bind(&i.kind)
                .push_bind(&i.person_id)
                .push_bind(i.source_record_id)
                .push_bind(&i.at);
        });
        q.push(" ON CONFLICT (value, system) DO NOTHING; ");
    }
    for chunk in plan.messages.chunks(CHUNK) {
        q.push(
            "INSERT INTO messages (id, connector, origin, received_at, sender, control_id, message_type, charset, \
             content_hash, raw, status, error, warnings, mapping, person_id, duplicate_of) ",
        );
        q.push_values(chunk, |mut b, m| {
            let r = m.record;
            b.push_bind(m.id)
                .push_bind(&r.connector)
                .push_bind(&r.origin)
                .push_bind(&r.received_at)
                .push_bind(&r.sender)
                .push_bind(&r.control_id)
                .push_bind(&r.message_type)
                .push_bind(&r.charset)
                .push_bind(&r.content_hash)
                .push_bind(&r.raw)
                .push_bind(m.status.as_str())
                .push_bind(&m.error)
                .push_bind(&m.warnings)
                .push_bind(&m.mapping)
                .push_bind(&m.person_id)
                .push_bind(m.duplicate_of);
        });
        q.push("; ");
    }
    let ts = jiff::Timestamp::now().to_string();
    for (name, c) in &plan.counters {
        q.push(
            "INSERT INTO connectors (name, kind, state, received, processed, errors, duplicates, unmapped, \
             last_message_at, updated_at) VALUES (",
        );
        let mut sep = q.separated(", ");
        sep.push_bind(name.clone());
        sep.push("'unknown'");
        sep.push("'running'");
        sep.push_bind(c.received);
        sep.push_bind(c.processed);
        sep.push_bind(c.errors);
        sep.push_bind(c.duplicates);
        sep.push_bind(c.unmapped);
        sep.push_bind(c.last_message_at.clone());
        sep.push_bind(ts.clone());
        q.push(
            ") ON CONFLICT (name) DO UPDATE SET received = received + excluded.received, \
             processed = processed + excluded.processed, errors = errors + excluded.errors, \
             duplicates = duplicates + excluded.duplicates, unmapped = unmapped + excluded.unmapped, \
             last_message_at = excluded.last_message_at, updated_at = excluded.updated_at; ",
        );
    }
    q.build().execute(&mut **tx).await?;
    Ok(())
}
