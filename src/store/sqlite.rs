//! The SQLite backend: one file, WAL journal, one writer at a time.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::StoreError;
use super::types::*;
use crate::model::ProfilePatch;

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

impl SqliteStore {
    pub async fn open(
        path: &str,
        max_connections: u32,
        timeout: Duration,
    ) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = std::path::Path::new(path).parent()
            && !parent.as_os_str().is_empty()
            && !path.starts_with(':')
        {
            std::fs::create_dir_all(parent).map_err(StoreError::Folder)?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable against a process crash; an OS crash may lose the last
            // commits. `FULL` is one line away if a clinic wants that trade.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(2))
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
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(records.len());
        let mut counters: HashMap<&str, Counters> = HashMap::new();
        for r in records {
            let applied = apply_one(&mut tx, r).await?;
            let c = counters.entry(r.connector.as_str()).or_default();
            c.received += 1;
            c.last = Some(r.received_at.as_str());
            match applied.status {
                MessageStatus::Processed => c.processed += 1,
                MessageStatus::Error => c.errors += 1,
                MessageStatus::Duplicate => c.duplicates += 1,
                MessageStatus::Unmapped => c.unmapped += 1,
                MessageStatus::Received => {}
            }
            out.push(applied);
        }
        let ts = now();
        for (name, c) in counters {
            sqlx::query(
                "INSERT INTO connectors (name, kind, state, received, processed, errors, duplicates, unmapped, last_message_at, updated_at)
                 VALUES ($1, 'unknown', 'running', $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (name) DO UPDATE SET
                   received = received + excluded.received,
                   processed = processed + excluded.processed,
                   errors = errors + excluded.errors,
                   duplicates = duplicates + excluded.duplicates,
                   unmapped = unmapped + excluded.unmapped,
                   last_message_at = excluded.last_message_at,
                   updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(c.received)
            .bind(c.processed)
            .bind(c.errors)
            .bind(c.duplicates)
            .bind(c.unmapped)
            .bind(c.last)
            .bind(&ts)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    pub async fn find_persons(
        &self,
        value: &str,
        system: Option<&str>,
    ) -> Result<Vec<PersonView>, StoreError> {
        let ids: Vec<String> = match system {
            Some(sys) => {
                sqlx::query_scalar(
                    "SELECT DISTINCT person_id FROM identifiers WHERE value = $1 AND system = $2 LIMIT 100",
                )
                .bind(value)
                .bind(sys)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query_scalar("SELECT DISTINCT person_id FROM identifiers WHERE value = $1 LIMIT 100")
                    .bind(value)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let mut out = Vec::new();
        for id in ids {
            if let Some(p) = self.person(&id).await? {
                out.push(p);
            }
        }
        Ok(out)
    }

    pub async fn person(&self, id: &str) -> Result<Option<PersonView>, StoreError> {
        let Some(row) = sqlx::query("SELECT id, profile, created_at, updated_at FROM persons WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let profile: String = row.get("profile");
        let identifiers = sqlx::query("SELECT system, value, kind FROM identifiers WHERE person_id = $1 ORDER BY created_at, system, value")
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| IdentifierView { system: r.get("system"), value: r.get("value"), kind: r.get("kind") })
            .collect();
        let mut provenance = Vec::new();
        for r in sqlx::query(
            "SELECT field, value, source_system, source_record_id, message_id, observed_at
             FROM field_values WHERE person_id = $1 ORDER BY field, observed_at DESC",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        {
            let value: String = r.get("value");
            provenance.push(FieldProvenance {
                field: r.get("field"),
                value: serde_json::from_str(&value)?,
                source_system: r.get("source_system"),
                source_record_id: r.get("source_record_id"),
                message_id: r.get("message_id"),
                observed_at: r.get("observed_at"),
            });
        }
        let source_records = sqlx::query(
            "SELECT id, source_system, source_key, last_message_id, updated_at FROM source_records WHERE person_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| SourceRecordView {
            id: r.get("id"),
            source_system: r.get("source_system"),
            source_key: r.get("source_key"),
            last_message_id: r.get("last_message_id"),
            updated_at: r.get("updated_at"),
        })
        .collect();
        Ok(Some(PersonView {
            id: row.get("id"),
            profile: serde_json::from_str(&profile)?,
            identifiers,
            provenance,
            source_records,
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }))
    }

    pub async fn person_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM persons")
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn messages(&self, f: &MessageFilter) -> Result<Vec<MessageSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, connector, origin, received_at, sender, control_id, message_type, status, error, warnings,
                    mapping, person_id, duplicate_of, length(raw) AS size_bytes
             FROM messages
             WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR connector = $2) AND ($3 IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4",
        )
        .bind(f.status.map(MessageStatus::as_str))
        .bind(f.connector.as_deref())
        .bind(f.before_id)
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(summary_from_row).collect()
    }

    pub async fn message(&self, id: i64) -> Result<Option<MessageDetail>, StoreError> {
        let row = sqlx::query(
            "SELECT id, connector, origin, received_at, sender, control_id, message_type, status, error, warnings,
                    mapping, person_id, duplicate_of, length(raw) AS size_bytes, charset, content_hash, raw
             FROM messages WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(MessageDetail {
            summary: summary_from_row(&row)?,
            charset: row.get("charset"),
            content_hash: row.get("content_hash"),
            raw: row.get("raw"),
        }))
    }

    pub async fn connectors(&self) -> Result<Vec<ConnectorStatus>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, kind, state, detail, received, processed, errors, duplicates, unmapped, last_message_at, updated_at
             FROM connectors ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ConnectorStatus {
                name: r.get("name"),
                kind: r.get("kind"),
                state: r.get("state"),
                detail: r.get("detail"),
                received: r.get("received"),
                processed: r.get("processed"),
                errors: r.get("errors"),
                duplicates: r.get("duplicates"),
                unmapped: r.get("unmapped"),
                last_message_at: r.get("last_message_at"),
                updated_at: r.get("updated_at"),
            })
            .collect())
    }

