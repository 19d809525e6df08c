//! Queries of the embedded queue (`queue.kind: embedded`, see `queue/embedded.rs`): one row
//! per message in `queue_messages`, written once for both backends.

/// Expands the embedded queue's read queries for a backend (`$store` with `pool`).
macro_rules! queue_queries {
    ($store:ident) => {
        impl $store {
            /// Messages waiting (ready or delayed, not dead) in a queue.
            pub async fn queue_depth(&self, queue: &str) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM queue_messages WHERE queue = $1 AND dead_reason IS NULL")
                    .bind(queue)
                    .fetch_one(&self.pool)
                    .await?)
            }

            pub async fn queue_dead_letters(&self, queue: &str) -> Result<Vec<(String, String)>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT payload, dead_reason FROM queue_messages WHERE queue = $1 AND dead_reason IS NOT NULL ORDER BY id",
                )
                .bind(queue)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}

pub(crate) use queue_queries;

/// The embedded queue's writes for PostgreSQL (SQLite's go through its outbox writer thread,
/// `sqlite_outbox.rs`). `$skip_locked` is appended to the claim's sub-select (`FOR UPDATE SKIP
/// LOCKED`: consumers of several replicas compete).
macro_rules! queue_write_queries {
    ($store:ident, $skip_locked:literal) => {
        impl $store {
            pub async fn queue_push(&self, queue_rows: &[(String, String, String, i64)]) -> Result<(), StoreError> {
                let at = now();
                let mut tx = self.pool.begin().await?;
                for (queue, message_id, payload, available_at) in queue_rows {
                    sqlx::query(
                        "INSERT INTO queue_messages (queue, message_id, payload, available_at, created_at) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(queue)
                    .bind(message_id)
                    .bind(payload)
                    .bind(available_at)
                    .bind(&at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            /// Takes up to `limit` ready messages of a queue, hidden from others until `lock_until`:
            /// the longest due first (in the order of `queue_messages_ready`, so the claim reads
            /// only the messages in flight before the ones it takes, not the whole backlog).
            pub async fn queue_claim(&self, queue: &str, now_ms: i64, lock_until: i64, limit: i64) -> Result<Vec<QueueRow>, StoreError> {
                let rows = sqlx::query(concat!(
                    "UPDATE queue_messages SET locked_until = $1, deliveries = deliveries + 1
                     WHERE id IN (SELECT id FROM queue_messages WHERE queue = $2 AND dead_reason IS NULL AND available_at <= $3
                       AND (locked_until IS NULL OR locked_until < $3) ORDER BY available_at, id LIMIT $4 ",
                    $skip_locked,
                    ") RETURNING id, payload, deliveries"
                ))
                .bind(lock_until)
                .bind(queue)
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let mut out: Vec<QueueRow> = rows
                    .iter()
                    .map(|r| QueueRow {
                        id: r.get("id"),
                        payload: r.get("payload"),
                        deliveries: r.get("deliveries"),
                    })
                    .collect();
                out.sort_by_key(|r| r.id);
                Ok(out)
            }

            pub async fn queue_ack(&self, ids: &[i64]) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                for id in ids {
                    sqlx::query("DELETE FROM queue_messages WHERE id = $1").bind(id).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            pub async fn queue_retry(&self, id: i64, payload: &str, available_at: i64) -> Result<(), StoreError> {
                sqlx::query("UPDATE queue_messages SET payload = $1, available_at = $2, locked_until = NULL, deliveries = 0 WHERE id = $3")
                    .bind(payload)
                    .bind(available_at)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            pub async fn queue_dead(&self, id: i64, reason: &str) -> Result<(), StoreError> {
                sqlx::query("UPDATE queue_messages SET dead_reason = $1, locked_until = NULL WHERE id = $2")
                    .bind(reason)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

        }
    };
}

pub(crate) use queue_write_queries;
