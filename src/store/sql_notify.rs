//! Queries of notifications — the outbox relay, channel workers, consent and preferences,
//! interactions and reports — written once for both backends (see `sql.rs` for the
//! conventions; the scheduler's facts are in `sql_schedule.rs`, the embedded queue in
//! `sql_queue.rs`). The in-transaction outbox writes of an
//! ingest batch are in each backend's writer.

/// Expands the notification queries for a backend (`$store` with `pool`).
macro_rules! notify_queries {
    ($store:ident) => {
        impl $store {
            /// Pending notifications whose time has come, oldest first.
            pub async fn due_notifications(&self, now_ms: i64, limit: i64) -> Result<Vec<DueNotification>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, rule, category, person_id, subject, template, channels, context, cause, due_at, attempts
                     FROM notifications WHERE status = 'pending' AND due_at <= $1 ORDER BY due_at LIMIT $2",
                )
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(DueNotification {
                            id: r.get("id"),
                            rule: r.get("rule"),
                            category: r.get("category"),
                            person_id: r.get("person_id"),
                            subject: r.get("subject"),
                            template: r.get("template"),
                            channels: serde_json::from_str(r.get::<&str, _>("channels"))?,
                            context: serde_json::from_str(r.get::<&str, _>("context"))?,
                            cause: r.get("cause"),
                            due_at: r.get("due_at"),
                            attempts: r.get("attempts"),
                        })
                    })
                    .collect()
            }

            /// Channels a notification's provider refused for good (the relay skips them).
            pub async fn rejected_channels(&self, id: &str) -> Result<Vec<String>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT DISTINCT channel FROM notification_attempts WHERE notification_id = $1 AND outcome = 'rejected'",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await?)
            }

            /// A delivery receipt from a provider webhook. Returns whether a send matched.
            pub async fn delivery_receipt(
                &self,
                channel: &str,
                provider_id: &str,
                status: &str,
                detail: Option<&str>,
            ) -> Result<bool, StoreError> {
                // One writer at a time, in turn (SQLite; see `write_gate`).
                let _turn = self.write_gate().await;
                let at = now();
                let delivered = (status == "delivered").then(|| at.clone());
                let done = sqlx::query(
                    "UPDATE notifications SET status = $1, detail = COALESCE($2, detail), updated_at = $3,
                       delivered_at = COALESCE(delivered_at, $4)
                     WHERE channel = $5 AND provider_id = $6 AND status IN ('sending', 'sent', 'delivered')
                       AND NOT (status = 'delivered' AND $1 = 'failed')",
                )
                .bind(status)
                .bind(detail)
                .bind(&at)
                .bind(delivered)
                .bind(channel)
                .bind(provider_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            /// The persons a channel has sent to at this address (who a STOP reply comes from).
            pub async fn persons_at_address(&self, channel: &str, address: &str) -> Result<Vec<String>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT DISTINCT person_id FROM notifications WHERE channel = $1 AND address = $2",
                )
                .bind(channel)
                .bind(address)
                .fetch_all(&self.pool)
                .await?)
            }

            /// Removes a refusal (a START after a STOP): what held before it holds again.
            pub async fn clear_denial(&self, person: &str, category: &str, channel: &str) -> Result<bool, StoreError> {
                // One writer at a time, in turn (SQLite; see `write_gate`).
                let _turn = self.write_gate().await;
                let n = sqlx::query(
                    "DELETE FROM consents WHERE person_id = $1 AND category = $2 AND channel = $3 AND decision = 'deny'",
                )
                .bind(person)
                .bind(category)
                .bind(channel)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(n > 0)
            }

            /// Records a consent decision; with `deny`, cancels the person's pending sends it covers.
            pub async fn set_consent(&self, person: &str, c: &ConsentView) -> Result<u64, StoreError> {
                // One writer at a time, in turn (SQLite; see `write_gate`).
                let _turn = self.write_gate().await;
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO consents (person_id, category, channel, decision, source, at) VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (person_id, category, channel) DO UPDATE SET decision = excluded.decision,
                       source = excluded.source, at = excluded.at",
                )
                .bind(person)
                .bind(&c.category)
                .bind(&c.channel)
                .bind(&c.decision)
                .bind(&c.source)
                .bind(&c.at)
                .execute(&mut *tx)
                .await?;
                let mut cancelled = 0;
                if c.decision == "deny" {
                    cancelled = sqlx::query(
                        "UPDATE notifications SET status = 'cancelled', detail = $1, updated_at = $2
                         WHERE person_id = $3 AND status IN ('pending', 'queued', 'sending')
                           AND ($4 = '*' OR category = $4) AND ($5 = '*' OR channel = $5 OR channel IS NULL AND $5 = '*')",
                    )
                    .bind(format!("consent withdrawn ({})", c.source))
                    .bind(now())
                    .bind(person)
                    .bind(&c.category)
                    .bind(&c.channel)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                tx.commit().await?;
                Ok(cancelled)
            }

            pub async fn consents(&self, person: &str) -> Result<Vec<ConsentView>, StoreError> {
                let rows = sqlx::query(
                    "SELECT category, channel, decision, source, at FROM consents WHERE person_id = $1 ORDER BY category, channel",
                )
                .bind(person)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map(|r| ConsentView {
                        category: r.get("category"),
                        channel: r.get("channel"),
                        decision: r.get("decision"),
                        source: r.get("source"),
                        at: r.get("at"),
                    })
                    .collect())
            }

            pub async fn preferences(&self, person: &str) -> Result<Preferences, StoreError> {
                let row = sqlx::query("SELECT language, timezone, addresses, tags FROM patient_preferences WHERE person_id = $1")
                    .bind(person)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    None => Preferences::default(),
                    Some(r) => Preferences {
                        language: r.get("language"),
                        timezone: r.get("timezone"),
                        addresses: serde_json::from_str(r.get::<&str, _>("addresses"))?,
                        tags: serde_json::from_str(r.get::<&str, _>("tags"))?,
                    },
                })
            }

            pub async fn set_preferences(&self, person: &str, p: &Preferences) -> Result<(), StoreError> {
                // One writer at a time, in turn (SQLite; see `write_gate`).
                let _turn = self.write_gate().await;
                sqlx::query(
                    "INSERT INTO patient_preferences (person_id, language, timezone, addresses, tags, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (person_id) DO UPDATE SET language = excluded.language, timezone = excluded.timezone,
                       addresses = excluded.addresses, tags = excluded.tags, updated_at = excluded.updated_at",
                )
                .bind(person)
                .bind(&p.language)
                .bind(&p.timezone)
                .bind(serde_json::to_string(&p.addresses)?)
                .bind(serde_json::to_string(&p.tags)?)
                .bind(now())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            /// The person a notification reaches after merges, with what the relay checks.
            /// `history`: also read the last visit and the diagnoses (only segments need them).
            pub async fn person_facts(&self, person: &str, history: bool) -> Result<Option<PersonFacts>, StoreError> {
                let mut id = person.to_string();
                let mut profile_text: Option<String> = None;
                for _ in 0..16 {
                    let row: Option<(String, Option<String>)> =
                        sqlx::query_as("SELECT profile, merged_into FROM persons WHERE id = $1")
                            .bind(&id)
                            .fetch_optional(&self.pool)
                            .await?;
                    match row {
                        None => return Ok(None),
                        Some((_, Some(next))) => id = next,
                        Some((profile, None)) => {
                            profile_text = Some(profile);
                            break;
                        }
                    }
                }
                let Some(profile_text) = profile_text else { return Ok(None) };
                let profile = serde_json::from_str(&profile_text)?;
                // The records of the persons merged into this one count too.
                let (mut last_visit, mut diagnoses): (Option<String>, Vec<Option<String>>) = (None, Vec::new());
                if history {
                    last_visit = sqlx::query_scalar(concat!(
                    "WITH RECURSIVE family(id) AS (SELECT CAST($1 AS TEXT) UNION SELECT p.id FROM persons p JOIN family f ON p.merged_into = f.id) ",
                    "SELECT MAX(sort_at) FROM clinical_records WHERE kind = 'encounter' AND person_id IN (SELECT id FROM family)
                       AND (status IS NULL OR status NOT IN ('cancelled', 'entered-in-error', 'planned'))"
                ))
                .bind(&id)
                .fetch_one(&self.pool)
                .await?;
                diagnoses = sqlx::query_scalar(concat!(
                    "WITH RECURSIVE family(id) AS (SELECT CAST($1 AS TEXT) UNION SELECT p.id FROM persons p JOIN family f ON p.merged_into = f.id) ",
                    "SELECT code FROM clinical_records WHERE kind = 'diagnosis' AND person_id IN (SELECT id FROM family)
                       AND (status IS NULL OR status <> 'entered-in-error')"
                ))
                .bind(&id)
                .fetch_all(&self.pool)
                .await?;
                }
                Ok(Some(PersonFacts {
                    preferences: self.preferences(&id).await?,
                    consents: self.consents(&id).await?,
                    person_id: id,
                    profile,
                    last_visit,
                    diagnoses: diagnoses.into_iter().flatten().collect(),
                }))
            }

            /// The facts (without visits and diagnoses) of several persons at once, in three
            /// set-based queries; persons merged away or unknown are left out (the relay reads
            /// those one by one).
            pub async fn persons_facts(&self, ids: &[String]) -> Result<Vec<PersonFacts>, StoreError> {
                let mut out: Vec<PersonFacts> = Vec::new();
                for chunk in ids.chunks(500) {
                    // Placeholders only: the ids are bound, never written into the text.
                    let marks = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT id, profile FROM persons WHERE id IN ({marks}) AND COALESCE(merged_into, '') = ''"
                    )));
                    for id in chunk {
                        q = q.bind(id);
                    }
                    let mut found: std::collections::HashMap<String, PersonFacts> = std::collections::HashMap::new();
                    for r in q.fetch_all(&self.pool).await? {
                        let id: String = r.get("id");
                        let profile = serde_json::from_str(r.get::<&str, _>("profile"))?;
                        found.insert(id.clone(), PersonFacts { person_id: id, profile, ..Default::default() });
                    }
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT person_id, language, timezone, addresses, tags FROM patient_preferences WHERE person_id IN ({marks})"
                    )));
                    for id in chunk {
                        q = q.bind(id);
                    }
                    for r in q.fetch_all(&self.pool).await? {
                        if let Some(f) = found.get_mut(r.get::<&str, _>("person_id")) {
                            f.preferences = Preferences {
                                language: r.get("language"),
                                timezone: r.get("timezone"),
                                addresses: serde_json::from_str(r.get::<&str, _>("addresses"))?,
                                tags: serde_json::from_str(r.get::<&str, _>("tags"))?,
                            };
                        }
                    }
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT person_id, category, channel, decision, source, at FROM consents WHERE person_id IN ({marks})
                         ORDER BY category, channel"
                    )));
                    for id in chunk {
                        q = q.bind(id);
                    }
                    for r in q.fetch_all(&self.pool).await? {
                        if let Some(f) = found.get_mut(r.get::<&str, _>("person_id")) {
                            f.consents.push(ConsentView {
                                category: r.get("category"),
                                channel: r.get("channel"),
                                decision: r.get("decision"),
                                source: r.get("source"),
                                at: r.get("at"),
                            });
                        }
                    }
                    out.extend(found.into_values());
                }
                Ok(out)
            }

            /// Sends of a rule (or, with `rule` None, of a category) to a person since `since`.
            pub async fn recent_sends(
                &self,
                person: &str,
                rule: Option<&str>,
                category: &str,
                since: &str,
            ) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT COUNT(*) FROM notifications WHERE person_id = $1 AND (CAST($2 AS TEXT) IS NULL OR rule = $2)
                       AND category = $3 AND status IN ('queued', 'sending', 'sent', 'delivered') AND published_at >= $4",
                )
                .bind(person)
                .bind(rule)
                .bind(category)
                .bind(since)
                .fetch_one(&self.pool)
                .await?)
            }

            /// A person's notifications (and those of persons merged into them), newest first.
            pub async fn interactions(&self, person: &str, limit: i64) -> Result<Vec<InteractionView>, StoreError> {
                let rows = sqlx::query(
                    "WITH RECURSIVE family(id) AS (SELECT CAST($1 AS TEXT) UNION SELECT p.id FROM persons p JOIN family f ON p.merged_into = f.id)
                     SELECT id, rule, category, template, cause, status, channel, language, provider_id, detail,
                       created_at, updated_at, sent_at, delivered_at
                     FROM notifications WHERE person_id IN (SELECT id FROM family) ORDER BY created_at DESC, id DESC LIMIT $2",
                )
                .bind(person)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    let id: String = r.get("id");
                    let attempts = sqlx::query(
                        "SELECT attempt, channel, outcome, provider_id, detail, at FROM notification_attempts
                         WHERE notification_id = $1 ORDER BY id",
                    )
                    .bind(&id)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|a| AttemptView {
                        attempt: a.get("attempt"),
                        channel: a.get("channel"),
                        outcome: a.get("outcome"),
                        provider_id: a.get("provider_id"),
                        detail: a.get("detail"),
                        at: a.get("at"),
                    })
                    .collect();
                    out.push(InteractionView {
                        id,
                        rule: r.get("rule"),
                        category: r.get("category"),
                        template: r.get("template"),
                        cause: r.get("cause"),
                        status: r.get("status"),
                        channel: r.get("channel"),
                        language: r.get("language"),
                        provider_id: r.get("provider_id"),
                        detail: r.get("detail"),
                        created_at: r.get("created_at"),
                        updated_at: r.get("updated_at"),
                        sent_at: r.get("sent_at"),
                        delivered_at: r.get("delivered_at"),
                        attempts,
                    });
                }
                Ok(out)
            }

            /// Notifications created in [from, to) by channel, rule and status.
            pub async fn channel_report(&self, from: &str, to: &str) -> Result<Vec<ChannelReportLine>, StoreError> {
                let rows = sqlx::query(
                    "SELECT COALESCE(channel, '') AS channel, rule, status, COUNT(*) AS n FROM notifications
                     WHERE created_at >= $1 AND created_at < $2 GROUP BY COALESCE(channel, ''), rule, status
                     ORDER BY 1, 2",
                )
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await?;
                let mut out: Vec<ChannelReportLine> = Vec::new();
                for r in rows {
                    let (channel, rule): (String, String) = (r.get("channel"), r.get("rule"));
                    let n: i64 = r.get("n");
                    let line = match out.iter_mut().position(|l| l.channel == channel && l.rule == rule) {
                        Some(i) => &mut out[i],
                        None => {
                            out.push(ChannelReportLine {
                                channel,
                                rule,
                                ..Default::default()
                            });
                            out.last_mut().expect("just pushed")
                        }
                    };
                    match r.get::<&str, _>("status") {
                        "pending" | "queued" | "sending" => line.queued += n,
                        "sent" => line.sent += n,
                        "delivered" => line.delivered += n,
                        "failed" => line.failed += n,
                        "cancelled" => line.cancelled += n,
                        _ => line.suppressed += n,
                    }
                }
                Ok(out)
            }

            /// Sends left behind go back to the relay: `sending` whose worker's hold ran out long
            /// ago (the worker died), `queued` published longer ago than `queued_ms` (its queue
            /// message was lost or dead-lettered). A resend is claimed once, as always.
            pub async fn requeue_stranded(&self, now_ms: i64, grace_ms: i64, queued_before: &str) -> Result<u64, StoreError> {
                // One writer at a time, in turn (SQLite; see `write_gate`).
                let _turn = self.write_gate().await;
                let n = sqlx::query(
                    "UPDATE notifications SET status = 'pending', due_at = $1, claimed_until = NULL, updated_at = $2,
                       detail = 'requeued: no worker settled it'
                     WHERE (status = 'sending' AND claimed_until < $3) OR (status = 'queued' AND published_at < $4)",
                )
                .bind(now_ms)
                .bind(now())
                .bind(now_ms - grace_ms)
                .bind(queued_before)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(n)
            }

            /// Notifications by status (ops: the outbox's depth).
            pub async fn notification_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
                Ok(sqlx::query_as("SELECT status, COUNT(*) FROM notifications GROUP BY status ORDER BY status")
                    .fetch_all(&self.pool)
                    .await?)
            }

        }
    };
}

