//! Queries of change notifications (`crate::subscriptions`), written once for both backends:
//! the subscriptions, the fan-out of change events into deliveries, and what a delivery
//! worker reads and records. The change events themselves are written by ingest (`batch_changes.rs`
//! and each backend's writer) and by merges (`sql_identity.rs`), in the change's transaction.

use serde::{Deserialize, Serialize};

/// One change event to write: ids only, never patient data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRow {
    /// UUIDv7: receivers de-duplicate on it.
    pub id: String,
    /// `patient.created`, `patient.updated`, `patient.merged` or `record.changed`.
    pub event: &'static str,
    pub person_id: String,
    /// `patient.merged`: the person merged into `person_id`.
    pub other_person_id: Option<String>,
    pub record_kind: Option<String>,
    pub record_system: Option<String>,
    pub record_key: Option<String>,
    pub created_at: String,
}

impl ChangeRow {
    pub fn new(event: &'static str, person_id: &str, at: &str) -> ChangeRow {
        ChangeRow {
            id: uuid::Uuid::now_v7().to_string(),
            event,
            person_id: person_id.to_string(),
            other_person_id: None,
            record_kind: None,
            record_system: None,
            record_key: None,
            created_at: at.to_string(),
        }
    }
}

/// Which change events a subscription wants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeFilter {
    /// Event names; empty: every event.
    #[serde(default)]
    pub events: Vec<String>,
    /// For `record.changed`: only these record kinds; empty: every kind.
    #[serde(default)]
    pub record_kinds: Vec<String>,
}

impl ChangeFilter {
    pub fn wants(&self, event: &str, record_kind: Option<&str>) -> bool {
        if !self.events.is_empty() && !self.events.iter().any(|e| e == event) {
            return false;
        }
        match record_kind {
            Some(kind) => self.record_kinds.is_empty() || self.record_kinds.iter().any(|k| k == kind),
            None => true,
        }
    }
}

/// A stored subscription (its secret is never read out through the API).
#[derive(Debug, Clone)]
pub struct SubscriptionRow {
    pub name: String,
    pub url: String,
    pub filter: ChangeFilter,
    /// `event` or `fhir`.
    pub payload: String,
    /// API subscriptions only; configured ones take theirs from the environment.
    pub secret: Option<String>,
    /// `config` or `api`.
    pub origin: String,
    /// The last change event fanned out to it.
    pub through: i64,
    pub created_at: String,
}

/// Deliveries of a subscription by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeliveryCounts {
    pub pending: i64,
    pub queued: i64,
    pub delivered: i64,
    pub failed: i64,
    /// POSTs made in all (retries included).
    pub attempts: i64,
}

/// What a worker needs to POST one delivery.
#[derive(Debug, Clone)]
pub struct DeliveryToSend {
    pub id: String,
    pub status: String,
    pub attempts: i64,
    pub subscription: SubscriptionRow,
    pub seq: i64,
    pub event_id: String,
    pub event: String,
    pub person_id: String,
    pub other_person_id: Option<String>,
    pub record_kind: Option<String>,
    /// The clinical record's id in the store, when the event is about one.
    pub record_id: Option<i64>,
    pub created_at: String,
}