    pub async fn set_connector_state(
        &self,
        name: &str,
        kind: &str,
        state: &str,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO connectors (name, kind, state, detail, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, state = excluded.state,
               detail = excluded.detail, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(kind)
        .bind(state)
        .bind(detail)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn record_file(&self, o: &FileOutcome) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO files (connector, file_name, size_bytes, content_hash, messages, failed, outcome, reason, moved_to, processed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&o.connector)
        .bind(&o.file_name)
        .bind(o.size_bytes)
        .bind(&o.content_hash)
        .bind(o.messages)
        .bind(o.failed)
        .bind(&o.outcome)
        .bind(&o.reason)
        .bind(&o.moved_to)
        .bind(&o.processed_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn files(&self, connector: &str) -> Result<Vec<FileOutcome>, StoreError> {
        let rows = sqlx::query(
            "SELECT connector, file_name, size_bytes, content_hash, messages, failed, outcome, reason, moved_to, processed_at
             FROM files WHERE connector = $1 ORDER BY id",
        )
        .bind(connector)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| FileOutcome {
                connector: r.get("connector"),
                file_name: r.get("file_name"),
                size_bytes: r.get("size_bytes"),
                content_hash: r.get("content_hash"),
                messages: r.get("messages"),
                failed: r.get("failed"),
                outcome: r.get("outcome"),
                reason: r.get("reason"),
                moved_to: r.get("moved_to"),
                processed_at: r.get("processed_at"),
            })
            .collect())
    }
}

#[derive(Default)]
struct Counters<'a> {
    received: i64,
    processed: i64,
    errors: i64,
    duplicates: i64,
    unmapped: i64,
    last: Option<&'a str>,
}