pub(crate) use notify_queries;

/// The outbox's hot writes — staging, marking, settling, the workers' claims and outcomes —
/// for PostgreSQL. SQLite has its own (`sqlite_outbox.rs`): one writer thread groups them.
macro_rules! notify_write_queries {
    ($store:ident) => {
        impl $store {
            /// Writes the sends as they will be queued (still `pending`: a crash before the queue
            /// confirms leaves them to the next relay pass). `published_at` is set here: a worker
            /// may take a send before the relay marks it queued, and caps count from it.
            pub async fn stage_sends(&self, sends: &[Resolved]) -> Result<(), StoreError> {
                let at = now();
                let mut tx = self.pool.begin().await?;
                for s in sends {
                    let title = self.seal_text(super::postgres::TITLE, s.title.as_deref());
                    let body = self.seal_text(super::postgres::BODY, Some(&s.body));
                    sqlx::query(
                        "UPDATE notifications SET channel = $1, address = $2, language = $3, title = $4, body = $5,
                           updated_at = $6, published_at = $6, timezone = $8 WHERE id = $7 AND status = 'pending'",
                    )
                    .bind(&s.channel)
                    .bind(&s.address)
                    .bind(&s.language)
                    .bind(&title)
                    .bind(&body)
                    .bind(&at)
                    .bind(&s.id)
                    .bind(&s.timezone)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            /// Marks staged sends `queued`: the queue confirmed them.
            /// Each id comes with the provider calls the row had when staged: a row a worker
            /// already took (and perhaps sent back to the relay) is left alone.
            pub async fn mark_published(&self, ids: &[(String, i64)]) -> Result<(), StoreError> {
                let at = now();
                let mut tx = self.pool.begin().await?;
                for (id, attempts) in ids {
                    sqlx::query(
                        "UPDATE notifications SET status = 'queued', updated_at = $1
                         WHERE id = $2 AND status = 'pending' AND attempts = $3",
                    )
                    .bind(&at)
                    .bind(id)
                    .bind(attempts)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            /// Settles a pending notification without a send: `suppressed` or `cancelled` with the
            /// reason, or still `pending` with a later `due_at` (deferred by quiet hours).
            pub async fn settle_pending(
                &self,
                id: &str,
                status: &str,
                due_at: Option<i64>,
                detail: &str,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE notifications SET status = $1, due_at = COALESCE($2, due_at), detail = $3, updated_at = $4
                     WHERE id = $5 AND status IN ('pending', 'queued')",
                )
                .bind(status)
                .bind(due_at)
                .bind(detail)
                .bind(now())
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            /// Outcomes to record and sends to claim, in one transaction (the workers' group
            /// commit): outcomes first, then the claims, whose answers come back in order.
            pub async fn send_ops(&self, claims: &[SendClaim], outcomes: &[AttemptOutcome]) -> Result<Vec<Claim>, StoreError> {
                let at = now();
                let mut tx = self.pool.begin().await?;
                for o in outcomes {
                    // Writes only (a read first would make SQLite's lock upgrade fail under load).
                    sqlx::query(
                        "INSERT INTO notification_attempts (notification_id, attempt, channel, outcome, provider_id, detail, at)
                         SELECT id, attempts, $2, $3, $4, $5, $6 FROM notifications WHERE id = $1",
                    )
                    .bind(&o.id)
                    .bind(&o.channel)
                    .bind(o.outcome)
                    .bind(&o.provider_id)
                    .bind(&o.detail)
                    .bind(&at)
                    .execute(&mut *tx)
                    .await?;
                    let sent = matches!(o.status, "sent" | "delivered").then(|| at.clone());
                    let delivered = (o.status == "delivered").then(|| at.clone());
                    sqlx::query(
                        "UPDATE notifications SET status = $1, provider_id = COALESCE($2, provider_id), detail = $3,
                           due_at = COALESCE($4, due_at), claimed_until = NULL, updated_at = $5,
                           sent_at = COALESCE(sent_at, $6), delivered_at = COALESCE(delivered_at, $7)
                         WHERE id = $8 AND (status = 'sending' OR $1 IN ('sent', 'delivered', 'failed'))",
                    )
                    .bind(o.status)
                    .bind(&o.provider_id)
                    .bind(&o.detail)
                    .bind(o.due_at)
                    .bind(&at)
                    .bind(sent)
                    .bind(delivered)
                    .bind(&o.id)
                    .execute(&mut *tx)
                    .await?;
                }
                let mut answers = Vec::with_capacity(claims.len());
                // A worker's gathering is of one channel: one statement claims it all.
                for group in claims.chunk_by(|a, b| a.channel == b.channel).flat_map(|g| g.chunks(500)) {
                    let channel = &group[0].channel;
                    let now_ms = group.iter().map(|c| c.now_ms).max().unwrap_or_default();
                    let lease_ms = group.iter().map(|c| c.lease_ms).max().unwrap_or_default();
                    // Placeholders only: the ids are bound, never written into the text. (`channel
                    // || ''` keeps SQLite on the primary key rather than the channel's index.)
                    let marks = (5..5 + group.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE notifications SET status = 'sending', claimed_until = $1, attempts = attempts + 1, updated_at = $2
                         WHERE id IN ({marks}) AND channel || '' = $3 AND body IS NOT NULL
                           AND status IN ('pending', 'queued', 'sending') AND (claimed_until IS NULL OR claimed_until < $4)
                         RETURNING id, rule, timezone, person_id, category, address, language, title, body, attempts"
                    )))
                    .bind(now_ms + lease_ms)
                    .bind(&at)
                    .bind(channel)
                    .bind(now_ms);
                    for c in group {
                        q = q.bind(&c.id);
                    }
                    let mut claimed: std::collections::HashMap<String, ClaimedSend> = std::collections::HashMap::new();
                    for r in q.fetch_all(&mut *tx).await? {
                        let id: String = r.get("id");
                        claimed.insert(
                            id.clone(),
                            ClaimedSend {
                                id,
                                rule: r.get("rule"),
                                timezone: r.get("timezone"),
                                person_id: r.get("person_id"),
                                category: r.get("category"),
                                channel: channel.clone(),
                                address: r.get("address"),
                                language: r.get("language"),
                                title: self.open_text(super::postgres::TITLE, r.get("title"))?,
                                body: self
                                    .open_text(super::postgres::BODY, r.get("body"))?
                                    .unwrap_or_default(),
                                attempts: r.get::<i64, _>("attempts") - 1,
                            },
                        );
                    }
                    let missed: Vec<&SendClaim> = group.iter().filter(|c| !claimed.contains_key(&c.id)).collect();
                    let mut states: std::collections::HashMap<String, (String, Option<String>)> = std::collections::HashMap::new();
                    if !missed.is_empty() {
                        let marks = (1..=missed.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
                        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "SELECT id, status, channel FROM notifications WHERE id IN ({marks})"
                        )));
                        for c in &missed {
                            q = q.bind(&c.id);
                        }
                        for r in q.fetch_all(&mut *tx).await? {
                            states.insert(r.get("id"), (r.get("status"), r.get("channel")));
                        }
                    }
                    for c in group {
                        // The same send twice in one gathering (two queue messages): the first
                        // takes it, the second finds it held.
                        if let Some(send) = claimed.remove(&c.id) {
                            answers.push(Claim::Send(Box::new(send)));
                            continue;
                        }
                        answers.push(match states.get(&c.id) {
                            None if group.iter().any(|o| o.id == c.id && !std::ptr::eq(o, c)) => Claim::Busy,
                            None => Claim::Missing,
                            Some((status, _)) if status == "sending" => Claim::Busy,
                            Some((status, Some(ch))) if ch != &c.channel => {
                                Claim::Settled(format!("{status} (moved to {ch})"))
                            }
                            Some((status, _)) => Claim::Settled(status.clone()),
                        });
                    }
                }
                tx.commit().await?;
                Ok(answers)
            }

        }
    };
}

pub(crate) use notify_write_queries;
