//! The PostgreSQL backend: for production and for several hub replicas.
//!
//! Its read queries are the shared ones (`sql.rs`). Ingest batches are set-based: a few
//! UNION ALL look-ups and multi-row inserts per batch, each statement on its own (the extended
//! protocol takes one statement per query); a batch transaction first takes a
//! transaction-scoped advisory lock, so that batches from several replicas are applied one
//! after the other and the ids a batch allocates stay their own.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::StoreError;
use super::batch::{self, Lookups, Plan};
use super::cipher::{self, StoreKey};
use super::postgres_stats::Statistics;
use super::sql::{CHUNK, LOOKUP_VALUES, like_escape, now, store_queries};
use super::sql_access::{AuditFilter, TokenRecord, access_queries};
use super::sql_clinical::clinical_queries;
use super::sql_console::{FailedSend, RATE_SCAN_ROWS, SessionRecord, console_queries};
use super::sql_identity::identity_queries;
use super::sql_messages::message_queries;
use super::sql_notify::{notify_queries, notify_write_queries};
use super::sql_ops::ops_queries;
use super::sql_pull::pull_queries;
use super::sql_queue::{queue_queries, queue_write_queries};
use super::sql_retention::{PrunePlan, PruneReport, retention_queries};
use super::sql_schedule::schedule_queries;
use super::sql_subscriptions::{DeliveryCounts, DeliveryToSend, SubscriptionRow, subscription_queries};
use super::types::*;
use crate::identity::link::match_record;
use crate::identity::{MatchInput, Matcher};
use crate::model::ProfilePatch;
use crate::rules::{NotificationRow, Prior, RuleSet, StopRow};

/// The advisory lock key that serialises ingest batches ("carehub" in a number; merges take
/// it too, written out in `identity_queries!` below).
/// The sealed columns' names, bound to their values (`cipher.rs`).
pub(super) const RAW: &str = "messages.raw";
pub(super) const TITLE: &str = "notifications.title";
pub(super) const BODY: &str = "notifications.body";

const INGEST_LOCK: i64 = 0x0063_6172_6568_7562;

#[derive(Clone, Debug)]
pub struct PgStore {
    pub(super) pool: PgPool,
    /// Keeps the ingest look-ups' plans fitting the tables (see `postgres_stats.rs`).
    statistics: Arc<Statistics>,
    /// Seals message bodies and notification texts (`cipher.rs`); none: stored as they are.
    key: Option<Arc<StoreKey>>,
}

