//! The queries both SQL backends share, written once.
//!
//! SQLite and PostgreSQL run the same SQL here: `$N` placeholders (sqlx's SQLite driver reads
//! them too), portable types (TEXT, BIGINT, BLOB/BYTEA, timestamps as RFC 3339 text),
//! `ON CONFLICT` upserts with qualified column names. [`store_queries!`] expands them for a
//! backend struct that has a `pool` field; what differs — opening, migrations, how a batch
//! transaction starts, whether one query may hold several statements — stays in the backend's
//! own file.

/// The current time as stored: RFC 3339, UTC.
pub fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// Rows per statement: SQLite allows 32,766 bound values and the widest row binds 16.
pub const CHUNK: usize = 500;

/// Bound values in one look-up query (SQLite allows 32,766, PostgreSQL 65,535).
pub const LOOKUP_VALUES: usize = 20_000;

/// `text` as a literal LIKE pattern (with `ESCAPE '\'`): its `%`, `_` and `\` match only themselves.
pub fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Expands the shared query methods for a backend.
///
/// `$store`: the backend struct (with `pool: sqlx::Pool<$db>`); `$db`: the sqlx database;
/// `$row`: its row type. Review and merges are in `sql_identity.rs`.
macro_rules! store_queries {
    ($store:ident, $db:ty, $row:ty) => {
        impl $store {
            pub async fn find_persons(
                &self,
                value: &str,
                system: Option<&str>,
                survivorship: &crate::identity::Survivorship,
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
                    if let Some(p) = self.person(&id, survivorship).await? {
                        out.push(p);
                    }
                }
                Ok(out)
            }

            pub async fn person(
                &self,
                id: &str,
                survivorship: &crate::identity::Survivorship,
            ) -> Result<Option<PersonView>, StoreError> {
                let Some(row) = sqlx::query("SELECT id, profile, merged_into, created_at, updated_at FROM persons WHERE id = $1")
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
                let rows = sqlx::query(
                    "SELECT id, source_system, source_key, patch, last_message_id, updated_at, link_method, link_score, link_detail
                     FROM source_records WHERE person_id = $1 ORDER BY id",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
                let mut provenance = Vec::new();
                let mut source_records = Vec::new();
                let mut patches = Vec::new();
                for r in rows {
                    let patch: String = r.get("patch");
                    patches.push(serde_json::from_str::<ProfilePatch>(&patch)?);
                    let record = SourceRecordView {
                        id: r.get("id"),
                        source_system: r.get("source_system"),
                        source_key: r.get("source_key"),
                        last_message_id: r.get("last_message_id"),
                        updated_at: r.get("updated_at"),
                        link_method: r.get("link_method"),
                        link_score: r.get("link_score"),
                        link_detail: r
                            .get::<Option<String>, _>("link_detail")
                            .and_then(|d| serde_json::from_str(&d).ok()),
                    };
                    if let serde_json::Value::Object(fields) = serde_json::from_str(&patch)? {
                        for (field, value) in fields {
                            provenance.push(FieldProvenance {
                                field,
                                value,
                                source_system: record.source_system.clone(),
                                source_record_id: record.id,
                                message_id: record.last_message_id,
                                observed_at: record.updated_at.clone(),
                                chosen: false,
                            });
                        }
                    }
                    source_records.push(record);
                }
                // Which sources' values the golden record kept, by the rules as configured now.
                let states: Vec<crate::identity::SourceState<'_>> = source_records
                    .iter()
                    .zip(&patches)
                    .map(|(r, patch)| crate::identity::SourceState {
                        record_id: r.id,
                        system: &r.source_system,
                        at: &r.updated_at,
                        message_id: r.last_message_id.unwrap_or(0),
                        patch,
                    })
                    .collect();
                let (_, chosen) = survivorship.derive(&states);
                for p in &mut provenance {
                    p.chosen = chosen.get(p.field.as_str()).is_some_and(|ids| ids.contains(&p.source_record_id));
                }
                provenance.sort_by(|a, b| a.field.cmp(&b.field).then(b.observed_at.cmp(&a.observed_at)));
                Ok(Some(PersonView {
                    id: row.get("id"),
                    merged_into: row.get("merged_into"),
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

            pub async fn message(&self, id: i64) -> Result<Option<MessageDetail>, StoreError> {
                let row = sqlx::query(
                    "SELECT id, connector, origin, received_at, sender, control_id, message_type, status, error, warnings,
                            mapping, person_id, duplicate_of, CAST(length(raw) AS BIGINT) AS size_bytes, body_pruned_at,
                            reprocessed_at, reprocess_count, charset, content_hash, raw
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
                    raw: self.open_raw(row.get("raw"))?,
                }))
            }

            pub async fn connectors(&self) -> Result<Vec<ConnectorStatus>, StoreError> {
                // The latest run of each connector that has runs.
                let runs: Vec<RunView> = sqlx::query(
                    "SELECT id, connector, started_at, ended_at, outcome, pages, resources, errors, cursor_before,
                       cursor_after, detail FROM connector_runs
                     WHERE id IN (SELECT MAX(id) FROM connector_runs GROUP BY connector)",
                )
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(run_from_row)
                .collect::<Result<_, _>>()?;
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
                        last_run: None,
                    })
                    .collect::<Vec<_>>())
                .map(|mut list: Vec<ConnectorStatus>| {
                    for c in &mut list {
                        c.last_run = runs.iter().find(|r| r.connector == c.name).cloned();
                    }
                    list
                })
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

        fn review_from_row(r: &$row) -> Result<ReviewItem, StoreError> {
            Ok(ReviewItem {
                id: r.get("id"),
                person_id: r.get("person_id"),
                candidate_id: r.get("candidate_id"),
                message_id: r.get("message_id"),
                score: r.get("score"),
                breakdown: serde_json::from_str(&r.get::<String, _>("breakdown"))?,
                status: r.get("status"),
                created_at: r.get("created_at"),
                decided_at: r.get("decided_at"),
            })
        }

        fn summary_from_row(r: &$row) -> Result<MessageSummary, StoreError> {
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
                body_pruned_at: r.get("body_pruned_at"),
                reprocessed_at: r.get("reprocessed_at"),
                reprocess_count: r.get("reprocess_count"),
            })
        }
    };
}

pub(crate) use store_queries;
