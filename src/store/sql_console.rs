//! Queries of the operator console — its sessions and the per-minute message counts of the
//! overview — written once for both SQL backends (see `sql.rs` for the conventions).
//! [`console_queries!`] expands them for a backend.
//!
//! A session is a row keyed by the SHA-256 of the cookie's secret; the secret itself is never
//! stored. A session opened with an API token lives no longer than the token: the look-up joins
//! `api_tokens` and a revoked or expired token ends it at once.

/// An open console session (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// `token:<id>` or `oidc:<subject>`.
    pub subject: String,
    /// The API token the session was opened with.
    pub token_id: Option<String>,
    pub role: String,
    /// The token every form of this session must carry.
    pub csrf: String,
    pub created_at: String,
    pub expires_at: String,
}

/// A send that failed, with the provider's last answer (no address, no text).
#[derive(Debug, Clone, serde::Serialize)]
pub struct FailedSend {
    pub id: String,
    pub rule: String,
    pub channel: Option<String>,
    pub attempts: i64,
    /// Why it failed: the provider's answer or the hub's reason.
    pub detail: Option<String>,
    pub updated_at: String,
}

/// The newest messages the overview's per-minute counts read at most: an hour of a feed
/// faster than this (about 3,300 a minute) is drawn from its newest part.
pub const RATE_SCAN_ROWS: i64 = 200_000;

/// Expands the session queries for a backend (`$store` with `pool` and `write_gate`).
macro_rules! console_queries {
    ($store:ident, $row:ty) => {
        impl $store {
            /// Stores a new session under the hash of its secret; drops expired ones on the way.
            pub async fn create_session(&self, id_hash: &str, s: &SessionRecord) -> Result<(), StoreError> {
                let _turn = self.write_gate().await;
                sqlx::query("DELETE FROM console_sessions WHERE expires_at < $1")
                    .bind(crate::store::sql::now())
                    .execute(&self.pool)
                    .await?;
                sqlx::query(
                    "INSERT INTO console_sessions (id_hash, subject, token_id, role, csrf, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(id_hash)
                .bind(&s.subject)
                .bind(&s.token_id)
                .bind(&s.role)
                .bind(&s.csrf)
                .bind(&s.created_at)
                .bind(&s.expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            /// The live session whose secret hashes to `id_hash`: not expired at `now`, and its
            /// token (when it was opened with one) neither revoked nor expired.
            pub async fn session(&self, id_hash: &str, now: &str) -> Result<Option<SessionRecord>, StoreError> {
                let row = sqlx::query(
                    "SELECT s.subject, s.token_id, s.role, s.csrf, s.created_at, s.expires_at
                     FROM console_sessions s LEFT JOIN api_tokens t ON t.id = s.token_id
                     WHERE s.id_hash = $1 AND s.expires_at > $2
                       AND (s.token_id IS NULL
                            OR (t.id IS NOT NULL AND t.revoked_at IS NULL
                                AND (t.expires_at IS NULL OR t.expires_at > $2)))",
                )
                .bind(id_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|r: $row| SessionRecord {
                    subject: r.get("subject"),
                    token_id: r.get("token_id"),
                    role: r.get("role"),
                    csrf: r.get("csrf"),
                    created_at: r.get("created_at"),
                    expires_at: r.get("expires_at"),
                }))
            }

            /// Ends a session (logout); how many rows went.
            pub async fn delete_session(&self, id_hash: &str) -> Result<u64, StoreError> {
                let _turn = self.write_gate().await;
                let done = sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            /// The newest failed sends, `limit` at most.
            pub async fn failed_sends(&self, limit: i64) -> Result<Vec<FailedSend>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, rule, channel, attempts, detail, updated_at FROM notifications
                     WHERE status = 'failed' ORDER BY due_at DESC LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map(|r: &$row| FailedSend {
                        id: r.get("id"),
                        rule: r.get("rule"),
                        channel: r.get("channel"),
                        attempts: r.get("attempts"),
                        detail: r.get("detail"),
                        updated_at: r.get("updated_at"),
                    })
                    .collect())
            }

            /// Messages received per connector and minute (`YYYY-MM-DDTHH:MM`, UTC) since `since`,
            /// read from the newest [`RATE_SCAN_ROWS`] messages by id (no index on the time).
            pub async fn message_rate(&self, since: &str) -> Result<Vec<(String, String, i64)>, StoreError> {
                let rows = sqlx::query(
                    "SELECT connector, minute, COUNT(*) AS n FROM (
                         SELECT connector, substr(received_at, 1, 16) AS minute, received_at
                         FROM messages ORDER BY id DESC LIMIT $2) recent
                     WHERE received_at >= $1 GROUP BY connector, minute ORDER BY connector, minute",
                )
                .bind(since)
                .bind(RATE_SCAN_ROWS)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map(|r: &$row| (r.get("connector"), r.get("minute"), r.get("n")))
                    .collect())
            }
        }
    };
}

pub(crate) use console_queries;
