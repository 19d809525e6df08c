//! Queries of identity review and merges both SQL backends share, written once (see `sql.rs`
//! for the conventions): the review queue, merge and unmerge with their golden records, and
//! the re-derivation and re-keying of stored records. [`identity_queries!`] expands them for a
//! backend struct that has a `pool` field and the `person` query (from `store_queries!`).

/// Expands the identity queries for a backend. `$store`, `$db`, `$row`, `$begin`, `$lock`: as
/// for `store_queries!` (a merge takes the lock ingest batches take).
macro_rules! identity_queries {
    ($store:ident, $db:ty, $row:ty, $begin:expr, $lock:expr) => {
        impl $store {
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

            /// A change event for subscribers (`crate::subscriptions`), in the caller's
            /// transaction: merges are rare, so they write theirs whether or not anyone
            /// subscribes (the relay prunes them).
            async fn change_event(
                tx: &mut sqlx::Transaction<'_, $db>,
                event: &str,
                person: &str,
                other: Option<&str>,
                at: &str,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO change_events (id, event, person_id, other_person_id, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(event)
                .bind(person)
                .bind(other)
                .bind(at)
                .execute(&mut **tx)
                .await?;
                Ok(())
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
                Self::change_event(tx, "patient.merged", survivor, Some(merged), &at).await?;
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
                for person in [survivor, merged.as_str()] {
                    Self::change_event(&mut tx, "patient.updated", person, None, &at).await?;
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
        }
    };
}

pub(crate) use identity_queries;