/// Expands the subscription queries for a backend (`$store` with `pool`; `$db` its sqlx
/// database and `$row` its row type; `$begin`: how a writing transaction starts).
macro_rules! subscription_queries {
    ($store:ident, $db:ty, $row:ty, $begin:expr) => {
        impl $store {
            pub async fn subscriptions(&self) -> Result<Vec<SubscriptionRow>, StoreError> {
                let rows = sqlx::query(
                    "SELECT name, url, filter, payload, secret, origin, through, created_at FROM subscriptions ORDER BY name",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(subscription_from_row).collect()
            }

            pub async fn subscription_count(&self) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM subscriptions").fetch_one(&self.pool).await?)
            }

            /// The configured subscriptions, as the configuration says now: added or updated
            /// (keeping how far each was fanned out), and those no longer configured removed.
            pub async fn sync_configured_subscriptions(&self, rows: &[SubscriptionRow]) -> Result<(), StoreError> {
                let at = now();
                let mut tx = self.pool.begin_with($begin).await?;
                let names: Vec<String> = sqlx::query_scalar("SELECT name FROM subscriptions WHERE origin = 'config'")
                    .fetch_all(&mut *tx)
                    .await?;
                for gone in names.iter().filter(|n| !rows.iter().any(|r| &r.name == *n)) {
                    Self::delete_subscription_in(&mut tx, gone).await?;
                }
                for r in rows {
                    sqlx::query(
                        "INSERT INTO subscriptions (name, url, filter, payload, secret, origin, through, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, NULL, 'config', (SELECT COALESCE(MAX(seq), 0) FROM change_events), $5, $5)
                         ON CONFLICT (name) DO UPDATE SET url = excluded.url, filter = excluded.filter,
                           payload = excluded.payload, secret = NULL, origin = 'config', updated_at = excluded.updated_at",
                    )
                    .bind(&r.name)
                    .bind(&r.url)
                    .bind(serde_json::to_string(&r.filter)?)
                    .bind(&r.payload)
                    .bind(&at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            /// A subscription made through the API; it hears of changes made from now on.
            pub async fn create_subscription(&self, r: &SubscriptionRow) -> Result<SubscriptionRow, StoreError> {
                let at = now();
                let done = sqlx::query(
                    "INSERT INTO subscriptions (name, url, filter, payload, secret, origin, through, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, 'api', (SELECT COALESCE(MAX(seq), 0) FROM change_events), $6, $6)
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(&r.name)
                .bind(&r.url)
                .bind(serde_json::to_string(&r.filter)?)
                .bind(&r.payload)
                .bind(&r.secret)
                .bind(&at)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!("a subscription named {} exists", r.name)));
                }
                Ok(SubscriptionRow {
                    origin: "api".into(),
                    created_at: at,
                    ..r.clone()
                })
            }

            /// Deletes an API subscription and its deliveries not yet made; a configured one is
            /// removed from the configuration instead (`Conflict`).
            pub async fn delete_subscription(&self, name: &str) -> Result<(), StoreError> {
                let mut tx = self.pool.begin_with($begin).await?;
                let origin: Option<String> = sqlx::query_scalar("SELECT origin FROM subscriptions WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
                match origin.as_deref() {
                    None => return Err(StoreError::NotFound("subscription")),
                    Some("config") => {
                        return Err(StoreError::Conflict(
                            "this subscription is configured (subscriptions: in carehub.yaml): remove it there".into(),
                        ));
                    }
                    Some(_) => Self::delete_subscription_in(&mut tx, name).await?,
                }
                tx.commit().await?;
                Ok(())
            }

            async fn delete_subscription_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                name: &str,
            ) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM subscription_deliveries WHERE subscription = $1")
                    .bind(name)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query("DELETE FROM subscriptions WHERE name = $1")
                    .bind(name)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            /// Deliveries of each subscription by status.
            pub async fn delivery_counts(&self) -> Result<Vec<(String, DeliveryCounts)>, StoreError> {
                let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
                    "SELECT subscription, status, COUNT(*), CAST(COALESCE(SUM(attempts), 0) AS BIGINT)
                     FROM subscription_deliveries GROUP BY subscription, status",
                )
                .fetch_all(&self.pool)
                .await?;
                let mut out: Vec<(String, DeliveryCounts)> = Vec::new();
                for (name, status, n, attempts) in rows {
                    let at = match out.iter().position(|(o, _)| *o == name) {
                        Some(i) => i,
                        None => {
                            out.push((name, DeliveryCounts::default()));
                            out.len() - 1
                        }
                    };
                    let c = &mut out[at].1;
                    c.attempts += attempts;
                    match status.as_str() {
                        "pending" => c.pending = n,
                        "queued" => c.queued = n,
                        "delivered" => c.delivered = n,
                        _ => c.failed += n,
                    }
                }
                Ok(out)
            }

            /// Turns up to `limit` change events after the subscription's mark into deliveries
            /// (those its filter wants) and moves the mark past them, in one transaction; a
            /// replica that moved the mark first wins and this pass writes nothing. Answers the
            /// events read.
            pub async fn fan_out(&self, s: &SubscriptionRow, limit: i64) -> Result<usize, StoreError> {
                let mut tx = self.pool.begin_with($begin).await?;
                let events: Vec<(i64, String, Option<String>)> = sqlx::query_as(
                    "SELECT seq, event, record_kind FROM change_events WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(s.through)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                let Some(last) = events.last().map(|e| e.0) else {
                    return Ok(0);
                };
                let moved = sqlx::query("UPDATE subscriptions SET through = $1 WHERE name = $2 AND through = $3")
                    .bind(last)
                    .bind(&s.name)
                    .bind(s.through)
                    .execute(&mut *tx)
                    .await?;
                if moved.rows_affected() == 0 {
                    return Ok(0);
                }
                let at = now();
                for (seq, _, _) in events.iter().filter(|e| s.filter.wants(&e.1, e.2.as_deref())) {
                    sqlx::query(
                        "INSERT INTO subscription_deliveries (id, subscription, event_seq, status, attempts, created_at, updated_at)
                         VALUES ($1, $2, $3, 'pending', 0, $4, $4) ON CONFLICT (subscription, event_seq) DO NOTHING",
                    )
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind(&s.name)
                    .bind(seq)
                    .bind(&at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(events.len())
            }

            /// Deliveries waiting to be queued, oldest change first.
            pub async fn pending_deliveries(&self, limit: i64) -> Result<Vec<String>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT id FROM subscription_deliveries WHERE status = 'pending' ORDER BY event_seq LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            /// Marks deliveries as handed to the queue (confirmed).
            pub async fn deliveries_queued(&self, ids: &[String]) -> Result<(), StoreError> {
                let at = now();
                let mut tx = self.pool.begin_with($begin).await?;
                for id in ids {
                    sqlx::query(
                        "UPDATE subscription_deliveries SET status = 'queued', updated_at = $1 WHERE id = $2 AND status = 'pending'",
                    )
                    .bind(&at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            /// A delivery with its change event and subscription; `None` when either is gone
            /// (a deleted subscription, an event pruned after its deliveries were made).
            pub async fn delivery_to_send(&self, id: &str) -> Result<Option<DeliveryToSend>, StoreError> {
                let Some(row) = sqlx::query(
                    "SELECT d.id AS delivery_id, d.status AS delivery_status, d.attempts, e.seq, e.id AS event_id, e.event,
                            e.person_id, e.other_person_id, e.record_kind, e.record_system, e.record_key,
                            e.created_at AS event_at,
                            s.name, s.url, s.filter, s.payload, s.secret, s.origin, s.through, s.created_at
                     FROM subscription_deliveries d
                     JOIN change_events e ON e.seq = d.event_seq
                     JOIN subscriptions s ON s.name = d.subscription
                     WHERE d.id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                else {
                    return Ok(None);
                };
                use sqlx::Row as _;
                let kind: Option<String> = row.try_get("record_kind")?;
                let record_id: Option<i64> = match (&kind, row.try_get::<Option<String>, _>("record_system")?, row.try_get::<Option<String>, _>("record_key")?) {
                    (Some(kind), Some(system), Some(key)) => sqlx::query_scalar(
                        "SELECT id FROM clinical_records WHERE kind = $1 AND source_system = $2 AND record_key = $3",
                    )
                    .bind(kind)
                    .bind(system)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?,
                    _ => None,
                };
                Ok(Some(DeliveryToSend {
                    id: row.try_get("delivery_id")?,
                    status: row.try_get("delivery_status")?,
                    attempts: row.try_get("attempts")?,
                    subscription: subscription_from_row(&row)?,
                    seq: row.try_get("seq")?,
                    event_id: row.try_get("event_id")?,
                    event: row.try_get("event")?,
                    person_id: row.try_get("person_id")?,
                    other_person_id: row.try_get("other_person_id")?,
                    record_kind: kind,
                    record_id,
                    created_at: row.try_get("event_at")?,
                }))
            }

            /// Records a POST's outcome: `delivered`, `queued` (to be retried) or `failed`.
            pub async fn delivery_outcome(&self, id: &str, status: &str, detail: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE subscription_deliveries SET status = $1, attempts = attempts + 1, detail = $2, updated_at = $3
                     WHERE id = $4",
                )
                .bind(status)
                .bind(detail)
                .bind(now())
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            /// Drops change events every subscription has passed and no delivery waits for,
            /// and deliveries made more than `keep_days` ago. Answers the events dropped.
            pub async fn prune_changes(&self, keep_days: i64) -> Result<u64, StoreError> {
                let floor: Option<i64> = sqlx::query_scalar("SELECT MIN(through) FROM subscriptions")
                    .fetch_one(&self.pool)
                    .await?;
                let floor = match floor {
                    Some(f) => f,
                    None => sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM change_events")
                        .fetch_one(&self.pool)
                        .await?,
                };
                let cutoff = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * keep_days.max(0))).to_string();
                sqlx::query("DELETE FROM subscription_deliveries WHERE status IN ('delivered', 'failed') AND updated_at < $1")
                    .bind(&cutoff)
                    .execute(&self.pool)
                    .await?;
                let gone = sqlx::query(
                    "DELETE FROM change_events WHERE seq <= $1
                       AND seq NOT IN (SELECT event_seq FROM subscription_deliveries)",
                )
                .bind(floor)
                .execute(&self.pool)
                .await?;
                Ok(gone.rows_affected())
            }
        }

        fn subscription_from_row(row: &$row) -> Result<SubscriptionRow, StoreError> {
            use sqlx::Row as _;
            Ok(SubscriptionRow {
                name: row.try_get("name")?,
                url: row.try_get("url")?,
                filter: serde_json::from_str(&row.try_get::<String, _>("filter")?)?,
                payload: row.try_get("payload")?,
                secret: row.try_get("secret")?,
                origin: row.try_get("origin")?,
                through: row.try_get("through")?,
                created_at: row.try_get("created_at")?,
            })
        }
    };
}

pub(crate) use subscription_queries;