impl PgStore {
    pub async fn open(
        url: &str,
        max_connections: u32,
        timeout: Duration,
        key: Option<Arc<StoreKey>>,
    ) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(timeout)
            .connect_with(options)
            .await?;
        Ok(PgStore {
            pool,
            statistics: Arc::new(Statistics::new()),
            key,
        })
    }

    /// Opens a message body read from the store (sealed when a key was set at its ingest).
    pub fn open_raw(&self, raw: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        cipher::open(self.key.as_deref(), RAW, raw)
    }

    /// Seals a notification's title or body for the store.
    fn seal_text(&self, column: &str, text: Option<&str>) -> Option<String> {
        cipher::seal_text(self.key.as_deref(), column, text)
    }

    /// Opens a notification's title or body read from the store.
    pub(super) fn open_text(&self, column: &str, text: Option<String>) -> Result<Option<String>, StoreError> {
        cipher::open_text(self.key.as_deref(), column, text)
    }

    /// No turns to take: PostgreSQL's row locks let writers run side by side.
    pub async fn write_gate(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        None
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("migrations/postgres").run(&self.pool).await?;
        Ok(())
    }

    /// See [`super::Store::close`].
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn apply_batch(
        &self,
        records: &[NewRecord],
        matcher: &Arc<Matcher>,
        rules: &RuleSet,
    ) -> Result<Vec<Applied>, StoreError> {
        let inputs = batch::match_inputs(records, matcher);
        // READ COMMITTED whatever the server's default: the snapshot must be taken after the
        // lock is granted, so that MAX(id) and the look-ups see the previous batch.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(INGEST_LOCK)
            .execute(&mut *tx)
            .await?;
        let mut lookups = Self::ingest_lookup(&mut tx, records).await?;
        Self::candidate_lookup(&mut tx, records, &inputs, matcher, &mut lookups).await?;
        let mut plan = batch::plan(records, lookups, &inputs, matcher)?;
        let stored = Self::stored_sources(&mut tx, &plan).await?;
        batch::settle(&mut plan, &stored, &matcher.survivorship)?;
        let priors = Self::clinical_priors(&mut tx, &batch::watched(&plan, rules)).await?;
        let feed = rules.changes.on();
        let stored_profiles = match feed {
            true => super::write_changes::pg_before(&mut tx, &plan).await?,
            false => HashMap::new(),
        };
        Self::ingest_write(&mut tx, &plan, self.key.as_deref()).await?;
        let (notifications, stops) = batch::outbox(&plan, &priors, rules, jiff::Timestamp::now())?;
        Self::write_outbox(&mut tx, &notifications, &stops).await?;
        if feed {
            super::write_changes::pg_write(&mut tx, &plan, &stored_profiles).await?;
        }
        tx.commit().await?;
        self.statistics.after_batch(&self.pool);
        Ok(plan.applied)
    }

    /// What ingest would do with this patch: the ingest's own look-ups and plan, in a
    /// transaction rolled back (see [`super::Store::match_patch`]). It takes no ingest lock.
    pub async fn match_patch(
        &self,
        patch: &ProfilePatch,
        matcher: &Matcher,
    ) -> Result<MatchResult, StoreError> {
        let records = [batch::probe(patch)];
        let inputs = batch::match_inputs(&records, matcher);
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let mut lookups = Self::ingest_lookup(&mut tx, &records).await?;
        Self::candidate_lookup(&mut tx, &records, &inputs, matcher, &mut lookups).await?;
        let plan = batch::plan(&records, lookups, &inputs, matcher)?;
        let result = batch::match_result(&plan)?;
        tx.rollback().await?;
        Ok(result)
    }
}

