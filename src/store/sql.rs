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
/// `$row`: its row type; `$begin`: the statement that starts a write transaction and takes the
/// lock ingest batches take (so a merge never interleaves with a batch).
macro_rules! store_queries {
    ($store:ident, $db:ty, $row:ty, $begin:expr, $lock:expr) => {
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

            pub async fn reviews(&self, status: &str, limit: i64) -> Result<Vec<ReviewItem>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, person_id, candidate_id, message_id, score, breakdown, status, created_at, decided_at
                     FROM review_items WHERE status = $1 ORDER BY id DESC LIMIT $2",
                )
                .bind(status)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(review_from_row).collect()
            }

            pub async fn review_count(&self) -> Result<u64, StoreError> {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM review_items").fetch_one(&self.pool).await?;
                Ok(n.max(0) as u64)
            }

            /// Decides an open review item, in one transaction with its merge, so that the
            /// item's status and the persons never disagree.
            pub async fn decide_review(
                &self,
                id: i64,
                link: bool,
                survivorship: &crate::identity::Survivorship,
            ) -> Result<ReviewItem, StoreError> {
                let mut tx = self.pool.begin_with($begin).await?;
                sqlx::query($lock).execute(&mut *tx).await?;
                let row = sqlx::query(
                    "SELECT id, person_id, candidate_id, message_id, score, breakdown, status, created_at, decided_at
                     FROM review_items WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("review item"))?;
                let item = review_from_row(&row)?;
                if item.status != "open" {
                    return Err(StoreError::Conflict(format!("review item {id} is already {}", item.status)));
                }
                if link {
                    Self::merge_in(&mut tx, &item.candidate_id, &item.person_id, "review", survivorship).await?;
                }
                let status = if link { "linked" } else { "rejected" };
                let at = now();
                sqlx::query("UPDATE review_items SET status = $1, decided_at = $2 WHERE id = $3")
                    .bind(status)
                    .bind(&at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(ReviewItem { status: status.to_string(), decided_at: Some(at), ..item })
            }

            pub async fn merge(
                &self,
                survivor: &str,
                merged: &str,
                reason: &str,
                survivorship: &crate::identity::Survivorship,
            ) -> Result<MergeView, StoreError> {
                let mut tx = self.pool.begin_with($begin).await?;
                sqlx::query($lock).execute(&mut *tx).await?;
                let view = Self::merge_in(&mut tx, survivor, merged, reason, survivorship).await?;
                tx.commit().await?;
                Ok(view)
            }

            /// A person's golden record derived from its source records; `None` when it has none.
            async fn golden_of(
                tx: &mut sqlx::Transaction<'_, $db>,
                person: &str,
                survivorship: &crate::identity::Survivorship,
            ) -> Result<Option<ProfilePatch>, StoreError> {
                let rows: Vec<(i64, String, String, Option<i64>, String)> = sqlx::query_as(
                    "SELECT id, source_system, updated_at, last_message_id, patch FROM source_records WHERE person_id = $1",
                )
                .bind(person)
                .fetch_all(&mut **tx)
                .await?;
                if rows.is_empty() {
                    return Ok(None);
                }
                let patches = rows
                    .iter()
                    .map(|r| serde_json::from_str::<ProfilePatch>(&r.4))
                    .collect::<Result<Vec<_>, _>>()?;
                let states: Vec<crate::identity::SourceState<'_>> = rows
                    .iter()
                    .zip(&patches)
                    .map(|(r, patch)| crate::identity::SourceState {
                        record_id: r.0,
                        system: &r.1,
                        at: &r.2,
                        message_id: r.3.unwrap_or(0),
                        patch,
                    })
                    .collect();
                Ok(Some(survivorship.golden(&states)))
            }

            /// The merge itself, inside the caller's transaction (which holds the ingest lock).
            async fn merge_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                survivor: &str,
                merged: &str,
                reason: &str,
                survivorship: &crate::identity::Survivorship,
            ) -> Result<MergeView, StoreError> {
                if survivor == merged {
                    return Err(StoreError::Conflict("a person cannot be merged into itself".into()));
                }
                let mut persons = Vec::new();
                for id in [survivor, merged] {
                    let row = sqlx::query("SELECT profile, merged_into, updated_at FROM persons WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut **tx)
                        .await?
                        .ok_or(StoreError::NotFound("patient"))?;
                    if row.get::<Option<String>, _>("merged_into").is_some() {
                        return Err(StoreError::Conflict(format!("patient {id} was already merged into another")));
                    }
                    persons.push((row.get::<String, _>("profile"), row.get::<String, _>("updated_at")));
                }
                let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM source_records WHERE person_id = $1 ORDER BY id")
                    .bind(merged)
                    .fetch_all(&mut **tx)
                    .await?;
                for statement in [
                    "UPDATE source_records SET person_id = $1 WHERE person_id = $2",
                    "UPDATE identifiers SET person_id = $1 WHERE person_id = $2",
                ] {
                    sqlx::query(statement).bind(survivor).bind(merged).execute(&mut **tx).await?;
                }
                // The newest message at the merge (ids grow in commit order, under the lock),
                // kept with the merge for the record.
                let watermark: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM messages")
                    .fetch_one(&mut **tx)
                    .await?;
                // The survivor's golden record, derived again from all its source records now.
                let golden = match Self::golden_of(tx, survivor, survivorship).await? {
                    Some(golden) => golden,
                    None => serde_json::from_str(&persons[0].0)?,
                };
                let at = now();
                sqlx::query("UPDATE persons SET profile = $1, updated_at = $2 WHERE id = $3")
                    .bind(serde_json::to_string(&golden)?)
                    .bind(&at)
                    .bind(survivor)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query("UPDATE persons SET merged_into = $1 WHERE id = $2")
                    .bind(survivor)
                    .bind(merged)
                    .execute(&mut **tx)
                    .await?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO merges (survivor_id, merged_id, source_record_ids, reason, survivor_profile, merged_profile,
                       message_watermark, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                )
                .bind(survivor)
                .bind(merged)
                .bind(serde_json::to_string(&ids)?)
                .bind(reason)
                .bind(&persons[0].0)
                .bind(&persons[1].0)
                .bind(watermark)
                .bind(&at)
                .fetch_one(&mut **tx)
                .await?;
                Ok(MergeView {
                    id,
                    survivor_id: survivor.to_string(),
                    merged_id: merged.to_string(),
                    source_record_ids: ids,
                    reason: reason.to_string(),
                    created_at: at,
                    undone_at: None,
                })
            }

            pub async fn unmerge(&self, survivor: &str, survivorship: &crate::identity::Survivorship) -> Result<MergeView, StoreError> {
                let mut tx = self.pool.begin_with($begin).await?;
                sqlx::query($lock).execute(&mut *tx).await?;
                let row = sqlx::query(
                    "SELECT id, merged_id, source_record_ids, reason, survivor_profile, merged_profile, message_watermark,
                            created_at
                     FROM merges WHERE survivor_id = $1 AND undone_at IS NULL ORDER BY id DESC LIMIT 1",
                )
                .bind(survivor)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("merge into this patient"))?;
                let merged: String = row.get("merged_id");
                // Only the merge on top can be undone: a survivor merged into someone else
                // since, or a merged person moved on, must be unmerged from there first.
                let state = |id: &str| {
                    sqlx::query_scalar::<_, Option<String>>("SELECT merged_into FROM persons WHERE id = $1").bind(id.to_string())
                };
                if state(survivor).fetch_one(&mut *tx).await?.is_some() {
                    return Err(StoreError::Conflict(
                        "this patient was merged into another since; unmerge that one first".into(),
                    ));
                }
                if state(&merged).fetch_one(&mut *tx).await?.as_deref() != Some(survivor) {
                    return Err(StoreError::Conflict("the merged patient is no longer merged into this one".into()));
                }
                let ids: Vec<i64> = serde_json::from_str(&row.get::<String, _>("source_record_ids"))?;
                for chunk in ids.chunks(CHUNK) {
                    for (table, column) in [("source_records", "id"), ("identifiers", "source_record_id")] {
                        let mut q = sqlx::QueryBuilder::<$db>::new(format!("UPDATE {table} SET person_id = "));
                        q.push_bind(merged.clone());
                        q.push(" WHERE person_id = ");
                        q.push_bind(survivor.to_string());
                        q.push(format!(" AND {column} IN ("));
                        let mut sep = q.separated(", ");
                        for id in chunk {
                            sep.push_bind(*id);
                        }
                        sep.push_unseparated(")");
                        q.build().execute(&mut *tx).await?;
                    }
                }
                // Both golden records derived again from their own source records: what each
                // was before the merge, with what its records said since. (A person left with
                // no source record gets its golden record as it was before the merge.)
                let at = now();
                for (person, snapshot) in [(survivor, "survivor_profile"), (merged.as_str(), "merged_profile")] {
                    let golden = match Self::golden_of(&mut tx, person, survivorship).await? {
                        Some(golden) => golden,
                        None => serde_json::from_str::<ProfilePatch>(&row.get::<String, _>(snapshot))?,
                    };
                    sqlx::query("UPDATE persons SET profile = $1, merged_into = NULL, updated_at = $2 WHERE id = $3")
                        .bind(serde_json::to_string(&golden)?)
                        .bind(&at)
                        .bind(person)
                        .execute(&mut *tx)
                        .await?;
                }
                let id: i64 = row.get("id");
                sqlx::query("UPDATE merges SET undone_at = $1 WHERE id = $2")
                    .bind(&at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(MergeView {
                    id,
                    survivor_id: survivor.to_string(),
                    merged_id: merged,
                    source_record_ids: ids,
                    reason: row.get("reason"),
                    created_at: row.get("created_at"),
                    undone_at: Some(at),
                })
            }

            /// The newest `limit` source records' patches (estimating the matching model and
            /// name frequencies from the store). Patches that no longer read are skipped.
            pub async fn sample_patches(&self, limit: i64) -> Result<Vec<ProfilePatch>, StoreError> {
                let rows: Vec<String> = sqlx::query_scalar("SELECT patch FROM source_records ORDER BY id DESC LIMIT $1")
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.iter().filter_map(|p| serde_json::from_str(p).ok()).collect())
            }

            /// Derives every golden record again when the survivorship rules differ from those
            /// they were derived with (`identity_state.golden_rules`), 500 persons per
            /// transaction. Returns how many golden records changed.
            pub async fn rederive_golden_records(
                &self,
                survivorship: &crate::identity::Survivorship,
            ) -> Result<u64, StoreError> {
                let rules = serde_json::to_string(survivorship.config())?;
                let stored: Option<String> = sqlx::query_scalar("SELECT golden_rules FROM identity_state WHERE id = 1")
                    .fetch_one(&self.pool)
                    .await?;
                if stored.as_deref() == Some(rules.as_str()) {
                    return Ok(0);
                }
                let (mut after, mut changed) = (String::new(), 0u64);
                loop {
                    let mut tx = self.pool.begin_with($begin).await?;
                    sqlx::query($lock).execute(&mut *tx).await?;
                    let persons: Vec<(String, String)> = sqlx::query_as(
                        "SELECT id, profile FROM persons WHERE merged_into IS NULL AND id > $1 ORDER BY id LIMIT 500",
                    )
                    .bind(&after)
                    .fetch_all(&mut *tx)
                    .await?;
                    let Some((last, _)) = persons.last() else {
                        sqlx::query("UPDATE identity_state SET golden_rules = $1 WHERE id = 1")
                            .bind(&rules)
                            .execute(&mut *tx)
                            .await?;
                        tx.commit().await?;
                        return Ok(changed);
                    };
                    after = last.clone();
                    for (id, profile) in &persons {
                        let Some(golden) = Self::golden_of(&mut tx, id, survivorship).await? else { continue };
                        let golden = serde_json::to_string(&golden)?;
                        if golden != *profile {
                            sqlx::query("UPDATE persons SET profile = $1 WHERE id = $2")
                                .bind(&golden)
                                .bind(id)
                                .execute(&mut *tx)
                                .await?;
                            changed += 1;
                        }
                    }
                    tx.commit().await?;
                }
            }

            /// Computes the blocking keys of the source records stored without them (before
            /// matching existed, or while it was off), a thousand at a time. Returns how many
            /// records were read.
            pub async fn backfill_match_keys(&self) -> Result<u64, StoreError> {
                let mut done = 0u64;
                loop {
                    let mut tx = self.pool.begin_with($begin).await?;
                    sqlx::query($lock).execute(&mut *tx).await?;
                    let through: i64 = sqlx::query_scalar("SELECT keys_through FROM identity_state WHERE id = 1")
                        .fetch_one(&mut *tx)
                        .await?;
                    let rows: Vec<(i64, String)> = sqlx::query_as(
                        "SELECT id, patch FROM source_records WHERE id > $1 ORDER BY id LIMIT 1000",
                    )
                    .bind(through)
                    .fetch_all(&mut *tx)
                    .await?;
                    let Some(&(last, _)) = rows.last() else {
                        return Ok(done);
                    };
                    let mut pairs = Vec::new();
                    for (id, patch) in &rows {
                        // A patch that no longer reads is skipped: it has nothing to match on.
                        if let Ok(patch) = serde_json::from_str::<ProfilePatch>(patch) {
                            let input = crate::identity::MatchInput::of(&patch);
                            pairs.extend(input.keys.into_iter().map(|k| (k, *id)));
                        }
                    }
                    for chunk in pairs.chunks(CHUNK) {
                        let mut q = sqlx::QueryBuilder::<$db>::new("INSERT INTO match_keys (key, source_record_id) ");
                        q.push_values(chunk, |mut b, (k, id)| {
                            b.push_bind(*k).push_bind(*id);
                        });
                        q.push(" ON CONFLICT DO NOTHING");
                        q.build().execute(&mut *tx).await?;
                    }
                    sqlx::query("UPDATE identity_state SET keys_through = $1 WHERE id = 1")
                        .bind(last)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    done += rows.len() as u64;
                }
            }

            pub async fn person_count(&self) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM persons")
                    .fetch_one(&self.pool)
                    .await?)
            }

            pub async fn messages(&self, f: &MessageFilter) -> Result<Vec<MessageSummary>, StoreError> {
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, connector, origin, received_at, sender, control_id, message_type, status, error, warnings, \
                     mapping, person_id, duplicate_of, CAST(length(raw) AS BIGINT) AS size_bytes FROM messages WHERE 1 = 1",
                );
                if let Some(status) = f.status {
                    // A literal from a closed set, so that the planner can use the partial status index.
                    q.push(format_args!(" AND status = '{}'", status.as_str()));
                }
                if let Some(c) = &f.connector {
                    q.push(" AND connector = ").push_bind(c.clone());
                }
                if let Some(before) = f.before_id {
                    q.push(" AND id < ").push_bind(before);
                }
                q.push(" ORDER BY id DESC LIMIT ").push_bind(f.limit);
                let rows = q.build().fetch_all(&self.pool).await?;
                rows.iter().map(summary_from_row).collect()
            }

            pub async fn message(&self, id: i64) -> Result<Option<MessageDetail>, StoreError> {
                let row = sqlx::query(
                    "SELECT id, connector, origin, received_at, sender, control_id, message_type, status, error, warnings,
                            mapping, person_id, duplicate_of, CAST(length(raw) AS BIGINT) AS size_bytes, charset, content_hash, raw
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

            pub async fn scan_messages(&self, scan: &MessageScan) -> Result<Vec<StoredMessage>, StoreError> {
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, connector, received_at, message_type, status, mapping, raw FROM messages WHERE id > ",
                );
                q.push_bind(scan.after_id);
                if scan.skip_duplicates {
                    q.push(" AND status <> 'duplicate'");
                }
                if let Some(from) = &scan.received_from {
                    q.push(" AND received_at >= ").push_bind(from.clone());
                }
                if let Some(c) = &scan.connector {
                    q.push(" AND connector = ").push_bind(c.clone());
                }
                if let Some(types) = &scan.types {
                    // `1 = 0 OR …`: an empty filter keeps nothing.
                    q.push(" AND (1 = 0");
                    for t in &types.equal {
                        q.push(" OR UPPER(message_type) = ").push_bind(t.to_uppercase());
                    }
                    for p in &types.prefixes {
                        let pattern = format!("{}%", like_escape(&p.to_uppercase()));
                        q.push(" OR UPPER(message_type) LIKE ").push_bind(pattern).push(" ESCAPE '\\'");
                    }
                    for c in &types.connectors {
                        q.push(" OR connector = ").push_bind(c.clone());
                    }
                    q.push(")");
                }
                q.push(" ORDER BY id LIMIT ").push_bind(scan.limit);
                let rows = q.build().fetch_all(&self.pool).await?;
                Ok(rows
                    .into_iter()
                    .map(|r| StoredMessage {
                        id: r.get("id"),
                        connector: r.get("connector"),
                        received_at: r.get("received_at"),
                        message_type: r.get("message_type"),
                        // The schema's CHECK admits only the statuses `parse` knows.
                        status: MessageStatus::parse(r.get("status")).unwrap_or(MessageStatus::Received),
                        mapping: r.get("mapping"),
                        raw: r.get("raw"),
                    })
                    .collect())
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
            })
        }
    };
}

pub(crate) use store_queries;