fn summary_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<MessageSummary, StoreError> {
    let warnings: Option<String> = r.get("warnings");
    Ok(MessageSummary {
        id: r.get("id"),
        connector: r.get("connector"),
        origin: r.get("origin"),
        received_at: r.get("received_at"),
        sender: r.get("sender"),
        control_id: r.get("control_id"),
        message_type: r.get("message_type"),
        status: r.get("status"),
        error: r.get("error"),
        warnings: match warnings {
            Some(w) => serde_json::from_str(&w)?,
            None => Vec::new(),
        },
        mapping: r.get("mapping"),
        person_id: r.get("person_id"),
        duplicate_of: r.get("duplicate_of"),
        size_bytes: r.get("size_bytes"),
    })
}

/// Logs one record and applies its effect, inside the batch's transaction.
async fn apply_one(tx: &mut Transaction<'_, Sqlite>, r: &NewRecord) -> Result<Applied, StoreError> {
    // A message already taken (same sender, control id and bytes) is logged but not applied.
    if !matches!(r.disposition, Disposition::Error { .. })
        && let Some(control_id) = &r.control_id
    {
        let earlier = sqlx::query(
                "SELECT id, person_id FROM messages
                 WHERE sender IS $1 AND control_id = $2 AND content_hash = $3 AND status IN ('processed', 'unmapped')
                 ORDER BY id LIMIT 1",
            )
            .bind(&r.sender)
            .bind(control_id)
            .bind(&r.content_hash)
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(row) = earlier {
            let first: i64 = row.get("id");
            let person_id: Option<String> = row.get("person_id");
            let id = insert_message(
                tx,
                r,
                MessageStatus::Duplicate,
                None,
                None,
                None,
                person_id.as_deref(),
                Some(first),
            )
            .await?;
            return Ok(Applied {
                message_id: id,
                status: MessageStatus::Duplicate,
                person_id,
            });
        }
    }
    match &r.disposition {
        Disposition::Error { reason } => {
            let id =
                insert_message(tx, r, MessageStatus::Error, Some(reason), None, None, None, None).await?;
            Ok(Applied {
                message_id: id,
                status: MessageStatus::Error,
                person_id: None,
            })
        }
        Disposition::Unmapped { reason } => {
            let id = insert_message(
                tx,
                r,
                MessageStatus::Unmapped,
                Some(reason),
                None,
                None,
                None,
                None,
            )
            .await?;
            Ok(Applied {
                message_id: id,
                status: MessageStatus::Unmapped,
                person_id: None,
            })
        }
        Disposition::Apply {
            mapping,
            source_system,
            patch,
            warnings,
        } => {
            let warnings_json = (!warnings.is_empty())
                .then(|| serde_json::to_string(warnings))
                .transpose()?;
            let id = insert_message(
                tx,
                r,
                MessageStatus::Processed,
                None,
                warnings_json.as_deref(),
                Some(mapping),
                None,
                None,
            )
            .await?;
            let person_id = match patch {
                Some(p) => Some(apply_patch(tx, r, id, source_system, p).await?),
                None => None,
            };
            if person_id.is_some() {
                sqlx::query("UPDATE messages SET person_id = $1 WHERE id = $2")
                    .bind(&person_id)
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(Applied {
                message_id: id,
                status: MessageStatus::Processed,
                person_id,
            })
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn insert_message(
    tx: &mut Transaction<'_, Sqlite>,
    r: &NewRecord,
    status: MessageStatus,
    error: Option<&str>,
    warnings: Option<&str>,
    mapping: Option<&str>,
    person_id: Option<&str>,
    duplicate_of: Option<i64>,
) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO messages (connector, origin, received_at, sender, control_id, message_type, charset, content_hash, raw,
                               status, error, warnings, mapping, person_id, duplicate_of)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
    )
    .bind(&r.connector)
    .bind(&r.origin)
    .bind(&r.received_at)
    .bind(&r.sender)
    .bind(&r.control_id)
    .bind(&r.message_type)
    .bind(&r.charset)
    .bind(&r.content_hash)
    .bind(&r.raw)
    .bind(status.as_str())
    .bind(error)
    .bind(warnings)
    .bind(mapping)
    .bind(person_id)
    .bind(duplicate_of)
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

/// Identity, first version: a person is whoever already holds one of the patch's
/// (system, value) identifiers; otherwise a new person. Then the golden record absorbs the patch.
async fn apply_patch(
    tx: &mut Transaction<'_, Sqlite>,
    r: &NewRecord,
    message_id: i64,
    source_system: &str,
    patch: &ProfilePatch,
) -> Result<String, StoreError> {
    let ts = &r.received_at;
    let mut person_id: Option<String> = None;
    for ident in &patch.identifiers {
        let found: Option<String> =
            sqlx::query_scalar("SELECT person_id FROM identifiers WHERE system = $1 AND value = $2")
                .bind(&ident.system)
                .bind(&ident.value)
                .fetch_optional(&mut **tx)
                .await?;
        if found.is_some() {
            person_id = found;
            break;
        }
    }
    let person_id = match person_id {
        Some(id) => {
            let profile: String = sqlx::query_scalar("SELECT profile FROM persons WHERE id = $1")
                .bind(&id)
                .fetch_one(&mut **tx)
                .await?;
            let mut golden: ProfilePatch = serde_json::from_str(&profile)?;
            golden.absorb(patch);
            sqlx::query("UPDATE persons SET profile = $1, updated_at = $2 WHERE id = $3")
                .bind(serde_json::to_string(&golden)?)
                .bind(ts)
                .bind(&id)
                .execute(&mut **tx)
                .await?;
            id
        }
        None => {
            let id = uuid::Uuid::now_v7().to_string();
            sqlx::query("INSERT INTO persons (id, profile, created_at, updated_at) VALUES ($1, $2, $3, $3)")
                .bind(&id)
                .bind(serde_json::to_string(patch)?)
                .bind(ts)
                .execute(&mut **tx)
                .await?;
            id
        }
    };

    let source_key = patch
        .identifiers
        .first()
        .map(|i| format!("{}|{}", i.system, i.value))
        .or_else(|| r.control_id.as_ref().map(|c| format!("msg|{c}")))
        .unwrap_or_else(|| format!("hash|{}", r.content_hash));
    let patch_json = serde_json::to_string(patch)?;
    let source_record_id: i64 = sqlx::query_scalar(
        "INSERT INTO source_records (source_system, source_key, person_id, patch, last_message_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)
         ON CONFLICT (source_system, source_key) DO UPDATE SET
           patch = excluded.patch, last_message_id = excluded.last_message_id, updated_at = excluded.updated_at
         RETURNING id",
    )
    .bind(source_system)
    .bind(&source_key)
    .bind(&person_id)
    .bind(&patch_json)
    .bind(message_id)
    .bind(ts)
    .fetch_one(&mut **tx)
    .await?;

    for ident in &patch.identifiers {
        sqlx::query(
            "INSERT INTO identifiers (system, value, kind, person_id, source_record_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (system, value) DO NOTHING",
        )
        .bind(&ident.system)
        .bind(&ident.value)
        .bind(&ident.kind)
        .bind(&person_id)
        .bind(source_record_id)
        .bind(ts)
        .execute(&mut **tx)
        .await?;
    }

    // Provenance: each field this record stated, with the value it stated.
    let fields = serde_json::to_value(patch)?;
    if let serde_json::Value::Object(map) = fields {
        for (field, value) in map {
            sqlx::query(
                "INSERT INTO field_values (person_id, field, source_record_id, source_system, value, message_id, observed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (person_id, field, source_record_id) DO UPDATE SET
                   value = excluded.value, message_id = excluded.message_id, observed_at = excluded.observed_at",
            )
            .bind(&person_id)
            .bind(&field)
            .bind(source_record_id)
            .bind(source_system)
            .bind(value.to_string())
            .bind(message_id)
            .bind(ts)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(person_id)
}