/// The ingest batch: set-based look-ups and multi-row writes.
impl PgStore {
    /// The stored source records survivorship needs for this plan ([`batch::stored_needed`]).
    async fn stored_sources(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        plan: &batch::Plan<'_>,
    ) -> Result<Vec<batch::StoredSource>, StoreError> {
        let (persons, ids) = batch::stored_needed(plan);
        if persons.is_empty() && ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, String, String, String, Option<i64>, String)> = sqlx::query_as(
            // Two index look-ups (an OR of the two may scan the table).
            "SELECT id, person_id, source_system, updated_at, last_message_id, patch FROM source_records
             WHERE person_id = ANY($1)
             UNION
             SELECT id, person_id, source_system, updated_at, last_message_id, patch FROM source_records
             WHERE id = ANY($2)",
        )
        .bind(&persons)
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?;
        rows.into_iter()
            .map(|(id, person_id, system, at, message_id, patch)| {
                Ok(batch::StoredSource {
                    id,
                    person_id,
                    system,
                    at,
                    message_id: message_id.unwrap_or(0),
                    patch: serde_json::from_str(&patch)?,
                })
            })
            .collect()
    }

    /// The stored state of the clinical records a batch is about to overwrite.
    async fn clinical_priors(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        keys: &[batch::PriorKey],
    ) -> Result<HashMap<batch::PriorKey, Prior>, StoreError> {
        let mut out = HashMap::new();
        for chunk in keys.chunks(LOOKUP_VALUES / 3) {
            let (kinds, systems, keys): (Vec<&str>, Vec<&str>, Vec<&str>) = chunk
                .iter()
                .map(|k| (k.0.as_str(), k.1.as_str(), k.2.as_str()))
                .fold((vec![], vec![], vec![]), |mut acc, (a, b, c)| {
                    acc.0.push(a);
                    acc.1.push(b);
                    acc.2.push(c);
                    acc
                });
            let rows = sqlx::query(
                "SELECT c.kind, c.source_system, c.record_key, c.status, c.sort_at FROM clinical_records c
                 JOIN UNNEST($1::text[], $2::text[], $3::text[]) AS k(kind, source_system, record_key)
                   ON c.kind = k.kind AND c.source_system = k.source_system AND c.record_key = k.record_key",
            )
            .bind(&kinds)
            .bind(&systems)
            .bind(&keys)
            .fetch_all(&mut **tx)
            .await?;
            for r in rows {
                out.insert(
                    (r.get(0), r.get(1), r.get(2)),
                    Prior {
                        status: r.get(3),
                        sort_at: r.get(4),
                    },
                );
            }
        }
        Ok(out)
    }

    /// The batch's notifications (the outbox) and the journeys its events stop.
    async fn write_outbox(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        rows: &[NotificationRow],
        stops: &[StopRow],
    ) -> Result<(), StoreError> {
        let at = now();
        for s in stops {
            sqlx::query(
                "UPDATE notifications SET status = 'cancelled', detail = $1, updated_at = $2
                 WHERE rule = $3 AND (subject = $5 OR $5::text IS NULL AND person_id = $4) \
                   AND status IN ('pending', 'queued', 'sending')",
            )
            .bind(&s.reason)
            .bind(&at)
            .bind(&s.rule)
            .bind(&s.person_id)
            .bind(&s.subject)
            .execute(&mut **tx)
            .await?;
        }
        for chunk in rows.chunks(CHUNK) {
            let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                "INSERT INTO notifications (id, rule, category, person_id, subject, dedupe_key, template, channels, \
                 context, cause, status, due_at, created_at, updated_at) ",
            );
            q.push_values(chunk, |mut b, n| {
                b.push_bind(&n.id)
                    .push_bind(&n.rule)
                    .push_bind(n.category)
                    .push_bind(&n.person_id)
                    .push_bind(&n.subject)
                    .push_bind(&n.dedupe_key)
                    .push_bind(&n.template)
                    .push_bind(&n.channels)
                    .push_bind(&n.context)
                    .push_bind(&n.cause)
                    .push_bind("pending")
                    .push_bind(n.due_at)
                    .push_bind(&n.created_at)
                    .push_bind(&n.created_at);
            });
            q.push(" ON CONFLICT (dedupe_key) DO NOTHING");
            q.build().execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Candidates for the records no identifier links: the source records sharing a blocking
    /// key (keys held by more than `max_block` records skipped), and their persons' golden records.
    async fn candidate_lookup(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        records: &[NewRecord],
        inputs: &[Option<Arc<MatchInput>>],
        matcher: &Matcher,
        l: &mut Lookups,
    ) -> Result<(), StoreError> {
        let keys = batch::keys_to_match(records, inputs, l);
        if keys.is_empty() {
            return Ok(());
        }
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            // At most max_block + 1 rows per key, read through the index: a common key
            // (a frequent name and year) must not be read whole under the ingest lock.
            "SELECT k.key, m.source_record_id FROM unnest($1::bigint[]) AS k(key)
             CROSS JOIN LATERAL (SELECT source_record_id FROM match_keys WHERE key = k.key LIMIT $2) m",
        )
        .bind(&keys)
        .bind(matcher.max_block as i64 + 1)
        .fetch_all(&mut **tx)
        .await?;
        for (key, id) in rows {
            l.keyed.entry(key).or_default().push(id);
        }
        let common = &mut l.common_keys;
        l.keyed.retain(|key, ids| {
            let narrow = ids.len() <= matcher.max_block;
            if !narrow {
                common.insert(*key);
            }
            narrow
        });
        let mut ids: Vec<i64> = l.keyed.values().flatten().copied().collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(());
        }
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT s.id, s.person_id, s.patch, p.profile FROM source_records s JOIN persons p ON p.id = s.person_id
             WHERE s.id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?;
        for (id, person, patch, profile) in rows {
            let patch: ProfilePatch = serde_json::from_str(&patch)?;
            if !l.profiles.contains_key(&person) {
                l.profiles.insert(person.clone(), serde_json::from_str(&profile)?);
            }
            l.candidates.insert(
                id,
                (person, Arc::new(crate::identity::prepare(&match_record(&patch)))),
            );
        }
        Ok(())
    }

    /// Everything a batch needs to know, in one query of a fixed shape: the values go in as
    /// arrays (`= ANY($n)`), so the server plans it once per connection whatever the batch
    /// holds. Columns: kind, id, a, b, c, d, e.
    async fn ingest_lookup(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        records: &[NewRecord],
    ) -> Result<Lookups, StoreError> {
        let keys = batch::lookup_keys(records);
        let rows = sqlx::query(
            "SELECT 'n' AS kind, (SELECT COALESCE(MAX(id), 0) + 1 FROM messages) AS id, CAST(NULL AS TEXT) AS a, \
             CAST(NULL AS TEXT) AS b, CAST(NULL AS TEXT) AS c, CAST(NULL AS TEXT) AS d, CAST(NULL AS TEXT) AS e \
             UNION ALL SELECT 'r', (SELECT COALESCE(MAX(id), 0) + 1 FROM source_records), NULL, NULL, NULL, NULL, NULL \
             UNION ALL SELECT 'm', id, sender, control_id, content_hash, person_id, status FROM messages \
               WHERE control_id = ANY($1) \
             UNION ALL SELECT 'i', NULL, system, value, person_id, NULL, NULL FROM identifiers WHERE value = ANY($2) \
             UNION ALL SELECT 'p', NULL, id, profile, NULL, NULL, NULL FROM persons \
               WHERE id IN (SELECT person_id FROM identifiers WHERE value = ANY($2)) \
             UNION ALL SELECT 's', id, source_system, source_key, NULL, NULL, NULL FROM source_records \
               WHERE source_key = ANY($3)",
        )
        .bind(&keys.control_ids)
        .bind(&keys.identifier_values)
        .bind(&keys.source_keys)
        .fetch_all(&mut **tx)
        .await?;
        let mut l = Lookups::default();
        for row in rows {
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
                    super::batch::note_accepted(&mut l, key, id, person);
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

    /// Writes a planned batch: one multi-row statement per table and chunk.
    async fn ingest_write(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        plan: &Plan<'_>,
        key: Option<&StoreKey>,
    ) -> Result<(), StoreError> {
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new("");
        // The extended protocol takes one statement per query: each runs as soon as it is complete.
        macro_rules! statement_done {
            ($tx:ident, $q:ident) => {
                $q.build().execute(&mut **$tx).await?;
                $q.reset();
            };
        }
        for chunk in plan.persons.chunks(CHUNK) {
            q.push("INSERT INTO persons (id, profile, created_at, updated_at) ");
            q.push_values(chunk, |mut b, p| {
                b.push_bind(&p.id)
                    .push_bind(&p.profile)
                    .push_bind(&p.created_at)
                    .push_bind(&p.updated_at);
            });
            q.push(" ON CONFLICT (id) DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at");
            statement_done!(tx, q);
        }
        for chunk in plan.source_records.chunks(CHUNK) {
            q.push(
                "INSERT INTO source_records (id, source_system, source_key, person_id, patch, last_message_id, \
                 created_at, updated_at, link_method, link_score, link_detail) ",
            );
            q.push_values(chunk, |mut b, s| {
                b.push_bind(s.id)
                    .push_bind(&s.source_system)
                    .push_bind(&s.source_key)
                    .push_bind(&s.person_id)
                    .push_bind(&s.patch)
                    .push_bind(s.last_message_id)
                    .push_bind(&s.at)
                    .push_bind(&s.at)
                    .push_bind(s.link_method)
                    .push_bind(s.link_score)
                    .push_bind(&s.link_detail);
            });
            q.push(
                " ON CONFLICT (id) DO UPDATE SET patch = excluded.patch, last_message_id = excluded.last_message_id, \
                 updated_at = excluded.updated_at",
            );
            statement_done!(tx, q);
        }
        for chunk in plan.match_keys.chunks(CHUNK) {
            q.push("INSERT INTO match_keys (key, source_record_id) ");
            q.push_values(chunk, |mut b, (k, id)| {
                b.push_bind(*k).push_bind(*id);
            });
            q.push(" ON CONFLICT DO NOTHING");
            statement_done!(tx, q);
        }
        if let Some(through) = plan.keys_through {
            sqlx::query("UPDATE identity_state SET keys_through = $1 WHERE id = 1 AND keys_through < $1")
                .bind(through)
                .execute(&mut **tx)
                .await?;
        }
        for chunk in plan.reviews.chunks(CHUNK) {
            q.push("INSERT INTO review_items (person_id, candidate_id, message_id, score, breakdown, status, created_at) ");
            q.push_values(chunk, |mut b, r| {
                b.push_bind(&r.person_id)
                    .push_bind(&r.candidate_id)
                    .push_bind(r.message_id)
                    .push_bind(r.score)
                    .push_bind(&r.breakdown)
                    .push_bind("open")
                    .push_bind(&r.at);
            });
            statement_done!(tx, q);
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
            q.push(" ON CONFLICT (value, system) DO NOTHING");
            statement_done!(tx, q);
        }
        for chunk in plan.clinical.chunks(CHUNK) {
            q.push(
                "INSERT INTO clinical_records (kind, source_system, record_key, person_id, status, at, sort_at, code, \
                 data, first_message_id, last_message_id, created_at, updated_at) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.kind)
                    .push_bind(&r.source_system)
                    .push_bind(&r.key)
                    .push_bind(&r.person_id)
                    .push_bind(r.status)
                    .push_bind(&r.at)
                    .push_bind(&r.sort_at)
                    .push_bind(&r.code)
                    .push_bind(&r.data)
                    .push_bind(r.message_id)
                    .push_bind(r.message_id)
                    .push_bind(&r.received_at)
                    .push_bind(&r.received_at);
            });
            q.push(
                " ON CONFLICT (kind, source_system, record_key) DO UPDATE SET \
                 person_id = COALESCE(excluded.person_id, clinical_records.person_id), \
                 status = COALESCE(excluded.status, clinical_records.status), \
                 at = COALESCE(excluded.at, clinical_records.at), \
                 sort_at = COALESCE(excluded.sort_at, clinical_records.sort_at), \
                 code = COALESCE(excluded.code, clinical_records.code), \
                 data = (clinical_records.data::jsonb || excluded.data::jsonb)::text, \
                 last_message_id = excluded.last_message_id, updated_at = excluded.updated_at",
            );
            statement_done!(tx, q);
        }
        for d in &plan.deletions {
            let (exact, from, to) = d.range();
            sqlx::query(
                "UPDATE clinical_records SET status = 'entered-in-error', \
                 data = (data::jsonb || '{\"status\":\"entered-in-error\"}'::jsonb)::text, \
                 last_message_id = $1, updated_at = $2 \
                 WHERE last_message_id IN (SELECT id FROM messages WHERE sender = $3 \
                 AND (control_id = $4 OR (control_id COLLATE \"C\" >= $5 AND control_id COLLATE \"C\" < $6)))",
            )
            .bind(d.message_id)
            .bind(&d.at)
            .bind(&d.sender)
            .bind(exact)
            .bind(from)
            .bind(to)
            .execute(&mut **tx)
            .await?;
        }
        let at = jiff::Timestamp::now().to_string();
        for k in &plan.cursors {
            sqlx::query(
                "INSERT INTO connector_cursors (connector, resource_type, cursor, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (connector, resource_type) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            )
            .bind(&k.connector)
            .bind(&k.resource_type)
            .bind(&k.value)
            .bind(&at)
            .execute(&mut **tx)
            .await?;
        }
        let again_at = jiff::Timestamp::now().to_string();
        for m in plan.messages.iter().filter(|m| m.record.reprocess.is_some()) {
            let r = m.record;
            sqlx::query(
                "UPDATE messages SET sender = $2, control_id = $3, message_type = $4, charset = $5, status = $6, \
                 error = $7, warnings = $8, mapping = $9, person_id = $10, duplicate_of = $11, reprocessed_at = $12, \
                 reprocess_count = reprocess_count + 1 WHERE id = $1",
            )
            .bind(m.id)
            .bind(&r.sender)
            .bind(&r.control_id)
            .bind(&r.message_type)
            .bind(&r.charset)
            .bind(m.status.as_str())
            .bind(&m.error)
            .bind(&m.warnings)
            .bind(&m.mapping)
            .bind(&m.person_id)
            .bind(m.duplicate_of)
            .bind(&again_at)
            .execute(&mut **tx)
            .await?;
        }
        let new_messages: Vec<&batch::MessageRow<'_>> = plan
            .messages
            .iter()
            .filter(|m| m.record.reprocess.is_none())
            .collect();
        for chunk in new_messages.chunks(CHUNK) {
            let raws: Vec<Vec<u8>> = chunk
                .iter()
                .map(|m| cipher::seal(key, RAW, &m.record.raw))
                .collect();
            let mut raws = raws.iter();
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
                    .push_bind(raws.next().expect("one sealed body per message"))
                    .push_bind(m.status.as_str())
                    .push_bind(&m.error)
                    .push_bind(&m.warnings)
                    .push_bind(&m.mapping)
                    .push_bind(&m.person_id)
                    .push_bind(m.duplicate_of);
            });
            statement_done!(tx, q);
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
                ") ON CONFLICT (name) DO UPDATE SET received = connectors.received + excluded.received, \
                 processed = connectors.processed + excluded.processed, errors = connectors.errors + excluded.errors, \
                 duplicates = connectors.duplicates + excluded.duplicates, unmapped = connectors.unmapped + excluded.unmapped, \
                 last_message_at = COALESCE(excluded.last_message_at, connectors.last_message_at), \
                 updated_at = excluded.updated_at",
            );
            statement_done!(tx, q);
        }
        Ok(())
    }
}

