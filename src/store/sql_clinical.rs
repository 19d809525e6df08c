//! Queries of clinical records and merge instructions both SQL backends share, written once
//! (see `sql.rs` for the conventions). [`clinical_queries!`] expands them for a backend struct
//! that has a `pool` field and a `merge` method (from `identity_queries!`).

/// Expands the clinical-record queries for a backend (`$store` with `pool: sqlx::Pool<_>`).
macro_rules! clinical_queries {
    ($store:ident) => {
        impl $store {
            /// A person's clinical records, newest first: its own and those of the persons
            /// merged into it (at any depth). `kind` narrows to one kind.
            pub async fn timeline(
                &self,
                person: &str,
                kind: Option<&str>,
                limit: i64,
            ) -> Result<Vec<TimelineEntry>, StoreError> {
                let rows = sqlx::query(
                    "WITH RECURSIVE family(id) AS (
                       SELECT CAST($1 AS TEXT)
                       UNION SELECT p.id FROM persons p JOIN family f ON p.merged_into = f.id)
                     SELECT id, kind, source_system, record_key, person_id, status, at, data, first_message_id,
                       last_message_id, created_at, updated_at
                     FROM clinical_records
                     WHERE person_id IN (SELECT id FROM family) AND ($2 = '' OR kind = $2)
                     ORDER BY sort_at DESC NULLS LAST, id DESC LIMIT $3",
                )
                .bind(person)
                .bind(kind.unwrap_or(""))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(TimelineEntry {
                            id: r.get("id"),
                            kind: r.get("kind"),
                            source_system: r.get("source_system"),
                            key: r.get("record_key"),
                            person_id: r.get("person_id"),
                            status: r.get("status"),
                            at: r.get("at"),
                            record: {
                                // Fields cleared by a later message are stored as null.
                                let mut v: serde_json::Value = serde_json::from_str(&r.get::<String, _>("data"))?;
                                if let serde_json::Value::Object(m) = &mut v {
                                    m.retain(|_, x| !x.is_null());
                                }
                                v
                            },
                            first_message_id: r.get("first_message_id"),
                            last_message_id: r.get("last_message_id"),
                            created_at: r.get("created_at"),
                            updated_at: r.get("updated_at"),
                        })
                    })
                    .collect()
            }

            /// Carries out a message's merge instruction (ADT^A40): every person holding one of
            /// the `retired` identifiers is merged into `survivor`. What was asked and done is
            /// kept in `merge_requests`; the outcome is returned (ids only, no patient data).
            pub async fn merge_request(
                &self,
                message_id: i64,
                survivor: &str,
                retired: &[crate::model::Identifier],
                survivorship: &crate::identity::Survivorship,
            ) -> Result<String, StoreError> {
                let mut persons: Vec<String> = Vec::new();
                for i in retired {
                    let holder: Option<String> =
                        sqlx::query_scalar("SELECT person_id FROM identifiers WHERE value = $1 AND system = $2")
                            .bind(&i.value)
                            .bind(&i.system)
                            .fetch_optional(&self.pool)
                            .await?;
                    // Follow earlier merges up to the person that holds the records now.
                    let mut top = holder;
                    for _ in 0..32 {
                        let Some(id) = top.clone() else { break };
                        let next: Option<String> =
                            sqlx::query_scalar("SELECT merged_into FROM persons WHERE id = $1")
                                .bind(&id)
                                .fetch_optional(&self.pool)
                                .await?
                                .flatten();
                        match next {
                            Some(n) => top = Some(n),
                            None => break,
                        }
                    }
                    if let Some(p) = top
                        && p != survivor
                        && !persons.contains(&p)
                    {
                        persons.push(p);
                    }
                }
                let mut outcome = Vec::new();
                if persons.is_empty() {
                    outcome.push("nothing to merge: no other person holds the retired identifiers".to_string());
                } else if persons.len() > 1 {
                    // One retired patient's identifiers held by several persons: one of them was
                    // reused or mislinked. Merging them all could join strangers; a human decides.
                    outcome.push(format!(
                        "not merged: the retired identifiers belong to {} different persons ({}); merge by hand",
                        persons.len(),
                        persons.join(", ")
                    ));
                    persons.clear();
                }
                for p in &persons {
                    let reason = format!("merge instruction in message {message_id}");
                    match self.merge(survivor, p, &reason, survivorship).await {
                        Ok(m) => outcome.push(format!("merged {p} (merge {})", m.id)),
                        Err(e) => outcome.push(format!("not merged {p}: {e}")),
                    }
                }
                let outcome = outcome.join("; ");
                sqlx::query(
                    "INSERT INTO merge_requests (message_id, survivor_id, retired, outcome, created_at)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(message_id)
                .bind(survivor)
                .bind(serde_json::to_string(retired)?)
                .bind(&outcome)
                .bind(now())
                .execute(&self.pool)
                .await?;
                Ok(outcome)
            }
        }
    };
}

pub(crate) use clinical_queries;
