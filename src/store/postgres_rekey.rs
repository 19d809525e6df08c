//! `carehub rekey` on PostgreSQL: the columns the hub seals (message bodies, notification
//! texts; see `cipher.rs`) sealed again under a new key, in batches. Out of `postgres.rs`,
//! which holds the backend's everyday queries.

use super::StoreError;
use super::cipher::{self, StoreKey};
use super::postgres::{BODY, PgStore, RAW, TITLE};

impl PgStore {
    /// `carehub rekey` on PostgreSQL: every message body and notification text sealed again
    /// under `new` (plain ones sealed for the first time), in batches of 500 rows, each batch
    /// its own transaction. Values `new` already sealed are skipped, so an interrupted run is
    /// simply run again. Answers (message bodies, notification rows) rewritten.
    pub async fn rekey(&self, new: &StoreKey) -> Result<(u64, u64), StoreError> {
        const BATCH: i64 = 500;
        let mut messages = 0u64;
        let mut after = i64::MIN;
        loop {
            let rows: Vec<(i64, Vec<u8>)> =
                sqlx::query_as("SELECT id, raw FROM messages WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(after)
                    .bind(BATCH)
                    .fetch_all(&self.pool)
                    .await?;
            let Some(last) = rows.last() else { break };
            after = last.0;
            let mut tx = self.pool.begin().await?;
            for (id, raw) in rows {
                if new.sealed_by_me(&raw) {
                    continue;
                }
                let plain = self.open_raw(raw)?;
                sqlx::query("UPDATE messages SET raw = $1 WHERE id = $2")
                    .bind(new.seal(RAW, &plain))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                messages += 1;
            }
            tx.commit().await?;
        }
        let mut notifications = 0u64;
        let mut after = String::new();
        loop {
            let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT id, title, body FROM notifications WHERE id > $1 AND (title IS NOT NULL OR body IS NOT NULL)
                 ORDER BY id LIMIT $2",
            )
            .bind(&after)
            .bind(BATCH)
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.0.clone();
            let mut tx = self.pool.begin().await?;
            for (id, title, body) in rows {
                let done = |v: &Option<String>| v.as_deref().is_none_or(|t| new.text_sealed_by_me(t));
                if done(&title) && done(&body) {
                    continue;
                }
                let title = self.open_text(TITLE, title)?;
                let body = self.open_text(BODY, body)?;
                sqlx::query("UPDATE notifications SET title = $1, body = $2 WHERE id = $3")
                    .bind(cipher::seal_text(Some(new), TITLE, title.as_deref()))
                    .bind(cipher::seal_text(Some(new), BODY, body.as_deref()))
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                notifications += 1;
            }
            tx.commit().await?;
        }
        Ok((messages, notifications))
    }
}