store_queries!(PgStore, sqlx::Postgres, sqlx::postgres::PgRow);
message_queries!(PgStore, sqlx::Postgres);

identity_queries!(
    PgStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    "BEGIN ISOLATION LEVEL READ COMMITTED",
    "SELECT pg_advisory_xact_lock(27973166649865570)"
);

clinical_queries!(PgStore);
notify_queries!(PgStore);
notify_write_queries!(PgStore);
schedule_queries!(PgStore);
queue_queries!(PgStore);
queue_write_queries!(PgStore, "FOR UPDATE SKIP LOCKED");
pull_queries!(PgStore, sqlx::postgres::PgRow);
ops_queries!(PgStore, sqlx::postgres::PgRow);

access_queries!(
    PgStore,
    sqlx::postgres::PgRow,
    "BEGIN ISOLATION LEVEL READ COMMITTED",
    "SELECT pg_advisory_xact_lock(27432146867350631)"
);

impl PgStore {
    /// Appends `entries` to the audit log, chained, under the advisory lock that serialises
    /// appends across replicas.
    pub async fn append_audit(&self, entries: &[crate::audit::AuditEntry]) -> Result<Vec<i64>, StoreError> {
        self.append_audit_pooled(entries).await
    }
}
retention_queries!(PgStore, sqlx::Postgres);
console_queries!(PgStore, sqlx::postgres::PgRow);
subscription_queries!(
    PgStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    "BEGIN ISOLATION LEVEL READ COMMITTED"
);
